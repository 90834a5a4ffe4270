/* transport: peer TCP connections over libevent. The contract is transport.h.
 *
 * Structure. Each transport_connect() creates a `struct peer` (one dial: its
 * control connection and its lanes); each TCP connection is a `struct
 * conn`. A lane (channel, index) holds its queue and at most one data conn
 * at a time. Accepted connections are conns of kind CONN_IN with no peer.
 * Traffic counters live in `struct chan_stats`, one per (node, channel),
 * which outlive peers and conns so that a redial does not reset them.
 *
 * Re-entrancy. Callbacks may call back into the transport (connect,
 * disconnect, send) and so free the very conn or peer whose event is being
 * handled. Closing therefore only unlinks and marks (`closed`, `dead`) and
 * puts the struct on a graveyard that a zero-timeout event (the reaper) frees
 * once control is back in the event loop; code that invokes a callback checks
 * those flags afterwards and never touches anything else it held. Failures
 * discovered inside a call from the user (a dial that fails at once, a
 * control queue overflow in transport_send_overlay) are reported from the
 * loop, by activating the conn's timer with a "doom" reason, never from
 * inside the call.
 *
 * Host names are resolved with libevent's asynchronous resolver (evdns,
 * which reads /etc/hosts and /etc/resolv.conf), so a slow DNS server delays
 * that one dial, never the loop and the failure detector with it.
 *
 * Files. This one holds the connections (lifecycle, handshake, reading,
 * dialling, listening) and the transport itself; transport_lanes.c the
 * lanes and sending; transport_faults.c fault injection. What they share
 * is transport_internal.h.
 */
#include "transport.h"
#include "transport_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "channel.h"
#include "clock.h"
#include "config.h"
#include "envelope.h"
#include "faults.h"
#include "frame.h"
#include "frame_evbuffer.h"
#include "membership.h"
#include "pbarena.h"
#include "log.h"
#include "sockbuf.h"
#include "tls.h"




/* ------------------------------------------------------------- helpers -- */

struct timeval tp_ms_tv(uint64_t ms)
{
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

/* Text from peers ends up in our logs: no control characters, bounded. */
static void sanitize(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && *src && i + 1 < cap; src++)
        dst[i++] = ((unsigned char)*src < 0x20 || (unsigned char)*src == 0x7f) ? '?' : *src;
    dst[i] = '\0';
}

static void set_nodelay(evutil_socket_t fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        log_warn("TCP_NODELAY: %s", strerror(errno));
}

static void format_sockaddr(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
}

/* Splits "host:port" or "[v6]:port"; port points into address. */
static int split_address(const char *address, char host[TP_ADDR_MAX], const char **port_out,
                         char *err, size_t errlen)
{
    const char *port;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':' || (size_t)(close - address - 1) >= TP_ADDR_MAX) {
            snprintf(err, errlen, "address \"%s\" is not [host]:port", address);
            return -1;
        }
        memcpy(host, address + 1, (size_t)(close - address - 1));
        host[close - address - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(address, ':');
        if (!colon || colon == address || (size_t)(colon - address) >= TP_ADDR_MAX) {
            snprintf(err, errlen, "address \"%s\" is not host:port", address);
            return -1;
        }
        memcpy(host, address, (size_t)(colon - address));
        host[colon - address] = '\0';
        port = colon + 1;
    }
    if (!*port) {
        snprintf(err, errlen, "address \"%s\" has no port", address);
        return -1;
    }
    *port_out = port;
    return 0;
}

/* Numeric addresses only: never blocks. Returns 0, 1 if host is a name
 * (to be looked up asynchronously), or -1 with err set. */
static int resolve_numeric(const char *address, struct sockaddr_storage *ss, socklen_t *sslen,
                           char *err, size_t errlen)
{
    char host[TP_ADDR_MAX];
    const char *port;
    if (split_address(address, host, &port, err, errlen) != 0)
        return -1;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc == EAI_NONAME)
        return 1;
    if (rc != 0 || !res) {
        snprintf(err, errlen, "bad address \"%s\": %s", address, rc ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}


/* ----------------------------------------------------------- lifecycle -- */

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct transport *t = arg;
    while (t->dead_conns) {
        struct conn *c = t->dead_conns;
        t->dead_conns = c->next;
        event_free(c->timer);
        free(c);
    }
    while (t->dead_peers) {
        struct peer *p = t->dead_peers;
        t->dead_peers = p->next;
        for (size_t i = 0; i < t->n_lanes; i++)
            if (p->lanes[i].redial)
                event_free(p->lanes[i].redial);
        free(p->lanes);
        free(p);
    }
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

static struct conn *conn_new(struct transport *t, enum conn_kind kind)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->timer = evtimer_new(t->base, conn_timer_cb, c);
    if (!c->timer) {
        free(c);
        return NULL;
    }
    c->t = t;
    c->kind = kind;
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    return c;
}

/* A closed connection whose last frames are still being written: a leave
 * pushes the final state and then disconnects at once, and that state must
 * reach the peer. Lingering is bounded in time; transport_free ends it. */
struct lingering {
    struct lingering *prev, *next;
    struct transport *t;
    struct bufferevent *bev;
    struct event *timer;
};

#define LINGER_MS 2000

static void linger_end(struct lingering *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        l->t->lingers = l->next;
    if (l->next)
        l->next->prev = l->prev;
    bufferevent_free(l->bev);
    event_free(l->timer);
    free(l);
}

static void linger_write_cb(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        linger_end(arg);
}

static void linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev; (void)what;
    linger_end(arg);
}

static void linger_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    linger_end(arg);
}

static void release_bev(struct transport *t, struct bufferevent *bev)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        bufferevent_free(bev);
        return;
    }
    struct lingering *l = calloc(1, sizeof *l);
    if (l)
        l->timer = evtimer_new(t->base, linger_timer_cb, l);
    if (!l || !l->timer) {
        free(l);
        bufferevent_free(bev);
        return;
    }
    l->t = t;
    l->bev = bev;
    l->next = t->lingers;
    if (t->lingers)
        t->lingers->prev = l;
    t->lingers = l;
    bufferevent_disable(bev, EV_READ);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_setcb(bev, NULL, linger_write_cb, linger_event_cb, l);
    bufferevent_enable(bev, EV_WRITE);
    struct timeval tv = tp_ms_tv(LINGER_MS);
    evtimer_add(l->timer, &tv);
}

/* Closes without any callback; the struct stays readable until the reaper. */
void tp_conn_close(struct conn *c)
{
    if (c->closed)
        return;
    struct transport *t = c->t;
    c->closed = true;
    if (c->pending) {
        c->pending = false;
        t->n_pending--;
    }
    if (c->bev) {
        release_bev(t, c->bev);
        c->bev = NULL;
    }
    event_del(c->timer);
    if (t->n_held)
        tp_held_forget_conn(t, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->peer) {
        if (c->peer->ctrl == c)
            c->peer->ctrl = NULL;
        c->peer = NULL;
    }
    if (c->lane) {
        if (c->lane->conn == c)
            c->lane->conn = NULL;
        c->lane = NULL;
    }
    c->prev = NULL;
    c->next = t->dead_conns;
    t->dead_conns = c;
    event_active(t->reaper, EV_TIMEOUT, 1);
}

static void add_queue_stats(struct channel_queue_stats *into, const struct channel_queue_stats *s)
{
    into->msgs_sent += s->msgs_sent;
    into->bytes_sent += s->bytes_sent;
    into->superseded += s->superseded;
    into->requeued += s->requeued;
    into->lost += s->lost;
}

/* The lane's peer is gone. Frames already in a socket that lingers are
 * taken as sent; what still waited is lost with the peer, and counted. Its
 * waiting senders are released: the queue they waited for is no more. */
static void lane_end(struct lane *l)
{
    struct transport *t = l->p->t;
    if (l->redial)
        event_del(l->redial);
    if (l->conn)
        tp_conn_close(l->conn);
    if (l->q) {
        channel_queue_detach(l->q);
        size_t dropped = channel_queue_clear(l->q);
        if (l->cstats) {
            l->cstats->lost_down += dropped;
            add_queue_stats(&l->cstats->gone, channel_queue_stats(l->q));
        }
        channel_queue_free(l->q);
        l->q = NULL;
    }
    if (l->congested) {
        l->congested = false;
        if (t->cb.on_lane_drained)
            t->cb.on_lane_drained(t->cb.ctx, l);
    }
}

/* Ends a dial without any callback; the struct stays readable until the reaper. */
static void peer_kill(struct peer *p)
{
    if (p->dead)
        return;
    struct transport *t = p->t;
    p->dead = true;
    if (p->lookup) {
        struct dns_lookup *l = p->lookup;
        p->lookup = NULL;
        l->peer = NULL;
        if (l->req)
            evdns_getaddrinfo_cancel(l->req);
    }
    if (p->ctrl)
        tp_conn_close(p->ctrl);
    for (size_t i = 0; i < t->n_lanes; i++)
        lane_end(&p->lanes[i]);
    if (t->n_held)
        tp_held_forget_peer(t, p);
    if (t->cache == p)
        t->cache = NULL;
    if (p->prev)
        p->prev->next = p->next;
    else
        t->peers = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = NULL;
    p->next = t->dead_peers;
    t->dead_peers = p;
    event_active(t->reaper, EV_TIMEOUT, 1);
}

/* libevent moves at most 16 KiB per read or write callback by default:
 * a dozen 1 KiB messages per trip round the loop. Larger batches cut the
 * syscalls and wakeups per message. */
static void set_batch_size(struct transport *t, struct bufferevent *bev)
{
    bufferevent_set_max_single_read(bev, 256 * 1024);
    bufferevent_set_max_single_write(bev, 256 * 1024);
    /* At most TP_FRAMES_PER_READ frames are handled per callback, while a
     * read brings in up to 256 KiB: a peer streaming small frames would grow
     * the input without bound. Stop reading (TCP flow control takes over)
     * once a whole largest frame and one more read are buffered. */
    bufferevent_setwatermark(bev, EV_READ, 0, FRAME_PEER_HEADER + t->max_frame + 256 * 1024);
}

/* Fails c from the event loop rather than from inside the caller's call. */
void tp_conn_doom(struct conn *c, const char *reason)
{
    if (c->doom[0])
        return;
    snprintf(c->doom, sizeof c->doom, "%s", reason && *reason ? reason : "failed");
    event_active(c->timer, EV_TIMEOUT, 1);
}

struct peer *tp_peer_by_node(struct transport *t, const char *node)
{
    if (t->cache && strcmp(t->cache->node, node) == 0)
        return t->cache;
    for (struct peer *p = t->peers; p; p = p->next)
        if (p->node[0] && strcmp(p->node, node) == 0) {
            t->cache = p;
            return p;
        }
    return NULL;
}

static void peer_desc(const struct peer *p, const char *address, char *buf, size_t len)
{
    if (p && p->node[0])
        snprintf(buf, len, "\"%s\" at %s", p->node, address);
    else
        snprintf(buf, len, "%s", address);
}

/* The counters of (node, channel), created on first use; past
 * TP_MAX_CHAN_STATS pairs (names come from peers) one shared entry. */
struct chan_stats *tp_chan_stats_get(struct transport *t, const char *node, const char *channel)
{
    for (struct chan_stats *e = t->cstats; e; e = e->next)
        if (strcmp(e->node, node) == 0 && strcmp(e->channel, channel) == 0)
            return e;
    if (t->n_cstats >= TP_MAX_CHAN_STATS)
        return &t->overflow_stats;
    struct chan_stats *e = calloc(1, sizeof *e);
    if (!e)
        return &t->overflow_stats;
    snprintf(e->node, sizeof e->node, "%s", node);
    snprintf(e->channel, sizeof e->channel, "%s", channel);
    e->next = t->cstats;
    t->cstats = e;
    t->n_cstats++;
    return e;
}

/* ------------------------------------------------------------- writing -- */

/* Packs f straight into the output buffer: one copy, no allocation of our
 * own. -2: it would take the queue past limit (nothing queued). */
int tp_conn_send(struct conn *c, const Partisan__Peer__PeerFrame *f, size_t limit)
{
    if (c->closed || !c->bev || c->doom[0])
        return -1;
    struct transport *t = c->t;
    size_t len = partisan__peer__peer_frame__get_packed_size(f);
    if (len > t->max_frame) {
        log_warn("frame of %zu bytes to %s is above max_frame_bytes (%zu); not sent",
                 len, c->remote, t->max_frame);
        return -1;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t size = frame_size(FRAME_KIND_PEER, len, 0);
    if (evbuffer_get_length(out) + size > limit)
        return -2;
    if (tp_faults_on(t) && tp_conn_fault_peer(c)[0])
        return tp_conn_send_faulty(c, f, len, size);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)size, &v, 1) < 1) {
        log_error("out of memory queueing a frame to %s", c->remote);
        return -1;
    }
    uint8_t *p = v.iov_base;
    partisan__peer__peer_frame__pack(f, p + frame_env_offset(FRAME_KIND_PEER));
    frame_seal(FRAME_KIND_PEER, p, len, 0);
    v.iov_len = size;
    if (evbuffer_commit_space(out, &v, 1) != 0)
        return -1;
    t->stats.frames_out++;
    return 0;
}

static void send_hello(struct conn *c)
{
    struct transport *t = c->t;
    Partisan__Peer__Hello h = PARTISAN__PEER__HELLO__INIT;
    h.protocol_version = TRANSPORT_PROTOCOL_VERSION;
    h.cluster = t->cluster;
    h.node = t->node;
    h.address = t->advertise;
    h.channel = (char *)(c->lane ? t->chans[c->lane->ch].name : CONFIG_CONTROL_CHANNEL);
    h.conn_index = c->lane ? c->lane->idx : 0;
    h.incarnation = t->incarnation;
    h.expect_node = c->peer->node;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_HELLO;
    f.hello = &h;
    tp_conn_send(c, &f, SIZE_MAX);
}


/* ------------------------------------------------------------ failures -- */

/* A dial that never got its Welcome: exactly one on_connect_failed. */
static void ctrl_failed(struct peer *p, const char *reason)
{
    struct transport *t = p->t;
    peer_kill(p);
    if (t->cb.on_connect_failed)
        t->cb.on_connect_failed(t->cb.ctx, p->expect, p->address, reason);
}

/* An established control connection ended: exactly one on_disconnected. */
static void ctrl_lost(struct peer *p)
{
    struct transport *t = p->t;
    peer_kill(p);
    if (t->cb.on_disconnected)
        t->cb.on_disconnected(t->cb.ctx, p->node);
}

/* The end of any conn for any reason other than a deliberate close. Runs
 * only from event-loop callbacks, so it may invoke user callbacks. */
static void conn_fail(struct conn *c, const char *reason, bool logged)
{
    if (c->closed)
        return;
    struct peer *p = c->peer;
    char desc[TP_NAME_MAX + TP_ADDR_MAX + 8];
    switch (c->kind) {
    case CONN_IN:
        if (!logged) {
            if (c->established)
                log_info("connection from node \"%s\" at %s (%s) closed: %s", c->node, c->remote,
                         c->channel, reason);
            else if (strncmp(reason, "TLS: ", 5) == 0)
                log_warn("connection from %s refused: %s", c->remote, reason); /* an unauthenticated peer */
            else
                log_info("connection from %s closed: %s", c->remote, reason);
        }
        tp_conn_close(c);
        return;
    case CONN_OUT_CONTROL:
        peer_desc(p, p->address, desc, sizeof desc);
        if (c->established) {
            if (!logged)
                log_warn("lost connection to node %s: %s", desc, reason);
            ctrl_lost(p);
        } else {
            if (!logged)
                log_info("dial to %s failed: %s", desc, reason);
            ctrl_failed(p, reason);
        }
        return;
    case CONN_OUT_DATA: {
        struct lane *l = c->lane;
        peer_desc(p, p->address, desc, sizeof desc);
        if (!logged && c->established && c->eof) /* as when the peer shuts down */
            log_info("%s connection %u to node %s closed by the peer", c->t->chans[l->ch].name, l->idx, desc);
        else if (!logged && c->established)
            log_warn("%s connection %u to node %s lost: %s; redialling it", c->t->chans[l->ch].name,
                     l->idx, desc, reason);
        else if (!logged)
            log_debug("%s connection %u to %s failed: %s", c->t->chans[l->ch].name, l->idx, desc, reason);
        tp_lane_conn_failed(c);
        return;
    }
    }
}


/* ----------------------------------------------------------- handshake -- */

static void refuse_quietly(struct conn *c, Partisan__Peer__Refuse__Reason reason, const char *msg);

static void refuse(struct conn *c, Partisan__Peer__Refuse__Reason reason, const char *node,
                   const char *msg)
{
    log_warn("refused %s (node \"%s\"): %s", c->remote, node, msg);
    refuse_quietly(c, reason, msg);
}

/* Refuses without a log line (the caller logs, or limits how often). */
static void refuse_quietly(struct conn *c, Partisan__Peer__Refuse__Reason reason, const char *msg)
{
    struct transport *t = c->t;
    t->stats.refused_in++;
    Partisan__Peer__Refuse r = PARTISAN__PEER__REFUSE__INIT;
    r.reason = reason;
    r.message = (char *)msg;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_REFUSE;
    f.refuse = &r;
    if (tp_conn_send(c, &f, SIZE_MAX) != 0) {
        tp_conn_close(c);
        return;
    }
    /* Flush, shut our side, and wait for the dialler to hang up: closing
     * with its unread bytes pending would send a reset that can destroy the
     * Refuse before the dialler reads it. The timer bounds the wait. */
    c->refusing = true;
    struct timeval tv = tp_ms_tv(t->timeout_ms);
    evtimer_add(c->timer, &tv);
}

static void handle_hello(struct conn *c, const Partisan__Peer__Hello *h)
{
    struct transport *t = c->t;
    char name[TP_NAME_MAX], other[TP_NAME_MAX], msg[TP_REASON_MAX];
    sanitize(name, sizeof name, h->node);
    /* Faults judge our answer, Refuse or Welcome, by the names the Hello
     * gave; the rest of the transport reads them only once it is accepted. */
    if (membership_token_valid(h->node, TP_NAME_MAX - 1))
        snprintf(c->claimed, sizeof c->claimed, "%s", h->node);
    if (membership_token_valid(h->channel, TP_CHANNEL_MAX - 1))
        snprintf(c->channel, sizeof c->channel, "%s", h->channel);
    if (h->protocol_version != TRANSPORT_PROTOCOL_VERSION) {
        snprintf(msg, sizeof msg, "protocol version %" PRIu32 " is not ours (%d)", h->protocol_version,
                 TRANSPORT_PROTOCOL_VERSION);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__VERSION, name, msg);
        return;
    }
    if (strcmp(h->cluster, t->cluster) != 0) {
        sanitize(other, sizeof other, h->cluster);
        snprintf(msg, sizeof msg, "cluster \"%s\" is not ours (\"%s\")", other, t->cluster);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__CLUSTER, name, msg);
        return;
    }
    if (!membership_token_valid(h->node, TP_NAME_MAX - 1)) {
        snprintf(msg, sizeof msg, "node name \"%s\" is empty, too long or not printable", name);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__OTHER, name, msg);
        return;
    }
    if (t->tls && !tls_peer_is(c->bev, h->node)) {
        snprintf(msg, sizeof msg, "its certificate is not for node \"%s\"", name);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__OTHER, name, msg);
        return;
    }
    if (strcmp(h->node, t->node) == 0) {
        snprintf(msg, sizeof msg, "node name \"%s\" is this node's own name", name);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__DUPLICATE_NAME, name, msg);
        return;
    }
    if (h->expect_node[0] && strcmp(h->expect_node, t->node) != 0) {
        sanitize(other, sizeof other, h->expect_node);
        snprintf(msg, sizeof msg, "this is node \"%s\", not \"%s\"", t->node, other);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__WRONG_NODE, name, msg);
        return;
    }
    if (!membership_token_valid(h->channel, TP_CHANNEL_MAX - 1)) {
        sanitize(other, sizeof other, h->channel);
        snprintf(msg, sizeof msg, "channel \"%s\" is empty, too long or not printable", other);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__OTHER, name, msg);
        return;
    }
    if (h->conn_index >= CONFIG_PARALLELISM_MAX ||
        (strcmp(h->channel, CONFIG_CONTROL_CHANNEL) == 0 && h->conn_index != 0)) {
        snprintf(msg, sizeof msg, "connection index %" PRIu32 " is out of range (0..%d)", h->conn_index,
                 CONFIG_PARALLELISM_MAX - 1);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__OTHER, name, msg);
        return;
    }

    if (t->cb.check_hello &&
        t->cb.check_hello(t->cb.ctx, h->node, h->incarnation) == PARTISAN__PEER__REFUSE__REASON__LEFT) {
        snprintf(msg, sizeof msg, "node \"%s\" (incarnation %" PRIu64 ") was removed from cluster \"%s\"; "
                 "restart its partisand to rejoin", name, h->incarnation, t->cluster);
        refuse(c, PARTISAN__PEER__REFUSE__REASON__LEFT, name, msg);
        return;
    }

    /* Another daemon with this name, alive, under another incarnation:
     * two daemons must never take turns replacing each other's
     * connections. */
    uint64_t now = clock_now_ms();
    for (struct conn *o = t->conns; o; o = o->next) {
        if (o == c || o->kind != CONN_IN || !o->established || o->closed || o->incarnation == h->incarnation ||
            strcmp(o->channel, CONFIG_CONTROL_CHANNEL) != 0 || strcmp(o->node, h->node) != 0 ||
            now - o->last_rx_ms >= t->silence_ms)
            continue;
        t->stats.duplicate_names++;
        snprintf(msg, sizeof msg, "node name \"%s\" is held by a live daemon at %s (incarnation %" PRIu64
                 "); this one is incarnation %" PRIu64 ": give each daemon its own node.name", name, o->remote,
                 o->incarnation, h->incarnation);
        if (now - t->duplicate_logged_ms >= 10000) {
            if (t->duplicates_unlogged)
                log_warn("%" PRIu64 " more Hello(s) refused for duplicate names since the last such line",
                         t->duplicates_unlogged);
            t->duplicate_logged_ms = now;
            t->duplicates_unlogged = 0;
            refuse(c, PARTISAN__PEER__REFUSE__REASON__DUPLICATE_NAME, name, msg);
        } else {
            t->duplicates_unlogged++;
            refuse_quietly(c, PARTISAN__PEER__REFUSE__REASON__DUPLICATE_NAME, msg);
        }
        return;
    }

    /* The same node dialling the same connection again has restarted or
     * given up on the old one; the old one is dead weight. */
    for (struct conn *o = t->conns, *next; o; o = next) {
        next = o->next;
        if (o != c && o->kind == CONN_IN && o->established && o->conn_index == h->conn_index &&
            strcmp(o->node, h->node) == 0 && strcmp(o->channel, h->channel) == 0) {
            log_info("connection from node \"%s\" at %s (%s) replaced by a new one from %s",
                     o->node, o->remote, o->channel, c->remote);
            tp_conn_close(o);
        }
    }
    c->established = true;
    event_del(c->timer);
    if (c->pending) {
        c->pending = false;
        t->n_pending--;
    }
    set_batch_size(t, c->bev);
    c->last_rx_ms = clock_now_ms();
    struct timeval idle = tp_ms_tv(t->idle_ms);
    evtimer_add(c->timer, &idle);
    snprintf(c->node, sizeof c->node, "%s", h->node);
    snprintf(c->channel, sizeof c->channel, "%s", h->channel);
    c->conn_index = h->conn_index;
    c->incarnation = h->incarnation;
    if (strcmp(c->channel, CONFIG_CONTROL_CHANNEL) != 0)
        c->cstats = tp_chan_stats_get(t, c->node, c->channel);

    Partisan__Peer__Welcome w = PARTISAN__PEER__WELCOME__INIT;
    w.node = t->node;
    w.address = t->advertise;
    w.incarnation = t->incarnation;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_WELCOME;
    f.welcome = &w;
    tp_conn_send(c, &f, SIZE_MAX);
    log_info("accepted %s connection from node \"%s\" at %s", c->channel, c->node, c->remote);
}

static void handle_welcome(struct conn *c, const Partisan__Peer__Welcome *w)
{
    struct transport *t = c->t;
    struct peer *p = c->peer;
    char name[TP_NAME_MAX], msg[TP_REASON_MAX];
    sanitize(name, sizeof name, w->node);
    if (!membership_token_valid(w->node, TP_NAME_MAX - 1)) {
        t->stats.bad_frame++;
        snprintf(msg, sizeof msg, "its Welcome names no valid node (\"%s\")", name);
        conn_fail(c, msg, false);
        return;
    }
    if (p->node[0] && strcmp(p->node, w->node) != 0) {
        snprintf(msg, sizeof msg, "it answered as node \"%s\", not \"%s\"", name, p->node);
        conn_fail(c, msg, false);
        return;
    }
    if (t->tls && !tls_peer_is(c->bev, w->node)) {
        t->stats.refused_out++;
        snprintf(msg, sizeof msg, "it answered as node \"%s\", but its certificate is not for that node", name);
        conn_fail(c, msg, false);
        return;
    }
    if (c->kind == CONN_OUT_DATA) {
        struct lane *l = c->lane;
        c->established = true;
        event_del(c->timer);
        l->bytes_sent_at_dial = l->q ? channel_queue_stats(l->q)->bytes_sent : 0;
        l->unacked_sample = l->written_at_sample = 0;
        if (l->dropped) {
            l->dropped = false;
            if (l->cstats)
                l->cstats->reconnects++;
            log_info("%s connection %u to node \"%s\" at %s re-established; %zu queued message(s) follow",
                     t->chans[l->ch].name, l->idx, name, p->address, l->q ? channel_queue_msgs(l->q) : 0);
        } else {
            log_debug("%s connection %u to node \"%s\" at %s established", t->chans[l->ch].name, l->idx,
                      name, p->address);
        }
        tp_lane_pump(l);
        return;
    }
    struct peer *other = tp_peer_by_node(t, w->node);
    if (other && other != p) {
        /* Two dials (say a seed and a member) reached the same node. */
        snprintf(msg, sizeof msg, "already connected to node \"%s\"", name);
        conn_fail(c, msg, false);
        return;
    }
    c->established = true;
    event_del(c->timer);
    snprintf(p->node, sizeof p->node, "%s", w->node);
    p->connected = true;
    t->cache = p;
    log_info("connected to node \"%s\" at %s (incarnation %" PRIu64 ")", p->node, p->address,
             w->incarnation);
    if (t->cb.on_connected)
        t->cb.on_connected(t->cb.ctx, p->node, p->address, w->incarnation);
}

static void handle_refuse(struct conn *c, const Partisan__Peer__Refuse *r)
{
    struct transport *t = c->t;
    struct peer *p = c->peer;
    char msg[TP_REASON_MAX], reason[TP_REASON_MAX + 16], desc[TP_NAME_MAX + TP_ADDR_MAX + 8];
    sanitize(msg, sizeof msg, r->message);
    if (!msg[0])
        snprintf(msg, sizeof msg, "reason %d", (int)r->reason);
    t->stats.refused_out++;
    peer_desc(p, p->address, desc, sizeof desc);
    if (c->kind == CONN_OUT_CONTROL)
        log_warn("node %s refused us: %s", desc, msg);
    else
        log_debug("node %s refused our data connection: %s", desc, msg);
    snprintf(reason, sizeof reason, "refused: %s", msg);
    if (c->kind == CONN_OUT_CONTROL && r->reason == PARTISAN__PEER__REFUSE__REASON__LEFT && t->cb.on_removed) {
        char by[TP_ADDR_MAX];
        snprintf(by, sizeof by, "%s", p->node[0] ? p->node : p->address);
        t->cb.on_removed(t->cb.ctx, by);   /* may close c */
    }
    conn_fail(c, reason, true);
}


/* ------------------------------------------------------------- reading -- */

static const char *body_name(int body_case)
{
    switch (body_case) {
    case PARTISAN__PEER__PEER_FRAME__BODY_HELLO: return "Hello";
    case PARTISAN__PEER__PEER_FRAME__BODY_WELCOME: return "Welcome";
    case PARTISAN__PEER__PEER_FRAME__BODY_REFUSE: return "Refuse";
    case PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY: return "an overlay message";
    case PARTISAN__PEER__PEER_FRAME__BODY_DATA: return "Data";
    case PARTISAN__PEER__PEER_FRAME__BODY_CREDIT: return "Credit";
    case PARTISAN__PEER__PEER_FRAME__BODY_ACK: return "DeliveryAck";
    default: return "empty or unknown";
    }
}

static void protocol_error(struct conn *c, const char *what, int body_case)
{
    char msg[128];
    c->t->stats.bad_frame++;
    snprintf(msg, sizeof msg, "protocol error: %s frame %s", body_name(body_case), what);
    log_warn("%s from %s; closing", msg, c->remote);
    conn_fail(c, msg, true);
}

static void handle_frame(struct conn *c, const Partisan__Peer__PeerFrame *f)
{
    struct transport *t = c->t;
    if (!c->established) {
        if (c->kind == CONN_IN) {
            if (f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_HELLO)
                handle_hello(c, f->hello);
            else
                protocol_error(c, "before the Hello", f->body_case);
        } else if (f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_WELCOME) {
            handle_welcome(c, f->welcome);
        } else if (f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_REFUSE) {
            handle_refuse(c, f->refuse);
        } else {
            protocol_error(c, "instead of Welcome or Refuse", f->body_case);
        }
        return;
    }
    const char *from = c->kind == CONN_IN ? c->node : c->peer->node;
    switch (f->body_case) {
    case PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY:
        if (t->cb.on_overlay)
            t->cb.on_overlay(t->cb.ctx, from, f->overlay.data, f->overlay.len);
        break;
    case PARTISAN__PEER__PEER_FRAME__BODY_DATA:
        if (c->kind != CONN_IN) {
            protocol_error(c, "on a connection we dialled", f->body_case);
            break;
        }
        if (!t->relayed_senders && f->data->from_node[0] && strcmp(f->data->from_node, from) != 0) {
            t->stats.spoofed++;
            log_debug("Data frame from node \"%s\" at %s claims another sender; dropped", from, c->remote);
            break;
        }
        if (c->cstats) {
            c->cstats->msgs_in++;
            c->cstats->bytes_in += f->data->payload.len;
        }
        if (t->cb.on_data)
            t->cb.on_data(t->cb.ctx, from, c->channel, f->data);
        break;
    case PARTISAN__PEER__PEER_FRAME__BODY_CREDIT:
        if (t->cb.on_credit)
            t->cb.on_credit(t->cb.ctx, from, f->credit);
        break;
    case PARTISAN__PEER__PEER_FRAME__BODY_ACK:
        if (c->kind != CONN_IN) {
            protocol_error(c, "on a connection we dialled", f->body_case);
            break;
        }
        if (strcmp(c->channel, CONFIG_CONTROL_CHANNEL) == 0) {
            /* Dropped, not closed: closing a control connection takes the
             * member down with it for one misplaced frame. */
            t->stats.bad_frame++;
            log_debug("DeliveryAck from node \"%s\" at %s on its control connection; dropped", from, c->remote);
            break;
        }
        if (!t->relayed_senders && f->ack->from_node[0] && strcmp(f->ack->from_node, from) != 0) {
            t->stats.spoofed++;
            log_debug("DeliveryAck from node \"%s\" at %s claims another sender; dropped", from, c->remote);
            break;
        }
        if (t->cb.on_ack)
            t->cb.on_ack(t->cb.ctx, from, c->channel, f->ack);
        break;
    case PARTISAN__PEER__PEER_FRAME__BODY_HELLO:
    case PARTISAN__PEER__PEER_FRAME__BODY_WELCOME:
    case PARTISAN__PEER__PEER_FRAME__BODY_REFUSE:
        protocol_error(c, "after the handshake", f->body_case);
        break;
    default:
        /* A frame kind added by a newer peer: fields are only ever added. */
        log_debug("ignored a frame of unknown kind from %s", c->remote);
        break;
    }
}

/* Whether a frame of c's with a bad checksum may be dropped alone: an
 * accepted data connection of a channel this node has as reliable. */
static bool drops_corrupt_alone(const struct conn *c)
{
    if (c->kind != CONN_IN || !c->established)
        return false;
    for (size_t i = 0; i < c->t->n_chans; i++)
        if (strcmp(c->t->chans[i].name, c->channel) == 0)
            return c->t->chans[i].reliable;
    return false;
}

/* Decodes the whole frames in c's input; a callback may close or pause c.
 * Bounded, it yields to the loop after a batch; unbounded (a connection
 * about to close), it handles every whole frame left, so that messages the
 * daemon had already read are delivered, not dropped with the socket. */
static void read_frames(struct conn *c, bool bounded)
{
    struct transport *t = c->t;
    struct bufferevent *bev = c->bev;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->refusing) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    /* Once a Hello is refused, frames the dialler sent behind it are not
     * read: they would be counted as protocol errors or refused again. */
    size_t handled = 0;
    for (int done = 0; !c->closed && (!c->paused || !bounded) && !c->refusing; done++) {
        if (evbuffer_get_length(in) < FRAME_PEER_HEADER)
            return;
        if (bounded && (done == TP_FRAMES_PER_READ || handled >= TP_BYTES_PER_READ)) {
            /* Let other connections' ready events run first, so one busy
             * peer cannot starve the rest; we come back from the loop. */
            bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
            return;
        }
        bool trusted = c->established || c->kind != CONN_IN;
        size_t limit = trusted ? t->max_frame : TP_PREHANDSHAKE_BYTES - FRAME_PEER_HEADER;
        struct frame fr;
        enum frame_result r = frame_evbuffer_next(in, FRAME_KIND_PEER, limit, &fr);
        if (r == FRAME_NEED_MORE)
            return;
        size_t body = fr.body_len;
        if (r == FRAME_TOO_LARGE) {
            t->stats.too_large++;
            if (trusted)
                log_warn("frame of %zu bytes from %s is above max_frame_bytes (%zu); closing",
                         body, c->remote, t->max_frame);
            else
                log_warn("frame of %zu bytes from %s before its handshake (at most %u); closing", body,
                         c->remote, TP_PREHANDSHAKE_BYTES - FRAME_PEER_HEADER);
            conn_fail(c, trusted ? "frame above max_frame_bytes" : "oversized frame before the handshake", true);
            return;
        }
        if (r == FRAME_EMPTY) {
            t->stats.bad_frame++;
            log_warn("zero-length frame from %s; closing", c->remote);
            conn_fail(c, "zero-length frame", true);
            return;
        }
        if (r == FRAME_NOMEM) {
            log_error("out of memory reading from %s; closing", c->remote);
            conn_fail(c, "out of memory", true);
            return;
        }
        if (r == FRAME_BAD_CHECKSUM && !drops_corrupt_alone(c)) {
            /* What it carried cannot be accounted for (a flow-control
             * grant, a plain message's credit): the sender learns of the
             * loss only when the connection fails. */
            t->stats.bad_checksum++;
            log_warn("frame of %zu bytes from %s has a bad checksum; closing", body, c->remote);
            conn_fail(c, "bad frame checksum", true);
            return;
        }
        if (r == FRAME_BAD_CHECKSUM) {
            /* A reliable channel's data or ack: the length was sound, so the
             * stream is still framed, and the delivery core sends it again.
             * Injected corruption makes these routine, and closing would
             * reset the connection at every one. */
            t->stats.bad_checksum++;
            uint64_t now = clock_now_ms();
            if (!t->bad_checksum_logged_ms || now - t->bad_checksum_logged_ms >= 10000) {
                if (t->bad_checksums_unlogged)
                    log_warn("%" PRIu64 " more frame(s) with a bad checksum dropped since the last such line",
                             t->bad_checksums_unlogged);
                log_warn("frame of %zu bytes from %s has a bad checksum; dropped (such lines at most once per 10 s)",
                         body, c->remote);
                t->bad_checksum_logged_ms = now;
                t->bad_checksums_unlogged = 0;
            } else {
                t->bad_checksums_unlogged++;
            }
            handled += FRAME_PEER_HEADER + body;
            evbuffer_drain(in, FRAME_PEER_HEADER + body);
            continue;
        }
        /* Data, the common case, decoded by hand (envelope.h) into the
         * structs protobuf-c would have made; anything else by protobuf-c. */
        struct envelope_data ed;
        Partisan__Peer__PeerFrame fast = PARTISAN__PEER__PEER_FRAME__INIT;
        Partisan__Peer__Data fast_data = PARTISAN__PEER__DATA__INIT;
        char from_s[ENVELOPE_STR_MAX + 1], to_s[ENVELOPE_STR_MAX + 1], name_s[ENVELOPE_STR_MAX + 1],
            ch_s[ENVELOPE_STR_MAX + 1];
        Partisan__Peer__PeerFrame *f = NULL;
        if (r == FRAME_OK && c->established && envelope_data_read(fr.env, fr.env_len, &ed) == 0) {
            fast_data.from_node = envelope_cstr(from_s, &ed.from_node);
            fast_data.to_node = envelope_cstr(to_s, &ed.to_node);
            fast_data.name = envelope_cstr(name_s, &ed.name);
            fast_data.channel = envelope_cstr(ch_s, &ed.channel);
            fast_data.payload.data = (uint8_t *)ed.payload.p;
            fast_data.payload.len = ed.payload.len;
            fast_data.partition_key.data = (uint8_t *)ed.key.p;
            fast_data.partition_key.len = ed.key.len;
            fast_data.hops = ed.hops;
            fast_data.origin_epoch = ed.origin_epoch;
            fast_data.dest_epoch = ed.dest_epoch;
            fast_data.seq = ed.seq;
            fast_data.acked_through = ed.acked_through;
            fast_data.causal.data = (uint8_t *)ed.causal.p;
            fast_data.causal.len = ed.causal.len;
            fast.body_case = PARTISAN__PEER__PEER_FRAME__BODY_DATA;
            fast.data = &fast_data;
            f = &fast;
        } else if (r == FRAME_OK) {
            f = partisan__peer__peer_frame__unpack(&t->arena.allocator, fr.env_len, fr.env);
        }
        if (!f) {
            pbarena_reset(&t->arena);
            t->stats.bad_frame++;
            log_warn("undecodable frame of %zu bytes from %s%s; closing", body, c->remote,
                     r == FRAME_BAD_ENVELOPE ? " (not protocol version 2 framing: an older partisand?)" : "");
            conn_fail(c, "undecodable frame", true);
            return;
        }
        if (f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_DATA && fr.payload_len) {
            /* Handed on where it lies in the input buffer, drained after. */
            f->data->payload.data = (uint8_t *)fr.payload;
            f->data->payload.len = fr.payload_len;
        }
        if (tp_faults_on(t) && tp_fault_in_drops(c, f, fr.size)) {
            pbarena_reset(&t->arena);
            handled += fr.size;
            evbuffer_drain(in, fr.size);
            continue;
        }
        t->stats.frames_in++;
        handled += fr.size;
        /* Once per batch: the idle timer needs milliseconds, and reading
         * the clock per frame showed in profiles. */
        if (c->kind == CONN_IN && done == 0)
            c->last_rx_ms = clock_now_ms();
        handle_frame(c, f);
        pbarena_reset(&t->arena);
        /* The callbacks may have closed c (its buffer then lives on until
         * the reaper runs) but never drain its input themselves. */
        if (c->bev)
            evbuffer_drain(in, fr.size);
    }
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    /* An established plaintext connection: all the socket holds, up to a
     * batch, not libevent 2.1's 4 KiB per callback. (Before the handshake
     * the 16 KiB bound holds; under TLS the socket is OpenSSL's.) */
    if (!c->t->tls && c->established && !c->paused && !c->closed) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t have = evbuffer_get_length(in);
        if (have < TP_BYTES_PER_READ)
            sockbuf_fill(in, bufferevent_getfd(bev), TP_BYTES_PER_READ - have);
    }
    read_frames(c, true);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct transport *t = c->t;
    size_t queued = evbuffer_get_length(bufferevent_get_output(bev));
    if (c->refusing) {
        if (queued == 0 && !c->shut) {
            c->shut = true;
            shutdown(bufferevent_getfd(bev), SHUT_WR);
        }
        return;
    }
    (void)t;
    if (c->kind == CONN_OUT_DATA && c->lane)
        tp_lane_pump(c->lane);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->tcp_up = true;
        c->t->stats.dialled++;
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    if (c->refusing) {
        tp_conn_close(c);
        return;
    }
    if (c->kind == CONN_IN && c->established) {
        read_frames(c, false);
        if (c->closed)
            return;
    }
    char reason[TP_REASON_MAX], tls_why[512] = "";
    c->eof = (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR);
    if (c->t->tls && (what & BEV_EVENT_ERROR))
        tls_error(bev, tls_why, sizeof tls_why);
    /* TLS's own reason first: a failed handshake often comes with the
     * peer's close in the same event, and "closed by the peer" would hide
     * why (a certificate from another CA, say). */
    if (tls_why[0])
        snprintf(reason, sizeof reason, "TLS: %s%s", tls_why,
                 strstr(tls_why, "wrong version") || strstr(tls_why, "packet length")
                     ? " (is the peer running without TLS?)" : "");
    else if (what & BEV_EVENT_EOF)
        snprintf(reason, sizeof reason, "closed by the peer%s",
                 c->established ? ""
                 : c->t->tls ? " during the TLS handshake (does it trust this node's CA, and this node its?)"
                             : " during the handshake");
    else if (c->kind != CONN_IN && !c->tcp_up)
        snprintf(reason, sizeof reason, "connect: %s", err ? strerror(err) : "failed");
    else
        snprintf(reason, sizeof reason, "%s", err ? strerror(err) : "socket error");
    if (!c->t->tls && c->kind != CONN_IN && c->tcp_up && !c->established) {
        /* A TLS acceptor drops a plaintext Hello without a word. */
        size_t n = strlen(reason);
        snprintf(reason + n, sizeof reason - n, " (if the peer requires TLS, set tls.* here too)");
    }
    conn_fail(c, reason, false);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct conn *c = arg;
    struct transport *t = c->t;
    if (c->closed)
        return;
    if (c->doom[0]) {
        conn_fail(c, c->doom, false);
        return;
    }
    if (c->draining) {
        read_frames(c, false);
        tp_conn_close(c);
        return;
    }
    if (c->refusing) {
        tp_conn_close(c);
        return;
    }
    if (c->established && c->kind == CONN_IN) {
        uint64_t now = clock_now_ms(), quiet = now - c->last_rx_ms;
        if (c->paused)
            c->last_rx_ms = now; /* quiet because we do not read it */
        if (c->paused || quiet < t->idle_ms) {
            struct timeval tv = tp_ms_tv(t->idle_ms - quiet);
            evtimer_add(c->timer, &tv);
            return;
        }
        t->stats.idle_closed++;
        char why[96];
        snprintf(why, sizeof why, "nothing for %" PRIu32 " ms (transport.idle_timeout_ms)", t->idle_ms);
        conn_fail(c, why, false);
        return;
    }
    if (c->established)
        return;
    char reason[TP_REASON_MAX];
    if (c->kind == CONN_IN) {
        t->stats.handshake_timeouts++;
        snprintf(reason, sizeof reason, "no Hello within %" PRIu32 " ms", t->handshake_ms);
    }
    else if (c->tcp_up)
        snprintf(reason, sizeof reason, "no answer to our Hello within %" PRIu32 " ms", t->timeout_ms);
    else
        snprintf(reason, sizeof reason, "TCP connect timed out after %" PRIu32 " ms", t->timeout_ms);
    conn_fail(c, reason, false);
}


/* ------------------------------------------------------------ dialling -- */

/* Always returns a conn (or NULL when out of memory): a dial that fails at
 * once is reported from the loop, like every other failure. */
struct conn *tp_dial(struct peer *p, enum conn_kind kind, struct lane *lane)
{
    struct transport *t = p->t;
    struct conn *c = conn_new(t, kind);
    if (!c) {
        log_error("out of memory dialling %s", p->address);
        return NULL;
    }
    c->peer = p;
    if (kind == CONN_OUT_CONTROL) {
        p->ctrl = c;
    } else {
        c->lane = lane;
        lane->conn = c;
        lane->dialled_ms = clock_now_ms();
    }
    snprintf(c->remote, sizeof c->remote, "%s", p->address);
    if (p->resolve_error[0]) {
        tp_conn_doom(c, p->resolve_error);
        return c;
    }
    evutil_socket_t fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "socket: %s", strerror(errno));
        tp_conn_doom(c, msg);
        return c;
    }
    set_nodelay(fd);
    if (kind == CONN_OUT_DATA) {
        /* Keep the backlog in the lane's queue, where a reset cannot lose
         * it, rather than unsent in the kernel's: the socket reports
         * writable only while it holds less than this not yet sent. */
        int lowat = HANDOVER_FILL;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat) != 0)
            log_debug("TCP_NOTSENT_LOWAT: %s", strerror(errno));
    }
    c->bev = t->tls ? tls_bufferevent(t->tls, t->base, fd, false) : bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        tp_conn_doom(c, "out of memory");
        return c;
    }
    set_batch_size(t, c->bev);
    /* Callbacks are set only after the connect call, so that no failure can
     * be reported from inside it (and so inside transport_connect). */
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&p->sa, (int)p->salen) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "connect: %s", strerror(errno));
        bufferevent_free(c->bev);
        c->bev = NULL;
        tp_conn_doom(c, msg);
        return c;
    }
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    if (kind == CONN_OUT_DATA)
        bufferevent_setwatermark(c->bev, EV_WRITE, HANDOVER_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    send_hello(c);
    struct timeval tv = tp_ms_tv(t->timeout_ms);
    evtimer_add(c->timer, &tv);
    return c;
}

/* Dials the control connection; data connections follow lazily, when their
 * lane first has a message. A failure (including p->resolve_error) is
 * reported from the loop. */
static void start_dials(struct peer *p)
{
    if (!tp_dial(p, CONN_OUT_CONTROL, NULL))
        peer_kill(p); /* nothing to report the failure from; give up quietly */
}

static void lookup_done(int err, struct evutil_addrinfo *res, void *arg)
{
    struct dns_lookup *l = arg;
    struct peer *p = l->peer;
    free(l);
    if (!p) {                       /* the dial was dropped meanwhile */
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    p->lookup = NULL;
    if (err || !res) {
        snprintf(p->resolve_error, sizeof p->resolve_error, "cannot resolve \"%s\": %s", p->address,
                 err ? evutil_gai_strerror(err) : "no address");
    } else {
        memcpy(&p->sa, res->ai_addr, res->ai_addrlen);
        p->salen = (socklen_t)res->ai_addrlen;
    }
    if (res)
        evutil_freeaddrinfo(res);
    start_dials(p);
}

static void start_lookup(struct peer *p)
{
    struct transport *t = p->t;
    char host[TP_ADDR_MAX];
    const char *port;
    struct dns_lookup *l = NULL;
    if (!t->dns)
        t->dns = evdns_base_new(t->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (t->dns)
        l = calloc(1, sizeof *l);
    if (!l || split_address(p->address, host, &port, p->resolve_error, sizeof p->resolve_error) != 0) {
        if (!p->resolve_error[0])
            snprintf(p->resolve_error, sizeof p->resolve_error, "cannot resolve \"%s\": no resolver", p->address);
        free(l);
        start_dials(p);
        return;
    }
    l->peer = p;
    p->lookup = l;
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                     .ai_flags = EVUTIL_AI_NUMERICSERV };
    /* May answer at once (from /etc/hosts) and free l before returning. */
    struct evdns_getaddrinfo_request *req = evdns_getaddrinfo(t->dns, host, port, &hints, lookup_done, l);
    if (req && p->lookup == l)
        l->req = req;
}

void transport_connect(struct transport *t, const char *expect_node, const char *address)
{
    if (!expect_node)
        expect_node = "";
    if (!address)
        address = "";
    if (expect_node[0]) {
        if (tp_peer_by_node(t, expect_node))
            return;
    } else {
        for (struct peer *p = t->peers; p; p = p->next)
            if (strcmp(p->address, address) == 0)
                return;
    }
    struct peer *p = calloc(1, sizeof *p);
    bool ok = p && (p->lanes = calloc(t->n_lanes, sizeof *p->lanes));
    for (unsigned ch = 0; ok && ch < t->n_chans; ch++)
        for (unsigned i = 0; ok && i < t->chans[ch].parallelism; i++) {
            struct lane *l = &p->lanes[t->chans[ch].first_lane + i];
            l->p = p;
            l->ch = ch;
            l->idx = i;
            ok = (l->redial = evtimer_new(t->base, tp_lane_redial_cb, l)) != NULL;
        }
    if (!ok) {
        log_error("out of memory dialling %s", address);
        if (p && p->lanes)
            for (size_t i = 0; i < t->n_lanes; i++)
                if (p->lanes[i].redial)
                    event_free(p->lanes[i].redial);
        if (p)
            free(p->lanes);
        free(p);
        return;
    }
    p->t = t;
    snprintf(p->expect, sizeof p->expect, "%s", expect_node);
    snprintf(p->address, sizeof p->address, "%s", address);
    snprintf(p->node, sizeof p->node, "%s", expect_node);
    p->next = t->peers;
    if (t->peers)
        t->peers->prev = p;
    t->peers = p;
    log_debug("dialling %s%s%s", address, expect_node[0] ? " for node " : "", expect_node);
    int rc = 0;
    if (strlen(expect_node) >= sizeof p->expect || strlen(address) >= sizeof p->address)
        snprintf(p->resolve_error, sizeof p->resolve_error, "node name or address too long");
    else
        rc = resolve_numeric(address, &p->sa, &p->salen, p->resolve_error, sizeof p->resolve_error);
    if (rc == 1)
        start_lookup(p);
    else
        start_dials(p);
}

void transport_disconnect(struct transport *t, const char *node)
{
    bool any = false;
    for (struct peer *p = t->peers, *next; p; p = next) {
        next = p->next;
        if (strcmp(p->node, node) == 0) {
            peer_kill(p);
            any = true;
        }
    }
    for (struct conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (c->kind == CONN_IN && c->established && !c->draining && strcmp(c->node, node) == 0) {
            any = true;
            if (!c->bev || evbuffer_get_length(bufferevent_get_input(c->bev)) < FRAME_PEER_HEADER) {
                tp_conn_close(c);
                continue;
            }
            /* Frames already read are delivered from the loop (not from
             * inside this call), then the connection closes. */
            c->draining = true;
            bufferevent_disable(c->bev, EV_READ);
            event_active(c->timer, EV_TIMEOUT, 1);
        }
    }
    if (any)
        log_info("disconnected from node \"%s\"", node);
}

static void set_data_paused(struct transport *t, const char *node, bool pause)
{
    for (struct conn *c = t->conns; c; c = c->next) {
        if (c->kind != CONN_IN || !c->established || c->closed || !c->bev ||
            strcmp(c->channel, CONFIG_CONTROL_CHANNEL) == 0 || strcmp(c->node, node) != 0 || c->paused == pause)
            continue;
        c->paused = pause;
        if (pause) {
            bufferevent_disable(c->bev, EV_READ);
        } else {
            bufferevent_enable(c->bev, EV_READ);
            /* Frames already buffered would wait for new bytes otherwise. */
            bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
        }
    }
}

void transport_pause_data_from(struct transport *t, const char *node)
{
    set_data_paused(t, node, true);
}

void transport_resume_data_from(struct transport *t, const char *node)
{
    set_data_paused(t, node, false);
}


/* ----------------------------------------------------------- listening -- */

/* The address alone, without the port: what max_pending_per_address counts. */
static void sockaddr_ip(const struct sockaddr *sa, char *buf, size_t len)
{
    buf[0] = '\0';
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
}

/* Whether one more connection that has not completed its handshake may
 * be taken: in all, and from this address. */
static bool pending_room(struct transport *t, const struct sockaddr *sa, char *why, size_t whylen)
{
    if (t->n_pending >= t->max_pending) {
        snprintf(why, whylen, "%zu connections are mid-handshake (transport.max_pending_connections)", t->n_pending);
        return false;
    }
    char ip[INET6_ADDRSTRLEN];
    sockaddr_ip(sa, ip, sizeof ip);
    size_t from_ip = 0;
    for (const struct conn *c = t->conns; c; c = c->next)
        if (c->pending && strcmp(c->remote_ip, ip) == 0)
            from_ip++;
    if (from_ip >= t->max_pending_per_ip) {
        snprintf(why, whylen, "%zu connections from %s are mid-handshake (transport.max_pending_per_address)",
                 from_ip, ip);
        return false;
    }
    return true;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l; (void)salen;
    struct transport *t = arg;
    char why[160];
    if (!pending_room(t, sa, why, sizeof why)) {
        char who[TP_ADDR_MAX];
        format_sockaddr(sa, who, sizeof who);
        t->stats.pending_refused++;
        log_warn("closing the connection from %s at once: %s", who, why);
        close(fd);
        return;
    }
    set_nodelay(fd);
    struct conn *c = conn_new(t, CONN_IN);
    if (!c) {
        log_error("out of memory accepting a peer connection");
        close(fd);
        return;
    }
    format_sockaddr(sa, c->remote, sizeof c->remote);
    sockaddr_ip(sa, c->remote_ip, sizeof c->remote_ip);
    c->bev = t->tls ? tls_bufferevent(t->tls, t->base, fd, true) : bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev) {
        /* libevent reads no further than the high watermark, so this alone
         * bounds what a stranger can make us buffer. (Shrinking the read
         * size too made a 64-node cluster converge 5x slower.) */
        set_batch_size(t, c->bev);
        bufferevent_setwatermark(c->bev, EV_READ, 0, TP_PREHANDSHAKE_BYTES);
    }
    if (!c->bev) {
        log_error("out of memory accepting %s", c->remote);
        close(fd);
        tp_conn_close(c);
        return;
    }
    t->stats.accepted++;
    c->pending = true;
    t->n_pending++;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct timeval tv = tp_ms_tv(t->handshake_ms);
    evtimer_add(c->timer, &tv);
    log_debug("TCP connection from %s", c->remote);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct transport *t = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors: the pending connection stays readable, so going on
     * would spin. Pause and retry. */
    log_warn("accepting peer connections: %s; pausing for 1 s", strerror(err));
    evconnlistener_disable(l);
    struct timeval tv = tp_ms_tv(1000);
    evtimer_add(t->listen_retry, &tv);
}

static void listen_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct transport *t = arg;
    evconnlistener_enable(t->listener);
}


/* ------------------------------------------------------- the transport -- */

struct transport *transport_new(struct event_base *base, const struct transport_config *cfg,
                                const struct transport_callbacks *cb)
{
    struct transport *t = calloc(1, sizeof *t);
    if (!t) {
        log_error("out of memory creating the transport");
        return NULL;
    }
    t->base = base;
    if (cb)
        t->cb = *cb;
    t->cluster = strdup(cfg->cluster ? cfg->cluster : "");
    t->node = strdup(cfg->node ? cfg->node : "");
    t->advertise = strdup(cfg->advertise ? cfg->advertise : "");
    t->incarnation = cfg->incarnation;
    t->timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : TP_DEFAULT_TIMEOUT_MS;
    t->handshake_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : t->timeout_ms;
    t->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 600000;
    t->silence_ms = cfg->silence_ms ? cfg->silence_ms : 3000;
    t->relayed_senders = cfg->relayed_senders;
    t->max_pending = cfg->max_pending_connections ? cfg->max_pending_connections : 256;
    t->max_pending_per_ip = cfg->max_pending_per_address ? cfg->max_pending_per_address : 64;
    t->max_frame = cfg->max_frame_bytes ? (size_t)cfg->max_frame_bytes : TP_DEFAULT_MAX_FRAME;
    if (t->max_frame > UINT32_MAX)
        t->max_frame = UINT32_MAX;
    t->max_queue = cfg->max_queue_bytes ? (size_t)cfg->max_queue_bytes : TP_DEFAULT_MAX_QUEUE;
    t->reaper = event_new(base, -1, 0, reap_cb, t);
    t->held_timer = evtimer_new(base, tp_held_timer_cb, t);
    t->rng = tp_rng_seed(t);
    static const struct transport_channel only_default = { CONFIG_DEFAULT_CHANNEL, 1, false, false };
    const struct transport_channel *chans = cfg->n_channels ? cfg->channels : &only_default;
    size_t n_chans = cfg->n_channels ? cfg->n_channels : 1;
    t->chans = calloc(n_chans, sizeof *t->chans);
    if (!t->chans) {
        log_error("transport: out of memory");
        transport_free(t);
        return NULL;
    }
    t->n_chans = n_chans;
    for (size_t i = 0; i < n_chans; i++) {
        snprintf(t->chans[i].name, sizeof t->chans[i].name, "%s", chans[i].name);
        t->chans[i].parallelism = chans[i].parallelism < 1 ? 1
                                  : chans[i].parallelism > CONFIG_PARALLELISM_MAX ? CONFIG_PARALLELISM_MAX
                                                                                 : chans[i].parallelism;
        t->chans[i].monotonic = chans[i].monotonic;
        t->chans[i].reliable = chans[i].reliable;
        t->chans[i].first_lane = (unsigned)t->n_lanes;
        t->n_lanes += t->chans[i].parallelism;
    }
    if (cfg->tls_cert_file && cfg->tls_cert_file[0]) {
        char err[600];
        t->tls = tls_new(cfg->tls_ca_file ? cfg->tls_ca_file : "", cfg->tls_cert_file,
                         cfg->tls_key_file ? cfg->tls_key_file : "", err, sizeof err);
        if (!t->tls) {
            log_error("tls: %s", err);
            transport_free(t);
            return NULL;
        }
    }
    if (pbarena_init(&t->arena, 64 * 1024) != 0) {
        log_error("transport: out of memory");
        transport_free(t);
        return NULL;
    }
    t->listen_retry = evtimer_new(base, listen_retry_cb, t);
    if (!t->cluster || !t->node || !t->advertise || !t->reaper || !t->listen_retry || !t->held_timer) {
        log_error("out of memory creating the transport");
        transport_free(t);
        return NULL;
    }

    const char *host = cfg->listen_host && *cfg->listen_host ? cfg->listen_host : "0.0.0.0";
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)cfg->listen_port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        log_error("cannot listen for peers on %s:%s: %s", host, port, rc ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        transport_free(t);
        return NULL;
    }
    t->listener = evconnlistener_new_bind(base, accept_cb, t,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                          -1, res->ai_addr, (int)res->ai_addrlen);
    int err = errno;
    freeaddrinfo(res);
    if (!t->listener) {
        log_error("cannot listen for peers on %s:%s: %s", host, port, strerror(err));
        transport_free(t);
        return NULL;
    }
    evconnlistener_set_error_cb(t->listener, accept_error_cb);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(evconnlistener_get_fd(t->listener), (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET)
            t->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            t->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    log_info("listening for peers on %s:%u", host, (unsigned)t->port);
    return t;
}

void transport_free(struct transport *t)
{
    if (!t)
        return;
    memset(&t->cb, 0, sizeof t->cb);    /* closing everything reports nothing */
    while (t->peers)
        peer_kill(t->peers);
    while (t->conns)
        tp_conn_close(t->conns);
    while (t->lingers)
        linger_end(t->lingers);
    if (t->dns)
        evdns_base_free(t->dns, 1); /* fails pending lookups: their dials are gone already */
    if (t->reaper)
        reap_cb(-1, 0, t);
    if (t->reaper)
        event_free(t->reaper);
    if (t->listen_retry)
        event_free(t->listen_retry);
    while (t->n_held)
        free(tp_held_pop(t));
    free(t->held);
    if (t->held_timer)
        event_free(t->held_timer);
    if (t->listener)
        evconnlistener_free(t->listener);
    pbarena_free(&t->arena);
    while (t->cstats) {
        struct chan_stats *e = t->cstats;
        t->cstats = e->next;
        free(e);
    }
    free(t->chans);
    tls_free(t->tls);
    free(t->cluster);
    free(t->node);
    free(t->advertise);
    free(t);
}

uint16_t transport_listen_port(const struct transport *t)
{
    return t->port;
}

void transport_set_advertise(struct transport *t, const char *advertise)
{
    char *copy = strdup(advertise ? advertise : "");
    if (!copy) {
        log_error("out of memory setting the advertised address");
        return;
    }
    free(t->advertise);
    t->advertise = copy;
}

size_t transport_pending_connections(const struct transport *t)
{
    return t->n_pending;
}

const struct transport_stats *transport_get_stats(const struct transport *t)
{
    return &t->stats;
}

void transport_foreach_channel_stats(const struct transport *t,
                                     void (*fn)(void *ctx, const struct transport_channel_stats *row),
                                     void *ctx)
{
    for (const struct chan_stats *e = t->cstats; e; e = e->next) {
        struct transport_channel_stats row = {
            .peer = e->node, .channel = e->channel,
            .msgs_received = e->msgs_in, .bytes_received = e->bytes_in,
            .paused = e->paused, .reconnects = e->reconnects,
            .msgs_sent = e->gone.msgs_sent, .bytes_sent = e->gone.bytes_sent,
            .superseded = e->gone.superseded, .requeued = e->gone.requeued,
            .lost = e->gone.lost + e->lost_down,
        };
        for (const struct peer *p = t->peers; p; p = p->next)
            for (size_t i = 0; i < t->n_lanes; i++) {
                const struct lane *l = &p->lanes[i];
                if (l->cstats != e || !l->q)
                    continue;
                const struct channel_queue_stats *qs = channel_queue_stats(l->q);
                row.msgs_sent += qs->msgs_sent;
                row.bytes_sent += qs->bytes_sent;
                row.superseded += qs->superseded;
                row.requeued += qs->requeued;
                row.lost += qs->lost;
                row.queued_msgs += channel_queue_msgs(l->q);
                row.queued_bytes += channel_queue_bytes(l->q);
                if (l->conn && l->conn->established)
                    row.connections++;
            }
        fn(ctx, &row);
    }
}
