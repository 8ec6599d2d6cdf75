"""Child process for the lean transport tests: gevent monkey-patched FIRST (as Locust does), then N lean
devices against a running embedded backend (BackendInfo JSON on argv[1]); prints one JSON result line.

Kept out of pytest's process so that patching never leaks into other tests; the backend stays in the parent
with real threads.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402

from simulator.events import OTA_EVENT_INTERFACE, OTA_EVENT_PATH  # noqa: E402
from simulator.transports.base import Endpoint  # noqa: E402
from simulator.transports.lean_fleet import LeanFleet  # noqa: E402
from simulator.transports.wire import as_interfaces  # noqa: E402

BURST = 30  # QoS 2 publishes per device at once, more than paho's (and the SDK's) 20 in flight


def _interfaces() -> dict[str, Any]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "simulator" / "interfaces"
    return as_interfaces({p.stem: json.loads(p.read_text()) for p in sorted(root.glob("*.json"))})


def main() -> int:
    info = json.loads(sys.argv[1])
    cfg = json.loads(sys.argv[2])
    n, burn_fds = int(cfg["devices"]), int(cfg.get("burn_fds", 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    burned = [os.open("/dev/null", os.O_RDONLY) for _ in range(burn_fds)]  # push sockets past fd 1024
    endpoint = Endpoint(
        realm=info["realm"],
        pairing_url=info["pairing_url"],
        agent_jwt=info["agent_jwt"],
        ca_file=info["ca_file"],
        credentials_dir=cfg["credentials_dir"],
        source_addresses=tuple(cfg.get("sources", ())),
    )
    fleet = LeanFleet(endpoint, _interfaces(), timeout_s=20.0, reconnect_min_s=0.05, reconnect_max_s=0.5)
    out: dict[str, Any] = {"devices": n}
    ids = cfg["ids"]
    pool = gevent.pool.Pool(64)
    t0 = time.monotonic()
    times = pool.map(lambda d: fleet.transport(d).connect(), ids)
    out["connect_s"] = time.monotonic() - t0
    out["connected"] = sum(fleet.transport(d).connected for d in ids)
    out["session_present"] = sum(t.session_present for t in times)
    out["handshake_max_s"] = max(t.handshake or 0 for t in times)
    out["registered"] = sum(t.registration is not None for t in times)
    out["max_fd"] = max(fleet.transport(d).client.socket().fileno() for d in ids)  # type: ignore[union-attr]
    received: list[Any] = []
    qos0_acks: list[Any] = []
    status = {"availMemoryBytes": 1 << 33, "bootId": "b", "taskCount": 7, "uptimeMillis": 12345}

    def on_data(d: str, i: str, p: str, v: Any) -> None:
        received.append([d, i, p, v])
        # Publishing from inside the callback (paho holds its callback lock here), QoS 0 on the same client:
        # must neither deadlock the shared loop nor lose the ack.
        fleet.transport(d).publish(
            "io.edgehog.devicemanager.SystemStatus",
            "/systemStatus",
            status,
            int(time.time() * 1000),
            lambda at, err: qos0_acks.append(err),
        )

    for d in ids:
        fleet.transport(d).on_data(lambda i, p, v, d=d: on_data(d, i, p, v))
        fleet.transport(d).set_property("io.edgehog.devicemanager.BaseImage", "/version", "1.0.0")
    out["t_connected"] = time.monotonic() - t0
    print("CONNECTED", flush=True)  # the parent now pushes OTARequests
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(received) < int(cfg.get("expect_data", 0)):
        gevent.sleep(0.05)  # sleep-ok: bounded wait for data the parent pushes
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(qos0_acks) < len(received):
        gevent.sleep(0.05)  # sleep-ok: bounded wait for the QoS 0 acks
    out["received"] = received
    out["qos0_acks"] = qos0_acks

    def publish_round(tag: str, devs: list[str], then: Any = None, each: int = 1) -> tuple[int, list[str], list[float]]:
        """Each of `devs` publishes `each` QoS 2 OTAEvents at once; `then()` runs right after; wait for every
        on_ack."""
        done = gevent.event.Event()
        acks: list[float] = []
        errors: list[str] = []

        def on_ack(sent: float) -> Any:
            def cb(at: float, err: str | None) -> None:
                (errors.append(err) if err else acks.append(at - sent))
                if len(acks) + len(errors) == len(devs) * each:
                    done.set()

            return cb

        for i, d in enumerate(devs):
            for progress in range(each):
                value = {
                    "requestUUID": f"00000000-0000-4000-8000-{i:012d}",
                    "status": tag,
                    "statusProgress": progress,
                    "statusCode": "",
                    "message": "",
                }
                fleet.transport(d).publish(
                    OTA_EVENT_INTERFACE, OTA_EVENT_PATH, value, int(time.time() * 1000), on_ack(time.monotonic())
                )
        if then is not None:
            then()
        done.wait(30)
        return len(acks), errors, sorted(acks)

    def wait_reconnected(devs: list[str], before: dict[str, int]) -> int:
        deadline = time.monotonic() + 20

        def back() -> list[str]:
            return [
                d for d in devs if fleet.transport(d).connected and fleet.transport(d).reconnects > before[d]
            ]

        while time.monotonic() < deadline and len(back()) < len(devs):
            gevent.sleep(0.05)  # sleep-ok: polling the fleet from the outside, bounded by the deadline
        return len(back())

    def kill(devs: list[str]) -> None:
        for d in devs:
            fleet.transport(d).client.socket().shutdown(2)  # type: ignore[union-attr]

    out["acked1"], out["errors1"], lat = publish_round("Acknowledged", ids)
    out["p50_ms"] = lat[len(lat) // 2] * 1000 if lat else None
    # Unexpected loss: the sockets of 5 devices die under paho; they must come back by themselves.
    victims = ids[:5]
    before = {d: fleet.transport(d).reconnects for d in victims}
    kill(victims)
    out["reconnected"] = wait_reconnected(victims, before)
    out["acked2"], out["errors2"], _ = publish_round("Downloading", ids)
    # Loss while QoS 2 publishes are in flight: paho retransmits after the reconnect, the acks still come.
    before = {d: fleet.transport(d).reconnects for d in victims}
    acked, errors, _ = publish_round("Deployed", victims, lambda: kill(victims))
    out["inflight_acked"], out["inflight_errors"] = acked, errors
    out["inflight_reconnected"] = wait_reconnected(victims, before)
    # Explicit disconnect + connect again (a reboot), then one more round.
    for d in victims:
        fleet.transport(d).disconnect()
        fleet.transport(d).connect()
    out["acked3"], out["errors3"], _ = publish_round("Deploying", ids)
    # A burst past paho's 20 in flight per device: the rest queued, sent as acks free slots, every one acked.
    out["burst_acked"], out["burst_errors"], _ = publish_round("Downloading", ids, each=BURST)
    # Explicit disconnect with publishes in flight: abandoned, each reported "disconnected" exactly once.
    out["abandon_acked"], out["abandon_errors"], _ = publish_round(
        "Rebooting", victims, lambda: [fleet.transport(d).disconnect() for d in victims]
    )
    out["t_end"] = time.monotonic() - t0
    out["stats"] = fleet.stats()
    contexts = fleet.device_contexts
    out["device_contexts"] = len(contexts) if contexts is not None else None
    fleet.stop()
    for fd in burned:
        os.close(fd)
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
