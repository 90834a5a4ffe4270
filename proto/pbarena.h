/* pbarena: a bump allocator for protobuf-c unpacking.
 *
 * Decoding a frame allocates a handful of small objects that all die
 * together when the frame has been handled. Handing protobuf-c this arena
 * (pbarena_allocator) and calling pbarena_reset() after each frame replaces
 * those mallocs and frees with pointer bumps; only objects larger than the
 * arena's block (big payloads) fall through to malloc, and reset frees them.
 * Not thread-safe: one arena per thread or per event loop. */
#ifndef PARTISAN_PBARENA_H
#define PARTISAN_PBARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

struct pbarena_big;

struct pbarena {
    unsigned char *block;
    size_t cap, used;
    struct pbarena_big *bigs;
    ProtobufCAllocator allocator;
};

/* Returns 0, or -1 if the block could not be allocated. */
int pbarena_init(struct pbarena *a, size_t block_bytes);
void pbarena_reset(struct pbarena *a);
void pbarena_free(struct pbarena *a);

#endif
