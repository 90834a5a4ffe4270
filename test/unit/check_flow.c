/* check_flow: credit windows per destination (daemon/flow.c).
 *
 * The callbacks are recorded, so each test asserts what the daemon would
 * do with them: which grants go out (and how big), which waiting senders
 * wake, and that the tables hold only live state (flow_entries). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"

#define MAX_EVENTS 32

struct rec {
    size_t grants;
    uint64_t granted_bytes;          /* sum over all grants */
    char last_node[256], last_name[256];
    uint64_t last_bytes;
    size_t reopens;
    const void *reopened[MAX_EVENTS];
    /* Re-entry probes, see the reentrant_* tests. */
    struct flow *f;
    bool resend_on_reopen;
    bool forget_on_grant;
};

static void on_grant(void *ctx, const char *node, const char *name, uint64_t bytes)
{
    struct rec *r = ctx;
    r->grants++;
    r->granted_bytes += bytes;
    r->last_bytes = bytes;
    snprintf(r->last_node, sizeof r->last_node, "%s", node);
    snprintf(r->last_name, sizeof r->last_name, "%s", name);
    if (r->forget_on_grant)
        flow_forget_node(r->f, node);
}

static void on_reopen(void *ctx, const void *handle)
{
    struct rec *r = ctx;
    if (r->reopens < MAX_EVENTS)
        r->reopened[r->reopens] = handle;
    r->reopens++;
    if (r->resend_on_reopen) {
        r->resend_on_reopen = false;
        /* The woken sender writes again at once, to the same destination. */
        ck_assert_ptr_null(flow_sent(r->f, "n1", "svc", 10));
    }
}

static struct flow *mk(struct rec *r, uint64_t window)
{
    memset(r, 0, sizeof *r);
    struct flow_callbacks cb = { .ctx = r, .grant = on_grant, .reopen = on_reopen };
    struct flow *f = flow_new(window, &cb);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(flow_window(f), window);
    r->f = f;
    return f;
}

START_TEST(window_fills_at_the_window_and_handle_is_shared)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_null(flow_sent(f, "n1", "svc", 300));
    ck_assert(!flow_is_waiting(f, "n1", "svc"));
    /* 900 + 100 reaches the window exactly: full. */
    const void *h = flow_sent(f, "n1", "svc", 100);
    ck_assert_ptr_nonnull(h);
    ck_assert(flow_is_waiting(f, "n1", "svc"));
    /* Every further sender to it waits on the same handle. */
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_eq(flow_sent(f, "n1", "svc", 50), h);
    ck_assert_ptr_eq(flow_sent(f, "n1", "svc", 0), h);
    /* Other destinations are not held back: another name, another node. */
    ck_assert_ptr_null(flow_sent(f, "n1", "other", 300));
    ck_assert_ptr_null(flow_sent(f, "n2", "svc", 300));
    ck_assert(!flow_is_waiting(f, "n2", "svc"));
    ck_assert_uint_eq(flow_entries(f), 3);
    ck_assert_uint_eq(r.reopens, 0);
    ck_assert_uint_eq(r.grants, 0);
    flow_free(f);
}
END_TEST

START_TEST(grants_reopen_exactly_once)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    ck_assert_ptr_null(flow_sent(f, "n1", "svc", 600));
    const void *h = flow_sent(f, "n1", "svc", 600);    /* 1200 */
    ck_assert_ptr_nonnull(h);
    /* 1200 - 200 = 1000: still at the window, still waiting. */
    flow_granted(f, "n1", "svc", 200);
    ck_assert_uint_eq(r.reopens, 0);
    ck_assert(flow_is_waiting(f, "n1", "svc"));
    flow_granted(f, "n1", "svc", 1);                    /* 999 */
    ck_assert_uint_eq(r.reopens, 1);
    ck_assert_ptr_eq(r.reopened[0], h);
    ck_assert(!flow_is_waiting(f, "n1", "svc"));
    /* More grants do not wake anyone again. */
    flow_granted(f, "n1", "svc", 500);
    flow_granted(f, "n1", "svc", 400);
    ck_assert_uint_eq(r.reopens, 1);
    ck_assert_uint_eq(flow_entries(f), 1);              /* 99 outstanding */
    /* Filling it again gives a new wait and a new single reopen. */
    const void *h2 = flow_sent(f, "n1", "svc", 901);
    ck_assert_ptr_nonnull(h2);
    flow_granted(f, "n1", "svc", 1000);
    ck_assert_uint_eq(r.reopens, 2);
    ck_assert_ptr_eq(r.reopened[1], h2);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

START_TEST(grants_batch_at_an_eighth_of_the_window)
{
    struct rec r;
    struct flow *f = mk(&r, 800);                       /* threshold 100 */
    flow_received(f, "n1", "svc", 60, NULL);
    ck_assert_uint_eq(r.grants, 0);
    ck_assert_uint_eq(flow_entries(f), 1);
    flow_received(f, "n1", "svc", 40, NULL);
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(r.last_bytes, 100);
    ck_assert_str_eq(r.last_node, "n1");
    ck_assert_str_eq(r.last_name, "svc");
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_received(f, "n1", "svc", 99, NULL);
    ck_assert_uint_eq(r.grants, 1);
    /* The grant carries all that is owed, not just the threshold. */
    flow_received(f, "n1", "svc", 250, NULL);
    ck_assert_uint_eq(r.grants, 2);
    ck_assert_uint_eq(r.last_bytes, 349);
    /* Owed amounts are per (node, name). */
    flow_received(f, "n1", "a", 50, NULL);
    flow_received(f, "n2", "svc", 50, NULL);
    ck_assert_uint_eq(r.grants, 2);
    ck_assert_uint_eq(flow_entries(f), 2);
    flow_free(f);

    /* A window under 8 still grants (threshold at least 1). */
    f = mk(&r, 5);
    flow_received(f, "n1", "svc", 1, NULL);
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(r.last_bytes, 1);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

START_TEST(held_grants_wait_for_release)
{
    struct rec r;
    struct flow *f = mk(&r, 800);                       /* threshold 100 */
    int recv_a, recv_b;                                 /* two congested receivers */
    flow_received(f, "n1", "svc", 500, &recv_a);
    flow_received(f, "n1", "svc", 300, &recv_a);
    flow_received(f, "n2", "other", 200, &recv_b);
    ck_assert_uint_eq(r.grants, 0);
    ck_assert_uint_eq(flow_entries(f), 2);
    /* Delivered messages for the same entry are still granted meanwhile. */
    flow_received(f, "n1", "svc", 120, NULL);
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(r.last_bytes, 120);
    /* Releasing another receiver, or nothing, grants nothing of these. */
    flow_release(f, &recv_b);
    ck_assert_uint_eq(r.grants, 2);
    ck_assert_str_eq(r.last_node, "n2");
    ck_assert_uint_eq(r.last_bytes, 200);
    flow_release(f, NULL);
    flow_release(f, &recv_b);
    ck_assert_uint_eq(r.grants, 2);
    /* Owed and held go out together on release. */
    flow_received(f, "n1", "svc", 30, NULL);
    flow_release(f, &recv_a);
    ck_assert_uint_eq(r.grants, 3);
    ck_assert_str_eq(r.last_node, "n1");
    ck_assert_str_eq(r.last_name, "svc");
    ck_assert_uint_eq(r.last_bytes, 830);
    ck_assert_uint_eq(flow_entries(f), 0);
    /* A released remainder below the threshold stays owed, and goes out
     * with the next delivered message that brings it to the threshold. */
    flow_received(f, "n1", "svc", 40, &recv_a);
    flow_release(f, &recv_a);
    ck_assert_uint_eq(r.grants, 3);
    ck_assert_uint_eq(flow_entries(f), 1);
    flow_release(f, &recv_a);                           /* nothing held any more */
    ck_assert_uint_eq(r.grants, 3);
    flow_received(f, "n1", "svc", 60, NULL);
    ck_assert_uint_eq(r.grants, 4);
    ck_assert_uint_eq(r.last_bytes, 100);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

START_TEST(held_follows_the_newest_receiver)
{
    /* The name moved to another session while the first had messages
     * queued: nothing stays held for ever once the newest is released. */
    struct rec r;
    struct flow *f = mk(&r, 800);
    int old_s, new_s;
    flow_received(f, "n1", "svc", 300, &old_s);
    flow_received(f, "n1", "svc", 300, &new_s);
    flow_release(f, &old_s);
    ck_assert_uint_eq(r.grants, 0);
    flow_release(f, &new_s);
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(r.last_bytes, 600);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

START_TEST(sender_and_receiver_meet_end_to_end)
{
    /* Two instances wired together: a stalled receiver stops the sender,
     * its release reopens it, and no cost is lost on the way. */
    struct rec rs, rr;
    struct flow *snd = mk(&rs, 1000), *rcv = mk(&rr, 1000);
    int slow;
    const void *h = NULL;
    int sent = 0;
    while (!h) {
        h = flow_sent(snd, "B", "svc", 64);
        flow_received(rcv, "A", "svc", 64, &slow);
        sent++;
    }
    ck_assert_int_eq(sent, 16);                         /* 16 * 64 = 1024 >= 1000 */
    ck_assert_uint_eq(rr.grants, 0);
    flow_release(rcv, &slow);
    ck_assert_uint_eq(rr.grants, 1);
    flow_granted(snd, "B", "svc", rr.last_bytes);
    ck_assert_uint_eq(rs.reopens, 1);
    ck_assert_ptr_eq(rs.reopened[0], h);
    ck_assert_uint_eq(flow_entries(snd), 0);
    ck_assert_uint_eq(flow_entries(rcv), 0);
    flow_free(snd);
    flow_free(rcv);
}
END_TEST

START_TEST(forget_node_reopens_waiters_and_clears_state)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    int slow;
    const void *h1 = flow_sent(f, "n1", "a", 1000);
    const void *h2 = flow_sent(f, "n1", "b", 2000);
    const void *h3 = flow_sent(f, "n2", "a", 1000);
    ck_assert_ptr_nonnull(h1);
    ck_assert_ptr_nonnull(h2);
    ck_assert_ptr_nonnull(h3);
    ck_assert_ptr_ne(h1, h2);
    ck_assert_ptr_null(flow_sent(f, "n1", "c", 10));    /* not waiting */
    flow_received(f, "n1", "a", 50, NULL);
    flow_received(f, "n1", "b", 500, &slow);
    /* A node whose name is a prefix of another is a different node. */
    ck_assert_ptr_null(flow_sent(f, "n10", "a", 10));
    ck_assert_uint_eq(flow_entries(f), 7);

    flow_forget_node(f, "n1");
    ck_assert_uint_eq(r.reopens, 2);
    ck_assert((r.reopened[0] == h1 && r.reopened[1] == h2) ||
              (r.reopened[0] == h2 && r.reopened[1] == h1));
    ck_assert_uint_eq(r.grants, 0);
    ck_assert_uint_eq(flow_entries(f), 2);
    ck_assert(!flow_is_waiting(f, "n1", "a"));
    ck_assert(flow_is_waiting(f, "n2", "a"));
    /* Late grants and releases for the forgotten node change nothing. */
    flow_granted(f, "n1", "a", 1000);
    flow_release(f, &slow);
    ck_assert_uint_eq(r.reopens, 2);
    ck_assert_uint_eq(r.grants, 0);
    /* The window starts afresh. */
    ck_assert_ptr_null(flow_sent(f, "n1", "a", 999));
    flow_forget_node(f, "n1");
    flow_forget_node(f, "n2");
    flow_forget_node(f, "n10");
    flow_forget_node(f, "nobody");
    ck_assert_uint_eq(r.reopens, 3);
    ck_assert_ptr_eq(r.reopened[2], h3);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

START_TEST(entries_are_freed_when_empty)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    ck_assert_uint_eq(flow_entries(f), 0);
    ck_assert_ptr_null(flow_sent(f, "n1", "svc", 100));
    ck_assert_uint_eq(flow_entries(f), 1);
    flow_granted(f, "n1", "svc", 60);
    ck_assert_uint_eq(flow_entries(f), 1);
    flow_granted(f, "n1", "svc", 40);
    ck_assert_uint_eq(flow_entries(f), 0);
    /* A zero cost creates nothing. */
    ck_assert_ptr_null(flow_sent(f, "n1", "svc", 0));
    flow_received(f, "n1", "svc", 0, NULL);
    ck_assert_uint_eq(flow_entries(f), 0);
    /* Sender and receiver entries for the same (node, name) are apart. */
    ck_assert_ptr_null(flow_sent(f, "n1", "svc", 10));
    flow_received(f, "n1", "svc", 10, NULL);
    ck_assert_uint_eq(flow_entries(f), 2);
    flow_received(f, "n1", "svc", 200, NULL);           /* granted: receiver empty */
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(flow_entries(f), 1);
    flow_granted(f, "n1", "svc", 10);
    ck_assert_uint_eq(flow_entries(f), 0);
    /* The node/name split is part of the key. */
    ck_assert_ptr_null(flow_sent(f, "ab", "c", 600));
    ck_assert_ptr_null(flow_sent(f, "a", "bc", 600));
    ck_assert_uint_eq(flow_entries(f), 2);
    flow_free(f);
}
END_TEST

START_TEST(unknown_grant_is_ignored)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    flow_granted(f, "n1", "svc", 12345);
    ck_assert_uint_eq(flow_entries(f), 0);
    ck_assert_uint_eq(r.reopens, 0);
    /* Granting more than is outstanding cannot make credit in advance. */
    ck_assert_ptr_null(flow_sent(f, "n1", "svc", 10));
    flow_granted(f, "n1", "svc", UINT64_MAX);
    ck_assert_uint_eq(flow_entries(f), 0);
    ck_assert_ptr_null(flow_sent(f, "n1", "svc", 999));
    ck_assert_ptr_nonnull(flow_sent(f, "n1", "svc", 1));
    ck_assert_uint_eq(r.reopens, 0);
    flow_free(f);
}
END_TEST

START_TEST(big_message_is_accepted_and_reopens)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    const void *h = flow_sent(f, "n1", "svc", flow_cost(10000));
    ck_assert_ptr_nonnull(h);
    flow_granted(f, "n1", "svc", 9000);
    ck_assert_uint_eq(r.reopens, 0);
    flow_granted(f, "n1", "svc", flow_cost(10000) - 9000);
    ck_assert_uint_eq(r.reopens, 1);
    ck_assert_ptr_eq(r.reopened[0], h);
    ck_assert_uint_eq(flow_entries(f), 0);
    /* And the receiver grants it in one piece. */
    flow_received(f, "n1", "svc", flow_cost(10000), NULL);
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(r.last_bytes, flow_cost(10000));
    flow_free(f);
}
END_TEST

START_TEST(huge_costs_saturate)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    const void *h = flow_sent(f, "n1", "svc", UINT64_MAX);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(flow_sent(f, "n1", "svc", UINT64_MAX), h);   /* no wrap to small */
    ck_assert(flow_is_waiting(f, "n1", "svc"));
    flow_granted(f, "n1", "svc", UINT64_MAX);
    ck_assert_uint_eq(r.reopens, 1);
    flow_received(f, "n1", "svc", UINT64_MAX, &r);
    flow_received(f, "n1", "svc", UINT64_MAX, &r);
    flow_release(f, &r);
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(r.last_bytes, UINT64_MAX);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

#define MANY_NODES 3000
#define MANY_NAMES 3

START_TEST(many_destinations_grow_the_table)
{
    struct rec r;
    struct flow *f = mk(&r, 100);                       /* threshold 12 */
    static const void *handles[MANY_NODES][MANY_NAMES];
    char node[32], name[32];
    int held;
    for (int i = 0; i < MANY_NODES; i++)
        for (int j = 0; j < MANY_NAMES; j++) {
            snprintf(node, sizeof node, "node-%d", i);
            snprintf(name, sizeof name, "name-%d", j);
            ck_assert_ptr_null(flow_sent(f, node, name, 50));
            handles[i][j] = flow_sent(f, node, name, 50);
            ck_assert_ptr_nonnull(handles[i][j]);
            flow_received(f, node, name, 5, NULL);
            flow_received(f, node, name, 7, &held);
        }
    ck_assert_uint_eq(flow_entries(f), 2 * MANY_NODES * MANY_NAMES);
    /* Every entry is still found after the growth, with its own handle. */
    for (int i = 0; i < MANY_NODES; i++)
        for (int j = 0; j < MANY_NAMES; j++) {
            snprintf(node, sizeof node, "node-%d", i);
            snprintf(name, sizeof name, "name-%d", j);
            ck_assert(flow_is_waiting(f, node, name));
            ck_assert_ptr_eq(flow_sent(f, node, name, 1), handles[i][j]);
            if (j > 0)
                ck_assert_ptr_ne(handles[i][j], handles[i][j - 1]);
        }
    /* One release grants every held entry: 5 owed + 7 held = 12. */
    flow_release(f, &held);
    ck_assert_uint_eq(r.grants, MANY_NODES * MANY_NAMES);
    ck_assert_uint_eq(r.granted_bytes, 12u * MANY_NODES * MANY_NAMES);
    ck_assert_uint_eq(flow_entries(f), MANY_NODES * MANY_NAMES);
    for (int i = 0; i < MANY_NODES; i++)
        for (int j = 0; j < MANY_NAMES; j++) {
            snprintf(node, sizeof node, "node-%d", i);
            snprintf(name, sizeof name, "name-%d", j);
            flow_granted(f, node, name, 101);
        }
    ck_assert_uint_eq(r.reopens, MANY_NODES * MANY_NAMES);
    ck_assert_uint_eq(flow_entries(f), 0);
    /* The emptied table still works. */
    ck_assert_ptr_null(flow_sent(f, "node-1", "name-1", 50));
    ck_assert_uint_eq(flow_entries(f), 1);
    flow_free(f);
}
END_TEST

START_TEST(long_names)
{
    struct rec r;
    struct flow *f = mk(&r, 1000);
    char node[256], name[256];
    memset(node, 'n', 255);
    node[255] = '\0';
    memset(name, 'x', 255);
    name[255] = '\0';
    const void *h = flow_sent(f, node, name, 1000);
    ck_assert_ptr_nonnull(h);
    name[254] = 'y';
    ck_assert_ptr_null(flow_sent(f, node, name, 10));
    name[254] = 'x';
    flow_received(f, node, name, 10, &r);
    flow_received(f, node, name, 200, NULL);
    ck_assert_str_eq(r.last_node, node);
    ck_assert_str_eq(r.last_name, name);
    flow_release(f, &r);
    ck_assert_uint_eq(r.grants, 1);                     /* 10 stays owed */
    flow_forget_node(f, node);
    ck_assert_uint_eq(r.reopens, 1);
    ck_assert_ptr_eq(r.reopened[0], h);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

START_TEST(reentrant_callbacks)
{
    struct rec r;
    struct flow *f = mk(&r, 100);
    /* A woken sender sends again from inside reopen: the emptied entry is
     * already out of the table, and a fresh one is made. */
    const void *h = flow_sent(f, "n1", "svc", 100);
    ck_assert_ptr_nonnull(h);
    r.resend_on_reopen = true;
    flow_granted(f, "n1", "svc", 100);
    ck_assert_uint_eq(r.reopens, 1);
    ck_assert_uint_eq(flow_entries(f), 1);
    flow_granted(f, "n1", "svc", 10);
    ck_assert_uint_eq(flow_entries(f), 0);
    /* Sending a grant fails and the node is forgotten from inside grant,
     * including the entry being granted and ones a release is going over. */
    r.forget_on_grant = true;
    int held;
    flow_received(f, "n1", "svc", 5, &held);
    ck_assert_ptr_nonnull(flow_sent(f, "n1", "svc", 200));
    flow_received(f, "n1", "svc", 50, NULL);
    ck_assert_uint_eq(r.grants, 1);
    ck_assert_uint_eq(r.reopens, 2);
    ck_assert_uint_eq(flow_entries(f), 0);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        flow_received(f, "n2", name, 20, &held);
    }
    flow_release(f, &held);
    ck_assert_uint_eq(r.grants, 5);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
}
END_TEST

START_TEST(new_rejects_zero_window)
{
    struct flow_callbacks cb = { 0 };
    ck_assert_ptr_null(flow_new(0, &cb));
    struct flow *f = flow_new(1, NULL);                 /* no callbacks is allowed */
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(flow_sent(f, "n", "x", 1));
    flow_granted(f, "n", "x", 1);
    flow_received(f, "n", "x", 1, NULL);
    ck_assert_uint_eq(flow_entries(f), 0);
    flow_free(f);
    flow_free(NULL);
}
END_TEST

static Suite *flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("windows");
    tcase_add_test(tc, window_fills_at_the_window_and_handle_is_shared);
    tcase_add_test(tc, grants_reopen_exactly_once);
    tcase_add_test(tc, grants_batch_at_an_eighth_of_the_window);
    tcase_add_test(tc, held_grants_wait_for_release);
    tcase_add_test(tc, held_follows_the_newest_receiver);
    tcase_add_test(tc, sender_and_receiver_meet_end_to_end);
    tcase_add_test(tc, forget_node_reopens_waiters_and_clears_state);
    tcase_add_test(tc, entries_are_freed_when_empty);
    tcase_add_test(tc, unknown_grant_is_ignored);
    tcase_add_test(tc, big_message_is_accepted_and_reopens);
    tcase_add_test(tc, huge_costs_saturate);
    tcase_add_test(tc, many_destinations_grow_the_table);
    tcase_add_test(tc, long_names);
    tcase_add_test(tc, reentrant_callbacks);
    tcase_add_test(tc, new_rejects_zero_window);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(flow_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
