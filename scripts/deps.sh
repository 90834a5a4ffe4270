#!/usr/bin/env bash
# Installs the Debian packages that building and testing partisand need.
# Idempotent and quick when everything is present; never prompts; uses sudo
# only when not already root. With --fuzz, also what test/fuzz/run.sh needs.
set -euo pipefail

packages=(
    gcc make pkg-config
    libevent-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev check
    libsystemd-dev
    libssl-dev openssl  # TLS peer links; the CLI makes the tests' certificates
    iproute2        # ss -K: channel_test resets peer connections
)
if [ "${1:-}" = "--fuzz" ]; then
    packages+=(clang libclang-rt-14-dev)   # libFuzzer and the sanitizers' runtime
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq </dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
