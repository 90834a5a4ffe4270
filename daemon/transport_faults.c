/* transport_faults: fault injection in the transport (daemon/faults.h
 * decides; this applies). Only while a rule exists does a frame take this
 * path: it is written whole into a `struct held` (sealed, then its bits
 * flipped), and either queued at once (once or twice) or put on the
 * transport's heap of held frames, ordered by (due time, arrival), which
 * one timer drains. A held frame points at its lane or connection;
 * peer_kill and conn_close clear those pointers, so a frame whose target
 * went away is dropped when due. A lane's held bytes count in its load, so
 * its bound and backpressure hold while frames are delayed. */
#include "transport_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "faults.h"
#include "frame.h"
#include "log.h"

static uint64_t tp_rand(void *ctx)
{
    struct transport *t = ctx;
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Two daemons started in the same millisecond must not draw alike. */
uint64_t tp_rng_seed(const void *salt)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t z = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    z ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)salt;
    /* splitmix64: xorshift64* needs a well-mixed, non-zero state. */
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 0x9E3779B97F4A7C15ULL;
}

struct held *tp_held_new(size_t len, size_t key_len)
{
    struct held *h = calloc(1, sizeof *h + len + key_len);
    if (h) {
        h->len = len;
        h->key_len = key_len;
    }
    return h;
}

static bool held_before(const struct held *a, const struct held *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void held_arm(struct transport *t)
{
    if (!t->n_held) {
        event_del(t->held_timer);
        return;
    }
    uint64_t now = clock_now_ms(), due = t->held[0]->due;
    struct timeval tv = tp_ms_tv(due > now ? due - now : 0);
    evtimer_add(t->held_timer, &tv);
}

/* Takes h; on failure (out of memory) the frame is dropped, as a full
 * queue of a real delaying link would. */
static void held_push(struct transport *t, struct held *h)
{
    if (t->n_held == t->cap_held) {
        size_t cap = t->cap_held ? 2 * t->cap_held : 64;
        struct held **n = realloc(t->held, cap * sizeof *n);
        if (!n) {
            log_error("out of memory holding a delayed frame; dropped");
            if (h->lane)
                h->lane->held_bytes -= h->len * (h->twice ? 2 : 1);
            free(h);
            return;
        }
        t->held = n;
        t->cap_held = cap;
    }
    h->seq = t->held_seq++;
    size_t i = t->n_held++;
    while (i > 0 && held_before(h, t->held[(i - 1) / 2])) {
        t->held[i] = t->held[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->held[i] = h;
    if (i == 0)
        held_arm(t);
}

struct held *tp_held_pop(struct transport *t)
{
    struct held *top = t->held[0], *last = t->held[--t->n_held];
    size_t i = 0, n = t->n_held;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && held_before(t->held[c + 1], t->held[c]))
            c++;
        if (!held_before(t->held[c], last))
            break;
        t->held[i] = t->held[c];
        i = c;
    }
    if (n)
        t->held[i] = last;
    return top;
}

/* A closing connection: its held frames will find nothing when due. */
void tp_held_forget_conn(struct transport *t, const struct conn *c)
{
    for (size_t i = 0; i < t->n_held; i++)
        if (t->held[i]->conn == c)
            t->held[i]->conn = NULL;
}

void tp_held_forget_peer(struct transport *t, const struct peer *p)
{
    for (size_t i = 0; i < t->n_held; i++)
        if (t->held[i]->lane && t->held[i]->lane->p == p)
            t->held[i]->lane = NULL;
}


/* The peer faults judge a connection's frames by: "" while it is unknown
 * (a seed before its Welcome, a Hello that named no valid node). */
const char *tp_conn_fault_peer(const struct conn *c)
{
    if (c->kind == CONN_IN)
        return c->claimed;
    return c->peer ? c->peer->node : "";
}

static const char *conn_fault_channel(const struct conn *c)
{
    if (c->kind == CONN_OUT_CONTROL)
        return FAULTS_CONTROL_CHANNEL;
    if (c->kind == CONN_OUT_DATA)
        return c->lane ? c->t->chans[c->lane->ch].name : "";
    return c->channel;
}

/* A held frame's bytes into a connection's output, once or twice. */
static void held_to_conn(struct conn *c, const struct held *h)
{
    if (c->closed || !c->bev || c->doom[0])
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (int i = 0; i < (h->twice ? 2 : 1); i++)
        if (evbuffer_add(out, h->bytes, h->len) == 0)
            c->t->stats.frames_out++;
}

/* conn_send under faults: the frame is packed into a held buffer, sealed,
 * and its bits flipped, then written now or when due. A handshake frame is
 * never sent twice: a second Hello or Welcome is a protocol error that
 * would only ever close the connection, which no network does. */
int tp_conn_send_faulty(struct conn *c, const Partisan__Peer__PeerFrame *f, size_t env_len, size_t size)
{
    struct transport *t = c->t;
    struct faults_action a;
    uint64_t now = clock_now_ms();
    faults_decide(t->faults, FAULTS_OUT, tp_conn_fault_peer(c), conn_fault_channel(c), size, FRAME_PEER_HEADER,
                  now, tp_rand, t, &a);
    if (a.drop)
        return 0;
    struct held *h = tp_held_new(size, 0);
    if (!h) {
        log_error("out of memory queueing a frame to %s", c->remote);
        return -1;
    }
    partisan__peer__peer_frame__pack(f, h->bytes + frame_env_offset(FRAME_KIND_PEER));
    frame_seal(FRAME_KIND_PEER, h->bytes, env_len, 0);
    faults_apply_flips(&a, h->bytes, size);
    bool handshake = f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_HELLO ||
                     f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_WELCOME ||
                     f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_REFUSE;
    h->twice = a.duplicate && !handshake;
    if (a.deliver_at > now) {
        h->due = a.deliver_at;
        h->conn = c;
        held_push(t, h);
        return 0;
    }
    held_to_conn(c, h);
    free(h);
    return 0;
}

/* Whether faults drop this incoming frame before it is acted on. The peer
 * is known once its Hello (inbound) or Welcome (outbound) named it, and
 * the Hello or Welcome itself is judged by the name it gives. */
bool tp_fault_in_drops(struct conn *c, const Partisan__Peer__PeerFrame *f, size_t size)
{
    struct transport *t = c->t;
    const char *peer = "", *channel = "";
    if (c->kind == CONN_IN) {
        if (c->established) {
            peer = c->node;
            channel = c->channel;
        } else if (f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_HELLO) {
            peer = f->hello->node;
            channel = f->hello->channel;
        }
    } else if (c->peer) {
        peer = c->peer->node;
        if (!peer[0] && f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_WELCOME)
            peer = f->welcome->node;
        channel = conn_fault_channel(c);
    }
    if (!peer[0])
        return false;
    struct faults_action a;
    faults_decide(t->faults, FAULTS_IN, peer, channel, size, FRAME_PEER_HEADER, clock_now_ms(), tp_rand, t, &a);
    return a.drop;
}

/* A lane's frame under faults, sealed in h (which this takes): dropped,
 * held until due, or queued now, once or twice, with its bits flipped. */
int tp_lane_send_faulty(struct lane *l, struct held *h)
{
    struct transport *t = l->p->t;
    struct faults_action a;
    uint64_t now = clock_now_ms();
    faults_decide(t->faults, FAULTS_OUT, l->p->node, t->chans[l->ch].name, h->len, FRAME_PEER_HEADER, now,
                  tp_rand, t, &a);
    if (a.drop) {
        free(h);
        return 0;
    }
    faults_apply_flips(&a, h->bytes, h->len);
    h->twice = a.duplicate;
    if (a.deliver_at > now) {
        h->due = a.deliver_at;
        h->lane = l;
        l->held_bytes += h->len * (h->twice ? 2 : 1);
        held_push(t, h);
        return 0;
    }
    int rc = 0;
    for (int i = 0; i < (h->twice ? 2 : 1) && rc == 0; i++)
        rc = tp_lane_put(l, h->bytes, h->len, h->bytes + h->len, h->key_len, h->tag);
    free(h);
    return rc;
}

void tp_held_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct transport *t = arg;
    uint64_t now = clock_now_ms();
    /* One at a time off the heap: what a release calls back into may hold
     * more frames or forget targets meanwhile. */
    while (t->n_held && t->held[0]->due <= now) {
        struct held *h = tp_held_pop(t);
        if (h->lane) {
            struct lane *l = h->lane;
            l->held_bytes -= h->len * (h->twice ? 2 : 1);
            int rc = 0;
            for (int i = 0; i < (h->twice ? 2 : 1) && rc == 0; i++)
                rc = tp_lane_put(l, h->bytes, h->len, h->bytes + h->len, h->key_len, h->tag);
            if (rc != 0)
                log_error("out of memory queueing a delayed frame to node \"%s\"", l->p->node);
            tp_lane_wake(l);
        } else if (h->conn) {
            held_to_conn(h->conn, h);
        }
        free(h);
    }
    held_arm(t);
}

void transport_set_faults(struct transport *t, struct faults *f)
{
    t->faults = f;
}
