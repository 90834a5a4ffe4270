/* overlay_full_mesh: every member keeps an outbound connection to every
 * other member (see overlay.h for the sans-IO contract).
 *
 * Membership is the CRDT of membership.h, spread by digest gossip: a round
 * sends our digest to a few random up members, a member whose digest differs
 * answers with its whole table, and a STATE that leaves the two tables
 * different is answered once more. A joiner's first STATE is pushed to every
 * connected member at once, so a join does not wait for gossip rounds.
 *
 * Reachability is this node's own view: a member is up while our outbound
 * connection to it is established and we keep hearing from it. A lost
 * connection gets one immediate redial before the member is declared down;
 * after that, redials back off (capped, jittered) for as long as the member
 * is alive in membership, so partitions heal without anyone rejoining. */
#include "overlay.h"

#include "dialer.h"
#include "gossip_codec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A forgotten member's tombstone lives this many gossip rounds (at least
 * the minimum), so that it reaches every node holding the member alive
 * before any node drops it. */
#define FORGET_GOSSIP_ROUNDS 20
#define FORGET_GRACE_MIN_MS 2000

enum conn_state { CONN_NONE, CONN_DIALLING, CONN_UP };

struct peer {
    char name[MEMBER_NAME_MAX + 1];
    enum conn_state conn;
    bool up;                /* member_up reported, member_down not since */
    bool was_up;            /* up at least once */
    bool retrying;          /* the one immediate redial after a lost connection */
    uint64_t last_heard;
    uint64_t next_dial;     /* while CONN_NONE */
    uint64_t dial_started;  /* while CONN_DIALLING */
    uint32_t backoff;       /* the delay the next failure waits (before jitter) */
    uint64_t sent_digest;   /* of the last STATE we sent it (every connection starts with one) */
    bool sent_state;
};

struct overlay {
    struct overlay_env env;
    struct overlay_config cfg;          /* pointers in it are not kept */
    char self_name[MEMBER_NAME_MAX + 1];
    char self_address[MEMBER_ADDR_MAX + 1];
    uint64_t self_inc;

    struct membership ms;
    uint64_t digest;
    bool digest_valid;

    struct peer **peers;                /* sorted by name; each allocated once */
    size_t n_peers, cap_peers;
    struct peer **scratch;              /* gossip target choice */
    struct dial_policy dial;
    struct dial_seeds seeds;
    struct member *initial;
    size_t n_initial;

    bool started, left;
    uint64_t next_ping, next_gossip, ping_seq;
    uint64_t last_recovery;             /* a down member last came back up */
    uint64_t deadline;                  /* what next_deadline() reports */

    /* Set while merging a STATE, for the change callback. */
    const char *merging_from;
    bool sender_rejoined, self_touched, any_left;
    const struct peer *keep_conn;       /* not dropped by drop_left_peers() */
    uint64_t full_warned_at;            /* the member bound is warned of once a minute */
    uint64_t full_ignored;              /* names ignored since that warning */
    struct member *bounded;             /* merge input filtered to the bound */
    size_t bounded_cap;
    struct member *unexpired;           /* merge input without expired tombstones */
    size_t unexpired_cap;
    uint64_t next_expiry_check;
    struct gossip_codec codec;
    /* Our STATE, encoded once per change of the table: a join pushes it
     * to every member, and encoding it for each would cost O(n^2). */
    struct gossip_codec state_codec;
    const uint8_t *state_wire;
    size_t state_wire_len;
    bool state_wire_valid;
    uint64_t undecodable, undecodable_warned_at;
};

/* ---- small helpers ---- */

static uint64_t now_ms(const struct overlay *o)
{
    return o->env.now_ms(o->env.ctx);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

#define logf_(o, lvl, ...) overlay_logf(&(o)->env, (lvl), __VA_ARGS__)

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static bool is_self(const struct overlay *o, const char *name)
{
    return strcmp(name, o->self_name) == 0;
}

/* Lowers the deadline: every timer set outside tick() goes through here so
 * the driver never sleeps past it. */
static void arm(struct overlay *o, uint64_t t)
{
    o->deadline = min_u64(o->deadline, t);
}

static uint64_t jittered(struct overlay *o, uint32_t ms)
{
    return dial_jitter(ms, o->env.random(o->env.ctx));
}

static uint32_t next_backoff(const struct overlay *o, uint32_t cur)
{
    return dial_next_backoff(&o->dial, cur);
}

/* A dial that got no answer at all (a driver that lost it) is given up after
 * this long; the transport's own connect timeout is much shorter. */
static uint64_t dial_timeout(const struct overlay *o)
{
    return 4 * (uint64_t)o->cfg.fd_timeout_ms;
}

static uint64_t digest(struct overlay *o)
{
    if (!o->digest_valid) {
        o->digest = membership_digest(&o->ms);
        o->digest_valid = true;
    }
    return o->digest;
}

static bool member_alive(const struct overlay *o, const char *name)
{
    const struct member *m = membership_find(&o->ms, name);
    return m && !m->left;
}

/* ---- peers ---- */

static size_t peer_index(const struct overlay *o, const char *name, bool *found)
{
    size_t lo = 0, hi = o->n_peers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(o->peers[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct peer *peer_find(const struct overlay *o, const char *name)
{
    bool found;
    size_t i = peer_index(o, name, &found);
    return found ? o->peers[i] : NULL;
}

static struct peer *peer_get(struct overlay *o, const char *name)
{
    bool found;
    size_t i = peer_index(o, name, &found);
    if (found)
        return o->peers[i];
    if (o->n_peers == o->cap_peers) {
        size_t cap = o->cap_peers ? o->cap_peers * 2 : 16;
        struct peer **v = realloc(o->peers, cap * sizeof *v);
        struct peer **s = v ? realloc(o->scratch, cap * sizeof *s) : NULL;
        if (v)
            o->peers = v;
        if (!v || !s)
            return NULL;
        o->scratch = s;
        o->cap_peers = cap;
    }
    struct peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    copy_str(p->name, sizeof p->name, name);
    p->backoff = o->cfg.backoff_initial_ms;
    memmove(&o->peers[i + 1], &o->peers[i], (o->n_peers - i) * sizeof *o->peers);
    o->peers[i] = p;
    o->n_peers++;
    return p;
}

static void mark_up(struct overlay *o, struct peer *p)
{
    if (p->up)
        return;
    p->up = true;
    p->was_up = true;
    logf_(o, OVERLAY_LOG_INFO, "%s: up", p->name);
    o->env.member_up(o->env.ctx, p->name);
}

static void mark_down(struct overlay *o, struct peer *p, const char *why)
{
    if (!p->up)
        return;
    p->up = false;
    logf_(o, OVERLAY_LOG_INFO, "%s: down (%s)", p->name, why);
    o->env.member_down(o->env.ctx, p->name);
}

/* Closes whatever we have toward p; no redial is scheduled. */
static void drop_conn(struct overlay *o, struct peer *p, const char *why)
{
    bool had = p->conn != CONN_NONE;
    /* State first: a peer_disconnected the driver might report for this
     * close finds nothing to redial. */
    p->conn = CONN_NONE;
    p->retrying = false;
    if (had)
        o->env.disconnect(o->env.ctx, p->name);
    mark_down(o, p, why);
}

static void schedule_redial(struct overlay *o, struct peer *p)
{
    bool stale = p->conn == CONN_DIALLING && p->dial_started < o->last_recovery;
    p->conn = CONN_NONE;
    if (stale) {
        /* Dialled before another member came back: the network may have
         * healed since, so one quick retry before backing off further. */
        p->next_dial = now_ms(o) + jittered(o, o->cfg.backoff_initial_ms);
    } else {
        p->next_dial = now_ms(o) + jittered(o, p->backoff);
        p->backoff = next_backoff(o, p->backoff);
    }
    arm(o, p->next_dial);
}

static void redial_soon(struct overlay *o, struct peer *p)
{
    p->backoff = o->cfg.backoff_initial_ms;
    p->next_dial = now_ms(o);
    arm(o, p->next_dial);
}

/* ---- seeds ---- */

static struct dial_seed *seed_add(struct overlay *o, const char *address)
{
    return dial_seeds_add(&o->seeds, &o->dial, address, o->self_address);
}

/* Whether a member at this address is connected or being dialled: a seed
 * dial to it would be a second dial to the same node. */
static bool member_busy_at(const struct overlay *o, const char *address)
{
    for (size_t i = 0; i < o->n_peers; i++) {
        const struct peer *p = o->peers[i];
        if (p->conn == CONN_NONE)
            continue;
        const struct member *m = membership_find(&o->ms, p->name);
        if (m && strcmp(m->address, address) == 0)
            return true;
    }
    return false;
}

static void seed_dial(struct overlay *o, struct dial_seed *s)
{
    struct peer_addr pa;
    memset(&pa, 0, sizeof pa);
    copy_str(pa.address, sizeof pa.address, s->address);
    dial_seed_started(s, now_ms(o));
    arm(o, s->dial_started + dial_timeout(o));
    logf_(o, OVERLAY_LOG_DEBUG, "dialling seed %s", s->address);
    o->env.connect(o->env.ctx, &pa);
}

static void seed_failed(struct overlay *o, struct dial_seed *s)
{
    dial_seed_failed(s, &o->dial, now_ms(o), o->env.random(o->env.ctx));
    arm(o, s->next_dial);
}

/* ---- sending ---- */

static void send_msg(struct overlay *o, const char *node, const struct gossip_msg *m)
{
    const uint8_t *wire;
    size_t len;
    if (gossip_pack(&o->codec, m, &wire, &len) != 0) {
        logf_(o, OVERLAY_LOG_WARN, "out of memory encoding a message for %s", node);
        return;     /* as a lost message: the next round repeats it */
    }
    o->env.send(o->env.ctx, node, wire, len);
}

static void send_state(struct overlay *o, const char *node)
{
    struct gossip_msg m = {
        .type = GOSSIP_STATE,
        .digest = digest(o),
        .members = o->ms.v,
        .n_members = o->ms.n,
    };
    if (!o->state_wire_valid) {
        if (gossip_pack(&o->state_codec, &m, &o->state_wire, &o->state_wire_len) != 0) {
            logf_(o, OVERLAY_LOG_WARN, "out of memory encoding this node's member table");
            return;     /* as a lost message: the next round repeats it */
        }
        o->state_wire_valid = true;
    }
    struct peer *p = peer_find(o, node);
    if (p) {
        p->sent_state = true;
        p->sent_digest = m.digest;
    }
    o->env.send(o->env.ctx, node, o->state_wire, o->state_wire_len);
}

static void send_simple(struct overlay *o, const char *node, enum gossip_type type, uint64_t seq)
{
    struct gossip_msg m = { .type = type, .seq = seq, .digest = digest(o) };
    send_msg(o, node, &m);
}

static void push_state_all(struct overlay *o)
{
    for (size_t i = 0; i < o->n_peers; i++)
        if (o->peers[i]->conn == CONN_UP)
            send_state(o, o->peers[i]->name);
}

/* ---- dialling ---- */

static void dial(struct overlay *o, struct peer *p, const struct member *m)
{
    struct peer_addr pa;
    copy_str(pa.node, sizeof pa.node, p->name);
    copy_str(pa.address, sizeof pa.address, m->address);
    p->conn = CONN_DIALLING;
    p->dial_started = now_ms(o);
    arm(o, p->dial_started + dial_timeout(o));
    o->env.connect(o->env.ctx, &pa);
}

/* Whether p is to be dialled once its backoff ends. A member at the
 * address of a seed being dialled waits for that dial, which may well be
 * the same node. */
static bool dial_wanted(const struct overlay *o, const struct peer *p)
{
    if (p->conn != CONN_NONE || is_self(o, p->name))
        return false;
    const struct member *m = membership_find(&o->ms, p->name);
    return m && !m->left && !dial_seeds_dialling_at(&o->seeds, m->address);
}

static bool should_dial(const struct overlay *o, const struct peer *p, uint64_t t)
{
    return t >= p->next_dial && dial_wanted(o, p);
}

static void dial_due(struct overlay *o)
{
    if (o->left || !o->started)
        return;
    uint64_t t = now_ms(o);
    for (size_t i = 0; i < o->n_peers; i++) {
        struct peer *p = o->peers[i];
        if (should_dial(o, p, t))
            dial(o, p, membership_find(&o->ms, p->name));
    }
}

static bool alone(const struct overlay *o)
{
    for (size_t i = 0; i < o->n_peers; i++)
        if (o->peers[i]->conn == CONN_UP)
            return false;
    return true;
}

/* A node with no reachable member goes back to its seeds: that is how a
 * node cut off from everyone it knew finds the cluster again. */
static void seeds_due(struct overlay *o)
{
    if (o->left || !o->started || !alone(o))
        return;
    uint64_t t = now_ms(o);
    for (size_t i = 0; i < o->seeds.n; i++) {
        struct dial_seed *s = &o->seeds.v[i];
        if (s->is_self || s->dialling || t < s->next_dial || member_busy_at(o, s->address))
            continue;
        seed_dial(o, s);
    }
}

/* ---- leaving ---- */

/* This node is out of the cluster: no more connections, dials or events
 * other than the downs of members it could reach. */
static void go_quiet(struct overlay *o)
{
    o->left = true;
    for (size_t i = 0; i < o->n_peers; i++)
        drop_conn(o, o->peers[i], "this node left");
    for (size_t i = 0; i < o->seeds.n; i++)
        o->seeds.v[i].dialling = false;
}

static void drop_left_peers(struct overlay *o)
{
    for (size_t i = 0; i < o->n_peers; i++) {
        struct peer *p = o->peers[i];
        if (p != o->keep_conn && (p->conn != CONN_NONE || p->up) && !member_alive(o, p->name))
            drop_conn(o, p, "left");
    }
}

/* ---- membership changes ---- */

static void member_appeared(struct overlay *o, const struct member *m)
{
    logf_(o, OVERLAY_LOG_INFO, "%s: joined (%s, incarnation %" PRIu64 ")", m->name, m->address,
          m->incarnation);
    o->env.member_joined(o->env.ctx, m);
    struct peer *p = peer_get(o, m->name);
    if (p && p->conn == CONN_NONE)
        redial_soon(o, p);
}

static void member_moved(struct overlay *o, const struct member *m, const struct member *old)
{
    logf_(o, OVERLAY_LOG_INFO, "%s: now %s, incarnation %" PRIu64 " (was %s, %" PRIu64 ")",
          m->name, m->address, m->incarnation, old->address, old->incarnation);
    struct peer *p = peer_get(o, m->name);
    /* A restarted member is worth dialling now, not at the end of a backoff
     * that grew while it was away. */
    if (p && p->conn == CONN_NONE)
        redial_soon(o, p);
}

static void on_change(void *ctx, enum membership_change what, const struct member *now,
                      const struct member *old)
{
    struct overlay *o = ctx;
    if (is_self(o, now->name)) {
        o->self_touched = true;
        return;
    }
    bool was_alive = what == MEMBERSHIP_UPDATED && !old->left;
    if (o->merging_from && !now->left && strcmp(now->name, o->merging_from) == 0)
        o->sender_rejoined = true;
    if (!now->left && !was_alive) {
        member_appeared(o, now);
    } else if (now->left && was_alive) {
        logf_(o, OVERLAY_LOG_INFO, "%s: left", now->name);
        o->env.member_left(o->env.ctx, now);
        o->any_left = true;
    } else if (!now->left) {
        member_moved(o, now, old);
    }
}

static uint64_t wall_ms(const struct overlay *o)
{
    return o->env.wall_ms ? o->env.wall_ms(o->env.ctx) : 0;
}

/* The expiry of a tombstone made now that lives ttl_ms; 0: never. */
static uint64_t expiry_in(const struct overlay *o, uint64_t ttl_ms)
{
    uint64_t w = wall_ms(o);
    return ttl_ms && w ? w + ttl_ms : 0;
}

static void merge_self(struct overlay *o, bool left)
{
    struct member me;
    memset(&me, 0, sizeof me);
    copy_str(me.name, sizeof me.name, o->self_name);
    copy_str(me.address, sizeof me.address, o->self_address);
    me.incarnation = o->self_inc;
    me.left = left;
    me.expires_ms = left ? expiry_in(o, o->cfg.tombstone_ttl_ms) : 0;
    if (membership_merge_one(&o->ms, &me, NULL) > 0)
        o->digest_valid = o->state_wire_valid = false;
}

/* Someone else's word about this node: a `left` at our incarnation is a
 * removal we accept; anything greater than our own entry that still says
 * alive (an old run with a higher incarnation, another address) is refuted
 * by taking a higher incarnation. */
static void check_self(struct overlay *o)
{
    const struct member *me = membership_find(&o->ms, o->self_name);
    if (!me) {
        merge_self(o, false);
        return;
    }
    if (me->left && me->incarnation >= o->self_inc) {
        logf_(o, OVERLAY_LOG_WARN, "removed from the cluster by another member (incarnation %" PRIu64 ")",
              me->incarnation);
        go_quiet(o);
        return;
    }
    if (me->incarnation > o->self_inc || strcmp(me->address, o->self_address) != 0) {
        logf_(o, OVERLAY_LOG_WARN, "refuting %s at incarnation %" PRIu64 " with incarnation %" PRIu64,
              me->address, me->incarnation, me->incarnation + 1);
        o->self_inc = me->incarnation + 1;
        merge_self(o, false);
    }
}

/* Merges entries from `from` (NULL: from a handshake); returns how many
 * changed. Afterwards joined/left events are out, new members are dialled
 * and connections to members that left are closed. */
/* The entries of v that fit under cfg.max_members: every entry for a name
 * already known, and new names only while there is room. A peer (or a
 * forged table) can therefore never make this node hold, gossip and dial
 * more members than the operator allowed. */
static const struct member *within_bound(struct overlay *o, const struct member *v, size_t *n)
{
    size_t max = o->cfg.max_members;
    if (!max || o->ms.n + *n <= max)
        return v;
    if (o->bounded_cap < *n) {
        struct member *b = realloc(o->bounded, *n * sizeof *b);
        if (!b)
            return v;               /* no worse than before; the next merge bounds it */
        o->bounded = b;
        o->bounded_cap = *n;
    }
    size_t k = 0, room = max > o->ms.n ? max - o->ms.n : 0, ignored = 0;
    for (size_t i = 0; i < *n; i++) {
        if (membership_find(&o->ms, v[i].name)) {
            o->bounded[k++] = v[i];
        } else if (room > 0) {
            room--;
            o->bounded[k++] = v[i];
        } else {
            ignored++;
        }
    }
    if (ignored) {
        o->full_ignored += ignored;
        uint64_t now = now_ms(o);
        if (!o->full_warned_at || now - o->full_warned_at >= 60000) {
            logf_(o, OVERLAY_LOG_WARN, "member table full (cluster.max_members is %zu): %" PRIu64
                  " new member(s) ignored", max, o->full_ignored);
            o->full_warned_at = now;
            o->full_ignored = 0;
        }
    }
    *n = k;
    return o->bounded;
}

/* The entries of v that are not tombstones already expired: one of those,
 * from a peer whose clock is behind or from an old state file, would bring
 * back what every other node has dropped. */
static const struct member *without_expired(struct overlay *o, const struct member *v, size_t *n)
{
    uint64_t w = wall_ms(o);
    size_t first = 0;
    while (first < *n && !membership_expired(&v[first], w))
        first++;
    if (!w || first == *n)
        return v;
    if (o->unexpired_cap < *n) {
        struct member *u = realloc(o->unexpired, *n * sizeof *u);
        if (!u)
            return v;               /* merged now, dropped at the next expiry check */
        o->unexpired = u;
        o->unexpired_cap = *n;
    }
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (!membership_expired(&v[i], w))
            o->unexpired[k++] = v[i];
    *n = k;
    return o->unexpired;
}

static int merge_in(struct overlay *o, const struct member *v, size_t n, const char *from)
{
    v = without_expired(o, v, &n);
    v = within_bound(o, v, &n);
    o->merging_from = from;
    o->sender_rejoined = o->self_touched = o->any_left = false;
    int r = membership_merge(&o->ms, v, n, on_change, o);
    o->merging_from = NULL;
    if (r < 0) {
        logf_(o, OVERLAY_LOG_WARN, "out of memory merging %zu members", n);
        return 0;
    }
    if (r == 0)
        return 0;
    o->digest_valid = o->state_wire_valid = false;
    if (o->self_touched)
        check_self(o);
    if (o->any_left)
        drop_left_peers(o);
    dial_due(o);
    return r;
}

/* ---- events in ---- */

static struct overlay *fm_create(const struct overlay_config *cfg, const struct overlay_env *env)
{
    struct overlay *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    if (gossip_codec_init(&o->codec) != 0 || gossip_codec_init(&o->state_codec) != 0) {
        gossip_codec_free(&o->codec);
        free(o);
        return NULL;
    }
    o->codec.max_entries = cfg->max_members * GOSSIP_MEMBERS_SLACK;
    o->env = *env;
    o->cfg = *cfg;
    o->cfg.self_name = o->cfg.self_address = NULL;
    o->cfg.seeds = NULL;
    o->cfg.initial_members = NULL;
    o->dial = (struct dial_policy){ cfg->backoff_initial_ms, cfg->backoff_max_ms };
    dial_policy_normalise(&o->dial);
    o->cfg.backoff_initial_ms = o->dial.backoff_initial_ms;
    o->cfg.backoff_max_ms = o->dial.backoff_max_ms;
    if (o->cfg.gossip_fanout == 0)
        o->cfg.gossip_fanout = 1;
    copy_str(o->self_name, sizeof o->self_name, cfg->self_name);
    copy_str(o->self_address, sizeof o->self_address, cfg->self_address);
    o->self_inc = cfg->self_incarnation;
    membership_init(&o->ms);
    o->deadline = UINT64_MAX;
    merge_self(o, false);
    bool ok = membership_find(&o->ms, o->self_name) != NULL;
    for (size_t i = 0; ok && i < cfg->n_seeds; i++)
        ok = seed_add(o, cfg->seeds[i]) != NULL;
    if (ok && cfg->n_initial_members) {
        o->initial = malloc(cfg->n_initial_members * sizeof *o->initial);
        ok = o->initial != NULL;
        if (ok) {
            memcpy(o->initial, cfg->initial_members, cfg->n_initial_members * sizeof *o->initial);
            o->n_initial = cfg->n_initial_members;
        }
    }
    if (!ok) {
        membership_free(&o->ms);
        gossip_codec_free(&o->codec);
        gossip_codec_free(&o->state_codec);
        dial_seeds_free(&o->seeds);
        free(o);
        return NULL;
    }
    return o;
}

static void fm_destroy(struct overlay *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n_peers; i++)
        free(o->peers[i]);
    free(o->peers);
    free(o->scratch);
    dial_seeds_free(&o->seeds);
    free(o->initial);
    free(o->bounded);
    free(o->unexpired);
    gossip_codec_free(&o->codec);
    gossip_codec_free(&o->state_codec);
    membership_free(&o->ms);
    free(o);
}

static void fm_start(struct overlay *o)
{
    if (o->started)
        return;
    o->started = true;
    uint64_t t = now_ms(o);
    o->next_ping = t + o->cfg.ping_interval_ms;
    /* A random phase keeps nodes started together from gossiping together. */
    o->next_gossip = t + o->env.random(o->env.ctx) % (o->cfg.gossip_interval_ms + 1);
    arm(o, min_u64(o->next_ping, o->next_gossip));
    if (o->n_initial) {
        merge_in(o, o->initial, o->n_initial, NULL);
        free(o->initial);
        o->initial = NULL;
        o->n_initial = 0;
    }
    for (size_t i = 0; i < o->seeds.n; i++)
        o->seeds.v[i].next_dial = t;
    dial_due(o);
    seeds_due(o);
}

static void fm_join(struct overlay *o, const char *address)
{
    if (o->left || !address || !*address)
        return;
    struct dial_seed *s = seed_add(o, address);
    if (!s || s->is_self || s->dialling || !o->started)
        return;
    s->backoff = o->cfg.backoff_initial_ms;
    if (!member_busy_at(o, address))
        seed_dial(o, s);
}

/* Marks a member left (e: its entry, left) and tells everyone, itself
 * included: the connection stays long enough for it to hear. */
static void remove_member(struct overlay *o, const struct member *e)
{
    o->keep_conn = peer_find(o, e->name);
    merge_in(o, e, 1, NULL);
    o->keep_conn = NULL;
    push_state_all(o);
    struct peer *p = peer_find(o, e->name);
    if (p)
        drop_conn(o, p, "removed");
}

static int fm_leave(struct overlay *o, const char *node)
{
    if (o->left)
        return -1;
    if (!node || is_self(o, node)) {
        logf_(o, OVERLAY_LOG_INFO, "leaving the cluster");
        merge_self(o, true);
        push_state_all(o);
        go_quiet(o);
        return 0;
    }
    const struct member *m = membership_find(&o->ms, node);
    if (!m || m->left)
        return -1;
    struct member e = *m;
    e.left = true;
    e.expires_ms = expiry_in(o, o->cfg.tombstone_ttl_ms);
    remove_member(o, &e);
    return 0;
}

uint64_t overlay_forget_grace_ms(const struct overlay_config *cfg)
{
    uint64_t g = (uint64_t)FORGET_GOSSIP_ROUNDS * cfg->gossip_interval_ms;
    return g < FORGET_GRACE_MIN_MS ? FORGET_GRACE_MIN_MS : g;
}

static int fm_forget(struct overlay *o, const char *node)
{
    if (o->left || !node || is_self(o, node))
        return -1;
    const struct member *m = membership_find(&o->ms, node);
    if (!m)
        return -1;
    struct member e = *m;
    bool was_alive = !e.left;
    e.left = true;
    /* Without a wall clock the tombstone could never expire: a forget is
     * then a plain removal. */
    e.expires_ms = expiry_in(o, overlay_forget_grace_ms(&o->cfg));
    logf_(o, OVERLAY_LOG_INFO, "%s: forgotten by the operator; every node drops it within %" PRIu64 " ms",
          node, overlay_forget_grace_ms(&o->cfg));
    if (was_alive) {
        remove_member(o, &e);
    } else {
        merge_in(o, &e, 1, NULL);
        push_state_all(o);
    }
    return 0;
}

static void forgot(void *ctx, const struct member *gone)
{
    struct overlay *o = ctx;
    logf_(o, OVERLAY_LOG_INFO, "%s: tombstone expired; the member is forgotten", gone->name);
    if (o->env.member_forgotten)
        o->env.member_forgotten(o->env.ctx, gone->name);
    bool found;
    size_t i = peer_index(o, gone->name, &found);
    if (found && o->peers[i]->conn == CONN_NONE) {
        free(o->peers[i]);
        memmove(&o->peers[i], &o->peers[i + 1], (o->n_peers - i - 1) * sizeof *o->peers);
        o->n_peers--;
    }
}

/* Drops expired tombstones, once a second at most. */
static void expire_tombstones(struct overlay *o, uint64_t t)
{
    if (t < o->next_expiry_check)
        return;
    o->next_expiry_check = t + 1000;
    uint64_t w = wall_ms(o);
    if (w && membership_expire(&o->ms, w, forgot, o) > 0)
        o->digest_valid = o->state_wire_valid = false;
}

/* A member that was down answers again: the network that cut it off may
 * have healed for the others too, so try them soon instead of at the end of
 * their (by now long) backoffs. Their backoffs are kept. */
static void redial_others(struct overlay *o, const struct peer *back)
{
    uint64_t t = now_ms(o);
    o->last_recovery = t;
    for (size_t i = 0; i < o->n_peers; i++) {
        struct peer *p = o->peers[i];
        if (p == back || p->conn != CONN_NONE || !dial_wanted(o, p))
            continue;
        uint64_t soon = t + jittered(o, o->cfg.backoff_initial_ms);
        if (soon < p->next_dial) {
            p->next_dial = soon;
            arm(o, soon);
        }
    }
}

static void fm_peer_connected(struct overlay *o, const char *node, const char *address,
                              uint64_t incarnation)
{
    if (!o->started || o->left) {
        o->env.disconnect(o->env.ctx, node);
        return;
    }
    struct peer *p = peer_find(o, node);
    if (!p || p->conn != CONN_DIALLING) {
        struct dial_seed *s = dial_seeds_for_connection(&o->seeds, address);
        if (s) {
            s->dialling = false;
            s->backoff = o->cfg.backoff_initial_ms;
            if (is_self(o, node))
                s->is_self = true;
        }
    }
    if (is_self(o, node)) {
        logf_(o, OVERLAY_LOG_WARN, "seed %s is this node; not dialling it again", address);
        return;
    }
    p = peer_get(o, node);
    if (!p)
        return;
    /* Connected before the merge, so that learning of this member from its
     * handshake does not dial it a second time. */
    p->conn = CONN_UP;
    struct member e;
    memset(&e, 0, sizeof e);
    copy_str(e.name, sizeof e.name, node);
    copy_str(e.address, sizeof e.address, address);
    e.incarnation = incarnation;
    merge_in(o, &e, 1, NULL);
    if (o->left)
        return;
    if (!member_alive(o, node)) {
        logf_(o, OVERLAY_LOG_DEBUG, "%s: left; closing its connection", node);
        o->env.disconnect(o->env.ctx, node);
        p->conn = CONN_NONE;
        return;
    }
    p->retrying = false;
    p->backoff = o->cfg.backoff_initial_ms;
    p->last_heard = now_ms(o);
    arm(o, p->last_heard + o->cfg.fd_timeout_ms + 1);
    if (!p->up && p->was_up)
        redial_others(o, p);
    mark_up(o, p);
    send_state(o, node);
}

static void fm_connect_failed(struct overlay *o, const struct peer_addr *peer)
{
    if (!o->started || o->left)
        return;
    if (!peer->node[0]) {
        struct dial_seed *s = dial_seeds_find(&o->seeds, peer->address);
        if (s && s->dialling) {
            seed_failed(o, s);
            dial_due(o);    /* members at its address waited for it */
        }
        return;
    }
    struct peer *p = peer_find(o, peer->node);
    if (!p || p->conn != CONN_DIALLING)
        return;
    p->retrying = false;
    mark_down(o, p, "connect failed");
    schedule_redial(o, p);
}

static void fm_peer_disconnected(struct overlay *o, const char *node)
{
    struct peer *p = peer_find(o, node);
    if (!p || p->conn != CONN_UP)
        return;
    p->conn = CONN_NONE;
    if (o->left || !member_alive(o, node)) {
        mark_down(o, p, "disconnected");
        return;
    }
    /* One redial at once: a connection reset by a transient error should
     * not make applications see a down/up pair. */
    logf_(o, OVERLAY_LOG_DEBUG, "%s: connection lost; redialling", node);
    p->retrying = true;
    dial(o, p, membership_find(&o->ms, node));
}

/* A message from p proves p reaches us, so if we are waiting out a backoff
 * toward it the network has likely healed: dial now. The backoff itself is
 * kept, so a dial that still fails waits as long as before. */
static void heard_from(struct overlay *o, struct peer *p)
{
    p->last_heard = now_ms(o);
    if (p->conn == CONN_NONE && p->next_dial > p->last_heard) {
        p->next_dial = p->last_heard;
        if (should_dial(o, p, p->last_heard))
            dial(o, p, membership_find(&o->ms, p->name));
    }
}

static void receive_state(struct overlay *o, const char *from, const struct gossip_msg *m)
{
    merge_in(o, m->members, m->n_members, from);
    if (o->left || !member_alive(o, from))
        return;
    struct peer *p = peer_find(o, from);
    if (p)
        heard_from(o, p);
    if (o->sender_rejoined) {
        /* Partisan's immediate gossip on join: everyone hears of the new
         * member now, rather than after a few gossip rounds. */
        push_state_all(o);
    } else if (digest(o) != m->digest && p && p->conn == CONN_UP &&
               !(p->sent_state && p->sent_digest == digest(o))) {
        send_state(o, from);
    }
}

static void receive_msg(struct overlay *o, const char *from, const struct gossip_msg *m)
{
    if (!o->started || o->left || is_self(o, from))
        return;
    if (m->type == GOSSIP_STATE) {
        receive_state(o, from, m);
        return;
    }
    if (!member_alive(o, from))
        return;
    struct peer *p = peer_find(o, from);
    if (!p)
        return;
    heard_from(o, p);
    bool can_reply = p->conn == CONN_UP;
    switch (m->type) {
    case GOSSIP_PING:
        if (can_reply)
            send_simple(o, from, GOSSIP_PONG, m->seq);
        break;
    case GOSSIP_DIGEST:
        if (can_reply && m->digest != digest(o))
            send_state(o, from);
        break;
    case GOSSIP_STATE_REQUEST:
        if (can_reply)
            send_state(o, from);
        break;
    default:
        break;
    }
}

static void fm_receive(struct overlay *o, const char *from, const uint8_t *msg, size_t len)
{
    struct gossip_msg m;
    char err[160];
    if (gossip_unpack(&o->codec, msg, len, &m, err, sizeof err) != 0) {
        /* A peer running another overlay, or a broken one: ignored, and
         * said once a minute rather than once a message. */
        o->undecodable++;
        uint64_t t = now_ms(o);
        if (!o->undecodable_warned_at || t - o->undecodable_warned_at >= 60000) {
            logf_(o, OVERLAY_LOG_WARN, "%s from %s ignored (%" PRIu64 " such message(s) in the last minute)",
                  err, from, o->undecodable);
            o->undecodable_warned_at = t;
            o->undecodable = 0;
        }
        return;
    }
    receive_msg(o, from, &m);
}

/* A peer refused our handshake because we were removed: the same as
 * hearing our own entry marked left from it. */
static void fm_removed_by(struct overlay *o, const char *by_node)
{
    if (o->left)
        return;
    const struct member *self = membership_find(&o->ms, o->self_name);
    if (!self)
        return;     /* the core always holds its own entry */
    struct member me = *self;
    me.left = true;
    me.expires_ms = expiry_in(o, o->cfg.tombstone_ttl_ms);
    logf_(o, OVERLAY_LOG_WARN, "node %s says this node was removed from the cluster", by_node);
    struct gossip_msg m = { .type = GOSSIP_STATE, .members = &me, .n_members = 1 };
    receive_msg(o, by_node, &m);
}

/* ---- the clock ---- */

/* A tick far later than asked for means this node was not running (SIGSTOP,
 * swap, a VM pause): its peers' silence is its own, so start over. */
static void detect_stall(struct overlay *o, uint64_t t)
{
    if (o->deadline == UINT64_MAX || t <= o->deadline || t - o->deadline <= o->cfg.fd_timeout_ms / 2)
        return;
    logf_(o, OVERLAY_LOG_WARN, "ran %" PRIu64 " ms late; restarting silence timers", t - o->deadline);
    for (size_t i = 0; i < o->n_peers; i++)
        o->peers[i]->last_heard = t;
}

static void check_silence(struct overlay *o, uint64_t t)
{
    for (size_t i = 0; i < o->n_peers; i++) {
        struct peer *p = o->peers[i];
        if (p->conn != CONN_UP || t - p->last_heard <= o->cfg.fd_timeout_ms)
            continue;
        char why[64];
        snprintf(why, sizeof why, "silent for %" PRIu64 " ms", t - p->last_heard);
        drop_conn(o, p, why);
        schedule_redial(o, p);
    }
}

static void check_dials(struct overlay *o, uint64_t t)
{
    for (size_t i = 0; i < o->n_peers; i++) {
        struct peer *p = o->peers[i];
        if (p->conn == CONN_DIALLING && t - p->dial_started >= dial_timeout(o)) {
            logf_(o, OVERLAY_LOG_WARN, "%s: dial got no answer; retrying", p->name);
            p->retrying = false;
            mark_down(o, p, "dial got no answer");
            schedule_redial(o, p);
        }
    }
    for (size_t i = 0; i < o->seeds.n; i++) {
        struct dial_seed *s = &o->seeds.v[i];
        if (s->dialling && t - s->dial_started >= dial_timeout(o))
            seed_failed(o, s);
    }
}

static void ping_all(struct overlay *o)
{
    o->ping_seq++;
    for (size_t i = 0; i < o->n_peers; i++)
        if (o->peers[i]->conn == CONN_UP)
            send_simple(o, o->peers[i]->name, GOSSIP_PING, o->ping_seq);
}

static void gossip_round(struct overlay *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n_peers; i++)
        if (o->peers[i]->conn == CONN_UP)
            o->scratch[n++] = o->peers[i];
    size_t k = o->cfg.gossip_fanout < n ? o->cfg.gossip_fanout : n;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + o->env.random(o->env.ctx) % (n - i);
        struct peer *tmp = o->scratch[i];
        o->scratch[i] = o->scratch[j];
        o->scratch[j] = tmp;
        send_simple(o, o->scratch[i]->name, GOSSIP_DIGEST, 0);
    }
}

static uint64_t after(uint64_t due, uint32_t interval, uint64_t t)
{
    due += interval;
    return due <= t ? t + interval : due;
}

static uint64_t compute_deadline(const struct overlay *o)
{
    uint64_t d = min_u64(o->next_ping, o->next_gossip);
    for (size_t i = 0; i < o->n_peers; i++) {
        const struct peer *p = o->peers[i];
        if (p->conn == CONN_UP)
            d = min_u64(d, p->last_heard + o->cfg.fd_timeout_ms + 1);
        else if (p->conn == CONN_DIALLING)
            d = min_u64(d, p->dial_started + dial_timeout(o));
        else if (dial_wanted(o, p))
            d = min_u64(d, p->next_dial);
    }
    bool lonely = alone(o);
    for (size_t i = 0; i < o->seeds.n; i++) {
        const struct dial_seed *s = &o->seeds.v[i];
        if (s->dialling)
            d = min_u64(d, s->dial_started + dial_timeout(o));
        else if (lonely && !s->is_self && !member_busy_at(o, s->address))
            d = min_u64(d, s->next_dial);
    }
    return d;
}

static void fm_tick(struct overlay *o, uint64_t now)
{
    if (!o->started || o->left) {
        o->deadline = UINT64_MAX;
        return;
    }
    uint64_t t = now;
    detect_stall(o, t);
    expire_tombstones(o, t);
    check_silence(o, t);
    check_dials(o, t);
    if (t >= o->next_ping) {
        ping_all(o);
        o->next_ping = after(o->next_ping, o->cfg.ping_interval_ms, t);
    }
    if (t >= o->next_gossip) {
        gossip_round(o);
        o->next_gossip = after(o->next_gossip, o->cfg.gossip_interval_ms, t);
    }
    dial_due(o);
    seeds_due(o);
    o->deadline = compute_deadline(o);
    /* A timer already due (a redial that seeds_due skipped, say) must not
     * make the driver spin. */
    if (o->deadline <= t)
        o->deadline = t + 1;
}

static uint64_t fm_next_deadline(const struct overlay *o)
{
    return o->deadline;
}

/* ---- queries ---- */

static const struct membership *fm_members(const struct overlay *o)
{
    return &o->ms;
}

static bool fm_is_up(const struct overlay *o, const char *node)
{
    if (is_self(o, node))
        return true;
    const struct peer *p = peer_find(o, node);
    return p && p->up;
}

static const char *fm_next_hop(const struct overlay *o, const char *dest)
{
    if (is_self(o, dest))
        return o->self_name;
    const struct peer *p = peer_find(o, dest);
    return p && p->up ? p->name : NULL;
}

static bool fm_has_left(const struct overlay *o)
{
    return o->left;
}

const struct overlay_ops overlay_full_mesh_ops = {
    .name = "full_mesh",
    .create = fm_create,
    .destroy = fm_destroy,
    .start = fm_start,
    .join = fm_join,
    .leave = fm_leave,
    .peer_connected = fm_peer_connected,
    .connect_failed = fm_connect_failed,
    .peer_disconnected = fm_peer_disconnected,
    .receive = fm_receive,
    .removed_by = fm_removed_by,
    .tick = fm_tick,
    .next_deadline = fm_next_deadline,
    .members = fm_members,
    .is_up = fm_is_up,
    .next_hop = fm_next_hop,
    .has_left = fm_has_left,
    .forget = fm_forget,
};
