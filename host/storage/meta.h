/*
 * meta.h — the metadata file: current term, vote, and the latest
 * configuration with its log index. Replaced atomically as a whole (write
 * "metadata.tmp", fsync, rename to "metadata", fsync the directory).
 *
 * File layout (little-endian), see docs/storage-format.md:
 *   "CCMETADT" | u32 version | u32 file length | u64 term |
 *   u64 configuration index | u32 vote length | u32 configuration length |
 *   vote bytes | configuration bytes | u32 crc32c(all preceding bytes)
 */
#ifndef COPYCAT_STORAGE_META_H
#define COPYCAT_STORAGE_META_H

#include <stddef.h>
#include <stdint.h>

#include "storage/io.h"

#define META_FILE "metadata"
#define META_MAGIC "CCMETADT"
#define META_HEADER_SIZE 40
#define META_MAX_VOTE 1024
#define META_MAX_CONFIG (64u * 1024 * 1024)

struct store_meta {
  uint64_t term;
  char *vote; /* NUL-terminated server name; "" when no vote this term */
  uint64_t config_index;
  uint8_t *config; /* opaque configuration bytes (may be NULL when 0) */
  size_t config_len;
};

/* Set *m to the empty metadata (term 0, no vote, no configuration). */
int meta_init(struct store_meta *m);
void meta_free(struct store_meta *m);
/* Deep copy; 0 or STORE_ENOMEM. */
int meta_copy(struct store_meta *dst, uint64_t term, const char *vote,
              uint64_t config_index, const void *config, size_t config_len);

/* Encode m into a malloc'd buffer (*buf, *len). 0 or STORE_ENOMEM. */
int meta_encode(const struct store_meta *m, uint8_t **buf, size_t *len);
/* Decode a file image; `path` names it in error messages.
 * 0, STORE_ECORRUPT, STORE_EVERSION or STORE_ENOMEM. */
int meta_decode(const uint8_t *buf, size_t len, const char *path,
                struct store_meta *m, char *err);

/* Load dir/metadata. *found = 0 (and m empty) when the file does not
 * exist. */
int meta_load(struct store_io *io, const char *dir, struct store_meta *m,
              int *found, char *err);
/* Replace dir/metadata atomically and durably. */
int meta_save(struct store_io *io, const char *dir, const struct store_meta *m,
              char *err);

#endif
