"""Which broker the embedded backend runs: mosquitto when its binary is found, else the pip-only amqtt.

mosquitto is looked for on PATH and then in the sbin folders where distributions install it (Debian and Ubuntu
put `/usr/sbin/mosquitto`, often off a non-root user's PATH; a source build uses `/usr/local/sbin`): without
this, a machine that has mosquitto silently got the pip-only amqtt broker, whose latency is ~10x worse.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from simulator.backend.broker import Broker, BrokerConfig

__all__ = ["SBIN_DIRS", "find_mosquitto", "select_broker"]

# Searched after PATH, in this order (FHS: system binaries for administrators live in the sbin folders).
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def find_mosquitto(path: str | None = None, sbin_dirs: tuple[str, ...] | None = None) -> str | None:
    """The mosquitto binary's path: PATH first (`path` overrides the environment's), then `sbin_dirs`
    (default SBIN_DIRS)."""
    found = shutil.which("mosquitto", path=path)
    if found is not None:
        return found
    for folder in SBIN_DIRS if sbin_dirs is None else sbin_dirs:
        candidate = Path(folder) / "mosquitto"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def select_broker(kind: str, config: BrokerConfig) -> Broker:
    """The broker for `kind`: "mosquitto", "amqtt", or "auto" (mosquitto when found, else amqtt).

    Raises ValueError on an unknown kind and FileNotFoundError when mosquitto is asked for but absent.
    """
    if kind not in ("auto", "mosquitto", "amqtt"):
        raise ValueError(f"unknown broker {kind!r}: expected auto, mosquitto or amqtt")
    binary = find_mosquitto() if kind != "amqtt" else None
    if kind == "mosquitto" and binary is None:
        raise FileNotFoundError(f"mosquitto not found on PATH nor in the sbin folders ({', '.join(SBIN_DIRS)})")
    if binary is not None:
        from simulator.backend.mosquitto import MosquittoBroker

        return MosquittoBroker(config, binary=binary)
    # Imported lazily: amqtt pulls in its own asyncio stack.
    from simulator.backend.amqtt_broker import AmqttBroker

    broker: Broker = AmqttBroker(config)
    return broker
