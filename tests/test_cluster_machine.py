"""The reusable cluster state machine, driving the teaching protocol.

Random schedules of partitions, one-way blocks, crashes, restarts, pauses,
loss and single steps; the news protocol's invariants are checked after
every step and at quiescence.  A deliberately broken core shows the machine
finds real bugs.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from gossamer.clocks import VersionVector
from gossamer.effects import Core
from gossamer.ids import Address, NodeId
from gossamer.lab.news import NewsConfig, NewsCore, news_codec
from gossamer.testing.cluster import ClusterMachine, InvariantViolation

FAST = NewsConfig(gossip_interval_s=0.2, publish_interval_s=1.0)


class NewsMachine(ClusterMachine):
    codec = news_codec
    max_nodes = 6
    settle_s = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[Address, int], VersionVector] = {}

    def make_core(self, me: NodeId, rng: random.Random, peers: list[Address]) -> Core:
        return NewsCore(me, rng, peers, FAST)

    def news(self) -> dict[Address, NewsCore]:
        out = {}
        for addr in self.up_nodes():
            core = self.sim.core(addr)
            assert isinstance(core, NewsCore)
            out[addr] = core
        return out

    def always(self) -> None:
        for addr, core in self.news().items():
            key = (addr, core.me.epoch)
            before = self.seen.get(key, VersionVector())
            # Knowledge only grows, and nobody knows more of an author than it published.
            self.require(core.known.dominates(before), f"{addr} forgot: {before} -> {core.known}")
            self.seen[key] = core.known
            own = core.known.get(core.author)
            for other in self.news().values():
                self.require(
                    other.known.get(core.author) <= own,
                    f"{other.me.name} knows more of {core.author} than it published",
                )

    def at_quiescence(self) -> None:
        # Publications keep coming, so with many nodes the cluster is rarely in
        # full agreement at one instant.  What must hold: everything the live
        # nodes know now reaches every live node.
        everything = VersionVector()
        for core in self.news().values():
            everything = everything.merge(core.known)

        def caught_up() -> bool:
            return all(core.known.dominates(everything) for core in self.news().values())

        when = self.sim.run_until_true(caught_up, timeout_s=20.0, poll_s=0.05)
        self.require(
            when is not None, f"news known at settling did not reach every live node: {everything}"
        )


TestNewsCluster = NewsMachine.TestCase
TestNewsCluster.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class LargeNewsMachine(NewsMachine):
    max_nodes = 12


@pytest.mark.slow
def test_news_cluster_long_schedules() -> None:
    run_state_machine_as_test(
        LargeNewsMachine,
        settings=settings(
            max_examples=600,
            stateful_step_count=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


class ForgetfulCore(NewsCore):
    """Broken on purpose: a Digest *replaces* knowledge instead of merging it."""

    def _merge(self, sender: Address, theirs: VersionVector) -> None:
        self.known = theirs


class BrokenMachine(NewsMachine):
    def make_core(self, me: NodeId, rng: random.Random, peers: list[Address]) -> Core:
        return ForgetfulCore(me, rng, peers, FAST)


def test_the_machine_catches_a_broken_merge() -> None:
    # The failure must be a protocol invariant, not a crash of the simulator.
    with pytest.raises(InvariantViolation):
        run_state_machine_as_test(
            BrokenMachine,
            settings=settings(
                max_examples=50,
                stateful_step_count=10,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate],
                report_multiple_bugs=False,
            ),
        )
