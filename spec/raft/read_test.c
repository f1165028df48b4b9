/* Reads without log writes: ReadIndex needs a heartbeat round confirming
 * leadership; the lease serves at once while it holds. */
#include "harness.h"
#include "fixture.h"

static bool cq = true;
static void tweak(struct raft_options *o, int i) {
  (void)i;
  o->check_quorum = cq;
}

static void setup(struct fx *f) {
  fx_init_with(f, 3, 3, tweak);
  CHECK(fx_force_elect(f, 0));
  fx_propose(f, 0, "w");
  fx_deliver_all(f);
}

TEST(read_index_waits_for_a_heartbeat_round) {
  struct fx f;
  setup(&f);
  long hb = f.sent[RAFT_MSG_HEARTBEAT];
  CHECK_INT(raft_read(f.nodes[0].r, 7, false), ==, 0);
  fx_drain(&f, 0);
  CHECK_INT(f.nodes[0].n_reads, ==, 0); /* not yet */
  CHECK_INT(f.sent[RAFT_MSG_HEARTBEAT] - hb, ==, 2);
  CHECK_INT(raft_last_index(f.nodes[0].r), ==, 3); /* no log write */
  fx_deliver_all(&f);
  CHECK_INT(f.nodes[0].n_reads, ==, 1);
  CHECK_INT(f.nodes[0].reads[0], ==, 7);
  CHECK_INT(f.nodes[0].read_status[0], ==, 0);
  CHECK_INT(f.nodes[0].read_index[0], ==, 3);
  CHECK(f.nodes[0].applied >= f.nodes[0].read_index[0]);
  fx_free(&f);
}

TEST(read_index_confirmed_by_a_majority_not_everyone) {
  struct fx f;
  setup(&f);
  fx_isolate(&f, 2, true);
  raft_read(f.nodes[0].r, 8, false);
  fx_drain(&f, 0);
  fx_deliver_all(&f);
  CHECK_INT(f.nodes[0].n_reads, ==, 1);
  fx_free(&f);
}

TEST(read_index_never_served_by_an_isolated_leader) {
  struct fx f;
  setup(&f);
  fx_isolate(&f, 0, true);
  raft_read(f.nodes[0].r, 9, false);
  fx_drain(&f, 0);
  for (int k = 0; k < 30; k++)
    fx_round(&f);
  /* It stepped down (check-quorum) and failed the read. */
  CHECK_INT(raft_role(f.nodes[0].r), ==, RAFT_FOLLOWER);
  CHECK_INT(f.nodes[0].n_reads, ==, 1);
  CHECK_INT(f.nodes[0].read_status[0], ==, RAFT_ENOTLEADER);
  fx_free(&f);
}

TEST(read_refused_until_leader_commits_in_its_term) {
  struct fx f;
  fx_init_with(&f, 3, 3, tweak);
  f.nodes[1].auto_persist = false;
  f.nodes[2].auto_persist = false;
  CHECK(fx_force_elect(&f, 0));
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 0); /* no-op not durable */
  CHECK_INT(raft_read(f.nodes[0].r, 1, false), ==, RAFT_ENOTREADY);
  CHECK_INT(raft_read(f.nodes[0].r, 1, true), ==, RAFT_ENOTREADY);
  CHECK_INT(raft_read(f.nodes[1].r, 1, false), ==, RAFT_ENOTLEADER);
  fx_persist_now(&f, 1);
  fx_deliver_all(&f);
  CHECK_INT(raft_read(f.nodes[0].r, 1, false), ==, 0);
  fx_free(&f);
}

TEST(lease_read_served_without_a_round_while_lease_holds) {
  struct fx f;
  setup(&f);
  fx_round(&f);
  fx_round(&f); /* a heartbeat round acknowledged by both */
  CHECK(raft_lease_valid(f.nodes[0].r));
  long hb = f.sent[RAFT_MSG_HEARTBEAT];
  CHECK_INT(raft_read(f.nodes[0].r, 5, true), ==, 0);
  fx_drain(&f, 0);
  CHECK_INT(f.nodes[0].n_reads, ==, 1);
  CHECK_INT(f.nodes[0].reads[0], ==, 5);
  CHECK_INT(f.sent[RAFT_MSG_HEARTBEAT], ==, hb);
  fx_free(&f);
}

TEST(lease_shorter_than_election_timeout_by_drift_margin) {
  struct fx f;
  setup(&f);
  fx_round(&f);
  fx_round(&f);
  fx_isolate(&f, 0, true);
  /* Last acknowledged round was sent at most 2 ticks ago; the lease is
   * election timeout (10) - drift (2) = 8 ticks from that send. */
  int k = 0;
  while (raft_lease_valid(f.nodes[0].r) && k < 20) {
    fx_tick(&f, 0, 1);
    k++;
  }
  CHECK_INT(k, >=, 6);
  CHECK_INT(k, <=, 8);
  /* Expired: a lease read now waits for a round like ReadIndex. */
  raft_read(f.nodes[0].r, 6, true);
  fx_drain(&f, 0);
  CHECK_INT(f.nodes[0].n_reads, ==, 0);
  fx_free(&f);
}

TEST(lease_never_valid_without_check_quorum) {
  cq = false;
  struct fx f;
  setup(&f);
  fx_round(&f);
  fx_round(&f);
  CHECK(!raft_lease_valid(f.nodes[0].r));
  raft_read(f.nodes[0].r, 5, true);
  fx_drain(&f, 0);
  CHECK_INT(f.nodes[0].n_reads, ==, 0); /* fell back to ReadIndex */
  fx_deliver_all(&f);
  CHECK_INT(f.nodes[0].n_reads, ==, 1);
  cq = true;
  fx_free(&f);
}

TEST(lease_dropped_once_a_transfer_starts) {
  struct fx f;
  setup(&f);
  fx_round(&f);
  fx_round(&f);
  CHECK(raft_lease_valid(f.nodes[0].r));
  CHECK_INT(raft_transfer(f.nodes[0].r, "b"), ==, 0);
  CHECK(!raft_lease_valid(f.nodes[0].r));
  fx_free(&f);
}

int main(void) {
  RUN(read_index_waits_for_a_heartbeat_round);
  RUN(read_index_confirmed_by_a_majority_not_everyone);
  RUN(read_index_never_served_by_an_isolated_leader);
  RUN(read_refused_until_leader_commits_in_its_term);
  RUN(lease_read_served_without_a_round_while_lease_holds);
  RUN(lease_shorter_than_election_timeout_by_drift_margin);
  RUN(lease_never_valid_without_check_quorum);
  RUN(lease_dropped_once_a_transfer_starts);
  return harness_done();
}
