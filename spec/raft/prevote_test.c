/* Pre-vote (a poll that does not bump terms), vote stickiness while a
 * leader is live, and check-quorum. */
#include "harness.h"
#include "fixture.h"

static void with_cq(struct raft_options *o, int i) {
  (void)i;
  o->check_quorum = true;
}

TEST(prevote_does_not_bump_term) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  uint64_t term = raft_term(f.nodes[0].r);
  /* "c" is cut off and times out again and again. */
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 100; k++)
    fx_round(&f);
  CHECK_INT(raft_role(f.nodes[2].r), ==, RAFT_PRECANDIDATE);
  CHECK_INT(raft_term(f.nodes[2].r), ==, term);
  CHECK_INT(f.nodes[2].hs.term, ==, term);
  CHECK(f.sent[RAFT_MSG_VOTE] > 0);
  fx_free(&f);
}

TEST(prevote_returning_node_does_not_disrupt_leader) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  uint64_t term = raft_term(f.nodes[0].r);
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 100; k++)
    fx_round(&f);
  fx_isolate(&f, 2, false);
  for (int k = 0; k < 30; k++)
    fx_round(&f);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_LEADER);
  CHECK_INT(raft_term(f.nodes[0].r), ==, term);
  CHECK_INT(raft_role(f.nodes[2].r), ==, RAFT_FOLLOWER);
  CHECK(strcmp(raft_leader(f.nodes[2].r), "a") == 0);
  fx_free(&f);
}

TEST(prevote_granted_then_real_election_bumps_term_once) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 1));
  CHECK_INT(raft_term(f.nodes[1].r), ==, 2);
  CHECK(f.sent[RAFT_MSG_VOTE] >= 4); /* two polls, two real requests */
  fx_free(&f);
}

TEST(stickiness_follower_with_live_leader_refuses_votes) {
  struct fx f;
  fx_init_with(&f, 3, 3, with_cq);
  CHECK(fx_force_elect(&f, 0));
  fx_round(&f);
  uint64_t term = raft_term(f.nodes[1].r);
  uint64_t li = raft_last_index(f.nodes[1].r);
  struct raft_msg m = fx_vote_msg("c", "b", term + 1, li, term, false, false);
  CHECK_INT(fx_vote_granted(&f, 1, &m), ==, 0);
  CHECK_INT(raft_term(f.nodes[1].r), ==, term); /* not even the term */
  struct raft_msg p = fx_vote_msg("c", "b", term + 1, li, term, true, false);
  CHECK_INT(fx_vote_granted(&f, 1, &p), ==, 0);
  /* ...unless the request comes from a leadership transfer. */
  struct raft_msg t = fx_vote_msg("c", "b", term + 1, li, term, false, true);
  CHECK_INT(fx_vote_granted(&f, 1, &t), ==, 1);
  fx_free(&f);
}

TEST(stickiness_ends_an_election_timeout_after_leader_contact) {
  struct fx f;
  fx_init_with(&f, 3, 3, with_cq);
  CHECK(fx_force_elect(&f, 0));
  fx_round(&f);
  f.nodes[0].up = false; /* leader gone */
  uint64_t term = raft_term(f.nodes[1].r);
  uint64_t li = raft_last_index(f.nodes[1].r);
  /* b last heard from a one tick ago; its lease on a lasts 10 ticks. */
  fx_tick(&f, 1, 8);
  fx_drop_all(&f);
  struct raft_msg p = fx_vote_msg("c", "b", term + 1, li, term, true, false);
  CHECK_INT(fx_vote_granted(&f, 1, &p), ==, 0);
  fx_tick(&f, 1, 1);
  fx_drop_all(&f);
  /* 10 ticks without the leader: b answers polls again (unless its own
   * timeout of 10 fired and it is polling itself). */
  if (raft_role(f.nodes[1].r) == RAFT_FOLLOWER)
    CHECK_INT(fx_vote_granted(&f, 1, &p), ==, 1);
  fx_free(&f);
}

TEST(checkquorum_leader_steps_down_without_majority) {
  struct fx f;
  fx_init_with(&f, 3, 3, with_cq);
  CHECK(fx_force_elect(&f, 0));
  fx_isolate(&f, 0, true);
  int k = 0;
  while (raft_role(f.nodes[0].r) == RAFT_LEADER && k < 100) {
    fx_tick(&f, 0, 1);
    fx_deliver_all(&f);
    k++;
  }
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_FOLLOWER);
  CHECK_INT(k, <=, 20); /* within two election timeouts */
  fx_free(&f);
}

TEST(checkquorum_leader_with_majority_stays) {
  struct fx f;
  fx_init_with(&f, 3, 3, with_cq);
  CHECK(fx_force_elect(&f, 0));
  fx_isolate(&f, 2, true); /* a minority is gone */
  for (int k = 0; k < 60; k++)
    fx_round(&f);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_LEADER);
  fx_free(&f);
}

int main(void) {
  RUN(prevote_does_not_bump_term);
  RUN(prevote_returning_node_does_not_disrupt_leader);
  RUN(prevote_granted_then_real_election_bumps_term_once);
  RUN(stickiness_follower_with_live_leader_refuses_votes);
  RUN(stickiness_ends_an_election_timeout_after_leader_contact);
  RUN(checkquorum_leader_steps_down_without_majority);
  RUN(checkquorum_leader_with_majority_stays);
  return harness_done();
}
