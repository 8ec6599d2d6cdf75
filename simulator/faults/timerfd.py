"""A Linux timerfd (nanosecond deadlines on CLOCK_MONOTONIC) for the fault proxy's release timer.

Why: asyncio's `call_at` waits through `epoll_wait`, whose timeout is whole milliseconds rounded *up*
(CPython selectmodule.c, `_PyTime_ROUND_CEILING`), so a held chunk would leave up to ~1 ms late. A timerfd
armed with an absolute CLOCK_MONOTONIC deadline (timerfd_create(2); `TFD_TIMER_ABSTIME`) wakes the same epoll
at the deadline plus the kernel's timer slack (50 us by default, prctl(2) PR_SET_TIMERSLACK). Python gets
`os.timerfd_create` only in 3.13, hence ctypes. `time.monotonic()` reads CLOCK_MONOTONIC on Linux (PEP 418),
the clock asyncio's `loop.time()` uses, so deadlines computed from either are comparable.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

__all__ = ["TimerFd", "set_timer_slack", "timerfd_available"]

_CLOCK_MONOTONIC = 1  # <linux/time.h>
_TFD_NONBLOCK = 0o4000  # == O_NONBLOCK on x86-64 and aarch64
_TFD_CLOEXEC = 0o2000000  # == O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.timerfd_create  # noqa: B018 -- probe: AttributeError when the libc lacks it
        lib.timerfd_settime  # noqa: B018
    except (OSError, AttributeError):
        return None
    return lib


_LIBC = _libc()


def timerfd_available() -> bool:
    """True on Linux with a libc exposing timerfd_create/timerfd_settime."""
    return _LIBC is not None


def set_timer_slack(ns: int = 1_000) -> bool:
    """Shrink the calling thread's timer slack (default 50 us) so timerfd wake-ups land within ~ns.

    prctl(2) PR_SET_TIMERSLACK (29) is per thread: call it from the thread that waits. False if refused.
    """
    if _LIBC is None:
        return False
    return int(_LIBC.prctl(29, ns, 0, 0, 0)) == 0


class TimerFd:
    """One non-blocking timerfd; readable (8 bytes: the expiry count) once its deadline passes."""

    __slots__ = ("fd",)

    def __init__(self) -> None:
        if _LIBC is None:
            raise OSError("timerfd is not available on this platform")
        fd = int(_LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd = fd

    def arm_at(self, deadline_s: float) -> None:
        """Fire once at `deadline_s` on CLOCK_MONOTONIC (seconds, as time.monotonic()); past => at once."""
        sec = int(deadline_s)
        nsec = int((deadline_s - sec) * 1e9)
        if sec <= 0 and nsec <= 0:  # an all-zero it_value would disarm instead of firing
            sec, nsec = 0, 1
        self._settime(_Itimerspec(_Timespec(0, 0), _Timespec(sec, nsec)))

    def disarm(self) -> None:
        self._settime(_Itimerspec(_Timespec(0, 0), _Timespec(0, 0)))

    def consume(self) -> None:
        """Read the expiry count so the fd stops being readable (EAGAIN when already consumed)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _settime(self, spec: _Itimerspec) -> None:
        assert _LIBC is not None
        if _LIBC.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")
