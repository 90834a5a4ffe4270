/* transport: peer TCP connections — listen, dial, handshake, framing.
 *
 * Connections are directional: a node sends only on connections it dialled
 * and receives only on connections it accepted (Partisan does the same), so
 * two nodes never race over which of two crossing connections to keep.
 * Toward each peer this node dials one control connection (overlay gossip and
 * pings) and one data connection (application messages), so bulk data never
 * delays failure detection.
 *
 * Frames: u32 length | u32 crc32c | protobuf PeerFrame (proto/peer.proto).
 * The dialler writes Hello; the acceptor answers Welcome or Refuse (another
 * cluster, another protocol version, the acceptor's own name, not the node
 * the dialler expected) and logs why on both sides. A bad checksum, garbage,
 * an oversized length (checked before any allocation) or a write queue past
 * transport.max_queue_bytes closes that one connection, logged and counted.
 *
 * Backpressure: transport_data_congested() says when a peer's data
 * connection's queue is past its high mark (half of max_queue_bytes); the
 * on_drained callback fires when it falls below the low mark again, so the
 * IPC layer can stop and resume reading from the applications that feed it.
 * The other way round, transport_pause_data_from() stops reading a peer's
 * messages while the local application they go to is not keeping up.
 */
#ifndef PARTISAN_TRANSPORT_H
#define PARTISAN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.pb-c.h"

struct event_base;
struct transport;

#define TRANSPORT_PROTOCOL_VERSION 1

struct transport_config {
    const char *cluster;
    const char *node;
    const char *advertise;          /* host:port others dial us at */
    uint64_t incarnation;
    const char *listen_host;
    uint16_t listen_port;           /* 0: ephemeral */
    uint32_t connect_timeout_ms;    /* TCP connect + handshake */
    uint64_t max_frame_bytes;
    uint64_t max_queue_bytes;
};

struct transport_callbacks {
    void *ctx;
    /* Our outbound control connection to `node` completed its handshake.
     * address is the one given to transport_connect(). */
    void (*on_connected)(void *ctx, const char *node, const char *address, uint64_t incarnation);
    /* A dial started by transport_connect() failed (refused, timed out,
     * refused by the peer's handshake). expect_node as passed ("" for a seed). */
    void (*on_connect_failed)(void *ctx, const char *expect_node, const char *address,
                              const char *reason);
    /* Our established outbound control connection to `node` was lost. */
    void (*on_disconnected)(void *ctx, const char *node);
    /* A gossip frame from `from`, on one of its connections to us. */
    void (*on_gossip)(void *ctx, const char *from, const Partisan__Peer__Gossip *g);
    /* An application message from `from`. Pointers valid during the call. */
    void (*on_data)(void *ctx, const char *from, const Partisan__Peer__Data *d);
    /* The data queue toward `node` fell below its low mark. */
    void (*on_drained)(void *ctx, const char *node);
};

struct transport_stats {
    uint64_t accepted, dialled;
    uint64_t refused_in, refused_out;       /* handshakes refused, by us / by the peer */
    uint64_t bad_checksum, bad_frame, too_large, queue_overflow;
    uint64_t frames_in, frames_out;
};

/* Creates the transport and binds the listener. Returns NULL after logging
 * the cause (address in use, bad address). */
struct transport *transport_new(struct event_base *base, const struct transport_config *cfg,
                                const struct transport_callbacks *cb);
/* Closes everything without invoking any callback. Not from inside one of
 * this transport's own callbacks. */
void transport_free(struct transport *t);

/* The bound listen port (the real one when 0 was asked for). */
uint16_t transport_listen_port(const struct transport *t);

/* Sets the advertised address sent in handshakes (once the port is known). */
void transport_set_advertise(struct transport *t, const char *advertise);

/* Dials the control and data connections to address. expect_node "" for a
 * seed whose name is unknown. A dial to a node already connected or being
 * dialled is ignored. Completion is reported through the callbacks, never
 * from inside this call. */
void transport_connect(struct transport *t, const char *expect_node, const char *address);

/* Closes our outbound connections to node and the inbound ones from it, and
 * cancels a dial to it in progress. What the caller asked for is not
 * reported back: no on_disconnected or on_connect_failed follows. */
void transport_disconnect(struct transport *t, const char *node);

/* Queues a gossip frame on the control connection to node. Returns 0, or -1
 * if there is no established connection to node. */
int transport_send_gossip(struct transport *t, const char *node, const Partisan__Peer__Gossip *g);

/* Queues an application message on the data connection to node.
 * Returns 0; -1 if not connected; -2 if the queue is at its hard limit (the
 * message is not queued: the caller reports a retryable error). */
int transport_send_data(struct transport *t, const char *node, const Partisan__Peer__Data *d);

/* True while the data queue toward node is above its high mark. */
bool transport_data_congested(const struct transport *t, const char *node);

/* Stops reading application messages from node (its data connections to
 * us), so that TCP flow control carries a slow local receiver's pace back to
 * the sender; control traffic (pings, gossip) keeps flowing. Frames already
 * read stay buffered. Resume undoes it; both are idempotent. */
void transport_pause_data_from(struct transport *t, const char *node);
void transport_resume_data_from(struct transport *t, const char *node);

const struct transport_stats *transport_get_stats(const struct transport *t);

#endif
