"""Issue 4: whole fleets in one generator process -- `fleetsim run` at 10,000 lean and 1,000 SDK devices.

    python bench/fleet_scale.py --quick                      # 1,000 lean + 100 sdk, 15 s runs
    python bench/fleet_scale.py                              # 10,000 lean + 1,000 sdk, 30 s runs
    python bench/fleet_scale.py --runs lean:5000 --load per-device

Each run is the real command line, as a subprocess: `python -m simulator run bench/scenarios/fleet_scale.yaml
--devices N --transport T --rate R --duration D` (Locust engine, one generator process, the embedded backend
in its own process with mosquitto). The scenario is quickstart's fleet and OTA lifecycle with a FIXED load
(`--load fixed`, default: R OTA operations/s whatever N, so sizes compare on what size alone costs);
quickstart.yaml itself plans `count: 20` operations. `--load per-device` instead plays N operations spread
over D (one OTA per device; at 10,000 devices that is ~5,000 events/s, beyond one process on 2 cores).

Measured:
- connect rate: devices online over time, from the run's live progress line on stderr ('devices 450/1000
  online', once a second while onboarding), as mean and peak devices/s; the per-phase onboarding latencies
  (summary.json latency_ms.onboarding: registration and certificate only on a cold credentials cache, then
  pairing_info, connect, handshake); Locust spawns at most --spawn-rate users/s (runner default
  min(N, 500)), which caps the connect rate -- the JSON says when it was the cap;
- memory: RSS of the generator (fleetsim run and any Locust workers), the backend process and the broker,
  each summed over its processes and sampled every 0.5 s through psutil on the child's process tree; RSS per
  device = (generator peak - generator RSS when onboarding began) / N;
- the run's events planned/sent/acked/delivered/lost, delivered events/s, generator CPU and verdict.
Credentials are cached under .fleetsim/bench/fleet-scale/<transport>. Unless --no-prime, each size is first
run once for PRIME_S seconds: that pass registers and certifies every device (a cold cache: its onboarding
figures are kept under "prime"), so the measured run shows the connect rate with cached credentials.
Prints a table and JSON; writes bench/results/fleet_scale.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity_helpers import connect_rate, parse_progress, role_of
from bench.common import ROOT, STATE_DIR, host_info, save_result, text_table

__all__ = ["main", "parse_runs"]

SCENARIO = ROOT / "bench" / "scenarios" / "fleet_scale.yaml"
SAMPLE_S = 0.5
PRIME_S = 2.0  # run length of the priming pass (its onboarding is what it is for)
PHASES = ("registration", "certificate", "pairing_info", "connect", "handshake")


def parse_runs(text: str) -> list[tuple[str, int]]:
    """'lean:10000,sdk:1000' -> [("lean", 10000), ("sdk", 1000)]; argparse type."""
    out: list[tuple[str, int]] = []
    for part in text.split(","):
        transport, _, size = part.strip().partition(":")
        if transport not in ("lean", "sdk") or not size.isdigit() or int(size) < 1:
            raise argparse.ArgumentTypeError(
                f"--runs: {part.strip()!r}: expected lean:N or sdk:N with N >= 1")
        out.append((transport, int(size)))
    return out


def _scenario_for(args: argparse.Namespace, devices: int, work: Path) -> tuple[Path, float]:
    """(scenario file, OTA operations/s): the bench scenario, or its per-device copy (count = N)."""
    if args.load == "fixed":
        return SCENARIO, args.rate
    import yaml

    doc = yaml.safe_load(SCENARIO.read_text())
    rate = devices / args.duration
    doc["arrival"] = {**doc["arrival"], "rate": rate, "count": devices}
    path = work / f"fleet_scale-{devices}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, rate


class TreeSampler:
    """RSS (bytes) and CPU (s) of a process tree grouped by role, sampled; peaks kept per role."""

    def __init__(self, root_pid: int) -> None:
        import psutil

        self.root = psutil.Process(root_pid)
        self.seen: dict[int, Any] = {}
        self.peak = {"generator": 0, "backend": 0, "broker": 0}
        self.last = dict(self.peak)
        self.cpu: dict[int, tuple[str, float]] = {}

    def sample(self) -> None:
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss = {k: 0 for k in self.peak}
        for p in procs:
            try:
                role = role_of(p.name(), p.cmdline())
                rss[role] += p.memory_info().rss
                t = p.cpu_times()
                self.cpu[p.pid] = (role, t.user + t.system)
                self.seen[p.pid] = p
            except psutil.Error:  # exited between listing and reading
                continue
        self.last = rss
        for k, v in rss.items():
            self.peak[k] = max(self.peak[k], v)

    def cpu_s(self, role: str) -> float:
        return round(sum(c for r, c in self.cpu.values() if r == role), 1)

    def kill_leftovers(self) -> None:
        """SIGKILL any process of the tree still alive (only after a timeout: the run stops its own)."""
        import psutil

        for p in self.seen.values():
            try:
                p.kill()
            except psutil.Error:
                continue


def _read_stderr(proc: subprocess.Popen[str], points: list[tuple[float, int]], tail: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        parsed = parse_progress(line)
        if parsed is not None:
            points.append((time.monotonic(), parsed[0]))
        tail.append(line.rstrip())
        del tail[:-40]


def _results_dir(root: Path, before: set[Path]) -> Path | None:
    new = [p for p in root.iterdir() if p not in before and (p / "summary.json").exists()]
    return max(new, key=lambda p: p.stat().st_mtime) if new else None


def _pcts(doc: dict[str, Any] | None) -> dict[str, Any]:
    doc = doc or {}
    return {"count": doc.get("count"), "p50_ms": doc.get("p50"), "p99_ms": doc.get("p99")}


def _from_results(run_dir: Path) -> dict[str, Any]:
    s = json.loads((run_dir / "summary.json").read_text())
    online: list[int] = []
    with (run_dir / "timeseries.csv").open() as f:
        online = [int(float(r["devices_online"])) for r in csv.DictReader(f) if r.get("devices_online")]
    gen = s.get("generator", {})
    return {
        "results_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
        "events": {k: s.get("events", {}).get(k) for k in ("planned", "sent", "acked", "delivered", "lost")},
        "delivered_eps": s.get("rate", {}).get("delivered_eps"),
        "ota": {k: s.get("ota", {}).get(k) for k in ("operations", "success", "failure", "stuck")},
        "onboarding": {ph: _pcts(s.get("latency_ms", {}).get("onboarding", {}).get(ph)) for ph in PHASES},
        "timeseries_devices_online": {"min": min(online, default=None), "max": max(online, default=None),
                                      "seconds": len(online)},
        "generator": {k: gen.get(k) for k in ("cpu_pct", "saturated", "send_lag_ms_p99", "sdk_over_limit")},
        "ack_p99_ms": s.get("latency_ms", {}).get("ack", {}).get("p99"),
        "verdict": s.get("verdict"), "verdict_reasons": s.get("verdict_reasons"),
    }


def run_one(transport: str, devices: int, args: argparse.Namespace, work: Path,
            duration: float | None = None) -> dict[str, Any]:
    scenario, rate = _scenario_for(args, devices, work)
    duration = args.duration if duration is None else duration
    # One state dir per transport: the SDK keeps its own secrets, so ids the lean run registered would be
    # "already registered" to it (and the other way round).
    state_dir = Path(args.state_dir) / transport
    root = Path(args.results).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    cmd = [sys.executable, "-m", "simulator", "run", str(scenario), "--devices", str(devices),
           "--transport", transport, "--rate", f"{rate:g}", "--duration", f"{duration:g}s",
           "--results", str(root), "--state-dir", str(state_dir), "--broker", args.broker]
    if args.spawn_rate:
        cmd += ["--spawn-rate", f"{args.spawn_rate:g}"]
    spawn_rate = args.spawn_rate or float(min(devices, 500))  # simulator/locust_adapter/runner.py default
    timeout = args.timeout or 180 + duration + devices * (0.3 if transport == "sdk" else 0.05)
    points: list[tuple[float, int]] = []
    tail: list[str] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    reader = threading.Thread(target=_read_stderr, args=(proc, points, tail), daemon=True)
    reader.start()
    sampler = TreeSampler(proc.pid)
    baseline: int | None = None
    timed_out = False
    while proc.poll() is None:
        sampler.sample()
        if baseline is None and points:
            baseline = sampler.last["generator"]  # onboarding has just begun: the fleet's memory comes next
        if time.monotonic() - t0 > timeout:
            timed_out = True
            proc.send_signal(signal.SIGTERM)  # the run stops its backend and writes partial results
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                sampler.kill_leftovers()
                proc.wait()
            break
        time.sleep(SAMPLE_S)  # the sampling period itself (benchmark timing, not waiting for logic)
    reader.join(10)
    wall = time.monotonic() - t0
    rate_doc = connect_rate(points, devices)
    mib = 2**20
    out: dict[str, Any] = {
        "transport": transport, "devices": devices, "load": args.load, "ota_rate_per_s": round(rate, 3),
        "duration_s": duration, "exit_code": proc.returncode, "timed_out": timed_out,
        "wall_s": round(wall, 1), "spawn_rate": spawn_rate,
        "connect": {**rate_doc, "spawn_limited": bool(rate_doc["mean_per_s"]
                                                      and rate_doc["mean_per_s"] >= 0.9 * spawn_rate)},
        "rss_mb": {"generator_peak": round(sampler.peak["generator"] / mib, 1),
                   "generator_at_onboarding_start": None if baseline is None else round(baseline / mib, 1),
                   "backend_peak": round(sampler.peak["backend"] / mib, 1),
                   "broker_peak": round(sampler.peak["broker"] / mib, 1)},
        "rss_kb_per_device": None if baseline is None else round(
            (sampler.peak["generator"] - baseline) / 1024 / devices, 1),
        "rss_kb_per_device_all_in": round(sampler.peak["generator"] / 1024 / devices, 1),
        "cpu_s": {role: sampler.cpu_s(role) for role in ("generator", "backend", "broker")},
    }
    run_dir = _results_dir(root, before)
    if run_dir is None:
        out["error"] = "no summary.json written"
        out["stderr_tail"] = tail[-15:]
    else:
        out.update(_from_results(run_dir))
    return out


def _table(runs: list[dict[str, Any]]) -> str:
    rows = [{"transport": r["transport"], "devices": r["devices"],
             "connect_mean_per_s": r["connect"]["mean_per_s"],
             "connect_peak_per_s": r["connect"]["peak_per_s"],
             "onboard_s": r["connect"]["seconds"], "gen_rss_peak_mb": r["rss_mb"]["generator_peak"],
             "kb_per_device": r["rss_kb_per_device"], "planned": r.get("events", {}).get("planned"),
             "sent": r.get("events", {}).get("sent"), "delivered": r.get("events", {}).get("delivered"),
             "lost": r.get("events", {}).get("lost"), "verdict": r.get("verdict", r.get("error"))}
            for r in runs]
    return text_table(rows, list(rows[0]) if rows else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=parse_runs, default=parse_runs("lean:10000,sdk:1000"),
                    help="transport:devices pairs, comma-separated")
    ap.add_argument("--load", choices=["fixed", "per-device"], default="fixed",
                    help="fixed: --rate OTAs/s at any size; per-device: one OTA per device over --duration")
    ap.add_argument("--rate", type=float, default=10.0, help="OTA operations/s with --load fixed")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of the run after onboarding")
    ap.add_argument("--spawn-rate", type=float, default=0.0, help="Locust users/s (0: the runner's default)")
    ap.add_argument("--broker", choices=["auto", "mosquitto", "amqtt"], default="mosquitto")
    ap.add_argument("--state-dir", default=str(STATE_DIR / "fleet-scale"), help="credentials cache, backend")
    ap.add_argument("--results", default=str(STATE_DIR / "fleet-scale" / "results"), help="run outputs root")
    ap.add_argument("--timeout", type=float, default=0.0, help="per run, seconds (0: from the size)")
    ap.add_argument("--no-prime", action="store_true",
                    help="skip the short first run that registers the fleet (its figures: 'prime')")
    ap.add_argument("--quick", action="store_true", help="1,000 lean + 100 sdk devices, 15 s runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.duration = [("lean", 1000), ("sdk", 100)], 15.0
    if args.duration <= 0 or args.rate <= 0:
        ap.error("--duration and --rate must be > 0")
    doc: dict[str, Any] = {"bench": "fleet_scale", "host": host_info(),
                           "params": {"runs": [f"{t}:{n}" for t, n in args.runs], "load": args.load,
                                      "rate": args.rate, "duration": args.duration, "quick": args.quick,
                                      "scenario": str(SCENARIO.relative_to(ROOT))},
                           "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-scale-") as tmp:
        for transport, devices in args.runs:
            prime = None
            if not args.no_prime:  # registers the fleet (cold credentials): the measured run connects only
                prime = run_one(transport, devices, args, Path(tmp), duration=PRIME_S)
            run = run_one(transport, devices, args, Path(tmp))
            if prime is not None:
                run["prime"] = {k: prime.get(k) for k in ("connect", "onboarding", "wall_s", "exit_code",
                                                           "verdict", "rss_mb", "error")}
            doc["runs"].append(run)
    doc["host_after"] = host_info()
    path = save_result("fleet_scale", doc)
    print(json.dumps(doc, indent=2))
    print(_table(doc["runs"]))
    print(f"saved {path.relative_to(ROOT)}")
    return 0 if all(r.get("exit_code") in (0, 1) and "error" not in r for r in doc["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
