/* causal: causal order for one channel marked `causal`, sans-IO.
 *
 * Promise: a message m from j is handed to env->deliver at node i only
 * after every message to i on this channel that causally precedes m —
 * every message j had sent to i before m, and every message to i that was
 * sent (anywhere) before something j had delivered before sending m.
 *
 * Scheme: matrix clocks (Raynal, Schiper, Toueg 1991) over the node
 * incarnations that use the channel. Each node keeps SENT[k][l]: how many
 * messages k sent to l that it knows of. A send from j to l increments
 * SENT[j][l] and carries j's nonzero entries as the stamp; i delivers m
 * from j once SENT_m[k][i] <= SENT_i[k][i] for every k != j and every
 * earlier message from j has been delivered, then merges SENT_m into
 * SENT_i (element-wise max). Column i of SENT_i is what i has delivered.
 * The order among j's own messages comes from the reliable channel below
 * (causal_receive is called in j's sending order) rather than from the
 * count, so a count spent on a message that failed stalls nothing.
 *
 * Cost per message: the stamp lists every (k, l) pair that has exchanged a
 * message on the channel as far as the sender knows: at most S x D entries
 * for S senders and D destinations, each three varints (usually 3-5
 * bytes), plus a table of the node names it mentions (name + epoch). So
 * 5 nodes all talking to each other: 25 entries, ~150 bytes per message.
 * Receive: O(entries) to check, and each delivery re-checks the held
 * messages (O(held x entries) at worst).
 *
 * Nodes are (name, epoch): a restarted node is a new one, and
 * causal_node_epoch() retires the older epochs so nothing waits for their
 * messages for ever. Below causal runs a reliable channel (delivery.h):
 * causal order assumes no message is lost between two live epochs.
 *
 * Held-back messages are bounded (config.max_held, max_held_bytes). A
 * message that cannot be delivered yet while the buffer is full is refused
 * (CAUSAL_FULL, counted in refused_full): the driver tells the delivery
 * core DELIVERY_RETRY and the message is offered again later. This never
 * deadlocks: the causally earliest message still missing is always
 * deliverable on arrival and needs no slot.
 *
 * The driver, per causal channel (one core each), on top of delivery.h:
 *   - send: delivery_can_send(dest) first (a stamp is a send event and must
 *     not be wasted); e = delivery_peer_epoch(dest), else the member
 *     table's epoch; causal_stamp(dest, e); delivery_send with
 *     meta = the stamp, meta_epoch = e (so the message is never moved to
 *     another epoch of dest, where its stamp would mean nothing);
 *   - delivery's env->deliver on this channel: causal_receive(origin,
 *     msg->meta, seq as tag, the bytes the application needs). DELIVERED:
 *     return the verdict the application gave inside the call; HELD:
 *     DELIVERY_PENDING; FULL: DELIVERY_RETRY; STALE or BAD: any verdict
 *     (nobody waits for a retired epoch; BAD is counted);
 *   - causal env->deliver: hand to the application; for a released message
 *     (not the one being received) report its verdict with
 *     delivery_report(from, channel, tag, verdict);
 *   - a member's epoch seen (handshake or member table):
 *     causal_node_epoch; a member left: causal_node_left.
 * Callbacks may call causal_stamp (an application replying at once), not
 * causal_receive. Across a restart of this node nothing is kept: the new
 * incarnation starts with an empty clock, as does its delivery core. */
#ifndef PARTISAN_CAUSAL_H
#define PARTISAN_CAUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAUSAL_MAX_NODES          64u         /* node epochs one channel's clock tracks */
#define CAUSAL_MAX_HELD_DEFAULT   1024u       /* messages held back */
#define CAUSAL_MAX_HELD_BYTES_DEFAULT (16u << 20)
#define CAUSAL_NAME_MAX           255u

struct causal_env {
    void *ctx;
    /* Hand a message to the application, in causal order. `tag` and the
     * bytes are what causal_receive was given (copied if it was held). */
    void (*deliver)(void *ctx, const char *from, uint64_t tag, const void *msg, size_t len);
    /* Optional: a held message from an epoch that was retired is dropped,
     * never delivered (its sender is gone; nobody waits for a verdict). */
    void (*dropped)(void *ctx, const char *from, uint64_t tag);
};

struct causal_config {
    const char *self;              /* this node's name */
    uint64_t epoch;                /* its boot incarnation (delivery.h's epoch), > 0 */
    uint32_t max_held;             /* 0: CAUSAL_MAX_HELD_DEFAULT */
    uint64_t max_held_bytes;       /* 0: CAUSAL_MAX_HELD_BYTES_DEFAULT */
};

struct causal_stats {
    uint64_t stamped, delivered, delivered_at_once, held, released;
    uint64_t refused_full;         /* CAUSAL_FULL answers */
    uint64_t stale, bad;
    uint64_t retired_released;     /* held messages released because what they waited for was retired */
    uint64_t max_held_seen;
};

struct causal;

struct causal *causal_new(const struct causal_config *cfg, const struct causal_env *env);
void causal_free(struct causal *c);

/* The stamp for a message to (dest, dest_epoch): the send event. Call it
 * from delivery's env->stamp (right before the first transmission, in
 * sequence order, with the epoch the message really goes to), so the stamp
 * follows the per-link order and never names an epoch the message will not
 * reach. (A stamp taken later than the application's send only adds
 * dependencies on what this node delivered meanwhile: still causal.)
 * *out stays valid until the next call on c. -1: too many nodes on the
 * channel (CAUSAL_MAX_NODES) or out of memory; nothing was committed. */
int causal_stamp(struct causal *c, const char *dest, uint64_t dest_epoch, const uint8_t **out, size_t *out_len);

enum causal_result {
    CAUSAL_DELIVERED,              /* env->deliver was called for it (and maybe for released ones after it) */
    CAUSAL_HELD,                   /* kept; env->deliver comes later */
    CAUSAL_FULL,                   /* not kept: offer it again later */
    CAUSAL_STALE,                  /* from a retired epoch: drop, nobody waits for it */
    CAUSAL_BAD,                    /* the stamp does not decode or is not from `from` */
};
/* A message from `from` with its stamp, in the sender's order (as the
 * delivery core hands them up: exactly once, in sequence). */
enum causal_result causal_receive(struct causal *c, const char *from, const uint8_t *stamp, size_t stamp_len,
                                  uint64_t tag, const void *msg, size_t len);

/* `node` runs at `epoch` now (from its handshake or the member table):
 * every lower epoch of it is retired. May release held messages. */
void causal_node_epoch(struct causal *c, const char *node, uint64_t epoch);
/* `node` left: all its epochs are retired. May release held messages. */
void causal_node_left(struct causal *c, const char *node);

size_t causal_held(const struct causal *c);
const struct causal_stats *causal_get_stats(const struct causal *c);

#endif
