"""One KeyBook numbers EventKey occurrences for the planner, the devices, the collector and the trigger
observers: the same events in the same order get the same keys wherever they are counted."""

from __future__ import annotations

from simulator.events import KEPT_OPERATIONS, KeyBook, RecentKeyBook


def test_occurrences_count_per_device_uuid_status_progress() -> None:
    book = KeyBook()
    keys = [book.key("d1", "u", "Rebooting", 0), book.key("d1", "u", "Rebooting", 0),
            book.key("d2", "u", "Rebooting", 0), book.key("d1", "u", "Error", 0), book.key("d1", "u", "Rebooting", 0)]
    assert [k[4] for k in keys] == [0, 1, 0, 0, 2]
    assert keys[0] == ("d1", "u", "Rebooting", 0, 0)


def test_sender_and_observer_books_agree() -> None:
    events = [("d", "u", s, p) for s, p in (("Downloading", 0), ("Error", 0), ("Downloading", 0), ("Error", 0))]
    sender, observer = KeyBook(), KeyBook()
    assert [sender.key(*e) for e in events] == [observer.key(*e) for e in events]


def test_recent_book_numbers_like_the_whole_book_within_its_last_operations() -> None:
    """A campaign-mode device and the collector number with RecentKeyBook (issue 14: memory per device bounded)."""
    whole, recent = KeyBook(), RecentKeyBook()
    events = [("d0", f"u{op}", status, 0) for op in range(KEPT_OPERATIONS + 3)
              for status in ("Acknowledged", "Error", "Error", "Failure")]
    assert [recent.key(*e) for e in events] == [whole.key(*e) for e in events]
    assert len(recent._ops["d0"]) == KEPT_OPERATIONS
    assert recent.next("d0", "u0", "Error", 0) == 0  # forgotten: a late copy numbers as its original did
