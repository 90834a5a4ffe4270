#include "frame_evbuffer.h"

#include <event2/buffer.h>

enum frame_result frame_evbuffer_next(struct evbuffer *in, enum frame_kind k, size_t max_body,
                                      struct frame *f)
{
    size_t hdr = frame_header_size(k), avail = evbuffer_get_length(in);
    uint8_t h[FRAME_PEER_HEADER];
    f->body_len = 0;
    if (avail < hdr)
        return FRAME_NEED_MORE;
    evbuffer_copyout(in, h, hdr);
    /* The header alone: judges the length before anything waits for it. */
    enum frame_result r = frame_next(k, h, hdr, max_body, f);
    if (r != FRAME_NEED_MORE && r != FRAME_OK)
        return r;
    if (avail - hdr < f->body_len)
        return FRAME_NEED_MORE;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(hdr + f->body_len));
    if (!p)
        return FRAME_NOMEM;
    return frame_next(k, p, hdr + f->body_len, max_body, f);
}

int frame_evbuffer_reserve(struct evbuffer *buf, size_t len, size_t *room, struct evbuffer_iovec *v)
{
    /* Short of room: ask for a whole chunk, of which this frame takes the
     * start (a reservation may be committed shorter than asked). */
    size_t ask = *room < len && len < FRAME_EVBUFFER_CHUNK ? FRAME_EVBUFFER_CHUNK : len;
    if (ask > (size_t)EV_SSIZE_MAX || evbuffer_reserve_space(buf, (ev_ssize_t)ask, v, 1) != 1)
        return -1;
    /* libevent hands out the whole free tail of the chain. */
    *room = v->iov_len > len ? v->iov_len - len : 0;
    return 0;
}
