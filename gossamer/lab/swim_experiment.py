"""The SWIM experiment behind ``gossamer sim swim``: join, settle, crash one node, measure.

One run, fully determined by its arguments (the seed above all):

1. ``nodes`` SWIM nodes boot at time 0; node ``n0`` is the seed and every
   other node joins through it.  Every datagram is encoded by the wire codec
   and held to the LAN datagram limit (1,400 bytes), so byte counts are real.
2. *Convergence*: the first time every node sees all ``nodes`` members alive
   (checked every 10 ms of virtual time, for at most ``join_timeout_s``).
3. The cluster settles for ``settle_s``.  Then ``ceil(slow * nodes)`` of the
   nodes (never the seed or the victim) are starved for the rest of the run:
   every message they get is held back 0.5-2.5 s (their timers keep time),
   as in the Lifeguard paper.
4. One random node other than the seed (the *victim*) crashes, and the run
   goes on until ``duration_s`` of virtual time have passed since boot.

What it measures (the keys of :meth:`SwimReport.as_json`):

* ``converge_s``: step 2 (``None`` if it did not happen in time).
* ``detect_first_s``, ``detect_all_s``: from the crash until the first and
  until the last live node declares the victim dead (``None`` if not by the
  end of the run).
* ``false_suspicions``, ``false_deaths``: suspicions and death declarations
  of members that were neither crashed nor starved.  Each is counted once
  per life and incarnation of the member, however many nodes heard it: an
  *episode*, which is what an operator would see as one false alarm.
  Suspicions of starved members are counted apart
  (:attr:`SwimReport.slow_suspicions`): those members really are late.
* ``bytes_per_node_per_s``, ``msgs_per_node_per_s``: everything sent by all
  nodes, per node and per second, from the end of settling to the end of
  the run (the join burst excluded).
"""

from __future__ import annotations

__all__ = ["SwimReport", "run_swim_experiment"]

import dataclasses
import math
import random
from dataclasses import dataclass

from gossamer.config import WireConfig
from gossamer.core import NodeCore
from gossamer.errors import LocalError
from gossamer.failure.swim import SwimConfig
from gossamer.ids import Address, NodeId
from gossamer.membership.members import MemberDead, MemberSuspect
from gossamer.parts import node_parts
from gossamer.sim.network import NetworkConfig
from gossamer.sim.simulator import Simulator
from gossamer.wire import registry

_SLOW_DELAY_S = (0.5, 2.5)


@dataclass(frozen=True, slots=True)
class SwimReport:
    """What one run measured (see the module docstring)."""

    nodes: int
    seed: int
    loss: float
    slow: float
    lifeguard: bool
    converge_s: float | None
    detect_first_s: float | None
    detect_all_s: float | None
    false_suspicions: int
    false_deaths: int
    bytes_per_node_per_s: float
    msgs_per_node_per_s: float
    crashed_at_s: float
    """Virtual time of the crash."""
    slow_suspicions: int
    """Suspicion episodes of the starved members (not false: they are late)."""
    slow_deaths: int
    """Death declarations of the starved members."""
    messages: int
    """Messages the simulator carried in the whole run."""

    def as_json(self, wall_s: float) -> dict[str, object]:
        """The documented JSON object, with the run's wall time added by the caller."""
        return {
            "nodes": self.nodes,
            "seed": self.seed,
            "loss": self.loss,
            "slow": self.slow,
            "lifeguard": self.lifeguard,
            "converge_s": _round(self.converge_s),
            "detect_first_s": _round(self.detect_first_s),
            "detect_all_s": _round(self.detect_all_s),
            "false_suspicions": self.false_suspicions,
            "false_deaths": self.false_deaths,
            "bytes_per_node_per_s": round(self.bytes_per_node_per_s, 1),
            "msgs_per_node_per_s": round(self.msgs_per_node_per_s, 2),
            "wall_s": round(wall_s, 2),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_swim_experiment(
    nodes: int,
    seed: int,
    *,
    loss: float = 0.0,
    slow: float = 0.0,
    lifeguard: bool = True,
    duration_s: float = 120.0,
    settle_s: float = 5.0,
    join_timeout_s: float = 30.0,
    config: SwimConfig | None = None,
) -> SwimReport:
    """Run the experiment once; deterministic in every argument."""
    if nodes < 3:
        raise LocalError(f"the experiment needs at least 3 nodes, got {nodes}")
    if not 0 <= slow < 1:
        raise LocalError(f"slow must be a fraction in [0, 1), got {slow}")
    if not math.isfinite(duration_s) or duration_s <= join_timeout_s + settle_s:
        raise LocalError(
            f"duration_s ({duration_s}) must exceed join_timeout_s + settle_s "
            f"({join_timeout_s + settle_s}) to leave time for the crash"
        )
    cfg = dataclasses.replace(config or SwimConfig.lan(), lifeguard=lifeguard)
    network = dataclasses.replace(NetworkConfig.lan(), loss=loss)

    suspected: set[tuple[str, int, int]] = set()
    declared: set[tuple[str, int, int]] = set()
    dead_at: dict[Address, float] = {}
    victim_name = ""

    def on_event(now: float, at: Address, event: object) -> None:
        if isinstance(event, MemberSuspect):
            m = event.member
            suspected.add((m.name, m.epoch, m.incarnation))
        elif isinstance(event, MemberDead):
            m = event.member
            declared.add((m.name, m.epoch, m.incarnation))
            if m.name == victim_name and at not in dead_at:
                dead_at[at] = now

    sim = Simulator(seed, network, codec=registry, wire=WireConfig.lan(), on_event=on_event)
    seed_address = Address("n0:7946")

    def factory(me: NodeId, rng: random.Random) -> NodeCore:
        # The node the runtime runs: NodeCore, with SWIM inside.
        return NodeCore(me, rng, node_parts(swim=cfg, seeds=[seed_address]))

    for i in range(nodes):
        sim.add_node(f"n{i}", factory)
    addresses = sim.addresses
    cores = [sim.core(a) for a in addresses]

    def converged() -> bool:
        return all(isinstance(c, NodeCore) and c.swim.table.alive_count() == nodes for c in cores)

    converge_s = sim.run_until_true(converged, timeout_s=join_timeout_s, poll_s=0.01)
    sim.run_until((converge_s if converge_s is not None else sim.now) + settle_s)

    picker = random.Random(f"swim-experiment:{seed}")
    others = list(addresses[1:])
    picker.shuffle(others)
    victim = others[0]
    victim_name = sim.node_id(victim).name
    slow_nodes = others[1 : 1 + math.ceil(slow * nodes)]
    for address in slow_nodes:
        sim.pause(address, *_SLOW_DELAY_S, timers=False)
    slow_names = {sim.node_id(a).name for a in slow_nodes}

    window_start = sim.now
    before = sim.stats
    crashed_at = sim.now
    sim.crash(victim)
    sim.run_until(duration_s)
    after = sim.stats
    window = sim.now - window_start

    survivors = [a for a in addresses if a != victim]
    times = [dead_at[a] - crashed_at for a in survivors if a in dead_at]
    detect_first = min(times) if times else None
    detect_all = max(times) if len(times) == len(survivors) else None

    def healthy(key: tuple[str, int, int]) -> bool:
        return key[0] != victim_name and key[0] not in slow_names

    return SwimReport(
        nodes=nodes,
        seed=seed,
        loss=loss,
        slow=slow,
        lifeguard=lifeguard,
        converge_s=converge_s,
        detect_first_s=detect_first,
        detect_all_s=detect_all,
        false_suspicions=sum(1 for k in suspected if healthy(k)),
        false_deaths=sum(1 for k in declared if healthy(k)),
        bytes_per_node_per_s=(after.bytes_sent - before.bytes_sent) / nodes / window,
        msgs_per_node_per_s=(after.messages_sent - before.messages_sent) / nodes / window,
        crashed_at_s=crashed_at,
        slow_suspicions=sum(1 for k in suspected if k[0] in slow_names),
        slow_deaths=sum(1 for k in declared if k[0] in slow_names),
        messages=after.messages_sent,
    )
