#!/usr/bin/env bash
# Usage: test/run.sh [BUILD_DIR [NAME...]]
# Runs every expected test (unit, simulation, integration), two at a time,
# each bounded by a timeout; prints each one's output and a closing
# "N passed, N failed" line summed over all of them.
#
# The expected tests are explicit, never whatever happens to be on disk: the
# NAMEs given (the Makefile's `test` target passes TEST_NAMES), else the list
# the Makefile wrote to BUILD_DIR/test/tests.list. A NAME is a binary in
# BUILD_DIR/test, or a script (NAME.sh) in test/integration. An expected test
# that is missing counts as failed, and so does a missing list.
set -u
build=${1:-build/san}
shift $(( $# > 0 ? 1 : 0 ))
export PARTISAN_BIN_DIR=$build
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60}
jobs=${TEST_JOBS:-2}
logs=$(mktemp -d "${TMPDIR:-/tmp}/partisan-run-XXXXXX")
trap 'rm -rf "$logs"' EXIT

names=("$@")
list=$build/test/tests.list
if [ ${#names[@]} -eq 0 ]; then
    if [ ! -r "$list" ]; then
        echo "*** no test list: $list is missing (run make BUILD=$build tests-build, or name the tests)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    mapfile -t names < <(grep -v '^[[:space:]]*$' "$list")
    if [ ${#names[@]} -eq 0 ]; then
        echo "*** no test list: $list names no tests"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

tests=() missing=()
for n in "${names[@]}"; do
    case $n in
    *.sh) t=test/integration/$n ;;
    *)    t=$build/test/$n ;;
    esac
    if [ -f "$t" ] && [ -x "$t" ]; then
        tests+=("$t")
    else
        missing+=("$n")
    fi
done
start=$(date +%s)

run_one() {
    local t=$1 name
    name=$(basename "$t")
    timeout -k 10 420 "$t" >"$logs/$name.out" 2>&1
    echo $? >"$logs/$name.rc"
}
export -f run_one
export logs
[ ${#tests[@]} -gt 0 ] && printf '%s\n' "${tests[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {}

passed=0 failed=0
for t in ${tests[@]+"${tests[@]}"}; do
    name=$(basename "$t")
    rc=$(cat "$logs/$name.rc" 2>/dev/null || echo 99)
    echo "=== $name (exit $rc)"
    cat "$logs/$name.out"
    p=0 f=0
    if line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$logs/$name.out" | tail -n 1); [ -n "$line" ]; then
        checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
        fails=$(sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/' <<<"$line")
        f=$((fails)); p=$((checks - f))
    elif line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/$name.out" | tail -n 1); [ -n "$line" ]; then
        p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
        f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
    fi
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "*** $name exited $rc (timeout, crash or sanitizer report)"
        f=1
    elif [ -z "$line" ] && [ "$f" = 0 ]; then
        echo "*** $name printed no result line (\"N passed, N failed\" or Check's summary)"
        f=1
    fi
    passed=$((passed + p)); failed=$((failed + f))
done
for n in ${missing[@]+"${missing[@]}"}; do
    echo "*** $n: test binary missing"
    failed=$((failed + 1))
done
echo "=== all tests: $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
