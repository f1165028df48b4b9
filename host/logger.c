/*
 * logger.c — structured log lines; the format is described in logger.h.
 */
#include "logger.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* Room kept at the end of every line for the truncation mark, the closing
 * brace, the newline and the NUL. */
#define RESERVE 24

void logger_init(struct logger *lg) {
  memset(lg, 0, sizeof *lg);
  lg->level = LOGGER_INFO;
  lg->format = LOGGER_KV;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int logger_level_parse(const char *s) {
  if (!s) return -1;
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  if (strcmp(s, "warning") == 0) return LOGGER_WARN;
  return -1;
}

int logger_format_parse(const char *s) {
  if (!s) return -1;
  if (strcmp(s, "kv") == 0 || strcmp(s, "logfmt") == 0) return LOGGER_KV;
  if (strcmp(s, "json") == 0) return LOGGER_JSON;
  return -1;
}

const char *logger_level_name(int level) {
  return level >= 0 && level <= 3 ? level_names[level] : "info";
}

int logger_enabled(const struct logger *lg, int level) {
  return lg && level <= lg->level;
}

/* ---- raw appending (an overflow rolls the current field back) ---- */

static int overflowed(const struct logger_line *l) {
  return l->len + RESERVE > sizeof l->buf;
}

static void put(struct logger_line *l, const char *s, size_t n) {
  if (l->len + n + RESERVE > sizeof l->buf) {
    l->len = sizeof l->buf; /* marks the overflow; rolled back by the field */
    return;
  }
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

static void putc_(struct logger_line *l, char c) {
  put(l, &c, 1);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  unsigned cp = c & (0x7F >> len);
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static const char hex[] = "0123456789abcdef";

static void put_hex_escape(struct logger_line *l, unsigned char c) {
  char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
  put(l, e, 4);
}

static int kv_needs_quotes(const unsigned char *p, size_t n) {
  if (n == 0) return 1;
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c <= 0x20 || c == '=' || c == '"' || c == '\\' || c == 0x7F) return 1;
    size_t k = utf8_len(p + i, n - i);
    if (!k) return 1;
    i += k;
  }
  return 0;
}

static void put_kv_value(struct logger_line *l, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  if (!kv_needs_quotes(p, n)) {
    put(l, s, n);
    return;
  }
  putc_(l, '"');
  for (size_t i = 0; i < n && !overflowed(l);) {
    unsigned char c = p[i];
    size_t k = c >= 0x80 ? utf8_len(p + i, n - i) : 1;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(l, e, 2);
    } else if (c == '\n') {
      put(l, "\\n", 2);
    } else if (c == '\r') {
      put(l, "\\r", 2);
    } else if (c == '\t') {
      put(l, "\\t", 2);
    } else if (c < 0x20 || c == 0x7F || k == 0) {
      put_hex_escape(l, c);
      k = 1;
    } else {
      put(l, s + i, k);
    }
    i += k;
  }
  putc_(l, '"');
}

static void put_json_string(struct logger_line *l, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  putc_(l, '"');
  for (size_t i = 0; i < n && !overflowed(l);) {
    unsigned char c = p[i];
    size_t k = c >= 0x80 ? utf8_len(p + i, n - i) : 1;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(l, e, 2);
    } else if (c == '\n') {
      put(l, "\\n", 2);
    } else if (c == '\r') {
      put(l, "\\r", 2);
    } else if (c == '\t') {
      put(l, "\\t", 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(l, e, 6);
    } else if (k == 0) {
      put(l, "\\ufffd", 6);
      k = 1;
    } else {
      put(l, s + i, k);
    }
    i += k;
  }
  putc_(l, '"');
}

/* Keys come from code, but also from Lua scripts: anything outside
 * [A-Za-z0-9_.-] becomes '_' so that a key never breaks a line. */
static void put_key(struct logger_line *l, const char *key) {
  char k[64];
  size_t n = 0;
  for (; key[n] && n < sizeof k; n++) {
    char c = key[n];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    k[n] = ok ? c : '_';
  }
  if (n == 0) k[n++] = '_';
  if (l->lg->format == LOGGER_JSON) {
    put(l, ",\"", 2);
    put(l, k, n);
    put(l, "\":", 2);
  } else {
    putc_(l, ' ');
    put(l, k, n);
    putc_(l, '=');
  }
}

/* Runs one field: on overflow the line goes back to where it was. */
#define FIELD(l, body)              \
  do {                              \
    if ((l)->skip) return;          \
    size_t field_start_ = (l)->len; \
    body;                           \
    if (overflowed(l)) {            \
      (l)->len = field_start_;      \
      (l)->truncated = 1;           \
    }                               \
  } while (0)

static void format_time(char *out, size_t n, uint64_t unix_ms) {
  time_t secs = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (unsigned)(unix_ms % 1000));
}

void logger_begin_at(struct logger_line *l, const struct logger *lg, int level,
                     const char *event, uint64_t unix_ms) {
  l->lg = lg;
  l->len = 0;
  l->truncated = 0;
  l->skip = !logger_enabled(lg, level);
  if (l->skip) return;
  char ts[80];
  format_time(ts, sizeof ts, unix_ms);
  if (lg->format == LOGGER_JSON) {
    put(l, "{\"ts\":", 6);
    put_json_string(l, ts, strlen(ts));
  } else {
    put(l, "ts=", 3);
    put(l, ts, strlen(ts));
  }
  logger_str(l, "level", logger_level_name(level));
  if (lg->name[0]) logger_str(l, "server", lg->name);
  logger_str(l, "event", event);
}

void logger_begin(struct logger_line *l, const struct logger *lg, int level,
                  const char *event) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  logger_begin_at(
      l, lg, level, event,
      (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000);
}

void logger_strn(struct logger_line *l, const char *key, const char *val,
                 size_t n) {
  FIELD(l, {
    put_key(l, key);
    if (l->lg->format == LOGGER_JSON)
      put_json_string(l, val, n);
    else
      put_kv_value(l, val, n);
  });
}

void logger_str(struct logger_line *l, const char *key, const char *val) {
  if (!val) val = "";
  logger_strn(l, key, val, strlen(val));
}

static void put_number(struct logger_line *l, const char *key,
                       const char *text) {
  FIELD(l, {
    put_key(l, key);
    put(l, text, strlen(text));
  });
}

void logger_u64(struct logger_line *l, const char *key, uint64_t v) {
  char t[24];
  snprintf(t, sizeof t, "%" PRIu64, v);
  put_number(l, key, t);
}

void logger_i64(struct logger_line *l, const char *key, int64_t v) {
  char t[24];
  snprintf(t, sizeof t, "%" PRId64, v);
  put_number(l, key, t);
}

void logger_f64(struct logger_line *l, const char *key, double v) {
  char t[32];
  if (isfinite(v))
    snprintf(t, sizeof t, "%.6g", v);
  else
    snprintf(t, sizeof t, "null");
  put_number(l, key, t);
}

void logger_bool(struct logger_line *l, const char *key, int v) {
  put_number(l, key, v ? "true" : "false");
}

size_t logger_finish(struct logger_line *l) {
  if (l->skip) return 0;
  /* RESERVE bytes are always free here. */
  if (l->truncated) {
    const char *t = l->lg->format == LOGGER_JSON ? ",\"truncated\":true"
                                                 : " truncated=true";
    memcpy(l->buf + l->len, t, strlen(t));
    l->len += strlen(t);
  }
  if (l->lg->format == LOGGER_JSON) l->buf[l->len++] = '}';
  l->buf[l->len++] = '\n';
  l->buf[l->len] = '\0';
  l->skip = 1; /* finished: further calls do nothing */
  return l->len;
}

void logger_end(struct logger_line *l) {
  const struct logger *lg = l->lg;
  size_t n = logger_finish(l);
  if (!n) return;
  FILE *out = lg->out ? lg->out : stderr;
  fwrite(l->buf, 1, n, out);
  fflush(out);
}

void logger_msg(const struct logger *lg, int level, const char *event,
                const char *fmt, ...) {
  if (!logger_enabled(lg, level)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct logger_line l;
  logger_begin(&l, lg, level, event);
  logger_str(&l, "msg", msg);
  logger_end(&l);
}
