"""IoLoop on plain socketpairs (no broker, no monkey patching): readiness queues the channel for the single
I/O greenlet, the write watcher is armed only on request, timers fire, housekeeping visits every member,
fds above 1024 work (epoll via libev, never select())."""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator

import gevent
import gevent.event
import pytest

from simulator.transports.lean_loop import IoLoop


class _Chan:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.got = b""
        self.reads = self.writes = self.misc = 0
        self.event = gevent.event.Event()
        self.greenlets: set[object] = set()

    def handle_read(self) -> None:
        self.reads += 1
        self.greenlets.add(gevent.getcurrent())
        self.got += self.sock.recv(4096)
        self.event.set()

    def handle_write(self) -> None:
        self.writes += 1
        self.event.set()

    def handle_misc(self, now: float) -> None:
        self.misc += 1
        self.event.set()


@pytest.fixture
def loop() -> Iterator[IoLoop]:
    io = IoLoop(misc_period_s=0.1, tick_s=0.01)
    yield io
    io.stop()


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_read_write_and_single_io_greenlet(loop: IoLoop) -> None:
    chans = []
    socks = []
    for _ in range(3):
        a, b = _pair()
        socks += [a, b]
        chan = _Chan(a)
        loop.register(a.fileno(), chan)
        chans.append(chan)
    for i, (chan, peer) in enumerate(zip(chans, socks[1::2], strict=True)):
        peer.send(b"x%d" % i)
        assert chan.event.wait(5)
        assert chan.got == b"x%d" % i
    assert len(set().union(*(c.greenlets for c in chans))) == 1  # one I/O greenlet serves them all
    assert all(c.writes == 0 for c in chans)  # no write watcher unless asked
    slot = loop.register(socks[0].fileno(), chans[0])  # re-registering the same fd replaces the old slot
    chans[0].event.clear()
    loop.want_write(slot, True)
    assert chans[0].event.wait(5) and chans[0].writes >= 1
    loop.want_write(slot, False)
    loop.unregister(slot)
    for s in socks:
        s.close()


def test_timers_and_housekeeping(loop: IoLoop) -> None:
    fired = gevent.event.Event()
    loop.call_later(0.02, fired.set)
    a, b = _pair()
    chan = _Chan(a)
    loop.add_member(chan)
    assert fired.wait(5)
    assert chan.event.wait(5) and chan.misc >= 1
    loop.remove_member(chan)
    a.close()
    b.close()


def test_fds_above_1024(loop: IoLoop) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"fd hard limit {hard} < 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    burned = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        a, b = _pair()
        assert a.fileno() > 1024
        chan = _Chan(a)
        slot = loop.register(a.fileno(), chan)
        b.send(b"hi")
        assert chan.event.wait(5) and chan.got == b"hi"
        loop.unregister(slot)
        a.close()
        b.close()
    finally:
        for fd in burned:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_timer_wakes_idle_housekeeping() -> None:
    """With no timer pending the housekeeping greenlet waits up to idle_tick_s; a timer arriving meanwhile
    wakes it, so the timer still fires within tick_s of its time (not after the idle tick)."""
    io = IoLoop(misc_period_s=0.1, tick_s=0.01, idle_tick_s=60.0)
    try:
        gevent.sleep(0)  # sleep-ok: a yield; the housekeeping greenlet runs into its idle wait
        fired = gevent.event.Event()
        io.call_later(0.02, fired.set)
        assert fired.wait(5)
    finally:
        io.stop()


def test_housekeeping_serves_every_member_each_period_whatever_the_tick() -> None:
    """Members are served by the time since the last wake-up: idle ticks longer than misc_period_s still visit
    every member at each wake-up, and shorter ones a share each."""
    for idle_tick_s in (0.02, 0.25):
        io = IoLoop(misc_period_s=0.1, tick_s=0.01, idle_tick_s=idle_tick_s)
        pairs = [_pair() for _ in range(7)]
        chans = [_Chan(a) for a, _ in pairs]
        try:
            for chan in chans:
                io.add_member(chan)
            for _ in range(500):
                if all(chan.misc >= 2 for chan in chans):
                    break
                gevent.sleep(0.01)  # sleep-ok: the real housekeeping cadence is the subject (bounded: 5 s)
            assert all(chan.misc >= 2 for chan in chans), [chan.misc for chan in chans]
        finally:
            io.stop()
            for a, b in pairs:
                a.close()
                b.close()
