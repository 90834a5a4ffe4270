/* One real daemon, driven through partisanctl and the client library:
 * what an application and an operator see on a single node. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "partisan.h"
#include "peer.pb-c.h"

#define T 10000 /* ms: the bound on any single wait */

static struct daemon_proc d;

static int start_default(const char *extra)
{
    harness_daemon_init(&d, "solo", extra);
    return harness_daemon_start(&d, T);
}

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    if (len >= sizeof sun.sun_path) {
        close(fd);
        return -1;
    }
    memcpy(sun.sun_path, path, len + 1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* True when the daemon closed the connection (read returns 0 or ECONNRESET). */
static bool closed_by_daemon(int fd)
{
    char buf[256];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false; /* timeout: still open */
    }
}

static bool daemon_answers(void)
{
    partisan_client *c = NULL;
    if (partisan_connect(d.socket, &c) != 0)
        return false;
    struct partisan_status *s = NULL;
    int rc = partisan_status(c, &s, T);
    partisan_status_free(s);
    partisan_close(c);
    return rc == 0;
}

static void test_status_text_and_json(void)
{
    CHECK(start_default("\"cluster\": {\"name\": \"testers\"}") == 0, "daemon did not start");
    char out[4096], err[1024];
    int rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "status", NULL);
    CHECK(rc == 0, "status exit %d: %s", rc, err);
    CHECK(strstr(out, "solo"), "node name missing: %s", out);
    CHECK(strstr(out, "testers"), "cluster missing: %s", out);
    CHECK(strstr(out, "full_mesh"), "overlay missing: %s", out);
    CHECK(strstr(out, d.listen), "listen address %s missing: %s", d.listen, out);
    CHECK(strstr(d.listen, "127.0.0.1:") && strcmp(d.listen, "127.0.0.1:0") != 0,
          "listen should show the bound port, got %s", d.listen);
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "--json", "status", NULL);
    CHECK(rc == 0, "status --json exit %d: %s", rc, err);
    const char *keys[] = { "\"node\":\"solo\"", "\"cluster\":\"testers\"", "\"overlay\":\"full_mesh\"",
                           "\"listen\":", "\"socket\":", "\"version\":", "\"uptime_s\":",
                           "\"members\":1", "\"members_up\":1" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK(strstr(out, keys[i]), "status --json lacks %s: %s", keys[i], out);
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "--json", "members", NULL);
    CHECK(rc == 0 && strstr(out, "\"name\":\"solo\"") && strstr(out, "\"reachability\":\"up\""),
          "members --json: exit %d: %s", rc, out);
}

static bool name_registered(void *arg)
{
    (void)arg;
    partisan_client *c = NULL;
    if (partisan_connect(d.socket, &c) != 0)
        return false;
    /* Unregistering another's name changes nothing; registering it to
     * probe would make the CLI's own register lose the race. */
    int rc = partisan_unregister(c, "inbox", T);
    partisan_close(c);
    return rc == PARTISAN_ENOTOWNER;
}

static void test_cli_send_recv_round_trip(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    char path[700];
    snprintf(path, sizeof path, "%s/recv.out", d.dir);
    pid_t r = harness_ctl_spawn(&d, path, "recv", "inbox", "--count", "2", "--timeout-ms", "8000", NULL);
    CHECK(harness_wait_until(name_registered, NULL, T), "recv never registered inbox");
    char out[1024], err[1024];
    int rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "send", "solo", "inbox", "hello", NULL);
    CHECK(rc == 0, "send exit %d: %s", rc, err);
    rc = harness_ctl(&d, "from stdin", out, sizeof out, err, sizeof err, T, "send", "solo", "inbox", "-", NULL);
    CHECK(rc == 0, "send - exit %d: %s", rc, err);
    CHECK(harness_wait_exit(r, T) == 0, "recv did not exit 0 after 2 messages");
    char *got = harness_slurp(path, NULL);
    bool same = got && strcmp(got, "hello\nfrom stdin\n") == 0;
    CHECK(same, "recv printed \"%.200s\"", got ? got : "(unreadable)");
    free(got);
}

static void test_recv_times_out(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    char out[256], err[512];
    uint64_t t0 = harness_now_ms();
    int rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "recv", "quiet", "--timeout-ms", "300", NULL);
    uint64_t took = harness_now_ms() - t0;
    CHECK(rc == 1, "recv on timeout should exit 1, got %d", rc);
    CHECK(took >= 300 && took < 5000, "timeout took %llu ms", (unsigned long long)took);
    CHECK(strstr(err, "timed out"), "stderr: %s", err);
}

static void test_duplicate_name_refused(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    partisan_client *a = NULL, *b = NULL;
    CHECK(partisan_connect(d.socket, &a) == 0 && partisan_connect(d.socket, &b) == 0, "connect");
    CHECK(partisan_register(a, "worker", T) == 0, "first register failed");
    int rc = partisan_register(b, "worker", T);
    CHECK(rc == PARTISAN_ENAMETAKEN, "second register: %s", partisan_strerror(rc));
    CHECK(strstr(partisan_last_error(b), "worker"), "error text: %s", partisan_last_error(b));
    char out[256], err[512];
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "recv", "worker", "--timeout-ms", "200", NULL);
    CHECK(rc == 1 && strstr(err, "taken"), "CLI recv on a taken name: exit %d, %s", rc, err);
    /* A client's names go with it. */
    partisan_close(a);
    uint64_t deadline = harness_now_ms() + T;
    while ((rc = partisan_register(b, "worker", T)) == PARTISAN_ENAMETAKEN && harness_now_ms() < deadline)
        usleep(20000);
    CHECK(rc == 0, "name not released after its owner closed: %s", partisan_strerror(rc));
    partisan_close(b);
}

static void test_unknown_name_and_node(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    char out[256], err[512];
    int rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "send", "solo", "nobody", "x", NULL);
    CHECK(rc == 1 && strstr(err, "nobody"), "send to unknown name: exit %d, %s", rc, err);
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "send", "ghost", "inbox", "x", NULL);
    CHECK(rc == 1 && strstr(err, "ghost"), "send to unknown node: exit %d, %s", rc, err);
    partisan_client *c = NULL;
    CHECK(partisan_connect(d.socket, &c) == 0, "connect");
    rc = partisan_send_sync(c, "solo", "nobody", "x", 1, T);
    CHECK(rc == PARTISAN_ENONAME, "send_sync: %s", partisan_strerror(rc));
    /* A pipelined send's failure surfaces at flush. */
    CHECK(partisan_send(c, "solo", "nobody", "x", 1) == 0, "async send refused locally");
    rc = partisan_flush(c, T);
    CHECK(rc != 0, "flush hid the failed send");
    partisan_close(c);
}

/* Broadcast on a full mesh of one: the holder of the name gets it once,
 * from this node; bad names and missing arguments are refused clearly. */
static void test_broadcast_once_and_bad_input(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    partisan_client *tx = NULL, *rx = NULL;
    CHECK(partisan_connect(d.socket, &tx) == 0 && partisan_connect(d.socket, &rx) == 0, "connect");
    CHECK(partisan_register(rx, "all", T) == 0, "register");
    CHECK(partisan_broadcast(tx, "all", "hi", 2, T) == 0, "broadcast: %s", partisan_last_error(tx));
    struct partisan_message *m = NULL;
    CHECK(partisan_recv(rx, &m, T) == 0, "the broadcast did not arrive");
    bool right = m->kind == PARTISAN_MSG_DATA && m->len == 2 && memcmp(m->payload, "hi", 2) == 0 &&
                 strcmp(m->from_node, "solo") == 0 && strcmp(m->name, "all") == 0;
    partisan_message_free(m);
    CHECK(right, "the broadcast arrived wrong");
    m = NULL;
    int rc = partisan_recv(rx, &m, 300);
    partisan_message_free(m);
    CHECK(rc == PARTISAN_ETIMEDOUT, "a second copy arrived (%s)", partisan_strerror(rc));
    CHECK(partisan_broadcast(tx, "", "x", 1, T) == PARTISAN_EINVAL, "an empty name was not refused");
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(partisan_broadcast(tx, longname, "x", 1, T) == PARTISAN_EINVAL, "a 299-byte name was not refused");
    /* Nobody holds the name: ok (best effort), counted as undeliverable. */
    CHECK(partisan_broadcast(tx, "nobody", "x", 1, T) == 0, "broadcast to a name nobody holds");
    partisan_close(tx);
    partisan_close(rx);
    char out[256], err[512];
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "broadcast", "all", NULL);
    CHECK(rc == 2 && strstr(err, "broadcast"), "broadcast without a message: exit %d, %s", rc, err);
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "broadcast", "", "x", NULL);
    CHECK(rc == 2 && strstr(err, "NAME must not be empty"), "broadcast to an empty name: exit %d, %s", rc, err);
}

static void test_cli_usage_and_no_daemon(void)
{
    harness_daemon_init(&d, "absent", "");
    char out[256], err[1024];
    int rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "status", NULL);
    CHECK(rc == 1 && strstr(err, "no daemon") && strstr(err, d.socket), "no daemon: exit %d, %s", rc, err);
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "frobnicate", NULL);
    CHECK(rc == 2, "unknown command should exit 2, got %d", rc);
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "send", "onlynode", NULL);
    CHECK(rc == 2, "missing arguments should exit 2, got %d", rc);
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "recv", "x", "--count", "many", NULL);
    CHECK(rc == 2, "bad number should exit 2, got %d", rc);
}

static void test_bad_frames_close_only_that_client(void)
{
    harness_daemon_init(&d, "frames", "\"ipc\": {\"socket\": \"@SOCK@\", \"max_frame_bytes\": 65536}");
    CHECK(harness_daemon_start(&d, T) == 0, "daemon did not start");

    partisan_client *bystander = NULL;
    CHECK(partisan_connect(d.socket, &bystander) == 0, "connect");
    CHECK(partisan_register(bystander, "keep", T) == 0, "register");

    static const unsigned char garbage[] = { 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const unsigned char huge[] = { 0x7f, 0xff, 0xff, 0xff };
    static const unsigned char above_max[] = { 0, 1, 0x10, 1 }; /* 65536 + 4096 + 1 */
    static const unsigned char zero[] = { 0, 0, 0, 0 };
    struct { const char *what; const unsigned char *b; size_t n; } cases[] = {
        { "garbage protobuf", garbage, sizeof garbage },
        { "2 GiB length", huge, sizeof huge },
        { "length above ipc.max_frame_bytes", above_max, sizeof above_max },
        { "zero length", zero, sizeof zero },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = raw_connect(d.socket);
        CHECK(fd >= 0, "raw connect");
        CHECK(write(fd, cases[i].b, cases[i].n) == (ssize_t)cases[i].n, "write");
        CHECK(closed_by_daemon(fd), "%s: connection not closed", cases[i].what);
        close(fd);
        CHECK(daemon_answers(), "daemon stopped answering after %s", cases[i].what);
    }
    /* A client vanishing mid-frame. */
    int fd = raw_connect(d.socket);
    static const unsigned char partial[] = { 0, 0, 0, 100, 8, 1 };
    CHECK(write(fd, partial, sizeof partial) == (ssize_t)sizeof partial, "write");
    close(fd);
    CHECK(daemon_answers(), "daemon stopped answering after a client vanished mid-frame");
    /* The bystander's session and name survived all of it. */
    CHECK(partisan_send_sync(bystander, "frames", "keep", "still here", 10, T) == 0, "bystander send");
    struct partisan_message *m = NULL;
    CHECK(partisan_recv(bystander, &m, T) == 0 && m->len == 10, "bystander recv");
    partisan_message_free(m);
    /* A payload just above the maximum gets an answer, not a closed socket. */
    {
        partisan_client *c = NULL;
        CHECK(partisan_connect(d.socket, &c) == 0, "connect");
        size_t len = 65536 + 100;
        char *p = calloc(1, len);
        int rc = partisan_send_sync(c, "frames", "keep", p, len, T);
        free(p);
        CHECK(rc == PARTISAN_ETOOBIG, "payload just above the maximum: %s", partisan_strerror(rc));
        CHECK(strstr(partisan_last_error(c), "max_frame_bytes"), "error text: %s", partisan_last_error(c));
        CHECK(partisan_send_sync(c, "frames", "keep", "ok", 2, T) == 0, "the client was closed after TOO_LARGE");
        partisan_close(c);
        struct partisan_message *ok = NULL;
        CHECK(partisan_recv(bystander, &ok, T) == 0 && ok->len == 2, "bystander recv");
        partisan_message_free(ok);
    }
    /* An oversized request through the library closes that client only. */
    partisan_client *big = NULL;
    CHECK(partisan_connect(d.socket, &big) == 0, "connect");
    size_t n = 100 * 1024;
    char *payload = calloc(1, n);
    int rc = partisan_send_sync(big, "frames", "keep", payload, n, T);
    free(payload);
    CHECK(rc == PARTISAN_ECLOSED || rc == PARTISAN_EIO, "oversized send: %s", partisan_strerror(rc));
    partisan_close(big);
    CHECK(daemon_answers(), "daemon stopped answering after an oversized request");
    partisan_close(bystander);
    CHECK(harness_file_contains(d.log, "bad frame") == 1, "closes were not logged");
}

static void test_pipelined_sends_arrive_in_order(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    partisan_client *rx = NULL, *tx = NULL;
    CHECK(partisan_connect(d.socket, &rx) == 0 && partisan_connect(d.socket, &tx) == 0, "connect");
    CHECK(partisan_register(rx, "sink", T) == 0, "register");
    enum { N = 20000 };
    int next = 0;
    for (int i = 0; i < N; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "m%d", i);
        int rc = partisan_send(tx, "solo", "sink", msg, (size_t)len);
        CHECK(rc == 0, "send %d: %s", i, partisan_strerror(rc));
        /* Receive as we go, as a real consumer would. */
        struct partisan_message *m = NULL;
        while (partisan_recv(rx, &m, 0) == 0) {
            char want[32];
            int wl = snprintf(want, sizeof want, "m%d", next);
            CHECK(m->len == (size_t)wl && memcmp(m->payload, want, m->len) == 0, "message %d out of order", next);
            next++;
            partisan_message_free(m);
        }
    }
    CHECK(partisan_flush(tx, T) == 0, "flush reported a failed send");
    while (next < N) {
        struct partisan_message *m = NULL;
        int rc = partisan_recv(rx, &m, T);
        CHECK(rc == 0, "recv %d: %s", next, partisan_strerror(rc));
        char want[32];
        int wl = snprintf(want, sizeof want, "m%d", next);
        CHECK(m->len == (size_t)wl && memcmp(m->payload, want, m->len) == 0, "message %d out of order", next);
        CHECK(strcmp(m->from_node, "solo") == 0 && strcmp(m->name, "sink") == 0, "envelope");
        next++;
        partisan_message_free(m);
    }
    partisan_close(rx);
    partisan_close(tx);
}

static void test_slow_reader_is_bounded(void)
{
    harness_daemon_init(&d, "slow", "\"ipc\": {\"socket\": \"@SOCK@\", \"max_queue_bytes\": 65536, \"max_frame_bytes\": 16384}");
    CHECK(harness_daemon_start(&d, T) == 0, "daemon did not start");
    partisan_client *rx = NULL;
    CHECK(partisan_connect(d.socket, &rx) == 0, "connect");
    CHECK(partisan_register(rx, "never-reads", T) == 0, "register");
    /* A raw sender pipelines 4 MiB at a receiver that never reads: the
     * daemon must stop reading it (backpressure), not buffer it all. */
    int fd = raw_connect(d.socket);
    CHECK(fd >= 0, "raw connect");
    struct timeval tv = { .tv_sec = 0, .tv_usec = 300000 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* IpcRequest{id=1, send{node="slow", name="never-reads", payload=4000 bytes}} */
    unsigned char frame[4200];
    size_t n = 0;
    unsigned char body[4150];
    size_t b = 0;
    body[b++] = 0x08; body[b++] = 0x01;                 /* id = 1 */
    unsigned char send[4120];
    size_t s = 0;
    send[s++] = 0x0a; send[s++] = 4; memcpy(send + s, "slow", 4); s += 4;
    send[s++] = 0x12; send[s++] = 11; memcpy(send + s, "never-reads", 11); s += 11;
    send[s++] = 0x1a; send[s++] = 0xa0; send[s++] = 0x1f; /* 4000 as a varint */
    memset(send + s, 'x', 4000); s += 4000;
    body[b++] = 0x6a; body[b++] = (unsigned char)(0x80 | (s & 0x7f)); body[b++] = (unsigned char)(s >> 7);
    memcpy(body + b, send, s); b += s;
    frame[0] = 0; frame[1] = 0; frame[2] = (unsigned char)(b >> 8); frame[3] = (unsigned char)b;
    memcpy(frame + 4, body, b); n = 4 + b;
    size_t sent = 0;
    for (int i = 0; i < 1024; i++) {
        ssize_t w = write(fd, frame, n);
        if (w != (ssize_t)n)
            break;
        sent += (size_t)w;
    }
    CHECK(sent < 4u << 20, "the daemon took all %zu bytes from a sender whose receiver never reads", sent);
    CHECK(daemon_answers(), "daemon stopped answering other clients");
    /* When the receiver goes, the blocked sender is released: its further
     * sends are answered (no such name) rather than hanging. */
    partisan_close(rx);
    CHECK(daemon_answers(), "daemon stopped answering after the receiver left");
    close(fd);
}

static void test_timeouts_hold_under_a_stream(void)
{
    /* A client that is flooded with deliveries must still see its own
     * blocking calls end at their timeout. */
    CHECK(start_default("") == 0, "daemon did not start");
    partisan_client *tx = NULL, *rx = NULL;
    CHECK(partisan_connect(d.socket, &tx) == 0 && partisan_connect(d.socket, &rx) == 0, "connect");
    CHECK(partisan_register(rx, "flooded", T) == 0, "register");
    pid_t pid = fork();
    if (pid == 0) {
        partisan_close(rx); /* the child's copy only: the parent keeps its session */
        uint64_t end = harness_now_ms() + 3000;
        while (harness_now_ms() < end)
            partisan_send(tx, "solo", "flooded", "spam spam spam", 14);
        _exit(0);
    }
    usleep(200 * 1000);
    uint64_t t0 = harness_now_ms();
    int rc = partisan_send_sync(rx, "solo", "nobody", "x", 1, 200);
    uint64_t took = harness_now_ms() - t0;
    CHECK(rc == PARTISAN_ENONAME || rc == PARTISAN_ETIMEDOUT, "send_sync: %s", partisan_strerror(rc));
    CHECK(took < 1500, "a 200 ms call took %llu ms while deliveries streamed in", (unsigned long long)took);
    t0 = harness_now_ms();
    struct partisan_status *st = NULL;
    rc = partisan_status(rx, &st, 200);
    partisan_status_free(st);
    took = harness_now_ms() - t0;
    CHECK(took < 1500, "status took %llu ms while deliveries streamed in", (unsigned long long)took);
    partisan_close(rx); /* releases the sender, which backpressure holds */
    CHECK(harness_wait_exit(pid, T) == 0, "the flooding sender did not finish");
    partisan_close(tx);
}

static void test_corrupt_state_is_logged_and_ignored(void)
{
    /* A damaged state directory must not keep a node from starting. */
    harness_daemon_init(&d, "damaged", "");
    char path[700];
    snprintf(path, sizeof path, "%s/state", d.dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/state/incarnation", d.dir);
    FILE *f = fopen(path, "w");
    fputs("18446744073709551615\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/state/members", d.dir);
    f = fopen(path, "w");
    fputs("this is not a member table\n\x01\x02\n", f);
    fclose(f);
    CHECK(harness_daemon_start(&d, T) == 0, "a corrupt state directory stopped the daemon");
    char tail[400];
    harness_read_tail(d.log, tail, sizeof tail);
    CHECK(harness_file_contains(d.log, "corrupt") == 1, "the corrupt files were not reported: ...%s", tail);
    char out[1024], err[256];
    CHECK(harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "members", NULL) == 0 && strstr(out, "damaged"),
          "members after a corrupt state: %s", out);
}

static void test_sigterm_removes_socket(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    struct stat st;
    CHECK(stat(d.socket, &st) == 0 && S_ISSOCK(st.st_mode), "no socket file");
    CHECK((st.st_mode & 0777) == 0660, "socket mode %o, want 0660", st.st_mode & 0777);
    int status = harness_daemon_stop(&d, T);
    CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGTERM exit status %d", status);
    CHECK(stat(d.socket, &st) != 0 && errno == ENOENT, "socket file left behind");
}
/* Out of descriptors, the IPC listener pauses and retries instead of
 * spinning on accept, and the sessions it has keep being served. */
static void test_descriptor_exhaustion_does_not_spin(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    partisan_client *kept = NULL;
    CHECK(partisan_connect(d.socket, &kept) == 0, "connect");
    long fds = harness_open_fds(d.pid);
    CHECK(fds > 0, "cannot count the daemon's descriptors");
    char pid[16], lim[64], out[256], err[256];
    snprintf(pid, sizeof pid, "%d", (int)d.pid);
    snprintf(lim, sizeof lim, "--nofile=%ld:", fds + 2);   /* the soft limit only: it can go back up */
    char *argv[] = { "prlimit", "--pid", pid, lim, NULL };
    int rc = harness_exec(argv, NULL, out, sizeof out, err, sizeof err, 5000);
    CHECK(rc == 0, "prlimit exited %d: %s", rc, err);
    enum { N = 8 };
    partisan_client *extra[N] = { NULL };
    for (int i = 0; i < N; i++)
        partisan_connect(d.socket, &extra[i]);   /* the kernel queues them; the daemon cannot take them all */
    usleep(300 * 1000);
    long before = harness_cpu_ticks(d.pid);
    usleep(1000 * 1000);
    long after = harness_cpu_ticks(d.pid);
    CHECK(before >= 0 && after >= 0, "cannot read the daemon's CPU time");
    long hz = sysconf(_SC_CLK_TCK);
    struct partisan_status *st = NULL;
    rc = partisan_status(kept, &st, 5000);
    if (rc == 0)
        partisan_status_free(st);
    for (int i = 0; i < N; i++)
        partisan_close(extra[i]);
    CHECK(after - before <= hz / 4, "the daemon spent %ld of %ld ticks in one second with no descriptors left",
          after - before, hz);
    CHECK(rc == 0, "an existing session was not served while descriptors ran out: %s", partisan_strerror(rc));
    int hit = harness_file_contains(d.log, "pausing for 1 s");
    CHECK(hit == 1, hit < 0 ? "cannot read the log" : "the daemon never said it paused accepting");
    char lim2[64];
    snprintf(lim2, sizeof lim2, "--nofile=%d:", 1024);
    char *argv2[] = { "prlimit", "--pid", pid, lim2, NULL };
    CHECK(harness_exec(argv2, NULL, out, sizeof out, err, sizeof err, 5000) == 0, "prlimit back: %s", err);
    partisan_client *late = NULL;
    uint64_t until = harness_now_ms() + 5000;
    while ((rc = partisan_connect(d.socket, &late)) != 0 && harness_now_ms() < until)
        usleep(100 * 1000);
    CHECK(rc == 0, "no new application could connect once descriptors were back");
    rc = partisan_status(late, &st, 5000);
    CHECK(rc == 0, "a new session was not served once descriptors were back: %s", partisan_strerror(rc));
    partisan_status_free(st);
    partisan_close(late);
    partisan_close(kept);
}

static struct partisan_status *status_of(void)
{
    partisan_client *c = NULL;
    struct partisan_status *st = NULL;
    if (partisan_connect(d.socket, &c) == 0 && partisan_status(c, &st, T) != 0)
        st = NULL;
    partisan_close(c);
    return st;
}

/* Strangers on the peer port: 200 connections that never say Hello, each
 * trying to make the daemon buffer 15 KiB. At most max_pending_per_address
 * are held, the rest are closed at once; those held go after the handshake
 * deadline; the daemon's memory barely moves and status counts it all. */
static void test_strangers_on_the_peer_port_are_bounded(void)
{
    CHECK(start_default("\"transport\": {\"handshake_timeout_ms\": 20000, \"max_pending_per_address\": 8}") == 0,
          "daemon did not start");
    const char *colon = strrchr(d.listen, ':');
    CHECK(colon, "no port in %s", d.listen);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    long rss0 = harness_rss_kib(d.pid);
    enum { N = 200 };
    static int fds[N];
    static uint8_t junk[15 * 1024];
    uint8_t hdr[8] = { 0, 0, 0x3b, 0xf8 };     /* a 15352-byte frame: within the pre-handshake bound */
    memcpy(junk, hdr, sizeof hdr);
    int connected = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0) {
            connected++;
            (void)send(fds[i], junk, sizeof junk - 64, MSG_NOSIGNAL | MSG_DONTWAIT);  /* never the whole frame */
        }
    }
    /* The daemon takes them from the kernel's backlog as its loop gets to it. */
    struct partisan_status *st = NULL;
    for (uint64_t until = harness_now_ms() + 5000;;) {
        usleep(100 * 1000);
        st = status_of();
        if (!st || st->peer_pending_refused + st->peer_pending >= (uint64_t)connected || harness_now_ms() > until)
            break;
        partisan_status_free(st);
    }
    long rss1 = harness_rss_kib(d.pid);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    CHECK(st, "no status from the daemon while strangers held its port");
    uint32_t pending = st->peer_pending;
    uint64_t refused = st->peer_pending_refused;
    partisan_status_free(st);
    CHECK(pending <= 8, "%u connections held mid-handshake (max_pending_per_address is 8)", pending);
    CHECK(connected >= 100, "only %d of %d connects to the peer port succeeded", connected, N);
    CHECK(refused + pending >= (uint64_t)connected, "%d strangers connected, but only %llu were refused at once "
          "and %u are held", connected, (unsigned long long)refused, pending);
    CHECK(rss0 > 0 && rss1 > 0 && rss1 - rss0 < 8 * 1024, "RSS went from %ld to %ld KiB", rss0, rss1);
    printf("  %d strangers: %u held, %llu closed at once; RSS %ld -> %ld KiB\n", N, pending,
           (unsigned long long)refused, rss0, rss1);
}

/* One frame from a raw peer connection: the envelope packed at its offset,
 * sealed by the real frame writer (proto/frame.h). */
static bool send_peer_frame(int fd, const Partisan__Peer__PeerFrame *f)
{
    size_t env = partisan__peer__peer_frame__get_packed_size(f);
    size_t size = frame_size(FRAME_KIND_PEER, env, 0);
    uint8_t *buf = malloc(size);
    if (!buf)
        return false;
    partisan__peer__peer_frame__pack(f, buf + frame_env_offset(FRAME_KIND_PEER));
    frame_seal(FRAME_KIND_PEER, buf, env, 0);
    bool ok = true;
    for (size_t off = 0; ok && off < size;) {
        ssize_t n = send(fd, buf + off, size - off, MSG_NOSIGNAL);
        ok = n > 0;
        off += ok ? (size_t)n : 0;
    }
    free(buf);
    return ok;
}

/* A STATE of n forged members (names from first on) as the full mesh's
 * overlay message. */
static bool send_forged_table(int fd, int n, int first)
{
    Partisan__Peer__MemberState *ms = calloc((size_t)n, sizeof *ms);
    Partisan__Peer__MemberState **pms = calloc((size_t)n, sizeof *pms);
    char (*names)[16] = calloc((size_t)n, 16), (*addrs)[32] = calloc((size_t)n, 32);
    bool ok = ms && pms && names && addrs;
    for (int i = 0; ok && i < n; i++) {
        partisan__peer__member_state__init(&ms[i]);
        snprintf(names[i], 16, "fake%05d", first + i);
        /* Loopback addresses nobody listens on: dials to them fail at once. */
        snprintf(addrs[i], 32, "127.1.%d.%d:1", (first + i) / 250, (first + i) % 250 + 1);
        ms[i].name = names[i];
        ms[i].address = addrs[i];
        ms[i].incarnation = 1;
        pms[i] = &ms[i];
    }
    Partisan__Peer__Gossip g = PARTISAN__PEER__GOSSIP__INIT;
    g.kind = PARTISAN__PEER__GOSSIP__KIND__STATE;
    g.members = pms;
    g.n_members = (size_t)n;
    size_t glen = ok ? partisan__peer__gossip__get_packed_size(&g) : 0;
    uint8_t *gbuf = ok ? malloc(glen) : NULL;
    if (gbuf) {
        partisan__peer__gossip__pack(&g, gbuf);
        Partisan__Peer__PeerFrame gf = PARTISAN__PEER__PEER_FRAME__INIT;
        gf.body_case = PARTISAN__PEER__PEER_FRAME__BODY_OVERLAY;
        gf.overlay.data = gbuf;
        gf.overlay.len = glen;
        ok = send_peer_frame(fd, &gf);
    }
    ok = ok && gbuf;
    free(gbuf);
    free(ms);
    free(pms);
    free(names);
    free(addrs);
    return ok;
}

/* A peer that passed the handshake sends forged member tables (the attack
 * of issue 11): one of 200, one of 5,000. The daemon holds at most
 * cluster.max_members (64), says so in its log, refuses the table far
 * above any bound without allocating for it, dials no more than it holds,
 * keeps its memory and descriptors bounded, goes on answering, and a
 * restart does not bring the excess back from the state file. */
static void test_forged_member_table_is_bounded(void)
{
    CHECK(start_default("\"cluster\": {\"max_members\": 64}") == 0, "daemon did not start");
    const char *colon = strrchr(d.listen, ':');
    CHECK(colon, "no port in %s", d.listen);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "cannot reach the peer port");
    long rss0 = harness_rss_kib(d.pid), fds0 = harness_open_fds(d.pid);

    Partisan__Peer__Hello h = PARTISAN__PEER__HELLO__INIT;
    h.protocol_version = 2;
    h.cluster = (char *)"partisan";
    h.node = (char *)"evil";
    h.address = (char *)"127.0.0.1:1";
    h.channel = (char *)"control";
    h.incarnation = 1;
    Partisan__Peer__PeerFrame hf = PARTISAN__PEER__PEER_FRAME__INIT;
    hf.body_case = PARTISAN__PEER__PEER_FRAME__BODY_HELLO;
    hf.hello = &h;
    CHECK(send_peer_frame(fd, &hf), "sending the Hello failed");

    CHECK(send_forged_table(fd, 200, 0), "sending a forged table of 200 failed");
    CHECK(send_forged_table(fd, 5000, 200), "sending a forged table of 5000 failed");
    long fds_max = 0;
    for (uint64_t until = harness_now_ms() + 3000; harness_now_ms() < until;) {
        long n = harness_open_fds(d.pid);
        fds_max = n > fds_max ? n : fds_max;
        usleep(50 * 1000);
    }
    close(fd);
    partisan_client *c = NULL;
    struct partisan_member *m = NULL;
    size_t n = 0;
    CHECK(partisan_connect(d.socket, &c) == 0 && partisan_members(c, 1, &m, &n, T) == 0,
          "the daemon does not answer members after the forged table");
    partisan_members_free(m, n);
    partisan_close(c);
    long rss1 = harness_rss_kib(d.pid);
    CHECK(n <= 64, "the daemon holds %zu members (cluster.max_members is 64)", n);
    CHECK(n >= 2, "the forged peer's table was not merged at all (%zu members): the test proves nothing", n);
    CHECK(harness_file_contains(d.log, "member table full") == 1, "the log does not say the member table is full");
    CHECK(harness_file_contains(d.log, "carries 5000 members") == 1, "the log does not say the 5000 were refused");
    CHECK(fds_max - fds0 <= 64 + 8, "descriptors went from %ld to %ld while dialling forged members", fds0, fds_max);
    CHECK(rss1 - rss0 < 16 * 1024, "RSS went from %ld to %ld KiB", rss0, rss1);

    CHECK(harness_daemon_stop(&d, T) == 0, "the daemon did not stop");
    CHECK(harness_daemon_start(&d, T) == 0, "the daemon did not restart");
    c = NULL;
    CHECK(partisan_connect(d.socket, &c) == 0 && partisan_members(c, 1, &m, &n, T) == 0, "no members after restart");
    partisan_members_free(m, n);
    partisan_close(c);
    CHECK(n <= 64, "after a restart the daemon holds %zu members", n);
    printf("  200 then 5000 forged members offered: %zu held; descriptors %ld -> %ld at most; RSS %ld -> %ld KiB\n", n,
           fds0, fds_max, rss0, rss1);
}

static void test_second_daemon_refused_and_stale_socket_reused(void)
{
    CHECK(start_default("") == 0, "daemon did not start");
    char bin[600], log[2048], second_log[700];
    snprintf(bin, sizeof bin, "%s/partisand", harness_bin_dir());
    snprintf(second_log, sizeof second_log, "%s/second.log", d.dir);
    pid_t pid = fork();
    if (pid == 0) {
        freopen(second_log, "w", stderr);
        execl(bin, bin, "--config", d.config, (char *)NULL);
        _exit(127);
    }
    int rc = harness_wait_exit(pid, T);
    CHECK(rc != 0 && rc != -1, "a second daemon on the same socket did not refuse to start (exit %d)", rc);
    harness_read_tail(second_log, log, sizeof log);
    CHECK(harness_file_contains(second_log, "another daemon") == 1, "second daemon's refusal does not say why: %s", log);
    CHECK(daemon_answers(), "first daemon disturbed");
    /* A killed daemon leaves its socket file; the next start removes it. */
    harness_daemon_kill(&d);
    struct stat st;
    CHECK(stat(d.socket, &st) == 0, "expected a stale socket after SIGKILL");
    CHECK(harness_daemon_start(&d, T) == 0, "restart over a stale socket failed");
}

static void test_check_config_and_reload(void)
{
    harness_daemon_init(&d, "cfg", "");
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad.json", d.dir);
    FILE *f = fopen(bad, "w");
    fputs("{\n  \"overlay\": {\"type\": \"static\"},\n  \"log\": {\"levle\": \"debug\"}\n}\n", f);
    fclose(f);
    char cmd[1500];
    snprintf(cmd, sizeof cmd, "%s/partisand --check-config %s 2>&1", harness_bin_dir(), bad);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 78, "--check-config on a bad file: status %d", st);
    CHECK(strstr(out, "overlay.type") && strstr(out, "log.levle"), "errors not all named: %s", out);
    snprintf(cmd, sizeof cmd, "%s/partisand --check-config %s >/dev/null 2>&1", harness_bin_dir(), d.config);
    CHECK(system(cmd) == 0, "--check-config on a good file failed");

    CHECK(harness_daemon_start(&d, T) == 0, "daemon did not start");
    /* Reload with a changed level and a changed restart-only key. */
    f = fopen(d.config, "w");
    fprintf(f, "{\"node\": {\"name\": \"cfg\", \"listen\": \"127.0.0.1:0\", \"state_dir\": \"%s/state\"},"
               " \"cluster\": {\"name\": \"renamed\"},"
               " \"ipc\": {\"socket\": \"%s\"}, \"log\": {\"level\": \"info\"}}\n", d.dir, d.socket);
    fclose(f);
    harness_daemon_signal(&d, SIGHUP);
    uint64_t deadline = harness_now_ms() + T;
    bool seen = false;
    while (!seen && harness_now_ms() < deadline) {
        usleep(50000);
        seen = harness_file_contains(d.log, "log.level debug -> info") == 1 &&
               harness_file_contains(d.log, "cluster.name changed") == 1;
    }
    CHECK(seen, "reload not logged as expected");
    /* A broken file on reload keeps the running config. */
    f = fopen(d.config, "w");
    fputs("{ broken", f);
    fclose(f);
    harness_daemon_signal(&d, SIGHUP);
    deadline = harness_now_ms() + T;
    seen = false;
    while (!seen && harness_now_ms() < deadline) {
        usleep(50000);
        seen = harness_file_contains(d.log, "not reloading") == 1;
    }
    CHECK(seen, "a broken reload was not refused");
    CHECK(daemon_answers(), "daemon died on a broken reload");
}

/* ------------------------------------------------ who may use the socket --
 * Authorization needs a second identity, so these tests run a child as
 * uid/gid 65534 (nobody/nogroup) next to the root test process. */

#define NOBODY 65534

/* A CHECK for the uid-65534 child: writes why and returns. */
#define NCHECK(cond, ...) do { if (!(cond)) { snprintf(why, len, __VA_ARGS__); return; } } while (0)

typedef void (*nobody_fn)(char *why, size_t len);

/* The socket sits in d.dir under the test's temp dir, all created 0700 by
 * the harness: uid 65534 needs search permission on each to reach it. */
static void open_path_to_socket(void)
{
    char p[sizeof d.dir];
    snprintf(p, sizeof p, "%s", d.dir);
    size_t stop = strlen(harness_tmpdir());
    for (;;) {
        chmod(p, 0711);
        char *slash = strrchr(p, '/');
        if (!slash || (size_t)(slash - p) < stop)
            break;
        *slash = '\0';
    }
}

/* Runs fn in a child that has dropped to uid/gid 65534 with `groups` as its
 * supplementary groups (n may be 0), as an unprivileged application would
 * connect. Returns NULL if fn found nothing wrong, else why (in buf). The
 * child reports through a pipe; every wait is bounded and the child is
 * ended by its PID. */
static const char *as_nobody(nobody_fn fn, const gid_t *groups, size_t n, char *buf, size_t buflen)
{
    int p[2];
    if (pipe(p) != 0) {
        snprintf(buf, buflen, "pipe: %s", strerror(errno));
        return buf;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char msg[2048] = "";
        if (setgroups(n, groups) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            snprintf(msg, sizeof msg, "cannot become uid %d: %s", NOBODY, strerror(errno));
        else if (geteuid() != NOBODY || getegid() != NOBODY)
            snprintf(msg, sizeof msg, "still uid %u gid %u after dropping", (unsigned)geteuid(), (unsigned)getegid());
        else
            fn(msg, sizeof msg);
        ssize_t w = write(p[1], msg, strlen(msg));
        (void)w;
        _exit(msg[0] ? 1 : 0);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        snprintf(buf, buflen, "fork: %s", strerror(errno));
        return buf;
    }
    size_t got = 0;
    uint64_t deadline = harness_now_ms() + 3 * T;
    while (got + 1 < buflen) {
        uint64_t now = harness_now_ms();
        struct pollfd pfd = { .fd = p[0], .events = POLLIN };
        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
            break;
        ssize_t r = read(p[0], buf + got, buflen - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    close(p[0]);
    int rc = harness_wait_exit(pid, T);
    if (rc == 0 && got == 0)
        return NULL;
    if (got == 0)
        snprintf(buf, buflen, "the uid-%d child %s", NOBODY,
                 rc == -1 ? "did not finish in time (killed)" : "failed without saying why");
    return buf;
}

static void nobody_is_a_client_but_no_admin(char *why, size_t len)
{
    partisan_client *c = NULL;
    int rc = partisan_connect(d.socket, &c);
    NCHECK(rc == 0, "uid %d cannot connect to %s: %s", NOBODY, d.socket, partisan_strerror(rc));
    struct partisan_status *st = NULL;
    rc = partisan_status(c, &st, T);
    partisan_status_free(st);
    NCHECK(rc == 0, "status: %s (%s)", partisan_strerror(rc), partisan_last_error(c));
    rc = partisan_send_sync(c, "perm", "inbox", "from nobody", 11, T);
    NCHECK(rc == 0, "send: %s (%s)", partisan_strerror(rc), partisan_last_error(c));
    rc = partisan_register(c, "nobodys", T);
    NCHECK(rc == 0, "register of an unreserved name: %s (%s)", partisan_strerror(rc), partisan_last_error(c));
    rc = partisan_register(c, "billing", T);
    NCHECK(rc == PARTISAN_EPERM, "register \"billing\" (reserved for root): %s", partisan_strerror(rc));
    NCHECK(strstr(partisan_last_error(c), "name \"billing\" is reserved for user root (ipc.names)"),
           "register \"billing\": message \"%s\"", partisan_last_error(c));
    rc = partisan_join(c, "127.0.0.1:1", T);
    NCHECK(rc == PARTISAN_EPERM, "join: %s", partisan_strerror(rc));
    NCHECK(strstr(partisan_last_error(c), "join needs an admin") && strstr(partisan_last_error(c), "ipc.admin_groups"),
           "join: message \"%s\"", partisan_last_error(c));
    rc = partisan_leave(c, "nobody-node", T);
    NCHECK(rc == PARTISAN_EPERM, "leave nobody-node: %s", partisan_strerror(rc));
    NCHECK(strstr(partisan_last_error(c), "leave needs an admin") && strstr(partisan_last_error(c), "ipc.admin_groups"),
           "leave: message \"%s\"", partisan_last_error(c));
    rc = partisan_leave(c, NULL, T);
    NCHECK(rc == PARTISAN_EPERM, "leave (this node): %s", partisan_strerror(rc));
    /* Refusals do not cost the session anything else. */
    rc = partisan_status(c, &st, T);
    partisan_status_free(st);
    NCHECK(rc == 0, "status after the refusals: %s", partisan_strerror(rc));
    partisan_close(c);
    /* The CLI shows the daemon's reason and fails. */
    char out[1024], err[2048];
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "leave", "nobody-node", NULL);
    NCHECK(rc != 127, "uid %d cannot run partisanctl from %s", NOBODY, harness_bin_dir());
    NCHECK(rc == 1 && strstr(err, "permission denied") && strstr(err, "ipc.admin_groups"),
           "partisanctl leave as uid %d: exit %d, stderr \"%s\"", NOBODY, rc, err);
}

static void test_ipc_admin_and_reserved_names(void)
{
    CHECK(geteuid() == 0, "this test needs root: it checks what a process of another uid (%d) may do, "
          "and only root can become one", NOBODY);
    harness_daemon_init(&d, "perm", "\"ipc\": {\"socket\": \"@SOCK@\", \"mode\": \"0666\", "
                        "\"names\": {\"billing\": \"root\"}}");
    open_path_to_socket();
    CHECK(harness_daemon_start(&d, T) == 0, "daemon did not start");
    partisan_client *rx = NULL;
    CHECK(partisan_connect(d.socket, &rx) == 0, "connect");
    CHECK(partisan_register(rx, "inbox", T) == 0, "register inbox");

    char why[2048];
    const char *r = as_nobody(nobody_is_a_client_but_no_admin, NULL, 0, why, sizeof why);
    CHECK(!r, "as uid %d: %s", NOBODY, r);

    struct partisan_message *m = NULL;
    int rc = partisan_recv(rx, &m, T);
    CHECK(rc == 0, "the uid-%d client's message did not arrive: %s", NOBODY, partisan_strerror(rc));
    bool same = m->len == 11 && memcmp(m->payload, "from nobody", 11) == 0;
    partisan_message_free(m);
    CHECK(same, "the uid-%d client's message arrived changed", NOBODY);

    /* Root gets past the check to the request's own answer. */
    rc = partisan_leave(rx, "nobody-node", T);
    CHECK(rc == PARTISAN_ENONODE, "root's leave of a non-member: %s (%s)", partisan_strerror(rc),
          partisan_last_error(rx));
    rc = partisan_join(rx, "not-an-address", T);
    CHECK(rc == PARTISAN_EBADADDR, "root's join of a bad address: %s (%s)", partisan_strerror(rc),
          partisan_last_error(rx));
    rc = partisan_register(rx, "billing", T);
    CHECK(rc == 0, "root registering its reserved name: %s (%s)", partisan_strerror(rc), partisan_last_error(rx));
    struct partisan_status *st = NULL;
    CHECK(partisan_status(rx, &st, T) == 0, "status");
    bool left = st->left;
    partisan_status_free(st);
    CHECK(!left, "a refused leave made the node leave");
    partisan_close(rx);
    CHECK(harness_file_contains(d.log, "leave refused: not an admin") == 1, "refused leave not logged");
    CHECK(harness_file_contains(d.log, "register refused: the name is reserved for user root") == 1,
          "refused register not logged");
}

static void nobody_is_refused_everything(char *why, size_t len)
{
    partisan_client *c = NULL;
    int rc = partisan_connect(d.socket, &c);
    NCHECK(rc == 0, "uid %d cannot connect to %s: %s", NOBODY, d.socket, partisan_strerror(rc));
    struct partisan_status *st = NULL;
    rc = partisan_status(c, &st, T);
    partisan_status_free(st);
    NCHECK(rc == PARTISAN_EPERM, "status from a non-member of ipc.client_groups: %s", partisan_strerror(rc));
    NCHECK(strstr(partisan_last_error(c), "ipc.client_groups (root)"), "status: message \"%s\"",
           partisan_last_error(c));
    /* Refused, not disconnected: each request gets its answer. */
    rc = partisan_register(c, "x", T);
    NCHECK(rc == PARTISAN_EPERM, "register: %s", partisan_strerror(rc));
    rc = partisan_send_sync(c, "strict", "x", "y", 1, T);
    NCHECK(rc == PARTISAN_EPERM, "send: %s", partisan_strerror(rc));
    rc = partisan_subscribe(c, T);
    NCHECK(rc == PARTISAN_EPERM, "subscribe: %s", partisan_strerror(rc));
    rc = partisan_leave(c, NULL, T);
    NCHECK(rc == PARTISAN_EPERM, "leave: %s", partisan_strerror(rc));
    partisan_close(c);
    char out[1024], err[2048];
    rc = harness_ctl(&d, NULL, out, sizeof out, err, sizeof err, T, "status", NULL);
    NCHECK(rc != 127, "uid %d cannot run partisanctl from %s", NOBODY, harness_bin_dir());
    NCHECK(rc == 1 && strstr(err, "permission denied") && strstr(err, "ipc.client_groups"),
           "partisanctl status as uid %d: exit %d, stderr \"%s\"", NOBODY, rc, err);
}

/* In group root only as a supplementary group: SO_PEERGROUPS must see it. */
static void nobody_in_group_root_is_an_admin(char *why, size_t len)
{
    partisan_client *c = NULL;
    int rc = partisan_connect(d.socket, &c);
    NCHECK(rc == 0, "uid %d cannot connect to %s: %s", NOBODY, d.socket, partisan_strerror(rc));
    rc = partisan_leave(c, "nobody-node", T);
    NCHECK(rc == PARTISAN_ENONODE, "leave of a non-member by a member of ipc.admin_groups: %s (%s)",
           partisan_strerror(rc), partisan_last_error(c));
    partisan_close(c);
}

static size_t count_in_log(const char *needle)
{
    size_t len = 0, n = 0;
    char *buf = harness_slurp(d.log, &len);
    for (const char *p = buf; p && (p = memmem(p, len - (size_t)(p - buf), needle, strlen(needle))); p++)
        n++;
    free(buf);
    return n;
}

static void test_ipc_client_groups_refuse_others(void)
{
    CHECK(geteuid() == 0, "this test needs root: it checks what a process of another uid (%d) may do, "
          "and only root can become one", NOBODY);
    harness_daemon_init(&d, "strict", "\"ipc\": {\"socket\": \"@SOCK@\", \"mode\": \"0666\", "
                        "\"client_groups\": [\"root\"], \"admin_groups\": [\"root\"]}");
    open_path_to_socket();
    CHECK(harness_daemon_start(&d, T) == 0, "daemon did not start");   /* root's status works */
    char why[2048];
    const char *r = as_nobody(nobody_is_refused_everything, NULL, 0, why, sizeof why);
    CHECK(!r, "as uid %d: %s", NOBODY, r);
    /* One line per refused session (the library's and partisanctl's), not one per request. */
    size_t lines = count_in_log("not in ipc.client_groups (root) and not an admin");
    CHECK(lines == 2, "%zu log lines about refused sessions, want 2", lines);
    const gid_t root_group[] = { 0 };
    r = as_nobody(nobody_in_group_root_is_an_admin, root_group, 1, why, sizeof why);
    CHECK(!r, "as uid %d in group root: %s", NOBODY, r);
    CHECK(daemon_answers(), "root's session refused");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    harness_run("status_text_and_json", test_status_text_and_json);
    harness_run("cli_send_recv_round_trip", test_cli_send_recv_round_trip);
    harness_run("recv_times_out", test_recv_times_out);
    harness_run("duplicate_name_refused", test_duplicate_name_refused);
    harness_run("unknown_name_and_node", test_unknown_name_and_node);
    harness_run("broadcast_once_and_bad_input", test_broadcast_once_and_bad_input);
    harness_run("cli_usage_and_no_daemon", test_cli_usage_and_no_daemon);
    harness_run("bad_frames_close_only_that_client", test_bad_frames_close_only_that_client);
    harness_run("pipelined_sends_arrive_in_order", test_pipelined_sends_arrive_in_order);
    harness_run("slow_reader_is_bounded", test_slow_reader_is_bounded);
    harness_run("timeouts_hold_under_a_stream", test_timeouts_hold_under_a_stream);
    harness_run("corrupt_state_is_logged_and_ignored", test_corrupt_state_is_logged_and_ignored);
    harness_run("sigterm_removes_socket", test_sigterm_removes_socket);
    harness_run("second_daemon_refused_and_stale_socket_reused", test_second_daemon_refused_and_stale_socket_reused);
    harness_run("check_config_and_reload", test_check_config_and_reload);
    harness_run("descriptor_exhaustion_does_not_spin", test_descriptor_exhaustion_does_not_spin);
    harness_run("strangers_on_the_peer_port_are_bounded", test_strangers_on_the_peer_port_are_bounded);
    harness_run("forged_member_table_is_bounded", test_forged_member_table_is_bounded);
    harness_run("ipc_admin_and_reserved_names", test_ipc_admin_and_reserved_names);
    harness_run("ipc_client_groups_refuse_others", test_ipc_client_groups_refuse_others);
    return harness_summary();
}
