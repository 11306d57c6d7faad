"""Draining: a member that stays in the cluster but is given no new work."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gossamer.core import NodeCore
from gossamer.effects import Core
from gossamer.errors import LocalError
from gossamer.failure.swim import SwimConfig, SwimCore
from gossamer.ids import Address, NodeId
from gossamer.membership.members import Claim, MemberUpdated, Status, as_stored, claim_order
from gossamer.parts import node_parts
from gossamer.ring.tracker import RingConfig
from gossamer.runtime.keyring import Keyring
from gossamer.sim import NetworkConfig, Simulator
from gossamer.testing.aio import eventually
from tests.helpers import Launch, launcher, sees_alive


def factory(me: NodeId, rng: random.Random) -> NodeCore:
    seeds = [] if me.name == "n0" else ["n0:7946"]
    return NodeCore(
        me, rng, node_parts(seeds=seeds, swim=SwimConfig.lan(), ring=RingConfig(vnodes=16))
    )


def set_draining(sim: Simulator, address: Address, draining: bool) -> None:
    def run(core: Core, now: float) -> None:
        assert isinstance(core, NodeCore)
        core.act("swim", lambda p: p.set_draining(draining, now), now)

    sim.call(address, run)


def test_a_draining_member_stays_a_member_and_leaves_the_ring() -> None:
    sim = Simulator(7, NetworkConfig.lan())
    for i in range(5):
        sim.add_node(f"n{i}", factory)
    sim.run_for(20.0)
    target = sim.addresses[2]
    set_draining(sim, target, True)
    sim.run_for(3.0)
    for address in sim.addresses:
        core = sim.core(address)
        assert isinstance(core, NodeCore)
        member = core.member("n2")
        assert member is not None and member.status is Status.ALIVE and member.draining
        assert "n2" not in core.ring.nodes
        if address != target:
            assert any(
                isinstance(e, MemberUpdated) and e.member.name == "n2" and e.member.draining
                for _, e in sim.events(address)
            )
    set_draining(sim, target, False)
    sim.run_for(3.0)
    for address in sim.addresses:
        core = sim.core(address)
        assert isinstance(core, NodeCore)
        member = core.member("n2")
        assert member is not None and not member.draining
        assert "n2" in core.ring.nodes


def test_draining_orders_claims_and_tombstones_forget_it() -> None:
    base = Claim("b", Address("h:1"), 1, 4, Status.ALIVE, b"", "b")
    drained = Claim("b", Address("h:1"), 1, 4, Status.ALIVE, b"", "b", True)
    assert claim_order(drained) > claim_order(base)  # a tie an honest cluster never makes
    dead = Claim("b", Address("h:1"), 1, 4, Status.DEAD, b"x", "c", True)
    assert as_stored(dead).draining is False and as_stored(dead).metadata == b""


def test_a_node_that_left_cannot_drain() -> None:
    sim = Simulator(8, NetworkConfig.lan())
    sim.add_node("n0", factory)
    sim.run_for(1.0)
    address = sim.addresses[0]

    def leave_then_drain(core: Core, now: float) -> None:
        assert isinstance(core, NodeCore)
        swim = core.part("swim")
        assert isinstance(swim, SwimCore)
        swim.leave(now)
        with pytest.raises(LocalError, match="left"):
            swim.set_draining(True, now)
        with pytest.raises(LocalError, match="bool"):
            swim.set_draining("yes", now)  # type: ignore[arg-type]

    sim.call(address, leave_then_drain)


@pytest_asyncio.fixture
async def launch(keyring: Keyring) -> AsyncIterator[Launch]:
    async with launcher(keyring) as start:
        yield start


@pytest.mark.asyncio
async def test_node_drain_and_undrain_on_sockets(launch: Launch) -> None:
    a = await launch("a")
    b = await launch("b", seeds=(a.address,))
    await eventually(lambda: sees_alive(a, ["a", "b"]) and sees_alive(b, ["a", "b"]), "joined")
    await b.drain()
    await eventually(lambda: (m := a.member("b")) is not None and m.draining, "seen draining")
    assert "b" not in a.ring.nodes and b.local.draining
    assert {m.name for m in a.members()} == {"a", "b"}  # still a member
    await b.undrain()
    await eventually(lambda: "b" in a.ring.nodes, "back on the ring")
