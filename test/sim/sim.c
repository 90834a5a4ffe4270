/* sim: the deterministic simulator (see sim.h). */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum link_state { LINK_NONE, LINK_DIALLING, LINK_UP };

/* One directed link: the outbound connection of `from` toward `to`. */
struct sim_link {
    enum link_state state;
    uint64_t conn_id;       /* the latest connection's id */
    uint64_t dead_below;    /* messages of connections older than this were reset */
    bool core_up;           /* the dialler's core believes it is connected */
    uint64_t peer_instance; /* the process at the far end */
};

enum ev_type { EV_TICK, EV_DELIVER, EV_CONNECT, EV_CONNECT_FAIL, EV_DISCONNECTED };

/* A message as it travels: the bytes the core encoded, copied. */
struct wire_msg {
    uint8_t *bytes;
    size_t len;
};

struct sim_event {
    uint64_t time, seq;
    enum ev_type type;
    size_t node;            /* the node that handles it */
    uint64_t instance;      /* of that node, when the event was made */
    size_t peer;            /* the other end */
    uint64_t conn_id;
    uint64_t dial_time;
    struct peer_addr addr;  /* EV_CONNECT*: as dialled */
    struct wire_msg *msg;
};

/* ---- PRNG: splitmix64, one stream for everything ---- */

uint64_t sim_random(struct sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double sim_uniform(struct sim *s)
{
    return (double)(sim_random(s) >> 11) / 9007199254740992.0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    return p;
}

static __attribute__((format(printf, 2, 3)))
void violation(struct sim *s, const char *fmt, ...)
{
    if (s->violation[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    int off = snprintf(s->violation, sizeof s->violation, "at %" PRIu64 " ms: ", s->now);
    vsnprintf(s->violation + off, sizeof s->violation - (size_t)off, fmt, ap);
    va_end(ap);
}

/* ---- the event queue: a binary heap ordered by (time, seq) ---- */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->time != b->time ? a->time < b->time : a->seq < b->seq;
}

static void heap_push(struct sim *s, struct sim_event *e)
{
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 1024;
        struct sim_event **h = realloc(s->heap, s->heap_cap * sizeof *h);
        if (!h) {
            fprintf(stderr, "sim: out of memory\n");
            exit(2);
        }
        s->heap = h;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!ev_before(e, s->heap[up]))
            break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = e;
}

static struct sim_event *heap_pop(struct sim *s)
{
    struct sim_event *top = s->heap[0];
    struct sim_event *last = s->heap[--s->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_n)
            break;
        if (c + 1 < s->heap_n && ev_before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!ev_before(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_n)
        s->heap[i] = last;
    return top;
}

static struct sim_event *ev_new(struct sim *s, enum ev_type type, size_t node, uint64_t time)
{
    struct sim_event *e = xcalloc(1, sizeof *e);
    e->type = type;
    e->node = node;
    e->instance = s->nodes[node].instance;
    e->time = time;
    e->seq = s->next_seq++;
    return e;
}

static void ev_free(struct sim_event *e)
{
    if (e->msg) {
        free(e->msg->bytes);
        free(e->msg);
    }
    free(e);
}

/* ---- the network ---- */

static struct sim_link *link_of(struct sim *s, size_t from, size_t to)
{
    return &s->links[from * s->p.n + to];
}

static uint64_t lat(const struct sim *s, size_t from, size_t to)
{
    return s->latency[from * s->p.n + to];
}

static bool reachable(const struct sim *s, size_t a, size_t b)
{
    return s->group[a] == s->group[b];
}

/* "n17" and "n17.sim:7000" -> 17; anything else -> -1. */
static long parse_index(const struct sim *s, const char *text)
{
    if (text[0] != 'n' || text[1] < '0' || text[1] > '9')
        return -1;
    char *end;
    long i = strtol(text + 1, &end, 10);
    if (i < 0 || (size_t)i >= s->p.n || (*end && *end != '.'))
        return -1;
    return i;
}

static long node_by_name(const struct sim *s, const char *name)
{
    long i = parse_index(s, name);
    return i >= 0 && strcmp(s->nodes[i].name, name) == 0 ? i : -1;
}

static long node_by_address(const struct sim *s, const char *address)
{
    long i = parse_index(s, address);
    return i >= 0 && strcmp(s->nodes[i].address, address) == 0 ? i : -1;
}

/* Resets the link: what is in flight on it is lost, and its dialler hears
 * of it (after the latency) when the network lets the reset through. */
static void reset_link(struct sim *s, size_t from, size_t to, bool tell)
{
    struct sim_link *l = link_of(s, from, to);
    if (l->state != LINK_UP)
        return;
    l->state = LINK_NONE;
    l->dead_below = l->conn_id + 1;
    if (tell && reachable(s, from, to) && s->nodes[from].core) {
        struct sim_event *e = ev_new(s, EV_DISCONNECTED, from, s->now + lat(s, to, from));
        e->peer = to;
        e->conn_id = l->conn_id;
        heap_push(s, e);
    }
}

static struct wire_msg *copy_msg(const uint8_t *bytes, size_t len)
{
    struct wire_msg *w = xcalloc(1, sizeof *w);
    w->bytes = xmalloc(len ? len : 1);
    memcpy(w->bytes, bytes, len);
    w->len = len;
    return w;
}

/* ---- the environment each core gets ---- */

static uint64_t env_now(void *ctx)
{
    return ((struct sim_node *)ctx)->sim->now;
}

/* The wall clock starts at a fixed date, so tombstone expiries are real
 * epoch milliseconds, each node off by its skew. */
#define SIM_WALL_EPOCH_MS UINT64_C(1790000000000)

static uint64_t env_wall(void *ctx)
{
    const struct sim_node *n = ctx;
    return (uint64_t)((int64_t)(SIM_WALL_EPOCH_MS + n->sim->now) + n->skew_ms);
}

static uint64_t env_random(void *ctx)
{
    return sim_random(((struct sim_node *)ctx)->sim);
}

static void env_connect(void *ctx, const struct peer_addr *peer)
{
    struct sim_node *n = ctx;
    struct sim *s = n->sim;
    long t = node_by_address(s, peer->address);
    s->st.dials++;
    s->dials_from[n->idx]++;
    uint64_t rtt = 40;
    if (t >= 0) {
        s->dials_to[t]++;
        struct sim_link *l = link_of(s, n->idx, (size_t)t);
        if (l->state != LINK_NONE) {
            /* The transport ignores it: no result ever comes. */
            s->st.dup_dials++;
            return;
        }
        l->state = LINK_DIALLING;
        rtt = lat(s, n->idx, (size_t)t) + lat(s, (size_t)t, n->idx);
    }
    struct sim_event *e = ev_new(s, EV_CONNECT, n->idx, s->now + rtt);
    e->peer = t >= 0 ? (size_t)t : SIZE_MAX;
    e->addr = *peer;
    e->dial_time = s->now;
    heap_push(s, e);
}

static void env_disconnect(void *ctx, const char *node)
{
    struct sim_node *n = ctx;
    struct sim *s = n->sim;
    long t = node_by_name(s, node);
    if (t < 0)
        return;
    struct sim_link *out = link_of(s, n->idx, (size_t)t);
    if (out->state == LINK_UP) {
        out->state = LINK_NONE;     /* graceful: what was sent still arrives */
        out->core_up = false;
    }
    reset_link(s, (size_t)t, n->idx, true);
}

static void env_send(void *ctx, const char *node, const uint8_t *msg, size_t len)
{
    struct sim_node *n = ctx;
    struct sim *s = n->sim;
    long t = node_by_name(s, node);
    s->st.sent++;
    s->st.sent_bytes += len;
    if (t < 0 || link_of(s, n->idx, (size_t)t)->state != LINK_UP) {
        s->st.dropped++;
        return;
    }
    if (s->p.loss > 0 && sim_uniform(s) < s->p.loss) {
        s->st.lost++;
        return;
    }
    struct sim_event *e = ev_new(s, EV_DELIVER, (size_t)t, s->now + lat(s, n->idx, (size_t)t));
    /* Addressed to the process the connection was made with: if that one
     * crashed and a new one runs, the new one's kernel resets it. */
    e->instance = link_of(s, n->idx, (size_t)t)->peer_instance;
    e->peer = n->idx;
    e->conn_id = link_of(s, n->idx, (size_t)t)->conn_id;
    e->msg = copy_msg(msg, len);
    heap_push(s, e);
}

static size_t obs_index(const struct sim_node *n, const char *name, const char *what)
{
    long j = node_by_name(n->sim, name);
    if (j < 0 && n->sim->p.foreign_members)
        return SIZE_MAX; /* a scenario that forges members: events about them are expected */
    if (j < 0 || (size_t)j == n->idx) {
        violation(n->sim, "%s: %s about %s", n->name, what, j < 0 ? "an unknown node" : "itself");
        return SIZE_MAX;
    }
    return n->idx * n->sim->p.n + (size_t)j;
}

static void env_member_joined(void *ctx, const struct member *m)
{
    struct sim_node *n = ctx;
    size_t k = obs_index(n, m->name, "member_joined");
    if (k == SIZE_MAX)
        return;
    if (n->sim->joined[k])
        violation(n->sim, "%s: member_joined(%s) twice without member_left", n->name, m->name);
    n->sim->joined[k] = true;
    n->joined_count++;
}

static void env_member_left(void *ctx, const struct member *m)
{
    struct sim_node *n = ctx;
    size_t k = obs_index(n, m->name, "member_left");
    if (k == SIZE_MAX)
        return;
    if (!n->sim->joined[k])
        violation(n->sim, "%s: member_left(%s) without member_joined", n->name, m->name);
    else
        n->joined_count--;
    n->sim->joined[k] = false;
    n->sim->left_at[k] = n->sim->now;
}

static void env_member_up(void *ctx, const char *node)
{
    struct sim_node *n = ctx;
    size_t k = obs_index(n, node, "member_up");
    if (k == SIZE_MAX)
        return;
    if (n->sim->up[k])
        violation(n->sim, "%s: member_up(%s) twice without member_down", n->name, node);
    else
        n->up_count++;
    n->sim->up[k] = true;
    n->sim->up_at[k] = n->sim->now;
    n->ups++;
}

static void env_member_down(void *ctx, const char *node)
{
    struct sim_node *n = ctx;
    size_t k = obs_index(n, node, "member_down");
    if (k == SIZE_MAX)
        return;
    if (!n->sim->up[k])
        violation(n->sim, "%s: member_down(%s) without member_up", n->name, node);
    else
        n->up_count--;
    n->sim->up[k] = false;
    n->sim->down_at[k] = n->sim->now;
    n->downs++;
}

static void env_log(void *ctx, enum overlay_log_level level, const char *msg)
{
    struct sim_node *n = ctx;
    if (n->sim->p.verbose && level >= OVERLAY_LOG_INFO)
        printf("%10" PRIu64 " %s: %s\n", n->sim->now, n->name, msg);
}

static const struct overlay_env env_template = {
    .now_ms = env_now,
    .wall_ms = env_wall,
    .random = env_random,
    .connect = env_connect,
    .disconnect = env_disconnect,
    .send = env_send,
    .member_joined = env_member_joined,
    .member_left = env_member_left,
    .member_up = env_member_up,
    .member_down = env_member_down,
    .log = env_log,
};

/* ---- lifecycle ---- */

struct sim *sim_new(const struct sim_params *p)
{
    struct sim *s = xcalloc(1, sizeof *s);
    s->p = *p;
    const char *type = p->overlay ? p->overlay : "full_mesh";
    s->ops = overlay_find(type);
    if (!s->ops) {
        fprintf(stderr, "sim: no overlay \"%s\" (built in: %s)\n", type, overlay_names());
        exit(2);
    }
    s->rng = p->seed;
    s->next_conn_id = 1;
    size_t n = p->n, nn = n * n;
    s->nodes = xcalloc(n, sizeof *s->nodes);
    s->links = xcalloc(nn, sizeof *s->links);
    s->latency = xcalloc(nn, 1);
    s->group = xcalloc(n, sizeof *s->group);
    s->up = xcalloc(nn, sizeof *s->up);
    s->joined = xcalloc(nn, sizeof *s->joined);
    s->down_at = xcalloc(nn, sizeof *s->down_at);
    s->up_at = xcalloc(nn, sizeof *s->up_at);
    s->left_at = xcalloc(nn, sizeof *s->left_at);
    s->dials_to = xcalloc(n, sizeof *s->dials_to);
    s->dials_from = xcalloc(n, sizeof *s->dials_from);
    for (size_t i = 0; i < nn; i++)
        s->latency[i] = (uint8_t)(1 + sim_random(s) % 20);
    for (size_t i = 0; i < n; i++) {
        struct sim_node *nd = &s->nodes[i];
        nd->sim = s;
        nd->idx = i;
        snprintf(nd->name, sizeof nd->name, "n%zu", i);
        snprintf(nd->address, sizeof nd->address, "n%zu.sim:7000", i);
        nd->tick_at = UINT64_MAX;
        if (p->clock_skew_ms)
            nd->skew_ms = (int64_t)(sim_random(s) % (2 * (uint64_t)p->clock_skew_ms + 1)) -
                          (int64_t)p->clock_skew_ms;
    }
    return s;
}

void sim_free(struct sim *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->p.n; i++) {
        s->ops->destroy(s->nodes[i].core);
        free(s->nodes[i].saved);
    }
    while (s->heap_n)
        ev_free(heap_pop(s));
    free(s->heap);
    free(s->nodes);
    free(s->links);
    free(s->latency);
    free(s->group);
    free(s->up);
    free(s->joined);
    free(s->down_at);
    free(s->up_at);
    free(s->left_at);
    free(s->dials_to);
    free(s->dials_from);
    free(s->scratch);
    free(s);
}

/* Makes sure a tick event is queued no later than the core's deadline. */
static void reschedule(struct sim *s, size_t i)
{
    struct sim_node *n = &s->nodes[i];
    if (!n->core)
        return;
    uint64_t d = s->ops->next_deadline(n->core);
    if (d == UINT64_MAX || d >= n->tick_at)
        return;
    if (d < s->now)
        d = s->now;
    n->tick_at = d;
    heap_push(s, ev_new(s, EV_TICK, i, d));
}

static void forget_observations(struct sim *s, size_t i)
{
    size_t n = s->p.n;
    memset(&s->up[i * n], 0, n * sizeof *s->up);
    memset(&s->joined[i * n], 0, n * sizeof *s->joined);
    s->nodes[i].up_count = s->nodes[i].joined_count = 0;
}

static void boot(struct sim *s, size_t i, const char *const *seeds, size_t n_seeds,
                 const struct member *initial, size_t n_initial)
{
    struct sim_node *n = &s->nodes[i];
    struct overlay_env env = env_template;
    env.ctx = n;
    n->incarnation++;
    n->instance++;
    n->removed = false;
    n->tick_at = UINT64_MAX;
    n->stall_until = 0;
    struct overlay_config cfg = {
        .self_name = n->name,
        .self_address = n->address,
        .self_incarnation = n->incarnation,
        .seeds = seeds,
        .n_seeds = n_seeds,
        .gossip_interval_ms = s->p.gossip_interval_ms,
        .gossip_fanout = s->p.gossip_fanout,
        .ping_interval_ms = s->p.ping_interval_ms,
        .fd_timeout_ms = s->p.fd_timeout_ms,
        .backoff_initial_ms = s->p.backoff_initial_ms,
        .backoff_max_ms = s->p.backoff_max_ms,
        .initial_members = initial,
        .n_initial_members = n_initial,
        .max_members = s->p.max_members,
        .tombstone_ttl_ms = s->p.tombstone_ttl_ms,
    };
    n->core = s->ops->create(&cfg, &env);
    if (!n->core) {
        fprintf(stderr, "sim: core create failed\n");
        exit(2);
    }
    s->ops->start(n->core);
    reschedule(s, i);
}

void sim_start(struct sim *s, size_t i, const char *const *seeds, size_t n_seeds)
{
    boot(s, i, seeds, n_seeds, NULL, 0);
}

void sim_crash(struct sim *s, size_t i, bool silent)
{
    struct sim_node *n = &s->nodes[i];
    if (!n->core)
        return;
    const struct membership *ms = s->ops->members(n->core);
    free(n->saved);
    n->saved = xmalloc(ms->n * sizeof *n->saved);
    memcpy(n->saved, ms->v, ms->n * sizeof *n->saved);
    n->n_saved = ms->n;
    s->ops->destroy(n->core);
    n->core = NULL;
    n->instance++;
    n->tick_at = UINT64_MAX;
    n->stall_until = 0;
    for (size_t j = 0; j < s->p.n; j++) {
        struct sim_link *out = link_of(s, i, j);
        if (out->state == LINK_UP)
            out->dead_below = out->conn_id + 1;
        out->state = LINK_NONE;
        out->core_up = false;
        if (!silent)
            reset_link(s, j, i, true);
    }
    forget_observations(s, i);
}

void sim_restart(struct sim *s, size_t i, const char *const *seeds, size_t n_seeds, bool with_state)
{
    struct sim_node *n = &s->nodes[i];
    if (n->core)
        sim_crash(s, i, false);
    if (with_state)
        boot(s, i, seeds, n_seeds, n->saved, n->n_saved);
    else
        boot(s, i, seeds, n_seeds, NULL, 0);
}

int sim_leave(struct sim *s, size_t i, const char *node)
{
    if (!s->nodes[i].core)
        return -1;
    int r = s->ops->leave(s->nodes[i].core, node);
    long j = node ? node_by_name(s, node) : (long)i;
    if (r == 0 && j >= 0)
        s->nodes[j].removed = true;
    reschedule(s, i);
    return r;
}

int sim_forget(struct sim *s, size_t i, const char *node)
{
    if (!s->nodes[i].core)
        return -1;
    int r = s->ops->forget(s->nodes[i].core, node);
    long j = node_by_name(s, node);
    if (r == 0 && j >= 0)
        s->nodes[j].removed = true;
    reschedule(s, i);
    return r;
}

void sim_partition(struct sim *s, const int *group)
{
    for (size_t i = 0; i < s->p.n; i++)
        s->group[i] = group ? group[i] : 0;
}

void sim_stall(struct sim *s, size_t i, uint64_t ms)
{
    s->nodes[i].stall_until = s->now + ms;
}

/* ---- event handlers ---- */

static void connect_fail(struct sim *s, struct sim_event *e, uint64_t at)
{
    if (e->peer != SIZE_MAX) {
        struct sim_link *l = link_of(s, e->node, e->peer);
        if (l->state == LINK_DIALLING && at <= s->now)
            l->state = LINK_NONE;
    }
    if (at > s->now) {
        struct sim_event *f = ev_new(s, EV_CONNECT_FAIL, e->node, at);
        f->instance = e->instance;
        f->peer = e->peer;
        f->addr = e->addr;
        heap_push(s, f);
        return;
    }
    s->st.dials_failed++;
    s->ops->connect_failed(s->nodes[e->node].core, &e->addr);
}

/* The handshake of a dial: it needs the target running, reachable, and
 * awake (a stalled process accepts nothing until it resumes, and the dial
 * times out first if the stall outlasts the connect timeout). */
static void handle_connect(struct sim *s, struct sim_event *e)
{
    if (e->peer == SIZE_MAX) {
        connect_fail(s, e, s->now);
        return;
    }
    size_t t = e->peer;
    struct sim_node *tn = &s->nodes[t];
    uint64_t timeout_at = e->dial_time + SIM_CONNECT_TIMEOUT_MS;
    if (!tn->core || t == e->node || s->ops->has_left(tn->core) ||
        (e->addr.node[0] && strcmp(e->addr.node, tn->name) != 0)) {
        connect_fail(s, e, s->now);
        return;
    }
    if (!reachable(s, e->node, t)) {
        connect_fail(s, e, timeout_at);
        return;
    }
    if (tn->stall_until > s->now) {
        uint64_t rtt = lat(s, e->node, t) + lat(s, t, e->node);
        if (tn->stall_until + rtt < timeout_at) {
            e->time = tn->stall_until + rtt;
            heap_push(s, e);
            return;
        }
        connect_fail(s, e, timeout_at);
        return;
    }
    struct sim_link *l = link_of(s, e->node, t);
    l->state = LINK_UP;
    l->conn_id = s->next_conn_id++;
    l->core_up = true;
    l->peer_instance = tn->instance;
    s->ops->peer_connected(s->nodes[e->node].core, tn->name, tn->address, tn->incarnation);
}

static void handle_deliver(struct sim *s, struct sim_event *e)
{
    size_t to = e->node, from = e->peer;
    struct sim_link *l = link_of(s, from, to);
    if (e->conn_id < l->dead_below || !reachable(s, from, to)) {
        s->st.dropped++;
        return;
    }
    s->st.delivered++;
    s->ops->receive(s->nodes[to].core, s->nodes[from].name, e->msg->bytes, e->msg->len);
}

/* A message for a process that is gone: if the node runs again at that
 * address, its kernel answers with a reset. */
static void deliver_to_dead(struct sim *s, struct sim_event *e)
{
    s->st.dropped++;
    struct sim_link *l = link_of(s, e->peer, e->node);
    if (s->nodes[e->node].core && l->conn_id == e->conn_id && l->state == LINK_UP &&
        reachable(s, e->peer, e->node))
        reset_link(s, e->peer, e->node, true);
}

static void handle_disconnected(struct sim *s, struct sim_event *e)
{
    struct sim_link *l = link_of(s, e->node, e->peer);
    if (l->conn_id != e->conn_id || !l->core_up)
        return;
    l->core_up = false;
    s->ops->peer_disconnected(s->nodes[e->node].core, s->nodes[e->peer].name);
}

static void handle(struct sim *s, struct sim_event *e)
{
    struct sim_node *n = &s->nodes[e->node];
    if (e->instance != n->instance || !n->core) {
        if (e->type == EV_DELIVER)
            deliver_to_dead(s, e);
        ev_free(e);
        return;
    }
    if (e->type == EV_TICK && e->time != n->tick_at) {
        ev_free(e);     /* superseded by an earlier tick */
        return;
    }
    if (n->stall_until > s->now) {
        if (e->type == EV_TICK)
            n->tick_at = n->stall_until;
        e->time = n->stall_until;   /* the seq keeps their order */
        heap_push(s, e);
        return;
    }
    s->st.events++;
    switch (e->type) {
    case EV_TICK:
        n->tick_at = UINT64_MAX;
        s->ops->tick(n->core, s->now);
        break;
    case EV_DELIVER:
        handle_deliver(s, e);
        break;
    case EV_CONNECT:
        handle_connect(s, e);
        if (e->time > s->now) {     /* requeued to wait for a stalled target */
            reschedule(s, e->node);
            return;
        }
        break;
    case EV_CONNECT_FAIL:
        connect_fail(s, e, s->now);
        break;
    case EV_DISCONNECTED:
        handle_disconnected(s, e);
        break;
    }
    reschedule(s, e->node);
    ev_free(e);
}

void sim_run_until(struct sim *s, uint64_t t)
{
    while (s->heap_n && s->heap[0]->time <= t) {
        struct sim_event *e = heap_pop(s);
        s->now = e->time;
        handle(s, e);
    }
    if (t > s->now)
        s->now = t;
}

bool sim_run_cond(struct sim *s, bool (*pred)(struct sim *, void *), void *ctx,
                  uint64_t limit, uint64_t step)
{
    for (;;) {
        if (pred(s, ctx))
            return true;
        if (s->now >= limit)
            return false;
        uint64_t next = s->now + step;
        sim_run_until(s, next < limit ? next : limit);
    }
}

/* ---- queries ---- */

bool sim_running(const struct sim *s, size_t i)
{
    return s->nodes[i].core != NULL;
}

const char *sim_address(const struct sim *s, size_t i)
{
    return s->nodes[i].address;
}

bool sim_up(const struct sim *s, size_t obs, size_t subj)
{
    return s->up[obs * s->p.n + subj];
}

bool sim_joined(const struct sim *s, size_t obs, size_t subj)
{
    return s->joined[obs * s->p.n + subj];
}

const struct member *sim_member(const struct sim *s, size_t obs, size_t subj)
{
    if (!s->nodes[obs].core)
        return NULL;
    return membership_find(s->ops->members(s->nodes[obs].core), s->nodes[subj].name);
}

uint64_t sim_digest(const struct sim *s, size_t i)
{
    return s->nodes[i].core ? membership_digest(s->ops->members(s->nodes[i].core)) : 0;
}
