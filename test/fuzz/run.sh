#!/usr/bin/env bash
# Builds the libFuzzer harnesses and runs each, one after the other, for
# SECONDS seconds (default 60). Usage, from the repository root:
#   bash test/fuzz/run.sh [SECONDS] [fuzz_config|fuzz_frame|fuzz_overlay|fuzz_delivery ...]
# Findings (crash-*, leak-*, timeout-*, oom-*) land in build/fuzz/artifacts/.
# A single input is replayed with: build/fuzz/fuzz_config FILE
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_config fuzz_frame fuzz_overlay fuzz_delivery)

CC=${FUZZ_CC:-clang}
OUT=build/fuzz
GEN=build/fz/gen
mkdir -p "$OUT/artifacts"

# Generated protobuf-c code, as the Makefile makes it. Naming the headers
# keeps make from deleting them as intermediate files.
PROTOS=()
for p in proto/*.proto; do
    b=$(basename "$p" .proto)
    PROTOS+=("$GEN/$b.pb-c.c" "$GEN/$b.pb-c.h")
done
make --no-print-directory BUILD=build/fz "${PROTOS[@]}" >/dev/null
# Every overlay core the registry (daemon/overlay.c) can name, and what
# they share; the generated code of every overlay's messages.
OVERLAY_SRC=(daemon/overlay.c daemon/overlay_*.c daemon/dialer.c daemon/membership.c daemon/gossip_codec.c
             proto/pbarena.c)
[ -f daemon/plumtree.c ] && OVERLAY_SRC+=(daemon/plumtree.c)
OVERLAY_GEN=()
for p in proto/*.proto; do
    b=$(basename "$p" .proto)
    [ "$b" = ipc ] || OVERLAY_GEN+=("$GEN/$b.pb-c.c")
done

CFLAGS=(-g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter
        -Iproto -Idaemon -I$GEN $(pkg-config --cflags jansson libprotobuf-c libevent))
SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
LIBS=($(pkg-config --libs jansson libprotobuf-c libevent))

build() {
    case $1 in
    fuzz_config)
        $CC "${CFLAGS[@]}" "${SAN[@]}" -o $OUT/fuzz_config \
            test/fuzz/fuzz_config.c daemon/config.c daemon/faults.c daemon/log.c "${LIBS[@]}" ;;
    fuzz_frame)
        $CC "${CFLAGS[@]}" "${SAN[@]}" -Wno-missing-field-initializers -o $OUT/fuzz_frame \
            test/fuzz/fuzz_frame.c proto/frame.c proto/frame_evbuffer.c proto/envelope.c proto/pbarena.c daemon/membership.c daemon/gossip_codec.c \
            $GEN/ipc.pb-c.c $GEN/peer.pb-c.c "${LIBS[@]}"
        # Seeds: well-formed streams (built without libFuzzer's main).
        $CC "${CFLAGS[@]}" -o $OUT/gen_seeds test/fuzz/gen_seeds.c proto/frame.c \
            $GEN/ipc.pb-c.c $GEN/peer.pb-c.c "${LIBS[@]}" ;;
    fuzz_overlay)
        $CC "${CFLAGS[@]}" "${SAN[@]}" -Wno-missing-field-initializers -o $OUT/fuzz_overlay \
            test/fuzz/fuzz_overlay.c "${OVERLAY_SRC[@]}" "${OVERLAY_GEN[@]}" "${LIBS[@]}" ;;
    fuzz_delivery)
        $CC "${CFLAGS[@]}" "${SAN[@]}" -o $OUT/fuzz_delivery \
            test/fuzz/fuzz_delivery.c daemon/delivery.c daemon/causal.c ;;
    esac
}

seed() {
    local dir=$OUT/corpus/$1
    mkdir -p "$dir"
    case $1 in
    fuzz_config)
        cp conf/*.json "$dir/"
        printf '{}' >"$dir/empty" ;;
    fuzz_frame)
        $OUT/gen_seeds "$dir" ;;
    fuzz_overlay)
        # Per core: peers connect, time passes, the core's own messages
        # come back to it (op 7), so the fuzzer starts from real traffic.
        for c in 0 1; do
            printf "\\x0$c\\x01\\x09\\x11\\x04\\x64\\x07\\x0c\\x07\\xa4\\x07\\x0a\\x07" >"$dir/traffic_$c"
            printf "\\x0$c\\x01\\x04\\x64\\x05\\x07\\x06\\x04\\xff\\x04\\xff" >"$dir/leave_forget_$c"
        done ;;
    fuzz_delivery)
        # Scripts (see the top of fuzz_delivery.c): sends acked honestly and
        # data with a gap; a causal message held until a third node's
        # arrives; a probe, its answer and a restart; every callback
        # re-entering with a window of 1, then local_left; a crowd of
        # origins (the core's tables grow) while transmit opens new links.
        printf '\x00\x04\x00\x02\x03\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02\x00\x97\x12\x00\xd7\x00\x00\x00\x02\x00\x01\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00\x00\x00\x00\x00\x00\x02\x00\x02\x00\x00\x00\x57' >"$dir/traffic"
        printf '\x00\x04\x00\x02\x00\x00\x01\x02\x00\x01\x00\x02\x05\x01\x00\x11\x01\x00\x00\x01\x01\x01\x00\x01\x00\x02\x04\x10\x01\x00\x3c\x00\x01\x02\x02\x01\x02\x04\x10\x01\x03\x00\x01\x01\x00\x00\x00\x00\x00\x02\x02\x00\x57' >"$dir/causal_hold"
        printf '\x00\x04\x00\x00\x03\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02\x01\x02\x00\x03\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc2\x00\x04\x00\x05\xd7\x06\x00' >"$dir/probe_restart"
        printf '\x01\x0a\x7c\x04\x00\x02\x3d\x00\x00\x02\x00\x00\x00\x02\x00\x01\x00\x00\x00\x02\x00\x08\x00\x57\xfe' >"$dir/reentrant"
        printf '\x00\x0a\x40\x04\x00\x02\xfb\x00\x00\x03\x00\x00\x01\x00\x00\x00\x00\x00\x00\x57\x04\x01\x02\x57' >"$dir/crowd" ;;
    esac
}

for t in "${TARGETS[@]}"; do
    echo "== $t: build"
    build "$t"
    seed "$t"
    opts=(-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$OUT/artifacts/$t-")
    case $t in
    fuzz_config)
        { cat test/fuzz/config.dict
          grep -ohE '"[a-z_]+"' daemon/config.c daemon/faults.c | sort -u; } >"$OUT/config.dict"
        opts+=(-dict="$OUT/config.dict" -max_len=4096) ;;
    fuzz_frame) opts+=(-max_len=8192) ;;
    fuzz_overlay|fuzz_delivery) opts+=(-max_len=4096) ;;
    esac
    echo "== $t: fuzzing for ${SECS}s"
    "$OUT/$t" "${opts[@]}" "$OUT/corpus/$t"
done
