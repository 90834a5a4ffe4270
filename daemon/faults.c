/* faults: rules and per-frame decisions of fault injection (see faults.h). */
#include "faults.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct faults {
    char self[FAULTS_NAME_MAX + 1];
    struct faults_rule rules[FAULTS_MAX_RULES];
    size_t n;
    uint32_t next_id;
    uint64_t totals[FAULT_KINDS];
    bool warned;                   /* a warning went out since the rules became non-empty */
    uint64_t last_warn;
};

static const char *const kind_names[FAULT_KINDS] = {
    [FAULT_DROP] = "drop", [FAULT_DELAY] = "delay", [FAULT_DUPLICATE] = "duplicate",
    [FAULT_REORDER] = "reorder", [FAULT_CORRUPT] = "corrupt", [FAULT_PARTITION] = "partition",
};

const char *faults_kind_name(enum faults_kind k)
{
    return (unsigned)k < FAULT_KINDS ? kind_names[k] : "?";
}

static void say(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *out, size_t len, const char *fmt, ...)
{
    if (!out || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
}

/* ---- values ---- */

static int parse_probability(const char *s, double *out, char *err, size_t errlen)
{
    char *end;
    double v = strtod(s, &end);
    bool pct = end != s && *end == '%';
    if (pct)
        end++;
    if (end == s || *end || isnan(v)) {
        say(err, errlen, "\"%s\" is not a probability (e.g. 0.2 or 20%%)", s);
        return -1;
    }
    if (pct)
        v /= 100;
    if (v < 0 || v > 1) {
        say(err, errlen, "probability %s is out of range (0..1, or 0%%..100%%)", s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_duration(const char *s, uint64_t *ms, char *err, size_t errlen)
{
    char *end;
    double v = strtod(s, &end);
    double scale;
    if (end == s || isnan(v) || v < 0) {
        say(err, errlen, "\"%s\" is not a duration (e.g. 50ms or 2s)", s);
        return -1;
    }
    if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "s") == 0)
        scale = 1000;
    else {
        say(err, errlen, "\"%s\": a duration needs a unit, ms or s (e.g. 50ms or 2s)", s);
        return -1;
    }
    v *= scale;
    if (v > FAULTS_MAX_DELAY_MS) {
        say(err, errlen, "duration %s is longer than the limit of %us", s, FAULTS_MAX_DELAY_MS / 1000);
        return -1;
    }
    *ms = (uint64_t)(v + 0.5);
    return 0;
}

static int check_name(const char *what, const char *s, char *err, size_t errlen)
{
    size_t n = strlen(s);
    if (n == 0) {
        say(err, errlen, "%s must not be empty", what);
        return -1;
    }
    if (n > FAULTS_NAME_MAX) {
        say(err, errlen, "%s is %zu bytes long (max %u)", what, n, FAULTS_NAME_MAX);
        return -1;
    }
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || *p == ',') {
            say(err, errlen, "%s \"%s\" contains a blank or a comma", what, s);
            return -1;
        }
    return 0;
}

void faults_rule_clear(struct faults_rule *r)
{
    for (int g = 0; g < 2; g++) {
        for (size_t i = 0; i < r->group_n[g]; i++)
            free(r->group[g][i]);
        free(r->group[g]);
        r->group[g] = NULL;
        r->group_n[g] = 0;
    }
}

static int parse_group(struct faults_rule *r, int g, const char *list, char *err, size_t errlen)
{
    size_t cap = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            say(err, errlen, "partition group \"%s\" has an empty node name", list);
            return -1;
        }
        if (len > FAULTS_NAME_MAX) {
            say(err, errlen, "a node name in \"%.40s...\" is longer than %u bytes", list, FAULTS_NAME_MAX);
            return -1;
        }
        if (r->group_n[g] == FAULTS_MAX_GROUP) {
            say(err, errlen, "a partition group has more than %u nodes", FAULTS_MAX_GROUP);
            return -1;
        }
        if (r->group_n[g] == cap) {
            size_t nc = cap ? cap * 2 : 4;
            char **ng = realloc(r->group[g], nc * sizeof *ng);
            if (!ng) {
                say(err, errlen, "out of memory");
                return -1;
            }
            r->group[g] = ng;
            cap = nc;
        }
        char *name = strndup(p, len);
        if (!name) {
            say(err, errlen, "out of memory");
            return -1;
        }
        r->group[g][r->group_n[g]++] = name;
        if (check_name("a node name", name, err, errlen) != 0)
            return -1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

static bool in_group(const struct faults_rule *r, int g, const char *node)
{
    for (size_t i = 0; i < r->group_n[g]; i++)
        if (strcmp(r->group[g][i], node) == 0)
            return true;
    return false;
}

static int check_groups(const struct faults_rule *r, char *err, size_t errlen)
{
    for (size_t i = 0; i < r->group_n[0]; i++) {
        if (in_group(r, 1, r->group[0][i])) {
            say(err, errlen, "node %s is in both partition groups", r->group[0][i]);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->group[0][i], r->group[0][j]) == 0) {
                say(err, errlen, "node %s is listed twice", r->group[0][i]);
                return -1;
            }
    }
    for (size_t i = 0; i < r->group_n[1]; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->group[1][i], r->group[1][j]) == 0) {
                say(err, errlen, "node %s is listed twice", r->group[1][i]);
                return -1;
            }
    return 0;
}

static int kind_of(const char *s)
{
    for (int k = 0; k < FAULT_KINDS; k++)
        if (strcmp(s, kind_names[k]) == 0)
            return k;
    return -1;
}

static const char *usage_of(enum faults_kind k)
{
    switch (k) {
    case FAULT_DROP: return "drop [--peer NODE] [--channel CH] P";
    case FAULT_DELAY: return "delay [--peer NODE] [--channel CH] DURATION [--jitter DURATION]";
    case FAULT_DUPLICATE: return "duplicate [--peer NODE] [--channel CH] P";
    case FAULT_REORDER: return "reorder [--peer NODE] [--channel CH] P [--by DURATION]";
    case FAULT_CORRUPT: return "corrupt [--peer NODE] [--channel CH] P [--bits N]";
    case FAULT_PARTITION: return "partition NODE[,NODE...] NODE[,NODE...] [--channel CH]";
    default: return "";
    }
}

static void rule_init(struct faults_rule *r, enum faults_kind k)
{
    memset(r, 0, sizeof *r);
    r->kind = k;
    r->by_ms = FAULTS_REORDER_BY_MS;
    r->bits = 1;
}

int faults_parse(int argc, char **argv, struct faults_rule *r, char *err, size_t errlen)
{
    if (argc < 1) {
        say(err, errlen, "no fault given (one of drop, delay, duplicate, reorder, corrupt, partition, list, clear)");
        return -1;
    }
    int k = kind_of(argv[0]);
    if (k < 0) {
        say(err, errlen, "unknown fault \"%s\" (one of drop, delay, duplicate, reorder, corrupt, partition, list, clear)",
            argv[0]);
        return -1;
    }
    rule_init(r, (enum faults_kind)k);
    const char *pos[3];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (npos == 3) {
                say(err, errlen, "unexpected \"%s\" (usage: %s)", a, usage_of(r->kind));
                goto bad;
            }
            pos[npos++] = a;
            continue;
        }
        const char *opt = a + 2;
        bool known = strcmp(opt, "peer") == 0 || strcmp(opt, "channel") == 0 ||
                     (strcmp(opt, "jitter") == 0 && k == FAULT_DELAY) ||
                     (strcmp(opt, "by") == 0 && k == FAULT_REORDER) ||
                     (strcmp(opt, "bits") == 0 && k == FAULT_CORRUPT);
        if (strcmp(opt, "peer") == 0 && k == FAULT_PARTITION) {
            say(err, errlen, "partition takes no --peer: it names both groups (usage: %s)", usage_of(r->kind));
            goto bad;
        }
        if (!known) {
            say(err, errlen, "unknown option %s for %s (usage: %s)", a, argv[0], usage_of(r->kind));
            goto bad;
        }
        if (i + 1 >= argc) {
            say(err, errlen, "%s needs a value (usage: %s)", a, usage_of(r->kind));
            goto bad;
        }
        const char *v = argv[++i];
        if (strcmp(opt, "peer") == 0) {
            if (check_name("--peer", v, err, errlen))
                goto bad;
            snprintf(r->peer, sizeof r->peer, "%s", v);
        } else if (strcmp(opt, "channel") == 0) {
            if (check_name("--channel", v, err, errlen))
                goto bad;
            snprintf(r->channel, sizeof r->channel, "%s", v);
        } else if (strcmp(opt, "jitter") == 0) {
            if (parse_duration(v, &r->jitter_ms, err, errlen))
                goto bad;
        } else if (strcmp(opt, "by") == 0) {
            if (parse_duration(v, &r->by_ms, err, errlen))
                goto bad;
            if (r->by_ms == 0) {
                say(err, errlen, "--by 0 would reorder nothing");
                goto bad;
            }
        } else {
            char *end;
            unsigned long b = strtoul(v, &end, 10);
            if (end == v || *end || b < 1 || b > FAULTS_MAX_FLIPS) {
                say(err, errlen, "--bits \"%s\" is not a number of bits (1..%u)", v, FAULTS_MAX_FLIPS);
                goto bad;
            }
            r->bits = (uint32_t)b;
        }
    }
    int want = k == FAULT_PARTITION ? 2 : 1;
    if (npos < want) {
        const char *what = k == FAULT_DELAY ? "a duration" : k == FAULT_PARTITION ? "two groups of nodes"
                                                                                : "a probability";
        say(err, errlen, "%s needs %s (usage: %s)", argv[0], what, usage_of(r->kind));
        goto bad;
    }
    if (npos > want) {
        say(err, errlen, "unexpected \"%s\" (usage: %s)", pos[want], usage_of(r->kind));
        goto bad;
    }
    switch (r->kind) {
    case FAULT_DELAY:
        if (parse_duration(pos[0], &r->delay_ms, err, errlen))
            goto bad;
        break;
    case FAULT_PARTITION:
        if (parse_group(r, 0, pos[0], err, errlen) || parse_group(r, 1, pos[1], err, errlen) ||
            check_groups(r, err, errlen))
            goto bad;
        break;
    default:
        if (parse_probability(pos[0], &r->probability, err, errlen))
            goto bad;
        break;
    }
    return 0;
bad:
    faults_rule_clear(r);
    return -1;
}

/* ---- the table ---- */

struct faults *faults_new(const char *self)
{
    struct faults *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(f->self, sizeof f->self, "%s", self ? self : "");
    f->next_id = 1;
    return f;
}

void faults_clear(struct faults *f)
{
    for (size_t i = 0; i < f->n; i++)
        faults_rule_clear(&f->rules[i]);
    f->n = 0;
}

void faults_free(struct faults *f)
{
    if (!f)
        return;
    faults_clear(f);
    free(f);
}

uint32_t faults_add(struct faults *f, struct faults_rule *r, char *err, size_t errlen)
{
    if (f->n == FAULTS_MAX_RULES) {
        say(err, errlen, "already %u fault rules (the limit); clear some first", FAULTS_MAX_RULES);
        return 0;
    }
    struct faults_rule *d = &f->rules[f->n++];
    *d = *r;
    d->id = f->next_id++;
    d->seen = d->applied = 0;
    memset(r->group, 0, sizeof r->group);
    memset(r->group_n, 0, sizeof r->group_n);
    if (f->n == 1)
        f->warned = false;   /* the first rule is loud at once */
    return d->id;
}

bool faults_remove(struct faults *f, uint32_t id)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->rules[i].id == id) {
            faults_rule_clear(&f->rules[i]);
            memmove(&f->rules[i], &f->rules[i + 1], (f->n - i - 1) * sizeof f->rules[0]);
            f->n--;
            return true;
        }
    return false;
}

size_t faults_count(const struct faults *f) { return f->n; }
const struct faults_rule *faults_rule_at(const struct faults *f, size_t i) { return i < f->n ? &f->rules[i] : NULL; }
uint64_t faults_total(const struct faults *f, enum faults_kind k) { return (unsigned)k < FAULT_KINDS ? f->totals[k] : 0; }

bool faults_warn_due(struct faults *f, uint64_t now)
{
    if (f->n == 0)
        return false;
    if (f->warned && now - f->last_warn < FAULTS_WARN_INTERVAL_MS)
        return false;
    f->warned = true;
    f->last_warn = now;
    return true;
}

/* ---- decisions ---- */

static double uniform(faults_rand_fn rnd, void *ctx)
{
    return (double)(rnd(ctx) >> 11) * (1.0 / 9007199254740992.0);
}

static bool matches(const struct faults_rule *r, const char *peer, const char *channel)
{
    return (!r->peer[0] || strcmp(r->peer, peer) == 0) && (!r->channel[0] || strcmp(r->channel, channel) == 0);
}

void faults_decide(struct faults *f, enum faults_dir dir, const char *peer, const char *channel,
                   size_t frame_len, size_t protect, uint64_t now, faults_rand_fn rnd, void *rctx,
                   struct faults_action *a)
{
    memset(a, 0, sizeof *a);
    a->deliver_at = now;
    for (size_t i = 0; i < f->n; i++) {
        struct faults_rule *r = &f->rules[i];
        if (!matches(r, peer, channel))
            continue;
        if (r->kind == FAULT_PARTITION) {
            bool cut = (in_group(r, 0, f->self) && in_group(r, 1, peer)) ||
                       (in_group(r, 1, f->self) && in_group(r, 0, peer));
            if (!cut)
                continue;
            r->seen++;
            r->applied++;
            f->totals[FAULT_PARTITION]++;
            a->drop = true;
            return;
        }
        if (dir != FAULTS_OUT)
            continue;
        r->seen++;
        switch (r->kind) {
        case FAULT_DROP:
            if (uniform(rnd, rctx) < r->probability) {
                r->applied++;
                f->totals[FAULT_DROP]++;
                a->drop = true;
                return;
            }
            break;
        case FAULT_DELAY: {
            int64_t d = (int64_t)r->delay_ms;
            if (r->jitter_ms)
                d += (int64_t)(uniform(rnd, rctx) * (double)(2 * r->jitter_ms + 1)) - (int64_t)r->jitter_ms;
            uint64_t at = d > 0 ? now + (uint64_t)d : now;
            if (at > a->deliver_at)
                a->deliver_at = at;
            r->applied++;
            f->totals[FAULT_DELAY]++;
            break;
        }
        case FAULT_DUPLICATE:
            if (uniform(rnd, rctx) < r->probability) {
                r->applied++;
                f->totals[FAULT_DUPLICATE]++;
                a->duplicate = true;
            }
            break;
        case FAULT_REORDER:
            if (uniform(rnd, rctx) < r->probability) {
                r->applied++;
                f->totals[FAULT_REORDER]++;
                if (now + r->by_ms > a->deliver_at)
                    a->deliver_at = now + r->by_ms;
            }
            break;
        case FAULT_CORRUPT: {
            if (frame_len <= protect || !(uniform(rnd, rctx) < r->probability))
                break;
            uint64_t span = (uint64_t)(frame_len - protect) * 8;
            uint32_t want = r->bits;
            if (want > span)
                want = (uint32_t)span;
            size_t before = a->nflips;
            while (a->nflips < FAULTS_MAX_FLIPS && a->nflips - before < want) {
                uint64_t bit = (uint64_t)protect * 8 + rnd(rctx) % span;
                bool dup = false;
                for (size_t j = 0; j < a->nflips; j++)
                    dup |= a->flips[j] == bit;
                if (!dup)
                    a->flips[a->nflips++] = bit;
            }
            if (a->nflips > before) {
                r->applied++;
                f->totals[FAULT_CORRUPT]++;
            }
            break;
        }
        default:
            break;
        }
    }
}

void faults_apply_flips(const struct faults_action *a, void *frame, size_t frame_len)
{
    unsigned char *p = frame;
    for (size_t i = 0; i < a->nflips; i++)
        if (a->flips[i] / 8 < frame_len)
            p[a->flips[i] / 8] ^= (unsigned char)(0x80u >> (a->flips[i] % 8));
}

/* ---- output ---- */

static void fmt_duration(char *buf, size_t len, uint64_t ms)
{
    if (ms >= 1000 && ms % 1000 == 0)
        snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/* The rule in the CLI's own words, so `list` can be pasted back. */
static void rule_cli(const struct faults_rule *r, char *out, size_t outlen)
{
    size_t n = 0;
#define PUT(...) do { int w_ = snprintf(out + n, n < outlen ? outlen - n : 0, __VA_ARGS__); \
                      if (w_ > 0) n += (size_t)w_; } while (0)
    PUT("%s", kind_names[r->kind]);
    if (r->peer[0])
        PUT(" --peer %s", r->peer);
    if (r->channel[0])
        PUT(" --channel %s", r->channel);
    char d1[32], d2[32];
    switch (r->kind) {
    case FAULT_DELAY:
        fmt_duration(d1, sizeof d1, r->delay_ms);
        PUT(" %s", d1);
        if (r->jitter_ms) {
            fmt_duration(d2, sizeof d2, r->jitter_ms);
            PUT(" --jitter %s", d2);
        }
        break;
    case FAULT_PARTITION:
        for (int g = 0; g < 2; g++) {
            PUT(" ");
            for (size_t i = 0; i < r->group_n[g]; i++)
                PUT("%s%s", i ? "," : "", r->group[g][i]);
        }
        break;
    default:
        PUT(" %g", r->probability);
        if (r->kind == FAULT_REORDER && r->by_ms != FAULTS_REORDER_BY_MS) {
            fmt_duration(d1, sizeof d1, r->by_ms);
            PUT(" --by %s", d1);
        }
        if (r->kind == FAULT_CORRUPT && r->bits != 1)
            PUT(" --bits %" PRIu32, r->bits);
        break;
    }
#undef PUT
    if (outlen && n >= outlen)
        out[outlen - 1] = 0;
}

void faults_list_text(const struct faults *f, char *out, size_t outlen)
{
    if (!outlen)
        return;
    out[0] = 0;
    if (f->n == 0) {
        snprintf(out, outlen, "no faults\n");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < f->n && n < outlen; i++) {
        char cli[1024];
        rule_cli(&f->rules[i], cli, sizeof cli);
        int w = snprintf(out + n, outlen - n, "%" PRIu32 "  %s  (seen %" PRIu64 ", applied %" PRIu64 ")\n",
                         f->rules[i].id, cli, f->rules[i].seen, f->rules[i].applied);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

static json_t *rule_json(const struct faults_rule *r, bool counters)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (counters)
        json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "type", json_string(kind_names[r->kind]));
    if (r->peer[0])
        json_object_set_new(o, "peer", json_string(r->peer));
    if (r->channel[0])
        json_object_set_new(o, "channel", json_string(r->channel));
    switch (r->kind) {
    case FAULT_DELAY:
        json_object_set_new(o, "delay_ms", json_integer((json_int_t)r->delay_ms));
        json_object_set_new(o, "jitter_ms", json_integer((json_int_t)r->jitter_ms));
        break;
    case FAULT_PARTITION: {
        json_t *gs = json_array();
        for (int g = 0; g < 2; g++) {
            json_t *a = json_array();
            for (size_t i = 0; i < r->group_n[g]; i++)
                json_array_append_new(a, json_string(r->group[g][i]));
            json_array_append_new(gs, a);
        }
        json_object_set_new(o, "groups", gs);
        break;
    }
    default:
        json_object_set_new(o, "probability", json_real(r->probability));
        if (r->kind == FAULT_REORDER)
            json_object_set_new(o, "by_ms", json_integer((json_int_t)r->by_ms));
        if (r->kind == FAULT_CORRUPT)
            json_object_set_new(o, "bits", json_integer(r->bits));
        break;
    }
    if (counters) {
        json_object_set_new(o, "seen", json_integer((json_int_t)r->seen));
        json_object_set_new(o, "applied", json_integer((json_int_t)r->applied));
    }
    return o;
}

json_t *faults_to_json(const struct faults *f)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < f->n; i++) {
        json_t *o = rule_json(&f->rules[i], true);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- commands ---- */

int faults_command(struct faults *f, int argc, char **argv, char *out, size_t outlen)
{
    if (argc >= 1 && strcmp(argv[0], "list") == 0) {
        if (argc == 1) {
            faults_list_text(f, out, outlen);
            return 0;
        }
        if (argc == 2 && strcmp(argv[1], "--json") == 0) {
            json_t *j = faults_to_json(f);
            char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
            json_decref(j);
            if (!s) {
                say(out, outlen, "out of memory");
                return -1;
            }
            say(out, outlen, "%s\n", s);
            free(s);
            return 0;
        }
        say(out, outlen, "unexpected \"%s\" (usage: list [--json])", argv[1]);
        return -1;
    }
    if (argc >= 1 && strcmp(argv[0], "clear") == 0) {
        if (argc == 1) {
            size_t n = f->n;
            faults_clear(f);
            say(out, outlen, "cleared %zu fault%s\n", n, n == 1 ? "" : "s");
            return 0;
        }
        char *end;
        unsigned long id = strtoul(argv[1], &end, 10);
        if (argc > 2 || end == argv[1] || *end || id == 0 || id > UINT32_MAX) {
            say(out, outlen, "usage: clear [ID] (ID as `list` shows it)");
            return -1;
        }
        if (!faults_remove(f, (uint32_t)id)) {
            say(out, outlen, "no fault %lu (see `list`)", id);
            return -1;
        }
        say(out, outlen, "cleared fault %lu\n", id);
        return 0;
    }
    struct faults_rule r;
    if (faults_parse(argc, argv, &r, out, outlen) != 0)
        return -1;
    char cli[1024];
    rule_cli(&r, cli, sizeof cli);
    uint32_t id = faults_add(f, &r, out, outlen);
    if (!id) {
        faults_rule_clear(&r);
        return -1;
    }
    say(out, outlen, "fault %" PRIu32 ": %s\n", id, cli);
    return 0;
}

#define MAX_WORDS 64

static int split_words(char *buf, char **argv)
{
    int argc = 0;
    for (char *p = strtok(buf, " \t\r\n"); p; p = strtok(NULL, " \t\r\n")) {
        if (argc == MAX_WORDS)
            return -1;
        argv[argc++] = p;
    }
    return argc;
}

int faults_command_line(struct faults *f, const char *line, char *out, size_t outlen)
{
    char *buf = strdup(line);
    char *argv[MAX_WORDS];
    if (!buf) {
        say(out, outlen, "out of memory");
        return -1;
    }
    int argc = split_words(buf, argv);
    int rc;
    if (argc < 0) {
        say(out, outlen, "more than %d words", MAX_WORDS);
        rc = -1;
    } else {
        rc = faults_command(f, argc, argv, out, outlen);
    }
    free(buf);
    return rc;
}

/* ---- config ---- */

static int cfg_err(char *err, size_t errlen, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int cfg_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    say(err, errlen, "%s: %s", path, msg);
    return -1;
}

static bool allowed_key(const char *key, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcmp(key, *allowed) == 0)
            return true;
    return false;
}

static int json_name(const json_t *v, const char *path, const char *what, char *dst, size_t dstlen,
                     char *err, size_t errlen)
{
    if (!json_is_string(v))
        return cfg_err(err, errlen, path, "expected a string (a %s name)", what);
    char why[512];
    if (check_name(what, json_string_value(v), why, sizeof why) != 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return cfg_err(err, errlen, path, "%s", why[0] ? why : "contains a NUL byte");
    snprintf(dst, dstlen, "%s", json_string_value(v));
    return 0;
}

static int json_ms(const json_t *v, const char *path, uint64_t *out, char *err, size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > FAULTS_MAX_DELAY_MS)
        return cfg_err(err, errlen, path, "expected milliseconds (0..%u)", FAULTS_MAX_DELAY_MS);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int rule_from_object(const json_t *o, const char *path, struct faults_rule *r, char *err, size_t errlen)
{
    char kp[256];
    const json_t *t = json_object_get(o, "type");
    snprintf(kp, sizeof kp, "%s.type", path);
    if (!t)
        return cfg_err(err, errlen, path, "a rule needs \"type\" (drop, delay, duplicate, reorder, corrupt, partition)");
    int k = json_is_string(t) ? kind_of(json_string_value(t)) : -1;
    if (k < 0)
        return cfg_err(err, errlen, kp, "expected one of drop, delay, duplicate, reorder, corrupt, partition");
    rule_init(r, (enum faults_kind)k);
    static const char *const prob_keys[] = { "type", "peer", "channel", "probability", NULL };
    static const char *const reorder_keys[] = { "type", "peer", "channel", "probability", "by_ms", NULL };
    static const char *const corrupt_keys[] = { "type", "peer", "channel", "probability", "bits", NULL };
    static const char *const delay_keys[] = { "type", "peer", "channel", "delay_ms", "jitter_ms", NULL };
    static const char *const part_keys[] = { "type", "channel", "groups", NULL };
    const char *const *allowed = k == FAULT_DELAY ? delay_keys : k == FAULT_PARTITION ? part_keys
                                 : k == FAULT_REORDER ? reorder_keys : k == FAULT_CORRUPT ? corrupt_keys
                                 : prob_keys;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        snprintf(kp, sizeof kp, "%s.%s", path, key);
        if (!allowed_key(key, allowed)) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ", *a);
            return cfg_err(err, errlen, kp, "unknown key for a %s rule (allowed: %s)", kind_names[k], list);
        }
    }
    if ((v = json_object_get(o, "peer"))) {
        snprintf(kp, sizeof kp, "%s.peer", path);
        if (json_name(v, kp, "node", r->peer, sizeof r->peer, err, errlen))
            return -1;
    }
    if ((v = json_object_get(o, "channel"))) {
        snprintf(kp, sizeof kp, "%s.channel", path);
        if (json_name(v, kp, "channel", r->channel, sizeof r->channel, err, errlen))
            return -1;
    }
    switch (k) {
    case FAULT_DELAY:
        snprintf(kp, sizeof kp, "%s.delay_ms", path);
        if (!(v = json_object_get(o, "delay_ms")))
            return cfg_err(err, errlen, path, "a delay rule needs \"delay_ms\"");
        if (json_ms(v, kp, &r->delay_ms, err, errlen))
            return -1;
        snprintf(kp, sizeof kp, "%s.jitter_ms", path);
        if ((v = json_object_get(o, "jitter_ms")) && json_ms(v, kp, &r->jitter_ms, err, errlen))
            return -1;
        break;
    case FAULT_PARTITION: {
        snprintf(kp, sizeof kp, "%s.groups", path);
        const json_t *gs = json_object_get(o, "groups");
        if (!json_is_array(gs) || json_array_size(gs) != 2)
            return cfg_err(err, errlen, kp, "expected two groups of node names, e.g. [[\"n1\",\"n2\"],[\"n3\"]]");
        for (int g = 0; g < 2; g++) {
            const json_t *a = json_array_get(gs, (size_t)g);
            char gp[300];
            snprintf(gp, sizeof gp, "%s[%d]", kp, g);
            if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > FAULTS_MAX_GROUP) {
                faults_rule_clear(r);
                return cfg_err(err, errlen, gp, "expected 1..%u node names", FAULTS_MAX_GROUP);
            }
            r->group[g] = calloc(json_array_size(a), sizeof *r->group[g]);
            if (!r->group[g]) {
                faults_rule_clear(r);
                return cfg_err(err, errlen, gp, "out of memory");
            }
            for (size_t i = 0; i < json_array_size(a); i++) {
                char np[340], name[FAULTS_NAME_MAX + 1];
                snprintf(np, sizeof np, "%s[%zu]", gp, i);
                if (json_name(json_array_get(a, i), np, "node", name, sizeof name, err, errlen) ||
                    !(r->group[g][r->group_n[g]] = strdup(name))) {
                    faults_rule_clear(r);
                    return -1;
                }
                r->group_n[g]++;
            }
        }
        char why[512];
        if (check_groups(r, why, sizeof why)) {
            faults_rule_clear(r);
            return cfg_err(err, errlen, kp, "%s", why);
        }
        break;
    }
    default:
        snprintf(kp, sizeof kp, "%s.probability", path);
        if (!(v = json_object_get(o, "probability")))
            return cfg_err(err, errlen, path, "a %s rule needs \"probability\"", kind_names[k]);
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
            return cfg_err(err, errlen, kp, "expected a number from 0 to 1");
        r->probability = json_number_value(v);
        if (k == FAULT_REORDER && (v = json_object_get(o, "by_ms"))) {
            snprintf(kp, sizeof kp, "%s.by_ms", path);
            if (json_ms(v, kp, &r->by_ms, err, errlen))
                return -1;
            if (r->by_ms == 0)
                return cfg_err(err, errlen, kp, "0 would reorder nothing");
        }
        if (k == FAULT_CORRUPT && (v = json_object_get(o, "bits"))) {
            snprintf(kp, sizeof kp, "%s.bits", path);
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > FAULTS_MAX_FLIPS)
                return cfg_err(err, errlen, kp, "expected 1..%u", FAULTS_MAX_FLIPS);
            r->bits = (uint32_t)json_integer_value(v);
        }
        break;
    }
    return 0;
}

int faults_config_load(struct faults *f, const json_t *section, bool *enabled, char *err, size_t errlen)
{
    *enabled = false;
    if (!section)
        return 0;
    if (!json_is_object(section))
        return cfg_err(err, errlen, "faults", "expected an object {\"enabled\": bool, \"rules\": [...]}");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)section, key, v) {
        if (strcmp(key, "enabled") != 0 && strcmp(key, "rules") != 0) {
            char p[300];
            snprintf(p, sizeof p, "faults.%s", key);
            return cfg_err(err, errlen, p, "unknown key (allowed: enabled, rules)");
        }
    }
    const json_t *en = json_object_get(section, "enabled");
    if (en && !json_is_boolean(en))
        return cfg_err(err, errlen, "faults.enabled", "expected true or false");
    bool on = en && json_is_true(en);
    const json_t *rules = json_object_get(section, "rules");
    if (rules && !json_is_array(rules))
        return cfg_err(err, errlen, "faults.rules", "expected an array of rules");
    size_t n = rules ? json_array_size(rules) : 0;
    if (n > 0 && !on)
        return cfg_err(err, errlen, "faults.enabled",
                       "is %s but faults.rules has %zu rule%s; set \"faults.enabled\": true to inject faults",
                       en ? "false" : "absent", n, n == 1 ? "" : "s");
    if (n > FAULTS_MAX_RULES)
        return cfg_err(err, errlen, "faults.rules", "%zu rules is more than the limit of %u", n, FAULTS_MAX_RULES);
    struct faults_rule parsed[FAULTS_MAX_RULES];
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "faults.rules[%zu]", i);
        const json_t *r = json_array_get(rules, i);
        int rc;
        if (json_is_string(r)) {
            char *buf = strdup(json_string_value(r));
            char *argv[MAX_WORDS];
            int argc = buf ? split_words(buf, argv) : -1;
            char why[512] = "out of memory or too many words";
            rc = argc < 0 ? -1 : faults_parse(argc, argv, &parsed[np], why, sizeof why);
            if (rc == 0 && argc > 0 && (strcmp(argv[0], "list") == 0 || strcmp(argv[0], "clear") == 0))
                rc = -1;
            free(buf);
            if (rc)
                cfg_err(err, errlen, path, "%s", why);
        } else if (json_is_object(r)) {
            rc = rule_from_object(r, path, &parsed[np], err, errlen);
        } else {
            rc = cfg_err(err, errlen, path, "expected a rule: a string such as \"drop --peer n2 0.2\" or an object");
        }
        if (rc) {
            for (size_t j = 0; j < np; j++)
                faults_rule_clear(&parsed[j]);
            return -1;
        }
        np++;
    }
    if (f->n + np > FAULTS_MAX_RULES) {
        for (size_t j = 0; j < np; j++)
            faults_rule_clear(&parsed[j]);
        return cfg_err(err, errlen, "faults.rules", "more than %u rules in all", FAULTS_MAX_RULES);
    }
    for (size_t j = 0; j < np; j++)
        faults_add(f, &parsed[j], err, errlen);
    *enabled = on;
    return 0;
}
