"""The replication kernel in the simulator: replicas that mutate and ship
over a network that loses, duplicates and reorders converge once it is
whole (and the same seed gives the same run)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from gossamer.crdt.replicate import Ack, DeltaGroup, Replicator, ReplicatorConfig
from gossamer.crdt.types import AWSet, replica_id
from gossamer.effects import Effect, Outbox, TimerKey
from gossamer.ids import Address, NodeId
from gossamer.sim import NetworkConfig, Simulator
from gossamer.wire import Message, Registry

codec = Registry("crdt-sim")


@codec.message(1)
@dataclass(frozen=True, slots=True)
class SetDeltas(Message):
    delta: AWSet  # type: ignore[type-arg]
    upto: int
    full: bool


@codec.message(2)
@dataclass(frozen=True, slots=True)
class SetAck(Message):
    upto: int


MUTATE_UNTIL_S = 20.0
SHIP_EVERY_S = 0.2


class ReplicaCore:
    """A node holding one replicated set: it adds and removes at random
    until ``MUTATE_UNTIL_S``, and ships to every peer on a timer."""

    def __init__(self, me: NodeId, rng: random.Random, peers: list[Address]) -> None:
        self.me, self.rng = me, rng
        self.peers = [p for p in peers if p != me.address]
        self.replica = Replicator(AWSet[int](), ReplicatorConfig(max_buffer=32))
        self.writer = replica_id(me.name, me.epoch)
        self.made: list[AWSet[int]] = []
        self.out = Outbox()

    def start(self, now: float) -> None:
        self.out.set_timer("mutate", now + self.rng.uniform(0, 0.1))
        self.out.set_timer("ship", now + self.rng.uniform(0, SHIP_EVERY_S))

    def on_timer(self, key: TimerKey, now: float) -> None:
        if key == "mutate" and now < MUTATE_UNTIL_S:
            x = self.rng.randrange(30)
            if self.rng.random() < 0.7:
                self.made.append(self.replica.mutate(lambda s: s.add(self.writer, x)))
            else:
                self.made.append(self.replica.mutate(lambda s: s.remove(x)))
            self.out.set_timer("mutate", now + self.rng.uniform(0.02, 0.2))
        elif key == "ship":
            for peer in self.peers:
                group = self.replica.ship(peer)
                if group is not None:
                    self.out.datagram(peer, SetDeltas(group.delta, group.upto, group.full))
            self.replica.gc(self.peers)
            self.out.set_timer("ship", now + SHIP_EVERY_S)

    def handle(self, sender: Address, message: Message, now: float) -> None:
        if isinstance(message, SetDeltas):
            group = DeltaGroup(message.delta, message.upto, message.full)
            ack = self.replica.receive(sender, group)
            self.out.datagram(sender, SetAck(ack.upto))
        elif isinstance(message, SetAck):
            self.replica.acknowledged(sender, Ack(message.upto))

    def on_stream_up(self, peer: Address, now: float) -> None:
        pass

    def on_stream_down(self, peer: Address, now: float) -> None:
        pass

    def drain(self) -> list[Effect]:
        return self.out.drain()


def run(seed: int) -> dict[str, ReplicaCore]:
    network = NetworkConfig(latency_s=0.005, jitter_s=0.005, loss=0.2, duplicate=0.1, reorder=0.2)
    sim = Simulator(seed, network, codec=codec)
    cores: dict[str, ReplicaCore] = {}
    addresses = [Address(f"n{i}:7946") for i in range(5)]

    def factory(me: NodeId, rng: random.Random) -> ReplicaCore:
        core = cores[me.name] = ReplicaCore(me, rng, addresses)
        return core

    for i in range(5):
        sim.add_node(f"n{i}", factory)
    sim.run_for(MUTATE_UNTIL_S)
    sim.set_network(NetworkConfig(latency_s=0.005, jitter_s=0.005))  # whole again
    sim.run_for(10.0)
    return cores


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replicas_converge_in_the_simulator_after_loss_duplication_and_reordering(
    seed: int,
) -> None:
    cores = run(seed)
    expected = AWSet[int]()
    for core in cores.values():
        for delta in core.made:
            expected.join(delta)
    states = [core.replica.state for core in cores.values()]
    assert all(state == expected for state in states), f"seed {seed}: replicas differ"
    sent = sum(c.replica.stats.deltas_sent for c in cores.values())
    full = sum(c.replica.stats.full_sent for c in cores.values())
    assert sent > full, f"seed {seed}: {sent} delta groups, {full} full states"
    assert run(seed)["n0"].replica.state == cores["n0"].replica.state  # deterministic
