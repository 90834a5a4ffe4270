#include "frame.h"

enum frame_result frame_ipc_peek(const uint8_t *buf, size_t len, size_t max_body,
                                 size_t *body_len)
{
    if (len < FRAME_IPC_HEADER)
        return FRAME_NEED_MORE;
    uint32_t n = frame_get_u32(buf);
    *body_len = n;
    if (n == 0)
        return FRAME_EMPTY;
    if (n > max_body)
        return FRAME_TOO_LARGE;
    if (len - FRAME_IPC_HEADER < n)
        return FRAME_NEED_MORE;
    return FRAME_OK;
}

enum frame_result frame_peer_peek(const uint8_t *buf, size_t len, size_t max_body,
                                  size_t *body_len)
{
    if (len < FRAME_PEER_HEADER)
        return FRAME_NEED_MORE;
    uint32_t n = frame_get_u32(buf);
    *body_len = n;
    if (n == 0)
        return FRAME_EMPTY;
    if (n > max_body)
        return FRAME_TOO_LARGE;
    if (len - FRAME_PEER_HEADER < n)
        return FRAME_NEED_MORE;
    if (frame_crc32c(0, buf + FRAME_PEER_HEADER, n) != frame_get_u32(buf + 4))
        return FRAME_BAD_CHECKSUM;
    return FRAME_OK;
}

void frame_ipc_header(uint8_t out[FRAME_IPC_HEADER], size_t body_len)
{
    frame_put_u32(out, (uint32_t)body_len);
}

void frame_peer_header(uint8_t out[FRAME_PEER_HEADER], const uint8_t *body, size_t body_len)
{
    frame_put_u32(out, (uint32_t)body_len);
    frame_put_u32(out + 4, frame_crc32c(0, body, body_len));
}

const char *frame_result_str(enum frame_result r)
{
    switch (r) {
    case FRAME_OK: return "ok";
    case FRAME_NEED_MORE: return "incomplete frame";
    case FRAME_TOO_LARGE: return "frame length above the maximum";
    case FRAME_EMPTY: return "zero-length frame";
    case FRAME_BAD_CHECKSUM: return "frame checksum mismatch";
    }
    return "unknown frame error";
}

/* CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, slicing-by-8 tables
 * built on first use: fast enough that checksumming stays well below the cost
 * of the syscalls around it. */
static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    crc_ready = 1;
}

static uint32_t crc32c_table(uint32_t crc, const uint8_t *p, size_t len)
{
    if (!crc_ready)
        crc_init();
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <string.h>
/* SSE4.2 has a CRC-32C instruction: an order of magnitude faster than the
 * tables, which matters when every peer frame is checksummed twice. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

uint32_t frame_crc32c(uint32_t crc, const uint8_t *p, size_t len)
{
    static int hw = -1;
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    return hw ? crc32c_sse42(crc, p, len) : crc32c_table(crc, p, len);
}
#else
uint32_t frame_crc32c(uint32_t crc, const uint8_t *p, size_t len)
{
    return crc32c_table(crc, p, len);
}
#endif

/* For tests: the portable path, whatever the CPU has. */
uint32_t frame_crc32c_portable(uint32_t crc, const uint8_t *p, size_t len)
{
    return crc32c_table(crc, p, len);
}
