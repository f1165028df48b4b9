/*
 * prepare.c — log memory faulted in ahead of need, off the loop thread.
 *
 * The first touch of a fresh page costs a page fault: microseconds on bare
 * metal, tens of microseconds under some hypervisors. A log that grows by
 * 64 KiB per batch would pay that on the loop thread inside store_append,
 * in front of every write. Instead, whenever the log has less than a block
 * of payload room (or its entry array is half full), the next block (or
 * array) is mapped and faulted in on libuv's thread pool and handed to the
 * log when ready; appends then copy into memory that is already there.
 */
#include "storage/store_int.h"

static void mem_work(uv_work_t *req) {
  struct store *s = req->data;
  log_prep_make(&s->mem_want, &s->mem_prep);
}

static void mem_done(uv_work_t *req, int status) {
  struct store *s = req->data;
  s->mem_busy = 0;
  if (status == 0 && !s->mem_prep.block && !s->mem_prep.cap)
    s->mem_failed = 1; /* appends then map memory themselves */
  if (status == 0 && !s->closing)
    log_prep_give(&s->log, &s->mem_prep);
  else
    log_prep_free(&s->mem_prep);
  if (s->closing) store_maybe_free(s);
}

void store_prepare_memory(struct store *s) {
  if (s->mem_busy || s->mem_failed || s->closing) return;
  if (!log_wants(&s->log, &s->mem_want)) return;
  s->mem_req.data = s;
  if (uv_queue_work(s->loop, &s->mem_req, mem_work, mem_done) == 0)
    s->mem_busy = 1;
  else
    s->mem_failed = 1;
}

void store_prepare_memory_now(struct store *s) {
  struct log_want w;
  struct log_prep p;
  if (!log_wants(&s->log, &w)) return;
  log_prep_make(&w, &p);
  log_prep_give(&s->log, &p);
}
