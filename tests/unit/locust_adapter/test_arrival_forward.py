"""Issue 14: a master forwards each worker its partition of a trigger observer's arrivals, and keeps none of them."""

from __future__ import annotations

from typing import Any

from simulator.locust_adapter.arrival_forward import ARRIVALS_MSG, CHUNK, DONE_MSG, ArrivalForwarder
from simulator.observers.fence import RunFence
from simulator.observers.forwarded import ForwardedArrivals, arrival_from_row, arrival_to_row
from simulator.observers.trigger_arrivals import ArrivalBook
from simulator.records import ArrivalRecord

OTA = "io.edgehog.devicemanager.OTAEvent"
DEVICES = ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4"]


class BookObserver:
    """The part of a trigger observer the forwarder uses, over a real ArrivalBook."""

    name = "book"

    def __init__(self) -> None:
        self.book = ArrivalBook()

    def start(self) -> None:
        return None

    @property
    def fence(self) -> RunFence | None:
        return None

    def arrival_count(self) -> int:
        return self.book.count()

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        return self.book.records(since)

    def release(self, upto: int) -> None:
        self.book.release(upto)

    def stop(self) -> None:
        return None

    def event(self, device: str, progress: int, at: float) -> None:
        value = {"requestUUID": "u-1", "status": "Downloading", "statusProgress": progress, "statusCode": ""}
        self.book.add(device_id=device, interface=OTA, path="/event", value=value, t_ms=None, arrival=at)


def test_each_worker_gets_its_partition_and_the_master_keeps_nothing() -> None:
    observer = BookObserver()
    sent: list[tuple[str, dict[str, Any], str]] = []
    forwarder = ArrivalForwarder(observer, DEVICES, 2, lambda: {0: "client-a", 1: "client-b"},
                                 lambda kind, data, client: sent.append((kind, data, client)), observer.release)
    for k, device in enumerate([*DEVICES, "stranger", "dev-3"]):
        observer.event(device, k, 100.0 + k)
    assert forwarder.forward() == 7
    by_client = {client: [arrival_from_row(r) for r in data["rows"]] for kind, data, client in sent
                 if kind == ARRIVALS_MSG}
    assert [a.key[0] for a in by_client["client-a"]] == ["dev-0", "dev-2", "dev-4", "stranger"]  # even, + strangers
    assert [a.key[0] for a in by_client["client-b"]] == ["dev-1", "dev-3", "dev-3"]
    assert by_client["client-b"][2].key[4] == 0 and by_client["client-b"][2].key[3] == 6  # keys as numbered
    assert (forwarder.forwarded, forwarder.strangers, forwarder.unsent) == (7, 1, 0)
    assert observer.book.count() == 7 and observer.book.records(7) == []  # released: none held
    observer.event("dev-1", 9, 110.0)
    forwarder.finish(expected=8, settle_s=5.0)
    assert [kind for kind, _, _ in sent][-2:] == [DONE_MSG, DONE_MSG]
    assert sent[-3][0] == ARRIVALS_MSG and sent[-3][2] == "client-b" and forwarder.forwarded == 8


def test_a_burst_goes_in_chunks_and_a_missing_worker_is_counted() -> None:
    observer = BookObserver()
    sent: list[tuple[str, dict[str, Any], str]] = []
    forwarder = ArrivalForwarder(observer, DEVICES, 2, lambda: {0: "client-a"},
                                 lambda kind, data, client: sent.append((kind, data, client)))
    for k in range(CHUNK + 3):
        observer.event("dev-0", k, 100.0)
    observer.event("dev-1", 0, 100.0)
    forwarder.forward()
    assert [len(data["rows"]) for _, data, _ in sent] == [CHUNK, 3]
    assert (forwarder.forwarded, forwarder.unsent) == (CHUNK + 3, 1)


def test_a_worker_reads_forwarded_arrivals_once_and_holds_only_unread_ones() -> None:
    inbox = ForwardedArrivals(RunFence(at=0.0, offset_s=0.25, uncertainty_s=0.01))
    first = ArrivalRecord(("dev-1", "u-1", "Success", 0, 0), 101.5, 1_700_000_000_123, 2, "")
    second = ArrivalRecord(("dev-1", "u-1", "Failure", 0, 1), 102.5, None, 1, "Canceled")
    inbox.add(arrival_from_row(list(arrival_to_row(a))) for a in (first, second))
    assert inbox.arrivals(0) == [first, second] and inbox.arrival_count() == 2
    assert inbox.arrivals(2) == [] and inbox.arrival_count() == 2  # read: dropped, still counted
    assert inbox.fence is not None and inbox.fence.offset_s == 0.25


class GoneObserver(BookObserver):
    """A trigger observer whose endpoint stops answering before the run's end."""

    gone = False

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        if self.gone:
            raise OSError("[Errno 111] Connection refused")
        return super().arrivals(since)


def test_an_observer_gone_at_the_end_still_lets_every_worker_close_its_books() -> None:
    observer = GoneObserver()
    sent: list[tuple[str, dict[str, Any], str]] = []
    forwarder = ArrivalForwarder(observer, DEVICES, 2, lambda: {0: "client-a", 1: "client-b"},
                                 lambda kind, data, client: sent.append((kind, data, client)), observer.release)
    observer.event("dev-0", 0, 100.0)
    assert forwarder.forward() == 1 and forwarder.read_at is not None
    observer.gone = True
    forwarder.finish(expected=5, settle_s=0.0)
    assert forwarder.error == "[Errno 111] Connection refused"  # the master names it (runner: ObserverLoss)
    assert sorted(client for kind, _, client in sent if kind == DONE_MSG) == ["client-a", "client-b"]
