/* channel: what the daemon holds for one lane — one (peer, channel,
 * connection index) — and which of a channel's lanes a message takes.
 *
 * A lane's queue outlives its TCP connection. Frames enter whole (the
 * u32 length | u32 crc32c | body that frame.h writes) and wait here until
 * the connection can take more; channel_queue_handover() then moves whole
 * frames into the socket's output evbuffer and remembers their lengths
 * until they have left it. When that connection fails,
 * channel_queue_recover() takes back every frame the socket had not begun
 * to write, ahead of everything still waiting, so a redialled connection
 * sends them first and in order. The frame the socket was in the middle of
 * and the frames already in the kernel's send queue are what a reset can
 * lose; they are counted as lost.
 *
 * Monotonic queues keep only the newest waiting frame per replacement key
 * (the caller's bytes for destination node, name and partition key): a
 * frame committed with a key that a waiting frame has takes that frame's
 * place in the queue, and the older one is counted as superseded. A frame
 * already handed to a socket is never replaced: the receiver gets it, then
 * the newer one. A gate (channel_queue_set_gate) may hold waiting
 * monotonic frames back — their destination's flow-control window is full
 * — so that they wait here, where newer ones keep replacing them, while
 * frames for other destinations go past them.
 *
 * The queue does no I/O of its own: it only moves bytes between evbuffers.
 */
#ifndef PARTISAN_CHANNEL_H
#define PARTISAN_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct channel_queue;

struct channel_queue_stats {
    uint64_t msgs_sent, bytes_sent;    /* frames handed to a socket, in total */
    uint64_t superseded;               /* monotonic: replaced while waiting */
    uint64_t requeued;                 /* taken back from a failed connection */
    uint64_t lost;                     /* partly written, or in the kernel, when a connection failed */
};

struct channel_queue *channel_queue_new(bool monotonic);
void channel_queue_free(struct channel_queue *q);

/* Space for one frame of exactly len bytes (len >= 8), to be filled and
 * then committed before the next reserve, handover, recover or clear
 * (which drop it). NULL: out of memory, or len beyond a frame's range. */
uint8_t *channel_queue_reserve(struct channel_queue *q, size_t len);

/* Queues the frame written into the reserved space. On a monotonic queue a
 * non-empty key replaces the waiting frame with the same key (the new frame
 * takes its place); an empty key never replaces. `tag` is the caller's,
 * handed back to the gate's sent(). Key and tag are ignored on plain
 * queues. Returns 0, or -1 out of memory, no reservation, or a length field
 * that is not len - 8 (nothing queued; the reservation is gone). */
int channel_queue_commit(struct channel_queue *q, const void *key, size_t key_len, uint64_t tag);

/* Monotonic queues only: handover asks may_send() for each waiting frame
 * (by its key) and leaves the ones it refuses in place; sent() hears of
 * each one that went. Neither may call back into the queue. */
struct channel_gate {
    void *ctx;
    bool (*may_send)(void *ctx, const void *key, size_t key_len);
    void (*sent)(void *ctx, const void *key, size_t key_len, uint64_t tag);
};
void channel_queue_set_gate(struct channel_queue *q, const struct channel_gate *g);

/* Plain queues: frames are written into chains reserved 64 KiB at a time
 * (frame_evbuffer_reserve), not a chain each, so that small frames cost
 * no malloc each. Off by default: handed over to a TLS bufferevent, such
 * shared chains corrupted the stream (seen with libevent 2.1.12 and
 * OpenSSL 3: frames arrived with bad checksums), so only plaintext
 * connections use it. */
void channel_queue_set_chunked(struct channel_queue *q, bool on);

/* Moves whole frames, oldest first, into out until out holds at least
 * `fill` bytes or nothing waits; returns how many frames moved. Every call
 * for one connection passes that connection's output buffer, and nothing
 * else may add to it meanwhile. */
size_t channel_queue_handover(struct channel_queue *q, struct evbuffer *out, size_t fill);

/* The connection whose output buffer is `out` failed. Frames still wholly
 * in out go back to the head of the queue (requeued); the frame partly
 * written and the frames within the last `kernel_unacked` bytes written
 * (the kernel's unacknowledged send queue; 0 if unknown) are counted as
 * lost. out is left empty. */
void channel_queue_recover(struct channel_queue *q, struct evbuffer *out, size_t kernel_unacked);

/* The connection was closed on purpose after its output was written: the
 * handed frames are forgotten, as sent. */
void channel_queue_detach(struct channel_queue *q);

/* Drops everything waiting (the peer is gone); returns how many frames. */
size_t channel_queue_clear(struct channel_queue *q);

size_t channel_queue_msgs(const struct channel_queue *q);   /* waiting */
size_t channel_queue_bytes(const struct channel_queue *q);  /* waiting */
const struct channel_queue_stats *channel_queue_stats(const struct channel_queue *q);

/* Which of n lanes (1..64) a message takes: with a key (key_len > 0),
 * always the same one, hash_bytes(key) % n, on every node; without, the
 * one with the least load (ties broken by rotating *rr). */
unsigned channel_pick_lane(const void *key, size_t key_len, const size_t *loads, unsigned n,
                           unsigned *rr);

#endif
