"""TargetInfo: where a generator process sends its devices (the embedded backend or a real Astarte).

A plain frozen value (strings only: it crosses process boundaries to Locust workers), shared by the generator,
the target-file reader and the fault runner; simulator.generator.target opens targets and builds it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from simulator.errors import UsageError
from simulator.transports.base import Endpoint

__all__ = ["TargetInfo"]


@dataclass(frozen=True)
class TargetInfo:
    """What a generator process needs to reach the backend (plain strings: it crosses process boundaries)."""

    kind: str  # "embedded" | "astarte"
    realm: str
    pairing_url: str
    agent_jwt: str
    ca_file: str
    ignore_ssl_errors: bool = False
    credentials_dir: str = ".fleetsim/credentials"
    control_url: str = ""  # the embedded collector's control/metrics endpoint ("" for a real Astarte)
    broker_url: str = ""
    broker_kind: str = ""  # "mosquitto" | "amqtt" (embedded); "" for a real Astarte (its broker is not ours)
    broker_version: str = ""
    broker_tls: str = ""  # the embedded broker's TLS choice (simulator.broker_tls); "" for a real Astarte
    images_url: str = ""  # the embedded backend's OTA image server ("" for a real Astarte)
    admin_cert: str = ""
    admin_key: str = ""
    target_file: str = ""  # a real Astarte: its target file, re-read by target_file.observer_for (no secret)
    broker_override: str = ""  # issue 9: "host:port" of the fault proxy (transports.base.Endpoint)
    broker_override_devices: tuple[str, ...] = ()  # the devices routed through it (() = all)

    @property
    def broker_label(self) -> str:
        """What carried the MQTT traffic, for people: "mosquitto 2.0.11", "amqtt 0.12.1", "target's broker"."""
        if not self.broker_kind:
            return "the target's broker" if self.kind != "embedded" else "unknown broker"
        return f"{self.broker_kind} {self.broker_version}".strip()

    @property
    def broker_warning(self) -> str:
        """Non-empty when the run's latency figures were carried by the pip-only amqtt broker."""
        if self.broker_kind != "amqtt":
            return ""
        return ("the pip-only amqtt broker carried this run: its latency and throughput are a functional "
                "stand-in's (e2e p99 ~10x mosquitto's), not a backend's; install mosquitto or target a real "
                "Astarte for figures")

    def endpoint(self) -> Endpoint:
        return Endpoint(realm=self.realm, pairing_url=self.pairing_url, agent_jwt=self.agent_jwt,
                        ca_file=self.ca_file or None, ignore_ssl_errors=self.ignore_ssl_errors,
                        credentials_dir=self.credentials_dir, broker_override=self.broker_override,
                        broker_override_devices=tuple(self.broker_override_devices))

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TargetInfo:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"bad target info: {exc}") from exc

    def redacted(self) -> dict[str, object]:
        """For results and logs: no JWT, no key paths' contents (issue 9: no secret in results)."""
        doc = asdict(self)
        doc["agent_jwt"] = "<redacted>" if self.agent_jwt else ""
        return doc
