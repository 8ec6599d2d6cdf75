"""Multi-host proof on one machine (issue 14): backend, master and two workers, each in its own network
namespace with its own address, against the single-process run of the same seed.

    sudo python bench/multihost_netns.py [--scenario FILE] [--workdir DIR]     # prints one JSON document

Topology (10.231.0.0/24, inside namespaces this script creates; the root namespace is not touched):

    ns fs<id>-sw : bridge br0 ── veth ── ns fs<id>-backend 10.231.0.10  `fleetsim backend --host 10.231.0.10
                                                                          --pairing-port 4003 --broker-port 8883
                                                                          --control-port 8090`
                               ── veth ── ns fs<id>-master  10.231.0.11  `fleetsim run --expect-workers 2
                                                                          --master-bind 10.231.0.11:5557`
                               ── veth ── ns fs<id>-w1      10.231.0.12  `fleetsim worker --master 10.231.0.11:5557`
                               ── veth ── ns fs<id>-w2      10.231.0.13  `fleetsim worker --master 10.231.0.11:5557`

Each namespace has only its own loopback, so a component that assumed 127.0.0.1 for the master or the backend
fails here. The workers also run in a mount namespace where the backend's folder (backend.json, the CA) is an
empty tmpfs: as on another host, all they know comes from the master's run spec. The master and the backend
share the rest of the filesystem (the scenario, the results folders). Then the master namespace runs the same
scenario in one process against the same backend (the run fence keeps the two runs apart), and the two
results are compared: plan digest, planned and sent counts, every sent event key, 0 lost. Namespaces and
processes are removed whatever happens; every wait is bounded. Needs root and iproute2 (`ip netns`, veth,
bridge) and util-linux `unshare`; no netem.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ADDRESSES", "BACKEND_PORTS", "SUBNET", "MultiHostResult", "netns_unavailable", "run_multihost"]

SUBNET = "10.231.0"
ADDRESSES = {"backend": 10, "master": 11, "w1": 12, "w2": 13}
MASTER_PORT = 5557
BACKEND_PORTS = {"pairing": 4003, "broker": 8883, "control": 8090}  # fixed, as behind a firewall
BACKEND_START_S = 30.0
RUN_TIMEOUT_S = 240.0
REPO = Path(__file__).resolve().parents[1]

TINY = """\
name: netns
realm: fleetsim
seed: 31
fleet: {devices: 6}
time_scale: 600
duration: 3s
transport: lean
arrival: {model: constant, rate: 4, count: 6}
lifecycle:
  random:
    outcomes: {success: 0.8, rollback: 0.1, download_exhausted: 0.1}
    download_duration: 60s
    deploy_duration: 60s
    reboot_duration: 60s
    download_error_probability: 0.2
"""


def netns_unavailable() -> str:
    """Why this cannot run here ("" when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        return "no mosquitto for the backend's broker"
    return ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclass
class Namespaces:
    """The switch namespace with its bridge and one namespace per node, removed by `close` (always)."""

    tag: str
    names: dict[str, str] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return f"{self.tag}-sw"

    def open(self) -> None:
        _ip("netns", "add", self.switch)
        self._in(self.switch, "link", "add", "br0", "type", "bridge")
        self._in(self.switch, "link", "set", "br0", "up")
        for node, last in ADDRESSES.items():
            ns = f"{self.tag}-{node}"
            _ip("netns", "add", ns)
            self.names[node] = ns
            peer = f"{self.tag[:8]}{node}"[:15]  # the switch side's name (interface names: <= 15 chars)
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", self.switch)
            self._in(self.switch, "link", "set", peer, "master", "br0")
            self._in(self.switch, "link", "set", peer, "up")
            self._in(ns, "addr", "add", f"{SUBNET}.{last}/24", "dev", "eth0")
            self._in(ns, "link", "set", "eth0", "up")
            self._in(ns, "link", "set", "lo", "up")

    @staticmethod
    def _in(ns: str, *args: str) -> None:
        _ip("-n", ns, *args)

    def close(self) -> None:
        for ns in [*self.names.values(), self.switch]:
            _kill_namespace_processes(ns)
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "del", ns)


def _kill_namespace_processes(ns: str) -> None:
    """Whatever still runs in a namespace this script created (a broker the backend left behind)."""
    with contextlib.suppress(subprocess.SubprocessError):
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10).stdout
        for pid in (int(p) for p in out.split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def namespaces(tag: str) -> Iterator[Namespaces]:
    nets = Namespaces(tag)
    try:
        nets.open()
        yield nets
    finally:
        nets.close()


def _fleetsim(ns: str, args: Sequence[str], cwd: Path, log: Path, hide: Path | None = None) -> subprocess.Popen[bytes]:
    """`fleetsim ARGS` in namespace `ns`; `hide`: a folder this process must not see (an empty tmpfs over it, in
    a mount namespace of its own), as a host that does not share it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "simulator", *args]
    if hide is not None:
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t tmpfs fleetsim-hidden "$0" && exec "$@"', str(hide), *command]
    with log.open("wb") as out:
        return subprocess.Popen(["ip", "netns", "exec", ns, *command], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path.name} never appeared (exit {proc.poll()}): {log.read_text()[-2000:]}")
        time.sleep(0.1)  # sleep-ok: polling another process's file, bounded by the deadline


def _only_dir(results: Path) -> Path:
    dirs = [d for d in results.iterdir() if d.is_dir()]
    if len(dirs) != 1:
        raise RuntimeError(f"{results}: expected one run folder, found {dirs}")
    return dirs[0]


def _sent_keys(run_dir: Path) -> list[tuple[str, ...]]:
    with (run_dir / "events.sent.csv").open() as f:
        return sorted(tuple(row[:5]) for row in list(csv.reader(f))[1:])


@dataclass(frozen=True)
class MultiHostResult:
    """What the two runs reported (summary.json excerpts), and whether they agree."""

    multi: dict[str, object]
    single: dict[str, object]
    same_sent_keys: bool
    sent_keys: int
    logs: dict[str, str]

    @property
    def equal(self) -> bool:
        m, s = self.multi, self.single
        return (self.same_sent_keys and self.sent_keys > 0 and m["plan_digest"] == s["plan_digest"]
                and m["planned"] == s["planned"] and m["sent"] == s["sent"] and m["lost"] == s["lost"] == 0)


def _excerpt(run_dir: Path, code: int) -> dict[str, object]:
    doc = json.loads((run_dir / "summary.json").read_text())
    events, extra = doc["events"], doc.get("extra") or {}
    return {"exit": code, "plan_digest": extra.get("plan_digest"), "workers": extra.get("workers"),
            "planned": events["planned"], "sent": events["sent"], "acked": events["acked"],
            "delivered": events["delivered"], "lost": events["lost"], "duplicated": events["duplicated"],
            "verdict": doc["verdict"], "target": (extra.get("target") or {}).get("pairing_url"),
            "join": doc.get("join"), "run_dir": str(run_dir)}


def run_multihost(workdir: Path, scenario_text: str = TINY, tag: str = "") -> MultiHostResult:
    """The whole proof in `workdir` (see the module docstring); raises RuntimeError when a part fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / "scenario.yaml"
    scenario.write_text(scenario_text)
    tag = tag or f"fs{os.getpid() % 100000}"
    backend_ip, master_ip = f"{SUBNET}.{ADDRESSES['backend']}", f"{SUBNET}.{ADDRESSES['master']}"
    info = workdir / "backend" / "backend.json"
    logs = {name: workdir / f"{name}.log" for name in ("backend", "master", "w1", "w2", "single")}
    procs: list[subprocess.Popen[bytes]] = []
    common = ["--target", str(info), "--state-dir", str(workdir / "gen"), "--quiet"]
    with namespaces(tag) as nets:
        try:
            backend = _fleetsim(nets.names["backend"], [
                "backend", "--state-dir", str(workdir / "backend"), "--host", backend_ip,
                *(arg for name, port in BACKEND_PORTS.items() for arg in (f"--{name}-port", str(port)))],
                workdir, logs["backend"])
            procs.append(backend)
            _wait_file(info, backend, BACKEND_START_S, logs["backend"])
            master = _fleetsim(nets.names["master"], [
                "run", str(scenario), *common, "--results", str(workdir / "multi"), "--expect-workers", "2",
                "--master-bind", f"{master_ip}:{MASTER_PORT}", "--worker-wait", "60"], workdir, logs["master"])
            procs.append(master)
            for worker in ("w1", "w2"):
                # The workers do not see the backend's folder (backend.json, the CA): like workers on other
                # hosts, they get the target and its CA bundle from the master's run spec only.
                procs.append(_fleetsim(nets.names[worker], ["worker", "--master", f"{master_ip}:{MASTER_PORT}"],
                                       workdir, logs[worker], hide=workdir / "backend"))
            multi_code = master.wait(timeout=RUN_TIMEOUT_S)
            for proc in procs[2:]:
                proc.wait(timeout=30)  # the workers leave when the master quits
            single = _fleetsim(nets.names["master"], ["run", str(scenario), *common, "--results",
                                                      str(workdir / "single")], workdir, logs["single"])
            procs.append(single)
            single_code = single.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"timed out: {exc}; logs in {workdir}") from None
        finally:
            for proc in reversed(procs):
                _stop(proc)
    texts = {name: path.read_text(errors="replace")[-3000:] for name, path in logs.items() if path.exists()}
    multi_dir, single_dir = _only_dir(workdir / "multi"), _only_dir(workdir / "single")
    multi_keys, single_keys = _sent_keys(multi_dir), _sent_keys(single_dir)
    return MultiHostResult(multi=_excerpt(multi_dir, multi_code), single=_excerpt(single_dir, single_code),
                           same_sent_keys=multi_keys == single_keys, sent_keys=len(multi_keys), logs=texts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenario", type=Path, help="scenario file (default: a 6-device, 3 s scenario)")
    parser.add_argument("--workdir", type=Path, default=Path("results/multihost"))
    args = parser.parse_args(argv)
    why = netns_unavailable()
    if why:
        print(f"multihost_netns: cannot run: {why}", file=sys.stderr)
        return 2
    text = args.scenario.read_text() if args.scenario else TINY
    result = run_multihost(args.workdir.resolve(), text)
    print(json.dumps({"equal": result.equal, "same_sent_keys": result.same_sent_keys,
                      "sent_keys": result.sent_keys, "multi": result.multi, "single": result.single}, indent=2))
    return 0 if result.equal else 1


if __name__ == "__main__":
    sys.exit(main())
