"""The replication kernel: delta-interval anti-entropy, pure and transport-agnostic.

Almeida, Shoker and Baquero, *Delta State Replicated Data Types* (JPDC 2018,
Algorithm 2), with the two fixes of Enes, Almeida, Baquero and Leitão,
*Efficient Synchronization of State-based CRDTs* (ICDE 2019):

* every local delta and every received delta that brought news goes into a
  buffer under a sequence number; a neighbour is sent the join of the
  entries from its last acknowledged number on (a *delta interval*) and
  acknowledges the number it was sent up to;
* **BP**: an entry is never sent back to the neighbour it came from;
* **RR**: of a received delta only the part this replica did not have is
  kept (dots it had not seen, and removals of dots it still held), so a
  delta does not grow as it travels;
* entries every known neighbour acknowledged are dropped (:meth:`gc`);
* a neighbour whose acknowledged number is older than the oldest entry kept
  (new, far behind, or behind a buffer that overflowed) is sent the full
  state instead, so what the bound sheds falls back to full-state sync and
  is never lost.

The buffer holds at most ``max_buffer`` entries; overflow drops the oldest
(counted in :attr:`ReplicatorStats.shed`).  The acknowledgement table holds
only the neighbours :meth:`gc` is told of.  The kernel sends nothing
itself: :meth:`ship` returns the message for a neighbour, :meth:`receive`
the acknowledgement to send back.
"""

from __future__ import annotations

__all__ = ["Ack", "DeltaGroup", "Replicator", "ReplicatorConfig", "ReplicatorStats"]

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gossamer.config import check_int
from gossamer.crdt.dots import Context
from gossamer.crdt.types import Causal
from gossamer.errors import LocalError

T = TypeVar("T", bound=Causal[Any])


@dataclass(frozen=True, slots=True)
class ReplicatorConfig:
    max_buffer: int = 1024
    """Delta entries kept for neighbours that have not acknowledged them;
    past it the oldest go and those neighbours get the full state."""

    def __post_init__(self) -> None:
        check_int("ReplicatorConfig", "max_buffer", self.max_buffer, 1, 10_000_000)


@dataclass(frozen=True, slots=True)
class DeltaGroup(Generic[T]):
    """A delta interval (or the full state) and the number it runs up to."""

    delta: T
    upto: int
    full: bool = False


@dataclass(frozen=True, slots=True)
class Ack:
    """Everything up to ``upto`` (exclusive) arrived."""

    upto: int


@dataclass(slots=True)
class ReplicatorStats:
    deltas_sent: int = 0
    full_sent: int = 0
    received: int = 0
    redundant: int = 0
    """Received groups that brought nothing new (RR dropped them whole)."""
    shed: int = 0
    """Buffer entries dropped by the bound before every neighbour had them."""
    stale_acks: int = 0
    """Acknowledgements beyond what was ever sent, ignored."""


def novel(delta: T, state: T) -> T | None:
    """RR: the part of ``delta`` that ``state`` does not have, or None.

    A dot ``delta`` holds is news unless ``state`` has seen it; a dot its
    context saw without holding it is news if ``state`` has not seen it or
    still holds it (a removal)."""
    seen, held = state.context, state.store
    dstore = delta.store
    keep_held = dstore.restrict(lambda d: d not in seen)
    kept = [
        dot
        for dot in delta.context
        if dot not in seen or (held.holds(dot) and not dstore.holds(dot))
    ]
    if not kept and not keep_held:
        return None
    return type(delta)._new(keep_held, Context.of(kept))


class Replicator(Generic[T]):
    """One replicated value and what each neighbour still needs of it."""

    __slots__ = ("_acks", "_buffer", "_first", "_seq", "config", "state", "stats")

    def __init__(self, state: T, config: ReplicatorConfig | None = None) -> None:
        self.state = state
        self.config = config or ReplicatorConfig()
        self.stats = ReplicatorStats()
        self._buffer: dict[int, tuple[T, str | None]] = {}
        self._first = 0  # the oldest number still in the buffer
        self._seq = 0  # the next number
        self._acks: dict[str, int] = {}

    def mutate(self, change: Callable[[T], T]) -> T:
        """Run a mutator on the state (say ``lambda s: s.add(me, x)``) and
        buffer its delta for the neighbours."""
        delta = change(self.state)
        if type(delta) is not type(self.state):
            raise LocalError(
                f"a mutation must return the {type(self.state).__name__}'s delta,"
                f" got {type(delta).__name__}"
            )
        self._append(delta, None)
        return delta

    def _append(self, delta: T, origin: str | None) -> None:
        self._buffer[self._seq] = (delta, origin)
        self._seq += 1
        while len(self._buffer) > self.config.max_buffer:
            del self._buffer[self._first]
            self._first += 1
            self.stats.shed += 1

    def ship(self, neighbour: str) -> DeltaGroup[T] | None:
        """What ``neighbour`` still needs: a delta interval, the full state
        when it is behind the buffer, or None when it has everything."""
        acked = self._acks.get(neighbour, 0)
        if acked >= self._seq:
            return None
        if acked < self._first:
            self.stats.full_sent += 1
            return DeltaGroup(self.state.copy(), self._seq, full=True)
        group: T | None = None
        for number in range(acked, self._seq):
            delta, origin = self._buffer[number]
            if origin == neighbour:
                continue  # BP: it came from there
            if group is None:
                group = delta.copy()
            else:
                group.join(delta)
        if group is None:
            self._acks[neighbour] = self._seq  # all of it came from there
            return None
        self.stats.deltas_sent += 1
        return DeltaGroup(group, self._seq)

    def receive(self, sender: str, message: DeltaGroup[T]) -> Ack:
        """Join what ``message`` brings that is news, buffer that part for the
        other neighbours, and return the acknowledgement."""
        if type(message.delta) is not type(self.state):
            raise LocalError(
                f"a {type(message.delta).__name__} cannot join a {type(self.state).__name__}"
            )
        self.stats.received += 1
        news = novel(message.delta, self.state)
        if news is None:
            self.stats.redundant += 1
        else:
            self.state.join(news)
            self._append(news, sender)
        return Ack(message.upto)

    def acknowledged(self, sender: str, ack: Ack) -> None:
        if ack.upto > self._seq:
            self.stats.stale_acks += 1  # from a previous life of this replica
            return
        if ack.upto > self._acks.get(sender, 0):
            self._acks[sender] = ack.upto

    def gc(self, neighbours: Iterable[str]) -> None:
        """Forget neighbours not in ``neighbours`` and drop the entries every
        one of them acknowledged."""
        now = set(neighbours)
        for gone in [n for n in self._acks if n not in now]:
            del self._acks[gone]
        floor = min((self._acks.get(n, 0) for n in now), default=self._seq)
        while self._first < floor:
            self._buffer.pop(self._first, None)
            self._first += 1

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def acked(self, neighbour: str) -> int:
        return self._acks.get(neighbour, 0)
