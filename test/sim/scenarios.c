/* scenarios: the simulator's test cases and main().
 *
 *   sim [--seed N] [--scenario NAME] [--nodes N] [--loss P] [--verbose]
 *
 * Every scenario runs from the one seed (the clock's, unless --seed), so a
 * failure is replayed exactly by the printed "reproduce:" line. */
#include "sim.h"

#include "gossip_codec.h"
#include "scenarios_hyparview.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct run {
    uint64_t seed;
    size_t join_nodes;
    double loss;
    bool verbose;
    struct sim *sim;
    char why[512];
};

static __attribute__((format(printf, 2, 3)))
int fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    return -1;
}

static struct sim *new_sim(struct run *r, size_t n)
{
    struct sim_params p = {
        .n = n,
        .seed = r->seed,
        .loss = r->loss,
        .gossip_interval_ms = 1000,     /* the daemon's defaults */
        .gossip_fanout = 3,
        .ping_interval_ms = 500,
        .fd_timeout_ms = 3000,
        .backoff_initial_ms = 100,
        .backoff_max_ms = 5000,
        .verbose = r->verbose,
    };
    r->sim = sim_new(&p);
    return r->sim;
}

static size_t pick(struct sim *s, size_t n)
{
    return (size_t)(sim_random(s) % n);
}

/* n distinct random nodes out of those for which ok[i]; ok may be NULL. */
static void pick_distinct(struct sim *s, size_t k, size_t *out, const bool *ok)
{
    size_t n = s->p.n;
    for (size_t got = 0; got < k;) {
        size_t c = pick(s, n);
        bool dup = ok && !ok[c];
        for (size_t i = 0; i < got; i++)
            dup = dup || out[i] == c;
        if (!dup)
            out[got++] = c;
    }
}

/* A node that counts as a member everyone should see: running, not left. */
static bool expected(const struct sim *s, size_t i)
{
    return sim_running(s, i) && !s->ops->has_left(s->nodes[i].core);
}

/* Members everyone should have alive in its table: crashed nodes stay
 * members until someone removes them. */
static size_t n_members(const struct sim *s)
{
    size_t c = 0;
    for (size_t i = 0; i < s->p.n; i++)
        c += s->nodes[i].instance > 0 && !s->nodes[i].removed;
    return c;
}

/* Every expected node has every other one alive in its table and up. */
static bool converged(struct sim *s, void *ctx)
{
    (void)ctx;
    size_t e = n_members(s);
    for (size_t i = 0; i < s->p.n; i++) {
        if (!expected(s, i))
            continue;
        if (membership_alive_count(s->ops->members(s->nodes[i].core)) != e)
            return false;
        for (size_t j = 0; j < s->p.n; j++) {
            if (j == i || !expected(s, j))
                continue;
            const struct member *m = sim_member(s, i, j);
            if (!sim_up(s, i, j) || !m || m->left || m->incarnation != s->nodes[j].incarnation)
                return false;
        }
    }
    return true;
}

static bool digests_equal(const struct sim *s)
{
    uint64_t d = 0;
    bool first = true;
    for (size_t i = 0; i < s->p.n; i++) {
        if (!expected(s, i))
            continue;
        if (first)
            d = sim_digest(s, i);
        else if (sim_digest(s, i) != d)
            return false;
        first = false;
    }
    return true;
}

static bool converged_same(struct sim *s, void *ctx)
{
    return converged(s, ctx) && digests_equal(s);
}

/* Why converged() does not hold, for the failure message. */
static void explain(struct run *r, const char *when)
{
    struct sim *s = r->sim;
    size_t e = n_members(s);
    for (size_t i = 0; i < s->p.n; i++) {
        if (!expected(s, i))
            continue;
        size_t alive = membership_alive_count(s->ops->members(s->nodes[i].core));
        if (alive != e) {
            fail(r, "%s: n%zu has %zu alive members, expected %zu", when, i, alive, e);
            return;
        }
        for (size_t j = 0; j < s->p.n; j++) {
            if (j == i || !expected(s, j))
                continue;
            const struct member *m = sim_member(s, i, j);
            if (!sim_up(s, i, j) || !m || m->left || m->incarnation != s->nodes[j].incarnation) {
                fail(r, "%s: n%zu sees n%zu %s (incarnation %" PRIu64 ", expected %" PRIu64 ")", when,
                     i, j, !m ? "unknown" : m->left ? "left" : "down", m ? m->incarnation : 0,
                     s->nodes[j].incarnation);
                return;
            }
        }
    }
    fail(r, "%s: digests differ", when);
}

/* Node 0 first, then each node every stagger ms through a random node
 * already started; runs until all see all. */
static int boot_cluster(struct run *r, size_t n, uint64_t stagger, uint64_t limit)
{
    struct sim *s = r->sim;
    sim_start(s, 0, NULL, 0);
    for (size_t i = 1; i < n; i++) {
        sim_run_until(s, s->now + stagger);
        const char *seed = sim_address(s, pick(s, i));
        sim_start(s, i, &seed, 1);
    }
    if (!sim_run_cond(s, converged_same, NULL, s->now + limit, 50)) {
        explain(r, "boot");
        return -1;
    }
    return 0;
}

struct watch {
    const size_t *subj;
    size_t n_subj;
    bool want_up;
};

/* Every expected node other than the subjects sees every subject as wanted. */
static bool all_see(struct sim *s, void *ctx)
{
    const struct watch *w = ctx;
    for (size_t i = 0; i < s->p.n; i++) {
        bool is_subj = false;
        for (size_t k = 0; k < w->n_subj; k++)
            is_subj = is_subj || w->subj[k] == i;
        if (!expected(s, i) || is_subj)
            continue;
        for (size_t k = 0; k < w->n_subj; k++)
            if (sim_up(s, i, w->subj[k]) != w->want_up)
                return false;
    }
    return true;
}

/* The latest time any observer reported the subjects down. */
static uint64_t last_down(const struct sim *s, const size_t *subj, size_t k)
{
    uint64_t t = 0;
    for (size_t i = 0; i < s->p.n; i++)
        for (size_t j = 0; j < k; j++)
            if (s->down_at[i * s->p.n + subj[j]] > t)
                t = s->down_at[i * s->p.n + subj[j]];
    return t;
}

/* No expected node reported another expected node down after `since`. */
static int no_false_downs(struct run *r, uint64_t since, const char *when)
{
    struct sim *s = r->sim;
    for (size_t i = 0; i < s->p.n; i++)
        for (size_t j = 0; j < s->p.n; j++)
            if (i != j && expected(s, i) && expected(s, j) && s->down_at[i * s->p.n + j] > since)
                return fail(r, "%s: n%zu saw healthy n%zu down at %" PRIu64 " ms", when, i, j,
                            s->down_at[i * s->p.n + j]);
    return 0;
}

static void print_traffic(const struct sim *s, const char *name)
{
    const struct sim_stats *st = &s->st;
    printf("  %s: overlay messages sent %" PRIu64 " (%" PRIu64 " bytes), dials %" PRIu64
           " (%" PRIu64 " failed)\n",
           name, st->sent, st->sent_bytes, st->dials, st->dials_failed);
}

/* ---- the scenarios ---- */

static int sc_join200(struct run *r)
{
    size_t n = r->join_nodes;
    struct sim *s = new_sim(r, n);
    sim_start(s, 0, NULL, 0);
    for (size_t i = 1; i < n; i++) {
        sim_run_until(s, s->now + 10);
        const char *seed = sim_address(s, pick(s, i));
        sim_start(s, i, &seed, 1);
    }
    uint64_t last_start = s->now;
    if (!sim_run_cond(s, converged_same, NULL, 60000, 20)) {
        explain(r, "by 60 s");
        return -1;
    }
    printf("  join200: %zu nodes started 10 ms apart (last at %" PRIu64 " ms); all see all up at %" PRIu64
           " ms (%" PRIu64 " ms after the last start)\n",
           n, last_start, s->now, s->now - last_start);
    print_traffic(s, "join200");
    return 0;
}

static int sc_crash10(struct run *r)
{
    size_t n = 40;
    struct sim *s = new_sim(r, n);
    if (boot_cluster(r, n, 10, 30000) < 0)
        return -1;
    uint64_t t0 = s->now;

    size_t crashed[4];
    pick_distinct(s, 4, crashed, NULL);
    for (size_t k = 0; k < 4; k++)
        sim_crash(s, crashed[k], false);
    struct watch w = { crashed, 4, false };
    if (!sim_run_cond(s, all_see, &w, t0 + 2000, 5))
        return fail(r, "crashed nodes (with reset) not down everywhere within 2000 ms");
    uint64_t reset_detect = last_down(s, crashed, 4) - t0;

    sim_run_until(s, s->now + 1000);
    uint64_t t1 = s->now;
    bool ok[64];
    for (size_t i = 0; i < n; i++)
        ok[i] = sim_running(s, i);
    size_t silent[2];
    pick_distinct(s, 2, silent, ok);
    for (size_t k = 0; k < 2; k++)
        sim_crash(s, silent[k], true);
    uint64_t bound = s->p.fd_timeout_ms + s->p.ping_interval_ms + 500;
    struct watch w2 = { silent, 2, false };
    if (!sim_run_cond(s, all_see, &w2, t1 + bound, 5))
        return fail(r, "silently crashed nodes not down everywhere within %" PRIu64 " ms", bound);
    uint64_t silent_detect = last_down(s, silent, 2) - t1;

    sim_run_until(s, s->now + 10000);
    if (!converged(s, NULL)) {
        explain(r, "survivors after crashes");
        return -1;
    }
    if (no_false_downs(r, t0, "after crashes") < 0)
        return -1;
    printf("  crash10: 4 of %zu crashed with reset: all survivors saw them down within %" PRIu64
           " ms; 2 crashed silently: down within %" PRIu64 " ms (fd_timeout %u)\n",
           n, reset_detect, silent_detect, s->p.fd_timeout_ms);
    return 0;
}

static int sc_partition_heal(struct run *r)
{
    size_t n = 30;
    struct sim *s = new_sim(r, n);
    if (boot_cluster(r, n, 10, 30000) < 0)
        return -1;
    int group[30];
    size_t order[30];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = pick(s, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        group[order[i]] = i < n / 2 ? 1 : 2;
    uint64_t t0 = s->now;
    sim_partition(s, group);

    uint64_t bound = s->p.fd_timeout_ms + s->p.ping_interval_ms + 1000;
    for (;;) {
        bool split = true;
        for (size_t i = 0; i < n && split; i++)
            for (size_t j = 0; j < n && split; j++)
                if (i != j && sim_up(s, i, j) != (group[i] == group[j]))
                    split = false;
        if (split)
            break;
        if (s->now >= t0 + bound)
            return fail(r, "halves did not see each other down within %" PRIu64 " ms", bound);
        sim_run_until(s, s->now + 10);
    }
    uint64_t split_at = s->now - t0;

    sim_run_until(s, t0 + 20000);
    for (size_t i = 0; i < n; i++)
        if (membership_alive_count(s->ops->members(s->nodes[i].core)) != n)
            return fail(r, "n%zu lost members during the partition", i);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (i != j && group[i] == group[j] && !sim_up(s, i, j))
                return fail(r, "n%zu sees n%zu down on its own side of the partition", i, j);

    uint64_t t1 = s->now;
    sim_partition(s, NULL);
    if (!sim_run_cond(s, converged_same, NULL, t1 + 15000, 10)) {
        explain(r, "15 s after healing");
        return -1;
    }
    printf("  partition_heal: %zu nodes split in halves: each side saw the other down within %" PRIu64
           " ms; healed after 20 s apart: all up, digests equal, %" PRIu64 " ms after the heal\n",
           n, split_at, s->now - t1);
    return 0;
}

static int rejoined(struct run *r, size_t who, uint64_t limit, const char *how, uint64_t *took)
{
    struct sim *s = r->sim;
    uint64_t t0 = s->now;
    if (!sim_run_cond(s, converged_same, NULL, t0 + limit, 10)) {
        char when[128];
        snprintf(when, sizeof when, "n%zu restarted %s, after %" PRIu64 " ms", who, how, limit);
        explain(r, when);
        return -1;
    }
    *took = s->now - t0;
    return 0;
}

static int sc_restart_rejoin(struct run *r)
{
    size_t n = 20;
    struct sim *s = new_sim(r, n);
    if (boot_cluster(r, n, 10, 30000) < 0)
        return -1;
    size_t who[3];
    pick_distinct(s, 3, who, NULL);
    uint64_t took[3];

    /* a: crashed, seen down, restarted without seeds or state: the others'
     * redials find it. */
    sim_crash(s, who[0], false);
    struct watch w = { who, 1, false };
    if (!sim_run_cond(s, all_see, &w, s->now + 2000, 5))
        return fail(r, "n%zu not seen down after its crash", who[0]);
    sim_run_until(s, s->now + 3000);
    sim_restart(s, who[0], NULL, 0, false);
    if (rejoined(r, who[0], 15000, "without seeds or state", &took[0]) < 0)
        return -1;

    /* b: crashed silently and back before anyone noticed, from its saved
     * table and without seeds. */
    sim_crash(s, who[1], true);
    sim_run_until(s, s->now + 200);
    sim_restart(s, who[1], NULL, 0, true);
    if (rejoined(r, who[1], 15000, "from its saved table", &took[1]) < 0)
        return -1;

    /* c: restarted through a seed only. */
    sim_crash(s, who[2], false);
    sim_run_until(s, s->now + 1000);
    size_t via = (who[2] + 1 + pick(s, n - 1)) % n;
    const char *seed = sim_address(s, via);
    sim_restart(s, who[2], &seed, 1, false);
    if (rejoined(r, who[2], 15000, "through a seed", &took[2]) < 0)
        return -1;
    printf("  restart_rejoin: everyone saw the new incarnation up: without seeds %" PRIu64
           " ms, from saved state %" PRIu64 " ms, through a seed %" PRIu64 " ms\n",
           took[0], took[1], took[2]);
    return 0;
}

struct left_watch {
    size_t subj;
};

static bool all_see_left(struct sim *s, void *ctx)
{
    const struct left_watch *w = ctx;
    for (size_t i = 0; i < s->p.n; i++) {
        if (!expected(s, i) || i == w->subj)
            continue;
        const struct member *m = sim_member(s, i, w->subj);
        if (!m || !m->left || sim_joined(s, i, w->subj) || sim_up(s, i, w->subj))
            return false;
    }
    return true;
}

static int sc_leave(struct run *r)
{
    size_t n = 20;
    struct sim *s = new_sim(r, n);
    if (boot_cluster(r, n, 10, 30000) < 0)
        return -1;
    size_t pair[2];
    pick_distinct(s, 2, pair, NULL);
    size_t l = pair[0], c = pair[1];

    uint64_t t0 = s->now;
    if (sim_leave(s, l, NULL) != 0)
        return fail(r, "leave(NULL) failed on n%zu", l);
    if (!s->ops->has_left(s->nodes[l].core))
        return fail(r, "n%zu: has_left() false after leave(NULL)", l);
    struct left_watch lw = { l };
    if (!sim_run_cond(s, all_see_left, &lw, t0 + 3000, 5))
        return fail(r, "not everyone saw n%zu leave within 3000 ms", l);
    uint64_t leave_seen = s->now - t0;
    uint64_t to_l = s->dials_to[l], from_l = s->dials_from[l];
    sim_run_until(s, s->now + 10000);
    if (s->dials_to[l] != to_l || s->dials_from[l] != from_l)
        return fail(r, "n%zu left but was still dialled (%" PRIu64 " times) or dialled (%" PRIu64 ")", l,
                    s->dials_to[l] - to_l, s->dials_from[l] - from_l);
    if (!converged(s, NULL)) {
        explain(r, "after the leave");
        return -1;
    }

    /* Removing a crashed member on its behalf. */
    sim_crash(s, c, false);
    struct watch w = { &c, 1, false };
    if (!sim_run_cond(s, all_see, &w, s->now + 2000, 5))
        return fail(r, "n%zu not seen down after its crash", c);
    size_t by;
    do
        by = pick(s, n);
    while (by == c || by == l);
    uint64_t t1 = s->now;
    if (sim_leave(s, by, s->nodes[c].name) != 0)
        return fail(r, "n%zu: leave(n%zu) of a crashed member failed", by, c);
    if (sim_leave(s, by, s->nodes[c].name) != -1 || sim_leave(s, by, "nosuch") != -1)
        return fail(r, "leave() of a non-member did not return -1");
    struct left_watch cw = { c };
    if (!sim_run_cond(s, all_see_left, &cw, t1 + 3000, 5))
        return fail(r, "not everyone saw n%zu removed within 3000 ms", c);
    uint64_t removal_seen = s->now - t1;
    sim_run_until(s, s->now + 6000);    /* dials already in flight end */
    uint64_t to_c = s->dials_to[c];
    sim_run_until(s, s->now + 10000);
    if (s->dials_to[c] != to_c)
        return fail(r, "n%zu was removed but still dialled %" PRIu64 " times", c, s->dials_to[c] - to_c);
    if (!converged(s, NULL)) {
        explain(r, "after the removal");
        return -1;
    }
    printf("  leave: all saw n%zu leave within %" PRIu64 " ms and dialled it no more; "
           "crashed n%zu removed by n%zu: seen everywhere within %" PRIu64 " ms\n",
           l, leave_seen, c, by, removal_seen);
    return 0;
}

static int sc_stall(struct run *r)
{
    size_t n = 10;
    struct sim *s = new_sim(r, n);
    if (boot_cluster(r, n, 10, 30000) < 0)
        return -1;
    size_t st = pick(s, n);
    uint64_t downs = s->nodes[st].downs, t0 = s->now;
    uint64_t stall = 2 * (uint64_t)s->p.fd_timeout_ms;
    sim_stall(s, st, stall);
    struct watch w = { &st, 1, false };
    uint64_t bound = s->p.fd_timeout_ms + s->p.ping_interval_ms + 1000;
    if (!sim_run_cond(s, all_see, &w, t0 + bound, 5))
        return fail(r, "stalled n%zu not seen down within %" PRIu64 " ms", st, bound);
    uint64_t down_seen = s->now - t0;
    if (!sim_run_cond(s, converged_same, NULL, t0 + stall + 15000, 10)) {
        explain(r, "after the stall");
        return -1;
    }
    uint64_t back = s->now - (t0 + stall);
    sim_run_until(s, s->now + 5000);
    if (s->nodes[st].downs != downs)
        return fail(r, "n%zu marked %" PRIu64 " members down after its own stall", st,
                    s->nodes[st].downs - downs);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (i != j && j != st && i != st && s->down_at[i * n + j] > t0)
                return fail(r, "n%zu saw n%zu down during n%zu's stall", i, j, st);
    printf("  stall: n%zu stopped for %" PRIu64 " ms: others saw it down after %" PRIu64
           " ms and up %" PRIu64 " ms after it resumed; it marked no one down\n",
           st, stall, down_seen, back);
    return 0;
}

/* Nodes whose seed is not up yet keep retrying it, and a node cut off from
 * every member it knew finds the cluster again through its seeds. */
static int sc_seed_retry(struct run *r)
{
    size_t n = 8;
    struct sim *s = new_sim(r, n);
    const char *seed = sim_address(s, 0);
    for (size_t i = 1; i < n; i++)
        sim_start(s, i, &seed, 1);
    sim_run_until(s, 3000);
    for (size_t i = 1; i < n; i++)
        if (s->nodes[i].up_count)
            return fail(r, "n%zu sees members before its seed runs", i);
    uint64_t t0 = s->now;
    sim_start(s, 0, NULL, 0);
    uint64_t limit = s->p.backoff_max_ms + s->p.backoff_max_ms / 4 + 1000;
    if (!sim_run_cond(s, converged_same, NULL, t0 + limit, 10)) {
        explain(r, "after the seed started");
        return -1;
    }
    uint64_t joined = s->now - t0;
    printf("  seed_retry: %zu nodes dialling a seed that was down for 3 s: all up %" PRIu64
           " ms after it started\n", n - 1, joined);
    return 0;
}

/* Forged tables from a peer: 200 members (within the slack, so merged up
 * to the bound) and 5000 (refused whole). The node keeps at most
 * max_members, and so does every node it gossips to; the real members are
 * still all there and up. */
static int sc_poisoned_table(struct run *r)
{
    size_t n = 5, max = 64;
    struct sim_params p = {
        .n = n, .seed = r->seed, .loss = 0, .gossip_interval_ms = 1000, .gossip_fanout = 3,
        .ping_interval_ms = 500, .fd_timeout_ms = 3000, .backoff_initial_ms = 100, .backoff_max_ms = 5000,
        .verbose = r->verbose, .max_members = max, .foreign_members = true,
    };
    struct sim *s = r->sim = sim_new(&p);
    if (boot_cluster(r, n, 10, 30000) < 0)
        return -1;
    enum { FAKES = 5000, FEW = 200 };
    struct member *fake = calloc(FAKES, sizeof *fake);
    struct gossip_codec codec;
    if (!fake || gossip_codec_init(&codec) != 0)
        return free(fake), fail(r, "out of memory");
    for (size_t i = 0; i < FAKES; i++) {
        snprintf(fake[i].name, sizeof fake[i].name, "fake%05zu", i);
        snprintf(fake[i].address, sizeof fake[i].address, "127.1.%zu.%zu:1", i / 250, i % 250);
        fake[i].incarnation = 1;
    }
    size_t sizes[2] = { FEW, FAKES }, held_after_few = 0;
    for (int k = 0; k < 2; k++) {
        struct gossip_msg m = { .type = GOSSIP_STATE, .members = fake, .n_members = sizes[k] };
        const uint8_t *wire;
        size_t len;
        if (gossip_pack(&codec, &m, &wire, &len) != 0)
            return free(fake), gossip_codec_free(&codec), fail(r, "out of memory");
        s->ops->receive(s->nodes[0].core, s->nodes[1].name, wire, len);
        if (k == 0)
            held_after_few = s->ops->members(s->nodes[0].core)->n;
        /* What the core's codec does with it, bounded as the core bounds it. */
        struct gossip_codec reader;
        struct gossip_msg out;
        char err[160] = "";
        if (gossip_codec_init(&reader) != 0)
            return free(fake), gossip_codec_free(&codec), fail(r, "out of memory");
        reader.max_entries = max * GOSSIP_MEMBERS_SLACK;
        int rc = gossip_unpack(&reader, wire, len, &out, err, sizeof err);
        gossip_codec_free(&reader);
        if ((rc == 0) != (k == 0))
            return free(fake), gossip_codec_free(&codec),
                   fail(r, "a forged table of %zu members was %s (%s)", sizes[k], rc ? "refused" : "read", err);
    }
    gossip_codec_free(&codec);
    free(fake);
    if (held_after_few != max)
        return fail(r, "n0 holds %zu members after 200 forged ones (max_members %zu): the bound was not reached",
                    held_after_few, max);
    sim_run_until(s, s->now + 10000);
    for (size_t i = 0; i < n; i++) {
        size_t held = s->ops->members(s->nodes[i].core)->n;
        if (held > max)
            return fail(r, "n%zu holds %zu members (max_members %zu)", i, held, max);
        for (size_t j = 0; j < n; j++)
            if (i != j && !sim_up(s, i, j))
                return fail(r, "n%zu no longer sees n%zu up after the forged table", i, j);
    }
    printf("  poisoned_table: 200 then 5000 forged members offered to n0; every node holds at most %zu\n", max);
    return 0;
}

/* ---- the runner ---- */

struct scenario {
    const char *name;
    int (*run)(struct run *r);
};

/* Nobody running holds an entry for node k. */
static bool none_hold(struct sim *s, void *ctx)
{
    size_t k = *(const size_t *)ctx;
    for (size_t i = 0; i < s->p.n; i++)
        if (i != k && sim_running(s, i) && sim_member(s, i, k))
            return false;
    return true;
}

/* A tombstone stays while it matters, then goes from every node at once
 * and never comes back, with the nodes' wall clocks apart and messages
 * lost: the expiry is carried in the entry, and an expired entry from a
 * node whose clock is behind is not merged back. Then `forget` purges a
 * crashed member cluster-wide within its grace. */
static int sc_tombstone_expiry(struct run *r)
{
    size_t n = 12;
    uint64_t ttl = 20000;
    struct sim_params p = {
        .n = n, .seed = r->seed, .loss = r->loss > 0 ? r->loss : 0.01,
        .gossip_interval_ms = 1000, .gossip_fanout = 3, .ping_interval_ms = 500,
        .fd_timeout_ms = 3000, .backoff_initial_ms = 100, .backoff_max_ms = 5000,
        .verbose = r->verbose, .tombstone_ttl_ms = ttl, .clock_skew_ms = 700,
    };
    struct sim *s = r->sim = sim_new(&p);
    if (boot_cluster(r, n, 10, 30000) < 0)
        return -1;
    size_t pair[2];
    pick_distinct(s, 2, pair, NULL);
    size_t c = pair[0], by = pair[1];
    sim_crash(s, c, false);
    sim_run_until(s, s->now + 4000);
    uint64_t t0 = s->now;
    if (sim_leave(s, by, s->nodes[c].name) != 0)
        return fail(r, "leave(n%zu) failed on n%zu", c, by);
    struct left_watch lw = { c };
    if (!sim_run_cond(s, all_see_left, &lw, t0 + 3000, 5))
        return fail(r, "not everyone saw n%zu removed within 3000 ms", c);
    sim_run_until(s, t0 + ttl - 2 * p.clock_skew_ms - 1500);
    for (size_t i = 0; i < n; i++)
        if (i != c && sim_running(s, i) && !sim_member(s, i, c))
            return fail(r, "n%zu dropped n%zu's tombstone before its expiry", i, c);
    if (!sim_run_cond(s, none_hold, &c, t0 + ttl + 2 * p.clock_skew_ms + 2500, 10)) {
        for (size_t i = 0; i < n; i++) {
            const struct member *m = i != c && sim_running(s, i) ? sim_member(s, i, c) : NULL;
            if (m)
                return fail(r, "n%zu still holds n%zu (%s, expires %" PRIu64 ", its clock %" PRIu64
                            ") %" PRIu64 " ms after the removal (ttl %" PRIu64 ")", i, c,
                            m->left ? "left" : "alive", m->expires_ms,
                            s->now + (uint64_t)s->nodes[i].skew_ms, s->now - t0, ttl);
        }
    }
    uint64_t gone_at = s->now - t0;
    for (uint64_t end = s->now + 3 * ttl; s->now < end;) {
        sim_run_until(s, s->now + 250);
        if (!none_hold(s, &c))
            return fail(r, "n%zu's expired tombstone came back %" PRIu64 " ms after the removal", c,
                        s->now - t0);
    }
    if (!converged_same(s, NULL)) {
        explain(r, "after the expiry");
        return -1;
    }

    /* forget: a crashed member that was never removed. */
    size_t d;
    do
        d = pick(s, n);
    while (d == c || d == by);
    sim_crash(s, d, false);
    sim_run_until(s, s->now + 4000);
    if (sim_forget(s, by, s->nodes[d].name) != 0)
        return fail(r, "forget(n%zu) failed on n%zu", d, by);
    if (sim_forget(s, by, s->nodes[by].name) != -1 || sim_forget(s, by, "nosuch") != -1)
        return fail(r, "forget() of self or of a non-member did not return -1");
    uint64_t t1 = s->now;
    struct overlay_config oc = { .gossip_interval_ms = p.gossip_interval_ms };
    uint64_t grace = overlay_forget_grace_ms(&oc);
    if (!sim_run_cond(s, none_hold, &d, t1 + grace + 2 * p.clock_skew_ms + 2500, 10))
        return fail(r, "n%zu still held %" PRIu64 " ms after forget (grace %" PRIu64 " ms)", d,
                    s->now - t1, grace);
    uint64_t forgot_at = s->now - t1;
    sim_run_until(s, s->now + 3 * grace);
    if (!none_hold(s, &d))
        return fail(r, "forgotten n%zu came back", d);
    if (!converged_same(s, NULL)) {
        explain(r, "after the forget");
        return -1;
    }
    printf("  tombstone_expiry: removed n%zu gone from every node %" PRIu64 " ms after removal (ttl %" PRIu64
           " ms, clocks up to %u ms apart) and not back in %" PRIu64 " ms; forgotten n%zu gone everywhere after %"
           PRIu64 " ms (grace %" PRIu64 " ms)\n",
           c, gone_at, ttl, 2 * p.clock_skew_ms, 3 * ttl, d, forgot_at, grace);
    return 0;
}

static const struct scenario scenarios[] = {
    { "join200", sc_join200 },
    { "crash10", sc_crash10 },
    { "partition_heal", sc_partition_heal },
    { "restart_rejoin", sc_restart_rejoin },
    { "leave", sc_leave },
    { "stall", sc_stall },
    { "seed_retry", sc_seed_retry },
    { "poisoned_table", sc_poisoned_table },
    { "tombstone_expiry", sc_tombstone_expiry },
};

static double real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static bool run_one(const struct scenario *sc, struct run *r)
{
    double t0 = real_ms();
    r->why[0] = '\0';
    r->sim = NULL;
    int rc = sc->run(r);
    struct sim *s = r->sim;
    if (rc == 0 && s && s->violation[0])
        rc = fail(r, "invariant: %s", s->violation);
    else if (rc == 0 && s && s->st.dup_dials)
        rc = fail(r, "the core dialled a node already connected or being dialled %" PRIu64 " times",
                  s->st.dup_dials);
    else if (rc != 0 && s && s->violation[0]) {
        size_t len = strlen(r->why);
        snprintf(r->why + len, sizeof r->why - len, " [first invariant broken: %s]", s->violation);
    }
    uint64_t virt = s ? s->now : 0;
    sim_free(s);
    r->sim = NULL;
    if (rc == 0) {
        printf("PASS %s (seed %" PRIu64 ", virtual %" PRIu64 " ms, real %.0f ms)\n", sc->name, r->seed,
               virt, real_ms() - t0);
    } else {
        printf("FAIL %s: %s\n", sc->name, r->why);
        printf("reproduce: build/san/test/sim --seed %" PRIu64 " --scenario %s", r->seed, sc->name);
        if (strcmp(sc->name, "join200") == 0 && r->join_nodes != 200)
            printf(" --nodes %zu", r->join_nodes);
        printf("\n");
    }
    fflush(stdout);
    return rc == 0;
}

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--seed N] [--scenario NAME] [--nodes N] [--loss P] [--verbose]\n"
                    "scenarios:", prog);
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
        fprintf(stderr, " %s", scenarios[i].name);
    fprintf(stderr, " %s\n", hyparview_scenario_names());
}

int main(int argc, char **argv)
{
    struct run r = { .join_nodes = 200 };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r.seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--seed") == 0 && more) {
            r.seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--scenario") == 0 && more) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--nodes") == 0 && more) {
            long v = strtol(argv[++i], NULL, 10);
            if (v < 2 || v > 5000) {
                fprintf(stderr, "--nodes: 2..5000\n");
                return 2;
            }
            r.join_nodes = (size_t)v;
        } else if (strcmp(argv[i], "--loss") == 0 && more) {
            r.loss = strtod(argv[++i], NULL);
        } else if (strcmp(argv[i], "--verbose") == 0) {
            r.verbose = true;
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    int passed = 0, failed = 0;
    bool found = false;
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
        if (only && strcmp(only, scenarios[i].name) != 0)
            continue;
        found = true;
        if (run_one(&scenarios[i], &r))
            passed++;
        else
            failed++;
    }
    /* The HyParView core's scenarios, from the same seed. */
    if (hyparview_scenarios_run(r.seed, only, r.verbose, &passed, &failed))
        found = true;
    if (!found) {
        usage(argv[0]);
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
