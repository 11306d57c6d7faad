"""The deterministic simulator: many sans-IO cores, one virtual clock, one seeded network.

``Simulator`` runs the real protocol cores of any number of nodes on a
virtual clock over a simulated network (latency, loss, duplication,
reordering, streams that break, partitions, crashes, restarts, starved
processes).  The same seed always gives the same trace.
"""

from gossamer.sim.network import NetworkConfig
from gossamer.sim.simulator import (
    CoreFactory,
    NodeStats,
    SimStats,
    SimulationError,
    Simulator,
    TypeStats,
)

__all__ = [
    "CoreFactory",
    "NetworkConfig",
    "NodeStats",
    "SimStats",
    "SimulationError",
    "Simulator",
    "TypeStats",
]
