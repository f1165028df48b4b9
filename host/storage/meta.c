/*
 * meta.c — encoding, decoding and atomic replacement of the metadata file.
 */
#include "storage/meta.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/crc32c.h"
#include "storage/error.h"
#include "storage/format.h"

int meta_init(struct store_meta *m) {
  memset(m, 0, sizeof *m);
  m->vote = calloc(1, 1);
  return m->vote ? 0 : STORE_ENOMEM;
}

void meta_free(struct store_meta *m) {
  free(m->vote);
  free(m->config);
  memset(m, 0, sizeof *m);
}

int meta_copy(struct store_meta *dst, uint64_t term, const char *vote,
              uint64_t config_index, const void *config, size_t config_len) {
  struct store_meta m = {term, NULL, config_index, NULL, config_len};
  m.vote = strdup(vote ? vote : "");
  if (config_len) {
    m.config = malloc(config_len);
    if (m.config) memcpy(m.config, config, config_len);
  }
  if (!m.vote || (config_len && !m.config)) {
    meta_free(&m);
    return STORE_ENOMEM;
  }
  *dst = m;
  return 0;
}

int meta_encode(const struct store_meta *m, uint8_t **buf, size_t *len) {
  size_t vlen = strlen(m->vote);
  size_t n = META_HEADER_SIZE + vlen + m->config_len + 4;
  uint8_t *p = malloc(n);
  if (!p) return STORE_ENOMEM;
  memcpy(p, META_MAGIC, 8);
  put_u32(p + 8, FORMAT_VERSION);
  put_u32(p + 12, (uint32_t)n);
  put_u64(p + 16, m->term);
  put_u64(p + 24, m->config_index);
  put_u32(p + 32, (uint32_t)vlen);
  put_u32(p + 36, (uint32_t)m->config_len);
  memcpy(p + META_HEADER_SIZE, m->vote, vlen);
  if (m->config_len)
    memcpy(p + META_HEADER_SIZE + vlen, m->config, m->config_len);
  put_u32(p + n - 4, crc32c(0, p, n - 4));
  *buf = p;
  *len = n;
  return 0;
}

static int bad(char *err, const char *path, size_t off, const char *what) {
  store_errf(err,
             "%s: %s at offset %zu. The current term and vote of this server "
             "are lost: move the data directory away and let the server "
             "rejoin the cluster (never edit the file by hand; voting twice "
             "in a term breaks safety).",
             path, what, off);
  return STORE_ECORRUPT;
}

int meta_decode(const uint8_t *buf, size_t len, const char *path,
                struct store_meta *m, char *err) {
  if (len < META_HEADER_SIZE + 4)
    return bad(err, path, len, "file too short for a metadata record");
  if (memcmp(buf, META_MAGIC, 8) != 0)
    return bad(err, path, 0, "not a metadata file (bad magic)");
  if (get_u32(buf + 12) != len)
    return bad(err, path, 12, "recorded length differs from the file size");
  if (get_u32(buf + len - 4) != crc32c(0, buf, len - 4))
    return bad(err, path, len - 4, "checksum mismatch");
  uint32_t version = get_u32(buf + 8);
  if (version != FORMAT_VERSION) {
    store_errf(err,
               "%s: metadata format version %u at offset 8, this program "
               "reads version %d. Run the copycat-lua release that wrote "
               "this data directory.",
               path, version, FORMAT_VERSION);
    return STORE_EVERSION;
  }
  uint32_t vlen = get_u32(buf + 32), clen = get_u32(buf + 36);
  if (vlen > META_MAX_VOTE || clen > META_MAX_CONFIG ||
      (uint64_t)META_HEADER_SIZE + vlen + clen + 4 != len)
    return bad(err, path, 32, "impossible field lengths");
  const char *vote = (const char *)buf + META_HEADER_SIZE;
  if (memchr(vote, 0, vlen)) return bad(err, path, 40, "NUL byte in vote");
  struct store_meta out = {get_u64(buf + 16), NULL, get_u64(buf + 24), NULL,
                           clen};
  out.vote = malloc(vlen + 1);
  if (clen) out.config = malloc(clen);
  if (!out.vote || (clen && !out.config)) {
    meta_free(&out);
    return STORE_ENOMEM;
  }
  memcpy(out.vote, vote, vlen);
  out.vote[vlen] = 0;
  if (clen) memcpy(out.config, buf + META_HEADER_SIZE + vlen, clen);
  *m = out;
  return 0;
}

int meta_load(struct store_io *io, const char *dir, struct store_meta *m,
              int *found, char *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/" META_FILE, dir);
  uint8_t *buf;
  size_t len;
  int rc = io_read_file(io, path,
                        META_HEADER_SIZE + META_MAX_VOTE + META_MAX_CONFIG + 4,
                        &buf, &len);
  *found = 0;
  if (rc == -ENOENT) return meta_init(m);
  if (rc) {
    store_errf(err,
               "%s: cannot read: %s. Check the file's "
               "permissions and the disk.",
               path, strerror(-rc));
    return rc == -EFBIG ? STORE_ECORRUPT : store_errno_code(-rc);
  }
  rc = meta_decode(buf, len, path, m, err);
  free(buf);
  if (rc == 0) *found = 1;
  return rc;
}

int meta_save(struct store_io *io, const char *dir, const struct store_meta *m,
              char *err) {
  uint8_t *buf;
  size_t len;
  int rc = meta_encode(m, &buf, &len);
  if (rc) return rc;
  rc = io_replace_file(io, dir, META_FILE, buf, len);
  free(buf);
  if (rc) {
    store_errf(err,
               "%s/" META_FILE
               ": cannot replace: %s. The term and vote "
               "were not saved; free disk space or fix the disk.",
               dir, strerror(-rc));
    return store_errno_code(-rc);
  }
  return 0;
}
