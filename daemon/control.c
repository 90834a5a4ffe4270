#include "control.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "ipc.h"
#include "log.h"
#include "membership.h"
#include "overlay.h"
#include "router.h"
#include "transport.h"

struct control {
    struct control_env env;
};

struct control *control_new(const struct control_env *env)
{
    struct control *c = calloc(1, sizeof *c);
    if (c)
        c->env = *env;
    return c;
}

void control_free(struct control *c) { free(c); }

static bool valid_name(const char *s)
{
    size_t len = strlen(s);
    return len > 0 && len <= MEMBER_NAME_MAX;
}

static void handle_status(struct control *n, struct ipc_session *s, uint64_t id)
{
    const struct membership *mem = n->env.ops->members(n->env.core);
    uint32_t alive = 0, up = 0;
    for (size_t i = 0; i < mem->n; i++) {
        if (mem->v[i].left)
            continue;
        alive++;
        if (n->env.ops->is_up(n->env.core, mem->v[i].name))
            up++;
    }
    Partisan__Ipc__Status st = PARTISAN__IPC__STATUS__INIT;
    st.node = (char *)n->env.cfg->node_name;
    st.cluster = (char *)n->env.cfg->cluster_name;
    st.overlay = (char *)config_overlay_name(n->env.cfg->overlay);
    st.listen = (char *)n->env.listen_text;
    st.socket = (char *)n->env.cfg->ipc_socket;
    st.version = (char *)PARTISAN_VERSION;
    st.uptime_s = (clock_now_ms() - n->env.started_ms) / 1000;
    st.members = alive;
    st.members_up = up;
    st.left = n->env.ops->has_left(n->env.core);
    const struct router_counters *rc = router_get_counters(n->env.router);
    st.undeliverable = rc->no_name + rc->not_ours + rc->from_removed;
    const struct transport_stats *ts = transport_get_stats(n->env.transport);
    st.peer_bad_frames = ts->bad_checksum + ts->bad_frame + ts->too_large;
    st.peer_refused = ts->refused_in + ts->refused_out;
    st.peer_queue_full = ts->queue_overflow;
    st.peer_pending = (uint32_t)transport_pending_connections(n->env.transport);
    st.peer_pending_refused = ts->pending_refused;
    st.peer_handshake_timeouts = ts->handshake_timeouts;
    st.peer_idle_closed = ts->idle_closed;
    st.peer_duplicate_names = ts->duplicate_names;
    ipc_reply_status(s, id, &st);
}

static void handle_members(struct control *n, struct ipc_session *s, uint64_t id, bool all)
{
    const struct membership *mem = n->env.ops->members(n->env.core);
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
        v[k].reachability = !e->left && n->env.ops->is_up(n->env.core, e->name)
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

static void handle_register(struct control *n, struct ipc_session *s, uint64_t id, const char *name)
{
    if (!valid_name(name)) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INVALID, "a name must be 1 to 255 bytes");
        return;
    }
    int rc = router_register(n->env.router, name, s);
    if (rc == 0) {
        log_debug("%s registered \"%s\"", ipc_session_label(s), name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
    } else if (rc == -1) {
        char msg[400];
        snprintf(msg, sizeof msg, "name \"%s\" is taken by another client on node %s", name, n->env.cfg->node_name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NAME_TAKEN, msg);
    } else {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INTERNAL, "out of memory");
    }
}

static void handle_unregister(struct control *n, struct ipc_session *s, uint64_t id, const char *name)
{
    int rc = router_unregister(n->env.router, name, s);
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

static bool refuse_if_left(struct control *n, struct ipc_session *s, uint64_t id)
{
    if (!n->env.ops->has_left(n->env.core))
        return false;
    char msg[700];
    snprintf(msg, sizeof msg, "node %s has left cluster %s; restart partisand to rejoin",
             n->env.cfg->node_name, n->env.cfg->cluster_name);
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__SELF_LEFT, msg);
    return true;
}

static void handle_send(struct control *n, struct ipc_session *s, uint64_t id, const Partisan__Ipc__SendRequest *r)
{
    char msg[700];
    if (r->payload.len > n->env.cfg->ipc_max_frame_bytes) {
        snprintf(msg, sizeof msg, "payload of %zu bytes is above ipc.max_frame_bytes (%" PRIu64 ")",
                 r->payload.len, n->env.cfg->ipc_max_frame_bytes);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__TOO_LARGE, msg);
        return;
    }
    if (strcmp(r->node, n->env.cfg->node_name) != 0 && refuse_if_left(n, s, id))
        return;
    Partisan__Ipc__ErrorCode code = router_send(n->env.router, s, r, msg, sizeof msg);
    ipc_reply(s, id, code, code == PARTISAN__IPC__ERROR_CODE__OK ? NULL : msg);
}

struct stats_rows {
    Partisan__Ipc__ChannelStats *v;
    Partisan__Ipc__ChannelStats **p;
    size_t n, cap;
    bool oom;
};

static void add_stats_row(void *ctx, const struct transport_channel_stats *row)
{
    struct stats_rows *rows = ctx;
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        Partisan__Ipc__ChannelStats *v = realloc(rows->v, cap * sizeof *v);
        if (!v) {
            rows->oom = true;
            return;
        }
        rows->v = v;
        rows->cap = cap;
    }
    Partisan__Ipc__ChannelStats init = PARTISAN__IPC__CHANNEL_STATS__INIT, *e = &rows->v[rows->n++];
    *e = init;
    e->peer = (char *)row->peer;
    e->channel = (char *)row->channel;
    e->connections = row->connections;
    e->msgs_sent = row->msgs_sent;
    e->bytes_sent = row->bytes_sent;
    e->msgs_received = row->msgs_received;
    e->bytes_received = row->bytes_received;
    e->queued_msgs = row->queued_msgs;
    e->queued_bytes = row->queued_bytes;
    e->superseded = row->superseded;
    e->paused = row->paused;
    e->requeued = row->requeued;
    e->lost = row->lost;
    e->reconnects = row->reconnects;
}

static void handle_stats(struct control *n, struct ipc_session *s, uint64_t id)
{
    struct stats_rows rows = { 0 };
    transport_foreach_channel_stats(n->env.transport, add_stats_row, &rows);
    if (!rows.oom && rows.n && !(rows.p = calloc(rows.n, sizeof *rows.p)))
        rows.oom = true;
    if (rows.oom) {
        free(rows.v);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < rows.n; i++)
        rows.p[i] = &rows.v[i];
    const struct router_counters *rc = router_get_counters(n->env.router);
    Partisan__Ipc__Stats st = PARTISAN__IPC__STATS__INIT;
    st.n_channels = rows.n;
    st.channels = rows.p;
    st.flow_waits = rc->flow_waits;
    st.spoofed = transport_get_stats(n->env.transport)->spoofed;
    st.undeliverable = rc->no_name + rc->not_ours + rc->from_removed;
    ipc_reply_stats(s, id, &st);
    free(rows.p);
    free(rows.v);
}

static void handle_join(struct control *n, struct ipc_session *s, uint64_t id, const char *address)
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
    n->env.ops->join(n->env.core, address);
    n->env.joined(n->env.ctx);
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
}

static void handle_leave(struct control *n, struct ipc_session *s, uint64_t id, const char *node)
{
    if (refuse_if_left(n, s, id))
        return;
    bool self = !node[0] || strcmp(node, n->env.cfg->node_name) == 0;
    if (n->env.ops->leave(n->env.core, self ? NULL : node) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s is not a member of cluster %s (or has left already)", node,
                 n->env.cfg->cluster_name);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE, msg);
        return;
    }
    log_info("%s: %s leaves the cluster", ipc_session_label(s), self ? n->env.cfg->node_name : node);
    n->env.left(n->env.ctx);
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
}

void control_handle(struct control *n, struct ipc_session *s, const Partisan__Ipc__IpcRequest *req)
{
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
    case PARTISAN__IPC__IPC_REQUEST__BODY_STATS:
        handle_stats(n, s, req->id);
        break;
    default:
        ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__UNSUPPORTED,
                  "unknown or empty request (is the client newer than this daemon?)");
        break;
    }
}

