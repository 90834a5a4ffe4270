/* The benchmark's baseline: a forwarder with no protocol at all.
 *
 *   app -> unix socket -> forwarder -> TCP -> forwarder -> unix socket -> app
 *
 * Bytes from the local application go to the TCP peer as they are, and bytes
 * from the TCP peer go to the application as they are; the applications
 * frame their messages as partisand's clients do (u32 length | body), so
 * the only difference from partisand is everything partisand does.
 *
 * usage: baseline_forwarder UNIX_PATH LISTEN_PORT [PEER_PORT]
 * The side given PEER_PORT dials 127.0.0.1:PEER_PORT; the other accepts. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static struct bufferevent *app, *peer;

static void pipe_cb(struct bufferevent *from, void *arg)
{
    (void)arg;
    struct bufferevent *to = from == app ? peer : app;
    if (to)
        evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (bev == app)
            app = NULL;
        else
            peer = NULL;
        bufferevent_free(bev);
    }
}

static struct bufferevent *wrap(struct event_base *base, evutil_socket_t fd)
{
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, pipe_cb, NULL, event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return bev;
}

static void on_app(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l; (void)sa; (void)len;
    if (app)
        bufferevent_free(app);
    app = wrap(arg, fd);
    if (peer)
        pipe_cb(peer, NULL);
}

static void on_peer(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l; (void)sa; (void)len;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (peer)
        bufferevent_free(peer);
    peer = wrap(arg, fd);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s UNIX_PATH LISTEN_PORT [PEER_PORT]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", argv[1]);
    unlink(argv[1]);
    struct evconnlistener *ul = evconnlistener_new_bind(base, on_app, base, LEV_OPT_CLOSE_ON_FREE, 16,
                                                        (struct sockaddr *)&sun, sizeof sun);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct evconnlistener *tl = evconnlistener_new_bind(base, on_peer, base,
                                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                                        (struct sockaddr *)&sin, sizeof sin);
    if (!ul || !tl) {
        perror("baseline_forwarder: listen");
        return 1;
    }
    if (argc > 3) {
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        peer = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(peer, pipe_cb, NULL, event_cb, NULL);
        bufferevent_enable(peer, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(peer, (struct sockaddr *)&to, sizeof to) != 0) {
            perror("baseline_forwarder: connect");
            return 1;
        }
        int one = 1;
        setsockopt(bufferevent_getfd(peer), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    event_base_dispatch(base);
    return 0;
}
