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
from typing import Any, ClassVar, Generic, Self, TypeVar

from gossamer.crdt.codec import Reader, Writer, check_key, check_plain, key_order, plain_copy
from gossamer.crdt.dots import MAX_WRITER, Context, Dot, DotFun, DotMap, DotSet, DotStore, Fold
from gossamer.errors import LocalError, WireError, WireReason

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
    writer = f"{name}@{epoch}"
    if len(writer) > MAX_WRITER:
        raise LocalError(f"a writer id has at most {MAX_WRITER} characters: {writer!r}")
    return writer


def _fun_out(store: DotFun[Any], writer: Writer, value: Callable[[Any], list[Any]]) -> object:
    index = writer.index
    return [[index[d[0]], d[1], *value(v)] for d, v in sorted(store.f.items())]


def _fun_in(
    raw: object, reader: Reader, width: int, value: Callable[[Dot, list[Any]], Any]
) -> DotFun[Any]:
    if not isinstance(raw, list | tuple):
        raise WireError(WireReason.SCHEMA, "a DotFun must be an array")
    out: DotFun[Any] = DotFun()
    for item in raw:
        if not isinstance(item, list | tuple) or len(item) != 2 + width:
            raise WireError(WireReason.SCHEMA, f"a DotFun entry must have {2 + width} elements")
        (dot,) = reader.hold(reader.dots(item[:2], "DotFun"), "DotFun")
        out.f[dot] = value(dot, list(item[2:]))
    return out


_CONTAINERS = (list, tuple, dict)
"""What a register copies on the way in and out (the rest is immutable)."""


def _plain_in(value: object) -> object:
    try:
        check_plain(value, "a register's value")
    except LocalError as e:
        raise WireError(WireReason.SCHEMA, str(e)) from None
    return value


def _int_in(value: object) -> int:
    if type(value) is not int or value < 0:
        raise WireError(WireReason.SCHEMA, f"a count must be a non-negative int, got {value!r}")
    return value


def _map_out(
    store: DotMap[Any, Any], writer: Writer, child: Callable[[Any, Writer], object]
) -> object:
    return [[k, child(store.m[k], writer)] for k in sorted(store.m, key=key_order)]


def _map_in(
    raw: object, reader: Reader, empty: Callable[[], Any], child: Callable[[object, Reader], Any]
) -> DotMap[Any, Any]:
    entries = {key: child(value, reader) for key, value in reader.pairs(raw, "DotMap")}
    if not all(entries.values()):
        raise WireError(WireReason.SCHEMA, "an empty store under a key")
    return DotMap(empty, entries)


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
    def _new(cls: type[T], store: Any, context: Context) -> T:
        """Wrap ``store`` and ``context`` as they are."""
        new = cls.__new__(cls)
        new.store = store
        new.context = context
        new._apply = True
        return new

    @classmethod
    def _view(cls: type[T], store: Any, context: Context) -> T:
        """A view over a store shared with an enclosing map: its mutators
        return deltas and change nothing."""
        view = cls.__new__(cls)
        view.store, view.context, view._apply = store, context, False
        return view

    def _delta(self: T, store: Any, dots: Iterable[Dot]) -> T:
        """Wrap a delta and, unless this is a view, join it in."""
        delta = type(self)._new(store, Context.of(dots))
        if self._apply:
            self.join(delta)
        return delta

    def _delta_at(self: T, key: Any, store: Any, dots: Iterable[Dot] | Context) -> T:
        """Wrap a delta that holds at most ``key`` of this type's top
        DotMap and saw only dots under it (and new ones), and join it in
        touching that key alone."""
        context = dots if isinstance(dots, Context) else Context.of(dots)
        top = self.store
        delta = type(self)._new(
            DotMap.one(top.empty, key, store) if store else DotMap(top.empty), context
        )
        if self._apply:
            top.join_key(self.context, key, store or None, context)
            self.context.join(context)
        return delta

    def join(self: T, other: T) -> None:
        """``self ⊔ other``, in place."""
        if type(other) is not type(self):
            raise LocalError(f"cannot join {type(other).__name__} into {type(self).__name__}")
        self.store.join(self.context, other.store, other.context)
        self.context.join(other.context)

    def copy(self: T) -> T:
        return type(self)(self.store.copy(), self.context.copy())

    def fold(self, dead: str, folder: str) -> Fold:
        """Fold the dead writer ``dead`` here, ``folder`` being this replica's
        own writer id, and return the :class:`~gossamer.crdt.dots.Fold`
        every other replica must apply (:meth:`rename`) before it joins
        anything from this one."""
        fold = Fold.at(self.context, dead, folder)
        self.rename(fold)
        return fold

    def rename(self, fold: Fold) -> None:
        """Apply ``fold`` to this state, in place: no value changes."""
        self.store.rename(fold)
        self.context.rename(fold)

    def renamed(self: T, folds: Iterable[Fold]) -> T:
        """This state or delta as a replica that applied ``folds`` holds it
        (a copy when any applies; ``self`` when none does)."""
        out = self
        for fold in folds:
            if fold.dead in out.context.vv or any(d[0] == fold.dead for d in out.context.cloud):
                if out is self:
                    out = self.copy()
                out.rename(fold)
        return out

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.store == other.store
            and self.context == other.context
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, {self.context!r})"

    # -- wire (see gossamer.crdt.codec)

    def to_wire(self) -> list[object]:
        """``[writers, vector, cloud, store]``, deterministic."""
        writer = Writer(self.context)
        return [writer.names(), *writer.context(self.context), self._store_out(self.store, writer)]

    @classmethod
    def from_wire(cls, raw: object) -> Self:
        """Decode a peer's state or delta; raises only ``WireError``."""
        what = cls.__name__
        reader = Reader(raw, what)
        context = reader.context(raw)
        store = cls._store_in(raw[3], reader)  # type: ignore[index]
        reader.check_context(context, what)
        return cls(store, context)

    @classmethod
    def _store_out(cls, store: Any, writer: Writer) -> object:
        raise NotImplementedError

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> Any:
        raise NotImplementedError

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

    @classmethod
    def _store_out(cls, store: DotMap[Any, DotSet], writer: Writer) -> object:
        m = store.m
        return writer.columns([(k, sorted(m[k].s)) for k in sorted(m, key=key_order)])

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> DotMap[Any, DotSet]:
        return DotMap(DotSet, {key: DotSet(dots) for key, dots in reader.columns(raw, "AWSet")})

    def add(self, replica: str, element: E) -> AWSet[E]:
        if type(element) is not str:
            check_key(element, "a set's element")
        context, top = self.context, self.store
        dot = context.next_dot(replica)
        old = top.m.get(element)
        one: DotMap[Any, DotSet] = DotMap.__new__(DotMap)
        one.empty, one.m, one.index = DotSet, {element: DotSet.adopt({dot})}, {dot: element}
        delta = type(self)._new(one, Context.of((dot,) if old is None else (dot, *old.s)))
        if self._apply:
            # The join of this delta, written out: the element's dots become {dot}.
            index = top.index
            if old is not None:
                for seen in old.s:
                    del index[seen]
            top.m[element] = DotSet.adopt({dot})
            index[dot] = element
            context.add(dot)
        return delta

    def remove(self, element: E) -> AWSet[E]:
        return self._delta_at(element, None, self._own(element))

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

    @classmethod
    def _store_out(cls, store: DotMap[Any, DotMap[bool, DotSet]], writer: Writer) -> object:
        def flags(inner: DotMap[bool, DotSet], w: Writer) -> object:
            return [w.dots(inner.m[f].s) if f in inner.m else [] for f in (True, False)]

        return _map_out(store, writer, flags)

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> DotMap[Any, DotMap[bool, DotSet]]:
        def flags(value: object, r: Reader) -> DotMap[bool, DotSet]:
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise WireError(WireReason.SCHEMA, "an RWSet entry must be [adds, removes]")
            return DotMap(
                DotSet,
                {
                    flag: DotSet(r.hold(r.dots(dots, "RWSet"), "RWSet"))
                    for flag, dots in zip((True, False), value, strict=True)
                },
            )

        return _map_in(raw, reader, _flags, flags)

    def _mark(self, replica: str, element: E, flag: bool) -> RWSet[E]:
        check_key(element, "a set's element")
        dot = self.context.next_dot(replica)
        inner: DotMap[bool, DotSet] = DotMap(DotSet, {flag: DotSet((dot,))})
        return self._delta_at(element, inner, [dot, *self._own(element)])

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
        return DotFun.adopt({})

    @classmethod
    def _store_out(cls, store: DotFun[Any], writer: Writer) -> object:
        return _fun_out(store, writer, lambda v: [v])

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> DotFun[Any]:
        return _fun_in(raw, reader, 1, lambda d, v: _plain_in(v[0]))

    def write(self, replica: str, value: Any) -> MVRegister:
        check_plain(value, "a register's value")
        dot = self.context.next_dot(replica)
        if type(value) in _CONTAINERS:
            value = plain_copy(value)
        return self._delta(DotFun({dot: value}), [dot, *self.store.f])

    def clear(self) -> MVRegister:
        return self._delta(DotFun(), list(self.store.f))

    def value(self) -> list[Any]:
        """The concurrent values, in the order of their dots (copies)."""
        return [plain_copy(self.store.f[dot]) for dot in sorted(self.store.f)]


class LWWRegister(Causal[DotFun[tuple[int, str, Any]]]):
    """Last-writer-wins register, ordered by a Lamport timestamp and then the
    writer's id, never a wall clock.  A ``DotFun`` of ``(time, writer,
    value)``, the writer being the dot's: a write is one past the largest
    time it has seen and replaces what it has seen; concurrent writes are kept until one is
    overwritten, and the value is the greatest."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotFun[tuple[int, str, Any]]:
        return DotFun.adopt({})

    @classmethod
    def _store_out(cls, store: DotFun[tuple[int, str, Any]], writer: Writer) -> object:
        return _fun_out(store, writer, lambda v: [v[0], v[2]])

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> DotFun[tuple[int, str, Any]]:
        return _fun_in(raw, reader, 2, lambda d, v: (_int_in(v[0]), d[0], _plain_in(v[1])))

    def write(self, replica: str, value: Any) -> LWWRegister:
        check_plain(value, "a register's value")
        dot = self.context.next_dot(replica)
        if type(value) in _CONTAINERS:
            value = plain_copy(value)
        entry = (self.time() + 1, replica, value)
        return self._delta(DotFun.adopt({dot: entry}), [dot, *self.store.f])

    def clear(self) -> LWWRegister:
        return self._delta(DotFun(), list(self.store.f))

    def value(self) -> Any:
        """The greatest write's value; None when nothing is written."""
        if not self.store.f:
            return None
        # Ties (one writer's writes around a clear) go to the later dot.
        top = max(self.store.f.items(), key=lambda item: (item[1][0], item[1][1], item[0]))
        value = top[1][2]
        return plain_copy(value) if type(value) in _CONTAINERS else value

    def time(self) -> int:
        """The Lamport time of the greatest write; 0 if none."""
        time = 0
        for seen, _, _ in self.store.f.values():  # a loop: writes call it
            time = max(time, seen)
        return time


# ------------------------------------------------------------------ counters


class GCounter(Causal[DotFun[int]]):
    """Grow-only counter as a causal counter (the report's §7.2 form): each
    writer holds one dot whose value is its total; an increment replaces
    it with a new dot.  Causal, so it nests in an :class:`ORMap` with
    reset-remove semantics."""

    __slots__ = ()

    @classmethod
    def empty_store(cls) -> DotFun[int]:
        return DotFun.adopt({})

    @classmethod
    def _store_out(cls, store: DotFun[int], writer: Writer) -> object:
        return _fun_out(store, writer, lambda v: [v])

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> DotFun[int]:
        return _fun_in(raw, reader, 1, lambda d, v: _int_in(v[0]))

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
        return DotFun.adopt({})

    @classmethod
    def _store_out(cls, store: DotFun[tuple[int, int]], writer: Writer) -> object:
        return _fun_out(store, writer, lambda v: [v[0], v[1]])

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> DotFun[tuple[int, int]]:
        return _fun_in(raw, reader, 2, lambda d, v: (_int_in(v[0]), _int_in(v[1])))

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
_MAP_TYPES: dict[tuple[type[Any], type[Any]], type[Any]] = {}


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
        """The map type whose values are ``value_type`` (one class per value
        type, so two maps of the same values join)."""
        made = _MAP_TYPES.get((cls, value_type))
        if made is None:
            namespace = {"value_type": value_type, "__slots__": ()}
            made = _MAP_TYPES[(cls, value_type)] = type(
                f"ORMap[{value_type.__name__}]", (cls,), namespace
            )
        return made

    @classmethod
    def empty_store(cls) -> DotMap[Any, Any]:
        return DotMap(cls.value_type.empty_store)

    @classmethod
    def _store_out(cls, store: DotMap[Any, Any], writer: Writer) -> object:
        return _map_out(store, writer, cls.value_type._store_out)

    @classmethod
    def _store_in(cls, raw: object, reader: Reader) -> DotMap[Any, Any]:
        return _map_in(raw, reader, cls.value_type.empty_store, cls.value_type._store_in)

    def update(self, key: E, mutate: Callable[[Any], Causal[Any]]) -> ORMap[E, V]:
        """Apply ``mutate`` (say ``lambda v: v.add(replica, x)``) to the
        value under ``key``, seen as its type; returns the map's delta."""
        if type(key) is not str:
            check_key(key, "a map's key")
        inner = self.store.m.get(key)
        view = self.value_type._view(
            inner if inner is not None else self.value_type.empty_store(), self.context
        )
        change = mutate(view)
        if not isinstance(change, self.value_type):
            raise LocalError(
                f"an update of {type(self).__name__} must return the value's delta,"
                f" got {type(change).__name__}"
            )
        store = change.store
        if inner is None and self._apply and store:
            # A new key: the join keeps every dot the delta holds that this
            # map has not seen, which for a mutator's new dots is all of them.
            context, top = self.context, self.store
            vv, cloud = context.vv, context.cloud
            dots = dict.fromkeys(store.dots(), key)
            for d in dots:
                if d[1] <= vv.get(d[0], 0) or d in cloud:
                    break
            else:
                one: DotMap[Any, Any] = DotMap.__new__(DotMap)
                one.empty, one.m, one.index = top.empty, {key: store}, dots
                delta = type(self)._new(one, change.context)
                top.m[key] = store.copy()
                top.index.update(dots)
                context.join(change.context)
                return delta
        return self._delta_at(key, store, change.context)

    def remove(self, key: E) -> ORMap[E, V]:
        return self._delta_at(key, None, self._own(key))

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
