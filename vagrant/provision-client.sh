#!/usr/bin/env bash
# Client: curl and wrk, and two backends running an unmodified
# `python3 -m http.server` in network namespaces with their own addresses on
# the lab network (macvlan on the lab interface).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq curl wrk python3 iproute2

dev=$(ip -o -4 addr show | awk '$4 ~ /^192\.168\.56\./ {print $2; exit}')
i=0
for addr in "$@"; do
  i=$((i + 1))
  ns="backend$i"
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip link add "mv$i" link "$dev" type macvlan mode bridge
  ip link set "mv$i" netns "$ns"
  ip -n "$ns" addr add "$addr/24" dev "mv$i"
  ip -n "$ns" link set "mv$i" up
  ip -n "$ns" link set lo up
  mkdir -p "/srv/$ns"
  echo "hello from $ns ($addr)" > "/srv/$ns/index.html"
  systemctl stop "xdplb-$ns.service" 2>/dev/null || true
  systemd-run --unit="xdplb-$ns" --property=Restart=always \
    ip netns exec "$ns" python3 -m http.server 8000 --directory "/srv/$ns"
done
echo "backends up: $*"
