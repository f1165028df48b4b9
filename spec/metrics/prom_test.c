/*
 * prom_test.c — the Prometheus text writer: families, label escaping,
 * number formats and cumulative histograms.
 */
#include <math.h>

#include "harness.h"
#include "metrics/prom.h"

TEST(families_and_samples) {
  struct prom_buf b;
  prom_buf_init(&b);
  prom_family(&b, "copycat_term", "gauge", "Current term.\nSecond \\ line");
  prom_u64(&b, "copycat_term", NULL, 18446744073709551615ull);
  const char *l[] = {"peer", "n\"2\\\n", "kind", "x", NULL};
  prom_f64(&b, "copycat_lag", l, 0.25);
  prom_f64(&b, "copycat_inf", NULL, INFINITY);
  prom_f64(&b, "copycat_nan", NULL, NAN);
  prom_f64(&b, "copycat_tenth", NULL, 0.1);
  CHECK(!b.failed);
  CHECK(strcmp(b.data,
               "# HELP copycat_term Current term.\\nSecond \\\\ line\n"
               "# TYPE copycat_term gauge\n"
               "copycat_term 18446744073709551615\n"
               "copycat_lag{peer=\"n\\\"2\\\\\\n\",kind=\"x\"} 0.25\n"
               "copycat_inf +Inf\n"
               "copycat_nan NaN\n"
               "copycat_tenth 0.1\n") == 0);
  prom_buf_free(&b);
}

TEST(histogram_is_cumulative_and_ends_with_inf) {
  static const double bounds[] = {0.001, 0.01, 0.1};
  struct prom_hist h;
  prom_hist_init(&h, bounds, 3);
  prom_hist_observe(&h, 0.0005);
  prom_hist_observe(&h, 0.001); /* le is inclusive */
  prom_hist_observe(&h, 0.05);
  prom_hist_observe(&h, 7);
  struct prom_buf b;
  prom_buf_init(&b);
  const char *l[] = {"kind", "taken", NULL};
  prom_hist_write(&b, "x_seconds", l, &h);
  CHECK(strcmp(b.data,
               "x_seconds_bucket{kind=\"taken\",le=\"0.001\"} 2\n"
               "x_seconds_bucket{kind=\"taken\",le=\"0.01\"} 2\n"
               "x_seconds_bucket{kind=\"taken\",le=\"0.1\"} 3\n"
               "x_seconds_bucket{kind=\"taken\",le=\"+Inf\"} 4\n"
               "x_seconds_sum{kind=\"taken\"} 7.0515\n"
               "x_seconds_count{kind=\"taken\"} 4\n") == 0);
  prom_buf_free(&b);
  /* Without labels, and empty. */
  prom_hist_init(&h, bounds, 1);
  prom_buf_init(&b);
  prom_hist_write(&b, "y", NULL, &h);
  CHECK(strcmp(b.data,
               "y_bucket{le=\"0.001\"} 0\ny_bucket{le=\"+Inf\"} 0\n"
               "y_sum 0\ny_count 0\n") == 0);
  prom_buf_free(&b);
}

TEST(large_pages_grow) {
  struct prom_buf b;
  prom_buf_init(&b);
  for (int i = 0; i < 5000; i++)
    prom_u64(&b, "copycat_something_long_enough", NULL, (uint64_t)i);
  CHECK(!b.failed);
  CHECK(b.len > 5000 * 30);
  CHECK(strstr(b.data, "copycat_something_long_enough 4999\n") != NULL);
  prom_buf_free(&b);
}

int main(void) {
  RUN(families_and_samples);
  RUN(histogram_is_cumulative_and_ends_with_inf);
  RUN(large_pages_grow);
  return harness_done();
}
