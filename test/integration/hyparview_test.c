/* Thirty real daemons on 127.0.0.1 in the HyParView overlay with small
 * views (at most 3 neighbours each), so that most pairs of nodes are not
 * neighbours: every node still learns every member, messages by name reach
 * any node (hop by hop) once and in order, the overlay heals after a third
 * of the nodes are killed, and a broadcast reaches every live node once.
 *
 * The seed of the random choices (who joins through whom, which pairs,
 * which nodes die) is printed; HV_SEED=N replays them, for the whole run or
 * one test (HARNESS_ONLY=name): each test reseeds from it. The daemons draw
 * their own, so the views they form differ from run to run anyway. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "partisan.h"

#define T 10000
#define N 30
#define NKILL 10
#define MAX_NB 3
#define MSGS 200

/* Small views, fast timers: a member is down after 3 missed announcements
 * (3 x 1000 ms; at 500 ms, thirty sanitizer-built daemons on two loaded
 * cores sometimes missed three in a row, and a member reached only
 * through relays was taken as down in the middle of a stream). */
#define CONFIG "\"overlay\": {\"type\": \"hyparview\", \"gossip_interval_ms\": 200, \"hyparview\": {" \
               "\"active_max_size\": 3, \"active_min_size\": 1, \"passive_max_size\": 8, " \
               "\"shuffle_interval_ms\": 1000, \"random_promotion_interval_ms\": 1000, " \
               "\"announce_interval_ms\": 1000}}, " \
               "\"failure_detector\": {\"ping_interval_ms\": 200, \"timeout_ms\": 2000}, " \
               "\"transport\": {\"backoff_initial_ms\": 50, \"backoff_max_ms\": 500, \"connect_timeout_ms\": 1000}"

static struct daemon_proc nodes[N];
static bool alive[N];
static unsigned seed;

/* What one node says about the others, from partisan_members(). */
struct view {
    bool ok;
    int listed;                 /* members listed (not counting those that left) */
    int strangers;              /* names that are none of n1..n30 */
    bool known[N], up[N], left[N], nb[N];
};
static struct view views[N];
static char why[1024];

/* Each test draws its own sequence, so that one can be replayed alone. */
static void reseed(unsigned test)
{
    srand(seed * 31u + test);
}          /* why the last condition was false */

static int index_of(const char *name)
{
    if (!name || name[0] != 'n')
        return -1;
    char *end = NULL;
    long k = strtol(name + 1, &end, 10);
    if (!end || *end || k < 1 || k > N)
        return -1;
    return (int)k - 1;
}

static bool query(int i, struct view *v)
{
    memset(v, 0, sizeof *v);
    partisan_client *c = NULL;
    if (partisan_connect(nodes[i].socket, &c) != 0)
        return false;
    struct partisan_member *m = NULL;
    size_t n = 0;
    if (partisan_members(c, 0, &m, &n, T) == 0) {
        v->ok = true;
        for (size_t k = 0; k < n; k++) {
            int j = index_of(m[k].name);
            if (j < 0) {
                v->strangers++;
                continue;
            }
            v->known[j] = true;
            v->up[j] = m[k].up != 0;
            v->left[j] = m[k].left != 0;
            v->nb[j] = m[k].neighbor != 0;
            if (!m[k].left)
                v->listed++;
        }
        partisan_members_free(m, n);
    }
    partisan_close(c);
    return v->ok;
}

static int live_count(void)
{
    int k = 0;
    for (int i = 0; i < N; i++)
        k += alive[i];
    return k;
}

static int neighbours(const struct view *v)
{
    int k = 0;
    for (int j = 0; j < N; j++)
        k += v->nb[j];
    return k;
}

/* Polls cond every interval_ms until it holds or timeout_ms passes (each
 * round asks up to 30 daemons, so not every 20 ms). */
static bool poll_until(bool (*cond)(void), int timeout_ms, int interval_ms)
{
    uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (cond())
            return true;
        if (harness_now_ms() >= deadline)
            return false;
        usleep((useconds_t)interval_ms * 1000);
    }
}

/* Every live node lists every live node up, and every dead one down, left
 * or not at all. With everybody alive: exactly 30 members listed. */
static bool membership_agrees(void)
{
    int want = live_count();
    for (int i = 0; i < N; i++) {
        if (!alive[i])
            continue;
        struct view *v = &views[i];
        if (!query(i, v)) {
            snprintf(why, sizeof why, "%s does not answer members", nodes[i].name);
            return false;
        }
        if (v->strangers) {
            snprintf(why, sizeof why, "%s lists %d members that are none of ours", nodes[i].name, v->strangers);
            return false;
        }
        int up = 0;
        for (int j = 0; j < N; j++) {
            if (alive[j] && !(v->known[j] && v->up[j] && !v->left[j])) {
                snprintf(why, sizeof why, "%s sees %s %s", nodes[i].name, nodes[j].name,
                         !v->known[j] ? "not at all" : v->left[j] ? "left" : "down");
                return false;
            }
            if (!alive[j] && v->known[j] && v->up[j] && !v->left[j]) {
                snprintf(why, sizeof why, "%s still sees the killed %s up", nodes[i].name, nodes[j].name);
                return false;
            }
            up += v->known[j] && v->up[j] && !v->left[j];
        }
        if (up != want || (want == N && v->listed != N)) {
            snprintf(why, sizeof why, "%s lists %d members, %d up (want %d up)", nodes[i].name, v->listed, up, want);
            return false;
        }
    }
    return true;
}

/* One snapshot of every live node's neighbours: each has 1..3, all alive,
 * the relation is symmetric, and the neighbour graph is connected. */
static bool neighbours_sound(void)
{
    for (int i = 0; i < N; i++)
        if (alive[i] && !query(i, &views[i])) {
            snprintf(why, sizeof why, "%s does not answer members", nodes[i].name);
            return false;
        }
    int first = -1;
    for (int i = 0; i < N; i++) {
        if (!alive[i])
            continue;
        if (first < 0)
            first = i;
        int k = neighbours(&views[i]);
        if (k < 1 || k > MAX_NB) {
            snprintf(why, sizeof why, "%s has %d neighbours (want 1..%d)", nodes[i].name, k, MAX_NB);
            return false;
        }
        for (int j = 0; j < N; j++) {
            if (!views[i].nb[j])
                continue;
            if (j == i) {
                snprintf(why, sizeof why, "%s lists itself as a neighbour", nodes[i].name);
                return false;
            }
            if (!alive[j]) {
                snprintf(why, sizeof why, "%s lists the killed %s as a neighbour", nodes[i].name, nodes[j].name);
                return false;
            }
            if (!views[j].nb[i]) {
                snprintf(why, sizeof why, "%s lists %s as a neighbour but not the other way round", nodes[i].name,
                         nodes[j].name);
                return false;
            }
        }
    }
    /* Connected: a breadth-first walk from the first live node reaches all. */
    int queue[N], head = 0, tail = 0;
    bool seen[N] = { false };
    queue[tail++] = first;
    seen[first] = true;
    while (head < tail) {
        int i = queue[head++];
        for (int j = 0; j < N; j++)
            if (views[i].nb[j] && !seen[j]) {
                seen[j] = true;
                queue[tail++] = j;
            }
    }
    if (tail != live_count()) {
        snprintf(why, sizeof why, "the neighbour graph is split: %d of %d live nodes reachable from %s", tail,
                 live_count(), nodes[first].name);
        return false;
    }
    return true;
}

static void print_views(void);

/* Waits until the neighbour views are sound and have not changed for
 * 3 announcement intervals (every node has then heard every announcement
 * over its current neighbours, so every route is current). Returns the
 * ms it took, or -1 (why) after timeout_ms. */
static long wait_settled(int timeout_ms)
{
    static bool last[N][N];
    uint64_t t0 = harness_now_ms(), deadline = t0 + (uint64_t)timeout_ms, since = 0;
    bool have = false;
    for (;;) {
        if (neighbours_sound()) {
            bool same = have;
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    bool nb = alive[i] && views[i].nb[j];
                    same = same && last[i][j] == nb;
                    last[i][j] = nb;
                }
            if (!same)
                since = harness_now_ms();
            have = true;
            if (harness_now_ms() - since >= 3000)
                return (long)(harness_now_ms() - t0);
        } else {
            have = false;
        }
        if (harness_now_ms() >= deadline) {
            if (have) {
                snprintf(why, sizeof why, "the neighbour views kept changing for %d s", timeout_ms / 1000);
                print_views();
            }
            return -1;
        }
        usleep(250 * 1000);
    }
}

/* Hops between a and b over the last snapshot's neighbour graph (-1: none). */
static int hops(int a, int b)
{
    int dist[N], queue[N], head = 0, tail = 0;
    for (int i = 0; i < N; i++)
        dist[i] = -1;
    dist[a] = 0;
    queue[tail++] = a;
    while (head < tail) {
        int i = queue[head++];
        for (int j = 0; j < N; j++)
            if (views[i].nb[j] && dist[j] < 0) {
                dist[j] = dist[i] + 1;
                queue[tail++] = j;
            }
    }
    return dist[b];
}

static void print_views(void)
{
    for (int i = 0; i < N; i++) {
        if (!alive[i])
            continue;
        struct view v;
        if (!query(i, &v)) {
            printf("  %s: no answer\n", nodes[i].name);
            continue;
        }
        int up = 0;
        char nb[128] = "";
        for (int j = 0; j < N; j++) {
            up += v.known[j] && v.up[j] && !v.left[j];
            if (v.nb[j]) {
                size_t l = strlen(nb);
                snprintf(nb + l, sizeof nb - l, " %s", nodes[j].name);
            }
        }
        printf("  %s: %d listed, %d up, neighbours:%s\n", nodes[i].name, v.listed, up, nb);
    }
}

/* Prints up to max log lines, from every node's log, that hold both
 * needles (needle2 may be NULL): what the daemons said about a loss. */
static void print_log_lines(const char *needle1, const char *needle2, int max)
{
    int shown = 0;
    for (int i = 0; i < N && shown < max; i++) {
        size_t len = 0;
        char *text = harness_slurp(nodes[i].log, &len);
        if (!text)
            continue;
        for (char *line = text; line && *line && shown < max;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            if (strstr(line, needle1) && (!needle2 || strstr(line, needle2))) {
                printf("  %s: %s\n", nodes[i].name, line);
                shown++;
            }
            line = nl ? nl + 1 : NULL;
        }
        free(text);
    }
    if (!shown)
        printf("  (no log line holds \"%s\"%s%s)\n", needle1, needle2 ? " and " : "", needle2 ? needle2 : "");
}

/* Starts n1..n30, each joining through a random earlier one, and waits
 * until all agree on all 30. Returns 0, or -1 (a CHECK message in why). */
static int start_cluster(void)
{
    memset(alive, 0, sizeof alive);
    uint64_t t0 = harness_now_ms();
    for (int i = 0; i < N; i++) {
        char name[16], extra[2048];
        snprintf(name, sizeof name, "n%d", i + 1);
        if (i == 0)
            snprintf(extra, sizeof extra, "%s", CONFIG);
        else
            snprintf(extra, sizeof extra, "%s, \"cluster\": {\"name\": \"test\", \"seeds\": [\"%s\"]}", CONFIG,
                     nodes[rand() % i].listen);
        harness_daemon_init(&nodes[i], name, extra);
        if (harness_daemon_start(&nodes[i], T) != 0) {
            snprintf(why, sizeof why, "%s did not start", name);
            return -1;
        }
        alive[i] = true;
    }
    uint64_t t1 = harness_now_ms();
    if (!poll_until(membership_agrees, 30000, 200)) {
        print_views();
        char tail[1500];
        char w[800];
        snprintf(w, sizeof w, "%.790s", why);
        harness_read_tail(nodes[N - 1].log, tail, sizeof tail);
        printf("  --- %s log tail ---\n%s\n", nodes[N - 1].name, tail);
        snprintf(why, sizeof why, "30 daemons did not agree on 30 members up within 30 s: %s", w);
        return -1;
    }
    uint64_t t2 = harness_now_ms();
    printf("  30 daemons started in %llu ms; all saw all 30 up %llu ms after the last start (%llu ms in all)\n",
           (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1), (unsigned long long)(t2 - t0));
    return 0;
}

/* The neighbour flags that `partisanctl --json members` prints on node i,
 * as "neighbor": true|false per member; false when a member lacks it. */
static bool json_neighbours(int i, bool nb[N], char *err, size_t errlen)
{
    static char out[32768];
    char e[512];
    int rc = harness_ctl(&nodes[i], NULL, out, sizeof out, e, sizeof e, T, "--json", "members", NULL);
    if (rc != 0) {
        snprintf(err, errlen, "partisanctl --json members on %s: exit %d: %s", nodes[i].name, rc, e);
        return false;
    }
    memset(nb, 0, sizeof(bool) * N);
    for (int j = 0; j < N; j++) {
        char detail[600];
        int v = harness_json_neighbor(out, nodes[j].name, detail, sizeof detail);
        if (v < 0) {
            snprintf(err, errlen, "%s: %s", nodes[i].name, detail);
            return false;
        }
        nb[j] = v == 1;
    }
    return true;
}

static void test_thirty_converge(void)
{
    reseed(1);
    CHECK(start_cluster() == 0, "%s", why);
    uint64_t t0 = harness_now_ms();
    bool ok = poll_until(neighbours_sound, 10000, 300);
    if (!ok)
        print_views();
    CHECK(ok, "neighbour views never sound for one snapshot in 10 s: %s", why);
    printf("  neighbour views sound (1..3 each, symmetric, connected) %llu ms later\n",
           (unsigned long long)(harness_now_ms() - t0));
    int hist[MAX_NB + 1] = { 0 }, far = 0;
    for (int i = 0; i < N; i++) {
        hist[neighbours(&views[i])]++;
        for (int j = 0; j < N; j++)
            if (hops(i, j) > far)
                far = hops(i, j);
    }
    printf("  neighbours per node: 1: %d, 2: %d, 3: %d; the farthest pair is %d hops apart\n", hist[1], hist[2],
           hist[3], far);
    CHECK(far >= 2, "every node is every other's neighbour: the test would not exercise forwarding");

    /* The CLI shows the same neighbour flags as the library (views may
     * change between the two asks: a few tries). */
    char err[1024] = "";
    bool same = false;
    for (int attempt = 0; attempt < 5 && !same; attempt++) {
        int i = rand() % N;
        bool nb[N];
        CHECK(json_neighbours(i, nb, err, sizeof err), "%s", err);
        struct view v;
        CHECK(query(i, &v), "%s does not answer members", nodes[i].name);
        same = true;
        for (int j = 0; j < N; j++)
            if (nb[j] != v.nb[j]) {
                snprintf(err, sizeof err, "%s: members --json says %s is%s a neighbour, the library says%s",
                         nodes[i].name, nodes[j].name, nb[j] ? "" : " not", v.nb[j] ? " it is" : " not");
                same = false;
            }
        if (!same)
            usleep(200 * 1000);
    }
    CHECK(same, "%s", err);
}

/* Pipelined messages from a to a name on b, which is not a's neighbour. */
struct pair {
    int a, b, hops;
    char name[32];
    partisan_client *tx, *rx;
};

static void close_pairs(struct pair *p, int n)
{
    for (int k = 0; k < n; k++) {
        partisan_close(p[k].tx);
        partisan_close(p[k].rx);
        p[k].tx = p[k].rx = NULL;
    }
}

/* Picks up to want pairs (a, b) of live nodes where b is not a's neighbour
 * in the last snapshot, the farthest pair first. */
static int pick_pairs(struct pair *p, int want)
{
    int n = 0, fa = -1, fb = -1, far = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (alive[i] && alive[j] && hops(i, j) > far)
                far = hops(i, j), fa = i, fb = j;
    if (far >= 2) {
        p[n].a = fa, p[n].b = fb, p[n].hops = far;
        n++;
    }
    for (int tries = 0; n < want && tries < 10000; tries++) {
        int a = rand() % N, b = rand() % N;
        if (a == b || !alive[a] || !alive[b] || views[a].nb[b])
            continue;
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup = dup || (p[k].a == a && p[k].b == b);
        if (dup)
            continue;
        p[n].a = a, p[n].b = b, p[n].hops = hops(a, b);
        n++;
    }
    for (int k = 0; k < n; k++) {
        snprintf(p[k].name, sizeof p[k].name, "inbox%d", k);
        p[k].tx = p[k].rx = NULL;
    }
    return n;
}

static void test_non_neighbours_in_order(void)
{
    reseed(2);
    CHECK(start_cluster() == 0, "%s", why);
    long settled = wait_settled(15000);
    CHECK(settled >= 0, "neighbour views never settled: %s", why);
    printf("  neighbour views unchanged for 3 s, %ld ms after all agreed\n", settled);
    enum { PAIRS = 6 };
    struct pair p[PAIRS];
    int np = pick_pairs(p, PAIRS);
    CHECK(np == PAIRS, "only %d non-neighbour pairs found", np);
    for (int k = 0; k < np; k++) {
        bool ok = partisan_connect(nodes[p[k].a].socket, &p[k].tx) == 0 &&
                  partisan_connect(nodes[p[k].b].socket, &p[k].rx) == 0;
        if (!ok)
            close_pairs(p, np);
        CHECK(ok, "connect to %s or %s", nodes[p[k].a].name, nodes[p[k].b].name);
        int rc = partisan_register(p[k].rx, p[k].name, T);
        if (rc != 0)
            close_pairs(p, np);
        CHECK(rc == 0, "register %s on %s: %s", p[k].name, nodes[p[k].b].name, partisan_strerror(rc));
        printf("  %s -> %s/%s: %d hops apart\n", nodes[p[k].a].name, nodes[p[k].b].name, p[k].name, p[k].hops);
    }
    /* A route through relays is learned from announcements: what a relay
     * gets before it knows one is dropped (and counted), as the README
     * says. Order and delivery are promised while the route holds, so each
     * pair first proves its route with a probe that arrives. */
    for (int k = 0; k < np; k++) {
        bool through = false;
        for (uint64_t until = harness_now_ms() + 10000; !through && harness_now_ms() < until;) {
            if (partisan_send_sync(p[k].tx, nodes[p[k].b].name, p[k].name, "probe", 5, T) != 0) {
                usleep(100 * 1000);
                continue;
            }
            struct partisan_message *pm = NULL;
            while (partisan_recv(p[k].rx, &pm, 300) == 0) {
                through = through || (pm->len == 5 && memcmp(pm->payload, "probe", 5) == 0);
                partisan_message_free(pm);
                pm = NULL;
                if (through)
                    break;
            }
        }
        if (!through)
            close_pairs(p, np);
        CHECK(through, "no probe from %s reached %s/%s within 10 s", nodes[p[k].a].name, nodes[p[k].b].name,
              p[k].name);
        /* Probes sent before the route existed may still arrive late: take them off. */
        struct partisan_message *late = NULL;
        while (partisan_recv(p[k].rx, &late, 200) == 0) {
            bool probe = late->len == 5 && memcmp(late->payload, "probe", 5) == 0;
            partisan_message_free(late);
            late = NULL;
            if (!probe)
                break;
        }
    }
    /* All pairs at once, interleaved. */
    uint64_t t0 = harness_now_ms();
    for (int m = 0; m < MSGS; m++)
        for (int k = 0; k < np; k++) {
            char msg[48];
            int len = snprintf(msg, sizeof msg, "%d:%d", k, m);
            int rc = partisan_send(p[k].tx, nodes[p[k].b].name, p[k].name, msg, (size_t)len);
            if (rc != 0) {
                char e[300];
                snprintf(e, sizeof e, "%s", partisan_last_error(p[k].tx));
                close_pairs(p, np);
                CHECK(false, "send %d %s -> %s: %s (%s)", m, nodes[p[k].a].name, nodes[p[k].b].name,
                      partisan_strerror(rc), e);
            }
        }
    for (int k = 0; k < np; k++) {
        int rc = partisan_flush(p[k].tx, T);
        if (rc != 0) {
            char e[300];
            snprintf(e, sizeof e, "%s", partisan_last_error(p[k].tx));
            close_pairs(p, np);
            CHECK(false, "flush %s -> %s: %s (%s)", nodes[p[k].a].name, nodes[p[k].b].name, partisan_strerror(rc), e);
        }
    }
    for (int k = 0; k < np; k++) {
        for (int m = 0; m < MSGS; m++) {
            struct partisan_message *msg = NULL;
            int rc = partisan_recv(p[k].rx, &msg, T);
            if (rc != 0) {
                close_pairs(p, np);
                char from[80];
                snprintf(from, sizeof from, "message from %s", nodes[p[k].a].name);
                print_log_lines(from, "dropped", 20);
                CHECK(false, "%s -> %s (%d hops): message %d of %d never arrived: %s", nodes[p[k].a].name,
                      nodes[p[k].b].name, p[k].hops, m, MSGS, partisan_strerror(rc));
            }
            char want[48], got[64];
            int wl = snprintf(want, sizeof want, "%d:%d", k, m);
            snprintf(got, sizeof got, "%.*s", (int)(msg->len < 40 ? msg->len : 40), (const char *)msg->payload);
            bool ok = msg->kind == PARTISAN_MSG_DATA && msg->len == (size_t)wl && memcmp(msg->payload, want, msg->len) == 0 &&
                      strcmp(msg->from_node, nodes[p[k].a].name) == 0 && strcmp(msg->name, p[k].name) == 0;
            char from[64];
            snprintf(from, sizeof from, "%s", msg->kind == PARTISAN_MSG_DATA && msg->from_node ? msg->from_node : "?");
            partisan_message_free(msg);
            if (!ok)
                close_pairs(p, np);
            CHECK(ok, "%s -> %s (%d hops): message %d is \"%s\" from %s, want \"%s\" from %s (lost, duplicated or "
                      "out of order)", nodes[p[k].a].name, nodes[p[k].b].name, p[k].hops, m, got, from, want,
                  nodes[p[k].a].name);
        }
    }
    uint64_t t1 = harness_now_ms();
    /* Nothing more: no duplicate came after the last one. */
    usleep(500 * 1000);
    for (int k = 0; k < np; k++) {
        struct partisan_message *msg = NULL;
        int rc = partisan_recv(p[k].rx, &msg, 0);
        if (rc == 0)
            partisan_message_free(msg);
        if (rc != PARTISAN_ETIMEDOUT)
            close_pairs(p, np);
        CHECK(rc == PARTISAN_ETIMEDOUT, "%s got more than %d messages from %s (a duplicate?)", nodes[p[k].b].name,
              MSGS, nodes[p[k].a].name);
    }
    printf("  %d x %d messages between non-neighbours, each once and in order, in %llu ms\n", np, MSGS,
           (unsigned long long)(t1 - t0));
    close_pairs(p, np);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Prints min / median / max of n times (ms), sorting them. */
static void print_spread(const char *what, long *ms, int n)
{
    if (n == 0) {
        printf("  %s: none\n", what);
        return;
    }
    qsort(ms, (size_t)n, sizeof *ms, cmp_long);
    printf("  %s: %d, after %ld / %ld / %ld ms (min / median / max)\n", what, n, ms[0], ms[n / 2], ms[n - 1]);
}

/* Kills 10 random daemons and waits until the 20 survivors agree and
 * their neighbour views are sound again. Watches every survivor's events
 * meanwhile, to print how long each took to see each dead node down.
 * Returns 0 or -1 (why). */
static int kill_ten_and_heal(void)
{
    static struct view before[N];           /* the neighbours just before the kill */
    for (int i = 0; i < N; i++)
        if (alive[i])
            query(i, &before[i]);
    int killed = 0;
    char list[256] = "";
    while (killed < NKILL) {
        int i = rand() % N;
        if (!alive[i])
            continue;
        alive[i] = false;
        memset(&views[i], 0, sizeof views[i]);
        killed++;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, " %s", nodes[i].name);
    }
    partisan_client *w[N] = { NULL };
    for (int i = 0; i < N; i++)
        if (alive[i] && (partisan_connect(nodes[i].socket, &w[i]) != 0 || partisan_subscribe(w[i], T) != 0)) {
            snprintf(why, sizeof why, "subscribing on %s", nodes[i].name);
            for (int k = 0; k < N; k++)
                partisan_close(w[k]);
            return -1;
        }
    uint64_t t0 = harness_now_ms();
    for (int i = 0; i < N; i++)
        if (!alive[i] && nodes[i].pid > 0)
            harness_daemon_kill(&nodes[i]);
    printf("  killed%s\n", list);
    /* Down events: when each survivor saw each dead node go. */
    long down_at[N][N];
    int want = live_count() * NKILL, seen = 0, false_downs = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            down_at[i][j] = -1;
    uint64_t deadline = t0 + 20000;
    while (seen < want && harness_now_ms() < deadline) {
        bool any = false;
        for (int i = 0; i < N; i++) {
            if (!w[i])
                continue;
            struct partisan_message *m = NULL;
            while (partisan_recv(w[i], &m, 0) == 0) {
                any = true;
                int j = m->kind == PARTISAN_MSG_EVENT ? index_of(m->node) : -1;
                if (j >= 0 && (m->event == PARTISAN_EVENT_DOWN || m->event == PARTISAN_EVENT_LEFT)) {
                    if (alive[j] && m->event == PARTISAN_EVENT_DOWN)
                        false_downs++;
                    if (!alive[j] && down_at[i][j] < 0) {
                        down_at[i][j] = (long)(harness_now_ms() - t0);
                        seen++;
                    }
                }
                partisan_message_free(m);
            }
        }
        if (!any)
            usleep(10 * 1000);
    }
    for (int i = 0; i < N; i++)
        partisan_close(w[i]);
    long nb_ms[N * N], far_ms[N * N];
    int nnb = 0, nfar = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (alive[i] && !alive[j] && down_at[i][j] >= 0) {
                if (before[i].nb[j])
                    nb_ms[nnb++] = down_at[i][j];
                else
                    far_ms[nfar++] = down_at[i][j];
            }
    printf("  down events seen: %d of %d (survivor, dead node) pairs within 20 s; %d down events about survivors\n",
           seen, want, false_downs);
    print_spread("  dead node was a neighbour", nb_ms, nnb);
    print_spread("  dead node was not a neighbour", far_ms, nfar);
    if (!poll_until(membership_agrees, (int)(deadline > harness_now_ms() ? deadline - harness_now_ms() : 0) + 200,
                    200)) {
        char w2[800];
        snprintf(w2, sizeof w2, "%.790s", why);
        print_views();
        snprintf(why, sizeof why, "the 20 survivors did not agree within 20 s of the kill: %s", w2);
        return -1;
    }
    uint64_t t1 = harness_now_ms();
    if (!poll_until(neighbours_sound, 10000, 300)) {
        char w2[800];
        snprintf(w2, sizeof w2, "%.790s", why);
        print_views();
        snprintf(why, sizeof why, "the survivors' neighbour views were not sound within 10 s after they agreed: %s",
                 w2);
        return -1;
    }
    uint64_t t2 = harness_now_ms();
    printf("  after SIGKILL of 10: every survivor listed the 10 down and the 19 others up after %llu ms, "
           "neighbour views sound after %llu ms\n", (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t0));
    return 0;
}

static void test_kill_ten_heal(void)
{
    reseed(3);
    CHECK(start_cluster() == 0, "%s", why);
    CHECK(kill_ten_and_heal() == 0, "%s", why);
    long settled = wait_settled(15000);
    CHECK(settled >= 0, "the survivors' neighbour views never settled: %s", why);
    printf("  the survivors' neighbour views unchanged for 3 s, %ld ms later\n", settled);
    enum { PAIRS = 10 };
    struct pair p[PAIRS];
    int np = pick_pairs(p, PAIRS);
    CHECK(np == PAIRS, "only %d non-neighbour pairs among the survivors", np);
    for (int k = 0; k < np; k++) {
        bool ok = partisan_connect(nodes[p[k].a].socket, &p[k].tx) == 0 &&
                  partisan_connect(nodes[p[k].b].socket, &p[k].rx) == 0;
        if (!ok)
            close_pairs(p, np);
        CHECK(ok, "connect to %s or %s", nodes[p[k].a].name, nodes[p[k].b].name);
        int rc = partisan_register(p[k].rx, p[k].name, T);
        if (rc != 0)
            close_pairs(p, np);
        CHECK(rc == 0, "register on %s: %s", nodes[p[k].b].name, partisan_strerror(rc));
    }
    for (int k = 0; k < np; k++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "after the kill %d", k);
        int rc = partisan_send_sync(p[k].tx, nodes[p[k].b].name, p[k].name, msg, (size_t)len, T);
        if (rc != 0) {
            char e[300];
            snprintf(e, sizeof e, "%s", partisan_last_error(p[k].tx));
            close_pairs(p, np);
            CHECK(false, "send_sync %s -> %s (%d hops) after the kill: %s (%s)", nodes[p[k].a].name,
                  nodes[p[k].b].name, p[k].hops, partisan_strerror(rc), e);
        }
        struct partisan_message *m = NULL;
        rc = partisan_recv(p[k].rx, &m, 5000);
        bool ok = rc == 0 && m->kind == PARTISAN_MSG_DATA && m->len == (size_t)len &&
                  memcmp(m->payload, msg, m->len) == 0 && strcmp(m->from_node, nodes[p[k].a].name) == 0;
        if (rc == 0)
            partisan_message_free(m);
        if (!ok)
            close_pairs(p, np);
        CHECK(ok, "%s -> %s (%d hops) after the kill: %s", nodes[p[k].a].name, nodes[p[k].b].name, p[k].hops,
              rc == 0 ? "a different message arrived" : "nothing arrived in 5 s");
    }
    printf("  %d sends between surviving non-neighbours accepted and delivered\n", np);
    /* A send to a dead node is refused, not accepted into the void. */
    int dead = 0;
    while (alive[dead])
        dead++;
    int rc = partisan_send_sync(p[0].tx, nodes[dead].name, "inbox", "x", 1, T);
    char e[300];
    snprintf(e, sizeof e, "%s", partisan_last_error(p[0].tx));
    close_pairs(p, np);
    CHECK(rc == PARTISAN_ENODEDOWN || rc == PARTISAN_ENONODE,
          "send_sync from %s to the killed %s: %s (%s), want \"down\"", nodes[p[0].a].name, nodes[dead].name,
          partisan_strerror(rc), e);
    printf("  a send to the killed %s is refused: %s (%s)\n", nodes[dead].name, partisan_strerror(rc), e);
}

/* The client holding "all" on each node, for the broadcasts. */
static partisan_client *holders[N];

static void close_holders(void)
{
    for (int i = 0; i < N; i++) {
        partisan_close(holders[i]);
        holders[i] = NULL;
    }
}

/* Reads node i's holder of "all" until broadcast r has come, within
 * deadline; every message must be one of the payloads sent so far, from its
 * origin, and none twice. Returns 0 or -1 (why). */
enum { ROUNDS_MAX = 8 };
static char bc_payload[ROUNDS_MAX][64];
static int bc_origin[ROUNDS_MAX];
static int bc_got[N][ROUNDS_MAX];

static int take_broadcasts(int i, int r, int sent, uint64_t deadline)
{
    while (!bc_got[i][r]) {
        int left = (int)(deadline > harness_now_ms() ? deadline - harness_now_ms() : 0);
        struct partisan_message *m = NULL;
        int rc = partisan_recv(holders[i], &m, left);
        if (rc != 0) {
            snprintf(why, sizeof why, "%s did not get \"%s\" within 10 s: %s", nodes[i].name, bc_payload[r],
                     partisan_strerror(rc));
            return -1;
        }
        if (m->kind != PARTISAN_MSG_DATA) {
            partisan_message_free(m);
            continue;
        }
        int k = -1;
        for (int q = 0; q < sent; q++)
            if (m->len == strlen(bc_payload[q]) && memcmp(m->payload, bc_payload[q], m->len) == 0)
                k = q;
        char text[80], from[64];
        snprintf(text, sizeof text, "%.*s", (int)(m->len < 60 ? m->len : 60), (const char *)m->payload);
        snprintf(from, sizeof from, "%s", m->from_node ? m->from_node : "?");
        bool from_ok = k >= 0 && strcmp(from, nodes[bc_origin[k]].name) == 0 && m->name && strcmp(m->name, "all") == 0;
        partisan_message_free(m);
        if (k < 0) {
            snprintf(why, sizeof why, "%s got an unexpected message \"%s\" from %s", nodes[i].name, text, from);
            return -1;
        }
        if (!from_ok) {
            snprintf(why, sizeof why, "%s got \"%s\" with from_node %s (want the origin %s)", nodes[i].name, text,
                     from, nodes[bc_origin[k]].name);
            return -1;
        }
        if (bc_got[i][k]++) {
            snprintf(why, sizeof why, "%s got \"%s\" twice", nodes[i].name, text);
            return -1;
        }
    }
    return 0;
}

/* Broadcasts to "all" from random live nodes, one at a time (the last one
 * through partisanctl broadcast), and checks that the client holding "all"
 * on every live node gets each exactly once, from its origin. Prints how
 * long the slowest node took for each. Returns 0 or -1 (why). */
static int broadcasts_reach_all(const char *tag, int rounds)
{
    if (rounds > ROUNDS_MAX)
        rounds = ROUNDS_MAX;
    memset(bc_got, 0, sizeof bc_got);
    char lat[256] = "";
    for (int r = 0; r < rounds; r++) {
        do
            bc_origin[r] = rand() % N;
        while (!alive[bc_origin[r]]);
        const struct daemon_proc *o = &nodes[bc_origin[r]];
        snprintf(bc_payload[r], sizeof bc_payload[r], "%s-%d-from-%s", tag, r, o->name);
        uint64_t t0 = harness_now_ms();
        if (r < rounds - 1) {
            partisan_client *c = NULL;
            if (partisan_connect(o->socket, &c) != 0) {
                snprintf(why, sizeof why, "connect to %s", o->name);
                return -1;
            }
            int rc = partisan_broadcast(c, "all", bc_payload[r], strlen(bc_payload[r]), T);
            if (rc != 0)
                snprintf(why, sizeof why, "partisan_broadcast from %s: %s (%s)", o->name, partisan_strerror(rc),
                         partisan_last_error(c));
            partisan_close(c);
            if (rc != 0)
                return -1;
        } else {
            char out[1024], err[512];
            int rc = harness_ctl(o, NULL, out, sizeof out, err, sizeof err, T, "broadcast", "all", bc_payload[r],
                                 NULL);
            if (rc != 0) {
                snprintf(why, sizeof why, "partisanctl broadcast all on %s: exit %d: %s", o->name, rc, err);
                return -1;
            }
        }
        uint64_t deadline = t0 + 10000;
        for (int i = 0; i < N; i++)
            if (alive[i] && take_broadcasts(i, r, r + 1, deadline) != 0)
                return -1;
        size_t l = strlen(lat);
        snprintf(lat + l, sizeof lat - l, "%s%llu", r ? ", " : "", (unsigned long long)(harness_now_ms() - t0));
    }
    /* And no duplicate came late. */
    usleep(800 * 1000);
    for (int i = 0; i < N; i++) {
        if (!alive[i])
            continue;
        struct partisan_message *m = NULL;
        int rc = partisan_recv(holders[i], &m, 0);
        if (rc == 0) {
            snprintf(why, sizeof why, "%s got an extra message after every broadcast had arrived: \"%.*s\"",
                     nodes[i].name, (int)(m->len < 60 ? m->len : 60), (const char *)m->payload);
            partisan_message_free(m);
            return -1;
        }
    }
    printf("  %d broadcasts (%s) reached all %d live nodes once each; the last node had each after %s ms\n", rounds,
           tag, live_count(), lat);
    return 0;
}

static void test_broadcast_reaches_every_live_node(void)
{
    reseed(4);
    CHECK(start_cluster() == 0, "%s", why);
    for (int i = 0; i < N; i++) {
        int rc = partisan_connect(nodes[i].socket, &holders[i]);
        if (rc == 0)
            rc = partisan_register(holders[i], "all", T);
        if (rc != 0)
            close_holders();
        CHECK(rc == 0, "holding \"all\" on %s: %s", nodes[i].name, partisan_strerror(rc));
    }
    int rc = broadcasts_reach_all("full", 4);
    if (rc != 0)
        close_holders();
    CHECK(rc == 0, "with all 30 alive: %s", why);
    rc = kill_ten_and_heal();
    for (int i = 0; i < N; i++)
        if (!alive[i]) {
            partisan_close(holders[i]);
            holders[i] = NULL;
        }
    if (rc != 0)
        close_holders();
    CHECK(rc == 0, "%s", why);
    rc = broadcasts_reach_all("after-kill", 4);
    close_holders();
    CHECK(rc == 0, "after killing 10: %s", why);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *s = getenv("HV_SEED");
    seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)harness_now_ms();
    printf("  seed %u (HV_SEED=%u replays it)\n", seed, seed);
    harness_run("thirty_converge", test_thirty_converge);
    harness_run("non_neighbours_in_order", test_non_neighbours_in_order);
    harness_run("kill_ten_heal", test_kill_ten_heal);
    harness_run("broadcast_reaches_every_live_node", test_broadcast_reaches_every_live_node);
    return harness_summary();
}
