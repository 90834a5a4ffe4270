#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "faults.h"

/* ---------------------------------------------------------------- schema --
 * One row per key: defaults, validation and doc/config.md all follow it, so a
 * key added here is a key that is parsed, defaulted and range-checked. */

enum key_type { KT_U32, KT_U64, KT_BOOL, KT_NAME, KT_ADDR, KT_PATH, KT_SEEDS, KT_CHANNELS,
                KT_OVERLAY, KT_MODE, KT_LEVEL, KT_GROUPS, KT_USERS, KT_FAULTS };

struct key_spec {
    const char *section;        /* NULL: a key at the top level, beside the sections */
    const char *name;
    enum key_type type;
    size_t offset;              /* into struct config (channel_keys: struct config_channel) */
    const char *text_default;   /* string-typed keys; NULL: computed */
    uint64_t def, min, max;     /* integers; for names and paths min/max are lengths;
                                   KT_CHANNELS, KT_GROUPS, KT_USERS: max is the
                                   number of elements */
};

#define KEY_INT(sec, nm, t, field, d, lo, hi) \
    { sec, nm, t, offsetof(struct config, field), NULL, d, lo, hi }
#define KEY_TEXT(sec, nm, t, field, d) \
    { sec, nm, t, offsetof(struct config, field), d, 0, 0, 0 }
#define KEY_PATH(sec, nm, field, d, lo, hi) \
    { sec, nm, KT_PATH, offsetof(struct config, field), d, 0, lo, hi }
#define KEY_NAME(sec, nm, field, d, maxlen) \
    { sec, nm, KT_NAME, offsetof(struct config, field), d, 0, 1, maxlen }

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* A Unix socket path must fit sun_path with its terminating NUL. */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

static const struct key_spec keys[] = {
    KEY_NAME("node", "name", node_name, NULL, CONFIG_NAME_MAX),
    KEY_TEXT("node", "listen", KT_ADDR, listen, "127.0.0.1:10200"),
    KEY_TEXT("node", "advertise", KT_ADDR, advertise, NULL),
    KEY_PATH("node", "state_dir", state_dir, "", 0, CONFIG_PATH_MAX - 1),
    KEY_PATH("tls", "ca_file", tls_ca_file, "", 0, CONFIG_PATH_MAX - 1),
    KEY_PATH("tls", "cert_file", tls_cert_file, "", 0, CONFIG_PATH_MAX - 1),
    KEY_PATH("tls", "key_file", tls_key_file, "", 0, CONFIG_PATH_MAX - 1),
    KEY_NAME("cluster", "name", cluster_name, "partisan", CONFIG_NAME_MAX),
    KEY_TEXT("cluster", "seeds", KT_SEEDS, seeds, NULL),
    KEY_INT("cluster", "max_members", KT_U32, max_members, 1024, 2, 1000000),
    KEY_INT("cluster", "tombstone_ttl_ms", KT_U64, tombstone_ttl_ms, 86400000, 0, UINT64_C(31536000000)),
    KEY_TEXT("overlay", "type", KT_OVERLAY, overlay, "full_mesh"),
    KEY_INT("overlay", "gossip_interval_ms", KT_U32, gossip_interval_ms, 1000, 10, 600000),
    KEY_INT("overlay", "gossip_fanout", KT_U32, gossip_fanout, 3, 1, 64),
    /* overlay.hyparview.*: Partisan's names and defaults (daemon/overlay_hyparview.h). */
    KEY_INT("overlay.hyparview", "active_max_size", KT_U32, hv_active_max_size, 5, 1, 64),
    KEY_INT("overlay.hyparview", "active_min_size", KT_U32, hv_active_min_size, 2, 0, 64),
    KEY_INT("overlay.hyparview", "passive_max_size", KT_U32, hv_passive_max_size, 30, 0, 1024),
    KEY_INT("overlay.hyparview", "active_rwl", KT_U32, hv_active_rwl, 6, 0, 64),
    KEY_INT("overlay.hyparview", "passive_rwl", KT_U32, hv_passive_rwl, 6, 0, 64),
    KEY_INT("overlay.hyparview", "shuffle_interval_ms", KT_U32, hv_shuffle_interval_ms, 10000, 10, 3600000),
    KEY_INT("overlay.hyparview", "shuffle_k_active", KT_U32, hv_shuffle_k_active, 3, 0, 32),
    KEY_INT("overlay.hyparview", "shuffle_k_passive", KT_U32, hv_shuffle_k_passive, 4, 0, 32),
    KEY_INT("overlay.hyparview", "random_promotion_interval_ms", KT_U32, hv_random_promotion_interval_ms, 5000, 10,
            3600000),
    KEY_INT("overlay.hyparview", "announce_interval_ms", KT_U32, hv_announce_interval_ms, 10000, 100, 3600000),
    KEY_INT("failure_detector", "ping_interval_ms", KT_U32, ping_interval_ms, 500, 10, 60000),
    KEY_INT("failure_detector", "timeout_ms", KT_U32, fd_timeout_ms, 3000, 50, 600000),
    KEY_INT("transport", "connect_timeout_ms", KT_U32, connect_timeout_ms, 2000, 10, 60000),
    KEY_INT("transport", "handshake_timeout_ms", KT_U32, handshake_timeout_ms, 5000, 100, 60000),
    KEY_INT("transport", "max_pending_connections", KT_U32, max_pending_connections, 256, 1, 4096),
    KEY_INT("transport", "max_pending_per_address", KT_U32, max_pending_per_address, 64, 1, 4096),
    KEY_INT("transport", "idle_timeout_ms", KT_U32, idle_timeout_ms, 600000, 1000, 86400000),
    KEY_INT("transport", "backoff_initial_ms", KT_U32, backoff_initial_ms, 100, 1, 60000),
    KEY_INT("transport", "backoff_max_ms", KT_U32, backoff_max_ms, 5000, 1, 600000),
    KEY_INT("transport", "max_frame_bytes", KT_U64, peer_max_frame_bytes, 16 * MiB, 1 * KiB, 1 * GiB),
    KEY_INT("transport", "max_queue_bytes", KT_U64, peer_max_queue_bytes, 64 * MiB, 64 * KiB, 16 * GiB),
    KEY_INT("transport", "window_bytes", KT_U64, flow_window_bytes, 4 * MiB, 64 * KiB, 1 * GiB),
    KEY_PATH("ipc", "socket", ipc_socket, "/run/partisan/partisand.sock", 1, SOCKET_PATH_MAX),
    KEY_TEXT("ipc", "mode", KT_MODE, ipc_mode, "0660"),
    KEY_INT("ipc", "max_frame_bytes", KT_U64, ipc_max_frame_bytes, 16 * MiB, 1 * KiB, 1 * GiB),
    KEY_INT("ipc", "max_queue_bytes", KT_U64, ipc_max_queue_bytes, 64 * MiB, 64 * KiB, 16 * GiB),
    KEY_INT("ipc", "admin_groups", KT_GROUPS, ipc_admin_groups, 0, 0, CONFIG_IPC_GROUPS_MAX),
    KEY_INT("ipc", "client_groups", KT_GROUPS, ipc_client_groups, 0, 0, CONFIG_IPC_GROUPS_MAX),
    KEY_INT("ipc", "names", KT_USERS, ipc_names, 0, 0, CONFIG_IPC_NAMES_MAX),
    KEY_TEXT("log", "level", KT_LEVEL, log_level, "info"),
    { NULL, "channels", KT_CHANNELS, offsetof(struct config, channels), NULL, 0, 0, CONFIG_CHANNELS_MAX },
    { NULL, "faults", KT_FAULTS, offsetof(struct config, faults_json), NULL, 0, 0, 0 },
};

#define N_KEYS (sizeof keys / sizeof keys[0])
_Static_assert(N_KEYS <= 64, "per-key bitmasks are uint64_t");

static const char *const sections[] = {
    "node", "cluster", "overlay", "failure_detector", "transport", "tls", "ipc", "log",
};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* Objects nested in a section, each a section of keys[] of its own. */
static const struct { const char *parent, *name, *section; } subsections[] = {
    { "overlay", "hyparview", "overlay.hyparview" },
};
#define N_SUBSECTIONS (sizeof subsections / sizeof subsections[0])

/* The keys of one element of "channels"; offsets are into struct config_channel. */
static const struct key_spec channel_keys[] = {
    { NULL, "name", KT_NAME, offsetof(struct config_channel, name), NULL, 0, 1, CONFIG_CHANNEL_NAME_MAX },
    { NULL, "parallelism", KT_U32, offsetof(struct config_channel, parallelism), NULL, 1, 1, CONFIG_PARALLELISM_MAX },
    { NULL, "monotonic", KT_BOOL, offsetof(struct config_channel, monotonic), NULL, 0, 0, 1 },
    { NULL, "reliable", KT_BOOL, offsetof(struct config_channel, reliable), NULL, 0, 0, 1 },
    { NULL, "causal", KT_BOOL, offsetof(struct config_channel, causal), NULL, 0, 0, 1 },
};
#define N_CHANNEL_KEYS (sizeof channel_keys / sizeof channel_keys[0])

/* Overlays the config language knows; only supported ones can run. */
static const struct { const char *name; bool supported; } overlays[] = {
    { "full_mesh", true }, { "hyparview", true }, { "client_server", false }, { "static", false },
};
#define N_OVERLAYS (sizeof overlays / sizeof overlays[0])

static const char name_chars_help[] = "allowed characters: A-Z a-z 0-9 . _ @ -";

/* ----------------------------------------------------------- reporting -- */

struct loader {
    const char *origin;
    config_error_fn fn;
    void *ctx;
    int errors;
    struct config *cfg;
    uint64_t given;   /* bit i: keys[i] appears in the file */
    uint64_t bad;     /* bit i: keys[i] was rejected, so cross-checks skip it */
};

static void emit(struct loader *l, const char *msg)
{
    l->errors++;
    if (l->fn)
        l->fn(l->ctx, msg);
}

__attribute__((format(printf, 3, 4)))
static void key_error(struct loader *l, const char *path, const char *fmt, ...)
{
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s: %s: ", l->origin, path);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    emit(l, msg);
}

/* Echoes user text into a message safely: quoted, control and non-ASCII
 * bytes escaped, long values cut, so a hostile file cannot garble a log. */
static const char *quote(char *out, size_t outlen, const char *s, size_t len)
{
    enum { SHOWN = 64 };
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len && i < SHOWN && o + 6 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, outlen - o, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (len > SHOWN && o + 5 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* Key names from the file go into paths; escape them like values but bare. */
static void make_path(char *out, size_t outlen, const char *section, const char *key)
{
    char q[300];
    quote(q, sizeof q, key, strlen(key));
    q[strlen(q) - 1] = '\0';
    if (section)
        snprintf(out, outlen, "%s.%s", section, q + 1);
    else
        snprintf(out, outlen, "%s", q + 1);
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real number";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* Optimal string alignment distance, capped: only small distances matter
 * (a typo like "tpye"), and keys are short. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 32 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAXLEN || lb >= MAXLEN)
        return SIZE_MAX;
    size_t d[MAXLEN + 1][MAXLEN + 1];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static bool same_section(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* "did you mean" plus the allowed list, for `key` within the object at
 * `where` (NULL: the top level), whose keys are cands[0..n). */
static void unknown_key_among(struct loader *l, const char *where, const char *key,
                              const char *const *cands, size_t n)
{
    char allowed[512] = "", path[300];
    const char *best = NULL;
    size_t best_d = 3, used = 0;
    for (size_t i = 0; i < n; i++) {
        const char *cand = cands[i];
        used += (size_t)snprintf(allowed + used, sizeof allowed - used, "%s%s", used ? ", " : "", cand);
        size_t d = edit_distance(key, cand);
        if (d < best_d && d < strlen(cand)) {
            best_d = d;
            best = cand;
        }
    }
    make_path(path, sizeof path, where, key);
    if (best)
        key_error(l, path, "unknown key (did you mean \"%s\"? allowed: %s)", best, allowed);
    else
        key_error(l, path, "unknown key (allowed: %s)", allowed);
}

/* An unknown key within `section` of keys[] (NULL: the top level, where the
 * sections and the top-level keys are allowed). */
static void unknown_key(struct loader *l, const char *section, const char *key)
{
    const char *cands[N_SECTIONS + N_KEYS + 4];
    size_t n = 0;
    if (!section)
        for (size_t i = 0; i < N_SECTIONS; i++)
            cands[n++] = sections[i];
    for (size_t i = 0; i < N_KEYS; i++)
        if (same_section(keys[i].section, section))
            cands[n++] = keys[i].name;
    for (size_t i = 0; i < N_SUBSECTIONS && section; i++)
        if (!strcmp(subsections[i].parent, section))
            cands[n++] = subsections[i].name;
    unknown_key_among(l, section, key, cands, n);
}

/* ------------------------------------------------------------- addresses -- */

/* Returns NULL on success, else why the text is not an address. */
static const char *parse_addr(const char *text, struct config_addr *out)
{
    const char *host = text, *colon;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return "missing ']' after the IPv6 address";
        host = text + 1;
        hlen = (size_t)(close - host);
        if (close[1] != ':')
            return close[1] ? "expected ':port' after ']'" : "missing ':port'";
        colon = close + 1;
        if (hlen && !memchr(host, ':', hlen))
            return "brackets are only for IPv6 addresses";
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return "missing ':port'";
        hlen = (size_t)(colon - host);
        if (memchr(host, ':', hlen))
            return "an IPv6 address needs brackets, as in \"[::1]:10200\"";
    }
    if (hlen == 0)
        return "empty host";
    if (hlen >= CONFIG_ADDR_MAX)
        return "host name too long";
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '/')
            return "host contains a character that no host name or address has";
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0)
        return "missing port after ':'";
    if (plen > 5 || strspn(p, "0123456789") != plen)
        return "port is not a number in 0..65535";
    unsigned long port = strtoul(p, NULL, 10);
    if (port > 65535)
        return "port is not a number in 0..65535";
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (uint16_t)port;
    return NULL;
}

int config_parse_addr(const char *text, struct config_addr *out)
{
    struct config_addr tmp;
    if (!text || parse_addr(text, &tmp))
        return -1;
    *out = tmp;
    return 0;
}

void config_format_addr(const struct config_addr *a, char *buf, size_t len)
{
    if (strchr(a->host, ':'))
        snprintf(buf, len, "[%s]:%u", a->host, (unsigned)a->port);
    else
        snprintf(buf, len, "%s:%u", a->host, (unsigned)a->port);
}

/* 0.0.0.0 and :: mean "every interface" to bind() but nothing to a peer. */
static bool addr_unspecified(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return a4.s_addr == INADDR_ANY;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_UNSPECIFIED(&a6);
    return false;
}

/* ------------------------------------------------------- value setters --
 * Each takes text already known to be NUL-free, fills its field and returns
 * NULL, or writes why it refused into `why`. Defaults go through the same
 * setters, so a default is always a value the file could have given. */

typedef const char *(*text_setter)(const struct key_spec *k, const char *s, size_t len,
                                   void *field, char *why, size_t whylen);

/* Node, cluster and channel names: 1..k->max bytes of the name characters. */
static const char *set_name(const struct key_spec *k, const char *s, size_t len,
                            void *field, char *why, size_t whylen)
{
    char q[300];
    if (len == 0)
        return "must not be empty";
    if (len > k->max) {
        snprintf(why, whylen, "is %zu bytes long (max %" PRIu64 ")", len, k->max);
        return why;
    }
    size_t bad = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-");
    if (bad < len) {
        snprintf(why, whylen, "%s has %s at byte %zu (%s)", quote(q, sizeof q, s, len),
                 quote((char[12]){0}, 12, s + bad, 1), bad, name_chars_help);
        return why;
    }
    memcpy(field, s, len + 1);
    return NULL;
}

static const char *set_addr(const struct key_spec *k, const char *s, size_t len,
                            void *field, char *why, size_t whylen)
{
    (void)k;
    char q[300];
    const char *r = parse_addr(s, field);
    if (r) {
        snprintf(why, whylen, "%s is not \"host:port\" or \"[v6]:port\": %s",
                 quote(q, sizeof q, s, len), r);
        return why;
    }
    return NULL;
}

static const char *set_path(const struct key_spec *k, const char *s, size_t len,
                            void *field, char *why, size_t whylen)
{
    if (len < k->min)
        return "must not be empty";
    if (len > k->max) {
        snprintf(why, whylen, "path is %zu bytes long (max %" PRIu64 "%s)", len, k->max,
                 k->max == SOCKET_PATH_MAX ? ", the limit of a Unix socket address" : "");
        return why;
    }
    memcpy(field, s, len + 1);
    return NULL;
}

static const char *set_overlay(const struct key_spec *k, const char *s, size_t len,
                               void *field, char *why, size_t whylen)
{
    (void)k;
    char q[300];
    quote(q, sizeof q, s, len);
    for (size_t i = 0; i < N_OVERLAYS; i++) {
        if (strcmp(s, overlays[i].name) != 0)
            continue;
        if (!overlays[i].supported) {
            snprintf(why, whylen, "%s is not yet supported (supported: full_mesh, hyparview)", q);
            return why;
        }
        *(enum overlay_type *)field = (enum overlay_type)i;
        return NULL;
    }
    snprintf(why, whylen, "%s is an unknown overlay (allowed: full_mesh, hyparview, client_server, static)", q);
    return why;
}

static const char *set_mode(const struct key_spec *k, const char *s, size_t len,
                            void *field, char *why, size_t whylen)
{
    (void)k;
    char q[300];
    quote(q, sizeof q, s, len);
    if (len < 3 || len > 4 || strspn(s, "01234567") != len) {
        snprintf(why, whylen, "%s is not an octal mode of 3 or 4 digits, like \"0660\"", q);
        return why;
    }
    unsigned long mode = strtoul(s, NULL, 8);
    if (mode > 0777) {
        snprintf(why, whylen, "%s has bits above 0777 (setuid, setgid and sticky make no sense on a socket)", q);
        return why;
    }
    *(unsigned *)field = (unsigned)mode;
    return NULL;
}

static const char *set_level(const struct key_spec *k, const char *s, size_t len,
                             void *field, char *why, size_t whylen)
{
    (void)k;
    char q[300];
    if (log_parse_level(s, field) != 0) {
        snprintf(why, whylen, "%s is not a level (allowed: debug, info, warn, error)",
                 quote(q, sizeof q, s, len));
        return why;
    }
    return NULL;
}

/* ------------------------------------------------------ per-type ops -- */

struct type_ops {
    const char *expected;        /* completes "expected ..., got X" */
    text_setter set_text;        /* string-typed keys only */
};

static const struct type_ops type_ops[] = {
    [KT_U32] = { "an integer", NULL },
    [KT_U64] = { "an integer (bytes)", NULL },
    [KT_BOOL] = { "a boolean (true or false)", NULL },
    [KT_NAME] = { "a string", set_name },
    [KT_ADDR] = { "a string \"host:port\"", set_addr },
    [KT_PATH] = { "a string (a path)", set_path },
    [KT_SEEDS] = { "an array of \"host:port\" strings", NULL },
    [KT_CHANNELS] = { "an array of channel objects ({\"name\": ...})", NULL },
    [KT_OVERLAY] = { "a string (full_mesh)", set_overlay },
    [KT_MODE] = { "an octal string like \"0660\"", set_mode },
    [KT_LEVEL] = { "a string (debug, info, warn, error)", set_level },
    [KT_GROUPS] = { "an array of group names", NULL },
    [KT_USERS] = { "an object mapping registered names to user names ({\"billing\": \"billing-svc\"})", NULL },
    [KT_FAULTS] = { "an object {\"enabled\": bool, \"rules\": [...]}", NULL },
};

/* base: the struct config, or for channel_keys the struct config_channel. */
static void *field_of(void *base, const struct key_spec *k)
{
    return (char *)base + k->offset;
}

/* Every key of ks[0..n) with a static default gets it, through the setters. */
static void apply_defaults(void *base, const struct key_spec *ks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct key_spec *k = &ks[i];
        void *f = field_of(base, k);
        char why[600];
        if (k->type == KT_U32)
            *(uint32_t *)f = (uint32_t)k->def;
        else if (k->type == KT_U64)
            *(uint64_t *)f = k->def;
        else if (k->type == KT_BOOL)
            *(int *)f = k->def != 0;
        else if (k->text_default)
            type_ops[k->type].set_text(k, k->text_default, strlen(k->text_default), f, why, sizeof why);
    }
}

static void channel_defaults(struct config_channel *ch, const char *name)
{
    memset(ch, 0, sizeof *ch);
    apply_defaults(ch, channel_keys, N_CHANNEL_KEYS);
    snprintf(ch->name, sizeof ch->name, "%s", name);
}

static void type_error(struct loader *l, const char *path, const struct key_spec *k, const json_t *v)
{
    key_error(l, path, "expected %s, got %s", type_ops[k->type].expected, json_type_name(v));
}

/* Gives a string value's bytes, or reports why it has none. */
static const char *string_value(struct loader *l, const char *path, const struct key_spec *k,
                                const json_t *v, size_t *len)
{
    if (!json_is_string(v)) {
        type_error(l, path, k, v);
        return NULL;
    }
    const char *s = json_string_value(v);
    *len = json_string_length(v);
    if (strlen(s) != *len) {
        key_error(l, path, "contains a NUL byte (\\u0000)");
        return NULL;
    }
    return s;
}

static int load_integer(struct loader *l, const char *path, const struct key_spec *k, const json_t *v,
                        void *base)
{
    if (!json_is_integer(v)) {
        type_error(l, path, k, v);
        return -1;
    }
    json_int_t n = json_integer_value(v);
    if (n < 0 || (uint64_t)n < k->min || (uint64_t)n > k->max) {
        key_error(l, path, "%" JSON_INTEGER_FORMAT " is out of range (%" PRIu64 "..%" PRIu64 ")",
                  n, k->min, k->max);
        return -1;
    }
    void *f = field_of(base, k);
    if (k->type == KT_U32)
        *(uint32_t *)f = (uint32_t)n;
    else
        *(uint64_t *)f = (uint64_t)n;
    return 0;
}

static int load_bool(struct loader *l, const char *path, const struct key_spec *k, const json_t *v,
                     void *base)
{
    if (!json_is_boolean(v)) {
        type_error(l, path, k, v);
        return -1;
    }
    *(int *)field_of(base, k) = json_is_true(v);
    return 0;
}

static int load_text(struct loader *l, const char *path, const struct key_spec *k, const json_t *v,
                     void *base)
{
    size_t len;
    const char *s = string_value(l, path, k, v, &len);
    if (!s)
        return -1;
    char why[600];
    const char *r = type_ops[k->type].set_text(k, s, len, field_of(base, k), why, sizeof why);
    if (r) {
        key_error(l, path, "%s", r);
        return -1;
    }
    return 0;
}

static int load_seed(struct loader *l, const char *path, const json_t *v, struct config_addr *out)
{
    /* An element is typed as an address, so its type error says "host:port". */
    static const struct key_spec elem = { .type = KT_ADDR };
    const struct key_spec *k = &elem;
    size_t len;
    const char *s = string_value(l, path, k, v, &len);
    if (!s)
        return -1;
    char why[600], q[300];
    if (set_addr(k, s, len, out, why, sizeof why)) {
        key_error(l, path, "%s", why);
        return -1;
    }
    if (out->port == 0) {
        key_error(l, path, "%s: port 0 cannot be dialled (1..65535)", quote(q, sizeof q, s, len));
        return -1;
    }
    if (addr_unspecified(out->host)) {
        key_error(l, path, "%s: %s means every interface, which a peer cannot dial; give the seed's own address",
                  quote(q, sizeof q, s, len), out->host);
        return -1;
    }
    return 0;
}

static int load_seeds(struct loader *l, const char *path, const struct key_spec *k, const json_t *v)
{
    if (!json_is_array(v)) {
        type_error(l, path, k, v);
        return -1;
    }
    size_t n = json_array_size(v);
    struct config_addr *seeds = n ? calloc(n, sizeof *seeds) : NULL;
    if (n && !seeds) {
        key_error(l, path, "out of memory for %zu seeds", n);
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char ipath[320];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        bad |= load_seed(l, ipath, json_array_get(v, i), &seeds[i]) != 0;
    }
    free(l->cfg->seeds);
    l->cfg->seeds = seeds;
    l->cfg->n_seeds = n;
    return bad ? -1 : 0;
}

/* An account name from the file: a string of 1..CONFIG_ACCOUNT_NAME_MAX
 * bytes. Returns it, or NULL after reporting why not. */
static const char *account_name(struct loader *l, const char *path, const json_t *v, const char *what)
{
    if (!json_is_string(v)) {
        key_error(l, path, "expected a string (a %s name), got %s", what, json_type_name(v));
        return NULL;
    }
    static const struct key_spec elem = { .type = KT_NAME };
    size_t len;
    const char *s = string_value(l, path, &elem, v, &len);
    if (!s)
        return NULL;
    char q[300];
    if (len == 0) {
        key_error(l, path, "a %s name must not be empty", what);
        return NULL;
    }
    if (len > CONFIG_ACCOUNT_NAME_MAX) {
        key_error(l, path, "%s is %zu bytes long (max %d for a %s name)", quote(q, sizeof q, s, len), len,
                  CONFIG_ACCOUNT_NAME_MAX, what);
        return NULL;
    }
    return s;
}

/* NSS says "not found" with a NULL result and errno 0 or one of these,
 * depending on the module; anything else is a failed lookup, which must not
 * be reported as a typo. */
static bool not_found_errno(int e)
{
    return e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM;
}

static int load_groups(struct loader *l, const char *path, const struct key_spec *k, const json_t *v)
{
    if (!json_is_array(v)) {
        type_error(l, path, k, v);
        return -1;
    }
    struct config_groups *g = field_of(l->cfg, k);
    memset(g, 0, sizeof *g);
    size_t n = json_array_size(v);
    bool bad = false;
    if (n > k->max) {
        key_error(l, path, "%zu groups is more than the limit of %" PRIu64, n, k->max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ipath[160], q[300];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        const char *name = account_name(l, ipath, json_array_get(v, i), "group");
        if (!name) {
            bad = true;
            continue;
        }
        errno = 0;
        const struct group *gr = getgrnam(name);
        if (!gr) {
            int e = errno;
            if (not_found_errno(e))
                key_error(l, ipath, "no such group %s", quote(q, sizeof q, name, strlen(name)));
            else
                key_error(l, ipath, "cannot look up group %s: %s", quote(q, sizeof q, name, strlen(name)),
                          strerror(e));
            bad = true;
            continue;
        }
        g->gid[g->n] = gr->gr_gid;
        snprintf(g->name[g->n], sizeof g->name[g->n], "%s", name);
        g->n++;
    }
    if (bad)
        memset(g, 0, sizeof *g);
    return bad ? -1 : 0;
}

static int load_users(struct loader *l, const char *path, const struct key_spec *k, const json_t *v)
{
    if (!json_is_object(v)) {
        type_error(l, path, k, v);
        return -1;
    }
    struct config *c = l->cfg;
    c->n_ipc_names = 0;
    size_t n = json_object_size(v);
    if (n > k->max) {
        key_error(l, path, "%zu reserved names is more than the limit of %" PRIu64, n, k->max);
        return -1;
    }
    bool bad = false;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        char kpath[400], q[300];
        make_path(kpath, sizeof kpath, path, key);
        size_t klen = strlen(key);
        /* The same bounds as a register request, so no entry can reserve a
         * name nobody could register. */
        if (klen == 0 || klen > CONFIG_NAME_MAX) {
            key_error(l, kpath, "a registered name must be 1 to %d bytes, this one is %zu", CONFIG_NAME_MAX, klen);
            bad = true;
            continue;
        }
        const char *user = account_name(l, kpath, val, "user");
        if (!user) {
            bad = true;
            continue;
        }
        errno = 0;
        const struct passwd *pw = getpwnam(user);
        if (!pw) {
            int e = errno;
            if (not_found_errno(e))
                key_error(l, kpath, "no such user %s", quote(q, sizeof q, user, strlen(user)));
            else
                key_error(l, kpath, "cannot look up user %s: %s", quote(q, sizeof q, user, strlen(user)),
                          strerror(e));
            bad = true;
            continue;
        }
        struct config_reserved_name *r = &c->ipc_names[c->n_ipc_names++];
        memcpy(r->name, key, klen + 1);
        r->uid = pw->pw_uid;
        snprintf(r->user, sizeof r->user, "%s", user);
    }
    if (bad) {
        memset(c->ipc_names, 0, sizeof c->ipc_names);
        c->n_ipc_names = 0;
    }
    return bad ? -1 : 0;
}

static int load_channels(struct loader *l, const char *path, const struct key_spec *k, const json_t *v);

/* The faults section is checked by the faults core's own loader (one
 * grammar for the config and the CLI) and kept as text for node.c. */
static int load_faults(struct loader *l, const char *path, const json_t *v)
{
    struct faults *f = faults_new("");
    if (!f) {
        key_error(l, path, "out of memory");
        return -1;
    }
    char err[600];
    bool enabled;
    int rc = faults_config_load(f, v, &enabled, err, sizeof err);
    faults_free(f);
    if (rc != 0) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s: %s", l->origin, err);
        emit(l, msg);
        return -1;
    }
    free(l->cfg->faults_json);
    l->cfg->faults_json = json_dumps(v, JSON_COMPACT);
    if (!l->cfg->faults_json) {
        key_error(l, path, "out of memory");
        return -1;
    }
    return 0;
}

/* One value of a scalar or array key into the struct at base (seeds,
 * channels, groups and reserved names always go to l->cfg). */
static int load_value(struct loader *l, const char *path, const struct key_spec *k, const json_t *v,
                      void *base)
{
    switch (k->type) {
    case KT_U32: case KT_U64: return load_integer(l, path, k, v, base);
    case KT_BOOL: return load_bool(l, path, k, v, base);
    case KT_SEEDS: return load_seeds(l, path, k, v);
    case KT_CHANNELS: return load_channels(l, path, k, v);
    case KT_GROUPS: return load_groups(l, path, k, v);
    case KT_USERS: return load_users(l, path, k, v);
    case KT_FAULTS: return load_faults(l, path, v);
    default: return load_text(l, path, k, v, base);
    }
}

static int load_key(struct loader *l, const char *path, const struct key_spec *k, const json_t *v)
{
    return load_value(l, path, k, v, l->cfg);
}

/* One element of "channels" into *ch, from the defaults. Returns 0, or -1
 * after reporting its errors; *name_ok says whether ch->name is a usable
 * name (given, valid, not reserved), which the duplicate check needs. */
static int load_channel(struct loader *l, const char *path, const json_t *v,
                        struct config_channel *ch, bool *name_ok)
{
    *name_ok = false;
    if (!json_is_object(v)) {
        key_error(l, path, "expected a channel object ({\"name\": ...}), got %s", json_type_name(v));
        return -1;
    }
    channel_defaults(ch, "");
    bool named = false, bad = false;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        const struct key_spec *k = NULL;
        for (size_t i = 0; i < N_CHANNEL_KEYS && !k; i++)
            if (strcmp(channel_keys[i].name, key) == 0)
                k = &channel_keys[i];
        if (!k) {
            const char *cands[N_CHANNEL_KEYS];
            for (size_t i = 0; i < N_CHANNEL_KEYS; i++)
                cands[i] = channel_keys[i].name;
            unknown_key_among(l, path, key, cands, N_CHANNEL_KEYS);
            bad = true;
            continue;
        }
        char kpath[128];
        make_path(kpath, sizeof kpath, path, key);
        int r = load_value(l, kpath, k, val, ch);
        bad |= r != 0;
        if (k->type == KT_NAME) {
            named = true;
            *name_ok = r == 0;
            if (r == 0 && strcmp(ch->name, CONFIG_CONTROL_CHANNEL) == 0) {
                key_error(l, kpath, "\"%s\" is reserved for the internal control channel", CONFIG_CONTROL_CHANNEL);
                *name_ok = false;
                bad = true;
            }
        }
    }
    if (!named) {
        key_error(l, path, "missing \"name\" (every channel needs one)");
        bad = true;
    }
    if (ch->causal)
        ch->reliable = 1;   /* causal order is built on the reliable channel below it */
    if (ch->reliable && ch->monotonic) {
        key_error(l, path, "a channel cannot be both monotonic (newer messages replace older ones) and %s "
                  "(every message is delivered)", ch->causal ? "causal" : "reliable");
        bad = true;
    }
    return bad ? -1 : 0;
}

/* The first element before `i` with the same "name" string as element i,
 * or i if there is none. */
static size_t first_with_name(const json_t *arr, size_t i)
{
    const json_t *name = json_object_get(json_array_get(arr, i), "name");
    for (size_t j = 0; j < i; j++) {
        const json_t *e = json_array_get(arr, j);
        const json_t *other = json_is_object(e) ? json_object_get(e, "name") : NULL;
        if (other && json_equal((json_t *)other, (json_t *)name))
            return j;
    }
    return i;
}

/* "default" is channels[0] wherever the file lists it (and whether or not
 * it does); the others follow in file order. */
static int load_channels(struct loader *l, const char *path, const struct key_spec *k, const json_t *v)
{
    if (!json_is_array(v)) {
        type_error(l, path, k, v);
        return -1;
    }
    struct config *c = l->cfg;
    size_t n = json_array_size(v), total = 1;   /* "default" is always there */
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        char ipath[64], q[300];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        struct config_channel ch;
        bool name_ok;
        bad |= load_channel(l, ipath, json_array_get(v, i), &ch, &name_ok) != 0;
        if (!name_ok)
            continue;
        size_t first = first_with_name(v, i);
        if (first < i) {
            char npath[80];
            snprintf(npath, sizeof npath, "%s.name", ipath);
            key_error(l, npath, "duplicate channel %s (also %s[%zu])",
                      quote(q, sizeof q, ch.name, strlen(ch.name)), path, first);
            bad = true;
            continue;
        }
        if (strcmp(ch.name, CONFIG_DEFAULT_CHANNEL) == 0) {
            c->channels[0] = ch;
            continue;
        }
        if (total < k->max)
            c->channels[c->n_channels++] = ch;
        total++;
    }
    if (total > k->max) {
        key_error(l, path, "%zu channels (\"%s\" included) is more than the limit of %" PRIu64,
                  total, CONFIG_DEFAULT_CHANNEL, k->max);
        bad = true;
    }
    return bad ? -1 : 0;
}

/* --------------------------------------------------------------- loading -- */

/* section NULL: a top-level key. */
static int key_index(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (same_section(keys[i].section, section) && strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool is_section(const char *name)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (strcmp(sections[i], name) == 0)
            return true;
    return false;
}

/* One key of keys[] within `section` (NULL: the top level). */
static void load_one(struct loader *l, const char *section, const char *name, const json_t *v)
{
    int i = key_index(section, name);
    if (i < 0) {
        unknown_key(l, section, name);
        return;
    }
    char path[128];
    make_path(path, sizeof path, section, name);
    l->given |= UINT64_C(1) << i;
    if (load_key(l, path, &keys[i], v) != 0)
        l->bad |= UINT64_C(1) << i;
}

static void load_section(struct loader *l, const char *section, const json_t *obj)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v) {
        const char *sub = NULL;
        for (size_t i = 0; i < N_SUBSECTIONS; i++)
            if (!strcmp(subsections[i].parent, section) && !strcmp(subsections[i].name, name))
                sub = subsections[i].section;
        if (!sub) {
            load_one(l, section, name, v);
            continue;
        }
        if (!json_is_object(v)) {
            char path[128];
            make_path(path, sizeof path, section, name);
            key_error(l, path, "expected an object, got %s", json_type_name(v));
            continue;
        }
        load_section(l, sub, v);
    }
}

static bool key_ok(const struct loader *l, const char *section, const char *name)
{
    int i = key_index(section, name);
    return i >= 0 && !(l->bad & (UINT64_C(1) << i));
}

static bool key_given(const struct loader *l, const char *section, const char *name)
{
    int i = key_index(section, name);
    return i >= 0 && (l->given & (UINT64_C(1) << i));
}

/* Cross-key rules; each runs only when its keys were valid on their own, so
 * one mistake is reported once. */
static void check_node_addrs(struct loader *l)
{
    struct config *c = l->cfg;
    char a[CONFIG_ADDR_MAX + 16];
    if (key_given(l, "node", "advertise")) {
        if (!key_ok(l, "node", "advertise"))
            return;
        c->advertise_set = 1;
        config_format_addr(&c->advertise, a, sizeof a);
        if (c->advertise.port == 0)
            key_error(l, "node.advertise", "\"%s\": port 0 cannot be dialled; give the port peers should dial (1..65535)", a);
        if (addr_unspecified(c->advertise.host))
            key_error(l, "node.advertise", "\"%s\": %s means every interface, which peers cannot dial; give this host's reachable address",
                      a, c->advertise.host);
        return;
    }
    if (!key_ok(l, "node", "listen"))
        return;
    c->advertise = c->listen;
    if (addr_unspecified(c->listen.host)) {
        config_format_addr(&c->listen, a, sizeof a);
        key_error(l, "node.listen", "\"%s\" listens on every interface, so peers cannot be told where to dial: "
                  "set node.advertise to this host's reachable \"host:port\"", a);
    }
}

struct ordered_pair {
    const char *section, *low, *high;
    bool strict;
};

static const struct ordered_pair ordered[] = {
    { "failure_detector", "ping_interval_ms", "timeout_ms", true },
    { "overlay.hyparview", "active_min_size", "active_max_size", false },
    { "transport", "backoff_initial_ms", "backoff_max_ms", false },
    { "transport", "max_frame_bytes", "max_queue_bytes", false },
    { "ipc", "max_frame_bytes", "max_queue_bytes", false },
};

static uint64_t int_value(struct config *cfg, int i)
{
    void *f = field_of(cfg, &keys[i]);
    return keys[i].type == KT_U32 ? *(uint32_t *)f : *(uint64_t *)f;
}

static void check_ordered(struct loader *l)
{
    for (size_t p = 0; p < sizeof ordered / sizeof ordered[0]; p++) {
        const struct ordered_pair *o = &ordered[p];
        if (!key_ok(l, o->section, o->low) || !key_ok(l, o->section, o->high))
            continue;
        uint64_t lo = int_value(l->cfg, key_index(o->section, o->low));
        uint64_t hi = int_value(l->cfg, key_index(o->section, o->high));
        if (o->strict ? hi > lo : hi >= lo)
            continue;
        char path[128];
        snprintf(path, sizeof path, "%s.%s", o->section, o->high);
        key_error(l, path, "%" PRIu64 " must be %s %s.%s (%" PRIu64 ")", hi,
                  o->strict ? "greater than" : "at least", o->section, o->low, lo);
    }
}

/* TLS is all or nothing: a half-configured link security must not quietly
 * become plaintext. */
static void check_tls(struct loader *l)
{
    static const char *const files[] = { "ca_file", "cert_file", "key_file" };
    const char *vals[] = { l->cfg->tls_ca_file, l->cfg->tls_cert_file, l->cfg->tls_key_file };
    int set = 0;
    for (int i = 0; i < 3; i++)
        set += vals[i][0] != '\0';
    if (set == 0 || set == 3)
        return;
    for (int i = 0; i < 3; i++)
        if (!vals[i][0]) {
            char path[32];
            snprintf(path, sizeof path, "tls.%s", files[i]);
            key_error(l, path, "missing: tls needs ca_file, cert_file and key_file together (or none, for "
                               "plaintext links)");
        }
}

/* The host name is only a default; if it is not a valid node name, say so
 * rather than start under a name peers will refuse. */
static void check_default_name(struct loader *l)
{
    if (key_given(l, "node", "name"))
        return;
    const char *n = l->cfg->node_name;
    char why[600], tmp[CONFIG_NAME_MAX + 1];
    const char *r = set_name(&keys[key_index("node", "name")], n, strlen(n), tmp, why, sizeof why);
    if (r)
        key_error(l, "node.name", "not set, and the host name is no valid default: %s", r);
}

static void load_root(struct loader *l, const json_t *root)
{
    if (!json_is_object(root)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: top level must be an object, got %s", l->origin, json_type_name(root));
        emit(l, msg);
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)root, name, v) {
        if (!is_section(name)) {
            load_one(l, NULL, name, v);   /* a top-level key, or unknown */
            continue;
        }
        if (!json_is_object(v)) {
            key_error(l, name, "expected an object, got %s", json_type_name(v));
            continue;
        }
        load_section(l, name, v);
    }
    check_node_addrs(l);
    check_ordered(l);
    check_default_name(l);
    check_tls(l);
}

static void syntax_error(struct loader *l, const json_error_t *e)
{
    /* jansson's text echoes the offending token raw ("invalid escape near
     * '"x\u00<newline>'"): escape it like quote() does, or a hostile file
     * could split the log line or send terminal escapes. */
    char text[sizeof e->text * 4];
    size_t o = 0;
    for (size_t i = 0; i < sizeof e->text && e->text[i] && o + 5 < sizeof text; i++) {
        unsigned char c = (unsigned char)e->text[i];
        if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(text + o, sizeof text - o, "\\x%02x", c);
        else
            text[o++] = (char)c;
    }
    text[o] = '\0';
    char msg[1024];
    if (e->line > 0)
        snprintf(msg, sizeof msg, "%s:%d:%d: %s", l->origin, e->line, e->column, text);
    else
        snprintf(msg, sizeof msg, "%s: %s", l->origin, text);
    emit(l, msg);
}

static int finish(struct loader *l, json_t *root)
{
    load_root(l, root);
    json_decref(root);
    if (l->errors)
        config_free(l->cfg);
    return l->errors;
}

/* JSON_ALLOW_NUL lets a "\u0000" reach string_value(), which names the key;
 * without it jansson rejects it with a message that does not. */
#define PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)

int config_load_string(const char *text, const char *origin, struct config *cfg,
                       config_error_fn err, void *ctx)
{
    struct loader l = { .origin = origin ? origin : "<string>", .fn = err, .ctx = ctx, .cfg = cfg };
    config_defaults(cfg);
    json_error_t e;
    json_t *root = json_loads(text ? text : "", PARSE_FLAGS, &e);
    if (!root) {
        syntax_error(&l, &e);
        config_free(cfg);
        return l.errors;
    }
    return finish(&l, root);
}

int config_load(const char *path, struct config *cfg, config_error_fn err, void *ctx)
{
    struct loader l = { .origin = path, .fn = err, .ctx = ctx, .cfg = cfg };
    config_defaults(cfg);
    /* Opened here rather than by json_load_file so the message carries the
     * errno of the open itself, not whatever a later call left behind. */
    FILE *f = fopen(path, "r");
    if (!f) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: cannot open: %s", path, strerror(errno));
        emit(&l, msg);
        return l.errors;
    }
    json_error_t e;
    json_t *root = json_loadf(f, PARSE_FLAGS, &e);
    int read_err = ferror(f) ? errno : 0;
    fclose(f);
    if (!root) {
        if (read_err) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s: cannot read: %s", path, strerror(read_err));
            emit(&l, msg);
        } else {
            syntax_error(&l, &e);
        }
        config_free(cfg);
        return l.errors;
    }
    return finish(&l, root);
}

/* ------------------------------------------------------------- defaults -- */

static void default_hostname(char *out, size_t len)
{
    if (gethostname(out, len) != 0 || out[0] == '\0')
        snprintf(out, len, "localhost");
    out[len - 1] = '\0';
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    apply_defaults(cfg, keys, N_KEYS);
    default_hostname(cfg->node_name, sizeof cfg->node_name);
    cfg->advertise = cfg->listen;
    cfg->advertise_set = 0;
    cfg->seeds = NULL;
    cfg->n_seeds = 0;
    channel_defaults(&cfg->channels[0], CONFIG_DEFAULT_CHANNEL);
    cfg->n_channels = 1;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    free(cfg->seeds);
    cfg->seeds = NULL;
    cfg->n_seeds = 0;
    free(cfg->faults_json);
    cfg->faults_json = NULL;
}

int config_copy(struct config *dst, const struct config *src)
{
    *dst = *src;
    dst->seeds = NULL;
    dst->faults_json = NULL;
    if (src->n_seeds) {
        dst->seeds = calloc(src->n_seeds, sizeof *dst->seeds);
        if (!dst->seeds)
            return -1;
        memcpy(dst->seeds, src->seeds, src->n_seeds * sizeof *dst->seeds);
    }
    if (src->faults_json && !(dst->faults_json = strdup(src->faults_json))) {
        config_free(dst);
        return -1;
    }
    return 0;
}

const char *config_overlay_name(enum overlay_type t)
{
    return (size_t)t < N_OVERLAYS ? overlays[t].name : "unknown";
}

const struct config_reserved_name *config_reserved_name(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_ipc_names && i < CONFIG_IPC_NAMES_MAX; i++)
        if (strcmp(cfg->ipc_names[i].name, name) == 0)
            return &cfg->ipc_names[i];
    return NULL;
}

int config_channel_index(const struct config *cfg, const char *name)
{
    if (!cfg)
        return -1;
    if (!name || !*name)
        name = CONFIG_DEFAULT_CHANNEL;
    for (size_t i = 0; i < cfg->n_channels && i < CONFIG_CHANNELS_MAX; i++)
        if (strcmp(cfg->channels[i].name, name) == 0)
            return (int)i;
    return -1;
}
