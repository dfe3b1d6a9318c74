#!/usr/bin/env bash
# Installs what building, testing and the demo need: Debian packages (only the
# missing ones, so a second run is quick) and the locked npm modules.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(clang llvm libbpf-dev libbpf1 libsystemd0 bpftool iproute2 iputils-ping util-linux make python3
  tshark tcpdump debhelper lintian debootstrap systemd-container ethtool curl ruby prometheus bird2 hping3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -d node_modules/.bin || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "deps: npm ci"
  npm ci --no-fund --no-audit --loglevel=error
fi
