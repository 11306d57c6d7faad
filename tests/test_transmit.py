"""The transmit-limited queue, alone: order, replacement, limits, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossamer.transmit import TransmitQueue


def queue(limit: int = 10, max_item: int = 100) -> TransmitQueue[str, str]:
    return TransmitQueue(limit, max_item, min_item_bytes=1)


def test_least_sent_first_and_newest_first_among_equals() -> None:
    q = queue()
    for key in "abc":
        q.push(key, key.upper(), 10)
    assert q.take(25, transmits=5) == ["C", "B"]  # newest first; A does not fit
    assert q.take(100, transmits=5) == ["A", "C", "B"]  # A sent least now


def test_newer_news_replaces_older_and_restarts_its_count() -> None:
    q = queue()
    q.push("a", "a1", 10)
    q.push("b", "b1", 10)
    assert q.take(100, transmits=5) == ["b1", "a1"]
    q.push("a", "a2", 10)
    assert len(q) == 2 and q.pending("a") == "a2"
    assert q.take(100, transmits=5) == ["a2", "b1"]


@pytest.mark.parametrize("transmits", [1, 2, 5])
def test_an_item_leaves_after_its_transmits(transmits: int) -> None:
    q = queue()
    q.push("a", "A", 10)
    for _ in range(transmits):
        assert q.take(100, transmits) == ["A"]
    assert q.take(100, transmits) == [] and len(q) == 0 and q.pending("a") is None


def test_bounded_the_most_sent_oldest_is_shed_and_counted() -> None:
    q = queue(limit=2)
    q.push("a", "A", 10)
    q.take(100, transmits=5)  # A sent once
    q.push("b", "B", 10)
    q.push("c", "C", 10)
    assert q.shed == 1 and q.pending("a") is None and len(q) == 2
    q.push("big", "X", 101)  # could never fit a message
    assert q.shed == 2 and q.pending("big") is None


def test_skip_and_budget_and_misses() -> None:
    q = TransmitQueue[str, str](100, 100, min_item_bytes=5, max_misses=1)
    for key, size in (("a", 50), ("b", 50), ("c", 5)):
        q.push(key, key, size)
    assert q.take(40, transmits=5, skip=frozenset({"c"})) == []  # c skipped, then two misses
    assert q.take(4, transmits=5) == []  # less than the smallest item
    assert q.take(60, transmits=5) == ["c", "b"]


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 40)), max_size=40))
def test_never_over_its_bound_and_every_take_fits(pushes: list[tuple[str, int]]) -> None:
    q = queue(limit=4, max_item=30)
    for key, size in pushes:
        q.push(key, f"{key}{size}", size)
        assert len(q) <= 4
        taken = q.take(50, transmits=3)
        assert sum(int(v[1:]) for v in taken) <= 50
        assert len({v[0] for v in taken}) == len(taken)  # one item per key
