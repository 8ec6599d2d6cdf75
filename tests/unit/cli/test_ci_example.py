"""docs/examples/fleetsim-ci.yml is a valid workflow and every fleetsim command in it parses with today's CLI
(a doc example that CI users copy must not rot)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from simulator.cli import build_parser

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "fleetsim-ci.yml"


def _fleetsim_commands() -> list[list[str]]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    out = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            script = str(step.get("run", "")).replace("\\\n", " ")
            for line in script.splitlines():
                words = shlex.split(line.replace('"$RUN"', "results/x-ci-regression"))
                if words and words[0] == "fleetsim":
                    out.append(words[1:])
    return out


def test_every_fleetsim_command_of_the_example_parses() -> None:
    commands = _fleetsim_commands()
    assert {c[0] for c in commands} >= {"triggers", "run", "compare"}
    parser = build_parser()
    for words in commands:
        args = parser.parse_args(words)  # argparse exits (SystemExit) on an unknown flag
        assert getattr(args, "_module", None) is not None, words
