"""Capacity of a real OTA campaign: every operation reboots (issue 16).

    python bench/campaign_capacity.py                       # 1,000 devices, two run sizes + the paho floor
    python bench/campaign_capacity.py --devices 10000       # the large fleet
    python bench/campaign_capacity.py --rate-factors 0.9,1.5  # then runs at 90% and 150% of the capacity
    python bench/campaign_capacity.py --profile             # py-spy of the larger run (bench/results)
    python bench/campaign_capacity.py --cpu-profile         # its Python stacks by CPU time (bench/cpu_sampler)

The product path: a child process (gevent-patched first, as fleetsim and Locust are) plays a scenario through
the spine's plain driver (simulator.run.gevent_driver.play_fleet + the run's MetricsRecorder and HealthMonitor,
what GeventDriver does) against one embedded backend (mosquitto, mutual TLS, Pairing API, collector) started
here. Every operation is Acknowledged, Downloading 0..100, Deploying 0..100, Deployed, Rebooting, a reboot (the
device disconnects, calls the Pairing API's verify + info as the SDK does on every connect, does a full TLS
handshake and the Astarte handshake), BaseImage/OSInfo with the new version, Success: 26 OTAEvents.

CPU per operation is the generator process's CPU (resource.getrusage: user + system) while the plan plays,
measured at two run sizes; the difference of the two over the difference of their operations removes the
fixed costs (the fleet's stop, the drain), as the issue measured with GNU time. Loss: every planned OTAEvent
must come back as a SendRecord acknowledged without error (device side) and arrive at the collector.

The floor, in the same invocation: bare paho (no gevent, one selector loop) doing the same message sequence per
operation -- 25 OTAEvents at QoS 2, disconnect, Pairing API verify + info on a keep-alive session, reconnect
(TLS handshake), the Astarte handshake, BaseImage/OSInfo, Success -- on already-provisioned devices.

Prints and saves bench/results/campaign_capacity.json, with the machine's load average at each run (the
numbers are CPU time, which a shared machine disturbs less than wall time, but does disturb).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--child" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if "--child" in sys.argv and "--simulator-root" in sys.argv:  # the A/B baseline: another tree's simulator/
    sys.path.insert(0, sys.argv[sys.argv.index("--simulator-root") + 1])

from bench.campaign_floor import run_floor
from bench.common import (
    RESULTS_DIR,
    cpu_seconds,
    emit,
    host_info,
    percentile,
    provision,
    raise_fd_limit,
    run_child,
    save_result,
    start_backend,
)
from bench.fleet_runs import embedded_target

__all__ = ["campaign_scenario", "main"]

REALM = "campaign"
EVENTS_PER_OPERATION = 26  # Acknowledged, 11 Downloading, 11 Deploying, Deployed, Rebooting, Success


def campaign_scenario(devices: int, rate: float, operations: int, seed: int = 16) -> Any:
    """Every operation succeeds and reboots; ~2.5 s each (download 1 s, deploy 0.5 s, reboot 0.5 s of device
    time at time_scale 1), so a device is idle again long before the plan gives it another at <= 300 ops/s
    over >= 1,000 devices."""
    from simulator.scenario.model import (
        ArrivalSpec,
        Distribution,
        FleetSpec,
        LifecycleMixEntry,
        RandomLifecycle,
        Scenario,
    )

    life = RandomLifecycle(outcomes=(("success", 1.0),), download_duration=Distribution("fixed", value=1.0),
                           deploy_duration=Distribution("fixed", value=0.5),
                           reboot_duration=Distribution("fixed", value=0.5))
    return Scenario(name=f"bench-campaign-{devices}x{rate:g}", realm=REALM, seed=seed,
                    fleet=FleetSpec(devices=devices, id_scheme="sequential", id_prefix="camp"),
                    duration=operations / rate, graceful_stop=30.0,
                    arrival=ArrivalSpec(model="constant", rate=rate, count=operations),
                    lifecycle=(LifecycleMixEntry(weight=1.0, random=life),), transport="lean")


# ---- the product child ------------------------------------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Play one campaign in this gevent-patched process; counts, CPU and loss."""
    from simulator.clock import MonotonicClock
    from simulator.events import OTA_EVENT_INTERFACE, ActionKind
    from simulator.generator.fleet import FleetCallbacks
    from simulator.generator.health_monitor import HealthMonitor
    from simulator.metrics.recorder import MetricsRecorder
    from simulator.run.gevent_driver import play_fleet
    from simulator.run.plans import bound_plan, plan_for
    from simulator.run.recording import recorder_callbacks

    if spec.get("cpu_profile"):
        from bench.cpu_sampler import install

        install(Path(spec["cpu_profile"]))
    raise_fd_limit(spec["devices"] + 500)
    import logging

    failures: list[str] = []
    kinds: set[str] = set()

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # The first 5, plus the first of each exception type (a rare kind is the one to read).
            kind = type(record.args[-1]).__name__ if isinstance(record.args, tuple) and record.args else ""
            if len(failures) < 5 or kind not in kinds:
                failures.append(record.getMessage()[:300])
            kinds.add(kind)

    logging.getLogger("fleetsim.device").addHandler(_Keep())
    logging.getLogger("fleetsim.device").setLevel(logging.INFO)
    scenario = campaign_scenario(spec["devices"], spec["rate"], spec["operations"])
    bounded = bound_plan(plan_for(scenario), scenario.duration, scenario.graceful_stop)
    plan = bounded.plan
    # A fresh pass (the run's cursor must not be advanced before the fleet says which devices it keeps).
    if hasattr(plan, "steps"):
        actions = (a for step in plan.steps() if step is not None for a in step.actions)
    else:  # a --baseline-root tree from before the lazy plan (whole per-device action lists)
        actions = (a for i in range(len(plan.device_ids)) for a in plan.actions_for(i))
    planned = sum(1 for a in actions if a.kind is ActionKind.PUBLISH and a.interface == OTA_EVENT_INTERFACE)
    clock = MonotonicClock()
    recorder = MetricsRecorder(clock)
    monitor = HealthMonitor(clock)
    base = recorder_callbacks(recorder)
    records: list[Any] = []
    pairing = {"verify": 0, "info": 0, "connects": 0}
    cpu_at: dict[str, float] = {}
    phases: dict[str, list[float]] = {}  # ms per reconnect phase, after the run's start

    def on_record(rec: Any) -> None:
        records.append(rec)
        base.on_record(rec)

    def on_onboarding(device: str, times: Any) -> None:
        pairing["connects"] += 1
        pairing["verify"] += "verify" in times.extra
        pairing["info"] += times.pairing_info is not None
        if "begin" in cpu_at:
            for name in ("verify", "pairing_info", "connect", "handshake"):
                v = times.extra.get("verify") if name == "verify" else getattr(times, name)
                if v is not None:
                    phases.setdefault(name, []).append(v * 1000)
        base.on_onboarding(device, times)

    def on_begin() -> None:
        cpu_at["begin"] = cpu_seconds()
        cpu_at["wall"] = time.monotonic()
        pairing.update(verify=0, info=0, connects=0)  # count the run's reconnects, not the first onboarding
        monitor.start()

    callbacks = FleetCallbacks(on_record=on_record, on_onboarding=on_onboarding, on_online=base.on_online,
                               on_begin=on_begin)
    cpu0 = cpu_seconds()
    played = play_fleet(scenario, plan, embedded_target(spec["info"], Path(spec["credentials_dir"])),
                        end_s=bounded.end_s, callbacks=callbacks)
    cpu_end, wall_end = cpu_seconds(), time.monotonic()
    health = monitor.stop()
    counters = played.fleet.counters()
    errors: dict[str, int] = {}
    extra: dict[str, int] = {}
    for dev in played.fleet.devices.values():
        for k, v in dev.counters.extra.items():
            extra[k] = extra.get(k, 0) + v
    for r in records:
        if r.error is not None:
            errors[r.error] = errors.get(r.error, 0) + 1
    acked = sum(1 for r in records if r.error is None and r.acked is not None)
    lags = [(r.sent - r.intended) * 1000 for r in records if r.sent is not None]
    play_cpu = cpu_end - cpu_at.get("begin", cpu0)
    play_wall = wall_end - cpu_at.get("wall", wall_end)
    return {
        "devices": spec["devices"], "rate": spec["rate"], "operations": len(plan.operations),
        "planned_events": planned, "records": len(records), "acked": acked, "errors": errors,
        # planned events that never became a SendRecord and were not dropped (counted) either: silent loss
        "unrecorded": planned - len(records) - counters.get("dropped_events", 0),
        "cut_operations": bounded.cut.cut_operations,
        "connect_s": round(played.connect_s, 2), "failed_devices": len(played.fleet.failed),
        "onboarding_cpu_s": round(cpu_at.get("begin", cpu0) - cpu0, 3),
        "play_cpu_s": round(play_cpu, 3), "play_wall_s": round(play_wall, 3),
        "cpu_core_fraction": round(play_cpu / play_wall, 3) if play_wall > 0 else None,
        "cpu_us_per_acked_event": round(play_cpu / acked * 1e6, 1) if acked else None,
        "device_extra": extra, "reconnect_failure_examples": failures,
        "reboots": counters.get("reboots", 0), "reconnect_failures": counters.get("reconnect_failures", 0),
        "reboot_drain_waits": counters.get("reboot_drain_waits", 0),
        "reboot_drain_timeouts": counters.get("reboot_drain_timeouts", 0),
        "late_operations": counters.get("late_operations", 0),
        "dropped_operations": counters.get("dropped_operations", 0),
        "dropped_events": counters.get("dropped_events", 0), "overrun_ms": counters.get("overrun_ms", 0),
        "due_points_late": counters.get("due_points_late", 0),
        "reconnects": pairing["connects"], "pairing_verify": pairing["verify"], "pairing_info": pairing["info"],
        "send_lag_ms": {"p50": _r(percentile(lags, 50)), "p99": _r(percentile(lags, 99)),
                        "max": _r(percentile(lags, 100))},
        "reconnect_phase_ms": {k: {"p50": _r(percentile(v, 50)), "p99": _r(percentile(v, 99))}
                               for k, v in phases.items()},
        "loop_lag_ms": health.loop_lag.summary_ms(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


# ---- the parent -------------------------------------------------------------------------------------------


SETTLE_QUIET_S = 2.0  # the collector's count unchanged this long: its last arrivals are in
SETTLE_MAX_S = 30.0


def _settled_arrivals(collector: Any) -> int:
    """The collector's arrival count once it stops growing (bounded): at 4,000 events/s the collector, in this
    process, may still be working through the broker's last deliveries when the child exits; counting after a
    fixed second called late arrivals lost (acked_not_arrived)."""
    start = time.monotonic()
    count, quiet_since = collector.arrival_count(), time.monotonic()
    while time.monotonic() - start < SETTLE_MAX_S:
        time.sleep(0.25)  # sleep-ok: polling the collector's count
        now_count = collector.arrival_count()
        if now_count != count:
            count, quiet_since = now_count, time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_QUIET_S:
            break
    return int(count)


def _run(info: dict[str, Any], creds: str, devices: int, rate: float, operations: int,
         collector: Any, profile: Path | None = None, simulator_root: str = "",
         cpu_profile: Path | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"info": info, "credentials_dir": creds, "devices": devices, "rate": rate,
                   "operations": operations, "cpu_profile": str(cpu_profile) if cpu_profile else ""}, f)
    argv = [str(Path(__file__).resolve()), "--child", f.name]
    if simulator_root:
        argv += ["--simulator-root", simulator_root]
    before = collector.arrival_count() if collector is not None else 0
    if profile is None:
        out = run_child(argv, timeout_s=600 + operations / rate)
    else:
        out = _profiled(argv, profile, timeout_s=600 + operations / rate)
    if cpu_profile is not None and cpu_profile.exists():
        _compact_folded(cpu_profile)
    if collector is not None and "error" not in out:
        arrived = _settled_arrivals(collector) - before
        out["arrived"] = arrived
        out["acked_not_arrived"] = max(0, out["acked"] - arrived)
    os.unlink(f.name)
    if "error" not in out:
        out["lost"] = sum(out["errors"].values()) + out["unrecorded"] + out.get("acked_not_arrived", 0)
        played = out["operations"] - out.get("dropped_operations", 0)  # dropped ones cost (almost) nothing
        out["cpu_ms_per_operation"] = round(out["play_cpu_s"] / max(1, played) * 1000, 3)
    return out


def _profiled(argv: list[str], out_path: Path, timeout_s: float) -> dict[str, Any]:
    """The same child under `py-spy record` (folded stacks + a speedscope file)."""
    import subprocess

    cmd = ["py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(out_path), "--",
           sys.executable, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return {"error": f"py-spy exit {proc.returncode}", "stderr_tail": proc.stderr[-1500:]}
    _compact_folded(out_path)
    doc: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return doc


def _compact_folded(path: Path) -> None:
    """Folded stacks per function (file names without directories or line numbers), from the device drivers
    and the I/O loop down: the same profile in a tenth of the size."""
    import re
    from collections import Counter

    roots = ("DeviceScheduler._run", "DeviceScheduler._blocking_step", "drive_device", "IoLoop._run_io",
             "ProcessFleet.bring_online", "play_fleet")
    stacks: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \((?:.*/)?([^/:]+):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        start = next((i for i, f in enumerate(frames) if f.startswith(roots)), 0)
        stacks[";".join(frames[start:])] += int(count)
    path.write_text("".join(f"{s} {n}\n" for s, n in sorted(stacks.items())))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=40.0, help="operations/s of the two measuring runs")
    ap.add_argument("--operations", default="400,800", help="operations of the two runs (small,large)")
    ap.add_argument("--floor-operations", type=int, default=300)
    ap.add_argument("--rate-factors", default="", help="e.g. 0.9,1.5: runs at these fractions of capacity")
    ap.add_argument("--rates", default="",
                    help="e.g. 81,135: only saturation runs at these operations/s (no measuring runs, no floor)")
    ap.add_argument("--saturation-operations", type=int, default=1500)
    ap.add_argument("--profile", action="store_true", help="py-spy the larger run (bench/results)")
    ap.add_argument("--cpu-profile", action="store_true",
                    help="the larger run's Python stacks by CPU time, bench/results/campaign_cpu_profile.folded "
                         "(bench/cpu_sampler: what py-spy misreads on a busy machine)")
    ap.add_argument("--baseline-root", default="",
                    help="a directory holding another version's simulator/ (e.g. `git archive REV simulator`): "
                         "each run size is played by it too, alternating, for a before/after in one invocation")
    ap.add_argument("--broker-tls", choices=("astarte", "openssl"), default="astarte",
                    help="the embedded broker's TLS (README, \"TLS of the embedded broker\"): astarte (default) "
                         "TLS 1.2 without session tickets, openssl TLS 1.3 with 2. The backend is this tree's for "
                         "every run, --baseline-root's too: a before/after of the broker's TLS takes one invocation "
                         "per choice")
    ap.add_argument("--out", default="campaign_capacity")
    args = ap.parse_args(argv)
    small, large = (int(x) for x in args.operations.split(","))
    raise_fd_limit(args.devices + 500)
    backend = start_backend(realm=REALM, collector=True, broker_tls=args.broker_tls)
    try:
        binfo = backend.info
        ids = campaign_ids(args.devices)
        provision(binfo, ids)
        info = {**binfo.__dict__}
        creds = str(embedded_target(info).credentials_dir)
        if args.rates:
            doc = {"host": host_info(), "devices": args.devices, "saturation": []}
            for rate in (float(x) for x in args.rates.split(",")):
                out = _run(info, creds, args.devices, rate, args.saturation_operations, backend.collector)
                print(json.dumps(out), file=sys.stderr, flush=True)
                doc["saturation"].append(out)
            doc["host_after"] = host_info()
            return _save(args.out, doc)
        runs, baseline = [], []
        for n in (small, large):
            if args.baseline_root:
                base = _run(info, creds, args.devices, args.rate, n, backend.collector,
                            simulator_root=args.baseline_root)
                print(json.dumps(base), file=sys.stderr, flush=True)
                baseline.append(base)
            profile = RESULTS_DIR / "campaign_profile.folded" if args.profile and n == large else None
            cpu_profile = RESULTS_DIR / "campaign_cpu_profile.folded" if args.cpu_profile and n == large else None
            out = _run(info, creds, args.devices, args.rate, n, backend.collector, profile,
                       cpu_profile=cpu_profile)
            print(json.dumps(out), file=sys.stderr, flush=True)
            runs.append(out)
        doc: dict[str, Any] = {"host": host_info(), "devices": args.devices, "broker_tls": args.broker_tls,
                               "runs": runs}
        ok = all("error" not in r for r in runs)
        if ok:
            doc["difference"] = _difference(runs)
        if baseline:
            doc["baseline"] = {"root": args.baseline_root, "runs": baseline,
                               "difference": _difference(baseline) if all("error" not in r for r in baseline)
                               else None}
            big = runs[1]
            doc["large_run"] = {
                "reconnects_per_s": _r3(big["reconnects"] / big["play_wall_s"]),
                "pairing_calls_per_s": _r3((big["pairing_verify"] + big["pairing_info"]) / big["play_wall_s"]),
                "lost": big["lost"],
            }
        doc["floor_paho"] = run_floor(info, creds, ids, args.floor_operations)
        if ok and doc["floor_paho"].get("cpu_ms_per_operation"):
            doc["engine_vs_floor_cpu"] = _r3(doc["difference"]["cpu_ms_per_operation"]
                                             / doc["floor_paho"]["cpu_ms_per_operation"])
        if ok and args.rate_factors:
            capacity = doc["difference"]["operations_per_core_s"]
            doc["saturation"] = []
            for factor in (float(x) for x in args.rate_factors.split(",")):
                out = _run(info, creds, args.devices, round(capacity * factor, 1), args.saturation_operations,
                           backend.collector)
                out["capacity_factor"] = factor
                print(json.dumps(out), file=sys.stderr, flush=True)
                doc["saturation"].append(out)
        doc["host_after"] = host_info()
    finally:
        backend.stop()
    return _save(args.out, doc)


def _save(name: str, doc: dict[str, Any]) -> int:
    path = save_result(name, doc)
    print(json.dumps(doc, indent=2))
    print(f"saved {path}", file=sys.stderr)
    return 0


def campaign_ids(devices: int) -> list[str]:
    """The scenario's device ids (the plan's sequential scheme), so they can be provisioned here first."""
    from simulator.ids import device_id

    sc = campaign_scenario(devices, 1.0, 1)
    return [device_id(sc.seed, i, sc.fleet.id_scheme, sc.fleet.id_prefix) for i in range(devices)]


def _difference(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU per operation from two run sizes: (CPU_large - CPU_small) / (ops_large - ops_small)."""
    d_ops = runs[1]["operations"] - runs[0]["operations"]
    d_cpu = runs[1]["play_cpu_s"] - runs[0]["play_cpu_s"]
    ms_per_op = d_cpu / d_ops * 1000 if d_ops > 0 else None
    return {"cpu_ms_per_operation": _r3(ms_per_op),
            "cpu_us_per_otaevent": _r3(ms_per_op * 1000 / EVENTS_PER_OPERATION if ms_per_op else None),
            "operations_per_core_s": _r3(1000 / ms_per_op if ms_per_op else None),
            "cpu_ms_per_operation_each_run": [r["cpu_ms_per_operation"] for r in runs]}


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


if __name__ == "__main__":
    if "--child" in sys.argv:
        emit(child(json.loads(Path(sys.argv[sys.argv.index("--child") + 1]).read_text())))
        raise SystemExit(0)
    raise SystemExit(main())
