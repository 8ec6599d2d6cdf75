"""DueQueue: the scheduler's timer heap -- due order, ties in push order, replacement and discard."""

from __future__ import annotations

from simulator.generator.due_queue import DueQueue


def test_keys_come_out_by_due_time_then_push_order() -> None:
    q: DueQueue[str] = DueQueue()
    q.push("c", 3.0)
    q.push("a", 1.0)
    q.push("b", 1.0)  # a tie: after "a", pushed first
    q.push("d", 2.5)
    assert q.earliest() == 1.0 and len(q) == 4
    assert q.pop_due(0.5) == []
    assert q.pop_due(2.5) == ["a", "b", "d"]
    assert q.earliest() == 3.0 and "c" in q and "a" not in q
    assert q.pop_due(10.0) == ["c"] and q.earliest() is None and len(q) == 0


def test_push_again_replaces_the_old_due_time_earlier_or_later() -> None:
    q: DueQueue[str] = DueQueue()
    q.push("a", 5.0)
    q.push("b", 4.0)
    q.push("a", 1.0)  # earlier
    q.push("b", 9.0)  # later
    assert q.earliest() == 1.0
    assert q.pop_due(5.0) == ["a"]  # the stale "a" at 5.0 and "b" at 4.0 are skipped
    assert q.earliest() == 9.0 and q.pop_due(9.0) == ["b"]


def test_discard_forgets_a_key_and_tolerates_unknown_ones() -> None:
    q: DueQueue[str] = DueQueue()
    q.push("a", 1.0)
    q.push("b", 2.0)
    q.discard("a")
    q.discard("never")
    assert len(q) == 1 and q.earliest() == 2.0 and q.pop_due(3.0) == ["b"]
