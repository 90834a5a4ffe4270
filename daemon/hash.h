/* hash: the one hash of names and keys used across the daemon (route
 * lookups, flow-control tables, partition keys). FNV-1a, 64 bits: the
 * inputs are short, and it must be the same on every node so that a key
 * picks the same connection wherever it is hashed. Not for anything that
 * must resist a chosen-input attack. */
#ifndef PARTISAN_HASH_H
#define PARTISAN_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SEED UINT64_C(0xcbf29ce484222325)

static inline uint64_t hash_bytes_from(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static inline uint64_t hash_bytes(const void *data, size_t len)
{
    return hash_bytes_from(HASH_SEED, data, len);
}

/* A NUL-terminated string; hash_str(s) == hash_bytes(s, strlen(s)). */
static inline uint64_t hash_str(const char *s)
{
    uint64_t h = HASH_SEED;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
    return h;
}

#endif
