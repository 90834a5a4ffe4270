/* overlay_hyparview: HyParView partial views, Plumtree broadcast and
 * membership from announcements (see overlay.h for the sans-IO contract).
 *
 * Views. The active view (at most active_max_size neighbours) is symmetric
 * and TCP-connected; the passive view (at most passive_max_size) is a list
 * of addresses to promote from, refreshed by SHUFFLE walks. JOIN goes to a
 * contact, which takes the joiner and walks FORWARD_JOIN(active_rwl) from
 * each of its other neighbours; a walk ends (ttl 0, or a node with no other
 * neighbour) by that node asking the joiner to be its neighbour, and puts
 * the joiner in a passive view at hop passive_rwl. A lost neighbour is
 * replaced at once from the passive view; every
 * random_promotion_interval_ms a node below active_max_size tries again.
 * NEIGHBOR is high priority (never refused; the target evicts a random
 * neighbour if full) while the asker has fewer than active_min_size
 * neighbours, low otherwise (refused when full). Partisan always asks high.
 *
 * Connections under the driver's contract (a core sends only on
 * connections it dialled). A link A-B is two connections, A's and B's:
 *   A dials B and sends NEIGHBOR(nonce) (or JOIN(nonce));
 *   B, accepting, dials A (if it has no connection to A yet) and only once
 *   that connection is up adds A to its active view and sends ACCEPT(nonce);
 *   A adds B on ACCEPT. Each side's view entry therefore always has its own
 *   outbound connection behind it, and A's inbound one from B exists as soon
 *   as A sees the ACCEPT. A refusal (REJECT), a SHUFFLE_REPLY or a
 *   DISCONNECT to a node we have no connection to dials a transient one;
 *   every connection that backs no view entry, handshake or queued message
 *   is closed LINGER_MS after it became idle, which also closes the peer's
 *   connection toward us: a half link left by a lost message ends that way.
 *
 * Epochs: each link is named by the nonce of the JOIN or NEIGHBOR that made
 * it (64 random bits), kept by both ends. DISCONNECT carries the nonce and
 * is obeyed only if it names the current link; ACCEPT and REJECT are
 * matched to the pending request's nonce. A late ACCEPT for a request we
 * gave up is answered with DISCONNECT(that nonce), which the peer obeys only
 * if the link is still that one. When two nodes ask each other at once, both
 * requests are accepted and both ends keep the smaller nonce. A restarted
 * peer cannot know an old nonce, so its old messages cannot match either.
 *
 * partisan#255 (a send lost while its target is demoted): next_hop() names
 * only current neighbours, and a demoted neighbour's connection stays open
 * LINGER_MS (and the driver drains what was queued) before it closes, so
 * what the router handed it still leaves. partisan#75 (islands when many
 * nodes join through one contact): a node below active_min_size keeps
 * promoting from its passive view and, when that is empty, rejoins through
 * its seeds and the members it knows of, by turns, with backoff; and a
 * node that has heard no announcement from any of its seeds for two
 * announcement intervals (checked every interval, from the third on) joins
 * through one again (every node's seeds lead, seed after seed, to a node
 * started without seeds, so only the island holding that node can be
 * closed under this rule while the seeds live); and every 3 intervals a
 * node joins through a random member or passive entry it has not heard
 * announce (dead, or across a partition: what the full mesh's redials of
 * down members do). A JOIN is never refused.
 *
 * Membership. Every node broadcasts (Plumtree) its member entry every
 * announce_interval_ms (±10 %). A node learns every member from these and
 * keeps one record per member, bounded by cfg.max_members (past it, a
 * member that is down or left makes room, else the newcomer is ignored).
 * member_joined/left follow the entries (alive/left, CRDT order of
 * membership.h); member_up comes with a fresh announcement, member_down
 * when none came for HYPARVIEW_DOWN_INTERVALS intervals (30 s by default)
 * or when the member left. Next hop toward a member: the neighbour its
 * freshest announcement first came from (following those pointers goes
 * strictly toward the origin along one announcement's tree, so it cannot
 * loop), else the first neighbour that offered the same announcement by
 * IHAVE from fewer hops than ours (so that it cannot have it through us),
 * else NULL. leave(other)/forget(other) broadcast the member's
 * tombstone; a node that hears its own tombstone stops.
 *
 * Failure detection: a reset (peer_disconnected) or a failed dial drops a
 * neighbour at once; a neighbour silent for cfg.fd_timeout_ms (a host gone
 * without a reset) is dropped too. Neighbours we sent nothing to for
 * cfg.ping_interval_ms get a PING; every other message counts as one. A
 * tick that comes far later than asked (this node was stalled) restarts
 * the silence clocks instead of blaming the neighbours.
 *
 * Bounds: views as configured, at most active_max_size + CONNS_EXTRA
 * connections, PEND_MAX requests and ACC_MAX acceptances in flight,
 * QUEUE_MAX queued messages per connection being dialled, the records
 * (max_members), Plumtree's id cache and store (plumtree.h). Malformed messages are counted and logged at
 * most once every 10 s. */
#include "overlay_hyparview.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "hyparview.pb-c.h"
#include "pbarena.h"
#include "plumtree.h"

#define NAMESZ (MEMBER_NAME_MAX + 1)
#define ADDRSZ (MEMBER_ADDR_MAX + 1)
#define LINGER_MS 1000          /* an idle connection is closed this long after */
#define HANDSHAKE_MS 5000       /* a JOIN, NEIGHBOR or acceptance gives up after */
#define PEND_MAX 8
#define ACC_MAX 16
#define CONNS_EXTRA 128         /* connections beyond the active view's (transient ones, lingering ones) */
#define QUEUE_MAX 8             /* messages waiting for a dial */
#define PEERS_IN_MAX 64         /* entries accepted in one shuffle list */
#define PROMOTE_PARALLEL 2      /* promotion requests in flight at once */
#define DECODE_LOG_MS 10000
#define HOP_ALTS 4              /* second ways toward a member kept besides its hop */

struct hv_node {
    char name[NAMESZ];          /* "" for a seed not yet connected */
    char address[ADDRSZ];
};

struct hv_link {
    struct hv_node n;
    uint64_t nonce;
    uint32_t serial;            /* names the link in records' next hops */
    uint64_t heard, sent;       /* last message from it, to it */
};

struct hv_passive {
    struct hv_node n;
    uint64_t tried_at;          /* last promotion attempt */
    bool sent;                  /* in our last shuffle: evicted first */
};

struct hv_qmsg {
    struct hv_qmsg *next;
    size_t len;
    uint8_t data[];
};

enum conn_state { CONN_DIALLING, CONN_UP };

struct hv_conn {
    struct hv_node n;
    enum conn_state state;
    uint64_t idle_at;           /* became idle (0: in use) */
    struct hv_qmsg *q;          /* waiting for the dial; at most QUEUE_MAX */
    size_t qn;
};

struct hv_pend {                /* a JOIN or NEIGHBOR of ours awaiting its answer */
    struct hv_node n;
    uint64_t nonce, deadline;
    bool join, high;
};

struct hv_acc {                 /* a JOIN or NEIGHBOR we accepted; dialling back */
    struct hv_node n;
    uint64_t nonce, deadline;
    bool join;
};

struct hv_rec {
    char *name, *address;
    uint64_t h;
    uint64_t incarnation, expires_ms;
    bool left, up;
    uint64_t ann_inc, ann_seq;  /* the freshest own announcement seen */
    uint64_t heard;
    uint32_t hop;               /* link serial the freshest announcement first came over; 0: none */
    char *hop_node;             /* that link's node: a new link to it serves as well */
    uint32_t alts[HOP_ALTS];    /* links that offered it from fewer hops than ours */
    uint8_t n_alts;
    uint32_t round;
};

struct overlay {
    struct overlay_env env;
    struct overlay_config cfg;
    struct hyparview_params hp;
    char self[NAMESZ], self_addr[ADDRSZ];
    uint64_t inc;
    bool started, left, removed_pending, sweep_left;
    uint64_t now, started_at;

    char (*seeds)[ADDRSZ];
    size_t n_seeds;

    struct hv_link *active;
    size_t n_active;
    struct hv_passive *passive;
    size_t n_passive;
    struct hv_conn *conns;
    size_t n_conns, conns_cap, conns_max;
    struct hv_pend pend[PEND_MAX];
    size_t n_pend;
    struct hv_acc acc[ACC_MAX];
    size_t n_acc;
    bool conns_dirty;
    uint32_t next_serial;

    uint64_t shuffle_at, promote_at, announce_at, expire_at, seedcheck_at, join_at, ping_at, last_tick;
    uint64_t probe_at;
    uint32_t join_backoff;
    unsigned rejoin_turn;
    uint64_t seq, announced_inc;

    struct plumtree *pt;

    struct hv_rec *recs;
    size_t n_recs, recs_cap;
    int32_t *map;
    size_t map_cap;
    struct membership ms;
    bool ms_dirty, full_warned;

    uint8_t *buf;
    size_t buf_cap;
    struct pbarena arena;       /* decoding: reset after every message */
    bool arena_ok;
    struct hyparview_stats st;
    uint64_t decode_log_at;
};

/* ---------------------------------------------------------------- utils -- */

#define logf_(o, lvl, ...) overlay_logf(&(o)->env, (lvl), __VA_ARGS__)

static uint64_t rnd(struct overlay *o)
{
    return o->env.random(o->env.ctx);
}

static size_t rnd_below(struct overlay *o, size_t n)
{
    return n ? (size_t)(rnd(o) % n) : 0;
}

/* interval ± 10 %, so that nodes started together drift apart. */
static uint64_t jitter(struct overlay *o, uint32_t interval)
{
    uint64_t spread = interval / 5 + 1;
    return interval - interval / 10 + rnd(o) % spread;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t clock_now(struct overlay *o)
{
    o->now = o->env.now_ms(o->env.ctx);
    return o->now;
}

static uint64_t wall_ms(const struct overlay *o)
{
    return o->env.wall_ms ? o->env.wall_ms(o->env.ctx) : 0;
}

static uint64_t expiry_in(const struct overlay *o, uint64_t ttl)
{
    uint64_t w = wall_ms(o);
    return w && ttl ? w + ttl : 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void node_set(struct hv_node *n, const char *name, const char *address)
{
    copy_str(n->name, sizeof n->name, name ? name : "");
    copy_str(n->address, sizeof n->address, address ? address : "");
}

static bool is_self(const struct overlay *o, const char *name)
{
    return strcmp(o->self, name) == 0;
}

static bool valid_name(const char *s)
{
    return s && membership_token_valid(s, MEMBER_NAME_MAX);
}

static bool valid_addr(const char *s)
{
    return s && membership_token_valid(s, MEMBER_ADDR_MAX);
}

static uint64_t nonce_new(struct overlay *o)
{
    uint64_t n;
    do
        n = rnd(o);
    while (n == 0);
    return n;
}

/* ------------------------------------------------------------- records -- */

static struct hv_rec *rec_find(const struct overlay *o, const char *name)
{
    if (!o->map_cap)
        return NULL;
    uint64_t h = hash_str(name);
    size_t mask = o->map_cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        int32_t k = o->map[i];
        if (k < 0)
            return NULL;
        if (o->recs[k].h == h && strcmp(o->recs[k].name, name) == 0)
            return &o->recs[k];
    }
}

static void map_put(struct overlay *o, int32_t k)
{
    size_t mask = o->map_cap - 1;
    size_t i = (size_t)o->recs[k].h & mask;
    while (o->map[i] >= 0)
        i = (i + 1) & mask;
    o->map[i] = k;
}

static int map_rebuild(struct overlay *o, size_t cap)
{
    int32_t *m = malloc(cap * sizeof *m);
    if (!m)
        return -1;
    for (size_t i = 0; i < cap; i++)
        m[i] = -1;
    free(o->map);
    o->map = m;
    o->map_cap = cap;
    for (size_t k = 0; k < o->n_recs; k++)
        map_put(o, (int32_t)k);
    return 0;
}

static size_t map_slot_of(const struct overlay *o, int32_t k)
{
    size_t mask = o->map_cap - 1;
    size_t i = (size_t)o->recs[k].h & mask;
    while (o->map[i] != k)
        i = (i + 1) & mask;
    return i;
}

static void rec_delete(struct overlay *o, struct hv_rec *r)
{
    int32_t k = (int32_t)(r - o->recs);
    size_t mask = o->map_cap - 1;
    size_t i = map_slot_of(o, k);
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (o->map[j] < 0)
            break;
        size_t home = (size_t)o->recs[o->map[j]].h & mask;
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            o->map[i] = o->map[j];
            i = j;
        }
    }
    o->map[i] = -1;
    free(r->name);
    free(r->address);
    free(r->hop_node);
    int32_t last = (int32_t)o->n_recs - 1;
    if (k != last) {
        o->map[map_slot_of(o, last)] = k;
        o->recs[k] = o->recs[last];
    }
    o->n_recs--;
    o->ms_dirty = true;
}

/* A record that may give way to a newcomer: left first, then the member
 * down the longest. */
static struct hv_rec *rec_victim(struct overlay *o)
{
    struct hv_rec *best = NULL;
    for (size_t i = 0; i < o->n_recs; i++) {
        struct hv_rec *r = &o->recs[i];
        if (r->up || is_self(o, r->name))
            continue;
        if (!best || (r->left && !best->left) || (r->left == best->left && r->heard < best->heard))
            best = r;
    }
    return best;
}

static struct hv_rec *rec_add(struct overlay *o, const char *name, const char *address)
{
    if (o->cfg.max_members && o->n_recs >= o->cfg.max_members) {
        struct hv_rec *v = rec_victim(o);
        if (!v) {
            if (!o->full_warned)
                logf_(o, OVERLAY_LOG_WARN, "member table full (%zu): %s ignored", o->n_recs, name);
            o->full_warned = true;
            return NULL;
        }
        rec_delete(o, v);
    }
    if (o->n_recs == o->recs_cap) {
        size_t c = o->recs_cap ? o->recs_cap * 2 : 16;
        struct hv_rec *nv = realloc(o->recs, c * sizeof *nv);
        if (!nv)
            return NULL;
        o->recs = nv;
        o->recs_cap = c;
    }
    if ((o->n_recs + 1) * 2 > o->map_cap && map_rebuild(o, o->map_cap ? o->map_cap * 2 : 32) != 0)
        return NULL;
    struct hv_rec *r = &o->recs[o->n_recs];
    memset(r, 0, sizeof *r);
    r->name = strdup(name);
    r->address = strdup(address);
    if (!r->name || !r->address) {
        free(r->name);
        free(r->address);
        return NULL;
    }
    r->h = hash_str(name);
    o->n_recs++;
    map_put(o, (int32_t)(o->n_recs - 1));
    o->ms_dirty = true;
    return r;
}

static void rec_entry(const struct hv_rec *r, struct member *m)
{
    memset(m, 0, sizeof *m);
    copy_str(m->name, sizeof m->name, r->name);
    copy_str(m->address, sizeof m->address, r->address);
    m->incarnation = r->incarnation;
    m->left = r->left;
    m->expires_ms = r->expires_ms;
}

static int set_address(struct hv_rec *r, const char *address)
{
    if (strcmp(r->address, address) == 0)
        return 0;
    char *a = strdup(address);
    if (!a)
        return -1;
    free(r->address);
    r->address = a;
    return 0;
}

static void set_down(struct overlay *o, struct hv_rec *r, const char *why)
{
    if (!r->up)
        return;
    r->up = false;
    logf_(o, OVERLAY_LOG_INFO, "%s: down (%s)", r->name, why);
    o->env.member_down(o->env.ctx, r->name);
}

/* Merges entry e into r in the CRDT order; emits joined/left. Returns
 * whether r changed. */
static bool rec_merge(struct overlay *o, struct hv_rec *r, const struct member *e, bool fresh_record)
{
    struct member cur;
    rec_entry(r, &cur);
    if (!fresh_record && membership_compare(e, &cur) <= 0)
        return false;
    bool was_alive = !fresh_record && !r->left;
    if (set_address(r, e->address) != 0)
        return false;
    r->incarnation = e->incarnation;
    r->left = e->left;
    r->expires_ms = e->expires_ms;
    o->ms_dirty = true;
    if (is_self(o, r->name))
        return true;
    if (!r->left && !was_alive) {
        logf_(o, OVERLAY_LOG_INFO, "%s: joined (%s, incarnation %" PRIu64 ")", r->name, r->address,
              r->incarnation);
        o->env.member_joined(o->env.ctx, e);
    } else if (r->left && was_alive) {
        logf_(o, OVERLAY_LOG_INFO, "%s: left", r->name);
        set_down(o, r, "left");
        o->env.member_left(o->env.ctx, e);
        o->sweep_left = true;
    }
    return true;
}

/* ---------------------------------------------------------- connections -- */

static struct hv_conn *conn_find(const struct overlay *o, const char *name)
{
    for (size_t i = 0; i < o->n_conns; i++)
        if (o->conns[i].n.name[0] && strcmp(o->conns[i].n.name, name) == 0)
            return &o->conns[i];
    return NULL;
}

static struct hv_conn *conn_find_seed(const struct overlay *o, const char *address)
{
    for (size_t i = 0; i < o->n_conns; i++)
        if (!o->conns[i].n.name[0] && strcmp(o->conns[i].n.address, address) == 0)
            return &o->conns[i];
    return NULL;
}

static void conn_free_queue(struct hv_conn *c)
{
    while (c->q) {
        struct hv_qmsg *m = c->q;
        c->q = m->next;
        free(m);
    }
    c->qn = 0;
}

static void queue_append(struct hv_conn *c, struct hv_qmsg *q)
{
    struct hv_qmsg **t = &c->q;
    while (*t)
        t = &(*t)->next;
    *t = q;
    c->qn++;
}

static void conn_remove(struct overlay *o, struct hv_conn *c)
{
    conn_free_queue(c);
    size_t i = (size_t)(c - o->conns);
    o->conns[i] = o->conns[--o->n_conns];
    o->conns_dirty = true;
}

/* Our connection to name (by address for a seed, name ""), dialling it if
 * there is none. NULL when at the bound. */
static struct hv_conn *conn_open(struct overlay *o, const char *name, const char *address)
{
    struct hv_conn *c = name[0] ? conn_find(o, name) : conn_find_seed(o, address);
    if (c)
        return c;
    /* One dial per node, whether it was asked for by name or by address: a
     * second one would never be answered. */
    for (size_t i = 0; i < o->n_conns; i++)
        if (address[0] && strcmp(o->conns[i].n.address, address) == 0) {
            c = &o->conns[i];
            if (name[0] && !c->n.name[0])
                copy_str(c->n.name, NAMESZ, name);
            if (!name[0] || strcmp(c->n.name, name) == 0)
                return c;
            c = NULL;
        }
    if (o->n_conns >= o->conns_max || !address[0])
        return NULL;
    if (o->n_conns == o->conns_cap) {
        size_t cap = o->conns_cap ? o->conns_cap * 2 : 8;
        struct hv_conn *nv = realloc(o->conns, cap * sizeof *nv);
        if (!nv)
            return NULL;
        o->conns = nv;
        o->conns_cap = cap;
    }
    c = &o->conns[o->n_conns++];
    memset(c, 0, sizeof *c);
    node_set(&c->n, name, address);
    c->state = CONN_DIALLING;
    o->conns_dirty = true;
    struct peer_addr pa;
    memset(&pa, 0, sizeof pa);
    copy_str(pa.node, sizeof pa.node, name);
    copy_str(pa.address, sizeof pa.address, address);
    o->env.connect(o->env.ctx, &pa);
    return c;
}

static int encode(struct overlay *o, const HvMessage *m, size_t *len)
{
    size_t n = hv_message__get_packed_size(m);
    if (n > o->buf_cap) {
        size_t cap = n * 2;
        uint8_t *b = realloc(o->buf, cap);
        if (!b)
            return -1;
        o->buf = b;
        o->buf_cap = cap;
    }
    *len = hv_message__pack(m, o->buf);
    return 0;
}

static void conn_write(struct overlay *o, struct hv_conn *c, const uint8_t *data, size_t len)
{
    if (c->state == CONN_UP) {
        o->env.send(o->env.ctx, c->n.name, data, len);
        return;
    }
    if (c->qn >= QUEUE_MAX)
        return;
    struct hv_qmsg *q = malloc(sizeof *q + len);
    if (!q)
        return;
    q->next = NULL;
    q->len = len;
    memcpy(q->data, data, len);
    queue_append(c, q);
    o->conns_dirty = true;
}

static void count_sent(struct overlay *o, const HvMessage *m)
{
    if ((unsigned)m->type < sizeof o->st.sent / sizeof o->st.sent[0])
        o->st.sent[m->type]++;
}

static struct hv_link *link_find(const struct overlay *o, const char *name);

/* Sends m to name (address: where to dial if there is no connection). */
static void send_to(struct overlay *o, const char *name, const char *address, const HvMessage *m)
{
    size_t len;
    if (encode(o, m, &len) != 0)
        return;
    struct hv_conn *c = conn_open(o, name, address);
    if (!c)
        return;
    count_sent(o, m);
    conn_write(o, c, o->buf, len);
    struct hv_link *l = name[0] ? link_find(o, name) : NULL;
    if (l)
        l->sent = o->now;
}

/* ---------------------------------------------------------------- views -- */

static struct hv_link *link_find(const struct overlay *o, const char *name)
{
    for (size_t i = 0; i < o->n_active; i++)
        if (strcmp(o->active[i].n.name, name) == 0)
            return &o->active[i];
    return NULL;
}

static const struct hv_link *link_by_serial(const struct overlay *o, uint32_t serial)
{
    if (!serial)
        return NULL;
    for (size_t i = 0; i < o->n_active; i++)
        if (o->active[i].serial == serial)
            return &o->active[i];
    return NULL;
}

static struct hv_passive *passive_find(const struct overlay *o, const char *name)
{
    for (size_t i = 0; i < o->n_passive; i++)
        if (strcmp(o->passive[i].n.name, name) == 0)
            return &o->passive[i];
    return NULL;
}

static void passive_remove(struct overlay *o, const char *name)
{
    struct hv_passive *p = passive_find(o, name);
    if (p)
        *p = o->passive[--o->n_passive];
}

static struct hv_pend *pend_find(struct overlay *o, const char *name)
{
    for (size_t i = 0; i < o->n_pend; i++)
        if (strcmp(o->pend[i].n.name, name) == 0)
            return &o->pend[i];
    return NULL;
}

static struct hv_acc *acc_find(struct overlay *o, const char *name)
{
    for (size_t i = 0; i < o->n_acc; i++)
        if (strcmp(o->acc[i].n.name, name) == 0)
            return &o->acc[i];
    return NULL;
}

static void passive_add(struct overlay *o, const char *name, const char *address)
{
    if (!name[0] || is_self(o, name) || link_find(o, name) || passive_find(o, name) || !address[0])
        return;
    struct hv_rec *r = rec_find(o, name);
    if (r && r->left)
        return;
    if (!o->hp.passive_max_size)
        return;
    if (o->n_passive >= o->hp.passive_max_size) {
        /* The paper: drop first what we just sent away in a shuffle (the
         * peer keeps it), else at random. */
        size_t victim = rnd_below(o, o->n_passive);
        for (size_t i = 0; i < o->n_passive; i++)
            if (o->passive[i].sent) {
                victim = i;
                break;
            }
        o->passive[victim] = o->passive[--o->n_passive];
    }
    struct hv_passive *p = &o->passive[o->n_passive++];
    memset(p, 0, sizeof *p);
    node_set(&p->n, name, address);
}

static void send_simple(struct overlay *o, const char *name, const char *address, HvType type, uint64_t nonce)
{
    HvMessage m = HV_MESSAGE__INIT;
    m.type = type;
    m.nonce = nonce;
    m.address = o->self_addr;
    send_to(o, name, address, &m);
}

static void link_drop(struct overlay *o, struct hv_link *l, bool to_passive, const char *why)
{
    struct hv_node n = l->n;
    *l = o->active[--o->n_active];
    o->conns_dirty = true;
    plumtree_neighbor_down(o->pt, n.name);
    logf_(o, OVERLAY_LOG_DEBUG, "neighbour %s dropped (%s)", n.name, why);
    if (o->env.neighbor_down)
        o->env.neighbor_down(o->env.ctx, n.name);
    if (to_passive)
        passive_add(o, n.name, n.address);
}

static void evict_one(struct overlay *o, const char *keep)
{
    size_t cands = 0;
    for (size_t i = 0; i < o->n_active; i++)
        cands += strcmp(o->active[i].n.name, keep) != 0;
    if (!cands)
        return;
    size_t pick = rnd_below(o, cands);
    for (size_t i = 0; i < o->n_active; i++) {
        if (strcmp(o->active[i].n.name, keep) == 0)
            continue;
        if (pick-- == 0) {
            struct hv_link *l = &o->active[i];
            send_simple(o, l->n.name, l->n.address, HV_TYPE__HV_DISCONNECT, l->nonce);
            link_drop(o, l, true, "evicted for a new neighbour");
            return;
        }
    }
}

static void link_add(struct overlay *o, const char *name, const char *address, uint64_t nonce, bool min_rule)
{
    struct hv_link *l = link_find(o, name);
    if (l) {
        l->nonce = min_rule && l->nonce < nonce ? l->nonce : nonce;
        return;
    }
    if (o->n_active >= o->hp.active_max_size)
        evict_one(o, name);
    if (o->n_active >= o->hp.active_max_size)
        return;
    passive_remove(o, name);
    l = &o->active[o->n_active++];
    node_set(&l->n, name, address);
    l->nonce = nonce;
    l->heard = l->sent = o->now;
    l->serial = ++o->next_serial ? o->next_serial : ++o->next_serial;
    o->conns_dirty = true;
    plumtree_neighbor_up(o->pt, name, o->now);
    logf_(o, OVERLAY_LOG_DEBUG, "neighbour %s added", name);
    if (o->env.neighbor_up)
        o->env.neighbor_up(o->env.ctx, name);
    /* The first neighbour: announce soon, so that the cluster learns of us
     * without waiting a whole interval. */
    if (o->n_active == 1 && o->hp.announce_interval_ms)
        o->announce_at = min64(o->announce_at, o->now + 200);
}

static size_t pend_neighbors(const struct overlay *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n_pend; i++)
        n += !o->pend[i].join;
    return n;
}

/* Asks node to be our neighbour. */
static void ask_neighbor(struct overlay *o, const char *name, const char *address, bool high)
{
    if (o->n_pend >= PEND_MAX || pend_find(o, name) || link_find(o, name) || is_self(o, name))
        return;
    struct hv_pend *p = &o->pend[o->n_pend++];
    memset(p, 0, sizeof *p);
    node_set(&p->n, name, address);
    p->nonce = nonce_new(o);
    p->high = high;
    p->deadline = o->now + HANDSHAKE_MS;
    HvMessage m = HV_MESSAGE__INIT;
    m.type = HV_TYPE__HV_NEIGHBOR;
    m.nonce = p->nonce;
    m.high = high;
    m.address = o->self_addr;
    o->conns_dirty = true;
    send_to(o, name, address, &m);
}

/* Sends JOIN through the node at address (a seed, a join() target or a
 * remembered member). */
static void ask_join(struct overlay *o, const char *name, const char *address)
{
    if (o->n_pend >= PEND_MAX || !strcmp(address, o->self_addr))
        return;
    for (size_t i = 0; i < o->n_pend; i++)
        if (o->pend[i].join && strcmp(o->pend[i].n.address, address) == 0)
            return;
    struct hv_pend *p = &o->pend[o->n_pend++];
    memset(p, 0, sizeof *p);
    node_set(&p->n, name, address);
    p->nonce = nonce_new(o);
    p->join = true;
    p->deadline = o->now + HANDSHAKE_MS;
    HvMessage m = HV_MESSAGE__INIT;
    m.type = HV_TYPE__HV_JOIN;
    m.nonce = p->nonce;
    m.address = o->self_addr;
    o->conns_dirty = true;
    uint64_t nonce = p->nonce;
    send_to(o, name, address, &m);
    /* The address may be a node we are connected to already: the request
     * is then that node's, and keeps its connection in use. */
    for (size_t i = 0; i < o->n_conns; i++)
        if (o->conns[i].n.name[0] && !strcmp(o->conns[i].n.address, address))
            for (size_t k = 0; k < o->n_pend; k++)
                if (o->pend[k].nonce == nonce)
                    copy_str(o->pend[k].n.name, NAMESZ, o->conns[i].n.name);
}

static void pend_remove(struct overlay *o, struct hv_pend *p)
{
    *p = o->pend[--o->n_pend];
    o->conns_dirty = true;
}

static void acc_remove(struct overlay *o, struct hv_acc *a)
{
    *a = o->acc[--o->n_acc];
    o->conns_dirty = true;
}

/* Fills the active view from the passive one. */
static void promote(struct overlay *o)
{
    if (o->left)
        return;
    uint64_t retry = o->hp.random_promotion_interval_ms;
    while (o->n_active + pend_neighbors(o) + o->n_acc < o->hp.active_max_size &&
           pend_neighbors(o) < PROMOTE_PARALLEL) {
        size_t cands = 0;
        for (size_t i = 0; i < o->n_passive; i++) {
            const struct hv_passive *p = &o->passive[i];
            cands += (!p->tried_at || p->tried_at + retry <= o->now) && !pend_find(o, p->n.name) &&
                     !acc_find(o, p->n.name);
        }
        if (!cands)
            return;
        size_t pick = rnd_below(o, cands);
        for (size_t i = 0; i < o->n_passive; i++) {
            struct hv_passive *p = &o->passive[i];
            if (!((!p->tried_at || p->tried_at + retry <= o->now) && !pend_find(o, p->n.name) &&
                  !acc_find(o, p->n.name)))
                continue;
            if (pick-- == 0) {
                p->tried_at = o->now ? o->now : 1;
                ask_neighbor(o, p->n.name, p->n.address, o->n_active < o->hp.active_min_size);
                break;
            }
        }
        if (o->n_pend >= PEND_MAX)
            return;
    }
}

static bool join_pending(const struct overlay *o)
{
    for (size_t i = 0; i < o->n_pend; i++)
        if (o->pend[i].join)
            return true;
    return false;
}

/* A random seed (not ourselves), or NULL. */
static const char *pick_seed(struct overlay *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n_seeds; i++)
        n += strcmp(o->seeds[i], o->self_addr) != 0;
    if (!n)
        return NULL;
    size_t pick = rnd_below(o, n);
    for (size_t i = 0; i < o->n_seeds; i++)
        if (strcmp(o->seeds[i], o->self_addr) != 0 && pick-- == 0)
            return o->seeds[i];
    return NULL;
}

/* Below the minimum with nothing left to promote: back to the seeds, with
 * capped backoff. */
static void maybe_rejoin(struct overlay *o)
{
    if (o->left || o->n_active >= o->hp.active_max_size || o->join_at > o->now || join_pending(o))
        return;
    /* Between the minimum and the maximum, only a passive view with nothing
     * left to try is a reason: an island whose members are all still above
     * the minimum (a few nodes holding on to each other after a partition
     * or losses) would else never look outside. */
    if (o->n_active >= o->hp.active_min_size && o->n_passive)
        return;
    bool can_promote = false;
    uint64_t retry = o->hp.random_promotion_interval_ms;
    for (size_t i = 0; i < o->n_passive && !can_promote; i++)
        can_promote = !o->passive[i].tried_at || o->passive[i].tried_at + retry <= o->now;
    if (can_promote || pend_neighbors(o))
        return;
    /* Seeds and known members by turns: a seed may be dead for good (a
     * mass failure), and the members this node heard of are contacts too. */
    const char *seed = (o->rejoin_turn++ & 1) ? NULL : pick_seed(o);
    for (size_t i = 0; i < 8 && !seed && o->n_recs; i++) {
        struct hv_rec *r = &o->recs[rnd_below(o, o->n_recs)];
        if (!r->left && !is_self(o, r->name) && !link_find(o, r->name))
            seed = r->address;
    }
    if (!seed)
        seed = pick_seed(o);
    uint32_t b = o->join_backoff ? o->join_backoff : o->cfg.backoff_initial_ms;
    if (!b)
        b = 100;
    o->join_at = o->now + b / 2 + rnd(o) % (b / 2 + 1);
    uint32_t max = o->cfg.backoff_max_ms ? o->cfg.backoff_max_ms : 5000;
    o->join_backoff = b * 2 > max ? max : b * 2;
    if (seed)
        ask_join(o, "", seed);
}

/* ------------------------------------------------------------- messages -- */

static void complete_accept(struct overlay *o, struct hv_acc *a)
{
    struct hv_acc done = *a;
    acc_remove(o, a);
    link_add(o, done.n.name, done.n.address, done.nonce, false);
    if (!link_find(o, done.n.name))
        return;
    send_simple(o, done.n.name, done.n.address, HV_TYPE__HV_NEIGHBOR_ACCEPT, done.nonce);
    if (!done.join)
        return;
    HvPeer peer = HV_PEER__INIT;
    peer.name = done.n.name;
    peer.address = done.n.address;
    HvMessage m = HV_MESSAGE__INIT;
    m.type = HV_TYPE__HV_FORWARD_JOIN;
    m.peer = &peer;
    m.ttl = o->hp.active_rwl;
    for (size_t i = 0; i < o->n_active; i++)
        if (strcmp(o->active[i].n.name, done.n.name) != 0)
            send_to(o, o->active[i].n.name, o->active[i].n.address, &m);
}

static void accept_from(struct overlay *o, const char *from, const char *address, uint64_t nonce, bool join)
{
    struct hv_acc *a = acc_find(o, from);
    if (a) {
        a->nonce = nonce;
        a->join = a->join || join;
    } else {
        if (o->n_acc >= ACC_MAX)
            return;
        a = &o->acc[o->n_acc++];
        memset(a, 0, sizeof *a);
        node_set(&a->n, from, address);
        a->nonce = nonce;
        a->join = join;
        a->deadline = o->now + HANDSHAKE_MS;
        o->conns_dirty = true;
    }
    struct hv_conn *c = conn_open(o, from, address);
    if (!c) {
        acc_remove(o, a);
        return;
    }
    if (c->state == CONN_UP)
        complete_accept(o, a);
}

static void on_join(struct overlay *o, const char *from, const HvMessage *m)
{
    if (!valid_addr(m->address) || !m->nonce)
        return;
    accept_from(o, from, m->address, m->nonce, true);
}

static void on_forward_join(struct overlay *o, const char *from, const HvMessage *m)
{
    if (!m->peer || !valid_name(m->peer->name) || !valid_addr(m->peer->address))
        return;
    const char *pn = m->peer->name, *pa = m->peer->address;
    if (is_self(o, pn))
        return;
    /* A walk is never longer than ours, whatever the sender says. */
    uint32_t ttl = m->ttl < o->hp.active_rwl ? m->ttl : o->hp.active_rwl;
    size_t others = 0;
    for (size_t i = 0; i < o->n_active; i++)
        others += strcmp(o->active[i].n.name, from) != 0 && strcmp(o->active[i].n.name, pn) != 0;
    if (ttl == 0 || others == 0) {
        if (!link_find(o, pn))
            ask_neighbor(o, pn, pa, true);
        return;
    }
    if (ttl == o->hp.passive_rwl)
        passive_add(o, pn, pa);
    size_t pick = rnd_below(o, others);
    for (size_t i = 0; i < o->n_active; i++) {
        struct hv_link *l = &o->active[i];
        if (!strcmp(l->n.name, from) || !strcmp(l->n.name, pn) || pick-- != 0)
            continue;
        HvMessage f = HV_MESSAGE__INIT;
        f.type = HV_TYPE__HV_FORWARD_JOIN;
        f.peer = m->peer;
        f.ttl = ttl - 1;
        send_to(o, l->n.name, l->n.address, &f);
        return;
    }
}

static void on_neighbor(struct overlay *o, const char *from, const HvMessage *m)
{
    if (!valid_addr(m->address) || !m->nonce)
        return;
    struct hv_link *l = link_find(o, from);
    if (l) {
        /* It asks again for a link we have: it lost its side, so this
         * request names the link from now on. */
        l->nonce = m->nonce;
        send_simple(o, from, l->n.address, HV_TYPE__HV_NEIGHBOR_ACCEPT, m->nonce);
        return;
    }
    bool room = o->n_active + o->n_acc < o->hp.active_max_size;
    if (m->high || room) {
        accept_from(o, from, m->address, m->nonce, false);
        return;
    }
    send_simple(o, from, m->address, HV_TYPE__HV_NEIGHBOR_REJECT, m->nonce);
    passive_add(o, from, m->address);
}

static struct hv_pend *pend_by_nonce(struct overlay *o, const char *from, uint64_t nonce)
{
    for (size_t i = 0; i < o->n_pend; i++)
        if (o->pend[i].nonce == nonce && (!o->pend[i].n.name[0] || !strcmp(o->pend[i].n.name, from)))
            return &o->pend[i];
    return NULL;
}

static void on_accept(struct overlay *o, const char *from, const HvMessage *m)
{
    struct hv_pend *p = pend_by_nonce(o, from, m->nonce);
    if (p) {
        struct hv_node n = p->n;
        bool was_join = p->join;
        pend_remove(o, p);
        copy_str(n.name, sizeof n.name, from);
        link_add(o, from, valid_addr(m->address) ? m->address : n.address, m->nonce, true);
        if (was_join && link_find(o, from))
            o->join_backoff = 0;
        return;
    }
    /* A link we have, and no request of ours: stale (the crossing case,
     * both asking at once, matched our request above). */
    if (link_find(o, from))
        return;
    /* An answer to a request we gave up: end what it made over there. */
    if (valid_addr(m->address))
        send_simple(o, from, m->address, HV_TYPE__HV_DISCONNECT, m->nonce);
}

static void on_reject(struct overlay *o, const char *from, const HvMessage *m)
{
    struct hv_pend *p = pend_by_nonce(o, from, m->nonce);
    if (!p)
        return;
    pend_remove(o, p);
    promote(o);
}

static void on_disconnect(struct overlay *o, const char *from, const HvMessage *m)
{
    struct hv_acc *a = acc_find(o, from);
    if (a && a->nonce == m->nonce)
        acc_remove(o, a);
    struct hv_link *l = link_find(o, from);
    if (!l || l->nonce != m->nonce)
        return;     /* stale: about an earlier link */
    link_drop(o, l, true, "disconnected by it");
    promote(o);
}

static HvPeer *peers_fill(struct overlay *o, HvPeer *pv, HvPeer **pp, size_t max, size_t *n,
                          bool from_active, size_t k)
{
    size_t have = from_active ? o->n_active : o->n_passive;
    /* k distinct random entries by a partial Fisher-Yates over indices. */
    size_t idx[64];
    size_t m = have < 64 ? have : 64;
    for (size_t i = 0; i < m; i++)
        idx[i] = i;
    for (size_t i = 0; i < k && i < m && *n < max; i++) {
        size_t j = i + rnd_below(o, m - i);
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        struct hv_node *nd = from_active ? &o->active[idx[i]].n : &o->passive[idx[i]].n;
        if (!from_active)
            o->passive[idx[i]].sent = true;
        hv_peer__init(&pv[*n]);
        pv[*n].name = nd->name;
        pv[*n].address = nd->address;
        pp[*n] = &pv[*n];
        (*n)++;
    }
    return pv;
}

static void integrate(struct overlay *o, const HvMessage *m)
{
    size_t n = m->n_peers < PEERS_IN_MAX ? m->n_peers : PEERS_IN_MAX;
    for (size_t i = 0; i < n; i++) {
        const HvPeer *p = m->peers[i];
        if (p && valid_name(p->name) && valid_addr(p->address))
            passive_add(o, p->name, p->address);
    }
}

static void do_shuffle(struct overlay *o)
{
    if (!o->n_active)
        return;
    for (size_t i = 0; i < o->n_passive; i++)
        o->passive[i].sent = false;
    HvPeer pv[PEERS_IN_MAX], *pp[PEERS_IN_MAX];
    size_t n = 0;
    hv_peer__init(&pv[0]);
    pv[0].name = o->self;
    pv[0].address = o->self_addr;
    pp[0] = &pv[0];
    n = 1;
    peers_fill(o, pv, pp, PEERS_IN_MAX, &n, true, o->hp.shuffle_k_active);
    peers_fill(o, pv, pp, PEERS_IN_MAX, &n, false, o->hp.shuffle_k_passive);
    struct hv_link *to = &o->active[rnd_below(o, o->n_active)];
    HvPeer origin = HV_PEER__INIT;
    origin.name = o->self;
    origin.address = o->self_addr;
    HvMessage m = HV_MESSAGE__INIT;
    m.type = HV_TYPE__HV_SHUFFLE;
    m.peer = &origin;
    m.ttl = o->hp.active_rwl;
    m.n_peers = n;
    m.peers = pp;
    m.nonce = nonce_new(o);
    send_to(o, to->n.name, to->n.address, &m);
}

static void on_shuffle(struct overlay *o, const char *from, const HvMessage *m)
{
    if (!m->peer || !valid_name(m->peer->name) || !valid_addr(m->peer->address) || is_self(o, m->peer->name))
        return;
    uint32_t ttl = m->ttl < o->hp.active_rwl ? m->ttl : o->hp.active_rwl;
    ttl = ttl ? ttl - 1 : 0;
    size_t others = 0;
    for (size_t i = 0; i < o->n_active; i++)
        others += strcmp(o->active[i].n.name, from) != 0 && strcmp(o->active[i].n.name, m->peer->name) != 0;
    if (ttl > 0 && others > 0) {
        size_t pick = rnd_below(o, others);
        for (size_t i = 0; i < o->n_active; i++) {
            struct hv_link *l = &o->active[i];
            if (!strcmp(l->n.name, from) || !strcmp(l->n.name, m->peer->name) || pick-- != 0)
                continue;
            HvMessage f = *m;
            f.ttl = ttl;
            send_to(o, l->n.name, l->n.address, &f);
            return;
        }
    }
    /* The walk ends here: answer with as many of our passive entries. */
    HvPeer pv[PEERS_IN_MAX], *pp[PEERS_IN_MAX];
    size_t n = 0;
    size_t want = m->n_peers < PEERS_IN_MAX ? m->n_peers : PEERS_IN_MAX;
    for (size_t i = 0; i < o->n_passive; i++)
        o->passive[i].sent = false;
    peers_fill(o, pv, pp, PEERS_IN_MAX, &n, false, want);
    HvMessage r = HV_MESSAGE__INIT;
    r.type = HV_TYPE__HV_SHUFFLE_REPLY;
    r.nonce = m->nonce;
    r.n_peers = n;
    r.peers = pp;
    send_to(o, m->peer->name, m->peer->address, &r);
    integrate(o, m);
}

/* ---------------------------------------------------------- broadcasts -- */

static struct hv_link *link_of_sender(struct overlay *o, const char *from)
{
    return from ? link_find(o, from) : NULL;
}

static bool on_announce(struct overlay *o, const char *from, const HvBroadcast *b, uint32_t round)
{
    const HvMember *hm = b->member;
    if (!valid_name(hm->name) || !valid_addr(hm->address))
        return false;
    struct member e;
    memset(&e, 0, sizeof e);
    copy_str(e.name, sizeof e.name, hm->name);
    copy_str(e.address, sizeof e.address, hm->address);
    e.incarnation = hm->incarnation;
    e.left = hm->left;
    e.expires_ms = hm->left ? hm->expires_ms : 0;
    if (membership_expired(&e, wall_ms(o)))
        return false;
    if (is_self(o, e.name)) {
        if (!from)
            return true;
        if (e.left && e.incarnation >= o->inc) {
            o->removed_pending = true;
            return true;
        }
        if (!e.left && e.incarnation >= o->inc) {
            /* An entry of ours from an earlier run ranks above us: outrank it. */
            o->inc = e.incarnation + 1;
            o->announce_at = o->now;
        }
        return false;
    }
    struct hv_rec *r = rec_find(o, e.name);
    bool fresh_record = false;
    if (!r) {
        r = rec_add(o, e.name, e.address);
        if (!r)
            return true;    /* cannot keep it, but others may */
        fresh_record = true;
    }
    bool changed = rec_merge(o, r, &e, fresh_record);
    bool own = strcmp(b->id->origin, e.name) == 0;
    bool fresh = false;
    if (own && (b->id->incarnation > r->ann_inc ||
                (b->id->incarnation == r->ann_inc && b->id->seq > r->ann_seq))) {
        fresh = true;
        r->ann_inc = b->id->incarnation;
        r->ann_seq = b->id->seq;
        r->heard = o->now;
        struct hv_link *l = link_of_sender(o, from);
        r->hop = l ? l->serial : 0;
        /* The same node over a later link is still closer to the origin
         * (what it knew does not change with the connection); kept by
         * name so that a neighbour reconnecting keeps its routes. */
        free(r->hop_node);
        r->hop_node = l ? strdup(l->n.name) : NULL;
        r->n_alts = 0;
        r->round = round;
        if (!r->left && !r->up && r->incarnation == b->id->incarnation) {
            r->up = true;
            logf_(o, OVERLAY_LOG_INFO, "%s: up", r->name);
            o->env.member_up(o->env.ctx, r->name);
        }
    }
    return fresh || changed;
}

static bool pt_deliver(void *ctx, const char *from, const HvBroadcast *b, uint32_t round)
{
    struct overlay *o = ctx;
    o->st.last_round = round;
    if (b->member)
        return on_announce(o, from, b, round);
    if (!valid_name(b->id->origin) || !b->name || strlen(b->name) > MEMBER_NAME_MAX)
        return false;
    o->st.app_delivered++;
    if (o->env.broadcast_deliver)
        o->env.broadcast_deliver(o->env.ctx, b->id->origin, b->name ? b->name : "", b->payload.data,
                                 b->payload.len);
    return true;
}

static void pt_seen(void *ctx, const char *from, const HvBroadcastId *id)
{
    struct overlay *o = ctx;
    struct hv_rec *r = rec_find(o, id->origin);
    if (!r || r->ann_inc != id->incarnation || r->ann_seq != id->seq || r->n_alts == HOP_ALTS)
        return;
    /* Only a node strictly closer to the origin than we are (fewer hops
     * for this announcement) may stand in for the hop: along hop and alt
     * pointers, (announcement, -round) then strictly grows, so following
     * them cannot loop. A node that merely has the announcement may have
     * got it through us. */
    if (id->round >= r->round)
        return;
    struct hv_link *l = link_of_sender(o, from);
    if (!l || l->serial == r->hop)
        return;
    for (unsigned k = 0; k < r->n_alts; k++)
        if (r->alts[k] == l->serial)
            return;
    r->alts[r->n_alts++] = l->serial;
}

static void pt_send(void *ctx, const char *peer, const HvMessage *m)
{
    struct overlay *o = ctx;
    struct hv_conn *c = conn_find(o, peer);
    if (!c || c->state != CONN_UP)
        return;
    size_t len;
    if (encode(o, m, &len) != 0)
        return;
    count_sent(o, m);
    o->env.send(o->env.ctx, peer, o->buf, len);
    struct hv_link *l = link_find(o, peer);
    if (l)
        l->sent = o->now;
}

static void fill_id(struct overlay *o, HvBroadcastId *id)
{
    hv_broadcast_id__init(id);
    id->origin = o->self;
    id->incarnation = o->inc;
    id->seq = ++o->seq;
}

/* A member entry (ours or another's) as this node's announcement. */
static void announce_entry(struct overlay *o, const struct member *e, bool urgent)
{
    HvBroadcastId id;
    fill_id(o, &id);
    HvMember hm = HV_MEMBER__INIT;
    hm.name = (char *)e->name;
    hm.address = (char *)e->address;
    hm.incarnation = e->incarnation;
    hm.left = e->left;
    hm.expires_ms = e->expires_ms;
    HvBroadcast b = HV_BROADCAST__INIT;
    b.id = &id;
    b.member = &hm;
    plumtree_broadcast(o->pt, &b, urgent, o->now);
}

static void announce_self(struct overlay *o)
{
    struct member e;
    memset(&e, 0, sizeof e);
    copy_str(e.name, sizeof e.name, o->self);
    copy_str(e.address, sizeof e.address, o->self_addr);
    e.incarnation = o->inc;
    /* The first one goes at once, hop by hop, so a joiner is known
     * everywhere within the tree's latency; the periodic ones are batched. */
    announce_entry(o, &e, o->announced_inc != o->inc);
    o->announced_inc = o->inc;
}

/* ---------------------------------------------------------------- leave -- */

static void go_quiet(struct overlay *o, const char *why)
{
    if (o->left)
        return;
    o->left = true;
    logf_(o, OVERLAY_LOG_INFO, "membership: left (%s)", why);
    while (o->n_active) {
        struct hv_link *l = &o->active[o->n_active - 1];
        send_simple(o, l->n.name, l->n.address, HV_TYPE__HV_DISCONNECT, l->nonce);
        link_drop(o, l, false, "leaving");
    }
    for (size_t i = 0; i < o->n_conns; i++)
        if (o->conns[i].n.name[0])
            o->env.disconnect(o->env.ctx, o->conns[i].n.name);
    while (o->n_conns)
        conn_remove(o, &o->conns[o->n_conns - 1]);
    o->n_pend = o->n_acc = 0;
    o->n_passive = 0;
    struct hv_rec *self = rec_find(o, o->self);
    if (self) {
        self->left = true;
        o->ms_dirty = true;
    }
    for (size_t i = 0; i < o->n_recs; i++)
        if (!is_self(o, o->recs[i].name))
            set_down(o, &o->recs[i], "this node left");
}

/* After an entry point: what callbacks could not do in place. */
static void settle(struct overlay *o)
{
    if (o->removed_pending && !o->left) {
        o->removed_pending = false;
        go_quiet(o, "removed by another member");
        return;
    }
    if (o->sweep_left) {
        o->sweep_left = false;
        for (size_t i = 0; i < o->n_active;) {
            struct hv_rec *r = rec_find(o, o->active[i].n.name);
            if (r && r->left) {
                send_simple(o, o->active[i].n.name, o->active[i].n.address, HV_TYPE__HV_DISCONNECT,
                            o->active[i].nonce);
                link_drop(o, &o->active[i], false, "left the cluster");
                continue;
            }
            i++;
        }
        for (size_t i = 0; i < o->n_passive;) {
            struct hv_rec *r = rec_find(o, o->passive[i].n.name);
            if (r && r->left) {
                o->passive[i] = o->passive[--o->n_passive];
                continue;
            }
            i++;
        }
        promote(o);
    }
    if (!o->conns_dirty)
        return;
    o->conns_dirty = false;
    for (size_t i = 0; i < o->n_conns; i++) {
        struct hv_conn *c = &o->conns[i];
        bool used = c->qn || !c->n.name[0] || link_find(o, c->n.name) || pend_find(o, c->n.name) ||
                    acc_find(o, c->n.name);
        if (used)
            c->idle_at = 0;
        else if (!c->idle_at)
            c->idle_at = o->now ? o->now : 1;
    }
}

static void close_idle(struct overlay *o)
{
    for (size_t i = 0; i < o->n_conns;) {
        struct hv_conn *c = &o->conns[i];
        if (c->idle_at && c->state == CONN_UP && c->idle_at + LINGER_MS <= o->now) {
            o->env.disconnect(o->env.ctx, c->n.name);
            conn_remove(o, c);
            continue;
        }
        i++;
    }
}

/* ------------------------------------------------------------ overlay ops -- */

void hyparview_params_default(struct hyparview_params *p)
{
    memset(p, 0, sizeof *p);
    p->active_max_size = 5;
    p->active_min_size = 2;
    p->passive_max_size = 30;
    p->active_rwl = 6;
    p->passive_rwl = 6;
    p->shuffle_interval_ms = 10000;
    p->shuffle_k_active = 3;
    p->shuffle_k_passive = 4;
    p->random_promotion_interval_ms = 5000;
    p->announce_interval_ms = 10000;
}

static struct overlay *hv_create(const struct overlay_config *cfg, const struct overlay_env *env)
{
    if (!valid_name(cfg->self_name) || !cfg->self_address)
        return NULL;
    struct overlay *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->env = *env;
    o->cfg = *cfg;
    o->cfg.seeds = NULL;
    o->cfg.initial_members = NULL;
    o->cfg.hyparview = NULL;
    if (cfg->hyparview)
        o->hp = *cfg->hyparview;
    else
        hyparview_params_default(&o->hp);
    if (!o->hp.active_max_size)
        o->hp.active_max_size = 1;
    if (!o->hp.random_promotion_interval_ms)
        o->hp.random_promotion_interval_ms = 5000;
    if (!o->hp.shuffle_interval_ms)
        o->hp.shuffle_interval_ms = 10000;
    copy_str(o->self, sizeof o->self, cfg->self_name);
    copy_str(o->self_addr, sizeof o->self_addr, cfg->self_address);
    o->inc = cfg->self_incarnation;
    o->conns_max = o->hp.active_max_size + CONNS_EXTRA;
    o->active = calloc(o->hp.active_max_size, sizeof *o->active);
    o->passive = calloc(o->hp.passive_max_size ? o->hp.passive_max_size : 1, sizeof *o->passive);
    if (cfg->n_seeds)
        o->seeds = calloc(cfg->n_seeds, sizeof *o->seeds);
    struct plumtree_params pp = {
        .ids_max = o->hp.broadcast_ids_max,
        .store_max = o->hp.broadcast_store_max,
    };
    struct plumtree_env pe = { .ctx = o, .send = pt_send, .deliver = pt_deliver, .seen = pt_seen };
    o->pt = plumtree_new(&pe, &pp);
    membership_init(&o->ms);
    if (!o->active || !o->passive || (cfg->n_seeds && !o->seeds) || !o->pt) {
        overlay_hyparview_ops.destroy(o);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_seeds; i++)
        if (cfg->seeds[i] && valid_addr(cfg->seeds[i]))
            copy_str(o->seeds[o->n_seeds++], ADDRSZ, cfg->seeds[i]);
    struct hv_rec *self = rec_add(o, o->self, o->self_addr);
    if (!self) {
        overlay_hyparview_ops.destroy(o);
        return NULL;
    }
    self->incarnation = o->inc;
    self->up = true;
    o->now = env->now_ms(env->ctx);
    /* A restarted node's old table: members to know and to rejoin through. */
    for (size_t i = 0; i < cfg->n_initial_members; i++) {
        const struct member *m = &cfg->initial_members[i];
        if (!valid_name(m->name) || !valid_addr(m->address) || is_self(o, m->name) ||
            membership_expired(m, wall_ms(o)))
            continue;
        struct hv_rec *r = rec_find(o, m->name);
        bool fresh = !r;
        if (!r && !(r = rec_add(o, m->name, m->address)))
            continue;
        rec_merge(o, r, m, fresh);
        if (!m->left)
            passive_add(o, m->name, m->address);
    }
    return o;
}

static void hv_destroy(struct overlay *o)
{
    if (!o)
        return;
    while (o->n_conns)
        conn_remove(o, &o->conns[o->n_conns - 1]);
    plumtree_free(o->pt);
    for (size_t i = 0; i < o->n_recs; i++) {
        free(o->recs[i].name);
        free(o->recs[i].address);
        free(o->recs[i].hop_node);
    }
    free(o->recs);
    free(o->map);
    membership_free(&o->ms);
    free(o->active);
    free(o->passive);
    free(o->conns);
    free(o->seeds);
    free(o->buf);
    if (o->arena_ok)
        pbarena_free(&o->arena);
    free(o);
}

static void hv_start(struct overlay *o)
{
    uint64_t now = clock_now(o);
    o->started = true;
    o->started_at = now;
    o->shuffle_at = now + jitter(o, o->hp.shuffle_interval_ms);
    o->promote_at = now + jitter(o, o->hp.random_promotion_interval_ms);
    o->announce_at = o->hp.announce_interval_ms ? now + jitter(o, o->hp.announce_interval_ms) : UINT64_MAX;
    o->expire_at = now + 1000;
    o->probe_at = o->hp.announce_interval_ms
                      ? now + 2 * (uint64_t)HYPARVIEW_DOWN_INTERVALS * o->hp.announce_interval_ms
                      : UINT64_MAX;
    o->seedcheck_at = o->hp.announce_interval_ms && o->n_seeds
                          ? now + (uint64_t)HYPARVIEW_DOWN_INTERVALS * o->hp.announce_interval_ms
                          : UINT64_MAX;
    o->join_at = now;
    if (o->n_passive)
        promote(o);
    const char *seed = pick_seed(o);
    if (seed)
        ask_join(o, "", seed);
    settle(o);
}

static void hv_join(struct overlay *o, const char *address)
{
    clock_now(o);
    if (o->left || !valid_addr(address))
        return;
    ask_join(o, "", address);
    settle(o);
}

static int hv_remove_other(struct overlay *o, const char *node, uint64_t ttl, bool forget)
{
    struct hv_rec *r = rec_find(o, node);
    if (!r || (!forget && r->left))
        return -1;
    struct member e;
    rec_entry(r, &e);
    e.left = true;
    e.expires_ms = expiry_in(o, ttl);
    if (forget && r->left && r->expires_ms && e.expires_ms > r->expires_ms)
        e.expires_ms = r->expires_ms;
    rec_merge(o, r, &e, false);
    rec_entry(r, &e);
    announce_entry(o, &e, true);
    settle(o);
    return 0;
}

static int hv_leave(struct overlay *o, const char *node)
{
    clock_now(o);
    if (o->left)
        return -1;
    if (node && !is_self(o, node))
        return hv_remove_other(o, node, o->cfg.tombstone_ttl_ms, false);
    struct member e;
    memset(&e, 0, sizeof e);
    copy_str(e.name, sizeof e.name, o->self);
    copy_str(e.address, sizeof e.address, o->self_addr);
    e.incarnation = o->inc;
    e.left = true;
    e.expires_ms = expiry_in(o, o->cfg.tombstone_ttl_ms);
    /* Every neighbour gets the tombstone itself: lazy ones would ask us for
     * it when we are gone. */
    HvBroadcastId id;
    fill_id(o, &id);
    HvMember hm = HV_MEMBER__INIT;
    hm.name = e.name;
    hm.address = e.address;
    hm.incarnation = e.incarnation;
    hm.left = true;
    hm.expires_ms = e.expires_ms;
    HvBroadcast b = HV_BROADCAST__INIT;
    b.id = &id;
    b.id->round = 1;
    b.member = &hm;
    HvBroadcast *bs[1] = { &b };
    HvMessage m = HV_MESSAGE__INIT;
    m.type = HV_TYPE__HV_GOSSIP;
    m.n_broadcasts = 1;
    m.broadcasts = bs;
    plumtree_flush(o->pt, o->now);
    for (size_t i = 0; i < o->n_active; i++)
        pt_send(o, o->active[i].n.name, &m);
    go_quiet(o, "left");
    return 0;
}

static int hv_forget(struct overlay *o, const char *node)
{
    clock_now(o);
    if (o->left || !node || is_self(o, node))
        return -1;
    return hv_remove_other(o, node, overlay_forget_grace_ms(&o->cfg), true);
}

static void hv_peer_connected(struct overlay *o, const char *node, const char *address, uint64_t incarnation)
{
    clock_now(o);
    struct hv_conn *c = conn_find(o, node);
    if (c && c->state == CONN_UP)
        c = NULL;
    if (!c) {
        struct hv_conn *s = conn_find_seed(o, address);
        if (s)
            c = s;
    }
    if (!c) {
        /* Matched by neither name nor address: the seed's advertised address
         * differs from the one dialled. The oldest seed dial is the one. */
        for (size_t i = 0; i < o->n_conns && !c; i++)
            if (!o->conns[i].n.name[0] && o->conns[i].state == CONN_DIALLING)
                c = &o->conns[i];
    }
    if (!c || o->left || is_self(o, node)) {
        o->env.disconnect(o->env.ctx, node);
        if (c)
            conn_remove(o, c);
        settle(o);
        return;
    }
    struct hv_conn *named = conn_find(o, node);
    if (!c->n.name[0] && named && named != c) {
        /* A seed dial reached a node we dial by name as well: one
         * connection per node, so the seed's queue moves over. */
        while (c->q) {
            struct hv_qmsg *q = c->q;
            c->q = q->next;
            q->next = NULL;
            queue_append(named, q);
        }
        c->qn = 0;
        for (size_t i = 0; i < o->n_pend; i++)
            if (!o->pend[i].n.name[0] && !strcmp(o->pend[i].n.address, c->n.address))
                copy_str(o->pend[i].n.name, NAMESZ, node);
        conn_remove(o, c);
        settle(o);
        return;
    }
    if (!c->n.name[0]) {
        for (size_t i = 0; i < o->n_pend; i++)
            if (!o->pend[i].n.name[0] && !strcmp(o->pend[i].n.address, c->n.address))
                copy_str(o->pend[i].n.name, NAMESZ, node);
        copy_str(c->n.name, NAMESZ, node);
    }
    c->state = CONN_UP;
    while (c->q) {
        struct hv_qmsg *q = c->q;
        c->q = q->next;
        o->env.send(o->env.ctx, node, q->data, q->len);
        free(q);
    }
    c->qn = 0;
    o->conns_dirty = true;
    struct hv_acc *a = acc_find(o, node);
    if (a)
        complete_accept(o, a);
    settle(o);
}

/* Everything that waited on our connection to name (or to a seed's
 * address) failed. */
static void conn_lost(struct overlay *o, const char *name, const char *address, bool dial_failed)
{
    for (size_t i = 0; i < o->n_pend;) {
        struct hv_pend *p = &o->pend[i];
        bool hit = name[0] ? !strcmp(p->n.name, name) : (!p->n.name[0] && !strcmp(p->n.address, address));
        if (hit) {
            pend_remove(o, p);
            continue;
        }
        i++;
    }
    if (!name[0])
        return;
    struct hv_acc *a = acc_find(o, name);
    if (a)
        acc_remove(o, a);
    struct hv_link *l = link_find(o, name);
    if (l)
        link_drop(o, l, false, dial_failed ? "unreachable" : "connection lost");
    if (dial_failed)
        passive_remove(o, name);
}

static void hv_connect_failed(struct overlay *o, const struct peer_addr *peer)
{
    clock_now(o);
    struct hv_conn *c = peer->node[0] ? conn_find(o, peer->node) : conn_find_seed(o, peer->address);
    if (!c)
        for (size_t i = 0; i < o->n_conns && !c; i++)
            if (o->conns[i].state == CONN_DIALLING && !strcmp(o->conns[i].n.address, peer->address))
                c = &o->conns[i];
    if (c && c->state == CONN_DIALLING)
        conn_remove(o, c);
    conn_lost(o, peer->node, peer->address, true);
    promote(o);
    settle(o);
}

static void hv_peer_disconnected(struct overlay *o, const char *node)
{
    clock_now(o);
    struct hv_conn *c = conn_find(o, node);
    if (!c)
        return;
    conn_remove(o, c);
    conn_lost(o, node, "", false);
    promote(o);
    settle(o);
}

static void hv_receive(struct overlay *o, const char *from, const uint8_t *msg, size_t len)
{
    clock_now(o);
    if (o->left || !from || is_self(o, from))
        return;
    struct hv_link *from_link = link_find(o, from);
    if (from_link)
        from_link->heard = o->now;
    if (!o->arena_ok)
        o->arena_ok = pbarena_init(&o->arena, 4096) == 0;
    ProtobufCAllocator *alloc = o->arena_ok ? &o->arena.allocator : NULL;
    HvMessage *m = hv_message__unpack(alloc, len, msg);
    if (!m) {
        if (o->arena_ok)
            pbarena_reset(&o->arena);
        o->st.decode_errors++;
        if (o->now >= o->decode_log_at) {
            logf_(o, OVERLAY_LOG_WARN, "%s: undecodable overlay message (%zu bytes; %" PRIu64 " so far)", from,
                  len, o->st.decode_errors);
            o->decode_log_at = o->now + DECODE_LOG_MS;
        }
        return;
    }
    switch (m->type) {
    case HV_TYPE__HV_JOIN: on_join(o, from, m); break;
    case HV_TYPE__HV_FORWARD_JOIN: on_forward_join(o, from, m); break;
    case HV_TYPE__HV_NEIGHBOR: on_neighbor(o, from, m); break;
    case HV_TYPE__HV_NEIGHBOR_ACCEPT: on_accept(o, from, m); break;
    case HV_TYPE__HV_NEIGHBOR_REJECT: on_reject(o, from, m); break;
    case HV_TYPE__HV_DISCONNECT: on_disconnect(o, from, m); break;
    case HV_TYPE__HV_SHUFFLE: on_shuffle(o, from, m); break;
    case HV_TYPE__HV_SHUFFLE_REPLY: integrate(o, m); break;
    case HV_TYPE__HV_GOSSIP:
    case HV_TYPE__HV_IHAVE:
    case HV_TYPE__HV_GRAFT:
    case HV_TYPE__HV_PRUNE:
        plumtree_receive(o->pt, from, m, o->now);
        break;
    default:
        break;
    }
    if (o->arena_ok)
        pbarena_reset(&o->arena);
    else
        hv_message__free_unpacked(m, NULL);
    settle(o);
}

static void hv_removed_by(struct overlay *o, const char *by_node)
{
    clock_now(o);
    char why[300];
    snprintf(why, sizeof why, "removed, says %s", by_node ? by_node : "a peer");
    go_quiet(o, why);
}

static void expire_records(struct overlay *o)
{
    uint64_t down_after = (uint64_t)HYPARVIEW_DOWN_INTERVALS * o->hp.announce_interval_ms;
    uint64_t w = wall_ms(o);
    for (size_t i = 0; i < o->n_recs;) {
        struct hv_rec *r = &o->recs[i];
        if (is_self(o, r->name)) {
            i++;
            continue;
        }
        if (r->up && down_after && r->heard + down_after <= o->now)
            set_down(o, r, "no announcement");
        if (r->left && w && r->expires_ms && r->expires_ms <= w) {
            if (o->env.member_forgotten)
                o->env.member_forgotten(o->env.ctx, r->name);
            passive_remove(o, r->name);
            rec_delete(o, r);
            continue;
        }
        i++;
    }
}

/* Whether one of our seeds is known to be in our part of the cluster: a
 * neighbour, or its announcement heard within two intervals. */
static bool seed_in_sight(const struct overlay *o)
{
    uint64_t fresh = 2 * (uint64_t)o->hp.announce_interval_ms;
    for (size_t s = 0; s < o->n_seeds; s++) {
        if (!strcmp(o->seeds[s], o->self_addr))
            return true;
        for (size_t i = 0; i < o->n_active; i++)
            if (!strcmp(o->active[i].n.address, o->seeds[s]))
                return true;
    }
    for (size_t i = 0; i < o->n_recs; i++) {
        const struct hv_rec *r = &o->recs[i];
        if (!r->up || r->heard + fresh <= o->now)
            continue;
        for (size_t s = 0; s < o->n_seeds; s++)
            if (!strcmp(r->address, o->seeds[s]))
                return true;
    }
    return false;
}

/* Silent failures (a host gone without a reset): a neighbour we heard
 * nothing from for fd_timeout_ms is dropped as failed; one we sent nothing
 * to for ping_interval_ms gets a PING, so that it hears from us. */
static void check_neighbors(struct overlay *o)
{
    uint32_t every = o->cfg.ping_interval_ms, timeout = o->cfg.fd_timeout_ms;
    if (!every || !timeout)
        return;
    /* A tick far later than asked for means this node was stalled: its
     * neighbours were not silent, it was. */
    if (o->last_tick && o->now > o->last_tick + timeout / 2)
        for (size_t i = 0; i < o->n_active; i++)
            o->active[i].heard = o->now;
    o->last_tick = o->now;
    if (o->ping_at > o->now)
        return;
    o->ping_at = o->now + every;
    for (size_t i = 0; i < o->n_active;) {
        struct hv_link *l = &o->active[i];
        if (l->heard + timeout <= o->now) {
            char name[NAMESZ];
            copy_str(name, sizeof name, l->n.name);
            logf_(o, OVERLAY_LOG_INFO, "neighbour %s silent for %u ms", name, timeout);
            link_drop(o, l, false, "silent");
            struct hv_conn *c = conn_find(o, name);
            if (c) {
                o->env.disconnect(o->env.ctx, name);
                conn_remove(o, c);
            }
            promote(o);
            continue;
        }
        if (l->sent + every <= o->now)
            send_simple(o, l->n.name, l->n.address, HV_TYPE__HV_PING, 0);
        i++;
    }
}

/* A member that is down but never left is dead, or on the far side of a
 * partition: now and then join through one, as the full mesh redials its
 * down members, so that two halves that each hold on to their own
 * neighbours still find each other. */
static void probe_down_member(struct overlay *o)
{
    if (join_pending(o) || (!o->n_recs && !o->n_passive))
        return;
    /* Passive entries count too: an island's passive views still name
     * nodes outside it, which it never hears announce. */
    for (int k = 0; k < 8; k++) {
        size_t i = rnd_below(o, o->n_recs + o->n_passive);
        const char *name, *address;
        if (i < o->n_recs) {
            const struct hv_rec *r = &o->recs[i];
            if (r->left || r->up)
                continue;
            name = r->name;
            address = r->address;
        } else {
            const struct hv_passive *p = &o->passive[i - o->n_recs];
            const struct hv_rec *r = rec_find(o, p->n.name);
            if (r && (r->up || r->left))
                continue;
            name = p->n.name;
            address = p->n.address;
        }
        if (is_self(o, name) || link_find(o, name))
            continue;
        logf_(o, OVERLAY_LOG_DEBUG, "probing %s: not heard from", name);
        ask_join(o, name, address);
        return;
    }
}

static void hv_tick(struct overlay *o, uint64_t now)
{
    o->now = now;
    if (o->left || !o->started) {
        close_idle(o);
        return;
    }
    for (size_t i = 0; i < o->n_pend;) {
        if (o->pend[i].deadline <= now) {
            struct hv_pend *p = &o->pend[i];
            if (!p->join && p->n.name[0])
                passive_remove(o, p->n.name);
            pend_remove(o, p);
            continue;
        }
        i++;
    }
    for (size_t i = 0; i < o->n_acc;) {
        if (o->acc[i].deadline <= now) {
            acc_remove(o, &o->acc[i]);
            continue;
        }
        i++;
    }
    check_neighbors(o);
    if (o->shuffle_at <= now) {
        o->shuffle_at = now + jitter(o, o->hp.shuffle_interval_ms);
        do_shuffle(o);
    }
    if (o->promote_at <= now) {
        o->promote_at = now + jitter(o, o->hp.random_promotion_interval_ms);
        promote(o);
    }
    maybe_rejoin(o);
    if (o->seedcheck_at <= now) {
        o->seedcheck_at = now + jitter(o, o->hp.announce_interval_ms);
        if (!seed_in_sight(o) && !join_pending(o)) {
            const char *seed = pick_seed(o);
            if (seed) {
                logf_(o, OVERLAY_LOG_INFO, "no seed in sight: joining through %s again", seed);
                ask_join(o, "", seed);
            }
        }
    }
    if (o->probe_at <= now) {
        o->probe_at = now + jitter(o, HYPARVIEW_DOWN_INTERVALS * o->hp.announce_interval_ms);
        probe_down_member(o);
    }
    if (o->announce_at <= now) {
        o->announce_at = now + jitter(o, o->hp.announce_interval_ms);
        if (o->n_active)
            announce_self(o);
    }
    if (o->expire_at <= now) {
        o->expire_at = now + 1000;
        expire_records(o);
    }
    plumtree_tick(o->pt, now);
    settle(o);
    close_idle(o);
}

static uint64_t hv_next_deadline(const struct overlay *o)
{
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; i < o->n_conns; i++)
        if (o->conns[i].idle_at && o->conns[i].state == CONN_UP)
            d = min64(d, o->conns[i].idle_at + LINGER_MS);
    if (o->left || !o->started)
        return d;
    d = min64(d, o->shuffle_at);
    d = min64(d, o->promote_at);
    d = min64(d, o->announce_at);
    d = min64(d, o->expire_at);
    d = min64(d, o->seedcheck_at);
    d = min64(d, o->probe_at);
    if (o->cfg.ping_interval_ms && o->cfg.fd_timeout_ms && o->n_active)
        d = min64(d, o->ping_at);
    if (o->n_active < o->hp.active_min_size || (o->n_active < o->hp.active_max_size && !o->n_passive))
        d = min64(d, o->join_at > o->now ? o->join_at : o->now + 1000);
    for (size_t i = 0; i < o->n_pend; i++)
        d = min64(d, o->pend[i].deadline);
    for (size_t i = 0; i < o->n_acc; i++)
        d = min64(d, o->acc[i].deadline);
    return min64(d, plumtree_next_deadline(o->pt));
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

static const struct membership *hv_members(const struct overlay *co)
{
    struct overlay *o = (struct overlay *)co;   /* a cache, rebuilt when stale */
    if (!o->ms_dirty && o->ms.n == o->n_recs)
        return &o->ms;
    if (o->n_recs > o->ms.cap) {
        struct member *v = realloc(o->ms.v, o->n_recs * sizeof *v);
        if (!v)
            return &o->ms;
        o->ms.v = v;
        o->ms.cap = o->n_recs;
    }
    for (size_t i = 0; i < o->n_recs; i++)
        rec_entry(&o->recs[i], &o->ms.v[i]);
    o->ms.n = o->n_recs;
    qsort(o->ms.v, o->ms.n, sizeof *o->ms.v, cmp_member);
    o->ms_dirty = false;
    return &o->ms;
}

static bool hv_is_up(const struct overlay *o, const char *node)
{
    if (is_self(o, node))
        return true;
    if (link_find(o, node))
        return true;
    const struct hv_rec *r = rec_find(o, node);
    return r && r->up && !r->left;
}

static const char *hv_next_hop(const struct overlay *o, const char *dest)
{
    if (o->left)
        return NULL;
    const struct hv_link *l = link_find(o, dest);
    if (l)
        return l->n.name;
    const struct hv_rec *r = rec_find(o, dest);
    if (!r || r->left || !r->up || is_self(o, dest))
        return NULL;
    if ((l = link_by_serial(o, r->hop)) || (r->hop_node && (l = link_find(o, r->hop_node))))
        return l->n.name;
    for (unsigned k = 0; k < r->n_alts; k++)
        if ((l = link_by_serial(o, r->alts[k])))
            return l->n.name;
    return NULL;
}

static bool hv_has_left(const struct overlay *o)
{
    return o->left;
}

static bool hv_is_neighbor(const struct overlay *o, const char *node)
{
    return link_find(o, node) != NULL;
}

static int hv_broadcast(struct overlay *o, const char *name, const uint8_t *payload, size_t len)
{
    clock_now(o);
    if (o->left || len > HYPARVIEW_PAYLOAD_MAX || !name)
        return -1;
    HvBroadcastId id;
    fill_id(o, &id);
    HvBroadcast b = HV_BROADCAST__INIT;
    b.id = &id;
    b.name = (char *)name;
    b.payload.data = (uint8_t *)payload;
    b.payload.len = len;
    int r = plumtree_broadcast(o->pt, &b, true, o->now);
    settle(o);
    return r;
}

const struct overlay_ops overlay_hyparview_ops = {
    .relays = true,
    .name = "hyparview",
    .create = hv_create,
    .destroy = hv_destroy,
    .start = hv_start,
    .join = hv_join,
    .leave = hv_leave,
    .forget = hv_forget,
    .peer_connected = hv_peer_connected,
    .connect_failed = hv_connect_failed,
    .peer_disconnected = hv_peer_disconnected,
    .receive = hv_receive,
    .removed_by = hv_removed_by,
    .tick = hv_tick,
    .next_deadline = hv_next_deadline,
    .members = hv_members,
    .is_up = hv_is_up,
    .next_hop = hv_next_hop,
    .has_left = hv_has_left,
    .is_neighbor = hv_is_neighbor,
    .broadcast = hv_broadcast,
};

/* ---------------------------------------------------- tests and benches -- */

size_t hyparview_active_view(const struct overlay *o, const char **out, size_t max)
{
    for (size_t i = 0; i < o->n_active && i < max; i++)
        out[i] = o->active[i].n.name;
    return o->n_active;
}

size_t hyparview_passive_view(const struct overlay *o, const char **out, size_t max)
{
    for (size_t i = 0; i < o->n_passive && i < max; i++)
        out[i] = o->passive[i].n.name;
    return o->n_passive;
}

bool hyparview_is_eager(const struct overlay *o, const char *node)
{
    return plumtree_is_eager(o->pt, node);
}

bool hyparview_pending(const struct overlay *co, const char *node)
{
    struct overlay *o = (struct overlay *)co;
    return pend_find(o, node) || acc_find(o, node);
}

void hyparview_get_stats(const struct overlay *o, struct hyparview_stats *out)
{
    uint64_t app = o->st.app_delivered;
    *out = o->st;
    out->app_delivered = app;
    struct plumtree_stats ps;
    plumtree_get_stats(o->pt, &ps);
    out->gossip_received = ps.gossip_received;
    out->duplicates = ps.duplicates;
    out->delivered = ps.delivered;
    out->members = o->n_recs;
    size_t bytes = o->recs_cap * sizeof *o->recs + o->map_cap * sizeof *o->map;
    for (size_t i = 0; i < o->n_recs; i++)
        bytes += strlen(o->recs[i].name) + strlen(o->recs[i].address) + 2;
    out->records_bytes = bytes;
}

size_t hyparview_describe(const struct overlay *o, char *buf, size_t len)
{
    size_t off = 0;
#define PUT(...) do { int k_ = snprintf(buf + off, off < len ? len - off : 0, __VA_ARGS__); \
                      if (k_ > 0) off += (size_t)k_; } while (0)
    PUT("%s%s active[", o->self, o->left ? " (left)" : "");
    for (size_t i = 0; i < o->n_active; i++)
        PUT("%s%s", i ? " " : "", o->active[i].n.name);
    PUT("] passive %zu conns[", o->n_passive);
    for (size_t i = 0; i < o->n_conns; i++)
        PUT("%s%s%s%s", i ? " " : "", o->conns[i].n.name[0] ? o->conns[i].n.name : o->conns[i].n.address,
            o->conns[i].state == CONN_DIALLING ? "(dialling)" : "", o->conns[i].idle_at ? "(idle)" : "");
    PUT("] pend[");
    for (size_t i = 0; i < o->n_pend; i++)
        PUT("%s%s%s", i ? " " : "", o->pend[i].n.name[0] ? o->pend[i].n.name : o->pend[i].n.address,
            o->pend[i].join ? "(join)" : "");
    PUT("] acc[");
    for (size_t i = 0; i < o->n_acc; i++)
        PUT("%s%s", i ? " " : "", o->acc[i].n.name);
    size_t up = 0, alive = 0;
    for (size_t i = 0; i < o->n_recs; i++) {
        up += o->recs[i].up;
        alive += !o->recs[i].left;
    }
    PUT("] members %zu (alive %zu, up %zu) seeds[", o->n_recs, alive, up);
    for (size_t i = 0; i < o->n_seeds; i++)
        PUT("%s%s", i ? " " : "", o->seeds[i]);
    PUT("] join_at %" PRIu64 " now %" PRIu64, o->join_at, o->now);
#undef PUT
    return off;
}
