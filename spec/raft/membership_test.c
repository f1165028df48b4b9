/* Membership: one change at a time through configuration entries that
 * take effect when appended; ACTIVE, PASSIVE and RESERVE members;
 * promotion only once caught up; removal of the leader itself. */
#include "harness.h"
#include "fixture.h"

/* Nodes a, b, c are voters; d and e start empty. */
static void setup(struct fx *f) {
  fx_init_with(f, 5, 3, NULL);
  CHECK(fx_elect(f, 0));
  fx_round(f);
}

static int type_of(struct fx *f, int i, const char *name) {
  const struct raft_conf *c = raft_configuration(f->nodes[i].r);
  int k = raft_conf_find(c, name);
  return k < 0 ? 0 : c->m[k].type;
}

TEST(membership_add_passive_then_promote_once_caught_up) {
  struct fx f;
  setup(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "addr-d", RAFT_PASSIVE), ==, 0);
  fx_drain(&f, 0);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(type_of(&f, 3, "d"), ==, RAFT_PASSIVE); /* d has the log */
  CHECK_INT(raft_last_index(f.nodes[3].r), ==, raft_last_index(f.nodes[0].r));
  CHECK_INT(raft_change(f.nodes[0].r, "d", "addr-d", RAFT_ACTIVE), ==, 0);
  fx_drain(&f, 0);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(type_of(&f, 1, "d"), ==, RAFT_ACTIVE);
  fx_free(&f);
}

TEST(membership_new_member_cannot_join_as_voter) {
  struct fx f;
  setup(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "x", RAFT_ACTIVE), ==,
            RAFT_ENOTCAUGHTUP);
  fx_free(&f);
}

TEST(membership_promotion_refused_while_behind) {
  struct fx f;
  setup(&f);
  raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE);
  fx_drain(&f, 0);
  fx_isolate(&f, 3, true);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  for (int k = 0; k < 100; k++)
    fx_propose(&f, 0, "x"); /* margin 64 */
  fx_deliver_all(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "x", RAFT_ACTIVE), ==,
            RAFT_ENOTCAUGHTUP);
  fx_isolate(&f, 3, false);
  for (int k = 0; k < 6; k++)
    fx_round(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "x", RAFT_ACTIVE), ==, 0);
  fx_free(&f);
}

TEST(membership_one_change_at_a_time) {
  struct fx f;
  setup(&f);
  fx_isolate(&f, 1, true);
  fx_isolate(&f, 2, true);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE), ==, 0);
  fx_drain(&f, 0);
  CHECK_INT(raft_change(f.nodes[0].r, "e", "x", RAFT_PASSIVE), ==,
            RAFT_ECHANGE);
  CHECK_INT(raft_remove(f.nodes[0].r, "c"), ==, RAFT_ECHANGE);
  fx_isolate(&f, 1, false);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "e", "x", RAFT_PASSIVE), ==, 0);
  fx_free(&f);
}

TEST(membership_no_change_before_leader_commits_in_its_term) {
  struct fx f;
  fx_init_with(&f, 5, 3, NULL);
  f.nodes[1].auto_persist = false;
  f.nodes[2].auto_persist = false;
  CHECK(fx_elect(&f, 0));
  CHECK_INT(raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE), ==,
            RAFT_ENOTREADY);
  fx_persist_now(&f, 1);
  fx_deliver_all(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE), ==, 0);
  fx_free(&f);
}

TEST(membership_configuration_takes_effect_when_appended) {
  struct fx f;
  setup(&f);
  f.nodes[1].auto_persist = false;
  f.nodes[2].auto_persist = false;
  raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE);
  fx_drain(&f, 0);
  fx_deliver_all(&f);
  /* Not committed anywhere yet, but in force on leader and followers. */
  CHECK(raft_commit_index(f.nodes[0].r) <
        raft_configuration_index(f.nodes[0].r));
  CHECK_INT(type_of(&f, 0, "d"), ==, RAFT_PASSIVE);
  CHECK_INT(type_of(&f, 1, "d"), ==, RAFT_PASSIVE);
  fx_free(&f);
}

TEST(membership_configuration_reverts_when_its_entry_is_truncated) {
  struct fx f;
  setup(&f);
  fx_isolate(&f, 0, true);
  raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE);
  fx_drain(&f, 0);
  CHECK_INT(type_of(&f, 0, "d"), ==, RAFT_PASSIVE);
  CHECK(fx_force_elect(&f, 1));
  fx_propose(&f, 1, "y");
  fx_deliver_all(&f);
  fx_isolate(&f, 0, false);
  for (int k = 0; k < 6; k++)
    fx_round(&f);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_FOLLOWER);
  CHECK_INT(type_of(&f, 0, "d"), ==, 0); /* the change is gone */
  CHECK_INT(raft_conf_find(raft_configuration(f.nodes[0].r), "a"), >=, 0);
  fx_free(&f);
}

TEST(membership_reserve_member_receives_nothing) {
  struct fx f;
  setup(&f);
  raft_change(f.nodes[0].r, "d", "x", RAFT_RESERVE);
  fx_drain(&f, 0);
  for (int k = 0; k < 10; k++)
    fx_round(&f);
  CHECK_INT(type_of(&f, 0, "d"), ==, RAFT_RESERVE);
  CHECK_INT(f.sent_to[3][RAFT_MSG_APPEND] + f.sent_to[3][RAFT_MSG_HEARTBEAT],
            ==, 0);
  CHECK_INT(raft_last_index(f.nodes[3].r), ==, 0);
  fx_free(&f);
}

TEST(membership_passive_member_never_counts_toward_quorum) {
  struct fx f;
  setup(&f);
  raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE);
  fx_drain(&f, 0);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  fx_isolate(&f, 1, true);
  fx_isolate(&f, 2, true);
  uint64_t commit = raft_commit_index(f.nodes[0].r);
  fx_propose(&f, 0, "x");
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(raft_last_index(f.nodes[3].r), ==, raft_last_index(f.nodes[0].r));
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, commit);
  fx_free(&f);
}

TEST(membership_passive_member_never_campaigns) {
  struct fx f;
  setup(&f);
  raft_change(f.nodes[0].r, "d", "x", RAFT_PASSIVE);
  fx_drain(&f, 0);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  f.nodes[0].up = false;
  f.nodes[1].up = false;
  f.nodes[2].up = false;
  long votes = f.sent[RAFT_MSG_VOTE];
  fx_tick(&f, 3, 100);
  CHECK_INT(raft_role(f.nodes[3].r), ==, RAFT_FOLLOWER);
  CHECK_INT(f.sent[RAFT_MSG_VOTE], ==, votes);
  fx_free(&f);
}

TEST(membership_leader_removing_itself_steps_down_after_commit) {
  struct fx f;
  setup(&f);
  CHECK_INT(raft_remove(f.nodes[0].r, "a"), ==, 0);
  fx_drain(&f, 0);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_LEADER); /* until committed */
  fx_deliver_all(&f);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_FOLLOWER);
  /* The rest elect a leader among themselves. */
  int leader = -1;
  for (int k = 0; k < 60 && leader < 0; k++) {
    fx_round(&f);
    for (int i = 1; i < 3; i++)
      if (raft_role(f.nodes[i].r) == RAFT_LEADER) leader = i;
  }
  CHECK(leader > 0);
  CHECK_INT(fx_propose(&f, leader, "after"), >, 0);
  fx_free(&f);
}

TEST(membership_demotion_and_removal) {
  struct fx f;
  setup(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "c", "addr", RAFT_PASSIVE), ==, 0);
  fx_drain(&f, 0);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(type_of(&f, 1, "c"), ==, RAFT_PASSIVE);
  CHECK_INT(raft_remove(f.nodes[0].r, "c"), ==, 0);
  fx_drain(&f, 0);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(type_of(&f, 1, "c"), ==, 0);
  CHECK_INT(raft_remove(f.nodes[0].r, "zz"), ==, RAFT_ENOTFOUND);
  CHECK_INT(raft_change(f.nodes[0].r, "", "x", RAFT_PASSIVE), ==, RAFT_EINVAL);
  CHECK_INT(raft_change(f.nodes[0].r, "q", "x", 42), ==, RAFT_EINVAL);
  fx_free(&f);
}

TEST(conf_encoding_round_trips_and_rejects_garbage) {
  struct raft_conf c = {0}, d;
  CHECK_INT(raft_conf_add(&c, "n1", "10.0.0.1:5000", RAFT_ACTIVE), ==, 0);
  CHECK_INT(raft_conf_add(&c, "n2", "10.0.0.2:5000", RAFT_PASSIVE), ==, 0);
  CHECK_INT(raft_conf_add(&c, "n1", "dup", RAFT_ACTIVE), ==, RAFT_EINVAL);
  struct raft_buf *b = raft_conf_encode(&c);
  CHECK_INT(raft_conf_decode(&d, b->data, b->len), ==, 0);
  CHECK_INT(d.n, ==, 2);
  CHECK(strcmp(d.m[1].name, "n2") == 0);
  CHECK(strcmp(d.m[1].address, "10.0.0.2:5000") == 0);
  CHECK_INT(d.m[1].type, ==, RAFT_PASSIVE);
  for (size_t cut = 0; cut < b->len; cut++)
    CHECK_INT(raft_conf_decode(&d, b->data, cut), ==, RAFT_EINVAL);
  b->data[3] = 9; /* bad member type */
  CHECK_INT(raft_conf_decode(&d, b->data, b->len), ==, RAFT_EINVAL);
  raft_buf_unref(b);
}

int main(void) {
  RUN(membership_add_passive_then_promote_once_caught_up);
  RUN(membership_new_member_cannot_join_as_voter);
  RUN(membership_promotion_refused_while_behind);
  RUN(membership_one_change_at_a_time);
  RUN(membership_no_change_before_leader_commits_in_its_term);
  RUN(membership_configuration_takes_effect_when_appended);
  RUN(membership_configuration_reverts_when_its_entry_is_truncated);
  RUN(membership_reserve_member_receives_nothing);
  RUN(membership_passive_member_never_counts_toward_quorum);
  RUN(membership_passive_member_never_campaigns);
  RUN(membership_leader_removing_itself_steps_down_after_commit);
  RUN(membership_demotion_and_removal);
  RUN(conf_encoding_round_trips_and_rejects_garbage);
  return harness_done();
}
