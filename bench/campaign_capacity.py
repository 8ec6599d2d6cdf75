"""Capacity of a real OTA campaign: every operation reboots (issue 16).

    python bench/campaign_capacity.py                       # 1,000 devices, 3 pairs of run sizes + the paho floor
    python bench/campaign_capacity.py --repeat 5            # 5 pairs (and 5 floor runs): a tighter median
    python bench/campaign_capacity.py --devices 10000       # the large fleet
    python bench/campaign_capacity.py --rate-factors 0.9,1.5  # then runs at 90% and 150% of the capacity
    python bench/campaign_capacity.py --baseline-root DIR   # DIR/simulator (another tree) plays every size too
    python bench/campaign_capacity.py --baseline-rev d260b63  # that commit's simulator/ (git archive) does
    python bench/campaign_capacity.py --profile             # py-spy of one more large run (bench/results)
    python bench/campaign_capacity.py --cpu-profile         # its Python stacks by CPU time (bench/cpu_sampler)

The product path: a child process (gevent-patched first, as fleetsim and Locust are) plays a scenario through
the spine's plain driver (simulator.run.gevent_driver.play_fleet + the run's MetricsRecorder and HealthMonitor,
what GeventDriver does) against one embedded backend (mosquitto, mutual TLS, Pairing API, collector) started
here. Every operation is Acknowledged, Downloading 0..100, Deploying 0..100, Deployed, Rebooting, a reboot (the
device disconnects, calls the Pairing API's verify + info as the SDK does on every connect, does a full TLS
handshake and the Astarte handshake), BaseImage/OSInfo with the new version, Success: 26 OTAEvents.

CPU per operation is the generator process's CPU (resource.getrusage: user + system) while the plan plays,
measured at two run sizes; the difference of the two over the difference of their operations removes the
fixed costs (the fleet's stop, the drain, the scenario's 30 s graceful stop the fleet idles through), as the
issue measured with GNU time. One pair is not enough on a shared machine: two invocations of one pair each
gave 14.68 and 11.93 ms per operation on one idle machine, so `--repeat N` (default 3) plays N pairs in the
order small, large, small, large, ... (with --baseline-root the other tree plays each size right beside this
one, which of the two goes first swapping every pair; bench/campaign_figures.py `play_order`) and the figure
is the median over the pairs of each pair's difference, with n, every pair's value and every run's own ms per
operation. A pair with a run behind its plan (late or dropped operations, or send lag p99 > 250 ms) measured
a starved generator, which handles more packets per wake-up and costs less per operation: `difference`
counts those pairs (`behind_pairs`, a table row whose goal is 0) and gives the median of the others too
(`cpu_ms_per_operation_on_schedule`; bench/campaign_figures.py BEHIND_LAG_P99_MS has the runs that set the
threshold). The bare-paho floor runs once per pair, after it (median, n); the engine / floor ratio is of the
two medians. Loss: every planned OTAEvent must come back as a SendRecord acknowledged without error (device
side) and arrive at the collector.

Why 40 operations/s: at a measuring rate r the difference is c(r) + p / r, with c(r) the work of an operation
and p what the connected fleet costs per second whatever it does (keep-alives, the health monitor's samples,
timers). Both terms shrink as r grows (p spread thinner, more packets per wake-up), so a low rate's figure
errs high, not low, against the cost at capacity (~150/s, the goal). Near capacity instead the co-located
backend (mosquitto, the Pairing API's TLS handshakes and the collector, in this process) takes the second of 2
cores: the generator then waits on it, batches more packets per wake-up, and the figure flatters it. 40/s x
2.5 s per operation keeps ~100 operations in flight, ~1,000 OTAEvents/s, well inside what the backend
carries. Each run measures p itself: the child samples its CPU every 0.5 s, and the slope over the idle tail
(from 2 s after the last acknowledgement to the fleet's stop, ~28 s of the scenario's graceful stop) is
`idle_cpu_ms_per_s`; `difference` gives its median and p / r (`idle_ms_per_operation_at_rate`), the part of
the figure a higher rate would shrink. At 1,000 devices p was 7.9 and 8.5 ms/s (--devices 1000 --operations
200,400 --repeat 1, commit b09d6ef, 2 runs): 0.2 ms of the figure at 40/s, 0.05 ms at 150/s, so p does not
decide the rate. The 0.9x / 1.5x saturation runs (--rate-factors) use the
median capacity (1000 / median ms): at 0.9x nothing may be lost; at 1.5x the generator falls behind and must
say so (late / dropped operations), still losing nothing.

The floor, in the same invocation: bare paho (no gevent, one selector loop) doing the same message sequence per
operation -- 25 OTAEvents at QoS 2, disconnect, Pairing API verify + info on a keep-alive session, reconnect
(TLS handshake), the Astarte handshake, BaseImage/OSInfo, Success -- on already-provisioned devices.

Prints and saves bench/results/campaign_capacity.json (`goals`: each figure the README table shows, with its
n), with the machine's load average at each run (the numbers are CPU time, which a shared machine disturbs
less than wall time, but does disturb).
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

from bench.baseline_tree import BaselineExportError, export_simulator
from bench.campaign_figures import (
    EVENTS_PER_OPERATION,
    ISSUE_BASE,
    baseline_ratio_block,
    difference_block,
    floor_block,
    goals_block,
    idle_cpu_ms_per_s,
    is_issue_base,
    play_order,
)
from bench.campaign_floor import run_floor
from bench.common import (
    RESULTS_DIR,
    cpu_seconds,
    emit,
    find_py_spy,
    host_info,
    percentile,
    provision,
    raise_fd_limit,
    ratio,
    run_child,
    save_result,
    start_backend,
)
from bench.fleet_runs import embedded_target

__all__ = ["EVENTS_PER_OPERATION", "campaign_scenario", "main"]

REALM = "campaign"


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

CPU_SAMPLE_S = 0.5  # the child's CPU sampled this often while the plan plays (2 wake-ups/s beside ~1,000 events/s)
IDLE_SETTLE_S = 2.0  # after the last acknowledgement: keep-alive and drain work of the last operations done


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Play one campaign in this gevent-patched process; counts, CPU and loss."""
    import gc

    import gevent

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
    # What a run does (simulator/run/live_books.py): no SendRecord kept in memory. Keeping every one (here and
    # in the recorder's send log) leaves more for the collector to walk the longer the run, a cost the product
    # does not have and that the larger run of a pair would pay more of. Counted as they come instead.
    recorder.keep_send_log = False
    monitor = HealthMonitor(clock)
    base = recorder_callbacks(recorder)
    tally = {"records": 0, "acked": 0}
    errors: dict[str, int] = {}
    lags: list[float] = []  # ms, floats: nothing for the collector to walk
    last_ack: list[float] = []
    pairing = {"verify": 0, "info": 0, "connects": 0}
    cpu_at: dict[str, float] = {}
    phases: dict[str, list[float]] = {}  # ms per reconnect phase, after the run's start

    def on_record(rec: Any) -> None:
        tally["records"] += 1
        if rec.error is not None:
            errors[rec.error] = errors.get(rec.error, 0) + 1
        elif rec.acked is not None:
            tally["acked"] += 1
        if rec.acked is not None and (not last_ack or rec.acked > last_ack[0]):
            last_ack[:] = [rec.acked]
        if rec.sent is not None:
            lags.append((rec.sent - rec.intended) * 1000)
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

    # (wall s, CPU s) while the plan plays: wall, as SendRecord.acked is (the run's wall start + monotonic).
    samples: list[tuple[float, float]] = []

    def sample_cpu() -> None:
        while True:
            samples.append((time.time(), cpu_seconds()))
            gevent.sleep(CPU_SAMPLE_S)

    # The collector's own CPU time per generation while the plan plays (thread_time: a collection preempted
    # by another process on a shared machine would count its wait in wall time): what grows with a run's
    # length (a collection walks every object the run still holds) shows here, not in the per-operation code.
    gc_ms: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    gc_start: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if "begin" not in cpu_at:
            return
        if phase == "start":
            gc_start[0] = time.thread_time()
        else:
            slot = gc_ms[info["generation"]]
            slot[0] += 1
            slot[1] += (time.thread_time() - gc_start[0]) * 1000

    gc.callbacks.append(on_gc)

    def on_begin() -> None:
        cpu_at["begin"] = cpu_seconds()
        cpu_at["wall"] = time.monotonic()
        pairing.update(verify=0, info=0, connects=0)  # count the run's reconnects, not the first onboarding
        monitor.start()
        sampler.append(gevent.spawn(sample_cpu))

    callbacks = FleetCallbacks(on_record=on_record, on_onboarding=on_onboarding, on_online=base.on_online,
                               on_begin=on_begin)
    sampler: list[Any] = []
    cpu0 = cpu_seconds()
    try:
        played = play_fleet(scenario, plan, embedded_target(spec["info"], Path(spec["credentials_dir"])),
                            end_s=bounded.end_s, callbacks=callbacks)
    finally:
        gevent.killall(sampler)
        gc.callbacks.remove(on_gc)
    cpu_end, wall_end = cpu_seconds(), time.monotonic()
    health = monitor.stop()
    counters = played.fleet.counters()
    extra: dict[str, int] = {}
    for dev in played.fleet.devices.values():
        for k, v in dev.counters.extra.items():
            extra[k] = extra.get(k, 0) + v
    acked = tally["acked"]
    idle = idle_cpu_ms_per_s(samples, last_ack[0] + IDLE_SETTLE_S) if last_ack else None
    play_cpu = cpu_end - cpu_at.get("begin", cpu0)
    play_wall = wall_end - cpu_at.get("wall", wall_end)
    return {
        "devices": spec["devices"], "rate": spec["rate"], "operations": len(plan.operations),
        "planned_events": planned, "records": tally["records"], "acked": acked, "errors": errors,
        # planned events that never became a SendRecord and were not dropped (counted) either: silent loss
        "unrecorded": planned - tally["records"] - counters.get("dropped_events", 0),
        "cut_operations": bounded.cut.cut_operations,
        "connect_s": round(played.connect_s, 2), "failed_devices": len(played.fleet.failed),
        "onboarding_cpu_s": round(cpu_at.get("begin", cpu0) - cpu0, 3),
        "play_cpu_s": round(play_cpu, 3), "play_wall_s": round(play_wall, 3),
        "cpu_core_fraction": round(play_cpu / play_wall, 3) if play_wall > 0 else None,
        "cpu_us_per_acked_event": round(play_cpu / acked * 1e6, 1) if acked else None,
        "idle_cpu_ms_per_s": idle,
        "gc_during_play": {f"gen{g}": {"collections": int(c), "ms": round(ms, 1)} for g, (c, ms) in gc_ms.items()},
        "idle_tail_s": round(samples[-1][0] - last_ack[0], 1) if last_ack and samples else None,
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


def backend_cpu_seconds(broker_pids: tuple[int | None, ...]) -> float | None:
    """CPU seconds (user + system) of the backend so far: this process (the Pairing API, the collector, the
    bench's own polling: all threads) plus the broker's processes (mosquitto, its log relay). None when the
    broker's process is unknown. Beside the generator's own CPU it says whether a run measured the generator or
    a generator waiting on a saturated backend (both share this machine's cores)."""
    if not broker_pids or broker_pids[0] is None:
        return None
    import psutil

    total = cpu_seconds()
    for pid in broker_pids:
        if pid is None:
            continue
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return None
        total += times.user + times.system
    return total


def _run(info: dict[str, Any], creds: str, devices: int, rate: float, operations: int,
         collector: Any, profile: Path | None = None, simulator_root: str = "",
         cpu_profile: Path | None = None, broker_pids: tuple[int | None, ...] = ()) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"info": info, "credentials_dir": creds, "devices": devices, "rate": rate,
                   "operations": operations, "cpu_profile": str(cpu_profile) if cpu_profile else ""}, f)
    argv = [str(Path(__file__).resolve()), "--child", f.name]
    if simulator_root:
        argv += ["--simulator-root", simulator_root]
    before = collector.arrival_count() if collector is not None else 0
    backend_cpu0 = backend_cpu_seconds(broker_pids)
    parent_cpu0 = cpu_seconds()
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
    backend_cpu1 = backend_cpu_seconds(broker_pids)
    if backend_cpu0 is not None and backend_cpu1 is not None:
        # The whole child's life (onboarding and idle tail included): a pair's difference keeps the operations.
        out["backend_cpu_s"] = round(backend_cpu1 - backend_cpu0, 3)
        out["backend_process_cpu_s"] = round(cpu_seconds() - parent_cpu0, 3)  # Pairing API + collector
    os.unlink(f.name)
    if "error" not in out:
        out["lost"] = sum(out["errors"].values()) + out["unrecorded"] + out.get("acked_not_arrived", 0)
        played = out["operations"] - out.get("dropped_operations", 0)  # dropped ones cost (almost) nothing
        out["cpu_ms_per_operation"] = round(out["play_cpu_s"] / max(1, played) * 1000, 3)
    return out


def _profiled(argv: list[str], out_path: Path, timeout_s: float) -> dict[str, Any]:
    """The same child under `py-spy record` (folded stacks + a speedscope file)."""
    import subprocess

    spy = find_py_spy()
    if spy is None:
        return {"error": "py-spy not found; pip install py-spy"}
    cmd = [spy, "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(out_path), "--",
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
    ap.add_argument("--rate", type=float, default=40.0, help="operations/s of the measuring runs")
    ap.add_argument("--operations", default="400,800", help="operations of the two run sizes (small,large)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="pairs of (small, large) runs, and runs of the floor; the figures are their medians")
    ap.add_argument("--floor-operations", type=int, default=300)
    ap.add_argument("--rate-factors", default="", help="e.g. 0.9,1.5: runs at these fractions of capacity")
    ap.add_argument("--rates", default="",
                    help="e.g. 81,135: only saturation runs at these operations/s (no measuring runs, no floor)")
    ap.add_argument("--saturation-operations", type=int, default=1500)
    ap.add_argument("--broker-tls", choices=("astarte", "openssl"), default="astarte",
                    help="the embedded broker's TLS (README, \"TLS of the embedded broker\"): astarte (default) "
                         "TLS 1.2 without session tickets, openssl TLS 1.3 with 2. The backend is this tree's for "
                         "every run, --baseline-root's too: a before/after of the broker's TLS takes one invocation "
                         "per choice")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy one more large run, outside the pairs (bench/results)")
    ap.add_argument("--cpu-profile", action="store_true",
                    help="one more large run, outside the pairs, with its Python stacks by CPU time in "
                         "bench/results/campaign_cpu_profile.folded (bench/cpu_sampler: what py-spy misreads "
                         "on a busy machine)")
    ap.add_argument("--baseline-root", default="",
                    help="a directory holding another version's simulator/ (e.g. `git archive REV simulator`): "
                         "each run size is played by it too, interleaved, for a before/after in one invocation")
    ap.add_argument("--baseline-rev", default="",
                    help="a commit of this repository whose simulator/ plays every size too (git archive into a "
                         f"temporary directory; --baseline-root's A/B). {ISSUE_BASE}, main when issue 16 was filed, "
                         "makes the CPU per operation a ratio to the code the issue measured, on this machine "
                         "(goal <= 0.5: 'halve'), which a faster or slower machine does not move the way it moves "
                         "the milliseconds")
    ap.add_argument("--out", default="campaign_capacity")
    args = ap.parse_args(argv)
    if args.baseline_rev and args.baseline_root:
        ap.error("--baseline-rev and --baseline-root name the same A/B side: give one")
    if args.baseline_rev:
        try:
            args.baseline_root = export_simulator(args.baseline_rev)
        except BaselineExportError as exc:
            ap.error(str(exc))
    small, large = (int(x) for x in args.operations.split(","))
    if args.repeat < 1 or large <= small:
        ap.error("--repeat must be >= 1 and --operations small,large with large > small")
    raise_fd_limit(args.devices + 500)
    backend = start_backend(realm=REALM, collector=True, broker_tls=args.broker_tls)
    try:
        binfo = backend.info
        ids = campaign_ids(args.devices)
        provision(binfo, ids)
        info = {**binfo.__dict__}
        creds = str(embedded_target(info).credentials_dir)
        pids = (getattr(backend.broker, "pid", None), getattr(backend.broker, "relay_pid", None))
        if args.rates:
            doc = {"host": host_info(), "devices": args.devices, "saturation": []}
            for rate in (float(x) for x in args.rates.split(",")):
                out = _run(info, creds, args.devices, rate, args.saturation_operations, backend.collector,
                           broker_pids=pids)
                print(json.dumps(out), file=sys.stderr, flush=True)
                doc["saturation"].append(out)
            doc["host_after"] = host_info()
            return _save(args.out, doc)
        sizes = {"small": small, "large": large}
        played: dict[str, list[dict[str, Any]]] = {"engine": [], "baseline": [], "floor": []}
        for pair, system, size in play_order(args.repeat, bool(args.baseline_root)):
            if system == "floor":
                out = run_floor(info, creds, ids, args.floor_operations)
            else:
                out = _run(info, creds, args.devices, args.rate, sizes[size], backend.collector, broker_pids=pids,
                           simulator_root=args.baseline_root if system == "baseline" else "")
                out.update(pair=pair, size=size)
            print(json.dumps({"system": system, **out}), file=sys.stderr, flush=True)
            played[system].append(out)
        runs = played["engine"]
        doc: dict[str, Any] = {
            "host": host_info(), "devices": args.devices,
            "params": {"rate": args.rate, "operations": [small, large], "repeat": args.repeat,
                       "floor_operations": args.floor_operations, "rate_factors": args.rate_factors,
                       "saturation_operations": args.saturation_operations,
                       "broker_tls": args.broker_tls},
            "runs": runs,
            "difference": difference_block(runs),
        }
        if args.baseline_root:
            doc["baseline"] = {"root": args.baseline_root, "rev": args.baseline_rev, "runs": played["baseline"],
                               "difference": difference_block(played["baseline"])}
            doc["engine_vs_baseline_cpu"] = baseline_ratio_block(played["engine"], played["baseline"])
        big = next((r for r in reversed(runs) if r.get("size") == "large" and "error" not in r), None)
        if big is not None and big["play_wall_s"] > 0:
            doc["large_run"] = {
                "pair": big["pair"],
                "reconnects_per_s": _r3(big["reconnects"] / big["play_wall_s"]),
                "pairing_calls_per_s": _r3((big["pairing_verify"] + big["pairing_info"]) / big["play_wall_s"]),
                "lost": big["lost"],
            }
        doc["floor_paho"] = floor_block(played["floor"])
        doc["engine_vs_floor_cpu"] = ratio(doc["difference"]["cpu_ms_per_operation"],
                                           doc["floor_paho"]["cpu_ms_per_operation"])
        if args.profile or args.cpu_profile:
            # An extra run, never one of the pairs: an in-process sampler costs the child CPU of its own.
            out = _run(info, creds, args.devices, args.rate, large, backend.collector,
                       RESULTS_DIR / "campaign_profile.folded" if args.profile else None,
                       cpu_profile=RESULTS_DIR / "campaign_cpu_profile.folded" if args.cpu_profile else None)
            print(json.dumps({"system": "profiled", **out}), file=sys.stderr, flush=True)
            doc["profiled_run"] = out
        capacity = doc["difference"]["operations_per_core_s"]
        doc["saturation"] = []
        if capacity and args.rate_factors:
            doc["saturation_capacity_ops_per_core_s"] = capacity  # the median of the pairs
            for factor in (float(x) for x in args.rate_factors.split(",")):
                out = _run(info, creds, args.devices, round(capacity * factor, 1), args.saturation_operations,
                           backend.collector, broker_pids=pids)
                out["capacity_factor"] = factor
                print(json.dumps({"system": "saturation", **out}), file=sys.stderr, flush=True)
                doc["saturation"].append(out)
        doc["goals"] = goals_block(doc["difference"], doc["floor_paho"], doc["saturation"],
                                   doc.get("engine_vs_baseline_cpu") if is_issue_base(args.baseline_rev) else None)
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


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


if __name__ == "__main__":
    if "--child" in sys.argv:
        emit(child(json.loads(Path(sys.argv[sys.argv.index("--child") + 1]).read_text())))
        raise SystemExit(0)
    raise SystemExit(main())
