#!/usr/bin/env bash
# Our chat-server against the baselines over a sweep of loads, same run,
# taking turns (the order rotates each round): the tonic baseline always,
# and the grpc-go one (bins/bench/grpc-go-baseline, Debian's Go and grpc-go,
# installed with apt when missing) unless GO=0. S subscribers and P
# publishers in one room, each client on its own connection, 64-byte
# messages, publishers on a fixed schedule (or closed loop: each waits for
# its own echo). Then memory per idle client, and how many clients ours
# holds. Prints every run, then medians and the ratios ours / tonic (and
# ours / grpc-go), with how long the server's threads waited for a CPU (ms
# per second, summed over threads) and the load generator's own CPU: on a
# small machine they share, that wait is much of the tail.
#
#   bash bins/bench/compare.sh
#   ROUNDS=3 SECONDS_PER_RUN=8 LOADS="10:1:50 1000:2:400" IDLE=0 SCALE=0 GO=0 OURS_FLAGS=
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
GO=${GO:-1}
cargo build --release -q -p chat-bins -p tonic-baseline
servers=(ours tonic)
if [ "$GO" != 0 ]; then
  if gobin=$(bash bins/bench/grpc-go-baseline/build.sh); then
    servers+=(grpc-go)
  else
    echo "compare.sh: the grpc-go baseline did not build; going on without it (GO=0 skips it)" >&2
  fi
fi
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
    grpc-go*) "$gobin" --addr "127.0.0.1:$2" >"$out/$1.log" 2>&1 & ;;
  esac
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do grep -q 'listening on' "$out/$1.log" && return; sleep 0.05; done
  echo "$1 did not start" >&2; cat "$out/$1.log" >&2; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# (ours: --memory, as the baselines keep nothing on disk either)
declare -A port_of pid_of
port=21061
for who in "${servers[@]}"; do
  start "$who" "$port"
  port_of[$who]=$port
  pid_of[$who]=$pid
  port=$((port + 1))
done
for load in $LOADS; do
  IFS=: read -r subs pubs rate <<<"$load"
  if [ "$rate" = closed ]; then shape=(--closed-loop); else shape=(--rate "$rate"); fi
  for round in $(seq "$ROUNDS"); do
    # Rotate the order each round, so no server always runs first.
    n=${#servers[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${servers[$(((i + round - 1) % n))]}"); done
    for who in "${order[@]}"; do
      "$bench" fanout --addr "127.0.0.1:${port_of[$who]}" --subscribers "$subs" --publishers "$pubs" \
        "${shape[@]}" --seconds "$SECS" --server-pid "${pid_of[$who]}" --label "$who" | tee -a "$out/fanout-$load"
    done
  done
done
for who in "${servers[@]}"; do stop "${pid_of[$who]}"; done

if [ "$IDLE" -gt 0 ]; then
  port=21066
  for who in "${servers[@]}"; do
    start "$who-idle" "$port"
    "$bench" idle --addr "127.0.0.1:$port" --clients "$IDLE" --server-pid "$pid" --label "$who" | tee -a "$out/idle"
    stop "$pid"
    port=$((port + 1))
  done
fi
if [ "$SCALE" -gt 0 ]; then
  start ours-scale 21065; "$bench" idle --addr 127.0.0.1:21065 --clients "$SCALE" --server-pid "$pid" --label ours-scale | tee -a "$out/scale"; stop "$pid"
fi

echo
echo "== medians over $ROUNDS rounds (ours / tonic, then grpc-go where it ran)"
python3 - "$out" "$LOADS" <<'PY'
import re, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
pat = re.compile(r"fanout ([\w-]+): .*?: (\d+) deliveries/s; latency ms p50 ([\d.]+) p99 ([\d.]+) p99.9 ([\d.]+); lost (\d+) of \d+; server cpu/delivery ([\d.]+) us(?:\n  machine: server threads waited for a CPU (\d+) ms/s; this load generator used (\d+)%)?")
print(f"{'load (subs:pubs:rate)':24} {'deliveries/s':>12}  {'p50 ms':>15}  {'p99 ms':>15}  {'p99.9 ms':>15}  {'cpu us/delivery':>17}  {'lost':>9}  {'cpu wait ms/s':>13}  {'bench cpu %':>11}")
for load in sys.argv[2].split():
    f = out / f"fanout-{load}"
    runs = {}
    for m in pat.finditer(f.read_text()):
        runs.setdefault(m[1], []).append([float(x) if x else float("nan") for x in m.groups()[1:]])
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in runs.items()}
    o = med["ours"]
    for base in ("tonic", "grpc-go"):
        if base not in med:
            continue
        t = med[base]
        label = load if base == "tonic" else f"  against {base}"
        cells = [f"{o[i]:6.2f}/{t[i]:6.2f}" for i in (1, 2, 3)]
        print(f"{label:24} {o[0]:7.0f}/{t[0]:<7.0f} {cells[0]:>15}  {cells[1]:>15}  {cells[2]:>15}  {o[5]:7.2f}/{t[5]:7.2f}  {int(o[4])}/{int(t[4])}  {o[6]:6.0f}/{t[6]:<6.0f}  {o[7]:5.0f}/{t[7]:<5.0f}")
        print(f"{'  ratio ours/' + base:24} {'':12}  {o[1]/t[1]:15.2f}  {o[2]/t[2]:15.2f}  {o[3]/t[3]:15.2f}  {o[5]/t[5]:17.2f}")
idle = out / "idle"
if idle.exists():
    kib = {m[1]: float(m[2]) for m in re.finditer(r"idle ([\w-]+): .*?, ([\d.]+) KiB per client", idle.read_text())}
    others = "  ".join(f"{k} {v:.1f} (ratio {kib['ours']/v:.2f})" for k, v in kib.items() if k != "ours")
    print(f"idle KiB/client:   ours {kib['ours']:.1f}  {others}")
scale = out / "scale"
if scale.exists():
    print(scale.read_text().strip())
PY
