"""EmbeddedBackend: the zero-setup Astarte stand-in -- local CA, Pairing API v1, MQTT broker, collector.

Start order (each needs the one before): CA material -> broker (mutual TLS, per-device ACL) -> Pairing API
(hands out the broker URL) -> collector (subscribes to `<realm>/#` as the admin identity) -> its HTTP control
endpoint. A failure part-way stops what already started, so a failed start leaves no process, thread or port.
Measured on the 2-vCPU machine: ~0.2 s to start with mosquitto (CA reuse; first run adds ~10 ms of key
generation), well under the 3 s budget.

How an UNMODIFIED astarte-device-sdk 0.14.0 trusts our CA: the SDK calls `requests` with `verify=True` for the
Pairing API and paho `tls_set(ca_certs=None)` for the broker (astarte/device/pairing_handler.py,
device_mqtt.py `__setup_crypto`), i.e. certifi for requests and OpenSSL's default paths for paho. Setting
`REQUESTS_CA_BUNDLE` and `SSL_CERT_FILE` to `BackendInfo.ca_file` in the device process makes both verify
against our CA (`BackendInfo.client_env()`); the alternative, `ignore_ssl_errors=True`, skips verification.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.backend.broker import ADMIN_CN, Broker, BrokerConfig
from simulator.backend.broker_select import select_broker
from simulator.backend.ca import LocalCA
from simulator.backend.images import ImageServer
from simulator.backend.jwt_tokens import AgentTokens
from simulator.backend.pairing import PairingServer
from simulator.backend_info import BackendInfo
from simulator.broker_tls import DEFAULT_BROKER_TLS, BrokerTls

__all__ = ["BackendPorts", "EmbeddedBackend"]


@dataclass(frozen=True)
class BackendPorts:
    """Fixed ports for the three servers (0: any free port, written to backend.json). Fixed ports are for hosts
    behind a firewall (docs/multi-host.md)."""

    pairing: int = 0
    broker: int = 0
    control: int = 0


class EmbeddedBackend:
    """See the module docstring. Not re-entrant: start() once, stop() once (stop is idempotent)."""

    def __init__(
        self, state_dir: Path, realm: str = "fleetsim", broker: str = "auto", host: str = "127.0.0.1",
        ports: BackendPorts | None = None, broker_tls: BrokerTls = DEFAULT_BROKER_TLS,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.ports = ports or BackendPorts()
        self.realm = realm
        self.broker_kind = broker
        self.host = host
        self.broker_tls = broker_tls  # BrokerConfig.broker_tls
        self.ca = LocalCA(self.state_dir)
        self.tokens = AgentTokens(self.state_dir)
        self.broker: Broker | None = None
        self.pairing: PairingServer | None = None
        self.collector: Any = None  # simulator.backend.collector.Collector
        self.control: Any = None  # simulator.backend.control_http.ControlServer
        self.info: BackendInfo | None = None
        self._stops: list[Callable[[], None]] = []
        self._broker_config: BrokerConfig | None = None
        self._restart_lock = threading.Lock()

    def start(self) -> BackendInfo:
        if self.info is not None:
            return self.info
        try:
            self.info = self._start()
        except BaseException:
            self.stop()
            raise
        return self.info

    def _start(self) -> BackendInfo:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ca.ensure()
        server_cert, server_key = self.ca.server_cert(self._hosts())
        admin_cert, admin_key = self.ca.issue_client_cert(ADMIN_CN)

        self._broker_config = BrokerConfig(
            host=self.host, port=self.ports.broker, ca_file=self.ca.ca_cert_path, cert_file=server_cert,
            key_file=server_key, realm=self.realm, admin_cn=ADMIN_CN, state_dir=self.state_dir,
            broker_tls=self.broker_tls,
        )
        broker = select_broker(self.broker_kind, self._broker_config)
        broker.start()
        self.broker = broker
        self._stops.append(broker.stop)

        pairing = PairingServer(
            self.ca, self.tokens, self.realm, server_cert, server_key, broker_url=broker.url,
            host=self.host, port=self.ports.pairing, state_dir=self.state_dir,
        )
        pairing.start()
        self.pairing = pairing
        self._stops.append(pairing.stop)

        control_url = self._start_collector(broker, admin_cert, admin_key)
        images = ImageServer(self.host)
        images_url = images.start()
        self._stops.append(images.stop)
        return BackendInfo(
            realm=self.realm, pairing_url=pairing.url, broker_url=broker.url, broker_kind=broker.name,
            broker_version=broker.version, broker_tls=self.broker_tls,
            agent_jwt=self.tokens.issue_agent_token(), ca_file=str(self.ca.ca_cert_path),
            admin_cert=str(admin_cert), admin_key=str(admin_key), control_url=control_url,
            state_dir=str(self.state_dir), images_url=images_url,
        )

    def _start_collector(self, broker: Broker, admin_cert: Path, admin_key: Path) -> str:
        """Collector + control endpoint (another engineer's modules; skipped while they do not exist)."""
        collector_mod = _optional("simulator.backend.collector")
        if collector_mod is None:
            return ""
        collector = collector_mod.Collector(collector_mod.CollectorConfig(
            host=self.host, port=broker.port, ca_file=self.ca.ca_cert_path, cert_file=admin_cert,
            key_file=admin_key, realm=self.realm,
            arrival_log=self.state_dir / "collector" / "events.arrivals.csv",
        ))
        collector.start()
        self.collector = collector
        self._stops.append(collector.stop)
        control_mod = _optional("simulator.backend.control_http")
        if control_mod is None:
            return ""
        control = control_mod.ControlServer(collector, self.host, self.ports.control)
        control.broker_restart = self.restart_broker  # POST /broker/restart (issue 9)
        url = str(control.start())
        self.control = control
        self._stops.append(control.stop)
        return url

    def _hosts(self) -> tuple[str, ...]:
        return (self.host,) if self.host in ("127.0.0.1", "localhost") else (self.host, "127.0.0.1")

    def stop(self) -> None:
        """Stop everything that started, last first; never raises for one part failing to stop."""
        errors: list[BaseException] = []
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the rest; re-raise the first at the end
                errors.append(exc)
        self.info = None
        if errors:
            raise errors[0]

    def restart_broker(self, down_s: float = 0.0) -> dict[str, Any]:
        """Stop the broker, stay down `down_s` seconds, start it again on the same port (issue 9 faults).

        Devices see their connections drop (mosquitto closes them at SIGTERM) and reconnect with backoff;
        the collector's paho loop reconnects and resubscribes (clean session, collector.py `_on_connect`).
        Messages the broker had acked but not yet delivered are lost with it (persistence is off): the
        accounting reports them `acked_not_arrived`. Returns wall times and the port.
        """
        with self._restart_lock:
            old, config = self.broker, self._broker_config
            if old is None or config is None:
                raise RuntimeError("the broker is not running")
            port = old.port
            stopped_at = time.time()
            old.stop()
            if down_s > 0:
                threading.Event().wait(down_s)  # sleep-ok: the outage the fault asks for
            new = select_broker(self.broker_kind, dataclasses.replace(config, port=port))
            new.start()
            self.broker = new
            self._stops[self._stops.index(old.stop)] = new.stop
            return {"port": port, "down_s": down_s, "stopped_at": stopped_at, "started_at": time.time()}

    def stats(self) -> dict[str, Any]:
        """Pairing requests/failures by route, broker refusals by kind, and the collector's stats if any."""
        out: dict[str, Any] = {}
        if self.pairing is not None:
            out["pairing"] = self.pairing.stats()
        if self.broker is not None:
            out["broker"] = {"name": self.broker.name, "refusals": self.broker.refusals()}
        if self.collector is not None:
            with contextlib.suppress(Exception):
                out["collector"] = self.collector.stats()
        return out

    def __enter__(self) -> EmbeddedBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _optional(module: str) -> Any:
    """Import `module`, or None when that module itself does not exist (yet)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
