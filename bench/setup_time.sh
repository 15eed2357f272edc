#!/usr/bin/env bash
# Time from a fresh clone to a ready service: README command 1 (scripts/serve.sh) with no pip cache and an empty
# data dir, until /readyz answers 200. Writes bench/results/setup_time.txt.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
port=${PORT:-8099}
git clone -q "$repo" "$work/memsvc"
cd "$work/memsvc"
start=$(date +%s)
PIP_NO_CACHE_DIR=1 MEMSVC_DATA_DIR="$work/data" bash scripts/serve.sh --port "$port" > "$work/serve.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
  kill -0 "$pid" 2> /dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 1
done
ready=$(( $(date +%s) - start ))
kill "$pid"; wait "$pid" || true
{
  echo "command: bash bench/setup_time.sh"
  echo "date: $(date -u +%FT%TZ)  machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB"
  echo "fresh clone -> scripts/serve.sh (no pip cache) -> /readyz 200: ${ready} s"
} | tee "$repo/bench/results/setup_time.txt"
rm -rf "$work"
