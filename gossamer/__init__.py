"""gossamer: run a Python application as one node of a masterless cluster.

Nodes find each other by gossip, notice each other's failures, and share soft
state that converges without locks.  The protocol cores are sans-IO: they take
the current time and a ``random.Random`` as arguments and return effects as
data, so the same code runs under the deterministic simulator (``gossamer.sim``)
and under the asyncio runtime (:class:`Node`).

::

    from gossamer import Node, NodeConfig, load_keyring

    config = NodeConfig.lan("web-1", "10.0.0.5:7946", seeds=("10.0.0.4:7946",),
                            keyring=load_keyring("cluster.keys"))
    async with Node.start(config) as node:
        async for event in node.events():
            print(event)
"""

from __future__ import annotations

from gossamer._version import __version__

__all__ = [
    "Claim",
    "GroupJoined",
    "GroupLeft",
    "GroupMonitor",
    "JoinRefused",
    "Keyring",
    "LocalError",
    "Member",
    "MemberAlive",
    "MemberDead",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberSuspect",
    "MemberUpdated",
    "NameClash",
    "NameInUse",
    "NameLost",
    "NameRefused",
    "Node",
    "NodeConfig",
    "NodeEvent",
    "NodeStopped",
    "Registration",
    "Ring",
    "RingChanged",
    "Status",
    "__version__",
    "load_keyring",
]

from typing import TYPE_CHECKING, Any

from gossamer.errors import LocalError

if TYPE_CHECKING:
    from gossamer.crdt.groups import GroupJoined, GroupLeft
    from gossamer.crdt.names import Claim, NameLost
    from gossamer.failure.names import JoinRefused, NameClash, NameRefused
    from gossamer.membership.members import (
        Member,
        MemberAlive,
        MemberDead,
        MemberJoined,
        MemberLeft,
        MemberReaped,
        MemberSuspect,
        MemberUpdated,
        Status,
    )
    from gossamer.parts import NodeEvent
    from gossamer.ring import Ring, RingChanged
    from gossamer.runtime.engine import NameInUse, NodeStopped
    from gossamer.runtime.keyring import Keyring, load_keyring
    from gossamer.runtime.node import Node
    from gossamer.runtime.nodeconfig import NodeConfig
    from gossamer.runtime.registries import GroupMonitor, Registration

# Imported on first use, so `import gossamer` (and the sans-IO cores, which
# import the package) does not pull in asyncio, aiohttp and cryptography.
_LAZY = {
    "Claim": "gossamer.crdt.names",
    "NameLost": "gossamer.crdt.names",
    "GroupJoined": "gossamer.crdt.groups",
    "GroupLeft": "gossamer.crdt.groups",
    "GroupMonitor": "gossamer.runtime.registries",
    "Registration": "gossamer.runtime.registries",
    "Keyring": "gossamer.runtime.keyring",
    "load_keyring": "gossamer.runtime.keyring",
    "Member": "gossamer.membership.members",
    "MemberAlive": "gossamer.membership.members",
    "MemberDead": "gossamer.membership.members",
    "MemberJoined": "gossamer.membership.members",
    "MemberLeft": "gossamer.membership.members",
    "MemberReaped": "gossamer.membership.members",
    "MemberSuspect": "gossamer.membership.members",
    "MemberUpdated": "gossamer.membership.members",
    "Status": "gossamer.membership.members",
    "JoinRefused": "gossamer.failure.names",
    "NameClash": "gossamer.failure.names",
    "NameRefused": "gossamer.failure.names",
    "NameInUse": "gossamer.runtime.engine",
    "NodeStopped": "gossamer.runtime.engine",
    "Node": "gossamer.runtime.node",
    "NodeConfig": "gossamer.runtime.nodeconfig",
    "NodeEvent": "gossamer.parts",
    "Ring": "gossamer.ring",
    "RingChanged": "gossamer.ring",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gossamer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
