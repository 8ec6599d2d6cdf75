"""A profile by CPU time of this process's Python stacks, for a machine shared with other work (issue 16).

Why not py-spy there: py-spy samples on wall time and counts a thread as busy whenever it is not blocked in a
wait. A niced generator that is runnable but waiting for a core counts as busy wherever it stands, and it
stands most often just after waking another process: a TLS write on loopback wakes mosquitto (nice 0), which
takes the core at once. In a reboot campaign under a soak (bench/campaign_capacity.py --devices 300 --rate 15
--profile, main f60f8b0) py-spy put 34% of the play's samples in TlsSocket.send, while `perf record` of the
same child put 6% of its CPU in the kernel's socket writes (sock_write_iter) and 50% in the Python
interpreter, spread over ~100 functions.

How: setitimer(ITIMER_PROF) sends SIGPROF after every `interval_s` of the process's CPU (user + system); the
handler, run by the interpreter at its next bytecode boundary, counts the current stack (the running greenlet's
frames under gevent). Two biases, both from the handler running only between bytecodes: time in one long C
call (a TLS handshake's ~2 ms do_handshake) is undercounted, the expirations during it merging into one pending
signal; and CPU spent in the gevent hub's C loop (libev, its C callbacks) lands on the first bytecode a greenlet
runs when switched back in -- `Timeout.__exit__`, `_FakeTimer.__exit__`, `sleep` -- so a wait's own cost there
needs a CPU-time A/B to confirm (bench/scheduler_cost.py did for the scheduler's Timeouts). The output is folded
stacks ("a;b;c count"), as `py-spy record --format raw` writes them.
"""

from __future__ import annotations

import atexit
import os
import signal
from collections import Counter
from pathlib import Path
from types import FrameType

__all__ = ["install", "start", "stop"]


def install(out: Path, interval_s: float = 0.002) -> None:
    """Sample until the process exits, then write the folded stacks to `out`."""
    counts = start(interval_s)

    def write() -> None:
        stop()
        out.write_text("".join(f"{stack} {n}\n" for stack, n in sorted(counts.items())))

    atexit.register(write)


def start(interval_s: float = 0.002) -> Counter[str]:
    """Sample from now until `stop()`: the returned counter fills with folded stacks (a window of a run)."""
    counts: Counter[str] = Counter()

    def sample(_signum: int, frame: FrameType | None) -> None:
        parts: list[str] = []
        while frame is not None:
            code = frame.f_code
            parts.append(f"{code.co_qualname} ({os.path.basename(code.co_filename)})")
            frame = frame.f_back
        counts[";".join(reversed(parts))] += 1

    signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, interval_s, interval_s)
    return counts


def stop() -> None:
    signal.setitimer(signal.ITIMER_PROF, 0, 0)
