/* reliable: the router's reliable and causal channels. It drives the
 * sans-IO cores (delivery.h for acknowledged, exactly-once, in-order
 * delivery per (origin, destination, channel); causal.h above it for the
 * channels marked causal) with the clock and one timer, turns the peer
 * frames' fields into the cores' structs and back, and keeps what the
 * cores do not: which application session is owed each message's verdict,
 * and the messages that wait for a full window.
 *
 * Sending: reliable_send() accepts a message for a member that has not
 * left, up or down: while the destination is unreachable its messages wait
 * in the window (DELIVERY_WINDOW_DEFAULT messages per link) and go out when
 * it is back. A send that finds the window full is still accepted, held
 * here (one per sender: the sender is blocked until the window opens, so
 * it cannot hold more), and handed to the core first when the window has
 * room: back-pressure reaches the sending application, and nothing
 * accepted is dropped.
 *
 * Verdicts: every accepted message ends with one verdict from the core.
 * A send that asked for confirmation is answered with it; any other is
 * answered at once (accepted), and told later only if it failed. A session
 * that closes first is owed nothing; its messages still go out.
 *
 * Receiving: a message handed up by the core goes to the session holding
 * its name (DELIVERED), or there is none (NO_SUCH_NAME). While that
 * session has more than half its queue bound unread, the message is left
 * with the core, which offers it again shortly (DELIVERY_RETRY): the
 * sender's window then fills and the sender waits, end to end.
 *
 * Frames: a reliable message is a peer.proto Data with seq != 0; acks are
 * DeliveryAck frames. reliable_* never sends itself: the router routes
 * both (the overlay's next hop) through the io operations. */
#ifndef PARTISAN_RELIABLE_H
#define PARTISAN_RELIABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery.h"
#include "ipc.pb-c.h"
#include "peer.pb-c.h"

struct config;
struct reliable;

struct reliable_io {
    void *ctx;
    /* Route a reliable Data toward d->to_node on channel index ch. Best effort. */
    void (*transmit)(void *ctx, unsigned ch, const Partisan__Peer__Data *d);
    /* Route an ack toward a->origin on channel index ch. Best effort. */
    void (*send_ack)(void *ctx, unsigned ch, const Partisan__Peer__DeliveryAck *a);
    /* Hand a message to the session holding name: DELIVERY_V_DELIVERED,
     * DELIVERY_V_NO_SUCH_NAME, or DELIVERY_RETRY (the session is busy). */
    int (*deliver)(void *ctx, const char *origin, const char *name, const char *channel, const uint8_t *payload,
                   size_t len);
    /* Whether a message for name would be DELIVERY_RETRY now. */
    bool (*busy)(void *ctx, const char *name);
    /* The verdict owed to a sending session (confirm: the send's own
     * reply; otherwise only failures are reported). */
    void (*verdict)(void *ctx, void *sender, uint64_t req_id, bool confirm, Partisan__Ipc__ErrorCode code,
                    const char *error);
    /* Unblock a sender blocked on `handle` (reliable_send's *block). */
    void (*unblock)(void *ctx, const void *handle);
    /* The timer: call reliable_tick at or after `at` (monotonic ms;
     * UINT64_MAX: none needed). */
    void (*arm)(void *ctx, uint64_t at);
};

struct reliable_config {
    const struct config *config;   /* channels; outlives this */
    const char *self;
    uint64_t epoch;                /* this daemon's boot incarnation */
    uint64_t max_message_bytes;    /* the largest payload a peer frame carries */
};

struct reliable_stats {
    struct delivery_stats d;
    uint64_t outstanding;          /* messages from here without a verdict yet */
    uint64_t parked;               /* accepted, waiting for a full window */
    uint64_t failed;               /* ended without delivery: no such name, too large, node left or restarted */
    uint64_t causal_held;
};

struct reliable *reliable_new(const struct reliable_config *cfg, const struct reliable_io *io);
void reliable_free(struct reliable *r);

/* One send on reliable channel index ch to a remote member. `dest_epoch`:
 * what the member table says of it (for a causal stamp before any
 * handshake), 0 unknown. OK: accepted; *deferred says the reply is owed
 * later (confirm); *block, when set, is what the sender must wait on
 * (io->unblock). Otherwise the code and msg to reply with. */
Partisan__Ipc__ErrorCode reliable_send(struct reliable *r, void *sender, uint64_t req_id, bool confirm,
                                       const char *dest, uint64_t dest_epoch, unsigned ch, const char *name,
                                       const void *key, size_t key_len, const void *payload, size_t len,
                                       bool *deferred, const void **block, char *msg, size_t msglen);

/* From the peers, addressed to this node (origin: the node that sent it first). */
void reliable_on_data(struct reliable *r, const char *origin, const char *channel, const Partisan__Peer__Data *d);
void reliable_on_ack(struct reliable *r, const char *from, const Partisan__Peer__DeliveryAck *a);

/* Reachability (delivery.h's peer_up/down/left, causal's epochs). epoch:
 * the handshake's (boot) incarnation, 0 unknown. */
void reliable_peer_up(struct reliable *r, const char *node, uint64_t epoch);
void reliable_peer_down(struct reliable *r, const char *node);
void reliable_peer_left(struct reliable *r, const char *node);
void reliable_local_left(struct reliable *r);

/* The sending session is gone: its verdicts are owed to nobody. */
void reliable_sender_closed(struct reliable *r, const void *sender);

void reliable_tick(struct reliable *r);

void reliable_get_stats(const struct reliable *r, struct reliable_stats *out);

#endif
