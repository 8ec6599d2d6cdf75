"""CPU of one rebooting OTA operation on a LeanTransport, without sockets or TLS (issue 16).

    python bench/lean_op_cost.py                                  # this tree
    python bench/lean_op_cost.py --baseline-root /tmp/main-tree   # A/B: each round runs both, alternating
    python bench/lean_op_cost.py --layer device --baseline-root /tmp/main-tree   # the device and recorder too

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

`--layer device` plays the operation the plan gives a device instead (lifecycle.plans.plan_random, the
campaign's lifecycle of bench/campaign_capacity.py: Acknowledged, Downloading 0..100, Deploying 0..100, Deployed,
Rebooting, REBOOT, the 5 firmware properties, Success) through a VirtualDevice whose sends go to the run's
recorder callbacks (run.recording.recorder_callbacks on a MetricsRecorder that spools its seconds and keeps no
send log, as run.gevent_driver and run.live_books wire them): `run_due` -> `_execute` -> `_publish` ->
the transport as above -> on_ack -> SendRecord -> MetricsRecorder.on_send/on_ack. The reboot is the device's
own (disconnect, then `_reconnect` at its end); only the transport's `connect` is the in-memory one (CONNACK
and the handshake's acks served from memory: no pairing, no TLS). The clock is a VirtualClock set to each due
point, the plan at time_scale 100 (an operation every 25 ms: ~1,000 OTAEvents per second of the recorder's
time, its seconds filling and sealing as a 40 operations/s campaign's do). The 5 firmware properties (QoS 2,
acked) are part of each operation there; the DISCONNECT is the reboot's.

Figure: process CPU time (user + system) per operation, median of `--rounds` rounds of `--operations` each, each
root in its own child process, alternating A, B, A, B...; `--save NAME` writes bench/results/NAME.json.
`--calls`: Python function calls per operation instead (cProfile's count over the same part: the same from one
run to the next, where CPU time on a shared machine moves by 20 % between rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


class _Meter:
    """The timed part of a child: process CPU seconds, or with LEAN_OP_COST_CALLS=1 in the environment the
    Python function calls made (cProfile's count: the same every run, where CPU time moves with the machine's
    load)."""

    def __init__(self) -> None:
        self.profile: Any = None
        if os.environ.get("LEAN_OP_COST_CALLS") == "1":
            import cProfile

            self.profile = cProfile.Profile()
            self.profile.enable()
        self.t0 = time.process_time()

    def stop(self) -> float:
        if self.profile is None:
            return time.process_time() - self.t0
        import pstats

        self.profile.disable()
        return float(pstats.Stats(self.profile).total_calls)  # type: ignore[attr-defined]


def _wire() -> tuple[_Services, Any, Any]:
    """A LeanTransport and its LeanClient wired as LeanFleet.new_client wires them (no socket yet)."""
    from paho.mqtt.enums import CallbackAPIVersion

    from simulator.transports import lean
    from simulator.transports.lean_client import LeanClient
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
    return services, dev, client


def _serve(services: _Services, dev: Any, sock: _MemorySocket, answer: bytes) -> None:
    """The broker's bytes arrive: the loop serves the connection until nothing is left (requeues)."""
    sock.inbox += answer
    services.loop.again = True
    while services.loop.again:
        services.loop.again = False
        dev.handle_read()


def _acks(kind: int, mids: list[int]) -> bytes:
    return b"".join(bytes((kind, 2, mid >> 8, mid & 255)) for mid in mids)


def _connect(services: _Services, dev: Any, client: Any) -> _MemorySocket:
    """A new connection without session: CONNACK, then the Astarte handshake acked (SUBACK, PUBREC, PUBCOMP)."""
    import paho.mqtt.client as mqtt

    from simulator.transports import lean
    from simulator.transports.lean_loop import Slot

    sock = _MemorySocket()
    client._sock = sock
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECT_ASYNC
    dev.state, dev.slot = lean.CONNECTING, Slot(-1, dev, None)
    _serve(services, dev, sock, b"\x20\x02\x00\x00")  # CONNACK: accepted, no session -> the Astarte handshake
    mids = sorted(client._out_messages)
    subs = sorted(dev.handshake_mids - set(mids))
    _serve(services, dev, sock, b"".join(bytes((0x90, 3, m >> 8, m & 255, 2)) for m in subs) + _acks(0x50, mids))
    _serve(services, dev, sock, _acks(0x70, mids))
    if not dev.handshake_done.is_set():
        raise SystemExit("the handshake did not complete")
    return sock


def _child(operations: int) -> float:
    """CPU seconds per operation in this process (the simulator on sys.path): the transport layer."""
    services, dev, client = _wire()
    dev.props = {("io.edgehog.devicemanager.BaseImage", "/version"): "1.0.0",
                 ("io.edgehog.devicemanager.OSInfo", "/name"): "Linux"}
    acked: list[float] = []

    def on_ack(at: float, error: str | None) -> None:
        acked.append(at)

    def serve(sock: _MemorySocket, answer: bytes) -> None:
        _serve(services, dev, sock, answer)

    acks = _acks
    event = {"requestUUID": "4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10", "status": "Downloading",
             "statusProgress": 40, "statusCode": "", "message": ""}
    t_ms = 1_700_000_123_456
    meter = _Meter()
    for _ in range(operations):
        sock = _connect(services, dev, client)
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
    cpu = meter.stop() / operations
    if len(acked) != operations * EVENTS:
        raise SystemExit(f"{len(acked)} acks for {operations * EVENTS} OTAEvents")
    return cpu


_TIME_SCALE = 100.0  # the plan's device seconds per wall second: an operation spans ~21 ms (module docstring)
_PERIOD_US = 25_000  # one operation every 25 ms of the VirtualClock: 40 operations/s, ~1,040 OTAEvents/s


def _device_child(operations: int) -> float:
    """CPU seconds per operation in this process: the plan's operation played by a VirtualDevice into the run's
    recorder (module docstring), the transport's bytes served from memory."""
    import uuid

    import numpy as np

    from simulator.clock import VirtualClock
    from simulator.device import VirtualDevice
    from simulator.lifecycle.plans import Firmware, plan_random
    from simulator.metrics.recorder import MetricsRecorder
    from simulator.run.recording import recorder_callbacks
    from simulator.scenario.model import Distribution, RandomLifecycle
    from simulator.transports.base import OnboardingTimes

    services, dev, client = _wire()
    clock = VirtualClock(start=1000.0)
    services.clock = clock  # type: ignore[assignment]
    recorder = MetricsRecorder(clock)
    recorder.spool_seconds()  # run.gevent_driver: this process writes the results, old seconds leave memory
    recorder.keep_send_log = False  # run.live_books: the send log goes to the books, not to memory
    callbacks = recorder_callbacks(recorder)
    state: dict[str, Any] = {}

    def connect() -> OnboardingTimes:  # LeanTransport.connect without pairing and TLS (the device's reboots)
        dev.connack.clear()
        dev.handshake_done.clear()
        state["sock"] = _connect(services, dev, client)
        return OnboardingTimes()

    dev.connect = connect  # an instance attribute: the device's `_connect` calls it
    old, new = Firmware("esp-idf", "5.1.0", "b100"), Firmware("esp-idf", "5.1.1", "b101")
    device = VirtualDevice(0, dev.device_id, dev, clock, run_start=clock.monotonic(), firmware=old,
                           send_sink=callbacks.on_record, onboarding_sink=callbacks.on_onboarding)
    life = RandomLifecycle(outcomes=(("success", 1.0),), download_duration=Distribution("fixed", value=1.0),
                           deploy_duration=Distribution("fixed", value=0.5),
                           reboot_duration=Distribution("fixed", value=0.5))  # bench/campaign_capacity.py's
    rng = np.random.default_rng(16)
    plans = []
    for k in range(operations):  # planned before the clock starts: planning is not the device's step
        plan = plan_random(0, life, rng, str(uuid.UUID(int=k + 1, version=4)), (k + 1) * _PERIOD_US,
                           _TIME_SCALE, old, new)
        plans.append(plan.actions)
        old, new = new, old
    device.start()
    _settle(services, dev, client, state)
    if recorder.totals["sent"] or device.pending_acks:
        raise SystemExit("startup left publishes unacked")
    published = sum(1 for actions in plans for a in actions if a.interface == "io.edgehog.devicemanager.OTAEvent")
    meter = _Meter()
    for actions in plans:
        device.extend_plan(actions)
        while (due := device.next_due()) is not None:
            clock.set(due)
            device.run_due(due, hold_reboot=True)  # the driver lets in-flight acks land before a reboot
            _settle(services, dev, client, state)
    cpu = meter.stop() / operations
    device.stop()
    totals = recorder.totals
    if (totals["sent"], totals["acked"]) != (published, published) or totals["ack_errors"] or recorder.error_reasons:
        raise SystemExit(f"{totals} for {published} OTAEvents, errors {recorder.error_reasons}")
    if device.counters.reboots != operations or device.counters.property_errors:
        raise SystemExit(f"device counters {device.counters}")
    return cpu


def _settle(services: _Services, dev: Any, client: Any, state: dict[str, Any]) -> None:
    """The broker acknowledges every QoS 2 message in flight: all PUBRECs, then all PUBCOMPs."""
    if client._sock is None or not client._out_messages:
        return
    mids = sorted(client._out_messages)
    _serve(services, dev, state["sock"], _acks(0x50, mids))
    _serve(services, dev, state["sock"], _acks(0x70, mids))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--operations", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--layer", choices=("transport", "device"), default="transport")
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--save", default="", help="also write bench/results/SAVE.json")
    ap.add_argument("--calls", action="store_true",
                    help="Python function calls per operation (cProfile's count, deterministic) instead of CPU")
    ap.add_argument("--child", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(_device_child(args.child) if args.layer == "device" else _child(args.child))
        return 0
    sys.path.insert(0, str(ROOT))  # the parent only: each child imports the simulator/ of the root it measures
    from bench.common import ab_samples, save_result, stamped

    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
    if args.calls:
        os.environ["LEAN_OP_COST_CALLS"] = "1"  # the children's meter (_Meter)
    figure = "calls_per_operation_median" if args.calls else "cpu_ms_per_operation_median"
    samples = ab_samples(str(Path(__file__).resolve()), roots, args.rounds, args.operations,
                         1 if args.calls else 1000, ("--layer", args.layer))
    doc: dict[str, Any] = {"layer": args.layer, "operations_per_round": args.operations, "rounds": args.rounds}
    for name, values in samples.items():
        doc[name] = {figure: round(statistics.median(values), 4), "rounds_in_order": [round(v, 4) for v in values]}
    if "baseline" in doc:
        doc["ratio_median"] = round(doc["this"][figure] / doc["baseline"][figure], 3)
    print(json.dumps(doc, indent=2))
    if args.save:
        print(save_result(args.save, stamped("lean_op_cost", doc)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
