"""One name, one live node: how SWIM settles two processes started under one name.

A name is held by one life (name, address, epoch) at a time, and a live
holder keeps it.  The member table orders lives by epoch, so a second
process started as ``a`` elsewhere would otherwise pass for a restart of the
real ``a`` and push it out.  Three rules keep the name with its holder
(``failure/swim.py`` applies them):

1. **The join gate.**  A seed answering a join checks the joiner's own claim
   against its table: if the name is held by a member it believes *alive* at
   another address, it answers :class:`JoinRefused` naming the holder and
   merges nothing.  A suspect, dead or departed holder, or one at the
   joiner's own address, does not block: that is a restart.  The refused
   node keeps retrying (the holder may be dead and not yet suspected) and
   says why each time.
2. **Refutation.**  A node that hears a claim for its name from a life that
   is not its own and ranks above its own (a newer epoch elsewhere: an
   intruder let in, or the tombstone it left) takes the epoch right above
   it, announces itself alive under it, and tells the other life directly.
3. **Yielding.**  A node that hears a life of its name at another address
   under exactly the epoch after its own has been refuted by the holder: it
   stops taking part (no probes, gossip or syncs; inputs ignored) and says
   so.  It never announces anything under the name again.

So the name settles on one life in two steps at most, every table ends up
with the winner's claim (the greatest), and rings follow.  The one
ambiguity: an intruder whose own epoch is exactly the holder's plus one
makes the holder yield instead.  Between two running processes, whichever
held the name in the cluster first keeps it, even one that was thought dead
for a while and comes back.
"""

from __future__ import annotations

__all__ = [
    "JoinRefused",
    "NameClash",
    "NameRefused",
    "RefusedJoin",
    "blocking_holder",
    "joiner_claim",
    "name_note",
]

from collections.abc import Sequence
from dataclasses import dataclass

from gossamer.effects import EventNote
from gossamer.ids import Address, NodeId
from gossamer.membership.members import Claim, Status, claim_order
from gossamer.wire import Message, registry


@registry.message(8)
@dataclass(frozen=True, slots=True)
class RefusedJoin(Message):
    """A seed's answer to a join under a name a live member holds (SWIM's block)."""

    holder: Claim
    """The holder as the seed's table has it."""


@dataclass(frozen=True, slots=True)
class NameRefused:
    """This node, as a seed, refused ``joiner``: its name is held by ``holder``."""

    joiner: NodeId
    holder: NodeId


@dataclass(frozen=True, slots=True)
class JoinRefused:
    """The seed at ``seed`` refused this node's join: ``holder`` has the name.

    The node keeps retrying; it joins once the holder is suspect, dead or gone.
    """

    seed: Address
    holder: NodeId


@dataclass(frozen=True, slots=True)
class NameClash:
    """Another life, ``other``, claimed this node's name.

    ``kept``: this node refuted it and keeps the name under ``epoch``.
    Otherwise the other life refuted this one, and this node has yielded:
    it takes no further part in the cluster.
    """

    other: NodeId
    kept: bool
    epoch: int


def joiner_claim(members: Sequence[Claim], sender: Address) -> Claim | None:
    """The joiner's own claim in its full state: alive, at the sender's address, by itself."""
    own = [c for c in members if c.address == sender and c.source == c.name and c.status.live]
    return max(own, key=claim_order) if own else None


def blocking_holder(held: Claim | None, joiner: Claim) -> bool:
    """True if ``held``, the table's claim for the joiner's name, keeps the joiner out."""
    return held is not None and held.status is Status.ALIVE and held.address != joiner.address


def name_note(event: object) -> EventNote | None:
    """How this module's events read in a log (``SwimCore.describe`` defers here)."""
    match event:
        case NameRefused(joiner=joiner, holder=holder):
            return EventNote(
                "name-refused",
                joiner,
                detail=f"refused its join: the name is held by a live member at "
                f"{holder.address} (epoch {holder.epoch})",
                severity="warning",
            )
        case JoinRefused(seed=seed, holder=holder):
            return EventNote(
                "join-refused",
                holder,
                detail=f"the seed at {seed} refused this node's join: a live member at "
                f"{holder.address} already has the name {holder.name!r}; retrying. "
                "Give this node another name, or stop the other one",
                severity="error",
            )
        case NameClash(other=other, kept=True, epoch=epoch):
            return EventNote(
                "name-clash",
                other,
                detail=f"another node at {other.address} claims this node's name "
                f"{other.name!r}; refuted it (this node keeps the name under epoch "
                f"{epoch}). Stop the other process or give it another name",
                severity="error",
            )
        case NameClash(other=other, kept=False):
            return EventNote(
                "name-clash",
                other,
                detail=f"the node at {other.address} holds the name {other.name!r} "
                "and refuted this node, which takes no further part in the cluster. "
                "Give it another name",
                severity="error",
            )
    return None
