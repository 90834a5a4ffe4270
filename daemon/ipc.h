/* ipc: the Unix-socket server; one session per connected application.
 *
 * Frames are u32 length | u32 envelope length | protobuf | raw payload
 * (proto/ipc.proto, read with frame_evbuffer.h). A send's payload is handed
 * to the handler where it lies in the input buffer. Each
 * session's input is drained in batches: every whole frame in the buffer is
 * decoded and handed to the request handler, and replies and deliveries are
 * appended to the session's output buffer, which libevent writes in as few
 * syscalls as it can.
 *
 * Limits: a frame above ipc.max_frame_bytes, a zero-length or undecodable
 * frame, or an output queue above ipc.max_queue_bytes closes that one
 * session with a logged reason; the server goes on serving the others.
 *
 * Backpressure: a handler that finds the destination of a send congested
 * calls ipc_session_block(s, sink); the session then stops reading until
 * ipc_unblock(server, sink) is called (a session's own output draining to
 * drain_bytes unblocks everything waiting on that session). */
#ifndef PARTISAN_IPC_H
#define PARTISAN_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.pb-c.h"

struct event_base;
struct ipc_server;
struct ipc_session;

/* A request may exceed ipc.max_frame_bytes by this much, so that a payload
 * of exactly the maximum fits with its envelope, and a payload just above it
 * gets a TOO_LARGE reply instead of a closed connection. */
#define IPC_ENVELOPE_SLACK 4096

struct ipc_config {
    const char *path;
    unsigned mode;               /* socket file permission bits */
    uint64_t max_frame_bytes;
    uint64_t max_queue_bytes;
    uint64_t drain_bytes;        /* on_drained fires at or below this (0: max_queue_bytes / 4) */
};

struct ipc_handlers {
    void *ctx;
    /* One decoded request; the handler must answer it with exactly one
     * ipc_reply*() call, before returning except for a send with confirm
     * (answered when its verdict comes). The request is valid only during
     * the call. */
    void (*on_request)(void *ctx, struct ipc_session *s, const Partisan__Ipc__IpcRequest *req);
    /* The session is going away (its names must be released). */
    void (*on_close)(void *ctx, struct ipc_session *s);
    /* The session's output fell to drain_bytes after
     * ipc_session_watch_drain() asked for it. */
    void (*on_drained)(void *ctx, struct ipc_session *s);
};

/* Binds and listens on cfg->path. A stale socket file (nothing answers on
 * it) is removed first; if a daemon answers there, or the path is not a
 * socket, fails with a message in err. */
struct ipc_server *ipc_server_new(struct event_base *base, const struct ipc_config *cfg,
                                  const struct ipc_handlers *h, char *err, size_t errlen);

/* Stops accepting, closes every session, removes the socket file. */
void ipc_server_free(struct ipc_server *srv);

/* Replies. `error` may be NULL for OK. */
void ipc_reply(struct ipc_session *s, uint64_t id, Partisan__Ipc__ErrorCode code,
               const char *error);
void ipc_reply_status(struct ipc_session *s, uint64_t id, const Partisan__Ipc__Status *st);
void ipc_reply_members(struct ipc_session *s, uint64_t id, const Partisan__Ipc__Members *m);
void ipc_reply_stats(struct ipc_session *s, uint64_t id, const Partisan__Ipc__Stats *st);
void ipc_reply_fault(struct ipc_session *s, uint64_t id, const char *text);
/* A reliable send accepted earlier failed at its destination (ipc.proto
 * Verdict). A send with confirm gets ipc_reply() instead, whenever its
 * verdict comes: such a request is answered after its handler returned. */
void ipc_verdict(struct ipc_session *s, uint64_t id, Partisan__Ipc__ErrorCode code, const char *error);
/* Answers an accepted send. Such answers are coalesced: one Ack covers
 * every send up to the latest id (ipc.proto, "Replies"), written at the end
 * of a batch of at most 16 requests, else after 2048 sends or 1 ms, and
 * before the answer to the next request that is not a send. A failed send
 * gets ipc_reply() at once. */
void ipc_ack(struct ipc_session *s, uint64_t id);

/* Queues a message for the application. Returns 0, or -1 if the session was
 * closed because its queue passed ipc.max_queue_bytes (the message is then
 * lost, and the close is logged). */
int ipc_deliver(struct ipc_session *s, const char *from_node, const char *name,
                const uint8_t *payload, size_t len, const char *channel);

/* Sends a membership event to every subscribed session. */
void ipc_broadcast_event(struct ipc_server *srv, Partisan__Ipc__MemberEvent__Kind kind,
                         const char *node, const char *address);

void ipc_session_set_subscribed(struct ipc_session *s, bool on);

/* Bytes queued for the application and not yet written to it. */
size_t ipc_session_queued(const struct ipc_session *s);

/* Makes on_drained fire once the output falls to drain_bytes. */
void ipc_session_watch_drain(struct ipc_session *s);

/* Stops reading from s, after the request being handled, until `sink` is
 * unblocked. */
void ipc_session_block(struct ipc_session *s, const void *sink);

/* Resumes every session blocked on sink. */
void ipc_unblock(struct ipc_server *srv, const void *sink);

/* Who is on the other end, as the kernel recorded it when the peer
 * connected (SO_PEERCRED, SO_PEERGROUPS), never as NSS would say now: a
 * lookup could block the loop, and a peer that changes ids after connecting
 * keeps the ones it connected with. ipc_session_uid() is (uid_t)-1 when the
 * kernel would not say, which matches no configured user. */
uid_t ipc_session_uid(const struct ipc_session *s);
/* Whether the peer's primary or any supplementary group is one of gids[0..n).
 * When the kernel would not give the supplementary groups (before Linux
 * 4.13), only the primary group counts. */
bool ipc_session_in_groups(const struct ipc_session *s, const gid_t *gids, size_t n);

/* Bits the request handler keeps per session (what it decided about the
 * peer, what it already logged); 0 at accept, not interpreted here. */
unsigned ipc_session_flags(const struct ipc_session *s);
void ipc_session_set_flags(struct ipc_session *s, unsigned flags);

/* "client 3 (pid 1234)", for log lines. */
const char *ipc_session_label(const struct ipc_session *s);

size_t ipc_session_count(const struct ipc_server *srv);

#endif
