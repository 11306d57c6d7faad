"""The ring a node keeps: NodeCore's tracker in the simulator, and node.ring on loopback."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gossamer.core import NodeCore
from gossamer.effects import Core, Emit
from gossamer.errors import ConfigError, LocalError
from gossamer.failure.swim import SwimCore
from gossamer.ids import Address, NodeId, address
from gossamer.membership.members import MemberDead, MemberJoined
from gossamer.parts import node_parts
from gossamer.ring import Ring, RingChanged, RingConfig, diff
from gossamer.ring.part import RingPart
from gossamer.ring.tracker import RingTracker
from gossamer.runtime.node import EventStream, Node, NodeEvent
from gossamer.runtime.nodeconfig import NodeConfig, load_toml
from gossamer.sim import Simulator
from gossamer.testing.aio import eventually
from gossamer.wire import digest_bytes
from tests.helpers import core_of, sim_cluster
from tests.test_swim_machine import FAST, SwimMachine

VNODES = 64  # small rings: these tests are about following members, not balance


def ring_node(me: NodeId, rng: random.Random) -> NodeCore:
    return NodeCore(me, rng, node_parts(seeds=["n0:7946"], ring=RingConfig(vnodes=VNODES)))


def rings(sim: Simulator) -> list[Ring[str]]:
    out = []
    for a in sim.addresses:
        if sim.is_up(a):
            ring = core_of(sim, a, NodeCore).ring
            assert ring is not None
            out.append(ring)
    return out


def all_rings_are(sim: Simulator, names: set[str]) -> bool:
    return all(set(r.nodes) == names for r in rings(sim))


def test_a_node_core_starts_with_a_ring_of_itself_and_none_when_disabled() -> None:
    me = NodeId("a", address("10.0.0.1", 7946), 1)
    core = NodeCore(me, random.Random(1), node_parts(ring=RingConfig(vnodes=8)))
    core.start(0.0)
    assert core.ring == Ring(["a"], vnodes=8)
    assert not any(isinstance(e, Emit) and isinstance(e.event, RingChanged) for e in core.drain())
    assert NodeCore(me, random.Random(1), node_parts()).ring is None  # the simulator's default
    assert NodeCore(me, random.Random(1), node_parts(ring=RingConfig(enabled=False))).ring is None


@pytest.mark.parametrize("seed", [3, 4])
def test_every_node_computes_the_same_ring_and_hands_off_a_dead_nodes_ranges(seed: int) -> None:
    sim = sim_cluster(6, seed, ring_node)
    names = {f"n{i}" for i in range(6)}
    assert sim.run_until_true(lambda: all_rings_are(sim, names), 10.0) is not None, seed
    first = rings(sim)[0]
    assert all(r == first for r in rings(sim))
    # Equal rings place every key alike, in every node.
    keys = [f"key-{i}" for i in range(200)]
    assert len({tuple(r.owner(k) for k in keys) for r in rings(sim)}) == 1

    sim.crash(sim.address_of("n4"))
    assert sim.run_until_true(lambda: all_rings_are(sim, names - {"n4"}), 60.0) is not None
    n1 = sim.address_of("n1")
    events = [e for _, e in sim.events(n1)]
    change = next(e for e in reversed(events) if isinstance(e, RingChanged))
    assert change.removed == ("n4",) and change.added == ()
    assert change.moves and all(m.source == "n4" for m in change.moves)
    assert {m.target for m in change.moves} <= names - {"n4"}
    assert change.moves == diff(change.previous, change.ring)
    # The ring change comes right after the member event that caused it.
    at = events.index(change)
    assert isinstance(events[at - 1], MemberDead) and events[at - 1].member.name == "n4"


def test_joins_emit_a_ring_change_after_the_join() -> None:
    sim = sim_cluster(3, 7, ring_node)
    names = {"n0", "n1", "n2"}
    assert sim.run_until_true(lambda: all_rings_are(sim, names), 10.0) is not None
    events = [e for _, e in sim.events(sim.address_of("n0"))]
    changes = [e for e in events if isinstance(e, RingChanged)]
    assert {name for c in changes for name in c.added} == {"n1", "n2"}
    for change in changes:
        at = events.index(change)
        assert isinstance(events[at - 1], MemberJoined)
        # Keys move only to the nodes that joined.
        assert all(m.target in change.added for m in change.moves)
    part = core_of(sim, sim.address_of("n0"), NodeCore).part("ring")
    assert isinstance(part, RingPart) and part.tracker.changes == len(changes)


def test_ring_config_is_validated_and_read_from_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vnodes"):
        RingConfig(vnodes=0)
    with pytest.raises(ConfigError, match="enabled"):
        RingConfig(enabled="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="RingConfig"):
        NodeConfig.local("a", plaintext=True, ring=64)
    path = tmp_path / "node.toml"
    path.write_text('name = "a"\nplaintext = true\npreset = "local"\n[ring]\nvnodes = 512\n')
    assert load_toml(path).ring == RingConfig(vnodes=512)
    path.write_text('name = "a"\nplaintext = true\n[ring]\nvnode = 512\n')
    with pytest.raises(ConfigError, match="unknown"):
        load_toml(path)


# -------------------------------------------------------------------- on loopback


async def ring_change(stream: EventStream, what: str) -> RingChanged:
    async def read() -> RingChanged:
        event: NodeEvent
        async for event in stream:
            if isinstance(event, RingChanged):
                return event
        pytest.fail(f"the stream ended before {what}")

    return await asyncio.wait_for(read(), 30.0)


@pytest.mark.asyncio
async def test_node_ring_follows_the_live_members_on_loopback() -> None:
    ring = RingConfig(vnodes=VNODES)
    a = await Node.start(NodeConfig.local("ra", plaintext=True, ring=ring))
    nodes = [a]
    try:
        assert a.ring.nodes == ("ra",)
        stream = a.events()
        for name in ("rb", "rc"):
            nodes.append(
                await Node.start(
                    NodeConfig.local(name, plaintext=True, ring=ring, seeds=(a.address,))
                )
            )
        await eventually(
            lambda: all(n.ring.nodes == ("ra", "rb", "rc") for n in nodes),
            "every node's ring holds ra, rb and rc",
        )
        assert all(n.ring == a.ring for n in nodes)
        owners = {n.ring.owners("user:42", 3) for n in nodes}
        assert len(owners) == 1 and set(next(iter(owners))) == {"ra", "rb", "rc"}
        added: set[str] = set()
        while added != {"rb", "rc"}:
            change = await ring_change(stream, "rb and rc join the ring")
            added |= set(change.added)
            assert all(m.source is not None and m.target in change.added for m in change.moves)

        leaver = nodes.pop()
        await leaver.leave()
        await leaver.stop()
        change = await ring_change(stream, "rc leaves the ring")
        assert change.removed == ("rc",)
        assert all(m.source == "rc" for m in change.moves)
        await eventually(lambda: a.ring.nodes == ("ra", "rb"), "ra's ring drops rc")
        records = [r for r in a._engine.recent_events() if r.kind == "ring"]
        assert records and records[-1].detail == "2 nodes: -rc"
        assert a._engine.counters().ring.changes >= 3  # type: ignore[attr-defined]
    finally:
        for n in reversed(nodes):
            await n.stop()


@pytest.mark.asyncio
async def test_a_node_without_a_ring_says_so() -> None:
    a = await Node.start(NodeConfig.local("rx", plaintext=True, ring=RingConfig(enabled=False)))
    try:
        with pytest.raises(LocalError, match=r"ring\.enabled"):
            _ = a.ring
        assert "ring" not in a._engine.view()
    finally:
        await a.stop()


# -------------------------------------------------------------------- under random faults


class RingMachine(SwimMachine):
    """The SWIM machine's schedules, with whole NodeCores keeping rings.

    Always: every node's ring holds exactly its live members (the tracker
    never misses a change).  At quiescence, besides SWIM's checks: every live
    node holds the same ring, the ring of the live nodes.
    """

    def make_core(self, me: NodeId, rng: random.Random, peers: list[Address]) -> Core:
        return NodeCore(me, rng, node_parts(swim=FAST, seeds=peers, ring=RingConfig(vnodes=16)))

    def node_cores(self) -> dict[Address, NodeCore]:
        out = {}
        for addr in self.up_nodes():
            out[addr] = core_of(self.sim, addr, NodeCore)
        return out

    def cores(self) -> dict[Address, SwimCore]:
        return {addr: core.swim for addr, core in self.node_cores().items()}

    def always(self) -> None:
        super().always()
        for core in self.node_cores().values():
            ring = core.ring
            assert ring is not None
            live = tuple(m.name for m in core.live_members())
            self.require(ring.nodes == live, f"{core.me.name}'s ring {ring.nodes} != live {live}")

    def at_quiescence(self) -> None:
        super().at_quiescence()
        want = Ring(sorted(c.me.name for c in self.node_cores().values()), vnodes=16)
        for core in self.node_cores().values():
            self.require(core.ring == want, f"{core.me.name}'s ring {core.ring} != {want}")


TestRingCluster = RingMachine.TestCase
TestRingCluster.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_reading_moves_does_not_change_the_trace_digest() -> None:
    tracker = RingTracker(RingConfig(vnodes=8))
    tracker.start(["a"])
    change = tracker.update(["a", "b"])
    assert change is not None
    before = digest_bytes(change)
    assert change.moves  # computed and cached now
    assert digest_bytes(change) == before


def test_the_tracker_releases_superseded_rings() -> None:
    tracker = RingTracker(RingConfig(vnodes=8))
    tracker.start(["a"])
    first = tracker.ring
    first.owner("x")  # the application looked a key up: points and table built
    change = tracker.update(["a", "b"])
    assert change is not None and change.previous is first
    assert first._table is None and first._points is not None  # kept for the derive
    second = tracker.ring
    second.owner("x")
    tracker.update(["a", "b", "c"])
    assert first._points is None and second._table is None
    # An event that outlived its rings still answers, by rebuilding them.
    assert change.moves == diff(Ring(["a"], vnodes=8), Ring(["a", "b"], vnodes=8))
