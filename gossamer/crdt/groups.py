"""Process groups, as Erlang's ``pg``: the index every node keeps of who is in which group.

A member is an application's id (a ``str``) on one node; ``(node, member)``
is in a group while its node holds a positive count for it.  Each node is
the only writer of its own entries (``owners.py`` versions them per owner
life and replicates them), so there is nothing to lock and nothing that can
conflict: this module only indexes what the owners say.

Semantics kept from ``pg``: joining twice needs leaving twice (a count per
entry); a group exists while it has members (no create, no delete, which
could not survive a heal); scopes are independent namespaces.  A member is
listed once however many times it joined.

Invariant: after any sequence of :class:`GroupChange` s, the index holds
exactly the entries whose last change had a positive count, and it emitted
one :class:`GroupJoined` when an entry appeared and one :class:`GroupLeft`
when it went.
"""

from __future__ import annotations

__all__ = [
    "MAX_TEXT_BYTES",
    "GroupChange",
    "GroupIndex",
    "GroupJoined",
    "GroupLeft",
    "check_text",
]

from dataclasses import dataclass
from typing import Final

from gossamer.errors import LocalError

MAX_TEXT_BYTES: Final = 255
"""The longest scope, group, member or name, in UTF-8 bytes."""


def check_text(method: str, what: str, value: object) -> str:
    """``value`` if it is a non-empty ``str`` of at most MAX_TEXT_BYTES; LocalError otherwise."""
    if not isinstance(value, str) or not value or len(value.encode()) > MAX_TEXT_BYTES:
        raise LocalError(
            f"{method}: {what} must be a non-empty str of at most {MAX_TEXT_BYTES} "
            f"UTF-8 bytes, got {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class GroupChange:
    """Owner ``node`` now holds ``member`` in ``group`` of ``scope`` ``count`` times (0: gone)."""

    scope: str
    group: str
    node: str
    member: str
    count: int


@dataclass(frozen=True, slots=True)
class GroupJoined:
    """``member`` of ``node`` is now in ``group`` (of ``scope``)."""

    scope: str
    group: str
    node: str
    member: str


@dataclass(frozen=True, slots=True)
class GroupLeft:
    """``member`` of ``node`` is no longer in ``group`` (it left, or its node died)."""

    scope: str
    group: str
    node: str
    member: str


class GroupIndex:
    """Who is in which group, from the owners' changes (see the module docstring)."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        # (scope, group) -> (node, member) -> count
        self._groups: dict[tuple[str, str], dict[tuple[str, str], int]] = {}

    def apply(self, change: GroupChange) -> GroupJoined | GroupLeft | None:
        """Take one change; the event it means, if membership changed."""
        key = (change.scope, change.group)
        entry = (change.node, change.member)
        held = self._groups.get(key)
        if change.count > 0:
            if held is None:
                held = self._groups[key] = {}
            was = held.get(entry, 0)
            held[entry] = change.count
            if was == 0:
                return GroupJoined(change.scope, change.group, change.node, change.member)
            return None
        if held is None or held.pop(entry, 0) == 0:
            return None
        if not held:
            del self._groups[key]  # a group exists while it has members
        return GroupLeft(change.scope, change.group, change.node, change.member)

    def members(self, scope: str, group: str) -> list[tuple[str, str]]:
        """Every ``(node, member)`` in the group, sorted."""
        return sorted(self._groups.get((scope, group), ()))

    def count(self, scope: str, group: str, node: str, member: str) -> int:
        """How many times ``member`` of ``node`` joined the group (0: not in it)."""
        return self._groups.get((scope, group), {}).get((node, member), 0)

    def which_groups(self, scope: str) -> list[str]:
        """The groups of ``scope`` that have members, sorted."""
        return sorted(group for s, group in self._groups if s == scope)

    def scopes(self) -> list[str]:
        """Every scope that has a group, sorted."""
        return sorted({scope for scope, _ in self._groups})

    def entries(self) -> int:
        """How many (group, node, member) entries are held."""
        return sum(len(held) for held in self._groups.values())

    def groups(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """Every group as ``(scope, group, members)``, sorted (for the endpoint)."""
        return [(s, g, sorted(self._groups[(s, g)])) for s, g in sorted(self._groups)]
