/* Config loading: defaults, a full valid file, and for each kind of mistake
 * the message a user would read. Run from the repo root (or set SRCDIR). */
#include <check.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char msgs[16384];
static int n_msgs;

static void collect(void *ctx, const char *msg)
{
    (void)ctx;
    n_msgs++;
    strncat(msgs, msg, sizeof msgs - strlen(msgs) - 2);
    strcat(msgs, "\n");
}

static int load(const char *text, struct config *cfg)
{
    msgs[0] = '\0';
    n_msgs = 0;
    int n = config_load_string(text, "t.json", cfg, collect, NULL);
    ck_assert_int_eq(n, n_msgs);
    return n;
}

#define ck_assert_msg_has(needle) \
    ck_assert_msg(strstr(msgs, (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), msgs)

/* Loads text that must fail with exactly one error containing `needle`. */
static void expect_one_error(const char *text, const char *needle)
{
    struct config cfg;
    ck_assert_int_eq(load(text, &cfg), 1);
    ck_assert_msg_has(needle);
    ck_assert_ptr_null(cfg.seeds);
}

START_TEST(empty_object_gives_defaults)
{
    struct config cfg;
    ck_assert_int_eq(load("{}", &cfg), 0);
    char host[256] = "";
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    ck_assert_str_eq(cfg.node_name, host);
    ck_assert_str_eq(cfg.listen.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen.port, 10200);
    ck_assert_str_eq(cfg.advertise.host, "127.0.0.1");
    ck_assert_int_eq(cfg.advertise_set, 0);
    ck_assert_str_eq(cfg.state_dir, "");
    ck_assert_str_eq(cfg.cluster_name, "partisan");
    ck_assert_uint_eq(cfg.n_seeds, 0);
    ck_assert_int_eq(cfg.overlay, OVERLAY_FULL_MESH);
    ck_assert_uint_eq(cfg.gossip_interval_ms, 1000);
    ck_assert_uint_eq(cfg.gossip_fanout, 3);
    ck_assert_uint_eq(cfg.ping_interval_ms, 500);
    ck_assert_uint_eq(cfg.fd_timeout_ms, 3000);
    ck_assert_uint_eq(cfg.connect_timeout_ms, 2000);
    ck_assert_uint_eq(cfg.backoff_initial_ms, 100);
    ck_assert_uint_eq(cfg.backoff_max_ms, 5000);
    ck_assert_uint_eq(cfg.peer_max_frame_bytes, 16u << 20);
    ck_assert_uint_eq(cfg.peer_max_queue_bytes, 64u << 20);
    ck_assert_uint_eq(cfg.flow_window_bytes, 4u << 20);
    ck_assert_uint_eq(cfg.n_channels, 1);
    ck_assert_str_eq(cfg.channels[0].name, "default");
    ck_assert_uint_eq(cfg.channels[0].parallelism, 1);
    ck_assert_int_eq(cfg.channels[0].monotonic, 0);
    ck_assert_str_eq(cfg.ipc_socket, "/run/partisan/partisand.sock");
    ck_assert_uint_eq(cfg.ipc_mode, 0660);
    ck_assert_uint_eq(cfg.ipc_max_frame_bytes, 16u << 20);
    ck_assert_uint_eq(cfg.ipc_max_queue_bytes, 64u << 20);
    ck_assert_uint_eq(cfg.ipc_admin_groups.n, 0);
    ck_assert_uint_eq(cfg.ipc_client_groups.n, 0);
    ck_assert_uint_eq(cfg.n_ipc_names, 0);
    ck_assert_ptr_null(config_reserved_name(&cfg, "billing"));
    ck_assert_int_eq(cfg.log_level, LOG_INFO);
    config_free(&cfg);
}
END_TEST

START_TEST(defaults_match_empty_object)
{
    struct config a, b;
    config_defaults(&a);
    ck_assert_int_eq(load("{}", &b), 0);
    ck_assert_mem_eq(&a, &b, sizeof a);
    config_free(&a);
    config_free(&a);   /* twice is harmless */
    config_free(&b);
}
END_TEST

static const char full[] =
    "{\n"
    " \"node\": {\"name\": \"n1.example@a-b_c\", \"listen\": \"[::]:7000\",\n"
    "           \"advertise\": \"[2001:db8::1]:7000\", \"state_dir\": \"/tmp/st\"},\n"
    " \"cluster\": {\"name\": \"prod\", \"seeds\": [\"10.0.0.1:7000\", \"[2001:db8::2]:7000\", \"h.example:1\"]},\n"
    " \"overlay\": {\"type\": \"full_mesh\", \"gossip_interval_ms\": 10, \"gossip_fanout\": 64},\n"
    " \"failure_detector\": {\"ping_interval_ms\": 100, \"timeout_ms\": 101},\n"
    " \"transport\": {\"connect_timeout_ms\": 60000, \"backoff_initial_ms\": 7, \"backoff_max_ms\": 7,\n"
    "                 \"max_frame_bytes\": 1024, \"max_queue_bytes\": 17179869184,\n"
    "                 \"window_bytes\": 65536},\n"
    " \"channels\": [{\"name\": \"bulk\", \"parallelism\": 64}],\n"
    " \"ipc\": {\"socket\": \"/tmp/p.sock\", \"mode\": \"640\", \"max_frame_bytes\": 1073741824,\n"
    "           \"max_queue_bytes\": 1073741824},\n"
    " \"log\": {\"level\": \"warn\"}\n"
    "}\n";

START_TEST(full_valid_config)
{
    struct config cfg;
    ck_assert_int_eq(load(full, &cfg), 0);
    ck_assert_str_eq(cfg.node_name, "n1.example@a-b_c");
    ck_assert_str_eq(cfg.listen.host, "::");
    ck_assert_uint_eq(cfg.listen.port, 7000);
    ck_assert_int_eq(cfg.advertise_set, 1);
    ck_assert_str_eq(cfg.advertise.host, "2001:db8::1");
    ck_assert_str_eq(cfg.state_dir, "/tmp/st");
    ck_assert_str_eq(cfg.cluster_name, "prod");
    ck_assert_uint_eq(cfg.n_seeds, 3);
    ck_assert_str_eq(cfg.seeds[0].host, "10.0.0.1");
    ck_assert_str_eq(cfg.seeds[1].host, "2001:db8::2");
    ck_assert_str_eq(cfg.seeds[2].host, "h.example");
    ck_assert_uint_eq(cfg.seeds[2].port, 1);
    ck_assert_uint_eq(cfg.gossip_interval_ms, 10);
    ck_assert_uint_eq(cfg.gossip_fanout, 64);
    ck_assert_uint_eq(cfg.fd_timeout_ms, 101);
    ck_assert_uint_eq(cfg.backoff_max_ms, 7);
    ck_assert_uint_eq(cfg.peer_max_frame_bytes, 1024);
    ck_assert_uint_eq(cfg.peer_max_queue_bytes, 16ull << 30);
    ck_assert_uint_eq(cfg.flow_window_bytes, 65536);
    ck_assert_uint_eq(cfg.n_channels, 2);
    ck_assert_str_eq(cfg.channels[1].name, "bulk");
    ck_assert_uint_eq(cfg.channels[1].parallelism, 64);
    ck_assert_str_eq(cfg.ipc_socket, "/tmp/p.sock");
    ck_assert_uint_eq(cfg.ipc_mode, 0640);
    ck_assert_uint_eq(cfg.ipc_max_frame_bytes, 1u << 30);
    ck_assert_int_eq(cfg.log_level, LOG_WARN);
    config_free(&cfg);
    config_free(&cfg);
}
END_TEST

START_TEST(listen_port_zero_and_default_advertise)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"node\": {\"listen\": \"127.0.0.1:0\"}}", &cfg), 0);
    ck_assert_uint_eq(cfg.listen.port, 0);
    ck_assert_int_eq(cfg.advertise_set, 0);
    ck_assert_str_eq(cfg.advertise.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.advertise.port, 0);
    config_free(&cfg);
}
END_TEST

START_TEST(syntax_error_has_line_and_column)
{
    struct config cfg;
    ck_assert_int_eq(load("{\n  \"node\": {\n    \"name\": \"x\",\n  }\n}", &cfg), 1);
    ck_assert_msg_has("t.json:4:3: ");
    ck_assert_msg(strstr(msgs, "string or '}' expected") != NULL, "%s", msgs);
}
END_TEST

/* Found by test/fuzz/fuzz_config: jansson's message quotes the bad token
 * raw, so a newline or an escape sequence in it reached the log line. */
START_TEST(syntax_error_token_is_escaped)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"log\": \"de\\u00\n\x1b[31m\"}", &cfg), 1);
    ck_assert_msg_has("t.json:");
    ck_assert_msg_has("invalid escape near");
    ck_assert_msg_has("\\u00\\x0a");
    ck_assert_int_eq(strchr(msgs, '\n') - msgs, (long)strlen(msgs) - 1);   /* one line */
    ck_assert_ptr_null(strchr(msgs, '\x1b'));
    ck_assert_ptr_null(cfg.seeds);
}
END_TEST

START_TEST(duplicate_key_rejected)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"log\": {\"level\": \"info\", \"level\": \"debug\"}}", &cfg), 1);
    ck_assert_msg_has("t.json:1:");
    ck_assert_msg_has("duplicate object key");
}
END_TEST

START_TEST(top_level_must_be_object)
{
    expect_one_error("[1, 2]", "t.json: top level must be an object, got array");
    expect_one_error("42", "t.json: top level must be an object, got integer");
}
END_TEST

START_TEST(section_must_be_object)
{
    expect_one_error("{\"node\": \"n1\"}", "t.json: node: expected an object, got string");
}
END_TEST

START_TEST(tls_is_all_or_nothing)
{
    struct config cfg;
    ck_assert_int_eq(load("{}", &cfg), 0);
    ck_assert_str_eq(cfg.tls_cert_file, "");
    config_free(&cfg);
    ck_assert_int_eq(load("{\"tls\": {\"ca_file\": \"/c\", \"cert_file\": \"/n.crt\", \"key_file\": \"/n.key\"}}", &cfg), 0);
    ck_assert_str_eq(cfg.tls_ca_file, "/c");
    ck_assert_str_eq(cfg.tls_key_file, "/n.key");
    config_free(&cfg);
    ck_assert_int_eq(load("{\"tls\": {\"cert_file\": \"/n.crt\"}}", &cfg), 2);
    ck_assert_msg_has("t.json: tls.ca_file: missing: tls needs ca_file, cert_file and key_file together");
    ck_assert_msg_has("t.json: tls.key_file: missing");
}
END_TEST

START_TEST(unknown_top_level_key)
{
    expect_one_error("{\"nodes\": {}}",
                     "t.json: nodes: unknown key (did you mean \"node\"? allowed: node, cluster, overlay, "
                     "failure_detector, transport, tls, ipc, log, channels, faults)");
    expect_one_error("{\"channel\": []}", "t.json: channel: unknown key (did you mean \"channels\"?");
}
END_TEST

START_TEST(unknown_nested_key)
{
    expect_one_error("{\"overlay\": {\"tpye\": \"full_mesh\"}}",
                     "t.json: overlay.tpye: unknown key (did you mean \"type\"? "
                     "allowed: type, gossip_interval_ms, gossip_fanout, hyparview)");
    expect_one_error("{\"log\": {\"zzzzzz\": 1}}", "t.json: log.zzzzzz: unknown key (allowed: level)");
}
END_TEST

START_TEST(wrong_types)
{
    expect_one_error("{\"node\": {\"listen\": 10200}}",
                     "t.json: node.listen: expected a string \"host:port\", got integer");
    expect_one_error("{\"overlay\": {\"gossip_fanout\": 1.5}}",
                     "t.json: overlay.gossip_fanout: expected an integer, got real number");
    expect_one_error("{\"overlay\": {\"gossip_fanout\": true}}",
                     "overlay.gossip_fanout: expected an integer, got boolean");
    expect_one_error("{\"overlay\": {\"gossip_fanout\": \"3\"}}",
                     "overlay.gossip_fanout: expected an integer, got string");
    expect_one_error("{\"cluster\": {\"seeds\": \"a:1\"}}",
                     "cluster.seeds: expected an array of \"host:port\" strings, got string");
    expect_one_error("{\"cluster\": {\"seeds\": [\"a:1\", 5]}}",
                     "cluster.seeds[1]: expected a string \"host:port\", got integer");
    expect_one_error("{\"ipc\": {\"mode\": 660}}", "ipc.mode: expected an octal string like \"0660\", got integer");
    expect_one_error("{\"log\": {\"level\": null}}", "log.level: expected a string");
}
END_TEST

START_TEST(out_of_range)
{
    expect_one_error("{\"overlay\": {\"gossip_interval_ms\": 5}}",
                     "t.json: overlay.gossip_interval_ms: 5 is out of range (10..600000)");
    expect_one_error("{\"overlay\": {\"gossip_fanout\": -1}}",
                     "overlay.gossip_fanout: -1 is out of range (1..64)");
    expect_one_error("{\"ipc\": {\"max_frame_bytes\": 1073741825}}",
                     "ipc.max_frame_bytes: 1073741825 is out of range (1024..1073741824)");
    expect_one_error("{\"transport\": {\"max_queue_bytes\": 17179869185}}",
                     "transport.max_queue_bytes: 17179869185 is out of range (65536..17179869184)");
}
END_TEST

START_TEST(overlay_types)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"overlay\": {\"type\": \"hyparview\"}}", &cfg), 0);
    ck_assert_int_eq(cfg.overlay, OVERLAY_HYPARVIEW);
    ck_assert_str_eq(config_overlay_name(cfg.overlay), "hyparview");
    config_free(&cfg);
    expect_one_error("{\"overlay\": {\"type\": \"client_server\"}}",
                     "t.json: overlay.type: \"client_server\" is not yet supported (supported: full_mesh, hyparview)");
    expect_one_error("{\"overlay\": {\"type\": \"static\"}}", "\"static\" is not yet supported");
    expect_one_error("{\"overlay\": {\"type\": \"ring\"}}",
                     "overlay.type: \"ring\" is an unknown overlay (allowed: full_mesh, hyparview, client_server, static)");
    ck_assert_str_eq(config_overlay_name(OVERLAY_FULL_MESH), "full_mesh");
}
END_TEST

START_TEST(hyparview_keys)
{
    struct config cfg;
    ck_assert_int_eq(load("{}", &cfg), 0);
    ck_assert_uint_eq(cfg.hv_active_max_size, 5);
    ck_assert_uint_eq(cfg.hv_active_min_size, 2);
    ck_assert_uint_eq(cfg.hv_passive_max_size, 30);
    ck_assert_uint_eq(cfg.hv_active_rwl, 6);
    ck_assert_uint_eq(cfg.hv_passive_rwl, 6);
    ck_assert_uint_eq(cfg.hv_shuffle_interval_ms, 10000);
    ck_assert_uint_eq(cfg.hv_shuffle_k_active, 3);
    ck_assert_uint_eq(cfg.hv_shuffle_k_passive, 4);
    ck_assert_uint_eq(cfg.hv_random_promotion_interval_ms, 5000);
    ck_assert_uint_eq(cfg.hv_announce_interval_ms, 10000);
    config_free(&cfg);
    ck_assert_int_eq(load("{\"overlay\": {\"hyparview\": {\"active_max_size\": 8, \"passive_rwl\": 3}}}", &cfg), 0);
    ck_assert_uint_eq(cfg.hv_active_max_size, 8);
    ck_assert_uint_eq(cfg.hv_passive_rwl, 3);
    config_free(&cfg);
    expect_one_error("{\"overlay\": {\"hyparview\": {\"active_max_sise\": 8}}}",
                     "t.json: overlay.hyparview.active_max_sise: unknown key (did you mean \"active_max_size\"?");
    expect_one_error("{\"overlay\": {\"hyparview\": 5}}", "t.json: overlay.hyparview: expected an object, got integer");
    expect_one_error("{\"overlay\": {\"hyparview\": {\"active_max_size\": 0}}}",
                     "overlay.hyparview.active_max_size: 0 is out of range (1..64)");
    expect_one_error("{\"overlay\": {\"hyparview\": {\"active_max_size\": 3, \"active_min_size\": 4}}}",
                     "overlay.hyparview.active_max_size: 3 must be at least overlay.hyparview.active_min_size (4)");
}
END_TEST

START_TEST(names)
{
    expect_one_error("{\"node\": {\"name\": \"a b\"}}",
                     "node.name: \"a b\" has \" \" at byte 1 (allowed characters: A-Z a-z 0-9 . _ @ -)");
    expect_one_error("{\"cluster\": {\"name\": \"\"}}", "cluster.name: must not be empty");
    char text[400];
    snprintf(text, sizeof text, "{\"cluster\": {\"name\": \"%0256d\"}}", 0);
    expect_one_error(text, "cluster.name: is 256 bytes long (max 255)");
    expect_one_error("{\"node\": {\"name\": \"a\\u0000b\"}}", "node.name: contains a NUL byte");
    expect_one_error("{\"node\": {\"name\": \"caf\\u00e9\"}}", "\"caf\\xc3\\xa9\" has \"\\xc3\" at byte 3");
}
END_TEST

START_TEST(bad_addresses)
{
    expect_one_error("{\"node\": {\"listen\": \"127.0.0.1\"}}",
                     "node.listen: \"127.0.0.1\" is not \"host:port\" or \"[v6]:port\": missing ':port'");
    expect_one_error("{\"node\": {\"listen\": \"127.0.0.1:70000\"}}", "port is not a number in 0..65535");
    expect_one_error("{\"node\": {\"listen\": \"::1:80\"}}", "an IPv6 address needs brackets");
    expect_one_error("{\"cluster\": {\"seeds\": [\"10.0.0.1:0\"]}}",
                     "cluster.seeds[0]: \"10.0.0.1:0\": port 0 cannot be dialled (1..65535)");
    expect_one_error("{\"cluster\": {\"seeds\": [\"0.0.0.0:7000\"]}}", "cluster.seeds[0]: \"0.0.0.0:7000\": 0.0.0.0 means every interface");
    expect_one_error("{\"node\": {\"advertise\": \"10.0.0.1:0\"}}",
                     "node.advertise: \"10.0.0.1:0\": port 0 cannot be dialled");
    expect_one_error("{\"node\": {\"listen\": \"[::]:7000\", \"advertise\": \"[::]:7000\"}}",
                     "node.advertise: \"[::]:7000\": :: means every interface, which peers cannot dial");
}
END_TEST

START_TEST(wildcard_listen_needs_advertise)
{
    expect_one_error("{\"node\": {\"listen\": \"0.0.0.0:10200\"}}",
                     "t.json: node.listen: \"0.0.0.0:10200\" listens on every interface, so peers cannot be told "
                     "where to dial: set node.advertise");
    expect_one_error("{\"node\": {\"listen\": \"[::]:10200\"}}", "set node.advertise");
    struct config cfg;
    ck_assert_int_eq(load("{\"node\": {\"listen\": \"0.0.0.0:10200\", \"advertise\": \"10.1.2.3:10200\"}}", &cfg), 0);
    config_free(&cfg);
}
END_TEST

START_TEST(bad_modes)
{
    expect_one_error("{\"ipc\": {\"mode\": \"rw\"}}",
                     "ipc.mode: \"rw\" is not an octal mode of 3 or 4 digits, like \"0660\"");
    expect_one_error("{\"ipc\": {\"mode\": \"0668\"}}", "not an octal mode");
    expect_one_error("{\"ipc\": {\"mode\": \"06600\"}}", "not an octal mode");
    expect_one_error("{\"ipc\": {\"mode\": \"4755\"}}", "ipc.mode: \"4755\" has bits above 0777");
}
END_TEST

START_TEST(paths_and_levels)
{
    expect_one_error("{\"ipc\": {\"socket\": \"\"}}", "ipc.socket: must not be empty");
    char text[300];
    snprintf(text, sizeof text, "{\"ipc\": {\"socket\": \"/%0200d\"}}", 0);
    expect_one_error(text, "ipc.socket: path is 201 bytes long (max 107, the limit of a Unix socket address)");
    expect_one_error("{\"log\": {\"level\": \"verbose\"}}",
                     "log.level: \"verbose\" is not a level (allowed: debug, info, warn, error)");
}
END_TEST

START_TEST(cross_key_constraints)
{
    expect_one_error("{\"failure_detector\": {\"ping_interval_ms\": 500, \"timeout_ms\": 500}}",
                     "t.json: failure_detector.timeout_ms: 500 must be greater than failure_detector.ping_interval_ms (500)");
    expect_one_error("{\"transport\": {\"backoff_max_ms\": 50}}",
                     "transport.backoff_max_ms: 50 must be at least transport.backoff_initial_ms (100)");
    expect_one_error("{\"ipc\": {\"max_frame_bytes\": 1073741824}}",
                     "ipc.max_queue_bytes: 67108864 must be at least ipc.max_frame_bytes (1073741824)");
    expect_one_error("{\"transport\": {\"max_frame_bytes\": 1048576, \"max_queue_bytes\": 65536}}",
                     "transport.max_queue_bytes: 65536 must be at least transport.max_frame_bytes (1048576)");
}
END_TEST

START_TEST(cross_key_skipped_when_one_side_invalid)
{
    /* timeout 20 is itself out of range; the ordering rule must stay quiet. */
    expect_one_error("{\"failure_detector\": {\"timeout_ms\": 20}}", "timeout_ms: 20 is out of range");
}
END_TEST

START_TEST(every_error_is_counted)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"node\": {\"nmae\": \"x\"}, \"overlay\": {\"gossip_fanout\": 0},"
                          " \"log\": {\"level\": 3}}", &cfg), 3);
    ck_assert_msg_has("node.nmae: unknown key");
    ck_assert_msg_has("overlay.gossip_fanout: 0 is out of range");
    ck_assert_msg_has("log.level: expected a string");
    ck_assert_int_eq(load("{\"bogus\": 1, \"cluster\": {\"seeds\": [\"a\", \"b:0\", \"c:1\"]},"
                          " \"ipc\": {\"mode\": \"9\"}}", &cfg), 4);
    ck_assert_ptr_null(cfg.seeds);
    ck_assert_uint_eq(cfg.n_seeds, 0);
}
END_TEST

/* ------------------------------------------------------ flow and channels -- */

START_TEST(window_bytes)
{
    struct config cfg;
    config_defaults(&cfg);
    ck_assert_uint_eq(cfg.flow_window_bytes, 4194304);
    ck_assert_int_eq(load("{\"transport\": {\"window_bytes\": 65536}}", &cfg), 0);
    ck_assert_uint_eq(cfg.flow_window_bytes, 65536);
    ck_assert_int_eq(load("{\"transport\": {\"window_bytes\": 1073741824}}", &cfg), 0);
    ck_assert_uint_eq(cfg.flow_window_bytes, 1u << 30);
    expect_one_error("{\"transport\": {\"window_bytes\": 65535}}",
                     "t.json: transport.window_bytes: 65535 is out of range (65536..1073741824)");
    expect_one_error("{\"transport\": {\"window_bytes\": 1073741825}}",
                     "t.json: transport.window_bytes: 1073741825 is out of range (65536..1073741824)");
    expect_one_error("{\"transport\": {\"window_bytes\": -1}}", "transport.window_bytes: -1 is out of range");
    expect_one_error("{\"transport\": {\"window_bytes\": \"4mb\"}}",
                     "transport.window_bytes: expected an integer (bytes), got string");
    expect_one_error("{\"transport\": {\"windows_bytes\": 65536}}",
                     "transport.windows_bytes: unknown key (did you mean \"window_bytes\"?");
}
END_TEST

START_TEST(channels_default_only)
{
    struct config cfg;
    config_defaults(&cfg);
    ck_assert_uint_eq(cfg.n_channels, 1);
    ck_assert_str_eq(cfg.channels[0].name, CONFIG_DEFAULT_CHANNEL);
    ck_assert_str_eq(cfg.channels[0].name, "default");
    ck_assert_uint_eq(cfg.channels[0].parallelism, 1);
    ck_assert_int_eq(cfg.channels[0].monotonic, 0);
    ck_assert_int_eq(load("{\"channels\": []}", &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, 1);
    ck_assert_str_eq(cfg.channels[0].name, "default");
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"default\"}]}", &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, 1);
    ck_assert_uint_eq(cfg.channels[0].parallelism, 1);
    ck_assert_int_eq(cfg.channels[0].monotonic, 0);
    /* Not listing "default" still gives it, first. */
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"a\", \"monotonic\": false}]}", &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, 2);
    ck_assert_str_eq(cfg.channels[0].name, "default");
    ck_assert_str_eq(cfg.channels[1].name, "a");
    ck_assert_uint_eq(cfg.channels[1].parallelism, 1);
    config_free(&cfg);
}
END_TEST

START_TEST(channels_reliable_and_causal)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"orders\", \"reliable\": true},"
                          " {\"name\": \"chat\", \"reliable\": true, \"causal\": true},"
                          " {\"name\": \"feed\", \"causal\": true}]}", &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, 4);
    ck_assert_int_eq(cfg.channels[0].reliable, 0);
    ck_assert_int_eq(cfg.channels[1].reliable, 1);
    ck_assert_int_eq(cfg.channels[1].causal, 0);
    ck_assert_int_eq(cfg.channels[2].causal, 1);
    /* causal alone implies reliable: causal order is built on it */
    ck_assert_int_eq(cfg.channels[3].reliable, 1);
    config_free(&cfg);
    ck_assert_int_gt(load("{\"channels\": [{\"name\": \"x\", \"reliable\": true, \"monotonic\": true}]}", &cfg),
                     0);
    ck_assert_msg_has("t.json: channels[0]: a channel cannot be both monotonic");
    ck_assert_int_gt(load("{\"channels\": [{\"name\": \"x\", \"reliable\": 1}]}", &cfg), 0);
    ck_assert_msg_has("channels[0].reliable");
}
END_TEST

START_TEST(faults_section)
{
    struct config cfg;
    ck_assert_int_eq(load("{}", &cfg), 0);
    ck_assert_ptr_null(cfg.faults_json);
    config_free(&cfg);
    /* Rules without enabled: refused, naming both keys, so a fault is never on by accident. */
    ck_assert_int_gt(load("{\"faults\": {\"rules\": [\"drop 0.5\"]}}", &cfg), 0);
    ck_assert_msg_has("faults.enabled");
    ck_assert_msg_has("faults.rules");
    ck_assert_int_gt(load("{\"faults\": {\"enabled\": true, \"rules\": [\"drop 1.5\"]}}", &cfg), 0);
    ck_assert_msg_has("faults.rules[0]");
    ck_assert_int_gt(load("{\"faults\": {\"enabled\": true, \"rulez\": []}}", &cfg), 0);
    ck_assert_msg_has("faults.rulez");
    ck_assert_int_eq(load("{\"faults\": {\"enabled\": true, \"rules\": [\"drop --peer n2 0.2\","
                          " {\"type\": \"delay\", \"delay_ms\": 50}]}}", &cfg), 0);
    ck_assert_ptr_nonnull(cfg.faults_json);
    ck_assert_ptr_nonnull(strstr(cfg.faults_json, "drop --peer n2 0.2"));
    struct config copy;
    ck_assert_int_eq(config_copy(&copy, &cfg), 0);
    ck_assert_ptr_ne(copy.faults_json, cfg.faults_json);
    ck_assert_str_eq(copy.faults_json, cfg.faults_json);
    config_free(&copy);
    config_free(&cfg);
}
END_TEST

START_TEST(channels_example)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"channels\": [ {\"name\": \"default\"}, {\"name\": \"bulk\", \"parallelism\": 4},"
                          " {\"name\": \"state\", \"monotonic\": true} ]}", &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, 3);
    ck_assert_str_eq(cfg.channels[0].name, "default");
    ck_assert_uint_eq(cfg.channels[0].parallelism, 1);
    ck_assert_int_eq(cfg.channels[0].monotonic, 0);
    ck_assert_str_eq(cfg.channels[1].name, "bulk");
    ck_assert_uint_eq(cfg.channels[1].parallelism, 4);
    ck_assert_int_eq(cfg.channels[1].monotonic, 0);
    ck_assert_str_eq(cfg.channels[2].name, "state");
    ck_assert_uint_eq(cfg.channels[2].parallelism, 1);
    ck_assert_int_eq(cfg.channels[2].monotonic, 1);
    config_free(&cfg);
}
END_TEST

START_TEST(channels_default_listed_later)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"bulk\", \"parallelism\": 2},"
                          " {\"name\": \"default\", \"parallelism\": 8, \"monotonic\": true},"
                          " {\"name\": \"x.y@z-1_2\", \"parallelism\": 64}]}", &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, 3);
    ck_assert_str_eq(cfg.channels[0].name, "default");
    ck_assert_uint_eq(cfg.channels[0].parallelism, 8);
    ck_assert_int_eq(cfg.channels[0].monotonic, 1);
    ck_assert_str_eq(cfg.channels[1].name, "bulk");
    ck_assert_uint_eq(cfg.channels[1].parallelism, 2);
    ck_assert_int_eq(cfg.channels[1].monotonic, 0);
    ck_assert_str_eq(cfg.channels[2].name, "x.y@z-1_2");
    ck_assert_uint_eq(cfg.channels[2].parallelism, 64);
    ck_assert_int_eq(config_channel_index(&cfg, "default"), 0);
    ck_assert_int_eq(config_channel_index(&cfg, "bulk"), 1);
    config_free(&cfg);
}
END_TEST

START_TEST(channel_index)
{
    struct config cfg;
    config_defaults(&cfg);
    ck_assert_int_eq(config_channel_index(&cfg, NULL), 0);
    ck_assert_int_eq(config_channel_index(&cfg, ""), 0);
    ck_assert_int_eq(config_channel_index(&cfg, "default"), 0);
    ck_assert_int_eq(config_channel_index(&cfg, "bulk"), -1);
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"bulk\"}, {\"name\": \"state\"}]}", &cfg), 0);
    ck_assert_int_eq(config_channel_index(&cfg, NULL), 0);
    ck_assert_int_eq(config_channel_index(&cfg, ""), 0);
    ck_assert_int_eq(config_channel_index(&cfg, "default"), 0);
    ck_assert_int_eq(config_channel_index(&cfg, "bulk"), 1);
    ck_assert_int_eq(config_channel_index(&cfg, "state"), 2);
    ck_assert_int_eq(config_channel_index(&cfg, "nope"), -1);
    ck_assert_int_eq(config_channel_index(&cfg, "Bulk"), -1);
    ck_assert_int_eq(config_channel_index(&cfg, "bul"), -1);
    ck_assert_int_eq(config_channel_index(&cfg, "control"), -1);
    config_free(&cfg);
}
END_TEST

START_TEST(channels_shape_errors)
{
    expect_one_error("{\"channels\": {\"name\": \"bulk\"}}",
                     "t.json: channels: expected an array of channel objects ({\"name\": ...}), got object");
    expect_one_error("{\"channels\": \"bulk\"}", "t.json: channels: expected an array of channel objects");
    expect_one_error("{\"channels\": [{\"name\": \"a\"}, \"bulk\"]}",
                     "t.json: channels[1]: expected a channel object ({\"name\": ...}), got string");
    expect_one_error("{\"channels\": [null]}", "t.json: channels[0]: expected a channel object ({\"name\": ...}), got null");
    expect_one_error("{\"channels\": [{\"name\": \"a\"}, {\"parallelism\": 2}]}",
                     "t.json: channels[1]: missing \"name\" (every channel needs one)");
    expect_one_error("{\"channels\": [{}]}", "t.json: channels[0]: missing \"name\"");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"parralelism\": 2}]}",
                     "t.json: channels[0].parralelism: unknown key (did you mean \"parallelism\"? "
                     "allowed: name, parallelism, monotonic, reliable, causal)");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"monotonc\": true}]}",
                     "t.json: channels[0].monotonc: unknown key (did you mean \"monotonic\"?");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"zzzzzzzz\": 1}]}",
                     "t.json: channels[0].zzzzzzzz: unknown key (allowed: name, parallelism, monotonic, reliable, causal)");
    /* A key name from the file is escaped in the path. */
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"x\\ny\": 1}]}", "t.json: channels[0].x\\x0ay: unknown key");
}
END_TEST

START_TEST(channels_name_errors)
{
    expect_one_error("{\"channels\": [{\"name\": 5}]}", "t.json: channels[0].name: expected a string, got integer");
    expect_one_error("{\"channels\": [{\"name\": null}]}", "t.json: channels[0].name: expected a string, got null");
    expect_one_error("{\"channels\": [{\"name\": \"\"}]}", "t.json: channels[0].name: must not be empty");
    expect_one_error("{\"channels\": [{\"name\": \"a b\"}]}",
                     "t.json: channels[0].name: \"a b\" has \" \" at byte 1 (allowed characters: A-Z a-z 0-9 . _ @ -)");
    expect_one_error("{\"channels\": [{\"name\": \"a/b\"}]}", "channels[0].name: \"a/b\" has \"/\" at byte 1");
    expect_one_error("{\"channels\": [{\"name\": \"a\\u0000b\"}]}", "channels[0].name: contains a NUL byte");

    char text[300];
    struct config cfg;
    snprintf(text, sizeof text, "{\"channels\": [{\"name\": \"%063d\"}]}", 0);      /* 63 bytes: the limit */
    ck_assert_int_eq(load(text, &cfg), 0);
    ck_assert_uint_eq(strlen(cfg.channels[1].name), CONFIG_CHANNEL_NAME_MAX);
    config_free(&cfg);
    snprintf(text, sizeof text, "{\"channels\": [{\"name\": \"%064d\"}]}", 0);
    expect_one_error(text, "t.json: channels[0].name: is 64 bytes long (max 63)");

    expect_one_error("{\"channels\": [{\"name\": \"bulk\"}, {\"name\": \"control\"}]}",
                     "t.json: channels[1].name: \"control\" is reserved for the internal control channel");
    expect_one_error("{\"channels\": [{\"name\": \"control\", \"parallelism\": 2}]}",
                     "channels[0].name: \"control\" is reserved");
}
END_TEST

START_TEST(channels_duplicates)
{
    expect_one_error("{\"channels\": [{\"name\": \"bulk\"}, {\"name\": \"state\"}, {\"name\": \"bulk\", \"parallelism\": 2}]}",
                     "t.json: channels[2].name: duplicate channel \"bulk\" (also channels[0])");
    expect_one_error("{\"channels\": [{\"name\": \"a\"}, {\"name\": \"default\"}, {\"name\": \"default\"}]}",
                     "t.json: channels[2].name: duplicate channel \"default\" (also channels[1])");
    /* A third copy names the first, once per copy. */
    struct config cfg;
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"x\"}, {\"name\": \"x\"}, {\"name\": \"x\"}]}", &cfg), 2);
    ck_assert_msg_has("channels[1].name: duplicate channel \"x\" (also channels[0])");
    ck_assert_msg_has("channels[2].name: duplicate channel \"x\" (also channels[0])");
    /* Names differ by case or by a NUL-suffix are not duplicates of each other. */
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"x\"}, {\"name\": \"X\"}]}", &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, 3);
    config_free(&cfg);
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"x\\u0000y\"}, {\"name\": \"x\"}]}", &cfg), 1);
    ck_assert_msg_has("channels[0].name: contains a NUL byte");
}
END_TEST

START_TEST(channels_options_errors)
{
    expect_one_error("{\"channels\": [{\"name\": \"default\"}, {\"name\": \"bulk\", \"parallelism\": 4},"
                     " {\"name\": \"state\", \"parallelism\": 0}]}",
                     "t.json: channels[2].parallelism: 0 is out of range (1..64)");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"parallelism\": 65}]}",
                     "t.json: channels[0].parallelism: 65 is out of range (1..64)");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"parallelism\": -4}]}",
                     "channels[0].parallelism: -4 is out of range (1..64)");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"parallelism\": 4294967297}]}",
                     "channels[0].parallelism: 4294967297 is out of range (1..64)");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"parallelism\": \"4\"}]}",
                     "t.json: channels[0].parallelism: expected an integer, got string");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"parallelism\": 2.0}]}",
                     "channels[0].parallelism: expected an integer, got real number");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"monotonic\": 1}]}",
                     "t.json: channels[0].monotonic: expected a boolean (true or false), got integer");
    expect_one_error("{\"channels\": [{\"name\": \"a\", \"monotonic\": \"true\"}]}",
                     "channels[0].monotonic: expected a boolean (true or false), got string");
    expect_one_error("{\"channels\": [{\"name\": \"default\", \"monotonic\": null}]}",
                     "channels[0].monotonic: expected a boolean (true or false), got null");
}
END_TEST

/* {"channels": [{"name": "c<first>"}, ... {"name": "c<first+n-1>"}], plus "default" if asked. */
static void channels_text(char *out, size_t len, size_t n, int with_default)
{
    size_t o = (size_t)snprintf(out, len, "{\"channels\": [%s", with_default ? "{\"name\": \"default\"}" : "");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, len - o, "%s{\"name\": \"c%zu\"}", (i || with_default) ? ", " : "", i);
    snprintf(out + o, len - o, "]}");
}

START_TEST(channels_limit)
{
    char text[4096];
    struct config cfg;
    /* 31 + the implicit "default" = 32, the limit. */
    channels_text(text, sizeof text, CONFIG_CHANNELS_MAX - 1, 0);
    ck_assert_int_eq(load(text, &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, CONFIG_CHANNELS_MAX);
    ck_assert_str_eq(cfg.channels[0].name, "default");
    ck_assert_str_eq(cfg.channels[CONFIG_CHANNELS_MAX - 1].name, "c30");
    ck_assert_int_eq(config_channel_index(&cfg, "c30"), CONFIG_CHANNELS_MAX - 1);
    config_free(&cfg);
    channels_text(text, sizeof text, CONFIG_CHANNELS_MAX - 1, 1);
    ck_assert_int_eq(load(text, &cfg), 0);
    ck_assert_uint_eq(cfg.n_channels, CONFIG_CHANNELS_MAX);
    config_free(&cfg);

    channels_text(text, sizeof text, CONFIG_CHANNELS_MAX, 0);
    expect_one_error(text, "t.json: channels: 33 channels (\"default\" included) is more than the limit of 32");
    channels_text(text, sizeof text, CONFIG_CHANNELS_MAX, 1);
    expect_one_error(text, "t.json: channels: 33 channels (\"default\" included) is more than the limit of 32");
    channels_text(text, sizeof text, 100, 0);
    expect_one_error(text, "t.json: channels: 101 channels (\"default\" included) is more than the limit of 32");
}
END_TEST

START_TEST(channels_every_error_is_counted)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"channels\": [{\"name\": \"control\"}, 5,"
                          " {\"name\": \"a\", \"parallelism\": 0, \"monotonic\": \"x\", \"foo\": 1},"
                          " {\"name\": \"a\"}, {}],"
                          " \"transport\": {\"window_bytes\": 0}}", &cfg), 8);
    ck_assert_msg_has("t.json: channels[0].name: \"control\" is reserved");
    ck_assert_msg_has("t.json: channels[1]: expected a channel object");
    ck_assert_msg_has("t.json: channels[2].parallelism: 0 is out of range (1..64)");
    ck_assert_msg_has("t.json: channels[2].monotonic: expected a boolean");
    ck_assert_msg_has("t.json: channels[2].foo: unknown key");
    ck_assert_msg_has("t.json: channels[3].name: duplicate channel \"a\" (also channels[2])");
    ck_assert_msg_has("t.json: channels[4]: missing \"name\"");
    ck_assert_msg_has("t.json: transport.window_bytes: 0 is out of range");
    ck_assert_ptr_null(cfg.seeds);
}
END_TEST

START_TEST(null_callback_still_counts)
{
    struct config cfg;
    ck_assert_int_eq(config_load_string("{\"a\": 1, \"b\": 2}", NULL, &cfg, NULL, NULL), 2);
}
END_TEST

START_TEST(missing_file)
{
    struct config cfg;
    msgs[0] = '\0';
    n_msgs = 0;
    ck_assert_int_eq(config_load("/nonexistent/partisand.json", &cfg, collect, NULL), 1);
    ck_assert_msg_has("/nonexistent/partisand.json: ");
    ck_assert_msg_has(strerror(ENOENT));
}
END_TEST

START_TEST(file_syntax_error_names_file)
{
    char path[] = "/tmp/check_config_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char body[] = "{\n\"log\": {\"level\": \"info\"\n}";
    ck_assert_int_eq(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    struct config cfg;
    msgs[0] = '\0';
    n_msgs = 0;
    ck_assert_int_eq(config_load(path, &cfg, collect, NULL), 1);
    unlink(path);
    char want[64];
    snprintf(want, sizeof want, "%s:3:", path);
    ck_assert_msg_has(want);
}
END_TEST

START_TEST(parse_addr_cases)
{
    struct config_addr a;
    ck_assert_int_eq(config_parse_addr("127.0.0.1:10200", &a), 0);
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_uint_eq(a.port, 10200);
    ck_assert_int_eq(config_parse_addr("[::1]:80", &a), 0);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_uint_eq(a.port, 80);
    ck_assert_int_eq(config_parse_addr("[fe80::1%eth0]:65535", &a), 0);
    ck_assert_str_eq(a.host, "fe80::1%eth0");
    ck_assert_uint_eq(a.port, 65535);
    ck_assert_int_eq(config_parse_addr("host.example:0", &a), 0);
    ck_assert_uint_eq(a.port, 0);

    const char *bad[] = {
        "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:8o", ":80", "[]:80", "[::1]", "[::1]80", "[::1:80", "::1:80",
        "[host]:80", "a b:80", "", "h:123456",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(config_parse_addr(bad[i], &a) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(format_addr_round_trips)
{
    struct config_addr a;
    char buf[CONFIG_ADDR_MAX + 16];
    ck_assert_int_eq(config_parse_addr("[2001:db8::1]:7000", &a), 0);
    config_format_addr(&a, buf, sizeof buf);
    ck_assert_str_eq(buf, "[2001:db8::1]:7000");
    ck_assert_int_eq(config_parse_addr("node-1.example:1", &a), 0);
    config_format_addr(&a, buf, sizeof buf);
    ck_assert_str_eq(buf, "node-1.example:1");
}
END_TEST

START_TEST(shipped_configs_load)
{
    const char *src = getenv("SRCDIR");
    char pattern[1024];
    snprintf(pattern, sizeof pattern, "%s/conf/*.json", src && *src ? src : ".");
    glob_t g;
    ck_assert_int_eq(glob(pattern, 0, NULL, &g), 0);
    ck_assert_uint_ge(g.gl_pathc, 3);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct config cfg;
        msgs[0] = '\0';
        n_msgs = 0;
        int n = config_load(g.gl_pathv[i], &cfg, collect, NULL);
        ck_assert_msg(n == 0, "%s: %d errors:\n%s", g.gl_pathv[i], n, msgs);
        config_free(&cfg);
    }
    globfree(&g);
}
END_TEST

START_TEST(dev_config_values)
{
    const char *src = getenv("SRCDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/conf/dev.json", src && *src ? src : ".");
    struct config cfg;
    ck_assert_int_eq(config_load(path, &cfg, collect, NULL), 0);
    ck_assert_str_eq(cfg.node_name, "dev");
    ck_assert_uint_eq(cfg.listen.port, 0);
    ck_assert_str_eq(cfg.ipc_socket, "run/partisand.sock");
    ck_assert_str_eq(cfg.state_dir, "run/state");
    ck_assert_uint_eq(cfg.ipc_mode, 0600);
    ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
    config_free(&cfg);
}
END_TEST

/* Groups and users every Debian system has, so the test runs anywhere. */
START_TEST(ipc_access_keys_parse)
{
    struct config cfg;
    ck_assert_int_eq(load("{\"ipc\": {\"admin_groups\": [\"root\", \"nogroup\"], \"client_groups\": [\"nogroup\"],"
                          " \"names\": {\"billing\": \"root\", \"audit.log\": \"nobody\"}}}", &cfg), 0);
    ck_assert_uint_eq(cfg.ipc_admin_groups.n, 2);
    ck_assert_uint_eq(cfg.ipc_admin_groups.gid[0], 0);
    ck_assert_str_eq(cfg.ipc_admin_groups.name[0], "root");
    ck_assert_uint_eq(cfg.ipc_admin_groups.gid[1], 65534);
    ck_assert_str_eq(cfg.ipc_admin_groups.name[1], "nogroup");
    ck_assert_uint_eq(cfg.ipc_client_groups.n, 1);
    ck_assert_uint_eq(cfg.ipc_client_groups.gid[0], 65534);
    ck_assert_uint_eq(cfg.n_ipc_names, 2);
    const struct config_reserved_name *r = config_reserved_name(&cfg, "billing");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->uid, 0);
    ck_assert_str_eq(r->user, "root");
    r = config_reserved_name(&cfg, "audit.log");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->uid, 65534);
    ck_assert_str_eq(r->user, "nobody");
    ck_assert_ptr_null(config_reserved_name(&cfg, "billin"));
    ck_assert_ptr_null(config_reserved_name(&cfg, ""));
    config_free(&cfg);
    /* Empty lists are the defaults, given explicitly. */
    ck_assert_int_eq(load("{\"ipc\": {\"admin_groups\": [], \"client_groups\": [], \"names\": {}}}", &cfg), 0);
    ck_assert_uint_eq(cfg.ipc_admin_groups.n + cfg.ipc_client_groups.n + cfg.n_ipc_names, 0);
    config_free(&cfg);
    /* A reserved name need not be a node name: anything an application may register. */
    ck_assert_int_eq(load("{\"ipc\": {\"names\": {\"with space/and:colon\": \"root\"}}}", &cfg), 0);
    ck_assert_ptr_nonnull(config_reserved_name(&cfg, "with space/and:colon"));
    config_free(&cfg);
}
END_TEST

START_TEST(ipc_access_unknown_accounts)
{
    expect_one_error("{\"ipc\": {\"admin_groups\": [\"root\", \"wheeel-no-such-group\"]}}",
                     "t.json: ipc.admin_groups[1]: no such group \"wheeel-no-such-group\"");
    expect_one_error("{\"ipc\": {\"client_groups\": [\"no-such-group-xyz\"]}}",
                     "t.json: ipc.client_groups[0]: no such group \"no-such-group-xyz\"");
    expect_one_error("{\"ipc\": {\"names\": {\"billing\": \"billing-svc-no-such\"}}}",
                     "t.json: ipc.names.billing: no such user \"billing-svc-no-such\"");
    /* Every bad entry is named, and a failed key leaves nothing half-set. */
    struct config cfg;
    ck_assert_int_eq(load("{\"ipc\": {\"admin_groups\": [\"nope-1\", \"root\", \"nope-2\"],"
                          " \"names\": {\"a\": \"nope-3\", \"b\": \"root\"}}}", &cfg), 3);
    ck_assert_msg_has("ipc.admin_groups[0]: no such group \"nope-1\"");
    ck_assert_msg_has("ipc.admin_groups[2]: no such group \"nope-2\"");
    ck_assert_msg_has("ipc.names.a: no such user \"nope-3\"");
    /* A user name is not a group name: "nobody"'s group is "nogroup". */
    expect_one_error("{\"ipc\": {\"admin_groups\": [\"nobody\"]}}", "ipc.admin_groups[0]: no such group \"nobody\"");
    expect_one_error("{\"ipc\": {\"names\": {\"x\": \"nogroup\"}}}", "ipc.names.x: no such user \"nogroup\"");
}
END_TEST

START_TEST(ipc_access_wrong_types)
{
    expect_one_error("{\"ipc\": {\"admin_groups\": \"root\"}}",
                     "t.json: ipc.admin_groups: expected an array of group names, got string");
    expect_one_error("{\"ipc\": {\"client_groups\": {\"root\": true}}}",
                     "ipc.client_groups: expected an array of group names, got object");
    expect_one_error("{\"ipc\": {\"admin_groups\": [0]}}",
                     "ipc.admin_groups[0]: expected a string (a group name), got integer");
    expect_one_error("{\"ipc\": {\"admin_groups\": [\"\"]}}", "ipc.admin_groups[0]: a group name must not be empty");
    expect_one_error("{\"ipc\": {\"admin_groups\": [\"r\\u0000oot\"]}}",
                     "ipc.admin_groups[0]: contains a NUL byte");
    expect_one_error("{\"ipc\": {\"client_groups\": [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}}",
                     "is 33 bytes long (max 32 for a group name)");
    expect_one_error("{\"ipc\": {\"names\": [\"billing\"]}}",
                     "ipc.names: expected an object mapping registered names to user names");
    expect_one_error("{\"ipc\": {\"names\": {\"billing\": 0}}}",
                     "ipc.names.billing: expected a string (a user name), got integer");
    expect_one_error("{\"ipc\": {\"names\": {\"billing\": null}}}",
                     "ipc.names.billing: expected a string (a user name), got null");
    expect_one_error("{\"ipc\": {\"names\": {\"\": \"root\"}}}",
                     "a registered name must be 1 to 255 bytes, this one is 0");
    char big[600];
    snprintf(big, sizeof big, "{\"ipc\": {\"names\": {\"%0256d\": \"root\"}}}", 0);
    expect_one_error(big, "a registered name must be 1 to 255 bytes, this one is 256");
    expect_one_error("{\"ipc\": {\"admin_group\": []}}", "ipc.admin_group: unknown key (did you mean \"admin_groups\"?");
}
END_TEST

START_TEST(ipc_access_limits)
{
    char text[20000];
    size_t o = (size_t)snprintf(text, sizeof text, "{\"ipc\": {\"admin_groups\": [");
    for (int i = 0; i < CONFIG_IPC_GROUPS_MAX; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "%s\"root\"", i ? "," : "");
    snprintf(text + o, sizeof text - o, "]}}");
    struct config cfg;
    ck_assert_int_eq(load(text, &cfg), 0);
    ck_assert_uint_eq(cfg.ipc_admin_groups.n, CONFIG_IPC_GROUPS_MAX);
    config_free(&cfg);
    snprintf(text + o, sizeof text - o, ",\"root\"]}}");
    expect_one_error(text, "ipc.admin_groups: 33 groups is more than the limit of 32");

    o = (size_t)snprintf(text, sizeof text, "{\"ipc\": {\"names\": {");
    for (int i = 0; i < CONFIG_IPC_NAMES_MAX; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "%s\"n%d\": \"nobody\"", i ? "," : "", i);
    snprintf(text + o, sizeof text - o, "}}}");
    ck_assert_int_eq(load(text, &cfg), 0);
    ck_assert_uint_eq(cfg.n_ipc_names, CONFIG_IPC_NAMES_MAX);
    ck_assert_ptr_nonnull(config_reserved_name(&cfg, "n255"));
    config_free(&cfg);
    snprintf(text + o, sizeof text - o, ",\"one-more\": \"root\"}}}");
    expect_one_error(text, "ipc.names: 257 reserved names is more than the limit of 256");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, empty_object_gives_defaults);
    tcase_add_test(tc, defaults_match_empty_object);
    tcase_add_test(tc, full_valid_config);
    tcase_add_test(tc, listen_port_zero_and_default_advertise);
    tcase_add_test(tc, syntax_error_has_line_and_column);
    tcase_add_test(tc, syntax_error_token_is_escaped);
    tcase_add_test(tc, duplicate_key_rejected);
    tcase_add_test(tc, top_level_must_be_object);
    tcase_add_test(tc, section_must_be_object);
    tcase_add_test(tc, unknown_top_level_key);
    tcase_add_test(tc, tls_is_all_or_nothing);
    tcase_add_test(tc, unknown_nested_key);
    tcase_add_test(tc, wrong_types);
    tcase_add_test(tc, out_of_range);
    tcase_add_test(tc, overlay_types);
    tcase_add_test(tc, hyparview_keys);
    tcase_add_test(tc, names);
    tcase_add_test(tc, bad_addresses);
    tcase_add_test(tc, wildcard_listen_needs_advertise);
    tcase_add_test(tc, bad_modes);
    tcase_add_test(tc, paths_and_levels);
    tcase_add_test(tc, cross_key_constraints);
    tcase_add_test(tc, cross_key_skipped_when_one_side_invalid);
    tcase_add_test(tc, every_error_is_counted);
    tcase_add_test(tc, window_bytes);
    tcase_add_test(tc, channels_default_only);
    tcase_add_test(tc, channels_example);
    tcase_add_test(tc, channels_reliable_and_causal);
    tcase_add_test(tc, faults_section);
    tcase_add_test(tc, channels_default_listed_later);
    tcase_add_test(tc, channel_index);
    tcase_add_test(tc, channels_shape_errors);
    tcase_add_test(tc, channels_name_errors);
    tcase_add_test(tc, channels_duplicates);
    tcase_add_test(tc, channels_options_errors);
    tcase_add_test(tc, channels_limit);
    tcase_add_test(tc, channels_every_error_is_counted);
    tcase_add_test(tc, null_callback_still_counts);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, file_syntax_error_names_file);
    tcase_add_test(tc, parse_addr_cases);
    tcase_add_test(tc, format_addr_round_trips);
    tcase_add_test(tc, shipped_configs_load);
    tcase_add_test(tc, dev_config_values);
    tcase_add_test(tc, ipc_access_keys_parse);
    tcase_add_test(tc, ipc_access_unknown_accounts);
    tcase_add_test(tc, ipc_access_wrong_types);
    tcase_add_test(tc, ipc_access_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
