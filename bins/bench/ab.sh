#!/usr/bin/env bash
# Two builds of chat-server against each other, same run, taking turns (the
# order alternates each round): fan-out in one room (--memory, as
# compare.sh) at a few loads, then durable messages per second (SQLite, a
# fresh data directory per run). The load generator is this tree's
# chat-bench for both. Prints every run, then medians and the ratios B / A.
#
#   bash bins/bench/ab.sh A_BINARY B_BINARY
#   ROUNDS=3 SECONDS_PER_RUN=6 LOADS="10:1:50 1000:2:400" DURABLE="1:1 8:32" bash bins/bench/ab.sh ...
#
# To compare with an older commit: `git worktree add /tmp/old COMMIT`, then
# `cargo build --release -p chat-bins --bin chat-server` there, and pass
# /tmp/old/target/release/chat-server as A and target/release/chat-server
# as B.
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$(realpath "$1")
B=$(realpath "$2")
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-6}
LOADS=${LOADS:-"10:1:50 1000:2:200 1000:2:400 100:4:closed"}
DURABLE=${DURABLE:-"1:1 8:32"}
cargo build --release -q -p chat-bins --bin chat-bench
bench=target/release/chat-bench
out=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$out"' EXIT

# start LABEL ARGS...: starts build LABEL (a or b) with ARGS, sets $pid
# and $port.
start() {
  local bin=$A
  [ "$1" = b ] && bin=$B
  port=$((21070 + RANDOM % 100))
  # Rate limits off where the build has them (the publishers post faster
  # than a person types).
  local limits=()
  "$bin" --help | grep -q messages-per-second && limits=(--messages-per-second 0)
  "$bin" --addr "127.0.0.1:$port" "${limits[@]}" "${@:2}" >"$out/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do grep -q 'listening on' "$out/$1.log" && return; sleep 0.05; done
  echo "$1 did not start" >&2; cat "$out/$1.log" >&2; exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

for round in $(seq "$ROUNDS"); do
  order=(a b)
  if [ $((round % 2)) -eq 0 ]; then order=(b a); fi
  for who in "${order[@]}"; do
    start "$who" --memory --max-conns-per-peer 0
    for load in $LOADS; do
      IFS=: read -r subs pubs rate <<<"$load"
      if [ "$rate" = closed ]; then shape=(--closed-loop); else shape=(--rate "$rate"); fi
      "$bench" fanout --addr "127.0.0.1:$port" --subscribers "$subs" --publishers "$pubs" \
        "${shape[@]}" --seconds "$SECS" --server-pid "$pid" --label "$who" | tee -a "$out/fanout-$load"
    done
    stop
    for cfg in $DURABLE; do
      IFS=: read -r pubs inflight <<<"$cfg"
      data=$(mktemp -d)
      start "$who" --data-dir "$data"
      "$bench" durable --addr "127.0.0.1:$port" --publishers "$pubs" --in-flight "$inflight" \
        --seconds "$SECS" | sed "s/^/$who /" | tee -a "$out/durable-$cfg"
      stop
      rm -rf "$data"
    done
  done
done

echo
echo "== medians over $ROUNDS rounds (A / B), ratio B / A"
python3 - "$out" "$LOADS" "$DURABLE" <<'PY'
import re, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
pat = re.compile(r"fanout (\w+): .*?: (\d+) deliveries/s; latency ms p50 ([\d.]+) p99 ([\d.]+) p99.9 ([\d.]+); lost (\d+) of \d+; server cpu/delivery ([\d.]+) us")
print(f"{'fan-out (subs:pubs:rate)':24} {'deliveries/s':>16}  {'p50 ms':>13}  {'p99 ms':>13}  {'cpu us/delivery':>15}  {'p99 B/A':>7}  {'cpu B/A':>7}")
for load in sys.argv[2].split():
    runs = {}
    for m in pat.finditer((out / f"fanout-{load}").read_text()):
        runs.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in runs.items()}
    a, b = med["a"], med["b"]
    print(f"{load:24} {a[0]:7.0f}/{b[0]:<8.0f} {a[1]:6.2f}/{b[1]:<6.2f} {a[2]:6.2f}/{b[2]:<6.2f} {a[5]:7.2f}/{b[5]:<7.2f} {b[2]/a[2]:7.2f}  {b[5]/a[5]:7.2f}")
dpat = re.compile(r"^(\w) durable: .*?: ([\d.]+) msgs/s; send-to-echo ms p50 ([\d.]+) p99 ([\d.]+)", re.M)
print(f"{'durable (pubs:in flight)':24} {'msgs/s':>16}  {'p50 ms':>13}  {'p99 ms':>13}  {'msgs/s B/A':>10}")
for cfg in sys.argv[3].split():
    runs = {}
    for m in dpat.finditer((out / f"durable-{cfg}").read_text()):
        runs.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in runs.items()}
    a, b = med["a"], med["b"]
    print(f"{cfg:24} {a[0]:7.0f}/{b[0]:<8.0f} {a[1]:6.2f}/{b[1]:<6.2f} {a[2]:6.2f}/{b[2]:<6.2f} {b[0]/a[0]:10.2f}")
PY
