"""Tests for gossamer.clocks: tables for the rules, hypothesis for the laws and the decoders."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.clocks import (
    MAX_COUNTER,
    CausalContext,
    ClockOverflow,
    Dot,
    LamportClock,
    LamportTimestamp,
    Ordering,
    VersionVector,
)
from gossamer.clocks import dots as dots_module
from gossamer.clocks import vv as vv_module
from gossamer.errors import InvalidMessage, LocalError, WireError, WireReason
from gossamer.testing.clocks import (
    causal_contexts,
    counters,
    dots,
    lamport_timestamps,
    node_names,
    version_vectors,
)

LAWS = settings(max_examples=120, deadline=None)
FUZZ = settings(max_examples=300, deadline=None)

BEFORE, AFTER, EQUAL, CONCURRENT = (
    Ordering.BEFORE,
    Ordering.AFTER,
    Ordering.EQUAL,
    Ordering.CONCURRENT,
)
MIRROR = {BEFORE: AFTER, AFTER: BEFORE, EQUAL: EQUAL, CONCURRENT: CONCURRENT}


def vv(**entries: int) -> VersionVector:
    return VersionVector(entries)


# -- Lamport -------------------------------------------------------------------


def test_lamport_tick_counts_from_one() -> None:
    clock = LamportClock()
    assert clock.value == 0
    assert [clock.tick() for _ in range(3)] == [1, 2, 3]
    assert clock.value == 3


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [
        (0, 0, 1),
        (0, 5, 6),
        (7, 3, 8),
        (4, 4, 5),
        (MAX_COUNTER - 1, 0, MAX_COUNTER),
    ],
)
def test_lamport_observe_moves_past_both(local: int, remote: int, expected: int) -> None:
    clock = LamportClock(local)
    assert clock.observe(remote) == expected
    assert clock.value == expected


@pytest.mark.parametrize("remote", [-1, True, 1.5, "3", None, 2**63])
def test_lamport_observe_rejects_bad_input_at_once(remote: Any) -> None:
    clock = LamportClock(4)
    with pytest.raises(InvalidMessage):
        clock.observe(remote)
    assert clock.value == 4


def test_lamport_clock_overflow_is_a_local_error() -> None:
    with pytest.raises(ClockOverflow):
        LamportClock(MAX_COUNTER).tick()
    with pytest.raises(ClockOverflow):
        LamportClock().observe(MAX_COUNTER)
    assert issubclass(ClockOverflow, LocalError)


def test_lamport_timestamps_order_by_counter_then_node() -> None:
    stamps = [
        LamportTimestamp(2, "b"),
        LamportTimestamp(1, "z"),
        LamportTimestamp(2, "a"),
        LamportTimestamp(10, "a"),
    ]
    assert sorted(stamps) == [
        LamportTimestamp(1, "z"),
        LamportTimestamp(2, "a"),
        LamportTimestamp(2, "b"),
        LamportTimestamp(10, "a"),
    ]
    assert max(stamps) == LamportTimestamp(10, "a")


# -- version vectors: tables ---------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ({}, {}, EQUAL),
        ({"a": 1}, {}, AFTER),
        ({}, {"a": 1}, BEFORE),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, EQUAL),
        ({"a": 1}, {"a": 2}, BEFORE),
        ({"a": 2}, {"a": 1}, AFTER),
        ({"a": 1}, {"b": 1}, CONCURRENT),
        ({"a": 2, "b": 1}, {"a": 1, "b": 2}, CONCURRENT),
        # A missing entry counts as 0.
        ({"a": 1}, {"a": 1, "b": 1}, BEFORE),
        ({"a": 2}, {"a": 1, "b": 1}, CONCURRENT),
        # Same size, different nodes: each has an event the other lacks.
        ({"a": 1, "b": 1}, {"a": 1, "c": 1}, CONCURRENT),
        # Zero entries are dropped, so they change nothing.
        ({"a": 1, "b": 0}, {"a": 1}, EQUAL),
        ({"a": 0}, {}, EQUAL),
    ],
)
def test_compare_table(left: dict[str, int], right: dict[str, int], expected: Ordering) -> None:
    a, b = VersionVector(left), VersionVector(right)
    assert a.compare(b) is expected
    assert b.compare(a) is MIRROR[expected]
    assert a.dominates(b) == (expected in (EQUAL, AFTER))
    assert b.dominates(a) == (expected in (EQUAL, BEFORE))


def test_vector_reading() -> None:
    v = VersionVector({"b": 2, "a": 1, "c": 0})
    assert v.get("a") == 1
    assert v.get("c") == 0
    assert v.get("zzz") == 0
    assert len(v) == 2
    assert "a" in v
    assert "c" not in v
    assert v.nodes() == ("a", "b")
    assert v.items() == (("a", 1), ("b", 2))
    assert v == vv(a=1, b=2)
    assert VersionVector({"a": 0}) == VersionVector()
    assert repr(v) == "VersionVector({'a': 1, 'b': 2})"


def test_vector_operations_return_new_values() -> None:
    v = vv(a=1)
    w = v.increment("a").increment("b")
    assert v == vv(a=1)
    assert w == vv(a=2, b=1)
    assert v.merge(vv(b=3)) == vv(a=1, b=3)
    assert v == vv(a=1)


def test_vector_is_immutable_and_never_aliased() -> None:
    source = {"a": 1}
    v = VersionVector(source)
    source["a"] = 5
    assert v.get("a") == 1
    wire = v.to_wire()
    wire["a"] = 9
    assert v.get("a") == 1
    with pytest.raises(AttributeError):
        v._entries = {}
    with pytest.raises(AttributeError):
        del v._entries
    assert copy.deepcopy(v) == v
    assert pickle.loads(pickle.dumps(v)) == v


def test_vector_increment_overflow() -> None:
    with pytest.raises(ClockOverflow):
        vv(a=MAX_COUNTER).increment("a")


# -- causal contexts: tables ---------------------------------------------------


def test_constructor_drops_covered_dots_but_does_not_compact() -> None:
    context = CausalContext(vv(a=3), [Dot("a", 2), Dot("a", 3), Dot("a", 4), Dot("b", 2)])
    assert context.vector == vv(a=3)
    assert context.cloud == {Dot("a", 4), Dot("b", 2)}
    assert not context.is_compact


def test_compact_folds_gap_closing_dots() -> None:
    cloud = [Dot("a", 2), Dot("a", 3), Dot("a", 5), Dot("b", 1), Dot("b", 3), Dot("c", 2)]
    context = CausalContext(vv(a=1), cloud)
    compacted = context.compact()
    assert compacted.vector == vv(a=3, b=1)
    assert compacted.cloud == {Dot("a", 5), Dot("b", 3), Dot("c", 2)}
    assert compacted.is_compact
    assert compacted.compact() is compacted
    assert context == compacted
    assert hash(context) == hash(compacted)
    assert context.to_wire() == compacted.to_wire()


@pytest.mark.parametrize(
    ("vector", "cloud", "node", "expected_dot", "expected"),
    [
        ({}, [], "a", Dot("a", 1), CausalContext(vv(a=1))),
        ({"a": 3}, [], "a", Dot("a", 4), CausalContext(vv(a=4))),
        ({"a": 3}, [], "b", Dot("b", 1), CausalContext(vv(a=3, b=1))),
        # A gap stays open: the new dot lands in the cloud past the largest one.
        (
            {"a": 2},
            [Dot("a", 5)],
            "a",
            Dot("a", 6),
            CausalContext(vv(a=2), [Dot("a", 5), Dot("a", 6)]),
        ),
        # An uncompacted context still yields the next free counter.
        ({"a": 2}, [Dot("a", 3)], "a", Dot("a", 4), CausalContext(vv(a=4))),
    ],
)
def test_next_dot_table(
    vector: dict[str, int],
    cloud: list[Dot],
    node: str,
    expected_dot: Dot,
    expected: CausalContext,
) -> None:
    context = CausalContext(VersionVector(vector), cloud)
    dot, after = context.next_dot(node)
    assert dot == expected_dot
    assert after == expected
    assert after.is_compact
    assert not context.contains(dot)
    assert after.contains(dot)


def test_context_is_immutable() -> None:
    context = CausalContext(vv(a=1), [Dot("a", 3)])
    with pytest.raises(AttributeError):
        context._cloud = frozenset()
    with pytest.raises(AttributeError):
        Dot("a", 1).counter = 2  # type: ignore[misc]
    assert copy.deepcopy(context) == context
    assert pickle.loads(pickle.dumps(context)) == context
    assert Dot("a", 1) in context
    assert "a" not in context


# -- caller errors ----------------------------------------------------------------

_CONTEXT = CausalContext(vv(a=1))

CALLER_ERRORS: list[tuple[str, Callable[[], object]]] = [
    ("negative counter", lambda: VersionVector({"a": -1})),
    ("bool counter", lambda: VersionVector({"a": True})),
    ("float counter", lambda: VersionVector({"a": 1.0})),  # type: ignore[dict-item]
    ("counter too big", lambda: VersionVector({"a": 2**63})),
    ("non-str node", lambda: VersionVector({1: 1})),  # type: ignore[dict-item]
    ("empty node", lambda: VersionVector({"": 1})),
    ("long node", lambda: VersionVector({"x" * 129: 1})),
    ("not a mapping", lambda: VersionVector([("a", 1)])),  # type: ignore[arg-type]
    ("increment non-str", lambda: vv().increment(3)),  # type: ignore[arg-type]
    ("merge a dict", lambda: vv().merge({"a": 1})),  # type: ignore[arg-type]
    ("compare None", lambda: vv().compare(None)),  # type: ignore[arg-type]
    ("dominates a dict", lambda: vv().dominates({})),  # type: ignore[arg-type]
    ("negative clock", lambda: LamportClock(-1)),
    ("zero timestamp", lambda: LamportTimestamp(0, "a")),
    ("timestamp bool", lambda: LamportTimestamp(True, "a")),
    ("timestamp empty node", lambda: LamportTimestamp(1, "")),
    ("zero dot", lambda: Dot("a", 0)),
    ("bool dot", lambda: Dot("a", True)),
    ("dot non-str node", lambda: Dot(1, 1)),  # type: ignore[arg-type]
    ("dot args swapped", lambda: Dot(1, "a")),  # type: ignore[arg-type]
    ("context from dict", lambda: CausalContext({"a": 1})),  # type: ignore[arg-type]
    ("cloud of tuples", lambda: CausalContext(cloud=[("a", 1)])),  # type: ignore[list-item]
    ("cloud is a str", lambda: CausalContext(cloud="ab")),  # type: ignore[arg-type]
    ("cloud not iterable", lambda: CausalContext(cloud=3)),  # type: ignore[arg-type]
    ("add a tuple", lambda: _CONTEXT.add(("a", 1))),  # type: ignore[arg-type]
    ("merge a vector", lambda: _CONTEXT.merge(vv())),  # type: ignore[arg-type]
    ("next_dot empty node", lambda: _CONTEXT.next_dot("")),
    ("contains None", lambda: _CONTEXT.contains(None)),  # type: ignore[arg-type]
    ("max_counter non-str", lambda: _CONTEXT.max_counter(b"a")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    "build", [build for _, build in CALLER_ERRORS], ids=[n for n, _ in CALLER_ERRORS]
)
def test_caller_errors_raise_at_once(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidMessage) as info:
        build()
    assert isinstance(info.value, LocalError)
    assert str(info.value)


# -- version vectors: laws ----------------------------------------------------------


@LAWS
@given(version_vectors(), version_vectors())
def test_vv_merge_commutative(a: VersionVector, b: VersionVector) -> None:
    assert a.merge(b) == b.merge(a)


@LAWS
@given(version_vectors(), version_vectors(), version_vectors())
def test_vv_merge_associative(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@LAWS
@given(version_vectors())
def test_vv_merge_idempotent(a: VersionVector) -> None:
    assert a.merge(a) == a


@LAWS
@given(version_vectors(), version_vectors())
def test_vv_merge_is_pointwise_max_and_upper_bound(a: VersionVector, b: VersionVector) -> None:
    merged = a.merge(b)
    for node in set(a.nodes()) | set(b.nodes()):
        assert merged.get(node) == max(a.get(node), b.get(node))
    assert set(merged.nodes()) == set(a.nodes()) | set(b.nodes())
    assert merged.dominates(a)
    assert merged.dominates(b)


@LAWS
@given(version_vectors(), version_vectors())
def test_vv_compare_agrees_with_merge(a: VersionVector, b: VersionVector) -> None:
    order = a.compare(b)
    merged = a.merge(b)
    assert (order is EQUAL) == (a == b)
    assert (order is BEFORE) == (merged == b and a != b)
    assert (order is AFTER) == (merged == a and a != b)
    assert (order is CONCURRENT) == (merged not in (a, b))
    assert b.compare(a) is MIRROR[order]


@LAWS
@given(version_vectors(), version_vectors())
def test_vv_dominates_agrees_with_compare(a: VersionVector, b: VersionVector) -> None:
    assert a.dominates(b) == (a.compare(b) in (EQUAL, AFTER))


@LAWS
@given(version_vectors(), node_names())
def test_vv_increment_strictly_advances(a: VersionVector, node: str) -> None:
    if a.get(node) == MAX_COUNTER:
        return
    bumped = a.increment(node)
    assert bumped.compare(a) is AFTER
    assert bumped.get(node) == a.get(node) + 1
    assert all(bumped.get(other) == a.get(other) for other in a.nodes() if other != node)


@LAWS
@given(version_vectors())
def test_vv_value_semantics_ignore_insertion_order(a: VersionVector) -> None:
    rebuilt = VersionVector(dict(reversed(a.items())))
    assert rebuilt == a
    assert hash(rebuilt) == hash(a)
    assert list(rebuilt.to_wire().items()) == list(a.to_wire().items())
    assert list(a.to_wire()) == sorted(a.nodes())


# -- causal contexts: laws ------------------------------------------------------------


def _probe_dots(contexts: Iterable[CausalContext], extra: Iterable[Dot] = ()) -> set[Dot]:
    """Every dot at which containment can change for any of ``contexts``.

    Containment for one node is a step function of the counter that only
    changes at the top of the vector's prefix and around cloud dots, so
    probing 1..16 plus each such point and its neighbours checks exactly the
    same thing as probing every counter up to the largest plus two, without
    walking 2**63 counters when a generated vector holds a huge one.
    """
    points: dict[str, set[int]] = {}
    for context in contexts:
        for node, top in context.vector.items():
            points.setdefault(node, set()).update((top - 1, top, top + 1, top + 2))
        for dot in context.cloud:
            points.setdefault(dot.node, set()).update(
                (dot.counter - 1, dot.counter, dot.counter + 1, dot.counter + 2)
            )
    for dot in extra:
        points.setdefault(dot.node, set()).update((dot.counter - 1, dot.counter, dot.counter + 1))
    return {
        Dot(node, counter)
        for node, counters in points.items()
        for counter in counters | set(range(1, 17))
        if 1 <= counter <= MAX_COUNTER
    }


@LAWS
@given(causal_contexts(), causal_contexts())
def test_cc_merge_commutative(a: CausalContext, b: CausalContext) -> None:
    assert a.merge(b) == b.merge(a)


@LAWS
@given(causal_contexts(), causal_contexts(), causal_contexts())
def test_cc_merge_associative(a: CausalContext, b: CausalContext, c: CausalContext) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@LAWS
@given(causal_contexts())
def test_cc_merge_idempotent(a: CausalContext) -> None:
    assert a.merge(a) == a


@LAWS
@given(causal_contexts())
def test_cc_compaction_never_changes_contained_dots(context: CausalContext) -> None:
    compacted = context.compact()
    assert compacted.is_compact
    assert compacted.compact() is compacted
    for dot in compacted.cloud:
        assert dot.counter > compacted.vector.get(dot.node) + 1
    assert compacted == context
    assert hash(compacted) == hash(context)
    for dot in _probe_dots([context]):
        assert compacted.contains(dot) == context.contains(dot), dot


@LAWS
@given(causal_contexts(compacted=False))
def test_cc_uncompacted_strategy_yields_uncompacted(context: CausalContext) -> None:
    assert not context.is_compact
    assert context.compact().vector != context.vector


@LAWS
@given(causal_contexts(), causal_contexts())
def test_cc_merge_contains_exactly_the_union(a: CausalContext, b: CausalContext) -> None:
    merged = a.merge(b)
    assert merged.is_compact
    for dot in _probe_dots([a, b]):
        assert merged.contains(dot) == (a.contains(dot) or b.contains(dot)), dot


@LAWS
@given(causal_contexts(), dots())
def test_cc_add_then_contains(context: CausalContext, dot: Dot) -> None:
    added = context.add(dot)
    assert added.contains(dot)
    assert added.is_compact
    for probe in _probe_dots([context], [dot]):
        assert added.contains(probe) == (context.contains(probe) or probe == dot), probe


@LAWS
@given(causal_contexts(), node_names())
def test_cc_next_dot_is_fresh_and_added(context: CausalContext, node: str) -> None:
    if context.max_counter(node) == MAX_COUNTER:
        return
    dot, after = context.next_dot(node)
    assert dot.node == node
    assert not context.contains(dot)
    assert after == context.add(dot)
    # Nothing of ``node`` at or past the new counter has been seen yet.
    assert context.max_counter(node) == dot.counter - 1
    beyond = range(dot.counter, min(dot.counter + 3, MAX_COUNTER + 1))
    assert not any(context.contains(Dot(node, c)) for c in beyond)


# -- wire: round trips and determinism ---------------------------------------------------

_ANY_VALUE = st.one_of(
    dots(), lamport_timestamps(), version_vectors(), causal_contexts(), causal_contexts(False)
)


@LAWS
@given(_ANY_VALUE)
def test_wire_round_trip(value: Dot | LamportTimestamp | VersionVector | CausalContext) -> None:
    wire = value.to_wire()
    assert type(value).from_wire(wire) == value
    # Through real msgpack too, where tuples and lists both come back as lists.
    packed = msgpack.packb(wire)
    decoded = type(value).from_wire(msgpack.unpackb(packed))
    assert decoded == value
    assert msgpack.packb(decoded.to_wire()) == packed


@LAWS
@given(causal_contexts(compacted=False))
def test_equal_contexts_encode_identically(context: CausalContext) -> None:
    compacted = context.compact()
    assert context.to_wire() == compacted.to_wire()
    assert msgpack.packb(context.to_wire()) == msgpack.packb(compacted.to_wire())


@LAWS
@given(version_vectors())
def test_equal_vectors_encode_identically(a: VersionVector) -> None:
    rebuilt = VersionVector(dict(reversed(a.items())))
    assert msgpack.packb(rebuilt.to_wire()) == msgpack.packb(a.to_wire())


# -- wire: bad input from a peer ----------------------------------------------------------

DECODERS: list[Callable[[object], object]] = [
    Dot.from_wire,
    LamportTimestamp.from_wire,
    VersionVector.from_wire,
    CausalContext.from_wire,
]

BAD_WIRE: list[tuple[Callable[[object], object], object]] = [
    (VersionVector.from_wire, None),
    (VersionVector.from_wire, [["a", 1]]),
    (VersionVector.from_wire, {"a": 0}),
    (VersionVector.from_wire, {"a": -1}),
    (VersionVector.from_wire, {"a": True}),
    (VersionVector.from_wire, {"a": 1.0}),
    (VersionVector.from_wire, {"a": 2**63}),
    (VersionVector.from_wire, {"a": 10**5000}),
    (VersionVector.from_wire, {b"a": 1}),
    (VersionVector.from_wire, {"": 1}),
    (VersionVector.from_wire, {"x" * 129: 1}),
    (VersionVector.from_wire, {1: 1}),
    (Dot.from_wire, "a1"),
    (Dot.from_wire, ["a"]),
    (Dot.from_wire, ["a", 1, 2]),
    (Dot.from_wire, [1, "a"]),
    (Dot.from_wire, ["a", 0]),
    (Dot.from_wire, {"a": 1}),
    (LamportTimestamp.from_wire, ["a", 1]),
    (LamportTimestamp.from_wire, [0, "a"]),
    (LamportTimestamp.from_wire, [1, "a", 3]),
    (LamportTimestamp.from_wire, [False, "a"]),
    (CausalContext.from_wire, {"a": 1}),
    (CausalContext.from_wire, [{"a": 1}]),
    (CausalContext.from_wire, [[], []]),
    (CausalContext.from_wire, [{}, None]),
    (CausalContext.from_wire, [{}, {"a": 1}]),
    (CausalContext.from_wire, [{}, [["a", 0]]]),
    (CausalContext.from_wire, [{}, [["a"]]]),
    (CausalContext.from_wire, [{"a": 0}, []]),
]


@pytest.mark.parametrize(("decode", "raw"), BAD_WIRE)
def test_bad_wire_table(decode: Callable[[object], object], raw: object) -> None:
    with pytest.raises(WireError) as info:
        decode(raw)
    assert info.value.reason is WireReason.SCHEMA
    assert len(info.value.detail) < 200


def test_wire_tolerates_non_canonical_clouds() -> None:
    raw = [{"a": 1}, [["a", 3], ["a", 2], ["a", 3], ["a", 1]]]
    assert CausalContext.from_wire(raw) == CausalContext(vv(a=3))


def test_wire_size_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vv_module, "MAX_WIRE_ENTRIES", 2)
    monkeypatch.setattr(dots_module, "MAX_WIRE_CLOUD_DOTS", 2)
    assert VersionVector.from_wire({"a": 1, "b": 1}) == vv(a=1, b=1)
    with pytest.raises(WireError):
        VersionVector.from_wire({"a": 1, "b": 1, "c": 1})
    assert CausalContext.from_wire([{}, [["a", 2], ["a", 3]]]).cloud == {Dot("a", 2), Dot("a", 3)}
    with pytest.raises(WireError):
        CausalContext.from_wire([{}, [["a", 2], ["a", 3], ["a", 4]]])


_EDGE_SCALARS = st.one_of(
    st.sampled_from(
        [0, 1, -1, MAX_COUNTER, MAX_COUNTER + 1, -(2**63), 2**64, True, False, "", "x" * 129]
    ),
    # Past 4300 digits even repr() raises, so describing such an int in an
    # error must not call it (and hypothesis must not print it as a constant).
    st.integers(4301, 4400).map(lambda digits: 10**digits),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**80), 2**80),
    _EDGE_SCALARS,
    st.floats(),
    st.text(max_size=140),
    st.binary(max_size=16),
    node_names(),
    counters(),
)
_KEYS = st.one_of(node_names(), st.text(max_size=8), st.binary(max_size=4), st.integers())
WIRE_OBJECTS = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(_KEYS, children, max_size=5),
    ),
    max_leaves=25,
)


def _mutate(data: st.DataObject, value: object) -> object:
    """``value`` with one random change somewhere inside it."""
    if isinstance(value, list) and value and data.draw(st.booleans()):
        items = list(value)
        index = data.draw(st.integers(0, len(items) - 1))
        match data.draw(st.sampled_from(["descend", "delete", "insert"])):
            case "descend":
                items[index] = _mutate(data, items[index])
            case "delete":
                del items[index]
            case _:
                items.insert(index, data.draw(WIRE_OBJECTS))
        return items
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        entries = dict(value)
        key = data.draw(st.sampled_from(list(entries)))
        match data.draw(st.sampled_from(["descend", "delete", "rekey"])):
            case "descend":
                entries[key] = _mutate(data, entries[key])
            case "delete":
                del entries[key]
            case _:
                entries[data.draw(_KEYS)] = entries.pop(key)
        return entries
    return data.draw(st.one_of(_EDGE_SCALARS, WIRE_OBJECTS))


def _decode_or_refuse(decode: Callable[[object], Any], raw: object) -> None:
    try:
        value = decode(raw)
    except WireError:
        return
    # Whatever a decoder accepts must be a value that survives the wire again.
    assert type(value).from_wire(value.to_wire()) == value


@FUZZ
@given(WIRE_OBJECTS)
def test_from_wire_refuses_arbitrary_objects_with_wire_error_only(raw: object) -> None:
    for decode in DECODERS:
        _decode_or_refuse(decode, raw)


@FUZZ
@given(_ANY_VALUE, st.data())
def test_from_wire_refuses_mutated_forms_with_wire_error_only(
    value: Dot | LamportTimestamp | VersionVector | CausalContext, data: st.DataObject
) -> None:
    raw = _mutate(data, value.to_wire())
    for decode in DECODERS:
        _decode_or_refuse(decode, raw)
