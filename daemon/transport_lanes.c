/* transport_lanes: a lane is (peer, channel, index) with its queue
 * (channel.h) and at most one data connection at a time. Sending picks a
 * lane (partition key, else the least loaded), writes the frame into its
 * queue and refills the connection's socket buffer from it; a lane whose
 * connection failed takes back what was not written and redials. */
#include "transport_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "channel.h"
#include "clock.h"
#include "envelope.h"
#include "frame.h"
#include "frame_evbuffer.h"
#include "log.h"

/* -------------------------------------------- refilling and redialling -- */

/* Dials the lane's connection again, at most once a TP_DATA_REDIAL_MS, so
 * a peer that refuses data connections is not hammered. */
static void lane_redial(struct lane *l)
{
    if (l->p->dead || l->conn || evtimer_pending(l->redial, NULL))
        return;
    uint64_t now = clock_now_ms(), due = l->dialled_ms + TP_DATA_REDIAL_MS;
    struct timeval tv = tp_ms_tv(due > now ? due - now : 0);
    evtimer_add(l->redial, &tv);
}

static size_t lane_load(const struct lane *l)
{
    size_t n = l->held_bytes + (l->q ? channel_queue_bytes(l->q) : 0);
    if (l->conn && l->conn->bev)
        n += evbuffer_get_length(bufferevent_get_output(l->conn->bev));
    return n;
}

static size_t lane_limit(const struct transport *t, const struct lane *l)
{
    size_t per = t->max_queue / t->chans[l->ch].parallelism;
    size_t least = t->max_frame + FRAME_PEER_HEADER;
    return per > least ? per : least;
}

/* Bytes of this lane's frames that left the current socket's buffer. */
static uint64_t lane_written(const struct lane *l, struct evbuffer *out)
{
    return channel_queue_stats(l->q)->bytes_sent - l->bytes_sent_at_dial - evbuffer_get_length(out);
}

/* Refills the socket from the queue, and releases the lane's waiting
 * senders once it has drained to a quarter of its bound. */
void tp_lane_pump(struct lane *l)
{
    struct transport *t = l->p->t;
    struct conn *c = l->conn;
    if (c && c->established && !c->closed && c->bev && l->q) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        if (evbuffer_get_length(out) <= HANDOVER_LOW) {
            /* One refill in eight: the ioctl costs a few per cent of a busy
             * daemon, and an older sample only widens the estimate. */
            int unacked = 0;
            if ((l->refills++ & 7) == 0 && ioctl(bufferevent_getfd(c->bev), SIOCOUTQ, &unacked) == 0 &&
                unacked >= 0) {
                l->unacked_sample = (uint64_t)unacked;
                l->written_at_sample = lane_written(l, out);
            }
            size_t before = channel_queue_stats(l->q)->msgs_sent;
            channel_queue_handover(l->q, out, HANDOVER_FILL);
            t->stats.frames_out += channel_queue_stats(l->q)->msgs_sent - before;
        }
    }
    if (l->congested && lane_load(l) <= lane_limit(t, l) / 4) {
        l->congested = false;
        if (t->cb.on_lane_drained)
            t->cb.on_lane_drained(t->cb.ctx, l);
    }
}

/* The lane's connection failed: take back what the socket had not begun
 * to write, so the next connection sends it first. */
void tp_lane_conn_failed(struct conn *c)
{
    struct lane *l = c->lane;
    struct transport *t = l->p->t;
    uint64_t lost_before = l->q ? channel_queue_stats(l->q)->lost : 0;
    if (c->bev) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        if (c->established && l->q) {
            int unacked = 0;
            if (ioctl(bufferevent_getfd(c->bev), SIOCOUTQ, &unacked) != 0 || unacked < 0)
                unacked = 0;
            /* After a reset the kernel has purged its queue, so at most
             * everything written since the last sample is unacked on top
             * of what was then: an estimate that errs towards counting a
             * message lost. After an orderly close the kernel still knows. */
            uint64_t est = l->unacked_sample + (lane_written(l, out) - l->written_at_sample);
            if (c->eof || (uint64_t)unacked > est)
                est = (uint64_t)unacked;
            channel_queue_recover(l->q, out, (size_t)est);
        } else {
            /* Only our Hello was there: no message is handed over before
             * the Welcome. */
            evbuffer_drain(out, evbuffer_get_length(out));
        }
    }
    if (c->established)
        l->dropped = true;
    uint64_t lost = l->q ? channel_queue_stats(l->q)->lost - lost_before : 0;
    tp_conn_close(c);
    if (l->q && channel_queue_msgs(l->q))
        lane_redial(l);
    if (lost && t->cb.on_data_lost)
        t->cb.on_data_lost(t->cb.ctx, l->p->node, lost);
}

void tp_lane_redial_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct lane *l = arg;
    if (l->p->dead || l->conn || !l->p->connected)
        return;
    log_debug("dialling %s connection %u to node \"%s\" at %s", l->p->t->chans[l->ch].name, l->idx,
              l->p->node, l->p->address);
    tp_dial(l->p, CONN_OUT_DATA, l);
}


/* ------------------------------------------------------------- sending -- */

static int send_control(struct transport *t, const char *node, const Partisan__Peer__PeerFrame *f)
{
    struct peer *p = tp_peer_by_node(t, node);
    if (!p || !p->connected || !p->ctrl)
        return -1;
    int rc = tp_conn_send(p->ctrl, f, t->max_queue);
    if (rc == -2) {
        /* Control traffic is small; a peer that cannot take it is broken.
         * on_disconnected follows from the loop. */
        log_warn("control queue to node \"%s\" at %s passed max_queue_bytes (%zu): it is not reading; closing",
                 p->node, p->address, t->max_queue);
        tp_conn_doom(p->ctrl, "control queue overflow");
        return -1;
    }
    return rc;
}

int transport_send_overlay(struct transport *t, const char *node, const uint8_t *msg, size_t len)
{
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
    f.overlay.data = (uint8_t *)msg;
    f.overlay.len = len;
    return send_control(t, node, &f);
}

int transport_send_credit(struct transport *t, const char *node, const char *name, uint64_t bytes)
{
    Partisan__Peer__CreditGrant g = PARTISAN__PEER__CREDIT_GRANT__INIT;
    g.name = (char *)name;
    g.bytes = bytes;
    Partisan__Peer__CreditGrant *gp = &g;
    Partisan__Peer__Credit cr = PARTISAN__PEER__CREDIT__INIT;
    cr.n_grants = 1;
    cr.grants = &gp;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_CREDIT;
    f.credit = &cr;
    return send_control(t, node, &f);
}

/* The replacement key of a monotonic channel: destination node, name and
 * partition key, each length-prefixed so that no two triples collide.
 * monotonic_key_parts() reads the node and name back. */
static size_t monotonic_key(uint8_t *buf, size_t cap, const Partisan__Peer__Data *d, const void *key,
                            size_t key_len)
{
    const char *parts[2] = { d->to_node, d->name };
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        const void *src = i < 2 ? parts[i] : key;
        size_t len = i < 2 ? strlen(parts[i]) : key_len;
        if (n + 2 + len > cap)
            return 0;
        buf[n++] = (uint8_t)(len >> 8);
        buf[n++] = (uint8_t)len;
        memcpy(buf + n, src, len);
        n += len;
    }
    return n;
}

static bool monotonic_key_parts(const uint8_t *k, size_t n, char node[TP_NAME_MAX], char name[TP_NAME_MAX])
{
    char *dst[2] = { node, name };
    size_t at = 0;
    for (int i = 0; i < 2; i++) {
        if (at + 2 > n)
            return false;
        size_t len = (size_t)k[at] << 8 | k[at + 1];
        at += 2;
        if (len >= TP_NAME_MAX || at + len > n)
            return false;
        memcpy(dst[i], k + at, len);
        dst[i][len] = '\0';
        at += len;
    }
    return true;
}

static bool lane_may_send(void *ctx, const void *key, size_t key_len)
{
    struct lane *l = ctx;
    struct transport *t = l->p->t;
    char node[TP_NAME_MAX], name[TP_NAME_MAX];
    if (!t->cb.may_send || !monotonic_key_parts(key, key_len, node, name))
        return true;
    return t->cb.may_send(t->cb.ctx, node, name);
}

static void lane_sent(void *ctx, const void *key, size_t key_len, uint64_t payload_len)
{
    struct lane *l = ctx;
    struct transport *t = l->p->t;
    char node[TP_NAME_MAX], name[TP_NAME_MAX];
    if (t->cb.on_monotonic_sent && monotonic_key_parts(key, key_len, node, name))
        t->cb.on_monotonic_sent(t->cb.ctx, node, name, payload_len);
}

static struct channel_queue *lane_queue_new(struct lane *l)
{
    bool monotonic = l->p->t->chans[l->ch].monotonic;
    struct channel_queue *q = channel_queue_new(monotonic);
    if (q && !l->p->t->tls)
        channel_queue_set_chunked(q, true);
    if (q && monotonic) {
        struct channel_gate g = { .ctx = l, .may_send = lane_may_send, .sent = lane_sent };
        channel_queue_set_gate(q, &g);
    }
    return q;
}

void transport_kick(struct transport *t, const char *node)
{
    struct peer *p = tp_peer_by_node(t, node);
    if (!p)
        return;
    for (size_t i = 0; i < t->n_lanes; i++)
        if (p->lanes[i].q && t->chans[p->lanes[i].ch].monotonic && channel_queue_msgs(p->lanes[i].q))
            tp_lane_pump(&p->lanes[i]);
}

/* Gets a lane's connection going for what was just queued. Into the
 * socket's buffer at once only when it is empty (a lone message waits for
 * nothing); otherwise the write callback refills it when it falls to
 * HANDOVER_LOW, moving a batch of frames in one go instead of one frame
 * per send. */
void tp_lane_wake(struct lane *l)
{
    if (l->conn) {
        if (!l->conn->bev || evbuffer_get_length(bufferevent_get_output(l->conn->bev)) == 0)
            tp_lane_pump(l);
    } else {
        lane_redial(l);
    }
}

/* Copies a whole frame into the lane's queue. */
int tp_lane_put(struct lane *l, const uint8_t *frame, size_t len, const uint8_t *key, size_t key_len,
                uint64_t tag)
{
    if (!l->q && !(l->q = lane_queue_new(l)))
        return -1;
    uint8_t *dst = channel_queue_reserve(l->q, len);
    if (!dst)
        return -1;
    memcpy(dst, frame, len);
    return channel_queue_commit(l->q, key, key_len, tag);
}

/* The lane a message without a key takes: the least loaded. */
static struct lane *pick_lane(struct transport *t, struct peer *p, unsigned channel, const void *key,
                              size_t key_len, size_t *load)
{
    struct tp_channel *ch = &t->chans[channel];
    struct lane *lanes = &p->lanes[ch->first_lane];
    size_t loads[CONFIG_PARALLELISM_MAX];
    for (unsigned i = 0; i < ch->parallelism; i++)
        loads[i] = lane_load(&lanes[i]);
    unsigned pick = channel_pick_lane(key, key_len, loads, ch->parallelism, &ch->rr);
    *load = loads[pick];
    return &lanes[pick];
}

int transport_send_data(struct transport *t, const char *node, unsigned channel, const void *key,
                        size_t key_len, const Partisan__Peer__Data *d, const void **congested)
{
    *congested = NULL;
    struct peer *p = tp_peer_by_node(t, node);
    if (!p || !p->connected || channel >= t->n_chans)
        return -1;
    struct tp_channel *ch = &t->chans[channel];
    size_t load;
    struct lane *l = pick_lane(t, p, channel, key, key_len, &load);

    /* The envelope without the payload, which follows it raw; encoded by
     * hand (envelope.h), the bytes protobuf-c would write for it. */
    struct envelope_data env = {
        .from_node = envelope_strof(d->from_node, strlen(d->from_node)),
        .to_node = envelope_strof(d->to_node, strlen(d->to_node)),
        .name = envelope_strof(d->name, strlen(d->name)),
        .channel = envelope_strof(d->channel, strlen(d->channel)),
        .key = { d->partition_key.data, d->partition_key.len },
        .hops = d->hops,
        .origin_epoch = d->origin_epoch,
        .dest_epoch = d->dest_epoch,
        .seq = d->seq,
        .acked_through = d->acked_through,
        .causal = { d->causal.data, d->causal.len },
    };
    size_t env_len = envelope_data_size(&env);
    size_t len = FRAME_ENVELOPE_PREFIX + env_len + d->payload.len;
    if (len > t->max_frame) {
        log_warn("frame of %zu bytes to node \"%s\" is above max_frame_bytes (%zu); not sent", len, node,
                 t->max_frame);
        return -1;
    }
    if (!l->cstats)
        l->cstats = tp_chan_stats_get(t, p->node, ch->name);
    size_t limit = lane_limit(t, l);
    if (load + FRAME_PEER_HEADER + len > limit) {
        t->stats.queue_overflow++;
        l->cstats->paused++;
        return -2;
    }
    uint8_t keybuf[2 * TP_NAME_MAX + 2 * TP_NAME_MAX + 8];
    size_t keyn = ch->monotonic ? monotonic_key(keybuf, sizeof keybuf, d, key, key_len) : 0;
    int rc;
    if (tp_faults_on(t)) {
        struct held *h = tp_held_new(FRAME_PEER_HEADER + len, keyn);
        if (!h) {
            log_error("out of memory queueing a message to node \"%s\"", node);
            return -1;
        }
        uint8_t *e = h->bytes + frame_env_offset(FRAME_KIND_PEER);
        envelope_data_write(e, &env);
        if (d->payload.len)
            memcpy(e + env_len, d->payload.data, d->payload.len);
        frame_seal(FRAME_KIND_PEER, h->bytes, env_len, d->payload.len);
        if (keyn)
            memcpy(h->bytes + h->len, keybuf, keyn);
        h->tag = d->payload.len;
        rc = tp_lane_send_faulty(l, h);
    } else {
        uint8_t *frame = NULL;
        if ((l->q || (l->q = lane_queue_new(l))))
            frame = channel_queue_reserve(l->q, FRAME_PEER_HEADER + len);
        if (frame) {
            uint8_t *e = frame + frame_env_offset(FRAME_KIND_PEER);
            envelope_data_write(e, &env);
            /* The payload's one copy in this daemon: from the application's
             * frame, still in the IPC input buffer, into the lane's queue. */
            if (d->payload.len)
                memcpy(e + env_len, d->payload.data, d->payload.len);
            frame_seal(FRAME_KIND_PEER, frame, env_len, d->payload.len);
            rc = channel_queue_commit(l->q, keybuf, keyn, d->payload.len);
        } else {
            rc = -1;
        }
    }
    if (rc != 0) {
        log_error("out of memory queueing a message to node \"%s\"", node);
        return -1;
    }
    tp_lane_wake(l);
    if (lane_load(l) > limit / 2) {
        if (!l->congested)
            l->cstats->paused++;
        l->congested = true;
        *congested = l;
    }
    return 0;
}

int transport_send_ack(struct transport *t, const char *node, unsigned channel,
                       const Partisan__Peer__DeliveryAck *a)
{
    struct peer *p = tp_peer_by_node(t, node);
    if (!p || !p->connected || channel >= t->n_chans || !a)
        return -1;
    size_t load;
    struct lane *l = pick_lane(t, p, channel, NULL, 0, &load);
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_ACK;
    f.ack = (Partisan__Peer__DeliveryAck *)a;
    size_t env_len = partisan__peer__peer_frame__get_packed_size(&f);
    size_t size = frame_size(FRAME_KIND_PEER, env_len, 0);
    if (size - FRAME_PEER_HEADER > t->max_frame) {
        log_warn("DeliveryAck of %zu bytes to node \"%s\" is above max_frame_bytes (%zu); not sent", size,
                 node, t->max_frame);
        return -1;
    }
    if (!l->cstats)
        l->cstats = tp_chan_stats_get(t, p->node, t->chans[channel].name);
    if (load + size > lane_limit(t, l)) {
        t->stats.queue_overflow++;
        return -2;
    }
    int rc;
    if (tp_faults_on(t)) {
        struct held *h = tp_held_new(size, 0);
        if (!h) {
            log_error("out of memory queueing an ack to node \"%s\"", node);
            return -1;
        }
        partisan__peer__peer_frame__pack(&f, h->bytes + frame_env_offset(FRAME_KIND_PEER));
        frame_seal(FRAME_KIND_PEER, h->bytes, env_len, 0);
        rc = tp_lane_send_faulty(l, h);
    } else {
        uint8_t *frame = NULL;
        if ((l->q || (l->q = lane_queue_new(l))))
            frame = channel_queue_reserve(l->q, size);
        if (frame) {
            partisan__peer__peer_frame__pack(&f, frame + frame_env_offset(FRAME_KIND_PEER));
            frame_seal(FRAME_KIND_PEER, frame, env_len, 0);
            /* No key: an ack never replaces, nor is replaced by, a waiting
             * message, even on a monotonic lane. */
            rc = channel_queue_commit(l->q, NULL, 0, 0);
        } else {
            rc = -1;
        }
    }
    if (rc != 0) {
        log_error("out of memory queueing an ack to node \"%s\"", node);
        return -1;
    }
    tp_lane_wake(l);
    return 0;
}
