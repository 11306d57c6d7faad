"""Forgetting a dead writer: a fold renames its dots into a live writer's, and
no value is lost or resurrected by it (``Fold``, ``Causal.fold`` / ``rename``).

The property runs two worlds on one random schedule: in one a writer dies
and a live replica folds it at some moment while operations and exchanges
go on, the others learning the fold at random moments (always before they
join anything from a replica that has it, as the kernel ships folds first)
and renaming what they receive from replicas that have not; the other
world never folds.  In the end everyone has everything: every replica's
value is the same in both worlds, and the pruned world's contexts hold no
entry for the dots the fold covered.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.crdt.dots import FOLD_SUFFIX, Context, DotMap, DotSet, Fold
from gossamer.crdt.types import AWSet, PNCounter
from gossamer.errors import LocalError
from tests.test_crdt_types import EVERY_TYPE

DEAD, FOLDER, OTHER = "a@1", "b@1", "c@1"
WRITERS = (DEAD, FOLDER, OTHER)


def canon(value: Any) -> Any:
    """A value with its lists sorted: a register's concurrent values are
    listed in the order of their dots, which a fold renames."""
    if isinstance(value, dict):
        return {k: canon(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((canon(v) for v in value), key=repr)
    return value


class World:
    def __init__(self, new: Any, pruning: bool) -> None:
        self.states = [new() for _ in WRITERS]
        self.folds: list[list[Fold]] = [[] for _ in WRITERS]
        self.pruning = pruning

    def op(self, i: int, operation: Any) -> None:
        operation(self.states[i], WRITERS[i])

    def learn(self, i: int, folds: list[Fold]) -> None:
        for fold in folds:
            if fold not in self.folds[i]:
                self.states[i].rename(fold)
                self.folds[i].append(fold)

    def sync(self, i: int, j: int) -> None:
        """Replica ``i`` joins replica ``j``'s state (a delta group, or a full state)."""
        if self.pruning:
            self.learn(i, self.folds[j])  # the folds come first
        incoming = self.states[j].copy()
        self.states[i].join(incoming.renamed(self.folds[i]))

    def fold(self) -> None:
        fold = self.states[1].fold(DEAD, FOLDER)
        self.folds[1].append(fold)


STEP = st.one_of(
    st.tuples(st.just("op"), st.integers(0, 2)),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("learn"), st.integers(0, 2)),
)


def check_pruning(new: Any, operations: st.SearchStrategy[Any]) -> None:
    """Random steps while all three write; the dead writer's last ops; the
    folder hears it (or not); more steps with the fold somewhere among them."""
    steps = st.lists(st.tuples(STEP, operations), max_size=16)

    @settings(max_examples=150, deadline=None)
    @given(steps, steps, st.booleans(), steps, st.integers(0, 16))
    def run(alive: list[Any], last: list[Any], heard: bool, after: list[Any], fold_at: int) -> None:
        pruned, plain = World(new, True), World(new, False)

        def play(schedule: list[Any], dead: bool) -> None:
            for step, operation in schedule:
                kind = step[0]
                if kind == "op" and not (dead and step[1] == 0):
                    for world in (pruned, plain):
                        world.op(step[1], operation)
                elif kind == "sync" and step[1] != step[2]:
                    for world in (pruned, plain):
                        world.sync(step[1], step[2])
                elif kind == "learn":
                    pruned.learn(step[1], pruned.folds[1])

        play(alive, False)
        play([((("op", 0)), op) for _, op in last], False)  # its last writes, maybe unheard
        if heard:
            for world in (pruned, plain):
                world.sync(1, 0)
        play(after[:fold_at], True)
        pruned.fold()
        play(after[fold_at:], True)
        # Everyone hears everything, the dead writer's last state included
        # (its deltas arrive late), twice around.
        for world in (pruned, plain):
            for _ in range(2):
                for i in range(3):
                    for j in range(3):
                        if i != j:
                            world.sync(i, j)
        values = [canon(s.value()) for s in plain.states]
        assert all(v == values[0] for v in values)
        for i in (1, 2):  # the live replicas
            assert canon(pruned.states[i].value()) == values[0], (i, pruned.folds)
        assert pruned.states[1] == pruned.states[2]
        fold = pruned.folds[1][0]
        for i in (1, 2):
            assert not any(fold.covers(d) for d in pruned.states[i].context)
            assert not any(fold.covers(d) for d in pruned.states[i].store.dots())

    run()


@EVERY_TYPE
def test_a_fold_loses_and_resurrects_nothing(new: Any, operations: Any) -> None:
    check_pruning(new, operations)


def test_a_fold_drops_the_dead_writers_entry_and_keeps_what_it_never_saw() -> None:
    s: AWSet[str] = AWSet()
    for e in "pqr":
        s.add(DEAD, e)
    s.add(FOLDER, "s")
    s.remove("q")
    fold = s.fold(DEAD, FOLDER)
    graveyard = FOLDER + FOLD_SUFFIX  # its fold writer: no mutator writes under it
    assert fold == Fold(DEAD, 3, frozenset(), graveyard, 0)
    assert s.value() == {"p", "r", "s"}
    assert DEAD not in s.context.vv and not s.context.cloud
    assert s.context.vv == {FOLDER: 1, graveyard: 3}
    assert s.context.next_dot(FOLDER) == (FOLDER, 2)
    # A late delta of the dead writer that the folder never saw stays its own.
    renamed = Context({DEAD: 5})
    renamed.rename(fold)
    assert sorted(renamed) == [(DEAD, 4), (DEAD, 5), (graveyard, 1), (graveyard, 2), (graveyard, 3)]
    store = DotSet([(DEAD, 2), (DEAD, 5)])
    store.rename(fold)
    assert store.s == {(graveyard, 2), (DEAD, 5)}
    # A second fold, by the same folder, takes the next range of its fold writer.
    late = AWSet(DotMap(DotSet, {"t": DotSet([(DEAD, 5)])}), Context.of([(DEAD, 5)]))
    s.join(late.renamed([fold]))
    again = s.fold(DEAD, FOLDER)
    assert again == Fold(DEAD, 0, frozenset({5}), graveyard, 3)
    assert s.value() == {"p", "r", "s", "t"} and DEAD not in {d[0] for d in s.context}
    with pytest.raises(LocalError, match="cannot fold"):
        s.fold(FOLDER, FOLDER)


def test_a_counters_increment_never_takes_in_a_folded_writers_count() -> None:
    # The dead writer counted 1 and reset it; the folder had the 1 but not the
    # reset when it folded, then counted.  The reset must still remove the 1.
    folder: PNCounter = PNCounter()
    dead: PNCounter = PNCounter()
    folder.join(dead.increment(DEAD, 1).copy())
    reset = dead.reset()
    fold = folder.fold(DEAD, FOLDER)
    folder.increment(FOLDER, 0)
    folder.join(reset.renamed([fold]))
    assert folder.value() == 0
