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
 * One write for the writer thread: optionally remove the tail (or every
 * segment, for a snapshot install), then write records, then delete
 * segments a snapshot made redundant. While the writer works on one job,
 * the next one ("pending") collects everything that arrives, and the writer
 * takes it as soon as it is free: one fdatasync covers it all (group
 * commit).
 */
struct job {
  struct job *next;       /* in the done or free list */
  uint64_t base;          /* index of the first record in buf */
  uint64_t truncate_from; /* 0: none; else remove indices >= this first */
  uint64_t reset_next;    /* 0: none; else remove all segments first */
  uint64_t compact_upto;  /* 0: none; else compact up to this index last */
  uint64_t trunc_after;   /* lowest truncation made after the writer took
                             this job (0: none): caps what it made durable */
  uint8_t *buf;           /* encoded records (not used in memory mode) */
  size_t len, cap;
  size_t *recs; /* start of each record in buf */
  size_t nrec, rcap;
  struct waiter *w;
  size_t nw, wcap;
  int status;             /* result, set by the writer */
  uint64_t sync_ns;       /* the write's fdatasync time, set by the writer */
  int has_meta;           /* 1: replace the metadata file with `meta`, first
                             (before any truncation or record of this job) */
  struct store_meta meta; /* owned while has_meta */
  unsigned meta_seq;      /* the store_queue_meta call `meta` came from */
  char err[STORE_ERR_MAX];
};

#define STORE_JOBS 4

struct store {
  uv_loop_t *loop;
  struct store_io *io;
  struct store_io sysio; /* used when opts->io is NULL */
  char dir[PATH_MAX];
  int memory;
  int lock_fd;
  size_t seg_size;
  struct log log;         /* loop thread */
  struct store_meta meta; /* as on disk: a queued write shows once done */
  unsigned meta_queued;   /* store_queue_meta calls (loop thread) */
  unsigned meta_done;     /* of those, finished or abandoned (loop thread) */
  struct store_snapshot snap;
  int has_snap;
  struct snap_writer *writer;
  uint64_t durable;
  int failed; /* 0 or the STORE_E* code of the failed write */
  int closing;
  store_close_cb close_cb;
  void *close_data;
  char errmsg[STORE_ERR_MAX];
  char notice[STORE_ERR_MAX];

  /* The writer thread and what it shares with the loop. Fields marked
   * (mu) are read and written only with `mu` held. */
  struct segs segs; /* the writer's, once it runs (start-up: the loop's) */
  struct job jobs[STORE_JOBS];
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  uv_async_t async;    /* the writer's "jobs done" signal to the loop */
  int started;         /* the thread runs and async is open */
  int sync_init;       /* mu and cv exist */
  struct job *pending; /* (mu) collecting */
  struct job *taken;   /* (mu) being written */
  struct job *done_head, *done_tail; /* (mu) written, for the loop */
  struct job *free_jobs;             /* (mu) */
  int stop;          /* (mu) writer: finish pending work, then exit */
  int exited;        /* (mu) writer has exited */
  int wfailed;       /* (mu) a job failed: the writer takes no more */
  int spare_offer;   /* (mu) spare fd offered to the writer, or -1 */
  int writer_spare;  /* (mu) segs holds an unused spare */
  int async_closed;  /* the async handle is closed (close in progress) */
  unsigned kicks;    /* (atomic) bumped by the loop whenever it adds work */
  int filling;       /* (atomic) store_append is adding a batch to pending */
  uint64_t seg_fill; /* (atomic) bytes used in the open segment (0: none),
                        set by the writer after each job */

  /* The next segment, prepared on libuv's thread pool (see
   * segs.spare_fd); loop thread. */
  uv_work_t spare_req;
  int spare_busy;   /* preparation in flight */
  int spare_failed; /* preparation failed once: do not retry */
  int spare_new_fd; /* result of the preparation (pool thread) */
  int spare_rc;
  char spare_err[STORE_ERR_MAX];

  /* Log memory faulted in ahead on libuv's thread pool (prepare.c); loop
   * thread, except mem_want/mem_prep while mem_busy (the pool thread). */
  uv_work_t mem_req;
  int mem_busy;
  int mem_failed; /* preparation found no memory once: do not retry */
  struct log_want mem_want;
  struct log_prep mem_prep;

  /* A snapshot being sealed on libuv's thread pool (store_snap_finish_async);
   * loop thread, except fin_w/fin_ns/fin_rc/fin_err while fin_busy. */
  uv_work_t fin_req;
  int fin_busy;
  struct snap_writer *fin_w;
  struct store_snapshot fin_ns;
  int fin_rc;
  char fin_err[STORE_ERR_MAX];
  store_snap_cb fin_cb;
  void *fin_data;

  store_write_cb write_cb; /* observer of finished writes (loop thread) */
  void *write_data;
};

/* store_open.c */
/* Append a note to s->notice (what start-up or the background repaired). */
void store_note(struct store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int store_load_dir(struct store *s, char *err);
void store_unlock(struct store *s);

/* store.c */
void store_free(struct store *s);
int job_empty(const struct job *j);
void job_clear(struct job *j, uint64_t base);

/* writer.c */
/* Start the writer thread (end of store_open). 0 or STORE_E*. */
int writer_start(struct store *s);
/* After the loop changed the pending job (with mu held, then released):
 * wake the writer and keep the loop alive while work is outstanding. */
void writer_kick(struct store *s);
/* Before store_append copies and encodes a batch: wake the writer now, so
 * that its wake-up overlaps with that work; it waits for the batch awake
 * until writer_filled() (then writer_kick()). */
void writer_filling(struct store *s);
void writer_filled(struct store *s);
/* With mu held: a truncation at `from` happened; jobs the writer took
 * cannot make anything from `from` on durable. */
void writer_cap_taken(struct store *s, uint64_t from);
/* Begin closing: the writer finishes what was accepted, then the store is
 * freed and close_cb called (from the loop). */
void writer_close(struct store *s);
/* While closing: free the store and call close_cb once nothing (writer,
 * background preparation) is outstanding any more. */
void store_maybe_free(struct store *s);

/* prepare.c */
/* Loop thread: if the log will soon need fresh memory, fault it in on
 * libuv's thread pool (one preparation at a time). */
void store_prepare_memory(struct store *s);
/* The same, synchronously (start-up). */
void store_prepare_memory_now(struct store *s);

#endif
