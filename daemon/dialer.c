/* dialer: see dialer.h. */
#include "dialer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dial_policy_normalise(struct dial_policy *p)
{
    if (p->backoff_initial_ms == 0)
        p->backoff_initial_ms = 1;
    if (p->backoff_max_ms < p->backoff_initial_ms)
        p->backoff_max_ms = p->backoff_initial_ms;
}

uint64_t dial_jitter(uint32_t ms, uint64_t random)
{
    uint64_t spread = ms / 2;
    return ms - ms / 4 + (spread ? random % (spread + 1) : 0);
}

uint32_t dial_next_backoff(const struct dial_policy *p, uint32_t cur)
{
    uint64_t n = (uint64_t)cur * 2;
    return n > p->backoff_max_ms ? p->backoff_max_ms : (uint32_t)n;
}

void dial_seeds_free(struct dial_seeds *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

struct dial_seed *dial_seeds_find(struct dial_seeds *s, const char *address)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].address, address) == 0)
            return &s->v[i];
    return NULL;
}

struct dial_seed *dial_seeds_add(struct dial_seeds *s, const struct dial_policy *p, const char *address,
                                 const char *self_address)
{
    struct dial_seed *d = dial_seeds_find(s, address);
    if (d)
        return d;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        struct dial_seed *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return NULL;
        s->v = v;
        s->cap = cap;
    }
    d = &s->v[s->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->address, sizeof d->address, "%s", address);
    d->backoff = p->backoff_initial_ms;
    d->is_self = self_address && strcmp(address, self_address) == 0;
    return d;
}

bool dial_seeds_dialling_at(const struct dial_seeds *s, const char *address)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].dialling && strcmp(s->v[i].address, address) == 0)
            return true;
    return false;
}

struct dial_seed *dial_seeds_for_connection(struct dial_seeds *s, const char *address)
{
    struct dial_seed *best = NULL;
    for (size_t i = 0; i < s->n; i++) {
        struct dial_seed *d = &s->v[i];
        if (!d->dialling)
            continue;
        if (strcmp(d->address, address) == 0)
            return d;
        if (!best || d->dial_started < best->dial_started)
            best = d;
    }
    return best;
}

void dial_seed_started(struct dial_seed *seed, uint64_t now)
{
    seed->dialling = true;
    seed->dial_started = now;
}

void dial_seed_failed(struct dial_seed *seed, const struct dial_policy *p, uint64_t now, uint64_t random)
{
    seed->dialling = false;
    seed->next_dial = now + dial_jitter(seed->backoff, random);
    seed->backoff = dial_next_backoff(p, seed->backoff);
}
