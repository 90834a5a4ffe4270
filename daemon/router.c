#include "router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct route {
    struct route *next;
    struct ipc_session *owner;
    uint64_t hash;
    char name[];
};

struct router {
    struct route **buckets;
    size_t n_buckets;            /* a power of two */
    size_t count;
};

/* FNV-1a: names are short, and this is cheap and good enough for them. */
static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

struct router *router_new(void)
{
    struct router *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->n_buckets = 64;
    r->buckets = calloc(r->n_buckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    return r;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_buckets; i++)
        for (struct route *e = r->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(r->buckets);
    free(r);
}

static struct route **find_slot(const struct router *r, const char *name, uint64_t h)
{
    struct route **pp = &r->buckets[h & (r->n_buckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(struct router *r)
{
    size_t n = r->n_buckets * 2;
    struct route **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < r->n_buckets; i++)
        for (struct route *e = r->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(r->buckets);
    r->buckets = b;
    r->n_buckets = n;
}

int router_register(struct router *r, const char *name, struct ipc_session *owner)
{
    uint64_t h = hash_name(name);
    struct route **pp = find_slot(r, name, h);
    if (*pp)
        return (*pp)->owner == owner ? 0 : -1;
    size_t len = strlen(name);
    struct route *e = malloc(sizeof *e + len + 1);
    if (!e)
        return -2;
    e->next = NULL;
    e->owner = owner;
    e->hash = h;
    memcpy(e->name, name, len + 1);
    *pp = e;
    if (++r->count > r->n_buckets)
        grow(r);
    return 0;
}

int router_unregister(struct router *r, const char *name, const struct ipc_session *owner)
{
    struct route **pp = find_slot(r, name, hash_name(name));
    if (!*pp)
        return -1;
    if ((*pp)->owner != owner)
        return -2;
    struct route *e = *pp;
    *pp = e->next;
    free(e);
    r->count--;
    return 0;
}

struct ipc_session *router_lookup(const struct router *r, const char *name)
{
    struct route **pp = find_slot(r, name, hash_name(name));
    return *pp ? (*pp)->owner : NULL;
}

size_t router_release(struct router *r, const struct ipc_session *owner)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_buckets; i++) {
        struct route **pp = &r->buckets[i];
        while (*pp) {
            if ((*pp)->owner == owner) {
                struct route *e = *pp;
                *pp = e->next;
                free(e);
                n++;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    r->count -= n;
    return n;
}

size_t router_count(const struct router *r) { return r->count; }
