"""Run a FaultSchedule against a live run: devices (their transports), the fault proxy, the backend.

One greenlet (`FaultRunner.start`) walks the steps on the run's absolute clock (run start + t; never
sleep-after-action, docs/design.md principle 3); device reconnects and the broker restart run in their own
greenlets so that one slow connect does not delay the next step. Every fault is logged with wall times
(`started`, `ended`) for the summary's "faults" list; `finish()` undoes whatever is still active when the run
ends (delay back to 0, transports unwrapped) and marks those faults "cut".

Device faults: disconnect / reboot_storm use `transport.disconnect()` then `connect()` (reboot_storm:
`device.start()`, which republishes the startup properties as the runtime does after a boot); publishes
meanwhile fail and are accounted `publish_failed`. Retries back off exponentially with jitter. The log
measures the reconnect storm: `reconnected` and `reconnect_s` (p50/p99/max from the fault's end until each
device is connected again) for disconnect / reboot_storm; `all_back_s` (broker listening again -> every
device that was online connected again) for broker_restart. clock_skew / duplicate / slow_device wrap the
device's transport (`FaultyTransport`): only the on-wire `t` is skewed (the generator's own records stay true), extra
copies carry the same event key (the accounting counts them `duplicated`), a slow device waits before each
publish (it shows as send lag).
"""

from __future__ import annotations

import json
import logging
import random
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import gevent
import gevent.event

from simulator.clock import Clock
from simulator.events import Value
from simulator.faults.schedule import FaultAction, FaultSchedule, Step, describe
from simulator.transports.base import AckCallback, Transport

__all__ = ["FaultRunner", "FaultyTransport", "ProxyControl", "retry_delay_s", "summarize_seconds"]

log = logging.getLogger("fleetsim.faults")

RESTART_TIMEOUT_S = 60.0  # the broker restart POST returns once the broker listens again (~0.2 s mosquitto)
RECONNECT_TRIES = 5  # a device reconnecting after a fault: attempts, with exponential backoff between them
RECONNECT_RETRY_S = 1.0  # first retry delay; doubled per attempt, +-50% jitter so a storm does not re-herd
ALL_BACK_TIMEOUT_S = 60.0  # after a broker restart, how long we wait for every device to be online again
RECOVERY_POLL_S = 0.05  # how often the proxy's open connections are counted after a reset (seconds)


class ProxyControl(Protocol):
    """What the runner needs of proxy.FaultProxy / proxy_process.ProxyProcess."""

    def set_delay(self, ms: float) -> None: ...

    def stall(self, seconds: float) -> None: ...

    def reset_all(self) -> int: ...

    def block(self, seconds: float) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class _Device(Protocol):
    device_id: str
    transport: Transport

    def start(self) -> Any: ...


class FaultyTransport:
    """A device's transport with publish-side faults; everything else is the inner transport's."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.skew_ms = 0
        self.copies = 0
        self.delay_s = 0.0
        self.duplicates_sent = 0

    @property
    def idle(self) -> bool:
        return not (self.skew_ms or self.copies or self.delay_s)

    def publish(self, interface: str, path: str, value: Value, timestamp_ms: int | None,
                on_ack: AckCallback | None = None) -> None:
        if self.delay_s > 0:
            gevent.sleep(self.delay_s)  # sleep-ok: the fault itself (a slow device), not a wait for logic
        t = None if timestamp_ms is None else timestamp_ms + self.skew_ms
        self.inner.publish(interface, path, value, t, on_ack)
        for _ in range(self.copies):
            self.inner.publish(interface, path, value, t, None)
            self.duplicates_sent += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FaultRunner:
    """Executes `schedule` from `run_start` (monotonic s; `run_start_wall` its wall time)."""

    def __init__(self, schedule: FaultSchedule, *, clock: Clock, run_start: float, run_start_wall: float,
                 devices: Mapping[int, _Device] | None = None, proxy: ProxyControl | None = None,
                 control_url: str = "", run_broker_faults: bool = True, run_device_faults: bool = True,
                 post: Callable[[str, dict[str, Any], float], dict[str, Any]] | None = None) -> None:
        self.schedule = schedule
        self.clock = clock
        self.run_start, self.run_start_wall = run_start, run_start_wall
        self.devices: Mapping[int, _Device] = devices or {}
        self.proxy = proxy
        self.control_url = control_url.rstrip("/")
        self.run_broker_faults, self.run_device_faults = run_broker_faults, run_device_faults
        self.post = post or _post_json
        self.stopping = gevent.event.Event()
        self.records: dict[int, dict[str, Any]] = {}
        self._wrapped: dict[int, FaultyTransport] = {}
        self._active: set[int] = set()
        self._helpers: list[gevent.Greenlet] = []
        self._main: gevent.Greenlet | None = None
        # fault index -> seconds from the fault's end until each device was connected again (reconnect storm)
        self._back_s: dict[int, list[float]] = {}

    # ---- driving ----

    def start(self) -> None:
        self._main = gevent.spawn(self._run)

    def _run(self) -> None:
        for step in self.schedule.steps:
            delay = self.run_start + step.t - self.clock.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                return
            if self.stopping.is_set():
                return
            try:
                self._do(step)
            except Exception as exc:  # a fault that fails is logged and the run goes on
                a = step.action
                log.warning("fault %s (%s) %s failed: %s", a.index, a.kind, step.phase, exc)
                self._record(step.action)["errors"].append(f"{step.phase}: {type(exc).__name__}: {exc}")

    def finish(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Stop the schedule, undo active faults, wait for helpers; the log, in scenario order."""
        self.stopping.set()
        if self._main is not None:
            self._main.join(timeout_s)
            self._main.kill(block=True)
        gevent.joinall(self._helpers, timeout=timeout_s)
        for g in self._helpers:
            g.kill(block=True)
        for index in sorted(self._active):
            action = self.schedule.actions[index]
            try:
                self._undo(action)
            except Exception as exc:
                self._record(action)["errors"].append(f"undo: {type(exc).__name__}: {exc}")
            rec = self._record(action)
            rec["cut"] = True
            rec["ended"] = rec["ended"] or self.clock.wall()
        self._active.clear()
        for index, samples in self._back_s.items():
            rec = self._record(self.schedule.actions[index])
            rec["reconnected"] = len(samples)
            rec["reconnect_s"] = summarize_seconds(samples)
        return [self.records[i] for i in sorted(self.records)]

    # ---- bookkeeping ----

    def _record(self, action: FaultAction) -> dict[str, Any]:
        rec = self.records.get(action.index)
        if rec is None:
            rec = {**describe(action), "started": None, "ended": None, "affected": 0, "errors": [],
                   "cut": False}
            self.records[action.index] = rec
        return rec

    def _started(self, action: FaultAction) -> None:
        rec = self._record(action)
        rec["started"] = rec["started"] or self.clock.wall()
        self._active.add(action.index)

    def _ended(self, action: FaultAction) -> None:
        self._record(action)["ended"] = self.clock.wall()
        self._active.discard(action.index)

    # ---- steps ----

    def _do(self, step: Step) -> None:
        a = step.action
        if a.kind == "broker_restart":
            if step.phase == "start" and self.run_broker_faults:
                self._started(a)
                self._helpers.append(gevent.spawn(self._restart_broker, a))
            return
        if a.kind in ("network_delay", "stall", "reset"):
            self._network(step)
            return
        if not self.run_device_faults:
            return
        targets = [step.device] if step.device is not None else list(a.devices)
        local = [self.devices[d] for d in targets if d in self.devices]
        if step.phase == "start":
            self._started(a)
            self._record(a)["affected"] += len(local)
            for dev in local:
                self._device_start(a, dev)
        else:
            for dev in local:
                self._device_end(a, dev)
            if step.device is None or step == self._last_step(a):
                self._ended(a)

    def _last_step(self, action: FaultAction) -> Step:
        return [s for s in self.schedule.steps if s.action.index == action.index][-1]

    def _network(self, step: Step) -> None:
        a, proxy = step.action, self.proxy
        if proxy is None:
            self._record(a)["errors"].append("no fault proxy in this process")
            return
        if step.phase == "start":
            self._started(a)
            self._record(a)["affected"] = len(a.devices)
            if a.kind == "network_delay":
                proxy.set_delay(a.param("delay_ms"))
            elif a.kind == "stall":
                proxy.stall(a.duration)
            else:
                reset = proxy.reset_all()
                self._record(a)["connections_reset"] = reset
                self._helpers.append(gevent.spawn(self._time_recovery, a, proxy, reset))
                if a.duration > 0:
                    proxy.block(a.duration)
                else:
                    self._ended(a)
        else:
            self._undo(a)
            self._ended(a)

    def _time_recovery(self, a: FaultAction, proxy: ProxyControl, reset: int) -> None:
        """`reconnected_s`: from the RST until as many connections are open again (polled every 50 ms)."""
        t0 = self.clock.monotonic()
        while True:
            if int(proxy.stats().get("connections", 0)) >= reset:
                self._record(a)["reconnected_s"] = round(self.clock.monotonic() - t0, 3)
                return
            if self.stopping.wait(RECOVERY_POLL_S):
                return

    def _undo(self, a: FaultAction) -> None:
        if a.kind == "network_delay" and self.proxy is not None:
            self.proxy.set_delay(0.0)
        elif a.kind == "stall" and self.proxy is not None:
            self.proxy.stall(0.0)
        elif a.kind == "reset" and self.proxy is not None:
            self.proxy.block(0.0)
        elif a.kind in ("clock_skew", "duplicate", "slow_device"):
            for d in a.devices:
                if d in self.devices:
                    self._device_end(a, self.devices[d])

    def _restart_broker(self, a: FaultAction) -> None:
        online = [d for d in self.devices.values() if getattr(d.transport, "connected", False)]
        try:
            reply = self.post(f"{self.control_url}/broker/restart", {"down_s": a.duration}, RESTART_TIMEOUT_S)
            self._record(a)["broker"] = reply
        except Exception as exc:
            self._record(a)["errors"].append(f"broker restart: {type(exc).__name__}: {exc}")
            self._ended(a)
            return
        self._ended(a)
        self._time_all_back(a, online)

    def _time_all_back(self, a: FaultAction, devices: list[_Device]) -> None:
        """`all_back_s`: from the broker listening again until every device online before the restart is
        connected again (they reconnect by themselves, with backoff); polled, since nothing signals it."""
        t0 = self.clock.monotonic()
        rec = self._record(a)
        rec["devices_before"] = len(devices)
        waiting = list(devices)
        while waiting:
            waiting = [d for d in waiting if not getattr(d.transport, "connected", False)]
            rec["devices_back"] = len(devices) - len(waiting)
            if not waiting:
                rec["all_back_s"] = round(self.clock.monotonic() - t0, 3)
                return
            if self.clock.monotonic() - t0 > ALL_BACK_TIMEOUT_S:
                rec["errors"].append(f"{len(waiting)} devices not back within {ALL_BACK_TIMEOUT_S:.0f} s")
                return
            if self.stopping.wait(RECOVERY_POLL_S):
                return

    def _device_start(self, a: FaultAction, dev: _Device) -> None:
        if a.kind in ("disconnect", "reboot_storm"):
            dev.transport.disconnect()
            return
        ft = self._wrap(dev)
        if a.kind == "clock_skew":
            ft.skew_ms = round(a.param("offset") * 1000)
        elif a.kind == "duplicate":
            ft.copies = int(a.param("copies"))
        elif a.kind == "slow_device":
            ft.delay_s = a.param("delay_ms") / 1000.0

    def _device_end(self, a: FaultAction, dev: _Device) -> None:
        if a.kind in ("disconnect", "reboot_storm"):
            self._helpers.append(gevent.spawn(self._reconnect, a, dev))
            return
        ft = dev.transport
        if not isinstance(ft, FaultyTransport):
            return
        if a.kind == "clock_skew":
            ft.skew_ms = 0
        elif a.kind == "duplicate":
            rec = self._record(a)
            rec["duplicates_sent"] = rec.get("duplicates_sent", 0) + ft.duplicates_sent
            ft.copies, ft.duplicates_sent = 0, 0
        elif a.kind == "slow_device":
            ft.delay_s = 0.0
        if ft.idle:
            dev.transport = ft.inner

    def _wrap(self, dev: _Device) -> FaultyTransport:
        if isinstance(dev.transport, FaultyTransport):
            return dev.transport
        ft = FaultyTransport(dev.transport)
        dev.transport = ft  # duck-typed: a Transport (transports.base) by delegation
        return ft

    def _reconnect(self, a: FaultAction, dev: _Device) -> None:
        t0 = self.clock.monotonic()
        for attempt in range(RECONNECT_TRIES):
            try:
                if a.kind == "reboot_storm":
                    dev.start()
                else:
                    dev.transport.connect()
                self._back_s.setdefault(a.index, []).append(self.clock.monotonic() - t0)
                return
            except Exception as exc:
                if attempt == RECONNECT_TRIES - 1 or self.stopping.wait(retry_delay_s(attempt)):
                    why = f"{type(exc).__name__}: {exc}"
                    self._record(a)["errors"].append(f"{dev.device_id} reconnect: {why}")
                    return


def retry_delay_s(attempt: int, rng: random.Random | None = None) -> float:
    """Delay before reconnect retry `attempt` (0-based): RECONNECT_RETRY_S * 2**attempt, +-50% jitter.

    The jitter spreads a fleet that failed together (a reconnect storm refused by an overloaded broker) so
    that its retries do not arrive as one herd again."""
    jitter: float = (rng or random).uniform(0.5, 1.5)
    return RECONNECT_RETRY_S * float(1 << attempt) * jitter


def summarize_seconds(values: list[float]) -> dict[str, float]:
    """p50 / p99 / max of recovery times (s, 3 decimals) for the fault log; {} when there are none."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 3)}


def _post_json(url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # loopback control endpoint only
        doc = json.loads(resp.read() or b"{}")
    return doc if isinstance(doc, dict) else {"reply": doc}
