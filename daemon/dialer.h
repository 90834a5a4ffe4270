/* dialer: the dialling policy every overlay core needs, sans-IO — capped,
 * jittered exponential backoff and the seed list (addresses dialled when
 * a node knows nobody to reach). Pure functions over plain structs: the
 * caller passes the time and its random numbers and does the dialling
 * itself through its overlay_env, so the simulator drives this code too. */
#ifndef PARTISAN_DIALER_H
#define PARTISAN_DIALER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "membership.h"

struct dial_policy {
    uint32_t backoff_initial_ms;    /* the first retry's delay (before jitter), at least 1 */
    uint32_t backoff_max_ms;        /* the cap, at least backoff_initial_ms */
};

/* Fixes a policy read from config so that its invariants hold. */
void dial_policy_normalise(struct dial_policy *p);

/* ms spread by ±25 % (random: any 64 random bits), so that nodes that lost
 * the same peer do not redial in lockstep. */
uint64_t dial_jitter(uint32_t ms, uint64_t random);

/* The delay after cur: doubled, capped. */
uint32_t dial_next_backoff(const struct dial_policy *p, uint32_t cur);

struct dial_seed {
    char address[MEMBER_ADDR_MAX + 1];
    bool dialling;
    bool is_self;                   /* this node's own advertised address: never dialled */
    uint64_t next_dial, dial_started;
    uint32_t backoff;               /* the delay the next failure waits (before jitter) */
};

struct dial_seeds {
    struct dial_seed *v;
    size_t n, cap;
};

void dial_seeds_free(struct dial_seeds *s);
struct dial_seed *dial_seeds_find(struct dial_seeds *s, const char *address);
/* The seed at address, added (due at once) if new. NULL out of memory. */
struct dial_seed *dial_seeds_add(struct dial_seeds *s, const struct dial_policy *p, const char *address,
                                 const char *self_address);
/* Whether a dial to a seed at address is in flight. */
bool dial_seeds_dialling_at(const struct dial_seeds *s, const char *address);
/* The seed a connection that no member dial explains answers: the one
 * dialled at that address, else the oldest seed dial in flight (the peer
 * may advertise another spelling of the address dialled). NULL if none. */
struct dial_seed *dial_seeds_for_connection(struct dial_seeds *s, const char *address);
/* A dial to seed is starting now. */
void dial_seed_started(struct dial_seed *seed, uint64_t now);
/* The dial failed: the next one is due after the jittered backoff, which
 * then grows. */
void dial_seed_failed(struct dial_seed *seed, const struct dial_policy *p, uint64_t now, uint64_t random);

#endif
