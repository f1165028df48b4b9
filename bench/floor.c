/*
 * floor.c — the machine's floor for one committed write, measured now:
 *   fdatasync: pwrite of 4 KiB into a preallocated file (as the log's
 *              segments are) followed by fdatasync, in DIR ($TMPDIR or
 *              /tmp by default: where the benchmarks keep their data);
 *   loopback:  round trip of a 64-byte message over TCP on 127.0.0.1
 *              between two processes (as between client, leader and
 *              follower).
 * A committed write from one client needs at least one fdatasync (leader's
 * and follower's run in parallel) and two round trips (client to leader,
 * leader to follower), so `floor` = fdatasync + 2 x loopback.
 * Prints one line of medians, for scripts:
 *   floor fdatasync_us F loopback_us L write_us W
 * Usage: floor [DIR] [ROUNDS]; asserts nothing.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYNCS 200
#define TRIPS 2000
#define BLOCK 4096
#define MSG 64

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* Median fdatasync of a 4 KiB overwrite in dir, or -1. */
static double probe_fsync(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/floor-probe.XXXXXX", dir);
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  unlink(path);
  static char block[BLOCK];
  memset(block, 'x', sizeof block);
  for (int i = 0; i < SYNCS; i++) /* preallocate: no size change later */
    if (write(fd, block, sizeof block) != (ssize_t)sizeof block) {
      close(fd);
      return -1;
    }
  fsync(fd);
  static double t[SYNCS];
  for (int i = 0; i < SYNCS; i++) {
    double t0 = now_us();
    if (pwrite(fd, block, sizeof block, (off_t)i * BLOCK) !=
            (ssize_t)sizeof block ||
        fdatasync(fd) != 0) {
      close(fd);
      return -1;
    }
    t[i] = now_us() - t0;
  }
  close(fd);
  return median(t, SYNCS);
}

static int full(int fd, char *buf, size_t n, int reading) {
  size_t done = 0;
  while (done < n) {
    ssize_t k = reading ? read(fd, buf + done, n - done)
                        : write(fd, buf + done, n - done);
    if (k <= 0) return -1;
    done += (size_t)k;
  }
  return 0;
}

/* Median round trip over loopback TCP to a forked echo process, or -1. */
static double probe_loopback(void) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 ||
      listen(l, 1) < 0 || getsockname(l, (struct sockaddr *)&a, &alen) < 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int c = accept(l, NULL, NULL);
    char buf[MSG];
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while (full(c, buf, MSG, 1) == 0 && full(c, buf, MSG, 0) == 0) {
    }
    _exit(0);
  }
  close(l);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  double med = -1;
  if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0) {
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static double t[TRIPS];
    char buf[MSG];
    memset(buf, 'p', sizeof buf);
    int i;
    for (i = 0; i < TRIPS; i++) {
      double t0 = now_us();
      if (full(c, buf, MSG, 0) < 0 || full(c, buf, MSG, 1) < 0) break;
      t[i] = now_us() - t0;
    }
    if (i == TRIPS) med = median(t, TRIPS);
  }
  if (c >= 0) close(c);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return med;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  if (rounds < 1) rounds = 1;
  double fs[16], lb[16];
  if (rounds > 16) rounds = 16;
  for (int r = 0; r < rounds; r++) {
    fs[r] = probe_fsync(dir);
    lb[r] = probe_loopback();
    if (fs[r] < 0 || lb[r] < 0) {
      fprintf(stderr, "floor: probe failed in %s\n", dir);
      return 1;
    }
  }
  double f = median(fs, (size_t)rounds), lo = median(lb, (size_t)rounds);
  printf("floor fdatasync_us %.0f loopback_us %.0f write_us %.0f\n", f, lo,
         f + 2 * lo);
  return 0;
}
