"""bench/seconds_memory.py plays a short run in both modes and writes the files it measures."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.seconds_memory import _play


def test_both_modes_play_and_write_every_second() -> None:
    for mode in ("local", "master"):
        out = _play(mode, seconds=30, rate=20, workers=2, sample_from=10)
        assert out["timeseries_rows"] >= 30 and out["hlog_bytes"] > 0
        assert out["spooled"] == (mode == "local")  # the master's spools are its inboxes
        assert set(out["traced_bytes"]) == {"10", "30"}
