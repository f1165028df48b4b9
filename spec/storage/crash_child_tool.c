/*
 * crash_child_tool.c — a process for crash_test to kill.
 *
 *   crash_child_tool DIR RUN
 *
 * Opens the store in DIR, prints "S <first> <last>", then appends batches of
 * entries with term RUN*1000 as fast as the disk allows (four appends
 * outstanding), printing "D <index>" each time the store reports an index
 * durable. Now and then it cuts the log's tail and goes on with the next
 * term ("T <from> <term>", printed before the cut). Every few hundred entries
 * it installs a snapshot of the durable prefix ("P <index>" once durable, which
 * compacts the log). The metadata is queued with the writer (store_queue_meta)
 * before the first entry of each term, as a server does, and after each
 * snapshot; "M <term>" once reported durable. It runs until killed.
 * Each line is written with one write(2), so what the parent reads was really
 * reported. Entry payloads are payload_fill(index, term) (spec/storage/util.h).
 */
#include "util.h"

struct child {
  struct store *s;
  uint64_t term;
  uint64_t next_snap;
  unsigned rnd;
};

/* One line "<tag> <a> <b>". */
static void say(char tag, unsigned long long a, unsigned long long b) {
  char line[64];
  int n = snprintf(line, sizeof line, "%c %llu %llu\n", tag, a, b);
  if (write(1, line, (size_t)n) != n) _exit(4);
}

static void on_durable(struct store *s, uint64_t durable, int status,
                       void *data);

static void on_meta(struct store *s, uint64_t durable, int status, void *data) {
  (void)durable, (void)data;
  if (status) {
    fprintf(stderr, "metadata write failed: %s\n", store_errmsg(s));
    _exit(6);
  }
  say('M', store_meta(s)->term, 0);
}

/* The metadata of the current term, queued before any of its entries. */
static void queue_meta(struct child *c, uint64_t config_index) {
  if (store_queue_meta(c->s, c->term, "n1", config_index, "cfg", 3, on_meta,
                       NULL))
    _exit(6);
}

/* Now and then cut the last few entries, as a follower does with a
 * conflicting tail, and continue with a higher term ("T <from> <term>" is
 * printed first: the cut may or may not survive a kill). */
static void maybe_truncate(struct child *c) {
  c->rnd = c->rnd * 1103515245u + 12345u;
  if ((c->rnd >> 16) % 8 != 0) return;
  const struct store_snapshot *sn = store_snapshot(c->s);
  uint64_t last = store_last_index(c->s), back = (c->rnd >> 8) % 20;
  if (last <= back) return;
  uint64_t from = last - back;
  if (from < store_first_index(c->s) || (sn && from <= sn->last_index)) return;
  c->term++;
  say('T', from, c->term);
  queue_meta(c, 0);
  if (store_truncate_suffix(c->s, from, NULL, NULL) != 0) _exit(3);
}

static void append_batch(struct child *c) {
  maybe_truncate(c);
  c->rnd = c->rnd * 1103515245u + 12345u;
  size_t n = 1 + (c->rnd >> 16) % 40;
  uint64_t first = store_last_index(c->s) + 1;
  /* A bound (about 200k runs of crash_test): the test then reports that
   * the child stopped by itself. */
  if (first > 50000000) return;
  if (append_range_len(c->s, first, n, c->term, crash_len, NULL) != 0) _exit(3);
  /* A zero-entry append with the callback reports when all the above is
   * durable (appends complete in order). */
  if (store_append(c->s, NULL, 0, on_durable, c) != 0) _exit(3);
}

static void snapshot(struct child *c, uint64_t durable) {
  char err[STORE_ERR_MAX];
  uint64_t term = store_term_at(c->s, durable);
  uint8_t data[1000];
  payload_fill(data, sizeof data, durable, term);
  struct snap_writer *w;
  if (store_snap_begin(c->s, durable, term, "cfg", 3, &w, err) ||
      store_snap_write(c->s, w, 0, data, 400, err) ||
      store_snap_write(c->s, w, 400, data + 400, 600, err) ||
      store_snap_finish(c->s, w, err)) {
    fprintf(stderr, "snapshot: %s\n", err);
    _exit(5);
  }
  say('P', durable, term);
  queue_meta(c, durable);
}

static void on_durable(struct store *s, uint64_t durable, int status,
                       void *data) {
  struct child *c = data;
  if (status) {
    fprintf(stderr, "write failed: %s\n", store_errmsg(s));
    _exit(3);
  }
  say('D', durable, 0);
  if (durable >= c->next_snap && durable >= store_first_index(s)) {
    snapshot(c, durable);
    c->next_snap = durable + 300;
  }
  append_batch(c);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: crash_child_tool DIR RUN\n");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct child c = {NULL, strtoull(argv[2], NULL, 10) * 1000, 0,
                    (unsigned)getpid()};
  struct store_opts o = {65536, 0, NULL};
  char err[STORE_ERR_MAX];
  if (store_open(&loop, argv[1], &o, &c.s, err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  say('S', store_first_index(c.s), store_last_index(c.s));
  c.next_snap = store_last_index(c.s) + 60;
  queue_meta(&c, 0);
  for (int i = 0; i < 4; i++)
    append_batch(&c);
  uv_run(&loop, UV_RUN_DEFAULT);
  return 0;
}
