/* reliable_bench: goodput of a reliable channel against injected loss, in
 * figures (never pass/fail on a number).
 *
 * Two real daemons A and B on 127.0.0.1 (test/integration/harness.c) with
 *   "channels": [{"name": "default"}, {"name": "plain"},
 *                {"name": "orders", "reliable": true}]
 * One application on A streams fixed-size messages (1 KiB) pipelined to one
 * application on B, which checks each (a sequence number and its own
 * checksum). Rows:
 *   - the raw chain (bench/baseline_forwarder: app -> unix -> forwarder ->
 *     TCP -> forwarder -> unix -> app, no protocol, batched 64 KiB writes);
 *   - the plain channel, no loss;
 *   - the reliable channel with `partisanctl fault drop --channel orders P`
 *     on A for P = 0, 1, 5 and 20 % (frames A sends on "orders" dropped;
 *     B's acks travel back untouched), cleared after each row.
 * Each row sends the same count (BENCH_N, 50,000; --quick: 2,000) and its
 * figure is the messages received on B divided by the time from the first
 * send to the last arrival. Beside it: A's retransmissions and injected
 * drops during the row, and whether every message arrived once in order.
 * Every wait is bounded: a row that stalls (nothing new for 15 s, or 120 s
 * in all) is reported as such. A row that lost, duplicated or reordered
 * messages is a correctness failure, not a figure: the bench says so and
 * exits 1, as echo_bench does for loss. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "partisan.h"

#define T 30000
#define MSG 1024
#define ROW_STALL_MS 15000
#define ROW_MAX_MS 120000

static uint32_t n_msgs = 50000;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- payloads: [0,4) FNV-1a of the rest, [4,8) row, [8,12) seq ---- */

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void make_payload(uint8_t *buf, uint32_t row, uint32_t seq)
{
    put32(buf + 4, row);
    put32(buf + 8, seq);
    for (size_t i = 12; i < MSG; i++)
        buf[i] = (uint8_t)(seq + i);
    put32(buf, fnv1a(buf + 4, MSG - 4));
}

/* ---- the receiving side: counts one row's messages, checks their order ---- */

struct tally {
    atomic_uint row;              /* the row being counted; others are ignored */
    atomic_uint got;              /* in-order arrivals of this row */
    atomic_uint bad;              /* duplicates, gaps (out of order) or corrupt payloads */
    atomic_uint next;             /* the seq expected next */
    atomic_ullong last_us;        /* when the last of this row arrived */
};

/* One message of n bytes; updates t. */
static void tally_one(struct tally *t, const uint8_t *p, size_t n)
{
    if (n != MSG || get32(p) != fnv1a(p + 4, MSG - 4)) {
        atomic_fetch_add(&t->bad, 1);
        return;
    }
    if (get32(p + 4) != atomic_load(&t->row))
        return;                    /* a warm-up or an earlier row's straggler */
    uint32_t seq = get32(p + 8);
    if (seq == atomic_load(&t->next)) {
        atomic_store(&t->next, seq + 1);
        atomic_fetch_add(&t->got, 1);
        atomic_store(&t->last_us, now_us());
    } else {
        atomic_fetch_add(&t->bad, 1);
        if (seq > atomic_load(&t->next))
            atomic_store(&t->next, seq + 1);   /* count a gap once, then go on */
    }
}

static void tally_reset(struct tally *t, uint32_t row)
{
    atomic_store(&t->got, 0);
    atomic_store(&t->bad, 0);
    atomic_store(&t->next, 0);
    atomic_store(&t->last_us, 0);
    atomic_store(&t->row, row);
}

struct rx {
    pthread_t th;
    partisan_client *c;           /* partisand mode */
    int fd;                       /* raw mode */
    struct tally t;
    atomic_int stop;
};

static void *rx_partisan(void *arg)
{
    struct rx *r = arg;
    while (!atomic_load(&r->stop)) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(r->c, &m, 100);
        if (rc == PARTISAN_ETIMEDOUT)
            continue;
        if (rc != 0)
            break;
        if (m->kind == PARTISAN_MSG_DATA)
            tally_one(&r->t, m->payload, m->len);
        partisan_message_free(m);
    }
    return NULL;
}

static void *rx_raw(void *arg)
{
    struct rx *r = arg;
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    while (buf && !atomic_load(&r->stop)) {
        ssize_t got = read(r->fd, buf + len, cap - len);
        if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;              /* SO_RCVTIMEO: look at stop again */
        if (got <= 0)
            break;
        len += (size_t)got;
        size_t off = 0;
        while (len - off >= 4) {
            size_t n = get32(buf + off);
            if (n > cap - 4)
                goto out;          /* not our framing */
            if (len - off < 4 + n)
                break;
            tally_one(&r->t, buf + off + 4, n);
            off += 4 + n;
        }
        memmove(buf, buf + off, len - off);
        len -= off;
    }
out:
    free(buf);
    return NULL;
}

/* ---- one row ---- */

struct result {
    const char *label;
    int ran;                      /* 0: skipped (why) */
    const char *why;
    uint32_t got, bad;
    double secs, msgs_per_s, mib_per_s;
    uint64_t retransmitted, dropped;
    int stalled;
};

/* Waits for the row's n arrivals; stalled when nothing new came for
 * ROW_STALL_MS or ROW_MAX_MS passed. */
static void wait_row(struct tally *t, uint64_t t0, struct result *res)
{
    uint64_t start = harness_now_ms(), changed = start;
    unsigned last = 0;
    for (;;) {
        unsigned got = atomic_load(&t->got) + atomic_load(&t->bad);
        if (atomic_load(&t->got) >= n_msgs)
            break;
        uint64_t now = harness_now_ms();
        if (got != last) {
            last = got;
            changed = now;
        }
        if (now - changed >= ROW_STALL_MS || now - start >= ROW_MAX_MS) {
            res->stalled = 1;
            break;
        }
        usleep(2000);
    }
    usleep(50 * 1000);   /* a duplicate right after the last would show */
    res->ran = 1;
    res->got = atomic_load(&t->got);
    res->bad = atomic_load(&t->bad);
    uint64_t last_us = atomic_load(&t->last_us);
    res->secs = last_us > t0 ? (double)(last_us - t0) / 1e6 : 0;
    res->msgs_per_s = res->secs > 0 ? res->got / res->secs : 0;
    res->mib_per_s = res->msgs_per_s * MSG / (1024.0 * 1024.0);
}

/* ---- the raw chain ---- */

static int raw_connect(const char *path)
{
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
        if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
            struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            struct timeval wtv = { .tv_sec = T / 1000 };
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wtv, sizeof wtv);
            return fd;
        }
        close(fd);
        usleep(10000);
    }
    return -1;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

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
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static void run_raw(struct result *res)
{
    res->label = "raw chain (no protocol)";
    char fwd[600], sa[600], sb[600], pa[8], pb[8];
    snprintf(fwd, sizeof fwd, "%s/bench/baseline_forwarder", harness_bin_dir());
    if (access(fwd, X_OK) != 0) {
        res->why = "bench/baseline_forwarder is not built";
        return;
    }
    snprintf(sa, sizeof sa, "%s/rb-raw-a.sock", harness_tmpdir());
    snprintf(sb, sizeof sb, "%s/rb-raw-b.sock", harness_tmpdir());
    snprintf(pa, sizeof pa, "%u", free_port());
    snprintf(pb, sizeof pb, "%u", free_port());
    pid_t fb = spawn(fwd, sb, pb, NULL);
    usleep(100000);
    pid_t fa = spawn(fwd, sa, pa, pb);
    usleep(100000);
    static struct rx r;
    memset(&r, 0, sizeof r);
    r.fd = raw_connect(sb);
    int a = raw_connect(sa);
    if (r.fd < 0 || a < 0 || pthread_create(&r.th, NULL, rx_raw, &r) != 0) {
        res->why = "the forwarders did not take a connection";
        if (r.fd >= 0)
            close(r.fd);
        if (a >= 0)
            close(a);
        stop_pid(fa);
        stop_pid(fb);
        return;
    }
    usleep(100000);
    tally_reset(&r.t, 1);
    enum { CAP = 65536 };
    uint8_t *wbuf = malloc(CAP + 4 + MSG);
    size_t wlen = 0;
    uint64_t t0 = now_us();
    int ok = wbuf != NULL;
    for (uint32_t i = 0; ok && i < n_msgs; i++) {
        put32(wbuf + wlen, MSG);
        make_payload(wbuf + wlen + 4, 1, i);
        wlen += 4 + MSG;
        if (wlen >= CAP || i + 1 == n_msgs) {
            ok = write_all(a, wbuf, wlen) == 0;
            wlen = 0;
        }
    }
    if (ok)
        wait_row(&r.t, t0, res);
    else
        res->why = "a write to the forwarder failed";
    atomic_store(&r.stop, 1);
    pthread_join(r.th, NULL);
    free(wbuf);
    close(a);
    close(r.fd);
    stop_pid(fa);
    stop_pid(fb);
}

/* ---- partisand rows ---- */

static struct daemon_proc da, db;

static int stat_counters(const struct daemon_proc *d, uint64_t *retransmitted, uint64_t *dropped)
{
    *retransmitted = *dropped = 0;
    partisan_client *c = NULL;
    if (partisan_connect(d->socket, &c) != 0)
        return -1;
    struct partisan_stats *s = NULL;
    int rc = partisan_stats(c, &s, T);
    if (rc == 0) {
        *retransmitted = s->reliable_retransmitted;
        *dropped = s->fault_dropped;
        partisan_stats_free(s);
    }
    partisan_close(c);
    return rc;
}

static int ctl_ok(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
    char out[4096], err[4096];
    int rc = harness_ctl(&da, NULL, out, sizeof out, err, sizeof err, T, a1, a2, a3, a4, a5, (char *)NULL);
    if (rc != 0)
        fprintf(stderr, "reliable_bench: partisanctl %s %s %s %s %s: exit %d: %s%s\n", a1, a2 ? a2 : "",
                a3 ? a3 : "", a4 ? a4 : "", a5 ? a5 : "", rc, out, err);
    return rc;
}

/* One row: n_msgs messages on channel, with `loss` ("0.01") dropped on A, or none. */
static void run_row(partisan_client *tx, struct rx *r, uint32_t row, const char *channel, const char *loss,
                    const char *label, struct result *res)
{
    res->label = label;
    if (loss && ctl_ok("fault", "drop", "--channel", channel, loss) != 0) {
        res->why = "partisanctl fault drop failed";
        return;
    }
    uint64_t re0, dr0, re1, dr1;
    stat_counters(&da, &re0, &dr0);
    tally_reset(&r->t, row);
    const struct partisan_send_opts opts = { .channel = channel };
    static uint8_t buf[MSG];
    uint64_t t0 = now_us();
    int rc = 0;
    for (uint32_t i = 0; i < n_msgs && rc == 0; i++) {
        make_payload(buf, row, i);
        rc = partisan_send_with(tx, "rb-b", "sink", buf, MSG, &opts);
    }
    if (rc == 0)
        rc = partisan_flush(tx, ROW_MAX_MS);
    if (rc != 0) {
        fprintf(stderr, "reliable_bench: %s: %s (%s)\n", label, partisan_strerror(rc), partisan_last_error(tx));
        res->why = "a send or the flush failed";
        struct partisan_failure f;
        while (partisan_next_failure(tx, &f))
            ;
    }
    wait_row(&r->t, t0, res);
    stat_counters(&da, &re1, &dr1);
    res->retransmitted = re1 - re0;
    res->dropped = dr1 - dr0;
    if (loss)
        ctl_ok("fault", "clear", NULL, NULL, NULL);
}

/* Proves the path on channel: a warm-up batch (row 0), the last one
 * confirmed (reliable channels) or answered. 0, or -1. */
static int warm_up(partisan_client *tx, const char *channel, int confirm)
{
    static uint8_t buf[MSG];
    const struct partisan_send_opts opts = { .channel = channel };
    for (uint32_t i = 0; i < 200; i++) {
        make_payload(buf, 0, i);
        if (partisan_send_with(tx, "rb-b", "sink", buf, MSG, &opts) != 0)
            return -1;
    }
    make_payload(buf, 0, 200);
    const struct partisan_send_opts sync = { .channel = channel, .confirm = confirm };
    int rc = partisan_send_sync_with(tx, "rb-b", "sink", buf, MSG, &sync, T);
    if (rc != 0)
        fprintf(stderr, "reliable_bench: warm-up on %s: %s (%s)\n", channel, partisan_strerror(rc),
                partisan_last_error(tx));
    return rc == 0 ? 0 : -1;
}

static bool pair_up(void *arg)
{
    (void)arg;
    return harness_members_up(&da, T) == 2 && harness_members_up(&db, T) == 2;
}

#define CHANNELS "\"channels\": [{\"name\": \"default\"}, {\"name\": \"plain\"}, {\"name\": \"orders\", \"reliable\": true}]"

static int run_partisand(struct result *res, int *n_res)
{
    char extra[2048];
    snprintf(extra, sizeof extra, "\"log\": {\"level\": \"warn\"}, " CHANNELS);
    harness_daemon_init(&da, "rb-a", extra);
    if (harness_daemon_start(&da, T) != 0)
        return -1;
    snprintf(extra, sizeof extra, "\"log\": {\"level\": \"warn\"}, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}, " CHANNELS,
             da.listen);
    harness_daemon_init(&db, "rb-b", extra);
    if (harness_daemon_start(&db, T) != 0) {
        harness_daemon_stop(&da, T);
        return -1;
    }
    int rc = -1;
    partisan_client *tx = NULL;
    static struct rx r;
    memset(&r, 0, sizeof r);
    bool thread = false;
    if (!harness_wait_until(pair_up, NULL, T)) {
        fprintf(stderr, "reliable_bench: the daemons did not see each other up within %d ms\n", T);
        goto out;
    }
    if (partisan_connect(db.socket, &r.c) != 0 || partisan_register(r.c, "sink", T) != 0 ||
        partisan_connect(da.socket, &tx) != 0) {
        fprintf(stderr, "reliable_bench: connect/register failed\n");
        goto out;
    }
    if (pthread_create(&r.th, NULL, rx_partisan, &r) != 0)
        goto out;
    thread = true;
    if (warm_up(tx, "plain", 0) != 0 || warm_up(tx, "orders", 1) != 0)
        goto out;
    static const struct { const char *channel, *loss, *label; } rows[] = {
        { "plain", NULL, "plain channel, no loss" },
        { "orders", NULL, "reliable, 0 % loss" },
        { "orders", "0.01", "reliable, 1 % loss" },
        { "orders", "0.05", "reliable, 5 % loss" },
        { "orders", "0.2", "reliable, 20 % loss" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        run_row(tx, &r, (uint32_t)(10 + i), rows[i].channel, rows[i].loss, rows[i].label, &res[(*n_res)++]);
    rc = 0;
out:
    if (thread) {
        atomic_store(&r.stop, 1);
        pthread_join(r.th, NULL);
    }
    partisan_close(tx);
    partisan_close(r.c);
    harness_daemon_stop(&da, T);
    harness_daemon_stop(&db, T);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            n_msgs = 2000;
    const char *env = getenv("BENCH_N");
    if (env && atol(env) > 0)
        n_msgs = (uint32_t)atol(env);

    struct result res[8];
    memset(res, 0, sizeof res);
    int n = 1;
    run_raw(&res[0]);
    if (run_partisand(res, &n) != 0) {
        printf("reliable_bench: the daemon pair did not start or did not carry a message (see above)\n");
        harness_cleanup();
        return 1;
    }
    printf("Reliable channel goodput against injected loss: 2 daemons on loopback, one pipelined sender, "
           "%d B messages, %u per row\n", MSG, n_msgs);
    printf("(loss: `partisanctl fault drop --channel orders P` on the sender's daemon; retrans. and dropped: "
           "its counters over the row)\n\n");
    printf("%-26s %11s %9s %9s %10s %9s  %s\n", "row", "msg/s", "MiB/s", "time s", "retrans.", "dropped",
           "arrived");
    int broken = 0;
    for (int i = 0; i < n; i++) {
        const struct result *x = &res[i];
        if (!x->ran) {
            printf("%-26s %11s %9s %9s %10s %9s  skipped: %s\n", x->label, "-", "-", "-", "-", "-",
                   x->why ? x->why : "?");
            continue;
        }
        char arrived[128];
        if (x->got == n_msgs && !x->bad)
            snprintf(arrived, sizeof arrived, "all, once, in order");
        else
            snprintf(arrived, sizeof arrived, "%u of %u in order, %u out of order/duplicate/corrupt%s", x->got,
                     n_msgs, x->bad, x->stalled ? ", STALLED" : "");
        char re[24] = "-", dr[24] = "-";
        if (i > 0) {
            snprintf(re, sizeof re, "%llu", (unsigned long long)x->retransmitted);
            snprintf(dr, sizeof dr, "%llu", (unsigned long long)x->dropped);
        }
        printf("%-26s %11.0f %9.1f %9.2f %10s %9s  %s%s%s\n", x->label, x->msgs_per_s, x->mib_per_s, x->secs, re,
               dr, arrived, x->why ? "; " : "", x->why ? x->why : "");
        if (x->got != n_msgs || x->bad || x->why)
            broken = 1;
    }
    if (broken)
        printf("\nreliable_bench: a row did not deliver every message exactly once in order (above); exiting 1\n");
    harness_cleanup();
    return broken;
}
