/* plumtree: epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007)
 * over the HyParView active view; sans-IO like the overlay cores.
 *
 * Each neighbour is eager (gets every payload at once) or lazy (gets only
 * the ids, in IHAVE batches). Every neighbour starts eager; a duplicate
 * payload makes its sender lazy (PRUNE, both ends), so the eager links
 * settle into a spanning tree shared by every origin. An IHAVE for an id
 * not received within PLUMTREE_GRAFT_MS asks its announcer for it (GRAFT),
 * which also makes that link eager again: the tree repairs itself around a
 * failed or slow node.
 *
 * Identity and dedup: a broadcast is (origin, origin incarnation, seq); its
 * 64-bit hash goes into a FIFO id cache bounded by count and age. The owner
 * also judges freshness (deliver() returning false: an announcement older
 * than one already known counts as a duplicate), so an id that aged out of
 * the cache cannot deliver an old announcement twice. An application
 * broadcast has only the cache: a copy arriving more than ids_ttl_ms (15 s)
 * after the first, or after ids_max newer ids, would be delivered again;
 * copies come by GRAFT within seconds, so that takes a node stalled for
 * longer than that. Payloads are kept for GRAFTs in a store bounded by
 * count and age (store_max, store_ttl_ms).
 *
 * Announcements (urgent = false) wait up to PLUMTREE_EAGER_MS so that many
 * travel in one GOSSIP message; application broadcasts go at once.
 * The module never reads a clock: every entry point takes now_ms. */
#ifndef PARTISAN_PLUMTREE_H
#define PARTISAN_PLUMTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyparview.pb-c.h"

#define PLUMTREE_EAGER_MS 250   /* batching delay of announcements */
#define PLUMTREE_LAZY_MS 500    /* IHAVE batching delay */
#define PLUMTREE_GRAFT_MS 1000  /* IHAVE received, payload missing: GRAFT after this */
#define PLUMTREE_GRAFT2_MS 500  /* then the next announcer after this */

struct plumtree_env {
    void *ctx;
    /* One GOSSIP, IHAVE, GRAFT or PRUNE to a neighbour. */
    void (*send)(void *ctx, const char *peer, const HvMessage *m);
    /* A broadcast whose id is new. Returns true if it is news (delivered:
     * forward it), false if the owner knows it as stale (a duplicate).
     * from is NULL for this node's own broadcasts. round: hops from the
     * origin. */
    bool (*deliver)(void *ctx, const char *from, const HvBroadcast *b, uint32_t round);
    /* Optional: from has id too (an IHAVE: id->round is from's hops from
     * the origin; or a duplicate payload: one more), for every source after
     * the first: other paths toward the origin. */
    void (*seen)(void *ctx, const char *from, const HvBroadcastId *id);
};

struct plumtree_params {
    size_t ids_max;             /* id cache entries; 0: 65536 */
    uint32_t ids_ttl_ms;        /* 0: 15000 */
    size_t store_max;           /* payloads kept for GRAFTs; 0: 1024 */
    uint32_t store_ttl_ms;      /* 0: 5000 */
};

struct plumtree_stats {
    uint64_t gossip_received;   /* payloads received (each broadcast of a GOSSIP counts) */
    uint64_t duplicates;        /* of those, already known */
    uint64_t ihave_ids, grafts, prunes;
    uint64_t delivered;         /* new payloads, own broadcasts included */
};

struct plumtree;

struct plumtree *plumtree_new(const struct plumtree_env *env, const struct plumtree_params *p);
void plumtree_free(struct plumtree *t);

/* The active view changed. A new neighbour is offered (IHAVE) the
 * application broadcasts still in the store. */
void plumtree_neighbor_up(struct plumtree *t, const char *peer, uint64_t now_ms);
void plumtree_neighbor_down(struct plumtree *t, const char *peer);

/* Originates b (its id set by the caller; round 0): delivered locally
 * through env->deliver first, then pushed. Returns 0, or -1 if the id is
 * already known or memory ran out. */
int plumtree_broadcast(struct plumtree *t, const HvBroadcast *b, bool urgent, uint64_t now_ms);

/* A GOSSIP, IHAVE, GRAFT or PRUNE from a neighbour. */
void plumtree_receive(struct plumtree *t, const char *from, const HvMessage *m, uint64_t now_ms);

void plumtree_tick(struct plumtree *t, uint64_t now_ms);
uint64_t plumtree_next_deadline(const struct plumtree *t);

/* Sends every queued payload and id now (before a leave). */
void plumtree_flush(struct plumtree *t, uint64_t now_ms);

void plumtree_get_stats(const struct plumtree *t, struct plumtree_stats *out);
/* Whether peer is an eager neighbour (tests and the bench). */
bool plumtree_is_eager(const struct plumtree *t, const char *peer);

/* The 64-bit id of (origin, incarnation, seq). */
uint64_t plumtree_id(const char *origin, uint64_t incarnation, uint64_t seq);

#endif
