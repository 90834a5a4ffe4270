/* check_membership: the member table CRDT (daemon/membership.c).
 *
 * The CRDT laws are checked as properties: random tables from a seeded PRNG,
 * many iterations, results compared entry by entry and by digest. Each
 * merge is done three ways (merge_one per entry, a bulk merge of a sorted
 * table, a bulk merge of a shuffled array with duplicates), which must all
 * agree. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership.h"

#define ITERATIONS 400

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static struct member entry(const char *name, const char *address, uint64_t inc, bool left)
{
    struct member m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.address, sizeof m.address, "%s", address);
    m.incarnation = inc;
    m.left = left;
    return m;
}

/* A small name space and few incarnations, so that random tables collide
 * on names and tie on incarnations often. */
static struct member random_entry(void)
{
    char name[16], addr[32];
    snprintf(name, sizeof name, "node%u", (unsigned)(rnd() % 24));
    snprintf(addr, sizeof addr, "10.0.0.%u:7000", (unsigned)(rnd() % 3));
    struct member e = entry(name, addr, rnd() % 4, rnd() % 3 == 0);
    if (e.left)
        e.expires_ms = (rnd() % 3) * 1000;     /* 0: never, so ties on expiry happen too */
    return e;
}

static void random_table(struct membership *m)
{
    membership_init(m);
    size_t n = rnd() % 30;
    for (size_t i = 0; i < n; i++) {
        struct member e = random_entry();
        ck_assert_int_ge(membership_merge_one(m, &e, NULL), 0);
    }
}

static void copy_table(struct membership *dst, const struct membership *src)
{
    membership_init(dst);
    ck_assert_int_ge(membership_merge(dst, src->v, src->n, NULL, NULL), 0);
}

static void assert_sorted(const struct membership *m)
{
    for (size_t i = 1; i < m->n; i++)
        ck_assert_int_lt(strcmp(m->v[i - 1].name, m->v[i].name), 0);
}

static void assert_same(const struct membership *a, const struct membership *b)
{
    assert_sorted(a);
    assert_sorted(b);
    ck_assert_uint_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        ck_assert_str_eq(a->v[i].name, b->v[i].name);
        ck_assert_str_eq(a->v[i].address, b->v[i].address);
        ck_assert_uint_eq(a->v[i].incarnation, b->v[i].incarnation);
        ck_assert_int_eq(a->v[i].left, b->v[i].left);
    }
    ck_assert_uint_eq(membership_digest(a), membership_digest(b));
}

/* dst := dst merged with src, by one of the three ways (way 0..2). */
static void merge_way(struct membership *dst, const struct membership *src, int way)
{
    if (way == 0) {
        for (size_t i = 0; i < src->n; i++)
            ck_assert_int_ge(membership_merge_one(dst, &src->v[i], NULL), 0);
        return;
    }
    if (way == 1) {
        ck_assert_int_ge(membership_merge(dst, src->v, src->n, NULL, NULL), 0);
        return;
    }
    /* Shuffled, each entry twice: the unsorted path, with duplicates. */
    size_t n = src->n * 2;
    struct member *v = malloc((n ? n : 1) * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < src->n; i++)
        v[2 * i] = v[2 * i + 1] = src->v[i];
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd() % i;
        struct member t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    ck_assert_int_ge(membership_merge(dst, v, n, NULL, NULL), 0);
    free(v);
}

/* a ∪ b, as a new table. */
static void join_of(struct membership *out, const struct membership *a, const struct membership *b,
                    int way)
{
    copy_table(out, a);
    merge_way(out, b, way);
}

START_TEST(merge_is_commutative)
{
    rng_state = 1;
    for (int it = 0; it < ITERATIONS; it++) {
        struct membership a, b, ab, ba;
        random_table(&a);
        random_table(&b);
        int way = it % 3;
        join_of(&ab, &a, &b, way);
        join_of(&ba, &b, &a, (way + 1) % 3);
        assert_same(&ab, &ba);
        membership_free(&a);
        membership_free(&b);
        membership_free(&ab);
        membership_free(&ba);
    }
}
END_TEST

START_TEST(merge_is_associative)
{
    rng_state = 2;
    for (int it = 0; it < ITERATIONS; it++) {
        struct membership a, b, c, ab, ab_c, bc, a_bc;
        random_table(&a);
        random_table(&b);
        random_table(&c);
        int way = it % 3;
        join_of(&ab, &a, &b, way);
        join_of(&ab_c, &ab, &c, (way + 1) % 3);
        join_of(&bc, &b, &c, (way + 2) % 3);
        join_of(&a_bc, &a, &bc, way);
        assert_same(&ab_c, &a_bc);
        membership_free(&a);
        membership_free(&b);
        membership_free(&c);
        membership_free(&ab);
        membership_free(&ab_c);
        membership_free(&bc);
        membership_free(&a_bc);
    }
}
END_TEST

START_TEST(merge_is_idempotent)
{
    rng_state = 3;
    for (int it = 0; it < ITERATIONS; it++) {
        struct membership a, b, aa, ab, abb;
        random_table(&a);
        random_table(&b);
        int way = it % 3;
        join_of(&aa, &a, &a, way);
        assert_same(&aa, &a);
        join_of(&ab, &a, &b, way);
        join_of(&abb, &ab, &b, (way + 1) % 3);
        assert_same(&abb, &ab);
        /* Nothing changes, and the merge says so. */
        ck_assert_int_eq(membership_merge(&abb, b.v, b.n, NULL, NULL), 0);
        membership_free(&a);
        membership_free(&b);
        membership_free(&aa);
        membership_free(&ab);
        membership_free(&abb);
    }
}
END_TEST

START_TEST(left_wins_a_tie)
{
    struct membership m;
    membership_init(&m);
    struct member alive = entry("a", "h:1", 5, false), left = entry("a", "h:1", 5, true), old;
    ck_assert_int_eq(membership_merge_one(&m, &alive, NULL), MEMBERSHIP_ADDED);
    ck_assert_int_eq(membership_merge_one(&m, &left, &old), MEMBERSHIP_UPDATED);
    ck_assert(!old.left);
    ck_assert(membership_find(&m, "a")->left);
    /* Old gossip saying alive at the same incarnation cannot undo it. */
    ck_assert_int_eq(membership_merge_one(&m, &alive, NULL), MEMBERSHIP_UNCHANGED);
    ck_assert(membership_find(&m, "a")->left);
    ck_assert_int_gt(membership_compare(&left, &alive), 0);
    ck_assert_int_lt(membership_compare(&alive, &left), 0);
    ck_assert_int_eq(membership_compare(&left, &left), 0);
    membership_free(&m);
}
END_TEST

/* Two tombstones of one entry: the one expiring first wins (a forget
 * overrides a leave), none expiring counts as the latest; alive entries
 * carry no expiry. membership_expire() drops exactly the tombstones due. */
START_TEST(earliest_expiry_wins_and_expire_drops)
{
    struct membership m;
    membership_init(&m);
    struct member never = entry("a", "h:1", 5, true), late = never, soon = never;
    late.expires_ms = 9000;
    soon.expires_ms = 3000;
    ck_assert_int_eq(membership_merge_one(&m, &never, NULL), MEMBERSHIP_ADDED);
    ck_assert_int_eq(membership_merge_one(&m, &late, NULL), MEMBERSHIP_UPDATED);
    ck_assert_int_eq(membership_merge_one(&m, &soon, NULL), MEMBERSHIP_UPDATED);
    ck_assert_int_eq(membership_merge_one(&m, &late, NULL), MEMBERSHIP_UNCHANGED);
    ck_assert_int_eq(membership_merge_one(&m, &never, NULL), MEMBERSHIP_UNCHANGED);
    ck_assert_uint_eq(membership_find(&m, "a")->expires_ms, 3000);

    struct member b = entry("b", "h:2", 1, false), c = entry("c", "h:3", 1, true);
    b.expires_ms = 1;                           /* ignored: b is alive */
    c.expires_ms = 4000;
    struct member d = entry("d", "h:4", 1, true);   /* never expires */
    ck_assert_int_eq(membership_merge_one(&m, &b, NULL), MEMBERSHIP_ADDED);
    ck_assert_int_eq(membership_merge_one(&m, &c, NULL), MEMBERSHIP_ADDED);
    ck_assert_int_eq(membership_merge_one(&m, &d, NULL), MEMBERSHIP_ADDED);
    ck_assert_uint_eq(membership_find(&m, "b")->expires_ms, 0);
    ck_assert(!membership_expired(membership_find(&m, "b"), UINT64_MAX));
    ck_assert(membership_expired(&soon, 3000));
    ck_assert(!membership_expired(&soon, 2999));
    uint64_t before = membership_digest(&m);

    ck_assert_uint_eq(membership_expire(&m, 2999, NULL, NULL), 0);
    ck_assert_uint_eq(membership_digest(&m), before);
    ck_assert_uint_eq(membership_expire(&m, 3000, NULL, NULL), 1);
    ck_assert_ptr_null(membership_find(&m, "a"));
    ck_assert_uint_eq(membership_expire(&m, UINT64_MAX - 1, NULL, NULL), 1);
    ck_assert_ptr_null(membership_find(&m, "c"));
    ck_assert_uint_eq(m.n, 2);
    ck_assert_ptr_nonnull(membership_find(&m, "b"));
    ck_assert_ptr_nonnull(membership_find(&m, "d"));
    ck_assert_str_eq(m.v[0].name, "b");          /* still sorted */
    ck_assert_str_eq(m.v[1].name, "d");
    membership_free(&m);
}
END_TEST

START_TEST(higher_incarnation_wins)
{
    struct membership m;
    membership_init(&m);
    struct member left = entry("a", "h:1", 5, true), back = entry("a", "h:1", 6, false);
    struct member stale = entry("a", "h:1", 4, false);
    membership_merge_one(&m, &left, NULL);
    ck_assert_int_eq(membership_merge_one(&m, &stale, NULL), MEMBERSHIP_UNCHANGED);
    ck_assert_int_eq(membership_merge_one(&m, &back, NULL), MEMBERSHIP_UPDATED);
    const struct member *f = membership_find(&m, "a");
    ck_assert(!f->left);
    ck_assert_uint_eq(f->incarnation, 6);
    ck_assert_int_eq(membership_merge_one(&m, &left, NULL), MEMBERSHIP_UNCHANGED);
    ck_assert_uint_eq(membership_alive_count(&m), 1);
    membership_free(&m);
}
END_TEST

START_TEST(address_move_with_higher_incarnation)
{
    struct membership m;
    membership_init(&m);
    struct member before = entry("web1", "10.0.0.1:7000", 3, false);
    struct member moved = entry("web1", "10.0.0.9:7000", 4, false), old;
    membership_merge_one(&m, &before, NULL);
    ck_assert_int_eq(membership_merge_one(&m, &moved, &old), MEMBERSHIP_UPDATED);
    ck_assert_str_eq(old.address, "10.0.0.1:7000");
    ck_assert_uint_eq(old.incarnation, 3);
    const struct member *f = membership_find(&m, "web1");
    ck_assert_str_eq(f->address, "10.0.0.9:7000");
    ck_assert_uint_eq(f->incarnation, 4);
    ck_assert_uint_eq(m.n, 1);  /* the same member, moved: not a second one */
    /* The old address at the old incarnation is history. */
    ck_assert_int_eq(membership_merge_one(&m, &before, NULL), MEMBERSHIP_UNCHANGED);
    membership_free(&m);
}
END_TEST

struct seen {
    int added, updated;
    struct member last_old;
};

static void count_change(void *ctx, enum membership_change what, const struct member *now,
                         const struct member *old)
{
    struct seen *s = ctx;
    ck_assert_ptr_nonnull(now);
    if (what == MEMBERSHIP_ADDED) {
        s->added++;
        ck_assert_str_eq(old->name, "");
    } else {
        s->updated++;
        ck_assert_str_eq(old->name, now->name);
        s->last_old = *old;
    }
}

START_TEST(merge_reports_changes)
{
    struct membership m;
    membership_init(&m);
    struct member v[] = {
        entry("b", "h:2", 1, false),
        entry("a", "h:1", 1, false),
        entry("c", "h:3", 1, false),
    };
    struct seen s = { 0 };
    ck_assert_int_eq(membership_merge(&m, v, 3, count_change, &s), 3);
    ck_assert_int_eq(s.added, 3);
    struct member w[] = { entry("a", "h:1", 2, false), entry("b", "h:2", 1, false), entry("d", "h:4", 1, true) };
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(membership_merge(&m, w, 3, count_change, &s), 2);
    ck_assert_int_eq(s.added, 1);
    ck_assert_int_eq(s.updated, 1);
    ck_assert_uint_eq(s.last_old.incarnation, 1);
    ck_assert_uint_eq(m.n, 4);
    ck_assert_uint_eq(membership_alive_count(&m), 3);
    membership_free(&m);
}
END_TEST

/* A name given more than once in one unsorted batch (a peer's encoder may
 * repeat one) is one change, from the table's entry to the greatest given:
 * reported once, so applications see no spurious second left or joined. */
START_TEST(duplicate_names_change_once)
{
    struct membership m;
    membership_init(&m);
    struct member a = entry("a", "h:1", 1, false);
    ck_assert_int_eq(membership_merge_one(&m, &a, NULL), MEMBERSHIP_ADDED);
    struct member w[] = {
        entry("a", "h:1", 1, true), entry("b", "h:2", 1, false),
        entry("a", "h:1", 2, false), entry("b", "h:2", 1, true),
    };
    struct seen s = { 0 };
    ck_assert_int_eq(membership_merge(&m, w, 4, count_change, &s), 2);
    ck_assert_int_eq(s.updated, 1);
    ck_assert_int_eq(s.added, 1);
    ck_assert_uint_eq(s.last_old.incarnation, 1);
    ck_assert(!s.last_old.left);
    ck_assert_uint_eq(m.n, 2);
    ck_assert_uint_eq(membership_find(&m, "a")->incarnation, 2);
    ck_assert(membership_find(&m, "b")->left);
    membership_free(&m);
}
END_TEST

START_TEST(digest_is_order_independent)
{
    rng_state = 4;
    for (int it = 0; it < ITERATIONS; it++) {
        struct member v[40];
        size_t n = 1 + rnd() % 40;
        for (size_t i = 0; i < n; i++)
            v[i] = random_entry();
        struct membership a, b;
        membership_init(&a);
        membership_init(&b);
        for (size_t i = 0; i < n; i++)
            membership_merge_one(&a, &v[i], NULL);
        for (size_t i = n; i-- > 0;)
            membership_merge_one(&b, &v[i], NULL);
        assert_same(&a, &b);
        /* One changed entry changes the digest. */
        uint64_t d = membership_digest(&a);
        struct member bump = a.v[rnd() % a.n];
        bump.incarnation++;
        membership_merge_one(&a, &bump, NULL);
        ck_assert_uint_ne(membership_digest(&a), d);
        membership_free(&a);
        membership_free(&b);
    }
    struct membership e1, e2;
    membership_init(&e1);
    membership_init(&e2);
    ck_assert_uint_eq(membership_digest(&e1), membership_digest(&e2));
}
END_TEST

START_TEST(find_and_alive_count)
{
    struct membership m;
    membership_init(&m);
    ck_assert_ptr_null(membership_find(&m, "x"));
    ck_assert_uint_eq(membership_alive_count(&m), 0);
    struct member a = entry("x", "h:1", 1, false), b = entry("y", "h:2", 1, true);
    struct member c = entry("z", "h:3", 1, false);
    membership_merge_one(&m, &c, NULL);
    membership_merge_one(&m, &a, NULL);
    membership_merge_one(&m, &b, NULL);
    ck_assert_str_eq(membership_find(&m, "y")->address, "h:2");
    ck_assert_ptr_null(membership_find(&m, "w"));
    ck_assert_ptr_null(membership_find(&m, "xx"));
    ck_assert_uint_eq(membership_alive_count(&m), 2);
    ck_assert_uint_eq(m.n, 3);
    membership_free(&m);
}
END_TEST

START_TEST(bad_entries_are_skipped)
{
    struct membership m;
    membership_init(&m);
    struct member unnamed = entry("", "h:1", 1, false);
    struct member unterminated = entry("a", "h:1", 1, false);
    memset(unterminated.name, 'a', sizeof unterminated.name);
    struct member good = entry("ok", "h:1", 1, false);
    struct member v[] = { unnamed, unterminated, good };
    ck_assert_int_eq(membership_merge(&m, v, 3, NULL, NULL), 1);
    ck_assert_int_eq(membership_merge_one(&m, &unterminated, NULL), MEMBERSHIP_UNCHANGED);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_str_eq(m.v[0].name, "ok");
    membership_free(&m);
}
END_TEST

START_TEST(many_entries_stay_sorted)
{
    rng_state = 5;
    enum { N = 5000 };
    struct member *v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "host-%08x-%zu", (unsigned)rnd(), i);
        v[i] = entry(name, "10.1.2.3:7000", rnd() % 10, rnd() % 5 == 0);
    }
    struct membership one, bulk;
    membership_init(&one);
    membership_init(&bulk);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(membership_merge_one(&one, &v[i], NULL), MEMBERSHIP_ADDED);
    ck_assert_int_eq(membership_merge(&bulk, v, N, NULL, NULL), N);
    ck_assert_uint_eq(one.n, N);
    assert_same(&one, &bulk);
    for (size_t i = 0; i < N; i++)
        ck_assert_ptr_nonnull(membership_find(&one, v[i].name));
    /* Merging the sorted table into a half-filled one: the linear path. */
    struct membership half;
    membership_init(&half);
    ck_assert_int_eq(membership_merge(&half, v, N / 2, NULL, NULL), N / 2);
    ck_assert_int_eq(membership_merge(&half, one.v, one.n, NULL, NULL), N - N / 2);
    assert_same(&half, &one);
    membership_free(&one);
    membership_free(&bulk);
    membership_free(&half);
    free(v);
}
END_TEST

START_TEST(peer_tokens_are_checked)
{
    ck_assert(membership_token_valid("node-1", 255));
    ck_assert(membership_token_valid("[::1]:10200", 299));
    ck_assert(!membership_token_valid("", 255));
    ck_assert(!membership_token_valid("two words", 255));
    ck_assert(!membership_token_valid("line\nbreak", 255));
    ck_assert(!membership_token_valid("esc\x1b[31m", 255));
    ck_assert(!membership_token_valid("caf\xc3\xa9", 255));
    ck_assert(membership_token_valid("abc", 3));
    ck_assert(!membership_token_valid("abcd", 3));
}
END_TEST

static Suite *membership_suite(void)
{
    Suite *s = suite_create("membership");
    TCase *laws = tcase_create("crdt laws");
    tcase_add_test(laws, merge_is_commutative);
    tcase_add_test(laws, peer_tokens_are_checked);
    tcase_add_test(laws, merge_is_associative);
    tcase_add_test(laws, merge_is_idempotent);
    tcase_add_test(laws, digest_is_order_independent);
    tcase_set_timeout(laws, 60);
    suite_add_tcase(s, laws);
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, left_wins_a_tie);
    tcase_add_test(rules, higher_incarnation_wins);
    tcase_add_test(rules, earliest_expiry_wins_and_expire_drops);
    tcase_add_test(rules, address_move_with_higher_incarnation);
    tcase_add_test(rules, merge_reports_changes);
    tcase_add_test(rules, duplicate_names_change_once);
    tcase_add_test(rules, find_and_alive_count);
    tcase_add_test(rules, bad_entries_are_skipped);
    tcase_add_test(rules, many_entries_stay_sorted);
    tcase_set_timeout(rules, 60);
    suite_add_tcase(s, rules);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(membership_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
