/*
 * snap.c — writing, finishing and loading snapshot files.
 */
#include "storage/snap.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "storage/crc32c.h"
#include "storage/error.h"
#include "storage/format.h"

struct snap_writer {
  struct store_io *io;
  int memory; /* 1: no file; data kept in `mem` */
  int fd;
  char dir[PATH_MAX];
  char tmp[PATH_MAX + 80];
  uint64_t last_index, last_term;
  uint8_t *config;
  size_t config_len;
  uint64_t size;        /* data bytes received (no holes below) */
  uint32_t rx_crc;      /* crc32c of the configuration and the bytes received,
                           as they were handed over (checked against the file) */
  uint32_t rx_data_crc; /* crc32c of the bytes received alone */
  uint8_t *mem;
  size_t mem_cap;
};

void snap_free(struct store_snapshot *s) {
  free(s->config);
  free(s->data);
  if (s->io && s->fd >= 0) s->io->close(s->io, s->fd);
  memset(s, 0, sizeof *s);
  s->fd = -1;
}

void snap_name(char *out, size_t size, uint64_t last_index) {
  snprintf(out, size, SNAP_PREFIX "%020" PRIu64, last_index);
}

int snap_parse_name(const char *name, uint64_t *index) {
  size_t plen = strlen(SNAP_PREFIX);
  if (strncmp(name, SNAP_PREFIX, plen) != 0 || strlen(name + plen) != 20)
    return 0;
  uint64_t v = 0;
  for (const char *d = name + plen; *d; d++) {
    if (*d < '0' || *d > '9') return 0;
    v = v * 10 + (uint64_t)(*d - '0');
  }
  *index = v;
  return 1;
}

static int bad(char *err, const char *path, size_t off, const char *what) {
  store_errf(err,
             "%s: %s at offset %zu. This snapshot cannot be used: move the "
             "data directory away and let the server rejoin the cluster to "
             "receive a snapshot from the leader.",
             path, what, off);
  return STORE_ECORRUPT;
}

/* Checksum of `len` bytes of fd from `at`, read a chunk at a time, added
 * to *crc and (if not NULL) to *also. */
static int crc_of(struct store_io *io, int fd, uint64_t at, uint64_t len,
                  uint32_t *crc, uint32_t *also) {
  enum { STEP = 1 << 20 };
  uint8_t *buf = malloc(STEP);
  if (!buf) return -ENOMEM;
  int rc = 0;
  for (uint64_t done = 0; done < len;) {
    size_t n = len - done < STEP ? (size_t)(len - done) : STEP, got = 0;
    rc = io_pread_all(io, fd, buf, n, (off_t)(at + done), &got);
    if (rc == 0 && got != n) rc = -EIO;
    if (rc) break;
    *crc = crc32c(*crc, buf, n);
    if (also) *also = crc32c(*also, buf, n);
    done += n;
  }
  free(buf);
  return rc;
}

int snap_load(struct store_io *io, const char *path, struct store_snapshot *out,
              char *err) {
  memset(out, 0, sizeof *out);
  out->fd = -1;
  int fd = io->open(io, path, O_RDONLY, 0);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    if (fd >= 0) io->close(io, fd);
    store_errf(err,
               "%s: cannot read: %s. Check the file's "
               "permissions and the disk.",
               path, strerror(e));
    return store_errno_code(e);
  }
  size_t len = (size_t)st.st_size;
  uint8_t buf[SNAP_HEADER_SIZE];
  size_t got = 0;
  int rc =
      io_pread_all(io, fd, buf, len < sizeof buf ? len : sizeof buf, 0, &got);
  if (rc) {
    io->close(io, fd);
    store_errf(err, "%s: cannot read: %s. Check the disk.", path,
               strerror(-rc));
    return store_errno_code(-rc);
  }
  uint64_t clen = 0, dlen = 0;
  if (len < SNAP_HEADER_SIZE) {
    rc = bad(err, path, len, "file shorter than its 64-byte header");
  } else if (memcmp(buf, SNAP_MAGIC, 8) != 0) {
    rc = bad(err, path, 0, "not a snapshot file (bad magic)");
  } else if (get_u32(buf + 60) != crc32c(0, buf, 60)) {
    rc = bad(err, path, 60, "header checksum mismatch");
  } else if (get_u32(buf + 8) != FORMAT_VERSION) {
    store_errf(err,
               "%s: snapshot format version %u at offset 8, this program "
               "reads version %d. Run the copycat-lua release that wrote "
               "this data directory.",
               path, get_u32(buf + 8), FORMAT_VERSION);
    rc = STORE_EVERSION;
  } else {
    clen = get_u64(buf + 32);
    dlen = get_u64(buf + 40);
    if (get_u32(buf + 12) != SNAP_HEADER_SIZE || clen > len || dlen > len ||
        SNAP_HEADER_SIZE + clen + dlen != len)
      rc = bad(err, path, 32, "lengths in the header differ from the file");
  }
  uint32_t crc = 0, dcrc = 0;
  if (rc == 0) {
    int e = crc_of(io, fd, SNAP_HEADER_SIZE, clen, &crc, NULL);
    if (e == 0) e = crc_of(io, fd, SNAP_HEADER_SIZE + clen, dlen, &crc, &dcrc);
    if (e == -ENOMEM) {
      rc = STORE_ENOMEM;
    } else if (e) {
      store_errf(err, "%s: cannot read: %s. Check the disk.", path,
                 strerror(-e));
      rc = store_errno_code(-e);
    } else if (crc != get_u32(buf + 48)) {
      rc = bad(err, path, SNAP_HEADER_SIZE,
               "checksum mismatch in the configuration or data");
    }
  }
  if (rc == 0) {
    out->config = malloc(clen ? clen : 1);
    if (!out->config) {
      rc = STORE_ENOMEM;
    } else if ((rc = io_pread_all(io, fd, out->config, clen, SNAP_HEADER_SIZE,
                                  &got)) != 0 ||
               got != clen) {
      rc = bad(err, path, SNAP_HEADER_SIZE, "configuration unreadable");
    }
  }
  if (rc) {
    free(out->config);
    out->config = NULL;
    io->close(io, fd);
    return rc;
  }
  out->last_index = get_u64(buf + 16);
  out->last_term = get_u64(buf + 24);
  out->config_len = clen;
  out->data_len = dlen;
  out->data_crc = dcrc;
  out->io = io;
  out->fd = fd;
  return 0;
}

int snap_pread(const struct store_snapshot *s, uint64_t off, void *buf,
               size_t len) {
  if (off > s->data_len || len > s->data_len - off) return -EINVAL;
  if (!s->io) {
    if (len) memcpy(buf, s->data + off, len);
    return 0;
  }
  size_t got = 0;
  int rc = io_pread_all(s->io, s->fd, buf, len,
                        (off_t)(SNAP_HEADER_SIZE + s->config_len + off), &got);
  if (rc == 0 && got != len) rc = -EIO;
  return rc;
}

int snap_map(const struct store_snapshot *s, const uint8_t **data,
             void **cookie) {
  *cookie = NULL;
  if (!s->io) {
    *data = s->data;
    return 0;
  }
  size_t total = SNAP_HEADER_SIZE + s->config_len + s->data_len;
  void *p = mmap(NULL, total, PROT_READ, MAP_SHARED, s->fd, 0);
  if (p == MAP_FAILED) return -errno;
  /* Read ahead: a restore reads it all, once, in order. */
  madvise(p, total, MADV_SEQUENTIAL);
  *cookie = p;
  *data = (const uint8_t *)p + SNAP_HEADER_SIZE + s->config_len;
  return 0;
}

void snap_unmap(const struct store_snapshot *s, void *cookie) {
  if (cookie) munmap(cookie, SNAP_HEADER_SIZE + s->config_len + s->data_len);
}

static int io_fail(char *err, const char *path, const char *op, int e) {
  store_errf(err,
             "%s: %s failed: %s. The snapshot was not stored; free disk "
             "space or fix the disk, then take or request it again.",
             path, op, strerror(e));
  return store_errno_code(e);
}

int snap_begin(struct store_io *io, const char *dir, uint64_t last_index,
               uint64_t last_term, const void *config, size_t config_len,
               struct snap_writer **out, char *err) {
  if (last_index == 0) {
    store_errf(err, "snapshot index must be >= 1");
    return STORE_EINVAL;
  }
  struct snap_writer *w = calloc(1, sizeof *w);
  if (!w) return STORE_ENOMEM;
  w->io = io;
  w->fd = -1;
  w->memory = dir == NULL;
  w->last_index = last_index;
  w->last_term = last_term;
  w->config_len = config_len;
  w->config = malloc(config_len ? config_len : 1);
  if (!w->config) {
    free(w);
    return STORE_ENOMEM;
  }
  if (config_len) memcpy(w->config, config, config_len);
  w->rx_crc = crc32c(0, w->config, config_len);
  if (!w->memory) {
    char name[64];
    snap_name(name, sizeof name, last_index);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    snprintf(w->tmp, sizeof w->tmp, "%s/%s.tmp", dir, name);
    w->fd = io->open(io, w->tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int rc = 0;
    if (w->fd < 0) {
      rc = io_fail(err, w->tmp, "create", errno);
    } else if ((rc = io_pwrite_all(io, w->fd, w->config, config_len,
                                   SNAP_HEADER_SIZE)) != 0) {
      rc = io_fail(err, w->tmp, "write", -rc);
    }
    if (rc) {
      snap_abort(w);
      return rc;
    }
  }
  *out = w;
  return 0;
}

int snap_write(struct snap_writer *w, uint64_t offset, const void *buf,
               size_t len, char *err) {
  if (offset > w->size) {
    store_errf(err,
               "snapshot %" PRIu64 ": chunk at offset %" PRIu64
               " but only %" PRIu64
               " bytes received; chunks must not "
               "leave a hole",
               w->last_index, offset, w->size);
    return STORE_EINVAL;
  }
  if (w->memory) {
    if (offset + len > w->mem_cap) {
      size_t cap = w->mem_cap ? w->mem_cap : 4096;
      while (cap < offset + len)
        cap *= 2;
      uint8_t *p = realloc(w->mem, cap);
      if (!p) return STORE_ENOMEM;
      w->mem = p;
      w->mem_cap = cap;
    }
    if (len) memcpy(w->mem + offset, buf, len);
  } else {
    int rc = io_pwrite_all(w->io, w->fd, buf, len,
                           (off_t)(SNAP_HEADER_SIZE + w->config_len + offset));
    if (rc) return io_fail(err, w->tmp, "write", -rc);
  }
  if (offset + len > w->size) {
    /* A re-sent chunk overlaps what was received: only the new bytes count
     * (the old ones are the same snapshot's). */
    size_t skip = (size_t)(w->size - offset);
    w->rx_crc = crc32c(w->rx_crc, (const uint8_t *)buf + skip, len - skip);
    w->rx_data_crc =
        crc32c(w->rx_data_crc, (const uint8_t *)buf + skip, len - skip);
    w->size = offset + len;
  }
  return 0;
}

uint64_t snap_writer_index(const struct snap_writer *w) {
  return w->last_index;
}

uint64_t snap_writer_term(const struct snap_writer *w) {
  return w->last_term;
}

static void writer_free(struct snap_writer *w) {
  free(w->config);
  free(w->mem);
  free(w);
}

void snap_abort(struct snap_writer *w) {
  if (!w) return;
  if (w->fd >= 0) w->io->close(w->io, w->fd);
  if (!w->memory) w->io->unlink(w->io, w->tmp);
  writer_free(w);
}

/* Computes the checksum over what the file holds (a chunk at a time),
 * writes the header, fsyncs, renames to the final name and fsyncs the
 * directory. On success the writer's fd stays open (for the caller); on
 * failure the writer is aborted. */
static int seal(struct snap_writer *w, char *err) {
  assert(!w->memory);
  struct store_io *io = w->io;
  uint32_t crc = crc32c(0, w->config, w->config_len);
  int rc =
      crc_of(io, w->fd, SNAP_HEADER_SIZE + w->config_len, w->size, &crc, NULL);
  if (rc) {
    rc = rc == -ENOMEM ? STORE_ENOMEM : io_fail(err, w->tmp, "read back", -rc);
    snap_abort(w);
    return rc;
  }
  if (crc != w->rx_crc) {
    /* The file does not hold what it was given: never install it. */
    store_errf(err,
               "%s: read back, its %" PRIu64
               " bytes do not match what was written (checksum %08x, "
               "expected %08x): the snapshot is refused",
               w->tmp, w->size, (unsigned)crc, (unsigned)w->rx_crc);
    snap_abort(w);
    return STORE_ECORRUPT;
  }
  uint8_t h[SNAP_HEADER_SIZE] = {0};
  memcpy(h, SNAP_MAGIC, 8);
  put_u32(h + 8, FORMAT_VERSION);
  put_u32(h + 12, SNAP_HEADER_SIZE);
  put_u64(h + 16, w->last_index);
  put_u64(h + 24, w->last_term);
  put_u64(h + 32, w->config_len);
  put_u64(h + 40, w->size);
  put_u32(h + 48, crc);
  put_u32(h + 60, crc32c(0, h, 60));
  char path[PATH_MAX + 80], name[64];
  snap_name(name, sizeof name, w->last_index);
  snprintf(path, sizeof path, "%s/%s", w->dir, name);
  /* The temporary file was created with O_TRUNC, so it holds exactly
   * header, configuration and data. */
  if ((rc = io_pwrite_all(io, w->fd, h, sizeof h, 0)) != 0) {
    rc = io_fail(err, w->tmp, "write", -rc);
  } else if (io->fsync(io, w->fd) != 0) {
    rc = io_fail(err, w->tmp, "fsync", errno);
  } else if (io->rename(io, w->tmp, path) != 0) {
    rc = io_fail(err, path, "rename", errno);
  } else if ((rc = io_sync_dir(io, w->dir)) != 0) {
    /* The file is complete under its final name; whether the rename
     * survives a crash is unknown, so report failure. */
    rc = io_fail(err, w->dir, "fsync of directory", -rc);
    io->close(io, w->fd);
    w->fd = -1;
    writer_free(w);
    return rc;
  }
  if (rc) snap_abort(w);
  return rc;
}

int snap_finish(struct snap_writer *w, struct store_snapshot *out, char *err) {
  memset(out, 0, sizeof *out);
  out->fd = -1;
  out->last_index = w->last_index;
  out->last_term = w->last_term;
  out->config_len = w->config_len;
  out->data_len = w->size;
  /* A sealed file holds what was handed over (seal checks it). */
  out->data_crc = w->rx_data_crc;
  if (w->memory) {
    out->config = w->config;
    w->config = NULL;
    out->data = w->mem ? w->mem : malloc(1);
    w->mem = NULL;
    writer_free(w);
    if (!out->data) {
      snap_free(out);
      return STORE_ENOMEM;
    }
    return 0;
  }
  struct store_io *io = w->io;
  int fd = w->fd;
  int rc = seal(w, err);
  if (rc) return rc;
  out->config = w->config;
  w->config = NULL;
  writer_free(w);
  out->io = io;
  out->fd = fd;
  return 0;
}

int snap_finish_file(struct snap_writer *w, char *err) {
  struct store_io *io = w->io;
  int fd = w->fd;
  int rc = seal(w, err);
  if (rc) return rc;
  writer_free(w);
  if (io->close(io, fd) != 0) return io_fail(err, "snapshot", "close", errno);
  return 0;
}
