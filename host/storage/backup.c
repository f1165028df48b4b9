/*
 * backup.c — producing, checking and restoring backup files (backup.h).
 */
#include "storage/backup.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/crc32c.h"
#include "storage/error.h"
#include "storage/format.h"
#include "storage/io.h"
#include "storage/meta.h"
#include "storage/snap.h"

void backup_info_free(struct backup_info *b) {
  free(b->config);
  free(b->info);
  memset(b, 0, sizeof *b);
}

static uint32_t chunk_count(uint64_t data_len, uint32_t chunk) {
  return (uint32_t)((data_len + chunk - 1) / chunk);
}

/* ---- the source ---- */

enum { SRC_HEADER, SRC_CHUNKS, SRC_TRAILER, SRC_DONE };

struct backup_src {
  int fd;
  char path[PATH_MAX];
  int state;
  uint64_t index, term, data_len;
  uint32_t chunk, chunks, snap_crc;
  uint64_t data_at; /* file offset of the data in the snapshot file */
  uint64_t sent;    /* data bytes produced so far */
  uint32_t run_snap, run_data; /* running checksums */
  uint8_t *buf;                /* one piece */
  size_t buf_cap;
  uint8_t *header;
  size_t header_len;
};

static int src_bad(char *err, const char *path, const char *what) {
  store_errf(err,
             "%s: %s. The snapshot file is damaged: take a new snapshot "
             "(ctl snapshot) or back up another member.",
             path, what);
  return STORE_ECORRUPT;
}

static int read_at(int fd, void *buf, size_t n, uint64_t at) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)at);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return -EIO; /* shorter than its header says */
    p += r;
    n -= (size_t)r;
    at += (uint64_t)r;
  }
  return 0;
}

int backup_src_open(const char *snap_path, const void *info, size_t info_len,
                    uint32_t chunk, struct backup_src **out, char *err) {
  *out = NULL;
  if (chunk == 0) chunk = BACKUP_DEFAULT_CHUNK;
  if (chunk < BACKUP_MIN_CHUNK || chunk > BACKUP_MAX_CHUNK ||
      info_len > BACKUP_MAX_INFO) {
    store_errf(err, "backup: chunk size or info out of range");
    return STORE_EINVAL;
  }
  int fd = open(snap_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    store_errf(err, "%s: cannot open: %s", snap_path, strerror(e));
    return store_errno_code(e);
  }
  struct stat st;
  uint8_t h[SNAP_HEADER_SIZE];
  int rc = fstat(fd, &st) != 0 ? -errno : read_at(fd, h, sizeof h, 0);
  if (rc) {
    close(fd);
    if (rc == -EIO) return src_bad(err, snap_path, "shorter than its header");
    store_errf(err, "%s: cannot read: %s", snap_path, strerror(-rc));
    return store_errno_code(-rc);
  }
  uint64_t clen = get_u64(h + 32), dlen = get_u64(h + 40);
  if (memcmp(h, SNAP_MAGIC, 8) != 0 || get_u32(h + 60) != crc32c(0, h, 60)) {
    close(fd);
    return src_bad(err, snap_path, "bad snapshot header");
  }
  if (clen > BACKUP_MAX_CONFIG ||
      (uint64_t)st.st_size != SNAP_HEADER_SIZE + clen + dlen) {
    close(fd);
    return src_bad(err, snap_path,
                   "lengths in the header differ from the file");
  }
  struct backup_src *b = calloc(1, sizeof *b);
  size_t hl = BACKUP_FIXED + (size_t)clen + info_len + 4;
  if (b) b->header = malloc(hl);
  if (b) b->buf_cap = (size_t)chunk + 4;
  if (b) b->buf = malloc(b->buf_cap);
  if (!b || !b->header || !b->buf) {
    if (b) {
      free(b->header);
      free(b->buf);
    }
    free(b);
    close(fd);
    return STORE_ENOMEM;
  }
  b->fd = fd;
  snprintf(b->path, sizeof b->path, "%s", snap_path);
  b->index = get_u64(h + 16);
  b->term = get_u64(h + 24);
  b->data_len = dlen;
  b->snap_crc = get_u32(h + 48);
  b->chunk = chunk;
  b->chunks = chunk_count(dlen, chunk);
  b->data_at = SNAP_HEADER_SIZE + clen;
  uint8_t *p = b->header;
  memset(p, 0, BACKUP_FIXED);
  memcpy(p, BACKUP_MAGIC, 8);
  put_u32(p + 8, BACKUP_VERSION);
  put_u32(p + 12, (uint32_t)hl);
  put_u64(p + 16, b->index);
  put_u64(p + 24, b->term);
  put_u64(p + 32, dlen);
  put_u32(p + 40, chunk);
  put_u32(p + 44, (uint32_t)clen);
  put_u32(p + 48, (uint32_t)info_len);
  put_u32(p + 52, b->snap_crc);
  put_u32(p + 60, crc32c(0, p, 60));
  if (clen && (rc = read_at(fd, p + BACKUP_FIXED, (size_t)clen,
                            SNAP_HEADER_SIZE)) != 0) {
    backup_src_close(b);
    if (rc == -EIO) return src_bad(err, snap_path, "shorter than its header");
    store_errf(err, "%s: cannot read: %s", snap_path, strerror(-rc));
    return store_errno_code(-rc);
  }
  if (info_len) memcpy(p + BACKUP_FIXED + clen, info, info_len);
  put_u32(p + hl - 4, crc32c(0, p, hl - 4));
  b->header_len = hl;
  b->run_snap = crc32c(0, p + BACKUP_FIXED, (size_t)clen);
  b->run_data = 0;
  *out = b;
  return 0;
}

uint64_t backup_src_size(const struct backup_src *b) {
  return b->header_len + b->data_len + 4ull * b->chunks + BACKUP_TRAILER;
}

int backup_src_next(struct backup_src *b, const uint8_t **piece, size_t *len,
                    char *err) {
  *piece = NULL;
  *len = 0;
  switch (b->state) {
    case SRC_HEADER:
      *piece = b->header;
      *len = b->header_len;
      b->state = b->chunks ? SRC_CHUNKS : SRC_TRAILER;
      return 0;
    case SRC_CHUNKS: {
      uint64_t left = b->data_len - b->sent;
      size_t n = left < b->chunk ? (size_t)left : b->chunk;
      assert(n > 0);
      int rc = read_at(b->fd, b->buf, n, b->data_at + b->sent);
      if (rc == -EIO) return src_bad(err, b->path, "shorter than its header");
      if (rc) {
        store_errf(err, "%s: cannot read: %s", b->path, strerror(-rc));
        return store_errno_code(-rc);
      }
      uint32_t c = crc32c(0, b->buf, n);
      b->run_snap = crc32c(b->run_snap, b->buf, n);
      b->run_data = crc32c(b->run_data, b->buf, n);
      put_u32(b->buf + n, c);
      b->sent += n;
      if (b->sent == b->data_len) b->state = SRC_TRAILER;
      *piece = b->buf;
      *len = n + 4;
      return 0;
    }
    case SRC_TRAILER: {
      if (b->run_snap != b->snap_crc)
        return src_bad(err, b->path,
                       "checksum mismatch in the configuration or data");
      uint8_t *t = b->buf;
      memcpy(t, BACKUP_TRAILER_MAGIC, 8);
      put_u64(t + 8, b->data_len);
      put_u32(t + 16, b->chunks);
      put_u32(t + 20, b->run_data);
      put_u32(t + 24, crc32c(0, t, 24));
      b->state = SRC_DONE;
      *piece = t;
      *len = BACKUP_TRAILER;
      return 0;
    }
    default:
      return 0;
  }
}

void backup_src_close(struct backup_src *b) {
  if (!b) return;
  if (b->fd >= 0) close(b->fd);
  free(b->header);
  free(b->buf);
  free(b);
}

/* ---- reading ---- */

static int bad(char *err, const char *path, uint64_t off, const char *what) {
  store_errf(err,
             "%s: %s at offset %" PRIu64
             ". This backup cannot be used: take a new one "
             "(ctl snapshot save) or use another copy.",
             path, what, off);
  return STORE_ECORRUPT;
}

/* Reads exactly n bytes at the current position; -1 and a message naming
 * `what` when the file ends first. */
static int read_exact(int fd, void *buf, size_t n, uint64_t at,
                      const char *path, const char *what, char *err) {
  int rc = read_at(fd, buf, n, at);
  if (rc == -EIO) {
    char msg[160];
    snprintf(msg, sizeof msg, "file truncated in the %s", what);
    return bad(err, path, at, msg);
  }
  if (rc) {
    store_errf(err, "%s: cannot read: %s", path, strerror(-rc));
    return store_errno_code(-rc);
  }
  return 0;
}

int backup_read(const char *path, backup_chunk_cb cb, void *data,
                struct backup_info *out, char *err) {
  memset(out, 0, sizeof *out);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    store_errf(err, "%s: cannot open: %s", path, strerror(e));
    return store_errno_code(e);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    store_errf(err, "%s: cannot stat: %s", path, strerror(e));
    return store_errno_code(e);
  }
  uint64_t size = (uint64_t)st.st_size;
  uint8_t h[BACKUP_FIXED];
  uint8_t *buf = NULL;
  int rc;
  if (size < 8) {
    rc = bad(err, path, size, "file truncated in the header (magic)");
    goto done;
  }
  if ((rc = read_exact(fd, h, 8, 0, path, "header", err)) != 0) goto done;
  if (memcmp(h, BACKUP_MAGIC, 8) != 0) {
    rc = memcmp(h, SNAP_MAGIC, 8) == 0
             ? bad(err, path, 0,
                   "this is a server's snapshot file, not a backup (make "
                   "backups with ctl snapshot save)")
             : bad(err, path, 0, "not a copycat-lua backup (bad magic)");
    goto done;
  }
  if (size < BACKUP_FIXED) {
    rc = bad(err, path, size, "file truncated in the header");
    goto done;
  }
  if ((rc = read_exact(fd, h, BACKUP_FIXED, 0, path, "header", err)) != 0)
    goto done;
  if (get_u32(h + 60) != crc32c(0, h, 60)) {
    rc = bad(err, path, 60, "header checksum mismatch");
    goto done;
  }
  if (get_u32(h + 8) != BACKUP_VERSION) {
    store_errf(err,
               "%s: backup format version %u at offset 8, this program "
               "reads version %d. Use the copycat-lua release that wrote it.",
               path, get_u32(h + 8), BACKUP_VERSION);
    rc = STORE_EVERSION;
    goto done;
  }
  out->index = get_u64(h + 16);
  out->term = get_u64(h + 24);
  out->data_len = get_u64(h + 32);
  out->chunk_size = get_u32(h + 40);
  uint32_t clen = get_u32(h + 44), ilen = get_u32(h + 48);
  out->snap_crc = get_u32(h + 52);
  uint32_t hl = get_u32(h + 12);
  if (out->index == 0 || out->chunk_size < BACKUP_MIN_CHUNK ||
      out->chunk_size > BACKUP_MAX_CHUNK || clen > BACKUP_MAX_CONFIG ||
      ilen > BACKUP_MAX_INFO ||
      hl != (uint64_t)BACKUP_FIXED + clen + ilen + 4) {
    rc = bad(err, path, 12, "impossible values in the header");
    goto done;
  }
  out->chunks = chunk_count(out->data_len, out->chunk_size);
  out->file_size = hl + out->data_len + 4ull * out->chunks + BACKUP_TRAILER;
  if (size < hl) {
    rc = bad(err, path, size, "file truncated in the header");
    goto done;
  }
  size_t cap = (size_t)out->chunk_size + 4;
  if (cap < hl) cap = hl;
  buf = malloc(cap);
  out->config = malloc(clen ? clen : 1);
  out->info = malloc(ilen ? ilen : 1);
  if (!buf || !out->config || !out->info) {
    rc = STORE_ENOMEM;
    goto done;
  }
  if ((rc = read_exact(fd, buf, hl, 0, path, "header", err)) != 0) goto done;
  if (get_u32(buf + hl - 4) != crc32c(0, buf, hl - 4)) {
    rc = bad(err, path, hl - 4,
             "header checksum mismatch (configuration or info)");
    goto done;
  }
  memcpy(out->config, buf + BACKUP_FIXED, clen);
  out->config_len = clen;
  memcpy(out->info, buf + BACKUP_FIXED + clen, ilen);
  out->info_len = ilen;
  if (size < out->file_size) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "file truncated: %" PRIu64 " bytes, the header says %" PRIu64,
             size, out->file_size);
    rc = bad(err, path, size, msg);
    goto done;
  }
  if (size > out->file_size) {
    rc = bad(err, path, out->file_size,
             "unexpected bytes after the end of the backup");
    goto done;
  }
  uint64_t at = hl, off = 0;
  uint32_t all = 0;
  for (uint32_t k = 0; k < out->chunks; k++) {
    uint64_t left = out->data_len - off;
    size_t n = left < out->chunk_size ? (size_t)left : out->chunk_size;
    if ((rc = read_exact(fd, buf, n + 4, at, path, "data", err)) != 0)
      goto done;
    if (get_u32(buf + n) != crc32c(0, buf, n)) {
      char msg[120];
      snprintf(msg, sizeof msg, "checksum mismatch in data chunk %" PRIu32, k);
      rc = bad(err, path, at, msg);
      goto done;
    }
    all = crc32c(all, buf, n);
    if (cb && (rc = cb(data, off, buf, n, err)) != 0) goto done;
    at += n + 4;
    off += n;
  }
  uint8_t t[BACKUP_TRAILER];
  if ((rc = read_exact(fd, t, sizeof t, at, path, "trailer", err)) != 0)
    goto done;
  if (memcmp(t, BACKUP_TRAILER_MAGIC, 8) != 0 ||
      get_u32(t + 24) != crc32c(0, t, 24) || get_u64(t + 8) != out->data_len ||
      get_u32(t + 16) != out->chunks) {
    rc = bad(err, path, at, "damaged trailer");
    goto done;
  }
  if (get_u32(t + 20) != all) {
    rc = bad(err, path, at + 20, "checksum of the whole data mismatch");
    goto done;
  }
  out->data_crc = all;
  rc = 0;
done:
  free(buf);
  close(fd);
  if (rc) {
    uint64_t keep_size = out->file_size;
    backup_info_free(out);
    out->file_size = keep_size;
  }
  return rc;
}

/* ---- restoring ---- */

/* mkdir -p (the directories' own durability is not critical here: the
 * files written inside are fsynced with their directory). */
static int make_dirs(const char *dir, char *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != 0) continue;
    char saved = *p;
    *p = 0;
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
      int e = errno;
      store_errf(err, "%s: cannot create the directory: %s", path, strerror(e));
      return store_errno_code(e);
    }
    *p = saved;
    if (!saved) break;
  }
  return 0;
}

/* 0 when dir holds no server data (it may hold other files). */
static int check_empty(const char *dir, char *err) {
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    store_errf(err, "%s: cannot read the directory: %s", dir, strerror(e));
    return store_errno_code(e);
  }
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (strcmp(n, META_FILE) == 0 || strncmp(n, SNAP_PREFIX, 9) == 0 ||
        strncmp(n, "segment-", 8) == 0 || strcmp(n, BACKUP_CLUSTER_FILE) == 0) {
      store_errf(err,
                 "%s already holds a server's data (%s): restore into a new, "
                 "empty directory, or move this one away first",
                 dir, n);
      rc = STORE_EINVAL;
      break;
    }
  }
  closedir(d);
  return rc;
}

struct restore_ctx {
  struct snap_writer *w;
};

static int restore_chunk(void *data, uint64_t offset, const void *buf,
                         size_t len, char *err) {
  struct restore_ctx *c = data;
  return snap_write(c->w, offset, buf, len, err);
}

int backup_restore(const char *path, const char *dir, const void *config,
                   size_t config_len, const char *cluster,
                   struct backup_info *out, char *err) {
  memset(out, 0, sizeof *out);
  struct store_io io;
  store_io_default(&io);
  /* Check everything before creating anything. */
  int rc = backup_read(path, NULL, NULL, out, err);
  if (rc) return rc;
  if ((rc = make_dirs(dir, err)) != 0 || (rc = check_empty(dir, err)) != 0)
    return rc;
  struct restore_ctx c = {0};
  rc = snap_begin(&io, dir, out->index, out->term, config, config_len, &c.w,
                  err);
  if (rc) return rc;
  struct backup_info again;
  rc = backup_read(path, restore_chunk, &c, &again, err);
  if (rc == 0 && (again.index != out->index || again.data_crc != out->data_crc))
    rc = bad(err, path, 0, "the file changed while it was restored");
  backup_info_free(&again);
  if (rc) {
    snap_abort(c.w);
    return rc;
  }
  if ((rc = snap_finish_file(c.w, err)) != 0) return rc;
  struct store_meta m;
  char novote[1] = "";
  memset(&m, 0, sizeof m);
  m.term = out->term;
  m.vote = novote;
  m.config_index = out->index;
  m.config = (uint8_t *)(uintptr_t)config;
  m.config_len = config_len;
  if ((rc = meta_save(&io, dir, &m, err)) != 0) return rc;
  rc = io_replace_file(&io, dir, BACKUP_CLUSTER_FILE, cluster, strlen(cluster));
  if (rc) {
    store_errf(err, "%s/" BACKUP_CLUSTER_FILE ": cannot write: %s", dir,
               strerror(-rc));
    return store_errno_code(-rc);
  }
  return 0;
}
