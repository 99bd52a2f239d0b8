#!/usr/bin/env bash
# Throughput of the standalone emulator: release build, one actix worker pinned to core 0,
# wrk on core 1 posting a small chat completion. Prints wrk's report; fails on any non-2xx.
#   DURATION=10s CONNECTIONS=64 scripts/bench-emulator.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 1; }
cargo build --release --quiet

work="$(mktemp -d)"
emulator_pid=""
cleanup() {
    [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

WORKSHOP_HUB_WORKERS=1 taskset -c 0 target/release/workshop-hub emulator \
    --listen 127.0.0.1:0 --latency-ms 0 --tokens-per-second 0 >"$work/stdout" 2>"$work/stderr" &
emulator_pid=$!

url=""
for _ in $(seq 100); do
    url="$(sed -n 's/^listening on //p' "$work/stdout")"
    [ -n "$url" ] && break
    sleep 0.05
done
[ -n "$url" ] || { echo "the emulator did not start:" >&2; cat "$work/stderr" >&2; exit 1; }

# One request first, so a broken body fails loudly instead of benchmarking errors.
status="$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/chat/completions" \
    -H 'Authorization: Bearer sk-proj-testBenchAAAAAAAAAAAAAAAAAAAAT3BlbkFJBBBBBBBBBBBBBBBBBBBBBBBB' \
    -H 'Content-Type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello! Say something short."}],"max_completion_tokens":32}')"
[ "$status" = "200" ] || { echo "warm-up request answered $status" >&2; exit 1; }

taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s scripts/bench-emulator-chat.lua "$url/v1/chat/completions" | tee "$work/wrk.txt"

if grep -q "Non-2xx" "$work/wrk.txt"; then
    echo "some requests failed" >&2
    exit 1
fi
echo "requests/s: $(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")"
