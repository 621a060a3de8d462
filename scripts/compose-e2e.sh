#!/usr/bin/env bash
# The compose deployment, built offline and started for real, on loopback:
#   bash scripts/compose-e2e.sh
# 1. starts dockerd if no Docker engine answers (and stops it, by its pid, at the end);
# 2. builds the images air-gapped (scripts/build-offline.sh: Debian base, wheelhouse, --network none);
# 3. `up` of deploy/docker-compose.yml --profile cpu with deploy/compose.e2e.yml: two service replicas
#    behind vllm-router, the retriever, the SearXNG stand-in, the one-shot model preparation, all on
#    the host's network listening on 127.0.0.1 (ports E2E_*_PORT below);
# 4. scripts/compose_e2e_checks.py: health through the router, real mode on `local` and `searxng`, a
#    stream, a client-mode trajectory under one X-Session-ID, a replica killed and restarted by compose;
# 5. `down -v` (containers, network, volumes), whatever happened: nothing is left running.
# Needs root, Debian's docker.io, docker-compose (or the compose plugin) and mmdebstrap, and Python 3.11.
# Figures (build times, image sizes, time to healthy) go to stderr and $E2E_LOG_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export E2E_ROUTER_PORT=${E2E_ROUTER_PORT:-18000}
export E2E_REPLICA1_PORT=${E2E_REPLICA1_PORT:-18101}
export E2E_REPLICA2_PORT=${E2E_REPLICA2_PORT:-18102}
export E2E_RETRIEVER_PORT=${E2E_RETRIEVER_PORT:-18001}
export E2E_SEARXNG_PORT=${E2E_SEARXNG_PORT:-18080}
PROJECT=${E2E_PROJECT:-ssrl-e2e}
LOG_DIR=${E2E_LOG_DIR:-$root/.cache/compose-e2e}
PYTHON=${PYTHON:-python3}
mkdir -p "$LOG_DIR"

say() { printf '%s compose-e2e: %s\n' "$(date +%T)" "$*" >&2; }

# -- the Docker engine -------------------------------------------------------------------------------
dockerd_pid=""
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { say "no dockerd: apt-get install docker.io docker-compose mmdebstrap"; exit 1; }
  say "starting dockerd (log: $LOG_DIR/dockerd.log)"
  dockerd >"$LOG_DIR/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { say "dockerd did not come up"; kill "$dockerd_pid"; exit 1; }
fi

if docker compose version >/dev/null 2>&1; then compose_bin=(docker compose); else compose_bin=(docker-compose); fi
env_file="$LOG_DIR/e2e.env"
api_key="e2e-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$env_file" <<EOF
SSRL_API_KEYS=$api_key
SEARXNG_SECRET=e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SSRL_MODEL=
SSRL_SEARCH_MODE=real
SSRL_SEARCH__BACKEND=searxng
EOF
compose=("${compose_bin[@]}" --env-file "$env_file" -p "$PROJECT"
  -f deploy/docker-compose.yml -f deploy/compose.e2e.yml --profile cpu)

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    say "failed (exit $rc); container logs in $LOG_DIR"
  fi
  "${compose[@]}" ps >"$LOG_DIR/ps.txt" 2>&1
  for service in prepare-cpu ssrl-cpu ssrl-cpu-2 router-e2e retriever searxng; do
    "${compose[@]}" logs --no-color "$service" >"$LOG_DIR/$service.log" 2>&1
  done
  say "down -v"
  "${compose[@]}" down -v --remove-orphans >"$LOG_DIR/down.log" 2>&1
  left=$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$left" ] || { say "still running: $left"; docker rm -f $left >/dev/null; }
  if [ -n "$dockerd_pid" ]; then
    say "stopping dockerd (pid $dockerd_pid)"
    kill "$dockerd_pid" && wait "$dockerd_pid" 2>/dev/null
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- images, offline ----------------------------------------------------------------------------------
build_start=$SECONDS
bash scripts/build-offline.sh 2>&1 | tee "$LOG_DIR/build.log" >&2
say "images built in $((SECONDS - build_start)) s"

# -- up, checks ----------------------------------------------------------------------------------------
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true # a previous run's leftovers
up_epoch=$(date +%s.%N)
say "up (project $PROJECT, router on 127.0.0.1:$E2E_ROUTER_PORT)"
# Named services: router-e2e instead of router (deploy/compose.e2e.yml says why).
"${compose[@]}" up -d --no-build searxng retriever prepare-cpu ssrl-cpu ssrl-cpu-2 router-e2e 2>&1 \
  | tee "$LOG_DIR/up.log" >&2
"$PYTHON" scripts/compose_e2e_checks.py \
  --router "http://127.0.0.1:$E2E_ROUTER_PORT" \
  --replica "http://127.0.0.1:$E2E_REPLICA1_PORT" --replica-service ssrl-cpu \
  --replica "http://127.0.0.1:$E2E_REPLICA2_PORT" --replica-service ssrl-cpu-2 \
  --api-key "$api_key" --compose "${compose[*]}" --started-at "$up_epoch" \
  | tee "$LOG_DIR/figures.json"
"${compose[@]}" logs --no-color prepare-cpu 2>&1 | grep -q "to safetensors" \
  && say "prepare-cpu converted the embedded model into the cache volume (once)"
say "ok"
