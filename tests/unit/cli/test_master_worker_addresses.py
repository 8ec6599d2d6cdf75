"""Master/worker addressing flags (issue 14): `fleetsim run --master-bind HOST[:PORT] --expect-workers N` and
`fleetsim worker --master HOST:PORT`; bad values are refused (one line, exit 2) before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import build_parser
from simulator.errors import UsageError
from simulator.run.addresses import parse_bind, parse_master

QUICKSTART = str(Path(__file__).resolve().parents[3] / "scenarios" / "quickstart.yaml")


def test_master_bind_values() -> None:
    assert parse_bind("10.231.0.11:5557") == ("10.231.0.11", 5557)
    assert parse_bind("10.231.0.11") == ("10.231.0.11", 0)
    assert parse_bind("0.0.0.0:5557") == ("0.0.0.0", 5557)
    assert parse_bind("[fd00::1]:5557") == ("fd00::1", 5557)
    assert parse_bind("fd00::1") == ("fd00::1", 0)
    for bad in ("", ":5557", "host:port", "host:70000"):
        with pytest.raises(UsageError, match="--master-bind"):
            parse_bind(bad)


def test_worker_master_values() -> None:
    assert parse_master("10.231.0.11:5557") == ("10.231.0.11", 5557)
    assert parse_master("5557") == ("127.0.0.1", 5557)
    assert parse_master("[fd00::1]:5557") == ("fd00::1", 5557)
    for bad in ("", "10.0.0.1", "10.0.0.1:0", ":5557", "x:y"):
        with pytest.raises(ValueError, match="--master"):
            parse_master(bad)


@pytest.mark.parametrize("args", [
    ["run", QUICKSTART, "--master-bind", "10.0.0.1:x"],
    ["run", QUICKSTART, "--expect-workers", "2", "--processes", "2"],
    ["run", QUICKSTART, "--expect-workers", "-1"],
    ["run", QUICKSTART, "--worker-wait", "0"],
    ["worker", "--master", "nowhere"],
])
def test_bad_addressing_is_refused_before_anything_starts(args: list[str]) -> None:
    # The command's own run() (simulator.cli.main would gevent-patch this test process for `run`/`worker`);
    # main turns the UsageError into one line and exit 2.
    parsed = build_parser().parse_args(args)
    with pytest.raises(UsageError, match=r"^--") as caught:
        parsed._module.run(parsed)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
