/* libpartisan-client: see partisan.h for the contract.
 *
 * Shape of the data path (DESIGN.md, "The data path never waits"):
 * - partisan_send() packs its envelope and copies its payload straight into
 *   the outbound buffer (frame.h: the payload travels raw after the
 *   envelope). It writes at once unless the handle wrote within LINGER_US
 *   (a lone send is never delayed); otherwise the frame joins the pending
 *   bytes, which go out in one write once they pass BATCH_BYTES, with the
 *   next send after LINGER_US, when a call waits on the socket, or when
 *   partisan_flush() is called (an event loop calls it when partisan_fd()
 *   is writable). Blocking, it waits only
 *   when PENDING_MAX bytes are unwritten, and keeps reading meanwhile so
 *   the daemon can never block on us; non-blocking, it says PARTISAN_EBUSY.
 * - Accepted sends are answered by Acks covering many ids; a failed send
 *   gets its own Reply, kept as a failure report naming its sequence
 *   number (the request id), and the first one is also reported by the
 *   next partisan_send()/flush() as before.
 * - Every read takes all the socket has and decodes every whole frame
 *   (frame_next(), the reader the daemon uses too); deliveries and events
 *   met on the way go to a FIFO for partisan_recv().
 * - Decoding uses a per-handle bump arena (pbarena.c, the daemon's), so a
 *   reply costs no malloc. */
#include "partisan.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_reply.h"
#include "envelope.h"
#include "frame.h"
#include "ipc.pb-c.h"
#include "pbarena.h"

#define PARTISAN_API __attribute__((visibility("default")))

/* A frame from the daemon above this is a protocol error, refused before
 * anything of that size is allocated. Requests are held to the same bound so
 * the daemon is never handed a frame it would have to drop us for. */
#define MAX_FRAME_BODY (64u * 1024 * 1024)
#define MAX_NAME 255
/* What a channel's name may be at most (the daemon's CONFIG_CHANNEL_NAME_MAX). */
#define MAX_CHANNEL PARTISAN_CHANNEL_MAX
/* How long partisan_send() lets a full socket hold it before giving up: the
 * daemon drains sessions continuously, so this only fires when it is wedged. */
#define SEND_TIMEOUT_MS 30000
/* Outstanding async replies: above the soft mark partisan_send() reads what
 * is already there; above the hard mark it waits until below it, so the
 * daemon's bounded per-session queue never fills with replies for us. */
#define ASYNC_SOFT 16384
#define ASYNC_HARD 131072
#define ASYNC_DRAIN_EVERY 256
#define READ_CHUNK (64u * 1024)
#define ARENA_BLOCK (64u * 1024)
/* Pending bytes that go out without waiting for anything else. */
#define BATCH_BYTES (128u * 1024)
/* The socket's send buffer: room for several batches in flight, so the
 * daemon reads big batches while the next one gathers. */
#define SOCKET_SNDBUF (1024 * 1024)
/* A send this long after the handle's last write goes out at once. */
#ifndef LINGER_US
#define LINGER_US 100
#endif
#define CLOCK_EVERY 16
/* Unwritten bytes past which a blocking send waits for the socket and a
 * non-blocking one is refused with PARTISAN_EBUSY. */
#define PENDING_MAX (1024u * 1024)
/* Failure reports kept for partisan_next_failure(); older ones beyond this
 * are counted, not kept. */
#define FAILURES_MAX 1024

/* ---- byte buffers: live bytes are data[off, len) ---- */

struct bytes {
    uint8_t *data;
    size_t off, len, cap;
};

/* Makes room for `need` more bytes after len; compacts before growing. */
static int bytes_reserve(struct bytes *b, size_t need)
{
    if (b->cap - b->len >= need)
        return 0;
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= need)
            return 0;
    }
    size_t want = b->len + need;
    if (want < need)
        return -1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < want) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static size_t bytes_live(const struct bytes *b)
{
    return b->len - b->off;
}

/* ---- the handle ---- */

struct qmsg {
    struct qmsg *next;
    struct partisan_message m;
    char data[];            /* strings and payload, so one malloc per message */
};

enum wait_kind { WAIT_PLAIN, WAIT_STATUS, WAIT_MEMBERS, WAIT_STATS, WAIT_FAULT };

struct partisan_client {
    int fd;
    int broken;             /* 0, or the error every later call returns */
    uint64_t next_id;

    struct bytes out;
    uint64_t out_written;   /* bytes ever written: tells whether a frame started leaving */
    uint64_t last_write_us; /* when bytes last left: a send soon after joins a batch */
    size_t write_at;        /* pending bytes at which a send writes without waiting for LINGER_US */
    unsigned batch_frames;  /* sends queued since the last write */
    struct bytes in;
    struct pbarena arena;
    bool nonblocking;

    /* Ids of pipelined sends not yet answered, oldest first (a ring): an
     * Ack answers a prefix, a Reply names one. */
    uint64_t *fifo;
    size_t fifo_head, fifo_n, fifo_cap;
    uint64_t last_seq;
    uint64_t last_send_id;  /* of any send, pipelined or not */
    uint64_t sync_asked;    /* last_send_id when the last SyncRequest was queued */

    /* Failure reports not yet taken (a ring), and those that did not fit. */
    struct partisan_failure *fails;
    size_t fail_head, fail_n;
    uint64_t fails_dropped;

    struct qmsg *q_head, *q_tail;
    size_t q_len;

    /* Replies to partisan_send() not yet read, and the first failure among
     * those read but not yet reported. */
    uint64_t async_outstanding;
    unsigned sends_since_drain;
    int async_err;
    uint64_t async_more;    /* further failures while async_err was pending */
    char async_msg[512];

    /* The one blocking request being waited for (0: none). */
    uint64_t wait_id;
    enum wait_kind wait_kind;
    bool wait_is_send;      /* an Ack answers it */
    bool wait_done;
    int wait_code;
    struct partisan_status *wait_status;
    struct partisan_member *wait_members;
    size_t wait_n;
    struct partisan_stats *wait_stats;
    char *wait_text;

    /* Blocking requests that timed out: their replies are dropped on arrival
     * instead of being miscounted as async ones. Rarely more than a few.
     * The low bit of each entry says it was a send (an Ack answers it). */
    uint64_t *abandoned;
    size_t n_abandoned, cap_abandoned;

    char last_error[512];
};

static void set_error(partisan_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(partisan_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
}

static int map_code(Partisan__Ipc__ErrorCode code)
{
    switch (code) {
    case PARTISAN__IPC__ERROR_CODE__OK: return PARTISAN_OK;
    case PARTISAN__IPC__ERROR_CODE__INVALID: return PARTISAN_EINVAL;
    case PARTISAN__IPC__ERROR_CODE__NAME_TAKEN: return PARTISAN_ENAMETAKEN;
    case PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME: return PARTISAN_ENONAME;
    case PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE: return PARTISAN_ENONODE;
    case PARTISAN__IPC__ERROR_CODE__NODE_DOWN: return PARTISAN_ENODEDOWN;
    case PARTISAN__IPC__ERROR_CODE__NOT_OWNER: return PARTISAN_ENOTOWNER;
    case PARTISAN__IPC__ERROR_CODE__TOO_LARGE: return PARTISAN_ETOOBIG;
    case PARTISAN__IPC__ERROR_CODE__UNSUPPORTED: return PARTISAN_EUNSUPPORTED;
    case PARTISAN__IPC__ERROR_CODE__BUSY: return PARTISAN_EBUSY;
    case PARTISAN__IPC__ERROR_CODE__BAD_ADDRESS: return PARTISAN_EBADADDR;
    case PARTISAN__IPC__ERROR_CODE__INTERNAL: return PARTISAN_EINTERNAL;
    case PARTISAN__IPC__ERROR_CODE__SELF_LEFT: return PARTISAN_ELEFT;
    case PARTISAN__IPC__ERROR_CODE__NO_SUCH_CHANNEL: return PARTISAN_ENOCHANNEL;
    case PARTISAN__IPC__ERROR_CODE__PERMISSION_DENIED: return PARTISAN_EPERM;
    case PARTISAN__IPC__ERROR_CODE__PEER_RESTARTED: return PARTISAN_ERESTARTED;
    default: break;
    }
    /* A code from a newer daemon: still a failure, of a kind we cannot name. */
    return PARTISAN_EINTERNAL;
}

PARTISAN_API const char *partisan_strerror(int err)
{
    switch (err) {
    case PARTISAN_OK: return "success";
    case PARTISAN_ENODAEMON: return "no daemon at the socket path";
    case PARTISAN_ETIMEDOUT: return "timed out";
    case PARTISAN_ECLOSED: return "the daemon closed the connection";
    case PARTISAN_EPROTO: return "protocol error from the daemon";
    case PARTISAN_ENOMEM: return "out of memory";
    case PARTISAN_EINVAL: return "invalid argument";
    case PARTISAN_ENAMETAKEN: return "name is taken";
    case PARTISAN_ENONAME: return "no such name";
    case PARTISAN_ENONODE: return "no such node";
    case PARTISAN_ENODEDOWN: return "node is down";
    case PARTISAN_ENOTOWNER: return "name is not held by this client";
    case PARTISAN_ETOOBIG: return "payload too large";
    case PARTISAN_EUNSUPPORTED: return "request not supported by the daemon";
    case PARTISAN_EBUSY: return "busy, try again";
    case PARTISAN_EBADADDR: return "bad address";
    case PARTISAN_EIO: return "socket error";
    case PARTISAN_EASYNC: return "an earlier send failed";
    case PARTISAN_EINTERNAL: return "daemon internal error";
    case PARTISAN_ELEFT: return "this node has left the cluster";
    case PARTISAN_ENOCHANNEL: return "no such channel";
    case PARTISAN_EPERM: return "permission denied";
    case PARTISAN_ERESTARTED: return "the destination restarted before confirming";
    }
    return "unknown error";
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -1 means no deadline. */
static int64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

static int64_t deadline_min(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static int remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return 0;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static int check_str(partisan_client *c, const char *what, const char *s)
{
    if (!s || !*s) {
        set_error(c, "%s is empty", what);
        return PARTISAN_EINVAL;
    }
    if (strnlen(s, MAX_NAME + 1) > MAX_NAME) {
        set_error(c, "%s is longer than %d bytes", what, MAX_NAME);
        return PARTISAN_EINVAL;
    }
    return 0;
}

static int fail_broken(partisan_client *c, int err)
{
    c->broken = err;
    return err;
}

/* ---- inbound ---- */

static struct qmsg *qmsg_new(size_t extra)
{
    struct qmsg *q = malloc(sizeof *q + extra);
    if (q) {
        memset(q, 0, sizeof *q);
    }
    return q;
}

static void queue_push(partisan_client *c, struct qmsg *q)
{
    q->next = NULL;
    if (c->q_tail)
        c->q_tail->next = q;
    else
        c->q_head = q;
    c->q_tail = q;
    c->q_len++;
}

static int on_deliver(partisan_client *c, const Partisan__Ipc__Deliver *d, const uint8_t *raw,
                      size_t raw_len)
{
    /* An empty channel (a daemon that predates channels, or one leaving the
     * field out for the default) is the "default" channel. */
    const char *ch = *d->channel ? d->channel : "default";
    /* The payload follows the envelope raw; field 3 only from a daemon
     * that put it there. */
    const uint8_t *pl = raw_len ? raw : d->payload.data;
    size_t nf = strlen(d->from_node), nn = strlen(d->name), nc = strlen(ch), np = raw_len ? raw_len : d->payload.len;
    struct qmsg *q = qmsg_new(nf + nn + nc + 3 + np + 1);
    if (!q)
        return PARTISAN_ENOMEM;
    char *cur = q->data;
    q->m.kind = PARTISAN_MSG_DATA;
    q->m.from_node = reply_put_str(&cur, d->from_node, nf);
    q->m.name = reply_put_str(&cur, d->name, nn);
    q->m.channel = reply_put_str(&cur, ch, nc);
    q->m.payload = (uint8_t *)cur;
    if (np)
        memcpy(cur, pl, np);
    cur[np] = '\0';   /* lets text payloads be printed as strings */
    q->m.len = np;
    queue_push(c, q);
    return 0;
}

static int on_event(partisan_client *c, const Partisan__Ipc__MemberEvent *e)
{
    size_t nn = strlen(e->node), na = strlen(e->address);
    struct qmsg *q = qmsg_new(nn + na + 2);
    if (!q)
        return PARTISAN_ENOMEM;
    char *cur = q->data;
    q->m.kind = PARTISAN_MSG_EVENT;
    switch (e->kind) {
    case PARTISAN__IPC__MEMBER_EVENT__KIND__LEFT: q->m.event = PARTISAN_EVENT_LEFT; break;
    case PARTISAN__IPC__MEMBER_EVENT__KIND__UP: q->m.event = PARTISAN_EVENT_UP; break;
    case PARTISAN__IPC__MEMBER_EVENT__KIND__DOWN: q->m.event = PARTISAN_EVENT_DOWN; break;
    case PARTISAN__IPC__MEMBER_EVENT__KIND__JOINED: q->m.event = PARTISAN_EVENT_JOINED; break;
    case PARTISAN__IPC__MEMBER_EVENT__KIND__NEIGHBOR_UP: q->m.event = PARTISAN_EVENT_NEIGHBOR_UP; break;
    case PARTISAN__IPC__MEMBER_EVENT__KIND__NEIGHBOR_DOWN: q->m.event = PARTISAN_EVENT_NEIGHBOR_DOWN; break;
    default:
        free(q);    /* a kind from a newer daemon: not one this library can name */
        return 0;
    }
    q->m.node = reply_put_str(&cur, e->node, nn);
    q->m.address = reply_put_str(&cur, e->address, na);
    queue_push(c, q);
    return 0;
}

static bool take_abandoned(partisan_client *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_abandoned; i++) {
        if (c->abandoned[i] >> 1 == id) {
            c->abandoned[i] = c->abandoned[--c->n_abandoned];
            return true;
        }
    }
    return false;
}

/* An Ack through `through` also answers abandoned sends up to it. */
static void ack_abandoned(partisan_client *c, uint64_t through)
{
    for (size_t i = 0; i < c->n_abandoned;) {
        if ((c->abandoned[i] & 1) && c->abandoned[i] >> 1 <= through)
            c->abandoned[i] = c->abandoned[--c->n_abandoned];
        else
            i++;
    }
}

static void abandon(partisan_client *c, uint64_t id, bool is_send)
{
    if (c->n_abandoned == c->cap_abandoned) {
        size_t cap = c->cap_abandoned ? c->cap_abandoned * 2 : 8;
        uint64_t *p = realloc(c->abandoned, cap * sizeof *p);
        if (!p)
            return;   /* its reply will then count as an async one: harmless */
        c->abandoned = p;
        c->cap_abandoned = cap;
    }
    c->abandoned[c->n_abandoned++] = id << 1 | (is_send ? 1u : 0u);
}

/* ---- pipelined sends in flight, and their failures ---- */

static int fifo_push(partisan_client *c, uint64_t id)
{
    if (c->fifo_n == c->fifo_cap) {
        size_t cap = c->fifo_cap ? c->fifo_cap * 2 : 1024;
        uint64_t *p = malloc(cap * sizeof *p);
        if (!p)
            return -1;
        for (size_t i = 0; i < c->fifo_n; i++)
            p[i] = c->fifo[(c->fifo_head + i) & (c->fifo_cap - 1)];
        free(c->fifo);
        c->fifo = p;
        c->fifo_cap = cap;
        c->fifo_head = 0;
    }
    c->fifo[(c->fifo_head + c->fifo_n++) & (c->fifo_cap - 1)] = id;
    return 0;
}

/* Removes id wherever it is; false if it is not in flight. A Reply of its
 * own is for a failure, and answers come in order, so the id is at or near
 * the head: the entries before it move up one and the head advances, at
 * the cost of how far in it was (a whole stream of refused sends must not
 * cost the square of its length). */
static bool fifo_remove(partisan_client *c, uint64_t id)
{
    size_t mask = c->fifo_cap - 1;
    for (size_t i = 0; i < c->fifo_n; i++) {
        if (c->fifo[(c->fifo_head + i) & mask] != id)
            continue;
        for (size_t k = i; k > 0; k--)
            c->fifo[(c->fifo_head + k) & mask] = c->fifo[(c->fifo_head + k - 1) & mask];
        c->fifo_head = (c->fifo_head + 1) & mask;
        c->fifo_n--;
        return true;
    }
    return false;
}

static void note_failure(partisan_client *c, uint64_t id, int code, const char *why)
{
    if (c->async_err) {
        c->async_more++;
    } else {
        c->async_err = code;
        c->async_more = 0;
        snprintf(c->async_msg, sizeof c->async_msg, "%s: %s", partisan_strerror(code),
                 *why ? why : "(no detail from the daemon)");
    }
    if (!c->fails && !(c->fails = malloc(FAILURES_MAX * sizeof *c->fails))) {
        c->fails_dropped++;
        return;
    }
    if (c->fail_n == FAILURES_MAX) {
        /* Keep the newest: the oldest were most likely dealt with already. */
        c->fail_head = (c->fail_head + 1) % FAILURES_MAX;
        c->fail_n--;
        c->fails_dropped++;
    }
    struct partisan_failure *f = &c->fails[(c->fail_head + c->fail_n++) % FAILURES_MAX];
    f->seq = id;
    f->code = code;
    snprintf(f->message, sizeof f->message, "%s", *why ? why : partisan_strerror(code));
}

static void on_ack(partisan_client *c, uint64_t through)
{
    while (c->fifo_n && c->fifo[c->fifo_head & (c->fifo_cap - 1)] <= through) {
        c->fifo_head = (c->fifo_head + 1) & (c->fifo_cap - 1);
        c->fifo_n--;
    }
    c->async_outstanding = c->fifo_n;
    if (c->wait_id && c->wait_is_send && !c->wait_done && c->wait_id <= through) {
        c->wait_done = true;
        c->wait_code = 0;
    }
    if (c->n_abandoned)
        ack_abandoned(c, through);
}

static int on_reply(partisan_client *c, const Partisan__Ipc__Reply *r)
{
    int code = map_code(r->code);
    if (c->wait_id && r->id == c->wait_id) {
        c->wait_done = true;
        c->wait_code = code;
        if (code) {
            set_error(c, "%s", *r->error ? r->error : partisan_strerror(code));
            return 0;
        }
        if (c->wait_kind == WAIT_STATUS) {
            if (r->result_case != PARTISAN__IPC__REPLY__RESULT_STATUS) {
                c->wait_code = PARTISAN_EPROTO;
                set_error(c, "the daemon's reply to status carried no status");
            } else if (!(c->wait_status = reply_convert_status(r->status))) {
                c->wait_code = PARTISAN_ENOMEM;
            }
        } else if (c->wait_kind == WAIT_MEMBERS) {
            if (r->result_case != PARTISAN__IPC__REPLY__RESULT_MEMBERS) {
                c->wait_code = PARTISAN_EPROTO;
                set_error(c, "the daemon's reply to members carried no member list");
            } else if (!(c->wait_members = reply_convert_members(r->members, &c->wait_n))) {
                c->wait_code = PARTISAN_ENOMEM;
            }
        } else if (c->wait_kind == WAIT_FAULT) {
            const char *t = r->result_case == PARTISAN__IPC__REPLY__RESULT_FAULT ? r->fault->text : "";
            if (!(c->wait_text = strdup(t)))
                c->wait_code = PARTISAN_ENOMEM;
        } else if (c->wait_kind == WAIT_STATS) {
            if (r->result_case != PARTISAN__IPC__REPLY__RESULT_STATS) {
                c->wait_code = PARTISAN_EPROTO;
                set_error(c, "the daemon's reply to stats carried no stats");
            } else if (!(c->wait_stats = reply_convert_stats(r->stats))) {
                c->wait_code = PARTISAN_ENOMEM;
            }
        }
        return 0;
    }
    if (c->n_abandoned && take_abandoned(c, r->id))
        return 0;
    if (!fifo_remove(c, r->id))
        return 0;   /* a reply to nothing we wait for: not worth killing the session */
    c->async_outstanding = c->fifo_n;
    if (code)
        note_failure(c, r->id, code, r->error);
    return 0;
}

/* Decodes every whole frame in the inbound buffer. */
static int parse_frames(partisan_client *c)
{
    struct bytes *b = &c->in;
    int rc = 0;
    while (rc == 0) {
        struct frame f;
        enum frame_result fr = frame_next(FRAME_KIND_IPC, b->data + b->off, bytes_live(b), MAX_FRAME_BODY, &f);
        if (fr == FRAME_NEED_MORE)
            break;
        if (fr != FRAME_OK) {
            set_error(c, "bad frame from the daemon: %s (length %zu)", frame_result_str(fr), f.body_len);
            return fail_broken(c, PARTISAN_EPROTO);
        }
        struct envelope_deliver ed;
        if (envelope_deliver_read(f.env, f.env_len, &ed) == 0) {
            /* The common case, decoded by hand (envelope.h). */
            char from[ENVELOPE_STR_MAX + 1], name[ENVELOPE_STR_MAX + 1], ch[ENVELOPE_STR_MAX + 1];
            Partisan__Ipc__Deliver d = PARTISAN__IPC__DELIVER__INIT;
            d.from_node = envelope_cstr(from, &ed.from_node);
            d.name = envelope_cstr(name, &ed.name);
            d.channel = envelope_cstr(ch, &ed.channel);
            d.payload.data = (uint8_t *)ed.payload.p;
            d.payload.len = ed.payload.len;
            rc = on_deliver(c, &d, f.payload, f.payload_len);
            b->off += f.size;
            continue;
        }
        Partisan__Ipc__IpcServerMsg *m = partisan__ipc__ipc_server_msg__unpack(
            &c->arena.allocator, f.env_len, f.env);
        if (!m) {
            pbarena_reset(&c->arena);
            set_error(c, "undecodable message from the daemon (%zu bytes)", f.body_len);
            return fail_broken(c, PARTISAN_EPROTO);
        }
        switch (m->body_case) {
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_REPLY: rc = on_reply(c, m->reply); break;
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_DELIVER:
            rc = on_deliver(c, m->deliver, f.payload, f.payload_len);
            break;
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_EVENT: rc = on_event(c, m->event); break;
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_ACK: on_ack(c, m->ack->through_id); break;
        case PARTISAN__IPC__IPC_SERVER_MSG__BODY_VERDICT:
            /* A reliable send accepted earlier that then failed. */
            note_failure(c, m->verdict->id, map_code(m->verdict->code), m->verdict->error);
            break;
        default: break;   /* a kind added by a newer daemon */
        }
        pbarena_reset(&c->arena);
        b->off += f.size;
    }
    if (b->off == b->len)
        b->off = b->len = 0;
    if (rc == PARTISAN_ENOMEM) {
        /* A delivery or event is lost: say so for good rather than go on
         * as if the stream were whole. */
        set_error(c, "out of memory while decoding a message from the daemon");
        return fail_broken(c, rc);
    }
    return rc;
}

/* Reads everything the socket has, decoding as it goes. */
static int read_some(partisan_client *c)
{
    for (;;) {
        struct bytes *b = &c->in;
        size_t want = READ_CHUNK, body = 0, live = bytes_live(b);
        /* A frame larger than a chunk: make room for all of it at once
         * (parse_frames() has already refused one above the maximum). */
        if (live >= FRAME_IPC_HEADER &&
            frame_ipc_peek(b->data + b->off, live, MAX_FRAME_BODY, &body) == FRAME_NEED_MORE &&
            FRAME_IPC_HEADER + body - live > want)
            want = FRAME_IPC_HEADER + body - live;
        if (bytes_reserve(b, want) < 0) {
            set_error(c, "out of memory for the inbound buffer");
            return PARTISAN_ENOMEM;
        }
        size_t space = b->cap - b->len;
        ssize_t n = recv(c->fd, b->data + b->len, space, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == ECONNRESET) {
                set_error(c, "the daemon closed the connection");
                return fail_broken(c, PARTISAN_ECLOSED);
            }
            set_error(c, "read from the daemon: %s", strerror(errno));
            return fail_broken(c, PARTISAN_EIO);
        }
        if (n == 0) {
            set_error(c, "the daemon closed the connection");
            return fail_broken(c, PARTISAN_ECLOSED);
        }
        b->len += (size_t)n;
        int rc = parse_frames(c);
        if (rc)
            return rc;
        if ((size_t)n < space)
            return 0;   /* a short read: the socket is empty */
    }
}

/* ---- outbound ---- */

static int write_some(partisan_client *c)
{
    struct bytes *b = &c->out;
    if (bytes_live(b)) {
        c->last_write_us = now_us();
        c->batch_frames = 0;
    }
    while (bytes_live(b)) {
        ssize_t n = send(c->fd, b->data + b->off, bytes_live(b), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EPIPE || errno == ECONNRESET) {
                set_error(c, "the daemon closed the connection");
                return fail_broken(c, PARTISAN_ECLOSED);
            }
            set_error(c, "write to the daemon: %s", strerror(errno));
            return fail_broken(c, PARTISAN_EIO);
        }
        b->off += (size_t)n;
        c->out_written += (uint64_t)n;
    }
    b->off = b->len = 0;
    return 0;
}

/* One wait on the socket: writes pending output when it can and reads (and
 * decodes) whatever arrives, so the daemon never stalls on a full socket
 * toward us while we wait to write to it. PARTISAN_ETIMEDOUT if nothing
 * happened within timeout_ms, and also after the work of a step with no time
 * left: otherwise a steady stream of deliveries would keep every caller's
 * loop going past its deadline. Callers check what they wait for first. */
static int io_step(partisan_client *c, int timeout_ms)
{
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    if (bytes_live(&c->out))
        p.events |= POLLOUT;
    int n = poll(&p, 1, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        set_error(c, "poll: %s", strerror(errno));
        return PARTISAN_EIO;
    }
    if (n == 0)
        return PARTISAN_ETIMEDOUT;
    int rc;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        if ((rc = read_some(c)) < 0)
            return rc;
    }
    if (p.revents & POLLOUT) {
        if ((rc = write_some(c)) < 0)
            return rc;
    }
    return timeout_ms == 0 ? PARTISAN_ETIMEDOUT : 0;
}

/* Writes pending output until none is left or the deadline passes. */
static int drain_out(partisan_client *c, int64_t deadline)
{
    int rc = write_some(c);
    while (rc == 0 && bytes_live(&c->out)) {
        rc = io_step(c, remaining_ms(deadline));
        if (rc == PARTISAN_ETIMEDOUT && bytes_live(&c->out))
            return rc;
        if (rc == PARTISAN_ETIMEDOUT)
            rc = 0;
    }
    return rc;
}

/* Packs req as a frame at the end of the outbound buffer; *frame_start is
 * its position counted in bytes ever queued, so the caller can tell later
 * whether any of it has left. */
/* The payload of a send travels after the envelope, not in it. */
static const ProtobufCBinaryData *take_payload(Partisan__Ipc__IpcRequest *req, ProtobufCBinaryData *saved)
{
    if (req->body_case != PARTISAN__IPC__IPC_REQUEST__BODY_SEND)
        return NULL;
    *saved = req->send->payload;
    req->send->payload.data = NULL;
    req->send->payload.len = 0;
    return saved;
}

static int queue_request(partisan_client *c, Partisan__Ipc__IpcRequest *req, uint64_t *frame_start)
{
    req->id = c->next_id++;
    ProtobufCBinaryData saved = { 0, NULL };
    const ProtobufCBinaryData *pl = take_payload(req, &saved);
    size_t plen = pl ? pl->len : 0;
    /* A send's envelope by hand (envelope.h): the same bytes protobuf-c
     * would write, at a fraction of the cost. */
    struct envelope_send es;
    /* (Not for a confirmed send: the hand encoder writes no confirm field.) */
    bool fast = req->body_case == PARTISAN__IPC__IPC_REQUEST__BODY_SEND && !req->send->confirm;
    if (fast) {
        const Partisan__Ipc__SendRequest *q = req->send;
        es = (struct envelope_send){
            .id = req->id,
            .node = envelope_strof(q->node, strlen(q->node)),
            .name = envelope_strof(q->name, strlen(q->name)),
            .channel = envelope_strof(q->channel, strlen(q->channel)),
            .key = { q->partition_key.data, q->partition_key.len },
        };
    }
    size_t env = fast ? envelope_send_size(&es) : partisan__ipc__ipc_request__get_packed_size(req);
    size_t body = FRAME_ENVELOPE_PREFIX + env + plen;
    if (body > MAX_FRAME_BODY || body < plen) {
        set_error(c, "request of %zu bytes exceeds the %u-byte frame limit", body, MAX_FRAME_BODY);
        return PARTISAN_ETOOBIG;
    }
    if (bytes_reserve(&c->out, FRAME_IPC_HEADER + body) < 0) {
        set_error(c, "out of memory for the outbound buffer");
        return PARTISAN_ENOMEM;
    }
    *frame_start = c->out_written + bytes_live(&c->out);
    uint8_t *p = c->out.data + c->out.len, *e = p + frame_env_offset(FRAME_KIND_IPC);
    if (fast)
        envelope_send_write(e, &es);
    else
        partisan__ipc__ipc_request__pack(req, e);
    if (plen)
        memcpy(e + env, pl->data, plen);
    frame_seal(FRAME_KIND_IPC, p, env, plen);
    c->out.len += FRAME_IPC_HEADER + body;
    return 0;
}

/* Queues req and writes it out. If the deadline passes before any byte of
 * this frame has left, the frame is withdrawn and PARTISAN_ETIMEDOUT returned:
 * the request was not sent. Once part of it has left it must be completed
 * (the stream has no other way to stay in step), so it stays queued for later
 * calls to finish and this returns 0. */
static int put_request(partisan_client *c, Partisan__Ipc__IpcRequest *req, int64_t deadline)
{
    uint64_t start;
    int rc = queue_request(c, req, &start);
    if (rc)
        return rc;
    rc = drain_out(c, deadline);
    if (rc == PARTISAN_ETIMEDOUT) {
        if (c->out_written <= start) {
            c->out.len -= (size_t)(c->out_written + bytes_live(&c->out) - start);
            set_error(c, "the daemon did not take the request in time (socket full)");
            return rc;
        }
        return 0;
    }
    return rc;
}

/* Queues a SyncRequest, which the daemon answers only after the Ack of
 * every send before it (its Reply is not waited for: the Ack is what
 * counts). Once per batch of sends: a loop of partisan_flush(c, 0) must not
 * add one per call. */
static int queue_sync(partisan_client *c)
{
    if (c->sync_asked >= c->last_send_id)
        return 0;
    c->sync_asked = c->last_send_id;
    Partisan__Ipc__SyncRequest r = PARTISAN__IPC__SYNC_REQUEST__INIT;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SYNC;
    req.sync = &r;
    uint64_t start;
    return queue_request(c, &req, &start);
}

/* Sends a request and waits for its reply. */
static int call(partisan_client *c, Partisan__Ipc__IpcRequest *req, enum wait_kind kind, int timeout_ms)
{
    if (c->broken)
        return c->broken;
    int64_t deadline = deadline_after(timeout_ms);
    int rc = put_request(c, req, deadline_min(deadline, deadline_after(SEND_TIMEOUT_MS)));
    if (rc)
        return rc;
    if (req->body_case == PARTISAN__IPC__IPC_REQUEST__BODY_SEND) {
        /* Its answer is an Ack: ask for it now rather than in 1 ms. */
        c->last_send_id = req->id;
        if ((rc = queue_sync(c)) || (rc = write_some(c)))
            return rc;
    }
    c->wait_id = req->id;
    c->wait_kind = kind;
    /* A send that asked for confirmation is answered by its own Reply, never by an Ack. */
    c->wait_is_send = req->body_case == PARTISAN__IPC__IPC_REQUEST__BODY_SEND && !req->send->confirm;
    c->wait_done = false;
    c->wait_code = 0;
    c->wait_status = NULL;
    c->wait_members = NULL;
    c->wait_n = 0;
    c->wait_stats = NULL;
    c->wait_text = NULL;
    /* The reply may already be in the socket: read once without waiting. */
    rc = read_some(c);
    while (rc == 0 && !c->wait_done)
        rc = io_step(c, remaining_ms(deadline));
    c->wait_id = 0;
    if (!c->wait_done) {
        abandon(c, req->id, c->wait_is_send);
        if (rc == PARTISAN_ETIMEDOUT)
            set_error(c, "no reply from the daemon within %d ms", timeout_ms);
        return rc;
    }
    return c->wait_code;
}

/* ---- public API ---- */

PARTISAN_API int partisan_connect(const char *path, partisan_client **out)
{
    if (!out)
        return PARTISAN_EINVAL;
    *out = NULL;
    if (!path || !*path) {
        path = getenv("PARTISAN_SOCKET");
        if (!path || !*path)
            path = PARTISAN_DEFAULT_SOCKET;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path)
        return PARTISAN_EINVAL;
    memcpy(sa.sun_path, path, plen + 1);

    partisan_client *c = calloc(1, sizeof *c);
    if (!c)
        return PARTISAN_ENOMEM;
    if (pbarena_init(&c->arena, ARENA_BLOCK) != 0) {
        free(c);
        return PARTISAN_ENOMEM;
    }
    c->write_at = BATCH_BYTES;
    c->next_id = 1;

    /* Blocking connect (a local socket answers at once or refuses), then
     * nonblocking for the life of the handle. */
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        int e = errno;
        partisan_close(c);
        errno = e;
        return PARTISAN_EIO;
    }
    int r;
    do
        r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
    while (r < 0 && errno == EINTR);
    if (r < 0 || fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
        int e = errno;
        partisan_close(c);
        errno = e;
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK || e == ENOTDIR)
            return PARTISAN_ENODAEMON;
        return PARTISAN_EIO;
    }
    /* Best effort: the kernel's default works, only with smaller batches. */
    int sndbuf = SOCKET_SNDBUF;
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    *out = c;
    return 0;
}

PARTISAN_API void partisan_close(partisan_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0) {
        /* Best effort, never waiting: partisan_flush() is the way to know. */
        if (!c->broken && bytes_live(&c->out))
            (void)write_some(c);
        close(c->fd);
    }
    for (struct qmsg *q = c->q_head, *next; q; q = next) {
        next = q->next;
        free(q);
    }
    pbarena_free(&c->arena);
    free(c->fifo);
    free(c->fails);
    free(c->out.data);
    free(c->in.data);
    free(c->abandoned);
    free(c);
}

PARTISAN_API int partisan_fd(const partisan_client *c)
{
    return c ? c->fd : -1;
}

PARTISAN_API const char *partisan_last_error(const partisan_client *c)
{
    return c ? c->last_error : "";
}

PARTISAN_API size_t partisan_pending(const partisan_client *c)
{
    return c ? c->q_len : 0;
}

PARTISAN_API int partisan_set_nonblocking(partisan_client *c, int on)
{
    if (!c)
        return PARTISAN_EINVAL;
    c->nonblocking = on != 0;
    return 0;
}

PARTISAN_API int partisan_wants_write(const partisan_client *c)
{
    return c && !c->broken && bytes_live(&c->out) ? 1 : 0;
}

PARTISAN_API uint64_t partisan_last_seq(const partisan_client *c)
{
    return c ? c->last_seq : 0;
}

PARTISAN_API int partisan_next_failure(partisan_client *c, struct partisan_failure *out)
{
    if (!c || !out || c->fail_n == 0)
        return 0;
    *out = c->fails[c->fail_head];
    c->fail_head = (c->fail_head + 1) % FAILURES_MAX;
    /* Every failure taken is one the caller knows of: no EASYNC for it. */
    if (--c->fail_n == 0) {
        c->async_err = 0;
        c->async_more = 0;
    }
    return 1;
}

PARTISAN_API uint64_t partisan_failures_dropped(const partisan_client *c)
{
    return c ? c->fails_dropped : 0;
}

/* Moves a pending async failure into last_error and returns its code. */
static int take_async_error(partisan_client *c)
{
    int err = c->async_err;
    if (c->async_more)
        set_error(c, "%s (and %llu more failed sends)", c->async_msg,
                  (unsigned long long)c->async_more);
    else
        set_error(c, "%s", c->async_msg);
    c->async_err = 0;
    c->async_more = 0;
    return err;
}

/* Checks a send's arguments and fills *s from them (pointing into the
 * caller's memory: s lives only as long as the call). */
static int prepare_send(partisan_client *c, Partisan__Ipc__SendRequest *s, const char *node,
                        const char *name, const void *payload, size_t len,
                        const struct partisan_send_opts *opts)
{
    int rc;
    if ((rc = check_str(c, "node", node)) || (rc = check_str(c, "name", name)))
        return rc;
    if (!payload && len) {
        set_error(c, "payload is NULL");
        return PARTISAN_EINVAL;
    }
    const char *channel = opts && opts->channel ? opts->channel : "";
    if (strnlen(channel, MAX_CHANNEL + 1) > MAX_CHANNEL) {
        set_error(c, "channel is longer than %d bytes", MAX_CHANNEL);
        return PARTISAN_EINVAL;
    }
    const void *key = opts ? opts->key : NULL;
    size_t key_len = opts ? opts->key_len : 0;
    if (key_len > PARTISAN_KEY_MAX) {
        set_error(c, "partition key is %zu bytes, longer than %d", key_len, PARTISAN_KEY_MAX);
        return PARTISAN_EINVAL;
    }
    if (!key && key_len) {
        set_error(c, "partition key is NULL with key_len %zu", key_len);
        return PARTISAN_EINVAL;
    }
    *s = (Partisan__Ipc__SendRequest)PARTISAN__IPC__SEND_REQUEST__INIT;
    s->node = (char *)node;
    s->name = (char *)name;
    s->payload.data = (uint8_t *)payload;
    s->payload.len = len;
    s->channel = (char *)channel;   /* "": the daemon's "default" */
    s->partition_key.data = key_len ? (uint8_t *)key : NULL;
    s->partition_key.len = key_len;
    return 0;
}

PARTISAN_API int partisan_send_with(partisan_client *c, const char *node, const char *name,
                                    const void *payload, size_t len,
                                    const struct partisan_send_opts *opts)
{
    if (!c)
        return PARTISAN_EINVAL;
    Partisan__Ipc__SendRequest s;
    int rc = prepare_send(c, &s, node, name, payload, len, opts);
    if (rc)
        return rc;
    if (c->broken)
        return c->broken;

    int64_t deadline = -2;   /* computed only if we have to wait */
    if (c->async_outstanding > ASYNC_SOFT && ++c->sends_since_drain >= ASYNC_DRAIN_EVERY) {
        c->sends_since_drain = 0;
        if ((rc = write_some(c)) < 0 || (rc = read_some(c)) < 0)
            return rc;
        if (c->async_outstanding > ASYNC_HARD && c->nonblocking) {
            set_error(c, "%llu sends unanswered: the daemon is behind; retry once partisan_fd() is readable",
                      (unsigned long long)c->async_outstanding);
            return PARTISAN_EBUSY;
        }
        if (c->async_outstanding > ASYNC_HARD) {
            deadline = deadline_after(SEND_TIMEOUT_MS);
            while (c->async_outstanding > ASYNC_HARD) {
                rc = io_step(c, remaining_ms(deadline));
                if (rc == PARTISAN_ETIMEDOUT && c->async_outstanding <= ASYNC_HARD)
                    break;
                if (rc == PARTISAN_ETIMEDOUT)
                    set_error(c, "the daemon sent no replies for %d ms", SEND_TIMEOUT_MS);
                if (rc)
                    return rc;
            }
        }
    }
    if (c->async_err) {
        /* Reported before this send is queued, so the caller knows this one
         * did not go and may retry it. */
        take_async_error(c);
        return PARTISAN_EASYNC;
    }
    if (c->nonblocking && bytes_live(&c->out) + len > PENDING_MAX) {
        /* Refused before anything is queued: the caller may retry this
         * very send once partisan_fd() is writable. */
        if ((rc = write_some(c)) < 0 || (rc = read_some(c)) < 0)
            return rc;
        if (bytes_live(&c->out) && bytes_live(&c->out) + len > PENDING_MAX) {
            set_error(c, "%zu bytes wait for the socket; retry once partisan_fd() is writable",
                      bytes_live(&c->out));
            return PARTISAN_EBUSY;
        }
    }

    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SEND;
    req.send = &s;

    /* Write at once unless this handle wrote within the last LINGER_US: a
     * lone send pays no batching delay, and a stream of sends gathers into
     * batches. Whether the daemon has answered says nothing here (it
     * answers a busy sender at once, which would make every send a write
     * of its own), and finding out would cost a syscall per send. The
     * clock costs more than the rest of a send in some VMs, so it is read
     * for every send of a young batch, then for one in CLOCK_EVERY. */
    bool now = false;
    if (c->batch_frames < CLOCK_EVERY || c->batch_frames % CLOCK_EVERY == 0)
        now = now_us() - c->last_write_us >= LINGER_US;

    uint64_t start, prev_seq = c->last_seq;
    if (fifo_push(c, c->next_id) != 0) {
        set_error(c, "out of memory tracking a send");
        return PARTISAN_ENOMEM;
    }
    if ((rc = queue_request(c, &req, &start))) {
        c->fifo_n--;
        return rc;
    }
    c->last_seq = c->last_send_id = req.id;
    c->batch_frames++;
    c->async_outstanding = c->fifo_n;
    if (now || bytes_live(&c->out) >= c->write_at) {
        if ((rc = write_some(c)))
            return rc;
        /* A socket that took less than a batch is full: try again once
         * another batch has gathered, not at every send. */
        size_t live = bytes_live(&c->out);
        c->write_at = live >= BATCH_BYTES ? live + BATCH_BYTES : BATCH_BYTES;
    }
    if (!c->nonblocking && bytes_live(&c->out) > PENDING_MAX) {
        /* The socket is full and the daemon behind: wait for it here,
         * which is how backpressure reaches a blocking sender. */
        if (deadline == -2)
            deadline = deadline_after(SEND_TIMEOUT_MS);
        rc = drain_out(c, deadline);
        if (rc == PARTISAN_ETIMEDOUT && c->out_written <= start) {
            c->out.len -= (size_t)(c->out_written + bytes_live(&c->out) - start);
            c->fifo_n--;
            c->async_outstanding = c->fifo_n;
            c->last_seq = prev_seq;
            set_error(c, "the daemon took nothing for %d ms (socket full)", SEND_TIMEOUT_MS);
            return rc;
        }
        if (rc && rc != PARTISAN_ETIMEDOUT)
            return rc;
    }
    return 0;
}

PARTISAN_API int partisan_send(partisan_client *c, const char *node, const char *name,
                               const void *payload, size_t len)
{
    return partisan_send_with(c, node, name, payload, len, NULL);
}

PARTISAN_API int partisan_send_sync_with(partisan_client *c, const char *node, const char *name,
                                         const void *payload, size_t len,
                                         const struct partisan_send_opts *opts, int timeout_ms)
{
    if (!c)
        return PARTISAN_EINVAL;
    Partisan__Ipc__SendRequest s;
    int rc = prepare_send(c, &s, node, name, payload, len, opts);
    if (rc)
        return rc;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SEND;
    req.send = &s;
    s.confirm = opts && opts->confirm;
    return call(c, &req, WAIT_PLAIN, timeout_ms);
}

PARTISAN_API int partisan_send_sync(partisan_client *c, const char *node, const char *name,
                                    const void *payload, size_t len, int timeout_ms)
{
    return partisan_send_sync_with(c, node, name, payload, len, NULL, timeout_ms);
}

PARTISAN_API int partisan_flush(partisan_client *c, int timeout_ms)
{
    if (!c)
        return PARTISAN_EINVAL;
    if (c->broken)
        return c->broken;
    /* Nothing written and unanswered: no syscall needed to know that. */
    if (!bytes_live(&c->out) && !c->async_outstanding)
        return c->async_err ? take_async_error(c) : 0;
    int64_t deadline = deadline_after(timeout_ms);
    /* Asking for the Acks now is worth a frame only to a caller that waits. */
    int rc = c->async_outstanding && timeout_ms != 0 ? queue_sync(c) : 0;
    if (rc == 0)
        rc = write_some(c);
    if (rc == 0)
        rc = read_some(c);
    while (rc == 0 && (bytes_live(&c->out) || c->async_outstanding))
        rc = io_step(c, remaining_ms(deadline));
    /* Everything answered before the daemon went away, or in the step that
     * ran out the time, still counts. */
    if (rc && !bytes_live(&c->out) && !c->async_outstanding)
        rc = 0;
    if (rc == PARTISAN_ETIMEDOUT)
        set_error(c, "%llu replies still outstanding after %d ms",
                  (unsigned long long)c->async_outstanding, timeout_ms);
    if (rc)
        return rc;
    return c->async_err ? take_async_error(c) : 0;
}

PARTISAN_API int partisan_recv(partisan_client *c, struct partisan_message **out, int timeout_ms)
{
    if (!c || !out)
        return PARTISAN_EINVAL;
    *out = NULL;
    int rc = 0;
    if (!c->q_head && !c->broken) {
        int64_t deadline = deadline_after(timeout_ms);
        /* Try the socket once even with timeout 0: that is what clears its
         * readability for a caller polling partisan_fd(). */
        if ((rc = write_some(c)) == 0)
            rc = read_some(c);
        while (rc == 0 && !c->q_head)
            rc = io_step(c, remaining_ms(deadline));
    }
    /* Messages that arrived before the daemon went away are still handed out. */
    if (c->q_head) {
        struct qmsg *q = c->q_head;
        c->q_head = q->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->q_len--;
        *out = &q->m;
        return 0;
    }
    if (c->broken)
        return c->broken;
    return rc ? rc : PARTISAN_ETIMEDOUT;
}

PARTISAN_API void partisan_message_free(struct partisan_message *m)
{
    if (m)
        free((char *)m - offsetof(struct qmsg, m));
}

static int simple_call(partisan_client *c, Partisan__Ipc__IpcRequest *req, int timeout_ms)
{
    return call(c, req, WAIT_PLAIN, timeout_ms);
}

PARTISAN_API int partisan_register(partisan_client *c, const char *name, int timeout_ms)
{
    if (!c)
        return PARTISAN_EINVAL;
    int rc = check_str(c, "name", name);
    if (rc)
        return rc;
    Partisan__Ipc__RegisterRequest r = PARTISAN__IPC__REGISTER_REQUEST__INIT;
    r.name = (char *)name;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_REGISTER;
    req.register_ = &r;
    return simple_call(c, &req, timeout_ms);
}

PARTISAN_API int partisan_unregister(partisan_client *c, const char *name, int timeout_ms)
{
    if (!c)
        return PARTISAN_EINVAL;
    int rc = check_str(c, "name", name);
    if (rc)
        return rc;
    Partisan__Ipc__UnregisterRequest r = PARTISAN__IPC__UNREGISTER_REQUEST__INIT;
    r.name = (char *)name;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_UNREGISTER;
    req.unregister = &r;
    return simple_call(c, &req, timeout_ms);
}

static int subscribe(partisan_client *c, bool on, int timeout_ms)
{
    if (!c)
        return PARTISAN_EINVAL;
    Partisan__Ipc__SubscribeRequest r = PARTISAN__IPC__SUBSCRIBE_REQUEST__INIT;
    r.subscribe = on;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SUBSCRIBE;
    req.subscribe = &r;
    return simple_call(c, &req, timeout_ms);
}

PARTISAN_API int partisan_subscribe(partisan_client *c, int timeout_ms)
{
    return subscribe(c, true, timeout_ms);
}

PARTISAN_API int partisan_unsubscribe(partisan_client *c, int timeout_ms)
{
    return subscribe(c, false, timeout_ms);
}

PARTISAN_API int partisan_status(partisan_client *c, struct partisan_status **out, int timeout_ms)
{
    if (!c || !out)
        return PARTISAN_EINVAL;
    *out = NULL;
    Partisan__Ipc__StatusRequest r = PARTISAN__IPC__STATUS_REQUEST__INIT;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_STATUS;
    req.status = &r;
    int rc = call(c, &req, WAIT_STATUS, timeout_ms);
    if (rc == 0)
        *out = c->wait_status;
    else
        free(c->wait_status);
    c->wait_status = NULL;
    return rc;
}

PARTISAN_API void partisan_status_free(struct partisan_status *s)
{
    free(s);
}

PARTISAN_API int partisan_members(partisan_client *c, int all, struct partisan_member **out,
                                  size_t *n, int timeout_ms)
{
    if (!c || !out || !n)
        return PARTISAN_EINVAL;
    *out = NULL;
    *n = 0;
    Partisan__Ipc__MembersRequest r = PARTISAN__IPC__MEMBERS_REQUEST__INIT;
    r.all = all != 0;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_MEMBERS;
    req.members = &r;
    int rc = call(c, &req, WAIT_MEMBERS, timeout_ms);
    if (rc == 0) {
        *out = c->wait_members;
        *n = c->wait_n;
    } else {
        free(c->wait_members);
    }
    c->wait_members = NULL;
    c->wait_n = 0;
    return rc;
}

PARTISAN_API void partisan_members_free(struct partisan_member *m, size_t n)
{
    (void)n;   /* one block: see reply_convert_members() */
    free(m);
}

PARTISAN_API int partisan_stats(partisan_client *c, struct partisan_stats **out, int timeout_ms)
{
    if (!c || !out)
        return PARTISAN_EINVAL;
    *out = NULL;
    Partisan__Ipc__StatsRequest r = PARTISAN__IPC__STATS_REQUEST__INIT;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_STATS;
    req.stats = &r;
    int rc = call(c, &req, WAIT_STATS, timeout_ms);
    if (rc == 0)
        *out = c->wait_stats;
    else
        free(c->wait_stats);
    c->wait_stats = NULL;
    return rc;
}

PARTISAN_API void partisan_stats_free(struct partisan_stats *s)
{
    free(s);   /* one block: see reply_convert_stats() */
}

PARTISAN_API int partisan_join(partisan_client *c, const char *address, int timeout_ms)
{
    if (!c)
        return PARTISAN_EINVAL;
    int rc = check_str(c, "address", address);
    if (rc)
        return rc;
    Partisan__Ipc__JoinRequest r = PARTISAN__IPC__JOIN_REQUEST__INIT;
    r.address = (char *)address;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_JOIN;
    req.join = &r;
    return simple_call(c, &req, timeout_ms);
}

PARTISAN_API int partisan_broadcast(partisan_client *c, const char *name, const void *payload, size_t len,
                                    int timeout_ms)
{
    if (!c || !name || !*name || (len && !payload))
        return PARTISAN_EINVAL;
    int rc = check_str(c, "name", name);
    if (rc)
        return rc;
    Partisan__Ipc__BroadcastRequest r = PARTISAN__IPC__BROADCAST_REQUEST__INIT;
    r.name = (char *)name;
    r.payload.data = (uint8_t *)payload;
    r.payload.len = len;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_BROADCAST;
    req.broadcast = &r;
    return simple_call(c, &req, timeout_ms);
}

PARTISAN_API int partisan_forget(partisan_client *c, const char *node, int timeout_ms)
{
    if (!c || !node || !*node)
        return PARTISAN_EINVAL;
    int rc = check_str(c, "node", node);
    if (rc)
        return rc;
    Partisan__Ipc__ForgetRequest r = PARTISAN__IPC__FORGET_REQUEST__INIT;
    r.node = (char *)node;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_FORGET;
    req.forget = &r;
    return simple_call(c, &req, timeout_ms);
}

PARTISAN_API int partisan_leave(partisan_client *c, const char *node, int timeout_ms)
{
    if (!c)
        return PARTISAN_EINVAL;
    if (node && *node) {
        int rc = check_str(c, "node", node);
        if (rc)
            return rc;
    }
    Partisan__Ipc__LeaveRequest r = PARTISAN__IPC__LEAVE_REQUEST__INIT;
    r.node = (char *)(node ? node : "");
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_LEAVE;
    req.leave = &r;
    return simple_call(c, &req, timeout_ms);
}

PARTISAN_API int partisan_fault(partisan_client *c, int argc, const char *const *argv, char **text, int timeout_ms)
{
    if (text)
        *text = NULL;
    if (!c || argc < 1 || argc > 32 || !argv)
        return PARTISAN_EINVAL;
    for (int i = 0; i < argc; i++) {
        if (!argv[i] || strlen(argv[i]) > 4096) {
            set_error(c, "fault argument %d is NULL or longer than 4096 bytes", i + 1);
            return PARTISAN_EINVAL;
        }
    }
    Partisan__Ipc__FaultRequest r = PARTISAN__IPC__FAULT_REQUEST__INIT;
    r.n_args = (size_t)argc;
    r.args = (char **)argv;
    Partisan__Ipc__IpcRequest req = PARTISAN__IPC__IPC_REQUEST__INIT;
    req.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_FAULT;
    req.fault = &r;
    int rc = call(c, &req, WAIT_FAULT, timeout_ms);
    if (rc == 0 && text)
        *text = c->wait_text;
    else
        free(c->wait_text);
    c->wait_text = NULL;
    return rc;
}
