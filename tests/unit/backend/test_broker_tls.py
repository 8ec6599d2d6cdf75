"""The broker's TLS choice (`--broker-tls astarte|openssl`): the OpenSSL config it writes, and the path from the CLIs
(no processes; tests/integration/backend/test_broker_tls.py checks what a real mosquitto negotiates)."""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.backend import app
from simulator.backend.broker import BrokerConfig
from simulator.backend.mosquitto import MosquittoBroker
from simulator.backend.openssl_conf import broker_env, openssl_conf_text, write_openssl_conf
from simulator.backend_info import BackendInfo
from simulator.broker_tls import BROKER_TLS_CHOICES
from simulator.cli import build_parser
from simulator.generator.backend_process import BackendProcess
from simulator.run.spec import RunSettings


def _cfg(tmp: Path, **kw: object) -> BrokerConfig:
    return BrokerConfig("127.0.0.1", 0, tmp / "ca.crt", tmp / "server.crt", tmp / "server.key", "fleetsim",
                        state_dir=tmp, **kw)  # type: ignore[arg-type]


def _sections(text: str) -> configparser.ConfigParser:
    """The file as sections (OpenSSL's config syntax is INI-like; the unnamed default section comes first)."""
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep OpenSSL's case
    parser.read_string("[default]\n" + text)
    return parser


def test_the_default_is_astartes_tls() -> None:
    assert BROKER_TLS_CHOICES == ("astarte", "openssl")
    assert BrokerConfig("h", 0, Path("a"), Path("b"), Path("c"), "r").broker_tls == "astarte"


def test_the_config_chains_the_sections_down_to_tls12_and_no_ticket() -> None:
    conf = _sections(openssl_conf_text())
    init = conf["default"]["openssl_conf"]
    ssl_section = conf[init]["ssl_conf"]
    tls = conf[conf[ssl_section]["system_default"]]
    assert dict(tls) == {"MaxProtocol": "TLSv1.2", "Options": "-SessionTicket", "NumTickets": "0"}


@pytest.mark.parametrize("bad", ["tls13", "", None])
def test_broker_config_refuses_an_unknown_choice(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="broker_tls: expected one of astarte, openssl"):
        _cfg(tmp_path, broker_tls=bad)


def test_the_file_goes_into_the_given_directory(tmp_path: Path) -> None:
    path = write_openssl_conf(tmp_path)
    assert path == tmp_path / "openssl.cnf"
    assert path.read_text() == openssl_conf_text()


def test_only_the_broker_env_gets_openssl_conf(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "OPENSSL_CONF": "/etc/ssl/openssl.cnf"}
    env = broker_env(tmp_path / "openssl.cnf", base)
    assert env == {"PATH": "/bin", "OPENSSL_CONF": str(tmp_path / "openssl.cnf")}
    assert base["OPENSSL_CONF"] == "/etc/ssl/openssl.cnf"  # the caller's mapping is left alone


def test_mosquitto_gets_openssl_conf_for_astarte_only(tmp_path: Path) -> None:
    broker = MosquittoBroker(_cfg(tmp_path))
    assert broker.openssl_conf_path == tmp_path / "mosquitto" / "openssl.cnf"
    assert broker.openssl_conf_path.parent == broker.config_path.parent
    broker.openssl_conf_path.parent.mkdir(parents=True)
    env = broker._openssl_env()
    assert env is not None and env["OPENSSL_CONF"] == str(broker.openssl_conf_path)
    assert broker.openssl_conf_path.read_text() == openssl_conf_text()
    # "openssl": mosquitto inherits our environment, and an earlier start's file is gone
    assert MosquittoBroker(_cfg(tmp_path, broker_tls="openssl"))._openssl_env() is None
    assert not broker.openssl_conf_path.exists()


def _backend_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    app.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_fleetsim_backend_flag_default_and_value() -> None:
    assert _backend_args().broker_tls == "astarte"
    assert _backend_args("--broker-tls", "openssl").broker_tls == "openssl"
    with pytest.raises(SystemExit):
        _backend_args("--broker-tls", "tls13")


@pytest.mark.parametrize("choice", ["astarte", "openssl"])
def test_backend_process_passes_the_choice(tmp_path: Path, choice: str) -> None:
    cmd = BackendProcess(tmp_path, broker_tls=choice).command()
    assert cmd[cmd.index("--broker-tls") + 1] == choice
    # what the child parses is what the parent meant
    child = _backend_args(*cmd[cmd.index("--state-dir"):])
    assert child.broker_tls == choice
    assert BackendProcess(tmp_path).broker_tls == "astarte"


def test_fleetsim_run_carries_the_choice_in_its_settings() -> None:
    assert RunSettings().broker_tls == "astarte"
    args = build_parser().parse_args(["run", "scenarios/quickstart.yaml", "--broker-tls", "openssl"])
    assert args.broker_tls == "openssl"
    assert build_parser().parse_args(["run", "scenarios/quickstart.yaml"]).broker_tls == "astarte"


def test_fleetsim_run_refuses_an_unknown_choice() -> None:
    # A child process: the CLI patches the standard library for gevent, which this test process must not get.
    done = subprocess.run([sys.executable, "-m", "simulator", "run", "scenarios/quickstart.yaml",
                           "--broker-tls", "tls13"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3], check=False)
    assert done.returncode == 2
    assert "--broker-tls" in done.stderr


def test_the_banner_names_the_brokers_tls() -> None:
    info = BackendInfo("fleetsim", "https://127.0.0.1:1/pairing", "mqtts://127.0.0.1:2/", "mosquitto", "jwt",
                       "/s/ca.crt", "/s/a.crt", "/s/a.key", "", "/s", broker_version="2.0.11")
    line = "  broker URL    mqtts://127.0.0.1:2/  (mosquitto 2.0.11{})"
    for choice, said in (("astarte", ", TLS as Astarte's broker (at most 1.2, no session ticket)"),
                         ("openssl", ", TLS of OpenSSL's defaults (1.3, 2 session tickets per handshake)"),
                         ("", "")):  # a backend.json from before the field: nothing claimed
        banner = app.describe(dataclasses.replace(info, broker_tls=choice).to_json()).splitlines()
        assert line.format(said) in banner, banner
