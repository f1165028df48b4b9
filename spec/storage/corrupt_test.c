/*
 * corrupt_test.c — damaged data directories. A log cut at every byte offset
 * of its last records (as a crash mid-write leaves it) must recover exactly
 * the complete records; a bit flipped anywhere in a segment, the metadata
 * or the snapshot must either change nothing that was stored or stop the
 * start-up with a message naming the file. Never a crash, never a silent
 * loss. Also: unknown format versions and missing files.
 */
#include <dirent.h>

#include "harness.h"
#include "storage/format.h"
#include "util.h"

static uv_loop_t loop;

struct file {
  char name[64];
  uint8_t *data;
  size_t len;
};

/* The template directory: snapshot at 30, entries 31..120 (terms 1 then 2)
 * in 4 KiB segments, metadata term 2 vote n3. */
static struct file files[64];
static int nfiles;
static char *tdir;

#define SNAP_AT 30
#define LAST 120
static uint64_t term_of(uint64_t i) {
  return i <= 70 ? 1 : 2;
}

static void write_file(const char *dir, const struct file *f) {
  char p[600];
  join(p, sizeof p, dir, f->name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, f->data, f->len) != (ssize_t)f->len) abort();
  close(fd);
}

/* Put the template back into tdir (removing whatever else is there). */
static void restore(void) {
  DIR *d = opendir(tdir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char p[600];
    join(p, sizeof p, tdir, de->d_name);
    unlink(p);
  }
  closedir(d);
  for (int i = 0; i < nfiles; i++)
    write_file(tdir, &files[i]);
}

static struct file *find(const char *prefix, int last) {
  struct file *r = NULL;
  for (int i = 0; i < nfiles; i++)
    if (strncmp(files[i].name, prefix, strlen(prefix)) == 0) {
      if (!r || (last ? strcmp(files[i].name, r->name) > 0
                      : strcmp(files[i].name, r->name) < 0))
        r = &files[i];
    }
  return r;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const struct file *)a)->name, ((const struct file *)b)->name);
}

static void build_template(void) {
  tdir = tmp_dir();
  struct store_opts o = {4096, 0, NULL};
  struct store *s;
  char err[STORE_ERR_MAX];
  if (store_open(&loop, tdir, &o, &s, err)) abort();
  struct waitc w = {0};
  int n = 0;
  for (uint64_t i = 1; i <= LAST; i += 10) {
    if (append_range(s, i, 10, term_of(i), &w)) abort();
    run_until(&loop, &w.calls, ++n);
  }
  uint8_t data[2000];
  payload_fill(data, sizeof data, SNAP_AT, 1);
  struct snap_writer *sw;
  if (store_snap_begin(s, SNAP_AT, 1, "cfg", 3, &sw, err) ||
      store_snap_write(s, sw, 0, data, sizeof data, err) ||
      store_snap_finish(s, sw, err))
    abort();
  if (store_save_meta(s, 2, "n3", 5, "conf", 4, err)) abort();
  close_store(&loop, s);
  DIR *d = opendir(tdir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' || strcmp(de->d_name, "LOCK") == 0) continue;
    struct file *f = &files[nfiles++];
    copy_str(f->name, sizeof f->name, de->d_name);
    char p[600];
    join(p, sizeof p, tdir, de->d_name);
    FILE *fp = fopen(p, "rb");
    fseek(fp, 0, SEEK_END);
    f->len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->data = malloc(f->len + 1);
    if (fread(f->data, 1, f->len, fp) != f->len) abort();
    fclose(fp);
  }
  closedir(d);
  qsort(files, (size_t)nfiles, sizeof files[0], cmp_name);
}

static struct fault_io fio;

static int try_open(struct store **s, char *err) {
  fault_init(&fio);
  fio.nosync = 1;
  struct store_opts o = {4096, 0, &fio.io};
  return store_open(&loop, tdir, &o, s, err);
}

/* Everything stored is there, exactly. */
static void check_full(struct store *s, uint64_t last) {
  const struct store_snapshot *sn = store_snapshot(s);
  CHECK(sn != NULL);
  CHECK_INT(sn->last_index, ==, SNAP_AT);
  uint8_t data[2000];
  payload_fill(data, sizeof data, SNAP_AT, 1);
  uint8_t got[sizeof data];
  CHECK(sn->data_len == sizeof data);
  CHECK_INT(snap_pread(sn, 0, got, sizeof got), ==, 0);
  CHECK(!memcmp(got, data, sizeof data));
  CHECK_INT(store_first_index(s), ==, SNAP_AT + 1);
  CHECK_INT(store_last_index(s), ==, last);
  const struct store_entry *e;
  CHECK_INT(store_entries(s, SNAP_AT + 1, last, &e), ==, 0);
  for (uint64_t i = SNAP_AT + 1; i <= last; i++)
    CHECK(entry_ok(&e[i - SNAP_AT - 1], i, term_of(i)));
  const struct store_meta *m = store_meta(s);
  CHECK_INT(m->term, ==, 2);
  CHECK(strcmp(m->vote, "n3") == 0);
  CHECK(m->config_len == 4 && !memcmp(m->config, "conf", 4));
}

struct rec {
  uint64_t index, off, size;
};
static struct rec recs[200];
static int nrecs;

static int collect(void *ud, uint64_t index, uint64_t term, uint8_t type,
                   const uint8_t *payload, uint32_t len, uint64_t offset) {
  (void)ud, (void)term, (void)type, (void)payload;
  recs[nrecs].index = index;
  recs[nrecs].off = offset;
  recs[nrecs].size = rec_size(len);
  nrecs++;
  return 0;
}

TEST(cut_at_every_byte_of_the_last_records) {
  struct file *last = find(SEG_PREFIX, 1);
  struct seg_scan sc;
  char err[STORE_ERR_MAX];
  nrecs = 0;
  CHECK_INT(seg_scan(last->data, last->len, last->name, 1, 0, &sc, collect,
                     NULL, err),
            ==, 0);
  CHECK_INT(sc.last, ==, LAST);
  CHECK_INT(nrecs, >=, 3);
  uint64_t from = recs[nrecs - 3].off;
  uint64_t to = recs[nrecs - 1].off + recs[nrecs - 1].size;
  struct file saved = *last;
  int cases = 0;
  for (uint64_t y = from; y <= to; y++) {
    for (int variant = 0; variant < 2; variant++) {
      /* variant 0: the file ends at y; 1: zeros from y (preallocated) */
      uint8_t *copy = malloc(saved.len);
      memcpy(copy, saved.data, saved.len);
      if (variant) memset(copy + y, 0, saved.len - y);
      last->data = copy;
      last->len = variant ? saved.len : y;
      restore();
      *last = saved;
      free(copy);
      uint64_t expect = recs[nrecs - 4 >= 0 ? nrecs - 4 : 0].index;
      int boundary = 0;
      for (int k = nrecs - 3; k < nrecs; k++) {
        if (recs[k].off + recs[k].size <= y) expect = recs[k].index;
        if (recs[k].off + recs[k].size == y || recs[k].off == y) boundary = 1;
      }
      struct store *s;
      int rc = try_open(&s, err);
      if (rc)
        printf("    y=%llu variant %d: %s\n", (unsigned long long)y, variant,
               err);
      CHECK_INT(rc, ==, 0);
      check_full(s, expect);
      CHECK_INT(store_durable_index(s), ==, expect);
      if (!boundary) CHECK(strstr(store_notice(s), "torn") != NULL);
      /* Appending after the cut works and survives the next start. */
      struct waitc w = {0};
      CHECK_INT(append_range(s, expect + 1, 1, 2, &w), ==, 0);
      run_until(&loop, &w.calls, 1);
      close_store(&loop, s);
      if (y % 7 == 0) {
        CHECK_INT(try_open(&s, err), ==, 0);
        CHECK_INT(store_last_index(s), ==, expect + 1);
        CHECK(strstr(store_notice(s), "torn") == NULL);
        close_store(&loop, s);
      }
      cases++;
    }
  }
  printf("    %d cut positions recovered exactly\n", cases);
}

/* Flip one bit of file f at byte pos; open; judge. Returns 1 if refused. */
static int flip_case(struct file *f, size_t pos, int bit) {
  char err[STORE_ERR_MAX] = "";
  f->data[pos] ^= (uint8_t)(1u << bit);
  restore();
  f->data[pos] ^= (uint8_t)(1u << bit);
  struct store *s;
  int rc = try_open(&s, err);
  if (rc == 0) {
    check_full(s, LAST);
    close_store(&loop, s);
    return 0;
  }
  if (!strstr(err, f->name) ||
      (rc != STORE_ECORRUPT && rc != STORE_EVERSION && rc != STORE_EMISSING))
    printf("    %s byte %zu bit %d: rc %d: %s\n", f->name, pos, bit, rc, err);
  CHECK(rc == STORE_ECORRUPT || rc == STORE_EVERSION || rc == STORE_EMISSING);
  CHECK(strstr(err, f->name) != NULL);
  CHECK(strstr(err, "offset") != NULL);
  return 1;
}

TEST(bit_flips_in_every_kind_of_file) {
  uint64_t x = 0x2545F4914F6CDD1Dull;
  int refused = 0, unharmed = 0;
  for (int i = 0; i < nfiles; i++) {
    struct file *f = &files[i];
    /* Every header byte, then random positions; in the last segment also
     * positions in the zero tail after the records. */
    size_t hdr = f->len < 64 ? f->len : 64;
    int n = strncmp(f->name, SEG_PREFIX, strlen(SEG_PREFIX)) == 0 ? 60 : 150;
    for (size_t k = 0; k < hdr + (size_t)n; k++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      size_t pos = k < hdr ? k : (size_t)(x % f->len);
      int r = flip_case(f, pos, (int)((x >> 20) % 8));
      refused += r;
      unharmed += !r;
    }
  }
  printf("    %d flips refused with a message, %d harmless\n", refused,
         unharmed);
  CHECK(refused > 0);
}

static void patch_version(struct file *f, size_t at, size_t crc_at,
                          size_t crc_len, int trailing) {
  put_u32(f->data + at, 2);
  if (trailing) crc_at = f->len - 4, crc_len = f->len - 4;
  put_u32(f->data + crc_at, crc32c(0, f->data, crc_len));
}

TEST(unknown_format_version_is_refused) {
  struct {
    const char *prefix;
    size_t crc_at, crc_len;
    int trailing;
  } kinds[] = {
      {SEG_PREFIX, 28, 28, 0}, {"snapshot-", 60, 60, 0}, {"metadata", 0, 0, 1}};
  for (int k = 0; k < 3; k++) {
    struct file *f = find(kinds[k].prefix, 0);
    uint8_t *orig = malloc(f->len);
    memcpy(orig, f->data, f->len);
    patch_version(f, 8, kinds[k].crc_at, kinds[k].crc_len, kinds[k].trailing);
    restore();
    memcpy(f->data, orig, f->len);
    free(orig);
    struct store *s;
    char err[STORE_ERR_MAX];
    CHECK_INT(try_open(&s, err), ==, STORE_EVERSION);
    CHECK(strstr(err, f->name) != NULL);
    CHECK(strstr(err, "version 2") != NULL);
  }
}

static int open_without(const char *name, char *err) {
  restore();
  char p[600];
  join(p, sizeof p, tdir, name);
  unlink(p);
  struct store *s;
  int rc = try_open(&s, err);
  if (rc == 0) close_store(&loop, s);
  return rc;
}

TEST(missing_files_are_refused) {
  char err[STORE_ERR_MAX];
  /* A segment in the middle. */
  int nseg = 0;
  for (int i = 0; i < nfiles; i++)
    nseg += strncmp(files[i].name, SEG_PREFIX, strlen(SEG_PREFIX)) == 0;
  CHECK_INT(nseg, >=, 3);
  struct file *first = find(SEG_PREFIX, 0);
  CHECK_INT(open_without(first[1].name, err), ==, STORE_EMISSING);
  CHECK(strstr(err, "missing") != NULL);
  CHECK(strstr(err, first[2].name) != NULL);
  /* The first segment: a gap after the snapshot. */
  CHECK_INT(open_without(first->name, err), ==, STORE_EMISSING);
  CHECK(strstr(err, "missing") != NULL);
  /* The snapshot: the log does not start at 1. */
  CHECK_INT(open_without(find("snapshot-", 0)->name, err), ==, STORE_EMISSING);
  CHECK(strstr(err, "no snapshot") != NULL);
  /* A segment renamed to take the place of a missing one. */
  restore();
  char from[600], to[600];
  join(from, sizeof from, tdir, first[2].name);
  join(to, sizeof to, tdir, first[1].name);
  CHECK_INT(rename(from, to), ==, 0);
  struct store *s;
  CHECK_INT(try_open(&s, err), ==, STORE_ECORRUPT);
  CHECK(strstr(err, first[1].name) != NULL);
  CHECK(strstr(err, "name") != NULL);
  /* The metadata. */
  CHECK_INT(open_without("metadata", err), ==, STORE_EMISSING);
  CHECK(strstr(err, "metadata") != NULL);
  /* The newest segment: the one before it is sealed, so that is noticed
   * too. */
  struct file *newest = find(SEG_PREFIX, 1);
  CHECK_INT(open_without(newest->name, err), ==, STORE_EMISSING);
  CHECK(strstr(err, "sealed") != NULL);
  CHECK(strstr(err, newest[-1].name) != NULL);
}

int main(void) {
  uv_loop_init(&loop);
  build_template();
  RUN(cut_at_every_byte_of_the_last_records);
  RUN(bit_flips_in_every_kind_of_file);
  RUN(unknown_format_version_is_refused);
  RUN(missing_files_are_refused);
  rm_rf(tdir);
  free(tdir);
  for (int i = 0; i < nfiles; i++)
    free(files[i].data);
  uv_loop_close(&loop);
  return harness_done();
}
