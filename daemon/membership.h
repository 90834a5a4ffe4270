/* membership: the member table, a state-based CRDT.
 *
 * Per node: its address, an incarnation number and alive/left. Merging keeps,
 * per name, the entry that is greatest in the order
 *   (incarnation, left, address, expiry)   compared lexicographically,
 * so `left` wins a tie of incarnations and the address breaks the next tie;
 * between two tombstones the one expiring first wins (no expiry counts as
 * latest), so a `forget` overrides an ordinary leave and every node ends up
 * with the same expiry. Merge is therefore commutative, associative and
 * idempotent. Entries are never deleted by merge: a member that left stays
 * as a "left" tombstone so old gossip cannot bring it back at the same
 * incarnation, until membership_expire() drops it at its expiry (a wall-clock
 * time carried in the entry, so every node drops it at the same moment and
 * none brings it back to another; see overlay_full_mesh.c).
 *
 * Pure data structure: no I/O, no clock. */
#ifndef PARTISAN_MEMBERSHIP_H
#define PARTISAN_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMBER_NAME_MAX 255      /* bytes, without the NUL */
#define MEMBER_ADDR_MAX 299      /* "host:port" bytes, without the NUL */

struct member {
    char name[MEMBER_NAME_MAX + 1];
    char address[MEMBER_ADDR_MAX + 1];
    uint64_t incarnation;
    bool left;
    /* Left entries: Unix-epoch milliseconds at which every node drops the
     * tombstone; 0: never. Always 0 for alive entries. */
    uint64_t expires_ms;
};

/* Sorted by name; lookups are binary searches. */
struct membership {
    struct member *v;
    size_t n, cap;
};

enum membership_change {
    MEMBERSHIP_UNCHANGED = 0,
    MEMBERSHIP_ADDED,            /* a name not known before */
    MEMBERSHIP_UPDATED,          /* a known name with a greater entry */
};

void membership_init(struct membership *m);
void membership_free(struct membership *m);

/* Merges one entry. Returns what changed; when not UNCHANGED and `old` is
 * non-NULL, *old receives the previous entry (zeroed for ADDED). Returns -1
 * only if memory ran out (the table is then unchanged). */
int membership_merge_one(struct membership *m, const struct member *in, struct member *old);

/* Called by membership_merge() for each entry that changed. */
typedef void (*membership_change_fn)(void *ctx, enum membership_change what,
                                     const struct member *now, const struct member *old);

/* Merges n entries; returns how many changed, or -1 on allocation failure. */
int membership_merge(struct membership *m, const struct member *in, size_t n,
                     membership_change_fn fn, void *ctx);

const struct member *membership_find(const struct membership *m, const char *name);

/* Compares two entries in the merge order: <0, 0, >0. */
int membership_compare(const struct member *a, const struct member *b);

/* A 64-bit digest of the whole table; equal tables have equal digests, and
 * the digest does not depend on the order entries were merged in. */
uint64_t membership_digest(const struct membership *m);

/* Whether text from a peer may stand as a node name or address: 1 to
 * max_len bytes of printable ASCII without spaces. Such text ends up in
 * logs, the state file and every application's member list. */
bool membership_token_valid(const char *s, size_t max_len);

/* Removes the left entries whose expiry is at or before wall_ms, calling
 * fn (if not NULL) with each before it goes. Returns how many went. */
size_t membership_expire(struct membership *m, uint64_t wall_ms,
                         void (*fn)(void *ctx, const struct member *gone), void *ctx);

/* Whether entry e is a tombstone already expired at wall_ms: such an entry
 * arriving from a peer or a file must not be merged back. */
bool membership_expired(const struct member *e, uint64_t wall_ms);

/* Number of entries that are not left. */
size_t membership_alive_count(const struct membership *m);

#endif
