"""Soft state: delta-state CRDTs, the registries built on them (process groups
and global names), replicated documents, and the replicator that ships deltas
and runs anti-entropy.  Sans-IO like every core: see ``docs/architecture.md``.
"""

from gossamer.crdt.dots import Fold
from gossamer.crdt.replicate import Ack, DeltaGroup, Replicator, ReplicatorConfig
from gossamer.crdt.types import (
    AWSet,
    Causal,
    GCounter,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    RWSet,
    replica_id,
)

__all__ = [
    "AWSet",
    "Ack",
    "Causal",
    "DeltaGroup",
    "Fold",
    "GCounter",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "PNCounter",
    "RWSet",
    "Replicator",
    "ReplicatorConfig",
    "replica_id",
]
