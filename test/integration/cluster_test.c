/* Five real daemons on 127.0.0.1: joining, messaging, failure detection,
 * leave, restart — what an operator of a cluster sees. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "partisan.h"

#define T 10000
#define N 5

/* Fast timers keep the suite short; detection bounds below follow them. */
#define TIMERS "\"overlay\": {\"gossip_interval_ms\": 200}, " \
               "\"failure_detector\": {\"ping_interval_ms\": 200, \"timeout_ms\": 2000}, " \
               "\"transport\": {\"backoff_initial_ms\": 50, \"backoff_max_ms\": 500, \"connect_timeout_ms\": 1000}"

static struct daemon_proc nodes[N];

static int start_node(int i, const char *seed)
{
    char name[16], extra[1024];
    snprintf(name, sizeof name, "n%d", i + 1);
    if (seed)
        snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}", TIMERS, seed);
    else
        snprintf(extra, sizeof extra, "%s", TIMERS);
    harness_daemon_init(&nodes[i], name, extra);
    return harness_daemon_start(&nodes[i], T);
}

/* How many members `at` sees alive and up, through the library. */
static int count_up(const struct daemon_proc *at, const char *require_down)
{
    partisan_client *c = NULL;
    if (partisan_connect(at->socket, &c) != 0)
        return -1;
    struct partisan_member *m = NULL;
    size_t n = 0;
    int up = -1;
    if (partisan_members(c, 0, &m, &n, T) == 0) {
        up = 0;
        for (size_t i = 0; i < n; i++) {
            if (require_down && strcmp(m[i].name, require_down) == 0 && m[i].up)
                up = -1000;
            if (m[i].up && !m[i].left)
                up++;
        }
        partisan_members_free(m, n);
    }
    partisan_close(c);
    return up;
}

struct want { int first, last, up; const char *down; };

static bool all_see(void *arg)
{
    struct want *w = arg;
    for (int i = w->first; i <= w->last; i++)
        if (count_up(&nodes[i], w->down) != w->up)
            return false;
    return true;
}

static int start_cluster(void)
{
    if (start_node(0, NULL) != 0)
        return -1;
    for (int i = 1; i < N; i++)
        if (start_node(i, nodes[0].listen) != 0)
            return -1;
    struct want w = { 0, N - 1, N, NULL };
    return harness_wait_until(all_see, &w, 15000) ? 0 : -2;
}

static void test_join_and_converge(void)
{
    uint64_t t0 = harness_now_ms();
    int rc = start_cluster();
    CHECK(rc == 0, "cluster did not converge (rc %d)", rc);
    printf("  5 daemons started and converged in %llu ms\n", (unsigned long long)(harness_now_ms() - t0));
    char out[8192], err[512];
    rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "--json", "members", NULL);
    CHECK(rc == 0, "members --json: %s", err);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"name\":\"n%d\"", i + 1);
        CHECK(strstr(out, want), "n3 does not list n%d: %s", i + 1, out);
    }
    CHECK(strstr(out, "\"membership\":\"alive\"") && strstr(out, "\"incarnation\":"), "fields: %s", out);
    rc = harness_ctl(&nodes[4], NULL, out, sizeof out, err, sizeof err, T, "status", NULL);
    CHECK(rc == 0 && strstr(out, "members: 5") && strstr(out, "members_up: 5"), "status: %s", out);
}

/* Whether another client holds name on d. Asked by unregistering, which
 * changes nothing when the name is another's: a probe that registered it
 * would hold it for a moment, and the client it waits for could lose the
 * race and exit with "name taken". */
static bool registered_on(const struct daemon_proc *d, const char *name)
{
    partisan_client *c = NULL;
    if (partisan_connect(d->socket, &c) != 0)
        return false;
    int rc = partisan_unregister(c, name, T);
    partisan_close(c);
    return rc == PARTISAN_ENOTOWNER;
}

static bool inbox_on_n4(void *arg) { (void)arg; return registered_on(&nodes[3], "inbox"); }

static void test_messages_both_ways(void)
{
    CHECK(start_cluster() == 0, "cluster did not converge");
    char path[700];
    snprintf(path, sizeof path, "%s/recv.out", nodes[3].dir);
    pid_t r = harness_ctl_spawn(&nodes[3], path, "recv", "inbox", "--count", "1", "--timeout-ms", "8000", NULL);
    CHECK(harness_wait_until(inbox_on_n4, NULL, T), "recv on n4 never registered");
    char out[256], err[512];
    int rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "send", "n4", "inbox", "hello", NULL);
    CHECK(rc == 0, "send n1->n4: %s", err);
    CHECK(harness_wait_exit(r, T) == 0, "recv on n4 did not get the message");
    char *got = harness_slurp(path, NULL);
    bool same = got && strcmp(got, "hello\n") == 0;
    CHECK(same, "n4 got \"%.200s\"", got ? got : "(unreadable)");
    free(got);

    /* Both ways, many messages, in order, through the library. */
    partisan_client *a = NULL, *b = NULL;
    CHECK(partisan_connect(nodes[0].socket, &a) == 0 && partisan_connect(nodes[4].socket, &b) == 0, "connect");
    CHECK(partisan_register(a, "a", T) == 0 && partisan_register(b, "b", T) == 0, "register");
    enum { M = 2000 };
    for (int i = 0; i < M; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "%d", i);
        CHECK(partisan_send(a, "n5", "b", msg, (size_t)len) == 0, "send a->b %d", i);
        CHECK(partisan_send(b, "n1", "a", msg, (size_t)len) == 0, "send b->a %d", i);
    }
    CHECK(partisan_flush(a, T) == 0 && partisan_flush(b, T) == 0, "a send failed");
    for (int i = 0; i < M; i++) {
        struct partisan_message *m = NULL;
        char want[32];
        int wl = snprintf(want, sizeof want, "%d", i);
        CHECK(partisan_recv(b, &m, T) == 0, "b: message %d missing", i);
        CHECK(m->len == (size_t)wl && memcmp(m->payload, want, m->len) == 0 && strcmp(m->from_node, "n1") == 0,
              "b: message %d wrong or out of order", i);
        partisan_message_free(m);
        CHECK(partisan_recv(a, &m, T) == 0, "a: message %d missing", i);
        CHECK(m->len == (size_t)wl && memcmp(m->payload, want, m->len) == 0 && strcmp(m->from_node, "n5") == 0,
              "a: message %d wrong or out of order", i);
        partisan_message_free(m);
    }
    partisan_close(a);
    partisan_close(b);

    /* A message for a name nobody holds on the far node is not lost
     * silently: that node counts it. */
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "send", "n2", "nobody", "x", NULL);
    CHECK(rc == 0, "send to n2/nobody: %s", err);
    char st[2048];
    uint64_t deadline = harness_now_ms() + T;
    do {
        harness_ctl(&nodes[1], NULL, st, sizeof st, err, sizeof err, T, "status", NULL);
    } while (!strstr(st, "undeliverable: 1") && harness_now_ms() < deadline && usleep(20000) == 0);
    CHECK(strstr(st, "undeliverable: 1"), "n2 did not count the undeliverable message: %s", st);
}

/* Waits for an event of `kind` about `node` on a subscribed client;
 * returns the ms it took from `since`, or -1. */
static long wait_event(partisan_client *c, enum partisan_event_kind kind, const char *node,
                       uint64_t since, int timeout_ms)
{
    uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
    while (harness_now_ms() < deadline) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(c, &m, (int)(deadline - harness_now_ms()));
        if (rc != 0)
            return -1;
        bool hit = m->kind == PARTISAN_MSG_EVENT && m->event == kind && strcmp(m->node, node) == 0;
        partisan_message_free(m);
        if (hit)
            return (long)(harness_now_ms() - since);
    }
    return -1;
}

static void test_kill_seen_down_within_1s(void)
{
    CHECK(start_cluster() == 0, "cluster did not converge");
    partisan_client *w = NULL;
    CHECK(partisan_connect(nodes[0].socket, &w) == 0 && partisan_subscribe(w, T) == 0, "subscribe");
    uint64_t t0 = harness_now_ms();
    harness_daemon_kill(&nodes[4]);
    long ms = wait_event(w, PARTISAN_EVENT_DOWN, "n5", t0, 5000);
    CHECK(ms >= 0, "n1 never reported n5 down");
    printf("  SIGKILL of n5 seen as down by n1 after %ld ms\n", ms);
    CHECK(ms <= 1000, "down after %ld ms, want <= 1000", ms);
    struct want all = { 0, 3, 4, "n5" };
    CHECK(harness_wait_until(all_see, &all, 2000), "not every survivor marks n5 down");
    char out[256], err[512];
    int rc = harness_ctl(&nodes[1], NULL, out, sizeof out, err, sizeof err, T, "send", "n5", "inbox", "x", NULL);
    CHECK(rc == 1 && strstr(err, "down"), "send to a down node: exit %d, %s", rc, err);
    partisan_close(w);
}

static void test_sigstop_down_then_up(void)
{
    CHECK(start_cluster() == 0, "cluster did not converge");
    partisan_client *w = NULL;
    CHECK(partisan_connect(nodes[0].socket, &w) == 0 && partisan_subscribe(w, T) == 0, "subscribe");
    uint64_t t0 = harness_now_ms();
    harness_daemon_signal(&nodes[3], SIGSTOP);
    long ms = wait_event(w, PARTISAN_EVENT_DOWN, "n4", t0, 8000);
    CHECK(ms >= 0, "n1 never reported the stopped n4 down");
    printf("  SIGSTOP of n4 seen as down by n1 after %ld ms (timeout_ms 2000)\n", ms);
    CHECK(ms <= 5000, "down after %ld ms", ms);
    t0 = harness_now_ms();
    harness_daemon_signal(&nodes[3], SIGCONT);
    ms = wait_event(w, PARTISAN_EVENT_UP, "n4", t0, 10000);
    CHECK(ms >= 0, "n4 never came back up after SIGCONT");
    printf("  n4 up again %ld ms after SIGCONT\n", ms);
    struct want all = { 0, N - 1, N, NULL };
    CHECK(harness_wait_until(all_see, &all, T), "cluster did not reconverge after SIGCONT");
    /* The stalled node did not blame its peers for its own stall. */
    int hit = harness_file_contains(nodes[3].log, "member down: n1");
    CHECK(hit == 0, hit < 0 ? "cannot read n4's log" : "n4 declared n1 down after its own stall");
    partisan_close(w);
}

/* Nodes that left no longer hear the cluster: they are not asked. */
static const char *gone[N];

static bool left_everywhere(void *arg)
{
    const char *who = arg;
    for (int i = 0; i < N; i++) {
        bool skip = strcmp(nodes[i].name, who) == 0 || nodes[i].pid <= 0;
        for (int k = 0; k < N && gone[k]; k++)
            skip = skip || strcmp(nodes[i].name, gone[k]) == 0;
        if (skip)
            continue;
        partisan_client *c = NULL;
        if (partisan_connect(nodes[i].socket, &c) != 0)
            return false;
        struct partisan_member *m = NULL;
        size_t n = 0;
        bool ok = false;
        if (partisan_members(c, 1, &m, &n, T) == 0) {
            for (size_t k = 0; k < n; k++)
                if (strcmp(m[k].name, who) == 0)
                    ok = m[k].left;
            partisan_members_free(m, n);
        }
        partisan_close(c);
        if (!ok)
            return false;
    }
    return true;
}

static void test_leave_and_remove(void)
{
    CHECK(start_cluster() == 0, "cluster did not converge");
    char out[4096], err[512];
    int rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "leave", NULL);
    CHECK(rc == 0, "leave: %s", err);
    memset(gone, 0, sizeof gone);
    CHECK(harness_wait_until(left_everywhere, "n3", T), "n3's leave did not reach every node");
    gone[0] = "n3";
    /* The node that left says so, and refuses cluster work until restarted. */
    rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "status", NULL);
    CHECK(rc == 0 && strstr(out, "membership: left"), "status of the node that left: %s", out);
    rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "send", "n1", "inbox", "x", NULL);
    CHECK(rc == 1 && strstr(err, "left"), "send from a node that left: exit %d, %s", rc, err);
    rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "join", nodes[0].listen, NULL);
    CHECK(rc == 1 && strstr(err, "restart"), "join from a node that left: exit %d, %s", rc, err);
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "members", NULL);
    CHECK(rc == 0 && !strstr(out, "n3"), "members without --all still lists n3: %s", out);
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "members", "--all", NULL);
    CHECK(rc == 0 && strstr(out, "n3") && strstr(out, "left"), "members --all: %s", out);
    /* Remove a dead node from another node. */
    harness_daemon_kill(&nodes[4]);
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "leave", "n5", NULL);
    CHECK(rc == 0, "leave n5: %s", err);
    CHECK(harness_wait_until(left_everywhere, "n5", T), "removing n5 did not reach every node");
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "leave", "nobody", NULL);
    CHECK(rc == 1, "leave of a non-member should fail, exit %d", rc);
    /* Nobody keeps dialling a node that left: it stays down quietly. */
    struct want rest = { 0, 1, 3, NULL };
    CHECK(harness_wait_until(all_see, &rest, T), "remaining nodes do not agree");
    /* Restarting the node that left brings it back (a higher incarnation). */
    CHECK(harness_daemon_stop(&nodes[2], T) == 0, "n3 did not stop cleanly");
    CHECK(harness_daemon_start(&nodes[2], T) == 0, "n3 did not restart");
    struct want back = { 0, 3, 4, NULL };
    gone[0] = NULL;
    CHECK(harness_wait_until(all_see, &back, T), "the restarted n3 did not rejoin");
}

static bool says_left(void *arg)
{
    const struct daemon_proc *d = arg;
    char out[2048], err[256];
    return harness_ctl(d, NULL, out, sizeof out, err, sizeof err, T, "status", NULL) == 0 &&
           strstr(out, "membership: left") != NULL;
}

/* Removing a node that is alive but unreachable (paused) converges: when
 * it comes back it is told (its Hello refused with LEFT), says so in
 * status, refuses application sends, and the others never see it up. */
static void test_removed_while_paused_learns_it(void)
{
    CHECK(start_cluster() == 0, "cluster did not converge");
    harness_daemon_signal(&nodes[2], SIGSTOP);
    /* Down first: then nobody has a connection to it that could carry the
     * removal, and it must learn it when it dials back. */
    struct want down = { 0, 1, 4, "n3" };
    bool seen_down = harness_wait_until(all_see, &down, T);
    if (!seen_down)
        harness_daemon_signal(&nodes[2], SIGCONT);
    CHECK(seen_down, "the paused n3 was not seen down");
    char out[4096], err[512];
    int rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "leave", "n3", NULL);
    if (rc != 0)
        harness_daemon_signal(&nodes[2], SIGCONT);
    CHECK(rc == 0, "leave n3: %s", err);
    memset(gone, 0, sizeof gone);
    bool everywhere = harness_wait_until(left_everywhere, "n3", T);
    harness_daemon_signal(&nodes[2], SIGCONT);
    CHECK(everywhere, "removing n3 did not reach every other node");
    CHECK(harness_wait_until(says_left, &nodes[2], 10000), "n3 never learned it was removed");
    rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "send", "n1", "inbox", "x", NULL);
    CHECK(rc == 1 && strstr(err, "left"), "send from the removed n3: exit %d, %s", rc, err);
    /* Nobody sees it come back up, for longer than a failure-detector timeout. */
    gone[0] = "n3";
    for (int i = 0; i < 15; i++) {
        CHECK(count_up(&nodes[0], NULL) == 4, "n1 sees %d up with n3 removed", count_up(&nodes[0], NULL));
        usleep(200 * 1000);
    }
    int hit = harness_file_contains(nodes[2].log, "removed");
    CHECK(hit == 1, "n3's log does not say it was removed");
}

/* Whether any running node other than those in skip[] lists who, even as
 * left (members --all). */
static bool anyone_lists(const char *who, const char *const *skip, size_t n_skip)
{
    for (int i = 0; i < N; i++) {
        bool skipped = nodes[i].pid <= 0;
        for (size_t k = 0; k < n_skip; k++)
            skipped = skipped || strcmp(nodes[i].name, skip[k]) == 0;
        if (skipped)
            continue;
        partisan_client *c = NULL;
        if (partisan_connect(nodes[i].socket, &c) != 0)
            return true;
        struct partisan_member *m = NULL;
        size_t n = 0;
        bool listed = true;
        if (partisan_members(c, 1, &m, &n, T) == 0) {
            listed = false;
            for (size_t k = 0; k < n; k++)
                listed = listed || strcmp(m[k].name, who) == 0;
            partisan_members_free(m, n);
        }
        partisan_close(c);
        if (listed)
            return true;
    }
    return false;
}

struct purge { const char *who; const char *skip[2]; };

static bool purged(void *arg)
{
    const struct purge *p = arg;
    return !anyone_lists(p->who, p->skip, 2);
}

/* Whether node i's state file names who. */
static bool stored(int i, const char *who)
{
    char path[700], needle[64];
    snprintf(path, sizeof path, "%s/state/members", nodes[i].dir);
    snprintf(needle, sizeof needle, "%s ", who);
    return harness_file_contains(path, needle) == 1;
}

/* Tombstones expire (cluster.tombstone_ttl_ms) on every node and stay
 * gone; `forget` purges a dead member from every node's list and state
 * file within its grace, and a restart does not bring it back. */
static void test_tombstones_expire_and_forget(void)
{
    for (int i = 0; i < N; i++) {
        char name[16], extra[1024];
        snprintf(name, sizeof name, "n%d", i + 1);
        snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"test\", \"tombstone_ttl_ms\": 3000%s%s%s}",
                 TIMERS, i ? ", \"seeds\": [\"" : "", i ? nodes[0].listen : "", i ? "\"]" : "");
        harness_daemon_init(&nodes[i], name, extra);
        CHECK(harness_daemon_start(&nodes[i], T) == 0, "%s did not start", name);
    }
    struct want w = { 0, N - 1, N, NULL };
    CHECK(harness_wait_until(all_see, &w, 15000), "cluster did not converge");
    char out[4096], err[512];
    int rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "leave", NULL);
    CHECK(rc == 0, "leave: %s", err);
    memset(gone, 0, sizeof gone);
    CHECK(harness_wait_until(left_everywhere, "n3", T), "n3's leave did not reach every node");
    struct purge p3 = { "n3", { "n3", "n3" } };
    CHECK(harness_wait_until(purged, &p3, 3000 + 8000), "n3's tombstone did not expire everywhere");
    for (int k = 0; k < 10; k++) {
        CHECK(!anyone_lists("n3", p3.skip, 2), "n3's expired tombstone came back");
        usleep(300 * 1000);
    }

    harness_daemon_kill(&nodes[4]);
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "forget", "n1", NULL);
    CHECK(rc == 1 && strstr(err, "itself"), "forget of the node itself: exit %d, %s", rc, err);
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "forget", "nobody", NULL);
    CHECK(rc == 1 && strstr(err, "not known"), "forget of an unknown node: exit %d, %s", rc, err);
    rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "forget", "n5", NULL);
    CHECK(rc == 0, "forget n5: exit %d, %s", rc, err);
    /* Grace: 20 gossip rounds of 200 ms. */
    struct purge p5 = { "n5", { "n3", "n5" } };
    CHECK(harness_wait_until(purged, &p5, 4000 + 8000), "forgotten n5 is still listed somewhere");
    /* The state files are rewritten a little after a change. */
    sleep(2);
    for (int i = 0; i < N; i++)
        if (i != 2 && i != 4)
            CHECK(!stored(i, "n5") && !stored(i, "n3"), "%s's state file still names n5 or n3", nodes[i].name);
    CHECK(harness_daemon_stop(&nodes[0], T) == 0, "n1 did not stop");
    CHECK(harness_daemon_start(&nodes[0], T) == 0, "n1 did not restart");
    struct want back = { 0, 1, 3, NULL };
    CHECK(harness_wait_until(all_see, &back, T), "n1 did not rejoin after its restart");
    CHECK(!anyone_lists("n5", p5.skip, 2) && !anyone_lists("n3", p3.skip, 2),
          "a restart brought a forgotten or expired member back");
    CHECK(harness_file_contains(nodes[0].log, "forgotten") == 1, "n1's log does not say n5 was forgotten");
}

/* A cluster CA and node certificates, made with the openssl CLI exactly as
 * the README tells an operator to. */
static int make_certs(const char *dir)
{
    char script[4096];
    snprintf(script, sizeof script,
             "set -e; cd '%s'\n"
             "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 "
             "-subj \"/CN=$1\" -keyout $1.key -out $1.crt 2>/dev/null; }\n"
             "node() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj \"/CN=$2\" "
             "-keyout $2.key -out $2.csr 2>/dev/null\n"
             "  printf 'subjectAltName=DNS:%%s\\nbasicConstraints=critical,CA:FALSE\\n"
             "extendedKeyUsage=serverAuth,clientAuth\\n' $2 > $2.ext\n"
             "  openssl x509 -req -in $2.csr -CA $1.crt -CAkey $1.key -CAcreateserial -days 825 "
             "-extfile $2.ext -out $2.crt 2>/dev/null; }\n"
             "ca ca; ca other\n"
             "node ca n1; node ca n2; node other n3\n",
             dir);
    char *argv[] = { "sh", "-c", script, NULL };
    char out[256], err[1024];
    int rc = harness_exec(argv, NULL, out, sizeof out, err, sizeof err, 30000);
    if (rc != 0)
        fprintf(stderr, "making certificates failed (exit %d): %s\n", rc, err);
    return rc;
}

static void tls_config(char *buf, size_t len, const char *dir, const char *cert, const char *seed)
{
    snprintf(buf, len,
             "%s, \"cluster\": {\"name\": \"test\", \"seeds\": [%s%s%s]}, "
             "\"tls\": {\"ca_file\": \"%s/ca.crt\", \"cert_file\": \"%s/%s.crt\", \"key_file\": \"%s/%s.key\"}",
             TIMERS, seed ? "\"" : "", seed ? seed : "", seed ? "\"" : "", dir, dir, cert, dir, cert);
}

/* Peer links with TLS: two nodes with certificates from the cluster CA
 * form a cluster and carry messages; a node with another CA's certificate,
 * a node without TLS and a node claiming a name its certificate is not for
 * are all refused, with the reason in the logs of both sides. */
static void test_tls_links(void)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/certs", harness_tmpdir());
    mkdir(dir, 0700);
    CHECK(make_certs(dir) == 0, "could not make certificates with openssl (is it installed?)");
    char extra[2048];
    tls_config(extra, sizeof extra, dir, "n1", NULL);
    harness_daemon_init(&nodes[0], "n1", extra);
    CHECK(harness_daemon_start(&nodes[0], T) == 0, "n1 did not start with TLS");
    tls_config(extra, sizeof extra, dir, "n2", nodes[0].listen);
    harness_daemon_init(&nodes[1], "n2", extra);
    CHECK(harness_daemon_start(&nodes[1], T) == 0, "n2 did not start with TLS");
    struct want w = { 0, 1, 2, NULL };
    CHECK(harness_wait_until(all_see, &w, T), "n1 and n2 did not form a cluster over TLS");
    char out[2048], err[1024];
    char recv_out[700];
    snprintf(recv_out, sizeof recv_out, "%s/recv.out", nodes[1].dir);
    pid_t rx = harness_ctl_spawn(&nodes[1], recv_out, "recv", "inbox", "--count", "1", NULL);
    usleep(300 * 1000);
    int rc = harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "send", "n2", "inbox", "over-tls",
                         NULL);
    CHECK(rc == 0, "send over TLS: %s", err);
    CHECK(harness_wait_exit(rx, T) == 0, "n2 did not receive the message over TLS");
    CHECK(harness_file_contains(recv_out, "over-tls") == 1, "n2 received something else than the message");

    /* Another CA's certificate. */
    tls_config(extra, sizeof extra, dir, "n3", nodes[0].listen);
    char *ca = strstr(extra, "/ca.crt");
    CHECK(ca, "config");
    harness_daemon_init(&nodes[2], "n3", extra);
    CHECK(harness_daemon_start(&nodes[2], T) == 0, "n3 did not start");
    /* No TLS at all. */
    snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}", TIMERS,
             nodes[0].listen);
    harness_daemon_init(&nodes[3], "n4", extra);
    CHECK(harness_daemon_start(&nodes[3], T) == 0, "n4 did not start");
    /* n2's certificate, but calling itself n5. */
    tls_config(extra, sizeof extra, dir, "n2", nodes[0].listen);
    harness_daemon_init(&nodes[4], "n5", extra);
    CHECK(harness_daemon_start(&nodes[4], T) == 0, "n5 did not start");
    usleep(2500 * 1000);
    CHECK(count_up(&nodes[0], NULL) == 2, "n1 let a node in that it should have refused (%d up)",
          count_up(&nodes[0], NULL));
    for (int i = 2; i < 5; i++)
        CHECK(count_up(&nodes[i], NULL) == 1, "%s thinks it joined", nodes[i].name);
    CHECK(harness_file_contains(nodes[0].log, "certificate verify failed") == 1,
          "n1's log does not say n3's certificate failed verification");
    CHECK(harness_file_contains(nodes[2].log, "TLS") == 1, "n3's log does not say the TLS handshake failed");
    CHECK(harness_file_contains(nodes[0].log, "is the peer running without TLS?") == 1,
          "n1's log does not say a peer spoke plaintext");
    CHECK(harness_file_contains(nodes[0].log, "its certificate is not for node \"n5\"") == 1,
          "n1's log does not say n5's certificate is for another node");
    CHECK(harness_file_contains(nodes[4].log, "its certificate is not for node") == 1,
          "n5's log does not say why it was refused");
    CHECK(harness_file_contains(nodes[3].log, "if the peer requires TLS") == 1,
          "n4's log does not hint that its peer wants TLS");
}

static uint64_t incarnation_seen(const struct daemon_proc *at, const char *who, bool *up)
{
    partisan_client *c = NULL;
    uint64_t inc = 0;
    *up = false;
    if (partisan_connect(at->socket, &c) != 0)
        return 0;
    struct partisan_member *m = NULL;
    size_t n = 0;
    if (partisan_members(c, 0, &m, &n, T) == 0) {
        for (size_t k = 0; k < n; k++)
            if (strcmp(m[k].name, who) == 0) {
                inc = m[k].incarnation;
                *up = m[k].up;
            }
        partisan_members_free(m, n);
    }
    partisan_close(c);
    return inc;
}

static uint64_t old_inc;
static bool restarted_seen(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++) {
        if (i == 1)
            continue;
        bool up;
        if (incarnation_seen(&nodes[i], "n2", &up) <= old_inc || !up)
            return false;
    }
    return true;
}

static void test_restart_rejoins(void)
{
    CHECK(start_cluster() == 0, "cluster did not converge");
    bool up;
    old_inc = incarnation_seen(&nodes[0], "n2", &up);
    CHECK(old_inc > 0 && up, "n2 not known");
    int st = harness_daemon_stop(&nodes[1], T);
    CHECK(st == 0, "n2 did not stop cleanly (%d)", st);
    /* Restart with no seeds at all: it must find the cluster from its
     * remembered state, and the others redial it anyway. */
    char extra[1024];
    snprintf(extra, sizeof extra, "%s", TIMERS);
    harness_daemon_init(&nodes[1], "n2", extra);
    CHECK(harness_daemon_start(&nodes[1], T) == 0, "n2 did not restart");
    CHECK(harness_wait_until(restarted_seen, NULL, 15000), "others do not see n2 back with a higher incarnation");
    struct want all = { 0, N - 1, N, NULL };
    CHECK(harness_wait_until(all_see, &all, T), "n2 did not rejoin fully");
}

static void test_other_cluster_refused(void)
{
    CHECK(start_node(0, NULL) == 0, "n1 did not start");
    char extra[1024];
    snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"other\", \"seeds\": [\"%s\"]}", TIMERS, nodes[0].listen);
    harness_daemon_init(&nodes[1], "intruder", extra);
    CHECK(harness_daemon_start(&nodes[1], T) == 0, "intruder did not start");
    usleep(1500 * 1000);
    CHECK(count_up(&nodes[0], NULL) == 1, "n1 let a node of another cluster in");
    CHECK(count_up(&nodes[1], NULL) == 1, "the intruder thinks it joined");
    char tail[800];
    harness_read_tail(nodes[0].log, tail, sizeof tail);
    CHECK(harness_file_contains(nodes[0].log, "other") == 1, "n1's log does not say why it refused: ...%s", tail);
    harness_read_tail(nodes[1].log, tail, sizeof tail);
    CHECK(harness_file_contains(nodes[1].log, "refused") == 1 && harness_file_contains(nodes[1].log, "test") == 1,
          "the intruder's log does not say why: ...%s", tail);
    char out[2048], err[256];
    CHECK(harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "status", NULL) == 0 &&
              strstr(out, "peer_refused: ") && !strstr(out, "peer_refused: 0\n"),
          "n1's status does not count the refusals: %s", out);
}

/* Counts the lines of a whole log that contain needle. */
static int count_lines(const char *path, const char *needle)
{
    size_t len = 0;
    char *text = harness_slurp(path, &len);
    if (!text)
        return -1;
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(text);
    return n;
}

/* Two live daemons with one node name (cloned VMs): the hub refuses the
 * second instead of letting them replace each other's connections, says
 * so once in a while (not hundreds of times a second), counts it in
 * status, and keeps the first one up. */
static void test_duplicate_name_refused(void)
{
    CHECK(start_node(0, NULL) == 0, "hub did not start");
    char extra[1024];
    snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}", TIMERS,
             nodes[0].listen);
    harness_daemon_init(&nodes[1], "twin", extra);
    CHECK(harness_daemon_start(&nodes[1], T) == 0, "the first twin did not start");
    struct want w = { 0, 1, 2, NULL };
    CHECK(harness_wait_until(all_see, &w, T), "the first twin did not join");
    harness_daemon_init(&nodes[2], "twin2", extra);
    /* The same node name as the first twin, as a cloned VM would have. */
    size_t len = 0;
    char *cfg = harness_slurp(nodes[2].config, &len);
    CHECK(cfg, "cannot read %s", nodes[2].config);
    char *at = strstr(cfg, "\"name\": \"twin2\"");
    CHECK(at, "no node name in %s", nodes[2].config);
    memmove(at + 13, at + 14, strlen(at + 14) + 1);   /* "twin2" -> "twin" */
    FILE *f = fopen(nodes[2].config, "w");
    CHECK(f, "cannot rewrite %s", nodes[2].config);
    fputs(cfg, f);
    fclose(f);
    free(cfg);
    CHECK(harness_daemon_start(&nodes[2], T) == 0, "the second twin did not start");
    usleep(4000 * 1000);
    int replaced = count_lines(nodes[0].log, "replaced by a new one");
    int said = count_lines(nodes[0].log, "is held by a live daemon");
    CHECK(replaced >= 0 && replaced <= 2, "the hub replaced connections %d times in 4 s", replaced);
    CHECK(said >= 1 && said <= 2, "the hub logged the duplicate name %d times in 4 s (want once per 10 s)", said);
    CHECK(harness_file_contains(nodes[2].log, "held by a live daemon") == 1,
          "the second twin's log does not say why it was refused");
    char out[2048], err[256];
    CHECK(harness_ctl(&nodes[0], NULL, out, sizeof out, err, sizeof err, T, "status", NULL) == 0 &&
              strstr(out, "peer_duplicate_names: ") && !strstr(out, "peer_duplicate_names: 0\n"),
          "the hub's status does not count the duplicate: %s", out);
    CHECK(count_up(&nodes[0], NULL) == 2, "the hub lost the first twin");
}

static bool file_has(const char *path, const char *needle)
{
    return harness_file_contains(path, needle) == 1;
}

struct file_want { const char *path, *needle; };
static bool file_has_cb(void *arg)
{
    struct file_want *w = arg;
    return file_has(w->path, w->needle);
}

static void test_cli_join_and_watch(void)
{
    /* No seeds: the operator joins by hand, and watches it happen. */
    CHECK(start_node(0, NULL) == 0 && start_node(1, NULL) == 0 && start_node(2, NULL) == 0, "start");
    char watch_txt[700], watch_json[700];
    snprintf(watch_txt, sizeof watch_txt, "%s/watch.txt", nodes[0].dir);
    snprintf(watch_json, sizeof watch_json, "%s/watch.json", nodes[0].dir);
    harness_ctl_spawn(&nodes[0], watch_txt, "watch", NULL);
    harness_ctl_spawn(&nodes[0], watch_json, "--json", "watch", NULL);
    usleep(300 * 1000); /* let both subscribe */
    char out[1024], err[512];
    int rc = harness_ctl(&nodes[1], NULL, out, sizeof out, err, sizeof err, T, "join", nodes[0].listen, NULL);
    CHECK(rc == 0, "join: exit %d: %s", rc, err);
    rc = harness_ctl(&nodes[2], NULL, out, sizeof out, err, sizeof err, T, "join", nodes[1].listen, NULL);
    CHECK(rc == 0, "join: exit %d: %s", rc, err);
    struct want w = { 0, 2, 3, NULL };
    CHECK(harness_wait_until(all_see, &w, T), "three nodes joined by hand did not converge");
    char line[256];
    snprintf(line, sizeof line, "joined n3 %s", nodes[2].listen);
    struct file_want fw = { watch_txt, line };
    CHECK(harness_wait_until(file_has_cb, &fw, T), "watch did not print \"%s\"", line);
    snprintf(line, sizeof line, "up n2 %s", nodes[1].listen);
    fw.needle = line;
    CHECK(harness_wait_until(file_has_cb, &fw, T), "watch did not print \"%s\"", line);
    harness_daemon_kill(&nodes[2]);
    snprintf(line, sizeof line, "down n3 %s", nodes[2].listen);
    CHECK(harness_wait_until(file_has_cb, &fw, T), "watch did not print \"%s\"", line);
    struct file_want fj = { watch_json, "{\"event\":\"down\",\"node\":\"n3\"" };
    CHECK(harness_wait_until(file_has_cb, &fj, T), "watch --json did not print the down event");
    rc = harness_ctl(&nodes[1], NULL, out, sizeof out, err, sizeof err, T, "join", "not-an-address", NULL);
    CHECK(rc == 1 || rc == 2, "join with a bad address: exit %d", rc);
}

static void test_slow_remote_reader_loses_nothing(void)
{
    /* n2's applications may queue only 64 KiB in the daemon; n1, whose
     * flow-control window (8 MiB) is far larger than that, sends 4 MiB to
     * one that is busy for a while. n2 must hold the peer back (TCP flow
     * control, the last resort against a window it cannot absorb), not
     * drop the messages or the application. */
    harness_daemon_init(&nodes[0], "n1",
                        "\"overlay\": {\"gossip_interval_ms\": 200}, "
                        "\"failure_detector\": {\"ping_interval_ms\": 200, \"timeout_ms\": 2000}, "
                        "\"transport\": {\"backoff_initial_ms\": 50, \"backoff_max_ms\": 500, "
                        "\"connect_timeout_ms\": 1000, \"window_bytes\": 8388608}");
    CHECK(harness_daemon_start(&nodes[0], T) == 0, "n1 did not start");
    char extra[1024];
    snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}, "
             "\"ipc\": {\"socket\": \"@SOCK@\", \"max_queue_bytes\": 65536, \"max_frame_bytes\": 16384}",
             TIMERS, nodes[0].listen);
    harness_daemon_init(&nodes[1], "n2", extra);
    CHECK(harness_daemon_start(&nodes[1], T) == 0, "n2 did not start");
    struct want w = { 0, 1, 2, NULL };
    CHECK(harness_wait_until(all_see, &w, T), "no convergence");
    partisan_client *tx = NULL, *rx = NULL;
    CHECK(partisan_connect(nodes[0].socket, &tx) == 0 && partisan_connect(nodes[1].socket, &rx) == 0, "connect");
    CHECK(partisan_register(rx, "slow", T) == 0, "register");
    enum { M = 4096, SIZE = 1024 };
    char payload[SIZE];
    for (int i = 0; i < M; i++) {
        memset(payload, 'a' + i % 26, sizeof payload);
        memcpy(payload, &i, sizeof i);
        int rc = partisan_send(tx, "n2", "slow", payload, sizeof payload);
        CHECK(rc == 0, "send %d: %s (%s)", i, partisan_strerror(rc), partisan_last_error(tx));
    }
    CHECK(partisan_flush(tx, T) == 0, "a send failed: %s", partisan_last_error(tx));
    usleep(1500 * 1000); /* the receiver is busy; pings must still flow */
    CHECK(count_up(&nodes[0], NULL) == 2, "n1 lost sight of n2 while n2 held back its data");
    for (int i = 0; i < M; i++) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(rx, &m, T);
        CHECK(rc == 0, "message %d of %d never arrived: %s", i, M, partisan_strerror(rc));
        int got;
        memcpy(&got, m->payload, sizeof got);
        CHECK(m->len == SIZE && got == i, "message %d: got #%d (%zu bytes)", i, got, m->len);
        partisan_message_free(m);
    }
    partisan_close(tx);
    partisan_close(rx);
    int hit = harness_file_contains(nodes[1].log, "outbound queue");
    CHECK(hit == 0, hit < 0 ? "cannot read n2's log" : "n2 closed its slow application instead of holding the peer back");
    CHECK(harness_file_contains(nodes[1].log, "not reading messages from n1") == 1,
          "n2 never held n1 back (the test did not exercise backpressure)");
}

/* Random kills, pauses and restarts, then every node must agree again with
 * no operator action. The seed is printed so a failure can be replayed. */
#define CHAOS_N 10
static struct daemon_proc chaos[CHAOS_N];

static bool chaos_converged(void *arg)
{
    (void)arg;
    for (int i = 0; i < CHAOS_N; i++)
        if (count_up(&chaos[i], NULL) != CHAOS_N)
            return false;
    return true;
}

static void test_chaos_then_converge(void)
{
    unsigned seed = (unsigned)harness_now_ms();
    printf("  chaos seed %u\n", seed);
    srand(seed);
    char extra[1024];
    for (int i = 0; i < CHAOS_N; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        if (i == 0)
            snprintf(extra, sizeof extra, "%s", TIMERS);
        else
            snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}",
                     TIMERS, chaos[0].listen);
        harness_daemon_init(&chaos[i], name, extra);
        CHECK(harness_daemon_start(&chaos[i], T) == 0, "c%d did not start", i);
        harness_daemon_pin_port(&chaos[i]); /* restarts come back where peers expect them */
    }
    CHECK(harness_wait_until(chaos_converged, NULL, 15000), "no convergence before the chaos");
    bool stopped[CHAOS_N] = { false };
    for (int round = 0; round < 40; round++) {
        int i = rand() % CHAOS_N;
        switch (rand() % 4) {
        case 0: /* crash and come back */
            harness_daemon_kill(&chaos[i]);
            stopped[i] = false;
            CHECK(harness_daemon_start(&chaos[i], T) == 0, "c%d did not restart after SIGKILL", i);
            break;
        case 1:
            harness_daemon_signal(&chaos[i], SIGSTOP);
            stopped[i] = true;
            break;
        case 2:
            for (int k = 0; k < CHAOS_N; k++)
                if (stopped[k]) {
                    harness_daemon_signal(&chaos[k], SIGCONT);
                    stopped[k] = false;
                }
            break;
        case 3: /* clean restart */
            CHECK(harness_daemon_stop(&chaos[i], T) == 0, "c%d did not stop cleanly", i);
            stopped[i] = false;
            CHECK(harness_daemon_start(&chaos[i], T) == 0, "c%d did not restart", i);
            break;
        }
        usleep((useconds_t)(rand() % 300) * 1000);
    }
    for (int k = 0; k < CHAOS_N; k++)
        if (stopped[k])
            harness_daemon_signal(&chaos[k], SIGCONT);
    uint64_t t0 = harness_now_ms();
    if (!harness_wait_until(chaos_converged, NULL, 20000)) {
        for (int i = 0; i < CHAOS_N; i++)
            printf("  c%d (pid %d) sees %d of %d up\n", i, (int)chaos[i].pid, count_up(&chaos[i], NULL), CHAOS_N);
        CHECK(false, "no convergence 20 s after the chaos (seed %u)", seed);
    }
    printf("  all %d agree again %llu ms after the chaos\n", CHAOS_N, (unsigned long long)(harness_now_ms() - t0));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    harness_run("join_and_converge", test_join_and_converge);
    harness_run("messages_both_ways", test_messages_both_ways);
    harness_run("kill_seen_down_within_1s", test_kill_seen_down_within_1s);
    harness_run("sigstop_down_then_up", test_sigstop_down_then_up);
    harness_run("leave_and_remove", test_leave_and_remove);
    harness_run("restart_rejoins", test_restart_rejoins);
    harness_run("other_cluster_refused", test_other_cluster_refused);
    harness_run("duplicate_name_refused", test_duplicate_name_refused);
    harness_run("removed_while_paused_learns_it", test_removed_while_paused_learns_it);
    harness_run("tombstones_expire_and_forget", test_tombstones_expire_and_forget);
    harness_run("tls_links", test_tls_links);
    harness_run("cli_join_and_watch", test_cli_join_and_watch);
    harness_run("slow_remote_reader_loses_nothing", test_slow_remote_reader_loses_nothing);
    harness_run("chaos_then_converge", test_chaos_then_converge);
    return harness_summary();
}
