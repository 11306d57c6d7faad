"""Causal contexts and dot stores, mutable and joined in place.

Almeida, Shoker and Baquero, *Delta State Replicated Data Types* (JPDC 111,
2018, §5-6): a causal CRDT's state is a *dot store* paired with a *causal
context*, the set of dots (events) the state has seen.  Three stores nest:

* :class:`DotSet`, a set of dots;
* :class:`DotFun`, a map from dots to values (a dot is written once, so two
  replicas never hold different values under one dot);
* :class:`DotMap`, a map from keys to dot stores, a key present exactly
  while its store is not empty.

The join of ``(s, c)`` and ``(s', c')`` keeps a dot both sides hold, and a
dot one side holds that the other side has not seen; a dot one side holds
and the other has seen but no longer holds was removed there, and goes.
The contexts are unioned.  A :class:`DotMap` joins each key's stores with
the two *outer* contexts.

These are the kernels' working form, mutable for speed: ``join`` changes
the store it is called on (it must be called before the contexts are
unioned, since it reads the receiver's context as it was).  The immutable
:class:`gossamer.clocks.CausalContext` is the same set of dots as a value;
:meth:`Context.to_causal_context` and :meth:`Context.from_causal_context`
convert.

Invariants: a :class:`Context`'s cloud holds no dot its vector covers and no
dot that extends the vector by one (it is kept compact); every dot a store
holds is in the context it is paired with; a :class:`DotMap` holds no empty
store and indexes every dot below it to its key.
"""

from __future__ import annotations

__all__ = ["FOLD_SUFFIX", "Context", "Dot", "DotFun", "DotMap", "DotSet", "DotStore", "Fold"]

from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from gossamer.clocks import CausalContext, VersionVector
from gossamer.clocks import Dot as ClockDot
from gossamer.errors import LocalError

MAX_WRITER = 256
"""The longest writer id."""

Dot: TypeAlias = tuple[str, int]
"""``(replica, counter)``: the ``counter``-th event of ``replica``."""


FOLD_SUFFIX = "~"
"""A replica's fold writer is its writer id and this: no mutator writes
under it (a writer id from ``replica_id`` ends with its epoch), so a type
that merges a writer's own dots (a counter's increment) never takes in a
dead writer's contribution, which a concurrent reset must still remove."""


@dataclass(frozen=True, slots=True)
class Fold:
    """A dead writer's dots renamed into a fresh range of a live replica's
    fold writer (``folder + FOLD_SUFFIX``).

    Made once, by one replica (:meth:`at`), from what its context has seen of
    ``dead``: dot ``(dead, n)`` for ``n <= seen`` or ``n in extra`` becomes
    ``(into, base + n)``, where ``base`` is the fold writer's highest counter
    there, so the new names were never used.  Every replica applies the same
    renaming to its state (``rename``) and to whatever it receives from a
    replica that has not (``Causal.renamed``): a bijection applied to every
    copy of the data changes no value and no join, and afterwards no context
    holds an entry for ``dead`` (but for dots of it the folder never saw,
    which a later fold takes).  ``(dead, n)`` dots it does not cover are left
    alone.
    """

    dead: str
    seen: int
    extra: frozenset[int]
    into: str
    base: int

    @classmethod
    def at(cls, context: Context, dead: str, folder: str) -> Fold:
        """The fold of ``dead`` by the replica whose writer id is ``folder``,
        as ``context`` allows."""
        into = folder + FOLD_SUFFIX
        if dead in (folder, into) or len(into) > MAX_WRITER:
            raise LocalError(f"{folder!r} cannot fold {dead!r} (itself, or an id too long)")
        own = [n for r, n in context.cloud if r == into]
        return cls(
            dead,
            context.vv.get(dead, 0),
            frozenset(n for r, n in context.cloud if r == dead),
            into,
            max([context.vv.get(into, 0), *own]),
        )

    def covers(self, dot: Dot) -> bool:
        return dot[0] == self.dead and (dot[1] <= self.seen or dot[1] in self.extra)

    def overlaps(self, other: Fold) -> bool:
        """Whether the two folds cover a dot in common (of the same writer)."""
        if self.dead != other.dead:
            return False
        if min(self.seen, other.seen) > 0 or self.extra & other.extra:
            return True
        return any(n <= self.seen for n in other.extra) or any(n <= other.seen for n in self.extra)

    def map(self, dot: Dot) -> Dot:
        """``dot`` renamed, if this fold covers it; else ``dot``."""
        return (self.into, self.base + dot[1]) if self.covers(dot) else dot


class Context:
    """A set of dots: a version vector (every replica's prefix ``1..n``)
    plus a cloud of the dots beyond a gap.  Mutable; kept compact."""

    __slots__ = ("cloud", "vv")

    def __init__(self, vv: dict[str, int] | None = None, cloud: Iterable[Dot] = ()) -> None:
        self.vv: dict[str, int] = {r: n for r, n in (vv or {}).items() if n > 0}
        self.cloud: set[Dot] = set()
        for dot in cloud:
            self.add(dot)

    @classmethod
    def of(cls, dots: Iterable[Dot]) -> Context:
        """The context of exactly ``dots``."""
        new = cls.__new__(cls)
        new.vv = {}
        cloud = new.cloud = set(dots)
        for _, n in cloud:
            if n == 1:
                new._compact()
                break
        return new

    def __contains__(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def size(self) -> int:
        """How many dots (not entries); may exceed what ``len`` can return."""
        return sum(self.vv.values()) + len(self.cloud)

    def __len__(self) -> int:
        return self.size()

    def __iter__(self) -> Iterator[Dot]:
        for replica, top in self.vv.items():
            for n in range(1, top + 1):
                yield (replica, n)
        yield from self.cloud

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Context):
            return NotImplemented
        return self.vv == other.vv and self.cloud == other.cloud

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Context({self.vv!r}, {sorted(self.cloud)!r})"

    def copy(self) -> Context:
        new = Context.__new__(Context)
        new.vv = dict(self.vv)
        new.cloud = set(self.cloud)
        return new

    def next_dot(self, replica: str) -> Dot:
        """A dot of ``replica`` this context has not seen (not added)."""
        if type(replica) is not str or not 0 < len(replica) <= MAX_WRITER:
            raise LocalError(f"a writer id is a str of 1-{MAX_WRITER} characters, got {replica!r}")
        n = self.vv.get(replica, 0) + 1
        cloud = self.cloud
        while (replica, n) in cloud:
            n += 1
        return (replica, n)

    def add(self, dot: Dot) -> None:
        replica, n = dot
        vv = self.vv
        top = vv.get(replica, 0)
        if n <= top:
            return
        if n != top + 1:
            self.cloud.add(dot)
            return
        cloud = self.cloud
        while (replica, n + 1) in cloud:
            n += 1
            cloud.discard((replica, n))
        vv[replica] = n

    def join(self, other: Context) -> None:
        """Union ``other`` into this context."""
        if not other.vv and len(other.cloud) <= SMALL:  # a mutator's delta
            for dot in other.cloud:
                self.add(dot)
            return
        vv = self.vv
        grown = False
        for replica, n in other.vv.items():
            if n > vv.get(replica, 0):
                vv[replica] = n
                grown = True
        if other.cloud:
            self.cloud |= other.cloud
            grown = True
        if grown and self.cloud:
            self._compact()

    def _compact(self) -> None:
        vv, cloud = self.vv, self.cloud
        for dot in sorted(cloud):
            replica, n = dot
            top = vv.get(replica, 0)
            if n <= top:
                cloud.discard(dot)
            elif n == top + 1:
                vv[replica] = n
                cloud.discard(dot)

    def rename(self, fold: Fold) -> None:
        """Apply ``fold``: the dead writer's dots it covers become the live
        writer's (in place; see :class:`Fold`)."""
        dead, vv, cloud = fold.dead, self.vv, self.cloud
        top = vv.pop(dead, 0)
        prefix = min(top, fold.seen)  # (dead, 1..prefix): covered
        beyond = range(fold.seen + 1, top + 1)
        moved = [n for n in beyond if n in fold.extra]
        # What the fold does not cover stays the dead writer's, in the cloud.
        cloud.update((dead, n) for n in beyond if n not in fold.extra)
        for dot in [d for d in cloud if d[0] == dead and fold.covers(d)]:
            cloud.discard(dot)
            moved.append(dot[1])
        into, base = fold.into, fold.base
        have = vv.get(into, 0)
        if prefix and have >= base:  # the renamed prefix continues the fold writer's
            vv[into] = max(have, base + prefix)
        else:
            moved += range(1, prefix + 1)
        for n in moved:
            self.add((into, base + n))
        if cloud:
            self._compact()

    def to_causal_context(self) -> CausalContext:
        return CausalContext(VersionVector(self.vv), (ClockDot(r, n) for r, n in self.cloud))

    @classmethod
    def from_causal_context(cls, context: CausalContext) -> Context:
        compact = context.compact()
        return cls(dict(compact.vector.items()), ((d.node, d.counter) for d in compact.cloud))


class DotStore(Protocol):
    """What a causal CRDT's state is made of."""

    def dots(self) -> Iterator[Dot]: ...

    def __bool__(self) -> bool: ...

    def join(self, context: Context, other: Any, other_context: Context) -> None:
        """Join ``(other, other_context)`` into ``(self, context)``; the
        caller unions the contexts afterwards."""

    def copy(self) -> Any: ...

    def restrict(self, keep: Callable[[Dot], bool]) -> Any:
        """The same kind of store holding only the dots ``keep`` accepts."""

    def holds(self, dot: Dot) -> bool: ...

    def size(self) -> int:
        """How many dots it holds."""

    def rename(self, fold: Fold) -> None:
        """Apply ``fold`` to every dot it holds, in place."""


def _covered(held: Collection[Dot], context: Context) -> list[Dot]:
    """The dots of ``held`` that ``context`` has seen, walking whichever of
    the two is smaller."""
    vv, cloud = context.vv, context.cloud
    if len(held) > SMALL and context.size() < len(held):
        return [d for d in context if d in held]
    return [d for d in held if d[1] <= vv.get(d[0], 0) or d in cloud]


SMALL = 16
"""A store this small is walked rather than the context, without counting
the context's dots."""


class DotSet:
    """A set of dots."""

    __slots__ = ("s",)

    def __init__(self, dots: Iterable[Dot] = ()) -> None:
        self.s: set[Dot] = set(dots)

    @classmethod
    def adopt(cls, dots: set[Dot]) -> DotSet:
        """A DotSet of ``dots`` itself, not copied."""
        new = cls.__new__(cls)
        new.s = dots
        return new

    def dots(self) -> Iterator[Dot]:
        return iter(self.s)

    def __bool__(self) -> bool:
        return bool(self.s)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotSet) and self.s == other.s

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DotSet({sorted(self.s)!r})"

    def copy(self) -> DotSet:
        return DotSet.adopt(set(self.s))

    def restrict(self, keep: Callable[[Dot], bool]) -> DotSet:
        """The dots ``keep`` accepts."""
        return DotSet.adopt({d for d in self.s if keep(d)})

    def holds(self, dot: Dot) -> bool:
        return dot in self.s

    def size(self) -> int:
        return len(self.s)

    def rename(self, fold: Fold) -> None:
        self.s = {fold.map(d) for d in self.s}

    def join(self, context: Context, other: DotSet, other_context: Context) -> None:
        mine, theirs = self.s, other.s
        if mine:
            for dot in _covered(mine, other_context):
                if dot not in theirs:
                    mine.discard(dot)
        if theirs:
            vv, cloud = context.vv, context.cloud
            for dot in theirs:
                if dot not in mine and dot[1] > vv.get(dot[0], 0) and dot not in cloud:
                    mine.add(dot)


V = TypeVar("V")


class DotFun(Generic[V]):
    """A map from dots to values; a dot names one write, so one value."""

    __slots__ = ("f",)

    def __init__(self, entries: dict[Dot, V] | None = None) -> None:
        self.f: dict[Dot, V] = dict(entries or {})

    @classmethod
    def adopt(cls, entries: dict[Dot, V]) -> DotFun[V]:
        """A DotFun of ``entries`` itself, not copied."""
        new: DotFun[V] = cls.__new__(cls)
        new.f = entries
        return new

    def dots(self) -> Iterator[Dot]:
        return iter(self.f)

    def __bool__(self) -> bool:
        return bool(self.f)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotFun) and self.f == other.f

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DotFun({dict(sorted(self.f.items()))!r})"

    def copy(self) -> DotFun[V]:
        return DotFun.adopt(dict(self.f))

    def restrict(self, keep: Callable[[Dot], bool]) -> DotFun[V]:
        """The entries whose dots ``keep`` accepts."""
        return DotFun.adopt({d: v for d, v in self.f.items() if keep(d)})

    def holds(self, dot: Dot) -> bool:
        return dot in self.f

    def size(self) -> int:
        return len(self.f)

    def rename(self, fold: Fold) -> None:
        self.f = {fold.map(d): v for d, v in self.f.items()}

    def join(self, context: Context, other: DotFun[V], other_context: Context) -> None:
        mine, theirs = self.f, other.f
        if mine:
            for dot in _covered(mine, other_context):
                if dot not in theirs:
                    del mine[dot]
        if theirs:
            vv, cloud = context.vv, context.cloud
            for dot, value in theirs.items():
                if dot not in mine and dot[1] > vv.get(dot[0], 0) and dot not in cloud:
                    mine[dot] = value


K = TypeVar("K", bound=Hashable)
S = TypeVar("S", bound=DotStore)


class DotMap(Generic[K, S]):
    """A map from keys to dot stores made by ``empty``; a key whose store
    empties goes.  Every dot below is indexed to its key, so joining a small
    delta into a large map touches only the keys the delta names or saw."""

    __slots__ = ("empty", "index", "m")

    def __init__(self, empty: Callable[[], S], entries: dict[K, S] | None = None) -> None:
        self.empty = empty
        self.m: dict[K, S] = {}
        self.index: dict[Dot, K] = {}
        for key, store in (entries or {}).items():
            if store:
                self.m[key] = store
                for dot in store.dots():
                    self.index[dot] = key

    def dots(self) -> Iterator[Dot]:
        return iter(self.index)

    def __bool__(self) -> bool:
        return bool(self.m)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotMap) and self.m == other.m

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DotMap({self.m!r})"

    def get(self, key: K) -> S | None:
        return self.m.get(key)

    @classmethod
    def one(cls, empty: Callable[[], S], key: K, store: S) -> DotMap[K, S]:
        """The map of ``key`` to a non-empty ``store``."""
        new: DotMap[K, S] = cls.__new__(cls)
        new.empty = empty
        new.m = {key: store}
        new.index = dict.fromkeys(store.dots(), key)
        return new

    def join_key(self, context: Context, key: K, other: S | None, other_context: Context) -> None:
        """Join a delta that holds at most ``key`` and whose context holds no
        dot this map holds under another key (what a mutator returns)."""
        mine, index, empty = self.m, self.index, self.empty
        store = mine.get(key)
        if store is None:
            store = empty()
        else:
            for dot in store.dots():
                del index[dot]
        store.join(context, other if other is not None else empty(), other_context)
        if store:
            mine[key] = store
            for dot in store.dots():
                index[dot] = key
        else:
            mine.pop(key, None)

    def restrict(self, keep: Callable[[Dot], bool]) -> DotMap[K, S]:
        """Every key's store restricted to the dots ``keep`` accepts; keys
        left empty go."""
        return DotMap(self.empty, {key: store.restrict(keep) for key, store in self.m.items()})

    def holds(self, dot: Dot) -> bool:
        return dot in self.index

    def size(self) -> int:
        return len(self.index)

    def rename(self, fold: Fold) -> None:
        if not any(fold.covers(d) for d in self.index):
            return
        for store in self.m.values():
            store.rename(fold)
        self.index = {fold.map(d): k for d, k in self.index.items()}

    def copy(self) -> DotMap[K, S]:
        new: DotMap[K, S] = DotMap.__new__(DotMap)
        new.empty = self.empty
        new.m = {k: v.copy() for k, v in self.m.items()}
        new.index = dict(self.index)
        return new

    def join(self, context: Context, other: DotMap[K, S], other_context: Context) -> None:
        theirs, mine, index = other.m, self.m, self.index
        touched: set[K] = set(theirs)
        for dot in _covered(index.keys(), other_context):
            touched.add(index[dot])
        empty = self.empty
        for key in touched:  # join_key's body, inline: a merge calls it per key
            store = mine.get(key)
            if store is None:
                store = empty()
            else:
                for dot in store.dots():
                    del index[dot]
            incoming = theirs.get(key)
            store.join(context, incoming if incoming is not None else empty(), other_context)
            if store:
                mine[key] = store
                for dot in store.dots():
                    index[dot] = key
            else:
                mine.pop(key, None)
