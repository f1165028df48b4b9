/*
 * driver.c — a standalone runner for one fuzz target (see fuzz.h), for
 * builds without libFuzzer (gcc, or clang without its runtime).
 *
 *   driver [-n ITERATIONS] [-s SEED] [-m MAXLEN] [-w DIR] [FILE...]
 *
 * Runs the target on every seed from fuzz_seeds(), on every FILE, then on
 * ITERATIONS inputs made by mutating seeds with a deterministic generator
 * (xorshift64*, seeded by SEED): bit flips, byte and integer overwrites
 * with boundary values, insertions, deletions, truncations, duplicated
 * ranges and splices of two inputs. Every 16th mutated input joins a pool
 * of 256 that later mutations start from, so changes compound. Each input
 * is passed in its own allocation of exactly its size, so that a sanitizer
 * sees any read past its end.
 *
 * -w DIR writes the seeds as files into DIR (a libFuzzer corpus) and exits.
 * FUZZ_ITERATIONS and FUZZ_SEED in the environment give the defaults.
 *
 * On a crash (sanitizer report, abort or SIGSEGV) the input being run is
 * written to crash-<target>-<n> in the current directory and printed in
 * hex. Ends with "1 passed, 0 failed" (read by tools/run-tests.sh); a crash
 * ends the process before that line, which counts as a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

#define POOL_MAX 256
#define DEFAULT_MAXLEN 4096

struct input {
  uint8_t *data;
  size_t len;
};

static struct input pool[POOL_MAX];
static size_t pool_n, pool_next;
static size_t seed_n;
static uint64_t rng;

/* The input being run, for the crash report. */
static const uint8_t *cur_data;
static size_t cur_len;
static unsigned long long cur_no;

static uint64_t next_rand(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

static size_t below(size_t n) {
  return n ? (size_t)(next_rand() % n) : 0;
}

static void pool_keep(const void *data, size_t len) {
  struct input *in;
  if (pool_n < POOL_MAX) {
    in = &pool[pool_n++];
  } else { /* replace a mutated input, never a seed */
    size_t keep = seed_n < POOL_MAX ? seed_n : POOL_MAX - 1;
    in = &pool[keep + pool_next++ % (POOL_MAX - keep)];
    free(in->data);
  }
  in->data = malloc(len ? len : 1);
  if (!in->data) {
    perror("malloc");
    exit(2);
  }
  if (len) memcpy(in->data, data, len);
  in->len = len;
}

static void add_seed(void *ud, const void *data, size_t len) {
  (void)ud;
  if (pool_n < POOL_MAX) pool_keep(data, len);
  seed_n = pool_n;
}

/* ---- crash reporting ---- */

static void write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

/* Async-signal-safe: only write(2) and open(2). */
static void report_input(void) {
  static int done;
  static const char hex[] = "0123456789abcdef";
  char name[128];
  if (done || !cur_data) return;
  done = 1;
  snprintf(name, sizeof name, "crash-%s-%llu", fuzz_target_name, cur_no);
  int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    write_all(fd, cur_data, cur_len);
    close(fd);
  }
  write_all(2, "fuzz: crashing input written to ", 32);
  write_all(2, name, strlen(name));
  write_all(2, "; hex: ", 7);
  for (size_t i = 0; i < cur_len && i < 4096; i++) {
    char b[2] = {hex[cur_data[i] >> 4], hex[cur_data[i] & 15]};
    write_all(2, b, 2);
  }
  write_all(2, "\n", 1);
}

static void on_signal(int sig) {
  report_input();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* A target may lower the default number of mutated inputs (when each run
 * is slow); FUZZ_ITERATIONS and -n still override it. */
extern const unsigned long long fuzz_default_iterations __attribute__((weak));

/* Present when linked with a sanitizer runtime. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

/* ---- mutation ---- */

static const uint64_t interesting[] = {0,
                                       1,
                                       2,
                                       3,
                                       4,
                                       7,
                                       8,
                                       15,
                                       16,
                                       31,
                                       32,
                                       63,
                                       64,
                                       100,
                                       127,
                                       128,
                                       255,
                                       256,
                                       0x7fff,
                                       0x8000,
                                       0xffff,
                                       0x10000,
                                       0x7fffffff,
                                       0x80000000,
                                       0xffffffff,
                                       0x100000000ull,
                                       0x7fffffffffffffffull,
                                       0x8000000000000000ull,
                                       0xffffffffffffffffull};

/* msgpack type bytes: the first byte of each kind of value. */
static const uint8_t type_bytes[] = {
    0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
    0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb,
    0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd8,
    0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};

/* buf has room for maxlen bytes; returns the new length. */
static size_t mutate_once(uint8_t *buf, size_t len, size_t maxlen) {
  switch (below(11)) {
    case 0: /* flip a bit */
      if (len) buf[below(len)] ^= (uint8_t)(1u << below(8));
      return len;
    case 1: /* random byte */
      if (len) buf[below(len)] = (uint8_t)next_rand();
      return len;
    case 2: /* msgpack type byte */
      if (len) buf[below(len)] = type_bytes[below(sizeof type_bytes)];
      return len;
    case 3: { /* boundary integer, 1/2/4/8 bytes, either byte order */
      size_t w = (size_t)1 << below(4);
      if (len < w) return len;
      uint64_t v = interesting[below(sizeof interesting / sizeof *interesting)];
      if (below(2)) v = v + 1 - 2 * below(2);
      size_t at = below(len - w + 1);
      int bigend = (int)below(2);
      for (size_t i = 0; i < w; i++)
        buf[at + i] = (uint8_t)(v >> (8 * (bigend ? w - 1 - i : i)));
      return len;
    }
    case 4: { /* insert random bytes */
      size_t n = 1 + below(8);
      if (len + n > maxlen) return len;
      size_t at = below(len + 1);
      memmove(buf + at + n, buf + at, len - at);
      for (size_t i = 0; i < n; i++)
        buf[at + i] = below(2) ? (uint8_t)next_rand()
                               : type_bytes[below(sizeof type_bytes)];
      return len + n;
    }
    case 5: { /* delete a range */
      if (!len) return len;
      size_t at = below(len), n = 1 + below(len - at < 16 ? len - at : 16);
      memmove(buf + at, buf + at + n, len - at - n);
      return len - n;
    }
    case 6: /* truncate */
      return below(len + 1);
    case 7: { /* duplicate a range elsewhere */
      if (!len) return len;
      size_t from = below(len), n = 1 + below(len - from);
      if (len + n > maxlen) return len;
      size_t at = below(len + 1);
      uint8_t *tmp = malloc(n);
      if (!tmp) return len;
      memcpy(tmp, buf + from, n);
      memmove(buf + at + n, buf + at, len - at);
      memcpy(buf + at, tmp, n);
      free(tmp);
      return len + n;
    }
    case 8: { /* splice: our prefix + another input's suffix */
      const struct input *o = &pool[below(pool_n)];
      size_t at = below(len + 1), from = below(o->len + 1);
      size_t n = o->len - from;
      if (at + n > maxlen) n = maxlen - at;
      memcpy(buf + at, o->data + from, n);
      return at + n;
    }
    case 9: { /* insert a whole other input (a nested valid value) */
      const struct input *o = &pool[below(seed_n ? seed_n : pool_n)];
      if (len + o->len > maxlen) return len;
      size_t at = below(len + 1);
      memmove(buf + at + o->len, buf + at, len - at);
      memcpy(buf + at, o->data, o->len);
      return len + o->len;
    }
    default: { /* swap two bytes */
      if (len < 2) return len;
      size_t a = below(len), b = below(len);
      uint8_t t = buf[a];
      buf[a] = buf[b];
      buf[b] = t;
      return len;
    }
  }
}

static void run_one(const uint8_t *data, size_t len) {
  /* An exact-size copy: reading past the end is a heap overflow. */
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) {
    perror("malloc");
    exit(2);
  }
  if (len) memcpy(copy, data, len);
  cur_data = copy;
  cur_len = len;
  LLVMFuzzerTestOneInput(copy, len);
  cur_data = NULL;
  free(copy);
  cur_no++;
}

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      uint8_t *b = realloc(buf, cap);
      if (!b) {
        perror("realloc");
        exit(2);
      }
      buf = b;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    if (n == 0) break;
    len += n;
  }
  fclose(f);
  run_one(buf, len);
  free(buf);
  return 0;
}

static int write_seeds(const char *dir) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "%s: %s\n", dir, strerror(errno));
    return 1;
  }
  for (size_t i = 0; i < pool_n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%03zu", dir, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(pool[i].data, 1, pool[i].len, f) != pool[i].len) {
      fprintf(stderr, "%s: cannot write\n", path);
      if (f) fclose(f);
      return 1;
    }
    fclose(f);
  }
  printf("%s: %zu seeds written to %s\n", fuzz_target_name, pool_n, dir);
  return 0;
}

static unsigned long long env_ull(const char *name, unsigned long long def) {
  const char *v = getenv(name);
  return v && *v ? strtoull(v, NULL, 0) : def;
}

int main(int argc, char **argv) {
  unsigned long long iterations =
      env_ull("FUZZ_ITERATIONS",
              &fuzz_default_iterations ? fuzz_default_iterations : 20000);
  unsigned long long seed = env_ull("FUZZ_SEED", 1);
  size_t maxlen = DEFAULT_MAXLEN;
  const char *seeds_dir = NULL;
  int opt;
  while ((opt = getopt(argc, argv, "n:s:m:w:")) != -1) {
    switch (opt) {
      case 'n':
        iterations = strtoull(optarg, NULL, 0);
        break;
      case 's':
        seed = strtoull(optarg, NULL, 0);
        break;
      case 'm':
        maxlen = (size_t)strtoull(optarg, NULL, 0);
        break;
      case 'w':
        seeds_dir = optarg;
        break;
      default:
        fprintf(stderr,
                "usage: %s [-n ITERATIONS] [-s SEED] [-m MAXLEN] [-w DIR] "
                "[FILE...]\n",
                argv[0]);
        return 2;
    }
  }
  fuzz_seeds(add_seed, NULL);
  if (pool_n == 0) add_seed(NULL, "", 0);
  if (seeds_dir) return write_seeds(seeds_dir);

  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGABRT, on_signal);
  signal(SIGFPE, on_signal);
  if (__sanitizer_set_death_callback)
    __sanitizer_set_death_callback(report_input);

  for (int i = optind; i < argc; i++)
    if (run_file(argv[i]) != 0) return 2;
  for (size_t i = 0; i < seed_n; i++)
    run_one(pool[i].data, pool[i].len);

  for (size_t i = 0; i < pool_n; i++)
    if (pool[i].len > maxlen) maxlen = pool[i].len;
  uint8_t *buf = malloc(maxlen + 1);
  if (!buf) {
    perror("malloc");
    return 2;
  }
  rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  if (!rng) rng = 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (unsigned long long it = 0; it < iterations; it++) {
    const struct input *base = &pool[below(pool_n)];
    size_t len = base->len < maxlen ? base->len : maxlen;
    memcpy(buf, base->data, len);
    size_t rounds = 1 + below(below(2) ? 2 : 8);
    for (size_t k = 0; k < rounds; k++)
      len = mutate_once(buf, len, maxlen);
    run_one(buf, len);
    if ((it & 15) == 0) pool_keep(buf, len);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("ok   %s: %zu seeds, %llu mutated inputs (seed %llu) in %.2f s\n",
         fuzz_target_name, seed_n, iterations, seed, secs);
  free(buf);
  for (size_t i = 0; i < pool_n; i++)
    free(pool[i].data);
  printf("1 passed, 0 failed\n");
  return 0;
}
