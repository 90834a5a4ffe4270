/* harness: real daemons on 127.0.0.1 for integration tests and benchmarks.
 *
 * Every daemon lives in the test's own temporary directory (config, socket,
 * state, log), listens on an ephemeral port, and is ended by its PID. Every
 * wait is bounded. */
#ifndef PARTISAN_HARNESS_H
#define PARTISAN_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "partisan.h"

struct daemon_proc {
    char name[64];
    char dir[512];            /* its own directory under the test's tmp dir */
    char config[600];
    char socket[600];
    char log[600];
    char listen[128];         /* host:bound_port, once started */
    pid_t pid;
};

/* Directory holding partisand and partisanctl ($PARTISAN_BIN_DIR, default build/san). */
const char *harness_bin_dir(void);

/* A fresh temporary directory for this test run (removed by harness_cleanup
 * unless $KEEP_TMP is set). */
const char *harness_tmpdir(void);
void harness_cleanup(void);

/* Prepares a daemon's directory and writes its config: `extra_json` is
 * spliced into the top-level object (e.g. "\"cluster\":{\"seeds\":[...]}"),
 * and may be "". Does not start it. */
void harness_daemon_init(struct daemon_proc *d, const char *name, const char *extra_json);

/* Starts it and waits (up to timeout_ms) until its socket answers a status
 * request; fills d->listen. Returns 0, or -1 (log tail printed). */
int harness_daemon_start(struct daemon_proc *d, int timeout_ms);

/* Rewrites the daemon's config so that later starts listen on the port it
 * bound now, as a real deployment's fixed port would. Call after a start. */
void harness_daemon_pin_port(struct daemon_proc *d);

/* SIGTERM, then waits up to timeout_ms; SIGKILL after that. Returns the exit
 * status as from waitpid (or -1 if it had to be killed). */
int harness_daemon_stop(struct daemon_proc *d, int timeout_ms);
void harness_daemon_kill(struct daemon_proc *d);        /* SIGKILL + reap */
void harness_daemon_signal(struct daemon_proc *d, int sig);

/* Runs partisanctl with --socket d->socket and the given args (NULL-ended),
 * stdin from `input` (may be NULL), up to timeout_ms. Captures stdout and
 * stderr (NUL-terminated, truncated to their sizes). Returns the exit code,
 * or -1 on timeout (the process is killed). */
int harness_ctl(const struct daemon_proc *d, const char *input, char *out, size_t outlen,
                char *err, size_t errlen, int timeout_ms, ...);

/* Runs argv[0] (looked up in $PATH) with argv, otherwise as harness_ctl():
 * stdin from `input`, stdout and stderr captured, bounded by timeout_ms.
 * Returns the exit code (128+signal if killed by one; 127 if it could not
 * be executed), or -1 on timeout (the process is killed) or if it could not
 * be started. */
int harness_exec(char *const argv[], const char *input, char *out, size_t outlen, char *err, size_t errlen,
                 int timeout_ms);

/* Starts partisanctl in the background (e.g. recv or watch) with its stdout
 * to a file under the daemon's dir; returns the pid. */
pid_t harness_ctl_spawn(const struct daemon_proc *d, const char *out_file, ...);
/* Waits up to timeout_ms for pid to exit; returns its exit code, or -1 on
 * timeout (then the process is killed). */
int harness_wait_exit(pid_t pid, int timeout_ms);

/* Reads at most len-1 bytes from the START of path into buf (NUL-ended);
 * returns the count or -1. A bounded read, for small files whose size is
 * known (e.g. /proc/PID/status); never for searching a log: use
 * harness_slurp() or harness_file_contains(), which read the whole file. */
long harness_read_file(const char *path, char *buf, size_t len);

/* Reads the whole file, however long, into a malloc'd buffer with a NUL
 * after its last byte; *len (may be NULL) gets its length (the file may hold
 * NULs of its own: search with harness_contains()). NULL if it cannot be
 * read (errno says why). The caller frees it. */
char *harness_slurp(const char *path, size_t *len);

/* Whether needle occurs anywhere in buf[0..len), NULs in buf included. */
bool harness_contains(const char *buf, size_t len, const char *needle);

/* Searches the whole file: 1 if needle occurs in it, 0 if it does not, -1 if
 * the file cannot be read. Tri-state on purpose: a "never logged X" check
 * must test == 0, so that an unreadable log fails it instead of passing. */
int harness_file_contains(const char *path, const char *needle);

/* What /proc says of a process, or -1: resident memory in KiB, open
 * descriptors, and CPU time (user + system) in clock ticks. */
long harness_rss_kib(pid_t pid);
/* How many members d sees up and not left (through the client library),
 * or -1 when d is not running or does not answer within timeout_ms. */
int harness_members_up(const struct daemon_proc *d, int timeout_ms);

/* In the text of `partisanctl --json members`, whether member `who` has
 * "neighbor": true: 1, 0, or -1 with the reason in why (not listed, no
 * such field, not a boolean). */
int harness_json_neighbor(const char *members_json, const char *who, char *why, size_t whylen);
long harness_open_fds(pid_t pid);
long harness_cpu_ticks(pid_t pid);

/* The last len-1 bytes of path (all of it if shorter), NUL-ended, starting
 * at a line boundary when the file was cut, NULs shown as '?'; returns the
 * count or -1. For printing a log's tail in a failure message. */
long harness_read_tail(const char *path, char *buf, size_t len);

/* Polls `cond` every 20 ms until it is true or timeout_ms passes. */
bool harness_wait_until(bool (*cond)(void *), void *arg, int timeout_ms);

uint64_t harness_now_ms(void);

/* Tiny test runner: results print as "PASS name" / "FAIL name: why", and
 * harness_summary() prints the closing "N passed, N failed" line. */
extern int harness_failures_in_test;
void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define CHECK(cond, ...) do { if (!(cond)) { harness_fail(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)
void harness_run(const char *name, void (*fn)(void));
int harness_summary(void);

/* Client handles a test opens, closed together by harness_close_clients()
 * at its end (at most 32 at once). harness_client: a connected handle to d,
 * or NULL. harness_holder: one that also holds `name`, or NULL. */
partisan_client *harness_client(const struct daemon_proc *d);
partisan_client *harness_holder(const struct daemon_proc *d, const char *name, int timeout_ms);
void harness_close_clients(void);

#endif
