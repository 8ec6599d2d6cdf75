"""Issue 3: capacity of the embedded backend's brokers -- devices held and QoS 2 OTAEvents/s DELIVERED.

    python bench/backend_capacity.py --quick                     # 300 devices, 3 short steps, both brokers
    python bench/backend_capacity.py --broker mosquitto --devices 3000 --rates 1k,2k,3k,4k --seconds 10

For each broker: the embedded backend runs as `fleetsim run` runs it (simulator.generator.backend_process
BackendProcess: pairing, mutual-TLS broker with the per-device ACL, the collector subscribed to `<realm>/#` at
QoS 2), state under .fleetsim/bench/ so the CA and the device certificates are reused. Every device is
registered and certified once by the parent (bench.common.provision: the first pairing pass; later runs only
connect). `--generators` child processes (gevent-patched, as under Locust) each hold a share of the devices
in one simulator.transports.lean_fleet.LeanFleet and publish the real 153-byte OTAEvent at QoS 2 on an
absolute schedule (pace = start + k / rate, never sleep-after-send; docs/design.md principle 3) through a stepped
offered rate. Each device publishes in turn, so the per-device rate is rate / devices.

Measured per step (window = the step minus its first second): offered, sent, acked (PUBCOMP) and DELIVERED
rate -- delivered = slope of `fleetsim_collector_arrivals_total` on the collector's GET /metrics, sampled
every 0.25 s -- broker CPU (psutil on the broker pid; mosquitto and amqtt are single-threaded, so 100% = one
core), the collector's CPU (the backend process), each generator's CPU and send lag, and which side
saturated (bench.capacity_helpers.classify_step). Per broker: connected devices (generators' count and the
broker's ESTABLISHED sockets), broker RSS idle/connected and per connection, and loss = sent - delivered
after a drain of up to 15 s. A figure is the broker's capacity only when the broker is the side that
saturated; on the shared 2-core machine the generators (~0.5 ms CPU per QoS 2 event) often are.
Prints a table and JSON; writes bench/results/backend_capacity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity_helpers import (
    DRAIN_S,
    GO,
    READY,
    StepEvidence,
    classify_step,
    metric_value,
    parse_rates,
    rate_between,
    role_of,
    split_counts,
    step_windows,
)
from bench.common import (
    ROOT,
    STATE_DIR,
    credentials_dir,
    host_info,
    provision,
    raise_fd_limit,
    save_result,
    text_table,
)

__all__ = ["main"]

Series = list[tuple[float, float]]  # (wall time s, counter value) samples

GENERATOR = Path(__file__).with_name("capacity_generator.py")
REALM = "capacity"
SEED = 31
SAMPLE_S = 0.25


# ---- parent -----------------------------------------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], prefix: str, deadline: float) -> str:
    """The child's next stdout line starting with `prefix`; RuntimeError when it exits or times out."""
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                break
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"generator exited (code {proc.wait()}) before {prefix.strip()}")
            if line.startswith(prefix):
                return line[len(prefix):]
        raise RuntimeError(f"generator: no {prefix.strip()} line in time")
    finally:
        sel.close()


def _metrics_text(control_url: str) -> str:
    with urllib.request.urlopen(control_url.rstrip("/") + "/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _metrics(control_url: str) -> float | None:
    return metric_value(_metrics_text(control_url), "fleetsim_collector_arrivals_total")


def _cpu(p: Any) -> float:
    try:
        t = p.cpu_times()
        return float(t.user + t.system)
    except Exception:  # the process ended: its last sample stands
        return float("nan")


def _start_generators(info: Any, args: argparse.Namespace, ids: list[str], logs: Path
                      ) -> list[subprocess.Popen[str]]:
    gens: list[subprocess.Popen[str]] = []
    offset = 0
    for i, size in enumerate(split_counts(len(ids), args.generators)):
        spec = {"info": json.loads(info.to_json()), "ids": ids[offset:offset + size], "rates": args.rates,
                "seconds": [args.seconds] * len(args.rates), "share": size / len(ids),
                "concurrency": args.concurrency, "credentials_dir": str(credentials_dir(REALM))}
        offset += size
        spec_file = logs / f"gen{i}.json"
        spec_file.write_text(json.dumps(spec))
        spec_file.chmod(0o600)  # holds the agent JWT
        with (logs / f"gen{i}.log").open("w") as err:
            pipe = subprocess.PIPE
            gens.append(subprocess.Popen([sys.executable, str(GENERATOR), str(spec_file)], cwd=ROOT,
                                         text=True, stdin=pipe, stdout=pipe, stderr=err))
    return gens


def _step_rows(args: argparse.Namespace, t0: float, series: dict[str, Series], gen_series: list[Series],
               results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step: rates over its window, CPU of every side, and the saturation verdict."""
    steps = []
    for i, (w0, w1) in enumerate(step_windows(t0, [args.seconds] * len(args.rates), args.settle)):

        def pct(samples: Series, a: float = w0, b: float = w1) -> float:
            return 100 * (rate_between(samples, a, b) or 0.0)

        gen_cpu = tuple(round(pct(s), 1) for s in gen_series)
        rows = [r["steps"][i] for r in results]
        ev = StepEvidence(
            offered=args.rates[i], sent=sum(r["sent"] for r in rows) / args.seconds,
            acked=sum(r["acked_in_step"] for r in rows) / args.seconds,
            delivered=rate_between(series["arrivals"], w0, w1) or 0.0, broker_cpu=pct(series["broker"]),
            collector_cpu=pct(series["collector"]), generator_cpu=gen_cpu,
            generator_lag_p99_ms=max(r["lag_ms_p99"] for r in rows), dropped=sum(r["dropped"] for r in rows),
            machine_cpu=pct(series["machine"]), cores=os.cpu_count() or 1)
        ours = ev.broker_cpu + ev.collector_cpu + sum(gen_cpu)
        verdict, reasons = classify_step(ev)
        steps.append({
            "offered_eps": ev.offered, "sent_eps": round(ev.sent, 1), "acked_eps": round(ev.acked, 1),
            "delivered_eps": round(ev.delivered, 1), "broker_cpu_pct": round(ev.broker_cpu, 1),
            "collector_cpu_pct": round(ev.collector_cpu, 1), "generator_cpu_pct": list(gen_cpu),
            "machine_cpu_pct": round(ev.machine_cpu, 1),
            "other_processes_cpu_pct": round(max(0.0, ev.machine_cpu - ours), 1),
            "send_lag_p99_ms": ev.generator_lag_p99_ms, "dropped": ev.dropped,
            "ack_p99_ms": max(r["ack_ms_p99"] for r in rows), "window_s": round(w1 - w0, 2),
            "saturated": verdict, "reasons": reasons})
    return steps


def measure_broker(kind: str, args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    import shutil

    import psutil

    from simulator.generator.backend_process import BackendProcess

    backend = BackendProcess(STATE_DIR / f"backend-{REALM}", realm=REALM, broker=kind, start_timeout_s=60)
    info = backend.start()
    gens: list[subprocess.Popen[str]] = []
    logs = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    try:
        assert backend.pid is not None
        back_p = psutil.Process(backend.pid)
        tree = back_p.children(recursive=True)
        broker_p = next(p for p in tree if role_of(p.name(), p.cmdline()) == "broker")
        t_prov = time.monotonic()
        provision(info, ids)
        provision_s = time.monotonic() - t_prov
        rss_idle = broker_p.memory_info().rss
        gens = _start_generators(info, args, ids, logs)
        ready = [json.loads(_read_line(g, READY, time.monotonic() + 60 + len(ids) / 20)) for g in gens]
        connected = sum(r["connected"] for r in ready)
        rss_conn = broker_p.memory_info().rss
        established = sum(1 for c in broker_p.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED)
        gen_procs = [psutil.Process(g.pid) for g in gens]
        t0 = time.time() + 1.0  # every generator starts its schedule at this wall time
        for g in gens:
            assert g.stdin is not None
            g.stdin.write(f"{GO}{t0}\n")
            g.stdin.flush()
        series: dict[str, Series] = {k: [] for k in ("arrivals", "broker", "collector", "machine")}
        gen_series: list[Series] = [[] for _ in gens]
        last_step_end = t0 + args.seconds * len(args.rates)
        end = last_step_end + DRAIN_S
        # Sample past the last step's end even when the generators are done by then: a window's rate needs a
        # sample at or after its end (else the last step read 0 events/s and 0% CPU for every side).
        while time.time() < end and (any(g.poll() is None for g in gens) or time.time() < last_step_end + 1.0):
            now = time.time()
            if (count := _metrics(info.control_url)) is not None:
                series["arrivals"].append((now, count))
            series["broker"].append((now, _cpu(broker_p)))
            series["collector"].append((now, _cpu(back_p)))
            sys_t = psutil.cpu_times()  # the whole machine, other users included: busy = not idle/iowait
            series["machine"].append((now, sum(sys_t) - sys_t.idle - getattr(sys_t, "iowait", 0.0)))
            for s, p in zip(gen_series, gen_procs, strict=True):
                if (c := _cpu(p)) == c:  # not NaN
                    s.append((now, c))
            time.sleep(SAMPLE_S)  # the sampling period itself (benchmark timing, not waiting for logic)
        results = [json.loads(_read_line(g, "RESULT ", time.monotonic() + DRAIN_S + 30)) for g in gens]
        first = series["arrivals"][0][1] if series["arrivals"] else 0.0
        delivered = int((_metrics(info.control_url) or 0) - first)
        steps = _step_rows(args, t0, series, gen_series, results)
        sent = sum(r["totals"]["sent"] for r in results)
        peak = max(steps, key=lambda s: s["delivered_eps"]) if steps else None
        mib = 2**20
        return {
            "broker": info.broker_kind, "devices": len(ids), "generators": len(gens),
            "provision_s": round(provision_s, 2), "connected": connected, "broker_established": established,
            "connect_s": max(r["connect_s"] for r in ready), "broker_rss_idle_mb": round(rss_idle / mib, 1),
            "broker_rss_connected_mb": round(rss_conn / mib, 1),
            "broker_kb_per_connection": round((rss_conn - rss_idle) / 1024 / max(1, connected), 1),
            "steps": steps,
            "sustained_eps": max((s["delivered_eps"] for s in steps if s["saturated"] == "ok"), default=None),
            "peak_delivered_eps": peak["delivered_eps"] if peak else None,
            "peak_saturated": peak["saturated"] if peak else None,
            "broker_is_bottleneck_at_peak": bool(peak and peak["saturated"] == "broker"),
            "loss": {"sent": sent, "acked": sum(r["totals"]["acked"] for r in results),
                     "ack_errors": sum(r["totals"]["ack_errors"] for r in results),
                     "delivered": delivered, "lost": sent - delivered},
            "connect_failures": [r["connect_failures"] for r in results if r["connect_failures"]],
            "collector_metrics": [ln for ln in _metrics_text(info.control_url).splitlines()
                                  if ln and not ln.startswith("#")],
        }
    except Exception as exc:  # name the cause: the generators' stderr is deleted with `logs`
        tails = [f.read_text()[-600:] for f in sorted(logs.glob("gen*.log")) if f.stat().st_size]
        raise RuntimeError(f"{exc}; generator stderr: {tails}") from exc
    finally:
        for g in gens:
            if g.poll() is None:
                g.kill()
            g.wait()
        backend.stop()
        shutil.rmtree(logs, ignore_errors=True)


def _table(doc: dict[str, Any]) -> str:
    rows = [{"broker": b["broker"], "devices": b["connected"], **{k: s[k] for k in (
        "offered_eps", "sent_eps", "acked_eps", "delivered_eps", "broker_cpu_pct", "collector_cpu_pct")},
        "gen_cpu": "/".join(f"{c:.0f}" for c in s["generator_cpu_pct"]), "saturated": s["saturated"]}
        for b in doc["brokers"] if "steps" in b for s in b["steps"]]
    cols = ["broker", "devices", "offered_eps", "sent_eps", "acked_eps", "delivered_eps", "broker_cpu_pct",
            "collector_cpu_pct", "gen_cpu", "saturated"]
    return text_table(rows, cols)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", choices=["mosquitto", "amqtt", "both"], default="both")
    ap.add_argument("--devices", type=int, default=3000)
    ap.add_argument("--rates", type=parse_rates, default=parse_rates("1000,2000,3000,4000"),
                    help="offered OTAEvents/s per step, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds at the start of a step not measured")
    ap.add_argument("--generators", type=int, default=2, help="generator processes")
    ap.add_argument("--concurrency", type=int, default=100, help="parallel connects per generator")
    ap.add_argument("--quick", action="store_true", help="300 devices, 200,400,800 ev/s, 4 s steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.devices, args.rates, args.seconds = 300, [200.0, 400.0, 800.0], 4.0
    if args.devices < 1 or args.seconds <= 0 or args.generators < 1:
        ap.error("--devices, --seconds and --generators must be positive")
    raise_fd_limit(args.devices + 500)  # inherited by the backend (broker) and the generators
    from simulator.ids import device_id

    ids = [device_id(SEED, i, "sequential", "cap") for i in range(args.devices)]
    doc: dict[str, Any] = {"bench": "backend_capacity", "host": host_info(),
                           "params": {k: getattr(args, k) for k in ("devices", "rates", "seconds", "settle",
                                                                    "generators", "quick")},
                           "definition": "OTAEvents/s (153 B BSON, QoS 2, mutual TLS) delivered to the "
                                         "collector (slope of fleetsim_collector_arrivals_total)",
                           "brokers": []}
    for kind in (["mosquitto", "amqtt"] if args.broker == "both" else [args.broker]):
        try:
            doc["brokers"].append(measure_broker(kind, args, ids))
        except Exception as exc:  # one broker failing still reports the other
            doc["brokers"].append({"broker": kind, "error": f"{type(exc).__name__}: {exc}"})
    doc["host_after"] = host_info()
    path = save_result("backend_capacity", doc)
    print(json.dumps(doc, indent=2))
    print(_table(doc))
    print(f"saved {path.relative_to(ROOT)}")
    return 0 if all("error" not in b for b in doc["brokers"]) else 1


if __name__ == "__main__":
    sys.exit(main())
