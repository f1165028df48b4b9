/*
 * crash_test.c — real processes killed with SIGKILL at random moments.
 *
 * crash_child_tool appends to a store and reports each durable index; we
 * kill it after a random delay, open the directory ourselves and check:
 * every index the child reported durable is present with the content it
 * was written with (or covered by a reported snapshot), everything after
 * it is a well-formed entry of the last run (never garbage), the snapshot
 * and metadata are the newest reported or newer. Then the next run starts
 * on the same directory. STORAGE_CRASH_RUNS sets the number of runs
 * (default 250, stopping early after ~25 s; a number set there runs in
 * full: `make crash RUNS=N`).
 */
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "util.h"

static char tool[1024];
static int torn_cuts, tmp_removed; /* what start-ups had to repair */
static int cuts, snapshots;        /* tail cuts and snapshots reported */
static uv_loop_t loop;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Terms the running child writes with: from index `from` on, `term`. */
struct span {
  uint64_t from, term;
};

struct history {
  uint32_t *term; /* term each index was written with, as far as known */
  size_t cap;
  uint64_t acked;          /* highest index reported durable */
  uint64_t snap;           /* highest snapshot index reported */
  uint64_t meta_term;      /* highest metadata term reported */
  struct span spans[4096]; /* this run's spans, in order */
  int nspans;
};

/* The term the current run last gave index i: that of the latest span
 * starting at or below i (a later cut rewrote everything from its start). */
static uint64_t span_term(const struct history *h, uint64_t i) {
  uint64_t t = 0;
  for (int k = 0; k < h->nspans; k++)
    if (h->spans[k].from <= i) t = h->spans[k].term;
  return t;
}

static void set_term(struct history *h, uint64_t i, uint64_t term) {
  if (i >= h->cap) {
    size_t cap = h->cap ? h->cap : 4096;
    while (cap <= i)
      cap *= 2;
    h->term = realloc(h->term, cap * sizeof *h->term);
    memset(h->term + h->cap, 0, (cap - h->cap) * sizeof *h->term);
    h->cap = cap;
  }
  h->term[i] = (uint32_t)term;
}

/* Run the child once and kill it `delay` seconds after it has opened the
 * store (or, when `early`, after it started: during its start-up); fold its
 * report into h. */
static void run_child(const char *dir, uint64_t run, double delay, int early,
                      struct history *h, int *killed_early) {
  int fds[2];
  CHECK_INT(pipe(fds), ==, 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    char runs[32];
    snprintf(runs, sizeof runs, "%llu", (unsigned long long)run);
    execl(tool, tool, dir, runs, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  static char out[1 << 23];
  size_t len = 0;
  int opened = 0;
  double end = now() + (early ? delay : 5.0);
  for (;;) {
    double left = end - now();
    if (left <= 0) break;
    struct pollfd p = {fds[0], POLLIN, 0};
    if (poll(&p, 1, (int)(left * 1000) + 1) > 0) {
      ssize_t r = read(fds[0], out + len, sizeof out - 1 - len);
      if (r <= 0) break;
      len += (size_t)r;
      CHECK(len < sizeof out - 1);
    }
    if (!early && !opened && memchr(out, '\n', len)) {
      opened = 1; /* the "S" line: the store is open */
      end = now() + delay;
    }
  }
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  for (;;) {
    ssize_t r = read(fds[0], out + len, sizeof out - 1 - len);
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fds[0]);
  if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
    printf("    child exited by itself (status %d)\n", st);
    CHECK(0);
  }
  out[len] = 0;
  int started = 0;
  h->nspans = 0;
  for (char *line = out; *line;) {
    char *nl = strchr(line, '\n');
    if (!nl) break; /* a partial line cannot happen with one write(2) */
    *nl = 0;
    char tag;
    unsigned long long a, b;
    if (sscanf(line, "%c %llu %llu", &tag, &a, &b) == 3) {
      if (tag == 'S') {
        started = 1;
        /* Everything durable before must still be there. */
        CHECK_INT(b, >=, h->acked);
        h->spans[h->nspans++] = (struct span){b + 1, run * 1000};
      } else if (tag == 'T') {
        /* The cut entries are no longer acknowledged; from `a` on the
         * child writes with term b. */
        if (h->acked > a - 1) h->acked = a - 1;
        cuts++;
        CHECK(h->nspans < 4096);
        h->spans[h->nspans++] = (struct span){a, b};
      } else if (tag == 'D') {
        CHECK(started);
        uint64_t lo = a + 1;
        for (int k = 0; k < h->nspans; k++)
          if (h->spans[k].from < lo) lo = h->spans[k].from;
        for (uint64_t i = lo; i <= a; i++)
          set_term(h, i, span_term(h, i));
        if (a > h->acked) h->acked = a;
      } else if (tag == 'P') {
        if (a > h->snap) h->snap = a;
        snapshots++;
      } else if (tag == 'M') {
        if (a > h->meta_term) h->meta_term = a;
      }
    }
    line = nl + 1;
  }
  if (!started) (*killed_early)++;
}

/* Open the directory and check it against the history. */
static void verify(const char *dir, uint64_t run, struct history *h) {
  struct store_opts o = {65536, 0, NULL};
  struct store *s;
  char err[STORE_ERR_MAX];
  int rc = store_open(&loop, dir, &o, &s, err);
  if (rc)
    printf("    run %llu: open failed: %s\n", (unsigned long long)run, err);
  CHECK_INT(rc, ==, 0);
  const struct store_snapshot *sn = store_snapshot(s);
  uint64_t snap = sn ? sn->last_index : 0;
  CHECK_INT(snap, >=, h->snap);
  if (sn) {
    uint8_t data[1000];
    CHECK_INT(sn->last_term, ==, h->term[snap]);
    payload_fill(data, sizeof data, snap, sn->last_term);
    uint8_t got[1000];
    CHECK(sn->data_len == 1000 && snap_pread(sn, 0, got, 1000) == 0 &&
          !memcmp(got, data, 1000));
  }
  CHECK_INT(store_first_index(s), <=, snap + 1);
  uint64_t last = store_last_index(s);
  CHECK_INT(last, >=, h->acked);
  for (uint64_t i = snap + 1; i <= last; i++) {
    const struct store_entry *e;
    CHECK_INT(store_entries(s, i, i, &e), ==, 0);
    /* Acknowledged entries: their recorded term. Beyond: entries the run
     * just killed wrote but had not reported, with one of its terms. */
    uint64_t term = i <= h->acked ? h->term[i] : e->term;
    int known = i <= h->acked || (i < h->cap && e->term == h->term[i]);
    for (int k = 0; k < h->nspans && !known; k++)
      known = h->spans[k].term == e->term && h->spans[k].from <= i;
    if (!known || !entry_ok_len(e, i, term, crash_len(i))) {
      printf(
          "    run %llu: entry %llu (term %llu, expected %llu) wrong "
          "(acked up to %llu)\n",
          (unsigned long long)run, (unsigned long long)i,
          (unsigned long long)e->term, (unsigned long long)term,
          (unsigned long long)h->acked);
      CHECK(0);
    }
    set_term(h, i, term);
    /* The metadata of a term is written before any of its entries. */
    if (e->term > store_meta(s)->term) {
      printf(
          "    run %llu: entry %llu of term %llu is on disk, the metadata "
          "names term %llu\n",
          (unsigned long long)run, (unsigned long long)i,
          (unsigned long long)e->term, (unsigned long long)store_meta(s)->term);
      CHECK(0);
    }
  }
  CHECK_INT(store_meta(s)->term, >=, h->meta_term);
  if (strstr(store_notice(s), "torn")) torn_cuts++;
  if (strstr(store_notice(s), "unfinished")) tmp_removed++;
  /* What start-up found is durable now (it syncs the last segment). */
  h->acked = last;
  close_store(&loop, s);
}

TEST(sigkill_at_random_moments) {
  char *dir = tmp_dir();
  struct history h = {0};
  const char *env = getenv("STORAGE_CRASH_RUNS");
  int runs = env ? atoi(env) : 250;
  double limit = env ? 1e9 : 25; /* asked for a number: no time limit */
  int done = 0, early = 0;
  unsigned rnd = 12345;
  double t0 = now();
  for (int r = 1; r <= runs && now() - t0 < limit; r++) {
    rnd = rnd * 1103515245u + 12345u;
    double delay = ((rnd >> 8) % 25000) / 1e6; /* 0 .. 25 ms */
    run_child(dir, (uint64_t)r, delay, (rnd >> 4) % 5 == 0, &h, &early);
    verify(dir, (uint64_t)r, &h);
    done++;
  }
  printf(
      "    %d kills (%d before the child finished opening), %llu entries "
      "acknowledged, newest snapshot %llu, %.1f s\n",
      done, early, (unsigned long long)h.acked, (unsigned long long)h.snap,
      now() - t0);
  printf(
      "    start-ups that cut a torn write: %d, removed unfinished files: "
      "%d; tail cuts: %d, snapshots: %d\n",
      torn_cuts, tmp_removed, cuts, snapshots);
  CHECK(done >= 50);
  free(h.term);
  rm_rf(dir);
  free(dir);
}

int main(int argc, char **argv) {
  /* build/test/storage/crash_test -> build/tool/storage/crash_child_tool */
  const char *me = argc > 0 ? argv[0] : "";
  const char *cut = strstr(me, "/test/storage/crash_test");
  if (cut) {
    snprintf(tool, sizeof tool, "%.*s/tool/storage/crash_child_tool",
             (int)(cut - me), me);
  } else {
    const char *b = getenv("COPYCAT_BUILD");
    snprintf(tool, sizeof tool, "%s/tool/storage/crash_child_tool",
             b ? b : "build");
  }
  if (access(tool, X_OK) != 0) {
    printf("missing %s: build it first (make %s)\n", tool, tool);
    printf("0 passed, 1 failed\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  RUN(sigkill_at_random_moments);
  uv_loop_close(&loop);
  return harness_done();
}
