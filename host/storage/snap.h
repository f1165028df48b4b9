/*
 * snap.h — snapshot files: "snapshot-<last index, 20 digits>".
 *
 * A snapshot is written to "snapshot-<index>.tmp", made durable (fsync),
 * renamed to its final name and the directory fsynced, so a file with the
 * final name is always complete. The same writer serves a snapshot taken
 * locally and one received from the leader in chunks.
 *
 * File layout (little-endian), see docs/storage-format.md:
 *   "CCSNAPSH" | u32 version | u32 header size (64) | u64 last index |
 *   u64 last term | u64 configuration length | u64 data length |
 *   u32 crc32c(configuration || data) | 8 reserved zero bytes |
 *   u32 crc32c(header bytes 0..60) | configuration | data
 */
#ifndef COPYCAT_STORAGE_SNAP_H
#define COPYCAT_STORAGE_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "storage/io.h"

#define SNAP_MAGIC "CCSNAPSH"
#define SNAP_HEADER_SIZE 64
#define SNAP_PREFIX "snapshot-"

/* A snapshot. A file snapshot keeps its file open (io != NULL, fd) and
 * its data on disk only (data NULL): read it with snap_pread or map it
 * with snap_map, so a state larger than memory can be sent and restored.
 * A memory snapshot (memory-only store) holds its data (io NULL). */
struct store_snapshot {
  uint64_t last_index; /* last log index the snapshot covers */
  uint64_t last_term;  /* term of that entry */
  uint8_t *config;     /* configuration as of last_index (opaque bytes) */
  size_t config_len;
  uint8_t *data; /* the state machine's bytes (memory snapshots only) */
  size_t data_len;
  uint32_t data_crc;   /* crc32c of the data alone (what a follower checks) */
  struct store_io *io; /* file snapshots: the table fd belongs to */
  int fd;
};

struct snap_writer;

void snap_free(struct store_snapshot *s);
void snap_name(char *out, size_t size, uint64_t last_index);
/* 1 and *index when `name` is a complete snapshot's file name, else 0. */
int snap_parse_name(const char *name, uint64_t *index);

/* Open and verify the snapshot file `path` (its checksum is computed a
 * chunk at a time: the data is not kept in memory). 0, STORE_ECORRUPT,
 * STORE_EVERSION, STORE_EIO or STORE_ENOMEM (with a message in err). */
int snap_load(struct store_io *io, const char *path, struct store_snapshot *out,
              char *err);

/* Start a snapshot. dir == NULL keeps it in memory only. The configuration
 * is copied. */
int snap_begin(struct store_io *io, const char *dir, uint64_t last_index,
               uint64_t last_term, const void *config, size_t config_len,
               struct snap_writer **out, char *err);
/* Write data bytes at `offset` of the snapshot data. Chunks may be re-sent
 * (offset below what was received) but may not leave a hole:
 * offset > bytes received so far is STORE_EINVAL. */
int snap_write(struct snap_writer *w, uint64_t offset, const void *buf,
               size_t len, char *err);
/* Make the snapshot durable under its final name and fill *out with it
 * (the checksum computed over what the file holds, read back a chunk at a
 * time; the file stays open in *out). Frees the writer, whatever the
 * outcome (on failure the temporary file is removed). */
int snap_finish(struct snap_writer *w, struct store_snapshot *out, char *err);
/* The same for a file snapshot, without reading the data into memory: the
 * checksum is computed over what the file holds, a chunk at a time. */
int snap_finish_file(struct snap_writer *w, char *err);
/* Give up: remove the temporary file and free the writer. */
void snap_abort(struct snap_writer *w);
uint64_t snap_writer_index(const struct snap_writer *w);

/* Reads len data bytes at offset off (within data_len) into buf: 0 or
 * -errno. */
int snap_pread(const struct store_snapshot *s, uint64_t off, void *buf,
               size_t len);
/* The whole data at *data, for a restore: a read-only mapping of the file
 * (pages the kernel can drop again) or the memory snapshot's bytes. 0 or
 * -errno; undo with snap_unmap(s, *cookie). */
int snap_map(const struct store_snapshot *s, const uint8_t **data,
             void **cookie);
void snap_unmap(const struct store_snapshot *s, void *cookie);
uint64_t snap_writer_term(const struct snap_writer *w);

#endif
