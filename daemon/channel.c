/* channel: a lane's queue and the choice of lane; see channel.h.
 *
 * Plain frames wait in one evbuffer, written in place through
 * evbuffer_reserve_space() and moved to the socket's buffer chain by chain,
 * so a message costs no allocation of its own. Monotonic frames must be
 * findable by key and replaceable in place, so each is its own allocation,
 * in a FIFO list with a key table beside it; frames taken back from a
 * failed connection go to the evbuffer instead, which is always emptied
 * first: they are older than anything in the list and must not be
 * replaced.
 *
 * What was handed to a socket is tracked by length only, in a ring: the
 * bytes that have left `out` are (sum of the ring) - evbuffer_get_length(out),
 * which tells which frames are gone, which one was cut, and which are still
 * whole in `out`. */
#include "channel.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "frame_evbuffer.h"
#include "hash.h"

/* Entries the ring starts with: it also keeps the lengths of the newest
 * written frames, to count what a kernel_unacked covers, and this many
 * cost nothing worth noticing. */
#define CHANNEL_RING_MIN 64
#define CHANNEL_TABLE_MIN 16
/* Key room allocated with every monotonic frame, so a usual key (node,
 * name, partition key) needs no realloc at commit. */
#define CHANNEL_KEY_ROOM 64

struct channel_msg {
    struct channel_msg *prev, *next;   /* FIFO, oldest at the head */
    struct channel_msg *chain;         /* key table bucket */
    uint64_t hash;
    size_t len;                        /* frame bytes */
    size_t key_len;                    /* 0: not in the key table */
    size_t key_room;
    uint64_t tag;                      /* the caller's, given back by the gate's sent() */
    uint8_t data[];                    /* the frame, then the key */
};

/* Lengths of frames handed to the current connection, oldest first. The
 * first `hist` entries are known to have been written and are kept only
 * while the ring has room to spare; the rest were, at the last look,
 * still wholly or partly in `out`. */
struct channel_ring {
    size_t *len;
    size_t cap;                        /* a power of two, or 0 */
    size_t head, count;
    size_t hist, hist_bytes;
    size_t pending_bytes;              /* sum of the entries after hist */
    /* Written on this connection but dropped from the history: all that
     * is left to estimate what a large kernel_unacked covered. */
    uint64_t forgot_frames, forgot_bytes;
};

struct channel_queue {
    bool monotonic;
    struct evbuffer *buf;              /* plain frames; on monotonic queues, recovered ones */
    size_t buf_msgs;
    struct channel_msg *head, *tail;   /* monotonic frames */
    size_t list_msgs;
    struct channel_msg **table;        /* keyed monotonic frames, by hash */
    size_t table_size, table_count;    /* size: a power of two, or 0 */
    size_t bytes;                      /* waiting, in buf and list */

    bool reserved;
    size_t res_len;
    struct evbuffer_iovec res_vec;     /* plain */
    size_t buf_room;                   /* frame_evbuffer_reserve()'s hint for buf */
    bool chunked;                      /* channel_queue_set_chunked() */
    struct channel_msg *res_msg;       /* monotonic */

    struct channel_ring ring;
    struct channel_queue_stats stats;
    struct channel_gate gate;          /* monotonic: which waiting frames may go */
};

/* ------------------------------------------------------------- ring -- */

static size_t channel_ring_at(const struct channel_ring *r, size_t i)
{
    return r->len[(r->head + i) & (r->cap - 1)];
}

/* Makes room for one more entry: forgets the oldest written frame before
 * growing, so the ring grows only with the frames in `out` at once. */
static int channel_ring_room(struct channel_ring *r)
{
    if (r->count < r->cap)
        return 0;
    if (r->hist > 0) {
        size_t e = r->len[r->head];
        r->head = (r->head + 1) & (r->cap - 1);
        r->count--;
        r->hist--;
        r->hist_bytes -= e;
        r->forgot_frames++;
        r->forgot_bytes += e;
        return 0;
    }
    size_t cap = r->cap ? r->cap * 2 : CHANNEL_RING_MIN;
    if (cap < r->cap || cap > SIZE_MAX / sizeof *r->len)
        return -1;
    size_t *len = malloc(cap * sizeof *len);
    if (!len)
        return -1;
    for (size_t i = 0; i < r->count; i++)
        len[i] = channel_ring_at(r, i);
    free(r->len);
    r->len = len;
    r->cap = cap;
    r->head = 0;
    return 0;
}

static void channel_ring_put(struct channel_ring *r, size_t flen)
{
    r->len[(r->head + r->count) & (r->cap - 1)] = flen;
    r->count++;
    r->pending_bytes += flen;
}

/* Moves the frames that have wholly left `out` into the history. Sets
 * *partial to the bytes written of the first frame still (partly) in out.
 * false: out holds more than was handed to it, so its bytes cannot be
 * matched to frames. */
static bool channel_ring_settle(struct channel_ring *r, size_t out_len, size_t *partial)
{
    *partial = 0;
    if (out_len > r->pending_bytes)
        return false;
    size_t written = r->pending_bytes - out_len;
    while (r->hist < r->count) {
        size_t e = channel_ring_at(r, r->hist);
        if (e > written)
            break;
        written -= e;
        r->hist++;
        r->hist_bytes += e;
        r->pending_bytes -= e;
    }
    *partial = written;
    return true;
}

/* Keeps the allocation: the next connection of the lane needs the same. */
static void channel_ring_reset(struct channel_ring *r)
{
    r->head = r->count = r->hist = 0;
    r->hist_bytes = r->pending_bytes = 0;
    r->forgot_frames = r->forgot_bytes = 0;
}

/* -------------------------------------------------------- key table -- */

static bool channel_key_eq(const struct channel_msg *a, const struct channel_msg *b)
{
    return a->hash == b->hash && a->key_len == b->key_len &&
           memcmp(a->data + a->len, b->data + b->len, a->key_len) == 0;
}

static struct channel_msg **channel_table_slot(struct channel_queue *q, const struct channel_msg *m)
{
    struct channel_msg **s = &q->table[m->hash & (q->table_size - 1)];
    while (*s && !channel_key_eq(*s, m))
        s = &(*s)->chain;
    return s;
}

/* A failed growth only lengthens the chains. */
static void channel_table_grow(struct channel_queue *q)
{
    size_t size = q->table_size * 2;
    if (size < q->table_size || size > SIZE_MAX / sizeof *q->table)
        return;
    struct channel_msg **t = calloc(size, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < q->table_size; i++) {
        struct channel_msg *m = q->table[i];
        while (m) {
            struct channel_msg *next = m->chain;
            m->chain = t[m->hash & (size - 1)];
            t[m->hash & (size - 1)] = m;
            m = next;
        }
    }
    free(q->table);
    q->table = t;
    q->table_size = size;
}

static void channel_table_remove(struct channel_queue *q, struct channel_msg *m)
{
    struct channel_msg **s = &q->table[m->hash & (q->table_size - 1)];
    while (*s != m)
        s = &(*s)->chain;
    *s = m->chain;
    q->table_count--;
}

/* ------------------------------------------------------------- list -- */

static void channel_list_unlink(struct channel_queue *q, struct channel_msg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        q->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        q->tail = m->prev;
}

static void channel_list_append(struct channel_queue *q, struct channel_msg *m)
{
    m->next = NULL;
    m->prev = q->tail;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
}

/* m takes old's place in the FIFO and in the key table. */
static void channel_list_replace(struct channel_queue *q, struct channel_msg **slot,
                                 struct channel_msg *old, struct channel_msg *m)
{
    m->prev = old->prev;
    m->next = old->next;
    if (m->prev)
        m->prev->next = m;
    else
        q->head = m;
    if (m->next)
        m->next->prev = m;
    else
        q->tail = m;
    m->chain = old->chain;
    *slot = m;
}

/* ------------------------------------------------------------ queue -- */

struct channel_queue *channel_queue_new(bool monotonic)
{
    struct channel_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->buf = evbuffer_new();
    if (!q->buf) {
        free(q);
        return NULL;
    }
    q->monotonic = monotonic;
    return q;
}

static void channel_drop_list(struct channel_queue *q)
{
    struct channel_msg *m = q->head;
    while (m) {
        struct channel_msg *next = m->next;
        free(m);
        m = next;
    }
    q->head = q->tail = NULL;
    q->list_msgs = 0;
    if (q->table)
        memset(q->table, 0, q->table_size * sizeof *q->table);
    q->table_count = 0;
}

/* A plain reservation lives inside buf, so anything that moves buf's
 * bytes invalidates it; monotonic ones are dropped too, so that the rule
 * is one: reserve, fill, commit, with no other call between. */
static void channel_cancel_reservation(struct channel_queue *q)
{
    free(q->res_msg);
    q->res_msg = NULL;
    q->reserved = false;
}

void channel_queue_free(struct channel_queue *q)
{
    if (!q)
        return;
    channel_cancel_reservation(q);
    channel_drop_list(q);
    free(q->table);
    free(q->ring.len);
    evbuffer_free(q->buf);
    free(q);
}

uint8_t *channel_queue_reserve(struct channel_queue *q, size_t len)
{
    channel_cancel_reservation(q);
    /* Shorter is no frame; longer than the u32 length field allows, and
     * the header could not describe it. */
    if (len < FRAME_PEER_HEADER || (uint64_t)(len - FRAME_PEER_HEADER) > UINT32_MAX)
        return NULL;
    uint8_t *p;
    if (q->monotonic) {
        if (len > SIZE_MAX - sizeof(struct channel_msg) - CHANNEL_KEY_ROOM)
            return NULL;
        struct channel_msg *m = malloc(sizeof *m + len + CHANNEL_KEY_ROOM);
        if (!m)
            return NULL;
        m->key_room = CHANNEL_KEY_ROOM;
        q->res_msg = m;
        p = m->data;
    } else {
        if (q->chunked ? frame_evbuffer_reserve(q->buf, len, &q->buf_room, &q->res_vec) != 0
                       : (len > (size_t)EV_SSIZE_MAX ||
                          evbuffer_reserve_space(q->buf, (ev_ssize_t)len, &q->res_vec, 1) != 1))
            return NULL;
        p = q->res_vec.iov_base;
    }
    q->reserved = true;
    q->res_len = len;
    return p;
}

static int channel_commit_monotonic(struct channel_queue *q, const void *key, size_t key_len, uint64_t tag)
{
    struct channel_msg *m = q->res_msg;
    q->res_msg = NULL;
    m->len = q->res_len;
    m->tag = tag;
    m->key_len = 0;
    m->chain = NULL;
    if (key_len > 0) {
        if (key_len > m->key_room) {
            if (key_len > SIZE_MAX - sizeof *m - m->len)
                goto fail;
            struct channel_msg *bigger = realloc(m, sizeof *m + m->len + key_len);
            if (!bigger)
                goto fail;
            m = bigger;
            m->key_room = key_len;
        }
        memcpy(m->data + m->len, key, key_len);
        m->key_len = key_len;
        m->hash = hash_bytes(key, key_len);
        if (!q->table) {
            q->table = calloc(CHANNEL_TABLE_MIN, sizeof *q->table);
            if (!q->table)
                goto fail;
            q->table_size = CHANNEL_TABLE_MIN;
        }
        struct channel_msg **slot = channel_table_slot(q, m);
        struct channel_msg *old = *slot;
        if (old) {
            channel_list_replace(q, slot, old, m);
            q->bytes = q->bytes - old->len + m->len;
            q->stats.superseded++;
            free(old);
            return 0;
        }
        *slot = m;
        if (++q->table_count > q->table_size)
            channel_table_grow(q);
    }
    channel_list_append(q, m);
    q->list_msgs++;
    q->bytes += m->len;
    return 0;
fail:
    free(m);
    return -1;
}

int channel_queue_commit(struct channel_queue *q, const void *key, size_t key_len, uint64_t tag)
{
    if (!q->reserved)
        return -1;
    q->reserved = false;
    const uint8_t *p = q->monotonic ? q->res_msg->data : q->res_vec.iov_base;
    /* Handover finds frame boundaries by this field alone: a frame whose
     * field disagrees with its size would misalign every frame after it. */
    if (frame_get_u32(p) != q->res_len - FRAME_PEER_HEADER) {
        channel_cancel_reservation(q);
        return -1;
    }
    if (q->monotonic)
        return channel_commit_monotonic(q, key_len > 0 ? key : NULL, key ? key_len : 0, tag);
    q->res_vec.iov_len = q->res_len;
    if (evbuffer_commit_space(q->buf, &q->res_vec, 1) != 0)
        return -1;
    q->buf_msgs++;
    q->bytes += q->res_len;
    return 0;
}

/* Moves whole frames from the head of buf while out (already holding
 * `have`) is below fill; adds the bytes moved to *moved_bytes. */
static size_t channel_handover_buf(struct channel_queue *q, struct evbuffer *out, size_t have,
                                   size_t fill, size_t *moved_bytes)
{
    size_t n = 0, take = 0;
    struct evbuffer_ptr pos;
    if (q->buf_msgs == 0 || have >= fill || evbuffer_ptr_set(q->buf, &pos, 0, EVBUFFER_PTR_SET) != 0)
        return 0;
    while (n < q->buf_msgs && have + take < fill) {
        uint8_t hdr[4];
        if (evbuffer_copyout_from(q->buf, &pos, hdr, sizeof hdr) != (ev_ssize_t)sizeof hdr)
            break;
        size_t flen = FRAME_PEER_HEADER + (size_t)frame_get_u32(hdr);
        if (channel_ring_room(&q->ring) != 0)
            break;
        channel_ring_put(&q->ring, flen);
        take += flen;
        n++;
        if (n < q->buf_msgs && evbuffer_ptr_set(q->buf, &pos, flen, EVBUFFER_PTR_ADD) != 0)
            break;
    }
    /* One move for the whole batch: whole chains are relinked, not copied. */
    evbuffer_remove_buffer(q->buf, out, take);
    q->buf_msgs -= n;
    q->bytes -= take;
    *moved_bytes += take;
    return n;
}

size_t channel_queue_handover(struct channel_queue *q, struct evbuffer *out, size_t fill)
{
    channel_cancel_reservation(q);
    size_t partial;
    channel_ring_settle(&q->ring, evbuffer_get_length(out), &partial);
    size_t have = evbuffer_get_length(out);
    size_t bytes = 0;
    size_t n = channel_handover_buf(q, out, have, fill, &bytes);
    /* Frames the gate holds back stay where they are, still replaceable;
     * frames behind them for other destinations go on. */
    for (struct channel_msg *m = q->head, *next; m && have + bytes < fill; m = next) {
        next = m->next;
        const uint8_t *key = m->data + m->len;
        if (q->gate.may_send && !q->gate.may_send(q->gate.ctx, key, m->key_len))
            continue;
        if (channel_ring_room(&q->ring) != 0 || evbuffer_add(out, m->data, m->len) != 0)
            break;
        channel_ring_put(&q->ring, m->len);
        channel_list_unlink(q, m);
        if (m->key_len > 0)
            channel_table_remove(q, m);
        q->list_msgs--;
        q->bytes -= m->len;
        bytes += m->len;
        n++;
        if (q->gate.sent)
            q->gate.sent(q->gate.ctx, key, m->key_len, m->tag);
        free(m);
    }
    q->stats.msgs_sent += n;
    q->stats.bytes_sent += bytes;
    return n;
}

/* How many written frames the last k written bytes, before the cut frame,
 * overlap: exact over the history, estimated from the mean frame length
 * beyond it. */
static uint64_t channel_kernel_lost(const struct channel_ring *r, size_t k)
{
    uint64_t lost = 0;
    for (size_t i = r->hist; i > 0 && k > 0; i--) {
        size_t e = channel_ring_at(r, i - 1);
        lost++;
        k -= k < e ? k : e;
    }
    if (k > 0 && r->forgot_frames > 0) {
        uint64_t rest = k < r->forgot_bytes ? k : r->forgot_bytes;
        uint64_t mean = r->forgot_bytes / r->forgot_frames;
        uint64_t est = (rest + mean - 1) / mean;
        lost += est < r->forgot_frames ? est : r->forgot_frames;
    }
    return lost;
}

void channel_queue_recover(struct channel_queue *q, struct evbuffer *out, size_t kernel_unacked)
{
    channel_cancel_reservation(q);
    struct channel_ring *r = &q->ring;
    size_t partial;
    if (!channel_ring_settle(r, evbuffer_get_length(out), &partial)) {
        /* Bytes not ours are in out (a broken caller): no frame in it can
         * be found, so all that was not known written is lost. */
        q->stats.lost += r->count - r->hist;
        evbuffer_drain(out, evbuffer_get_length(out));
        channel_ring_reset(r);
        return;
    }
    size_t first = r->hist;
    uint64_t lost = 0;
    size_t k = kernel_unacked;
    if (partial > 0) {
        /* The receiver discards a frame cut short, so the rest of it is
         * worth nothing. */
        evbuffer_drain(out, channel_ring_at(r, first) - partial);
        first++;
        lost++;
        k = k > partial ? k - partial : 0;
    }
    lost += channel_kernel_lost(r, k);
    size_t back = r->count - first, back_bytes = evbuffer_get_length(out);
    if (back > 0) {
        if (evbuffer_prepend_buffer(q->buf, out) == 0) {
            q->buf_msgs += back;
            q->bytes += back_bytes;
            q->stats.requeued += back;
        } else {
            evbuffer_drain(out, back_bytes);
            lost += back;
        }
    }
    q->stats.lost += lost;
    channel_ring_reset(r);
}

void channel_queue_detach(struct channel_queue *q)
{
    channel_ring_reset(&q->ring);
}

size_t channel_queue_clear(struct channel_queue *q)
{
    channel_cancel_reservation(q);
    size_t n = q->buf_msgs + q->list_msgs;
    evbuffer_drain(q->buf, evbuffer_get_length(q->buf));
    q->buf_msgs = 0;
    channel_drop_list(q);
    q->bytes = 0;
    return n;
}

size_t channel_queue_msgs(const struct channel_queue *q)
{
    return q->buf_msgs + q->list_msgs;
}

size_t channel_queue_bytes(const struct channel_queue *q)
{
    return q->bytes;
}

void channel_queue_set_chunked(struct channel_queue *q, bool on)
{
    q->chunked = on;
}

void channel_queue_set_gate(struct channel_queue *q, const struct channel_gate *g)
{
    if (g)
        q->gate = *g;
    else
        memset(&q->gate, 0, sizeof q->gate);
}

const struct channel_queue_stats *channel_queue_stats(const struct channel_queue *q)
{
    return &q->stats;
}

/* ------------------------------------------------------------ lanes -- */

unsigned channel_pick_lane(const void *key, size_t key_len, const size_t *loads, unsigned n,
                           unsigned *rr)
{
    if (n == 0)
        return 0;
    if (key && key_len > 0)
        return (unsigned)(hash_bytes(key, key_len) % n);
    unsigned start = rr ? *rr % n : 0, best = start;
    if (loads)
        for (unsigned i = 1; i < n; i++) {
            unsigned j = (start + i) % n;
            if (loads[j] < loads[best])
                best = j;
        }
    if (rr)
        *rr = (best + 1) % n;
    return best;
}
