#!/usr/bin/env bash
# Our chat-server against the tonic baseline over a sweep of loads, same
# run, taking turns (the order alternates each round): S subscribers and P
# publishers in one room, each client on its own connection, 64-byte
# messages, publishers on a fixed schedule (or closed loop: each waits for
# its own echo). Then memory per idle client, and how many clients ours
# holds. Prints every run, then medians and the ratios ours / tonic, with
# how long the server's threads waited for a CPU (ms per second, summed over
# threads) and the load generator's own CPU: on a small machine they share,
# that wait is much of the tail.
#
#   bash bins/bench/compare.sh
#   ROUNDS=3 SECONDS_PER_RUN=8 LOADS="10:1:50 1000:2:400" IDLE=0 SCALE=0 OURS_FLAGS=
#
# LOADS is a list of SUBSCRIBERS:PUBLISHERS:RATE (RATE "closed" for a
# closed loop). OURS_FLAGS adds chat-server flags. IDLE / SCALE set the
# idle-memory and scale runs (0 skips them). Ports are below the ephemeral
# range, so the load generator's own connections cannot take them.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-8}
LOADS=${LOADS:-"10:1:50 100:4:500 1000:2:200 1000:2:400 100:4:closed"}
IDLE=${IDLE:-2000}
SCALE=${SCALE:-0}
OURS_FLAGS=${OURS_FLAGS:-}
cargo build --release -q -p chat-bins -p tonic-baseline
bench=target/release/chat-bench
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT

# start NAME PORT: starts a fresh server, sets $pid.
start() {
  case $1 in
    # shellcheck disable=SC2086
    ours*) target/release/chat-server --addr "127.0.0.1:$2" --memory --max-conns-per-peer 0 --messages-per-second 0 $OURS_FLAGS >"$out/$1.log" 2>&1 & ;;
    tonic*) target/release/tonic-chat-server --addr "127.0.0.1:$2" >"$out/$1.log" 2>&1 & ;;
  esac
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do grep -q 'listening on' "$out/$1.log" && return; sleep 0.05; done
  echo "$1 did not start" >&2; cat "$out/$1.log" >&2; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# (ours: --memory, as the baseline keeps nothing on disk either)
start ours 21061; ours=$pid
start tonic 21062; tonic=$pid
for load in $LOADS; do
  IFS=: read -r subs pubs rate <<<"$load"
  if [ "$rate" = closed ]; then shape=(--closed-loop); else shape=(--rate "$rate"); fi
  for round in $(seq "$ROUNDS"); do
    order=(ours tonic)
    if [ $((round % 2)) -eq 0 ]; then order=(tonic ours); fi
    for who in "${order[@]}"; do
      if [ "$who" = ours ]; then port=21061 p=$ours; else port=21062 p=$tonic; fi
      "$bench" fanout --addr "127.0.0.1:$port" --subscribers "$subs" --publishers "$pubs" \
        "${shape[@]}" --seconds "$SECS" --server-pid "$p" --label "$who" | tee -a "$out/fanout-$load"
    done
  done
done
stop "$ours"; stop "$tonic"

if [ "$IDLE" -gt 0 ]; then
  start ours-idle 21063; "$bench" idle --addr 127.0.0.1:21063 --clients "$IDLE" --server-pid "$pid" --label ours | tee -a "$out/idle"; stop "$pid"
  start tonic-idle 21064; "$bench" idle --addr 127.0.0.1:21064 --clients "$IDLE" --server-pid "$pid" --label tonic | tee -a "$out/idle"; stop "$pid"
fi
if [ "$SCALE" -gt 0 ]; then
  start ours-scale 21065; "$bench" idle --addr 127.0.0.1:21065 --clients "$SCALE" --server-pid "$pid" --label ours-scale | tee -a "$out/scale"; stop "$pid"
fi

echo
echo "== medians over $ROUNDS rounds (ours / tonic)"
python3 - "$out" "$LOADS" <<'PY'
import re, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
pat = re.compile(r"fanout (\w+): .*?: (\d+) deliveries/s; latency ms p50 ([\d.]+) p99 ([\d.]+) p99.9 ([\d.]+); lost (\d+) of \d+; server cpu/delivery ([\d.]+) us(?:\n  machine: server threads waited for a CPU (\d+) ms/s; this load generator used (\d+)%)?")
print(f"{'load (subs:pubs:rate)':24} {'deliveries/s':>12}  {'p50 ms':>15}  {'p99 ms':>15}  {'p99.9 ms':>15}  {'cpu us/delivery':>17}  {'lost':>9}  {'cpu wait ms/s':>13}  {'bench cpu %':>11}")
for load in sys.argv[2].split():
    f = out / f"fanout-{load}"
    runs = {}
    for m in pat.finditer(f.read_text()):
        runs.setdefault(m[1], []).append([float(x) if x else float("nan") for x in m.groups()[1:]])
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in runs.items()}
    o, t = med["ours"], med["tonic"]
    cells = [f"{o[i]:6.2f}/{t[i]:6.2f}" for i in (1, 2, 3)]
    print(f"{load:24} {o[0]:7.0f}/{t[0]:<7.0f} {cells[0]:>15}  {cells[1]:>15}  {cells[2]:>15}  {o[5]:7.2f}/{t[5]:7.2f}  {int(o[4])}/{int(t[4])}  {o[6]:6.0f}/{t[6]:<6.0f}  {o[7]:5.0f}/{t[7]:<5.0f}")
    print(f"{'  ratio ours/tonic':24} {'':12}  {o[1]/t[1]:15.2f}  {o[2]/t[2]:15.2f}  {o[3]/t[3]:15.2f}  {o[5]/t[5]:17.2f}")
idle = out / "idle"
if idle.exists():
    kib = {m[1]: float(m[2]) for m in re.finditer(r"idle (\w+): .*?, ([\d.]+) KiB per client", idle.read_text())}
    print(f"idle KiB/client:   ours {kib['ours']:.1f}  tonic {kib['tonic']:.1f}  ratio {kib['ours']/kib['tonic']:.2f}")
scale = out / "scale"
if scale.exists():
    print(scale.read_text().strip())
PY
