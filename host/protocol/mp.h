/*
 * mp.h — a bounds-checked msgpack reader for messages from peers.
 *
 * The protocol decodes peer messages straight into C structs with this
 * cursor instead of building a generic object tree: nothing is allocated
 * from a declared length, every read checks the bytes left, and a wrong
 * type is an error rather than a coercion. Encoding uses msgpack-c's
 * packer. Every function returns 0 or MP_EFORMAT / MP_ETRUNC and leaves
 * the cursor unspecified after an error (the message is then dropped).
 */
#ifndef COPYCAT_MP_H
#define COPYCAT_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MP_ETRUNC (-1)  /* input ends inside a value */
#define MP_EFORMAT (-2) /* not the type expected, or out of range */

struct mp_reader {
  const unsigned char *p, *end;
};

void mp_reader_init(struct mp_reader *r, const void *data, size_t len);
size_t mp_left(const struct mp_reader *r);

/* An array header; *n is checked against the bytes left (every element
 * takes at least one byte), so a hostile count is refused up front. */
int mp_read_array(struct mp_reader *r, uint32_t *n);
int mp_read_map(struct mp_reader *r, uint32_t *n);
/* A non-negative integer (positive fixint, uint 8..64, or int >= 0). */
int mp_read_uint(struct mp_reader *r, uint64_t *v);
int mp_read_bool(struct mp_reader *r, bool *v);
/* str or bin; *data points into the input. */
int mp_read_bytes(struct mp_reader *r, const void **data, uint32_t *len);
/* A str of at most max-1 bytes without NUL, copied NUL-terminated. */
int mp_read_name(struct mp_reader *r, char *out, size_t max);
/* Skips one value of any type (nesting at most 64 deep). */
int mp_skip(struct mp_reader *r);

/* nil: returns 1 and consumes it; otherwise 0 and leaves the cursor. */
int mp_read_nil(struct mp_reader *r);

#endif
