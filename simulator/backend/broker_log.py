"""mosquitto's log, read from a pipe: refusal counts and examples in memory, a size-capped copy on disk.

Counting ACL denials needs mosquitto's debug level ("Denied PUBLISH" is a debug line in 2.0), which writes
several lines per message: ~700 bytes per QoS 2 OTAEvent (bench/collector_cost.py), 205 MB in 3 minutes of
issue 14's 2,000 events/s soak, ~7 GB for a 10 M-event run when written to a file. mosquitto logs to its
stderr (`log_dest stderr`: unbuffered, so a line is readable as soon as it is logged; stdout is block-buffered
on a pipe, and mosquitto 2.0 refuses a FIFO as a log file), and `BrokerLogReader` reads that pipe in 64 KiB
chunks on its own thread:

- refusals are counted per kind (`parse_refusals`); only chunks holding one of the refusal markers are split
  into lines, so the per-message debug chatter costs one `bytes.find` per marker per chunk, not a Python loop
  per line;
- the last EXAMPLES_KEPT refusal lines are kept for humans (`examples()`);
- every byte is also written to `<log path>`, which is renamed to `<log path>.1` (replacing the previous one)
  when it reaches `cap_bytes`: at most 2 x cap_bytes on disk, the most recent lines always readable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

__all__ = ["EXAMPLES_KEPT", "LOG_CAP_BYTES", "REFUSAL_PATTERNS", "BrokerLogReader", "parse_refusals"]

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
_MARKERS = (b"Denied ", b"OpenSSL Error", b"Client connection from ", b"not authori")

LOG_CAP_BYTES = 32 * 1024 * 1024  # per file; with the one rotated file at most 64 MiB of log on disk
EXAMPLES_KEPT = 50  # refusal lines kept in memory, newest last
_CHUNK = 65536  # bytes per read: a pipe's default capacity on Linux
# mosquitto writes its log a line at a time, so a reader that reads as soon as anything is there wakes once per
# line: ~8 lines per QoS 2 OTAEvent, ~20,000 wake-ups a second at 2,600 events/s, each taking the GIL from the
# collector's network thread in the same process (the convoy effect: a thread returning from a blocking call
# waits up to sys.getswitchinterval() for the GIL). After a short read the reader waits PAUSE_S for the pipe
# to fill: at most 1 / PAUSE_S wake-ups a second. The pipe is enlarged to PIPE_BYTES so that mosquitto never
# blocks on a full pipe meanwhile (~700 bytes of debug log per OTAEvent: 1 MiB is ~1,500 events, 0.5 s at
# 3,000 events/s, 25x the pause).
PAUSE_S = 0.02
PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size for an unprivileged process
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux >= 2.6.35; the name is in Python's fcntl from 3.10)


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
    """Drains one broker's log pipe until EOF (the broker exited); see the module docstring. Thread-safe reads."""

    def __init__(self, pipe: IO[bytes], path: Path, cap_bytes: int = LOG_CAP_BYTES) -> None:
        self._pipe = pipe
        self.path = path
        self._cap = cap_bytes
        self._cond = threading.Condition()
        self._counts: dict[str, int] = {}
        self._examples: deque[str] = deque(maxlen=EXAMPLES_KEPT)
        self._bytes = 0  # read so far, over the rotations
        self._partial = b""  # the last line of the previous chunk when it had no newline yet
        self.disk_error: str | None = None  # why the on-disk copy stopped, if it did (counting goes on)
        self._file = path.open("wb")  # closed by the thread at EOF
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
        with self._cond:
            return self._bytes

    def wait_for(self, kind: str, count: int, timeout_s: float) -> bool:
        """True once `count` refusals of `kind` were read; woken by each chunk that holds a refusal."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counts.get(kind, 0) >= count, timeout_s)

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait for EOF (after the broker exited, its pipe ends) and the last lines to be counted."""
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
        fd = self._pipe.fileno()
        with contextlib.suppress(OSError):  # not a pipe (a test's file), or not Linux: reads as before
            fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)
        try:
            while chunk := os.read(fd, _CHUNK):
                if len(chunk) < _CHUNK // 2:
                    time.sleep(PAUSE_S)  # let the pipe fill (see PAUSE_S)
                if self.disk_error is None:
                    try:
                        self._write(chunk)
                    except OSError as exc:  # e.g. a full disk: keep draining (else mosquitto blocks), stop copying
                        self.disk_error = f"{type(exc).__name__}: {exc}"
                self._scan(chunk)
            if self._partial:
                self._scan(b"\n")
        except OSError:
            pass  # the pipe was closed under us (stop): nothing more to read
        finally:
            self._file.close()
            with contextlib.suppress(OSError):
                self._pipe.close()

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            room = self._cap - self._file.tell()
            if room <= 0:
                self._file.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self._file = self.path.open("wb")
                continue
            self._file.write(view[:room])
            view = view[room:]
        self._file.flush()  # readable by humans (and tail()) as it happens; one flush per chunk read

    def _scan(self, chunk: bytes) -> None:
        data = self._partial + chunk if self._partial else chunk
        cut = data.rfind(b"\n") + 1
        whole, self._partial = data[:cut], data[cut:]
        if len(self._partial) > _CHUNK:  # no newline in 64 KiB: not a log line worth waiting for
            whole, self._partial = data + b"\n", b""
        counts: dict[str, int] = {}
        found: list[str] = []
        if any(marker in whole for marker in _MARKERS):
            lines = [ln for ln in whole.decode("utf-8", "replace").split("\n")
                     if any(m.decode() in ln for m in _MARKERS)]
            counts = parse_refusals(lines)
            found = [ln for ln in lines if any(p.search(ln) for _, p in REFUSAL_PATTERNS)]
        with self._cond:
            self._bytes += len(chunk)
            for kind, n in counts.items():
                self._counts[kind] = self._counts.get(kind, 0) + n
            self._examples.extend(found)
            if counts:
                self._cond.notify_all()

