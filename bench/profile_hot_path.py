"""Where the publish path spends its CPU: py-spy on a throughput benchmark child (`lean` by default).

    python bench/profile_hot_path.py --devices 1000 --seconds 10     # prints the top frames
    python bench/profile_hot_path.py --system engine                 # the whole engine (run_all.py does this)
    python bench/profile_hot_path.py --system paho                   # the bare-paho loop, for comparison

The child (bench/throughput.py --child <system>) connects the devices, then runs the closed loop (one QoS 2
OTAEvent in flight per device); py-spy attaches only once it prints that it is publishing, so connects and
TLS handshakes stay out of the profile. py-spy samples the OS thread's stack: under gevent that is whichever
greenlet is running, which is what CPU attribution needs. Output: the top frames by own time ("self": the
sampled leaf) and by inclusive time ("total": anywhere on the stack), as % of samples; raw collapsed stacks in
bench/results/profile_hot_path.folded (flamegraph.pl / speedscope can read them).
Needs py-spy (`pip install py-spy`, in the dev extras) and ptrace rights over the child (root, or
kernel.yama.ptrace_scope = 0).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    RESULTS_DIR,
    ROOT,
    credentials_dir,
    find_py_spy,
    host_info,
    provision,
    save_result,
    start_backend,
    text_table,
)
from bench.throughput import PUBLISHING_MARK

__all__ = ["main", "top_frames"]


def top_frames(folded_lines: list[str], limit: int = 25) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's raw format (`frame;frame;leaf count` per line): top frames by self and by total %."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in folded_lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return {"self": [], "total": []}
    return {
        key: [(frame, round(100.0 * n / samples, 1)) for frame, n in counter.most_common(limit)]
        for key, counter in (("self", own), ("total", total))
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0, help="profiled publishing time (s)")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--system", default="lean", choices=["engine", "lean", "paho", "sdk", "mqttuser"])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args()
    spy = find_py_spy()
    if spy is None:
        print("profile_hot_path: py-spy not found; pip install py-spy", file=sys.stderr)
        return 2
    backend = start_backend("bench", collector=False)
    folded = RESULTS_DIR / "profile_hot_path.folded"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        info = backend.info
        from simulator.ids import device_id

        provision(info, [device_id(args.seed, i) for i in range(args.devices)])
        child_info = json.dumps(
            {
                "realm": info.realm,
                "pairing_url": info.pairing_url,
                "agent_jwt": info.agent_jwt,
                "ca_file": info.ca_file,
                "host": info.broker_host,
                "port": info.broker_port,
                "credentials_dir": str(credentials_dir(info.realm)),
            }
        )
        cmd = [
            sys.executable,
            str(ROOT / "bench" / "throughput.py"),
            "--child",
            args.system,
            "--devices",
            str(args.devices),
            "--warmup",
            "0.5",
            "--seconds",
            str(args.seconds + 2),
            "--seed",
            str(args.seed),
            "--info",
            child_info,
        ]
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stderr is not None
            for line in child.stderr:  # the child says when it starts publishing
                if PUBLISHING_MARK in line:
                    break
            else:
                print("profile_hot_path: the child ended before publishing", file=sys.stderr)
                return 1
            spy_run = subprocess.run(
                [
                    spy,
                    "record",
                    "--pid",
                    str(child.pid),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "-o",
                    str(folded),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            out, _ = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    finally:
        backend.stop()
    if spy_run.returncode != 0 or not folded.exists():
        print(f"profile_hot_path: py-spy failed: {spy_run.stderr[-1500:]}", file=sys.stderr)
        return 1
    frames = top_frames(folded.read_text().splitlines(), args.top)
    result_line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    throughput: dict[str, Any] = json.loads(result_line[-1][7:]) if result_line else {}
    doc = {
        "bench": "profile_hot_path",
        "system": args.system,
        "devices": args.devices,
        "host": host_info(),
        "throughput": throughput,
        "top_self": frames["self"],
        "top_total": frames["total"],
        "folded": str(folded.relative_to(ROOT)),
    }
    for key in ("self", "total"):
        print(f"\ntop frames by {key} time (% of samples):", file=sys.stderr)
        print(
            text_table([{"%": pct, "frame": frame} for frame, pct in frames[key]], ["%", "frame"]),
            file=sys.stderr,
        )
    save_result("profile_hot_path", doc)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
