"""The CRDTs' wire form: compact and deterministic.

A state or delta travels as ``[writers, vector, cloud, store]``: ``writers``
is the sorted list of writer ids it names, and every dot after it is two
integers, the writer's index and the counter, so a writer id is sent once
however many dots it has.  ``vector`` is ``[index, top, ...]`` flat;
``cloud`` and every dot set are ``[index, counter, ...]`` flat and sorted;
maps are ``[[key, value], ...]`` sorted by key.  The same state always
encodes to the same bytes.

Decoding checks everything a peer could get wrong (shapes, indices,
counters, a dot held but not in the context, a dot held twice) and raises
``WireError(SCHEMA)``.  Set elements and map keys are ``str``, ``bytes`` or
``int``; register values are plain msgpack data (:func:`check_plain`).
"""

from __future__ import annotations

__all__ = ["Reader", "Writer", "check_key", "check_plain", "key_order"]

from typing import Any

from gossamer.clocks._checks import MAX_COUNTER
from gossamer.clocks.dots import MAX_WIRE_CLOUD_DOTS
from gossamer.crdt.dots import MAX_WRITER, Context, Dot
from gossamer.errors import LocalError, WireError, WireReason

MAX_DEPTH = 32
"""How deep a register's value may nest."""
MAX_CLOUD = MAX_WIRE_CLOUD_DOTS
"""Most cloud dots a decoded context may hold, as for the clocks' contexts
(a run names many in a few bytes, so this bounds the decoder's memory)."""


def check_key(key: object, what: str) -> None:
    """A set element or map key: ``str``, ``bytes`` or ``int`` (not bool)."""
    if type(key) not in (str, bytes, int) or (type(key) is int and not -(2**63) <= key < 2**64):
        raise LocalError(f"{what} must be a str, bytes or 64-bit int, got {type(key).__name__}")


def check_plain(value: object, what: str, depth: int = 0) -> None:
    """A register's value: None, bool, int, float, str, bytes, and lists and
    str-keyed dicts of them."""
    if depth > MAX_DEPTH:
        raise LocalError(f"{what} nests deeper than {MAX_DEPTH}")
    if value is None or type(value) in (bool, float, str, bytes):
        return
    if type(value) is int:
        if not -(2**63) <= value < 2**64:
            raise LocalError(f"{what}: {value} does not fit in 64 bits")
        return
    if isinstance(value, list | tuple):
        for item in value:
            check_plain(item, what, depth + 1)
        return
    if type(value) is dict:
        for k, item in value.items():
            if type(k) is not str:
                raise LocalError(f"{what}: dict keys must be str, got {type(k).__name__}")
            check_plain(item, what, depth + 1)
        return
    raise LocalError(f"{what} must be plain data (msgpack's types), got {type(value).__name__}")


def plain_copy(value: Any) -> Any:
    """A copy of plain data sharing no list or dict with ``value``: what a
    register stores and what it hands back, so the application's later
    changes to either never reach the replicated state."""
    kind = type(value)
    if kind is list or kind is tuple:
        return [plain_copy(item) for item in value]
    if kind is dict:
        return {k: plain_copy(item) for k, item in value.items()}
    return value


def key_order(key: Any) -> tuple[int, Any]:
    """Sort keys of mixed types deterministically: ints, then str, then bytes."""
    return ({int: 0, str: 1, bytes: 2}[type(key)], key)


class Writer:
    """Encodes one state: collects the writer table while dots are written."""

    __slots__ = ("index",)

    def __init__(self, context: Context) -> None:
        # A store holds only dots its context has seen: the context names all.
        names = set(context.vv) | {r for r, _ in context.cloud}
        self.index = {name: i for i, name in enumerate(sorted(names))}

    def names(self) -> list[str]:
        return list(self.index)

    def dots(self, dots: Any) -> list[int]:
        index = self.index
        out: list[int] = []
        for r, n in sorted(dots):
            out += (index[r], n)
        return out

    def context(self, context: Context) -> list[list[int]]:
        """``[vector, cloud]``: the cloud as runs ``[writer, first, count]``,
        since a delta's context is mostly runs of one writer's dots."""
        index = self.index
        vector: list[int] = []
        for r, top in sorted(context.vv.items()):
            vector += (index[r], top)
        runs: list[int] = []
        last: Dot | None = None
        for dot in sorted(context.cloud):
            if last is not None and dot[0] == last[0] and dot[1] == last[1] + 1:
                runs[-1] += 1
            else:
                runs += (index[dot[0]], dot[1], 1)
            last = dot
        return [vector, runs]

    def columns(self, keyed: list[tuple[Any, list[Dot]]]) -> list[list[Any]]:
        """Keys with their dots as columns ``[keys, counts, writers, steps]``:
        ``counts`` empty when every key has one dot, and each counter as its
        step from the same writer's previous one, so a set built in order
        costs about a byte a dot beyond its key."""
        index = self.index
        keys, counts, writers, steps = [], [], [], []
        last: dict[int, int] = {}
        for key, dots in keyed:
            keys.append(key)
            counts.append(len(dots))
            for r, n in dots:
                w = index[r]
                writers.append(w)
                steps.append(n - last.get(w, 0))
                last[w] = n
        if all(c == 1 for c in counts):
            counts = []
        return [keys, counts, writers, steps]


def _fail(what: str) -> WireError:
    return WireError(WireReason.SCHEMA, what)


class Reader:
    """Decodes one state, checking it as it goes."""

    __slots__ = ("held", "names")

    def __init__(self, raw: object, what: str) -> None:
        if not isinstance(raw, list | tuple) or len(raw) != 4:
            raise _fail(f"{what}: expected [writers, vector, cloud, store]")
        names = raw[0]
        if not isinstance(names, list | tuple) or not all(
            type(n) is str and 0 < len(n) <= MAX_WRITER for n in names
        ):
            raise _fail(f"{what}: writers must be non-empty strings")
        if len(set(names)) != len(names):
            raise _fail(f"{what}: a writer is listed twice")
        self.names: list[str] = list(names)
        self.held: set[Dot] = set()

    def ints(self, raw: object, what: str) -> list[int]:
        if not isinstance(raw, list | tuple) or len(raw) % 2:
            raise _fail(f"{what}: expected a flat array of [writer, counter] pairs")
        for value in raw:
            if type(value) is not int:
                raise _fail(f"{what}: expected integers")
        return list(raw)

    def dots(self, raw: object, what: str) -> list[Dot]:
        flat = self.ints(raw, what)
        names = self.names
        out: list[Dot] = []
        for i in range(0, len(flat), 2):
            w, n = flat[i], flat[i + 1]
            if not 0 <= w < len(names) or not 1 <= n <= MAX_COUNTER:
                raise _fail(f"{what}: dot [{w}, {n}] out of range")
            out.append((names[w], n))
        return out

    def hold(self, dots: list[Dot], what: str) -> list[Dot]:
        """Note dots a store holds: each once."""
        held = self.held
        for dot in dots:
            if dot in held:
                raise _fail(f"{what}: dot {dot} is held twice")
            held.add(dot)
        return dots

    def context(self, raw: object) -> Context:
        assert isinstance(raw, list | tuple)
        vector = self.ints(raw[1], "vector")
        names = self.names
        vv: dict[str, int] = {}
        for i in range(0, len(vector), 2):
            w, top = vector[i], vector[i + 1]
            if not 0 <= w < len(names) or not 0 <= top <= MAX_COUNTER or names[w] in vv:
                raise _fail(f"vector entry [{w}, {top}] out of range or repeated")
            vv[names[w]] = top
        runs = raw[2]
        if not isinstance(runs, list | tuple) or len(runs) % 3:
            raise _fail("cloud: expected [writer, first, count] runs")
        cloud: list[Dot] = []
        for i in range(0, len(runs), 3):
            w, first, count = runs[i : i + 3]
            if (
                type(w) is not int
                or type(first) is not int
                or type(count) is not int
                or not 0 <= w < len(names)
                or first < 1
                or not 1 <= count <= MAX_CLOUD - len(cloud)
                or first + count - 1 > MAX_COUNTER
            ):
                raise _fail(f"cloud run [{w}, {first}, {count}] out of range or too long")
            name = names[w]
            cloud += ((name, n) for n in range(first, first + count))
        return Context(vv, cloud)

    def columns(self, raw: object, what: str) -> list[tuple[Any, list[Dot]]]:
        """Undo :meth:`Writer.columns`, holding every dot."""
        if not isinstance(raw, list | tuple) or len(raw) != 4:
            raise _fail(f"{what}: expected [keys, counts, writers, steps]")
        keys, counts, writers, steps = raw
        if not all(isinstance(c, list | tuple) for c in raw):
            raise _fail(f"{what}: every column must be an array")
        if {*map(type, keys)} - {str, bytes, int} or len(set(keys)) != len(keys):
            raise _fail(f"{what}: keys must be distinct str, bytes or int")
        if not counts:
            counts = [1] * len(keys)
        if (
            len(counts) != len(keys)
            or any(type(c) is not int or c < 1 for c in counts)
            or sum(counts) != len(writers)
            or len(writers) != len(steps)
        ):
            raise _fail(f"{what}: the columns' lengths disagree")
        names = self.names
        last: dict[int, int] = {}
        out: list[tuple[Any, list[Dot]]] = []
        at = 0
        for key, count in zip(keys, counts, strict=True):
            dots: list[Dot] = []
            for w, step in zip(writers[at : at + count], steps[at : at + count], strict=True):
                if type(w) is not int or type(step) is not int or not 0 <= w < len(names):
                    raise _fail(f"{what}: a dot's writer or step is not a valid int")
                n = last.get(w, 0) + step
                if not 1 <= n <= MAX_COUNTER:
                    raise _fail(f"{what}: counter {n} out of range")
                last[w] = n
                dots.append((names[w], n))
            at += count
            out.append((key, self.hold(dots, what)))
        return out

    def pairs(self, raw: object, what: str) -> list[tuple[Any, Any]]:
        if not isinstance(raw, list | tuple):
            raise _fail(f"{what}: expected an array of [key, value]")
        out = []
        for item in raw:
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise _fail(f"{what}: expected [key, value]")
            key = item[0]
            if type(key) not in (str, bytes, int):
                raise _fail(f"{what}: a key must be str, bytes or int")
            out.append((key, item[1]))
        if len({k for k, _ in out}) != len(out):
            raise _fail(f"{what}: a key is repeated")
        return out

    def check_context(self, context: Context, what: str) -> None:
        for dot in self.held:
            if dot not in context:
                raise _fail(f"{what}: holds {dot}, which its context has not seen")
