#!/usr/bin/env bash
# Live ingestion over MQTT (BENCHMARKS.md, "The response side"): how many messages a second
# `rcf fleet serve` ingests and commits from a local Mosquitto, QoS 1, acknowledged after
# each commit.
#
#   bash benches/serve_throughput.sh [MESSAGES] [THINGS]
#
# Needs mosquitto, mosquitto_pub (Debian: mosquitto, mosquitto-clients) and sqlite3. N
# telemetry messages (one datapoint each, THINGS things at five-minute datapoints) are
# published at once; the time runs from the first publish until the store holds all N.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000}
THINGS=${2:-100}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$DIR"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 1000000\n' "$PORT" > "$DIR/m.conf"
mosquitto -c "$DIR/m.conf" >/dev/null 2>&1 &
cargo build --release -q -p rcf-stream --bin rcf
cat > "$DIR/p.json" <<'EOF'
{"securityProfiles": [{"securityProfileName": "p", "behaviors": [
  {"name": "msgs", "metric": "aws:num-messages-sent",
   "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1000}, "durationSeconds": 300}}]}]}
EOF
python3 - "$N" "$THINGS" > "$DIR/msgs.jsonl" <<'EOF'
import sys
n, things = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    print('{"thing":"dev-%04d","metric":"aws:num-messages-sent","value":%d,"timestamp":%d}'
          % (i % things, 50 + i % 17, 1767225600 + (i // things) * 300 + 1))
EOF
sleep 0.3
target/release/rcf fleet serve --mqtt "127.0.0.1:$PORT" --profile "$DIR/p.json" --store "$DIR/s.db" \
    --max-future 0 --grace 0 2> "$DIR/serve.log" > /dev/null &
until grep -qs "rcf: subscribed" "$DIR/serve.log"; do sleep 0.05; done
start=$(date +%s.%N)
mosquitto_pub -p "$PORT" -q 1 -t rcf/telemetry/bench -l < "$DIR/msgs.jsonl" &
until [ "$(sqlite3 "$DIR/s.db" 'SELECT coalesce(sum(len), 0) FROM metric_chunks' 2>/dev/null || echo 0)" -ge "$N" ]; do sleep 0.05; done
end=$(date +%s.%N)
python3 -c "print(f'serve: {$N} messages ({$THINGS} things) in {$end - $start:.2f} s: {$N / ($end - $start):.0f} messages/s, committed')"
