/* delivery: reliable channels, sans-IO. One core per daemon; it never reads
 * the clock, draws a random number or touches a socket: time comes in as
 * `now` (monotonic ms), effects go out through struct delivery_env.
 *
 * State is end to end, per (origin node, final destination node, channel):
 * a forwarding hop carries the reliable Data fields and DeliveryAck (proto/peer.proto)
 * without looking inside, so acks and retransmissions span the whole path.
 *
 * Sender side, per (destination, channel) link:
 *   - sequence numbers 1, 2, ... in the sequence space of one pair
 *     (my epoch, the destination's epoch). The epoch is the incarnation a
 *     daemon had when it started (never a value refuted upward later);
 *   - a window of at most `window` messages and `window_bytes` payload
 *     bytes not yet acknowledged. delivery_send() refuses with
 *     DELIVERY_SEND_FULL (back-pressure) rather than queueing more; the
 *     env's window_open() says when the link that refused has room again;
 *   - each message is (re)transmitted while the link is up and the
 *     destination's epoch is known; retransmission after the link's RTO
 *     (smoothed RTT + 4 x variance, from messages sent once; at least
 *     DELIVERY_RTO_MIN_MS, DELIVERY_RTO_INITIAL_MS before any sample),
 *     doubled per attempt of that message, capped at DELIVERY_RTO_MAX_MS.
 *     A hole below what the receiver holds is resent at once the first
 *     time it is reported, then at most once a round trip (never growing
 *     its backoff).
 *     Selectively acked messages are not retransmitted, except the oldest
 *     one as a probe on its timer (the ack ending it may be lost after the
 *     receiver's last word). A link coming up (peer_up) retransmits
 *     everything unacknowledged at once and resets backoff.
 *   - every message ends with exactly one verdict through env->verdict,
 *     with the sender's own message id.
 *
 * Receiver side, per (origin, channel):
 *   - duplicates (seq already handed up, or held) are dropped and re-acked;
 *   - messages are handed to env->deliver strictly in sequence order;
 *     out-of-order ones wait in a buffer bounded by the window (the sender
 *     never has more than DELIVERY_WINDOW_MAX outstanding);
 *   - an ack carries the cumulative sequence number below which every
 *     verdict is known, a bitmap of what is held above it (as wide as
 *     the largest window, so every hole shows), and the
 *     verdicts that are not DELIVERED (rare) among those the sender may
 *     not have yet (the data frames tell the receiver how far the sender
 *     was acked, so the list stays short). Acks go out DELIVERY_ACK_DELAY_MS
 *     after the first unacknowledged verdict, at once after
 *     DELIVERY_ACK_EVERY of them, and at once for a duplicate or a gap;
 *     while a gap stays open the ack is repeated, DELIVERY_ACK_DELAY_MS
 *     after the last arrival and then doubling (a full window draws no
 *     other ack, and the resent hole may be lost again).
 *
 * Restarts (a new epoch on either side). What is guaranteed:
 *   - Nothing is delivered twice, to one incarnation or across them: data
 *     stamped for another epoch of the receiver is refused (and answered by
 *     an ack that tells the sender the new epoch); data from an older epoch
 *     of the origin is dropped.
 *   - The destination restarted: every message already transmitted to its
 *     old epoch and not acknowledged gets DELIVERY_V_PEER_RESTARTED ("may
 *     or may not have been delivered to the old incarnation; not to the new
 *     one"), at most once. Messages never transmitted yet move to the new
 *     epoch's sequence space and are delivered exactly once (unless their
 *     meta was made for the old epoch, as causal stamps are: those fail
 *     with PEER_RESTARTED too).
 *   - The origin restarted: its old unacknowledged messages vanish with its
 *     process (their senders lost their session to it); the receiver drops
 *     what it held out of order for the old epoch (counted) and starts the
 *     new epoch's sequence space.
 *   - The destination left (delivery_peer_left): everything in its windows
 *     gets DELIVERY_V_NODE_LEFT; its state is forgotten.
 *   Within one pair of epochs, delivery is exactly once and in order across
 *   any number of connection resets, partitions and reconnects.
 *
 * The driver (the router, on a reliable channel):
 *   - at start: delivery_new with the daemon's boot incarnation as epoch;
 *   - for every member, when it is reachable as a destination (its control
 *     connection's handshake, or for a forwarding overlay its member entry
 *     being up): delivery_peer_up(node, the handshake's incarnation, which
 *     is the peer's boot incarnation; 0 when only the member table's is
 *     known, since that one may have been refuted upward); delivery_peer_down
 *     when it is not; delivery_peer_left when it left or was forgotten;
 *     delivery_local_left when this node leaves;
 *   - an application's send: delivery_send; FULL makes the session wait
 *     for env->window_open (as a full flow-control window does);
 *   - a DeliveryData or DeliveryAck addressed to this node (after the
 *     frame's checksum and the handshake's identity checks, whichever hop
 *     it came through): delivery_on_data / delivery_on_ack with the
 *     origin / acking node named inside the message;
 *   - env->transmit / env->send_ack: route the frame toward the node named
 *     (the overlay's next hop), best effort; never retransmit yourself;
 *   - env->deliver: hand to the session holding msg->name and say how it
 *     went; env->verdict: answer the sending session (send --wait);
 *   - a timer at delivery_next_deadline() (re-read after every call into
 *     the core), calling delivery_tick.
 *
 * Re-entrancy: env callbacks may call delivery_send, delivery_report,
 * delivery_can_send and the query functions, nothing else (in particular
 * not delivery_peer_left, delivery_local_left or delivery_free). */
#ifndef PARTISAN_DELIVERY_H
#define PARTISAN_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The limits, one definition each. */
#define DELIVERY_WINDOW_MAX       256u            /* messages unacked per link (cap of config.window) */
#define DELIVERY_WINDOW_DEFAULT   128u
#define DELIVERY_WINDOW_BYTES_DEFAULT (4u << 20)  /* payload bytes unacked per link */
#define DELIVERY_RTO_INITIAL_MS   200u            /* before the first RTT sample */
#define DELIVERY_RTO_MIN_MS       20u
#define DELIVERY_RTO_MAX_MS       5000u           /* backoff cap */
#define DELIVERY_ACK_DELAY_MS     5u
#define DELIVERY_ACK_EVERY        16u
#define DELIVERY_RETRY_MS         10u             /* re-offer of a message env->deliver said RETRY to */
#define DELIVERY_SACK_BITS        DELIVERY_WINDOW_MAX   /* the whole window: every hole is visible */
#define DELIVERY_SACK_WORDS       (DELIVERY_SACK_BITS / 64u)
#define DELIVERY_NAME_MAX         255u            /* node, channel and destination name bytes */

/* Verdicts. The first four are the receiver's (they travel in acks); the
 * rest the sender's core decides. Numbers are wire values. */
enum delivery_verdict {
    DELIVERY_V_DELIVERED = 0,      /* handed to the application's session */
    DELIVERY_V_NO_SUCH_NAME = 1,
    DELIVERY_V_TOO_LARGE = 2,
    DELIVERY_V_NODE_LEFT = 3,      /* the destination has left the cluster */
    DELIVERY_V_PEER_RESTARTED = 4, /* transmitted to an epoch that ended; not delivered to the new one */
};
const char *delivery_verdict_name(int verdict);

/* What env->deliver returns besides a verdict. */
#define DELIVERY_PENDING (-1)      /* taken; the verdict follows via delivery_report() */
#define DELIVERY_RETRY   (-2)      /* not taken now (e.g. causal buffer full); offered again later */

/* A message as the core stores and hands it back. All bytes are copied at
 * delivery_send; `meta` is opaque to the core (causal.c's stamp). */
struct delivery_msg {
    const char *name;              /* destination name on the destination node */
    const void *key; size_t key_len;       /* partition key, may be empty */
    const void *meta; size_t meta_len;
    const void *payload; size_t len;
    /* delivery_send only: the destination epoch `meta` was made for (a
     * causal stamp names it), 0 if meta does not depend on it. Such a
     * message is only ever transmitted to that epoch: if the destination
     * turns out to run another one before it was transmitted, it fails
     * with PEER_RESTARTED instead of moving to the new epoch. The caller
     * passes the pinned epoch when one is known (delivery_peer_epoch), as
     * causal.h's driver does: the core checks it only at a repin, so a
     * message sent naming another epoch than the pinned one would go to
     * the pinned one at once. */
    uint64_t meta_epoch;
};

/* DeliveryData's sequencing fields. */
struct delivery_data {
    uint64_t origin_epoch, dest_epoch;
    uint64_t seq;
    uint64_t acked_through;        /* every seq <= this has its verdict at the sender */
};

struct delivery_exception { uint64_t seq; int verdict; };

/* DeliveryAck: from the destination back to the origin. */
struct delivery_ack {
    uint64_t origin_epoch;         /* of the data it answers (the origin's) */
    uint64_t dest_epoch;           /* the acker's own */
    uint64_t cum;                  /* every seq <= cum has a verdict (DELIVERED unless listed) */
    uint64_t sack[DELIVERY_SACK_WORDS];   /* bit i (word i / 64, bit i % 64): seq cum+1+i has arrived
                                             (held, verdict pending) */
    size_t n_exceptions;
    const struct delivery_exception *exceptions;
    /* A refusal: the data named refused_epoch (0: a probe, "who are you?")
     * and the acker runs dest_epoch; cum and sack are empty. */
    bool refused;
    uint64_t refused_epoch;
};

struct delivery_env {
    void *ctx;
    /* Put one DeliveryData (hdr + msg) on the way to `dest` (next hop of the
     * overlay). Best effort: a frame lost here is retransmitted. */
    void (*transmit)(void *ctx, const char *dest, const char *channel,
                     const struct delivery_data *hdr, const struct delivery_msg *msg);
    /* Put one DeliveryAck on the way to `origin`. Best effort. */
    void (*send_ack)(void *ctx, const char *origin, const char *channel, const struct delivery_ack *ack);
    /* Hand a message to the application: return a verdict (0..3),
     * DELIVERY_PENDING or DELIVERY_RETRY. Called in sequence order per
     * (origin, channel), once per message (RETRY: once more later). */
    int (*deliver)(void *ctx, const char *origin, const char *channel, uint64_t seq,
                   const struct delivery_msg *msg);
    /* The final word on message `msg_id` sent to (dest, channel). */
    void (*verdict)(void *ctx, const char *dest, const char *channel, uint64_t msg_id, int verdict);
    /* (dest, channel) refused a send with DELIVERY_SEND_FULL and has room again. */
    void (*window_open)(void *ctx, const char *dest, const char *channel);
};

struct delivery_config {
    uint64_t epoch;                /* this daemon's boot incarnation, > 0 */
    uint32_t window;               /* 0: DELIVERY_WINDOW_DEFAULT; capped at DELIVERY_WINDOW_MAX */
    uint64_t window_bytes;         /* 0: DELIVERY_WINDOW_BYTES_DEFAULT */
};

struct delivery_stats {
    uint64_t sent, retransmitted, acked;       /* data frames first sent / sent again; messages with a verdict */
    uint64_t fast_retransmits;                 /* of retransmitted: for a hole the receiver's ack showed */
    uint64_t refused_full;                     /* delivery_send said FULL, or delivery_can_send no */
    uint64_t received, duplicates, out_of_order, delivered;
    uint64_t stale_epoch;                      /* data from an old origin epoch, or for another epoch of mine */
    uint64_t dropped_on_restart;               /* held out of order when the origin restarted */
    uint64_t retries;                          /* env->deliver said RETRY */
    uint64_t acks_sent, acks_received;
    uint64_t failed;                           /* verdicts PEER_RESTARTED or NODE_LEFT decided by the sender */
    uint64_t probes;                           /* data sent naming epoch 0, to learn the destination's */
};

struct delivery;

/* NULL on bad config (epoch 0) or out of memory. env is copied. */
struct delivery *delivery_new(const struct delivery_config *cfg, const struct delivery_env *env);
/* Frees everything; no verdicts are reported (the daemon is stopping). */
void delivery_free(struct delivery *d);

enum delivery_send_result {
    DELIVERY_SEND_OK = 0,
    DELIVERY_SEND_FULL,            /* window full: wait for window_open */
    DELIVERY_SEND_TOO_LARGE,       /* longer than window_bytes: could never fit */
    DELIVERY_SEND_INVALID,         /* names empty or too long, or this node left */
    DELIVERY_SEND_NOMEM,
};
/* Accepts a message for (dest, channel); transmits it at once when the
 * link is up. On OK its verdict comes later through env->verdict, exactly
 * once. `msg_id` is the caller's and only given back. */
enum delivery_send_result delivery_send(struct delivery *d, const char *dest, const char *channel,
                                        uint64_t msg_id, const struct delivery_msg *msg, uint64_t now);
/* Would delivery_send accept a message of this length now? A "no" for a
 * full window arms window_open exactly as a FULL refusal does. (A causal
 * stamp is a send event: take it only for a message that will be accepted.) */
bool delivery_can_send(struct delivery *d, const char *dest, const char *channel, size_t len);

/* From the network (after the checksum). */
void delivery_on_data(struct delivery *d, const char *origin, const char *channel,
                      const struct delivery_data *hdr, const struct delivery_msg *msg, uint64_t now);
void delivery_on_ack(struct delivery *d, const char *from, const char *channel,
                     const struct delivery_ack *ack, uint64_t now);

/* The verdict of a message env->deliver answered DELIVERY_PENDING for. */
void delivery_report(struct delivery *d, const char *origin, const char *channel, uint64_t seq,
                     int verdict, uint64_t now);

/* Reachability of `node` as a destination: up with the epoch its handshake
 * gave (the peer's boot incarnation), or 0 when it is reachable but its
 * epoch is not known (a node only reached through forwarding hops: the
 * member table's incarnation may have been refuted upward and is not the
 * epoch). With 0 the core probes: it sends its oldest message naming epoch
 * 0, which is never delivered but answered with a refusal that tells the
 * epoch (DELIVERY_RTO_* backoff between probes). Down: nothing is
 * transmitted to it; sends are still accepted into the window. */
void delivery_peer_up(struct delivery *d, const char *node, uint64_t epoch, uint64_t now);
void delivery_peer_down(struct delivery *d, const char *node);
/* `node` left or was forgotten: its windows fail with NODE_LEFT and all
 * state about it, both sides, is dropped. */
void delivery_peer_left(struct delivery *d, const char *node);
/* This node left: every window fails with NODE_LEFT, further sends are
 * INVALID and incoming data is answered NODE_LEFT without delivery. */
void delivery_local_left(struct delivery *d);

/* Timers: call at or after delivery_next_deadline() (UINT64_MAX: none). */
void delivery_tick(struct delivery *d, uint64_t now);
uint64_t delivery_next_deadline(const struct delivery *d);

const struct delivery_stats *delivery_get_stats(const struct delivery *d);
/* Messages waiting for a verdict toward (dest, channel); 0 if no link. */
size_t delivery_outstanding(const struct delivery *d, const char *dest, const char *channel);
uint64_t delivery_epoch(const struct delivery *d);
/* The epoch pinned for `node` as a destination; 0 unknown. Causal stamps
 * should name this one. */
uint64_t delivery_peer_epoch(const struct delivery *d, const char *node);

#endif
