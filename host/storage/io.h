/*
 * io.h — the file operations storage performs, as a table of function
 * pointers, so that tests can replace any of them to inject ENOSPC, EIO,
 * short writes or a "crash" at a chosen call.
 *
 * Every function receives the table itself as its first argument: a test
 * embeds `struct store_io` as the first member of its own struct and keeps
 * its counters there (no global state). Conventions follow POSIX: on failure
 * a function returns -1 and sets errno. The table may be called from the
 * event-loop thread and from the storage writer thread, never from both at
 * the same moment for the same file.
 */
#ifndef COPYCAT_STORAGE_IO_H
#define COPYCAT_STORAGE_IO_H

#include <stdint.h>
#include <sys/types.h>

struct store_io {
  int (*open)(struct store_io *io, const char *path, int flags, mode_t mode);
  int (*close)(struct store_io *io, int fd);
  ssize_t (*pread)(struct store_io *io, int fd, void *buf, size_t n, off_t at);
  ssize_t (*pwrite)(struct store_io *io, int fd, const void *buf, size_t n,
                    off_t at);
  int (*fsync)(struct store_io *io, int fd);
  int (*fdatasync)(struct store_io *io, int fd);
  int (*ftruncate)(struct store_io *io, int fd, off_t len);
  /* Reserve [at, at+len) so later writes there cannot fail for lack of
   * space; extends the file, new bytes read as zero. */
  int (*fallocate)(struct store_io *io, int fd, off_t at, off_t len);
  int (*rename)(struct store_io *io, const char *from, const char *to);
  int (*unlink)(struct store_io *io, const char *path);
  int (*mkdir)(struct store_io *io, const char *path, mode_t mode);
};

/* Fill `io` with the operating system's functions. */
void store_io_default(struct store_io *io);

/* Helpers on top of the table. Each returns 0 or -errno. */

/* Write all n bytes at `at`, retrying short writes and EINTR. */
int io_pwrite_all(struct store_io *io, int fd, const void *buf, size_t n,
                  off_t at);
/* Read up to n bytes at `at`; *got receives the count (less at end of file). */
int io_pread_all(struct store_io *io, int fd, void *buf, size_t n, off_t at,
                 size_t *got);
/* fsync the directory `dir` (after creating, renaming or deleting in it). */
int io_sync_dir(struct store_io *io, const char *dir);
/* Read the whole file at `path` into a malloc'd buffer (*buf, *size; the
 * caller frees). Files larger than `max` are refused with -EFBIG. */
int io_read_file(struct store_io *io, const char *path, size_t max,
                 uint8_t **buf, size_t *size);
/* Write `n` bytes to a new file `dir/name`, by way of `dir/name.tmp`:
 * write, fsync, rename, fsync the directory. Replaces any existing file
 * atomically: after a crash either the old or the new file is there. */
int io_replace_file(struct store_io *io, const char *dir, const char *name,
                    const void *buf, size_t n);

#endif
