/* transport_internal: what the transport's three files share (the
 * contract for everyone else is transport.h): the connection, peer and lane
 * structs, and the functions one file offers the others.
 *   transport.c         connections: lifecycle, handshake, reading, dialling,
 *                       listening, the transport itself
 *   transport_lanes.c   lanes: queues toward each peer, choosing one,
 *                       sending, refilling a data connection, redialling
 *   transport_faults.c  fault injection: judging frames, holding them */
#ifndef PARTISAN_TRANSPORT_INTERNAL_H
#define PARTISAN_TRANSPORT_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/util.h>

#include "channel.h"
#include "config.h"
#include "faults.h"
#include "pbarena.h"
#include "transport.h"

struct lingering;

#define TP_NAME_MAX 256
#define TP_ADDR_MAX 320
#define TP_CHANNEL_MAX (CONFIG_CHANNEL_NAME_MAX + 1)
#define TP_REASON_MAX 1024
#define TP_DATA_REDIAL_MS 1000
#define TP_DEFAULT_MAX_FRAME (4u << 20)
#define TP_DEFAULT_MAX_QUEUE (16u << 20)
#define TP_DEFAULT_TIMEOUT_MS 5000u
/* Frames handled per read callback: enough that one callback takes every
 * whole frame of a 256 KiB read of small messages. */
#define TP_FRAMES_PER_READ 8192
/* Nor more bytes than this: a connection carrying 1 MiB messages would
 * otherwise keep the loop for milliseconds while a ping waits on another. */
#define TP_BYTES_PER_READ (256u * 1024)
/* A data connection's socket buffer is refilled from its lane's queue when
 * it falls to HANDOVER_LOW, up to HANDOVER_FILL: enough to keep the kernel
 * busy, little enough that most of a backlog stays in the queue, where a
 * monotonic channel can still replace it and a reset cannot lose it. */
#define HANDOVER_LOW (128u * 1024)
#define HANDOVER_FILL (256u * 1024)
#define TP_MAX_CHAN_STATS 4096
/* What an accepted connection may send before its handshake completes: a
 * Hello is a few hundred bytes, and nothing an unknown party sends is
 * buffered beyond this. */
#define TP_PREHANDSHAKE_BYTES (16u * 1024)

enum conn_kind { CONN_OUT_CONTROL, CONN_OUT_DATA, CONN_IN };

struct peer;
struct lane;

/* Counters of one (node, channel); never freed before the transport. */
struct chan_stats {
    struct chan_stats *next;
    char node[TP_NAME_MAX];
    char channel[TP_CHANNEL_MAX];
    uint64_t msgs_in, bytes_in, paused, reconnects, lost_down;
    struct channel_queue_stats gone;    /* of queues whose peer died */
};


struct conn {
    struct transport *t;
    struct conn *prev, *next;       /* t->conns while open; next links the graveyard after */
    struct bufferevent *bev;
    struct event *timer;            /* handshake deadline, refusal drain bound, doom */
    struct peer *peer;              /* outbound only; NULL once closed */
    struct lane *lane;              /* outbound data only; NULL once closed */
    struct chan_stats *cstats;      /* inbound, once its Hello is accepted */
    enum conn_kind kind;
    bool tcp_up;                    /* outbound: the TCP connect completed */
    bool established;               /* handshake completed */
    bool refusing;                  /* inbound: Refuse queued; waiting for flush, then EOF */
    bool shut;                      /* refusing and our write side is shut down */
    bool closed;
    bool paused;                    /* inbound data: not read until transport_resume_data_from() */
    bool draining;                  /* inbound, disconnected: deliver what was read, then close */
    bool eof;                       /* the peer closed its side in order (FIN, not a reset) */
    bool pending;                   /* inbound, counted in t->n_pending until its handshake ends */
    uint64_t last_rx_ms;            /* inbound: when it last brought a frame (idle timeout) */
    uint64_t incarnation;           /* inbound: the dialler's, from its Hello */
    char remote_ip[INET6_ADDRSTRLEN];
    char doom[TP_REASON_MAX];       /* non-empty: fail from the loop with this reason */
    char remote[TP_ADDR_MAX];       /* the other end, for logs */
    char node[TP_NAME_MAX];         /* inbound: the dialler's name once its Hello is accepted */
    char claimed[TP_NAME_MAX];      /* inbound: the node its Hello named, even before it is accepted (faults judge by it) */
    char channel[TP_CHANNEL_MAX];
    uint32_t conn_index;
};


/* Owned by the resolver callback: a dial that dies while its name is being
 * looked up clears `peer` and cancels, and the callback frees this. */
struct dns_lookup {
    struct peer *peer;
    struct evdns_getaddrinfo_request *req;
};


struct peer {
    struct transport *t;
    struct peer *prev, *next;       /* t->peers while alive; next links the graveyard after */
    char expect[TP_NAME_MAX];       /* as given to transport_connect */
    char address[TP_ADDR_MAX];
    char node[TP_NAME_MAX];         /* expect, or the name the Welcome gave */
    char resolve_error[TP_REASON_MAX];
    struct dns_lookup *lookup;      /* non-NULL while the host name is being resolved */
    struct sockaddr_storage sa;
    socklen_t salen;
    struct conn *ctrl;
    struct lane *lanes;             /* t->n_lanes, channel by channel */
    bool connected;                 /* control connection welcomed */
    bool dead;
};


struct lane {
    struct peer *p;
    unsigned ch, idx;
    struct channel_queue *q;        /* created at the first message */
    struct conn *conn;              /* the data connection now, if any */
    struct event *redial;
    uint64_t dialled_ms;
    bool congested;                 /* reported congested; on_lane_drained owed */
    bool dropped;                   /* a connection dropped: the next Welcome is a reconnect */
    struct chan_stats *cstats;
    /* The kernel's unacknowledged bytes at the last refill, and how much
     * had been written then: a reset purges the kernel's queue before we
     * can ask, so what it may have lost is estimated from these. */
    uint64_t unacked_sample, written_at_sample;
    uint64_t bytes_sent_at_dial;    /* the queue's bytes_sent when this connection began */
    unsigned refills;
    size_t held_bytes;              /* frames of this lane a delay fault holds */
};


/* A frame a fault holds until `due`, for one lane's queue or one
 * connection's output (both NULL once that is gone). */
struct held {
    uint64_t due, seq;
    struct lane *lane;
    struct conn *conn;
    uint64_t tag;                   /* the lane's commit tag (monotonic payload length) */
    size_t len, key_len;
    bool twice;
    uint8_t bytes[];                /* the frame, then the lane's replacement key */
};


struct tp_channel {
    char name[TP_CHANNEL_MAX];
    unsigned parallelism;
    bool monotonic;
    bool reliable;
    unsigned first_lane;
    unsigned rr;                    /* rotates ties among equally loaded lanes */
};


struct transport {
    struct event_base *base;
    struct transport_callbacks cb;
    char *cluster, *node, *advertise;
    uint64_t incarnation;
    uint32_t timeout_ms;
    uint32_t handshake_ms, idle_ms, silence_ms;
    bool relayed_senders;
    uint64_t duplicate_logged_ms;   /* duplicate names are logged once per 10 s */
    uint64_t duplicates_unlogged;
    uint32_t max_pending, max_pending_per_ip;
    size_t n_pending;
    size_t max_frame, max_queue;
    struct evconnlistener *listener;
    struct event *listen_retry;
    uint16_t port;
    struct conn *conns;
    struct peer *peers;
    struct peer *cache;             /* last peer found by name: sends come in runs */
    struct conn *dead_conns;
    struct peer *dead_peers;
    struct event *reaper;
    struct lingering *lingers;
    struct pbarena arena;           /* decoded frames live here until handled */
    struct evdns_base *dns;         /* created at the first non-numeric host */
    struct transport_stats stats;
    struct tp_channel *chans;
    size_t n_chans, n_lanes;
    struct chan_stats *cstats;
    size_t n_cstats;
    struct chan_stats overflow_stats;   /* past TP_MAX_CHAN_STATS entries */
    struct tls *tls;                /* NULL: plaintext links */
    uint64_t bad_checksum_logged_ms;    /* bad checksums are logged once per 10 s */
    uint64_t bad_checksums_unlogged;
    struct faults *faults;          /* not ours; NULL or no rules: the fast path */
    uint64_t rng;                   /* xorshift64*, for the faults core */
    struct held **held;             /* min-heap by (due, seq) */
    size_t n_held, cap_held;
    uint64_t held_seq;
    struct event *held_timer;
};

/* With no faults object this is the one branch the hot path pays. */
static inline bool tp_faults_on(const struct transport *t)
{
    return t->faults && faults_count(t->faults) > 0;
}

/* transport.c */
struct timeval tp_ms_tv(uint64_t ms);
void tp_conn_close(struct conn *c);
void tp_conn_doom(struct conn *c, const char *reason);
struct peer *tp_peer_by_node(struct transport *t, const char *node);
struct chan_stats *tp_chan_stats_get(struct transport *t, const char *node, const char *channel);
int tp_conn_send(struct conn *c, const Partisan__Peer__PeerFrame *f, size_t limit);
struct conn *tp_dial(struct peer *p, enum conn_kind kind, struct lane *lane);

/* transport_lanes.c */
void tp_lane_pump(struct lane *l);
void tp_lane_conn_failed(struct conn *c);
void tp_lane_redial_cb(evutil_socket_t fd, short what, void *arg);
void tp_lane_wake(struct lane *l);
int tp_lane_put(struct lane *l, const uint8_t *frame, size_t len, const uint8_t *key, size_t key_len,
                uint64_t tag);

/* transport_faults.c */
uint64_t tp_rng_seed(const void *salt);
struct held *tp_held_new(size_t len, size_t key_len);
struct held *tp_held_pop(struct transport *t);
void tp_held_forget_conn(struct transport *t, const struct conn *c);
void tp_held_forget_peer(struct transport *t, const struct peer *p);
const char *tp_conn_fault_peer(const struct conn *c);
int tp_conn_send_faulty(struct conn *c, const Partisan__Peer__PeerFrame *f, size_t env_len, size_t size);
bool tp_fault_in_drops(struct conn *c, const Partisan__Peer__PeerFrame *f, size_t size);
int tp_lane_send_faulty(struct lane *l, struct held *h);
void tp_held_timer_cb(evutil_socket_t fd, short what, void *arg);

#endif
