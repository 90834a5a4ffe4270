/* Frame codec: partial frames, several frames in one read, oversized and
 * zero lengths, checksums. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

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
