#include "gossip_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.pb-c.h"

#define ARENA_BLOCK (64 * 1024)

int gossip_codec_init(struct gossip_codec *c)
{
    memset(c, 0, sizeof *c);
    return pbarena_init(&c->arena, ARENA_BLOCK);
}

void gossip_codec_free(struct gossip_codec *c)
{
    free(c->wire);
    free(c->states);
    free(c->state_ptrs);
    free(c->members);
    pbarena_free(&c->arena);
    memset(c, 0, sizeof *c);
}

static int grow(void **p, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < want)
        n *= 2;
    void *v = realloc(*p, n * size);
    if (!v)
        return -1;
    *p = v;
    *cap = n;
    return 0;
}

int gossip_pack(struct gossip_codec *c, const struct gossip_msg *m, const uint8_t **out, size_t *len_out)
{
    Partisan__Peer__Gossip g = PARTISAN__PEER__GOSSIP__INIT;
    g.kind = (Partisan__Peer__Gossip__Kind)m->type;
    g.digest = m->digest;
    g.seq = m->seq;
    if (m->n_members) {
        if (grow(&c->states, &c->states_cap, m->n_members, sizeof(Partisan__Peer__MemberState)) != 0 ||
            grow(&c->state_ptrs, &c->state_ptrs_cap, m->n_members, sizeof(Partisan__Peer__MemberState *)) != 0)
            return -1;
        Partisan__Peer__MemberState *states = c->states, **ptrs = c->state_ptrs;
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
    size_t len = partisan__peer__gossip__get_packed_size(&g);
    if (grow((void **)&c->wire, &c->wire_cap, len ? len : 1, 1) != 0)
        return -1;
    partisan__peer__gossip__pack(&g, c->wire);
    *out = c->wire;
    *len_out = len;
    return 0;
}

static int decode(struct gossip_codec *c, const Partisan__Peer__Gossip *g, struct gossip_msg *out, char *err,
                  size_t errlen)
{
    if ((unsigned)g->kind >= GOSSIP_TYPES) {
        snprintf(err, errlen, "gossip of unknown kind %d", (int)g->kind);
        return -1;
    }
    struct gossip_msg m = { .type = (enum gossip_type)g->kind, .digest = g->digest, .seq = g->seq };
    if (c->max_entries && g->n_members > c->max_entries) {
        snprintf(err, errlen, "gossip carries %zu members, more than %zu (%u x cluster.max_members)", g->n_members,
                 c->max_entries, GOSSIP_MEMBERS_SLACK);
        return -1;
    }
    if (g->n_members) {
        if (grow((void **)&c->members, &c->members_cap, g->n_members, sizeof *c->members) != 0) {
            snprintf(err, errlen, "out of memory reading gossip");
            return -1;
        }
        struct member *v = c->members;
        for (size_t i = 0; i < g->n_members; i++) {
            const Partisan__Peer__MemberState *s = g->members[i];
            /* Such text ends up in logs, the state file and every
             * application's member list. */
            if (!membership_token_valid(s->name, MEMBER_NAME_MAX) ||
                !membership_token_valid(s->address, MEMBER_ADDR_MAX)) {
                snprintf(err, errlen, "gossip carries a malformed member entry");
                return -1;
            }
            /* Only the strings' bytes: the entry's padding is not read. */
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
    return 0;
}

int gossip_unpack(struct gossip_codec *c, const uint8_t *msg, size_t len, struct gossip_msg *out, char *err,
                  size_t errlen)
{
    Partisan__Peer__Gossip *g = partisan__peer__gossip__unpack(&c->arena.allocator, len, msg);
    if (!g) {
        pbarena_reset(&c->arena);
        snprintf(err, errlen, "an overlay message that is not the full mesh's Gossip (%zu bytes)", len);
        return -1;
    }
    int rc = decode(c, g, out, err, errlen);
    pbarena_reset(&c->arena);
    return rc;
}
