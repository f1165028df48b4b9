/*
 * crc32c_test.c — CRC-32C: known values, and the SSE4.2 and software
 * implementations agreeing on every length, alignment and split.
 */
#include "harness.h"
#include "storage/crc32c.h"

TEST(known_values) {
  CHECK_INT(crc32c(0, "123456789", 9), ==, 0xE3069283u);
  CHECK_INT(crc32c_sw(0, "123456789", 9), ==, 0xE3069283u);
  CHECK_INT(crc32c(0, "", 0), ==, 0);
  uint8_t zeros[32] = {0}, ones[32];
  memset(ones, 0xFF, sizeof ones);
  /* iSCSI test vectors (RFC 3720, B.4). */
  CHECK_INT(crc32c(0, zeros, 32), ==, 0x8A9136AAu);
  CHECK_INT(crc32c(0, ones, 32), ==, 0x62A8AB43u);
  uint8_t inc[32];
  for (int i = 0; i < 32; i++)
    inc[i] = (uint8_t)i;
  CHECK_INT(crc32c(0, inc, 32), ==, 0x46DD794Eu);
}

TEST(hardware_and_software_agree) {
  if (!crc32c_hw_available()) {
    printf("    (no SSE4.2 on this CPU: only the software path runs)\n");
  }
  uint8_t buf[4096 + 16];
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < sizeof buf; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  for (size_t align = 0; align < 8; align++)
    for (size_t len = 0; len <= 300; len++) {
      uint32_t sw = crc32c_sw(0, buf + align, len);
      CHECK_INT(crc32c_hw(0, buf + align, len), ==, sw);
      CHECK_INT(crc32c(0, buf + align, len), ==, sw);
    }
  CHECK_INT(crc32c_hw(0, buf, 4096), ==, crc32c_sw(0, buf, 4096));
  CHECK_INT(crc32c_hw(0x12345678u, buf + 3, 4000), ==,
            crc32c_sw(0x12345678u, buf + 3, 4000));
}

TEST(incremental_equals_whole) {
  uint8_t buf[1000];
  for (int i = 0; i < 1000; i++)
    buf[i] = (uint8_t)(i * 7 + 3);
  uint32_t whole = crc32c(0, buf, 1000);
  for (size_t cut = 0; cut <= 1000; cut += 37) {
    CHECK_INT(crc32c(crc32c(0, buf, cut), buf + cut, 1000 - cut), ==, whole);
    CHECK_INT(crc32c_sw(crc32c_hw(0, buf, cut), buf + cut, 1000 - cut), ==,
              whole);
  }
}

TEST(single_bit_flips_change_the_value) {
  uint8_t buf[64];
  for (int i = 0; i < 64; i++)
    buf[i] = (uint8_t)i;
  uint32_t c = crc32c(0, buf, 64);
  for (int bit = 0; bit < 64 * 8; bit++) {
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    CHECK(crc32c(0, buf, 64) != c);
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
}

int main(void) {
  RUN(known_values);
  RUN(hardware_and_software_agree);
  RUN(incremental_equals_whole);
  RUN(single_bit_flips_change_the_value);
  return harness_done();
}
