/* envelope: the three envelopes every message carries, encoded and decoded
 * by hand on the hot path.
 *
 * protobuf-c spends more time per message than everything else a daemon
 * does with it (size, pack and unpack walk descriptor tables and strlen
 * every string). These are the very protobuf encodings of ipc.proto's
 * IpcRequest{send} and IpcServerMsg{deliver} and of peer.proto's
 * PeerFrame{data}, byte for byte what protobuf-c writes (fields in number
 * order, empty ones left out), so any protobuf implementation reads and
 * writes them. The decoders accept the canonical forms and say -1 for
 * anything else they do not know (another message, unknown or repeated
 * fields, a field of another wire type, an integer wider than its field, a
 * string too long for the scratch space or holding a NUL); the caller then
 * decodes with protobuf-c as before, so nothing is ever refused here that
 * protobuf-c would accept.
 *
 * Pure functions over byte buffers: no I/O, no allocation. */
#ifndef PARTISAN_ENVELOPE_H
#define PARTISAN_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

/* Longest string a decoder copies out (names, channels, keys: the daemon
 * allows 255 bytes). */
#define ENVELOPE_STR_MAX 255

struct envelope_str {
    const uint8_t *p;
    size_t len;
};

/* IpcRequest{id, send: SendRequest{node, name, payload, channel,
 * partition_key}}. */
struct envelope_send {
    uint64_t id;
    struct envelope_str node, name, payload, channel, key;
};

/* IpcServerMsg{deliver: Deliver{from_node, name, payload, channel}}. */
struct envelope_deliver {
    struct envelope_str from_node, name, payload, channel;
};

/* PeerFrame{data: Data{from_node, to_node, name, payload, channel,
 * partition_key, hops, origin_epoch, dest_epoch, seq, acked_through,
 * causal}}: every field of Data, so relayed and reliable frames take the
 * fast path too. Integers are written when non-zero, bytes when non-empty,
 * as protobuf-c does. */
struct envelope_data {
    struct envelope_str from_node, to_node, name, payload, channel, key;
    uint32_t hops;
    uint64_t origin_epoch, dest_epoch, seq, acked_through;
    struct envelope_str causal;     /* bytes: may hold NULs, no length bound but the frame's */
};

/* Encoders: *_size() is the exact length, *_write() writes it to out and
 * returns it. Strings are (pointer, length); empty ones are left out. */
size_t envelope_send_size(const struct envelope_send *e);
size_t envelope_send_write(uint8_t *out, const struct envelope_send *e);
size_t envelope_deliver_size(const struct envelope_deliver *e);
size_t envelope_deliver_write(uint8_t *out, const struct envelope_deliver *e);
size_t envelope_data_size(const struct envelope_data *e);
size_t envelope_data_write(uint8_t *out, const struct envelope_data *e);

/* Decoders: 0 and *e filled (pointers into buf), or -1: not a canonical
 * envelope of that kind (decode it with protobuf-c). Strings are not
 * NUL-terminated; each is at most ENVELOPE_STR_MAX bytes, except payload
 * and causal (bytes). */
int envelope_send_read(const uint8_t *buf, size_t len, struct envelope_send *e);
int envelope_deliver_read(const uint8_t *buf, size_t len, struct envelope_deliver *e);
int envelope_data_read(const uint8_t *buf, size_t len, struct envelope_data *e);

/* A decoded string as the C string protobuf-c would have made of it:
 * copied into out (ENVELOPE_STR_MAX + 1 bytes) and NUL-terminated. */
static inline char *envelope_cstr(char *out, const struct envelope_str *s)
{
    for (size_t i = 0; i < s->len; i++)
        out[i] = (char)s->p[i];
    out[s->len] = '\0';
    return out;
}

/* (pointer, length) of a C string, for the encoders. */
static inline struct envelope_str envelope_strof(const char *s, size_t len)
{
    struct envelope_str r = { (const uint8_t *)s, len };
    return r;
}

#endif
