"""VirtualDevice over MemoryTransport and a VirtualClock: self-driven plans, reboot, backend-driven
requests."""

from __future__ import annotations

import numpy as np

from simulator.clock import VirtualClock
from simulator.device import LiveLifecycle, VirtualDevice
from simulator.events import OTA_EVENT_INTERFACE, OTA_REQUEST_INTERFACE, PlannedAction
from simulator.lifecycle.plans import Firmware, plan_random
from simulator.lifecycle.states import Phase
from simulator.records import SendRecord
from simulator.scenario.model import Distribution, LifecycleMixEntry, RandomLifecycle
from simulator.transports.base import OnboardingTimes
from simulator.transports.memory import MemoryBroker, Published

OLD = Firmware("edgehog-os", "1.0.0", "b1")
NEW = Firmware("edgehog-os", "1.1.0", "b2")
DEV = "IAYKCbApnZezAMo0w7uWyw"
U = "11111111-1111-4111-8111-111111111111"
V = "22222222-2222-4222-8222-222222222222"


def spec(outcome: str = "success") -> RandomLifecycle:
    return RandomLifecycle(outcomes=((outcome, 1.0),), download_duration=Distribution("fixed", value=10.0),
                           deploy_duration=Distribution("fixed", value=10.0),
                           reboot_duration=Distribution("fixed", value=15.0))


class Rig:
    def __init__(self, actions: list[PlannedAction] | None = None, outcome: str = "success",
                 auto_ack: bool = True) -> None:
        self.clock = VirtualClock(start=100.0)
        self.broker = MemoryBroker(clock=self.clock, auto_ack=auto_ack)
        self.transport = self.broker(DEV)
        self.records: list[SendRecord] = []
        self.onboarding: list[tuple[str, OnboardingTimes]] = []
        live = LiveLifecycle((LifecycleMixEntry(1.0, random=spec(outcome)),), np.random.default_rng(1), NEW)
        self.device = VirtualDevice(
            0, DEV, self.transport, self.clock, run_start=100.0, firmware=OLD, actions=actions or [],
            live=live if actions is None else None, send_sink=self.records.append,
            onboarding_sink=lambda d, t: self.onboarding.append((d, t)))

    def run_all(self) -> None:
        while (due := self.device.next_due()) is not None:
            self.clock.set(due)
            self.device.run_due()

    def ota(self) -> list[tuple[str, str, int, str]]:
        out = []
        for m in self.broker.published_by(DEV):
            if m.interface == OTA_EVENT_INTERFACE:
                assert m.payload is not None and m.qos == 2
                v = m.payload["v"]
                assert isinstance(v, dict)
                out.append((v["requestUUID"], v["status"], v["statusProgress"], v["statusCode"]))
        return out

    def props(self) -> list[Published]:
        return [m for m in self.broker.published_by(DEV) if m.property]

    def request(self, operation: object, uuid: object = U, url: object = "https://x/ota.bin") -> bool:
        return self.broker.deliver(DEV, OTA_REQUEST_INTERFACE, "/request",
                                   {"operation": operation, "uuid": uuid, "url": url})


def test_self_driven_run_publishes_the_plan_and_records_sends() -> None:
    plan = plan_random(0, spec(), np.random.default_rng(0), U, 2_000_000, 1.0, OLD, NEW)
    rig = Rig(list(plan.actions))
    times = rig.device.start()
    assert times.session_present is False and len(rig.props()) == 16
    assert rig.transport.connected and rig.onboarding[0][0] == DEV
    rig.run_all()
    planned = [(a.value["requestUUID"], a.value["status"], a.value["statusProgress"], a.value["statusCode"])  # type: ignore[index]
               for a in plan.actions if a.kind == "publish"]
    assert rig.ota() == planned and planned[-1][1] == "Success"
    assert len(rig.records) == len(planned)
    first = rig.records[0]
    assert first.key == (DEV, U, "Acknowledged", 0, 0)
    assert first.intended == 1_700_000_000.0 + 100.0 + 2.0 == first.sent == first.acked
    assert first.t_ms == int(first.sent * 1000) and first.error is None
    last = rig.records[-1]
    assert last.intended == 1_700_000_000.0 + 100.0 + 2.0 + 35.0 and last.acked == last.sent
    # After the reboot: reconnected (handshake redone) and the new image republished.
    assert rig.transport.connects == 2 and rig.transport.disconnects == 1 and len(rig.onboarding) == 2
    versions = [m.payload for m in rig.props() if m.path == "/version"]
    assert versions[-1] == {"v": "1.1.0"} and rig.device.firmware.version == "1.1.0"


def test_reboot_disconnects_for_its_duration() -> None:
    plan = plan_random(0, spec(), np.random.default_rng(0), U, 0, 1.0, OLD, NEW)
    rig = Rig(list(plan.actions))
    rig.device.start()
    rig.clock.set(100.0 + 20.0)  # download 10 s + deploy 10 s: Rebooting then REBOOT
    rig.device.run_due()
    assert not rig.transport.connected and rig.ota()[-1][1] == "Rebooting"
    assert rig.device.next_due() == 100.0 + 35.0
    rig.clock.set(100.0 + 34.999)
    assert rig.device.run_due() == 0 and not rig.transport.connected
    rig.clock.set(100.0 + 35.0)
    rig.device.run_due()
    assert rig.transport.connected and rig.ota()[-1][1] == "Success" and rig.device.next_due() is None


def test_failed_reconnect_is_retried() -> None:
    plan = plan_random(0, spec(), np.random.default_rng(0), U, 0, 1.0, OLD, NEW)
    rig = Rig(list(plan.actions))
    rig.device.start()
    rig.transport.fail_connects(1)
    rig.run_all()
    assert rig.device.counters.reconnect_failures == 1 and rig.ota()[-1][1] == "Success"
    assert rig.device.counters.publish_errors == 0 and rig.device.counters.property_errors == 0
    success = rig.records[-1]
    # The retry delayed the event by 1 s, but its intended time is when the device was back online: the
    # delay is onboarding's (its own histogram), not send lag the generator made.
    assert success.sent is not None and success.sent - success.intended == 0.0


def test_publish_error_and_late_acks_are_recorded() -> None:
    plan = plan_random(0, spec("io_error"), np.random.default_rng(0), U, 0, 1.0, OLD, NEW)
    rig = Rig(list(plan.actions), auto_ack=False)
    rig.device.start()
    rig.transport.fail_publishes("queue_full", 1)
    rig.clock.set(100.0)
    rig.device.run_due()  # Acknowledged fails, Downloading 0 waits for its ack
    assert [(r.key[2], r.error, r.sent) for r in rig.records] == [("Acknowledged", "queue_full", None)]
    rig.clock.advance(0.5)
    assert rig.transport.ack(1) == 1
    assert rig.records[1].key[2] == "Downloading" and rig.records[1].acked == 1_700_000_100.5
    rig.run_all()
    pending = rig.transport.pending_acks
    rig.device.stop()
    assert pending > 0 and [r.error for r in rig.records[-pending:]] == ["disconnected"] * pending


def test_backend_update_runs_a_live_lifecycle_to_success() -> None:
    rig = Rig()
    rig.device.start()
    assert rig.device.next_due() is None
    rig.clock.set(110.0)
    assert rig.request("Update")
    assert rig.ota() == [(U, "Acknowledged", 0, "")] and rig.device.machine_phase is Phase.ACKNOWLEDGED
    assert rig.device.next_due() == 110.0
    rig.run_all()
    statuses = [s for _, s, _, _ in rig.ota()]
    assert statuses[:2] == ["Acknowledged", "Downloading"]
    assert statuses[-3:] == ["Deployed", "Rebooting", "Success"]
    assert rig.transport.connects == 2 and rig.device.firmware.version == "1.1.0"
    assert rig.records[-1].intended == 1_700_000_000.0 + 110.0 + 35.0


def test_backend_cancel_during_download_and_unknown_cancel() -> None:
    rig = Rig()
    rig.device.start()
    rig.request("Cancel", V)
    assert rig.ota() == [(V, "Failure", 0, "InternalError")]
    rig.request("Update")
    rig.clock.set(103.0)
    rig.device.run_due()
    rig.request("Cancel", U)
    assert rig.ota()[-1] == (U, "Failure", 0, "Canceled")
    assert rig.device.next_due() is None and rig.device.machine_phase is Phase.IDLE


def test_backend_second_update_is_refused_and_first_continues() -> None:
    rig = Rig()
    rig.device.start()
    rig.request("Update")
    rig.clock.set(104.0)
    rig.device.run_due()
    rig.request("Update", U)  # same uuid: ignored
    rig.request("Update", V)
    assert rig.ota()[-1] == (V, "Failure", 0, "UpdateAlreadyInProgress")
    rig.run_all()
    assert rig.ota()[-1] == (U, "Success", 0, "")
    assert sum(1 for u, s, _, _ in rig.ota() if s == "Acknowledged") == 1


def test_malformed_requests_are_dropped_and_counted() -> None:
    rig = Rig()
    rig.device.start()
    rig.request("Reboot")
    rig.request("Update", "not-a-uuid")
    rig.request("Update", U, url=None)
    rig.broker.deliver(DEV, OTA_REQUEST_INTERFACE, "/request", "garbage")
    assert rig.device.counters.malformed == 4 and rig.ota() == [] and rig.device.next_due() is None


def test_rollback_republishes_the_old_image() -> None:
    rig = Rig(outcome="rollback")
    rig.device.start()
    rig.request("Update")
    rig.run_all()
    assert rig.ota()[-1] == (U, "Failure", 0, "SystemRollback")
    after = [m for m in rig.props()[16:] if m.path == "/version"]
    assert [m.payload for m in after] == [{"v": "1.0.0"}] and rig.device.firmware.version == "1.0.0"


def test_offline_device_loses_requests() -> None:
    rig = Rig()
    rig.device.start()
    rig.device.stop()
    assert not rig.request("Update") and rig.ota() == []


def _scripted_rig() -> Rig:
    from simulator.scenario.model import ScriptedLifecycle, ScriptedStep

    rig = Rig()
    script = ScriptedLifecycle(steps=(ScriptedStep("Acknowledged"), ScriptedStep("Downloading", 0, delay=1.0),
                                      ScriptedStep("Downloading", 100, delay=2.0),
                                      ScriptedStep("Failure", 0, "InvalidBaseImage", "bad bundle", delay=1.0)))
    live = LiveLifecycle((LifecycleMixEntry(1.0, scripted=script),), np.random.default_rng(1), NEW)
    rig.device = VirtualDevice(0, DEV, rig.transport, rig.clock, run_start=100.0, firmware=OLD, live=live,
                               send_sink=rig.records.append)
    rig.device.start()
    return rig


def test_backend_update_answered_by_a_scripted_lifecycle() -> None:
    rig = _scripted_rig()
    rig.request("Update")
    rig.clock.set(101.5)
    rig.device.run_due()
    rig.request("Update", V)  # while the script runs: refused with the new uuid, as the runtime does
    rig.request("Update")  # the same uuid again: ignored
    rig.run_all()
    assert rig.ota() == [(U, "Acknowledged", 0, ""), (U, "Downloading", 0, ""),
                         (V, "Failure", 0, "UpdateAlreadyInProgress"), (U, "Downloading", 100, ""),
                         (U, "Failure", 0, "InvalidBaseImage")]
    assert rig.device.machine_phase is Phase.IDLE and not rig.device.busy
    rig.request("Update", V)  # the script ended: the next request is answered again
    rig.device.run_due()  # a script's steps play on the device's loop (the driver wakes it on a request)
    assert rig.ota()[-1] == (V, "Acknowledged", 0, "")


def test_cancel_ends_a_scripted_answer() -> None:
    rig = _scripted_rig()
    rig.request("Update")
    rig.clock.set(101.5)
    rig.device.run_due()
    rig.request("Cancel")
    rig.run_all()
    assert rig.ota()[-1] == (U, "Failure", 0, "Canceled") and len(rig.ota()) == 3
