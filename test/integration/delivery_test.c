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
 *                       with it, `fault list` shows them and the log warns;
 *   hyparview_relayed   eight HyParView daemons (at most 3 neighbours each),
 *                       10 % of "orders" dropped on every node: 2,000
 *                       pipelined messages between two non-neighbours arrive
 *                       once, in order, through relays (`relayed` rises on
 *                       one); `send --wait delivered` gets its verdict end to
 *                       end (exit 0 held, 1 unheld);
 *   control_fault_pauses_pings  `fault drop --channel control 1` on both of a
 *                       pair: each sees the other down; a reliable send is
 *                       accepted meanwhile and arrives after `fault clear`.
 *   too_large_verdict   a payload above the destination's ipc.max_frame_bytes
 *                       ends with ETOOBIG; a smaller one arrives.
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

#define MAX_NODES 8
static struct daemon_proc nodes[MAX_NODES];
static int n_nodes;

/* --- configuration and cluster --- */

/* extra_json for node i (0-based): fast timers, the test channels, seeded
 * with n1 unless it is n1; `more` is spliced in as further sections. */
static void make_extra_fd(char *buf, size_t cap, unsigned ping_ms, unsigned fd_timeout_ms, const char *seed,
                          const char *more)
{
    char seeds[256] = "";
    if (seed)
        snprintf(seeds, sizeof seeds, ", \"seeds\": [\"%s\"]", seed);
    snprintf(buf, cap,
             "\"overlay\": {\"gossip_interval_ms\": 200}, "
             "\"failure_detector\": {\"ping_interval_ms\": %u, \"timeout_ms\": %u}, "
             "\"transport\": {\"backoff_initial_ms\": 50, \"backoff_max_ms\": 500, \"connect_timeout_ms\": 1000}, "
             "\"cluster\": {\"name\": \"test\"%s}, "
             "\"log\": {\"level\": \"info\"}, "
             "\"channels\": " CHANNELS "%s%s",
             ping_ms, fd_timeout_ms, seeds, more && *more ? ", " : "", more ? more : "");
}

static void make_extra(char *buf, size_t cap, unsigned fd_timeout_ms, const char *seed, const char *more)
{
    make_extra_fd(buf, cap, 200, fd_timeout_ms, seed, more);
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
static int start_cluster_fd(int n, unsigned ping_ms, unsigned fd_timeout_ms)
{
    char extra[4096], name[16];
    n_nodes = 0;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "n%d", i + 1);
        make_extra_fd(extra, sizeof extra, ping_ms, fd_timeout_ms, i ? nodes[0].listen : NULL, NULL);
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

static int start_cluster(int n, unsigned fd_timeout_ms)
{
    return start_cluster_fd(n, 200, fd_timeout_ms);
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

static partisan_client *client(const struct daemon_proc *d) { return harness_client(d); }
static partisan_client *holder(const struct daemon_proc *d, const char *name) { return harness_holder(d, name, T); }

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
    harness_close_clients();
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

/* n messages of len bytes from tx to "sink" (held by rx) on dest, on
 * "orders", pipelined; then waits until all arrived (giving up after
 * idle_ms without news, or max_ms) and judges them: 0 when every one
 * arrived exactly once and in order, else -1 and why. */
static int stream_exactly_once(partisan_client *tx, partisan_client *rx, const char *dest, uint32_t n, size_t len,
                               int idle_ms, int max_ms, char *why, size_t whylen)
{
    static struct receiver r;
    if (receiver_start(&r, rx, "orders", len, n + 100, max_ms + 30000) != 0) {
        snprintf(why, whylen, "receiver thread");
        return -1;
    }
    uint64_t t0 = harness_now_ms();
    int rc = send_stream(tx, dest, "sink", "orders", n, len, why, whylen);
    uint64_t t_flushed = harness_now_ms();
    bool all = rc == 0 && wait_received(&r, n, idle_ms, max_ms);
    usleep(300 * 1000);    /* a late duplicate would show */
    receiver_stop(&r);
    if (rc != 0)
        return -1;
    printf("  %u messages sent and flushed in %llu ms, %u received %llu ms after the first send%s\n", n,
           (unsigned long long)(t_flushed - t0), atomic_load(&r.n),
           (unsigned long long)(r.last_ms > t0 ? r.last_ms - t0 : 0), all ? "" : " (incomplete)");
    if (atomic_load(&r.error) != 0) {
        snprintf(why, whylen, "receiver: %s", partisan_strerror(atomic_load(&r.error)));
        return -1;
    }
    return judge_exact(&r, n, why, whylen) == 0 ? 0 : -1;
}

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
    char why[512];
    CHECK(stream_exactly_once(tx, rx, "n2", LOSS_N, LOSS_LEN, 30000, 90000, why, sizeof why) == 0, "%s", why);

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

/* ====================================================================== */
/* f) HyParView with small views: a reliable stream between two nodes that
 * are not neighbours, through relays that drop 10 % of its frames (as
 * does every other node, the sender's included): every message arrives
 * once and in order, a relay counts what it handed on, and `send --wait
 * delivered` gets the destination daemon's verdict through the relays. */

#define HV_NODES 8
#define HV_N 2000
#define HV_LEN 64

/* At most 3 neighbours each: with 8 nodes some pair is always 2+ hops apart. */
#define HV_OVERLAY "\"overlay\": {\"type\": \"hyparview\", \"gossip_interval_ms\": 200, \"hyparview\": {" \
                   "\"active_max_size\": 3, \"active_min_size\": 1, \"passive_max_size\": 6, " \
                   "\"shuffle_interval_ms\": 1000, \"random_promotion_interval_ms\": 1000, " \
                   "\"announce_interval_ms\": 500}}"

static int hv_index(const char *name)
{
    for (int i = 0; i < n_nodes; i++)
        if (name && strcmp(nodes[i].name, name) == 0)
            return i;
    return -1;
}

/* Every node's neighbour flags (nb[i][j]: i lists j as a neighbour). True
 * if every node answered, each lists all n_nodes members up, and the
 * relation is symmetric. */
static bool hv_snapshot(bool nb[MAX_NODES][MAX_NODES], char *why, size_t whylen)
{
    memset(nb, 0, sizeof(bool) * MAX_NODES * MAX_NODES);
    for (int i = 0; i < n_nodes; i++) {
        partisan_client *c = NULL;
        if (partisan_connect(nodes[i].socket, &c) != 0) {
            snprintf(why, whylen, "%s: connect", nodes[i].name);
            return false;
        }
        struct partisan_member *m = NULL;
        size_t n = 0;
        int rc = partisan_members(c, 0, &m, &n, T);
        partisan_close(c);
        if (rc != 0) {
            snprintf(why, whylen, "%s: members: %s", nodes[i].name, partisan_strerror(rc));
            return false;
        }
        int up = 0;
        for (size_t k = 0; k < n; k++) {
            int j = hv_index(m[k].name);
            if (j < 0 || m[k].left)
                continue;
            up += m[k].up != 0;
            nb[i][j] = m[k].neighbor != 0 && j != i;
        }
        partisan_members_free(m, n);
        if (up != n_nodes) {
            snprintf(why, whylen, "%s sees %d of %d members up", nodes[i].name, up, n_nodes);
            return false;
        }
    }
    for (int i = 0; i < n_nodes; i++)
        for (int j = 0; j < n_nodes; j++)
            if (nb[i][j] != nb[j][i]) {
                snprintf(why, whylen, "%s lists %s as a neighbour but not the other way round",
                         nb[i][j] ? nodes[i].name : nodes[j].name, nb[i][j] ? nodes[j].name : nodes[i].name);
                return false;
            }
    return true;
}

/* Hops from a to every node over nb (-1: unreachable); prev[] for the path. */
static void hv_bfs(bool nb[MAX_NODES][MAX_NODES], int a, int dist[MAX_NODES], int prev[MAX_NODES])
{
    int queue[MAX_NODES], head = 0, tail = 0;
    for (int i = 0; i < MAX_NODES; i++)
        dist[i] = prev[i] = -1;
    dist[a] = 0;
    queue[tail++] = a;
    while (head < tail) {
        int i = queue[head++];
        for (int j = 0; j < n_nodes; j++)
            if (nb[i][j] && dist[j] < 0) {
                dist[j] = dist[i] + 1;
                prev[j] = i;
                queue[tail++] = j;
            }
    }
}

/* Waits until every node sees all up, the neighbour graph is symmetric and
 * connected, and it has not changed for 1.5 s (3 announcements: every
 * route is then current). True, with nb the settled graph. */
static bool hv_settle(bool nb[MAX_NODES][MAX_NODES], int timeout_ms, char *why, size_t whylen)
{
    static bool last[MAX_NODES][MAX_NODES];
    bool have = false;
    uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms, since = 0;
    while (harness_now_ms() < deadline) {
        if (hv_snapshot(nb, why, whylen)) {
            int dist[MAX_NODES], prev[MAX_NODES], reached = 0;
            hv_bfs(nb, 0, dist, prev);
            for (int i = 0; i < n_nodes; i++)
                reached += dist[i] >= 0;
            if (reached == n_nodes) {
                if (!have || memcmp(last, nb, sizeof last) != 0)
                    since = harness_now_ms();
                memcpy(last, nb, sizeof last);
                have = true;
                if (harness_now_ms() - since >= 1500)
                    return true;
            } else {
                snprintf(why, whylen, "the neighbour graph is split: %d of %d reachable from n1", reached, n_nodes);
                have = false;
            }
        } else {
            have = false;
        }
        usleep(200 * 1000);
    }
    if (have)
        snprintf(why, whylen, "the neighbour views kept changing for %d ms", timeout_ms);
    return false;
}

/* Whether `partisanctl --json members` on d marks `who` as a neighbour:
 * 1, 0, or -1 (why). */
static int ctl_neighbour(const struct daemon_proc *d, const char *who, char *why, size_t whylen)
{
    static char out[32768];
    char err[1024];
    int rc = CTL(d, out, err, "--json", "members");
    if (rc != 0) {
        snprintf(why, whylen, "partisanctl --json members on %s: exit %d: %s", d->name, rc, err);
        return -1;
    }
    char detail[512];
    int nb = harness_json_neighbor(out, who, detail, sizeof detail);
    if (nb < 0)
        snprintf(why, whylen, "%s: %s", d->name, detail);
    return nb;
}

/* The `relayed` counter that `partisanctl stats` prints on d, or -1. */
static long long ctl_relayed(const struct daemon_proc *d)
{
    static char out[65536];
    char err[1024];
    if (CTL(d, out, err, "stats") != 0)
        return -1;
    const char *p = strstr(out, " relayed: ");
    return p ? strtoll(p + strlen(" relayed: "), NULL, 10) : -1;
}

/* Sends "probe" on the plain channel from tx until one reaches rx (a route
 * through relays is learned from announcements: until then a relay drops
 * what it gets), then takes late probes off rx. True if one came. */
static bool probe_route(partisan_client *tx, partisan_client *rx, const char *node, const char *name, int timeout_ms)
{
    const struct partisan_send_opts plain = { .channel = "plain" };
    bool through = false;
    for (uint64_t until = harness_now_ms() + (uint64_t)timeout_ms; !through && harness_now_ms() < until;) {
        if (partisan_send_sync_with(tx, node, name, "probe", 5, &plain, T) != 0) {
            usleep(100 * 1000);
            continue;
        }
        struct partisan_message *m = NULL;
        if (partisan_recv(rx, &m, 300) == 0) {
            through = m->kind == PARTISAN_MSG_DATA && m->len == 5 && memcmp(m->payload, "probe", 5) == 0;
            partisan_message_free(m);
        }
    }
    struct partisan_message *late = NULL;
    while (through && partisan_recv(rx, &late, 200) == 0) {
        partisan_message_free(late);
        late = NULL;
    }
    return through;
}

static void test_hyparview_relayed(void)
{
    char extra[4096], name[16], why[512];
    n_nodes = 0;
    uint64_t t_start = harness_now_ms();
    for (int i = 0; i < HV_NODES; i++) {
        char seeds[256] = "";
        if (i)   /* a tree of contacts: n2,n3 through n1, n4,n5 through n2, ... */
            snprintf(seeds, sizeof seeds, ", \"seeds\": [\"%s\"]", nodes[(i - 1) / 2].listen);
        snprintf(extra, sizeof extra,
                 HV_OVERLAY ", "
                 "\"failure_detector\": {\"ping_interval_ms\": 200, \"timeout_ms\": 2000}, "
                 "\"transport\": {\"backoff_initial_ms\": 50, \"backoff_max_ms\": 500, \"connect_timeout_ms\": 1000}, "
                 "\"cluster\": {\"name\": \"test\"%s}, \"log\": {\"level\": \"info\"}, \"channels\": " CHANNELS,
                 seeds);
        snprintf(name, sizeof name, "n%d", i + 1);
        harness_daemon_init(&nodes[i], name, extra);
        CHECK(harness_daemon_start(&nodes[i], T) == 0, "%s did not start", name);
        n_nodes = i + 1;
    }
    static bool nb[MAX_NODES][MAX_NODES];
    why[0] = '\0';
    CHECK(hv_settle(nb, 20000, why, sizeof why), "%d HyParView daemons did not settle within 20 s: %s", HV_NODES,
          why);
    uint64_t t_settled = harness_now_ms();

    /* The farthest pair: a sends, b receives. */
    int a = -1, b = -1, far = 0, dist[MAX_NODES], prev[MAX_NODES];
    for (int i = 0; i < n_nodes; i++) {
        hv_bfs(nb, i, dist, prev);
        for (int j = 0; j < n_nodes; j++)
            if (dist[j] > far)
                far = dist[j], a = i, b = j;
    }
    CHECK(far >= 2, "every pair of the %d nodes is direct: nothing would be relayed", HV_NODES);
    hv_bfs(nb, a, dist, prev);
    int hop_list[MAX_NODES], n_hops = 0;
    for (int k = b; k >= 0 && n_hops < MAX_NODES; k = prev[k])
        hop_list[n_hops++] = k;
    char path[256] = "";
    for (int k = n_hops - 1; k >= 0; k--) {
        size_t l = strlen(path);
        snprintf(path + l, sizeof path - l, "%s%s", nodes[hop_list[k]].name, k ? " -> " : "");
    }
    const struct daemon_proc *src = &nodes[a], *dst = &nodes[b];
    int isnb = ctl_neighbour(src, dst->name, why, sizeof why);
    CHECK(isnb >= 0, "%s", why);
    CHECK(isnb == 0, "members --json on %s marks %s as a neighbour, the snapshot said %d hops", src->name, dst->name,
          far);
    printf("  %d daemons settled %llu ms after the first start; %s -> %s, %d hops (a shortest path over the views: %s)\n", HV_NODES,
           (unsigned long long)(t_settled - t_start), src->name, dst->name, far, path);

    /* The route holds before the faults. */
    partisan_client *rx = holder(dst, "sink"), *inbox = holder(dst, "inbox"), *tx = client(src);
    CHECK(rx && inbox && tx, "connect/register");
    CHECK(probe_route(tx, inbox, dst->name, "inbox", 10000), "no probe from %s reached %s within 10 s", src->name,
          dst->name);

    long long relayed0[MAX_NODES];
    for (int i = 0; i < n_nodes; i++) {
        relayed0[i] = ctl_relayed(&nodes[i]);
        CHECK(relayed0[i] >= 0, "partisanctl stats on %s prints no relayed counter", nodes[i].name);
    }
    char out[4096], err[2048];
    for (int i = 0; i < n_nodes; i++) {
        int rc = CTL(&nodes[i], out, err, "fault", "drop", "--channel", "orders", "0.1");
        CHECK(rc == 0, "fault drop on %s: exit %d: %s%s", nodes[i].name, rc, out, err);
    }

    CHECK(stream_exactly_once(tx, rx, dst->name, HV_N, HV_LEN, 8000, 20000, why, sizeof why) == 0, "%s", why);
    int rc;

    /* The verdict comes end to end, through the relays, faults still on. */
    rc = CTL(src, out, err, "send", "--channel", "orders", "--wait", "delivered", dst->name, "inbox", "verdict");
    CHECK(rc == 0, "send --wait delivered %s inbox: exit %d (stdout: %s, stderr: %s)", dst->name, rc, out, err);
    struct partisan_message *m = NULL;
    rc = partisan_recv(inbox, &m, 3000);
    bool got = rc == 0 && m->kind == PARTISAN_MSG_DATA && m->len == 7 && memcmp(m->payload, "verdict", 7) == 0 &&
               m->from_node && strcmp(m->from_node, src->name) == 0;
    if (rc == 0)
        partisan_message_free(m);
    CHECK(got, "inbox on %s did not get \"verdict\" from %s: %s", dst->name, src->name,
          rc ? partisan_strerror(rc) : "another message");
    rc = CTL(src, out, err, "send", "--channel", "orders", "--wait", "delivered", dst->name, "nobody-holds-this",
             "verdict");
    CHECK(rc == 1, "send --wait delivered %s nobody-holds-this: exit %d, want 1 (stdout: %s, stderr: %s)", dst->name,
          rc, out, err);
    CHECK(strstr(err, "name"), "stderr does not say nobody holds the name: \"%s\"", err);

    /* It went through relays, and the relays' faults acted. */
    long long rose_max = 0, rose_sum = 0;
    int rose_at = -1;
    char rises[256] = "";
    for (int i = 0; i < n_nodes; i++) {
        if (i == a || i == b)
            continue;
        long long v = ctl_relayed(&nodes[i]);
        CHECK(v >= 0, "partisanctl stats on %s prints no relayed counter", nodes[i].name);
        long long d = v - relayed0[i];
        rose_sum += d;
        if (d > rose_max)
            rose_max = d, rose_at = i;
        if (d > 0) {
            size_t l = strlen(rises);
            snprintf(rises + l, sizeof rises - l, " %s +%lld", nodes[i].name, d);
        }
    }
    printf("  relayed during the stream:%s\n", *rises ? rises : " nowhere");
    CHECK(rose_at >= 0, "no node other than %s and %s relayed anything: the stream went direct", src->name,
          dst->name);
    isnb = ctl_neighbour(src, dst->name, why, sizeof why);
    CHECK(isnb >= 0, "%s", why);
    if (isnb)    /* the views changed meanwhile (random promotion) */
        printf("  %s became a neighbour of %s during the test\n", dst->name, src->name);
    else         /* the route never went direct: each message was handed on at least once */
        CHECK(rose_sum >= HV_N, "the relays handed on %lld frames in all, fewer than the %d messages", rose_sum, HV_N);
    struct counters ks, kr;
    CHECK(counters(src, &ks) == 0 && counters(&nodes[rose_at], &kr) == 0, "stats");
    print_counters(src->name, &ks);
    print_counters(nodes[rose_at].name, &kr);
    CHECK(ks.fault_dropped > 0, "%s dropped no frame of orders at 10 %%", src->name);
    /* A relay that carried only a few frames (the route went direct when
     * the views changed) may by chance have dropped none. */
    if (rose_max >= HV_N / 4)
        CHECK(kr.fault_dropped > 0, "the relay %s dropped no frame of orders at 10 %%", nodes[rose_at].name);
    CHECK(ks.reliable_retransmitted > 0, "%s retransmitted nothing under 10 %% loss per hop", src->name);
    printf("  whole test %llu ms\n", (unsigned long long)(harness_now_ms() - t_start));
}

/* ====================================================================== */
/* g) All control frames dropped on both of a full-mesh pair: pings stop,
 * each sees the other down; a reliable send is still accepted then, and
 * arrives once `fault clear` brings them up again. */

struct watch_want { partisan_client *w; const char *node; int event; bool seen; };
static bool watch_cb(void *arg)
{
    struct watch_want *ww = arg;
    struct partisan_message *m = NULL;
    while (!ww->seen && partisan_recv(ww->w, &m, 0) == 0) {
        ww->seen = m->kind == PARTISAN_MSG_EVENT && (int)m->event == ww->event && m->node &&
                   strcmp(m->node, ww->node) == 0;
        partisan_message_free(m);
        m = NULL;
    }
    return ww->seen;
}

struct both_want { int want; };
static bool both_cb(void *arg)
{
    const struct both_want *bw = arg;
    return sees_up(&nodes[0], "n2") == bw->want && sees_up(&nodes[1], "n1") == bw->want;
}

static void test_control_fault_pauses_pings(void)
{
    uint64_t t_start = harness_now_ms();
    CHECK(start_cluster_fd(2, 100, 1000) == 0, "the pair did not come up");
    partisan_client *rx = holder(&nodes[1], "sink"), *tx = client(&nodes[0]), *w = client(&nodes[0]);
    CHECK(rx && tx && w, "connect/register");
    CHECK(partisan_subscribe(w, T) == 0, "subscribe on n1: %s", partisan_last_error(w));
    const struct partisan_send_opts orders = { .channel = "orders" }, confirm = { .channel = "orders", .confirm = 1 };
    int rc = partisan_send_sync_with(tx, "n2", "sink", "before", 6, &confirm, T);
    CHECK(rc == 0, "confirmed send before the fault: %s (%s)", partisan_strerror(rc), partisan_last_error(tx));
    char why[512];
    CHECK(got_message(rx, "before", "orders", why, sizeof why), "before the fault: %s", why);

    char out[4096], err[2048];
    uint64_t t0 = harness_now_ms();
    for (int i = 0; i < 2; i++) {
        rc = CTL(&nodes[i], out, err, "fault", "drop", "--channel", "control", "1");
        CHECK(rc == 0, "fault drop --channel control 1 on %s: exit %d: %s%s", nodes[i].name, rc, out, err);
    }
    struct both_want down = { 0 };
    bool ok = harness_wait_until(both_cb, &down, 8000);
    uint64_t t_down = harness_now_ms();
    CHECK(ok, "within 8 s of dropping control: n1 sees n2 %s, n2 sees n1 %s", sees_up(&nodes[0], "n2") ? "up" : "down",
          sees_up(&nodes[1], "n1") ? "up" : "down");
    struct watch_want wd = { w, "n2", PARTISAN_EVENT_DOWN, false };
    CHECK(harness_wait_until(watch_cb, &wd, 2000), "n1's watcher got no down event for n2");
    rc = CTL(&nodes[0], out, err, "members");
    CHECK(rc == 0, "members on n1: exit %d: %s", rc, err);

    /* Accepted while n2 is down: it waits for it. */
    rc = partisan_send_sync_with(tx, "n2", "sink", "while-down", 10, &orders, T);
    CHECK(rc == 0, "a reliable send to n2 while n1 sees it down: %s (%s)", partisan_strerror(rc),
          partisan_last_error(tx));
    struct partisan_message *early = NULL;
    bool arrived_early = partisan_recv(rx, &early, 300) == 0;
    if (arrived_early)
        partisan_message_free(early);

    uint64_t t_clear = harness_now_ms();
    for (int i = 0; i < 2; i++) {
        rc = CTL(&nodes[i], out, err, "fault", "clear");
        CHECK(rc == 0, "fault clear on %s: exit %d: %s%s", nodes[i].name, rc, out, err);
    }
    struct both_want up = { 1 };
    ok = harness_wait_until(both_cb, &up, 8000);
    uint64_t t_up = harness_now_ms();
    CHECK(ok, "within 8 s of fault clear: n1 sees n2 %s, n2 sees n1 %s", sees_up(&nodes[0], "n2") ? "up" : "down",
          sees_up(&nodes[1], "n1") ? "up" : "down");
    struct watch_want wu = { w, "n2", PARTISAN_EVENT_UP, false };
    CHECK(harness_wait_until(watch_cb, &wu, 2000), "n1's watcher got no up event for n2");
    if (!arrived_early)
        CHECK(got_message(rx, "while-down", "orders", why, sizeof why), "the message sent while down: %s", why);
    struct partisan_message *extra = NULL;
    rc = partisan_recv(rx, &extra, 300);
    if (rc == 0)
        partisan_message_free(extra);
    CHECK(rc == PARTISAN_ETIMEDOUT, "n2 got a second message after the one sent while down (a duplicate?)");

    struct counters k1, k2;
    CHECK(counters(&nodes[0], &k1) == 0 && counters(&nodes[1], &k2) == 0, "stats");
    CHECK(k1.fault_dropped > 0 && k2.fault_dropped > 0, "fault_dropped: n1 %llu, n2 %llu",
          (unsigned long long)k1.fault_dropped, (unsigned long long)k2.fault_dropped);
    CHECK(k1.faults_active == 0 && k2.faults_active == 0, "faults still active after clear");
    printf("  both down %llu ms after the drop; the message sent while down %s; both up %llu ms after the clear; "
           "%llu ms in all\n", (unsigned long long)(t_down - t0),
           arrived_early ? "ARRIVED while down" : "waited", (unsigned long long)(t_up - t_clear),
           (unsigned long long)(harness_now_ms() - t_start));
}

/* ====================================================================== */
/* A payload the destination's applications could not take (above its
 * ipc.max_frame_bytes) gets the TOO_LARGE verdict, not endless resends. */

static void test_too_large_verdict(void)
{
    char extra[4096];
    make_extra(extra, sizeof extra, 2000, NULL, NULL);
    harness_daemon_init(&nodes[0], "n1", extra);
    CHECK(harness_daemon_start(&nodes[0], T) == 0, "n1 did not start");
    n_nodes = 1;
    make_extra(extra, sizeof extra, 2000, nodes[0].listen, "\"ipc\": {\"socket\": \"@SOCK@\", \"max_frame_bytes\": 1024}");
    harness_daemon_init(&nodes[1], "n2", extra);
    CHECK(harness_daemon_start(&nodes[1], T) == 0, "n2 did not start");
    n_nodes = 2;
    CHECK(harness_wait_until(all_up, NULL, 20000), "the pair did not come up");
    partisan_client *rx = holder(&nodes[1], "inbox"), *tx = client(&nodes[0]);
    CHECK(rx && tx, "connect/register");
    static char big[2000];
    memset(big, 'x', sizeof big);
    const struct partisan_send_opts confirm = { .channel = "orders", .confirm = 1 };
    int rc = partisan_send_sync_with(tx, "n2", "inbox", big, sizeof big, &confirm, T);
    CHECK(rc == PARTISAN_ETOOBIG, "2000 bytes to n2 (ipc.max_frame_bytes 1024): %s (%s), want ETOOBIG",
          partisan_strerror(rc), partisan_last_error(tx));
    rc = partisan_send_sync_with(tx, "n2", "inbox", big, 100, &confirm, T);
    CHECK(rc == 0, "100 bytes to n2: %s (%s)", partisan_strerror(rc), partisan_last_error(tx));
    struct partisan_message *m = NULL;
    rc = partisan_recv(rx, &m, T);
    CHECK(rc == 0 && m->kind == PARTISAN_MSG_DATA && m->len == 100, "n2's app did not get the 100 bytes: %s",
          rc ? partisan_strerror(rc) : "another message");
    partisan_message_free(m);
}

#define WRAP(fn) static void fn##_wrapped(void) { fn(); after_test(); }
WRAP(test_loss_dup_reorder)
WRAP(test_corruption)
WRAP(test_partition_heal)
WRAP(test_wait_delivered)
WRAP(test_faults_config)
WRAP(test_hyparview_relayed)
WRAP(test_control_fault_pauses_pings)
WRAP(test_too_large_verdict)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    harness_run("faults_config", test_faults_config_wrapped);
    harness_run("wait_delivered", test_wait_delivered_wrapped);
    harness_run("loss_dup_reorder", test_loss_dup_reorder_wrapped);
    harness_run("corruption", test_corruption_wrapped);
    harness_run("partition_heal", test_partition_heal_wrapped);
    harness_run("hyparview_relayed", test_hyparview_relayed_wrapped);
    harness_run("control_fault_pauses_pings", test_control_fault_pauses_pings_wrapped);
    harness_run("too_large_verdict", test_too_large_verdict_wrapped);
    return harness_summary();
}
