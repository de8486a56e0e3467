#!/usr/bin/env bash
# The test command: builds the daemon and every plugin, prepares the Python client used by
# the SDK tests, and runs the whole suite (unit, ABI, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --locked

# The official openai Python SDK is one of the test clients; it lives in a venv under target/.
venv=target/py-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, pytest' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
export SWITCHYARD_TEST_PYTHON="$PWD/$venv/bin/python"

if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
