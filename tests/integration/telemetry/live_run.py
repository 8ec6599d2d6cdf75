"""`fleetsim run` with --metrics-port (and --otlp) in a subprocess, scraped from the test while it runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# Events spread over ~6 s (4 operations 1 s apart, each ~3 s of device time at time_scale 60), then quiet for
# more than a Locust worker report interval (3 s) before the run ends: the last scrape must equal the summary.
SCENARIO = """\
name: live
realm: fleetsim
seed: 5
fleet: {devices: 4}
time_scale: 60
duration: 11s
transport: lean
arrival: {model: constant, rate: 1, count: 4}
lifecycle:
  random:
    outcomes: {success: 0.75, rollback: 0.25}
    download_duration: 60s
    deploy_duration: 60s
    reboot_duration: 30s
    acknowledge_delay: 1s
"""

Series = dict[tuple[tuple[str, str], ...], float]


@dataclass
class Scrape:
    at: float
    samples: dict[str, Series]

    def value(self, name: str, **labels: str) -> float:
        want = tuple(sorted(labels.items()))
        return sum(v for k, v in self.samples.get(name, {}).items() if set(want) <= set(k))


@dataclass
class LiveRun:
    proc: subprocess.CompletedProcess[str]
    run_dir: Path
    scrapes: list[Scrape] = field(default_factory=list)
    raw_names: set[str] = field(default_factory=set)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> tuple[Scrape, set[str]]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    samples: dict[str, Series] = {}
    names: set[str] = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        if fam.type == "counter":  # declared (HELP/TYPE) even before its first sample, e.g. no error yet
            names.add(fam.name + "_total")
        for s in fam.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
            names.add(s.name)
    return Scrape(time.time(), samples), names


def run_live(tmp: Path, extra: list[str]) -> LiveRun:
    """`fleetsim run` of SCENARIO with --metrics-port, scraped every 0.5 s until it exits."""
    scenario = tmp / "live.yaml"
    scenario.write_text(SCENARIO)
    port = free_port()
    return scrape_process(tmp, [sys.executable, "-m", "simulator", "run", str(scenario), "--results",
                                str(tmp / "results"), "--state-dir", str(tmp / "st"), "--quiet", "--metrics-port",
                                str(port), *extra], port, {})


def scrape_process(tmp: Path, argv: list[str], port: int, env: dict[str, str], every_s: float = 0.5,
                   timeout_s: float = 180.0) -> LiveRun:
    """Start argv (cwd tmp), scrape 127.0.0.1:port/metrics every `every_s` until it exits; its one run dir."""
    results = tmp / "results"
    out, err = (tmp / "stdout.txt").open("w+"), (tmp / "stderr.txt").open("w+")
    proc = subprocess.Popen(argv, cwd=tmp, env=dict(os.environ, PYTHONUNBUFFERED="1", **env), stdout=out,
                            stderr=err, text=True)
    scrapes: list[Scrape] = []
    names: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            got, seen = scrape(f"http://127.0.0.1:{port}/metrics")
            scrapes.append(got)
            names |= seen
        except OSError:  # not listening yet (backend starting) or already closed (results being written)
            pass
        time.sleep(every_s)  # sleep-ok: the scrape interval of a Prometheus server, against a real process
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    out.seek(0)
    err.seek(0)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
    dirs = [d for d in results.iterdir() if d.is_dir()] if results.exists() else []
    assert proc.returncode == 0 and len(dirs) == 1, done.stdout + done.stderr
    return LiveRun(done, dirs[0], scrapes, names)
