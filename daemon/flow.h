/* flow: flow control per destination name, with credit windows in the
 * spirit of HTTP/2 stream windows. Sans-IO: the caller sends the grants
 * and blocks and resumes its own senders.
 *
 * Sender side, per (remote node, name): the cost of the messages sent and
 * not yet granted back. A message is always accepted (never split or
 * refused for flow control); once the outstanding cost reaches the window,
 * flow_sent() says so and the caller makes that sender wait, keyed by the
 * returned handle, until the `reopen` callback names the handle again.
 * So one stalled name holds back only the senders writing to it, and the
 * receiving daemon buffers at most one window (plus one message per
 * waiting sender) per sending node for it.
 *
 * Receiver side, per (sending node, name): the cost received and not yet
 * granted. Grants are batched: `grant` is called once the owed cost
 * reaches a window/8. A message handed to a congested local receiver is
 * held: its grant waits until flow_release() for that receiver.
 *
 * A message costs flow_cost(payload length). State of a node that goes
 * down or whose connection reset is forgotten on both sides
 * (flow_forget_node): anything lost with it would otherwise shrink the
 * window for ever, at the price of up to one more window in flight. */
#ifndef PARTISAN_FLOW_H
#define PARTISAN_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FLOW_MSG_OVERHEAD 64

static inline uint64_t flow_cost(size_t payload_len) { return (uint64_t)payload_len + FLOW_MSG_OVERHEAD; }

struct flow;

struct flow_callbacks {
    void *ctx;
    /* Send a grant of `bytes` for `name` to `node`. */
    void (*grant)(void *ctx, const char *node, const char *name, uint64_t bytes);
    /* Senders waiting on `handle` may go on (the window reopened, or its
     * node was forgotten). The handle is not valid afterwards. */
    void (*reopen)(void *ctx, const void *handle);
};

/* NULL if window is 0 (it could never reopen) or out of memory. */
struct flow *flow_new(uint64_t window, const struct flow_callbacks *cb);
void flow_free(struct flow *f);

/* Sender side. Accounts a message of `cost` to (node, name). Returns NULL
 * while the window has room; once it is full, a handle to wait on (the same
 * one for every sender to that destination until it reopens). Out of
 * memory: NULL (the message goes untracked). */
const void *flow_sent(struct flow *f, const char *node, const char *name, uint64_t cost);

/* Sender side: a grant from node. May call reopen. */
void flow_granted(struct flow *f, const char *node, const char *name, uint64_t bytes);

/* Receiver side. A message of `cost` from node for name was handled:
 * held_on NULL when it was delivered to a receiver that keeps up or
 * dropped (no such name); else the congested receiver it was queued for.
 * May call grant. */
void flow_received(struct flow *f, const char *node, const char *name, uint64_t cost,
                   const void *held_on);

/* Receiver side: the receiver `held_on` caught up or went away: what was
 * held for it becomes owed, and owed amounts at the threshold are granted. */
void flow_release(struct flow *f, const void *held_on);

/* Forgets everything about node, both sides; reopens its waiting handles. */
void flow_forget_node(struct flow *f, const char *node);

/* Sender side: is (node, name) waiting for a grant now? */
bool flow_is_waiting(const struct flow *f, const char *node, const char *name);

uint64_t flow_window(const struct flow *f);
size_t flow_entries(const struct flow *f);   /* both sides, for tests and stats */

#endif
