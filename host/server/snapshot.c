/*
 * snapshot.c — snapshots written by a forked child process.
 *
 * Serializing a large state machine takes the Lua code time in proportion
 * to the state (about 0.8 s for 190,000 keys of the kv example), and
 * writing it takes the disk more. Done on the event loop, that stalls
 * heartbeats past the election timeout: a leader that snapshots would lose
 * its leadership every time. So the server forks: the child has a copy of
 * the state exactly as it was after applying `index` (copy-on-write), runs
 * the state machine's snapshot handler on it, which hands the snapshot
 * over piece by piece through a sink (struct server_sink) that writes each
 * piece to the file at once (store_snap_begin_detached, snap_write,
 * store_snap_finish_detached: temporary file, checksum, fsync, rename,
 * directory fsync), and exits; the parent keeps applying and serving, and
 * when the child reports success it loads the file and compacts the log
 * (store_snap_adopt). The pieces are written from where they lie (the
 * largest is a view of the sandbox's own snapshot buffer), so the child
 * never holds a second copy of the state: its own pages are that buffer
 * and little else. A write that fails stops the snapshot, and the child
 * reports the store's message.
 *
 * The child must not touch anything the parent's threads or event loop
 * own: the first thing it does is close every file descriptor but its
 * report pipe (so no stray libuv call can reach the parent's epoll set or
 * sockets), and it stops the host Lua state's garbage collector (so no
 * finalizer runs libuv code). glibc makes malloc safe after fork in a
 * threaded process; the child uses nothing else that locks. It dies with
 * the parent (PR_SET_PDEATHSIG), and a temporary file it leaves behind is
 * removed at the next start-up.
 */
#include <assert.h>
#include <errno.h>
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

/* Close every descriptor above 2 except `keep`. */
static void close_others(int keep) {
  if (keep > 3) close_range(3, (unsigned)keep - 1, 0);
  close_range((unsigned)keep + 1, ~0u, 0);
}

static void report(int fd, const char *msg) {
  size_t n = strlen(msg);
  while (n > 0) {
    ssize_t w = write(fd, msg, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    msg += w;
    n -= (size_t)w;
  }
}

/* The child's sink: each piece of the snapshot goes to the file at once,
 * through the detached writer, at the offset following the last. */
struct child_sink {
  struct snap_writer *w;
  uint64_t off;
  uint64_t write_ns; /* time spent writing (not encoding) */
  int failed;
  char err[STORE_ERR_MAX];
};

static int child_write(void *ctx, const void *p, size_t n) {
  struct child_sink *k = ctx;
  assert(!k->failed); /* the state machine stops at the first failure */
  uint64_t t0 = uv_hrtime();
  int rc = snap_write(k->w, k->off, p, n, k->err);
  k->write_ns += uv_hrtime() - t0;
  if (rc != 0) {
    k->failed = 1;
    if (!k->err[0]) snprintf(k->err, sizeof k->err, "%s", store_strerror(rc));
    return -1;
  }
  k->off += n;
  return 0;
}

/* In the child: write the snapshot, report, exit. Never returns. */
static void child_main(struct server *s, int fd, pid_t parent, uint64_t index,
                       uint64_t term, const struct raft_buf *conf,
                       int with_hash) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1); /* the parent is already gone */
  /* Below the servers' own threads: on a busy machine the loop that
   * answers heartbeats comes first, the background copy second. */
  (void)setpriority(PRIO_PROCESS, 0, CHILD_NICE); /* best effort */
  if (fd != 3) {
    if (dup2(fd, 3) < 0) _exit(1);
    fd = 3;
  }
  close_others(fd);
  if (s->o.sm->child_prepare) s->o.sm->child_prepare(s->o.sm->data);
  struct child_sink k = {0};
  if (store_snap_begin_detached(s->store, index, term, conf->data, conf->len,
                                &k.w, k.err) != 0) {
    report(fd, k.err[0] ? k.err : "writing the snapshot failed");
    _exit(1);
  }
  struct server_sink sink = {child_write, &k};
  uint64_t hash = 0, t0 = uv_hrtime();
  int rc = with_hash ? s->o.sm->snapshot_hash(s->o.sm->data, &sink, &hash)
                     : s->o.sm->snapshot(s->o.sm->data, &sink);
  if (rc != 0 || k.failed) {
    snap_abort(k.w);
    report(fd, k.failed ? k.err
                        : "the state machine's snapshot handler failed (see "
                          "the log)");
    _exit(1);
  }
  /* What the state machine took to encode the state, without the writes. */
  uint64_t spent = uv_hrtime() - t0;
  double secs =
      (double)(spent - (k.write_ns < spent ? k.write_ns : spent)) / 1e9;
  if (store_snap_finish_detached(k.w, k.err) != 0) {
    report(fd, k.err[0] ? k.err : "writing the snapshot failed");
    _exit(1);
  }
  if (with_hash) {
    /* "ok HASH SECONDS": the state hash of `index` (agree.c) came with
     * the snapshot, from one encoding of the state. */
    char msg[64];
    snprintf(msg, sizeof msg, "ok %016" PRIx64 " %.6f", hash, secs);
    report(fd, msg);
  } else {
    report(fd, "ok");
  }
  _exit(0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct server *s = h->data;
  (void)suggested;
  struct snap_child *c = &s->snaps.child;
  size_t room = sizeof c->msg - 1 - c->msglen;
  *buf = uv_buf_init(c->msg + c->msglen, (unsigned)room);
}

static void load_work(uv_work_t *req) {
  struct server *s = req->data;
  struct snap_child *c = &s->snaps.child;
  c->load_rc = store_snap_read(s->store, c->index, &c->loaded, c->load_err);
}

static void load_done(uv_work_t *req, int status) {
  struct server *s = req->data;
  struct snap_child *c = &s->snaps.child;
  c->loading = 0;
  if (s->stopping) {
    snap_free(&c->loaded);
    server__close_store(s); /* it waited for this read (snapshot__stop) */
    server__closed_one(s);
    return;
  }
  if (status != 0 || c->load_rc != 0) {
    snap_free(&c->loaded);
    server__snapshot_failed(
        s, c->index, c->term,
        c->load_err[0] ? c->load_err : "reading the snapshot back failed");
    return;
  }
  char err[STORE_ERR_MAX] = "";
  double secs = (double)(uv_hrtime() - c->t0) / 1e9;
  int rc = store_snap_adopt(s->store, &c->loaded, err);
  if (rc == STORE_EINVAL) {
    /* The leader's snapshot, newer, was installed while the child wrote
     * this one: nothing was lost. */
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_INFO, "snapshot_superseded");
    logger_u64(&l, "index", c->index);
    logger_str(&l, "msg", err);
    logger_end(&l);
    return;
  }
  if (rc != 0) {
    server__snapshot_failed(s, c->index, c->term, err);
    return;
  }
  const struct store_snapshot *snap = store_snapshot(s->store);
  server__snapshot_taken(s, c->index, c->term, snap ? snap->data_len : 0, secs,
                         1);
}

/* The pipe is closed: the child has exited (or is about to). */
static void on_closed(uv_handle_t *h) {
  struct server *s = h->data;
  struct snap_child *c = &s->snaps.child;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(c->pid, &st, 0);
  } while (r < 0 && errno == EINTR);
  c->pid = 0;
  c->msg[c->msglen] = 0;
  if (s->stopping) {
    server__closed_one(s);
    return;
  }
  int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
           strncmp(c->msg, "ok", 2) == 0 &&
           (c->msg[2] == 0 || (c->with_hash && c->msg[2] == ' '));
  if (c->with_hash) {
    s->agree.snap_hash = 0;
    char *end = NULL;
    uint64_t hash = ok ? strtoull(c->msg + 3, &end, 16) : 0;
    if (ok && end == c->msg + 19 && *end == ' ') {
      agree__hashed(s, c->index, hash, strtod(end + 1, NULL));
      agree__act(s);
    }
  }
  if (!ok) {
    char why[600];
    if (c->msglen && strncmp(c->msg, "ok", 2) != 0)
      snprintf(why, sizeof why, "%s", c->msg);
    else if (WIFSIGNALED(st))
      snprintf(why, sizeof why,
               "the snapshot process was killed by signal %d (out of "
               "memory?)",
               WTERMSIG(st));
    else
      snprintf(why, sizeof why, "the snapshot process failed (status %d)",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    server__snapshot_failed(s, c->index, c->term, why);
    return;
  }
  /* Read the file back (and check it) on the thread pool: for a large
   * state that is tens of milliseconds the loop need not wait. */
  c->loading = 1;
  c->load_req.data = s;
  if (uv_queue_work(s->loop, &c->load_req, load_work, load_done) != 0) {
    c->load_rc = store_snap_read(s->store, c->index, &c->loaded, c->load_err);
    load_done(&c->load_req, 0);
  }
}

static void on_dead_closed(uv_handle_t *h) {
  struct server *s = h->data;
  s->snaps.child.closing = 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct server *s = st->data;
  struct snap_child *c = &s->snaps.child;
  (void)buf;
  if (n > 0) {
    c->msglen += (size_t)n;
    if (c->msglen < sizeof c->msg - 1) return;
  } else if (n == 0) {
    return;
  }
  /* EOF, an error, or a report longer than we keep: done reading. */
  uv_read_stop(st);
  if (!uv_is_closing((uv_handle_t *)st)) uv_close((uv_handle_t *)st, on_closed);
}

int snapshot__busy(const struct server *s) {
  return s->snaps.child.pid != 0 || s->snaps.child.loading;
}

/* Start a child that writes the snapshot of `index`. 0: started (the
 * outcome comes later); -1: not possible here (memory-only store, no fork),
 * the caller snapshots in-process instead. */
int snapshot__fork(struct server *s, uint64_t index, uint64_t term,
                   int with_hash) {
  struct snap_child *c = &s->snaps.child;
  if (c->pid || c->loading || c->closing || store_is_memory(s->store))
    return -1;
  struct raft_buf *conf = raft_conf_encode(raft_configuration(s->raft));
  if (!conf) return -1;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    raft_buf_unref(conf);
    return -1;
  }
  /* Anything buffered in stdio would be written twice. */
  fflush(NULL);
  pid_t parent = getpid();
  uint64_t t0 = uv_hrtime();
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    child_main(s, fds[1], parent, index, term, conf, with_hash);
  }
  raft_buf_unref(conf);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return -1;
  }
  memset(c, 0, sizeof *c);
  c->pid = pid;
  c->index = index;
  c->term = term;
  c->t0 = t0;
  c->with_hash = with_hash;
  c->pipe.data = s;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "snapshot_started");
  logger_u64(&l, "index", index);
  logger_u64(&l, "term", term);
  logger_u64(&l, "pid", (uint64_t)pid);
  logger_f64(&l, "fork_ms", (double)(uv_hrtime() - t0) / 1e6);
  logger_end(&l);
  if (uv_pipe_init(s->loop, &c->pipe, 0) != 0 ||
      uv_pipe_open(&c->pipe, fds[0]) != 0 ||
      uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0) {
    /* Cannot hear from it: stop it and snapshot in-process. */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    c->pid = 0;
    c->closing = 1; /* no new child until the handle is closed */
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
      uv_close((uv_handle_t *)&c->pipe, on_dead_closed);
    return -1;
  }
  return 0;
}

/* The server is stopping: end the child; its pipe's close callback counts
 * as one of the server's closing handles. While a written snapshot is being
 * read back (on the thread pool, using the store's directory and I/O
 * table), that read counts instead, and the store must stay open until it
 * is done: returns 1 then. */
int snapshot__stop(struct server *s) {
  struct snap_child *c = &s->snaps.child;
  if (c->loading) {
    s->closing_handles++; /* load_done counts it, and closes the store */
    return 1;
  }
  if (!c->pid) return 0;
  kill(c->pid, SIGKILL);
  s->closing_handles++;
  uv_read_stop((uv_stream_t *)&c->pipe);
  if (!uv_is_closing((uv_handle_t *)&c->pipe))
    uv_close((uv_handle_t *)&c->pipe, on_closed);
  return 0;
}
