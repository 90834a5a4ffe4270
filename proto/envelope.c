#include "envelope.h"

#include <string.h>

/* Field tags: (field number << 3) | wire type; 0 varint, 2 length-delimited. */
#define TAG(field, wire) ((uint8_t)((field) << 3 | (wire)))
#define WIRE_VARINT 0
#define WIRE_LEN 2

/* IpcRequest.id = 1, IpcRequest.send = 13; SendRequest 1..5. */
#define IPC_REQUEST_ID 1
#define IPC_REQUEST_SEND 13
/* IpcServerMsg.deliver = 2; Deliver 1..4. */
#define SERVER_MSG_DELIVER 2
/* PeerFrame.data = 5; Data 1..12. */
#define PEER_FRAME_DATA 5

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A length-delimited field with a one-byte tag, or nothing when empty. */
static size_t str_size(const struct envelope_str *s)
{
    return s->len ? 1 + varint_size(s->len) + s->len : 0;
}

static uint8_t *put_str(uint8_t *p, uint8_t tag, const struct envelope_str *s)
{
    if (!s->len)
        return p;
    *p++ = tag;
    p = put_varint(p, s->len);
    memcpy(p, s->p, s->len);
    return p + s->len;
}

/* ---- encoders ---- */

static size_t send_inner(const struct envelope_send *e)
{
    return str_size(&e->node) + str_size(&e->name) + str_size(&e->payload) + str_size(&e->channel) +
           str_size(&e->key);
}

size_t envelope_send_size(const struct envelope_send *e)
{
    size_t inner = send_inner(e);
    return (e->id ? 1 + varint_size(e->id) : 0) + 1 + varint_size(inner) + inner;
}

size_t envelope_send_write(uint8_t *out, const struct envelope_send *e)
{
    uint8_t *p = out;
    if (e->id) {
        *p++ = TAG(IPC_REQUEST_ID, WIRE_VARINT);
        p = put_varint(p, e->id);
    }
    *p++ = TAG(IPC_REQUEST_SEND, WIRE_LEN);
    p = put_varint(p, send_inner(e));
    p = put_str(p, TAG(1, WIRE_LEN), &e->node);
    p = put_str(p, TAG(2, WIRE_LEN), &e->name);
    p = put_str(p, TAG(3, WIRE_LEN), &e->payload);
    p = put_str(p, TAG(4, WIRE_LEN), &e->channel);
    p = put_str(p, TAG(5, WIRE_LEN), &e->key);
    return (size_t)(p - out);
}

static size_t deliver_inner(const struct envelope_deliver *e)
{
    return str_size(&e->from_node) + str_size(&e->name) + str_size(&e->payload) + str_size(&e->channel);
}

size_t envelope_deliver_size(const struct envelope_deliver *e)
{
    size_t inner = deliver_inner(e);
    return 1 + varint_size(inner) + inner;
}

size_t envelope_deliver_write(uint8_t *out, const struct envelope_deliver *e)
{
    uint8_t *p = out;
    *p++ = TAG(SERVER_MSG_DELIVER, WIRE_LEN);
    p = put_varint(p, deliver_inner(e));
    p = put_str(p, TAG(1, WIRE_LEN), &e->from_node);
    p = put_str(p, TAG(2, WIRE_LEN), &e->name);
    p = put_str(p, TAG(3, WIRE_LEN), &e->payload);
    p = put_str(p, TAG(4, WIRE_LEN), &e->channel);
    return (size_t)(p - out);
}

/* A varint field with a one-byte tag, or nothing when zero. */
static size_t u64_size(uint64_t v)
{
    return v ? 1 + varint_size(v) : 0;
}

static uint8_t *put_u64(uint8_t *p, uint8_t tag, uint64_t v)
{
    if (!v)
        return p;
    *p++ = tag;
    return put_varint(p, v);
}

static size_t data_inner(const struct envelope_data *e)
{
    return str_size(&e->from_node) + str_size(&e->to_node) + str_size(&e->name) + str_size(&e->payload) +
           str_size(&e->channel) + str_size(&e->key) + u64_size(e->hops) + u64_size(e->origin_epoch) +
           u64_size(e->dest_epoch) + u64_size(e->seq) + u64_size(e->acked_through) + str_size(&e->causal);
}

size_t envelope_data_size(const struct envelope_data *e)
{
    size_t inner = data_inner(e);
    return 1 + varint_size(inner) + inner;
}

size_t envelope_data_write(uint8_t *out, const struct envelope_data *e)
{
    uint8_t *p = out;
    *p++ = TAG(PEER_FRAME_DATA, WIRE_LEN);
    p = put_varint(p, data_inner(e));
    p = put_str(p, TAG(1, WIRE_LEN), &e->from_node);
    p = put_str(p, TAG(2, WIRE_LEN), &e->to_node);
    p = put_str(p, TAG(3, WIRE_LEN), &e->name);
    p = put_str(p, TAG(4, WIRE_LEN), &e->payload);
    p = put_str(p, TAG(5, WIRE_LEN), &e->channel);
    p = put_str(p, TAG(6, WIRE_LEN), &e->key);
    p = put_u64(p, TAG(7, WIRE_VARINT), e->hops);
    p = put_u64(p, TAG(8, WIRE_VARINT), e->origin_epoch);
    p = put_u64(p, TAG(9, WIRE_VARINT), e->dest_epoch);
    p = put_u64(p, TAG(10, WIRE_VARINT), e->seq);
    p = put_u64(p, TAG(11, WIRE_VARINT), e->acked_through);
    p = put_str(p, TAG(12, WIRE_LEN), &e->causal);
    return (size_t)(p - out);
}

/* ---- decoders ---- */

/* Reads a varint of at most 10 bytes; 0 on success. */
static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = *p++;
        /* The tenth byte holds bit 63 alone: anything above is a value
         * no 64-bit field has, left to protobuf-c to judge. */
        if (shift == 63 && b > 1)
            return -1;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* A length-delimited body at *pp: 0 and *s set, or -1. */
static int get_len(const uint8_t **pp, const uint8_t *end, struct envelope_str *s)
{
    uint64_t n;
    if (get_varint(pp, end, &n) != 0 || n > (uint64_t)(end - *pp))
        return -1;
    s->p = *pp;
    s->len = (size_t)n;
    *pp += n;
    return 0;
}

/* The fields of one inner message, each a length-delimited field 1..n
 * seen at most once; strings (all but payload_field) short and free of
 * NULs, as C strings must be to mean what protobuf-c would make of them. */
static int read_fields(const uint8_t *p, const uint8_t *end, struct envelope_str **fields, unsigned n,
                       unsigned payload_field)
{
    unsigned seen = 0;
    while (p < end) {
        uint8_t tag = *p++;
        unsigned field = tag >> 3;
        if ((tag & 7) != WIRE_LEN || field < 1 || field > n || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        struct envelope_str *s = fields[field - 1];
        if (get_len(&p, end, s) != 0)
            return -1;
        if (field != payload_field && (s->len > ENVELOPE_STR_MAX || memchr(s->p, 0, s->len)))
            return -1;
    }
    return 0;
}

int envelope_send_read(const uint8_t *buf, size_t len, struct envelope_send *e)
{
    memset(e, 0, sizeof *e);
    const uint8_t *p = buf, *end = buf + len;
    int have_id = 0, have_send = 0;
    while (p < end) {
        uint8_t tag = *p++;
        if (tag == TAG(IPC_REQUEST_ID, WIRE_VARINT) && !have_id) {
            if (get_varint(&p, end, &e->id) != 0)
                return -1;
            have_id = 1;
        } else if (tag == TAG(IPC_REQUEST_SEND, WIRE_LEN) && !have_send) {
            struct envelope_str body;
            if (get_len(&p, end, &body) != 0)
                return -1;
            struct envelope_str *f[5] = { &e->node, &e->name, &e->payload, &e->channel, &e->key };
            if (read_fields(body.p, body.p + body.len, f, 5, 3) != 0)
                return -1;
            have_send = 1;
        } else {
            return -1;
        }
    }
    return have_send ? 0 : -1;
}

int envelope_deliver_read(const uint8_t *buf, size_t len, struct envelope_deliver *e)
{
    memset(e, 0, sizeof *e);
    const uint8_t *p = buf, *end = buf + len;
    struct envelope_str body;
    if (p >= end || *p++ != TAG(SERVER_MSG_DELIVER, WIRE_LEN) || get_len(&p, end, &body) != 0 || p != end)
        return -1;
    struct envelope_str *f[4] = { &e->from_node, &e->name, &e->payload, &e->channel };
    return read_fields(body.p, body.p + body.len, f, 4, 3);
}

int envelope_data_read(const uint8_t *buf, size_t len, struct envelope_data *e)
{
    memset(e, 0, sizeof *e);
    const uint8_t *p = buf, *end = buf + len;
    struct envelope_str body;
    if (p >= end || *p++ != TAG(PEER_FRAME_DATA, WIRE_LEN) || get_len(&p, end, &body) != 0 || p != end)
        return -1;
    /* Fields 1..6 and 12 are length-delimited, 7..11 varints; each at
     * most once (a repeated one means "last wins" to protobuf-c). */
    struct envelope_str *strs[13] = { NULL, &e->from_node, &e->to_node, &e->name, &e->payload, &e->channel,
                                      &e->key, NULL, NULL, NULL, NULL, NULL, &e->causal };
    uint64_t hops = 0;
    uint64_t *ints[13] = { NULL, NULL, NULL, NULL, NULL, NULL, NULL, &hops, &e->origin_epoch, &e->dest_epoch,
                           &e->seq, &e->acked_through, NULL };
    unsigned seen = 0;
    p = body.p;
    end = body.p + body.len;
    while (p < end) {
        uint8_t tag = *p++;
        unsigned field = tag >> 3;
        if (field < 1 || field > 12 || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        if (strs[field]) {
            struct envelope_str *s = strs[field];
            if ((tag & 7) != WIRE_LEN || get_len(&p, end, s) != 0)
                return -1;
            /* The key is bytes on the wire but held to the strings' rule
             * (the scratch space of a relaying hop). */
            if (field != 4 && field != 12 && (s->len > ENVELOPE_STR_MAX || memchr(s->p, 0, s->len)))
                return -1;
        } else {
            if ((tag & 7) != WIRE_VARINT || get_varint(&p, end, ints[field]) != 0)
                return -1;
        }
    }
    /* uint32 on the wire: protobuf-c would keep the low bits of a wider
     * value; leave that oddity to it. */
    if (hops > UINT32_MAX)
        return -1;
    e->hops = (uint32_t)hops;
    return 0;
}
