/*
 * writer.c — the writer thread, and what the loop does when it reports.
 *
 * The writer takes the pending job as soon as it is free, performs it on
 * the segment files (one fdatasync per job), appends it to the done list and
 * wakes the loop with uv_async_send. The loop then computes the durable
 * index and runs the callbacks; the writer meanwhile already writes the
 * next job, so the disk never waits for the loop. Jobs are recycled through
 * a fixed pool; the writer owns `segs` for the store's whole running life.
 */
#include <assert.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

/* Writer thread: perform a job on the segment files. */
static void job_run(struct store *s, struct job *j) {
  struct segs *g = &s->segs;
  int rc = 0;
  if (s->memory) return;
  /* The metadata first: a record of a term is never durable before the
   * metadata naming that term (the server queues the term's metadata
   * before any of its entries). */
  if (j->has_meta && (rc = meta_save(s->io, s->dir, &j->meta, j->err)) != 0) {
    j->status = rc;
    return;
  }
  if (j->reset_next)
    rc = segs_reset(g, j->reset_next, j->err);
  else if (j->truncate_from)
    rc = segs_truncate(g, j->truncate_from, j->err);
  if (rc == 0 && j->nrec) {
    assert(g->next == j->base);
    rc = segs_write(g, j->buf, j->len, j->recs, j->nrec, j->err);
    j->sync_ns = g->sync_ns;
  }
  if (rc == 0 && j->compact_upto) rc = segs_compact(g, j->compact_upto, j->err);
  j->status = rc;
  __atomic_store_n(&s->seg_fill, g->n ? g->off : 0, __ATOMIC_RELAXED);
}

/* After a write the next batch often arrives within microseconds (the
 * loop runs the callbacks, the caller appends again): wait that long without
 * sleeping, so that a waiter-and-waker round trip is saved. */
#define WRITER_SPIN_NS 50000
/* How long the writer waits awake for a batch being encoded. */
#define WRITER_FILL_NS 1000000

static void writer_main(void *arg) {
  struct store *s = arg;
  int spin = 0;
  uv_mutex_lock(&s->mu);
  for (;;) {
    if (__atomic_load_n(&s->filling, __ATOMIC_ACQUIRE)) {
      /* store_append is adding a batch to the pending job, without the
       * lock: leave the job alone and wait for it awake, a little longer
       * than encoding a large batch takes. */
      uv_mutex_unlock(&s->mu);
      uint64_t until = uv_hrtime() + WRITER_FILL_NS;
      while (__atomic_load_n(&s->filling, __ATOMIC_ACQUIRE) &&
             uv_hrtime() < until)
        sched_yield();
      uv_mutex_lock(&s->mu);
      if (__atomic_load_n(&s->filling, __ATOMIC_ACQUIRE))
        uv_cond_wait(&s->cv, &s->mu); /* writer_kick wakes us */
      continue;
    }
    struct job *j = s->pending;
    if (!s->wfailed && !job_empty(j) && s->free_jobs) {
      struct job *next = s->free_jobs;
      s->free_jobs = next->next;
      job_clear(next, j->base + j->nrec);
      s->pending = next;
      s->taken = j;
      j->trunc_after = 0;
      if (s->segs.spare_fd < 0 && s->spare_offer >= 0) {
        s->segs.spare_fd = s->spare_offer;
        s->spare_offer = -1;
        s->writer_spare = 1; /* no second spare while this one lives */
      }
      uv_mutex_unlock(&s->mu);
      job_run(s, j);
      uv_mutex_lock(&s->mu);
      s->writer_spare = s->segs.spare_fd >= 0;
      if (j->status) s->wfailed = 1;
      s->taken = NULL;
      j->next = NULL;
      if (s->done_tail)
        s->done_tail->next = j;
      else
        s->done_head = j;
      s->done_tail = j;
      uv_mutex_unlock(&s->mu);
      uv_async_send(&s->async); /* outside the lock: the loop wants it */
      uv_mutex_lock(&s->mu);
      spin = 1;
      continue;
    }
    if (s->stop && (job_empty(j) || s->wfailed)) break;
    if (spin) {
      spin = 0;
      unsigned kicks = __atomic_load_n(&s->kicks, __ATOMIC_ACQUIRE);
      uv_mutex_unlock(&s->mu);
      uint64_t until = uv_hrtime() + WRITER_SPIN_NS;
      while (__atomic_load_n(&s->kicks, __ATOMIC_ACQUIRE) == kicks &&
             uv_hrtime() < until)
        sched_yield();
      uv_mutex_lock(&s->mu);
      continue;
    }
    uv_cond_wait(&s->cv, &s->mu);
  }
  s->exited = 1;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

void writer_cap_taken(struct store *s, uint64_t from) {
  if (s->taken && (!s->taken->trunc_after || from < s->taken->trunc_after))
    s->taken->trunc_after = from;
  for (struct job *j = s->done_head; j; j = j->next)
    if (!j->trunc_after || from < j->trunc_after) j->trunc_after = from;
}

static void spare_work(uv_work_t *req) {
  struct store *s = req->data;
  s->spare_rc = segs_prepare_spare(s->io, s->dir, s->seg_size, &s->spare_new_fd,
                                   s->spare_err);
}

static void spare_done(uv_work_t *req, int uvstatus) {
  struct store *s = req->data;
  s->spare_busy = 0;
  if (uvstatus == 0 && s->spare_rc == 0 && s->closing) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" SEG_SPARE, s->dir);
    s->io->close(s->io, s->spare_new_fd);
    s->io->unlink(s->io, path);
  } else if (uvstatus == 0 && s->spare_rc == 0) {
    uv_mutex_lock(&s->mu);
    assert(s->spare_offer < 0);
    s->spare_offer = s->spare_new_fd; /* store_free removes it if unused */
    uv_mutex_unlock(&s->mu);
    uv_cond_signal(&s->cv);
  } else if (uvstatus == 0) {
    /* Not fatal: new segments are then preallocated when needed. */
    s->spare_failed = 1;
    store_note(s, "could not prepare the next segment in advance: %s",
               s->spare_err);
  }
  store_maybe_free(s);
}

/* Prepare the next segment in the background when none is ready and the
 * open one is half full: not sooner, since writing a segment's worth of
 * zeros costs the disk as much as the log's own writes to it, and a log
 * that grows slowly (or a store that is closed soon) may never need it. */
static void maybe_prepare_spare(struct store *s) {
  if (s->memory || s->closing || s->failed || s->spare_busy || s->spare_failed)
    return;
  if (__atomic_load_n(&s->seg_fill, __ATOMIC_RELAXED) < s->seg_size / 2) return;
  uv_mutex_lock(&s->mu);
  int have = s->spare_offer >= 0 || s->writer_spare;
  uv_mutex_unlock(&s->mu);
  if (have) return;
  s->spare_busy = 1;
  s->spare_req.data = s;
  if (uv_queue_work(s->loop, &s->spare_req, spare_work, spare_done) != 0) {
    s->spare_busy = 0;
    s->spare_failed = 1;
  }
}

/* Keep the loop alive while anything is outstanding. */
static void update_ref(struct store *s) {
  if (s->async_closed) return;
  uv_mutex_lock(&s->mu);
  int busy = s->closing || !job_empty(s->pending) || s->taken || s->done_head;
  uv_mutex_unlock(&s->mu);
  if (busy)
    uv_ref((uv_handle_t *)&s->async);
  else
    uv_unref((uv_handle_t *)&s->async);
}

void writer_filling(struct store *s) {
  /* Under mu: once it is set the writer does not touch the pending job,
   * and the signal cannot fall between its check and its wait. */
  uv_mutex_lock(&s->mu);
  __atomic_store_n(&s->filling, 1, __ATOMIC_RELEASE);
  uv_mutex_unlock(&s->mu);
  uv_cond_signal(&s->cv);
}

void writer_filled(struct store *s) {
  uv_mutex_lock(&s->mu);
  __atomic_store_n(&s->filling, 0, __ATOMIC_RELEASE);
  uv_mutex_unlock(&s->mu);
}

void writer_kick(struct store *s) {
  __atomic_add_fetch(&s->kicks, 1, __ATOMIC_RELEASE);
  uv_cond_signal(&s->cv);
  update_ref(s);
}

/* Loop thread: account for one finished job and run its callbacks. */
static void finish_job(struct store *s, struct job *j) {
  int status = j->status;
  if (status == 0 && j->has_meta) {
    meta_free(&s->meta);
    s->meta = j->meta; /* durable now: the store's copy */
    j->has_meta = 0;
    s->meta_done = j->meta_seq;
  }
  if (status == 0) {
    uint64_t d = j->base + j->nrec - 1; /* last index on disk then */
    if (j->trunc_after && d > j->trunc_after - 1) d = j->trunc_after - 1;
    if (d < log_first(&s->log) - 1) d = log_first(&s->log) - 1;
    if (d > log_last(&s->log)) d = log_last(&s->log);
    if (d > s->durable) s->durable = d;
    if (s->write_cb && j->nrec && !s->memory) {
      struct store_write_info wi = {j->nrec, j->len, j->sync_ns};
      s->write_cb(s->write_data, &wi);
    }
  } else if (!s->failed) {
    s->failed = status;
    snprintf(s->errmsg, sizeof s->errmsg, "%s", j->err);
  }
  for (size_t i = 0; i < j->nw; i++)
    j->w[i].cb(s, s->durable, status, j->w[i].data);
  if (status) {
    /* Nothing more will be written: fail what waits. The waiters are
     * moved out first, since callbacks may call back into the store. No
     * queued metadata will be written either. */
    s->meta_done = s->meta_queued;
    uv_mutex_lock(&s->mu);
    struct job *p = s->pending;
    struct waiter *w = p->w;
    size_t nw = p->nw;
    p->w = NULL;
    p->wcap = 0;
    job_clear(p, p->base);
    uv_mutex_unlock(&s->mu);
    for (size_t i = 0; i < nw; i++)
      w[i].cb(s, s->durable, STORE_EFAILED, w[i].data);
    free(w);
  }
}

static void on_closed(uv_handle_t *h) {
  struct store *s = h->data;
  s->async_closed = 1;
  store_maybe_free(s);
}

void store_maybe_free(struct store *s) {
  if (!s->async_closed || s->spare_busy || s->mem_busy || s->fin_busy) return;
  store_close_cb cb = s->close_cb;
  void *data = s->close_data;
  store_free(s);
  if (cb) cb(data);
}

static void on_async(uv_async_t *h) {
  struct store *s = h->data;
  for (;;) {
    uv_mutex_lock(&s->mu);
    struct job *j = s->done_head;
    if (j) {
      s->done_head = j->next;
      if (!s->done_head) s->done_tail = NULL;
    }
    uv_mutex_unlock(&s->mu);
    if (!j) break;
    finish_job(s, j);
    uv_mutex_lock(&s->mu);
    job_clear(j, 0);
    j->next = s->free_jobs;
    s->free_jobs = j;
    uv_mutex_unlock(&s->mu);
    uv_cond_signal(&s->cv);
  }
  maybe_prepare_spare(s);
  uv_mutex_lock(&s->mu);
  int exited = s->exited && !s->done_head;
  uv_mutex_unlock(&s->mu);
  if (s->closing && exited && s->started) {
    uv_thread_join(&s->thread);
    s->started = 0;
    uv_close((uv_handle_t *)&s->async, on_closed);
    return;
  }
  update_ref(s);
}

int writer_start(struct store *s) {
  for (int i = 0; i < STORE_JOBS; i++) {
    if (i > 0) {
      s->jobs[i].next = s->free_jobs;
      s->free_jobs = &s->jobs[i];
    }
  }
  s->pending = &s->jobs[0];
  s->spare_offer = -1;
  s->writer_spare = s->segs.spare_fd >= 0;
  if (uv_mutex_init(&s->mu)) return STORE_ENOMEM;
  if (uv_cond_init(&s->cv)) {
    uv_mutex_destroy(&s->mu);
    return STORE_ENOMEM;
  }
  if (uv_async_init(s->loop, &s->async, on_async)) {
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    return STORE_ENOMEM;
  }
  s->async.data = s;
  if (uv_thread_create(&s->thread, writer_main, s)) {
    uv_close((uv_handle_t *)&s->async, NULL);
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    return STORE_ENOMEM;
  }
  s->started = s->sync_init = 1;
  uv_unref((uv_handle_t *)&s->async);
  return 0;
}

void writer_close(struct store *s) {
  uv_mutex_lock(&s->mu);
  s->stop = 1;
  uv_mutex_unlock(&s->mu);
  uv_cond_signal(&s->cv);
  uv_ref((uv_handle_t *)&s->async);
  /* The writer answers with uv_async_send when it exits. */
}
