#!/usr/bin/env bash
# Runs every check and test of Workshop Hub: formatting, clippy, the Rust unit, in-process
# and black-box tests, the official Python SDKs against the emulator and the Hub, and the
# browser tests in headless Chromium, and the dependency policy (deny.toml). Installs what
# those tiers need when it is missing: a Python venv in .venv with tests/requirements.txt,
# Debian's chromium + chromedriver, axe-core from npm for the accessibility checks, and
# cargo-deny from crates.io (a one-time build of several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo deny: licences, bans, sources (deny.toml)"
command -v cargo-deny >/dev/null || cargo install --locked --quiet cargo-deny
# Every crate in Cargo.lock, for every platform, so cargo-deny can read them without a network.
cargo fetch --locked --quiet
deny_checks=(licenses bans sources)
# Advisories need a database; with no network one is used only when it is already here.
if compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-db*" >/dev/null; then
  deny_checks+=(advisories)
  cargo deny --offline check "${deny_checks[@]}"
else
  echo "(no advisory database on this machine: advisories not checked)"
  cargo deny --offline check "${deny_checks[@]}"
fi

step "Rust tests"
cargo test --locked --no-fail-fast

step "Python venv (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
# Always run: a no-op when every pin is installed, and it picks up new pins in an old venv.
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt

step "Chromium for browser tests"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

step "axe-core for the browser accessibility checks (npm, pinned by tests/browser/package-lock.json)"
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

step "Python tests: official SDKs and headless browser"
cargo build --locked --quiet
export WORKSHOP_HUB_BIN="$PWD/target/debug/workshop-hub"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/python tests/browser

step "JS tests: official Node SDKs and the Vercel AI SDK (installed from tests/js/package-lock.json)"
(cd tests/js && npm ci --no-audit --no-fund --silent && node --test --test-concurrency=1)

step "Benchmark smoke test: the gateway bench starts its upstreams and the Hub and prints its table (tiny settings; figures from this run mean nothing)"
bash scripts/bench.sh --smoke
test -s target/bench/gateway.json
