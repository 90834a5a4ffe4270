#!/usr/bin/env bash
# make bench: prints figures, never passes or fails on them.
set -eu
build=${1:-build}
export PARTISAN_BIN_DIR=$build
ulimit -n 4096 2>/dev/null || true
"$build/bench/echo_bench" "${BENCH_ARGS:-}"
echo
"$build/bench/channel_bench" "${BENCH_ARGS:-}"
echo
"$build/bench/idle_bench"
echo
"$build/bench/reliable_bench" "${BENCH_ARGS:-}"
