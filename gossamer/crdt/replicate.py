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

Sequence numbers belong to a life of the replica (``life``, say its boot
epoch): an acknowledgement for another life is ignored.  Neighbours are
named by their lives too (say :func:`~gossamer.crdt.types.replica_id`), so a
restarted neighbour is a new one and gets the full state.  A replica built
on a state that is not empty sends it whole to every neighbour first.

**Forgetting a dead writer** (:meth:`Replicator.prune`): this replica folds
the dead writer's dots into its fold writer (:class:`~gossamer.crdt.dots.Fold`),
renaming its state and its buffer.  Every group it ships carries the folds
it holds; a receiver applies a fold it has not before anything else, and
renames whatever it receives from a replica that has not.  Its
acknowledgement names the folds it holds, and a fold every neighbour has
acknowledged is forgotten ``fold_keep_s`` after it was applied here (a
message sent before a neighbour applied it may still be on its way until
then).  One replica folds a given writer's dots: a fold that covers dots
another held fold of the writer covers, differently, is refused and
counted (two pruners at once are the caller's bug).  A later fold of the
same writer takes the dots an earlier one did not see.

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

from gossamer.config import check_at_least, check_int
from gossamer.crdt.dots import Context, Dot, Fold
from gossamer.crdt.types import Causal
from gossamer.errors import LocalError

T = TypeVar("T", bound=Causal[Any])


@dataclass(frozen=True, slots=True)
class ReplicatorConfig:
    max_buffer: int = 1024
    """Delta entries kept for neighbours that have not acknowledged them;
    past it the oldest go and those neighbours get the full state."""
    max_folds: int = 1_024
    """Folds of dead writers held at once (each a few dozen bytes); pruning
    past it is refused until older folds are forgotten."""
    fold_keep_s: float = 3_600.0
    """How long a fold is kept after every neighbour acknowledged it, in
    seconds: longer than any message can take on its way."""

    def __post_init__(self) -> None:
        check_int("ReplicatorConfig", "max_buffer", self.max_buffer, 1, 10_000_000)
        check_int("ReplicatorConfig", "max_folds", self.max_folds, 1, 1_000_000)
        check_at_least("ReplicatorConfig", "fold_keep_s", self.fold_keep_s, 0.0)


@dataclass(frozen=True, slots=True)
class DeltaGroup(Generic[T]):
    """A delta interval (or the full state), the number it runs up to, and
    the sender's life (its numbers start again when it restarts)."""

    delta: T
    upto: int
    full: bool = False
    life: int = 0
    folds: tuple[Fold, ...] = ()
    """The folds the sender holds: applied before ``delta`` is read."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Everything up to ``upto`` (exclusive) of the sender's ``life`` arrived."""

    upto: int
    life: int = 0
    folds: frozenset[tuple[str, int]] = frozenset()
    """The folds the sender of the ack holds, as ``(dead, base)``."""


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
    """Acknowledgements for another life or beyond what was sent, ignored."""
    folds_made: int = 0
    folds_applied: int = 0
    """Folds received and applied here."""
    folds_forgotten: int = 0
    fold_conflicts: int = 0
    """A second, different fold of a writer already folded: refused."""


def novel(delta: T, state: T) -> T | None:
    """RR: ``delta`` without what ``state`` already has, or None when it
    brings nothing.

    A dot ``delta`` holds that ``state`` has seen and removed goes from its
    store (``state``'s removal travels on its own); its context stays whole,
    since walking it dot by dot could take for ever (a vector entry names a
    whole prefix) and a dot ``state`` still holds must not look removed.
    Nothing is news when every dot held is held here too, every dot of the
    context is seen here, and no dot held here is in the context without
    being held (a removal).  Bounded by the delta's store and cloud and the
    smaller of its context and ``state``'s store."""
    seen, held = state.context, state.store
    dstore, dcontext = delta.store, delta.context
    gone: set[Dot] = set()
    unseen = False
    for d in dstore.dots():
        if d not in seen:
            unseen = True
        elif not held.holds(d):
            gone.add(d)
    if not unseen and _within(dcontext, seen) and not _removes(dcontext, dstore, held):
        return None
    if gone:
        return type(delta)._new(dstore.restrict(lambda d: d not in gone), dcontext)
    return delta


def _within(context: Context, seen: Context) -> bool:
    """Whether ``seen`` has seen every dot of ``context``, writer by writer."""
    cloud = seen.cloud
    for writer, top in context.vv.items():
        have = seen.vv.get(writer, 0)
        if top > have and (
            top - have > len(cloud)
            or any((writer, n) not in cloud for n in range(have + 1, top + 1))
        ):
            return False
    return all(d in seen for d in context.cloud)


def _removes(context: Context, store: Any, held: Any) -> bool:
    """Whether ``context`` covers a dot ``held`` holds that ``store`` does
    not: walking the smaller of the two."""
    if context.size() < held.size():
        return any(held.holds(d) and not store.holds(d) for d in context)
    return any(d in context and not store.holds(d) for d in held.dots())


class Replicator(Generic[T]):
    """One replicated value and what each neighbour still needs of it."""

    __slots__ = (
        "_acks",
        "_buffer",
        "_first",
        "_fold_acks",
        "_folds",
        "_seq",
        "config",
        "life",
        "state",
        "stats",
    )

    def __init__(self, state: T, config: ReplicatorConfig | None = None, life: int = 0) -> None:
        self.state = state
        self.config = config or ReplicatorConfig()
        self.life = life
        self.stats = ReplicatorStats()
        self._buffer: dict[int, tuple[T, str | None]] = {}
        # A state that is not empty is behind no entry: everyone gets it whole.
        start = 1 if state.store or state.context.size() else 0
        self._first = start  # the oldest number still in the buffer
        self._seq = start  # the next number
        self._acks: dict[str, int] = {}
        self._folds: dict[tuple[str, int], tuple[Fold, float]] = {}  # the fold, when applied
        self._fold_acks: dict[str, frozenset[tuple[str, int]]] = {}  # neighbour -> folds held

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
            return self._folds_news(neighbour)
        if acked < self._first:
            self.stats.full_sent += 1
            return DeltaGroup(
                self.state.copy(), self._seq, full=True, life=self.life, folds=self.folds
            )
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
            return self._folds_news(neighbour)
        self.stats.deltas_sent += 1
        return DeltaGroup(group, self._seq, life=self.life, folds=self.folds)

    def _folds_news(self, neighbour: str) -> DeltaGroup[T] | None:
        """Nothing but the folds, for a neighbour not known to hold them all
        (its acknowledgement is what lets them be forgotten)."""
        known = self._fold_acks.get(neighbour, frozenset())
        if all(key in known for key in self._folds):
            return None
        empty = type(self.state)()
        return DeltaGroup(empty, self._seq, life=self.life, folds=self.folds)

    def receive(self, sender: str, message: DeltaGroup[T], now: float = 0.0) -> Ack:
        """Apply the folds ``message`` carries, join what it brings that is
        news (renamed by this replica's folds), buffer that part for the
        other neighbours, and return the acknowledgement."""
        if type(message.delta) is not type(self.state):
            raise LocalError(
                f"a {type(message.delta).__name__} cannot join a {type(self.state).__name__}"
            )
        self.stats.received += 1
        for fold in message.folds:
            if self._apply(fold, now):
                self.stats.folds_applied += 1
        delta = message.delta.renamed(f for f, _ in self._folds.values())
        news = novel(delta, self.state)
        if news is None:
            self.stats.redundant += 1
        else:
            self.state.join(news)
            self._append(news, sender)
        return Ack(message.upto, message.life, frozenset(self._folds))

    def acknowledged(self, sender: str, ack: Ack) -> None:
        if ack.life != self.life or ack.upto > self._seq:
            self.stats.stale_acks += 1  # for a previous life of this replica
            return
        if ack.upto > self._acks.get(sender, 0):
            self._acks[sender] = ack.upto
        self._fold_acks[sender] = ack.folds

    def prune(self, dead: str, folder: str, now: float = 0.0) -> Fold:
        """Fold the dead writer ``dead``, ``folder`` being this replica's own
        writer id: its state and buffer are renamed, and the fold travels
        with everything shipped from now on.  LocalError when ``max_folds``
        are held, or nothing of ``dead`` is here to fold."""
        if len(self._folds) >= self.config.max_folds:
            raise LocalError(
                f"{len(self._folds)} folds are held (max_folds); prune again once the "
                "neighbours have acknowledged them"
            )
        fold = Fold.at(self.state.context, dead, folder)
        if not fold.seen and not fold.extra:
            raise LocalError(f"this replica has seen no dot of {dead!r} to fold")
        self._apply(fold, now)
        self.stats.folds_made += 1
        return fold

    def _apply(self, fold: Fold, now: float) -> bool:
        """Rename the state and buffer by ``fold``, unless it is held (False)
        or clashes with a fold held (False, counted)."""
        key = (fold.dead, fold.base)
        if key in self._folds:
            return False
        if any(held.dead == fold.dead and held.overlaps(fold) for held, _ in self._folds.values()):
            self.stats.fold_conflicts += 1
            return False
        self.state.rename(fold)
        for number, (delta, origin) in list(self._buffer.items()):
            self._buffer[number] = (delta.renamed((fold,)), origin)
        self._folds[key] = (fold, now)
        return True

    @property
    def folds(self) -> tuple[Fold, ...]:
        """The folds this replica holds (each shipped group carries them)."""
        return tuple(f for f, _ in self._folds.values())

    def gc(self, neighbours: Iterable[str], now: float = 0.0) -> None:
        """Forget neighbours not in ``neighbours``, drop the entries every
        one of them acknowledged, and forget the folds every one of them
        holds once ``fold_keep_s`` passed since they were applied here."""
        current = set(neighbours)
        for gone in [n for n in self._acks if n not in current]:
            del self._acks[gone]
        for gone in [n for n in self._fold_acks if n not in current]:
            del self._fold_acks[gone]
        floor = min((self._acks.get(n, 0) for n in current), default=self._seq)
        while self._first < floor:
            self._buffer.pop(self._first, None)
            self._first += 1
        keep = self.config.fold_keep_s
        for key, (_, applied) in list(self._folds.items()):
            if now - applied >= keep and all(
                key in self._fold_acks.get(n, frozenset()) for n in current
            ):
                del self._folds[key]
                self.stats.folds_forgotten += 1

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def acked(self, neighbour: str) -> int:
        return self._acks.get(neighbour, 0)
