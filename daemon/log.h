/* log: levelled logging to stderr, one line per call (journald reads it).
 * Info and warn lines are limited to LOG_RATE_PER_S a second; the excess is
 * counted and the count logged, so a flood from a bad peer cannot drown the
 * journal and nothing disappears without a trace. */
#ifndef PARTISAN_LOG_H
#define PARTISAN_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

#define LOG_RATE_PER_S 1000

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Returns 0 and sets *out for "debug"/"info"/"warn"/"error"; -1 otherwise. */
int log_parse_level(const char *text, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
