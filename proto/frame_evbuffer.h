/* frame_evbuffer: frame_next() over a libevent input buffer, for the
 * daemon's readers (ipc.c, transport.c).
 *
 * Only the header is copied out to judge the length; a frame is made
 * contiguous (evbuffer_pullup, a copy only when it straddles two chunks)
 * once all of it is there, so the payload can be handed on in place.
 * The pointers in *f stay valid until the caller drains f->size bytes
 * or adds to the buffer. */
#ifndef PARTISAN_FRAME_EVBUFFER_H
#define PARTISAN_FRAME_EVBUFFER_H

#include <event2/buffer.h>

#include "frame.h"

/* As frame_next(); also FRAME_NEED_MORE while the frame is incomplete,
 * and on FRAME_TOO_LARGE / FRAME_EMPTY f->body_len is the announced
 * length; FRAME_NOMEM if the frame could not be made contiguous. */
enum frame_result frame_evbuffer_next(struct evbuffer *in, enum frame_kind k, size_t max_body,
                                      struct frame *f);

/* The writer's side: reserves len contiguous bytes at the end of buf for
 * a frame to be written in place (commit exactly len with
 * evbuffer_commit_space). libevent would give each reservation a chain
 * just big enough for it, so frames of a KiB would cost a malloc each;
 * this grows the buffer FRAME_EVBUFFER_CHUNK at a time, so that frames
 * share chains. *room is the caller's per-buffer hint of the space left
 * after the last reservation (start it at 0); a stale hint costs one
 * small chain, never correctness. 0, or -1 out of memory. */
#define FRAME_EVBUFFER_CHUNK (64u * 1024)
int frame_evbuffer_reserve(struct evbuffer *buf, size_t len, size_t *room, struct evbuffer_iovec *v);

#endif
