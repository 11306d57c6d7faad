"""One name, one live node (failure/names.py): the join gate, refutation and yielding,
by hand, in the simulator, and with two agents named alike on loopback."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from gossamer.core import NodeCore
from gossamer.effects import Emit, SendDatagram, SendStream
from gossamer.errors import LocalError
from gossamer.failure.names import JoinRefused, NameClash, NameRefused, RefusedJoin
from gossamer.failure.swim import Gossip, Ping, PushPull, PushPullReply, SwimCore
from gossamer.ids import Address, NodeId
from gossamer.membership.members import Claim, MemberLeft, MemberSuspect, Status
from gossamer.parts import node_parts
from gossamer.ring import RingConfig
from gossamer.runtime.keyring import Keyring
from gossamer.runtime.node import NameInUse, NodeStopped
from gossamer.sim import Simulator
from tests.helpers import core_of, launcher, sim_cluster

A = NodeId("a", Address("a:1"), 100)
A2 = NodeId("a", Address("a2:1"), 200)  # another process started as "a"
B = NodeId("b", Address("b:1"), 100)


def started(me: NodeId, **kw: object) -> SwimCore:
    core = SwimCore(me, random.Random(1), **kw)  # type: ignore[arg-type]
    core.start(0.0)
    core.drain()
    return core


def claim(who: NodeId, status: Status = Status.ALIVE, inc: int = 0) -> Claim:
    return Claim(who.name, who.address, who.epoch, inc, status, b"", who.name)


def emitted(core: SwimCore) -> list[object]:
    return [e.event for e in core.drain() if isinstance(e, Emit)]


# ---------------------------------------------------------------- the join gate


def test_a_seed_refuses_a_join_under_a_name_a_live_member_holds() -> None:
    seed = started(B)
    seed.handle(A.address, Gossip((claim(A),)), 1.0)
    seed.drain()
    seed.handle(A2.address, PushPull(True, (claim(A2),)), 2.0)
    effects = seed.drain()
    (reply,) = [e for e in effects if isinstance(e, SendStream)]
    assert reply.to == A2.address
    assert isinstance(reply.message, RefusedJoin) and reply.message.holder == claim(A)
    assert [e.event for e in effects if isinstance(e, Emit)] == [NameRefused(A2, A)]
    assert seed.member("a").address == A.address  # type: ignore[union-attr]
    assert seed.stats.joins_refused == 1
    note = seed.describe(NameRefused(A2, A))
    assert note is not None and note.severity == "warning" and str(A.address) in note.detail


def test_a_seed_refuses_a_join_under_its_own_name() -> None:
    seed = started(A)
    seed.handle(A2.address, PushPull(True, (claim(A2),)), 1.0)
    (reply,) = [e for e in seed.drain() if isinstance(e, SendStream)]
    assert isinstance(reply.message, RefusedJoin) and reply.message.holder.address == A.address
    assert seed.local.epoch == A.epoch


@pytest.mark.parametrize("status", [Status.SUSPECT, Status.DEAD, Status.LEFT])
def test_a_holder_that_is_not_alive_does_not_block_a_restart_elsewhere(status: Status) -> None:
    seed = started(B)
    seed.handle(A.address, Gossip((claim(A, status),)), 1.0)
    seed.drain()
    seed.handle(A2.address, PushPull(True, (claim(A2),)), 2.0)
    (reply,) = [e for e in seed.drain() if isinstance(e, SendStream)]
    assert isinstance(reply.message, PushPullReply)
    assert seed.member("a").address == A2.address  # type: ignore[union-attr]


def test_a_restart_at_the_same_address_and_a_periodic_sync_are_not_gated() -> None:
    seed = started(B)
    seed.handle(A.address, Gossip((claim(A),)), 1.0)
    seed.drain()
    again = NodeId("a", A.address, 300)
    seed.handle(A.address, PushPull(True, (claim(again),)), 2.0)
    assert seed.member("a").epoch == 300  # type: ignore[union-attr]
    # Only joins are gated; a member's own clash is settled by rules 2 and 3.
    seed.handle(A2.address, PushPull(False, (claim(A2),)), 3.0)
    assert seed.stats.joins_refused == 0


def test_a_refused_joiner_keeps_retrying_and_says_so_with_backoff() -> None:
    joiner = SwimCore(A2, random.Random(1), seeds=["b:1"])
    joiner.start(0.0)
    joiner.drain()
    joiner.handle(B.address, RefusedJoin(claim(A)), 0.1)
    assert emitted(joiner) == [JoinRefused(B.address, A)]
    assert not joiner.joined
    view = joiner.view()
    assert view.join_refused == JoinRefused(B.address, A) and view.yielded_to is None
    said = []
    for t in range(1, 40):
        joiner.on_timer("join", float(t))
        assert any(isinstance(e, SendStream) for e in joiner.drain())  # still trying
        joiner.handle(B.address, RefusedJoin(claim(A)), t + 0.1)
        said += [t for e in emitted(joiner) if isinstance(e, JoinRefused)]
    assert said == [5, 15, 35]  # again after 5 s, then 10, 20...
    note = joiner.describe(JoinRefused(B.address, A))
    assert note is not None and note.severity == "error" and "a:1" in note.detail
    # A refusal that does not name this node, or one after joining, changes nothing.
    joiner.handle(B.address, RefusedJoin(claim(B)), 50.0)
    assert joiner.stats.ignored == 1
    joiner.handle(B.address, PushPullReply((claim(B),)), 51.0)
    assert joiner.joined and joiner.view().join_refused is None


# ---------------------------------------------------------------- refutation and yielding


def test_the_holder_refutes_a_newer_life_of_its_name() -> None:
    holder = started(A)
    holder.handle(B.address, Gossip((claim(A2),)), 1.0)
    effects = holder.drain()
    assert holder.local.epoch == A2.epoch + 1 and holder.local.address == A.address
    assert holder.local.status is Status.ALIVE and holder.me.epoch == A2.epoch + 1
    events = [e.event for e in effects if isinstance(e, Emit)]
    assert events[0] == NameClash(A2, True, A2.epoch + 1)
    told = [e for e in effects if isinstance(e, SendDatagram) and e.to == A2.address]
    assert told and told[0].message.updates[0].epoch == A2.epoch + 1  # type: ignore[attr-defined]
    assert holder.stats.name_clashes == 1
    note = holder.describe(events[0])
    assert note is not None and note.severity == "error" and "a2:1" in note.detail


@pytest.mark.parametrize("status", [Status.SUSPECT, Status.DEAD, Status.LEFT])
def test_the_holder_refutes_a_newer_life_in_any_status(status: Status) -> None:
    holder = started(A)
    holder.handle(B.address, Gossip((claim(A2, status),)), 1.0)
    assert holder.local.epoch == A2.epoch + 1 and holder.local.status is Status.ALIVE


def test_the_refuted_life_yields_and_takes_no_further_part() -> None:
    intruder = started(A2)
    intruder.handle(B.address, Gossip((claim(B),)), 0.5)
    intruder.drain()
    refutation = claim(NodeId("a", A.address, A2.epoch + 1))
    intruder.handle(A.address, Gossip((refutation,)), 1.0)
    effects = intruder.drain()
    assert [e.event for e in effects if isinstance(e, Emit)] == [
        NameClash(refutation_id(), False, A2.epoch)
    ]
    assert intruder.view().yielded_to == refutation_id()
    assert intruder.local.epoch == A2.epoch  # it announces nothing under the name
    intruder.handle(B.address, Ping(1, "a", ()), 2.0)
    for key in ("probe", "gossip", "push-pull", "reap"):
        intruder.on_timer(key, 3.0)
    assert intruder.drain() == []
    with pytest.raises(LocalError, match="gave its name up"):
        intruder.update_metadata(b"x", 4.0)
    intruder.leave(5.0)
    assert intruder.leave_spread()
    assert intruder.drain() == []


def refutation_id() -> NodeId:
    return NodeId("a", A.address, A2.epoch + 1)


def test_a_clock_stepped_back_moves_past_the_earlier_life() -> None:
    # The same node, restarted with an epoch below its previous life's, at its address.
    earlier = NodeId("a", A.address, 500)
    now = started(A)
    now.handle(B.address, Gossip((claim(earlier),)), 1.0)
    assert now.local.epoch == 501 and now.view().yielded_to is None


def test_an_older_life_is_answered_with_ours_not_refuted() -> None:
    holder = started(A2)
    holder.handle(B.address, Gossip((claim(A),)), 1.0)
    (reply,) = [e for e in holder.drain() if isinstance(e, SendDatagram)]
    assert reply.to == B.address and reply.message.updates[0] == claim(A2)  # type: ignore[attr-defined]
    assert holder.local.epoch == A2.epoch


# ---------------------------------------------------------------- in the simulator


def ring_node(seeds: list[str]):  # type: ignore[no-untyped-def]
    def make(me: NodeId, rng: random.Random) -> NodeCore:
        return NodeCore(me, rng, node_parts(seeds=seeds, ring=RingConfig(vnodes=16)))

    return make


def tables(sim: Simulator, skip: set[Address]) -> set[tuple[tuple[str, str, int, str], ...]]:
    out = set()
    for addr in sim.addresses:
        if addr in skip or not sim.is_up(addr):
            continue
        core = core_of(sim, addr, NodeCore)
        out.add(
            tuple(
                (m.name, str(m.address), m.epoch, m.status.name)
                for m in core.members()
                if m.status.live
            )
        )
    return out


def rings(sim: Simulator, skip: set[Address]) -> set[object]:
    return {core_of(sim, a, NodeCore).ring for a in sim.addresses if a not in skip and sim.is_up(a)}


def agreed(sim: Simulator, skip: set[Address], name: str, address: Address) -> bool:
    """Every node but ``skip`` holds one table and one ring, with ``name`` alive at ``address``."""
    views = tables(sim, skip)
    if len(views) != 1 or len(rings(sim, skip)) != 1:
        return False
    (view,) = views
    return any(n == name and a == str(address) and s == "ALIVE" for n, a, _, s in view)


def cluster(seed: int) -> Simulator:
    sim = sim_cluster(5, seed, ring_node(["n0:7946"]))
    everyone = {f"n{i}" for i in range(5)}
    assert sim.run_until_true(
        lambda: all(
            {m.name for m in core_of(sim, a, NodeCore).members() if m.status.live} == everyone
            for a in sim.addresses
        ),
        30.0,
    ), seed
    return sim


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_second_node_named_alike_is_refused_and_changes_nothing(seed: int) -> None:
    sim = cluster(seed)
    holder = sim.address_of("n2")
    intruder = sim.add_node(
        "n2", ring_node(["n0:7946"]), "intruder:7946", epoch=1000, same_name=True
    )
    sim.run_for(20.0)
    core = core_of(sim, intruder, NodeCore)
    assert not core.joined, seed
    refusal = core.view().swim.join_refused
    assert refusal is not None and refusal.holder.address == holder
    assert agreed(sim, {intruder}, "n2", holder), (seed, tables(sim, {intruder}))
    # The intruder stops; a later graceful leave is seen as left, not suspected.
    sim.crash(intruder)
    sim.call(sim.address_of("n3"), lambda c, now: c.leave(now))  # type: ignore[attr-defined]
    sim.run_for(10.0)
    n1 = sim.address_of("n1")
    seen = [e for _, e in sim.events(n1) if getattr(e, "member", None) is not None]
    about_n3 = [type(e) for e in seen if e.member.name == "n3"]  # type: ignore[attr-defined]
    assert MemberLeft in about_n3 and MemberSuspect not in about_n3, (seed, about_n3)
    assert agreed(sim, {intruder, sim.address_of("n3")}, "n2", holder), seed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_node_let_in_while_the_holder_was_away_is_refuted_when_it_returns(seed: int) -> None:
    sim = cluster(seed)
    holder = sim.address_of("n2")
    others = [a for a in sim.addresses if a != holder]
    sim.partition([holder])  # the intruder, added later, is with the others
    # Away long enough to be declared dead: the intruder passes for a restart.
    assert sim.run_until_true(
        lambda: all(core_of(sim, a, NodeCore).member("n2").status is Status.DEAD for a in others),  # type: ignore[union-attr]
        60.0,
    ), seed
    intruder = sim.add_node(
        "n2", ring_node(["n0:7946"]), "intruder:7946", epoch=1000, same_name=True
    )
    assert sim.run_until_true(lambda: agreed(sim, {holder}, "n2", intruder), 30.0), seed
    sim.heal()
    assert sim.run_until_true(
        lambda: core_of(sim, intruder, NodeCore).view().swim.yielded_to is not None, 60.0
    ), seed
    assert sim.run_until_true(lambda: agreed(sim, {intruder}, "n2", holder), 60.0), (
        seed,
        tables(sim, {intruder}),
    )
    assert core_of(sim, holder, NodeCore).local.epoch == 1001
    kinds = [e for _, e in sim.events(holder) if isinstance(e, NameClash)]
    assert kinds and kinds[0].kept and kinds[0].other.address == intruder
    # It stays settled.
    sim.run_for(30.0)
    assert agreed(sim, {intruder}, "n2", holder), seed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_real_restart_at_a_new_address_gets_in(seed: int) -> None:
    sim = cluster(seed)
    old = sim.address_of("n2")
    sim.crash(old)
    # Started at once: refused while the old life still seems alive, then let in.
    new = sim.add_node("n2", ring_node(["n0:7946"]), "moved:7946", epoch=1000, same_name=True)
    assert sim.run_until_true(lambda: core_of(sim, new, NodeCore).joined, 60.0), seed
    assert sim.run_until_true(lambda: agreed(sim, {old}, "n2", new), 30.0), seed
    assert core_of(sim, new, NodeCore).view().swim.yielded_to is None
    assert not [
        e
        for a in sim.addresses
        if sim.is_up(a)
        for _, e in sim.events(a)
        if isinstance(e, NameClash)
    ]


def test_the_same_seed_gives_the_same_settlement() -> None:
    def trace(seed: int) -> list[str]:
        sim = cluster(seed)
        sim.partition([sim.address_of("n2")])
        sim.run_for(30.0)
        sim.add_node("n2", ring_node(["n0:7946"]), "intruder:7946", epoch=1000, same_name=True)
        sim.run_for(10.0)
        sim.heal()
        sim.run_for(30.0)
        return [f"{a} {t:.6f} {e!r}" for a in sim.addresses for t, e in sim.events(a)]

    assert trace(7) == trace(7)


def test_the_simulator_refuses_a_second_name_unless_asked() -> None:
    sim = cluster(1)
    with pytest.raises(LocalError, match="already exists"):
        sim.add_node("n2", ring_node([]), "other:7946")


# ---------------------------------------------------------------- on loopback


@pytest.mark.asyncio
async def test_a_node_keeps_the_epoch_it_took_and_a_yielded_node_raises_name_in_use(
    keyring: Keyring, tmp_path: Path
) -> None:
    async with launcher(keyring, engine_thread=False) as launch:
        node = await launch("x", data_dir=str(tmp_path))
        me = node.local
        intruder = NodeId("x", Address("127.0.0.9:9"), me.epoch + 10)
        node._engine.on_message(Address("127.0.0.9:9"), Gossip((claim(intruder),)))
        assert node.local.epoch == me.epoch + 11 and node.local.address == me.address
        assert (tmp_path / "x.epoch").read_text().strip() == str(me.epoch + 11)
        # Now the intruder's refutation: x yields, and says so.
        holder = NodeId("x", Address("127.0.0.9:9"), me.epoch + 12)
        events = node.events()
        node._engine.on_message(holder.address, Gossip((claim(holder),)))
        clash = await asyncio.wait_for(anext(events), 10)
        assert clash == NameClash(holder, False, me.epoch + 11)
        assert not node.joined
        with pytest.raises(NameInUse, match=r"127\.0\.0\.9:9") as caught:
            await node.wait_joined(1.0)
        assert caught.value.holder == holder
        with pytest.raises(NameInUse):
            node.members()
        await node.stop()
        with pytest.raises(NodeStopped):
            node.members()
