"""The Edgehog-like campaign state machine on a virtual clock (no I/O, no sleeps)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulator.backend.campaign import CampaignSpec, CampaignState, OtaRequest
from simulator.clock import VirtualClock
from simulator.errors import ConfigErrors


def devices(n: int) -> list[str]:
    return [f"dev{i:03d}" for i in range(n)]


def spec(n: int = 5, **kw: object) -> CampaignSpec:
    base: dict[str, object] = {"devices": devices(n), "max_in_progress": 2, "request_timeout_s": 30.0,
                               "request_retries": 3, "max_failure_percentage": 50.0}
    base.update(kw)
    return CampaignSpec(**base)  # type: ignore[arg-type]


def event(req: OtaRequest, status: str, code: str = "", progress: int = 0) -> dict[str, object]:
    return {"requestUUID": req.uuid, "status": status, "statusProgress": progress, "statusCode": code,
            "message": ""}


def test_max_in_progress_is_respected_and_slots_refill() -> None:
    state = CampaignState(spec(5))
    first = state.tick(0.0)
    assert [r.device for r in first] == ["dev000", "dev001"]
    assert all(r.operation == "Update" for r in first)
    assert state.in_progress == 2
    assert state.tick(1.0) == []  # no slot free
    # Acknowledged does not free a slot; Success does, and the next target starts at once.
    assert state.on_event("dev000", event(first[0], "Acknowledged"), 2.0) == []
    nxt = state.on_event("dev000", event(first[0], "Success"), 3.0)
    assert [r.device for r in nxt] == ["dev002"]
    assert state.in_progress == 2


def test_timeout_resends_the_same_uuid_then_times_out() -> None:
    clock = VirtualClock()
    state = CampaignState(spec(1, request_retries=2))
    (req,) = state.tick(clock.monotonic())
    clock.advance(29.9)
    assert state.tick(clock.monotonic()) == []
    clock.advance(0.1)
    (retry1,) = state.tick(clock.monotonic())
    assert retry1 == req  # same device, operation, url and uuid
    clock.advance(30.0)
    (retry2,) = state.tick(clock.monotonic())
    assert retry2.uuid == req.uuid
    clock.advance(30.0)
    assert state.tick(clock.monotonic()) == []  # retries exhausted: timed out
    report = state.report()
    assert report["operations_by_state"] == {"timed_out": 1}
    assert report["retries_sent"] == 2 and report["failed"] == 1
    assert state.finished and report["status"] == "failure"  # 1/1 failed > 50 %


def test_any_event_cancels_the_retry_timer() -> None:
    clock = VirtualClock()
    state = CampaignState(spec(1))
    (req,) = state.tick(0.0)
    clock.advance(10.0)
    state.on_event("dev000", event(req, "Acknowledged"), clock.monotonic())
    assert state.next_deadline() is None
    clock.advance(10_000.0)  # Edgehog has no timeout once acknowledged
    assert state.tick(clock.monotonic()) == []
    assert state.report()["stuck_in_progress"] == ["dev000"]
    assert state.report()["retries_sent"] == 0


def test_error_is_recoverable_and_success_final() -> None:
    state = CampaignState(spec(1))
    (req,) = state.tick(0.0)
    state.on_event("dev000", event(req, "Error", "NetworkError"), 1.0)
    assert state.in_progress == 1
    state.on_event("dev000", event(req, "Success"), 5.0)
    report = state.report()
    assert report["status"] == "success" and report["final_status"] == {"Success": 1}
    assert report["time_to_ack_s"]["p50"] == 1.0 and report["time_to_final_s"]["max"] == 5.0
    # A late event after the final one is counted, not applied.
    state.on_event("dev000", event(req, "Failure", "InternalError"), 6.0)
    assert state.report()["late_events"] == 1 and state.report()["final_status"] == {"Success": 1}


def test_events_with_another_uuid_are_unmatched() -> None:
    state = CampaignState(spec(1))
    (req,) = state.tick(0.0)
    state.on_event("dev000", {"requestUUID": "other", "status": "Failure"}, 1.0)
    state.on_event("stranger", event(req, "Success"), 1.0)
    assert state.report()["unmatched_events"] == 2 and state.in_progress == 1


def test_failure_percentage_stops_new_operations() -> None:
    # 10 targets, 20 % allowed: the third failure (30 %) fails the campaign.
    state = CampaignState(spec(10, max_in_progress=3, max_failure_percentage=20.0))
    reqs = {r.device: r for r in state.tick(0.0)}
    started = list(reqs)
    for i, device in enumerate(started[:2]):
        for r in state.on_event(device, event(reqs[device], "Failure", "InvalidBaseImage"), 1.0 + i):
            reqs[r.device] = r
    assert state.status == "in_progress"  # 2/10 = 20 %, not above
    assert len(reqs) == 5
    third = next(d for d in reqs if d not in started[:2])
    assert state.on_event(third, event(reqs[third], "Failure", "SystemRollback"), 5.0) == []
    assert state.status == "failure" and not state.finished  # two still in progress, followed to the end
    remaining = [d for d, op in state.operations.items() if op.state == "in_progress"]
    assert len(remaining) == 2
    for device in remaining:
        assert state.on_event(device, event(reqs[device], "Success"), 9.0) == []
    report = state.report()
    assert state.finished and report["status"] == "failure"
    assert report["operations_by_state"] == {"failure": 3, "success": 2, "pending": 5}
    assert report["failure_codes"] == {"InvalidBaseImage": 2, "SystemRollback": 1}


def test_devices_already_on_target_version_are_skipped() -> None:
    versions = {"dev000": "2.0.0", "dev002": "2.0.0"}
    version_of: Callable[[str], str | None] = versions.get
    state = CampaignState(spec(3, target_version="2.0.0"), version_of=version_of)
    (req,) = state.tick(0.0)
    assert req.device == "dev001"
    state.on_event("dev001", event(req, "Success"), 1.0)
    assert state.finished and state.status == "success"
    assert state.report()["operations_by_state"] == {"already_updated": 2, "success": 1}


def test_cancel_pending_and_in_progress() -> None:
    state = CampaignState(spec(3, max_in_progress=1))
    (req,) = state.tick(0.0)
    assert state.cancel("dev002", 1.0) == []  # never started
    (cancel,) = state.cancel("dev000", 1.0)
    assert (cancel.operation, cancel.uuid, cancel.url) == ("Cancel", req.uuid, "")
    (nxt,) = state.on_event("dev000", event(req, "Failure", "Canceled"), 2.0)
    assert nxt.device == "dev001"
    state.on_event("dev001", event(nxt, "Success"), 3.0)
    assert state.finished
    assert state.report()["operations_by_state"] == {"failure": 1, "success": 1, "canceled": 1}


def test_uuids_are_deterministic_and_distinct() -> None:
    a, b = spec(50, uuid_seed=7), spec(50, uuid_seed=7)
    uuids = [a.request_uuid(d) for d in a.devices]
    assert uuids == [b.request_uuid(d) for d in b.devices]
    assert len(set(uuids)) == 50
    assert spec(1, uuid_seed=8).request_uuid("dev000") != uuids[0]


def test_fifty_devices_against_simulated_responders() -> None:
    """Responders answer after fixed delays; one device in ten loses its first request (retry path)."""
    clock = VirtualClock()
    state = CampaignState(spec(50, max_in_progress=5, request_retries=3))
    pending: list[tuple[float, str, dict[str, object]]] = []  # (due, device, event)
    seen_requests: dict[str, int] = {}

    def deliver(requests: list[OtaRequest]) -> None:
        for r in requests:
            n = seen_requests[r.device] = seen_requests.get(r.device, 0) + 1
            if int(r.device[3:]) % 10 == 0 and n == 1:
                continue  # lost on the way (QoS 0, device offline)
            now = clock.monotonic()
            for delay, status in ((0.5, "Acknowledged"), (2.0, "Downloading"), (6.0, "Deployed"),
                                  (8.0, "Rebooting"), (20.0, "Success")):
                pending.append((now + delay, r.device, event(r, status)))

    deliver(state.tick(clock.monotonic()))
    max_seen = state.in_progress
    while not state.finished:
        assert clock.monotonic() < 3600, state.report()
        clock.advance(0.5)
        due = sorted(p for p in pending if p[0] <= clock.monotonic())
        pending[:] = [p for p in pending if p[0] > clock.monotonic()]
        for _, device, payload in due:
            deliver(state.on_event(device, payload, clock.monotonic()))
        deliver(state.tick(clock.monotonic()))
        max_seen = max(max_seen, state.in_progress)
    report = state.report()
    assert max_seen == 5
    assert report["status"] == "success"
    assert report["operations_by_state"] == {"success": 50}
    assert report["retries_sent"] == 5  # dev000, dev010, ..., dev040
    assert report["time_to_ack_s"]["count"] == 50 and report["time_to_ack_s"]["max"] == 30.5
    assert report["stuck_in_progress"] == []


def test_spec_validation_and_from_dict() -> None:
    assert "request_timeout_s" in " ".join(spec(1, request_timeout_s=5.0).validate())
    assert spec(1, request_timeout_s=5.0, allow_short_timeout=True).validate() == []
    with pytest.raises(ValueError, match="max_in_progress"):
        CampaignState(spec(1, max_in_progress=0))
    ok = CampaignSpec.from_dict({"devices": ["a", "b"], "request_timeout_s": 60, "target_version": "2.0"})
    assert ok.request_timeout_s == 60.0 and ok.devices == ["a", "b"]
    with pytest.raises(ConfigErrors) as err:
        CampaignSpec.from_dict({"devices": "a", "bogus": 1, "max_in_progress": True}, source="spec.json")
    text = str(err.value)
    assert "spec.json: devices: wrong type str" in text
    assert "spec.json: bogus: unknown field" in text
    assert "spec.json: max_in_progress: wrong type bool" in text
    with pytest.raises(ConfigErrors, match="request_timeout_s"):
        CampaignSpec.from_dict({"devices": ["a"], "request_timeout_s": 1})
