#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int write_atomically(const char *dir, const char *file, const char *data, size_t len)
{
    char path[4200], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, file);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        log_error("state: cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_error("state: cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            log_error("state: writing %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        log_error("state: flushing %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        log_error("state: renaming %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static char *read_small_file(const char *dir, const char *file, size_t max)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno != ENOENT)
            log_warn("state: cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf || n > max) {
        log_warn("state: %s is larger than %zu bytes; ignoring it", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

uint64_t state_next_incarnation(const char *state_dir, uint64_t now_ms)
{
    uint64_t next = now_ms;
    if (!state_dir || !*state_dir)
        return next;
    char *text = read_small_file(state_dir, "incarnation", 64);
    if (text) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        /* The largest value has no successor: taking it would wrap to 0,
         * which the caller reads as a write failure and refuses to start. */
        if (errno || end == text || (*end && *end != '\n') || v >= UINT64_MAX)
            log_warn("state: %s/incarnation is corrupt; starting from the clock", state_dir);
        else if (v >= next)
            next = v + 1;
        free(text);
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%" PRIu64 "\n", next);
    if (write_atomically(state_dir, "incarnation", buf, (size_t)len) != 0)
        return 0;
    return next;
}

int state_load_members(const char *state_dir, struct membership *m)
{
    if (!state_dir || !*state_dir)
        return 0;
    char *text = read_small_file(state_dir, "members", 64u << 20);
    if (!text)
        return 0;
    int loaded = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        struct member e;
        memset(&e, 0, sizeof e);
        char state[8];
        unsigned long long inc, expires = 0;
        char fmt[64];
        snprintf(fmt, sizeof fmt, "%%%ds %%%ds %%llu %%7s %%llu", MEMBER_NAME_MAX, MEMBER_ADDR_MAX);
        /* The fifth column (a tombstone's expiry) is absent in files an
         * older version wrote: such tombstones never expire. */
        int got = sscanf(line, fmt, e.name, e.address, &inc, state, &expires);
        if (got < 4 || (strcmp(state, "alive") != 0 && strcmp(state, "left") != 0)) {
            log_warn("state: %s/members line %d is corrupt; ignoring the file", state_dir, lineno);
            loaded = 0;
            break;
        }
        e.incarnation = inc;
        e.left = strcmp(state, "left") == 0;
        e.expires_ms = e.left && got == 5 ? expires : 0;
        if (membership_merge_one(m, &e, NULL) < 0)
            break;
        loaded++;
    }
    free(text);
    return loaded;
}

static int write_members(const char *state_dir, const struct membership *m);

/* The table is written as it is, not merged into what is stored: the
 * running core was started from the stored table, so it holds everything
 * the file did except what expired or was forgotten since, which must stay
 * gone after a restart. */
int state_save_members(const char *state_dir, const struct membership *m)
{
    if (!state_dir || !*state_dir)
        return 0;
    return write_members(state_dir, m);
}

static int write_members(const char *state_dir, const struct membership *m)
{
    size_t cap = m->n * (MEMBER_NAME_MAX + MEMBER_ADDR_MAX + 64) + 1;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    size_t off = 0;
    for (size_t i = 0; i < m->n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s %s %" PRIu64 " %s %" PRIu64 "\n",
                                m->v[i].name, m->v[i].address, m->v[i].incarnation,
                                m->v[i].left ? "left" : "alive",
                                m->v[i].left ? m->v[i].expires_ms : 0);
    int rc = write_atomically(state_dir, "members", buf, off);
    free(buf);
    return rc;
}
