/* router: the data plane. It owns the names registered on this node,
 * sending (local delivery, or a lane toward the next hop the overlay
 * names), delivery of what peers send, flow control per destination and
 * the counters of what was refused or dropped. Nothing else decides where a
 * message goes.
 *
 * A route is a sink: the router hands a message to it through the
 * router_io operations and never looks inside. Today every sink is an
 * application's IPC session, and so is every sender; the router blocks and
 * resumes them through the same operations.
 *
 * Flow control (flow.h): a sender to a remote name waits once a window of
 * its messages is unacknowledged; the receiving node grants the window
 * back as it hands messages to the application, and holds the grants
 * while that application has more than a window unread. So an
 * application that stops reading stalls only the senders writing to it;
 * every other name on its node and every channel keep flowing. A sender
 * also waits while the lane its message took is past its high mark, and
 * for a local receiver past half its queue bound. Nothing accepted with ok
 * is dropped for flow control. On a monotonic channel the sender does not
 * wait for the window: its messages wait in the lane's queue instead,
 * where a newer one for the same name and key replaces an older one.
 *
 * Reliable channels (config "reliable", "causal") go through reliable.h
 * instead: acknowledged end to end, retransmitted, exactly once and in
 * order, with each message's verdict owed to its sender; their window is
 * the delivery core's, not flow.c's.
 */
#ifndef PARTISAN_ROUTER_H
#define PARTISAN_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.pb-c.h"
#include "peer.pb-c.h"

struct config;
struct overlay;
struct overlay_ops;
struct router;
struct transport;

struct router_io {
    void *ctx;
    /* Hands a message to a local sink. 0, or -1 if the sink had to be
     * closed (its queue bound passed): the message is lost with it. */
    int (*deliver)(void *sink, const char *from_node, const char *name, const char *channel,
                   const uint8_t *payload, size_t len);
    /* Bytes the sink has not yet taken. */
    size_t (*queued)(void *sink);
    /* Asks for router_sink_drained(sink) once its queue has fallen low. */
    void (*watch_drain)(void *sink);
    /* Stop reading requests from sender until unblock(on). */
    void (*block)(void *sender, const void *on);
    void (*unblock)(void *ctx, const void *on);
    const char *(*label)(const void *sink);
    /* A reliable send's verdict for `sender`'s request req_id: with
     * confirm, the request's own reply; without, a failure found after it
     * was accepted. */
    void (*verdict)(void *sender, uint64_t req_id, bool confirm, Partisan__Ipc__ErrorCode code, const char *error);
    /* Call router_tick at or after `at` (monotonic ms; UINT64_MAX: never). */
    void (*arm)(void *ctx, uint64_t at);
};

struct router_config {
    const struct config *config;            /* channels; outlives the router */
    const char *self;                       /* this node's name */
    const char *cluster;
    uint64_t window_bytes;                  /* flow-control window per destination */
    uint64_t peer_max_frame_bytes;
    uint64_t sink_max_queue_bytes;          /* a sink's hard bound (ipc.max_queue_bytes) */
    uint64_t sink_max_message_bytes;        /* the largest payload handed to a sink (ipc.max_frame_bytes) */
    uint64_t epoch;                         /* this daemon's boot incarnation (reliable channels) */
};

/* The most relays a message may take; past it, it is dropped (a route
 * that changed under it could otherwise bounce it for ever). HyParView's
 * routes are announcement trees, a few hops deep even at 10,000 nodes. */
#define ROUTER_HOPS_MAX 32

struct router_counters {
    uint64_t no_name;          /* from peers, for names nobody holds here */
    uint64_t not_ours;         /* from peers, for another node, when this overlay does not relay */
    uint64_t relayed;          /* handed on toward another node */
    uint64_t relay_dropped;    /* could not be handed on: no route, hop limit, or the next queue full */
    uint64_t broadcasts;       /* broadcasts this node started */
    uint64_t flow_waits;       /* sends after which the sender waited for a window */
    uint64_t from_removed;     /* from peers removed from the cluster: not delivered */
};

struct router *router_new(const struct router_config *cfg, const struct router_io *io);
void router_free(struct router *r);

/* Where messages go: set once both exist, before any traffic. */
void router_attach(struct router *r, struct transport *t, const struct overlay_ops *ops,
                   struct overlay *core);

/* Names. register: 0; -1 another sink holds it; -2 out of memory (holding
 * it already succeeds). unregister: 0; -1 nobody holds it; -2 another does. */
int router_register(struct router *r, const char *name, void *sink);
int router_unregister(struct router *r, const char *name, const void *sink);
void *router_lookup(const struct router *r, const char *name);
size_t router_count(const struct router *r);

/* Sends one application message from `sender` (request id req_id).
 * Returns the code to reply with, and the reason in msg when it is not OK.
 * On OK the sender may have been blocked (flow control); its reply is
 * still owed by the caller, unless *deferred says the router answers it
 * later through io->verdict (a reliable send with confirm). */
Partisan__Ipc__ErrorCode router_send(struct router *r, void *sender, uint64_t req_id,
                                     const Partisan__Ipc__SendRequest *req, bool *deferred, char *msg,
                                     size_t msglen);

/* From the transport. */
void router_peer_data(struct router *r, const char *from, const char *channel, const Partisan__Peer__Data *d);
void router_peer_credit(struct router *r, const char *from, const Partisan__Peer__Credit *c);
void router_peer_ack(struct router *r, const char *from, const char *channel, const Partisan__Peer__DeliveryAck *a);
/* Reachability for reliable channels: up with the handshake's incarnation
 * (0: reachable through relays, epoch not known); down; left or forgotten;
 * this node left. */
void router_peer_up(struct router *r, const char *node, uint64_t epoch);
void router_peer_down(struct router *r, const char *node);
void router_peer_left(struct router *r, const char *node);
void router_local_left(struct router *r);
/* The timer io->arm asked for. */
void router_tick(struct router *r);
void router_lane_drained(struct router *r, const void *lane);
/* Monotonic channels: their messages wait in the lane while the
 * destination's window is full, and are accounted when they leave it. */
bool router_monotonic_may_send(struct router *r, const char *node, const char *name);
void router_monotonic_sent(struct router *r, const char *node, const char *name, uint64_t payload_len);
void router_data_lost(struct router *r, const char *node, uint64_t lost);
/* The node is down or gone: its windows are forgotten and its senders resume. */
void router_peer_gone(struct router *r, const char *node);

/* A broadcast from an application: to `name` on every node of the
 * cluster, this one included. Returns the code to reply with. */
Partisan__Ipc__ErrorCode router_broadcast(struct router *r, const char *name, const uint8_t *payload, size_t len,
                                          char *msg, size_t msglen);
/* One that reached this node (from the overlay, or from a peer's Data in
 * an overlay without its own broadcast): delivered to name, if held. */
void router_broadcast_deliver(struct router *r, const char *origin, const char *name, const uint8_t *payload,
                              size_t len);

/* From the sinks. */
void router_sink_drained(struct router *r, void *sink);
/* The sink is going away: its names are released; returns how many. */
size_t router_sink_closed(struct router *r, void *sink);

const struct router_counters *router_get_counters(const struct router *r);
struct reliable_stats;
void router_reliable_stats(const struct router *r, struct reliable_stats *out);

#endif
