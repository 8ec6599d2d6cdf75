"""`RunSpec`: everything a run is, resolved once in a composition root and shipped to workers as data.

Composition roots: `fleetsim run` (scenario YAML < FLEETSIM_* env < flags), the locustfile (plain
`locust -f`: the fleetsim options, themselves read from FLEETSIM_* by Locust), `fleetsim replay` (the
recording is the plan). Worker processes receive `RunSpec.to_json()` in the master's `fleetsim_setup`
message and never read the scenario file or the environment, so the master and every worker plan the same
fleet (`plan_digest` is compared at the end of a distributed run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simulator.broker_tls import DEFAULT_BROKER_TLS, BrokerTls
from simulator.errors import UsageError
from simulator.generator.target import TargetInfo
from simulator.plan import FleetPlan
from simulator.run.plans import BoundedPlan, bound_plan, plan_for
from simulator.run.scenario_json import scenario_from_jsonable, scenario_to_jsonable
from simulator.scenario.model import Scenario
from simulator.telemetry.options import TelemetryOptions

__all__ = ["ReplaySource", "RunSettings", "RunSpec"]


@dataclass(frozen=True)
class RunSettings:
    """How the run is driven (not what it plays)."""

    results_root: Path = Path("results")
    processes: int = 1  # generator processes: 1 = local; N = a Locust master and N workers
    spawn_rate: float = 0.0  # devices brought online per second (0: the ramp's steepest stage, or all at once)
    web: bool = False  # serve Locust's web UI (and keep it up after the run until Ctrl-C)
    web_port: int = 8089
    quiet: bool = False  # no live progress line
    state_dir: Path = Path(".fleetsim")
    broker: str = "auto"  # embedded backend broker: auto | mosquitto | amqtt
    # The embedded broker's TLS: "astarte" (TLS 1.2, no session ticket, as Astarte's VerneMQ) or "openssl"
    # (mosquitto's OpenSSL defaults). Only the process that starts the backend reads it: never shipped to workers.
    broker_tls: BrokerTls = DEFAULT_BROKER_TLS
    engine: str = "fleetsim run"  # who composed the run (summary.json extra.engine)
    allow_incomplete: bool = False  # an incomplete/invalid_* verdict exits 0 instead of 4 (outputs/exit_status)
    until_idle_s: float = 0.0  # responder/campaign: end once no OTARequest was in flight this long (0: off)
    # Live telemetry of the local or master process; never shipped to workers (the master asks them for reports).
    telemetry: TelemetryOptions = field(default_factory=TelemetryOptions)
    # Where the Locust master listens for its workers (port 0: any free port). Loopback by default; another
    # address (this host's, or 0.0.0.0) lets workers on other hosts connect (docs/multi-host.md).
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    # True: the `processes` workers are started elsewhere (`fleetsim worker --master HOST:PORT`); the master
    # spawns none and waits `worker_wait_s` for them. Neither is shipped to workers.
    external_workers: bool = False
    worker_wait_s: float = 60.0
    # The master's fence in the embedded collector's arrival log (rows before it are earlier runs'): workers
    # that pull arrivals themselves read from here. Set by execute once its observer took the mark.
    arrival_cursor: int = 0
    arrival_offset_s: float = 0.0  # the collector's clock minus the master's, measured at the mark
    arrival_uncertainty_s: float = 0.0
    # True: the master's observer is a trigger's (AMQP / webhook: one queue or endpoint that workers cannot
    # share), and the master forwards each worker its partition's arrivals (locust_adapter.arrival_forward).
    forward_arrivals: bool = False


@dataclass(frozen=True)
class ReplaySource:
    """A recording played back: the plan is the file (one process; never shipped to workers)."""

    plan: FleetPlan
    file: str
    speed: float
    source: str
    devices_map: str = ""

    def to_jsonable(self) -> dict[str, object]:
        return {"file": self.file, "speed": self.speed, "source": self.source, "devices_map": self.devices_map}


@dataclass(frozen=True)
class RunSpec:
    scenario: Scenario  # resolved: YAML, env and flags applied
    settings: RunSettings = field(default_factory=RunSettings)
    target: TargetInfo | None = None  # None until the target is open (execute opens the embedded backend)
    replay: ReplaySource | None = None

    def with_target(self, target: TargetInfo) -> RunSpec:
        """The spec once its target is open (the scenario takes the target's realm)."""
        scenario = self.scenario
        if target.realm != scenario.realm:
            scenario = replace(scenario, realm=target.realm)
        return replace(self, target=target, scenario=scenario)

    def bounded_plan(self) -> BoundedPlan:
        """What the run plays, cut at duration + graceful_stop. In campaign mode the plan gives the fleet's
        ids and online offsets; its actions are not played (the campaign driver sends the requests)."""
        plan = self.replay.plan if self.replay is not None else plan_for(self.scenario)
        return bound_plan(plan, self.scenario.duration, self.scenario.graceful_stop)

    def to_json(self) -> str:
        """For a worker: the scenario, the target (it holds the agent JWT: keep the channel private) and the
        settings. A replay is not shipped (it runs in one process)."""
        if self.replay is not None:
            raise UsageError("a replay runs in one process; it cannot be sent to workers")
        if self.target is None:
            raise UsageError("the run's target is not open yet; nothing to send to workers")
        s = self.settings
        return json.dumps({
            "scenario": scenario_to_jsonable(self.scenario), "target": json.loads(self.target.to_json()),
            "ca_pem": _read_ca(self.target.ca_file),
            "settings": {"results_root": str(s.results_root), "processes": s.processes, "spawn_rate": s.spawn_rate,
                         "web": s.web, "web_port": s.web_port, "quiet": s.quiet, "state_dir": str(s.state_dir),
                         "broker": s.broker, "engine": s.engine,
                         "arrival_cursor": s.arrival_cursor, "arrival_offset_s": s.arrival_offset_s,
                         "arrival_uncertainty_s": s.arrival_uncertainty_s,
                         "forward_arrivals": s.forward_arrivals}}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        try:
            doc: dict[str, Any] = json.loads(text)
            s = doc["settings"]
            target_doc = dict(doc["target"])
            target_doc["broker_override_devices"] = tuple(target_doc.get("broker_override_devices") or ())
            target = _local_ca(TargetInfo(**target_doc), str(doc.get("ca_pem") or ""),
                               Path(doc["settings"]["state_dir"]))
            return cls(
                scenario=scenario_from_jsonable(doc["scenario"]), target=target,
                settings=RunSettings(results_root=Path(s["results_root"]), processes=int(s["processes"]),
                                     spawn_rate=float(s["spawn_rate"]), web=bool(s["web"]),
                                     web_port=int(s["web_port"]), quiet=bool(s["quiet"]),
                                     state_dir=Path(s["state_dir"]), broker=str(s["broker"]),
                                     engine=str(s["engine"]),
                                     arrival_cursor=int(s.get("arrival_cursor", 0)),
                                     arrival_offset_s=float(s.get("arrival_offset_s", 0.0)),
                                     arrival_uncertainty_s=float(s.get("arrival_uncertainty_s", 0.0)),
                                     forward_arrivals=bool(s.get("forward_arrivals", False))))
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"bad run spec from the master: {exc}") from exc


# A CA bundle is a few KB; anything much larger is not one (and would bloat every worker's setup message).
_MAX_CA_BYTES = 1 << 20


def _read_ca(path: str) -> str:
    """The target's CA bundle as text, shipped with the spec: a worker on another host has no copy of it."""
    if not path:
        return ""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    return data.decode("ascii", "replace") if len(data) <= _MAX_CA_BYTES else ""


def _local_ca(target: TargetInfo, pem: str, state_dir: Path) -> TargetInfo:
    """On a worker: the master's CA path when this host has that file (one host, or a shared folder), else the
    shipped bundle written under this worker's state dir (`<state-dir>/worker-ca/<sha256>.pem`)."""
    if not target.ca_file or not pem or Path(target.ca_file).exists():
        return target
    import hashlib

    from simulator.private_files import write_private

    path = state_dir / "worker-ca" / f"{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, pem.encode())
    return replace(target, ca_file=str(path.resolve()))
