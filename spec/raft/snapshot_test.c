/* Snapshots: compaction behind a host snapshot, chunked transfer to a
 * follower whose next entry is gone, installation, restart. */
#include "harness.h"
#include "fixture.h"

static void tweak(struct raft_options *o, int i) {
  (void)i;
  o->snapshot_trailing = 5;
  o->snapshot_chunk = 16;
}

static void setup(struct fx *f, int entries) {
  fx_init_with(f, 3, 3, tweak);
  CHECK(fx_elect(f, 0));
  for (int k = 0; k < entries; k++)
    fx_propose(f, 0, "entry");
  fx_deliver_all(f);
  fx_round(f);
  fx_round(f);
}

TEST(snapshot_compacts_the_log_keeping_a_trailing_part) {
  struct fx f;
  setup(&f, 30);
  CHECK_INT(f.nodes[0].applied, ==, 32);
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, 32), ==, 0);
  CHECK_INT(raft_snapshot_index(f.nodes[0].r), ==, 32);
  CHECK_INT(raft_first_index(f.nodes[0].r), ==, 28);
  CHECK(raft_entry_at(f.nodes[0].r, 27) == NULL);
  CHECK(raft_entry_at(f.nodes[0].r, 28) != NULL);
  struct raft_snapshot_meta m;
  raft_snapshot_get(f.nodes[0].r, &m);
  CHECK_INT(m.index, ==, 32);
  CHECK_INT(m.term, ==, 2);
  CHECK_INT(m.conf.n, ==, 3); /* the configuration at that index */
  fx_free(&f);
}

TEST(snapshot_refuses_unapplied_or_older_index) {
  struct fx f;
  setup(&f, 10);
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, 13), ==, RAFT_EINVAL);
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, 10), ==, 0);
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, 9), ==, RAFT_EINVAL);
  fx_free(&f);
}

TEST(snapshot_refuses_index_not_yet_durable_locally) {
  struct fx f;
  setup(&f, 2);
  f.nodes[0].auto_persist = false;
  fx_propose(&f, 0, "x"); /* committed by b and c, not durable on a */
  fx_deliver_all(&f);
  CHECK_INT(f.nodes[0].applied, ==, 5);
  CHECK_INT(raft_persisted_index(f.nodes[0].r), ==, 4);
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, 5), ==, RAFT_EINVAL);
  fx_persist_now(&f, 0);
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, 5), ==, 0);
  fx_free(&f);
}

TEST(snapshot_sent_in_chunks_to_a_follower_whose_entries_are_gone) {
  struct fx f;
  setup(&f, 2);
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 30; k++)
    fx_propose(&f, 0, "entry");
  fx_deliver_all(&f);
  fx_round(&f);
  for (int k = 0; k < 64; k++)
    f.nodes[0].snap[k] = (unsigned char)(k * 7);
  uint64_t idx = f.nodes[0].applied;
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, idx), ==, 0);
  CHECK(raft_first_index(f.nodes[0].r) > raft_last_index(f.nodes[2].r) + 1);
  fx_isolate(&f, 2, false);
  for (int k = 0; k < 12 && !f.nodes[2].installed; k++)
    fx_round(&f);
  CHECK(f.nodes[2].installed);
  CHECK_INT(f.nodes[2].installed_index, ==, idx);
  CHECK_INT(f.sent_to[2][RAFT_MSG_SNAPSHOT], >=, 4); /* 64 bytes by 16 */
  CHECK_INT(f.nodes[2].rlen, ==, 64);
  CHECK(memcmp(f.nodes[2].rbuf, f.nodes[0].snap, 64) == 0);
  CHECK_INT(raft_snapshot_index(f.nodes[2].r), ==, idx);
  CHECK_INT(raft_commit_index(f.nodes[2].r), >=, idx);
  /* Replication carries on from there. */
  fx_propose(&f, 0, "after");
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(raft_last_index(f.nodes[2].r), ==, raft_last_index(f.nodes[0].r));
  CHECK_INT(f.nodes[2].applied, ==, raft_last_index(f.nodes[0].r));
  fx_free(&f);
}

TEST(snapshot_lost_on_the_host_restarts_the_transfer) {
  struct fx f;
  setup(&f, 2);
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 30; k++)
    fx_propose(&f, 0, "entry");
  fx_deliver_all(&f);
  fx_round(&f);
  CHECK_INT(raft_snapshot_taken(f.nodes[0].r, f.nodes[0].applied), ==, 0);
  f.nodes[0].lose_snapshot = 1; /* the first request finds it gone */
  fx_isolate(&f, 2, false);
  for (int k = 0; k < 12 && !f.nodes[2].installed; k++)
    fx_round(&f);
  CHECK_INT(f.nodes[0].lose_snapshot, ==, 0);
  CHECK(f.nodes[0].chunk_requests >= 5); /* asked again from offset 0 */
  CHECK(f.nodes[2].installed);
  CHECK(memcmp(f.nodes[2].rbuf, f.nodes[0].snap, 64) == 0);
  fx_free(&f);
}

TEST(snapshot_restart_loads_snapshot_and_following_entries) {
  struct raft_options o;
  fx_opts(&o, "a", 0);
  struct raft *r = raft_new(&o);
  struct raft_snapshot_meta m = {.index = 100, .term = 4};
  raft_conf_add(&m.conf, "a", "x", RAFT_ACTIVE);
  raft_conf_add(&m.conf, "b", "x", RAFT_ACTIVE);
  struct raft_hard_state hs = {.term = 5};
  struct raft_entry es[2] = {{.term = 4, .type = RAFT_COMMAND},
                             {.term = 5, .type = RAFT_NOOP}};
  CHECK_INT(raft_load(r, &hs, &m, 101, es, 2), ==, 0);
  CHECK_INT(raft_commit_index(r), ==, 100);
  CHECK_INT(raft_applied_index(r), ==, 100);
  CHECK_INT(raft_first_index(r), ==, 101);
  CHECK_INT(raft_last_index(r), ==, 102);
  CHECK_INT(raft_term_at(r, 100), ==, 4);
  CHECK_INT(raft_configuration(r)->n, ==, 2);
  raft_free(r);
  /* Entries that do not follow the snapshot are refused. */
  r = raft_new(&o);
  CHECK_INT(raft_load(r, &hs, &m, 105, es, 2), ==, RAFT_EINVAL);
  raft_free(r);
}

int main(void) {
  RUN(snapshot_compacts_the_log_keeping_a_trailing_part);
  RUN(snapshot_refuses_unapplied_or_older_index);
  RUN(snapshot_refuses_index_not_yet_durable_locally);
  RUN(snapshot_sent_in_chunks_to_a_follower_whose_entries_are_gone);
  RUN(snapshot_lost_on_the_host_restarts_the_transfer);
  RUN(snapshot_restart_loads_snapshot_and_following_entries);
  return harness_done();
}
