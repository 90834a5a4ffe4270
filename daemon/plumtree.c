/* plumtree: epidemic broadcast trees (see plumtree.h). */
#include "plumtree.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define EQ_MAX 256          /* queued announcements per neighbour before a forced flush */
#define LQ_MAX 1024         /* queued ids per neighbour before a forced flush */
#define MISSING_MAX 1024    /* ids announced but not received */
#define MISSING_SRC 4       /* announcers remembered per missing id */
#define GOSSIP_MAX 4096     /* broadcasts accepted in one message */
#define IDS_IN_MAX 8192     /* ids accepted in one IHAVE or GRAFT */

/* A broadcast as kept: one allocation, its strings after the struct. */
struct pt_msg {
    unsigned refs;
    uint64_t h;
    uint32_t round;         /* hops from the origin here */
    HvBroadcast b;
    HvBroadcastId id;       /* id.round: the round a copy sent from here carries */
    HvMember m;
    char data[];
};

struct pt_peer {
    char *name;
    uint64_t nh;
    bool eager;
    struct pt_msg **eq;     /* announcements waiting for the eager flush */
    size_t eq_n, eq_cap;
    struct pt_msg **lq;     /* ids waiting for the lazy flush */
    size_t lq_n, lq_cap;
};

struct pt_slot {
    uint64_t h, t;
    struct pt_msg *msg;     /* NULL once the payload left the store */
};

struct pt_index {
    uint64_t h, pos;        /* h 0: empty */
};

struct pt_missing {
    uint64_t h;
    char *origin;
    uint64_t inc, seq;
    uint32_t round;
    uint64_t src[MISSING_SRC];
    size_t n_src;
    uint64_t deadline;
};

struct plumtree {
    struct plumtree_env env;
    size_t ids_max, store_max;
    uint64_t ids_ttl, store_ttl;

    struct pt_peer *peers;
    size_t n_peers, peers_cap;

    /* The id cache: a FIFO ring of absolute positions [head, tail). */
    struct pt_slot *ring;
    size_t ring_cap;        /* power of two */
    uint64_t head, tail, store_from;
    size_t n_stored;
    struct pt_index *idx;
    size_t idx_cap;         /* power of two, 2 * ring_cap */

    struct pt_missing *missing;
    size_t n_missing, missing_cap;

    uint64_t eager_at, lazy_at;   /* flush deadlines; UINT64_MAX: nothing queued */
    struct plumtree_stats st;
};

uint64_t plumtree_id(const char *origin, uint64_t incarnation, uint64_t seq)
{
    uint64_t h = hash_str(origin);
    h = hash_bytes_from(h, "\0", 1);
    h = hash_bytes_from(h, &incarnation, sizeof incarnation);
    h = hash_bytes_from(h, &seq, sizeof seq);
    return h ? h : 1;
}

static uint64_t id_of(const HvBroadcastId *id)
{
    return plumtree_id(id->origin ? id->origin : "", id->incarnation, id->seq);
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- messages ---- */

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

static struct pt_msg *msg_copy(const HvBroadcast *in, uint64_t h, uint32_t round)
{
    const HvBroadcastId *id = in->id;
    const char *origin = str_or_empty(id->origin), *name = str_or_empty(in->name);
    const char *mn = in->member ? str_or_empty(in->member->name) : "";
    const char *ma = in->member ? str_or_empty(in->member->address) : "";
    size_t lo = strlen(origin) + 1, ln = strlen(name) + 1, lmn = strlen(mn) + 1, lma = strlen(ma) + 1;
    size_t lp = in->payload.len;
    struct pt_msg *m = malloc(sizeof *m + lo + ln + lmn + lma + lp);
    if (!m)
        return NULL;
    m->refs = 1;
    m->h = h;
    m->round = round;
    hv_broadcast__init(&m->b);
    hv_broadcast_id__init(&m->id);
    hv_member__init(&m->m);
    char *p = m->data;
    m->id.origin = memcpy(p, origin, lo), p += lo;
    m->id.incarnation = id->incarnation;
    m->id.seq = id->seq;
    m->id.round = round + 1;
    m->b.id = &m->id;
    m->b.name = memcpy(p, name, ln), p += ln;
    if (in->member) {
        m->m.name = memcpy(p, mn, lmn), p += lmn;
        m->m.address = memcpy(p, ma, lma), p += lma;
        m->m.incarnation = in->member->incarnation;
        m->m.left = in->member->left;
        m->m.expires_ms = in->member->expires_ms;
        m->b.member = &m->m;
    }
    if (lp) {
        memcpy(p, in->payload.data, lp);
        m->b.payload.data = (uint8_t *)p;
        m->b.payload.len = lp;
    }
    return m;
}

static void msg_unref(struct pt_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

/* ---- the id cache and payload store ---- */

static struct pt_index *idx_slot(const struct plumtree *t, uint64_t h)
{
    size_t mask = t->idx_cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask)
        if (t->idx[i].h == h || t->idx[i].h == 0)
            return &t->idx[i];
}

static void idx_delete(struct plumtree *t, uint64_t h)
{
    size_t mask = t->idx_cap - 1;
    size_t i = (size_t)h & mask;
    while (t->idx[i].h != h) {
        if (t->idx[i].h == 0)
            return;
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion keeps every probe chain unbroken. */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (t->idx[j].h == 0)
            break;
        size_t home = (size_t)t->idx[j].h & mask;
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            t->idx[i] = t->idx[j];
            i = j;
        }
    }
    t->idx[i].h = 0;
}

static struct pt_slot *slot_at(const struct plumtree *t, uint64_t pos)
{
    return &t->ring[pos & (t->ring_cap - 1)];
}

static struct pt_slot *cache_find(const struct plumtree *t, uint64_t h)
{
    if (!t->idx_cap)
        return NULL;
    const struct pt_index *e = idx_slot(t, h);
    return e->h == h ? slot_at(t, e->pos) : NULL;
}

static void evict_oldest(struct plumtree *t)
{
    struct pt_slot *s = slot_at(t, t->head);
    idx_delete(t, s->h);
    if (s->msg) {
        msg_unref(s->msg);
        t->n_stored--;
    }
    s->msg = NULL;
    t->head++;
    if (t->store_from < t->head)
        t->store_from = t->head;
}

static int ring_grow(struct plumtree *t)
{
    size_t cap = t->ring_cap ? t->ring_cap * 2 : 64;
    struct pt_slot *r = calloc(cap, sizeof *r);
    struct pt_index *ix = calloc(cap * 2, sizeof *ix);
    if (!r || !ix) {
        free(r);
        free(ix);
        return -1;
    }
    for (uint64_t p = t->head; p < t->tail; p++)
        r[p & (cap - 1)] = *slot_at(t, p);
    free(t->ring);
    free(t->idx);
    t->ring = r;
    t->ring_cap = cap;
    t->idx = ix;
    t->idx_cap = cap * 2;
    for (uint64_t p = t->head; p < t->tail; p++) {
        struct pt_index *e = idx_slot(t, slot_at(t, p)->h);
        e->h = slot_at(t, p)->h;
        e->pos = p;
    }
    return 0;
}

/* Ages out ids and payloads. */
static void cache_expire(struct plumtree *t, uint64_t now)
{
    while (t->head < t->tail && slot_at(t, t->head)->t + t->ids_ttl <= now)
        evict_oldest(t);
    while (t->store_from < t->tail && (t->n_stored > t->store_max ||
                                       slot_at(t, t->store_from)->t + t->store_ttl <= now)) {
        struct pt_slot *s = slot_at(t, t->store_from);
        if (s->msg) {
            msg_unref(s->msg);
            s->msg = NULL;
            t->n_stored--;
        }
        t->store_from++;
    }
}

/* Records h (and msg, referenced, if not NULL). Returns -1 on no memory. */
static int cache_add(struct plumtree *t, uint64_t h, struct pt_msg *msg, uint64_t now)
{
    if (t->tail - t->head == t->ring_cap) {
        if (t->ring_cap >= t->ids_max || ring_grow(t) != 0) {
            if (!t->ring_cap)
                return -1;
            evict_oldest(t);
        }
    }
    struct pt_slot *s = slot_at(t, t->tail);
    s->h = h;
    s->t = now;
    s->msg = msg;
    if (msg) {
        msg->refs++;
        t->n_stored++;
    }
    struct pt_index *e = idx_slot(t, h);
    e->h = h;
    e->pos = t->tail;
    t->tail++;
    cache_expire(t, now);
    return 0;
}

/* ---- peers ---- */

static struct pt_peer *peer_find(const struct plumtree *t, const char *name)
{
    uint64_t nh = hash_str(name);
    for (size_t i = 0; i < t->n_peers; i++)
        if (t->peers[i].nh == nh && strcmp(t->peers[i].name, name) == 0)
            return &t->peers[i];
    return NULL;
}

static struct pt_peer *peer_by_hash(const struct plumtree *t, uint64_t nh)
{
    for (size_t i = 0; i < t->n_peers; i++)
        if (t->peers[i].nh == nh)
            return &t->peers[i];
    return NULL;
}

static void send_gossip(struct plumtree *t, struct pt_peer *p, struct pt_msg **v, size_t n)
{
    if (!n)
        return;
    HvBroadcast *stackv[64];
    HvBroadcast **bs = n <= 64 ? stackv : malloc(n * sizeof *bs);
    if (!bs)
        return;
    for (size_t i = 0; i < n; i++)
        bs[i] = &v[i]->b;
    HvMessage m = HV_MESSAGE__INIT;
    m.type = HV_TYPE__HV_GOSSIP;
    m.n_broadcasts = n;
    m.broadcasts = bs;
    t->env.send(t->env.ctx, p->name, &m);
    if (bs != stackv)
        free(bs);
}

static void send_ids(struct plumtree *t, const char *peer, HvType type, HvBroadcastId **ids, size_t n)
{
    HvMessage m = HV_MESSAGE__INIT;
    m.type = type;
    m.n_ids = n;
    m.ids = ids;
    t->env.send(t->env.ctx, peer, &m);
}

static void flush_eager(struct plumtree *t, struct pt_peer *p)
{
    send_gossip(t, p, p->eq, p->eq_n);
    for (size_t i = 0; i < p->eq_n; i++)
        msg_unref(p->eq[i]);
    p->eq_n = 0;
}

static void flush_lazy(struct plumtree *t, struct pt_peer *p)
{
    if (!p->lq_n)
        return;
    HvBroadcastId **ids = malloc(p->lq_n * sizeof *ids);
    if (ids) {
        for (size_t i = 0; i < p->lq_n; i++)
            ids[i] = &p->lq[i]->id;
        send_ids(t, p->name, HV_TYPE__HV_IHAVE, ids, p->lq_n);
        free(ids);
    }
    for (size_t i = 0; i < p->lq_n; i++)
        msg_unref(p->lq[i]);
    p->lq_n = 0;
}

static void peer_clear(struct pt_peer *p)
{
    for (size_t i = 0; i < p->eq_n; i++)
        msg_unref(p->eq[i]);
    for (size_t i = 0; i < p->lq_n; i++)
        msg_unref(p->lq[i]);
    free(p->eq);
    free(p->lq);
    free(p->name);
}

static int push_ref(struct pt_msg ***v, size_t *n, size_t *cap, struct pt_msg *m)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        struct pt_msg **nv = realloc(*v, c * sizeof *nv);
        if (!nv)
            return -1;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = m;
    m->refs++;
    return 0;
}

void plumtree_neighbor_up(struct plumtree *t, const char *peer, uint64_t now_ms)
{
    if (peer_find(t, peer))
        return;
    if (t->n_peers == t->peers_cap) {
        size_t c = t->peers_cap ? t->peers_cap * 2 : 8;
        struct pt_peer *nv = realloc(t->peers, c * sizeof *nv);
        if (!nv)
            return;
        t->peers = nv;
        t->peers_cap = c;
    }
    struct pt_peer *p = &t->peers[t->n_peers];
    memset(p, 0, sizeof *p);
    p->name = strdup(peer);
    if (!p->name)
        return;
    p->nh = hash_str(peer);
    p->eager = true;   /* every new link starts eager; duplicates prune it */
    t->n_peers++;
    /* A link made while a broadcast was passing would never see it (the
     * tree had pushed it, and announced it lazily, before): offer the new
     * neighbour the ids of the application broadcasts still in the store,
     * and it GRAFTs what it lacks. Announcements come again anyway. */
    for (uint64_t pos = t->store_from; pos < t->tail; pos++) {
        struct pt_slot *s = slot_at(t, pos);
        if (s->msg && !s->msg->b.member && s->t + t->store_ttl > now_ms &&
            push_ref(&p->lq, &p->lq_n, &p->lq_cap, s->msg) == 0)
            t->lazy_at = min64(t->lazy_at, now_ms + PLUMTREE_LAZY_MS);
    }
}

void plumtree_neighbor_down(struct plumtree *t, const char *peer)
{
    struct pt_peer *p = peer_find(t, peer);
    if (!p)
        return;
    uint64_t nh = p->nh;
    peer_clear(p);
    *p = t->peers[--t->n_peers];
    for (size_t i = 0; i < t->n_missing; i++) {
        struct pt_missing *m = &t->missing[i];
        for (size_t k = 0; k < m->n_src; k++)
            if (m->src[k] == nh) {
                memmove(&m->src[k], &m->src[k + 1], (m->n_src - k - 1) * sizeof m->src[0]);
                m->n_src--;
                break;
            }
    }
}

bool plumtree_is_eager(const struct plumtree *t, const char *peer)
{
    const struct pt_peer *p = peer_find(t, peer);
    return p && p->eager;
}

/* ---- missing ids ---- */

static struct pt_missing *missing_find(struct plumtree *t, uint64_t h)
{
    for (size_t i = 0; i < t->n_missing; i++)
        if (t->missing[i].h == h)
            return &t->missing[i];
    return NULL;
}

static void missing_drop(struct plumtree *t, size_t i)
{
    free(t->missing[i].origin);
    t->missing[i] = t->missing[--t->n_missing];
}

static void missing_note(struct plumtree *t, uint64_t h, const HvBroadcastId *id, uint64_t src, uint64_t now)
{
    struct pt_missing *m = missing_find(t, h);
    if (!m) {
        if (t->n_missing == MISSING_MAX) {
            /* The oldest deadline is the oldest announcement: it goes. */
            size_t old = 0;
            for (size_t i = 1; i < t->n_missing; i++)
                if (t->missing[i].deadline < t->missing[old].deadline)
                    old = i;
            missing_drop(t, old);
        }
        if (t->n_missing == t->missing_cap) {
            size_t c = t->missing_cap ? t->missing_cap * 2 : 8;
            struct pt_missing *nv = realloc(t->missing, c * sizeof *nv);
            if (!nv)
                return;
            t->missing = nv;
            t->missing_cap = c;
        }
        char *o = strdup(str_or_empty(id->origin));
        if (!o)
            return;
        m = &t->missing[t->n_missing++];
        memset(m, 0, sizeof *m);
        m->h = h;
        m->origin = o;
        m->inc = id->incarnation;
        m->seq = id->seq;
        m->round = id->round;
        m->deadline = now + PLUMTREE_GRAFT_MS;
    }
    for (size_t k = 0; k < m->n_src; k++)
        if (m->src[k] == src)
            return;
    if (m->n_src < MISSING_SRC)
        m->src[m->n_src++] = src;
}

/* ---- pushing ---- */

/* Pushes m to every neighbour but the one it came from. */
static void push(struct plumtree *t, struct pt_msg *m, uint64_t from_nh, bool urgent, uint64_t now)
{
    for (size_t i = 0; i < t->n_peers; i++) {
        struct pt_peer *p = &t->peers[i];
        if (p->nh == from_nh)
            continue;
        if (p->eager) {
            if (urgent) {
                struct pt_msg *one[1] = { m };
                send_gossip(t, p, one, 1);
                continue;
            }
            if (push_ref(&p->eq, &p->eq_n, &p->eq_cap, m) != 0)
                continue;
            if (p->eq_n >= EQ_MAX)
                flush_eager(t, p);
            else
                t->eager_at = min64(t->eager_at, now + PLUMTREE_EAGER_MS);
        } else {
            if (push_ref(&p->lq, &p->lq_n, &p->lq_cap, m) != 0)
                continue;
            if (p->lq_n >= LQ_MAX)
                flush_lazy(t, p);
            else
                t->lazy_at = min64(t->lazy_at, now + PLUMTREE_LAZY_MS);
        }
    }
}

int plumtree_broadcast(struct plumtree *t, const HvBroadcast *b, bool urgent, uint64_t now_ms)
{
    if (!b->id)
        return -1;
    uint64_t h = id_of(b->id);
    if (cache_find(t, h))
        return -1;
    struct pt_msg *m = msg_copy(b, h, 0);
    if (!m)
        return -1;
    if (cache_add(t, h, m, now_ms) != 0) {
        msg_unref(m);
        return -1;
    }
    t->st.delivered++;
    t->env.deliver(t->env.ctx, NULL, &m->b, 0);
    push(t, m, 0, urgent, now_ms);
    msg_unref(m);
    return 0;
}

static void prune(struct plumtree *t, struct pt_peer *p)
{
    if (!p->eager)
        return;
    p->eager = false;
    t->st.prunes++;
    HvMessage m = HV_MESSAGE__INIT;
    m.type = HV_TYPE__HV_PRUNE;
    t->env.send(t->env.ctx, p->name, &m);
}

static bool valid_id(const HvBroadcastId *id)
{
    return id && id->origin && id->origin[0];
}

static void on_gossip(struct plumtree *t, struct pt_peer *p, const char *from, const HvMessage *in, uint64_t now)
{
    if (in->n_broadcasts > GOSSIP_MAX)
        return;
    bool dup = false, news_any = false;
    for (size_t i = 0; i < in->n_broadcasts; i++) {
        const HvBroadcast *b = in->broadcasts[i];
        if (!b || !valid_id(b->id))
            continue;
        t->st.gossip_received++;
        uint64_t h = id_of(b->id);
        struct pt_slot *known = cache_find(t, h);
        if (known) {
            t->st.duplicates++;
            dup = true;
            if (t->env.seen)
                t->env.seen(t->env.ctx, from, b->id);
            continue;
        }
        uint32_t round = b->id->round;
        struct pt_msg *m = msg_copy(b, h, round);
        if (!m)
            continue;
        bool news = t->env.deliver(t->env.ctx, from, &m->b, round);
        /* A stale announcement is remembered as seen, without its payload:
         * serving it to a GRAFT would only spread old news. */
        cache_add(t, h, news ? m : NULL, now);
        struct pt_missing *mi = missing_find(t, h);
        if (mi)
            missing_drop(t, (size_t)(mi - t->missing));
        if (!news) {
            t->st.duplicates++;
            dup = true;
            msg_unref(m);
            continue;
        }
        t->st.delivered++;
        news_any = true;
        /* Paper: a payload makes its sender eager (it may have been lazy,
         * answering our GRAFT). */
        p->eager = true;
        push(t, m, p->nh, m->b.member == NULL, now);
        msg_unref(m);
    }
    /* Only an all-duplicate message prunes: a batch that also carried news
     * came along a tree edge that some origin needs. */
    if (dup && !news_any)
        prune(t, p);
}

static void on_ihave(struct plumtree *t, struct pt_peer *p, const char *from, const HvMessage *in, uint64_t now)
{
    if (in->n_ids > IDS_IN_MAX)
        return;
    for (size_t i = 0; i < in->n_ids; i++) {
        const HvBroadcastId *id = in->ids[i];
        if (!valid_id(id))
            continue;
        t->st.ihave_ids++;
        uint64_t h = id_of(id);
        struct pt_slot *known = cache_find(t, h);
        if (known) {
            /* Every other source: the owner keeps a few as second ways. */
            if (t->env.seen)
                t->env.seen(t->env.ctx, from, id);
            continue;
        }
        missing_note(t, h, id, p->nh, now);
    }
}

static void on_graft(struct plumtree *t, struct pt_peer *p, const HvMessage *in)
{
    if (in->n_ids > IDS_IN_MAX)
        return;
    p->eager = true;
    struct pt_msg *v[64];
    size_t n = 0;
    for (size_t i = 0; i < in->n_ids; i++) {
        if (!valid_id(in->ids[i]))
            continue;
        const struct pt_slot *s = cache_find(t, id_of(in->ids[i]));
        if (!s || !s->msg)
            continue;
        v[n++] = s->msg;
        if (n == 64) {
            send_gossip(t, p, v, n);
            n = 0;
        }
    }
    send_gossip(t, p, v, n);
}

void plumtree_receive(struct plumtree *t, const char *from, const HvMessage *m, uint64_t now_ms)
{
    struct pt_peer *p = peer_find(t, from);
    if (!p)
        return;     /* not (or no longer) a neighbour: its tree role is void */
    switch (m->type) {
    case HV_TYPE__HV_GOSSIP: on_gossip(t, p, from, m, now_ms); break;
    case HV_TYPE__HV_IHAVE: on_ihave(t, p, from, m, now_ms); break;
    case HV_TYPE__HV_GRAFT: on_graft(t, p, m); break;
    case HV_TYPE__HV_PRUNE: p->eager = false; break;
    default: break;
    }
}

static void graft_due(struct plumtree *t, uint64_t now)
{
    for (size_t i = 0; i < t->n_missing;) {
        struct pt_missing *m = &t->missing[i];
        if (m->deadline > now) {
            i++;
            continue;
        }
        struct pt_peer *p = NULL;
        while (m->n_src && !p) {
            p = peer_by_hash(t, m->src[0]);
            memmove(&m->src[0], &m->src[1], (m->n_src - 1) * sizeof m->src[0]);
            m->n_src--;
        }
        if (!p) {
            missing_drop(t, i);
            continue;
        }
        p->eager = true;
        t->st.grafts++;
        HvBroadcastId id = HV_BROADCAST_ID__INIT;
        id.origin = m->origin;
        id.incarnation = m->inc;
        id.seq = m->seq;
        id.round = m->round;
        HvBroadcastId *ids[1] = { &id };
        send_ids(t, p->name, HV_TYPE__HV_GRAFT, ids, 1);
        m->deadline = now + PLUMTREE_GRAFT2_MS;
        i++;
    }
}

void plumtree_tick(struct plumtree *t, uint64_t now_ms)
{
    if (t->eager_at <= now_ms) {
        t->eager_at = UINT64_MAX;
        for (size_t i = 0; i < t->n_peers; i++)
            flush_eager(t, &t->peers[i]);
    }
    if (t->lazy_at <= now_ms) {
        t->lazy_at = UINT64_MAX;
        for (size_t i = 0; i < t->n_peers; i++)
            flush_lazy(t, &t->peers[i]);
    }
    graft_due(t, now_ms);
    cache_expire(t, now_ms);
}

void plumtree_flush(struct plumtree *t, uint64_t now_ms)
{
    t->eager_at = t->lazy_at = 0;
    plumtree_tick(t, now_ms);
}

uint64_t plumtree_next_deadline(const struct plumtree *t)
{
    uint64_t d = min64(t->eager_at, t->lazy_at);
    for (size_t i = 0; i < t->n_missing; i++)
        d = min64(d, t->missing[i].deadline);
    if (t->head < t->tail)
        d = min64(d, slot_at(t, t->head)->t + t->ids_ttl);
    return d;
}

void plumtree_get_stats(const struct plumtree *t, struct plumtree_stats *out)
{
    *out = t->st;
}

struct plumtree *plumtree_new(const struct plumtree_env *env, const struct plumtree_params *p)
{
    struct plumtree *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->env = *env;
    t->ids_max = p && p->ids_max ? p->ids_max : 65536;
    t->ids_ttl = p && p->ids_ttl_ms ? p->ids_ttl_ms : 15000;
    t->store_max = p && p->store_max ? p->store_max : 1024;
    t->store_ttl = p && p->store_ttl_ms ? p->store_ttl_ms : 5000;
    t->eager_at = t->lazy_at = UINT64_MAX;
    return t;
}

void plumtree_free(struct plumtree *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_peers; i++)
        peer_clear(&t->peers[i]);
    free(t->peers);
    while (t->head < t->tail)
        evict_oldest(t);
    free(t->ring);
    free(t->idx);
    for (size_t i = 0; i < t->n_missing; i++)
        free(t->missing[i].origin);
    free(t->missing);
    free(t);
}
