"""Issue 14: what the online join keeps per event when the observer falls behind, and what a tick costs.

Two measures, on a virtual clock, without a network, through simulator.metrics.online_join.OnlineJoin:

  entry    tracemalloc's traced bytes per event (the Python heap: not RSS, so other processes' load does not
           blur it) with `--entries` events in flight (sent and acked), then with all of them unmatched (evicted
           past grace_s, never seen): the growth from n to 2n events. Keys look like a run's: a 22-character
           device id among 300 devices, a 36-character request uuid per 8 events (those strings exist before,
           as the plan's do; the key tuple is made per event, as a run does).
  behind   `--seconds` s of run at `--rate` events/s while the observer delivers `--observed` events/s (oldest
           first, like a collector that fell behind), as a Locust worker's join (its sealed seconds shipped every
           3 s): traced bytes at the end of play, the join's tables, and
           the CPU time (process_time) spent in `tick` (one tick per second of run, as the books do): total,
           mean, median and the largest tick, and per event sent (add_send + on_ack, with the record made);
           then the peak over that while the join finishes (accounting_of:
           every unmatched event listed as lost).
           A tree whose OnlineJoin takes a spill file gets one in a temporary dir (unmatched_store).

`--tree` runs the same against another source tree (e.g. a checkout of main before the bounds):

    python bench/join_memory.py
    python bench/join_memory.py --tree /path/to/other/checkout
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

GRACE_S = 30.0  # JoinWindows() throughout: grace_s 30, ack_timeout_s 60, remember_s 60
REMEMBER_S = 60.0
REPORT_EVERY_S = 3  # Locust's WORKER_REPORT_INTERVAL


class _Keys:
    """Event k's key, made when asked (a run makes one per event); its strings exist before (a plan's do)."""

    def __init__(self, n: int) -> None:
        self.devices = [f"{i:022d}" for i in range(300)]
        self.uuids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(n // 8 + 1)]

    def __getitem__(self, k: int) -> tuple[str, str, str, int, int]:
        return (self.devices[k % 300], self.uuids[k // 8], "Downloading", k % 8, 0)


def _join(start: float, spill_dir: str | None) -> Any:
    from simulator.metrics.online_join import JoinWindows, OnlineJoin

    if spill_dir is not None and "spill" in inspect.signature(OnlineJoin).parameters:
        return OnlineJoin(start, JoinWindows(), Path(spill_dir) / "join.unmatched.sqlite")
    return OnlineJoin(start, JoinWindows())


def _fill(n: int, unmatched: bool) -> tuple[int, Any]:
    """Traced bytes of a join holding `n` events in flight (all sent and acked, none ticked), or `n` unmatched:
    sent at 1,000/s with a tick a second (in flight stays ~30 s of them), then ticked past remember_s."""
    from simulator.records import SendRecord

    start = 1_700_000_000.0
    keys = _Keys(n)
    _join(start, None)  # imports done before tracing: only what the join keeps is counted
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    join = _join(start, None)
    for k in range(n):
        key = keys[k]
        at = start + k / 1000
        if unmatched and k % 1000 == 0:
            join.tick(at)
        rec = SendRecord(key=key, intended=at, sent=at + 0.0005, t_ms=round(at * 1000))
        join.add_send(rec)
        rec.acked = at + 0.003
        join.on_ack(rec)
    del rec
    if unmatched:
        join.tick(start + n / 1000 + REMEMBER_S + 1)  # every one unseen past grace, their bases forgotten
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    totals = join.totals()
    assert (totals.unmatched, totals.in_flight) == ((n, 0) if unmatched else (0, n)), totals
    return traced, join


def _entry(n: int) -> dict[str, Any]:
    """Bytes per event: the growth from n to 2n events (what the tables' fixed part and peak sizes do not blur)."""
    out: dict[str, Any] = {"measure": "entry", "entries": n}
    for name, unmatched in (("in_flight", False), ("unmatched", True)):
        small, _ = _fill(n, unmatched)
        large, _ = _fill(2 * n, unmatched)
        out[f"{name}_bytes_per_event"] = round((large - small) / n, 1)
    return out


def _behind(seconds: int, rate: int, observed: int, traced: bool) -> dict[str, Any]:
    from simulator.metrics.accounting import accounting_of
    from simulator.records import ArrivalRecord, SendRecord

    start = 1_700_000_000.0
    keys = _Keys(seconds * rate)
    _join(start, None)
    seen = 0  # the slow observer delivers events in send order: keys[seen] is the next one (no record held here)
    with tempfile.TemporaryDirectory() as spill_dir:
        gc.collect()
        if traced:
            tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        join = _join(start, spill_dir)
        ticks: list[float] = []
        k = 0
        send_cpu = 0.0
        for second in range(seconds):
            t0 = time.process_time()
            for n in range(rate):
                at = start + second + n / rate
                rec = SendRecord(key=keys[k], intended=at, sent=at + 0.0005, t_ms=round(at * 1000))
                join.add_send(rec)
                rec.acked = at + 0.003
                join.on_ack(rec)
                k += 1
            send_cpu += time.process_time() - t0
            for n in range(min(observed, k - seen)):
                sent_at = start + seen // rate + (seen % rate) / rate
                join.add_arrival(ArrivalRecord(key=keys[seen], arrival=start + second + n / observed,
                                               t_ms=round(sent_at * 1000)))
                seen += 1
            t0 = time.process_time()
            join.tick(start + second + 1)
            ticks.append(time.process_time() - t0)
            if second % REPORT_EVERY_S == REPORT_EVERY_S - 1:
                join.take_sealed()  # a worker ships its sealed seconds with each report (they leave its memory)
        del rec
        gc.collect()
        end = tracemalloc.get_traced_memory()[0] - base
        peak = tracemalloc.get_traced_memory()[1] - base
        totals = join.totals()
        tracemalloc.reset_peak()
        accounting = accounting_of(join, start + seconds, 10.0)  # the end of the run: every unmatched is lost
        finish_peak = tracemalloc.get_traced_memory()[1] - base - end
        tracemalloc.stop()
        lost = accounting.lost
        del accounting
        out = {"measure": "behind" if traced else "behind_cpu", "seconds": seconds, "rate": rate,
               "observed": observed, "lost": lost,
               **({"traced_bytes_end": end, "traced_peak_bytes": peak, "finish_peak_over_end_bytes": finish_peak}
                  if traced else {}),
               "send_cpu_us_per_event": round(send_cpu / (seconds * rate) * 1e6, 2),
               "tick_cpu_s": round(sum(ticks), 3),
               "tick_cpu_ms": {"mean": round(sum(ticks) / seconds * 1000, 3),
                               "p50": round(sorted(ticks)[seconds // 2] * 1000, 3),
                               "max": round(max(ticks) * 1000, 3)},
               "totals": {f: getattr(totals, f) for f in ("in_flight", "unmatched", "held", "spilled",
                                                          "evicted_then_arrived", "delivered")
                          if hasattr(totals, f)}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000, help="events for the per-entry measure")
    ap.add_argument("--seconds", type=int, default=300, help="seconds of run played (virtual) behind")
    ap.add_argument("--rate", type=int, default=2000, help="events sent per second")
    ap.add_argument("--observed", type=int, default=150, help="events per second the observer delivers")
    ap.add_argument("--measure", choices=("entry", "behind", "cpu", "all"), default="all",
                    help="cpu: `behind` without tracemalloc (which slows every allocation), for tick CPU times")
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

    tree = str(Path(simulator.__file__).resolve().parent.parent)
    if args.measure in ("entry", "all"):
        print(json.dumps({**_entry(args.entries), "tree": tree}), flush=True)
    for measure, traced in (("behind", True), ("cpu", False)):
        if args.measure in (measure, "all"):
            out = _behind(args.seconds, args.rate, args.observed, traced)
            print(json.dumps({**out, "tree": tree}), flush=True)


if __name__ == "__main__":
    main()
