#!/usr/bin/env bash
# Install memsvc into .venv and start it on the embedded default: a real Postgres with pgvector in the data dir,
# no external services. Extra arguments go to `memsvc serve` (e.g. --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e .
exec .venv/bin/memsvc serve "$@"
