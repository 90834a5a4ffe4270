/* check_causal: causal order on one channel (daemon/causal.c).
 *
 * A few nodes, each with its own core; the test carries stamps by hand and
 * in the order it chooses, and checks what each application saw and when. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal.h"

#define MAXN 6
#define MAXD 64

struct node {
    const char *name;
    uint64_t epoch;
    struct causal *c;
    int nd;
    char got[MAXD][32];             /* payloads in delivery order */
    uint64_t tags[MAXD];
    int ndropped;
    /* reply: when `react_to` is delivered, stamp a message to react_dest */
    const char *react_to, *react_dest;
    uint8_t react_stamp[4096];
    size_t react_len;
};

static void on_deliver(void *ctx, const char *from, uint64_t tag, const void *msg, size_t len)
{
    struct node *n = ctx;
    if (n->nd >= MAXD) {
        n->nd++;   /* the noise test only counts */
        return;
    }
    snprintf(n->got[n->nd], sizeof n->got[0], "%.*s", (int)len, (const char *)msg);
    n->tags[n->nd] = tag;
    n->nd++;
    if (n->react_to && strcmp(n->got[n->nd - 1], n->react_to) == 0) {
        /* Sending from inside the delivery: the stamp must already know it. */
        const uint8_t *st;
        size_t l;
        ck_assert_int_eq(causal_stamp(n->c, n->react_dest, 1, &st, &l), 0);
        ck_assert_uint_le(l, sizeof n->react_stamp);
        memcpy(n->react_stamp, st, l);
        n->react_len = l;
    }
}

static void on_dropped(void *ctx, const char *from, uint64_t tag)
{
    struct node *n = ctx;
    n->ndropped++;
}

static void init(struct node *n, const char *name, uint64_t epoch, uint32_t max_held)
{
    memset(n, 0, sizeof *n);
    n->name = name;
    n->epoch = epoch;
    struct causal_env env = { .ctx = n, .deliver = on_deliver, .dropped = on_dropped };
    struct causal_config cfg = { .self = name, .epoch = epoch, .max_held = max_held };
    n->c = causal_new(&cfg, &env);
    ck_assert_ptr_nonnull(n->c);
}

/* A stamped message in flight. */
struct msg {
    const char *from;
    char text[32];
    uint8_t stamp[4096];
    size_t len;
};

static struct msg send_(struct node *from, struct node *to, const char *text)
{
    struct msg m = { .from = from->name };
    snprintf(m.text, sizeof m.text, "%s", text);
    const uint8_t *st;
    ck_assert_int_eq(causal_stamp(from->c, to->name, to->epoch, &st, &m.len), 0);
    ck_assert_uint_le(m.len, sizeof m.stamp);
    memcpy(m.stamp, st, m.len);
    return m;
}

static enum causal_result recv_(struct node *at, const struct msg *m, uint64_t tag)
{
    return causal_receive(at->c, m->from, m->stamp, m->len, tag, m->text, strlen(m->text));
}

START_TEST(reply_waits_for_what_caused_it)
{
    struct node a, b, c;
    init(&a, "a", 1, 0);
    init(&b, "b", 1, 0);
    init(&c, "c", 1, 0);
    struct msg m1 = send_(&a, &c, "m1");     /* slow path */
    struct msg m2 = send_(&a, &b, "m2");
    ck_assert_int_eq(recv_(&b, &m2, 1), CAUSAL_DELIVERED);
    struct msg m3 = send_(&b, &c, "m3");     /* b had delivered m2, which a sent after m1 */
    ck_assert_int_eq(recv_(&c, &m3, 2), CAUSAL_HELD);
    ck_assert_int_eq(c.nd, 0);
    ck_assert_uint_eq(causal_held(c.c), 1);
    ck_assert_int_eq(recv_(&c, &m1, 3), CAUSAL_DELIVERED);
    ck_assert_int_eq(c.nd, 2);
    ck_assert_str_eq(c.got[0], "m1");
    ck_assert_str_eq(c.got[1], "m3");
    ck_assert_uint_eq(c.tags[1], 2);
    ck_assert_uint_eq(causal_held(c.c), 0);
    ck_assert_uint_eq(causal_get_stats(c.c)->released, 1);
    causal_free(a.c);
    causal_free(b.c);
    causal_free(c.c);
}
END_TEST

START_TEST(concurrent_messages_are_not_held)
{
    struct node a, b, c;
    init(&a, "a", 1, 0);
    init(&b, "b", 1, 0);
    init(&c, "c", 1, 0);
    struct msg m1 = send_(&a, &c, "from a");
    struct msg m2 = send_(&b, &c, "from b");
    ck_assert_int_eq(recv_(&c, &m2, 1), CAUSAL_DELIVERED);
    ck_assert_int_eq(recv_(&c, &m1, 2), CAUSAL_DELIVERED);
    causal_free(a.c);
    causal_free(b.c);
    causal_free(c.c);
}
END_TEST

START_TEST(a_senders_later_message_waits_behind_its_earlier)
{
    struct node a, b, c;
    init(&a, "a", 1, 0);
    init(&b, "b", 1, 0);
    init(&c, "c", 1, 0);
    struct msg x = send_(&b, &c, "x");        /* c will get this late */
    struct msg y = send_(&b, &a, "y");
    ck_assert_int_eq(recv_(&a, &y, 1), CAUSAL_DELIVERED);
    struct msg a1 = send_(&a, &c, "a1");      /* depends on x */
    struct msg a2 = send_(&a, &c, "a2");
    ck_assert_int_eq(recv_(&c, &a1, 1), CAUSAL_HELD);
    ck_assert_int_eq(recv_(&c, &a2, 2), CAUSAL_HELD);
    ck_assert_int_eq(recv_(&c, &x, 3), CAUSAL_DELIVERED);
    ck_assert_int_eq(c.nd, 3);
    ck_assert_str_eq(c.got[0], "x");
    ck_assert_str_eq(c.got[1], "a1");
    ck_assert_str_eq(c.got[2], "a2");
    causal_free(a.c);
    causal_free(b.c);
    causal_free(c.c);
}
END_TEST

START_TEST(send_from_inside_a_delivery_carries_it)
{
    struct node a, b, c;
    init(&a, "a", 1, 0);
    init(&b, "b", 1, 0);
    init(&c, "c", 1, 0);
    struct msg m1 = send_(&a, &c, "m1");
    struct msg m2 = send_(&a, &b, "m2");
    b.react_to = "m2";
    b.react_dest = "c";
    ck_assert_int_eq(recv_(&b, &m2, 1), CAUSAL_DELIVERED);
    ck_assert_uint_gt(b.react_len, 0);
    struct msg m3 = { .from = "b", .text = "m3", .len = b.react_len };
    memcpy(m3.stamp, b.react_stamp, b.react_len);
    ck_assert_int_eq(recv_(&c, &m3, 2), CAUSAL_HELD);
    ck_assert_int_eq(recv_(&c, &m1, 3), CAUSAL_DELIVERED);
    ck_assert_str_eq(c.got[1], "m3");
    causal_free(a.c);
    causal_free(b.c);
    causal_free(c.c);
}
END_TEST

START_TEST(full_buffer_refuses_only_what_would_wait)
{
    struct node a, b, c;
    init(&a, "a", 1, 0);
    init(&b, "b", 1, 0);
    init(&c, "c", 2, 2);   /* at most 2 held */
    struct msg first = send_(&a, &c, "first");
    struct msg k = send_(&a, &b, "k");
    ck_assert_int_eq(recv_(&b, &k, 1), CAUSAL_DELIVERED);
    struct msg w1 = send_(&b, &c, "w1");
    struct msg w2 = send_(&b, &c, "w2");
    struct msg w3 = send_(&b, &c, "w3");
    ck_assert_int_eq(recv_(&c, &w1, 1), CAUSAL_HELD);
    ck_assert_int_eq(recv_(&c, &w2, 2), CAUSAL_HELD);
    ck_assert_int_eq(recv_(&c, &w3, 3), CAUSAL_FULL);    /* offered again later */
    ck_assert_uint_eq(causal_get_stats(c.c)->refused_full, 1);
    ck_assert_int_eq(recv_(&c, &first, 4), CAUSAL_DELIVERED);   /* deliverable: needs no slot */
    ck_assert_int_eq(c.nd, 3);
    ck_assert_int_eq(recv_(&c, &w3, 3), CAUSAL_DELIVERED);
    ck_assert_str_eq(c.got[3], "w3");
    causal_free(a.c);
    causal_free(b.c);
    causal_free(c.c);
}
END_TEST

START_TEST(retired_epoch_releases_what_waited_for_it)
{
    struct node a, b, c;
    init(&a, "a", 1, 0);
    init(&b, "b", 1, 0);
    init(&c, "c", 1, 0);
    struct msg lost = send_(&a, &c, "lost");   /* a crashes before it arrives */
    struct msg k = send_(&a, &b, "k");
    ck_assert_int_eq(recv_(&b, &k, 1), CAUSAL_DELIVERED);
    struct msg w = send_(&b, &c, "w");
    ck_assert_int_eq(recv_(&c, &w, 1), CAUSAL_HELD);
    causal_node_epoch(c.c, "a", 2);            /* a runs a new epoch */
    ck_assert_int_eq(c.nd, 1);
    ck_assert_str_eq(c.got[0], "w");
    /* The old epoch's message, if it ever comes, is not delivered. */
    ck_assert_int_eq(recv_(&c, &lost, 2), CAUSAL_STALE);
    ck_assert_int_eq(c.nd, 1);
    causal_free(a.c);
    causal_free(b.c);
    causal_free(c.c);
}
END_TEST

START_TEST(held_messages_of_a_retired_sender_are_dropped)
{
    struct node a, b, c;
    init(&a, "a", 1, 0);
    init(&b, "b", 1, 0);
    init(&c, "c", 1, 0);
    struct msg x = send_(&b, &c, "x");
    struct msg y = send_(&b, &a, "y");
    ck_assert_int_eq(recv_(&a, &y, 1), CAUSAL_DELIVERED);
    struct msg a1 = send_(&a, &c, "a1");
    ck_assert_int_eq(recv_(&c, &a1, 7), CAUSAL_HELD);
    causal_node_left(c.c, "a");
    ck_assert_int_eq(c.ndropped, 1);
    ck_assert_uint_eq(causal_held(c.c), 0);
    ck_assert_int_eq(recv_(&c, &x, 8), CAUSAL_DELIVERED);
    ck_assert_int_eq(c.nd, 1);
    causal_free(a.c);
    causal_free(b.c);
    causal_free(c.c);
}
END_TEST

START_TEST(bad_stamps)
{
    struct node a, c;
    init(&a, "a", 1, 0);
    init(&c, "c", 1, 0);
    struct msg m = send_(&a, &c, "m");
    /* Claimed by someone else than its stamp says. */
    m.from = "b";
    ck_assert_int_eq(recv_(&c, &m, 1), CAUSAL_BAD);
    m.from = "a";
    /* Truncated. */
    for (size_t l = 0; l < m.len; l++)
        ck_assert_int_eq(causal_receive(c.c, "a", m.stamp, l, 1, "m", 1), CAUSAL_BAD);
    uint8_t junk[] = { 7, 1, 2 };
    ck_assert_int_eq(causal_receive(c.c, "a", junk, sizeof junk, 1, "m", 1), CAUSAL_BAD);
    ck_assert_int_eq(causal_receive(c.c, "a", NULL, 0, 1, "m", 1), CAUSAL_BAD);
    ck_assert_int_eq(recv_(&c, &m, 1), CAUSAL_DELIVERED);
    ck_assert_uint_ge(causal_get_stats(c.c)->bad, 3);
    causal_free(a.c);
    causal_free(c.c);
}
END_TEST

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* A bad stamp naming CAUSAL_MAX_NODES made-up nodes takes no slot of the
 * node table (only a member's new epoch or departure frees one): stamps
 * to new nodes and honest messages from them still work afterwards. */
START_TEST(bad_stamp_takes_no_node_slots)
{
    struct node a, c, d;
    init(&a, "a", 1, 0);
    init(&c, "c", 1, 0);
    init(&d, "d", 1, 0);
    uint8_t s[4096];
    size_t n = 0;
    n += put_varint(s + n, 1);                   /* stamp version */
    n += put_varint(s + n, CAUSAL_MAX_NODES);
    for (unsigned i = 0; i < CAUSAL_MAX_NODES; i++) {
        char name[16];
        snprintf(name, sizeof name, i ? "x%u" : "a", i);
        n += put_varint(s + n, strlen(name));
        memcpy(s + n, name, strlen(name));
        n += strlen(name);
        n += put_varint(s + n, 7);
    }
    /* no entry count: truncated, so bad */
    ck_assert_int_eq(causal_receive(c.c, "a", s, n, 1, "m", 1), CAUSAL_BAD);
    const uint8_t *st;
    size_t l;
    ck_assert_int_eq(causal_stamp(c.c, "e", 1, &st, &l), 0);
    struct msg m = send_(&d, &c, "from d");
    ck_assert_int_eq(recv_(&c, &m, 1), CAUSAL_DELIVERED);
    ck_assert_int_eq(c.nd, 1);
    causal_free(a.c);
    causal_free(c.c);
    causal_free(d.c);
}
END_TEST

START_TEST(random_stamps_are_harmless)
{
    struct node a, c;
    init(&a, "a", 1, 8);
    init(&c, "c", 1, 8);
    struct msg m = send_(&a, &c, "m");
    uint64_t r = 5;
    uint8_t buf[256];
    for (int i = 0; i < 20000; i++) {
        /* A real stamp with bytes changed, or noise. */
        size_t len = m.len;
        memcpy(buf, m.stamp, len);
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        if (r >> 63) {
            buf[(r >> 8) % len] ^= (uint8_t)(r >> 20);
        } else {
            len = (r >> 8) % sizeof buf;
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)((r >> (k % 50)) + k);
        }
        causal_receive(c.c, "a", buf, len, (uint64_t)i, "z", 1);
    }
    ck_assert_uint_le(causal_held(c.c), 8);
    causal_free(a.c);
    causal_free(c.c);
}
END_TEST

START_TEST(stamp_cost_grows_with_the_pairs_that_talk)
{
    struct node n[5];
    const char *names[5] = { "n0", "n1", "n2", "n3", "n4" };
    for (int i = 0; i < 5; i++)
        init(&n[i], names[i], 1000, 0);
    /* Everyone sends to everyone, and everyone delivers what it got. */
    size_t last = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) {
                if (i == j)
                    continue;
                struct msg m = send_(&n[i], &n[j], "x");
                last = m.len;
                ck_assert_int_eq(recv_(&n[j], &m, 1), CAUSAL_DELIVERED);
            }
    /* 20 pairs: ~ 20 entries of 3-4 bytes and 5 names; under 200 bytes. */
    ck_assert_uint_lt(last, 200);
    ck_assert_uint_gt(last, 20 * 3);
    for (int i = 0; i < 5; i++)
        causal_free(n[i].c);
}
END_TEST

START_TEST(a_message_to_oneself)
{
    struct node a;
    init(&a, "a", 1, 0);
    struct msg m = send_(&a, &a, "me");
    ck_assert_int_eq(recv_(&a, &m, 1), CAUSAL_DELIVERED);
    ck_assert_int_eq(a.nd, 1);
    causal_free(a.c);
}
END_TEST

START_TEST(bad_config)
{
    struct causal_env env = { 0 };
    struct causal_config cfg = { .self = "a", .epoch = 0 };
    ck_assert_ptr_null(causal_new(&cfg, &env));
    cfg.epoch = 1;
    cfg.self = "";
    ck_assert_ptr_null(causal_new(&cfg, &env));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("causal");
    TCase *t = tcase_create("core");
    tcase_add_test(t, reply_waits_for_what_caused_it);
    tcase_add_test(t, concurrent_messages_are_not_held);
    tcase_add_test(t, a_senders_later_message_waits_behind_its_earlier);
    tcase_add_test(t, send_from_inside_a_delivery_carries_it);
    tcase_add_test(t, full_buffer_refuses_only_what_would_wait);
    tcase_add_test(t, retired_epoch_releases_what_waited_for_it);
    tcase_add_test(t, held_messages_of_a_retired_sender_are_dropped);
    tcase_add_test(t, bad_stamps);
    tcase_add_test(t, bad_stamp_takes_no_node_slots);
    tcase_add_test(t, random_stamps_are_harmless);
    tcase_add_test(t, stamp_cost_grows_with_the_pairs_that_talk);
    tcase_add_test(t, a_message_to_oneself);
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
