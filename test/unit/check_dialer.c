/* check_dialer: the shared dialling policy (daemon/dialer.c): the delays a
 * node waits between dials of an unreachable peer, and which seed a
 * connection answers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialer.h"

START_TEST(jitter_stays_within_a_quarter)
{
    for (uint64_t r = 0; r < 5000; r += 7) {
        uint64_t j = dial_jitter(1000, r * 0x9e3779b97f4a7c15ULL);
        ck_assert_uint_ge(j, 750);
        ck_assert_uint_le(j, 1250);
    }
    ck_assert_uint_eq(dial_jitter(1, 12345), 1);     /* too small to spread, never 0 */
    /* Different random numbers give different delays: no lockstep. */
    ck_assert_uint_ne(dial_jitter(1000, 1), dial_jitter(1000, 2));
}
END_TEST

START_TEST(backoff_doubles_up_to_the_cap)
{
    struct dial_policy p = { 100, 1000 };
    uint32_t b = p.backoff_initial_ms, seen[8];
    for (int i = 0; i < 8; i++) {
        seen[i] = b;
        b = dial_next_backoff(&p, b);
    }
    ck_assert_uint_eq(seen[0], 100);
    ck_assert_uint_eq(seen[1], 200);
    ck_assert_uint_eq(seen[3], 800);
    ck_assert_uint_eq(seen[4], 1000);
    ck_assert_uint_eq(seen[7], 1000);
    ck_assert_uint_eq(dial_next_backoff(&p, UINT32_MAX), 1000);    /* no overflow */
    struct dial_policy bad = { 0, 0 };
    dial_policy_normalise(&bad);
    ck_assert_uint_eq(bad.backoff_initial_ms, 1);
    ck_assert_uint_eq(bad.backoff_max_ms, 1);
}
END_TEST

START_TEST(seeds_dedupe_know_self_and_back_off)
{
    struct dial_policy p = { 100, 400 };
    struct dial_seeds s = { 0 };
    struct dial_seed *a = dial_seeds_add(&s, &p, "10.0.0.1:7000", "10.0.0.9:7000");
    ck_assert_ptr_nonnull(a);
    ck_assert(!a->is_self);
    ck_assert_ptr_eq(dial_seeds_add(&s, &p, "10.0.0.1:7000", "10.0.0.9:7000"), a);
    ck_assert(dial_seeds_add(&s, &p, "10.0.0.9:7000", "10.0.0.9:7000")->is_self);
    for (int i = 0; i < 10; i++) {       /* growth keeps what is there */
        char addr[32];
        snprintf(addr, sizeof addr, "10.0.1.%d:7000", i);
        ck_assert_ptr_nonnull(dial_seeds_add(&s, &p, addr, NULL));
    }
    ck_assert_uint_eq(s.n, 12);
    a = dial_seeds_find(&s, "10.0.0.1:7000");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(dial_seeds_find(&s, "10.0.0.2:7000"));

    dial_seed_started(a, 1000);
    ck_assert(dial_seeds_dialling_at(&s, "10.0.0.1:7000"));
    dial_seed_failed(a, &p, 2000, 0);
    ck_assert(!dial_seeds_dialling_at(&s, "10.0.0.1:7000"));
    ck_assert_uint_ge(a->next_dial, 2000 + 75);
    ck_assert_uint_le(a->next_dial, 2000 + 125);
    ck_assert_uint_eq(a->backoff, 200);
    dial_seed_failed(a, &p, 3000, 0);
    dial_seed_failed(a, &p, 4000, 0);
    ck_assert_uint_eq(a->backoff, 400);
    dial_seeds_free(&s);
    ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(a_connection_answers_its_own_seed_else_the_oldest_dial)
{
    struct dial_policy p = { 100, 400 };
    struct dial_seeds s = { 0 };
    struct dial_seed *a = dial_seeds_add(&s, &p, "a:1", NULL);
    struct dial_seed *b = dial_seeds_add(&s, &p, "b:1", NULL);
    struct dial_seed *c = dial_seeds_add(&s, &p, "c:1", NULL);
    ck_assert_ptr_null(dial_seeds_for_connection(&s, "a:1"));     /* nothing in flight */
    dial_seed_started(c, 50);
    dial_seed_started(b, 10);
    dial_seed_started(a, 90);
    ck_assert_ptr_eq(dial_seeds_for_connection(&s, "a:1"), a);
    /* Another spelling of an address: the oldest dial in flight. */
    ck_assert_ptr_eq(dial_seeds_for_connection(&s, "localhost:1"), b);
    dial_seeds_free(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dialer");
    TCase *t = tcase_create("policy");
    tcase_add_test(t, jitter_stays_within_a_quarter);
    tcase_add_test(t, backoff_doubles_up_to_the_cap);
    tcase_add_test(t, seeds_dedupe_know_self_and_back_off);
    tcase_add_test(t, a_connection_answers_its_own_seed_else_the_oldest_dial);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
