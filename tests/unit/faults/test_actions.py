"""FaultRunner against fake devices, a fake proxy and a fake control endpoint (no network, no sleeps:
the schedule's times are all 0 or already past, so every step runs at once)."""

from __future__ import annotations

from typing import Any

from simulator.clock import VirtualClock
from simulator.faults.actions import FaultRunner, FaultyTransport
from simulator.faults.schedule import build_schedule
from simulator.scenario.model import FaultSpec, FleetSpec, Scenario


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def publish(self, interface: str, path: str, value: Any, timestamp_ms: int | None,
                on_ack: Any = None) -> None:
        self.calls.append(("publish", (timestamp_ms, on_ack is not None)))

    def connect(self) -> None:
        self.calls.append(("connect", None))

    def disconnect(self) -> None:
        self.calls.append(("disconnect", None))


class FakeDevice:
    def __init__(self, index: int) -> None:
        self.device_id = f"dev{index}"
        self.transport: Any = FakeTransport()
        self.starts = 0

    def start(self) -> None:
        self.starts += 1


class FakeProxy:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def set_delay(self, ms: float) -> None:
        self.calls.append(("delay", ms))

    def stall(self, seconds: float) -> None:
        self.calls.append(("stall", seconds))

    def reset_all(self) -> int:
        self.calls.append(("reset", 0))
        return 4

    def block(self, seconds: float) -> None:
        self.calls.append(("block", seconds))

    def stats(self) -> dict[str, Any]:
        return {"connections": 4}


def _runner(*faults: FaultSpec, devices: int = 4) -> tuple[FaultRunner, dict[int, FakeDevice], FakeProxy,
                                                           list[tuple[str, dict[str, Any]]]]:
    scenario = Scenario(name="t", seed=1, fleet=FleetSpec(devices=devices), faults=faults)
    fleet = {i: FakeDevice(i) for i in range(devices)}
    proxy = FakeProxy()
    posts: list[tuple[str, dict[str, Any]]] = []

    def post(url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        posts.append((url, body))
        return {"port": 1234}

    clock = VirtualClock(start=100.0)  # run started at 100; every step (t <= 0 + 0) is due at once
    runner = FaultRunner(build_schedule(scenario), clock=clock, run_start=clock.monotonic() - 1000,
                         run_start_wall=clock.wall() - 1000, devices=fleet, proxy=proxy,
                         control_url="http://ctl/", post=post)
    return runner, fleet, proxy, posts


def _run(runner: FaultRunner) -> list[dict[str, Any]]:
    runner.start()
    assert runner._main is not None
    runner._main.join(5)
    return runner.finish()


def test_network_faults_drive_the_proxy_in_order() -> None:
    runner, _, proxy, _ = _runner(FaultSpec("network_delay", at=1, duration=2, params=(("delay_ms", "30"),)),
                                  FaultSpec("stall", at=4, duration=1), FaultSpec("reset", at=6, duration=1))
    log = _run(runner)
    assert proxy.calls == [("delay", 30.0), ("delay", 0.0), ("stall", 1.0), ("stall", 0.0), ("reset", 0),
                           ("block", 1.0), ("block", 0.0)]
    assert [r["kind"] for r in log] == ["network_delay", "stall", "reset"]
    assert all(r["started"] is not None and r["ended"] is not None and not r["cut"] for r in log)
    assert log[2]["connections_reset"] == 4
    assert log[2]["reconnected_s"] >= 0


def test_broker_restart_posts_to_the_control_endpoint() -> None:
    runner, _, _, posts = _runner(FaultSpec("broker_restart", at=1, duration=0.25))
    log = _run(runner)
    assert posts == [("http://ctl/broker/restart", {"down_s": 0.25})]
    assert log[0]["broker"] == {"port": 1234} and log[0]["ended"] is not None


def test_disconnect_then_reconnect_each_device() -> None:
    runner, fleet, _, _ = _runner(FaultSpec("disconnect", at=1, duration=1, devices=1.0))
    log = _run(runner)
    for dev in fleet.values():
        assert [c[0] for c in dev.transport.calls] == ["disconnect", "connect"]
    assert log[0]["affected"] == 4 and log[0]["errors"] == []


def test_publish_faults_wrap_then_unwrap_the_transport() -> None:
    runner, fleet, _, _ = _runner(FaultSpec("clock_skew", at=0, duration=5, devices=1.0,
                                            params=(("offset", "-2s"),)),
                                  FaultSpec("duplicate", at=0, duration=5, devices=1.0,
                                            params=(("copies", "2"),)))
    schedule_steps = runner.schedule.steps
    # Run only the two starts, publish through the wrapper, then the ends.
    for step in schedule_steps[:2]:
        runner._do(step)
    dev = fleet[0]
    assert isinstance(dev.transport, FaultyTransport)
    dev.transport.publish("i", "/event", {}, 10_000, lambda t, e: None)
    inner = dev.transport.inner
    skewed = ("publish", (8_000, False))  # t - 2 s; the copies carry no ack callback
    assert inner.calls == [("publish", (8_000, True)), skewed, skewed]
    for step in schedule_steps[2:]:
        runner._do(step)
    assert dev.transport is inner  # nothing left wrapped
    log = runner.finish()
    assert log[1]["duplicates_sent"] == 2  # one publish, two extra copies


def test_retry_delays_grow_exponentially_with_jitter() -> None:
    import random

    from simulator.faults.actions import RECONNECT_RETRY_S, retry_delay_s

    rng = random.Random(3)
    for attempt in range(5):
        delays = [retry_delay_s(attempt, rng) for _ in range(200)]
        base = RECONNECT_RETRY_S * 2**attempt
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert max(delays) - min(delays) > 0.5 * base  # spread: retries of a herd do not coincide


def test_disconnect_logs_how_long_the_fleet_took_to_come_back() -> None:
    runner, fleet, _, _ = _runner(FaultSpec("disconnect", at=1, duration=1, devices=1.0))
    log = _run(runner)
    assert log[0]["reconnected"] == len(fleet)
    assert set(log[0]["reconnect_s"]) == {"p50", "p99", "max"}
    assert log[0]["reconnect_s"]["max"] == 0.0  # the virtual clock did not move during the connects


class _ComesBackTransport(FakeTransport):
    """Online until the broker restarts; connected again on the `polls`-th look after it (auto-reconnect)."""

    def __init__(self, polls: int) -> None:
        super().__init__()
        self.polls = polls
        self.restarted = False

    @property
    def connected(self) -> bool:
        if not self.restarted:
            return True
        self.polls -= 1
        return self.polls <= 0


def test_broker_restart_logs_when_every_device_is_back() -> None:
    runner, fleet, _, _ = _runner(FaultSpec("broker_restart", at=1, duration=0.25), devices=3)
    transports = [_ComesBackTransport(polls=i + 1) for i in range(3)]
    for dev, transport in zip(fleet.values(), transports, strict=True):
        dev.transport = transport

    def post(url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        for t in transports:
            t.restarted = True
        return {"port": 1234}

    runner.post = post
    runner.start()
    assert runner._main is not None
    runner._main.join(5)
    import gevent

    gevent.joinall(runner._helpers, timeout=5)
    log = runner.finish()
    assert log[0]["errors"] == []
    assert (log[0]["devices_before"], log[0]["devices_back"]) == (3, 3)
    assert log[0]["all_back_s"] == 0.0  # virtual clock: the polls take no virtual time
