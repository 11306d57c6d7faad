"""The overlay's links judged by φ: heartbeats, silent peers dropped and replaced."""

from __future__ import annotations

import random

import pytest

from gossamer.core import PartsCore
from gossamer.effects import CloseStream, Emit, Knock, SendStream
from gossamer.errors import ConfigError
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import (
    Heartbeat,
    HyParView,
    HyParViewConfig,
    Neighbor,
    Peer,
    PortClosed,
)
from gossamer.membership.members import (
    Member,
    MemberDead,
    MemberJoined,
    MemberLeft,
    Status,
)
from gossamer.membership.plumtree import PlumtreeConfig
from gossamer.parts import overlay_parts
from gossamer.sim import Simulator
from gossamer.wire import registry

BEAT = HyParViewConfig(
    heartbeat_interval_s=1.0, link_pause_s=2.0, shuffle_interval_s=5.0, knock_on_break=True
)


def me(name: str) -> NodeId:
    return NodeId(name, Address(f"{name}:7946"), 1)


def linked(name: str, *others: str, config: HyParViewConfig = BEAT) -> PartsCore:
    core = PartsCore(me(name), random.Random(1), overlay_parts(overlay=config))
    core.start(0.0)
    for other in others:
        core.handle(
            Address(f"{other}:7946"), Neighbor(Peer(other, Address(f"{other}:7946"), 1), True), 0.0
        )
    core.drain()
    return core


def overlay(core: PartsCore) -> HyParView:
    part = core.part("overlay")
    assert isinstance(part, HyParView)
    return part


def test_link_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="heartbeat_interval_s"):
        HyParViewConfig(heartbeat_interval_s=-1.0)
    with pytest.raises(ConfigError, match="link_phi_threshold"):
        HyParViewConfig(link_phi_threshold=0.0)
    assert HyParViewConfig().heartbeat_interval_s == 0.0  # the report's protocol: none


def test_every_active_link_carries_a_heartbeat_each_interval() -> None:
    core = linked("a", "b", "c")
    core.on_timer(("overlay", "beat"), 1.0)
    beats = [
        e.to for e in core.drain() if isinstance(e, SendStream) and isinstance(e.message, Heartbeat)
    ]
    assert sorted(beats) == ["b:7946", "c:7946"]
    assert overlay(core).stats.heartbeats_sent == 2


def test_any_frame_keeps_a_link_and_silence_drops_it_for_a_passive_peer() -> None:
    core = linked("a", "b", "c")
    part = overlay(core)
    part.passive["d"] = Peer("d", Address("d:7946"), 1)
    t = 0.0
    while t < 20.0:  # b sends something (not a heartbeat) every half second; c is silent
        t += 0.5
        core.handle(
            Address("b:7946"),
            Heartbeat() if t % 2 else Neighbor(Peer("b", Address("b:7946"), 1), True),
            t,
        )
        if t == int(t):
            core.on_timer(("overlay", "beat"), t)
        effects = core.drain()
        if "c" not in part.active:
            break
    assert "b" in part.active and "c" not in part.active
    assert part.stats.links_silent == 1
    assert 3.0 <= t <= 6.0  # the interval, the pause and a little more
    assert CloseStream(Address("c:7946")) in effects
    asked = [e.to for e in effects if isinstance(e, SendStream) and isinstance(e.message, Neighbor)]
    assert asked == [Address("d:7946")]  # replaced from the passive view, at once
    health = {h.peer: h for h in part.view().links}
    assert set(health) == {"b"} and health["b"].phi < 1.0


def cluster(count: int, seed: int) -> Simulator:
    sim = Simulator(seed, codec=registry, wire_check=True)
    for i in range(count):
        seeds = [] if i == 0 else ["n0:7946"]
        sim.add_node(
            f"n{i}",
            lambda me, rng, s=seeds: PartsCore(
                me, rng, overlay_parts(seeds=s, overlay=BEAT, broadcast=PlumtreeConfig())
            ),
        )
        sim.run_for(0.05)
    return sim


def parts(sim: Simulator) -> dict[str, HyParView]:
    out = {}
    for address in sim.addresses:
        if sim.is_up(address):
            core = sim.core(address)
            assert isinstance(core, PartsCore)
            out[sim.node_id(address).name] = overlay(core)
    return out


def test_a_healthy_overlay_never_drops_a_link_for_silence() -> None:
    sim = cluster(20, seed=4)
    sim.run_for(300.0)
    hv = parts(sim)
    assert sum(p.stats.links_silent for p in hv.values()) == 0
    assert all(p.stats.heartbeats_sent > 0 for p in hv.values())
    assert all(h.phi < 1.0 for p in hv.values() for h in p.view().links)


def test_a_hung_peer_is_dropped_by_its_neighbours_and_replaced() -> None:
    sim = cluster(20, seed=5)
    sim.run_for(60.0)
    hung = sim.addresses[7]
    name = sim.node_id(hung).name
    neighbours = [n for n, p in parts(sim).items() if name in p.active]
    assert neighbours
    sim.pause(hung, 1_000.0, 1_000.0)  # its streams stay open: only silence tells
    sim.run_for(10.0)
    hv = parts(sim)
    for n in neighbours:
        assert name not in hv[n].active, f"{n} still links the hung {name}"
        assert hv[n].stats.links_silent >= 1
    for n, p in hv.items():
        if n != name:
            assert len(p.active) >= 4, f"{n} was not repaired: {sorted(p.active)}"


# -------------------------------------------------------------------- the one rule


def member(name: str, epoch: int = 1, address: str | None = None) -> Member:
    where = Address(address or f"{name}:7946")
    return Member(name, where, epoch, 0, Status.ALIVE, b"", 0.0)


def test_a_member_swim_holds_dead_leaves_both_views_and_that_life_is_refused() -> None:
    core = linked("a", "b", "c")
    part = overlay(core)
    part.passive["d"] = Peer("d", Address("d:7946"), 1)
    part.on_event(MemberDead(member("b"), "x"), 1.0)
    part.on_event(MemberLeft(member("d")), 1.0)
    effects = part.drain()
    assert "b" not in part.active and "d" not in part.passive
    assert CloseStream(Address("b:7946")) in effects
    assert part.stats.dropped_by_swim == 2
    # That life asking again is refused; its next life is welcome.
    part.handle(Address("b:7946"), Neighbor(Peer("b", Address("b:7946"), 1), True), 2.0)
    assert "b" not in part.active and part.stats.stale == 1
    part.handle(Address("b:7946"), Neighbor(Peer("b", Address("b:7946"), 2), True), 3.0)
    assert part.active["b"].epoch == 2


def test_a_link_the_overlay_drops_never_changes_swims_table() -> None:
    core = linked("a", "b", "c")
    part = overlay(core)
    core.on_stream_down(Address("b:7946"), 1.0)  # a break: the overlay only drops the link
    effects = core.drain()
    assert "b" not in part.active
    assert not any(
        isinstance(e, Emit) and isinstance(e.event, MemberDead | MemberLeft) for e in effects
    )
    assert Knock(Address("b:7946")) in effects  # evidence is asked for, not assumed
    core.on_knock(Address("b:7946"), True, 1.1)  # it listens: a hung or busy process
    assert not any(isinstance(e, Emit) and isinstance(e.event, PortClosed) for e in core.drain())
    core.on_stream_down(Address("c:7946"), 2.0)
    core.drain()
    core.on_knock(Address("c:7946"), False, 2.1)  # refused: evidence, for SWIM to weigh
    closed = [e.event for e in core.drain() if isinstance(e, Emit)]
    assert closed == [PortClosed(Peer("c", Address("c:7946"), 1))]


def test_a_name_swim_holds_live_elsewhere_is_refused_as_an_impostor() -> None:
    core = linked("a")
    part = overlay(core)
    part.on_event(MemberJoined(member("b", address="b:7946"), None), 0.0)
    part.handle(Address("x:1"), Neighbor(Peer("b", Address("x:1"), 5), True), 1.0)
    assert "b" not in part.active and part.stats.impostors == 1
    assert part.passive["b"].address == Address(
        "b:7946"
    )  # SWIM's live members fill the passive view
