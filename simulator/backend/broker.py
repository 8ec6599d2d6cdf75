"""The embedded backend's MQTT broker: its configuration, the protocol every broker implements, and selection.

The broker plays Astarte's VerneMQ + astarte_vmq_plugin (PROTOCOL.md section 1): MQTT 3.1.1 over mutual TLS,
identity = client-certificate CN `<realm>/<device_id>`, a device may publish/subscribe only under its own
prefix, and one privileged identity (`admin_cn`) may read and write everything (the collector and the campaign
driver). Two implementations: mosquitto (simulator.backend.mosquitto) when the binary is on PATH, otherwise
the pip-only amqtt broker (simulator.backend.amqtt_broker), which has a much lower ceiling.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

__all__ = ["ADMIN_CN", "Broker", "BrokerConfig", "BrokerKind", "select_broker"]

# The collector / campaign identity's certificate CN; it gets `topic readwrite #`.
ADMIN_CN = "fleetsim-admin"

BrokerKind = Literal["auto", "mosquitto", "amqtt"]


@dataclass(frozen=True)
class BrokerConfig:
    """What a broker needs. `port` 0 = pick a free ephemeral port at start().

    `state_dir` holds the generated config, ACL and log files (None: the directory of `cert_file`, which is
    the CA's state dir). `verbose_log` makes mosquitto log at debug level: needed to count ACL denials
    ("Denied PUBLISH" is a debug-level line in mosquitto 2.0), at a cost of several log lines per message.
    """

    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    realm: str
    admin_cn: str = ADMIN_CN
    state_dir: Path | None = None
    verbose_log: bool = True

    @property
    def work_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else Path(self.cert_file).parent


@runtime_checkable
class Broker(Protocol):
    """A running (or startable) broker. `url` is "mqtts://127.0.0.1:<port>/" once started."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def url(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def name(self) -> str: ...

    def refusals(self) -> dict[str, int]: ...


def select_broker(kind: str, config: BrokerConfig) -> Broker:
    """The broker for `kind`: "mosquitto", "amqtt", or "auto" (mosquitto when on PATH, else amqtt).

    Raises ValueError on an unknown kind and FileNotFoundError when mosquitto is asked for but absent.
    """
    if kind not in ("auto", "mosquitto", "amqtt"):
        raise ValueError(f"unknown broker {kind!r}: expected auto, mosquitto or amqtt")
    if kind == "mosquitto" or (kind == "auto" and shutil.which("mosquitto") is not None):
        from simulator.backend.mosquitto import MosquittoBroker

        return MosquittoBroker(config)
    # Imported lazily: amqtt pulls in its own asyncio stack, and its module is written by another engineer.
    from simulator.backend.amqtt_broker import AmqttBroker

    broker: Broker = AmqttBroker(config)
    return broker
