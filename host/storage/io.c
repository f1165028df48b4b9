/*
 * io.c — the default file-operation table (plain system calls) and the
 * retrying helpers storage uses on top of any table.
 */
#include "storage/io.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int sys_open(struct store_io *io, const char *path, int flags,
                    mode_t mode) {
  (void)io;
  return open(path, flags | O_CLOEXEC, mode);
}

static int sys_close(struct store_io *io, int fd) {
  (void)io;
  return close(fd);
}

static ssize_t sys_pread(struct store_io *io, int fd, void *buf, size_t n,
                         off_t at) {
  (void)io;
  return pread(fd, buf, n, at);
}

static ssize_t sys_pwrite(struct store_io *io, int fd, const void *buf,
                          size_t n, off_t at) {
  (void)io;
  return pwrite(fd, buf, n, at);
}

static int sys_fsync(struct store_io *io, int fd) {
  (void)io;
  return fsync(fd);
}

static int sys_fdatasync(struct store_io *io, int fd) {
  (void)io;
  return fdatasync(fd);
}

static int sys_ftruncate(struct store_io *io, int fd, off_t len) {
  (void)io;
  return ftruncate(fd, len);
}

static int sys_fallocate(struct store_io *io, int fd, off_t at, off_t len) {
  (void)io;
  int rc = posix_fallocate(fd, at, len);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return 0;
}

static int sys_rename(struct store_io *io, const char *from, const char *to) {
  (void)io;
  return rename(from, to);
}

static int sys_unlink(struct store_io *io, const char *path) {
  (void)io;
  return unlink(path);
}

static int sys_mkdir(struct store_io *io, const char *path, mode_t mode) {
  (void)io;
  return mkdir(path, mode);
}

void store_io_default(struct store_io *io) {
  io->open = sys_open;
  io->close = sys_close;
  io->pread = sys_pread;
  io->pwrite = sys_pwrite;
  io->fsync = sys_fsync;
  io->fdatasync = sys_fdatasync;
  io->ftruncate = sys_ftruncate;
  io->fallocate = sys_fallocate;
  io->rename = sys_rename;
  io->unlink = sys_unlink;
  io->mkdir = sys_mkdir;
}

int io_pwrite_all(struct store_io *io, int fd, const void *buf, size_t n,
                  off_t at) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = io->pwrite(io, fd, p, n, at);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    /* A zero-byte write with bytes left means the device takes no more. */
    if (w == 0) return -ENOSPC;
    p += w;
    n -= (size_t)w;
    at += w;
  }
  return 0;
}

int io_pread_all(struct store_io *io, int fd, void *buf, size_t n, off_t at,
                 size_t *got) {
  char *p = buf;
  size_t done = 0;
  while (done < n) {
    ssize_t r = io->pread(io, fd, p + done, n - done, at + (off_t)done);
    if (r < 0) {
      if (errno == EINTR) continue;
      *got = done;
      return -errno;
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  *got = done;
  return 0;
}

int io_sync_dir(struct store_io *io, const char *dir) {
  int fd = io->open(io, dir, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0) return -errno;
  int rc = 0;
  if (io->fsync(io, fd) != 0) rc = -errno;
  io->close(io, fd);
  return rc;
}

int io_read_file(struct store_io *io, const char *path, size_t max,
                 uint8_t **buf, size_t *size) {
  *buf = NULL;
  *size = 0;
  int fd = io->open(io, path, O_RDONLY, 0);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    io->close(io, fd);
    return -e;
  }
  if ((uint64_t)st.st_size > max) {
    io->close(io, fd);
    return -EFBIG;
  }
  size_t n = (size_t)st.st_size;
  uint8_t *p = malloc(n ? n : 1);
  if (!p) {
    io->close(io, fd);
    return -ENOMEM;
  }
  size_t got = 0;
  int rc = io_pread_all(io, fd, p, n, 0, &got);
  io->close(io, fd);
  if (rc) {
    free(p);
    return rc;
  }
  *buf = p;
  *size = got;
  return 0;
}

int io_replace_file(struct store_io *io, const char *dir, const char *name,
                    const void *buf, size_t n) {
  char tmp[PATH_MAX], path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
      snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= (int)sizeof tmp)
    return -ENAMETOOLONG;
  int fd = io->open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -errno;
  int rc = io_pwrite_all(io, fd, buf, n, 0);
  if (rc == 0 && io->fsync(io, fd) != 0) rc = -errno;
  if (io->close(io, fd) != 0 && rc == 0) rc = -errno;
  if (rc == 0 && io->rename(io, tmp, path) != 0) rc = -errno;
  if (rc) {
    io->unlink(io, tmp); /* best effort; start-up removes leftovers too */
    return rc;
  }
  return io_sync_dir(io, dir);
}
