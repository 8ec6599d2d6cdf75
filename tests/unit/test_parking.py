"""Parker (simulator.parking): a parked greenlet resumes on `unpark` -- straight from a watcher's callback that is
the last of its loop iteration, through one hub callback otherwise -- and never otherwise: an `unpark` with no
one parked is dropped, two `unpark`s resume once, and a resume that comes late never switches into another
wait of the greenlet, nor into a dead one."""

from __future__ import annotations

import socket

import gevent
import gevent.event

from simulator.parking import Parker


def test_unpark_from_another_greenlet_resumes_the_parked_one() -> None:
    parker = Parker()
    trail: list[str] = []

    def owner() -> None:
        trail.append("parked")
        parker.park()
        trail.append("resumed")

    g = gevent.spawn(owner)
    gevent.sleep(0)  # sleep-ok: a yield, not a wait (the spawned greenlet runs up to its park)
    assert trail == ["parked"] and parker.parked
    parker.unpark()
    assert trail == ["parked"]  # from a greenlet: through the hub, not at once
    g.join(timeout=2)
    assert trail == ["parked", "resumed"] and not parker.parked


def test_unpark_with_no_one_parked_is_dropped() -> None:
    parker = Parker()
    parker.unpark()  # nobody waits: nothing is remembered
    resumed = gevent.event.Event()

    def owner() -> None:
        parker.park()
        resumed.set()

    g = gevent.spawn(owner)
    gevent.sleep(0)  # sleep-ok: a yield, not a wait (the spawned owner runs and parks)
    assert not resumed.is_set() and parker.parked  # still waiting: the early unpark did not count
    parker.unpark()
    assert resumed.wait(timeout=2)
    g.join(timeout=2)


def test_a_timer_callback_switches_straight_into_the_parked_greenlet() -> None:
    parker = Parker()
    trail: list[str] = []
    loop = gevent.get_hub().loop

    def fire() -> None:  # runs in the hub, the only watcher due in its loop iteration
        trail.append("timer")
        parker.unpark()
        trail.append("timer returns")

    def owner() -> None:
        timer = loop.timer(0.001)
        timer.start(fire)
        try:
            parker.park()
        finally:
            timer.close()
        trail.append("resumed")

    gevent.spawn(owner).join(timeout=2)
    assert trail == ["timer", "resumed", "timer returns"]  # resumed inside the callback: no hub callback


def test_watchers_firing_together_resume_the_owner_once_after_the_last() -> None:
    parker = Parker()
    loop = gevent.get_hub().loop
    pairs = [socket.socketpair() for _ in range(3)]
    seen: list[int] = []
    ready: list[int] = []
    watchers = []

    def on_ready(i: int) -> None:
        pairs[i][0].recv(16)
        ready.append(i)
        parker.unpark()

    def owner() -> None:
        while sum(seen) < 3:
            if not ready:
                parker.park()
                continue
            seen.append(len(ready))  # how many were ready at each resume
            ready.clear()

    try:
        for i, (a, _) in enumerate(pairs):
            w = loop.io(a.fileno(), 1)
            w.start(on_ready, i)
            watchers.append(w)
        g = gevent.spawn(owner)
        gevent.sleep(0)  # sleep-ok: a yield, not a wait (the spawned greenlet runs up to its park)
        for _, b in pairs:
            b.send(b"x")
        g.join(timeout=2)
        assert g.dead and seen == [3]  # one resume for the three ready sockets of one loop iteration
    finally:
        for w in watchers:
            w.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_two_unparks_resume_once_and_never_into_another_wait() -> None:
    parker = Parker()
    trail: list[str] = []
    loop = gevent.get_hub().loop

    def owner() -> None:
        parker.park()
        trail.append("resumed")
        gevent.sleep(0.02)  # sleep-ok: another timed wait, which a stale resume switching in would end early
        trail.append("slept")

    def both() -> None:  # in the hub: first a greenlet's unpark (a hub callback), then a direct one
        parker.unpark()

    g = gevent.spawn(owner)
    gevent.sleep(0)  # sleep-ok: a yield, not a wait (the spawned greenlet runs up to its park)
    parker.unpark()  # queued as a hub callback
    loop.run_callback(both)  # a second unpark before it runs: no second resume
    g.join(timeout=2)
    assert trail == ["resumed", "slept"] and g.successful()


def test_a_killed_parked_greenlet_is_not_resumed_later() -> None:
    parker = Parker()

    def owner() -> None:
        parker.park()

    g = gevent.spawn(owner)
    gevent.sleep(0)  # sleep-ok: a yield, not a wait (the spawned greenlet runs up to its park)
    parker.unpark()  # a resume queued...
    g.kill(block=True)  # ...and the greenlet killed first
    gevent.sleep(0)  # sleep-ok: a yield; the queued resume runs first and must not switch into the dead greenlet
    assert g.dead and not parker.parked
