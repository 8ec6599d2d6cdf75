"""JUnit XML for CI systems: one testcase per threshold; a failure element naming the breach, a skipped
element for a threshold whose metric had no value (`unknown`, with its reason; issue 7, issue 15)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from simulator.metrics.run_summary import ThresholdReport

__all__ = ["JUNIT_FILE", "write_junit"]

JUNIT_FILE = "junit.xml"


def write_junit(run_dir: Path, scenario: str, report: ThresholdReport) -> Path:
    results = report.results
    failures = report.breached
    skipped = [r for r in results if r.status == "unknown" and r.ok]
    suite = ET.Element("testsuite", name=f"fleetsim.{scenario}", tests=str(len(results)),
                       failures=str(len(failures)), errors="0", skipped=str(len(skipped)))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"fleetsim.{scenario}.thresholds",
                             name=f"{r.metric} {r.threshold}")
        if not r.ok:
            failure = ET.SubElement(case, "failure", message=f"{r.metric}: {r.reason}", type="threshold")
            failure.text = f"{r.metric} {r.threshold}: {r.reason}"
        elif r.status == "unknown":
            ET.SubElement(case, "skipped", message=f"{r.metric}: {r.reason}")
    path = run_dir / JUNIT_FILE
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)
    return path
