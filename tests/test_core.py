"""NodeCore: routing between the sub-cores, and a whole node in the simulator."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from gossamer.config import WireConfig
from gossamer.core import NodeCore
from gossamer.effects import CancelTimer, Emit, PartContext, SetTimer
from gossamer.errors import LocalError
from gossamer.failure.swim import Gossip, Ping, SwimConfig, SwimCore
from gossamer.ids import Address, NodeId, address
from gossamer.membership.members import Claim, MemberLeft, MemberUpdated, Status
from gossamer.parts import CATALOGUE, build_parts, node_parts
from gossamer.sim import NetworkConfig, Simulator
from gossamer.wire import TYPE_ID_RANGES, Message, Registry, registry
from tests.helpers import core_of, sim_cluster

_other = Registry("test-core")


@_other.message(1)
@dataclasses.dataclass(frozen=True, slots=True)
class Stranger(Message):
    text: str


def node(name: str = "a", seeds: tuple[str, ...] = ()) -> NodeCore:
    return NodeCore(
        NodeId(name, address("10.0.0.1", 7946), 1), random.Random(1), node_parts(seeds=seeds)
    )


def test_every_protocol_message_has_a_route_in_its_parts_block() -> None:
    # A message class added to the protocol table without a route would be
    # dropped silently; one outside its part's block could take another's id.
    sections = {entry.name: entry.section() for entry in CATALOGUE}
    me = NodeId("a", address("10.0.0.1", 7946), 1)
    core = NodeCore(me, random.Random(1), build_parts(sections, PartContext()))
    assert [p.name for p in core.parts] == [entry.name for entry in CATALOGUE]
    routes = core.routes
    assert set(registry.classes().values()) == set(routes)
    for cls, part in routes.items():
        assert registry.type_id_of(cls) in TYPE_ID_RANGES[part], (cls, part)
    blocks = sorted(TYPE_ID_RANGES.values(), key=lambda r: r.start)
    assert all(a.stop <= b.start for a, b in itertools.pairwise(blocks))


def test_timer_keys_are_wrapped_and_routed_back() -> None:
    core = node()
    core.start(0.0)
    effects = core.drain()
    keys = [e.key for e in effects if isinstance(e, SetTimer | CancelTimer)]
    assert keys and all(isinstance(k, tuple) and k[0] == "swim" for k in keys)
    probe = next(e for e in effects if isinstance(e, SetTimer) and e.key == ("swim", "probe"))
    core.on_timer(probe.key, probe.at)
    assert core.stats.stray_timers == 0
    core.on_timer("probe", 5.0)  # not a key NodeCore ever set
    core.on_timer(("ring", "x"), 5.0)
    assert core.stats.stray_timers == 2


def test_messages_no_sub_core_owns_are_counted_and_dropped() -> None:
    core = node()
    core.start(0.0)
    core.drain()
    core.handle(Address("10.0.0.2:7946"), Stranger("hi"), 1.0)
    assert core.stats.unrouted == 1
    assert core.drain() == []
    core.handle(Address("10.0.0.2:7946"), Ping(1, "a", ()), 1.0)
    assert core.stats.unrouted == 1
    assert core.swim.stats.misdirected == 0  # the ping reached SWIM and was for us


def test_application_calls_check_at_once() -> None:
    core = node()
    core.start(0.0)
    core.update_metadata(b"v2", 1.0)
    assert core.local.metadata == b"v2"
    assert any(isinstance(e, Emit) and isinstance(e.event, MemberUpdated) for e in core.drain())
    with pytest.raises(LocalError):
        core.update_metadata("v3", 2.0)  # type: ignore[arg-type]
    with pytest.raises(LocalError):
        core.update_metadata(b"x" * 10_000, 2.0)
    core.leave(3.0)
    assert core.leaving and core.local.status is Status.LEFT
    with pytest.raises(LocalError, match="left"):
        core.update_metadata(b"v4", 4.0)


def node_core(me: NodeId, rng: random.Random) -> NodeCore:
    return NodeCore(me, rng, node_parts(seeds=["n0:7946"]))


def sees(sim: Simulator, names: set[str]) -> bool:
    return all(
        {m.name for m in core_of(sim, a, NodeCore).live_members()} == names
        for a in sim.addresses
        if sim.is_up(a)
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_a_cluster_of_node_cores_joins_detects_leaves_and_updates(seed: int) -> None:
    sim = sim_cluster(8, seed, node_core)
    names = {f"n{i}" for i in range(8)}
    assert sim.run_until_true(lambda: sees(sim, names), 10.0) is not None

    sim.crash(sim.address_of("n5"))
    assert sim.run_until_true(lambda: sees(sim, names - {"n5"}), 60.0) is not None

    n6 = sim.address_of("n6")
    sim.call(n6, lambda c, now: c.update_metadata(b"role=db", now))  # type: ignore[attr-defined]

    def everyone_has_metadata() -> bool:
        return all(
            (m := core_of(sim, a, NodeCore).member("n6")) is not None and m.metadata == b"role=db"
            for a in sim.addresses
            if sim.is_up(a)
        )

    # Gossip alone misses a node in about 2% of 8-node runs; the next
    # push-pull (every 30 s) brings it the news.
    assert sim.run_until_true(everyone_has_metadata, 40.0) is not None
    assert any(isinstance(e, MemberUpdated) for _, e in sim.events(sim.address_of("n0")))

    n7 = sim.address_of("n7")
    sim.call(n7, lambda c, now: c.leave(now))  # type: ignore[attr-defined]
    assert sim.run_until_true(lambda: core_of(sim, n7, NodeCore).leave_spread(), 10.0) is not None
    sim.crash(n7)  # the driver stops a node once its leave has spread

    def everyone_saw_left() -> bool:
        return all(
            (m := core_of(sim, a, NodeCore).member("n7")) is not None and m.status is Status.LEFT
            for a in sim.addresses
            if sim.is_up(a)
        )

    assert sim.run_until_true(everyone_saw_left, 10.0) is not None
    sim.run_for(30.0)  # the left node is never taken for dead
    assert everyone_saw_left()
    assert any(
        isinstance(e, MemberLeft) and e.member.name == "n7"
        for _, e in sim.events(sim.address_of("n1"))
    )


def test_node_core_is_transparent_to_swim() -> None:
    # NodeCore adds no randomness and takes no decision: a cluster of
    # NodeCores sends exactly what a cluster of bare SWIM cores sends.
    def run(factory: object) -> object:
        sim = Simulator(7, NetworkConfig.lan(), codec=registry, wire=WireConfig.lan())
        for i in range(6):
            sim.add_node(f"n{i}", factory)  # type: ignore[arg-type]
        sim.run_for(5.0)
        sim.crash(sim.address_of("n3"))
        sim.run_for(20.0)
        return sim.stats

    bare = run(lambda me, rng: SwimCore(me, rng, seeds=["n0:7946"]))
    composed = run(node_core)
    assert bare == composed


def test_swim_config_passes_through() -> None:
    cfg = dataclasses.replace(SwimConfig.local(), probe_interval_s=2.0, probe_timeout_s=0.5)
    core = NodeCore(
        NodeId("a", address("10.0.0.1", 7946), 1), random.Random(1), node_parts(swim=cfg)
    )
    assert core.config is cfg


def test_the_local_entry_is_dated_at_boot_on_the_drivers_clock() -> None:
    core = node()
    core.start(1_000.0)  # the runtime's clock is the loop's, not zero
    assert core.local.since == 1_000.0


def test_a_leave_with_nobody_to_tell_has_spread_at_once() -> None:
    alone = node()
    alone.start(0.0)
    alone.leave(1.0)
    assert alone.leave_spread()
    joined = node(seeds=("10.0.0.2:7946",))
    joined.start(0.0)
    joined.handle(
        Address("10.0.0.2:7946"),
        Gossip((Claim("b", Address("10.0.0.2:7946"), 1, 0, Status.ALIVE, b"", "b"),)),
        0.5,
    )
    joined.leave(1.0)
    assert not joined.leave_spread()  # b must hear it first
