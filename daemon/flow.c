/* flow: credit windows per (node, name); see flow.h for the contract.
 *
 * One chained hash table holds both sides; a side tag in the key (and in
 * the hash) keeps a sender entry and a receiver entry for the same
 * (node, name) apart. An entry exists only while it carries something, so
 * the table size is the live state and a node that is forgotten leaves
 * nothing behind.
 *
 * Callbacks and re-entry: every table change of a call is finished before
 * its first callback, and an entry handed to a callback is either still
 * linked and not touched again by that call, or already unlinked and
 * owned by the call alone (freed after the callback). So a callback may
 * call back into flow (send, grant, forget ...) safely; it must not call
 * flow_free() on the instance that called it. */
#include "flow.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define FLOW_MIN_BUCKETS 16

struct flow_entry {
    struct flow_entry *next;     /* bucket chain */
    struct flow_entry *later;    /* a call's private list of unlinked entries */
    uint64_t hash;
    /* Sender side: cost sent and not yet granted. Receiver side: cost
     * received, delivered and not yet granted. */
    uint64_t amount;
    uint64_t held;               /* receiver side: cost waiting on held_on */
    const void *held_on;
    size_t node_len, name_len;
    bool receiver;
    bool waiting;                /* sender side: the handle is out */
    char key[];                  /* node NUL name NUL */
};

struct flow {
    struct flow_entry **buckets;
    size_t n_buckets;            /* a power of two */
    size_t count;
    uint64_t window;
    uint64_t threshold;          /* receiver grants batch up to this */
    struct flow_callbacks cb;
};

/* Untrusted peers choose the grant sizes and, through message sizes, the
 * costs: saturate rather than wrap, so a huge figure cannot turn into a
 * small one. */
static uint64_t flow_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t flow_hash(bool receiver, const char *node, size_t node_len,
                          const char *name, size_t name_len)
{
    unsigned char side = receiver ? 'r' : 's';
    uint64_t h = hash_bytes_from(HASH_SEED, &side, 1);
    /* The NUL after node separates the fields: ("ab","c") != ("a","bc"). */
    h = hash_bytes_from(h, node, node_len + 1);
    return hash_bytes_from(h, name, name_len);
}

static const char *flow_entry_name(const struct flow_entry *e)
{
    return e->key + e->node_len + 1;
}

static bool flow_entry_empty(const struct flow_entry *e)
{
    if (e->receiver)
        return e->amount == 0 && e->held == 0;
    return e->amount == 0 && !e->waiting;
}

static struct flow_entry **flow_slot(const struct flow *f, bool receiver, const char *node,
                                     const char *name, uint64_t *hash_out, size_t *node_len,
                                     size_t *name_len)
{
    size_t nl = strlen(node), ml = strlen(name);
    uint64_t h = flow_hash(receiver, node, nl, name, ml);
    struct flow_entry **pp = &f->buckets[h & (f->n_buckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        const struct flow_entry *e = *pp;
        if (e->hash == h && e->receiver == receiver && e->node_len == nl && e->name_len == ml &&
            memcmp(e->key, node, nl) == 0 && memcmp(flow_entry_name(e), name, ml) == 0)
            break;
    }
    if (hash_out)
        *hash_out = h;
    if (node_len)
        *node_len = nl;
    if (name_len)
        *name_len = ml;
    return pp;
}

static struct flow_entry *flow_find(const struct flow *f, bool receiver, const char *node,
                                    const char *name)
{
    return *flow_slot(f, receiver, node, name, NULL, NULL, NULL);
}

/* Rehashes into n buckets; on allocation failure the table stays as it is,
 * only with longer chains. */
static void flow_resize(struct flow *f, size_t n)
{
    struct flow_entry **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;
    for (size_t i = 0; i < f->n_buckets; i++) {
        struct flow_entry *e = f->buckets[i];
        while (e) {
            struct flow_entry *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = nb[j];
            nb[j] = e;
            e = next;
        }
    }
    free(f->buckets);
    f->buckets = nb;
    f->n_buckets = n;
}

/* Shrinks after mass removals: release and forget scan every bucket, so a
 * table left sparse by a burst of destinations would keep them slow. */
static void flow_maybe_shrink(struct flow *f)
{
    if (f->n_buckets > FLOW_MIN_BUCKETS && f->count < f->n_buckets / 4) {
        size_t n = f->n_buckets;
        while (n > FLOW_MIN_BUCKETS && f->count < n / 4)
            n /= 2;
        flow_resize(f, n);
    }
}

static struct flow_entry *flow_get(struct flow *f, bool receiver, const char *node, const char *name)
{
    uint64_t h;
    size_t nl, ml;
    struct flow_entry **pp = flow_slot(f, receiver, node, name, &h, &nl, &ml);
    if (*pp)
        return *pp;
    struct flow_entry *e = malloc(sizeof *e + nl + 1 + ml + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->receiver = receiver;
    e->node_len = nl;
    e->name_len = ml;
    memcpy(e->key, node, nl + 1);
    memcpy(e->key + nl + 1, name, ml + 1);
    size_t i = h & (f->n_buckets - 1);
    e->next = f->buckets[i];
    f->buckets[i] = e;
    if (++f->count > f->n_buckets)
        flow_resize(f, f->n_buckets * 2);
    return e;
}

/* Unlinks e, which must be in the table; the caller frees it. */
static void flow_unlink(struct flow *f, struct flow_entry *e)
{
    struct flow_entry **pp = &f->buckets[e->hash & (f->n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    e->next = NULL;
    f->count--;
}

struct flow *flow_new(uint64_t window, const struct flow_callbacks *cb)
{
    /* A zero window could never reopen (outstanding < 0 is never true). */
    if (window == 0)
        return NULL;
    struct flow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->buckets = calloc(FLOW_MIN_BUCKETS, sizeof *f->buckets);
    if (!f->buckets) {
        free(f);
        return NULL;
    }
    f->n_buckets = FLOW_MIN_BUCKETS;
    f->window = window;
    f->threshold = window / 8 ? window / 8 : 1;
    if (cb)
        f->cb = *cb;
    return f;
}

void flow_free(struct flow *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_buckets; i++) {
        struct flow_entry *e = f->buckets[i];
        while (e) {
            struct flow_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(f->buckets);
    free(f);
}

const void *flow_sent(struct flow *f, const char *node, const char *name, uint64_t cost)
{
    struct flow_entry *e;
    if (cost == 0) {
        /* Nothing to account; but a sender to a full window still waits. */
        e = flow_find(f, false, node, name);
        return e && e->waiting ? e : NULL;
    }
    e = flow_get(f, false, node, name);
    if (!e)
        return NULL;
    e->amount = flow_add(e->amount, cost);
    if (e->amount >= f->window)
        e->waiting = true;
    /* A waiting entry is never freed (amount >= window > 0 keeps it
     * non-empty), so its address is a stable handle until the reopen. */
    return e->waiting ? e : NULL;
}

void flow_granted(struct flow *f, const char *node, const char *name, uint64_t bytes)
{
    struct flow_entry *e = flow_find(f, false, node, name);
    if (!e)
        return;   /* forgotten, or a peer granting what it never got */
    e->amount -= bytes < e->amount ? bytes : e->amount;
    bool reopen = e->waiting && e->amount < f->window;
    if (reopen)
        e->waiting = false;
    /* Unlinked before the callback but freed after it: the table is
     * consistent for a re-entrant call, and a new entry made by one cannot
     * get the address of the handle being reopened. */
    bool drop = flow_entry_empty(e);
    if (drop) {
        flow_unlink(f, e);
        flow_maybe_shrink(f);
    }
    if (reopen && f->cb.reopen)
        f->cb.reopen(f->cb.ctx, e);
    if (drop)
        free(e);
}

void flow_received(struct flow *f, const char *node, const char *name, uint64_t cost,
                   const void *held_on)
{
    if (cost == 0)
        return;
    struct flow_entry *e = flow_get(f, true, node, name);
    if (!e) {
        /* Out of memory: grant at once. Losing the cost would shrink the
         * sender's window for good; granting early only loosens the
         * back-pressure for this one message. */
        if (f->cb.grant)
            f->cb.grant(f->cb.ctx, node, name, cost);
        return;
    }
    if (held_on) {
        /* A name has one receiver at a time, so a different held_on means
         * the name moved to another session while the old one still had
         * messages queued. One pointer per entry: everything held follows
         * the newest receiver. Its release (catching up or going away,
         * which the caller always reports) grants it all, so nothing stays
         * held for ever; the price is a grant early or late by what the
         * old receiver held, in that rare case. */
        e->held = flow_add(e->held, cost);
        e->held_on = held_on;
        return;
    }
    e->amount = flow_add(e->amount, cost);
    if (e->amount < f->threshold)
        return;
    uint64_t bytes = e->amount;
    e->amount = 0;
    bool drop = flow_entry_empty(e);
    if (drop) {
        flow_unlink(f, e);
        flow_maybe_shrink(f);
    }
    /* The caller's strings, not the entry's: a still-linked entry may be
     * freed by a re-entrant flow_forget_node() during the callback. */
    if (f->cb.grant)
        f->cb.grant(f->cb.ctx, node, name, bytes);
    if (drop)
        free(e);
}

void flow_release(struct flow *f, const void *held_on)
{
    if (!held_on)
        return;
    /* What was held becomes owed. Owed reaching the threshold is granted;
     * a remainder below it stays owed, and cannot deadlock: a sender waits
     * only while its outstanding cost is >= window, and outstanding is
     * what is in flight plus what the receiver owes or holds. Once nothing
     * is held, the in-flight cost arrives and is granted in batches, so
     * outstanding falls to the un-granted remainder, which is below
     * threshold <= window/8 < window (for a window under 8 the threshold
     * is 1, and nothing stays owed). Granting every remainder here instead
     * would only add small grants.
     *
     * Granted entries end up empty (held 0, owed 0), so all of them are
     * unlinked in the scan and granted afterwards from a private list. */
    struct flow_entry *todo = NULL, **tail = &todo;
    for (size_t i = 0; i < f->n_buckets; i++) {
        struct flow_entry **pp = &f->buckets[i];
        while (*pp) {
            struct flow_entry *e = *pp;
            if (!e->receiver || e->held_on != held_on) {
                pp = &e->next;
                continue;
            }
            e->amount = flow_add(e->amount, e->held);
            e->held = 0;
            e->held_on = NULL;
            if (e->amount < f->threshold) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            f->count--;
            e->next = NULL;
            *tail = e;
            tail = &e->later;
        }
    }
    if (!todo)
        return;
    flow_maybe_shrink(f);
    while (todo) {
        struct flow_entry *e = todo;
        todo = e->later;
        if (f->cb.grant)
            f->cb.grant(f->cb.ctx, e->key, flow_entry_name(e), e->amount);
        free(e);
    }
}

void flow_forget_node(struct flow *f, const char *node)
{
    size_t nl = strlen(node);
    struct flow_entry *todo = NULL, **tail = &todo;
    for (size_t i = 0; i < f->n_buckets; i++) {
        struct flow_entry **pp = &f->buckets[i];
        while (*pp) {
            struct flow_entry *e = *pp;
            if (e->node_len != nl || memcmp(e->key, node, nl) != 0) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            f->count--;
            e->next = NULL;
            *tail = e;
            tail = &e->later;
        }
    }
    if (!todo)
        return;
    flow_maybe_shrink(f);
    while (todo) {
        struct flow_entry *e = todo;
        todo = e->later;
        if (!e->receiver && e->waiting && f->cb.reopen)
            f->cb.reopen(f->cb.ctx, e);
        free(e);
    }
}

bool flow_is_waiting(const struct flow *f, const char *node, const char *name)
{
    const struct flow_entry *e = flow_find(f, false, node, name);
    return e && e->waiting;
}

uint64_t flow_window(const struct flow *f)
{
    return f->window;
}

size_t flow_entries(const struct flow *f)
{
    return f->count;
}
