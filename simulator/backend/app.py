"""The embedded backend as an app: run the Astarte stand-in until SIGINT/SIGTERM; print what clients need.

Its entry points are `python -m simulator.backend` (simulator.backend.__main__: how `fleetsim run` starts it,
see simulator.generator.backend_process) and `fleetsim backend` (simulator.commands.backend).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from simulator.backend_info import BackendInfo
from simulator.broker_tls import BROKER_TLS_CHOICES, DEFAULT_BROKER_TLS, choices_help, with_tls
from simulator.errors import UsageError

__all__ = ["HELP", "add_arguments", "describe", "run"]

HELP = "Run the embedded backend (local CA, Pairing API, MQTT broker with mutual TLS, collector)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=Path(".fleetsim/backend"),
                        help="CA, keys, device registry, broker config and logs (reused across runs)")
    parser.add_argument("--realm", default="fleetsim", help="Astarte realm name (default: fleetsim)")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "amqtt"), default="auto",
                        help="auto = mosquitto when on PATH or in an sbin folder, else the pip-only amqtt")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on and advertise in backend.json, named by the servers' "
                             "certificate (default: 127.0.0.1; another host's devices need this host's address)")
    parser.add_argument("--broker-tls", choices=BROKER_TLS_CHOICES, default=DEFAULT_BROKER_TLS,
                        help=choices_help())
    for name in ("pairing", "broker", "control"):
        parser.add_argument(f"--{name}-port", type=int, default=0, metavar="PORT",
                            help=f"fixed {name} port (default: any free port, written to backend.json)")
    parser.add_argument("--json", action="store_true",
                        help="print one line of JSON (BackendInfo, includes the agent JWT) and nothing else")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="stop when standard input closes (the parent that started us has gone)")


def describe(info_json: str) -> str:
    """The human-readable banner: URLs, realm, token, CA, and how to point a load test at them."""
    info = BackendInfo.from_json(info_json)
    broker = with_tls(broker_label(info.broker_kind, info.broker_version), info.broker_tls)
    return "\n".join([
        "fleetsim embedded backend is running (Ctrl-C to stop)",
        f"  realm         {info.realm}",
        f"  pairing URL   {info.pairing_url}",
        f"  broker URL    {info.broker_url}  ({broker})",
        f"  CA file       {info.ca_file}",
        f"  admin cert    {info.admin_cert}",
        f"  control URL   {info.control_url or '(collector control endpoint not available)'}",
        f"  state dir     {info.state_dir}",
        f"  agent JWT     {info.agent_jwt}",
        "",
        "SDK devices trust this CA with:",
        f"  export REQUESTS_CA_BUNDLE={info.ca_file} SSL_CERT_FILE={info.ca_file}",
        "Run a load test against it with plain Locust (the scenario's fleet, ramp and length; -u caps the users,",
        "-t ends the test earlier), or with `fleetsim run SCENARIO --target <state dir>/backend.json`:",
        f"  FLEETSIM_BACKEND_INFO={info.state_dir}/backend.json FLEETSIM_SCENARIO=scenarios/quickstart.yaml "
        "locust -f locustfile.py --headless",
    ])


def broker_label(kind: str, version: str) -> str:
    """"mosquitto 2.0.11", "amqtt 0.12.1 (pip-only broker: not for latency figures)"."""
    label = f"{kind} {version}".strip() if kind else "unknown broker"
    if kind == "amqtt":
        label += " (pip-only broker: functional stand-in, not for latency or throughput figures)"
    return label


def _write_info(state_dir: Path, text: str) -> Path:
    """`<state_dir>/backend.json` (0600: it holds the agent JWT) so other processes can find the backend."""
    from simulator.private_files import write_private

    path = state_dir / "backend.json"
    write_private(path, text.encode() + b"\n")
    return path


def _stdin_closed(timeout_s: float) -> bool:
    """True once standard input reaches EOF, waiting at most `timeout_s` seconds.

    With --exit-on-stdin-eof the parent (fleetsim run) keeps our stdin pipe open and never writes: EOF means it
    died without stopping us (SIGKILL, a crash), and a backend must not outlive its run. Polled from the main
    thread with select + os.read on the raw descriptor: a daemon thread blocked in `sys.stdin.buffer.read()`
    held the buffered reader's lock at interpreter exit, and every shutdown ended in "Fatal Python error:
    _enter_buffered_busy" (SIGABRT).
    """
    fd = sys.stdin.fileno()
    readable, _, _ = select.select([fd], [], [], timeout_s)
    if not readable:
        return False
    try:
        return os.read(fd, 4096) == b""
    except OSError:
        return True


def run(args: argparse.Namespace) -> int:
    from simulator.backend.server import BackendPorts, EmbeddedBackend

    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # Bad flags are refused before the signal handlers are swapped (nothing to restore on the way out).
    ports = BackendPorts(pairing=args.pairing_port, broker=args.broker_port, control=args.control_port)
    for name, port in (("pairing", ports.pairing), ("broker", ports.broker), ("control", ports.control)):
        if not 0 <= port <= 65535:
            raise UsageError(f"--{name}-port: expected 0..65535, got {port}")
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    backend = EmbeddedBackend(args.state_dir, realm=args.realm, broker=args.broker, host=args.host, ports=ports,
                              broker_tls=args.broker_tls)
    info_file: Path | None = None
    try:
        try:
            info = backend.start()
        except (OSError, RuntimeError, ValueError, ImportError) as exc:
            raise UsageError(f"cannot start the embedded backend: {exc}") from None
        info_file = _write_info(Path(info.state_dir), info.to_json())
        print(info.to_json() if args.json else describe(info.to_json()), flush=True)
        # The 1 s bound keeps signals responsive everywhere (a handler runs between two waits).
        while not stop.is_set():
            if args.exit_on_stdin_eof:
                if _stdin_closed(1.0):
                    break
            else:
                stop.wait(1.0)
    finally:
        backend.stop()
        if info_file is not None:
            info_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.json:
        print("fleetsim backend stopped", file=sys.stderr)
    return 0
