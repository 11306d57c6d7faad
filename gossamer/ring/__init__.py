"""Placement: a consistent-hashing ring over the live members.

Karger et al. (1997), with virtual nodes and weights, preference lists for
replicas, hand-off ranges between two rings (:func:`diff`), and bounded-load
placement for a known set of items (Mirrokni, Thorup, Zadimoghaddam 2018).

Sans-IO and pure: a :class:`Ring` is a function of its nodes, weights and
``vnodes``, computed the same in every process, so every node with the same
member view places every key on the same node.  A running node keeps one in
``node.ring`` that follows the live members.

>>> ring = Ring(["a", "b", "c"])
>>> ring.owner("user:42") in ring
True
>>> len(ring.owners("user:42", 2))
2
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_EPSILON",
    "DEFAULT_VNODES",
    "KEY_SPACE",
    "MAX_POINTS_PER_NODE",
    "MAX_VNODES",
    "BoundedPlacement",
    "EmptyRing",
    "InvalidKey",
    "Move",
    "Ring",
    "RingChanged",
    "RingConfig",
    "diff",
    "key_hash",
    "place_bounded",
]

from gossamer.ring.bounded import DEFAULT_EPSILON, BoundedPlacement, place_bounded
from gossamer.ring.hashing import KEY_SPACE, InvalidKey, key_hash
from gossamer.ring.ring import (
    DEFAULT_VNODES,
    MAX_POINTS_PER_NODE,
    MAX_VNODES,
    EmptyRing,
    Move,
    Ring,
    diff,
)
from gossamer.ring.tracker import RingChanged, RingConfig
