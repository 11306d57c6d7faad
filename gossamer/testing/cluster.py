"""A reusable hypothesis state machine for clusters of sans-IO cores.

:class:`ClusterMachine` boots a simulated cluster and lets hypothesis throw
random schedules of faults at it -- partitions (symmetric and one-way), heals,
crashes, restarts, starved processes, datagram loss, the passage of time, and
single steps of the event queue -- while the subclass's invariants are checked
after every step.  A protocol test subclasses it and fills in three hooks::

    class SwimMachine(ClusterMachine):
        def make_core(self, me, rng, peers):
            return SwimCore(me, rng, seeds=peers[:1])

        def always(self):            # after every rule
            ...

        def at_quiescence(self):     # after heal + settle
            ...

    TestSwim = SwimMachine.TestCase

Every run notes its simulator seed (hypothesis prints notes for the failing
example), and the simulator's own errors carry it too, so a failure can be
replayed with ``Simulator(seed=...)``.

Invariants of the machine itself: at least one node is up at all times (a
crash is refused otherwise), restarts only target crashed nodes, and the
settle rule always leaves the network whole and lossless before calling
:meth:`ClusterMachine.at_quiescence`.
"""

from __future__ import annotations

__all__ = ["ClusterMachine", "InvariantViolation"]

import random
from dataclasses import replace
from typing import ClassVar

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gossamer.effects import Core
from gossamer.ids import Address, NodeId
from gossamer.sim.network import NetworkConfig
from gossamer.sim.simulator import Simulator
from gossamer.wire import Registry


class InvariantViolation(AssertionError):
    """A protocol invariant does not hold (raised by :meth:`ClusterMachine.require`).

    Distinct from a plain ``AssertionError`` so a test can tell a broken
    protocol from a broken simulator or test.
    """


class ClusterMachine(RuleBasedStateMachine):
    """Base state machine: a simulated cluster under random faults.

    Class attributes tune it: ``min_nodes``/``max_nodes`` (cluster size drawn
    at boot), ``network`` (the starting network), ``codec`` (to count bytes
    and check every message against the wire codec), ``settle_s`` (virtual
    time the settle rule runs a healed network before checking quiescence),
    ``max_advance_s`` (longest single advance of time).
    """

    min_nodes: ClassVar[int] = 3
    max_nodes: ClassVar[int] = 8
    network: ClassVar[NetworkConfig] = NetworkConfig()
    codec: ClassVar[Registry | None] = None
    settle_s: ClassVar[float] = 30.0
    max_advance_s: ClassVar[float] = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._sim: Simulator | None = None
        self.nodes: list[Address] = []

    # ------------------------------------------------------------------ hooks

    def make_core(self, me: NodeId, rng: random.Random, peers: list[Address]) -> Core:
        """Build the core of one node life; ``peers`` lists every node's address."""
        raise NotImplementedError("a ClusterMachine subclass must define make_core")

    def require(self, condition: bool, message: str) -> None:
        """Check one invariant; raise :class:`InvariantViolation` with ``message`` if it fails."""
        if not condition:
            raise InvariantViolation(message)

    def always(self) -> None:
        """Invariants that hold after every step, whatever the faults.  Override."""

    def at_quiescence(self) -> None:
        """Invariants that hold once the network has been whole and lossless for
        ``settle_s`` with every paused node resumed.  Override."""

    # ------------------------------------------------------------------ state

    @property
    def sim(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("the cluster has not booted yet")
        return self._sim

    def up_nodes(self) -> list[Address]:
        return [a for a in self.nodes if self.sim.is_up(a)]

    def down_nodes(self) -> list[Address]:
        return [a for a in self.nodes if not self.sim.is_up(a)]

    # ------------------------------------------------------------------ rules

    @initialize(seed=st.integers(0, 2**32 - 1), data=st.data())
    def boot(self, seed: int, data: st.DataObject) -> None:
        count = data.draw(st.integers(self.min_nodes, self.max_nodes), label="nodes")
        note(f"simulator seed={seed} nodes={count}")
        sim = Simulator(seed, self.network, codec=self.codec, wire_check=self.codec is not None)
        self._sim = sim
        self.nodes = [Address(f"n{i}:7946") for i in range(count)]
        peers = list(self.nodes)

        def factory(me: NodeId, rng: random.Random) -> Core:
            return self.make_core(me, rng, peers)

        for i in range(count):
            sim.add_node(f"n{i}", factory)

    @rule(seconds=st.floats(0.001, 1.0) | st.floats(1.0, 5.0))
    def advance(self, seconds: float) -> None:
        self.sim.run_for(min(seconds, self.max_advance_s))

    @rule(count=st.integers(1, 20))
    def step(self, count: int) -> None:
        for _ in range(count):
            if not self.sim.step():
                break

    @rule(data=st.data())
    def partition(self, data: st.DataObject) -> None:
        sides = data.draw(
            st.lists(st.integers(0, 2), min_size=len(self.nodes), max_size=len(self.nodes)),
            label="sides",
        )
        groups = [[a for a, s in zip(self.nodes, sides, strict=True) if s == g] for g in range(3)]
        self.sim.partition(*[g for g in groups if g])

    @rule(data=st.data())
    def block(self, data: st.DataObject) -> None:
        source = data.draw(st.sampled_from(self.nodes), label="from")
        target = data.draw(st.sampled_from([a for a in self.nodes if a != source]), label="to")
        self.sim.block(source, target)

    @rule()
    def heal(self) -> None:
        self.sim.heal()

    @precondition(lambda self: len(self.up_nodes()) > 1)
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        self.sim.crash(data.draw(st.sampled_from(self.up_nodes()), label="crash"))

    @precondition(lambda self: bool(self.down_nodes()))
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        self.sim.restart(data.draw(st.sampled_from(self.down_nodes()), label="restart"))

    @rule(data=st.data(), low=st.floats(0.0, 1.0), spread=st.floats(0.0, 2.0))
    def pause(self, data: st.DataObject, low: float, spread: float) -> None:
        self.sim.pause(
            data.draw(st.sampled_from(self.up_nodes()), label="pause"), low, low + spread
        )

    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        self.sim.resume(data.draw(st.sampled_from(self.nodes), label="resume"))

    @rule(loss=st.sampled_from([0.0, 0.01, 0.05, 0.2]))
    def set_loss(self, loss: float) -> None:
        self.sim.set_network(replace(self.sim.network, loss=loss))

    @rule()
    def settle(self) -> None:
        """Heal everything, resume every node, stop the loss, run, check quiescence."""
        sim = self.sim
        sim.heal()
        for addr in self.nodes:
            sim.resume(addr)
        sim.set_network(replace(sim.network, loss=0.0))
        sim.run_for(self.settle_s)
        self.at_quiescence()

    @invariant()
    def check_always(self) -> None:
        if self._sim is not None:
            self.always()
