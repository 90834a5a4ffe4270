/* sim: a deterministic simulator for the sans-IO overlay cores.
 *
 * N instances of the real core run against a virtual clock (a priority queue
 * of events in ms), one seeded PRNG and a simulated network: per-link latency
 * (1..20 ms, fixed per directed link, so each connection is FIFO), optional
 * loss, partitions, crashes (with a TCP reset, or silent), restarts and
 * stalls (a SIGSTOPped process). The same seed reproduces the same run.
 *
 * Connections follow daemon/transport.h: a node sends only on connections it
 * dialled; a dial to a node already connected or being dialled is ignored
 * (counted in dup_dials: the core should never do it); env->disconnect
 * closes our outbound connection gracefully (what was sent still arrives)
 * and resets the peer's outbound one toward us, which the peer hears about
 * as peer_disconnected if the network lets the reset through. The side that
 * called disconnect is not told peer_disconnected.
 *
 * Every application event is checked as it happens: member_up twice without
 * member_down between, a down without an up, joined twice without left, an
 * event about self. The first violation is kept in sim->violation. */
#ifndef PARTISAN_SIM_H
#define PARTISAN_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "overlay.h"

#define SIM_CONNECT_TIMEOUT_MS 2000     /* a dial into a partition fails after this */

struct sim_params {
    size_t n;                           /* nodes */
    const char *overlay;                /* a registry name (overlay.h); NULL: "full_mesh" */
    uint64_t seed;
    double loss;                        /* probability a message is lost */
    uint32_t gossip_interval_ms, gossip_fanout, ping_interval_ms, fd_timeout_ms;
    uint32_t backoff_initial_ms, backoff_max_ms;
    bool verbose;                       /* print the cores' log lines */
    size_t max_members;                 /* the cores' bound; 0: none */
    bool foreign_members;               /* members that are no simulated node may appear */
    uint64_t tombstone_ttl_ms;          /* the cores' tombstone lifetime; 0: never */
    uint32_t clock_skew_ms;             /* each node's wall clock is off by up to this, either way */
};

struct sim_stats {
    uint64_t sent, sent_bytes;          /* overlay messages the cores sent */
    uint64_t delivered, lost, dropped;  /* dropped: no connection, reset, partition */
    uint64_t dials, dials_failed, dup_dials;
    uint64_t events;
};

struct sim_node;
struct sim_event;

struct sim {
    struct sim_params p;
    const struct overlay_ops *ops;
    uint64_t now;
    uint64_t rng;
    uint64_t next_seq, next_conn_id;
    struct sim_event **heap;
    size_t heap_n, heap_cap;
    struct sim_node *nodes;
    struct sim_link *links;             /* n * n, [from * n + to] */
    uint8_t *latency;                   /* n * n, ms */
    int *group;                         /* partition group per node */
    /* Observed by each node about each node, from the events: [obs * n + subj] */
    bool *up, *joined;
    uint64_t *down_at, *up_at, *left_at;
    uint64_t *dials_to;                 /* per target node */
    uint64_t *dials_from;               /* per dialling node */
    struct member *scratch;             /* unpacked members for delivery */
    size_t scratch_cap;
    struct sim_stats st;
    char violation[256];
};

struct sim_node {
    struct sim *sim;
    size_t idx;
    char name[32], address[48];
    struct overlay *core;               /* NULL while not running */
    uint64_t instance;                  /* bumped by every crash and restart */
    uint64_t incarnation;
    bool removed;                       /* left, or removed by sim_leave() */
    uint64_t tick_at;                   /* the pending tick event's time */
    uint64_t stall_until;
    size_t up_count, joined_count;      /* as observed through events */
    uint64_t downs, ups;                /* events this node emitted */
    int64_t skew_ms;                    /* this node's wall clock minus the true time */
    struct member *saved;               /* the table at its last crash */
    size_t n_saved;
};

struct sim *sim_new(const struct sim_params *p);
void sim_free(struct sim *s);
uint64_t sim_random(struct sim *s);

/* Creates node i's core (incarnation 1 on first start) and starts it. */
void sim_start(struct sim *s, size_t i, const char *const *seeds, size_t n_seeds);
/* Crash: the core is destroyed. silent: no reset reaches anyone. */
void sim_crash(struct sim *s, size_t i, bool silent);
/* A new core with the same name and address and a higher incarnation;
 * with_state: it starts from the table it had when it crashed. */
void sim_restart(struct sim *s, size_t i, const char *const *seeds, size_t n_seeds, bool with_state);
/* ops->leave(node) on node i's core. */
int sim_leave(struct sim *s, size_t i, const char *node);
/* ops->forget(node) on node i's core. */
int sim_forget(struct sim *s, size_t i, const char *node);
/* group[i] per node; NULL heals every partition. */
void sim_partition(struct sim *s, const int *group);
/* Node i processes nothing for ms (its events wait), as under SIGSTOP. */
void sim_stall(struct sim *s, size_t i, uint64_t ms);

/* Runs every event up to time t; the clock ends at t. */
void sim_run_until(struct sim *s, uint64_t t);
/* Runs until pred holds (checked every step ms) or the clock passes limit.
 * Returns whether pred held. */
bool sim_run_cond(struct sim *s, bool (*pred)(struct sim *, void *), void *ctx,
                  uint64_t limit, uint64_t step);

bool sim_running(const struct sim *s, size_t i);
const char *sim_address(const struct sim *s, size_t i);
bool sim_up(const struct sim *s, size_t obs, size_t subj);
bool sim_joined(const struct sim *s, size_t obs, size_t subj);
const struct member *sim_member(const struct sim *s, size_t obs, size_t subj);
uint64_t sim_digest(const struct sim *s, size_t i);

#endif
