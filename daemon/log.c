#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level current = LOG_INFO;

static const char *const names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level) { current = level; }
enum log_level log_get_level(void) { return current; }

const char *log_level_name(enum log_level level)
{
    return (unsigned)level < 4 ? names[level] : "?";
}

int log_parse_level(const char *text, enum log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

static void emit(enum log_level level, const char *fmt, va_list ap)
{
    /* One write per line so lines of concurrent daemons sharing a terminal
     * never interleave mid-line. The "<N>" prefix is the syslog priority
     * journald understands. */
    static const int prio[] = { 7, 6, 4, 3 };
    static int journal = -1;
    if (journal < 0)
        journal = getenv("JOURNAL_STREAM") != NULL;
    char buf[2048];
    int n = journal ? snprintf(buf, sizeof buf, "<%d>%s: ", prio[level], names[level])
                    : snprintf(buf, sizeof buf, "partisand[%d]: %s: ", (int)getpid(), names[level]);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

static void emit_fmt(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, fmt, ap);
    va_end(ap);
}

/* Much of what is logged at info and warn is triggered by peers and
 * clients (refusals, bad frames, connections), so a misbehaving one could
 * flood the journal. Past LOG_RATE_PER_S such lines in a second the rest
 * are counted, and the count is logged when the next second begins.
 * Errors are rare and always logged; debug is opt-in. */
static bool rate_allows(enum log_level level)
{
    static uint64_t window_start_ms;
    static unsigned in_window;
    static unsigned long suppressed;
    if (level != LOG_INFO && level != LOG_WARN)
        return true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (now - window_start_ms >= 1000) {
        if (suppressed)
            emit_fmt(LOG_WARN, "log: %lu info/warn lines suppressed (more than %d in a second)",
                     suppressed, LOG_RATE_PER_S);
        suppressed = 0;
        window_start_ms = now;
        in_window = 0;
    }
    if (in_window >= LOG_RATE_PER_S) {
        suppressed++;
        return false;
    }
    in_window++;
    return true;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < current || !rate_allows(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, fmt, ap);
    va_end(ap);
}
