"""Logical clocks: ordering events without reading a wall clock.

* :class:`LamportClock` and :class:`LamportTimestamp` (Lamport 1978): a
  per-process counter and the totally ordered ``(counter, node)`` stamps it
  issues, for last-writer-wins decisions that every node takes alike.
* :class:`VersionVector` and :class:`Ordering` (Preguiça et al., *Dotted
  Version Vectors*, 2010): per-node event counts that tell whether one history
  includes another or the two are concurrent; the summaries that anti-entropy
  exchanges.
* :class:`Dot` and :class:`CausalContext` (Almeida, Shoker, Baquero, *Delta
  State Replicated Data Types*, 2018): single events and the exact set of
  events a delta-CRDT state has seen, gaps included.

Everything here is pure: no I/O, no clock reads, no randomness.  Every value
except the process-local :class:`LamportClock` is immutable and hashable, so
it can sit inside frozen wire messages, and each has ``to_wire()`` and a
``from_wire()`` that refuses a peer's bad input with
:class:`~gossamer.errors.WireError` only.  Counters are ints in
``1..``:data:`MAX_COUNTER`; caller mistakes raise
:class:`~gossamer.errors.InvalidMessage` at once, and running out of counter
space raises :class:`ClockOverflow`.
"""

from gossamer.clocks._checks import MAX_COUNTER, ClockOverflow
from gossamer.clocks.dots import CausalContext, Dot
from gossamer.clocks.lamport import LamportClock, LamportTimestamp
from gossamer.clocks.vv import Ordering, VersionVector

__all__ = [
    "MAX_COUNTER",
    "CausalContext",
    "ClockOverflow",
    "Dot",
    "LamportClock",
    "LamportTimestamp",
    "Ordering",
    "VersionVector",
]
