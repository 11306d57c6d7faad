"""Global names, as Erlang's ``global`` without its lock: every claim kept, one winner everywhere.

A node claims a name for one of its members under a Lamport timestamp; the
claim is one of its own entries (``owners.py``), so registering takes no
lock and answers at once from what the node knows.  Two nodes may claim a
name concurrently (two sides of a partition, or the same millisecond): both
claims are kept and every node picks the same winner, the claim with the
smallest rank.  The default rank is ``(lamport, node, epoch)``: the earlier
claim in Lamport order, then the lower node name and life, never a wall
clock.  An application may pass its own rank (a key function, as global's
``Resolve`` picks a pid); it must be the same on every node.

The loser's owner sees that its claim does not win, withdraws it and emits
:class:`NameLost` once (``registry/part.py``); the application decides what
to do (stop the member, hand its work over).  Since ranks are a total order,
a claim that lost to one claim loses to the final winner too: withdrawing
never changes a winner, so every node that has heard the same claims names
the same winner.
"""

from __future__ import annotations

__all__ = ["Claim", "NameIndex", "NameLost", "Resolver", "default_rank"]

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from gossamer.clocks.lamport import LamportClock
from gossamer.errors import LocalError


@dataclass(frozen=True, slots=True)
class Claim:
    """``node`` (life ``epoch``) claims ``name`` for its ``member`` at Lamport time ``lamport``."""

    name: str
    node: str
    epoch: int
    member: str
    lamport: int


Resolver: TypeAlias = Callable[[Claim], Any]
"""A claim's rank: the claim with the smallest rank wins.  Ties are broken by
:func:`default_rank`, so any rank gives a total order."""


def default_rank(claim: Claim) -> tuple[int, str, int]:
    """The earlier claim in Lamport order wins, then the lower node name and life."""
    return (claim.lamport, claim.node, claim.epoch)


@dataclass(frozen=True, slots=True)
class NameLost:
    """This node's claim on ``name`` (``lost``) lost to ``winner``'s; it was withdrawn."""

    name: str
    lost: Claim
    winner: Claim


class NameIndex:
    """Every claim this node has heard, per name, and each name's winner."""

    __slots__ = ("_claims", "_rank", "_winners", "clock")

    def __init__(self, rank: Resolver | None = None) -> None:
        self._rank: Resolver = rank or default_rank
        self._claims: dict[str, dict[str, Claim]] = {}  # name -> node -> claim
        self._winners: dict[str, Claim] = {}
        self.clock = LamportClock()
        """Past every claim this index has held: a new claim ticks it."""

    def _observe(self, lamport: int) -> None:
        if lamport >= self.clock.value:
            self.clock.observe(lamport)

    def decide(
        self, name: str, node: str, member: str, *, keep_rank: bool
    ) -> tuple[int, Claim | None]:
        """How ``node`` registers ``name`` for ``member``, from what this index holds:
        the Lamport time to claim it at (0: nothing to write) and the winner now.

        Another node's winning claim is left alone; ``node``'s own stands, or with
        ``keep_rank`` names ``member`` at its rank (``re_register``); a free name
        is claimed past every time heard.
        """
        winner = self._winners.get(name)
        if winner is None:
            return self.clock.tick(), None
        if winner.node != node or not keep_rank or winner.member == member:
            return 0, winner
        return winner.lamport, winner

    def releasable(self, name: str, node: str, holds: bool) -> bool:
        """Whether ``node``, holding a claim on ``name`` or not, has one to withdraw;
        LocalError if another node holds it (only an owner withdraws its claim)."""
        if holds:
            return True
        winner = self._winners.get(name)
        if winner is not None:
            raise LocalError(
                f"unregister: {name!r} is held by {winner.node}; only its node can release it"
            )
        return False

    def _key(self, claim: Claim) -> tuple[Any, tuple[int, str, int]]:
        return (self._rank(claim), default_rank(claim))

    def apply(self, name: str, node: str, claim: Claim | None) -> tuple[Claim | None, Claim | None]:
        """``node`` now claims ``name`` with ``claim`` (None: no longer);
        the name's winner before and after."""
        before = self._winners.get(name)
        held = self._claims.get(name)
        if claim is None:
            if held is None or held.pop(node, None) is None:
                return before, before
            if not held:
                del self._claims[name]
                del self._winners[name]
                return before, None
        else:
            self._observe(claim.lamport)
            if held is None:  # the common case: a name nobody else claims
                self._claims[name] = {node: claim}
                self._winners[name] = claim
                return before, claim
            held[node] = claim
        if before is not None and claim is not None and before.node != node:
            # A new or changed claim only needs comparing with the winner.
            after = claim if self._key(claim) < self._key(before) else before
        else:
            after = min(held.values(), key=self._key)
        self._winners[name] = after
        return before, after

    def copy(self) -> NameIndex:
        """An independent index holding the same claims (claims are immutable)."""
        other = NameIndex(self._rank)
        other._claims = {name: dict(held) for name, held in self._claims.items()}
        other._winners = dict(self._winners)
        other.clock = LamportClock(self.clock.value)
        return other

    def apply_all(self, changes: Iterable[tuple[str, str, Claim | None]]) -> list[str]:
        """:meth:`apply` each change; the names more than one node claims after."""
        claims, winners = self._claims, self._winners
        changes = list(changes)
        self._observe(max((c.lamport for _, _, c in changes if c is not None), default=0))
        contested = []
        for name, node, claim in changes:
            if claim is not None and name not in claims:
                claims[name] = {node: claim}  # uncontested: no rank to compare
                winners[name] = claim
                continue
            self.apply(name, node, claim)
            if len(claims.get(name, ())) > 1:
                contested.append(name)
        return contested

    def winner(self, name: str) -> Claim | None:
        """The claim every node that heard the same claims picks for ``name``."""
        return self._winners.get(name)

    def claims(self, name: str) -> list[Claim]:
        """Every claim on ``name``, winner first."""
        return sorted(self._claims.get(name, {}).values(), key=self._key)

    def claimants(self, name: str) -> int:
        """How many nodes claim ``name``."""
        return len(self._claims.get(name, ()))

    def claim_of(self, name: str, node: str) -> Claim | None:
        return self._claims.get(name, {}).get(node)

    def names(self) -> list[str]:
        """Every name with a claim, sorted."""
        return sorted(self._claims)

    def conflicts(self) -> Iterator[str]:
        """The names more than one node claims (until the losers withdraw)."""
        return (name for name, held in self._claims.items() if len(held) > 1)

    def __len__(self) -> int:
        return len(self._claims)
