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

from simulator.broker_tls import BROKER_TLS_CHOICES, DEFAULT_BROKER_TLS, BrokerTls

__all__ = ["ADMIN_CN", "Broker", "BrokerConfig", "BrokerKind"]

# The collector / campaign identity's certificate CN; it gets `topic readwrite #`.
ADMIN_CN = "fleetsim-admin"

# What TLS the broker speaks (BrokerConfig.broker_tls, simulator.broker_tls). Astarte's broker: TLS 1.2 only, no
# session tickets.
# Astarte terminates device TLS at VerneMQ: the operator's broker service is a plain TCP (LoadBalancer) service to
# VerneMQ's port 8883 (astarte-platform/astarte-kubernetes-operator internal/defaultingress/broker_ingress.go; its
# administrator docs, "Setting up the Cluster": TLS is terminated at VerneMQ level since Astarte 1.0.1), and
# `spec.vernemq.sslListener` sets VERNEMQ_ENABLE_SSL_LISTENER (internal/reconcile/vernemq.go, lib/reconcile/
# vernemq.go in older releases). astarte-platform/astarte_vmq_plugin docker/bin/vernemq.sh then writes
# `listener.ssl.default` with `require_certificate = on`, `use_identity_as_username = on` and
# `listener.ssl.tls_version = tlsv1.2`; without that line VerneMQ's default is the same (vernemq/vernemq
# apps/vmq_server/priv/vmq_server.schema: `listener.ssl.tls_version` {default, "tlsv1.2"};
# apps/vmq_server/src/vmq_ssl.erl: `{versions, proplists:get_value(tls_version, Opts, ['tlsv1.2'])}`). VerneMQ's
# TLS is Erlang/OTP `ssl`, and vmq_ssl.erl passes it no `session_tickets` option, whose server default is
# `disabled` (erlang/otp lib/ssl/src/ssl_config.erl, opt_tickets; OTP's TLS 1.2 resumes by session id, its
# standards-compliance guide lists no RFC 5077 tickets).
# "astarte" (the default) makes the embedded broker speak the same: at most TLS 1.2, no ticket
# (simulator.backend.openssl_conf for mosquitto, SSLContext settings for the amqtt fallback). "openssl" keeps
# mosquitto's OpenSSL defaults, what the embedded backend did until 2026-12-07: TLS 1.3 (mosquitto's
# `tls_version tlsv1.2` is only a minimum) and 2 NewSessionTickets after every handshake.
# Why not TLS 1.3 with no ticket, which is neither: over TLS 1.3 the server then sends nothing after the client's
# last handshake flight, so a client with Nagle on (paho, hence the SDK: socket.create_connection, no
# TCP_NODELAY) holds its CONNECT until the broker's delayed ACK (~40 ms on Linux): `bench/broker_tickets.py`
# at commit 812cd32 (`--clients paho,paho_tls12 --rounds 7 --connects 40`, 2 cores, load ~4): a paho connect
# took 47.4 ms of wall time with 0 tickets over TLS 1.3 vs 5.4 ms with 2, and 3.2 ms with 0 over TLS 1.2.
# What each choice costs a reconnecting client: README, "TLS of the embedded broker".

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
    `broker_tls`: "astarte" (the default): at most TLS 1.2 and no TLS session ticket, as Astarte's VerneMQ;
    "openssl": mosquitto's OpenSSL defaults (TLS 1.3, 2 tickets after each full handshake). Sources and why: the
    comment above BrokerKind. No client of ours resumes with a ticket (a rebooted device does a full
    handshake): tickets only cost CPU.
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
    broker_tls: BrokerTls = DEFAULT_BROKER_TLS

    def __post_init__(self) -> None:
        if self.broker_tls not in BROKER_TLS_CHOICES:
            raise ValueError(f"broker_tls: expected one of {', '.join(BROKER_TLS_CHOICES)}, got {self.broker_tls!r}")

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
