"""bench.common.ab_samples: rounds alternate between the roots, each child runs with its root first on the
path, and what a child prints after its figure reaches the caller (bench/plan_cost.py's plan digests)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.common import ab_samples

CHILD = """import os, sys
root = os.environ["PYTHONPATH"]
print(float(sys.argv[2]) * (2 if root.endswith("b") else 1), os.path.basename(root), "tail")
"""


def test_ab_samples_alternates_roots_and_passes_the_tails_on(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    roots = {"this": tmp_path / "a", "baseline": tmp_path / "b"}
    for root in roots.values():
        root.mkdir()
    tails: dict[str, list[str]] = {}
    samples = ab_samples(str(script), roots, 2, 3, 10, tails=tails)
    assert samples == {"this": [30.0, 30.0], "baseline": [60.0, 60.0]}
    assert tails == {"this": ["a tail", "a tail"], "baseline": ["b tail", "b tail"]}
    assert ab_samples(str(script), {"this": roots["this"]}, 1, 1, 1) == {"this": [1.0]}  # tails optional
