"""The fault proxy as a child process, with the same API as proxy.FaultProxy.

Why a process: the proxy's CPU stays off the load generator's core (benchmarks), and it works from a
gevent-monkey-patched process (the Locust generator), where `subprocess` and `socket` are cooperative. The
child is started with `--exit-on-stdin-eof`, so it never outlives this process even after a crash.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

__all__ = ["ProxyProcess", "ProxyProcessError"]

_TIMEOUT_S = 10.0


class ProxyProcessError(RuntimeError):
    """The child failed to start or refused a command."""


class ProxyProcess:
    """`python -m simulator.faults.proxy` driven over its loopback control port."""

    def __init__(self, upstream_host: str, upstream_port: int, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, delay_ms: float = 0.0, log_path: Path | None = None) -> None:
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.listen_host, self.listen_port = listen_host, listen_port
        self.delay_ms = delay_ms
        self.log_path = log_path
        self.control_port = 0
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> int:
        """Start the child and wait for its ready line; returns the listening port."""
        if self.proc is not None:
            return self.port
        cmd = [sys.executable, "-m", "simulator.faults.proxy",
               "--upstream", f"{self.upstream_host}:{self.upstream_port}",
               "--listen", f"{self.listen_host}:{self.listen_port}",
               "--delay-ms", repr(float(self.delay_ms)), "--exit-on-stdin-eof"]
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log if self._log is not None else None)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # EOF (b"") if the child died before it was ready
        try:
            ready = json.loads(line)
            self.port, self.control_port = int(ready["listen_port"]), int(ready["control_port"])
        except (ValueError, KeyError, TypeError) as exc:
            self.stop()
            raise ProxyProcessError(f"fault proxy did not start (got {line[:200]!r})") from exc
        return self.port

    def _request(self, op: str, **fields: Any) -> Any:
        if self.proc is None:
            raise ProxyProcessError("fault proxy is not started")
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=_TIMEOUT_S) as sock:
            sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            with sock.makefile("rb") as f:
                line = f.readline()
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ProxyProcessError(f"fault proxy: no reply to {op!r}") from exc
        if not reply.get("ok"):
            raise ProxyProcessError(f"fault proxy refused {op!r}: {reply.get('error')}")
        return reply.get("result")

    def set_delay(self, ms: float) -> None:
        self._request("set_delay", ms=ms)

    def stall(self, seconds: float) -> None:
        self._request("stall", seconds=seconds)

    def reset_all(self) -> int:
        return int(self._request("reset_all"))

    def block(self, seconds: float) -> None:
        self._request("block", seconds=seconds)

    def stats(self) -> dict[str, Any]:
        result = self._request("stats")
        assert isinstance(result, dict)
        return result

    def stop(self) -> None:
        """Ask the child to exit, then close its stdin (it exits on EOF too); kill after 5 s. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None and self.control_port:
            try:
                with socket.create_connection(("127.0.0.1", self.control_port), timeout=2.0) as sock:
                    sock.sendall(b'{"op": "stop"}\n')
                    sock.recv(256)
            except OSError:
                pass
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ProxyProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
