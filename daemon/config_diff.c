#include "config_diff.h"

#include <stdbool.h>
#include <string.h>

static bool same_seeds(const struct config *a, const struct config *b)
{
    if (a->n_seeds != b->n_seeds)
        return false;
    for (size_t i = 0; i < a->n_seeds; i++)
        if (a->seeds[i].port != b->seeds[i].port || strcmp(a->seeds[i].host, b->seeds[i].host) != 0)
            return false;
    return true;
}

static bool same_groups(const struct config_groups *a, const struct config_groups *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->gid[i] != b->gid[i])
            return false;
    return true;
}

static bool same_ipc_access(const struct config *a, const struct config *b)
{
    if (!same_groups(&a->ipc_admin_groups, &b->ipc_admin_groups) ||
        !same_groups(&a->ipc_client_groups, &b->ipc_client_groups) || a->n_ipc_names != b->n_ipc_names)
        return false;
    for (size_t i = 0; i < a->n_ipc_names; i++)
        if (a->ipc_names[i].uid != b->ipc_names[i].uid || strcmp(a->ipc_names[i].name, b->ipc_names[i].name) != 0)
            return false;
    return true;
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_channels(const struct config *a, const struct config *b)
{
    if (a->n_channels != b->n_channels)
        return false;
    for (size_t i = 0; i < a->n_channels; i++)
        if (strcmp(a->channels[i].name, b->channels[i].name) != 0 ||
            a->channels[i].parallelism != b->channels[i].parallelism ||
            a->channels[i].monotonic != b->channels[i].monotonic ||
            a->channels[i].reliable != b->channels[i].reliable || a->channels[i].causal != b->channels[i].causal)
            return false;
    return true;
}

void config_restart_changes(const struct config *running, const struct config *fresh,
                            void (*changed)(void *ctx, const char *key), void *ctx)
{
    struct { const char *key; bool changed; } keys[] = {
        { "node.name", strcmp(fresh->node_name, running->node_name) != 0 },
        { "node.listen", strcmp(fresh->listen.host, running->listen.host) != 0 || fresh->listen.port != running->listen.port },
        { "node.state_dir", strcmp(fresh->state_dir, running->state_dir) != 0 },
        { "cluster.name", strcmp(fresh->cluster_name, running->cluster_name) != 0 },
        { "cluster.seeds", !same_seeds(fresh, running) },
        { "cluster.max_members", fresh->max_members != running->max_members },
        { "cluster.tombstone_ttl_ms", fresh->tombstone_ttl_ms != running->tombstone_ttl_ms },
        { "overlay", fresh->overlay != running->overlay || fresh->gossip_interval_ms != running->gossip_interval_ms ||
              fresh->gossip_fanout != running->gossip_fanout },
        { "overlay.hyparview", fresh->hv_active_max_size != running->hv_active_max_size ||
              fresh->hv_active_min_size != running->hv_active_min_size ||
              fresh->hv_passive_max_size != running->hv_passive_max_size ||
              fresh->hv_active_rwl != running->hv_active_rwl || fresh->hv_passive_rwl != running->hv_passive_rwl ||
              fresh->hv_shuffle_interval_ms != running->hv_shuffle_interval_ms ||
              fresh->hv_shuffle_k_active != running->hv_shuffle_k_active ||
              fresh->hv_shuffle_k_passive != running->hv_shuffle_k_passive ||
              fresh->hv_random_promotion_interval_ms != running->hv_random_promotion_interval_ms ||
              fresh->hv_announce_interval_ms != running->hv_announce_interval_ms },
        { "failure_detector", fresh->ping_interval_ms != running->ping_interval_ms || fresh->fd_timeout_ms != running->fd_timeout_ms },
        { "transport", fresh->connect_timeout_ms != running->connect_timeout_ms ||
              fresh->handshake_timeout_ms != running->handshake_timeout_ms ||
              fresh->idle_timeout_ms != running->idle_timeout_ms ||
              fresh->max_pending_connections != running->max_pending_connections ||
              fresh->max_pending_per_address != running->max_pending_per_address ||
              fresh->backoff_initial_ms != running->backoff_initial_ms || fresh->backoff_max_ms != running->backoff_max_ms ||
              fresh->peer_max_frame_bytes != running->peer_max_frame_bytes || fresh->peer_max_queue_bytes != running->peer_max_queue_bytes ||
              fresh->flow_window_bytes != running->flow_window_bytes },
        { "channels", !same_channels(fresh, running) },
        /* Rules change at run time through partisanctl fault; the file's are read at start. */
        { "faults", !same_text(fresh->faults_json, running->faults_json) },
        { "ipc.admin_groups, ipc.client_groups or ipc.names", !same_ipc_access(fresh, running) },
        { "tls", strcmp(fresh->tls_ca_file, running->tls_ca_file) != 0 ||
              strcmp(fresh->tls_cert_file, running->tls_cert_file) != 0 ||
              strcmp(fresh->tls_key_file, running->tls_key_file) != 0 },
        { "ipc", strcmp(fresh->ipc_socket, running->ipc_socket) != 0 || fresh->ipc_mode != running->ipc_mode ||
              fresh->ipc_max_frame_bytes != running->ipc_max_frame_bytes || fresh->ipc_max_queue_bytes != running->ipc_max_queue_bytes },
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].changed)
            changed(ctx, keys[i].key);
}
