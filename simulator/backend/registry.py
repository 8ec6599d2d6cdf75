"""The Pairing API's device registry: who is registered, their credentials-secret hashes, confirmation state.

Astarte keeps a device's secret as a hash and marks the device confirmed at its first credentials request
(astarte_pairing engine.ex). Here: SHA-256 of a 32-byte random secret, in memory, plus an append-only
JSON-lines journal replayed at start so that SDK devices with cached credentials stay valid when the backend
restarts with the same state dir. Appending one ~120-byte line per change keeps a 1,000-device registration
burst O(n).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DeviceRegistry", "is_device_id"]


def is_device_id(value: object) -> bool:
    """Astarte device id: 128 bits, unpadded base64url, 22 characters (docs/protocol.md section 1)."""
    if not isinstance(value, str) or len(value) != 22:
        return False
    try:
        return len(base64.urlsafe_b64decode(value + "==")) == 16
    except (binascii.Error, ValueError):
        return False


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class _Device:
    secret_sha256: str
    confirmed: bool = False  # True once it asked for a certificate (Astarte: first_credentials_request)


class DeviceRegistry:
    """Registered devices of one realm; thread-safe; persisted as an append-only JSON-lines journal."""

    def __init__(self, journal: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}
        self._journal = journal
        self._fh: Any = None
        if journal is not None:
            self._replay(journal)
            self._fh = journal.open("a", encoding="utf-8")

    def _replay(self, journal: Path) -> None:
        if not journal.exists():
            return
        for line in journal.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                rec = json.loads(line)
                op, dev = rec["op"], rec["id"]
                if op == "register":
                    self._devices[dev] = _Device(rec["sha256"])
                elif op == "confirm" and dev in self._devices:
                    self._devices[dev].confirmed = True
                elif op == "delete":
                    self._devices.pop(dev, None)

    def _log(self, **rec: str) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._fh.flush()

    def register(self, device_id: str) -> str | None:
        """A new credentials secret, or None when the device is registered and already confirmed."""
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
        with self._lock:
            known = self._devices.get(device_id)
            if known is not None and known.confirmed:
                return None
            self._devices[device_id] = _Device(_hash(secret))
            self._log(op="register", id=device_id, sha256=_hash(secret))
        return secret

    def unregister(self, device_id: str) -> bool:
        with self._lock:
            if self._devices.pop(device_id, None) is None:
                return False
            self._log(op="delete", id=device_id)
            return True

    def authenticate(self, device_id: str, secret: str) -> bool:
        dev = self._devices.get(device_id)
        return dev is not None and secrets.compare_digest(dev.secret_sha256, _hash(secret))

    def confirm(self, device_id: str) -> None:
        with self._lock:
            dev = self._devices.get(device_id)
            if dev is not None and not dev.confirmed:
                dev.confirmed = True
                self._log(op="confirm", id=device_id)

    def status(self, device_id: str) -> str:
        dev = self._devices.get(device_id)
        return "confirmed" if dev is not None and dev.confirmed else "pending"

    def __len__(self) -> int:
        return len(self._devices)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
