"""Master/worker addresses on the command line (`fleetsim run --master-bind`, `fleetsim worker --master`).

Pure parsing, no imports of Locust or gevent: the worker entry point and the commands share it.
"""

from __future__ import annotations

from simulator.errors import UsageError

__all__ = ["parse_bind", "parse_master"]


def parse_bind(text: str) -> tuple[str, int]:
    """--master-bind "HOST", "HOST:PORT" or "[v6]:PORT" -> (host, port; 0 = any free port)."""
    host, sep, port = text.rpartition(":")
    if not sep or (host and host.count(":") and not host.startswith("[")):  # "HOST", or a bare IPv6 address
        host, port = text, "0"
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--master-bind: expected HOST or HOST:PORT (e.g. 10.0.0.5:5557), got {text!r}")
    return host, int(port)


def parse_master(text: str) -> tuple[str, int]:
    """"HOST:PORT", "[v6]:PORT" or "PORT" (127.0.0.1) -> (host, port); ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536 or (sep and not host):
        raise ValueError(f"--master: expected HOST:PORT (e.g. 10.0.0.5:5557), got {text!r}")
    return host, int(port)
