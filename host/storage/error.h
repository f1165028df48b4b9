/*
 * error.h — status codes of the storage layer.
 *
 * Functions return 0 on success or one of these negative codes. Functions
 * that take `char *err` also write a human message there (at most
 * STORE_ERR_MAX bytes, NUL-terminated) naming the file, the offset when
 * there is one, and what the operator can do. `err` may be NULL.
 */
#ifndef COPYCAT_STORAGE_ERROR_H
#define COPYCAT_STORAGE_ERROR_H

#define STORE_ERR_MAX 512

enum {
  STORE_OK = 0,
  STORE_EIO = -1,      /* a read, write or sync failed (EIO and others) */
  STORE_ENOSPC = -2,   /* the disk is full (ENOSPC, EDQUOT) */
  STORE_ECORRUPT = -3, /* a checksum or structure check failed */
  STORE_EVERSION = -4, /* a file has a format version we do not know */
  STORE_EMISSING = -5, /* a segment or the metadata file is missing */
  STORE_ELOCKED = -6,  /* another process holds the data directory */
  STORE_EFAILED = -7,  /* an earlier write failed; the store takes no more */
  STORE_EINVAL = -8,   /* a bad argument (caller's mistake) */
  STORE_ENOMEM = -9,   /* out of memory */
  STORE_ECLOSED = -10, /* the store is closing */
  STORE_ERANGE = -11   /* the entries asked for are not in the log */
};

/* A short constant name for a status code ("ENOSPC", "corrupt", ...). */
const char *store_strerror(int code);

/* Format a message into err (STORE_ERR_MAX bytes; may be NULL). */
void store_errf(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The status code for a failed system call's errno. */
int store_errno_code(int errnum);

#endif
