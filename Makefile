# partisand — the one entry point: all, run, test, bench, install, clean.
# `make`, `make run` and `make test` first install any missing Debian package
# (scripts/deps.sh, a quick no-op when all are present), then build.

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  := 0.1.0
SAN      ?= 0

CC       ?= cc
PKGS     := libevent libevent_openssl openssl libprotobuf-c jansson libsystemd
# Recursively expanded on purpose: pkg-config runs only after deps.sh did.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CSTD     := -std=c11 -D_GNU_SOURCE
OPT      := -O2 -g
ifeq ($(SAN),1)
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
endif
CFLAGS_ALL  = $(CSTD) $(OPT) $(WARN) -I$(BUILD)/gen -Iproto -Idaemon -Iclient -Itest/integration -DPARTISAN_VERSION='"$(VERSION)"' $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(OPT) $(LDFLAGS)

GEN       := $(BUILD)/gen/ipc.pb-c.c $(BUILD)/gen/peer.pb-c.c $(BUILD)/gen/hyparview.pb-c.c
GEN_H     := $(GEN:.c=.h)

DAEMON_SRC := daemon/main.c daemon/config.c daemon/log.c daemon/ipc.c daemon/router.c \
              daemon/node.c daemon/transport.c daemon/transport_lanes.c daemon/transport_faults.c daemon/membership.c daemon/overlay.c daemon/overlay_full_mesh.c daemon/dialer.c \
              daemon/overlay_hyparview.c daemon/plumtree.c daemon/reliable.c daemon/delivery.c daemon/causal.c daemon/faults.c \
              daemon/state.c daemon/flow.c daemon/channel.c daemon/control.c daemon/gossip_codec.c daemon/tls.c daemon/config_diff.c daemon/sockbuf.c proto/frame.c proto/frame_evbuffer.c proto/envelope.c proto/pbarena.c
CLIENT_SRC := client/client.c client/client_reply.c proto/frame.c proto/pbarena.c proto/envelope.c
CTL_SRC    := client/partisanctl.c

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
pic = $(patsubst %.c,$(BUILD)/pic/%.o,$(1))

DAEMON_OBJ := $(call obj,$(DAEMON_SRC)) $(BUILD)/obj/gen/ipc.pb-c.o $(BUILD)/obj/gen/peer.pb-c.o $(BUILD)/obj/gen/hyparview.pb-c.o
CLIENT_PIC := $(call pic,$(CLIENT_SRC)) $(BUILD)/pic/gen/ipc.pb-c.o

BINS := $(BUILD)/partisand $(BUILD)/partisanctl $(BUILD)/libpartisan-client.so \
        $(BUILD)/libpartisan-client.a $(BUILD)/partisan-client.pc

# Unit tests: one Check binary per module, linked with the module under test.
UNIT_TESTS := config frame membership transport log flow channel dialer delivery causal faults reliable
UNIT_BINS  := $(addprefix $(BUILD)/test/check_,$(UNIT_TESTS))
SIM_BIN    := $(BUILD)/test/sim
DSIM_BIN   := $(BUILD)/test/delivery_sim
ITEST_BINS := $(BUILD)/test/ipc_test $(BUILD)/test/cluster_test $(BUILD)/test/channel_test $(BUILD)/test/batch_test \
              $(BUILD)/test/hyparview_test $(BUILD)/test/delivery_test
ITEST_SCRIPTS := install_test.sh
# Every test test/run.sh must find and run; a missing one counts as failed.
TEST_NAMES  = $(notdir $(UNIT_BINS) $(SIM_BIN) $(DSIM_BIN) $(ITEST_BINS)) $(ITEST_SCRIPTS)
BENCH_BINS := $(BUILD)/bench/echo_bench $(BUILD)/bench/baseline_forwarder $(BUILD)/bench/channel_bench $(BUILD)/bench/idle_bench \
              $(BUILD)/bench/reliable_bench

.PHONY: all binaries run test bench bench-scale install clean deps tests-build
.DELETE_ON_ERROR:
# Generated code is kept: the fuzz harnesses and editors include it.
.PRECIOUS: $(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h

all: deps
	@$(MAKE) --no-print-directory binaries

deps:
	@bash scripts/deps.sh

binaries: $(BINS)

run: all
	@mkdir -p run
	$(BUILD)/partisand --config conf/dev.json

test: deps
	@$(MAKE) --no-print-directory BUILD=build/san SAN=1 binaries tests-build
	@bash test/run.sh build/san $(TEST_NAMES)

tests-build: $(BUILD)/test/tests.list $(UNIT_BINS) $(SIM_BIN) $(DSIM_BIN) $(ITEST_BINS)

# What `bash test/run.sh BUILD` expects to find; rewritten on every build so
# that it always matches this Makefile, even when a test fails to build.
.PHONY: $(BUILD)/test/tests.list
$(BUILD)/test/tests.list:
	@mkdir -p $(dir $@)
	@printf '%s\n' $(TEST_NAMES) > $@

bench: deps
	@$(MAKE) --no-print-directory binaries $(BENCH_BINS)
	@bash bench/run.sh $(BUILD)

# Not in `make test`: 10,000 simulated nodes take minutes (bench/scale_bench.c).
bench-scale: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench/scale_bench
	$(BUILD)/bench/scale_bench

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -c -o $@ $<
$(BUILD)/pic/gen/%.o: $(BUILD)/gen/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -fPIC -fvisibility=hidden -c -o $@ $<
$(BUILD)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<
$(BUILD)/pic/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -MMD -MP -c -o $@ $<

$(BUILD)/partisand: $(DAEMON_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) -levent_core -lm

$(BUILD)/libpartisan-client.so: $(CLIENT_PIC)
	$(CC) $(LDFLAGS_ALL) -shared -Wl,-soname,libpartisan-client.so.0 -o $@ $^ $(shell pkg-config --libs libprotobuf-c)

$(BUILD)/libpartisan-client.a: $(CLIENT_PIC)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/partisanctl: $(call obj,$(CTL_SRC)) $(BUILD)/libpartisan-client.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c jansson)

$(BUILD)/partisan-client.pc: client/partisan-client.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# --- tests ---
CHECK_LIBS = $(shell pkg-config --libs check)
$(BUILD)/test/check_config: $(call obj,test/unit/check_config.c daemon/config.c daemon/faults.c daemon/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)
$(BUILD)/test/check_log: $(call obj,test/unit/check_log.c daemon/log.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS)
$(BUILD)/test/check_frame: $(call obj,test/unit/check_frame.c proto/frame.c proto/frame_evbuffer.c proto/envelope.c) $(BUILD)/obj/gen/ipc.pb-c.o $(BUILD)/obj/gen/peer.pb-c.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)
$(BUILD)/test/check_channel: $(call obj,test/unit/check_channel.c daemon/channel.c proto/frame.c proto/frame_evbuffer.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)
$(BUILD)/test/check_membership: $(call obj,test/unit/check_membership.c daemon/membership.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS)
$(BUILD)/test/check_dialer: $(call obj,test/unit/check_dialer.c daemon/dialer.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS)
$(BUILD)/test/check_reliable: $(call obj,test/unit/check_reliable.c daemon/reliable.c daemon/delivery.c daemon/causal.c daemon/config.c daemon/faults.c daemon/log.c) $(BUILD)/obj/gen/peer.pb-c.o $(BUILD)/obj/gen/ipc.pb-c.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)
$(BUILD)/test/check_flow: $(call obj,test/unit/check_flow.c daemon/flow.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS)
$(BUILD)/test/check_delivery: $(call obj,test/unit/check_delivery.c daemon/delivery.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS)
$(BUILD)/test/check_causal: $(call obj,test/unit/check_causal.c daemon/causal.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS)
$(BUILD)/test/check_faults: $(call obj,test/unit/check_faults.c daemon/faults.c proto/frame.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs jansson) $(CHECK_LIBS) -lm
$(BUILD)/test/delivery_sim: $(call obj,test/sim/delivery_sim.c daemon/delivery.c daemon/causal.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^
$(BUILD)/test/check_transport: $(call obj,test/unit/check_transport.c daemon/transport.c daemon/transport_lanes.c daemon/transport_faults.c daemon/faults.c daemon/tls.c daemon/channel.c daemon/membership.c daemon/log.c daemon/sockbuf.c proto/frame.c proto/frame_evbuffer.c proto/envelope.c proto/pbarena.c) $(BUILD)/obj/gen/peer.pb-c.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)
$(BUILD)/test/sim: $(call obj,test/sim/sim.c test/sim/scenarios.c test/sim/scenarios_hyparview.c daemon/membership.c daemon/overlay.c daemon/overlay_full_mesh.c daemon/dialer.c daemon/overlay_hyparview.c daemon/plumtree.c daemon/gossip_codec.c proto/pbarena.c) $(BUILD)/obj/gen/peer.pb-c.o $(BUILD)/obj/gen/hyparview.pb-c.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) -lm
$(BUILD)/test/ipc_test: $(call obj,test/integration/ipc_test.c test/integration/harness.c proto/frame.c) $(BUILD)/obj/gen/peer.pb-c.o $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c)
$(BUILD)/test/cluster_test: $(call obj,test/integration/cluster_test.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c)
$(BUILD)/test/hyparview_test: $(call obj,test/integration/hyparview_test.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c)
$(BUILD)/test/channel_test: $(call obj,test/integration/channel_test.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) -lpthread

$(BUILD)/test/batch_test: $(call obj,test/integration/batch_test.c test/integration/harness.c proto/frame.c) $(BUILD)/obj/gen/ipc.pb-c.o $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c)
$(BUILD)/test/delivery_test: $(call obj,test/integration/delivery_test.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) -lpthread

# --- bench ---
$(BUILD)/bench/echo_bench: $(call obj,bench/echo_bench.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) -lm
$(BUILD)/bench/idle_bench: $(call obj,bench/idle_bench.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c)
$(BUILD)/bench/channel_bench: $(call obj,bench/channel_bench.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) -lpthread -lm
$(BUILD)/bench/reliable_bench: $(call obj,bench/reliable_bench.c test/integration/harness.c) $(BUILD)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c) -lpthread
$(BUILD)/bench/baseline_forwarder: $(call obj,bench/baseline_forwarder.c proto/frame.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libevent)

$(BUILD)/bench/scale_bench: $(call obj,bench/scale_bench.c daemon/overlay_hyparview.c daemon/plumtree.c daemon/membership.c daemon/overlay.c daemon/overlay_full_mesh.c daemon/dialer.c daemon/gossip_codec.c proto/pbarena.c) $(BUILD)/obj/gen/hyparview.pb-c.o $(BUILD)/obj/gen/peer.pb-c.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell pkg-config --libs libprotobuf-c)

# --- install ---
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib \
	    $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)/etc/partisan $(DESTDIR)/lib/systemd/system $(DESTDIR)/usr/lib/sysusers.d \
	    $(DESTDIR)$(PREFIX)/share/doc/partisand
	install -m 0755 $(BUILD)/partisand $(DESTDIR)$(PREFIX)/sbin/partisand
	install -m 0755 $(BUILD)/partisanctl $(DESTDIR)$(PREFIX)/bin/partisanctl
	install -m 0644 $(BUILD)/libpartisan-client.so $(DESTDIR)$(PREFIX)/lib/libpartisan-client.so.0
	ln -sf libpartisan-client.so.0 $(DESTDIR)$(PREFIX)/lib/libpartisan-client.so
	install -m 0644 $(BUILD)/libpartisan-client.a $(DESTDIR)$(PREFIX)/lib/libpartisan-client.a
	install -m 0644 client/partisan.h $(DESTDIR)$(PREFIX)/include/partisan.h
	install -m 0644 $(BUILD)/partisan-client.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/partisan-client.pc
	test -e $(DESTDIR)/etc/partisan/partisand.json || install -m 0644 conf/partisand.json $(DESTDIR)/etc/partisan/partisand.json
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@DOCDIR@|$(PREFIX)/share/doc/partisand|g' systemd/partisand.service.in > $(DESTDIR)/lib/systemd/system/partisand.service
	chmod 0644 $(DESTDIR)/lib/systemd/system/partisand.service
	install -m 0644 systemd/partisan.sysusers $(DESTDIR)/usr/lib/sysusers.d/partisan.conf
	install -m 0644 README.md doc/config.md $(DESTDIR)$(PREFIX)/share/doc/partisand/

clean:
	rm -rf build run

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
