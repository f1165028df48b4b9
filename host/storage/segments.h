/*
 * segments.h — the log's segment files as the writer sees them: which
 * segments exist, where each record starts, the open segment's write
 * position. Only one thread uses a `struct segs` at a time (the writer
 * thread while a write is in flight, the loop thread otherwise).
 *
 * Crash-safety rules kept here:
 *   - a segment is created as "segment-N.tmp" (header written, file
 *     preallocated, fsynced) — or from the spare file, header written and
 *     synced — and renamed, then the directory is fsynced, so a segment
 *     under its final name always has a complete header;
 *   - the previous segment is fdatasynced before the next one is created, so
 *     only the last segment can have a torn tail; once the next one exists
 *     the previous one gets a seal, so that losing the newest segment file
 *     is noticed (a sealed segment must have a successor); a segment's
 *     seal is removed before the segment after it is deleted;
 *   - files are deleted one at a time with a directory fsync after each:
 *     newest first when cutting the tail, oldest first when compacting, so
 *     the segments left after a crash always form one contiguous run;
 *   - a tail cut inside a segment is ftruncated and preallocated again
 *     (zeros), so old records can never reappear after newer ones.
 */
#ifndef COPYCAT_STORAGE_SEGMENTS_H
#define COPYCAT_STORAGE_SEGMENTS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/io.h"

struct segs {
  struct store_io *io;
  char dir[PATH_MAX];
  size_t seg_size;
  uint64_t *firsts; /* first index of each segment, ascending */
  uint64_t *ends;   /* offset just after each segment's last record */
  size_t n, cap;
  int fd;         /* the last segment, or -1 when not opened */
  int full;       /* 1: the last segment is finished; next write opens a
                     new one */
  uint64_t off;   /* end of the records in the last segment */
  uint64_t next;  /* index of the next record to write */
  uint64_t *offs; /* offs[i]: file offset of record offs_first + i */
  size_t noffs, ocap;
  uint64_t offs_first;
  /* A spare segment file (SEG_SPARE) already filled with zeros and synced,
   * or -1. The next new segment takes it: writes then overwrite allocated,
   * written blocks, and fdatasync has no file metadata to flush. */
  int spare_fd;
  /* How long the last segs_write's fdatasync took, in ns (0: none ran).
   * Writer thread; handed to the loop with the finished job. */
  uint64_t sync_ns;
};

#define SEG_SPARE "segment-spare.tmp"

/* Create dir/SEG_SPARE: `size` bytes of zeros, fsynced; *fd receives it.
 * The zeros go to the disk a chunk at a time (sync_file_range), so that the
 * log's own fdatasyncs, which run meanwhile, never queue behind the whole
 * file at once. Safe on any thread (touches no struct segs). 0 or STORE_E*
 * + err. */
int segs_prepare_spare(struct store_io *io, const char *dir, size_t size,
                       int *fd, char *err);

/* An empty set whose first record will have index `next`. */
void segs_init(struct segs *g, struct store_io *io, const char *dir,
               size_t seg_size, uint64_t next);
void segs_close(struct segs *g);

/* Add an existing segment (start-up), then its records' offsets in order,
 * then where its records end. */
int segs_add_segment(struct segs *g, uint64_t first);
int segs_add_record(struct segs *g, uint64_t index, uint64_t off);
void segs_set_end(struct segs *g, uint64_t end);

/* Write nrec encoded records buf[0..len) (record k starts at recs[k]; the
 * first has index g->next) and make them durable. 0 or STORE_E* + err. */
int segs_write(struct segs *g, const uint8_t *buf, size_t len,
               const size_t *recs, size_t nrec, char *err);
/* Durably remove records with index >= from. */
int segs_truncate(struct segs *g, uint64_t from, char *err);
/* Durably remove every segment; the next record will have index `next`. */
int segs_reset(struct segs *g, uint64_t next, char *err);
/* Delete segments (oldest first) holding only indices <= up_to, except the
 * last segment. */
int segs_compact(struct segs *g, uint64_t up_to, char *err);

/* Path of the segment starting at `first`. */
void segs_path(const struct segs *g, char *out, size_t size, uint64_t first);

#endif
