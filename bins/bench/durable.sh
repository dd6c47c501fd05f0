#!/usr/bin/env bash
# Durable messages per second with group commit, on this machine: starts a
# release chat-server on a fresh data directory, drives it with chat-bench
# durable at growing concurrency, then the same with --memory (no disk) for
# comparison. Prints one line per run, and the server's group-commit stats.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p chat-bins --bin chat-server --bin chat-bench
data=$(mktemp -d)
log=$(mktemp)
trap 'kill $pid 2>/dev/null || true; rm -rf "$data" "$log"' EXIT

run_server() {
  # Rate limits off: the publishers post as fast as the server takes.
  target/release/chat-server --addr 127.0.0.1:0 --messages-per-second 0 "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    addr=$(grep -o 'listening on [0-9.:]*' "$log" | cut -d' ' -f3) && [ -n "$addr" ] && return
    sleep 0.05
  done
  echo "server did not start" >&2; cat "$log" >&2; exit 1
}

echo "== durable (SQLite, WAL, synchronous=FULL: one fsync per commit)"
run_server --data-dir "$data"
for cfg in "1 1" "8 1" "8 32" "32 32"; do
  set -- $cfg
  target/release/chat-bench durable --addr "$addr" --publishers "$1" --in-flight "$2" --seconds 5
done
sleep 11 # let the writer log its statistics
grep -o 'store: .*' "$log" || true
kill $pid; wait $pid 2>/dev/null || true

echo "== memory (--memory: no disk)"
run_server --memory
for cfg in "1 1" "8 32"; do
  set -- $cfg
  target/release/chat-bench durable --addr "$addr" --publishers "$1" --in-flight "$2" --seconds 5
done
