"""Write every result file of a finished run into its directory (the runner's one call at the end)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from simulator.metrics.accounting import Accounting
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.run_summary import RunSummary
from simulator.metrics.series import combined_histograms, iter_second_histograms, iter_series
from simulator.outputs.csv_logs import (
    ARRIVALS_FILE,
    SENT_FILE,
    TIMESERIES_FILE,
    read_timeseries,
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
    hists = combined_histograms(recorder, accounting)
    if logs is not None:
        moved = logs(root)
        sent, arrived = moved["sent"], moved["arrivals"]
    else:
        sent = write_send_log(root / SENT_FILE, recorder.send_log)
        arrived = write_arrival_log(root / ARRIVALS_FILE, arrivals)
    summary_path = write_summary(root, summary)
    # timeseries.csv and latency.hlog are written one second at a time (the seconds may be read back from the
    # recorder's and the join's spools on disk, issue 14); the report reads its series back from the csv, as
    # `fleetsim report RUN` does, so the run's report and a rebuilt one are the same page.
    timeseries = write_timeseries(root / TIMESERIES_FILE, iter_series(recorder, accounting,
                                                                      float(summary.duration_s)))
    hlog = write_hlog(root / HLOG_FILE, iter_second_histograms(recorder, accounting), recorder.start)
    return {
        "summary": summary_path,
        "timeseries": timeseries,
        "hlog": hlog,
        "sent": sent,
        "arrivals": arrived,
        "report": write_report(root, summary, read_timeseries(timeseries), hists),
    }
