"""Where the fleet goes: the embedded backend (default, started by fleetsim) or a target file (real Astarte).

`open_target(...)` yields a `TargetInfo` and stops whatever it started. The embedded backend runs in a child
process (simulator.generator.backend_process) so that it uses the other core and stays out of Locust's gevent
patching; TargetInfo itself lives in simulator.target_info (faults and target files use it too).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from simulator.backend_info import BackendInfo
from simulator.broker_tls import DEFAULT_BROKER_TLS, BrokerTls
from simulator.errors import UsageError
from simulator.target_info import TargetInfo

__all__ = ["TargetInfo", "open_target", "target_from_backend_info"]


@contextmanager
def open_target(
    target: str, realm: str, state_dir: Path, broker: str = "auto", broker_tls: BrokerTls = DEFAULT_BROKER_TLS,
) -> Iterator[TargetInfo]:
    """`target` is "embedded" (started and stopped here), the backend.json of a running `fleetsim backend`, or
    the path of a real-Astarte target file (simulator.generator.target_file). `broker` and `broker_tls`
    (simulator.broker_tls) are the embedded backend's; the other targets ignore them."""
    if target == "embedded":
        from simulator.generator.backend_process import BackendProcess

        proc = BackendProcess(state_dir / "backend", realm=realm, broker=broker,
                              broker_tls=broker_tls)
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
    _check_running(path, info)
    return _from_backend(info, state_dir)


# Seconds to wait for the described backend's Pairing API to accept a TCP connection (loopback: ~0.1 ms).
_PROBE_TIMEOUT_S = 2.0


def _check_running(path: Path, info: BackendInfo) -> None:
    """A backend.json outlives a backend that was killed (SIGKILL, a crash): say so in one line, before any
    device or the collector fails on it with a traceback each."""
    parts = urlsplit(info.pairing_url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UsageError(f"{path}: pairing_url: not a URL with a host and port: {info.pairing_url!r}")
    try:
        socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"{path}: the backend it describes is not running (pairing API {host}:{port}: "
                         f"{exc.strerror or exc}); start `fleetsim backend` (it rewrites this file)") from None


def _from_backend(info: BackendInfo, state_dir: Path) -> TargetInfo:
    return TargetInfo(kind="embedded", realm=info.realm, pairing_url=info.pairing_url,
                      agent_jwt=info.agent_jwt, ca_file=info.ca_file,
                      credentials_dir=str(state_dir / "credentials"), control_url=info.control_url,
                      broker_url=info.broker_url, broker_kind=info.broker_kind,
                      broker_version=info.broker_version, broker_tls=info.broker_tls,
                      admin_cert=info.admin_cert, admin_key=info.admin_key, images_url=info.images_url)
