"""The embedded backend's contract with its clients: `BackendInfo`, one JSON line on the backend's stdout and
in `<state-dir>/backend.json`.

Shared by both sides (the backend, simulator.backend, writes it; the generator and the commands read it) so that
a client never imports the backend's internals: it starts `python -m simulator.backend` as a process and talks
to it over the endpoints named here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

__all__ = ["BackendInfo"]


@dataclass(frozen=True)
class BackendInfo:
    """What a client of the embedded backend needs; every field a string (paths absolute)."""

    realm: str
    pairing_url: str  # the SDK's pairing_base_url, "https://127.0.0.1:<port>/pairing"
    broker_url: str  # "mqtts://127.0.0.1:<port>/"
    broker_kind: str  # "mosquitto" | "amqtt"
    agent_jwt: str  # Bearer token for POST /agent/devices (claim a_pa)
    ca_file: str
    admin_cert: str  # the collector / campaign identity (CN fleetsim-admin, ACL readwrite #)
    admin_key: str
    control_url: str  # the collector's HTTP control/metrics endpoint; "" when not running
    state_dir: str
    broker_version: str = ""  # e.g. "2.0.11"; optional in the JSON (a backend.json written before it existed)
    images_url: str = ""  # the OTA image server (simulator.backend.images), for `download: fetch`; optional too
    # The broker's TLS (simulator.broker_tls: "astarte" | "openssl"); "" in a backend.json written before it.
    # Why a run records it: a reconnect's TLS handshake is the largest CPU item of a rebooting OTA operation, on
    # both sides, and the two choices cost differently (README, "TLS of the embedded broker").
    broker_tls: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> BackendInfo:
        """Parse `to_json()` output; raises ValueError naming a missing or mistyped field."""
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("backend info: expected a JSON object")
        values: dict[str, str] = {}
        for f in fields(cls):
            value = doc.get(f.name, f.default if isinstance(f.default, str) else None)
            if not isinstance(value, str):
                raise ValueError(f"backend info: field {f.name!r} missing or not a string")
            values[f.name] = value
        return cls(**values)

    @property
    def broker_host(self) -> str:
        return self.broker_url.split("://", 1)[-1].rsplit(":", 1)[0]

    @property
    def broker_port(self) -> int:
        return int(self.broker_url.rstrip("/").rsplit(":", 1)[1])

    def client_env(self) -> dict[str, str]:
        """Environment that makes an unmodified SDK verify the pairing server and broker against our CA."""
        return {"REQUESTS_CA_BUNDLE": self.ca_file, "SSL_CERT_FILE": self.ca_file}
