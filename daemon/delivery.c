/* delivery: reliable channels (see delivery.h for the contract). */
#include "delivery.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define NO_TIME UINT64_MAX
#define V_PENDING ((signed char)-1)

/* A message with its bytes, one allocation: the sender keeps it until its
 * verdict, the receiver while it waits for its turn. */
struct stored {
    struct delivery_msg msg;
    size_t bytes;                  /* payload length, what the byte window counts */
    unsigned char buf[];
};

struct entry {
    uint64_t msg_id, seq;
    uint64_t dest_epoch;           /* 0: never transmitted */
    uint64_t last_sent, next_at;
    uint32_t tries;                /* transmissions in all (Karn: RTT only from tries == 1) */
    uint32_t backoff;              /* retransmissions since the last reset */
    bool sacked;
    uint64_t meta_epoch;           /* only ever for this destination epoch; 0 any */
    struct stored *m;
};

struct peer {
    struct peer *next;             /* hash chain */
    uint64_t epoch;                /* pinned destination epoch; 0 unknown */
    bool up;
    char name[];
};

struct sender {
    uint64_t next_seq, acked;      /* outstanding: (acked, next_seq) */
    struct entry **ring;           /* window slots, index seq % window; NULL while empty */
    uint32_t count;
    uint64_t bytes;
    bool was_full;
    bool have_rtt;
    uint64_t srtt8, rttvar4;       /* RFC 6298, fixed point (ms x 8, ms x 4) */
    uint64_t deadline;             /* earliest next_at of an entry that may need sending */
    uint64_t probe_at;             /* destination epoch unknown: next probe */
    uint32_t probe_backoff;
};

struct receiver {
    uint64_t origin_epoch;
    uint64_t handed;               /* every seq <= handed went to env->deliver */
    uint64_t cum;                  /* every seq <= cum has a verdict */
    uint64_t sender_acked;         /* the most the origin said it has verdicts for */
    signed char verdicts[DELIVERY_WINDOW_MAX];   /* (handed - MAX, handed], index seq % MAX */
    struct stored **held;          /* (handed, handed + MAX], index seq % MAX; NULL while empty */
    uint32_t n_held;
    uint32_t unacked;              /* verdicts since the last ack */
    uint32_t reacks;               /* acks repeated for the same gap (backoff) */
    uint64_t ack_due, retry_at;
    bool ack_now;
};

struct link {
    struct link *next;             /* hash chain */
    struct peer *peer;
    char *channel;
    struct sender *s;
    struct receiver *r;
    bool dirty;                    /* in d->dirty: an ack must go before the call returns */
};

struct failed {                    /* a verdict decided while the tables change, reported after */
    char *dest, *channel;
    uint64_t msg_id;
    int verdict;
};

struct delivery {
    struct delivery_env env;
    uint64_t epoch;
    uint32_t window;
    uint64_t window_bytes;
    bool local_left;
    struct delivery_stats st;

    struct link **links; size_t nlinks, cap_links;    /* chained hash on (node, channel) */
    struct peer **peers; size_t npeers, cap_peers;

    int depth;                     /* nesting of public calls; acks flush at 0 */
    struct link **dirty; size_t ndirty, cap_dirty;
    struct delivery_exception exc[DELIVERY_WINDOW_MAX];
};

const char *delivery_verdict_name(int v)
{
    switch (v) {
    case DELIVERY_V_DELIVERED: return "delivered";
    case DELIVERY_V_NO_SUCH_NAME: return "no such name";
    case DELIVERY_V_TOO_LARGE: return "too large";
    case DELIVERY_V_NODE_LEFT: return "node left";
    case DELIVERY_V_PEER_RESTARTED: return "peer restarted (unknown whether delivered)";
    default: return "unknown verdict";
    }
}

/* ---- tables ---- */

static uint64_t link_hash(const char *node, const char *channel)
{
    uint64_t h = hash_str(node);
    h = hash_bytes_from(h, "", 1);  /* a separator, so ("ab","c") != ("a","bc") */
    return hash_bytes_from(h, channel, strlen(channel));
}

static bool grow(void ***tab, size_t *cap, size_t n, uint64_t (*h)(const void *))
{
    if (n * 2 < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 64;
    void **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return false;
    for (size_t i = 0; i < *cap; i++) {
        void *e = (*tab)[i];
        while (e) {
            void *next = *(void **)e;   /* `next` is the first member of link and peer */
            size_t b = h(e) & (ncap - 1);
            *(void **)e = nt[b];
            nt[b] = e;
            e = next;
        }
    }
    free(*tab);
    *tab = nt;
    *cap = ncap;
    return true;
}

static uint64_t peer_h(const void *p) { return hash_str(((const struct peer *)p)->name); }
static uint64_t link_h(const void *p)
{
    const struct link *l = p;
    return link_hash(l->peer->name, l->channel);
}

static struct peer *peer_find(const struct delivery *d, const char *node)
{
    if (!d->cap_peers)
        return NULL;
    for (struct peer *p = d->peers[hash_str(node) & (d->cap_peers - 1)]; p; p = p->next)
        if (strcmp(p->name, node) == 0)
            return p;
    return NULL;
}

static struct peer *peer_get(struct delivery *d, const char *node)
{
    struct peer *p = peer_find(d, node);
    if (p)
        return p;
    if (!grow((void ***)&d->peers, &d->cap_peers, d->npeers + 1, peer_h))
        return NULL;
    size_t len = strlen(node);
    p = calloc(1, sizeof *p + len + 1);
    if (!p)
        return NULL;
    memcpy(p->name, node, len + 1);
    size_t b = hash_str(node) & (d->cap_peers - 1);
    p->next = d->peers[b];
    d->peers[b] = p;
    d->npeers++;
    return p;
}

static struct link *link_find(const struct delivery *d, const char *node, const char *channel)
{
    if (!d->cap_links)
        return NULL;
    for (struct link *l = d->links[link_hash(node, channel) & (d->cap_links - 1)]; l; l = l->next)
        if (strcmp(l->peer->name, node) == 0 && strcmp(l->channel, channel) == 0)
            return l;
    return NULL;
}

static struct link *link_get(struct delivery *d, const char *node, const char *channel)
{
    struct link *l = link_find(d, node, channel);
    if (l)
        return l;
    struct peer *p = peer_get(d, node);
    if (!p || !grow((void ***)&d->links, &d->cap_links, d->nlinks + 1, link_h))
        return NULL;
    l = calloc(1, sizeof *l);
    if (!l || !(l->channel = strdup(channel))) {
        free(l);
        return NULL;
    }
    l->peer = p;
    size_t b = link_hash(node, channel) & (d->cap_links - 1);
    l->next = d->links[b];
    d->links[b] = l;
    d->nlinks++;
    return l;
}

static struct sender *sender_of(struct link *l)
{
    if (!l->s && (l->s = calloc(1, sizeof *l->s))) {
        l->s->next_seq = 1;
        l->s->deadline = NO_TIME;
        l->s->probe_at = 0;
    }
    return l->s;
}

static struct receiver *receiver_of(struct link *l)
{
    if (!l->r && (l->r = calloc(1, sizeof *l->r))) {
        l->r->ack_due = NO_TIME;
        l->r->retry_at = NO_TIME;
    }
    return l->r;
}

static void receiver_reset(struct receiver *r, struct delivery_stats *st)
{
    if (r->held) {
        for (size_t i = 0; i < DELIVERY_WINDOW_MAX; i++)
            if (r->held[i]) {
                free(r->held[i]);
                st->dropped_on_restart++;
            }
        free(r->held);
    }
    uint64_t e = r->origin_epoch;
    memset(r, 0, sizeof *r);
    r->origin_epoch = e;
    r->ack_due = NO_TIME;
    r->retry_at = NO_TIME;
}

static void link_free(struct delivery *d, struct link *l)
{
    if (l->s) {
        if (l->s->ring) {
            for (size_t i = 0; i < d->window; i++)
                if (l->s->ring[i]) {
                    free(l->s->ring[i]->m);
                    free(l->s->ring[i]);
                }
            free(l->s->ring);
        }
        free(l->s);
    }
    if (l->r) {
        struct delivery_stats ignore;
        receiver_reset(l->r, &ignore);
        free(l->r);
    }
    for (size_t i = 0; i < d->ndirty; i++)
        if (d->dirty[i] == l)
            d->dirty[i] = NULL;
    free(l->channel);
    free(l);
}

static struct stored *store(const struct delivery_msg *m)
{
    size_t nlen = strlen(m->name ? m->name : "");
    size_t total = nlen + 1 + m->key_len + m->meta_len + m->len;
    struct stored *s = malloc(sizeof *s + total);
    if (!s)
        return NULL;
    unsigned char *p = s->buf;
    memcpy(p, m->name ? m->name : "", nlen + 1);
    s->msg.name = (const char *)p;
    p += nlen + 1;
    if (m->key_len)
        memcpy(p, m->key, m->key_len);
    s->msg.key = p; s->msg.key_len = m->key_len;
    p += m->key_len;
    if (m->meta_len)
        memcpy(p, m->meta, m->meta_len);
    s->msg.meta = p; s->msg.meta_len = m->meta_len;
    p += m->meta_len;
    if (m->len)
        memcpy(p, m->payload, m->len);
    s->msg.payload = p; s->msg.len = m->len;
    s->bytes = m->len;
    return s;
}

static bool name_ok(const char *s)
{
    if (!s || !*s)
        return false;
    return strlen(s) <= DELIVERY_NAME_MAX;
}

/* ---- the flush of acks at the end of a public call ---- */

static void mark_dirty(struct delivery *d, struct link *l)
{
    l->r->ack_now = true;
    if (l->dirty)
        return;
    if (d->ndirty == d->cap_dirty) {
        size_t nc = d->cap_dirty ? d->cap_dirty * 2 : 16;
        struct link **nd = realloc(d->dirty, nc * sizeof *nd);
        if (!nd)
            return;    /* the ack goes at the next tick instead (ack_due stays set) */
        d->dirty = nd;
        d->cap_dirty = nc;
    }
    d->dirty[d->ndirty++] = l;
    l->dirty = true;
}

static void send_ack(struct delivery *d, struct link *l)
{
    struct receiver *r = l->r;
    struct delivery_ack a = { .origin_epoch = r->origin_epoch, .dest_epoch = d->epoch, .cum = r->cum };
    for (unsigned i = 0; i < DELIVERY_SACK_BITS; i++) {
        uint64_t seq = r->cum + 1 + i;
        if (seq <= r->handed || (r->held && seq <= r->handed + DELIVERY_WINDOW_MAX &&
                                 r->held[seq % DELIVERY_WINDOW_MAX]))
            a.sack[i / 64] |= UINT64_C(1) << (i % 64);
    }
    /* The origin has every verdict up to sender_acked, and at least up to
     * handed - MAX (it never has more than MAX outstanding), so only
     * exceptions above both can still be news to it. */
    uint64_t lo = r->sender_acked;
    if (r->handed > DELIVERY_WINDOW_MAX && r->handed - DELIVERY_WINDOW_MAX > lo)
        lo = r->handed - DELIVERY_WINDOW_MAX;
    size_t n = 0;
    for (uint64_t seq = lo + 1; seq <= r->cum; seq++) {
        signed char v = r->verdicts[seq % DELIVERY_WINDOW_MAX];
        if (v != DELIVERY_V_DELIVERED)
            d->exc[n++] = (struct delivery_exception){ seq, v };
    }
    a.n_exceptions = n;
    a.exceptions = n ? d->exc : NULL;
    r->ack_now = false;
    r->ack_due = NO_TIME;
    r->unacked = 0;
    d->st.acks_sent++;
    if (d->env.send_ack)
        d->env.send_ack(d->env.ctx, l->peer->name, l->channel, &a);
}

static void enter(struct delivery *d) { d->depth++; }

static void leave_(struct delivery *d)
{
    if (--d->depth > 0)
        return;
    d->depth++;    /* acks sent below may re-enter through callbacks */
    for (size_t i = 0; i < d->ndirty; i++) {
        struct link *l = d->dirty[i];
        if (!l)
            continue;
        l->dirty = false;
        if (l->r && l->r->ack_now)
            send_ack(d, l);
    }
    d->ndirty = 0;
    d->depth--;
}

/* ---- sender ---- */

static uint64_t base_rto(const struct sender *s)
{
    if (!s->have_rtt)
        return DELIVERY_RTO_INITIAL_MS;
    uint64_t rto = s->srtt8 / 8 + s->rttvar4;    /* srtt + 4 * rttvar */
    if (rto < DELIVERY_RTO_MIN_MS)
        rto = DELIVERY_RTO_MIN_MS;
    if (rto > DELIVERY_RTO_MAX_MS)
        rto = DELIVERY_RTO_MAX_MS;
    return rto;
}

static void rtt_sample(struct sender *s, uint64_t r)
{
    if (!s->have_rtt) {
        s->srtt8 = r * 8;
        s->rttvar4 = r * 2;   /* rttvar = r / 2 */
        s->have_rtt = true;
        return;
    }
    uint64_t srtt = s->srtt8 / 8;
    uint64_t dev = srtt > r ? srtt - r : r - srtt;
    s->rttvar4 = s->rttvar4 - s->rttvar4 / 4 + dev;   /* 3/4 rttvar + 1/4 dev, x4 */
    s->srtt8 = s->srtt8 - s->srtt8 / 8 + r;           /* 7/8 srtt + 1/8 r, x8 */
}

static bool can_transmit(const struct link *l)
{
    return l->peer->up && l->peer->epoch != 0;
}

static bool must_probe(const struct link *l)
{
    return l->peer->up && l->peer->epoch == 0 && l->s && l->s->count > 0;
}

static struct entry *slot(const struct delivery *d, const struct sender *s, uint64_t seq)
{
    return s->ring ? s->ring[seq % d->window] : NULL;
}

static void transmit(struct delivery *d, struct link *l, struct entry *e, uint64_t now)
{
    struct sender *s = l->s;
    if (e->tries == 0)
        d->st.sent++;
    else
        d->st.retransmitted++;
    e->tries++;
    e->dest_epoch = l->peer->epoch;
    e->last_sent = now;
    s->probe_backoff = 0;
    uint64_t rto = base_rto(s);
    for (uint32_t i = 0; i < e->backoff && rto < DELIVERY_RTO_MAX_MS; i++)
        rto *= 2;
    if (rto > DELIVERY_RTO_MAX_MS)
        rto = DELIVERY_RTO_MAX_MS;
    e->next_at = now + rto;
    e->backoff++;
    if (e->next_at < s->deadline)
        s->deadline = e->next_at;
    struct delivery_data h = { .origin_epoch = d->epoch, .dest_epoch = e->dest_epoch, .seq = e->seq,
                               .acked_through = s->acked };
    if (d->env.transmit)
        d->env.transmit(d->env.ctx, l->peer->name, l->channel, &h, &e->m->msg);
}

/* A selectively acked message is not resent, except the oldest one as a
 * probe on its timer: the ack that would end it may be lost after the
 * receiver's last word, and nothing else would make the receiver speak. */
static bool resendable(const struct sender *s, const struct entry *e)
{
    return !e->sacked || e->seq == s->acked + 1;
}

static void sender_recompute_deadline(struct delivery *d, struct sender *s)
{
    s->deadline = NO_TIME;
    for (uint64_t seq = s->acked + 1; seq < s->next_seq; seq++) {
        struct entry *e = slot(d, s, seq);
        if (!e || !resendable(s, e))
            continue;
        uint64_t t = e->tries ? e->next_at : 0;
        if (t < s->deadline)
            s->deadline = t;
    }
}

/* The destination's epoch is unknown: its oldest message goes out naming
 * epoch 0, which no receiver delivers; the refusal pins the epoch. The
 * message itself stays untransmitted as far as restarts are concerned. */
static void probe(struct delivery *d, struct link *l, uint64_t now)
{
    struct sender *s = l->s;
    struct entry *e = slot(d, s, s->acked + 1);
    if (!e)
        return;
    uint64_t wait = DELIVERY_RTO_INITIAL_MS;
    for (uint32_t i = 0; i < s->probe_backoff && wait < DELIVERY_RTO_MAX_MS; i++)
        wait *= 2;
    s->probe_at = now + (wait < DELIVERY_RTO_MAX_MS ? wait : DELIVERY_RTO_MAX_MS);
    s->probe_backoff++;
    d->st.probes++;
    struct delivery_data h = { .origin_epoch = d->epoch, .dest_epoch = 0, .seq = e->seq,
                               .acked_through = s->acked };
    if (d->env.transmit)
        d->env.transmit(d->env.ctx, l->peer->name, l->channel, &h, &e->m->msg);
}

/* Everything due (or never sent) goes out; `all` also sends what is not
 * due yet, with backoff reset (the link just came up). */
static void sender_pump(struct delivery *d, struct link *l, uint64_t now, bool all)
{
    struct sender *s = l->s;
    if (s && must_probe(l) && (all || s->probe_at <= now)) {
        if (all)
            s->probe_backoff = 0;
        probe(d, l, now);
        return;
    }
    if (!s || !can_transmit(l))
        return;
    /* transmit() may re-enter delivery_send, which only appends. */
    for (uint64_t seq = s->acked + 1; seq < s->next_seq; seq++) {
        struct entry *e = slot(d, s, seq);
        if (!e || !resendable(s, e))
            continue;
        if (all)
            e->backoff = 0;
        if (all || e->tries == 0 || e->next_at <= now)
            transmit(d, l, e, now);
    }
    sender_recompute_deadline(d, s);
}

static void maybe_open(struct delivery *d, struct link *l)
{
    struct sender *s = l->s;
    if (s && s->was_full && s->count < d->window && s->bytes < d->window_bytes) {
        s->was_full = false;
        if (d->env.window_open)
            d->env.window_open(d->env.ctx, l->peer->name, l->channel);
    }
}

static bool add_failed(struct failed **f, size_t *n, size_t *cap, const struct link *l,
                       uint64_t msg_id, int verdict)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        struct failed *nf = realloc(*f, nc * sizeof *nf);
        if (!nf)
            return false;
        *f = nf;
        *cap = nc;
    }
    struct failed *x = &(*f)[*n];
    x->dest = strdup(l->peer->name);
    x->channel = strdup(l->channel);
    if (!x->dest || !x->channel) {
        free(x->dest);
        free(x->channel);
        return false;
    }
    x->msg_id = msg_id;
    x->verdict = verdict;
    (*n)++;
    return true;
}

static void report_failed(struct delivery *d, struct failed *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        d->st.failed++;
        d->st.acked++;
        if (d->env.verdict)
            d->env.verdict(d->env.ctx, f[i].dest, f[i].channel, f[i].msg_id, f[i].verdict);
        free(f[i].dest);
        free(f[i].channel);
    }
    free(f);
}

/* The destination of l has a new epoch: what went to the old one fails,
 * the rest starts the new sequence space at 1. */
static void sender_repin(struct delivery *d, struct link *l, uint64_t new_epoch, struct failed **f, size_t *n,
                         size_t *cap)
{
    struct sender *s = l->s;
    if (!s || !s->ring) {
        if (s) {
            s->next_seq = 1;
            s->acked = 0;
        }
        return;
    }
    struct entry *keep[DELIVERY_WINDOW_MAX];
    size_t nk = 0;
    for (uint64_t seq = s->acked + 1; seq < s->next_seq; seq++) {
        struct entry *e = s->ring[seq % d->window];
        s->ring[seq % d->window] = NULL;
        if (!e)
            continue;
        if (e->dest_epoch == 0 && (e->meta_epoch == 0 || e->meta_epoch == new_epoch)) {
            keep[nk++] = e;
            continue;
        }
        /* Out of memory for the report: the verdict is lost, never doubled. */
        add_failed(f, n, cap, l, e->msg_id, DELIVERY_V_PEER_RESTARTED);
        s->bytes -= e->m->bytes;
        s->count--;
        free(e->m);
        free(e);
    }
    s->acked = 0;
    s->next_seq = 1;
    for (size_t i = 0; i < nk; i++) {
        keep[i]->seq = s->next_seq++;
        keep[i]->tries = keep[i]->backoff = 0;
        keep[i]->sacked = false;
        s->ring[keep[i]->seq % d->window] = keep[i];
    }
    s->have_rtt = false;
    sender_recompute_deadline(d, s);
}

static void peer_repin(struct delivery *d, struct peer *p, uint64_t epoch, uint64_t now)
{
    struct failed *f = NULL;
    size_t n = 0, cap = 0;
    p->epoch = epoch;
    /* The first pin too: nothing was transmitted yet, but meta made for
     * another epoch must not go to this one. */
    for (size_t b = 0; b < d->cap_links; b++)
        for (struct link *l = d->links[b]; l; l = l->next)
            if (l->peer == p && l->s)
                sender_repin(d, l, epoch, &f, &n, &cap);
    report_failed(d, f, n);
    for (size_t b = 0; b < d->cap_links; b++)
        for (struct link *l = d->links[b]; l; l = l->next)
            if (l->peer == p && l->s) {
                sender_pump(d, l, now, true);
                maybe_open(d, l);
            }
}

enum delivery_send_result delivery_send(struct delivery *d, const char *dest, const char *channel,
                                        uint64_t msg_id, const struct delivery_msg *msg, uint64_t now)
{
    if (d->local_left || !name_ok(dest) || !name_ok(channel) || !msg)
        return DELIVERY_SEND_INVALID;
    if (msg->len > d->window_bytes)
        return DELIVERY_SEND_TOO_LARGE;
    struct link *l = link_get(d, dest, channel);
    struct sender *s = l ? sender_of(l) : NULL;
    if (!s)
        return DELIVERY_SEND_NOMEM;
    if (s->count >= d->window || (s->count > 0 && s->bytes + msg->len > d->window_bytes)) {
        s->was_full = true;
        d->st.refused_full++;
        return DELIVERY_SEND_FULL;
    }
    if (!s->ring && !(s->ring = calloc(d->window, sizeof *s->ring)))
        return DELIVERY_SEND_NOMEM;
    struct entry *e = calloc(1, sizeof *e);
    if (!e || !(e->m = store(msg))) {
        free(e);
        return DELIVERY_SEND_NOMEM;
    }
    e->msg_id = msg_id;
    e->meta_epoch = msg->meta_epoch;
    e->seq = s->next_seq++;
    s->ring[e->seq % d->window] = e;
    s->count++;
    s->bytes += msg->len;
    enter(d);
    if (can_transmit(l))
        transmit(d, l, e, now);
    else if (must_probe(l) && s->probe_at <= now)
        probe(d, l, now);
    leave_(d);
    return DELIVERY_SEND_OK;
}

bool delivery_can_send(struct delivery *d, const char *dest, const char *channel, size_t len)
{
    if (d->local_left || !name_ok(dest) || !name_ok(channel) || len > d->window_bytes)
        return false;
    struct link *l = link_find(d, dest, channel);
    if (!l || !l->s)
        return true;
    if (l->s->count < d->window && (l->s->count == 0 || l->s->bytes + len <= d->window_bytes))
        return true;
    l->s->was_full = true;
    d->st.refused_full++;
    return false;
}

static int exception_of(const struct delivery_ack *a, uint64_t seq)
{
    for (size_t i = 0; i < a->n_exceptions; i++)
        if (a->exceptions[i].seq == seq) {
            int v = a->exceptions[i].verdict;
            /* A code this version does not know (a newer peer's) is some
             * failure: never report it as delivered. */
            return v > DELIVERY_V_DELIVERED && v <= DELIVERY_V_NODE_LEFT ? v : v == DELIVERY_V_DELIVERED
                   ? DELIVERY_V_DELIVERED : DELIVERY_V_NO_SUCH_NAME;
        }
    return DELIVERY_V_DELIVERED;
}

void delivery_on_ack(struct delivery *d, const char *from, const char *channel,
                     const struct delivery_ack *a, uint64_t now)
{
    d->st.acks_received++;
    if (a->origin_epoch != d->epoch)
        return;    /* for an earlier run of this node */
    struct peer *p = peer_find(d, from);
    struct link *l = link_find(d, from, channel);
    if (!p || !l || !l->s || a->dest_epoch == 0)
        return;
    if (a->refused) {
        /* Only a refusal of data naming the epoch pinned now moves the pin
         * (forward after a restart, or from 0 after a probe): an old
         * refusal still on its way must not drag it back. */
        if (a->refused_epoch == p->epoch && a->dest_epoch != p->epoch) {
            enter(d);
            peer_repin(d, p, a->dest_epoch, now);
            leave_(d);
        }
        return;
    }
    if (p->epoch == 0 || a->dest_epoch != p->epoch)
        return;    /* for data this node sent to another epoch */
    enter(d);
    struct sender *s = l->s;
    uint64_t upto = a->cum < s->next_seq ? a->cum : s->next_seq - 1;
    while (s->acked < upto) {
        uint64_t seq = s->acked + 1;
        struct entry *e = slot(d, s, seq);
        s->acked = seq;
        if (!e)
            continue;
        s->ring[seq % d->window] = NULL;
        s->count--;
        s->bytes -= e->m->bytes;
        /* Karn: only a message sent once gives a sample; and one the
         * receiver held (sacked) was sampled when it said so, since its
         * cumulative ack also waited for the hole before it. */
        if (e->tries == 1 && !e->sacked)
            rtt_sample(s, now - e->last_sent);
        int v = exception_of(a, seq);
        uint64_t id = e->msg_id;
        free(e->m);
        free(e);
        d->st.acked++;
        /* The callback may send on this link; that only appends above upto. */
        if (d->env.verdict)
            d->env.verdict(d->env.ctx, from, channel, id, v);
        if (!l->s)
            break;
    }
    if (l->s && s->count == 0 && s->ring) {
        free(s->ring);
        s->ring = NULL;
    }
    uint64_t highest_sacked = 0;
    for (unsigned i = 0; i < DELIVERY_SACK_BITS; i++) {
        if (!(a->sack[i / 64] & (UINT64_C(1) << (i % 64))))
            continue;
        uint64_t seq = a->cum + 1 + i;
        struct entry *e = seq > s->acked && seq < s->next_seq ? slot(d, s, seq) : NULL;
        if (e) {
            if (!e->sacked && e->tries == 1)
                rtt_sample(s, now - e->last_sent);
            e->sacked = true;
            highest_sacked = seq;
        }
    }
    /* Fast retransmit: a hole below what the receiver holds is most likely
     * lost, so resend it without waiting for its timer: at once the first
     * time (the window may fill long before a millisecond clock says a
     * round trip has passed, and then no ack would come until the timer),
     * later at most once a round trip (an ack that left before the resent
     * copy arrived says nothing new); never growing its backoff: the
     * receiver is plainly there. */
    if (highest_sacked && can_transmit(l)) {
        uint64_t grace = s->have_rtt ? s->srtt8 / 8 + 1 : DELIVERY_RTO_MIN_MS;
        for (uint64_t seq = s->acked + 1; seq < highest_sacked; seq++) {
            struct entry *e = slot(d, s, seq);
            if (e && !e->sacked && e->tries > 0 && (e->tries == 1 || e->last_sent + grace <= now)) {
                uint32_t backoff = e->backoff;
                e->backoff = backoff ? backoff - 1 : 0;
                transmit(d, l, e, now);
                d->st.fast_retransmits++;
            }
        }
    }
    sender_recompute_deadline(d, s);
    maybe_open(d, l);
    leave_(d);
}

/* ---- receiver ---- */

static void advance_cum(struct receiver *r)
{
    while (r->cum < r->handed && r->verdicts[(r->cum + 1) % DELIVERY_WINDOW_MAX] != V_PENDING) {
        r->cum++;
        r->unacked++;
    }
}

static void want_ack(struct delivery *d, struct link *l, uint64_t now)
{
    struct receiver *r = l->r;
    if (r->unacked >= DELIVERY_ACK_EVERY)
        mark_dirty(d, l);
    else if ((r->unacked > 0 || r->handed > r->cum) && r->ack_due == NO_TIME)
        r->ack_due = now + DELIVERY_ACK_DELAY_MS;   /* pending verdicts: the sack stops resends */
}

/* Hands up seq handed+1 and whatever follows it in the buffer. `m` is the
 * message for handed+1 when it just arrived (not stored). */
static void hand_up(struct delivery *d, struct link *l, const struct delivery_msg *m, uint64_t now)
{
    struct receiver *r = l->r;
    for (;;) {
        uint64_t seq = r->handed + 1;
        struct stored *h = r->held ? r->held[seq % DELIVERY_WINDOW_MAX] : NULL;
        const struct delivery_msg *cur = m ? m : h ? &h->msg : NULL;
        if (!cur)
            break;
        int v;
        if (d->local_left)
            v = DELIVERY_V_NODE_LEFT;
        else
            v = d->env.deliver ? d->env.deliver(d->env.ctx, l->peer->name, l->channel, seq, cur)
                               : DELIVERY_V_DELIVERED;
        if (!l->r)
            return;    /* cannot happen: callbacks must not drop state */
        if (v == DELIVERY_RETRY) {
            d->st.retries++;
            if (m && !h) {
                if (!r->held && !(r->held = calloc(DELIVERY_WINDOW_MAX, sizeof *r->held)))
                    break;
                if ((r->held[seq % DELIVERY_WINDOW_MAX] = store(m)))
                    r->n_held++;
            }
            r->retry_at = now + DELIVERY_RETRY_MS;
            break;
        }
        if (v != DELIVERY_PENDING && (v < 0 || v > DELIVERY_V_NODE_LEFT))
            v = DELIVERY_V_NO_SUCH_NAME;   /* a driver bug must not stall the link */
        if (v != DELIVERY_PENDING)
            d->st.delivered++;
        r->verdicts[seq % DELIVERY_WINDOW_MAX] = v == DELIVERY_PENDING ? V_PENDING : (signed char)v;
        r->handed = seq;
        if (h) {
            r->held[seq % DELIVERY_WINDOW_MAX] = NULL;
            r->n_held--;
            free(h);
        }
        m = NULL;
    }
    if (r->held && r->n_held == 0) {
        free(r->held);
        r->held = NULL;
    }
    if (!r->held || !r->held[(r->handed + 1) % DELIVERY_WINDOW_MAX])
        r->retry_at = NO_TIME;
    advance_cum(r);
    want_ack(d, l, now);
}

void delivery_on_data(struct delivery *d, const char *origin, const char *channel,
                      const struct delivery_data *h, const struct delivery_msg *m, uint64_t now)
{
    d->st.received++;
    if (!name_ok(origin) || !name_ok(channel) || h->seq == 0 || h->origin_epoch == 0)
        return;
    enter(d);
    if (h->dest_epoch != d->epoch) {
        if (h->dest_epoch)
            d->st.stale_epoch++;
        /* Meant for another run of this node, or a probe: tell the origin
         * who runs now, so it reports what it sent to that run instead of
         * resending it, or learns whom to send to. */
        if (d->env.send_ack) {
            struct delivery_ack a = { .origin_epoch = h->origin_epoch, .dest_epoch = d->epoch,
                                      .refused = true, .refused_epoch = h->dest_epoch };
            d->st.acks_sent++;
            d->env.send_ack(d->env.ctx, origin, channel, &a);
        }
        leave_(d);
        return;
    }
    struct link *l = link_get(d, origin, channel);
    struct receiver *r = l ? receiver_of(l) : NULL;
    if (!r) {
        leave_(d);
        return;    /* out of memory: as if lost, the origin resends */
    }
    if (h->origin_epoch < r->origin_epoch) {
        d->st.stale_epoch++;
        leave_(d);
        return;
    }
    if (h->origin_epoch > r->origin_epoch) {
        if (r->origin_epoch != 0)
            receiver_reset(r, &d->st);
        r->origin_epoch = h->origin_epoch;
    }
    /* The origin's epoch is also news for what this node sends to it. */
    if (l->peer->epoch != 0 && h->origin_epoch > l->peer->epoch)
        peer_repin(d, l->peer, h->origin_epoch, now);
    if (h->acked_through > r->sender_acked && h->acked_through <= r->cum)
        r->sender_acked = h->acked_through;

    uint64_t seq = h->seq;
    if (seq <= r->handed) {
        d->st.duplicates++;
        mark_dirty(d, l);    /* its ack was lost */
    } else if (seq > r->handed + DELIVERY_WINDOW_MAX) {
        d->st.stale_epoch++; /* beyond any window: not from a sender that follows the protocol */
    } else if (r->held && r->held[seq % DELIVERY_WINDOW_MAX]) {
        d->st.duplicates++;
        mark_dirty(d, l);
    } else if (seq == r->handed + 1) {
        hand_up(d, l, m, now);
    } else {
        d->st.out_of_order++;
        if (!r->held)
            r->held = calloc(DELIVERY_WINDOW_MAX, sizeof *r->held);
        struct stored *s = r->held ? store(m) : NULL;
        if (s) {
            r->held[seq % DELIVERY_WINDOW_MAX] = s;
            r->n_held++;
        }
        mark_dirty(d, l);    /* the gap tells the origin what to resend */
    }
    leave_(d);
    /* While a gap stays open the ack is repeated (backing off): once the
     * origin's window is full it sends nothing that would draw an ack, and
     * the resent hole could be lost again. A fresh arrival restarts it. */
    if (l->r == r && r->n_held && r->ack_due == NO_TIME) {
        r->reacks = 0;
        r->ack_due = now + DELIVERY_ACK_DELAY_MS;
    }
}

void delivery_report(struct delivery *d, const char *origin, const char *channel, uint64_t seq,
                     int verdict, uint64_t now)
{
    struct link *l = link_find(d, origin, channel);
    if (!l || !l->r)
        return;
    struct receiver *r = l->r;
    if (seq <= r->cum || seq > r->handed || r->verdicts[seq % DELIVERY_WINDOW_MAX] != V_PENDING)
        return;
    if (verdict < 0 || verdict > DELIVERY_V_NODE_LEFT)
        verdict = DELIVERY_V_NO_SUCH_NAME;
    enter(d);
    d->st.delivered++;
    r->verdicts[seq % DELIVERY_WINDOW_MAX] = (signed char)verdict;
    advance_cum(r);
    if (r->unacked > 0)
        mark_dirty(d, l);    /* a held verdict is late already */
    leave_(d);
}

/* ---- reachability ---- */

void delivery_peer_up(struct delivery *d, const char *node, uint64_t epoch, uint64_t now)
{
    struct peer *p = peer_get(d, node);
    if (!p)
        return;
    enter(d);
    p->up = true;
    if (epoch > p->epoch)
        peer_repin(d, p, epoch, now);   /* pumps every link of p */
    else
        for (size_t b = 0; b < d->cap_links; b++)
            for (struct link *l = d->links[b]; l; l = l->next)
                if (l->peer == p && l->s)
                    sender_pump(d, l, now, true);
    leave_(d);
}

void delivery_peer_down(struct delivery *d, const char *node)
{
    struct peer *p = peer_find(d, node);
    if (p)
        p->up = false;
}

static void fail_all(struct delivery *d, struct peer *only, struct failed **f, size_t *n, size_t *cap)
{
    for (size_t b = 0; b < d->cap_links; b++)
        for (struct link *l = d->links[b]; l; l = l->next) {
            if ((only && l->peer != only) || !l->s || !l->s->ring)
                continue;
            struct sender *s = l->s;
            for (uint64_t seq = s->acked + 1; seq < s->next_seq; seq++) {
                struct entry *e = s->ring[seq % d->window];
                if (!e)
                    continue;
                add_failed(f, n, cap, l, e->msg_id, DELIVERY_V_NODE_LEFT);
                s->ring[seq % d->window] = NULL;
                free(e->m);
                free(e);
            }
            s->acked = s->next_seq - 1;
            s->count = 0;
            s->bytes = 0;
            free(s->ring);
            s->ring = NULL;
            s->deadline = NO_TIME;
        }
}

void delivery_peer_left(struct delivery *d, const char *node)
{
    struct peer *p = peer_find(d, node);
    if (!p)
        return;
    struct failed *f = NULL;
    size_t n = 0, cap = 0;
    fail_all(d, p, &f, &n, &cap);
    for (size_t b = 0; b < d->cap_links; b++) {
        struct link **pp = &d->links[b];
        while (*pp) {
            struct link *l = *pp;
            if (l->peer == p) {
                *pp = l->next;
                link_free(d, l);
                d->nlinks--;
            } else {
                pp = &l->next;
            }
        }
    }
    struct peer **pq = &d->peers[hash_str(node) & (d->cap_peers - 1)];
    while (*pq && *pq != p)
        pq = &(*pq)->next;
    if (*pq)
        *pq = p->next;
    free(p);
    d->npeers--;
    report_failed(d, f, n);
}

void delivery_local_left(struct delivery *d)
{
    d->local_left = true;
    struct failed *f = NULL;
    size_t n = 0, cap = 0;
    fail_all(d, NULL, &f, &n, &cap);
    report_failed(d, f, n);
}

/* ---- timers ---- */

void delivery_tick(struct delivery *d, uint64_t now)
{
    enter(d);
    for (size_t b = 0; b < d->cap_links; b++)
        for (struct link *l = d->links[b]; l; l = l->next) {
            struct receiver *r = l->r;
            if (r && r->retry_at <= now) {
                r->retry_at = NO_TIME;
                hand_up(d, l, NULL, now);
            }
            if (r && (r->ack_due <= now || r->ack_now)) {
                send_ack(d, l);
                if (r->n_held) {
                    uint32_t k = r->reacks < 10 ? ++r->reacks : 10;
                    r->ack_due = now + ((uint64_t)DELIVERY_ACK_DELAY_MS << k);
                }
            }
            if (l->s && ((l->s->deadline <= now && can_transmit(l)) || (must_probe(l) && l->s->probe_at <= now)))
                sender_pump(d, l, now, false);
        }
    leave_(d);
}

uint64_t delivery_next_deadline(const struct delivery *d)
{
    uint64_t t = NO_TIME;
    for (size_t b = 0; b < d->cap_links; b++)
        for (const struct link *l = d->links[b]; l; l = l->next) {
            if (l->r) {
                if (l->r->ack_due < t)
                    t = l->r->ack_due;
                if (l->r->retry_at < t)
                    t = l->r->retry_at;
            }
            if (l->s && can_transmit(l) && l->s->deadline < t)
                t = l->s->deadline;
            if (must_probe(l) && l->s->probe_at < t)
                t = l->s->probe_at;
        }
    return t;
}

/* ---- life ---- */

struct delivery *delivery_new(const struct delivery_config *cfg, const struct delivery_env *env)
{
    if (!cfg || cfg->epoch == 0 || !env)
        return NULL;
    struct delivery *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->env = *env;
    d->epoch = cfg->epoch;
    d->window = cfg->window ? cfg->window : DELIVERY_WINDOW_DEFAULT;
    if (d->window > DELIVERY_WINDOW_MAX)
        d->window = DELIVERY_WINDOW_MAX;
    d->window_bytes = cfg->window_bytes ? cfg->window_bytes : DELIVERY_WINDOW_BYTES_DEFAULT;
    return d;
}

void delivery_free(struct delivery *d)
{
    if (!d)
        return;
    for (size_t b = 0; b < d->cap_links; b++) {
        struct link *l = d->links[b];
        while (l) {
            struct link *next = l->next;
            link_free(d, l);
            l = next;
        }
    }
    for (size_t b = 0; b < d->cap_peers; b++) {
        struct peer *p = d->peers[b];
        while (p) {
            struct peer *next = p->next;
            free(p);
            p = next;
        }
    }
    free(d->links);
    free(d->peers);
    free(d->dirty);
    free(d);
}

const struct delivery_stats *delivery_get_stats(const struct delivery *d) { return &d->st; }
uint64_t delivery_epoch(const struct delivery *d) { return d->epoch; }

uint64_t delivery_peer_epoch(const struct delivery *d, const char *node)
{
    const struct peer *p = peer_find(d, node);
    return p ? p->epoch : 0;
}

size_t delivery_outstanding(const struct delivery *d, const char *dest, const char *channel)
{
    const struct link *l = link_find(d, dest, channel);
    return l && l->s ? l->s->count : 0;
}
