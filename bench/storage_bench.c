/*
 * storage_bench.c — log append throughput and latency against the raw
 * limit of the same disk, measured in the same run.
 *
 * For batch sizes 1, 16 and 256 (entries of 256 bytes):
 *   store: store_append of one batch, wait until it is reported durable,
 *          repeat (so batch 1 measures the latency of one durable append);
 *   raw:   write(2) of the same number of payload bytes + fdatasync, repeat,
 *          on a plain file in the same directory (the goal's baseline);
 *          "record-sized" writes as many bytes as the store's records take,
 *          to tell the cost of the format's 40 bytes per entry from the
 *          rest;
 * "wait each" appends one batch and waits until it is durable before the
 * next (latency); "2 outstanding" submits the next batch while the previous
 * is written (as a pipelining leader does; group commit may then merge two
 * batches into one write: the syncs column gives fdatasyncs per batch);
 * "snapshots" takes a small snapshot every 4 MiB, which compacts the log as a
 * server does, "log grows" never does; plus "store, 64 in flight": batch-1
 * appends with 64 outstanding, which group commit merges into shared writes.
 * A run is 2000 batches of 1 entry, or 1000 of 16 or of 256 (64 MiB): long
 * enough to cross several segments and to outlast short disk stalls.
 * Runs of all modes are interleaved (raw, then each store mode, RUNS times)
 * so that they see the same disk conditions, and after each run the file
 * system is synced (syncfs) so that work a run left behind (writeback,
 * discards of deleted files) is not charged to the next one. Each figure is
 * the median of RUNS runs; the ratio is the median over rounds of raw time /
 * store time within the same round, with the lowest and highest round in
 * brackets (the machine may be shared: the spread says how much to trust
 * it). "append" is the loop thread's time inside store_append per batch
 * (encoding, checksums, the in-memory copy, which overlaps the write). Files
 * live in a temporary directory (under $TMPDIR or /tmp) removed at the end.
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "storage/store.h"

#define ENTRY 256
/* Bytes an entry takes in a segment (storage/format.h: 32-byte header,
 * payload, 8-byte end mark): the size of the store's own writes. */
#define RECORD (ENTRY + 40)
#define RUNS 7

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)st, (void)f, (void)w;
  return remove(p);
}

static void rm_rf(const char *p) {
  nftw(p, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

struct waiter {
  int done;
};

static void on_durable(struct store *s, uint64_t d, int status, void *data) {
  (void)s, (void)d;
  if (status) {
    fprintf(stderr, "append failed: %s\n", store_errmsg(s));
    exit(1);
  }
  ((struct waiter *)data)->done++;
}

static uint8_t payload[ENTRY];

/* System calls, counting the writer's fdatasyncs (read after close, once
 * the writer thread has exited). */
struct counting_io {
  struct store_io io; /* first: the store sees this */
  struct store_io sys;
  long fdatasyncs;
};

static int count_fdatasync(struct store_io *io, int fd) {
  struct counting_io *c = (struct counting_io *)(void *)io;
  c->fdatasyncs++;
  return c->sys.fdatasync(io, fd);
}

static long last_fdatasyncs; /* of the last run_store */
static double last_append;   /* seconds inside store_append, last run_store */

/* Flush what the previous run left (dirty pages, deleted files' discards),
 * so that it is not charged to the next run. */
static void settle(const char *base) {
  int fd = open(base, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    syncfs(fd);
    close(fd);
  }
}

/* Take a small snapshot of the durable prefix, which compacts the log (as
 * a server does every so often): memory and segments are then reused. */
static void snapshot(struct store *s) {
  uint64_t d = store_durable_index(s);
  struct snap_writer *w;
  char err[STORE_ERR_MAX];
  if (d < store_first_index(s)) return;
  if (store_snap_begin(s, d, store_term_at(s, d), NULL, 0, &w, err) ||
      store_snap_write(s, w, 0, "state", 5, err) ||
      store_snap_finish(s, w, err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
}

/* Seconds to append `batches` batches of `b` entries, each waited for, or
 * with `inflight` outstanding appends; a snapshot every `snap_every`
 * entries (0: never, the log grows). */
static double run_store(const char *base, int b, int batches, int inflight,
                        uint64_t snap_every) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/store", base);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct store *s;
  char err[STORE_ERR_MAX];
  struct counting_io cio;
  store_io_default(&cio.sys);
  cio.io = cio.sys;
  cio.io.fdatasync = count_fdatasync;
  cio.fdatasyncs = 0;
  struct store_opts opts = {0, 0, &cio.io};
  if (store_open(&loop, dir, &opts, &s, err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  struct store_entry *es = calloc((size_t)b, sizeof *es);
  struct waiter w = {0};
  uint64_t next = 1, snapped = 0;
  int issued = 0;
  double t0 = now(), in_append = 0;
  while (w.done < batches) {
    while (issued < batches && issued - w.done < inflight) {
      for (int i = 0; i < b; i++)
        es[i] = (struct store_entry){next + (uint64_t)i, 1, 0, ENTRY, payload};
      double a0 = now();
      if (store_append(s, es, (size_t)b, on_durable, &w)) exit(1);
      in_append += now() - a0;
      next += (uint64_t)b;
      issued++;
    }
    uv_run(&loop, UV_RUN_ONCE);
    if (snap_every && store_durable_index(s) >= snapped + snap_every) {
      snapshot(s);
      snapped = store_durable_index(s);
    }
  }
  double t = now() - t0;
  int closed = 0;
  store_close(s, NULL, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  last_fdatasyncs = cio.fdatasyncs;
  last_append = in_append;
  uv_loop_close(&loop);
  free(es);
  rm_rf(dir);
  settle(base);
  return t;
}

/* Alternate, `batches` times: one raw write+fdatasync of b entries' bytes
 * appended to a plain file; the same bytes overwritten into a file filled
 * with zeros beforehand (the disk's own limit: no file metadata to flush);
 * then one store batch of b entries waited for (the store compacted by a
 * snapshot every `snap_every` entries, as a server's is). All three then
 * see the same disk conditions to the millisecond, which slow changes in a
 * shared machine's disk cannot skew. Fills raw[], pre[] and st[] with each
 * batch's seconds. */
static void run_pair(const char *base, int b, int batches, uint64_t snap_every,
                     double *raw, double *pre, double *st) {
  char dir[600], path[600], ppath[600];
  snprintf(dir, sizeof dir, "%s/store", base);
  snprintf(path, sizeof path, "%s/raw", base);
  snprintf(ppath, sizeof ppath, "%s/raw-zeroed", base);
  size_t n = (size_t)b * ENTRY;
  uint8_t *buf = calloc(1, n);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int pfd = open(ppath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!buf || fd < 0 || pfd < 0) exit(1);
  for (int k = 0; k < batches; k++)
    if (write(pfd, buf, n) != (ssize_t)n) exit(1);
  if (fsync(pfd) != 0) exit(1);
  settle(base);
  for (int i = 0; i < b; i++)
    memcpy(buf + (size_t)i * ENTRY, payload, ENTRY);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct store *s;
  char err[STORE_ERR_MAX];
  if (store_open(&loop, dir, NULL, &s, err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  struct store_entry *es = calloc((size_t)b, sizeof *es);
  struct waiter w = {0};
  uint64_t next = 1, snapped = 0;
  for (int k = 0; k < batches; k++) {
    double t0 = now();
    if (write(fd, buf, n) != (ssize_t)n || fdatasync(fd) != 0) exit(1);
    double t1 = now();
    if (pwrite(pfd, buf, n, (off_t)((size_t)k * n)) != (ssize_t)n ||
        fdatasync(pfd) != 0)
      exit(1);
    double t2 = now();
    for (int i = 0; i < b; i++)
      es[i] = (struct store_entry){next + (uint64_t)i, 1, 0, ENTRY, payload};
    if (store_append(s, es, (size_t)b, on_durable, &w)) exit(1);
    next += (uint64_t)b;
    while (w.done <= k)
      uv_run(&loop, UV_RUN_ONCE);
    raw[k] = t1 - t0;
    pre[k] = t2 - t1;
    st[k] = now() - t2;
    if (store_durable_index(s) >= snapped + snap_every) {
      snapshot(s);
      snapped = store_durable_index(s);
    }
  }
  int closed = 0;
  store_close(s, NULL, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(es);
  free(buf);
  close(fd);
  close(pfd);
  unlink(path);
  unlink(ppath);
  rm_rf(dir);
  settle(base);
}

static double sum(const double *v, int n) {
  double t = 0;
  for (int i = 0; i < n; i++)
    t += v[i];
  return t;
}

/* MB/s at which this process can put `mb` MiB of new memory to use
 * (mmap + fault every page in for writing): the in-memory log of a store
 * whose log only grows needs new memory at its write rate. Under some
 * hypervisors the first touch of guest memory costs far more than copying
 * into it, which the "log grows" rows then show. */
static double touch_rate(size_t mb) {
  size_t len = mb << 20;
  uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  double t0 = now();
  for (size_t i = 0; i < len; i += 4096)
    p[i] = 1;
  double t = now() - t0;
  munmap(p, len);
  return (double)len / 1e6 / t;
}

/* Seconds to write `batches` batches of `b` entries of `size` bytes, each
 * followed by fdatasync, appending to a plain file. */
static double run_raw(const char *base, int b, int batches, size_t size) {
  char path[600];
  snprintf(path, sizeof path, "%s/raw", base);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) exit(1);
  size_t n = (size_t)b * size;
  uint8_t *buf = calloc(1, n);
  for (int i = 0; i < b; i++)
    memcpy(buf + (size_t)i * size, payload, ENTRY);
  double t0 = now();
  for (int i = 0; i < batches; i++) {
    if (write(fd, buf, n) != (ssize_t)n || fdatasync(fd) != 0) exit(1);
  }
  double t = now() - t0;
  close(fd);
  unlink(path);
  free(buf);
  settle(base);
  return t;
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  char base[512];
  snprintf(base, sizeof base, "%s/copycat-bench-XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(base)) {
    perror("mkdtemp");
    return 1;
  }
  for (int i = 0; i < ENTRY; i++)
    payload[i] = (uint8_t)(i * 31 + 7);
  static const int sizes[] = {1, 16, 256};
  static const int batches[] = {2000, 1000, 1000};
  const uint64_t every = 16384; /* entries between snapshots (4 MiB) */
  printf("storage: %d-byte entries, median of %d runs, directory %s\n", ENTRY,
         RUNS, base);
  double fresh = touch_rate(256), again = touch_rate(256);
  printf(
      "memory: 256 MiB put to use at %.0f MB/s, the same again at %.0f "
      "MB/s\n",
      fresh, again);
  printf("%-6s %-32s %10s %7s %9s %7s %5s  %s\n", "batch", "mode", "appends/s",
         "MB/s", "batch us", "append", "syncs", "ratio [lowest, highest]");
  for (int k = 0; k < 3; k++) {
    int b = sizes[k], n = batches[k];
    double t[5][RUNS], ap[5][RUNS], ratio[5][RUNS];
    long syncs[5] = {n, 0, 0, 0, n};
    for (int r = 0; r < RUNS; r++) {
      t[0][r] = run_raw(base, b, n, ENTRY);
      ap[0][r] = 0;
      for (int m = 1; m < 4; m++) {
        t[m][r] = run_store(base, b, n, m == 3 ? 2 : 1, m == 1 ? 0 : every);
        ap[m][r] = last_append;
        syncs[m] = last_fdatasyncs;
        ratio[m][r] = t[0][r] / t[m][r];
      }
      t[4][r] = run_raw(base, b, n, RECORD);
      ap[4][r] = 0;
      ratio[4][r] = t[0][r] / t[4][r];
    }
    static const char *modes[5] = {
        "raw write+fdatasync", "store, wait each, log grows",
        "store, wait each, snapshots", "store, 2 outstanding, snapshots",
        "raw, record-sized writes"};
    double entries = (double)b * n, mb = entries * ENTRY / 1e6;
    for (int m = 0; m < 5; m++) {
      double tm = median(t[m], RUNS);
      char rs[48] = "", as[16] = "";
      if (m == 4) {
        double rm = median(ratio[m], RUNS);
        snprintf(rs, sizeof rs, "%.2fx [%.2f, %.2f]", rm, ratio[m][0],
                 ratio[m][RUNS - 1]);
      } else if (m) {
        double rm = median(ratio[m], RUNS); /* sorts ratio[m] */
        snprintf(rs, sizeof rs, "%.2fx [%.2f, %.2f]", rm, ratio[m][0],
                 ratio[m][RUNS - 1]);
        snprintf(as, sizeof as, "%.1f", median(ap[m], RUNS) / n * 1e6);
      }
      printf("%-6d %-32s %10.0f %7.2f %9.1f %7s %5.2f  %s\n", b, modes[m],
             entries / tm, mb / tm, tm / n * 1e6, as, (double)syncs[m] / n, rs);
    }
  }
  printf(
      "\nalternating, batch by batch: raw append (write+fdatasync on a "
      "growing file), raw\noverwrite (the same into a file zero-filled "
      "beforehand), store (append, wait;\nsnapshots every 4 MiB); "
      "%d rounds; medians of rounds, [lowest, highest] round\n",
      RUNS);
  printf("%-6s %-8s %12s %9s  %-20s %s\n", "batch", "mode", "appends/s",
         "p50 us", "throughput: store/x", "p50 latency: x/store");
  for (int k = 0; k < 3; k++) {
    int b = sizes[k], n = batches[k];
    double *v[3];
    for (int m = 0; m < 3; m++)
      v[m] = calloc((size_t)n, sizeof *v[m]);
    double tot[3][RUNS], lat[3][RUNS], tr[2][RUNS], lr[2][RUNS];
    for (int r = 0; r < RUNS; r++) {
      run_pair(base, b, n, every, v[0], v[1], v[2]);
      for (int m = 0; m < 3; m++) {
        tot[m][r] = sum(v[m], n);
        lat[m][r] = median(v[m], n);
      }
      for (int m = 0; m < 2; m++) {
        tr[m][r] = tot[m][r] / tot[2][r];
        lr[m][r] = lat[m][r] / lat[2][r];
      }
    }
    static const char *names[3] = {"append", "overwrite", "store"};
    for (int m = 0; m < 3; m++) {
      char rs[48] = "", ls[48] = "";
      if (m < 2) {
        double a = median(tr[m], RUNS), c = median(lr[m], RUNS);
        snprintf(rs, sizeof rs, "%.2fx [%.2f, %.2f]", a, tr[m][0],
                 tr[m][RUNS - 1]);
        snprintf(ls, sizeof ls, "%.2fx [%.2f, %.2f]", c, lr[m][0],
                 lr[m][RUNS - 1]);
      }
      printf("%-6d %-8s %12.0f %9.1f  %-20s %s\n", b, names[m],
             (double)b * n / median(tot[m], RUNS), median(lat[m], RUNS) * 1e6,
             rs, ls);
    }
    for (int m = 0; m < 3; m++)
      free(v[m]);
  }
  printf("\n");
  {
    int n = 2000;
    double st[RUNS], rt[RUNS], ratio[RUNS];
    for (int r = 0; r < RUNS; r++) {
      rt[r] = run_raw(base, 1, 400, ENTRY) / 400 * n;
      st[r] = run_store(base, 1, n, 64, every);
      ratio[r] = rt[r] / st[r];
    }
    double ts = median(st, RUNS), rm = median(ratio, RUNS);
    char rs[48];
    snprintf(rs, sizeof rs, "%.2fx [%.2f, %.2f]", rm, ratio[0],
             ratio[RUNS - 1]);
    printf("%-6d %-32s %10.0f %7.2f %9s %7s %5.2f  %s\n", 1,
           "store, 64 in flight", n / ts, n * (double)ENTRY / 1e6 / ts, "-",
           "-", (double)last_fdatasyncs / n, rs);
  }
  printf(
      "ratio = store throughput / raw throughput of the same batch size, "
      "median over rounds\n  (for batch 1 also raw latency / store "
      "latency); [lowest, highest] round.\n"
      "batch us = time per batch (wait each: append to durable); append = "
      "us per batch inside store_append.\n"
      "raw, record-sized writes: the raw loop writing as many bytes as the "
      "store does\n  (records are 40 bytes larger than their payload); "
      "its ratio is also against the plain raw loop.\n"
      "syncs = fdatasyncs per batch (last run; includes new segments). "
      "Goals: >= 0.90 at batch 256, >= 0.90 at batch 1.\n"
      "log grows: the in-memory log is never compacted, so it needs new "
      "memory at the write\n  rate (see the memory line); a server "
      "compacts it at every snapshot, as the snapshots rows do.\n");
  rm_rf(base);
  return 0;
}
