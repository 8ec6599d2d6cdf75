"""How many lean devices one process carries: connect rate, RSS per device, publish->ack latency.

    python bench/devices_per_process.py --devices 1000            # quick
    python bench/devices_per_process.py --devices 10000 --duration 30   # full
    python bench/devices_per_process.py --quick                         # 1,000 devices, 5 s

The embedded backend (mosquitto, mutual TLS, Pairing API, collector) runs in this process with real threads;
the fleet runs in a child process that monkey-patches gevent first, as Locust does, so the child's CPU and
RSS are the generator's alone. Credentials are cached under --state-dir: the first run registers every
device (timed separately as `onboarding`); later runs measure the pure MQTT + TLS connect rate.

Publishing: every device sends one QoS 2 OTAEvent per 1/rate seconds on an absolute grid with a random
phase per device (docs/protocol.md section 7: a shared phase makes batches collide and measures the generator).
Latency = PUBCOMP time - publish() call, HDR histogram (1 us .. 60 s, 3 digits). `gc.freeze()` after the
ramp-up keeps full collections of the fleet's long-lived objects out of the p99 (docs/protocol.md section 7).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def child(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from gevent import monkey

    monkey.patch_all()
    import gc
    import os
    import random
    import resource

    import gevent
    import gevent.pool
    import psutil
    from hdrh.histogram import HdrHistogram

    from simulator.events import OTA_EVENT_INTERFACE, OTA_EVENT_PATH
    from simulator.ids import device_id
    from simulator.interfaces.loader import load_interfaces
    from simulator.transports.base import Endpoint
    from simulator.transports.lean_fleet import LeanFleet
    from simulator.transports.ports import loopback_addresses

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.devices + 200:
        raise SystemExit(f"fd limit {hard} < devices + 200; raise `ulimit -Hn`")
    proc = psutil.Process()
    ids = [device_id(args.seed, i) for i in range(args.devices)]
    endpoint = Endpoint(
        realm=info["realm"],
        pairing_url=info["pairing_url"],
        agent_jwt=info["agent_jwt"],
        ca_file=info["ca_file"],
        credentials_dir=str(Path(args.state_dir) / "credentials"),
        source_addresses=loopback_addresses(args.sources),
    )
    rss0 = proc.memory_info().rss
    fleet = LeanFleet(endpoint, load_interfaces(), revalidate=False, timeout_s=60.0)
    pool = gevent.pool.Pool(args.concurrency)
    out: dict[str, Any] = {"devices": args.devices, "rate_per_device_hz": args.rate, "sources": args.sources}

    # Onboarding of devices without cached credentials (first run only): registration + CSR.
    from simulator.transports.base import OnboardingTimes
    from simulator.transports.pairing_client import onboard

    todo = [d for d in ids if fleet.cache.get(d) is None or fleet.cache.get(d).cert_pem is None]  # type: ignore[union-attr]
    t0 = time.monotonic()
    failures: dict[str, int] = {}

    def guarded(fn: Any, d: str) -> Any:
        try:
            return fn(d)
        except Exception as exc:  # counted and reported: one failing device must not end the benchmark
            key = f"{type(exc).__name__}: {str(exc)[:120]}"
            failures[key] = failures.get(key, 0) + 1
            return None

    def onboard_one(d: str) -> Any:
        return onboard(fleet.pairing, fleet.cache, d, endpoint.agent_jwt, OnboardingTimes(), revalidate=False)

    pool.map(lambda d: guarded(onboard_one, d), todo)
    out["onboarding"] = {
        "devices": len(todo),
        "seconds": round(time.monotonic() - t0, 2),
        "failures": failures,
    }
    failures = {}

    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    times = [t for t in pool.map(lambda d: guarded(lambda x: fleet.transport(x).connect(), d), ids) if t]
    connect_s = time.monotonic() - t0
    connected = sum(fleet.transport(d).connected for d in ids)
    ids = [d for d in ids if fleet.transport(d).connected]
    conn_ms = sorted((t.connect or 0) * 1000 for t in times)
    out["connect"] = {
        "connected": connected,
        "seconds": round(connect_s, 2),
        "per_s": round(connected / connect_s, 1),
        "cpu_ms_per_device": round((sum(proc.cpu_times()[:2]) - cpu0) * 1000 / max(1, connected), 2),
        "tls_connack_p50_ms": round(conn_ms[len(conn_ms) // 2], 1),
        "tls_connack_p99_ms": round(conn_ms[int(len(conn_ms) * 0.99)], 1),
        "failures": failures,
    }
    gc.collect()
    gc.freeze()
    rss1 = proc.memory_info().rss
    out["rss"] = {
        "before_mb": round(rss0 / 2**20, 1),
        "after_mb": round(rss1 / 2**20, 1),
        "per_device_kb": round((rss1 - rss0) / 1024 / max(1, connected), 1),
    }

    hist = HdrHistogram(1, 60_000_000, 3)  # microseconds
    errors: dict[str, int] = {}
    sent = acked = 0
    period = 1.0 / args.rate
    rng = random.Random(args.seed)
    grid = sorted((rng.uniform(0, period), d) for d in ids)
    devs = [(phase, fleet.transport(d)) for phase, d in grid]

    def on_ack(sent_at: float) -> Any:
        def cb(at: float, err: str | None) -> None:
            nonlocal acked
            if err:
                errors[err] = errors.get(err, 0) + 1
            else:
                acked += 1
                hist.record_value(max(1, int((at - sent_at) * 1e6)))

        return cb

    lag = HdrHistogram(1, 60_000_000, 3)
    start = time.monotonic() + 0.5
    cpu0 = sum(proc.cpu_times()[:2])
    rounds = int(args.duration * args.rate)
    profiler = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    for k in range(rounds):
        base = start + k * period
        for phase, dev in devs:
            due = base + phase
            now = time.monotonic()
            if due > now:
                gevent.sleep(due - now)  # the pacer itself: absolute grid, never sleep-after-send
            now = time.monotonic()
            lag.record_value(max(1, int((now - due) * 1e6)))
            value = {
                "requestUUID": "4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10",
                "status": "Downloading",
                "statusProgress": k % 101,
                "statusCode": "",
                "message": "",
            }
            try:
                dev.publish(OTA_EVENT_INTERFACE, OTA_EVENT_PATH, value, int(time.time() * 1000), on_ack(now))
                sent += 1
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 10
    while acked + sum(errors.values()) < sent and time.monotonic() < deadline:
        gevent.sleep(0.05)  # drain: wait for the last PUBCOMPs, bounded
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    out["publish"] = {
        "sent": sent,
        "acked": acked,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(sent / elapsed, 1),
        "cpu_core_fraction": round(cpu / elapsed, 3),
        "cpu_us_per_msg": round(cpu / max(1, sent) * 1e6, 1),
        "ack_ms": {
            q: round(hist.get_value_at_percentile(p) / 1000, 2)
            for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9), ("max", 100))
        },
        "send_lag_ms": {
            q: round(lag.get_value_at_percentile(p) / 1000, 2)
            for q, p in (("p50", 50), ("p99", 99), ("max", 100))
        },
    }
    out["fleet"] = fleet.stats()
    fleet.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1.0, help="messages per device per second")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    ap.add_argument("--sources", type=int, default=1, help="loopback source addresses (127.0.0.1..n)")
    ap.add_argument("--concurrency", type=int, default=100, help="parallel connects")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--state-dir", default=str(ROOT / ".fleetsim" / "bench-devices"))
    ap.add_argument("--quick", action="store_true", help="1,000 devices, 5 s of publishing (run_all.py)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:  # added for bench/run_all.py --quick (issue 8)
        args.devices, args.duration = 1000, 5.0
    if args.child:
        result = child(json.loads(args.child), args)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    import os

    from simulator.backend.server import EmbeddedBackend

    backend = EmbeddedBackend(Path(args.state_dir) / "backend", realm="bench", broker="mosquitto")
    info = backend.start()
    try:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--child", info.to_json()]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ}, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if os.environ.get("BENCH_PROFILE"):
            sys.stderr.write(proc.stderr[-12000:])
        if proc.returncode != 0 or not lines:
            sys.stderr.write(proc.stderr[-4000:])
            return proc.returncode or 1
        result = json.loads(lines[-1][len("RESULT ") :])
        result["collector"] = {
            k: v
            for k, v in backend.stats().get("collector", {}).items()
            if k in ("arrivals", "violations", "dropped")
        }
        sys.path.insert(0, str(ROOT))
        from bench.common import host_info

        result = {"bench": "devices_per_process", "argv": sys.argv[1:], **result, "host": host_info()}
        print(json.dumps(result, indent=2))
    finally:
        backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
