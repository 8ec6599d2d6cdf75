"""What TLS the embedded backend's broker speaks: a choice shared by its app and the CLIs that start it.

"astarte" (the default): at most TLS 1.2 and no TLS session ticket, as Astarte's broker (VerneMQ); "openssl":
mosquitto's OpenSSL defaults, TLS 1.3 with 2 session tickets per handshake. The sources, and how each broker is
made to speak it: simulator.backend.broker (BrokerConfig.broker_tls).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BROKER_TLS_CHOICES", "DEFAULT_BROKER_TLS", "BrokerTls"]

BrokerTls = Literal["astarte", "openssl"]
BROKER_TLS_CHOICES: tuple[BrokerTls, ...] = ("astarte", "openssl")
DEFAULT_BROKER_TLS: BrokerTls = "astarte"
