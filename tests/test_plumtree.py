"""Plumtree's rules, one message at a time, and broadcasts over a simulated overlay."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gossamer.core import PartsCore
from gossamer.effects import Effect, Emit, SendStream, SetTimer
from gossamer.errors import ConfigError, LocalError
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import HyParViewConfig, NeighborDown, NeighborUp, Peer
from gossamer.membership.plumtree import (
    Delivered,
    Gossip,
    Graft,
    IHave,
    Plumtree,
    PlumtreeConfig,
    Prune,
    Replaced,
    message_id,
)
from gossamer.parts import overlay_parts
from gossamer.sim import Simulator
from gossamer.wire import Message, registry


def peer(name: str) -> Peer:
    return Peer(name, Address(f"{name}:7946"), 1)


def core(*peers: str, config: PlumtreeConfig | None = None) -> Plumtree:
    tree = Plumtree(NodeId("me", Address("me:7946"), 1), random.Random(1), config)
    tree.start(0.0)
    for name in peers:
        tree.on_event(NeighborUp(peer(name)), 0.0)
    tree.drain()
    return tree


def sent(effects: list[Effect]) -> list[tuple[str, Message]]:
    return [(e.to, e.message) for e in effects if isinstance(e, SendStream)]


def gossip(n: int = 1, rnd: int = 1, origin: str = "o") -> Gossip:
    return Gossip(message_id(origin, 1, n), origin, rnd, "", b"payload")


def test_config_is_checked_at_construction() -> None:
    with pytest.raises(ConfigError, match="seen_ttl_s"):
        PlumtreeConfig(seen_ttl_s=1.0, cache_ttl_s=2.0)
    with pytest.raises(ConfigError, match="graft_timeout_s"):
        PlumtreeConfig(graft_timeout_s=0.01, ihave_window_s=0.02)
    with pytest.raises(ConfigError, match="max_seen"):
        PlumtreeConfig(max_seen=10, max_cache_messages=20)
    assert PlumtreeConfig().optimize_threshold == 7 and not PlumtreeConfig().optimize


def test_message_ids_depend_on_origin_life_and_sequence_only() -> None:
    assert message_id("a", 1, 1) == message_id("a", 1, 1)
    assert len({message_id("a", 1, 1), message_id("a", 2, 1), message_id("a", 1, 2)}) == 3
    # BLAKE2b of the text: no process state (a hash seed, an id()) goes in.
    assert len(message_id("a", 1, 1)) == 16
    assert message_id("a", 1, 1).hex() == "18d2f61402a5f03ac475965813f90128"


def test_a_first_gossip_is_delivered_forwarded_eagerly_and_its_sender_stays_eager() -> None:
    tree = core("a", "b", "c")
    tree.handle(Address("a:7946"), gossip(), 1.0)
    out = tree.drain()
    delivered = [e.event for e in out if isinstance(e, Emit)]
    assert delivered == [Delivered(gossip().id, "o", "", b"payload", 1)]
    assert sorted(to for to, m in sent(out) if isinstance(m, Gossip)) == ["b:7946", "c:7946"]
    assert all(m.round == 2 for _, m in sent(out) if isinstance(m, Gossip))
    assert "a" in tree.tree()[0]


def test_a_duplicate_prunes_its_sender_to_lazy() -> None:
    tree = core("a", "b", "c")
    tree.handle(Address("a:7946"), gossip(), 1.0)
    tree.drain()
    tree.handle(Address("b:7946"), gossip(rnd=3), 1.0)
    out = tree.drain()
    assert sent(out) == [(Address("b:7946"), Prune())]
    assert not [e for e in out if isinstance(e, Emit)]  # delivered once
    eager, lazy = tree.tree()
    assert "b" in lazy and "b" not in eager
    # A Prune from c makes c lazy here too.
    tree.handle(Address("c:7946"), Prune(), 1.0)
    assert "c" in tree.tree()[1]


def test_lazy_peers_get_ihave_batched_in_one_window() -> None:
    tree = core("a", "b")
    tree.handle(Address("b:7946"), Prune(), 0.0)
    tree.drain()
    tree.handle(Address("a:7946"), gossip(1), 1.0)
    out = tree.drain()
    assert [e for e in out if isinstance(e, SetTimer)] == [SetTimer("ihave", 1.0 + 0.01)]
    assert not any(isinstance(m, IHave) for _, m in sent(out))
    tree.handle(Address("a:7946"), gossip(2), 1.005)
    tree.drain()
    tree.on_timer("ihave", 1.01)
    ihaves = [(to, m) for to, m in sent(tree.drain()) if isinstance(m, IHave)]
    assert ihaves == [(Address("b:7946"), IHave((gossip(1).id, gossip(2).id), (2, 2)))]
    assert tree.stats.ihave_sent == 1 and tree.stats.ihave_ids_sent == 2


def test_the_ihave_queue_is_bounded_and_sheds_are_counted() -> None:
    tree = core("a", "b", config=PlumtreeConfig(max_ihave_queue=3))
    tree.handle(Address("b:7946"), Prune(), 0.0)
    for n in range(5):
        tree.handle(Address("a:7946"), gossip(n), 1.0)
    tree.drain()
    assert tree.stats.ihave_shed == 2


def test_an_unknown_ihave_grafts_only_when_timer_1_expires_then_tries_the_next() -> None:
    tree = core("a", "b")
    mid = gossip().id
    tree.handle(Address("a:7946"), IHave((mid,), (2,)), 1.0)
    out = tree.drain()
    assert not sent(out)  # no immediate graft
    assert SetTimer(("graft", mid), 1.1) in out
    tree.handle(Address("b:7946"), IHave((mid,), (3,)), 1.02)
    assert not sent(tree.drain())
    tree.on_timer(("graft", mid), 1.1)
    out = tree.drain()
    assert sent(out) == [(Address("a:7946"), Graft(mid, 2))]  # the first announcer
    assert SetTimer(("graft", mid), 1.1 + 0.05) in out  # timer 2
    assert "a" in tree.tree()[0]
    tree.on_timer(("graft", mid), 1.15)
    assert sent(tree.drain()) == [(Address("b:7946"), Graft(mid, 3))]
    # The payload arrives: nothing more is grafted.
    tree.handle(Address("b:7946"), gossip(rnd=4), 1.16)
    tree.drain()
    tree.on_timer(("graft", mid), 1.2)
    assert not [m for _, m in sent(tree.drain()) if isinstance(m, Graft)]


def test_a_graft_makes_the_link_eager_and_is_answered_with_the_payload() -> None:
    tree = core("a", "b")
    tree.handle(Address("b:7946"), Prune(), 0.0)
    tree.handle(Address("a:7946"), gossip(), 1.0)
    tree.drain()
    tree.handle(Address("b:7946"), Graft(gossip().id, 2), 1.2)
    out = sent(tree.drain())
    assert out == [(Address("b:7946"), Gossip(gossip().id, "o", 2, "", b"payload"))]
    assert "b" in tree.tree()[0]


class Newest:
    """A handler that keeps only the newest version per key: old news is stale."""

    def __init__(self) -> None:
        self.versions: dict[bytes, int] = {}
        self.replaced_ids: set[bytes] = set()

    def deliver(self, id: bytes, origin: str, payload: bytes, hops: int, now: float) -> bool:
        key, version = payload[:1], payload[1]
        if self.versions.get(key, -1) >= version:
            return False
        self.versions[key] = version
        return True

    def replaced(self, id: bytes) -> bool:
        return id in self.replaced_ids


def test_stale_news_is_not_forwarded_and_a_graft_can_be_told_it_was_replaced() -> None:
    tree = core("a", "b", "c")
    handler = Newest()
    tree.register("state", handler)
    with pytest.raises(LocalError, match="already has a handler"):
        tree.register("state", handler)
    new = Gossip(message_id("o", 1, 2), "o", 1, "state", b"k\x02")
    old = Gossip(message_id("o", 1, 1), "o", 1, "state", b"k\x01")
    tree.handle(Address("a:7946"), new, 1.0)
    assert len([m for _, m in sent(tree.drain()) if isinstance(m, Gossip)]) == 2
    tree.handle(Address("a:7946"), old, 1.1)
    assert not sent(tree.drain())  # stale: neither forwarded nor announced
    assert tree.stats.stale == 1
    gone = message_id("o", 1, 0)
    handler.replaced_ids.add(gone)
    tree.handle(Address("b:7946"), Graft(gone, 1), 1.2)
    assert sent(tree.drain()) == [(Address("b:7946"), Replaced(gone))]
    # The grafter stops waiting when told.
    other = core("x")
    other.handle(Address("x:7946"), IHave((gone,), (1,)), 1.0)
    other.drain()
    other.handle(Address("x:7946"), Replaced(gone), 1.05)
    other.drain()
    other.on_timer(("graft", gone), 1.1)
    assert not sent(other.drain())


def test_the_optimization_swaps_a_long_path_for_an_announced_shorter_one() -> None:
    tree = core("a", "b", config=PlumtreeConfig(optimize=True, optimize_threshold=3))
    mid = gossip().id
    tree.handle(Address("b:7946"), Prune(), 0.0)
    tree.handle(Address("b:7946"), IHave((mid,), (2,)), 1.0)
    tree.drain()
    tree.handle(Address("a:7946"), gossip(rnd=6), 1.05)
    out = sent(tree.drain())
    assert (Address("b:7946"), Graft(None, 2)) in out
    assert (Address("a:7946"), Prune()) in out
    eager, lazy = tree.tree()
    assert "b" in eager and "a" in lazy
    assert tree.stats.optimizations == 1


def test_neighbour_changes_follow_the_active_view() -> None:
    tree = core("a")
    tree.handle(Address("a:7946"), gossip(), 1.0)
    tree.drain()
    tree.on_event(NeighborUp(peer("n")), 1.5)
    tree.on_timer("ihave", 1.51)
    # A new neighbour is eager, and hears of what went by just before it came.
    assert "n" in tree.tree()[0]
    assert (Address("n:7946"), IHave((gossip().id,), (2,))) in sent(tree.drain())
    tree.on_event(NeighborDown(peer("a")), 2.0)
    eager, lazy = tree.tree()
    assert "a" not in eager | lazy


def test_cache_and_seen_ids_are_bounded_by_count_and_by_age() -> None:
    tree = core(
        "a", config=PlumtreeConfig(max_cache_messages=3, max_seen=5, cache_ttl_s=10, seen_ttl_s=20)
    )
    for n in range(8):
        tree.handle(Address("a:7946"), gossip(n), 1.0)
    tree.drain()
    view = tree.view()
    assert view.cached == 3 and view.seen == 5
    tree.on_timer("sweep", 12.0)
    assert tree.view().cached == 0 and tree.view().seen == 5
    tree.on_timer("sweep", 22.0)
    assert tree.view().seen == 0


def test_a_broadcast_is_checked_and_its_payload_bounded() -> None:
    tree = core("a", config=PlumtreeConfig(max_broadcast_bytes=4))
    with pytest.raises(LocalError, match=r"at most broadcast\.max_broadcast_bytes = 4"):
        tree.broadcast(b"12345", 0.0)
    with pytest.raises(LocalError, match="bytes"):
        tree.broadcast("text", 0.0)  # type: ignore[arg-type]
    mid = tree.broadcast(b"1234", 0.0)
    assert mid == message_id("me", 1, 1)
    assert sent(tree.drain()) == [(Address("a:7946"), Gossip(mid, "me", 1, "", b"1234"))]


def test_broadcasts_reach_every_node_once_and_the_tree_sends_one_payload_a_node() -> None:
    sim = Simulator(5, codec=registry, wire_check=True)
    count = 30
    # Held still: a node a slot short would move a link every starved_rounds
    # periods, and a small overlay swaps links now and then (rewire_periods);
    # the next broadcast would send one payload more across a moved link.
    still = HyParViewConfig(starved_rounds=1_000, rewire_periods=0)
    for i in range(count):
        seeds = [] if i == 0 else ["n0:7946"]
        sim.add_node(
            f"n{i}",
            lambda me, rng, s=seeds: PartsCore(me, rng, overlay_parts(seeds=s, overlay=still)),
        )
        sim.run_for(0.05)
    sim.run_for(60.0)
    origin = Address("n7:7946")
    ids = []
    payloads = []
    for k in range(4):
        before = sim.stats.by_type.get("Gossip")
        sent_before = before.sent if before is not None else 0
        ids.append(
            sim.call(
                origin,
                lambda c, now, k=k: c.act("broadcast", lambda p: p.broadcast(b"%d" % k, now), now),
            )
        )
        sim.run_for(2.0)
        payloads.append(sim.stats.by_type["Gossip"].sent - sent_before)
    got: Counter[bytes] = Counter()
    for address in sim.addresses:
        for _, event in sim.events(address):
            if isinstance(event, Delivered):
                got[event.id] += 1
    assert all(got[mid] == count for mid in ids)  # the origin hears its own once too
    assert payloads[0] > count  # the first broadcast floods and prunes
    assert payloads[1:] == [count - 1] * 3  # then the tree: one payload a node


def test_a_peers_garbage_is_counted_and_changes_nothing() -> None:
    tree = core("a", "b")
    a = Address("a:7946")
    mid = gossip().id
    tree.handle(a, Gossip(mid, "o", 2**40, "", b"x"), 1.0)  # a hop count no overlay has
    tree.handle(a, Gossip(b"short", "o", 1, "", b"x"), 1.0)
    tree.handle(a, IHave((mid,), ()), 1.0)  # ids and rounds of different lengths
    tree.handle(a, IHave((b"short",), (1,)), 1.0)
    assert tree.stats.malformed == 4 and not tree.drain() and not tree.has_seen(mid)
    # A Replaced nobody asked for, or from a stranger, cannot mark an id seen.
    tree.handle(a, Replaced(mid), 1.0)
    tree.handle(Address("x:7946"), Replaced(mid), 1.0)
    # A Graft from a node that is not a neighbour (any more) is not answered.
    tree.handle(Address("x:7946"), Graft(mid, 1), 1.0)
    assert tree.stats.stray == 3 and not sent(tree.drain())
    tree.handle(a, gossip(), 2.0)
    assert any(isinstance(e, Emit) for e in tree.drain())  # still delivered once
    # Channels no handler serves leave no state behind.
    for i in range(50):
        tree.handle(a, Gossip(message_id("o", 1, 100 + i), "o", 1, f"ch{i}", b"x"), 3.0)
    assert len(tree.drain()) > 0 and tree.stats.delivered == 51


def test_a_link_let_go_when_its_neighbour_goes() -> None:
    tree = core("a")
    tree.handle(Address("a:7946"), gossip(), 1.0)
    tree.drain()
    tree.on_event(NeighborDown(peer("a")), 2.0)
    closes = [e for e in tree.drain() if type(e).__name__ == "CloseStream"]
    assert [e.to for e in closes] == [Address("a:7946")]  # type: ignore[attr-defined]
