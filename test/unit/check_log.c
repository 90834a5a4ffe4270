/* Logging: one line per call, and a flood of info/warn lines is cut to the
 * rate limit with the excess counted rather than silently lost. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs fn with stderr sent to a temporary file; returns the file's text. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/partisan-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    ck_assert_int_eq(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return text;
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void flood(void)
{
    log_set_level(LOG_INFO);
    for (int i = 0; i < 3 * LOG_RATE_PER_S; i++)
        log_warn("bad frame from peer %d", i);
    log_error("errors are never limited");
    usleep(1100 * 1000);
    log_info("after the flood");
}

START_TEST(flood_is_limited_and_counted)
{
    char *text = capture(flood);
    ck_assert_uint_le(count(text, "bad frame from peer"), LOG_RATE_PER_S);
    ck_assert_uint_ge(count(text, "bad frame from peer"), LOG_RATE_PER_S / 2);
    ck_assert_uint_eq(count(text, "errors are never limited"), 1);
    ck_assert_ptr_nonnull(strstr(text, "lines suppressed"));
    ck_assert_ptr_nonnull(strstr(text, "after the flood"));
    /* Every line is whole. */
    ck_assert_uint_eq(count(text, "\n"), count(text, "partisand["));
    free(text);
}
END_TEST

static void levels(void)
{
    log_set_level(LOG_WARN);
    log_info("hidden");
    log_debug("hidden too");
    log_warn("shown");
}

START_TEST(level_filters)
{
    char *text = capture(levels);
    ck_assert_ptr_null(strstr(text, "hidden"));
    ck_assert_ptr_nonnull(strstr(text, "warn: shown"));
    free(text);
    enum log_level l;
    ck_assert_int_eq(log_parse_level("debug", &l), 0);
    ck_assert_int_eq(l, LOG_DEBUG);
    ck_assert_int_eq(log_parse_level("loud", &l), -1);
}
END_TEST

int main(void)
{
    unsetenv("JOURNAL_STREAM");
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, flood_is_limited_and_counted);
    tcase_add_test(tc, level_filters);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
