#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "partisan.h"

static char tmpdir[400];
static char testdir[500];     /* tmpdir/<test name>: each test starts clean */
/* What a test started, so the runner can end it even when a CHECK returned
 * early. */
static struct daemon_proc *live[128];
static pid_t spawned[128];

static void track_daemon(struct daemon_proc *d)
{
    for (size_t i = 0; i < 128; i++)
        if (live[i] == d || !live[i]) {
            live[i] = d;
            return;
        }
}

static void track_pid(pid_t pid)
{
    for (size_t i = 0; i < 128; i++)
        if (!spawned[i]) {
            spawned[i] = pid;
            return;
        }
}

/* A sanitizer report anywhere in a daemon's log (the whole file, however
 * long it grew) fails the test that ran it; so does a log that cannot be
 * read, since then nothing was looked at. */
static void scan_for_sanitizer_reports(const struct daemon_proc *d)
{
    size_t len = 0;
    char *buf = harness_slurp(d->log, &len);
    if (!buf) {
        harness_fail(__FILE__, __LINE__, "cannot read %s to scan it for sanitizer reports: %s", d->log,
                     strerror(errno));
        return;
    }
    const char *hit = NULL;
    static const char *const marks[] = { "Sanitizer", "runtime error:" };
    for (size_t i = 0; i < sizeof marks / sizeof marks[0] && !hit; i++)
        hit = memmem(buf, len, marks[i], strlen(marks[i]));
    if (hit)
        harness_fail(__FILE__, __LINE__, "sanitizer report in %s at byte %zu: %.300s", d->log,
                     (size_t)(hit - buf), hit);
    free(buf);
}

static void end_everything(void)
{
    for (size_t i = 0; i < 128; i++) {
        if (live[i]) {
            harness_daemon_kill(live[i]);
            scan_for_sanitizer_reports(live[i]);
        }
        live[i] = NULL;
        if (spawned[i] > 0) {
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
        }
        spawned[i] = 0;
    }
}
int harness_failures_in_test;
static int passed, failed;

uint64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *harness_bin_dir(void)
{
    const char *d = getenv("PARTISAN_BIN_DIR");
    return d && *d ? d : "build/san";
}

const char *harness_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/partisan-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmpdir;
}

void harness_cleanup(void)
{
    if (!tmpdir[0] || getenv("KEEP_TMP"))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", tmpdir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

/* Copies src to dst with @SOCK@ and @DIR@ replaced by the daemon's paths. */
static void expand(char *dst, size_t cap, const char *src, const struct daemon_proc *d)
{
    size_t n = 0;
    while (*src && n + 1 < cap) {
        const char *rep = NULL;
        size_t skip = 0;
        if (strncmp(src, "@SOCK@", 6) == 0)
            rep = d->socket, skip = 6;
        else if (strncmp(src, "@DIR@", 5) == 0)
            rep = d->dir, skip = 5;
        if (rep) {
            n += (size_t)snprintf(dst + n, cap - n, "%s", rep);
            if (n >= cap)
                n = cap - 1;
            src += skip;
        } else {
            dst[n++] = *src++;
        }
    }
    dst[n] = '\0';
}

void harness_daemon_init(struct daemon_proc *d, const char *name, const char *extra_json)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->dir, sizeof d->dir, "%s/%s", testdir[0] ? testdir : harness_tmpdir(), name);
    mkdir(d->dir, 0700);
    snprintf(d->config, sizeof d->config, "%s/partisand.json", d->dir);
    snprintf(d->socket, sizeof d->socket, "%s/sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/partisand.log", d->dir);
    FILE *f = fopen(d->config, "w");
    if (!f) {
        perror(d->config);
        exit(2);
    }
    char extra[4096] = "";
    expand(extra, sizeof extra, extra_json ? extra_json : "", d);
    /* Sections the caller's extra does not give get the test defaults. */
    fprintf(f, "{\"node\": {\"name\": \"%s\", \"listen\": \"127.0.0.1:0\", \"state_dir\": \"%s/state\"}",
            name, d->dir);
    if (!strstr(extra, "\"ipc\""))
        fprintf(f, ",\n \"ipc\": {\"socket\": \"%s\"}", d->socket);
    if (!strstr(extra, "\"log\""))
        fprintf(f, ",\n \"log\": {\"level\": \"debug\"}");
    if (!strstr(extra, "\"cluster\""))
        fprintf(f, ",\n \"cluster\": {\"name\": \"test\"}");
    fprintf(f, "%s%s}\n", *extra ? ",\n " : "", extra);
    fclose(f);
}

static void print_log_tail(const struct daemon_proc *d)
{
    char buf[2048];
    if (harness_read_tail(d->log, buf, sizeof buf) > 0)
        fprintf(stderr, "--- last lines of %s ---\n%s\n---\n", d->log, buf);
}

int harness_daemon_start(struct daemon_proc *d, int timeout_ms)
{
    char bin[600];
    snprintf(bin, sizeof bin, "%s/partisand", harness_bin_dir());
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execl(bin, bin, "--config", d->config, (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    track_daemon(d);
    uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
    while (harness_now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            fprintf(stderr, "%s exited during start\n", d->name);
            print_log_tail(d);
            return -1;
        }
        partisan_client *c = NULL;
        if (partisan_connect(d->socket, &c) == 0) {
            struct partisan_status *s = NULL;
            int rc = partisan_status(c, &s, 1000);
            if (rc == 0) {
                snprintf(d->listen, sizeof d->listen, "%s", s->listen);
                partisan_status_free(s);
                partisan_close(c);
                return 0;
            }
            partisan_close(c);
        }
        usleep(20 * 1000);
    }
    fprintf(stderr, "%s did not answer within %d ms\n", d->name, timeout_ms);
    print_log_tail(d);
    harness_daemon_kill(d);
    return -1;
}

void harness_daemon_pin_port(struct daemon_proc *d)
{
    /* The whole config: a bounded read would rewrite a long one truncated. */
    char *buf = harness_slurp(d->config, NULL);
    const char *at = buf ? strstr(buf, "\"127.0.0.1:0\"") : NULL;
    FILE *f = at && d->listen[0] ? fopen(d->config, "w") : NULL;
    if (f) {
        fprintf(f, "%.*s\"%s\"%s", (int)(at - buf), buf, d->listen, at + strlen("\"127.0.0.1:0\""));
        fclose(f);
    }
    free(buf);
}

static int wait_pid(pid_t pid, int timeout_ms, int *status)
{
    uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -2;
        if (harness_now_ms() >= deadline)
            return -1;
        usleep(5 * 1000);
    }
}

int harness_daemon_stop(struct daemon_proc *d, int timeout_ms)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGCONT);
    kill(d->pid, SIGTERM);
    int st = 0;
    if (wait_pid(d->pid, timeout_ms, &st) != 0) {
        harness_daemon_kill(d);
        return -1;
    }
    d->pid = 0;
    return st;
}

void harness_daemon_kill(struct daemon_proc *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    int st;
    waitpid(d->pid, &st, 0);
    d->pid = 0;
}

void harness_daemon_signal(struct daemon_proc *d, int sig)
{
    if (d->pid > 0)
        kill(d->pid, sig);
}

static int build_argv(const struct daemon_proc *d, va_list ap, char **argv, int max)
{
    static char bin[600];
    snprintf(bin, sizeof bin, "%s/partisanctl", harness_bin_dir());
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--socket";
    argv[n++] = (char *)d->socket;
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < max - 1)
        argv[n++] = (char *)a;
    argv[n] = NULL;
    return n;
}

/* Reads both pipes until EOF or the deadline. */
static void drain_pipes(int ofd, int efd, char *out, size_t outlen, char *err, size_t errlen,
                        uint64_t deadline)
{
    size_t on = 0, en = 0;
    struct pollfd p[2] = { { .fd = ofd, .events = POLLIN }, { .fd = efd, .events = POLLIN } };
    while ((p[0].fd >= 0 || p[1].fd >= 0) && harness_now_ms() < deadline) {
        if (poll(p, 2, 20) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[4096];
            ssize_t r = read(p[i].fd, tmp, sizeof tmp);
            if (r <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            char *dst = i == 0 ? out : err;
            size_t cap = i == 0 ? outlen : errlen, *len = i == 0 ? &on : &en;
            if (dst && cap > *len + 1) {
                size_t k = (size_t)r < cap - *len - 1 ? (size_t)r : cap - *len - 1;
                memcpy(dst + *len, tmp, k);
                *len += k;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    if (out && outlen)
        out[on] = '\0';
    if (err && errlen)
        err[en] = '\0';
}

int harness_exec(char *const argv[], const char *input, char *out, size_t outlen, char *err, size_t errlen,
                 int timeout_ms)
{
    int inp[2], op[2], ep[2];
    if (pipe(inp))
        return -1;
    if (pipe(op)) {
        close(inp[0]); close(inp[1]);
        return -1;
    }
    if (pipe(ep)) {
        close(inp[0]); close(inp[1]); close(op[0]); close(op[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(inp[0], 0);
        dup2(op[1], 1);
        dup2(ep[1], 2);
        close(inp[1]); close(op[0]); close(ep[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(inp[0]); close(op[1]); close(ep[1]);
    if (pid < 0) {
        close(inp[1]); close(op[0]); close(ep[0]);
        return -1;
    }
    if (input) {
        size_t len = strlen(input);
        ssize_t w = write(inp[1], input, len);
        (void)w;
    }
    close(inp[1]);
    uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
    drain_pipes(op[0], ep[0], out, outlen, err, errlen, deadline);
    int st;
    uint64_t now = harness_now_ms();
    int left = now < deadline ? (int)(deadline - now) : 0;
    if (wait_pid(pid, left, &st) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int harness_ctl(const struct daemon_proc *d, const char *input, char *out, size_t outlen,
                char *err, size_t errlen, int timeout_ms, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, timeout_ms);
    build_argv(d, ap, argv, 32);
    va_end(ap);
    return harness_exec(argv, input, out, outlen, err, errlen, timeout_ms);
}

pid_t harness_ctl_spawn(const struct daemon_proc *d, const char *out_file, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, out_file);
    build_argv(d, ap, argv, 32);
    va_end(ap);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0)
        track_pid(pid);
    return pid;
}

int harness_wait_exit(pid_t pid, int timeout_ms)
{
    for (size_t i = 0; i < 128; i++)
        if (spawned[i] == pid)
            spawned[i] = 0;
    int st;
    if (wait_pid(pid, timeout_ms, &st) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

long harness_read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

char *harness_slurp(const char *path, size_t *len)
{
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    /* Read until EOF rather than trusting st_size: a log may still grow,
     * and /proc files report 0. */
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            char *bigger = cap > SIZE_MAX / 4 ? NULL : realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
                errno = EIO;
            }
            break;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

bool harness_contains(const char *buf, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    return buf && (nl == 0 || memmem(buf, len, needle, nl) != NULL);
}

int harness_file_contains(const char *path, const char *needle)
{
    size_t len;
    char *buf = harness_slurp(path, &len);
    if (!buf)
        return -1;
    int hit = harness_contains(buf, len, needle);
    free(buf);
    return hit;
}

long harness_read_tail(const char *path, char *buf, size_t len)
{
    if (!buf || len == 0)
        return -1;
    buf[0] = '\0';
    size_t n;
    char *all = harness_slurp(path, &n);
    if (!all)
        return -1;
    size_t from = n > len - 1 ? n - (len - 1) : 0;
    if (from > 0) {
        /* Start at the line after the cut, if the tail holds one. */
        const char *nl = memchr(all + from, '\n', n - from);
        if (nl && (size_t)(nl + 1 - all) < n)
            from = (size_t)(nl + 1 - all);
    }
    memcpy(buf, all + from, n - from);
    buf[n - from] = '\0';
    for (size_t i = 0; i < n - from; i++)
        if (buf[i] == '\0')
            buf[i] = '?';   /* printable as a whole */
    free(all);
    return (long)(n - from);
}

bool harness_wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (harness_now_ms() >= deadline)
            return false;
        usleep(20 * 1000);
    }
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  %s:%d: %s\n", file, line, msg);
    harness_failures_in_test++;
}

void harness_run(const char *name, void (*fn)(void))
{
    /* HARNESS_ONLY=name runs one test, e.g. to repeat a flaky one. */
    const char *only = getenv("HARNESS_ONLY");
    if (only && *only && strcmp(only, name) != 0)
        return;
    harness_failures_in_test = 0;
    snprintf(testdir, sizeof testdir, "%s/%s", harness_tmpdir(), name);
    mkdir(testdir, 0700);
    uint64_t t0 = harness_now_ms();
    fn();
    end_everything();
    uint64_t ms = harness_now_ms() - t0;
    if (harness_failures_in_test) {
        failed++;
        printf("FAIL %s (%llu ms)\n", name, (unsigned long long)ms);
    } else {
        passed++;
        printf("PASS %s (%llu ms)\n", name, (unsigned long long)ms);
    }
    fflush(stdout);
}

int harness_summary(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    harness_cleanup();
    return failed ? 1 : 0;
}

long harness_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    size_t len = 0;
    char *text = harness_slurp(path, &len);
    const char *p = text ? strstr(text, "VmRSS:") : NULL;
    long kib = p ? strtol(p + 6, NULL, 10) : -1;
    free(text);
    return kib;
}

long harness_open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

long harness_cpu_ticks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    size_t len = 0;
    char *text = harness_slurp(path, &len);
    if (!text)
        return -1;
    /* After the command (which may hold spaces and parentheses): state is
     * the 3rd field, utime and stime the 14th and 15th. */
    const char *p = strrchr(text, ')');
    unsigned long ut = 0, st = 0;
    int ok = p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2;
    free(text);
    return ok ? (long)(ut + st) : -1;
}

int harness_members_up(const struct daemon_proc *d, int timeout_ms)
{
    partisan_client *c = NULL;
    if (d->pid <= 0 || partisan_connect(d->socket, &c) != 0)
        return -1;
    struct partisan_member *m = NULL;
    size_t n = 0;
    int up = -1;
    if (partisan_members(c, 0, &m, &n, timeout_ms) == 0) {
        up = 0;
        for (size_t i = 0; i < n; i++)
            up += m[i].up && !m[i].left;
        partisan_members_free(m, n);
    }
    partisan_close(c);
    return up;
}

int harness_json_neighbor(const char *out, const char *who, char *why, size_t whylen)
{
    char key[300];
    snprintf(key, sizeof key, "\"name\":\"%s\"", who);
    const char *p = strstr(out, key);
    if (!p) {
        snprintf(why, whylen, "members --json does not list %s: %.300s", who, out);
        return -1;
    }
    /* The member's object: back to its '{', on to its '}'. */
    const char *open = p;
    while (open > out && *open != '{')
        open--;
    const char *close = strchr(p, '}');
    const char *f = strstr(open, "\"neighbor\":");
    if (!close || !f || f > close) {
        snprintf(why, whylen, "members --json has no \"neighbor\" for %s: %.*s", who,
                 close ? (int)(close - open + 1) : 200, open);
        return -1;
    }
    f += strlen("\"neighbor\":");
    while (*f == ' ')
        f++;
    if (strncmp(f, "true", 4) == 0)
        return 1;
    if (strncmp(f, "false", 5) == 0)
        return 0;
    snprintf(why, whylen, "\"neighbor\" of %s is neither true nor false: %.20s", who, f);
    return -1;
}

static partisan_client *client_handles[32];

partisan_client *harness_client(const struct daemon_proc *d)
{
    partisan_client *c = NULL;
    if (partisan_connect(d->socket, &c) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof client_handles / sizeof client_handles[0]; i++)
        if (!client_handles[i]) {
            client_handles[i] = c;
            return c;
        }
    partisan_close(c);
    return NULL;
}

partisan_client *harness_holder(const struct daemon_proc *d, const char *name, int timeout_ms)
{
    partisan_client *c = harness_client(d);
    if (c && partisan_register(c, name, timeout_ms) != 0)
        return NULL;   /* closed with the others */
    return c;
}

void harness_close_clients(void)
{
    for (size_t i = 0; i < sizeof client_handles / sizeof client_handles[0]; i++) {
        partisan_close(client_handles[i]);
        client_handles[i] = NULL;
    }
}
