/*
 * frame.c — splitting a byte stream into length-prefixed frames.
 *
 * The reader keeps unconsumed bytes in one buffer and compacts it lazily.
 * A declared length is checked against max_frame as soon as its 4 bytes
 * are in, so a hostile 4 GiB prefix costs nothing but the 4 bytes.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

void net_reader_init(struct net_reader *r, uint32_t max_frame) {
  memset(r, 0, sizeof *r);
  r->max_frame = max_frame ? max_frame : NET_DEFAULT_MAX_FRAME;
}

void net_reader_free(struct net_reader *r) {
  free(r->buf);
  memset(r, 0, sizeof *r);
}

void net_put_prefix(char out[4], uint32_t len) {
  out[0] = (char)(len >> 24);
  out[1] = (char)(len >> 16);
  out[2] = (char)(len >> 8);
  out[3] = (char)len;
}

static uint32_t get_prefix(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
         (uint32_t)u[3];
}

char *net_reader_space(struct net_reader *r, size_t min, size_t *avail) {
  assert(r->off <= r->len && r->len <= r->cap);
  if (r->off > 0) { /* drop consumed frames first */
    memmove(r->buf, r->buf + r->off, r->len - r->off);
    r->len -= r->off;
    r->off = 0;
  }
  if (r->cap - r->len < min) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap - r->len < min)
      cap *= 2;
    char *b = realloc(r->buf, cap);
    if (!b) return NULL;
    r->buf = b;
    r->cap = cap;
  }
  *avail = r->cap - r->len;
  return r->buf + r->len;
}

void net_reader_commit(struct net_reader *r, size_t n) {
  assert(r->len + n <= r->cap);
  r->len += n;
}

int net_reader_feed(struct net_reader *r, const char *data, size_t n) {
  size_t avail;
  if (n == 0) return 0;
  char *p = net_reader_space(r, n, &avail);
  if (!p) return UV_ENOMEM;
  memcpy(p, data, n);
  net_reader_commit(r, n);
  return 0;
}

int net_reader_ready(const struct net_reader *r) {
  size_t avail = r->len - r->off;
  if (avail < 4) return 0;
  uint32_t n = get_prefix(r->buf + r->off);
  return n > r->max_frame || avail - 4 >= n;
}

int net_reader_next(struct net_reader *r, const char **frame, size_t *len) {
  size_t avail = r->len - r->off;
  if (avail < 4) return 0;
  uint32_t n = get_prefix(r->buf + r->off);
  if (n > r->max_frame) return NET_ETOOBIG;
  if (avail - 4 < n) return 0;
  *frame = r->buf + r->off + 4;
  *len = n;
  r->off += 4 + (size_t)n;
  return 1;
}

int net_split_address(const char *addr, char *host, size_t hostlen, int *port) {
  const char *colon, *h = addr;
  size_t hlen;
  if (addr[0] == '[') { /* [v6]:port */
    const char *end = strchr(addr, ']');
    if (!end || end[1] != ':') return NET_EADDR;
    h = addr + 1;
    hlen = (size_t)(end - h);
    colon = end + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon || strchr(addr, ':') != colon) return NET_EADDR;
    hlen = (size_t)(colon - addr);
  }
  if (hlen == 0 || hlen >= hostlen) return NET_EADDR;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535) return NET_EADDR;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (int)p;
  return 0;
}

const char *net_strerror(int code) {
  switch (code) {
    case NET_ETOOBIG:
      return "frame larger than the limit";
    case NET_EQUEUE:
      return "peer is not reading: outgoing queue over its limit";
    case NET_ECLOSED:
      return "connection is closed";
    case NET_EADDR:
      return "address must be host:port (or [ipv6]:port)";
    case NET_ETLS:
      return "TLS failure";
    case NET_ETIMEDOUT:
      return "not authenticated in time";
    default:
      return uv_strerror(code);
  }
}
