"""The fast path to a crashed process's death (``failure/refusals.py``), in the simulator.

A killed process's streams close and its port refuses: its neighbours
witness it and the cluster declares it dead in milliseconds.  A paused
process (SIGSTOP) keeps its port and links: only SWIM's suspicion may
declare it dead.  A node that left is seen left, never dead.
"""

from __future__ import annotations

import dataclasses
import random

from gossamer.core import NodeCore
from gossamer.failure.swim import SwimConfig
from gossamer.ids import NodeId
from gossamer.membership.hyparview import HyParView, HyParViewConfig
from gossamer.membership.members import MemberDead, MemberLeft, Status
from gossamer.membership.plumtree import PlumtreeConfig
from gossamer.parts import node_parts
from gossamer.sim import NetworkConfig, Simulator
from gossamer.wire import registry

N = 20


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
        ),
    )


def cluster(seed: int, count: int = N) -> Simulator:
    sim = Simulator(seed, NetworkConfig.lan(), codec=registry, wire_check=True)
    for i in range(count):
        sim.add_node(f"n{i}", factory)
        sim.run_for(0.05)
    sim.run_for(30.0)
    for address in sim.addresses:
        core = sim.core(address)
        assert isinstance(core, NodeCore)
        alive = [m for m in core.members() if m.status is Status.ALIVE]
        assert len(alive) == count, f"{address} sees {len(alive)} alive"
    return sim


def status_everywhere(sim: Simulator, name: str) -> set[Status]:
    out = set()
    for address in sim.addresses:
        core = sim.core(address)
        if sim.is_up(address) and isinstance(core, NodeCore) and core.me.name != name:
            member = core.member(name)
            assert member is not None
            out.add(member.status)
    return out


def swim_stat(sim: Simulator, field: str) -> int:
    total = 0
    for address in sim.addresses:
        core = sim.core(address)
        if sim.is_up(address) and isinstance(core, NodeCore):
            total += getattr(core.swim.stats, field)
    return total


def test_a_killed_process_is_dead_everywhere_within_a_second() -> None:
    sim = cluster(seed=1)
    victim = sim.addresses[7]
    name = sim.node_id(victim).name
    killed_at = sim.now
    sim.kill(victim)
    done = sim.run_until_true(lambda: status_everywhere(sim, name) == {Status.DEAD}, 5.0)
    assert done, f"statuses after 5 s: {status_everywhere(sim, name)}"
    assert sim.now - killed_at < 1.0
    assert swim_stat(sim, "fast_deaths") >= N - 1 - 3  # most decide from the witnesses
    assert swim_stat(sim, "refusals_witnessed") >= 1
    # The overlay dropped it too, and no one else was harmed.
    for address in sim.addresses:
        core = sim.core(address)
        if sim.is_up(address) and isinstance(core, NodeCore):
            overlay = core.part("overlay")
            assert isinstance(overlay, HyParView)
            assert name not in overlay.active and name not in overlay.passive
            live = [m for m in core.members() if m.status is Status.ALIVE]
            assert len(live) == N - 1


def test_a_crashed_machine_is_left_to_swim() -> None:
    sim = cluster(seed=2)
    victim = sim.addresses[4]
    sim.crash(victim)  # the machine vanished: no close, no refusal
    sim.run_for(1.0)
    assert swim_stat(sim, "fast_deaths") == 0
    name = sim.node_id(victim).name
    assert sim.run_until_true(lambda: status_everywhere(sim, name) == {Status.DEAD}, 60.0)
    assert swim_stat(sim, "fast_deaths") == 0


def test_a_stopped_process_is_never_declared_dead_by_the_fast_path() -> None:
    sim = cluster(seed=3)
    victim = sim.addresses[9]
    name = sim.node_id(victim).name
    sim.pause(victim, 1e6, 1e6)  # SIGSTOP: its kernel keeps its links and port
    sim.run_for(60.0)
    assert swim_stat(sim, "fast_deaths") == 0
    assert swim_stat(sim, "refusals_witnessed") == 0
    assert status_everywhere(sim, name) == {Status.DEAD}  # SWIM's own suspicion ran out
    events = [e for a in sim.addresses if a != victim for _, e in sim.events(a)]
    assert all(e.source != "" for e in events if isinstance(e, MemberDead))


def test_a_node_that_left_and_closed_its_port_is_left_not_dead() -> None:
    sim = cluster(seed=4)
    leaver = sim.addresses[5]
    name = sim.node_id(leaver).name
    sim.call(leaver, lambda core, now: core.leave(now))
    sim.run_for(2.0)
    sim.kill(leaver)  # the process exits: its port closes
    sim.run_for(5.0)
    assert status_everywhere(sim, name) == {Status.LEFT}
    for address in sim.addresses:
        if address != leaver:
            kinds = [
                type(e)
                for _, e in sim.events(address)
                if getattr(e, "member", None) and e.member.name == name
            ]  # type: ignore[attr-defined]
            assert MemberLeft in kinds and MemberDead not in kinds, f"{address}: {kinds}"


def test_two_witnesses_suffice_in_a_three_node_cluster_and_one_in_two() -> None:
    for count in (2, 3):
        sim = cluster(seed=5, count=count)
        victim = sim.addresses[-1]
        name = sim.node_id(victim).name
        sim.kill(victim)
        dead = lambda s=sim, n=name: status_everywhere(s, n) == {Status.DEAD}  # noqa: E731
        assert sim.run_until_true(dead, 1.0)


def test_the_fast_path_can_be_turned_off() -> None:
    def off(me: NodeId, rng: random.Random) -> NodeCore:
        core = factory(me, rng)
        core.swim.config = dataclasses.replace(core.swim.config, refusal_witnesses=0)
        return core

    sim = Simulator(6, NetworkConfig.lan(), codec=registry)
    for i in range(5):
        sim.add_node(f"n{i}", off)
    sim.run_for(20.0)
    sim.kill(sim.addresses[3])
    sim.run_for(1.0)
    assert swim_stat(sim, "fast_deaths") == 0


def test_a_member_with_one_link_still_dies_fast_as_the_others_knock_themselves() -> None:
    lonely_config = dataclasses.replace(
        HyParViewConfig.local(), active_size=1, min_active=1, shuffle_active=1
    )

    def maybe_lonely(me: NodeId, rng: random.Random) -> NodeCore:
        if me.name != "n9":
            return factory(me, rng)
        return NodeCore(
            me,
            rng,
            node_parts(
                seeds=["n0:7946"],
                swim=SwimConfig.lan(),
                overlay=lonely_config,
                broadcast=PlumtreeConfig.local(),
            ),
        )

    sim = Simulator(7, NetworkConfig.lan(), codec=registry, wire_check=True)
    for i in range(12):
        sim.add_node(f"n{i}", maybe_lonely)
        sim.run_for(0.05)
    sim.run_for(30.0)
    victim = sim.address_of("n9")
    core = sim.core(victim)
    assert isinstance(core, NodeCore)
    overlay = core.part("overlay")
    assert isinstance(overlay, HyParView) and len(overlay.active) == 1
    sim.kill(victim)
    assert sim.run_until_true(lambda: status_everywhere(sim, "n9") == {Status.DEAD}, 1.0)
    assert swim_stat(sim, "refusals_witnessed") >= 3  # the one link's, and knocks of its own
