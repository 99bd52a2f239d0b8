#!/usr/bin/env bash
# Times the Usage & Billing page and the usage API on a Hub holding a million usage rows.
#
#   scripts/bench-usage.sh [ROWS] [RUNS]     (defaults: 1000000 rows, 21 runs per URL)
#
# Builds the release binary and the seeding example, writes ROWS synthetic usage rows (with
# their ledger charges and daily rollups) into a temporary data dir through the store, starts
# the Hub on it, and reports the median time of each URL, also as a ratio to the Settings
# page measured in the same run, so figures compare across machines.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS="${1:-1000000}"
RUNS="${2:-21}"
PASS="benchmark passphrase only"

cargo build --release --quiet --bin workshop-hub --example seed_usage
DIR="$(mktemp -d)"
HUB_PID=""
cleanup() {
  if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

target/release/examples/seed_usage "$DIR/data" "$ROWS"

env -u WORKSHOP_HUB_PASSPHRASE_FILE WORKSHOP_HUB_PASSPHRASE="$PASS" \
  target/release/workshop-hub serve --listen 127.0.0.1:0 --data-dir "$DIR/data" \
  >"$DIR/out" 2>"$DIR/log" &
HUB_PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$DIR/out" 2>/dev/null && break
  sleep 0.1
done
BASE="$(sed -n 's/^listening on //p' "$DIR/out" | head -n1)"
[ -n "$BASE" ] || { echo "the Hub did not start:"; cat "$DIR/log"; exit 1; }

COOKIE="$(curl -s -D - -o /dev/null -H 'content-type: application/json' \
  -d "{\"passphrase\":\"$PASS\"}" "$BASE/api/v1/session" \
  | sed -n 's/^[Ss]et-[Cc]ookie: whub_session=\([^;]*\).*/\1/p' | head -n1)"
[ -n "$COOKIE" ] || { echo "sign-in failed"; exit 1; }

# Median of RUNS timings of one URL, in milliseconds; the first (warm-up) call is not counted.
median_ms() {
  local url="$1" status
  status="$(curl -s -o /dev/null -w '%{http_code}' -b "whub_session=$COOKIE" "$BASE$url")"
  [ "$status" = 200 ] || { echo "GET $url answered $status" >&2; exit 1; }
  for _ in $(seq "$RUNS"); do
    curl -s -o /dev/null -w '%{time_total}\n' -b "whub_session=$COOKIE" "$BASE$url"
  done | sort -n | awk '{ t[NR] = $1 } END { printf "%.2f", t[int((NR + 1) / 2)] * 1000 }'
}

BASELINE="$(median_ms /settings)"
printf '%s usage rows, median of %s runs\n' "$ROWS" "$RUNS"
printf '%-72s %10s %8s\n' "URL" "median ms" "× /settings"
printf '%-72s %10s %8s\n' "/settings (baseline)" "$BASELINE" "1.0"
WEEK_AGO="$(date -u -d '-7 days' +%F)"
HOUR_AGO="$(date -u -d '-1 hour' +%FT%H:%M:%SZ)"
TOMORROW="$(date -u -d '+1 day' +%F)"
for url in /usage "/usage?before=500000" /api/v1/usage "/api/v1/usage?group_by=model" \
  "/api/v1/usage?group_by=app&from=$(date -u -d '-89 days' +%F)" "/api/v1/usage/requests?limit=100" /api/v1/credits /models \
  /requests "/requests?app=app-3" "/requests?app=app-3&from=$WEEK_AGO&to=$TOMORROW" \
  "/requests?provider=anthropic&model=claude-sonnet-4-5&from=$WEEK_AGO" "/requests?status=error" \
  "/requests?app=app-3&status=rate_limit_exceeded" "/requests?from=$HOUR_AGO" "/requests?surface=compatible" \
  "/api/v1/usage/requests?app=app-3&from=$WEEK_AGO&limit=100" "/api/v1/usage/requests?status=error&provider=gemini" \
  "/usage?app=app-3" "/usage?app=app-3&from=$WEEK_AGO&to=$TOMORROW" "/usage?status=error" \
  "/api/v1/usage?app=app-3&group_by=model"; do
  ms="$(median_ms "$url")"
  printf '%-72s %10s %8s\n' "$url" "$ms" "$(awk -v a="$ms" -v b="$BASELINE" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')"
done
start=$(date +%s.%N)
curl -s -o "$DIR/usage.csv" -b "whub_session=$COOKIE" "$BASE/api/v1/usage.csv"
end=$(date +%s.%N)
printf 'CSV export: %s lines in %s s\n' "$(wc -l <"$DIR/usage.csv")" \
  "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')"
