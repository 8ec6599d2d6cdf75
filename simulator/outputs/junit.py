"""JUnit XML for CI systems: one testcase per threshold, a failure element naming the breach (issue 7)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["JUNIT_FILE", "write_junit"]

JUNIT_FILE = "junit.xml"


def write_junit(run_dir: Path, scenario: str, report: Mapping[str, Any]) -> Path:
    results = list(report.get("results", []))
    failures = [r for r in results if not r.get("ok")]
    suite = ET.Element("testsuite", name=f"fleetsim.{scenario}", tests=str(len(results)),
                       failures=str(len(failures)), errors="0")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"fleetsim.{scenario}.thresholds",
                             name=f"{r['metric']} {r['threshold']}")
        if not r.get("ok"):
            failure = ET.SubElement(case, "failure", message=f"{r['metric']}: {r['reason']}", type="threshold")
            failure.text = f"{r['metric']} {r['threshold']}: {r['reason']}"
    path = run_dir / JUNIT_FILE
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)
    return path
