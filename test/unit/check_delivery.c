/* check_delivery: the reliable-delivery core (daemon/delivery.c).
 *
 * Two cores, "a" and "b", joined by a wire the test controls: every frame a
 * core transmits is queued, and the test decides which ones arrive, in what
 * order and how often. Callbacks are recorded, so each test asserts what a
 * daemon would see: deliveries to the application, verdicts to senders,
 * back-pressure, retransmissions. Time is whatever the test says. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"

#define MAXF 4096

struct wframe {
    bool ack;
    char to[16], channel[16];
    struct delivery_data h;
    struct delivery_ack a;
    struct delivery_exception exc[DELIVERY_WINDOW_MAX];
    char name[32];
    char payload[64];
    size_t len;
    uint64_t meta_epoch;
};

struct side {
    const char *name;
    struct delivery *d;
    struct world *w;
    /* what the application got */
    int ndeliv;
    char deliv[MAXF][64];
    uint64_t deliv_seq[MAXF];
    int answer;                     /* what deliver returns next (a verdict, PENDING or RETRY) */
    int answer_once;                /* -100: none; else returned once, then `answer` */
    /* verdicts */
    int nverd;
    uint64_t verd_id[MAXF];
    int verd[MAXF];
    int opens;
    int transmits;
};

struct world {
    struct side a, b;
    struct wframe *q;
    int nq;
};

static struct side *peer_of(struct world *w, struct side *s) { return s == &w->a ? &w->b : &w->a; }

static void on_transmit(void *ctx, const char *dest, const char *channel, const struct delivery_data *h,
                        const struct delivery_msg *m)
{
    struct side *s = ctx;
    struct world *w = s->w;
    ck_assert_int_lt(w->nq, MAXF);
    struct wframe *f = &w->q[w->nq++];
    memset(f, 0, sizeof *f);
    snprintf(f->to, sizeof f->to, "%s", dest);
    snprintf(f->channel, sizeof f->channel, "%s", channel);
    f->h = *h;
    snprintf(f->name, sizeof f->name, "%s", m->name);
    ck_assert_uint_lt(m->len, sizeof f->payload);
    memcpy(f->payload, m->payload, m->len);
    f->len = m->len;
    s->transmits++;
}

static void on_ack(void *ctx, const char *origin, const char *channel, const struct delivery_ack *a)
{
    struct side *s = ctx;
    struct world *w = s->w;
    ck_assert_int_lt(w->nq, MAXF);
    struct wframe *f = &w->q[w->nq++];
    memset(f, 0, sizeof *f);
    f->ack = true;
    snprintf(f->to, sizeof f->to, "%s", origin);
    snprintf(f->channel, sizeof f->channel, "%s", channel);
    f->a = *a;
    ck_assert_uint_le(a->n_exceptions, DELIVERY_WINDOW_MAX);
    if (a->n_exceptions)
        memcpy(f->exc, a->exceptions, a->n_exceptions * sizeof *f->exc);
    f->a.exceptions = f->exc;
}

static int on_deliver(void *ctx, const char *origin, const char *channel, uint64_t seq, const struct delivery_msg *m)
{
    struct side *s = ctx;
    int v = s->answer;
    if (s->answer_once != -100) {
        v = s->answer_once;
        s->answer_once = -100;
    }
    if (v == DELIVERY_RETRY)
        return v;
    ck_assert_int_lt(s->ndeliv, MAXF);
    snprintf(s->deliv[s->ndeliv], sizeof s->deliv[0], "%.*s", (int)m->len, (const char *)m->payload);
    s->deliv_seq[s->ndeliv] = seq;
    s->ndeliv++;
    return v;
}

static void on_verdict(void *ctx, const char *dest, const char *channel, uint64_t id, int v)
{
    struct side *s = ctx;
    ck_assert_int_lt(s->nverd, MAXF);
    s->verd_id[s->nverd] = id;
    s->verd[s->nverd] = v;
    s->nverd++;
}

static void on_open(void *ctx, const char *dest, const char *channel)
{
    struct side *s = ctx;
    s->opens++;
}

static void side_init(struct world *w, struct side *s, const char *name, uint64_t epoch, uint32_t window,
                      uint64_t window_bytes)
{
    s->name = name;
    s->w = w;
    s->answer = DELIVERY_V_DELIVERED;
    s->answer_once = -100;
    struct delivery_env env = { .ctx = s, .transmit = on_transmit, .send_ack = on_ack, .deliver = on_deliver,
                                .verdict = on_verdict, .window_open = on_open };
    struct delivery_config cfg = { .epoch = epoch, .window = window, .window_bytes = window_bytes };
    s->d = delivery_new(&cfg, &env);
    ck_assert_ptr_nonnull(s->d);
}

static struct world *mk(uint32_t window, uint64_t window_bytes)
{
    struct world *w = calloc(1, sizeof *w);
    w->q = calloc(MAXF, sizeof *w->q);
    side_init(w, &w->a, "a", 100, window, window_bytes);
    side_init(w, &w->b, "b", 200, window, window_bytes);
    delivery_peer_up(w->a.d, "b", 200, 0);
    delivery_peer_up(w->b.d, "a", 100, 0);
    return w;
}

static void world_free(struct world *w)
{
    delivery_free(w->a.d);
    delivery_free(w->b.d);
    free(w->q);
    free(w);
}

static struct side *side_named(struct world *w, const char *n) { return strcmp(n, "a") == 0 ? &w->a : &w->b; }

/* Hands frame i of the queue to its destination (the frame stays queued). */
static void arrive(struct world *w, int i, uint64_t now)
{
    struct wframe f = w->q[i];   /* a copy: the core may queue more while it runs */
    f.a.exceptions = f.exc;
    struct side *to = side_named(w, f.to);
    const char *from = peer_of(w, to)->name;
    if (f.ack) {
        delivery_on_ack(to->d, from, f.channel, &f.a, now);
    } else {
        struct delivery_msg m = { .name = f.name, .payload = f.payload, .len = f.len };
        delivery_on_data(to->d, from, f.channel, &f.h, &m, now);
    }
}

/* Delivers everything queued from `from` on, in order, including what that
 * produces, until the wire is quiet; returns the new end. */
static int flow_all(struct world *w, int from, uint64_t now)
{
    for (int i = from; i < w->nq; i++)
        arrive(w, i, now);
    return w->nq;
}

static struct delivery_msg msg(const char *text)
{
    struct delivery_msg m = { .name = "inbox", .payload = text, .len = strlen(text) };
    return m;
}

static void send_ok(struct side *s, const char *dest, uint64_t id, const char *text, uint64_t now)
{
    struct delivery_msg m = msg(text);
    ck_assert_int_eq(delivery_send(s->d, dest, "orders", id, &m, now), DELIVERY_SEND_OK);
}

static int count_acks(const struct world *w, int from)
{
    int n = 0;
    for (int i = from; i < w->nq; i++)
        n += w->q[i].ack;
    return n;
}

START_TEST(delivered_once_with_verdict_and_id)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 77, "hello", 0);
    ck_assert_int_eq(w->nq, 1);
    ck_assert_uint_eq(w->q[0].h.seq, 1);
    ck_assert_uint_eq(w->q[0].h.origin_epoch, 100);
    ck_assert_uint_eq(w->q[0].h.dest_epoch, 200);
    ck_assert_uint_eq(delivery_outstanding(w->a.d, "b", "orders"), 1);
    arrive(w, 0, 1);
    ck_assert_int_eq(w->b.ndeliv, 1);
    ck_assert_str_eq(w->b.deliv[0], "hello");
    /* The ack waits a little, to carry more verdicts at once. */
    ck_assert_int_eq(w->nq, 1);
    ck_assert_uint_eq(delivery_next_deadline(w->b.d), 1 + DELIVERY_ACK_DELAY_MS);
    delivery_tick(w->b.d, 1 + DELIVERY_ACK_DELAY_MS);
    ck_assert_int_eq(w->nq, 2);
    ck_assert(w->q[1].ack);
    ck_assert_uint_eq(w->q[1].a.cum, 1);
    arrive(w, 1, 8);
    ck_assert_int_eq(w->a.nverd, 1);
    ck_assert_uint_eq(w->a.verd_id[0], 77);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_DELIVERED);
    ck_assert_uint_eq(delivery_outstanding(w->a.d, "b", "orders"), 0);
    /* Nothing left to time. */
    ck_assert_uint_eq(delivery_next_deadline(w->a.d), UINT64_MAX);
    ck_assert_uint_eq(delivery_next_deadline(w->b.d), UINT64_MAX);
    world_free(w);
}
END_TEST

START_TEST(acks_at_once_every_n_verdicts)
{
    struct world *w = mk(0, 0);
    for (unsigned i = 0; i < DELIVERY_ACK_EVERY; i++)
        send_ok(&w->a, "b", i, "x", 0);
    int n = w->nq;
    flow_all(w, 0, 1);
    ck_assert_int_eq(count_acks(w, n), 1);   /* the 16th verdict sent it without a timer */
    ck_assert_int_eq(w->a.nverd, (int)DELIVERY_ACK_EVERY);
    world_free(w);
}
END_TEST

START_TEST(window_full_is_back_pressure_then_reopens)
{
    struct world *w = mk(4, 0);
    for (int i = 0; i < 4; i++)
        send_ok(&w->a, "b", (uint64_t)i, "m", 0);
    struct delivery_msg m = msg("m");
    ck_assert_int_eq(delivery_send(w->a.d, "b", "orders", 9, &m, 0), DELIVERY_SEND_FULL);
    ck_assert(!delivery_can_send(w->a.d, "b", "orders", 1));
    /* Another channel and another destination are not held back. */
    ck_assert(delivery_can_send(w->a.d, "b", "chat", 1));
    ck_assert(delivery_can_send(w->a.d, "c", "orders", 1));
    ck_assert_uint_eq(delivery_get_stats(w->a.d)->refused_full, 2);
    ck_assert_int_eq(w->a.opens, 0);
    flow_all(w, 0, 1);
    delivery_tick(w->b.d, 10);
    flow_all(w, 4, 10);
    ck_assert_int_eq(w->a.nverd, 4);
    ck_assert_int_eq(w->a.opens, 1);
    ck_assert_int_eq(delivery_send(w->a.d, "b", "orders", 9, &m, 11), DELIVERY_SEND_OK);
    world_free(w);
}
END_TEST

START_TEST(byte_window_and_too_large)
{
    struct world *w = mk(0, 10);
    struct delivery_msg big = msg("0123456789A");
    ck_assert_int_eq(delivery_send(w->a.d, "b", "orders", 1, &big, 0), DELIVERY_SEND_TOO_LARGE);
    send_ok(&w->a, "b", 2, "012345", 0);
    struct delivery_msg m = msg("01234");
    ck_assert_int_eq(delivery_send(w->a.d, "b", "orders", 3, &m, 0), DELIVERY_SEND_FULL);
    struct delivery_msg bad = msg("x");
    ck_assert_int_eq(delivery_send(w->a.d, "", "orders", 4, &bad, 0), DELIVERY_SEND_INVALID);
    ck_assert_int_eq(delivery_send(w->a.d, "b", "", 4, &bad, 0), DELIVERY_SEND_INVALID);
    world_free(w);
}
END_TEST

START_TEST(retransmits_with_capped_exponential_backoff)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "lost", 0);
    ck_assert_int_eq(w->a.transmits, 1);
    uint64_t expect = DELIVERY_RTO_INITIAL_MS, at = 0;
    for (int k = 0; k < 12; k++) {
        at += expect;
        ck_assert_uint_eq(delivery_next_deadline(w->a.d), at);
        delivery_tick(w->a.d, at - 1);
        ck_assert_int_eq(w->a.transmits, 1 + k);
        delivery_tick(w->a.d, at);
        ck_assert_int_eq(w->a.transmits, 2 + k);
        expect = expect * 2 > DELIVERY_RTO_MAX_MS ? DELIVERY_RTO_MAX_MS : expect * 2;
    }
    ck_assert_uint_eq(delivery_get_stats(w->a.d)->retransmitted, 12);
    /* The last copy arrives: delivered once, verdict once. */
    arrive(w, w->nq - 1, at + 1);
    arrive(w, 0, at + 1);   /* and the first one, late: a duplicate */
    ck_assert_int_eq(w->b.ndeliv, 1);
    ck_assert_uint_eq(delivery_get_stats(w->b.d)->duplicates, 1);
    flow_all(w, 13, at + 2);
    ck_assert_int_eq(w->a.nverd, 1);
    world_free(w);
}
END_TEST

START_TEST(open_gap_is_acked_again_with_backoff)
{
    /* 1 is lost and 2 held: once the origin's window is full nothing it
     * sends would draw another ack, so the receiver repeats its own. */
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "one", 0);
    send_ok(&w->a, "b", 2, "two", 0);
    arrive(w, 1, 1);
    int n = w->nq;
    ck_assert(w->q[n - 1].ack);           /* the gap's ack, at once */
    uint64_t t = delivery_next_deadline(w->b.d);
    ck_assert_uint_eq(t, 1 + DELIVERY_ACK_DELAY_MS);
    delivery_tick(w->b.d, t);
    ck_assert_int_eq(w->nq, n + 1);
    ck_assert(w->q[n].ack);
    ck_assert_uint_eq(w->q[n].a.cum, 0);
    ck_assert_uint_eq(w->q[n].a.sack[0], 0x2);   /* seq 2 held (bit i: seq cum + 1 + i) */
    uint64_t t2 = delivery_next_deadline(w->b.d);
    ck_assert_uint_eq(t2 - t, 2 * DELIVERY_ACK_DELAY_MS);
    /* Once the hole is filled, nothing more is repeated. */
    arrive(w, 0, t + 1);
    ck_assert_int_eq(w->b.ndeliv, 2);
    delivery_tick(w->b.d, t2 + 1000);
    ck_assert_uint_eq(delivery_next_deadline(w->b.d), UINT64_MAX);
    world_free(w);
}
END_TEST

START_TEST(sack_covers_the_whole_window)
{
    /* 100 messages, the first and the 90th lost: the ack shows both holes,
     * the one past 64 included, and both are resent without their timers. */
    struct world *w = mk(0, 0);
    char text[16];
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof text, "m%d", i);
        send_ok(&w->a, "b", (uint64_t)i + 1, text, 0);
    }
    ck_assert_int_eq(w->nq, 100);
    for (int i = 0; i < 100; i++)
        if (i != 0 && i != 89)
            arrive(w, i, 1);
    int n = w->nq;
    ck_assert(w->q[n - 1].ack);
    const struct delivery_ack *a = &w->q[n - 1].a;
    ck_assert_uint_eq(a->cum, 0);
    /* bit i: seq cum + 1 + i; seq 90 (bit 89) is the hole past the first word */
    ck_assert(!(a->sack[0] & 1));
    ck_assert(!(a->sack[89 / 64] & (UINT64_C(1) << (89 % 64))));
    ck_assert(a->sack[88 / 64] & (UINT64_C(1) << (88 % 64)));
    ck_assert(a->sack[99 / 64] & (UINT64_C(1) << (99 % 64)));
    int before = w->a.transmits;
    arrive(w, n - 1, 2);
    ck_assert_int_eq(w->a.transmits, before + 2);
    ck_assert_uint_eq(w->q[w->nq - 2].h.seq, 1);
    ck_assert_uint_eq(w->q[w->nq - 1].h.seq, 90);
    world_free(w);
}
END_TEST

START_TEST(rtt_sample_shortens_the_timer)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "x", 0);
    arrive(w, 0, 2);
    delivery_tick(w->b.d, 2 + DELIVERY_ACK_DELAY_MS);
    arrive(w, 1, 8);    /* RTT 8 ms */
    send_ok(&w->a, "b", 2, "y", 100);
    uint64_t rto = delivery_next_deadline(w->a.d) - 100;
    ck_assert_uint_lt(rto, DELIVERY_RTO_INITIAL_MS);
    ck_assert_uint_ge(rto, DELIVERY_RTO_MIN_MS);
    world_free(w);
}
END_TEST

START_TEST(out_of_order_held_then_in_order_with_sack)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "one", 0);
    send_ok(&w->a, "b", 2, "two", 0);
    send_ok(&w->a, "b", 3, "three", 0);
    arrive(w, 2, 1);
    arrive(w, 1, 1);
    ck_assert_int_eq(w->b.ndeliv, 0);
    /* A gap is acked at once, with what is held. */
    ck_assert(w->q[3].ack);
    ck_assert_uint_eq(w->q[3].a.cum, 0);
    ck_assert_uint_eq(w->q[4].a.sack[0], 0x6);   /* seqs 2 and 3 */
    arrive(w, 4, 2);    /* the sender learns 2 and 3 arrived: fast retransmit of 1, at once */
    ck_assert_int_eq(w->a.transmits, 4);
    ck_assert_uint_eq(delivery_get_stats(w->a.d)->fast_retransmits, 1);
    ck_assert_uint_eq(w->q[5].h.seq, 1);
    arrive(w, 4, 2);    /* the same news within the round trip: no second copy */
    ck_assert_int_eq(w->a.transmits, 4);
    arrive(w, 5, 3);
    ck_assert_int_eq(w->b.ndeliv, 3);
    ck_assert_str_eq(w->b.deliv[0], "one");
    ck_assert_str_eq(w->b.deliv[1], "two");
    ck_assert_str_eq(w->b.deliv[2], "three");
    delivery_tick(w->b.d, 3 + DELIVERY_ACK_DELAY_MS);
    flow_all(w, 6, 10);
    ck_assert_int_eq(w->a.nverd, 3);
    /* Sacked messages are not resent by the timer, except the oldest as a probe. */
    world_free(w);
}
END_TEST

START_TEST(receiver_verdicts_travel_back)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 10, "a", 0);
    send_ok(&w->a, "b", 11, "b", 0);
    send_ok(&w->a, "b", 12, "c", 0);
    w->b.answer_once = DELIVERY_V_NO_SUCH_NAME;
    arrive(w, 0, 1);
    w->b.answer_once = DELIVERY_V_DELIVERED;
    arrive(w, 1, 1);
    w->b.answer_once = DELIVERY_V_TOO_LARGE;
    arrive(w, 2, 1);
    delivery_tick(w->b.d, 10);
    ck_assert_uint_eq(w->q[3].a.n_exceptions, 2);
    arrive(w, 3, 11);
    ck_assert_int_eq(w->a.nverd, 3);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_NO_SUCH_NAME);
    ck_assert_int_eq(w->a.verd[1], DELIVERY_V_DELIVERED);
    ck_assert_int_eq(w->a.verd[2], DELIVERY_V_TOO_LARGE);
    ck_assert_uint_eq(w->a.verd_id[2], 12);
    world_free(w);
}
END_TEST

START_TEST(lost_ack_verdict_is_repeated_for_a_duplicate)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 5, "x", 0);
    w->b.answer = DELIVERY_V_NO_SUCH_NAME;
    arrive(w, 0, 1);
    delivery_tick(w->b.d, 10);    /* this ack is lost */
    delivery_tick(w->a.d, DELIVERY_RTO_INITIAL_MS);
    ck_assert_int_eq(w->nq, 3);
    arrive(w, 2, 201);            /* the resent copy: a duplicate, answered at once */
    ck_assert_int_eq(w->b.ndeliv, 1);
    ck_assert_int_eq(w->nq, 4);
    ck_assert_uint_eq(w->q[3].a.n_exceptions, 1);
    arrive(w, 3, 202);
    ck_assert_int_eq(w->a.nverd, 1);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_NO_SUCH_NAME);
    world_free(w);
}
END_TEST

START_TEST(pending_verdict_reported_later)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "p", 0);
    w->b.answer = DELIVERY_PENDING;
    arrive(w, 0, 1);
    ck_assert_int_eq(w->b.ndeliv, 1);
    delivery_tick(w->b.d, 10);
    ck_assert(w->q[1].ack);
    ck_assert_uint_eq(w->q[1].a.cum, 0);
    ck_assert_uint_eq(w->q[1].a.sack[0], 1);   /* arrived, verdict pending: no resend */
    arrive(w, 1, 11);
    ck_assert_int_eq(w->a.nverd, 0);
    delivery_report(w->b.d, "a", "orders", 1, DELIVERY_V_DELIVERED, 20);
    ck_assert_int_eq(w->nq, 3);
    ck_assert_uint_eq(w->q[2].a.cum, 1);
    arrive(w, 2, 21);
    ck_assert_int_eq(w->a.nverd, 1);
    /* A report for something unknown or already final is ignored. */
    delivery_report(w->b.d, "a", "orders", 1, DELIVERY_V_DELIVERED, 22);
    delivery_report(w->b.d, "z", "orders", 1, DELIVERY_V_DELIVERED, 22);
    ck_assert_int_eq(w->nq, 3);
    world_free(w);
}
END_TEST

START_TEST(retry_reoffers_later_in_order)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "r1", 0);
    send_ok(&w->a, "b", 2, "r2", 0);
    w->b.answer_once = DELIVERY_RETRY;
    arrive(w, 0, 1);
    arrive(w, 1, 1);
    ck_assert_int_eq(w->b.ndeliv, 0);
    ck_assert_uint_le(delivery_next_deadline(w->b.d), 1 + DELIVERY_RETRY_MS);
    delivery_tick(w->b.d, 1 + DELIVERY_RETRY_MS);
    ck_assert_int_eq(w->b.ndeliv, 2);
    ck_assert_str_eq(w->b.deliv[0], "r1");
    ck_assert_str_eq(w->b.deliv[1], "r2");
    ck_assert_uint_eq(delivery_get_stats(w->b.d)->retries, 1);
    world_free(w);
}
END_TEST

START_TEST(down_link_holds_then_resends_on_up)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "x", 0);
    delivery_peer_down(w->a.d, "b");
    send_ok(&w->a, "b", 2, "y", 0);
    ck_assert_int_eq(w->a.transmits, 1);
    ck_assert_uint_eq(delivery_next_deadline(w->a.d), UINT64_MAX);   /* no timers toward a down peer */
    delivery_peer_up(w->a.d, "b", 200, 5000);
    ck_assert_int_eq(w->a.transmits, 3);   /* both at once, in order */
    ck_assert_uint_eq(w->q[1].h.seq, 1);
    ck_assert_uint_eq(w->q[2].h.seq, 2);
    flow_all(w, 0, 5001);
    ck_assert_int_eq(w->b.ndeliv, 2);
    world_free(w);
}
END_TEST

START_TEST(peer_restart_fails_what_it_was_sent_and_moves_the_rest)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "old1", 0);
    send_ok(&w->a, "b", 2, "old2", 0);
    arrive(w, 0, 1);   /* delivered to the old b; ack lost */
    delivery_peer_down(w->a.d, "b");
    send_ok(&w->a, "b", 3, "new3", 2);   /* never transmitted */
    /* b restarts: a new core, a new epoch. */
    delivery_free(w->b.d);
    w->b.ndeliv = 0;
    side_init(w, &w->b, "b", 300, 0, 0);
    delivery_peer_up(w->b.d, "a", 100, 10);
    int n = w->nq;
    delivery_peer_up(w->a.d, "b", 300, 10);
    ck_assert_int_eq(w->a.nverd, 2);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_PEER_RESTARTED);
    ck_assert_int_eq(w->a.verd[1], DELIVERY_V_PEER_RESTARTED);
    ck_assert_int_eq(w->nq, n + 1);
    ck_assert_uint_eq(w->q[n].h.seq, 1);
    ck_assert_uint_eq(w->q[n].h.dest_epoch, 300);
    flow_all(w, n, 11);
    delivery_tick(w->b.d, 20);
    flow_all(w, n + 1, 21);
    ck_assert_int_eq(w->b.ndeliv, 1);
    ck_assert_str_eq(w->b.deliv[0], "new3");
    ck_assert_int_eq(w->a.nverd, 3);
    ck_assert_uint_eq(w->a.verd_id[2], 3);
    ck_assert_int_eq(w->a.verd[2], DELIVERY_V_DELIVERED);
    /* The old copies still on the wire never reach the new b's application. */
    arrive(w, 0, 30);
    arrive(w, 1, 30);
    ck_assert_int_eq(w->b.ndeliv, 1);
    world_free(w);
}
END_TEST

START_TEST(restart_learned_from_a_refusal)
{
    struct world *w = mk(0, 0);
    /* b restarted and nobody told a: a's data names b's old epoch. */
    delivery_free(w->b.d);
    side_init(w, &w->b, "b", 300, 0, 0);
    delivery_peer_up(w->b.d, "a", 100, 0);
    send_ok(&w->a, "b", 1, "x", 0);
    arrive(w, 0, 1);
    ck_assert_int_eq(w->b.ndeliv, 0);
    ck_assert_uint_eq(delivery_get_stats(w->b.d)->stale_epoch, 1);
    ck_assert(w->q[1].ack);
    ck_assert_uint_eq(w->q[1].a.dest_epoch, 300);
    arrive(w, 1, 2);
    ck_assert_int_eq(w->a.nverd, 1);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_PEER_RESTARTED);
    ck_assert_uint_eq(delivery_peer_epoch(w->a.d, "b"), 300);
    /* What a sends now goes to the new epoch, from seq 1. */
    send_ok(&w->a, "b", 2, "y", 3);
    ck_assert_uint_eq(w->q[2].h.seq, 1);
    arrive(w, 2, 4);
    ck_assert_int_eq(w->b.ndeliv, 1);
    world_free(w);
}
END_TEST

START_TEST(unknown_epoch_is_learned_by_a_probe)
{
    struct world *w = calloc(1, sizeof *w);
    w->q = calloc(MAXF, sizeof *w->q);
    side_init(w, &w->a, "a", 100, 0, 0);
    side_init(w, &w->b, "b", 200, 0, 0);
    delivery_peer_up(w->a.d, "b", 0, 0);    /* reachable, epoch unknown */
    send_ok(&w->a, "b", 1, "first", 0);
    ck_assert_int_eq(w->nq, 1);
    ck_assert_uint_eq(w->q[0].h.dest_epoch, 0);
    ck_assert_uint_eq(delivery_get_stats(w->a.d)->probes, 1);
    /* Unanswered probes back off. */
    ck_assert_uint_eq(delivery_next_deadline(w->a.d), DELIVERY_RTO_INITIAL_MS);
    delivery_tick(w->a.d, DELIVERY_RTO_INITIAL_MS);
    ck_assert_uint_eq(delivery_next_deadline(w->a.d), 3 * DELIVERY_RTO_INITIAL_MS);
    arrive(w, 1, 201);
    ck_assert_int_eq(w->b.ndeliv, 0);           /* a probe is never delivered */
    ck_assert(w->q[2].ack && w->q[2].a.refused);
    ck_assert_uint_eq(w->q[2].a.refused_epoch, 0);
    arrive(w, 2, 202);
    ck_assert_uint_eq(delivery_peer_epoch(w->a.d, "b"), 200);
    ck_assert_uint_eq(w->q[3].h.dest_epoch, 200);
    ck_assert_uint_eq(w->q[3].h.seq, 1);
    arrive(w, 0, 203);                          /* the first probe, late: still nothing */
    arrive(w, 3, 203);
    ck_assert_int_eq(w->b.ndeliv, 1);
    ck_assert_str_eq(w->b.deliv[0], "first");
    /* A late refusal of epoch 0 does not move the pin again. */
    int n = w->nq;
    arrive(w, 2, 204);
    ck_assert_int_eq(w->nq, n);
    ck_assert_int_eq(w->a.nverd, 0);
    world_free(w);
}
END_TEST

START_TEST(origin_restart_starts_a_new_sequence)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "a1", 0);
    send_ok(&w->a, "b", 2, "a2", 0);
    send_ok(&w->a, "b", 3, "a3", 0);
    arrive(w, 0, 1);
    arrive(w, 2, 1);     /* held out of order */
    /* a restarts before seq 2 arrives. */
    delivery_free(w->a.d);
    side_init(w, &w->a, "a", 150, 0, 0);
    delivery_peer_up(w->a.d, "b", 200, 2);
    send_ok(&w->a, "b", 1, "new1", 2);
    int last = w->nq - 1;
    arrive(w, last, 3);
    ck_assert_int_eq(w->b.ndeliv, 2);
    ck_assert_str_eq(w->b.deliv[1], "new1");
    ck_assert_uint_eq(delivery_get_stats(w->b.d)->dropped_on_restart, 1);
    /* The old epoch's seq 2, late: dropped. */
    arrive(w, 1, 4);
    ck_assert_int_eq(w->b.ndeliv, 2);
    world_free(w);
}
END_TEST

START_TEST(meta_made_for_another_epoch_fails_instead_of_moving)
{
    struct world *w = mk(0, 0);
    delivery_peer_down(w->a.d, "b");
    struct delivery_msg m = msg("stamped");
    m.meta = "s";
    m.meta_len = 1;
    m.meta_epoch = 200;
    ck_assert_int_eq(delivery_send(w->a.d, "b", "orders", 1, &m, 0), DELIVERY_SEND_OK);
    send_ok(&w->a, "b", 2, "plain", 0);
    delivery_peer_up(w->a.d, "b", 300, 5);
    ck_assert_int_eq(w->a.nverd, 1);
    ck_assert_uint_eq(w->a.verd_id[0], 1);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_PEER_RESTARTED);
    ck_assert_int_eq(w->a.transmits, 1);
    ck_assert_str_eq(w->q[0].payload, "plain");
    ck_assert_uint_eq(w->q[0].h.seq, 1);
    world_free(w);
}
END_TEST

START_TEST(peer_left_fails_with_node_left)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "x", 0);
    send_ok(&w->a, "b", 2, "y", 0);
    delivery_peer_left(w->a.d, "b");
    ck_assert_int_eq(w->a.nverd, 2);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_NODE_LEFT);
    ck_assert_int_eq(w->a.verd[1], DELIVERY_V_NODE_LEFT);
    ck_assert_uint_eq(delivery_outstanding(w->a.d, "b", "orders"), 0);
    ck_assert_uint_eq(delivery_next_deadline(w->a.d), UINT64_MAX);
    world_free(w);
}
END_TEST

START_TEST(local_left_answers_node_left)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "x", 0);
    delivery_local_left(w->b.d);
    arrive(w, 0, 1);
    ck_assert_int_eq(w->b.ndeliv, 0);
    delivery_tick(w->b.d, 10);
    arrive(w, 1, 11);
    ck_assert_int_eq(w->a.nverd, 1);
    ck_assert_int_eq(w->a.verd[0], DELIVERY_V_NODE_LEFT);
    struct delivery_msg m = msg("z");
    ck_assert_int_eq(delivery_send(w->b.d, "a", "orders", 2, &m, 12), DELIVERY_SEND_INVALID);
    world_free(w);
}
END_TEST

START_TEST(channels_are_separate_links)
{
    struct world *w = mk(0, 0);
    send_ok(&w->a, "b", 1, "o", 0);
    struct delivery_msg m = msg("c");
    ck_assert_int_eq(delivery_send(w->a.d, "b", "chat", 2, &m, 0), DELIVERY_SEND_OK);
    ck_assert_uint_eq(w->q[0].h.seq, 1);
    ck_assert_uint_eq(w->q[1].h.seq, 1);
    ck_assert_str_eq(w->q[1].channel, "chat");
    world_free(w);
}
END_TEST

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Whatever a peer sends, the core neither crashes nor hands up more than
 * it was sent nor reports verdicts for what it never sent. */
START_TEST(garbage_from_the_wire_is_harmless)
{
    struct world *w = mk(0, 0);
    uint64_t r = 1;
    for (int i = 0; i < 20000; i++) {
        uint64_t x = mix(&r);
        if (x & 1) {
            struct delivery_data h = { .origin_epoch = mix(&r) % 4 ? 100 : mix(&r) % 300,
                                       .dest_epoch = mix(&r) % 4 ? 200 : mix(&r) % 300,
                                       .seq = mix(&r) % 600, .acked_through = mix(&r) % 600 };
            struct delivery_msg m = msg("junk");
            delivery_on_data(w->b.d, "a", x & 2 ? "orders" : "chat", &h, &m, (uint64_t)i);
        } else {
            struct delivery_exception exc[3] = { { mix(&r) % 600, (int)(mix(&r) % 9) - 2 },
                                                 { mix(&r) % 600, 1 }, { mix(&r) % 600, 99 } };
            struct delivery_ack a = { .origin_epoch = mix(&r) % 4 ? 100 : mix(&r) % 300,
                                      .dest_epoch = mix(&r) % 8 ? 200 : mix(&r) % 300,
                                      .cum = mix(&r) % 600, .sack = { mix(&r), mix(&r), mix(&r), mix(&r) }, .n_exceptions = mix(&r) % 4,
                                      .exceptions = exc };
            delivery_on_ack(w->a.d, "b", "orders", &a, (uint64_t)i);
        }
        if (i % 100 == 0) {
            delivery_tick(w->a.d, (uint64_t)i);
            delivery_tick(w->b.d, (uint64_t)i);
            w->nq = 0;
        }
    }
    ck_assert_int_eq(w->a.nverd, 0);
    /* Still works. */
    w->nq = 0;
    send_ok(&w->a, "b", 1, "fine", 30000);
    ck_assert_int_eq(w->a.transmits, 1);
    world_free(w);
}
END_TEST

START_TEST(bad_config)
{
    struct delivery_env env = { 0 };
    struct delivery_config cfg = { .epoch = 0 };
    ck_assert_ptr_null(delivery_new(&cfg, &env));
    ck_assert_str_eq(delivery_verdict_name(DELIVERY_V_NO_SUCH_NAME), "no such name");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("delivery");
    TCase *t = tcase_create("core");
    tcase_add_test(t, delivered_once_with_verdict_and_id);
    tcase_add_test(t, acks_at_once_every_n_verdicts);
    tcase_add_test(t, window_full_is_back_pressure_then_reopens);
    tcase_add_test(t, byte_window_and_too_large);
    tcase_add_test(t, retransmits_with_capped_exponential_backoff);
    tcase_add_test(t, open_gap_is_acked_again_with_backoff);
    tcase_add_test(t, sack_covers_the_whole_window);
    tcase_add_test(t, rtt_sample_shortens_the_timer);
    tcase_add_test(t, out_of_order_held_then_in_order_with_sack);
    tcase_add_test(t, receiver_verdicts_travel_back);
    tcase_add_test(t, lost_ack_verdict_is_repeated_for_a_duplicate);
    tcase_add_test(t, pending_verdict_reported_later);
    tcase_add_test(t, retry_reoffers_later_in_order);
    tcase_add_test(t, down_link_holds_then_resends_on_up);
    tcase_add_test(t, peer_restart_fails_what_it_was_sent_and_moves_the_rest);
    tcase_add_test(t, restart_learned_from_a_refusal);
    tcase_add_test(t, unknown_epoch_is_learned_by_a_probe);
    tcase_add_test(t, origin_restart_starts_a_new_sequence);
    tcase_add_test(t, meta_made_for_another_epoch_fails_instead_of_moving);
    tcase_add_test(t, peer_left_fails_with_node_left);
    tcase_add_test(t, local_left_answers_node_left);
    tcase_add_test(t, channels_are_separate_links);
    tcase_add_test(t, garbage_from_the_wire_is_harmless);
    tcase_add_test(t, bad_config);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
