/* The data path of issue 12, against real daemons on 127.0.0.1: batching
 * at the source never reorders or loses (interleaved send, send_sync, recv
 * and flush on one handle; many handles at once), non-blocking mode toward
 * a stalled receiver (PARTISAN_EBUSY, then nothing lost once it reads),
 * per-send failure reports that name the right sends, and one-byte-at-a-
 * time reads through the real frame reader on both sides: a raw client
 * dribbling frames into the daemon, and a fake daemon dribbling frames into
 * the real client library.
 *
 * HARNESS_ONLY=<test name> runs one test; KEEP_TMP=1 keeps the daemons'
 * directories. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "ipc.pb-c.h"
#include "partisan.h"

#define T 10000

static struct daemon_proc nodes[2];

/* TLS section per node (n1, n2) when set: certificates under this dir. */
static const char *tls_dir;

static void make_extra(char *buf, size_t cap, const char *seed, const char *transport_extra, const char *node)
{
    char seeds[400] = "", tls[2048] = "";
    if (seed)
        snprintf(seeds, sizeof seeds, ", \"seeds\": [\"%s\"]", seed);
    if (tls_dir)
        snprintf(tls, sizeof tls, ", \"tls\": {\"ca_file\": \"%s/ca.crt\", \"cert_file\": \"%s/%s.crt\", "
                 "\"key_file\": \"%s/%s.key\"}", tls_dir, tls_dir, node, tls_dir, node);
    snprintf(buf, cap,
             "\"overlay\": {\"gossip_interval_ms\": 200}, "
             "\"failure_detector\": {\"ping_interval_ms\": 200, \"timeout_ms\": 2000}, "
             "\"transport\": {\"backoff_initial_ms\": 50, \"backoff_max_ms\": 500, \"connect_timeout_ms\": 1000%s}, "
             "\"cluster\": {\"name\": \"test\"%s}%s",
             transport_extra ? transport_extra : "", seeds, tls);
}

static bool pair_up(void *arg)
{
    (void)arg;
    return harness_members_up(&nodes[0], T) == 2 && harness_members_up(&nodes[1], T) == 2;
}

static void stop_pair(void);

static int start_pair(const char *transport_extra)
{
    stop_pair();   /* what a failed test left running */
    char extra[4096];
    make_extra(extra, sizeof extra, NULL, transport_extra, "n1");
    harness_daemon_init(&nodes[0], "n1", extra);
    if (harness_daemon_start(&nodes[0], T) != 0)
        return -1;
    make_extra(extra, sizeof extra, nodes[0].listen, transport_extra, "n2");
    harness_daemon_init(&nodes[1], "n2", extra);
    if (harness_daemon_start(&nodes[1], T) != 0)
        return -1;
    return harness_wait_until(pair_up, NULL, 15000) ? 0 : -1;
}

static void stop_pair(void)
{
    for (int i = 0; i < 2; i++)
        if (nodes[i].pid > 0) {
            harness_daemon_stop(&nodes[i], T);
            nodes[i].pid = 0;
        }
}

/* A registered name is known to the daemon before register returns, but a
 * remote sender only knows the receiver is there once a message went through:
 * send probes until one arrives, then drain whatever probes are left. */
static int path_ready(partisan_client *tx, const char *node, const char *name, partisan_client *rx)
{
    uint64_t until = harness_now_ms() + T;
    while (harness_now_ms() < until) {
        if (partisan_send_sync(tx, node, name, "probe", 5, T) != 0)
            return -1;
        struct partisan_message *m = NULL;
        if (partisan_recv(rx, &m, 200) == 0) {
            partisan_message_free(m);
            while (partisan_recv(rx, &m, 100) == 0)
                partisan_message_free(m);
            return 0;
        }
    }
    return -1;
}

/* "seq <n>" followed by filler up to len bytes: order is read back from it. */
static size_t numbered(char *buf, size_t len, unsigned long n)
{
    int w = snprintf(buf, len, "seq %lu ", n);
    for (size_t i = (size_t)w; i < len; i++)
        buf[i] = (char)('a' + i % 26);
    return len > (size_t)w ? len : (size_t)w;
}

static long seq_of(const struct partisan_message *m)
{
    if (m->len < 5 || memcmp(m->payload, "seq ", 4) != 0)
        return -1;
    return atol((const char *)m->payload + 4);
}

/* --- batching keeps order: send, send_sync, recv and flush interleaved --- */

/* A receiver in a process of its own, so that the sender may block (flow
 * control, a flush) without waiting on its own thread. It registers `name`,
 * says "ready" on the pipe, reads `n` numbered messages, and writes a line
 * with what it saw; exits 0 when all came in order. */
static pid_t spawn_reader(const char *socket_path, const char *name, unsigned long n, int *rfd)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(p[1]);
        *rfd = p[0];
        return pid;
    }
    close(p[0]);
    alarm(60);
    partisan_client *rx = NULL;
    if (partisan_connect(socket_path, &rx) != 0 || partisan_register(rx, name, T) != 0)
        _exit(2);
    if (write(p[1], "ready\n", 6) != 6)
        _exit(2);
    unsigned long next = 0;
    char line[200] = "";
    while (next < n) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(rx, &m, T);
        if (rc != 0) {
            snprintf(line, sizeof line, "recv after %lu messages: %s\n", next, partisan_strerror(rc));
            break;
        }
        long s = seq_of(m);
        partisan_message_free(m);
        if (s != (long)next) {
            snprintf(line, sizeof line, "message %ld arrived where %lu was due\n", s, next);
            break;
        }
        next++;
    }
    if (next == n)
        snprintf(line, sizeof line, "all %lu in order\n", n);
    if (write(p[1], line, strlen(line)) < 0)
        _exit(3);
    partisan_close(rx);
    _exit(next == n ? 0 : 1);
}

/* Reads a line from the reader's pipe, waiting at most timeout_ms. */
static bool read_line(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t have = 0;
    uint64_t until = harness_now_ms() + (uint64_t)timeout_ms;
    while (have + 1 < len && harness_now_ms() < until) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf + have, 1);
        if (r <= 0)
            break;
        if (buf[have++] == '\n')
            break;
    }
    buf[have] = '\0';
    return have > 0 && buf[have - 1] == '\n';
}

static void test_interleaved_calls_keep_order(void)
{
    CHECK(start_pair(NULL) == 0, "pair did not come up");
    enum { N = 3000 };
    int rfd = -1;
    pid_t reader = spawn_reader(nodes[1].socket, "sink", N, &rfd);
    CHECK(reader > 0, "fork");
    char line[256];
    CHECK(read_line(rfd, line, sizeof line, T) && strcmp(line, "ready\n") == 0, "reader not ready: %s", line);
    partisan_client *tx = NULL;
    CHECK(partisan_connect(nodes[0].socket, &tx) == 0, "connect");
    CHECK(partisan_register(tx, "echo-back", T) == 0, "register");

    /* Sizes from tiny to larger than a batch, so that some sends go at once,
     * some join a batch and some push one out by size. */
    static const size_t sizes[] = { 16, 64, 200, 1024, 9000, 70000 };
    static char buf[80000];
    int rc = 0;
    for (unsigned long i = 0; i < N && rc == 0; i++) {
        size_t len = numbered(buf, sizes[i % 6], i);
        switch (i % 97) {
        case 13: rc = partisan_send_sync(tx, "n2", "sink", buf, len, T); break;
        case 41: rc = partisan_flush(tx, T); if (rc == 0) rc = partisan_send(tx, "n2", "sink", buf, len); break;
        default: rc = partisan_send(tx, "n2", "sink", buf, len); break;
        }
        if (rc) {
            fprintf(stderr, "  send %lu: %s (%s)\n", i, partisan_strerror(rc), partisan_last_error(tx));
            break;
        }
        if (i % 53 == 7) {
            /* A recv on the sending handle, waited for while its remote
             * sends may be pending: a local message to itself. */
            rc = partisan_send(tx, "n1", "echo-back", "self", 4);
            struct partisan_message *m = NULL;
            if (rc == 0)
                rc = partisan_recv(tx, &m, T);
            if (rc == 0 && (m->len != 4 || memcmp(m->payload, "self", 4) != 0))
                rc = -100;
            partisan_message_free(m);
            if (rc)
                fprintf(stderr, "  self message at %lu: %d\n", i, rc);
        }
    }
    int frc = rc == 0 ? partisan_flush(tx, T) : 0;
    struct partisan_failure f = { 0 };
    int failed = partisan_next_failure(tx, &f);
    bool reported = read_line(rfd, line, sizeof line, 3 * T);
    int exit_code = harness_wait_exit(reader, T);
    close(rfd);
    partisan_close(tx);
    stop_pair();
    CHECK(rc == 0, "a send failed");
    CHECK(frc == 0, "flush: %s", partisan_strerror(frc));
    CHECK(!failed, "a failure report for seq %llu: %s", (unsigned long long)f.seq, f.message);
    CHECK(reported && exit_code == 0, "reader (exit %d): %s", exit_code, line);
}

/* --- a stream over TLS peer links --- */

static int make_certs(const char *dir)
{
    char script[4096];
    snprintf(script, sizeof script,
             "set -e; mkdir -p '%s'; cd '%s'\n"
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=ca "
             "-keyout ca.key -out ca.crt 2>/dev/null\n"
             "for n in n1 n2; do\n"
             "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$n "
             "-keyout $n.key -out $n.csr 2>/dev/null\n"
             "  printf 'subjectAltName=DNS:%%s\\nbasicConstraints=critical,CA:FALSE\\n"
             "extendedKeyUsage=serverAuth,clientAuth\\n' $n > $n.ext\n"
             "  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -extfile $n.ext "
             "-out $n.crt 2>/dev/null\n"
             "done\n", dir, dir);
    char *argv[] = { "sh", "-c", script, NULL };
    char out[256], err[1024];
    return harness_exec(argv, NULL, out, sizeof out, err, sizeof err, 30000);
}

/* Batched frames through the TLS bufferevents arrive whole and in order
 * (a stream of small frames once reached the peer with bad checksums). */
static void test_stream_over_tls(void)
{
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/certs", harness_tmpdir());
    CHECK(make_certs(dir) == 0, "openssl could not make certificates");
    tls_dir = dir;
    int up = start_pair(NULL);
    tls_dir = NULL;
    CHECK(up == 0, "TLS pair did not come up");
    enum { N = 30000 };
    int rfd = -1;
    pid_t reader = spawn_reader(nodes[1].socket, "sink", N, &rfd);
    CHECK(reader > 0, "fork");
    char line[256];
    CHECK(read_line(rfd, line, sizeof line, T) && strcmp(line, "ready\n") == 0, "reader not ready: %s", line);
    partisan_client *tx = NULL;
    CHECK(partisan_connect(nodes[0].socket, &tx) == 0, "connect");
    char buf[1100];
    int rc = 0;
    for (unsigned long i = 0; i < N && rc == 0; i++)
        rc = partisan_send(tx, "n2", "sink", buf, numbered(buf, i % 7 ? 64 : 1024, i));
    int frc = rc == 0 ? partisan_flush(tx, T) : rc;
    bool reported = read_line(rfd, line, sizeof line, 3 * T);
    int exit_code = harness_wait_exit(reader, T);
    close(rfd);
    partisan_close(tx);
    int bad = harness_file_contains(nodes[1].log, "bad checksum");
    stop_pair();
    CHECK(rc == 0 && frc == 0, "send or flush: %s", partisan_strerror(rc ? rc : frc));
    CHECK(bad == 0, "n2 saw frames with a bad checksum");
    CHECK(reported && exit_code == 0, "reader (exit %d): %s", exit_code, line);
}

/* --- many handles at once: each sender's order holds, nothing is lost --- */

static void test_many_handles_at_once(void)
{
    CHECK(start_pair(NULL) == 0, "pair did not come up");
    enum { H = 8, PER = 4000 };
    partisan_client *tx[H] = { 0 }, *rx[H] = { 0 };
    char names[H][16];
    for (int h = 0; h < H; h++) {
        snprintf(names[h], sizeof names[h], "rx%d", h);
        CHECK(partisan_connect(nodes[0].socket, &tx[h]) == 0 && partisan_connect(nodes[1].socket, &rx[h]) == 0,
              "connect %d", h);
        CHECK(partisan_register(rx[h], names[h], T) == 0, "register %s", names[h]);
        CHECK(path_ready(tx[h], "n2", names[h], rx[h]) == 0, "n2/%s never reachable", names[h]);
    }
    /* Every sender writes to every receiver, round robin over handles, so
     * each handle's batches interleave with the others' at the daemon. */
    /* Sender h sends its i-th to receiver (h + i) % H, so receiver r sees
     * from h the i with i = r - h (mod H), then every H-th. */
    long next[H][H];
    for (int r = 0; r < H; r++)
        for (int h = 0; h < H; h++)
            next[r][h] = (r - h + H) % H;
    char buf[256];
    long got = 0;
    for (unsigned long i = 0; i < PER; i++) {
        for (int h = 0; h < H; h++) {
            int w = snprintf(buf, sizeof buf, "seq %lu from %d", i, h);
            int rc = partisan_send(tx[h], "n2", names[(h + i) % H], buf, (size_t)w + (i % 100));
            CHECK(rc == 0, "handle %d send %lu: %s", h, i, partisan_strerror(rc));
        }
        if (i % 500 == 499)
            for (int r = 0; r < H; r++) {
                struct partisan_message *m = NULL;
                while (partisan_recv(rx[r], &m, 0) == 0) {
                    unsigned long s;
                    int from;
                    CHECK(sscanf((const char *)m->payload, "seq %lu from %d", &s, &from) == 2 && from >= 0 && from < H,
                          "bad message");
                    CHECK((long)s == next[r][from], "rx%d: %lu from %d where %ld was due", r, s, from, next[r][from]);
                    next[r][from] += H;
                    got++;
                    partisan_message_free(m);
                }
            }
    }
    for (int h = 0; h < H; h++)
        CHECK(partisan_flush(tx[h], T) == 0, "flush %d: %s", h, partisan_last_error(tx[h]));
    uint64_t until = harness_now_ms() + T;
    while (got < (long)H * PER && harness_now_ms() < until) {
        for (int r = 0; r < H; r++) {
            struct partisan_message *m = NULL;
            while (partisan_recv(rx[r], &m, 10) == 0) {
                unsigned long s;
                int from;
                CHECK(sscanf((const char *)m->payload, "seq %lu from %d", &s, &from) == 2 && from >= 0 && from < H,
                      "bad message");
                CHECK((long)s == next[r][from], "rx%d: %lu from %d where %ld was due", r, s, from, next[r][from]);
                next[r][from] += H;
                got++;
                partisan_message_free(m);
            }
        }
    }
    CHECK(got == (long)H * PER, "%ld of %d messages arrived", got, H * PER);
    for (int h = 0; h < H; h++) {
        partisan_close(tx[h]);
        partisan_close(rx[h]);
    }
    stop_pair();
}

/* --- non-blocking mode toward a stalled receiver --- */

static void test_nonblocking_stalled_receiver(void)
{
    /* A small window, so the stalled receiver's backpressure reaches the
     * sender's socket quickly. */
    CHECK(start_pair(", \"window_bytes\": 65536") == 0, "pair did not come up");
    partisan_client *tx = NULL, *rx = NULL;
    CHECK(partisan_connect(nodes[0].socket, &tx) == 0 && partisan_connect(nodes[1].socket, &rx) == 0, "connect");
    CHECK(partisan_register(rx, "slow", T) == 0, "register");
    CHECK(path_ready(tx, "n2", "slow", rx) == 0, "n2/slow never reachable");
    CHECK(partisan_set_nonblocking(tx, 1) == 0, "set_nonblocking");

    /* 24 MB: more than every buffer between the two applications can
     * hold (the sockets', TCP's on loopback, the daemons'), however the
     * kernel sizes them, so the sender must be refused at some point. */
    enum { N = 48000, SIZE = 512 };
    char buf[SIZE];
    unsigned long sent = 0, next_rx = 0, busy = 0;
    uint64_t slowest_us = 0, until = harness_now_ms() + 4 * T;
    bool reading = false;
    while ((sent < N || next_rx < N) && harness_now_ms() < until) {
        if (sent < N) {
            size_t len = numbered(buf, SIZE, sent);
            uint64_t t0 = harness_now_ms();
            int rc = partisan_send(tx, "n2", "slow", buf, len);
            uint64_t took = harness_now_ms() - t0;
            if (took > slowest_us)
                slowest_us = took;
            if (rc == 0) {
                sent++;
            } else {
                CHECK(rc == PARTISAN_EBUSY, "send %lu: %s (%s)", sent, partisan_strerror(rc), partisan_last_error(tx));
                busy++;
                /* The receiver starts reading once the sender has been
                 * refused a while: until then nothing may move. */
                if (busy >= 50)
                    reading = true;
                struct pollfd p = { .fd = partisan_fd(tx), .events = POLLIN };
                if (partisan_wants_write(tx))
                    p.events |= POLLOUT;
                poll(&p, 1, reading ? 5 : 20);
                int frc = partisan_flush(tx, 0);
                CHECK(frc == 0 || frc == PARTISAN_ETIMEDOUT, "flush(0): %s", partisan_strerror(frc));
            }
        } else {
            partisan_flush(tx, 0);
        }
        if (reading) {
            struct partisan_message *m = NULL;
            while (partisan_recv(rx, &m, sent >= N ? 50 : 0) == 0) {
                long s = seq_of(m);
                CHECK(s == (long)next_rx, "message %ld arrived where %lu was due", s, next_rx);
                next_rx++;
                partisan_message_free(m);
            }
        }
    }
    printf("  %lu sends refused with EBUSY; slowest send %llu ms; %lu of %d received\n", busy,
           (unsigned long long)slowest_us, next_rx, N);
    CHECK(busy > 0, "the stalled receiver never made a send return EBUSY");
    CHECK(slowest_us < 1000, "a non-blocking send took %llu ms", (unsigned long long)slowest_us);
    CHECK(next_rx == N, "%lu of %d messages arrived", next_rx, N);
    partisan_set_nonblocking(tx, 0);
    CHECK(partisan_flush(tx, T) == 0, "flush: %s", partisan_last_error(tx));
    struct partisan_failure f;
    CHECK(partisan_next_failure(tx, &f) == 0, "failure for seq %llu: %s", (unsigned long long)f.seq, f.message);
    partisan_close(tx);
    partisan_close(rx);
    stop_pair();
}

/* --- per-send failure reports name the right sends --- */

static void test_failure_reports_name_sends(void)
{
    stop_pair();
    struct daemon_proc *d = &nodes[0];
    harness_daemon_init(d, "solo", "");
    CHECK(harness_daemon_start(d, T) == 0, "daemon did not start");
    partisan_client *c = NULL, *rx = NULL;
    CHECK(partisan_connect(d->socket, &c) == 0 && partisan_connect(d->socket, &rx) == 0, "connect");
    CHECK(partisan_register(rx, "here", T) == 0, "register");

    enum { N = 600 };
    uint64_t seqs[N];
    int want[N];
    struct partisan_send_opts bad_channel = { .channel = "no-such-channel" };
    for (int i = 0; i < N; i++) {
        int rc;
        switch (i % 7) {
        case 2: rc = partisan_send(c, "ghost", "here", "x", 1); want[i] = PARTISAN_ENONODE; break;
        case 4: rc = partisan_send(c, "solo", "nobody", "x", 1); want[i] = PARTISAN_ENONAME; break;
        case 5: rc = partisan_send_with(c, "solo", "here", "x", 1, &bad_channel); want[i] = PARTISAN_ENOCHANNEL; break;
        default: rc = partisan_send(c, "solo", "here", "ok", 2); want[i] = 0; break;
        }
        if (rc == PARTISAN_EASYNC) {
            /* A failure was read while sending: take the reports now, as an
             * application would, and send this one again. */
            i--;
            continue;
        }
        CHECK(rc == 0, "send %d: %s", i, partisan_strerror(rc));
        seqs[i] = partisan_last_seq(c);
        CHECK(i == 0 || seqs[i] > seqs[i - 1], "sequence numbers do not increase");
    }
    int rc = partisan_flush(c, T);
    CHECK(rc != 0 && rc != PARTISAN_ETIMEDOUT, "flush did not report the failures: %s", partisan_strerror(rc));
    struct partisan_failure f;
    int failures = 0, k = 0;
    while (partisan_next_failure(c, &f)) {
        while (k < N && seqs[k] != f.seq)
            CHECK(want[k++] == 0, "send %d (seq %llu) failed silently", k - 1, (unsigned long long)seqs[k - 1]);
        CHECK(k < N, "a failure report for seq %llu, which no send had", (unsigned long long)f.seq);
        CHECK(f.code == want[k], "seq %llu: %s, expected %s", (unsigned long long)f.seq,
              partisan_strerror(f.code), partisan_strerror(want[k]));
        CHECK(f.message[0], "no message in the report");
        failures++;
        k++;
    }
    for (; k < N; k++)
        CHECK(want[k] == 0, "send %d failed but was not reported", k);
    int expected = 0;
    for (int i = 0; i < N; i++)
        expected += want[i] != 0;
    CHECK(failures == expected, "%d failure reports, expected %d", failures, expected);
    CHECK(partisan_flush(c, T) == 0, "a second flush reported again");
    CHECK(partisan_send_sync(c, "solo", "here", "sync", 4, T) == 0, "send_sync after the reports");
    partisan_close(c);
    partisan_close(rx);
    stop_pair();
}

/* --- one byte at a time into the daemon --- */

static void set_sun(struct sockaddr_un *sun, const char *path)
{
    size_t n = strlen(path);
    if (n >= sizeof sun->sun_path)
        n = sizeof sun->sun_path - 1;   /* harness paths are short; a cut one fails to connect */
    memcpy(sun->sun_path, path, n);
    sun->sun_path[n] = '\0';
}

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    set_sun(&sun, path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static size_t put_request(uint8_t *out, Partisan__Ipc__IpcRequest *q, const char *payload)
{
    size_t n = partisan__ipc__ipc_request__get_packed_size(q), p = strlen(payload);
    uint8_t *e = out + frame_env_offset(FRAME_KIND_IPC);
    partisan__ipc__ipc_request__pack(q, e);
    memcpy(e + n, payload, p);
    frame_seal(FRAME_KIND_IPC, out, n, p);
    return frame_size(FRAME_KIND_IPC, n, p);
}

/* Reads frames from fd until `want` server messages came, the Reply to
 * stop_id came, or T ms passed. */
static int read_server_msgs(int fd, Partisan__Ipc__IpcServerMsg **msgs, char payloads[][64], int want,
                            uint64_t stop_id)
{
    bool stop = false;
    static uint8_t buf[65536];
    size_t have = 0, off = 0;
    int got = 0;
    uint64_t until = harness_now_ms() + T;
    while (got < want && !stop && harness_now_ms() < until) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
        struct frame f;
        while (got < want && frame_next(FRAME_KIND_IPC, buf + off, have - off, sizeof buf, &f) == FRAME_OK) {
            msgs[got] = partisan__ipc__ipc_server_msg__unpack(NULL, f.env_len, f.env);
            snprintf(payloads[got], 64, "%.*s", (int)f.payload_len, f.payload ? (const char *)f.payload : "");
            if (msgs[got] && msgs[got]->body_case == PARTISAN__IPC__IPC_SERVER_MSG__BODY_REPLY &&
                msgs[got]->reply->id == stop_id)
                stop = true;
            got++;
            off += f.size;
        }
    }
    return got;
}

static void test_daemon_reads_one_byte_at_a_time(void)
{
    stop_pair();
    struct daemon_proc *d = &nodes[0];
    harness_daemon_init(d, "dribble", "");
    CHECK(harness_daemon_start(d, T) == 0, "daemon did not start");
    int fd = raw_connect(d->socket);
    CHECK(fd >= 0, "raw connect");

    uint8_t stream[4096];
    size_t len = 0;
    Partisan__Ipc__IpcRequest q = PARTISAN__IPC__IPC_REQUEST__INIT;
    Partisan__Ipc__RegisterRequest reg = PARTISAN__IPC__REGISTER_REQUEST__INIT;
    reg.name = "self";
    q.id = 1;
    q.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_REGISTER;
    q.register_ = &reg;
    len += put_request(stream + len, &q, "");
    Partisan__Ipc__SendRequest s = PARTISAN__IPC__SEND_REQUEST__INIT;
    s.node = "dribble";
    s.name = "self";
    q.id = 2;
    q.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SEND;
    q.send = &s;
    len += put_request(stream + len, &q, "raw payload, after the envelope");
    /* A sender that cannot split frames: the payload in field 3. */
    s.payload.data = (uint8_t *)"in field 3";
    s.payload.len = 10;
    q.id = 3;
    len += put_request(stream + len, &q, "");
    Partisan__Ipc__StatusRequest st = PARTISAN__IPC__STATUS_REQUEST__INIT;
    q.id = 4;
    q.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_STATUS;
    q.status = &st;
    len += put_request(stream + len, &q, "");

    /* One byte per write, each given time to be read on its own. */
    for (size_t i = 0; i < len; i++) {
        CHECK(send(fd, stream + i, 1, MSG_NOSIGNAL) == 1, "write byte %zu", i);
        usleep(300);
    }
    Partisan__Ipc__IpcServerMsg *m[8] = { 0 };
    static char payloads[8][64];
    /* Reply(1), Deliver, Ack(2), Deliver, Ack(3), Reply(4); the acks may
     * be one (coalesced) if two frames were read in one go. */
    int got = read_server_msgs(fd, m, payloads, 8, 4);
    int replies = 0, delivers = 0;
    uint64_t acked = 0;
    for (int i = 0; i < got; i++) {
        CHECK(m[i], "undecodable message %d", i);
        switch (m[i]->body_case) {
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_REPLY:
            CHECK(m[i]->reply->code == 0, "reply %llu: %s", (unsigned long long)m[i]->reply->id, m[i]->reply->error);
            CHECK(m[i]->reply->id == (replies ? 4u : 1u), "reply for id %llu", (unsigned long long)m[i]->reply->id);
            if (m[i]->reply->id == 4)
                CHECK(m[i]->reply->result_case == PARTISAN__IPC__REPLY__RESULT_STATUS, "status reply without status");
            replies++;
            break;
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_DELIVER:
            CHECK(strcmp(payloads[i], delivers ? "in field 3" : "raw payload, after the envelope") == 0,
                  "delivery %d: \"%s\"", delivers, payloads[i]);
            CHECK(m[i]->deliver->payload.len == 0, "the daemon put a payload in Deliver's field 3");
            delivers++;
            break;
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_ACK:
            CHECK(m[i]->ack->through_id > acked, "acks go backwards");
            acked = m[i]->ack->through_id;
            break;
        default:
            CHECK(0, "unexpected message kind %d", m[i]->body_case);
        }
    }
    for (int i = 0; i < got; i++)
        partisan__ipc__ipc_server_msg__free_unpacked(m[i], NULL);
    CHECK(replies == 2 && delivers == 2 && acked == 3, "%d replies, %d deliveries, acked through %llu (%d messages)",
          replies, delivers, (unsigned long long)acked, got);
    close(fd);
    stop_pair();
}

/* --- one byte at a time into the client library --- */

static void dribble(int fd, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (send(fd, b + i, 1, MSG_NOSIGNAL) != 1)
            _exit(3);
        usleep(200);
    }
}

static size_t put_server_msg(uint8_t *out, Partisan__Ipc__IpcServerMsg *m, const char *payload)
{
    size_t n = partisan__ipc__ipc_server_msg__get_packed_size(m), p = strlen(payload);
    uint8_t *e = out + frame_env_offset(FRAME_KIND_IPC);
    partisan__ipc__ipc_server_msg__pack(m, e);
    memcpy(e + n, payload, p);
    frame_seal(FRAME_KIND_IPC, out, n, p);
    return frame_size(FRAME_KIND_IPC, n, p);
}

/* Reads whole requests from fd into *req (one at a time); -1 on EOF. */
static int next_request(int fd, uint8_t *buf, size_t *have, Partisan__Ipc__IpcRequest **req, char *payload)
{
    for (;;) {
        struct frame f;
        if (frame_next(FRAME_KIND_IPC, buf, *have, 65536, &f) == FRAME_OK) {
            *req = partisan__ipc__ipc_request__unpack(NULL, f.env_len, f.env);
            snprintf(payload, 64, "%.*s", (int)f.payload_len, f.payload ? (const char *)f.payload : "");
            memmove(buf, buf + f.size, *have - f.size);
            *have -= f.size;
            return *req ? 0 : -1;
        }
        ssize_t r = recv(fd, buf + *have, 65536 - *have, 0);
        if (r <= 0)
            return -1;
        *have += (size_t)r;
    }
}

/* A fake daemon: answers status with a Status, each send with nothing but
 * an Ack (the second with a failure Reply), and pushes a delivery and an
 * event, every frame one byte at a time. */
static void fake_daemon(int lfd)
{
    alarm(30);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        _exit(2);
    static uint8_t in[65536], out[8192];
    size_t have = 0;
    char payload[64];
    Partisan__Ipc__IpcRequest *q = NULL;
    Partisan__Ipc__IpcServerMsg m = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    Partisan__Ipc__Reply r = PARTISAN__IPC__REPLY__INIT;
    /* status */
    if (next_request(fd, in, &have, &q, payload) != 0 || q->body_case != PARTISAN__IPC__IPC_REQUEST__BODY_STATUS)
        _exit(4);
    Partisan__Ipc__Status st = PARTISAN__IPC__STATUS__INIT;
    st.node = "fake";
    st.cluster = "c";
    st.overlay = "full_mesh";
    st.listen = st.socket = st.version = "";
    st.members = 7;
    r.id = q->id;
    r.result_case = PARTISAN__IPC__REPLY__RESULT_STATUS;
    r.status = &st;
    r.error = "";
    m.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_REPLY;
    m.reply = &r;
    size_t n = put_server_msg(out, &m, "");
    /* A delivery and an event pushed behind it, in the same dribble. */
    Partisan__Ipc__Deliver d = PARTISAN__IPC__DELIVER__INIT;
    d.from_node = "elsewhere";
    d.name = "inbox";
    d.channel = "";
    Partisan__Ipc__IpcServerMsg dm = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    dm.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_DELIVER;
    dm.deliver = &d;
    n += put_server_msg(out + n, &dm, "dribbled payload");
    Partisan__Ipc__MemberEvent ev = PARTISAN__IPC__MEMBER_EVENT__INIT;
    ev.kind = PARTISAN__IPC__MEMBER_EVENT__KIND__UP;
    ev.node = "elsewhere";
    ev.address = "127.0.0.1:1";
    Partisan__Ipc__IpcServerMsg em = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    em.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_EVENT;
    em.event = &ev;
    n += put_server_msg(out + n, &em, "");
    dribble(fd, out, n);
    partisan__ipc__ipc_request__free_unpacked(q, NULL);
    /* Three sends: ok, refused, ok; then a flush waits for the answers. */
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        if (next_request(fd, in, &have, &q, payload) != 0 || q->body_case != PARTISAN__IPC__IPC_REQUEST__BODY_SEND ||
            strcmp(payload, "send payload") != 0)
            _exit(5);
        ids[i] = q->id;
        partisan__ipc__ipc_request__free_unpacked(q, NULL);
    }
    Partisan__Ipc__Reply fail = PARTISAN__IPC__REPLY__INIT;
    fail.id = ids[1];
    fail.code = PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME;
    fail.error = "nothing registered under \"nobody\"";
    m.reply = &fail;
    n = put_server_msg(out, &m, "");
    Partisan__Ipc__Ack ack = PARTISAN__IPC__ACK__INIT;
    ack.through_id = ids[2];
    Partisan__Ipc__IpcServerMsg am = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    am.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_ACK;
    am.ack = &ack;
    n += put_server_msg(out + n, &am, "");
    dribble(fd, out, n);
    /* Stay until the client hangs up. */
    while (next_request(fd, in, &have, &q, payload) == 0)
        partisan__ipc__ipc_request__free_unpacked(q, NULL);
    _exit(0);
}

static void test_client_reads_one_byte_at_a_time(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/fake.sock", harness_tmpdir());
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    set_sun(&sun, path);
    CHECK(bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0 && listen(lfd, 4) == 0, "listen on %s", path);
    pid_t pid = fork();
    if (pid == 0)
        fake_daemon(lfd);
    close(lfd);
    partisan_client *c = NULL;
    int rc = partisan_connect(path, &c);
    if (rc == 0) {
        struct partisan_status *st = NULL;
        rc = partisan_status(c, &st, T);
        if (rc == 0) {
            bool ok = strcmp(st->node, "fake") == 0 && st->members == 7;
            partisan_status_free(st);
            if (!ok)
                rc = -100;
        }
    }
    struct partisan_message *m1 = NULL, *m2 = NULL;
    if (rc == 0)
        rc = partisan_recv(c, &m1, T);
    if (rc == 0)
        rc = partisan_recv(c, &m2, T);
    bool msgs_ok = m1 && m2 && m1->kind == PARTISAN_MSG_DATA && m1->len == 16 &&
                   memcmp(m1->payload, "dribbled payload", 16) == 0 && strcmp(m1->from_node, "elsewhere") == 0 &&
                   strcmp(m1->channel, "default") == 0 && m2->kind == PARTISAN_MSG_EVENT &&
                   m2->event == PARTISAN_EVENT_UP && strcmp(m2->node, "elsewhere") == 0;
    partisan_message_free(m1);
    partisan_message_free(m2);
    uint64_t seqs[3] = { 0 };
    for (int i = 0; rc == 0 && i < 3; i++) {
        rc = partisan_send(c, "fake", i == 1 ? "nobody" : "inbox", "send payload", 12);
        seqs[i] = partisan_last_seq(c);
    }
    int flush_rc = rc == 0 ? partisan_flush(c, T) : 0;
    struct partisan_failure f = { 0 };
    int have_fail = c ? partisan_next_failure(c, &f) : 0;
    int more_fail = c ? partisan_next_failure(c, &f) : 0;
    partisan_close(c);
    bool exited = harness_wait_exit(pid, T) == 0;
    CHECK(rc == 0, "status, recv or send through the dribbling daemon: %d (%s)", rc, partisan_strerror(rc));
    CHECK(msgs_ok, "the delivery or the event came out wrong");
    CHECK(flush_rc == PARTISAN_EASYNC || flush_rc == PARTISAN_ENONAME, "flush: %s", partisan_strerror(flush_rc));
    CHECK(have_fail == 1 && !more_fail, "failure reports: %d then %d", have_fail, more_fail);
    CHECK(f.seq == seqs[1], "the report names seq %llu, the refused send was %llu", (unsigned long long)f.seq,
          (unsigned long long)seqs[1]);
    CHECK(exited, "the fake daemon did not finish cleanly");
}

static void test_client_failure_seq_matches(void)
{
    /* The same dribbling daemon, checking the report's sequence number is
     * the refused send's. */
    char path[600];
    snprintf(path, sizeof path, "%s/fake2.sock", harness_tmpdir());
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    set_sun(&sun, path);
    CHECK(bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0 && listen(lfd, 4) == 0, "listen on %s", path);
    pid_t pid = fork();
    if (pid == 0)
        fake_daemon(lfd);
    close(lfd);
    partisan_client *c = NULL;
    CHECK(partisan_connect(path, &c) == 0, "connect");
    struct partisan_status *st = NULL;
    int rc = partisan_status(c, &st, T);
    partisan_status_free(st);
    struct partisan_message *m = NULL;
    for (int i = 0; rc == 0 && i < 2; i++) {
        rc = partisan_recv(c, &m, T);
        partisan_message_free(m);
    }
    uint64_t seqs[3] = { 0 };
    for (int i = 0; rc == 0 && i < 3; i++) {
        rc = partisan_send(c, "fake", "inbox", "send payload", 12);
        seqs[i] = partisan_last_seq(c);
    }
    if (rc == 0)
        partisan_flush(c, T);
    struct partisan_failure f = { 0 };
    int have = partisan_next_failure(c, &f);
    partisan_close(c);
    harness_wait_exit(pid, T);
    CHECK(rc == 0, "%s", partisan_strerror(rc));
    CHECK(have == 1 && f.seq == seqs[1] && f.code == PARTISAN_ENONAME, "report for seq %llu (%s), expected %llu",
          (unsigned long long)f.seq, partisan_strerror(f.code), (unsigned long long)seqs[1]);
    CHECK(strstr(f.message, "nobody"), "report message: %s", f.message);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    harness_run("interleaved_calls_keep_order", test_interleaved_calls_keep_order);
    harness_run("many_handles_at_once", test_many_handles_at_once);
    harness_run("stream_over_tls", test_stream_over_tls);
    harness_run("nonblocking_stalled_receiver", test_nonblocking_stalled_receiver);
    harness_run("failure_reports_name_sends", test_failure_reports_name_sends);
    harness_run("daemon_reads_one_byte_at_a_time", test_daemon_reads_one_byte_at_a_time);
    harness_run("client_reads_one_byte_at_a_time", test_client_reads_one_byte_at_a_time);
    harness_run("client_failure_seq_matches", test_client_failure_seq_matches);
    stop_pair();
    return harness_summary();
}
