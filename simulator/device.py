"""VirtualDevice: one simulated Edgehog device -- OTA lifecycle + Transport + OTARequest handling.

No I/O of its own and no thread: the caller (a gevent loop, a Locust user, a test) calls `start()`, then
`run_due(now)` whenever `next_due()` (monotonic seconds) is reached. Two ways to drive it:
- self-driven: PlannedActions (simulator.plan; offsets in µs from the run's start), given at creation and
  handed over as the plan is generated (`extend_plan`);
- backend-driven: io.edgehog.devicemanager.OTARequest `/request` objects {operation, url, uuid} arrive through
  `transport.on_data`; Update starts a live lifecycle (a machine + draws from the device's own stream), Cancel
  and a second Update follow docs/protocol.md section 4, a malformed request is dropped and counted.
REBOOT disconnects the transport and reconnects when its duration ends (the transport redoes the Astarte
handshake; docs/protocol.md section 1). Each OTAEvent publish yields one SendRecord, handed to `send_sink` once its
fate is known (acked, failed, or never acked at `stop()`); each connect's OnboardingTimes go to
`onboarding_sink`.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from simulator.clock import Clock
from simulator.device_fetch import FetchSession
from simulator.events import (
    OTA_EVENT_INTERFACE,
    OTA_REQUEST_INTERFACE,
    OTA_REQUEST_PATH,
    ActionKind,
    PlannedAction,
    RecentKeyBook,
    Value,
)
from simulator.lifecycle.draws import draw_operation, operation_inputs
from simulator.lifecycle.fetch_plan import fetch_plan
from simulator.lifecycle.inputs import CancelRequested, Input, PoweredOff, UpdateRequested
from simulator.lifecycle.machine import OtaMachine
from simulator.lifecycle.plans import BASE_IMAGE_INTERFACE, Firmware, input_actions, plan_scripted
from simulator.lifecycle.states import Phase
from simulator.live_lifecycle import LiveLifecycle, parse_request, startup_properties
from simulator.metrics.campaign import ResponderLog
from simulator.records import SendRecord
from simulator.scenario.model import ScriptedLifecycle
from simulator.transports.base import OnboardingTimes, PublishError, Transport

__all__ = ["DeviceCounters", "LiveLifecycle", "VirtualDevice", "startup_properties"]

_LOG = logging.getLogger("fleetsim.device")
RECONNECT_RETRY_S = 1.0  # wall seconds between reconnect attempts after a failed one
# An operation starting later than this after its planned start counts as late (seconds of wall time). Send
# lag of a healthy generator is milliseconds (README, Benchmarks); half a second is a generator behind.
LATE_OPERATION_S = 0.5
_OPERATION_START = "Acknowledged"  # the first OTAEvent of every operation of a self-driven plan

SendSink = Callable[[SendRecord], None]
OnboardingSink = Callable[[str, OnboardingTimes], None]


@dataclass
class DeviceCounters:
    published: int = 0  # OTAEvent publishes that left
    publish_errors: int = 0
    property_errors: int = 0
    malformed: int = 0  # OTARequests dropped (docs/protocol.md section 4)
    requests: int = 0  # well-formed OTARequests received
    reboots: int = 0
    reconnect_failures: int = 0
    reboot_drain_waits: int = 0  # reboots that first waited for unacked publishes (generator.fleet)
    reboot_drain_timeouts: int = 0  # ... and whose bound ran out (those end "disconnected", counted)
    # Operations started over LATE_OPERATION_S late; those over the fleet's max start lag are not played at all
    # (k6's dropped_iterations): a saturated generator sheds whole operations, never half of one.
    late_operations: int = 0
    dropped_operations: int = 0
    dropped_events: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class VirtualDevice:
    """One device. Not thread-safe: one caller drives it."""

    def __init__(
        self,
        index: int,
        device_id: str,
        transport: Transport,
        clock: Clock,
        *,
        run_start: float,
        firmware: Firmware,
        actions: Sequence[PlannedAction] = (),
        live: LiveLifecycle | None = None,
        run_start_wall: float | None = None,
        send_sink: SendSink | None = None,
        onboarding_sink: OnboardingSink | None = None,
    ) -> None:
        self.index = index
        self.device_id = device_id
        self.transport = transport
        self.clock = clock
        self.run_start = run_start  # monotonic seconds; offsets count from here
        self.run_start_wall = (clock.wall() - (clock.monotonic() - run_start)
                               if run_start_wall is None else run_start_wall)
        self.firmware = firmware
        self.counters = DeviceCounters()
        self._planned = sorted(actions, key=lambda a: a.offset_us)  # stable: keeps the order of ties
        self._next = 0
        self._live = live
        self._machine = OtaMachine()
        self._queue: list[tuple[int, int, Input]] = []  # live inputs: (offset µs, seq, input)
        self._seq = 0
        # Live (campaign-mode) events are numbered for the whole run: bounded like the collector's book (issue 14).
        self._occurrences = RecentKeyBook()
        self._reconnect_us: int | None = None
        # When the last reconnect completed (µs from the run's start): events the plan put earlier could not
        # leave a device that was still onboarding; their intended time is this, and the reconnect's own
        # duration is measured as onboarding latency, not counted again as send lag.
        self._online_since_us = 0
        self._pending: dict[int, SendRecord] = {}
        self._send_sink = send_sink
        self._onboarding_sink = onboarding_sink
        # Backend-driven: per-uuid request/answer times for the campaign metrics (simulator.metrics.campaign).
        self.responder: ResponderLog | None = ResponderLog(device_id) if live is not None else None
        self.wake: Callable[[], None] = lambda: None  # the driver's loop: a download pushed an input
        self._script: frozenset[int] = frozenset()  # ids of a scripted answer's actions (mode responder)
        self._script_last: PlannedAction | None = None
        self._fetch = None if live is None or live.downloader is None else FetchSession(
            live.downloader, self._push, self._now_us, live.time_scale, self.responder, self._wall_now)
        transport.on_data(self._on_data)

    def extend_plan(self, actions: Sequence[PlannedAction]) -> None:
        """More planned actions (the plan's cursor hands a device its next operation ahead of time), after
        those already there. The actions already done are forgotten: a device holds only what is still due."""
        if not actions:
            return
        self._planned = [*self._planned[self._next:], *actions]
        self._next = 0
        self.wake()

    # -- time ------------------------------------------------------------------------------------------

    def _now_us(self, now: float | None = None) -> int:
        return round(((self.clock.monotonic() if now is None else now) - self.run_start) * 1e6)

    def _wall_now(self) -> float:
        """Wall time on the run's time base (run_start_wall + monotonic offset): differences are exact."""
        return self.run_start_wall + (self.clock.monotonic() - self.run_start)

    def _push(self, offset_us: int, inp: Input) -> None:
        heapq.heappush(self._queue, (offset_us, self._seq, inp))
        self._seq += 1
        self.wake()

    def _due_us(self) -> int | None:
        if self._reconnect_us is not None:
            return self._reconnect_us  # a rebooting device does nothing else until it is back (then late)
        # The earlier of the next planned action and the next live input (called several times per event).
        planned = self._planned[self._next].offset_us if self._next < len(self._planned) else None
        if self._queue:
            queued = self._queue[0][0]
            return queued if planned is None or queued < planned else planned
        return planned

    def next_due(self) -> float | None:
        """Monotonic time of the next thing to do (None: nothing planned, waiting for requests)."""
        due = self._due_us()
        return None if due is None else self.run_start + due / 1e6

    @property
    def pending_acks(self) -> int:
        """OTAEvent publishes sent and not yet acknowledged."""
        return len(self._pending)

    def reboot_due(self, now: float | None = None) -> bool:
        """Is the next planned action, due by `now`, a REBOOT? (The driver lets in-flight acks land first, as
        a device shutting down cleanly does, so the generator does not lose its own events at a reboot.)"""
        now_us = self._now_us(now)
        if self._queue and isinstance(self._queue[0][2], PoweredOff) and self._queue[0][0] <= now_us:
            return True  # backend-driven: powering off is the live queue's next step
        if self._next >= len(self._planned):
            return False
        action = self._planned[self._next]
        return action.kind is ActionKind.REBOOT and action.offset_us <= now_us

    @property
    def reconnecting(self) -> bool:
        """Rebooted and not back yet: its next due point is the reconnect (`next_due`), which blocks."""
        return self._reconnect_us is not None

    @property
    def busy(self) -> bool:
        """An OTA operation is in progress here, or an event of it still awaits its ack (`--until-idle`)."""
        return (self._machine.phase is not Phase.IDLE or bool(self._queue) or bool(self._pending)
                or self._reconnect_us is not None)

    @property
    def machine_phase(self) -> Phase:
        return self._machine.phase

    # -- lifecycle of the connection -------------------------------------------------------------------

    def start(self) -> OnboardingTimes:
        """Connect (registration, credentials, handshake) and publish the startup properties."""
        times = self._connect()
        for interface, path, value in startup_properties(self.index, self.firmware):
            self._set_property(interface, path, value)
        return times

    def stop(self) -> None:
        """Disconnect; publishes still unacked are recorded with error "never_acked"."""
        if self._fetch is not None:
            self._fetch.abort()
        self.transport.disconnect()
        for record in list(self._pending.values()):
            record.error = record.error or "never_acked"
            self._sink(record)
        self._pending.clear()

    def _connect(self) -> OnboardingTimes:
        times = self.transport.connect()
        if self._onboarding_sink is not None:
            self._onboarding_sink(self.device_id, times)
        return times

    # -- running ---------------------------------------------------------------------------------------

    def start_late_operation(self, max_lag_s: float, now: float | None = None) -> bool:
        """Before `run_due`: when the next planned action starts an operation (its Acknowledged OTAEvent), count
        it late past LATE_OPERATION_S and drop it past `max_lag_s`: every action before the device's next
        Acknowledged (the operation's reboot and properties too) is skipped and counted, never sent. True when
        dropped. Self-driven plans only (a backend-driven device answers requests as they come)."""
        if self._live is not None or self._reconnect_us is not None or self._next >= len(self._planned):
            return False
        first = self._planned[self._next]
        if not _starts_operation(first):
            return False
        lag_s = (self._now_us(now) - first.offset_us) / 1e6
        if lag_s <= LATE_OPERATION_S:
            return False
        self.counters.late_operations += 1
        if lag_s <= max_lag_s:
            return False
        end = self._next + 1
        while end < len(self._planned) and not _starts_operation(self._planned[end]):
            end += 1
        skipped = self._planned[self._next:end]
        self._next = end
        self.counters.dropped_operations += 1
        self.counters.dropped_events += sum(1 for a in skipped if a.kind is ActionKind.PUBLISH
                                            and a.interface == OTA_EVENT_INTERFACE)
        return True

    def run_due(self, now: float | None = None, hold_reboot: bool = False, hold_reconnect: bool = False) -> int:
        """Do everything due at `now` (monotonic s, default the clock's): returns how many actions ran.

        `hold_reboot`: stop before a due reboot while publishes await their acks, so that the driver can let
        them land first (see `reboot_due`); the next call without it reboots. `hold_reconnect`: stop before a
        due reconnect (the one action that blocks its caller: TLS, CONNACK, handshake acks), so that a driver
        serving many devices from one greenlet can hand it to a greenlet of its own (`reconnecting`)."""
        now_us = self._now_us(now)
        done = 0
        while True:
            due = self._due_us()
            if due is None or due > now_us:
                return done
            if hold_reboot and self._pending and self.reboot_due(now):
                return done
            if self._reconnect_us is not None:
                if hold_reconnect:
                    return done
                self._reconnect()
            elif self._next < len(self._planned) and self._planned[self._next].offset_us == due:
                action = self._planned[self._next]
                self._next += 1
                self._execute(action)
                if action is self._script_last:  # a scripted answer ended: ready for the next request
                    self._machine, self._script_last = OtaMachine(), None
            else:
                offset, _, inp = heapq.heappop(self._queue)
                for action in self._live_step(offset, inp):
                    self._execute(action)
            done += 1

    def _reconnect(self) -> None:
        try:
            self._connect()
        except Exception as exc:  # any onboarding failure: retry later, the run goes on
            self.counters.reconnect_failures += 1
            why = f"reconnect_error.{type(exc).__name__}"  # counted by kind; the message goes to the log
            self.counters.extra[why] = self.counters.extra.get(why, 0) + 1
            _LOG.info("device %s: reconnect failed (retried in %.0f s): %s", self.device_id, RECONNECT_RETRY_S, exc)
            assert self._reconnect_us is not None
            self._reconnect_us += round(RECONNECT_RETRY_S * 1e6)
            return
        self._reconnect_us = None
        self._online_since_us = self._now_us()

    def _execute(self, action: PlannedAction) -> None:
        if action.kind is ActionKind.PUBLISH:
            self._publish(action)
        elif action.kind is ActionKind.PROPERTY:
            self._set_property(action.interface, action.path, action.value)
        else:
            self.counters.reboots += 1
            self.transport.disconnect()
            self._reconnect_us = action.offset_us + action.duration_us

    def _set_property(self, interface: str, path: str, value: Value) -> None:
        try:
            self.transport.set_property(interface, path, value)
        except PublishError:
            self.counters.property_errors += 1
            return
        if interface == BASE_IMAGE_INTERFACE and path == "/version" and isinstance(value, str):
            self.firmware = Firmware(self.firmware.name, value, self.firmware.build_id)
        elif interface == BASE_IMAGE_INTERFACE and path == "/buildId" and isinstance(value, str):
            self.firmware = Firmware(self.firmware.name, self.firmware.version, value)

    def _sink(self, record: SendRecord) -> None:
        if self._send_sink is not None:
            self._send_sink(record)

    def _publish(self, action: PlannedAction) -> None:
        value = action.value
        assert type(value) is dict or isinstance(value, Mapping)  # a plain dict first: the ABC's check ~0.3 us
        progress = value.get("statusProgress", 0)
        key = (self.device_id, str(value.get("requestUUID", "")), str(value.get("status", "")),
               progress if isinstance(progress, int) else 0, action.occurrence)
        sent = self.clock.wall()
        t_ms = int(sent * 1000)
        intended = self.run_start_wall + max(action.offset_us, self._online_since_us) / 1e6
        code = value.get("statusCode", "")
        record = SendRecord(key=key, intended=intended, sent=sent, t_ms=t_ms,
                            code=code if isinstance(code, str) else "")
        token = id(record)
        self._pending[token] = record
        responder = self.responder
        if responder is not None:
            responder.published(key[1], key[2], record.code, self._wall_now())

        def on_ack(acked_at: float, error: str | None) -> None:
            if self._pending.pop(token, None) is None:
                return  # already reported (stop() flushed it)
            acked = record.acked = self.run_start_wall + (acked_at - self.run_start) if error is None else None
            record.error = error
            if responder is not None and acked is not None:
                responder.acked(key[1], key[2], acked)
            sink = self._send_sink  # `_sink` inline: one call less per OTAEvent
            if sink is not None:
                sink(record)

        try:
            self.transport.publish(action.interface, action.path, value, t_ms, on_ack)
        except PublishError as exc:
            self._pending.pop(token, None)
            record.sent, record.t_ms, record.error = None, None, exc.reason
            self.counters.publish_errors += 1
            self._sink(record)
            return
        self.counters.published += 1

    # -- backend-driven --------------------------------------------------------------------------------

    def _live_step(self, offset: int, inp: Input) -> list[PlannedAction]:
        """Feed one queued (or received) input to the machine; the actions it implies."""
        events = self._machine.handle(inp)
        reboot_us = self._queue[0][0] - offset if isinstance(inp, PoweredOff) and self._queue else 0
        target = self._live.target if self._live is not None else self.firmware
        return input_actions(self.index, offset, inp, events, self._occurrences, self.firmware, target,
                             reboot_us)

    def _start_script(self, spec: ScriptedLifecycle, uuid: str, now_us: int) -> None:
        """A scripted answer: its steps are published as written (they were checked against the lifecycle
        machine at validation). The machine is held in Acknowledged meanwhile, so that a second Update is
        refused and a Cancel is answered as the runtime would while the operation runs."""
        assert self._live is not None
        self._machine = OtaMachine()
        self._machine.handle(UpdateRequested(uuid))  # its Acknowledged event is the script's to publish
        plan = plan_scripted(self.index, spec, uuid, now_us, self._live.time_scale, self.firmware,
                             self._live.target, self._occurrences)
        if not plan.actions:
            self._machine = OtaMachine()
            return
        self._script = frozenset(id(a) for a in plan.actions)
        self._script_last = plan.actions[-1]
        rest = sorted([*self._planned[self._next:], *plan.actions], key=lambda a: a.offset_us)
        self._planned = [*self._planned[:self._next], *rest]

    def _drop_script(self) -> None:
        """A canceled scripted answer: its remaining steps never happen."""
        if self._script_last is not None:
            self._planned = [*self._planned[:self._next],
                             *(a for a in self._planned[self._next:] if id(a) not in self._script)]
            self._script_last = None

    def _on_data(self, interface: str, path: str, value: Value) -> None:
        if interface != OTA_REQUEST_INTERFACE or path != OTA_REQUEST_PATH:
            self.counters.extra["ignored_data"] = self.counters.extra.get("ignored_data", 0) + 1
            return
        if self._live is None:
            self.counters.extra["ignored_requests"] = self.counters.extra.get("ignored_requests", 0) + 1
            return  # a self-driven device does not answer the backend
        request = parse_request(value)
        if request is None or self._machine.phase is Phase.OFFLINE:
            self.counters.malformed += 1  # dropped silently, as the runtime does
            return
        self.counters.requests += 1
        operation, uuid, url = request
        if self.responder is not None:
            self.responder.request(operation, uuid, self._wall_now())  # the acks' time base
        now_us = self._now_us()
        if operation == "Cancel":
            actions = self._live_step(now_us, CancelRequested(uuid))
            if self._machine.phase is Phase.IDLE:
                self._queue.clear()  # canceled: the rest of the operation never happens
                if self._fetch is not None:
                    self._fetch.abort()
                self._drop_script()
        elif self._machine.phase is Phase.IDLE:
            spec = self._live.choose()
            if isinstance(spec, ScriptedLifecycle):
                self._start_script(spec, uuid, now_us)
                return
            self._machine = OtaMachine(streaming=spec.streaming, progress_step=spec.progress_step)
            actions = self._live_step(now_us, UpdateRequested(uuid))
            draw = draw_operation(spec, self._live.rng)
            if spec.download == "fetch" and self._fetch is not None:
                plan = fetch_plan(draw, uuid, now_us, self._live.time_scale)
                for offset, inp in plan.before:
                    self._push(offset, inp)
                self._fetch.begin(uuid, url, plan.after)
            else:
                for offset, inp in operation_inputs(draw, uuid, now_us, self._live.time_scale, live=True):
                    self._push(offset, inp)
        else:
            actions = self._live_step(now_us, UpdateRequested(uuid))
        for action in actions:
            self._execute(action)


def _starts_operation(action: PlannedAction) -> bool:
    value = action.value  # a plain dict first: isinstance against the Mapping ABC costs ~1 us per due point
    return (action.kind is ActionKind.PUBLISH and action.interface == OTA_EVENT_INTERFACE
            and (type(value) is dict or isinstance(value, Mapping)) and value.get("status") == _OPERATION_START)
