/*
 * transfer.h — progress lines of snapshot transfers (transfer.c).
 */
#ifndef COPYCAT_SERVER_TRANSFER_H
#define COPYCAT_SERVER_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

/* When a progress line was last written for the snapshot transfer of
 * `index` (transfer.c). */
struct transfer_log {
  uint64_t index, logged_ms;
};

struct server;

/* transfer.c: progress lines (at most one a second per transfer) of a
 * snapshot of `index` sent to member `to` (bytes of total so far) or
 * received from the leader (bytes so far). */
void transfer__sent(struct server *s, const char *to, uint64_t index,
                    uint64_t bytes, uint64_t total);
void transfer__received(struct server *s, uint64_t index, uint64_t bytes);

#endif
