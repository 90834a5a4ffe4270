#include "node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "config_diff.h"
#include "control.h"
#include "faults.h"
#include "ipc.h"
#include "log.h"
#include "overlay.h"
#include "router.h"
#include "state.h"
#include "transport.h"

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
    struct event *reliable_timer;  /* the router's reliable channels (retransmission, delayed acks) */
    struct event *faults_timer;    /* the "a fault is active" warning */
    struct faults *faults;
    char **seed_texts;

    struct control *control;
    struct transport_channel channels[CONFIG_CHANNELS_MAX];
};

/* ---- randomness (the core sees it only through its env) ---- */

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
    uint64_t now = clock_now_ms();
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
    n->ops->tick(n->core, clock_now_ms());
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

static uint64_t env_now(void *ctx) { (void)ctx; return clock_now_ms(); }
static uint64_t env_wall(void *ctx) { (void)ctx; return clock_wall_ms(); }
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
    /* An overlay that relays closes short-lived connections all the time;
     * its member is gone only when it is down (env_down). */
    if (!n->ops->relays)
        router_peer_gone(n->router, node);
}

static void env_send(void *ctx, const char *node, const uint8_t *msg, size_t len)
{
    /* No connection: the core redials and resends. */
    transport_send_overlay(((struct node *)ctx)->transport, node, msg, len);
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
    router_peer_left(n->router, m->name);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__LEFT, m->name, m->address);
    schedule_save(n);
}

static void env_forgotten(void *ctx, const char *node)
{
    struct node *n = ctx;
    router_peer_left(n->router, node);
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
    /* Reachable, maybe only through relays: its epoch comes with a handshake. */
    router_peer_up(n->router, node, 0);
}

static void env_down(void *ctx, const char *node)
{
    struct node *n = ctx;
    log_info("member down: %s", node);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__DOWN, node, member_address(n, node));
    /* Senders waiting for that node's window would wait for ever. */
    router_peer_gone(n->router, node);
    router_peer_down(n->router, node);
}

static void env_neighbor_up(void *ctx, const char *node)
{
    struct node *n = ctx;
    log_info("neighbour up: %s", node);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__NEIGHBOR_UP, node, member_address(n, node));
}

static void env_neighbor_down(void *ctx, const char *node)
{
    struct node *n = ctx;
    log_info("neighbour down: %s", node);
    ipc_broadcast_event(n->ipc, PARTISAN__IPC__MEMBER_EVENT__KIND__NEIGHBOR_DOWN, node, member_address(n, node));
}

static void env_broadcast_deliver(void *ctx, const char *origin, const char *name, const uint8_t *payload,
                                  size_t len)
{
    router_broadcast_deliver(((struct node *)ctx)->router, origin, name, payload, len);
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
    /* The handshake's incarnation is the peer's boot one: its epoch. */
    router_peer_up(n->router, node, incarnation);
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
    router_peer_gone(n->router, node);
    arm_tick(n);
}

static void tp_overlay(void *ctx, const char *from, const uint8_t *msg, size_t len)
{
    struct node *n = ctx;
    n->ops->receive(n->core, from, msg, len);
    arm_tick(n);
}

static void tp_data(void *ctx, const char *from, const char *channel, const Partisan__Peer__Data *d)
{
    router_peer_data(((struct node *)ctx)->router, from, channel, d);
}

static void tp_ack(void *ctx, const char *from, const char *channel, const Partisan__Peer__DeliveryAck *a)
{
    router_peer_ack(((struct node *)ctx)->router, from, channel, a);
}

static void tp_credit(void *ctx, const char *from, const Partisan__Peer__Credit *c)
{
    router_peer_credit(((struct node *)ctx)->router, from, c);
}

static void tp_lane_drained(void *ctx, const void *lane)
{
    router_lane_drained(((struct node *)ctx)->router, lane);
}

static void tp_data_lost(void *ctx, const char *node, uint64_t lost)
{
    router_data_lost(((struct node *)ctx)->router, node, lost);
}

/* Who was removed stays out: a node the member table has as left, at the
 * incarnation it dials with or later, is told so (its Hello refused with
 * LEFT), so a node removed while unreachable learns it when it comes back. */
static int tp_check_hello(void *ctx, const char *node, uint64_t incarnation)
{
    struct node *n = ctx;
    const struct member *m = membership_find(n->ops->members(n->core), node);
    return m && m->left && m->incarnation >= incarnation ? PARTISAN__PEER__REFUSE__REASON__LEFT : 0;
}

static void tp_removed(void *ctx, const char *by_node)
{
    struct node *n = ctx;
    if (n->ops->has_left(n->core))
        return;
    n->ops->removed_by(n->core, by_node);
    save_state_now(n);
    arm_tick(n);
}

static bool tp_may_send(void *ctx, const char *node, const char *name)
{
    return router_monotonic_may_send(((struct node *)ctx)->router, node, name);
}

static void tp_monotonic_sent(void *ctx, const char *node, const char *name, uint64_t payload_len)
{
    router_monotonic_sent(((struct node *)ctx)->router, node, name, payload_len);
}

/* ---- the router's sinks and senders: application sessions ---- */

static int io_deliver(void *sink, const char *from_node, const char *name, const char *channel,
                      const uint8_t *payload, size_t len)
{
    return ipc_deliver(sink, from_node, name, payload, len, channel);
}

static size_t io_queued(void *sink) { return ipc_session_queued(sink); }
static void io_watch_drain(void *sink) { ipc_session_watch_drain(sink); }
static void io_block(void *sender, const void *on) { ipc_session_block(sender, on); }
static const char *io_label(const void *sink) { return ipc_session_label(sink); }

static void io_verdict(void *sender, uint64_t req_id, bool confirm, Partisan__Ipc__ErrorCode code,
                       const char *error)
{
    if (confirm)
        ipc_reply(sender, req_id, code, code == PARTISAN__IPC__ERROR_CODE__OK ? NULL : error);
    else
        ipc_verdict(sender, req_id, code, error);
}

static void on_reliable_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    router_tick(((struct node *)arg)->router);
}

static void io_arm(void *ctx, uint64_t at)
{
    struct node *n = ctx;
    if (!n->reliable_timer)
        return;
    if (at == UINT64_MAX) {
        event_del(n->reliable_timer);
        return;
    }
    uint64_t now = clock_now_ms();
    uint64_t ms = at > now ? at - now : 0;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(n->reliable_timer, &tv);
}

static void warn_faults(struct node *n)
{
    if (n->faults && faults_warn_due(n->faults, clock_now_ms()))
        log_warn("fault injection is active (%zu rule%s): traffic is dropped, delayed, duplicated, reordered, "
                 "corrupted or cut on purpose; 'partisanctl fault list' shows the rules, 'partisanctl fault clear' "
                 "ends them", faults_count(n->faults), faults_count(n->faults) == 1 ? "" : "s");
}

static void on_faults_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    warn_faults(arg);
}

static void io_unblock(void *ctx, const void *on)
{
    struct node *n = ctx;
    if (n->ipc)
        ipc_unblock(n->ipc, on);
}

static void on_request(void *ctx, struct ipc_session *s, const Partisan__Ipc__IpcRequest *req)
{
    control_handle(((struct node *)ctx)->control, s, req);
}

static void on_session_close(void *ctx, struct ipc_session *s)
{
    size_t released = router_sink_closed(((struct node *)ctx)->router, s);
    if (released)
        log_debug("%s: released %zu name(s)", ipc_session_label(s), released);
}

static void on_session_drained(void *ctx, struct ipc_session *s)
{
    router_sink_drained(((struct node *)ctx)->router, s);
}

static void control_joined(void *ctx) { arm_tick(ctx); }

static void control_left(void *ctx)
{
    struct node *n = ctx;
    if (n->ops->has_left(n->core))
        router_local_left(n->router);
    save_state_now(n);
    arm_tick(n);
}

static void control_faults_changed(void *ctx) { warn_faults(ctx); }

/* The config's faults section into the core the transport consults. */
static int start_faults(struct node *n, char *err, size_t errlen)
{
    if (!(n->faults = faults_new(n->cfg.node_name)))
        return snprintf(err, errlen, "out of memory"), -1;
    if (n->cfg.faults_json) {
        json_error_t je;
        json_t *section = json_loads(n->cfg.faults_json, 0, &je);
        bool enabled = false;
        char why[600] = "cannot be read back";
        int rc = section ? faults_config_load(n->faults, section, &enabled, why, sizeof why) : -1;
        json_decref(section);
        if (rc != 0)
            return snprintf(err, errlen, "faults: %s", why), -1;
    }
    struct timeval tv = { FAULTS_WARN_INTERVAL_MS / 1000, 0 };
    if (!(n->faults_timer = event_new(n->base, -1, EV_PERSIST, on_faults_timer, n)) ||
        event_add(n->faults_timer, &tv) != 0)
        return snprintf(err, errlen, "out of memory"), -1;
    warn_faults(n);
    return 0;
}

/* ---- lifecycle ---- */

static int start_transport(struct node *n, char *err, size_t errlen)
{
    const struct overlay_ops *ops = overlay_find(config_overlay_name(n->cfg.overlay));
    struct transport_config tc = {
        .cluster = n->cfg.cluster_name,
        .node = n->cfg.node_name,
        .advertise = "",
        .incarnation = n->incarnation,
        .listen_host = n->cfg.listen.host,
        .listen_port = n->cfg.listen.port,
        .connect_timeout_ms = n->cfg.connect_timeout_ms,
        .handshake_timeout_ms = n->cfg.handshake_timeout_ms,
        .idle_timeout_ms = n->cfg.idle_timeout_ms,
        .max_pending_connections = n->cfg.max_pending_connections,
        .max_pending_per_address = n->cfg.max_pending_per_address,
        .silence_ms = n->cfg.fd_timeout_ms,
        .tls_ca_file = n->cfg.tls_ca_file,
        .tls_cert_file = n->cfg.tls_cert_file,
        .tls_key_file = n->cfg.tls_key_file,
        .max_frame_bytes = n->cfg.peer_max_frame_bytes,
        .relayed_senders = ops && ops->relays,
        .max_queue_bytes = n->cfg.peer_max_queue_bytes,
        .channels = n->channels,
        .n_channels = n->cfg.n_channels,
    };
    for (size_t i = 0; i < n->cfg.n_channels; i++) {
        n->channels[i].name = n->cfg.channels[i].name;
        n->channels[i].parallelism = n->cfg.channels[i].parallelism;
        n->channels[i].monotonic = n->cfg.channels[i].monotonic;
        n->channels[i].reliable = n->cfg.channels[i].reliable;
    }
    struct transport_callbacks cb = {
        .ctx = n,
        .on_connected = tp_connected,
        .on_connect_failed = tp_connect_failed,
        .on_disconnected = tp_disconnected,
        .on_overlay = tp_overlay,
        .on_data = tp_data,
        .on_credit = tp_credit,
        .on_ack = tp_ack,
        .on_lane_drained = tp_lane_drained,
        .on_data_lost = tp_data_lost,
        .may_send = tp_may_send,
        .check_hello = tp_check_hello,
        .on_removed = tp_removed,
        .on_monotonic_sent = tp_monotonic_sent,
    };
    n->transport = transport_new(n->base, &tc, &cb);
    if (!n->transport) {
        char where[CONFIG_ADDR_MAX + 8];
        config_format_addr(&n->cfg.listen, where, sizeof where);
        snprintf(err, errlen, "cannot set up peer connections on %s (node.listen, tls.*): see the line above",
                 where);
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
        .max_members = n->cfg.max_members,
        .tombstone_ttl_ms = n->cfg.tombstone_ttl_ms,
    };
    struct overlay_env env = {
        .ctx = n,
        .now_ms = env_now,
        .wall_ms = env_wall,
        .random = env_random,
        .connect = env_connect,
        .disconnect = env_disconnect,
        .send = env_send,
        .member_joined = env_joined,
        .member_left = env_left,
        .member_forgotten = env_forgotten,
        .neighbor_up = env_neighbor_up,
        .neighbor_down = env_neighbor_down,
        .broadcast_deliver = env_broadcast_deliver,
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
    n->ops = overlay_find(config_overlay_name(n->cfg.overlay));
    if (!n->ops) {
        membership_free(&known);
        return snprintf(err, errlen, "overlay %s is not built into this daemon (built in: %s)",
                        config_overlay_name(n->cfg.overlay), overlay_names()), -1;
    }
    n->core = overlay_create_configured(n->ops, &n->cfg, &oc, &env);
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
    if (!n || config_copy(&n->cfg, cfg) != 0) {
        free(n);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->base = base;
    n->started_ms = clock_now_ms();
    if (getrandom(&n->rng, sizeof n->rng, 0) != sizeof n->rng)
        n->rng = clock_wall_ms() ^ ((uint64_t)getpid() << 32);
    n->incarnation = state_next_incarnation(n->cfg.state_dir, clock_wall_ms());
    if (n->incarnation == 0) {
        snprintf(err, errlen, "cannot write the state directory %s (node.state_dir)", n->cfg.state_dir);
        goto fail;
    }
    struct router_config rc = {
        .config = &n->cfg,
        .self = n->cfg.node_name,
        .cluster = n->cfg.cluster_name,
        .window_bytes = n->cfg.flow_window_bytes,
        .peer_max_frame_bytes = n->cfg.peer_max_frame_bytes,
        .sink_max_queue_bytes = n->cfg.ipc_max_queue_bytes,
        .sink_max_message_bytes = n->cfg.ipc_max_frame_bytes,
        .epoch = n->incarnation,
    };
    struct router_io io = { .ctx = n, .deliver = io_deliver, .queued = io_queued, .watch_drain = io_watch_drain,
                            .block = io_block, .unblock = io_unblock, .label = io_label, .verdict = io_verdict,
                            .arm = io_arm };
    n->reliable_timer = evtimer_new(base, on_reliable_timer, n);
    n->router = router_new(&rc, &io);
    n->tick_timer = evtimer_new(base, on_tick, n);
    n->save_timer = evtimer_new(base, on_save, n);
    if (!n->router || !n->tick_timer || !n->save_timer || !n->reliable_timer) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (start_faults(n, err, errlen) != 0 || start_transport(n, err, errlen) != 0)
        goto fail;
    transport_set_faults(n->transport, n->faults);
    struct ipc_config ic = {
        .path = n->cfg.ipc_socket,
        .mode = n->cfg.ipc_mode,
        .max_frame_bytes = n->cfg.ipc_max_frame_bytes,
        .max_queue_bytes = n->cfg.ipc_max_queue_bytes,
        /* Where a receiver that was holding flow-control grants has caught
         * up enough to release them. */
        .drain_bytes = (n->cfg.flow_window_bytes < n->cfg.ipc_max_queue_bytes / 4
                            ? n->cfg.flow_window_bytes : n->cfg.ipc_max_queue_bytes / 4) / 2,
    };
    struct ipc_handlers ih = { .ctx = n, .on_request = on_request, .on_close = on_session_close,
                               .on_drained = on_session_drained };
    n->ipc = ipc_server_new(base, &ic, &ih, err, errlen);
    if (!n->ipc)
        goto fail;
    if (start_overlay(n, err, errlen) != 0)
        goto fail;
    router_attach(n->router, n->transport, n->ops, n->core);
    struct control_env ce = {
        .ctx = n, .cfg = &n->cfg, .listen_text = n->listen_text, .started_ms = n->started_ms,
        .router = n->router, .transport = n->transport, .ops = n->ops, .core = n->core,
        .faults = n->faults, .joined = control_joined, .left = control_left,
        .faults_changed = control_faults_changed,
    };
    if (!(n->control = control_new(&ce))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
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
    faults_free(n->faults);
    if (n->reliable_timer)
        event_free(n->reliable_timer);
    if (n->faults_timer)
        event_free(n->faults_timer);
    if (n->tick_timer)
        event_free(n->tick_timer);
    if (n->save_timer)
        event_free(n->save_timer);
    if (n->seed_texts) {
        for (size_t i = 0; n->seed_texts[i]; i++)
            free(n->seed_texts[i]);
        free(n->seed_texts);
    }
    control_free(n->control);
    config_free(&n->cfg);
    free(n);
}

static void needs_restart(void *ctx, const char *key)
{
    (void)ctx;
    log_warn("reload: %s changed in the file but needs a restart; keeping the running value", key);
}

void node_reload(struct node *n, const struct config *fresh)
{
    if (fresh->log_level != n->cfg.log_level) {
        log_info("reload: log.level %s -> %s", log_level_name(n->cfg.log_level), log_level_name(fresh->log_level));
        log_set_level(fresh->log_level);
        n->cfg.log_level = fresh->log_level;
    }
    config_restart_changes(&n->cfg, fresh, needs_restart, NULL);
}
