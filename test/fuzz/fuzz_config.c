/* libFuzzer harness: arbitrary bytes -> config_load_string().
 *
 * Besides crashes and sanitizer reports (ASan, UBSan, LeakSanitizer: every
 * input is checked for leaks because config_free() must release all), it
 * asserts the contract of config.h:
 *   - a failure returns the number of errors, each reported once through the
 *     callback as a non-empty one-line message, and leaves *cfg freed;
 *   - a success leaves a struct that main.c can use without re-checking:
 *     names non-empty, NUL-terminated and of the allowed characters, hosts
 *     non-empty, ports in range, every integer in its documented range, and
 *     the cross-key rules (timeout > ping interval, queue >= frame, ...). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_config: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

static const char NAME_CHARS[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-";

static size_t bounded_len(const char *s, size_t cap)
{
    const char *z = memchr(s, '\0', cap);
    CHECK(z != NULL);                    /* NUL-terminated inside its array */
    return (size_t)(z - s);
}

static void check_name(const char *s, size_t cap)
{
    size_t n = bounded_len(s, cap);
    CHECK(n > 0);
    CHECK(n <= CONFIG_NAME_MAX);
    CHECK(strspn(s, NAME_CHARS) == n);
}

static void check_host(const struct config_addr *a)
{
    size_t n = bounded_len(a->host, sizeof a->host);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a->host[i];
        CHECK(c > ' ' && c < 0x7f && c != '[' && c != ']' && c != '/');
    }
    /* What config_format_addr() prints must parse back to the same address. */
    char text[CONFIG_ADDR_MAX + 16];
    struct config_addr back;
    config_format_addr(a, text, sizeof text);
    CHECK(config_parse_addr(text, &back) == 0);
    CHECK(strcmp(back.host, a->host) == 0 && back.port == a->port);
}

static void check_valid(const struct config *c)
{
    /* node_name may be the host name, which check_default_name() vets. */
    check_name(c->node_name, sizeof c->node_name);
    check_name(c->cluster_name, sizeof c->cluster_name);

    check_host(&c->listen);
    check_host(&c->advertise);
    if (c->advertise_set)
        CHECK(c->advertise.port != 0);
    else
        CHECK(strcmp(c->advertise.host, c->listen.host) == 0 && c->advertise.port == c->listen.port);

    bounded_len(c->state_dir, sizeof c->state_dir);
    size_t sock = bounded_len(c->ipc_socket, sizeof c->ipc_socket);
    CHECK(sock >= 1 && sock <= 107);     /* fits sun_path with its NUL */

    CHECK((c->seeds == NULL) == (c->n_seeds == 0));
    for (size_t i = 0; i < c->n_seeds; i++) {
        check_host(&c->seeds[i]);
        CHECK(c->seeds[i].port != 0);
    }

    CHECK(c->overlay == OVERLAY_FULL_MESH || c->overlay == OVERLAY_HYPARVIEW);
    CHECK(c->gossip_interval_ms >= 10 && c->gossip_interval_ms <= 600000);
    CHECK(c->gossip_fanout >= 1 && c->gossip_fanout <= 64);
    CHECK(c->ping_interval_ms >= 10 && c->ping_interval_ms <= 60000);
    CHECK(c->fd_timeout_ms >= 50 && c->fd_timeout_ms <= 600000);
    CHECK(c->fd_timeout_ms > c->ping_interval_ms);
    CHECK(c->connect_timeout_ms >= 10 && c->connect_timeout_ms <= 60000);
    CHECK(c->backoff_initial_ms >= 1 && c->backoff_initial_ms <= 60000);
    CHECK(c->backoff_max_ms >= 1 && c->backoff_max_ms <= 600000);
    CHECK(c->backoff_max_ms >= c->backoff_initial_ms);
    CHECK(c->peer_max_frame_bytes >= 1024 && c->peer_max_frame_bytes <= (UINT64_C(1) << 30));
    CHECK(c->peer_max_queue_bytes >= 65536 && c->peer_max_queue_bytes <= (UINT64_C(16) << 30));
    CHECK(c->peer_max_queue_bytes >= c->peer_max_frame_bytes);
    CHECK(c->ipc_max_frame_bytes >= 1024 && c->ipc_max_frame_bytes <= (UINT64_C(1) << 30));
    CHECK(c->ipc_max_queue_bytes >= 65536 && c->ipc_max_queue_bytes <= (UINT64_C(16) << 30));
    CHECK(c->ipc_max_queue_bytes >= c->ipc_max_frame_bytes);
    CHECK(c->ipc_mode <= 0777);
    CHECK((int)c->log_level >= LOG_DEBUG && (int)c->log_level <= LOG_ERROR);
}

struct errs {
    int count;
};

static void on_error(void *ctx, const char *msg)
{
    struct errs *e = ctx;
    e->count++;
    size_t n = strlen(msg);
    CHECK(n > 0);
    /* One log line per error, and user text in it escaped: no control or
     * non-ASCII byte from the file may reach the log. */
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)msg[i] >= 0x20 && (unsigned char)msg[i] < 0x7f);
    CHECK(n < 4096);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct config cfg;
    struct errs e = { 0 };
    int r = config_load_string(text, "fuzz.json", &cfg, on_error, &e);
    CHECK(r >= 0);
    CHECK(r == e.count);
    if (r == 0) {
        check_valid(&cfg);
        config_free(&cfg);
        CHECK(cfg.seeds == NULL && cfg.n_seeds == 0);
        config_free(&cfg);               /* twice is harmless */
    } else {
        CHECK(cfg.seeds == NULL && cfg.n_seeds == 0);   /* "left freed" */
    }

    /* No callback: the same count, and nothing else may differ. */
    struct config cfg2;
    int r2 = config_load_string(text, "fuzz.json", &cfg2, NULL, NULL);
    CHECK(r2 == r);
    if (r2 == 0)
        config_free(&cfg2);

    free(text);
    return 0;
}
