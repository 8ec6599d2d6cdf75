"""Result files of a run: summary.json, timeseries.csv, latency.hlog, events.*.csv, report.html, and the
terminal table.

Layout: `results/<UTC YYYYmmddTHHMMSSZ>-<scenario>/` (summary.results_dir); bundle.write_results writes
it all.
"""

from __future__ import annotations

from simulator.outputs.bundle import write_results
from simulator.outputs.html import rebuild_report, render_report, write_report
from simulator.outputs.summary import SCHEMA_VERSION, read_summary, results_dir, summarize, write_summary
from simulator.outputs.terminal import format_summary

__all__ = [
    "SCHEMA_VERSION",
    "format_summary",
    "read_summary",
    "rebuild_report",
    "render_report",
    "results_dir",
    "summarize",
    "write_report",
    "write_results",
    "write_summary",
]
