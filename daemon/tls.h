/* tls: authenticated, encrypted peer links — TLS 1.3 over libevent's
 * OpenSSL bufferevents, with a cluster CA and one certificate per node.
 *
 * Both ends present a certificate and verify the other's against the CA
 * (mutual TLS); the node name a Hello or Welcome claims must then match the
 * certificate (a subjectAltName DNS entry, else the subject CN, as
 * X509_check_host reads them), so a node can only ever speak as itself.
 * Nothing of the peer protocol is read before the TLS handshake completes.
 */
#ifndef PARTISAN_TLS_H
#define PARTISAN_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct tls;

/* Loads the CA, this node's certificate chain and its key, and checks that
 * key and certificate match. NULL with the cause in err. */
struct tls *tls_new(const char *ca_file, const char *cert_file, const char *key_file, char *err, size_t errlen);
void tls_free(struct tls *t);

/* A bufferevent over fd that speaks TLS: as the server of the handshake
 * when accepting, as the client otherwise (then connect it with
 * bufferevent_socket_connect()). Frees nothing on failure (NULL). */
struct bufferevent *tls_bufferevent(struct tls *t, struct event_base *base, int fd, bool accepting);

/* Whether the verified peer certificate on bev names `node`. */
bool tls_peer_is(struct bufferevent *bev, const char *node);

/* The TLS errors queued on bev, as one line ("" if none). */
const char *tls_error(struct bufferevent *bev, char *buf, size_t len);

#endif
