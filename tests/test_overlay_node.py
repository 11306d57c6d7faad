"""HyParView and Plumtree composed with SWIM in one NodeCore, in the simulator."""

from __future__ import annotations

import random
from collections import Counter

from gossamer.core import NodeCore
from gossamer.effects import CancelTimer, Effect, SetTimer
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import HyParViewConfig
from gossamer.membership.members import Status
from gossamer.membership.plumtree import Delivered, PlumtreeConfig
from gossamer.parts import node_parts
from gossamer.sim import Simulator
from gossamer.wire import registry
from tests.helpers import core_of, sim_cluster

COUNT = 12


class RecordingCore(NodeCore):
    """A NodeCore that keeps every timer key it hands the driver."""

    def __init__(self, me: NodeId, rng: random.Random, seeds: list[str]) -> None:
        super().__init__(
            me,
            rng,
            node_parts(
                seeds=seeds,
                overlay=HyParViewConfig(shuffle_interval_s=2.0),
                broadcast=PlumtreeConfig(),
            ),
        )
        self.timer_keys: set[object] = set()

    def drain(self) -> list[Effect]:
        effects = super().drain()
        for effect in effects:
            if isinstance(effect, SetTimer | CancelTimer):
                self.timer_keys.add(effect.key)
        return effects


def factory(me: NodeId, rng: random.Random) -> RecordingCore:
    return RecordingCore(me, rng, [] if me.name == "n0" else ["n0:7946"])


def delivered(sim: Simulator, mid: bytes) -> Counter[str]:
    got: Counter[str] = Counter()
    for address in sim.addresses:
        for _, event in sim.events(address):
            if isinstance(event, Delivered) and event.id == mid:
                got[sim.node_id(address).name] += 1
    return got


def broadcast(sim: Simulator, origin: Address, payload: bytes) -> bytes:
    mid: bytes = sim.call(
        origin, lambda c, now: c.act("broadcast", lambda p: p.broadcast(payload, now), now)
    )
    return mid


def test_swim_hyparview_and_plumtree_share_one_node_core() -> None:
    sim = sim_cluster(COUNT, 5, factory)
    sim.run_for(30.0)
    cores = {a: core_of(sim, a, RecordingCore) for a in sim.addresses}
    for core in cores.values():
        view = core.view()
        assert view.overlay is not None and view.broadcast is not None
        assert sum(m.status is Status.ALIVE for m in view.swim.members) == COUNT
        assert 1 <= len(view.overlay.active) <= 5
        assert core.stats.unrouted == 0 and core.stats.stray_timers == 0
        # Each part's timers come back under its own name.
        owners = {key[0] for key in core.timer_keys if isinstance(key, tuple)}
        assert {"swim", "overlay", "broadcast"} <= owners
        assert all(isinstance(k, tuple) and k[0] in owners for k in core.timer_keys)

    origin = sim.addresses[3]
    mid = broadcast(sim, origin, b"one")
    sim.run_for(2.0)
    everyone = {sim.node_id(a).name: 1 for a in sim.addresses}  # the origin's own included
    assert delivered(sim, mid) == Counter(everyone)

    # A crash: SWIM declares it dead and the overlay repairs around it; a
    # broadcast after reaches every live node once.
    victim = sim.addresses[5]
    sim.crash(victim)
    sim.run_for(30.0)
    live = [a for a in sim.addresses if sim.is_up(a)]
    for address in live:
        core = cores[address]
        status = {m.name: m.status for m in core.view().swim.members}
        assert status[sim.node_id(victim).name] is Status.DEAD
        overlay = core.view().overlay
        assert overlay is not None and sim.node_id(victim).name not in {
            p.name for p in overlay.active
        }
        # The overlay's links are its active peers and requests; SWIM's own
        # streams (push-pull) come and go beside them.
        used = {p.address for p in overlay.active} | set(overlay.pending)
        mine = {a for a in core.linked() if core.link_owners(a) & {"overlay", "broadcast"}}
        assert mine == used
    mid = broadcast(sim, sim.addresses[0], b"two")
    sim.run_for(2.0)
    expected = {sim.node_id(a).name: 1 for a in live}
    assert delivered(sim, mid) == Counter(expected)


def test_the_same_seed_gives_the_same_trace() -> None:
    traces = []
    for _ in range(2):
        sim = sim_cluster(6, 9, factory, trace=True)
        sim.run_for(10.0)
        broadcast(sim, sim.addresses[2], b"x")
        sim.run_for(2.0)
        traces.append(sim.trace_hash())
    assert traces[0] == traces[1]


def test_a_node_without_the_overlay_drops_its_messages_as_unrouted() -> None:
    plain = Simulator(2, codec=registry, wire_check=True)
    plain.add_node("n0", lambda me, rng: NodeCore(me, rng, node_parts()))
    plain.add_node("n1", factory)
    plain.run_for(10.0)
    n0 = core_of(plain, plain.addresses[0], NodeCore)
    assert n0.view().overlay is None
    assert n0.stats.unrouted > 0  # n1's Join found no overlay part: counted, not fatal
    assert n0.part("overlay") is None
