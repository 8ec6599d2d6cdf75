"""CPU of the transport layer of one rebooting OTA operation on a LeanTransport, without sockets or TLS (issue 16).

    python bench/lean_op_cost.py                                  # this tree
    python bench/lean_op_cost.py --baseline-root /tmp/main-tree   # A/B: each round runs both, alternating

bench/campaign_capacity.py measures the whole generator on a real backend, and on a shared machine its figure
moves by a millisecond or more per operation from one run to the next (load, late and dropped operations).
This isolates the part the lean transport's Python owns -- simulator.transports.lean, wire, paho's client and
LeanClient's fast steps -- so that a change to it can be compared in one invocation: a LeanTransport whose paho
client has an in-memory socket (bytes written are counted, bytes read are the broker's answers, served by
`handle_read` as the I/O loop serves them) plays one operation as the campaign does: CONNACK (no session), the
Astarte handshake of the shipped interfaces (SUBSCRIBEs, introspection, emptyCache, 2 properties,
producer/properties, all QoS 2: SUBACK, PUBREC, PUBREL, PUBCOMP), 26 OTAEvents at QoS 2 (validated, BSON,
PUBLISH, PUBREC, PUBREL, PUBCOMP, on_ack) with the new BaseImage version set before the last, DISCONNECT. What it
leaves out: TLS and the kernel (native_tls), pairing, the I/O loop's watchers, the device and its recorder.

Figure: process CPU time (user + system) per operation, median of `--rounds` rounds of `--operations` each, each
root in its own child process, alternating A, B, A, B...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 26  # Acknowledged, 11 Downloading, 11 Deploying, Deployed, Rebooting, Success
_TOPIC = "campaign/DEVICE0000000000000000/io.edgehog.devicemanager.OTAEvent/event"
_PAYLOAD = b"\x99" * 160  # an OTAEvent's BSON is ~150-170 bytes


class _MemorySocket:
    """Takes every write whole; `recv` hands out what the test queued, then 'no data yet'."""

    def __init__(self) -> None:
        self.inbox = bytearray()
        self.sent = 0

    def send(self, data: Any) -> int:
        self.sent += len(data)
        return len(data)

    def recv(self, bufsize: int) -> bytes:
        if not self.inbox:
            raise BlockingIOError
        out = bytes(self.inbox[:bufsize])
        del self.inbox[:bufsize]
        return out

    def close(self) -> None:
        self.inbox.clear()

    def fileno(self) -> int:
        return -1


class _Loop:
    """The lean I/O loop as a transport sees it (lean_loop.IoLoop), without watchers: a requeue is noted."""

    def __init__(self) -> None:
        self.again = False

    def want_write(self, slot: Any, on: bool) -> None:
        pass

    def requeue(self, slot: Any, events: int) -> None:
        self.again = True

    def add_member(self, channel: Any) -> None:
        pass

    def remove_member(self, channel: Any) -> None:
        pass

    def unregister(self, slot: Any) -> None:
        pass


class _Services:
    """What a LeanTransport reads of its fleet (lean_services.LeanServices) for connect-less operation."""

    def __init__(self) -> None:
        from simulator.clock import MonotonicClock
        from simulator.interfaces.loader import load_interfaces
        from simulator.transports import wire
        from simulator.transports.base import Endpoint

        self.endpoint = Endpoint(realm="campaign", pairing_url="http://127.0.0.1:1", agent_jwt="")
        self.interfaces = wire.as_interfaces(load_interfaces())
        self.introspection = wire.introspection_payload(self.interfaces.values())
        self.clock = MonotonicClock()
        self.loop = _Loop()
        self.stopped = False


def _child(operations: int) -> float:
    """CPU seconds per operation in this process (the simulator on sys.path)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from simulator.transports import lean
    from simulator.transports.lean_client import LeanClient
    from simulator.transports.lean_loop import Slot
    from simulator.transports.paho_tuning import install_shared_ack_fields, install_shared_message_condition

    install_shared_message_condition()
    install_shared_ack_fields()
    services = _Services()
    dev = lean.LeanTransport(services, "DEVICE0000000000000000")  # type: ignore[arg-type]
    client = LeanClient(CallbackAPIVersion.VERSION2)  # as LeanFleet.new_client wires it
    client.max_inflight_messages_set(20)
    client.suppress_exceptions = True
    client.on_connect = dev._on_connect
    client.on_disconnect = dev._on_disconnect
    client.on_publish = dev._on_publish
    client.on_subscribe = dev._on_subscribe
    client.on_message = dev._on_message
    dev.client = client
    dev.props = {("io.edgehog.devicemanager.BaseImage", "/version"): "1.0.0",
                 ("io.edgehog.devicemanager.OSInfo", "/name"): "Linux"}
    acked: list[float] = []

    def on_ack(at: float, error: str | None) -> None:
        acked.append(at)

    def serve(sock: _MemorySocket, answer: bytes) -> None:
        """The broker's bytes arrive: the loop serves the connection until nothing is left (requeues)."""
        sock.inbox += answer
        services.loop.again = True
        while services.loop.again:
            services.loop.again = False
            dev.handle_read()

    def acks(kind: int, mids: list[int]) -> bytes:
        return b"".join(bytes((kind, 2, mid >> 8, mid & 255)) for mid in mids)

    event = {"requestUUID": "4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10", "status": "Downloading",
             "statusProgress": 40, "statusCode": "", "message": ""}
    t_ms = 1_700_000_123_456
    t0 = time.process_time()
    for _ in range(operations):
        sock = _MemorySocket()
        client._sock = sock  # type: ignore[assignment]
        client._state = mqtt._ConnectionState.MQTT_CS_CONNECT_ASYNC
        dev.state, dev.slot = lean.CONNECTING, Slot(-1, dev, None)
        serve(sock, b"\x20\x02\x00\x00")  # CONNACK: accepted, no session -> the Astarte handshake
        mids = sorted(client._out_messages)
        subs = sorted(dev.handshake_mids - set(mids))
        serve(sock, b"".join(bytes((0x90, 3, m >> 8, m & 255, 2)) for m in subs) + acks(0x50, mids))
        serve(sock, acks(0x70, mids))
        if not dev.handshake_done.is_set():
            raise SystemExit("the handshake did not complete")
        for k in range(EVENTS):
            if k == EVENTS - 1:  # after the reboot, the new version (lean.py set_property), then Success
                dev.set_property("io.edgehog.devicemanager.BaseImage", "/version", "1.0.1")
                mid = client._last_mid
                serve(sock, acks(0x50, [mid]))
                serve(sock, acks(0x70, [mid]))
            dev.publish("io.edgehog.devicemanager.OTAEvent", "/event", event, t_ms + k, on_ack)
            mid = client._last_mid
            serve(sock, acks(0x50, [mid]))
            serve(sock, acks(0x70, [mid]))
        dev.disconnect()
        if client._out_messages or client._sock is not None or dev.pending:
            raise SystemExit("the operation did not complete")
    cpu = (time.process_time() - t0) / operations
    if len(acked) != operations * EVENTS:
        raise SystemExit(f"{len(acked)} acks for {operations * EVENTS} OTAEvents")
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--operations", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(_child(args.child))
        return 0
    sys.path.insert(0, str(ROOT))  # the parent only: each child imports the simulator/ of the root it measures
    from bench.common import ab_samples

    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
    samples = ab_samples(str(Path(__file__).resolve()), roots, args.rounds, args.operations, 1000)
    doc: dict[str, Any] = {"operations_per_round": args.operations, "rounds": args.rounds}
    for name, values in samples.items():
        values.sort()
        doc[name] = {"cpu_ms_per_operation_median": round(values[len(values) // 2], 4),
                     "all": [round(v, 4) for v in values]}
    if "baseline" in doc:
        doc["ratio_median"] = round(doc["this"]["cpu_ms_per_operation_median"]
                                    / doc["baseline"]["cpu_ms_per_operation_median"], 3)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
