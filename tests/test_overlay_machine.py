"""The overlay under random faults: HyParView and Plumtree in the cluster machine.

Random schedules of partitions, one-way blocks, crashes, restarts, pauses,
loss and single steps, over nodes that run only the overlay (a
``PartsCore`` of HyParView and Plumtree).  Always: the views are disjoint,
bounded and never hold the node itself, and a node holds streams to its
active peers and its requests in flight and to no one else.  At quiescence
(the network whole for ``settle_s``, then no view change for ``STILL_S``):
every active view is symmetric and holds only current lives of live nodes;
while a seed is up, such a moment comes within ``QUIET_WITHIN_S`` with the
live nodes one component, and a broadcast sent then reaches every live
node exactly once.

The bound a healed partition merges in: a peer lost to the partition is
retried every ``lost_retry_max_s`` at most, so once the network is whole
the first retry that crosses forces a link within ``lost_retry_max_s`` plus
a shuffle period (and a request's timeout); ``settle_s`` is that bound plus
the time the repairs that follow take, and :func:`merge_bound_s` states it.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from gossamer.core import PartsCore
from gossamer.effects import Core
from gossamer.ids import Address, NodeId
from gossamer.lab.overlay_paper import bfs
from gossamer.membership.hyparview import HyParView, HyParViewConfig, NeighborDown, NeighborUp
from gossamer.membership.plumtree import Delivered, Plumtree, PlumtreeConfig
from gossamer.parts import overlay_parts
from gossamer.sim import NetworkConfig
from gossamer.testing.cluster import ClusterMachine
from gossamer.wire import registry

FAST = HyParViewConfig(
    active_size=3,
    passive_size=10,
    active_walk_length=3,
    passive_walk_length=1,
    shuffle_walk_length=3,
    shuffle_active=2,
    shuffle_passive=3,
    shuffle_interval_s=1.0,
    neighbor_timeout_s=1.0,
    lost_retry_max_s=4.0,
    join_retry_interval_s=1.0,
    rewire_periods=30,
)
TREE = PlumtreeConfig(graft_timeout_s=0.2, graft_retry_s=0.1)


SEEDS = 2
"""Every node's seeds are the first two nodes."""
STILL_S = 2 * FAST.neighbor_timeout_s
"""How long no view may change before the overlay counts as quiet."""
QUIET_WITHIN_S = 90.0
"""How long after a settle the overlay must have become quiet and whole: a
split into full pieces waits for a swap (one in rewire_periods per node)."""


def merge_bound_s(config: HyParViewConfig) -> float:
    """How long after a heal the two sides of a partition are one component."""
    return config.lost_retry_max_s + config.shuffle_interval_s + config.neighbor_timeout_s


class OverlayMachine(ClusterMachine):
    codec = registry
    min_nodes = 3
    max_nodes = 7
    network = NetworkConfig(latency_s=0.001, jitter_s=0.004)
    settle_s = merge_bound_s(FAST) + 14.0

    def make_core(self, me: NodeId, rng: random.Random, peers: list[Address]) -> Core:
        seeds = [p for p in peers[:SEEDS] if p != me.address]
        return PartsCore(me, rng, overlay_parts(seeds=seeds, overlay=FAST, broadcast=TREE))

    def views(self) -> dict[Address, HyParView]:
        out: dict[Address, HyParView] = {}
        for address in self.up_nodes():
            core = self.sim.core(address)
            assert isinstance(core, PartsCore)
            part = core.part("overlay")
            assert isinstance(part, HyParView)
            out[address] = part
        return out

    def always(self) -> None:
        for view in self.views().values():
            active, passive = set(view.active), set(view.passive)
            name = view.me.name
            self.require(not active & passive, f"{name}: a peer is active and passive")
            self.require(name not in active | passive, f"{name} holds itself")
            self.require(len(active) <= FAST.active_size, f"{name}: active view too large")
            self.require(len(passive) <= FAST.passive_size, f"{name}: passive view too large")
            # A node holds streams to its active peers and its requests in flight, no others.
            core = self.sim.core(view.me.address)
            assert isinstance(core, PartsCore)
            used = {peer.address for peer in view.active.values()} | set(view.view().pending)
            self.require(
                core.linked() == used,
                f"{name} holds streams to {sorted(core.linked())}, uses {sorted(used)}",
            )

    def at_quiescence(self) -> None:
        # Peers lost for good (crashed) are retried for lost_ttl_s, so requests
        # to the dead are in flight at any instant and change nothing.
        # Quiescence: no request to a live node, and no view changed for
        # STILL_S (a Disconnect or an accept in flight changes one soon).
        # Where n * active_size is odd a node is always a slot short and moves
        # a link every starved_rounds periods, which may split a small overlay
        # for a while: one component is owed within QUIET_WITHIN_S, at a quiet
        # moment.  With both seeds down, a node restarted since knows no one
        # and nothing can introduce it: one component is owed only while a
        # seed lives.
        up = set(self.up_nodes())
        whole = any(self.sim.is_up(seed) for seed in self.nodes[:SEEDS])

        def settled() -> bool:
            views = self.views().values()
            if any(a in up for v in views for a in v.view().pending):
                return False
            changes = [
                t
                for a in up
                for t, e in self.sim.events(a)
                if isinstance(e, NeighborUp | NeighborDown)
            ]
            if self.sim.now - max(changes, default=0.0) < STILL_S:
                return False
            graph = {v.me.name: list(v.active) for v in views}
            return not whole or len(bfs(graph, next(iter(graph)))) == len(graph)

        at = self.sim.run_until_true(settled, timeout_s=QUIET_WITHIN_S, poll_s=0.05)
        views = self.views()
        graph = {v.me.name: list(v.active) for v in views.values()}
        reached = sorted(bfs(graph, next(iter(graph))))
        self.require(
            at is not None,
            f"no quiet moment with one component in {QUIET_WITHIN_S} s: "
            f"{reached} of {sorted(graph)}",
        )
        lives = {v.me.name: v.me.epoch for v in views.values()}
        for view in views.values():
            name = view.me.name
            for peer in view.active.values():
                self.require(
                    lives.get(peer.name) == peer.epoch,
                    f"{name} keeps {peer.name}#{peer.epoch} active; live: {lives.get(peer.name)}",
                )
                other = next(v for v in views.values() if v.me.name == peer.name)
                self.require(name in other.active, f"{name} -> {peer.name} is one-sided")
        if whole:
            self._broadcast_reaches_everyone()

    def _broadcast_reaches_everyone(self) -> None:
        sim = self.sim
        origin = self.up_nodes()[0]
        before = {a: len(sim.events(a)) for a in self.up_nodes()}
        mid: bytes = sim.call(
            origin, lambda core, now: core.act("broadcast", lambda p: p.broadcast(b"q", now), now)
        )
        sim.run_for(3.0)
        for address in self.up_nodes():  # the origin's subscribers hear it too
            got = Counter(
                e.id for _, e in sim.events(address)[before[address] :] if isinstance(e, Delivered)
            )
            self.require(got[mid] == 1, f"{address} delivered the broadcast {got[mid]} times")


TestOverlayCluster = OverlayMachine.TestCase
TestOverlayCluster.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class LargeOverlayMachine(OverlayMachine):
    max_nodes = 14


@pytest.mark.slow
def test_overlay_cluster_long_schedules() -> None:
    run_state_machine_as_test(
        LargeOverlayMachine,
        settings=settings(
            max_examples=300,
            stateful_step_count=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_plumtree_is_part_of_every_node() -> None:
    core = PartsCore(
        NodeId("a", Address("a:1"), 1),
        random.Random(1),
        overlay_parts(overlay=FAST, broadcast=TREE),
    )
    assert isinstance(core.part("broadcast"), Plumtree)
