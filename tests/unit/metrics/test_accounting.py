"""Accounting: the join of send and arrival logs gives exactly the planted losses, duplicates, reorders."""

from __future__ import annotations

import numpy as np

from simulator.metrics import names
from simulator.metrics.accounting import account
from simulator.records import ArrivalRecord, SendRecord

T0 = 1_700_000_000.0


def _sends(devices: int = 2, per_device: int = 10) -> list[SendRecord]:
    out = []
    for d in range(devices):
        for k in range(per_device):
            sent = T0 + k * 0.1 + d * 0.01
            out.append(
                SendRecord(
                    key=(f"dev{d}", "op", "Downloading", k * 10, 0),
                    intended=sent - 0.002,
                    sent=sent,
                    t_ms=round(sent * 1000),
                    acked=sent + 0.003,
                )
            )
    return out


def _arrive(rec: SendRecord, delay: float = 0.005) -> ArrivalRecord:
    assert rec.sent is not None
    return ArrivalRecord(key=rec.key, arrival=rec.sent + delay, t_ms=rec.t_ms)


def test_chosen_missing_events_are_lost_with_the_right_reason() -> None:
    sends = _sends()
    failed, unacked, vanished = sends[3], sends[7], sends[12]
    failed.sent, failed.acked, failed.error = None, None, "disconnected"
    unacked.acked = None
    arrivals = [_arrive(r) for r in sends if r not in (failed, unacked, vanished)]
    acc = account(sends, arrivals, end=T0 + 10)
    assert (acc.planned, acc.sent, acc.acked) == (20, 19, 18)
    assert acc.delivered == 17 and acc.lost == 3
    assert acc.lost_events == [
        (failed.key, names.LOST_PUBLISH_FAILED),
        (unacked.key, names.LOST_NEVER_ACKED),
        (vanished.key, names.LOST_ACKED_NOT_ARRIVED),
    ]
    assert acc.lost_reasons == {
        names.LOST_PUBLISH_FAILED: 1,
        names.LOST_NEVER_ACKED: 1,
        names.LOST_ACKED_NOT_ARRIVED: 1,
    }
    # The per-second series counts each lost event in its intended second, each delivered one in its arrival's.
    assert sum(b.counts.get("lost", 0) for b in acc.seconds.values()) == 3
    assert sum(b.counts["delivered"] for b in acc.seconds.values()) == 17
    assert (acc.duplicated, acc.reordered, acc.unexpected, acc.late) == (0, 0, 0, 0)


def test_duplicates_reordering_unexpected_and_late() -> None:
    sends = _sends()
    arrivals = [_arrive(r) for r in sends]
    # dev0 event 5 overtaken by event 6: event 5 arrives 150 ms late, after 6 (sent 100 ms after it).
    arrivals[5] = _arrive(sends[5], delay=0.150)
    arrivals.append(_arrive(sends[2], delay=0.5))  # a second copy of dev0 event 2
    arrivals.append(_arrive(sends[2], delay=0.6))  # and a third
    arrivals.append(_arrive(sends[15], delay=0.2))  # one copy of dev1 event 5
    stranger = ArrivalRecord(key=("devX", "op", "Downloading", 0, 0), arrival=T0 + 1, t_ms=None)
    arrivals.append(stranger)
    arrivals[19] = _arrive(sends[19], delay=5.0)  # dev1's last event after end + grace
    acc = account(sends, arrivals, end=T0 + 2, grace=1.0)
    assert acc.duplicated == 3
    assert acc.duplicated_events == {sends[2].key: 2, sends[15].key: 1}
    assert acc.reordered == 1 and acc.reordered_events == [sends[5].key]
    assert acc.reordered_by_device == {"dev0": 1}
    assert acc.unexpected == 1 and acc.unexpected_events == [stranger.key]
    assert acc.late == 1 and acc.late_events == [sends[19].key]
    assert acc.delivered == 19 and acc.lost == 0
    assert acc.planned == acc.delivered + acc.late + acc.lost


def test_e2e_latencies_from_the_join() -> None:
    sends = _sends(devices=1, per_device=4)
    arrivals = [_arrive(r, delay=0.005) for r in sends]
    arrivals[0] = ArrivalRecord(
        key=sends[0].key, arrival=(sends[0].sent or 0) - 0.001, t_ms=None
    )  # clock skew
    hists = account(sends, arrivals, end=T0 + 10).histograms()
    e2e = hists.get(names.PATH_E2E)
    assert e2e.count == 4 and e2e.negative == 1
    assert e2e.negative_reasons == {"observer_clock_behind": 1}
    # 5,000 us sits in a 4 us HDR bucket (4,096..8,191 us): reported as its highest equivalent, 5,003 us.
    assert e2e.summary_ms()["max"] == 5.003
    assert hists.get(names.PATH_E2E_CORRECTED).summary_ms()["max"] == 7.003  # + 2 ms from intended
    assert hists.get(names.PATH_E2E_DEVICE_T).count == 3  # the skewed one had no `t`


def test_100k_events_join_with_reordering_and_losses() -> None:
    """The join at scale (its CPU cost is measured by bench/micro_costs.py, not asserted here)."""
    rng = np.random.default_rng(7)
    n = 100_000
    sends = [
        SendRecord(
            key=(f"d{k // 100}", "op", "Downloading", k, 0),
            intended=T0 + k / 1e4,
            sent=T0 + k / 1e4 + 1e-4,
            t_ms=None,
            acked=T0 + k / 1e4 + 2e-3,
        )
        for k in range(n)
    ]
    delays = rng.exponential(0.004, n)
    arrivals = [
        ArrivalRecord(key=s.key, arrival=(s.sent or 0) + float(x), t_ms=None)
        for s, x in zip(sends, delays, strict=True)
        if s.key[3] % 1000 != 7
    ]
    acc = account(sends, arrivals, end=T0 + 20)
    assert acc.lost == 100 and acc.delivered == n - 100
    assert acc.reordered > 0  # random delays do reorder


def test_a_redelivery_numbered_as_a_new_occurrence_is_a_duplicate() -> None:
    sends = _sends(devices=1, per_device=3)
    first = sends[0]
    again = ArrivalRecord((*first.key[:4], first.key[4] + 1), first.sent + 0.5, first.t_ms)  # type: ignore[operator]
    stranger = ArrivalRecord(("nobody", "u", "Success", 0, 0), first.sent + 0.5, first.t_ms)  # type: ignore[operator]
    acc = account(sends, [*(_arrive(r) for r in sends), again, stranger], end=sends[-1].intended + 1)
    assert acc.duplicated == 1 and acc.duplicated_events == {again.key: 1}
    assert acc.unexpected == 1 and acc.unexpected_events == [stranger.key]
    assert acc.lost == 0
