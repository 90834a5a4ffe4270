/* delivery_sim: the deterministic simulator of the reliable-delivery core
 * (daemon/delivery.c) and the causal core above it (daemon/causal.c).
 *
 *   delivery_sim [--seed N] [--scenario NAME] [--seeds K] [--verbose]
 *
 * Scenarios: loss20, partitions, restarts, backpressure, goodput, causal,
 * swarm (K seeds, each drawing its own network), swarm1 (one swarm seed).
 * DSIM_TRACE=ID in the environment traces one message through the cores.
 *
 * N nodes, each with the real cores, a virtual clock and one seeded PRNG
 * (splitmix64); a network that loses, duplicates and reorders frames, cuts
 * partitions (loud ones, where the driver says peer down/up, and silent
 * ones), resets connections (what is in flight dies) and crashes and
 * restarts nodes (a new epoch). Every scenario run draws its network from
 * its seed; "swarm" runs many seeds. A failure prints the seed that
 * replays it exactly.
 *
 * Invariants checked on every event, against an oracle that knows every
 * message: no message is handed to an application twice (one incarnation
 * or across them); per (origin incarnation, destination, channel) messages
 * arrive in the order they were sent; a verdict DELIVERED or NO_SUCH_NAME
 * is only ever reported for a message the destination's application got
 * with that verdict (nothing acknowledged and then lost); every message
 * gets one verdict; PEER_RESTARTED only for a destination that restarted.
 * On the causal channel no message reaches an application before one that
 * causally precedes it; the plain channel is checked the same way and, in
 * the `causal` scenario, must be seen to violate it. Liveness once the
 * faults stop: every message of a live origin has its verdict, and every
 * one to a destination that did not restart is delivered. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "causal.h"
#include "delivery.h"

#define MAX_NODES 8
#define MAX_PIDS 48                 /* node incarnations in one run */
#define NCH 2
#define CH_PLAIN 0
#define CH_CAUSAL 1
#define NO_TIME UINT64_MAX
#define APP_BACKLOG 2000            /* an application's messages waiting for a window, per link */

static const char *const ch_name[NCH] = { "orders", "chat" };

/* ---- PRNG ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uni(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }
static uint64_t below(uint64_t *s, uint64_t n) { return n ? rng_next(s) % n : 0; }

/* ---- the world ---- */

struct params {
    int n;
    double loss, dup;
    uint64_t lat_min, lat_jitter;   /* per frame: lat_min + uniform(0, lat_jitter) ms */
    uint64_t active_ms;             /* sends and faults only before this */
    uint64_t send_every_ms;         /* mean gap between one node's sends */
    int burst;                      /* messages per send (0: 1) */
    uint64_t max_sends;             /* stop sending after this many (0: no limit) */
    double react;                   /* probability an app answers a delivery with a send */
    double nobody;                  /* share of sends to a name nobody holds */
    int partitions, resets, crashes;
    bool silent_partitions;
    uint32_t window;
    int channels_mask;              /* bit per channel used */
};

struct msgrec {
    int origin_pid, dest;           /* dest: node index */
    int ch;
    uint64_t link_idx;              /* send order on (origin pid, dest, ch) */
    int expect;                     /* the verdict the destination's app gives */
    int delivered;                  /* times handed to an app */
    int delivered_pid;
    int rverdict;                   /* what the app said */
    int sverdict;                   /* -1 none yet */
    int dest_pid_at_send;
    uint64_t sent_at;               /* accepted by the core */
    bool stale_view;                /* the sender's core had pinned another epoch of dest at the send */
    uint16_t vc[MAX_PIDS];          /* oracle vector clock on its channel at the send */
};

struct pending { uint64_t id; struct pending *next; };

struct node {
    bool alive;
    int pid;
    uint64_t epoch;
    struct delivery *d;
    struct causal *c;
    uint64_t tick_at;
    bool up[MAX_NODES];             /* this node's view: peer reachable */
    struct pending *q[MAX_NODES][NCH], **qt[MAX_NODES][NCH];
    size_t qn[MAX_NODES][NCH];
    /* causal_receive's synchronous answer for the message being handed up */
    const char *cur_origin; uint64_t cur_seq; int cur_verdict;
    bool silent_crash;
};

enum ev_type { EV_FRAME, EV_TICK, EV_SEND, EV_PART_START, EV_PART_END, EV_RESET_UP, EV_CRASH, EV_RESTART };

struct frame {
    bool ack;
    int from, to, ch;
    uint64_t gen;                   /* connection generation of (from, to) when sent */
    struct delivery_data h;
    struct delivery_ack a;
    struct delivery_exception *exc;
    char name[16];
    uint8_t *meta; size_t meta_len;
    uint64_t id;
};

struct ev {
    uint64_t time, seq;
    enum ev_type type;
    int node, peer;
    uint64_t arg;
    struct frame *f;
};

struct world {
    struct params p;
    uint64_t seed, rng, now, evseq;
    struct node nodes[MAX_NODES];
    char names[MAX_NODES][16];
    int npids;
    int pid_node[MAX_PIDS];
    uint64_t link_next[MAX_PIDS][MAX_NODES][NCH];    /* next send order per link */
    uint64_t link_last[MAX_PIDS][MAX_NODES][NCH];    /* last delivered, +1 (0 none) */
    uint16_t vc[NCH][MAX_PIDS][MAX_PIDS];            /* oracle clocks per channel and incarnation */
    uint16_t seen_past[NCH][MAX_PIDS][MAX_PIDS];     /* max vc[k] over messages delivered at a dest pid */
    struct msgrec *m; size_t nm, capm;
    struct ev *heap; size_t nheap, capheap;
    uint64_t gen[MAX_NODES][MAX_NODES];
    int part_group[MAX_NODES];      /* -1 none; else the side of the current partition */
    bool part_silent;
    bool quiet;                     /* the active phase is over */
    char violation[512];
    bool verbose;
    /* figures */
    uint64_t sends, accepted, delivered, frames, lost, dups, verdicts[5], causal_violations[NCH];
    uint64_t app_waits, restarts_done;
    uint64_t lat_sum, lat_max;      /* accepted -> handed to the application, ms */
    uint64_t last_verdict_at;
    struct delivery_stats ds;       /* summed over every core when it is freed */
    struct causal_stats cs;
};

static struct world *W;   /* the callbacks' context: one world at a time */

static void violate(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violate(struct world *w, const char *fmt, ...)
{
    if (w->violation[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(w->violation, sizeof w->violation, "t=%" PRIu64 " ms: ", w->now);
    vsnprintf(w->violation + n, sizeof w->violation - (size_t)n, fmt, ap);
    va_end(ap);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "delivery_sim: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- events ---- */

static bool ev_less(const struct ev *a, const struct ev *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void push(struct world *w, struct ev e)
{
    if (w->nheap == w->capheap) {
        w->capheap = w->capheap ? w->capheap * 2 : 1024;
        w->heap = realloc(w->heap, w->capheap * sizeof *w->heap);
        if (!w->heap)
            exit(2);
    }
    e.seq = w->evseq++;
    size_t i = w->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&e, &w->heap[p]))
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = e;
}

static struct ev pop(struct world *w)
{
    struct ev top = w->heap[0], last = w->heap[--w->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct ev *best = &last;
        if (l < w->nheap && ev_less(&w->heap[l], best)) { m = l; best = &w->heap[l]; }
        if (r < w->nheap && ev_less(&w->heap[r], best)) { m = r; }
        if (m == i)
            break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->nheap)
        w->heap[i] = last;
    return top;
}

static void frame_free(struct frame *f)
{
    if (!f)
        return;
    free(f->exc);
    free(f->meta);
    free(f);
}

static int node_of(const struct world *w, const char *name)
{
    for (int i = 0; i < w->p.n; i++)
        if (strcmp(w->names[i], name) == 0)
            return i;
    return -1;
}

static int ch_of(const char *name)
{
    for (int c = 0; c < NCH; c++)
        if (strcmp(ch_name[c], name) == 0)
            return c;
    return -1;
}

static void schedule_tick(struct world *w, int i)
{
    struct node *n = &w->nodes[i];
    if (!n->alive)
        return;
    uint64_t t = delivery_next_deadline(n->d);
    if (t == NO_TIME)
        return;
    if (t < w->now)
        t = w->now;
    if (t < n->tick_at) {
        n->tick_at = t;
        push(w, (struct ev){ .time = t, .type = EV_TICK, .node = i, .arg = n->alive ? (uint64_t)n->pid : 0 });
    }
}

/* ---- the network ---- */

static bool cut(const struct world *w, int a, int b)
{
    return w->part_group[a] >= 0 && w->part_group[b] >= 0 && w->part_group[a] != w->part_group[b];
}

static void net_send(struct world *w, struct frame *f)
{
    w->frames++;
    if (cut(w, f->from, f->to) || uni(&w->rng) < w->p.loss) {
        w->lost++;
        frame_free(f);
        return;
    }
    f->gen = w->gen[f->from][f->to];
    int copies = uni(&w->rng) < w->p.dup ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        struct frame *g = f;
        if (c == 1) {
            w->dups++;
            g = xcalloc(1, sizeof *g);
            *g = *f;
            g->exc = f->a.n_exceptions ? xcalloc(f->a.n_exceptions, sizeof *g->exc) : NULL;
            if (g->exc)
                memcpy(g->exc, f->exc, f->a.n_exceptions * sizeof *g->exc);
            g->a.exceptions = g->exc;
            g->meta = f->meta_len ? xcalloc(1, f->meta_len) : NULL;
            if (g->meta)
                memcpy(g->meta, f->meta, f->meta_len);
        }
        uint64_t t = w->now + w->p.lat_min + below(&w->rng, w->p.lat_jitter + 1);
        push(w, (struct ev){ .time = t, .type = EV_FRAME, .node = g->to, .f = g });
    }
}

/* ---- the applications ---- */

static void app_try_send(struct world *w, int i, int dest, int ch);

static int app_deliver(struct world *w, int i, int from, uint64_t id)
{
    struct node *n = &w->nodes[i];
    if (id >= w->nm) {
        violate(w, "n%d got an unknown message %" PRIu64, i, id);
        return DELIVERY_V_DELIVERED;
    }
    struct msgrec *m = &w->m[id];
    if (m->delivered++ > 0)
        violate(w, "message %" PRIu64 " (pid %d -> n%d %s #%" PRIu64 ") delivered twice (first to pid %d, now pid %d)",
                id, m->origin_pid, m->dest, ch_name[m->ch], m->link_idx, m->delivered_pid, n->pid);
    if (m->dest != i || w->pid_node[m->origin_pid] != from)
        violate(w, "message %" PRIu64 " for n%d from pid %d handed to n%d as from n%d", id, m->dest,
                m->origin_pid, i, from);
    m->delivered_pid = n->pid;
    uint64_t *last = &w->link_last[m->origin_pid][i][m->ch];
    if (m->link_idx + 1 <= *last)
        violate(w, "out of order on pid %d -> n%d %s: #%" PRIu64 " after #%" PRIu64, m->origin_pid, i,
                ch_name[m->ch], m->link_idx, *last - 1);
    *last = m->link_idx + 1;
    /* Causality (oracle): m is the s-th send of its origin on the channel;
     * if something already delivered here had it in its past, m is late. */
    int k = m->origin_pid, me = n->pid, c = m->ch;
    if (w->seen_past[c][me][k] >= m->vc[k]) {
        w->causal_violations[c]++;
        if (c == CH_CAUSAL) {
            uint64_t by = 0;
            for (uint64_t x = 0; x < w->nm; x++)
                if (w->m[x].delivered && w->m[x].delivered_pid == me && w->m[x].ch == c && x != id &&
                    w->m[x].vc[k] >= m->vc[k]) {
                    by = x;
                    break;
                }
            violate(w, "causal order: message %" PRIu64 " (pid %d -> pid %d, #%u of its sender) delivered after "
                    "message %" PRIu64 " (pid %d) that depends on it", id, k, me, m->vc[k], by, w->m[by].origin_pid);
        }
    }
    for (int x = 0; x < w->npids; x++) {
        if (m->vc[x] > w->seen_past[c][me][x])
            w->seen_past[c][me][x] = m->vc[x];
        if (m->vc[x] > w->vc[c][me][x])
            w->vc[c][me][x] = m->vc[x];
    }
    w->delivered++;
    w->lat_sum += w->now - m->sent_at;
    if (w->now - m->sent_at > w->lat_max)
        w->lat_max = w->now - m->sent_at;
    m->rverdict = m->expect;
    /* Replies extend causal chains, on both channels alike. */
    if (!w->quiet && uni(&w->rng) < w->p.react) {
        int to = (int)below(&w->rng, (uint64_t)w->p.n - 1);
        if (to >= i)
            to++;
        push(w, (struct ev){ .time = w->now, .type = EV_SEND, .node = i, .peer = to, .arg = (uint64_t)c });
    }
    return m->expect;
}

static int cb_deliver(void *ctx, const char *origin, const char *channel, uint64_t seq,
                      const struct delivery_msg *msg);

static void causal_cb(void *ctx, const char *from, uint64_t tag, const void *msg, size_t len)
{
    struct node *n = ctx;
    struct world *w = W;
    int i = (int)(n - w->nodes);
    uint64_t id;
    memcpy(&id, msg, sizeof id);
    if (getenv("DSIM_TRACE") && id == strtoull(getenv("DSIM_TRACE"), NULL, 0))
        fprintf(stderr, "t=%" PRIu64 " n%d causal delivers %" PRIu64 " from %s tag %" PRIu64 " cur %s/%" PRIu64 "\n",
                w->now, i, id, from, tag, n->cur_origin ? n->cur_origin : "-", n->cur_seq);
    int v = app_deliver(w, i, node_of(w, from), id);
    if (n->cur_origin && strcmp(n->cur_origin, from) == 0 && n->cur_seq == tag)
        n->cur_verdict = v;
    else
        delivery_report(n->d, from, ch_name[CH_CAUSAL], tag, v, w->now);
}

static int cb_deliver(void *ctx, const char *origin, const char *channel, uint64_t seq,
                      const struct delivery_msg *msg)
{
    struct node *n = ctx;
    struct world *w = W;
    int i = (int)(n - w->nodes);
    int ch = ch_of(channel);
    uint64_t id;
    if (msg->len != sizeof id || ch < 0) {
        violate(w, "n%d: a message of %zu bytes on %s", i, msg->len, channel);
        return DELIVERY_V_DELIVERED;
    }
    memcpy(&id, msg->payload, sizeof id);
    if (ch == CH_PLAIN)
        return app_deliver(w, i, node_of(w, origin), id);
    n->cur_origin = origin;
    n->cur_seq = seq;
    n->cur_verdict = -100;
    enum causal_result r = causal_receive(n->c, origin, msg->meta, msg->meta_len, seq, msg->payload, msg->len);
    n->cur_origin = NULL;
    if (getenv("DSIM_TRACE") && id == strtoull(getenv("DSIM_TRACE"), NULL, 0))
        fprintf(stderr, "t=%" PRIu64 " n%d causal_receive %" PRIu64 " from %s seq %" PRIu64 ": %d\n",
                w->now, i, id, origin, seq, (int)r);
    switch (r) {
    case CAUSAL_DELIVERED:
        if (n->cur_verdict == -100)
            violate(w, "causal said delivered without delivering");
        return n->cur_verdict;
    case CAUSAL_HELD: return DELIVERY_PENDING;
    case CAUSAL_FULL: return DELIVERY_RETRY;
    case CAUSAL_STALE: return DELIVERY_V_DELIVERED;   /* its origin is gone: nobody waits */
    default:
        violate(w, "n%d: causal_receive from %s said %d", i, origin, (int)r);
        return DELIVERY_V_DELIVERED;
    }
}

static void cb_transmit(void *ctx, const char *dest, const char *channel, const struct delivery_data *h,
                        const struct delivery_msg *msg)
{
    struct node *n = ctx;
    struct world *w = W;
    struct frame *f = xcalloc(1, sizeof *f);
    f->from = (int)(n - w->nodes);
    f->to = node_of(w, dest);
    f->ch = ch_of(channel);
    f->h = *h;
    snprintf(f->name, sizeof f->name, "%s", msg->name);
    memcpy(&f->id, msg->payload, sizeof f->id);
    if (msg->meta_len) {
        f->meta = xcalloc(1, msg->meta_len);
        memcpy(f->meta, msg->meta, msg->meta_len);
        f->meta_len = msg->meta_len;
    }
    net_send(w, f);
}

static void cb_send_ack(void *ctx, const char *origin, const char *channel, const struct delivery_ack *a)
{
    struct node *n = ctx;
    struct world *w = W;
    struct frame *f = xcalloc(1, sizeof *f);
    f->ack = true;
    f->from = (int)(n - w->nodes);
    f->to = node_of(w, origin);
    f->ch = ch_of(channel);
    f->a = *a;
    if (a->n_exceptions) {
        f->exc = xcalloc(a->n_exceptions, sizeof *f->exc);
        memcpy(f->exc, a->exceptions, a->n_exceptions * sizeof *f->exc);
    }
    f->a.exceptions = f->exc;
    net_send(w, f);
}

static void cb_verdict(void *ctx, const char *dest, const char *channel, uint64_t id, int v)
{
    struct node *n = ctx;
    struct world *w = W;
    if (id >= w->nm) {
        violate(w, "verdict for unknown message %" PRIu64, id);
        return;
    }
    struct msgrec *m = &w->m[id];
    if (m->origin_pid != n->pid)
        violate(w, "verdict for message %" PRIu64 " reached pid %d, sent by pid %d", id, n->pid, m->origin_pid);
    if (getenv("DSIM_TRACE") && id == strtoull(getenv("DSIM_TRACE"), NULL, 0))
        fprintf(stderr, "t=%" PRIu64 " verdict %" PRIu64 ": %d\n", w->now, id, v);
    if (m->sverdict != -1)
        violate(w, "message %" PRIu64 " got a second verdict (%d after %d)", id, v, m->sverdict);
    m->sverdict = v;
    w->last_verdict_at = w->now;
    if (v >= 0 && v < 5)
        w->verdicts[v]++;
    if (v == DELIVERY_V_DELIVERED || v == DELIVERY_V_NO_SUCH_NAME || v == DELIVERY_V_TOO_LARGE) {
        if (m->delivered != 1)
            violate(w, "message %" PRIu64 " acknowledged (%s) but handed to an app %d times", id,
                    delivery_verdict_name(v), m->delivered);
        else if (m->rverdict != v)
            violate(w, "message %" PRIu64 ": sender told %s, receiver said %s", id, delivery_verdict_name(v),
                    delivery_verdict_name(m->rverdict));
    } else if (v == DELIVERY_V_PEER_RESTARTED) {
        if (m->delivered && m->delivered_pid == w->nodes[m->dest].pid && w->nodes[m->dest].alive)
            violate(w, "message %" PRIu64 ": PEER_RESTARTED but the running incarnation of n%d has it", id,
                    m->dest);
        else if (w->nodes[m->dest].pid == m->dest_pid_at_send && w->nodes[m->dest].alive && !m->stale_view)
            violate(w, "message %" PRIu64 " (pid %d -> n%d pid %d, %s): PEER_RESTARTED but n%d did not restart"
                    " (its epoch %" PRIu64 ", pinned by the sender %" PRIu64 ")", id, m->origin_pid, m->dest,
                    m->dest_pid_at_send, ch_name[m->ch], m->dest, w->nodes[m->dest].epoch,
                    delivery_peer_epoch(n->d, dest));
    } else {
        violate(w, "message %" PRIu64 ": unexpected verdict %d", id, v);
    }
    (void)dest;
    (void)channel;
}

static void cb_window_open(void *ctx, const char *dest, const char *channel)
{
    struct node *n = ctx;
    struct world *w = W;
    int i = (int)(n - w->nodes);
    /* Drained from the event loop, not inside the core's call. */
    push(w, (struct ev){ .time = w->now, .type = EV_SEND, .node = i, .peer = node_of(w, dest),
                         .arg = (uint64_t)ch_of(channel) | 0x100 });
}

/* Accept one message (already known to fit) and record it in the oracle. */
static bool app_commit(struct world *w, int i, int dest, int ch, bool nobody)
{
    struct node *n = &w->nodes[i];
    uint64_t id = w->nm;
    if (w->nm == w->capm) {
        w->capm = w->capm ? w->capm * 2 : 4096;
        w->m = realloc(w->m, w->capm * sizeof *w->m);
        if (!w->m)
            exit(2);
    }
    struct msgrec *m = &w->m[w->nm];
    memset(m, 0, sizeof *m);
    m->origin_pid = n->pid;
    m->dest = dest;
    m->ch = ch;
    m->expect = nobody ? DELIVERY_V_NO_SUCH_NAME : DELIVERY_V_DELIVERED;
    m->sverdict = -1;
    m->delivered_pid = -1;
    m->dest_pid_at_send = w->nodes[dest].pid;
    m->sent_at = w->now;
    uint64_t pinned = delivery_peer_epoch(n->d, w->names[dest]);
    m->stale_view = pinned != 0 && pinned != w->nodes[dest].epoch;
    struct delivery_msg dm = { .name = nobody ? "nobody" : "inbox", .payload = &id, .len = sizeof id };
    if (ch == CH_CAUSAL) {
        /* The stamp names the epoch the core will send to: the pinned one,
         * else (never reached yet) what the member table says. */
        uint64_t e = delivery_peer_epoch(n->d, w->names[dest]);
        const uint8_t *st;
        if (causal_stamp(n->c, w->names[dest], e ? e : w->nodes[dest].epoch, &st, &dm.meta_len) != 0) {
            violate(w, "causal_stamp failed");
            return false;
        }
        dm.meta = st;
        dm.meta_epoch = e ? e : w->nodes[dest].epoch;
    }
    w->nm++;
    /* The send event in the oracle's clock. */
    w->vc[ch][n->pid][n->pid]++;
    memcpy(m->vc, w->vc[ch][n->pid], sizeof m->vc);
    m->link_idx = w->link_next[n->pid][dest][ch]++;
    enum delivery_send_result r = delivery_send(n->d, w->names[dest], ch_name[ch], id, &dm, w->now);
    if (r != DELIVERY_SEND_OK) {
        violate(w, "delivery_send said %d after delivery_can_send said yes", (int)r);
        return false;
    }
    w->accepted++;
    return true;
}

/* nobody is drawn per message; the queued ones keep theirs in the low bit of the id. */
static void app_try_send(struct world *w, int i, int dest, int ch)
{
    struct node *n = &w->nodes[i];
    /* What waited goes first, in order. */
    while (n->q[dest][ch]) {
        if (!delivery_can_send(n->d, w->names[dest], ch_name[ch], 8))
            return;
        struct pending *p = n->q[dest][ch];
        n->q[dest][ch] = p->next;
        if (!p->next)
            n->qt[dest][ch] = &n->q[dest][ch];
        n->qn[dest][ch]--;
        app_commit(w, i, dest, ch, p->id & 1);
        free(p);
    }
}

static void app_new_send(struct world *w, int i, int dest, int ch)
{
    struct node *n = &w->nodes[i];
    w->sends++;
    bool nobody = uni(&w->rng) < w->p.nobody;
    if (!n->q[dest][ch] && delivery_can_send(n->d, w->names[dest], ch_name[ch], 8)) {
        app_commit(w, i, dest, ch, nobody);
        return;
    }
    if (n->qn[dest][ch] >= APP_BACKLOG)
        return;    /* the application gives up on this one: never accepted, no verdict due */
    w->app_waits++;
    struct pending *p = xcalloc(1, sizeof *p);
    p->id = nobody;
    *n->qt[dest][ch] = p;
    n->qt[dest][ch] = &p->next;
    n->qn[dest][ch]++;
}

/* ---- nodes ---- */

static void node_boot(struct world *w, int i)
{
    struct node *n = &w->nodes[i];
    if (w->npids == MAX_PIDS) {
        violate(w, "too many incarnations");
        return;
    }
    n->pid = w->npids++;
    w->pid_node[n->pid] = i;
    n->epoch = 1000 + w->now * 10 + (uint64_t)n->pid;   /* grows across restarts, like wall-clock ms */
    struct delivery_env env = { .ctx = n, .transmit = cb_transmit, .send_ack = cb_send_ack,
                                .deliver = cb_deliver, .verdict = cb_verdict, .window_open = cb_window_open };
    struct delivery_config cfg = { .epoch = n->epoch, .window = w->p.window };
    n->d = delivery_new(&cfg, &env);
    struct causal_env cenv = { .ctx = n, .deliver = causal_cb };
    struct causal_config ccfg = { .self = w->names[i], .epoch = n->epoch, .max_held = 64 };
    n->c = causal_new(&ccfg, &cenv);
    if (!n->d || !n->c) {
        fprintf(stderr, "delivery_sim: core init failed\n");
        exit(2);
    }
    n->alive = true;
    n->tick_at = NO_TIME;
    for (int j = 0; j < MAX_NODES; j++)
        for (int c = 0; c < NCH; c++) {
            n->q[j][c] = NULL;
            n->qt[j][c] = &n->q[j][c];
            n->qn[j][c] = 0;
        }
}

static void sum_stats(struct world *w, const struct node *n)
{
    const struct delivery_stats *d = delivery_get_stats(n->d);
    const struct causal_stats *c = causal_get_stats(n->c);
    w->ds.sent += d->sent;
    w->ds.retransmitted += d->retransmitted;
    w->ds.duplicates += d->duplicates;
    w->ds.out_of_order += d->out_of_order;
    w->ds.stale_epoch += d->stale_epoch;
    w->ds.dropped_on_restart += d->dropped_on_restart;
    w->ds.retries += d->retries;
    w->ds.refused_full += d->refused_full;
    w->ds.acks_sent += d->acks_sent;
    w->cs.held += c->held;
    w->cs.refused_full += c->refused_full;
    w->cs.stale += c->stale;
    if (c->max_held_seen > w->cs.max_held_seen)
        w->cs.max_held_seen = c->max_held_seen;
}

static void node_down(struct world *w, int i)
{
    struct node *n = &w->nodes[i];
    sum_stats(w, n);
    delivery_free(n->d);
    causal_free(n->c);
    n->d = NULL;
    n->c = NULL;
    n->alive = false;
    for (int j = 0; j < MAX_NODES; j++)
        for (int c = 0; c < NCH; c++) {
            struct pending *p = n->q[j][c];
            while (p) {
                struct pending *x = p->next;
                free(p);
                p = x;
            }
            n->q[j][c] = NULL;
            n->qt[j][c] = &n->q[j][c];
            n->qn[j][c] = 0;
        }
}

/* i's view of j changes; the driver tells the core (and the causal core
 * the epoch, retiring older ones). */
static void view(struct world *w, int i, int j, bool up)
{
    struct node *n = &w->nodes[i];
    if (!n->alive || n->up[j] == up)
        return;
    n->up[j] = up;
    if (up) {
        causal_node_epoch(n->c, w->names[j], w->nodes[j].epoch);
        /* Half the time as a handshake would (the epoch), half as for a
         * node behind forwarding hops (unknown: the core probes). */
        delivery_peer_up(n->d, w->names[j], rng_next(&w->rng) & 1 ? w->nodes[j].epoch : 0, w->now);
    } else {
        delivery_peer_down(n->d, w->names[j]);
    }
    schedule_tick(w, i);
}

static bool reachable(const struct world *w, int i, int j)
{
    return w->nodes[i].alive && w->nodes[j].alive && !(cut(w, i, j) && !w->part_silent);
}

static void refresh_views(struct world *w)
{
    for (int i = 0; i < w->p.n; i++)
        for (int j = 0; j < w->p.n; j++)
            if (i != j)
                view(w, i, j, reachable(w, i, j));
}

/* ---- the loop ---- */

static void handle(struct world *w, struct ev *e)
{
    struct node *n = &w->nodes[e->node];
    switch (e->type) {
    case EV_FRAME: {
        struct frame *f = e->f;
        /* A connection reset kills what was in flight on it; a crashed
         * node gets nothing, a restarted one what is still under way. */
        if (!n->alive || f->gen != w->gen[f->from][f->to]) {
            w->lost++;
            break;
        }
        if (f->ack) {
            delivery_on_ack(n->d, w->names[f->from], ch_name[f->ch], &f->a, w->now);
        } else {
            struct delivery_msg m = { .name = f->name, .payload = &f->id, .len = sizeof f->id,
                                      .meta = f->meta, .meta_len = f->meta_len };
            delivery_on_data(n->d, w->names[f->from], ch_name[f->ch], &f->h, &m, w->now);
        }
        schedule_tick(w, e->node);
        break;
    }
    case EV_TICK:
        if (!n->alive || e->time != n->tick_at || (uint64_t)n->pid != e->arg)
            break;
        n->tick_at = NO_TIME;
        delivery_tick(n->d, w->now);
        schedule_tick(w, e->node);
        break;
    case EV_SEND:
        if (!n->alive)
            break;
        if (e->arg & 0x100) {
            app_try_send(w, e->node, e->peer, (int)(e->arg & 0xff));
        } else if (e->arg & 0x200) {
            /* The node's own send process: one message, then the next. */
            if (w->quiet || (w->p.max_sends && w->sends >= w->p.max_sends))
                break;
            int to = (int)below(&w->rng, (uint64_t)w->p.n - 1);
            if (to >= e->node)
                to++;
            int ch;
            do
                ch = (int)below(&w->rng, NCH);
            while (!(w->p.channels_mask & (1 << ch)));
            for (int b = 0; b < (w->p.burst ? w->p.burst : 1); b++)
                app_new_send(w, e->node, to, ch);
            push(w, (struct ev){ .time = w->now + 1 + below(&w->rng, 2 * w->p.send_every_ms), .type = EV_SEND,
                                 .node = e->node, .arg = 0x200 });
        } else if (!w->quiet && (w->p.channels_mask & (1 << e->arg))) {
            app_new_send(w, e->node, e->peer, (int)e->arg);
        }
        schedule_tick(w, e->node);
        break;
    case EV_PART_START:
        if (w->quiet)
            break;
        for (int i = 0; i < w->p.n; i++)
            w->part_group[i] = (int)((e->arg >> i) & 1);
        w->part_silent = w->p.silent_partitions && (rng_next(&w->rng) & 1);
        refresh_views(w);
        break;
    case EV_PART_END:
        for (int i = 0; i < w->p.n; i++)
            w->part_group[i] = -1;
        refresh_views(w);
        break;
    case EV_RESET_UP: {
        /* The connection between the pair was reset a moment ago; now back. */
        refresh_views(w);
        break;
    }
    case EV_CRASH:
        if (!n->alive || w->quiet)
            break;
        node_down(w, e->node);
        for (int j = 0; j < w->p.n; j++) {
            w->gen[e->node][j]++;
            w->gen[j][e->node]++;
            w->nodes[e->node].up[j] = false;
        }
        /* A silent crash: the others are not told (as through a forwarding
         * overlay, no handshake of theirs sees it), so they learn the new
         * epoch from the restarted node's frames or its refusals. */
        n->silent_crash = rng_next(&w->rng) & 1;
        if (!n->silent_crash)
            refresh_views(w);
        push(w, (struct ev){ .time = w->now + 200 + below(&w->rng, 2000), .type = EV_RESTART, .node = e->node });
        break;
    case EV_RESTART:
        if (n->alive)
            break;
        node_boot(w, e->node);
        w->restarts_done++;
        memset(n->up, 0, sizeof n->up);
        /* The member table tells every node the new epoch either way. */
        for (int j = 0; j < w->p.n; j++)
            if (j != e->node && w->nodes[j].alive)
                causal_node_epoch(w->nodes[j].c, w->names[e->node], n->epoch);
        refresh_views(w);
        if (!w->quiet)
            push(w, (struct ev){ .time = w->now + 1, .type = EV_SEND, .node = e->node, .arg = 0x200 });
        break;
    }
}

static void reset_pair(struct world *w, int a, int b)
{
    w->gen[a][b]++;
    w->gen[b][a]++;
    view(w, a, b, false);
    view(w, b, a, false);
    push(w, (struct ev){ .time = w->now + 5 + below(&w->rng, 50), .type = EV_RESET_UP, .node = a, .peer = b });
}

static void world_free(struct world *w)
{
    for (int i = 0; i < w->p.n; i++)
        if (w->nodes[i].alive)
            node_down(w, i);
    for (size_t i = 0; i < w->nheap; i++)
        frame_free(w->heap[i].f);
    free(w->heap);
    free(w->m);
    free(w);
}

struct result {
    char why[600];
    struct world *w;
};

static int run_world(struct world *w, struct result *res)
{
    W = w;
    for (int i = 0; i < w->p.n; i++) {
        snprintf(w->names[i], sizeof w->names[i], "n%d", i);
        w->part_group[i] = -1;
    }
    for (int i = 0; i < w->p.n; i++)
        node_boot(w, i);
    refresh_views(w);
    for (int i = 0; i < w->p.n; i++)
        push(w, (struct ev){ .time = below(&w->rng, 10), .type = EV_SEND, .node = i, .arg = 0x200 });
    /* Faults during the active phase, drawn from the seed. */
    for (int k = 0; k < w->p.partitions; k++) {
        uint64_t t = below(&w->rng, w->p.active_ms);
        uint64_t mask = 1 + below(&w->rng, (UINT64_C(1) << w->p.n) - 2);
        push(w, (struct ev){ .time = t, .type = EV_PART_START, .arg = mask });
        push(w, (struct ev){ .time = t + 100 + below(&w->rng, 3000), .type = EV_PART_END });
    }
    uint64_t reset_at[64];
    int nresets = w->p.resets < 64 ? w->p.resets : 64;
    for (int k = 0; k < nresets; k++)
        reset_at[k] = below(&w->rng, w->p.active_ms);
    for (int k = 0; k < w->p.crashes; k++)
        push(w, (struct ev){ .time = 100 + below(&w->rng, w->p.active_ms), .type = EV_CRASH,
                             .node = (int)below(&w->rng, (uint64_t)w->p.n) });
    int next_reset = 0;
    uint64_t end = w->p.active_ms + 120000;
    while (w->nheap && !w->violation[0]) {
        struct ev e = pop(w);
        if (e.time > end) {
            frame_free(e.f);
            break;
        }
        w->now = e.time;
        while (next_reset < nresets && reset_at[next_reset] <= w->now) {
            int a = (int)below(&w->rng, (uint64_t)w->p.n), b = (int)below(&w->rng, (uint64_t)w->p.n - 1);
            if (b >= a)
                b++;
            reset_pair(w, a, b);
            next_reset++;
        }
        if (!w->quiet && w->now >= w->p.active_ms) {
            /* Faults stop; the network heals; everyone restarts. */
            w->quiet = true;
            w->p.loss = w->p.dup = 0;
            for (int i = 0; i < w->p.n; i++)
                w->part_group[i] = -1;
            for (int i = 0; i < w->p.n; i++)
                if (!w->nodes[i].alive)
                    push(w, (struct ev){ .time = w->now, .type = EV_RESTART, .node = i });
            refresh_views(w);
        }
        handle(w, &e);
        frame_free(e.f);
    }
    if (w->violation[0]) {
        snprintf(res->why, sizeof res->why, "invariant: %s", w->violation);
        return -1;
    }
    /* Liveness: every message of a live origin has its verdict; those whose
     * destination never restarted were delivered. */
    for (uint64_t id = 0; id < w->nm; id++) {
        const struct msgrec *m = &w->m[id];
        bool origin_alive = w->nodes[w->pid_node[m->origin_pid]].pid == m->origin_pid;
        if (!origin_alive)
            continue;
        if (m->sverdict == -1) {
            snprintf(res->why, sizeof res->why,
                     "message %" PRIu64 " (pid %d -> n%d %s #%" PRIu64 ") has no verdict at the end (delivered %d)",
                     id, m->origin_pid, m->dest, ch_name[m->ch], m->link_idx, m->delivered);
            return -1;
        }
        if (m->dest_pid_at_send == w->nodes[m->dest].pid && !m->stale_view && m->sverdict != m->expect) {
            snprintf(res->why, sizeof res->why, "message %" PRIu64 " to a node that never restarted ended %s",
                     id, delivery_verdict_name(m->sverdict));
            return -1;
        }
    }
    for (int i = 0; i < w->p.n; i++)
        for (int j = 0; j < w->p.n; j++)
            for (int c = 0; c < NCH; c++)
                if (w->nodes[i].qn[j][c]) {
                    snprintf(res->why, sizeof res->why, "n%d still has %zu messages waiting for a window to n%d",
                             i, w->nodes[i].qn[j][c], j);
                    return -1;
                }
    if (w->causal_violations[CH_CAUSAL]) {
        snprintf(res->why, sizeof res->why, "%" PRIu64 " causal-order violations on the causal channel",
                 w->causal_violations[CH_CAUSAL]);
        return -1;
    }
    return 0;
}

/* ---- scenarios ---- */

static struct world *new_world(uint64_t seed, const struct params *p)
{
    struct world *w = xcalloc(1, sizeof *w);
    w->seed = seed;
    w->rng = seed;
    w->p = *p;
    return w;
}

static struct params draw(uint64_t *r)
{
    struct params p = {
        .n = 3 + (int)below(r, 3),
        .loss = uni(r) * 0.3,
        .dup = uni(r) * 0.1,
        .lat_min = 1 + below(r, 5),
        .lat_jitter = below(r, 40),
        .active_ms = 3000 + below(r, 3000),
        .send_every_ms = 2 + below(r, 10),
        .react = uni(r) * 0.5,
        .nobody = 0.03,
        .partitions = (int)below(r, 3),
        .resets = (int)below(r, 6),
        .crashes = (int)below(r, 3),
        .silent_partitions = true,
        .window = (uint32_t)(4 + below(r, 120)),
        .channels_mask = 3,
    };
    return p;
}

struct figures {
    uint64_t accepted, delivered, verdicts[5], lost, frames, dups, plain_violations, restarts;
    uint64_t lat_sum, lat_max, app_waits, last_verdict_at;
    struct delivery_stats ds;
    struct causal_stats cs;
};

static void add_figures(struct figures *f, const struct world *w)
{
    f->accepted += w->accepted;
    f->delivered += w->delivered;
    for (int i = 0; i < 5; i++)
        f->verdicts[i] += w->verdicts[i];
    f->lost += w->lost;
    f->frames += w->frames;
    f->dups += w->dups;
    f->plain_violations += w->causal_violations[CH_PLAIN];
    f->restarts += w->restarts_done;
    f->lat_sum += w->lat_sum;
    f->last_verdict_at = w->last_verdict_at;
    f->app_waits += w->app_waits;
    if (w->lat_max > f->lat_max)
        f->lat_max = w->lat_max;
    f->ds.sent += w->ds.sent;
    f->ds.retransmitted += w->ds.retransmitted;
    f->ds.duplicates += w->ds.duplicates;
    f->ds.out_of_order += w->ds.out_of_order;
    f->ds.stale_epoch += w->ds.stale_epoch;
    f->ds.retries += w->ds.retries;
    f->ds.refused_full += w->ds.refused_full;
    f->ds.acks_sent += w->ds.acks_sent;
    f->cs.held += w->cs.held;
    f->cs.refused_full += w->cs.refused_full;
    f->cs.stale += w->cs.stale;
    if (w->cs.max_held_seen > f->cs.max_held_seen)
        f->cs.max_held_seen = w->cs.max_held_seen;
}

static void print_core_figures(const struct figures *f)
{
    printf("    cores: %" PRIu64 " data frames sent, %" PRIu64 " resent, %" PRIu64 " acks; received %" PRIu64
           " duplicates, %" PRIu64 " out of order, %" PRIu64 " for another epoch; window full %" PRIu64
           " times; causal: %" PRIu64 " held (at most %" PRIu64 " at once), %" PRIu64 " refused full, %" PRIu64
           " dropped as stale; latency mean %.1f ms, max %" PRIu64 " ms\n",
           f->ds.sent, f->ds.retransmitted, f->ds.acks_sent, f->ds.duplicates, f->ds.out_of_order,
           f->ds.stale_epoch, f->ds.refused_full, f->cs.held, f->cs.max_held_seen, f->cs.refused_full,
           f->cs.stale, f->delivered ? (double)f->lat_sum / (double)f->delivered : 0.0, f->lat_max);
}

static int run_seed(const char *scenario, uint64_t seed, const struct params *p, struct figures *fig,
                    bool verbose)
{
    struct world *w = new_world(seed, p);
    w->verbose = verbose;
    struct result res = { .w = w };
    int rc = run_world(w, &res);
    if (rc != 0) {
        printf("FAIL %s (seed %" PRIu64 "): %s\n", scenario, seed, res.why);
        printf("reproduce: delivery_sim --scenario %s --seed %" PRIu64 "\n", scenario, seed);
    } else if (verbose) {
        printf("  seed %" PRIu64 ": n=%d loss=%.2f dup=%.2f jitter=%" PRIu64 " window=%u: %" PRIu64
               " accepted, %" PRIu64 " delivered, %" PRIu64 " restarts, plain violations %" PRIu64 "\n",
               seed, p->n, p->loss, p->dup, p->lat_jitter, p->window, w->accepted, w->delivered,
               w->restarts_done, w->causal_violations[CH_PLAIN]);
    }
    for (int i = 0; i < w->p.n; i++)
        if (w->nodes[i].alive)
            node_down(w, i);
    if (fig)
        add_figures(fig, w);
    world_free(w);
    return rc;
}

static uint64_t base_seed;
static int swarm_seeds = 80;
static bool verbose;

/* 20 % loss, 5 % duplication, heavy reordering, no crashes: everything
 * arrives exactly once and in order. */
static int sc_loss20(void)
{
    struct params p = { .n = 4, .loss = 0.2, .dup = 0.05, .lat_min = 1, .lat_jitter = 30, .active_ms = 5000,
                        .send_every_ms = 2, .nobody = 0.02, .window = 128, .channels_mask = 1 };
    struct figures f = { 0 };
    if (run_seed("loss20", base_seed, &p, &f, verbose))
        return -1;
    if (f.verdicts[DELIVERY_V_DELIVERED] + f.verdicts[DELIVERY_V_NO_SUCH_NAME] != f.accepted) {
        printf("FAIL loss20: %" PRIu64 " accepted but %" PRIu64 " delivered verdicts\n", f.accepted,
               f.verdicts[0] + f.verdicts[1]);
        return -1;
    }
    printf("  loss20: 20%% loss, 5%% dup, 1-31 ms jitter: %" PRIu64 " messages accepted, %" PRIu64
           " delivered exactly once in order (%" PRIu64 " no such name), %" PRIu64 " of %" PRIu64 " frames lost\n",
           f.accepted, f.delivered, f.verdicts[DELIVERY_V_NO_SUCH_NAME], f.lost, f.frames);
    print_core_figures(&f);
    return 0;
}

/* Loud and silent partitions and connection resets, no loss otherwise:
 * what was sent during a partition arrives after it heals. */
static int sc_partitions(void)
{
    struct params p = { .n = 6, .loss = 0.01, .lat_min = 1, .lat_jitter = 5, .active_ms = 8000,
                        .send_every_ms = 5, .window = 64, .partitions = 4, .resets = 20,
                        .silent_partitions = true, .channels_mask = 3, .react = 0.2 };
    struct figures f = { 0 };
    if (run_seed("partitions", base_seed, &p, &f, verbose))
        return -1;
    printf("  partitions: 6 nodes, 4 partitions (loud or silent), 20 resets: %" PRIu64 " accepted, all %" PRIu64
           " delivered once and in order\n", f.accepted, f.delivered);
    print_core_figures(&f);
    return 0;
}

/* Crashes and restarts: new epochs on both sides. */
static int sc_restarts(void)
{
    struct params p = { .n = 4, .loss = 0.05, .dup = 0.02, .lat_min = 2, .lat_jitter = 20, .active_ms = 6000,
                        .send_every_ms = 4, .window = 32, .crashes = 4, .channels_mask = 3, .react = 0.2 };
    struct figures f = { 0 };
    if (run_seed("restarts", base_seed, &p, &f, verbose))
        return -1;
    printf("  restarts: %" PRIu64 " restarts: %" PRIu64 " accepted, %" PRIu64 " delivered, %" PRIu64
           " reported peer-restarted, none twice\n", f.restarts, f.accepted, f.delivered,
           f.verdicts[DELIVERY_V_PEER_RESTARTED]);
    print_core_figures(&f);
    return 0;
}

/* Causal against plain under reordering: replies to deliveries build
 * chains across nodes; the plain channel is seen out of causal order, the
 * causal one never. */
static int sc_causal(void)
{
    struct figures f = { 0 };
    uint64_t r = base_seed;
    for (int k = 0; k < 6; k++) {
        struct params p = { .n = 4, .loss = 0.05, .dup = 0.02, .lat_min = 1, .lat_jitter = 40, .active_ms = 3000,
                            .send_every_ms = 8, .react = 0.6, .window = 64, .channels_mask = 3 };
        if (run_seed("causal", rng_next(&r), &p, &f, verbose))
            return -1;
    }
    if (f.plain_violations == 0) {
        printf("FAIL causal: the plain channel never violated causal order: the scenario shows nothing\n");
        return -1;
    }
    printf("  causal: 6 runs, %" PRIu64 " messages: plain channel out of causal order %" PRIu64
           " times, causal channel 0\n", f.delivered, f.plain_violations);
    print_core_figures(&f);
    return 0;
}

static int sc_swarm(void)
{
    struct figures f = { 0 };
    uint64_t r = base_seed;
    for (int k = 0; k < swarm_seeds; k++) {
        uint64_t seed = rng_next(&r);
        uint64_t d = seed;
        struct params p = draw(&d);
        if (run_seed("swarm1", seed, &p, &f, verbose))
            return -1;
    }
    printf("  swarm: %d seeds (3-5 nodes, loss 0-30%%, dup 0-10%%, jitter, partitions, resets, crashes): %" PRIu64
           " accepted, %" PRIu64 " delivered, %" PRIu64 " peer-restarted, %" PRIu64 " restarts\n",
           swarm_seeds, f.accepted, f.delivered, f.verdicts[DELIVERY_V_PEER_RESTARTED], f.restarts);
    print_core_figures(&f);
    return 0;
}

/* One seed of the swarm, to replay a failure. */
static int sc_swarm1(void)
{
    uint64_t d = base_seed;
    struct params p = draw(&d);
    return run_seed("swarm1", base_seed, &p, NULL, true);
}

/* Senders far faster than a small window: back-pressure, never loss. */
static int sc_backpressure(void)
{
    struct params p = { .n = 3, .loss = 0.1, .dup = 0.02, .lat_min = 5, .lat_jitter = 10, .active_ms = 3000,
                        .send_every_ms = 20, .burst = 50, .window = 8, .channels_mask = 3, .react = 0.1 };
    struct figures f = { 0 };
    if (run_seed("backpressure", base_seed, &p, &f, verbose))
        return -1;
    if (f.ds.refused_full == 0) {
        printf("FAIL backpressure: the window never filled: the scenario shows nothing\n");
        return -1;
    }
    printf("  backpressure: window 8, bursts of 50: the window was full %" PRIu64 " times, %" PRIu64
           " sends waited for it; all %" PRIu64 " accepted delivered\n", f.ds.refused_full, f.app_waits,
           f.delivered);
    print_core_figures(&f);
    return 0;
}

/* Two nodes saturating the link between them (both ways, 2-3 ms round
 * trip, window 128) under loss: messages with their verdict per virtual
 * second. A figure, not a pass condition; the invariants are checked as
 * everywhere. */
static int sc_goodput(void)
{
    static const double losses[] = { 0, 0.01, 0.05, 0.2 };
    printf("  goodput: 2 nodes sending both ways, RTT 2-3 ms, window 128, 8000 messages:");
    for (size_t k = 0; k < sizeof losses / sizeof *losses; k++) {
        struct params p = { .n = 2, .loss = losses[k], .lat_min = 1, .lat_jitter = 1, .active_ms = 10000000,
                            .send_every_ms = 1, .burst = 64, .max_sends = 8000, .window = 128,
                            .channels_mask = 1 };
        struct figures f = { 0 };
        if (run_seed("goodput", base_seed + k, &p, &f, verbose))
            return -1;
        double secs = (double)(f.last_verdict_at ? f.last_verdict_at : 1) / 1000.0;
        printf(" loss %g%%: %.0f msg/s%s", losses[k] * 100, (double)f.accepted / secs,
               k + 1 < sizeof losses / sizeof *losses ? ";" : "\n");
    }
    return 0;
}

struct scenario { const char *name; int (*run)(void); bool in_all; };
static const struct scenario scenarios[] = {
    { "loss20", sc_loss20, true },
    { "partitions", sc_partitions, true },
    { "restarts", sc_restarts, true },
    { "backpressure", sc_backpressure, true },
    { "goodput", sc_goodput, true },
    { "causal", sc_causal, true },
    { "swarm", sc_swarm, true },
    { "swarm1", sc_swarm1, false },
};

static double real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    base_seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--seed") == 0 && more)
            base_seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--scenario") == 0 && more)
            only = argv[++i];
        else if (strcmp(argv[i], "--seeds") == 0 && more)
            swarm_seeds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = true;
        else {
            fprintf(stderr, "usage: %s [--seed N] [--scenario NAME] [--seeds K] [--verbose]\nscenarios:", argv[0]);
            for (size_t k = 0; k < sizeof scenarios / sizeof *scenarios; k++)
                fprintf(stderr, " %s", scenarios[k].name);
            fprintf(stderr, "\n");
            return 2;
        }
    }
    int passed = 0, failed = 0;
    bool found = false;
    for (size_t k = 0; k < sizeof scenarios / sizeof *scenarios; k++) {
        const struct scenario *sc = &scenarios[k];
        if (only ? strcmp(only, sc->name) != 0 : !sc->in_all)
            continue;
        found = true;
        double t0 = real_ms();
        if (sc->run() == 0) {
            printf("PASS %s (seed %" PRIu64 ", real %.0f ms)\n", sc->name, base_seed, real_ms() - t0);
            passed++;
        } else {
            printf("reproduce: delivery_sim --scenario %s --seed %" PRIu64 "\n", sc->name, base_seed);
            failed++;
        }
        fflush(stdout);
    }
    if (!found) {
        fprintf(stderr, "no scenario %s\n", only);
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
