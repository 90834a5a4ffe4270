/* channel_bench: what named channels buy, in figures (never pass/fail).
 *
 * Two real daemons A and B on 127.0.0.1 (test/integration/harness.c) with
 *   "channels": [{"name": "default"}, {"name": "bulk", "parallelism": 4},
 *                {"name": "state", "monotonic": true},
 *                {"name": "bulk1"}, {"name": "bulk2", "parallelism": 2}]
 * and, beside them, the protocol-free baseline (bench/baseline_forwarder:
 * app -> unix -> forwarder -> one TCP connection -> forwarder -> unix -> app)
 * measured in the same run.
 *
 * 1. Small-message RTT under bulk load. An app on A sends 64 B to an echo
 *    app on B, one round trip outstanding at a time, for a fixed time (and
 *    at most a bounded number of samples) while another app on A streams
 *    1 MiB messages to a third app on B, which reads and discards them:
 *    idle (no stream); the stream on "bulk" and the pings on "default";
 *    both sharing "default" (parallelism 1: one TCP connection). Baseline:
 *    the same ping-pong through the forwarder idle, and with a 1 MiB stream
 *    written into the same application socket, so it shares the
 *    forwarder's one TCP connection and the pings queue behind whole 1 MiB
 *    messages (the distributed-Erlang-like case: one connection per node
 *    pair, messages never interleaved; OTP 22+ would fragment them); and
 *    with the same 1 MiB stream through a second, separate forwarder pair
 *    (its own unix sockets and its own TCP connection), so the pings and
 *    the stream share nothing but the machine: the floor CPU contention
 *    alone sets, what "bulk on its own channel" compares with. The
 *    baseline's streamer keeps at most 4 MiB in flight (partisand's default
 *    flow window), else the forwarders' unbounded buffers would grow to
 *    hundreds of MiB. The stream's own rate is printed beside each case.
 * 2. Bulk throughput of 1 MiB messages A -> B on a channel of parallelism
 *    1, 2 and 4. What is measured: N sender threads on A (one handle each,
 *    $CHANNEL_BENCH_SENDERS, default 4) each stream to their own receiver
 *    name on B (so each has its own flow-control window and the channel's
 *    least-loaded lane choice can spread them over the connections); they
 *    stop after the case's duration; the figure is the payload bytes
 *    received on B divided by the time from the first send to the last
 *    message received. The baseline is one sender streaming 1 MiB frames
 *    through its one TCP connection, measured the same way.
 * 3. Monotonic savings: 1,000 keys x 100 versions (256 B payloads carrying
 *    key and version, partition key = the key, versions sent round-robin
 *    over the keys) toward a receiver on B that does not read for
 *    $CHANNEL_BENCH_SLOW_MS (default 1500) ms and then drains; once on the
 *    plain "default" channel and once on the monotonic "state" channel.
 *    (Flow control makes the sender wait once a window, 4 MiB, is unread,
 *    so with a slow receiver the backlog waits in the sending application,
 *    not in A's channel queue where superseding happens.) An extra column:
 *    the same on "state" with B's daemon stopped (SIGSTOP) for that time
 *    instead, a slow peer, where messages do wait in A's queue. Printed: messages and bytes the receiver got, superseded on A (from
 *    partisan_stats), the saving, and whether every key's final value is its
 *    newest version.
 * 4. Both daemons' RSS (and peak RSS) after the run.
 *
 * $CHANNEL_BENCH_SECS (default 3; --quick: 1) is the duration of every RTT
 * and throughput case; $CHANNEL_BENCH_ONLY (e.g. "13") runs only those
 * sections. The daemons' warnings logged during the run are printed at the
 * end. Every wait is bounded, every process started is
 * ended by its PID, and the whole run takes well under two minutes. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "partisan.h"

#define T 10000
#define MIB (1024 * 1024)
#define BULK_SIZE MIB
#define PING_SIZE 64
#define MAX_SAMPLES 200000
#define MAX_SENDERS 8
#define MONO_KEYS 1000
#define MONO_VERSIONS 100
#define MONO_SIZE 256

#define CHANNELS "[{\"name\": \"default\"}, {\"name\": \"bulk\", \"parallelism\": 4}, " \
                 "{\"name\": \"state\", \"monotonic\": true}, " \
                 "{\"name\": \"bulk1\"}, {\"name\": \"bulk2\", \"parallelism\": 2}]"

static int secs = 3;
static int n_senders = 4;
static int slow_ms = 1500;
static struct daemon_proc da, db;
static pid_t fwd_pids[4];   /* the baseline's forwarders (A, B; the second pair's A, B), while they run */
static char problems[4096];

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
    size_t n = strlen(problems);
    if (n + 2 >= sizeof problems)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problems + n, sizeof problems - n - 1, fmt, ap);
    va_end(ap);
    n = strlen(problems);
    if (n + 1 < sizeof problems) {
        problems[n] = '\n';
        problems[n + 1] = '\0';
    }
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int env_int(const char *name, int def, int lo, int hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    int x = atoi(v);
    return x < lo ? lo : x > hi ? hi : x;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Joins t, waiting at most timeout_ms. false: it is still running. */
static bool join_within(pthread_t t, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

/* Threads that did not end in time; joined (bounded) after the daemons stop. */
static pthread_t stragglers[32];
static int n_stragglers;

static void join_or_park(pthread_t t, int timeout_ms, const char *what)
{
    if (join_within(t, timeout_ms))
        return;
    problem("%s did not end within %d ms (blocked in a library call?)", what, timeout_ms);
    if (n_stragglers < (int)(sizeof stragglers / sizeof stragglers[0]))
        stragglers[n_stragglers++] = t;
}

struct pct { uint32_t n; double p50, p99, p999; };

static struct pct percentiles(uint32_t *lat, uint32_t n)
{
    struct pct p = { .n = n };
    if (!n)
        return p;
    qsort(lat, n, sizeof *lat, cmp_u32);
    p.p50 = lat[n / 2];
    p.p99 = lat[(uint64_t)n * 99 / 100];
    p.p999 = lat[(uint64_t)n * 999 / 1000];
    return p;
}

static long proc_kib(pid_t pid, const char *field)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (harness_read_file(path, buf, sizeof buf) <= 0)
        return -1;
    const char *p = strstr(buf, field);
    return p ? atol(p + strlen(field)) : -1;
}

/* ================================================================ daemons */

static void make_extra(char *buf, size_t cap, const char *seed)
{
    char seeds[300] = "";
    if (seed)
        snprintf(seeds, sizeof seeds, ", \"seeds\": [\"%s\"]", seed);
    snprintf(buf, cap,
             "\"log\": {\"level\": \"warn\"}, "
             "\"overlay\": {\"gossip_interval_ms\": 200}, "
             "\"cluster\": {\"name\": \"bench\"%s}, "
             "\"channels\": %s",
             seeds, CHANNELS);
}

static bool pair_up(void *arg)
{
    (void)arg;
    return harness_members_up(&da, T) == 2 && harness_members_up(&db, T) == 2;
}

static int start_daemons(void)
{
    char extra[2048];
    make_extra(extra, sizeof extra, NULL);
    harness_daemon_init(&da, "bench-a", extra);
    if (harness_daemon_start(&da, T) != 0)
        return -1;
    make_extra(extra, sizeof extra, da.listen);
    harness_daemon_init(&db, "bench-b", extra);
    if (harness_daemon_start(&db, T) != 0)
        return -1;
    if (!harness_wait_until(pair_up, NULL, 20000)) {
        fprintf(stderr, "channel_bench: the daemons did not see each other up within 20 s\n");
        return -1;
    }
    return 0;
}

/* Sums a channel's counters toward peer as A sees them. */
struct chrow { uint64_t superseded, msgs_sent, bytes_sent, paused, lost, requeued; uint32_t conns; };

static int chan_stats(const struct daemon_proc *d, const char *peer, const char *channel, struct chrow *r,
                      uint64_t *flow_waits)
{
    memset(r, 0, sizeof *r);
    partisan_client *c = NULL;
    int rc = partisan_connect(d->socket, &c);
    if (rc)
        return rc;
    struct partisan_stats *s = NULL;
    rc = partisan_stats(c, &s, T);
    if (rc == 0) {
        for (size_t i = 0; i < s->n_channels; i++) {
            const struct partisan_channel_stats *x = &s->channels[i];
            if (strcmp(x->peer, peer) || strcmp(x->channel, channel))
                continue;
            r->superseded += x->superseded;
            r->msgs_sent += x->msgs_sent;
            r->bytes_sent += x->bytes_sent;
            r->paused += x->paused;
            r->lost += x->lost;
            r->requeued += x->requeued;
            r->conns += x->connections;
        }
        if (flow_waits)
            *flow_waits = s->flow_waits;
        partisan_stats_free(s);
    }
    partisan_close(c);
    return rc;
}

/* ===================================================== partisand threads */

static atomic_int stop_all;   /* ends the long-lived B-side threads */

/* B: echoes every message back to (sender's node, "pinger") on the channel
 * it came on. */
struct echo_ctx { partisan_client *c; atomic_long echoed; char err[200]; };

static void *echo_main(void *arg)
{
    struct echo_ctx *e = arg;
    while (!atomic_load(&stop_all)) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(e->c, &m, 100);
        if (rc == PARTISAN_ETIMEDOUT)
            continue;
        if (rc) {
            snprintf(e->err, sizeof e->err, "echo recv: %s", partisan_strerror(rc));
            break;
        }
        if (m->kind == PARTISAN_MSG_DATA) {
            struct partisan_send_opts o = { .channel = m->channel };
            rc = partisan_send_with(e->c, m->from_node, "pinger", m->payload, m->len, &o);
            if (rc && !e->err[0])
                snprintf(e->err, sizeof e->err, "echo send: %s (%s)", partisan_strerror(rc),
                         partisan_last_error(e->c));
            partisan_flush(e->c, 0);
            atomic_fetch_add(&e->echoed, 1);
        }
        partisan_message_free(m);
    }
    return NULL;
}

/* B: reads and discards, counting. */
struct sink_ctx {
    partisan_client *c;
    char name[32];
    atomic_ullong msgs, bytes;
    atomic_ullong last_us;    /* when the latest message came */
    char err[200];
};

static void *sink_main(void *arg)
{
    struct sink_ctx *s = arg;
    while (!atomic_load(&stop_all)) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(s->c, &m, 100);
        if (rc == PARTISAN_ETIMEDOUT)
            continue;
        if (rc) {
            snprintf(s->err, sizeof s->err, "%s recv: %s", s->name, partisan_strerror(rc));
            break;
        }
        if (m->kind == PARTISAN_MSG_DATA) {
            atomic_fetch_add(&s->bytes, m->len);
            atomic_store(&s->last_us, now_us());
            atomic_fetch_add(&s->msgs, 1);
        }
        partisan_message_free(m);
    }
    return NULL;
}

/* A: streams 1 MiB messages to (B, to) on channel until *stop. */
struct bulk_ctx {
    partisan_client *c;
    const char *channel;
    const char *to;
    atomic_int *stop;
    atomic_int *go;           /* NULL, or wait until it is set */
    long sent, busy;
    char err[200];
};

static void *bulk_main(void *arg)
{
    struct bulk_ctx *b = arg;
    unsigned char *buf = malloc(BULK_SIZE);
    if (!buf) {
        snprintf(b->err, sizeof b->err, "out of memory");
        return NULL;
    }
    memset(buf, 'b', BULK_SIZE);
    uint64_t t_go = now_us();
    while (b->go && !atomic_load(b->go) && !atomic_load(b->stop) && now_us() - t_go < 10000000)
        usleep(100);
    struct partisan_send_opts o = { .channel = b->channel };
    while (!atomic_load(b->stop)) {
        int rc = partisan_send_with(b->c, "bench-b", b->to, buf, BULK_SIZE, &o);
        if (rc == 0) {
            b->sent++;
        } else if (rc == PARTISAN_EBUSY || (rc == PARTISAN_EASYNC && strstr(partisan_last_error(b->c), "full"))) {
            b->busy++;
            usleep(1000);
        } else {
            snprintf(b->err, sizeof b->err, "send on %s: %s (%s)", b->channel, partisan_strerror(rc),
                     partisan_last_error(b->c));
            break;
        }
    }
    int rc = partisan_flush(b->c, 20000);
    if (rc && !b->err[0])
        snprintf(b->err, sizeof b->err, "flush on %s: %s (%s)", b->channel, partisan_strerror(rc),
                 partisan_last_error(b->c));
    free(buf);
    return NULL;
}

/* ===================================================== raw (baseline) side */

static int raw_connect(const char *path)
{
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
        if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0)
            return fd;
        close(fd);
        usleep(10000);
    }
    return -1;
}

/* Writes everything, waiting at most timeout_ms for the socket to take it. */
static int write_all(int fd, const void *p, size_t n, int timeout_ms)
{
    const unsigned char *b = p;
    uint64_t deadline = now_us() + (uint64_t)timeout_ms * 1000;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -1;
            uint64_t now = now_us();
            if (now >= deadline)
                return -1;
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            poll(&pfd, 1, (int)((deadline - now) / 1000) + 1);
            continue;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put_len(unsigned char *h, size_t n)
{
    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
}

/* A streaming parser of u32-length frames that keeps only the first bytes
 * of each body, so that 1 MiB frames are never copied. */
struct rawrx {
    unsigned char hdr[4];
    int hdr_have;
    size_t body_len, body_have;
    unsigned char head[PING_SIZE];
};

/* Feeds n bytes; calls done(arg, head, body_len) per whole frame. */
static void rawrx_feed(struct rawrx *r, const unsigned char *p, size_t n,
                       void (*done)(void *, const unsigned char *, size_t), void *arg)
{
    while (n) {
        if (r->hdr_have < 4) {
            r->hdr[r->hdr_have++] = *p++;
            n--;
            if (r->hdr_have == 4) {
                r->body_len = (size_t)r->hdr[0] << 24 | (size_t)r->hdr[1] << 16 | (size_t)r->hdr[2] << 8 | r->hdr[3];
                r->body_have = 0;
            } else {
                continue;
            }
        } else {
            size_t take = r->body_len - r->body_have;
            if (take > n)
                take = n;
            if (r->body_have < sizeof r->head) {
                size_t k = sizeof r->head - r->body_have;
                memcpy(r->head + r->body_have, p, k < take ? k : take);
            }
            r->body_have += take;
            p += take;
            n -= take;
        }
        if (r->hdr_have == 4 && r->body_have == r->body_len) {
            done(arg, r->head, r->body_len);
            r->hdr_have = 0;
        }
    }
}

/* B side of the baseline: echoes 'e' frames, counts the others. */
struct raw_b {
    int fd;
    atomic_int stop;
    atomic_ullong bulk_msgs, bulk_bytes, last_us;
    int write_failed;
    pthread_mutex_t lock;     /* with `more`: wakes a streamer waiting for its window */
    pthread_cond_t more;
};

static void raw_b_frame(void *arg, const unsigned char *head, size_t len)
{
    struct raw_b *b = arg;
    if (len > 0 && head[0] == 'e' && len <= PING_SIZE) {
        unsigned char f[4 + PING_SIZE];
        put_len(f, len);
        memcpy(f + 4, head, len);
        if (write_all(b->fd, f, 4 + len, 5000) != 0)
            b->write_failed = 1;
    } else {
        atomic_fetch_add(&b->bulk_bytes, len);
        atomic_store(&b->last_us, now_us());
        pthread_mutex_lock(&b->lock);
        atomic_fetch_add(&b->bulk_msgs, 1);
        pthread_cond_broadcast(&b->more);
        pthread_mutex_unlock(&b->lock);
    }
}

static void *raw_b_main(void *arg)
{
    struct raw_b *b = arg;
    struct rawrx rx = { 0 };
    size_t cap = 256 * 1024;
    unsigned char *buf = malloc(cap);
    while (buf && !atomic_load(&b->stop)) {
        struct pollfd pfd = { .fd = b->fd, .events = POLLIN };
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(b->fd, buf, cap);
        if (r <= 0)
            break;
        rawrx_feed(&rx, buf, (size_t)r, raw_b_frame, b);
    }
    free(buf);
    return NULL;
}

/* A side of the baseline: one application socket, written by the pinger and
 * (in the shared case) the streamer, whole frames under a lock. */
struct raw_a {
    int fd;
    pthread_mutex_t wlock;
    struct rawrx rx;
    uint32_t want_seq;
    int got;
    atomic_int ping_waiting;  /* the pinger goes first: one FIFO queue into the socket, not a race for the lock */
};

static void raw_a_frame(void *arg, const unsigned char *head, size_t len)
{
    struct raw_a *a = arg;
    uint32_t seq;
    if (len >= 5 && head[0] == 'e') {
        memcpy(&seq, head + 1, 4);
        if (seq == a->want_seq)
            a->got = 1;
    }
}

/* The baseline's streamer keeps at most BASE_WINDOW bytes of its stream in
 * flight, as partisand's default transport.window_bytes does per name (and
 * as a dist buffer busy limit does in Erlang); it learns what arrived from
 * the receiver's counter in this process, so that costs no traffic. Without
 * a bound the forwarders' unbounded buffers grow to hundreds of MiB and the
 * pings wait behind all of it. */
#define BASE_WINDOW (4 * MIB)

struct raw_bulk { struct raw_a *a; struct raw_b *b; atomic_int *stop; long sent; int failed; };

static void *raw_bulk_main(void *arg)
{
    struct raw_bulk *rb = arg;
    unsigned char *f = malloc(4 + BULK_SIZE);
    if (!f) {
        rb->failed = 1;
        return NULL;
    }
    put_len(f, BULK_SIZE);
    memset(f + 4, 'b', BULK_SIZE);
    unsigned long long base = atomic_load(&rb->b->bulk_msgs);
    while (!atomic_load(rb->stop)) {
        pthread_mutex_lock(&rb->b->lock);
        for (int i = 0; i < 100 && !atomic_load(rb->stop) &&
                        ((unsigned long long)rb->sent - (atomic_load(&rb->b->bulk_msgs) - base)) * BULK_SIZE >= BASE_WINDOW;
             i++) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&rb->b->more, &rb->b->lock, &ts);
        }
        pthread_mutex_unlock(&rb->b->lock);
        if (atomic_load(rb->stop))
            break;
        for (int i = 0; i < 100000 && atomic_load(&rb->a->ping_waiting); i++)
            usleep(20);
        pthread_mutex_lock(&rb->a->wlock);
        int rc = write_all(rb->a->fd, f, 4 + BULK_SIZE, 10000);
        pthread_mutex_unlock(&rb->a->wlock);
        if (rc) {
            rb->failed = 1;
            break;
        }
        rb->sent++;
    }
    free(f);
    return NULL;
}

/* ================================================================ pinging */

struct ping_result { struct pct p; long timeouts; double bulk_mib_s; long bulk_msgs; char note[200]; };

static uint32_t *lat;

/* Ping through partisand: 64 B to (B, "echo") on `channel`, one at a time,
 * for `ms` or MAX_SAMPLES. */
static void ping_partisand(partisan_client *c, const char *channel, int ms, int warmup, struct ping_result *out)
{
    unsigned char msg[PING_SIZE];
    memset(msg, 'p', sizeof msg);
    msg[0] = 'e';
    struct partisan_send_opts o = { .channel = channel };
    uint32_t n = 0, seq = 0;
    uint64_t start = now_us(), end = start + (uint64_t)ms * 1000;
    for (int i = -warmup; i < MAX_SAMPLES; i++) {
        if (i >= 0 && now_us() >= end)
            break;
        seq++;
        memcpy(msg + 1, &seq, 4);
        uint64_t t0 = now_us();
        int rc = partisan_send_with(c, "bench-b", "echo", msg, sizeof msg, &o);
        if (rc) {
            snprintf(out->note, sizeof out->note, "ping send: %s (%s)", partisan_strerror(rc), partisan_last_error(c));
            break;
        }
        bool got = false;
        while (!got) {
            uint64_t now = now_us();
            if (now - t0 >= 2000000)
                break;
            struct partisan_message *m = NULL;
            rc = partisan_recv(c, &m, (int)((2000000 - (now - t0)) / 1000) + 1);
            if (rc == PARTISAN_ETIMEDOUT)
                break;
            if (rc) {
                snprintf(out->note, sizeof out->note, "ping recv: %s", partisan_strerror(rc));
                i = MAX_SAMPLES;
                break;
            }
            uint32_t s = 0;
            if (m->kind == PARTISAN_MSG_DATA && m->len == sizeof msg)
                memcpy(&s, m->payload + 1, 4);
            got = s == seq;
            partisan_message_free(m);
        }
        if (!got) {
            if (i >= 0)
                out->timeouts++;
            continue;
        }
        if (i >= 0)
            lat[n++] = (uint32_t)(now_us() - t0);
    }
    out->p = percentiles(lat, n);
}

static void ping_raw(struct raw_a *a, int ms, int warmup, struct ping_result *out)
{
    unsigned char f[4 + PING_SIZE];
    put_len(f, PING_SIZE);
    memset(f + 4, 'p', PING_SIZE);
    f[4] = 'e';
    unsigned char buf[65536];
    uint32_t n = 0, seq = 0;
    uint64_t start = now_us(), end = start + (uint64_t)ms * 1000;
    for (int i = -warmup; i < MAX_SAMPLES; i++) {
        if (i >= 0 && now_us() >= end)
            break;
        seq++;
        memcpy(f + 5, &seq, 4);
        a->want_seq = seq;
        a->got = 0;
        uint64_t t0 = now_us();
        atomic_store(&a->ping_waiting, 1);
        pthread_mutex_lock(&a->wlock);
        atomic_store(&a->ping_waiting, 0);
        int rc = write_all(a->fd, f, sizeof f, 10000);
        pthread_mutex_unlock(&a->wlock);
        if (rc) {
            snprintf(out->note, sizeof out->note, "baseline ping write failed");
            break;
        }
        while (!a->got) {
            uint64_t now = now_us();
            if (now - t0 >= 2000000)
                break;
            struct pollfd pfd = { .fd = a->fd, .events = POLLIN };
            if (poll(&pfd, 1, (int)((2000000 - (now - t0)) / 1000) + 1) <= 0)
                continue;
            ssize_t r = read(a->fd, buf, sizeof buf);
            if (r <= 0) {
                snprintf(out->note, sizeof out->note, "baseline ping read failed");
                i = MAX_SAMPLES;
                break;
            }
            rawrx_feed(&a->rx, buf, (size_t)r, raw_a_frame, a);
        }
        if (!a->got) {
            if (i >= 0)
                out->timeouts++;
            continue;
        }
        if (i >= 0)
            lat[n++] = (uint32_t)(now_us() - t0);
    }
    out->p = percentiles(lat, n);
}

/* ================================================================ baseline */

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(fd, (struct sockaddr *)&sin, sizeof sin);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

/* free_port(), but none of used[0..n-1] (those the other forwarder pair has). */
static uint16_t free_port_except(const uint16_t *used, int n)
{
    uint16_t p = 0;
    for (int tries = 0; tries < 100; tries++) {
        p = free_port();
        bool clash = p == 0;
        for (int i = 0; i < n; i++)
            clash = clash || p == used[i];
        if (!clash)
            break;
    }
    return p;
}

static pid_t spawn(const char *bin, const char *a1, const char *a2, const char *a3)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_pid(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

struct baseline_result {
    struct ping_result idle, shared, own;
    double tput_mib_s, tput_msgs_s;
    long fwd_rss_kib[2];
    char note[200];
};

/* Waits until `got` reaches `want` (at most timeout_ms). */
static bool wait_count(atomic_ullong *got, unsigned long long want, int timeout_ms)
{
    uint64_t end = now_us() + (uint64_t)timeout_ms * 1000;
    while (atomic_load(got) < want) {
        if (now_us() >= end)
            return false;
        usleep(1000);
    }
    return true;
}

/* Ping-pong through the first pair (`a`, whose B side is already echoing)
 * while the same 1 MiB stream goes through a second forwarder pair of its
 * own: its own unix sockets, forwarders and TCP connection. Only the
 * machine is shared. `used`: the first pair's TCP ports. */
static void run_baseline_own(struct raw_a *a, const uint16_t *used, int n_used, struct ping_result *out)
{
    const char *dir = harness_tmpdir();
    char fwd[600], sa[600], sb[600], pa[8], pb[8];
    uint16_t ports[4];
    for (int i = 0; i < n_used && i < 2; i++)
        ports[i] = used[i];
    int n = n_used < 2 ? n_used : 2;
    ports[n] = free_port_except(ports, n);
    ports[n + 1] = free_port_except(ports, n + 1);
    snprintf(fwd, sizeof fwd, "%s/bench/baseline_forwarder", harness_bin_dir());
    snprintf(sa, sizeof sa, "%s/chbase2-a.sock", dir);
    snprintf(sb, sizeof sb, "%s/chbase2-b.sock", dir);
    snprintf(pa, sizeof pa, "%u", ports[n]);
    snprintf(pb, sizeof pb, "%u", ports[n + 1]);
    pid_t fb = spawn(fwd, sb, pb, NULL);
    fwd_pids[3] = fb;
    usleep(100000);
    pid_t fa = spawn(fwd, sa, pa, pb);
    fwd_pids[2] = fa;
    usleep(100000);
    static struct raw_b b2;
    static struct raw_a a2;
    b2.fd = raw_connect(sb);
    a2.fd = raw_connect(sa);
    pthread_mutex_init(&a2.wlock, NULL);
    pthread_mutex_init(&b2.lock, NULL);
    pthread_cond_init(&b2.more, NULL);
    pthread_t bt;
    if (a2.fd < 0 || b2.fd < 0 || pthread_create(&bt, NULL, raw_b_main, &b2) != 0) {
        snprintf(out->note, sizeof out->note, "baseline: could not connect to the second forwarder pair");
        if (a2.fd >= 0)
            close(a2.fd);
        if (b2.fd >= 0)
            close(b2.fd);
        stop_pid(fa);
        stop_pid(fb);
        fwd_pids[2] = fwd_pids[3] = 0;
        return;
    }
    usleep(100000);
    int ms = secs * 1000;

    atomic_int stop = 0;
    struct raw_bulk rb = { .a = &a2, .b = &b2, .stop = &stop };
    pthread_t wt;
    unsigned long long m0 = atomic_load(&b2.bulk_msgs), by0 = atomic_load(&b2.bulk_bytes);
    uint64_t t0 = now_us();
    pthread_create(&wt, NULL, raw_bulk_main, &rb);
    usleep(200000);   /* let the stream fill its pipe first */
    ping_raw(a, ms, 0, out);
    atomic_store(&stop, 1);
    join_or_park(wt, 15000, "baseline streamer (own connection)");
    if (!wait_count(&b2.bulk_msgs, m0 + (unsigned long long)rb.sent, 10000))
        problem("baseline, own connection: %llu of %ld streamed messages arrived",
                atomic_load(&b2.bulk_msgs) - m0, rb.sent);
    uint64_t last = atomic_load(&b2.last_us), us = last > t0 ? last - t0 : 1;
    out->bulk_msgs = (long)(atomic_load(&b2.bulk_msgs) - m0);
    out->bulk_mib_s = (double)(atomic_load(&b2.bulk_bytes) - by0) / MIB * 1e6 / (double)us;
    if (rb.failed)
        problem("baseline, own connection: the streamer's write failed or timed out");

    atomic_store(&b2.stop, 1);
    join_or_park(bt, 5000, "baseline receiver (own connection)");
    close(a2.fd);
    close(b2.fd);
    stop_pid(fa);
    stop_pid(fb);
    fwd_pids[2] = fwd_pids[3] = 0;
}

static void run_baseline(struct baseline_result *res)
{
    const char *dir = harness_tmpdir();
    char fwd[600], sa[600], sb[600], pa[8], pb[8];
    uint16_t ports[2] = { free_port(), 0 };
    ports[1] = free_port_except(ports, 1);
    snprintf(fwd, sizeof fwd, "%s/bench/baseline_forwarder", harness_bin_dir());
    snprintf(sa, sizeof sa, "%s/chbase-a.sock", dir);
    snprintf(sb, sizeof sb, "%s/chbase-b.sock", dir);
    snprintf(pa, sizeof pa, "%u", ports[0]);
    snprintf(pb, sizeof pb, "%u", ports[1]);
    pid_t fb = spawn(fwd, sb, pb, NULL);
    fwd_pids[1] = fb;
    usleep(100000);
    pid_t fa = spawn(fwd, sa, pa, pb);
    fwd_pids[0] = fa;
    usleep(100000);
    static struct raw_b b;
    static struct raw_a a;
    b.fd = raw_connect(sb);
    a.fd = raw_connect(sa);
    pthread_mutex_init(&a.wlock, NULL);
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.more, NULL);
    pthread_t bt;
    if (a.fd < 0 || b.fd < 0 || pthread_create(&bt, NULL, raw_b_main, &b) != 0) {
        snprintf(res->note, sizeof res->note, "baseline: could not connect to the forwarders");
        problem("%s", res->note);
        stop_pid(fa);
        stop_pid(fb);
        fwd_pids[0] = fwd_pids[1] = 0;
        return;
    }
    usleep(100000);
    int ms = secs * 1000;

    /* Idle ping-pong. */
    ping_raw(&a, ms, 1000, &res->idle);

    /* Ping-pong with a 1 MiB stream in the same socket and TCP connection. */
    atomic_int stop = 0;
    struct raw_bulk rb = { .a = &a, .b = &b, .stop = &stop };
    pthread_t wt;
    unsigned long long m0 = atomic_load(&b.bulk_msgs), by0 = atomic_load(&b.bulk_bytes);
    uint64_t t0 = now_us();
    pthread_create(&wt, NULL, raw_bulk_main, &rb);
    usleep(200000);   /* let the stream fill the pipe first */
    ping_raw(&a, ms, 0, &res->shared);
    atomic_store(&stop, 1);
    join_or_park(wt, 15000, "baseline streamer");
    wait_count(&b.bulk_msgs, m0 + (unsigned long long)rb.sent, 10000);
    uint64_t us = atomic_load(&b.last_us) - t0;
    res->shared.bulk_msgs = (long)(atomic_load(&b.bulk_msgs) - m0);
    res->shared.bulk_mib_s = (double)(atomic_load(&b.bulk_bytes) - by0) / MIB * 1e6 / (double)(us ? us : 1);
    if (rb.failed)
        problem("baseline: the streamer's write failed or timed out");

    /* Ping-pong with the stream on a second forwarder pair and TCP connection. */
    run_baseline_own(&a, ports, 2, &res->own);

    /* Throughput on its own: one streamer, nothing else. */
    atomic_store(&stop, 0);
    rb.sent = 0;
    m0 = atomic_load(&b.bulk_msgs);
    by0 = atomic_load(&b.bulk_bytes);
    t0 = now_us();
    pthread_create(&wt, NULL, raw_bulk_main, &rb);
    usleep((useconds_t)ms * 1000);
    atomic_store(&stop, 1);
    join_or_park(wt, 15000, "baseline streamer");
    if (!wait_count(&b.bulk_msgs, m0 + (unsigned long long)rb.sent, 10000))
        problem("baseline: %llu of %ld streamed messages arrived", atomic_load(&b.bulk_msgs) - m0, rb.sent);
    us = atomic_load(&b.last_us) - t0;
    double got = (double)(atomic_load(&b.bulk_msgs) - m0);
    res->tput_msgs_s = got * 1e6 / (double)(us ? us : 1);
    res->tput_mib_s = (double)(atomic_load(&b.bulk_bytes) - by0) / MIB * 1e6 / (double)(us ? us : 1);
    res->fwd_rss_kib[0] = proc_kib(fa, "VmHWM:");
    res->fwd_rss_kib[1] = proc_kib(fb, "VmHWM:");

    atomic_store(&b.stop, 1);
    join_or_park(bt, 5000, "baseline receiver");
    close(a.fd);
    close(b.fd);
    stop_pid(fa);
    stop_pid(fb);
    fwd_pids[0] = fwd_pids[1] = 0;
}

/* ============================================================== section 1 */

struct rtt_results { struct ping_result idle, own, shared; };

static partisan_client *connect_or_die(const struct daemon_proc *d, const char *name)
{
    partisan_client *c = NULL;
    int rc = partisan_connect(d->socket, &c);
    if (rc == 0 && name)
        rc = partisan_register(c, name, T);
    if (rc) {
        fprintf(stderr, "channel_bench: %s on %s: %s\n", name ? name : "connect", d->name, partisan_strerror(rc));
        exit(1);
    }
    return c;
}

static void rtt_under_bulk(partisan_client *pinger, struct sink_ctx *sink, const char *ping_ch,
                           const char *bulk_ch, struct ping_result *out)
{
    int ms = secs * 1000;
    if (!bulk_ch) {
        ping_partisand(pinger, ping_ch, ms, 1000, out);
        return;
    }
    atomic_int stop = 0;
    struct bulk_ctx bc = { .c = connect_or_die(&da, NULL), .channel = bulk_ch, .to = sink->name, .stop = &stop };
    unsigned long long m0 = atomic_load(&sink->msgs), by0 = atomic_load(&sink->bytes);
    uint64_t t0 = now_us();
    pthread_t t;
    pthread_create(&t, NULL, bulk_main, &bc);
    usleep(200000);   /* the stream is running before the first ping */
    ping_partisand(pinger, ping_ch, ms, 100, out);
    atomic_store(&stop, 1);
    join_or_park(t, 25000, "bulk sender");
    if (!wait_count(&sink->msgs, m0 + (unsigned long long)bc.sent, 10000))
        problem("bulk on %s: %llu of %ld messages arrived within 10 s of the end", bulk_ch,
                atomic_load(&sink->msgs) - m0, bc.sent);
    uint64_t us = atomic_load(&sink->last_us) - t0;
    out->bulk_msgs = (long)(atomic_load(&sink->msgs) - m0);
    out->bulk_mib_s = (double)(atomic_load(&sink->bytes) - by0) / MIB * 1e6 / (double)(us ? us : 1);
    if (bc.err[0])
        problem("bulk on %s: %s", bulk_ch, bc.err);
    partisan_close(bc.c);
}

/* ============================================================== section 2 */

struct tput_result { double mib_s, msgs_s; long sent, got; uint32_t conns; };

static void tput(struct sink_ctx *sinks, const char *channel, struct tput_result *out)
{
    atomic_int stop = 0, go = 0;
    struct bulk_ctx bc[MAX_SENDERS];
    pthread_t t[MAX_SENDERS];
    unsigned long long m0 = 0, by0 = 0;
    for (int i = 0; i < n_senders; i++) {
        m0 += atomic_load(&sinks[i].msgs);
        by0 += atomic_load(&sinks[i].bytes);
        bc[i] = (struct bulk_ctx){ .c = connect_or_die(&da, NULL), .channel = channel, .to = sinks[i].name,
                                   .stop = &stop, .go = &go };
        pthread_create(&t[i], NULL, bulk_main, &bc[i]);
    }
    usleep(20000);
    uint64_t t0 = now_us();
    atomic_store(&go, 1);
    usleep((useconds_t)secs * 1000000);
    atomic_store(&stop, 1);
    long sent = 0;
    for (int i = 0; i < n_senders; i++) {
        join_or_park(t[i], 25000, "throughput sender");
        sent += bc[i].sent;
        if (bc[i].err[0])
            problem("throughput on %s, sender %d: %s", channel, i, bc[i].err);
    }
    uint64_t deadline = now_us() + 15000000;
    unsigned long long m = 0, by = 0, last = 0;
    for (;;) {
        m = by = last = 0;
        for (int i = 0; i < n_senders; i++) {
            m += atomic_load(&sinks[i].msgs);
            by += atomic_load(&sinks[i].bytes);
            if (atomic_load(&sinks[i].last_us) > last)
                last = atomic_load(&sinks[i].last_us);
        }
        if (m - m0 >= (unsigned long long)sent || now_us() > deadline)
            break;
        usleep(2000);
    }
    if (m - m0 < (unsigned long long)sent)
        problem("throughput on %s: %llu of %ld messages arrived within 15 s of the end", channel, m - m0, sent);
    uint64_t us = last > t0 ? last - t0 : 1;
    out->sent = sent;
    out->got = (long)(m - m0);
    out->msgs_s = (double)(m - m0) * 1e6 / (double)us;
    out->mib_s = (double)(by - by0) / MIB * 1e6 / (double)us;
    struct chrow row;
    if (chan_stats(&da, "bench-b", channel, &row, NULL) == 0)
        out->conns = row.conns;
    for (int i = 0; i < n_senders; i++)
        partisan_close(bc[i].c);
}

/* ============================================================== section 3 */

struct mono_rx {
    partisan_client *c;
    atomic_int go;            /* the sender started */
    atomic_int sender_done;
    int sleep_ms;             /* not reading for this long once the sender started */
    long msgs, bytes, order_violations, undecodable, extra_after_complete;
    int last[MONO_KEYS];
    int newest_keys;          /* keys whose final value is the newest version */
    uint64_t drained_ms;      /* from the start of the drain to the last message */
    char err[200];
};

static void *mono_rx_main(void *arg)
{
    struct mono_rx *r = arg;
    for (int k = 0; k < MONO_KEYS; k++)
        r->last[k] = -1;
    uint64_t t_go = now_us();
    while (!atomic_load(&r->go) && now_us() - t_go < 10000000)
        usleep(1000);
    usleep((useconds_t)r->sleep_ms * 1000);   /* the slow part: not reading */
    uint64_t drain0 = now_us(), last_msg = drain0, complete_at = 0;
    int complete = 0;
    for (;;) {
        uint64_t now = now_us();
        if (now - drain0 > 40000000)
            break;                                   /* hard bound */
        if (complete && now - complete_at > 300000)
            break;                                   /* done, and nothing more came */
        if (atomic_load(&r->sender_done) && now - last_msg > 3000000)
            break;                                   /* the rest is not coming */
        struct partisan_message *m = NULL;
        int rc = partisan_recv(r->c, &m, 100);
        if (rc == PARTISAN_ETIMEDOUT)
            continue;
        if (rc) {
            snprintf(r->err, sizeof r->err, "recv: %s", partisan_strerror(rc));
            break;
        }
        if (m->kind != PARTISAN_MSG_DATA) {
            partisan_message_free(m);
            continue;
        }
        last_msg = now_us();
        r->msgs++;
        r->bytes += (long)m->len;
        int k = -1, v = -1;
        char txt[32] = "";
        memcpy(txt, m->payload, m->len < sizeof txt - 1 ? m->len : sizeof txt - 1);
        if (sscanf(txt, "k=%d v=%d", &k, &v) != 2 || k < 0 || k >= MONO_KEYS) {
            r->undecodable++;
        } else {
            if (v <= r->last[k])
                r->order_violations++;
            else
                r->last[k] = v;
            if (complete)
                r->extra_after_complete++;
            if (!complete && v == MONO_VERSIONS - 1) {
                int n = 0;
                for (int i = 0; i < MONO_KEYS; i++)
                    n += r->last[i] == MONO_VERSIONS - 1;
                if (n == MONO_KEYS) {
                    complete = 1;
                    complete_at = last_msg;
                }
            }
        }
        partisan_message_free(m);
    }
    r->drained_ms = (last_msg - drain0) / 1000;
    r->newest_keys = 0;
    for (int k = 0; k < MONO_KEYS; k++)
        r->newest_keys += r->last[k] == MONO_VERSIONS - 1;
    return NULL;
}

struct mono_result {
    long sent, delivered, bytes, order_violations, extra;
    int newest_keys;
    uint64_t superseded, send_ms, drain_ms;
    bool sender_finished;
    char err[420];
};

struct mono_tx { partisan_client *c; const char *channel, *to; long sent; atomic_int done; char err[200]; };

static void *mono_tx_main(void *arg)
{
    struct mono_tx *s = arg;
    unsigned char msg[MONO_SIZE];
    memset(msg, '.', sizeof msg);
    for (int v = 0; v < MONO_VERSIONS; v++)
        for (int k = 0; k < MONO_KEYS; k++) {
            char key[16];
            int kl = snprintf(key, sizeof key, "k%04d", k);
            int n = snprintf((char *)msg, 32, "k=%04d v=%03d", k, v);
            msg[n] = ' ';
            struct partisan_send_opts o = { .channel = s->channel, .key = key, .key_len = (size_t)kl };
            int rc;
            while ((rc = partisan_send_with(s->c, "bench-b", s->to, msg, sizeof msg, &o)) == PARTISAN_EBUSY)
                usleep(1000);
            if (rc) {
                snprintf(s->err, sizeof s->err, "send %d/%d: %s (%s)", k, v, partisan_strerror(rc),
                         partisan_last_error(s->c));
                atomic_store(&s->done, 1);
                return NULL;
            }
            s->sent++;
        }
    int rc = partisan_flush(s->c, 20000);
    if (rc)
        snprintf(s->err, sizeof s->err, "flush: %s (%s)", partisan_strerror(rc), partisan_last_error(s->c));
    atomic_store(&s->done, 1);
    return NULL;
}

/* stop_b: instead of the receiver not reading, B's daemon is stopped
 * (SIGSTOP) for slow_ms once the sender starts: a slow peer or link, the
 * case where messages wait in A's channel queue. */
static void mono_run(const char *channel, const char *name, bool stop_b, struct mono_result *out)
{
    memset(out, 0, sizeof *out);
    struct chrow before, after;
    chan_stats(&da, "bench-b", channel, &before, NULL);
    static struct mono_rx r;
    memset(&r, 0, sizeof r);
    r.c = connect_or_die(&db, name);
    r.sleep_ms = stop_b ? 0 : slow_ms;
    struct mono_tx s = { .c = connect_or_die(&da, NULL), .channel = channel, .to = name };
    /* The receiver is registered before the first send (register waits for
     * the daemon's reply; B's own table is all a remote send needs). */
    pthread_t rt, st;
    pthread_create(&rt, NULL, mono_rx_main, &r);
    if (stop_b)
        harness_daemon_signal(&db, SIGSTOP);
    uint64_t t0 = now_us();
    pthread_create(&st, NULL, mono_tx_main, &s);
    atomic_store(&r.go, 1);
    if (stop_b) {
        usleep((useconds_t)slow_ms * 1000);
        harness_daemon_signal(&db, SIGCONT);
    }
    uint64_t end = t0 + 25000000;
    while (!atomic_load(&s.done) && now_us() < end)
        usleep(2000);
    out->send_ms = (now_us() - t0) / 1000;
    out->sender_finished = atomic_load(&s.done) != 0;
    atomic_store(&r.sender_done, 1);
    if (out->sender_finished)
        join_or_park(st, 1000, "monotonic sender");
    else
        problem("%s%s: the sender was still sending after 25 s (%ld of %d sent)", channel,
                stop_b ? " (B stopped)" : "", s.sent, MONO_KEYS * MONO_VERSIONS);
    join_or_park(rt, 50000, "monotonic receiver");
    chan_stats(&da, "bench-b", channel, &after, NULL);
    out->sent = s.sent;
    out->delivered = r.msgs;
    out->bytes = r.bytes;
    out->order_violations = r.order_violations;
    out->extra = r.extra_after_complete;
    out->newest_keys = r.newest_keys;
    out->superseded = after.superseded - before.superseded;
    out->drain_ms = r.drained_ms;
    snprintf(out->err, sizeof out->err, "%s%s%s", s.err, s.err[0] && r.err[0] ? "; " : "", r.err);
    if (out->err[0])
        problem("monotonic run on %s: %s", channel, out->err);
    if (r.undecodable)
        problem("monotonic run on %s: %ld undecodable payloads", channel, r.undecodable);
    if (out->sender_finished)
        partisan_close(s.c);
    partisan_close(r.c);
}

/* ==================================================================== main */

static void print_ping_row(const char *label, double a, double b, double c, double d, double e, double f,
                           const char *fmt)
{
    printf("  %-14s", label);
    double v[6] = { a, b, c, d, e, f };
    for (int i = 0; i < 6; i++) {
        if (v[i] < 0)
            printf(" %14s", "-");
        else
            printf(fmt, v[i]);
    }
    printf("\n");
}

/* On any exit (an early exit(1) included) and on SIGINT/SIGTERM: every
 * process this program started that still runs is killed by its PID. */
static void kill_started(void)
{
    pid_t pids[6] = { da.pid, db.pid, fwd_pids[0], fwd_pids[1], fwd_pids[2], fwd_pids[3] };
    for (int i = 0; i < 6; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
}

static void on_signal(int sig)
{
    (void)sig;
    kill_started();
    _exit(1);
}

static void at_exit(void)
{
    kill_started();
    da.pid = db.pid = fwd_pids[0] = fwd_pids[1] = fwd_pids[2] = fwd_pids[3] = 0;
}

static size_t log_size(const struct daemon_proc *d)
{
    size_t len = 0;
    char *log = harness_slurp(d->log, &len);
    free(log);
    return log ? len : 0;
}

/* Prints the first few warning and error lines a daemon logged during the
 * run (its log's first `run_len` bytes), and counts those of its shutdown. */
static void print_log_warnings(const struct daemon_proc *d, size_t run_len)
{
    size_t len = 0;
    char *log = harness_slurp(d->log, &len);
    if (!log)
        return;
    int n = 0, shown = 0, at_stop = 0;
    for (char *line = log; line < log + len;) {
        char *nl = memchr(line, '\n', (size_t)(log + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(log + len - line);
        if (memmem(line, ll, "warn", 4) || memmem(line, ll, "error", 5)) {
            if ((size_t)(line - log) >= run_len) {
                at_stop++;
            } else {
                if (shown++ < 5)
                    printf("   %s: %.*s\n", d->name, (int)(ll > 300 ? 300 : ll), line);
                n++;
            }
        }
        line += ll + 1;
    }
    printf("   %s: %d warning/error line(s) during the run%s, %d while the daemons stopped\n", d->name, n,
           n > 5 ? " (first 5 above)" : "", at_stop);
    free(log);
}

/* $CHANNEL_BENCH_ONLY (e.g. "13"): run only those sections; for debugging. */
static bool want(int section)
{
    const char *only = getenv("CHANNEL_BENCH_ONLY");
    return !only || !*only || strchr(only, '0' + section);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    atexit(at_exit);
    setvbuf(stdout, NULL, _IOLBF, 0);
    secs = env_int("CHANNEL_BENCH_SECS", 3, 1, 10);
    if (argc > 1 && strcmp(argv[1], "--quick") == 0)
        secs = 1;
    n_senders = env_int("CHANNEL_BENCH_SENDERS", 4, 1, MAX_SENDERS);
    slow_ms = env_int("CHANNEL_BENCH_SLOW_MS", 1500, 0, 10000);
    lat = calloc(MAX_SAMPLES, sizeof *lat);
    uint64_t t_start = now_us();

    /* The baseline first, with nothing else running. */
    struct baseline_result base = { 0 };
    if (want(1) || want(2))
        run_baseline(&base);

    if (start_daemons() != 0) {
        harness_cleanup();
        return 1;
    }
    /* B's applications. */
    static struct echo_ctx echo;
    static struct sink_ctx sinks[MAX_SENDERS];
    echo.c = connect_or_die(&db, "echo");
    for (int i = 0; i < n_senders; i++) {
        snprintf(sinks[i].name, sizeof sinks[i].name, "sink%d", i);
        sinks[i].c = connect_or_die(&db, sinks[i].name);
    }
    pthread_t et, stt[MAX_SENDERS];
    pthread_create(&et, NULL, echo_main, &echo);
    for (int i = 0; i < n_senders; i++)
        pthread_create(&stt[i], NULL, sink_main, &sinks[i]);
    partisan_client *pinger = connect_or_die(&da, "pinger");

    /* Every channel answers (this also opens a connection of each). */
    static const char *chans[] = { "default", "bulk", "state", "bulk1", "bulk2" };
    for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++) {
        struct ping_result w = { 0 };
        ping_partisand(pinger, chans[i], 0, 20, &w);
        if (w.note[0] || w.timeouts) {
            fprintf(stderr, "channel_bench: channel %s does not answer: %s\n", chans[i], w.note);
            problem("warm-up on channel %s: %s (%ld timeouts)", chans[i], w.note, w.timeouts);
        }
    }

    /* 1. */
    struct rtt_results rtt = { 0 };
    if (want(1)) {
        rtt_under_bulk(pinger, &sinks[0], "default", NULL, &rtt.idle);
        rtt_under_bulk(pinger, &sinks[0], "default", "bulk", &rtt.own);
        rtt_under_bulk(pinger, &sinks[0], "default", "default", &rtt.shared);
    }
    const struct ping_result *pr[6] = { &rtt.idle, &rtt.own, &rtt.shared, &base.idle, &base.shared, &base.own };
    for (int i = 0; i < 6; i++)
        if (pr[i]->note[0])
            problem("rtt case %d: %s", i, pr[i]->note);

    /* 2. */
    struct tput_result tp[3] = { { 0 } };
    static const char *tchan[3] = { "bulk1", "bulk2", "bulk" };
    static const int tpar[3] = { 1, 2, 4 };
    for (int i = 0; i < 3 && want(2); i++)
        tput(sinks, tchan[i], &tp[i]);

    /* 3. */
    struct mono_result mono[3] = { { 0 } };
    if (want(3)) {
        mono_run("default", "mono-plain", false, &mono[0]);
        mono_run("state", "mono-state", false, &mono[1]);
        mono_run("state", "mono-stopped", true, &mono[2]);
    }

    /* 4. */
    long rss_a = proc_kib(da.pid, "VmRSS:"), rss_b = proc_kib(db.pid, "VmRSS:");
    long hwm_a = proc_kib(da.pid, "VmHWM:"), hwm_b = proc_kib(db.pid, "VmHWM:");
    struct chrow lost_row;
    uint64_t flow_waits = 0;
    long lost = 0;
    for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++)
        if (chan_stats(&da, "bench-b", chans[i], &lost_row, &flow_waits) == 0)
            lost += (long)lost_row.lost;

    atomic_store(&stop_all, 1);
    join_or_park(et, 5000, "echo");
    for (int i = 0; i < n_senders; i++)
        join_or_park(stt[i], 5000, "sink");
    if (echo.err[0])
        problem("%s", echo.err);
    for (int i = 0; i < n_senders; i++)
        if (sinks[i].err[0])
            problem("%s", sinks[i].err);
    partisan_close(pinger);
    partisan_close(echo.c);
    for (int i = 0; i < n_senders; i++)
        partisan_close(sinks[i].c);
    size_t log_a = log_size(&da), log_b = log_size(&db);
    int st_a = harness_daemon_stop(&da, T), st_b = harness_daemon_stop(&db, T);
    if (st_a != 0 || st_b != 0)
        problem("daemon exit status on SIGTERM: A %d, B %d (0 is a clean exit; -1 had to be killed)", st_a, st_b);
    for (int i = 0; i < n_stragglers; i++)
        if (!join_within(stragglers[i], 10000))
            problem("a thread is still blocked after the daemons stopped");

    /* ---- the table ---- */
    printf("channel_bench: named channels, two partisand on 127.0.0.1, %d s per case, at most %d samples\n\n",
           secs, MAX_SAMPLES);
    printf("1. RTT of 64 B messages (one outstanding, us) while an app on A streams 1 MiB messages to an app on B\n");
    printf("  %-14s %14s %14s %14s %14s %14s %14s\n", "", "idle", "bulk on", "bulk shares", "baseline", "baseline",
           "baseline, bulk");
    printf("  %-14s %14s %14s %14s %14s %14s %14s\n", "", "", "\"bulk\" (own)", "\"default\"", "idle", "shared TCP",
           "on own TCP");
    print_ping_row("p50", rtt.idle.p.p50, rtt.own.p.p50, rtt.shared.p.p50, base.idle.p.p50, base.shared.p.p50,
                   base.own.p.p50, " %14.0f");
    print_ping_row("p99", rtt.idle.p.p99, rtt.own.p.p99, rtt.shared.p.p99, base.idle.p.p99, base.shared.p.p99,
                   base.own.p.p99, " %14.0f");
    print_ping_row("p99.9", rtt.idle.p.p999, rtt.own.p.p999, rtt.shared.p.p999, base.idle.p.p999, base.shared.p.p999,
                   base.own.p.p999, " %14.0f");
    print_ping_row("samples", rtt.idle.p.n, rtt.own.p.n, rtt.shared.p.n, base.idle.p.n, base.shared.p.n, base.own.p.n,
                   " %14.0f");
    print_ping_row("timeouts(2s)", (double)rtt.idle.timeouts, (double)rtt.own.timeouts, (double)rtt.shared.timeouts,
                   (double)base.idle.timeouts, (double)base.shared.timeouts, (double)base.own.timeouts, " %14.0f");
    print_ping_row("bulk MiB/s", -1, rtt.own.bulk_mib_s, rtt.shared.bulk_mib_s, -1, base.shared.bulk_mib_s,
                   base.own.bulk_mib_s, " %14.1f");
    double ratio = rtt.idle.p.p99 > 0 ? rtt.own.p.p99 / rtt.idle.p.p99 : 0;
    printf("  p99 with bulk on its own channel / idle p99: %.2fx (target <= 2x)\n", ratio);
    printf("  p99 with bulk sharing \"default\" / idle p99: %.2fx; baseline shared / baseline idle: %.2fx\n",
           rtt.idle.p.p99 > 0 ? rtt.shared.p.p99 / rtt.idle.p.p99 : 0,
           base.idle.p.p99 > 0 ? base.shared.p.p99 / base.idle.p.p99 : 0);
    printf("  p99 with bulk on its own channel / baseline with bulk on its own connection: %.2fx\n",
           base.own.p.p99 > 0 ? rtt.own.p.p99 / base.own.p.p99 : 0);
    printf("  (baseline shared: pings and 1 MiB frames written whole, in order, into one app socket, so one TCP\n"
           "   connection; its streamer keeps at most %d MiB in flight, like partisand's default flow window)\n",
           BASE_WINDOW / MIB);
    printf("  (baseline, bulk on own TCP: the same stream through a second forwarder pair, its own unix sockets\n"
           "   and TCP connection; pings and stream share only the %ld CPUs: the floor CPU contention sets)\n",
           sysconf(_SC_NPROCESSORS_ONLN));

    printf("\n2. Throughput of 1 MiB messages A -> B: %d senders on A, each to its own receiver on B\n", n_senders);
    printf("  %-34s %12s %12s %14s %12s\n", "", "MiB/s", "msgs/s", "vs baseline", "A->B conns");
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof label, "\"%s\", parallelism %d", tchan[i], tpar[i]);
        printf("  %-34s %12.1f %12.1f %13.2fx %12u\n", label, tp[i].mib_s, tp[i].msgs_s,
               base.tput_mib_s > 0 ? tp[i].mib_s / base.tput_mib_s : 0, tp[i].conns);
    }
    printf("  %-34s %12.1f %12.1f %14s %12d\n", "baseline (1 sender, 1 TCP conn)", base.tput_mib_s, base.tput_msgs_s,
           "1.00x", 1);

    printf("\n3. Monotonic: %d keys x %d versions of %d B (key and version inside), partition key = the key\n",
           MONO_KEYS, MONO_VERSIONS, MONO_SIZE);
    printf("   slow receiver: the app on B reads nothing for the first %d ms, then drains;\n", slow_ms);
    printf("   slow peer (extra): B's daemon is stopped (SIGSTOP) for the first %d ms instead\n", slow_ms);
    printf("  %-34s %14s %14s %14s\n", "", "plain", "monotonic", "monotonic");
    printf("  %-34s %14s %14s %14s\n", "", "\"default\"", "\"state\"", "\"state\"");
    printf("  %-34s %14s %14s %14s\n", "", "slow receiver", "slow receiver", "slow peer");
#define MROW(label, fmt, field) \
    printf("  %-34s " fmt " " fmt " " fmt "\n", label, mono[0].field, mono[1].field, mono[2].field)
    MROW("sent by the app on A", "%14ld", sent);
    MROW("delivered to the receiver (msgs)", "%14ld", delivered);
    MROW("delivered to the receiver (bytes)", "%14ld", bytes);
    printf("  %-34s %14llu %14llu %14llu\n", "superseded on A (partisan_stats)",
           (unsigned long long)mono[0].superseded, (unsigned long long)mono[1].superseded,
           (unsigned long long)mono[2].superseded);
    printf("  %-34s %9d/%-4d %9d/%-4d %9d/%-4d\n", "keys whose final value is newest", mono[0].newest_keys,
           MONO_KEYS, mono[1].newest_keys, MONO_KEYS, mono[2].newest_keys, MONO_KEYS);
    MROW("older after newer (per key)", "%14ld", order_violations);
    MROW("more after all keys were newest", "%14ld", extra);
    printf("  %-34s %14llu %14llu %14llu\n", "sender's time to send all (ms)", (unsigned long long)mono[0].send_ms,
           (unsigned long long)mono[1].send_ms, (unsigned long long)mono[2].send_ms);
    printf("  %-34s %14llu %14llu %14llu\n", "receiver's drain time (ms)", (unsigned long long)mono[0].drain_ms,
           (unsigned long long)mono[1].drain_ms, (unsigned long long)mono[2].drain_ms);
#undef MROW
    for (int i = 1; i < 3; i++) {
        double save_m = mono[0].delivered ? 100.0 * (1.0 - (double)mono[i].delivered / (double)mono[0].delivered) : 0;
        double save_b = mono[0].bytes ? 100.0 * (1.0 - (double)mono[i].bytes / (double)mono[0].bytes) : 0;
        printf("  saving of monotonic (%s) over plain: %.1f%% of messages, %.1f%% of bytes delivered\n",
               i == 1 ? "slow receiver" : "slow peer", save_m, save_b);
    }

    printf("\n4. Daemon RSS after the run: A %ld KiB (peak %ld), B %ld KiB (peak %ld); baseline forwarders' peak RSS %ld, %ld KiB\n",
           rss_a, hwm_a, rss_b, hwm_b, base.fwd_rss_kib[0], base.fwd_rss_kib[1]);
    printf("   A's flow-control waits %llu; messages counted lost toward B %ld; total run %.1f s\n",
           (unsigned long long)flow_waits, lost, (double)(now_us() - t_start) / 1e6);
    printf("   daemons' log warnings (log.level warn):\n");
    print_log_warnings(&da, log_a);
    print_log_warnings(&db, log_b);
    if (problems[0])
        printf("\nproblems seen:\n%s", problems);
    harness_cleanup();
    return 0;
}
