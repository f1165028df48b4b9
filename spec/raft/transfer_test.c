/* Leadership transfer: bring the target up to date, then TimeoutNow. */
#include "harness.h"
#include "fixture.h"

static void setup(struct fx *f) {
  fx_init(f, 3);
  CHECK(fx_elect(f, 0));
  fx_round(f);
}

TEST(transfer_to_caught_up_member_sends_timeout_now_and_it_wins) {
  struct fx f;
  setup(&f);
  uint64_t term = raft_term(f.nodes[0].r);
  CHECK_INT(raft_transfer(f.nodes[0].r, "b"), ==, 0);
  fx_drain(&f, 0);
  CHECK_INT(f.sent_to[1][RAFT_MSG_TIMEOUT_NOW], ==, 1);
  fx_deliver_all(&f);
  CHECK_INT(raft_role(f.nodes[1].r), ==, RAFT_LEADER);
  CHECK_INT(raft_term(f.nodes[1].r), ==, term + 1);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_FOLLOWER);
  fx_free(&f);
}

TEST(transfer_brings_the_target_up_to_date_first) {
  struct fx f;
  setup(&f);
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 10; k++)
    fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  CHECK_INT(raft_transfer(f.nodes[0].r, "c"), ==, 0);
  fx_drain(&f, 0);
  CHECK_INT(f.sent_to[2][RAFT_MSG_TIMEOUT_NOW], ==, 0);
  fx_isolate(&f, 2, false);
  for (int k = 0; k < 8 && raft_role(f.nodes[2].r) != RAFT_LEADER; k++)
    fx_round(&f);
  CHECK_INT(f.sent_to[2][RAFT_MSG_TIMEOUT_NOW], ==, 1);
  CHECK_INT(raft_role(f.nodes[2].r), ==, RAFT_LEADER);
  CHECK_INT(raft_last_index(f.nodes[2].r), >=, 12);
  fx_free(&f);
}

TEST(transfer_pauses_proposals_until_done_or_abandoned) {
  struct fx f;
  setup(&f);
  fx_isolate(&f, 1, true);
  CHECK_INT(raft_transfer(f.nodes[0].r, "b"), ==, 0);
  fx_drain(&f, 0);
  CHECK_INT(fx_propose(&f, 0, "x"), ==, RAFT_ETRANSFER);
  CHECK_INT(raft_transfer(f.nodes[0].r, "c"), ==, RAFT_ETRANSFER);
  /* b never answers: after an election timeout the leader gives up. */
  fx_tick(&f, 0, 10);
  fx_deliver_all(&f);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_LEADER);
  CHECK_INT(fx_propose(&f, 0, "x"), >, 0);
  fx_free(&f);
}

TEST(transfer_target_must_be_an_active_member) {
  struct fx f;
  setup(&f);
  CHECK_INT(raft_transfer(f.nodes[0].r, "zz"), ==, RAFT_ENOTFOUND);
  CHECK_INT(raft_transfer(f.nodes[0].r, "a"), ==, RAFT_EINVAL);
  CHECK_INT(raft_transfer(f.nodes[1].r, "c"), ==, RAFT_ENOTLEADER);
  fx_free(&f);
}

TEST(transfer_vote_overrides_stickiness) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  fx_round(&f);
  /* c heard from a just now, so it would refuse a normal election; the
   * transfer's vote request carries the transfer flag. */
  CHECK_INT(raft_transfer(f.nodes[0].r, "b"), ==, 0);
  fx_drain(&f, 0);
  fx_deliver_all(&f);
  CHECK_INT(raft_role(f.nodes[1].r), ==, RAFT_LEADER);
  CHECK(strcmp(f.nodes[2].hs.vote, "b") == 0);
  fx_free(&f);
}

int main(void) {
  RUN(transfer_to_caught_up_member_sends_timeout_now_and_it_wins);
  RUN(transfer_brings_the_target_up_to_date_first);
  RUN(transfer_pauses_proposals_until_done_or_abandoned);
  RUN(transfer_target_must_be_an_active_member);
  RUN(transfer_vote_overrides_stickiness);
  return harness_done();
}
