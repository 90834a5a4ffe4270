/* libFuzzer harness: the reliable-delivery and causal cores (daemon/delivery.c,
 * daemon/causal.c), driven by a hostile or broken peer.
 *
 * One delivery core and one causal core (channel "causal") wired as
 * daemon/reliable.c wires them: env->deliver hands a "causal" message with
 * meta to causal_receive (name and payload packed the same way), causal's
 * deliver reports released messages with delivery_report, a send on
 * "causal" takes a stamp only after delivery_can_send, peer_up/left reach
 * causal_node_epoch/left. The input is a script:
 *   byte 0  config: window (bits 0-2), window bytes (3-4), epoch 1..4 (5-6),
 *           tiny causal buffer (7)
 *   ops     one byte: low 4 bits the op, high 4 bits `arg`; operands follow
 *           (past the end they read 0):
 *     0 data      origin, channel, epochs, seq, acked_through, meta, payload
 *     1 ack       from, channel, epochs, cum, sack words, exceptions, refused
 *     2 ack_last  an honest answer to one of the last frames transmitted
 *     3 send      dest, channel, length, meta + meta_epoch, can_send first
 *     4 peer_up   5 peer_down   6 peer_left   7 tick, clock += dts[arg]
 *     8 report a seq deliver left PENDING   9 report any origin/seq/verdict
 *    10 policy: what the app answers, and which callbacks send (re-entry)
 *    11 a crowd of origins   12 a run of data frames, maybe reversed
 *    13 arg+1 sends
 *    14 local_left (arg 15 only: it ends most of the game)
 * The harness mirrors what the contracts (delivery.h, causal.h) let it
 * know, and checks it in every callback and after every op (the CHECKs). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal.h"
#include "delivery.h"

#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_delivery: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define NCAP 16                 /* tracked names are at most this long */
#define MAX_PAIRS 320             /* > 32 links: the core's tables grow */
#define MAX_SENT 2048
#define MAX_HELD CAUSAL_MAX_HELD_DEFAULT

/* One (node, channel): its sender side (our messages awaiting a verdict)
 * and receiver side (the origin epoch the core must be in, the last seq
 * deliver was called with). */
struct pair {
    char node[NCAP + 1], chan[NCAP + 1];
    uint32_t awaiting; uint64_t bytes;
    bool armed;                 /* refused as full: one window_open owed */
    bool rx_tracked, last_retry; uint64_t rx_epoch, seen_epoch, last_seq;
};
enum { S_NONE, S_INFLIGHT, S_AWAITING, S_DONE };
struct rec { uint8_t state; struct pair *p; size_t len; uint64_t meta_epoch, epoch; };

static struct {
    const uint8_t *ip, *end;
    struct delivery *d; struct causal *c;
    uint64_t now, epoch, wb; uint32_t window;
    bool left;
    uint8_t policy; unsigned calls; int in_cb;
    struct pair pairs[MAX_PAIRS]; size_t npairs;
    struct rec rec[MAX_SENT]; size_t nsent; uint64_t verdicts;   /* msg id = index + 1 */
    struct { char from[NCAP + 1]; uint64_t tag; } held[MAX_HELD]; size_t nheld;
    struct { struct pair *p; uint64_t seq; } pend[16]; unsigned npend;
    struct { char dest[NCAP + 1], chan[NCAP + 1]; struct delivery_data h; } tx[8]; unsigned ntx;
    const char *cur_origin; uint64_t cur_seq; int cur_verdict; bool cur_done;
} H;

static const char *const names[] = { "a", "b", "c", "self", "dd" };   /* "self" is this node */
static const char *const chans[] = { "plain", "causal", "bulk" };
static char long_name[300];
static const uint8_t zeros[1024];

static uint8_t get8(void) { return H.ip < H.end ? *H.ip++ : 0; }

/* Mostly small (seqs, epochs), sometimes near UINT64_MAX, or raw. */
static uint64_t get64(void)
{
    uint8_t b = get8();
    if (b < 0xF8)
        return b < 0xF0 ? b : UINT64_MAX - (b & 7);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | get8();
    return v;
}

/* Into out[300]: a table name, one of 256 "n<k>" (enough to grow the
 * core's tables and fill causal's), "", one beyond DELIVERY_NAME_MAX, or
 * up to 15 arbitrary bytes (a NUL ends it, as in the daemon's strings). */
static const char *get_str(char *out, const char *const *tab, size_t n)
{
    uint8_t b = get8();
    size_t i = 0;
    if (b >= 0xF0)
        for (; i < (b & 15u); i++)
            out[i] = (char)get8();
    out[i] = '\0';
    if (b < 0xE0)
        strcpy(out, tab[b % n]);
    else if (b < 0xEE)
        snprintf(out, 8, "n%u", get8());
    else if (b == 0xEF)
        strcpy(out, long_name);
    return out;
}
#define NAME(buf) get_str(buf, names, 5)
#define CHAN(buf) get_str(buf, chans, 3)

static bool name_ok(const char *s) { return s && *s && strlen(s) <= DELIVERY_NAME_MAX; }

static struct pair *pair_find(const char *node, const char *chan, bool create)
{
    if (strlen(node) > NCAP || strlen(chan) > NCAP)
        return NULL;
    for (size_t i = 0; i < H.npairs; i++)
        if (strcmp(H.pairs[i].node, node) == 0 && strcmp(H.pairs[i].chan, chan) == 0)
            return &H.pairs[i];
    if (!create || H.npairs == MAX_PAIRS)
        return NULL;
    struct pair *p = &H.pairs[H.npairs++];
    strcpy(p->node, node);
    strcpy(p->chan, chan);
    return p;
}

/* What the application answers: policy & 7 picks it; 7 cycles through all,
 * including a value outside the contract (the core must not stall on it). */
static int app_verdict(void)
{
    static const int v[] = { DELIVERY_V_DELIVERED, DELIVERY_V_NO_SUCH_NAME, DELIVERY_V_TOO_LARGE,
                             DELIVERY_V_NODE_LEFT, DELIVERY_PENDING, DELIVERY_RETRY, 77 };
    unsigned m = H.policy & 7;
    return v[m == 7 ? H.calls++ % 7 : m];
}

/* ---- sends, as reliable.c's submit() ---- */

/* What delivery_send must answer, from the mirror alone. */
static int expected(const struct pair *p, bool ok, size_t len)
{
    return H.left || !ok ? DELIVERY_SEND_INVALID : len > H.wb ? DELIVERY_SEND_TOO_LARGE
         : p->awaiting >= H.window || (p->awaiting && p->bytes + len > H.wb) ? DELIVERY_SEND_FULL : DELIVERY_SEND_OK;
}

static void do_send(const char *dest, const char *chan, size_t len, const void *meta, size_t meta_len,
                    uint64_t epoch, bool ask_first)
{
    bool ok = name_ok(dest) && name_ok(chan);
    struct pair *p = ok ? pair_find(dest, chan, true) : NULL;
    if (H.nsent == MAX_SENT || (ok && !p))
        return;
    int want = expected(p, ok, len);
    uint64_t id = H.nsent + 1;
    uint8_t key[8];
    memcpy(key, &id, 8);        /* the key carries our id to env->transmit */
    /* meta_epoch as reliable.c picks it: the pinned epoch if there is one,
     * else (the member table's) what the script says. */
    uint64_t pinned = ok ? delivery_peer_epoch(H.d, dest) : 0;
    struct delivery_msg m = { .name = "app", .key = key, .key_len = 8, .payload = zeros, .len = len,
                              .meta = meta, .meta_len = meta_len, .meta_epoch = meta_len ? pinned ? pinned : epoch : 0 };
    /* Inside a verdict callback the core may already count a batch of
     * verdicts (a repin, a peer left) the mirror has not seen yet: there
     * "full" is only an upper bound, and can_send says which it is. */
    bool causal = strcmp(chan, "causal") == 0, lax = H.in_cb && want == DELIVERY_SEND_FULL;
    if (causal || ask_first || lax) {
        bool can = delivery_can_send(H.d, dest, chan, len);
        CHECK(can == (want == DELIVERY_SEND_OK) || lax);
        want = lax && can ? DELIVERY_SEND_OK : want;
        if (want == DELIVERY_SEND_FULL)
            p->armed = true;
        if (causal && want != DELIVERY_SEND_OK)
            return;             /* a stamp only for what will be accepted */
    }
    if (causal) {
        const uint8_t *st;
        m.meta_epoch = pinned ? pinned : epoch;
        if (causal_stamp(H.c, dest, m.meta_epoch, &st, &m.meta_len) != 0)
            return;
        m.meta = st;
    }
    /* Counted before the call: its transmit callback may send again. */
    struct rec *r = &H.rec[H.nsent++];
    *r = (struct rec){ .state = S_INFLIGHT, .p = p, .len = len, .meta_epoch = m.meta_epoch };
    if (want == DELIVERY_SEND_OK)
        p->awaiting++, p->bytes += len;
    if (want == DELIVERY_SEND_FULL)
        p->armed = true;
    CHECK((int)delivery_send(H.d, dest, chan, id, &m, H.now) == want);
    r->state = want == DELIVERY_SEND_OK ? S_AWAITING : S_NONE;
}

/* A send from inside a callback (delivery.h allows it), one level deep. */
static void cb_send(const char *dest, const char *chan)
{
    if (H.in_cb)
        return;
    H.in_cb++;
    do_send(dest, chan, 4, NULL, 0, 1, false);
    H.in_cb--;
}

/* ---- the delivery env ---- */

static void env_transmit(void *ctx, const char *dest, const char *chan, const struct delivery_data *h,
                         const struct delivery_msg *m)
{
    uint64_t id;
    CHECK(name_ok(dest) && name_ok(chan) && h->origin_epoch == H.epoch && h->seq >= 1 && m->key_len == 8);
    CHECK(h->dest_epoch == delivery_peer_epoch(H.d, dest));   /* the pinned epoch, or 0: a probe */
    memcpy(&id, m->key, 8);
    CHECK(id >= 1 && id <= H.nsent);
    struct rec *r = &H.rec[id - 1];
    CHECK(r->state == S_INFLIGHT || r->state == S_AWAITING);  /* never after its verdict */
    CHECK(strcmp(r->p->node, dest) == 0 && strcmp(r->p->chan, chan) == 0 && m->len == r->len);
    if (h->dest_epoch) {
        /* Meta made for one epoch goes to that one only, and a message sent
         * to one epoch never moves to another (it fails instead). */
        CHECK(!r->meta_epoch || r->meta_epoch == h->dest_epoch);
        CHECK(!r->epoch || r->epoch == h->dest_epoch);
        r->epoch = h->dest_epoch;
    }
    unsigned i = H.ntx++ % 8;
    strcpy(H.tx[i].dest, dest);
    strcpy(H.tx[i].chan, chan);
    H.tx[i].h = *h;
    if (H.policy & 0x40) {      /* maybe a new link, growing the table in the middle of a tick */
        char nm[8];
        snprintf(nm, sizeof nm, "n%u", H.calls++ % 256);
        cb_send(nm, chan);
    }
}

static void env_send_ack(void *ctx, const char *origin, const char *chan, const struct delivery_ack *a)
{
    CHECK(name_ok(origin) && name_ok(chan) && a->dest_epoch == H.epoch && a->origin_epoch);
    CHECK(a->n_exceptions <= DELIVERY_WINDOW_MAX && (!a->n_exceptions || a->exceptions));
    for (size_t i = 0; i < a->n_exceptions; i++)   /* only failures, and below cum */
        CHECK(a->exceptions[i].seq <= a->cum && a->exceptions[i].verdict > DELIVERY_V_DELIVERED &&
              a->exceptions[i].verdict <= DELIVERY_V_NODE_LEFT);
}

static void held_take(const char *from, uint64_t tag)
{
    for (size_t i = 0; i < H.nheld; i++)
        if (H.held[i].tag == tag && strcmp(H.held[i].from, from) == 0) {
            H.held[i] = H.held[--H.nheld];
            return;
        }
    CHECK(!"causal released or dropped a message it never held");
}

/* causal's deliver, as reliable.c's causal_deliver. */
static void causal_deliver(void *ctx, const char *from, uint64_t tag, const void *msg, size_t len)
{
    const uint8_t *b = msg;
    CHECK(len >= 1 && len >= 1u + b[0]);
    int v = app_verdict();
    if (v < 0 || v > DELIVERY_V_NODE_LEFT)
        v = DELIVERY_V_DELIVERED;
    bool same = H.cur_origin && strcmp(H.cur_origin, from) == 0 && H.cur_seq == tag;
    if (same && !H.cur_done)
        H.cur_done = true;      /* the message being received comes first, if at all */
    else
        held_take(from, tag);
    if (same)
        H.cur_verdict = v;
    else
        delivery_report(H.d, from, "causal", tag, v, H.now);
    if (H.policy & 0x08)
        cb_send(from, "causal");   /* the application replies at once */
}

static void causal_dropped(void *ctx, const char *from, uint64_t tag) { held_take(from, tag); }

/* As reliable.c's env_deliver on a causal channel. */
static int deliver_causal(const char *origin, uint64_t seq, const struct delivery_msg *m)
{
    size_t nlen = strlen(m->name);
    uint8_t *buf = malloc(1 + nlen + m->len);
    CHECK(buf);
    buf[0] = (uint8_t)nlen;
    memcpy(buf + 1, m->name, nlen);
    if (m->len)
        memcpy(buf + 1 + nlen, m->payload, m->len);
    H.cur_origin = origin, H.cur_seq = seq, H.cur_verdict = -100, H.cur_done = false;
    enum causal_result cr = causal_receive(H.c, origin, m->meta, m->meta_len, seq, buf, 1 + nlen + m->len);
    H.cur_origin = NULL;
    free(buf);
    CHECK(H.cur_done == (cr == CAUSAL_DELIVERED));
    switch (cr) {
    case CAUSAL_DELIVERED: return H.cur_verdict == -100 ? DELIVERY_V_DELIVERED : H.cur_verdict;
    case CAUSAL_HELD:
        CHECK(H.nheld < MAX_HELD && strlen(origin) <= NCAP);
        strcpy(H.held[H.nheld].from, origin);
        H.held[H.nheld++].tag = seq;
        return DELIVERY_PENDING;
    case CAUSAL_FULL: return DELIVERY_RETRY;
    default: return DELIVERY_V_DELIVERED;
    }
}

static int env_deliver(void *ctx, const char *origin, const char *chan, uint64_t seq, const struct delivery_msg *m)
{
    CHECK(!H.left && name_ok(origin) && name_ok(chan) && seq >= 1 && m->name);
    struct pair *p = pair_find(origin, chan, false);
    if (p && p->rx_tracked) {
        /* In sequence: 1 first in each origin epoch, then +1; the same seq
         * again only after RETRY. */
        if (p->seen_epoch != p->rx_epoch)
            CHECK(seq == 1);
        else
            CHECK(seq == (p->last_retry ? p->last_seq : p->last_seq + 1));
        p->seen_epoch = p->rx_epoch;
    }
    int v = strcmp(chan, "causal") == 0 && m->meta_len ? deliver_causal(origin, seq, m) : app_verdict();
    if (p && p->rx_tracked)
        p->last_seq = seq, p->last_retry = v == DELIVERY_RETRY;
    if (v == DELIVERY_PENDING && p) {
        H.pend[H.npend % 16].p = p;
        H.pend[H.npend++ % 16].seq = seq;
    }
    if (H.policy & 0x08)
        cb_send(origin, chan);
    return v;
}

static void env_verdict(void *ctx, const char *dest, const char *chan, uint64_t id, int v)
{
    CHECK(id >= 1 && id <= H.nsent);
    struct rec *r = &H.rec[id - 1];
    CHECK(r->state == S_AWAITING);       /* exactly one verdict, after delivery_send said OK */
    CHECK(strcmp(r->p->node, dest) == 0 && strcmp(r->p->chan, chan) == 0);
    CHECK(v >= DELIVERY_V_DELIVERED && v <= DELIVERY_V_PEER_RESTARTED);
    /* PEER_RESTARTED: it went to an epoch that ended, or its meta was for one. */
    CHECK(v != DELIVERY_V_PEER_RESTARTED || r->epoch || r->meta_epoch);
    r->state = S_DONE;
    r->p->awaiting--;
    r->p->bytes -= r->len;
    H.verdicts++;
    if (H.policy & 0x10)
        cb_send(dest, chan);
}

static void env_window_open(void *ctx, const char *dest, const char *chan)
{
    struct pair *p = pair_find(dest, chan, false);
    CHECK(p && p->armed);                /* only after a refusal, once per refusal */
    CHECK(p->awaiting < H.window && p->bytes < H.wb);
    p->armed = false;
    if (H.policy & 0x20)
        cb_send(dest, chan);
}

/* ---- peer frames ---- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* Meta: none, raw bytes, or a causal stamp from `origin` at its epoch to
 * "self" laid out as causal_stamp writes one (node 0 the sender, node 1 the
 * destination) with script-chosen nodes and counts, maybe one byte spoiled. */
static size_t get_meta(uint8_t *out, const char *origin, uint64_t oe)
{
    uint8_t f = get8(), g;
    size_t n = 0;
    if ((f & 3) < 2) {
        for (; (f & 3) && n < (size_t)(f >> 2); n++)
            out[n] = get8();
        return n;
    }
    g = get8();
    size_t nn = 2 + (g & 3), ne = (g >> 2) & 7;
    n += put_varint(out + n, 1);
    n += put_varint(out + n, nn);
    for (size_t i = 0; i < nn; i++) {
        const char *s = i == 0 ? origin : i == 1 ? "self" : names[get8() % 5];
        size_t l = strlen(s) > 255 ? 255 : strlen(s);
        n += put_varint(out + n, l);
        memcpy(out + n, s, l);
        n += l + put_varint(out + n + l, i == 0 ? oe : i == 1 ? H.epoch : 1 + get8() % 3u);
    }
    n += put_varint(out + n, ne);
    for (size_t i = 0; i < ne; i++) {
        uint8_t b = get8();
        n += put_varint(out + n, b % nn);
        n += put_varint(out + n, (b >> 4) % nn);
        n += put_varint(out + n, get8());
    }
    if ((f & 3) == 3)
        out[get8() % n] = get8();
    return n;
}

static void data(const char *origin, const char *chan, uint64_t oe, uint64_t de, uint64_t seq, uint64_t at,
                 const uint8_t *meta, size_t meta_len, const uint8_t *payload, size_t len)
{
    /* The receiver state the core must be in: what passes its filters
     * creates it, a higher origin epoch starts it anew. */
    struct pair *p = name_ok(origin) && name_ok(chan) && seq && oe && de == H.epoch
                   ? pair_find(origin, chan, true) : NULL;
    if (p) {
        p->rx_tracked = true;
        p->rx_epoch = oe > p->rx_epoch ? oe : p->rx_epoch;
    }
    struct delivery_data h = { .origin_epoch = oe, .dest_epoch = de, .seq = seq, .acked_through = at };
    struct delivery_msg m = { .name = "app", .meta = meta, .meta_len = meta_len, .payload = payload, .len = len };
    delivery_on_data(H.d, origin, chan, &h, &m, H.now);
}

static void op_ack(const char *from, const char *chan)
{
    static struct delivery_exception ex[DELIVERY_WINDOW_MAX];
    uint8_t f = get8();
    struct delivery_ack a = { .origin_epoch = f & 0x80 ? get64() : H.epoch };
    a.dest_epoch = get64();
    a.cum = get64();
    for (unsigned w = 0; w < ((f >> 1) & 7u) % (DELIVERY_SACK_WORDS + 1); w++) {
        uint8_t b = get8();     /* one bit, a low mask, all, or any */
        a.sack[w] = b < 64 ? UINT64_C(1) << b : b < 128 ? (UINT64_C(1) << (b - 64)) - 1 : b == 255 ? UINT64_MAX : get64();
    }
    if (f & 0x10) {             /* at most DELIVERY_WINDOW_MAX: the daemon's cap */
        uint8_t c = get8();
        uint64_t base = get64(), step = get8();
        a.n_exceptions = c > 200 ? DELIVERY_WINDOW_MAX : c;
        for (size_t i = 0; i < a.n_exceptions; i++)
            ex[i] = (struct delivery_exception){ base + i * step, (int8_t)get8() };
        a.exceptions = ex;
    }
    if ((a.refused = f & 1))
        a.refused_epoch = get64();
    delivery_on_ack(H.d, from, chan, &a, H.now);
}

/* An honest receiver's answer to one of the last frames sent: a probe's
 * refusal naming its epoch; else a cumulative ack, a sack, a failure
 * exception, or the refusal after its restart. */
static void op_ack_last(unsigned arg)
{
    unsigned back = arg & 3;
    if (!H.ntx)
        return;
    if (back >= H.ntx)
        back = 0;
    unsigned i = (H.ntx - 1 - back) % 8;
    char dest[NCAP + 1], chan[NCAP + 1];
    strcpy(dest, H.tx[i].dest);
    strcpy(chan, H.tx[i].chan);
    struct delivery_data h = H.tx[i].h;
    struct delivery_exception ex = { h.seq, get8() % 4 };
    struct delivery_ack a = { .origin_epoch = h.origin_epoch, .dest_epoch = h.dest_epoch, .cum = h.seq };
    if (!h.dest_epoch)
        a.refused = true, a.cum = 0, a.dest_epoch = 1 + ex.verdict;
    else if (arg >> 2 == 1)
        a.cum = h.seq - 1, a.sack[0] = 1;
    else if (arg >> 2 == 2)
        a.exceptions = &ex, a.n_exceptions = 1;
    else if (arg >> 2 == 3)
        a.refused = true, a.cum = 0, a.refused_epoch = h.dest_epoch, a.dest_epoch = h.dest_epoch + 1;
    delivery_on_ack(H.d, dest, chan, &a, H.now);
}

static void check_all(void)
{
    uint64_t total = 0;
    for (size_t i = 0; i < H.npairs; i++) {
        struct pair *p = &H.pairs[i];
        CHECK(delivery_outstanding(H.d, p->node, p->chan) == p->awaiting);
        CHECK(p->awaiting <= H.window && p->bytes <= H.wb);
        total += p->awaiting;
    }
    CHECK(!H.left || total == 0);        /* local_left failed every window */
    CHECK(delivery_get_stats(H.d)->acked == H.verdicts);
    CHECK(causal_held(H.c) == H.nheld);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    static const uint32_t windows[] = { 0, 1, 2, 3, 8, 16, 256, 1000 };
    static const uint64_t wbs[] = { 0, 100, 1000, 5000 };
    static const uint64_t dts[] = { 0, 1, 4, 5, 6, 10, 11, 19, 20, 50, 199, 200, 201, 1000, 5000, 60000 };
    static uint8_t meta[1024];
    if (size < 1)
        return 0;
    memset(long_name, 'n', sizeof long_name - 1);
    memset(&H, 0, sizeof H);
    H.ip = in + 1, H.end = in + size, H.now = 1000, H.epoch = 1 + ((in[0] >> 5) & 3);
    struct delivery_config dc = { .epoch = H.epoch, .window = windows[in[0] & 7], .window_bytes = wbs[(in[0] >> 3) & 3] };
    H.window = !dc.window ? DELIVERY_WINDOW_DEFAULT : dc.window > DELIVERY_WINDOW_MAX ? DELIVERY_WINDOW_MAX : dc.window;
    H.wb = dc.window_bytes ? dc.window_bytes : DELIVERY_WINDOW_BYTES_DEFAULT;
    struct delivery_env env = { .transmit = env_transmit, .send_ack = env_send_ack, .deliver = env_deliver,
                                .verdict = env_verdict, .window_open = env_window_open };
    bool tiny = in[0] & 0x80;
    struct causal_config cc = { .self = "self", .epoch = H.epoch, .max_held = tiny ? 2 : 0, .max_held_bytes = tiny ? 64 : 0 };
    struct causal_env cenv = { .deliver = causal_deliver, .dropped = causal_dropped };
    CHECK((H.d = delivery_new(&dc, &env)) && (H.c = causal_new(&cc, &cenv)));
    while (H.ip < H.end) {
        uint8_t op = get8();
        unsigned arg = op >> 4;
        char a[sizeof long_name], b[sizeof long_name];
        switch (op & 15) {
        case 0: {
            NAME(a), CHAN(b);
            uint64_t oe = get64(), de = get8(), seq, at;
            de = de < 0xC0 ? H.epoch : de < 0xE0 ? 0 : de < 0xF0 ? H.epoch + 1 : get64();
            seq = get64(), at = get64();
            size_t ml = get_meta(meta, a, oe), len = get8();
            len = len < (size_t)(H.end - H.ip) ? len : (size_t)(H.end - H.ip);
            data(a, b, oe, de, seq, at, meta, ml, H.ip, len);
            H.ip += len;
            break;
        }
        case 1: op_ack(NAME(a), CHAN(b)); break;
        case 2: op_ack_last(arg); break;
        case 3: {
            NAME(a), CHAN(b);
            size_t len = (size_t)get8() * 4;
            uint8_t f = get8(), m[4] = { get8(), get8(), get8(), get8() };
            do_send(a, b, len, f & 2 ? m : NULL, f & 2 ? 4 : 0, get64(), f & 1);
            break;
        }
        case 4: {
            uint64_t e = (NAME(a), get64());
            delivery_peer_up(H.d, a, e, H.now);
            if (e)
                causal_node_epoch(H.c, a, e);
            break;
        }
        case 5: delivery_peer_down(H.d, NAME(a)); break;
        case 6: {
            /* All state of it goes (a verdict callback may start anew), and
             * what was sent to it before ends with NODE_LEFT. */
            NAME(a);
            for (size_t i = 0; i < H.npairs; i++)
                if (strcmp(H.pairs[i].node, a) == 0)
                    H.pairs[i].armed = false, H.pairs[i].rx_epoch = H.pairs[i].seen_epoch = 0;
            size_t before = H.nsent;
            delivery_peer_left(H.d, a);
            causal_node_left(H.c, a);
            for (size_t i = 0; i < before; i++)
                CHECK(H.rec[i].state != S_AWAITING || strcmp(H.rec[i].p->node, a) != 0);
            break;
        }
        case 7:
            H.now += dts[arg];
            delivery_tick(H.d, H.now);
            CHECK(delivery_next_deadline(H.d) > H.now);   /* else the driver's timer spins */
            break;
        case 8:
            if (H.npend) {
                unsigned k = arg % (H.npend < 16 ? H.npend : 16);
                delivery_report(H.d, H.pend[k].p->node, H.pend[k].p->chan, H.pend[k].seq, (int8_t)get8(), H.now);
            }
            break;
        case 9: {
            NAME(a), CHAN(b);
            uint64_t seq = get64();
            delivery_report(H.d, a, b, seq, (int8_t)get8(), H.now);
            break;
        }
        case 10: H.policy = get8(); break;
        case 11: {   /* a crowd: (arg+1) * 16 origins "n<k>" send their first frame */
            unsigned base = get8();
            CHAN(b);
            for (unsigned k = 0; k < (arg + 1) * 16; k++) {
                snprintf(a, 8, "n%u", (base + k) % 256);
                data(a, b, 1 + k % 2, H.epoch, 1, 0, NULL, 0, zeros, 0);
            }
            break;
        }
        case 12: {   /* 1..16, 32, .. 256 or 300 frames in a row, or reversed: holes, then the fill */
            unsigned n = arg < 8 ? arg + 1 : arg < 13 ? 16u << (arg - 8) : 300;
            NAME(a), CHAN(b);
            uint64_t oe = get64(), start = get64();
            bool rev = get8() & 1;
            size_t ml = get_meta(meta, a, oe);
            for (unsigned k = 0; k < n; k++)
                data(a, b, oe, H.epoch, start + (rev ? n - 1 - k : k), 0, meta, ml, zeros, k % 16);
            break;
        }
        case 13: {
            NAME(a), CHAN(b);
            size_t len = get8();
            for (unsigned k = 0; k <= arg; k++)
                do_send(a, b, len, NULL, 0, 1, false);
            break;
        }
        case 14:
            if (arg == 15) {
                H.left = true;  /* first: its verdict callbacks may send */
                delivery_local_left(H.d);
            }
            break;
        }
        check_all();
    }
    delivery_free(H.d);
    causal_free(H.c);
    return 0;
}
