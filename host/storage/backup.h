/*
 * backup.h — backup files: a server's snapshot, taken out of its data
 * directory so that a new cluster can be built from it
 * (`ctl snapshot save`, `ctl snapshot status`, `copycat-lua restore`).
 *
 * A backup is written as a stream (the server produces it piece by piece
 * from its newest snapshot file, ctl writes the pieces to a file), so it
 * never needs the whole state in memory on either side. Every part is
 * checksummed on its own, so a file cut anywhere or with any bit flipped is
 * refused with a message naming what is wrong and where.
 *
 * File layout (little-endian), see docs/storage-format.md:
 *   header   "CCBACKUP" | u32 version | u32 header length H | u64 last index |
 *            u64 last term | u64 data length D | u32 chunk size C |
 *            u32 configuration length | u32 info length |
 *            u32 crc32c of the source snapshot (configuration || data) |
 *            u32 0 | u32 crc32c(bytes 0..59) | configuration | info |
 *            u32 crc32c(bytes 0..H-5)
 *   chunks   ceil(D / C) times: up to C data bytes | u32 crc32c(those bytes)
 *   trailer  "CCBKDONE" | u64 D | u32 chunk count | u32 crc32c(all data) |
 *            u32 crc32c(trailer bytes 0..23)
 * The file is exactly H + D + 4 * chunks + 28 bytes long.
 *
 * The configuration is the Raft configuration as of the last index (the
 * encoding of raft_conf_encode); info is an opaque msgpack map the caller
 * chooses (cluster id, member, state machine, time; see bindings/l_backup.c).
 *
 * Threading: nothing here touches an event loop; each object is used by
 * one thread at a time (the server reads on libuv's thread pool).
 */
#ifndef COPYCAT_STORAGE_BACKUP_H
#define COPYCAT_STORAGE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#define BACKUP_MAGIC "CCBACKUP"
#define BACKUP_TRAILER_MAGIC "CCBKDONE"
#define BACKUP_VERSION 1
#define BACKUP_FIXED 64
#define BACKUP_TRAILER 28
#define BACKUP_DEFAULT_CHUNK (1u << 20)
#define BACKUP_MIN_CHUNK 4096u
#define BACKUP_MAX_CHUNK (64u << 20)
#define BACKUP_MAX_CONFIG (16u << 20)
#define BACKUP_MAX_INFO (1u << 20)

/* What a backup file holds, as its header and trailer say. */
struct backup_info {
  uint64_t index, term; /* the snapshot's last index and its term */
  uint64_t data_len;    /* state machine bytes */
  uint32_t chunk_size;  /* data bytes per chunk */
  uint32_t chunks;      /* number of chunks */
  uint32_t data_crc;    /* crc32c of all data bytes (from the trailer) */
  uint32_t snap_crc;    /* crc32c the source snapshot file carried */
  uint64_t file_size;   /* bytes of the whole file */
  uint8_t *config;      /* configuration bytes (malloc'd) */
  size_t config_len;
  uint8_t *info; /* info bytes (malloc'd) */
  size_t info_len;
};

void backup_info_free(struct backup_info *b);

/* ---- producing a backup from a snapshot file ---- */

struct backup_src;

/* Opens the snapshot file `snap_path` (storage/snap.h layout) and checks
 * its header; info (info_len bytes) goes into the backup's header. The
 * file stays open, so a newer snapshot that deletes it does not disturb
 * the backup. chunk: data bytes per chunk, 0 for the default.
 * 0, or a negative STORE_E* code with a message in err. */
int backup_src_open(const char *snap_path, const void *info, size_t info_len,
                    uint32_t chunk, struct backup_src **out, char *err);
/* Bytes of the whole backup file this source produces. */
uint64_t backup_src_size(const struct backup_src *b);
/* The next piece of the file (the header, one chunk with its checksum, or
 * the trailer): *piece points into b, valid until the next call; *len 0
 * once everything was produced. A snapshot file that turns out damaged
 * (its checksum does not match what was read) is STORE_ECORRUPT, and no
 * trailer is produced, so the partial backup can never pass a check. */
int backup_src_next(struct backup_src *b, const uint8_t **piece, size_t *len,
                    char *err);
void backup_src_close(struct backup_src *b);

/* ---- reading a backup file ---- */

/* Called for each chunk of data in order (offset: of the chunk in the
 * data) once its checksum has passed; nonzero stops the read, which then
 * returns that value (err is the callback's to fill). */
typedef int (*backup_chunk_cb)(void *data, uint64_t offset, const void *buf,
                               size_t len, char *err);

/* Reads and checks the whole file at `path` with memory bounded by one
 * chunk, calling cb (may be NULL) for each chunk; fills *out (free with
 * backup_info_free) when everything checks. 0, or STORE_ECORRUPT (the
 * message names the part and the offset: truncated, bad magic, checksum
 * mismatch, ...), STORE_EVERSION, STORE_EIO, STORE_ENOMEM, or cb's value. */
int backup_read(const char *path, backup_chunk_cb cb, void *data,
                struct backup_info *out, char *err);

/* ---- restoring ---- */

/*
 * Prepares the data directory `dir` (created if missing; it must hold no
 * server data) of one member of a new cluster from the backup at `path`:
 * the snapshot file (with configuration `config`, the new cluster's
 * members), the metadata (the backup's term, no vote, that
 * configuration) and the file "cluster-id" holding `cluster`. The backup
 * is checked as it is copied; nothing is left in dir under a final name
 * unless all of it checked. 0 or a negative STORE_E* code with err.
 */
int backup_restore(const char *path, const char *dir, const void *config,
                   size_t config_len, const char *cluster,
                   struct backup_info *out, char *err);

/* The file in a data directory naming the cluster it belongs to. */
#define BACKUP_CLUSTER_FILE "cluster-id"

#endif
