"""Which broker the embedded backend picks (issue 15 item 6): mosquitto on PATH or in the sbin folders, else amqtt;
and the version each reports."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

from simulator.backend import broker_select
from simulator.backend.broker import BrokerConfig
from simulator.backend.broker_select import SBIN_DIRS, find_mosquitto, select_broker
from tests.conftest import require_service

CFG = BrokerConfig("127.0.0.1", 0, Path("/x/ca.pem"), Path("/x/cert.pem"), Path("/x/key.pem"), "fleetsim")


def _fake_binary(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mosquitto"
    path.write_text("#!/bin/sh\necho 'mosquitto version 9.9.9'\nexit 3\n")
    os.chmod(path, 0o755)
    return path


def test_the_usual_sbin_folders_are_searched() -> None:
    assert SBIN_DIRS == ("/usr/sbin", "/usr/local/sbin", "/sbin")


def test_found_in_an_sbin_folder_when_not_on_path(tmp_path: Path) -> None:
    fake = _fake_binary(tmp_path / "sbin")
    assert find_mosquitto(path=str(tmp_path / "empty"), sbin_dirs=(str(tmp_path / "none"), str(fake.parent))) \
        == str(fake)


def test_path_wins_over_sbin(tmp_path: Path) -> None:
    on_path = _fake_binary(tmp_path / "bin")
    _fake_binary(tmp_path / "sbin")
    assert find_mosquitto(path=str(on_path.parent), sbin_dirs=(str(tmp_path / "sbin"),)) == str(on_path)


def test_nowhere_means_none(tmp_path: Path) -> None:
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "mosquitto").write_text("not executable")
    assert find_mosquitto(path=str(tmp_path / "empty"), sbin_dirs=(str(tmp_path / "sbin"),)) is None


def test_auto_picks_sbin_mosquitto_then_amqtt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    fake = _fake_binary(tmp_path / "sbin")
    monkeypatch.setattr(broker_select, "SBIN_DIRS", (str(fake.parent),))
    chosen = select_broker("auto", CFG)
    assert (chosen.name, chosen.version) == ("mosquitto", "9.9.9")
    monkeypatch.setattr(broker_select, "SBIN_DIRS", ())
    fallback = select_broker("auto", CFG)
    assert (fallback.name, fallback.version) == ("amqtt", importlib.metadata.version("amqtt"))
    with pytest.raises(FileNotFoundError, match="sbin"):
        select_broker("mosquitto", CFG)


def test_the_real_mosquitto_reports_its_version() -> None:
    require_service("mosquitto", binary="mosquitto")
    version = select_broker("mosquitto", CFG).version
    assert version and version[0].isdigit() and version.count(".") >= 1
