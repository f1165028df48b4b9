/*
 * store.h — the durable store of one server: log entries, metadata (term,
 * vote, configuration) and snapshots, in one data directory.
 *
 * Threading: every function here is called on the event-loop thread that
 * was given to store_open(), and every callback runs there. Log writes and
 * queued metadata writes are done by the store's own writer thread, which
 * reports back through a uv_async handle: appends made while a write is in
 * flight are merged into the next write, made durable with one fdatasync (group
 * commit). The next segment file is prepared on libuv's thread pool. The store
 * keeps the loop alive only while it has work outstanding (and while closing).
 *
 * Durability contract: an append callback reporting durable index N means
 * every entry with index <= N, as the log holds it now, is on disk and
 * survives a crash (or, for N below the first log entry, is covered by the
 * snapshot). Nothing is ever reported durable before it is.
 *
 * Errors: negative STORE_E* codes (storage/error.h). After a write fails
 * (ENOSPC, EIO, ...) the store refuses further log writes with
 * STORE_EFAILED and store_errmsg() says what happened; reads keep working.
 * The only recovery is to close the store and open it again.
 */
#ifndef COPYCAT_STORAGE_STORE_H
#define COPYCAT_STORAGE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "storage/error.h"
#include "storage/io.h"
#include "storage/meta.h"
#include "storage/snap.h"

/* One log entry. In arrays given to store_append the payload is borrowed
 * (copied before the call returns); entries returned by the store point at
 * the store's copies, valid until the next call that changes the log. */
struct store_entry {
  uint64_t index;
  uint64_t term;
  uint8_t type;
  uint32_t len;
  const uint8_t *data;
};

#define STORE_DEFAULT_SEGMENT_SIZE (8u * 1024 * 1024)

struct store_opts {
  /* Bytes a segment file is preallocated to; a batch that does not fit
   * starts a new segment. 0 means STORE_DEFAULT_SEGMENT_SIZE; at least 4096
   * (an entry larger than a segment gets a segment of its own). */
  size_t segment_size;
  /* 1: keep everything in memory, write nothing (tests; users who accept
   * losing everything on a crash). Must be asked for explicitly. */
  int memory;
  /* File operations; NULL means the system calls. Tests pass a table that
   * injects faults. Must outlive the store. */
  struct store_io *io;
};

struct store;

/* Called on the loop thread once the write that carried an append (or a
 * truncation) finished: durable_index as described above, status 0 or a
 * STORE_E* code (then store_errmsg() has the message). */
typedef void (*store_cb)(struct store *s, uint64_t durable_index, int status,
                         void *data);
typedef void (*store_close_cb)(void *data);

/*
 * Open (creating if missing) the data directory `dir` and load it: the
 * metadata, the newest snapshot, and every log entry after it. A torn tail
 * left by a crash during a write is cut (store_notice() describes it). Any
 * other damage, an unknown format version or a missing segment fails with a
 * message in err naming the file, offset and remedy. The directory is
 * locked; a second store_open on it fails with STORE_ELOCKED.
 * With opts->memory, dir is ignored (may be NULL).
 */
int store_open(uv_loop_t *loop, const char *dir, const struct store_opts *opts,
               struct store **out, char *err);

/*
 * Append n entries. They must follow the log: entries[0].index ==
 * store_last_index() + 1, consecutive indices, terms not below the last
 * entry's term; else STORE_EINVAL and nothing is appended. The entries are
 * in the log (readable) when this returns; cb (may be NULL) reports when
 * they are durable. STORE_EFAILED after a write error, STORE_ECLOSED while
 * closing.
 */
int store_append(struct store *s, const struct store_entry *entries, size_t n,
                 store_cb cb, void *data);

/*
 * Remove entries with index >= from (a follower's conflicting tail). The
 * log changes at once; cb reports when the removal is durable (later
 * appends are written after it). `from` must be > the snapshot's index and
 * > store_first_index()-1; removing nothing (from > last) is allowed.
 */
int store_truncate_suffix(struct store *s, uint64_t from, store_cb cb,
                          void *data);

/*
 * Forget entries with index <= up_to, which a durable snapshot must cover
 * (up_to <= the snapshot's last index, else STORE_EINVAL). Whole segment
 * files are deleted in the background, oldest first; entries leave memory
 * at once.
 */
int store_compact_prefix(struct store *s, uint64_t up_to);

/* Replace term, vote ("" or NULL: none) and configuration atomically and
 * durably, synchronously on the calling thread (fsync + rename + fsync of
 * the directory: about two disk flushes). For tools and tests; a running
 * server uses store_queue_meta. STORE_EINVAL while a queued write is
 * outstanding. */
int store_save_meta(struct store *s, uint64_t term, const char *vote,
                    uint64_t config_index, const void *config,
                    size_t config_len, char *err);
/*
 * The same replacement done by the writer thread, in order with the log:
 * the metadata file is replaced before any truncation or record accepted
 * after this call is written, so an entry appended after the metadata of
 * its term was queued is never durable without that metadata. Queued
 * replacements not yet taken by the writer are merged (the newest is
 * written). cb (may be NULL) runs on the loop thread when the write that
 * carried it finished, status 0 (the metadata is durable and store_meta()
 * shows it) or a STORE_E* code; then, as after a failed append, the store
 * has failed (store_errmsg()) and the metadata on disk is the previous one.
 * STORE_EFAILED after a write error, STORE_ECLOSED while closing.
 */
int store_queue_meta(struct store *s, uint64_t term, const char *vote,
                     uint64_t config_index, const void *config,
                     size_t config_len, store_cb cb, void *data);
/* The metadata on disk: a queued replacement shows once its callback
 * runs. */
const struct store_meta *store_meta(const struct store *s);

/* The log: first and last index present (first > last when empty; then
 * first == last + 1 is the index the next append must have). */
uint64_t store_first_index(const struct store *s);
uint64_t store_last_index(const struct store *s);
/* Term of the last entry, or of the snapshot when the log is empty. */
uint64_t store_last_term(const struct store *s);
/* Highest index known durable (see the contract above). */
uint64_t store_durable_index(const struct store *s);
/* Term of entry `index` (also the snapshot's last index); 0 if unknown. */
uint64_t store_term_at(const struct store *s, uint64_t index);
/* Entries [a, b]: *out points at b-a+1 consecutive entries, valid until the
 * next call that changes the log. STORE_ERANGE unless
 * first <= a <= b <= last. */
int store_entries(const struct store *s, uint64_t a, uint64_t b,
                  const struct store_entry **out);

/*
 * Snapshots. A writer receives the data in chunks at offsets (a local
 * snapshot writes it in one or more chunks too); finish makes it durable,
 * checks that the file holds what was written (STORE_ECORRUPT if not) and
 * installs it:
 *   - if the log holds last_index with last_term, entries up to last_index
 *     are compacted away;
 *   - otherwise the whole log is discarded and the next append must have
 *     index last_index + 1 (a follower receiving the leader's snapshot).
 * Only one writer at a time (STORE_EINVAL otherwise); last_index must be
 * above the current snapshot's. Snapshot file I/O runs on the calling
 * thread. store_snapshot() is NULL when there is none; it stays valid until
 * the next snapshot is installed. Its data is read from the file
 * (snap_pread, snap_map in storage/snap.h), never held whole in memory,
 * except in a memory-only store.
 */
int store_snap_begin(struct store *s, uint64_t last_index, uint64_t last_term,
                     const void *config, size_t config_len,
                     struct snap_writer **w, char *err);
int store_snap_write(struct store *s, struct snap_writer *w, uint64_t offset,
                     const void *buf, size_t len, char *err);
int store_snap_finish(struct store *s, struct snap_writer *w, char *err);
void store_snap_abort(struct store *s, struct snap_writer *w);
/* store_snap_finish in two halves: the slow one (reading the file back to
 * checksum and check it, fsync, rename, directory fsync) on libuv's thread
 * pool, then the install on the loop thread, then cb(s, status, err,
 * data) there: status 0 (installed: store_snapshot() is it) or a STORE_E*
 * code with a message in err (STORE_ECORRUPT: the file does not hold what
 * was written; STORE_ECLOSED: the store was closed meanwhile; STORE_EINVAL:
 * a snapshot as new or newer was installed meanwhile). While it runs no
 * other snapshot may begin, and store_close waits for it. */
typedef void (*store_snap_cb)(struct store *s, int status, const char *err,
                              void *data);
int store_snap_finish_async(struct store *s, struct snap_writer *w,
                            store_snap_cb cb, void *data);
const struct store_snapshot *store_snapshot(const struct store *s);

/*
 * Snapshots made by another process (the server forks one, so that
 * serializing a large state never stalls its event loop):
 *   - store_snap_begin_detached starts the file "snapshot-<last_index>"
 *     (a temporary file until it is finished) and returns its writer,
 *     which takes no part in the store's own snapshots: write the data
 *     with snap_write (storage/snap.h) at offsets following one another,
 *     then store_snap_finish_detached checksums what the file holds,
 *     fsyncs it, renames it to its final name and fsyncs the directory,
 *     and frees the writer; or give up with snap_abort (the temporary
 *     file is removed). All three change nothing in the store: they use
 *     only its directory and I/O table, so a forked child may call them
 *     on its copy of the store. STORE_EINVAL in memory mode.
 *   - store_snap_write_detached does all of it for data held in memory.
 *   - store_snap_read loads and checks that file; like the writer it only
 *     reads the directory and I/O table, so it may run on another thread.
 *   - store_snap_adopt then installs what was read, on the loop thread, as
 *     store_snap_finish does, and takes ns over (it is freed on failure).
 *     If a snapshot as new or newer is installed meanwhile, the file is
 *     deleted and the call fails with STORE_EINVAL.
 */
int store_snap_begin_detached(const struct store *s, uint64_t last_index,
                              uint64_t last_term, const void *config,
                              size_t config_len, struct snap_writer **w,
                              char *err);
/* Frees w, whatever the outcome (on failure the temporary file is gone). */
int store_snap_finish_detached(struct snap_writer *w, char *err);
int store_snap_write_detached(const struct store *s, uint64_t last_index,
                              uint64_t last_term, const void *config,
                              size_t config_len, const void *data, size_t len,
                              char *err);
int store_snap_read(const struct store *s, uint64_t last_index,
                    struct store_snapshot *out, char *err);
int store_snap_adopt(struct store *s, struct store_snapshot *ns, char *err);
/* The path of the newest snapshot's file in *path (size bytes); 0, or -1
 * when there is none (no snapshot, or a memory-only store). */
int store_snap_file(const struct store *s, char *path, size_t size);
/* 1 when the store keeps everything in memory (store_opts.memory). */
int store_is_memory(const struct store *s);

/* What one write of the writer thread did: `entries` records of `bytes`
 * bytes made durable by one fdatasync that took sync_ns nanoseconds (group
 * commit: one write carries every append made while the previous one was
 * in flight). */
struct store_write_info {
  size_t entries;
  size_t bytes;
  uint64_t sync_ns;
};
typedef void (*store_write_cb)(void *data, const struct store_write_info *w);
/* Observe every successful log write (not in memory mode); cb runs on the
 * loop thread before the append callbacks of that write. NULL stops. */
void store_set_write_observer(struct store *s, store_write_cb cb, void *data);

/* Message of the last failure (write error) or "". */
const char *store_errmsg(const struct store *s);
/* What start-up repaired (a torn tail cut, leftover files removed) or "". */
const char *store_notice(const struct store *s);

/* Close: accepted writes are finished (their callbacks run), then files
 * are closed, the directory unlocked and the store freed; then cb(data)
 * (cb may be NULL). No other call on s after this. */
void store_close(struct store *s, store_close_cb cb, void *data);

#endif
