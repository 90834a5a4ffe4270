/* config: the JSON config file -> struct config, validated, with defaults.
 *
 * Every key has a default, so "{}" is a valid config. Keys (dotted paths):
 *   node.name                 string, default: the host name
 *   node.listen               "host:port", default "127.0.0.1:10200"; port 0 = ephemeral
 *   node.advertise            "host:port", default: node.listen (with the bound port)
 *   node.state_dir            path, default "" (no persisted state)
 *   cluster.name              string, default "partisan"
 *   cluster.seeds             list of "host:port", default []
 *   cluster.max_members       default 1024, 2..1000000
 *   cluster.tombstone_ttl_ms  default 86400000 (24 h), 0 (never)..31536000000
 *   overlay.type              "full_mesh" or "hyparview" (others: "not yet supported")
 *   overlay.gossip_interval_ms    default 1000, 10..600000
 *   overlay.gossip_fanout         default 3, 1..64
 *   overlay.hyparview.*       HyParView's views, walks, shuffles and announcements (doc/config.md)
 *   failure_detector.ping_interval_ms  default 500, 10..60000
 *   failure_detector.timeout_ms        default 3000, 50..600000 (> ping_interval_ms)
 *   transport.connect_timeout_ms       default 2000, 10..60000
 *   transport.backoff_initial_ms       default 100, 1..60000
 *   transport.backoff_max_ms           default 5000, 1..600000 (>= initial)
 *   transport.max_frame_bytes          default 16 MiB, 1 KiB..1 GiB
 *   transport.max_queue_bytes          default 64 MiB, 64 KiB..16 GiB
 *   ipc.socket                path, default "/run/partisan/partisand.sock"
 *   ipc.mode                  octal string, default "0660"
 *   ipc.max_frame_bytes       default 16 MiB, 1 KiB..1 GiB
 *   ipc.max_queue_bytes       default 64 MiB, 64 KiB..16 GiB (>= max_frame_bytes)
 *   ipc.admin_groups          list of group names (at most 32), default []
 *   ipc.client_groups         list of group names (at most 32), default []: anyone who can open the socket
 *   ipc.names                 object {"registered name": "user name"} (at most 256), default {}
 *   log.level                 "debug" | "info" | "warn" | "error", default "info"
 *   tls.ca_file, tls.cert_file, tls.key_file   paths, default "" (plaintext); all or none
 *   transport.handshake_timeout_ms     default 5000, 100..60000
 *   transport.max_pending_connections  default 64, 1..4096
 *   transport.max_pending_per_address  default 8, 1..4096
 *   transport.idle_timeout_ms          default 600000, 1000..86400000
 *   transport.window_bytes    default 4 MiB, 64 KiB..1 GiB: flow-control window per
 *                             (this node, remote node, remote name)
 *   channels                  list of {"name", "parallelism" 1..64 (1), "monotonic" (false),
 *                             "reliable" (false), "causal" (false: implies reliable)};
 *                             "default" always exists (first); "control" is reserved;
 *                             a reliable channel cannot be monotonic
 *   faults                    {"enabled": false, "rules": [...]}: fault injection (daemon/faults.h);
 *                             rules without "enabled": true are an error
 */
#ifndef PARTISAN_CONFIG_H
#define PARTISAN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"

#define CONFIG_NAME_MAX 255      /* node and cluster names, bytes */
#define CONFIG_ADDR_MAX 300      /* "host:port" text, bytes */
#define CONFIG_PATH_MAX 1024

#define CONFIG_CHANNELS_MAX 32          /* channels in the config, "default" included */
#define CONFIG_CHANNEL_NAME_MAX 63      /* bytes; the node-name character set */
#define CONFIG_PARALLELISM_MAX 64       /* connections per channel per peer */
#define CONFIG_DEFAULT_CHANNEL "default"
#define CONFIG_CONTROL_CHANNEL "control" /* internal: gossip and pings; never an application's */

#define CONFIG_IPC_GROUPS_MAX 32        /* in ipc.admin_groups, and in ipc.client_groups */
#define CONFIG_IPC_NAMES_MAX 256        /* entries of ipc.names */
#define CONFIG_ACCOUNT_NAME_MAX 32      /* user and group names, bytes (useradd's limit) */

/* Group names resolved when the file is loaded: the event loop must never
 * wait on NSS (an LDAP outage would stall every peer link), and the names
 * are kept only to say in a refusal which groups would do. */
struct config_groups {
    size_t n;
    gid_t gid[CONFIG_IPC_GROUPS_MAX];
    char name[CONFIG_IPC_GROUPS_MAX][CONFIG_ACCOUNT_NAME_MAX + 1];
};

/* A registered name only one user (or root) may take. */
struct config_reserved_name {
    char name[CONFIG_NAME_MAX + 1];    /* as an application registers it: 1..255 bytes */
    uid_t uid;
    char user[CONFIG_ACCOUNT_NAME_MAX + 1];
};

struct config_channel {
    char name[CONFIG_CHANNEL_NAME_MAX + 1];
    uint32_t parallelism;              /* 1..CONFIG_PARALLELISM_MAX */
    int monotonic;                     /* a newer queued message replaces an older one with the same name and key */
    int reliable;                      /* acknowledged, retransmitted, exactly once in order (delivery.h) */
    int causal;                        /* causal order (causal.h); set implies reliable */
};

enum overlay_type { OVERLAY_FULL_MESH = 0, OVERLAY_HYPARVIEW = 1 };

struct config_addr {
    char host[CONFIG_ADDR_MAX];  /* name or numeric address, without brackets */
    uint16_t port;
};

struct config {
    char node_name[CONFIG_NAME_MAX + 1];
    struct config_addr listen;
    struct config_addr advertise;      /* port 0: the bound listen port */
    int advertise_set;                 /* node.advertise given explicitly */
    char state_dir[CONFIG_PATH_MAX];

    /* All three, or none (plaintext peer links). */
    char tls_ca_file[CONFIG_PATH_MAX];
    char tls_cert_file[CONFIG_PATH_MAX];
    char tls_key_file[CONFIG_PATH_MAX];

    char cluster_name[CONFIG_NAME_MAX + 1];
    struct config_addr *seeds;         /* owned; config_free() releases */
    size_t n_seeds;
    uint32_t max_members;              /* cluster.max_members: left ones included */
    uint64_t tombstone_ttl_ms;         /* cluster.tombstone_ttl_ms: 0 never */

    enum overlay_type overlay;
    uint32_t gossip_interval_ms;
    uint32_t gossip_fanout;
    /* overlay.hyparview.*, as struct hyparview_params (overlay_hyparview.h) names them. */
    uint32_t hv_active_max_size;
    uint32_t hv_active_min_size;
    uint32_t hv_passive_max_size;
    uint32_t hv_active_rwl;
    uint32_t hv_passive_rwl;
    uint32_t hv_shuffle_interval_ms;
    uint32_t hv_shuffle_k_active;
    uint32_t hv_shuffle_k_passive;
    uint32_t hv_random_promotion_interval_ms;
    uint32_t hv_announce_interval_ms;

    uint32_t ping_interval_ms;
    uint32_t fd_timeout_ms;

    uint32_t connect_timeout_ms;
    uint32_t handshake_timeout_ms;     /* an accepted connection's Hello must come within this */
    uint32_t max_pending_connections;  /* accepted, handshake not yet done */
    uint32_t max_pending_per_address;  /* the same, from one peer address */
    uint32_t idle_timeout_ms;          /* an accepted connection that carries nothing is closed */
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    uint64_t peer_max_frame_bytes;
    uint64_t peer_max_queue_bytes;
    uint64_t flow_window_bytes;        /* transport.window_bytes */

    /* channels[0] is "default", whether or not the file lists it. */
    struct config_channel channels[CONFIG_CHANNELS_MAX];
    size_t n_channels;

    char ipc_socket[CONFIG_PATH_MAX];
    unsigned ipc_mode;                 /* permission bits, e.g. 0660 */
    uint64_t ipc_max_frame_bytes;
    uint64_t ipc_max_queue_bytes;
    /* Besides these groups, root and the daemon's own user are admins. */
    struct config_groups ipc_admin_groups;
    /* n == 0: every process that can open the socket is a client. */
    struct config_groups ipc_client_groups;
    struct config_reserved_name ipc_names[CONFIG_IPC_NAMES_MAX];
    size_t n_ipc_names;

    enum log_level log_level;

    /* The "faults" section as given (compact JSON, owned; NULL: absent),
     * validated by faults_config_load; node.c loads it into its core. */
    char *faults_json;
};

/* Receives one error message at a time (already formatted, no newline). */
typedef void (*config_error_fn)(void *ctx, const char *msg);

/* Fills *cfg with every default. Never fails. */
void config_defaults(struct config *cfg);

/* Parses and validates `path`. On success returns 0 and fills *cfg (which the
 * caller later passes to config_free()). On failure returns the number of
 * errors found (> 0), having reported each through `err` as
 * "FILE:LINE:COL: message" for syntax errors or "FILE: KEY: message" for
 * unknown keys, wrong types and out-of-range values; *cfg is then left freed. */
int config_load(const char *path, struct config *cfg, config_error_fn err, void *ctx);

/* Same, from a string; `origin` names it in messages. */
int config_load_string(const char *text, const char *origin, struct config *cfg,
                       config_error_fn err, void *ctx);

void config_free(struct config *cfg);

/* A deep copy of src into dst (which config_free() later releases). 0, or -1 out of memory. */
int config_copy(struct config *dst, const struct config *src);

/* Parses "host:port" or "[v6]:port" into *out. Returns 0, or -1 if malformed
 * (port missing, not a number, above 65535, empty host). */
int config_parse_addr(const char *text, struct config_addr *out);

/* Formats an address as "host:port" ("[host]:port" when host has a ':'). */
void config_format_addr(const struct config_addr *a, char *buf, size_t len);

const char *config_overlay_name(enum overlay_type t);

/* The entry of ipc.names reserving `name`, or NULL if anyone may take it. */
const struct config_reserved_name *config_reserved_name(const struct config *cfg, const char *name);

/* The index of the channel called name ("" means "default"), or -1. */
int config_channel_index(const struct config *cfg, const char *name);

#endif
