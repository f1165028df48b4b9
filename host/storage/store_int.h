/*
 * store_int.h — the store's internals, shared by store.c (running) and
 * store_open.c (start-up). Not for other modules.
 */
#ifndef COPYCAT_STORAGE_STORE_INT_H
#define COPYCAT_STORAGE_STORE_INT_H

#include <limits.h>

#include "storage/log.h"
#include "storage/segments.h"
#include "storage/store.h"

struct waiter {
  store_cb cb;
  void *data;
};

/*
 * One write for the worker thread: optionally remove the tail (or every
 * segment, for a snapshot install), then write records, then delete
 * segments a snapshot made redundant. While one job is in flight the next
 * one collects everything that arrives (group commit).
 */
struct job {
  uv_work_t req;
  struct store *s;
  uint64_t base;          /* index of the first record in buf */
  uint64_t truncate_from; /* 0: none; else remove indices >= this first */
  uint64_t reset_next;    /* 0: none; else remove all segments first */
  uint64_t compact_upto;  /* 0: none; else compact up to this index last */
  uint8_t *buf;           /* encoded records (not used in memory mode) */
  size_t len, cap;
  size_t *recs; /* start of each record in buf */
  size_t nrec, rcap;
  struct waiter *w;
  size_t nw, wcap;
  int status; /* result, set by the worker */
  char err[STORE_ERR_MAX];
};

struct store {
  uv_loop_t *loop;
  struct store_io *io;
  struct store_io sysio; /* used when opts->io is NULL */
  char dir[PATH_MAX];
  int memory;
  int lock_fd;
  size_t seg_size;
  struct log log;   /* loop thread */
  struct segs segs; /* worker while a job is in flight, else loop */
  struct store_meta meta;
  struct store_snapshot snap;
  int has_snap;
  struct snap_writer *writer;
  struct job jobs[2];
  struct job *pending, *inflight;
  uint64_t durable;
  uint64_t trunc_min; /* lowest truncation since the in-flight dispatch */
  int failed;         /* 0 or the STORE_E* code of the failed write */
  int in_cb;          /* > 0 while running callbacks */
  int closing;
  store_close_cb close_cb;
  void *close_data;
  char errmsg[STORE_ERR_MAX];
  char notice[STORE_ERR_MAX];
  /* The next segment, prepared in the background (see segs.spare_fd): a
   * ready spare waits here until the writer is idle to take it. */
  uv_work_t spare_req;
  int spare_fd;     /* ready, not yet handed to segs; or -1 */
  int spare_busy;   /* preparation in flight */
  int spare_failed; /* preparation failed once: do not retry */
  int spare_new_fd; /* result of the preparation (worker thread) */
  int spare_rc;
  char spare_err[STORE_ERR_MAX];
};

/* store_open.c: append a note to s->notice. */
void store_note(struct store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* store_open.c */
int store_load_dir(struct store *s, char *err);
void store_unlock(struct store *s);

/* store.c */
void store_free(struct store *s);

#endif
