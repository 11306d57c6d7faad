"""SWIM with Lifeguard: the core driven by hand, then clusters in the simulator."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from gossamer.cli import main
from gossamer.effects import Effect, Emit, SendDatagram, SendStream, SetTimer
from gossamer.errors import ConfigError, LocalError
from gossamer.failure.swim import (
    Ack,
    Gossip,
    Nack,
    Ping,
    PingReq,
    PushPull,
    PushPullReply,
    SwimConfig,
    SwimCore,
)
from gossamer.ids import Address, NodeId
from gossamer.lab.swim_experiment import run_swim_experiment
from gossamer.membership.members import (
    Claim,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberSuspect,
    MemberUpdated,
    Status,
)
from gossamer.sim import NetworkConfig, Simulator
from gossamer.wire import registry
from tests.helpers import core_of, sim_cluster

A = NodeId("a", Address("a:1"), 1)
B = NodeId("b", Address("b:1"), 1)
C = NodeId("c", Address("c:1"), 1)


def core(me: NodeId = A, config: SwimConfig | None = None, **kw: object) -> SwimCore:
    c = SwimCore(me, random.Random(1), config, **kw)  # type: ignore[arg-type]
    c.start(0.0)
    c.drain()
    return c


def alive(who: NodeId, inc: int = 0, meta: bytes = b"") -> Claim:
    return Claim(who.name, who.address, who.epoch, inc, Status.ALIVE, meta, who.name)


def datagrams(effects: list[Effect]) -> list[SendDatagram]:
    return [e for e in effects if isinstance(e, SendDatagram)]


def events(effects: list[Effect]) -> list[object]:
    return [e.event for e in effects if isinstance(e, Emit)]


def timers(effects: list[Effect]) -> dict[object, float]:
    return {e.key: e.at for e in effects if isinstance(e, SetTimer)}


# --------------------------------------------------------------------------
# Configuration.


def test_presets_are_valid_and_differ() -> None:
    assert SwimConfig.lan() == SwimConfig()
    assert SwimConfig.wan().probe_interval_s > SwimConfig.lan().probe_interval_s
    assert SwimConfig.local().probe_timeout_s < SwimConfig.lan().probe_timeout_s


@pytest.mark.parametrize(
    "change",
    [
        {"probe_interval_s": 0},
        {"probe_timeout_s": 1.0},  # not below the interval
        {"indirect_checks": -1},
        {"gossip_nodes": 0},
        {"max_payload_bytes": 100},
        {"max_metadata_bytes": 1_000},  # more than half the payload
        {"suspicion_max_timeout_mult": 0.5},
        {"lifeguard": 1},
    ],
)
def test_bad_config_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        dataclasses.replace(SwimConfig(), **change)


def test_caller_mistakes_raise_at_once() -> None:
    with pytest.raises(LocalError, match="max_metadata_bytes"):
        SwimCore(A, random.Random(1), metadata=b"x" * 600)
    c = core()
    with pytest.raises(LocalError, match="max_metadata_bytes"):
        c.update_metadata(b"x" * 600, 1.0)
    with pytest.raises(LocalError, match="bytes"):
        c.update_metadata("text", 1.0)  # type: ignore[arg-type]
    with pytest.raises(LocalError, match="once"):
        c.start(1.0)


# --------------------------------------------------------------------------
# One core, by hand.


def test_a_ping_is_acked_with_the_same_seq() -> None:
    b = core(B)
    b.handle(A.address, Ping(7, "b"), 1.0)
    (sent,) = datagrams(b.drain())
    assert sent.to == A.address
    assert isinstance(sent.message, Ack) and sent.message.seq == 7


def test_a_ping_for_another_name_is_not_acked() -> None:
    b = core(B)
    b.handle(A.address, Ping(7, "someone-else"), 1.0)
    assert datagrams(b.drain()) == []
    assert b.stats.misdirected == 1


def test_unknown_messages_are_counted_and_dropped() -> None:
    from gossamer.clocks import VersionVector
    from gossamer.lab.news import Digest

    b = core(B)
    b.handle(A.address, Digest(VersionVector()), 1.0)
    assert b.drain() == []
    assert b.stats.ignored == 1


def test_join_sends_the_table_to_every_seed_and_retries() -> None:
    c = SwimCore(A, random.Random(1), seeds=["b:1", "c:1", "a:1"])
    c.start(0.0)
    effects = c.drain()
    streams = [e for e in effects if isinstance(e, SendStream)]
    assert sorted(e.to for e in streams) == ["b:1", "c:1"]  # not itself
    assert all(isinstance(e.message, PushPull) and e.message.join for e in streams)
    assert timers(effects)["join"] == SwimConfig().join_retry_interval_s
    c.on_timer("join", 2.0)
    assert len([e for e in c.drain() if isinstance(e, SendStream)]) == 2
    assert not c.joined
    c.handle(Address("b:1"), PushPullReply((alive(B),)), 2.5)
    assert c.joined
    assert c.member("b") is not None


def test_push_pull_answers_with_the_table_before_merging() -> None:
    b = core(B)
    b.handle(A.address, PushPull(True, (alive(A),)), 1.0)
    effects = b.drain()
    (reply,) = [e for e in effects if isinstance(e, SendStream)]
    assert isinstance(reply.message, PushPullReply)
    assert [c.name for c in reply.message.members] == ["b"]
    assert [type(e) for e in events(effects)] == [MemberJoined]


def test_a_death_heard_in_a_full_state_becomes_a_suspicion() -> None:
    b = core(B)
    b.handle(A.address, Gossip((alive(C),)), 1.0)
    b.drain()
    dead_c = dataclasses.replace(alive(C), status=Status.DEAD, source="a")
    b.handle(A.address, PushPull(False, (alive(A), dead_c)), 2.0)
    assert b.member("c").status is Status.SUSPECT  # type: ignore[union-attr]
    # The same death by gossip is taken as it is.
    b.handle(A.address, Gossip((dead_c,)), 3.0)
    assert b.member("c").status is Status.DEAD  # type: ignore[union-attr]


def test_refutes_a_suspicion_with_a_higher_incarnation() -> None:
    b = core(B)
    suspect_me = Claim("b", B.address, 1, 0, Status.SUSPECT, b"", "a")
    b.handle(A.address, Ping(1, "b", (suspect_me,)), 1.0)
    (ack,) = datagrams(b.drain())
    assert b.incarnation == 1
    assert b.local.status is Status.ALIVE
    assert b.stats.refutations == 1
    assert b.awareness.score == 1
    # The refutation rides on the ack straight back to the accuser.
    assert isinstance(ack.message, Ack)
    assert any(c.name == "b" and c.incarnation == 1 for c in ack.message.updates)


def test_refutes_a_death_and_ignores_an_older_life() -> None:
    b = core(B)
    b.handle(A.address, Gossip((Claim("b", B.address, 1, 4, Status.DEAD, b"", "a"),)), 1.0)
    assert b.incarnation == 5
    b.handle(A.address, Gossip((Claim("b", B.address, 0 + 1, 2, Status.DEAD, b"", "a"),)), 2.0)
    assert b.incarnation == 5  # older incarnation: nothing to refute
    old_life = SwimCore(NodeId("b", B.address, 2), random.Random(1))
    old_life.start(0.0)
    old_life.handle(A.address, Gossip((Claim("b", B.address, 1, 9, Status.DEAD, b"", "a"),)), 1.0)
    assert old_life.incarnation == 0


def test_stale_news_is_answered_with_the_newer_claim() -> None:
    b = core(B)
    b.handle(C.address, Gossip((alive(C, inc=1),)), 0.5)
    b.drain()
    stale = Claim("c", C.address, 1, 0, Status.SUSPECT, b"", "a")
    b.handle(A.address, Gossip((stale,)), 1.0)
    (reply,) = datagrams(b.drain())
    assert reply.to == A.address
    assert isinstance(reply.message, Gossip)
    assert reply.message.updates[0] == alive(C, inc=1)
    assert b.stats.corrections == 1
    # The same for a stale claim about b itself, after it refuted.
    b.handle(A.address, Gossip((Claim("b", B.address, 1, 0, Status.SUSPECT, b"", "a"),)), 2.0)
    b.drain()
    b.handle(C.address, Gossip((Claim("b", B.address, 1, 0, Status.DEAD, b"", "a"),)), 3.0)
    (reply,) = datagrams(b.drain())
    assert reply.to == C.address
    assert reply.message.updates[0].name == "b"  # type: ignore[attr-defined]
    assert reply.message.updates[0].incarnation == 1  # type: ignore[attr-defined]
    # News no older than ours is not answered.
    b.handle(C.address, Gossip((alive(C, inc=1),)), 4.0)
    assert datagrams(b.drain()) == []


def test_counters_at_the_ceiling_are_refused() -> None:
    from gossamer.clocks import MAX_COUNTER

    b = core(B)
    b.handle(A.address, Gossip((alive(C, inc=MAX_COUNTER),)), 1.0)
    assert b.member("c") is None
    b.handle(A.address, Gossip((Claim("b", B.address, 1, MAX_COUNTER - 1, Status.SUSPECT),)), 1)
    assert b.incarnation == 0
    assert b.stats.claims_refused == 2
    assert b.stats.refutations == 0


def test_oversized_metadata_from_a_peer_is_refused() -> None:
    b = core(B)
    b.handle(A.address, Gossip((alive(C, meta=b"x" * 513),)), 1.0)
    assert b.member("c") is None
    assert b.stats.claims_refused == 1


def probe_until_sent(a: SwimCore, now: float) -> tuple[SendDatagram, list[Effect]]:
    a.on_timer("probe", now)
    effects = a.drain()
    (ping,) = [d for d in datagrams(effects) if isinstance(d.message, Ping)]
    return ping, effects


def test_probe_round_visits_every_member_once() -> None:
    a = core()
    others = [NodeId(f"m{i}", Address(f"m{i}:1"), 1) for i in range(7)]
    a.handle(others[0].address, Gossip(tuple(alive(o) for o in others)), 0.0)
    a.drain()
    targets = []
    for t in range(7):
        ping, _ = probe_until_sent(a, 1.0 + t)
        assert isinstance(ping.message, Ping)
        targets.append(ping.message.target)
        a.handle(ping.to, Ack(ping.message.seq), 1.1 + t)
        a.drain()
    assert sorted(targets) == [o.name for o in others]


def on_grid(at: float, offset: float, interval: float = 1.0) -> bool:
    shared = (at + offset) / interval
    return abs(shared - round(shared)) < 1e-9


def test_probe_ticks_sit_on_the_shared_grid() -> None:
    # The wall clock reads now + 0.3: ticks fall where it shows whole seconds.
    a = SwimCore(A, random.Random(1), clock_offset_s=0.3)
    a.start(10.0)
    first = timers(a.drain())["probe"]
    assert on_grid(first, 0.3) and 10.0 <= first <= 11.0
    a.handle(B.address, Gossip((alive(B),)), 10.0)
    a.drain()
    ping, effects = probe_until_sent(a, first + 0.004)  # a loop a little late
    assert on_grid(timers(effects)["probe"], 0.3)
    assert timers(effects)["probe"] == pytest.approx(first + 1.0)
    a.handle(ping.to, Ack(ping.message.seq), first + 0.01)  # type: ignore[attr-defined]
    a.drain()
    # Lifeguard stretches the interval to a whole number of grid steps.
    a.awareness.apply(1)
    _, effects = probe_until_sent(a, first + 1.3)  # late by 0.3 s: still the same beat
    assert timers(effects)["probe"] == pytest.approx(first + 3.0)
    off = SwimCore(A, random.Random(1), SwimConfig(probe_grid=False), clock_offset_s=0.3)
    off.start(10.0)
    tick = timers(off.drain())["probe"]
    assert not on_grid(tick, 0.3) and 10.0 <= tick < 11.0
    off.on_timer("probe", tick)
    assert timers(off.drain())["probe"] == pytest.approx(tick + 1.0)


class TickRecorder(SwimCore):
    """A SWIM core that notes the time of each of its probe ticks."""

    def __init__(self, me: NodeId, rng: random.Random) -> None:
        super().__init__(me, rng, seeds=["n0:7946"])
        self.ticks: list[float] = []

    def _probe_tick(self, now: float) -> None:
        self.ticks.append(now)
        super()._probe_tick(now)


def test_nodes_on_the_grid_probe_in_the_same_instant_and_still_detect() -> None:
    # Booted at scattered times, every node ticks at whole seconds of the
    # shared clock; a crash is still found and declared as the protocol says.
    sim = Simulator(5, NetworkConfig.lan(), codec=registry)
    boots = random.Random(5)
    for i in range(12):
        sim.at(boots.uniform(0, 3), lambda i=i: sim.add_node(f"n{i}", TickRecorder))
    sim.run_for(15.0)
    cores = [core_of(sim, a, TickRecorder) for a in sim.addresses]
    assert all(len(c.ticks) >= 11 for c in cores)
    assert all(on_grid(t, 0.0) for c in cores for t in c.ticks)
    sim.crash(sim.address_of("n7"))
    assert sim.run_until_true(
        lambda: all(
            core_of(sim, a, SwimCore).member("n7").status is Status.DEAD  # type: ignore[union-attr]
            for a in sim.addresses
            if sim.is_up(a)
        ),
        60.0,
    )


def test_silent_target_gets_ping_reqs_then_suspected_then_dead() -> None:
    cfg = SwimConfig()
    a = core(config=cfg)
    a.handle(B.address, Gossip((alive(B), alive(C))), 0.0)
    a.drain()
    ping, effects = probe_until_sent(a, 1.0)
    target = ping.message.target  # type: ignore[attr-defined]
    helper = "c" if target == "b" else "b"
    assert timers(effects)["probe-timeout"] == pytest.approx(1.0 + cfg.probe_timeout_s)
    a.on_timer("probe-timeout", 1.5)
    (req,) = datagrams(a.drain())
    assert isinstance(req.message, PingReq)
    assert req.message.target == target and req.message.nack
    assert req.to == f"{helper}:1"
    # The helper nacks: the target is silent, and we are not the problem.
    a.handle(req.to, Nack(req.message.seq), 1.9)
    _, effects = probe_until_sent(a, 2.0)
    assert a.member(target).status is Status.SUSPECT  # type: ignore[union-attr]
    assert a.awareness.score == 0
    assert a.stats.suspicions == 1
    [suspect] = [e for e in events(effects) if isinstance(e, MemberSuspect)]
    assert suspect.source == "a"
    deadline = a.suspicion_deadline(target)
    # n = 3: too few members to confirm, so the shortest timeout applies.
    assert deadline == pytest.approx(2.0 + cfg.suspicion_mult * cfg.probe_interval_s)
    a.on_timer(("suspicion", target), deadline)  # type: ignore[arg-type]
    dead = [e for e in events(a.drain()) if isinstance(e, MemberDead)]
    assert [d.member.name for d in dead] == [target]
    assert a.stats.deaths_declared == 1


def test_a_missed_nack_raises_local_health() -> None:
    a = core()
    a.handle(B.address, Gossip((alive(B), alive(C))), 0.0)
    a.drain()
    probe_until_sent(a, 1.0)
    a.on_timer("probe-timeout", 1.5)
    a.drain()
    _, effects = probe_until_sent(a, 2.0)  # no ack, no nack
    assert a.awareness.score == 1
    # ... which stretches the next probe interval.
    assert timers(effects)["probe"] == pytest.approx(2.0 + 2 * SwimConfig().probe_interval_s)


def test_a_direct_ack_lowers_local_health() -> None:
    a = core()
    a.awareness.apply(3)
    a.handle(B.address, Gossip((alive(B),)), 0.0)
    a.drain()
    ping, _ = probe_until_sent(a, 1.0)
    a.handle(ping.to, Ack(ping.message.seq), 1.1)  # type: ignore[attr-defined]
    assert a.awareness.score == 2
    assert a.stats.acks == 1


def test_intermediary_relays_the_ack_or_nacks() -> None:
    b = core(B)
    b.handle(A.address, PingReq(41, "c", C.address, True), 1.0)
    effects = b.drain()
    (ping,) = datagrams(effects)
    assert ping.to == C.address and isinstance(ping.message, Ping)
    b.handle(C.address, Ack(ping.message.seq), 1.1)
    (relayed,) = datagrams(b.drain())
    assert relayed.to == A.address
    assert isinstance(relayed.message, Ack) and relayed.message.seq == 41
    # A second request whose target stays silent gets a nack in time for the prober.
    b.handle(A.address, PingReq(42, "c", C.address, True), 2.0)
    effects = b.drain()
    ((key, at),) = [(k, v) for k, v in timers(effects).items() if isinstance(k, tuple)]
    assert at == pytest.approx(2.0 + 0.8 * 0.5)  # the LAN timeout is also half the interval
    wan = core(B, SwimConfig.wan())
    wan.handle(A.address, PingReq(43, "c", C.address, True), 1.0)
    ((_, at),) = [(k, v) for k, v in timers(wan.drain()).items() if isinstance(k, tuple)]
    assert at == pytest.approx(1.0 + 0.8 * (5.0 - 3.0))  # WAN: what is left of the interval
    b.on_timer(key, at)
    (nack,) = datagrams(b.drain())
    assert nack.to == A.address
    assert isinstance(nack.message, Nack) and nack.message.seq == 42


def test_relays_are_bounded() -> None:
    b = core(B, dataclasses.replace(SwimConfig(), max_relays=2))
    for seq in range(5):
        b.handle(A.address, PingReq(seq, "c", C.address, True), 1.0)
    assert len(datagrams(b.drain())) == 2
    assert b.stats.relays_shed == 3


def test_buddy_system_puts_the_suspicion_first() -> None:
    a = core()
    suspect_b = Claim("b", B.address, 1, 0, Status.SUSPECT, b"", "c")
    a.handle(C.address, Gossip((alive(B), alive(C))), 0.0)
    a.handle(C.address, Gossip((suspect_b,)), 0.1)
    a.drain()
    for t in range(2):
        ping, _ = probe_until_sent(a, 1.0 + t)
        if ping.message.target == "b":  # type: ignore[attr-defined]
            assert ping.message.updates[0].name == "b"  # type: ignore[attr-defined]
            assert ping.message.updates[0].status is Status.SUSPECT  # type: ignore[attr-defined]
            return
        a.handle(ping.to, Ack(ping.message.seq), 1.1 + t)  # type: ignore[attr-defined]
    pytest.fail("b was never probed")


def test_confirmations_shorten_a_suspicion() -> None:
    a = core()
    others = [NodeId(f"m{i}", Address(f"m{i}:1"), 1) for i in range(20)]
    a.handle(others[0].address, Gossip(tuple(alive(o) for o in others)), 0.0)
    suspect = Claim("m3", others[3].address, 1, 0, Status.SUSPECT, b"", "m1")
    a.handle(others[1].address, Gossip((suspect,)), 1.0)
    first = a.suspicion_deadline("m3")
    a.handle(others[2].address, Gossip((dataclasses.replace(suspect, source="m2"),)), 1.5)
    second = a.suspicion_deadline("m3")
    a.handle(others[4].address, Gossip((dataclasses.replace(suspect, source="m4"),)), 1.6)
    third = a.suspicion_deadline("m3")
    assert first is not None and second is not None and third is not None
    assert first > second > third
    # n = 21 (a and m0..m19): k = 2 confirmations bring it to the shortest,
    # 4 * log10(21) s after the suspicion began (floored to the ms).
    assert third == pytest.approx(1.0 + 4 * 1.3222192947339193, abs=1e-3)
    assert second < first - 10  # one confirmation already took a good part off


def test_without_lifeguard_the_suspicion_is_fixed_and_no_nacks() -> None:
    cfg = dataclasses.replace(SwimConfig(), lifeguard=False)
    a = core(config=cfg)
    a.handle(B.address, Gossip((alive(B), alive(C))), 0.0)
    a.drain()
    probe_until_sent(a, 1.0)
    a.on_timer("probe-timeout", 1.5)
    (req,) = datagrams(a.drain())
    assert isinstance(req.message, PingReq) and not req.message.nack
    probe_until_sent(a, 2.0)
    assert a.awareness.score == 0


def test_leave_is_announced_and_probing_stops() -> None:
    a = core()
    a.handle(B.address, Gossip((alive(B),)), 0.0)
    a.drain()
    a.leave(1.0)
    assert a.local.status is Status.LEFT and a.leaving
    a.on_timer("gossip", 1.2)
    (gossip,) = datagrams(a.drain())
    assert any(c.name == "a" and c.status is Status.LEFT for c in gossip.message.updates)  # type: ignore[attr-defined]
    b = core(B)
    b.handle(A.address, Gossip((alive(A),)), 0.0)
    b.handle(A.address, gossip.message, 1.3)
    assert [type(e) for e in events(b.drain())][-1] is MemberLeft
    with pytest.raises(LocalError, match="left"):
        a.update_metadata(b"x", 2.0)


def test_metadata_updates_reach_peers() -> None:
    a = core()
    a.update_metadata(b"role=web", 1.0)
    assert a.incarnation == 1
    a.handle(B.address, Gossip((alive(B),)), 1.0)
    a.drain()
    a.on_timer("gossip", 1.2)
    (gossip,) = datagrams(a.drain())
    b = core(B)
    b.handle(A.address, Gossip((alive(A),)), 0.0)
    b.drain()
    b.handle(A.address, gossip.message, 1.3)
    (updated,) = events(b.drain())
    assert isinstance(updated, MemberUpdated) and updated.member.metadata == b"role=web"


def test_each_update_is_sent_a_limited_number_of_times() -> None:
    cfg = SwimConfig()
    a = core(config=cfg)
    a.handle(B.address, Gossip((alive(B),)), 0.0)
    a.drain()
    sends = 0
    for t in range(40):
        a.on_timer("gossip", 1.0 + t * 0.2)
        for d in datagrams(a.drain()):
            sends += sum(1 for c in d.message.updates if c.name == "b")  # type: ignore[attr-defined]
    # n = 2: retransmit_mult * ceil(log10(3)) = 4 sends of b's news, then silence.
    assert sends == cfg.retransmit_mult * 1
    assert a.queued_updates() == 0


def test_the_broadcast_queue_is_bounded_and_sheds_the_most_sent() -> None:
    cfg = dataclasses.replace(SwimConfig(), max_queued_updates=5)
    a = core(config=cfg)
    members = [alive(NodeId(f"m{i}", Address(f"m{i}:1"), 1)) for i in range(9)]
    a.handle(B.address, Gossip(tuple(members)), 0.0)
    assert a.queued_updates() == 5
    a.on_timer("gossip", 0.2)
    assert a.stats.updates_shed == 5  # a's own alive claim and four others


def test_datagrams_stay_within_the_payload_limit() -> None:
    cfg = dataclasses.replace(SwimConfig(), max_payload_bytes=300, max_metadata_bytes=100)
    a = core(config=cfg)
    members = [alive(NodeId(f"member-{i:03}", Address(f"m{i}:1"), 1)) for i in range(50)]
    a.handle(B.address, Gossip(tuple(members)), 0.0)
    a.drain()
    carried = set()
    for t in range(30):
        a.on_timer("gossip", 1.0 + t * 0.2)
        for d in datagrams(a.drain()):
            assert len(registry.encode(d.message)) <= 300
            carried.update(c.name for c in d.message.updates)  # type: ignore[attr-defined]
    assert len(carried) == 51  # everything went out, a bit at a time


# --------------------------------------------------------------------------
# Clusters in the simulator.


def swim_node(me: NodeId, rng: random.Random) -> SwimCore:
    return SwimCore(me, rng, seeds=["n0:7946"])


def everyone_sees(sim: Simulator, names: set[str]) -> bool:
    return all(
        set(core_of(sim, a, SwimCore).alive()) == names for a in sim.addresses if sim.is_up(a)
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ten_nodes_join_detect_a_crash_and_see_a_restart(seed: int) -> None:
    sim = sim_cluster(10, seed, swim_node, loss=0.01)
    names = {f"n{i}" for i in range(10)}
    assert sim.run_until_true(lambda: everyone_sees(sim, names), 5.0) is not None
    victim = sim.address_of("n7")
    sim.crash(victim)
    crashed = sim.now

    def all_dead() -> bool:
        return all(
            core_of(sim, a, SwimCore).member("n7").status is Status.DEAD  # type: ignore[union-attr]
            for a in sim.addresses
            if sim.is_up(a)
        )

    assert sim.run_until_true(all_dead, 60.0) is not None
    assert everyone_sees(sim, names - {"n7"})
    assert sim.now - crashed < 30
    sim.restart(victim)
    assert sim.run_until_true(lambda: everyone_sees(sim, names), 10.0) is not None
    for a in sim.addresses:
        assert core_of(sim, a, SwimCore).member("n7").epoch == 2  # type: ignore[union-attr]


def test_a_graceful_leave_is_seen_as_left_not_dead() -> None:
    sim = sim_cluster(8, 4, swim_node)
    names = {f"n{i}" for i in range(8)}
    assert sim.run_until_true(lambda: everyone_sees(sim, names), 5.0) is not None
    leaver = sim.address_of("n3")
    sim.call(leaver, lambda core, now: core.leave(now))  # type: ignore[attr-defined]
    sim.run_for(1.0)
    sim.crash(leaver)
    sim.run_for(30.0)
    for a in sim.addresses:
        if sim.is_up(a):
            assert core_of(sim, a, SwimCore).member("n3").status is Status.LEFT  # type: ignore[union-attr]


def test_same_seed_same_trace() -> None:
    def trace(seed: int) -> str:
        sim = Simulator(seed, NetworkConfig.lan(), codec=registry, trace=True)
        for i in range(6):
            sim.add_node(f"n{i}", lambda me, rng: SwimCore(me, rng, seeds=["n0:7946"]))
        sim.run_for(5)
        sim.crash(sim.address_of("n2"))
        sim.run_for(20)
        return sim.trace_hash()

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


def test_the_experiment_reports_every_key() -> None:
    report = run_swim_experiment(12, 3, loss=0.01, duration_s=60.0)
    assert report.converge_s is not None and report.converge_s < 2
    assert report.detect_first_s is not None and report.detect_all_s is not None
    assert report.detect_first_s <= report.detect_all_s < 30
    assert report.false_deaths == 0
    assert 0 < report.bytes_per_node_per_s < 1_000
    assert report == run_swim_experiment(12, 3, loss=0.01, duration_s=60.0)


def test_cli_sim_swim_json_has_exactly_the_documented_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "swim", "--nodes", "8", "--seed", "2", "--duration", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [
        "nodes",
        "seed",
        "loss",
        "slow",
        "lifeguard",
        "converge_s",
        "detect_first_s",
        "detect_all_s",
        "false_suspicions",
        "false_deaths",
        "bytes_per_node_per_s",
        "msgs_per_node_per_s",
        "wall_s",
    ]
    assert out["nodes"] == 8 and out["lifeguard"] is True
    assert main(["sim", "swim", "--nodes", "8", "--duration", "50", "--no-lifeguard"]) == 0
    text = capsys.readouterr().out
    assert "lifeguard off" in text and "declared dead" in text


def test_lifeguard_quiets_a_starved_node() -> None:
    on = run_swim_experiment(30, 1, slow=0.07, duration_s=80.0)
    off = run_swim_experiment(30, 1, slow=0.07, lifeguard=False, duration_s=80.0)
    assert off.false_suspicions >= 4 * max(on.false_suspicions, 1)


@pytest.mark.slow
@pytest.mark.parametrize(("nodes", "loss"), [(50, 0.05), (200, 0.01)])
def test_no_false_deaths_under_loss(nodes: int, loss: float) -> None:
    report = run_swim_experiment(nodes, 11, loss=loss)
    assert report.false_deaths == 0
    assert report.detect_all_s is not None


@pytest.mark.slow
def test_a_thousand_nodes_for_two_minutes() -> None:
    report = run_swim_experiment(1000, 1)
    assert report.converge_s is not None
    assert report.detect_all_s is not None
    assert report.false_deaths == 0


# --------------------------------------------------------------------------
# What a peer's garbage or bad luck must not do (found in review).


def test_a_claim_too_big_for_any_datagram_is_shed_not_stuck() -> None:
    cfg = dataclasses.replace(SwimConfig(), max_payload_bytes=256, max_metadata_bytes=128)
    a = core(config=cfg)
    a.handle(B.address, Gossip((alive(B),)), 0.0)
    a.drain()
    a.on_timer("gossip", 0.2)  # sends a's and b's news until they are used up
    for t in range(20):
        a.on_timer("gossip", 0.4 + t * 0.2)
    a.drain()
    # 120 bytes of metadata and a 128-character name fit the table but no datagram.
    big = Claim("x" * 128, Address("h" * 60 + ":1"), 1, 0, Status.ALIVE, b"m" * 120, "b")
    a.handle(B.address, Gossip((big,)), 5.0)
    a.drain()
    assert a.stats.updates_shed == 1
    assert a.queued_updates() == 0
    a.on_timer("gossip", 5.2)
    assert datagrams(a.drain()) == []  # no empty gossip either


def test_the_full_state_is_bounded() -> None:
    cfg = dataclasses.replace(SwimConfig(), max_state_bytes=2_048)
    b = core(B, cfg)
    tombs = [
        Claim(f"gone-{i:03}", Address(f"g{i}:1"), 1, 0, Status.DEAD, b"", "z") for i in range(100)
    ]
    b.handle(A.address, Gossip(tuple(tombs)), 1.0)
    b.handle(A.address, PushPull(False, (alive(A),)), 2.0)
    (reply,) = [e for e in b.drain() if isinstance(e, SendStream)]
    assert isinstance(reply.message, PushPullReply)
    assert len(registry.encode(reply.message)) <= 2_048
    names = [c.name for c in reply.message.members]
    assert names[0] == "b" and len(names) < 101
    assert b.stats.state_truncated == 1


def test_tombstones_travel_without_metadata_but_show_the_last() -> None:
    b = core(B)
    b.handle(A.address, Gossip((alive(C, meta=b"big" * 100),)), 1.0)
    dead = Claim("c", C.address, 1, 0, Status.DEAD, b"big" * 100, "a")
    b.handle(A.address, Gossip((dead,)), 2.0)
    assert b.table.claim("c").metadata == b""  # type: ignore[union-attr]
    assert b.member("c").metadata == b"big" * 100  # type: ignore[union-attr]
    # Heard in the other order, the same.
    other = core(B)
    other.handle(A.address, Gossip((dead,)), 1.0)
    other.handle(A.address, Gossip((alive(C, meta=b"big" * 100),)), 2.0)
    assert other.member("c") == dataclasses.replace(b.member("c"), since=1.0)  # type: ignore[arg-type]
    # The same claim again is no news (it is compared as stored).
    before = b.queued_updates()
    b.handle(A.address, Gossip((dead,)), 3.0)
    assert b.queued_updates() == before
    assert datagrams(b.drain()) == []


def test_flapping_claims_do_not_grow_the_probe_round() -> None:
    a = core()
    for inc in range(0, 400, 2):
        a.handle(
            B.address,
            Gossip(
                (
                    Claim("x", Address("x:1"), 1, inc, Status.ALIVE, b"", "x"),
                    Claim("x", Address("x:1"), 1, inc + 1, Status.DEAD, b"", "y"),
                )
            ),
            inc / 100,
        )
    assert len(a._probe_list) <= 2


def test_duplicate_nacks_from_one_helper_count_once() -> None:
    a = core()
    a.awareness.apply(3)
    a.handle(B.address, Gossip((alive(B), alive(C))), 0.0)
    a.drain()
    probe_until_sent(a, 1.0)
    a.on_timer("probe-timeout", 1.5)
    (req,) = datagrams(a.drain())
    for _ in range(6):
        a.handle(req.to, Nack(req.message.seq), 1.8)  # type: ignore[attr-defined]
    a.handle(Address("z:1"), Nack(req.message.seq), 1.8)  # type: ignore[attr-defined]
    probe_until_sent(a, 2.0)
    assert a.awareness.score == 3  # the one helper nacked: no blame, and no credit either


def test_a_probe_of_an_older_life_does_not_suspect_the_new_one() -> None:
    a = core()
    a.handle(B.address, Gossip((alive(B),)), 0.0)
    a.drain()
    probe_until_sent(a, 1.0)
    a.on_timer("probe-timeout", 1.5)
    b2 = NodeId("b", B.address, 2)
    a.handle(C.address, Gossip((alive(b2),)), 1.7)
    a.drain()
    probe_until_sent(a, 2.0)
    member = a.member("b")
    assert member is not None and member.epoch == 2 and member.status is Status.ALIVE


def test_nothing_is_sent_to_the_nodes_own_address() -> None:
    a = core()
    # An earlier node at a's address, under another name, died.
    a.handle(B.address, Gossip((alive(B), alive(NodeId("old", A.address, 1)))), 0.0)
    a.handle(B.address, Gossip((Claim("old", A.address, 1, 0, Status.DEAD, b"", "b"),)), 0.1)
    a.drain()
    for t in range(5):
        a.on_timer("push-pull", 10.0 * (t + 1))
        a.on_timer("gossip", 10.0 * (t + 1) + 0.1)
        effects = a.drain()
        assert all(getattr(e, "to", None) != A.address for e in effects)


def test_a_late_ack_is_still_relayed_after_the_nack() -> None:
    b = core(B)
    b.handle(A.address, PingReq(7, "c", C.address, True), 1.0)
    (ping,) = datagrams(b.drain())
    b.on_timer(("relay", ping.message.seq), 1.4)  # type: ignore[attr-defined]
    (nack,) = datagrams(b.drain())
    assert isinstance(nack.message, Nack)
    b.handle(C.address, Ack(ping.message.seq), 1.45)  # type: ignore[attr-defined]
    (ack,) = datagrams(b.drain())
    assert isinstance(ack.message, Ack) and ack.message.seq == 7 and ack.to == A.address


@pytest.mark.parametrize(
    ("target", "address"),
    [("c", "not an address"), ("bad name", "c:1"), ("c", "b:1"), ("b", "c:1")],
)
def test_a_ping_req_with_a_bad_target_is_dropped(target: str, address: str) -> None:
    b = core(B)
    b.handle(A.address, PingReq(7, target, Address(address), True), 1.0)
    assert datagrams(b.drain()) == []
    assert b.stats.misdirected == 1


@pytest.mark.parametrize("duration", ["30", "nan", "inf", "-5"])
def test_cli_refuses_a_bad_duration(duration: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", "swim", "--nodes", "5", "--duration", duration])
    assert exit_info.value.code == 2
    assert "--duration" in capsys.readouterr().err
