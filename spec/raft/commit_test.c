/* The commit rule: a majority of durable replicas, and only entries of
 * the leader's own term are committed by counting. */
#include "harness.h"
#include "fixture.h"

static size_t append_bytes = 1 << 20;
static void tweak(struct raft_options *o, int i) {
  (void)i;
  o->max_append_bytes = append_bytes;
}

TEST(commit_requires_a_majority) {
  struct fx f;
  fx_init(&f, 5);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 2, true);
  fx_isolate(&f, 3, true);
  fx_isolate(&f, 4, true);
  fx_propose(&f, 0, "x");
  for (int k = 0; k < 5; k++)
    fx_round(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 2); /* 2 of 5 */
  fx_isolate(&f, 2, false);
  for (int k = 0; k < 5; k++)
    fx_round(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 3); /* 3 of 5 */
  fx_free(&f);
}

/* Figure 8 of the Raft paper, in small: a leader of term 4 finds an entry
 * of term 2 that only it holds, replicates it one entry per message, and
 * must not commit it before its own term's no-op is on a majority. */
TEST(commit_only_counts_entries_of_the_current_term) {
  append_bytes = 1;
  struct fx f;
  fx_init_with(&f, 3, 3, tweak);
  CHECK(fx_elect(&f, 0)); /* term 2, no-op at 2 committed */
  fx_isolate(&f, 0, true);
  fx_propose(&f, 0, "old"); /* index 3, term 2: only on a */
  /* b wins term 3 with c's vote and fails before sending anything. */
  struct raft_msg tn;
  memset(&tn, 0, sizeof tn);
  tn.type = RAFT_MSG_TIMEOUT_NOW;
  tn.term = raft_term(f.nodes[1].r);
  strcpy(tn.from, "c");
  strcpy(tn.to, "b");
  raft_step(f.nodes[1].r, &tn);
  fx_drain(&f, 1);
  while (f.nq && raft_role(f.nodes[1].r) != RAFT_LEADER)
    fx_deliver(&f, 1);
  CHECK_INT(raft_role(f.nodes[1].r), ==, RAFT_LEADER);
  f.nodes[1].up = false;
  fx_drop_all(&f);
  fx_isolate(&f, 0, false);
  /* a, still leading term 2, learns of term 3 from c and steps down; it
   * then wins term 4 with c's vote (its log ends in term 2, c's in 2 too
   * but shorter). */
  fx_tick(&f, 0, 2);
  fx_deliver_all(&f);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_FOLLOWER);
  CHECK_INT(raft_term(f.nodes[0].r), ==, 3);
  tn.term = raft_term(f.nodes[0].r);
  strcpy(tn.from, "c");
  strcpy(tn.to, "a");
  raft_step(f.nodes[0].r, &tn);
  fx_drain(&f, 0);
  while (f.nq && raft_role(f.nodes[0].r) != RAFT_LEADER)
    fx_deliver(&f, 1);
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_LEADER);
  CHECK_INT(raft_term(f.nodes[0].r), ==, 4);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 2);
  /* Deliver one message at a time and watch a's commit index. */
  bool saw_old_committed_alone = false;
  for (int k = 0; k < 200 && f.nq; k++) {
    fx_deliver(&f, 1);
    if (raft_commit_index(f.nodes[0].r) == 3) saw_old_committed_alone = true;
  }
  for (int k = 0; k < 5; k++)
    fx_round(&f);
  CHECK(!saw_old_committed_alone);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, raft_last_index(f.nodes[0].r));
  CHECK_INT(raft_term_at(f.nodes[0].r, 3), ==, 2); /* kept, committed later */
  append_bytes = 1 << 20;
  fx_free(&f);
}

TEST(commit_followers_learn_the_commit_index) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  for (int k = 0; k < 5; k++)
    fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  fx_round(&f);
  fx_round(&f);
  for (int i = 1; i < 3; i++) {
    CHECK_INT(raft_commit_index(f.nodes[i].r), ==, 7);
    CHECK_INT(f.nodes[i].applied, ==, 7);
  }
  fx_free(&f);
}

TEST(commit_entries_applied_once_in_log_order) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  for (int k = 0; k < 5; k++)
    fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  fx_round(&f);
  fx_round(&f); /* a heartbeat carries the commit index */
  CHECK_INT(f.nodes[1].applied_type[1], ==, RAFT_CONFIG);
  CHECK_INT(f.nodes[1].applied_type[2], ==, RAFT_NOOP);
  for (int i = 3; i <= 7; i++)
    CHECK_INT(f.nodes[1].applied_type[i], ==, RAFT_COMMAND);
  CHECK_INT(raft_applied_index(f.nodes[1].r), ==, 7);
  fx_free(&f);
}

TEST(commit_index_never_decreases) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  uint64_t seen[3] = {0, 0, 0};
  for (int k = 0; k < 30; k++) {
    fx_propose(&f, 0, "x");
    if (k == 10) fx_isolate(&f, 0, true);
    if (k == 12) fx_force_elect(&f, 1);
    if (k == 20) fx_isolate(&f, 0, false);
    fx_round(&f);
    for (int i = 0; i < 3; i++) {
      CHECK(raft_commit_index(f.nodes[i].r) >= seen[i]);
      seen[i] = raft_commit_index(f.nodes[i].r);
    }
  }
  fx_free(&f);
}

TEST(commit_proposal_refused_by_follower) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  CHECK_INT(fx_propose(&f, 1, "x"), ==, RAFT_ENOTLEADER);
  struct raft_buf *b = raft_buf_from("c", 1);
  CHECK_INT(raft_propose(f.nodes[0].r, RAFT_CONFIG, b), ==, RAFT_EINVAL);
  raft_buf_unref(b);
  CHECK(strcmp(raft_strerror(RAFT_ENOTLEADER), "not the leader") == 0);
  fx_free(&f);
}

int main(void) {
  RUN(commit_requires_a_majority);
  RUN(commit_only_counts_entries_of_the_current_term);
  RUN(commit_followers_learn_the_commit_index);
  RUN(commit_entries_applied_once_in_log_order);
  RUN(commit_index_never_decreases);
  RUN(commit_proposal_refused_by_follower);
  return harness_done();
}
