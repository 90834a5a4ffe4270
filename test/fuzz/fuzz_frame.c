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
 * The stream is decoded as daemon/transport.c and daemon/ipc.c do: peek,
 * unpack each whole body, drain, repeat; stop at the first error (that
 * closes the connection). Each whole IPC body goes to
 * partisan__ipc__ipc_request__unpack and each peer body to
 * partisan__peer__peer_frame__unpack. An overlay message is read with the
 * full mesh's own gossip_unpack() and its members merged with membership_merge(),
 * checking the table after each merge. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
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

static void handle_body(bool peer, const uint8_t *body, size_t len, ProtobufCAllocator *alloc,
                        struct pbarena *arena, struct membership *table)
{
    CHECK(frame_crc32c(0, body, len) == frame_crc32c_portable(0, body, len));
    if (peer) {
        Partisan__Peer__PeerFrame *f = partisan__peer__peer_frame__unpack(alloc, len, body);
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

    /* Reads of `chunk` bytes; each read decodes every whole frame there is. */
    size_t have = 0, off = 0;
    bool closed = false;
    while (!closed && have < total) {
        have = have + chunk < total ? have + chunk : total;
        for (;;) {
            size_t avail = have - off, body = 0;
            enum frame_result r = peer ? frame_peer_peek(buf + off, avail, max_body, &body)
                                       : frame_ipc_peek(buf + off, avail, max_body, &body);
            check_peek(peer, buf + off, avail, max_body, r, body);
            if (r == FRAME_NEED_MORE)
                break;
            if (r != FRAME_OK) {
                closed = true;
                break;
            }
            handle_body(peer, buf + off + hdr, body, alloc, use_arena ? &arena : NULL, &table);
            off += hdr + body;
        }
    }

    membership_free(&table);
    if (use_arena)
        pbarena_free(&arena);
    free(buf);
    return 0;
}
