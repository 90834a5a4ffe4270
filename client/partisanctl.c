/* partisanctl: the command-line face of libpartisan-client.
 * Exit codes: 0 success, 1 an error (one "partisanctl: ..." line on stderr),
 * 2 a usage error (a message and the short usage on stderr). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "partisan.h"

#ifndef PARTISAN_VERSION
#define PARTISAN_VERSION "unknown"
#endif

#define DEV_SOCKET "./run/partisand.sock"
#define DEFAULT_TIMEOUT_MS 10000
#define MAX_PAYLOAD (16u * 1024 * 1024)   /* read from stdin or a file */

static const char short_usage[] =
    "usage: partisanctl [--socket PATH] [--json] [--timeout-ms MS] COMMAND [ARGS]\n"
    "commands: status | members [--all] | stats |\n"
    "          send [--channel NAME] [--key KEY] [--wait delivered] NODE NAME MESSAGE|@FILE|- |\n"
    "          broadcast NAME MESSAGE|@FILE|- |\n"
    "          recv NAME [--count N] [--timeout-ms MS] | watch | join HOST:PORT |\n"
    "          leave [NODE] | forget NODE | fault RULE|list [--json]|clear [ID] | help\n"
    "run 'partisanctl --help' for details\n";

static const char long_usage[] =
    "usage: partisanctl [--socket PATH] [--json] [--timeout-ms MS] COMMAND [ARGS]\n"
    "\n"
    "Talks to the local partisand over its Unix socket.\n"
    "\n"
    "Options (before or after the command):\n"
    "  --socket PATH      the daemon's socket. Default: $PARTISAN_SOCKET, else\n"
    "                     " PARTISAN_DEFAULT_SOCKET ". When neither --socket nor\n"
    "                     $PARTISAN_SOCKET is set and that default does not exist\n"
    "                     but " DEV_SOCKET " does (the development daemon of\n"
    "                     'make run'), that one is used.\n"
    "  --json             machine-readable output (one JSON value per line)\n"
    "  --timeout-ms MS    how long to wait for each reply from the daemon\n"
    "                     (default 10000; -1 waits for ever). For recv it is the\n"
    "                     wait for each message instead (default: for ever).\n"
    "  -h, --help         this text\n"
    "  --version          print the version\n"
    "\n"
    "Commands:\n"
    "  status             this node's name, cluster, overlay, addresses, uptime\n"
    "                     and member counts\n"
    "  members [--all]    the member table; --all includes members that left;\n"
    "                     NEIGHBOR: a direct neighbour of this node\n"
    "  broadcast NAME MESSAGE\n"
    "                     MESSAGE (or '-', '@FILE', as for send) to the application\n"
    "                     registered as NAME on every node, this one included\n"
    "  stats              traffic per peer and channel: connections, messages and\n"
    "                     bytes sent and received, queued, superseded, paused,\n"
    "                     requeued, lost, reconnects; then this node's flow_waits,\n"
    "                     spoofed and undeliverable counters, its reliable channels'\n"
    "                     and the injected faults' counters\n"
    "  send [--channel NAME] [--key KEY] [--wait delivered] NODE NAME MESSAGE\n"
    "                     send MESSAGE to the application registered as NAME on\n"
    "                     NODE and wait for the daemon's verdict. MESSAGE '-'\n"
    "                     reads the payload from stdin, '@FILE' from FILE (at\n"
    "                     most 16 MiB); a payload that starts with '@' has to come\n"
    "                     from stdin. Use '--' before a MESSAGE that starts with\n"
    "                     '-'. --channel sends on that channel of the daemon's\n"
    "                     config (default: \"default\"); --key sets a partition key\n"
    "                     (1..255 bytes): messages with the same key keep their\n"
    "                     order. --wait delivered (reliable channels only) exits 0\n"
    "                     only once NODE's daemon has handed the message to the\n"
    "                     application holding NAME, and 1 saying why not (nobody\n"
    "                     holds it, the node left or restarted); without it, 0\n"
    "                     means this daemon accepted the message. The options may\n"
    "                     also follow the arguments.\n"
    "  recv NAME [--count N] [--timeout-ms MS]\n"
    "                     register NAME and print each message received, one per\n"
    "                     line (with --json: from, name, channel, payload); stop\n"
    "                     after N messages (default 1, 0: never).\n"
    "                     Exits 1 if a wait for a message exceeds MS.\n"
    "  watch              print membership events as they happen:\n"
    "                     EVENT NODE ADDRESS, EVENT one of joined, left, up, down\n"
    "  join HOST:PORT     join the cluster through the member at HOST:PORT\n"
    "  leave [NODE]       make this node (or NODE) leave the cluster for good\n"
    "  forget NODE        purge NODE (gone for good) from every node's member list\n"
    "  fault RULE         inject a fault on this node's traffic (admin), until\n"
    "                     cleared; RULE is one of\n"
    "                       drop      [--peer NODE] [--channel CH] P\n"
    "                       delay     [--peer NODE] [--channel CH] DURATION [--jitter DURATION]\n"
    "                       duplicate [--peer NODE] [--channel CH] P\n"
    "                       reorder   [--peer NODE] [--channel CH] P [--by DURATION]\n"
    "                       corrupt   [--peer NODE] [--channel CH] P [--bits N]\n"
    "                       partition NODE,NODE... NODE,NODE... [--channel CH]\n"
    "                     P a probability (0.2 or 20%), DURATION with a unit (50ms,\n"
    "                     2s); channel \"control\" is gossip and pings. Partitions\n"
    "                     cut both directions; apply them on every node involved.\n"
    "  fault list [--json]  the rules in force, with what each matched and did\n"
    "  fault clear [ID]   remove one rule, or all\n"
    "  help               this text\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 usage error.\n";

struct opts {
    const char *socket;
    bool json;
    int timeout_ms;
    bool timeout_given;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("partisanctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("partisanctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs(short_usage, stderr);
    exit(2);
}

/* "partisanctl: CONTEXT: cause (daemon's detail)". */
static void die_call(partisan_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static void die_call(partisan_client *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("partisanctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *cause = partisan_strerror(rc);
    const char *detail = c ? partisan_last_error(c) : "";
    fprintf(stderr, ": %s", cause);
    if (*detail && strcmp(detail, cause) != 0)
        fprintf(stderr, " (%s)", detail);
    fputc('\n', stderr);
    exit(1);
}

static int parse_int(const char *opt, const char *s, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > INT_MAX)
        usage_error("%s: bad number \"%s\"", opt, s);
    return (int)v;
}

static bool path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static const char *socket_path(const struct opts *o)
{
    if (o->socket)
        return o->socket;
    const char *env = getenv("PARTISAN_SOCKET");
    if (env && *env)
        return env;
    if (!path_exists(PARTISAN_DEFAULT_SOCKET) && path_exists(DEV_SOCKET))
        return DEV_SOCKET;
    return PARTISAN_DEFAULT_SOCKET;
}

static partisan_client *connect_or_die(const struct opts *o)
{
    const char *path = socket_path(o);
    partisan_client *c;
    int rc = partisan_connect(path, &c);
    if (rc == PARTISAN_ENODAEMON)
        die("no daemon at %s (is partisand running? set --socket or PARTISAN_SOCKET)", path);
    if (rc == PARTISAN_EINVAL)
        die("socket path too long: %s", path);
    if (rc == PARTISAN_EIO)
        die("cannot connect to %s: %s", path, strerror(errno));
    if (rc)
        die("cannot connect to %s: %s", path, partisan_strerror(rc));
    return c;
}

static void print_json(json_t *v)
{
    if (!v)
        die("out of memory building JSON output");
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        die("out of memory building JSON output");
    puts(s);
    free(s);
    json_decref(v);
}

static void flush_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        die("writing to stdout: %s", strerror(errno));
}

/* ---- commands ---- */

static int cmd_status(partisan_client *c, const struct opts *o)
{
    struct partisan_status *s;
    int rc = partisan_status(c, &s, o->timeout_ms);
    if (rc)
        die_call(c, rc, "status");
    if (o->json) {
        print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, "
                             "s:I, s:I, s:I, s:I, s:I}",
                             "node", s->node, "cluster", s->cluster, "overlay", s->overlay,
                             "listen", s->listen, "socket", s->socket, "version", s->version,
                             "uptime_s", (json_int_t)s->uptime_s,
                             "members", (json_int_t)s->members,
                             "members_up", (json_int_t)s->members_up,
                             "membership", s->left ? "left" : "alive",
                             "undeliverable", (json_int_t)s->undeliverable,
                             "peer_bad_frames", (json_int_t)s->peer_bad_frames,
                             "peer_refused", (json_int_t)s->peer_refused,
                             "peer_queue_full", (json_int_t)s->peer_queue_full,
                             "peer_pending", (json_int_t)s->peer_pending,
                             "peer_pending_refused", (json_int_t)s->peer_pending_refused,
                             "peer_handshake_timeouts", (json_int_t)s->peer_handshake_timeouts,
                             "peer_idle_closed", (json_int_t)s->peer_idle_closed,
                             "peer_duplicate_names", (json_int_t)s->peer_duplicate_names));
    } else {
        printf("node: %s\ncluster: %s\noverlay: %s\nlisten: %s\nsocket: %s\nversion: %s\n"
               "uptime: %llus\nmembers: %u\nmembers_up: %u\nmembership: %s\nundeliverable: %llu\n"
               "peer_bad_frames: %llu\npeer_refused: %llu\npeer_queue_full: %llu\n"
               "peer_pending: %u\npeer_pending_refused: %llu\npeer_handshake_timeouts: %llu\n"
               "peer_idle_closed: %llu\npeer_duplicate_names: %llu\n",
               s->node, s->cluster, s->overlay, s->listen, s->socket, s->version,
               (unsigned long long)s->uptime_s, s->members, s->members_up,
               s->left ? "left (restart partisand to rejoin)" : "alive",
               (unsigned long long)s->undeliverable, (unsigned long long)s->peer_bad_frames,
               (unsigned long long)s->peer_refused, (unsigned long long)s->peer_queue_full, s->peer_pending,
               (unsigned long long)s->peer_pending_refused, (unsigned long long)s->peer_handshake_timeouts,
               (unsigned long long)s->peer_idle_closed, (unsigned long long)s->peer_duplicate_names);
    }
    partisan_status_free(s);
    return 0;
}

static int cmd_members(partisan_client *c, const struct opts *o, bool all)
{
    struct partisan_member *m;
    size_t n;
    int rc = partisan_members(c, all, &m, &n, o->timeout_ms);
    if (rc)
        die_call(c, rc, "members");
    if (o->json) {
        json_t *arr = json_array();
        if (!arr)
            die("out of memory building JSON output");
        for (size_t i = 0; i < n; i++) {
            if (m[i].left && !all)
                continue;
            json_t *e = json_pack("{s:s, s:s, s:I, s:s, s:s, s:b}", "name", m[i].name,
                                  "address", m[i].address,
                                  "incarnation", (json_int_t)m[i].incarnation,
                                  "membership", m[i].left ? "left" : "alive",
                                  "reachability", m[i].up ? "up" : "down",
                                  "neighbor", m[i].neighbor);
            if (!e || json_array_append_new(arr, e) != 0)
                die("out of memory building JSON output");
        }
        print_json(arr);
    } else {
        int wn = (int)strlen("NAME"), wa = (int)strlen("ADDRESS"), wi = (int)strlen("INCARNATION");
        char inc[24];
        for (size_t i = 0; i < n; i++) {
            int l;
            if ((l = (int)strlen(m[i].name)) > wn) wn = l;
            if ((l = (int)strlen(m[i].address)) > wa) wa = l;
            if ((l = snprintf(inc, sizeof inc, "%llu", (unsigned long long)m[i].incarnation)) > wi) wi = l;
        }
        printf("%-*s  %-*s  %-*s  %-10s  %-12s  %s\n", wn, "NAME", wa, "ADDRESS", wi, "INCARNATION",
               "MEMBERSHIP", "REACHABILITY", "NEIGHBOR");
        for (size_t i = 0; i < n; i++) {
            if (m[i].left && !all)
                continue;
            printf("%-*s  %-*s  %*llu  %-10s  %-12s  %s\n", wn, m[i].name, wa, m[i].address, wi,
                   (unsigned long long)m[i].incarnation, m[i].left ? "left" : "alive",
                   m[i].up ? "up" : "down", m[i].neighbor ? "yes" : "no");
        }
    }
    partisan_members_free(m, n);
    return 0;
}

/* Reads fd to its end; `what` names it in errors ("stdin", a file name). */
static uint8_t *read_all(int fd, const char *what, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        die("out of memory reading %s", what);
    for (;;) {
        if (n == cap) {
            if (cap > MAX_PAYLOAD)
                die("message from %s is larger than %u MiB", what, MAX_PAYLOAD >> 20);
            cap *= 2;
            uint8_t *p = realloc(buf, cap);
            if (!p)
                die("out of memory reading %s", what);
            buf = p;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("reading %s: %s", what, strerror(errno));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > MAX_PAYLOAD)
        die("message from %s is larger than %u MiB", what, MAX_PAYLOAD >> 20);
    *len = n;
    return buf;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    uint8_t *buf = read_all(fd, path, len);
    close(fd);
    return buf;
}

/* MESSAGE as the commands take it: itself, '-' for stdin, '@FILE'. */
static const void *message_payload(const char *message, uint8_t **owned, size_t *len)
{
    *owned = NULL;
    *len = strlen(message);
    if (strcmp(message, "-") == 0)
        return *owned = read_all(STDIN_FILENO, "stdin", len);
    if (message[0] == '@')
        return *owned = read_file(message + 1, len);
    return message;
}

static int cmd_broadcast(partisan_client *c, const struct opts *o, const char *name, const char *message)
{
    uint8_t *owned;
    size_t len;
    const void *payload = message_payload(message, &owned, &len);
    int rc = partisan_broadcast(c, name, payload, len, o->timeout_ms);
    free(owned);
    if (rc)
        die_call(c, rc, "broadcast to %s", name);
    return 0;
}

static int cmd_send(partisan_client *c, const struct opts *o, const char *node, const char *name,
                    const char *message, const struct partisan_send_opts *so)
{
    uint8_t *owned;
    size_t len;
    const void *payload = message_payload(message, &owned, &len);
    int rc = partisan_send_sync_with(c, node, name, payload, len, so, o->timeout_ms);
    free(owned);
    if (rc)
        die_call(c, rc, "send to %s@%s", name, node);
    return 0;
}

/* The counters of one row of the stats table, in column order. */
enum { STATS_COLS = 11 };

static void stats_row(const struct partisan_channel_stats *r, unsigned long long v[STATS_COLS])
{
    v[0] = r->connections;
    v[1] = r->msgs_sent;
    v[2] = r->bytes_sent;
    v[3] = r->msgs_received;
    v[4] = r->bytes_received;
    v[5] = r->queued_msgs;
    v[6] = r->superseded;
    v[7] = r->paused;
    v[8] = r->requeued;
    v[9] = r->lost;
    v[10] = r->reconnects;
}

/* The node-wide counters of reliable channels and fault injection, one
 * "name value" line each (and JSON keys of the same names). */
#define COUNTER(f) { #f, get_##f }
#define GETTER(f) static uint64_t get_##f(const struct partisan_stats *s) { return s->f; }
GETTER(reliable_sent) GETTER(reliable_retransmitted) GETTER(reliable_delivered) GETTER(reliable_duplicates)
GETTER(reliable_failed) GETTER(reliable_outstanding) GETTER(causal_held) GETTER(bad_checksum)
GETTER(fault_dropped) GETTER(fault_delayed) GETTER(fault_duplicated) GETTER(fault_reordered)
GETTER(fault_corrupted) GETTER(fault_partitioned) GETTER(faults_active)
static const struct { const char *name; uint64_t (*get)(const struct partisan_stats *); } node_counters[] = {
    COUNTER(reliable_sent), COUNTER(reliable_retransmitted), COUNTER(reliable_delivered),
    COUNTER(reliable_duplicates), COUNTER(reliable_failed), COUNTER(reliable_outstanding), COUNTER(causal_held),
    COUNTER(bad_checksum), COUNTER(fault_dropped), COUNTER(fault_delayed), COUNTER(fault_duplicated),
    COUNTER(fault_reordered), COUNTER(fault_corrupted), COUNTER(fault_partitioned), COUNTER(faults_active),
};
#define N_NODE_COUNTERS (sizeof node_counters / sizeof node_counters[0])

static int cmd_fault(partisan_client *c, const struct opts *o, int argc, char **argv)
{
    char *text = NULL;
    int rc = partisan_fault(c, argc, (const char *const *)argv, &text, o->timeout_ms);
    if (rc)
        die_call(c, rc, "fault %s", argv[0]);
    fputs(text ? text : "", stdout);
    if (text && *text && text[strlen(text) - 1] != '\n')
        putchar('\n');
    free(text);
    return 0;
}

static int cmd_stats(partisan_client *c, const struct opts *o)
{
    struct partisan_stats *s;
    int rc = partisan_stats(c, &s, o->timeout_ms);
    if (rc)
        die_call(c, rc, "stats");
    if (o->json) {
        json_t *arr = json_array();
        if (!arr)
            die("out of memory building JSON output");
        for (size_t i = 0; i < s->n_channels; i++) {
            const struct partisan_channel_stats *r = &s->channels[i];
            json_t *e = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                                  "peer", r->peer, "channel", r->channel,
                                  "connections", (json_int_t)r->connections,
                                  "msgs_sent", (json_int_t)r->msgs_sent,
                                  "bytes_sent", (json_int_t)r->bytes_sent,
                                  "msgs_received", (json_int_t)r->msgs_received,
                                  "bytes_received", (json_int_t)r->bytes_received,
                                  "queued_msgs", (json_int_t)r->queued_msgs,
                                  "queued_bytes", (json_int_t)r->queued_bytes,
                                  "superseded", (json_int_t)r->superseded,
                                  "paused", (json_int_t)r->paused,
                                  "requeued", (json_int_t)r->requeued,
                                  "lost", (json_int_t)r->lost,
                                  "reconnects", (json_int_t)r->reconnects);
            if (!e || json_array_append_new(arr, e) != 0)
                die("out of memory building JSON output");
        }
        json_t *top = json_pack("{s:o, s:I, s:I, s:I, s:I, s:I}", "channels", arr,
                                "flow_waits", (json_int_t)s->flow_waits,
                                "spoofed", (json_int_t)s->spoofed,
                                "undeliverable", (json_int_t)s->undeliverable,
                                "relayed", (json_int_t)s->relayed,
                                "relay_dropped", (json_int_t)s->relay_dropped);
        if (!top)
            die("out of memory building JSON output");
        for (size_t k = 0; k < N_NODE_COUNTERS; k++)
            if (json_object_set_new(top, node_counters[k].name, json_integer((json_int_t)node_counters[k].get(s))) != 0)
                die("out of memory building JSON output");
        print_json(top);
    } else {
        /* Peer and channel left-aligned, counters right-aligned, each column
         * as wide as its header or its widest value. */
        static const char *const head[STATS_COLS] = {
            "CONNS", "SENT_MSGS", "SENT_BYTES", "RECV_MSGS", "RECV_BYTES", "QUEUED",
            "SUPERSEDED", "PAUSED", "REQUEUED", "LOST", "RECONNECTS",
        };
        int wp = (int)strlen("PEER"), wc = (int)strlen("CHANNEL"), w[STATS_COLS];
        unsigned long long v[STATS_COLS];
        char tmp[24];
        for (int k = 0; k < STATS_COLS; k++)
            w[k] = (int)strlen(head[k]);
        for (size_t i = 0; i < s->n_channels; i++) {
            int l;
            if ((l = (int)strlen(s->channels[i].peer)) > wp) wp = l;
            if ((l = (int)strlen(s->channels[i].channel)) > wc) wc = l;
            stats_row(&s->channels[i], v);
            for (int k = 0; k < STATS_COLS; k++)
                if ((l = snprintf(tmp, sizeof tmp, "%llu", v[k])) > w[k]) w[k] = l;
        }
        printf("%-*s  %-*s", wp, "PEER", wc, "CHANNEL");
        for (int k = 0; k < STATS_COLS; k++)
            printf("  %*s", w[k], head[k]);
        putchar('\n');
        for (size_t i = 0; i < s->n_channels; i++) {
            printf("%-*s  %-*s", wp, s->channels[i].peer, wc, s->channels[i].channel);
            stats_row(&s->channels[i], v);
            for (int k = 0; k < STATS_COLS; k++)
                printf("  %*llu", w[k], v[k]);
            putchar('\n');
        }
        printf("flow_waits: %llu  spoofed: %llu  undeliverable: %llu  relayed: %llu  relay_dropped: %llu\n",
               (unsigned long long)s->flow_waits, (unsigned long long)s->spoofed,
               (unsigned long long)s->undeliverable, (unsigned long long)s->relayed,
               (unsigned long long)s->relay_dropped);
        for (size_t k = 0; k < N_NODE_COUNTERS; k++)
            printf("%s %llu\n", node_counters[k].name, (unsigned long long)node_counters[k].get(s));
    }
    partisan_stats_free(s);
    return 0;
}

static char *base64(const uint8_t *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *w = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *w++ = tbl[v >> 18];
        *w++ = tbl[(v >> 12) & 63];
        *w++ = tbl[(v >> 6) & 63];
        *w++ = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *w++ = tbl[v >> 18];
        *w++ = tbl[(v >> 12) & 63];
        *w++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    *w = '\0';
    return out;
}

static void print_message_json(const struct partisan_message *m)
{
    json_t *obj = json_pack("{s:s, s:s, s:s}", "from", m->from_node, "name", m->name,
                            "channel", m->channel ? m->channel : "default");
    if (!obj)
        die("out of memory building JSON output");
    /* json_stringn refuses invalid UTF-8, which is exactly the test we need. */
    json_t *payload = json_stringn((const char *)m->payload, m->len);
    if (payload) {
        json_object_set_new(obj, "payload", payload);
    } else {
        char *b64 = base64(m->payload, m->len);
        if (!b64)
            die("out of memory building JSON output");
        json_object_set_new(obj, "payload", json_string(b64));
        json_object_set_new(obj, "encoding", json_string("base64"));
        free(b64);
    }
    print_json(obj);
}

static int cmd_recv(partisan_client *c, const struct opts *o, const char *name, int count,
                    int wait_ms)
{
    int rc = partisan_register(c, name, o->timeout_ms);
    if (rc == PARTISAN_ENAMETAKEN)
        die("name \"%s\" is taken", name);
    if (rc)
        die_call(c, rc, "register \"%s\"", name);
    for (int got = 0; count == 0 || got < count;) {
        struct partisan_message *m;
        rc = partisan_recv(c, &m, wait_ms);
        if (rc == PARTISAN_ETIMEDOUT)
            die("recv: timed out after %d ms", wait_ms);
        if (rc)
            die_call(c, rc, "recv");
        if (m->kind != PARTISAN_MSG_DATA) {
            partisan_message_free(m);
            continue;
        }
        if (o->json) {
            print_message_json(m);
        } else {
            fwrite(m->payload, 1, m->len, stdout);
            fputc('\n', stdout);
        }
        partisan_message_free(m);
        flush_stdout();
        got++;
    }
    return 0;
}

static const char *event_name(enum partisan_event_kind k)
{
    switch (k) {
    case PARTISAN_EVENT_JOINED: return "joined";
    case PARTISAN_EVENT_LEFT: return "left";
    case PARTISAN_EVENT_UP: return "up";
    case PARTISAN_EVENT_DOWN: return "down";
    case PARTISAN_EVENT_NEIGHBOR_UP: return "neighbor-up";
    case PARTISAN_EVENT_NEIGHBOR_DOWN: return "neighbor-down";
    }
    return "unknown";
}

static int cmd_watch(partisan_client *c, const struct opts *o)
{
    int rc = partisan_subscribe(c, o->timeout_ms);
    if (rc)
        die_call(c, rc, "watch");
    for (;;) {
        struct partisan_message *m;
        rc = partisan_recv(c, &m, -1);
        if (rc)
            die_call(c, rc, "watch");
        if (m->kind == PARTISAN_MSG_EVENT) {
            if (o->json)
                print_json(json_pack("{s:s, s:s, s:s}", "event", event_name(m->event),
                                     "node", m->node, "address", m->address));
            else
                printf("%s %s %s\n", event_name(m->event), m->node, m->address);
            flush_stdout();
        }
        partisan_message_free(m);
    }
}

/* ---- argument parsing ---- */

/* Takes the value of an option given as "--opt VALUE" or "--opt=VALUE";
 * returns NULL if argv[*i] is not that option. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    const char *a = argv[*i];
    if (strncmp(a, opt, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        usage_error("%s needs a value", opt);
    return argv[++*i];
}

/* A global option at argv[*i]: consumed and true, else false. */
static bool global_opt(int argc, char **argv, int *i, struct opts *o)
{
    const char *v;
    const char *a = argv[*i];
    if ((v = opt_value(argc, argv, i, "--socket"))) {
        if (!*v)
            usage_error("--socket needs a path");
        o->socket = v;
    } else if ((v = opt_value(argc, argv, i, "--timeout-ms"))) {
        o->timeout_ms = parse_int("--timeout-ms", v, -1);
        o->timeout_given = true;
    } else if (strcmp(a, "--json") == 0) {
        o->json = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        fputs(long_usage, stdout);
        exit(0);
    } else if (strcmp(a, "--version") == 0) {
        printf("partisanctl %s\n", PARTISAN_VERSION);
        exit(0);
    } else {
        return false;
    }
    return true;
}

static void want_args(const char *cmd, int n, int min, int max)
{
    if (n < min)
        usage_error("%s: missing argument", cmd);
    if (n > max)
        usage_error("%s: too many arguments", cmd);
}

int main(int argc, char **argv)
{
    struct opts o = { .timeout_ms = DEFAULT_TIMEOUT_MS };
    int i = 1;
    for (; i < argc; i++) {
        if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)
            break;
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (!global_opt(argc, argv, &i, &o))
            usage_error("unknown option \"%s\"", argv[i]);
    }
    if (i >= argc)
        usage_error("no command given");
    const char *cmd = argv[i++];
    if (strcmp(cmd, "help") == 0) {
        fputs(long_usage, stdout);
        return 0;
    }

    /* The command's own options, global ones, and positional arguments. */
    char **pos = calloc((size_t)argc, sizeof *pos);
    if (!pos)
        die("out of memory");
    int npos = 0;
    bool all = false, no_more_opts = false;
    int count = 1, wait_ms = -1;
    bool wait_given = false;
    bool is_recv = strcmp(cmd, "recv") == 0;
    bool is_send = strcmp(cmd, "send") == 0;
    bool is_fault = strcmp(cmd, "fault") == 0;
    struct partisan_send_opts send_opts = { 0 };
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (is_fault && strcmp(a, "--socket") != 0 && strcmp(a, "--timeout-ms") != 0) {
            /* The rule's own words (--peer, --json, ...) go to the daemon as given. */
            if (strcmp(a, "--json") == 0)
                o.json = true;
            pos[npos++] = argv[i];
        } else if (no_more_opts || a[0] != '-' || strcmp(a, "-") == 0) {
            pos[npos++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            no_more_opts = true;
        } else if (strcmp(cmd, "members") == 0 && strcmp(a, "--all") == 0) {
            all = true;
        } else if (is_recv && (v = opt_value(argc, argv, &i, "--count"))) {
            count = parse_int("--count", v, 0);
        } else if (is_recv && (v = opt_value(argc, argv, &i, "--timeout-ms"))) {
            wait_ms = parse_int("--timeout-ms", v, -1);
            wait_given = true;
        } else if (is_send && (v = opt_value(argc, argv, &i, "--channel"))) {
            if (!*v)
                usage_error("--channel needs a name");
            if (strlen(v) > PARTISAN_CHANNEL_MAX)
                usage_error("--channel: \"%s\" is longer than %d bytes", v, PARTISAN_CHANNEL_MAX);
            send_opts.channel = v;
        } else if (is_send && (v = opt_value(argc, argv, &i, "--key"))) {
            size_t kl = strlen(v);
            if (kl == 0)
                usage_error("--key needs a value");
            if (kl > PARTISAN_KEY_MAX)
                usage_error("--key: %zu bytes, longer than %d", kl, PARTISAN_KEY_MAX);
            send_opts.key = v;
            send_opts.key_len = kl;
        } else if (is_send && (v = opt_value(argc, argv, &i, "--wait"))) {
            if (strcmp(v, "delivered") == 0)
                send_opts.confirm = 1;
            else if (strcmp(v, "accepted") != 0)
                usage_error("--wait: \"%s\" is not \"delivered\" or \"accepted\"", v);
        } else if (!global_opt(argc, argv, &i, &o)) {
            usage_error("%s: unknown option \"%s\"", cmd, a);
        }
    }
    /* For recv, --timeout-ms before the command also means the message wait. */
    if (is_recv && !wait_given && o.timeout_given)
        wait_ms = o.timeout_ms;

    int rc;
    partisan_client *c;
    if (strcmp(cmd, "status") == 0) {
        want_args(cmd, npos, 0, 0);
        c = connect_or_die(&o);
        rc = cmd_status(c, &o);
    } else if (strcmp(cmd, "members") == 0) {
        want_args(cmd, npos, 0, 0);
        c = connect_or_die(&o);
        rc = cmd_members(c, &o, all);
    } else if (strcmp(cmd, "stats") == 0) {
        want_args(cmd, npos, 0, 0);
        c = connect_or_die(&o);
        rc = cmd_stats(c, &o);
    } else if (is_send) {
        want_args(cmd, npos, 3, 3);
        if (strcmp(pos[2], "@") == 0)
            usage_error("send: '@' needs a file name ('@FILE')");
        c = connect_or_die(&o);
        rc = cmd_send(c, &o, pos[0], pos[1], pos[2], &send_opts);
    } else if (strcmp(cmd, "broadcast") == 0) {
        want_args(cmd, npos, 2, 2);
        if (!pos[0][0])
            usage_error("broadcast: NAME must not be empty");
        if (strcmp(pos[1], "@") == 0)
            usage_error("broadcast: '@' needs a file name ('@FILE')");
        c = connect_or_die(&o);
        rc = cmd_broadcast(c, &o, pos[0], pos[1]);
    } else if (is_recv) {
        want_args(cmd, npos, 1, 1);
        c = connect_or_die(&o);
        rc = cmd_recv(c, &o, pos[0], count, wait_ms);
    } else if (strcmp(cmd, "watch") == 0) {
        want_args(cmd, npos, 0, 0);
        c = connect_or_die(&o);
        rc = cmd_watch(c, &o);
    } else if (strcmp(cmd, "join") == 0) {
        want_args(cmd, npos, 1, 1);
        c = connect_or_die(&o);
        rc = partisan_join(c, pos[0], o.timeout_ms);
        if (rc)
            die_call(c, rc, "join %s", pos[0]);
    } else if (is_fault) {
        if (npos == 0)
            usage_error("fault: missing rule (drop, delay, duplicate, reorder, corrupt, partition, list, clear)");
        if (npos > 32)
            usage_error("fault: too many arguments");
        c = connect_or_die(&o);
        rc = cmd_fault(c, &o, npos, pos);
    } else if (strcmp(cmd, "forget") == 0) {
        want_args(cmd, npos, 1, 1);
        c = connect_or_die(&o);
        rc = partisan_forget(c, pos[0], o.timeout_ms);
        if (rc)
            die_call(c, rc, "forget %s", pos[0]);
    } else if (strcmp(cmd, "leave") == 0) {
        want_args(cmd, npos, 0, 1);
        c = connect_or_die(&o);
        rc = partisan_leave(c, npos ? pos[0] : NULL, o.timeout_ms);
        if (rc) {
            if (npos)
                die_call(c, rc, "leave %s", pos[0]);
            die_call(c, rc, "leave");
        }
    } else {
        usage_error("unknown command \"%s\"", cmd);
    }
    partisan_close(c);
    free(pos);
    if (fflush(stdout) != 0)
        die("writing to stdout: %s", strerror(errno));
    return rc ? 1 : 0;
}
