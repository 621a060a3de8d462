"""Two replicas of the service on the embedded model behind vllm-router, on loopback.

- Affinity: 12 multi-request trajectories (three-turn conversations through the SDK, which sends one
  X-Session-ID per conversation) each land on one replica under ``--policy consistent_hash``, and
  their continuation turns come from that replica's prefix cache; under ``round_robin`` (the
  baseline, same run, other conversations) they are split and the cached share drops.
- Failover: trajectories run in parallel and one replica is SIGKILLed while it generates for some
  of them: what was in flight there fails with a clean 5xx, the SDK's retry completes it on the
  other replica, new work goes there too, and nothing hangs.

The logic lives in ``bench/router.py`` (``python -m bench.router`` gives the figures in the README);
this is its CI-sized run: 8-token answers, requests one at a time for the attribution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import router as bench
from bench._util import Server

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

TRAJECTORIES = 12  # both replicas get some under consistent hashing, but for a 1-in-2,048 chance
TURNS = 3


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("router")


@pytest.fixture(scope="module")
def replicas(log_dir: Path) -> Iterator[list[Server]]:
    servers = bench.start_replicas(log_dir, 2)
    yield servers
    for server in servers:
        server.stop()


def test_sessions_stick_to_one_replica_and_hit_its_prefix_cache(
    replicas: list[Server], log_dir: Path
) -> None:
    workers = [r.url for r in replicas]
    results = {}
    for offset, policy in enumerate(("consistent_hash", "round_robin")):
        with bench.start_router(policy, workers, log_dir) as router:
            firsts = bench.openings(TRAJECTORIES, offset * TRAJECTORIES)
            turns = bench.run_sequential(router.url, replicas, firsts, TURNS, max_tokens=8)
        results[policy] = bench.summarise(turns)
    affinity, round_robin = results["consistent_hash"], results["round_robin"]
    print("router affinity vs round robin:", affinity, round_robin)

    assert affinity["requests"] == round_robin["requests"] == TRAJECTORIES * TURNS
    # every trajectory on one replica, and the trajectories spread over both
    assert affinity["on_one_replica"] == TRAJECTORIES
    assert min(affinity["requests_per_replica"]) >= TURNS
    # round robin alternates replicas request by request: no trajectory stays on one
    assert round_robin["on_one_replica"] == 0
    # continuation turns: most of their prompt comes from the prefix cache with affinity, far less without
    assert affinity["continuation_cached_share"] > 0.6
    assert affinity["continuation_cached_share"] > round_robin["continuation_cached_share"] + 0.2


def test_a_replica_killed_mid_run_loses_no_trajectory(replicas: list[Server], log_dir: Path) -> None:
    workers = [r.url for r in replicas]
    firsts = bench.openings(8, 2 * TRAJECTORIES)
    # The router's own retries are off here, so the interrupted requests reach the SDK as errors
    # and the SDK's retry is what completes them.
    with bench.start_router("consistent_hash", workers, log_dir, retries=False) as router:
        result = asyncio.run(bench.failover(router.url, replicas, firsts, max_tokens=48, deadline=180))
    print("failover:", result)
    assert result["hung"] == 0 and not result["errors"], result
    assert result["completed"] == len(firsts)
    assert result["victim_in_flight_when_killed"] >= 1
    # what was in flight on the dead replica came back as a clean 5xx, and was retried
    assert result["responses_5xx_after_kill"] >= 1
    assert set(result["statuses_5xx"]) <= {500, 502, 503, 504}
    # new work, retries included, went to the survivor (the dead replica serves nothing)
    assert result["survivor_served_after_kill"] >= 1 and result["responses_200_after_kill"] >= 1
    assert replicas[result["victim"] - 1].process.poll() is not None
