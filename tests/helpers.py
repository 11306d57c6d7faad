"""Helpers shared by the test files: nodes on loopback, and clusters in the simulator."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Collection, Iterable
from typing import Any, Protocol, TypeVar

from gossamer.config import WireConfig
from gossamer.ids import Address
from gossamer.membership.members import Status
from gossamer.runtime.keyring import Keyring
from gossamer.runtime.node import Node
from gossamer.runtime.nodeconfig import NodeConfig
from gossamer.sim import CoreFactory, NetworkConfig, Simulator
from gossamer.wire import registry

TIMEOUT_S = 30.0
"""How long a condition may take to hold: far above what any needs on an idle machine."""

_C = TypeVar("_C")

# -------------------------------------------------------------------- on loopback


def alive_names(node: Node) -> set[str]:
    return {m.name for m in node.members() if m.status is Status.ALIVE}


def sees_alive(node: Node, names: Iterable[str]) -> bool:
    return alive_names(node) == set(names)


class Launch(Protocol):
    async def __call__(self, name: str, **overrides: Any) -> Node: ...


@contextlib.asynccontextmanager
async def launcher(
    keyring: Keyring, *, direct_when: Collection[str] = (), **defaults: Any
) -> AsyncIterator[Launch]:
    """Start nodes with ``NodeConfig.local``, ``keyring`` (unless plaintext) and
    ``defaults``; stop them all, last first, on the way out.

    A node given any of the ``direct_when`` overrides is built with
    ``NodeConfig(name, "127.0.0.1:0", ...)`` instead of the preset.
    """
    started: list[Node] = []

    async def start(name: str, **overrides: Any) -> Node:
        overrides = {**defaults, **overrides}
        if not overrides.get("plaintext"):
            overrides.setdefault("keyring", keyring)
        if any(key in overrides for key in direct_when):
            config = NodeConfig(name, "127.0.0.1:0", **overrides)
        else:
            config = NodeConfig.local(name, **overrides)
        node = await Node.start(config)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in reversed(started):
            await node.stop()


# -------------------------------------------------------------------- in the simulator


def sim_cluster(
    n: int, seed: int, factory: CoreFactory, *, loss: float = 0.0, trace: bool = False
) -> Simulator:
    """Nodes ``n0`` to ``n{n-1}`` built by ``factory`` on a wire-checked LAN losing ``loss``."""
    sim = Simulator(
        seed,
        dataclasses.replace(NetworkConfig.lan(), loss=loss),
        codec=registry,
        wire=WireConfig.lan(),
        wire_check=True,
        trace=trace,
    )
    for i in range(n):
        sim.add_node(f"n{i}", factory)
    return sim


def core_of(sim: Simulator, address: Address, cls: type[_C]) -> _C:
    """The core of the node at ``address``, which must be up and a ``cls``."""
    core = sim.core(address)
    assert isinstance(core, cls)
    return core
