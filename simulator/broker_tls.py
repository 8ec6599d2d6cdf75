"""What TLS the embedded backend's broker speaks: a choice shared by its app and the CLIs that start it.

"astarte" (the default): at most TLS 1.2 and no TLS session ticket, as Astarte's broker (VerneMQ); "openssl":
mosquitto's OpenSSL defaults, TLS 1.3 with 2 session tickets per handshake. The sources, and how each broker is
made to speak it: simulator.backend.broker (BrokerConfig.broker_tls).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BROKER_TLS_CHOICES", "DEFAULT_BROKER_TLS", "BrokerTls", "choices_help", "with_tls"]

BrokerTls = Literal["astarte", "openssl"]
BROKER_TLS_CHOICES: tuple[BrokerTls, ...] = ("astarte", "openssl")
DEFAULT_BROKER_TLS: BrokerTls = "astarte"


# One description per choice: what the CLIs' --broker-tls help and a run's reports say of it.
_DESCRIPTIONS: dict[str, str] = {
    "astarte": "TLS as Astarte's broker (at most 1.2, no session ticket)",
    "openssl": "TLS of OpenSSL's defaults (1.3, 2 session tickets per handshake)",
}


def choices_help() -> str:
    """The --broker-tls help of `fleetsim backend` and `fleetsim run`: each choice and what it speaks."""
    return "; ".join(f"{choice}{' (default)' if choice == DEFAULT_BROKER_TLS else ''}: {_DESCRIPTIONS[choice]}"
                     for choice in BROKER_TLS_CHOICES)


def with_tls(label: str, choice: str) -> str:
    """For people (the backend's banner, a run's console and report): the broker's `label` and the TLS it spoke,
    "mosquitto 2.0.11, TLS as Astarte's broker (at most 1.2, no session ticket)"; `label` alone when no choice
    was recorded (a real Astarte's broker, whose TLS is its own, or a file written before the field existed)."""
    said = _DESCRIPTIONS.get(choice, f"TLS {choice!r}" if choice else "")
    return f"{label}, {said}" if said else label
