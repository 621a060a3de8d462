# The front door: vllm-router, the vLLM project's Rust router (PyPI, Apache-2.0; the binary ships in
# the wheel). docker build -f deploy/router.Dockerfile -t ssrl-router:0.1.17 deploy
FROM python:3.11-slim-bookworm
ARG VLLM_ROUTER_VERSION=0.1.17
RUN pip install --no-cache-dir "vllm-router==${VLLM_ROUTER_VERSION}"
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["vllm-router"]
