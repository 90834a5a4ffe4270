#!/usr/bin/env bash
# Builds the libFuzzer harnesses and runs each, one after the other, for
# SECONDS seconds (default 60). Usage, from the repository root:
#   bash test/fuzz/run.sh [SECONDS] [fuzz_config|fuzz_frame ...]
# Findings (crash-*, leak-*, timeout-*, oom-*) land in build/fuzz/artifacts/.
# A single input is replayed with: build/fuzz/fuzz_config FILE
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_config fuzz_frame)

CC=${FUZZ_CC:-clang}
OUT=build/fuzz
GEN=build/fz/gen
mkdir -p "$OUT/artifacts"

# Generated protobuf-c code, as the Makefile makes it. Naming the headers
# keeps make from deleting them as intermediate files.
make --no-print-directory BUILD=build/fz $GEN/ipc.pb-c.c $GEN/ipc.pb-c.h \
     $GEN/peer.pb-c.c $GEN/peer.pb-c.h >/dev/null

CFLAGS=(-g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter
        -Iproto -Idaemon -I$GEN $(pkg-config --cflags jansson libprotobuf-c))
SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
LIBS=($(pkg-config --libs jansson libprotobuf-c))

build() {
    case $1 in
    fuzz_config)
        $CC "${CFLAGS[@]}" "${SAN[@]}" -o $OUT/fuzz_config \
            test/fuzz/fuzz_config.c daemon/config.c daemon/log.c "${LIBS[@]}" ;;
    fuzz_frame)
        $CC "${CFLAGS[@]}" "${SAN[@]}" -Wno-missing-field-initializers -o $OUT/fuzz_frame \
            test/fuzz/fuzz_frame.c proto/frame.c proto/pbarena.c daemon/membership.c daemon/gossip_codec.c \
            $GEN/ipc.pb-c.c $GEN/peer.pb-c.c "${LIBS[@]}"
        # Seeds: well-formed streams (built without libFuzzer's main).
        $CC "${CFLAGS[@]}" -o $OUT/gen_seeds test/fuzz/gen_seeds.c proto/frame.c \
            $GEN/ipc.pb-c.c $GEN/peer.pb-c.c "${LIBS[@]}" ;;
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
          grep -oE '"[a-z_]+"' daemon/config.c | sort -u; } >"$OUT/config.dict"
        opts+=(-dict="$OUT/config.dict" -max_len=4096) ;;
    fuzz_frame) opts+=(-max_len=8192) ;;
    esac
    echo "== $t: fuzzing for ${SECS}s"
    "$OUT/$t" "${opts[@]}" "$OUT/corpus/$t"
done
