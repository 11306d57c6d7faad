"""The fast path to a crashed process's death: refused connections, witnessed.

When a process dies its kernel closes its connections and refuses new ones
at its port.  A hung or stopped process gives neither: its kernel keeps the
connections and still accepts.  So a link that breaks, followed by a
refused connection to the same address (HyParView's ``knock``), is strong
evidence that this life of the member is gone.  SWIM weighs it:

* the node whose knock was refused is a **witness**: it suspects the member
  (a suspicion of its own, so the member can still refute) and reports the
  refusal, :class:`Closed`, down the broadcast tree;
* every node counts the distinct witnesses of one life (the report's origin
  is the witness: Plumtree names it, under the cluster's key), and declares
  the member dead once ``refusal_witnesses`` of them agree, or as many as
  the cluster has others when it is smaller;
* a node that hears a report while the count is short knocks on the member
  itself (once a life, 50-100 ms later, when the reports of the member's
  other neighbours have most often arrived and made it unnecessary): a
  refusal makes it a witness too, so a member that held fewer links than
  the count needs still dies fast.  A witness reports only while its own
  count is short, so a death costs a few broadcasts, not one per node.

It is never the overlay that declares a death: links come and go (φ, a
Disconnect, a break) and each only changes which peers a node holds; SWIM's
table alone says who is dead, and the views drop what it declares.

SWIM's own news travels the same tree (:class:`TreeNews` on
:data:`SWIM_CHANNEL`), so the whole cluster hears a join, a suspicion, a
death or a leave in one traversal instead of rounds of gossip; the
piggybacked gossip goes on beside it.  Only news a node makes itself (its
own entry, a suspicion it raised, a death it declared when a suspicion ran
out) goes down the tree; what it heard is already on its way.  A death from
witnesses is not sent either: every node reaches it from the same reports.
"""

from __future__ import annotations

__all__ = ["MAX_TREE_CLAIMS", "SWIM_CHANNEL", "Closed", "TreeNews", "Witnesses"]

from dataclasses import dataclass
from typing import Final

from gossamer.ids import Address
from gossamer.membership.members import Claim
from gossamer.membership.plumtree import OWN_CHANNELS
from gossamer.wire import Message, Record, registry

SWIM_CHANNEL: Final = OWN_CHANNELS + "swim"
"""The broadcast channel SWIM's news travels on."""
MAX_TREE_CLAIMS: Final = 64
"""Claims in one tree broadcast (a few KB); more go in several."""
MAX_WITNESSED: Final = 1_024
"""Lives with refusal reports counted at once; the oldest goes."""


@dataclass(frozen=True, slots=True)
class Closed(Record):
    """This life of ``name``, reached at ``address``, refused the sender a connection."""

    name: str
    address: Address
    epoch: int


@registry.message(9)
@dataclass(frozen=True, slots=True)
class TreeNews(Message):
    """SWIM's news as one broadcast payload: claims its origin made, and refusals it saw."""

    claims: tuple[Claim, ...] = ()
    closed: tuple[Closed, ...] = ()


class Witnesses:
    """The distinct witnesses of refusals, per member life (bounded)."""

    __slots__ = ("_by_name",)

    def __init__(self) -> None:
        # name -> (epoch, witnesses, whether this node knocked on it)
        self._by_name: dict[str, tuple[int, set[str], list[bool]]] = {}

    def _entry(self, name: str, epoch: int) -> tuple[int, set[str], list[bool]]:
        entry = self._by_name.get(name)
        if entry is None or entry[0] != epoch:
            entry = (epoch, set(), [False])
            self._by_name.pop(name, None)
            self._by_name[name] = entry
            if len(self._by_name) > MAX_WITNESSED:
                del self._by_name[next(iter(self._by_name))]
        return entry

    def add(self, name: str, epoch: int, witness: str) -> int:
        """Count ``witness`` for life ``epoch`` of ``name``; how many there are now."""
        entry = self._entry(name, epoch)
        entry[1].add(witness)
        return len(entry[1])

    def first_knock(self, name: str, epoch: int) -> bool:
        """True once per life: this node may knock on it itself."""
        knocked = self._entry(name, epoch)[2]
        if knocked[0]:
            return False
        knocked[0] = True
        return True

    def count(self, name: str, epoch: int) -> int:
        entry = self._by_name.get(name)
        return 0 if entry is None or entry[0] != epoch else len(entry[1])

    def forget(self, name: str) -> None:
        self._by_name.pop(name, None)

    def __len__(self) -> int:
        return len(self._by_name)
