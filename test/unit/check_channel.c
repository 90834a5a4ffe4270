/* Lane queues: order through handover, what a failed connection gives
 * back and what it loses, monotonic replacement, lane choice. The socket
 * is simulated by draining the output evbuffer. */
#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "frame.h"
#include "hash.h"

/* Every test body is "m" and a number padded to one width, so frame
 * lengths are equal and the byte arithmetic below stays readable. */
#define BODY_LEN 10
#define FLEN (FRAME_PEER_HEADER + BODY_LEN)

static void put_frame(struct channel_queue *q, const char *body, const char *key)
{
    size_t n = strlen(body);
    uint8_t *p = channel_queue_reserve(q, FRAME_PEER_HEADER + n);
    ck_assert_ptr_nonnull(p);
    memcpy(p + FRAME_PEER_HEADER, body, n);
    frame_peer_header(p, p + FRAME_PEER_HEADER, n);
    ck_assert_int_eq(channel_queue_commit(q, key, key ? strlen(key) : 0, 0), 0);
}

static void put_num(struct channel_queue *q, int i, const char *key)
{
    char body[BODY_LEN + 1];
    snprintf(body, sizeof body, "m%09d", i);
    put_frame(q, body, key);
}

/* Decodes every frame in buf (checksums included) into their numbers;
 * the buffer must hold whole frames only. */
static size_t take_nums(struct evbuffer *buf, int *nums, size_t max)
{
    size_t n = 0;
    while (evbuffer_get_length(buf) > 0) {
        size_t len = evbuffer_get_length(buf), body = 0;
        uint8_t *p = evbuffer_pullup(buf, -1);
        ck_assert_int_eq(frame_peer_peek(p, len, 1 << 20, &body), FRAME_OK);
        ck_assert_uint_eq(body, BODY_LEN);
        ck_assert_uint_lt(n, max);
        char s[BODY_LEN + 1];
        memcpy(s, p + FRAME_PEER_HEADER, BODY_LEN);
        s[BODY_LEN] = 0;
        nums[n++] = atoi(s + 1);
        evbuffer_drain(buf, FRAME_PEER_HEADER + body);
    }
    return n;
}

/* Hands everything waiting over to a fresh buffer and checks it is
 * exactly want[0..n). */
static void expect_order(struct channel_queue *q, const int *want, size_t n)
{
    struct evbuffer *out = evbuffer_new();
    int got[256];
    ck_assert_uint_eq(channel_queue_handover(q, out, SIZE_MAX), n);
    ck_assert_uint_eq(channel_queue_msgs(q), 0);
    ck_assert_uint_eq(channel_queue_bytes(q), 0);
    ck_assert_uint_eq(take_nums(out, got, 256), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(got[i], want[i]);
    channel_queue_detach(q);
    evbuffer_free(out);
}

START_TEST(fifo_order_through_handover)
{
    struct channel_queue *q = channel_queue_new(false);
    for (int i = 0; i < 5; i++)
        put_num(q, i, NULL);
    ck_assert_uint_eq(channel_queue_msgs(q), 5);
    ck_assert_uint_eq(channel_queue_bytes(q), 5 * FLEN);
    const int want[] = { 0, 1, 2, 3, 4 };
    expect_order(q, want, 5);
    ck_assert_uint_eq(channel_queue_stats(q)->msgs_sent, 5);
    ck_assert_uint_eq(channel_queue_stats(q)->bytes_sent, 5 * FLEN);
    channel_queue_free(q);
}
END_TEST

START_TEST(handover_stops_at_fill_with_whole_frames)
{
    struct channel_queue *q = channel_queue_new(false);
    struct evbuffer *out = evbuffer_new();
    for (int i = 0; i < 6; i++)
        put_num(q, i, NULL);
    ck_assert_uint_eq(channel_queue_handover(q, out, 0), 0);
    /* Below fill after one frame, so a second goes, overshooting. */
    ck_assert_uint_eq(channel_queue_handover(q, out, FLEN + 1), 2);
    ck_assert_uint_eq(evbuffer_get_length(out), 2 * FLEN);
    ck_assert_uint_eq(channel_queue_handover(q, out, 2 * FLEN), 0);
    ck_assert_uint_eq(channel_queue_handover(q, out, 2 * FLEN + 1), 1);
    ck_assert_uint_eq(channel_queue_msgs(q), 3);
    ck_assert_uint_eq(channel_queue_bytes(q), 3 * FLEN);
    /* The socket wrote some: out is counted as it is now. */
    evbuffer_drain(out, FLEN + 3);
    ck_assert_uint_eq(channel_queue_handover(q, out, 3 * FLEN), 2);
    ck_assert_uint_eq(evbuffer_get_length(out), 4 * FLEN - 3);
    ck_assert_uint_eq(channel_queue_stats(q)->msgs_sent, 5);
    ck_assert_uint_eq(channel_queue_stats(q)->bytes_sent, 5 * FLEN);
    evbuffer_drain(out, FLEN - 3);
    int got[8];
    ck_assert_uint_eq(take_nums(out, got, 8), 3);
    ck_assert_int_eq(got[0], 2);
    ck_assert_int_eq(got[2], 4);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

/* Four frames handed over, two more waiting; the socket wrote `written`
 * bytes of out before the connection failed. */
static struct channel_queue *failed_after(size_t written, size_t kernel_unacked)
{
    struct channel_queue *q = channel_queue_new(false);
    struct evbuffer *out = evbuffer_new();
    for (int i = 0; i < 4; i++)
        put_num(q, i, NULL);
    ck_assert_uint_eq(channel_queue_handover(q, out, SIZE_MAX), 4);
    put_num(q, 4, NULL);
    put_num(q, 5, NULL);
    evbuffer_drain(out, written);
    channel_queue_recover(q, out, kernel_unacked);
    ck_assert_uint_eq(evbuffer_get_length(out), 0);
    evbuffer_free(out);
    return q;
}

START_TEST(recover_inside_a_frame)
{
    struct channel_queue *q = failed_after(FLEN + 5, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 1);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 2);
    ck_assert_uint_eq(channel_queue_msgs(q), 4);
    ck_assert_uint_eq(channel_queue_bytes(q), 4 * FLEN);
    const int want[] = { 2, 3, 4, 5 };
    expect_order(q, want, 4);
    channel_queue_free(q);
}
END_TEST

START_TEST(recover_at_a_frame_boundary)
{
    struct channel_queue *q = failed_after(2 * FLEN, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 2);
    const int want[] = { 2, 3, 4, 5 };
    expect_order(q, want, 4);
    channel_queue_free(q);
}
END_TEST

START_TEST(recover_with_nothing_written)
{
    struct channel_queue *q = failed_after(0, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 4);
    ck_assert_uint_eq(channel_queue_msgs(q), 6);
    const int want[] = { 0, 1, 2, 3, 4, 5 };
    expect_order(q, want, 6);
    /* Requeued frames are counted again when handed over again. */
    ck_assert_uint_eq(channel_queue_stats(q)->msgs_sent, 10);
    channel_queue_free(q);
}
END_TEST

START_TEST(recover_with_everything_written)
{
    struct channel_queue *q = failed_after(4 * FLEN, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 0);
    const int want[] = { 4, 5 };
    expect_order(q, want, 2);
    channel_queue_free(q);

    q = failed_after(4 * FLEN, FLEN);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 1);
    channel_queue_free(q);
    q = failed_after(4 * FLEN, 1000);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 4);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 0);
    channel_queue_free(q);
}
END_TEST

START_TEST(recover_counts_kernel_unacked)
{
    /* Two frames and 5 bytes of the third left out; the kernel held the
     * last `unacked` of them. */
    static const struct { size_t unacked; uint64_t lost; } cases[] = {
        { 0, 1 }, { 1, 1 }, { 5, 1 }, { 6, 2 }, { 5 + FLEN, 2 },
        { 5 + FLEN + 1, 3 }, { 5 + 2 * FLEN, 3 }, { SIZE_MAX, 3 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct channel_queue *q = failed_after(2 * FLEN + 5, cases[i].unacked);
        ck_assert_msg(channel_queue_stats(q)->lost == cases[i].lost, "unacked %zu: lost %llu",
                      cases[i].unacked, (unsigned long long)channel_queue_stats(q)->lost);
        ck_assert_uint_eq(channel_queue_stats(q)->requeued, 1);
        const int want[] = { 3, 4, 5 };
        expect_order(q, want, 3);
        channel_queue_free(q);
    }
    /* At a boundary nothing is cut: only the kernel's frames are lost. */
    struct channel_queue *q = failed_after(2 * FLEN, 1);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 1);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 2);
    channel_queue_free(q);
}
END_TEST

START_TEST(recover_remembers_frames_written_before_the_last_handover)
{
    struct channel_queue *q = channel_queue_new(false);
    struct evbuffer *out = evbuffer_new();
    for (int i = 0; i < 8; i++)
        put_num(q, i, NULL);
    ck_assert_uint_eq(channel_queue_handover(q, out, 3 * FLEN), 3);
    evbuffer_drain(out, 3 * FLEN);
    ck_assert_uint_eq(channel_queue_handover(q, out, 3 * FLEN), 3);
    evbuffer_drain(out, FLEN);
    /* Frames 0..3 written, all in the kernel; 4 and 5 still in out. */
    channel_queue_recover(q, out, 4 * FLEN);
    ck_assert_uint_eq(evbuffer_get_length(out), 0);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 4);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 2);
    const int want[] = { 4, 5, 6, 7 };
    expect_order(q, want, 4);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

START_TEST(recover_estimates_kernel_unacked_beyond_the_history)
{
    /* Frames written one by one: the ring keeps only its spare room of
     * them, and the rest of a large kernel_unacked is counted by the mean
     * frame length, exact here since all frames are the same size. */
    struct channel_queue *q = channel_queue_new(false);
    struct evbuffer *out = evbuffer_new();
    for (int i = 0; i < 1000; i++) {
        put_num(q, i, NULL);
        ck_assert_uint_eq(channel_queue_handover(q, out, 1), 1);
        evbuffer_drain(out, FLEN);
    }
    put_num(q, 1000, NULL);
    ck_assert_uint_eq(channel_queue_handover(q, out, 1), 1);
    channel_queue_recover(q, out, 600 * FLEN - 1);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 600);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 1);
    /* Never more than were written on the connection. */
    for (int i = 0; i < 1000; i++) {
        channel_queue_handover(q, out, 1);
        evbuffer_drain(out, FLEN);
        put_num(q, i, NULL);
    }
    channel_queue_recover(q, out, SIZE_MAX);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 1600);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

START_TEST(recover_twice_and_reconnect)
{
    struct channel_queue *q = channel_queue_new(false);
    struct evbuffer *out = evbuffer_new();
    for (int i = 0; i < 4; i++)
        put_num(q, i, NULL);
    channel_queue_handover(q, out, SIZE_MAX);
    channel_queue_recover(q, out, 0);
    /* A failed connection that had nothing: nothing changes. */
    channel_queue_recover(q, out, 12345);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 0);
    ck_assert_uint_eq(channel_queue_msgs(q), 4);
    ck_assert_uint_eq(channel_queue_handover(q, out, 2 * FLEN), 2);
    evbuffer_drain(out, FLEN + 1);
    channel_queue_recover(q, out, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 1);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 4);
    const int want[] = { 2, 3 };
    expect_order(q, want, 2);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

START_TEST(detach_forgets_handed_frames)
{
    struct channel_queue *q = channel_queue_new(false);
    struct evbuffer *out = evbuffer_new();
    for (int i = 0; i < 6; i++)
        put_num(q, i, NULL);
    ck_assert_uint_eq(channel_queue_handover(q, out, 3 * FLEN), 3);
    evbuffer_drain(out, 3 * FLEN);
    channel_queue_detach(q);
    /* A new connection: what the old one wrote is nobody's loss here. */
    ck_assert_uint_eq(channel_queue_handover(q, out, 2 * FLEN), 2);
    evbuffer_drain(out, FLEN);
    channel_queue_recover(q, out, SIZE_MAX);
    ck_assert_uint_eq(channel_queue_stats(q)->lost, 1);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 1);
    const int want[] = { 4, 5 };
    expect_order(q, want, 2);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

START_TEST(clear_drops_waiting)
{
    for (int mono = 0; mono < 2; mono++) {
        struct channel_queue *q = channel_queue_new(mono);
        struct evbuffer *out = evbuffer_new();
        put_num(q, 0, "a");
        put_num(q, 1, "b");
        channel_queue_handover(q, out, 1);
        channel_queue_recover(q, out, 0);
        put_num(q, 2, "a");
        put_num(q, 3, NULL);
        ck_assert_uint_eq(channel_queue_clear(q), 4);
        ck_assert_uint_eq(channel_queue_msgs(q), 0);
        ck_assert_uint_eq(channel_queue_bytes(q), 0);
        ck_assert_uint_eq(channel_queue_clear(q), 0);
        /* No stale key survives. */
        put_num(q, 4, "a");
        ck_assert_uint_eq(channel_queue_stats(q)->superseded, 0);
        const int want[] = { 4 };
        expect_order(q, want, 1);
        evbuffer_free(out);
        channel_queue_free(q);
    }
}
END_TEST

START_TEST(reserve_and_commit_limits)
{
    for (int mono = 0; mono < 2; mono++) {
        struct channel_queue *q = channel_queue_new(mono);
        ck_assert_ptr_null(channel_queue_reserve(q, 0));
        ck_assert_ptr_null(channel_queue_reserve(q, FRAME_PEER_HEADER - 1));
        ck_assert_ptr_null(channel_queue_reserve(q, SIZE_MAX));
        ck_assert_int_eq(channel_queue_commit(q, NULL, 0, 0), -1);
        /* A length field that disagrees would misalign the queue. */
        uint8_t *p = channel_queue_reserve(q, FRAME_PEER_HEADER + 4);
        ck_assert_ptr_nonnull(p);
        frame_peer_header(p, (const uint8_t *)"abcde", 5);
        ck_assert_int_eq(channel_queue_commit(q, "k", 1, 0), -1);
        ck_assert_int_eq(channel_queue_commit(q, "k", 1, 0), -1);
        /* A header with an empty body is still a frame. */
        p = channel_queue_reserve(q, FRAME_PEER_HEADER);
        ck_assert_ptr_nonnull(p);
        frame_peer_header(p, p, 0);
        ck_assert_int_eq(channel_queue_commit(q, NULL, 0, 0), 0);
        ck_assert_uint_eq(channel_queue_msgs(q), 1);
        ck_assert_uint_eq(channel_queue_bytes(q), FRAME_PEER_HEADER);
        /* A reservation does not survive a handover. */
        struct evbuffer *out = evbuffer_new();
        p = channel_queue_reserve(q, FLEN);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(channel_queue_handover(q, out, SIZE_MAX), 1);
        ck_assert_int_eq(channel_queue_commit(q, NULL, 0, 0), -1);
        ck_assert_uint_eq(channel_queue_msgs(q), 0);
        ck_assert_uint_eq(evbuffer_get_length(out), FRAME_PEER_HEADER);
        /* Nor is one left behind when the queue is freed. */
        ck_assert_ptr_nonnull(channel_queue_reserve(q, FLEN));
        evbuffer_free(out);
        channel_queue_free(q);
    }
}
END_TEST

START_TEST(monotonic_replacement_keeps_position)
{
    struct channel_queue *q = channel_queue_new(true);
    put_num(q, 1, "k1");
    put_num(q, 2, "k2");
    put_num(q, 3, "k3");
    put_frame(q, "longer body, k2", "k2");
    ck_assert_uint_eq(channel_queue_msgs(q), 3);
    ck_assert_uint_eq(channel_queue_bytes(q), 2 * FLEN + FRAME_PEER_HEADER + 15);
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 1);
    /* Replacing the head and the tail keeps the list whole. */
    put_num(q, 11, "k1");
    put_num(q, 33, "k3");
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 3);
    struct evbuffer *out = evbuffer_new();
    ck_assert_uint_eq(channel_queue_handover(q, out, SIZE_MAX), 3);
    size_t len = evbuffer_get_length(out);
    ck_assert_uint_eq(len, 2 * FLEN + FRAME_PEER_HEADER + 15);
    const uint8_t *p = evbuffer_pullup(out, -1);
    ck_assert_mem_eq(p + FRAME_PEER_HEADER, "m000000011", BODY_LEN);
    ck_assert_mem_eq(p + FLEN + FRAME_PEER_HEADER, "longer body, k2", 15);
    ck_assert_mem_eq(p + FLEN + FRAME_PEER_HEADER + 15 + FRAME_PEER_HEADER, "m000000033", BODY_LEN);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

START_TEST(monotonic_empty_key_never_replaces)
{
    struct channel_queue *q = channel_queue_new(true);
    put_num(q, 0, NULL);
    put_num(q, 1, "");
    put_num(q, 2, NULL);
    uint8_t *p = channel_queue_reserve(q, FLEN);
    memcpy(p + FRAME_PEER_HEADER, "m000000003", BODY_LEN);
    frame_peer_header(p, p + FRAME_PEER_HEADER, BODY_LEN);
    ck_assert_int_eq(channel_queue_commit(q, "ignored", 0, 0), 0);
    ck_assert_uint_eq(channel_queue_msgs(q), 4);
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 0);
    const int want[] = { 0, 1, 2, 3 };
    expect_order(q, want, 4);
    channel_queue_free(q);
}
END_TEST

START_TEST(monotonic_distinct_keys_coexist)
{
    /* Enough keys to grow the key table several times, and keys longer
     * than the room kept for them in each frame. */
    struct channel_queue *q = channel_queue_new(true);
    char key[200];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 200; i++) {
            memset(key, 'x', sizeof key);
            snprintf(key, sizeof key, "node/name/%d", i);
            key[strlen(key)] = 'x';
            key[(i % 2) ? 20 : 150] = 0;
            put_num(q, round * 1000 + i, key);
        }
    ck_assert_uint_eq(channel_queue_msgs(q), 200);
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 200);
    int want[200];
    for (int i = 0; i < 200; i++)
        want[i] = 1000 + i;
    expect_order(q, want, 200);
    channel_queue_free(q);
}
END_TEST

START_TEST(monotonic_handed_frame_is_not_replaced)
{
    struct channel_queue *q = channel_queue_new(true);
    struct evbuffer *out = evbuffer_new();
    put_num(q, 1, "k");
    ck_assert_uint_eq(channel_queue_handover(q, out, SIZE_MAX), 1);
    put_num(q, 2, "k");
    ck_assert_uint_eq(channel_queue_msgs(q), 1);
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 0);
    put_num(q, 3, "k");
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 1);
    ck_assert_uint_eq(channel_queue_handover(q, out, SIZE_MAX), 1);
    int got[4];
    ck_assert_uint_eq(take_nums(out, got, 4), 2);
    ck_assert_int_eq(got[0], 1);
    ck_assert_int_eq(got[1], 3);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

/* A gate that holds back key "a" while `closed`, and records what went. */
struct gate_log {
    bool closed;
    char sent[16][8];
    uint64_t tags[16];
    int n;
};

static bool gate_may_send(void *ctx, const void *key, size_t key_len)
{
    struct gate_log *g = ctx;
    return !(g->closed && key_len == 1 && memcmp(key, "a", 1) == 0);
}

static void gate_sent(void *ctx, const void *key, size_t key_len, uint64_t tag)
{
    struct gate_log *g = ctx;
    ck_assert_int_lt(g->n, 16);
    snprintf(g->sent[g->n], sizeof g->sent[g->n], "%.*s", (int)key_len, (const char *)key);
    g->tags[g->n++] = tag;
}

static void put_tagged(struct channel_queue *q, int i, const char *key, uint64_t tag)
{
    char body[BODY_LEN + 1];
    snprintf(body, sizeof body, "m%09d", i);
    uint8_t *p = channel_queue_reserve(q, FRAME_PEER_HEADER + BODY_LEN);
    ck_assert_ptr_nonnull(p);
    memcpy(p + FRAME_PEER_HEADER, body, BODY_LEN);
    frame_peer_header(p, p + FRAME_PEER_HEADER, BODY_LEN);
    ck_assert_int_eq(channel_queue_commit(q, key, strlen(key), tag), 0);
}

/* A closed gate keeps a destination's frames waiting (and replaceable)
 * while frames for others pass; opened, the newest goes, with its tag. */
START_TEST(monotonic_gate_holds_back_and_lets_others_pass)
{
    struct channel_queue *q = channel_queue_new(true);
    struct evbuffer *out = evbuffer_new();
    struct gate_log g = { .closed = true };
    struct channel_gate gate = { .ctx = &g, .may_send = gate_may_send, .sent = gate_sent };
    channel_queue_set_gate(q, &gate);
    put_tagged(q, 0, "a", 100);
    put_tagged(q, 1, "b", 101);
    put_tagged(q, 2, "a", 102);          /* replaces #0 while it waits */
    ck_assert_uint_eq(channel_queue_handover(q, out, 1 << 20), 1);
    ck_assert_int_eq(g.n, 1);
    ck_assert_str_eq(g.sent[0], "b");
    ck_assert_uint_eq(g.tags[0], 101);
    ck_assert_uint_eq(channel_queue_msgs(q), 1);
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 1);
    put_tagged(q, 3, "a", 103);          /* replaces #2 */
    ck_assert_uint_eq(channel_queue_handover(q, out, 1 << 20), 0);
    g.closed = false;
    ck_assert_uint_eq(channel_queue_handover(q, out, 1 << 20), 1);
    ck_assert_int_eq(g.n, 2);
    ck_assert_str_eq(g.sent[1], "a");
    ck_assert_uint_eq(g.tags[1], 103);
    int nums[4];
    ck_assert_uint_eq(take_nums(out, nums, 4), 2);
    ck_assert_int_eq(nums[0], 1);
    ck_assert_int_eq(nums[1], 3);
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 2);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

START_TEST(monotonic_recovered_frames_go_first_unkeyed)
{
    struct channel_queue *q = channel_queue_new(true);
    struct evbuffer *out = evbuffer_new();
    put_num(q, 1, "k1");
    put_num(q, 2, "k2");
    ck_assert_uint_eq(channel_queue_handover(q, out, SIZE_MAX), 2);
    put_num(q, 3, "k3");
    channel_queue_recover(q, out, 0);
    ck_assert_uint_eq(channel_queue_stats(q)->requeued, 2);
    put_num(q, 4, "k1");
    put_num(q, 33, "k3");
    ck_assert_uint_eq(channel_queue_msgs(q), 4);
    ck_assert_uint_eq(channel_queue_stats(q)->superseded, 1);
    /* Partly handed again, then failed again: still ahead of the list. */
    ck_assert_uint_eq(channel_queue_handover(q, out, 1), 1);
    channel_queue_recover(q, out, 0);
    const int want[] = { 1, 2, 33, 4 };
    expect_order(q, want, 4);
    evbuffer_free(out);
    channel_queue_free(q);
}
END_TEST

/* A long run with a socket that writes arbitrary amounts and fails now and
 * then: the receiver sees every frame once, in order, except the cut ones,
 * and those are exactly the lost count. */
START_TEST(stream_with_random_failures)
{
    for (int mono = 0; mono < 2; mono++) {
        struct channel_queue *q = channel_queue_new(mono);
        struct evbuffer *out = evbuffer_new(), *wire = evbuffer_new();
        uint32_t seed = 12345;
        int next = 0, expect = 0;
        size_t received = 0;
        const int total = 20000;
        while (next < total || channel_queue_msgs(q) || evbuffer_get_length(out)) {
            seed = seed * 1103515245u + 12345u;
            for (unsigned i = (seed >> 16) % 40; i > 0 && next < total; i--)
                put_num(q, next++, NULL);
            channel_queue_handover(q, out, 500);
            seed = seed * 1103515245u + 12345u;
            size_t w = (seed >> 16) % 700;
            if (w > evbuffer_get_length(out))
                w = evbuffer_get_length(out);
            evbuffer_remove_buffer(out, wire, w);
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 17 == 0) {
                channel_queue_recover(q, out, 0);
                /* The receiver drops the frame it was cut off in. */
                size_t whole = 0, len = evbuffer_get_length(wire);
                const uint8_t *p = evbuffer_pullup(wire, -1);
                while (len - whole >= FRAME_PEER_HEADER &&
                       len - whole >= FRAME_PEER_HEADER + frame_get_u32(p + whole))
                    whole += FRAME_PEER_HEADER + frame_get_u32(p + whole);
                struct evbuffer *tail = evbuffer_new();
                evbuffer_remove_buffer(wire, tail, whole);
                evbuffer_free(wire);
                wire = tail;
            }
            /* Read whole frames off the wire as they come. */
            for (;;) {
                size_t len = evbuffer_get_length(wire), body;
                if (len < FRAME_PEER_HEADER)
                    break;
                const uint8_t *p = evbuffer_pullup(wire, -1);
                if (frame_peer_peek(p, len, 1 << 20, &body) != FRAME_OK)
                    break;
                char s[BODY_LEN + 1];
                memcpy(s, p + FRAME_PEER_HEADER, BODY_LEN);
                s[BODY_LEN] = 0;
                int n = atoi(s + 1);
                ck_assert_int_ge(n, expect);
                expect = n + 1;
                received++;
                evbuffer_drain(wire, FRAME_PEER_HEADER + body);
            }
        }
        ck_assert_uint_eq(evbuffer_get_length(wire), 0);
        ck_assert_uint_gt(channel_queue_stats(q)->requeued, 0);
        ck_assert_uint_gt(channel_queue_stats(q)->lost, 0);
        ck_assert_uint_eq(received + channel_queue_stats(q)->lost, total);
        evbuffer_free(out);
        evbuffer_free(wire);
        channel_queue_free(q);
    }
}
END_TEST

START_TEST(pick_lane_by_key_is_stable)
{
    size_t loads[64] = { 0 };
    loads[5] = 1000;
    unsigned rr = 7;
    const char *keys[] = { "a", "user:42", "node-3/orders/eu", "zzzzzzzzzzzzzzzzzzzzzz" };
    for (unsigned n = 1; n <= 64; n++)
        for (size_t i = 0; i < 4; i++) {
            unsigned lane = channel_pick_lane(keys[i], strlen(keys[i]), loads, n, &rr);
            ck_assert_uint_eq(lane, hash_bytes(keys[i], strlen(keys[i])) % n);
            ck_assert_uint_eq(channel_pick_lane(keys[i], strlen(keys[i]), NULL, n, NULL), lane);
        }
    ck_assert_uint_eq(rr, 7);
}
END_TEST

START_TEST(pick_lane_without_key_is_least_loaded_then_rotating)
{
    unsigned rr = 0;
    const size_t loads[] = { 3, 1, 2, 1 };
    ck_assert_uint_eq(channel_pick_lane(NULL, 0, loads, 4, &rr), 1);
    ck_assert_uint_eq(channel_pick_lane(NULL, 0, loads, 4, &rr), 3);
    ck_assert_uint_eq(channel_pick_lane(NULL, 0, loads, 4, &rr), 1);
    const size_t even[4] = { 0 };
    rr = 0;
    for (unsigned i = 0; i < 9; i++)
        ck_assert_uint_eq(channel_pick_lane("", 0, even, 4, &rr), i % 4);
    const size_t two[] = { 0, 5, 0, 5 };
    rr = 0;
    for (unsigned i = 0; i < 6; i++)
        ck_assert_uint_eq(channel_pick_lane(NULL, 0, two, 4, &rr), (i % 2) * 2);
    rr = 12345;
    ck_assert_uint_eq(channel_pick_lane(NULL, 0, even, 1, &rr), 0);
    ck_assert_uint_eq(channel_pick_lane(NULL, 0, NULL, 3, &rr), 0);
    ck_assert_uint_eq(channel_pick_lane(NULL, 0, NULL, 3, &rr), 1);
    size_t many[64];
    for (unsigned i = 0; i < 64; i++)
        many[i] = 100 - i;
    ck_assert_uint_eq(channel_pick_lane(NULL, 0, many, 64, &rr), 63);
}
END_TEST

static Suite *channel_suite(void)
{
    Suite *s = suite_create("channel");
    TCase *tc = tcase_create("queue");
    tcase_add_test(tc, fifo_order_through_handover);
    tcase_add_test(tc, handover_stops_at_fill_with_whole_frames);
    tcase_add_test(tc, recover_inside_a_frame);
    tcase_add_test(tc, recover_at_a_frame_boundary);
    tcase_add_test(tc, recover_with_nothing_written);
    tcase_add_test(tc, recover_with_everything_written);
    tcase_add_test(tc, recover_counts_kernel_unacked);
    tcase_add_test(tc, recover_remembers_frames_written_before_the_last_handover);
    tcase_add_test(tc, recover_estimates_kernel_unacked_beyond_the_history);
    tcase_add_test(tc, recover_twice_and_reconnect);
    tcase_add_test(tc, detach_forgets_handed_frames);
    tcase_add_test(tc, clear_drops_waiting);
    tcase_add_test(tc, reserve_and_commit_limits);
    tcase_add_test(tc, stream_with_random_failures);
    suite_add_tcase(s, tc);
    TCase *mono = tcase_create("monotonic");
    tcase_add_test(mono, monotonic_replacement_keeps_position);
    tcase_add_test(mono, monotonic_empty_key_never_replaces);
    tcase_add_test(mono, monotonic_distinct_keys_coexist);
    tcase_add_test(mono, monotonic_handed_frame_is_not_replaced);
    tcase_add_test(mono, monotonic_recovered_frames_go_first_unkeyed);
    tcase_add_test(mono, monotonic_gate_holds_back_and_lets_others_pass);
    suite_add_tcase(s, mono);
    TCase *lanes = tcase_create("lanes");
    tcase_add_test(lanes, pick_lane_by_key_is_stable);
    tcase_add_test(lanes, pick_lane_without_key_is_least_loaded_then_rotating);
    suite_add_tcase(s, lanes);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(channel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
