"""Lamport clocks and the timestamps they issue.

Implements the logical clock of Lamport, *Time, Clocks, and the Ordering of
Events in a Distributed System*, CACM 21(7), 1978.  Each process keeps a
counter; it advances the counter for every local event or send, and on
receiving a timestamp it jumps past it (rule IR2: ``max(local, remote) + 1``).
Pairing the counter with the issuing node's name, compared second, turns the
resulting partial order into a total one that every node computes alike,
which is what last-writer-wins registers need to pick the same winner
everywhere.

Invariants relied on:

* :class:`LamportClock` values never decrease, and every value returned by
  :meth:`~LamportClock.tick` or :meth:`~LamportClock.observe` is strictly
  larger than every value the clock returned or observed before.
* A node issues at most one :class:`LamportTimestamp` per counter value, so
  two different events never share a ``(counter, node)`` pair.
* Counters live in ``1..2**63-1`` (0 is the value of a clock that has issued
  nothing); both the constructor and :meth:`~LamportTimestamp.from_wire`
  enforce it, so every timestamp survives the wire.
"""

from __future__ import annotations

__all__ = ["LamportClock", "LamportTimestamp"]

from dataclasses import dataclass

from gossamer.clocks._checks import (
    check_counter,
    check_node,
    next_counter,
    wire_counter,
    wire_node,
    wire_pair,
)


class LamportClock:
    """A process-local Lamport counter: the one mutable object in :mod:`gossamer.clocks`.

    Owned by a single protocol core and never shared; messages carry the
    plain ``int`` (or a :class:`LamportTimestamp`) it returns, not the clock.
    """

    __slots__ = ("_value",)

    def __init__(self, value: int = 0) -> None:
        """Start at ``value`` (default 0, meaning no event yet); restored clocks pass their last."""
        self._value = check_counter(value, "LamportClock", minimum=0)

    @property
    def value(self) -> int:
        """The last counter issued or observed; 0 if none."""
        return self._value

    def tick(self) -> int:
        """Advance for a local event or a send, and return the new counter."""
        self._value = next_counter(self._value, "LamportClock.tick")
        return self._value

    def observe(self, remote: int) -> int:
        """Move past a counter received from a peer, and return the new value.

        The receive itself is an event, so the result is strictly larger than
        both the local value and ``remote``.  ``remote`` must already have been
        validated (for example by :meth:`LamportTimestamp.from_wire`); a
        non-int or negative value is the caller's mistake.
        """
        check_counter(remote, "LamportClock.observe", minimum=0)
        self._value = next_counter(max(self._value, remote), "LamportClock.observe")
        return self._value

    def __repr__(self) -> str:
        return f"LamportClock({self._value})"


@dataclass(frozen=True, slots=True, order=True)
class LamportTimestamp:
    """A counter stamped with the node that issued it; totally ordered.

    Ordering compares ``counter`` first and breaks ties by ``node`` (plain
    string order), so every node ranks any two timestamps the same way.
    """

    counter: int
    """The issuing clock's value for this event, in ``1..2**63-1``."""
    node: str
    """Name of the issuing node (1-128 characters); the tie-break."""

    def __post_init__(self) -> None:
        check_counter(self.counter, "LamportTimestamp.counter")
        check_node(self.node, "LamportTimestamp.node")

    def to_wire(self) -> list[object]:
        """Encode as ``[counter, node]``."""
        return [self.counter, self.node]

    @classmethod
    def from_wire(cls, raw: object) -> LamportTimestamp:
        """Decode ``[counter, node]`` from a peer; raises only ``WireError``."""
        counter, node = wire_pair(raw, "LamportTimestamp")
        return cls(wire_counter(counter, "LamportTimestamp"), wire_node(node, "LamportTimestamp"))
