/*
 * hash.c — state hashes computed by a forked child process.
 *
 * Encoding a large state takes time in proportion to it (about half a
 * second for 190,000 keys of the kv example): on the event loop that
 * would stall heartbeats every hash interval. So, as for snapshots
 * (snapshot.c, whose rules the child follows: it closes every descriptor
 * but its report pipe, stops the Lua collector and dies with its parent),
 * the server forks at the check index: the child hashes its copy of the
 * state as it was after applying that index, writes "HASH SECONDS" to the
 * pipe and exits, while the parent goes on. The loop pays for the fork.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/server_int.h"

/* The forked child's scheduling priority, relative to the server. */
#define CHILD_NICE 10

static void child_main(struct server *s, int fd, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);
  /* Below the servers' own threads: on a busy machine the loop that
   * answers heartbeats comes first, the background copy second. */
  (void)setpriority(PRIO_PROCESS, 0, CHILD_NICE); /* best effort */
  if (fd != 3) {
    if (dup2(fd, 3) < 0) _exit(1);
    fd = 3;
  }
  close_range(4, ~0u, 0);
  if (s->o.sm->child_prepare) s->o.sm->child_prepare(s->o.sm->data);
  uint64_t t0 = uv_hrtime(), hash;
  if (s->o.sm->hash(s->o.sm->data, &hash) != 0) _exit(1);
  char msg[64];
  int n = snprintf(msg, sizeof msg, "%016" PRIx64 " %.6f", hash,
                   (double)(uv_hrtime() - t0) / 1e9);
  for (char *p = msg; n > 0;) {
    ssize_t w = write(fd, p, (size_t)n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(1);
    p += w;
    n -= (int)w;
  }
  _exit(0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct hash_child *c = &((struct server *)h->data)->agree.child;
  (void)suggested;
  *buf = uv_buf_init(c->msg + c->msglen,
                     (unsigned)(sizeof c->msg - 1 - c->msglen));
}

static void on_closed(uv_handle_t *h) {
  struct server *s = h->data;
  struct hash_child *c = &s->agree.child;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(c->pid, &st, 0);
  } while (r < 0 && errno == EINTR);
  c->pid = 0;
  c->closing = 0;
  c->msg[c->msglen] = 0;
  if (s->stopping) {
    server__closed_one(s);
    return;
  }
  char *end = NULL;
  uint64_t hash = strtoull(c->msg, &end, 16);
  double secs = end && *end == ' ' ? strtod(end + 1, NULL) : 0;
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) || end != c->msg + 16) {
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "state_hash_failed");
    logger_u64(&l, "index", c->index);
    logger_str(&l, "msg",
               WIFSIGNALED(st) ? "the hash process was killed (out of memory?)"
                               : "the hash process failed (see the log)");
    logger_end(&l);
    return;
  }
  agree__hashed(s, c->index, hash, secs);
  agree__act(s);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct hash_child *c = &((struct server *)st->data)->agree.child;
  (void)buf;
  if (n > 0) {
    c->msglen += (size_t)n;
    if (c->msglen < sizeof c->msg - 1) return;
  } else if (n == 0) {
    return;
  }
  uv_read_stop(st);
  if (!uv_is_closing((uv_handle_t *)st)) {
    c->closing = 1;
    uv_close((uv_handle_t *)st, on_closed);
  }
}

int hash__fork(struct server *s, uint64_t index) {
  struct hash_child *c = &s->agree.child;
  assert(!c->pid && !c->closing);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  fflush(NULL); /* anything buffered in stdio would be written twice */
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    child_main(s, fds[1], parent);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return -1;
  }
  memset(c, 0, sizeof *c);
  c->pid = pid;
  c->index = index;
  c->pipe.data = s;
  if (uv_pipe_init(s->loop, &c->pipe, 0) != 0 ||
      uv_pipe_open(&c->pipe, fds[0]) != 0 ||
      uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0) {
    /* Cannot hear from it: it is killed, and its pipe's close reaps it
     * (the report is then empty: logged as a failed hash). */
    kill(pid, SIGKILL);
    c->closing = 1;
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
      uv_close((uv_handle_t *)&c->pipe, on_closed);
  }
  return 0;
}

int hash__stop(struct server *s) {
  struct hash_child *c = &s->agree.child;
  if (!c->pid) return 0;
  kill(c->pid, SIGKILL);
  if (!c->closing) {
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->closing = 1;
    uv_close((uv_handle_t *)&c->pipe, on_closed);
  }
  return 1;
}
