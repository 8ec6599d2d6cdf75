"""Issue 14: memory the results-writing process keeps per second of run for the per-second series.

Plays a steady run on a virtual clock, without a network: every second `--rate` events (sent, acked a few ms
later, and seen by an observer: the join's e2e seconds), through the same metrics objects a run uses:

  local   one process: its MetricsRecorder and its OnlineJoin (spooled when the tree has metrics.second_spool)
  master  `--workers` Locust workers, each with its own recorder and join shipping sealed seconds every 3 s
          (take_sealed, as hooks._report does) to the master's SecondsInbox per worker (hooks._worker_report)

It reports tracemalloc's traced bytes (the Python heap: not RSS, so other processes' load does not blur it)
at `--from` seconds of run and at the end, and their slope in bytes per second of run; then the peak while
timeseries.csv and latency.hlog are written from what was kept (the end of a run). `--tree` runs the same
against another source tree (e.g. /work/main, before the spools) in a subprocess:

    python bench/seconds_memory.py --seconds 1200 --rate 500
    python bench/seconds_memory.py --seconds 1200 --rate 500 --tree /path/to/other/checkout
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REPORT_EVERY_S = 3  # Locust's WORKER_REPORT_INTERVAL


def _inbox_class() -> Any:
    try:
        from simulator.metrics.seconds_inbox import SecondsInbox
    except ImportError:  # a tree from before the spools
        from simulator.metrics.second_bucket import SecondsInbox  # type: ignore[attr-defined,no-redef]
    return SecondsInbox


def _play(mode: str, seconds: int, rate: int, workers: int, sample_from: int) -> dict[str, Any]:
    from simulator.clock import VirtualClock
    from simulator.metrics.accounting import accounting_of
    from simulator.metrics.online_join import JoinWindows, OnlineJoin
    from simulator.metrics.recorder import MetricsRecorder
    from simulator.records import ArrivalRecord, SendRecord

    inbox_class = _inbox_class()
    clock = VirtualClock()
    start = clock.wall()
    windows = JoinWindows()
    procs = 1 if mode == "local" else workers
    # keep_send_log=False: a run streams its send log to disk (metrics.books), not into memory
    recorders = [MetricsRecorder(clock, start=start, keep_send_log=False) for _ in range(procs)]
    joins = [OnlineJoin(start, windows) for _ in range(procs)]
    spooled = mode == "local" and hasattr(recorders[0], "spool_seconds")
    if spooled:
        recorders[0].spool_seconds()
        joins[0].spool_seconds()
    inboxes = [inbox_class(start) for _ in range(procs)]
    join_inboxes = [inbox_class(start) for _ in range(procs)]
    tracemalloc.start()
    samples: dict[int, int] = {}
    k = 0
    for second in range(seconds):
        for n in range(rate):
            at = start + second + n / rate
            clock.set(at + 0.02 - start)
            w = k % procs
            rec = SendRecord(key=(f"d{k % 300}", "op", "Downloading", k, 0), intended=at, sent=at + 0.0005,
                             t_ms=round(at * 1000))
            recorders[w].on_send(rec)
            rec.acked = at + 0.002 + (k % 13) / 1000
            recorders[w].on_ack(rec)
            joins[w].add_send(rec)
            joins[w].on_ack(rec)
            joins[w].add_arrival(ArrivalRecord(key=rec.key, arrival=at + 0.005 + (k % 7) / 1000, t_ms=rec.t_ms))
            k += 1
        for join in joins:
            join.tick(start + second + 1)
        if mode == "master" and second % REPORT_EVERY_S == REPORT_EVERY_S - 1:
            for w in range(procs):
                inboxes[w].add(recorders[w].take_sealed())
                join_inboxes[w].add(joins[w].take_sealed())
        if second + 1 in (sample_from, seconds):
            # hdrh's histograms sit in reference cycles: decoded ones (the master merging shipped seconds) wait
            # for a full collection, ~90 KB each; collect so that only what is kept is counted.
            gc.collect()
            samples[second + 1] = tracemalloc.get_traced_memory()[0]
    end = start + seconds
    # The end of the run: the results-writing process's recorder and accounting, then the two files.
    from simulator.metrics import series as series_mod
    from simulator.outputs.csv_logs import write_timeseries
    from simulator.outputs.hdrlog import write_hlog

    gc.collect()
    tracemalloc.reset_peak()
    before_end = tracemalloc.get_traced_memory()[0]
    if mode == "local":
        recorder, accounting = recorders[0], accounting_of(joins[0], end, 10.0)
    else:
        recorder = MetricsRecorder(clock, start=start)
        for inbox in inboxes:
            recorder.absorb_seconds(inbox)
        for w in range(procs):
            recorder.merge(recorders[w].final_export())
        accounting = accounting_of(OnlineJoin(start, windows), end, 10.0)
        for w in range(procs):
            joins[w].finish(end, 10.0)
            join_inboxes[w].add(joins[w].take_sealed())
        if hasattr(accounting, "inboxes"):
            accounting.inboxes.extend((inbox, 0) for inbox in join_inboxes)
        else:
            for inbox in join_inboxes:
                inbox.move_into(accounting.seconds, start)
    with tempfile.TemporaryDirectory() as tmp:
        rows = getattr(series_mod, "iter_series", series_mod.build_series)(recorder, accounting, float(seconds))
        write_timeseries(Path(tmp) / "timeseries.csv", rows)
        hists = getattr(series_mod, "iter_second_histograms", series_mod.second_histograms)(recorder, accounting)
        write_hlog(Path(tmp) / "latency.hlog", hists, start)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        with open(Path(tmp) / "timeseries.csv", encoding="utf-8") as f:
            lines = sum(1 for _ in f) - 1
        hlog_bytes = os.path.getsize(Path(tmp) / "latency.hlog")
    grew = samples[seconds] - samples[sample_from]
    return {"mode": mode, "spooled": spooled, "seconds": seconds, "rate": rate, "workers": procs,
            "traced_bytes": {str(s): b for s, b in samples.items()},
            "bytes_per_run_second": round(grew / (seconds - sample_from), 1),
            "end_peak_over_run_bytes": peak - before_end, "timeseries_rows": lines, "hlog_bytes": hlog_bytes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=1200, help="seconds of run played (virtual)")
    ap.add_argument("--rate", type=int, default=500, help="events per second")
    ap.add_argument("--workers", type=int, default=2, help="Locust workers in master mode")
    ap.add_argument("--from", dest="sample_from", type=int, default=300, help="growth measured from here (s)")
    ap.add_argument("--mode", choices=("local", "master", "both"), default="both")
    ap.add_argument("--tree", type=Path, default=None, help="run against this source tree instead")
    args = ap.parse_args()
    if args.tree is not None:
        argv = list(sys.argv[1:])
        i = argv.index("--tree")
        del argv[i:i + 2]
        env = {**os.environ, "PYTHONPATH": str(args.tree)}
        code = (f"import runpy, sys; sys.path.insert(0, {str(args.tree)!r}); sys.argv = {['x', *argv]!r}; "
                f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')")
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=str(args.tree))
        return
    import simulator

    modes = ("local", "master") if args.mode == "both" else (args.mode,)
    for mode in modes:
        out = _play(mode, args.seconds, args.rate, args.workers, args.sample_from)
        out["tree"] = str(Path(simulator.__file__).resolve().parent.parent)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
