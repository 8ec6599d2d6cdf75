"""Closed-loop figures (issue 13): devices answering a campaign on the embedded backend; real image downloads.

    python bench/campaign_loop.py                 # both parts, prints JSON
    python bench/campaign_loop.py --part ack --devices 1000 --max-in-progress 100
    python bench/campaign_loop.py --part download --devices 100 --size 10MiB

Part `ack`: `fleetsim run` (lean transport, mosquitto) with `mode: campaign`; the embedded campaign driver
rolls an update out to every device with `max_in_progress` slots; reported: request->Acknowledged p50/p99 from
the devices' side (the OTARequest reaching the device -> the broker's PUBCOMP of its Acknowledged), the driver's
own request->first event, request->final, campaign duration, peak in flight.
Part `download`: the same with `download: fetch` of a `size` image from the embedded image server
(unthrottled); reported: per-download MB/s p50/min and the aggregate MB/s the fleet received.
Both are one `fleetsim run` each (results in a temporary directory); a figure from a machine shared with other
work is only indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = """\
name: bench-{part}
seed: 13
fleet: {{devices: {devices}, target_version: 1.1.0}}
time_scale: 60
duration: {duration}s
transport: lean
mode: campaign
campaign: {{max_in_progress: {slots}, request_timeout: 30m, request_retries: 3, max_failure_percentage: 100,
           url: "{url}"}}
lifecycle:
  random:
    outcomes: {{success: 1.0}}
    download: {download}
    download_duration: 30s
    deploy_duration: 20s
    reboot_duration: 15s
"""


def _run(part: str, devices: int, slots: int, duration: int, download: str, url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"fleetsim-bench-{part}-") as tmp:
        scenario = Path(tmp) / "scenario.yaml"
        scenario.write_text(SCENARIO.format(part=part, devices=devices, slots=slots, duration=duration,
                                            download=download, url=url))
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "simulator", "run", str(scenario), "--results", f"{tmp}/results",
             "--state-dir", f"{tmp}/state", "--quiet"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True,
            timeout=duration + 600)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"fleetsim run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        (run_dir,) = list((Path(tmp) / "results").iterdir())
        summary = json.loads((run_dir / "summary.json").read_text())
    extra = summary["extra"]
    return {"metrics": extra["campaign_metrics"], "driver": extra.get("campaign") or {}, "wall_s": round(wall, 1),
            "verdict": summary.get("verdict")}


def part_ack(devices: int, slots: int) -> dict[str, Any]:
    out = _run("ack", devices, slots, 300, "simulate", "https://updates.fleetsim.invalid/bundle.raucb")
    m, d = out["metrics"], out["driver"]
    return {
        "part": "ack", "devices": devices, "max_in_progress": slots, "answered": m["answered"],
        "request_to_ack_ms": {k: m["request_to_ack"][k] for k in ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms")},
        "driver_time_to_ack_ms": {k: None if d.get("time_to_ack_s", {}).get(k) is None
                                  else round(d["time_to_ack_s"][k] * 1000, 3) for k in ("p50", "p99", "max")},
        "request_to_final_ms": {k: m["request_to_final"][k] for k in ("p50_ms", "p99_ms")},
        "campaign_duration_s": m["campaign_duration_s"], "peak_in_flight": m["peak_in_flight"],
        "over_limit": m["over_limit"], "converged": (m["convergence"] or {}).get("converged"),
        "diverged": (m["convergence"] or {}).get("diverged_count"), "run_wall_s": out["wall_s"],
    }


def part_download(devices: int, size: str) -> dict[str, Any]:
    out = _run("download", devices, devices, 300, "fetch", f"{{images}}/os.raucb?size={size}")
    dl = out["metrics"]["downloads"]
    return {"part": "download", "devices": devices, "size": size, **dl, "run_wall_s": out["wall_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["ack", "download", "both"], default="both")
    parser.add_argument("--devices", type=int, default=0, help="default: 1000 (ack), 100 (download)")
    parser.add_argument("--max-in-progress", type=int, default=100)
    parser.add_argument("--size", default="10MiB")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    if args.part in ("ack", "both"):
        results.append(part_ack(args.devices or 1000, args.max_in_progress))
    if args.part in ("download", "both"):
        results.append(part_download(args.devices or 100, args.size))
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps({"bench": "campaign_loop", "machine": machine,
                      "note": "one run each on a shared machine: indicative", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
