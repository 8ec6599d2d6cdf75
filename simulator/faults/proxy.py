"""A fault-injecting TCP proxy between devices and the broker: exact delay, stall, reset, block.

Two ways to run it, same engine (proxy_core.ProxyCore):
- in process: `FaultProxy(...)`: a background thread with its own asyncio loop; control calls return once
  applied on the loop (so "after set_delay() returns, every new chunk is held D ms" holds). Not for a
  gevent-monkey-patched process (its `threading` is greenlets): use the subprocess there.
- as a subprocess: `python -m simulator.faults.proxy --upstream H:P --delay-ms D --control-port N` prints
  one JSON line `{"listen_port": .., "control_port": ..}` and takes JSON-line commands on the loopback
  control port (`{"op": "set_delay", "ms": 5}` -> `{"ok": true, "result": ..}`); proxy_process.ProxyProcess
  drives it. Its CPU stays off the load generator's core (what the latency benchmarks need).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from simulator.faults.proxy_core import ProxyCore
from simulator.faults.timerfd import set_timer_slack

__all__ = ["FaultProxy", "dispatch", "main", "parse_hostport"]

T = TypeVar("T")
_CALL_TIMEOUT_S = 10.0


def _gevent_patched_threads() -> bool:
    mod = sys.modules.get("gevent.monkey")
    return bool(mod is not None and mod.is_module_patched("threading"))


class FaultProxy:
    """The proxy on a background thread of this process (see module docstring)."""

    def __init__(self, upstream_host: str, upstream_port: int, listen_host: str = "127.0.0.1",
                 listen_port: int = 0) -> None:
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.listen_host, self.listen_port = listen_host, listen_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._core: ProxyCore | None = None

    @property
    def port(self) -> int:
        return self._core.port if self._core is not None else self.listen_port

    def start(self) -> int:
        """Listen and relay; returns the listening port (chosen by the OS when listen_port is 0)."""
        if self._core is not None:
            return self._core.port
        if _gevent_patched_threads():
            raise RuntimeError("FaultProxy needs real threads; in a gevent-patched process use "
                               "simulator.faults.proxy_process.ProxyProcess")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop,), name="fault-proxy", daemon=True)
        self._thread.start()
        try:
            self._core = self._submit(self._boot())
        except BaseException:
            self._halt()
            raise
        return self._core.port

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        set_timer_slack()  # this thread waits on the timerfd: wake within ~1 us of the deadline
        asyncio.set_event_loop(loop)
        loop.run_forever()

    async def _boot(self) -> ProxyCore:
        core = ProxyCore(self.upstream_host, self.upstream_port, self.listen_host, self.listen_port)
        await core.start()
        return core

    def _submit(self, coro: Coroutine[Any, Any, T], timeout_s: float = _CALL_TIMEOUT_S) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def _call(self, fn: Callable[[ProxyCore], T]) -> T:
        core = self._core
        if core is None:
            raise RuntimeError("FaultProxy is not started")

        async def apply() -> T:
            return fn(core)

        return self._submit(apply())

    def set_delay(self, ms: float) -> None:
        """Hold every chunk read from now on for `ms` milliseconds, in each direction."""
        self._call(lambda c: c.set_delay(ms))

    def stall(self, seconds: float) -> None:
        """Forward nothing for `seconds` (connections stay open; data is held, then released in order)."""
        self._call(lambda c: c.stall(seconds))

    def reset_all(self) -> int:
        """RST every proxied connection (both sockets); returns how many."""
        return self._call(lambda c: c.reset_all())

    def block(self, seconds: float) -> None:
        """Refuse new connections for `seconds`; open connections are untouched."""
        self._call(lambda c: c.block(seconds))

    def wait_listening(self, timeout_s: float = 5.0) -> bool:
        """Block until the listener is open again after `block` (True), or `timeout_s` passes (False)."""
        core = self._core
        if core is None:
            raise RuntimeError("FaultProxy is not started")

        async def wait() -> bool:
            try:
                await asyncio.wait_for(core.listening.wait(), timeout_s)
            except TimeoutError:
                return False
            return True

        return self._submit(wait(), timeout_s + _CALL_TIMEOUT_S)

    def stats(self) -> dict[str, Any]:
        return self._call(lambda c: c.stats())

    def stop(self) -> None:
        """Close every connection and the listener; join the thread. Idempotent."""
        if self._core is not None and self._loop is not None and self._loop.is_running():
            try:
                self._submit(self._core.close())
            finally:
                self._core = None
        self._halt()

    def _halt(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = self._core = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_CALL_TIMEOUT_S)
        if loop is not None and not loop.is_running():
            loop.close()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dispatch(core: ProxyCore, request: dict[str, Any]) -> Any:
    """Apply one control request (the subprocess protocol) to `core`; raises ValueError on a bad one."""
    op = request.get("op")
    if op == "set_delay":
        core.set_delay(float(request["ms"]))
        return None
    if op == "stall":
        core.stall(float(request["seconds"]))
        return None
    if op == "reset_all":
        return core.reset_all()
    if op == "block":
        core.block(float(request["seconds"]))
        return None
    if op == "stats":
        return core.stats()
    raise ValueError(f"unknown op {op!r}")


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def _serve(args: argparse.Namespace) -> None:
    up_host, up_port = args.upstream
    listen_host, listen_port = args.listen
    core = ProxyCore(up_host, up_port, listen_host, listen_port)
    core.set_delay(args.delay_ms)
    await core.start()
    done = asyncio.Event()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if request.get("op") == "stop":
                        done.set()
                        reply: dict[str, Any] = {"ok": True, "result": None}
                    else:
                        reply = {"ok": True, "result": dispatch(core, request)}
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(control, "127.0.0.1", args.control_port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    if args.exit_on_stdin_eof:  # the parent died or closed our stdin: never outlive it
        stdin_fd = sys.stdin.fileno()
        loop.add_reader(stdin_fd, lambda: None if os.read(stdin_fd, 4096) else done.set())
    ready = {"listen_port": core.port, "control_port": server.sockets[0].getsockname()[1]}
    print(json.dumps(ready), flush=True)
    await done.wait()
    server.close()
    await core.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.faults.proxy",
                                     description="fault-injecting TCP proxy (simulator.faults.proxy)")
    parser.add_argument("--upstream", type=parse_hostport, required=True, help="HOST:PORT of the broker")
    parser.add_argument("--listen", type=parse_hostport, default=("127.0.0.1", 0),
                        help="HOST:PORT (port 0: any)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="hold time per chunk, each direction")
    parser.add_argument("--control-port", type=int, default=0, help="loopback port of the control protocol")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin closes")
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    set_timer_slack()
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"fault proxy: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
