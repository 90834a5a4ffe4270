#include "router.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "flow.h"
#include "hash.h"
#include "log.h"
#include "membership.h"
#include "overlay.h"
#include "reliable.h"
#include "transport.h"

struct route {
    struct route *next;
    void *sink;
    uint64_t hash;
    char name[];
};

/* A peer whose data connections are not read while a sink it feeds is past
 * three quarters of its hard bound: the last resort against a peer that
 * ignores flow control, which keeps its frames bounded without dropping
 * any. Few at any time. */
struct peer_pause {
    void *sink;
    char peer[MEMBER_NAME_MAX + 1];
};

struct router {
    struct route **buckets;
    size_t n_buckets;            /* a power of two */
    size_t count;
    struct router_config cfg;
    struct router_io io;
    struct transport *transport;
    const struct overlay_ops *ops;
    struct overlay *core;
    struct flow *flow;
    struct peer_pause *pauses;
    size_t n_pauses, cap_pauses;
    struct router_counters counters;
    uint64_t relay_warned_at;
    struct reliable *reliable;
};

static void flow_grant(void *ctx, const char *node, const char *name, uint64_t bytes)
{
    struct router *r = ctx;
    if (r->transport)
        transport_send_credit(r->transport, node, name, bytes);
}

static void flow_reopen(void *ctx, const void *handle)
{
    struct router *r = ctx;
    r->io.unblock(r->io.ctx, handle);
}

/* ------------------------------------------- reliable channels' io -- */

static void rl_transmit(void *ctx, unsigned ch, const Partisan__Peer__Data *d)
{
    struct router *r = ctx;
    const char *hop = r->transport ? r->ops->next_hop(r->core, d->to_node) : NULL;
    const void *lane = NULL;
    /* Best effort: what does not leave now is sent again on its timer. */
    if (hop)
        transport_send_data(r->transport, hop, ch, d->partition_key.data, d->partition_key.len, d, &lane);
}

static void rl_send_ack(void *ctx, unsigned ch, const Partisan__Peer__DeliveryAck *a)
{
    struct router *r = ctx;
    const char *hop = r->transport ? r->ops->next_hop(r->core, a->origin) : NULL;
    if (hop)
        transport_send_ack(r->transport, hop, ch, a);
}

static int rl_deliver(void *ctx, const char *origin, const char *name, const char *channel, const uint8_t *payload,
                      size_t len)
{
    struct router *r = ctx;
    void *sink = router_lookup(r, name);
    if (!sink) {
        r->counters.no_name++;
        return DELIVERY_V_NO_SUCH_NAME;
    }
    if (r->cfg.sink_max_message_bytes && len > r->cfg.sink_max_message_bytes)
        return DELIVERY_V_TOO_LARGE;   /* the application here could not take it */
    /* -1: the sink overflowed and was closed; the message went with it. */
    return r->io.deliver(sink, origin, name, channel, payload, len) == 0 ? DELIVERY_V_DELIVERED
                                                                         : DELIVERY_V_NO_SUCH_NAME;
}

static bool rl_busy(void *ctx, const char *name)
{
    struct router *r = ctx;
    void *sink = router_lookup(r, name);
    if (!sink || r->io.queued(sink) <= r->cfg.sink_max_queue_bytes / 2)
        return false;
    r->io.watch_drain(sink);
    return true;
}

static void rl_verdict(void *ctx, void *sender, uint64_t req_id, bool confirm, Partisan__Ipc__ErrorCode code,
                       const char *error)
{
    struct router *r = ctx;
    r->io.verdict(sender, req_id, confirm, code, error);
}

static void rl_unblock(void *ctx, const void *handle)
{
    struct router *r = ctx;
    r->io.unblock(r->io.ctx, handle);
}

static void rl_arm(void *ctx, uint64_t at)
{
    struct router *r = ctx;
    r->io.arm(r->io.ctx, at);
}

struct router *router_new(const struct router_config *cfg, const struct router_io *io)
{
    struct router *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    /* A window larger than a session may queue would get the receiving
     * application disconnected instead of its senders slowed. */
    if (r->cfg.window_bytes > r->cfg.sink_max_queue_bytes / 4) {
        r->cfg.window_bytes = r->cfg.sink_max_queue_bytes / 4;
        log_warn("transport.window_bytes (%" PRIu64 ") is above a quarter of ipc.max_queue_bytes; using %" PRIu64,
                 cfg->window_bytes, r->cfg.window_bytes);
    }
    r->io = *io;
    r->n_buckets = 64;
    r->buckets = calloc(r->n_buckets, sizeof *r->buckets);
    struct flow_callbacks fc = { .ctx = r, .grant = flow_grant, .reopen = flow_reopen };
    r->flow = flow_new(cfg->window_bytes, &fc);
    struct reliable_config rc = { .config = cfg->config, .self = cfg->self, .epoch = cfg->epoch ? cfg->epoch : 1,
                                  .max_message_bytes = cfg->peer_max_frame_bytes };
    struct reliable_io rio = { .ctx = r, .transmit = rl_transmit, .send_ack = rl_send_ack, .deliver = rl_deliver,
                               .busy = rl_busy, .verdict = rl_verdict, .unblock = rl_unblock, .arm = rl_arm };
    r->reliable = reliable_new(&rc, &rio);
    if (!r->buckets || !r->flow || !r->reliable) {
        router_free(r);
        return NULL;
    }
    return r;
}

void router_attach(struct router *r, struct transport *t, const struct overlay_ops *ops, struct overlay *core)
{
    r->transport = t;
    r->ops = ops;
    r->core = core;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_buckets; i++)
        for (struct route *e = r->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(r->buckets);
    flow_free(r->flow);
    reliable_free(r->reliable);
    free(r->pauses);
    free(r);
}

static struct route **find_slot(const struct router *r, const char *name, uint64_t h)
{
    struct route **pp = &r->buckets[h & (r->n_buckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(struct router *r)
{
    size_t n = r->n_buckets * 2;
    struct route **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < r->n_buckets; i++)
        for (struct route *e = r->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(r->buckets);
    r->buckets = b;
    r->n_buckets = n;
}

int router_register(struct router *r, const char *name, void *owner)
{
    uint64_t h = hash_str(name);
    struct route **pp = find_slot(r, name, h);
    if (*pp)
        return (*pp)->sink == owner ? 0 : -1;
    size_t len = strlen(name);
    struct route *e = malloc(sizeof *e + len + 1);
    if (!e)
        return -2;
    e->next = NULL;
    e->sink = owner;
    e->hash = h;
    memcpy(e->name, name, len + 1);
    *pp = e;
    if (++r->count > r->n_buckets)
        grow(r);
    return 0;
}

int router_unregister(struct router *r, const char *name, const void *owner)
{
    struct route **pp = find_slot(r, name, hash_str(name));
    if (!*pp)
        return -1;
    if ((*pp)->sink != owner)
        return -2;
    struct route *e = *pp;
    *pp = e->next;
    free(e);
    r->count--;
    return 0;
}

void *router_lookup(const struct router *r, const char *name)
{
    struct route **pp = find_slot(r, name, hash_str(name));
    return *pp ? (*pp)->sink : NULL;
}

static size_t release_names(struct router *r, const void *owner)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_buckets; i++) {
        struct route **pp = &r->buckets[i];
        while (*pp) {
            if ((*pp)->sink == owner) {
                struct route *e = *pp;
                *pp = e->next;
                free(e);
                n++;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    r->count -= n;
    return n;
}

size_t router_count(const struct router *r) { return r->count; }

size_t router_sink_closed(struct router *r, void *sink)
{
    size_t n = release_names(r, sink);
    flow_release(r->flow, sink);
    reliable_sender_closed(r->reliable, sink);
    router_sink_drained(r, sink);
    return n;
}

const struct router_counters *router_get_counters(const struct router *r) { return &r->counters; }

/* ------------------------------------------------------------ sending -- */

static void channel_list(const struct router *r, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->cfg.config->n_channels && n < len; i++) {
        int w = snprintf(buf + n, len - n, "%s%s", i ? ", " : "", r->cfg.config->channels[i].name);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

static Partisan__Ipc__ErrorCode send_local(struct router *r, void *sender, const Partisan__Ipc__SendRequest *q,
                                           const char *channel, char *msg, size_t msglen)
{
    void *to = router_lookup(r, q->name);
    if (!to) {
        snprintf(msg, msglen, "nothing registered under \"%s\" on node %s", q->name, r->cfg.self);
        return PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME;
    }
    if (r->io.deliver(to, r->cfg.self, q->name, channel, q->payload.data, q->payload.len) != 0) {
        snprintf(msg, msglen, "the receiving application's queue overflowed and it was disconnected");
        return PARTISAN__IPC__ERROR_CODE__BUSY;
    }
    if (to != sender && r->io.queued(to) > r->cfg.sink_max_queue_bytes / 2) {
        r->io.watch_drain(to);
        r->io.block(sender, to);
    }
    return PARTISAN__IPC__ERROR_CODE__OK;
}

static Partisan__Ipc__ErrorCode send_remote(struct router *r, void *sender, const Partisan__Ipc__SendRequest *q,
                                            int ch, char *msg, size_t msglen)
{
    const char *hop = r->ops->next_hop(r->core, q->node);
    if (!hop) {
        const struct member *m = membership_find(r->ops->members(r->core), q->node);
        if (m && !m->left) {
            snprintf(msg, msglen, "node %s is down (unreachable from %s)", q->node, r->cfg.self);
            return PARTISAN__IPC__ERROR_CODE__NODE_DOWN;
        }
        snprintf(msg, msglen, "node %s is not a member of cluster %s", q->node, r->cfg.cluster);
        return PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE;
    }
    Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
    /* Only relays need the origin in the frame (a direct peer is the
     * connection's node); elsewhere the bytes are saved. */
    d.from_node = r->ops->relays ? (char *)r->cfg.self : (char *)"";
    d.to_node = q->node;
    d.name = q->name;
    d.payload = q->payload;
    d.channel = (char *)r->cfg.config->channels[ch].name;
    d.partition_key = q->partition_key;
    /* The frame's real size: the names and the key together can exceed any
     * fixed allowance, and the transport would then refuse the frame and
     * it would be reported as no connection. 6: the PeerFrame tag and
     * length around the Data. */
    if (partisan__peer__data__get_packed_size(&d) + 6 > r->cfg.peer_max_frame_bytes) {
        snprintf(msg, msglen, "payload of %zu bytes is above transport.max_frame_bytes (%" PRIu64 ")",
                 q->payload.len, r->cfg.peer_max_frame_bytes);
        return PARTISAN__IPC__ERROR_CODE__TOO_LARGE;
    }
    const void *lane = NULL;
    int rc = transport_send_data(r->transport, hop, (unsigned)ch, q->partition_key.data, q->partition_key.len,
                                 &d, &lane);
    if (rc == -1) {
        snprintf(msg, msglen, "node %s is down (no connection from %s)", q->node, r->cfg.self);
        return PARTISAN__IPC__ERROR_CODE__NODE_DOWN;
    }
    if (rc == -2) {
        snprintf(msg, msglen, "the %s queue toward %s is full; retry later", r->cfg.config->channels[ch].name, hop);
        return PARTISAN__IPC__ERROR_CODE__BUSY;
    }
    /* A monotonic channel's messages are accounted when they leave their
     * queue (router_monotonic_sent): while the window is full they wait
     * there and newer ones replace them, so their senders never wait. */
    /* Windows are granted back on the receiver's own connection to us, so
     * they are kept only toward a destination that is its own next hop;
     * through relays a sender waits on each hop's queue instead. */
    bool direct = strcmp(hop, q->node) == 0;
    const void *window = r->cfg.config->channels[ch].monotonic || !direct
                             ? NULL : flow_sent(r->flow, q->node, q->name, flow_cost(q->payload.len));
    if (lane) {
        r->io.block(sender, lane);
    } else if (window) {
        r->counters.flow_waits++;
        r->io.block(sender, window);
    }
    return PARTISAN__IPC__ERROR_CODE__OK;
}

/* A reliable channel: accepted for any member that has not left, up or
 * down (its messages wait in the window until it is reachable). */
static Partisan__Ipc__ErrorCode send_reliable(struct router *r, void *sender, uint64_t req_id,
                                              const Partisan__Ipc__SendRequest *q, int ch, bool *deferred,
                                              char *msg, size_t msglen)
{
    const struct member *m = membership_find(r->ops->members(r->core), q->node);
    if (!m || m->left) {
        snprintf(msg, msglen, "node %s is not a member of cluster %s", q->node, r->cfg.cluster);
        return PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE;
    }
    const void *block = NULL;
    Partisan__Ipc__ErrorCode code =
        reliable_send(r->reliable, sender, req_id, q->confirm, q->node, m->incarnation, (unsigned)ch, q->name,
                      q->partition_key.data, q->partition_key.len, q->payload.data, q->payload.len, deferred,
                      &block, msg, msglen);
    if (block) {
        r->counters.flow_waits++;
        r->io.block(sender, block);
    }
    return code;
}

Partisan__Ipc__ErrorCode router_send(struct router *r, void *sender, uint64_t req_id,
                                     const Partisan__Ipc__SendRequest *q, bool *deferred, char *msg,
                                     size_t msglen)
{
    *deferred = false;
    if (!q->node[0] || strlen(q->node) > MEMBER_NAME_MAX || !q->name[0] || strlen(q->name) > MEMBER_NAME_MAX) {
        snprintf(msg, msglen, "send needs a node and a name of 1 to %d bytes", MEMBER_NAME_MAX);
        return PARTISAN__IPC__ERROR_CODE__INVALID;
    }
    if (q->partition_key.len > MEMBER_NAME_MAX) {
        snprintf(msg, msglen, "a partition key is at most %d bytes (got %zu)", MEMBER_NAME_MAX,
                 q->partition_key.len);
        return PARTISAN__IPC__ERROR_CODE__INVALID;
    }
    int ch = config_channel_index(r->cfg.config, q->channel);
    if (ch < 0) {
        char list[512];
        channel_list(r, list, sizeof list);
        snprintf(msg, msglen, "no channel \"%.64s\" on node %s (channels: %s)", q->channel, r->cfg.self, list);
        return PARTISAN__IPC__ERROR_CODE__NO_SUCH_CHANNEL;
    }
    bool reliable = r->cfg.config->channels[ch].reliable;
    if (q->confirm && !reliable) {
        snprintf(msg, msglen, "confirmed delivery needs a reliable channel; \"%s\" is not one (set \"reliable\": "
                 "true for it in the config's \"channels\")", r->cfg.config->channels[ch].name);
        return PARTISAN__IPC__ERROR_CODE__INVALID;
    }
    if (strcmp(q->node, r->cfg.self) == 0)
        return send_local(r, sender, q, r->cfg.config->channels[ch].name, msg, msglen);
    if (reliable)
        return send_reliable(r, sender, req_id, q, ch, deferred, msg, msglen);
    return send_remote(r, sender, q, ch, msg, msglen);
}

/* ------------------------------------------------------ from the peers -- */

static void pause_peer_for(struct router *r, void *sink, const char *peer)
{
    for (size_t i = 0; i < r->n_pauses; i++)
        if (r->pauses[i].sink == sink && strcmp(r->pauses[i].peer, peer) == 0) {
            /* A frame still arrived: the peer's connection is a new one (it
             * reconnected), which starts unpaused. Idempotent. */
            transport_pause_data_from(r->transport, peer);
            return;
        }
    if (r->n_pauses == r->cap_pauses) {
        size_t cap = r->cap_pauses ? r->cap_pauses * 2 : 8;
        struct peer_pause *p = realloc(r->pauses, cap * sizeof *p);
        if (!p)
            return; /* the sink's own hard bound still holds */
        r->pauses = p;
        r->cap_pauses = cap;
    }
    r->pauses[r->n_pauses].sink = sink;
    snprintf(r->pauses[r->n_pauses].peer, sizeof r->pauses[r->n_pauses].peer, "%s", peer);
    r->n_pauses++;
    log_warn("not reading messages from %s until %s catches up: it has more in flight than this node's "
             "applications may queue (its transport.window_bytes above this node's ipc.max_queue_bytes / 4?)",
             peer, r->io.label(sink));
    transport_pause_data_from(r->transport, peer);
}

void router_sink_drained(struct router *r, void *sink)
{
    flow_release(r->flow, sink);
    r->io.unblock(r->io.ctx, sink);
    for (size_t i = 0; i < r->n_pauses;) {
        if (r->pauses[i].sink != sink) {
            i++;
            continue;
        }
        char peer[MEMBER_NAME_MAX + 1];
        memcpy(peer, r->pauses[i].peer, sizeof peer);
        r->pauses[i] = r->pauses[--r->n_pauses];
        bool still = false;
        for (size_t k = 0; k < r->n_pauses; k++)
            still = still || strcmp(r->pauses[k].peer, peer) == 0;
        if (!still && r->transport)
            transport_resume_data_from(r->transport, peer);
    }
}

static int channel_index(const struct router *r, const char *name)
{
    const struct config *c = r->cfg.config;
    for (size_t i = 0; i < c->n_channels; i++)
        if (strcmp(c->channels[i].name, name) == 0)
            return (int)i;
    return 0;
}

/* A frame for another node, in an overlay that relays: on toward it, on
 * the same channel and partition key (so per-key order holds while the
 * route does). Nothing can wait here for a relayed frame's sender, so a
 * full queue drops it, counted. */
static void relay(struct router *r, const char *from, const char *channel, const Partisan__Peer__Data *d)
{
    const char *hop = r->ops->next_hop(r->core, d->to_node);
    const char *why = NULL;
    if (d->hops + 1 > ROUTER_HOPS_MAX)
        why = "past the hop limit";
    else if (!hop || strcmp(hop, r->cfg.self) == 0)
        why = "no route";
    else if (strcmp(hop, from) == 0)
        why = "its route leads back to the node it came from";
    if (!why) {
        Partisan__Peer__Data f = *d;
        f.hops = d->hops + 1;
        const void *lane = NULL;
        int rc = transport_send_data(r->transport, hop, (unsigned)channel_index(r, channel),
                                     d->partition_key.data, d->partition_key.len, &f, &lane);
        if (rc == 0) {
            r->counters.relayed++;
            return;
        }
        why = rc == -2 ? "the queue toward the next hop is full" : "no connection to the next hop";
    }
    r->counters.relay_dropped++;
    /* Said once every 10 s, not once a message: a lost route drops a stream. */
    uint64_t now = clock_now_ms();
    if (!r->relay_warned_at || now - r->relay_warned_at >= 10000) {
        log_warn("message from %s (via %s) for %s dropped: %s (%" PRIu64 " relayed messages dropped so far; "
                 "see partisanctl stats)", d->from_node, from, d->to_node, why, r->counters.relay_dropped);
        r->relay_warned_at = now;
    }
}

void router_peer_data(struct router *r, const char *from, const char *channel, const Partisan__Peer__Data *d)
{
    uint64_t cost = flow_cost(d->payload.len);
    bool relays = r->ops->relays;
    /* Relayed frames name their origin; the transport let them through
     * only because this overlay relays. */
    const char *origin = relays && d->from_node[0] ? d->from_node : from;
    bool direct = strcmp(origin, from) == 0;
    const struct member *sender = membership_find(r->ops->members(r->core), origin);
    if (sender && sender->left) {
        r->counters.from_removed++;
        log_debug("message from %s dropped: it was removed from the cluster", origin);
        return;
    }
    if (strcmp(d->to_node, r->cfg.self) != 0) {
        if (relays) {
            relay(r, from, channel, d);
            return;
        }
        if (d->seq) {
            r->counters.not_ours++;
            return;
        }
        r->counters.not_ours++;
        flow_received(r->flow, from, d->name, cost, NULL);
        log_debug("message from %s for node %s dropped: not this node", from, d->to_node);
        return;
    }
    if (d->seq) {
        /* Reliable: its window is the delivery core's, end to end. */
        reliable_on_data(r->reliable, origin, channel, d);
        return;
    }
    void *sink = router_lookup(r, d->name);
    if (!sink) {
        r->counters.no_name++;
        if (direct)
            flow_received(r->flow, from, d->name, cost, NULL);
        log_debug("message from %s for \"%s\" dropped: nothing registered under that name", origin, d->name);
        return;
    }
    if (r->io.deliver(sink, origin, d->name, channel, d->payload.data, d->payload.len) != 0) {
        if (direct)
            flow_received(r->flow, from, d->name, cost, NULL);
        return;
    }
    size_t queued = r->io.queued(sink);
    if (!direct) {
        /* No window: the relay's connection is what a slow reader holds up. */
        if (queued > r->cfg.sink_max_queue_bytes / 4 * 3)
            pause_peer_for(r, sink, from);
        else if (queued > r->cfg.window_bytes)
            r->io.watch_drain(sink);
        return;
    }
    if (queued > r->cfg.window_bytes) {
        /* Past a window unread: its senders wait until it catches up. */
        flow_received(r->flow, from, d->name, cost, sink);
        r->io.watch_drain(sink);
        if (queued > r->cfg.sink_max_queue_bytes / 4 * 3)
            pause_peer_for(r, sink, from);
    } else {
        flow_received(r->flow, from, d->name, cost, NULL);
    }
}

void router_broadcast_deliver(struct router *r, const char *origin, const char *name, const uint8_t *payload,
                              size_t len)
{
    void *sink = router_lookup(r, name);
    if (!sink) {
        r->counters.no_name++;
        log_debug("broadcast from %s for \"%s\" not delivered here: nothing registered under that name", origin,
                  name);
        return;
    }
    r->io.deliver(sink, origin, name, "default", payload, len);
}

Partisan__Ipc__ErrorCode router_broadcast(struct router *r, const char *name, const uint8_t *payload, size_t len,
                                          char *msg, size_t msglen)
{
    if (!name[0] || strlen(name) > MEMBER_NAME_MAX) {
        snprintf(msg, msglen, "broadcast needs a name of 1 to %d bytes", MEMBER_NAME_MAX);
        return PARTISAN__IPC__ERROR_CODE__INVALID;
    }
    if (r->ops->has_left(r->core)) {
        snprintf(msg, msglen, "this node has left the cluster; restart partisand to rejoin");
        return PARTISAN__IPC__ERROR_CODE__SELF_LEFT;
    }
    if (r->ops->broadcast) {
        if (r->ops->broadcast(r->core, name, payload, len) != 0) {
            snprintf(msg, msglen, "the %s overlay cannot broadcast %zu bytes", r->ops->name, len);
            return PARTISAN__IPC__ERROR_CODE__TOO_LARGE;
        }
        r->counters.broadcasts++;
        return PARTISAN__IPC__ERROR_CODE__OK;
    }
    /* An overlay without a broadcast of its own: to every member up, each
     * directly, best effort (a member down now misses it). */
    if (len + 1024 > r->cfg.peer_max_frame_bytes) {
        snprintf(msg, msglen, "payload of %zu bytes is above transport.max_frame_bytes (%" PRIu64 ")", len,
                 r->cfg.peer_max_frame_bytes);
        return PARTISAN__IPC__ERROR_CODE__TOO_LARGE;
    }
    r->counters.broadcasts++;
    router_broadcast_deliver(r, r->cfg.self, name, payload, len);
    const struct membership *ms = r->ops->members(r->core);
    for (size_t i = 0; i < ms->n; i++) {
        const struct member *m = &ms->v[i];
        if (m->left || strcmp(m->name, r->cfg.self) == 0 || !r->ops->is_up(r->core, m->name))
            continue;
        Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
        d.from_node = (char *)r->cfg.self;
        d.to_node = (char *)m->name;
        d.name = (char *)name;
        d.payload.data = (uint8_t *)payload;
        d.payload.len = len;
        d.channel = (char *)r->cfg.config->channels[0].name;
        const void *lane = NULL;
        if (transport_send_data(r->transport, m->name, 0, NULL, 0, &d, &lane) != 0)
            log_debug("broadcast to %s not sent: no connection, or its queue is full", m->name);
    }
    return PARTISAN__IPC__ERROR_CODE__OK;
}

void router_peer_ack(struct router *r, const char *from, const char *channel, const Partisan__Peer__DeliveryAck *a)
{
    (void)channel;
    const char *acker = r->ops->relays && a->from_node[0] ? a->from_node : from;
    const struct member *m = membership_find(r->ops->members(r->core), acker);
    if (m && m->left) {
        r->counters.from_removed++;
        return;
    }
    if (strcmp(a->origin, r->cfg.self) == 0) {
        reliable_on_ack(r->reliable, acker, a);
        return;
    }
    if (!r->ops->relays) {
        r->counters.not_ours++;
        return;
    }
    const char *hop = r->ops->next_hop(r->core, a->origin);
    if (a->hops + 1 > ROUTER_HOPS_MAX || !hop || strcmp(hop, r->cfg.self) == 0 || strcmp(hop, from) == 0) {
        r->counters.relay_dropped++;   /* the data is sent again, and acked again */
        return;
    }
    Partisan__Peer__DeliveryAck f = *a;
    f.hops = a->hops + 1;
    if (transport_send_ack(r->transport, hop, (unsigned)channel_index(r, a->channel), &f) == 0)
        r->counters.relayed++;
    else
        r->counters.relay_dropped++;
}

void router_peer_up(struct router *r, const char *node, uint64_t epoch)
{
    reliable_peer_up(r->reliable, node, epoch);
}

void router_peer_down(struct router *r, const char *node)
{
    reliable_peer_down(r->reliable, node);
}

void router_peer_left(struct router *r, const char *node)
{
    reliable_peer_left(r->reliable, node);
}

void router_local_left(struct router *r)
{
    reliable_local_left(r->reliable);
}

void router_tick(struct router *r)
{
    reliable_tick(r->reliable);
}

void router_reliable_stats(const struct router *r, struct reliable_stats *out)
{
    reliable_get_stats(r->reliable, out);
}

void router_peer_credit(struct router *r, const char *from, const Partisan__Peer__Credit *c)
{
    for (size_t i = 0; i < c->n_grants; i++)
        if (c->grants[i]->name)
            flow_granted(r->flow, from, c->grants[i]->name, c->grants[i]->bytes);
    if (r->transport)
        transport_kick(r->transport, from);
}

bool router_monotonic_may_send(struct router *r, const char *node, const char *name)
{
    return !flow_is_waiting(r->flow, node, name);
}

void router_monotonic_sent(struct router *r, const char *node, const char *name, uint64_t payload_len)
{
    flow_sent(r->flow, node, name, flow_cost((size_t)payload_len));
}

void router_lane_drained(struct router *r, const void *lane)
{
    r->io.unblock(r->io.ctx, lane);
}

void router_data_lost(struct router *r, const char *node, uint64_t lost)
{
    log_warn("%" PRIu64 " message(s) to node %s may be lost: its data connection dropped while they were "
             "in the kernel's send queue", lost, node);
    /* Their grants will never come: without this the windows toward node
     * would shrink for good. */
    flow_forget_node(r->flow, node);
}

void router_peer_gone(struct router *r, const char *node)
{
    flow_forget_node(r->flow, node);
}
