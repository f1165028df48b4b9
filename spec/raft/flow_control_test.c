/* Flow control: bytes per AppendEntries, bytes in flight per follower,
 * and a cap on uncommitted data when no quorum answers. */
#include "harness.h"
#include "fixture.h"

static size_t append_bytes = 100, inflight_bytes = 1 << 20;
static size_t uncommitted = 100;
static void tweak(struct raft_options *o, int i) {
  (void)i;
  o->max_append_bytes = append_bytes;
  o->max_inflight_bytes = inflight_bytes;
  o->max_uncommitted_bytes = uncommitted;
}

static const char *B30 = "012345678901234567890123456789";

TEST(flow_append_carries_at_most_max_append_bytes) {
  struct fx f;
  fx_init_with(&f, 3, 3, tweak);
  CHECK(fx_elect(&f, 0));
  fx_round(&f);
  fx_drop_all(&f);
  for (int k = 0; k < 3; k++)
    fx_propose_nodrain(&f, 0, B30);
  fx_drain(&f, 0);
  fx_deliver_all(&f);
  for (int k = 0; k < 3; k++)
    fx_propose_nodrain(&f, 0, B30);
  fx_drain(&f, 0);
  int appends = 0;
  for (int k = 0; k < f.nq; k++) {
    if (f.q[k].type != RAFT_MSG_APPEND) continue;
    size_t bytes = 0;
    for (size_t e = 0; e < f.q[k].u.append.n; e++)
      bytes += f.q[k].u.append.entries[e].buf->len;
    CHECK(bytes <= 100);
    appends++;
  }
  CHECK_INT(appends, >=, 2);
  fx_deliver_all(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 8);
  fx_free(&f);
}

TEST(flow_single_entry_larger_than_the_cap_still_goes) {
  struct fx f;
  fx_init_with(&f, 3, 3, tweak);
  CHECK(fx_elect(&f, 0));
  char big[301];
  memset(big, 'x', 300);
  big[300] = 0;
  CHECK_INT(fx_propose(&f, 0, big), ==, 3);
  fx_deliver_all(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 3);
  fx_free(&f);
}

TEST(flow_bytes_in_flight_per_follower_are_capped) {
  append_bytes = 30;
  inflight_bytes = 100;
  uncommitted = 1 << 20;
  struct fx f;
  fx_init_with(&f, 3, 3, tweak);
  CHECK(fx_elect(&f, 0));
  fx_round(&f);
  long before = f.sent_to[1][RAFT_MSG_APPEND];
  for (int k = 0; k < 10; k++)
    fx_propose_nodrain(&f, 0, B30);
  fx_drain(&f, 0);
  /* 0, 30, 60, 90 bytes in flight when each went out: then it waits. */
  CHECK_INT(f.sent_to[1][RAFT_MSG_APPEND] - before, ==, 4);
  fx_deliver_all(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 12);
  append_bytes = 100;
  inflight_bytes = 1 << 20;
  uncommitted = 100;
  fx_free(&f);
}

TEST(flow_uncommitted_cap_fails_proposals_while_no_quorum) {
  struct fx f;
  fx_init_with(&f, 3, 3, tweak);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 0, true);
  CHECK_INT(fx_propose(&f, 0, B30), >, 0);
  CHECK_INT(fx_propose(&f, 0, B30), >, 0);
  CHECK_INT(fx_propose(&f, 0, B30), >, 0);
  CHECK_INT(fx_propose(&f, 0, B30), ==, RAFT_EBACKLOG);
  CHECK(strstr(raft_strerror(RAFT_EBACKLOG), "quorum") != NULL);
  fx_isolate(&f, 0, false);
  for (int k = 0; k < 6; k++)
    fx_round(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 5);
  CHECK_INT(fx_propose(&f, 0, B30), ==, 6);
  fx_free(&f);
}

int main(void) {
  RUN(flow_append_carries_at_most_max_append_bytes);
  RUN(flow_single_entry_larger_than_the_cap_still_goes);
  RUN(flow_bytes_in_flight_per_follower_are_capped);
  RUN(flow_uncommitted_cap_fails_proposals_while_no_quorum);
  return harness_done();
}
