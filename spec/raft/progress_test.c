/* What the core tells an operator: replication progress per member (on the
 * leader only) and whether a new leader serves yet. */
#include "harness.h"
#include "fixture.h"

TEST(progress_only_on_the_leader) {
  struct fx f;
  fx_init(&f, 3);
  uint64_t match = 7, next = 7;
  CHECK_INT(raft_progress(f.nodes[0].r, 0, &match, &next), ==, -1);
  CHECK(fx_elect(&f, 0));
  CHECK_INT(raft_progress(f.nodes[1].r, 0, &match, &next), ==, -1);
  CHECK(match == 7 && next == 7); /* untouched when refused */
  CHECK_INT(raft_progress(f.nodes[0].r, 3, &match, &next), ==, -1);
  fx_free(&f);
}

TEST(progress_follows_replication) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 2, true);
  fx_propose(&f, 0, "x");
  for (int k = 0; k < 5; k++)
    fx_round(&f);
  uint64_t last = raft_last_index(f.nodes[0].r), match, next;
  const struct raft_conf *c = raft_configuration(f.nodes[0].r);
  int b = raft_conf_find(c, "b"), cc = raft_conf_find(c, "c");
  CHECK_INT(raft_progress(f.nodes[0].r, (unsigned)b, &match, &next), ==, 0);
  CHECK_INT(match, ==, last);
  CHECK_INT(next, ==, last + 1);
  CHECK_INT(raft_progress(f.nodes[0].r, (unsigned)cc, &match, &next), ==, 0);
  CHECK_INT(match, <, last); /* cut off: behind */
  fx_isolate(&f, 2, false);
  for (int k = 0; k < 10; k++)
    fx_round(&f);
  CHECK_INT(raft_progress(f.nodes[0].r, (unsigned)cc, &match, &next), ==, 0);
  CHECK_INT(match, ==, last);
  fx_free(&f);
}

TEST(leader_ready_once_its_term_has_an_entry_committed) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(!raft_leader_ready(f.nodes[0].r));
  CHECK(fx_elect(&f, 0)); /* elected, and its no-op committed */
  CHECK(raft_leader_ready(f.nodes[0].r));
  CHECK(!raft_leader_ready(f.nodes[1].r));
  /* a follower tells the same from its commit index, once it hears it:
   * the entry there is of the leader's term (the operator's "serving") */
  for (int k = 0; k < 3; k++)
    fx_round(&f);
  CHECK_INT(raft_term_at(f.nodes[1].r, raft_commit_index(f.nodes[1].r)), ==,
            raft_term(f.nodes[0].r));
  fx_free(&f);
}

/* A PASSIVE member that never answered is not caught up, even on a log
 * shorter than the catch-up margin: promoting a dead server would make a
 * voter of it. */
TEST(progress_promotion_needs_a_passive_member_that_answered) {
  struct fx f;
  fx_init_with(&f, 4, 3, NULL);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 3, true);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "addr-d", RAFT_PASSIVE), ==, 0);
  fx_drain(&f, 0);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(raft_last_index(f.nodes[0].r), <, 64); /* within the margin */
  CHECK_INT(raft_change(f.nodes[0].r, "d", "addr-d", RAFT_ACTIVE), ==,
            RAFT_ENOTCAUGHTUP);
  fx_isolate(&f, 3, false);
  for (int k = 0; k < 6; k++)
    fx_round(&f);
  CHECK_INT(raft_change(f.nodes[0].r, "d", "addr-d", RAFT_ACTIVE), ==, 0);
  fx_free(&f);
}

int main(void) {
  RUN(progress_only_on_the_leader);
  RUN(progress_follows_replication);
  RUN(leader_ready_once_its_term_has_an_entry_committed);
  RUN(progress_promotion_needs_a_passive_member_that_answered);
  return harness_done();
}
