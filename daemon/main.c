/* partisand: process lifecycle only — arguments, config, signals,
 * sd_notify, the event loop. Everything else lives in node.c. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "node.h"

struct daemon {
    struct event_base *base;
    const char *config_path;
    struct node *node;
};

static void print_config_error(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "partisand: %s\n", msg);
}

static void log_config_error(void *ctx, const char *msg)
{
    (void)ctx;
    log_error("%s", msg);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: partisand --config FILE      run the daemon\n"
            "       partisand --check-config FILE  validate FILE, print every error, exit 0 or 78\n"
            "       partisand --version | --help\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop cleanly; SIGHUP re-reads FILE and applies log.level\n"
            "(other changed keys are logged as needing a restart).\n"
            "Config keys: see doc/config.md.\n");
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct daemon *d = arg;
    log_info("received %s; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sd_notify(0, "STOPPING=1");
    event_base_loopbreak(d->base);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig; (void)what;
    struct daemon *d = arg;
    sd_notify(0, "RELOADING=1");
    struct config fresh;
    int errors = config_load(d->config_path, &fresh, log_config_error, NULL);
    if (errors) {
        log_error("config file %s has %d error(s), not reloading", d->config_path, errors);
    } else {
        log_info("reloading %s", d->config_path);
        node_reload(d->node, &fresh);
        config_free(&fresh);
    }
    sd_notify(0, "READY=1");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", required_argument, NULL, 'C' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL;
    int check_only = 0, c;
    /* Messages of a megabyte and more pass through the daemon all the
     * time. With glibc's defaults each such buffer is mmapped and unmapped
     * again, or the heap is trimmed after every burst, and the page faults
     * of mapping fresh memory cost more than the copies themselves (half
     * the throughput of 1 MiB messages here). Keep up to 64 MiB of freed
     * heap for reuse instead; the bound keeps an idle daemon small. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    while ((c = getopt_long(argc, argv, "c:C:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'C': config_path = optarg; check_only = 1; break;
        case 'V': printf("partisand %s\n", PARTISAN_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "partisand: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    if (!config_path) {
        fprintf(stderr, "partisand: --config FILE is required\n");
        usage(stderr);
        return EX_USAGE;
    }

    struct config cfg;
    int errors = config_load(config_path, &cfg, print_config_error, NULL);
    if (errors) {
        fprintf(stderr, "partisand: %s: %d error(s)\n", config_path, errors);
        return EX_CONFIG;
    }
    if (check_only) {
        printf("%s: ok\n", config_path);
        config_free(&cfg);
        return 0;
    }
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    struct daemon d = { .config_path = config_path };
    d.base = event_base_new();
    if (!d.base) {
        log_error("cannot create the event loop");
        config_free(&cfg);
        return EX_OSERR;
    }
    char err[512] = "";
    d.node = node_new(d.base, &cfg, err, sizeof err);
    config_free(&cfg);
    if (!d.node) {
        log_error("cannot start: %s", err);
        event_base_free(d.base);
        return EX_UNAVAILABLE;
    }
    struct event *sigterm = evsignal_new(d.base, SIGTERM, on_stop, &d);
    struct event *sigint = evsignal_new(d.base, SIGINT, on_stop, &d);
    struct event *sighup = evsignal_new(d.base, SIGHUP, on_hup, &d);
    if (!sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL) ||
        evsignal_add(sighup, NULL)) {
        log_error("cannot install signal handlers");
        return EX_OSERR;
    }
    sd_notify(0, "READY=1");
    event_base_dispatch(d.base);

    node_free(d.node);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    event_base_free(d.base);
    log_info("stopped");
    return 0;
}
