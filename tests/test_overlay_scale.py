"""The overlay alone in the event-driven simulator, up to the reports' 10,000 nodes.

Nodes run HyParView and Plumtree in a bare ``PartsCore`` (no SWIM), join
through ``n0`` over a LAN with latency and jitter, and shuffle for a while.
Then every active view is full or nearly so and symmetric, the overlay is
one component, a broadcast reaches every node exactly once, and the second
broadcast travels the tree the first one pruned: one payload per node.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gossamer.core import PartsCore
from gossamer.lab.overlay_paper import bfs
from gossamer.membership.hyparview import HyParView
from gossamer.membership.plumtree import Delivered, Gossip
from gossamer.parts import overlay_parts
from gossamer.sim import NetworkConfig, Simulator
from gossamer.wire import registry


def grow(count: int, seed: int, settle_s: float) -> Simulator:
    sim = Simulator(seed, NetworkConfig.lan(), codec=registry)
    for i in range(count):
        seeds = [] if i == 0 else ["n0:7946"]
        sim.add_node(f"n{i}", lambda me, rng, s=seeds: PartsCore(me, rng, overlay_parts(seeds=s)))
        if i % 100 == 99:
            sim.run_for(0.5)  # 200 joins a second
    sim.run_for(settle_s)
    return sim


def check(sim: Simulator) -> None:
    parts: dict[str, HyParView] = {}
    for address in sim.addresses:
        core = sim.core(address)
        assert isinstance(core, PartsCore)
        part = core.part("overlay")
        assert isinstance(part, HyParView)
        parts[part.me.name] = part
    graph = {name: list(part.active) for name, part in parts.items()}
    for name, peers in graph.items():
        assert all(name in graph[peer] for peer in peers), f"{name}'s view is one-sided"
    sizes = Counter(len(peers) for peers in graph.values())
    assert sizes[5] >= 0.95 * len(graph) and min(sizes) >= 2, sizes
    assert len(bfs(graph, "n0")) == len(graph)

    rmr = []
    for rnd in range(2):
        origin = sim.addresses[rnd * 7 + 1]
        before = gossip_sent(sim)
        mid: bytes = sim.call(
            origin, lambda c, now: c.act("broadcast", lambda p: p.broadcast(b"x", now), now)
        )
        sim.run_for(2.0)
        got = Counter(
            sim.node_id(a).name
            for a in sim.addresses
            for _, event in sim.events(a)
            if isinstance(event, Delivered) and event.id == mid
        )
        assert len(got) == len(graph) and set(got.values()) == {1}  # the origin too
        rmr.append((gossip_sent(sim) - before) / (len(graph) - 1) - 1)
    assert rmr[0] > 2.5  # the first broadcast floods (and prunes)
    assert rmr[1] <= 0.01  # the second travels the tree


def gossip_sent(sim: Simulator) -> int:
    counted = sim.stats.by_type.get(Gossip.__name__)
    return counted.sent if counted is not None else 0


def test_five_hundred_nodes_form_one_symmetric_overlay() -> None:
    check(grow(500, 5, 120.0))


@pytest.mark.slow
def test_ten_thousand_nodes_in_the_event_driven_simulator() -> None:
    check(grow(10_000, 1, 200.0))
