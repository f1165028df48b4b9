/*
 * main.c — the simulator's command line:
 *
 *   sim --seeds N --steps M [--seed S] [--nodes K] [--bug NAME] [--stop]
 *       [--trace]
 *
 * Runs seeds S .. S+N-1 (S defaults to 1) with K voters (default: 3, 4
 * or 5 by seed) and two spare servers that may join, each for M
 * steps of faults and then a healing phase that must elect a leader and commit.
 * A failing seed prints the command that replays it and the trace leading to
 * the violation. --stop ends at the first failing seed. The last line is always
 * "N passed, N failed" (seeds); the exit status is non-zero if any seed failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static void usage(void) {
  fprintf(stderr,
          "usage: sim --seeds N --steps M [--seed S] [--nodes K] "
          "[--bug NAME] [--stop] [--trace]\n"
          "bugs (simulator build only):");
  for (unsigned b = 1; b && b <= (1u << 30); b <<= 1)
    if (raft_bug_name((int)b)) fprintf(stderr, " %s", raft_bug_name((int)b));
  fprintf(stderr, "\n");
}

static bool number(const char *s, long long *out) {
  char *end;
  if (!s || !*s) return false;
  *out = strtoll(s, &end, 10);
  return *end == 0 && *out >= 0;
}

int main(int argc, char **argv) {
  long long seeds = 1, steps = 5000, first = 1, nodes = 0;
  bool trace = false, stop = false;
  const char *bug = NULL;
  unsigned bugs = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool ok = true;
    if (!strcmp(a, "--seeds")) {
      ok = number(v, &seeds), i++;
    } else if (!strcmp(a, "--steps")) {
      ok = number(v, &steps), i++;
    } else if (!strcmp(a, "--seed")) {
      ok = number(v, &first), i++;
    } else if (!strcmp(a, "--nodes")) {
      ok = number(v, &nodes) && nodes >= 1 && nodes <= SIM_MAX_NODES - 2, i++;
    } else if (!strcmp(a, "--bug")) {
      bug = v, i++;
      ok = v && (bugs = (unsigned)raft_bug_by_name(v)) != 0;
    } else if (!strcmp(a, "--trace")) {
      trace = true;
    } else if (!strcmp(a, "--stop")) {
      stop = true;
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr, "sim: bad argument '%s'\n", a);
      usage();
      printf("0 passed, 1 failed\n");
      return 2;
    }
  }
  long passed = 0, failed = 0;
  long elections = 0, writes = 0, reads = 0, crashes = 0, changes = 0,
       transfers = 0, installs = 0;
  int64_t heal_max = 0, heal_sum = 0;
  for (long long seed = first; seed < first + seeds; seed++) {
    struct sim s;
    /* Without --nodes, seeds rotate through 3, 4 and 5 voters. */
    int k = nodes ? (int)nodes : 3 + (int)(seed % 3);
    sim_init(&s, (uint64_t)seed, k, bugs, trace);
    bool ok = sim_run(&s, (long)steps);
    elections += s.n_elections;
    writes += s.n_applied_writes;
    reads += s.n_reads_ok;
    crashes += s.n_crashes;
    changes += s.n_changes;
    transfers += s.n_transfers;
    installs += s.n_snap_installs;
    if (ok) {
      heal_sum += s.heal_time;
      if (s.heal_time > heal_max) heal_max = s.heal_time;
    }
    if (ok) {
      passed++;
    } else {
      failed++;
      printf("FAIL seed %lld after %ld steps: %s\n", seed, s.steps, s.why);
      printf(
          "replay: %s --seeds 1 --seed %lld --steps %lld --nodes %d%s%s"
          " --trace\n",
          argv[0], seed, steps, k, bug ? " --bug " : "", bug ? bug : "");
      printf("last events:\n");
      sim_dump_trace(&s, stdout, trace ? 0 : 60);
      printf("nodes at the violation:\n");
      sim_dump_nodes(&s, stdout);
    }
    sim_free(&s);
    if (!ok && stop) break;
  }
  printf(
      "totals: %ld leader elections, %ld writes applied (all nodes), "
      "%ld reads served, %ld crashes, %ld membership changes, "
      "%ld transfers, %ld snapshot installs\n",
      elections, writes, reads, crashes, changes, transfers, installs);
  if (passed)
    printf(
        "after healing, a new proposal committed within %.1f ticks on "
        "average, %.1f at most\n",
        (double)heal_sum / (double)passed / TICK_UNITS,
        (double)heal_max / TICK_UNITS);
  printf("%ld passed, %ld failed\n", passed, failed);
  return failed ? 1 : 0;
}
