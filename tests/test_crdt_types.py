"""The delta-state CRDTs: their semantics, and the shared laws on every type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossamer.clocks import CausalContext, VersionVector
from gossamer.clocks import Dot as ClockDot
from gossamer.crdt.dots import Context, DotMap, DotSet
from gossamer.crdt.types import (
    AWSet,
    GCounter,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    RWSet,
    replica_id,
)
from gossamer.errors import LocalError, WireError
from gossamer.testing.crdt import check_crdt, check_join_laws, check_model
from gossamer.wire import Message, Registry

ELEMENTS = st.sampled_from(["x", "y", "z"])
A, B = "a@1", "b@1"


def op(name: str, *args: Any) -> Any:
    return lambda state, replica: getattr(state, name)(replica, *args)


def plain(name: str, *args: Any) -> Any:
    return lambda state, replica: getattr(state, name)(*args)


SET_OPS = st.one_of(
    ELEMENTS.map(lambda e: op("add", e)),
    ELEMENTS.map(lambda e: plain("remove", e)),
    st.just(plain("clear")),
)
RWSET_OPS = st.one_of(ELEMENTS.map(lambda e: op("add", e)), ELEMENTS.map(lambda e: op("remove", e)))
REGISTER_OPS = st.one_of(st.integers(0, 3).map(lambda v: op("write", v)), st.just(plain("clear")))
GCOUNTER_OPS = st.one_of(
    st.integers(0, 5).map(lambda n: op("increment", n)), st.just(plain("reset"))
)
PNCOUNTER_OPS = st.one_of(
    st.integers(-5, 5).map(lambda n: op("increment", n)), st.just(plain("reset"))
)
SetMap = ORMap.of(AWSet)
CounterMap = ORMap.of(PNCounter)
MapOfMaps = ORMap.of(ORMap.of(MVRegister))
MAP_OPS = st.one_of(
    st.tuples(ELEMENTS, ELEMENTS).map(
        lambda ke: lambda state, r: state.update(ke[0], lambda v: v.add(r, ke[1]))
    ),
    st.tuples(ELEMENTS, ELEMENTS).map(
        lambda ke: lambda state, r: state.update(ke[0], lambda v: v.remove(ke[1]))
    ),
    ELEMENTS.map(lambda k: plain("remove", k)),
)
COUNTER_MAP_OPS = st.one_of(
    st.tuples(ELEMENTS, st.integers(-3, 3)).map(
        lambda kn: lambda state, r: state.update(kn[0], lambda v: v.increment(r, kn[1]))
    ),
    ELEMENTS.map(lambda k: plain("remove", k)),
)
NESTED_OPS = st.one_of(
    st.tuples(ELEMENTS, ELEMENTS, st.integers(0, 2)).map(
        lambda t: (
            lambda state, r: state.update(
                t[0], lambda inner: inner.update(t[1], lambda reg: reg.write(r, t[2]))
            )
        )
    ),
    st.tuples(ELEMENTS, ELEMENTS).map(
        lambda t: lambda state, r: state.update(t[0], lambda inner: inner.remove(t[1]))
    ),
    ELEMENTS.map(lambda k: plain("remove", k)),
)


EVERY_TYPE = pytest.mark.parametrize(
    ("new", "operations"),
    [
        (AWSet, SET_OPS),
        (RWSet, RWSET_OPS),
        (MVRegister, REGISTER_OPS),
        (LWWRegister, REGISTER_OPS),
        (GCounter, GCOUNTER_OPS),
        (PNCounter, PNCOUNTER_OPS),
        (SetMap, MAP_OPS),
        (CounterMap, COUNTER_MAP_OPS),
        (MapOfMaps, NESTED_OPS),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
"""Every built-in type with a strategy of its operations."""


@EVERY_TYPE
def test_every_type_keeps_the_laws(new: Any, operations: Any) -> None:
    check_crdt(new, operations, max_examples=60)


class _DoubleCounter:
    """Broken on purpose: a join that adds instead of taking the maximum."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def increment(self, replica: str) -> _DoubleCounter:
        self.counts[replica] = self.counts.get(replica, 0) + 1
        delta = _DoubleCounter()
        delta.counts = {replica: self.counts[replica]}
        return delta

    def join(self, other: _DoubleCounter) -> None:
        for r, n in other.counts.items():
            self.counts[r] = self.counts.get(r, 0) + n

    def copy(self) -> _DoubleCounter:
        out = _DoubleCounter()
        out.counts = dict(self.counts)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DoubleCounter) and self.counts == other.counts

    __hash__ = None  # type: ignore[assignment]


def test_the_laws_catch_a_broken_type() -> None:
    with pytest.raises(AssertionError, match="idempotent"):
        check_join_laws(_DoubleCounter, st.just(lambda s, r: s.increment(r)), max_examples=50)


# ------------------------------------------------------------------ semantics


def synced(*states: Any) -> None:
    """Join every state into every other."""
    snapshot = [s.copy() for s in states]
    for state in states:
        for other in snapshot:
            state.join(other.copy())


def test_add_wins_over_a_concurrent_remove() -> None:
    a, b = AWSet[str](), AWSet[str]()
    a.add(A, "x")
    synced(a, b)
    b.remove("x")
    a.add(A, "x")  # concurrent with the remove
    synced(a, b)
    assert a.value() == b.value() == {"x"}
    b.remove("x")
    synced(a, b)
    assert a.value() == set()


def test_remove_wins_over_a_concurrent_add_and_an_add_that_saw_it_restores() -> None:
    a, b = RWSet[str](), RWSet[str]()
    a.add(A, "x")
    synced(a, b)
    b.remove(B, "x")
    a.add(A, "x")
    synced(a, b)
    assert a.value() == b.value() == set()
    a.add(A, "x")
    synced(a, b)
    assert "x" in b


def test_a_multi_value_register_keeps_concurrent_writes_until_one_overwrites() -> None:
    a, b = MVRegister(), MVRegister()
    a.write(A, "left")
    b.write(B, "right")
    synced(a, b)
    assert a.value() == ["left", "right"]
    b.write(B, "both")
    synced(a, b)
    assert a.value() == b.value() == ["both"]


def test_last_writer_wins_by_lamport_time_then_writer() -> None:
    a, b = LWWRegister(), LWWRegister()
    a.write(A, "first")
    b.write(B, "concurrent")  # same time 1: the greater writer wins
    synced(a, b)
    assert a.value() == b.value() == "concurrent"
    a.write(A, "later")  # time 2, after both: wins whatever the writer
    synced(a, b)
    assert b.value() == "later" and b.time() == 2


def test_counters_count_and_reset() -> None:
    a, b = PNCounter(), PNCounter()
    a.increment(A, 5)
    b.decrement(B, 2)
    synced(a, b)
    assert a.value() == b.value() == 3
    a.increment(A)
    synced(a, b)
    assert b.value() == 4 and len(b.store.f) == 2  # one dot per writer
    g = GCounter()
    g.increment(A, 2)
    with pytest.raises(LocalError, match="cannot go down"):
        g.increment(A, -1)
    g.reset()
    assert g.value() == 0


def test_a_map_removes_what_the_remover_saw_and_keeps_concurrent_updates() -> None:
    a, b = SetMap(), SetMap()
    a.update("k", lambda s: s.add(A, "x"))
    synced(a, b)
    b.remove("k")
    a.update("k", lambda s: s.add(A, "y"))  # concurrent with the remove
    synced(a, b)
    assert a.value() == b.value() == {"k": {"y"}}
    with pytest.raises(LocalError, match="must return the value's delta"):
        a.update("k", lambda s: None)  # type: ignore[arg-type,return-value]


def test_nested_maps_merge_per_key() -> None:
    a, b = MapOfMaps(), MapOfMaps()
    a.update("u", lambda m: m.update("name", lambda r: r.write(A, "ann")))
    b.update("u", lambda m: m.update("age", lambda r: r.write(B, 7)))
    synced(a, b)
    assert a.value() == b.value() == {"u": {"name": ["ann"], "age": [7]}}


def test_a_delta_is_small() -> None:
    s = AWSet[int]()
    for i in range(1000):
        s.add(A, i)
    delta = s.add(A, 5)
    assert list(delta.store.m) == [5] and len(delta.context) == 2


def test_replica_ids_carry_the_boot_epoch() -> None:
    assert replica_id("n1", 3) == "n1@3"
    with pytest.raises(LocalError):
        replica_id("bad@name", 1)
    with pytest.raises(LocalError):
        replica_id("n1", -1)
    with pytest.raises(LocalError, match="at most 256"):
        replica_id("n" * 300, 1)
    # A restarted node's writer id is new, so its first dot is not its old one's.
    s = AWSet[str]()
    s.add(replica_id("n1", 1), "x")
    assert s.context.next_dot(replica_id("n1", 2)) == ("n1@2", 1)


# ------------------------------------------------------------------ stores


DOTS = st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 6))


@given(st.lists(DOTS), st.lists(DOTS))
def test_a_context_is_the_set_of_its_dots_and_matches_the_clock_form(
    first: list[tuple[str, int]], second: list[tuple[str, int]]
) -> None:
    c = Context.of(first)
    assert set(c) == set(first) and len(c) == len(set(first))
    assert all(c.vv.get(r, 0) + 1 != n for r, n in c.cloud)  # compact
    d = Context.of(second)
    c.join(d)
    assert set(c) == set(first) | set(second)
    clock = c.to_causal_context()
    assert all(clock.contains(ClockDot(r, n)) for r, n in c)
    assert Context.from_causal_context(clock) == c
    assert Context.from_causal_context(
        CausalContext(VersionVector({"a": 2}), [ClockDot("a", 4)])
    ) == Context.of([("a", 1), ("a", 2), ("a", 4)])


def _reference(
    m1: dict[str, set[tuple[str, int]]],
    c1: set[tuple[str, int]],
    m2: dict[str, set[tuple[str, int]]],
    c2: set[tuple[str, int]],
) -> dict[str, set[tuple[str, int]]]:
    """The report's join of two DotMap[K, DotSet], written out."""
    out = {}
    for k in set(m1) | set(m2):
        s1, s2 = m1.get(k, set()), m2.get(k, set())
        s = (s1 & s2) | (s1 - c2) | (s2 - c1)
        if s:
            out[k] = s
    return out


def _by_key(dots: set[tuple[str, int]]) -> dict[str, set[tuple[str, int]]]:
    """Dots under keys, a dot under one key only (it names one event)."""
    out: dict[str, set[tuple[str, int]]] = {}
    for dot in dots:
        out.setdefault("pqr"[(dot[1] + len(dot[0])) % 3], set()).add(dot)
    return out


@given(st.sets(DOTS), st.sets(DOTS), st.sets(DOTS), st.sets(DOTS))
def test_the_dot_map_join_is_the_reports(
    held1: set[tuple[str, int]],
    extra1: set[tuple[str, int]],
    held2: set[tuple[str, int]],
    extra2: set[tuple[str, int]],
) -> None:
    m1, m2 = _by_key(held1), _by_key(held2)
    c1, c2 = extra1 | held1, extra2 | held2
    store: DotMap[str, DotSet] = DotMap(DotSet, {k: DotSet(v) for k, v in m1.items()})
    other: DotMap[str, DotSet] = DotMap(DotSet, {k: DotSet(v) for k, v in m2.items()})
    store.join(Context.of(c1), other, Context.of(c2))
    assert {k: v.s for k, v in store.m.items()} == _reference(m1, c1, m2, c2)
    assert set(store.index) == {d for v in store.m.values() for d in v.s}


# ------------------------------------------------------------------ wire

WIRE = Registry("crdt-tests")


@WIRE.message(1)
@dataclass(frozen=True, slots=True)
class Carry(Message):
    members: AWSet  # type: ignore[type-arg]
    scores: CounterMap  # type: ignore[valid-type]


def test_states_travel_in_messages_compactly() -> None:
    members = AWSet[str]()
    for i in range(1000):
        members.add(A, f"m{i}")
    scores = CounterMap()
    scores.update("k", lambda c: c.increment(B, 3))
    data = WIRE.encode(Carry(members, scores))
    back = WIRE.decode(data, max_bytes=1 << 20)
    assert isinstance(back, Carry) and back.members == members and back.scores == scores
    # One writer id for a thousand dots: the name (3-5 bytes) and its dot
    # (index and counter) make about 10 bytes an element.
    assert len(data) < 11_000
    assert members.to_wire()[:3] == [[A], [0, 1000], []]


NONE: list[list[object]] = [[], [], [], []]


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [[A], [], [], [["x"], [], [1], [1]]],  # writer index 1 of a table of one
        [[A], [0, 1], [], [["x"], [], [0], [2]]],  # holds a dot its context has not seen
        [[A], [0, 2], [], [["x", "y"], [], [0, 0], [1, 0]]],  # one dot under two keys
        [[A], [0, 1], [], [["x"], [0], [], []]],  # an empty set under a key
        [[A, A], [], [], NONE],  # a writer listed twice
        [[A], [0, 1], [], [[["list"]], [], [0], [1]]],  # a key not str, bytes or int
        [[A], [0, 1, 0, 2], [], NONE],  # a repeated vector entry
        [[A], [0, 0.5], [], NONE],
        [[A], [], [0, 1, 2**40], NONE],  # a cloud run too long to hold
        [[A], [0, 1], [], [["x"], [], [0], [-5]]],  # a counter below 1
        [[A], [0, 1], [], [["x"], [], [0], []]],  # columns of different lengths
    ],
)
def test_a_peers_garbage_is_a_wire_error(raw: object) -> None:
    with pytest.raises(WireError):
        AWSet.from_wire(raw)


def test_a_callers_bad_value_is_a_local_error_at_once() -> None:
    with pytest.raises(LocalError, match="str, bytes or 64-bit int"):
        AWSet[Any]().add(A, ("a", "tuple"))
    with pytest.raises(LocalError, match="plain data"):
        MVRegister().write(A, object())
    with pytest.raises(LocalError, match="dict keys must be str"):
        LWWRegister().write(A, {1: "x"})
    with pytest.raises(LocalError, match="map's key"):
        SetMap().update(1.5, lambda s: s.add(A, "x"))
    with pytest.raises(LocalError, match="writer id"):
        AWSet[str]().add("", "x")
    with pytest.raises(LocalError, match="cannot join"):
        AWSet[str]().join(RWSet[str]())  # type: ignore[arg-type]


# ------------------------------------------------------------------ meaning

SET_STEPS = st.tuples(st.sampled_from(["add", "remove"]), ELEMENTS)


def set_model(value: frozenset[str], step: tuple[str, str]) -> frozenset[str]:
    kind, e = step
    return value | {e} if kind == "add" else value - {e}


def read_set(state: Any) -> frozenset[str]:
    return frozenset(state.value())


def set_apply(state: Any, replica: str, step: tuple[str, str]) -> Any:
    kind, e = step
    if kind == "add":
        return state.add(replica, e)
    return state.remove(replica, e) if isinstance(state, RWSet) else state.remove(e)


@pytest.mark.parametrize("kind", [AWSet, RWSet], ids=lambda k: k.__name__)
def test_sets_mean_sets(kind: Any) -> None:
    check_model(kind, SET_STEPS, set_apply, read_set, frozenset(), set_model)


def test_counters_and_registers_mean_what_they_say() -> None:
    check_model(
        PNCounter,
        st.integers(-5, 5),
        lambda s, r, n: s.increment(r, n),
        lambda s: s.value(),
        0,
        lambda v, n: v + n,
    )
    check_model(
        LWWRegister,
        st.integers(0, 9),
        lambda s, r, v: s.write(r, v),
        lambda s: s.value(),
        None,
        lambda _, v: v,
    )
    check_model(
        CounterMap,
        st.tuples(ELEMENTS, st.integers(-3, 3)),
        lambda s, r, kn: s.update(kn[0], lambda c: c.increment(r, kn[1])),
        lambda s: s.value(),
        {},
        lambda v, kn: {**v, kn[0]: v.get(kn[0], 0) + kn[1]},
    )


class _ForgetfulSet(AWSet[str]):
    """Broken on purpose: its remove does nothing, which every lattice law allows."""

    __slots__ = ()

    def remove(self, element: Any) -> Any:
        return self._delta_at(element, None, [])


def test_the_model_catches_what_the_lattice_laws_cannot() -> None:
    check_join_laws(_ForgetfulSet, SET_OPS, max_examples=30)  # passes: a lattice still
    with pytest.raises(AssertionError, match="reads"):
        check_model(
            _ForgetfulSet,
            SET_STEPS,
            set_apply,
            lambda s: frozenset(s.value()),
            frozenset(),
            set_model,
        )


def test_a_register_shares_no_list_or_dict_with_the_application() -> None:
    for kind in (MVRegister, LWWRegister):
        reg = kind()
        value = {"tags": ["a", "b"], "n": 1}
        reg.write(A, value)
        value["tags"].append("c")  # the caller changes what it wrote
        read = reg.value()[0] if kind is MVRegister else reg.value()
        assert read == {"tags": ["a", "b"], "n": 1}
        read["tags"].clear()  # and what it read
        again = reg.value()[0] if kind is MVRegister else reg.value()
        assert again == {"tags": ["a", "b"], "n": 1}
