"""The figures bench/soak.py reports: RSS growth after warm-up, and the allocation sites that grew
between two tracemalloc snapshots of a process."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

from bench.soak import growth, top_growth


def test_growth_is_measured_from_the_first_sample_after_warm_up() -> None:
    rows = [{"t_s": t, "server_mib": m} for t, m in [(0, 500.0), (30, 900.0), (60, 1000.0), (90, 1010.0)]]
    assert growth(rows, "server_mib", since=60) == (1000.0, 1010.0, 1.0)
    assert all(math.isnan(v) for v in growth(rows, "server_mib", since=90))  # one sample: no figure


def test_top_growth_names_the_line_that_kept_memory(tmp_path: Path) -> None:
    kept: list[bytes] = []
    tracemalloc.start(1)
    try:
        tracemalloc.take_snapshot().dump(str(tmp_path / "snapshot-001.bin"))
        for _ in range(200):
            kept.append(bytes(10_000))  # the leak: about 2 MB held
        tracemalloc.take_snapshot().dump(str(tmp_path / "snapshot-last.bin"))
    finally:
        tracemalloc.stop()
    lines = top_growth(tmp_path)
    assert lines[0].startswith("traced Python memory change snapshot-001.bin -> snapshot-last.bin: +")
    assert "test_soak_figures.py:" in lines[1] and len(kept) == 200
    assert top_growth(tmp_path / "nothing") == []
