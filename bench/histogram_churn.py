"""RSS of one recorder fed for N simulated seconds, with and without reuse of its per-second HDR histograms.

Every second a recorder opens a few HDR histograms (184 KiB of counters each) and frees them when the second
seals; between them a run keeps small objects for a while (the join remembers keys 60 s). This replays that
in one process without a broker (a VirtualClock, events fed straight to the recorder, sealed seconds shipped
every 3 s as a worker does) and prints the RSS at second 100, half-way and the end, for `--reuse 0` (what the
code did before simulator.metrics.histograms.release_hdr) and `--reuse 1`:

    python bench/histogram_churn.py --seconds 1500 --rate 200 --reuse 0
    python bench/histogram_churn.py --seconds 1500 --rate 200 --reuse 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.clock import VirtualClock
from simulator.events import EventKey
from simulator.metrics import histograms
from simulator.metrics.recorder import MetricsRecorder
from simulator.records import SendRecord

KEEP_S = 60  # the join remembers delivered keys this long (metrics.online_join, JoinWindows.remember_s)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=1500)
    ap.add_argument("--rate", type=int, default=200, help="events per simulated second")
    ap.add_argument("--reuse", type=int, choices=(0, 1), default=1, help="0: no histogram reuse (as before)")
    args = ap.parse_args(argv)
    if not args.reuse:
        histograms.FREE_MAX = 0
    rec = MetricsRecorder(VirtualClock(), start=0.0, keep_send_log=False)
    recent: deque[tuple[EventKey, float]] = deque()
    marks: dict[int, float] = {}
    cpu0 = time.process_time()
    for s in range(args.seconds):
        for i in range(args.rate):
            t = s + i / args.rate
            r = SendRecord((f"dev{i % 1000}", f"u{s}", "Acknowledged", 0, i), t, t + 0.001, None)
            rec.on_send(r)
            r.acked = t + 0.003
            rec.on_ack(r)
            recent.append((r.key, t))
        while recent and recent[0][1] < s - KEEP_S:
            recent.popleft()
        if s in (100, args.seconds // 2, args.seconds - 1):
            marks[s] = round(rss_mb(), 1)
        if s % 3 == 0:
            rec.take_sealed()
    first, last = min(marks), max(marks)
    print(json.dumps({"reuse": bool(args.reuse), "rss_mb_at_second": marks,
                      "growth_mb": round(marks[last] - marks[first], 1),
                      "cpu_s": round(time.process_time() - cpu0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
