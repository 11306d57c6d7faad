"""The catalogue: every part a node runs, in order, and how each is configured.

Each entry is a :class:`~gossamer.effects.PartSpec` that lives next to its
part (``failure/swim.py``, ``ring/part.py``): the part's name, its config
section with presets and checks, and how to build it.  The runtime builds
a node's parts from this list and its ``NodeConfig``; ``NodeConfig`` takes
its sections (``NodeConfig.swim``, ``[ring]`` in TOML) from it; the debug
endpoint serves whatever views and stats the parts have.  Adding a part is
one folder, one entry here and one field in :class:`~gossamer.core.NodeView`.

Order matters: a part hears the events of the parts before it first, and
its views come in this order.
"""

from __future__ import annotations

__all__ = [
    "CATALOGUE",
    "TRAFFIC",
    "NodeEvent",
    "PartEvent",
    "build_parts",
    "node_parts",
    "overlay_parts",
]

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from gossamer.admin import keys
from gossamer.crdt.names import NameLost
from gossamer.effects import PartContext, PartFactory, PartSpec
from gossamer.errors import LocalError
from gossamer.failure import swim
from gossamer.failure.names import JoinRefused, NameClash, NameRefused
from gossamer.membership import hyparview, plumtree
from gossamer.membership.hyparview import NeighborDown, NeighborUp, PortClosed
from gossamer.membership.members import MemberEvent
from gossamer.membership.plumtree import Delivered, Publish
from gossamer.registry import part as registry
from gossamer.registry.part import RegistryChanged
from gossamer.ring import part as ring
from gossamer.ring.tracker import RingChanged

CATALOGUE: tuple[PartSpec[Any], ...] = (
    swim.SPEC,
    ring.SPEC,
    keys.SPEC,
    hyparview.SPEC,
    plumtree.SPEC,
    registry.SPEC,
)
"""Every part of a node, in part order.  SWIM comes first: it is the membership.
Everything that lists the parts reads this name when it runs, never a copy."""

NodeEvent: TypeAlias = MemberEvent | RingChanged | NameClash | JoinRefused | NameRefused | NameLost
"""What ``Node.events()`` yields: the news of the cluster.  The parts also
emit traffic (:data:`PartEvent`), which stays inside the node: links come and
go (``NeighborUp``, ``NeighborDown``), a broken link's port refuses
(``PortClosed``), parts broadcast (``Publish``), broadcasts reach
subscriptions (``Delivered``, ``Node.subscribe``) and the registry's tables
change (``RegistryChanged``, which ``node.groups`` and ``node.names`` follow)."""

TRAFFIC: tuple[type, ...] = (
    NeighborUp,
    NeighborDown,
    PortClosed,
    Publish,
    Delivered,
    RegistryChanged,
)
PartEvent: TypeAlias = (
    NodeEvent | NeighborUp | NeighborDown | PortClosed | Publish | Delivered | RegistryChanged
)
"""Everything the catalogue's parts emit."""


def build_parts(sections: Mapping[str, object], context: PartContext) -> list[PartFactory]:
    """The factories of the parts whose section is in ``sections`` (and turns them on).

    SWIM is always built, with its default section when none is given.
    """
    unknown = sorted(set(sections) - {entry.name for entry in CATALOGUE})
    if unknown:
        raise LocalError(f"no part is named {unknown}; parts: {[e.name for e in CATALOGUE]}")
    factories: list[PartFactory] = []
    for entry in CATALOGUE:
        if entry.name in sections:
            section = entry.of(sections)
        elif entry is swim.SPEC:
            section = swim.SwimConfig()
        else:
            continue
        factory = entry.build(section, context)
        if factory is not None:
            factories.append(factory)
    return factories


def node_parts(
    *, seeds: Iterable[str] = (), metadata: bytes = b"", **sections: object
) -> list[PartFactory]:
    """The parts for ``NodeCore(me, rng, node_parts(...))``: SWIM, and each part
    whose section is given by its name (``ring=RingConfig(vnodes=64)``).

    The simulator's way to build a node: a part is on only when asked for, so
    large simulations do not pay for the ring.
    """
    return build_parts(sections, PartContext(tuple(seeds), metadata))


def overlay_parts(
    *,
    seeds: Iterable[str] = (),
    overlay: hyparview.HyParViewConfig | None = None,
    broadcast: plumtree.PlumtreeConfig | None = None,
) -> list[PartFactory]:
    """The overlay alone, for ``PartsCore(me, rng, overlay_parts(...))``: HyParView
    and Plumtree with no SWIM, as the 10,000-node experiments run them."""
    context = PartContext(tuple(seeds))
    factories = (
        hyparview.SPEC.build(overlay or hyparview.HyParViewConfig(), context),
        plumtree.SPEC.build(broadcast or plumtree.PlumtreeConfig(), context),
    )
    return [factory for factory in factories if factory is not None]
