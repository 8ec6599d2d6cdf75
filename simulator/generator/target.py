"""Where the fleet goes: the embedded backend (default, started by fleetsim) or a target file (real Astarte).

`open_target(...)` yields a `TargetInfo` and stops whatever it started. The embedded backend runs in a child
process (simulator.backend.process) so that it uses the other core and stays out of Locust's gevent patching.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from simulator.backend.server import BackendInfo
from simulator.errors import UsageError
from simulator.transports.base import Endpoint

__all__ = ["TargetInfo", "open_target", "target_from_backend_info"]


@dataclass(frozen=True)
class TargetInfo:
    """What a generator process needs to reach the backend (plain strings: it crosses process boundaries)."""

    kind: str  # "embedded" | "astarte"
    realm: str
    pairing_url: str
    agent_jwt: str
    ca_file: str
    ignore_ssl_errors: bool = False
    credentials_dir: str = ".fleetsim/credentials"
    control_url: str = ""  # the embedded collector's control/metrics endpoint ("" for a real Astarte)
    broker_url: str = ""
    broker_kind: str = ""
    admin_cert: str = ""
    admin_key: str = ""
    target_file: str = ""  # a real Astarte: its target file, re-read by target_file.observer_for (no secret)
    broker_override: str = ""  # issue 9: "host:port" of the fault proxy (transports.base.Endpoint)
    broker_override_devices: tuple[str, ...] = ()  # the devices routed through it (() = all)
    images_url: str = ""  # the embedded backend's OTA image server ("" for a real Astarte)

    def endpoint(self) -> Endpoint:
        return Endpoint(realm=self.realm, pairing_url=self.pairing_url, agent_jwt=self.agent_jwt,
                        ca_file=self.ca_file or None, ignore_ssl_errors=self.ignore_ssl_errors,
                        credentials_dir=self.credentials_dir, broker_override=self.broker_override,
                        broker_override_devices=tuple(self.broker_override_devices))

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TargetInfo:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"bad target info: {exc}") from exc

    def redacted(self) -> dict[str, object]:
        """For results and logs: no JWT, no key paths' contents (issue 9: no secret in results)."""
        doc = asdict(self)
        doc["agent_jwt"] = "<redacted>" if self.agent_jwt else ""
        return doc


@contextmanager
def open_target(target: str, realm: str, state_dir: Path, broker: str = "auto") -> Iterator[TargetInfo]:
    """`target` is "embedded" (started and stopped here), the backend.json of a running `fleetsim backend`, or
    the path of a real-Astarte target file (simulator.generator.target_file)."""
    if target == "embedded":
        from simulator.backend.process import BackendProcess

        proc = BackendProcess(state_dir / "backend", realm=realm, broker=broker)
        try:
            try:
                info = proc.start()
            except RuntimeError as exc:
                raise UsageError(f"the embedded backend did not start: {exc} (log: {proc.log_path})") from exc
            yield _from_backend(info, state_dir)
        finally:
            proc.stop()
        return
    if target.endswith(".json"):
        yield target_from_backend_info(Path(target), state_dir)
        return
    from simulator.generator.target_file import load_target_file

    yield load_target_file(Path(target), state_dir)


def target_from_backend_info(path: Path, state_dir: Path) -> TargetInfo:
    """A running `fleetsim backend` (its <state-dir>/backend.json): used, not started or stopped by us."""
    try:
        info = BackendInfo.from_json(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no backend info; start `fleetsim backend` first") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable backend info: {exc}") from exc
    return _from_backend(info, state_dir)


def _from_backend(info: BackendInfo, state_dir: Path) -> TargetInfo:
    return TargetInfo(kind="embedded", realm=info.realm, pairing_url=info.pairing_url,
                      agent_jwt=info.agent_jwt, ca_file=info.ca_file,
                      credentials_dir=str(state_dir / "credentials"), control_url=info.control_url,
                      broker_url=info.broker_url, broker_kind=info.broker_kind, admin_cert=info.admin_cert,
                      admin_key=info.admin_key, images_url=info.images_url)
