/*
 * logger_test.c — the log line formats: field order, quoting and escaping,
 * invalid UTF-8, levels, and lines that would be too long.
 */
#include "harness.h"
#include "logger.h"

/* 2026-12-01T12:00:00.123Z */
#define T0 1796126400123ull

static const char *line(struct logger_line *l) {
  logger_finish(l);
  return l->buf;
}

TEST(kv_line_has_ts_level_server_event_in_order) {
  struct logger lg;
  logger_init(&lg);
  snprintf(lg.name, sizeof lg.name, "n1");
  struct logger_line l;
  logger_begin_at(&l, &lg, LOGGER_INFO, "leader_changed", T0);
  logger_str(&l, "leader", "n2");
  logger_u64(&l, "term", 3);
  logger_i64(&l, "delta", -2);
  logger_bool(&l, "ok", 1);
  logger_f64(&l, "seconds", 0.25);
  CHECK(strcmp(line(&l),
               "ts=2026-12-01T12:00:00.123Z level=info server=n1 "
               "event=leader_changed leader=n2 term=3 delta=-2 ok=true "
               "seconds=0.25\n") == 0);
}

TEST(kv_quotes_what_needs_it) {
  struct logger lg;
  logger_init(&lg);
  struct logger_line l;
  logger_begin_at(&l, &lg, LOGGER_WARN, "x", T0);
  logger_str(&l, "a", "two words");
  logger_str(&l, "b", "");
  logger_str(&l, "c", "say \"hi\"\\");
  logger_str(&l, "d", "k=v");
  logger_str(&l, "e", "line\nbreak\ttab\x01");
  logger_str(&l, "f", "caf\xc3\xa9");
  logger_strn(&l, "g", "bad\xff\xc3", 5);
  logger_str(&l, "we ird=key", "v");
  CHECK(strcmp(line(&l),
               "ts=2026-12-01T12:00:00.123Z level=warn event=x "
               "a=\"two words\" b=\"\" c=\"say \\\"hi\\\"\\\\\" "
               "d=\"k=v\" e=\"line\\nbreak\\ttab\\x01\" "
               "f=caf\xc3\xa9 g=\"bad\\xff\\xc3\" we_ird_key=v\n") == 0);
}

TEST(json_line_escapes_and_types) {
  struct logger lg;
  logger_init(&lg);
  lg.format = LOGGER_JSON;
  snprintf(lg.name, sizeof lg.name, "n\"1");
  struct logger_line l;
  logger_begin_at(&l, &lg, LOGGER_ERROR, "storage_failed", T0);
  logger_str(&l, "msg", "disk \"full\"\n\x02");
  logger_strn(&l, "raw", "a\xff", 2);
  logger_u64(&l, "index", 18446744073709551615ull);
  logger_bool(&l, "fatal", 0);
  logger_f64(&l, "nan", 0.0 / 0.0);
  CHECK(strcmp(line(&l),
               "{\"ts\":\"2026-12-01T12:00:00.123Z\",\"level\":\"error\","
               "\"server\":\"n\\\"1\",\"event\":\"storage_failed\","
               "\"msg\":\"disk \\\"full\\\"\\n\\u0002\",\"raw\":\"a\\ufffd\","
               "\"index\":18446744073709551615,\"fatal\":false,"
               "\"nan\":null}\n") == 0);
}

TEST(levels_filter_lines) {
  struct logger lg;
  logger_init(&lg);
  struct logger_line l;
  logger_begin_at(&l, &lg, LOGGER_DEBUG, "noise", T0);
  logger_str(&l, "a", "b");
  CHECK_INT(logger_finish(&l), ==, 0);
  lg.level = LOGGER_DEBUG;
  logger_begin_at(&l, &lg, LOGGER_DEBUG, "noise", T0);
  CHECK(logger_finish(&l) > 0);
  lg.level = LOGGER_ERROR;
  logger_begin_at(&l, &lg, LOGGER_WARN, "noise", T0);
  CHECK_INT(logger_finish(&l), ==, 0);
  CHECK_INT(logger_level_parse("warn"), ==, LOGGER_WARN);
  CHECK_INT(logger_level_parse("debug"), ==, LOGGER_DEBUG);
  CHECK_INT(logger_level_parse("loud"), ==, -1);
  CHECK_INT(logger_format_parse("json"), ==, LOGGER_JSON);
  CHECK_INT(logger_format_parse("kv"), ==, LOGGER_KV);
  CHECK_INT(logger_format_parse("xml"), ==, -1);
}

TEST(too_long_fields_are_dropped_and_marked) {
  static char big[LOGGER_LINE_MAX * 2];
  memset(big, 'a', sizeof big - 1);
  for (int format = 0; format < 2; format++) {
    struct logger lg;
    logger_init(&lg);
    lg.format = format;
    struct logger_line l;
    logger_begin_at(&l, &lg, LOGGER_INFO, "big", T0);
    logger_str(&l, "small", "1");
    logger_str(&l, "huge", big);
    logger_str(&l, "after", "2");
    const char *s = line(&l);
    CHECK(strlen(s) < LOGGER_LINE_MAX);
    CHECK(strstr(s, "huge") == NULL);
    CHECK(strstr(s, "after") != NULL);
    CHECK(strstr(s, format ? "\"truncated\":true}\n" : "truncated=true\n"));
  }
  /* A value full of bytes that expand when escaped still fits. */
  memset(big, '\x01', sizeof big - 1);
  struct logger lg;
  logger_init(&lg);
  struct logger_line l;
  logger_begin_at(&l, &lg, LOGGER_INFO, "big", T0);
  logger_strn(&l, "x", big, 1000);
  const char *s = line(&l);
  CHECK(strstr(s, " x=\"\\x01\\x01") != NULL);
  CHECK(s[strlen(s) - 1] == '\n');
}

TEST(writes_whole_lines_to_the_stream) {
  FILE *f = tmpfile();
  CHECK(f != NULL);
  struct logger lg;
  logger_init(&lg);
  lg.out = f;
  logger_msg(&lg, LOGGER_INFO, "hello", "%d things", 3);
  logger_msg(&lg, LOGGER_DEBUG, "hidden", "no");
  rewind(f);
  char buf[256] = "";
  CHECK(fgets(buf, sizeof buf, f) != NULL);
  CHECK(strstr(buf, " level=info event=hello msg=\"3 things\"\n") != NULL);
  CHECK(fgets(buf, sizeof buf, f) == NULL);
  fclose(f);
}

int main(void) {
  RUN(kv_line_has_ts_level_server_event_in_order);
  RUN(kv_quotes_what_needs_it);
  RUN(json_line_escapes_and_types);
  RUN(levels_filter_lines);
  RUN(too_long_fields_are_dropped_and_marked);
  RUN(writes_whole_lines_to_the_stream);
  return harness_done();
}
