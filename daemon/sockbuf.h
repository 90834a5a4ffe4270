/* sockbuf: big reads into a bufferevent's input buffer.
 *
 * libevent 2.1 reads at most 4 KiB per read callback (evbuffer_read's
 * EVBUFFER_MAX_READ, settable only from 2.2 on), whatever
 * bufferevent_set_max_single_read() says: a stream of small messages would
 * then cost a wakeup and a trip round the loop per 4 KiB. A read callback
 * calls sockbuf_fill() first to take what the socket already holds, up to
 * `max` bytes, in as few reads as it takes.
 *
 * Only bytes the kernel says are there (FIONREAD) are read, so a read
 * here never consumes an end of file or a socket error: those stay for
 * libevent to find and report as usual. Plain sockets only, never under
 * a TLS bufferevent; from the bufferevent's own read callback (the input's
 * end is unfrozen for the read and frozen again, as libevent keeps it). */
#ifndef PARTISAN_SOCKBUF_H
#define PARTISAN_SOCKBUF_H

#include <stddef.h>

struct evbuffer;

/* Returns the bytes added to in. */
size_t sockbuf_fill(struct evbuffer *in, int fd, size_t max);

#endif
