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
exactly the entries whose last change had a positive count, and it reported
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
    """Owner ``node`` now holds each ``(member, count)`` of ``entries`` in ``group`` of
    ``scope`` that many times (0: gone): one group's changes in one delta."""

    scope: str
    group: str
    node: str
    entries: tuple[tuple[str, int], ...]


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

    __slots__ = ("_entries", "_groups", "_sizes")

    def __init__(self) -> None:
        # (scope, group) -> node -> member -> count
        self._groups: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
        self._sizes: dict[tuple[str, str] | str, int] = {}  # entries per group, per scope
        self._entries = 0

    def apply(self, change: GroupChange, events: list[GroupJoined | GroupLeft] | None) -> None:
        """Take one group's changes; the joins and leaves they mean go to ``events``
        (None: not wanted, which costs nothing)."""
        scope, group, node = change.scope, change.group, change.node
        at = (scope, group)
        by_node = self._groups.get(at)
        if by_node is None:
            by_node = self._groups[at] = {}
        held = by_node.get(node)
        if held is None:
            held = by_node[node] = {}
        added = 0
        for member, count in change.entries:
            if count:
                if member not in held:
                    added += 1
                    if events is not None:
                        events.append(GroupJoined(scope, group, node, member))
                held[member] = count
            elif held.pop(member, 0):
                added -= 1
                if events is not None:
                    events.append(GroupLeft(scope, group, node, member))
        if added:
            self._entries += added
            sizes = self._sizes
            sizes[at] = sizes.get(at, 0) + added
            sizes[scope] = sizes.get(scope, 0) + added
            if not sizes[at]:
                del sizes[at]
            if not sizes[scope]:
                del sizes[scope]
        if not held:
            del by_node[node]
            if not by_node:
                del self._groups[at]  # a group exists while it has members

    def members(self, scope: str, group: str) -> list[tuple[str, str]]:
        """Every ``(node, member)`` in the group, sorted."""
        by_node = self._groups.get((scope, group), {})
        return sorted((node, m) for node, held in by_node.items() for m in held)

    def count(self, scope: str, group: str, node: str, member: str) -> int:
        """How many times ``member`` of ``node`` joined the group (0: not in it)."""
        return self._groups.get((scope, group), {}).get(node, {}).get(member, 0)

    def size(self, scope: str, group: str | None = None) -> int:
        """How many ``(node, member)`` entries ``group`` (or the whole scope) holds."""
        return self._sizes.get(scope if group is None else (scope, group), 0)

    def which_groups(self, scope: str) -> list[str]:
        """The groups of ``scope`` that have members, sorted."""
        return sorted(group for s, group in self._groups if s == scope)

    def scopes(self) -> list[str]:
        """Every scope that has a group, sorted."""
        return sorted({scope for scope, _ in self._groups})

    def entries(self) -> int:
        """How many (group, node, member) entries are held."""
        return self._entries

    def groups(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """Every group as ``(scope, group, members)``, sorted (for the endpoint)."""
        return [(s, g, self.members(s, g)) for s, g in sorted(self._groups)]
