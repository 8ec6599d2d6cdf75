"""EmbeddedBackend and BackendProcess: start under 3 s, clean stop (no process, thread or port left)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from simulator.backend.mosquitto import MosquittoBroker
from simulator.backend.server import EmbeddedBackend
from simulator.backend_info import BackendInfo
from simulator.generator.backend_process import BackendProcess

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr[1] == port
        for c in psutil.net_connections("tcp")
    )


def _ports(info: BackendInfo) -> list[int]:
    ports = [info.broker_port, int(info.pairing_url.split(":")[2].split("/")[0])]
    if info.control_url:
        ports.append(int(info.control_url.split(":")[2].split("/")[0]))
    return ports


def test_embedded_backend_starts_fast_and_stops_clean(tmp_path: Path, mosquitto_binary: str) -> None:
    threads_before = set(threading.enumerate())
    backend = EmbeddedBackend(tmp_path / "state", broker="mosquitto")
    started = time.monotonic()
    info = backend.start()
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"start took {elapsed:.2f} s"
    assert info.broker_kind == "mosquitto" and info.realm == "fleetsim"
    assert info.pairing_url.startswith("https://127.0.0.1:") and info.pairing_url.endswith("/pairing")
    assert backend.tokens.check(info.agent_jwt)
    assert isinstance(backend.broker, MosquittoBroker)
    pid = backend.broker.pid
    assert pid is not None and psutil.pid_exists(pid)
    ports = _ports(info)
    assert all(_listening(p) for p in ports)
    backend.stop()
    assert not psutil.pid_exists(pid)
    assert not any(_listening(p) for p in ports)
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == []
    backend.stop()  # idempotent


def test_backend_process_round_trip(tmp_path: Path, mosquitto_binary: str) -> None:
    proc = BackendProcess(tmp_path / "state", broker="mosquitto")
    with proc:
        info = proc.info
        assert info is not None and info.state_dir == str((tmp_path / "state").resolve())
        child = psutil.Process(proc.pid)
        descendants = [p.pid for p in child.children(recursive=True)]
        assert descendants, "mosquitto should run under the backend process"
        saved = json.loads((tmp_path / "state" / "backend.json").read_text())
        assert saved["agent_jwt"] == info.agent_jwt
        ports = _ports(info)
        assert all(_listening(p) for p in ports)
    assert not psutil.pid_exists(child.pid)
    assert not any(psutil.pid_exists(p) for p in descendants)
    assert not any(_listening(p) for p in ports)
    assert not (tmp_path / "state" / "backend.json").exists()


def test_backend_process_stops_cleanly_without_a_fatal_error(tmp_path: Path, mosquitto_binary: str) -> None:
    # Issue 15 item 7: every shutdown used to end in "Fatal Python error: _enter_buffered_busy" (SIGABRT, exit
    # -6): a daemon thread blocked reading stdin held the reader's lock at interpreter exit.
    proc = BackendProcess(tmp_path / "state", broker="mosquitto")
    proc.start()
    assert proc.stop() == 0
    log = proc.log_path.read_text()
    assert "Fatal Python error" not in log and "Traceback" not in log, log


def test_cli_prints_banner_and_stops_on_sigterm(tmp_path: Path, mosquitto_binary: str) -> None:
    state = tmp_path / "state"
    cmd = [
        sys.executable,
        "-m",
        "simulator.cli",
        "backend",
        "--state-dir",
        str(state),
        "--broker",
        "mosquitto",
    ]
    # Own session, so that the cleanup below can kill the CLI and its mosquitto together.
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()  # blocks until the banner (the backend is up) or EOF on failure
        assert "embedded backend is running" in first, first + (child.stderr.read() if child.stderr else "")
        banner = []
        while not banner or "locust -f" not in banner[-1]:  # the banner's last line; EOF ends it too
            line = child.stdout.readline()
            if not line:
                break
            banner.append(line)
        text = "".join(banner)
        assert "pairing URL   https://127.0.0.1:" in text and "locust -f locustfile.py" in text
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def test_bad_broker_kind_fails_with_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "simulator.backend", "--state-dir", str(tmp_path), "--broker", "nope"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "invalid choice" in res.stderr and "Traceback" not in res.stderr
