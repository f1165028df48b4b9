/*
 * transfer.c — progress lines of a snapshot sent to a follower (on the
 * leader) or received from the leader (on the follower), so that an
 * operator watching a large transfer sees it move. At most one line per
 * second per transfer, the first as it starts (docs/logging.md). The
 * receiver cannot say of how many bytes: a chunk does not carry the
 * snapshot's size (docs/protocol.md); the sender can.
 */
#include <assert.h>
#include <string.h>

#include "server/server_int.h"

#define TRANSFER_LOG_MS 1000

/* Whether a line is due for transfer `index` tracked by t, and if so
 * records that it is being written. */
static int due(struct server *s, struct transfer_log *t, uint64_t index) {
  uint64_t now = uv_now(s->loop);
  if (t->index == index && now - t->logged_ms < TRANSFER_LOG_MS) return 0;
  t->index = index;
  t->logged_ms = now;
  return 1;
}

void transfer__sent(struct server *s, const char *to, uint64_t index,
                    uint64_t bytes, uint64_t total) {
  assert(bytes <= total);
  struct transfer_log *t = peers__snap_log(s, to);
  if (!t || !logger_enabled(&s->log, LOGGER_INFO) || !due(s, t, index)) return;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "snapshot_sending");
  logger_str(&l, "peer", to);
  logger_u64(&l, "index", index);
  logger_u64(&l, "bytes", bytes);
  logger_u64(&l, "total", total);
  logger_f64(&l, "percent",
             total ? 100.0 * (double)bytes / (double)total : 100.0);
  logger_end(&l);
}

void transfer__received(struct server *s, uint64_t index, uint64_t bytes) {
  if (!logger_enabled(&s->log, LOGGER_INFO) || !due(s, &s->snaps.in_log, index))
    return;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "snapshot_receiving");
  logger_u64(&l, "index", index);
  logger_u64(&l, "bytes", bytes);
  logger_str(&l, "leader", raft_leader(s->raft));
  logger_end(&l);
}
