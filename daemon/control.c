#include "control.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "faults.h"
#include "ipc.h"
#include "log.h"
#include "membership.h"
#include "overlay.h"
#include "reliable.h"
#include "router.h"
#include "transport.h"

struct control {
    struct control_env env;
    uid_t daemon_uid;            /* its own user is always an admin */
};

struct control *control_new(const struct control_env *env)
{
    struct control *c = calloc(1, sizeof *c);
    if (c) {
        c->env = *env;
        c->daemon_uid = geteuid();
    }
    return c;
}

void control_free(struct control *c) { free(c); }

static bool valid_name(const char *s)
{
    size_t len = strlen(s);
    return len > 0 && len <= MEMBER_NAME_MAX;
}

/* ------------------------------------------------------ authorization --
 * Who may do what is decided from the credentials the kernel recorded at
 * connect and the ids the config resolved at load, so no check waits on NSS.
 * The socket's mode and group decide who may connect at all; these rules
 * narrow that down. */

/* Kept in ipc_session_flags(): a session's ids and the config are fixed for
 * its life, so its role is worked out once, at its first request. */
enum {
    ROLE_KNOWN = 1u << 0,
    ROLE_ADMIN = 1u << 1,
    ROLE_CLIENT = 1u << 2,
    REFUSAL_LOGGED = 1u << 3,    /* a non-client is logged once, not per request */
};

static unsigned session_role(struct control *n, struct ipc_session *s)
{
    unsigned f = ipc_session_flags(s);
    if (f & ROLE_KNOWN)
        return f;
    const struct config *cfg = n->env.cfg;
    uid_t uid = ipc_session_uid(s);
    bool admin = uid == 0 || uid == n->daemon_uid ||
                 ipc_session_in_groups(s, cfg->ipc_admin_groups.gid, cfg->ipc_admin_groups.n);
    bool client = admin || cfg->ipc_client_groups.n == 0 ||
                  ipc_session_in_groups(s, cfg->ipc_client_groups.gid, cfg->ipc_client_groups.n);
    f |= ROLE_KNOWN | (admin ? ROLE_ADMIN : 0u) | (client ? ROLE_CLIENT : 0u);
    ipc_session_set_flags(s, f);
    return f;
}

/* Requests that act on the cluster or the daemon rather than on the
 * session's own traffic. Requests added later that do the same (forget a
 * member, inject a fault, reload the config, ...) belong here too. */
static bool needs_admin(Partisan__Ipc__IpcRequest__BodyCase kind)
{
    switch (kind) {
    case PARTISAN__IPC__IPC_REQUEST__BODY_JOIN:
    case PARTISAN__IPC__IPC_REQUEST__BODY_LEAVE:
    case PARTISAN__IPC__IPC_REQUEST__BODY_FORGET:
    case PARTISAN__IPC__IPC_REQUEST__BODY_FAULT:
        return true;
    default:
        return false;
    }
}

static const char *request_name(Partisan__Ipc__IpcRequest__BodyCase kind)
{
    switch (kind) {
    case PARTISAN__IPC__IPC_REQUEST__BODY_STATUS: return "status";
    case PARTISAN__IPC__IPC_REQUEST__BODY_REGISTER: return "register";
    case PARTISAN__IPC__IPC_REQUEST__BODY_UNREGISTER: return "unregister";
    case PARTISAN__IPC__IPC_REQUEST__BODY_SEND: return "send";
    case PARTISAN__IPC__IPC_REQUEST__BODY_MEMBERS: return "members";
    case PARTISAN__IPC__IPC_REQUEST__BODY_SUBSCRIBE: return "subscribe";
    case PARTISAN__IPC__IPC_REQUEST__BODY_JOIN: return "join";
    case PARTISAN__IPC__IPC_REQUEST__BODY_LEAVE: return "leave";
    case PARTISAN__IPC__IPC_REQUEST__BODY_STATS: return "stats";
    case PARTISAN__IPC__IPC_REQUEST__BODY_FORGET: return "forget";
    case PARTISAN__IPC__IPC_REQUEST__BODY_BROADCAST: return "broadcast";
    case PARTISAN__IPC__IPC_REQUEST__BODY_FAULT: return "fault";
    default: return "this request";
    }
}

/* "partisan-admin, wheel", or "none configured". */
static const char *group_list(const struct config_groups *g, char *buf, size_t len)
{
    if (g->n == 0)
        return "none configured";
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < g->n && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", g->name[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return buf;
}

static const char *uid_text(uid_t uid, char *buf, size_t len)
{
    if (uid == (uid_t)-1)
        return "unknown";
    snprintf(buf, len, "%u", (unsigned)uid);
    return buf;
}

/* Answers PERMISSION_DENIED and returns false when the session may not make
 * this request. A session that is no client at all is not disconnected: it
 * gets the reason on every request, which tells its operator more than a
 * closed socket would. */
static bool permitted(struct control *n, struct ipc_session *s, const Partisan__Ipc__IpcRequest *req)
{
    unsigned f = session_role(n, s);
    bool admin_only = needs_admin(req->body_case);
    if ((f & ROLE_CLIENT) && (!admin_only || (f & ROLE_ADMIN)))
        return true;   /* the hot path (every send) formats nothing */
    const struct config *cfg = n->env.cfg;
    const char *what = request_name(req->body_case);
    char msg[1200], admins[CONFIG_IPC_GROUPS_MAX * (CONFIG_ACCOUNT_NAME_MAX + 2) + 1],
        clients[sizeof admins], me[16], peer[16];
    const char *admin_list = group_list(&cfg->ipc_admin_groups, admins, sizeof admins);
    if (!(f & ROLE_CLIENT)) {
        const char *client_list = group_list(&cfg->ipc_client_groups, clients, sizeof clients);
        snprintf(msg, sizeof msg, "%s needs a client of this daemon: root, the daemon's user (uid %s), or a member "
                 "of ipc.client_groups (%s) or ipc.admin_groups (%s); this client is uid %s",
                 what, uid_text(n->daemon_uid, me, sizeof me), client_list, admin_list,
                 uid_text(ipc_session_uid(s), peer, sizeof peer));
        if (!(f & REFUSAL_LOGGED)) {
            log_warn("%s: not in ipc.client_groups (%s) and not an admin: refusing all its requests",
                     ipc_session_label(s), client_list);
            ipc_session_set_flags(s, f | REFUSAL_LOGGED);
        }
        ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__PERMISSION_DENIED, msg);
        return false;
    }
    snprintf(msg, sizeof msg, "%s needs an admin: root, the daemon's user (uid %s), or a member of "
             "ipc.admin_groups (%s)", what, uid_text(n->daemon_uid, me, sizeof me), admin_list);
    log_info("%s: %s refused: not an admin", ipc_session_label(s), what);
    ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__PERMISSION_DENIED, msg);
    return false;
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
        bool up = !e->left && n->env.ops->is_up(n->env.core, e->name);
        v[k].reachability = up ? PARTISAN__IPC__REACHABILITY__UP : PARTISAN__IPC__REACHABILITY__DOWN;
        bool self = strcmp(e->name, n->env.cfg->node_name) == 0;
        v[k].neighbor = !self && (n->env.ops->is_neighbor ? n->env.ops->is_neighbor(n->env.core, e->name) : up);
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
    const struct config_reserved_name *r = config_reserved_name(n->env.cfg, name);
    uid_t uid = ipc_session_uid(s);
    if (r && uid != 0 && uid != r->uid) {
        char msg[400];
        snprintf(msg, sizeof msg, "name \"%s\" is reserved for user %s (ipc.names)", name, r->user);
        /* Not the name itself: it is the client's bytes, unescaped. */
        log_info("%s: register refused: the name is reserved for user %s", ipc_session_label(s), r->user);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__PERMISSION_DENIED, msg);
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
    bool deferred = false;
    Partisan__Ipc__ErrorCode code = router_send(n->env.router, s, id, r, &deferred, msg, sizeof msg);
    if (code != PARTISAN__IPC__ERROR_CODE__OK)
        ipc_reply(s, id, code, msg);
    else if (r->confirm && !deferred)
        ipc_reply(s, id, code, NULL);   /* a local send's verdict is known now */
    else if (!deferred)
        ipc_ack(s, id);   /* coalesced with the batch's other accepted sends */
}

static void handle_broadcast(struct control *n, struct ipc_session *s, uint64_t id,
                             const Partisan__Ipc__BroadcastRequest *r)
{
    char msg[700];
    if (r->payload.len > n->env.cfg->ipc_max_frame_bytes) {
        snprintf(msg, sizeof msg, "payload of %zu bytes is above ipc.max_frame_bytes (%" PRIu64 ")",
                 r->payload.len, n->env.cfg->ipc_max_frame_bytes);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__TOO_LARGE, msg);
        return;
    }
    Partisan__Ipc__ErrorCode code =
        router_broadcast(n->env.router, r->name, r->payload.data, r->payload.len, msg, sizeof msg);
    ipc_reply(s, id, code, code == PARTISAN__IPC__ERROR_CODE__OK ? NULL : msg);
    if (code == PARTISAN__IPC__ERROR_CODE__OK)
        n->env.joined(n->env.ctx);   /* the overlay has messages to send: re-arm its timer */
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
    st.relayed = rc->relayed;
    st.relay_dropped = rc->relay_dropped;
    struct reliable_stats rs;
    router_reliable_stats(n->env.router, &rs);
    st.reliable_sent = rs.d.sent;
    st.reliable_retransmitted = rs.d.retransmitted;
    st.reliable_delivered = rs.d.delivered;
    st.reliable_duplicates = rs.d.duplicates;
    st.reliable_failed = rs.failed;
    st.reliable_outstanding = rs.outstanding;
    st.causal_held = rs.causal_held;
    st.bad_checksum = transport_get_stats(n->env.transport)->bad_checksum;
    if (n->env.faults) {
        st.fault_dropped = faults_total(n->env.faults, FAULT_DROP);
        st.fault_delayed = faults_total(n->env.faults, FAULT_DELAY);
        st.fault_duplicated = faults_total(n->env.faults, FAULT_DUPLICATE);
        st.fault_reordered = faults_total(n->env.faults, FAULT_REORDER);
        st.fault_corrupted = faults_total(n->env.faults, FAULT_CORRUPT);
        st.fault_partitioned = faults_total(n->env.faults, FAULT_PARTITION);
        st.faults_active = (uint32_t)faults_count(n->env.faults);
    }
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

static void handle_forget(struct control *n, struct ipc_session *s, uint64_t id, const char *node)
{
    if (refuse_if_left(n, s, id))
        return;
    if (!node[0] || strcmp(node, n->env.cfg->node_name) == 0) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INVALID,
                  "a node cannot forget itself; make it leave instead");
        return;
    }
    if (n->env.ops->forget(n->env.core, node) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s is not known to this node (nothing to forget)", node);
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE, msg);
        return;
    }
    log_info("%s: %s is forgotten, cluster-wide", ipc_session_label(s), node);
    n->env.left(n->env.ctx);
    ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
}

#define FAULT_ARGS_MAX 32

static void handle_fault(struct control *n, struct ipc_session *s, uint64_t id, const Partisan__Ipc__FaultRequest *r)
{
    if (!n->env.faults) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INTERNAL, "fault injection is not available");
        return;
    }
    if (r->n_args == 0 || r->n_args > FAULT_ARGS_MAX) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INVALID,
                  "fault needs a command: drop, delay, duplicate, reorder, corrupt, partition, list or clear");
        return;
    }
    char *argv[FAULT_ARGS_MAX];
    for (size_t i = 0; i < r->n_args; i++)
        argv[i] = r->args[i];
    size_t before = faults_count(n->env.faults);
    char *out = malloc(FAULTS_REPLY_MAX);
    if (!out) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INTERNAL, "out of memory");
        return;
    }
    if (faults_command(n->env.faults, (int)r->n_args, argv, out, FAULTS_REPLY_MAX) != 0) {
        ipc_reply(s, id, PARTISAN__IPC__ERROR_CODE__INVALID, out);
    } else {
        size_t after = faults_count(n->env.faults);
        if (after != before) {
            size_t len = strcspn(out, "\n");   /* "fault 3: drop ..." or "cleared 2 faults" */
            log_warn("%s: %.*s; %zu fault rule%s now in force", ipc_session_label(s), (int)(len < 300 ? len : 300),
                     out, after, after == 1 ? "" : "s");
            n->env.faults_changed(n->env.ctx);
        }
        ipc_reply_fault(s, id, out);
    }
    free(out);
}

void control_handle(struct control *n, struct ipc_session *s, const Partisan__Ipc__IpcRequest *req)
{
    if (!permitted(n, s, req))
        return;
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
    case PARTISAN__IPC__IPC_REQUEST__BODY_SYNC:
        /* ipc.c wrote the Ack of every send before it already. */
        ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__OK, NULL);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_FORGET:
        handle_forget(n, s, req->id, req->forget->node);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_BROADCAST:
        handle_broadcast(n, s, req->id, req->broadcast);
        break;
    case PARTISAN__IPC__IPC_REQUEST__BODY_FAULT:
        handle_fault(n, s, req->id, req->fault);
        break;
    default:
        ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__UNSUPPORTED,
                  "unknown or empty request (is the client newer than this daemon?)");
        break;
    }
}

