"""An in-memory property cache for astarte-device-sdk 0.14.0 (the SDK's `database=` argument).

Why in memory is faithful: the SDK reads its property database only to (a) resend device-owned properties
and build the `control/producer/properties` list after a clean-session connect and (b) purge server-owned
properties on `control/consumer/properties` (device_mqtt.py `__send_device_owned_properties`,
`__purge_server_properties`).
Neither changes what goes on the wire as long as the cache outlives a reconnect -- which it does: one instance
lives as long as the virtual device (its SdkTransport), across reboots. What we avoid is the default
`AstarteDatabaseSQLite`: one SQLite file per device and a new sqlite3 connection per call (database.py), i.e.
1,000 files and a disk write per property set for a 1,000-device fleet.

Semantics mirror AstarteDatabaseSQLite where it is well defined, including its quirk that storing a falsy
value (None, 0, "", False, empty list) deletes the entry (`if not value: self.delete_prop(...)`), so property
resends are the same as the real SDK's. Where SQLite misbehaves we do not copy the bug: `load_prop` of a
missing entry returns None (SQLite raises TypeError), `clear()` works (SQLite runs invalid SQL).
"""

from __future__ import annotations

import threading

from astarte.device.database import AstarteDatabase

__all__ = ["MemoryDatabase"]


class MemoryDatabase(AstarteDatabase):  # type: ignore[misc]  # the SDK ships no type information
    """Properties keyed by (interface, path) -> (interface major, value); insertion order kept, as SQLite's
    rowid order, so resends happen in the order the properties were first set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # store (caller) and load/purge (paho loop thread) may interleave
        self._props: dict[tuple[str, str], tuple[int, object]] = {}

    def store_prop(self, interface: str, major: int, path: str, value: object | None) -> None:
        if not value:  # AstarteDatabaseSQLite.store_prop: falsy means "unset"
            self.delete_prop(interface, path)
            return
        with self._lock:
            self._props[(interface, path)] = (major, value)

    def load_prop(self, interface: str, major: int, path: str) -> object | None:
        with self._lock:
            entry = self._props.get((interface, path))
            if entry is None:
                return None
            if entry[0] != major:  # a stale major version is dropped on read, like the SQLite store
                del self._props[(interface, path)]
                return None
            return entry[1]

    def delete_prop(self, interface: str, path: str) -> None:
        with self._lock:
            self._props.pop((interface, path), None)

    def delete_props_from_interface(self, interface: str) -> None:
        with self._lock:
            for key in [k for k in self._props if k[0] == interface]:
                del self._props[key]

    def clear(self) -> None:
        with self._lock:
            self._props.clear()

    def load_all_props(self) -> list[tuple[str, int, str, object]]:
        with self._lock:
            return [(iface, major, path, value) for (iface, path), (major, value) in self._props.items()]

    def count(self) -> int:
        """Number of stored properties. (Deliberately not __len__: DeviceMqtt tests `database if database
        else AstarteDatabaseSQLite(...)`, and an empty cache with __len__ would be falsy -> SQLite.)"""
        with self._lock:
            return len(self._props)
