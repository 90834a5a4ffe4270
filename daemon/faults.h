/* faults: the fault-injection decision core, sans-IO. It holds the rules
 * and, per frame, says what to do with it; the link layer between channel
 * and transport does it (holds a frame until its time, sends it twice,
 * flips bits after the checksum was computed, or drops it). It never reads
 * the clock or draws its own random numbers: both are passed in.
 *
 * Rule grammar (the CLI's words after `partisanctl fault`, and the strings
 * a config's faults.rules may hold):
 *
 *   drop      [--peer NODE] [--channel CH] P
 *   delay     [--peer NODE] [--channel CH] DURATION [--jitter DURATION]
 *   duplicate [--peer NODE] [--channel CH] P
 *   reorder   [--peer NODE] [--channel CH] P [--by DURATION]
 *   corrupt   [--peer NODE] [--channel CH] P [--bits N]
 *   partition NODE[,NODE...] NODE[,NODE...] [--channel CH]
 *   list [--json]
 *   clear [ID]
 *
 * P is a probability: 0.2, 0.05 or 20%. DURATION has a unit: 50ms, 2s,
 * 1.5s. CH "control" is the control connection (gossip, pings, credit):
 * `drop --channel control 1` pauses pings to test the failure detector.
 * Without --peer / --channel a rule matches every peer / channel.
 *
 * What each does to a frame it matches (rules apply in the order they were
 * added; a drop ends the evaluation):
 *   drop       with probability P the frame is not sent;
 *   delay      it leaves at now + DURATION +- uniform jitter (at least now);
 *              with jitter, later frames can overtake it, as with netem;
 *   duplicate  with probability P it is sent twice;
 *   reorder    with probability P it is held back by --by (default
 *              FAULTS_REORDER_BY_MS) so the frames after it overtake it;
 *   corrupt    with probability P, N (default 1, at most FAULTS_MAX_FLIPS)
 *              distinct bits of the frame past its protected prefix are
 *              flipped after the checksum was computed: the receiver's
 *              CRC-32C must catch it (it detects every error of up to 3
 *              bits in any frame below 256 MiB, Hamming distance 4; more
 *              bits may, very rarely, pass);
 *   partition  frames between a node of one group and a node of the other
 *              are dropped, in both directions: on this node, outgoing to
 *              and incoming from the other group (every channel, control
 *              included, unless --channel).
 * Only partition rules judge incoming frames (FAULTS_IN); the others act on
 * outgoing ones. Every rule counts the frames it matched (seen) and acted
 * on (applied); totals per kind are kept for stats.
 *
 * Config: a `faults` section {"enabled": bool, "rules": [RULE, ...]} where
 * RULE is a CLI string as above or an object
 *   {"type": "drop", "peer": "n2", "channel": "orders", "probability": 0.2}
 *   {"type": "delay", "delay_ms": 50, "jitter_ms": 20}
 *   {"type": "reorder", "probability": 0.1, "by_ms": 20}
 *   {"type": "corrupt", "probability": 0.01, "bits": 1}
 *   {"type": "partition", "groups": [["n1", "n2"], ["n3", "n4"]]}
 * Rules while "enabled" is false (or absent) are an error naming both
 * keys, so a fault is never on by accident; faults_to_json writes the same
 * objects (with "id", "seen", "applied"). */
#ifndef PARTISAN_FAULTS_H
#define PARTISAN_FAULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAULTS_MAX_RULES        64u
#define FAULTS_MAX_GROUP        64u        /* nodes in one partition group */
#define FAULTS_MAX_FLIPS        8u
#define FAULTS_NAME_MAX         255u
#define FAULTS_MAX_DELAY_MS     600000u    /* any delay, jitter or --by */
#define FAULTS_REORDER_BY_MS    20u
#define FAULTS_WARN_INTERVAL_MS 60000u     /* faults_warn_due: the "a fault is active" warning */
#define FAULTS_CONTROL_CHANNEL  "control"
#define FAULTS_REPLY_MAX        (256u << 10)   /* faults_command output, list --json of every rule included */

enum faults_kind {
    FAULT_DROP, FAULT_DELAY, FAULT_DUPLICATE, FAULT_REORDER, FAULT_CORRUPT, FAULT_PARTITION,
    FAULT_KINDS
};
const char *faults_kind_name(enum faults_kind k);

struct faults_rule {
    uint32_t id;                    /* given by faults_add; 0 before */
    enum faults_kind kind;
    char peer[FAULTS_NAME_MAX + 1];     /* "" any */
    char channel[FAULTS_NAME_MAX + 1];  /* "" any */
    double probability;             /* drop, duplicate, reorder, corrupt */
    uint64_t delay_ms, jitter_ms;   /* delay */
    uint64_t by_ms;                 /* reorder */
    uint32_t bits;                  /* corrupt */
    char **group[2];                /* partition */
    size_t group_n[2];
    uint64_t seen, applied;
};

enum faults_dir { FAULTS_OUT, FAULTS_IN };

struct faults_action {
    bool drop;
    uint64_t deliver_at;            /* == now: at once */
    bool duplicate;                 /* send a second copy, also at deliver_at */
    size_t nflips;
    uint64_t flips[FAULTS_MAX_FLIPS];   /* bit offsets into the frame: byte off/8, mask 0x80 >> off%8 */
};

/* A random source: 64 uniform bits per call. */
typedef uint64_t (*faults_rand_fn)(void *ctx);

struct faults;

/* `self` is this node's name (partition rules need it). */
struct faults *faults_new(const char *self);
void faults_free(struct faults *f);

/* Parses one rule from words (argv[0] is the kind). 0, or -1 with a
 * one-line reason in err. The rule is the caller's until faults_add. */
int faults_parse(int argc, char **argv, struct faults_rule *out, char *err, size_t errlen);
/* Takes ownership of r's groups (r is cleared); returns the new id, or 0
 * with a reason (FAULTS_MAX_RULES reached). */
uint32_t faults_add(struct faults *f, struct faults_rule *r, char *err, size_t errlen);
/* Frees the groups of a rule that was parsed but not added. */
void faults_rule_clear(struct faults_rule *r);
bool faults_remove(struct faults *f, uint32_t id);
void faults_clear(struct faults *f);

/* The whole CLI: add a rule, `list [--json]` or `clear [ID]`. Writes the
 * reply (or the error) to out; 0 or -1. */
int faults_command(struct faults *f, int argc, char **argv, char *out, size_t outlen);
/* The same from one line of words separated by blanks. */
int faults_command_line(struct faults *f, const char *line, char *out, size_t outlen);

/* The decision for one frame of frame_len bytes between this node and peer
 * on channel. Bits are only ever chosen at or past `protect` bytes (keep
 * the length prefix intact so the stream stays framed). */
void faults_decide(struct faults *f, enum faults_dir dir, const char *peer, const char *channel,
                   size_t frame_len, size_t protect, uint64_t now, faults_rand_fn rnd, void *rctx,
                   struct faults_action *a);
/* Applies a's flips to the frame. */
void faults_apply_flips(const struct faults_action *a, void *frame, size_t frame_len);

size_t faults_count(const struct faults *f);
const struct faults_rule *faults_rule_at(const struct faults *f, size_t i);
/* Frames acted on, per kind, since start (stats). */
uint64_t faults_total(const struct faults *f, enum faults_kind k);
/* True at most once per FAULTS_WARN_INTERVAL_MS while any rule is active
 * (and at once for the first rule): the driver logs a warning then. */
bool faults_warn_due(struct faults *f, uint64_t now);

/* Text of `list`: one line per rule with its counters. */
void faults_list_text(const struct faults *f, char *out, size_t outlen);
/* [{"id":1,"type":"drop",...,"seen":N,"applied":N}, ...]; NULL on OOM. */
json_t *faults_to_json(const struct faults *f);
/* A config's `faults` section (NULL: absent). Adds its rules to f and sets
 * *enabled. -1 with "faults.rules[1].probability: ..." in err. */
int faults_config_load(struct faults *f, const json_t *section, bool *enabled, char *err, size_t errlen);

#endif
