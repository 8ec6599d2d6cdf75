"""fd_wait: a descriptor wait with a timeout in gevent's hub -- ready, timed out, killed, shared, stale clock."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import gevent
import pytest
from gevent.exceptions import ConcurrentObjectUseError

from simulator.transports import fd_wait


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_ready_returns_and_the_watcher_can_wait_again(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    watcher = fd_wait.io_watcher(a.fileno(), fd_wait.READ)
    try:
        for _ in range(3):  # reused, as tls_stream reuses its watchers
            gevent.spawn_later(0.01, b.send, b"x")
            fd_wait.wait(watcher, 5.0, TimeoutError("late"))
            assert a.recv(1) == b"x"
            assert watcher.callback is None  # stopped
        writable = fd_wait.io_watcher(a.fileno(), fd_wait.WRITE)
        fd_wait.wait(writable, None, TimeoutError("never"))  # an empty send buffer: at once
        writable.close()
    finally:
        watcher.close()


def test_timeout_raises_the_given_exception(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    watcher = fd_wait.io_watcher(a.fileno(), fd_wait.READ)
    try:
        with pytest.raises(TimeoutError, match="no progress"):
            fd_wait.wait(watcher, 0.05, TimeoutError("no progress"))
        assert watcher.callback is None
    finally:
        watcher.close()


def test_a_timeout_counts_from_now_after_the_hub_sat_idle(pair: tuple[socket.socket, socket.socket]) -> None:
    """libev's cached time is that of its last iteration: a timer started from it after the hub sat idle for
    longer than the timeout would fire at once (the bug a first version had: a 5 s TLS handshake timed out)."""
    a, b = pair
    watcher = fd_wait.io_watcher(a.fileno(), fd_wait.READ)
    sender = threading.Timer(0.05, b.send, (b"x",))
    try:
        gevent.sleep(0.001)  # sleep-ok: the loop runs, caching its time (the subject of this test)
        time.sleep(0.3)  # sleep-ok: the hub idles (a blocking sleep: no gevent patching here)
        sender.start()
        fd_wait.wait(watcher, 0.25, TimeoutError("stale clock"))
        assert a.recv(1) == b"x"
    finally:
        sender.join()
        watcher.close()


def test_a_killed_waiter_leaves_the_watcher_stopped(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    watcher = fd_wait.io_watcher(a.fileno(), fd_wait.READ)
    try:
        g = gevent.spawn(fd_wait.wait, watcher, 5.0, TimeoutError("late"))
        gevent.sleep(0)  # sleep-ok: a yield; the spawned waiter runs into its wait
        assert watcher.callback is not None  # waiting
        g.kill()
        assert watcher.callback is None
    finally:
        watcher.close()


def test_a_second_waiter_on_the_same_watcher_is_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    watcher = fd_wait.io_watcher(a.fileno(), fd_wait.READ)
    try:
        first = gevent.spawn(fd_wait.wait, watcher, 5.0, TimeoutError("late"))
        gevent.sleep(0)  # sleep-ok: a yield; the spawned waiter runs into its wait
        with pytest.raises(ConcurrentObjectUseError):
            fd_wait.wait(watcher, 5.0, TimeoutError("late"))
        b.send(b"x")
        first.join(5.0)
        assert first.successful()
    finally:
        watcher.close()
