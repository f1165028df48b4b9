/* Writing to a connection the peer has reset (host/transport/conn.c). */
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "transport/net.h"

struct seen {
  net_conn *conn;
  int closed, status;
};

static void on_frame(net_conn *c, const char *data, size_t len) {
  (void)c, (void)data, (void)len;
}

static void on_close(net_conn *c, int status, const char *reason) {
  struct seen *s = net_conn_data(c);
  (void)reason;
  s->closed = 1;
  s->status = status;
}

static void on_accept(net_listener *l, net_conn *c) {
  static const struct net_conn_cbs cbs = {on_frame, on_close};
  struct seen *s = net_listener_data(l);
  s->conn = c;
  net_conn_set_data(c, s);
  net_conn_start(c, &cbs);
}

/* The peer hangs up; our first write reaches a closed socket, which
 * answers with a reset; the next write then fails with EPIPE. That must
 * close this one connection with an error, and the process lives on. */
TEST(writing_to_a_connection_the_peer_reset_closes_it_and_the_process_lives) {
  signal(SIGPIPE, SIG_DFL); /* as a fresh process has it */
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  net_listener *l;
  char err[256];
  CHECK_INT(net_listen(&loop, "127.0.0.1:0", NULL, on_accept, &s, &l, err,
                       sizeof err),
            ==, 0);
  const char *addr = net_listener_address(l);
  int port = atoi(strrchr(addr, ':') + 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
  for (int i = 0; i < 200 && !s.conn; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  CHECK(s.conn != NULL);
  close(fd);
  usleep(20000);
  char frame[64];
  memset(frame, 'x', sizeof frame);
  /* Written at once (the queue is empty): the closed socket resets. */
  CHECK_INT(net_conn_send(s.conn, frame, sizeof frame), ==, 0);
  usleep(20000);
  /* Queued behind the first; written when the loop finishes the first,
   * before it reads the hang-up: EPIPE. */
  net_conn_send(s.conn, frame, sizeof frame);
  for (int i = 0; i < 100 && !s.closed; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  CHECK(s.closed);
  net_listener_close(l);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

int main(void) {
  RUN(writing_to_a_connection_the_peer_reset_closes_it_and_the_process_lives);
  return harness_done();
}
