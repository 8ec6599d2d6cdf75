"""mosquitto's log as the backend sees it: refusal counts and examples, read from the log relay's messages.

Counting ACL denials needs mosquitto's debug level ("Denied PUBLISH" is a debug line in 2.0), which writes
several lines per message: ~700 bytes per QoS 2 OTAEvent (bench/collector_cost.py), 205 MB in 3 minutes of
issue 14's 2,000 events/s soak, ~7 GB for a 10 M-event run when written to a file. mosquitto logs to its
stderr (`log_dest stderr`: unbuffered, so a line is readable as soon as it is logged; stdout is block-buffered
on a pipe, and mosquitto 2.0 refuses a FIFO as a log file), a pipe drained by the log relay, a small process
of its own (simulator.backend.log_relay), never by a thread of the backend's Python process.

Why a process: mosquitto writes its log synchronously from its one event loop, so a full pipe freezes the
whole broker (blocked in write(2), `anon_pipe_write` in /proc/<pid>/stack): every device's PUBREC and PUBCOMP
waits. At ~700 bytes per event the 1 MiB pipe holds ~1,500 events, half a second at 3,000 events/s, and a
reader thread in the backend stops whenever the backend does (SIGSTOP, a GC pause, a starved process on a
loaded machine): a collector stall then became a broker stall, acknowledgements to the devices stalled
(slowest PUBCOMP 8.5 s) and the load test blamed the backend for the backlog it made. The relay does nothing
but read, copy to disk and count, so it keeps draining while the backend is stopped.
tests/integration/backend/test_collector_stall.py (20 devices, 800 QoS 2 OTAEvents/s, the backend SIGSTOPped
6 s; 2026-12-07): with the reader thread, 1,492 of the 4,000 publishes made in the stop waited for SIGCONT
(acks stopped ~2.6 s into it, a pipe's worth; slowest 3.4 s); with the relay the slowest took 10 ms, the relay
wrote 1.9 MB of log meanwhile, and the collector had all 6,400 events 1.2 s after SIGCONT.

The relay forwards only what the backend needs, as lines on its stdout, which `BrokerLogReader` reads on a
thread here (a few lines a second, not mosquitto's ~20,000):

    E <line>           a refusal line (an example for humans); sent before the counts that include it
    C <kind> <total>   the running count of refusals of `kind` (a total, so a message that had to be dropped
                       or merged while the backend was not reading loses no count)
    B <total>          bytes of log read so far (at most every REPORT_S, and at EOF)
    D <reason>         the disk copy stopped (e.g. a full disk); counting goes on

The refusal patterns are here, not in the relay, so that both sides name the same kinds.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import deque
from pathlib import Path
from typing import IO

__all__ = [
    "EXAMPLES_KEPT",
    "EXAMPLE_CHARS",
    "LOG_CAP_BYTES",
    "MARKERS",
    "REFUSAL_PATTERNS",
    "REPORT_S",
    "BrokerLogReader",
    "parse_refusals",
]

# Log line -> refusal kind (mosquitto 2.0.11 wording, checked by running it; see tests/integration/backend).
REFUSAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("acl_publish", re.compile(r"Denied PUBLISH from ")),
    ("acl_subscribe", re.compile(r"Denied SUBSCRIBE from ")),
    # mosquitto 2.0 words a TLS refusal two ways, by where the handshake failed (seen both for the same test):
    # "OpenSSL Error[0]: error:...: <reason>" and "Client connection from <ip> failed: error:...: <reason>."
    ("no_client_cert", re.compile(r"(OpenSSL Error|Client connection from \S+ failed:).*peer did not return a "
                                  r"certificate")),
    ("bad_client_cert", re.compile(r"(OpenSSL Error|Client connection from \S+ failed:).*certificate verify "
                                   r"failed")),
    ("tls_error", re.compile(r"OpenSSL Error|Client connection from \S+ failed: error:")),
    ("not_authorised", re.compile(r"disconnected, not authori[sz]ed")),
)
# A chunk without any of these holds no refusal (each pattern above contains one of them).
MARKERS = (b"Denied ", b"OpenSSL Error", b"Client connection from ", b"not authori")

LOG_CAP_BYTES = 32 * 1024 * 1024  # per file; with the one rotated file at most 64 MiB of log on disk
EXAMPLES_KEPT = 50  # refusal lines kept in memory, newest last (and at most this many waiting in the relay)
EXAMPLE_CHARS = 1000  # an example line is cut here (mosquitto's refusal lines are ~100-250 characters)
REPORT_S = 0.5  # the relay reports its byte count at most this often: bytes_read is a progress figure


def parse_refusals(lines: list[str]) -> dict[str, int]:
    """Count refusals by kind in mosquitto log lines; each line counts once, under its first matching kind."""
    counts: dict[str, int] = {}
    for line in lines:
        for kind, pattern in REFUSAL_PATTERNS:
            if pattern.search(line):
                counts[kind] = counts.get(kind, 0) + 1
                break
    return counts


class BrokerLogReader:
    """Reads the log relay's messages (its stdout, `pipe`) until EOF: the relay exited, after mosquitto did and
    after its last message. `path` is the relay's disk copy (for `tail()`). Thread-safe reads."""

    def __init__(self, pipe: IO[bytes], path: Path) -> None:
        self._pipe = pipe
        self.path = path
        self._cond = threading.Condition()
        self._counts: dict[str, int] = {}
        self._examples: deque[str] = deque(maxlen=EXAMPLES_KEPT)
        self._bytes = 0  # log bytes the relay read, as of its last report
        self.disk_error: str | None = None  # why the relay's disk copy stopped, if it did (counting goes on)
        self._thread = threading.Thread(target=self._run, name="fleetsim-broker-log", daemon=True)
        self._thread.start()

    def refusals(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counts)

    def examples(self) -> list[str]:
        """The most recent refusal lines (at most EXAMPLES_KEPT)."""
        with self._cond:
            return list(self._examples)

    @property
    def bytes_read(self) -> int:
        """mosquitto's log bytes read by the relay: exact after `join()`, else as of its last report (REPORT_S)."""
        with self._cond:
            return self._bytes

    def wait_for(self, kind: str, count: int, timeout_s: float) -> bool:
        """True once `count` refusals of `kind` were counted; woken by each count the relay forwards."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counts.get(kind, 0) >= count, timeout_s)

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait for EOF (the relay exits after mosquitto's pipe ends and its last message is sent)."""
        self._thread.join(timeout_s)

    def tail(self, n: int = 5) -> str:
        """The last `n` lines on disk (the current file, or the rotated one when the current one is empty)."""
        for candidate in (self.path, self.path.with_name(self.path.name + ".1")):
            with contextlib.suppress(FileNotFoundError):
                lines = candidate.read_bytes()[-16384:].decode("utf-8", "replace").splitlines()
                if lines:
                    return "\n".join(lines[-n:])
        return ""

    # -- the reader thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for raw in self._pipe:
                self._take(raw.rstrip(b"\n").decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass  # the pipe was closed under us (stop): nothing more to read
        finally:
            with contextlib.suppress(OSError):
                self._pipe.close()

    def _take(self, message: str) -> None:
        tag, _, rest = message.partition(" ")
        with self._cond:
            if tag == "E":
                self._examples.append(rest)
            elif tag == "C":
                kind, _, total = rest.rpartition(" ")
                with contextlib.suppress(ValueError):
                    self._counts[kind] = int(total)
                    self._cond.notify_all()
            elif tag == "B":
                with contextlib.suppress(ValueError):
                    self._bytes = int(rest)
            elif tag == "D":
                self.disk_error = rest
