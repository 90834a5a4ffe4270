/* causal: matrix clocks for causal channels (see causal.h). */
#include "causal.h"

#include <stdlib.h>
#include <string.h>

#define STAMP_VERSION 1u
#define SELF 0                      /* this node's slot */

struct cnode {
    bool used;
    uint64_t epoch;
    char name[CAUSAL_NAME_MAX + 1];
};

struct centry { uint16_t k, l; uint64_t count; };

struct held {
    struct held *next;
    char *from;
    int sender;                     /* slot, -1 once retired */
    uint64_t tag;
    size_t len, n;
    uint8_t *msg;
    struct centry *e;
};

struct retired { char *name; uint64_t below; };    /* epochs < below are retired */

struct causal {
    struct causal_env env;
    uint32_t max_held;
    uint64_t max_held_bytes;
    struct cnode nodes[CAUSAL_MAX_NODES];
    uint64_t sent[CAUSAL_MAX_NODES][CAUSAL_MAX_NODES];
    struct held *held, **held_tail;
    size_t n_held;
    uint64_t held_bytes;
    struct retired *ret; size_t nret, capret;
    uint8_t *buf; size_t cap;
    struct causal_stats st;
};

/* ---- varints ---- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* ---- node table ---- */

static uint64_t retired_below(const struct causal *c, const char *name)
{
    for (size_t i = 0; i < c->nret; i++)
        if (strcmp(c->ret[i].name, name) == 0)
            return c->ret[i].below;
    return 0;
}

static int find_slot(const struct causal *c, const char *name, size_t nlen, uint64_t epoch)
{
    for (int i = 0; i < (int)CAUSAL_MAX_NODES; i++)
        if (c->nodes[i].used && c->nodes[i].epoch == epoch && strlen(c->nodes[i].name) == nlen &&
            memcmp(c->nodes[i].name, name, nlen) == 0)
            return i;
    return -1;
}

/* -1: retired; -2: table full or bad name. */
static int intern(struct causal *c, const char *name, size_t nlen, uint64_t epoch)
{
    if (nlen == 0 || nlen > CAUSAL_NAME_MAX || memchr(name, 0, nlen) || epoch == 0)
        return -2;
    int s = find_slot(c, name, nlen, epoch);
    if (s >= 0)
        return s;
    char tmp[CAUSAL_NAME_MAX + 1];
    memcpy(tmp, name, nlen);
    tmp[nlen] = 0;
    if (epoch < retired_below(c, tmp))
        return -1;
    for (int i = 0; i < (int)CAUSAL_MAX_NODES; i++)
        if (!c->nodes[i].used) {
            c->nodes[i].used = true;
            c->nodes[i].epoch = epoch;
            memcpy(c->nodes[i].name, tmp, nlen + 1);
            return i;
        }
    return -2;
}

/* ---- delivery ---- */

/* The sender's own earlier messages are ordered by position (the delivery
 * core hands them up in order, and an earlier one still held blocks the
 * later ones), not by count: a count the sender consumed for a message that
 * then failed must not stall its later ones. */
static bool deliverable(const struct causal *c, const struct held *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct centry *e = &h->e[i];
        if (e->l == SELF && e->k != h->sender && e->count > c->sent[e->k][SELF])
            return false;
    }
    return true;
}

static bool sender_blocked(const struct causal *c, int sender, const struct held *upto)
{
    for (const struct held *h = c->held; h && h != upto; h = h->next)
        if (h->sender == sender)
            return true;
    return false;
}

static void merge_and_deliver(struct causal *c, struct held *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct centry *e = &h->e[i];
        if (e->count > c->sent[e->k][e->l])
            c->sent[e->k][e->l] = e->count;
    }
    c->st.delivered++;
    if (c->env.deliver)
        c->env.deliver(c->env.ctx, h->from, h->tag, h->msg, h->len);
}

static void held_free(struct held *h)
{
    free(h->from);
    free(h->msg);
    free(h->e);
    free(h);
}

/* Delivers every held message that became deliverable, until none does. */
static void release(struct causal *c)
{
    bool progress = true;
    while (progress) {
        progress = false;
        for (struct held **pp = &c->held; *pp; pp = &(*pp)->next) {
            struct held *h = *pp;
            if (!deliverable(c, h) || sender_blocked(c, h->sender, h))
                continue;
            *pp = h->next;
            if (c->held_tail == &h->next)
                c->held_tail = pp;
            c->n_held--;
            c->held_bytes -= h->len;
            c->st.released++;
            merge_and_deliver(c, h);
            held_free(h);
            progress = true;
            break;    /* the callback may have stamped; rescan from the head */
        }
    }
}

static int free_slots(const struct causal *c)
{
    int n = 0;
    for (int i = 0; i < (int)CAUSAL_MAX_NODES; i++)
        n += !c->nodes[i].used;
    return n;
}

enum causal_result causal_receive(struct causal *c, const char *from, const uint8_t *stamp, size_t stamp_len,
                                  uint64_t tag, const void *msg, size_t len)
{
    const uint8_t *p = stamp, *end = stamp + stamp_len;
    uint64_t ver, nn, ne;
    if (!stamp || !get_varint(&p, end, &ver) || ver != STAMP_VERSION || !get_varint(&p, end, &nn) ||
        nn < 2 || nn > CAUSAL_MAX_NODES) {
        c->st.bad++;
        return CAUSAL_BAD;
    }
    /* The whole stamp is read and checked before any of its nodes is
     * entered in the table: a stamp that turns out bad must not take
     * slots, which only a member's epoch or departure would ever free. */
    struct { const char *name; size_t len; uint64_t epoch; } nodes[CAUSAL_MAX_NODES];
    int fresh = 0;
    for (uint64_t i = 0; i < nn; i++) {
        uint64_t nlen, epoch;
        if (!get_varint(&p, end, &nlen) || nlen > (uint64_t)(end - p)) {
            c->st.bad++;
            return CAUSAL_BAD;
        }
        const char *name = (const char *)p;
        p += nlen;
        if (!get_varint(&p, end, &epoch) || nlen == 0 || nlen > CAUSAL_NAME_MAX || memchr(name, 0, nlen) ||
            epoch == 0 || (i == 0 && (strlen(from) != nlen || memcmp(from, name, nlen) != 0))) {
            c->st.bad++;
            return CAUSAL_BAD;
        }
        nodes[i].name = name;
        nodes[i].len = (size_t)nlen;
        nodes[i].epoch = epoch;
        fresh += find_slot(c, name, (size_t)nlen, epoch) < 0;
    }
    if (!get_varint(&p, end, &ne) || ne > (uint64_t)CAUSAL_MAX_NODES * CAUSAL_MAX_NODES) {
        c->st.bad++;
        return CAUSAL_BAD;
    }
    const uint8_t *entries = p;
    for (uint64_t i = 0; i < ne; i++) {
        uint64_t k, l, cnt;
        if (!get_varint(&p, end, &k) || !get_varint(&p, end, &l) || !get_varint(&p, end, &cnt) || k >= nn ||
            l >= nn) {
            c->st.bad++;
            return CAUSAL_BAD;
        }
    }
    if (fresh > free_slots(c)) {
        c->st.bad++;   /* more node epochs than a causal channel tracks (CAUSAL_MAX_NODES) */
        return CAUSAL_BAD;
    }
    int map[CAUSAL_MAX_NODES];
    for (uint64_t i = 0; i < nn; i++)
        map[i] = intern(c, nodes[i].name, nodes[i].len, nodes[i].epoch);   /* -1: retired; never -2 now */
    if (map[0] == -1) {
        c->st.stale++;
        return CAUSAL_STALE;
    }
    struct held h = { .sender = map[0], .tag = tag, .len = len };
    struct centry *e = ne ? malloc(ne * sizeof *e) : NULL;
    if (ne && !e)
        return CAUSAL_FULL;   /* out of memory: offered again later */
    p = entries;
    for (uint64_t i = 0; i < ne; i++) {
        uint64_t k = 0, l = 0, cnt = 0;   /* read once already: these cannot fail now */
        get_varint(&p, end, &k);
        get_varint(&p, end, &l);
        get_varint(&p, end, &cnt);
        if (map[k] < 0 || map[l] < 0 || cnt == 0)
            continue;   /* about a retired epoch: no longer waited for */
        e[h.n++] = (struct centry){ (uint16_t)map[k], (uint16_t)map[l], cnt };
    }
    h.e = e;
    h.from = (char *)from;
    h.msg = (uint8_t *)msg;
    if (deliverable(c, &h) && !sender_blocked(c, h.sender, NULL)) {
        c->st.delivered_at_once++;
        merge_and_deliver(c, &h);
        free(e);
        release(c);
        return CAUSAL_DELIVERED;
    }
    if (c->n_held >= c->max_held || c->held_bytes + len > c->max_held_bytes) {
        free(e);
        c->st.refused_full++;
        return CAUSAL_FULL;
    }
    struct held *k = calloc(1, sizeof *k);
    if (k) {
        *k = h;
        k->from = strdup(from);
        k->msg = malloc(len ? len : 1);
    }
    if (!k || !k->from || !k->msg) {
        if (k) {
            free(k->from);
            free(k->msg);
            free(k);
        }
        free(e);
        return CAUSAL_FULL;
    }
    if (len)
        memcpy(k->msg, msg, len);
    k->next = NULL;
    *c->held_tail = k;
    c->held_tail = &k->next;
    c->n_held++;
    c->held_bytes += len;
    c->st.held++;
    if (c->n_held > c->st.max_held_seen)
        c->st.max_held_seen = c->n_held;
    return CAUSAL_HELD;
}

/* ---- send ---- */

static bool reserve(struct causal *c, size_t need)
{
    if (need <= c->cap)
        return true;
    size_t nc = c->cap ? c->cap : 256;
    while (nc < need)
        nc *= 2;
    uint8_t *nb = realloc(c->buf, nc);
    if (!nb)
        return false;
    c->buf = nb;
    c->cap = nc;
    return true;
}

int causal_stamp(struct causal *c, const char *dest, uint64_t dest_epoch, const uint8_t **out, size_t *out_len)
{
    size_t dlen = strlen(dest);
    int d = intern(c, dest, dlen, dest_epoch);
    if (d == -2)
        return -1;
    /* A retired destination epoch is gone: the message will fail, so it
     * counts nothing; it still gets a well-formed stamp. */
    if (d >= 0)
        c->sent[SELF][d]++;
    /* Table: self, dest, then every other live node with an entry. Index 1
     * is always the destination, so a message to oneself lists self twice. */
    const char *tname[CAUSAL_MAX_NODES + 1];
    uint64_t tepoch[CAUSAL_MAX_NODES + 1];
    int idx[CAUSAL_MAX_NODES];
    size_t nn = 0, ne = 0;
    for (int i = 0; i < (int)CAUSAL_MAX_NODES; i++)
        idx[i] = -1;
    tname[nn] = c->nodes[SELF].name; tepoch[nn] = c->nodes[SELF].epoch; idx[SELF] = (int)nn++;
    tname[nn] = dest; tepoch[nn] = dest_epoch; nn++;
    if (d > SELF)
        idx[d] = 1;
    size_t need = 16 + dlen + strlen(c->nodes[SELF].name) + 40;
    for (int k = 0; k < (int)CAUSAL_MAX_NODES; k++)
        for (int l = 0; l < (int)CAUSAL_MAX_NODES; l++) {
            if (!c->sent[k][l])
                continue;
            ne++;
            int pair[2] = { k, l };
            for (int x = 0; x < 2; x++)
                if (idx[pair[x]] < 0) {
                    idx[pair[x]] = (int)nn;
                    tname[nn] = c->nodes[pair[x]].name;
                    tepoch[nn] = c->nodes[pair[x]].epoch;
                    need += 20 + strlen(tname[nn]);
                    nn++;
                }
        }
    need += ne * 30;
    if (!reserve(c, need)) {
        if (d >= 0)
            c->sent[SELF][d]--;
        return -1;
    }
    uint8_t *p = c->buf;
    p += put_varint(p, STAMP_VERSION);
    p += put_varint(p, nn);
    for (size_t i = 0; i < nn; i++) {
        size_t l = strlen(tname[i]);
        p += put_varint(p, l);
        memcpy(p, tname[i], l);
        p += l;
        p += put_varint(p, tepoch[i]);
    }
    p += put_varint(p, ne);
    for (int k = 0; k < (int)CAUSAL_MAX_NODES; k++)
        for (int l = 0; l < (int)CAUSAL_MAX_NODES; l++)
            if (c->sent[k][l]) {
                p += put_varint(p, (uint64_t)idx[k]);
                p += put_varint(p, (uint64_t)idx[l]);
                p += put_varint(p, c->sent[k][l]);
            }
    c->st.stamped++;
    *out = c->buf;
    *out_len = (size_t)(p - c->buf);
    return 0;
}

/* ---- retirement ---- */

static void retire_slot(struct causal *c, int s)
{
    c->nodes[s].used = false;
    for (int i = 0; i < (int)CAUSAL_MAX_NODES; i++)
        c->sent[s][i] = c->sent[i][s] = 0;
    /* What the retired epoch sent and still waits here is dropped: the
     * messages that depend on it are about to be released, and delivering
     * it after them would break the order (at most once instead). */
    for (struct held **pp = &c->held; *pp;) {
        struct held *h = *pp;
        if (h->sender != s) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        if (c->held_tail == &h->next)
            c->held_tail = pp;
        c->n_held--;
        c->held_bytes -= h->len;
        c->st.stale++;
        if (c->env.dropped)
            c->env.dropped(c->env.ctx, h->from, h->tag);
        held_free(h);
    }
    for (struct held *h = c->held; h; h = h->next) {
        size_t w = 0;
        for (size_t i = 0; i < h->n; i++)
            if (h->e[i].k != s && h->e[i].l != s)
                h->e[w++] = h->e[i];
        if (w != h->n)
            c->st.retired_released++;
        h->n = w;
    }
}

static void retire(struct causal *c, const char *node, uint64_t below)
{
    if (strlen(node) > CAUSAL_NAME_MAX)
        return;
    size_t i;
    for (i = 0; i < c->nret; i++)
        if (strcmp(c->ret[i].name, node) == 0)
            break;
    if (i == c->nret) {
        if (c->nret == c->capret) {
            size_t nc = c->capret ? c->capret * 2 : 16;
            struct retired *nr = realloc(c->ret, nc * sizeof *nr);
            if (!nr)
                return;
            c->ret = nr;
            c->capret = nc;
        }
        if (!(c->ret[i].name = strdup(node)))
            return;
        c->ret[i].below = 0;
        c->nret++;
    }
    if (below > c->ret[i].below)
        c->ret[i].below = below;
    for (int s = 1; s < (int)CAUSAL_MAX_NODES; s++)
        if (c->nodes[s].used && c->nodes[s].epoch < below && strcmp(c->nodes[s].name, node) == 0)
            retire_slot(c, s);
    release(c);
}

void causal_node_epoch(struct causal *c, const char *node, uint64_t epoch)
{
    if (strcmp(node, c->nodes[SELF].name) == 0)
        return;
    retire(c, node, epoch);
}

void causal_node_left(struct causal *c, const char *node)
{
    if (strcmp(node, c->nodes[SELF].name) == 0)
        return;
    retire(c, node, UINT64_MAX);
}

/* ---- life ---- */

struct causal *causal_new(const struct causal_config *cfg, const struct causal_env *env)
{
    if (!cfg || !cfg->self || !*cfg->self || strlen(cfg->self) > CAUSAL_NAME_MAX || cfg->epoch == 0 || !env)
        return NULL;
    struct causal *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->env = *env;
    c->max_held = cfg->max_held ? cfg->max_held : CAUSAL_MAX_HELD_DEFAULT;
    c->max_held_bytes = cfg->max_held_bytes ? cfg->max_held_bytes : CAUSAL_MAX_HELD_BYTES_DEFAULT;
    c->nodes[SELF].used = true;
    c->nodes[SELF].epoch = cfg->epoch;
    strcpy(c->nodes[SELF].name, cfg->self);
    c->held_tail = &c->held;
    /* Earlier runs of this node are retired from the start. */
    if ((c->ret = malloc(sizeof *c->ret)) && (c->ret[0].name = strdup(cfg->self))) {
        c->ret[0].below = cfg->epoch;
        c->nret = c->capret = 1;
    }
    return c;
}

void causal_free(struct causal *c)
{
    if (!c)
        return;
    struct held *h = c->held;
    while (h) {
        struct held *n = h->next;
        held_free(h);
        h = n;
    }
    for (size_t i = 0; i < c->nret; i++)
        free(c->ret[i].name);
    free(c->ret);
    free(c->buf);
    free(c);
}

size_t causal_held(const struct causal *c) { return c->n_held; }
const struct causal_stats *causal_get_stats(const struct causal *c) { return &c->st; }
