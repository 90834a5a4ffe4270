/* make bench: partisand against a protocol-free baseline, same run, same
 * machine. Two daemons on loopback; app A sends to app B, which echoes.
 * Prints round-trip p50/p99 and one-way throughput for 64 B and 1 KiB
 * messages beside the raw chain (the baseline) measured in the same run in
 * both its modes, one write per message and batched writes; the same
 * figures from a second pair of daemons whose peer link is TLS 1.3
 * (certificates made with the openssl CLI); each daemon's RSS after the
 * run; 8 senders on one daemon to 8 receivers on the other, aggregate,
 * beside the one-sender figure; distributed Erlang's one-sender figure
 * when `erl` is installed (bench/erl_bench.sh); and a 64-node loopback
 * cluster's time to converge. Figures only: nothing here passes or fails on
 * a number. Every wait is bounded (T); a stalled run is reported, not
 * waited on for ever, and a run that lost messages says so and makes the
 * bench exit 1. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
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

/* ---- one endpoint: a partisan client or a raw framed unix socket ---- */

struct endpoint {
    partisan_client *c;          /* partisand mode */
    int fd;                      /* baseline mode */
    int batch;                   /* baseline: coalesce writes (else one write per message) */
    unsigned char *wbuf;
    size_t wlen;
    unsigned char *rbuf;
    size_t rlen, rcap;
    const char *peer_node;       /* where to send (partisand mode) */
    const char *peer_name;
};

static int raw_connect(const char *path)
{
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
        if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
            /* Bounded reads and writes without a poll per message. */
            struct timeval tv = { .tv_sec = T / 1000 };
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            return fd;
        }
        close(fd);
        usleep(10000);
    }
    return -1;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
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

static int ep_send(struct endpoint *e, const void *p, size_t n)
{
    if (e->c)
        return partisan_send(e->c, e->peer_node, e->peer_name, p, n);
    unsigned char hdr[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n };
    if (e->batch) {
        /* Batched: frames gather in a 64 KiB buffer, one write when full. */
        enum { CAP = 65536 };
        if (!e->wbuf)
            e->wbuf = malloc(CAP + 4 + 65536);
        memcpy(e->wbuf + e->wlen, hdr, 4);
        memcpy(e->wbuf + e->wlen + 4, p, n);
        e->wlen += 4 + n;
        if (e->wlen < CAP)
            return 0;
        int rc = write_all(e->fd, e->wbuf, e->wlen);
        e->wlen = 0;
        return rc;
    }
    /* One write per message. */
    unsigned char buf[4 + 65536];
    memcpy(buf, hdr, 4);
    memcpy(buf + 4, p, n);
    return write_all(e->fd, buf, n + 4);
}

/* What a batching raw sender does before it waits: everything out. (The
 * library needs no such call: a partisan_recv() writes what is pending.) */
static void ep_flush(struct endpoint *e)
{
    if (!e->c && e->wlen) {
        write_all(e->fd, e->wbuf, e->wlen);
        e->wlen = 0;
    }
}

/* Receives one message into out (up to cap); returns its length or -1. */
static long ep_recv(struct endpoint *e, void *out, size_t cap)
{
    if (e->c) {
        struct partisan_message *m = NULL;
        if (partisan_recv(e->c, &m, T) != 0)
            return -1;
        size_t n = m->len < cap ? m->len : cap;
        memcpy(out, m->payload, n);
        partisan_message_free(m);
        return (long)n;
    }
    for (;;) {
        if (e->rlen >= 4) {
            size_t n = (size_t)e->rbuf[0] << 24 | (size_t)e->rbuf[1] << 16 | (size_t)e->rbuf[2] << 8 | e->rbuf[3];
            if (e->rlen >= 4 + n) {
                memcpy(out, e->rbuf + 4, n < cap ? n : cap);
                memmove(e->rbuf, e->rbuf + 4 + n, e->rlen - 4 - n);
                e->rlen -= 4 + n;
                return (long)n;
            }
        }
        if (e->rcap - e->rlen < 65536) {
            e->rcap = e->rcap * 2 + 131072;
            e->rbuf = realloc(e->rbuf, e->rcap);
        }
        ssize_t r = read(e->fd, e->rbuf + e->rlen, e->rcap - e->rlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;          /* closed, failed, or nothing for T ms */
        e->rlen += (size_t)r;
    }
}

/* ---- the B side: echo "e..." messages, count "s..." messages ----
 * It exits when nothing arrives for T ms (ep_recv fails), and is killed by
 * its PID when the run ends. */

static void run_b(struct endpoint *e)
{
    unsigned char buf[65536];
    long count = 0;
    for (;;) {
        long n = ep_recv(e, buf, sizeof buf);
        if (n <= 0)
            _exit(0);
        if (buf[0] == 'e') {
            ep_send(e, buf, (size_t)n);
            if (e->c)
                partisan_flush(e->c, 0);   /* collect the reply, as a real app would */
        } else if (buf[0] == 'S') {           /* start of a throughput run */
            count = 0;
        } else if (buf[0] == 's') {
            count++;
        } else if (buf[0] == 'D') {           /* end: report how many arrived */
            char reply[32];
            int len = snprintf(reply, sizeof reply, "R%ld", count);
            ep_send(e, reply, (size_t)len);
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* rtt_n: round trips timed (fewer than asked if a reply did not come back
 * within T ms); tput_ok: the receiver's count came back. */
struct result { double p50_us, p99_us, msgs_per_s, mib_per_s; long lost; int rtt_n, tput_ok; double cpu_ns[2]; };

/* The daemons whose CPU time the one-way runs account per message (0: none). */
static pid_t cpu_pids[2];

/* user + system CPU time of pid so far, in ns (0 if unknown). */
static double cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (pid <= 0 || harness_read_file(path, buf, sizeof buf) <= 0)
        return 0;
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    /* Fields after the command: state is 3rd, utime 14th, stime 15th. */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e9 / (double)sysconf(_SC_CLK_TCK);
}

static struct result measure(struct endpoint *a, size_t size, int rtt_iters, int tput_msgs)
{
    struct result r = { 0 };
    unsigned char msg[65536], back[65536];
    memset(msg, 'x', size);
    uint64_t *lat = calloc((size_t)rtt_iters, sizeof *lat);
    msg[0] = 'e';
    int warm_ok = 1;
    for (int i = 0; i < rtt_iters / 10 && warm_ok; i++) {   /* warm-up */
        ep_send(a, msg, size);
        ep_flush(a);
        warm_ok = ep_recv(a, back, sizeof back) >= 0;
    }
    int done = 0;
    for (; warm_ok && done < rtt_iters; done++) {
        uint64_t t0 = now_us();
        ep_send(a, msg, size);
        ep_flush(a);
        if (ep_recv(a, back, sizeof back) < 0)
            break;
        lat[done] = now_us() - t0;
    }
    r.rtt_n = done;
    if (done > 0) {
        qsort(lat, (size_t)done, sizeof *lat, cmp_u64);
        r.p50_us = (double)lat[done / 2];
        r.p99_us = (double)lat[(size_t)done * 99 / 100];
    }
    free(lat);
    if (!warm_ok || done < rtt_iters) {
        r.lost = tput_msgs;
        return r;               /* the echo path is broken: no throughput run */
    }

    msg[0] = 'S';
    ep_send(a, msg, 1);
    ep_flush(a);
    msg[0] = 's';
    double cpu0[2] = { cpu_ns(cpu_pids[0]), cpu_ns(cpu_pids[1]) };
    uint64_t t0 = now_us();
    for (int i = 0; i < tput_msgs; i++)
        ep_send(a, msg, size);
    msg[0] = 'D';
    ep_send(a, msg, 1);
    ep_flush(a);
    long n = ep_recv(a, back, sizeof back - 1);
    uint64_t us = now_us() - t0;
    long got = 0;
    if (n > 1 && back[0] == 'R') {
        back[n] = 0;
        got = atol((char *)back + 1);
        r.tput_ok = 1;
    }
    r.lost = tput_msgs - got;
    for (int k = 0; k < 2; k++)
        r.cpu_ns[k] = got ? (cpu_ns(cpu_pids[k]) - cpu0[k]) / (double)got : 0;
    r.msgs_per_s = (double)got * 1e6 / (double)us;
    r.mib_per_s = r.msgs_per_s * (double)size / (1024.0 * 1024.0);
    return r;
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

#define SIZES 2
static const size_t sizes[SIZES] = { 64, 1024 };
static int rtt_iters = 20000, tput_msgs = 500000;

/* batch: the sender coalesces its one-way frames into 64 KiB writes (its
 * round trips are then few: they are the unbatched run's figure). */
static void run_baseline(struct result *out, int batch)
{
    const char *dir = harness_tmpdir();
    char fwd[600], sa[600], sb[600], pa[8], pb[8];
    snprintf(fwd, sizeof fwd, "%s/bench/baseline_forwarder", harness_bin_dir());
    snprintf(sa, sizeof sa, "%s/base-a.sock", dir);
    snprintf(sb, sizeof sb, "%s/base-b.sock", dir);
    snprintf(pa, sizeof pa, "%u", free_port());
    snprintf(pb, sizeof pb, "%u", free_port());
    pid_t fb = spawn(fwd, sb, pb, NULL);
    usleep(100000);
    pid_t fa = spawn(fwd, sa, pa, pb);
    usleep(100000);
    pid_t child = fork();
    if (child == 0) {
        struct endpoint b = { .fd = raw_connect(sb) };
        run_b(&b);
    }
    struct endpoint a = { .fd = raw_connect(sa), .batch = batch };
    usleep(100000);
    for (int i = 0; i < SIZES; i++)
        out[i] = measure(&a, sizes[i], batch ? rtt_iters / 20 : rtt_iters, tput_msgs);
    close(a.fd);
    free(a.rbuf);
    free(a.wbuf);
    stop_pid(child);
    stop_pid(fa);
    stop_pid(fb);
}

/* ---- 8 applications on A sending to 8 receivers on B ---- */

#define MANY 8

/* Reads one line from fd within timeout_ms; false on timeout or EOF. */
static int read_line_to(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t have = 0;
    uint64_t until = harness_now_ms() + (uint64_t)timeout_ms;
    while (have + 1 < len && harness_now_ms() < until) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (read(fd, buf + have, 1) != 1)
            break;
        if (buf[have++] == '\n')
            break;
    }
    buf[have] = '\0';
    return have > 0 && buf[have - 1] == '\n';
}

/* Receiver k: registers sink<k>, says "ready", counts 's' messages until
 * the 'D' that ends its sender's run, and writes "<count>". */
static void many_receiver(const char *sock, int k, int wfd)
{
    alarm(120);
    partisan_client *c = NULL;
    char name[16];
    snprintf(name, sizeof name, "sink%d", k);
    if (partisan_connect(sock, &c) != 0 || partisan_register(c, name, T) != 0)
        _exit(1);
    dprintf(wfd, "ready\n");
    long count = 0;
    for (;;) {
        struct partisan_message *m = NULL;
        if (partisan_recv(c, &m, T) != 0)
            break;                       /* nothing for T ms: report what came */
        char kind = m->len ? (char)m->payload[0] : 0;
        partisan_message_free(m);
        if (kind == 'D')
            break;
        count++;
    }
    dprintf(wfd, "%ld\n", count);
    _exit(0);
}

static void many_sender(const char *sock, const char *node, int k, size_t size, int n, int rfd)
{
    alarm(120);
    partisan_client *c = NULL;
    char name[16], go[8];
    snprintf(name, sizeof name, "sink%d", k);
    if (partisan_connect(sock, &c) != 0)
        _exit(1);
    if (read_line_to(rfd, go, sizeof go, T) == 0)   /* start together */
        _exit(1);
    unsigned char msg[2048];
    memset(msg, 's', size);
    for (int i = 0; i < n; i++)
        if (partisan_send(c, node, name, msg, size) != 0)
            _exit(2);
    msg[0] = 'D';
    partisan_send(c, node, name, msg, 1);
    partisan_flush(c, T);
    _exit(0);
}

/* Aggregate msg/s of MANY senders on da to MANY receivers on db; *lost
 * gets what did not arrive. 0 on failure to run. */
static double run_many(struct daemon_proc *da, struct daemon_proc *db, const char *node_b, size_t size, int n,
                       long *lost)
{
    int rpipe[MANY][2], gpipe[2];
    pid_t pids[2 * MANY];
    int np = 0;
    *lost = (long)MANY * n;
    if (pipe(gpipe) != 0)
        return 0;
    for (int k = 0; k < MANY; k++) {
        if (pipe(rpipe[k]) != 0)
            return 0;
        pid_t pid = fork();
        if (pid == 0)
            many_receiver(db->socket, k, rpipe[k][1]);
        close(rpipe[k][1]);
        pids[np++] = pid;
    }
    char line[64];
    int ready = 0;
    for (int k = 0; k < MANY; k++)
        ready += read_line_to(rpipe[k][0], line, sizeof line, T) && strcmp(line, "ready\n") == 0;
    for (int k = 0; ready == MANY && k < MANY; k++) {
        pid_t pid = fork();
        if (pid == 0)
            many_sender(da->socket, node_b, k, size, n, gpipe[0]);
        pids[np++] = pid;
    }
    double rate = 0;
    if (ready == MANY) {
        usleep(200000);                  /* every sender connected */
        uint64_t t0 = now_us();
        for (int k = 0; k < MANY; k++)
            if (write(gpipe[1], "go\n", 3) != 3)
                break;
        long got = 0;
        for (int k = 0; k < MANY; k++)
            if (read_line_to(rpipe[k][0], line, sizeof line, 60000))
                got += atol(line);
        uint64_t us = now_us() - t0;
        *lost = (long)MANY * n - got;
        rate = (double)got * 1e6 / (double)us;
    } else {
        fprintf(stderr, "echo_bench: only %d of %d receivers registered\n", ready, MANY);
    }
    for (int k = 0; k < MANY; k++)
        close(rpipe[k][0]);
    close(gpipe[0]);
    close(gpipe[1]);
    for (int i = 0; i < np; i++)
        stop_pid(pids[i]);
    return rate;
}

/* ---- distributed Erlang, when it is installed ---- */

/* Runs bench/erl_bench.sh (two Erlang nodes on loopback, one process
 * sending n messages of `size` bytes to a registered process on the other)
 * and returns its msg/s, or 0 with *why set. */
static double run_erlang(size_t size, int n, const char **why)
{
    char *argv[] = { "sh", "-c", "command -v erl", NULL };
    char out[512], err[512];
    if (harness_exec(argv, NULL, out, sizeof out, err, sizeof err, T) != 0) {
        *why = "erl is not installed";
        return 0;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bench/erl_bench.sh %zu %d '%s'", size, n, harness_tmpdir());
    char *argv2[] = { "sh", "-c", cmd, NULL };
    int rc = harness_exec(argv2, NULL, out, sizeof out, err, sizeof err, 120000);
    if (rc != 0) {
        *why = "bench/erl_bench.sh failed or timed out";
        fprintf(stderr, "echo_bench: erl_bench.sh (exit %d): %s %s\n", rc, out, err);
        return 0;
    }
    const char *p = strstr(out, "msg/s ");
    if (!p) {
        *why = "bench/erl_bench.sh printed no figure";
        return 0;
    }
    return atof(p + 6);
}

/* The TLS pair's node names: each certificate names its node. Names of
 * their own, so that they get directories (state, socket, log) of their own
 * rather than the plaintext pair's. */
#define TLS_A "bench-tls-a"
#define TLS_B "bench-tls-b"

/* A cluster CA and a certificate for each TLS node, made with the openssl
 * CLI as the README tells an operator to, in the harness temp dir; returns
 * their directory, or NULL (then the TLS figures are skipped, and the bench
 * says why). */
static const char *make_certs(void)
{
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/certs", harness_tmpdir());
    char script[4096];
    snprintf(script, sizeof script,
             "set -e; mkdir -p '%s'; cd '%s'\n"
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=ca "
             "-keyout ca.key -out ca.crt 2>/dev/null\n"
             "for n in " TLS_A " " TLS_B "; do\n"
             "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$n "
             "-keyout $n.key -out $n.csr 2>/dev/null\n"
             "  printf 'subjectAltName=DNS:%%s\\nbasicConstraints=critical,CA:FALSE\\n"
             "extendedKeyUsage=serverAuth,clientAuth\\n' $n > $n.ext\n"
             "  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -extfile $n.ext "
             "-out $n.crt 2>/dev/null\n"
             "done\n", dir, dir);
    char *argv[] = { "sh", "-c", script, NULL };
    char out[256], err[1024];
    int rc = harness_exec(argv, NULL, out, sizeof out, err, sizeof err, T);
    if (rc != 0) {
        fprintf(stderr, "echo_bench: making certificates with openssl failed (exit %d): %s\n", rc, err);
        return NULL;
    }
    return dir;
}

/* Waits (until deadline) for the whole echo path to work: membership
 * converged (over TLS if configured) and b's app registered. Only an echo
 * proves the latter: a send the daemon accepted may still reach b before
 * "echo" is registered there and be dropped, and the first round trip would
 * then wait for a reply that never comes. Each try is tagged and replies to
 * earlier tries are skipped (the links keep order), so none is left over to
 * pair with a measured round trip. */
static int echo_ready(partisan_client *c, const char *node, uint64_t deadline)
{
    for (unsigned k = 0; harness_now_ms() < deadline; k++) {
        char ping[32];
        int len = snprintf(ping, sizeof ping, "eready %u", k);
        if (partisan_send(c, node, "echo", ping, (size_t)len) != 0) {
            usleep(20000);
            continue;
        }
        uint64_t until = harness_now_ms() + 300;
        for (;;) {
            uint64_t now = harness_now_ms();
            if (now >= until)
                break;
            struct partisan_message *m = NULL;
            if (partisan_recv(c, &m, (int)(until - now)) != 0)
                break;
            int match = m->len == (size_t)len && memcmp(m->payload, ping, (size_t)len) == 0;
            partisan_message_free(m);
            if (match)
                return 0;
        }
    }
    return -1;
}

/* Two daemons, name_a and name_b, and the echo workload between them.
 * certs NULL: plaintext peer links; else TLS with the certificates there,
 * named after the nodes. Returns 0, or -1 if the pair did not start or did
 * not carry a message within T ms (everything it started is ended). */
static int run_partisand(struct result *out, long *rss_a, long *rss_b, const char *name_a, const char *name_b,
                         const char *certs, double *many, long *many_lost)
{
    static struct daemon_proc pairs[2][2];
    struct daemon_proc *da = &pairs[certs != NULL][0], *db = &pairs[certs != NULL][1];
    char tls_a[2048] = "", tls_b[2048] = "";
    if (certs) {
        snprintf(tls_a, sizeof tls_a, ", \"tls\": {\"ca_file\": \"%s/ca.crt\", \"cert_file\": \"%s/%s.crt\", "
                 "\"key_file\": \"%s/%s.key\"}", certs, certs, name_a, certs, name_a);
        snprintf(tls_b, sizeof tls_b, ", \"tls\": {\"ca_file\": \"%s/ca.crt\", \"cert_file\": \"%s/%s.crt\", "
                 "\"key_file\": \"%s/%s.key\"}", certs, certs, name_b, certs, name_b);
    }
    char extra[4096];
    snprintf(extra, sizeof extra, "\"log\": {\"level\": \"warn\"}%s", tls_a);
    harness_daemon_init(da, name_a, extra);
    if (harness_daemon_start(da, T) != 0)
        return -1;              /* it is ended already */
    snprintf(extra, sizeof extra, "\"log\": {\"level\": \"warn\"}, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}%s",
             da->listen, tls_b);
    harness_daemon_init(db, name_b, extra);
    if (harness_daemon_start(db, T) != 0) {
        harness_daemon_stop(da, T);
        return -1;
    }
    pid_t child = fork();
    if (child == 0) {
        struct endpoint b = { .peer_node = name_a, .peer_name = "pong" };
        if (partisan_connect(db->socket, &b.c) != 0 || partisan_register(b.c, "echo", T) != 0)
            _exit(1);
        run_b(&b);
    }
    int rc = -1;
    struct endpoint a = { .peer_node = name_b, .peer_name = "echo" };
    if (partisan_connect(da->socket, &a.c) == 0 && partisan_register(a.c, "pong", T) == 0) {
        if (echo_ready(a.c, name_b, harness_now_ms() + T) == 0) {
            rc = 0;
            cpu_pids[0] = da->pid;
            cpu_pids[1] = db->pid;
            for (int i = 0; i < SIZES; i++)
                out[i] = measure(&a, sizes[i], rtt_iters, tput_msgs);
            cpu_pids[0] = cpu_pids[1] = 0;
            if (many)
                for (int i = 0; i < SIZES; i++)
                    many[i] = run_many(da, db, name_b, sizes[i], tput_msgs / MANY, &many_lost[i]);
            *rss_a = harness_rss_kib(da->pid);
            *rss_b = harness_rss_kib(db->pid);
        } else {
            fprintf(stderr, "echo_bench: no echo from %s back to %s within %d ms (logs: %s, %s)\n", name_b, name_a, T,
                    da->log, db->log);
        }
    }
    partisan_close(a.c);
    stop_pid(child);
    harness_daemon_stop(da, T);
    harness_daemon_stop(db, T);
    return rc;
}

static void converge_64(void)
{
    enum { NODES = 64 };
    static struct daemon_proc d[NODES];
    uint64_t t0 = harness_now_ms();
    harness_daemon_init(&d[0], "c0", "\"log\": {\"level\": \"warn\"}");
    if (harness_daemon_start(&d[0], T) != 0)
        return;
    char extra[512];
    snprintf(extra, sizeof extra, "\"log\": {\"level\": \"warn\"}, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}", d[0].listen);
    for (int i = 1; i < NODES; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        harness_daemon_init(&d[i], name, extra);
        if (harness_daemon_start(&d[i], T) != 0)
            return;
    }
    uint64_t started = harness_now_ms();
    int converged = 0;
    while (harness_now_ms() - started < 120000 && converged < NODES) {
        converged = 0;
        for (int i = 0; i < NODES; i++) {
            partisan_client *c = NULL;
            struct partisan_status *s = NULL;
            if (partisan_connect(d[i].socket, &c) == 0 && partisan_status(c, &s, T) == 0 && s->members_up == NODES)
                converged++;
            partisan_status_free(s);
            partisan_close(c);
        }
        if (converged < NODES)
            usleep(50000);
    }
    uint64_t done = harness_now_ms();
    long rss_total = 0;
    for (int i = 0; i < NODES; i++)
        rss_total += harness_rss_kib(d[i].pid);
    printf("\n64-node loopback cluster (default timers): %s; all started %llu ms, all see 64 up %llu ms after the last start (%llu ms from the first); mean RSS %ld KiB\n",
           converged == NODES ? "converged" : "DID NOT converge",
           (unsigned long long)(started - t0), (unsigned long long)(done - started),
           (unsigned long long)(done - t0), rss_total / NODES);
    for (int i = 0; i < NODES; i++)
        harness_daemon_stop(&d[i], T);
}

/* One row of the main table: partisand, partisand+TLS (or "-"), raw 1w,
 * raw batched (or "-" when 0), then partisand / raw 1w and partisand / raw
 * batched. */
static void row(const char *label, const char *fmt, double part, double tls, int have_tls, double base,
                double batched)
{
    char p[32], t[32] = "-", b[32], bb[32] = "-", r1[32], r2[32] = "-";
    snprintf(p, sizeof p, fmt, part);
    snprintf(b, sizeof b, fmt, base);
    snprintf(r1, sizeof r1, "%.2fx", part / base);
    if (batched > 0) {
        snprintf(bb, sizeof bb, fmt, batched);
        snprintf(r2, sizeof r2, "%.2fx", part / batched);
    }
    if (have_tls)
        snprintf(t, sizeof t, fmt, tls);
    printf("%-24s %11s %11s %11s %11s %9s %11s\n", label, p, t, b, bb, r1, r2);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* --main: the main table and the 8-sender figure only (no TLS pair, no
     * Erlang, no 64-node cluster), for profiling runs. */
    int main_only = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--main") == 0)
            main_only = 1;
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
        rtt_iters = 2000;
        tput_msgs = 20000;
    }
    struct result base[SIZES] = { 0 }, batched[SIZES] = { 0 }, part[SIZES] = { 0 }, tls[SIZES] = { 0 };
    long rss_a = 0, rss_b = 0, tls_rss_a = 0, tls_rss_b = 0, many_lost[SIZES] = { 0 };
    double many[SIZES] = { 0 };
    run_baseline(base, 0);
    run_baseline(batched, 1);
    if (run_partisand(part, &rss_a, &rss_b, "bench-a", "bench-b", NULL, many, many_lost) != 0) {
        harness_cleanup();
        exit(1);
    }
    const char *certs = main_only ? NULL : make_certs();
    const char *no_tls = main_only ? "--main" : certs ? NULL : "the openssl command could not make certificates";
    if (certs && run_partisand(tls, &tls_rss_a, &tls_rss_b, TLS_A, TLS_B, certs, NULL, NULL) != 0)
        no_tls = "the TLS pair did not start or did not carry a message";
    int have_tls = no_tls == NULL;
    const char *no_erl = "--main";
    double erl = main_only ? 0 : run_erlang(64, tput_msgs, &no_erl);
    printf("partisand vs the raw chain (app -> unix -> forwarder -> tcp -> forwarder -> unix -> app, no protocol), loopback, "
           "%d round trips, %d one-way messages\n", rtt_iters, tput_msgs);
    printf("raw 1w: one write per message; raw batched: 64 KiB writes; TLS: partisand with TLS 1.3 on the peer link\n\n");
    printf("%-24s %11s %11s %11s %11s %9s %11s\n", "figure", "partisand", "partisand+TLS", "raw 1w", "raw batched",
           "vs 1w", "vs batched");
    int lost_any = 0;
    for (int i = 0; i < SIZES; i++) {
        char label[64];
        snprintf(label, sizeof label, "rtt p50 %zu B (us)", sizes[i]);
        row(label, "%.0f", part[i].p50_us, tls[i].p50_us, have_tls, base[i].p50_us, 0);
        snprintf(label, sizeof label, "rtt p99 %zu B (us)", sizes[i]);
        row(label, "%.0f", part[i].p99_us, tls[i].p99_us, have_tls, base[i].p99_us, 0);
        snprintf(label, sizeof label, "one-way %zu B (msg/s)", sizes[i]);
        row(label, "%.0f", part[i].msgs_per_s, tls[i].msgs_per_s, have_tls, base[i].msgs_per_s,
            batched[i].msgs_per_s);
        snprintf(label, sizeof label, "one-way %zu B (MiB/s)", sizes[i]);
        row(label, "%.1f", part[i].mib_per_s, tls[i].mib_per_s, have_tls, base[i].mib_per_s, batched[i].mib_per_s);
        long tls_lost = have_tls ? tls[i].lost : 0;
        if (part[i].lost || base[i].lost || batched[i].lost || tls_lost) {
            printf("  LOST (sent, not counted at the receiver): partisand %ld, partisand+TLS %ld, raw 1w %ld, raw batched %ld\n",
                   part[i].lost, tls_lost, base[i].lost, batched[i].lost);
            lost_any = 1;
        }
        const struct result *runs[4] = { &part[i], have_tls ? &tls[i] : NULL, &base[i], &batched[i] };
        static const char *const run_names[4] = { "partisand", "partisand+TLS", "raw 1w", "raw batched" };
        for (int k = 0; k < 4; k++)
            if (runs[k] && (runs[k]->rtt_n < (k == 3 ? rtt_iters / 20 : rtt_iters) || !runs[k]->tput_ok))
                printf("  (%s, %zu B: a reply did not come back within %d ms: %d round trips timed%s)\n",
                       run_names[k], sizes[i], T, runs[k]->rtt_n,
                       runs[k]->tput_ok ? "" : ", no receiver count for the one-way run");
    }
    if (!have_tls)
        printf("  (partisand+TLS skipped: %s)\n", no_tls);
    printf("\nCPU per message in the one-way runs (user + system, 10 ms ticks): ");
    for (int i = 0; i < SIZES; i++)
        printf("%s%zu B: daemon A %.0f ns, daemon B %.0f ns", i ? "; " : "", sizes[i], part[i].cpu_ns[0],
               part[i].cpu_ns[1]);
    printf("\n");
    printf("\n%d senders on A -> %d receivers on B (one each), %d messages each, aggregate:\n", MANY, MANY, tput_msgs / MANY);
    for (int i = 0; i < SIZES; i++) {
        printf("  %4zu B: %10.0f msg/s aggregate   (one sender: %.0f msg/s)\n", sizes[i], many[i], part[i].msgs_per_s);
        if (many_lost[i]) {
            printf("  LOST: %ld of %d messages did not reach the %d receivers\n", many_lost[i], tput_msgs, MANY);
            lost_any = 1;
        }
    }
    if (erl > 0)
        printf("\ndistributed Erlang, one sender, 64 B: %.0f msg/s (partisand %.0f)\n", erl, part[0].msgs_per_s);
    else
        printf("\ndistributed Erlang: skipped (%s)\n", no_erl);
    printf("\ndaemon RSS after the run: A %ld KiB, B %ld KiB\n", rss_a, rss_b);
    if (have_tls)
        printf("TLS daemons' RSS after the run: A %ld KiB, B %ld KiB\n", tls_rss_a, tls_rss_b);
    if (lost_any) {
        printf("\necho_bench: messages were lost (above); exiting\n");
        harness_cleanup();
        exit(1);
    }
    if (!main_only)
        converge_64();
    harness_cleanup();
    return 0;
}
