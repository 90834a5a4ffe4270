/* libFuzzer harness: a byte stream as a connection would deliver it.
 *
 * Input layout:
 *   byte 0  flags: bit 0 peer frames (else IPC frames)
 *                  bit 1 rewrite each peer frame's crc32c so that the body
 *                        reaches protobuf (random bytes almost never carry a
 *                        valid checksum; a real peer's frames always do)
 *                  bit 2 unpack with the daemon's pbarena (else malloc)
 *   byte 1  the maximum body length, as ipc/transport pass it
 *   byte 2  how many bytes each simulated read delivers (1..256)
 *   rest    the stream
 *
 * The stream goes through the real readers, both at once: frame_next() over
 * one growing buffer, as client/client.c reads, and frame_evbuffer_next()
 * over an evbuffer fed in chunks of their own, as daemon/ipc.c and
 * daemon/transport.c read; they must yield the same frames and stop at the
 * same error (that closes the connection). Each whole IPC envelope goes to
 * partisan__ipc__ipc_request__unpack and each peer envelope to
 * partisan__peer__peer_frame__unpack. An overlay message is read with the
 * full mesh's own gossip_unpack() and its members merged with membership_merge(),
 * checking the table after each merge. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "envelope.h"
#include "frame.h"
#include "frame_evbuffer.h"
#include "gossip_codec.h"
#include "ipc.pb-c.h"
#include "membership.h"
#include "pbarena.h"
#include "peer.pb-c.h"

#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_frame: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* ---------------------------------------------------------- membership -- */

static void check_table(const struct membership *m)
{
    CHECK(m->n <= m->cap);
    CHECK(m->n == 0 || m->v != NULL);
    for (size_t i = 0; i < m->n; i++) {
        const struct member *e = &m->v[i];
        CHECK(e->name[0] != '\0');
        CHECK(memchr(e->name, '\0', sizeof e->name) != NULL);
        CHECK(memchr(e->address, '\0', sizeof e->address) != NULL);
        if (i > 0)
            CHECK(strcmp(m->v[i - 1].name, e->name) < 0);   /* sorted, so names unique */
        CHECK(membership_find(m, e->name) == e);
    }
    CHECK(membership_alive_count(m) <= m->n);
}

struct notes {
    const struct membership *m;
    int calls;
};

static void on_change(void *ctx, enum membership_change what, const struct member *now,
                      const struct member *old)
{
    struct notes *n = ctx;
    n->calls++;
    CHECK(what == MEMBERSHIP_ADDED || what == MEMBERSHIP_UPDATED);
    CHECK(now != NULL && old != NULL);
    CHECK(now >= n->m->v && now < n->m->v + n->m->n);    /* a live entry */
    if (what == MEMBERSHIP_UPDATED) {
        CHECK(strcmp(now->name, old->name) == 0);
        CHECK(membership_compare(now, old) > 0);
    } else {
        CHECK(old->name[0] == '\0');
    }
}

static bool same_table(const struct membership *a, const struct membership *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].name, b->v[i].name) != 0 || membership_compare(&a->v[i], &b->v[i]) != 0)
            return false;
    return true;
}

static void merge_gossip(struct membership *table, const uint8_t *msg, size_t len)
{
    /* The full mesh's own decoder: what it rejects never reaches a merge. */
    static struct gossip_codec codec;
    static bool codec_ready;
    if (!codec_ready)
        codec_ready = gossip_codec_init(&codec) == 0;
    CHECK(codec_ready);
    struct gossip_msg m;
    char err[160];
    if (gossip_unpack(&codec, msg, len, &m, err, sizeof err) != 0 || m.n_members == 0)
        return;
    const struct member *members = m.members;
    size_t n = m.n_members;

    /* Into the running table (gossip of earlier frames). */
    struct notes nt = { .m = table };
    int changed = membership_merge(table, members, n, on_change, &nt);
    CHECK(changed >= 0);
    CHECK(changed == nt.calls);
    check_table(table);
    uint64_t d1 = membership_digest(table);
    nt.calls = 0;
    CHECK(membership_merge(table, members, n, on_change, &nt) == 0);   /* idempotent */
    CHECK(nt.calls == 0);
    CHECK(membership_digest(table) == d1);
    check_table(table);

    /* Into an empty table, in one call and entry by entry backwards: the
     * same table either way (commutative), and merging it again changes
     * nothing. */
    struct membership a, b;
    membership_init(&a);
    membership_init(&b);
    nt = (struct notes){ .m = &a };
    changed = membership_merge(&a, members, n, on_change, &nt);
    CHECK(changed >= 0 && changed == nt.calls);
    CHECK((size_t)changed == a.n);
    check_table(&a);
    for (size_t i = n; i-- > 0;)
        CHECK(membership_merge_one(&b, &members[i], NULL) >= 0);
    check_table(&b);
    CHECK(same_table(&a, &b));
    CHECK(membership_digest(&a) == membership_digest(&b));
    uint64_t da = membership_digest(&a);
    CHECK(membership_merge(&a, members, n, NULL, NULL) == 0);
    CHECK(membership_digest(&a) == da);
    /* Merging a table into itself (its entries are sorted and unique, the
     * fast path) changes nothing either. */
    struct member *copy = a.n ? malloc(a.n * sizeof *copy) : NULL;
    if (a.n && copy) {
        memcpy(copy, a.v, a.n * sizeof *copy);
        CHECK(membership_merge(&a, copy, a.n, NULL, NULL) == 0);
        CHECK(membership_digest(&a) == da);
        /* And the table merged into the running one = the inputs merged. */
        uint64_t dt = membership_digest(table);
        CHECK(membership_merge(table, copy, a.n, NULL, NULL) == 0);
        CHECK(membership_digest(table) == dt);
    }
    free(copy);
    membership_free(&a);
    membership_free(&b);
}

/* ----------------------------------------------------------------- frames -- */

static void check_peek(bool peer, const uint8_t *buf, size_t avail, size_t max_body,
                       enum frame_result r, size_t body)
{
    size_t hdr = peer ? FRAME_PEER_HEADER : FRAME_IPC_HEADER;
    switch (r) {
    case FRAME_NEED_MORE:
        CHECK(avail < hdr || (avail - hdr < frame_get_u32(buf) && frame_get_u32(buf) <= max_body));
        break;
    case FRAME_OK: {
        CHECK(avail >= hdr);
        CHECK(body == frame_get_u32(buf));
        CHECK(body > 0 && body <= max_body);
        CHECK(hdr + body <= avail);
        if (peer)
            CHECK(frame_crc32c_portable(0, buf + hdr, body) == frame_get_u32(buf + 4));
        /* The frame alone is whole; one byte short is not. */
        size_t b2 = 0;
        enum frame_result r2 = peer ? frame_peer_peek(buf, hdr + body, max_body, &b2)
                                    : frame_ipc_peek(buf, hdr + body, max_body, &b2);
        CHECK(r2 == FRAME_OK && b2 == body);
        r2 = peer ? frame_peer_peek(buf, hdr + body - 1, max_body, &b2)
                  : frame_ipc_peek(buf, hdr + body - 1, max_body, &b2);
        CHECK(r2 == FRAME_NEED_MORE);
        break;
    }
    case FRAME_TOO_LARGE:
        CHECK(body == frame_get_u32(buf) && body > max_body);
        break;
    case FRAME_EMPTY:
        CHECK(frame_get_u32(buf) == 0);
        break;
    case FRAME_BAD_CHECKSUM:
        CHECK(peer);
        CHECK(body == frame_get_u32(buf) && hdr + body <= avail);
        CHECK(frame_crc32c_portable(0, buf + hdr, body) != frame_get_u32(buf + 4));
        break;
    default:
        CHECK(!"unknown frame_result");
    }
    CHECK(frame_result_str(r) != NULL);
}

/* What the hand decoder made of a string is what protobuf-c made of it. */
static void same_str(const struct envelope_str *s, const char *c)
{
    CHECK(strlen(c) == s->len && (s->len == 0 || memcmp(c, s->p, s->len) == 0));
}

static void same_bytes(const struct envelope_str *s, ProtobufCBinaryData b)
{
    CHECK(b.len == s->len && (s->len == 0 || memcmp(b.data, s->p, s->len) == 0));
}

static void handle_body(bool peer, const uint8_t *body, size_t len, ProtobufCAllocator *alloc,
                        struct pbarena *arena, struct membership *table)
{
    CHECK(frame_crc32c(0, body, len) == frame_crc32c_portable(0, body, len));
    /* The daemon's hand decoders (envelope.h) accept only what protobuf-c
     * accepts, and read it the same; their re-encoding is byte for byte. */
    struct envelope_data ed;
    struct envelope_send es;
    struct envelope_deliver edv;
    int data_ok = peer ? envelope_data_read(body, len, &ed) : -1;
    int send_ok = peer ? -1 : envelope_send_read(body, len, &es);
    if (!peer && envelope_deliver_read(body, len, &edv) == 0) {
        Partisan__Ipc__IpcServerMsg *m = partisan__ipc__ipc_server_msg__unpack(NULL, len, body);
        CHECK(m && m->body_case == PARTISAN__IPC__IPC_SERVER_MSG__BODY_DELIVER);
        same_str(&edv.from_node, m->deliver->from_node);
        same_str(&edv.name, m->deliver->name);
        same_str(&edv.channel, m->deliver->channel);
        same_bytes(&edv.payload, m->deliver->payload);
        partisan__ipc__ipc_server_msg__free_unpacked(m, NULL);
    }
    if (peer) {
        Partisan__Peer__PeerFrame *f = partisan__peer__peer_frame__unpack(alloc, len, body);
        if (data_ok == 0) {
            CHECK(f && f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_DATA);
            same_str(&ed.from_node, f->data->from_node);
            same_str(&ed.to_node, f->data->to_node);
            same_str(&ed.name, f->data->name);
            same_str(&ed.channel, f->data->channel);
            same_bytes(&ed.payload, f->data->payload);
            same_bytes(&ed.key, f->data->partition_key);
            CHECK(ed.hops == f->data->hops);
            CHECK(ed.origin_epoch == f->data->origin_epoch && ed.dest_epoch == f->data->dest_epoch);
            CHECK(ed.seq == f->data->seq && ed.acked_through == f->data->acked_through);
            same_bytes(&ed.causal, f->data->causal);
            uint8_t *out = malloc(envelope_data_size(&ed));
            if (out) {
                CHECK(envelope_data_write(out, &ed) == envelope_data_size(&ed));
                struct envelope_data again;
                CHECK(envelope_data_read(out, envelope_data_size(&ed), &again) == 0);
                free(out);
            }
        }
        if (f) {
            if (f->body_case == PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY)
                merge_gossip(table, f->overlay.data, f->overlay.len);
            /* Re-encoding what was decoded must fit the size it reports. */
            size_t n = partisan__peer__peer_frame__get_packed_size(f);
            uint8_t *out = malloc(n ? n : 1);
            if (out) {
                CHECK(partisan__peer__peer_frame__pack(f, out) == n);
                free(out);
            }
            if (!arena)
                partisan__peer__peer_frame__free_unpacked(f, alloc);
        }
    } else {
        Partisan__Ipc__IpcRequest *q = partisan__ipc__ipc_request__unpack(alloc, len, body);
        if (send_ok == 0) {
            CHECK(q && q->body_case == PARTISAN__IPC__IPC_REQUEST__BODY_SEND && q->id == es.id);
            same_str(&es.node, q->send->node);
            same_str(&es.name, q->send->name);
            same_str(&es.channel, q->send->channel);
            same_bytes(&es.payload, q->send->payload);
            same_bytes(&es.key, q->send->partition_key);
        }
        if (q) {
            size_t n = partisan__ipc__ipc_request__get_packed_size(q);
            uint8_t *out = malloc(n ? n : 1);
            if (out) {
                CHECK(partisan__ipc__ipc_request__pack(q, out) == n);
                free(out);
            }
            if (!arena)
                partisan__ipc__ipc_request__free_unpacked(q, alloc);
        }
    }
    if (arena)
        pbarena_reset(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    bool peer = data[0] & 1, fix_crc = data[0] & 2, use_arena = data[0] & 4;
    size_t max_body = data[1] == 0xff ? (size_t)1 << 20 : (size_t)data[1] * 16 + 1;
    size_t chunk = (size_t)data[2] + 1;
    size_t hdr = peer ? FRAME_PEER_HEADER : FRAME_IPC_HEADER;
    size_t total = size - 3;

    uint8_t *buf = malloc(total ? total : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 3, total);
    if (peer && fix_crc) {
        for (size_t off = 0; off + hdr <= total;) {
            uint32_t n = frame_get_u32(buf + off);
            if (n == 0 || total - off - hdr < n)
                break;
            frame_put_u32(buf + off + 4, frame_crc32c(0, buf + off + hdr, n));
            off += hdr + n;
        }
    }

    struct pbarena arena;
    ProtobufCAllocator *alloc = NULL;
    if (use_arena) {
        if (pbarena_init(&arena, 256) < 0) {   /* small: the overflow path gets used */
            free(buf);
            return 0;
        }
        alloc = &arena.allocator;
    }
    struct membership table;
    membership_init(&table);
    struct evbuffer *ev = evbuffer_new();
    CHECK(ev != NULL);
    enum frame_kind kind = peer ? FRAME_KIND_PEER : FRAME_KIND_IPC;

    /* Reads of `chunk` bytes; each read decodes every whole frame there is.
     * The evbuffer gets each read as a reference of its own (a chain per
     * read), so frames straddle chains as they do off a socket. */
    size_t have = 0, off = 0;
    bool closed = false;
    while (!closed && have < total) {
        size_t was = have;
        have = have + chunk < total ? have + chunk : total;
        CHECK(evbuffer_add_reference(ev, buf + was, have - was, NULL, NULL) == 0);
        for (;;) {
            size_t avail = have - off, body = 0;
            enum frame_result r = peer ? frame_peer_peek(buf + off, avail, max_body, &body)
                                       : frame_ipc_peek(buf + off, avail, max_body, &body);
            check_peek(peer, buf + off, avail, max_body, r, body);
            struct frame f, g;
            enum frame_result rf = frame_next(kind, buf + off, avail, max_body, &f);
            enum frame_result rg = frame_evbuffer_next(ev, kind, max_body, &g);
            /* The two readers agree, and agree with the header peek. */
            CHECK(rf == rg);
            CHECK(rf == r || (r == FRAME_OK && rf == FRAME_BAD_ENVELOPE));
            if (rf == FRAME_NEED_MORE)
                break;
            if (rf != FRAME_OK) {
                closed = true;
                break;
            }
            CHECK(f.size == g.size && f.env_len == g.env_len && f.payload_len == g.payload_len);
            CHECK(f.size == hdr + body && f.env_len + f.payload_len + FRAME_ENVELOPE_PREFIX == body);
            CHECK(memcmp(f.body, g.body, f.body_len) == 0);
            CHECK(f.env == f.body + FRAME_ENVELOPE_PREFIX);
            CHECK(f.payload_len == 0 ? f.payload == NULL : f.payload == f.env + f.env_len);
            handle_body(peer, f.env, f.env_len, alloc, use_arena ? &arena : NULL, &table);
            evbuffer_drain(ev, g.size);
            off += f.size;
        }
    }
    CHECK(closed || evbuffer_get_length(ev) == have - off);
    evbuffer_free(ev);

    membership_free(&table);
    if (use_arena)
        pbarena_free(&arena);
    free(buf);
    return 0;
}
