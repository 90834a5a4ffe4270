#!/usr/bin/env bash
# What a packager and an application developer do: `make install` into a
# DESTDIR, check the systemd unit with systemd-analyze, build the example
# against the installed library through pkg-config, and run it against a
# real daemon. Prints PASS/FAIL lines and "N passed, N failed".
set -u
build=${1:-${PARTISAN_BIN_DIR:-build/san}}
san=0
[[ $build == *san* ]] && san=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/partisan-install-XXXXXX")
daemon_pid=
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }

root=$tmp/root
if make -s install BUILD="$build" SAN=$san DESTDIR="$root" PREFIX=/usr/local >"$tmp/install.log" 2>&1; then
    missing=
    for f in usr/local/sbin/partisand usr/local/bin/partisanctl usr/local/lib/libpartisan-client.so \
             usr/local/lib/libpartisan-client.a usr/local/include/partisan.h \
             usr/local/lib/pkgconfig/partisan-client.pc etc/partisan/partisand.json \
             lib/systemd/system/partisand.service usr/lib/sysusers.d/partisan.conf; do
        [ -e "$root/$f" ] || missing="$missing $f"
    done
    [ -z "$missing" ] && ok install_layout || bad install_layout "missing:$missing"
else
    bad install_layout "make install failed: $(tail -5 "$tmp/install.log")"
fi

# The installed default config must be valid as shipped.
if "$root/usr/local/sbin/partisand" --check-config "$root/etc/partisan/partisand.json" >/dev/null 2>&1; then
    ok installed_config_valid
else
    bad installed_config_valid "$("$root/usr/local/sbin/partisand" --check-config "$root/etc/partisan/partisand.json" 2>&1)"
fi

if command -v systemd-analyze >/dev/null; then
    unit=$tmp/partisand.service
    sed "s|/usr/local/sbin/partisand|$root/usr/local/sbin/partisand|g" "$root/lib/systemd/system/partisand.service" >"$unit"
    if out=$(systemd-analyze verify "$unit" 2>&1) && [ -z "$(grep -v 'partisan' <<<"$out" | grep -i -E 'error|unknown|invalid')" ]; then
        ok unit_verifies
    else
        bad unit_verifies "$out"
    fi
else
    echo "SKIP unit_verifies: systemd-analyze not installed"
fi

cp -r client/examples "$tmp/examples"
ldflags=
[ $san = 1 ] && ldflags="-fsanitize=address,undefined"
if PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$root/usr/local/lib/pkgconfig \
    make -s -C "$tmp/examples" LDFLAGS="$ldflags" >"$tmp/example.log" 2>&1; then
    ok example_builds_with_pkg_config
else
    bad example_builds_with_pkg_config "$(tail -5 "$tmp/example.log")"
fi

sock=$tmp/p.sock
cat >"$tmp/p.json" <<JSON
{"node": {"name": "installed", "listen": "127.0.0.1:0"}, "ipc": {"socket": "$sock"}, "log": {"level": "warn"}}
JSON
"$root/usr/local/sbin/partisand" --config "$tmp/p.json" 2>"$tmp/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
if [ -x "$tmp/examples/hello" ] &&
   out=$(LD_LIBRARY_PATH=$root/usr/local/lib timeout 20 "$tmp/examples/hello" "$sock" 2>&1) &&
   grep -q "hello, partisan" <<<"$out"; then
    ok example_runs_against_daemon
else
    bad example_runs_against_daemon "${out:-no output} $(tail -3 "$tmp/daemon.log")"
fi
if out=$(PARTISAN_SOCKET=$sock timeout 20 "$root/usr/local/bin/partisanctl" status 2>&1) && grep -q "node: installed" <<<"$out"; then
    ok installed_cli_uses_env_socket
else
    bad installed_cli_uses_env_socket "$out"
fi
kill "$daemon_pid" && wait "$daemon_pid"
rc=$?
daemon_pid=
[ $rc = 0 ] && [ ! -e "$sock" ] && ok daemon_stops_cleanly || bad daemon_stops_cleanly "exit $rc, socket left: $([ -e "$sock" ] && echo yes || echo no)"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
