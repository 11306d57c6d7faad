"""The replication kernel: delta intervals, BP, RR, the bound, and
convergence through a lossy, duplicating, reordering network."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.crdt.replicate import Ack, DeltaGroup, Replicator, ReplicatorConfig
from gossamer.crdt.types import AWSet, LWWRegister, ORMap
from gossamer.errors import ConfigError, LocalError

NAMES = ("a", "b", "c")


def writer(name: str) -> str:
    return f"{name}@1"


def exchange(src: Replicator[Any], src_name: str, dst: Replicator[Any], dst_name: str) -> bool:
    """One reliable ship, receive and acknowledgement; whether anything went."""
    message = src.ship(dst_name)
    if message is None:
        return False
    src.acknowledged(dst_name, dst.receive(src_name, message))
    return True


def test_a_delta_interval_reaches_a_neighbour_and_is_acknowledged() -> None:
    a, b = Replicator(AWSet[str]()), Replicator(AWSet[str]())
    a.mutate(lambda s: s.add(writer("a"), "x"))
    a.mutate(lambda s: s.add(writer("a"), "y"))
    message = a.ship("b")
    assert message is not None and not message.full and message.upto == 2
    assert message.delta.value() == {"x", "y"}
    a.acknowledged("b", b.receive("a", message))
    assert b.state.value() == {"x", "y"} and a.ship("b") is None
    a.gc(["b"])
    assert a.buffered == 0


def test_nothing_is_sent_back_where_it_came_from() -> None:
    a, b, c = (Replicator(AWSet[str]()) for _ in NAMES)
    a.mutate(lambda s: s.add(writer("a"), "x"))
    exchange(a, "a", b, "b")
    assert b.ship("a") is None  # BP: the entry came from a
    message = b.ship("c")
    assert message is not None and message.delta.value() == {"x"}
    c.acknowledged("b", Ack(0))


def test_a_received_delta_keeps_only_what_was_news() -> None:
    a, b, c = (Replicator(AWSet[str]()) for _ in NAMES)
    a.mutate(lambda s: s.add(writer("a"), "x"))
    exchange(a, "a", b, "b")
    exchange(a, "a", c, "c")
    c.mutate(lambda s: s.remove("x"))
    b.mutate(lambda s: s.add(writer("b"), "y"))
    exchange(b, "b", c, "c")  # carries x's add again, which c removed since
    assert c.state.value() == {"y"}
    buffered = [delta for delta, _ in c._buffer.values()]
    assert buffered[-1].value() == {"y"}  # RR: the removed x is not passed on
    c.receive("a", DeltaGroup(a.state.copy(), 1))  # nothing c lacks
    assert c.stats.redundant == 1 and len(c._buffer) == len(buffered)


def test_a_delta_naming_a_huge_prefix_is_judged_without_walking_it() -> None:
    hostile = AWSet.from_wire([["evil@1"], [0, 2**62], [], [[], [], [], []]])
    r = Replicator(AWSet[str]())
    r.receive("evil", DeltaGroup(hostile, 1))  # returns (news: a prefix unseen)
    assert r.state.context.vv == {"evil@1": 2**62}
    assert r.receive("evil", DeltaGroup(hostile, 1)) == Ack(1)
    assert r.stats.redundant == 1


def test_a_removal_is_news_to_a_replica_that_still_holds_the_dot() -> None:
    a, b = Replicator(AWSet[str]()), Replicator(AWSet[str]())
    a.mutate(lambda s: s.add(writer("a"), "x"))
    exchange(a, "a", b, "b")
    a.mutate(lambda s: s.remove("x"))
    exchange(a, "a", b, "b")
    assert b.state.value() == set()


def test_a_neighbour_behind_the_bound_gets_the_full_state() -> None:
    a = Replicator(AWSet[int](), ReplicatorConfig(max_buffer=4))
    b = Replicator(AWSet[int]())
    for i in range(10):
        a.mutate(lambda s, i=i: s.add(writer("a"), i))
    assert a.stats.shed == 6 and a.buffered == 4
    message = a.ship("b")
    assert message is not None and message.full
    a.acknowledged("b", b.receive("a", message))
    assert b.state.value() == set(range(10)) and a.ship("b") is None


def test_mistakes_and_stale_acks() -> None:
    with pytest.raises(ConfigError):
        ReplicatorConfig(max_buffer=0)
    a = Replicator(AWSet[str]())
    with pytest.raises(LocalError, match="must return"):
        a.mutate(lambda s: None)  # type: ignore[arg-type,return-value]
    a.acknowledged("b", Ack(5))  # never sent so far
    assert a.stats.stale_acks == 1 and a.acked("b") == 0


STEP = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 2), st.integers(0, 4)),
    st.tuples(st.just("remove"), st.integers(0, 2), st.integers(0, 4)),
    st.tuples(st.just("ship"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("deliver"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("gc"), st.integers(0, 2), st.just(0)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(STEP, max_size=60), st.integers(2, 50))
def test_replicas_converge_through_loss_duplication_and_reordering(
    steps: list[tuple[str, int, Any]], bound: int
) -> None:
    config = ReplicatorConfig(max_buffer=bound)
    nodes = [Replicator(AWSet[int](), config) for _ in NAMES]
    expected = AWSet[int]()
    flying: list[tuple[int, int, object]] = []  # (to, from, message)
    for kind, i, x in steps:
        node = nodes[i % len(nodes)]
        if kind == "add":
            expected.join(node.mutate(lambda s, i=i, x=x: s.add(writer(NAMES[i]), x)))
        elif kind == "remove":
            expected.join(node.mutate(lambda s, x=x: s.remove(x)))
        elif kind == "ship" and x != i:
            message = node.ship(NAMES[x])
            if message is not None:
                flying.append((x, i, message))
        elif kind == "deliver" and flying:
            to, source, message = flying[i % len(flying)]
            if not x:  # delivered and kept: it will come again (duplicate)
                flying.remove((to, source, message))
            if isinstance(message, DeltaGroup):
                flying.append((source, to, nodes[to].receive(NAMES[source], message)))
            else:
                assert isinstance(message, Ack)
                nodes[to].acknowledged(NAMES[source], message)
        elif kind == "gc":
            node.gc(n for j, n in enumerate(NAMES) if j != i)
        # whatever is left in flight may be lost
    # The network heals: reliable rounds until nothing is left to send.
    for _ in range(10):
        moved = False
        for i, j in ((0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)):
            moved |= exchange(nodes[i], NAMES[i], nodes[j], NAMES[j])
        if not moved:
            break
    for node in nodes:
        assert node.state == expected, (node.state, expected)
        assert node.buffered <= bound


def test_a_long_random_run_converges() -> None:
    rng = random.Random(5)
    nodes = [Replicator(AWSet[int](), ReplicatorConfig(max_buffer=16)) for _ in NAMES]
    expected = AWSet[int]()
    for _ in range(3_000):
        i = rng.randrange(3)
        if rng.random() < 0.5:
            x = rng.randrange(40)
            if rng.random() < 0.7:
                expected.join(nodes[i].mutate(lambda s, i=i, x=x: s.add(writer(NAMES[i]), x)))
            else:
                expected.join(nodes[i].mutate(lambda s, x=x: s.remove(x)))
        else:
            j = rng.choice([k for k in range(3) if k != i])
            message = nodes[i].ship(NAMES[j])
            if message is not None and rng.random() < 0.7:  # else lost
                ack = nodes[j].receive(NAMES[i], message)
                if rng.random() < 0.7:
                    nodes[i].acknowledged(NAMES[j], ack)
            nodes[i].gc(n for k, n in enumerate(NAMES) if k != i)
    for _ in range(10):
        moved = False
        for i in range(3):
            for j in range(3):
                if i != j:
                    moved |= exchange(nodes[i], NAMES[i], nodes[j], NAMES[j])
        if not moved:
            break
    assert all(node.state == expected for node in nodes)
    assert sum(node.stats.deltas_sent for node in nodes) > sum(
        node.stats.full_sent for node in nodes
    )


def test_lives_keep_restarts_apart() -> None:
    a = Replicator(AWSet[str](), life=1)
    a.mutate(lambda s: s.add(writer("a"), "x"))
    b1 = Replicator(AWSet[str]())
    exchange(a, "a", b1, "b@1")
    # b restarts empty: a new life is a new neighbour, which gets everything.
    b2 = Replicator(AWSet[str]())
    exchange(a, "a", b2, "b@2")
    assert b2.state.value() == {"x"}
    # a restarts from a saved state: its numbers start again, and an ack
    # for its previous life is not believed.
    again = Replicator(a.state.copy(), life=2)
    again.acknowledged("b@2", Ack(1, life=1))
    assert again.stats.stale_acks == 1
    message = again.ship("b@3")
    assert message is not None and message.full and message.life == 2


def test_types_keep_their_class_and_maps_of_one_value_type_join() -> None:
    class Tags(AWSet[str]):
        __slots__ = ()

    tags = Replicator(Tags())
    assert type(tags.mutate(lambda s: s.add(writer("a"), "x"))) is Tags
    first = ORMap.of(AWSet)()
    first.join(ORMap.of(AWSet)().update("k", lambda v: v.add(writer("a"), 1)))
    assert first.value() == {"k": {1}}


def test_last_writer_wins_ties_go_to_the_later_dot() -> None:
    a = LWWRegister()
    d1 = a.write(writer("a"), "v1")
    a.clear()
    d2 = a.write(writer("a"), "v2")  # the same time as v1: nothing was there
    x, y = LWWRegister(), LWWRegister()
    x.join(d1)
    x.join(d2)
    y.join(d2)
    y.join(d1)
    assert x == y and x.value() == y.value() == "v2"
