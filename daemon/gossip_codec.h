/* gossip_codec: the full mesh's wire messages — struct gossip_msg to and
 * from the bytes of peer.proto's Gossip, which travel in PeerFrame.overlay.
 * Only the full-mesh core and the fuzz harnesses use it: the driver never
 * looks inside an overlay's messages.
 *
 * A codec keeps its buffers between calls (a STATE carries the whole member
 * table, so a busy node encodes and decodes thousands of entries a second):
 * after the first messages, encoding and decoding allocate nothing. */
#ifndef PARTISAN_GOSSIP_CODEC_H
#define PARTISAN_GOSSIP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "membership.h"
#include "pbarena.h"

enum gossip_type {
    GOSSIP_STATE = 0,           /* members[]: the sender's whole table; digest: the sender's digest */
    GOSSIP_DIGEST = 1,          /* digest only */
    GOSSIP_PING = 2,            /* seq */
    GOSSIP_PONG = 3,            /* seq */
    GOSSIP_STATE_REQUEST = 4,   /* asks for a STATE back */
};
#define GOSSIP_TYPES 5

struct gossip_msg {
    enum gossip_type type;
    uint64_t digest;
    uint64_t seq;
    const struct member *members;
    size_t n_members;
};

struct gossip_codec {
    uint8_t *wire;
    size_t wire_cap;
    void *states, *state_ptrs;      /* protobuf-c structs for packing */
    size_t states_cap, state_ptrs_cap;
    struct member *members;         /* what the last unpack decoded */
    size_t members_cap;
    struct pbarena arena;
    /* A message carrying more entries than this is refused before they
     * are copied out (0: no bound); see GOSSIP_MEMBERS_SLACK. */
    size_t max_entries;
};

/* A STATE carries its sender's whole table, which its own
 * cluster.max_members bounds. A sender configured with a somewhat larger
 * bound is still heard (the merge keeps what fits); one sending more than
 * this many times our bound is refused whole, so that a forged table
 * cannot make this node allocate for millions of entries. */
#define GOSSIP_MEMBERS_SLACK 4

/* Returns 0, or -1 out of memory. */
int gossip_codec_init(struct gossip_codec *c);
void gossip_codec_free(struct gossip_codec *c);

/* Encodes m; *out (valid until the next call on c) and *len receive the
 * bytes (0 of them for an all-default message). Returns 0, or -1 out of
 * memory. */
int gossip_pack(struct gossip_codec *c, const struct gossip_msg *m, const uint8_t **out, size_t *len);

/* Reads one message into *out, whose members point into c (valid until the
 * next call on c). Returns 0, or -1 with the reason in err: not a Gossip,
 * an unknown kind, a malformed member entry, or out of memory. Nothing from
 * a rejected message reaches the caller. */
int gossip_unpack(struct gossip_codec *c, const uint8_t *msg, size_t len, struct gossip_msg *out, char *err,
                  size_t errlen);

#endif
