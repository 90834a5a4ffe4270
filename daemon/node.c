#include "node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "ipc.h"
#include "log.h"
#include "overlay.h"
#include "router.h"
#include "state.h"
#include "transport.h"

#define NAME_LIMIT MEMBER_NAME_MAX
#define STATE_SAVE_DELAY_MS 1000

struct node {
    struct event_base *base;
    struct config cfg;            /* deep copy (seeds owned) */
    char listen_text[CONFIG_ADDR_MAX + 8];
    char advertise[CONFIG_ADDR_MAX + 8];
    uint64_t incarnation;
    uint64_t started_ms;
    uint64_t rng;

    struct ipc_server *ipc;
    struct router *router;
    struct transport *transport;
    const struct overlay_ops *ops;
    struct overlay *core;
    struct event *tick_timer;
    struct event *save_timer;
    char **seed_texts;

    /* Peers whose messages are not read while a local session they feed
     * catches up: (session, peer) pairs, few at any time. */
    struct data_pause { struct ipc_session *s; char peer[MEMBER_NAME_MAX + 1]; } *pauses;
    size_t n_pauses, cap_pauses;

    uint64_t dropped_no_name;     /* peer messages for names nobody holds */
    uint64_t dropped_not_ours;    /* peer messages for another node */
};

/* ---- clock and randomness (the core sees them only through its env) ---- */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* splitmix64: the core needs spread, not secrecy. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- timers ---- */

static void arm_tick(struct node *n)
{
    uint64_t now = monotonic_ms();
    uint64_t at = n->ops->next_deadline(n->core);
    uint64_t delay = at > now ? at - now : 0;
    if (delay > 1000)
        delay = 1000;
    struct timeval tv = { .tv_sec = (time_t)(delay / 1000), .tv_usec = (suseconds_t)(delay % 1000) * 1000 };
    evtimer_add(n->tick_timer, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct node *n = arg;
    n->ops->tick(n->core);
    arm_tick(n);
}

static void save_state_now(struct node *n)
{
    if (n->cfg.state_dir[0])
        state_save_members(n->cfg.state_dir, n->ops->members(n->core));
}

static void on_save(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    save_state_now(arg);
}

static void schedule_save(struct node *n)
{
    if (!n->cfg.state_dir[0] || evtimer_pending(n->save_timer, NULL))
        return;
    struct timeval tv = { .tv_sec = STATE_SAVE_DELAY_MS / 1000, .tv_usec = 0 };
    evtimer_add(n->save_timer, &tv);
}

/* ---- overlay env ---- */

static uint64_t env_now(void *ctx) { (void)ctx; return monotonic_ms(); }
static uint64_t env_random(void *ctx) { return next_random(&((struct node *)ctx)->rng); }

static void env_connect(void *ctx, const struct peer_addr *peer)
{
    struct node *n = ctx;
    transport_connect(n->transport, peer->node, peer->address);
}

static void env_disconnect(void *ctx, const char *node)
{
    struct node *n = ctx;
    transport_disconnect(n->transport, node);
}

static void env_send(void *ctx, const char *node, const struct overlay_msg *m)
{
    struct node *n = ctx;
    Partisan__Peer__Gossip g = PARTISAN__PEER__GOSSIP__INIT;
    g.kind = (Partisan__Peer__Gossip__Kind)m->type;
    g.digest = m->digest;
    g.seq = m->seq;
    Partisan__Peer__MemberState *states = NULL, **ptrs = NULL;
    if (m->n_members) {
        states = calloc(m->n_members, sizeof *states);
        ptrs = calloc(m->n_members, sizeof *ptrs);
        if (!states || !ptrs) {
            log_error("out of memory sending gossip to %s", node);
            free(states);
            free(ptrs);
            return;
        }
        for (size_t i = 0; i < m->n_members; i++) {
            Partisan__Peer__MemberState init = PARTISAN__PEER__MEMBER_STATE__INIT;
            states[i] = init;
            states[i].name = (char *)m->members[i].name;
            states[i].address = (char *)m->members[i].address;
            states[i].incarnation = m->members[i].incarnation;
            states[i].left = m->members[i].left;
            ptrs[i] = &states[i];
        }
        g.n_members = m->n_members;
        g.members = ptrs;
    }
    transport_send_gossip(n->transport, node, &g);
    free(states);
    free(ptrs);
}

static void env_joined(void *ctx, const struct member *m)
{
    struct node *n = ctx;
    log_info("member joined: %s at %s (incarnation %" PRIu64 ")", m->name, m->address, m->incarnation);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__JOINED, m->name, m->address);
    schedule_save(n);
}

static void env_left(void *ctx, const struct member *m)
{
    struct node *n = ctx;
    log_info("member left: %s at %s", m->name, m->address);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__LEFT, m->name, m->address);
    schedule_save(n);
}

static const char *member_address(struct node *n, const char *name)
{
    const struct member *m = membership_find(n->ops->members(n->core), name);
    return m ? m->address : "";
}

static void env_up(void *ctx, const char *node)
{
    struct node *n = ctx;
    log_info("member up: %s", node);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__UP, node, member_address(n, node));
}

static void env_down(void *ctx, const char *node)
{
    struct node *n = ctx;
    log_info("member down: %s", node);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__DOWN, node, member_address(n, node));
    /* Senders waiting for that node's queue to drain would wait for ever. */
    ipc_unblock(n->ipc, n->transport);
}

static void env_log(void *ctx, enum overlay_log_level level, const char *msg)
{
    (void)ctx;
    if (level == OVERLAY_LOG_DEBUG)
        log_debug("overlay: %s", msg);
    else if (level == OVERLAY_LOG_INFO)
        log_info("overlay: %s", msg);
    else
        log_warn("overlay: %s", msg);
}

/* ---- transport callbacks ---- */

static void tp_connected(void *ctx, const char *node, const char *address, uint64_t incarnation)
{
    struct node *n = ctx;
    n->ops->peer_connected(n->core, node, address, incarnation);
    arm_tick(n);
}

static void tp_connect_failed(void *ctx, const char *expect_node, const char *address, const char *reason)
{
    struct node *n = ctx;
    struct peer_addr p;
    memset(&p, 0, sizeof p);
    snprintf(p.node, sizeof p.node, "%s", expect_node ? expect_node : "");
    snprintf(p.address, sizeof p.address, "%s", address);
    log_debug("dial %s%s%s failed: %s", address, *p.node ? " for " : "", p.node, reason);
    n->ops->connect_failed(n->core, &p);
    arm_tick(n);
}

static void tp_disconnected(void *ctx, const char *node)
{
    struct node *n = ctx;
    n->ops->peer_disconnected(n->core, node);
    ipc_unblock(n->ipc, n->transport);
    arm_tick(n);
}

static void tp_gossip(void *ctx, const char *from, const Partisan__Peer__Gossip *g)
{
    struct node *n = ctx;
    struct overlay_msg m = { .type = (enum overlay_msg_type)g->kind, .digest = g->digest, .seq = g->seq };
    if ((unsigned)g->kind > OVERLAY_MSG_STATE_REQUEST) {
        log_warn("gossip of unknown kind %d from %s ignored", (int)g->kind, from);
        return;
    }
    struct member *members = NULL;
    if (g->n_members) {
        members = calloc(g->n_members, sizeof *members);
        if (!members) {
            log_error("out of memory reading gossip from %s", from);
            return;
        }
        for (size_t i = 0; i < g->n_members; i++) {
            const Partisan__Peer__MemberState *s = g->members[i];
            if (!membership_token_valid(s->name, MEMBER_NAME_MAX) ||
                !membership_token_valid(s->address, MEMBER_ADDR_MAX)) {
                log_warn("gossip from %s carries a malformed member entry; ignored", from);
                free(members);
                return;
            }
            memcpy(members[i].name, s->name, strlen(s->name) + 1);
            memcpy(members[i].address, s->address, strlen(s->address) + 1);
            members[i].incarnation = s->incarnation;
            members[i].left = s->left;
        }
        m.members = members;
        m.n_members = g->n_members;
    }
    n->ops->receive(n->core, from, &m);
    free(members);
    arm_tick(n);
}

static void pause_peer_for(struct node *n, struct ipc_session *s, const char *peer)
{
    for (size_t i = 0; i < n->n_pauses; i++)
        if (n->pauses[i].s == s && strcmp(n->pauses[i].peer, peer) == 0) {
            /* A message still arrived: the peer's data connection is a new
             * one (it reconnected), which starts unpaused. Idempotent. */
            transport_pause_data_from(n->transport, peer);
            return;
        }
    if (n->n_pauses == n->cap_pauses) {
        size_t cap = n->cap_pauses ? n->cap_pauses * 2 : 8;
        struct data_pause *p = realloc(n->pauses, cap * sizeof *p);
        if (!p)
            return; /* the session's own queue bound still holds */
        n->pauses = p;
        n->cap_pauses = cap;
    }
    n->pauses[n->n_pauses].s = s;
    snprintf(n->pauses[n->n_pauses].peer, sizeof n->pauses[n->n_pauses].peer, "%s", peer);
    n->n_pauses++;
    log_debug("not reading messages from %s until %s catches up", peer, ipc_session_label(s));
    transport_pause_data_from(n->transport, peer);
}

static void resume_peers_of(struct node *n, struct ipc_session *s)
{
    for (size_t i = 0; i < n->n_pauses;) {
        if (n->pauses[i].s != s) {
            i++;
            continue;
        }
        char peer[MEMBER_NAME_MAX + 1];
        memcpy(peer, n->pauses[i].peer, sizeof peer);
        n->pauses[i] = n->pauses[--n->n_pauses];
        bool still = false;
        for (size_t k = 0; k < n->n_pauses; k++)
            still = still || strcmp(n->pauses[k].peer, peer) == 0;
        if (!still)
            transport_resume_data_from(n->transport, peer);
    }
}

static void tp_data(void *ctx, const char *from, const Partisan__Peer__Data *d)
{
    struct node *n = ctx;
    if (strcmp(d->to_node, n->cfg.node_name) != 0) {
        /* Full mesh never relays; an overlay that forwards hands it on here. */
        n->dropped_not_ours++;
        log_debug("message from %s for node %s dropped: not this node", from, d->to_node);
        return;
    }
    struct ipc_session *s = router_lookup(n->router, d->name);
    if (!s) {
        n->dropped_no_name++;
        log_debug("message from %s for \"%s\" dropped: nothing registered under that name", from, d->name);
        return;
    }
    if (ipc_deliver(s, d->from_node[0] ? d->from_node : from, d->name, d->payload.data, d->payload.len,
                    d->channel) == 0 && ipc_session_congested(s))
        pause_peer_for(n, s, from);
}

static void tp_drained(void *ctx, const char *node)
{
    (void)node;
    struct node *n = ctx;
    ipc_unblock(n->ipc, n->transport);
}

/* ---- IPC requests ---- */

static bool valid_name(const char *s)
{
    size_t len = strlen(s);
    return len > 0 && len <= NAME_LIMIT;
}

static void handle_status(struct node *n, struct ipc_session *s, uint64_t id)
{
    const struct membership *mem = n->ops->members(n->core);
    uint32_t alive = 0, up = 0;
    for (size_t i = 0; i < mem->n; i++) {
        if (mem->v[i].left)
            continue;
        alive++;
        if (n->ops->is_up(n->core, mem->v[i].name))
            up++;
    }
    Partisan__Ipc__Status st = PARTISAN__IPC__STATUS__INIT;
    st.node = n->cfg.node_name;
    st.cluster = n->cfg.cluster_name;
    st.overlay = (char *)config_overlay_name(n->cfg.overlay);
    st.listen = n->listen_text;
    st.socket = n->cfg.ipc_socket;
    st.version = (char *)PARTISAN_VERSION;
    st.uptime_s = (monotonic_ms() - n->started_ms) / 1000;
    st.members = alive;
    st.members_up = up;
    st.left = n->ops->has_left(n->core);
    st.undeliverable = n->dropped_no_name + n->dropped_not_ours;
    const struct transport_stats *ts = transport_get_stats(n->transport);
    st.peer_bad_frames = ts->bad_checksum + ts->bad_frame + ts->too_large;
    st.peer_refused = ts->refused_in + ts->refused_out;
    st.peer_queue_full = ts->queue_overflow;
    ipc_reply_status(s, id, &st);
}

static void handle_members(struct node *n, struct ipc_session *s, uint64_t id, bool all)
{
    const struct membership *mem = n->ops->members(n->core);
    Partisan__Ipc__Member *v = calloc(mem->n ? mem->n : 1, sizeof *v);
    Partisan__Ipc__Member **p = calloc(mem->n ? mem->n : 1, sizeof *p);
    if (!v || !p) {
        free(v);
        free(p);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INTERNAL, "out of memory");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < mem->n; i++) {
        const struct member *e = &mem->v[i];
        if (e->left && !all)
            continue;
        Partisan__Ipc__Member init = PARTISAN__IPC__MEMBER__INIT;
        v[k] = init;
        v[k].name = (char *)e->name;
        v[k].address = (char *)e->address;
        v[k].incarnation = e->incarnation;
        v[k].membership = e->left ? PARTISAN__IPC__MEMBERSHIP__LEFT : PARTISAN__IPC__MEMBERSHIP__ALIVE;
        v[k].reachability = !e->left && n->ops->is_up(n->core, e->name)
                                ? PARTISAN__IPC__REACHABILITY__UP : PARTISAN__IPC__REACHABILITY__DOWN;
        p[k] = &v[k];
        k++;
    }
    Partisan__Ipc__Members m = PARTISAN__IPC__MEMBERS__INIT;
    m.n_members = k;
    m.members = p;
    ipc_reply_members(s, id, &m);
    free(v);
    free(p);
}

static void handle_register(struct node *n, struct ipc_session *s, uint64_t id, const char *name)
{
    if (!valid_name(name)) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INVALID, "a name must be 1 to 255 bytes");
        return;
    }
    int rc = router_register(n->router, name, s);
    if (rc == 0) {
        log_debug("%s registered \"%s\"", ipc_session_label(s), name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
    } else if (rc == -1) {
        char msg[400];
        snprintf(msg, sizeof msg, "name \"%s\" is taken by another client on node %s", name, n->cfg.node_name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NAME_TAKEN, msg);
    } else {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INTERNAL, "out of memory");
    }
}

static void handle_unregister(struct node *n, struct ipc_session *s, uint64_t id, const char *name)
{
    int rc = router_unregister(n->router, name, s);
    char msg[400];
    if (rc == 0) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
    } else if (rc == -1) {
        snprintf(msg, sizeof msg, "nothing registered under \"%s\"", name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME, msg);
    } else {
        snprintf(msg, sizeof msg, "name \"%s\" is held by another client", name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NOT_OWNER, msg);
    }
}

static void send_local(struct node *n, struct ipc_session *s, uint64_t id, const Partisan__Ipc__SendRequest *r)
{
    struct ipc_session *to = router_lookup(n->router, r->name);
    if (!to) {
        char msg[600];
        snprintf(msg, sizeof msg, "nothing registered under \"%s\" on node %s", r->name, n->cfg.node_name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME, msg);
        return;
    }
    if (ipc_deliver(to, n->cfg.node_name, r->name, r->payload.data, r->payload.len, r->channel) != 0) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__BUSY,
                  "the receiving application's queue overflowed and it was disconnected");
        return;
    }
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
    if (ipc_session_congested(to))
        ipc_session_block(s, to);
}

static bool refuse_if_left(struct node *n, struct ipc_session *s, uint64_t id)
{
    if (!n->ops->has_left(n->core))
        return false;
    char msg[700];
    snprintf(msg, sizeof msg, "node %s has left cluster %s; restart partisand to rejoin",
             n->cfg.node_name, n->cfg.cluster_name);
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__SELF_LEFT, msg);
    return true;
}

static void send_remote(struct node *n, struct ipc_session *s, uint64_t id, const Partisan__Ipc__SendRequest *r)
{
    char msg[600];
    if (refuse_if_left(n, s, id))
        return;
    const char *hop = n->ops->next_hop(n->core, r->node);
    if (!hop) {
        const struct member *m = membership_find(n->ops->members(n->core), r->node);
        if (m && !m->left) {
            snprintf(msg, sizeof msg, "node %s is down (unreachable from %s)", r->node, n->cfg.node_name);
            ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NODE_DOWN, msg);
        } else {
            snprintf(msg, sizeof msg, "node %s is not a member of cluster %s", r->node, n->cfg.cluster_name);
            ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE, msg);
        }
        return;
    }
    Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
    d.from_node = n->cfg.node_name;
    d.to_node = r->node;
    d.name = r->name;
    d.payload = r->payload;
    d.channel = r->channel;
    /* The frame's real size: three names and the channel can together
     * exceed any fixed allowance, and the transport would then drop the
     * frame and report it as no connection (NODE_DOWN). 6: the PeerFrame
     * tag and length around the Data. */
    if (partisan__peer__data__get_packed_size(&d) + 6 > n->cfg.peer_max_frame_bytes) {
        snprintf(msg, sizeof msg, "payload of %zu bytes is above transport.max_frame_bytes (%" PRIu64 ")",
                 r->payload.len, n->cfg.peer_max_frame_bytes);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__TOO_LARGE, msg);
        return;
    }
    int rc = transport_send_data(n->transport, hop, &d);
    if (rc == -1) {
        snprintf(msg, sizeof msg, "node %s is down (no connection from %s)", r->node, n->cfg.node_name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NODE_DOWN, msg);
        return;
    }
    if (rc == -2) {
        snprintf(msg, sizeof msg, "the queue toward %s is full; retry later", hop);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__BUSY, msg);
        return;
    }
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
    if (transport_data_congested(n->transport, hop))
        ipc_session_block(s, n->transport);
}

static void handle_send(struct node *n, struct ipc_session *s, uint64_t id, const Partisan__Ipc__SendRequest *r)
{
    if (!valid_name(r->node) || !valid_name(r->name)) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INVALID, "send needs a node and a name of 1 to 255 bytes");
        return;
    }
    if (r->payload.len > n->cfg.ipc_max_frame_bytes) {
        char msg[200];
        snprintf(msg, sizeof msg, "payload of %zu bytes is above ipc.max_frame_bytes (%" PRIu64 ")",
                 r->payload.len, n->cfg.ipc_max_frame_bytes);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__TOO_LARGE, msg);
        return;
    }
    if (strcmp(r->node, n->cfg.node_name) == 0)
        send_local(n, s, id, r);
    else
        send_remote(n, s, id, r);
}

static void handle_join(struct node *n, struct ipc_session *s, uint64_t id, const char *address)
{
    if (refuse_if_left(n, s, id))
        return;
    struct config_addr a;
    if (config_parse_addr(address, &a) != 0 || a.port == 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "\"%s\" is not a host:port address", address);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__BAD_ADDRESS, msg);
        return;
    }
    log_info("%s asked to join through %s", ipc_session_label(s), address);
    n->ops->join(n->core, address);
    arm_tick(n);
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
}

static void handle_leave(struct node *n, struct ipc_session *s, uint64_t id, const char *node)
{
    if (refuse_if_left(n, s, id))
        return;
    bool self = !node[0] || strcmp(node, n->cfg.node_name) == 0;
    if (n->ops->leave(n->core, self ? NULL : node) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s is not a member of cluster %s (or has left already)", node,
                 n->cfg.cluster_name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE, msg);
        return;
    }
    log_info("%s: %s leaves the cluster", ipc_session_label(s), self ? n->cfg.node_name : node);
    save_state_now(n);
    arm_tick(n);
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
}

static void on_request(void *ctx, struct ipc_session *s, const Partisan__Ipc__IpcRequest *req)
{
    struct node *n = ctx;
    switch (req->body_case) {
    case PARTISAN__IPC__IPC_REQUEST__BODY_STATUS:
        handle_status(n, s, req->id);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_REGISTER:
        handle_register(n, s, req->id, req->register_->name);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_UNREGISTER:
        handle_unregister(n, s, req->id, req->unregister->name);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_SEND:
        handle_send(n, s, req->id, req->send);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_MEMBERS:
        handle_members(n, s, req->id, req->members->all);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_SUBSCRIBE:
        ipc_session_set_subscribed(s, req->subscribe->subscribe);
        ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_JOIN:
        handle_join(n, s, req->id, req->join->address);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_LEAVE:
        handle_leave(n, s, req->id, req->leave->node);
        break;
    default:
        ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__UNSUPPORTED,
                  "unknown or empty request (is the client newer than this daemon?)");
        break;
    }
}

static void on_session_close(void *ctx, struct ipc_session *s)
{
    struct node *n = ctx;
    size_t released = router_release(n->router, s);
    if (released)
        log_debug("%s: released %zu name(s)", ipc_session_label(s), released);
    resume_peers_of(n, s);
}

static void on_session_drained(void *ctx, struct ipc_session *s)
{
    resume_peers_of(ctx, s);
}

/* ---- lifecycle ---- */

static int copy_config(struct config *dst, const struct config *src)
{
    *dst = *src;
    dst->seeds = NULL;
    if (src->n_seeds) {
        dst->seeds = calloc(src->n_seeds, sizeof *dst->seeds);
        if (!dst->seeds)
            return -1;
        memcpy(dst->seeds, src->seeds, src->n_seeds * sizeof *dst->seeds);
    }
    return 0;
}

static int start_transport(struct node *n, char *err, size_t errlen)
{
    struct transport_config tc = {
        .cluster = n->cfg.cluster_name,
        .node = n->cfg.node_name,
        .advertise = "",
        .incarnation = n->incarnation,
        .listen_host = n->cfg.listen.host,
        .listen_port = n->cfg.listen.port,
        .connect_timeout_ms = n->cfg.connect_timeout_ms,
        .max_frame_bytes = n->cfg.peer_max_frame_bytes,
        .max_queue_bytes = n->cfg.peer_max_queue_bytes,
    };
    struct transport_callbacks cb = {
        .ctx = n,
        .on_connected = tp_connected,
        .on_connect_failed = tp_connect_failed,
        .on_disconnected = tp_disconnected,
        .on_gossip = tp_gossip,
        .on_data = tp_data,
        .on_drained = tp_drained,
    };
    n->transport = transport_new(n->base, &tc, &cb);
    if (!n->transport) {
        char where[CONFIG_ADDR_MAX + 8];
        config_format_addr(&n->cfg.listen, where, sizeof where);
        snprintf(err, errlen, "cannot listen for peers on %s (node.listen); see the log line above", where);
        return -1;
    }
    struct config_addr bound = n->cfg.listen;
    bound.port = transport_listen_port(n->transport);
    config_format_addr(&bound, n->listen_text, sizeof n->listen_text);
    if (n->cfg.advertise_set) {
        struct config_addr adv = n->cfg.advertise;
        if (adv.port == 0)
            adv.port = bound.port;
        config_format_addr(&adv, n->advertise, sizeof n->advertise);
    } else {
        snprintf(n->advertise, sizeof n->advertise, "%s", n->listen_text);
    }
    transport_set_advertise(n->transport, n->advertise);
    return 0;
}

static int start_overlay(struct node *n, char *err, size_t errlen)
{
    n->seed_texts = calloc(n->cfg.n_seeds + 1, sizeof *n->seed_texts);
    if (!n->seed_texts)
        return snprintf(err, errlen, "out of memory"), -1;
    size_t n_seeds = 0;
    for (size_t i = 0; i < n->cfg.n_seeds; i++) {
        char text[CONFIG_ADDR_MAX + 8];
        config_format_addr(&n->cfg.seeds[i], text, sizeof text);
        /* The same seed list is meant to be copied to every host, so this
         * node's own address may be in it: dialling ourselves is pointless. */
        if (strcmp(text, n->advertise) == 0 || strcmp(text, n->listen_text) == 0)
            continue;
        n->seed_texts[n_seeds] = strdup(text);
        if (!n->seed_texts[n_seeds])
            return snprintf(err, errlen, "out of memory"), -1;
        n_seeds++;
    }
    struct overlay_config oc = {
        .self_name = n->cfg.node_name,
        .self_address = n->advertise,
        .self_incarnation = n->incarnation,
        .seeds = (const char *const *)n->seed_texts,
        .n_seeds = n_seeds,
        .gossip_interval_ms = n->cfg.gossip_interval_ms,
        .gossip_fanout = n->cfg.gossip_fanout,
        .ping_interval_ms = n->cfg.ping_interval_ms,
        .fd_timeout_ms = n->cfg.fd_timeout_ms,
        .backoff_initial_ms = n->cfg.backoff_initial_ms,
        .backoff_max_ms = n->cfg.backoff_max_ms,
    };
    struct overlay_env env = {
        .ctx = n,
        .now_ms = env_now,
        .random = env_random,
        .connect = env_connect,
        .disconnect = env_disconnect,
        .send = env_send,
        .member_joined = env_joined,
        .member_left = env_left,
        .member_up = env_up,
        .member_down = env_down,
        .log = env_log,
    };
    /* Members remembered from the last run are dialled by name, so a
     * restarted node finds its cluster even with no seeds configured. */
    struct membership known;
    membership_init(&known);
    if (state_load_members(n->cfg.state_dir, &known) > 0) {
        oc.initial_members = known.v;
        oc.n_initial_members = known.n;
        log_info("state: %zu remembered member(s) from %s", known.n, n->cfg.state_dir);
    }
    n->ops = &overlay_full_mesh_ops;
    n->core = n->ops->create(&oc, &env);
    if (!n->core) {
        membership_free(&known);
        return snprintf(err, errlen, "cannot create the %s overlay", n->ops->name), -1;
    }
    n->ops->start(n->core);
    membership_free(&known);
    return 0;
}

struct node *node_new(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n || copy_config(&n->cfg, cfg) != 0) {
        free(n);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->base = base;
    n->started_ms = monotonic_ms();
    if (getrandom(&n->rng, sizeof n->rng, 0) != sizeof n->rng)
        n->rng = realtime_ms() ^ ((uint64_t)getpid() << 32);
    n->incarnation = state_next_incarnation(n->cfg.state_dir, realtime_ms());
    if (n->incarnation == 0) {
        snprintf(err, errlen, "cannot write the state directory %s (node.state_dir)", n->cfg.state_dir);
        goto fail;
    }
    n->router = router_new();
    n->tick_timer = evtimer_new(base, on_tick, n);
    n->save_timer = evtimer_new(base, on_save, n);
    if (!n->router || !n->tick_timer || !n->save_timer) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (start_transport(n, err, errlen) != 0)
        goto fail;
    struct ipc_config ic = {
        .path = n->cfg.ipc_socket,
        .mode = n->cfg.ipc_mode,
        .max_frame_bytes = n->cfg.ipc_max_frame_bytes,
        .max_queue_bytes = n->cfg.ipc_max_queue_bytes,
    };
    struct ipc_handlers ih = { .ctx = n, .on_request = on_request, .on_close = on_session_close,
                               .on_drained = on_session_drained };
    n->ipc = ipc_server_new(base, &ic, &ih, err, errlen);
    if (!n->ipc)
        goto fail;
    if (start_overlay(n, err, errlen) != 0)
        goto fail;
    arm_tick(n);
    log_info("node %s (incarnation %" PRIu64 ") in cluster %s: peers on %s (advertised as %s), "
             "applications on %s, overlay %s",
             n->cfg.node_name, n->incarnation, n->cfg.cluster_name, n->listen_text, n->advertise,
             n->cfg.ipc_socket, n->ops->name);
    return n;
fail:
    node_free(n);
    return NULL;
}

void node_free(struct node *n)
{
    if (!n)
        return;
    if (n->core)
        save_state_now(n);
    /* Sessions first: their close releases names in the router. */
    ipc_server_free(n->ipc);
    if (n->core)
        n->ops->destroy(n->core);
    transport_free(n->transport);
    router_free(n->router);
    if (n->tick_timer)
        event_free(n->tick_timer);
    if (n->save_timer)
        event_free(n->save_timer);
    if (n->seed_texts) {
        for (size_t i = 0; n->seed_texts[i]; i++)
            free(n->seed_texts[i]);
        free(n->seed_texts);
    }
    free(n->pauses);
    free(n->cfg.seeds);
    free(n);
}

static bool same_seeds(const struct config *a, const struct config *b)
{
    if (a->n_seeds != b->n_seeds)
        return false;
    for (size_t i = 0; i < a->n_seeds; i++)
        if (a->seeds[i].port != b->seeds[i].port || strcmp(a->seeds[i].host, b->seeds[i].host) != 0)
            return false;
    return true;
}

void node_reload(struct node *n, const struct config *fresh)
{
    if (fresh->log_level != n->cfg.log_level) {
        log_info("reload: log.level %s -> %s", log_level_name(n->cfg.log_level), log_level_name(fresh->log_level));
        log_set_level(fresh->log_level);
        n->cfg.log_level = fresh->log_level;
    }
    struct { const char *key; bool changed; } keys[] = {
        { "node.name", strcmp(fresh->node_name, n->cfg.node_name) != 0 },
        { "node.listen", strcmp(fresh->listen.host, n->cfg.listen.host) != 0 || fresh->listen.port != n->cfg.listen.port },
        { "node.state_dir", strcmp(fresh->state_dir, n->cfg.state_dir) != 0 },
        { "cluster.name", strcmp(fresh->cluster_name, n->cfg.cluster_name) != 0 },
        { "cluster.seeds", !same_seeds(fresh, &n->cfg) },
        { "overlay", fresh->overlay != n->cfg.overlay || fresh->gossip_interval_ms != n->cfg.gossip_interval_ms ||
              fresh->gossip_fanout != n->cfg.gossip_fanout },
        { "failure_detector", fresh->ping_interval_ms != n->cfg.ping_interval_ms || fresh->fd_timeout_ms != n->cfg.fd_timeout_ms },
        { "transport", fresh->connect_timeout_ms != n->cfg.connect_timeout_ms ||
              fresh->backoff_initial_ms != n->cfg.backoff_initial_ms || fresh->backoff_max_ms != n->cfg.backoff_max_ms ||
              fresh->peer_max_frame_bytes != n->cfg.peer_max_frame_bytes || fresh->peer_max_queue_bytes != n->cfg.peer_max_queue_bytes },
        { "ipc", strcmp(fresh->ipc_socket, n->cfg.ipc_socket) != 0 || fresh->ipc_mode != n->cfg.ipc_mode ||
              fresh->ipc_max_frame_bytes != n->cfg.ipc_max_frame_bytes || fresh->ipc_max_queue_bytes != n->cfg.ipc_max_queue_bytes },
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].changed)
            log_warn("reload: %s changed in the file but needs a restart; keeping the running value", keys[i].key);
}
