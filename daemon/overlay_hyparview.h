/* overlay_hyparview: the HyParView overlay (Leitão, Pereira, Rodrigues,
 * DSN 2007) with Plumtree broadcast (plumtree.h) and cluster-wide
 * membership from announcements. The contract is overlay.h; this header adds
 * the parameters and what tests and benchmarks may look at.
 * How it works, and how it meets the driver's connection contract: the
 * comment at the top of overlay_hyparview.c. */
#ifndef PARTISAN_OVERLAY_HYPARVIEW_H
#define PARTISAN_OVERLAY_HYPARVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "overlay.h"

/* Config keys overlay.hyparview.<field>; doc/config.md documents each. */
struct hyparview_params {
    uint32_t active_max_size;               /* 5: neighbours (self not counted) */
    uint32_t active_min_size;               /* 2: below it, promotions use high priority and seeds are retried */
    uint32_t passive_max_size;              /* 30 */
    uint32_t active_rwl;                    /* 6: FORWARD_JOIN and SHUFFLE walk length */
    uint32_t passive_rwl;                   /* 6: the hop of a FORWARD_JOIN walk that adds the joiner to its passive view */
    uint32_t shuffle_interval_ms;           /* 10000 */
    uint32_t shuffle_k_active;              /* 3 */
    uint32_t shuffle_k_passive;             /* 4 */
    uint32_t random_promotion_interval_ms;  /* 5000 */
    /* Every node broadcasts its member entry this often; a member whose
     * announcement is older than 3 intervals is down. 0 (tests only):
     * never, so nothing is learned of other members. */
    uint32_t announce_interval_ms;          /* 10000 */
    /* Internal bounds (not config keys; 0: the default). */
    uint32_t broadcast_ids_max;             /* Plumtree id cache: 65536 */
    uint32_t broadcast_store_max;           /* payloads kept for GRAFT: 1024 */
};

#define HYPARVIEW_DOWN_INTERVALS 3          /* announcements missed before down */
#define HYPARVIEW_PAYLOAD_MAX (1u << 20)    /* ops->broadcast refuses larger payloads */

/* Fills p with Partisan's defaults (the values above). */
void hyparview_params_default(struct hyparview_params *p);

extern const struct overlay_ops overlay_hyparview_ops;

/* ---- for tests and benchmarks ---- */

/* The active (or passive) view's names, at most max of them; returns the
 * view's size. Pointers are valid until the next call into the core. */
size_t hyparview_active_view(const struct overlay *o, const char **out, size_t max);
size_t hyparview_passive_view(const struct overlay *o, const char **out, size_t max);
/* Whether node is an eager (Plumtree tree) neighbour. */
bool hyparview_is_eager(const struct overlay *o, const char *node);
/* Whether a handshake toward or from node is in progress. */
bool hyparview_pending(const struct overlay *o, const char *node);

/* One line of the core's state (views, connections, handshakes), for
 * failure messages. Returns the length it wanted. */
size_t hyparview_describe(const struct overlay *o, char *buf, size_t len);

struct hyparview_stats {
    uint64_t sent[16];                      /* messages sent, by HvType */
    uint64_t decode_errors;
    uint64_t gossip_received, duplicates;   /* broadcast payloads (Plumtree) */
    uint64_t delivered;                     /* new payloads, own included */
    uint64_t app_delivered;                 /* application broadcasts handed to broadcast_deliver */
    uint64_t last_round;                    /* hops of the last delivered broadcast */
    size_t members, records_bytes;          /* announcement table entries and memory */
};
void hyparview_get_stats(const struct overlay *o, struct hyparview_stats *out);

#endif
