"""What the SWIM part publishes: the member table as a frozen view, its route and gauges.

:class:`SwimView` is the snapshot ``SwimCore.view()`` returns after a change:
the members, the local entry, whether the node has joined and whether its
leave has spread, and Lifeguard's health score.  The runtime serves it at
``/api/members`` and renders its gauges (members by status, health score,
incarnation) in ``/metrics``; the application reads ``node.members()`` from it.
"""

from __future__ import annotations

__all__ = ["HEALTH_SCORE", "INCARNATION", "MEMBERS", "SwimView", "member_json"]

import base64
from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gossamer.failure.names import JoinRefused
from gossamer.ids import Address, NodeId
from gossamer.membership.members import Member, Status
from gossamer.observe import ApiRequest, Family, Route, Sample

MEMBERS: Final = Family(
    "gossamer_members",
    "Members in the local table by status, the local node included.",
    "gauge",
    "status",
)
HEALTH_SCORE: Final = Family(
    "gossamer_health_score",
    "Lifeguard local health score: 0 is healthy; higher stretches probe timeouts.",
    "gauge",
)
INCARNATION: Final = Family(
    "gossamer_incarnation", "The local node's current incarnation.", "gauge"
)

_STATUS_NAMES: Final = tuple(sorted(s.name.lower() for s in Status))


@dataclass(frozen=True, slots=True)
class SwimView:
    """The member table and the node's own standing, as one input left them."""

    members: tuple[Member, ...]
    """Every member in the table, dead and left included, sorted by name."""
    local: Member
    joined: bool
    """True once a seed answered (or at once, for a node with no seeds)."""
    leaving: bool
    leave_spread: bool
    """The node left and the news has been sent as often as any news is (or
    nobody is left to tell): the driver may stop it."""
    health_score: int
    """Lifeguard's local health score (0 is healthy)."""
    join_refused: JoinRefused | None = None
    """While not joined: the latest seed's refusal (another live node has the name)."""
    yielded_to: NodeId | None = None
    """The life this node gave its name up to; it takes no further part."""
    answered: frozenset[Address] = frozenset()
    """Of the addresses of the last ``join()``, those that replied."""

    def routes(self) -> Mapping[str, Route]:
        return {"members": self._members_route}

    def _members_route(self, request: ApiRequest) -> dict[str, Any]:
        tally = Tally(m.status.name.lower() for m in self.members)
        return {
            "members": [member_json(m, request.now) for m in self.members],
            "counts": {status: tally[status] for status in _STATUS_NAMES},
        }

    def samples(self) -> list[Sample]:
        # Every status, 0 when none, so a query for dead members never sees
        # a missing series.
        tally = Tally(m.status.name.lower() for m in self.members)
        out = [Sample(MEMBERS, tally[status], status) for status in _STATUS_NAMES]
        out.append(Sample(HEALTH_SCORE, self.health_score))
        out.append(Sample(INCARNATION, self.local.incarnation))
        return out


def member_json(member: Member, now: float) -> dict[str, Any]:
    """One member as ``/api/members`` shows it (``for_s``: time in its status, on ``now``)."""
    try:
        text: str | None = member.metadata.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "name": member.name,
        "address": str(member.address),
        "epoch": member.epoch,
        "incarnation": member.incarnation,
        "status": member.status.name.lower(),
        "draining": member.draining,
        "metadata": base64.b64encode(member.metadata).decode("ascii"),
        "metadata_text": text,
        "tags": member.tags,
        "for_s": round(now - member.since, 3),
    }
