"""Entries with one writer each, versioned per owner life: what groups and names replicate.

Every group entry and name claim has exactly one writer, the node that made
it (its *owner*).  An owner life ``(name, epoch)`` numbers its changes with a
version, and a replica keeps, per owner, the newest life and version it has
seen with that life's entries.  Per owner this is a single-writer register
ordered by ``(epoch, version)``; the table is a map of them, so joining two
replicas (the greater register per owner) is commutative, associative and
idempotent -- a state-based CRDT whose deltas need no causal context beyond
one version per owner:

* **Delta** (:class:`OwnerDelta`): the keys an owner changed between
  versions ``base`` and ``version``, each with its value at ``version``
  (a count of 0 or a claim's Lamport time of 0 means gone).  A replica at
  version ``v`` with ``base <= v < version`` applies it and is then at
  ``version`` (the values are absolute, so overlap is harmless); one with
  ``v < base`` missed a delta (a *gap*) and needs the owner's entries
  whole.  A whole delta (``whole``) replaces the owner's entries.
* **Batching**: local changes mark their keys; :meth:`OwnerTable.flush`
  turns the marked keys into deltas of at most ``max_bytes`` each, one
  version per delta, so a burst of 10,000 joins is a handful of deltas.
* **Lives**: a newer epoch of an owner replaces the older life's entries;
  an owner life the node was told is dead or left (:meth:`OwnerTable.drop`)
  is refused until told it lives again (:meth:`OwnerTable.revive`), so a
  late delta cannot resurrect what a death removed.

Every change to the entries is reported as a
:class:`~gossamer.crdt.groups.GroupChange` or a ``(name, node, Claim | None)``
triple, which the indexes (``groups.py``, ``names.py``) and the
application's monitors consume.

Bounds: at most ``max_owners`` owners (news of more is refused and
counted), at most ``max_owner_bytes`` of entries per owner (an estimate from
string lengths that bounds the encoded size, so a whole owner always fits a
frame), and remembered deaths at most ``max_owners`` (the oldest go).
"""

from __future__ import annotations

__all__ = [
    "ENTRY_OVERHEAD",
    "Applied",
    "OwnerDelta",
    "OwnerTable",
    "group_bytes",
    "name_bytes",
]

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from gossamer.crdt.groups import GroupChange
from gossamer.crdt.names import Claim
from gossamer.errors import LocalError
from gossamer.wire import Record

GroupKey: TypeAlias = tuple[str, str, str]
"""(scope, group, member)"""
NameChange: TypeAlias = tuple[str, str, Claim | None]
"""(name, owner, its claim now or None)"""
Change: TypeAlias = GroupChange | NameChange

ENTRY_OVERHEAD: Final = 24
"""Bytes an entry costs on the wire beyond its strings, at most (array headers,
string headers, a 64-bit count or Lamport time)."""
DELTA_OVERHEAD: Final = 64 + 255
"""A delta's own fields, the owner's name included, at most."""


def group_bytes(key: GroupKey) -> int:
    """An upper bound of what one group entry adds to an encoded delta."""
    return len(key[0].encode()) + len(key[1].encode()) + len(key[2].encode()) + ENTRY_OVERHEAD


def name_bytes(name: str, member: str) -> int:
    """An upper bound of what one name claim adds to an encoded delta."""
    return len(name.encode()) + len(member.encode()) + ENTRY_OVERHEAD


@dataclass(frozen=True, slots=True)
class OwnerDelta(Record):
    """Owner ``owner`` (life ``epoch``): the keys it changed from ``base`` to ``version``,
    or (``whole``) all its entries at ``version``."""

    owner: str
    epoch: int
    base: int
    version: int
    whole: bool
    groups: tuple[tuple[str, str, str, int], ...] = ()
    """(scope, group, member, count); 0: left."""
    names: tuple[tuple[str, str, int], ...] = ()
    """(name, member, lamport); lamport 0: withdrawn."""


class Applied(enum.Enum):
    """What :meth:`OwnerTable.apply` made of a delta."""

    NEWS = "news"
    OLD = "old"  # this node already holds that version or a later one
    GAP = "gap"  # a delta between was missed: the owner's entries are needed whole
    GONE = "gone"  # that owner life is dead or left here
    REFUSED = "refused"  # malformed, or over a bound


@dataclass(slots=True)
class _Owner:
    epoch: int
    version: int = 0
    groups: dict[GroupKey, int] | None = None
    names: dict[str, tuple[str, int]] | None = None
    size: int = 0

    def __post_init__(self) -> None:
        self.groups = {} if self.groups is None else self.groups
        self.names = {} if self.names is None else self.names


class OwnerTable:
    """Every owner's entries as this node knows them; ``me`` writes its own."""

    __slots__ = (
        "_dirty_groups",
        "_dirty_names",
        "_gone",
        "_owners",
        "max_owner_bytes",
        "max_owners",
        "me",
        "refused",
    )

    def __init__(
        self, me: str, epoch: int, *, max_owners: int = 10_000, max_owner_bytes: int = 4 << 20
    ) -> None:
        self.me = me
        self.max_owners = max_owners
        self.max_owner_bytes = max_owner_bytes
        self._owners: dict[str, _Owner] = {me: _Owner(epoch)}
        self._gone: dict[str, int] = {}  # owner -> the newest life known dead or left
        self._dirty_groups: dict[GroupKey, None] = {}
        self._dirty_names: dict[str, None] = {}
        self.refused = 0
        """Deltas refused: malformed, or an owner or entries over a bound."""

    # ---------------------------------------------------------------- reads

    def version(self, owner: str) -> tuple[int, int] | None:
        """``(epoch, version)`` held for ``owner``, or None."""
        held = self._owners.get(owner)
        return None if held is None else (held.epoch, held.version)

    def owners(self) -> list[str]:
        return list(self._owners)

    def entries(self, owner: str) -> int:
        held = self._owners.get(owner)
        return 0 if held is None else len(held.groups or ()) + len(held.names or ())

    def size(self, owner: str) -> int:
        held = self._owners.get(owner)
        return 0 if held is None else held.size

    def own_count(self, key: GroupKey) -> int:
        groups = self._owners[self.me].groups
        assert groups is not None
        return groups.get(key, 0)

    def own_claim(self, name: str) -> tuple[str, int] | None:
        names = self._owners[self.me].names
        assert names is not None
        return names.get(name)

    def pending(self) -> int:
        """Local changes not yet flushed into deltas."""
        return len(self._dirty_groups) + len(self._dirty_names)

    # ---------------------------------------------------------------- local writes

    def join(self, key: GroupKey, out: list[Change], times: int = 1) -> int:
        """This node's ``member`` joins ``(scope, group)`` ``times`` more; its count now."""
        own = self._owners[self.me]
        assert own.groups is not None
        count = own.groups.get(key, 0)
        if count == 0:
            added = group_bytes(key)
            if own.size + added > self.max_owner_bytes:
                raise LocalError(
                    f"this node's groups and names would take over "
                    f"registry.max_owner_bytes = {self.max_owner_bytes} bytes"
                )
            own.size += added
        count += times
        own.groups[key] = count
        self._dirty_groups[key] = None
        out.append(GroupChange(key[0], key[1], self.me, key[2], count))
        return count

    def leave(self, key: GroupKey, out: list[Change], times: int = 1) -> int:
        """``times`` joins of this node's member undone; its count now.  LocalError
        if it joined fewer times."""
        own = self._owners[self.me]
        assert own.groups is not None
        count = own.groups.get(key, 0)
        if count < times:
            raise LocalError(
                f"leave: {key[2]!r} is in group {key[1]!r} of scope {key[0]!r} "
                f"{count} time(s) here, cannot leave {times}"
            )
        count -= times
        if count:
            own.groups[key] = count
        else:
            del own.groups[key]
            own.size -= group_bytes(key)
        self._dirty_groups[key] = None
        out.append(GroupChange(key[0], key[1], self.me, key[2], count))
        return count

    def set_count(self, key: GroupKey, count: int, out: list[Change]) -> None:
        """This node's ``member`` is in ``(scope, group)`` ``count`` times (0: not)."""
        have = self.own_count(key)
        if count > have:
            self.join(key, out, count - have)
        elif count < have:
            self.leave(key, out, have - count)

    def claim(self, name: str, member: str, lamport: int, out: list[Change]) -> None:
        """This node claims ``name`` for ``member`` at ``lamport`` (replacing its own claim)."""
        own = self._owners[self.me]
        assert own.names is not None
        held = own.names.get(name)
        added = name_bytes(name, member) - (0 if held is None else name_bytes(name, held[0]))
        if own.size + added > self.max_owner_bytes:
            raise LocalError(
                f"this node's groups and names would take over "
                f"registry.max_owner_bytes = {self.max_owner_bytes} bytes"
            )
        own.size += added
        own.names[name] = (member, lamport)
        self._dirty_names[name] = None
        out.append((name, self.me, Claim(name, self.me, own.epoch, member, lamport)))

    def withdraw(self, name: str, out: list[Change]) -> bool:
        """This node no longer claims ``name``; False if it did not."""
        own = self._owners[self.me]
        assert own.names is not None
        held = own.names.pop(name, None)
        if held is None:
            return False
        own.size -= name_bytes(name, held[0])
        self._dirty_names[name] = None
        out.append((name, self.me, None))
        return True

    def flush(self, max_bytes: int) -> list[OwnerDelta]:
        """The local changes since the last flush as deltas of at most ``max_bytes``
        (estimated) each, one version per delta."""
        if not self._dirty_groups and not self._dirty_names:
            return []
        own = self._owners[self.me]
        assert own.groups is not None and own.names is not None
        room = max(1, max_bytes - DELTA_OVERHEAD)
        deltas: list[OwnerDelta] = []
        groups: list[tuple[str, str, str, int]] = []
        names: list[tuple[str, str, int]] = []
        used = 0

        def cut() -> None:
            nonlocal groups, names, used
            own.version += 1
            deltas.append(
                OwnerDelta(
                    self.me, own.epoch, own.version - 1, own.version, False,
                    tuple(groups), tuple(names),
                )
            )  # fmt: skip
            groups, names, used = [], [], 0

        for key in self._dirty_groups:
            size = group_bytes(key)
            if used and used + size > room:
                cut()
            groups.append((*key, own.groups.get(key, 0)))
            used += size
        for name in self._dirty_names:
            member, lamport = own.names.get(name, ("", 0))
            size = name_bytes(name, member)
            if used and used + size > room:
                cut()
            names.append((name, member, lamport))
            used += size
        cut()
        self._dirty_groups.clear()
        self._dirty_names.clear()
        return deltas

    def whole(self, owner: str) -> OwnerDelta | None:
        """``owner``'s entries, all of them (None if unknown).  At most
        ``max_owner_bytes`` by construction, which the section fits in a frame."""
        held = self._owners.get(owner)
        if held is None:
            return None
        assert held.groups is not None and held.names is not None
        return OwnerDelta(
            owner,
            held.epoch,
            0,
            held.version,
            True,
            tuple((*key, count) for key, count in held.groups.items()),
            tuple((name, member, lamport) for name, (member, lamport) in held.names.items()),
        )

    # ---------------------------------------------------------------- replication

    def apply(self, delta: OwnerDelta, out: list[Change]) -> Applied:
        """Take a delta from another node; the changes it made go to ``out``."""
        owner = delta.owner
        if owner == self.me:
            return Applied.OLD  # this node writes its own entries
        if not _well_formed(delta):
            self.refused += 1
            return Applied.REFUSED
        gone = self._gone.get(owner)
        if gone is not None and delta.epoch <= gone:
            return Applied.GONE
        held = self._owners.get(owner)
        if held is not None and delta.epoch < held.epoch:
            return Applied.OLD
        if held is not None and delta.epoch > held.epoch:
            self._clear(owner, out)
            held = None
        if held is None:
            if len(self._owners) >= self.max_owners:
                self.refused += 1
                return Applied.REFUSED
            held = _Owner(delta.epoch)
        if delta.version < held.version or (delta.version == held.version and not delta.whole):
            return Applied.OLD
        if not delta.whole and delta.base > held.version:
            return Applied.GAP
        size = held.size + _delta_growth(held, delta)
        if size > self.max_owner_bytes:
            self.refused += 1
            return Applied.REFUSED
        self._owners[owner] = held
        if delta.whole:
            self._replace(owner, held, delta, out)
        else:
            self._set(owner, held, delta, out)
        held.version = delta.version
        return Applied.NEWS

    def drop(self, owner: str, epoch: int, out: list[Change]) -> bool:
        """Owner life ``(owner, epoch)`` is dead or left: forget its entries (and any
        older life's) and refuse them until :meth:`revive`.  False if nothing was held."""
        if owner == self.me:
            return False
        # Reinserted, so the oldest death is the first to go past the bound.
        self._gone[owner] = max(epoch, self._gone.pop(owner, 0))
        while len(self._gone) > self.max_owners:
            del self._gone[next(iter(self._gone))]
        held = self._owners.get(owner)
        if held is None or held.epoch > epoch:
            return False
        self._clear(owner, out)
        return True

    def refuses(self, owner: str, epoch: int) -> bool:
        """Whether news of owner life ``(owner, epoch)`` is refused here (dead, left
        or older than the life held, or this node's own)."""
        gone = self._gone.get(owner)
        held = self._owners.get(owner)
        return (
            owner == self.me
            or (gone is not None and epoch <= gone)
            or (held is not None and epoch < held.epoch)
        )

    def revive(self, owner: str, epoch: int) -> None:
        """Owner life ``(owner, epoch)`` lives: its entries are taken again."""
        gone = self._gone.get(owner)
        if gone is not None and gone <= epoch:
            del self._gone[owner]

    def digest(self, owners: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
        """``(owner, epoch, version)`` for each of ``owners`` held here."""
        out = []
        for owner in owners:
            held = self._owners.get(owner)
            if held is not None:
                out.append((owner, held.epoch, held.version))
        return tuple(out)

    # ---------------------------------------------------------------- inside

    def _clear(self, owner: str, out: list[Change]) -> None:
        held = self._owners.pop(owner, None)
        if held is None:
            return
        assert held.groups is not None and held.names is not None
        for scope, group, member in held.groups:
            out.append(GroupChange(scope, group, owner, member, 0))
        for name in held.names:
            out.append((name, owner, None))

    def _set(self, owner: str, held: _Owner, delta: OwnerDelta, out: list[Change]) -> None:
        groups, names = held.groups, held.names
        assert groups is not None and names is not None
        for scope, group, member, count in delta.groups:
            key = (scope, group, member)
            was = groups.get(key, 0)
            if count == was:
                continue
            if count:
                if not was:
                    held.size += group_bytes(key)
                groups[key] = count
            else:
                del groups[key]
                held.size -= group_bytes(key)
            out.append(GroupChange(scope, group, owner, member, count))
        for name, member, lamport in delta.names:
            was_claim = names.get(name)
            if lamport:
                if was_claim == (member, lamport):
                    continue
                held.size += name_bytes(name, member) - (
                    0 if was_claim is None else name_bytes(name, was_claim[0])
                )
                names[name] = (member, lamport)
                out.append((name, owner, Claim(name, owner, held.epoch, member, lamport)))
            elif was_claim is not None:
                del names[name]
                held.size -= name_bytes(name, was_claim[0])
                out.append((name, owner, None))

    def _replace(self, owner: str, held: _Owner, delta: OwnerDelta, out: list[Change]) -> None:
        groups, names = held.groups, held.names
        assert groups is not None and names is not None
        keep_groups = {(s, g, m) for s, g, m, _ in delta.groups}
        keep_names = {name for name, _, _ in delta.names}
        for key in [k for k in groups if k not in keep_groups]:
            del groups[key]
            held.size -= group_bytes(key)
            out.append(GroupChange(key[0], key[1], owner, key[2], 0))
        for name in [n for n in names if n not in keep_names]:
            member, _ = names.pop(name)
            held.size -= name_bytes(name, member)
            out.append((name, owner, None))
        self._set(owner, held, delta, out)


def _well_formed(delta: OwnerDelta) -> bool:
    if delta.epoch < 1 or delta.base < 0 or delta.version < delta.base or delta.version < 1:
        return False
    if not delta.owner:
        return False
    for scope, group, member, count in delta.groups:
        if count < 0 or not (scope and group and member):
            return False
        if delta.whole and count == 0:
            return False
    for name, member, lamport in delta.names:
        if lamport < 0 or not name or (lamport and not member):
            return False
        if delta.whole and lamport == 0:
            return False
    return True


def _delta_growth(held: _Owner, delta: OwnerDelta) -> int:
    """How much ``delta`` grows ``held`` (before applying it)."""
    groups, names = held.groups, held.names
    assert groups is not None and names is not None
    if delta.whole:
        return (
            sum(group_bytes((s, g, m)) for s, g, m, _ in delta.groups)
            + sum(name_bytes(n, m) for n, m, _ in delta.names)
            - held.size
        )
    grow = 0
    for scope, group, member, count in delta.groups:
        key = (scope, group, member)
        if count and key not in groups:
            grow += group_bytes(key)
        elif not count and key in groups:
            grow -= group_bytes(key)
    for name, member, lamport in delta.names:
        was = names.get(name)
        grow += (name_bytes(name, member) if lamport else 0) - (
            0 if was is None else name_bytes(name, was[0])
        )
    return grow
