"""The pip-only broker: amqtt 0.12.1 as a subprocess with mutual TLS, CN identity and a per-device prefix ACL.

Used by the embedded backend when mosquitto is not found (simulator.backend.broker_select). It
runs in its own process (`python -m simulator.backend.amqtt_main`) because amqtt is a busy asyncio broker that
would compete with the load generator's gevent loop, and because its in-process `shutdown()` can hang: a
process can always be terminated and, failing that, killed, which frees the port.

The child reports on stdout, one JSON object per line (see amqtt_main): `ready` with the bound port, then one
`refusal` per refused handshake, CONNECT, publish or subscription. A reader thread turns them into counts.

Limits measured on amqtt 0.12.1 (2-vCPU machine; issue text and bench/broker_amqtt.py): about 1,100 QoS 2
messages/s at 100% of one core; ~339 KB of broker memory per TLS connection; delivery at the publish QoS
(patched; amqtt itself uses the subscription's QoS) but never *below* a lower subscription QoS, so a QoS 0
subscriber still gets a QoS 2 publish at QoS 2 (Astarte subscribers all use QoS 2, docs/protocol.md section 1);
QoS 2 messages to a subscriber that stalls for ~5 s are dropped for good; no in-flight or message-size limit
like VerneMQ's.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import simulator
from simulator.backend.broker import BrokerConfig
from simulator.errors import FleetsimError

__all__ = ["AmqttBroker"]

_PACKAGE_ROOT = Path(simulator.__file__).resolve().parent.parent


class AmqttBroker:
    """A broker subprocess: `start()` returns once the TLS listener accepts connections; `stop()` ends it.

    Timeouts in seconds: `start_timeout_s` for the child to report its port (Python start-up plus amqtt import
    take ~1-2 s on an idle machine), `stop_timeout_s` between SIGTERM and SIGKILL (the child gives amqtt's
    shutdown 2 s of that).
    """

    name = "amqtt"

    @property
    def version(self) -> str:
        """The installed amqtt distribution's version ("" when its metadata is missing)."""
        try:
            return importlib.metadata.version("amqtt")
        except importlib.metadata.PackageNotFoundError:
            return ""

    def __init__(
        self, config: BrokerConfig, *, start_timeout_s: float = 30.0, stop_timeout_s: float = 5.0
    ) -> None:
        self._config = config
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._log_file: IO[bytes] | None = None
        self._config_path: Path | None = None
        self._log_path: Path | None = None
        self._cond = threading.Condition()
        self._counts: dict[str, int] = {}
        self._ready = False
        self._exited = False
        self._error = ""
        self._port = config.port

    # -- the Broker protocol ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"mqtts://{self._config.host}:{self.port}/"

    @property
    def port(self) -> int:
        return self._port

    def refusals(self) -> dict[str, int]:
        """Refusals so far by kind (amqtt_plugin.REFUSAL_KINDS); kinds never seen are absent."""
        with self._cond:
            return dict(self._counts)

    def start(self) -> None:
        if self._proc is not None:
            raise FleetsimError("amqtt broker: already started")
        work_dir = self._config.work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="amqtt-", suffix=".json", dir=work_dir)
        self._config_path = Path(name)
        self._log_path = self._config_path.with_suffix(".log")
        with os.fdopen(fd, "w") as out:
            json.dump(self._child_config(), out)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115  # held open for the child's lifetime
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "simulator.backend.amqtt_main", "--config", str(self._config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=env,
        )
        self._reader = threading.Thread(
            target=self._read_events, args=(self._proc,), name="amqtt-broker-events", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + self._start_timeout_s
        with self._cond:
            while not (self._ready or self._exited):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            ready, error = self._ready, self._error
        if not ready:
            self.stop()
            why = error or f"not listening after {self._start_timeout_s:.0f} s"
            raise FleetsimError(f"amqtt broker did not start: {why} (log: {self._log_path})")

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after `stop_timeout_s`); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(self._stop_timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._reader is not None:
                self._reader.join(self._stop_timeout_s)  # stdout reaches EOF once the child is gone
            if proc.stdout is not None:
                proc.stdout.close()
        self._reader = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        # A clean run's child writes nothing: one empty amqtt-<random>.log per start piled up in the state
        # dir. A log with something in it is kept for post-mortems.
        if self._log_path is not None and self._log_path.exists() and self._log_path.stat().st_size == 0:
            self._log_path.unlink(missing_ok=True)
        if self._config_path is not None:
            self._config_path.unlink(missing_ok=True)
            self._config_path = None

    # -- extras ----------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        """The child's log (stderr); kept after stop() for post-mortems when not empty."""
        return self._log_path

    def wait_for_refusals(self, kind: str, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Wait until `count` refusals of `kind` were reported (True) or `timeout_s` passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counts.get(kind, 0) >= count, timeout_s)

    def __enter__(self) -> AmqttBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------------------

    def _child_config(self) -> dict[str, Any]:
        c = self._config
        return {
            "host": c.host,
            "port": c.port,
            "ca_file": str(c.ca_file),
            "cert_file": str(c.cert_file),
            "key_file": str(c.key_file),
            "realm": c.realm,
            "admin_cn": c.admin_cn,
            "verbose_log": c.verbose_log,
            "broker_tls": c.broker_tls,
            "shutdown_timeout_s": min(2.0, self._stop_timeout_s / 2),
        }

    def _read_events(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # not ours (a stray print in a dependency)
            if isinstance(event, dict):
                self._on_event(event)
        with self._cond:
            self._exited = True
            self._cond.notify_all()

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._cond:
            kind = event.get("event")
            if kind == "ready":
                self._port = int(event["port"])
                self._ready = True
            elif kind == "refusal":
                name = str(event.get("kind", "unknown"))
                self._counts[name] = self._counts.get(name, 0) + 1
            elif kind == "error":
                self._error = str(event.get("message", ""))
            self._cond.notify_all()
