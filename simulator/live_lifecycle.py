"""What a backend-driven device answers with: its startup properties, the lifecycle chosen per request, and
the OTARequest it accepts. Split from simulator.device (which re-exports these names)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simulator.download import Downloader
from simulator.events import Value
from simulator.lifecycle.plans import BASE_IMAGE_INTERFACE, Firmware
from simulator.scenario.model import LifecycleMixEntry, RandomLifecycle, ScriptedLifecycle

__all__ = ["LiveLifecycle", "parse_request", "startup_properties"]


def startup_properties(index: int, fw: Firmware) -> list[tuple[str, str, Value]]:
    """What the runtime publishes at start (interfaces in simulator/interfaces/): plausible, per-device."""
    p = "io.edgehog.devicemanager."
    return [
        (p + "SystemInfo", "/serialNumber", f"FS{index:010d}"),
        (p + "SystemInfo", "/partNumber", "FLEETSIM-VD-1"),
        (p + "OSInfo", "/osName", fw.name),
        (p + "OSInfo", "/osVersion", fw.version),
        (BASE_IMAGE_INTERFACE, "/name", fw.name),
        (BASE_IMAGE_INTERFACE, "/version", fw.version),
        (BASE_IMAGE_INTERFACE, "/buildId", fw.build_id),
        (p + "HardwareInfo", "/cpu/architecture", "x86_64"),
        (p + "HardwareInfo", "/cpu/model", "85"),
        (p + "HardwareInfo", "/cpu/modelName", "fleetsim virtual CPU"),
        (p + "HardwareInfo", "/cpu/vendor", "fleetsim"),
        (p + "HardwareInfo", "/mem/totalBytes", 2 * 1024**3),
        (p + "RuntimeInfo", "/name", "edgehog-device-runtime"),
        (p + "RuntimeInfo", "/url", "https://github.com/edgehog-device-manager/edgehog-device-runtime"),
        (p + "RuntimeInfo", "/version", "0.9.0"),
        (p + "RuntimeInfo", "/environment", "fleetsim virtual device"),
    ]


@dataclass(frozen=True)
class LiveLifecycle:
    """How a backend-driven device lives an Update: mix entries (random ones; scripted entries are skipped),
    the device's own stream (simulator.plan.device_rng) and the image a successful OTA installs."""

    mix: tuple[LifecycleMixEntry, ...]
    rng: np.random.Generator
    target: Firmware
    time_scale: float = 1.0
    downloader: Downloader | None = None  # `download: fetch` (simulator.transports.http_download)

    def choose(self) -> RandomLifecycle | ScriptedLifecycle:
        """The mix entry answering the next Update, drawn from the device's stream (one draw per request)."""
        entries = [e for e in self.mix if (e.random is not None or e.scripted is not None) and e.weight > 0]
        if not entries:
            return RandomLifecycle()
        weights = np.array([e.weight for e in entries], dtype=np.float64)
        u = float(self.rng.random())
        i = min(int(np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right")), len(entries) - 1)
        spec = entries[i].random or entries[i].scripted
        assert spec is not None
        return spec


def parse_request(value: Value) -> tuple[str, str, str] | None:
    """(operation, uuid, url) of a well-formed OTARequest object, else None."""
    if not isinstance(value, Mapping):
        return None
    operation, uuid, url = value.get("operation"), value.get("uuid"), value.get("url")
    if operation not in ("Update", "Cancel") or not isinstance(uuid, str) or not isinstance(url, str):
        return None
    try:
        uuidlib.UUID(uuid)
    except ValueError:
        return None
    assert isinstance(operation, str)
    return operation, uuid, url
