"""Write every result file of a finished run into its directory (the runner's one call at the end)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from simulator.metrics.accounting import Accounting
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.run_summary import RunSummary
from simulator.metrics.series import build_series, combined_histograms, second_histograms
from simulator.outputs.csv_logs import (
    ARRIVALS_FILE,
    SENT_FILE,
    TIMESERIES_FILE,
    write_arrival_log,
    write_send_log,
    write_timeseries,
)
from simulator.outputs.hdrlog import HLOG_FILE, write_hlog
from simulator.outputs.html import write_report
from simulator.outputs.summary import write_summary
from simulator.records import ArrivalRecord

__all__ = ["write_results"]


def write_results(
    run_dir: str | os.PathLike[str],
    summary: RunSummary,
    recorder: MetricsRecorder,
    accounting: Accounting | None = None,
    arrivals: Sequence[ArrivalRecord] = (),
    logs: Callable[[Path], dict[str, Path]] | None = None,
) -> dict[str, Path]:
    """summary.json, timeseries.csv, latency.hlog, events.sent.csv, events.arrivals.csv, report.html.

    With `logs` the two event logs were streamed to disk during the run: `logs(root)` moves (or merges) them
    into the folder and returns {"sent": path, "arrivals": path}; `recorder.send_log` and `arrivals` are then
    not used."""
    root = Path(run_dir)
    series = build_series(recorder, accounting, float(summary.duration_s))
    hists = combined_histograms(recorder, accounting)
    if logs is not None:
        moved = logs(root)
        sent, arrived = moved["sent"], moved["arrivals"]
    else:
        sent = write_send_log(root / SENT_FILE, recorder.send_log)
        arrived = write_arrival_log(root / ARRIVALS_FILE, arrivals)
    return {
        "summary": write_summary(root, summary),
        "timeseries": write_timeseries(root / TIMESERIES_FILE, series),
        "hlog": write_hlog(root / HLOG_FILE, second_histograms(recorder, accounting), recorder.start),
        "sent": sent,
        "arrivals": arrived,
        "report": write_report(root, summary, series, hists),
    }
