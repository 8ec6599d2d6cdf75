"""Shared pieces of the benchmarks: statistics, verdicts, tables, child processes, the embedded backend and
cached device credentials.

Pure helpers (median, ratio, percentile, alternate, check_goal, table/markdown) have no I/O and are unit
tested in tests/unit/bench/. The rest imports the simulator lazily, so a child process can monkey-patch
gevent before anything touches threading or sockets (Locust does the same on import).

A benchmark child prints exactly one line `RESULT <json>` on stdout; `run_child` returns that JSON.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "OTA_VALUE",
    "RESULTS_DIR",
    "ROOT",
    "STATE_DIR",
    "alternate",
    "check_goal",
    "cpu_seconds",
    "credentials_dir",
    "emit",
    "find_py_spy",
    "host_info",
    "markdown_table",
    "median",
    "ota_payload",
    "ota_topic",
    "percentile",
    "provision",
    "raise_fd_limit",
    "ratio",
    "run_child",
    "save_result",
    "software_versions",
    "stamped",
    "start_backend",
    "text_table",
    "tls_context",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
# Persistent across runs: the local CA (backend state) and the per-device certificates it signed, so a second
# run skips registration and CSR signing (issue 8: "connect rate with cached credentials").
STATE_DIR = ROOT / ".fleetsim" / "bench"
RESULT_PREFIX = "RESULT "

# The OTAEvent every benchmark publishes: all five leaves of io.edgehog.devicemanager.OTAEvent, ~153 B of BSON with `t`.
OTA_VALUE: dict[str, object] = {
    "requestUUID": "4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10",
    "status": "Downloading",
    "statusProgress": 40,
    "statusCode": "",
    "message": "",
}


# ---- pure helpers ----------------------------------------------------------------------------------------


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values present (None skipped, e.g. a failed run); None when nothing is left."""
    present = [float(v) for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    """numerator / denominator rounded, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, digits)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values: the smallest value with >= q% at or below."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def alternate(systems: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, system) in A B C A B C ... order: slow drifts of a shared machine hit every system alike."""
    return [(r, s) for r in range(rounds) for s in systems]


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def check_goal(value: float | None, goal: str) -> bool | None:
    """Does `value` meet `goal` (">= 2.0", "<= 50", "within 20 +- 1", "abs <= 1")? None when no value."""
    if value is None:
        return None
    text = goal.strip()
    if text.startswith("within "):
        centre, _, tol = text[len("within ") :].partition("+-")
        return abs(value - float(centre)) <= float(tol)
    if text.startswith("abs "):
        return check_goal(abs(value), text[len("abs ") :])
    for op in (">=", "<=", ">", "<"):
        if text.startswith(op):
            return _OPS[op](value, float(text[len(op) :]))
    raise ValueError(f"goal {goal!r}: expected '>= x', '<= x', '> x', '< x', 'abs <= x' or 'within c +- t'")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def text_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """Fixed-width plain text table (missing cells '-', booleans pass/FAIL)."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """GitHub markdown table, for the README (pipes inside cells escaped)."""

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(esc(_cell(row.get(c))) for c in columns) + " |" for row in rows]
    return "\n".join(out)


# ---- environment ------------------------------------------------------------------------------------------


def host_info() -> dict[str, Any]:
    """CPUs, memory and load averages at the time of the run: results from a loaded machine say so."""
    one, five, _ = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "mem_gib": _mem_gib(),
        "load_avg_1m": round(one, 2),
        "load_avg_5m": round(five, 2),
        "python": sys.version.split()[0],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _proc_field(path: str, name: str) -> str:
    """The first `name: value` line's value of a /proc file ("" off Linux)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def _mem_gib() -> float | None:
    kb = _proc_field("/proc/meminfo", "MemTotal").split()
    return round(int(kb[0]) / 2**20, 1) if kb and kb[0].isdigit() else None


def software_versions() -> dict[str, str]:
    """What was measured: fleetsim's commit (with `+dirty` when the tree had changes), the libraries on the
    hot path and the broker ("" for what cannot be read)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for dist in ("paho-mqtt", "gevent", "locust", "astarte-device-sdk"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = ""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        out["fleetsim_commit"] = commit + ("+dirty" if commit and dirty else "")
    except (OSError, subprocess.SubprocessError):
        out["fleetsim_commit"] = ""
    from simulator.backend.mosquitto import mosquitto_version

    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/sbin/mosquitto") if os.path.exists(p)), ""
    )
    out["mosquitto"] = mosquitto_version(binary) if binary else ""
    return out


def stamped(bench: str, doc: dict[str, Any], argv: Sequence[str] | None = None) -> dict[str, Any]:
    """A benchmark's result document with what makes it comparable later: its name, the command line and
    the host at the time (CPUs, load, Python, UTC time)."""
    return {"bench": bench, "argv": list(sys.argv[1:] if argv is None else argv), "host": host_info(), **doc}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_fd_limit(needed: int) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; SystemExit naming the shortfall when still below `needed`."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise SystemExit(f"fd limit {hard} < {needed} needed; raise `ulimit -Hn`")
    return hard


def save_result(name: str, doc: dict[str, Any]) -> Path:
    """bench/results/<name>.json (pretty, newline-terminated)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def run_child(argv: Sequence[str], timeout_s: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python <argv...>` from the repo root; its RESULT line as a dict, or {"error": ...} (never raises
    for a failing child: one failed run is a missing sample, not the end of the benchmark)."""
    cmd = [sys.executable, *argv]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout_s,
            env={**os.environ, **(env or {})},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return {"error": f"timeout after {timeout_s:.0f} s", "stderr_tail": str(exc.stderr or "")[-1500:]}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit code {proc.returncode}", "stderr_tail": proc.stderr[-1500:]}
    doc: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return doc


def emit(doc: dict[str, Any]) -> None:
    """A child's one result line."""
    print(RESULT_PREFIX + json.dumps(doc), flush=True)


# ---- backend, credentials, payload -----------------------------------------------------------------------


def start_backend(realm: str = "bench", collector: bool = True, *, broker_tls: str | None = None) -> Any:
    """EmbeddedBackend (mosquitto, mutual TLS, Pairing API) in THIS process, state under STATE_DIR so the CA
    and cached certificates survive runs. collector=False stops the collector (a paho subscriber to `realm/#`
    sharing the 2 cores): the throughput benchmark measures generators, not the collector. broker_tls: the
    broker's TLS, "astarte" or "openssl" (None: the backend's default, BrokerConfig.broker_tls, "astarte": TLS
    1.2 at most and no session ticket, as Astarte's VerneMQ; simulator.backend.broker)."""
    from simulator.backend.server import EmbeddedBackend

    tls: dict[str, Any] = {} if broker_tls is None else {"broker_tls": broker_tls}
    backend = EmbeddedBackend(STATE_DIR / f"backend-{realm}", realm=realm, broker="mosquitto", **tls)
    backend.start()
    if not collector and backend.collector is not None:
        backend.collector.stop()
        backend._stops.remove(backend.collector.stop)
        backend.collector = None
    return backend


def credentials_dir(realm: str) -> Path:
    return STATE_DIR / f"credentials-{realm}"


def provision(info: Any, device_ids: Sequence[str], parallel: int = 16) -> Any:
    """Register + certify every device once (cached under STATE_DIR), and point the cache at this run's broker
    (the port changes per backend start). Returns the CredentialsCache. Threads, no gevent: parent only."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from simulator.transports.base import OnboardingTimes
    from simulator.transports.credentials import CredentialsCache, target_key
    from simulator.transports.pairing_client import PairingClient, onboard

    cache = CredentialsCache(credentials_dir(info.realm), target_key(info.realm, info.pairing_url))
    pairing = PairingClient(info.pairing_url, info.realm, info.ca_file, False)
    try:

        def one(dev: str) -> None:
            creds = cache.get(dev)
            if creds is None or creds.cert_pem is None:
                creds = onboard(pairing, cache, dev, info.agent_jwt, OnboardingTimes(), revalidate=False)
            if creds.broker_url != info.broker_url:
                cache.put(dev, replace(creds, broker_url=info.broker_url))

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(one, device_ids))
    finally:
        pairing.close()
    return cache


def tls_context(ca_file: str, cert_file: Path, key_file: Path) -> Any:
    """Client TLS context with the device certificate (what the SDK's paho `tls_set` builds)."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def ota_topic(realm: str, device_id: str) -> str:
    return f"{realm}/{device_id}/io.edgehog.devicemanager.OTAEvent/event"


def ota_payload(timestamp_ms: int | None = None) -> bytes:
    """The BSON bytes the SDK sends for OTA_VALUE (simulator.transports.wire is byte-for-byte the SDK's)."""
    from simulator.transports import wire

    ts = wire.ms_to_datetime(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    return wire.encode_value(OTA_VALUE, ts)


def find_py_spy() -> str | None:
    """py-spy on PATH, else beside this interpreter: `.venv/bin/python bench/run_all.py` without the venv
    activated found no py-spy on PATH and failed profile_hot_path (exit 2) although the dev extras had
    installed it in .venv/bin (2026-12-07)."""
    found = shutil.which("py-spy")
    if found is not None:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if os.access(beside, os.X_OK) else None


def ab_samples(script: str, roots: dict[str, Path], rounds: int, count: int, scale: float,
               extra: Sequence[str] = (), tails: dict[str, list[str]] | None = None) -> dict[str, list[float]]:
    """The A/B of a micro-benchmark in one invocation: `rounds` rounds, each running `script --child count`
    (then `extra`, the child's own options) once per root in turn (A B A B ..., so drift in the machine's load
    falls on both), with that root's simulator/ first on the path. Each child prints one float (CPU per unit),
    optionally followed on the same line by what the caller checks (e.g. a digest of what it computed: appended
    to `tails[root name]`); the floats are kept times `scale`."""
    samples: dict[str, list[float]] = {name: [] for name in roots}
    for _ in range(rounds):
        for name, root in roots.items():
            env = {**os.environ, "PYTHONPATH": str(root)}
            out = subprocess.run([sys.executable, script, "--child", str(count), *extra], env=env,
                                 capture_output=True, text=True, check=True, cwd=str(root))
            value, _, tail = out.stdout.strip().partition(" ")
            samples[name].append(float(value) * scale)
            if tails is not None:
                tails.setdefault(name, []).append(tail)
    return samples
