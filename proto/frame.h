/* frame: length-prefixed framing shared by the daemon and the client.
 *
 * IPC frame:  u32 big-endian length | body
 * Peer frame: u32 big-endian length | u32 big-endian crc32c(body) | body
 *
 * Pure functions over byte buffers: no I/O, no allocation, so the daemon, the
 * client library and the fuzz/unit tests share one decoder. A length is
 * checked against the caller's maximum before anything of that size is
 * allocated or awaited. */
#ifndef PARTISAN_FRAME_H
#define PARTISAN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_IPC_HEADER 4
#define FRAME_PEER_HEADER 8

enum frame_result {
    FRAME_OK = 0,          /* a whole frame is present */
    FRAME_NEED_MORE = 1,   /* not yet a whole frame; read more */
    FRAME_TOO_LARGE = -1,  /* length above the maximum: close the connection */
    FRAME_EMPTY = -2,      /* zero length: no valid message is empty here */
    FRAME_BAD_CHECKSUM = -3,
};

/* Looks at the start of buf. On FRAME_OK sets *body_len; the body starts at
 * buf + FRAME_IPC_HEADER and the whole frame is FRAME_IPC_HEADER + *body_len
 * bytes. On FRAME_TOO_LARGE also sets *body_len to the announced length. */
enum frame_result frame_ipc_peek(const uint8_t *buf, size_t len, size_t max_body,
                                 size_t *body_len);

/* Same for a peer frame; also verifies the checksum once the body is whole. */
enum frame_result frame_peer_peek(const uint8_t *buf, size_t len, size_t max_body,
                                  size_t *body_len);

/* Writes the header for a body of body_len bytes (peer: crc over body). */
void frame_ipc_header(uint8_t out[FRAME_IPC_HEADER], size_t body_len);
void frame_peer_header(uint8_t out[FRAME_PEER_HEADER], const uint8_t *body, size_t body_len);

const char *frame_result_str(enum frame_result r);

/* CRC-32C (Castagnoli); uses the CPU's instruction where there is one. */
uint32_t frame_crc32c(uint32_t crc, const uint8_t *buf, size_t len);
/* The table-driven path alone, so tests can check both agree. */
uint32_t frame_crc32c_portable(uint32_t crc, const uint8_t *buf, size_t len);

static inline uint32_t frame_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void frame_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

#endif
