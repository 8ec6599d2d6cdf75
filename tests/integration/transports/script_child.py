"""Child process for the byte-equality test: one device, one transport, one fixed script (fixed `t` values).

argv: BackendInfo JSON, {"transport": "lean"|"sdk", "device_id": ..., "credentials_dir": ...}. gevent patches
first, as under Locust. Prints one JSON line: acks received.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from simulator.clock import MonotonicClock  # noqa: E402
from simulator.events import OTA_EVENT_INTERFACE, OTA_EVENT_PATH  # noqa: E402
from simulator.generator.fleet import make_transport_factory  # noqa: E402
from simulator.generator.target import TargetInfo  # noqa: E402

T0_MS = 1_790_000_000_000
SCRIPT = [
    {"requestUUID": "6f1c7a52-3a0e-4c4e-9d1f-2b8a1e0c9a11", "status": "Acknowledged", "statusProgress": 0,
     "statusCode": "", "message": ""},
    {"requestUUID": "6f1c7a52-3a0e-4c4e-9d1f-2b8a1e0c9a11", "status": "Downloading", "statusProgress": 50,
     "statusCode": "", "message": ""},
    {"requestUUID": "6f1c7a52-3a0e-4c4e-9d1f-2b8a1e0c9a11", "status": "Failure", "statusProgress": 0,
     "statusCode": "InvalidBaseImage", "message": "Unable to read the bundle"},
]


def main() -> int:
    info, cfg = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    target = TargetInfo(kind="embedded", realm=info["realm"], pairing_url=info["pairing_url"],
                        agent_jwt=info["agent_jwt"], ca_file=info["ca_file"],
                        credentials_dir=cfg["credentials_dir"])
    factory, stop = make_transport_factory(cfg["transport"], target, MonotonicClock())
    transport = factory(cfg["device_id"])
    transport.connect()
    transport.set_property("io.edgehog.devicemanager.BaseImage", "/version", "1.0.0")
    transport.set_property("io.edgehog.devicemanager.OSInfo", "/osName", "edgehog-os")
    done = threading.Event()
    acks: list[str | None] = []

    def on_ack(_at: float, error: str | None) -> None:
        acks.append(error)
        if len(acks) == len(SCRIPT):
            done.set()

    for i, payload in enumerate(SCRIPT):
        transport.publish(OTA_EVENT_INTERFACE, OTA_EVENT_PATH, payload, T0_MS + i * 1000, on_ack)
    done.wait(20)
    transport.set_property("io.edgehog.devicemanager.OSInfo", "/osName", None)  # unset: empty payload
    transport.disconnect()
    stop()
    print(json.dumps({"acks": acks}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
