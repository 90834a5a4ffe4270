/* frame: length-prefixed framing shared by the daemon and the client.
 *
 * IPC frame:  u32 big-endian length | body
 * Peer frame: u32 big-endian length | u32 big-endian crc32c(body) | body
 * body:       u32 big-endian envelope length | envelope | payload
 *
 * The length counts the body. The envelope is one protobuf message
 * (IpcRequest, IpcServerMsg or PeerFrame); the payload is the application's
 * bytes, raw, and runs to the end of the body (often empty). Keeping the
 * payload out of the protobuf lets a daemon move it from one socket to the
 * next without decoding or re-encoding it.
 *
 * Pure functions over byte buffers: no I/O, no allocation, so the daemon, the
 * client library and the fuzz/unit tests share one decoder. A length is
 * checked against the caller's maximum before anything of that size is
 * allocated or awaited. frame_next() is the reader everyone uses on a
 * contiguous buffer; frame_evbuffer.h adapts it to libevent's buffers. */
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
    FRAME_BAD_ENVELOPE = -4, /* the envelope length runs past the body */
    FRAME_NOMEM = -5,        /* frame_evbuffer_next: could not make it contiguous */
};

/* The u32 envelope length at the start of every body. */
#define FRAME_ENVELOPE_PREFIX 4

enum frame_kind { FRAME_KIND_IPC, FRAME_KIND_PEER };

/* One whole frame, pointing into the caller's buffer. */
struct frame {
    size_t size;                /* header + body: what to consume */
    const uint8_t *body;
    size_t body_len;
    const uint8_t *env;         /* the protobuf envelope */
    size_t env_len;
    const uint8_t *payload;     /* raw; NULL when empty */
    size_t payload_len;
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

static inline size_t frame_header_size(enum frame_kind k)
{
    return k == FRAME_KIND_PEER ? FRAME_PEER_HEADER : FRAME_IPC_HEADER;
}

/* Where the envelope starts in a frame being written. */
static inline size_t frame_env_offset(enum frame_kind k)
{
    return frame_header_size(k) + FRAME_ENVELOPE_PREFIX;
}

/* The whole frame's size for an envelope and payload of these lengths. */
static inline size_t frame_size(enum frame_kind k, size_t env_len, size_t payload_len)
{
    return frame_env_offset(k) + env_len + payload_len;
}

/* The frame at the start of buf[0..len): FRAME_OK with *f filled (pointers
 * into buf), FRAME_NEED_MORE, or an error after which the stream is
 * unusable (close the connection). A peer frame's checksum is verified.
 * Call again at buf + f->size for the next one. */
enum frame_result frame_next(enum frame_kind k, const uint8_t *buf, size_t len, size_t max_body,
                             struct frame *f);

/* Splits a body into envelope and payload. FRAME_OK or FRAME_BAD_ENVELOPE. */
enum frame_result frame_split(const uint8_t *body, size_t body_len, struct frame *f);

/* The writer: with the envelope at out + frame_env_offset(k) and the
 * payload right after it, writes the headers (and a peer frame's checksum,
 * over envelope and payload as they lie there). */
void frame_seal(enum frame_kind k, uint8_t *out, size_t env_len, size_t payload_len);

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
