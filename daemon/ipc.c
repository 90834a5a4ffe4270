#include "ipc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "envelope.h"
#include "frame.h"
#include "frame_evbuffer.h"
#include "log.h"
#include "pbarena.h"
#include "sockbuf.h"

/* Bytes taken off a session's socket per read callback. */
#define IPC_READ_BATCH (256u * 1024)

/* Acks of accepted sends (ipc.proto, "Replies"): at the end of a batch of
 * at most ACK_SMALL_BATCH requests (light traffic hears at once, as it
 * would with a Reply each); for bigger batches once ACK_EVERY sends are
 * unanswered, or ACK_DELAY_US after the batch; and at once before the
 * answer to any request that is not a send (a client waiting for its
 * sends asks with a SyncRequest). Every Ack written wakes the sender's
 * side of the socket, which is what a message costs most at a million a
 * second, so a streaming sender's big batches share one. */
#define ACK_SMALL_BATCH 16
#define ACK_EVERY 2048
#define ACK_DELAY_US 1000

struct ipc_session {
    struct ipc_server *srv;
    struct ipc_session *prev, *next;
    struct bufferevent *bev;
    uint64_t id;
    const void *blocked_on;      /* sink this session waits for, or NULL */
    bool subscribed;
    bool was_congested;          /* on_drained owed once the output drains */
    bool busy;                   /* inside process_input: defer the free */
    bool ack_owed;               /* accepted sends not yet answered: one Ack covers them */
    uint64_t ack_id;             /* the latest of them */
    unsigned unacked;            /* how many */
    size_t out_room;             /* frame_evbuffer_reserve()'s hint for the output */
    struct event *ack_timer;     /* sends the Ack of a streaming sender's batches, ACK_DELAY_US late */
    bool closing;
    bool has_cred;               /* SO_PEERCRED answered */
    uid_t uid;
    gid_t gid;                   /* primary, at connect */
    gid_t *groups;               /* supplementary, at connect; owned */
    size_t n_groups;
    unsigned flags;              /* the handler's; see ipc_session_flags() */
    char label[64];
};

struct ipc_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct ipc_config cfg;
    char *path;
    struct ipc_handlers h;
    struct ipc_session *sessions;
    size_t n_sessions;
    uint64_t next_id;
    struct pbarena arena;
    struct event *accept_retry;  /* re-enables the listener after EMFILE */
};

static void session_free(struct ipc_session *s)
{
    struct ipc_server *srv = s->srv;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->n_sessions--;
    if (s->ack_timer)
        event_free(s->ack_timer);
    bufferevent_free(s->bev);
    free(s->groups);
    free(s);
}

/* Closes a session. Names are released and senders blocked on it resume
 * before it goes; the memory itself is freed at once unless the session is
 * inside its own input loop, which frees it on the way out. */
static void session_close(struct ipc_session *s, const char *why)
{
    if (s->closing)
        return;
    s->closing = true;
    if (why)
        log_info("%s: closing: %s", s->label, why);
    else
        log_debug("%s: disconnected", s->label);
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    s->srv->h.on_close(s->srv->h.ctx, s);
    ipc_unblock(s->srv, s);
    if (!s->busy)
        session_free(s);
}

/* One frame: the envelope (a protobuf-c message m, or else the hand-encoded
 * Deliver d, of n bytes) packed and the payload copied straight into the
 * output buffer (the payload's one copy in this daemon on the way out). */
static int append_any(struct ipc_session *s, const ProtobufCMessage *m, size_t n,
                      const struct envelope_deliver *d, const uint8_t *payload, size_t payload_len)
{
    if (s->closing)
        return -1;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    size_t size = frame_size(FRAME_KIND_IPC, n, payload_len);
    struct evbuffer_iovec v;
    if (frame_evbuffer_reserve(out, size, &s->out_room, &v) != 0) {
        session_close(s, "out of memory queueing a reply");
        return -1;
    }
    uint8_t *p = v.iov_base, *env = p + frame_env_offset(FRAME_KIND_IPC);
    if (m)
        protobuf_c_message_pack(m, env);
    else
        envelope_deliver_write(env, d);
    if (payload_len)
        memcpy(env + n, payload, payload_len);
    frame_seal(FRAME_KIND_IPC, p, n, payload_len);
    v.iov_len = size;
    evbuffer_commit_space(out, &v, 1);
    size_t queued = evbuffer_get_length(out);
    if (queued > s->srv->cfg.max_queue_bytes) {
        char why[160];
        snprintf(why, sizeof why,
                 "outbound queue of %zu bytes is above ipc.max_queue_bytes (%llu): "
                 "the application is not reading", queued,
                 (unsigned long long)s->srv->cfg.max_queue_bytes);
        session_close(s, why);
        return -1;
    }
    return 0;
}

static int append_msg(struct ipc_session *s, const ProtobufCMessage *m, const uint8_t *payload,
                      size_t payload_len)
{
    if (s->closing)
        return -1;
    return append_any(s, m, protobuf_c_message_get_packed_size(m), NULL, payload, payload_len);
}

static int append_frame(struct ipc_session *s, size_t n, const struct envelope_deliver *d, const uint8_t *payload,
                        size_t payload_len)
{
    return append_any(s, NULL, n, d, payload, payload_len);
}

static void send_server_msg(struct ipc_session *s, Partisan__Ipc__IpcServerMsg *m)
{
    append_msg(s, &m->base, NULL, 0);
}

static void send_ack(struct ipc_session *s)
{
    s->ack_owed = false;
    s->unacked = 0;
    if (s->ack_timer)
        event_del(s->ack_timer);
    Partisan__Ipc__Ack a = PARTISAN__IPC__ACK__INIT;
    a.through_id = s->ack_id;
    Partisan__Ipc__IpcServerMsg m = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    m.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_ACK;
    m.ack = &a;
    send_server_msg(s, &m);
}

static void ack_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct ipc_session *s = arg;
    if (s->ack_owed && !s->closing)
        send_ack(s);
}

/* At the end of a batch of n requests: the Ack now, or a little later. */
static void ack_batch(struct ipc_session *s, size_t n)
{
    if (n <= ACK_SMALL_BATCH || s->unacked >= ACK_EVERY) {
        send_ack(s);
        return;
    }
    if (!s->ack_timer && !(s->ack_timer = evtimer_new(s->srv->base, ack_timer_cb, s))) {
        send_ack(s);
        return;
    }
    if (!evtimer_pending(s->ack_timer, NULL)) {
        struct timeval tv = { 0, ACK_DELAY_US };
        evtimer_add(s->ack_timer, &tv);
    }
}

void ipc_ack(struct ipc_session *s, uint64_t id)
{
    s->ack_id = id;
    s->ack_owed = true;
    s->unacked++;
    /* Inside a batch the one Ack goes out at its end; outside, at once. */
    if (!s->busy)
        send_ack(s);
}

static void reply_with(struct ipc_session *s, Partisan__Ipc__Reply *r)
{
    Partisan__Ipc__IpcServerMsg m = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    m.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_REPLY;
    m.reply = r;
    send_server_msg(s, &m);
}

void ipc_reply(struct ipc_session *s, uint64_t id, Partisan__Ipc__ErrorCode code, const char *error)
{
    Partisan__Ipc__Reply r = PARTISAN__IPC__REPLY__INIT;
    r.id = id;
    r.code = code;
    r.error = (char *)(error ? error : "");
    reply_with(s, &r);
}

void ipc_reply_status(struct ipc_session *s, uint64_t id, const Partisan__Ipc__Status *st)
{
    Partisan__Ipc__Reply r = PARTISAN__IPC__REPLY__INIT;
    r.id = id;
    r.result_case = PARTISAN__IPC__REPLY__RESULT_STATUS;
    r.status = (Partisan__Ipc__Status *)st;
    reply_with(s, &r);
}

void ipc_reply_members(struct ipc_session *s, uint64_t id, const Partisan__Ipc__Members *mem)
{
    Partisan__Ipc__Reply r = PARTISAN__IPC__REPLY__INIT;
    r.id = id;
    r.result_case = PARTISAN__IPC__REPLY__RESULT_MEMBERS;
    r.members = (Partisan__Ipc__Members *)mem;
    reply_with(s, &r);
}

void ipc_reply_stats(struct ipc_session *s, uint64_t id, const Partisan__Ipc__Stats *st)
{
    Partisan__Ipc__Reply r = PARTISAN__IPC__REPLY__INIT;
    r.id = id;
    r.result_case = PARTISAN__IPC__REPLY__RESULT_STATS;
    r.stats = (Partisan__Ipc__Stats *)st;
    reply_with(s, &r);
}

void ipc_reply_fault(struct ipc_session *s, uint64_t id, const char *text)
{
    Partisan__Ipc__FaultReply f = PARTISAN__IPC__FAULT_REPLY__INIT;
    f.text = (char *)text;
    Partisan__Ipc__Reply r = PARTISAN__IPC__REPLY__INIT;
    r.id = id;
    r.result_case = PARTISAN__IPC__REPLY__RESULT_FAULT;
    r.fault = &f;
    reply_with(s, &r);
}

void ipc_verdict(struct ipc_session *s, uint64_t id, Partisan__Ipc__ErrorCode code, const char *error)
{
    if (s->closing)
        return;
    Partisan__Ipc__Verdict v = PARTISAN__IPC__VERDICT__INIT;
    v.id = id;
    v.code = code;
    v.error = (char *)(error ? error : "");
    Partisan__Ipc__IpcServerMsg m = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    m.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_VERDICT;
    m.verdict = &v;
    send_server_msg(s, &m);
}

int ipc_deliver(struct ipc_session *s, const char *from_node, const char *name,
                const uint8_t *payload, size_t len, const char *channel)
{
    /* The envelope by hand (envelope.h), the payload copied behind it. */
    if (s->closing)
        return -1;
    struct envelope_deliver e = {
        .from_node = envelope_strof(from_node, strlen(from_node)),
        .name = envelope_strof(name, strlen(name)),
        .channel = envelope_strof(channel ? channel : "", channel ? strlen(channel) : 0),
    };
    size_t n = envelope_deliver_size(&e);
    return append_frame(s, n, &e, payload, len);
}

void ipc_broadcast_event(struct ipc_server *srv, Partisan__Ipc__MemberEvent__Kind kind,
                         const char *node, const char *address)
{
    Partisan__Ipc__MemberEvent e = PARTISAN__IPC__MEMBER_EVENT__INIT;
    e.kind = kind;
    e.node = (char *)node;
    e.address = (char *)(address ? address : "");
    Partisan__Ipc__IpcServerMsg m = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    m.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_EVENT;
    m.event = &e;
    struct ipc_session *next;
    for (struct ipc_session *s = srv->sessions; s; s = next) {
        next = s->next;
        if (s->subscribed)
            append_msg(s, &m.base, NULL, 0);
    }
}

void ipc_session_set_subscribed(struct ipc_session *s, bool on) { s->subscribed = on; }

size_t ipc_session_queued(const struct ipc_session *s)
{
    return evbuffer_get_length(bufferevent_get_output(s->bev));
}

void ipc_session_watch_drain(struct ipc_session *s)
{
    s->was_congested = true;
}

void ipc_session_block(struct ipc_session *s, const void *sink)
{
    if (s->closing || sink == s)
        return; /* waiting on itself would never end: its own reads drain it */
    s->blocked_on = sink;
    bufferevent_disable(s->bev, EV_READ);
}

void ipc_unblock(struct ipc_server *srv, const void *sink)
{
    for (struct ipc_session *s = srv->sessions; s; s = s->next) {
        if (s->blocked_on != sink || s->closing)
            continue;
        s->blocked_on = NULL;
        bufferevent_enable(s->bev, EV_READ);
        /* Frames already buffered would otherwise wait for new bytes; run
         * the read callback from the loop, not from inside this call. */
        bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    }
}

uid_t ipc_session_uid(const struct ipc_session *s) { return s->has_cred ? s->uid : (uid_t)-1; }

bool ipc_session_in_groups(const struct ipc_session *s, const gid_t *gids, size_t n)
{
    if (!s->has_cred)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (gids[i] == s->gid)
            return true;
        for (size_t j = 0; j < s->n_groups; j++)
            if (gids[i] == s->groups[j])
                return true;
    }
    return false;
}

unsigned ipc_session_flags(const struct ipc_session *s) { return s->flags; }
void ipc_session_set_flags(struct ipc_session *s, unsigned flags) { s->flags = flags; }

const char *ipc_session_label(const struct ipc_session *s) { return s->label; }
size_t ipc_session_count(const struct ipc_server *srv) { return srv->n_sessions; }

/* Decodes and handles every whole frame in the input buffer. */
static void process_input(struct ipc_session *s)
{
    struct ipc_server *srv = s->srv;
    struct evbuffer *in = bufferevent_get_input(s->bev);
    s->busy = true;
    size_t handled = 0;
    while (!s->closing && !s->blocked_on) {
        struct frame f;
        enum frame_result r = frame_evbuffer_next(in, FRAME_KIND_IPC,
                                                  srv->cfg.max_frame_bytes + IPC_ENVELOPE_SLACK, &f);
        if (r == FRAME_NEED_MORE)
            break;
        if (r != FRAME_OK) {
            char why[160];
            snprintf(why, sizeof why, "bad frame: %s (length %zu, ipc.max_frame_bytes %llu + %d)",
                     frame_result_str(r), f.body_len, (unsigned long long)srv->cfg.max_frame_bytes,
                     IPC_ENVELOPE_SLACK);
            session_close(s, why);
            break;
        }
        /* A send, the common case, decoded by hand (envelope.h) into the
         * structs protobuf-c would have made; anything else by protobuf-c. */
        struct envelope_send es;
        Partisan__Ipc__IpcRequest fast_req = PARTISAN__IPC__IPC_REQUEST__INIT;
        Partisan__Ipc__SendRequest fast_send = PARTISAN__IPC__SEND_REQUEST__INIT;
        char node[ENVELOPE_STR_MAX + 1], name[ENVELOPE_STR_MAX + 1], channel[ENVELOPE_STR_MAX + 1];
        Partisan__Ipc__IpcRequest *req;
        if (envelope_send_read(f.env, f.env_len, &es) == 0) {
            fast_send.node = envelope_cstr(node, &es.node);
            fast_send.name = envelope_cstr(name, &es.name);
            fast_send.channel = envelope_cstr(channel, &es.channel);
            fast_send.payload.data = (uint8_t *)es.payload.p;
            fast_send.payload.len = es.payload.len;
            fast_send.partition_key.data = (uint8_t *)es.key.p;
            fast_send.partition_key.len = es.key.len;
            fast_req.id = es.id;
            fast_req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SEND;
            fast_req.send = &fast_send;
            req = &fast_req;
        } else {
            req = partisan__ipc__ipc_request__unpack(&srv->arena.allocator, f.env_len, f.env);
        }
        if (!req) {
            pbarena_reset(&srv->arena);
            session_close(s, "bad frame: not a decodable IpcRequest");
            break;
        }
        if (req->body_case == PARTISAN__IPC__IPC_REQUEST__BODY_SEND && f.payload_len) {
            if (req->send->payload.len) {
                ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__INVALID,
                          "a send carries its payload after the envelope or in field 3, not both");
                pbarena_reset(&srv->arena);
                evbuffer_drain(in, f.size);
                continue;
            }
            /* The payload stays where it arrived, in the input buffer,
             * until the request has been handled. */
            req->send->payload.data = (uint8_t *)f.payload;
            req->send->payload.len = f.payload_len;
        } else if (req->body_case == PARTISAN__IPC__IPC_REQUEST__BODY_BROADCAST && f.payload_len) {
            if (req->broadcast->payload.len) {
                ipc_reply(s, req->id, PARTISAN__IPC__ERROR_CODE__INVALID,
                          "a broadcast carries its payload after the envelope or in field 2, not both");
                pbarena_reset(&srv->arena);
                evbuffer_drain(in, f.size);
                continue;
            }
            req->broadcast->payload.data = (uint8_t *)f.payload;
            req->broadcast->payload.len = f.payload_len;
        }
        /* Answers go in request order: the sends before this request are
         * acknowledged before it is answered. */
        if (s->ack_owed && req->body_case != PARTISAN__IPC__IPC_REQUEST__BODY_SEND)
            send_ack(s);
        srv->h.on_request(srv->h.ctx, s, req);
        pbarena_reset(&srv->arena);
        evbuffer_drain(in, f.size);
        handled++;
    }
    if (s->ack_owed && !s->closing)
        ack_batch(s, handled);
    s->busy = false;
    if (s->closing)
        session_free(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    /* All the socket holds, not libevent 2.1's 4 KiB: one batch per wakeup. */
    struct ipc_session *s = arg;
    if (!s->blocked_on && !s->closing)
        sockbuf_fill(bufferevent_get_input(bev), bufferevent_getfd(bev), IPC_READ_BATCH);
    process_input(s);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    /* Called when the output drained to the low watermark. */
    (void)bev;
    struct ipc_session *s = arg;
    ipc_unblock(s->srv, s);
    if (s->was_congested) {
        s->was_congested = false;
        if (s->srv->h.on_drained)
            s->srv->h.on_drained(s->srv->h.ctx, s);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct ipc_session *s = arg;
    if (what & BEV_EVENT_EOF) {
        size_t left = evbuffer_get_length(bufferevent_get_input(bev));
        if (left) {
            char why[96];
            snprintf(why, sizeof why, "client vanished mid-frame (%zu bytes unread)", left);
            session_close(s, why);
        } else {
            session_close(s, NULL);
        }
    } else if (what & BEV_EVENT_ERROR) {
        char why[96];
        snprintf(why, sizeof why, "socket error: %s", strerror(EVUTIL_SOCKET_ERROR()));
        session_close(s, why);
    }
}

/* The peer's supplementary groups, read once here so that every later check
 * is a lookup in memory. The kernel says how much room it needs (ERANGE); the
 * set is frozen at connect, so one retry with that size is enough, and the
 * loop bound only guards against a kernel that keeps asking for more. */
static void read_peer_groups(struct ipc_session *s, int fd)
{
    socklen_t want = 32 * sizeof(gid_t);
    for (int attempt = 0; attempt < 4; attempt++) {
        gid_t *buf = malloc(want);
        if (!buf) {
            log_warn("%s: out of memory reading its groups; only its primary group counts", s->label);
            return;
        }
        socklen_t len = want;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len) == 0) {
            s->groups = buf;
            s->n_groups = len / sizeof(gid_t);
            return;
        }
        int e = errno;
        free(buf);
        if (e != ERANGE) {
            log_warn("%s: cannot read its supplementary groups (SO_PEERGROUPS needs Linux 4.13): %s; "
                     "only its primary group counts", s->label, strerror(e));
            return;
        }
        want = len > want ? len : want * 2;
    }
    log_warn("%s: its supplementary groups kept growing; only its primary group counts", s->label);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)l; (void)sa; (void)socklen;
    struct ipc_server *srv = arg;
    struct ipc_session *s = calloc(1, sizeof *s);
    struct bufferevent *bev = s ? bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        log_error("ipc: out of memory accepting a client");
        free(s);
        close(fd);
        return;
    }
    s->srv = srv;
    s->bev = bev;
    s->id = ++srv->next_id;
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
        s->has_cred = true;
        s->uid = cred.uid;
        s->gid = cred.gid;
        snprintf(s->label, sizeof s->label, "client %llu (pid %d, uid %u)",
                 (unsigned long long)s->id, (int)cred.pid, (unsigned)cred.uid);
        read_peer_groups(s, fd);
    } else {
        /* No credentials: the session is nobody, refused whatever needs an identity. */
        log_warn("ipc: client %llu: cannot read its credentials (SO_PEERCRED): %s",
                 (unsigned long long)s->id, strerror(errno));
        snprintf(s->label, sizeof s->label, "client %llu", (unsigned long long)s->id);
    }
    s->next = srv->sessions;
    if (srv->sessions)
        srv->sessions->prev = s;
    srv->sessions = s;
    srv->n_sessions++;
    /* Room for big batches of deliveries in the socket (best effort). */
    int sndbuf = 1024 * 1024;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    /* Bigger batches than libevent's 16 KiB default: fewer syscalls and
     * wakeups per message when an application streams. */
    bufferevent_set_max_single_read(bev, 256 * 1024);
    bufferevent_set_max_single_write(bev, 256 * 1024);
    bufferevent_setcb(bev, on_read, on_write, on_event, s);
    size_t low = srv->cfg.max_queue_bytes / 4;
    if (srv->cfg.drain_bytes && srv->cfg.drain_bytes < low)
        low = srv->cfg.drain_bytes;
    bufferevent_setwatermark(bev, EV_WRITE, low, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    log_debug("%s: connected", s->label);
}

static void on_listener_error(struct evconnlistener *l, void *arg)
{
    struct ipc_server *srv = arg;
    /* Out of descriptors (EMFILE, ENFILE): the pending connection stays
     * readable, so going on would spin at full speed. Pause, retry in a
     * second, and go on serving the sessions there are. */
    log_warn("ipc: accepting applications: %s; pausing for 1 s", strerror(EVUTIL_SOCKET_ERROR()));
    evconnlistener_disable(l);
    struct timeval tv = { 1, 0 };
    evtimer_add(srv->accept_retry, &tv);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct ipc_server *srv = arg;
    evconnlistener_enable(srv->listener);
}

/* Removes a socket file nothing answers on; refuses to touch anything else. */
static int clear_stale_socket(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; not removing it", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
    int e = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "another daemon is already listening on %s; refusing to start", path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path, strerror(e));
        return -1;
    }
    log_info("ipc: removing stale socket %s", path);
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

struct ipc_server *ipc_server_new(struct event_base *base, const struct ipc_config *cfg,
                                  const struct ipc_handlers *h, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t plen = strlen(cfg->path);
    if (plen == 0 || plen >= sizeof sun.sun_path) {
        snprintf(err, errlen, "socket path \"%s\" is empty or longer than %zu bytes", cfg->path,
                 sizeof sun.sun_path - 1);
        return NULL;
    }
    memcpy(sun.sun_path, cfg->path, plen + 1);
    if (clear_stale_socket(cfg->path, err, errlen) != 0)
        return NULL;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    /* Created with no access at all, then opened up to the configured mode,
     * so no client can slip in under a looser umask in between. */
    mode_t old = umask(0777);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    int e = errno;
    umask(old);
    if (rc != 0) {
        snprintf(err, errlen, "cannot bind %s: %s", cfg->path, strerror(e));
        close(fd);
        return NULL;
    }
    if (chmod(cfg->path, cfg->mode) != 0 || listen(fd, 128) != 0) {
        snprintf(err, errlen, "cannot set up %s: %s", cfg->path, strerror(errno));
        close(fd);
        unlink(cfg->path);
        return NULL;
    }

    struct ipc_server *srv = calloc(1, sizeof *srv);
    if (!srv || pbarena_init(&srv->arena, 64 * 1024) != 0) {
        snprintf(err, errlen, "out of memory");
        free(srv);
        close(fd);
        unlink(cfg->path);
        return NULL;
    }
    srv->base = base;
    srv->cfg = *cfg;
    srv->path = strdup(cfg->path);
    srv->cfg.path = srv->path;
    srv->h = *h;
    srv->listener = evconnlistener_new(base, on_accept, srv,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    srv->accept_retry = evtimer_new(base, on_accept_retry, srv);
    if (!srv->listener || !srv->path || !srv->accept_retry) {
        snprintf(err, errlen, "cannot listen on %s", cfg->path);
        if (!srv->listener)
            close(fd);
        ipc_server_free(srv);
        return NULL;
    }
    evconnlistener_set_error_cb(srv->listener, on_listener_error);
    return srv;
}

void ipc_server_free(struct ipc_server *srv)
{
    if (!srv)
        return;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    if (srv->accept_retry)
        event_free(srv->accept_retry);
    while (srv->sessions)
        session_close(srv->sessions, NULL);
    if (srv->path)
        unlink(srv->path);
    free(srv->path);
    pbarena_free(&srv->arena);
    free(srv);
}
