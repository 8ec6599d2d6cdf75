"""The embedded backend's MQTT broker: its configuration and the protocol every broker implements.

The broker plays Astarte's VerneMQ + astarte_vmq_plugin (docs/protocol.md section 1): MQTT 3.1.1 over mutual TLS,
identity = client-certificate CN `<realm>/<device_id>`, a device may publish/subscribe only under its own
prefix, and one privileged identity (`admin_cn`) may read and write everything (the collector and the campaign
driver). Two implementations: mosquitto (simulator.backend.mosquitto) when its binary is found, otherwise
the pip-only amqtt broker (simulator.backend.amqtt_broker), which has a much lower ceiling; the choice is
simulator.backend.broker_select.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

__all__ = ["ADMIN_CN", "Broker", "BrokerConfig", "BrokerKind"]

# The collector / campaign identity's certificate CN; it gets `topic readwrite #`.
ADMIN_CN = "fleetsim-admin"

# TLS session tickets (BrokerConfig.tls_session_tickets). What Astarte's broker does: none, over TLS 1.2 only.
# Astarte terminates device TLS at VerneMQ: the operator's broker service is a plain TCP (LoadBalancer) service to
# VerneMQ's port 8883 (astarte-kubernetes-operator internal/defaultingress/broker_ingress.go; its administrator
# docs, "Setting up the Cluster": TLS is terminated at VerneMQ level since Astarte 1.0.1); `spec.vernemq.sslListener`
# sets VERNEMQ_ENABLE_SSL_LISTENER (internal/reconcile/vernemq.go), and astarte_vmq_plugin's docker/bin/vernemq.sh
# then writes `listener.ssl.default` with `require_certificate`, `use_identity_as_username` and
# `tls_version = tlsv1.2`. VerneMQ's TLS is Erlang/OTP `ssl` (apps/vmq_server/src/vmq_ssl.erl: `versions` from
# tls_version, no `session_tickets` option), whose server default for session_tickets is `disabled` (lib/ssl/src/
# ssl_config.erl, opt_tickets) and which resumes TLS 1.2 by session id (its standards-compliance guide lists no
# RFC 5077 tickets).
# The embedded mosquitto negotiates TLS 1.3 (its `tls_version tlsv1.2` is a minimum) and its OpenSSL sends 2
# tickets; the default (None) leaves that as it was, because no ticket over TLS 1.3 is not what Astarte does
# either: after the client's last handshake flight the broker then sends nothing, so a client with Nagle on (paho,
# hence the SDK: socket.create_connection, no TCP_NODELAY) holds its CONNECT until the broker's delayed ACK (~40 ms
# on Linux). `bench/broker_tickets.py --clients paho,paho_tls12 --rounds 7 --connects 40` (2026-12-07, 2 cores,
# load ~4): a paho connect (TCP + mutual TLS + CONNECT/CONNACK) took 47.4 ms of wall time with 0 tickets vs
# 5.4 ms with 2, median of 7 rounds; a paho client capped at TLS 1.2, what Astarte negotiates, 3.2 ms with 0.
# The same bench has what the tickets cost a TCP_NODELAY client (the lean transport) and the broker in CPU.

BrokerKind = Literal["auto", "mosquitto", "amqtt"]


@dataclass(frozen=True)
class BrokerConfig:
    """What a broker needs. `port` 0 = pick a free ephemeral port at start().

    `state_dir` holds the generated config, ACL and log files (None: the directory of `cert_file`, which is
    the CA's state dir). `verbose_log` makes mosquitto log at debug level: needed to count ACL denials
    ("Denied PUBLISH" is a debug-level line in mosquitto 2.0), at a cost of several log lines per message:
    ~700 bytes and ~20 us of mosquitto CPU per QoS 2 OTAEvent (bench/collector_cost.py: 96.8 vs 78.5 us a
    message, medians of 2 on a loaded 2-core machine), read from a pipe by a relay process that caps it on disk
    and forwards the refusals (simulator.backend.log_relay, simulator.backend.broker_log).
    `tls_session_tickets`: TLS session tickets sent after each full handshake. None (the default): the broker's
    TLS library decides (OpenSSL's default, 2, with the host's OpenSSL configuration untouched); N: exactly N
    (simulator.backend.openssl_conf), 0 as Astarte's VerneMQ, which also speaks only TLS 1.2 (the comment on TLS
    session tickets above: why 0 over TLS 1.3 is not the default). No client of ours resumes with a ticket (a
    rebooted device does a full handshake): they only cost CPU.
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
    tls_session_tickets: int | None = None

    def __post_init__(self) -> None:
        t = self.tls_session_tickets
        if t is not None and (isinstance(t, bool) or t < 0):
            raise ValueError(f"tls_session_tickets: expected a count >= 0, got {self.tls_session_tickets!r}")

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

    @property
    def version(self) -> str: ...  # e.g. "2.0.11"; "" when unknown (said in the run's summary)

    def refusals(self) -> dict[str, int]: ...
