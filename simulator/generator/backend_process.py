"""Start the embedded backend as its own app: `python -m simulator.backend --state-dir ... --json`.

The generator never imports the backend's internals: it starts this process and talks to it over the
endpoints of the BackendInfo line (simulator.backend_info).

Why a subprocess: the load generator runs Locust, whose import monkey-patches the standard library for gevent;
the backend's threads (pairing server, collector's paho loop) would become greenlets sharing the generator's
core. In its own process the backend uses the other core and stays out of the generator's measurements.
The child prints one line of BackendInfo JSON on stdout once everything listens; its stderr goes to
`<state_dir>/backend-process.log`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from simulator.backend_info import BackendInfo
from simulator.broker_tls import DEFAULT_BROKER_TLS, BrokerTls

__all__ = ["BackendProcess"]

_STOP_GRACE_S = 5.0


class BackendProcess:
    """Start with `start()` (or `with`), which returns the child's BackendInfo; `stop()` ends it."""

    def __init__(
        self,
        state_dir: Path,
        realm: str = "fleetsim",
        broker: str = "auto",
        host: str = "127.0.0.1",
        start_timeout_s: float = 15.0,
        python: str = sys.executable,
        broker_tls: BrokerTls = DEFAULT_BROKER_TLS,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.realm, self.broker, self.host = realm, broker, host
        # The broker's TLS: "astarte" (TLS 1.2, no ticket) or "openssl" (simulator.broker_tls).
        self.broker_tls = broker_tls
        self.start_timeout_s = start_timeout_s
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self.info: BackendInfo | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.state_dir / "backend-process.log"

    def start(self) -> BackendInfo:
        """Launch the child, wait (deadline `start_timeout_s`) for its JSON line; RuntimeError on failure."""
        if self.info is not None:
            return self.info
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop the child in order
            )
        try:
            line = self._read_line(self._proc, self.start_timeout_s)
            self.info = BackendInfo.from_json(line)
        except (RuntimeError, ValueError) as exc:
            self.stop()
            tail = self._log_tail()
            detail = f"{exc}: {tail}" if tail else str(exc)
            raise RuntimeError(f"embedded backend did not start: {detail}") from None
        return self.info

    def command(self) -> list[str]:
        """The child's command line (`python -m simulator.backend ...`)."""
        cmd = [
            self._python, "-m", "simulator.backend", "--state-dir", str(self.state_dir),
            "--realm", self.realm, "--broker", self.broker, "--host", self.host, "--json",
            "--exit-on-stdin-eof", "--broker-tls", self.broker_tls,
        ]
        return cmd

    @staticmethod
    def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
        """The child's first stdout line, waiting with a selector (no sleeps) until `timeout` seconds."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        buf = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no backend info within {timeout:.0f} s")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"backend exited with code {proc.wait()}")
                buf += chunk
        return buf.split(b"\n", 1)[0]

    def _log_tail(self, n: int = 3) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return ""
        return " | ".join(lines[-n:])

    def stop(self) -> int | None:
        """SIGTERM (the child stops its broker, servers and collector), SIGKILL after 5 s; the exit code."""
        proc, self._proc = self._proc, None
        self.info = None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                # The child's own children (mosquitto) share its session: kill the whole group.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        return proc.returncode

    def __enter__(self) -> BackendProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
