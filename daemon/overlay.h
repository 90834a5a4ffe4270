/* overlay: the sans-IO interface every overlay core implements.
 *
 * A core is a pure state machine. It never calls libevent, never reads the
 * clock, never calls random(), never touches a socket: it is fed events and
 * asks for effects through the overlay_env it was given. The daemon
 * (daemon/node.c) drives it with libevent; the simulator (test/sim/) drives
 * the very same core with a virtual clock, a seeded RNG and a simulated
 * network.
 *
 * Connections, as the core sees them: it asks env->connect(peer) for an
 * outbound connection to a peer; the driver later reports exactly one of
 * overlay_peer_connected() (handshake done; the peer's real name is known)
 * or overlay_connect_failed(). An established outbound connection that is
 * lost is reported by overlay_peer_disconnected(). Messages the core sends
 * go on its outbound connection to that node; messages it receives come in
 * on the peer's outbound connection (this node's inbound one), through
 * overlay_receive(). env->send to a node with no connection is dropped by the
 * driver (the core only sends to nodes it knows are connected).
 *
 * Wire messages belong to the core: env->send takes one message already in
 * the core's own encoding (the full mesh's is peer.proto's Gossip, through
 * gossip_codec.c; HyParView's is proto/hyparview.proto) and receive() gets
 * the bytes a peer's core sent, which may be anything a hostile or
 * mismatched peer chose: a core ignores what it cannot decode. The driver
 * carries them in PeerFrame.overlay without looking inside, so adding an
 * overlay changes neither the driver nor the other cores.
 *
 * Time: tick() is given the current monotonic time; the other entry points
 * read it from env->now_ms.
 * env->disconnect(node) closes our outbound connection to node once what was
 * already sent on it is written (a core leaving sends its last STATE just
 * before), and the inbound ones from node; the driver does not report
 * overlay_peer_disconnected() for connections the core closed itself.
 *
 * Reentrancy: env callbacks must not call back into the core synchronously;
 * a driver queues what the callbacks cause (a connect result, say) and
 * reports it after the current call returns.
 */
#ifndef PARTISAN_OVERLAY_H
#define PARTISAN_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "membership.h"

struct peer_addr {
    char node[MEMBER_NAME_MAX + 1];     /* "" when not known yet (a seed) */
    char address[MEMBER_ADDR_MAX + 1];  /* host:port */
};

enum overlay_log_level { OVERLAY_LOG_DEBUG = 0, OVERLAY_LOG_INFO, OVERLAY_LOG_WARN };

struct overlay_env {
    void *ctx;
    uint64_t (*now_ms)(void *ctx);                   /* monotonic milliseconds */
    /* Unix-epoch milliseconds, for tombstone expiry, which every node must
     * place at the same instant. May be NULL: tombstones then never expire. */
    uint64_t (*wall_ms)(void *ctx);
    uint64_t (*random)(void *ctx);                   /* uniformly random 64 bits */
    void (*connect)(void *ctx, const struct peer_addr *peer);
    void (*disconnect)(void *ctx, const char *node); /* close both directions' connections */
    void (*send)(void *ctx, const char *node, const uint8_t *msg, size_t len);
    /* Events for applications. joined/left follow membership (the cluster's
     * agreement); up/down follow reachability (this node's view). */
    void (*member_joined)(void *ctx, const struct member *m);
    void (*member_left)(void *ctx, const struct member *m);
    void (*member_up)(void *ctx, const char *node);
    void (*member_down)(void *ctx, const char *node);
    /* Optional (may be NULL): a tombstone expired and the member is gone
     * from the table (no application event: it had left already). */
    void (*member_forgotten)(void *ctx, const char *node);
    /* Optional (may be NULL): a line for the daemon's log. */
    void (*log)(void *ctx, enum overlay_log_level level, const char *msg);
    /* Optional, for overlays with partial views (may be NULL): a node
     * entered or left this node's set of direct neighbours. */
    void (*neighbor_up)(void *ctx, const char *node);
    void (*neighbor_down)(void *ctx, const char *node);
    /* Optional (may be NULL): an application broadcast (ops->broadcast on
     * origin) reached this node, once; the driver hands it to name here. */
    void (*broadcast_deliver)(void *ctx, const char *origin, const char *name, const uint8_t *payload,
                              size_t len);
};

struct hyparview_params;   /* overlay_hyparview.h */

struct overlay_config {
    const char *self_name;
    const char *self_address;       /* advertised host:port */
    uint64_t self_incarnation;      /* strictly greater than any earlier run's */
    const char *const *seeds;       /* host:port each */
    size_t n_seeds;
    uint32_t gossip_interval_ms;
    uint32_t gossip_fanout;
    uint32_t ping_interval_ms;
    uint32_t fd_timeout_ms;         /* silence after which a member is down */
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    /* Optional (NULL, 0: none): the member table an earlier run persisted.
     * start() merges it (this node's own old entry loses to the higher
     * self_incarnation) and dials its alive members, so a restarted node
     * rejoins without seeds. */
    const struct member *initial_members;
    size_t n_initial_members;
    /* At most this many members (left ones included); names beyond it in
     * a merge are ignored, with a warning. 0: no bound. */
    size_t max_members;
    /* How long a member that left stays as a tombstone before every node
     * drops it. 0: for ever. */
    uint64_t tombstone_ttl_ms;
    /* The HyParView core's parameters (NULL: its defaults); others ignore it. */
    const struct hyparview_params *hyparview;
};

struct overlay;

/* The operations a core provides; each overlay fills one table. */
struct overlay_ops {
    const char *name;
    /* Messages may reach a node through other nodes (next_hop is not always
     * the destination): the driver relays, and accepts relayed frames. */
    bool relays;
    struct overlay *(*create)(const struct overlay_config *cfg, const struct overlay_env *env);
    void (*destroy)(struct overlay *o);
    /* Starts: dials the seeds, if any. */
    void (*start)(struct overlay *o);
    /* Joins the cluster through the member at address. */
    void (*join)(struct overlay *o, const char *address);
    /* node NULL: this node leaves for good. Else removes that member.
     * Returns 0, or -1 if node is not a member. */
    int (*leave)(struct overlay *o, const char *node);
    /* Purges a member for good, cluster-wide: it is removed as by leave (if
     * still alive) and its tombstone expires on every node a few gossip
     * rounds later (overlay_forget_grace_ms), after which no node lists,
     * stores or dials it. Returns 0, or -1 if node is self or not known. */
    int (*forget)(struct overlay *o, const char *node);
    void (*peer_connected)(struct overlay *o, const char *node, const char *address,
                           uint64_t incarnation);
    /* An outbound dial (to peer, as passed to env->connect) did not complete. */
    void (*connect_failed)(struct overlay *o, const struct peer_addr *peer);
    void (*peer_disconnected)(struct overlay *o, const char *node);
    /* One message from from's core (see "Wire messages" above). */
    void (*receive)(struct overlay *o, const char *from, const uint8_t *msg, size_t len);
    /* A peer refused this node's handshake saying this node was removed
     * from the cluster (peer.proto Refuse.LEFT): it must stop, as if it had
     * learned the removal by gossip. */
    void (*removed_by)(struct overlay *o, const char *by_node);
    /* Call at least every next_deadline(), with the current time. */
    void (*tick)(struct overlay *o, uint64_t now_ms);
    /* The env->now_ms() time at which tick should next run. */
    uint64_t (*next_deadline)(const struct overlay *o);
    /* The member table (left members included). */
    const struct membership *(*members)(const struct overlay *o);
    /* Whether this node can reach node now (self is always reachable). */
    bool (*is_up)(const struct overlay *o, const char *node);
    /* The neighbour to hand a message for dest to, or NULL if unreachable.
     * Full mesh: dest itself when up. */
    const char *(*next_hop)(const struct overlay *o, const char *dest);
    /* True once this node left the cluster (itself, or removed by another). */
    bool (*has_left)(const struct overlay *o);
    /* Optional (NULL: every member that is up is a neighbour, as in a full
     * mesh): whether node is one of this node's direct neighbours. */
    bool (*is_neighbor)(const struct overlay *o, const char *node);
    /* Optional (NULL: the driver sends to name on every member that is up,
     * and delivers locally): spreads payload to name on every node of the
     * cluster, this one included, through env->broadcast_deliver. Returns 0,
     * or -1 when it cannot (payload too large, this node left). */
    int (*broadcast)(struct overlay *o, const char *name, const uint8_t *payload, size_t len);
};

/* A line for env->log (nothing when it is NULL), formatted; for cores.
 * Longer lines are cut at OVERLAY_LOG_LINE_MAX bytes. */
#define OVERLAY_LOG_LINE_MAX 768
void overlay_logf(const struct overlay_env *env, enum overlay_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The registry: the core that `overlay.type` names, or NULL. The daemon and
 * the simulator look cores up here and nowhere else name one. */
const struct overlay_ops *overlay_find(const char *type);
/* The registered names, for messages: "full_mesh, hyparview". */
const char *overlay_names(void);

struct config;
/* ops->create with each core's own parameters (overlay.hyparview.*, ...)
 * taken from the daemon's config; oc holds the rest. */
struct overlay *overlay_create_configured(const struct overlay_ops *ops, const struct config *c,
                                          struct overlay_config *oc, const struct overlay_env *env);

/* How long after a forget its tombstone expires: long enough to reach every
 * member by gossip first. */
uint64_t overlay_forget_grace_ms(const struct overlay_config *cfg);

#endif
