/* libFuzzer harness: every overlay core in the registry (daemon/overlay.c),
 * driven by hostile peers.
 *
 * The real core is created through overlay_find() with a recording
 * environment and fed a script read from the input:
 *   byte 0     which registered core (index into the names below)
 *   then ops   one byte each, its low 3 bits the operation, the rest an
 *              argument:
 *     0 receive  from peer (arg % PEERS), a message of the next byte's
 *                length taken from the input: the core's codec reads
 *                whatever a peer (or a peer on another overlay) sends
 *     1 peer_connected  peer (arg % PEERS)
 *     2 peer_disconnected
 *     3 connect_failed  the oldest dial the core asked for
 *     4 tick, the clock moved by (arg * 37) ms
 *     5 leave (arg % PEERS), or this node itself
 *     6 forget (arg % PEERS)
 *     7 a message the core sent, replayed back to it from its target
 * After every op: the member table is sorted with unique names and within
 * max_members, next_deadline() is not in the past after a tick, and
 * nothing the core asked for named an unknown peer slot. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership.h"
#include "overlay.h"

#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_overlay: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define PEERS 6
#define MAX_MEMBERS 32
#define DIALS 16

static const char *const core_names[] = { "full_mesh", "hyparview" };

struct driver {
    uint64_t now, rng;
    struct peer_addr dials[DIALS];
    size_t n_dials;
    uint8_t last_sent[4096];
    size_t last_sent_len;
    char last_sent_to[MEMBER_NAME_MAX + 1];
    uint64_t sends, events;
};

static uint64_t env_now(void *ctx) { return ((struct driver *)ctx)->now; }
static uint64_t env_wall(void *ctx) { return 1790000000000ull + ((struct driver *)ctx)->now; }

static uint64_t env_random(void *ctx)
{
    struct driver *d = ctx;
    uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void env_connect(void *ctx, const struct peer_addr *peer)
{
    struct driver *d = ctx;
    CHECK(memchr(peer->node, '\0', sizeof peer->node) && memchr(peer->address, '\0', sizeof peer->address));
    if (d->n_dials < DIALS)
        d->dials[d->n_dials++] = *peer;
}

static void env_disconnect(void *ctx, const char *node) { (void)ctx; CHECK(node && node[0]); }

static void env_send(void *ctx, const char *node, const uint8_t *msg, size_t len)
{
    struct driver *d = ctx;
    CHECK(node && node[0]);
    CHECK(len == 0 || msg);
    d->sends++;
    if (len <= sizeof d->last_sent) {
        memcpy(d->last_sent, msg, len);
        d->last_sent_len = len;
        snprintf(d->last_sent_to, sizeof d->last_sent_to, "%s", node);
    }
}

static void env_member(void *ctx, const struct member *m)
{
    CHECK(m && m->name[0]);
    ((struct driver *)ctx)->events++;
}

static void env_node(void *ctx, const char *node)
{
    CHECK(node && node[0]);
    ((struct driver *)ctx)->events++;
}

static void env_log(void *ctx, enum overlay_log_level level, const char *msg)
{
    (void)ctx; (void)level;
    CHECK(msg);
}

static void env_bcast(void *ctx, const char *origin, const char *name, const uint8_t *payload, size_t len)
{
    (void)ctx;
    CHECK(origin && name && (len == 0 || payload));
}

static void check_table(const struct membership *m)
{
    CHECK(m->n <= MAX_MEMBERS + 1);     /* the bound, and self */
    for (size_t i = 0; i < m->n; i++) {
        CHECK(m->v[i].name[0] != '\0');
        CHECK(memchr(m->v[i].name, '\0', sizeof m->v[i].name) != NULL);
        if (i > 0)
            CHECK(strcmp(m->v[i - 1].name, m->v[i].name) < 0);
    }
}

static void peer_name(char *out, size_t cap, unsigned k)
{
    snprintf(out, cap, "p%u", k % PEERS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct overlay_ops *ops = overlay_find(core_names[data[0] % (sizeof core_names / sizeof core_names[0])]);
    if (!ops)
        return 0;       /* not built into this daemon yet */
    struct driver d = { .now = 1000, .rng = data[0] };
    struct overlay_env env = {
        .ctx = &d, .now_ms = env_now, .wall_ms = env_wall, .random = env_random,
        .connect = env_connect, .disconnect = env_disconnect, .send = env_send,
        .member_joined = env_member, .member_left = env_member, .member_up = env_node,
        .member_down = env_node, .member_forgotten = env_node, .log = env_log,
        .neighbor_up = env_node, .neighbor_down = env_node, .broadcast_deliver = env_bcast,
    };
    const char *seeds[] = { "127.0.0.1:7001" };
    struct overlay_config cfg = {
        .self_name = "self", .self_address = "127.0.0.1:7000", .self_incarnation = 5,
        .seeds = seeds, .n_seeds = 1,
        .gossip_interval_ms = 100, .gossip_fanout = 3, .ping_interval_ms = 100, .fd_timeout_ms = 500,
        .backoff_initial_ms = 10, .backoff_max_ms = 200, .max_members = MAX_MEMBERS,
        .tombstone_ttl_ms = 2000,
    };
    struct overlay *o = ops->create(&cfg, &env);
    CHECK(o);
    ops->start(o);
    size_t i = 1;
    while (i < size) {
        uint8_t op = data[i++], arg = op >> 3;
        char who[16];
        peer_name(who, sizeof who, arg);
        switch (op & 7) {
        case 0: {
            size_t len = i < size ? data[i++] : 0;
            if (len > size - i)
                len = size - i;
            ops->receive(o, who, data + i, len);
            i += len;
            break;
        }
        case 1: {
            char addr[32];
            snprintf(addr, sizeof addr, "127.0.0.%u:7000", arg % PEERS + 2);
            ops->peer_connected(o, who, addr, 1 + arg % 3);
            break;
        }
        case 2:
            ops->peer_disconnected(o, who);
            break;
        case 3:
            if (d.n_dials) {
                struct peer_addr p = d.dials[0];
                memmove(d.dials, d.dials + 1, --d.n_dials * sizeof *d.dials);
                ops->connect_failed(o, &p);
            }
            break;
        case 4:
            d.now += (uint64_t)arg * 37;
            ops->tick(o, d.now);
            CHECK(ops->next_deadline(o) > d.now);
            break;
        case 5:
            ops->leave(o, arg % (PEERS + 1) == PEERS ? NULL : who);
            break;
        case 6:
            ops->forget(o, who);
            break;
        case 7:
            if (d.last_sent_len && d.last_sent_to[0]) {
                uint8_t copy[sizeof d.last_sent];
                size_t len = d.last_sent_len;
                char from[MEMBER_NAME_MAX + 1];
                memcpy(copy, d.last_sent, len);
                memcpy(from, d.last_sent_to, sizeof from);
                ops->receive(o, from, copy, len);
            }
            break;
        }
        check_table(ops->members(o));
        (void)ops->is_up(o, who);
        (void)ops->next_hop(o, who);
        if (ops->is_neighbor)
            (void)ops->is_neighbor(o, who);
    }
    ops->destroy(o);
    return 0;
}
