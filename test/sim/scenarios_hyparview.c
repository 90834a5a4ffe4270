/* scenarios_hyparview: the HyParView + Plumtree core in the simulator.
 *
 *   hv_join_random_kill50  1,000 nodes join through random earlier nodes;
 *                          then half of them crash at once
 *   hv_join_one_contact    1,000 nodes join through the same node
 *   hv_swarm               three seeds drawn from the run's seed: 64 nodes
 *                          joining under 2 % message loss (and the
 *                          reordering across connections of per-link
 *                          latencies), then the loss stops
 *   hv_route               200 nodes: every node learns every member from
 *                          announcements, unicast follows next_hop hop by
 *                          hop without loops, a leave and a forget reach
 *                          everyone
 *   hv_partition           100 nodes cut in two for 45 s, then healed
 *   hv_epochs              two cores by hand: a DISCONNECT or ACCEPT naming
 *                          an earlier link leaves the current one alone;
 *                          then 20,000 malformed messages change nothing
 *
 * After each phase: the overlay is connected, every active view is
 * symmetric and within its bounds, and a broadcast from a random node is
 * delivered exactly once on every live node. */
#include "scenarios_hyparview.h"

#include "hyparview.pb-c.h"
#include "overlay_hyparview.h"
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hv_run {
    uint64_t seed;
    bool verbose;
    struct sim *sim;
    char why[2048];
};

static __attribute__((format(printf, 2, 3)))
int hv_fail(struct hv_run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    return -1;
}

static struct sim *hv_sim(struct hv_run *r, size_t n, double loss)
{
    struct sim_params p = {
        .n = n,
        .overlay = "hyparview",
        .seed = r->seed,
        .loss = loss,
        .gossip_interval_ms = 1000,
        .gossip_fanout = 3,
        .ping_interval_ms = 500,
        .fd_timeout_ms = 3000,
        .backoff_initial_ms = 100,
        .backoff_max_ms = 5000,
        .verbose = r->verbose,
        .max_members = 1024,
    };
    r->sim = sim_new(&p);
    return r->sim;
}

static bool live(const struct sim *s, size_t i)
{
    return sim_running(s, i) && !s->ops->has_left(s->nodes[i].core);
}

static long index_of(const struct sim *s, const char *name)
{
    if (name[0] != 'n')
        return -1;
    char *end;
    long i = strtol(name + 1, &end, 10);
    return *end == '\0' && i >= 0 && (size_t)i < s->p.n ? i : -1;
}

/* Node i's active view as indices; returns its size. */
static size_t view_of(const struct sim *s, size_t i, long *out, size_t max)
{
    const char *names[32];
    size_t n = hyparview_active_view(s->nodes[i].core, names, 32);
    for (size_t k = 0; k < n && k < max; k++)
        out[k] = index_of(s, names[k]);
    return n;
}

static bool in_view(const struct sim *s, size_t i, size_t j)
{
    long v[32];
    size_t n = view_of(s, i, v, 32);
    for (size_t k = 0; k < n && k < 32; k++)
        if (v[k] == (long)j)
            return true;
    return false;
}

/* Connected, symmetric, within bounds. Writes why not into why. */
static bool views_ok_why(const struct sim *s, char *why, size_t len)
{
    struct hyparview_params hp;
    hyparview_params_default(&hp);
    size_t n = s->p.n, first = SIZE_MAX, n_live = 0;
    for (size_t i = 0; i < n; i++)
        if (live(s, i)) {
            n_live++;
            if (first == SIZE_MAX)
                first = i;
        }
    if (n_live < 2)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (!live(s, i))
            continue;
        long v[32];
        size_t k = view_of(s, i, v, 32);
        const char *pv[64];
        size_t pk = hyparview_passive_view(s->nodes[i].core, pv, 64);
        if (k == 0 || k > hp.active_max_size || pk > hp.passive_max_size) {
            char d[400];
            hyparview_describe(s->nodes[i].core, d, sizeof d);
            snprintf(why, len, "n%zu: active view of %zu, passive %zu: %s", i, k, pk, d);
            return false;
        }
        for (size_t a = 0; a < k; a++) {
            if (v[a] < 0 || !live(s, (size_t)v[a])) {
                snprintf(why, len, "n%zu has a dead or unknown neighbour (%ld)", i, v[a]);
                return false;
            }
            if (!in_view(s, (size_t)v[a], i)) {
                char d1[300], d2[300];
                hyparview_describe(s->nodes[i].core, d1, sizeof d1);
                hyparview_describe(s->nodes[v[a]].core, d2, sizeof d2);
                snprintf(why, len, "n%zu has n%ld, which does not have it: %s / %s", i, v[a], d1, d2);
                return false;
            }
        }
    }
    bool *seen = calloc(n, sizeof *seen);
    size_t *q = calloc(n, sizeof *q);
    size_t h = 0, t = 0, reached = 1;
    seen[first] = true;
    q[t++] = first;
    while (h < t) {
        size_t u = q[h++];
        long v[32];
        size_t k = view_of(s, u, v, 32);
        for (size_t a = 0; a < k && a < 32; a++)
            if (v[a] >= 0 && !seen[v[a]]) {
                seen[v[a]] = true;
                reached++;
                q[t++] = (size_t)v[a];
            }
    }
    size_t lost = SIZE_MAX;
    for (size_t i = 0; i < n && lost == SIZE_MAX; i++)
        if (live(s, i) && !seen[i])
            lost = i;
    free(seen);
    free(q);
    if (reached != n_live) {
        char d[600];
        hyparview_describe(s->nodes[lost].core, d, sizeof d);
        snprintf(why, len, "overlay not connected: %zu of %zu live nodes reachable from n%zu; not: %s", reached,
                 n_live, first, d);
        return false;
    }
    return true;
}

static bool views_ok(struct sim *s, void *ctx)
{
    char why[256];
    (void)ctx;
    return views_ok_why(s, why, sizeof why);
}

static uint64_t app_delivered(const struct sim *s, size_t i)
{
    struct hyparview_stats st;
    hyparview_get_stats(s->nodes[i].core, &st);
    return st.app_delivered;
}

struct bcast_wait {
    uint64_t *before;
};

static bool all_delivered(struct sim *s, void *ctx)
{
    struct bcast_wait *w = ctx;
    for (size_t i = 0; i < s->p.n; i++)
        if (live(s, i) && app_delivered(s, i) < w->before[i] + 1)
            return false;
    return true;
}

/* A broadcast from a random live node reaches every live node exactly once. */
static int broadcast_check(struct hv_run *r, const char *when)
{
    struct sim *s = r->sim;
    size_t n = s->p.n, origin;
    do
        origin = (size_t)(sim_random(s) % n);
    while (!live(s, origin));
    struct bcast_wait w = { calloc(n, sizeof(uint64_t)) };
    for (size_t i = 0; i < n; i++)
        w.before[i] = live(s, i) ? app_delivered(s, i) : 0;
    static const uint8_t payload[] = "hello";
    if (s->ops->broadcast(s->nodes[origin].core, "inbox", payload, sizeof payload) != 0) {
        free(w.before);
        return hv_fail(r, "%s: broadcast from n%zu refused", when, origin);
    }
    bool ok = sim_run_cond(s, all_delivered, &w, s->now + 10000, 50);
    /* Late duplicates would show here. */
    sim_run_until(s, s->now + 3000);
    int rc = 0;
    size_t missing = 0, twice = 0;
    for (size_t i = 0; i < n; i++) {
        if (!live(s, i))
            continue;
        uint64_t got = app_delivered(s, i) - w.before[i];
        missing += got == 0;
        twice += got > 1;
    }
    if (!ok || missing || twice) {
        /* The first node that missed it, and what its neighbours did. */
        char d[1200] = "";
        for (size_t i = 0; i < n && !d[0]; i++) {
            if (!live(s, i) || app_delivered(s, i) != w.before[i])
                continue;
            size_t off = hyparview_describe(s->nodes[i].core, d, sizeof d);
            long v[32];
            size_t k = view_of(s, i, v, 32);
            for (size_t a = 0; a < k && v[a] >= 0 && off < sizeof d; a++) {
                int kk = snprintf(d + off, sizeof d - off, "; n%ld got %d, eager %d/%d", v[a],
                                  (int)(app_delivered(s, (size_t)v[a]) - w.before[v[a]]),
                                  hyparview_is_eager(s->nodes[i].core, s->nodes[v[a]].name),
                                  hyparview_is_eager(s->nodes[v[a]].core, s->nodes[i].name));
                if (kk > 0)
                    off += (size_t)kk;
            }
        }
        rc = hv_fail(r, "%s: broadcast from n%zu: %zu live nodes missed it, %zu got it more than once; %s", when,
                     origin, missing, twice, d);
    }
    free(w.before);
    return rc;
}

static int settle_views(struct hv_run *r, uint64_t limit, const char *when)
{
    struct sim *s = r->sim;
    if (sim_run_cond(s, views_ok, NULL, s->now + limit, 500))
        return 0;
    char why[1024];
    views_ok_why(s, why, sizeof why);
    return hv_fail(r, "%s: views not settled after %" PRIu64 " ms: %s", when, limit, why);
}

/* Starts n nodes 5 ms apart; one_contact: all through n0, else each
 * through a random earlier node (and, with_n0, n0 as a second seed, as a
 * cluster's seed list names a few stable nodes). */
static void join_all(struct sim *s, bool one_contact, bool with_n0)
{
    sim_start(s, 0, NULL, 0);
    for (size_t i = 1; i < s->p.n; i++) {
        sim_run_until(s, s->now + 5);
        size_t contact = one_contact ? 0 : (size_t)(sim_random(s) % i);
        const char *seeds[2] = { sim_address(s, contact), sim_address(s, 0) };
        sim_start(s, i, seeds, with_n0 && contact != 0 ? 2 : 1);
    }
}

static int sc_join_random_kill50(struct hv_run *r)
{
    struct sim *s = hv_sim(r, 1000, 0);
    join_all(s, false, false);
    if (settle_views(r, 60000, "after 1000 joins") || broadcast_check(r, "after 1000 joins"))
        return -1;
    size_t killed = 0;
    while (killed < s->p.n / 2) {
        size_t i = (size_t)(sim_random(s) % s->p.n);
        if (sim_running(s, i)) {
            sim_crash(s, i, false);
            killed++;
        }
    }
    /* Repair is reactive (resets, promotions); let at least one shuffle
     * period (10 s) pass before judging, then up to six more. */
    sim_run_until(s, s->now + 10000);
    if (settle_views(r, 60000, "after half crashed") || broadcast_check(r, "after half crashed"))
        return -1;
    return 0;
}

static int sc_join_one_contact(struct hv_run *r)
{
    struct sim *s = hv_sim(r, 1000, 0);
    join_all(s, true, false);
    if (settle_views(r, 60000, "after 1000 joins through n0") || broadcast_check(r, "after 1000 joins through n0"))
        return -1;
    return 0;
}

static int sc_swarm(struct hv_run *r)
{
    uint64_t base = r->seed;
    for (int k = 0; k < 3; k++) {
        r->seed = base + (uint64_t)k * 7919;
        struct sim *s = hv_sim(r, 64, 0.02);
        join_all(s, false, true);
        sim_run_until(s, s->now + 20000);
        /* A few crashes (reset or silent) while the loss goes on; n0, the
         * seed every node lists, stays. */
        for (int c = 0; c < 4; c++)
            sim_crash(s, 1 + (size_t)(sim_random(s) % (s->p.n - 1)), sim_random(s) % 2);
        sim_run_until(s, s->now + 10000);
        s->p.loss = 0;
        char when[64];
        snprintf(when, sizeof when, "seed %" PRIu64 " after the loss stopped", r->seed);
        int rc = settle_views(r, 60000, when);
        if (!rc)
            rc = broadcast_check(r, when);
        if (rc || s->violation[0] || s->st.dup_dials) {
            if (!rc && s->violation[0])
                hv_fail(r, "seed %" PRIu64 ": invariant: %s", r->seed, s->violation);
            else if (!rc)
                hv_fail(r, "seed %" PRIu64 ": %" PRIu64 " dials to a node already connected", r->seed,
                        s->st.dup_dials);
            return -1;
        }
        if (k < 2) {
            sim_free(s);
            r->sim = NULL;
        }
    }
    r->seed = base;
    return 0;
}

static bool all_up(struct sim *s, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < s->p.n; i++) {
        if (!live(s, i))
            continue;
        for (size_t j = 0; j < s->p.n; j++)
            if (j != i && live(s, j) && !s->ops->is_up(s->nodes[i].core, s->nodes[j].name))
                return false;
        if (membership_alive_count(s->ops->members(s->nodes[i].core)) != s->p.n)
            return false;
    }
    return true;
}

/* Follows next_hop from src to dst; returns the hop count, or -1 (why set). */
static int route(struct hv_run *r, size_t src, size_t dst)
{
    struct sim *s = r->sim;
    bool visited[256] = { false };
    size_t cur = src;
    for (int hops = 0; hops <= 32; hops++) {
        if (cur == dst)
            return hops;
        visited[cur] = true;
        const char *nh = s->ops->next_hop(s->nodes[cur].core, s->nodes[dst].name);
        if (!nh)
            return hv_fail(r, "n%zu -> n%zu: no next hop at n%zu after %d hops", src, dst, cur, hops);
        long i = index_of(s, nh);
        if (i < 0 || !live(s, (size_t)i) || !in_view(s, cur, (size_t)i))
            return hv_fail(r, "n%zu -> n%zu: n%zu names %s, not a live neighbour", src, dst, cur, nh);
        if (visited[i])
            return hv_fail(r, "n%zu -> n%zu: loop at n%ld", src, dst, i);
        cur = (size_t)i;
    }
    return hv_fail(r, "n%zu -> n%zu: more than 32 hops", src, dst);
}

static bool all_see_left(struct sim *s, void *ctx)
{
    size_t who = *(size_t *)ctx;
    for (size_t i = 0; i < s->p.n; i++) {
        if (i == who || !live(s, i))
            continue;
        const struct member *m = sim_member(s, i, who);
        if (!m || !m->left || s->ops->is_up(s->nodes[i].core, s->nodes[who].name))
            return false;
    }
    return true;
}

static int sc_route(struct hv_run *r)
{
    struct sim *s = hv_sim(r, 200, 0);
    join_all(s, false, false);
    if (settle_views(r, 60000, "after 200 joins"))
        return -1;
    if (!sim_run_cond(s, all_up, NULL, s->now + 60000, 500))
        return hv_fail(r, "not every node lists every member as up within 60 s");
    /* Routes come from announcements: those sent while the joins were
     * still reshaping the views may point over links gone since, and are
     * replaced by the next ones (at most 1.1 x the 10 s interval away). */
    sim_run_until(s, s->now + 2 * 11000);
    size_t max_hops = 0;
    for (int k = 0; k < 400; k++) {
        size_t a = (size_t)(sim_random(s) % s->p.n), b = (size_t)(sim_random(s) % s->p.n);
        int h = route(r, a, b);
        if (h < 0)
            return -1;
        if ((size_t)h > max_hops)
            max_hops = (size_t)h;
    }
    if (r->verbose)
        printf("  hv_route: 400 routes, longest %zu hops\n", max_hops);
    size_t who = (size_t)(sim_random(s) % s->p.n);
    if (sim_leave(s, who, NULL) != 0)
        return hv_fail(r, "n%zu: leave refused", who);
    if (!sim_run_cond(s, all_see_left, &who, s->now + 10000, 100))
        return hv_fail(r, "n%zu left; not every node has it as left and down within 10 s", who);
    if (settle_views(r, 30000, "after a leave") || broadcast_check(r, "after a leave"))
        return -1;
    /* A crashed node forgotten by one operator is left everywhere. */
    size_t dead;
    do
        dead = (size_t)(sim_random(s) % s->p.n);
    while (!live(s, dead));
    sim_crash(s, dead, false);
    size_t by;
    do
        by = (size_t)(sim_random(s) % s->p.n);
    while (!live(s, by));
    if (sim_forget(s, by, s->nodes[dead].name) != 0)
        return hv_fail(r, "n%zu: forget n%zu refused", by, dead);
    if (!sim_run_cond(s, all_see_left, &dead, s->now + 10000, 100))
        return hv_fail(r, "n%zu forgotten by n%zu; not every node has it as left within 10 s", dead, by);
    return 0;
}

/* ---- hv_epochs: two cores wired by hand ---- */

struct pair_node {
    struct overlay *core;
    const char *name, *address;
    uint64_t rng;
    struct {
        char to[32];
        uint8_t *data;
        size_t len;
    } out[64];
    size_t n_out;
    char dialled[8][32];
    size_t n_dialled;
};

static uint64_t pair_now(void *ctx)
{
    (void)ctx;
    return 1000;
}

static uint64_t pair_random(void *ctx)
{
    struct pair_node *n = ctx;
    uint64_t z = (n->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void pair_connect(void *ctx, const struct peer_addr *pa)
{
    struct pair_node *n = ctx;
    if (n->n_dialled < 8)
        snprintf(n->dialled[n->n_dialled++], 32, "%.31s", pa->address);
}

static void pair_disconnect(void *ctx, const char *node)
{
    (void)ctx;
    (void)node;
}

static void pair_send(void *ctx, const char *node, const uint8_t *msg, size_t len)
{
    struct pair_node *n = ctx;
    if (n->n_out == 64)
        return;
    snprintf(n->out[n->n_out].to, 32, "%s", node);
    n->out[n->n_out].data = malloc(len ? len : 1);
    memcpy(n->out[n->n_out].data, msg, len);
    n->out[n->n_out].len = len;
    n->n_out++;
}

static void pair_member(void *ctx, const struct member *m)
{
    (void)ctx;
    (void)m;
}

static void pair_name(void *ctx, const char *node)
{
    (void)ctx;
    (void)node;
}

/* Hands every queued message of from to to's core; returns how many. */
static size_t pair_flush(struct pair_node *from, struct pair_node *to)
{
    size_t k = 0;
    for (size_t i = 0; i < from->n_out; i++) {
        overlay_hyparview_ops.receive(to->core, from->name, from->out[i].data, from->out[i].len);
        free(from->out[i].data);
        k++;
    }
    from->n_out = 0;
    return k;
}

static void pair_drop(struct pair_node *n)
{
    for (size_t i = 0; i < n->n_out; i++)
        free(n->out[i].data);
    n->n_out = 0;
}

static void pair_create(struct pair_node *n, const char *name, const char *address, uint64_t seed)
{
    n->name = name;
    n->address = address;
    n->rng = seed;
    struct overlay_env env = {
        .ctx = n, .now_ms = pair_now, .random = pair_random, .connect = pair_connect,
        .disconnect = pair_disconnect, .send = pair_send, .member_joined = pair_member,
        .member_left = pair_member, .member_up = pair_name, .member_down = pair_name,
    };
    struct overlay_config cfg = {
        .self_name = name, .self_address = address, .self_incarnation = 1,
        .backoff_initial_ms = 100, .backoff_max_ms = 5000, .max_members = 64,
    };
    n->core = overlay_hyparview_ops.create(&cfg, &env);
}

static void pair_send_msg(struct pair_node *to, const char *from, HvType type, uint64_t nonce, const char *address)
{
    HvMessage m = HV_MESSAGE__INIT;
    m.type = type;
    m.nonce = nonce;
    m.address = (char *)address;
    uint8_t buf[512];
    size_t len = hv_message__pack(&m, buf);
    overlay_hyparview_ops.receive(to->core, from, buf, len);
}

static int sc_epochs(struct hv_run *r)
{
    struct pair_node a = { 0 }, b = { 0 };
    pair_create(&a, "a", "a:1", r->seed);
    pair_create(&b, "b", "b:1", r->seed ^ 1);
    int rc = -1;
    if (!a.core || !b.core) {
        hv_fail(r, "create failed");
        goto out;
    }
    overlay_hyparview_ops.start(b.core);
    overlay_hyparview_ops.join(a.core, "b:1");          /* a dials b, queues JOIN */
    overlay_hyparview_ops.peer_connected(a.core, "b", "b:1", 1);
    pair_flush(&a, &b);                                  /* JOIN: b dials a back */
    overlay_hyparview_ops.peer_connected(b.core, "a", "a:1", 1);
    pair_flush(&b, &a);                                  /* ACCEPT */
    if (!overlay_hyparview_ops.is_neighbor(a.core, "b") || !overlay_hyparview_ops.is_neighbor(b.core, "a")) {
        hv_fail(r, "join did not make a symmetric link");
        goto out;
    }
    /* A DISCONNECT for some other link (an earlier one, reordered) and an
     * ACCEPT answering no request of ours must not end this one. */
    pair_send_msg(&b, "a", HV_TYPE__HV_DISCONNECT, 12345, "a:1");
    pair_send_msg(&a, "b", HV_TYPE__HV_NEIGHBOR_ACCEPT, 777, "b:1");
    pair_drop(&b);
    if (!overlay_hyparview_ops.is_neighbor(b.core, "a") || !overlay_hyparview_ops.is_neighbor(a.core, "b")) {
        hv_fail(r, "a stale DISCONNECT or ACCEPT tore the link down");
        goto out;
    }
    /* The stale ACCEPT is answered with DISCONNECT(777), which b ignores. */
    pair_flush(&a, &b);
    if (!overlay_hyparview_ops.is_neighbor(b.core, "a")) {
        hv_fail(r, "the answer to a stale ACCEPT tore the current link down");
        goto out;
    }
    /* Garbage from a neighbour: ignored, never a crash, the link stays. */
    uint8_t buf[256];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(pair_random(&a) % sizeof buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)pair_random(&a);
        if (i % 2) {
            /* A valid message with random fields: truncated or bit-flipped. */
            HvMessage m = HV_MESSAGE__INIT;
            HvPeer p = HV_PEER__INIT;
            m.type = (HvType)(pair_random(&a) % 16);
            m.nonce = pair_random(&a) % 4;
            m.ttl = (uint32_t)pair_random(&a);
            p.name = "x";
            p.address = "x:1";
            m.peer = &p;
            size_t n = hv_message__pack(&m, buf);
            if (n && i % 4 == 1)
                buf[pair_random(&a) % n] ^= (uint8_t)(1u << (pair_random(&a) % 8));
            len = i % 8 == 3 && n ? (size_t)(pair_random(&a) % n) : n;
        }
        overlay_hyparview_ops.receive(b.core, "a", buf, len);
        pair_drop(&b);
    }
    struct hyparview_stats st;
    hyparview_get_stats(b.core, &st);
    if (!overlay_hyparview_ops.is_neighbor(b.core, "a") && !overlay_hyparview_ops.has_left(b.core)) {
        /* A bit-flipped DISCONNECT may name the link by chance only with
         * nonce 0..3, which no link has; so the link must stay. */
        hv_fail(r, "malformed messages tore the link down (%" PRIu64 " undecodable)", st.decode_errors);
        goto out;
    }
    if (st.decode_errors == 0) {
        hv_fail(r, "no message counted as undecodable");
        goto out;
    }
    /* The real DISCONNECT does end it. */
    overlay_hyparview_ops.leave(a.core, NULL);
    pair_flush(&a, &b);
    if (overlay_hyparview_ops.is_neighbor(b.core, "a")) {
        hv_fail(r, "the current link's DISCONNECT did not end it");
        goto out;
    }
    rc = 0;
out:
    pair_drop(&a);
    pair_drop(&b);
    overlay_hyparview_ops.destroy(a.core);
    overlay_hyparview_ops.destroy(b.core);
    return rc;
}

/* Two halves cut off from each other long enough for every member across
 * the cut to be down, then healed: they find each other again (seeds,
 * probes of members that are down) without anyone rejoining by hand. */
static int sc_partition(struct hv_run *r)
{
    struct sim *s = hv_sim(r, 100, 0);
    join_all(s, false, true);
    if (settle_views(r, 60000, "after 100 joins"))
        return -1;
    int group[100];
    for (size_t i = 0; i < 100; i++)
        group[i] = (int)(sim_random(s) % 2);
    sim_partition(s, group);
    sim_run_until(s, s->now + 45000);
    for (size_t i = 0; i < 100; i++) {
        long v[32];
        size_t k = view_of(s, i, v, 32);
        for (size_t a = 0; a < k; a++)
            if (v[a] >= 0 && group[v[a]] != group[i])
                return hv_fail(r, "n%zu still has n%ld across the cut after 45 s", i, v[a]);
    }
    sim_partition(s, NULL);
    if (settle_views(r, 120000, "after the partition healed") || broadcast_check(r, "after the partition healed"))
        return -1;
    return 0;
}

struct hv_scenario {
    const char *name;
    int (*run)(struct hv_run *r);
};

static const struct hv_scenario hv_scenarios[] = {
    { "hv_join_random_kill50", sc_join_random_kill50 },
    { "hv_join_one_contact", sc_join_one_contact },
    { "hv_swarm", sc_swarm },
    { "hv_route", sc_route },
    { "hv_partition", sc_partition },
    { "hv_epochs", sc_epochs },
};

const char *hyparview_scenario_names(void)
{
    return "hv_join_random_kill50 hv_join_one_contact hv_swarm hv_route hv_partition hv_epochs";
}

static double ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

bool hyparview_scenarios_run(uint64_t seed, const char *only, bool verbose, int *passed, int *failed)
{
    bool found = false;
    for (size_t k = 0; k < sizeof hv_scenarios / sizeof hv_scenarios[0]; k++) {
        const struct hv_scenario *sc = &hv_scenarios[k];
        if (only && strcmp(only, sc->name) != 0)
            continue;
        found = true;
        struct hv_run r = { .seed = seed, .verbose = verbose };
        double t0 = ms_now();
        int rc = sc->run(&r);
        struct sim *s = r.sim;
        if (rc == 0 && s && s->violation[0])
            rc = hv_fail(&r, "invariant: %s", s->violation);
        else if (rc == 0 && s && s->st.dup_dials)
            rc = hv_fail(&r, "the core dialled a node already connected or being dialled %" PRIu64 " times",
                         s->st.dup_dials);
        uint64_t virt = s ? s->now : 0;
        sim_free(s);
        if (rc == 0) {
            printf("PASS %s (seed %" PRIu64 ", virtual %" PRIu64 " ms, real %.0f ms)\n", sc->name, seed, virt,
                   ms_now() - t0);
            (*passed)++;
        } else {
            printf("FAIL %s: %s\n", sc->name, r.why);
            printf("reproduce: build/san/test/sim --seed %" PRIu64 " --scenario %s\n", seed, sc->name);
            (*failed)++;
        }
        fflush(stdout);
    }
    return found;
}
