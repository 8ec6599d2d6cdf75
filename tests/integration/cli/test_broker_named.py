"""Say what ran (issue 15 item 6): the terminal, summary.json and report.html name the broker and its version,
and warn when the pip-only amqtt broker carried the latency figures."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from tests.integration.engine.conftest import TINY, only_run_dir, run_fleetsim


def test_amqtt_is_named_and_its_figures_flagged(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY.format(seed=5, devices=3))
    proc = run_fleetsim(["run", str(scenario), "--broker", "amqtt", "--state-dir", "st", "--results", "results",
                         "--quiet"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    version = importlib.metadata.version("amqtt")
    assert f"broker: amqtt {version}" in out, out
    assert "WARNING: the pip-only amqtt broker carried this run" in out, out
    run_dir = only_run_dir(tmp_path / "results")
    extra = json.loads((run_dir / "summary.json").read_text())["extra"]
    assert (extra["broker"], extra["broker_version"], extra["broker_label"]) == ("amqtt", version,
                                                                                f"amqtt {version}")
    # The TLS the embedded broker spoke (the default, --broker-tls astarte), in the summary and on the console.
    assert extra["broker_tls"] == "astarte"
    assert f"broker: amqtt {version}, TLS as Astarte's broker (at most 1.2, no session ticket)" in out, out
    assert extra["broker_warning"].startswith("the pip-only amqtt broker carried this run")
    report = (run_dir / "report.html").read_text()
    assert f"broker amqtt {version}" in report and "WARNING: the pip-only amqtt broker" in report
