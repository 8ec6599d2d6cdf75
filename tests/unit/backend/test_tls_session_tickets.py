"""The broker's TLS session tickets setting: the OpenSSL config it writes, and the path from the CLIs (no processes;
tests/integration/backend/test_broker_tickets.py checks what a real mosquitto sends)."""

from __future__ import annotations

import argparse
import configparser
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.backend import app
from simulator.backend.broker import BrokerConfig
from simulator.backend.mosquitto import MosquittoBroker
from simulator.backend.openssl_conf import broker_env, openssl_conf_text, write_openssl_conf
from simulator.cli import build_parser
from simulator.errors import UsageError
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


def test_the_default_leaves_the_count_to_openssl() -> None:
    # None: mosquitto runs with the host's OpenSSL configuration (2 tickets), as before the setting existed;
    # why 0 over TLS 1.3 is not the default: simulator/backend/broker.py.
    assert BrokerConfig("h", 0, Path("a"), Path("b"), Path("c"), "r").tls_session_tickets is None


def test_zero_tickets_chains_the_sections_down_to_num_tickets_and_no_tls12_ticket() -> None:
    conf = _sections(openssl_conf_text(0))
    init = conf["default"]["openssl_conf"]
    ssl_section = conf[init]["ssl_conf"]
    tls = conf[conf[ssl_section]["system_default"]]
    assert dict(tls) == {"NumTickets": "0", "Options": "-SessionTicket"}


def test_a_count_sets_num_tickets_and_keeps_tls12_tickets() -> None:
    conf = _sections(openssl_conf_text(2))
    assert dict(conf["fleetsim_tls"]) == {"NumTickets": "2"}


@pytest.mark.parametrize("bad", [-1, True, 1.5, "2"])
def test_a_count_below_zero_or_not_an_int_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a count >= 0"):
        openssl_conf_text(bad)  # type: ignore[arg-type]


def test_broker_config_refuses_a_negative_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tls_session_tickets"):
        _cfg(tmp_path, tls_session_tickets=-1)


def test_the_file_goes_into_the_given_directory(tmp_path: Path) -> None:
    path = write_openssl_conf(tmp_path, 3)
    assert path == tmp_path / "openssl.cnf"
    assert path.read_text() == openssl_conf_text(3)


def test_only_the_broker_env_gets_openssl_conf(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "OPENSSL_CONF": "/etc/ssl/openssl.cnf"}
    env = broker_env(tmp_path / "openssl.cnf", base)
    assert env == {"PATH": "/bin", "OPENSSL_CONF": str(tmp_path / "openssl.cnf")}
    assert base["OPENSSL_CONF"] == "/etc/ssl/openssl.cnf"  # the caller's mapping is left alone


def test_mosquitto_gets_openssl_conf_only_for_a_count(tmp_path: Path) -> None:
    broker = MosquittoBroker(_cfg(tmp_path, tls_session_tickets=0))
    assert broker.openssl_conf_path == tmp_path / "mosquitto" / "openssl.cnf"
    assert broker.openssl_conf_path.parent == broker.config_path.parent
    broker.openssl_conf_path.parent.mkdir(parents=True)
    env = broker._openssl_env()
    assert env is not None and env["OPENSSL_CONF"] == str(broker.openssl_conf_path)
    assert broker.openssl_conf_path.read_text() == openssl_conf_text(0)
    # the default: mosquitto inherits our environment, and an earlier start's file is gone
    assert MosquittoBroker(_cfg(tmp_path))._openssl_env() is None
    assert not broker.openssl_conf_path.exists()


def _backend_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    app.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_fleetsim_backend_flag_default_and_value() -> None:
    assert _backend_args().tls_session_tickets is None
    assert _backend_args("--tls-session-tickets", "2").tls_session_tickets == 2


def test_fleetsim_backend_refuses_a_negative_count_before_starting(tmp_path: Path) -> None:
    args = _backend_args("--state-dir", str(tmp_path), "--tls-session-tickets", "-1")
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(UsageError, match="--tls-session-tickets"):
        app.run(args)
    assert not (tmp_path / "mosquitto").exists()  # nothing started
    assert signal.getsignal(signal.SIGINT) is handler  # and nothing left swapped


def test_backend_process_passes_the_count_only_when_given(tmp_path: Path) -> None:
    assert "--tls-session-tickets" not in BackendProcess(tmp_path).command()
    cmd = BackendProcess(tmp_path, tls_session_tickets=2).command()
    assert cmd[cmd.index("--tls-session-tickets") + 1] == "2"
    # what the child parses is what the parent meant
    child = _backend_args(*cmd[cmd.index("--state-dir"):])
    assert child.tls_session_tickets == 2


def test_fleetsim_run_carries_the_count_in_its_settings() -> None:
    assert RunSettings().tls_session_tickets is None  # the backend's default
    args = build_parser().parse_args(["run", "scenarios/quickstart.yaml", "--tls-session-tickets", "2"])
    assert args.tls_session_tickets == 2
    assert build_parser().parse_args(["run", "scenarios/quickstart.yaml"]).tls_session_tickets is None


def test_fleetsim_run_refuses_a_negative_count() -> None:
    # A child process: the CLI patches the standard library for gevent, which this test process must not get.
    done = subprocess.run([sys.executable, "-m", "simulator", "run", "scenarios/quickstart.yaml",
                           "--tls-session-tickets", "-1"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3], check=False)
    assert done.returncode == 2
    assert "--tls-session-tickets" in done.stderr
