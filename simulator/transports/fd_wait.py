"""Waiting in gevent's hub for a descriptor to become readable or writable, with a timeout, cheaply.

Why: gevent's `wait_read`/`wait_write(fd, timeout=...)` make an io watcher per call and guard the wait with a
`gevent.Timeout` (a Python object, started, cancelled and closed, which throws its exception into the greenlet).
A reboot's reconnect waits so 4-5 times on its own descriptors (the TCP connect, the TLS handshake, the
answers of the Pairing API's verify and info): 10.2-11.1 us of CPU per wait, against 6.1-7.1 us for an io
watcher kept by its owner and a bare libev timer, both waking one gevent Waiter (30,000 waits on a socketpair,
3 rounds each, a throwaway script, idle machine, 2026-12-07; a send + recv alone: 3.3 us).

`wait(watcher, timeout_s, exc)` is what gevent's `Hub.wait(watcher)` under a Timeout does, minus the Timeout:
the io watcher and a timer both switch to the waiting greenlet through one Waiter; whichever fires first wins,
and both are stopped before the greenlet goes on (also when it is killed meanwhile), so the other cannot
switch into it later.
"""

from __future__ import annotations

from typing import Any

from gevent import get_hub
from gevent.exceptions import ConcurrentObjectUseError, InvalidSwitchError
from gevent.hub import Waiter

__all__ = ["READ", "WRITE", "io_watcher", "wait"]

READ, WRITE = 1, 2  # libev EV_READ, EV_WRITE
_READY = object()
_TIMED_OUT = object()


def io_watcher(fd: int, events: int) -> Any:
    """An io watcher of the current thread's hub for `fd` (READ or WRITE); its owner closes it before `fd`."""
    return get_hub().loop.io(fd, events)


def wait(watcher: Any, timeout_s: float | None, exc: BaseException) -> None:
    """Block the calling greenlet until `watcher` (an io watcher, not started) fires; raise `exc` when
    `timeout_s` seconds pass first (None: no timeout). Raises ConcurrentObjectUseError when another greenlet
    waits on `watcher` already, as gevent's waits do."""
    if watcher.callback is not None:
        raise ConcurrentObjectUseError(f"another greenlet waits on this descriptor: {watcher.callback!r}")
    hub = get_hub()
    waiter = Waiter(hub)
    timer = None
    watcher.start(waiter.switch, _READY)
    try:
        if timeout_s is not None:
            timer = hub.loop.timer(max(0.0, timeout_s))
            # update=True: from the loop's time now, not its cached time of its last iteration, which may be
            # long past when the hub has not run for a while (gevent.Timeout starts its timer so, too).
            timer.start(waiter.switch, _TIMED_OUT, update=True)
        result = waiter.get()
    finally:
        watcher.stop()
        if timer is not None:
            timer.close()
    if result is _TIMED_OUT:
        raise exc
    if result is not _READY:
        raise InvalidSwitchError(f"unexpected switch into a descriptor wait: got {result!r}")
