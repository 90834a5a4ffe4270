/* Transport: real sockets on 127.0.0.1, ephemeral ports only, several
 * transports on one event_base. Every wait is bounded. Each test asserts what
 * a user of the transport would notice: callbacks, delivered frames, closed
 * connections and counters. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "faults.h"
#include "frame.h"
#include "log.h"
#include "transport.h"

#define WAIT_MS 5000

static struct event_base *base;
static struct event *tick;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs the loop until cond holds or ms pass; the 10 ms tick keeps every
 * EVLOOP_ONCE short even when nothing else is pending. */
#define WAIT_UNTIL(cond, ms)                                             \
    do {                                                                 \
        uint64_t dl_ = mono_ms() + (ms);                                 \
        while (!(cond) && mono_ms() < dl_)                               \
            event_base_loop(base, EVLOOP_ONCE);                          \
    } while (0)

static void run_for(uint64_t ms)
{
    uint64_t dl = mono_ms() + ms;
    while (mono_ms() < dl)
        event_base_loop(base, EVLOOP_ONCE);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what; (void)arg;
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = { 0, 10000 };
    event_add(tick, &tv);
}

static void teardown(void)
{
    event_free(tick);
    event_base_free(base);
}

/* ------------------------------------------------------------ the env -- */

struct env {
    struct transport *t;
    char addr[64];
    int connected, failed, disconnected, drained;
    char conn_node[64], conn_addr[64];
    uint64_t conn_inc;
    char fail_expect[64], fail_addr[64], fail_reason[512];
    char disc_node[64];
    int gossip_n;
    uint64_t gossip_seq[8];
    char gossip_from[64];
    int data_n;
    bool data_bad;
    char data_from[64];
    char data_channel[64];
    int credit_n;
    uint64_t credit_bytes;
    int redial_budget;              /* on_connect_failed dials again this often */
    const char *redial_on_disconnect; /* on_disconnected: disconnect, then dial this */
    /* The fault tests: what arrived, per channel, and when. */
    bool record;                    /* on_data records below instead of checking the order */
    int chan_n[2];                  /* "default", "bulk" */
    int got[256];                   /* default: the payload numbers, in arrival order */
    uint64_t got_ms[256];
    bool corrupted;                 /* a payload that is no "payload-N" arrived */
    Partisan__Peer__Data last;      /* the scalar fields of the last Data */
    uint8_t last_causal[16];
    size_t last_causal_len;
    int ack_n;
    char ack_from[64], ack_channel[64];
    uint64_t ack_cum, ack_sack, ack_dest_epoch;
    size_t ack_exceptions;
};

static void on_connected(void *ctx, const char *node, const char *address, uint64_t inc)
{
    struct env *e = ctx;
    e->connected++;
    snprintf(e->conn_node, sizeof e->conn_node, "%s", node);
    snprintf(e->conn_addr, sizeof e->conn_addr, "%s", address);
    e->conn_inc = inc;
}

static void on_connect_failed(void *ctx, const char *expect, const char *address, const char *reason)
{
    struct env *e = ctx;
    e->failed++;
    snprintf(e->fail_expect, sizeof e->fail_expect, "%s", expect);
    snprintf(e->fail_addr, sizeof e->fail_addr, "%s", address);
    snprintf(e->fail_reason, sizeof e->fail_reason, "%s", reason);
    if (e->redial_budget > 0) {
        e->redial_budget--;
        transport_connect(e->t, e->fail_expect, e->fail_addr);
    }
}

static void on_disconnected(void *ctx, const char *node)
{
    struct env *e = ctx;
    e->disconnected++;
    snprintf(e->disc_node, sizeof e->disc_node, "%s", node);
    if (e->redial_on_disconnect) {
        transport_disconnect(e->t, node);
        transport_connect(e->t, node, e->redial_on_disconnect);
    }
}

/* The transport carries overlay messages as opaque bytes; these tests send
 * an 8-byte big-endian sequence number (or one byte) as the message. */
static uint64_t get_seq(const uint8_t *msg, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 8; i++)
        v = v << 8 | msg[i];
    return len == 8 ? v : 0;
}

static void put_seq(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static void on_overlay(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct env *e = ctx;
    if (e->gossip_n < 8)
        e->gossip_seq[e->gossip_n] = get_seq(msg, len);
    e->gossip_n++;
    snprintf(e->gossip_from, sizeof e->gossip_from, "%s", from);
}

static void record_data(struct env *e, const char *channel, const Partisan__Peer__Data *d)
{
    int which = strcmp(channel, "bulk") == 0;
    e->chan_n[which]++;
    char text[32] = "";
    int num = -1;
    if (d->payload.len < sizeof text) {
        memcpy(text, d->payload.data, d->payload.len);
        text[d->payload.len] = '\0';
    }
    char tail;
    if (sscanf(text, "payload-%d%c", &num, &tail) != 1 || strcmp(d->name, "svc") != 0)
        e->corrupted = true;
    if (!which && e->chan_n[0] <= 256) {
        e->got[e->chan_n[0] - 1] = num;
        e->got_ms[e->chan_n[0] - 1] = mono_ms();
    }
    e->last = *d;
    e->last_causal_len = d->causal.len < sizeof e->last_causal ? d->causal.len : 0;
    if (e->last_causal_len)
        memcpy(e->last_causal, d->causal.data, e->last_causal_len);
}

static void on_data(void *ctx, const char *from, const char *channel, const Partisan__Peer__Data *d)
{
    (void)channel;
    struct env *e = ctx;
    if (e->record) {
        record_data(e, channel, d);
        return;
    }
    char want[32];
    int n = snprintf(want, sizeof want, "payload-%d", e->data_n);
    if (d->payload.len != (size_t)n || memcmp(d->payload.data, want, (size_t)n) != 0 ||
        strcmp(d->name, "svc") != 0 || strcmp(from, "a") != 0)
        e->data_bad = true;
    e->data_n++;
    snprintf(e->data_from, sizeof e->data_from, "%s", from);
    snprintf(e->data_channel, sizeof e->data_channel, "%s", channel);
}

static void on_credit(void *ctx, const char *from, const Partisan__Peer__Credit *c)
{
    struct env *e = ctx;
    (void)from;
    e->credit_n++;
    for (size_t i = 0; i < c->n_grants; i++)
        e->credit_bytes += c->grants[i]->bytes;
}

static void on_ack(void *ctx, const char *from, const char *channel, const Partisan__Peer__DeliveryAck *a)
{
    struct env *e = ctx;
    e->ack_n++;
    snprintf(e->ack_from, sizeof e->ack_from, "%s", from);
    snprintf(e->ack_channel, sizeof e->ack_channel, "%s", channel);
    e->ack_cum = a->cum;
    e->ack_sack = a->sack;
    e->ack_dest_epoch = a->dest_epoch;
    e->ack_exceptions = a->n_exceptions;
}

static void on_drained(void *ctx, const void *lane)
{
    (void)lane;
    struct env *e = ctx;
    e->drained++;
}

/* On the default channel, without a key; remembers whether the lane said
 * it is congested. */
static bool last_congested;
static int send_data(struct transport *t, const char *node, const Partisan__Peer__Data *d)
{
    const void *lane = NULL;
    int rc = transport_send_data(t, node, 0, NULL, 0, d, &lane);
    last_congested = lane != NULL;
    return rc;
}

/* Limits a test may tighten; zero fields keep the transport's defaults. */
static struct transport_config limits;

static void mk_full(struct env *e, const char *cluster, const char *name, uint64_t inc,
                    uint32_t timeout_ms, uint64_t max_queue)
{
    struct transport_config cfg = limits;
    cfg.cluster = cluster;
    cfg.node = name;
    cfg.advertise = "";
    cfg.incarnation = inc;
    cfg.listen_host = "127.0.0.1";
    cfg.listen_port = 0;
    cfg.connect_timeout_ms = timeout_ms;
    cfg.max_frame_bytes = 1 << 20;
    cfg.max_queue_bytes = max_queue;
    struct transport_callbacks cb = {
        .ctx = e, .on_connected = on_connected, .on_connect_failed = on_connect_failed,
        .on_disconnected = on_disconnected, .on_overlay = on_overlay, .on_data = on_data,
        .on_lane_drained = on_drained, .on_credit = on_credit, .on_ack = on_ack,
    };
    e->t = transport_new(base, &cfg, &cb);
    ck_assert_ptr_nonnull(e->t);
    ck_assert_uint_ne(transport_listen_port(e->t), 0);
    snprintf(e->addr, sizeof e->addr, "127.0.0.1:%u", (unsigned)transport_listen_port(e->t));
    transport_set_advertise(e->t, e->addr);
}

static void mk(struct env *e, const char *cluster, const char *name, uint64_t inc)
{
    mk_full(e, cluster, name, inc, 2000, 1 << 20);
}

static void done(struct env *e)
{
    transport_free(e->t);
    e->t = NULL;
}

static const struct transport_stats *st(struct env *e)
{
    return transport_get_stats(e->t);
}

/* ------------------------------------------------------ raw sockets -- */

static int raw_listen(uint16_t *port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A port nothing listens on: bound, never listened on, then closed. */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Connects to a transport's listener. The kernel completes the handshake
 * from the backlog, so a blocking connect does not need the loop. */
static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void raw_write(int fd, const void *buf, size_t len)
{
    ck_assert_int_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static bool raw_closed(int fd)
{
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static size_t pack_frame(uint8_t *out, const Partisan__Peer__PeerFrame *f)
{
    size_t len = partisan__peer__peer_frame__pack(f, out + frame_env_offset(FRAME_KIND_PEER));
    frame_seal(FRAME_KIND_PEER, out, len, 0);
    return frame_size(FRAME_KIND_PEER, len, 0);
}

static size_t hello_on(uint8_t *out, const char *cluster, const char *node, const char *channel, uint32_t index)
{
    Partisan__Peer__Hello h = PARTISAN__PEER__HELLO__INIT;
    h.protocol_version = TRANSPORT_PROTOCOL_VERSION;
    h.cluster = (char *)cluster;
    h.node = (char *)node;
    h.channel = (char *)channel;
    h.conn_index = index;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_HELLO;
    f.hello = &h;
    return pack_frame(out, &f);
}

static size_t hello_frame(uint8_t *out, const char *cluster, const char *node)
{
    return hello_on(out, cluster, node, "control", 0);
}

/* Reads exactly n bytes, running the loop meanwhile. */
static bool raw_read_exact(int fd, uint8_t *buf, size_t n)
{
    size_t have = 0;
    uint64_t dl = mono_ms() + WAIT_MS;
    while (have < n && mono_ms() < dl) {
        ssize_t r = recv(fd, buf + have, n - have, MSG_DONTWAIT);
        if (r > 0)
            have += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return false;
        else
            event_base_loop(base, EVLOOP_ONCE);
    }
    return have == n;
}

static Partisan__Peer__PeerFrame *raw_read_frame(int fd)
{
    uint8_t hdr[FRAME_PEER_HEADER];
    if (!raw_read_exact(fd, hdr, sizeof hdr))
        return NULL;
    uint32_t len = frame_get_u32(hdr);
    ck_assert_uint_lt(len, 65536);
    uint8_t body[65536];
    if (!raw_read_exact(fd, body, len))
        return NULL;
    ck_assert_uint_eq(frame_crc32c(0, body, len), frame_get_u32(hdr + 4));
    struct frame f;
    ck_assert_int_eq(frame_split(body, len, &f), FRAME_OK);
    return partisan__peer__peer_frame__unpack(NULL, f.env_len, f.env);
}

static int raw_accept(int lfd)
{
    int fd = -1;
    uint64_t dl = mono_ms() + WAIT_MS;
    while (fd < 0 && mono_ms() < dl) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            event_base_loop(base, EVLOOP_ONCE);
    }
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* ------------------------------------------------------------- tests -- */

START_TEST(connect_reports_acceptor_name_and_incarnation)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    mk(&b, "prod", "b", 77);
    transport_connect(a.t, "", b.addr);     /* a seed: name unknown */
    ck_assert_int_eq(a.connected, 0);       /* never from inside the call */
    WAIT_UNTIL(a.connected == 1 && st(&b)->accepted == 1, WAIT_MS);
    ck_assert_int_eq(a.connected, 1);
    ck_assert_str_eq(a.conn_node, "b");
    ck_assert_str_eq(a.conn_addr, b.addr);
    ck_assert_uint_eq(a.conn_inc, 77);
    ck_assert_int_eq(a.failed, 0);
    ck_assert_uint_eq(st(&b)->accepted, 1); /* control only: data connections are dialled when needed */
    ck_assert_uint_eq(st(&a)->dialled, 1);
    ck_assert_int_eq(b.connected, 0);       /* connections are directional */
    done(&a);
    done(&b);
}
END_TEST

START_TEST(host_names_are_resolved_without_blocking)
{
    /* "localhost" comes from /etc/hosts through the asynchronous resolver:
     * no DNS traffic, and the dial reports from the loop like any other. */
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    mk(&b, "prod", "b", 5);
    const char *port = strrchr(b.addr, ':');
    char byname[80];
    snprintf(byname, sizeof byname, "localhost%s", port);
    transport_connect(a.t, "b", byname);
    ck_assert_int_eq(a.connected, 0);
    WAIT_UNTIL(a.connected == 1 || a.failed, WAIT_MS);
    ck_assert_int_eq(a.failed, 0);
    ck_assert_int_eq(a.connected, 1);
    ck_assert_str_eq(a.conn_node, "b");
    /* Dropping a dial while its name is being looked up is safe. */
    transport_disconnect(a.t, "b");
    transport_connect(a.t, "b", byname);
    transport_disconnect(a.t, "b");
    done(&a);
    done(&b);
}
END_TEST

START_TEST(gossip_and_data_arrive_in_order_from_the_sender)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    mk(&b, "prod", "b", 2);
    ck_assert_int_eq(send_data(a.t, "b", &(Partisan__Peer__Data)PARTISAN__PEER__DATA__INIT), -1);
    transport_connect(a.t, "b", b.addr);
    WAIT_UNTIL(a.connected == 1, WAIT_MS);
    ck_assert_int_eq(a.connected, 1);

    for (uint64_t i = 1; i <= 3; i++) {
        uint8_t seq[8];
        put_seq(seq, i);
        ck_assert_int_eq(transport_send_overlay(a.t, "b", seq, sizeof seq), 0);
    }
    for (int i = 0; i < 1000; i++) {
        char payload[32];
        int n = snprintf(payload, sizeof payload, "payload-%d", i);
        Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
        d.from_node = (char *)"a";
        d.to_node = (char *)"b";
        d.name = (char *)"svc";
        d.payload.data = (uint8_t *)payload;
        d.payload.len = (size_t)n;
        ck_assert_int_eq(send_data(a.t, "b", &d), 0);
    }
    WAIT_UNTIL(b.data_n == 1000 && b.gossip_n == 3, WAIT_MS);
    ck_assert_int_eq(b.data_n, 1000);
    ck_assert(!b.data_bad);
    ck_assert_str_eq(b.data_from, "a");
    ck_assert_int_eq(b.gossip_n, 3);
    ck_assert_str_eq(b.gossip_from, "a");
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(b.gossip_seq[i], (uint64_t)i + 1);
    ck_assert_uint_ge(st(&a)->frames_out, 1003);
    ck_assert_uint_ge(st(&b)->frames_in, 1003);
    ck_assert_int_eq(a.drained, 0);
    done(&a);
    done(&b);
}
END_TEST

START_TEST(connect_to_closed_port_fails_once)
{
    struct env a = {0};
    mk(&a, "prod", "a", 1);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)closed_port());
    transport_connect(a.t, "b", addr);
    ck_assert_int_eq(a.failed, 0);
    WAIT_UNTIL(a.failed >= 1, WAIT_MS);
    run_for(200);
    ck_assert_int_eq(a.failed, 1);
    ck_assert_int_eq(a.connected, 0);
    ck_assert_str_eq(a.fail_expect, "b");
    ck_assert_str_eq(a.fail_addr, addr);
    ck_assert_ptr_nonnull(strstr(a.fail_reason, "refused"));
    ck_assert_int_eq(transport_send_overlay(a.t, "b", (const uint8_t *)"x", 1), -1);
    done(&a);
}
END_TEST

START_TEST(bad_address_fails_from_the_loop)
{
    struct env a = {0};
    mk(&a, "prod", "a", 1);
    transport_connect(a.t, "", "no-port-here");
    ck_assert_int_eq(a.failed, 0);
    WAIT_UNTIL(a.failed >= 1, WAIT_MS);
    ck_assert_int_eq(a.failed, 1);
    ck_assert_ptr_nonnull(strstr(a.fail_reason, "no-port-here"));
    done(&a);
}
END_TEST

START_TEST(cluster_mismatch_is_refused_on_both_sides)
{
    struct env a = {0}, b = {0};
    mk(&a, "other", "a", 1);
    mk(&b, "prod", "b", 2);
    transport_connect(a.t, "", b.addr);
    WAIT_UNTIL(a.failed >= 1, WAIT_MS);
    ck_assert_int_eq(a.failed, 1);
    ck_assert_int_eq(a.connected, 0);
    ck_assert_ptr_nonnull(strstr(a.fail_reason, "cluster \"other\" is not ours (\"prod\")"));
    ck_assert_uint_ge(st(&a)->refused_out, 1);
    ck_assert_uint_ge(st(&b)->refused_in, 1);
    ck_assert_int_eq(b.gossip_n + b.data_n, 0);
    done(&a);
    done(&b);
}
END_TEST

START_TEST(dialler_with_acceptors_name_is_refused)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "b", 1);
    mk(&b, "prod", "b", 2);
    transport_connect(a.t, "", b.addr);
    WAIT_UNTIL(a.failed >= 1, WAIT_MS);
    ck_assert_int_eq(a.failed, 1);
    ck_assert_int_eq(a.connected, 0);
    ck_assert_ptr_nonnull(strstr(a.fail_reason, "own name"));
    ck_assert_uint_ge(st(&b)->refused_in, 1);
    done(&a);
    done(&b);
}
END_TEST

START_TEST(unexpected_node_is_refused)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    mk(&b, "prod", "b", 2);
    transport_connect(a.t, "c", b.addr);
    WAIT_UNTIL(a.failed >= 1, WAIT_MS);
    ck_assert_int_eq(a.failed, 1);
    ck_assert_int_eq(a.connected, 0);
    ck_assert_str_eq(a.fail_expect, "c");
    ck_assert_ptr_nonnull(strstr(a.fail_reason, "not \"c\""));
    ck_assert_uint_ge(st(&b)->refused_in, 1);
    done(&a);
    done(&b);
}
END_TEST

static void expect_closed(int fd)
{
    WAIT_UNTIL(raw_closed(fd), WAIT_MS);
    ck_assert(raw_closed(fd));
    close(fd);
}

START_TEST(bad_input_closes_that_connection_only)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    mk(&b, "prod", "b", 2);
    uint16_t port = transport_listen_port(b.t);
    uint8_t buf[256];

    /* Text where a length belongs reads as a huge length. */
    int fd = raw_connect(port);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_write(fd, http, strlen(http));
    expect_closed(fd);
    ck_assert_uint_eq(st(&b)->too_large, 1);

    /* A length announcing 2 GiB: closed before anything of that size. */
    fd = raw_connect(port);
    memset(buf, 0, 16);
    frame_put_u32(buf, 0x7fffffffu);
    raw_write(fd, buf, 16);
    expect_closed(fd);
    ck_assert_uint_eq(st(&b)->too_large, 2);

    /* A good Hello with one bit of its checksum flipped: closed (only a
     * reliable channel's established data connection drops such a frame
     * alone), and a fresh connection's Hello is welcomed. */
    fd = raw_connect(port);
    size_t n = hello_frame(buf, "prod", "x");
    buf[7] ^= 1;
    raw_write(fd, buf, n);
    expect_closed(fd);
    ck_assert_uint_eq(st(&b)->bad_checksum, 1);
    fd = raw_connect(port);
    buf[7] ^= 1;
    raw_write(fd, buf, n);
    Partisan__Peer__PeerFrame *wf = raw_read_frame(fd);
    ck_assert_ptr_nonnull(wf);
    ck_assert_int_eq(wf->body_case, PARTISAN__PEER__PEER_FRAME__BODY_WELCOME);
    partisan__peer__peer_frame__free_unpacked(wf, NULL);
    close(fd);

    /* A correct checksum over bytes that are no protobuf. */
    fd = raw_connect(port);
    uint8_t junk[16];
    memset(junk, 0xff, sizeof junk);
    frame_peer_header(buf, junk, sizeof junk);
    memcpy(buf + FRAME_PEER_HEADER, junk, sizeof junk);
    raw_write(fd, buf, FRAME_PEER_HEADER + sizeof junk);
    expect_closed(fd);
    ck_assert_uint_eq(st(&b)->bad_frame, 1);

    /* A well-formed frame that is not a Hello, first. */
    fd = raw_connect(port);
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    f.overlay.data = (uint8_t *)"x";
    f.overlay.len = 1;
    n = pack_frame(buf, &f);
    raw_write(fd, buf, n);
    expect_closed(fd);
    ck_assert_uint_eq(st(&b)->bad_frame, 2);
    ck_assert_int_eq(b.gossip_n, 0);

    /* A Hello twice: a protocol error after the handshake. */
    fd = raw_connect(port);
    n = hello_frame(buf, "prod", "x");
    raw_write(fd, buf, n);
    raw_write(fd, buf, n);
    expect_closed(fd);
    ck_assert_uint_eq(st(&b)->bad_frame, 3);

    /* And the listener still serves a good peer. */
    transport_connect(a.t, "b", b.addr);
    WAIT_UNTIL(a.connected == 1, WAIT_MS);
    ck_assert_int_eq(a.connected, 1);
    done(&a);
    done(&b);
}
END_TEST

/* A dialler may queue frames behind its Hello before the answer (our own
 * data connections do). A refused Hello must be answered with one Refuse,
 * and what follows it is neither refused again nor a protocol error. */
START_TEST(frames_behind_a_refused_hello_are_not_read)
{
    struct env b = {0};
    mk(&b, "prod", "b", 2);
    int fd = raw_connect(transport_listen_port(b.t));
    uint8_t buf[1024];
    size_t n = hello_frame(buf, "other", "x");
    n += hello_frame(buf + n, "other", "x");
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    f.overlay.data = (uint8_t *)"x";
    f.overlay.len = 1;
    n += pack_frame(buf + n, &f);
    raw_write(fd, buf, n);
    Partisan__Peer__PeerFrame *r = raw_read_frame(fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->body_case, PARTISAN__PEER__PEER_FRAME__BODY_REFUSE);
    ck_assert_int_eq(r->refuse->reason, PARTISAN__PEER__REFUSE__REASON__CLUSTER);
    partisan__peer__peer_frame__free_unpacked(r, NULL);
    run_for(100);
    ck_assert_uint_eq(st(&b)->refused_in, 1);
    ck_assert_uint_eq(st(&b)->bad_frame, 0);
    ck_assert_int_eq(b.gossip_n, 0);
    close(fd);
    done(&b);
}
END_TEST

START_TEST(many_frames_in_one_write_all_arrive)
{
    struct env b = {0};
    mk(&b, "prod", "b", 2);
    int fd = raw_connect(transport_listen_port(b.t));
    enum { N = 3000 };
    static uint8_t buf[64 + N * 16];
    size_t n = hello_frame(buf, "prod", "x");
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    f.overlay.data = (uint8_t *)"x";
    f.overlay.len = 1;
    for (int i = 0; i < N; i++)                 /* ~10 bytes each: hundreds per read */
        n += pack_frame(buf + n, &f);
    raw_write(fd, buf, n);
    WAIT_UNTIL(b.gossip_n == N, WAIT_MS);
    ck_assert_int_eq(b.gossip_n, N);
    ck_assert_str_eq(b.gossip_from, "x");
    ck_assert(!raw_closed(fd));
    close(fd);
    done(&b);
}
END_TEST

START_TEST(silent_inbound_connection_is_closed_after_the_timeout)
{
    struct env b = {0};
    mk_full(&b, "prod", "b", 2, 300, 1 << 20);
    uint64_t start = mono_ms();
    int fd = raw_connect(transport_listen_port(b.t));
    expect_closed(fd);
    uint64_t took = mono_ms() - start;
    ck_assert_uint_ge(took, 250);
    ck_assert_uint_le(took, 300 + 1500);
    ck_assert_uint_eq(st(&b)->handshake_timeouts, 1);
    done(&b);
}
END_TEST

START_TEST(peer_that_never_answers_times_out)
{
    struct env a = {0};
    mk_full(&a, "prod", "a", 1, 300, 1 << 20);
    uint16_t port;
    int lfd = raw_listen(&port, 0);         /* the kernel accepts; nobody answers */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    uint64_t start = mono_ms();
    transport_connect(a.t, "", addr);
    WAIT_UNTIL(a.failed >= 1, WAIT_MS);
    uint64_t took = mono_ms() - start;
    ck_assert_int_eq(a.failed, 1);
    ck_assert_int_eq(a.connected, 0);
    ck_assert_ptr_nonnull(strstr(a.fail_reason, "300 ms"));
    ck_assert_uint_ge(took, 250);
    ck_assert_uint_le(took, 300 + 1500);
    close(lfd);
    done(&a);
}
END_TEST

START_TEST(peer_going_away_disconnects_once)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    mk(&b, "prod", "b", 2);
    transport_connect(a.t, "b", b.addr);
    WAIT_UNTIL(a.connected == 1 && st(&b)->accepted == 1, WAIT_MS);
    ck_assert_int_eq(a.connected, 1);
    done(&b);
    WAIT_UNTIL(a.disconnected >= 1, WAIT_MS);
    run_for(200);
    ck_assert_int_eq(a.disconnected, 1);
    ck_assert_str_eq(a.disc_node, "b");
    ck_assert_int_eq(a.failed, 0);
    ck_assert_int_eq(send_data(a.t, "b", &(Partisan__Peer__Data)PARTISAN__PEER__DATA__INIT), -1);
    done(&a);
}
END_TEST

START_TEST(asked_disconnect_is_silent_and_reconnect_works)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    mk(&b, "prod", "b", 2);
    transport_connect(a.t, "b", b.addr);
    transport_connect(a.t, "b", b.addr);    /* already being dialled: ignored */
    transport_connect(a.t, "", b.addr);     /* same address: ignored */
    WAIT_UNTIL(a.connected == 1, WAIT_MS);
    run_for(100);
    ck_assert_int_eq(a.connected, 1);
    ck_assert_uint_eq(st(&b)->accepted, 1); /* one dial, and only its control connection */

    transport_disconnect(a.t, "b");
    ck_assert_int_eq(transport_send_overlay(a.t, "b", (const uint8_t *)"x", 1), -1);
    run_for(200);
    ck_assert_int_eq(a.disconnected, 0);
    ck_assert_int_eq(a.failed, 0);

    /* A disconnect during the dial cancels it without a callback. */
    transport_connect(a.t, "b", b.addr);
    transport_disconnect(a.t, "b");
    run_for(200);
    ck_assert_int_eq(a.connected, 1);
    ck_assert_int_eq(a.failed, 0);

    transport_connect(a.t, "b", b.addr);
    WAIT_UNTIL(a.connected == 2, WAIT_MS);
    ck_assert_int_eq(a.connected, 2);
    done(&a);
    done(&b);
}
END_TEST

START_TEST(restarted_peer_replaces_its_old_connections)
{
    struct env a1 = {0}, a2 = {0}, b = {0};
    mk(&a1, "prod", "a", 1);
    mk(&a2, "prod", "a", 2);
    limits = (struct transport_config){ .silence_ms = 200 };
    mk(&b, "prod", "b", 3);
    limits = (struct transport_config){ 0 };
    transport_connect(a1.t, "b", b.addr);
    WAIT_UNTIL(a1.connected == 1, WAIT_MS);
    ck_assert_int_eq(a1.connected, 1);
    run_for(300);                            /* a1 went silent, as a daemon that died unseen */
    transport_connect(a2.t, "b", b.addr);   /* "a" again, as after a restart */
    WAIT_UNTIL(a2.connected == 1 && a1.disconnected == 1, WAIT_MS);
    ck_assert_int_eq(a2.connected, 1);
    ck_assert_int_eq(a1.disconnected, 1);
    done(&a1);
    done(&a2);
    done(&b);
}
END_TEST

START_TEST(callbacks_may_call_back_into_the_transport)
{
    struct env a = {0}, b = {0};
    mk(&a, "prod", "a", 1);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)closed_port());
    a.redial_budget = 2;
    transport_connect(a.t, "x", addr);
    WAIT_UNTIL(a.failed >= 3, WAIT_MS);
    run_for(100);
    ck_assert_int_eq(a.failed, 3);

    mk(&b, "prod", "b", 2);
    char baddr[64];
    snprintf(baddr, sizeof baddr, "%s", b.addr);
    a.redial_on_disconnect = baddr;
    transport_connect(a.t, "b", b.addr);
    WAIT_UNTIL(a.connected == 1, WAIT_MS);
    ck_assert_int_eq(a.connected, 1);
    done(&b);                               /* now baddr refuses connections */
    WAIT_UNTIL(a.failed >= 4, WAIT_MS);
    ck_assert_int_eq(a.disconnected, 1);
    ck_assert_int_eq(a.failed, 4);
    ck_assert_str_eq(a.fail_expect, "b");
    done(&a);
}
END_TEST

START_TEST(full_data_queue_refuses_then_drains)
{
    struct env a = {0};
    const uint64_t max_queue = 64 * 1024;
    mk_full(&a, "prod", "a", 1, 2000, max_queue);
    uint16_t port;
    int lfd = raw_listen(&port, 4096);      /* small windows fill fast */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    transport_connect(a.t, "raw", addr);

    /* Play the acceptor by hand: the control connection comes first; the
     * data connection only once there is a message for it. */
    int ctrl = raw_accept(lfd), data = -1;
    Partisan__Peer__PeerFrame *hf = raw_read_frame(ctrl);
    ck_assert_ptr_nonnull(hf);
    ck_assert_int_eq(hf->body_case, PARTISAN__PEER__PEER_FRAME__BODY_HELLO);
    ck_assert_str_eq(hf->hello->cluster, "prod");
    ck_assert_str_eq(hf->hello->node, "a");
    ck_assert_str_eq(hf->hello->expect_node, "raw");
    ck_assert_str_eq(hf->hello->address, a.addr);
    ck_assert_str_eq(hf->hello->channel, "control");
    partisan__peer__peer_frame__free_unpacked(hf, NULL);
    uint8_t buf[256];
    Partisan__Peer__Welcome w = PARTISAN__PEER__WELCOME__INIT;
    w.node = (char *)"raw";
    w.incarnation = 7;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_WELCOME;
    f.welcome = &w;
    size_t n = pack_frame(buf, &f);
    raw_write(ctrl, buf, n);
    WAIT_UNTIL(a.connected == 1, WAIT_MS);
    ck_assert_int_eq(a.connected, 1);
    ck_assert_str_eq(a.conn_node, "raw");
    ck_assert_uint_eq(a.conn_inc, 7);

    static uint8_t payload[4096];
    Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
    d.to_node = (char *)"raw";
    d.name = (char *)"svc";
    d.payload.data = payload;
    d.payload.len = sizeof payload;
    ck_assert_int_eq(send_data(a.t, "raw", &d), 0);
    data = raw_accept(lfd);
    hf = raw_read_frame(data);
    ck_assert_ptr_nonnull(hf);
    ck_assert_int_eq(hf->body_case, PARTISAN__PEER__PEER_FRAME__BODY_HELLO);
    ck_assert_str_eq(hf->hello->channel, "default");
    ck_assert_uint_eq(hf->hello->conn_index, 0);
    partisan__peer__peer_frame__free_unpacked(hf, NULL);
    raw_write(data, buf, n);

    /* Fill until the queue stays full: the kernel buffers are full too. */
    bool full = false, congested = false;
    uint64_t dl = mono_ms() + 10000;
    while (!full && mono_ms() < dl) {
        int rc;
        while ((rc = send_data(a.t, "raw", &d)) == 0)
            congested = congested || last_congested;
        ck_assert_int_eq(rc, -2);
        run_for(30);
        full = send_data(a.t, "raw", &d) == -2;
    }
    ck_assert(full);
    ck_assert(congested);
    ck_assert_uint_ge(st(&a)->queue_overflow, 1);
    int drained = a.drained;
    run_for(200);
    ck_assert_int_eq(a.drained, drained);
    ck_assert_int_eq(send_data(a.t, "raw", &d), -2);

    /* The peer starts reading: the queue drains and says so. */
    static uint8_t sink[65536];
    dl = mono_ms() + WAIT_MS;
    while (a.drained == drained && mono_ms() < dl) {
        while (recv(data, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
        event_base_loop(base, EVLOOP_ONCE);
    }
    ck_assert_int_eq(a.drained, drained + 1);
    ck_assert_int_eq(send_data(a.t, "raw", &d), 0);
    ck_assert(!last_congested);
    ck_assert_int_eq(a.disconnected, 0);

    done(&a);
    close(ctrl);
    close(data);
    close(lfd);
}
END_TEST

/* The sender of a Data frame is the node its connection's handshake named;
 * a frame claiming another is dropped and counted, never delivered as that
 * node's. */
START_TEST(data_sender_is_the_connections_node)
{
    struct env b = {0};
    mk(&b, "prod", "b", 2);
    int fd = raw_connect(transport_listen_port(b.t));
    uint8_t buf[1024];
    raw_write(fd, buf, hello_frame(buf, "prod", "a"));
    Partisan__Peer__PeerFrame *w = raw_read_frame(fd);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->body_case, PARTISAN__PEER__PEER_FRAME__BODY_WELCOME);
    partisan__peer__peer_frame__free_unpacked(w, NULL);
    const char *claims[] = { "mallory", "a", "" };
    for (int i = 0; i < 3; i++) {
        char payload[32];
        int n = snprintf(payload, sizeof payload, "payload-%d", b.data_n);
        Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
        d.from_node = (char *)claims[i];
        d.to_node = (char *)"b";
        d.name = (char *)"svc";
        d.payload.data = (uint8_t *)payload;
        d.payload.len = (size_t)n;
        Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
        f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_DATA;
        f.data = &d;
        raw_write(fd, buf, pack_frame(buf, &f));
        run_for(100);
        ck_assert_int_eq(b.data_n, i == 0 ? 0 : i);
    }
    ck_assert_uint_eq(st(&b)->spoofed, 1);
    ck_assert(!b.data_bad);
    ck_assert_str_eq(b.data_from, "a");
    close(fd);
    done(&b);
}
END_TEST

/* Connection indexes beyond any channel's parallelism, or a second control
 * connection, are refused at the handshake; a data connection's messages
 * carry its channel; Credit frames reach the callback. */
START_TEST(hello_indexes_are_bounded_and_channels_carried)
{
    struct env b = {0};
    mk(&b, "prod", "b", 2);
    uint8_t buf[1024];
    const struct { const char *channel; uint32_t index; bool ok; } cases[] = {
        { "control", 1, false }, { "bulk", 64, false }, { "bulk", 63, true }, { "control", 0, true },
    };
    for (int i = 0; i < 4; i++) {
        int fd = raw_connect(transport_listen_port(b.t));
        raw_write(fd, buf, hello_on(buf, "prod", "a", cases[i].channel, cases[i].index));
        Partisan__Peer__PeerFrame *f = raw_read_frame(fd);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(f->body_case, cases[i].ok ? PARTISAN__PEER__PEER_FRAME__BODY_WELCOME
                                                   : PARTISAN__PEER__PEER_FRAME__BODY_REFUSE);
        partisan__peer__peer_frame__free_unpacked(f, NULL);
        if (cases[i].ok && strcmp(cases[i].channel, "bulk") == 0) {
            Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
            d.to_node = (char *)"b";
            d.name = (char *)"svc";
            d.payload.data = (uint8_t *)"payload-0";
            d.payload.len = 9;
            d.channel = (char *)"claims-another";
            Partisan__Peer__PeerFrame df = PARTISAN__PEER__PEER_FRAME__INIT;
            df.body_case = PARTISAN__PEER__PEER_FRAME__BODY_DATA;
            df.data = &d;
            raw_write(fd, buf, pack_frame(buf, &df));
            WAIT_UNTIL(b.data_n == 1, WAIT_MS);
            ck_assert_int_eq(b.data_n, 1);
            ck_assert_str_eq(b.data_channel, "bulk");
        }
        if (cases[i].ok && strcmp(cases[i].channel, "control") == 0) {
            Partisan__Peer__CreditGrant g = PARTISAN__PEER__CREDIT_GRANT__INIT;
            g.name = (char *)"svc";
            g.bytes = UINT64_MAX;
            Partisan__Peer__CreditGrant *gp = &g;
            Partisan__Peer__Credit cr = PARTISAN__PEER__CREDIT__INIT;
            cr.n_grants = 1;
            cr.grants = &gp;
            Partisan__Peer__PeerFrame cf = PARTISAN__PEER__PEER_FRAME__INIT;
            cf.body_case = PARTISAN__PEER__PEER_FRAME__BODY_CREDIT;
            cf.credit = &cr;
            raw_write(fd, buf, pack_frame(buf, &cf));
            WAIT_UNTIL(b.credit_n == 1, WAIT_MS);
            ck_assert_int_eq(b.credit_n, 1);
            ck_assert_uint_eq(b.credit_bytes, UINT64_MAX);
        }
        close(fd);
    }
    ck_assert_uint_eq(st(&b)->refused_in, 2);
    done(&b);
}
END_TEST

/* Connections mid-handshake are capped, from one address and in all: one
 * more is closed at once and counted; a completed handshake frees its
 * slot. */
START_TEST(connections_mid_handshake_are_capped)
{
    struct env b = {0};
    limits = (struct transport_config){ .max_pending_connections = 3, .max_pending_per_address = 2 };
    mk(&b, "prod", "b", 2);
    limits = (struct transport_config){ 0 };
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = raw_connect(transport_listen_port(b.t));
        run_for(50);
    }
    run_for(100);
    ck_assert(!raw_closed(fds[0]));
    ck_assert(!raw_closed(fds[1]));
    ck_assert(raw_closed(fds[2]));
    ck_assert(raw_closed(fds[3]));
    ck_assert_uint_eq(st(&b)->pending_refused, 2);
    ck_assert_uint_eq(transport_pending_connections(b.t), 2);
    uint8_t buf[1024];
    raw_write(fds[0], buf, hello_frame(buf, "prod", "a"));
    Partisan__Peer__PeerFrame *w = raw_read_frame(fds[0]);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->body_case, PARTISAN__PEER__PEER_FRAME__BODY_WELCOME);
    partisan__peer__peer_frame__free_unpacked(w, NULL);
    ck_assert_uint_eq(transport_pending_connections(b.t), 1);
    int again = raw_connect(transport_listen_port(b.t));
    run_for(100);
    ck_assert(!raw_closed(again));
    ck_assert_uint_eq(st(&b)->pending_refused, 2);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    close(again);
    done(&b);
}
END_TEST

/* Before its handshake a connection may announce no frame above 16 KiB:
 * it is closed before anything of that size is buffered. */
START_TEST(large_frame_before_the_hello_closes)
{
    struct env b = {0};
    mk(&b, "prod", "b", 2);
    int fd = raw_connect(transport_listen_port(b.t));
    uint8_t hdr[FRAME_PEER_HEADER] = { 0, 1, 0, 0 };    /* 64 KiB */
    raw_write(fd, hdr, sizeof hdr);
    expect_closed(fd);
    ck_assert_uint_eq(st(&b)->too_large, 1);
    done(&b);
}
END_TEST

/* An accepted connection that brings nothing for idle_timeout_ms is closed
 * and counted; one that keeps sending is not. */
START_TEST(idle_accepted_connection_is_closed)
{
    struct env b = {0};
    limits = (struct transport_config){ .idle_timeout_ms = 600 };
    mk(&b, "prod", "b", 2);
    limits = (struct transport_config){ 0 };
    uint8_t buf[1024];
    int quiet = raw_connect(transport_listen_port(b.t)), busy = raw_connect(transport_listen_port(b.t));
    for (int i = 0; i < 2; i++) {
        int fd = i ? busy : quiet;
        raw_write(fd, buf, hello_on(buf, "prod", i ? "busy" : "quiet", "control", 0));
        Partisan__Peer__PeerFrame *w = raw_read_frame(fd);
        ck_assert_ptr_nonnull(w);
        partisan__peer__peer_frame__free_unpacked(w, NULL);
    }
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    f.overlay.data = (uint8_t *)"x";
    f.overlay.len = 1;
    size_t n = pack_frame(buf, &f);
    for (int i = 0; i < 12; i++) {
        raw_write(busy, buf, n);
        run_for(100);
    }
    ck_assert(raw_closed(quiet));
    ck_assert(!raw_closed(busy));
    ck_assert_uint_eq(st(&b)->idle_closed, 1);
    close(quiet);
    close(busy);
    done(&b);
}
END_TEST

/* Two live daemons with one name: the second is refused with
 * DUPLICATE_NAME while the first keeps talking, and neither replaces the
 * other's connection; the same daemon reconnecting (same incarnation) is
 * let in. */
START_TEST(second_live_daemon_with_one_name_is_refused)
{
    struct env b = {0};
    limits = (struct transport_config){ .silence_ms = 1000 };
    mk(&b, "prod", "b", 2);
    limits = (struct transport_config){ 0 };
    uint8_t buf[1024], ping[64];
    Partisan__Peer__PeerFrame pf = PARTISAN__PEER__PEER_FRAME__INIT;
    pf.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    pf.overlay.data = (uint8_t *)"x";
    pf.overlay.len = 1;
    size_t pn = pack_frame(ping, &pf);
    Partisan__Peer__Hello h = PARTISAN__PEER__HELLO__INIT;
    h.protocol_version = TRANSPORT_PROTOCOL_VERSION;
    h.cluster = (char *)"prod";
    h.node = (char *)"a";
    h.channel = (char *)"control";
    Partisan__Peer__PeerFrame hf = PARTISAN__PEER__PEER_FRAME__INIT;
    hf.body_case = PARTISAN__PEER__PEER_FRAME__BODY_HELLO;
    hf.hello = &h;
    int fds[4];
    const uint64_t incs[4] = { 1, 2, 3, 1 };
    const int want[4] = { PARTISAN__PEER__PEER_FRAME__BODY_WELCOME, PARTISAN__PEER__PEER_FRAME__BODY_REFUSE,
                          PARTISAN__PEER__PEER_FRAME__BODY_REFUSE, PARTISAN__PEER__PEER_FRAME__BODY_WELCOME };
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            raw_write(fds[0], ping, pn);   /* the first daemon stays alive */
        fds[i] = raw_connect(transport_listen_port(b.t));
        h.incarnation = incs[i];
        raw_write(fds[i], buf, pack_frame(buf, &hf));
        Partisan__Peer__PeerFrame *f = raw_read_frame(fds[i]);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(f->body_case, want[i]);
        if (f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_REFUSE)
            ck_assert_int_eq(f->refuse->reason, PARTISAN__PEER__REFUSE__REASON__DUPLICATE_NAME);
        partisan__peer__peer_frame__free_unpacked(f, NULL);
        run_for(50);
    }
    ck_assert_uint_eq(st(&b)->duplicate_names, 2);
    ck_assert(raw_closed(fds[0]));      /* replaced by its own reconnection (fds[3]) */
    ck_assert(!raw_closed(fds[3]));
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    done(&b);
}
END_TEST

START_TEST(listen_on_a_used_port_fails)
{
    struct env a = {0};
    mk(&a, "prod", "a", 1);
    /* SO_REUSEADDR does not let a second listener take a listening port. */
    struct transport_config cfg = {
        .cluster = "prod", .node = "b", .advertise = "", .listen_host = "127.0.0.1",
        .listen_port = transport_listen_port(a.t), .connect_timeout_ms = 1000,
        .max_frame_bytes = 1 << 20, .max_queue_bytes = 1 << 20,
    };
    struct transport_callbacks cb = { .ctx = NULL };
    ck_assert_ptr_null(transport_new(base, &cfg, &cb));
    done(&a);
}
END_TEST

/* ----------------------------------------------- acks and faults -- */

/* Two channels, "default" and "bulk", for the tests below. */
static const struct transport_channel two_channels[] = { { "default", 1, false, false }, { "bulk", 1, false, true } };

static void mk_two(struct env *e, const char *name, uint64_t inc, uint32_t timeout_ms)
{
    limits.channels = two_channels;
    limits.n_channels = 2;
    mk_full(e, "prod", name, inc, timeout_ms, 1 << 20);
    e->record = true;
}

/* Message i ("payload-i") from a to b on channel ch. */
static int send_num(struct env *a, unsigned ch, int i)
{
    char payload[32];
    int n = snprintf(payload, sizeof payload, "payload-%d", i);
    Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
    d.from_node = (char *)"a";
    d.to_node = (char *)"b";
    d.name = (char *)"svc";
    d.channel = (char *)(ch ? "bulk" : "default");
    d.payload.data = (uint8_t *)payload;
    d.payload.len = (size_t)n;
    const void *lane;
    return transport_send_data(a->t, "b", ch, NULL, 0, &d, &lane);
}

/* a connected to b, and b's default lane from a up (one message across). */
static void connect_a_to_b(struct env *a, struct env *b)
{
    transport_connect(a->t, "b", b->addr);
    WAIT_UNTIL(a->connected == 1, WAIT_MS);
    ck_assert_int_eq(a->connected, 1);
    ck_assert_int_eq(send_num(a, 0, 0), 0);
    WAIT_UNTIL(b->chan_n[0] == 1, WAIT_MS);
    ck_assert_int_eq(b->chan_n[0], 1);
}

static struct faults *faults_with(const char *self, const char *rule)
{
    struct faults *f = faults_new(self);
    ck_assert_ptr_nonnull(f);
    char out[256];
    ck_assert_msg(faults_command_line(f, rule, out, sizeof out) == 0, "%s: %s", rule, out);
    return f;
}

/* The reliable fields travel through transport_send_data and the fast
 * decoder; an ack goes back on the acker's own data lane and reaches
 * on_ack with the acceptor's channel; a spoofed one is dropped. */
START_TEST(reliable_fields_and_acks_cross)
{
    struct env a = {0}, b = {0};
    mk_two(&a, "a", 1, 2000);
    mk_two(&b, "b", 2, 2000);
    Partisan__Peer__DeliveryAck ack = PARTISAN__PEER__DELIVERY_ACK__INIT;
    ck_assert_int_eq(transport_send_ack(b.t, "a", 0, &ack), -1);   /* not connected */
    transport_connect(a.t, "b", b.addr);
    transport_connect(b.t, "a", a.addr);
    WAIT_UNTIL(a.connected == 1 && b.connected == 1, WAIT_MS);
    ck_assert_int_eq(b.connected, 1);
    ck_assert_int_eq(transport_send_ack(b.t, "a", 2, &ack), -1);   /* no such channel */

    static const uint8_t stamp[] = { 0x00, 0x07, 0x00, 0xff };
    Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
    d.from_node = (char *)"a";
    d.to_node = (char *)"b";
    d.name = (char *)"svc";
    d.payload.data = (uint8_t *)"payload-0";
    d.payload.len = 9;
    d.hops = 3;
    d.origin_epoch = 1001;
    d.dest_epoch = UINT64_MAX;
    d.seq = 42;
    d.acked_through = 41;
    d.causal.data = (uint8_t *)stamp;
    d.causal.len = sizeof stamp;
    const void *lane;
    ck_assert_int_eq(transport_send_data(a.t, "b", 1, NULL, 0, &d, &lane), 0);
    WAIT_UNTIL(b.chan_n[1] == 1, WAIT_MS);
    ck_assert_int_eq(b.chan_n[1], 1);
    ck_assert(!b.corrupted);
    ck_assert_uint_eq(b.last.hops, 3);
    ck_assert_uint_eq(b.last.origin_epoch, 1001);
    ck_assert_uint_eq(b.last.dest_epoch, UINT64_MAX);
    ck_assert_uint_eq(b.last.seq, 42);
    ck_assert_uint_eq(b.last.acked_through, 41);
    ck_assert_uint_eq(b.last_causal_len, sizeof stamp);
    ck_assert_mem_eq(b.last_causal, stamp, sizeof stamp);

    Partisan__Peer__DeliveryException ex = PARTISAN__PEER__DELIVERY_EXCEPTION__INIT;
    ex.seq = 40;
    ex.verdict = 1;
    Partisan__Peer__DeliveryException *exs[1] = { &ex };
    ack.origin = (char *)"a";
    ack.from_node = (char *)"b";
    ack.channel = (char *)"bulk";
    ack.dest_epoch = 2;
    ack.cum = 42;
    ack.sack = 0x8000000000000001ull;
    ack.n_exceptions = 1;
    ack.exceptions = exs;
    ck_assert_int_eq(transport_send_ack(b.t, "a", 1, &ack), 0);
    WAIT_UNTIL(a.ack_n == 1, WAIT_MS);
    ck_assert_int_eq(a.ack_n, 1);
    ck_assert_str_eq(a.ack_from, "b");
    ck_assert_str_eq(a.ack_channel, "bulk");
    ck_assert_uint_eq(a.ack_cum, 42);
    ck_assert_uint_eq(a.ack_sack, 0x8000000000000001ull);
    ck_assert_uint_eq(a.ack_dest_epoch, 2);
    ck_assert_uint_eq(a.ack_exceptions, 1);
    ck_assert_int_eq(b.ack_n, 0);       /* acks flow on the acker's lanes only */

    ack.from_node = (char *)"mallory";
    ck_assert_int_eq(transport_send_ack(b.t, "a", 0, &ack), 0);
    ack.from_node = (char *)"";
    ck_assert_int_eq(transport_send_ack(b.t, "a", 0, &ack), 0);
    WAIT_UNTIL(a.ack_n == 2, WAIT_MS);
    ck_assert_int_eq(a.ack_n, 2);
    ck_assert_str_eq(a.ack_channel, "default");
    ck_assert_uint_eq(st(&a)->spoofed, 1);
    done(&a);
    done(&b);
}
END_TEST

/* An ack is data-lane traffic: on an accepted control connection it is
 * dropped and counted, and the connection stays. */
START_TEST(ack_on_a_control_connection_is_dropped)
{
    struct env b = {0};
    mk(&b, "prod", "b", 2);
    int fd = raw_connect(transport_listen_port(b.t));
    uint8_t buf[1024];
    raw_write(fd, buf, hello_frame(buf, "prod", "a"));
    Partisan__Peer__PeerFrame *w = raw_read_frame(fd);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->body_case, PARTISAN__PEER__PEER_FRAME__BODY_WELCOME);
    partisan__peer__peer_frame__free_unpacked(w, NULL);
    Partisan__Peer__DeliveryAck ack = PARTISAN__PEER__DELIVERY_ACK__INIT;
    ack.cum = 1;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_ACK;
    f.ack = &ack;
    raw_write(fd, buf, pack_frame(buf, &f));
    WAIT_UNTIL(st(&b)->bad_frame == 1, WAIT_MS);
    ck_assert_uint_eq(st(&b)->bad_frame, 1);
    ck_assert_int_eq(b.ack_n, 0);
    Partisan__Peer__PeerFrame pf = PARTISAN__PEER__PEER_FRAME__INIT;
    pf.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    pf.overlay.data = (uint8_t *)"x";
    pf.overlay.len = 1;
    raw_write(fd, buf, pack_frame(buf, &pf));
    WAIT_UNTIL(b.gossip_n == 1, WAIT_MS);
    ck_assert_int_eq(b.gossip_n, 1);
    ck_assert(!raw_closed(fd));
    close(fd);
    done(&b);
}
END_TEST

START_TEST(fault_drop_cuts_one_channel_only)
{
    struct env a = {0}, b = {0};
    mk_two(&a, "a", 1, 2000);
    mk_two(&b, "b", 2, 2000);
    connect_a_to_b(&a, &b);
    struct faults *f = faults_with("a", "drop --channel bulk 1");
    transport_set_faults(a.t, f);
    for (int i = 1; i <= 50; i++) {
        ck_assert_int_eq(send_num(&a, 1, i), 0);
        ck_assert_int_eq(send_num(&a, 0, i), 0);
    }
    WAIT_UNTIL(b.chan_n[0] == 51, WAIT_MS);
    run_for(200);
    ck_assert_int_eq(b.chan_n[0], 51);
    ck_assert_int_eq(b.chan_n[1], 0);
    /* The 50, and the Hello of the bulk lane's dial: that lane never
     * comes up while the rule holds. */
    ck_assert_uint_ge(faults_total(f, FAULT_DROP), 51);
    ck_assert(!b.corrupted);
    for (int i = 0; i < 51; i++)
        ck_assert_int_eq(b.got[i], i);
    transport_set_faults(a.t, NULL);
    ck_assert_int_eq(send_num(&a, 1, 99), 0);
    WAIT_UNTIL(b.chan_n[1] == 1, WAIT_MS);
    ck_assert_int_eq(b.chan_n[1], 1);
    done(&a);
    done(&b);
    faults_free(f);
}
END_TEST

struct row_want {
    const char *peer, *channel;
    uint64_t reconnects;
};

static void find_row(void *ctx, const struct transport_channel_stats *row)
{
    struct row_want *w = ctx;
    if (strcmp(row->peer, w->peer) == 0 && strcmp(row->channel, w->channel) == 0)
        w->reconnects = row->reconnects;
}

/* Every frame of the reliable channel corrupted: each arrives and fails
 * its checksum, none reaches on_data, and the connection carries on once
 * the rule is gone. On a plain channel the connection is closed instead
 * (the sender must learn of the loss), and redialled. */
START_TEST(fault_corrupt_is_caught_by_the_checksum)
{
    struct env a = {0}, b = {0};
    mk_two(&a, "a", 1, 2000);
    mk_two(&b, "b", 2, 2000);
    connect_a_to_b(&a, &b);
    ck_assert_int_eq(send_num(&a, 1, 1), 0);
    WAIT_UNTIL(b.chan_n[1] == 1, WAIT_MS);     /* bulk's connection is up */
    uint64_t accepted = st(&b)->accepted;
    struct faults *f = faults_with("a", "corrupt --channel bulk 1 --bits 3");
    transport_set_faults(a.t, f);
    for (int i = 1; i <= 200; i++)
        ck_assert_int_eq(send_num(&a, 1, i), 0);
    WAIT_UNTIL(st(&b)->bad_checksum == 200, WAIT_MS);
    ck_assert_uint_eq(st(&b)->bad_checksum, 200);
    ck_assert_uint_eq(faults_total(f, FAULT_CORRUPT), 200);
    ck_assert_int_eq(b.chan_n[1], 1);
    ck_assert(!b.corrupted);
    faults_clear(f);
    for (int i = 1; i <= 20; i++)
        ck_assert_int_eq(send_num(&a, 1, i), 0);
    WAIT_UNTIL(b.chan_n[1] == 21, WAIT_MS);
    ck_assert_int_eq(b.chan_n[1], 21);
    ck_assert(!b.corrupted);
    ck_assert_uint_eq(st(&b)->accepted, accepted);     /* the same connections throughout */
    ck_assert_int_eq(a.disconnected, 0);
    ck_assert_uint_eq(st(&b)->bad_frame, 0);

    /* The plain channel: its connection closes at the first bad frame. */
    int n0 = b.chan_n[0];
    ck_assert_int_eq(send_num(&a, 0, 1), 0);
    WAIT_UNTIL(b.chan_n[0] == n0 + 1, WAIT_MS);
    ck_assert_int_eq(b.chan_n[0], n0 + 1);
    char out[256];
    ck_assert_int_eq(faults_command_line(f, "corrupt --channel default 1", out, sizeof out), 0);
    ck_assert_int_eq(send_num(&a, 0, 2), 0);
    WAIT_UNTIL(st(&b)->bad_checksum == 201, WAIT_MS);
    faults_clear(f);
    /* Let a see the close, so that the next message needs a new connection. */
    run_for(300);
    ck_assert_int_eq(send_num(&a, 0, 3), 0);
    WAIT_UNTIL(b.chan_n[0] == n0 + 2, 4 * WAIT_MS);
    ck_assert_int_eq(b.chan_n[0], n0 + 2);             /* the plain channel works again; 2 was lost */
    struct row_want w = { "b", "default", 0 };
    transport_foreach_channel_stats(a.t, find_row, &w);
    ck_assert_uint_ge(w.reconnects, 1);                /* its connection was closed and redialled */
    ck_assert_int_eq(a.disconnected, 0);               /* the control connection stayed */
    done(&a);
    done(&b);
    faults_free(f);
}
END_TEST

START_TEST(fault_delay_holds_frames_in_order)
{
    struct env a = {0}, b = {0};
    mk_two(&a, "a", 1, 2000);
    mk_two(&b, "b", 2, 2000);
    connect_a_to_b(&a, &b);
    struct faults *f = faults_with("a", "delay --channel default 100ms");
    transport_set_faults(a.t, f);
    uint64_t sent_ms[20];
    for (int i = 1; i <= 20; i++) {
        sent_ms[i - 1] = mono_ms();
        ck_assert_int_eq(send_num(&a, 0, i), 0);
        if (i == 10)
            run_for(30);
    }
    /* Another channel is not held. */
    uint64_t bulk_ms = mono_ms();
    ck_assert_int_eq(send_num(&a, 1, 0), 0);
    WAIT_UNTIL(b.chan_n[1] == 1, WAIT_MS);
    ck_assert_int_eq(b.chan_n[1], 1);
    ck_assert_uint_lt(mono_ms() - bulk_ms, 100);
    WAIT_UNTIL(b.chan_n[0] == 21, WAIT_MS);
    ck_assert_int_eq(b.chan_n[0], 21);
    for (int i = 1; i <= 20; i++) {
        ck_assert_int_eq(b.got[i], i);
        ck_assert_uint_ge(b.got_ms[i] - sent_ms[i - 1], 100);
    }
    ck_assert_uint_eq(faults_total(f, FAULT_DELAY), 20);
    /* Frames still held when their peer goes are dropped without harm. */
    for (int i = 21; i <= 30; i++)
        ck_assert_int_eq(send_num(&a, 0, i), 0);
    transport_disconnect(a.t, "b");
    run_for(200);
    ck_assert_int_eq(b.chan_n[0], 21);
    done(&a);
    done(&b);
    faults_free(f);
}
END_TEST

START_TEST(fault_duplicate_delivers_twice)
{
    struct env a = {0}, b = {0};
    mk_two(&a, "a", 1, 2000);
    mk_two(&b, "b", 2, 2000);
    connect_a_to_b(&a, &b);
    struct faults *f = faults_with("a", "duplicate 1");
    transport_set_faults(a.t, f);
    for (int i = 1; i <= 20; i++)
        ck_assert_int_eq(send_num(&a, 0, i), 0);
    WAIT_UNTIL(b.chan_n[0] == 41, WAIT_MS);
    run_for(100);
    ck_assert_int_eq(b.chan_n[0], 41);
    for (int i = 1; i <= 20; i++) {
        ck_assert_int_eq(b.got[2 * i - 1], i);
        ck_assert_int_eq(b.got[2 * i], i);
    }
    ck_assert_uint_eq(faults_total(f, FAULT_DUPLICATE), 20);
    /* Control frames too; a handshake frame is not (it would close its
     * connection): the bulk lane's dial comes up. */
    uint8_t seq[8];
    put_seq(seq, 7);
    ck_assert_int_eq(transport_send_overlay(a.t, "b", seq, sizeof seq), 0);
    WAIT_UNTIL(b.gossip_n == 2, WAIT_MS);
    ck_assert_int_eq(b.gossip_n, 2);
    ck_assert_int_eq(send_num(&a, 1, 1), 0);
    WAIT_UNTIL(b.chan_n[1] == 2, WAIT_MS);
    ck_assert_int_eq(b.chan_n[1], 2);
    ck_assert_uint_eq(st(&b)->bad_frame, 0);
    done(&a);
    done(&b);
    faults_free(f);
}
END_TEST

/* A partition rule on one side alone cuts both directions: a's dial to b
 * (a seed: judged by the Welcome's name) and b's to a (judged by its
 * Hello) both time out. Cleared, the redials succeed. */
START_TEST(fault_partition_keeps_control_down_until_cleared)
{
    struct env a = {0}, b = {0};
    mk_two(&a, "a", 1, 300);
    mk_two(&b, "b", 2, 300);
    struct faults *f = faults_with("a", "partition a b");
    transport_set_faults(a.t, f);
    a.redial_budget = b.redial_budget = 100;
    transport_connect(a.t, "", b.addr);
    transport_connect(b.t, "a", a.addr);
    WAIT_UNTIL(a.failed >= 2 && b.failed >= 2, WAIT_MS);
    ck_assert_int_ge(a.failed, 2);
    ck_assert_int_ge(b.failed, 2);
    ck_assert_int_eq(a.connected + b.connected, 0);
    ck_assert_uint_ge(faults_total(f, FAULT_PARTITION), 4);
    ck_assert_int_eq(a.gossip_n + b.gossip_n, 0);
    faults_clear(f);
    WAIT_UNTIL(a.connected == 1 && b.connected == 1, WAIT_MS);
    ck_assert_int_eq(a.connected, 1);
    ck_assert_int_eq(b.connected, 1);
    ck_assert_str_eq(a.conn_node, "b");
    done(&a);
    done(&b);
    faults_free(f);
}
END_TEST

static Suite *transport_suite(void)
{
    Suite *s = suite_create("transport");
    TCase *tc = tcase_create("transport");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, connect_reports_acceptor_name_and_incarnation);
    tcase_add_test(tc, host_names_are_resolved_without_blocking);
    tcase_add_test(tc, gossip_and_data_arrive_in_order_from_the_sender);
    tcase_add_test(tc, connect_to_closed_port_fails_once);
    tcase_add_test(tc, bad_address_fails_from_the_loop);
    tcase_add_test(tc, cluster_mismatch_is_refused_on_both_sides);
    tcase_add_test(tc, dialler_with_acceptors_name_is_refused);
    tcase_add_test(tc, unexpected_node_is_refused);
    tcase_add_test(tc, bad_input_closes_that_connection_only);
    tcase_add_test(tc, frames_behind_a_refused_hello_are_not_read);
    tcase_add_test(tc, many_frames_in_one_write_all_arrive);
    tcase_add_test(tc, silent_inbound_connection_is_closed_after_the_timeout);
    tcase_add_test(tc, peer_that_never_answers_times_out);
    tcase_add_test(tc, peer_going_away_disconnects_once);
    tcase_add_test(tc, asked_disconnect_is_silent_and_reconnect_works);
    tcase_add_test(tc, restarted_peer_replaces_its_old_connections);
    tcase_add_test(tc, callbacks_may_call_back_into_the_transport);
    tcase_add_test(tc, full_data_queue_refuses_then_drains);
    tcase_add_test(tc, listen_on_a_used_port_fails);
    tcase_add_test(tc, data_sender_is_the_connections_node);
    tcase_add_test(tc, hello_indexes_are_bounded_and_channels_carried);
    tcase_add_test(tc, connections_mid_handshake_are_capped);
    tcase_add_test(tc, large_frame_before_the_hello_closes);
    tcase_add_test(tc, idle_accepted_connection_is_closed);
    tcase_add_test(tc, second_live_daemon_with_one_name_is_refused);
    tcase_add_test(tc, reliable_fields_and_acks_cross);
    tcase_add_test(tc, ack_on_a_control_connection_is_dropped);
    tcase_add_test(tc, fault_drop_cuts_one_channel_only);
    tcase_add_test(tc, fault_corrupt_is_caught_by_the_checksum);
    tcase_add_test(tc, fault_delay_holds_frames_in_order);
    tcase_add_test(tc, fault_duplicate_delivers_twice);
    tcase_add_test(tc, fault_partition_keeps_control_down_until_cleared);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(transport_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
