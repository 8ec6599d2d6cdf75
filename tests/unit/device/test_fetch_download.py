"""`download: fetch` on a backend-driven device: a scripted downloader drives the machine (virtual clock)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.clock import VirtualClock
from simulator.device import LiveLifecycle, VirtualDevice
from simulator.download import DoneCallback, DownloadOutcome, ProgressCallback
from simulator.events import OTA_EVENT_INTERFACE, OTA_REQUEST_INTERFACE
from simulator.lifecycle.plans import Firmware
from simulator.scenario.model import Distribution, LifecycleMixEntry, RandomLifecycle
from simulator.transports.memory import MemoryBroker

DEV = "IAYKCbApnZezAMo0w7uWyw"
U = "11111111-1111-4111-8111-111111111111"
URL = "http://images.test/os.raucb"


@dataclass
class Fetch:
    url: str
    ota_id: str
    progress: ProgressCallback
    done: DoneCallback
    delay_s: float
    canceled: bool = False

    def cancel(self) -> None:
        self.canceled = True


@dataclass
class ScriptedDownloader:
    fetches: list[Fetch] = field(default_factory=list)

    def start(self, url: str, ota_id: str, on_progress: ProgressCallback, on_done: DoneCallback,
              delay_s: float = 0.0) -> Fetch:
        self.fetches.append(Fetch(url, ota_id, on_progress, on_done, delay_s))
        return self.fetches[-1]


class Rig:
    def __init__(self) -> None:
        self.clock = VirtualClock(start=100.0)
        self.broker = MemoryBroker(clock=self.clock)
        self.downloader = ScriptedDownloader()
        spec = RandomLifecycle(outcomes=(("success", 1.0),), download="fetch",
                               deploy_duration=Distribution("fixed", value=10.0),
                               reboot_duration=Distribution("fixed", value=5.0))
        live = LiveLifecycle((LifecycleMixEntry(1.0, random=spec),), np.random.default_rng(1),
                             Firmware("edgehog-os", "1.1.0", "b2"), downloader=self.downloader)
        self.device = VirtualDevice(0, DEV, self.broker(DEV), self.clock, run_start=100.0,
                                    firmware=Firmware("edgehog-os", "1.0.0", "b1"), live=live)
        self.device.start()
        self.broker.deliver(DEV, OTA_REQUEST_INTERFACE, "/request", {"operation": "Update", "uuid": U, "url": URL})

    def run_all(self) -> None:
        while (due := self.device.next_due()) is not None and due <= self.clock.monotonic() + 60:
            self.clock.set(max(due, self.clock.monotonic()))
            self.device.run_due()

    def ota(self) -> list[tuple[str, int, str]]:
        out = []
        for m in self.broker.published_by(DEV):
            if m.interface == OTA_EVENT_INTERFACE and m.payload is not None:
                v = m.payload["v"]
                assert isinstance(v, dict)
                out.append((v["status"], v["statusProgress"], v["statusCode"]))
        return out


def test_progress_comes_from_the_bytes_then_the_drawn_rest_follows() -> None:
    rig = Rig()
    (fetch,) = rig.downloader.fetches
    assert (fetch.url, fetch.ota_id, fetch.delay_s) == (URL, U, 0.0)
    rig.run_all()
    for received in (20_000, 45_000, 100_000):
        rig.clock.advance(0.5)
        fetch.progress(received, 100_000)
        rig.run_all()
    rig.clock.advance(0.1)
    fetch.done(DownloadOutcome(200, 100_000, 100_000, 1.6))
    rig.run_all()
    statuses = rig.ota()
    assert statuses[:5] == [("Acknowledged", 0, ""), ("Downloading", 0, ""), ("Downloading", 20, ""),
                            ("Downloading", 45, ""), ("Downloading", 100, "")]
    assert statuses[5] == ("Deploying", 0, "") and statuses[-1] == ("Success", 0, "")
    records = rig.device.responder.records()  # type: ignore[union-attr]
    assert records[0].download is not None and records[0].download.bytes == 100_000
    assert records[0].download.attempts == 1 and records[0].download.errors == ()


def test_five_failed_attempts_end_in_failure_internal_error() -> None:
    rig = Rig()
    rig.run_all()
    for attempt in range(1, 6):
        fetch = rig.downloader.fetches[-1]
        fetch.progress(10_000, 100_000)
        fetch.done(DownloadOutcome(200, 10_000, 100_000, 0.2, "short_read"))
        rig.clock.advance(2.0**attempt)  # retry_download sleeps 2^i s (time_scale 1)
        rig.run_all()
    delays = [f.delay_s for f in rig.downloader.fetches]
    assert delays == [0.0, 2.0, 4.0, 8.0, 16.0]  # the 5th failure starts no 6th attempt
    statuses = rig.ota()
    assert [s for s in statuses if s[0] == "Error"] == [("Error", 0, "NetworkError")] * 5
    assert statuses[-1] == ("Failure", 0, "InternalError")
    record = rig.device.responder.records()[0]  # type: ignore[union-attr]
    assert record.download is not None and record.download.errors == ("short_read",) * 5


def test_a_non_2xx_body_is_refused_like_a_bad_bundle() -> None:
    rig = Rig()
    rig.run_all()
    fetch = rig.downloader.fetches[-1]
    fetch.progress(300, 300)
    fetch.done(DownloadOutcome(404, 300, 300, 0.01))
    rig.run_all()
    assert rig.ota()[-2:] == [("Downloading", 100, ""), ("Failure", 0, "InvalidBaseImage")]


def test_cancel_aborts_the_download_and_ignores_its_late_callbacks() -> None:
    rig = Rig()
    rig.run_all()
    fetch = rig.downloader.fetches[-1]
    fetch.progress(50, 100)
    rig.run_all()
    rig.broker.deliver(DEV, OTA_REQUEST_INTERFACE, "/request", {"operation": "Cancel", "uuid": U, "url": ""})
    assert fetch.canceled and rig.ota()[-1] == ("Failure", 0, "Canceled")
    fetch.progress(100, 100)
    fetch.done(DownloadOutcome(200, 100, 100, 0.1))
    assert rig.device.next_due() is None and rig.ota()[-1] == ("Failure", 0, "Canceled")
