/* membership: the member table, a state-based CRDT (see membership.h). */
#include "membership.h"

#include <stdlib.h>
#include <string.h>

void membership_init(struct membership *m)
{
    m->v = NULL;
    m->n = 0;
    m->cap = 0;
}

void membership_free(struct membership *m)
{
    free(m->v);
    membership_init(m);
}

int membership_compare(const struct member *a, const struct member *b)
{
    if (a->incarnation != b->incarnation)
        return a->incarnation < b->incarnation ? -1 : 1;
    if (a->left != b->left)
        return a->left ? 1 : -1;
    int c = strcmp(a->address, b->address);
    if (c != 0)
        return (c > 0) - (c < 0);
    if (!a->left)
        return 0;
    /* The earlier expiry is the greater entry; none is the latest. */
    uint64_t ea = a->expires_ms ? a->expires_ms : UINT64_MAX;
    uint64_t eb = b->expires_ms ? b->expires_ms : UINT64_MAX;
    return (ea < eb) - (ea > eb);
}

/* Index of name, or of where it would be inserted (with *found false). */
static size_t find_index(const struct membership *m, const char *name, bool *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->v[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

const struct member *membership_find(const struct membership *m, const char *name)
{
    bool found;
    size_t i = find_index(m, name, &found);
    return found ? &m->v[i] : NULL;
}

/* Copies only the strings' bytes: the padding after them stays zero, so
 * equal entries are equal byte for byte. */
static void copy_entry(struct member *dst, const struct member *src)
{
    memset(dst, 0, sizeof *dst);
    strcpy(dst->name, src->name);
    strcpy(dst->address, src->address);
    dst->incarnation = src->incarnation;
    dst->left = src->left;
    dst->expires_ms = src->left ? src->expires_ms : 0;
}

static int reserve(struct membership *m, size_t want)
{
    if (want <= m->cap)
        return 0;
    size_t cap = m->cap ? m->cap : 16;
    while (cap < want)
        cap *= 2;
    struct member *v = realloc(m->v, cap * sizeof *v);
    if (!v)
        return -1;
    m->v = v;
    m->cap = cap;
    return 0;
}

/* Entries come from the network: an unnamed entry, or one whose strings do
 * not end inside their arrays, is skipped rather than read past its end. */
static bool usable(const struct member *in)
{
    return in->name[0] != '\0' && memchr(in->name, '\0', sizeof in->name) != NULL &&
           memchr(in->address, '\0', sizeof in->address) != NULL;
}

int membership_merge_one(struct membership *m, const struct member *in, struct member *old)
{
    if (!usable(in))
        return MEMBERSHIP_UNCHANGED;
    bool found;
    size_t i = find_index(m, in->name, &found);
    if (found) {
        if (membership_compare(in, &m->v[i]) <= 0)
            return MEMBERSHIP_UNCHANGED;
        if (old)
            *old = m->v[i];
        copy_entry(&m->v[i], in);
        return MEMBERSHIP_UPDATED;
    }
    if (reserve(m, m->n + 1) < 0)
        return -1;
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof *m->v);
    copy_entry(&m->v[i], in);
    m->n++;
    if (old)
        memset(old, 0, sizeof *old);
    return MEMBERSHIP_ADDED;
}

/* Sorts new names by name, and the greatest entry of a name first, so that
 * deduplication keeps the first of each run. */
static int cmp_new(const void *pa, const void *pb)
{
    const struct member *a = *(const struct member *const *)pa;
    const struct member *b = *(const struct member *const *)pb;
    int c = strcmp(a->name, b->name);
    if (c != 0)
        return c;
    return -membership_compare(a, b);
}

struct merge_work {
    const struct member **added;    /* inputs whose name is not in the table (while planning: every usable input, one per name) */
    size_t n_added;
    size_t *updated;                /* indexes into the input */
    struct member *old;             /* the entry each update replaced */
    size_t n_updated;
};

static void work_free(struct merge_work *w)
{
    free(w->added);
    free(w->updated);
    free(w->old);
}

/* Inserts the (sorted, deduplicated) new entries in one pass from the back,
 * so a large state costs O(n + k log k) rather than one memmove per name. */
static void insert_sorted(struct membership *m, struct member *const *add, size_t k)
{
    size_t i = m->n, j = k, out = m->n + k;
    while (j > 0) {
        if (i > 0 && strcmp(m->v[i - 1].name, add[j - 1]->name) > 0)
            m->v[--out] = m->v[--i];
        else
            copy_entry(&m->v[--out], add[--j]);
    }
    m->n += k;
}

static size_t dedupe(const struct member **a, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(a[k - 1]->name, a[i]->name) != 0)
            a[k++] = a[i];
    return k;
}

/* Allocates everything the merge may need up front, so that running out of
 * memory leaves the table unchanged. Every usable input goes through the
 * sort and dedupe, not only new names: a name given twice must change the
 * table (and be reported) once, from its old entry to the greatest. */
static int plan(struct membership *m, const struct member *in, size_t n, struct merge_work *w)
{
    memset(w, 0, sizeof *w);
    w->added = malloc((n ? n : 1) * sizeof *w->added);
    w->updated = malloc((n ? n : 1) * sizeof *w->updated);
    w->old = malloc((n ? n : 1) * sizeof *w->old);
    if (!w->added || !w->updated || !w->old)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (usable(&in[i]))
            w->added[w->n_added++] = &in[i];
    qsort(w->added, w->n_added, sizeof *w->added, cmp_new);
    w->n_added = dedupe(w->added, w->n_added);
    size_t n_new = 0;
    for (size_t i = 0; i < w->n_added; i++) {
        bool found;
        find_index(m, w->added[i]->name, &found);
        n_new += !found;
    }
    return reserve(m, m->n + n_new);
}

/* A whole table from a peer arrives sorted by name: then one linear walk
 * merges it, instead of a binary search per entry. */
static bool sorted_input(const struct member *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!usable(&in[i]) || (i > 0 && strcmp(in[i - 1].name, in[i].name) >= 0))
            return false;
    return true;
}

static void notify(const struct membership *m, const struct merge_work *w,
                   const struct member *in, membership_change_fn fn, void *ctx)
{
    if (!fn)
        return;
    struct member zero;
    memset(&zero, 0, sizeof zero);
    for (size_t i = 0; i < w->n_updated; i++)
        fn(ctx, MEMBERSHIP_UPDATED, membership_find(m, in[w->updated[i]].name), &w->old[i]);
    for (size_t i = 0; i < w->n_added; i++)
        fn(ctx, MEMBERSHIP_ADDED, membership_find(m, w->added[i]->name), &zero);
}

static void move_entry(struct membership *m, size_t to, size_t from)
{
    if (to != from)
        m->v[to] = m->v[from];
}

static int merge_sorted(struct membership *m, const struct member *in, size_t n,
                        membership_change_fn fn, void *ctx)
{
    size_t n_add = 0, n_upd = 0;
    for (size_t i = 0, j = 0; j < n;) {
        int c = i < m->n ? strcmp(m->v[i].name, in[j].name) : 1;
        if (c < 0) {
            i++;
        } else if (c > 0) {
            n_add++;
            j++;
        } else {
            n_upd += membership_compare(&in[j], &m->v[i]) > 0;
            i++;
            j++;
        }
    }
    if (n_add + n_upd == 0)
        return 0;
    struct merge_work w;
    memset(&w, 0, sizeof w);
    w.added = malloc((n_add ? n_add : 1) * sizeof *w.added);
    w.updated = malloc((n_upd ? n_upd : 1) * sizeof *w.updated);
    w.old = malloc((n_upd ? n_upd : 1) * sizeof *w.old);
    if (!w.added || !w.updated || !w.old || reserve(m, m->n + n_add) < 0) {
        work_free(&w);
        return -1;
    }
    /* From the back, so every entry moves at most once. */
    size_t i = m->n, j = n, out = m->n + n_add;
    while (j > 0) {
        int c = i > 0 ? strcmp(m->v[i - 1].name, in[j - 1].name) : -1;
        if (c > 0) {
            move_entry(m, --out, --i);
        } else if (c < 0) {
            w.added[w.n_added++] = &in[j - 1];
            copy_entry(&m->v[--out], &in[--j]);
        } else {
            struct member *e = &m->v[--i];
            if (membership_compare(&in[j - 1], e) > 0) {
                w.old[w.n_updated] = *e;
                w.updated[w.n_updated++] = j - 1;
                copy_entry(e, &in[j - 1]);
            }
            j--;
            move_entry(m, --out, i);
        }
    }
    m->n += n_add;
    notify(m, &w, in, fn, ctx);
    work_free(&w);
    return (int)(n_add + n_upd);
}

int membership_merge(struct membership *m, const struct member *in, size_t n,
                     membership_change_fn fn, void *ctx)
{
    if (sorted_input(in, n))
        return merge_sorted(m, in, n, fn, ctx);
    struct merge_work w;
    if (plan(m, in, n, &w) < 0) {
        work_free(&w);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < w.n_added; i++) {
        const struct member *e = w.added[i];
        bool found;
        size_t at = find_index(m, e->name, &found);
        if (!found) {
            w.added[k++] = e;
            continue;
        }
        if (membership_compare(e, &m->v[at]) <= 0)
            continue;
        w.old[w.n_updated] = m->v[at];
        w.updated[w.n_updated++] = (size_t)(e - in);
        copy_entry(&m->v[at], e);
    }
    w.n_added = k;
    insert_sorted(m, (struct member *const *)w.added, w.n_added);

    /* Callbacks run once the table is whole again, so they may look it up. */
    notify(m, &w, in, fn, ctx);
    int changed = (int)(w.n_updated + w.n_added);
    work_free(&w);
    return changed;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h ^ 0xff;  /* separates "ab"+"c" from "a"+"bc" */
}

static uint64_t entry_hash(const struct member *e)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, e->name);
    h = fnv1a(h, e->address);
    h = mix64(h ^ e->incarnation);
    if (e->left)
        h = mix64(h ^ e->expires_ms);
    return mix64(h + (e->left ? 0x9e3779b97f4a7c15ULL : 0));
}

/* A sum of per-entry hashes: independent of order by construction, and one
 * changed entry changes it. */
uint64_t membership_digest(const struct membership *m)
{
    uint64_t d = mix64(m->n);
    for (size_t i = 0; i < m->n; i++)
        d += entry_hash(&m->v[i]);
    return d;
}

size_t membership_alive_count(const struct membership *m)
{
    size_t c = 0;
    for (size_t i = 0; i < m->n; i++)
        c += !m->v[i].left;
    return c;
}

bool membership_token_valid(const char *s, size_t max_len)
{
    size_t len = strlen(s);
    if (len == 0 || len > max_len)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

bool membership_expired(const struct member *e, uint64_t wall_ms)
{
    return e->left && e->expires_ms != 0 && e->expires_ms <= wall_ms;
}

size_t membership_expire(struct membership *m, uint64_t wall_ms,
                         void (*fn)(void *ctx, const struct member *gone), void *ctx)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (membership_expired(&m->v[i], wall_ms)) {
            if (fn)
                fn(ctx, &m->v[i]);
            continue;
        }
        if (k != i)
            m->v[k] = m->v[i];
        k++;
    }
    size_t gone = m->n - k;
    m->n = k;
    return gone;
}
