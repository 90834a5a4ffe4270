#include "gossip_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership.h"

int gossip_encode(const struct overlay_msg *m, int (*send)(void *ctx, const Partisan__Peer__Gossip *g), void *ctx)
{
    Partisan__Peer__Gossip g = PARTISAN__PEER__GOSSIP__INIT;
    g.kind = (Partisan__Peer__Gossip__Kind)m->type;
    g.digest = m->digest;
    g.seq = m->seq;
    Partisan__Peer__MemberState *states = NULL, **ptrs = NULL;
    if (m->n_members) {
        states = calloc(m->n_members, sizeof *states);
        ptrs = calloc(m->n_members, sizeof *ptrs);
        if (!states || !ptrs) {
            free(states);
            free(ptrs);
            return -1;
        }
        for (size_t i = 0; i < m->n_members; i++) {
            Partisan__Peer__MemberState init = PARTISAN__PEER__MEMBER_STATE__INIT;
            states[i] = init;
            states[i].name = (char *)m->members[i].name;
            states[i].address = (char *)m->members[i].address;
            states[i].incarnation = m->members[i].incarnation;
            states[i].left = m->members[i].left;
            states[i].expires_ms = m->members[i].left ? m->members[i].expires_ms : 0;
            ptrs[i] = &states[i];
        }
        g.n_members = m->n_members;
        g.members = ptrs;
    }
    int rc = send(ctx, &g);
    free(states);
    free(ptrs);
    return rc;
}

int gossip_decode(const Partisan__Peer__Gossip *g, struct overlay_msg *out, struct member **members, char *err,
                  size_t errlen)
{
    *members = NULL;
    if ((unsigned)g->kind > OVERLAY_MSG_STATE_REQUEST) {
        snprintf(err, errlen, "gossip of unknown kind %d", (int)g->kind);
        return -1;
    }
    struct overlay_msg m = { .type = (enum overlay_msg_type)g->kind, .digest = g->digest, .seq = g->seq };
    struct member *v = NULL;
    if (g->n_members) {
        v = calloc(g->n_members, sizeof *v);
        if (!v) {
            snprintf(err, errlen, "out of memory reading gossip");
            return -1;
        }
        for (size_t i = 0; i < g->n_members; i++) {
            const Partisan__Peer__MemberState *s = g->members[i];
            /* Such text ends up in logs, the state file and every
             * application's member list. */
            if (!membership_token_valid(s->name, MEMBER_NAME_MAX) ||
                !membership_token_valid(s->address, MEMBER_ADDR_MAX)) {
                snprintf(err, errlen, "gossip carries a malformed member entry");
                free(v);
                return -1;
            }
            memcpy(v[i].name, s->name, strlen(s->name) + 1);
            memcpy(v[i].address, s->address, strlen(s->address) + 1);
            v[i].incarnation = s->incarnation;
            v[i].left = s->left;
            v[i].expires_ms = s->left ? s->expires_ms : 0;
        }
        m.members = v;
        m.n_members = g->n_members;
    }
    *out = m;
    *members = v;
    return 0;
}
