/* Log replication: batching, pipelining, durable acknowledgements, the
 * leader's parallel disk write, fast backtracking, cheap probing. */
#include "harness.h"
#include "fixture.h"

static size_t append_bytes = 1 << 20;
static unsigned inflight = 16;
static void tweak(struct raft_options *o, int i) {
  (void)i;
  o->max_append_bytes = append_bytes;
  o->max_inflight_msgs = inflight;
}

TEST(replication_batches_many_entries_per_append) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  long before = f.sent_to[1][RAFT_MSG_APPEND];
  for (int k = 0; k < 50; k++)
    fx_propose_nodrain(&f, 0, "entry");
  fx_drain(&f, 0);
  CHECK_INT(f.sent_to[1][RAFT_MSG_APPEND] - before, ==, 1);
  fx_deliver_all(&f);
  CHECK_INT(raft_last_index(f.nodes[1].r), ==, 52);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 52);
  fx_free(&f);
}

TEST(replication_pipelines_up_to_the_window) {
  append_bytes = 1; /* one entry per message */
  inflight = 4;
  struct fx f;
  fx_init_with(&f, 3, 3, tweak);
  CHECK(fx_elect(&f, 0));
  fx_round(&f);
  long before = f.sent_to[1][RAFT_MSG_APPEND];
  for (int k = 0; k < 10; k++)
    fx_propose_nodrain(&f, 0, "e");
  fx_drain(&f, 0);
  /* Four in flight to b without waiting for any answer. */
  CHECK_INT(f.sent_to[1][RAFT_MSG_APPEND] - before, ==, 4);
  fx_deliver_all(&f);
  CHECK_INT(raft_last_index(f.nodes[1].r), ==, 12);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 12);
  append_bytes = 1 << 20;
  inflight = 16;
  fx_free(&f);
}

TEST(replication_follower_acknowledges_only_durable_entries) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  f.nodes[1].auto_persist = false;
  fx_isolate(&f, 2, true);
  fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  CHECK_INT(raft_last_index(f.nodes[1].r), ==, 3);   /* received... */
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 2); /* ...not counted */
  fx_persist_now(&f, 1);
  fx_deliver_all(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 3);
  fx_free(&f);
}

TEST(replication_leader_sends_before_its_own_write_is_durable) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  f.nodes[0].auto_persist = false;
  long before = f.sent[RAFT_MSG_APPEND];
  fx_propose(&f, 0, "x");
  CHECK(f.sent[RAFT_MSG_APPEND] > before);
  CHECK_INT(raft_persisted_index(f.nodes[0].r), ==, 2);
  fx_deliver_all(&f);
  /* b and c are a majority on their own. */
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 3);
  fx_free(&f);
}

TEST(replication_leader_counts_itself_only_once_durable) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  f.nodes[0].auto_persist = false;
  fx_isolate(&f, 2, true);
  fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 2); /* b alone: no */
  fx_persist_now(&f, 0);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 3);
  fx_free(&f);
}

/* a leads term 2 and appends 40 entries nobody else gets; b then leads
 * term 3. When a rejoins, its conflicting suffix is found in one step. */
TEST(replication_fast_backtracking_by_conflicting_term) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 0, true);
  for (int k = 0; k < 40; k++)
    fx_propose(&f, 0, "lost");
  CHECK(fx_force_elect(&f, 1));
  for (int k = 0; k < 5; k++)
    fx_propose(&f, 1, "kept");
  fx_deliver_all(&f);
  long rejects = f.rejects_sent;
  fx_isolate(&f, 0, false);
  for (int k = 0; k < 6; k++)
    fx_round(&f);
  CHECK_INT(f.rejects_sent - rejects, <=, 2);
  CHECK_INT(raft_last_index(f.nodes[0].r), ==, raft_last_index(f.nodes[1].r));
  for (uint64_t i = 1; i <= raft_last_index(f.nodes[1].r); i++)
    CHECK_INT(raft_term_at(f.nodes[0].r, i), ==, raft_term_at(f.nodes[1].r, i));
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, raft_last_index(f.nodes[1].r));
  fx_free(&f);
}

TEST(replication_unreachable_follower_costs_only_periodic_probes) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 2, true);
  long before = f.sent_to[2][RAFT_MSG_APPEND];
  size_t entries_before = f.append_entries_sent;
  for (int k = 0; k < 40; k++) {
    fx_propose(&f, 0, "x");
    fx_propose(&f, 0, "y");
    fx_round(&f);
  }
  /* 40 ticks, heartbeat every 2: about one probe per heartbeat. */
  CHECK_INT(f.sent_to[2][RAFT_MSG_APPEND] - before, <=, 21);
  CHECK_INT(raft_commit_index(f.nodes[0].r), ==, 82);
  (void)entries_before;
  fx_free(&f);
}

TEST(replication_follower_catches_up_after_partition) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  fx_isolate(&f, 2, true);
  for (int k = 0; k < 30; k++)
    fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  fx_isolate(&f, 2, false);
  for (int k = 0; k < 4; k++)
    fx_round(&f);
  CHECK_INT(raft_last_index(f.nodes[2].r), ==, 32);
  CHECK_INT(raft_commit_index(f.nodes[2].r), ==, 32);
  CHECK_INT(f.nodes[2].applied, ==, 32);
  fx_free(&f);
}

TEST(replication_payloads_are_shared_not_copied) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  struct raft_buf *b = raft_buf_from("payload", 7);
  raft_propose(f.nodes[0].r, RAFT_COMMAND, b);
  CHECK_INT(b->refs, ==, 2); /* ours and the log's */
  struct raft_ready rd;
  raft_ready_get(f.nodes[0].r, &rd);
  /* The entry to persist and the ones in messages are the same buffer. */
  CHECK(rd.n_persist == 1 && rd.persist[0].buf == b);
  int in_msgs = 0;
  for (size_t k = 0; k < rd.n_msgs; k++)
    if (rd.msgs[k].type == RAFT_MSG_APPEND && rd.msgs[k].u.append.n == 1 &&
        rd.msgs[k].u.append.entries[0].buf == b)
      in_msgs++;
  CHECK_INT(in_msgs, ==, 2);
  raft_ready_done(f.nodes[0].r, &rd);
  CHECK_INT(b->refs, ==, 2);
  raft_buf_unref(b);
  fx_free(&f);
}

TEST(replication_malformed_messages_rejected_without_harm) {
  struct fx f;
  fx_init(&f, 3);
  CHECK(fx_elect(&f, 0));
  fx_propose(&f, 0, "x");
  fx_deliver_all(&f);
  fx_round(&f);
  fx_round(&f);
  struct raft *b = f.nodes[1].r;
  uint64_t last = raft_last_index(b), term = raft_term(b);
  CHECK_INT(raft_commit_index(b), ==, last);
  struct raft_msg m;
  memset(&m, 0, sizeof m);
  m.type = RAFT_MSG_APPEND;
  m.term = term;
  strcpy(m.from, "a");
  strcpy(m.to, "b");
  m.u.append.prev_index = last;
  m.u.append.prev_term = term;
  m.u.append.n = 2; /* but no entries */
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL);
  struct raft_entry es[2] = {{.term = term, .type = RAFT_COMMAND},
                             {.term = term - 1, .type = RAFT_COMMAND}};
  m.u.append.entries = es; /* terms going back */
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL);
  es[1].term = term + 5; /* newer than the message */
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL);
  struct raft_buf *junk = raft_buf_from("junk", 4);
  es[1] = (struct raft_entry){.term = term, .type = RAFT_CONFIG, .buf = junk};
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL); /* undecodable config */
  raft_buf_unref(junk);
  /* An entry conflicting with a committed one. */
  es[0] = (struct raft_entry){.term = term + 1, .type = RAFT_COMMAND};
  m.term = term + 1;
  m.u.append.prev_index = last - 1;
  m.u.append.prev_term = raft_term_at(b, last - 1);
  m.u.append.n = 1;
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL);
  CHECK_INT(raft_last_index(b), ==, last);
  CHECK_INT(raft_term_at(b, last), ==, term);
  m.type = 77;
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL);
  m.type = RAFT_MSG_SNAPSHOT;
  memset(&m.u, 0, sizeof m.u);
  m.u.snapshot.index = 10;
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL); /* no data, no conf */
  m.type = RAFT_MSG_HEARTBEAT;
  memset(m.from, 'z', sizeof m.from); /* not terminated */
  CHECK_INT(raft_step(b, &m), ==, RAFT_EINVAL);
  fx_drain(&f, 1);
  CHECK_INT(raft_role(b), ==, RAFT_FOLLOWER);
  fx_free(&f);
}

int main(void) {
  RUN(replication_batches_many_entries_per_append);
  RUN(replication_pipelines_up_to_the_window);
  RUN(replication_follower_acknowledges_only_durable_entries);
  RUN(replication_leader_sends_before_its_own_write_is_durable);
  RUN(replication_leader_counts_itself_only_once_durable);
  RUN(replication_fast_backtracking_by_conflicting_term);
  RUN(replication_unreachable_follower_costs_only_periodic_probes);
  RUN(replication_follower_catches_up_after_partition);
  RUN(replication_payloads_are_shared_not_copied);
  RUN(replication_malformed_messages_rejected_without_harm);
  return harness_done();
}
