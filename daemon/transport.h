/* transport: peer TCP connections — listen, dial, handshake, framing, and
 * the lanes that carry each channel's messages.
 *
 * Connections are directional: a node sends only on connections it dialled
 * and receives only on connections it accepted (Partisan does the same), so
 * two nodes never race over which of two crossing connections to keep.
 * Toward each peer this node dials one control connection (overlay gossip,
 * pings, flow-control credit) and, per configured channel, `parallelism`
 * data connections, one per lane. A lane is (peer, channel, index); its
 * queue (channel.h) belongs to the lane, not to a socket, so a data
 * connection that drops while its peer stays connected is redialled and
 * what was still queued goes out on the new one, in order. Data
 * connections are dialled lazily, when their lane first has a message, so
 * channels that are not used cost no descriptors.
 *
 * Frames: u32 length | u32 crc32c | protobuf PeerFrame (proto/peer.proto).
 * The dialler writes Hello; the acceptor answers Welcome or Refuse (another
 * cluster, another protocol version, the acceptor's own name, not the node
 * the dialler expected, a bad channel or connection index) and logs why on
 * both sides. Garbage, an oversized length (checked before any
 * allocation), an undecodable envelope or a control queue past
 * transport.max_queue_bytes closes that one connection, logged and
 * counted. A frame whose CRC-32C does not match closes its connection
 * too (counted in stats.bad_checksum), except on an accepted data
 * connection of a channel marked reliable: there the stream is still
 * framed and the delivery core resends, so the frame is dropped alone
 * (logged at most once per 10 s) and injected corruption does not reset
 * the connection at every frame. Elsewhere what a frame carried (a grant,
 * a plain message's window) cannot be accounted for unless the sender
 * sees the connection fail.
 *
 * Nothing an unknown party sends is trusted or buffered beyond a bound:
 * an accepted connection may send at most 16 KiB (one Hello) before its
 * handshake completes, must do so within handshake_timeout_ms, and only
 * max_pending_connections (max_pending_per_address from one IP) may be
 * mid-handshake at once; one more is closed at once. An accepted
 * connection that brings nothing for idle_timeout_ms is closed.
 *
 * One name, one daemon: a Hello naming a node whose control connection to
 * us is alive (it brought a frame within silence_ms: pings come far more
 * often) under another incarnation is refused with DUPLICATE_NAME, logged
 * at most once every 10 s per transport. A restarted daemon's old
 * connection is almost always closed by its kernel at once; one that died
 * silently is replaced once it has been quiet for silence_ms.
 *
 * The sender of a Data frame is the node the connection's handshake named;
 * a frame whose from_node claims another is dropped and counted (spoofed),
 * unless relayed_senders is set (an overlay that forwards: the connection's
 * node relays frames from their origin). The same holds for a DeliveryAck's
 * from_node.
 *
 * Acks (reliable channels): transport_send_ack() queues PeerFrame{ack} on
 * one of this node's own data lanes of the channel toward the node (data
 * flows dialler -> acceptor, so B acks A's data on B's lanes to A), dialled
 * lazily like data; on_ack reports one that arrives on an accepted data
 * connection. An ack on a connection we dialled is a protocol error (the
 * connection closes); one on an accepted control connection is dropped and
 * counted as bad_frame.
 *
 * Backpressure: transport_send_data() says when the lane it used is past
 * its high mark (half its bound), and on_lane_drained fires when that lane
 * falls below a quarter again, so the caller can stop and resume reading
 * from the applications that feed it. A lane's bound is
 * max_queue_bytes / parallelism (at least one largest frame).
 * transport_pause_data_from() is the last resort against a peer that
 * ignores flow control: it stops reading that peer's data connections
 * (acks on them wait too).
 *
 * Fault injection (transport_set_faults, daemon/faults.h). With no faults
 * object, or one without rules, nothing below costs more than a branch per
 * frame. Otherwise:
 *  - every outgoing frame — control connections' overlay, credit and
 *    handshake (Hello, Welcome, Refuse) frames, data lanes' Data and acks —
 *    passes faults_decide(FAULTS_OUT, peer, channel, ...) with channel the
 *    lane's channel name or FAULTS_CONTROL_CHANNEL. Drop: not queued (a
 *    dropped Hello or Welcome makes the dial time out, as across a cut).
 *    Deliver later: held on a per-transport timer queue ordered by due time
 *    (ties in order of sending) and queued to its lane or connection when
 *    due; if that lane or connection is gone by then the frame is dropped
 *    silently. Delayed frames count in their lane's load (its bound and
 *    backpressure). Duplicate: queued twice (not handshake frames: a second
 *    Hello or Welcome would only close the connection). Corrupt: bits are
 *    flipped after the CRC was computed, past the 8-byte length and CRC
 *    header, so the stream stays framed and the receiver counts the frame as
 *    bad_checksum (dropping it alone on a reliable channel, closing the
 *    connection elsewhere, as above). A frame to a peer whose name is not yet known (a seed
 *    before its Welcome) is not judged. On a monotonic channel a duplicate
 *    replaces its twin while both wait, as any newer frame would.
 *  - every incoming frame from a known peer — on accepted connections from
 *    the Hello on (judged by the node it names), on dialled ones from the
 *    Welcome on — passes faults_decide(FAULTS_IN, ...); a drop discards it
 *    before it is acted on. With the outgoing side this cuts a partition in
 *    both directions, so no control connection comes up across one; once
 *    the rule is cleared the caller's redials succeed again.
 * The faults core counts everything injected; the transport adds only
 * bad_checksum on the receiving side. Random draws come from a xorshift64*
 * state seeded from the clock and the pid.
 */
#ifndef PARTISAN_TRANSPORT_H
#define PARTISAN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.pb-c.h"

struct event_base;
struct faults;
struct transport;

/* One configured channel; index 0 is "default". */
struct transport_channel {
    const char *name;
    unsigned parallelism;           /* 1..CONFIG_PARALLELISM_MAX */
    bool monotonic;
    bool reliable;                  /* acknowledged end to end: a corrupted frame may be dropped alone */
};

#define TRANSPORT_PROTOCOL_VERSION 2   /* 2: raw payload after the envelope (peer.proto) */

struct transport_config {
    const char *cluster;
    const char *node;
    const char *advertise;          /* host:port others dial us at */
    uint64_t incarnation;
    const char *listen_host;
    uint16_t listen_port;           /* 0: ephemeral */
    uint32_t connect_timeout_ms;    /* TCP connect + handshake, ours */
    uint32_t handshake_timeout_ms;  /* an accepted connection's Hello (0: connect_timeout_ms) */
    uint32_t idle_timeout_ms;       /* an accepted connection that brings nothing (0: 10 min) */
    uint32_t max_pending_connections;   /* accepted, mid-handshake, at most (0: 256) */
    uint32_t max_pending_per_address;   /* the same from one IP address (0: 64) */
    uint32_t silence_ms;            /* a control connection quiet this long is taken as gone (0: 3000) */
    uint64_t max_frame_bytes;
    uint64_t max_queue_bytes;       /* per peer and channel, shared by its lanes */
    const struct transport_channel *channels;   /* NULL/0: one "default" channel */
    /* All three set: every link is TLS 1.3 with mutual certificates from
     * this CA, and a peer's node name must match its certificate (tls.h).
     * NULL or "": plaintext. */
    const char *tls_ca_file, *tls_cert_file, *tls_key_file;
    size_t n_channels;
    bool relayed_senders;           /* Data from_node may be another member than the connection's */
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
    /* An overlay message (PeerFrame.overlay) from `from`, on one of its
     * connections to us; bytes valid during the call. */
    void (*on_overlay)(void *ctx, const char *from, const uint8_t *msg, size_t len);
    /* An application message from `from` (the connection's node) on
     * `channel` (the connection's). Pointers valid during the call. */
    void (*on_data)(void *ctx, const char *from, const char *channel, const Partisan__Peer__Data *d);
    /* Flow-control credit from `from`. */
    void (*on_credit)(void *ctx, const char *from, const Partisan__Peer__Credit *c);
    /* A lane that transport_send_data() reported congested fell below its
     * low mark, or went away with its peer. May be called from inside
     * transport_disconnect(). */
    void (*on_lane_drained)(void *ctx, const void *lane);
    /* A data connection to node dropped while messages had reached its
     * kernel: `lost` of them may never arrive. */
    void (*on_data_lost)(void *ctx, const char *node, uint64_t lost);
    /* Monotonic channels: may a waiting message for (node, name) go to the
     * socket now? (NULL: always.) Those held back stay queued, where newer
     * ones replace them; transport_kick() asks again. */
    bool (*may_send)(void *ctx, const char *node, const char *name);
    /* Before welcoming a dialler: 0, or the Refuse reason to answer with
     * (PARTISAN__PEER__REFUSE__REASON__LEFT for a node removed from the
     * cluster). NULL: welcome everyone who passes the other checks. */
    int (*check_hello)(void *ctx, const char *node, uint64_t incarnation);
    /* A peer refused our control connection because this node was removed
     * from the cluster. */
    void (*on_removed)(void *ctx, const char *by_node);
    /* A monotonic message for (node, name) went to the socket. */
    void (*on_monotonic_sent)(void *ctx, const char *node, const char *name, uint64_t payload_len);
    /* A DeliveryAck from `from` (the connection's node) on one of its data
     * connections of `channel` to us. Pointers valid during the call. */
    void (*on_ack)(void *ctx, const char *from, const char *channel, const Partisan__Peer__DeliveryAck *a);
};

struct transport_stats {
    uint64_t accepted, dialled;
    uint64_t refused_in, refused_out;       /* handshakes refused, by us / by the peer */
    uint64_t bad_checksum;                  /* frames with a CRC-32C mismatch */
    uint64_t bad_frame, too_large, queue_overflow;
    uint64_t frames_in, frames_out;
    uint64_t spoofed;                       /* Data frames claiming another sender */
    uint64_t pending_refused;               /* accepted connections closed at once: too many mid-handshake */
    uint64_t handshake_timeouts, idle_closed;
    uint64_t duplicate_names;               /* Hellos refused: another live daemon holds that name */
};

/* Traffic of one (peer, channel); sent = this node toward the peer. */
struct transport_channel_stats {
    const char *peer;
    const char *channel;
    uint32_t connections;
    uint64_t msgs_sent, bytes_sent, msgs_received, bytes_received;
    uint64_t queued_msgs, queued_bytes;
    uint64_t superseded, paused, requeued, lost, reconnects;
};

/* Creates the transport and binds the listener. Returns NULL after logging
 * the cause (address in use, bad address, unusable TLS files). */
struct transport *transport_new(struct event_base *base, const struct transport_config *cfg,
                                const struct transport_callbacks *cb);
/* Closes everything without invoking any callback. Not from inside one of
 * this transport's own callbacks. */
void transport_free(struct transport *t);

/* The bound listen port (the real one when 0 was asked for). */
uint16_t transport_listen_port(const struct transport *t);

/* Sets the advertised address sent in handshakes (once the port is known). */
void transport_set_advertise(struct transport *t, const char *advertise);

/* Dials the control connection to address. expect_node "" for a
 * seed whose name is unknown. A dial to a node already connected or being
 * dialled is ignored. Completion is reported through the callbacks, never
 * from inside this call. */
void transport_connect(struct transport *t, const char *expect_node, const char *address);

/* Closes our outbound connections to node and the inbound ones from it, and
 * cancels a dial to it in progress. What the caller asked for is not
 * reported back: no on_disconnected or on_connect_failed follows. */
void transport_disconnect(struct transport *t, const char *node);

/* Queues an overlay message (the core's own encoding, carried as
 * PeerFrame.overlay) on the control connection to node. Returns 0, or -1
 * if there is no established connection to node. */
int transport_send_overlay(struct transport *t, const char *node, const uint8_t *msg, size_t len);

/* Offers node's monotonic lanes' held-back messages to the sockets again. */
void transport_kick(struct transport *t, const char *node);

/* Flow-control credit to node, on the control connection. 0, or -1. */
int transport_send_credit(struct transport *t, const char *node, const char *name, uint64_t bytes);

/* Queues an application message toward node on channel (an index into the
 * configured channels); every field of d is carried (the reliable ones,
 * 8..12, too), the payload raw after the envelope. The lane: with a partition key (key_len > 0)
 * always the same of the channel's connections; without, the least
 * loaded. Returns 0 — *congested is then the lane if it is past its high
 * mark (on_lane_drained follows), else NULL; -1 if node is not connected
 * or the channel does not exist; -2 if the lane is at its bound (nothing
 * queued: the caller reports a retryable error). */
int transport_send_data(struct transport *t, const char *node, unsigned channel, const void *key,
                        size_t key_len, const Partisan__Peer__Data *d, const void **congested);

/* Queues a DeliveryAck toward node on channel, on the least loaded of the
 * channel's lanes (the data lanes this node dialled to node; dialled if
 * need be). Returns 0; -1 if node is not connected, the channel does not
 * exist or the ack is above max_frame_bytes; -2 if the lane is at its bound
 * (nothing queued). */
int transport_send_ack(struct transport *t, const char *node, unsigned channel,
                       const Partisan__Peer__DeliveryAck *a);

/* Injects the faults of f (NULL: none) into every frame from now on. Not
 * owned: the caller keeps f alive while it is set, and may add or clear
 * rules at any time. Frames already held for a delay still go when due. */
void transport_set_faults(struct transport *t, struct faults *f);

/* Stops reading application messages from node (its data connections to
 * us), so that TCP flow control carries a slow local receiver's pace back to
 * the sender; control traffic (pings, gossip) keeps flowing. Frames already
 * read stay buffered. Resume undoes it; both are idempotent. */
void transport_pause_data_from(struct transport *t, const char *node);
void transport_resume_data_from(struct transport *t, const char *node);

const struct transport_stats *transport_get_stats(const struct transport *t);

/* Accepted connections mid-handshake now. */
size_t transport_pending_connections(const struct transport *t);

/* Calls fn once per (peer, channel) that has carried or queued anything. */
void transport_foreach_channel_stats(const struct transport *t,
                                     void (*fn)(void *ctx, const struct transport_channel_stats *row),
                                     void *ctx);

#endif
