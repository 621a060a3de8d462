# The front door: vllm-router, the vLLM project's Rust router (PyPI, Apache-2.0; the binary ships in
# the wheel). Built from the repository root (the wheelhouse and the lock live there):
#   docker build -f deploy/router.Dockerfile -t ssrl-router:0.1.17 .
# Air-gapped: --build-arg OFFLINE=1 --build-arg BASE_IMAGE=ssrl-base:bookworm --network none, with the
# wheelhouse of deploy/requirements-router.lock (scripts/build-offline.sh).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG VLLM_ROUTER_VERSION=0.1.17
ARG OFFLINE=0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
COPY wheelhouse/ /wheelhouse/
COPY deploy/requirements-router.lock /tmp/
RUN if [ "${OFFLINE}" = 1 ]; then \
        pip install --no-index --find-links /wheelhouse --no-deps --require-hashes -r /tmp/requirements-router.lock; \
    else \
        pip install "vllm-router==${VLLM_ROUTER_VERSION}"; \
    fi \
    && vllm-router --help >/dev/null

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
USER 10001
EXPOSE 8000
# /readiness (a replica can serve), not /health (503 while any one replica is down or loading).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readiness', timeout=2)"]
ENTRYPOINT ["vllm-router"]
