"""The exit code of a run and the console's last lines that say why (issue 15 item 2).

Codes (README "Exit codes"):
  0    ok: no threshold breached, the verdict is not incomplete/invalid_*
  1    a threshold breached (or `unknown` with `on_missing: fail`)
  4    the verdict is `incomplete` or `invalid_*`: the run did not offer the load it planned (devices never
       online, ...), so its numbers are not the scenario's. `--allow-incomplete` turns this into 0.
  130  interrupted (Ctrl-C, SIGTERM): partial results written, thresholds still reported.
(2, bad input, is raised before a run and 3, an internal error, by the CLI; neither comes from here.)
The same rules give `fleetsim run`'s exit code and plain Locust's `environment.process_exit_code`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulator.metrics.health import INCOMPLETE
from simulator.metrics.run_summary import RunSummary, ThresholdResult

__all__ = ["EXIT_INCOMPLETE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_THRESHOLDS", "ExitStatus", "exit_status",
           "status_lines"]

EXIT_OK = 0
EXIT_THRESHOLDS = 1
EXIT_INCOMPLETE = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ExitStatus:
    code: int
    reasons: tuple[str, ...]  # one line each, why the code is not 0 (empty when 0)


def _describe(r: ThresholdResult) -> str:
    observed = "no value" if r.observed is None else f"{r.observed:g}{' ' + r.unit if r.unit else ''}"
    return f"{r.metric}: observed {observed}, required {r.threshold}" + (
        f" ({r.reason})" if r.status == "unknown" else "")


def _incomplete(verdict: str) -> bool:
    return verdict == INCOMPLETE or verdict.startswith("invalid_")


def exit_status(summary: RunSummary, *, partial: bool, allow_incomplete: bool = False, interrupted: bool = True,
                notes: Sequence[str] = ()) -> ExitStatus:
    """The exit code of a finished run and why, by the rules of the module docstring. A partial run that was
    not interrupted (its observer was lost at the end) still exits 130; `notes` say what its results lack."""
    report = summary.thresholds
    breached = report.breached if report is not None else ()
    reasons = [f"threshold breached: {_describe(r)}" for r in breached]
    if _incomplete(summary.verdict) and not partial:
        reasons.append(f"verdict {summary.verdict}: " + ("; ".join(summary.verdict_reasons) or "see summary.json")
                       + ("" if allow_incomplete else " (--allow-incomplete accepts it)"))
    if partial:
        first = "interrupted: partial results" if interrupted else "partial results"
        return ExitStatus(EXIT_INTERRUPTED, (first, *notes, *reasons))
    reasons[:0] = notes
    if breached:
        return ExitStatus(EXIT_THRESHOLDS, tuple(reasons))
    if _incomplete(summary.verdict) and not allow_incomplete:
        return ExitStatus(EXIT_INCOMPLETE, tuple(reasons))
    return ExitStatus(EXIT_OK, ())


def status_lines(summary: RunSummary, status: ExitStatus) -> list[str]:
    """The console's last lines: every threshold not passed (breached, unknown), then verdict and exit code."""
    out: list[str] = []
    report = summary.thresholds
    if report is not None:
        passed = sum(1 for r in report.results if r.status == "pass")
        out.append(f"thresholds: {passed}/{len(report.results)} passed"
                   + (f", {len(report.breached)} breached" if report.breached else "")
                   + (f", {len(report.unknown)} unknown (on_missing: {report.on_missing})" if report.unknown else ""))
        for r in report.results:
            if r.status == "fail":
                out.append(f"  BREACHED {_describe(r)}")
            elif r.status == "unknown":
                out.append(f"  {'BREACHED' if not r.ok else 'unknown'} {_describe(r)}")
    out.append(f"verdict: {summary.verdict}"
               + (f" ({'; '.join(summary.verdict_reasons)})" if summary.verdict_reasons else ""))
    why = "; ".join(r for r in status.reasons if not r.startswith("threshold breached"))
    out.append(f"exit {status.code}" + (f": {why}" if why else ": thresholds breached" if status.code == 1
                                         else ""))
    return out
