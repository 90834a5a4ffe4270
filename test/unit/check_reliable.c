/* check_reliable: the router's reliable channels (daemon/reliable.c) between
 * two instances wired back to back in memory. Frames are packed with
 * protobuf-c and unpacked on "arrival", as the wire would; a test decides
 * when they arrive and which are lost. What is asserted is what an
 * application would see: what its session receives, in which order, and
 * the verdict its send gets. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "reliable.h"

#define MAX_FRAMES 4096
#define MAX_SEEN 4096

struct frame {
    bool ack;
    unsigned ch;
    size_t len;
    uint8_t *bytes;
};

struct side {
    const char *name;
    struct reliable *r;
    struct side *peer;
    struct frame q[MAX_FRAMES];          /* frames on their way to peer */
    size_t nq;
    bool holds_inbox;                    /* an application holds "inbox" here */
    bool busy;                           /* ... and its queue is past half its bound */
    char seen[MAX_SEEN][64];             /* payloads delivered, in order */
    size_t nseen;
    /* verdicts owed to senders */
    size_t nverdicts;
    uint64_t last_req;
    bool last_confirm;
    Partisan__Ipc__ErrorCode last_code;
    size_t unblocks;
    uint64_t armed;
};

static struct config cfg;

static void push(struct side *s, bool ack, unsigned ch, const ProtobufCMessage *m)
{
    ck_assert_uint_lt(s->nq, MAX_FRAMES);
    struct frame *f = &s->q[s->nq++];
    f->ack = ack;
    f->ch = ch;
    f->len = protobuf_c_message_get_packed_size(m);
    f->bytes = malloc(f->len ? f->len : 1);
    ck_assert_ptr_nonnull(f->bytes);
    protobuf_c_message_pack(m, f->bytes);
}

static void io_transmit(void *ctx, unsigned ch, const Partisan__Peer__Data *d)
{
    push(ctx, false, ch, &d->base);
}

static void io_send_ack(void *ctx, unsigned ch, const Partisan__Peer__DeliveryAck *a)
{
    push(ctx, true, ch, &a->base);
}

static int io_deliver(void *ctx, const char *origin, const char *name, const char *channel, const uint8_t *payload,
                      size_t len)
{
    (void)origin;
    (void)channel;
    struct side *s = ctx;
    if (!s->holds_inbox || strcmp(name, "inbox") != 0)
        return DELIVERY_V_NO_SUCH_NAME;
    ck_assert_uint_lt(s->nseen, MAX_SEEN);
    snprintf(s->seen[s->nseen++], 64, "%.*s", (int)len, (const char *)payload);
    return DELIVERY_V_DELIVERED;
}

static bool io_busy(void *ctx, const char *name)
{
    (void)name;
    return ((struct side *)ctx)->busy;
}

static void io_verdict(void *ctx, void *sender, uint64_t req_id, bool confirm, Partisan__Ipc__ErrorCode code,
                       const char *error)
{
    (void)error;
    struct side *s = ctx;
    ck_assert_ptr_eq(sender, s);   /* the tests send as "the side itself" */
    s->nverdicts++;
    s->last_req = req_id;
    s->last_confirm = confirm;
    s->last_code = code;
}

static void io_unblock(void *ctx, const void *handle)
{
    (void)handle;
    ((struct side *)ctx)->unblocks++;
}

static void io_arm(void *ctx, uint64_t at) { ((struct side *)ctx)->armed = at; }

static struct side a, b;

static void make(struct side *s, const char *name, struct side *peer, uint64_t epoch)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->peer = peer;
    s->armed = UINT64_MAX;
    struct reliable_config rc = { .config = &cfg, .self = name, .epoch = epoch, .max_message_bytes = 1 << 20 };
    struct reliable_io io = { .ctx = s, .transmit = io_transmit, .send_ack = io_send_ack, .deliver = io_deliver,
                              .busy = io_busy, .verdict = io_verdict, .unblock = io_unblock, .arm = io_arm };
    s->r = reliable_new(&rc, &io);
    ck_assert_ptr_nonnull(s->r);
}

static void setup(void)
{
    config_defaults(&cfg);
    snprintf(cfg.channels[1].name, sizeof cfg.channels[1].name, "orders");
    cfg.channels[1].parallelism = 1;
    cfg.channels[1].reliable = 1;
    snprintf(cfg.channels[2].name, sizeof cfg.channels[2].name, "chat");
    cfg.channels[2].parallelism = 1;
    cfg.channels[2].reliable = 1;
    cfg.channels[2].causal = 1;
    cfg.n_channels = 3;
    make(&a, "a", &b, 100);
    make(&b, "b", &a, 200);
    reliable_peer_up(a.r, "b", 200);
    reliable_peer_up(b.r, "a", 100);
}

static void drop_queue(struct side *s)
{
    for (size_t i = 0; i < s->nq; i++)
        free(s->q[i].bytes);
    s->nq = 0;
}

static void teardown(void)
{
    reliable_free(a.r);
    reliable_free(b.r);
    drop_queue(&a);
    drop_queue(&b);
}

/* Hands every queued frame of s to its peer, except every `lose`-th (0: none). */
static size_t deliver_from(struct side *s, unsigned lose)
{
    size_t n = s->nq, moved = 0;
    struct frame *copy = malloc(n * sizeof *copy + 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, s->q, n * sizeof *copy);
    s->nq = 0;
    for (size_t i = 0; i < n; i++) {
        if (lose && i % lose == lose - 1) {
            free(copy[i].bytes);
            continue;
        }
        if (copy[i].ack) {
            Partisan__Peer__DeliveryAck *k = partisan__peer__delivery_ack__unpack(NULL, copy[i].len, copy[i].bytes);
            ck_assert_ptr_nonnull(k);
            reliable_on_ack(s->peer->r, s->name, k);
            partisan__peer__delivery_ack__free_unpacked(k, NULL);
        } else {
            Partisan__Peer__Data *d = partisan__peer__data__unpack(NULL, copy[i].len, copy[i].bytes);
            ck_assert_ptr_nonnull(d);
            reliable_on_data(s->peer->r, s->name, cfg.channels[copy[i].ch].name, d);
            partisan__peer__data__free_unpacked(d, NULL);
        }
        free(copy[i].bytes);
        moved++;
    }
    free(copy);
    return moved;
}

/* Runs both sides, ticking their timers, until nothing moves and no timer
 * is armed (everything acknowledged), for at most ms. */
static void settle(unsigned lose, int ms)
{
    uint64_t end = clock_now_ms() + (uint64_t)ms;
    int quiet = 0;
    while (clock_now_ms() < end && (quiet < 5 || a.armed != UINT64_MAX || b.armed != UINT64_MAX)) {
        size_t moved = deliver_from(&a, lose) + deliver_from(&b, lose);
        uint64_t now = clock_now_ms();
        if (a.armed != UINT64_MAX && a.armed <= now)
            reliable_tick(a.r);
        if (b.armed != UINT64_MAX && b.armed <= now)
            reliable_tick(b.r);
        quiet = moved ? 0 : quiet + 1;
        struct timespec ts = { 0, 2 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

static Partisan__Ipc__ErrorCode send_from(struct side *s, uint64_t req, bool confirm, unsigned ch, const char *name,
                                          const char *text, bool *deferred, const void **block)
{
    char msg[512];
    return reliable_send(s->r, s, req, confirm, s->peer->name, 0, ch, name, NULL, 0, text, strlen(text), deferred,
                         block, msg, sizeof msg);
}

START_TEST(confirmed_send_is_answered_when_delivered)
{
    b.holds_inbox = true;
    bool deferred;
    const void *block;
    ck_assert_int_eq(send_from(&a, 7, true, 1, "inbox", "hello", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    ck_assert(deferred);
    ck_assert_ptr_null(block);
    ck_assert_uint_eq(a.nverdicts, 0);   /* not before the destination has it */
    settle(0, 2000);
    ck_assert_uint_eq(b.nseen, 1);
    ck_assert_str_eq(b.seen[0], "hello");
    ck_assert_uint_eq(a.nverdicts, 1);
    ck_assert_uint_eq(a.last_req, 7);
    ck_assert(a.last_confirm);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__OK);
}
END_TEST

START_TEST(no_such_name_reaches_the_sender)
{
    bool deferred;
    const void *block;
    /* confirmed: the reply is the failure */
    ck_assert_int_eq(send_from(&a, 1, true, 1, "nobody", "x", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    settle(0, 2000);
    ck_assert_uint_eq(a.nverdicts, 1);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME);
    /* pipelined: accepted at once, the failure told later, never a success */
    ck_assert_int_eq(send_from(&a, 2, false, 1, "nobody", "y", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    ck_assert(!deferred);
    b.holds_inbox = true;
    ck_assert_int_eq(send_from(&a, 3, false, 1, "inbox", "z", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    settle(0, 2000);
    ck_assert_uint_eq(a.nverdicts, 2);
    ck_assert_uint_eq(a.last_req, 2);
    ck_assert(!a.last_confirm);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME);
    struct reliable_stats st;
    reliable_get_stats(a.r, &st);
    ck_assert_uint_eq(st.failed, 2);
}
END_TEST

START_TEST(loss_is_repaired_in_order_exactly_once)
{
    b.holds_inbox = true;
    bool deferred;
    const void *block;
    char text[32];
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof text, "m%03d", i);
        ck_assert_int_eq(send_from(&a, (uint64_t)i + 1, false, 1, "inbox", text, &deferred, &block),
                         PARTISAN__IPC__ERROR_CODE__OK);
        ck_assert_ptr_null(block);
        if (i % 10 == 9)
            deliver_from(&a, 3);   /* a third of the data lost on the way */
    }
    settle(4, 20000);              /* and a quarter of everything after */
    ck_assert_uint_eq(b.nseen, 100);
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof text, "m%03d", i);
        ck_assert_str_eq(b.seen[i], text);
    }
    struct reliable_stats st;
    reliable_get_stats(a.r, &st);
    ck_assert_uint_gt(st.d.retransmitted, 0);
    ck_assert_uint_eq(st.outstanding, 0);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_uint_eq(a.nverdicts, 0);   /* pipelined and delivered: nothing to tell */
}
END_TEST

START_TEST(full_window_parks_and_blocks_then_resumes)
{
    b.holds_inbox = true;
    bool deferred;
    const void *block = NULL;
    char text[32];
    int i = 0;
    /* Nothing reaches b: the window fills, and the send past it is held
     * with its sender blocked, not refused and not dropped. */
    for (; i < 1000 && !block; i++) {
        snprintf(text, sizeof text, "w%04d", i);
        ck_assert_int_eq(send_from(&a, (uint64_t)i + 1, false, 1, "inbox", text, &deferred, &block),
                         PARTISAN__IPC__ERROR_CODE__OK);
    }
    ck_assert_ptr_nonnull(block);
    ck_assert_int_eq(i, DELIVERY_WINDOW_DEFAULT + 1);
    struct reliable_stats st;
    reliable_get_stats(a.r, &st);
    ck_assert_uint_eq(st.parked, 1);
    ck_assert_uint_eq(a.unblocks, 0);
    settle(0, 5000);
    ck_assert_uint_eq(a.unblocks, 1);
    ck_assert_uint_eq(b.nseen, (size_t)i);
    snprintf(text, sizeof text, "w%04d", i - 1);
    ck_assert_str_eq(b.seen[i - 1], text);
}
END_TEST

START_TEST(busy_receiver_holds_its_senders_back)
{
    b.holds_inbox = true;
    b.busy = true;
    bool deferred;
    const void *block;
    ck_assert_int_eq(send_from(&a, 1, true, 1, "inbox", "later", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    settle(0, 100);
    ck_assert_uint_eq(b.nseen, 0);       /* left with the core while the session is busy */
    ck_assert_uint_eq(a.nverdicts, 0);
    b.busy = false;
    settle(0, 2000);
    ck_assert_uint_eq(b.nseen, 1);
    ck_assert_uint_eq(a.nverdicts, 1);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__OK);
}
END_TEST

START_TEST(closed_sender_is_owed_nothing)
{
    b.holds_inbox = true;
    bool deferred;
    const void *block;
    ck_assert_int_eq(send_from(&a, 1, true, 1, "inbox", "orphan", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    reliable_sender_closed(a.r, &a);
    settle(0, 2000);
    ck_assert_uint_eq(b.nseen, 1);       /* the message still goes */
    ck_assert_uint_eq(a.nverdicts, 0);
}
END_TEST

START_TEST(destination_left_fails_waiting_messages)
{
    bool deferred;
    const void *block;
    reliable_peer_down(a.r, "b");
    ck_assert_int_eq(send_from(&a, 9, true, 1, "inbox", "lost", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    reliable_peer_left(a.r, "b");
    ck_assert_uint_eq(a.nverdicts, 1);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE);
}
END_TEST

START_TEST(destination_restart_is_reported)
{
    b.holds_inbox = true;
    bool deferred;
    const void *block;
    ck_assert_int_eq(send_from(&a, 5, true, 1, "inbox", "m1", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    drop_queue(&a);                      /* sent, never arrived */
    /* b restarts: a new epoch */
    reliable_free(b.r);
    drop_queue(&b);
    make(&b, "b", &a, 300);
    b.holds_inbox = true;
    reliable_peer_up(b.r, "a", 100);
    reliable_peer_up(a.r, "b", 300);
    settle(0, 2000);
    ck_assert_uint_eq(a.nverdicts, 1);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__PEER_RESTARTED);
    ck_assert_uint_eq(b.nseen, 0);       /* never to the new run */
}
END_TEST

START_TEST(causal_channel_delivers)
{
    b.holds_inbox = true;
    bool deferred;
    const void *block;
    ck_assert_int_eq(send_from(&a, 1, true, 2, "inbox", "c1", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    ck_assert_int_eq(send_from(&a, 2, true, 2, "inbox", "c2", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    settle(0, 2000);
    ck_assert_uint_eq(b.nseen, 2);
    ck_assert_str_eq(b.seen[0], "c1");
    ck_assert_str_eq(b.seen[1], "c2");
    ck_assert_uint_eq(a.nverdicts, 2);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__OK);
}
END_TEST

START_TEST(causal_name_too_long_is_no_such_name)
{
    /* Routers refuse such names on send; a peer may still send one. The
     * causal path packs the name behind one length byte, so it must say
     * "no such name", as a plain channel would, not deliver a mangled one. */
    b.holds_inbox = true;
    char name[262];   /* "inbox" + 256 more: one length byte would keep just "inbox" */
    memcpy(name, "inbox", 5);
    memset(name + 5, 'n', 256);
    name[261] = '\0';
    bool deferred;
    const void *block;
    ck_assert_int_eq(send_from(&a, 1, true, 2, name, "x", &deferred, &block), PARTISAN__IPC__ERROR_CODE__OK);
    settle(0, 2000);
    ck_assert_uint_eq(b.nseen, 0);
    ck_assert_uint_eq(a.nverdicts, 1);
    ck_assert_int_eq(a.last_code, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("reliable");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, confirmed_send_is_answered_when_delivered);
    tcase_add_test(tc, no_such_name_reaches_the_sender);
    tcase_add_test(tc, loss_is_repaired_in_order_exactly_once);
    tcase_add_test(tc, full_window_parks_and_blocks_then_resumes);
    tcase_add_test(tc, busy_receiver_holds_its_senders_back);
    tcase_add_test(tc, closed_sender_is_owed_nothing);
    tcase_add_test(tc, destination_left_fails_waiting_messages);
    tcase_add_test(tc, destination_restart_is_reported);
    tcase_add_test(tc, causal_channel_delivers);
    tcase_add_test(tc, causal_name_too_long_is_no_such_name);
    suite_add_tcase(s, tc);
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
