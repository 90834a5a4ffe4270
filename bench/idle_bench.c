/* idle_bench: what a cluster at rest costs, per overlay.
 *
 * For each overlay this daemon has (full_mesh, then hyparview when the
 * daemon accepts it), starts NODES daemons on 127.0.0.1 with the default
 * timers, all joining through the first, waits until every one sees every
 * member up, lets the cluster settle, then measures each daemon's CPU time
 * over a quiet window from /proc and prints the mean and the worst (% of
 * one core), the mean RSS and the mean number of descriptors. Figures
 * only: nothing here passes or fails on them.
 *
 *   idle_bench [NODES] [WINDOW_S]     defaults 64 and 10 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "partisan.h"

#define T 10000
#define MAX_NODES 256

/* Whether the daemon accepts this overlay type (a config check, no start). */
static bool overlay_supported(const char *type)
{
    struct daemon_proc probe;
    char extra[256];
    snprintf(extra, sizeof extra, "\"overlay\": {\"type\": \"%s\"}", type);
    harness_daemon_init(&probe, "probe", extra);
    char bin[600];
    snprintf(bin, sizeof bin, "%s/partisand", harness_bin_dir());
    char *argv[] = { bin, "--check-config", probe.config, NULL };
    char out[512], err[1024];
    return harness_exec(argv, NULL, out, sizeof out, err, sizeof err, T) == 0;
}

static int members_up(const struct daemon_proc *d)
{
    partisan_client *c = NULL;
    struct partisan_status *s = NULL;
    int up = -1;
    if (partisan_connect(d->socket, &c) == 0 && partisan_status(c, &s, T) == 0)
        up = (int)s->members_up;
    partisan_status_free(s);
    partisan_close(c);
    return up;
}

static void run(const char *type, int nodes, int window_s)
{
    static struct daemon_proc d[MAX_NODES];
    char extra[768];
    uint64_t t0 = harness_now_ms();
    snprintf(extra, sizeof extra, "\"log\": {\"level\": \"warn\"}, \"overlay\": {\"type\": \"%s\"}, "
             "\"cluster\": {\"name\": \"idle\"}", type);
    harness_daemon_init(&d[0], "i0", extra);
    int started = harness_daemon_start(&d[0], T) == 0;
    snprintf(extra, sizeof extra, "\"log\": {\"level\": \"warn\"}, \"overlay\": {\"type\": \"%s\"}, "
             "\"cluster\": {\"name\": \"idle\", \"seeds\": [\"%s\"]}", type, d[0].listen);
    for (int i = 1; started && i < nodes; i++) {
        char name[16];
        snprintf(name, sizeof name, "i%d", i);
        harness_daemon_init(&d[i], name, extra);
        started += harness_daemon_start(&d[i], T) == 0;
    }
    if (started < nodes) {
        printf("%-10s %d of %d daemons started; skipped\n", type, started, nodes);
        for (int i = 0; i < started; i++)
            harness_daemon_stop(&d[i], T);
        return;
    }
    int converged = 0;
    uint64_t start_done = harness_now_ms();
    while (harness_now_ms() - start_done < 180000 && converged < nodes) {
        converged = 0;
        for (int i = 0; i < nodes; i++)
            converged += members_up(&d[i]) == nodes;
        if (converged < nodes)
            usleep(200 * 1000);
    }
    uint64_t conv_ms = harness_now_ms() - start_done;
    sleep(5);   /* joins' pushes and first rounds over: measure the steady state */
    long before[MAX_NODES];
    for (int i = 0; i < nodes; i++)
        before[i] = harness_cpu_ticks(d[i].pid);
    uint64_t w0 = harness_now_ms();
    sleep((unsigned)window_s);
    double secs = (double)(harness_now_ms() - w0) / 1000.0, hz = (double)sysconf(_SC_CLK_TCK);
    double sum = 0, worst = 0;
    long rss = 0, fds = 0;
    for (int i = 0; i < nodes; i++) {
        double pct = 100.0 * (double)(harness_cpu_ticks(d[i].pid) - before[i]) / hz / secs;
        sum += pct;
        worst = pct > worst ? pct : worst;
        rss += harness_rss_kib(d[i].pid);
        fds += harness_open_fds(d[i].pid);
    }
    printf("%-10s %5d %10s %9llu %11.2f %10.2f %10.1f %9ld %9ld\n", type, nodes,
           converged == nodes ? "yes" : "NO", (unsigned long long)conv_ms, sum / nodes, worst, sum,
           rss / nodes, fds / nodes);
    (void)t0;
    for (int i = 0; i < nodes; i++)
        harness_daemon_stop(&d[i], T);
}

int main(int argc, char **argv)
{
    int nodes = argc > 1 ? atoi(argv[1]) : 64, window = argc > 2 ? atoi(argv[2]) : 10;
    if (nodes < 2 || nodes > MAX_NODES || window < 1) {
        fprintf(stderr, "usage: idle_bench [NODES 2..%d] [WINDOW_S]\n", MAX_NODES);
        return 2;
    }
    printf("Idle cluster on 127.0.0.1, default timers, CPU over %d s after convergence + 5 s (%% of one core):\n",
           window);
    printf("%-10s %5s %10s %9s %11s %10s %10s %9s %9s\n", "overlay", "nodes", "converged", "conv_ms",
           "cpu_mean%", "cpu_max%", "cpu_sum%", "rss_KiB", "fds");
    const char *types[] = { "full_mesh", "hyparview" };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (!overlay_supported(types[i])) {
            printf("%-10s (not supported by this daemon yet)\n", types[i]);
            continue;
        }
        run(types[i], nodes, window);
    }
    harness_cleanup();
    return 0;
}
