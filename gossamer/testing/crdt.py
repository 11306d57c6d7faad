"""Laws a delta-state CRDT must keep, as hypothesis checks anyone can run on
their own type.

A type is described by ``new`` (an empty replica) and ``operations``, a
strategy of functions ``(state, replica) -> delta`` that mutate ``state``
and return the delta (as every mutator of :mod:`gossamer.crdt.types` does).
States to test are not drawn independently: they are the replicas of one
random run (operations at three writers, with random state exchanges), since
two histories invented apart could give one dot two meanings.

:func:`check_crdt` runs every law; each ``check_*`` runs one and raises
``AssertionError`` (through hypothesis, with the falsifying example) when
the type breaks it:

* join is commutative, associative and idempotent;
* a delta is below the state it came from (joining it there changes
  nothing), and the state after a mutation is the state before joined with
  the delta; neither a delta nor a joined argument shares objects with the
  state (mutating the state later changes neither);
* mutate-then-join equals join-then-mutate: a delta computed on one replica
  and joined into another gives the same state as joining the replicas
  first and then the delta;
* replicas that receive every delta at least once, in any order, some twice
  (and some first lost, then sent again), reach the state that joining all
  replicas' states gives;
* for a type with ``to_wire`` and ``from_wire``: every state and delta comes
  back equal through msgpack, and equal states encode to equal bytes.

Those are lattice laws: a type whose remove does nothing keeps them.
:func:`check_model` adds the type's meaning: operations run one after
another at one replica, and their deltas joined in order at another, read
as a sequential model of the type says (a set, a counter, a dict).

The type needs ``join`` (in place), ``copy`` and ``==`` on states.
"""

from __future__ import annotations

__all__ = [
    "REPLICAS",
    "check_convergence",
    "check_crdt",
    "check_deltas",
    "check_join_laws",
    "check_model",
    "check_mutate_join",
    "check_wire",
    "histories",
]

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

REPLICAS = ("a@1", "b@1", "c@1")
"""The writers of a random run."""


class Joinable(Protocol):
    def join(self, other: Any) -> None: ...

    def copy(self) -> Any: ...


T = TypeVar("T", bound=Joinable)
Operation = Callable[[Any, str], Any]


@dataclass
class History:
    """One random run: each replica's state, and every delta made."""

    states: list[Any]
    deltas: list[Any]


def histories(
    new: Callable[[], Any], operations: st.SearchStrategy[Operation], steps: int = 12
) -> st.SearchStrategy[History]:
    """Random runs of ``operations`` at :data:`REPLICAS`, with exchanges."""

    step = st.one_of(
        st.tuples(st.just("op"), st.integers(0, len(REPLICAS) - 1), operations),
        st.tuples(
            st.just("sync"), st.integers(0, len(REPLICAS) - 1), st.integers(0, len(REPLICAS) - 1)
        ),
    )

    @st.composite
    def run(draw: st.DrawFn) -> History:
        states = [new() for _ in REPLICAS]
        deltas: list[Any] = []
        schedule: list[tuple[str, int, Any]] = draw(st.lists(step, max_size=steps))
        for kind, i, what in schedule:
            if kind == "op":
                deltas.append(what(states[i], REPLICAS[i]))
            elif what != i:
                states[i].join(states[what].copy())
        return History(states, deltas)

    return run()


def _joined(a: T, b: Any) -> T:
    out: T = a.copy()
    out.join(b.copy())
    return out


def _run(test: Callable[[], None], max_examples: int) -> None:
    settings(max_examples=max_examples, deadline=None, database=None)(test)()


def check_join_laws(
    new: Callable[[], Any], operations: st.SearchStrategy[Operation], max_examples: int = 100
) -> None:
    """Join is commutative, associative and idempotent."""

    @given(histories(new, operations))
    def test(history: History) -> None:
        a, b, c = history.states
        assert _joined(a, b) == _joined(b, a), "join is not commutative"
        assert _joined(_joined(a, b), c) == _joined(a, _joined(b, c)), "join is not associative"
        assert _joined(a, a) == a, "join is not idempotent"

    _run(test, max_examples)


def check_deltas(
    new: Callable[[], Any], operations: st.SearchStrategy[Operation], max_examples: int = 100
) -> None:
    """A delta is below the state it came from, the state after a mutation
    is the state before joined with the delta, and neither a delta nor a
    joined state shares anything with the state it came from or went into
    (mutating that state later changes neither)."""

    @given(
        histories(new, operations),
        operations,
        operations,
        st.integers(0, len(REPLICAS) - 1),
    )
    def test(history: History, operation: Operation, later: Operation, i: int) -> None:
        state = history.states[i]
        before = state.copy()
        delta = operation(state, REPLICAS[i])
        assert _joined(state, delta) == state, "a delta is not below the state it came from"
        assert _joined(before, delta) == state, "state before joined with the delta is not after"
        kept, other = delta.copy(), history.states[(i + 1) % len(REPLICAS)]
        other_kept = other.copy()
        state.join(other)  # not copied
        later(state, REPLICAS[i])
        assert delta == kept, "a delta changed when its state was mutated: they share objects"
        assert other == other_kept, "a joined state changed with the state it went into"

    _run(test, max_examples)


def check_mutate_join(
    new: Callable[[], Any], operations: st.SearchStrategy[Operation], max_examples: int = 100
) -> None:
    """Mutating one replica and joining another into it equals joining first
    and then the mutation's delta."""

    @given(histories(new, operations), operations, st.integers(0, len(REPLICAS) - 1))
    def test(history: History, operation: Operation, i: int) -> None:
        mine, other = history.states[i], history.states[(i + 1) % len(REPLICAS)]
        both = _joined(mine, other)
        delta = operation(mine, REPLICAS[i])
        assert _joined(mine, other) == _joined(both, delta), "mutate-then-join differs"

    _run(test, max_examples)


def check_convergence(
    new: Callable[[], Any], operations: st.SearchStrategy[Operation], max_examples: int = 100
) -> None:
    """Replicas fed every delta at least once, in any order, some twice and
    some first lost, reach the join of all states."""

    @given(histories(new, operations), st.randoms(use_true_random=False))
    def test(history: History, rng: Any) -> None:
        expected = new()
        for state in history.states:
            expected.join(state.copy())
        for _ in REPLICAS:
            replica = new()
            feed = list(history.deltas)
            feed += rng.sample(feed, len(feed) // 2)  # duplicates
            rng.shuffle(feed)
            lost = [d for d in feed if rng.random() < 0.2]
            for delta in feed:
                if not any(delta is gone for gone in lost):
                    replica.join(delta.copy())
            for delta in lost:  # sent again
                replica.join(delta.copy())
            assert replica == expected, "replicas fed every delta did not converge"

    _run(test, max_examples)


def _bytes(value: Any) -> bytes:
    return msgpack.packb(value.to_wire(), use_bin_type=True)  # type: ignore[no-any-return]


def check_wire(
    new: Callable[[], Any], operations: st.SearchStrategy[Operation], max_examples: int = 100
) -> None:
    """States and deltas survive msgpack, and equal states encode alike."""
    kind = type(new())

    @given(histories(new, operations))
    def test(history: History) -> None:
        for value in [*history.states, *history.deltas]:
            back = kind.from_wire(msgpack.unpackb(_bytes(value), raw=False, strict_map_key=True))
            assert back == value, "a value does not come back equal from the wire"
            assert _bytes(back) == _bytes(value), "a value does not encode deterministically"
        a, b = history.states[:2]
        assert _bytes(_joined(a, b)) == _bytes(_joined(b, a)), "equal states encode differently"

    _run(test, max_examples)


def check_model(
    new: Callable[[], Any],
    steps: st.SearchStrategy[Any],
    apply: Callable[[Any, str, Any], Any],
    read: Callable[[Any], Any],
    initial: Any,
    model: Callable[[Any, Any], Any],
    max_examples: int = 100,
) -> None:
    """Sequential meaning: ``apply(state, replica, step)`` for each drawn
    ``step`` at one replica (returning the delta), ``model(value, step)``
    on ``initial``; after each step ``read`` of the replica and of a second
    replica that joined the deltas so far equal the model's value."""

    @given(st.lists(steps, max_size=20))
    def test(run: list[Any]) -> None:
        here, there, value = new(), new(), initial
        for step in run:
            delta = apply(here, REPLICAS[0], step)
            there.join(delta.copy())
            value = model(value, step)
            assert read(here) == value, f"after {step!r} the replica reads {read(here)!r}"
            assert read(there) == value, f"after {step!r} the deltas read {read(there)!r}"

    _run(test, max_examples)


def check_crdt(
    new: Callable[[], Any], operations: st.SearchStrategy[Operation], max_examples: int = 100
) -> None:
    """Every law above."""
    check_join_laws(new, operations, max_examples)
    check_deltas(new, operations, max_examples)
    check_mutate_join(new, operations, max_examples)
    check_convergence(new, operations, max_examples)
    if hasattr(new(), "to_wire") and hasattr(type(new()), "from_wire"):
        check_wire(new, operations, max_examples)
