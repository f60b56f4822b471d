#!/usr/bin/env bash
# The feed server's Redis mode for a local try (docs/STREAM.md §8): a
# throwaway redis-server on 127.0.0.1:$REDIS_PORT (no persistence), one writer
# and two gateway instances on 127.0.0.1:$PORT_A and :$PORT_B. A page (or
# `make demo`'s dashboard built in www/dist) can use either instance; stop one
# and a page on it resumes on the other. Ctrl-C stops everything it started.
#
#   scripts/feed-redis-demo.sh            # METERS, SPEED, PORT_A, PORT_B, REDIS_PORT, WWW, FEED_BIN
#
# Needs redis-server (scripts/install-deps.sh) and builds meterflow-feed with
# the `redis` feature (release).
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${REDIS_PORT:-6390}
PORT_A=${PORT_A:-8091}
PORT_B=${PORT_B:-8092}
METERS=${METERS:-5000}
SPEED=${SPEED:-1}
WWW=${WWW:-www/dist}

command -v redis-server >/dev/null || { echo "redis-server missing: scripts/install-deps.sh" >&2; exit 1; }
# FEED_BIN: an already built meterflow-feed (with the `redis` feature) instead.
bin=${FEED_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --features redis --bin meterflow-feed
  bin=target/release/meterflow-feed
fi
url="redis://127.0.0.1:$REDIS_PORT"

pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

"$bin" --redis "$url" --role writer --meters "$METERS" --speed "$SPEED" &
pids+=($!)
"$bin" --redis "$url" --instance a --port "$PORT_A" --www "$WWW" &
pids+=($!)
"$bin" --redis "$url" --instance b --port "$PORT_B" --www "$WWW" &
pids+=($!)
echo "feed-redis-demo: instances at http://127.0.0.1:$PORT_A and http://127.0.0.1:$PORT_B (Ctrl-C stops)"
wait -n "${pids[@]}"
