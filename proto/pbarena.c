#include "pbarena.h"

#include <stdlib.h>

struct pbarena_big {
    struct pbarena_big *next;
    max_align_t data[];
};

static void *arena_alloc(void *ctx, size_t n)
{
    struct pbarena *a = ctx;
    size_t aligned = (n + 15) & ~(size_t)15;
    if (aligned <= a->cap - a->used) {
        void *p = a->block + a->used;
        a->used += aligned;
        return p;
    }
    struct pbarena_big *b = malloc(sizeof *b + n);
    if (!b)
        return NULL;
    b->next = a->bigs;
    a->bigs = b;
    return b->data;
}

static void arena_release(void *ctx, void *p)
{
    /* Everything goes at once in pbarena_reset(). */
    (void)ctx;
    (void)p;
}

int pbarena_init(struct pbarena *a, size_t block_bytes)
{
    a->block = malloc(block_bytes);
    a->cap = a->block ? block_bytes : 0;
    a->used = 0;
    a->bigs = NULL;
    a->allocator.alloc = arena_alloc;
    a->allocator.free = arena_release;
    a->allocator.allocator_data = a;
    return a->block ? 0 : -1;
}

void pbarena_reset(struct pbarena *a)
{
    while (a->bigs) {
        struct pbarena_big *next = a->bigs->next;
        free(a->bigs);
        a->bigs = next;
    }
    a->used = 0;
}

void pbarena_free(struct pbarena *a)
{
    pbarena_reset(a);
    free(a->block);
    a->block = NULL;
    a->cap = 0;
}
