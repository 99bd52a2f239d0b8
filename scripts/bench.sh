#!/usr/bin/env bash
# The gateway benchmark in one command: installs nginx and wrk through apt when they are
# missing, builds the release binary, and measures direct, nginx and the Hub side by side
# (see benches/gateway/main.rs). Figures and ratios go to stdout and target/bench/gateway.{md,json}.
#   scripts/bench.sh             full run (a few minutes)
#   scripts/bench.sh --smoke     tiny settings: proves the bench starts and prints its table
#   scripts/bench.sh --litellm   adds LiteLLM's proxy (installed into a venv on first use)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${missing[*]} (apt)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

case " $* " in
  # The smoke run proves the bench works, not how fast the Hub is: the debug build the
  # tests already made is enough.
  *" --smoke "*) exec cargo test --locked --bench gateway -- "$@" ;;
  *) exec cargo bench --locked --bench gateway -- "$@" ;;
esac
