"""The log relay: mosquitto's stderr drained by a small process of its own, so that the broker never waits on
the backend (why: simulator.backend.broker_log's docstring).

    python -m simulator.backend.log_relay --path <state>/mosquitto/mosquitto.log [--cap-bytes N]

stdin is mosquitto's stderr (a pipe); stdout is a pipe to the backend's BrokerLogReader. The relay

- reads stdin in chunks of up to 64 KiB, pausing PAUSE_S after a short read so that it wakes a few dozen times
  a second rather than once per log line, on a pipe enlarged to PIPE_BYTES so that mosquitto never blocks
  meanwhile;
- writes every byte to `--path`, renamed to `<path>.1` (replacing the previous one) when it reaches
  `--cap-bytes`: at most 2 x cap on disk, the most recent lines always readable;
- counts refusals (broker_log.REFUSAL_PATTERNS): only chunks holding one of the markers are split into lines,
  so the per-message debug chatter costs one `bytes.find` per marker per chunk, not a Python loop per line;
- forwards to the backend only refusal lines, running counts and, at most every REPORT_S, its byte count
  (broker_log's docstring has the message format). stdout is non-blocking: while the backend does not read
  (stopped, starved), what waits is bounded -- the newest EXAMPLES_KEPT refusal lines (older ones dropped)
  and the counts as running totals (so nothing is lost from them) -- and reading stdin never waits for it;
- exits at EOF (mosquitto exited) after its last message, waiting for the backend to take it at most
  FINAL_FLUSH_S; a backend gone (EPIPE) ends the forwarding, never the draining.

It imports only the standard library and simulator.backend.broker_log (itself stdlib only; the packages above
it import nothing), so it starts in a few tens of milliseconds, while mosquitto's first lines wait in the pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import select
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO

from simulator.backend.broker_log import (
    EXAMPLE_CHARS,
    EXAMPLES_KEPT,
    LOG_CAP_BYTES,
    MARKERS,
    REFUSAL_PATTERNS,
    REPORT_S,
    parse_refusals,
)

__all__ = ["FINAL_FLUSH_S", "PAUSE_S", "PIPE_BYTES", "LogRelay", "command", "main"]

_CHUNK = 65536  # bytes per read: a pipe's default capacity on Linux
# mosquitto writes its log a line at a time, so a reader that reads as soon as anything is there wakes once per
# line: ~8 lines per QoS 2 OTAEvent, ~20,000 wake-ups a second at 2,600 events/s, each a poll and a read
# system call and a pass of Python (a reader thread in the backend also took the GIL from the collector's
# network thread each time: the convoy effect). After a short read the relay waits PAUSE_S for the pipe to
# fill: at most 1 / PAUSE_S wake-ups a second. The pipe is enlarged to PIPE_BYTES so that mosquitto never
# blocks on a full pipe meanwhile, nor while the relay itself is briefly descheduled on a loaded machine
# (~700 bytes of debug log per OTAEvent: 1 MiB is ~1,500 events, 0.5 s at 3,000 events/s, 25x the pause).
PAUSE_S = 0.02
PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size for an unprivileged process
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux >= 2.6.35; the name is in Python's fcntl from 3.10)
# At EOF the last messages wait this long for a backend that does not read (stopped): the relay must exit
# (mosquitto is gone) and the backend, if it ever reads again, loses at most the last half second's counts.
FINAL_FLUSH_S = 5.0


def command(path: Path, cap_bytes: int = LOG_CAP_BYTES) -> list[str]:
    """The relay's command line (this interpreter: the backend's environment, its sys.path)."""
    return [sys.executable, "-m", "simulator.backend.log_relay", "--path", str(path), "--cap-bytes", str(cap_bytes)]


class LogRelay:
    """One relay: `run()` drains `in_fd` until EOF; see the module docstring."""

    def __init__(self, in_fd: int, out_fd: int, path: Path, cap_bytes: int = LOG_CAP_BYTES) -> None:
        self._in, self._out_fd = in_fd, out_fd
        self.path = path
        self._cap = cap_bytes
        self._file: BinaryIO | None = path.open("wb")
        self._partial = b""  # the last line of the previous chunk when it had no newline yet
        self._bytes = 0  # read so far, over the rotations
        self._counts: dict[str, int] = {}  # running totals by kind
        # What the backend has not been sent yet: state, not a queue, so that it stays bounded.
        self._examples: deque[str] = deque(maxlen=EXAMPLES_KEPT)  # drop-oldest
        self._counts_due = False
        self._disk_error: str | None = None
        self._disk_error_due = False
        self._bytes_sent = -1
        self._bytes_sent_at = float("-inf")
        self._out = b""  # encoded messages a non-blocking write did not take yet (at most one batch)
        self._forwarding = True  # False once the backend is gone (EPIPE)

    def run(self) -> None:
        with contextlib.suppress(OSError):  # not a pipe (a test's file), or not Linux: reads as before
            fcntl.fcntl(self._in, _F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._out_fd, False)
        poller = select.poll()
        poller.register(self._in, select.POLLIN)
        writing = False
        try:
            while True:
                now = time.monotonic()
                self._flush(now)
                if self._out and not writing:
                    poller.register(self._out_fd, select.POLLOUT)
                elif writing and not self._out:
                    poller.unregister(self._out_fd)
                writing = bool(self._out)
                ready = poller.poll(self._timeout_ms(now))
                if not any(fd == self._in for fd, _ in ready):
                    continue  # stdout writable, or a byte count due: the loop's top flushes
                chunk = os.read(self._in, _CHUNK)
                if not chunk:
                    break
                self._take(chunk)
                if len(chunk) < _CHUNK // 2:
                    time.sleep(PAUSE_S)  # let the pipe fill (see PAUSE_S)
        finally:
            if self._partial:
                self._scan(b"\n")
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
            self._final_flush()

    # -- input ---------------------------------------------------------------------------------------------

    def _take(self, chunk: bytes) -> None:
        self._bytes += len(chunk)
        if self._file is not None:
            try:
                self._write(chunk)
            except OSError as exc:  # e.g. a full disk: keep draining (else mosquitto blocks), stop copying
                self._disk_error = f"{type(exc).__name__}: {exc}".replace("\n", " ")
                self._disk_error_due = True
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
        self._scan(chunk)

    def _write(self, chunk: bytes) -> None:
        assert self._file is not None
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
        if not any(marker in whole for marker in MARKERS):
            return
        markers = [m.decode() for m in MARKERS]
        lines = [ln.rstrip("\r") for ln in whole.decode("utf-8", "replace").split("\n")
                 if any(m in ln for m in markers)]
        counts = parse_refusals(lines)
        if not counts:
            return
        self._examples.extend(ln[:EXAMPLE_CHARS] for ln in lines if any(p.search(ln) for _, p in REFUSAL_PATTERNS))
        for kind, n in counts.items():
            self._counts[kind] = self._counts.get(kind, 0) + n
        self._counts_due = True

    # -- output --------------------------------------------------------------------------------------------

    def _timeout_ms(self, now: float) -> int | None:
        """How long poll() may wait: until the byte count is due, else for input (or stdout) only."""
        if not self._forwarding or self._bytes == self._bytes_sent or self._out:
            return None
        return max(0, int((self._bytes_sent_at + REPORT_S - now) * 1000) + 1)

    def _batch(self, now: float, final: bool) -> bytes:
        """What is due, encoded; the pending state is cleared as it is taken."""
        parts: list[str] = []
        if self._disk_error_due:
            parts.append(f"D {self._disk_error}\n")
            self._disk_error_due = False
        while self._examples:
            parts.append(f"E {self._examples.popleft()}\n")
        if self._counts_due:
            parts.extend(f"C {kind} {n}\n" for kind, n in sorted(self._counts.items()))
            self._counts_due = False
        if self._bytes != self._bytes_sent and (final or now - self._bytes_sent_at >= REPORT_S):
            parts.append(f"B {self._bytes}\n")
            self._bytes_sent, self._bytes_sent_at = self._bytes, now
        return "".join(parts).encode("utf-8", "replace")

    def _flush(self, now: float, final: bool = False) -> None:
        """Write what is due without blocking; what the pipe does not take waits in `_out` (one batch)."""
        if not self._forwarding:
            return
        if not self._out:
            self._out = self._batch(now, final)
        if not self._out:
            return
        try:
            written = os.write(self._out_fd, self._out)
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the backend is gone; keep draining mosquitto, forward nothing more
            self._forwarding, self._out = False, b""
            return
        self._out = self._out[written:]

    def _final_flush(self) -> None:
        """At EOF: everything still due, waiting at most FINAL_FLUSH_S for a backend that does not read."""
        deadline = time.monotonic() + FINAL_FLUSH_S
        poller = select.poll()
        poller.register(self._out_fd, select.POLLOUT)
        while self._forwarding:
            now = time.monotonic()
            self._flush(now, final=True)
            if not self._out or now >= deadline:
                return
            poller.poll(max(1, int((deadline - now) * 1000)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.backend.log_relay", description=__doc__.split("\n")[0])
    ap.add_argument("--path", type=Path, required=True, help="the disk copy (rotated to <path>.1 at the cap)")
    ap.add_argument("--cap-bytes", type=int, default=LOG_CAP_BYTES, help="bytes per file before rotating")
    args = ap.parse_args(argv)
    # A Ctrl-C in a terminal reaches the whole foreground group; the relay drains until mosquitto's own exit
    # (its last lines say why it stopped), which the backend brings about.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    LogRelay(sys.stdin.fileno(), sys.stdout.fileno(), args.path, args.cap_bytes).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
