/* Reliable channels, delivery verdicts and fault injection with real
 * daemons on 127.0.0.1 (issue 14, part 6):
 *
 *   loss_dup_reorder    20 % drop, 5 % duplication, 10 % reordering injected
 *                       on the sender's daemon for a reliable channel:
 *                       10,000 pipelined messages arrive exactly once, in order;
 *   corruption          1 % of frames get bits flipped after their checksum:
 *                       no corrupt payload is delivered (each carries its own
 *                       FNV-1a), all arrive once in order, bad_checksum rises;
 *   partition_heal      six daemons, {n1,n2,n3} cut from {n4,n5,n6} on every
 *                       node while n1 streams to an app on n4; after
 *                       `fault clear` every message n1's daemon accepted
 *                       arrives exactly once, in order;
 *   wait_delivered      `send --wait delivered` to a name nobody holds exits 1
 *                       saying so, to a held one exits 0; send_sync_with
 *                       confirm gives PARTISAN_ENONAME; a pipelined send to an
 *                       unheld name gets its verdict;
 *   faults_config       rules without faults.enabled are refused at start;
 *                       with it, `fault list` shows them and the log warns.
 *
 * Debugging: HARNESS_ONLY=<test name> runs one test; KEEP_TMP=1 keeps the
 * daemons' directories; a failing test prints the daemons' `partisanctl
 * stats` and `fault list`.
 *
 * Threads: a receiver (and in partition_heal a sender) runs in a worker
 * thread with a client handle of its own; workers never call CHECK, they
 * record what they saw, and the main thread judges it after joining them.
 * Every worker is bounded by a deadline, and after_test() stops and joins
 * them before it closes the test's handles. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "partisan.h"

#define T 10000

#define CHANNELS "[{\"name\": \"default\"}, {\"name\": \"orders\", \"reliable\": true}, {\"name\": \"plain\"}]"

#define MAX_NODES 6
static struct daemon_proc nodes[MAX_NODES];
static int n_nodes;

/* --- configuration and cluster --- */

/* extra_json for node i (0-based): fast timers, the test channels, seeded
 * with n1 unless it is n1; `more` is spliced in as further sections. */
static void make_extra(char *buf, size_t cap, unsigned fd_timeout_ms, const char *seed, const char *more)
{
    char seeds[256] = "";
    if (seed)
        snprintf(seeds, sizeof seeds, ", \"seeds\": [\"%s\"]", seed);
    snprintf(buf, cap,
             "\"overlay\": {\"gossip_interval_ms\": 200}, "
             "\"failure_detector\": {\"ping_interval_ms\": 200, \"timeout_ms\": %u}, "
             "\"transport\": {\"backoff_initial_ms\": 50, \"backoff_max_ms\": 500, \"connect_timeout_ms\": 1000}, "
             "\"cluster\": {\"name\": \"test\"%s}, "
             "\"log\": {\"level\": \"info\"}, "
             "\"channels\": " CHANNELS "%s%s",
             fd_timeout_ms, seeds, more && *more ? ", " : "", more ? more : "");
}

static bool all_up(void *arg)
{
    (void)arg;
    for (int i = 0; i < n_nodes; i++)
        if (harness_members_up(&nodes[i], T) != n_nodes)
            return false;
    return true;
}

/* n daemons n1..n<n>, the others seeded with n1; waits until each sees all
 * of them up. 0, or -1 (why printed). */
static int start_cluster(int n, unsigned fd_timeout_ms)
{
    char extra[4096], name[16];
    n_nodes = 0;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "n%d", i + 1);
        make_extra(extra, sizeof extra, fd_timeout_ms, i ? nodes[0].listen : NULL, NULL);
        harness_daemon_init(&nodes[i], name, extra);
        if (harness_daemon_start(&nodes[i], T) != 0)
            return -1;
        n_nodes = i + 1;
    }
    if (!harness_wait_until(all_up, NULL, 20000 + 2000 * n)) {
        for (int i = 0; i < n; i++)
            fprintf(stderr, "  %s sees %d of %d up\n", nodes[i].name, harness_members_up(&nodes[i], T), n);
        return -1;
    }
    return 0;
}

/* 1 when `at` sees `who` up, 0 when it sees it down (or not at all), -1 when
 * `at` does not answer. */
static int sees_up(const struct daemon_proc *at, const char *who)
{
    partisan_client *c = NULL;
    if (at->pid <= 0 || partisan_connect(at->socket, &c) != 0)
        return -1;
    struct partisan_member *m = NULL;
    size_t n = 0;
    int up = -1;
    if (partisan_members(c, 0, &m, &n, T) == 0) {
        up = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(m[i].name, who) == 0)
                up = m[i].up && !m[i].left;
        partisan_members_free(m, n);
    }
    partisan_close(c);
    return up;
}

struct seen { const struct daemon_proc *at; const char *who; int want; };
static bool seen_cb(void *arg)
{
    const struct seen *s = arg;
    return sees_up(s->at, s->who) == s->want;
}

/* --- client handles of the current test, closed by after_test() --- */

static partisan_client *handles[32];

static partisan_client *client(const struct daemon_proc *d)
{
    partisan_client *c = NULL;
    if (partisan_connect(d->socket, &c) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++)
        if (!handles[i]) {
            handles[i] = c;
            return c;
        }
    partisan_close(c);
    return NULL;
}

static partisan_client *holder(const struct daemon_proc *d, const char *name)
{
    partisan_client *c = client(d);
    if (c && partisan_register(c, name, T) != 0)
        return NULL;   /* closed with the others */
    return c;
}

/* --- partisanctl --- */

/* partisanctl --socket d->socket WORDS... (NULL-ended array), bounded. */
static int ctl(const struct daemon_proc *d, char *out, size_t outlen, char *err, size_t errlen,
               const char *const *words)
{
    static char bin[600];
    snprintf(bin, sizeof bin, "%s/partisanctl", harness_bin_dir());
    char *argv[40];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--socket";
    argv[n++] = (char *)d->socket;
    for (size_t i = 0; words[i] && n < 39; i++)
        argv[n++] = (char *)words[i];
    argv[n] = NULL;
    return harness_exec(argv, NULL, out, outlen, err, errlen, T);
}
#define CTL(d, out, err, ...) ctl((d), (out), sizeof(out), (err), sizeof(err), (const char *const[]){ __VA_ARGS__, NULL })

/* A failing test's evidence: stats and the fault list of every running daemon. */
static void print_evidence(void)
{
    static char out[65536];
    char err[1024];
    for (int i = 0; i < n_nodes; i++) {
        if (nodes[i].pid <= 0)
            continue;
        int rc = CTL(&nodes[i], out, err, "stats");
        printf("  --- %s: partisanctl stats (exit %d) ---\n%s%s", nodes[i].name, rc, out, err);
        rc = CTL(&nodes[i], out, err, "fault", "list");
        printf("  --- %s: partisanctl fault list (exit %d) ---\n%s%s", nodes[i].name, rc, out, err);
    }
}

/* --- stats --- */

struct counters {
    uint64_t reliable_sent, reliable_retransmitted, reliable_delivered, reliable_duplicates, reliable_failed;
    uint64_t bad_checksum, fault_dropped, fault_delayed, fault_duplicated, fault_reordered, fault_corrupted;
    uint64_t fault_partitioned;
    uint32_t faults_active;
};

/* 0, or a PARTISAN_E* code. */
static int counters(const struct daemon_proc *d, struct counters *k)
{
    memset(k, 0, sizeof *k);
    partisan_client *c = NULL;
    int rc = partisan_connect(d->socket, &c);
    if (rc != 0)
        return rc;
    struct partisan_stats *s = NULL;
    rc = partisan_stats(c, &s, T);
    if (rc == 0) {
        k->reliable_sent = s->reliable_sent;
        k->reliable_retransmitted = s->reliable_retransmitted;
        k->reliable_delivered = s->reliable_delivered;
        k->reliable_duplicates = s->reliable_duplicates;
        k->reliable_failed = s->reliable_failed;
        k->bad_checksum = s->bad_checksum;
        k->fault_dropped = s->fault_dropped;
        k->fault_delayed = s->fault_delayed;
        k->fault_duplicated = s->fault_duplicated;
        k->fault_reordered = s->fault_reordered;
        k->fault_corrupted = s->fault_corrupted;
        k->fault_partitioned = s->fault_partitioned;
        k->faults_active = s->faults_active;
        partisan_stats_free(s);
    }
    partisan_close(c);
    return rc;
}

static void print_counters(const char *who, const struct counters *k)
{
    printf("  %s: reliable sent %llu retransmitted %llu delivered %llu duplicates %llu failed %llu; bad_checksum %llu; "
           "faults: dropped %llu delayed %llu duplicated %llu reordered %llu corrupted %llu partitioned %llu (active %u)\n",
           who, (unsigned long long)k->reliable_sent, (unsigned long long)k->reliable_retransmitted,
           (unsigned long long)k->reliable_delivered, (unsigned long long)k->reliable_duplicates,
           (unsigned long long)k->reliable_failed, (unsigned long long)k->bad_checksum,
           (unsigned long long)k->fault_dropped, (unsigned long long)k->fault_delayed,
           (unsigned long long)k->fault_duplicated, (unsigned long long)k->fault_reordered,
           (unsigned long long)k->fault_corrupted, (unsigned long long)k->fault_partitioned, k->faults_active);
}

/* --- payloads: [0,4) FNV-1a of the rest, [4,8) sequence number, then filler --- */

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

#define PAYLOAD_MAX 1024

static void make_payload(uint8_t *buf, size_t len, uint32_t seq)
{
    put32(buf + 4, seq);
    for (size_t i = 8; i < len; i++)
        buf[i] = (uint8_t)(seq * 131u + i * 7u + (i >> 3));
    put32(buf, fnv1a(buf + 4, len - 4));
}

/* 0 and *seq, or -1: not a payload of ours, or corrupt. */
static int check_payload(const uint8_t *p, size_t len, size_t want_len, uint32_t *seq)
{
    if (len != want_len || len < 8 || get32(p) != fnv1a(p + 4, len - 4))
        return -1;
    *seq = get32(p + 4);
    return 0;
}

/* --- the receiving application --- */

struct receiver {
    pthread_t th;
    bool running;
    partisan_client *c;           /* holds the name; the thread's alone while it runs */
    const char *channel;          /* every message must have come on it */
    size_t len;                   /* every payload's length */
    uint32_t cap;                 /* seqs[] capacity */
    uint32_t *seqs;               /* in arrival order (valid payloads only) */
    atomic_uint n;                /* valid payloads received (may exceed cap) */
    atomic_uint corrupt;          /* payloads whose own checksum failed, or of a wrong length */
    atomic_uint wrong_channel;
    atomic_int error;             /* a partisan_recv error other than a timeout */
    atomic_int stop;
    uint64_t deadline_ms;         /* it ends by itself then */
    uint64_t last_ms;             /* when the last valid payload came */
};

static void *receiver_main(void *arg)
{
    struct receiver *r = arg;
    while (!atomic_load(&r->stop) && harness_now_ms() < r->deadline_ms) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(r->c, &m, 100);
        if (rc == PARTISAN_ETIMEDOUT)
            continue;
        if (rc != 0) {
            atomic_store(&r->error, rc);
            break;
        }
        if (m->kind == PARTISAN_MSG_DATA) {
            uint32_t seq;
            if (!m->channel || strcmp(m->channel, r->channel) != 0)
                atomic_fetch_add(&r->wrong_channel, 1);
            if (check_payload(m->payload, m->len, r->len, &seq) != 0) {
                atomic_fetch_add(&r->corrupt, 1);
            } else {
                unsigned i = atomic_load(&r->n);
                if (i < r->cap)
                    r->seqs[i] = seq;
                r->last_ms = harness_now_ms();
                atomic_store(&r->n, i + 1);
            }
        }
        partisan_message_free(m);
    }
    return NULL;
}

static struct receiver *receivers[4];

static int receiver_start(struct receiver *r, partisan_client *c, const char *channel, size_t len, uint32_t cap,
                          int run_ms)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->channel = channel;
    r->len = len;
    r->cap = cap;
    r->seqs = calloc(cap, sizeof *r->seqs);
    r->deadline_ms = harness_now_ms() + (uint64_t)run_ms;
    if (!r->seqs || pthread_create(&r->th, NULL, receiver_main, r) != 0)
        return -1;
    r->running = true;
    for (size_t i = 0; i < sizeof receivers / sizeof receivers[0]; i++)
        if (!receivers[i]) {
            receivers[i] = r;
            break;
        }
    return 0;
}

static void receiver_stop(struct receiver *r)
{
    atomic_store(&r->stop, 1);
    if (r->running)
        pthread_join(r->th, NULL);
    r->running = false;
}

struct count_want { struct receiver *r; unsigned n; };
static bool received_cb(void *arg)
{
    struct count_want *w = arg;
    return atomic_load(&w->r->n) >= w->n || atomic_load(&w->r->error) != 0;
}

/* Waits until r has want valid payloads, or no new one came for stall_ms,
 * or max_ms passed. True if it has them. */
static bool wait_received(struct receiver *r, unsigned want, int stall_ms, int max_ms)
{
    uint64_t start = harness_now_ms(), last_change = start;
    unsigned last = atomic_load(&r->n);
    struct count_want w = { r, want };
    while (!received_cb(&w)) {
        uint64_t now = harness_now_ms();
        unsigned n = atomic_load(&r->n);
        if (n != last) {
            last = n;
            last_change = now;
        }
        if (now - start >= (uint64_t)max_ms || now - last_change >= (uint64_t)stall_ms)
            return false;
        usleep(20 * 1000);
    }
    return atomic_load(&r->n) >= want;
}

/* Judges a stream of `total` messages 0..total-1 that must each arrive once,
 * in order: 0 or -1 with why. Call after receiver_stop. */
static int judge_exact(const struct receiver *r, uint32_t total, char *why, size_t whylen)
{
    unsigned n = atomic_load(&r->n);
    if (atomic_load(&r->corrupt) || atomic_load(&r->wrong_channel)) {
        snprintf(why, whylen, "%u corrupt payloads and %u on a wrong channel delivered", atomic_load(&r->corrupt),
                 atomic_load(&r->wrong_channel));
        return -1;
    }
    uint32_t *count = calloc(total, sizeof *count);
    unsigned dups = 0, out_of_order = 0, bogus = 0, missing = 0, first_bad = UINT32_MAX;
    for (unsigned i = 0; i < n && i < r->cap; i++) {
        uint32_t s = r->seqs[i];
        if (s >= total) {
            bogus++;
            continue;
        }
        if (count && count[s]++)
            dups++;
        if (s != i && first_bad == UINT32_MAX)
            first_bad = i;
        if (i && s <= r->seqs[i - 1])
            out_of_order++;
    }
    for (uint32_t s = 0; count && s < total; s++)
        missing += count[s] == 0;
    free(count);
    if (n == total && first_bad == UINT32_MAX && !bogus)
        return 0;
    snprintf(why, whylen, "%u of %u received: %u duplicates, %u out of order, %u missing, %u unknown; first "
             "mismatch at position %u (got %u)", n, total, dups, out_of_order, missing, bogus,
             first_bad, first_bad < n && first_bad < r->cap ? r->seqs[first_bad] : 0);
    return -1;
}

/* --- a pipelined stream from the main thread --- */

/* Sends total payloads 0..total-1 of len bytes to (node, name) on channel,
 * pipelined, then flushes. 0, or a PARTISAN_E* code with why. */
static int send_stream(partisan_client *tx, const char *node, const char *name, const char *channel, uint32_t total,
                       size_t len, char *why, size_t whylen)
{
    const struct partisan_send_opts opts = { .channel = channel };
    uint8_t buf[PAYLOAD_MAX];
    for (uint32_t i = 0; i < total; i++) {
        make_payload(buf, len, i);
        int rc = partisan_send_with(tx, node, name, buf, len, &opts);
        if (rc != 0) {
            snprintf(why, whylen, "send %u of %u: %s (%s)", i, total, partisan_strerror(rc), partisan_last_error(tx));
            return rc;
        }
    }
    int rc = partisan_flush(tx, 90000);
    if (rc != 0) {
        snprintf(why, whylen, "flush after %u sends: %s (%s)", total, partisan_strerror(rc), partisan_last_error(tx));
        return rc;
    }
    struct partisan_failure f;
    if (partisan_next_failure(tx, &f)) {
        snprintf(why, whylen, "send with seq %llu failed: %s (%s)", (unsigned long long)f.seq,
                 partisan_strerror(f.code), f.message);
        return f.code;
    }
    return 0;
}

/* --- a paced sender thread (partition_heal) --- */

struct sender {
    pthread_t th;
    bool running;
    partisan_client *c;
    const char *node, *name, *channel;
    size_t len;
    unsigned pace_us;
    uint32_t cap;
    uint32_t n;                   /* messages handed to the library (payload seq 0..n-1) */
    uint64_t *seq_of;             /* the library's sequence number of each */
    uint64_t *sent_at;            /* when, ms */
    int *failed;                  /* 0, or the PARTISAN_E* its answer or verdict gave */
    unsigned failures_unmatched;  /* failure reports naming no send of ours */
    atomic_uint sent;             /* == n, for the main thread while it runs */
    atomic_int stop;
    uint64_t deadline_ms;
    int error;                    /* a send or the final flush failed locally */
    char errmsg[300];
    int flush_rc;
    uint64_t failures_dropped;
};

static void sender_take_failures(struct sender *s)
{
    struct partisan_failure f;
    while (partisan_next_failure(s->c, &f)) {
        /* seq_of[] increases: binary search. */
        uint32_t lo = 0, hi = s->n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (s->seq_of[mid] < f.seq)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < s->n && s->seq_of[lo] == f.seq)
            s->failed[lo] = f.code ? f.code : PARTISAN_EINTERNAL;
        else
            s->failures_unmatched++;
    }
}

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    const struct partisan_send_opts opts = { .channel = s->channel };
    uint8_t buf[PAYLOAD_MAX];
    while (!atomic_load(&s->stop) && s->n < s->cap && harness_now_ms() < s->deadline_ms) {
        make_payload(buf, s->len, s->n);
        int rc = partisan_send_with(s->c, s->node, s->name, buf, s->len, &opts);
        if (rc == PARTISAN_EASYNC) {     /* an earlier one failed; this one was not sent */
            sender_take_failures(s);
            continue;
        }
        if (rc != 0) {
            s->error = rc;
            snprintf(s->errmsg, sizeof s->errmsg, "send of message %u: %s (%s)", s->n, partisan_strerror(rc),
                     partisan_last_error(s->c));
            break;
        }
        s->seq_of[s->n] = partisan_last_seq(s->c);
        s->sent_at[s->n] = harness_now_ms();
        s->n++;
        atomic_store(&s->sent, s->n);
        sender_take_failures(s);
        usleep(s->pace_us);
    }
    /* Everything out and answered. A flush that reports one earlier failure
     * is called again: it may have stopped at it. */
    uint64_t until = harness_now_ms() + 60000;
    for (;;) {
        uint64_t now = harness_now_ms();
        int rc = partisan_flush(s->c, now < until ? (int)(until - now) : 0);
        sender_take_failures(s);
        s->flush_rc = rc;
        if (rc == 0 || rc == PARTISAN_ETIMEDOUT || rc == PARTISAN_ECLOSED || rc == PARTISAN_EIO ||
            harness_now_ms() >= until)
            break;
    }
    s->failures_dropped = partisan_failures_dropped(s->c);
    return NULL;
}

static struct sender *senders[2];

static int sender_start(struct sender *s, partisan_client *c, const char *node, const char *name,
                        const char *channel, size_t len, unsigned pace_us, uint32_t cap, int run_ms)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->node = node;
    s->name = name;
    s->channel = channel;
    s->len = len;
    s->pace_us = pace_us;
    s->cap = cap;
    s->seq_of = calloc(cap, sizeof *s->seq_of);
    s->sent_at = calloc(cap, sizeof *s->sent_at);
    s->failed = calloc(cap, sizeof *s->failed);
    s->deadline_ms = harness_now_ms() + (uint64_t)run_ms;
    if (!s->seq_of || !s->sent_at || !s->failed || pthread_create(&s->th, NULL, sender_main, s) != 0)
        return -1;
    s->running = true;
    for (size_t i = 0; i < sizeof senders / sizeof senders[0]; i++)
        if (!senders[i]) {
            senders[i] = s;
            break;
        }
    return 0;
}

static void sender_stop(struct sender *s)
{
    atomic_store(&s->stop, 1);
    if (s->running)
        pthread_join(s->th, NULL);
    s->running = false;
}

/* --- end of every test --- */

static void after_test(void)
{
    /* A worker blocked in the library ends at its deadline; if the test
     * failed, kill the daemons first so none waits that long. */
    if (harness_failures_in_test)
        print_evidence();
    for (size_t i = 0; i < sizeof senders / sizeof senders[0]; i++)
        if (senders[i]) {
            if (harness_failures_in_test)
                for (int k = 0; k < n_nodes; k++)
                    harness_daemon_kill(&nodes[k]);
            sender_stop(senders[i]);
            free(senders[i]->seq_of);
            free(senders[i]->sent_at);
            free(senders[i]->failed);
            senders[i] = NULL;
        }
    for (size_t i = 0; i < sizeof receivers / sizeof receivers[0]; i++)
        if (receivers[i]) {
            receiver_stop(receivers[i]);
            free(receivers[i]->seqs);
            receivers[i] = NULL;
        }
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) {
        partisan_close(handles[i]);
        handles[i] = NULL;
    }
    for (int i = 0; i < n_nodes; i++)
        if (nodes[i].pid > 0)
            harness_daemon_stop(&nodes[i], T);
    n_nodes = 0;
}

/* ====================================================================== */
/* a) 20 % drop, 5 % duplication, 10 % reordering on the sender's daemon:
 * 10,000 pipelined messages arrive exactly once and in order. */

#define LOSS_N 10000
#define LOSS_LEN 64

static void test_loss_dup_reorder(void)
{
    CHECK(start_cluster(2, 2000) == 0, "the pair did not come up");
    char out[4096], err[1024];
    int rc = CTL(&nodes[0], out, err, "fault", "drop", "--channel", "orders", "0.2");
    CHECK(rc == 0, "fault drop: exit %d: %s%s", rc, out, err);
    rc = CTL(&nodes[0], out, err, "fault", "duplicate", "--channel", "orders", "0.05");
    CHECK(rc == 0, "fault duplicate: exit %d: %s%s", rc, out, err);
    rc = CTL(&nodes[0], out, err, "fault", "reorder", "--channel", "orders", "0.1");
    CHECK(rc == 0, "fault reorder: exit %d: %s%s", rc, out, err);
    rc = CTL(&nodes[0], out, err, "fault", "list");
    CHECK(rc == 0 && strstr(out, "drop --channel orders 0.2") && strstr(out, "duplicate --channel orders 0.05") &&
              strstr(out, "reorder --channel orders 0.1"),
          "fault list: exit %d: %s%s", rc, out, err);

    partisan_client *rx = holder(&nodes[1], "sink"), *tx = client(&nodes[0]);
    CHECK(rx && tx, "connect/register");
    static struct receiver r;
    CHECK(receiver_start(&r, rx, "orders", LOSS_LEN, LOSS_N + 100, 120000) == 0, "receiver thread");

    uint64_t t0 = harness_now_ms();
    char why[512];
    rc = send_stream(tx, "n2", "sink", "orders", LOSS_N, LOSS_LEN, why, sizeof why);
    CHECK(rc == 0, "%s", why);
    uint64_t t_flushed = harness_now_ms();
    bool all = wait_received(&r, LOSS_N, 30000, 90000);
    usleep(300 * 1000);    /* a late duplicate would show */
    receiver_stop(&r);
    printf("  %u messages sent and flushed in %llu ms, %u received %llu ms after the first send%s\n", LOSS_N,
           (unsigned long long)(t_flushed - t0), atomic_load(&r.n), (unsigned long long)(r.last_ms - t0),
           all ? "" : " (incomplete)");
    CHECK(atomic_load(&r.error) == 0, "receiver: %s", partisan_strerror(atomic_load(&r.error)));
    CHECK(judge_exact(&r, LOSS_N, why, sizeof why) == 0, "%s", why);

    struct counters a, b;
    CHECK(counters(&nodes[0], &a) == 0 && counters(&nodes[1], &b) == 0, "stats");
    print_counters("n1", &a);
    print_counters("n2", &b);
    CHECK(a.fault_dropped > 0 && a.fault_duplicated > 0 && a.fault_reordered > 0,
          "n1's stats do not count the injected faults: dropped %llu duplicated %llu reordered %llu",
          (unsigned long long)a.fault_dropped, (unsigned long long)a.fault_duplicated,
          (unsigned long long)a.fault_reordered);
    CHECK(a.reliable_retransmitted > 0, "n1 retransmitted nothing under 20 %% loss");
    CHECK(a.faults_active == 3, "n1 reports %u active faults, want 3", a.faults_active);
    CHECK(b.reliable_delivered >= LOSS_N, "n2 counts %llu reliable deliveries, want %d",
          (unsigned long long)b.reliable_delivered, LOSS_N);
    CHECK(b.reliable_duplicates > 0, "n2 dropped no duplicates under 5 %% duplication");
}

/* ====================================================================== */
/* b) 1 % corruption: no corrupt payload is delivered, each arrives once in
 * order, the receiver counts bad checksums. */

#define CORRUPT_N 10000
#define CORRUPT_LEN 256

static void test_corruption(void)
{
    CHECK(start_cluster(2, 2000) == 0, "the pair did not come up");
    char out[4096], err[1024];
    int rc = CTL(&nodes[0], out, err, "fault", "corrupt", "--channel", "orders", "0.01");
    CHECK(rc == 0, "fault corrupt: exit %d: %s%s", rc, out, err);

    partisan_client *rx = holder(&nodes[1], "sink"), *tx = client(&nodes[0]);
    CHECK(rx && tx, "connect/register");
    static struct receiver r;
    CHECK(receiver_start(&r, rx, "orders", CORRUPT_LEN, CORRUPT_N + 100, 120000) == 0, "receiver thread");

    uint64_t t0 = harness_now_ms();
    char why[512];
    rc = send_stream(tx, "n2", "sink", "orders", CORRUPT_N, CORRUPT_LEN, why, sizeof why);
    CHECK(rc == 0, "%s", why);
    bool all = wait_received(&r, CORRUPT_N, 30000, 90000);
    usleep(300 * 1000);
    receiver_stop(&r);
    printf("  %u of %u received in %llu ms%s\n", atomic_load(&r.n), CORRUPT_N, (unsigned long long)(r.last_ms - t0),
           all ? "" : " (incomplete)");
    CHECK(atomic_load(&r.error) == 0, "receiver: %s", partisan_strerror(atomic_load(&r.error)));
    CHECK(judge_exact(&r, CORRUPT_N, why, sizeof why) == 0, "%s", why);

    struct counters a, b;
    CHECK(counters(&nodes[0], &a) == 0 && counters(&nodes[1], &b) == 0, "stats");
    print_counters("n1", &a);
    print_counters("n2", &b);
    CHECK(a.fault_corrupted > 0, "n1 corrupted no frame at 1 %%");
    CHECK(b.bad_checksum > 0, "n2 counts no bad checksum though n1 corrupted %llu frames",
          (unsigned long long)a.fault_corrupted);
    /* One bit per frame: CRC-32C catches every one, and each is counted. */
    CHECK(b.bad_checksum == a.fault_corrupted, "n1 corrupted %llu frames, n2 counts %llu bad checksums",
          (unsigned long long)a.fault_corrupted, (unsigned long long)b.bad_checksum);
    CHECK(a.reliable_retransmitted > 0, "n1 retransmitted nothing though frames were corrupted");
}

/* ====================================================================== */
/* c) Six daemons; {n1,n2,n3} | {n4,n5,n6} cut on every node while n1
 * streams to an app on n4, until n1 sees n4 down and a while after; then
 * `fault clear` everywhere. Every message n1's daemon accepted (sent
 * before the cut and unacknowledged at it, sent during the cut, sent after
 * the heal) arrives exactly once and in order; any the daemon refused (if
 * it refuses sends to a node it sees down) never arrives. */

#define PART_CAP 20000
#define PART_LEN 64
#define PART_PACE_US 2000

/* partisan_fault on d, words as the CLI's after `fault`. 0 or the error. */
static int fault_c(const struct daemon_proc *d, int argc, const char *const *argv, char *why, size_t whylen)
{
    partisan_client *c = NULL;
    int rc = partisan_connect(d->socket, &c);
    if (rc != 0) {
        snprintf(why, whylen, "%s: connect: %s", d->name, partisan_strerror(rc));
        return rc;
    }
    char *text = NULL;
    rc = partisan_fault(c, argc, argv, &text, T);
    if (rc != 0)
        snprintf(why, whylen, "%s: fault %s: %s (%s)", d->name, argv[0], partisan_strerror(rc),
                 partisan_last_error(c));
    free(text);
    partisan_close(c);
    return rc;
}

static void test_partition_heal(void)
{
    CHECK(start_cluster(6, 1500) == 0, "six daemons did not come up");
    partisan_client *rx = holder(&nodes[3], "sink"), *tx = client(&nodes[0]);
    CHECK(rx && tx, "connect/register");
    static struct receiver r;
    static struct sender s;
    CHECK(receiver_start(&r, rx, "orders", PART_LEN, PART_CAP, 150000) == 0, "receiver thread");

    /* The stream runs before, during and after the partition. */
    CHECK(sender_start(&s, tx, "n4", "sink", "orders", PART_LEN, PART_PACE_US, PART_CAP, 90000) == 0,
          "sender thread");
    usleep(500 * 1000);
    unsigned before = atomic_load(&s.sent);

    char why[512];
    const char *cut[] = { "partition", "n1,n2,n3", "n4,n5,n6" };
    uint64_t t_cut = harness_now_ms();
    /* The sender's side first: from then on n1 holds what it accepts. */
    for (int i = 0; i < 6; i++)
        CHECK(fault_c(&nodes[i], 3, cut, why, sizeof why) == 0, "%s", why);
    uint64_t t_cut_done = harness_now_ms();

    struct seen n4_down = { &nodes[0], "n4", 0 };
    bool down = harness_wait_until(seen_cb, &n4_down, 20000);
    uint64_t t_down = harness_now_ms();
    CHECK(down, "n1 did not see n4 down within 20 s of the partition");
    usleep(1000 * 1000);   /* sends while n1 sees n4 down */

    struct counters mid;
    CHECK(counters(&nodes[0], &mid) == 0, "stats on n1");
    unsigned got_during = atomic_load(&r.n);
    uint64_t t_heal = harness_now_ms();
    const char *clear[] = { "clear" };
    for (int i = 0; i < 6; i++)
        CHECK(fault_c(&nodes[i], 1, clear, why, sizeof why) == 0, "%s", why);
    struct seen n4_up = { &nodes[0], "n4", 1 }, n1_up = { &nodes[3], "n1", 1 };
    CHECK(harness_wait_until(seen_cb, &n4_up, 20000) && harness_wait_until(seen_cb, &n1_up, 20000),
          "n1 and n4 did not see each other up again within 20 s of the heal");
    uint64_t t_up = harness_now_ms();
    usleep(500 * 1000);    /* sends after the heal */
    sender_stop(&s);
    CHECK(s.error == 0, "sender: %s", s.errmsg);
    CHECK(s.flush_rc != PARTISAN_ETIMEDOUT, "the final flush timed out: sends left unanswered");
    CHECK(s.failures_dropped == 0 && s.failures_unmatched == 0, "failure reports lost (%llu) or unmatched (%u)",
          (unsigned long long)s.failures_dropped, s.failures_unmatched);

    /* What the daemon accepted. */
    unsigned accepted = 0, refused = 0, sent_during = 0, accepted_during = 0;
    int codes[4] = { 0 };
    unsigned code_n[4] = { 0 };
    for (uint32_t i = 0; i < s.n; i++) {
        bool during = s.sent_at[i] >= t_cut_done && s.sent_at[i] < t_heal;
        sent_during += during;
        if (s.failed[i] == 0) {
            accepted++;
            accepted_during += during;
            continue;
        }
        refused++;
        for (int k = 0; k < 4; k++)
            if (codes[k] == s.failed[i] || codes[k] == 0) {
                codes[k] = s.failed[i];
                code_n[k]++;
                break;
            }
    }
    bool all = wait_received(&r, accepted, 30000, 90000);
    usleep(300 * 1000);
    receiver_stop(&r);
    uint64_t t_end = harness_now_ms();
    printf("  sent %u (%u before the cut); cut on 6 nodes in %llu ms; n1 saw n4 down %llu ms after; healed %llu ms "
           "later, up again after %llu ms; %u sent during the partition, %u of them accepted; n4 had %u during it\n",
           s.n, before, (unsigned long long)(t_cut_done - t_cut), (unsigned long long)(t_down - t_cut_done),
           (unsigned long long)(t_heal - t_down), (unsigned long long)(t_up - t_heal), sent_during,
           accepted_during, got_during);
    printf("  accepted %u, refused %u", accepted, refused);
    for (int k = 0; k < 4 && codes[k]; k++)
        printf("%s%s x%u", k ? ", " : " (", partisan_strerror(codes[k]), code_n[k]);
    printf("%s; n4 received %u%s, the last %llu ms after the heal\n", refused ? ")" : "", atomic_load(&r.n),
           all ? "" : " (incomplete)", (unsigned long long)(r.last_ms > t_heal ? r.last_ms - t_heal : 0));
    (void)t_end;
    print_counters("n1 during the partition", &mid);

    CHECK(atomic_load(&r.error) == 0, "receiver: %s", partisan_strerror(atomic_load(&r.error)));
    CHECK(atomic_load(&r.corrupt) == 0 && atomic_load(&r.wrong_channel) == 0, "corrupt or misrouted payloads");
    CHECK(accepted_during > 0, "no message was accepted during the partition: the test proves nothing");
    /* The cut was real: nothing sent well after it came through before the heal. */
    unsigned leaked = 0;
    for (unsigned i = 0; i < got_during && i < r.cap; i++)
        leaked += r.seqs[i] < s.n && s.sent_at[r.seqs[i]] >= t_cut_done + 50;
    CHECK(leaked == 0, "%u messages sent during the partition arrived before it healed", leaked);

    /* Received: strictly increasing, only accepted ones, every one of them. */
    unsigned n = atomic_load(&r.n), dup_or_back = 0, unaccepted = 0, missing = 0, missing_during = 0;
    uint32_t first_missing = UINT32_MAX;
    uint8_t *got = calloc(s.n ? s.n : 1, 1);
    CHECK(got, "out of memory");
    for (unsigned i = 0; i < n && i < r.cap; i++) {
        uint32_t q = r.seqs[i];
        if (i && q <= r.seqs[i - 1])
            dup_or_back++;
        if (q >= s.n || s.failed[q] != 0)
            unaccepted++;
        else
            got[q] = 1;
    }
    for (uint32_t i = 0; i < s.n; i++)
        if (s.failed[i] == 0 && !got[i]) {
            missing++;
            if (first_missing == UINT32_MAX)
                first_missing = i;
            missing_during += s.sent_at[i] >= t_cut_done && s.sent_at[i] < t_heal;
        }
    free(got);
    CHECK(dup_or_back == 0, "%u deliveries were duplicates or out of order", dup_or_back);
    CHECK(unaccepted == 0, "%u messages the daemon refused (or never sent) were delivered", unaccepted);
    CHECK(missing == 0, "%u accepted messages never arrived (%u of them sent during the partition; the first, #%u, "
          "sent %lld ms after the cut)", missing, missing_during, first_missing,
          first_missing < s.n ? (long long)s.sent_at[first_missing] - (long long)t_cut_done : 0LL);

    struct counters a;
    CHECK(counters(&nodes[0], &a) == 0, "stats on n1");
    print_counters("n1", &a);
    CHECK(mid.fault_partitioned > 0, "n1 counts no partitioned frames during the partition");
    CHECK(a.reliable_retransmitted > 0, "n1 retransmitted nothing after the heal");
    CHECK(a.faults_active == 0, "n1 still has %u active faults after clear", a.faults_active);
}

/* ====================================================================== */
/* d) Delivery confirmation: `send --wait delivered`, send_sync_with
 * confirm, and the verdict of a pipelined send. */

static bool got_message(partisan_client *c, const char *payload, const char *channel, char *why, size_t whylen)
{
    struct partisan_message *m = NULL;
    int rc = partisan_recv(c, &m, 3000);
    if (rc != 0) {
        snprintf(why, whylen, "nothing received: %s", partisan_strerror(rc));
        return false;
    }
    bool ok = m->kind == PARTISAN_MSG_DATA && m->len == strlen(payload) && memcmp(m->payload, payload, m->len) == 0 &&
              m->channel && strcmp(m->channel, channel) == 0 && m->from_node && strcmp(m->from_node, "n1") == 0;
    if (!ok)
        snprintf(why, whylen, "received kind %d \"%.*s\" on %s from %s, want \"%s\" on %s from n1", (int)m->kind,
                 (int)(m->len > 100 ? 100 : m->len), m->payload ? (const char *)m->payload : "",
                 m->channel ? m->channel : "(none)", m->from_node ? m->from_node : "(none)", payload, channel);
    partisan_message_free(m);
    return ok;
}

static void test_wait_delivered(void)
{
    CHECK(start_cluster(2, 2000) == 0, "the pair did not come up");
    partisan_client *rx = holder(&nodes[1], "inbox"), *tx = client(&nodes[0]);
    CHECK(rx && tx, "connect/register");
    char out[4096], err[2048], why[512];

    int rc = CTL(&nodes[0], out, err, "send", "--channel", "orders", "--wait", "delivered", "n2", "nobody-holds-this",
                 "hello");
    CHECK(rc == 1, "send --wait delivered to an unheld name: exit %d, want 1 (stdout: %s, stderr: %s)", rc, out, err);
    CHECK(strstr(err, "name"), "stderr does not say nobody holds the name: \"%s\"", err);

    rc = CTL(&nodes[0], out, err, "send", "--channel", "orders", "--wait", "delivered", "n2", "inbox", "hello");
    CHECK(rc == 0, "send --wait delivered to a held name: exit %d (stdout: %s, stderr: %s)", rc, out, err);
    CHECK(got_message(rx, "hello", "orders", why, sizeof why), "after send --wait delivered: %s", why);

    const struct partisan_send_opts confirm = { .channel = "orders", .confirm = 1 };
    rc = partisan_send_sync_with(tx, "n2", "nobody-holds-this", "c-unheld", 8, &confirm, T);
    CHECK(rc == PARTISAN_ENONAME, "send_sync_with confirm to an unheld name: %s (%s), want ENONAME",
          partisan_strerror(rc), partisan_last_error(tx));
    rc = partisan_send_sync_with(tx, "n2", "inbox", "c-held", 6, &confirm, T);
    CHECK(rc == 0, "send_sync_with confirm to a held name: %s (%s)", partisan_strerror(rc), partisan_last_error(tx));
    CHECK(got_message(rx, "c-held", "orders", why, sizeof why), "after send_sync_with confirm: %s", why);

    /* Confirmation is a reliable channel's: refused on a plain one. */
    const struct partisan_send_opts plain_confirm = { .channel = "plain", .confirm = 1 };
    rc = partisan_send_sync_with(tx, "n2", "inbox", "c-plain", 7, &plain_confirm, T);
    CHECK(rc == PARTISAN_EINVAL, "send_sync_with confirm on a plain channel: %s, want EINVAL", partisan_strerror(rc));

    /* Pipelined: accepted at once, the far daemon's verdict follows per message. */
    const struct partisan_send_opts orders = { .channel = "orders" };
    rc = partisan_send_with(tx, "n2", "nobody-holds-this", "p-unheld", 8, &orders);
    CHECK(rc == 0, "pipelined send: %s", partisan_strerror(rc));
    uint64_t seq = partisan_last_seq(tx);
    rc = partisan_send_with(tx, "n2", "inbox", "p-held", 6, &orders);
    CHECK(rc == 0, "pipelined send: %s", partisan_strerror(rc));
    struct partisan_failure f = { 0 };
    bool have = false;
    uint64_t until = harness_now_ms() + T;
    while (!have && harness_now_ms() < until) {
        partisan_flush(tx, 100);
        struct partisan_message *m = NULL;
        if (partisan_recv(tx, &m, 50) == 0)
            partisan_message_free(m);
        have = partisan_next_failure(tx, &f);
    }
    CHECK(have, "no verdict for a pipelined send to an unheld name within %d ms", T);
    CHECK(f.seq == seq && f.code == PARTISAN_ENONAME, "verdict: seq %llu code %s (%s), want seq %llu ENONAME",
          (unsigned long long)f.seq, partisan_strerror(f.code), f.message, (unsigned long long)seq);
    CHECK(!partisan_next_failure(tx, &f), "a second failure: seq %llu %s (%s)", (unsigned long long)f.seq,
          partisan_strerror(f.code), f.message);
    CHECK(got_message(rx, "p-held", "orders", why, sizeof why), "the pipelined send to the held name: %s", why);
    /* The three sends to the unheld name are the sender's failures. */
    struct counters k;
    CHECK(counters(&nodes[0], &k) == 0, "stats of n1");
    CHECK(k.reliable_failed == 3, "n1 counts %llu failed reliable sends, want 3",
          (unsigned long long)k.reliable_failed);
}

/* ====================================================================== */
/* e) The faults section: refused without faults.enabled; with it, the
 * rules are in force, listed, and the log warns. */

/* The first line of the log at warn level or above that mentions a fault. */
static bool log_warns_fault(const char *path, char *line, size_t linelen)
{
    size_t len = 0;
    char *buf = harness_slurp(path, &len);
    bool hit = false;
    for (char *p = buf; p && p < buf + len && !hit;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(n < sizeof tmp - 1 ? n : sizeof tmp - 1), p);
        if ((strstr(tmp, ": warn: ") || strstr(tmp, ": error: ")) && strcasestr(tmp, "fault")) {
            snprintf(line, linelen, "%s", tmp);
            hit = true;
        }
        p = nl ? nl + 1 : buf + len;
    }
    free(buf);
    return hit;
}

struct logwant { const char *path; char line[1024]; };
static bool log_warns_cb(void *arg)
{
    struct logwant *w = arg;
    return log_warns_fault(w->path, w->line, sizeof w->line);
}

static void test_faults_config(void)
{
    char extra[4096], out[8192], err[4096];
    char bin[600];
    snprintf(bin, sizeof bin, "%s/partisand", harness_bin_dir());

    /* Rules, no "enabled": refused, naming the keys. Then "enabled": false. */
    static const char *const off[] = {
        "\"faults\": {\"rules\": [\"drop --peer n9 0.2\"]}",
        "\"faults\": {\"enabled\": false, \"rules\": [{\"type\": \"delay\", \"delay_ms\": 50}]}",
    };
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        make_extra(extra, sizeof extra, 2000, NULL, off[i]);
        harness_daemon_init(&nodes[0], i ? "off2" : "off1", extra);
        char *argv[] = { bin, "--config", nodes[0].config, NULL };
        int rc = harness_exec(argv, NULL, out, sizeof out, err, sizeof err, T);
        CHECK(rc != -1, "partisand started with %s (it ran for %d ms)", off[i], T);
        CHECK(rc != 0, "partisand exited 0 with %s", off[i]);
        CHECK(strstr(err, "faults.enabled") && strstr(err, "faults.rules"),
              "partisand (exit %d) with %s does not name faults.enabled and faults.rules: %s", rc, off[i], err);
        char *check[] = { bin, "--check-config", nodes[0].config, NULL };
        rc = harness_exec(check, NULL, out, sizeof out, err, sizeof err, T);
        CHECK(rc == 78 && strstr(err, "faults.enabled"), "--check-config with %s: exit %d: %s", off[i], rc, err);
    }

    /* Enabled, a rule in each form. */
    make_extra(extra, sizeof extra, 2000, NULL,
               "\"faults\": {\"enabled\": true, \"rules\": [\"drop --peer n9 --channel orders 0.2\", "
               "{\"type\": \"delay\", \"peer\": \"n9\", \"delay_ms\": 50, \"jitter_ms\": 20}]}");
    harness_daemon_init(&nodes[0], "n1", extra);
    n_nodes = 1;
    CHECK(harness_daemon_start(&nodes[0], T) == 0, "partisand did not start with faults enabled");
    int rc = CTL(&nodes[0], out, err, "fault", "list");
    CHECK(rc == 0, "fault list: exit %d: %s", rc, err);
    CHECK(strstr(out, "drop --peer n9 --channel orders 0.2") && strstr(out, "delay --peer n9 50ms --jitter 20ms"),
          "fault list does not show the configured rules:\n%s", out);
    rc = CTL(&nodes[0], out, err, "fault", "list", "--json");
    CHECK(rc == 0 && strstr(out, "\"type\":\"drop\"") && strstr(out, "\"type\":\"delay\"") &&
              strstr(out, "\"peer\":\"n9\""),
          "fault list --json: exit %d: %s%s", rc, out, err);

    struct logwant w = { .path = nodes[0].log };
    CHECK(harness_wait_until(log_warns_cb, &w, 5000), "the log carries no warning that a fault is active");
    printf("  log: %s\n", w.line);

    struct counters k;
    CHECK(counters(&nodes[0], &k) == 0, "stats");
    CHECK(k.faults_active == 2, "stats: faults_active %u, want 2", k.faults_active);
    rc = CTL(&nodes[0], out, err, "stats");
    CHECK(rc == 0 && strstr(out, "faults_active") && strstr(out, "fault_dropped") && strstr(out, "bad_checksum") &&
              strstr(out, "reliable_retransmitted"),
          "partisanctl stats does not print the new counters: exit %d: %s%s", rc, out, err);

    /* The CLI adds and clears. */
    rc = CTL(&nodes[0], out, err, "fault", "drop", "--channel", "control", "1");
    CHECK(rc == 0, "fault drop --channel control 1: exit %d: %s%s", rc, out, err);
    rc = CTL(&nodes[0], out, err, "fault", "bogus", "0.1");
    CHECK(rc != 0 && *err, "fault bogus: exit %d, stderr \"%s\"", rc, err);
    rc = CTL(&nodes[0], out, err, "fault", "list");
    CHECK(rc == 0 && strstr(out, "drop --channel control 1"), "fault list after an add: %s%s", out, err);
    rc = CTL(&nodes[0], out, err, "fault", "clear");
    CHECK(rc == 0, "fault clear: exit %d: %s%s", rc, out, err);
    rc = CTL(&nodes[0], out, err, "fault", "list");
    CHECK(rc == 0 && !strstr(out, "drop") && !strstr(out, "delay"), "fault list after clear: %s%s", out, err);
    CHECK(counters(&nodes[0], &k) == 0 && k.faults_active == 0, "faults_active %u after clear", k.faults_active);
}

#define WRAP(fn) static void fn##_wrapped(void) { fn(); after_test(); }
WRAP(test_loss_dup_reorder)
WRAP(test_corruption)
WRAP(test_partition_heal)
WRAP(test_wait_delivered)
WRAP(test_faults_config)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    harness_run("faults_config", test_faults_config_wrapped);
    harness_run("wait_delivered", test_wait_delivered_wrapped);
    harness_run("loss_dup_reorder", test_loss_dup_reorder_wrapped);
    harness_run("corruption", test_corruption_wrapped);
    harness_run("partition_heal", test_partition_heal_wrapped);
    return harness_summary();
}
