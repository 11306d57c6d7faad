"""NodeCore as a composer of parts: construction, timers, events, and links with owners."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

import pytest

from gossamer.config import WireConfig
from gossamer.core import MAX_EVENT_DEPTH, NodeCore
from gossamer.effects import (
    CloseStream,
    Effect,
    Emit,
    EventNote,
    OpenStream,
    Outbox,
    PartFactory,
    SendStream,
    SetTimer,
    TimerKey,
)
from gossamer.errors import LocalError
from gossamer.failure.swim import Ping, PushPull, SwimConfig
from gossamer.ids import Address, NodeId, address
from gossamer.membership.members import MemberJoined
from gossamer.observe import Route, Sample
from gossamer.parts import node_parts
from gossamer.ring import RingChanged, RingConfig
from gossamer.sim import NetworkConfig, Simulator
from gossamer.wire import Message, registry

ME = NodeId("a", address("10.0.0.1", 7946), 1)
PEER = Address("10.0.0.2:7946")


@dataclasses.dataclass(frozen=True, slots=True)
class Told:
    """What a test part emits: the event it was told about, and how deep the chain is."""

    about: object
    depth: int


@dataclasses.dataclass(frozen=True, slots=True)
class NoView:
    def routes(self) -> Mapping[str, Route]:
        return {}

    def samples(self) -> list[Sample]:
        return []


class Probe:
    """A test part: records what NodeCore hands it and does what a test asks."""

    subscribes: tuple[type, ...] = ()
    messages: tuple[type[Message], ...] = ()

    def __init__(self, name: str, *, subscribes: tuple[type, ...] = (), echo: bool = False) -> None:
        self.name = name
        self.subscribes = subscribes
        self.echo = echo  # emit a Told for every event heard (a chain, or a cycle)
        self.stats = object()
        self.out = Outbox()
        self.heard: list[object] = []
        self.ups: list[Address] = []
        self.downs: list[Address] = []
        self.timers: list[TimerKey] = []

    def start(self, now: float) -> None:
        self.out.set_timer("tick", now + 1)

    def handle(self, sender: Address, message: Message, now: float) -> None:
        self.heard.append(message)

    def on_timer(self, key: TimerKey, now: float) -> None:
        self.timers.append(key)

    def on_stream_up(self, peer: Address, now: float) -> None:
        self.ups.append(peer)

    def on_stream_down(self, peer: Address, now: float) -> None:
        self.downs.append(peer)

    def on_event(self, event: object, now: float) -> None:
        self.heard.append(event)
        if self.echo:
            depth = event.depth + 1 if isinstance(event, Told) else 0
            self.out.emit(Told(event, depth))

    def drain(self) -> list[Effect]:
        return self.out.drain()

    def view(self) -> NoView:
        return NoView()

    def describe(self, event: object) -> EventNote | None:
        return EventNote("told", detail=self.name) if isinstance(event, Told) else None


def factory(part: Probe) -> PartFactory:
    return lambda me, rng: part


def core_with(*probes: Probe, seeds: tuple[str, ...] = ()) -> NodeCore:
    parts = [*node_parts(seeds=seeds), *(factory(p) for p in probes)]
    core = NodeCore(ME, random.Random(1), parts)
    core.start(0.0)
    core.drain()
    return core


# -------------------------------------------------------------------- construction


def test_two_parts_claiming_one_message_class_or_one_name_are_refused() -> None:
    thief = Probe("thief")
    thief.messages = (Ping,)
    with pytest.raises(LocalError, match=r"Ping is claimed by two parts, 'swim' and 'thief'"):
        NodeCore(ME, random.Random(1), [*node_parts(), factory(thief)])
    with pytest.raises(LocalError, match="two parts are named 'swim'"):
        NodeCore(ME, random.Random(1), [*node_parts(), factory(Probe("swim"))])
    with pytest.raises(LocalError, match="needs SWIM"):
        NodeCore(ME, random.Random(1), [factory(Probe("alone"))])
    with pytest.raises(LocalError, match="no part is named"):
        node_parts(gossip=object())


def test_every_part_gets_the_same_identity_and_random() -> None:
    seen: list[tuple[NodeId, random.Random]] = []

    def spy(me: NodeId, rng: random.Random) -> Probe:
        seen.append((me, rng))
        return Probe(f"p{len(seen)}")

    rng = random.Random(3)
    NodeCore(ME, rng, [*node_parts(), spy, spy])
    assert seen == [(ME, rng), (ME, rng)]


def test_timers_are_namespaced_by_part_and_routed_back() -> None:
    probe = Probe("probe")
    core = NodeCore(ME, random.Random(1), [*node_parts(), factory(probe)])
    core.start(0.0)
    keys = [e.key for e in core.drain() if isinstance(e, SetTimer)]
    assert ("probe", "tick") in keys and ("swim", "probe") in keys
    core.on_timer(("probe", "tick"), 1.0)
    assert probe.timers == ["tick"]
    core.on_timer(("nobody", "tick"), 1.0)
    assert core.stats.stray_timers == 1


# -------------------------------------------------------------------- events


def test_events_go_to_subscribers_in_part_order_and_then_on() -> None:
    first = Probe("first", subscribes=(MemberJoined,), echo=True)
    second = Probe("second", subscribes=(MemberJoined, Told))
    core = core_with(first, second, seeds=(str(PEER),))
    claim_b = PushPull(
        False, (dataclasses.replace(core.swim.table.local_claim, name="b", address=PEER),)
    )
    core.handle(PEER, claim_b, 1.0)
    joined = [e for e in first.heard if isinstance(e, MemberJoined)]
    assert [e.member.name for e in joined] == ["b"]
    # second heard the join from SWIM and then first's answer to it.
    assert second.heard == [joined[0], Told(joined[0], 0)]
    emitted = [e.event for e in core.drain() if isinstance(e, Emit)]
    assert emitted == [joined[0], Told(joined[0], 0)]  # the application sees both, in order
    assert core.describe(Told(joined[0], 0)) == EventNote("told", detail="first")
    assert core.describe(joined[0]) == EventNote("joined", joined[0].member.node_id, 0)


def test_a_cycle_between_parts_is_cut_at_the_depth_bound() -> None:
    ping = Probe("ping", subscribes=(MemberJoined, Told), echo=True)
    pong = Probe("pong", subscribes=(Told,), echo=True)
    core = core_with(ping, pong)
    core.update_metadata(b"x", 1.0)  # no join; make one by hand below
    joined = MemberJoined(core.local, None)
    core.swim._out.emit(joined)  # as if SWIM had emitted it
    core.update_metadata(b"y", 2.0)
    told = [e.event for e in core.drain() if isinstance(e, Emit) and isinstance(e.event, Told)]
    assert max(t.depth for t in told) == MAX_EVENT_DEPTH - 1
    assert core.stats.events_cut >= 1


def test_the_ring_is_a_part_that_follows_member_events() -> None:
    core = NodeCore(ME, random.Random(1), node_parts(ring=RingConfig(vnodes=8)))
    core.start(0.0)
    core.drain()
    assert core.ring is not None and core.ring.nodes == ("a",)
    members = tuple(
        dataclasses.replace(core.swim.table.local_claim, name=n, address=Address(f"10.0.0.{i}:1"))
        for i, n in enumerate("bcd", 2)
    )
    core.handle(PEER, PushPull(False, members), 1.0)
    emitted = [e.event for e in core.drain() if isinstance(e, Emit)]
    # One ring change for the whole batch, right after the joins that caused it.
    assert [type(e) for e in emitted] == [MemberJoined] * 3 + [RingChanged]
    assert emitted[-1].added == ("b", "c", "d")
    assert core.ring.nodes == ("a", "b", "c", "d")
    assert core.view().ring is not None and core.view().ring.ring is core.ring


# -------------------------------------------------------------------- links


def sends(effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if isinstance(e, SendStream | OpenStream | CloseStream)]


def test_a_stream_closes_only_when_its_last_owner_lets_go() -> None:
    holder = Probe("holder")
    core = core_with(holder)
    holder.out.open_stream(PEER)
    core.on_timer(("holder", "open"), 1.0)  # any input drains the holder
    assert sends(core.drain()) == [OpenStream(PEER)]
    assert core.link_owners(PEER) == {"holder"}

    core.swim._out.stream(PEER, PushPull(False, ()))  # SWIM uses the same stream...
    core.swim._out.close_stream(PEER)  # ...and lets it go after its reply
    core.update_metadata(b"v", 2.0)
    effects = sends(core.drain())
    assert effects == [SendStream(PEER, PushPull(False, ()))]  # the close is held
    assert core.stats.closes_held == 1 and core.link_owners(PEER) == {"holder"}

    core.on_stream_up(PEER, 3.0)
    assert holder.ups == [PEER]
    holder.out.close_stream(PEER)
    core.on_timer(("holder", "x"), 4.0)
    assert sends(core.drain()) == [CloseStream(PEER)]  # the last owner: the close goes out
    assert core.link_owners(PEER) == frozenset()


def test_stream_notices_go_to_the_owners_only() -> None:
    holder, bystander = Probe("holder"), Probe("bystander")
    core = core_with(holder, bystander)
    core.on_stream_up(PEER, 1.0)  # the peer opened it; no part here uses it
    assert holder.ups == bystander.ups == []
    holder.out.stream(PEER, PushPull(False, ()))
    core.on_timer(("holder", "x"), 1.0)
    core.on_stream_up(PEER, 2.0)
    core.on_stream_down(PEER, 3.0)
    assert holder.ups == [PEER] and holder.downs == [PEER]
    assert bystander.ups == bystander.downs == []
    assert core.link_owners(PEER) == frozenset()  # a broken stream has no owners left


class Holder(Probe):
    """Opens a stream to ``peer`` when the node starts and keeps it."""

    def __init__(self, peer: Address) -> None:
        super().__init__("holder")
        self.peer = peer

    def start(self, now: float) -> None:
        self.out.open_stream(self.peer)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_swim_push_pulls_leave_another_parts_link_up(seed: int) -> None:
    # n1 joins through n0 and holds a link to it, as HyParView would; SWIM's
    # join and push-pulls run over the same stream and close it after each
    # reply.  The link must stay up all along, on both ends.
    swim = dataclasses.replace(SwimConfig.local(), push_pull_interval_s=2.0)
    sim = Simulator(
        seed, NetworkConfig.lan(), codec=registry, wire=WireConfig.lan(), wire_check=True
    )
    holders: dict[str, Holder] = {}

    def node(peer: str) -> object:
        def make(me: NodeId, rng: random.Random) -> NodeCore:
            holders[me.name] = Holder(Address(peer))
            parts = [*node_parts(swim=swim, seeds=["n0:7946"]), factory(holders[me.name])]
            return NodeCore(me, rng, parts)

        return make

    n0 = sim.add_node("n0", node("n1:7946"))  # type: ignore[arg-type]
    n1 = sim.add_node("n1", node("n0:7946"))  # type: ignore[arg-type]
    sim.run_for(30.0)
    pulls = sum(c.swim.stats.push_pulls for c in (sim.core(n0), sim.core(n1)))  # type: ignore[union-attr]
    assert pulls >= 10, pulls  # plenty of push-pulls ran over the held link
    for name, addr in (("n0", n0), ("n1", n1)):
        holder = holders[name]
        core = sim.core(addr)
        assert isinstance(core, NodeCore)
        assert holder.ups == [holder.peer] and holder.downs == [], (name, holder.downs)
        assert "holder" in core.link_owners(holder.peer)
        assert core.stats.closes_held > 0
    assert {m.name for m in sim.core(n0).live_members()} == {"n0", "n1"}  # type: ignore[union-attr]
