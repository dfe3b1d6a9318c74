#!/usr/bin/env bash
# The demo: a two-namespace lab, the root array on the server's interface,
# real pings through it while slots are filled and emptied, status tables.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="$$"
client="xdplb-demo-c$tag"
server="xdplb-demo-s$tag"
cif="demoC$tag"
sif="demoS$tag"
fixtures="$PWD/build/bpf/xdp_fixtures.o"

in_server() { nsenter --net="/run/netns/$server" "$@"; }
in_client() { nsenter --net="/run/netns/$client" "$@"; }
xdp_root() { echo "+ xdp-root $*"; in_server ./bin/xdp-root "$@"; }
xdp_filter() { echo "+ xdp-filter $*"; in_server ./bin/xdp-filter "$@"; }

xdp_sampler() { echo "+ xdp-sampler $*"; in_server ./bin/xdp-sampler "$@"; }
say() { printf '\n== %s\n' "$*"; }
pings() { in_client ping -n -q -c "$1" -i 0.2 -W 1 10.202.0.2 | grep -E 'transmitted' || true; }
pings_from() { in_client ping -n -q -c "$2" -i 0.2 -W 1 -I "$1" 10.202.0.2 | grep -E 'transmitted' || true; }

capdir="$(mktemp -d)"
pids=()
# A namespace's pin directory (named by its cookie) outlives the namespace
# (bpffs is the host's): removed with the namespace.
pindir() {
  local cookie
  cookie=$(nsenter --net="/run/netns/$1" python3 -c 'import socket,struct; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); print(struct.unpack("<Q", s.getsockopt(socket.SOL_SOCKET, 71, 8))[0])' 2>/dev/null) || return 0
  rm -rf "/sys/fs/bpf/xdplb/netns-$cookie"
}
delns() { [[ -e "/run/netns/$1" ]] || return 0; pindir "$1"; ip netns del "$1" 2>/dev/null || true; }
cleanup() {
  rm -rf "$capdir"
  in_server ./bin/xdp-root --detach --interface "$sif" >/dev/null 2>&1 || true
  delns "$client"
  delns "$server"
  if [[ -e "/run/netns/xdplb-lb-lb$tag" ]]; then
    nsenter --net="/run/netns/xdplb-lb-lb$tag" ./bin/xdp-lb --detach --interface "dllb$tag" >/dev/null 2>&1 || true
    nsenter --net="/run/netns/xdplb-lb-lb$tag" ./bin/xdp-root --detach --interface "dllb$tag" >/dev/null 2>&1 || true
  fi
  for b in b1 b2; do
    [[ -e "/run/netns/xdplb-lb-$b$tag" ]] && nsenter --net="/run/netns/xdplb-lb-$b$tag" ./bin/xdp-root --detach --interface "dl$b$tag" >/dev/null 2>&1 || true
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -e "/run/netns/xdplb-lb-lb$tag" ]]; then
    nsenter --net="/run/netns/xdplb-lb-lb$tag" ./bin/xdp-lb --purge >/dev/null 2>&1 || true
  fi
  for n in sw c lb b1 b2; do delns "xdplb-lb-$n$tag"; done
  [[ -n "${www:-}" ]] && rm -rf "$www"
}
trap cleanup EXIT

say "Lab: namespace $client ($cif, 10.202.0.1) <-veth-> namespace $server ($sif, 10.202.0.2)"
ip netns add "$client"
ip netns add "$server"
ip link add "$cif" netns "$client" type veth peer name "$sif" netns "$server"
ip -n "$client" addr add 10.202.0.1/24 dev "$cif"
ip -n "$server" addr add 10.202.0.2/24 dev "$sif"
for ns in "$client" "$server"; do ip -n "$ns" link set lo up; done
ip -n "$client" link set "$cif" up
ip -n "$server" link set "$sif" up

say "Attach the root array to $sif in native mode"
xdp_root --attach --interface "$sif" --mode native
in_server ip -d link show "$sif" | grep -E 'prog/xdp|xdp' | sed 's/^ */   ip: /'

say "Slot 1: a pass program; pings go through"
xdp_root --load --interface "$sif" --slot 1 --object "$fixtures" --program xdp_pass_test
pings 5

say "Slot 5: a drop program; pings (and ARP, IPv6 ND) are dropped after slot 1 passed them on"
xdp_root --load --interface "$sif" --slot 5 --object "$fixtures" --program xdp_drop_test
pings 5
xdp_root --status --interface "$sif"

say "Empty slot 5; pings go through again"
xdp_root --unload --interface "$sif" --slot 5
pings 5
xdp_root --status --interface "$sif"

say "Interface totals as JSON"
in_server ./bin/xdp-root --status --interface "$sif" --json | node -e '
  const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const [i, v] of Object.entries(s)) console.log(i, JSON.stringify(v.statistics));'

say "Slot 2: the filter, with the client's second address 10.202.0.3 on its drop list"
in_client ip addr add 10.202.0.3/24 dev "$cif"
xdp_filter --attach --interface "$sif" --frags-drop --ptb-max-pps 20
xdp_filter --drop --interface "$sif" --ips 10.202.0.3/32,2001:db8::/32 --tags demo-scanner
echo "   from 10.202.0.1 (not listed):"; pings_from 10.202.0.1 3
echo "   from 10.202.0.3 (listed):"; pings_from 10.202.0.3 3
xdp_filter --status --interface "$sif"

say "Sampler in slot 1 (instead of the pass program): every packet, and every verdict other than PASS, captured to pcapng for 3 s"
xdp_root --unload --interface "$sif" --slot 1
xdp_sampler --attach --interface "$sif" --rate 1 --verdict-rate 1 --snaplen 128
pcap="$capdir/demo.pcapng"
echo "+ xdp-sampler --capture --interface $sif --output $pcap --duration 3 &"
in_server ./bin/xdp-sampler --capture --interface "$sif" --output "$pcap" --duration 3 &
capture=$!
until [[ -s "$pcap" ]] || ! kill -0 "$capture" 2>/dev/null; do sleep 0.05; done
pings 2
xdp_root --load --interface "$sif" --slot 5 --object "$fixtures" --program xdp_drop_test
pings 1
xdp_root --unload --interface "$sif" --slot 5
wait "$capture"
echo "+ tcpdump -r $pcap -nn | head -8"
tcpdump -r "$pcap" -nn 2>/dev/null | head -8 | sed 's/^/   /'
echo "+ tshark -r $pcap -Y frame.comment -T fields -e frame.number -e frame.comment"
tshark -r "$pcap" -Y frame.comment -T fields -e frame.number -e frame.comment 2>/dev/null | sed 's/^/   /'
xdp_sampler --status --interface "$sif"
xdp_sampler --detach --interface "$sif"
say "Load balancer: the tutorial's lab, with two unmodified python3 -m http.server backends"
# client (10.0.0.1, .4, .5), balancer (10.0.0.10) and backends (10.0.0.2, .3)
# on one L2 segment: a bridge in its own namespace.
lbns=(sw c lb b1 b2)
for n in "${lbns[@]}"; do ip netns add "xdplb-lb-$n$tag"; done
lbn() { nsenter --net="/run/netns/xdplb-lb-$1$tag" "${@:2}"; }
lbn sw ip link add br0 type bridge
lbn sw ip link set br0 up
i=0
for host in "c 10.0.0.1 10.0.0.4 10.0.0.5" "lb 10.0.0.10" "b1 10.0.0.2" "b2 10.0.0.3"; do
  set -- $host
  dev="dl$1$tag"; port="dp$i$tag"; i=$((i + 1))
  ip link add "$dev" netns "xdplb-lb-$1$tag" type veth peer name "$port" netns "xdplb-lb-sw$tag"
  lbn sw ip link set "$port" master br0 up
  # Native XDP_TX on a veth needs XDP on its peer too.
  lbn sw ip link set dev "$port" xdpdrv object "$PWD/build/bpf/xdp_plain.o" program xdp_plain_pass
  for a in "${@:2}"; do lbn "$1" ip addr add "$a/24" dev "$dev"; done
  lbn "$1" ip link set "$dev" up
  # veth leaves TCP checksums to a NIC that does not exist; XDP rewrites them.
  lbn "$1" ethtool -K "$dev" tx off >/dev/null
done
lbn lb sysctl -q -w net.ipv4.conf.all.forwarding=1 net.ipv4.conf.all.accept_local=1 \
  "net.ipv4.conf.dllb$tag.accept_local=1" net.ipv4.conf.all.send_redirects=0 "net.ipv4.conf.dllb$tag.send_redirects=0"
www=$(mktemp -d)
for b in b1 b2; do
  mkdir -p "$www/$b" && echo "$b" > "$www/$b/who"
  # nsenter execs python, so $! is the server's own pid (a function run in
  # the background would be a subshell's, and killing it would leave python).
  nsenter --net="/run/netns/xdplb-lb-$b$tag" python3 -m http.server 8000 --directory "$www/$b" >/dev/null 2>"$www/$b.log" &
  pids+=($!)
done
cat > "$www/lb.json" <<'JSON'
{ "nat": { "source_ipv4": "10.0.0.10" },
  "vips": [ { "address": "10.0.0.10", "port": 8000, "protocol": "tcp",
              "backends": [ { "address": "10.0.0.2" }, { "address": "10.0.0.3" } ] } ] }
JSON
xdp_lb() { echo "+ xdp-lb $*"; lbn lb ./bin/xdp-lb "$@"; }
echo "+ xdp-root --attach --interface dllb$tag --mode native"; lbn lb ./bin/xdp-root --attach --interface "dllb$tag" --mode native
xdp_lb --attach --interface "dllb$tag"
xdp_lb --apply "$www/lb.json"
sleep 1
echo "+ 12 requests to http://10.0.0.10:8000/who from three client addresses:"
for n in 1 2 3 4; do for src in 10.0.0.1 10.0.0.4 10.0.0.5; do
  printf '   from %s: %s\n' "$src" "$(lbn c curl -s --max-time 3 --interface "$src" http://10.0.0.10:8000/who)"
done; done
echo "+ xdp-root --status --interface dllb$tag"; lbn lb ./bin/xdp-root --status --interface "dllb$tag"
xdp_lb --status --interface "dllb$tag"
xdp_lb --weight 0 --vip tcp:10.0.0.10:8000 --backend 10.0.0.3
echo "+ after draining 10.0.0.3, 6 requests:"
for n in 1 2 3 4 5 6; do printf '   %s\n' "$(lbn c curl -s --max-time 3 http://10.0.0.10:8000/who)"; done

say "Direct server return: the same backends behind an ipip VIP, 10.0.0.20, with xdp-decap on each"
# The balancer answers ARP for the VIP; each backend holds it on lo (so its
# kernel takes the client's packets as its own), leaves ARP for it to the
# balancer and filters reverse paths loosely; xdp-decap takes the outer
# header off the packets the balancer sends to its own address.
lbn lb ip addr add 10.0.0.20/32 dev "dllb$tag"
for b in b1 b2; do
  dev="dl$b$tag"
  lbn "$b" ip addr add 10.0.0.20/32 dev lo
  lbn "$b" sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    "net.ipv4.conf.$dev.rp_filter=2" net.ipv4.conf.all.rp_filter=2
  echo "+ [$b] xdp-root --attach --interface $dev --mode native"; lbn "$b" ./bin/xdp-root --attach --interface "$dev" --mode native
  echo "+ [$b] xdp-decap --attach --interface $dev"; lbn "$b" ./bin/xdp-decap --attach --interface "$dev"
  echo "+ [$b] xdp-decap --check --vip 10.0.0.20 --forwarding ipip"; lbn "$b" ./bin/xdp-decap --check --vip 10.0.0.20 --forwarding ipip | sed 's/^/   /'
done
cat > "$www/dsr.json" <<'JSON'
{ "nat": { "source_ipv4": "10.0.0.10" }, "encap_source_ipv4": "10.0.0.10",
  "vips": [ { "address": "10.0.0.10", "port": 8000, "protocol": "tcp",
              "backends": [ { "address": "10.0.0.2" }, { "address": "10.0.0.3" } ] },
            { "address": "10.0.0.20", "port": 8000, "protocol": "tcp", "forwarding": "ipip",
              "backends": [ { "address": "10.0.0.2" }, { "address": "10.0.0.3" } ] } ] }
JSON
xdp_lb --apply "$www/dsr.json"
declare -A logged
for b in b1 b2; do logged[$b]=$(wc -l < "$www/$b.log"); done
echo "+ 12 requests to http://10.0.0.20:8000/who from three client addresses (replies go straight to the client):"
for n in 1 2 3 4; do for src in 10.0.0.1 10.0.0.4 10.0.0.5; do
  printf '   from %s: %s\n' "$src" "$(lbn c curl -s --max-time 3 --interface "$src" http://10.0.0.20:8000/who)"
done; done
echo "+ the backends' access logs of them: each client's own address (through the NAT VIP they saw 10.0.0.10)"
new=0
for b in b1 b2; do
  tail -n "+$((logged[$b] + 1))" "$www/$b.log" | sed "s/^/   $b: /"
  new=$((new + $(tail -n "+$((logged[$b] + 1))" "$www/$b.log" | grep -c 'GET /who')))
done
[[ $new -eq 12 ]] || { echo "   the backends logged $new of the 12 requests!"; exit 1; }
xdp_lb --status --interface "dllb$tag"
for b in b1 b2; do echo "+ [$b] xdp-decap --status"; lbn "$b" ./bin/xdp-decap --status; done
for b in b1 b2; do
  echo "+ [$b] xdp-root --detach --interface dl$b$tag"; lbn "$b" ./bin/xdp-root --detach --interface "dl$b$tag"
done

xdp_lb --detach --interface "dllb$tag"
echo "   (the balancer's VIPs and connections stay pinned for its next attach; --purge removes them)"
xdp_lb --purge

say "Detach: nothing left on the device or in bpffs"
xdp_root --detach --interface "$sif"
in_server ip link show "$sif" | grep -q 'prog/xdp' && echo "   still attached!" && exit 1
[[ "$(in_server ./bin/xdp-root --status --json)" == "{}" ]] || { echo "   pins left!"; exit 1; }
echo "   $sif has no XDP program, and xdp-root --status lists nothing pinned."
