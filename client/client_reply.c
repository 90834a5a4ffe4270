/* client_reply: see client_reply.h. */
#include "client_reply.h"

#include <stdlib.h>
#include <string.h>

char *reply_put_str(char **cursor, const char *s, size_t n)
{
    char *out = *cursor;
    memcpy(out, s, n);
    out[n] = '\0';
    *cursor += n + 1;
    return out;
}

struct partisan_status *reply_convert_status(const Partisan__Ipc__Status *s)
{
    const char *f[6] = { s->node, s->cluster, s->overlay, s->listen, s->socket, s->version };
    size_t n[6], total = 0;
    for (int i = 0; i < 6; i++)
        total += (n[i] = strlen(f[i])) + 1;
    struct partisan_status *st = malloc(sizeof *st + total);
    if (!st)
        return NULL;
    char *cur = (char *)(st + 1);
    st->node = reply_put_str(&cur, f[0], n[0]);
    st->cluster = reply_put_str(&cur, f[1], n[1]);
    st->overlay = reply_put_str(&cur, f[2], n[2]);
    st->listen = reply_put_str(&cur, f[3], n[3]);
    st->socket = reply_put_str(&cur, f[4], n[4]);
    st->version = reply_put_str(&cur, f[5], n[5]);
    st->uptime_s = s->uptime_s;
    st->members = s->members;
    st->members_up = s->members_up;
    st->left = s->left;
    st->undeliverable = s->undeliverable;
    st->peer_bad_frames = s->peer_bad_frames;
    st->peer_refused = s->peer_refused;
    st->peer_queue_full = s->peer_queue_full;
    st->peer_pending = s->peer_pending;
    st->peer_pending_refused = s->peer_pending_refused;
    st->peer_handshake_timeouts = s->peer_handshake_timeouts;
    st->peer_idle_closed = s->peer_idle_closed;
    st->peer_duplicate_names = s->peer_duplicate_names;
    return st;
}

/* One block: the array, then every string, so partisan_members_free() is
 * a single free(). */
struct partisan_member *reply_convert_members(const Partisan__Ipc__Members *ms, size_t *out_n)
{
    size_t n = ms->n_members, total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(ms->members[i]->name) + strlen(ms->members[i]->address) + 2;
    struct partisan_member *arr = malloc(n * sizeof *arr + total + 1);
    if (!arr)
        return NULL;
    char *cur = (char *)(arr + n);
    for (size_t i = 0; i < n; i++) {
        const Partisan__Ipc__Member *m = ms->members[i];
        arr[i].name = reply_put_str(&cur, m->name, strlen(m->name));
        arr[i].address = reply_put_str(&cur, m->address, strlen(m->address));
        arr[i].incarnation = m->incarnation;
        arr[i].left = m->membership == PARTISAN__IPC__MEMBERSHIP__LEFT;
        arr[i].up = m->reachability == PARTISAN__IPC__REACHABILITY__UP;
        arr[i].neighbor = m->neighbor;
    }
    *out_n = n;
    return arr;
}

/* One block as well: the struct, the array of rows, then every string, so
 * partisan_stats_free() is a single free(). */
struct partisan_stats *reply_convert_stats(const Partisan__Ipc__Stats *ps)
{
    size_t n = ps->n_channels, total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(ps->channels[i]->peer) + strlen(ps->channels[i]->channel) + 2;
    struct partisan_stats *st = malloc(sizeof *st + n * sizeof *st->channels + total);
    if (!st)
        return NULL;
    struct partisan_channel_stats *arr = (struct partisan_channel_stats *)(st + 1);
    char *cur = (char *)(arr + n);
    for (size_t i = 0; i < n; i++) {
        const Partisan__Ipc__ChannelStats *cs = ps->channels[i];
        arr[i] = (struct partisan_channel_stats){
            .peer = reply_put_str(&cur, cs->peer, strlen(cs->peer)),
            .channel = reply_put_str(&cur, cs->channel, strlen(cs->channel)),
            .connections = cs->connections,
            .msgs_sent = cs->msgs_sent,
            .bytes_sent = cs->bytes_sent,
            .msgs_received = cs->msgs_received,
            .bytes_received = cs->bytes_received,
            .queued_msgs = cs->queued_msgs,
            .queued_bytes = cs->queued_bytes,
            .superseded = cs->superseded,
            .paused = cs->paused,
            .requeued = cs->requeued,
            .lost = cs->lost,
            .reconnects = cs->reconnects,
        };
    }
    st->channels = n ? arr : NULL;
    st->n_channels = n;
    st->flow_waits = ps->flow_waits;
    st->spoofed = ps->spoofed;
    st->undeliverable = ps->undeliverable;
    st->relayed = ps->relayed;
    st->relay_dropped = ps->relay_dropped;
    st->reliable_sent = ps->reliable_sent;
    st->reliable_retransmitted = ps->reliable_retransmitted;
    st->reliable_delivered = ps->reliable_delivered;
    st->reliable_duplicates = ps->reliable_duplicates;
    st->reliable_failed = ps->reliable_failed;
    st->reliable_outstanding = ps->reliable_outstanding;
    st->causal_held = ps->causal_held;
    st->bad_checksum = ps->bad_checksum;
    st->fault_dropped = ps->fault_dropped;
    st->fault_delayed = ps->fault_delayed;
    st->fault_duplicated = ps->fault_duplicated;
    st->fault_reordered = ps->fault_reordered;
    st->fault_corrupted = ps->fault_corrupted;
    st->fault_partitioned = ps->fault_partitioned;
    st->faults_active = ps->faults_active;
    return st;
}
