"""What the registry part shows: ``/api/groups``, ``/api/names`` and its gauges.

:class:`RegistryView` is frozen: per-owner versions and entry counts, the
numbers of entries and names, the names claimed by more than one node, and
the confirmations under way.  Its routes copy the tables when the endpoint
asks for them: ``routes()`` is called on the engine's loop, between two
inputs, and the copy is what the worker thread then reads.
"""

from __future__ import annotations

__all__ = ["REGISTRY_ENTRIES", "Confirmation", "RegistryView"]

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from gossamer.crdt.names import Claim
from gossamer.observe import ApiError, ApiRequest, Family, Route, Sample

if TYPE_CHECKING:
    from gossamer.registry.part import RegistryPart

MAX_LISTED: Final = 10_000
"""The most groups or names one response lists (``?group=`` or ``?name=`` picks one)."""

REGISTRY_ENTRIES: Final = Family(
    "gossamer_registry_entries", "Group entries and name claims held, by owner.", "gauge", "owner"
)
REGISTRY_GROUPS: Final = Family(
    "gossamer_registry_group_entries", "Group entries held, all owners.", "gauge"
)
REGISTRY_NAMES: Final = Family("gossamer_registry_names", "Names with a claim.", "gauge")
REGISTRY_CONFLICTS: Final = Family(
    "gossamer_registry_conflicts", "Names claimed by more than one node right now.", "gauge"
)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """How confirming this node's claim on ``name`` at ``lamport`` stands."""

    name: str
    lamport: int
    asked: tuple[str, ...]
    held: tuple[str, ...]
    """Members that hold the claim as the winner."""
    lost_to: Claim | None
    """A competing claim some member holds as the winner, if one answered so."""
    done: bool


def _claim(claim: Claim) -> dict[str, Any]:
    return {
        "node": claim.node,
        "epoch": claim.epoch,
        "member": claim.member,
        "lamport": claim.lamport,
    }


@dataclass(frozen=True, slots=True)
class RegistryView:
    """The registry as of an input (see the module docstring)."""

    part: RegistryPart = field(compare=False, repr=False)
    owners: tuple[tuple[str, int, int, int], ...]
    """(owner, epoch, version, entries) per owner held."""
    groups: int
    names: int
    conflicts: tuple[str, ...]
    confirms: tuple[Confirmation, ...] = ()
    lost: tuple[tuple[str, Claim, Claim], ...] = ()
    """This node's claims that lost, newest last: (name, lost, winner)."""

    def confirmation(self, name: str, lamport: int) -> Confirmation | None:
        return next((c for c in self.confirms if c.name == name and c.lamport == lamport), None)

    def routes(self) -> Mapping[str, Route]:
        part = self.part
        query_groups = _GroupsCopy(part)
        query_names = _NamesCopy(part, self)
        return {"groups": query_groups.route, "names": query_names.route}

    def samples(self) -> list[Sample]:
        out = [Sample(REGISTRY_ENTRIES, float(n), owner) for owner, _, _, n in self.owners]
        out.append(Sample(REGISTRY_GROUPS, float(self.groups)))
        out.append(Sample(REGISTRY_NAMES, float(self.names)))
        out.append(Sample(REGISTRY_CONFLICTS, float(len(self.conflicts))))
        return out


def _limit(request: ApiRequest) -> int:
    raw = _one(request, "limit")
    if raw is None:
        return MAX_LISTED
    n = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
    if not 1 <= n <= MAX_LISTED:
        raise ApiError(400, f"limit must be an integer in [1, {MAX_LISTED}], got {raw!r}")
    return n


def _one(request: ApiRequest, key: str) -> str | None:
    values = request.query.get(key, ())
    if len(values) > 1:
        raise ApiError(400, f"give at most one {key}, got {len(values)}")
    return values[0] if values else None


class _GroupsCopy:
    """The groups as they were when the endpoint asked."""

    def __init__(self, part: RegistryPart) -> None:
        # Shallow copies only, on the engine's loop; sorting waits for the worker thread.
        table = part.table
        self.held = {
            owner: {at: list(members) for at, members in table.groups_of(owner).items()}
            for owner in table.owners()
        }
        self.owners = [(o, *(table.version(o) or (0, 0)), table.entries(o)) for o in table.owners()]

    def route(self, request: ApiRequest) -> dict[str, Any]:
        scope = _one(request, "scope")
        group = _one(request, "group")
        by_group: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for owner, groups in self.held.items():
            for at, members in groups.items():
                by_group.setdefault(at, []).extend((owner, m) for m in members)
        listed = [
            {
                "scope": s,
                "group": g,
                "members": [{"node": n, "member": m} for n, m in sorted(members)],
            }
            for (s, g), members in sorted(by_group.items())
            if (scope is None or s == scope) and (group is None or g == group)
        ]
        stats = request.stats.get("registry")
        limit = _limit(request)
        return {
            "groups": listed[:limit],
            "truncated": len(listed) > limit,
            "owners": [
                {"owner": o, "epoch": e, "version": v, "entries": n} for o, e, v, n in self.owners
            ],
            "counters": _counters(stats),
        }


class _NamesCopy:
    """The names as they were when the endpoint asked."""

    def __init__(self, part: RegistryPart, view: RegistryView) -> None:
        self.claims = part.names.copy()  # shallow, on the engine's loop
        self.conflicts = list(view.conflicts)
        self.lost = list(view.lost)

    def route(self, request: ApiRequest) -> dict[str, Any]:
        name = _one(request, "name")
        listed = [
            {
                "name": n,
                "winner": _claim(claims[0]),
                "claims": [_claim(c) for c in claims],
            }
            for n, claims in ((n, self.claims.claims(n)) for n in self.claims.names())
            if name is None or n == name
        ]
        stats = request.stats.get("registry")
        limit = _limit(request)
        return {
            "names": listed[:limit],
            "truncated": len(listed) > limit,
            "conflicts": self.conflicts,
            "lost": [
                {"name": n, "lost": _claim(lost), "winner": _claim(winner)}
                for n, lost, winner in self.lost
            ],
            "counters": _counters(stats),
        }


def _counters(stats: object) -> dict[str, Any]:
    """The part's counters, as ``/api/counters`` shows them."""
    if stats is None or not dataclasses.is_dataclass(stats) or isinstance(stats, type):
        return {}
    return dataclasses.asdict(stats)
