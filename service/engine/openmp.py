"""Intel's OpenMP runtime for the CPU engine. vLLM's CPU build asks for ``libiomp5`` in
``LD_PRELOAD`` (it warns that speculative decoding without it "will cause significant performance
loss") and otherwise preloads PyTorch's GNU ``libgomp`` into the engine process it spawns. The
``intel-openmp`` package that vLLM's CPU build installs puts ``libiomp5.so`` in the environment's
``lib/``; this module puts it in ``LD_PRELOAD`` before vLLM spawns its engine process, the way vLLM
itself hands ``libgomp`` and ``tcmalloc`` to that process (the environment it is spawned with).
Measured in bench/README.md ("The full run"): no gain on 2 cores, so it is opt-in."""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

#: ``engine.intel_openmp``: auto = on where vLLM asks for it (a speculating CPU engine on x86-64);
#: off (vLLM's libgomp) is the default: measured level with auto on 2 cores (bench/README.md).
IntelOpenMP = Literal["auto", "on", "off"]
LIBRARY = "libiomp5.so"


def intel_openmp_library(prefix: Path | None = None) -> Path | None:
    """``libiomp5.so`` in the environment's ``lib/`` (where the intel-openmp wheel puts it), or None."""
    path = (prefix if prefix is not None else Path(sys.prefix)) / "lib" / LIBRARY
    return path if path.is_file() else None


def wanted(setting: IntelOpenMP, *, speculating: bool, on_gpu: bool, machine: str | None = None) -> bool:
    """Whether the engine process should run on Intel's OpenMP: never for a GPU engine, always for
    ``on``, and for ``auto`` where vLLM warns without it: a speculating engine on x86-64."""
    if on_gpu or setting == "off":
        return False
    if setting == "on":
        return True
    arch = (machine if machine is not None else platform.machine()).lower()
    return speculating and arch in {"x86_64", "amd64"}


def preload_intel_openmp(
    setting: IntelOpenMP,
    *,
    speculating: bool,
    on_gpu: bool,
    environ: MutableMapping[str, str] | None = None,
    library: Path | None = None,
    machine: str | None = None,
) -> Path | None:
    """Put ``libiomp5.so`` first in ``LD_PRELOAD`` (of ``environ``, ``os.environ`` by default: the
    environment the engine process is spawned with) where :func:`wanted` says so; returns the
    library preloaded, None where not. ``auto`` without the library logs and goes on without it;
    ``on`` without it is an error."""
    if not wanted(setting, speculating=speculating, on_gpu=on_gpu, machine=machine):
        return None
    env = environ if environ is not None else os.environ
    found = library if library is not None else intel_openmp_library()
    if found is None:
        if setting == "on":
            where = Path(sys.prefix) / "lib"
            raise ValueError(f"engine.intel_openmp=on: no {LIBRARY} in {where} (pip install intel-openmp)")
        logger.info("Intel OpenMP: no %s in this environment; the engine uses vLLM's default OpenMP", LIBRARY)
        return None
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    if not any(Path(p).name.startswith("libiomp") for p in preload):
        env["LD_PRELOAD"] = ":".join([str(found), *preload])
    logger.info("Intel OpenMP: %s preloaded into the engine process (engine.intel_openmp=%s)", found, setting)
    return found
