/*
 * store_test.c — the store's operations, on real files: open, append with
 * group commit, read back, suffix truncation, prefix compaction, snapshots
 * (local and received in chunks), metadata, locking, memory mode.
 */
#include <dirent.h>

#include "harness.h"
#include "storage/format.h"
#include "util.h"

static uv_loop_t loop;

static struct store *open_dir(const char *dir, size_t seg_size,
                              struct store_io *io) {
  struct store_opts o = {seg_size, 0, io};
  struct store *s = NULL;
  char err[STORE_ERR_MAX];
  int rc = store_open(&loop, dir, &o, &s, err);
  if (rc) printf("    store_open: %s\n", err);
  CHECK_INT(rc, ==, 0);
  return s;
}

/* Count directory entries starting with prefix. */
static int count_files(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
        strcmp(de->d_name, "segment-spare.tmp") != 0)
      n++;
  closedir(d);
  return n;
}

static void check_range(struct store *s, uint64_t a, uint64_t b,
                        uint64_t term) {
  const struct store_entry *e;
  CHECK_INT(store_entries(s, a, b, &e), ==, 0);
  for (uint64_t i = a; i <= b; i++)
    CHECK(entry_ok(&e[i - a], i, term));
}

TEST(open_creates_missing_directory) {
  char *base = tmp_dir();
  char dir[512];
  snprintf(dir, sizeof dir, "%s/a/b/data", base);
  struct store *s = open_dir(dir, 0, NULL);
  CHECK_INT(store_first_index(s), ==, 1);
  CHECK_INT(store_last_index(s), ==, 0);
  CHECK_INT(store_last_term(s), ==, 0);
  CHECK_INT(store_meta(s)->term, ==, 0);
  CHECK(store_snapshot(s) == NULL);
  close_store(&loop, s);
  CHECK_INT(count_files(dir, "metadata"), ==, 1);
  rm_rf(base);
  free(base);
}

TEST(append_is_durable_and_reloads) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  struct waitc w[5] = {{0}};
  for (int b = 0; b < 5; b++)
    CHECK_INT(append_range(s, 1 + 20 * (uint64_t)b, 20, 1, &w[b]), ==, 0);
  /* Readable at once, durable only after the callbacks. */
  CHECK_INT(store_last_index(s), ==, 100);
  check_range(s, 1, 100, 1);
  run_until(&loop, &w[4].calls, 1);
  for (int b = 0; b < 5; b++) {
    CHECK_INT(w[b].calls, ==, 1);
    CHECK_INT(w[b].status, ==, 0);
    CHECK_INT(w[b].durable, >=, 20 * (uint64_t)(b + 1));
  }
  CHECK_INT(store_durable_index(s), ==, 100);
  close_store(&loop, s);
  s = open_dir(dir, 0, NULL);
  CHECK_INT(store_last_index(s), ==, 100);
  CHECK_INT(store_durable_index(s), ==, 100);
  CHECK_INT(store_last_term(s), ==, 1);
  check_range(s, 1, 100, 1);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(append_rejects_what_does_not_follow_the_log) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  CHECK_INT(append_range(s, 2, 1, 1, NULL), ==, STORE_EINVAL); /* gap */
  CHECK_INT(append_range(s, 0, 1, 1, NULL), ==, STORE_EINVAL);
  CHECK_INT(append_range(s, 1, 3, 5, NULL), ==, 0);
  CHECK_INT(append_range(s, 4, 1, 4, NULL), ==, STORE_EINVAL); /* term down */
  CHECK_INT(append_range(s, 3, 1, 5, NULL), ==, STORE_EINVAL); /* overlap */
  struct store_entry e = {4, 5, 0, 10, NULL};                  /* no data */
  CHECK_INT(store_append(s, &e, 1, NULL, NULL), ==, STORE_EINVAL);
  CHECK_INT(store_last_index(s), ==, 3);
  const struct store_entry *out;
  CHECK_INT(store_entries(s, 0, 2, &out), ==, STORE_ERANGE);
  CHECK_INT(store_entries(s, 2, 4, &out), ==, STORE_ERANGE);
  CHECK_INT(store_entries(s, 3, 2, &out), ==, STORE_ERANGE);
  CHECK_INT(store_entries(s, 2, 3, &out), ==, 0);
  CHECK_INT(out[1].index, ==, 3);
  CHECK_INT(store_term_at(s, 3), ==, 5);
  CHECK_INT(store_term_at(s, 4), ==, 0);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(appends_during_a_write_share_one_fdatasync) {
  char *dir = tmp_dir();
  static struct fault_io f; /* outlives a failed check */
  fault_init(&f);
  struct store *s = open_dir(dir, 0, &f.io);
  struct waitc w0 = {0};
  CHECK_INT(append_range(s, 1, 1, 1, &w0), ==, 0); /* creates the segment */
  run_until(&loop, &w0.calls, 1);
  int before = f.counts[FOP_FDATASYNC];
  struct waitc w[64] = {{0}};
  gate_close(&f);
  CHECK_INT(append_range(s, 2, 1, 1, &w[0]), ==, 0);
  gate_wait_blocked(&f); /* the first append is being written */
  for (int i = 1; i < 64; i++)
    CHECK_INT(append_range(s, 2 + (uint64_t)i, 1, 1, &w[i]), ==, 0);
  gate_open(&f);
  run_until(&loop, &w[63].calls, 1);
  /* The first append starts a write at once; the other 63 wait for it and
   * go out together. */
  CHECK_INT(f.counts[FOP_FDATASYNC] - before, <=, 2);
  for (int i = 0; i < 64; i++) {
    CHECK_INT(w[i].calls, ==, 1);
    CHECK_INT(w[i].durable, >=, (uint64_t)i + 2);
  }
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(segments_roll_over_and_reload) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  struct waitc w = {0};
  for (int b = 0; b < 30; b++) {
    CHECK_INT(append_range(s, 1 + 10 * (uint64_t)b, 10, 1, &w), ==, 0);
    run_until(&loop, &w.calls, b + 1);
  }
  CHECK_INT(w.durable, ==, 300);
  CHECK_INT(count_files(dir, "segment-"), >, 10);
  /* A payload larger than a whole segment gets a segment of its own. */
  uint8_t *big = malloc(20000);
  memset(big, 0x5A, 20000);
  struct store_entry e = {301, 1, 7, 20000, big};
  CHECK_INT(store_append(s, &e, 1, wait_cb, &w), ==, 0);
  free(big);
  run_until(&loop, &w.calls, 31);
  CHECK_INT(w.durable, ==, 301);
  CHECK_INT(append_range(s, 302, 5, 2, &w), ==, 0);
  run_until(&loop, &w.calls, 32);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  CHECK_INT(store_last_index(s), ==, 306);
  check_range(s, 1, 300, 1);
  check_range(s, 302, 306, 2);
  const struct store_entry *out;
  CHECK_INT(store_entries(s, 301, 301, &out), ==, 0);
  CHECK_INT(out->len, ==, 20000);
  CHECK_INT(out->type, ==, 7);
  CHECK_INT(out->data[19999], ==, 0x5A);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(truncate_suffix_then_new_term) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 100, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  int segs_before = count_files(dir, "segment-");
  /* Cut across several segments. */
  CHECK_INT(store_truncate_suffix(s, 40, wait_cb, &w), ==, 0);
  CHECK_INT(store_last_index(s), ==, 39);
  CHECK_INT(store_durable_index(s), ==, 39);
  run_until(&loop, &w.calls, 2);
  CHECK_INT(w.status, ==, 0);
  CHECK_INT(w.durable, ==, 39);
  CHECK_INT(count_files(dir, "segment-"), <, segs_before);
  CHECK_INT(append_range(s, 40, 30, 2, &w), ==, 0);
  run_until(&loop, &w.calls, 3);
  CHECK_INT(w.durable, ==, 69);
  /* Removing nothing is allowed; removing before the start is not. */
  CHECK_INT(store_truncate_suffix(s, 70, NULL, NULL), ==, 0);
  CHECK_INT(store_truncate_suffix(s, 0, NULL, NULL), ==, STORE_EINVAL);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  CHECK_INT(store_last_index(s), ==, 69);
  check_range(s, 1, 39, 1);
  check_range(s, 40, 69, 2);
  /* Cut inside the open segment, then reload. */
  CHECK_INT(store_truncate_suffix(s, 65, wait_cb, &w), ==, 0);
  CHECK_INT(append_range(s, 65, 2, 3, &w), ==, 0);
  run_until(&loop, &w.calls, 5);
  CHECK_INT(w.durable, ==, 66);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  CHECK_INT(store_last_index(s), ==, 66);
  check_range(s, 40, 64, 2);
  check_range(s, 65, 66, 3);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* Cutting exactly at the first index of a segment deletes that segment and
 * continues in the one before it, which keeps all its entries. */
TEST(truncate_at_a_segment_boundary) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 100, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  close_store(&loop, s);
  /* Find where the segments start. */
  uint64_t firsts[64];
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    uint64_t x;
    if (seg_parse_name(de->d_name, &x) && n < 64) firsts[n++] = x;
  }
  closedir(d);
  CHECK_INT(n, >=, 3);
  uint64_t cut = 0;
  for (int i = 0; i < n; i++)
    if (firsts[i] > 1 && (cut == 0 || firsts[i] < cut)) cut = firsts[i];
  for (int round = 0; round < 2; round++) {
    s = open_dir(dir, 4096, NULL);
    CHECK_INT(store_truncate_suffix(s, cut, wait_cb, &w), ==, 0);
    CHECK_INT(append_range(s, cut, 3, 2 + (uint64_t)round, &w), ==, 0);
    run_until(&loop, &w.calls, 3 + 2 * round);
    CHECK_INT(w.durable, ==, cut + 2);
    close_store(&loop, s);
    s = open_dir(dir, 4096, NULL);
    CHECK_INT(store_last_index(s), ==, cut + 2);
    check_range(s, 1, cut - 1, 1);
    check_range(s, cut, cut + 2, 2 + (uint64_t)round);
    close_store(&loop, s);
  }
  rm_rf(dir);
  free(dir);
}

/* A cut that deletes several segments, interrupted after each step (the
 * failing unlink stands for a crash there): the directory must open with a
 * prefix of the old log each time, never a sealed segment at its end. */
TEST(cut_across_segments_interrupted_at_each_step) {
  for (int step = 0; step < 4; step++) {
    char *dir = tmp_dir();
    static struct fault_io f;
    fault_init(&f);
    struct store *s = open_dir(dir, 4096, &f.io);
    struct waitc w = {0};
    CHECK_INT(append_range(s, 1, 200, 1, &w), ==, 0);
    run_until(&loop, &w.calls, 1);
    CHECK_INT(count_files(dir, "segment-"), >=, 8);
    fault_set(&f, FOP_UNLINK, step, -1, EIO);
    CHECK_INT(store_truncate_suffix(s, 40, wait_cb, &w), ==, 0);
    run_until(&loop, &w.calls, 2);
    CHECK_INT(w.status, ==, STORE_EIO);
    close_store(&loop, s);
    s = open_dir(dir, 4096, NULL);
    uint64_t last = store_last_index(s);
    CHECK_INT(last, >=, 39);
    check_range(s, 1, last, 1);
    close_store(&loop, s);
    rm_rf(dir);
    free(dir);
  }
}

TEST(truncate_while_a_write_is_in_flight) {
  char *dir = tmp_dir();
  static struct fault_io f; /* outlives a failed check */
  fault_init(&f);
  struct store *s = open_dir(dir, 4096, &f.io);
  struct waitc w1 = {0}, w2 = {0}, w3 = {0};
  gate_close(&f);
  CHECK_INT(append_range(s, 1, 50, 1, &w1), ==, 0);
  gate_wait_blocked(&f); /* the writer holds 1..50 now */
  CHECK_INT(append_range(s, 51, 10, 1, &w2), ==, 0); /* pending */
  CHECK_INT(store_truncate_suffix(s, 20, NULL, NULL), ==, 0);
  CHECK_INT(append_range(s, 20, 5, 2, &w3), ==, 0);
  gate_open(&f);
  run_until(&loop, &w3.calls, 1);
  /* The first write finished after the cut: it may not claim 20..50. */
  CHECK_INT(w1.durable, <=, 19);
  CHECK_INT(w2.calls, ==, 1);
  CHECK_INT(w3.durable, ==, 24);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  CHECK_INT(store_last_index(s), ==, 24);
  check_range(s, 1, 19, 1);
  check_range(s, 20, 24, 2);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

static void write_snapshot(struct store *s, uint64_t index, uint64_t term,
                           size_t len, int chunks) {
  uint8_t *data = malloc(len + 1);
  payload_fill(data, len, index, term);
  struct snap_writer *w;
  char err[STORE_ERR_MAX];
  CHECK_INT(store_snap_begin(s, index, term, "cfg", 3, &w, err), ==, 0);
  size_t step = len / (size_t)chunks + 1;
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    CHECK_INT(store_snap_write(s, w, off, data + off, n, err), ==, 0);
  }
  CHECK_INT(store_snap_finish(s, w, err), ==, 0);
  free(data);
}

/* The snapshot's data, read from its file (and through a mapping), is
 * exactly `want`. */
static int snap_equals(const struct store_snapshot *sn, const void *want,
                       size_t len) {
  uint8_t got[64];
  const uint8_t *mapped;
  void *cookie;
  if (len > sizeof got || sn->data_len != len || snap_pread(sn, 0, got, len))
    return 0;
  if (snap_map(sn, &mapped, &cookie) != 0) return 0;
  int same = memcmp(got, want, len) == 0 && memcmp(mapped, want, len) == 0;
  snap_unmap(sn, cookie);
  return same;
}

static void check_snapshot(struct store *s, uint64_t index, uint64_t term,
                           size_t len) {
  const struct store_snapshot *sn = store_snapshot(s);
  CHECK(sn != NULL);
  CHECK_INT(sn->last_index, ==, index);
  CHECK_INT(sn->last_term, ==, term);
  CHECK_INT(sn->config_len, ==, 3);
  CHECK(memcmp(sn->config, "cfg", 3) == 0);
  CHECK_INT(sn->data_len, ==, len);
  uint8_t *data = malloc(len + 1), *got = malloc(len + 1);
  payload_fill(data, len, index, term);
  /* The data stays in the file (but in memory mode): read it back. */
  CHECK((sn->data == NULL) == (sn->io != NULL));
  CHECK_INT(snap_pread(sn, 0, got, len), ==, 0);
  CHECK(memcmp(data, got, len) == 0);
  CHECK_INT(snap_pread(sn, 1, got, len), ==, -EINVAL);
  free(data);
  free(got);
}

TEST(snapshot_compacts_the_log) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 200, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  CHECK_INT(store_compact_prefix(s, 50), ==, STORE_EINVAL); /* no snapshot */
  int segs_before = count_files(dir, "segment-");
  write_snapshot(s, 150, 1, 10000, 7);
  CHECK_INT(store_first_index(s), ==, 151);
  CHECK_INT(store_term_at(s, 150), ==, 1);
  CHECK_INT(store_compact_prefix(s, 151), ==, STORE_EINVAL); /* > snapshot */
  CHECK_INT(append_range(s, 201, 1, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 2);
  CHECK_INT(count_files(dir, "segment-"), <, segs_before);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 1);
  /* A newer snapshot replaces the old file. */
  write_snapshot(s, 180, 1, 5000, 1);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 1);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  check_snapshot(s, 180, 1, 5000);
  CHECK_INT(store_first_index(s), ==, 181);
  CHECK_INT(store_last_index(s), ==, 201);
  check_range(s, 181, 201, 1);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* A snapshot written by another process (as the server's forked child
 * does): the file appears complete, and installing it compacts the log. */
TEST(detached_snapshot_is_read_and_adopted) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 120, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  uint8_t data[3000];
  payload_fill(data, sizeof data, 100, 1);
  char err[STORE_ERR_MAX];
  CHECK_INT(
      store_snap_write_detached(s, 100, 1, "cfg", 3, data, sizeof data, err),
      ==, 0);
  /* Written, not yet installed: the store goes on as before. */
  CHECK_INT(count_files(dir, "snapshot-"), ==, 1);
  CHECK(store_snapshot(s) == NULL);
  CHECK_INT(store_first_index(s), ==, 1);
  struct store_snapshot ns;
  CHECK_INT(store_snap_read(s, 100, &ns, err), ==, 0);
  CHECK_INT(store_snap_adopt(s, &ns, err), ==, 0);
  check_snapshot(s, 100, 1, sizeof data);
  CHECK_INT(store_first_index(s), ==, 101);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  check_snapshot(s, 100, 1, sizeof data);
  check_range(s, 101, 120, 1);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* The whole file at path into buf (up to size bytes); its length. */
static size_t slurp(const char *path, uint8_t *buf, size_t size) {
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  size_t n = fread(buf, 1, size, f);
  fclose(f);
  return n;
}

/* A detached snapshot written a piece at a time (as the server's forked
 * child writes what the state machine hands over) is the same file as
 * one written whole, and changes nothing in the store until adopted. */
TEST(detached_snapshot_written_in_pieces_is_the_same_file) {
  char *a = tmp_dir(), *b = tmp_dir();
  struct store *sa = open_dir(a, 4096, NULL), *sb = open_dir(b, 4096, NULL);
  uint8_t data[3000];
  payload_fill(data, sizeof data, 100, 1);
  char err[STORE_ERR_MAX];
  CHECK_INT(
      store_snap_write_detached(sa, 100, 1, "cfg", 3, data, sizeof data, err),
      ==, 0);
  struct snap_writer *w;
  CHECK_INT(store_snap_begin_detached(sb, 100, 1, "cfg", 3, &w, err), ==, 0);
  CHECK_INT(snap_write(w, 0, data, 1000, err), ==, 0);
  CHECK_INT(snap_write(w, 1000, data + 1000, 0, err), ==, 0);
  /* A piece that would leave a hole is refused, and changes nothing. */
  CHECK_INT(snap_write(w, 1500, data + 1500, 10, err), ==, STORE_EINVAL);
  CHECK_INT(snap_write(w, 1000, data + 1000, 2000, err), ==, 0);
  CHECK_INT(count_files(b, "snapshot-"), ==, 1); /* the temporary file */
  CHECK_INT(store_snap_finish_detached(w, err), ==, 0);
  CHECK(store_snapshot(sb) == NULL);
  char pa[600], pb[600];
  snprintf(pa, sizeof pa, "%s/snapshot-%020d", a, 100);
  snprintf(pb, sizeof pb, "%s/snapshot-%020d", b, 100);
  static uint8_t fa[8192], fb[8192];
  size_t na = slurp(pa, fa, sizeof fa), nb = slurp(pb, fb, sizeof fb);
  CHECK_INT(na, ==, SNAP_HEADER_SIZE + 3 + sizeof data);
  CHECK_INT(nb, ==, na);
  CHECK(memcmp(fa, fb, na) == 0);
  struct store_snapshot ns;
  CHECK_INT(store_snap_read(sb, 100, &ns, err), ==, 0);
  CHECK_INT(store_snap_adopt(sb, &ns, err), ==, 0);
  check_snapshot(sb, 100, 1, sizeof data);
  close_store(&loop, sa);
  close_store(&loop, sb);
  rm_rf(a);
  rm_rf(b);
  free(a);
  free(b);
}

/* A detached snapshot given up midway leaves no file behind; a
 * memory-only store has no snapshot files to write. */
TEST(detached_snapshot_abandoned_leaves_nothing) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  uint8_t data[500];
  payload_fill(data, sizeof data, 30, 1);
  char err[STORE_ERR_MAX];
  struct snap_writer *w;
  CHECK_INT(store_snap_begin_detached(s, 30, 1, "cfg", 3, &w, err), ==, 0);
  CHECK_INT(snap_write(w, 0, data, sizeof data, err), ==, 0);
  snap_abort(w);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 0);
  close_store(&loop, s);
  struct store_opts mo = {0, 1, NULL};
  CHECK_INT(store_open(&loop, NULL, &mo, &s, err), ==, 0);
  CHECK_INT(store_snap_begin_detached(s, 30, 1, "cfg", 3, &w, err), ==,
            STORE_EINVAL);
  CHECK(strstr(err, "memory") != NULL);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* A detached snapshot overtaken by a newer one installed meanwhile is
 * refused and its file deleted; a damaged one is refused when read. */
TEST(detached_snapshot_older_or_damaged_is_refused) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 60, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  uint8_t data[500];
  payload_fill(data, sizeof data, 30, 1);
  char err[STORE_ERR_MAX];
  CHECK_INT(
      store_snap_write_detached(s, 30, 1, "cfg", 3, data, sizeof data, err), ==,
      0);
  struct store_snapshot ns;
  CHECK_INT(store_snap_read(s, 30, &ns, err), ==, 0);
  write_snapshot(s, 40, 1, 800, 1); /* installed first */
  CHECK_INT(store_snap_adopt(s, &ns, err), ==, STORE_EINVAL);
  CHECK(strstr(err, "newer") != NULL);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 1);
  check_snapshot(s, 40, 1, 800);
  /* One flipped byte in the data: read refuses it, naming the file. */
  CHECK_INT(
      store_snap_write_detached(s, 50, 1, "cfg", 3, data, sizeof data, err), ==,
      0);
  char path[600];
  snprintf(path, sizeof path, "%s/snapshot-%020d", dir, 50);
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  uint8_t b;
  CHECK_INT(pread(fd, &b, 1, 200), ==, 1);
  b ^= 0x10;
  CHECK_INT(pwrite(fd, &b, 1, 200), ==, 1);
  close(fd);
  CHECK_INT(store_snap_read(s, 50, &ns, err), ==, STORE_ECORRUPT);
  CHECK(strstr(err, "snapshot-") != NULL);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* A crash between installing a snapshot and deleting the previous one (the
 * failing unlink stands for it) leaves two: the newest is loaded. */
TEST(the_newest_of_two_snapshots_is_loaded) {
  char *dir = tmp_dir();
  static struct fault_io f;
  fault_init(&f);
  struct store *s = open_dir(dir, 4096, &f.io);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 50, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  write_snapshot(s, 20, 1, 1000, 2);
  fault_set(&f, FOP_UNLINK, 0, 1, EIO);
  write_snapshot(s, 30, 1, 2000, 3);
  close_store(&loop, s);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 2);
  s = open_dir(dir, 4096, NULL);
  check_snapshot(s, 30, 1, 2000);
  CHECK(strstr(store_notice(s), "superseded") != NULL);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 1);
  CHECK_INT(store_first_index(s), ==, 31);
  check_range(s, 31, 50, 1);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(snapshot_from_leader_replaces_the_log) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 4096, NULL);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 50, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  /* The leader's snapshot ends beyond our log. */
  write_snapshot(s, 80, 3, 3000, 4);
  CHECK_INT(store_first_index(s), ==, 81);
  CHECK_INT(store_last_index(s), ==, 80);
  CHECK_INT(store_last_term(s), ==, 3);
  CHECK_INT(store_durable_index(s), ==, 80);
  CHECK_INT(append_range(s, 81, 10, 3, &w), ==, 0);
  run_until(&loop, &w.calls, 2);
  CHECK_INT(w.durable, ==, 90);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  check_snapshot(s, 80, 3, 3000);
  CHECK_INT(store_first_index(s), ==, 81);
  check_range(s, 81, 90, 3);
  /* A snapshot whose last entry conflicts with ours (same index, other
   * term) also replaces the log. */
  write_snapshot(s, 85, 4, 100, 1);
  CHECK_INT(store_last_index(s), ==, 85);
  CHECK_INT(store_first_index(s), ==, 86);
  close_store(&loop, s);
  s = open_dir(dir, 4096, NULL);
  CHECK_INT(store_last_index(s), ==, 85);
  CHECK_INT(store_last_term(s), ==, 4);
  CHECK_INT(count_files(dir, "segment-"), ==, 0);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(snapshot_chunks_holes_and_abort) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  struct snap_writer *w, *w2;
  char err[STORE_ERR_MAX];
  CHECK_INT(store_snap_begin(s, 10, 1, NULL, 0, &w, err), ==, 0);
  CHECK_INT(store_snap_begin(s, 11, 1, NULL, 0, &w2, err), ==, STORE_EINVAL);
  CHECK_INT(store_snap_write(s, w, 0, "hello ", 6, err), ==, 0);
  CHECK_INT(store_snap_write(s, w, 10, "x", 1, err), ==, STORE_EINVAL);
  CHECK(strstr(err, "hole") != NULL);
  CHECK_INT(store_snap_write(s, w, 3, "lo world", 8, err), ==, 0); /* resend */
  CHECK_INT(count_files(dir, "snapshot-"), ==, 1); /* the .tmp */
  store_snap_abort(s, w);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 0);
  CHECK(store_snapshot(s) == NULL);
  CHECK_INT(store_snap_begin(s, 10, 1, "c", 1, &w, err), ==, 0);
  CHECK_INT(store_snap_write(s, w, 0, "hello ", 6, err), ==, 0);
  CHECK_INT(store_snap_write(s, w, 3, "lo world", 8, err), ==, 0);
  CHECK_INT(store_snap_finish(s, w, err), ==, 0);
  CHECK_INT(store_snapshot(s)->data_len, ==, 11);
  CHECK(snap_equals(store_snapshot(s), "hello world", 11));
  /* Not newer than the installed one. */
  CHECK_INT(store_snap_begin(s, 10, 1, NULL, 0, &w, err), ==, STORE_EINVAL);
  close_store(&loop, s);
  s = open_dir(dir, 0, NULL);
  CHECK(snap_equals(store_snapshot(s), "hello world", 11));
  CHECK_INT(store_snapshot(s)->config_len, ==, 1);
  CHECK_INT(store_last_index(s), ==, 10);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(metadata_saved_and_reloaded) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  char err[STORE_ERR_MAX];
  CHECK_INT(store_save_meta(s, 5, "n2", 7, "conf", 4, err), ==, 0);
  CHECK_INT(store_meta(s)->term, ==, 5);
  close_store(&loop, s);
  s = open_dir(dir, 0, NULL);
  const struct store_meta *m = store_meta(s);
  CHECK_INT(m->term, ==, 5);
  CHECK(strcmp(m->vote, "n2") == 0);
  CHECK_INT(m->config_index, ==, 7);
  CHECK_INT(m->config_len, ==, 4);
  CHECK(memcmp(m->config, "conf", 4) == 0);
  CHECK_INT(store_save_meta(s, 6, NULL, 7, NULL, 0, err), ==, 0);
  close_store(&loop, s);
  s = open_dir(dir, 0, NULL);
  CHECK_INT(store_meta(s)->term, ==, 6);
  CHECK(strcmp(store_meta(s)->vote, "") == 0);
  CHECK_INT(store_meta(s)->config_len, ==, 0);
  CHECK_INT(count_files(dir, "metadata"), ==, 1); /* no .tmp left */
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* The writer thread saves queued metadata: store_meta() shows it only once
 * its callback reported it durable, and a reopen finds it. */
TEST(queued_metadata_is_durable_when_reported) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  char err[STORE_ERR_MAX];
  struct waitc w = {0};
  CHECK_INT(store_queue_meta(s, 5, "n2", 7, "conf", 4, wait_cb, &w), ==, 0);
  /* Not reported yet: the metadata shown is the one on disk. */
  CHECK_INT(store_meta(s)->term, ==, 0);
  /* A synchronous save would race the writer: refused until it is done. */
  CHECK_INT(store_save_meta(s, 9, "n3", 0, NULL, 0, err), ==, STORE_EINVAL);
  run_until(&loop, &w.calls, 1);
  CHECK_INT(w.status, ==, 0);
  CHECK_INT(store_meta(s)->term, ==, 5);
  CHECK(strcmp(store_meta(s)->vote, "n2") == 0);
  CHECK_INT(store_save_meta(s, 6, "n2", 7, "conf", 4, err), ==, 0);
  /* Closing finishes a queued save and reports it. */
  CHECK_INT(store_queue_meta(s, 8, NULL, 0, NULL, 0, wait_cb, &w), ==, 0);
  close_store(&loop, s);
  CHECK_INT(w.calls, ==, 2);
  CHECK_INT(w.status, ==, 0);
  s = open_dir(dir, 0, NULL);
  CHECK_INT(store_meta(s)->term, ==, 8);
  CHECK(strcmp(store_meta(s)->vote, "") == 0);
  CHECK_INT(store_meta(s)->config_len, ==, 0);
  CHECK_INT(count_files(dir, "metadata"), ==, 1); /* no .tmp left */
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* Saves queued while the writer is busy are merged into its next write,
 * which replaces the metadata before writing the records queued with it:
 * once the records are reported durable the metadata queued before them
 * is too, and the newest save wins. */
TEST(queued_metadata_is_written_in_order_with_the_log) {
  char *dir = tmp_dir();
  struct fault_io f;
  fault_init(&f);
  struct store *s = open_dir(dir, 0, &f.io);
  struct waitc a = {0}, m1 = {0}, m2 = {0}, b = {0};
  CHECK_INT(append_range(s, 1, 3, 1, &a), ==, 0); /* creates the segment */
  run_until(&loop, &a.calls, 1);
  gate_close(&f);
  CHECK_INT(append_range(s, 4, 3, 1, &a), ==, 0);
  gate_wait_blocked(&f); /* the writer holds entries 4..6 */
  int renames = f.counts[FOP_RENAME];
  CHECK_INT(store_queue_meta(s, 2, "n1", 0, NULL, 0, wait_cb, &m1), ==, 0);
  CHECK_INT(store_queue_meta(s, 3, "n2", 0, NULL, 0, wait_cb, &m2), ==, 0);
  CHECK_INT(append_range(s, 7, 3, 3, &b), ==, 0);
  gate_open(&f);
  run_until(&loop, &b.calls, 1);
  CHECK_INT(a.calls, ==, 2);
  CHECK_INT(m1.calls, ==, 1);
  CHECK_INT(m2.calls, ==, 1);
  CHECK_INT(m1.status, ==, 0);
  CHECK_INT(b.status, ==, 0);
  CHECK_INT(b.durable, ==, 9);
  CHECK_INT(f.counts[FOP_RENAME] - renames, ==, 1); /* one file written */
  CHECK_INT(store_meta(s)->term, ==, 3);
  CHECK(strcmp(store_meta(s)->vote, "n2") == 0);
  close_store(&loop, s);
  s = open_dir(dir, 0, NULL);
  CHECK_INT(store_meta(s)->term, ==, 3);
  check_range(s, 7, 9, 3);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

struct fin {
  int calls, status;
  char err[STORE_ERR_MAX];
};

static void fin_cb(struct store *s, int status, const char *err, void *data) {
  (void)s;
  struct fin *f = data;
  f->calls++;
  f->status = status;
  snprintf(f->err, sizeof f->err, "%s", err);
}

/* A received snapshot of index 20 (term 2) written in chunks, one re-sent
 * over what was received; the writer is returned unfinished. */
static struct snap_writer *receive_snapshot(struct store *s, size_t len) {
  uint8_t *data = malloc(len);
  payload_fill(data, len, 20, 2);
  struct snap_writer *w;
  char err[STORE_ERR_MAX];
  CHECK_INT(store_snap_begin(s, 20, 2, "cfg", 3, &w, err), ==, 0);
  CHECK_INT(store_snap_write(s, w, 0, data, len / 2, err), ==, 0);
  CHECK_INT(store_snap_write(s, w, len / 4, data + len / 4, len - len / 4, err),
            ==, 0);
  free(data);
  return w;
}

/* The checksum pass, fsync and rename run on the thread pool; the install
 * (the log reset behind the snapshot) happens on the loop just before the
 * callback, and until then no other snapshot may begin. */
TEST(snapshot_finished_on_the_thread_pool) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  struct waitc w = {0};
  char err[STORE_ERR_MAX];
  CHECK_INT(append_range(s, 1, 10, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  struct snap_writer *sw = receive_snapshot(s, 3000);
  struct fin f = {0};
  CHECK_INT(store_snap_finish_async(s, sw, fin_cb, &f), ==, 0);
  CHECK(store_snapshot(s) == NULL); /* not installed yet */
  CHECK_INT(store_last_index(s), ==, 10);
  struct snap_writer *other;
  CHECK_INT(store_snap_begin(s, 30, 2, "cfg", 3, &other, err), ==,
            STORE_EINVAL);
  run_until(&loop, &f.calls, 1);
  CHECK_INT(f.status, ==, 0);
  check_snapshot(s, 20, 2, 3000);
  CHECK_INT(store_last_index(s), ==, 20); /* the log starts after it */
  CHECK_INT(append_range(s, 21, 5, 2, &w), ==, 0);
  run_until(&loop, &w.calls, 2);
  close_store(&loop, s);
  s = open_dir(dir, 0, NULL);
  check_snapshot(s, 20, 2, 3000);
  check_range(s, 21, 25, 2);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* A file that does not hold what was received (the disk changed a byte)
 * is refused, synchronously or on the thread pool: nothing is installed,
 * the log is untouched, and no file is left. */
TEST(a_corrupt_received_snapshot_is_refused) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  struct waitc w = {0};
  char tmp[512], name[64];
  CHECK_INT(append_range(s, 1, 10, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  snap_name(name, sizeof name, 20);
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  for (int async = 0; async < 2; async++) {
    struct snap_writer *sw = receive_snapshot(s, 3000);
    int fd = open(tmp, O_RDWR);
    CHECK(fd >= 0);
    uint8_t b;
    CHECK_INT(pread(fd, &b, 1, 2000), ==, 1);
    b ^= 0x40;
    CHECK_INT(pwrite(fd, &b, 1, 2000), ==, 1);
    close(fd);
    struct fin f = {0};
    if (async) {
      CHECK_INT(store_snap_finish_async(s, sw, fin_cb, &f), ==, 0);
      run_until(&loop, &f.calls, 1);
    } else {
      f.status = store_snap_finish(s, sw, f.err);
    }
    CHECK_INT(f.status, ==, STORE_ECORRUPT);
    CHECK(strstr(f.err, "do not match") != NULL);
    CHECK(store_snapshot(s) == NULL);
    CHECK_INT(store_last_index(s), ==, 10);
    CHECK_INT(count_files(dir, "snapshot-"), ==, 0);
  }
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* Closing while the snapshot is sealed: the store waits for the thread
 * pool, reports the snapshot not installed, then closes. */
TEST(close_waits_for_a_snapshot_being_finished) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  struct snap_writer *sw = receive_snapshot(s, 3000);
  struct fin f = {0};
  CHECK_INT(store_snap_finish_async(s, sw, fin_cb, &f), ==, 0);
  int closed = 0;
  store_close(s, close_cb, &closed);
  run_until(&loop, &closed, 1);
  CHECK_INT(f.calls, ==, 1);
  CHECK_INT(f.status, ==, STORE_ECLOSED);
  rm_rf(dir);
  free(dir);
}

TEST(a_locked_directory_is_refused) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL), *s2 = NULL;
  char err[STORE_ERR_MAX];
  CHECK_INT(store_open(&loop, dir, NULL, &s2, err), ==, STORE_ELOCKED);
  CHECK(strstr(err, "in use") != NULL);
  CHECK(strstr(err, dir) != NULL);
  close_store(&loop, s);
  s = open_dir(dir, 0, NULL);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(memory_mode_writes_no_files) {
  struct store_opts o = {0, 1, NULL};
  struct store *s;
  char err[STORE_ERR_MAX];
  CHECK_INT(store_open(&loop, NULL, &o, &s, err), ==, 0);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 30, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  CHECK_INT(w.durable, ==, 30);
  CHECK_INT(store_truncate_suffix(s, 20, wait_cb, &w), ==, 0);
  CHECK_INT(append_range(s, 20, 5, 2, &w), ==, 0);
  run_until(&loop, &w.calls, 3);
  CHECK_INT(w.durable, ==, 24);
  check_range(s, 20, 24, 2);
  write_snapshot(s, 22, 2, 100, 2);
  check_snapshot(s, 22, 2, 100);
  CHECK_INT(store_first_index(s), ==, 23);
  CHECK_INT(store_save_meta(s, 3, "n1", 0, NULL, 0, err), ==, 0);
  CHECK_INT(store_meta(s)->term, ==, 3);
  CHECK_INT(store_queue_meta(s, 4, "n2", 0, NULL, 0, wait_cb, &w), ==, 0);
  run_until(&loop, &w.calls, 4);
  CHECK_INT(w.status, ==, 0);
  CHECK_INT(store_meta(s)->term, ==, 4);
  close_store(&loop, s);
  /* Without the explicit option, a directory is required. */
  CHECK_INT(store_open(&loop, NULL, NULL, &s, err), ==, STORE_EINVAL);
}

TEST(leftover_temporary_files_are_removed) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 5, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  close_store(&loop, s);
  const char *junk[] = {"segment-00000000000000000006.tmp",
                        "snapshot-00000000000000000004.tmp", "metadata.tmp"};
  for (int i = 0; i < 3; i++) {
    char p[600];
    join(p, sizeof p, dir, junk[i]);
    FILE *f = fopen(p, "w");
    fputs("garbage", f);
    fclose(f);
  }
  s = open_dir(dir, 0, NULL);
  CHECK(strstr(store_notice(s), "metadata.tmp") != NULL);
  CHECK_INT(count_files(dir, "segment-"), ==, 1);
  CHECK_INT(count_files(dir, "snapshot-"), ==, 0);
  CHECK_INT(count_files(dir, "metadata"), ==, 1);
  check_range(s, 1, 5, 1);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

TEST(close_finishes_accepted_writes) {
  char *dir = tmp_dir();
  struct store *s = open_dir(dir, 0, NULL);
  struct waitc w1 = {0}, w2 = {0};
  CHECK_INT(append_range(s, 1, 5, 1, &w1), ==, 0);
  CHECK_INT(append_range(s, 6, 5, 1, &w2), ==, 0);
  close_store(&loop, s);
  CHECK_INT(w1.calls, ==, 1);
  CHECK_INT(w2.calls, ==, 1);
  CHECK_INT(w2.status, ==, 0);
  CHECK_INT(w2.durable, ==, 10);
  s = open_dir(dir, 0, NULL);
  check_range(s, 1, 10, 1);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

/* A snapshot install whose old segments could not be deleted (the server
 * died first): at the next start the stale log must not come back. */
TEST(stale_segments_after_snapshot_install_are_discarded) {
  char *dir = tmp_dir();
  static struct fault_io f; /* outlives a failed check */
  fault_init(&f);
  struct store *s = open_dir(dir, 4096, &f.io);
  struct waitc w = {0};
  CHECK_INT(append_range(s, 1, 60, 1, &w), ==, 0);
  run_until(&loop, &w.calls, 1);
  fault_set(&f, FOP_UNLINK, 0, -1, EIO);
  write_snapshot(s, 40, 5, 100, 1); /* conflicts: term 5 vs our term 1 */
  CHECK_INT(append_range(s, 41, 1, 5, &w), ==, 0);
  run_until(&loop, &w.calls, 2);
  /* The deletion failed: the append is refused (EIO if it went out with
   * the deletion, EFAILED if it was queued behind it). */
  CHECK(w.status == STORE_EIO || w.status == STORE_EFAILED);
  CHECK(strstr(store_errmsg(s), "unlink") != NULL);
  CHECK_INT(append_range(s, 42, 1, 5, NULL), ==, STORE_EFAILED);
  close_store(&loop, s);
  CHECK_INT(count_files(dir, "segment-"), >, 0);
  s = open_dir(dir, 4096, NULL);
  CHECK_INT(store_last_index(s), ==, 40);
  CHECK_INT(store_last_term(s), ==, 5);
  CHECK(strstr(store_notice(s), "superseded") != NULL);
  CHECK_INT(count_files(dir, "segment-"), ==, 0);
  close_store(&loop, s);
  rm_rf(dir);
  free(dir);
}

int main(void) {
  uv_loop_init(&loop);
  RUN(open_creates_missing_directory);
  RUN(append_is_durable_and_reloads);
  RUN(append_rejects_what_does_not_follow_the_log);
  RUN(appends_during_a_write_share_one_fdatasync);
  RUN(segments_roll_over_and_reload);
  RUN(truncate_suffix_then_new_term);
  RUN(truncate_at_a_segment_boundary);
  RUN(cut_across_segments_interrupted_at_each_step);
  RUN(truncate_while_a_write_is_in_flight);
  RUN(snapshot_compacts_the_log);
  RUN(detached_snapshot_is_read_and_adopted);
  RUN(detached_snapshot_written_in_pieces_is_the_same_file);
  RUN(detached_snapshot_abandoned_leaves_nothing);
  RUN(detached_snapshot_older_or_damaged_is_refused);
  RUN(the_newest_of_two_snapshots_is_loaded);
  RUN(snapshot_from_leader_replaces_the_log);
  RUN(snapshot_chunks_holes_and_abort);
  RUN(metadata_saved_and_reloaded);
  RUN(queued_metadata_is_durable_when_reported);
  RUN(queued_metadata_is_written_in_order_with_the_log);
  RUN(snapshot_finished_on_the_thread_pool);
  RUN(a_corrupt_received_snapshot_is_refused);
  RUN(close_waits_for_a_snapshot_being_finished);
  RUN(a_locked_directory_is_refused);
  RUN(memory_mode_writes_no_files);
  RUN(leftover_temporary_files_are_removed);
  RUN(close_finishes_accepted_writes);
  RUN(stale_segments_after_snapshot_install_are_discarded);
  uv_loop_close(&loop);
  return harness_done();
}
