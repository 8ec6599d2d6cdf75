"""The scenario loader fuzzed through the CLI (`fleetsim validate`, in process): whatever the file holds, the
answer is `ok` and exit 0, or exit 2 with every stderr line `FILE[:LINE]: ...` -- one line per problem, never a
traceback or an internal error (issue 9 item 3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simulator.cli import main
from tests.unit.scenario.test_fuzz import documents


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
                 st.text(alphabet=st.sampled_from(list("abc: -[]{}&*!|>'\"#\n\t012.,?%@`<=~")), max_size=60)))
@example(text="' ': null\n")  # a key of one space: its field is quoted, `FILE:1: ' ': unknown key ...`
def test_validate_answers_ok_or_one_located_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: Any
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    if code == 0:
        assert out == f"ok: {path}\n" and err == ""
        return
    assert code == 2, err
    lines = err.splitlines()
    assert lines, "exit 2 without a message"
    located = re.compile(rf"^{re.escape(str(path))}(:\d+)?: \S")
    assert all(located.match(line) for line in lines), lines
