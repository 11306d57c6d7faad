"""gossamer: run a Python application as one node of a masterless cluster.

Nodes find each other by gossip, notice each other's failures, and share soft
state that converges without locks.  The protocol cores are sans-IO: they take
the current time and a ``random.Random`` as arguments and return effects as
data, so the same code runs under the deterministic simulator (``gossamer.sim``)
and under the asyncio runtime.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
