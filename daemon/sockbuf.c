#include "sockbuf.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>

size_t sockbuf_fill(struct evbuffer *in, int fd, size_t max)
{
    size_t total = 0;
    /* A bufferevent keeps the end of its input frozen except while it
     * reads itself; this is such a read. */
    evbuffer_unfreeze(in, 0);
    while (total < max) {
        int avail = 0;
        if (ioctl(fd, FIONREAD, &avail) != 0 || avail <= 0)
            break;
        size_t want = (size_t)avail < max - total ? (size_t)avail : max - total;
        struct evbuffer_iovec v[2];
        int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
        if (nv < 1)
            break;
        /* No more than the kernel holds, so the read cannot block or
         * reach an end of file. */
        size_t room = 0;
        for (int i = 0; i < nv; i++) {
            if (room + v[i].iov_len > want)
                v[i].iov_len = want - room;
            room += v[i].iov_len;
        }
        ssize_t n;
        do
            n = readv(fd, (struct iovec *)v, nv);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            break;   /* the reservation lapses uncommitted */
        size_t left = (size_t)n;
        int used = 0;
        for (int i = 0; i < nv && left; i++, used++) {
            if (v[i].iov_len > left)
                v[i].iov_len = left;
            left -= v[i].iov_len;
        }
        if (evbuffer_commit_space(in, v, used) != 0)
            break;
        total += (size_t)n;
        if ((size_t)n < want)
            break;
    }
    evbuffer_freeze(in, 0);
    return total;
}
