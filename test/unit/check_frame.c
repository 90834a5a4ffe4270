/* Frame codec: partial frames, several frames in one read, oversized and
 * zero lengths, checksums. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "envelope.h"
#include "frame.h"
#include "frame_evbuffer.h"
#include "ipc.pb-c.h"
#include "peer.pb-c.h"

static size_t put_ipc(uint8_t *out, const char *body)
{
    size_t n = strlen(body);
    frame_ipc_header(out, n);
    memcpy(out + FRAME_IPC_HEADER, body, n);
    return FRAME_IPC_HEADER + n;
}

static size_t put_peer(uint8_t *out, const char *body)
{
    size_t n = strlen(body);
    frame_peer_header(out, (const uint8_t *)body, n);
    memcpy(out + FRAME_PEER_HEADER, body, n);
    return FRAME_PEER_HEADER + n;
}

START_TEST(ipc_whole_frame)
{
    uint8_t buf[64];
    size_t len = put_ipc(buf, "hello");
    size_t body = 0;
    ck_assert_int_eq(frame_ipc_peek(buf, len, 1024, &body), FRAME_OK);
    ck_assert_uint_eq(body, 5);
    ck_assert_mem_eq(buf + FRAME_IPC_HEADER, "hello", 5);
}
END_TEST

START_TEST(ipc_partial_frames_byte_by_byte)
{
    uint8_t buf[64];
    size_t len = put_ipc(buf, "partial body");
    size_t body = 0;
    for (size_t have = 0; have < len; have++)
        ck_assert_int_eq(frame_ipc_peek(buf, have, 1024, &body), FRAME_NEED_MORE);
    ck_assert_int_eq(frame_ipc_peek(buf, len, 1024, &body), FRAME_OK);
}
END_TEST

START_TEST(ipc_several_frames_in_one_read)
{
    uint8_t buf[256];
    const char *bodies[] = { "one", "two!", "three--" };
    size_t len = 0;
    for (int i = 0; i < 3; i++)
        len += put_ipc(buf + len, bodies[i]);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        size_t body = 0;
        ck_assert_int_eq(frame_ipc_peek(buf + off, len - off, 1024, &body), FRAME_OK);
        ck_assert_uint_eq(body, strlen(bodies[i]));
        ck_assert_mem_eq(buf + off + FRAME_IPC_HEADER, bodies[i], body);
        off += FRAME_IPC_HEADER + body;
    }
    ck_assert_uint_eq(off, len);
}
END_TEST

START_TEST(ipc_oversized_length_rejected_from_header_alone)
{
    /* Only the header has arrived: the verdict must not wait for the body. */
    uint8_t hdr[4];
    frame_put_u32(hdr, 0x7fffffff);
    size_t body = 0;
    ck_assert_int_eq(frame_ipc_peek(hdr, 4, 16u << 20, &body), FRAME_TOO_LARGE);
    ck_assert_uint_eq(body, 0x7fffffff);
    frame_put_u32(hdr, 1025);
    ck_assert_int_eq(frame_ipc_peek(hdr, 4, 1024, &body), FRAME_TOO_LARGE);
    frame_put_u32(hdr, 1024);
    ck_assert_int_eq(frame_ipc_peek(hdr, 4, 1024, &body), FRAME_NEED_MORE);
}
END_TEST

START_TEST(ipc_zero_length_rejected)
{
    uint8_t hdr[4] = { 0, 0, 0, 0 };
    size_t body = 1;
    ck_assert_int_eq(frame_ipc_peek(hdr, 4, 1024, &body), FRAME_EMPTY);
}
END_TEST

START_TEST(peer_frame_checksum)
{
    uint8_t buf[64];
    size_t len = put_peer(buf, "gossip");
    size_t body = 0;
    ck_assert_int_eq(frame_peer_peek(buf, len, 1024, &body), FRAME_OK);
    ck_assert_uint_eq(body, 6);
    for (size_t have = 0; have < len; have++)
        ck_assert_int_eq(frame_peer_peek(buf, have, 1024, &body), FRAME_NEED_MORE);
    buf[FRAME_PEER_HEADER + 2] ^= 0x01; /* one flipped bit */
    ck_assert_int_eq(frame_peer_peek(buf, len, 1024, &body), FRAME_BAD_CHECKSUM);
}
END_TEST

START_TEST(peer_frame_limits)
{
    uint8_t hdr[8] = { 0 };
    size_t body = 0;
    ck_assert_int_eq(frame_peer_peek(hdr, 8, 1024, &body), FRAME_EMPTY);
    frame_put_u32(hdr, 4096);
    ck_assert_int_eq(frame_peer_peek(hdr, 8, 1024, &body), FRAME_TOO_LARGE);
}
END_TEST

START_TEST(crc32c_known_vector)
{
    /* RFC 3720 B.4: CRC-32C of "123456789" is 0xE3069283. */
    ck_assert_uint_eq(frame_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = { 0 };
    ck_assert_uint_eq(frame_crc32c(0, zeros, 32), 0x8A9136AAu);
    /* Incremental equals one-shot, across the 8-byte fast path. */
    const char *s = "the quick brown fox jumps over the lazy dog";
    uint32_t one = frame_crc32c(0, (const uint8_t *)s, strlen(s));
    uint32_t inc = frame_crc32c(frame_crc32c(0, (const uint8_t *)s, 13), (const uint8_t *)s + 13, strlen(s) - 13);
    ck_assert_uint_eq(one, inc);
    /* The hardware and table paths agree on every length and alignment. */
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 13)
            ck_assert_uint_eq(frame_crc32c(0, buf + off, len), frame_crc32c_portable(0, buf + off, len));
    ck_assert_uint_eq(frame_crc32c_portable(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
    /* Past 768 bytes the hardware path runs three streams side by side and
     * combines them: every length around and across those blocks. */
    static uint8_t big[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    for (size_t off = 0; off < 8; off += 3)
        for (size_t len = 0; len + off <= sizeof big; len += len < 1600 ? 1 : 97)
            ck_assert_uint_eq(frame_crc32c(0x1234u, big + off, len), frame_crc32c_portable(0x1234u, big + off, len));
}
END_TEST


/* ---- the one reader, as the client and the daemon use it ---- */

struct want {
    const char *env;
    const char *payload;
};

static const struct want stream_frames[] = {
    { "envelope-1", "" },
    { "e2", "payload two" },
    { "", "payload with no envelope" },
    { "a longer envelope, still protobuf to the reader's eyes", "p" },
    { "x", "" },
};
#define N_STREAM (sizeof stream_frames / sizeof stream_frames[0])

/* Writes frames as the daemon and the client do: envelope and payload in
 * place, then frame_seal(). */
static size_t write_stream(enum frame_kind k, uint8_t *out)
{
    size_t len = 0;
    for (size_t i = 0; i < N_STREAM; i++) {
        size_t e = strlen(stream_frames[i].env), p = strlen(stream_frames[i].payload);
        uint8_t *env = out + len + frame_env_offset(k);
        memcpy(env, stream_frames[i].env, e);
        memcpy(env + e, stream_frames[i].payload, p);
        frame_seal(k, out + len, e, p);
        len += frame_size(k, e, p);
    }
    return len;
}

static void check_frame_is(const struct frame *f, size_t i)
{
    ck_assert_uint_lt(i, N_STREAM);
    size_t e = strlen(stream_frames[i].env), p = strlen(stream_frames[i].payload);
    ck_assert_uint_eq(f->env_len, e);
    ck_assert_uint_eq(f->payload_len, p);
    if (e)
        ck_assert_mem_eq(f->env, stream_frames[i].env, e);
    if (p)
        ck_assert_mem_eq(f->payload, stream_frames[i].payload, p);
    else
        ck_assert_ptr_null(f->payload);
}

/* The client's way: bytes accumulate in one buffer, and after every read
 * every whole frame is taken. Here each read brings one byte. */
static void contiguous_one_byte_at_a_time(enum frame_kind k)
{
    uint8_t stream[1024];
    size_t total = write_stream(k, stream), off = 0, seen = 0;
    for (size_t have = 1; have <= total; have++) {
        for (;;) {
            struct frame f;
            enum frame_result r = frame_next(k, stream + off, have - off, 1024, &f);
            if (r == FRAME_NEED_MORE)
                break;
            ck_assert_int_eq(r, FRAME_OK);
            check_frame_is(&f, seen++);
            off += f.size;
            ck_assert_uint_eq(off, have);   /* a frame is whole exactly at its last byte */
        }
    }
    ck_assert_uint_eq(seen, N_STREAM);
    ck_assert_uint_eq(off, total);
}

START_TEST(reader_ipc_one_byte_at_a_time)
{
    contiguous_one_byte_at_a_time(FRAME_KIND_IPC);
}
END_TEST

START_TEST(reader_peer_one_byte_at_a_time)
{
    contiguous_one_byte_at_a_time(FRAME_KIND_PEER);
}
END_TEST

/* The daemon's way: an evbuffer fills as reads come. Each byte is added as
 * a chain of its own (a reference), so every frame straddles chains and
 * must be made contiguous by the reader. */
static void evbuffer_one_byte_at_a_time(enum frame_kind k)
{
    static uint8_t stream[1024];
    size_t total = write_stream(k, stream), seen = 0;
    struct evbuffer *in = evbuffer_new();
    ck_assert_ptr_nonnull(in);
    for (size_t i = 0; i < total; i++) {
        ck_assert_int_eq(evbuffer_add_reference(in, stream + i, 1, NULL, NULL), 0);
        for (;;) {
            struct frame f;
            enum frame_result r = frame_evbuffer_next(in, k, 1024, &f);
            if (r == FRAME_NEED_MORE)
                break;
            ck_assert_int_eq(r, FRAME_OK);
            check_frame_is(&f, seen++);
            ck_assert_uint_eq(evbuffer_get_length(in), f.size);
            evbuffer_drain(in, f.size);
        }
    }
    ck_assert_uint_eq(seen, N_STREAM);
    ck_assert_uint_eq(evbuffer_get_length(in), 0);
    evbuffer_free(in);
}

START_TEST(evbuffer_reader_ipc_one_byte_at_a_time)
{
    evbuffer_one_byte_at_a_time(FRAME_KIND_IPC);
}
END_TEST

START_TEST(evbuffer_reader_peer_one_byte_at_a_time)
{
    evbuffer_one_byte_at_a_time(FRAME_KIND_PEER);
}
END_TEST

START_TEST(evbuffer_reader_judges_length_from_header)
{
    struct evbuffer *in = evbuffer_new();
    uint8_t hdr[8] = { 0 };
    frame_put_u32(hdr, 5000);
    evbuffer_add(in, hdr, 4);
    struct frame f;
    ck_assert_int_eq(frame_evbuffer_next(in, FRAME_KIND_IPC, 4096, &f), FRAME_TOO_LARGE);
    ck_assert_uint_eq(f.body_len, 5000);
    evbuffer_drain(in, 4);
    frame_put_u32(hdr, 0);
    evbuffer_add(in, hdr, 8);
    ck_assert_int_eq(frame_evbuffer_next(in, FRAME_KIND_PEER, 4096, &f), FRAME_EMPTY);
    evbuffer_free(in);
}
END_TEST

START_TEST(envelope_length_checked)
{
    uint8_t buf[64];
    /* An envelope length one past the body. */
    memcpy(buf + frame_env_offset(FRAME_KIND_IPC), "abcdef", 6);
    frame_seal(FRAME_KIND_IPC, buf, 6, 0);
    struct frame f;
    ck_assert_int_eq(frame_next(FRAME_KIND_IPC, buf, frame_size(FRAME_KIND_IPC, 6, 0), 1024, &f), FRAME_OK);
    frame_put_u32(buf + FRAME_IPC_HEADER, 7);
    ck_assert_int_eq(frame_next(FRAME_KIND_IPC, buf, frame_size(FRAME_KIND_IPC, 6, 0), 1024, &f),
                     FRAME_BAD_ENVELOPE);
    /* A body too short to hold the envelope length at all. */
    frame_put_u32(buf, 3);
    ck_assert_int_eq(frame_next(FRAME_KIND_IPC, buf, 7, 1024, &f), FRAME_BAD_ENVELOPE);
    /* A peer frame's checksum covers the payload too. */
    uint8_t *e = buf + frame_env_offset(FRAME_KIND_PEER);
    memcpy(e, "envpay", 6);
    frame_seal(FRAME_KIND_PEER, buf, 3, 3);
    size_t n = frame_size(FRAME_KIND_PEER, 3, 3);
    ck_assert_int_eq(frame_next(FRAME_KIND_PEER, buf, n, 1024, &f), FRAME_OK);
    ck_assert_mem_eq(f.payload, "pay", 3);
    buf[n - 1] ^= 1;
    ck_assert_int_eq(frame_next(FRAME_KIND_PEER, buf, n, 1024, &f), FRAME_BAD_CHECKSUM);
}
END_TEST


/* ---- the hand-coded envelopes are protobuf-c's bytes, both ways ---- */

static struct envelope_str S(const char *s)
{
    return envelope_strof(s, strlen(s));
}

START_TEST(envelope_send_matches_protobuf_c)
{
    const char *chans[] = { "", "bulk" };
    const char *keys[] = { "", "user42" };
    uint64_t ids[] = { 1, 127, 128, 300, 1ull << 40 };
    for (size_t ci = 0; ci < 2; ci++)
        for (size_t ki = 0; ki < 2; ki++)
            for (size_t ii = 0; ii < 5; ii++) {
                Partisan__Ipc__SendRequest q = PARTISAN__IPC__SEND_REQUEST__INIT;
                q.node = "node-2";
                q.name = "inbox";
                q.channel = (char *)chans[ci];
                q.partition_key.data = (uint8_t *)keys[ki];
                q.partition_key.len = strlen(keys[ki]);
                Partisan__Ipc__IpcRequest r = PARTISAN__IPC__IPC_REQUEST__INIT;
                r.id = ids[ii];
                r.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_SEND;
                r.send = &q;
                uint8_t want[512], got[512];
                size_t wn = partisan__ipc__ipc_request__pack(&r, want);
                struct envelope_send e = { .id = ids[ii], .node = S("node-2"), .name = S("inbox"),
                                           .channel = S(chans[ci]), .key = S(keys[ki]) };
                ck_assert_uint_eq(envelope_send_size(&e), wn);
                ck_assert_uint_eq(envelope_send_write(got, &e), wn);
                ck_assert_mem_eq(got, want, wn);
                struct envelope_send d;
                ck_assert_int_eq(envelope_send_read(want, wn, &d), 0);
                ck_assert_uint_eq(d.id, ids[ii]);
                ck_assert_uint_eq(d.node.len, 6);
                ck_assert_mem_eq(d.node.p, "node-2", 6);
                ck_assert_uint_eq(d.channel.len, strlen(chans[ci]));
                ck_assert_uint_eq(d.key.len, strlen(keys[ki]));
                /* Every truncation is refused, never misread. */
                for (size_t cut = 0; cut < wn; cut++)
                    ck_assert_int_eq(envelope_send_read(want, cut, &d), -1);
            }
}
END_TEST

START_TEST(envelope_deliver_and_data_match_protobuf_c)
{
    Partisan__Ipc__Deliver dv = PARTISAN__IPC__DELIVER__INIT;
    dv.from_node = "n1";
    dv.name = "inbox";
    dv.channel = "default";
    Partisan__Ipc__IpcServerMsg m = PARTISAN__IPC__IPC_SERVER_MSG__INIT;
    m.body_case = PARTISAN__IPC__IPC_SERVER_MSG__BODY_DELIVER;
    m.deliver = &dv;
    uint8_t want[512], got[512];
    size_t wn = partisan__ipc__ipc_server_msg__pack(&m, want);
    struct envelope_deliver e = { .from_node = S("n1"), .name = S("inbox"), .channel = S("default") };
    ck_assert_uint_eq(envelope_deliver_size(&e), wn);
    ck_assert_uint_eq(envelope_deliver_write(got, &e), wn);
    ck_assert_mem_eq(got, want, wn);
    struct envelope_deliver de;
    ck_assert_int_eq(envelope_deliver_read(want, wn, &de), 0);
    ck_assert_mem_eq(de.channel.p, "default", 7);
    Partisan__Ipc__IpcServerMsg *back = partisan__ipc__ipc_server_msg__unpack(NULL, wn, got);
    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(back->deliver->name, "inbox");
    partisan__ipc__ipc_server_msg__free_unpacked(back, NULL);

    Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
    d.to_node = "n2";
    d.name = "inbox";
    d.channel = "bulk";
    d.partition_key.data = (uint8_t *)"k\0y";   /* bytes: a NUL is allowed */
    d.partition_key.len = 3;
    Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_DATA;
    f.data = &d;
    wn = partisan__peer__peer_frame__pack(&f, want);
    struct envelope_data ed = { .to_node = S("n2"), .name = S("inbox"), .channel = S("bulk"),
                                .key = { (const uint8_t *)"k\0y", 3 } };
    ck_assert_uint_eq(envelope_data_size(&ed), wn);
    ck_assert_uint_eq(envelope_data_write(got, &ed), wn);
    ck_assert_mem_eq(got, want, wn);
    /* A key with a NUL is not a C string: left to protobuf-c. */
    struct envelope_data dd;
    ck_assert_int_eq(envelope_data_read(want, wn, &dd), -1);
    d.partition_key.data = (uint8_t *)"key";
    wn = partisan__peer__peer_frame__pack(&f, want);
    ck_assert_int_eq(envelope_data_read(want, wn, &dd), 0);
    ck_assert_mem_eq(dd.key.p, "key", 3);
    ck_assert_uint_eq(dd.from_node.len, 0);
    /* Other messages, and unknown fields, are left to protobuf-c. */
    Partisan__Peer__Credit cr = PARTISAN__PEER__CREDIT__INIT;
    f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_CREDIT;
    f.credit = &cr;
    wn = partisan__peer__peer_frame__pack(&f, want);
    ck_assert_int_eq(envelope_data_read(want, wn, &dd), -1);
    uint8_t unknown[] = { 0x2a, 0x04, 0x7a, 0x02, 'h', 'i' };   /* Data field 15 */
    ck_assert_int_eq(envelope_data_read(unknown, sizeof unknown, &dd), -1);
    Partisan__Ipc__StatusRequest st = PARTISAN__IPC__STATUS_REQUEST__INIT;
    Partisan__Ipc__IpcRequest r = PARTISAN__IPC__IPC_REQUEST__INIT;
    r.id = 5;
    r.body_case = PARTISAN__IPC__IPC_REQUEST__BODY_STATUS;
    r.status = &st;
    wn = partisan__ipc__ipc_request__pack(&r, want);
    struct envelope_send es;
    ck_assert_int_eq(envelope_send_read(want, wn, &es), -1);
}
END_TEST

/* The reliable-delivery fields (Data 8..12) and hops: written as
 * protobuf-c packs them, in every combination of present and absent, and
 * read back on the fast path to what protobuf-c unpacks. */
START_TEST(envelope_data_reliable_fields_match_protobuf_c)
{
    static const uint8_t stamp[] = { 0x01, 0x00, 0xff, 0x80, 0x00 };   /* bytes: NULs allowed */
    const uint64_t big[] = { 1, 127, 128, 300, UINT32_MAX, (uint64_t)1 << 35, UINT64_MAX };
    for (unsigned mask = 0; mask < 64; mask++)
        for (size_t bi = 0; bi < sizeof big / sizeof big[0]; bi++) {
            uint64_t v = big[bi];
            uint32_t hops = v > UINT32_MAX ? 7 : (uint32_t)v;
            Partisan__Peer__Data d = PARTISAN__PEER__DATA__INIT;
            d.from_node = "n1";
            d.to_node = "n2";
            d.name = "inbox";
            d.channel = "orders";
            struct envelope_data ed = { .from_node = S("n1"), .to_node = S("n2"), .name = S("inbox"),
                                        .channel = S("orders") };
            if (mask & 1)
                d.hops = ed.hops = hops;
            if (mask & 2)
                d.origin_epoch = ed.origin_epoch = v;
            if (mask & 4)
                d.dest_epoch = ed.dest_epoch = v ^ 1;
            if (mask & 8)
                d.seq = ed.seq = v;
            if (mask & 16)
                d.acked_through = ed.acked_through = v - 1;
            if (mask & 32) {
                d.causal.data = (uint8_t *)stamp;
                d.causal.len = sizeof stamp;
                ed.causal = (struct envelope_str){ stamp, sizeof stamp };
            }
            Partisan__Peer__PeerFrame f = PARTISAN__PEER__PEER_FRAME__INIT;
            f.body_case = PARTISAN__PEER__PEER_FRAME__BODY_DATA;
            f.data = &d;
            uint8_t want[512], got[512];
            size_t wn = partisan__peer__peer_frame__pack(&f, want);
            ck_assert_uint_eq(envelope_data_size(&ed), wn);
            ck_assert_uint_eq(envelope_data_write(got, &ed), wn);
            ck_assert_mem_eq(got, want, wn);
            struct envelope_data dd;
            ck_assert_int_eq(envelope_data_read(want, wn, &dd), 0);
            Partisan__Peer__PeerFrame *back = partisan__peer__peer_frame__unpack(NULL, wn, want);
            ck_assert_ptr_nonnull(back);
            const Partisan__Peer__Data *bd = back->data;
            ck_assert_uint_eq(dd.hops, bd->hops);
            ck_assert_uint_eq(dd.origin_epoch, bd->origin_epoch);
            ck_assert_uint_eq(dd.dest_epoch, bd->dest_epoch);
            ck_assert_uint_eq(dd.seq, bd->seq);
            ck_assert_uint_eq(dd.acked_through, bd->acked_through);
            ck_assert_uint_eq(dd.causal.len, bd->causal.len);
            if (dd.causal.len)
                ck_assert_mem_eq(dd.causal.p, bd->causal.data, dd.causal.len);
            ck_assert_uint_eq(dd.channel.len, strlen(bd->channel));
            partisan__peer__peer_frame__free_unpacked(back, NULL);
            for (size_t cut = 0; cut < wn; cut++)
                ck_assert_int_eq(envelope_data_read(want, cut, &dd), -1);
        }

    /* Not canonical, so left to protobuf-c: a field twice, a varint field
     * sent length-delimited, hops wider than 32 bits, an 11-byte varint. */
    struct envelope_data dd;
    const uint8_t twice[] = { 0x2a, 0x04, 0x50, 0x01, 0x50, 0x02 };          /* seq = 1, seq = 2 */
    ck_assert_int_eq(envelope_data_read(twice, sizeof twice, &dd), -1);
    const uint8_t wrong_type[] = { 0x2a, 0x03, 0x52, 0x01, 0x05 };          /* seq as bytes */
    ck_assert_int_eq(envelope_data_read(wrong_type, sizeof wrong_type, &dd), -1);
    const uint8_t wide_hops[] = { 0x2a, 0x06, 0x38, 0x80, 0x80, 0x80, 0x80, 0x10 };   /* 2^32 */
    ck_assert_int_eq(envelope_data_read(wide_hops, sizeof wide_hops, &dd), -1);
    const uint8_t long_varint[] = { 0x2a, 0x0b, 0x50, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 };
    ck_assert_int_eq(envelope_data_read(long_varint, sizeof long_varint, &dd), -1);
    const uint8_t max_seq[] = { 0x2a, 0x0b, 0x50, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    ck_assert_int_eq(envelope_data_read(max_seq, sizeof max_seq, &dd), 0);
    ck_assert_uint_eq(dd.seq, UINT64_MAX);
    const uint8_t field13[] = { 0x2a, 0x02, 0x68, 0x01 };
    ck_assert_int_eq(envelope_data_read(field13, sizeof field13, &dd), -1);
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, ipc_whole_frame);
    tcase_add_test(tc, ipc_partial_frames_byte_by_byte);
    tcase_add_test(tc, ipc_several_frames_in_one_read);
    tcase_add_test(tc, ipc_oversized_length_rejected_from_header_alone);
    tcase_add_test(tc, ipc_zero_length_rejected);
    tcase_add_test(tc, peer_frame_checksum);
    tcase_add_test(tc, peer_frame_limits);
    tcase_add_test(tc, crc32c_known_vector);
    tcase_add_test(tc, reader_ipc_one_byte_at_a_time);
    tcase_add_test(tc, reader_peer_one_byte_at_a_time);
    tcase_add_test(tc, evbuffer_reader_ipc_one_byte_at_a_time);
    tcase_add_test(tc, evbuffer_reader_peer_one_byte_at_a_time);
    tcase_add_test(tc, evbuffer_reader_judges_length_from_header);
    tcase_add_test(tc, envelope_length_checked);
    tcase_add_test(tc, envelope_send_matches_protobuf_c);
    tcase_add_test(tc, envelope_deliver_and_data_match_protobuf_c);
    tcase_add_test(tc, envelope_data_reliable_fields_match_protobuf_c);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
