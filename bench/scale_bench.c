/* scale_bench: the HyParView + Plumtree core at 10,000 simulated nodes, with
 * the setup of the HyParView paper (Leitão, Pereira, Rodrigues, DSN 2007):
 * active view 5, passive 30, ARWL 6, PRWL 3, shuffles of 3 active + 4
 * passive + self, nodes joined one at a time through one contact, then 50
 * membership cycles (one cycle: shuffle_interval_ms of virtual time).
 *
 *   scale_bench [--nodes N] [--seed S] [--broadcasts B] [--pcts 10,20,...] [--rest-nodes N]
 *
 * The generic simulator (test/sim) keeps n * n link state, too much for
 * 10,000 nodes, so this file has its own lightweight driver: a virtual
 * clock, one event heap, per directed pair a fixed latency of 1..5 ms (so
 * each connection is FIFO), connections kept per node. It runs the real
 * core through overlay_hyparview_ops. A killed node's peers hear a reset
 * after one latency, as from a crashed process's kernel. Announcements and
 * pings are off at 10,000 nodes (every node would keep 10,000 records): that
 * part measures views and broadcast, as the paper does. What a cluster at
 * rest costs with the daemon's defaults (announcements, pings) is measured
 * first, at --rest-nodes (1,000) nodes.
 *
 * Time, where the paper counts cycles: the 1,000 broadcasts after a failure
 * go 10 ms apart within the first cycle, and a broadcast's reach counts
 * what arrived within 10 s of the last (a GRAFT repair takes a second or
 * two per hole in the tree). Healing: cycles until the average reach of a
 * cycle's 10 broadcasts is back to its level before the failure.
 *
 * Nothing here is a pass condition: the figures are printed beside the
 * papers' (shared/reference/papers.md). */
#include "overlay_hyparview.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the driver ---- */

struct bconn {
    uint32_t peer;
    uint8_t up;
    uint8_t by_name;        /* dialled by name (else by address, a seed) */
};

struct bnode {
    struct overlay *core;
    bool alive;
    char name[24], addr[32];
    struct bconn *conns;
    uint32_t n_conns, cap;
    uint64_t tick_at;
    uint64_t sent;
};

enum { EV_TICK, EV_CONNECTED, EV_CONNFAIL, EV_DELIVER, EV_RESET };

struct bev {
    uint64_t t, seq;
    uint32_t node, peer;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
};

static struct {
    struct bnode *nodes;
    size_t n;
    uint64_t now, seq, rng;
    struct bev *heap;
    size_t heap_n, heap_cap;
    uint64_t msgs, bytes, dup_dials;
    uint32_t ping_ms, fd_ms;            /* the failure detector; 0: off */
    /* per broadcast index */
    uint32_t *reached, *ldh;
    size_t n_bcast, bcast_cap;
    struct hyparview_params hp;
} B;

static uint64_t rnd64(void)
{
    uint64_t z = (B.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t lat(uint32_t a, uint32_t b)
{
    uint64_t h = ((uint64_t)a * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)b * 0xc2b2ae3d27d4eb4fULL);
    h ^= h >> 29;
    return 1 + h % 5;
}

static bool ev_less(const struct bev *a, const struct bev *b)
{
    return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

static void push(struct bev e)
{
    if (B.heap_n == B.heap_cap) {
        B.heap_cap = B.heap_cap ? B.heap_cap * 2 : 65536;
        B.heap = realloc(B.heap, B.heap_cap * sizeof *B.heap);
        if (!B.heap)
            abort();
    }
    e.seq = B.seq++;
    size_t i = B.heap_n++;
    while (i) {
        size_t up = (i - 1) / 2;
        if (!ev_less(&e, &B.heap[up]))
            break;
        B.heap[i] = B.heap[up];
        i = up;
    }
    B.heap[i] = e;
}

static struct bev pop(void)
{
    struct bev top = B.heap[0], last = B.heap[--B.heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= B.heap_n)
            break;
        if (c + 1 < B.heap_n && ev_less(&B.heap[c + 1], &B.heap[c]))
            c++;
        if (!ev_less(&B.heap[c], &last))
            break;
        B.heap[i] = B.heap[c];
        i = c;
    }
    if (B.heap_n)
        B.heap[i] = last;
    return top;
}

static long idx_of(const char *s)
{
    if (s[0] != 'n')
        return -1;
    char *end;
    long i = strtol(s + 1, &end, 10);
    return i >= 0 && (size_t)i < B.n ? i : -1;
}

static struct bconn *conn_of(struct bnode *n, uint32_t peer)
{
    for (uint32_t i = 0; i < n->n_conns; i++)
        if (n->conns[i].peer == peer)
            return &n->conns[i];
    return NULL;
}

static void conn_del(struct bnode *n, uint32_t peer)
{
    struct bconn *c = conn_of(n, peer);
    if (c)
        *c = n->conns[--n->n_conns];
}

static void reschedule(uint32_t i)
{
    struct bnode *n = &B.nodes[i];
    if (!n->core)
        return;
    uint64_t d = overlay_hyparview_ops.next_deadline(n->core);
    if (d == UINT64_MAX || d >= n->tick_at)
        return;
    if (d < B.now)
        d = B.now;
    n->tick_at = d;
    push((struct bev){ .t = d, .node = i, .type = EV_TICK });
}

static uint64_t env_now(void *ctx)
{
    (void)ctx;
    return B.now;
}

static uint64_t env_random(void *ctx)
{
    (void)ctx;
    return rnd64();
}

static void env_connect(void *ctx, const struct peer_addr *pa)
{
    struct bnode *n = ctx;
    uint32_t me = (uint32_t)(n - B.nodes);
    long t = idx_of(pa->address);
    if (t < 0) {
        push((struct bev){ .t = B.now + 1, .node = me, .peer = UINT32_MAX, .type = EV_CONNFAIL });
        return;
    }
    if (conn_of(n, (uint32_t)t)) {
        B.dup_dials++;
        return;
    }
    if (n->n_conns == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 8;
        n->conns = realloc(n->conns, n->cap * sizeof *n->conns);
        if (!n->conns)
            abort();
    }
    n->conns[n->n_conns++] = (struct bconn){ .peer = (uint32_t)t, .by_name = pa->node[0] != 0 };
    uint64_t rtt = lat(me, (uint32_t)t) + lat((uint32_t)t, me);
    push((struct bev){ .t = B.now + rtt, .node = me, .peer = (uint32_t)t, .type = EV_CONNECTED });
}

static void env_disconnect(void *ctx, const char *node)
{
    struct bnode *n = ctx;
    uint32_t me = (uint32_t)(n - B.nodes);
    long t = idx_of(node);
    if (t < 0)
        return;
    conn_del(n, (uint32_t)t);
    struct bconn *back = conn_of(&B.nodes[t], me);
    if (back && back->up)
        push((struct bev){ .t = B.now + lat(me, (uint32_t)t), .node = (uint32_t)t, .peer = me, .type = EV_RESET });
}

static void env_send(void *ctx, const char *node, const uint8_t *msg, size_t len)
{
    struct bnode *n = ctx;
    uint32_t me = (uint32_t)(n - B.nodes);
    long t = idx_of(node);
    if (t < 0)
        return;
    struct bconn *c = conn_of(n, (uint32_t)t);
    if (!c || !c->up)
        return;
    n->sent++;
    B.msgs++;
    B.bytes += len;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, msg, len);
    push((struct bev){ .t = B.now + lat(me, (uint32_t)t), .node = (uint32_t)t, .peer = me, .type = EV_DELIVER,
                       .len = (uint32_t)len, .data = copy });
}

static void env_member(void *ctx, const struct member *m)
{
    (void)ctx;
    (void)m;
}

static void env_node(void *ctx, const char *node)
{
    (void)ctx;
    (void)node;
}

static void env_bdeliver(void *ctx, const char *origin, const char *name, const uint8_t *payload, size_t len)
{
    struct bnode *n = ctx;
    (void)origin;
    (void)name;
    uint32_t id;
    if (len != sizeof id)
        return;
    memcpy(&id, payload, sizeof id);
    if (id >= B.n_bcast)
        return;
    B.reached[id]++;
    struct hyparview_stats st;
    hyparview_get_stats(n->core, &st);
    if (st.last_round > B.ldh[id])
        B.ldh[id] = (uint32_t)st.last_round;
}

static const struct overlay_env env_template = {
    .now_ms = env_now,
    .random = env_random,
    .connect = env_connect,
    .disconnect = env_disconnect,
    .send = env_send,
    .member_joined = env_member,
    .member_left = env_member,
    .member_up = env_node,
    .member_down = env_node,
    .broadcast_deliver = env_bdeliver,
};

static void handle(struct bev *e)
{
    struct bnode *n = &B.nodes[e->node];
    if (!n->core) {
        free(e->data);
        return;
    }
    switch (e->type) {
    case EV_TICK:
        if (e->t != n->tick_at)
            return;
        n->tick_at = UINT64_MAX;
        overlay_hyparview_ops.tick(n->core, B.now);
        break;
    case EV_CONNECTED: {
        struct bconn *c = conn_of(n, e->peer);
        if (!c || c->up)
            break;
        struct bnode *t = &B.nodes[e->peer];
        if (!t->core) {
            bool by_name = c->by_name;
            conn_del(n, e->peer);
            struct peer_addr pa = { .node = "" };
            snprintf(pa.address, sizeof pa.address, "%s", t->addr);
            if (by_name)
                snprintf(pa.node, sizeof pa.node, "%s", t->name);
            overlay_hyparview_ops.connect_failed(n->core, &pa);
            break;
        }
        c->up = 1;
        overlay_hyparview_ops.peer_connected(n->core, t->name, t->addr, 1);
        break;
    }
    case EV_CONNFAIL: {
        struct peer_addr pa = { .node = "" };
        overlay_hyparview_ops.connect_failed(n->core, &pa);
        break;
    }
    case EV_DELIVER:
        overlay_hyparview_ops.receive(n->core, B.nodes[e->peer].name, e->data, e->len);
        free(e->data);
        break;
    case EV_RESET: {
        struct bconn *c = conn_of(n, e->peer);
        if (!c || !c->up)
            break;
        conn_del(n, e->peer);
        overlay_hyparview_ops.peer_disconnected(n->core, B.nodes[e->peer].name);
        break;
    }
    }
    reschedule(e->node);
}

static void run_until(uint64_t t)
{
    while (B.heap_n && B.heap[0].t <= t) {
        struct bev e = pop();
        B.now = e.t;
        handle(&e);
    }
    if (t > B.now)
        B.now = t;
}

static void start_node(uint32_t i, const char *seed)
{
    struct bnode *n = &B.nodes[i];
    struct overlay_env env = env_template;
    env.ctx = n;
    const char *seeds[1] = { seed };
    struct overlay_config cfg = {
        .self_name = n->name,
        .self_address = n->addr,
        .self_incarnation = 1,
        .seeds = seed ? seeds : NULL,
        .n_seeds = seed ? 1 : 0,
        .backoff_initial_ms = 100,
        .backoff_max_ms = 5000,
        .ping_interval_ms = B.ping_ms,
        .fd_timeout_ms = B.fd_ms,
        .max_members = B.hp.announce_interval_ms ? B.n + 16 : 64,
        .hyparview = &B.hp,
    };
    n->core = overlay_hyparview_ops.create(&cfg, &env);
    if (!n->core)
        abort();
    n->alive = true;
    n->tick_at = UINT64_MAX;
    overlay_hyparview_ops.start(n->core);
    reschedule(i);
}

static void kill_node(uint32_t i)
{
    struct bnode *n = &B.nodes[i];
    overlay_hyparview_ops.destroy(n->core);
    n->core = NULL;
    n->alive = false;
    n->n_conns = 0;
}

/* After killing: every live node with a connection to a dead one hears a
 * reset one latency later. */
static void resets_after_kill(void)
{
    for (uint32_t j = 0; j < B.n; j++) {
        struct bnode *n = &B.nodes[j];
        if (!n->alive)
            continue;
        for (uint32_t k = 0; k < n->n_conns; k++)
            if (!B.nodes[n->conns[k].peer].alive)
                push((struct bev){ .t = B.now + lat(n->conns[k].peer, j), .node = j, .peer = n->conns[k].peer,
                                   .type = EV_RESET });
    }
}

static void free_all(void)
{
    for (size_t i = 0; i < B.n; i++) {
        if (B.nodes[i].core)
            overlay_hyparview_ops.destroy(B.nodes[i].core);
        free(B.nodes[i].conns);
    }
    free(B.nodes);
    while (B.heap_n) {
        struct bev e = pop();
        free(e.data);
    }
    free(B.heap);
    free(B.reached);
    free(B.ldh);
    B.nodes = NULL;
    B.heap = NULL;
    B.heap_cap = 0;
    B.reached = B.ldh = NULL;
    B.n_bcast = B.bcast_cap = 0;
}

static void setup(size_t n, uint64_t seed)
{
    memset(&B.nodes, 0, sizeof B.nodes);
    B.n = n;
    B.now = 0;
    B.seq = 0;
    B.rng = seed;
    B.msgs = 0;
    B.nodes = calloc(n, sizeof *B.nodes);
    if (!B.nodes)
        abort();
    for (size_t i = 0; i < n; i++) {
        snprintf(B.nodes[i].name, sizeof B.nodes[i].name, "n%u", (unsigned)i);
        snprintf(B.nodes[i].addr, sizeof B.nodes[i].addr, "n%u:7000", (unsigned)i);
        B.nodes[i].tick_at = UINT64_MAX;
    }
}

/* ---- measurements ---- */

static uint32_t new_bcast(void)
{
    if (B.n_bcast == B.bcast_cap) {
        B.bcast_cap = B.bcast_cap ? B.bcast_cap * 2 : 4096;
        B.reached = realloc(B.reached, B.bcast_cap * sizeof *B.reached);
        B.ldh = realloc(B.ldh, B.bcast_cap * sizeof *B.ldh);
        if (!B.reached || !B.ldh)
            abort();
    }
    B.reached[B.n_bcast] = 0;
    B.ldh[B.n_bcast] = 0;
    return (uint32_t)B.n_bcast++;
}

static uint32_t random_live(void)
{
    for (;;) {
        uint32_t i = (uint32_t)(rnd64() % B.n);
        if (B.nodes[i].alive)
            return i;
    }
}

static uint32_t broadcast_from(uint32_t i)
{
    uint32_t id = new_bcast();
    overlay_hyparview_ops.broadcast(B.nodes[i].core, "bench", (const uint8_t *)&id, sizeof id);
    reschedule(i);
    return id;
}

static size_t live_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < B.n; i++)
        n += B.nodes[i].alive;
    return n;
}

static uint64_t payloads_received(void)
{
    uint64_t g = 0;
    for (size_t i = 0; i < B.n; i++)
        if (B.nodes[i].core) {
            struct hyparview_stats st;
            hyparview_get_stats(B.nodes[i].core, &st);
            g += st.gossip_received;
        }
    return g;
}

static long name_idx(const char *s)
{
    return idx_of(s);
}

struct graph {
    uint32_t *off, *adj;        /* CSR of the active views (out-edges) */
};

static void graph_build(struct graph *g)
{
    g->off = calloc(B.n + 1, sizeof *g->off);
    g->adj = calloc(B.n * 8 + 1, sizeof *g->adj);
    if (!g->off || !g->adj)
        abort();
    size_t e = 0;
    for (size_t i = 0; i < B.n; i++) {
        g->off[i] = (uint32_t)e;
        if (!B.nodes[i].core)
            continue;
        const char *v[16];
        size_t k = hyparview_active_view(B.nodes[i].core, v, 16);
        for (size_t j = 0; j < k && j < 8; j++) {
            long t = name_idx(v[j]);
            if (t >= 0)
                g->adj[e++] = (uint32_t)t;
        }
    }
    g->off[B.n] = (uint32_t)e;
}

static bool has_edge(const struct graph *g, uint32_t a, uint32_t b)
{
    for (uint32_t k = g->off[a]; k < g->off[a + 1]; k++)
        if (g->adj[k] == b)
            return true;
    return false;
}

static void graph_report(const struct graph *g)
{
    size_t indeg[16] = { 0 }, asym = 0, edges = 0;
    uint32_t *in = calloc(B.n, sizeof *in);
    for (size_t i = 0; i < B.n; i++)
        for (uint32_t k = g->off[i]; k < g->off[i + 1]; k++) {
            in[g->adj[k]]++;
            edges++;
            asym += !has_edge(g, g->adj[k], (uint32_t)i);
        }
    for (size_t i = 0; i < B.n; i++)
        if (B.nodes[i].alive)
            indeg[in[i] < 15 ? in[i] : 15]++;
    printf("in-degree histogram (paper: almost all nodes at 5):\n ");
    for (int d = 0; d < 16; d++)
        if (indeg[d])
            printf(" %d: %zu", d, indeg[d]);
    printf("\n  active edges %zu, of which not symmetric %zu\n", edges, asym);
    /* Clustering coefficient on the undirected active graph. */
    double cc = 0;
    size_t ccn = 0;
    for (size_t i = 0; i < B.n; i++) {
        uint32_t a = g->off[i], b = g->off[i + 1], deg = b - a;
        if (!B.nodes[i].alive)
            continue;
        ccn++;
        if (deg < 2)
            continue;
        size_t links = 0;
        for (uint32_t x = a; x < b; x++)
            for (uint32_t y = x + 1; y < b; y++)
                links += has_edge(g, g->adj[x], g->adj[y]) || has_edge(g, g->adj[y], g->adj[x]);
        cc += (double)links / ((double)deg * (deg - 1) / 2);
    }
    /* Average shortest path: BFS from a sample of sources. */
    uint32_t *dist = malloc(B.n * sizeof *dist), *q = malloc(B.n * sizeof *q);
    double sum = 0;
    size_t pairs = 0, unreachable = 0, diam = 0;
    size_t sources = B.n < 1000 ? B.n : 1000;
    for (size_t s = 0; s < sources; s++) {
        uint32_t src = (uint32_t)(s * (B.n / sources));
        if (!B.nodes[src].alive)
            continue;
        for (size_t i = 0; i < B.n; i++)
            dist[i] = UINT32_MAX;
        size_t h = 0, t = 0;
        dist[src] = 0;
        q[t++] = src;
        while (h < t) {
            uint32_t u = q[h++];
            for (uint32_t k = g->off[u]; k < g->off[u + 1]; k++) {
                uint32_t v = g->adj[k];
                if (dist[v] == UINT32_MAX) {
                    dist[v] = dist[u] + 1;
                    q[t++] = v;
                }
            }
        }
        for (size_t i = 0; i < B.n; i++) {
            if (i == src || !B.nodes[i].alive)
                continue;
            if (dist[i] == UINT32_MAX) {
                unreachable++;
                continue;
            }
            sum += dist[i];
            pairs++;
            if (dist[i] > diam)
                diam = dist[i];
        }
    }
    printf("  clustering coefficient %.5f (paper 0.00092)\n", ccn ? cc / (double)ccn : 0.0);
    printf("  average shortest path %.2f (paper 6.39), diameter seen %zu (Plumtree paper: 8-9), "
           "unreachable pairs %zu\n", pairs ? sum / (double)pairs : 0.0, diam, unreachable);
    free(in);
    free(dist);
    free(q);
}

static void graph_free(struct graph *g)
{
    free(g->off);
    free(g->adj);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Joins every node through n0, one at a time, then runs `cycles` cycles. */
static void build(size_t n, uint64_t seed, int cycles)
{
    setup(n, seed);
    start_node(0, NULL);
    run_until(B.now + 50);
    for (uint32_t i = 1; i < n; i++) {
        start_node(i, B.nodes[0].addr);
        run_until(B.now + 20);
    }
    run_until(B.now + (uint64_t)cycles * B.hp.shuffle_interval_ms);
}

/* Runs until no broadcast is in flight any more (plus GRAFT timeouts). */
static void settle_broadcasts(void)
{
    run_until(B.now + 3000);
}

static double reach_pct(uint32_t id, size_t live)
{
    return live ? 100.0 * B.reached[id] / (double)live : 0;
}

struct row {
    int pct;
    double first, avg;
    int heal;
};

static void failure_run(int pct, size_t n, uint64_t seed, size_t n_bcast, struct row *out)
{
    build(n, seed, 50);
    size_t live = live_count();
    /* The reach before the failure, the level healing must get back to. */
    double before = 0;
    for (int i = 0; i < 10; i++) {
        uint32_t id = broadcast_from(random_live());
        settle_broadcasts();
        before += reach_pct(id, live);
    }
    before /= 10;
    size_t kill = n * (size_t)pct / 100;
    for (size_t k = 0; k < kill;) {
        uint32_t i = (uint32_t)(rnd64() % n);
        if (B.nodes[i].alive) {
            kill_node(i);
            k++;
        }
    }
    resets_after_kill();
    live = live_count();
    uint64_t t0 = B.now;
    uint32_t first = broadcast_from(random_live());
    uint64_t spacing = B.hp.shuffle_interval_ms / (n_bcast ? n_bcast : 1);
    if (!spacing)
        spacing = 1;
    for (size_t b = 1; b < n_bcast; b++) {
        run_until(t0 + spacing * b);
        broadcast_from(random_live());
    }
    /* Reach is what is delivered at all: repairs by GRAFT take seconds. */
    run_until(B.now + 10000);
    double sum = 0;
    for (uint32_t id = first; id < first + n_bcast; id++)
        sum += reach_pct(id, live);
    out->pct = pct;
    out->first = reach_pct(first, live);
    out->avg = sum / (double)n_bcast;
    /* Healing, as the paper counts it: membership cycles after the failure
     * until the average reach of a cycle's 10 broadcasts is back to what it
     * was before. Cycle 1: 10 of the broadcasts above, spread over it;
     * later cycles: 10, one a second; each given 10 s to arrive. */
    double c1 = 0;
    for (size_t k = 0; k < 10; k++)
        c1 += reach_pct(first + (uint32_t)(k * n_bcast / 10), live);
    out->heal = c1 / 10 + 1e-9 >= before ? 1 : -1;
    for (int c = 2; c <= 20 && out->heal < 0; c++) {
        double sum_c = 0;
        uint32_t ids[10];
        for (int b = 0; b < 10; b++) {
            ids[b] = broadcast_from(random_live());
            run_until(B.now + B.hp.shuffle_interval_ms / 10);
        }
        run_until(B.now + 10000);
        for (int b = 0; b < 10; b++)
            sum_c += reach_pct(ids[b], live);
        if (sum_c / 10 + 1e-9 >= before)
            out->heal = c;
    }
    free_all();
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv)
{
    size_t n = 10000, n_bcast = 1000, rest_n = 1000;
    uint64_t seed = 1;
    int pcts[16] = { 10, 20, 30, 40, 50, 60, 70, 80, 90, 95 };
    int n_pcts = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rest-nodes") && i + 1 < argc)
            rest_n = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--broadcasts") && i + 1 < argc)
            n_bcast = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--pcts") && i + 1 < argc) {
            n_pcts = 0;
            for (char *p = strtok(argv[++i], ","); p && n_pcts < 16; p = strtok(NULL, ","))
                pcts[n_pcts++] = atoi(p);
        } else {
            fprintf(stderr, "usage: %s [--nodes N] [--seed S] [--broadcasts B] [--pcts 10,20,...] [--rest-nodes N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 10 || n_bcast < 1) {
        fprintf(stderr, "scale_bench: at least 10 nodes and 1 broadcast\n");
        return 2;
    }
    hyparview_params_default(&B.hp);
    B.hp.active_max_size = 5;
    B.hp.passive_max_size = 30;
    B.hp.active_rwl = 6;
    B.hp.passive_rwl = 3;
    B.hp.shuffle_k_active = 3;
    B.hp.shuffle_k_passive = 4;
    B.hp.announce_interval_ms = 0;
    B.hp.broadcast_ids_max = 4096;
    B.hp.broadcast_store_max = 256;

    /* At rest with the daemon's defaults (announcements every 10 s, pings
     * every 500 ms to idle neighbours), at a size whose member tables fit. */
    if (rest_n) {
        struct hyparview_params keep = B.hp;
        B.hp.announce_interval_ms = 10000;
        B.ping_ms = 500;
        B.fd_ms = 3000;
        size_t h0 = heap_bytes();
        build(rest_n, seed, 5);
        size_t h1 = heap_bytes();
        uint64_t m0 = B.msgs, b0 = B.bytes;
        run_until(B.now + 30000);
        size_t up = 0;
        for (size_t i = 0; i < rest_n; i++) {
            struct hyparview_stats st;
            hyparview_get_stats(B.nodes[i].core, &st);
            up += st.members;
        }
        printf("at rest, %zu nodes with the daemon's defaults (announce every 10 s, pings every 500 ms, "
               "timeout 3 s): %.1f messages and %.0f bytes per node per second; %.1f of %zu members known per "
               "node; %.1f KiB per node\n",
               rest_n, (double)(B.msgs - m0) / (double)rest_n / 30.0, (double)(B.bytes - b0) / (double)rest_n / 30.0,
               (double)up / (double)rest_n, rest_n, (double)(h1 - h0) / (double)rest_n / 1024.0);
        free_all();
        B.hp = keep;
        B.ping_ms = B.fd_ms = 0;
    }

    printf("scale_bench: %zu nodes, active %u, passive %u, ARWL %u, PRWL %u, shuffle %u+%u+self every %u ms "
           "(one membership cycle), promotion every %u ms, seed %" PRIu64 "\n",
           n, B.hp.active_max_size, B.hp.passive_max_size, B.hp.active_rwl, B.hp.passive_rwl,
           B.hp.shuffle_k_active, B.hp.shuffle_k_passive, B.hp.shuffle_interval_ms,
           B.hp.random_promotion_interval_ms, seed);
    double t_start = now_s();
    size_t heap0 = heap_bytes();
    build(n, seed, 50);
    size_t heap1 = heap_bytes();
    printf("built: %zu joins through n0, then 50 cycles, in %.1f s of real time (%.0f s virtual)\n", n,
           now_s() - t_start, (double)B.now / 1000);
    struct graph g;
    graph_build(&g);
    graph_report(&g);
    graph_free(&g);

    /* At rest: messages per node per second over one cycle, nothing broadcast. */
    uint64_t m0 = B.msgs;
    run_until(B.now + B.hp.shuffle_interval_ms);
    printf("at rest: %.3f overlay messages per node per second (shuffles and promotions only; "
           "announcements would bring each node n / 10 s = %.0f entries a second in batches)\n",
           (double)(B.msgs - m0) / (double)n / (B.hp.shuffle_interval_ms / 1000.0), (double)n / 10.0);
    printf("memory: %.1f KiB per simulated node (heap after the build; the driver's share included)\n",
           (double)(heap1 - heap0) / (double)n / 1024.0);

    /* Plumtree at rest: warm the tree up, then measure. */
    for (int i = 0; i < 50; i++) {
        broadcast_from(random_live());
        settle_broadcasts();
    }
    double rmr = 0, ldh = 0, reach = 0;
    int meas = 50;
    for (int i = 0; i < meas; i++) {
        uint64_t g0 = payloads_received();
        uint32_t id = broadcast_from(random_live());
        settle_broadcasts();
        uint64_t got = payloads_received() - g0;
        double r = B.reached[id] > 1 ? (double)got / (double)(B.reached[id] - 1) - 1 : 0;
        rmr += r;
        ldh += B.ldh[id];
        reach += reach_pct(id, n);
    }
    printf("Plumtree at rest, %d broadcasts from random nodes after 50 to settle the tree: "
           "reach %.2f %%, RMR %.3f (paper 0), last delivery hop %.1f (paper about 10)\n",
           meas, reach / meas, rmr / meas, ldh / meas);
    free_all();

    static const double paper_avg[] = { 100, 100, 100, 100, 100, 100, 100, 100, 99.7, 90.9 };
    static const double paper_first[] = { 100, 99.8, 99.6, 98.7, 95, 56, 15, 0, 0, 0 };
    static const int paper_heal[] = { 1, 1, 1, 1, 1, 1, 2, 2, 4, -1 };
    printf("\nsimultaneous failures (each row a fresh overlay; %zu broadcasts in the cycle after the failure):\n",
           n_bcast);
    printf("%7s | %16s %12s | %16s %16s | %14s %10s\n", "failed", "first bcast %", "(Plumtree", "avg of first",
           "(HyParView", "healing cycles", "(paper)");
    printf("%7s | %16s %12s | %16s %16s | %14s %10s\n", "", "", "Fig. 6a)", "N bcasts %", "Fig. 2)", "", "");
    for (int k = 0; k < n_pcts; k++) {
        struct row r;
        double t1 = now_s();
        failure_run(pcts[k], n, seed + 1000 + (uint64_t)k, n_bcast, &r);
        int pi = -1;
        for (int j = 0; j < 10; j++)
            if ((int[]){ 10, 20, 30, 40, 50, 60, 70, 80, 90, 95 }[j] == pcts[k])
                pi = j;
        char ph[16] = "-", pf[16] = "-", pa[16] = "-", heal[16] = "never (20)";
        if (pi >= 0) {
            snprintf(pf, sizeof pf, "%.1f", paper_first[pi]);
            snprintf(pa, sizeof pa, "%.1f", paper_avg[pi]);
            if (paper_heal[pi] >= 0)
                snprintf(ph, sizeof ph, "%d", paper_heal[pi]);
        }
        if (r.heal >= 0)
            snprintf(heal, sizeof heal, "%d", r.heal);
        printf("%6d%% | %16.2f %12s | %16.2f %16s | %14s %10s   (%.0f s)\n", r.pct, r.first, pf, r.avg, pa, heal,
               ph, now_s() - t1);
        fflush(stdout);
    }
    printf("\ntotal %.0f s real time\n", now_s() - t_start);
    return 0;
}
