#include "reliable.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal.h"
#include "clock.h"
#include "config.h"
#include "log.h"

/* A verdict owed to a session, by the core's message id. */
struct owed {
    struct owed *next;
    uint64_t msg_id;
    void *sender;                  /* NULL: the session closed */
    uint64_t req_id;
    bool confirm;
};

/* A message accepted while its window was full; its sender is blocked on
 * this entry until it goes to the core. */
struct parked {
    struct parked *next;
    void *sender;
    uint64_t req_id;
    bool confirm;
    unsigned ch;
    uint64_t dest_epoch;
    char dest[DELIVERY_NAME_MAX + 1];
    char name[DELIVERY_NAME_MAX + 1];
    size_t key_len, len;
    uint8_t *key;                  /* into bytes */
    uint8_t *payload;
    uint8_t bytes[];
};

struct causal_chan {
    struct reliable *r;
    unsigned ch;
    struct causal *c;
};

struct reliable {
    struct reliable_config cfg;
    struct reliable_io io;
    struct delivery *d;
    struct causal_chan causal[CONFIG_CHANNELS_MAX];
    struct owed **owed;
    size_t n_owed_buckets, n_owed;
    uint64_t next_msg_id;
    struct parked *parked, **parked_tail;
    size_t n_parked;
    uint64_t armed;
    /* The message causal_receive is handed right now, and what the
     * application said of it inside the call. */
    const char *cur_origin;
    uint64_t cur_seq;
    int cur_verdict;
    bool in_window_open;
    uint64_t failed;               /* verdicts other than DELIVERED, for messages sent from here */
};

static const char *channel_name(const struct reliable *r, unsigned ch)
{
    return r->cfg.config->channels[ch].name;
}

/* Channels not in this node's config still work end to end (the sender's
 * config decides): their acks leave on the default channel's lanes. */
static unsigned channel_of(const struct reliable *r, const char *name)
{
    int i = config_channel_index(r->cfg.config, name);
    return i < 0 ? 0 : (unsigned)i;
}

static void rearm(struct reliable *r)
{
    uint64_t at = delivery_next_deadline(r->d);
    if (at != r->armed) {
        r->armed = at;
        r->io.arm(r->io.ctx, at);
    }
}

/* --------------------------------------------------------------- owed -- */

static struct owed **owed_slot(struct reliable *r, uint64_t id)
{
    struct owed **pp = &r->owed[((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (r->n_owed_buckets - 1)];
    while (*pp && (*pp)->msg_id != id)
        pp = &(*pp)->next;
    return pp;
}

static void owed_grow(struct reliable *r)
{
    size_t n = r->n_owed_buckets * 2;
    struct owed **b = calloc(n, sizeof *b);
    if (!b)
        return;   /* longer chains, still correct */
    struct owed **old = r->owed;
    size_t old_n = r->n_owed_buckets;
    r->owed = b;
    r->n_owed_buckets = n;
    for (size_t i = 0; i < old_n; i++)
        for (struct owed *e = old[i], *next; e; e = next) {
            next = e->next;
            struct owed **pp = owed_slot(r, e->msg_id);
            e->next = NULL;
            *pp = e;
        }
    free(old);
}

static int owed_add(struct reliable *r, uint64_t id, void *sender, uint64_t req_id, bool confirm)
{
    struct owed *e = malloc(sizeof *e);
    if (!e)
        return -1;
    *e = (struct owed){ .msg_id = id, .sender = sender, .req_id = req_id, .confirm = confirm };
    struct owed **pp = owed_slot(r, id);
    e->next = *pp;
    *pp = e;
    if (++r->n_owed > r->n_owed_buckets)
        owed_grow(r);
    return 0;
}

static struct owed *owed_take(struct reliable *r, uint64_t id)
{
    struct owed **pp = owed_slot(r, id);
    struct owed *e = *pp;
    if (e) {
        *pp = e->next;
        r->n_owed--;
    }
    return e;
}

/* ---------------------------------------------------------- verdicts -- */

static Partisan__Ipc__ErrorCode verdict_code(int v)
{
    switch (v) {
    case DELIVERY_V_DELIVERED: return PARTISAN__IPC__ERROR_CODE__OK;
    case DELIVERY_V_NO_SUCH_NAME: return PARTISAN__IPC__ERROR_CODE__NO_SUCH_NAME;
    case DELIVERY_V_TOO_LARGE: return PARTISAN__IPC__ERROR_CODE__TOO_LARGE;
    case DELIVERY_V_NODE_LEFT: return PARTISAN__IPC__ERROR_CODE__NO_SUCH_NODE;
    case DELIVERY_V_PEER_RESTARTED: return PARTISAN__IPC__ERROR_CODE__PEER_RESTARTED;
    default: return PARTISAN__IPC__ERROR_CODE__INTERNAL;
    }
}

static void verdict_text(char *out, size_t len, int v, const char *dest, const char *channel)
{
    switch (v) {
    case DELIVERY_V_DELIVERED: out[0] = '\0'; break;
    case DELIVERY_V_NO_SUCH_NAME:
        snprintf(out, len, "delivered to node %s on %s, but nothing is registered there under that name", dest,
                 channel);
        break;
    case DELIVERY_V_TOO_LARGE:
        snprintf(out, len, "the message is larger than node %s lets its applications take (its ipc.max_frame_bytes)",
                 dest);
        break;
    case DELIVERY_V_NODE_LEFT: snprintf(out, len, "node %s left the cluster before the message reached it", dest); break;
    case DELIVERY_V_PEER_RESTARTED:
        snprintf(out, len, "the message may or may not have reached node %s's previous run, and not its new one",
                 dest);
        break;
    default: snprintf(out, len, "unknown verdict %d from node %s", v, dest); break;
    }
}

static void tell(struct reliable *r, void *sender, uint64_t req_id, bool confirm, int v, const char *dest,
                 const char *channel)
{
    if (v != DELIVERY_V_DELIVERED)
        r->failed++;
    if (!sender || (!confirm && v == DELIVERY_V_DELIVERED))
        return;
    char text[400];
    verdict_text(text, sizeof text, v, dest, channel);
    r->io.verdict(r->io.ctx, sender, req_id, confirm, verdict_code(v), text);
}

/* ------------------------------------------------- the delivery env -- */

static void env_transmit(void *ctx, const char *dest, const char *channel, const struct delivery_data *h,
                         const struct delivery_msg *m)
{
    struct reliable *r = ctx;
    Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
    d.from_node = (char *)r->cfg.self;
    d.to_node = (char *)dest;
    d.name = (char *)m->name;
    d.channel = (char *)channel;
    d.payload.data = (uint8_t *)m->payload;
    d.payload.len = m->len;
    d.partition_key.data = (uint8_t *)m->key;
    d.partition_key.len = m->key_len;
    d.origin_epoch = h->origin_epoch;
    d.dest_epoch = h->dest_epoch;
    d.seq = h->seq;
    d.acked_through = h->acked_through;
    d.causal.data = (uint8_t *)m->meta;
    d.causal.len = m->meta_len;
    r->io.transmit(r->io.ctx, channel_of(r, channel), &d);
}

static void env_send_ack(void *ctx, const char *origin, const char *channel, const struct delivery_ack *a)
{
    struct reliable *r = ctx;
    Partisan__Peer__DeliveryAck k = PARTISAN__PEER__DELIVERY_ACK__INIT;
    k.origin = (char *)origin;
    k.from_node = (char *)r->cfg.self;
    k.channel = (char *)channel;
    k.origin_epoch = a->origin_epoch;
    k.dest_epoch = a->dest_epoch;
    k.cum = a->cum;
    k.sack = a->sack[0];
    size_t words = DELIVERY_SACK_WORDS;
    while (words > 1 && !a->sack[words - 1])
        words--;
    k.n_sack_more = words - 1;
    k.sack_more = (uint64_t *)&a->sack[1];
    k.refused = a->refused;
    k.refused_epoch = a->refused_epoch;
    Partisan__Peer__DeliveryException ex[DELIVERY_WINDOW_MAX];
    Partisan__Peer__DeliveryException *exp[DELIVERY_WINDOW_MAX];
    size_t n = a->n_exceptions < DELIVERY_WINDOW_MAX ? a->n_exceptions : DELIVERY_WINDOW_MAX;
    for (size_t i = 0; i < n; i++) {
        partisan__peer__delivery_exception__init(&ex[i]);
        ex[i].seq = a->exceptions[i].seq;
        ex[i].verdict = (uint32_t)a->exceptions[i].verdict;
        exp[i] = &ex[i];
    }
    k.n_exceptions = n;
    k.exceptions = exp;
    r->io.send_ack(r->io.ctx, channel_of(r, channel), &k);
}

static int env_deliver(void *ctx, const char *origin, const char *channel, uint64_t seq,
                       const struct delivery_msg *m)
{
    struct reliable *r = ctx;
    if (r->io.busy(r->io.ctx, m->name))
        return DELIVERY_RETRY;
    int ch = config_channel_index(r->cfg.config, channel);
    struct causal_chan *cc = ch >= 0 ? &r->causal[ch] : NULL;
    if (!cc || !cc->c || !m->meta_len)
        return r->io.deliver(r->io.ctx, origin, m->name, channel, m->payload, m->len);
    /* Causal: the core may hold it, so it gets the name with the bytes. */
    size_t nlen = strlen(m->name);
    if (nlen > DELIVERY_NAME_MAX)
        return DELIVERY_V_NO_SUCH_NAME;   /* no name that long can be registered; one length byte holds the rest */
    uint8_t *buf = malloc(1 + nlen + m->len);
    if (!buf)
        return DELIVERY_RETRY;
    buf[0] = (uint8_t)nlen;
    memcpy(buf + 1, m->name, nlen);
    if (m->len)
        memcpy(buf + 1 + nlen, m->payload, m->len);
    r->cur_origin = origin;
    r->cur_seq = seq;
    r->cur_verdict = -100;
    enum causal_result cr = causal_receive(cc->c, origin, m->meta, m->meta_len, seq, buf, 1 + nlen + m->len);
    r->cur_origin = NULL;
    free(buf);
    switch (cr) {
    case CAUSAL_DELIVERED: return r->cur_verdict == -100 ? DELIVERY_V_DELIVERED : r->cur_verdict;
    case CAUSAL_HELD: return DELIVERY_PENDING;
    case CAUSAL_FULL: return DELIVERY_RETRY;
    case CAUSAL_STALE: return DELIVERY_V_DELIVERED;   /* from a retired epoch: nobody waits for it */
    default:
        log_warn("message %" PRIu64 " from %s on %s dropped: its causal stamp does not decode", seq, origin, channel);
        return DELIVERY_V_DELIVERED;
    }
}

static void env_verdict(void *ctx, const char *dest, const char *channel, uint64_t msg_id, int v)
{
    struct reliable *r = ctx;
    struct owed *e = owed_take(r, msg_id);
    if (!e)
        return;
    tell(r, e->sender, e->req_id, e->confirm, v, dest, channel);
    free(e);
}

static void flush_parked(struct reliable *r, const char *dest, unsigned ch);

static void env_window_open(void *ctx, const char *dest, const char *channel)
{
    struct reliable *r = ctx;
    int ch = config_channel_index(r->cfg.config, channel);
    if (ch >= 0 && !r->in_window_open) {
        r->in_window_open = true;
        flush_parked(r, dest, (unsigned)ch);
        r->in_window_open = false;
    }
}

/* --------------------------------------------------- the causal env -- */

static void causal_deliver(void *ctx, const char *from, uint64_t tag, const void *msg, size_t len)
{
    struct causal_chan *cc = ctx;
    struct reliable *r = cc->r;
    const uint8_t *b = msg;
    char name[DELIVERY_NAME_MAX + 1];
    size_t nlen = len ? b[0] : 0;
    int v = DELIVERY_V_NO_SUCH_NAME;
    if (len >= 1 + nlen) {
        memcpy(name, b + 1, nlen);
        name[nlen] = '\0';
        v = r->io.deliver(r->io.ctx, from, name, channel_name(r, cc->ch), b + 1 + nlen, len - 1 - nlen);
    }
    if (r->cur_origin && strcmp(r->cur_origin, from) == 0 && r->cur_seq == tag)
        r->cur_verdict = v;
    else
        delivery_report(r->d, from, channel_name(r, cc->ch), tag, v, clock_now_ms());
}

/* ------------------------------------------------------------ sending -- */

/* Stamps (causal channels) and hands one message to the core. */
static enum delivery_send_result submit(struct reliable *r, uint64_t id, const char *dest, uint64_t dest_epoch,
                                        unsigned ch, const struct delivery_msg *base)
{
    struct delivery_msg m = *base;
    struct causal *c = r->causal[ch].c;
    if (c) {
        /* A stamp is a send event: take it only for what will be accepted. */
        if (!delivery_can_send(r->d, dest, channel_name(r, ch), m.len))
            return DELIVERY_SEND_FULL;
        uint64_t e = delivery_peer_epoch(r->d, dest);
        if (!e)
            e = dest_epoch;
        const uint8_t *st;
        size_t st_len;
        if (causal_stamp(c, dest, e, &st, &st_len) != 0)
            return DELIVERY_SEND_NOMEM;
        m.meta = st;
        m.meta_len = st_len;
        m.meta_epoch = e;
    }
    return delivery_send(r->d, dest, channel_name(r, ch), id, &m, clock_now_ms());
}

static bool link_has_parked(const struct reliable *r, const char *dest, unsigned ch)
{
    for (const struct parked *p = r->parked; p; p = p->next)
        if (p->ch == ch && strcmp(p->dest, dest) == 0)
            return true;
    return false;
}

static void unlink_parked(struct reliable *r, struct parked **pp)
{
    struct parked *p = *pp;
    *pp = p->next;
    if (!*pp)
        r->parked_tail = pp;
    r->n_parked--;
}

static void flush_parked(struct reliable *r, const char *dest, unsigned ch)
{
    struct parked **pp = &r->parked;
    while (*pp) {
        struct parked *p = *pp;
        if (p->ch != ch || strcmp(p->dest, dest) != 0) {
            pp = &p->next;
            continue;
        }
        uint64_t id = ++r->next_msg_id;
        if (owed_add(r, id, p->sender, p->req_id, p->confirm) != 0)
            return;   /* out of memory: tried again at the next window_open */
        struct delivery_msg m = { .name = p->name, .key = p->key, .key_len = p->key_len, .payload = p->payload,
                                  .len = p->len };
        enum delivery_send_result rc = submit(r, id, p->dest, p->dest_epoch, ch, &m);
        if (rc == DELIVERY_SEND_FULL) {
            free(owed_take(r, id));
            return;   /* window_open again when there is room */
        }
        if (rc != DELIVERY_SEND_OK) {
            free(owed_take(r, id));
            tell(r, p->sender, p->req_id, p->confirm,
                 rc == DELIVERY_SEND_TOO_LARGE ? DELIVERY_V_TOO_LARGE : DELIVERY_V_NODE_LEFT, p->dest,
                 channel_name(r, ch));
        }
        unlink_parked(r, pp);
        r->io.unblock(r->io.ctx, p);
        free(p);
    }
}

static struct parked *park(struct reliable *r, void *sender, uint64_t req_id, bool confirm, const char *dest,
                           uint64_t dest_epoch, unsigned ch, const char *name, const void *key, size_t key_len,
                           const void *payload, size_t len)
{
    struct parked *p = malloc(sizeof *p + key_len + len);
    if (!p)
        return NULL;
    p->next = NULL;
    p->sender = sender;
    p->req_id = req_id;
    p->confirm = confirm;
    p->ch = ch;
    p->dest_epoch = dest_epoch;
    snprintf(p->dest, sizeof p->dest, "%s", dest);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->key = p->bytes;
    p->key_len = key_len;
    if (key_len)
        memcpy(p->key, key, key_len);
    p->payload = p->bytes + key_len;
    p->len = len;
    if (len)
        memcpy(p->payload, payload, len);
    *r->parked_tail = p;
    r->parked_tail = &p->next;
    r->n_parked++;
    return p;
}

Partisan__Ipc__ErrorCode reliable_send(struct reliable *r, void *sender, uint64_t req_id, bool confirm,
                                       const char *dest, uint64_t dest_epoch, unsigned ch, const char *name,
                                       const void *key, size_t key_len, const void *payload, size_t len,
                                       bool *deferred, const void **block, char *msg, size_t msglen)
{
    *deferred = false;
    *block = NULL;
    const char *chname = channel_name(r, ch);
    if (len > r->cfg.max_message_bytes) {
        snprintf(msg, msglen, "payload of %zu bytes is above transport.max_frame_bytes (%" PRIu64 ")", len,
                 r->cfg.max_message_bytes);
        return PARTISAN__IPC__ERROR_CODE__TOO_LARGE;
    }
    enum delivery_send_result rc = DELIVERY_SEND_FULL;
    if (!link_has_parked(r, dest, ch)) {
        uint64_t id = ++r->next_msg_id;
        if (owed_add(r, id, sender, req_id, confirm) != 0) {
            snprintf(msg, msglen, "out of memory");
            return PARTISAN__IPC__ERROR_CODE__INTERNAL;
        }
        struct delivery_msg m = { .name = name, .key = key, .key_len = key_len, .payload = payload, .len = len };
        rc = submit(r, id, dest, dest_epoch, ch, &m);
        if (rc != DELIVERY_SEND_OK)
            free(owed_take(r, id));
        rearm(r);
    }
    switch (rc) {
    case DELIVERY_SEND_OK:
        *deferred = confirm;
        return PARTISAN__IPC__ERROR_CODE__OK;
    case DELIVERY_SEND_FULL: {
        struct parked *p = park(r, sender, req_id, confirm, dest, dest_epoch, ch, name, key, key_len, payload, len);
        if (!p) {
            snprintf(msg, msglen, "the %s window toward %s is full and this node is out of memory; retry later",
                     chname, dest);
            return PARTISAN__IPC__ERROR_CODE__BUSY;
        }
        *deferred = confirm;
        *block = p;
        return PARTISAN__IPC__ERROR_CODE__OK;
    }
    case DELIVERY_SEND_TOO_LARGE:
        snprintf(msg, msglen, "payload of %zu bytes is above the %s window's byte limit", len, chname);
        return PARTISAN__IPC__ERROR_CODE__TOO_LARGE;
    case DELIVERY_SEND_INVALID:
        snprintf(msg, msglen, "this node has left the cluster; restart partisand to rejoin");
        return PARTISAN__IPC__ERROR_CODE__SELF_LEFT;
    default:
        snprintf(msg, msglen, "out of memory");
        return PARTISAN__IPC__ERROR_CODE__INTERNAL;
    }
}

/* ---------------------------------------------------------- receiving -- */

void reliable_on_data(struct reliable *r, const char *origin, const char *channel, const Partisan__Peer__Data *d)
{
    struct delivery_data h = { .origin_epoch = d->origin_epoch, .dest_epoch = d->dest_epoch, .seq = d->seq,
                               .acked_through = d->acked_through };
    struct delivery_msg m = { .name = d->name, .key = d->partition_key.data, .key_len = d->partition_key.len,
                              .meta = d->causal.data, .meta_len = d->causal.len, .payload = d->payload.data,
                              .len = d->payload.len };
    delivery_on_data(r->d, origin, d->channel[0] ? d->channel : channel, &h, &m, clock_now_ms());
    rearm(r);
}

void reliable_on_ack(struct reliable *r, const char *from, const Partisan__Peer__DeliveryAck *a)
{
    /* No window holds more than DELIVERY_WINDOW_MAX messages, so no honest
     * ack lists more exceptions; a longer list costs no allocation here. */
    struct delivery_exception ex[DELIVERY_WINDOW_MAX];
    size_t n = a->n_exceptions < DELIVERY_WINDOW_MAX ? a->n_exceptions : DELIVERY_WINDOW_MAX;
    for (size_t i = 0; i < n; i++) {
        ex[i].seq = a->exceptions[i]->seq;
        ex[i].verdict = a->exceptions[i]->verdict > DELIVERY_V_NODE_LEFT ? DELIVERY_V_NO_SUCH_NAME
                                                                          : (int)a->exceptions[i]->verdict;
    }
    struct delivery_ack k = { .origin_epoch = a->origin_epoch, .dest_epoch = a->dest_epoch, .cum = a->cum,
                              .sack = { a->sack }, .n_exceptions = n, .exceptions = ex, .refused = a->refused,
                              .refused_epoch = a->refused_epoch };
    for (size_t w = 0; w < a->n_sack_more && w + 1 < DELIVERY_SACK_WORDS; w++)
        k.sack[w + 1] = a->sack_more[w];
    delivery_on_ack(r->d, a->from_node[0] ? a->from_node : from, a->channel, &k, clock_now_ms());
    rearm(r);
}

/* ------------------------------------------------------- reachability -- */

void reliable_peer_up(struct reliable *r, const char *node, uint64_t epoch)
{
    delivery_peer_up(r->d, node, epoch, clock_now_ms());
    if (epoch)
        for (size_t i = 0; i < CONFIG_CHANNELS_MAX; i++)
            if (r->causal[i].c)
                causal_node_epoch(r->causal[i].c, node, epoch);
    rearm(r);
}

void reliable_peer_down(struct reliable *r, const char *node)
{
    delivery_peer_down(r->d, node);
}

/* Parked messages for dest (NULL: all) end with verdict v. */
static void fail_parked(struct reliable *r, const char *dest, int v)
{
    struct parked **pp = &r->parked;
    while (*pp) {
        struct parked *p = *pp;
        if (dest && strcmp(p->dest, dest) != 0) {
            pp = &p->next;
            continue;
        }
        unlink_parked(r, pp);
        tell(r, p->sender, p->req_id, p->confirm, v, p->dest, channel_name(r, p->ch));
        r->io.unblock(r->io.ctx, p);
        free(p);
    }
}

void reliable_peer_left(struct reliable *r, const char *node)
{
    delivery_peer_left(r->d, node);
    for (size_t i = 0; i < CONFIG_CHANNELS_MAX; i++)
        if (r->causal[i].c)
            causal_node_left(r->causal[i].c, node);
    fail_parked(r, node, DELIVERY_V_NODE_LEFT);
    rearm(r);
}

void reliable_local_left(struct reliable *r)
{
    delivery_local_left(r->d);
    fail_parked(r, NULL, DELIVERY_V_NODE_LEFT);
    rearm(r);
}

void reliable_sender_closed(struct reliable *r, const void *sender)
{
    for (size_t i = 0; i < r->n_owed_buckets; i++)
        for (struct owed *e = r->owed[i]; e; e = e->next)
            if (e->sender == sender)
                e->sender = NULL;
    for (struct parked *p = r->parked; p; p = p->next)
        if (p->sender == sender)
            p->sender = NULL;
}

void reliable_tick(struct reliable *r)
{
    r->armed = 0;   /* the timer that called us has fired: say what comes next, even "nothing" */
    delivery_tick(r->d, clock_now_ms());
    rearm(r);
}

void reliable_get_stats(const struct reliable *r, struct reliable_stats *out)
{
    memset(out, 0, sizeof *out);
    out->d = *delivery_get_stats(r->d);
    out->outstanding = r->n_owed + r->n_parked;
    out->parked = r->n_parked;
    out->failed = r->failed;
    for (size_t i = 0; i < CONFIG_CHANNELS_MAX; i++)
        if (r->causal[i].c)
            out->causal_held += causal_held(r->causal[i].c);
}

/* ------------------------------------------------------------ lifetime -- */

struct reliable *reliable_new(const struct reliable_config *cfg, const struct reliable_io *io)
{
    struct reliable *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->io = *io;
    r->armed = UINT64_MAX;
    r->parked_tail = &r->parked;
    r->n_owed_buckets = 256;
    r->owed = calloc(r->n_owed_buckets, sizeof *r->owed);
    /* Any message a peer frame can carry must fit a window. */
    uint64_t wb = DELIVERY_WINDOW_BYTES_DEFAULT;
    if (cfg->max_message_bytes + 1 > wb)
        wb = cfg->max_message_bytes + 1;
    struct delivery_config dc = { .epoch = cfg->epoch, .window_bytes = wb };
    struct delivery_env env = { .ctx = r, .transmit = env_transmit, .send_ack = env_send_ack,
                                .deliver = env_deliver, .verdict = env_verdict, .window_open = env_window_open };
    r->d = delivery_new(&dc, &env);
    if (!r->owed || !r->d) {
        reliable_free(r);
        return NULL;
    }
    const struct config *c = cfg->config;
    for (size_t i = 0; i < c->n_channels; i++) {
        if (!c->channels[i].causal)
            continue;
        struct causal_chan *cc = &r->causal[i];
        cc->r = r;
        cc->ch = (unsigned)i;
        struct causal_config ccfg = { .self = cfg->self, .epoch = cfg->epoch };
        struct causal_env cenv = { .ctx = cc, .deliver = causal_deliver };
        if (!(cc->c = causal_new(&ccfg, &cenv))) {
            reliable_free(r);
            return NULL;
        }
    }
    return r;
}

void reliable_free(struct reliable *r)
{
    if (!r)
        return;
    delivery_free(r->d);
    for (size_t i = 0; i < CONFIG_CHANNELS_MAX; i++)
        causal_free(r->causal[i].c);
    for (size_t i = 0; r->owed && i < r->n_owed_buckets; i++)
        for (struct owed *e = r->owed[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(r->owed);
    for (struct parked *p = r->parked, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    free(r);
}
