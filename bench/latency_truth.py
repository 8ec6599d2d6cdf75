"""Latency truth: does fleetsim report the latency the network really added, and does Locust add any?

    python bench/latency_truth.py --quick
    python bench/latency_truth.py --devices 1000 --delays 10 --phase 6 --cycles 3 --compare 300,1000

Part 1 (proxy): simulator.faults.proxy (as a subprocess, ProxyProcess) sits between the devices and the
embedded backend's mosquitto and holds every chunk exactly D ms in each direction (timerfd release,
simulator/faults/timerfd.py). The pairing server hands out the proxy's URL, so every device goes through it.
One child plays a steady scenario (bench.common.steady_scenario, ProcessFleet + drive_device, lean) while the
proxy's delay alternates 0, D, 0, D ... in phases of --phase seconds (connect once, drift hits both alike);
publish->ack (SendRecord acked - sent, what fleetsim reports) p50 per phase, first --settle s of a phase
skipped; reported difference = median p50 of the D phases - median p50 of the 0 phases.
Expected: each QoS 2 round trip (PUBLISH->PUBREC, PUBREL->PUBCOMP; MQTT 3.1.1 section 4.3.3) crosses the
proxy twice, so a PUBCOMP is 2 round trips x 2 x D = 4 D later (40 ms at D = 10 ms); one round trip (PUBREC,
or a QoS 1 PUBACK) would be 2 D. Goal: |difference - 4 D| <= 1 ms at 1,000 devices.

Part 2 (issue 5): publish->ack p50 of the real Locust run (the spine's LocustDriver, DeviceUser) against a
plain-gevent run of the same scenario (ProcessFleet + drive_device without Locust), direct to the broker,
alternating, at 300 and 1,000 devices; medians of --rounds runs each (n in the result). Goal:
|p50 Locust - p50 plain| <= 1 ms.
Writes bench/results/latency_truth.json.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--child" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    check_goal,
    emit,
    host_info,
    median,
    percentile,
    raise_fd_limit,
    run_child,
    save_result,
    start_backend,
    text_table,
)
from bench.fleet_runs import embedded_target, plain_fleet_run, record_stats, steady_scenario

__all__ = ["main", "phase_p50s"]

QOS2_ROUND_TRIPS = 2


def _set_delay(control_port: int, ms: float) -> None:
    """The proxy subprocess's control protocol (simulator.faults.proxy): one JSON line each way."""
    import socket

    with socket.create_connection(("127.0.0.1", control_port), timeout=10) as sock:
        sock.sendall(json.dumps({"op": "set_delay", "ms": ms}).encode() + b"\n")
        with sock.makefile("rb") as f:
            reply = json.loads(f.readline())
    if not reply.get("ok"):
        raise RuntimeError(f"proxy refused set_delay: {reply}")


def phase_p50s(
    samples: list[tuple[float, float]], start: float, phase_s: float, delays: list[float], settle_s: float
) -> list[dict[str, Any]]:
    """(sent wall time, ack ms) samples -> p50 per phase; a phase is [start + k*phase_s + settle, end)."""
    out = []
    for k, delay in enumerate(delays):
        lo, hi = start + k * phase_s + settle_s, start + (k + 1) * phase_s
        acks = [ms for sent, ms in samples if lo <= sent < hi]
        out.append({"phase": k, "delay_ms": delay, "samples": len(acks), "p50_ms": percentile(acks, 50)})
    return out


def child_proxy(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import gevent

    delays = [d for _ in range(args.cycles) for d in (0.0, args.delay)]
    duration = len(delays) * args.phase
    scenario = steady_scenario(args.devices, args.rate, duration, realm=info["realm"])
    marks: list[float] = []

    def switch(fleet: Any) -> None:
        for k, delay in enumerate(delays):
            due = fleet.run_start + k * args.phase
            gevent.sleep(max(0.0, due - fleet.clock.monotonic()))  # the phase schedule itself
            _set_delay(info["proxy_control_port"], delay)
            marks.append(fleet.clock.wall())

    pubrec = _time_pubrec()
    records, run = plain_fleet_run(embedded_target(info), scenario, during=switch)
    samples = [
        (r.sent, (r.acked - r.sent) * 1000)
        for r in records
        if r.sent is not None and r.acked is not None and r.error is None
    ]
    phases = phase_p50s(samples, run["run_start_wall"], args.phase, delays, args.settle)
    base = median(p["p50_ms"] for p in phases if p["delay_ms"] == 0)
    held = median(p["p50_ms"] for p in phases if p["delay_ms"] == args.delay)
    rec_phases = phase_p50s(pubrec, run["run_start_wall"], args.phase, delays, args.settle)
    rec_base = median(p["p50_ms"] for p in rec_phases if p["delay_ms"] == 0)
    rec_held = median(p["p50_ms"] for p in rec_phases if p["delay_ms"] == args.delay)
    return {
        "devices": args.devices,
        "rate": args.rate,
        "delay_ms": args.delay,
        "connect_s": run["connect_s"],
        "pubrec_phases": rec_phases,
        "pubrec_difference_ms": None if rec_base is None or rec_held is None else round(rec_held - rec_base, 3),
        "phases": phases,
        "p50_at_0_ms": base,
        "p50_at_d_ms": held,
        "difference_ms": None if base is None or held is None else round(held - base, 3),
        "late_switch_ms": [round((m - run["run_start_wall"] - k * args.phase) * 1000, 2) for k, m in enumerate(marks)],
        "stats": record_stats(records, run["planned_events"], duration),
    }


def _time_pubrec() -> list[tuple[float, float]]:
    """Bench-only probe of ONE round trip: (publish wall time, publish -> PUBREC ms) for every QoS 2 publish of
    this process's lean clients. fleetsim reports PUBCOMP (two round trips); this shows the first alone, the
    figure a 2 D round trip must move by D x 2. Wraps LeanClient.publish and paho's _handle_pubrec (v3.1.1:
    the packet is the 2-byte message id) at class level, in the benchmark child only."""
    import struct
    import time

    from simulator.transports.lean_client import LeanClient

    samples: list[tuple[float, float]] = []
    sent: dict[tuple[int, int], tuple[float, float]] = {}
    publish, handle_pubrec = LeanClient.publish, LeanClient._handle_pubrec

    def timed_publish(self: Any, *a: Any, **kw: Any) -> Any:
        t_mono, t_wall = time.monotonic(), time.time()
        info = publish(self, *a, **kw)
        if info.mid:
            sent[(id(self), info.mid)] = (t_mono, t_wall)
        return info

    def received(self: Any, mid: int) -> None:
        t = sent.pop((id(self), mid), None)
        if t is not None:
            samples.append((t[1], (time.monotonic() - t[0]) * 1000))

    def timed_pubrec(self: Any) -> Any:
        received(self, struct.unpack("!H", bytes(self._in_packet["packet"][:2]))[0])
        return handle_pubrec(self)

    LeanClient.publish = timed_publish  # type: ignore[method-assign]
    LeanClient._handle_pubrec = timed_pubrec  # type: ignore[method-assign]
    lean_pubrec = getattr(LeanClient, "_lean_pubrec", None)
    if lean_pubrec is not None:  # the lean read path handles a PUBREC itself, without paho's _handle_pubrec
        def timed_lean_pubrec(self: Any, mid: int) -> Any:
            received(self, mid)
            return lean_pubrec(self, mid)

        LeanClient._lean_pubrec = timed_lean_pubrec
    return samples


def child_compare(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    scenario = steady_scenario(args.devices, args.rate, args.duration, realm=info["realm"])
    target = embedded_target(info)
    if args.child == "plain":
        records, run = plain_fleet_run(target, scenario)
        return {"engine": "plain", **run, **record_stats(records, run["planned_events"], args.duration)}
    from simulator.locust_adapter.runner import LocustDriver
    from simulator.run.spec import RunSettings, RunSpec

    # The run spine's Locust driver (a local runner, DeviceUser, the stats bridge), as `fleetsim run` plays it.
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-") as tmp:
        spec = RunSpec(scenario, RunSettings(results_root=Path(tmp), quiet=True), target=target)
        bounded = spec.bounded_plan()
        outcome = LocustDriver().drive(spec, bounded)
    records = list(outcome.recorder.send_log)
    return {"engine": "locust", "partial": outcome.partial,
            **record_stats(records, bounded.plan.planned_events, args.duration)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000, help="part 1 fleet size")
    ap.add_argument("--rate", type=float, default=500.0, help="OTAEvents per second (whole fleet)")
    ap.add_argument("--delay", type=float, default=10.0, help="D: proxy hold time per chunk, each way (ms)")
    ap.add_argument("--phase", type=float, default=6.0, help="seconds per delay phase")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds skipped at the start of a phase")
    ap.add_argument("--cycles", type=int, default=3, help="0/D phase pairs")
    ap.add_argument("--compare", default="300,1000", help="part 2 fleet sizes ('' to skip)")
    ap.add_argument("--duration", type=float, default=10.0, help="part 2 run length (s)")
    ap.add_argument("--rounds", type=int, default=2, help="part 2 alternating rounds")
    ap.add_argument("--skip-proxy", action="store_true", help="part 2 only")
    ap.add_argument("--quick", action="store_true", help="3 cycles of 3 s phases; part 2: 3 rounds of 5 s")
    ap.add_argument("--child", choices=["proxy", "plain", "locust"], help=argparse.SUPPRESS)
    ap.add_argument("--info", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        raise_fd_limit(args.devices * 2 + 200)
        info = json.loads(args.info)
        emit(child_proxy(info, args) if args.child == "proxy" else child_compare(info, args))
        return 0
    if args.quick:
        args.cycles, args.phase, args.duration, args.rounds = 3, 3.0, 5.0, 3
    from simulator.faults.proxy_process import ProxyProcess

    expected = QOS2_ROUND_TRIPS * 2 * args.delay
    doc: dict[str, Any] = {"bench": "latency_truth", "host": host_info(), "goals": {}}
    backend = start_backend("bench", collector=False)
    try:
        info = json.loads(backend.info.to_json())
        common = [
            "--rate",
            str(args.rate),
            "--delay",
            str(args.delay),
            "--phase",
            str(args.phase),
            "--settle",
            str(args.settle),
            "--cycles",
            str(args.cycles),
            "--duration",
            str(args.duration),
        ]
        if not args.skip_proxy:
            proxy = ProxyProcess(backend.info.broker_host, backend.info.broker_port)
            port = proxy.start()
            direct_url = backend.pairing.broker_url
            backend.pairing.broker_url = f"mqtts://127.0.0.1:{port}/"  # devices now connect through it
            try:
                res = run_child(
                    [
                        __file__,
                        "--child",
                        "proxy",
                        "--devices",
                        str(args.devices),
                        *common,
                        "--info",
                        json.dumps({**info, "proxy_control_port": proxy.control_port}),
                    ],
                    timeout_s=600,
                )
            finally:
                backend.pairing.broker_url = direct_url
                proxy.stop()
            doc["proxy"] = {**res, "expected_difference_ms": expected}
            diff = res.get("difference_ms")
            doc["goals"]["proxy_difference_ms"] = {
                "goal": f"within {expected:g} +- 1",
                "value": diff,
                "devices": args.devices,
                "ok": check_goal(diff, f"within {expected:g} +- 1"),
            }
            rec_diff, rec_expected = res.get("pubrec_difference_ms"), 2 * args.delay
            doc["goals"]["pubrec_difference_ms"] = {
                "goal": f"within {rec_expected:g} +- 1",
                "value": rec_diff,
                "devices": args.devices,
                "ok": check_goal(rec_diff, f"within {rec_expected:g} +- 1"),
            }
            print(f"latency_truth: D={args.delay:g} ms -> PUBCOMP +{diff} ms (expected {expected:g}), "
                  f"PUBREC +{rec_diff} ms (expected {rec_expected:g})", file=sys.stderr)
        sizes = [int(s) for s in args.compare.split(",") if s]
        rows = []
        for size in sizes:
            runs: dict[str, list[dict[str, Any]]] = {"locust": [], "plain": []}
            for _ in range(args.rounds):
                for engine in ("locust", "plain"):
                    # same traffic for both engines: one OTAEvent per device per second
                    res = run_child(
                        [
                            __file__,
                            "--child",
                            engine,
                            "--devices",
                            str(size),
                            *common,
                            "--rate",
                            str(size),
                            "--info",
                            json.dumps(info),
                        ],
                        timeout_s=600,
                    )
                    runs[engine].append(res)
                    print(
                        f"latency_truth: {size} devices {engine}: ack p50 "
                        f"{(res.get('ack_ms') or {}).get('p50', res.get('error'))} ms",
                        file=sys.stderr,
                    )
            p50 = {e: median((r.get("ack_ms") or {}).get("p50") for r in rs) for e, rs in runs.items()}
            delta = None if None in p50.values() else round(p50["locust"] - p50["plain"], 3)  # type: ignore[operator]
            doc.setdefault("compare", {})[str(size)] = {
                "runs": runs,
                "p50_ms": p50,
                "n": {e: sum(1 for r in rs if (r.get("ack_ms") or {}).get("p50") is not None)
                      for e, rs in runs.items()},
                "locust_minus_plain_ms": delta,
            }
            doc["goals"][f"locust_vs_plain_{size}"] = {
                "goal": "abs <= 1.0",
                "value": delta,
                "devices": size,
                "ok": check_goal(delta, "abs <= 1.0"),
            }
            rows.append(
                {
                    "devices": size,
                    "locust p50 ms": p50["locust"],
                    "plain p50 ms": p50["plain"],
                    "difference ms": delta,
                }
            )
        if rows:
            print(text_table(rows, list(rows[0])), file=sys.stderr)
    finally:
        backend.stop()
    save_result("latency_truth", doc)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
