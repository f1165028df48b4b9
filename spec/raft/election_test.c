/* Leader election: randomized timeouts, one vote per term, up-to-date
 * logs, durable votes and terms. */
#include "harness.h"
#include "fixture.h"

static void no_prevote(struct raft_options *o, int i) {
  (void)i;
  o->pre_vote = false;
}

TEST(election_elects_exactly_one_leader) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  CHECK_INT(raft_term(f.nodes[0].r), ==, 2);
  for (int i = 1; i < 3; i++) {
    CHECK_INT(raft_role(f.nodes[i].r), ==, RAFT_FOLLOWER);
    CHECK_INT(raft_term(f.nodes[i].r), ==, 2);
  }
  fx_round(&f);
  CHECK(strcmp(raft_leader(f.nodes[1].r), "a") == 0);
  CHECK(strcmp(raft_leader(f.nodes[2].r), "a") == 0);
  fx_free(&f);
}

TEST(election_timeout_is_randomized_within_one_to_two_timeouts) {
  int first[8];
  for (int s = 0; s < 8; s++) {
    struct raft_options o;
    fx_opts(&o, "a", s);
    o.pre_vote = false;
    struct raft *r = raft_new(&o);
    struct raft_conf c = {0};
    raft_conf_add(&c, "a", "x", RAFT_ACTIVE);
    raft_conf_add(&c, "b", "x", RAFT_ACTIVE);
    raft_bootstrap(r, &c);
    int t = 0;
    while (raft_role(r) == RAFT_FOLLOWER && t < 100) {
      raft_tick(r);
      t++;
    }
    CHECK_INT(t, >=, 10);
    CHECK_INT(t, <, 20);
    first[s] = t;
    raft_free(r);
  }
  bool differ = false;
  for (int s = 1; s < 8; s++)
    differ |= first[s] != first[0];
  CHECK(differ);
}

TEST(election_candidate_term_and_vote_durable_before_requests) {
  struct fx f;
  fx_init_with(&f, 3, 3, no_prevote);
  struct raft *r = f.nodes[0].r;
  while (raft_role(r) == RAFT_FOLLOWER)
    raft_tick(r);
  struct raft_ready rd;
  raft_ready_get(r, &rd);
  /* The same ready that carries the vote requests carries the new term
   * and self-vote: the host must persist them before sending. */
  CHECK(rd.hs_changed);
  CHECK_INT(rd.hs.term, ==, 2);
  CHECK(strcmp(rd.hs.vote, "a") == 0);
  int votes = 0;
  for (size_t k = 0; k < rd.n_msgs; k++)
    votes += rd.msgs[k].type == RAFT_MSG_VOTE && !rd.msgs[k].u.vote.prevote;
  CHECK_INT(votes, ==, 2);
  raft_ready_done(r, &rd);
  fx_free(&f);
}

TEST(election_one_vote_per_term) {
  struct fx f;
  fx_init_with(&f, 3, 3, no_prevote);
  struct raft_msg m1 = fx_vote_msg("b", "a", 2, 1, 1, false, false);
  struct raft_msg m2 = fx_vote_msg("c", "a", 2, 1, 1, false, false);
  CHECK_INT(fx_vote_granted(&f, 0, &m1), ==, 1);
  CHECK_INT(fx_vote_granted(&f, 0, &m2), ==, 0);
  CHECK_INT(fx_vote_granted(&f, 0, &m1), ==,
            1); /* a retry is answered the same */
  fx_free(&f);
}

TEST(election_vote_durable_before_response) {
  struct fx f;
  fx_init_with(&f, 3, 3, no_prevote);
  struct raft_msg m = fx_vote_msg("b", "a", 2, 1, 1, false, false);
  raft_step(f.nodes[0].r, &m);
  struct raft_ready rd;
  raft_ready_get(f.nodes[0].r, &rd);
  CHECK(rd.hs_changed);
  CHECK(strcmp(rd.hs.vote, "b") == 0);
  CHECK_INT(rd.hs.term, ==, 2);
  CHECK_INT(rd.n_msgs, ==, 1);
  CHECK(rd.msgs[0].u.vote_resp.granted);
  raft_ready_done(f.nodes[0].r, &rd);
  fx_free(&f);
}

TEST(election_vote_survives_restart) {
  struct fx f;
  fx_init_with(&f, 3, 3, no_prevote);
  struct raft_msg m = fx_vote_msg("b", "a", 2, 1, 1, false, false);
  CHECK_INT(fx_vote_granted(&f, 0, &m), ==, 1);
  /* Restart "a" from what it made durable. */
  struct raft_options o;
  fx_opts(&o, "a", 0);
  o.pre_vote = false;
  struct raft *r = raft_new(&o);
  struct raft_conf c = {0};
  raft_conf_add(&c, "a", "addr", RAFT_ACTIVE);
  raft_conf_add(&c, "b", "addr", RAFT_ACTIVE);
  raft_conf_add(&c, "c", "addr", RAFT_ACTIVE);
  struct raft_entry e = {
      .term = 1, .type = RAFT_CONFIG, .buf = raft_conf_encode(&c)};
  CHECK_INT(raft_load(r, &f.nodes[0].hs, NULL, 1, &e, 1), ==, 0);
  raft_buf_unref(e.buf);
  raft_free(f.nodes[0].r);
  f.nodes[0].r = r;
  struct raft_msg m2 = fx_vote_msg("c", "a", 2, 1, 1, false, false);
  CHECK_INT(fx_vote_granted(&f, 0, &m2), ==, 0);
  fx_free(&f);
}

TEST(election_rejects_candidate_with_out_of_date_log) {
  struct fx f;
  fx_init_with(&f, 3, 3, no_prevote);
  CHECK(fx_elect(&f, 0));
  fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  CHECK_INT(raft_last_index(f.nodes[1].r), ==, 3);
  /* "c" claims a log ending at (2, term 2): shorter than b's (3, 2).
   * (Marked as a transfer so that b's loyalty to a does not interfere.) */
  struct raft_msg m = fx_vote_msg("c", "b", 3, 2, 2, false, false);
  m.u.vote.transfer = true;
  CHECK_INT(fx_vote_granted(&f, 1, &m), ==, 0);
  /* A higher last term wins even with fewer entries. */
  struct raft_msg m2 = fx_vote_msg("c", "b", 4, 1, 3, false, false);
  m2.u.vote.transfer = true;
  CHECK_INT(fx_vote_granted(&f, 1, &m2), ==, 1);
  fx_free(&f);
}

TEST(election_higher_term_makes_leader_step_down) {
  struct fx f;
  fx_init_with(&f, 3, 3, no_prevote);
  CHECK(fx_elect(&f, 0));
  struct raft_msg m;
  memset(&m, 0, sizeof m);
  m.type = RAFT_MSG_APPEND_RESP;
  m.term = 9;
  strcpy(m.from, "b");
  strcpy(m.to, "a");
  raft_step(f.nodes[0].r, &m);
  fx_drain(&f, 0);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_FOLLOWER);
  CHECK_INT(raft_term(f.nodes[0].r), ==, 9);
  CHECK_INT(f.nodes[0].hs.term, ==, 9);
  fx_free(&f);
}

TEST(election_new_leader_appends_noop_at_once) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  CHECK_INT(raft_last_index(f.nodes[0].r), ==, 2);
  CHECK_INT(raft_entry_at(f.nodes[0].r, 2)->type, ==, RAFT_NOOP);
  CHECK_INT(raft_entry_at(f.nodes[0].r, 2)->term, ==, 2);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 2);
  fx_free(&f);
}

TEST(election_single_node_elects_itself) {
  struct fx f;
  fx_init(&f, 1);
  CHECK(fx_elect(&f, 0));
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 2);
  fx_free(&f);
}

TEST(election_bad_options_rejected) {
  struct raft_options o;
  fx_opts(&o, "a", 0);
  o.heartbeat_interval = o.election_timeout;
  CHECK(raft_new(&o) == NULL);
  fx_opts(&o, "", 0);
  CHECK(raft_new(&o) == NULL);
  fx_opts(&o, "a", 0);
  o.max_inflight_msgs = 0;
  CHECK(raft_new(&o) == NULL);
}

/* raft_set_campaign(false): a server that must not lead (removed,
 * diverged) stops campaigning, as a pre-candidate too, but still votes;
 * allowed again, it campaigns again. */
TEST(election_forbidden_campaigns_stop_but_votes_go_on) {
  struct fx f;
  fx_init(&f, 3);
  struct raft *c = f.nodes[2].r;
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 100 && raft_role(c) != RAFT_PRECANDIDATE; k++)
    fx_tick(&f, 2, 1);
  CHECK_INT(raft_role(c), ==, RAFT_PRECANDIDATE);
  raft_set_campaign(c, false);
  CHECK_INT(raft_role(c), ==, RAFT_FOLLOWER);
  uint64_t term = raft_term(c);
  for (int k = 0; k < 200; k++)
    fx_tick(&f, 2, 1);
  CHECK_INT(raft_role(c), ==, RAFT_FOLLOWER);
  CHECK(raft_term(c) == term);
  /* it still votes: the others elect a leader with its vote */
  fx_isolate(&f, 2, false);
  fx_isolate(&f, 1, true);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 1, false);
  /* a leadership transfer to it does not make it campaign either */
  CHECK(!fx_force_elect(&f, 2));
  CHECK_INT(raft_role(c), ==, RAFT_FOLLOWER);
  raft_set_campaign(c, true);
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 100 && raft_role(c) == RAFT_FOLLOWER; k++)
    fx_tick(&f, 2, 1);
  CHECK(raft_role(c) != RAFT_FOLLOWER);
  fx_free(&f);
}

int main(void) {
  RUN(election_elects_exactly_one_leader);
  RUN(election_timeout_is_randomized_within_one_to_two_timeouts);
  RUN(election_candidate_term_and_vote_durable_before_requests);
  RUN(election_one_vote_per_term);
  RUN(election_vote_durable_before_response);
  RUN(election_vote_survives_restart);
  RUN(election_rejects_candidate_with_out_of_date_log);
  RUN(election_higher_term_makes_leader_step_down);
  RUN(election_new_leader_appends_noop_at_once);
  RUN(election_single_node_elects_itself);
  RUN(election_bad_options_rejected);
  RUN(election_forbidden_campaigns_stop_but_votes_go_on);
  return harness_done();
}
