/*
 * crc32c.h — CRC-32C (Castagnoli), the checksum of every stored record.
 *
 * crc32c() uses the SSE4.2 crc32 instruction when the CPU has it (checked at
 * run time) and a table-driven software implementation otherwise. Both give
 * bit-identical results; crc32c_sw() and crc32c_hw() are exported so that
 * tests can compare them.
 *
 * The value is the standard one: crc32c("123456789", 9) == 0xE3069283.
 * To checksum data in pieces, pass the previous result as `crc`:
 *   c = crc32c(0, a, n); c = crc32c(c, b, m);  ==  crc32c(0, a||b, n+m)
 */
#ifndef COPYCAT_STORAGE_CRC32C_H
#define COPYCAT_STORAGE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The software implementation; always available. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);

/* The SSE4.2 implementation. Only call it when crc32c_hw_available(). */
uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len);

/* 1 if this CPU has the SSE4.2 crc32 instruction, else 0. */
int crc32c_hw_available(void);

#endif
