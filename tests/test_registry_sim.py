"""Groups and names replicated in the simulator: the registry part with SWIM and the overlay."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from gossamer.core import NodeCore
from gossamer.crdt.names import NameLost
from gossamer.effects import Core
from gossamer.failure.swim import SwimConfig
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import HyParViewConfig
from gossamer.membership.members import Status
from gossamer.membership.plumtree import PlumtreeConfig
from gossamer.parts import node_parts
from gossamer.registry.part import RegistryConfig, RegistryPart
from gossamer.sim import NetworkConfig, Simulator
from gossamer.wire import registry

_T = TypeVar("_T")


def factory(me: NodeId, rng: random.Random) -> NodeCore:
    seeds = [] if me.name == "n0" else ["n0:7946"]
    return NodeCore(
        me,
        rng,
        node_parts(
            seeds=seeds,
            swim=SwimConfig.lan(),
            overlay=HyParViewConfig.local(),
            broadcast=PlumtreeConfig.local(),
            registry=RegistryConfig.local(),
        ),
    )


def cluster(seed: int, count: int) -> Simulator:
    sim = Simulator(seed, NetworkConfig.lan(), codec=registry, wire_check=True)
    for i in range(count):
        sim.add_node(f"n{i}", factory)
        sim.run_for(0.05)
    sim.run_for(20.0)
    for address in sim.addresses:
        core = sim.core(address)
        assert isinstance(core, NodeCore)
        alive = [m for m in core.members() if m.status is Status.ALIVE]
        assert len(alive) == count, f"{address} sees {len(alive)} alive"
    return sim


def part(sim: Simulator, address: Address) -> RegistryPart:
    core = sim.core(address)
    assert isinstance(core, NodeCore)
    found = core.part("registry")
    assert isinstance(found, RegistryPart)
    return found


def act(sim: Simulator, address: Address, fn: Callable[[RegistryPart, float], _T]) -> _T:
    def run(core: Core, now: float) -> _T:
        assert isinstance(core, NodeCore)
        return core.act("registry", lambda p: fn(p, now), now)

    return sim.call(address, run)


def members_everywhere(
    sim: Simulator, group: str, scope: str = ""
) -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(part(sim, a).groups.members(scope or "default", group))
        for a in sim.addresses
        if sim.is_up(a)
    }


def test_a_join_reaches_every_node_and_a_death_removes_it() -> None:
    sim = cluster(seed=3, count=8)
    a = sim.addresses[3]
    act(sim, a, lambda p, now: p.join("default", "workers", "w1", now))
    act(sim, a, lambda p, now: p.join("default", "workers", "w2", now))
    sim.run_for(0.2)
    assert members_everywhere(sim, "workers") == {(("n3", "w1"), ("n3", "w2"))}
    sim.kill(a)
    sim.run_for(5.0)
    assert members_everywhere(sim, "workers") == {()}


def test_a_burst_of_joins_is_a_handful_of_broadcasts() -> None:
    sim = cluster(seed=4, count=6)
    a = sim.addresses[1]

    def burst(p: RegistryPart, now: float) -> None:
        for i in range(10_000):
            p.join("default", "bulk", f"m{i}", now)

    act(sim, a, burst)
    sim.run_for(1.0)
    sizes = {len(part(sim, x).groups.members("default", "bulk")) for x in sim.addresses}
    assert sizes == {10_000}
    assert part(sim, a).stats.deltas_sent <= 20


def test_concurrent_claims_across_a_partition_keep_one_winner_and_tell_the_loser() -> None:
    sim = cluster(seed=5, count=6)
    left, right = sim.addresses[:3], sim.addresses[3:]
    sim.partition(left, right)
    sim.run_for(1.0)
    act(sim, left[1], lambda p, now: p.register("leader", "x", now))
    sim.run_for(0.5)
    act(sim, right[1], lambda p, now: p.register("leader", "y", now))
    act(sim, right[1], lambda p, now: p.register("leader", "y", now))
    sim.run_for(30.0)
    sim.heal()
    sim.run_for(30.0)
    winners = {part(sim, x).names.winner("leader") for x in sim.addresses}
    assert len(winners) == 1
    (winner,) = winners
    assert winner is not None
    losers = [e for x in sim.addresses for _, e in sim.events(x) if isinstance(e, NameLost)]
    assert len(losers) == 1, losers
    assert losers[0].winner == winner


def test_what_erlang_loses_after_a_partition_is_all_here_after_the_heal() -> None:
    # pg2 lost members joined on either side of a partition; global killed one
    # holder of a name claimed on both without telling the application why.
    sim = cluster(seed=6, count=6)
    left, right = sim.addresses[:3], sim.addresses[3:]
    act(sim, left[0], lambda p, now: p.join("default", "workers", "before", now))
    sim.run_for(1.0)
    sim.partition(left, right)
    sim.run_for(15.0)  # long enough for SWIM to declare the other side dead
    for i, address in enumerate(sim.addresses):
        act(sim, address, lambda p, now, i=i: p.join("default", "workers", f"w{i}", now))
    act(sim, left[1], lambda p, now: p.register("scheduler", "left", now))
    act(sim, right[1], lambda p, now: p.register("scheduler", "right", now))
    sim.run_for(15.0)
    sim.heal()
    sim.run_for(30.0)
    want = sorted([("n0", "before")] + [(f"n{i}", f"w{i}") for i in range(6)])
    assert members_everywhere(sim, "workers") == {tuple(want)}  # nothing lost
    winners = {part(sim, x).names.winner("scheduler") for x in sim.addresses}
    assert len(winners) == 1
    told = [(x, e) for x in sim.addresses for _, e in sim.events(x) if isinstance(e, NameLost)]
    assert len(told) == 1  # the loser, once, with the winner named
    (winner,) = winners
    assert told[0][1].winner == winner and told[0][1].lost.node != winner.node
