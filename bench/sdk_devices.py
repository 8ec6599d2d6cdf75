"""Benchmark: N sdk-transport devices (one unmodified astarte-device-sdk DeviceMqtt each) in ONE process.

Starts the embedded backend (mosquitto), connects N devices (registration, CSR, mutual TLS), then publishes
one OTAEvent per device per second at QoS 2 on an absolute per-device grid with a random phase (docs/design.md
principle 3) and records publish->PUBCOMP latency in an HDR histogram. Prints one JSON document:

    connect: seconds, devices/s, failures, onboarding phase medians
    rss: MB before/after connect, KB per device
    publish: sent, acked, errors, latency p50/p90/p99/max (ms), send lag p99 (ms), CPU % of one core

Usage: python bench/sdk_devices.py --devices 100 --seconds 10 [--gevent] [--gc-freeze] [--out file.json]
Expect (docs/protocol.md section 7): p50 ~1-2 ms up to ~300 devices, collapse towards ~1 s at 1,000 with threads.
"""

from __future__ import annotations

import argparse
import sys

if __name__ == "__main__" and "--gevent" in sys.argv:  # must precede every other import (as Locust does)
    from gevent import monkey

    monkey.patch_all()

import gc
import heapq
import json
import os
import random
import resource
import statistics
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from simulator.backend.server import EmbeddedBackend
from simulator.transports.base import Endpoint, OnboardingTimes
from simulator.transports.credentials import CredentialsCache
from simulator.transports.sdk import SDK_COMFORT_DEVICES, SdkFleet, SdkTransport

__all__ = ["main", "run"]

IFACES = Path(__file__).resolve().parents[1] / "simulator" / "interfaces"
OTA_EVENT = "io.edgehog.devicemanager.OTAEvent"


def _device_id(i: int) -> str:
    import base64

    raw = i.to_bytes(16, "big")  # deterministic, valid 128-bit ids: 22 chars of unpadded base64url
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raise_fd_limit(devices: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, devices * 6 + 1024))  # 3 fds per device here, as many in mosquitto
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present) * 1000, 2) if present else None


def _connect_all(fleet: SdkFleet, n: int, parallel: int) -> tuple[list[SdkTransport], list[OnboardingTimes],
                                                                  list[str]]:
    transports = [fleet.transport(_device_id(i + 1)) for i in range(n)]
    times: list[OnboardingTimes] = []
    errors: list[str] = []

    def one(t: SdkTransport) -> None:
        try:
            times.append(t.connect())
        except Exception as exc:  # counted and reported, the run goes on with the rest
            errors.append(str(exc))

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, transports))
    return [t for t in transports if t.connected], times, errors


def _publish_phase(transports: list[SdkTransport], seconds: float, seed: int) -> dict[str, Any]:
    latency = HdrHistogram(1, 60_000_000, 3)  # microseconds, 1 us .. 60 s: ack - actual send
    corrected = HdrHistogram(1, 60_000_000, 3)  # ack - intended send (coordinated omission corrected)
    lag = HdrHistogram(1, 60_000_000, 3)
    lock = threading.Lock()
    counts = {"sent": 0, "acked": 0, "errors": 0, "publish_errors": 0}
    rng = random.Random(seed)
    start = time.monotonic() + 0.5
    # Absolute grid: device d publishes at start + phase_d + k seconds (never sleep-after-send).
    heap = [(start + rng.random(), k) for k in range(len(transports))]
    heapq.heapify(heap)
    end = start + seconds
    proc = psutil.Process()
    cpu0 = proc.cpu_times()
    wall0 = time.monotonic()
    payload = {"requestUUID": "7f4c3e0a-1111-4222-8333-944455556666", "status": "Downloading",
               "statusProgress": 0, "statusCode": "", "message": ""}
    while heap:
        due, k = heap[0]
        if due >= end:
            break
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)  # sleep-ok: pacing the load generator to its absolute schedule
            continue
        heapq.heapreplace(heap, (due + 1.0, k))
        sent = time.monotonic()
        lag.record_value(max(1, int((sent - due) * 1e6)))

        def on_ack(acked_at: float, error: str | None, sent: float = sent, due: float = due) -> None:
            with lock:
                if error is None:
                    counts["acked"] += 1
                    latency.record_value(max(1, int((acked_at - sent) * 1e6)))
                    corrected.record_value(max(1, int((acked_at - due) * 1e6)))
                else:
                    counts["errors"] += 1

        try:
            transports[k].publish(OTA_EVENT, "/event", payload, int(time.time() * 1000), on_ack)
            counts["sent"] += 1
        except Exception:
            counts["publish_errors"] += 1
    sending_s = time.monotonic() - start
    drain_until = time.monotonic() + 5.0
    while time.monotonic() < drain_until and counts["acked"] + counts["errors"] < counts["sent"]:
        time.sleep(0.05)  # sleep-ok: waiting for the last PUBCOMPs of a benchmark, bounded to 5 s
    cpu1 = proc.cpu_times()
    busy = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    ms = 1000.0
    return {
        **counts,
        "latency_ms": {q: round(latency.get_value_at_percentile(p) / ms, 3)
                       for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
        "latency_from_intended_ms": {q: round(corrected.get_value_at_percentile(p) / ms, 3)
                                     for q, p in (("p50", 50), ("p99", 99), ("max", 100))},
        "achieved_rate_per_s": round(counts["sent"] / sending_s, 1) if sending_s > 0 else None,
        "send_lag_ms": {"p50": round(lag.get_value_at_percentile(50) / ms, 3),
                        "p99": round(lag.get_value_at_percentile(99) / ms, 3)},
        "cpu_percent_of_one_core": round(100.0 * busy / (time.monotonic() - wall0), 1),
    }


def run(devices: int, seconds: float, parallel: int, gc_freeze: bool, seed: int) -> dict[str, Any]:
    fd_limit = _raise_fd_limit(devices)
    proc = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-") as tmp, \
            EmbeddedBackend(Path(tmp) / "backend", realm="bench", broker="mosquitto") as backend:
        info = backend.info
        assert info is not None
        endpoint = Endpoint(info.realm, info.pairing_url, info.agent_jwt, ca_file=info.ca_file)
        fleet = SdkFleet(endpoint, IFACES, CredentialsCache(Path(tmp) / "credentials", "bench"),
                         connect_timeout=60.0)
        gc.collect()
        rss0 = proc.memory_info().rss
        t0 = time.monotonic()
        connected, times, errors = _connect_all(fleet, devices, parallel)
        connect_s = time.monotonic() - t0
        gc.collect()
        rss1 = proc.memory_info().rss
        if gc_freeze:
            gc.freeze()  # docs/protocol.md section 7: full GC passes over ramp-up garbage set the p99
        try:
            publish = _publish_phase(connected, seconds, seed) if connected else {}
        finally:
            fleet.stop()
        return {
            "bench": "sdk_devices",
            "mode": "gevent" if "gevent" in sys.modules and _patched() else "threads",
            "devices": devices,
            "comfort_devices": SDK_COMFORT_DEVICES,
            "past_comfort": devices > SDK_COMFORT_DEVICES,
            "fd_limit": fd_limit,
            "cpus": os.cpu_count(),
            "connect": {
                "seconds": round(connect_s, 2),
                "devices_per_s": round(len(connected) / connect_s, 1) if connect_s else None,
                "connected": len(connected),
                "failures": len(errors),
                "first_error": errors[0] if errors else None,
                "parallel": parallel,
                "median_ms": {phase: _median([getattr(t, phase) for t in times])
                              for phase in ("registration", "certificate", "pairing_info", "connect",
                                            "handshake")},
            },
            "rss": {"before_mb": round(rss0 / 2**20, 1), "after_connect_mb": round(rss1 / 2**20, 1),
                    "kb_per_device": round((rss1 - rss0) / 1024 / max(1, len(connected)), 1)},
            "publish": {"seconds": seconds, "rate_per_device_hz": 1.0, "qos": 2, **publish},
            "gc_freeze": gc_freeze,
        }


def _patched() -> bool:
    from gevent import monkey

    return bool(monkey.is_module_patched("threading"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="publish phase length (s)")
    parser.add_argument("--parallel", type=int, default=16, help="concurrent connects during ramp-up")
    parser.add_argument("--gevent", action="store_true", help="monkey.patch_all() first, as Locust does")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after ramp-up")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)  # paho's v1 callback API, used by the SDK
    result = run(args.devices, args.seconds, args.parallel, args.gc_freeze, args.seed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.common import stamped

    text = json.dumps(stamped("sdk_devices", result, argv), indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
