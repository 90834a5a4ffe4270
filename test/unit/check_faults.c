/* check_faults: the fault-injection decision core (daemon/faults.c): the
 * rule grammar and its errors, what each rule decides for a frame and how
 * it is counted, the JSON config, and that every bit flip it makes after
 * the checksum is caught by the receiver's CRC-32C (proto/frame.c). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "frame.h"

static uint64_t rng_state;
static uint64_t rnd(void *ctx)
{
    uint64_t *s = ctx;
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static char out[8192];

static int cmd(struct faults *f, const char *line)
{
    out[0] = 0;
    return faults_command_line(f, line, out, sizeof out);
}

static void expect_error(const char *line, const char *needle)
{
    struct faults *f = faults_new("n1");
    ck_assert_msg(cmd(f, line) == -1, "\"%s\" was accepted", line);
    ck_assert_msg(strstr(out, needle) != NULL, "\"%s\": error \"%s\" does not say \"%s\"", line, out, needle);
    ck_assert_uint_eq(faults_count(f), 0);
    faults_free(f);
}

static struct faults_action decide(struct faults *f, enum faults_dir dir, const char *peer, const char *ch,
                                   uint64_t now)
{
    struct faults_action a;
    faults_decide(f, dir, peer, ch, 100, 4, now, rnd, &rng_state, &a);
    return a;
}

START_TEST(grammar_round_trips_through_list)
{
    struct faults *f = faults_new("n1");
    const char *rules[] = {
        "drop --peer node2 --channel orders 0.2",
        "delay --peer node2 50ms --jitter 20ms",
        "duplicate 0.05",
        "reorder 0.1",
        "reorder 0.1 --by 2s",
        "corrupt 0.01",
        "corrupt --channel control 0.5 --bits 3",
        "partition node1,node2 node3,node4",
    };
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
        ck_assert_msg(cmd(f, rules[i]) == 0, "%s: %s", rules[i], out);
        ck_assert_msg(strstr(out, rules[i]) != NULL, "reply \"%s\" does not echo \"%s\"", out, rules[i]);
    }
    ck_assert_uint_eq(faults_count(f), 8);
    ck_assert_int_eq(cmd(f, "list"), 0);
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
        ck_assert_msg(strstr(out, rules[i]) != NULL, "list lacks \"%s\":\n%s", rules[i], out);
    /* Percentages and seconds are accepted and written back plainly. */
    ck_assert_int_eq(cmd(f, "drop 20%"), 0);
    ck_assert_ptr_nonnull(strstr(out, "drop 0.2"));
    ck_assert_int_eq(cmd(f, "delay 1.5s"), 0);
    ck_assert_ptr_nonnull(strstr(out, "delay 1500ms"));
    ck_assert_int_eq(cmd(f, "clear 2"), 0);
    ck_assert_uint_eq(faults_count(f), 9);
    ck_assert_int_eq(cmd(f, "clear 2"), -1);
    ck_assert_ptr_nonnull(strstr(out, "no fault 2"));
    ck_assert_int_eq(cmd(f, "clear"), 0);
    ck_assert_uint_eq(faults_count(f), 0);
    ck_assert_int_eq(cmd(f, "list"), 0);
    ck_assert_str_eq(out, "no faults\n");
    faults_free(f);
}
END_TEST

START_TEST(bad_input_says_why)
{
    expect_error("", "no fault given");
    expect_error("explode 0.5", "unknown fault \"explode\"");
    expect_error("drop", "drop needs a probability");
    expect_error("drop 1.5", "out of range");
    expect_error("drop abc", "not a probability");
    expect_error("drop 0.1 0.2", "unexpected \"0.2\"");
    expect_error("drop --peer", "--peer needs a value");
    expect_error("drop --jitter 5ms 0.1", "unknown option --jitter for drop");
    expect_error("drop --bogus x 0.1", "unknown option --bogus");
    expect_error("delay 50", "needs a unit");
    expect_error("delay", "delay needs a duration");
    expect_error("delay 50ms --jitter 5", "needs a unit");
    expect_error("delay 1000s", "longer than the limit");
    expect_error("reorder 0.1 --by 0ms", "reorder nothing");
    expect_error("corrupt 0.1 --bits 0", "--bits");
    expect_error("corrupt 0.1 --bits 99", "--bits");
    expect_error("partition node1", "two groups");
    expect_error("partition node1,node2 node2,node3", "node2 is in both");
    expect_error("partition node1,,node2 node3", "empty node name");
    expect_error("partition --peer x a b", "takes no --peer");
    expect_error("list --yaml", "usage: list");
    expect_error("clear x", "usage: clear");
}
END_TEST

START_TEST(rule_limit)
{
    struct faults *f = faults_new("n1");
    for (unsigned i = 0; i < FAULTS_MAX_RULES; i++)
        ck_assert_int_eq(cmd(f, "drop 0"), 0);
    ck_assert_int_eq(cmd(f, "drop 0"), -1);
    ck_assert_ptr_nonnull(strstr(out, "limit"));
    faults_free(f);
}
END_TEST

START_TEST(drop_matches_peer_and_channel_and_counts)
{
    struct faults *f = faults_new("n1");
    ck_assert_int_eq(cmd(f, "drop --peer n2 --channel orders 1"), 0);
    ck_assert(decide(f, FAULTS_OUT, "n2", "orders", 0).drop);
    ck_assert(!decide(f, FAULTS_OUT, "n3", "orders", 0).drop);
    ck_assert(!decide(f, FAULTS_OUT, "n2", "control", 0).drop);
    ck_assert(!decide(f, FAULTS_IN, "n2", "orders", 0).drop);   /* only partitions judge incoming */
    const struct faults_rule *r = faults_rule_at(f, 0);
    ck_assert_uint_eq(r->seen, 1);
    ck_assert_uint_eq(r->applied, 1);
    ck_assert_uint_eq(faults_total(f, FAULT_DROP), 1);
    faults_free(f);
}
END_TEST

START_TEST(drop_probability_is_honoured)
{
    struct faults *f = faults_new("n1");
    rng_state = 42;
    ck_assert_int_eq(cmd(f, "drop 0.2"), 0);
    int dropped = 0;
    for (int i = 0; i < 100000; i++)
        dropped += decide(f, FAULTS_OUT, "n2", "orders", 0).drop;
    ck_assert_int_gt(dropped, 19000);
    ck_assert_int_lt(dropped, 21000);
    ck_assert_uint_eq(faults_rule_at(f, 0)->applied, (uint64_t)dropped);
    ck_assert_uint_eq(faults_rule_at(f, 0)->seen, 100000);
    faults_free(f);
}
END_TEST

START_TEST(pings_can_be_paused_on_the_control_channel)
{
    struct faults *f = faults_new("n1");
    ck_assert_int_eq(cmd(f, "drop --channel control 1"), 0);
    ck_assert(decide(f, FAULTS_OUT, "n2", FAULTS_CONTROL_CHANNEL, 0).drop);
    ck_assert(!decide(f, FAULTS_OUT, "n2", "orders", 0).drop);
    faults_free(f);
}
END_TEST

START_TEST(partition_cuts_both_directions_between_groups_only)
{
    struct faults *f = faults_new("n1");
    ck_assert_int_eq(cmd(f, "partition n1,n2 n3,n4"), 0);
    ck_assert(decide(f, FAULTS_OUT, "n3", "orders", 0).drop);
    ck_assert(decide(f, FAULTS_IN, "n4", "control", 0).drop);
    ck_assert(!decide(f, FAULTS_OUT, "n2", "orders", 0).drop);    /* same side */
    ck_assert(!decide(f, FAULTS_OUT, "n5", "orders", 0).drop);    /* in neither group */
    ck_assert_uint_eq(faults_total(f, FAULT_PARTITION), 2);
    faults_free(f);
    /* A node in neither group is not affected by it at all. */
    f = faults_new("n9");
    ck_assert_int_eq(cmd(f, "partition n1,n2 n3,n4"), 0);
    ck_assert(!decide(f, FAULTS_OUT, "n3", "orders", 0).drop);
    faults_free(f);
}
END_TEST

START_TEST(delay_and_jitter_bounds)
{
    struct faults *f = faults_new("n1");
    rng_state = 7;
    ck_assert_int_eq(cmd(f, "delay --peer n2 50ms --jitter 20ms"), 0);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        struct faults_action a = decide(f, FAULTS_OUT, "n2", "orders", 1000);
        ck_assert(!a.drop);
        if (a.deliver_at < lo)
            lo = a.deliver_at;
        if (a.deliver_at > hi)
            hi = a.deliver_at;
    }
    ck_assert_uint_eq(lo, 1030);
    ck_assert_uint_eq(hi, 1070);
    ck_assert_uint_eq(decide(f, FAULTS_OUT, "n3", "orders", 1000).deliver_at, 1000);
    faults_free(f);
}
END_TEST

START_TEST(duplicate_and_reorder)
{
    struct faults *f = faults_new("n1");
    ck_assert_int_eq(cmd(f, "duplicate 1"), 0);
    ck_assert_int_eq(cmd(f, "reorder 1 --by 30ms"), 0);
    struct faults_action a = decide(f, FAULTS_OUT, "n2", "orders", 500);
    ck_assert(a.duplicate);
    ck_assert_uint_eq(a.deliver_at, 530);
    ck_assert_uint_eq(faults_total(f, FAULT_DUPLICATE), 1);
    ck_assert_uint_eq(faults_total(f, FAULT_REORDER), 1);
    faults_free(f);
}
END_TEST

START_TEST(drop_ends_the_evaluation)
{
    struct faults *f = faults_new("n1");
    ck_assert_int_eq(cmd(f, "drop 1"), 0);
    ck_assert_int_eq(cmd(f, "duplicate 1"), 0);
    struct faults_action a = decide(f, FAULTS_OUT, "n2", "orders", 0);
    ck_assert(a.drop);
    ck_assert(!a.duplicate);
    ck_assert_uint_eq(faults_rule_at(f, 1)->seen, 0);
    faults_free(f);
}
END_TEST

/* Every corruption the core makes lies past the protected length prefix,
 * and the receiver's CRC-32C over the body catches every one. */
START_TEST(every_bit_flip_is_caught_by_the_checksum)
{
    struct faults *f = faults_new("n1");
    rng_state = 99;
    ck_assert_int_eq(cmd(f, "corrupt 1 --bits 3"), 0);
    uint8_t frame[512];
    int caught = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = 9 + (size_t)(rnd(&rng_state) % (sizeof frame - 9));
        for (size_t j = 8; j < len; j++)
            frame[j] = (uint8_t)rnd(&rng_state);
        uint32_t crc = frame_crc32c(0, frame + 8, len - 8);
        frame[0] = (uint8_t)(len >> 24); frame[1] = (uint8_t)(len >> 16);
        frame[2] = (uint8_t)(len >> 8);  frame[3] = (uint8_t)len;
        frame[4] = (uint8_t)(crc >> 24); frame[5] = (uint8_t)(crc >> 16);
        frame[6] = (uint8_t)(crc >> 8);  frame[7] = (uint8_t)crc;
        uint8_t copy[512];
        memcpy(copy, frame, len);
        struct faults_action a;
        faults_decide(f, FAULTS_OUT, "n2", "orders", len, 4, 0, rnd, &rng_state, &a);
        ck_assert_uint_eq(a.nflips, 3);
        for (size_t k = 0; k < a.nflips; k++) {
            ck_assert_uint_ge(a.flips[k], 4 * 8);
            ck_assert_uint_lt(a.flips[k], len * 8);
            for (size_t m = 0; m < k; m++)
                ck_assert_uint_ne(a.flips[k], a.flips[m]);
        }
        faults_apply_flips(&a, frame, len);
        ck_assert(memcmp(frame, copy, 4) == 0);   /* still framed */
        uint32_t stored = (uint32_t)frame[4] << 24 | (uint32_t)frame[5] << 16 | (uint32_t)frame[6] << 8 | frame[7];
        caught += frame_crc32c(0, frame + 8, len - 8) != stored;
    }
    ck_assert_int_eq(caught, 20000);
    ck_assert_uint_eq(faults_total(f, FAULT_CORRUPT), 20000);
    faults_free(f);
}
END_TEST

START_TEST(corrupt_with_nothing_to_flip)
{
    struct faults *f = faults_new("n1");
    ck_assert_int_eq(cmd(f, "corrupt 1"), 0);
    struct faults_action a;
    faults_decide(f, FAULTS_OUT, "n2", "orders", 4, 4, 0, rnd, &rng_state, &a);
    ck_assert_uint_eq(a.nflips, 0);
    ck_assert_uint_eq(faults_total(f, FAULT_CORRUPT), 0);
    faults_free(f);
}
END_TEST

START_TEST(warning_once_a_minute_while_active)
{
    struct faults *f = faults_new("n1");
    ck_assert(!faults_warn_due(f, 0));
    ck_assert_int_eq(cmd(f, "drop 0.1"), 0);
    ck_assert(faults_warn_due(f, 1000));
    ck_assert(!faults_warn_due(f, 2000));
    ck_assert(!faults_warn_due(f, 1000 + FAULTS_WARN_INTERVAL_MS - 1));
    ck_assert(faults_warn_due(f, 1000 + FAULTS_WARN_INTERVAL_MS));
    ck_assert_int_eq(cmd(f, "clear"), 0);
    ck_assert(!faults_warn_due(f, 1000 + 3 * FAULTS_WARN_INTERVAL_MS));
    ck_assert_int_eq(cmd(f, "drop 0.1"), 0);
    ck_assert(faults_warn_due(f, 1000 + 3 * FAULTS_WARN_INTERVAL_MS + 1));   /* loud at once again */
    faults_free(f);
}
END_TEST

static int load(struct faults *f, const char *text, bool *enabled, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    ck_assert_msg(j != NULL, "bad test JSON: %s", je.text);
    int rc = faults_config_load(f, j, enabled, err, errlen);
    json_decref(j);
    return rc;
}

static void expect_config_error(const char *text, const char *needle)
{
    struct faults *f = faults_new("n1");
    char err[512] = "";
    bool en = true;
    ck_assert_msg(load(f, text, &en, err, sizeof err) == -1, "accepted: %s", text);
    ck_assert_msg(strstr(err, needle) != NULL, "%s: error \"%s\" does not say \"%s\"", text, err, needle);
    ck_assert_uint_eq(faults_count(f), 0);
    ck_assert(!en);
    faults_free(f);
}

START_TEST(config_refuses_rules_unless_enabled)
{
    expect_config_error("{\"rules\": [\"drop 0.1\"]}", "faults.enabled: is absent but faults.rules has 1 rule");
    expect_config_error("{\"enabled\": false, \"rules\": [{\"type\": \"drop\", \"probability\": 0.1}]}",
                        "faults.enabled: is false");
    /* Enabled with no rules, or disabled with none, is fine. */
    struct faults *f = faults_new("n1");
    char err[512];
    bool en;
    ck_assert_int_eq(load(f, "{\"enabled\": false}", &en, err, sizeof err), 0);
    ck_assert(!en);
    ck_assert_int_eq(load(f, "{\"enabled\": true, \"rules\": []}", &en, err, sizeof err), 0);
    ck_assert(en);
    ck_assert_int_eq(faults_config_load(f, NULL, &en, err, sizeof err), 0);
    ck_assert(!en);
    faults_free(f);
}
END_TEST

START_TEST(config_errors_name_the_key)
{
    expect_config_error("[]", "faults: expected an object");
    expect_config_error("{\"enabled\": 1}", "faults.enabled: expected true or false");
    expect_config_error("{\"enable\": true}", "faults.enable: unknown key");
    expect_config_error("{\"enabled\": true, \"rules\": {}}", "faults.rules: expected an array");
    expect_config_error("{\"enabled\": true, \"rules\": [3]}", "faults.rules[0]: expected a rule");
    expect_config_error("{\"enabled\": true, \"rules\": [\"drop 0.1\", \"drop 7\"]}", "faults.rules[1]: probability 7");
    expect_config_error("{\"enabled\": true, \"rules\": [\"list\"]}", "faults.rules[0]");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"probability\": 0.1}]}", "faults.rules[0]: a rule needs \"type\"");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"drop\", \"probabilty\": 0.1}]}",
                        "faults.rules[0].probabilty: unknown key for a drop rule");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"drop\", \"probability\": 2}]}",
                        "faults.rules[0].probability: expected a number from 0 to 1");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"delay\"}]}", "needs \"delay_ms\"");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"delay\", \"delay_ms\": -1}]}",
                        "faults.rules[0].delay_ms: expected milliseconds");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"partition\", \"groups\": [[\"a\"]]}]}",
                        "faults.rules[0].groups: expected two groups");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"partition\", \"groups\": [[\"a\"], [\"a\"]]}]}",
                        "a is in both");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"partition\", \"groups\": [[\"a\"], [7]]}]}",
                        "faults.rules[0].groups[1][0]: expected a string");
    expect_config_error("{\"enabled\": true, \"rules\": [{\"type\": \"drop\", \"peer\": \"\", \"probability\": 0}]}",
                        "faults.rules[0].peer");
}
END_TEST

START_TEST(config_json_round_trip)
{
    struct faults *f = faults_new("n1");
    char err[512] = "";
    bool en = false;
    const char *cfg = "{\"enabled\": true, \"rules\": ["
                      "{\"type\": \"drop\", \"peer\": \"n2\", \"channel\": \"orders\", \"probability\": 0.2},"
                      "{\"type\": \"delay\", \"delay_ms\": 50, \"jitter_ms\": 20},"
                      "{\"type\": \"reorder\", \"probability\": 0.1, \"by_ms\": 40},"
                      "{\"type\": \"corrupt\", \"probability\": 0.01, \"bits\": 2},"
                      "{\"type\": \"partition\", \"groups\": [[\"n1\", \"n2\"], [\"n3\"]]},"
                      "\"duplicate --peer n3 0.05\"]}";
    ck_assert_msg(load(f, cfg, &en, err, sizeof err) == 0, "%s", err);
    ck_assert(en);
    ck_assert_uint_eq(faults_count(f), 6);
    json_t *j = faults_to_json(f);
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(json_array_size(j), 6);
    /* What list --json writes loads back as the same rules (less its counters). */
    size_t i;
    json_t *r;
    json_array_foreach(j, i, r) {
        ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), (json_int_t)i + 1);
        ck_assert_ptr_nonnull(json_object_get(r, "seen"));
        json_object_del(r, "id");
        json_object_del(r, "seen");
        json_object_del(r, "applied");
    }
    json_t *sec = json_pack("{s:b, s:O}", "enabled", 1, "rules", j);
    struct faults *g = faults_new("n1");
    ck_assert_msg(faults_config_load(g, sec, &en, err, sizeof err) == 0, "%s", err);
    char a[4096], b[4096];
    faults_list_text(f, a, sizeof a);
    faults_list_text(g, b, sizeof b);
    ck_assert_str_eq(a, b);
    json_decref(sec);
    json_decref(j);
    faults_free(g);
    faults_free(f);
}
END_TEST

START_TEST(list_json_has_counters)
{
    struct faults *f = faults_new("n1");
    ck_assert_int_eq(cmd(f, "drop --peer n2 1"), 0);
    decide(f, FAULTS_OUT, "n2", "orders", 0);
    ck_assert_int_eq(cmd(f, "list --json"), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    ck_assert_ptr_nonnull(j);
    json_t *r = json_array_get(j, 0);
    ck_assert_str_eq(json_string_value(json_object_get(r, "type")), "drop");
    ck_assert_str_eq(json_string_value(json_object_get(r, "peer")), "n2");
    ck_assert_int_eq(json_integer_value(json_object_get(r, "applied")), 1);
    ck_assert(fabs(json_number_value(json_object_get(r, "probability")) - 1.0) < 1e-9);
    json_decref(j);
    faults_free(f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("faults");
    TCase *t = tcase_create("core");
    tcase_add_test(t, grammar_round_trips_through_list);
    tcase_add_test(t, bad_input_says_why);
    tcase_add_test(t, rule_limit);
    tcase_add_test(t, drop_matches_peer_and_channel_and_counts);
    tcase_add_test(t, drop_probability_is_honoured);
    tcase_add_test(t, pings_can_be_paused_on_the_control_channel);
    tcase_add_test(t, partition_cuts_both_directions_between_groups_only);
    tcase_add_test(t, delay_and_jitter_bounds);
    tcase_add_test(t, duplicate_and_reorder);
    tcase_add_test(t, drop_ends_the_evaluation);
    tcase_add_test(t, every_bit_flip_is_caught_by_the_checksum);
    tcase_add_test(t, corrupt_with_nothing_to_flip);
    tcase_add_test(t, warning_once_a_minute_while_active);
    tcase_add_test(t, config_refuses_rules_unless_enabled);
    tcase_add_test(t, config_errors_name_the_key);
    tcase_add_test(t, config_json_round_trip);
    tcase_add_test(t, list_json_has_counters);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
