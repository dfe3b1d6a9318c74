#!/usr/bin/env bash
# Server: install the built package, configure a VIP with two backends on
# the lab interface, start the root and the load balancer units.
set -euo pipefail
self=$1 vip=$2 backend1=$3 backend2=$4
dev=$(ip -o -4 addr show | awk -v a="$self" '$4 ~ "^"a"/" {print $2; exit}')

deb=$(ls /vagrant/build/deb/xdplb_*.deb 2>/dev/null | head -1 || true)
if [[ -z "$deb" ]]; then
  echo "no package in build/deb/: run 'bash scripts/build-deb.sh' on the host first" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "$deb"

# The VIP answers ARP here; forwarding lets the FIB lookup find the next hop,
# accept_local lets a rewritten first packet reach the kernel while the
# backend's neighbour entry is still being resolved.
ip addr replace "$vip/32" dev "$dev"
cat > /etc/sysctl.d/60-xdplb.conf <<SYSCTL
net.ipv4.conf.all.forwarding = 1
net.ipv4.conf.$dev.forwarding = 1
net.ipv4.conf.$dev.accept_local = 1
SYSCTL
sysctl -q --system

cat > /etc/xdplb/xdplb.json <<JSON
{
  "interfaces": ["$dev"],
  "mode": "auto",
  "lb": {
    "enabled": true,
    "nat": { "source_ipv4": "$self" },
    "vips": [
      { "address": "$vip", "port": 8000, "protocol": "tcp",
        "backends": [ { "address": "$backend1" }, { "address": "$backend2" } ] }
    ]
  }
}
JSON
systemctl enable --now xdplb-root.service xdplb-lb.service
xdp-root --status --interface "$dev"
