/*
 * logger.h — structured, leveled log lines (docs/logging.md).
 *
 * One event is one line on the logger's stream, written with a single
 * fwrite of the fully formatted line, so lines from several threads or
 * processes sharing a stream never interleave within a line. Two formats:
 *
 *   key=value (default):
 *     ts=2026-12-01T12:00:00.123Z level=info server=n1 event=leader_changed
 *     leader=n2 term=3
 *   JSON lines:
 *     {"ts":"2026-12-01T12:00:00.123Z","level":"info","server":"n1",...}
 *
 * Every line has ts (UTC, milliseconds), level and event, in that order
 * (server, when the logger has a name, comes between level and event).
 * key=value values are quoted when they are empty or contain a space,
 * '=', a quote, a backslash or a control byte; inside quotes \" \\ \n \r \t
 * and \xNN escape the rest. Bytes that are not valid UTF-8 become \xNN
 * (key=value) or U+FFFD (JSON), so every line is valid text whatever a
 * peer sent. A line is at most LOGGER_LINE_MAX bytes: a field that does not
 * fit is left out and the line ends with truncated=true.
 *
 * The configuration (struct logger) is a small value owned by whoever logs
 * (each server holds its own); there is no global state.
 */
#ifndef COPYCAT_LOGGER_H
#define COPYCAT_LOGGER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { LOGGER_ERROR = 0, LOGGER_WARN, LOGGER_INFO, LOGGER_DEBUG };
enum { LOGGER_KV = 0, LOGGER_JSON = 1 };

#define LOGGER_LINE_MAX 4096
#define LOGGER_NAME_MAX 64

struct logger {
  int level;                  /* lines above this level are not written */
  int format;                 /* LOGGER_KV or LOGGER_JSON */
  FILE *out;                  /* NULL: stderr */
  char name[LOGGER_NAME_MAX]; /* "" or the server's name */
};

/* Level info, key=value, stderr, no name. */
void logger_init(struct logger *lg);
/* "error", "warn", "info", "debug" -> LOGGER_*; -1 if unknown. */
int logger_level_parse(const char *s);
/* "kv" (or "logfmt"), "json" -> LOGGER_*; -1 if unknown. */
int logger_format_parse(const char *s);
const char *logger_level_name(int level);
/* True if a line at this level would be written. */
int logger_enabled(const struct logger *lg, int level);

/* A line being built. Begin it, add fields, end it (which writes it). When
 * the level is disabled every call is a cheap no-op. */
struct logger_line {
  const struct logger *lg;
  int skip, truncated;
  size_t len;
  char buf[LOGGER_LINE_MAX];
};

void logger_begin(struct logger_line *l, const struct logger *lg, int level,
                  const char *event);
/* Begin with an explicit time (ms since the epoch), for tests. */
void logger_begin_at(struct logger_line *l, const struct logger *lg, int level,
                     const char *event, uint64_t unix_ms);
void logger_str(struct logger_line *l, const char *key, const char *val);
/* A string of known length (may hold any bytes). */
void logger_strn(struct logger_line *l, const char *key, const char *val,
                 size_t n);
void logger_u64(struct logger_line *l, const char *key, uint64_t v);
void logger_i64(struct logger_line *l, const char *key, int64_t v);
/* Finite numbers with up to 6 significant decimals; non-finite as null. */
void logger_f64(struct logger_line *l, const char *key, double v);
void logger_bool(struct logger_line *l, const char *key, int v);
/* Finish the line into l->buf (NUL-terminated, ending with '\n') without
 * writing it; returns its length (0 if skipped). */
size_t logger_finish(struct logger_line *l);
/* Finish and write the line to the logger's stream. */
void logger_end(struct logger_line *l);

/* One-call form: event plus a message field "msg". */
void logger_msg(const struct logger *lg, int level, const char *event,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
