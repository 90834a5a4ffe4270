/* libpartisan-client: talk to the local partisand over its Unix socket.
 *
 * Threads: a partisan_client handle is not thread-safe; use one per thread,
 * or serialise calls on a handle yourself. Distinct handles are independent.
 *
 * Errors: every call that can fail returns 0 or a negative PARTISAN_E* code;
 * partisan_strerror() names it, and partisan_last_error() gives the daemon's
 * own message for the last failed request on that handle (e.g. which name is
 * taken).
 *
 * Sending never waits for a round trip: partisan_send() queues the request
 * and returns. The daemon's answer (ok or an error) is collected later; a
 * failed earlier send is reported by partisan_flush(), or by the next
 * partisan_send() as PARTISAN_EASYNC with the detail in
 * partisan_last_error(), and each failure is kept with the send's sequence
 * number for partisan_next_failure(). partisan_send_sync() waits for its own
 * answer.
 *
 * When bytes leave the process (batching at the source): a send is written
 * at once unless the handle already wrote within the last 100 us, so a lone
 * send never waits for company. A send that follows another that closely
 * joins the pending bytes instead, and they all go out in one write when
 * they pass 64 KiB, with the next send more than 100 us after the last
 * write, or at the next call on the handle that waits on the socket
 * (partisan_flush(), partisan_recv(), any *_sync or request/reply call, a
 * blocking send that finds 1 MiB unwritten). So an application that sends
 * a burst and then does something other than call the library must call
 * partisan_flush() (with timeout 0 if it does not want to wait for the
 * answers) for the tail of the burst to leave.
 * partisan_close() makes one last write of what is pending, without
 * waiting: call partisan_flush() first to know everything went.
 *
 * Non-blocking mode (partisan_set_nonblocking()): partisan_send() never
 * waits; where a blocking send would wait it returns PARTISAN_EBUSY without
 * queueing the message, and the caller retries once partisan_fd() is
 * writable (poll it for writing while partisan_wants_write() says so, and
 * call partisan_flush(c, 0) when it is, which writes what the socket takes
 * and reads what has come).
 *
 * Memory: every struct the library returns through an out-pointer is owned by
 * the caller and released with the matching *_free() function.
 *
 * Timeouts: in milliseconds; -1 waits for ever, 0 does not wait.
 */
#ifndef PARTISAN_H
#define PARTISAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARTISAN_DEFAULT_SOCKET "/run/partisan/partisand.sock"

enum partisan_error {
    PARTISAN_OK = 0,
    PARTISAN_ENODAEMON = -1,    /* nothing answers on the socket path */
    PARTISAN_ETIMEDOUT = -2,    /* the wait ran out */
    PARTISAN_ECLOSED = -3,      /* the daemon closed the connection */
    PARTISAN_EPROTO = -4,       /* the daemon sent something undecodable */
    PARTISAN_ENOMEM = -5,
    PARTISAN_EINVAL = -6,       /* a bad argument (NULL, empty name, too long) */
    PARTISAN_ENAMETAKEN = -7,   /* register: another application holds the name */
    PARTISAN_ENONAME = -8,      /* send: nothing registered under that name */
    PARTISAN_ENONODE = -9,      /* send/leave: no such member */
    PARTISAN_ENODEDOWN = -10,   /* send: the member is unreachable now */
    PARTISAN_ENOTOWNER = -11,   /* unregister: the name is not this client's */
    PARTISAN_ETOOBIG = -12,     /* the payload exceeds the daemon's limit */
    PARTISAN_EUNSUPPORTED = -13,/* the daemon does not know this request */
    PARTISAN_EBUSY = -14,       /* retryable: a queue toward the destination is full */
    PARTISAN_EBADADDR = -15,    /* join: address malformed or unresolvable */
    PARTISAN_EIO = -16,         /* a socket error; see errno */
    PARTISAN_EASYNC = -17,      /* an earlier partisan_send() failed; see partisan_last_error() */
    PARTISAN_EINTERNAL = -18,   /* the daemon failed internally */
    PARTISAN_ELEFT = -19,       /* this node has left the cluster; restart partisand to rejoin */
    PARTISAN_ENOCHANNEL = -20,  /* send: no channel of that name in the daemon's config */
    PARTISAN_EPERM = -21,       /* the daemon's ipc.* settings do not allow this client the request;
                                   partisan_last_error() says who may */
    PARTISAN_ERESTARTED = -22,  /* reliable send: the destination restarted before confirming; the
                                   message may have reached its previous run, not the new one */
};

/* Longest partition key, bytes. */
#define PARTISAN_KEY_MAX 255
/* Longest channel name, bytes. */
#define PARTISAN_CHANNEL_MAX 63

typedef struct partisan_client partisan_client;

/* Connects to the daemon at `path`; NULL means $PARTISAN_SOCKET, else
 * PARTISAN_DEFAULT_SOCKET. On success *out is a new handle. */
int partisan_connect(const char *path, partisan_client **out);

/* Closes the connection and frees the handle; names it registered are
 * released by the daemon. NULL is ignored. */
void partisan_close(partisan_client *c);

/* The socket's descriptor, for poll/epoll/libevent. It becomes readable when
 * a message, event or reply arrives; then call partisan_recv() with timeout 0
 * until it returns PARTISAN_ETIMEDOUT. Do not read or write it yourself. */
int partisan_fd(const partisan_client *c);

/* Non-blocking sends (on != 0), see above; the default is blocking. Calls
 * that wait for an answer (the *_sync ones, register, status, ...) still
 * wait, for at most their timeout. */
int partisan_set_nonblocking(partisan_client *c, int on);

/* 1 while bytes are pending in the library: poll partisan_fd() for
 * writability too, and call partisan_flush(c, 0) when it is writable. */
int partisan_wants_write(const partisan_client *c);

/* The sequence number the daemon's answer to the last successful
 * partisan_send() / partisan_send_with() on this handle will carry: they
 * increase along a handle. 0 before any. */
uint64_t partisan_last_seq(const partisan_client *c);

/* A pipelined send that the daemon refused. */
struct partisan_failure {
    uint64_t seq;               /* as partisan_last_seq() gave it right after the send */
    int code;                   /* PARTISAN_E* */
    char message[240];          /* the daemon's reason */
};

/* Takes the oldest failure report not yet taken: 1 and *out filled, or 0
 * when there is none. Reports are kept from the moment the answer is read
 * (by any call on the handle); at most 1024 are kept, the newest, and the
 * rest counted in partisan_failures_dropped(). Taking the last one also
 * clears the PARTISAN_EASYNC that the next send would otherwise return. */
int partisan_next_failure(partisan_client *c, struct partisan_failure *out);
uint64_t partisan_failures_dropped(const partisan_client *c);

/* Messages and events already read from the socket and waiting in the
 * library's queue. A blocking call or partisan_send() may read (and queue)
 * deliveries while it waits, after which partisan_fd() need not become
 * readable for them: an event loop should call partisan_recv() with timeout
 * 0 while this is non-zero after any call on the handle.
 * This queue lives in the application's memory and is not bounded: an
 * application that registers a busy name must keep calling partisan_recv(),
 * or hold the name on a handle of its own that does nothing else (then the
 * daemon's backpressure, not the application's memory, absorbs the excess). */
size_t partisan_pending(const partisan_client *c);

/* The daemon's message for the last failed request, or "" if none. Valid
 * until the next call on the handle. */
const char *partisan_last_error(const partisan_client *c);

const char *partisan_strerror(int err);

int partisan_register(partisan_client *c, const char *name, int timeout_ms);
int partisan_unregister(partisan_client *c, const char *name, int timeout_ms);

/* Sends payload to the application that registered `name` on `node`.
 * Pipelined: returns once the request is queued (written at once, or with
 * the batch it joined: see "When bytes leave the process" above). When 1 MiB
 * is unwritten it waits, for at most its own bounded internal timeout, for
 * the daemon to drain the socket, which is how backpressure reaches the
 * sender; in non-blocking mode it returns PARTISAN_EBUSY instead.
 * PARTISAN_EASYNC, PARTISAN_EBUSY and PARTISAN_ETIMEDOUT mean this message
 * was not sent (an earlier one failed, the library would have had to wait,
 * or the daemon took nothing for 30 s); it may be sent again. An EASYNC is
 * reported once: the next call proceeds normally. On 0,
 * partisan_last_seq() is this send's sequence number. */
int partisan_send(partisan_client *c, const char *node, const char *name,
                  const void *payload, size_t len);

/* Same, then waits for the daemon's verdict on this very send. */
int partisan_send_sync(partisan_client *c, const char *node, const char *name,
                       const void *payload, size_t len, int timeout_ms);

/* Per-send options. A zeroed struct (or NULL) means the "default" channel
 * and no partition key, exactly as partisan_send(). */
struct partisan_send_opts {
    const char *channel;        /* NULL or "": "default"; else a name from the daemon's "channels" */
    const void *key;            /* partition key: messages with one key keep their order */
    size_t key_len;             /* 0 (no key) .. PARTISAN_KEY_MAX */
    /* partisan_send_sync_with() on a reliable channel: 1 waits until the
     * destination's daemon has handed the message to the application
     * holding the name (0), or knows it cannot: PARTISAN_ENONAME (nobody
     * holds it there), PARTISAN_ENONODE (the node left),
     * PARTISAN_ERESTARTED, PARTISAN_ETOOBIG. On another channel it is
     * PARTISAN_EINVAL. Ignored by the pipelined partisan_send_with(). */
    int confirm;
};

/* partisan_send() and partisan_send_sync() with options. An unknown
 * channel is PARTISAN_ENOCHANNEL (from _sync_with; from _with, reported
 * like any failed pipelined send).
 *
 * Reliable channels (config "reliable": true): a message the daemon
 * accepted is delivered exactly once and in order while both daemons run,
 * across lost connections and partitions. A pipelined send is answered as
 * soon as the local daemon has it; if it then turns out undeliverable (no
 * such name there, node left or restarted), that is reported as any
 * failed pipelined send (PARTISAN_EASYNC, partisan_next_failure()), which
 * may come after partisan_flush() returned. */
int partisan_send_with(partisan_client *c, const char *node, const char *name,
                       const void *payload, size_t len, const struct partisan_send_opts *opts);
int partisan_send_sync_with(partisan_client *c, const char *node, const char *name,
                            const void *payload, size_t len, const struct partisan_send_opts *opts,
                            int timeout_ms);

/* Writes every pending byte and waits until every queued request is
 * answered. Returns 0 when all were written and answered and none failed
 * unreported; the first error among answers to earlier partisan_send()
 * calls not yet reported (detail in partisan_last_error(), each failure in
 * partisan_next_failure()); or PARTISAN_ETIMEDOUT when the time ran out
 * first (with timeout 0: whatever the socket took was written, whatever
 * had come was read, and some remain unwritten or unanswered). A 0 means
 * the daemon accepted every send, not that the receivers read them. */
int partisan_flush(partisan_client *c, int timeout_ms);

enum partisan_msg_kind {
    PARTISAN_MSG_DATA = 0,      /* a payload sent to a name this client holds */
    PARTISAN_MSG_EVENT = 1,     /* a membership event (after partisan_subscribe) */
};

enum partisan_event_kind {
    PARTISAN_EVENT_JOINED = 0,
    PARTISAN_EVENT_LEFT = 1,
    PARTISAN_EVENT_UP = 2,
    PARTISAN_EVENT_DOWN = 3,
    /* Only from an overlay with partial views (HyParView): node became,
     * or stopped being, a direct neighbour of this node. */
    PARTISAN_EVENT_NEIGHBOR_UP = 4,
    PARTISAN_EVENT_NEIGHBOR_DOWN = 5,
};

struct partisan_message {
    enum partisan_msg_kind kind;
    /* PARTISAN_MSG_DATA */
    char *from_node;            /* sender's node */
    char *name;                 /* the registered name it was sent to */
    uint8_t *payload;
    size_t len;
    char *channel;              /* the channel it travelled on ("default" for local sends without one) */
    /* PARTISAN_MSG_EVENT */
    enum partisan_event_kind event;
    char *node;
    char *address;
};

/* Waits for the next message or event. On success *out is the caller's, to
 * release with partisan_message_free(). PARTISAN_ETIMEDOUT when none came. */
int partisan_recv(partisan_client *c, struct partisan_message **out, int timeout_ms);
void partisan_message_free(struct partisan_message *m);

/* Membership events: after subscribing, partisan_recv() also returns
 * PARTISAN_MSG_EVENT messages, in the order the daemon saw the changes. */
int partisan_subscribe(partisan_client *c, int timeout_ms);
int partisan_unsubscribe(partisan_client *c, int timeout_ms);

struct partisan_status {
    char *node;
    char *cluster;
    char *overlay;
    char *listen;               /* host:bound_port */
    char *socket;
    char *version;
    uint64_t uptime_s;
    uint32_t members;
    uint32_t members_up;
    int left;                   /* 1: this node has left the cluster */
    uint64_t undeliverable;     /* messages from other nodes dropped here: nobody held the name */
    uint64_t peer_bad_frames;   /* peer frames with a bad checksum, or connections closed (garbage, oversized) */
    uint64_t peer_refused;      /* peer handshakes refused (other cluster, version, name) */
    uint64_t peer_queue_full;   /* sends refused because a peer's queue was full */
    uint32_t peer_pending;      /* accepted peer connections mid-handshake now */
    uint64_t peer_pending_refused;      /* closed at once: too many mid-handshake */
    uint64_t peer_handshake_timeouts;   /* closed: no Hello in time */
    uint64_t peer_idle_closed;          /* closed: idle for transport.idle_timeout_ms */
    uint64_t peer_duplicate_names;      /* refused: another live daemon holds that node name */
};
int partisan_status(partisan_client *c, struct partisan_status **out, int timeout_ms);
void partisan_status_free(struct partisan_status *s);

struct partisan_member {
    char *name;
    char *address;
    uint64_t incarnation;
    int left;                   /* 1: membership "left" */
    int up;                     /* 1: reachable from this node now */
    int neighbor;               /* 1: a direct neighbour of this node (full mesh: every member up) */
};
/* all: also list members that left. *out is an array of *n members. */
int partisan_members(partisan_client *c, int all, struct partisan_member **out,
                     size_t *n, int timeout_ms);
void partisan_members_free(struct partisan_member *m, size_t n);

/* Traffic per peer and channel (see ChannelStats in ipc.proto). */
struct partisan_channel_stats {
    char *peer;
    char *channel;
    uint32_t connections;       /* outbound connections of the channel open now */
    uint64_t msgs_sent, bytes_sent;
    uint64_t msgs_received, bytes_received;
    uint64_t queued_msgs, queued_bytes;   /* waiting in the daemon */
    uint64_t superseded;        /* monotonic channels: replaced by a newer message */
    uint64_t paused;            /* times senders waited for this channel's queue to the peer */
    uint64_t requeued;          /* moved to a new connection after one dropped */
    uint64_t lost;              /* had reached the kernel of a connection that then dropped */
    uint64_t reconnects;
};
struct partisan_stats {
    struct partisan_channel_stats *channels;
    size_t n_channels;
    uint64_t flow_waits;        /* times a sender waited for a remote name's window */
    uint64_t spoofed;           /* peer frames dropped: claimed another sender */
    uint64_t undeliverable;
    uint64_t relayed;           /* overlays that relay (HyParView): handed on toward another node */
    uint64_t relay_dropped;     /* ... that could not be (no route, hop limit, next queue full) */
    /* Reliable channels: this node as origin, then as destination. */
    uint64_t reliable_sent;             /* messages first transmitted */
    uint64_t reliable_retransmitted;    /* transmitted again */
    uint64_t reliable_delivered;        /* received and handed to an application here */
    uint64_t reliable_duplicates;       /* received again and dropped */
    uint64_t reliable_failed;           /* ended without delivery: no such name, node left or restarted */
    uint64_t reliable_outstanding;      /* sent from here, verdict not yet known */
    uint64_t causal_held;               /* causal channels: waiting for what precedes them */
    uint64_t bad_checksum;              /* peer frames dropped: CRC-32C mismatch */
    /* Injected faults (partisan_fault): frames acted on since start. */
    uint64_t fault_dropped, fault_delayed, fault_duplicated, fault_reordered, fault_corrupted,
        fault_partitioned;
    uint32_t faults_active;             /* rules in force now */
};
int partisan_stats(partisan_client *c, struct partisan_stats **out, int timeout_ms);
void partisan_stats_free(struct partisan_stats *s);

/* Asks the daemon to join the cluster through the member at "host:port". */
int partisan_join(partisan_client *c, const char *address, int timeout_ms);
/* node NULL or "": this node leaves for good; else removes that member. */
int partisan_leave(partisan_client *c, const char *node, int timeout_ms);
/* Delivers payload to whoever holds name on every node of the cluster, this
 * one included, once each, as a PARTISAN_MSG_DATA from this node. Returns
 * once this node has sent it on; best effort: a node down or cut off then
 * misses it. */
int partisan_broadcast(partisan_client *c, const char *name, const void *payload, size_t len, int timeout_ms);

/* Purges NODE for good, cluster-wide (admin): it is removed as by leave if
 * still alive, and its tombstone expires on every node within a few gossip
 * rounds (20 x overlay.gossip_interval_ms, at least 2 s), after which no
 * node lists, stores or dials it. PARTISAN_ENONODE if not known;
 * PARTISAN_EINVAL for this node itself. */
int partisan_forget(partisan_client *c, const char *node, int timeout_ms);

/* Fault injection (admin), in every build and off until asked for: argv
 * are the words of `partisanctl fault ...` ("drop", "--peer", "n2", "0.2";
 * "list", "--json"; "clear"). On 0, *text (if not NULL) is the daemon's
 * answer, malloc'd, for the caller to free(); on PARTISAN_EINVAL
 * partisan_last_error() says what was wrong with the words. */
int partisan_fault(partisan_client *c, int argc, const char *const *argv, char **text, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
