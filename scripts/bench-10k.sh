#!/usr/bin/env bash
# 10,000 WebSocket clients on one hub (issue #9's load scenario), twice: as
# is, and with one client that subscribes to every symbol and never reads.
# Prints deliveries/s, latency percentiles (ts_received -> client), the hub's
# RSS per idle connection, subscription churn and what the gateway did with
# the stalled client. Extra flags go to both runs (e.g. --duration 20).
#
#   scripts/bench-10k.sh
#   scripts/bench-10k.sh --clients 5000 --rate 2000
set -euo pipefail
cd "$(dirname "$0")/.."

# Both processes hold one descriptor per connection, plus their own.
hard=$(ulimit -Hn)
want=65536
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want"
[ "$(ulimit -n)" -ge 10300 ] || { echo "need 10300+ file descriptors; ulimit -Hn is $hard" >&2; exit 1; }

cargo build --release -q -p mdhub
run() {
  target/release/mdhub bench fanout --clients 10000 --per-client 1 --symbols 100 \
    --rate 1000 --warmup 3 --duration 20 --churn 200 "$@"
}
echo "== 10,000 clients, 1 symbol each, 200 subscription changes/s"
run "$@"
echo "== the same, plus one stalled client subscribed to every symbol"
run --stalled 1 "$@"
