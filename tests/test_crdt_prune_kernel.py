"""Pruning through the replication kernel: a replica folds a dead writer
while groups are lost, duplicated, reordered and late; nothing is lost or
resurrected, the dead writer's entry goes from every context, and the fold
itself is forgotten once every neighbour holds it."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.crdt.replicate import Ack, DeltaGroup, Replicator, ReplicatorConfig
from gossamer.crdt.types import AWSet, PNCounter
from gossamer.errors import LocalError

NAMES = ("a@1", "b@1", "c@1", "d@1")
DEAD = NAMES[0]
KEEP_S = 10.0


def mutate(kind: type, replica: Replicator[Any], writer: str, rng: random.Random) -> None:
    if kind is AWSet:
        x = rng.randrange(6)
        if rng.random() < 0.6:
            replica.mutate(lambda s: s.add(writer, x))
        else:
            replica.mutate(lambda s: s.remove(x))
    else:
        n = rng.randint(-3, 5)
        replica.mutate(lambda s: s.increment(writer, n))


class Cluster:
    """Replicas and the groups and acks in flight between them."""

    def __init__(self, kind: type, pruning: bool) -> None:
        config = ReplicatorConfig(max_buffer=8, fold_keep_s=KEEP_S)
        self.replicas = {n: Replicator(kind(), config) for n in NAMES}
        self.flight: list[tuple[str, str, Any]] = []  # (sender, receiver, group or ack)
        self.pruning = pruning
        self.now = 0.0

    def live(self, dead: bool) -> list[str]:
        return [n for n in NAMES if not (dead and n == DEAD)]

    def ship(self, sender: str, dead: bool) -> None:
        for peer in self.live(dead):
            if peer != sender:
                group = self.replicas[sender].ship(peer)
                if group is not None:
                    self.flight.append((sender, peer, group))

    def heal(self) -> None:
        live = self.live(True)
        for _ in range(60):
            while self.flight:
                self.deliver(0, True, duplicate=False)
            for name in live:
                self.ship(name, True)
            if not self.flight:
                return
        raise AssertionError("the replicas never stopped sending")

    def play(
        self, steps: list[tuple[int, ...]], kind: type, rng: random.Random, dead: bool
    ) -> None:
        for what, who, pick in steps:
            name = NAMES[who]
            if what == 0 and not (dead and name == DEAD):
                mutate(kind, self.replicas[name], name, rng)
            elif what == 1 and not (dead and name == DEAD):
                self.ship(name, dead)
            else:
                self.deliver(pick, dead, duplicate=what == 3)

    def deliver(self, index: int, dead: bool, duplicate: bool) -> None:
        if not self.flight:
            return
        sender, receiver, item = self.flight[index % len(self.flight)]
        if not duplicate:
            self.flight.remove((sender, receiver, item))
        if dead and receiver == DEAD:
            return
        replica = self.replicas[receiver]
        if isinstance(item, DeltaGroup):
            if not self.pruning:
                item = DeltaGroup(item.delta, item.upto, item.full, item.life)
            ack = replica.receive(sender, item, self.now)
            self.flight.append((receiver, sender, ack))
        elif isinstance(item, Ack) and not (dead and receiver == DEAD):
            replica.acknowledged(sender, item)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[int, list[tuple[int, ...]], list[tuple[int, ...]], int]:
    seed = draw(st.integers(0, 2**32))
    step = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 1000))
    before = draw(st.lists(step, max_size=40))
    after = draw(st.lists(step, max_size=40))
    at = draw(st.integers(0, 40))
    return seed, before, after, at


def check(kind: type) -> None:
    @settings(max_examples=60, deadline=None)
    @given(schedules())
    def run(schedule: tuple[int, list[tuple[int, ...]], list[tuple[int, ...]], int]) -> None:
        seed, before, after, at = schedule
        worlds = [Cluster(kind, pruning) for pruning in (True, False)]
        for world in worlds:
            rng = random.Random(seed)
            world.play(before, kind, rng, dead=False)
            world.ship(DEAD, False)  # its last groups may still be in flight, and arrive late
            world.play(after[:at], kind, rng, dead=True)
            if world.pruning and world.replicas[NAMES[1]].state.context.vv.get(DEAD):
                world.replicas[NAMES[1]].prune(DEAD, NAMES[1], world.now)
            world.play(after[at:], kind, rng, dead=True)
            # The network heals: everything in flight arrives, and the live
            # replicas exchange until nothing is left to send.  Dots of the
            # dead writer the fold never saw (late) take a second fold.
            live = world.live(True)
            folder = world.replicas[NAMES[1]]
            for _ in range(3):
                world.heal()
                late = any(d[0] == DEAD for d in folder.state.context)
                if not (world.pruning and folder.stats.folds_made and late):
                    break
                folder.prune(DEAD, NAMES[1], world.now)
            world.now = KEEP_S
            for name in live:
                world.replicas[name].gc([p for p in live if p != name], world.now)
        pruned, plain = worlds
        live = pruned.live(True)
        expected = plain.replicas[live[0]].state.value()
        for name in live:
            assert plain.replicas[name].state.value() == expected
            state = pruned.replicas[name].state
            assert state.value() == expected, name
            assert pruned.replicas[name].stats.fold_conflicts == 0
        folds = pruned.replicas[NAMES[1]].stats.folds_made
        if folds:
            for name in live:
                state = pruned.replicas[name].state
                assert DEAD not in state.context.vv, name
                assert not any(d[0] == DEAD for d in state.context.cloud), name
                assert pruned.replicas[name].folds == (), name  # all held it: forgotten

    run()


@pytest.mark.parametrize("kind", [AWSet, PNCounter], ids=lambda k: k.__name__)
def test_pruning_through_the_kernel_loses_nothing_and_forgets_the_writer(kind: type) -> None:
    check(kind)


def test_prune_refuses_a_writer_it_never_saw_and_past_its_bound() -> None:
    replica: Replicator[AWSet[str]] = Replicator(AWSet(), ReplicatorConfig(max_folds=1))
    with pytest.raises(LocalError, match="no dot"):
        replica.prune("x@1", "me@1")
    replica.mutate(lambda s: s.add("x@1", "p"))
    replica.mutate(lambda s: s.add("y@1", "q"))
    fold = replica.prune("x@1", "me@1")
    assert replica.folds == (fold,) and replica.state.value() == {"p", "q"}
    with pytest.raises(LocalError, match="max_folds"):
        replica.prune("y@1", "me@1")
