"""The deterministic simulator: network semantics, faults, timers, counters, determinism."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace

import pytest

from gossamer.effects import (
    CloseStream,
    Effect,
    Emit,
    OpenStream,
    Outbox,
    SendDatagram,
    SendStream,
    TimerKey,
)
from gossamer.errors import LocalError
from gossamer.ids import Address, NodeId
from gossamer.lab.news import NewsCore, news_codec
from gossamer.sim import NetworkConfig, SimulationError, Simulator
from gossamer.wire import Message, Registry

codec = Registry("sim-tests")


@codec.message(1)
@dataclass(frozen=True, slots=True)
class Note(Message):
    seq: int
    text: str = ""


@codec.message(2)
@dataclass(frozen=True, slots=True)
class Blob(Message):
    data: bytes


A = Address("a:7946")
B = Address("b:7946")
C = Address("c:7946")

Step = tuple[float, Effect]


class ScriptCore:
    """Carries out a plan of effects at given times and records everything it hears."""

    def __init__(self, me: NodeId, rng: random.Random, plan: list[Step]) -> None:
        self.me = me
        self.rng = rng
        self.plan = plan
        self.received: list[tuple[float, Address, Message]] = []
        self.timers: list[tuple[float, TimerKey]] = []
        self.ups: list[tuple[float, Address]] = []
        self.downs: list[tuple[float, Address]] = []
        self.log: list[tuple[str, float, object]] = []  # everything heard, in order
        self.out = Outbox()

    def start(self, now: float) -> None:
        for index, (at, _) in enumerate(self.plan):
            self.out.set_timer(("plan", index), at)

    def handle(self, sender: Address, message: Message, now: float) -> None:
        self.received.append((now, sender, message))
        self.log.append(("recv", now, getattr(message, "seq", None)))

    def on_timer(self, key: TimerKey, now: float) -> None:
        self.timers.append((now, key))
        self.log.append(("timer", now, key))
        if isinstance(key, tuple) and key[0] == "plan":
            self.out._effects.append(self.plan[key[1]][1])

    def on_stream_up(self, peer: Address, now: float) -> None:
        self.ups.append((now, peer))
        self.log.append(("up", now, peer))

    def on_stream_down(self, peer: Address, now: float) -> None:
        self.downs.append((now, peer))
        self.log.append(("down", now, peer))

    def drain(self) -> list[Effect]:
        return self.out.drain()


def build(
    plans: dict[str, list[Step]], network: NetworkConfig | None = None, seed: int = 1, **kw: object
) -> tuple[Simulator, dict[str, ScriptCore]]:
    sim = Simulator(seed, network or NetworkConfig(latency_s=0.01, jitter_s=0.0), codec=codec, **kw)  # type: ignore[arg-type]
    cores: dict[str, ScriptCore] = {}

    def factory_for(name: str):  # type: ignore[no-untyped-def]
        def factory(me: NodeId, rng: random.Random) -> ScriptCore:
            core = ScriptCore(me, rng, plans.get(name, []) if me.epoch == 1 else [])
            cores[name] = core
            return core

        return factory

    for name in plans:
        sim.add_node(name, factory_for(name))
    return sim, cores


# ---------------------------------------------------------------- datagrams


def test_datagram_arrives_after_latency_within_jitter() -> None:
    net = NetworkConfig(latency_s=0.01, jitter_s=0.005)
    sim, cores = build({"a": [(1.0, SendDatagram(B, Note(i))) for i in range(50)], "b": []}, net)
    sim.run_until(2.0)
    times = [t for t, _, _ in cores["b"].received]
    assert len(times) == 50
    assert all(1.01 <= t <= 1.015 for t in times)


def test_loss_drops_and_counts() -> None:
    net = NetworkConfig(loss=0.3)
    sim, cores = build({"a": [(0.1, SendDatagram(B, Note(i))) for i in range(1000)], "b": []}, net)
    sim.run_until(1.0)
    got = len(cores["b"].received)
    assert 600 < got < 800
    assert sim.stats.dropped["loss"] == 1000 - got
    assert sim.stats.messages_sent == 1000


def test_total_loss_delivers_nothing() -> None:
    sim, cores = build({"a": [(0.1, SendDatagram(B, Note(1)))], "b": []}, NetworkConfig(loss=1.0))
    sim.run_until(1.0)
    assert cores["b"].received == []


def test_duplication_delivers_twice() -> None:
    net = NetworkConfig(duplicate=1.0)
    sim, cores = build({"a": [(0.1, SendDatagram(B, Note(i))) for i in range(10)], "b": []}, net)
    sim.run_until(1.0)
    seqs = sorted(m.seq for _, _, m in cores["b"].received)  # type: ignore[attr-defined]
    assert seqs == sorted(list(range(10)) * 2)


def test_reordering_happens_only_when_asked() -> None:
    plan = [(0.1 + i * 0.001, SendDatagram(B, Note(i))) for i in range(200)]
    calm = NetworkConfig(latency_s=0.01, jitter_s=0.0)
    sim, cores = build({"a": plan, "b": []}, calm)
    sim.run_until(1.0)
    assert [m.seq for _, _, m in cores["b"].received] == list(range(200))  # type: ignore[attr-defined]
    shuffled = replace(calm, reorder=0.3, reorder_delay_s=0.02)
    sim, cores = build({"a": plan, "b": []}, shuffled)
    sim.run_until(1.0)
    seqs = [m.seq for _, _, m in cores["b"].received]  # type: ignore[attr-defined]
    assert sorted(seqs) == list(range(200)) and seqs != list(range(200))


def test_datagram_to_nobody_is_dropped_as_down() -> None:
    sim, _ = build({"a": [(0.1, SendDatagram(Address("ghost:1"), Note(1)))]})
    sim.run_until(1.0)
    assert sim.stats.dropped == {"down": 1}


def test_bytes_are_counted_per_node_and_type() -> None:
    sim, _ = build(
        {
            "a": [
                (0.1, SendDatagram(B, Note(1, "hello"))),
                (0.2, SendDatagram(B, Blob(b"x" * 100))),
            ],
            "b": [],
        }
    )
    sim.run_until(1.0)
    stats = sim.stats
    note_size = len(codec.encode(Note(1, "hello")))
    blob_size = len(codec.encode(Blob(b"x" * 100)))
    assert stats.by_type["Note"].bytes_sent == note_size
    assert stats.by_type["Blob"].bytes_sent == blob_size
    assert stats.by_type["Note"].sent == 1
    assert stats.by_node[A].bytes_sent == note_size + blob_size
    assert stats.by_node[B].bytes_received == note_size + blob_size
    assert stats.bytes_sent == note_size + blob_size


def test_oversize_datagram_is_a_core_bug() -> None:
    from gossamer.config import WireConfig

    sim, _ = build(
        {"a": [(0.1, SendDatagram(B, Blob(b"x" * 2000)))], "b": []}, wire=WireConfig.lan()
    )
    with pytest.raises(SimulationError, match="over the 1400-byte limit"):
        sim.run_until(1.0)


def test_in_flight_is_bounded() -> None:
    net = NetworkConfig(max_in_flight=5)
    sim, cores = build({"a": [(0.1, SendDatagram(B, Note(i))) for i in range(8)], "b": []}, net)
    sim.run_until(1.0)
    assert len(cores["b"].received) == 5
    assert sim.stats.dropped["overflow"] == 3


# ---------------------------------------------------------------- partitions


def test_partition_blocks_both_ways_and_heal_restores() -> None:
    plan_a = [
        (1.0, SendDatagram(B, Note(1))),
        (1.0, SendDatagram(C, Note(2))),
        (3.0, SendDatagram(B, Note(3))),
    ]
    plan_b = [(1.0, SendDatagram(A, Note(4)))]
    sim, cores = build({"a": plan_a, "b": plan_b, "c": []})
    sim.partition([A, C])  # b forms a group of its own
    sim.run_until(2.0)
    assert [m.seq for _, _, m in cores["c"].received] == [2]  # type: ignore[attr-defined]
    assert cores["b"].received == [] and len(cores["a"].received) == 0
    assert sim.stats.dropped["partition"] == 2
    sim.heal()
    sim.run_until(4.0)
    assert [m.seq for _, _, m in cores["b"].received] == [3]  # type: ignore[attr-defined]


def test_one_way_block_is_asymmetric() -> None:
    sim, cores = build(
        {"a": [(1.0, SendDatagram(B, Note(1)))], "b": [(1.0, SendDatagram(A, Note(2)))]}
    )
    sim.block(A, B)
    sim.run_until(2.0)
    assert cores["b"].received == []
    assert [m.seq for _, _, m in cores["a"].received] == [2]  # type: ignore[attr-defined]
    assert not sim.reachable(A, B) and sim.reachable(B, A)


def test_partition_drops_messages_already_in_flight() -> None:
    sim, cores = build(
        {"a": [(1.0, SendDatagram(B, Note(1)))], "b": []}, NetworkConfig(latency_s=0.5, jitter_s=0)
    )
    sim.run_until(1.2)
    sim.partition([A], [B])
    sim.run_until(2.0)
    assert cores["b"].received == []


def test_partition_rejects_unknown_and_repeated_nodes() -> None:
    sim, _ = build({"a": [], "b": []})
    with pytest.raises(LocalError):
        sim.partition([A], [Address("zz:1")])
    with pytest.raises(LocalError):
        sim.partition([A], [A, B])


# ---------------------------------------------------------------- crash, restart, pause


def test_crash_drops_messages_and_old_timers_never_fire() -> None:
    sim, cores = build(
        {"a": [(1.0, SendDatagram(B, Note(1)))], "b": [(5.0, SendDatagram(A, Note(9)))]}
    )
    first_b = cores["b"]
    sim.crash(B)
    assert sim.core(B) is None and not sim.is_up(B)
    sim.run_until(2.0)
    assert sim.stats.dropped["down"] == 1
    ident = sim.restart(B)
    assert ident.epoch == 2 and sim.node_id(B) == ident
    sim.run_until(10.0)
    assert first_b.timers == [] and cores["b"] is not first_b and cores["b"].timers == []
    assert cores["a"].received == []


def test_restart_gets_a_fresh_random_and_crash_twice_is_refused() -> None:
    sim, cores = build({"a": []})
    first = cores["a"].rng.random()
    sim.crash(A)
    with pytest.raises(LocalError):
        sim.crash(A)
    sim.restart(A)
    with pytest.raises(LocalError):
        sim.restart(A)
    assert cores["a"].rng.random() != first


def test_pause_delays_inputs_in_order_until_resume() -> None:
    plan = [(1.0 + i * 0.01, SendDatagram(B, Note(i))) for i in range(20)]
    sim, cores = build({"a": plan, "b": [(1.5, SendDatagram(A, Note(99)))]})
    sim.pause(B, 0.5, 2.5)
    sim.run_until(10.0)
    got = cores["b"].received
    assert [m.seq for _, _, m in got] == list(range(20))  # type: ignore[attr-defined]
    assert all(t >= 1.5 for t, _, _ in got)
    assert all(t2 >= t1 for (t1, _, _), (t2, _, _) in itertools.pairwise(got))
    # B's own timer was held back too.
    assert cores["b"].timers[0][0] >= 2.0
    assert sim.in_flight == 0


def test_an_inbox_only_pause_holds_messages_but_not_timers() -> None:
    plan = [(1.0 + i * 0.01, SendDatagram(B, Note(i))) for i in range(5)]
    sim, cores = build({"a": plan, "b": [(1.5, SendDatagram(A, Note(99)))]})
    sim.pause(B, 2.0, 2.0, timers=False)
    sim.run_until(10.0)
    b = cores["b"]
    assert [m.seq for _, _, m in b.received] == list(range(5))  # type: ignore[attr-defined]
    assert all(t >= 3.0 for t, _, _ in b.received)
    assert b.timers[0][0] == 1.5  # on time, ahead of the messages that came before it
    assert [entry[0] for entry in b.log][:2] == ["timer", "recv"]


def test_call_runs_an_application_action_and_carries_out_its_effects() -> None:
    sim, cores = build({"a": [], "b": []})

    def send(core: object, now: float) -> float:
        assert isinstance(core, ScriptCore)
        core.out.datagram(B, Note(5))
        return now

    sim.run_until(1.0)
    assert sim.call(A, send) == 1.0
    sim.run_until(2.0)
    assert [m.seq for _, _, m in cores["b"].received] == [5]  # type: ignore[attr-defined]
    sim.crash(A)
    with pytest.raises(LocalError, match="down"):
        sim.call(A, send)


def test_resume_keeps_order_held_inputs_first() -> None:
    plan = [(2.0, SendDatagram(B, Note(1))), (2.2, SendDatagram(B, Note(2)))]
    sim, cores = build({"a": plan, "b": []}, NetworkConfig(latency_s=0.01, jitter_s=0.0))
    sim.pause(B, 1.0, 1.0)
    sim.run_until(2.15)  # Note 1 arrived at 2.01 and is held until 3.01
    sim.resume(B)
    sim.run_until(5.0)
    got = [(t, m.seq) for t, _, m in cores["b"].received]  # type: ignore[attr-defined]
    assert got == [(3.01, 1), (3.01, 2)]
    assert sim.in_flight == 0


def test_a_second_pause_does_not_let_new_inputs_overtake_held_ones() -> None:
    plan = [(2.0, SendDatagram(B, Note(1))), (2.2, SendDatagram(B, Note(2)))]
    sim, cores = build({"a": plan, "b": []}, NetworkConfig(latency_s=0.01, jitter_s=0.0))
    sim.pause(B, 1.0, 1.0)
    sim.run_until(2.15)  # Note 1 is held until 3.01
    sim.resume(B)
    sim.pause(B, 0.0, 0.0)  # Note 2 arrives during this pause, with no delay of its own
    sim.run_until(5.0)
    got = [(t, m.seq) for t, _, m in cores["b"].received]  # type: ignore[attr-defined]
    assert got == [(3.01, 1), (3.01, 2)]


def test_a_crash_discards_what_waited_in_the_inbox() -> None:
    plan = [(1.0, SendDatagram(B, Note(1))), (1.0, SendStream(B, Note(2)))]
    sim, cores = build({"a": plan, "b": []})
    sim.pause(B, 2.0, 2.0)
    sim.run_until(1.5)
    first_b = cores["b"]
    sim.crash(B)
    sim.restart(B)
    sim.run_until(10.0)
    assert first_b.received == [] and cores["b"].received == []
    assert sim.stats.dropped["down"] >= 1
    assert sim.in_flight == 0


def test_a_held_input_already_arrived_so_a_later_cut_does_not_take_it_back() -> None:
    sim, cores = build({"a": [(1.0, SendDatagram(B, Note(1)))], "b": []})
    sim.pause(B, 2.0, 2.0)
    sim.run_until(1.5)
    sim.partition([A], [B])
    sim.run_until(10.0)
    assert [m.seq for _, _, m in cores["b"].received] == [1]  # type: ignore[attr-defined]


def test_paused_stream_end_hears_up_messages_and_down_in_order() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0, stream_break_detect_s=0.5)
    plan = [(1.0, SendStream(B, Note(1))), (1.0, SendStream(B, Note(2)))]
    sim, cores = build({"a": plan, "b": []}, net)
    sim.pause(B, 1.0, 1.0)
    sim.run_until(1.2)
    sim.partition([A], [B])
    sim.resume(B)
    sim.run_until(5.0)
    kinds = [(kind, detail) for kind, _, detail in cores["b"].log]
    assert kinds == [("up", A), ("recv", 1), ("recv", 2), ("down", A)]
    assert sim.in_flight == 0


# ---------------------------------------------------------------- timers


class TimerCore(ScriptCore):
    def start(self, now: float) -> None:
        self.out.set_timer("x", 5.0)
        self.out.set_timer("x", 2.0)  # replaces
        self.out.set_timer("y", 3.0)
        self.out.set_timer("z", -1.0)  # in the past: fires at once
        self.out.cancel_timer("y")
        self.out.cancel_timer("never-set")


def test_timers_replace_cancel_and_fire_once() -> None:
    sim = Simulator(1)
    core: list[TimerCore] = []

    def factory(me: NodeId, rng: random.Random) -> TimerCore:
        core.append(TimerCore(me, rng, []))
        return core[0]

    sim.add_node("a", factory)
    sim.run_until(10.0)
    assert core[0].timers == [(0.0, "z"), (2.0, "x")]


class ChurnCore(ScriptCore):
    """Re-sets one timer many times per tick, leaving stale heap entries behind."""

    def start(self, now: float) -> None:
        self.out.set_timer("tick", now + 1)

    def on_timer(self, key: TimerKey, now: float) -> None:
        self.timers.append((now, key))
        if key == "tick" and now < 250:
            for i in range(1000):
                self.out.set_timer("later", now + 100 + i)
            self.out.set_timer("tick", now + 1)


def test_stale_timers_are_swept_so_the_heap_stays_bounded() -> None:
    sim = Simulator(1)
    sim.add_node("a", lambda me, rng: ChurnCore(me, rng, []))
    sim.run_until(250.0)
    assert len(sim._timers) < 110_000
    core = sim.core(A)
    assert isinstance(core, ChurnCore)
    # Every tick fired exactly once, sweeps notwithstanding.
    assert [t for t, key in core.timers if key == "tick"] == [float(t) for t in range(1, 251)]
    # And the one live "later" (set last by the tick at 249, for 249 + 100 + 999)
    # fires, once.
    sim.run_until(2000.0)
    assert [t for t, key in core.timers if key == "later"] == [1348.0]
    assert sim._stale_timers >= 0


# ---------------------------------------------------------------- streams


def test_stream_is_fifo_reliable_and_both_ends_hear_up() -> None:
    net = NetworkConfig(latency_s=0.01, jitter_s=0.05)
    plan = [(1.0 + i * 0.001, SendStream(B, Note(i))) for i in range(300)]
    sim, cores = build({"a": plan, "b": []}, net)
    sim.run_until(3.0)
    assert [m.seq for _, _, m in cores["b"].received] == list(range(300))  # type: ignore[attr-defined]
    assert [p for _, p in cores["a"].ups] == [B] and [p for _, p in cores["b"].ups] == [A]
    assert cores["b"].ups[0][0] <= cores["b"].received[0][0]


def test_either_end_can_use_the_stream() -> None:
    sim, cores = build({"a": [(1.0, OpenStream(B))], "b": [(2.0, SendStream(A, Note(7)))]})
    sim.run_until(3.0)
    assert [m.seq for _, _, m in cores["a"].received] == [7]  # type: ignore[attr-defined]
    assert len(cores["a"].ups) == 1 and len(cores["b"].ups) == 1


def test_partition_breaks_stream_and_both_ends_learn_after_detect_delay() -> None:
    net = NetworkConfig(latency_s=0.01, jitter_s=0.0, stream_break_detect_s=2.0)
    sim, cores = build({"a": [(1.0, OpenStream(B)), (5.0, SendStream(B, Note(1)))], "b": []}, net)
    sim.run_until(3.0)
    sim.partition([A], [B])
    sim.run_until(4.9)
    assert cores["a"].downs == [] and cores["b"].downs == []
    sim.run_until(5.05)
    assert cores["a"].downs == [(5.0, B)] and cores["b"].downs == [(5.0, A)]
    sim.heal()
    sim.run_until(10.0)
    # The send at 5.0 opened a fresh stream after the heal? No: at 5.0 the cut was still there.
    assert cores["b"].received == []


def test_crash_breaks_stream_and_in_flight_is_lost() -> None:
    net = NetworkConfig(latency_s=0.5, jitter_s=0.0, stream_break_detect_s=1.0)
    sim, cores = build({"a": [(0.0, OpenStream(B)), (2.0, SendStream(B, Note(1)))], "b": []}, net)
    sim.run_until(2.1)
    sim.crash(B)
    sim.restart(B)
    sim.run_until(5.0)
    assert cores["b"].received == []
    assert cores["a"].downs == [(3.1, B)]
    assert sim.stats.dropped["stream_broken"] == 1


def test_connect_to_dead_node_fails_for_the_opener() -> None:
    net = NetworkConfig(latency_s=0.01, jitter_s=0.0, stream_break_detect_s=1.0)
    sim, cores = build({"a": [(1.0, SendStream(B, Note(1)))], "b": []}, net)
    sim.crash(B)
    sim.run_until(5.0)
    assert cores["a"].ups == [] and cores["a"].downs == [(2.01, B)]


def test_graceful_close_delivers_in_flight_then_tells_the_other_end() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0)
    plan = [(1.0, SendStream(B, Note(1))), (1.0, SendStream(B, Note(2))), (1.0, CloseStream(B))]
    sim, cores = build({"a": plan, "b": [(1.05, SendStream(A, Note(3)))]}, net)
    sim.run_until(3.0)
    assert [m.seq for _, _, m in cores["b"].received] == [1, 2]  # type: ignore[attr-defined]
    assert [p for _, p in cores["b"].downs] == [A]
    assert cores["a"].downs == []  # the closer hears nothing more
    assert cores["a"].received == []  # b's reply raced the close and was lost


def test_close_of_an_open_stream_drops_what_the_other_end_sends_after_it() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0)
    plan = [(1.0, OpenStream(B)), (2.0, SendStream(B, Note(1))), (2.0, CloseStream(B))]
    sim, cores = build({"a": plan, "b": [(2.05, SendStream(A, Note(2)))]}, net)
    sim.run_until(5.0)
    assert [m.seq for _, _, m in cores["b"].received] == [1]  # type: ignore[attr-defined]
    assert cores["b"].downs == [(2.1, A)]
    assert cores["a"].received == [] and cores["a"].downs == []
    assert sim.stats.dropped["stream_broken"] == 1


def test_the_closer_can_reopen_and_the_other_end_hears_down_then_up() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0)
    plan = [(1.0, OpenStream(B)), (2.0, CloseStream(B)), (2.0, SendStream(B, Note(5)))]
    sim, cores = build({"a": plan, "b": []}, net)
    sim.run_until(5.0)
    b = cores["b"]
    assert [t for t, _ in b.ups] == [1.1, 2.1] and [t for t, _ in b.downs] == [2.1]
    assert [kind for kind, _, _ in b.log] == ["up", "down", "up", "recv"]
    assert [m.seq for _, _, m in b.received] == [5]  # type: ignore[attr-defined]


def test_a_crash_during_close_and_reopen_breaks_both_streams() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0, stream_break_detect_s=0.5)
    plan = [
        (1.0, OpenStream(B)),
        (2.0, SendStream(B, Note(1))),
        (2.0, CloseStream(B)),
        (2.0, OpenStream(B)),
    ]
    sim, cores = build({"a": plan, "b": []}, net)
    sim.run_until(2.05)
    first_b = cores["b"]
    sim.crash(B)
    sim.restart(B)
    sim.run_until(5.0)
    assert first_b.received == []
    assert cores["b"].received == [] and cores["b"].ups == []
    assert [kind for kind, _, _ in cores["a"].log if kind in ("up", "down")] == ["up", "down"]
    assert sim.in_flight == 0


def test_the_acceptor_may_close_a_stream_it_has_joined_while_connecting() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0)
    plan_b = [(1.0, SendStream(A, Note(1))), (1.0, CloseStream(A))]
    sim, cores = build({"a": [(1.0, OpenStream(B))], "b": plan_b}, net)
    sim.run_until(3.0)
    assert [m.seq for _, _, m in cores["a"].received] == [1]  # type: ignore[attr-defined]
    assert [kind for kind, _, _ in cores["a"].log] == ["timer", "up", "recv", "down"]
    assert [kind for kind, _, _ in cores["b"].log] == ["timer", "timer"]  # the closer hears nothing


def test_a_failed_connect_tells_every_end_that_joined() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0, stream_break_detect_s=0.5)
    sim, cores = build({"a": [(1.0, OpenStream(B))], "b": [(1.0, SendStream(A, Note(1)))]}, net)
    sim.run_until(1.05)
    sim.partition([A], [B])
    sim.run_until(3.0)
    assert cores["a"].downs == [(1.55, B)] and cores["b"].downs == [(1.55, A)]


def test_stream_to_self_is_a_core_bug() -> None:
    sim, _ = build({"a": [(1.0, OpenStream(A))]})
    with pytest.raises(SimulationError, match="itself"):
        sim.run_until(2.0)


# ---------------------------------------------------------------- running and errors


def test_run_until_idle_and_step() -> None:
    sim, cores = build({"a": [(0.0, SendDatagram(B, Note(1)))], "b": []})
    assert sim.step()  # fires a's plan timer: the datagram is now in flight
    assert sim.in_flight == 1
    assert sim.run_until_idle()
    assert len(cores["b"].received) == 1
    assert not sim.step()


def test_run_until_true_reports_when() -> None:
    sim, cores = build({"a": [(2.5, SendDatagram(B, Note(1)))], "b": []})
    when = sim.run_until_true(lambda: bool(cores["b"].received), timeout_s=10, poll_s=0.1)
    assert when is not None and 2.5 < when < 2.7
    assert sim.run_until_true(lambda: False, timeout_s=1) is None


def test_emitted_events_are_logged_bounded_and_hooked() -> None:
    heard: list[tuple[float, Address, object]] = []
    plan: list[Step] = [(float(i), Emit(f"e{i}")) for i in range(5)]
    sim = Simulator(3, event_log_limit=3, on_event=lambda t, a, e: heard.append((t, a, e)))
    sim.add_node("a", lambda me, rng: ScriptCore(me, rng, plan))
    sim.run_until(10)
    assert [e for _, e in sim.events(A)] == ["e2", "e3", "e4"]
    assert len(heard) == 5 and sim.stats.by_node[A].events_shed == 2


class Raiser(ScriptCore):
    def handle(self, sender: Address, message: Message, now: float) -> None:
        raise ZeroDivisionError("boom")


def test_a_core_that_raises_names_the_seed() -> None:
    sim = Simulator(4242, codec=codec)
    sim.add_node("a", lambda me, rng: ScriptCore(me, rng, [(1.0, SendDatagram(B, Note(1)))]))
    sim.add_node("b", lambda me, rng: Raiser(me, rng, []))
    with pytest.raises(SimulationError, match=r"seed=4242.*ZeroDivisionError"):
        sim.run_until(2.0)


def test_wire_check_delivers_a_decoded_copy() -> None:
    sim, cores = build({"a": [(1.0, SendDatagram(B, Note(5, "x")))], "b": []}, wire_check=True)
    sim.run_until(2.0)
    ((_, _, got),) = cores["b"].received
    assert got == Note(5, "x")


def test_caller_mistakes_raise_at_once() -> None:
    with pytest.raises(LocalError):
        Simulator("seed")  # type: ignore[arg-type]
    with pytest.raises(LocalError):
        Simulator(1, wire_check=True)
    sim, _ = build({"a": []})
    with pytest.raises(LocalError):
        sim.add_node("a", lambda me, rng: ScriptCore(me, rng, []))
    with pytest.raises(LocalError):
        sim.pause(A, 2.0, 1.0)
    with pytest.raises(LocalError):
        sim.crash(Address("nobody:1"))
    with pytest.raises(LocalError):
        sim.run_until_true(lambda: True, 1.0, poll_s=0)


def test_network_config_validates() -> None:
    from gossamer.errors import ConfigError

    for bad in (
        {"max_in_flight": 2.5},
        {"max_in_flight": float("inf")},
        {"loss": 1.5},
        {"latency_s": -1},
        {"stream_break_detect_s": 0},
        {"max_in_flight": 0},
    ):
        with pytest.raises(ConfigError):
            NetworkConfig(**bad)  # type: ignore[arg-type]
    assert (
        NetworkConfig.wan().loss > 0
        and NetworkConfig.local().latency_s < NetworkConfig.lan().latency_s
    )


def test_set_network_changes_later_sends_only() -> None:
    sim, cores = build(
        {"a": [(1.0, SendDatagram(B, Note(1))), (2.0, SendDatagram(B, Note(2)))], "b": []}
    )
    sim.run_until(1.5)
    sim.set_network(NetworkConfig(loss=1.0))
    sim.run_until(3.0)
    assert [m.seq for _, _, m in cores["b"].received] == [1]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- determinism

SCENARIO = """
import random
from gossamer.ids import Address
from gossamer.sim import NetworkConfig, Simulator
from gossamer.lab.news import Digest, NewsConfig, NewsCore, news_codec

class StreamingNews(NewsCore):
    # Also sends every digest on a stream, and emits set-valued events.

    def handle(self, sender, message, now):
        super().handle(sender, message, now)
        self._out.emit(frozenset({sender, self.me.name, "x", "y"}))

    def on_timer(self, key, now):
        if key == "gossip" and self._peers:
            self._out.stream(self._rng.choice(self._peers), Digest(self.known))
        super().on_timer(key, now)

def scenario(seed):
    net = NetworkConfig(loss=0.05, duplicate=0.05, reorder=0.1, jitter_s=0.01)
    sim = Simulator(seed, net, codec=news_codec, trace=True)
    addrs = [Address(f"n{i}:7946") for i in range(8)]
    for i in range(8):
        sim.add_node(f"n{i}", lambda me, rng: StreamingNews(me, rng, addrs, NewsConfig(0.2, 1.0)))
    sim.at(3.0, lambda: sim.partition(addrs[:3], addrs[3:]))
    sim.at(4.0, lambda: sim.pause(addrs[5], 0.1, 0.9))
    sim.at(6.0, lambda: sim.crash(addrs[7]))
    sim.at(8.0, sim.heal)
    sim.at(9.0, lambda: sim.restart(addrs[7]))
    sim.at(9.5, lambda: sim.block(addrs[0], addrs[1]))
    sim.at(10.0, lambda: sim.resume(addrs[5]))
    sim.run_until(15.0)
    return sim
"""


def _scenario(seed: int) -> Simulator:
    namespace: dict[str, object] = {}
    exec(textwrap.dedent(SCENARIO), namespace)
    sim = namespace["scenario"](seed)  # type: ignore[operator]
    assert isinstance(sim, Simulator)
    return sim


def test_same_seed_same_trace_different_seed_different_trace() -> None:
    first, again, other = _scenario(11), _scenario(11), _scenario(12)
    assert first.processed > 1000
    assert first.trace_hash() == again.trace_hash()
    assert first.trace_tail() == again.trace_tail()
    assert first.trace_hash() != other.trace_hash()


def test_trace_is_the_same_in_processes_with_different_hash_seeds() -> None:
    code = SCENARIO + "\nprint(scenario(11).trace_hash())\n"
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    digests.add(_scenario(11).trace_hash())
    assert len(digests) == 1, digests


def test_trace_hash_needs_trace_on() -> None:
    with pytest.raises(LocalError, match="trace=True"):
        Simulator(1).trace_hash()


def test_news_nodes_converge_after_faults() -> None:
    sim = _scenario(5)
    sim.heal()
    cores = [sim.core(a) for a in sim.addresses]
    news = [c for c in cores if isinstance(c, NewsCore)]
    assert len(news) == 8

    def agree() -> bool:
        return len({c.known for c in news if c is sim.core(c.me.address)}) == 1

    for a in sim.addresses:
        sim.resume(a)
    assert sim.run_until_true(agree, timeout_s=20, poll_s=0.01) is not None


def test_news_codec_roundtrips_in_simulation() -> None:
    addrs = [Address(f"n{i}:7946") for i in range(4)]
    sim = Simulator(3, codec=news_codec, wire_check=True)
    for i in range(4):
        sim.add_node(f"n{i}", lambda me, rng: NewsCore(me, rng, addrs))
    sim.run_until(10)
    assert sim.stats.messages_delivered > 50


# ---------------------------------------------------------------- regressions from review


def test_nodes_added_after_a_partition_join_the_unlisted_group() -> None:
    sim, _ = build({"a": [], "b": []})
    sim.partition([A])
    sim.add_node("c", lambda me, rng: ScriptCore(me, rng, []))
    assert sim.reachable(B, C) and sim.reachable(C, B)
    assert not sim.reachable(A, C)


def test_partition_accepts_generators() -> None:
    sim, _ = build({"a": [], "b": []})
    sim.partition(iter([A]), (x for x in [B]))
    assert not sim.reachable(A, B)


class Unbuildable(ScriptCore):
    def start(self, now: float) -> None:
        raise RuntimeError("no")


def test_a_node_that_fails_to_boot_is_not_left_half_registered() -> None:
    sim = Simulator(1)
    with pytest.raises(SimulationError, match="failed to start"):
        sim.add_node("a", lambda me, rng: Unbuildable(me, rng, []))
    assert sim.addresses == []
    with pytest.raises(LocalError):
        sim.add_node("-bad", lambda me, rng: ScriptCore(me, rng, []))
    assert sim.addresses == []
    sim.add_node("a", lambda me, rng: ScriptCore(me, rng, []))  # the name is free again


def test_notices_are_never_dropped_by_the_in_flight_bound() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0, max_in_flight=1)
    plan = [(1.0, OpenStream(B)), (2.0, SendDatagram(B, Note(1))), (2.0, CloseStream(B))]
    sim, cores = build({"a": plan, "b": []}, net)
    sim.run_until(5.0)
    assert [p for _, p in cores["b"].downs] == [A]
    assert sim.in_flight == 0


class Chatter(ScriptCore):
    """Random datagrams and stream traffic to random peers, on a timer."""

    def __init__(self, me: NodeId, rng: random.Random, peers: list[Address]) -> None:
        super().__init__(me, rng, [])
        self.peers = [p for p in peers if p != me.address]

    def start(self, now: float) -> None:
        self.out.set_timer("tick", now + self.rng.random())

    def on_timer(self, key: TimerKey, now: float) -> None:
        peer = self.rng.choice(self.peers)
        roll = self.rng.random()
        if roll < 0.4:
            self.out.datagram(peer, Note(1))
        elif roll < 0.8:
            self.out.stream(peer, Note(2))
        elif roll < 0.9:
            self.out.close_stream(peer)
        else:
            self.out.open_stream(peer)
        if now < 20.0:
            self.out.set_timer("tick", now + self.rng.random() * 0.2)


@pytest.mark.parametrize("seed", range(12))
def test_in_flight_returns_to_zero_whatever_the_faults(seed: int) -> None:
    net = NetworkConfig(
        latency_s=0.01,
        jitter_s=0.05,
        loss=0.1,
        duplicate=0.1,
        reorder=0.1,
        stream_break_detect_s=0.3,
        max_in_flight=50,
    )
    sim = Simulator(seed, net, codec=codec)
    peers = [Address(f"n{i}:7946") for i in range(6)]
    for i in range(6):
        sim.add_node(f"n{i}", lambda me, rng: Chatter(me, rng, peers))
    faults = random.Random(seed)
    for t in range(1, 20):
        victim = faults.choice(peers)
        action = faults.choice(["partition", "heal", "crash", "pause", "resume", "block"])
        if action == "partition":
            sim.at(t, lambda: sim.partition(peers[:3]))
        elif action == "heal":
            sim.at(t, sim.heal)
        elif action == "crash":
            sim.at(t, lambda v=victim: sim.crash(v) if sim.is_up(v) else sim.restart(v))  # type: ignore[misc]
        elif action == "pause":
            sim.at(t, lambda v=victim: sim.pause(v, 0.1, 1.5) if sim.is_up(v) else None)  # type: ignore[misc]
        elif action == "resume":
            sim.at(t, lambda v=victim: sim.resume(v))  # type: ignore[misc]
        else:
            sim.at(t, lambda v=victim: sim.block(v, peers[0]) if v != peers[0] else None)  # type: ignore[misc]
    sim.run_until(30.0)
    for addr in peers:
        sim.resume(addr)
    assert sim.run_until_idle(timeout_s=60.0)
    assert sim.in_flight == 0
    assert sim.stats.messages_sent > 100


# ---------------------------------------------------------------- second review regressions


def test_a_closer_hears_nothing_more_even_of_inputs_held_while_it_was_paused() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0)
    plan = [(1.0, OpenStream(B)), (1.05, CloseStream(B))]
    sim, cores = build({"a": plan, "b": []}, net)
    sim.run_until(1.02)
    # Held back by 0.1 s: a's close (due 1.05) is handed over at 1.15, before
    # the up notice (due 1.1, held to 1.2) -- which must then not reach it.
    sim.pause(A, 0.1, 0.1)
    sim.run_until(1.3)
    sim.resume(A)
    sim.run_until(5.0)
    assert [kind for kind, _, _ in cores["a"].log] == ["timer", "timer"]
    assert [kind for kind, _, _ in cores["b"].log] == ["up", "down"]


def test_closing_a_broken_stream_before_hearing_of_it_silences_the_news() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0, stream_break_detect_s=1.0)
    sim, cores = build({"a": [(1.0, OpenStream(B)), (2.5, CloseStream(B))]}, net)
    sim.add_node("b", lambda me, rng: ScriptCore(me, rng, []))
    sim.run_until(2.0)
    sim.partition([A], [B])  # a would hear of the break at 3.0, but closes at 2.5
    sim.run_until(5.0)
    assert [kind for kind, _, _ in cores["a"].log if kind in ("up", "down")] == ["up"]


def test_when_both_ends_close_neither_hears_anything() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0)
    plan_a = [(1.0, OpenStream(B)), (1.0, CloseStream(B))]
    plan_b = [(1.0, SendStream(A, Note(1))), (1.0, CloseStream(A))]
    sim, cores = build({"a": plan_a, "b": plan_b}, net)
    sim.run_until(3.0)
    assert [k for k, _, _ in cores["a"].log] == ["timer", "timer"]
    assert [k for k, _, _ in cores["b"].log] == ["timer", "timer"]
    # And on an open stream: both close at once; nobody hears down.
    plan_a = [(1.0, OpenStream(B)), (2.0, CloseStream(B))]
    plan_b = [(2.0, CloseStream(A))]
    sim, cores = build({"a": plan_a, "b": plan_b}, net)
    sim.run_until(5.0)
    assert [k for k, _, _ in cores["a"].log if k == "down"] == []
    assert [k for k, _, _ in cores["b"].log if k == "down"] == []
    assert sim.in_flight == 0


def test_what_the_other_end_sends_after_a_close_is_lost_even_if_the_closer_reopened() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0)
    plan_a = [(1.0, OpenStream(B)), (2.0, CloseStream(B)), (2.0, OpenStream(B))]
    sim, cores = build({"a": plan_a, "b": [(2.05, SendStream(A, Note(1)))]}, net)
    sim.run_until(5.0)
    assert cores["a"].received == []
    assert sim.stats.dropped["stream_broken"] == 1


def test_processed_counts_exactly_what_was_dispatched() -> None:
    sim, _ = build({"a": [(1.0, OpenStream(B))], "b": []})
    steps = 0
    while sim.step():
        steps += 1
    assert sim.processed == steps


def test_the_in_flight_bound_counts_messages_only() -> None:
    net = NetworkConfig(latency_s=0.1, jitter_s=0.0, max_in_flight=1)
    # A pending connect notice does not take the datagram's place.
    sim, cores = build(
        {"a": [(1.0, OpenStream(C)), (1.0, SendDatagram(B, Note(1)))], "b": [], "c": []}, net
    )
    sim.run_until(3.0)
    assert [m.seq for _, _, m in cores["b"].received] == [1]  # type: ignore[attr-defined]
    # Nor does a message waiting in a paused node's inbox.
    plan = [(1.0, SendDatagram(B, Note(1))), (1.5, SendDatagram(C, Note(2)))]
    sim, cores = build({"a": plan, "b": [], "c": []}, net)
    sim.pause(B, 2.0, 2.0)
    sim.run_until(5.0)
    assert [m.seq for _, _, m in cores["c"].received] == [2]  # type: ignore[attr-defined]
    assert "overflow" not in sim.stats.dropped


def test_held_timers_that_went_stale_are_swept_and_the_count_stays_sane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gossamer.sim import simulator as simulator_module

    monkeypatch.setattr(simulator_module, "_STALE_SWEEP_MIN", 5)
    sim = Simulator(1)
    sim.add_node("a", lambda me, rng: ChurnCore(me, rng, []))
    sim.pause(A, 0.5, 0.5)
    sim.run_until(30.0)
    sim.resume(A)
    sim.run_until(2000.0)
    assert sim._stale_timers >= 0
    core = sim.core(A)
    assert isinstance(core, ChurnCore)
    assert len([k for _, k in core.timers if k == "later"]) == 1


def test_times_must_be_finite() -> None:
    sim, _ = build({"a": []})
    with pytest.raises(LocalError):
        sim.at(float("nan"), sim.heal)
    with pytest.raises(LocalError):
        sim.pause(A, 0.0, float("inf"))
