#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls {
    SSL_CTX *ctx;
};

static void openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(buf, len, "unknown error");
        return;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

struct tls *tls_new(const char *ca_file, const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    char why[256];
    struct tls *t = calloc(1, sizeof *t);
    if (!t || !(t->ctx = SSL_CTX_new(TLS_method()))) {
        snprintf(err, errlen, "out of memory");
        free(t);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
    /* Mutual: a peer without a certificate from our CA is no peer. */
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* Partial writes let libevent hand OpenSSL what the socket can take. */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
        openssl_reason(why, sizeof why);
        snprintf(err, errlen, "cannot load the CA %s (tls.ca_file): %s", ca_file, why);
    } else if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
        openssl_reason(why, sizeof why);
        snprintf(err, errlen, "cannot load the certificate %s (tls.cert_file): %s", cert_file, why);
    } else if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(why, sizeof why);
        snprintf(err, errlen, "cannot load the key %s (tls.key_file): %s", key_file, why);
    } else if (SSL_CTX_check_private_key(t->ctx) != 1) {
        snprintf(err, errlen, "the key %s does not belong to the certificate %s", key_file, cert_file);
    } else {
        return t;
    }
    tls_free(t);
    return NULL;
}

void tls_free(struct tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

struct bufferevent *tls_bufferevent(struct tls *t, struct event_base *base, int fd, bool accepting)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* A dirty close still ends the connection (and is reported as one). */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

bool tls_peer_is(struct bufferevent *bev, const char *node)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
        return false;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (!cert)
        return false;
    bool ok = X509_check_host(cert, node, strlen(node), X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
    X509_free(cert);
    return ok;
}

const char *tls_error(struct bufferevent *bev, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned long e; (e = bufferevent_get_openssl_error(bev)) && n + 3 < len;) {
        if (ERR_GET_LIB(e) == 0)
            continue; /* libevent's own marker, not OpenSSL's */
        if (n) {
            buf[n++] = ';';
            buf[n++] = ' ';
        }
        ERR_error_string_n(e, buf + n, len - n);
        n = strlen(buf);
    }
    return buf;
}
