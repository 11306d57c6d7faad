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
  late delta cannot resurrect what a death removed; and once told a life
  lives, every older life of that owner is refused, so a replica that has not
  heard of a restart cannot hand the old life's entries to a node that only
  ever heard of the new one.

Every node takes every owner's deltas, so the entries travel packed: a
delta's groups and names are msgpack inside the message (one C call to
unpack 10,000 entries), checked entry by entry before anything is applied,
and the changes are reported per group
(:class:`~gossamer.crdt.groups.GroupChange`: one group's changed members)
and per name (``(name, node, Claim | None)``), which the indexes
(``groups.py``, ``names.py``) and the application's monitors consume.

Bounds: at most ``max_owners`` owners (news of more is refused and
counted), at most ``max_owner_bytes`` of entries per owner (an estimate from
string lengths that bounds the encoded size, so a whole owner always fits a
frame), and remembered ends of lives at most ``max_owners`` (the oldest go).
"""

from __future__ import annotations

__all__ = [
    "DELTA_OVERHEAD",
    "ENTRY_OVERHEAD",
    "Applied",
    "Change",
    "GroupKey",
    "OwnerDelta",
    "OwnerTable",
    "group_bytes",
    "name_bytes",
]

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import msgpack

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
"""Bytes an entry costs beyond its strings, at most (headers, a 64-bit count or time)."""
GROUP_OVERHEAD: Final = 24
"""Bytes a group costs in a delta beyond its scope's and name's strings, at most."""
DELTA_OVERHEAD: Final = 64 + 255
"""A delta's own fields, the owner's name included, at most."""
_GROWTH_PER_BYTE: Final = 12
"""An entry's estimate over its smallest packed form (a 1-byte string header and a
1-byte count for a member; three such items for a claim): at most 12."""
_MAX_TEXT_CHARS: Final = 255
_MAX_COUNTER: Final = (1 << 63) - 1


def group_bytes(key: GroupKey) -> int:
    """An upper bound of what one group entry adds to a delta, its group's header included."""
    return len(key[0].encode()) + len(key[1].encode()) + GROUP_OVERHEAD + _member_bytes(key[2])


def _member_bytes(member: str) -> int:
    return len(member.encode()) + ENTRY_OVERHEAD


def _group_bytes(scope: str, group: str) -> int:
    return len(scope.encode()) + len(group.encode()) + GROUP_OVERHEAD


def name_bytes(name: str, member: str) -> int:
    """An upper bound of what one name claim adds to a delta."""
    return len(name.encode()) + len(member.encode()) + ENTRY_OVERHEAD


@dataclass(frozen=True, slots=True)
class OwnerDelta(Record):
    """Owner ``owner`` (life ``epoch``): the keys it changed from ``base`` to ``version``,
    or (``whole``) all its entries at ``version``.

    ``groups`` is msgpack of ``[[scope, group, [member, count, ...]], ...]`` (a
    count of 0: left); ``names`` of ``[name, member, lamport, ...]`` (a Lamport
    time of 0: withdrawn).  :func:`pack_groups` and :func:`pack_names` make them.
    """

    owner: str
    epoch: int
    base: int
    version: int
    whole: bool
    groups: bytes = b""
    names: bytes = b""

    def group_entries(self) -> list[tuple[str, str, str, int]]:
        """``(scope, group, member, count)`` per entry (LocalError if malformed)."""
        groups = _unpack_groups(self.groups, self.whole)
        if groups is None:
            raise LocalError("a malformed delta")
        return [(s, g, m, c) for s, g, flat in groups for m, c in _pairs(flat)]

    def name_entries(self) -> list[tuple[str, str, int]]:
        """``(name, member, lamport)`` per claim (LocalError if malformed)."""
        names = _unpack_names(self.names, self.whole)
        if names is None:
            raise LocalError("a malformed delta")
        it = iter(names)
        return list(zip(it, it, it, strict=True))


def pack_groups(groups: Iterable[tuple[str, str, list[Any]]]) -> bytes:
    """``[[scope, group, [member, count, ...]], ...]`` as a delta carries it."""
    items = [[s, g, flat] for s, g, flat in groups]
    return b"" if not items else bytes(msgpack.packb(items, use_bin_type=True))


def pack_names(flat: list[Any]) -> bytes:
    """``[name, member, lamport, ...]`` as a delta carries it."""
    return b"" if not flat else bytes(msgpack.packb(flat, use_bin_type=True))


def _pairs(flat: list[Any]) -> Iterator[tuple[str, int]]:
    it = iter(flat)
    return zip(it, it, strict=True)


def _unpack(raw: bytes) -> Any:
    try:
        return msgpack.unpackb(raw, use_list=True, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several types for a peer's garbage
        return None


def _text(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= _MAX_TEXT_CHARS


def _unpack_groups(raw: bytes, whole: bool) -> list[list[Any]] | None:
    """The groups of a delta, checked; None if anything is malformed."""
    if not raw:
        return []
    data = _unpack(raw)
    if type(data) is not list:
        return None
    for item in data:
        if type(item) is not list or len(item) != 3:
            return None
        scope, group, flat = item
        if not (_text(scope) and _text(group)) or type(flat) is not list or len(flat) % 2:
            return None
        if not all(map(_text, flat[0::2])):
            return None
        low = 1 if whole else 0
        if not all(type(c) is int and low <= c <= _MAX_COUNTER for c in flat[1::2]):
            return None
    return data


def _unpack_names(raw: bytes, whole: bool) -> list[Any] | None:
    """The claims of a delta, flat, checked; None if anything is malformed."""
    if not raw:
        return []
    flat = _unpack(raw)
    if type(flat) is not list or len(flat) % 3:
        return None
    names, members, times = flat[0::3], flat[1::3], flat[2::3]
    if not all(map(_text, names)):
        return None
    low = 1 if whole else 0
    for member, lamport in zip(members, times, strict=True):
        if type(lamport) is not int or not low <= lamport <= _MAX_COUNTER:
            return None
        if lamport and not _text(member):
            return None
    return flat


class Applied(enum.Enum):
    """What :meth:`OwnerTable.apply` made of a delta."""

    NEWS = "news"
    OLD = "old"  # this node already holds that version or a later one
    GAP = "gap"  # a delta between was missed: the owner's entries are needed whole
    GONE = "gone"  # that owner life is dead or left here
    REFUSED = "refused"  # malformed, or over a bound


class _Owner:
    __slots__ = ("epoch", "groups", "names", "size", "version")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.version = 0
        self.groups: dict[tuple[str, str], dict[str, int]] = {}
        self.names: dict[str, tuple[str, int]] = {}
        self.size = 0


class OwnerTable:
    """Every owner's entries as this node knows them; ``me`` writes its own."""

    __slots__ = (
        "_dirty_groups",
        "_dirty_names",
        "_gone",
        "_owners",
        "group_entries",
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
        self._gone: dict[str, int] = {}  # owner -> the newest life known over
        self._dirty_groups: dict[tuple[str, str], dict[str, None]] = {}  # in order
        self._dirty_names: dict[str, None] = {}
        self.group_entries = 0
        """Group entries held, every owner's."""
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
        if held is None:
            return 0
        return sum(map(len, held.groups.values())) + len(held.names)

    def size(self, owner: str) -> int:
        held = self._owners.get(owner)
        return 0 if held is None else held.size

    def own_count(self, key: GroupKey) -> int:
        held = self._owners[self.me].groups.get((key[0], key[1]))
        return 0 if held is None else held.get(key[2], 0)

    def own_claim(self, name: str) -> tuple[str, int] | None:
        return self._owners[self.me].names.get(name)

    def groups_of(self, owner: str) -> dict[tuple[str, str], dict[str, int]]:
        """``owner``'s groups: ``(scope, group) -> member -> count`` (read only)."""
        held = self._owners.get(owner)
        return {} if held is None else held.groups

    def names_of(self, owner: str) -> dict[str, tuple[str, int]]:
        """``owner``'s claims: ``name -> (member, lamport)`` (read only)."""
        held = self._owners.get(owner)
        return {} if held is None else held.names

    def pending(self) -> int:
        """Local changes not yet flushed into deltas."""
        return len(self._dirty_groups) + len(self._dirty_names)

    # ---------------------------------------------------------------- local writes

    def join(self, key: GroupKey, out: list[Change], times: int = 1) -> int:
        """This node's ``member`` joins ``(scope, group)`` ``times`` more; its count now."""
        return self.set_count(key, self.own_count(key) + times, out)

    def leave(self, key: GroupKey, out: list[Change], times: int = 1) -> int:
        """``times`` joins of this node's member undone; its count now.  LocalError
        if it joined fewer times."""
        count = self.own_count(key)
        if count < times:
            raise LocalError(
                f"leave: {key[2]!r} is in group {key[1]!r} of scope {key[0]!r} "
                f"{count} time(s) here, cannot leave {times}"
            )
        return self.set_count(key, count - times, out)

    def set_count(self, key: GroupKey, count: int, out: list[Change]) -> int:
        """This node's ``member`` is in ``(scope, group)`` ``count`` times (0: not)."""
        own = self._owners[self.me]
        scope, group, member = key
        at = (scope, group)
        held = own.groups.get(at)
        was = 0 if held is None else held.get(member, 0)
        if count == was:
            return count
        if count and not was:
            added = _member_bytes(member) + (_group_bytes(scope, group) if held is None else 0)
            if own.size + added > self.max_owner_bytes:
                raise LocalError(
                    f"this node's groups and names would take over "
                    f"registry.max_owner_bytes = {self.max_owner_bytes} bytes"
                )
            own.size += added
            self.group_entries += 1
        if held is None:
            held = own.groups[at] = {}
        if count:
            held[member] = count
        else:
            del held[member]
            own.size -= _member_bytes(member)
            self.group_entries -= 1
            if not held:
                del own.groups[at]
                own.size -= _group_bytes(scope, group)
        self._dirty_groups.setdefault(at, {})[member] = None
        out.append(GroupChange(scope, group, self.me, ((member, count),)))
        return count

    def claim(self, name: str, member: str, lamport: int, out: list[Change]) -> None:
        """This node claims ``name`` for ``member`` at ``lamport`` (replacing its own claim)."""
        own = self._owners[self.me]
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
        room = max(1, max_bytes - DELTA_OVERHEAD)
        deltas: list[OwnerDelta] = []
        groups: list[tuple[str, str, list[Any]]] = []
        names: list[Any] = []
        used = 0

        def cut() -> None:
            nonlocal groups, names, used
            own.version += 1
            deltas.append(
                OwnerDelta(
                    self.me, own.epoch, own.version - 1, own.version, False,
                    pack_groups(groups), pack_names(names),
                )
            )  # fmt: skip
            groups, names, used = [], [], 0

        for (scope, group), members in self._dirty_groups.items():
            held = own.groups.get((scope, group), {})
            header = _group_bytes(scope, group)
            flat: list[Any] = []
            if used and used + header > room:
                cut()
            groups.append((scope, group, flat))
            used += header
            for member in members:
                size = _member_bytes(member)
                if flat and used + size > room:
                    cut()
                    flat = []
                    groups.append((scope, group, flat))
                    used += header
                flat += (member, held.get(member, 0))
                used += size
        for name in self._dirty_names:
            member, lamport = own.names.get(name, ("", 0))
            size = name_bytes(name, member)
            if used and used + size > room:
                cut()
            names += (name, member, lamport)
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
        groups = [
            (scope, group, [x for pair in members.items() for x in pair])
            for (scope, group), members in held.groups.items()
        ]
        names = [
            x for name, (member, lamport) in held.names.items() for x in (name, member, lamport)
        ]
        return OwnerDelta(
            owner, held.epoch, 0, held.version, True, pack_groups(groups), pack_names(names)
        )

    # ---------------------------------------------------------------- replication

    def apply(self, delta: OwnerDelta, out: list[Change]) -> Applied:
        """Take a delta from another node; the changes it made go to ``out``."""
        owner = delta.owner
        if owner == self.me:
            return Applied.OLD  # this node writes its own entries
        if delta.epoch < 1 or delta.base < 0 or delta.version < max(1, delta.base) or not owner:
            self.refused += 1
            return Applied.REFUSED
        gone = self._gone.get(owner)
        if gone is not None and delta.epoch <= gone:
            return Applied.GONE
        held = self._owners.get(owner)
        if held is not None and delta.epoch < held.epoch:
            return Applied.OLD
        if held is not None and delta.epoch > held.epoch:
            self._clear(owner, out)  # a restart: the older life's entries are over
            held = None
        if held is not None:
            if delta.version < held.version or (delta.version == held.version and not delta.whole):
                return Applied.OLD
            if not delta.whole and delta.base > held.version:
                return Applied.GAP
        elif not delta.whole and delta.base > 0:
            return Applied.GAP  # a life not held yet: only a whole, or its first delta
        groups = _unpack_groups(delta.groups, delta.whole)
        names = _unpack_names(delta.names, delta.whole)
        if groups is None or names is None:
            self.refused += 1
            return Applied.REFUSED
        if held is None:
            if len(self._owners) >= self.max_owners:
                self.refused += 1
                return Applied.REFUSED
            held = _Owner(delta.epoch)
        assert held is not None
        # A cheap bound first: the estimate of an entry is at most 12 times its packed bytes.
        if held.size + _GROWTH_PER_BYTE * (len(delta.groups) + len(delta.names)) > (
            self.max_owner_bytes
        ) and not self._fits(held, delta, groups, names):
            self.refused += 1
            return Applied.REFUSED
        self._owners[owner] = held
        if delta.whole:
            self._replace(owner, held, groups, names, out)
        else:
            self._set(owner, held, groups, names, out)
        held.version = delta.version
        return Applied.NEWS

    def drop(self, owner: str, epoch: int, out: list[Change]) -> bool:
        """Owner life ``(owner, epoch)`` is dead or left: forget its entries (and any
        older life's) and refuse them until :meth:`revive`.  False if nothing was held."""
        if owner == self.me:
            return False
        self._bury(owner, epoch)
        held = self._owners.get(owner)
        if held is None or held.epoch > epoch:
            return False
        self._clear(owner, out)
        return True

    def refuses(self, owner: str, epoch: int) -> bool:
        """Whether news of owner life ``(owner, epoch)`` is refused here (dead, left,
        older than the life held or than one known alive, or this node's own)."""
        gone = self._gone.get(owner)
        held = self._owners.get(owner)
        return (
            owner == self.me
            or (gone is not None and epoch <= gone)
            or (held is not None and epoch < held.epoch)
        )

    def revive(self, owner: str, epoch: int) -> None:
        """Owner life ``(owner, epoch)`` lives: its entries are taken again, and every
        older life's are refused from now on."""
        gone = self._gone.get(owner, 0)
        if gone > epoch or owner == self.me:
            return  # a later life is over already, so this one is too
        # An owner's lives only move forward.  A node that first hears of an owner
        # in a later life was never told the older one ended, yet a replica that has
        # not heard of the restart still offers the old life's entries; and a later
        # life with no entries of its own never replaces them.
        self._gone.pop(owner, None)
        if epoch > 1:
            self._bury(owner, epoch - 1)

    def digest(self, owners: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
        """``(owner, epoch, version)`` for each of ``owners`` held here."""
        out = []
        for owner in owners:
            held = self._owners.get(owner)
            if held is not None:
                out.append((owner, held.epoch, held.version))
        return tuple(out)

    # ---------------------------------------------------------------- inside

    def _bury(self, owner: str, epoch: int) -> None:
        """Refuse ``owner``'s lives up to ``epoch``."""
        # Reinserted, so the oldest death is the first to go past the bound.
        self._gone[owner] = max(epoch, self._gone.pop(owner, 0))
        while len(self._gone) > self.max_owners:
            del self._gone[next(iter(self._gone))]

    def _clear(self, owner: str, out: list[Change]) -> None:
        held = self._owners.pop(owner, None)
        if held is None:
            return
        for (scope, group), members in held.groups.items():
            self.group_entries -= len(members)
            out.append(GroupChange(scope, group, owner, tuple((m, 0) for m in members)))
        for name in held.names:
            out.append((name, owner, None))

    def _fits(
        self, held: _Owner, delta: OwnerDelta, groups: list[list[Any]], names: list[Any]
    ) -> bool:
        """Whether ``held`` stays within the bound once the delta is applied (exact)."""
        size = 0 if delta.whole else held.size
        for scope, group, flat in groups:
            at = (scope, group)
            members = {} if delta.whole else held.groups.get(at, {})
            if delta.whole or at not in held.groups:
                size += _group_bytes(scope, group)
            for member, count in _pairs(flat):
                was = members.get(member, 0)
                if count and not was:
                    size += _member_bytes(member)
                elif was and not count:
                    size -= _member_bytes(member)
        it = iter(names)
        for name, member, lamport in zip(it, it, it, strict=True):
            was_claim = None if delta.whole else held.names.get(name)
            size += (name_bytes(name, member) if lamport else 0) - (
                0 if was_claim is None else name_bytes(name, was_claim[0])
            )
        return size <= self.max_owner_bytes

    def _set(
        self,
        owner: str,
        held: _Owner,
        groups: list[list[Any]],
        names: list[Any],
        out: list[Change],
    ) -> None:
        by_group = held.groups
        added = 0
        for scope, group, flat in groups:
            at = (scope, group)
            members = by_group.get(at)
            if members is None:
                members = by_group[at] = {}
                held.size += _group_bytes(scope, group)
            changed: list[tuple[str, int]] = []
            it = iter(flat)
            for member, count in zip(it, it, strict=True):
                was = members.get(member, 0)
                if count == was:
                    continue
                if count:
                    if not was:
                        held.size += len(member.encode()) + ENTRY_OVERHEAD
                        added += 1
                    members[member] = count
                else:
                    del members[member]
                    held.size -= len(member.encode()) + ENTRY_OVERHEAD
                    added -= 1
                changed.append((member, count))
            if not members:
                del by_group[at]
                held.size -= _group_bytes(scope, group)
            if changed:
                out.append(GroupChange(scope, group, owner, tuple(changed)))
        self.group_entries += added
        claims = held.names
        it = iter(names)
        for name, member, lamport in zip(it, it, it, strict=True):
            was_claim = claims.get(name)
            if lamport:
                if was_claim == (member, lamport):
                    continue
                held.size += name_bytes(name, member) - (
                    0 if was_claim is None else name_bytes(name, was_claim[0])
                )
                claims[name] = (member, lamport)
                out.append((name, owner, Claim(name, owner, held.epoch, member, lamport)))
            elif was_claim is not None:
                del claims[name]
                held.size -= name_bytes(name, was_claim[0])
                out.append((name, owner, None))

    def _replace(
        self,
        owner: str,
        held: _Owner,
        groups: list[list[Any]],
        names: list[Any],
        out: list[Change],
    ) -> None:
        keep = {(s, g): set(flat[0::2]) for s, g, flat in groups}
        for at, members in list(held.groups.items()):
            kept = keep.get(at, set())
            gone = [m for m in members if m not in kept]
            if not gone:
                continue
            for member in gone:
                del members[member]
                held.size -= _member_bytes(member)
            self.group_entries -= len(gone)
            if not members:
                del held.groups[at]
                held.size -= _group_bytes(*at)
            out.append(GroupChange(at[0], at[1], owner, tuple((m, 0) for m in gone)))
        keep_names = set(names[0::3])
        for name in [n for n in held.names if n not in keep_names]:
            member, _ = held.names.pop(name)
            held.size -= name_bytes(name, member)
            out.append((name, owner, None))
        self._set(owner, held, groups, names, out)


class TableGroups:
    """The groups an :class:`OwnerTable` holds, read as a
    :class:`~gossamer.crdt.groups.GroupIndex` is (computed when asked: the part
    keeps no second index of what every node replicates)."""

    __slots__ = ("_table",)

    def __init__(self, table: OwnerTable) -> None:
        self._table = table

    def members(self, scope: str, group: str) -> list[tuple[str, str]]:
        """Every ``(node, member)`` in the group, sorted."""
        table = self._table
        at = (scope, group)
        return sorted(
            (owner, member)
            for owner in table.owners()
            for member in table.groups_of(owner).get(at, ())
        )

    def count(self, scope: str, group: str, node: str, member: str) -> int:
        return self._table.groups_of(node).get((scope, group), {}).get(member, 0)

    def which_groups(self, scope: str) -> list[str]:
        table = self._table
        return sorted({g for o in table.owners() for s, g in table.groups_of(o) if s == scope})

    def entries(self) -> int:
        return self._table.group_entries

    def groups(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """Every group as ``(scope, group, members)``, sorted (for the endpoint)."""
        table = self._table
        out: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for owner in table.owners():
            for at, members in table.groups_of(owner).items():
                out.setdefault(at, []).extend((owner, m) for m in members)
        return [(s, g, sorted(out[(s, g)])) for s, g in sorted(out)]
