#!/usr/bin/env bash
# Our chat-server against the tonic baseline, same load, same run, taking
# turns: fan-out (1,000 subscribers, 2 publishers, 64-byte messages) at 200
# and 400 msgs/s per publisher, then memory per idle client on fresh
# servers, then how many clients ours holds. Prints each run and the ratios.
#
#   bash bins/bench/compare.sh   # ROUNDS=2 SECONDS_PER_RUN=10 IDLE=2000 SCALE=19900 OURS_FLAGS=
#
# OURS_FLAGS adds chat-server flags (e.g. --flush-us 10000). Ports are below
# the ephemeral range, so the load generator's own connections cannot take
# them.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-2}
SECS=${SECONDS_PER_RUN:-10}
IDLE=${IDLE:-2000}
SCALE=${SCALE:-19900}
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
    ours) target/release/chat-server --addr "127.0.0.1:$2" --memory --max-conns-per-peer 0 $OURS_FLAGS >"$out/$1.log" 2>&1 & ;;
    tonic) target/release/tonic-chat-server --addr "127.0.0.1:$2" >"$out/$1.log" 2>&1 & ;;
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
for rate in 200 400; do
  for round in $(seq "$ROUNDS"); do
    "$bench" fanout --addr 127.0.0.1:21061 --rate "$rate" --seconds "$SECS" --server-pid "$ours" --label ours | tee -a "$out/fanout-$rate"
    "$bench" fanout --addr 127.0.0.1:21062 --rate "$rate" --seconds "$SECS" --server-pid "$tonic" --label tonic | tee -a "$out/fanout-$rate"
  done
done
stop "$ours"; stop "$tonic"

start ours 21063; "$bench" idle --addr 127.0.0.1:21063 --clients "$IDLE" --server-pid "$pid" --label ours | tee -a "$out/idle"; stop "$pid"
start tonic 21064; "$bench" idle --addr 127.0.0.1:21064 --clients "$IDLE" --server-pid "$pid" --label tonic | tee -a "$out/idle"; stop "$pid"
start ours 21065; "$bench" idle --addr 127.0.0.1:21065 --clients "$SCALE" --server-pid "$pid" --label ours-scale | tee -a "$out/scale"; stop "$pid"

echo
echo "== medians over $ROUNDS rounds (ours / tonic)"
python3 - "$out" <<'PY'
import re, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
pat = re.compile(r"fanout (\w+): .*?: (\d+) deliveries/s; latency ms p50 ([\d.]+) p99 ([\d.]+) p99.9 ([\d.]+); lost (\d+) of \d+; server cpu/delivery ([\d.]+) us")
for f in sorted(out.glob("fanout-*")):
    rate = f.name.split("-")[1]
    runs = {}
    for m in pat.finditer(f.read_text()):
        runs.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in runs.items()}
    o, t = med["ours"], med["tonic"]
    print(f"{rate}/s per publisher (~{int(o[0]/1000)}k deliveries/s):")
    for i, name in [(1, "p50 ms"), (2, "p99 ms"), (3, "p99.9 ms"), (5, "cpu us/delivery")]:
        print(f"  {name:16} ours {o[i]:8.2f}  tonic {t[i]:8.2f}  ratio {o[i]/t[i]:5.2f}")
    print(f"  {'lost':16} ours {int(o[4]):8d}  tonic {int(t[4]):8d}")
idle = {m[1]: float(m[2]) for m in re.finditer(r"idle (\w+): .*?, ([\d.]+) KiB per client", (out / "idle").read_text())}
print(f"idle KiB/client:   ours {idle['ours']:.1f}  tonic {idle['tonic']:.1f}  ratio {idle['ours']/idle['tonic']:.2f}")
print((out / "scale").read_text().strip())
PY
