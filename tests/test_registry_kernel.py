"""The registry's kernels: owner tables, deltas, the pg index and the name index."""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.crdt.groups import GroupChange, GroupIndex, GroupJoined, GroupLeft
from gossamer.crdt.names import Claim, NameIndex, default_rank
from gossamer.crdt.owners import Applied, Change, OwnerDelta, OwnerTable, pack_groups
from gossamer.errors import LocalError
from gossamer.registry.part import RegistryNews
from gossamer.wire import registry

LAWS = settings(max_examples=60, deadline=None, derandomize=True)


def writes(table: OwnerTable, ops: list[tuple[str, str, int]]) -> None:
    out: list[Change] = []
    for kind, member, n in ops:
        key = ("s", f"g{n % 3}", member)
        if kind == "join":
            table.join(key, out)
        elif kind == "leave" and table.own_count(key):
            table.leave(key, out)
        elif kind == "claim":
            table.claim(f"name{n % 4}", member, n + 1, out)
        elif kind == "withdraw":
            table.withdraw(f"name{n % 4}", out)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "claim", "withdraw"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 50),
    ),
    max_size=30,
)


def state(table: OwnerTable, owner: str) -> tuple[object, object]:
    whole = table.whole(owner)
    if whole is None:
        return set(), set()
    return set(whole.group_entries()), set(whole.name_entries())


@LAWS
@given(OPS, OPS, st.randoms(use_true_random=False))
def test_deltas_in_any_order_with_gaps_repaired_reach_the_owners_state(
    first: list[tuple[str, str, int]], second: list[tuple[str, str, int]], rng: random.Random
) -> None:
    owner = OwnerTable("o", 1)
    deltas = []
    writes(owner, first)
    deltas += owner.flush(200)  # small deltas: many versions
    writes(owner, second)
    deltas += owner.flush(200)
    replica = OwnerTable("r", 1)
    shuffled = deltas + rng.sample(deltas, len(deltas))  # duplicated and reordered
    rng.shuffle(shuffled)
    gaps = 0
    for delta in shuffled:
        # A wire round trip, as the tree delivers it.
        news = registry.decode(registry.encode(RegistryNews((delta,))), 1 << 20)
        assert isinstance(news, RegistryNews)
        if replica.apply(news.deltas[0], []) is Applied.GAP:
            gaps += 1
    if owner.version("o") == (1, 0):
        assert replica.version("o") is None  # nothing was ever written
        return
    if replica.version("o") != owner.version("o"):
        whole = owner.whole("o")
        assert whole is not None
        assert replica.apply(whole, []) is Applied.NEWS  # the pull
    assert state(replica, "o") == state(owner, "o")
    assert replica.version("o") == owner.version("o")


def test_a_dropped_life_is_refused_until_it_lives_and_older_lives_stay_refused() -> None:
    owner = OwnerTable("o", 5)
    out: list[Change] = []
    owner.join(("s", "g", "m"), out)
    (delta,) = owner.flush(1 << 16)
    replica = OwnerTable("r", 1)
    assert replica.apply(delta, []) is Applied.NEWS
    changes: list[Change] = []
    assert replica.drop("o", 5, changes)
    assert changes == [GroupChange("s", "g", "o", (("m", 0),))]
    assert replica.apply(delta, []) is Applied.GONE  # a late copy cannot resurrect it
    replica.revive("o", 5)
    assert replica.apply(delta, []) is Applied.NEWS
    replica.revive("o", 6)  # a restart: the older life is over
    old = OwnerTable("o", 4)
    old.join(("s", "g", "x"), [])
    assert replica.apply(old.flush(1 << 16)[0], []) is Applied.GONE


@pytest.mark.parametrize(
    "groups",
    [
        b"\xc1",  # not msgpack
        msgpack.packb({"a": 1}),
        msgpack.packb([["s", "g", ["m"]]]),  # odd list
        msgpack.packb([["s", "g", ["m", -1]]]),
        msgpack.packb([["s", "g", [3, 1]]]),
        msgpack.packb([["", "g", ["m", 1]]]),
        msgpack.packb([["s", "g", ["x" * 300, 1]]]),
        msgpack.packb([["s", "g", ["m", (1 << 64) - 1]]]),
    ],
)
def test_a_peers_garbage_is_refused_and_counted(groups: bytes) -> None:
    replica = OwnerTable("r", 1)
    delta = OwnerDelta("o", 1, 0, 1, False, groups)
    assert replica.apply(delta, []) is Applied.REFUSED
    assert replica.refused == 1
    assert replica.version("o") is None
    bad_versions = OwnerDelta("o", 1, 3, 2, False)
    assert replica.apply(bad_versions, []) is Applied.REFUSED


def test_owners_and_their_entries_are_bounded() -> None:
    table = OwnerTable("me", 1, max_owners=2, max_owner_bytes=2_000)
    out: list[Change] = []
    with pytest.raises(LocalError, match="max_owner_bytes"):
        for i in range(200):
            table.join(("s", "g", f"member-{i}"), out)
    with pytest.raises(LocalError, match="cannot leave"):
        table.leave(("s", "g", "never"), out)
    big = OwnerDelta(
        "o",
        1,
        0,
        1,
        False,
        pack_groups([("s", "g", [x for i in range(300) for x in (f"m{i}", 1)])]),
    )
    assert table.apply(big, []) is Applied.REFUSED  # over the bound
    small = OwnerDelta("o", 1, 0, 1, False, pack_groups([("s", "g", ["m", 1])]))
    assert table.apply(small, []) is Applied.NEWS
    other = OwnerDelta("p", 1, 0, 1, False, pack_groups([("s", "g", ["m", 1])]))
    assert table.apply(other, []) is Applied.REFUSED  # a third owner: max_owners
    assert table.refused == 2


def test_the_group_index_reports_joins_and_leaves_once() -> None:
    index = GroupIndex()
    events: list[GroupJoined | GroupLeft] = []
    index.apply(GroupChange("s", "g", "n1", (("a", 1), ("b", 2))), events)
    index.apply(GroupChange("s", "g", "n1", (("a", 2),)), events)  # joined again: no event
    index.apply(GroupChange("s", "g", "n2", (("a", 1),)), None)
    assert events == [GroupJoined("s", "g", "n1", "a"), GroupJoined("s", "g", "n1", "b")]
    assert index.members("s", "g") == [("n1", "a"), ("n1", "b"), ("n2", "a")]
    assert index.entries() == 3
    events.clear()
    index.apply(GroupChange("s", "g", "n1", (("a", 0), ("b", 0), ("zz", 0))), events)
    assert events == [GroupLeft("s", "g", "n1", "a"), GroupLeft("s", "g", "n1", "b")]
    index.apply(GroupChange("s", "g", "n2", (("a", 0),)), None)
    assert index.which_groups("s") == [] and index.entries() == 0


@LAWS
@given(st.permutations(range(6)), st.lists(st.integers(1, 5), min_size=6, max_size=6))
def test_every_order_of_claims_names_the_same_winner(order: list[int], times: list[int]) -> None:
    claims = [Claim("x", f"n{i}", 1, "m", times[i]) for i in range(6)]
    index = NameIndex()
    for i in order:
        index.apply("x", claims[i].node, claims[i])
    assert index.winner("x") == min(claims, key=default_rank)
    # Withdrawing the losers never changes the winner.
    winner = index.winner("x")
    for claim in claims:
        if claim != winner:
            index.apply("x", claim.node, None)
            assert index.winner("x") == winner


def test_a_delta_that_overtakes_its_predecessor_waits_for_it_and_no_pull_goes() -> None:
    from gossamer.effects import SendStream, SetTimer
    from gossamer.ids import Address, NodeId
    from gossamer.membership.plumtree import Publish
    from gossamer.registry.part import Pull, RegistryConfig, RegistryPart

    source = RegistryPart(NodeId("a", Address("10.0.0.1:1"), 1), random.Random(1), RegistryConfig())
    sink = RegistryPart(NodeId("b", Address("10.0.0.2:1"), 1), random.Random(2), RegistryConfig())
    news = []
    for member in ("m1", "m2", "m3"):
        source.join("s", "g", member, 0.0)
        news += [e.event for e in source.drain() if isinstance(getattr(e, "event", None), Publish)]
    decoded = [registry.decode(p.payload, 1 << 20) for p in news]
    assert all(isinstance(d, RegistryNews) for d in decoded)
    sink.handle(Address("10.0.0.1:1"), decoded[2], 1.0)  # v3 first
    sink.handle(Address("10.0.0.1:1"), decoded[1], 1.0)  # then v2
    effects = sink.drain()
    assert any(isinstance(e, SetTimer) and e.key == ("gap", "a") for e in effects)
    assert sink.groups.members("s", "g") == []  # nothing applied out of order
    sink.handle(Address("10.0.0.1:1"), decoded[0], 1.1)  # v1: all three follow on
    effects = sink.drain()
    assert sink.groups.members("s", "g") == [("a", "m1"), ("a", "m2"), ("a", "m3")]
    assert not any(isinstance(e, SendStream) and isinstance(e.message, Pull) for e in effects)
    sink.on_timer(("gap", "a"), 1.5)  # a stale timer: nothing held, nothing pulled
    assert sink.stats.gaps == 0 and sink.stats.pulls == 0
