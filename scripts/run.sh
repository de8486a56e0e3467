#!/usr/bin/env bash
# The run command: builds the daemon and its plugins (release) and starts it. Arguments go to
# the daemon, e.g. scripts/run.sh --port 9000 or scripts/run.sh check.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --exclude switchyard-e2e
exec target/release/switchyard "$@"
