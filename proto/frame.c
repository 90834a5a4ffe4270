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

enum frame_result frame_split(const uint8_t *body, size_t body_len, struct frame *f)
{
    if (body_len < FRAME_ENVELOPE_PREFIX)
        return FRAME_BAD_ENVELOPE;
    uint32_t env = frame_get_u32(body);
    if (env > body_len - FRAME_ENVELOPE_PREFIX)
        return FRAME_BAD_ENVELOPE;
    f->body = body;
    f->body_len = body_len;
    f->env = body + FRAME_ENVELOPE_PREFIX;
    f->env_len = env;
    f->payload_len = body_len - FRAME_ENVELOPE_PREFIX - env;
    f->payload = f->payload_len ? f->env + env : NULL;
    return FRAME_OK;
}

enum frame_result frame_next(enum frame_kind k, const uint8_t *buf, size_t len, size_t max_body,
                             struct frame *f)
{
    size_t body = 0;
    enum frame_result r = k == FRAME_KIND_PEER ? frame_peer_peek(buf, len, max_body, &body)
                                               : frame_ipc_peek(buf, len, max_body, &body);
    f->body_len = body;   /* the announced length, for the caller's log line */
    if (r != FRAME_OK)
        return r;
    size_t hdr = frame_header_size(k);
    f->size = hdr + body;
    return frame_split(buf + hdr, body, f);
}

void frame_seal(enum frame_kind k, uint8_t *out, size_t env_len, size_t payload_len)
{
    size_t hdr = frame_header_size(k), body = FRAME_ENVELOPE_PREFIX + env_len + payload_len;
    frame_put_u32(out, (uint32_t)body);
    frame_put_u32(out + hdr, (uint32_t)env_len);
    if (k == FRAME_KIND_PEER)
        frame_put_u32(out + 4, frame_crc32c(0, out + hdr, body));
}

const char *frame_result_str(enum frame_result r)
{
    switch (r) {
    case FRAME_OK: return "ok";
    case FRAME_NEED_MORE: return "incomplete frame";
    case FRAME_TOO_LARGE: return "frame length above the maximum";
    case FRAME_EMPTY: return "zero-length frame";
    case FRAME_BAD_CHECKSUM: return "frame checksum mismatch";
    case FRAME_BAD_ENVELOPE: return "envelope length beyond the frame";
    case FRAME_NOMEM: return "out of memory reading a frame";
    }
    return "unknown frame error";
}

/* CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, slicing-by-8 tables
 * built on first use: fast enough that checksumming stays well below the cost
 * of the syscalls around it. */
static uint32_t crc_table[8][256];
/* The CRC register advanced through CRC_SHORT zero bytes, a byte of it at
 * a time: what combines three streams checksummed side by side. */
#define CRC_SHORT 256
static uint32_t crc_short[4][256];
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
    /* The register is linear in its bits, so shifting each byte of it
     * through the zeros on its own and xoring the four is the whole shift. */
    for (uint32_t k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t c = b << (8 * k);
            for (int i = 0; i < CRC_SHORT; i++)
                c = (c >> 8) ^ crc_table[0][c & 0xff];
            crc_short[k][b] = c;
        }
    crc_ready = 1;
}

static inline uint32_t crc_shift_short(uint32_t c)
{
    return crc_short[0][c & 0xff] ^ crc_short[1][(c >> 8) & 0xff] ^ crc_short[2][(c >> 16) & 0xff] ^
           crc_short[3][c >> 24];
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
 * tables, which matters when every peer frame is checksummed twice. Its
 * latency is three times its throughput, so blocks of 3 x CRC_SHORT bytes
 * run as three independent streams, combined with crc_shift_short(). */
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = ~crc;
    while (len >= 3 * CRC_SHORT) {
        uint64_t c1 = 0, c2 = 0;
        for (const uint8_t *end = p + CRC_SHORT; p < end; p += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, p, 8);
            memcpy(&v1, p + CRC_SHORT, 8);
            memcpy(&v2, p + 2 * CRC_SHORT, 8);
            c = __builtin_ia32_crc32di(c, v0);
            c1 = __builtin_ia32_crc32di(c1, v1);
            c2 = __builtin_ia32_crc32di(c2, v2);
        }
        c = crc_shift_short((uint32_t)c) ^ (uint32_t)c1;
        c = crc_shift_short((uint32_t)c) ^ (uint32_t)c2;
        p += 2 * CRC_SHORT;
        len -= 3 * CRC_SHORT;
    }
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
        if (!crc_ready)
            crc_init();
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
