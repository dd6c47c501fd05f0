#!/usr/bin/env bash
# Three nodes sharing one redis-server against one node (--memory), same
# run, taking turns: publishers on node 1, subscribers spread over the
# three, all in one room. Prints each run (deliveries/s, latency, the CPU
# per delivery of each process) and the nodes' CPU per delivery together
# against the single node's.
#
#   bash bins/bench/cluster.sh
#   ROUNDS=3 SECS=10 LOADS="1000:2:50 300:1:100" bash bins/bench/cluster.sh
#
# Redis runs with AOF and appendfsync everysec here (a benchmark of the
# fan-out, not of the disk); README, "Several nodes", says what each mode
# keeps.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-2}
SECS=${SECS:-8}
LOADS=${LOADS:-"1000:2:50 300:2:100"}
cargo build --release -q -p chat-bins --bin chat-bench --bin chat-server
bin=target/release
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
base=$((22000 + RANDOM % 1000))

redis-server --bind 127.0.0.1 --port "$base" --dir "$out" --appendonly yes \
  --appendfsync everysec --save "" --daemonize no >"$out/redis.log" 2>&1 &
redis=$!
pids+=("$redis")
for _ in $(seq 100); do redis-cli -p "$base" ping >/dev/null 2>&1 && break; sleep 0.05; done

# start NAME PORT ARGS...: a chat-server; sets $pid.
start() {
  # Rate limits off: the publishers post faster than a person types.
  "$bin/chat-server" --addr "127.0.0.1:$2" --messages-per-second 0 "${@:3}" >"$out/$1.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do grep -q 'listening on' "$out/$1.log" && return; sleep 0.05; done
  echo "$1 did not start" >&2; cat "$out/$1.log" >&2; exit 1
}
declare -A node
for n in 1 2 3; do
  start "n$n" $((base + n)) --redis "redis://127.0.0.1:$base" --max-conns-per-peer 0
  node[$n]=$pid
done
start single $((base + 10)) --memory --max-conns-per-peer 0
single=$pid

for round in $(seq "$ROUNDS"); do
  for load in $LOADS; do
    IFS=: read -r subs pubs rate <<<"$load"
    common=(fanout --subscribers "$subs" --publishers "$pubs" --rate "$rate" --seconds "$SECS" --warmup 2)
    s=$("$bin/chat-bench" "${common[@]}" --addr "127.0.0.1:$((base + 10))" --server-pid "$single" --label "single node")
    echo "$s"
    c=$("$bin/chat-bench" "${common[@]}" --addr "127.0.0.1:$((base + 1))" \
      --sub-addrs "127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))" \
      --server-pid "${node[1]}" --pids "node2=${node[2]},node3=${node[3]},redis=$redis" --label "three nodes")
    echo "$c"
    one=$(grep -o 'server cpu/delivery [0-9.]*' <<<"$s" | awk '{print $3}')
    n1=$(grep -o 'server cpu/delivery [0-9.]*' <<<"$c" | awk '{print $3}')
    rest=$(grep -E 'of node[23]:' <<<"$c" | awk '{s += $(NF-1)} END {print s}')
    awk -v one="$one" -v n1="$n1" -v rest="$rest" 'BEGIN {
      printf "  round: nodes together %.2f us per delivery against the single node'"'"'s %.2f: %.2fx\n", n1 + rest, one, (n1 + rest) / one }'
  done
done

# IDLE=N: then N idle clients in one room, spread over the three nodes by
# three load generators (one per node: each process here may hold 20,000
# descriptors, so one node or one generator alone cannot hold 50,000).
if [ "${IDLE:-0}" -gt 0 ]; then
  each=$((IDLE / 3))
  for n in 1 2 3; do
    "$bin/chat-bench" idle --addr "127.0.0.1:$((base + n))" --clients "$each" \
      --server-pid "${node[$n]}" --hold 20 --label "node $n" >"$out/idle$n.log" 2>&1 &
    gens[$n]=$!
  done
  for n in 1 2 3; do wait "${gens[$n]}" || { cat "$out/idle$n.log"; exit 1; }; cat "$out/idle$n.log"; done
fi
