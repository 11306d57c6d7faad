"""Delta-state CRDTs over dot stores.

Almeida, Shoker and Baquero, *Delta State Replicated Data Types* (JPDC 2018,
§7): each type is a causal pair ``(store, context)``; a δ-mutator computes a
delta (itself such a pair, usually a few dots) from the current state, and
the state becomes ``state ⊔ delta``.  Every public mutator here does both and
returns the delta, which is what a replicator ships.

``replica`` is the writer's id: :func:`replica_id` of the node's name and
boot epoch, so a restarted node never issues a dot its previous life issued.

Laws every type keeps (``gossamer.testing.crdt`` checks them): ``join`` is
commutative, associative and idempotent on the states; a delta is below the
state it came from (joining it changes nothing there); and replicas that
receive every delta, in any order and any number of times, reach the state
that joining all of them gives.

Types that nest in :class:`ORMap` (all of them) work on a ``(store, context)``
pair they may share with the map: a view made by the map computes deltas
without applying them, and the map wraps each in a delta of its own.
"""

from __future__ import annotations

__all__ = [
    "AWSet",
    "Causal",
    "GCounter",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "PNCounter",
    "RWSet",
    "replica_id",
]

from collections.abc import Callable, Hashable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from gossamer.crdt.dots import Context, Dot, DotFun, DotMap, DotSet, DotStore
from gossamer.errors import LocalError

T = TypeVar("T", bound="Causal[Any]")
S = TypeVar("S", bound=DotStore)
E = TypeVar("E", bound=Hashable)


def replica_id(name: str, epoch: int) -> str:
    """The writer id of a node's life: ``name`` and boot ``epoch``, so a
    restart never reuses a dot."""
    if not name or "@" in name:
        raise LocalError(f"a replica's node name must be non-empty without '@', got {name!r}")
    if epoch < 0:
        raise LocalError(f"a boot epoch is never negative, got {epoch}")
    return f"{name}@{epoch}"


class Causal(Generic[S]):
    """A causal CRDT: a dot store and the context of every dot it has seen."""

    __slots__ = ("_apply", "context", "store")

    def __init__(self, store: S | None = None, context: Context | None = None) -> None:
        self.store: S = store if store is not None else self.empty_store()
        self.context: Context = context if context is not None else Context()
        self._apply = True

    @classmethod
    def empty_store(cls) -> S:
        raise NotImplementedError

    @classmethod
    def _view(cls: type[T], store: Any, context: Context) -> T:
        """A view over a store shared with an enclosing map: its mutators
        return deltas and change nothing."""
        view = cls(store, context)
        view._apply = False
        return view

    def _delta(self: T, store: Any, dots: Iterable[Dot]) -> T:
        """Wrap a delta and, unless this is a view, join it in."""
        delta = type(self)(store, Context.of(dots))
        if self._apply:
            self.join(delta)
        return delta

    def join(self: T, other: T) -> None:
        """``self ⊔ other``, in place."""
        if type(other) is not type(self):
            raise LocalError(f"cannot join {type(other).__name__} into {type(self).__name__}")
        self.store.join(self.context, other.store, other.context)
        self.context.join(other.context)

    def copy(self: T) -> T:
        return type(self)(self.store.copy(), self.context.copy())

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.store == other.store
            and self.context == other.context
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, {self.context!r})"

    def _own(self, key: Any) -> list[Dot]:
        """The dots held under ``key`` of this type's top DotMap."""
        store = self.store.get(key)  # type: ignore[attr-defined]
        return [] if store is None else list(store.dots())


# ------------------------------------------------------------------ sets


class AWSet(Causal[DotMap[Any, DotSet]], Generic[E]):
    """Add-wins observed-remove set: a remove deletes the adds it has seen;
    an add concurrent with it survives.  ``DotMap[E, DotSet]``."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotMap[Any, DotSet]:
        return DotMap(DotSet)

    def add(self, replica: str, element: E) -> AWSet[E]:
        dot = self.context.next_dot(replica)
        store: DotMap[Any, DotSet] = DotMap(DotSet, {element: DotSet((dot,))})
        return self._delta(store, [dot, *self._own(element)])

    def remove(self, element: E) -> AWSet[E]:
        return self._delta(DotMap(DotSet), self._own(element))

    def clear(self) -> AWSet[E]:
        return self._delta(DotMap(DotSet), list(self.store.dots()))

    def __contains__(self, element: object) -> bool:
        return element in self.store.m

    def __len__(self) -> int:
        return len(self.store.m)

    def value(self) -> set[E]:
        return set(self.store.m)


def _flags() -> DotMap[bool, DotSet]:
    return DotMap(DotSet)


class RWSet(Causal[DotMap[Any, DotMap[bool, DotSet]]], Generic[E]):
    """Remove-wins set: an element is in while no remove it has not seen
    stands.  ``DotMap[E, DotMap[bool, DotSet]]``, True for adds and False
    for removes; a removed element keeps its remove dot until an add that
    saw it."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotMap[Any, DotMap[bool, DotSet]]:
        return DotMap(_flags)

    def _mark(self, replica: str, element: E, flag: bool) -> RWSet[E]:
        dot = self.context.next_dot(replica)
        inner: DotMap[bool, DotSet] = DotMap(DotSet, {flag: DotSet((dot,))})
        store: DotMap[Any, DotMap[bool, DotSet]] = DotMap(_flags, {element: inner})
        return self._delta(store, [dot, *self._own(element)])

    def add(self, replica: str, element: E) -> RWSet[E]:
        return self._mark(replica, element, True)

    def remove(self, replica: str, element: E) -> RWSet[E]:
        return self._mark(replica, element, False)

    def __contains__(self, element: object) -> bool:
        flags = self.store.m.get(element)
        return flags is not None and False not in flags.m

    def value(self) -> set[E]:
        return {e for e, flags in self.store.m.items() if False not in flags.m}


# ------------------------------------------------------------------ registers


class MVRegister(Causal[DotFun[Any]]):
    """Multi-value register: a write replaces the values it has seen;
    concurrent writes are all kept.  ``DotFun[value]``."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotFun[Any]:
        return DotFun()

    def write(self, replica: str, value: Any) -> MVRegister:
        dot = self.context.next_dot(replica)
        return self._delta(DotFun({dot: value}), [dot, *self.store.f])

    def clear(self) -> MVRegister:
        return self._delta(DotFun(), list(self.store.f))

    def value(self) -> list[Any]:
        """The concurrent values, in the order of their dots."""
        return [self.store.f[dot] for dot in sorted(self.store.f)]


class LWWRegister(Causal[DotFun[tuple[int, str, Any]]]):
    """Last-writer-wins register, ordered by a Lamport timestamp and then the
    writer's id, never a wall clock.  A ``DotFun`` of ``(time, writer,
    value)``: a write is one past the largest time it has seen and
    replaces what it has seen; concurrent writes are kept until one is
    overwritten, and the value is the greatest."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotFun[tuple[int, str, Any]]:
        return DotFun()

    def write(self, replica: str, value: Any) -> LWWRegister:
        entries = self.store.f
        time = max((t for t, _, _ in entries.values()), default=0) + 1
        dot = self.context.next_dot(replica)
        return self._delta(DotFun({dot: (time, replica, value)}), [dot, *entries])

    def clear(self) -> LWWRegister:
        return self._delta(DotFun(), list(self.store.f))

    def value(self) -> Any:
        """The greatest write's value; None when nothing is written."""
        entries = self.store.f.values()
        if not entries:
            return None
        return max(entries, key=lambda e: (e[0], e[1]))[2]

    def time(self) -> int:
        """The Lamport time of the greatest write; 0 if none."""
        return max((t for t, _, _ in self.store.f.values()), default=0)


# ------------------------------------------------------------------ counters


class GCounter(Causal[DotFun[int]]):
    """Grow-only counter as a causal counter (the report's §7.2 form): each
    writer holds one dot whose value is its total; an increment replaces
    it with a new dot.  Causal, so it nests in an :class:`ORMap` with
    reset-remove semantics."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotFun[int]:
        return DotFun()

    def _total(self, replica: str) -> tuple[list[Dot], int]:
        mine = [d for d in self.store.f if d[0] == replica]
        return mine, sum(self.store.f[d] for d in mine)

    def increment(self, replica: str, by: int = 1) -> GCounter:
        if by < 0:
            raise LocalError(f"a grow-only counter cannot go down by {-by}; use PNCounter")
        old, total = self._total(replica)
        dot = self.context.next_dot(replica)
        return self._delta(DotFun({dot: total + by}), [dot, *old])

    def reset(self) -> GCounter:
        return self._delta(DotFun(), list(self.store.f))

    def value(self) -> int:
        return sum(self.store.f.values())


class PNCounter(Causal[DotFun[tuple[int, int]]]):
    """Counter that goes up and down: a causal counter of ``(up, down)``
    totals per writer."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotFun[tuple[int, int]]:
        return DotFun()

    def increment(self, replica: str, by: int = 1) -> PNCounter:
        f = self.store.f
        old = [d for d in f if d[0] == replica]
        up = sum(f[d][0] for d in old) + max(by, 0)
        down = sum(f[d][1] for d in old) + max(-by, 0)
        dot = self.context.next_dot(replica)
        return self._delta(DotFun({dot: (up, down)}), [dot, *old])

    def decrement(self, replica: str, by: int = 1) -> PNCounter:
        return self.increment(replica, -by)

    def reset(self) -> PNCounter:
        return self._delta(DotFun(), list(self.store.f))

    def value(self) -> int:
        return sum(up - down for up, down in self.store.f.values())


# ------------------------------------------------------------------ maps


V = TypeVar("V", bound="Causal[Any]")


class ORMap(Causal[DotMap[Any, Any]], Generic[E, V]):
    """Observed-remove map from keys to any causal type above (maps too).

    Observed-remove with the report's reset-remove (§7.3): removing a key
    removes the dots the remover has seen under it, as if the value were
    reset to empty there; an update concurrent with the remove was not
    seen, so its dots survive and the key comes back holding them: an
    element added concurrently, a register's concurrent write, a
    counter's concurrent writer's dot (which carries that writer's total).
    Use :meth:`of` for the map type of a value type."""

    __slots__ = ()
    value_type: ClassVar[type[Causal[Any]]]

    @classmethod
    def of(cls, value_type: type[Causal[Any]]) -> type[ORMap[Any, Any]]:
        """The map type whose values are ``value_type``."""
        namespace = {"value_type": value_type, "__slots__": ()}
        return type(f"ORMap[{value_type.__name__}]", (cls,), namespace)

    @classmethod
    def empty_store(cls) -> DotMap[Any, Any]:
        return DotMap(cls.value_type.empty_store)

    def update(self, key: E, mutate: Callable[[Any], Causal[Any]]) -> ORMap[E, V]:
        """Apply ``mutate`` (say ``lambda v: v.add(replica, x)``) to the
        value under ``key``, seen as its type; returns the map's delta."""
        inner = self.store.get(key)
        view = self.value_type._view(
            inner if inner is not None else self.value_type.empty_store(), self.context
        )
        change = mutate(view)
        if not isinstance(change, self.value_type):
            raise LocalError(
                f"an update of {type(self).__name__} must return the value's delta,"
                f" got {type(change).__name__}"
            )
        store: DotMap[Any, Any] = DotMap(self.value_type.empty_store)
        if change.store:
            store.m[key] = change.store
            for dot in change.store.dots():
                store.index[dot] = key
        delta = type(self)(store, change.context)
        if self._apply:
            self.join(delta)
        return delta

    def remove(self, key: E) -> ORMap[E, V]:
        return self._delta(DotMap(self.value_type.empty_store), self._own(key))

    def get(self, key: E) -> V | None:
        """A read-only copy of the value under ``key``."""
        inner = self.store.get(key)
        if inner is None:
            return None
        return self.value_type(inner.copy(), self.context.copy())  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        return key in self.store.m

    def value(self) -> dict[E, Any]:
        """Every key's value, read as its type reads it."""
        return {
            key: self.value_type(inner, self.context).value()  # type: ignore[attr-defined]
            for key, inner in self.store.m.items()
        }
