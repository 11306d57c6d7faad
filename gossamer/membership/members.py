"""The member table: who is in the cluster, and the one rule that merges news of them.

SWIM (Das, Gupta, Motivala, DSN 2002, section 4.2) orders what nodes say about
a member by *incarnation*: only the member itself raises its incarnation (to
refute a suspicion, or to publish new metadata), and at equal incarnation a
worse status overrides a better one.  gossamer puts the member's *boot epoch*
in front (``ids.py``): a larger epoch is a new life of the same name, and it
ends every claim the earlier life made, whatever its incarnation.

Every piece of news is a :class:`Claim`: a complete member entry (name,
address, epoch, incarnation, status, metadata) plus the name of the node that
makes it.  Claims are totally ordered by :func:`claim_order`::

    (epoch, incarnation, status rank, address, metadata)

with the status ranks of :data:`STATUS_RANK` (alive < suspect < dead < left).
The table keeps, per name, the greatest claim it has seen, so merging is a
join: commutative, associative and idempotent, and every node that has seen
the same claims holds the same table, in whatever order they came.  Address
and metadata only break ties between claims an honest cluster never makes
(two different entries under one incarnation), so that even a peer's garbage
cannot make two tables disagree for good.

What a transition means to the application -- joined, updated, suspect,
alive again, dead, left -- is one table, :data:`TRANSITIONS`, read by one
choke point, :meth:`MemberTable.apply`.  Dead and left members stay in the
table (as tombstones that stop an old claim from bringing them back) until
they are *reaped*, a configured time after they died or left; a tombstone
shows the member's last metadata where this node saw it alive, but travels
without it.

Invariants:

* A member's entry only moves up the claim order, except that reaping forgets
  it (after which any claim about it is news again).
* The table never holds more than ``max_members`` entries; a claim about a new
  name beyond that is refused and counted (``refused_full``).
* Claims about the local node never change its own entry here: the failure
  detector refutes them (``failure/swim.py``) and installs its own claims
  with :meth:`MemberTable.set_local`.
"""

from __future__ import annotations

__all__ = [
    "MEMBER_EVENTS",
    "STATUS_RANK",
    "TRANSITIONS",
    "Claim",
    "Member",
    "MemberAlive",
    "MemberDead",
    "MemberEvent",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberSuspect",
    "MemberTable",
    "MemberUpdated",
    "Status",
    "as_stored",
    "claim_order",
    "valid_identity",
]

import dataclasses
import enum
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, TypeAlias

from gossamer.clocks import MAX_COUNTER
from gossamer.errors import LocalError
from gossamer.ids import Address, AddressError, NodeId, is_valid_name, parse_address
from gossamer.membership.tags import decode_tags
from gossamer.wire import Record


class Status(enum.IntEnum):
    """What the cluster believes of a member.  Values are wire values: append only."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3

    @property
    def live(self) -> bool:
        """Alive or suspect: still a member that is probed and counted."""
        return self is Status.ALIVE or self is Status.SUSPECT


STATUS_RANK: Final[dict[Status, int]] = {
    Status.ALIVE: 0,
    Status.SUSPECT: 1,
    Status.DEAD: 2,
    Status.LEFT: 3,
}
"""At equal epoch and incarnation, the claim with the higher rank wins.  Left
outranks dead: a member that said goodbye is reported as having left even
where a suspicion ran out first."""


@dataclass(frozen=True, slots=True)
class Claim(Record):
    """What ``source`` says of the member ``name``: one entry of the member table.

    Travels piggybacked on probes, in gossip datagrams and in full-state
    exchanges.  Every claim is complete (metadata included), so any claim can
    create an entry on a node that has never heard of the member.
    """

    name: str
    """The member's name, stable across restarts."""
    address: Address
    """Where the member receives datagrams and streams."""
    epoch: int
    """The member's boot epoch; a larger one is a restart."""
    incarnation: int
    """Raised only by the member itself, to refute a suspicion or to publish metadata."""
    status: Status
    """Alive, suspect, dead or left."""
    metadata: bytes = b""
    """Application data of this incarnation (bounded by the failure detector's config)."""
    source: str = ""
    """Who makes the claim: counts independent confirmations of a suspicion."""
    draining: bool = False
    """The member is draining (``Node.drain``): a member still, given no new work
    (the ring leaves it out).  Raised and lowered like metadata."""


def as_stored(claim: Claim) -> Claim:
    """``claim`` as the table stores, compares and passes it on: a dead or left
    member keeps no metadata, so a table full of tombstones stays small."""
    if claim.status.live or not (claim.metadata or claim.draining):
        return claim
    return dataclasses.replace(claim, metadata=b"", draining=False)


def claim_order(claim: Claim) -> tuple[int, int, int, str, bytes, bool]:
    """The total order of claims about one name: the greater claim wins."""
    return (
        claim.epoch,
        claim.incarnation,
        STATUS_RANK[claim.status],
        claim.address,
        claim.metadata,
        claim.draining,
    )


@dataclass(frozen=True, slots=True)
class Member:
    """A member as the local table knows it: a read-only view for applications."""

    name: str
    address: Address
    epoch: int
    incarnation: int
    status: Status
    metadata: bytes
    since: float
    """When the local node last saw the status change, on its own clock (seconds)."""
    draining: bool = False
    """It is draining (``Node.drain``): still a member, given no new work."""

    @property
    def node_id(self) -> NodeId:
        return NodeId(self.name, self.address, self.epoch)

    @property
    def tags(self) -> dict[str, str]:
        """The metadata as tags (``membership/tags.py``); empty for any other form."""
        return decode_tags(self.metadata)


# --------------------------------------------------------------------------
# Events.


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """``member`` is in the cluster: new, back after being dead or left, or restarted.

    ``previous`` is the entry it replaced, if any.  ``previous.epoch <
    member.epoch`` is a restart: the earlier life's claims (group memberships,
    name registrations) have ended.
    """

    member: Member
    previous: Member | None


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    """``member`` published new metadata or a new address under a higher incarnation."""

    member: Member
    previous: Member


@dataclass(frozen=True, slots=True)
class MemberSuspect:
    """``source`` could not reach ``member``; it is dead unless it refutes in time."""

    member: Member
    source: str


@dataclass(frozen=True, slots=True)
class MemberAlive:
    """``member`` refuted a suspicion: alive again."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberDead:
    """``member`` is declared dead (by ``source``, when its suspicion ran out)."""

    member: Member
    source: str


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """``member`` left the cluster gracefully."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberReaped:
    """``member`` was dead or left long enough to be forgotten."""

    member: Member


MemberEvent: TypeAlias = (
    MemberJoined
    | MemberUpdated
    | MemberSuspect
    | MemberAlive
    | MemberDead
    | MemberLeft
    | MemberReaped
)

MEMBER_EVENTS: Final = (
    MemberJoined,
    MemberUpdated,
    MemberSuspect,
    MemberAlive,
    MemberDead,
    MemberLeft,
    MemberReaped,
)
"""Every member event class, for ``isinstance`` and for a part's ``subscribes``."""


class _Ev(enum.Enum):
    JOINED = "joined"
    UPDATED = "updated"  # only if the address or metadata changed
    SUSPECT = "suspect"
    ALIVE = "alive"
    DEAD = "dead"
    LEFT = "left"


_A, _S, _D, _L = Status.ALIVE, Status.SUSPECT, Status.DEAD, Status.LEFT

TRANSITIONS: Final[dict[tuple[Status | None, Status], tuple[_Ev, ...]]] = {
    # from (None = not in the table)  to      what the application hears
    (None, _A): (_Ev.JOINED,),
    (None, _S): (_Ev.JOINED, _Ev.SUSPECT),
    (None, _D): (),  # a tombstone of a member never seen alive
    (None, _L): (),
    (_A, _A): (_Ev.UPDATED,),
    (_A, _S): (_Ev.SUSPECT,),
    (_A, _D): (_Ev.DEAD,),
    (_A, _L): (_Ev.LEFT,),
    (_S, _A): (_Ev.ALIVE,),
    (_S, _S): (),  # a higher incarnation, suspected again
    (_S, _D): (_Ev.DEAD,),
    (_S, _L): (_Ev.LEFT,),
    (_D, _A): (_Ev.JOINED,),
    (_D, _S): (_Ev.JOINED, _Ev.SUSPECT),
    (_D, _D): (),
    (_D, _L): (_Ev.LEFT,),
    (_L, _A): (_Ev.JOINED,),
    (_L, _S): (_Ev.JOINED, _Ev.SUSPECT),
    (_L, _D): (),
    (_L, _L): (),
}
"""What each change of status within one life means to the application.
A new epoch (a restart) is read as if the entry were new (``None``), with the
old entry passed along as ``previous``."""


@dataclass(slots=True)
class _Entry:
    claim: Claim
    since: float
    last_metadata: bytes = b""
    """A dead or left member's metadata while it was alive, kept here (never
    sent: tombstones travel without it) so an operator sees what died: that of
    the greatest live claim of this life the table was given, in any order."""
    last_live: tuple[int, int, int, str, bytes, bool] | None = None
    """The order of that claim."""

    def view(self) -> Member:
        c = self.claim
        metadata = c.metadata if c.status.live else self.last_metadata
        return Member(
            c.name,
            c.address,
            c.epoch,
            c.incarnation,
            c.status,
            metadata,
            self.since,
            c.draining and c.status.live,
        )


def _updated(previous: Member, member: Member) -> bool:
    """What a live-to-live change must touch to be news (``MemberUpdated``)."""
    return (previous.address, previous.metadata, previous.draining) != (
        member.address,
        member.metadata,
        member.draining,
    )


class MemberTable:
    """Every member the local node knows of, merged by :func:`claim_order`.

    ``apply`` is the one way news gets in; it returns the events the change
    means, in order.  Iteration and listings are sorted by name, so nothing
    built from the table depends on arrival order.
    """

    __slots__ = (
        "_alive",
        "_by_name",
        "_gone",
        "_live",
        "_local",
        "_max_members",
        "_reap_dead_after_s",
        "_reap_left_after_s",
        "refused_bad",
        "refused_full",
    )

    def __init__(
        self,
        local: Claim,
        now: float,
        *,
        reap_dead_after_s: float,
        reap_left_after_s: float,
        max_members: int,
    ) -> None:
        if local.status is not Status.ALIVE:
            raise LocalError(f"the local member must start alive, got {local.status.name}")
        if max_members < 1:
            raise LocalError(f"max_members must be >= 1, got {max_members}")
        self._local = local.name
        self._by_name: dict[str, _Entry] = {local.name: _Entry(local, now)}
        self._alive = 1  # alive entries, kept as entries change
        self._live = 1  # alive and suspect entries
        self._gone: set[str] = set()  # dead and left entries: what reap() visits
        self._max_members = max_members
        self._reap_dead_after_s = reap_dead_after_s
        self._reap_left_after_s = reap_left_after_s
        self.refused_full = 0
        """Claims about new names refused because the table was full."""
        self.refused_bad = 0
        """Claims refused for a malformed name, address, epoch or incarnation."""

    # ---------------------------------------------------------------- reading

    @property
    def local(self) -> Member:
        return self._by_name[self._local].view()

    @property
    def local_claim(self) -> Claim:
        return self._by_name[self._local].claim

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Member]:
        return (self._by_name[name].view() for name in sorted(self._by_name))

    def get(self, name: str) -> Member | None:
        entry = self._by_name.get(name)
        return None if entry is None else entry.view()

    def claim(self, name: str) -> Claim | None:
        """The claim the table holds for ``name`` (what a full-state exchange sends)."""
        entry = self._by_name.get(name)
        return None if entry is None else entry.claim

    def claims(self) -> list[Claim]:
        """Every entry as a claim, sorted by name."""
        return [self._by_name[name].claim for name in sorted(self._by_name)]

    def names(self, *statuses: Status) -> list[str]:
        """Sorted names of the members in any of ``statuses`` (all when none given)."""
        if not statuses:
            return sorted(self._by_name)
        wanted = frozenset(statuses)
        return sorted(n for n, e in self._by_name.items() if e.claim.status in wanted)

    def count(self, *statuses: Status) -> int:
        wanted = frozenset(statuses)
        return sum(1 for e in self._by_name.values() if e.claim.status in wanted)

    def booted(self, now: float) -> None:
        """The local node booted at ``now``: its entry has been as it is since then.

        A table is built before its owner knows the time; this dates the
        local entry on the owner's clock once it does.
        """
        self._by_name[self._local].since = now

    def live_count(self) -> int:
        """Alive and suspect members, the local node included: the cluster size estimate."""
        return self._live

    def alive_count(self) -> int:
        """Members believed alive, the local node included (if it has not left)."""
        return self._alive

    def gone(self) -> list[str]:
        """Sorted names of the dead and left members still in the table."""
        return sorted(self._gone)

    # ---------------------------------------------------------------- writing

    def apply(self, claim: Claim, now: float) -> list[MemberEvent] | None:
        """Merge ``claim``.  ``None`` if the table did not change; otherwise the
        events the change means to the application (possibly none, as for a
        tombstone or a refutation that changed no metadata).

        A claim about the local node is ignored here (the caller refutes it).
        A malformed claim or one about a new name when the table is full is
        refused and counted.
        """
        if claim.name == self._local:
            return None
        claim = as_stored(claim)
        entry = self._by_name.get(claim.name)
        if entry is not None:
            if claim_order(claim) <= claim_order(entry.claim):
                self.remember(claim)
                return None
            if not _counters_in_range(claim) or (
                (claim.address != entry.claim.address or claim.epoch != entry.claim.epoch)
                and not valid_identity(claim.name, claim.address)
            ):
                self.refused_bad += 1
                return None
        else:
            if not _well_formed(claim):
                self.refused_bad += 1
                return None
            if len(self._by_name) >= self._max_members:
                self.refused_full += 1
                return None
        return self._install(claim, entry, now)

    def remember(self, claim: Claim) -> None:
        """Keep the metadata of ``claim``, older than the entry, for the entry's
        tombstone if it is the greatest live claim of that life seen so far."""
        entry = self._by_name.get(claim.name)
        if (
            entry is None
            or not claim.status.live
            or entry.claim.status.live
            or claim.epoch != entry.claim.epoch
            or not _counters_in_range(claim)
        ):
            return
        order = claim_order(claim)
        if entry.last_live is None or order > entry.last_live:
            entry.last_metadata, entry.last_live = claim.metadata, order

    def set_local(self, claim: Claim, now: float) -> list[MemberEvent]:
        """Install a new claim about the local node (a refutation, new metadata, leaving).

        It must be greater than the current one in the claim order: the caller's bug otherwise.
        """
        entry = self._by_name[self._local]
        if claim.name != self._local or claim_order(claim) <= claim_order(entry.claim):
            raise LocalError(f"{claim!r} does not supersede the local entry {entry.claim!r}")
        return self._install(claim, entry, now)

    def reap(self, now: float) -> list[MemberEvent]:
        """Forget members dead or left for longer than their reap time."""
        reaped: list[MemberEvent] = []
        for name in sorted(self._gone):
            entry = self._by_name[name]
            status = entry.claim.status
            if status is Status.DEAD:
                after = self._reap_dead_after_s
            elif status is Status.LEFT:
                after = self._reap_left_after_s
            else:
                continue
            if name != self._local and now - entry.since >= after:
                del self._by_name[name]
                self._gone.discard(name)
                reaped.append(MemberReaped(entry.view()))
        return reaped

    def _install(self, claim: Claim, entry: _Entry | None, now: float) -> list[MemberEvent]:
        previous = entry.view() if entry is not None else None
        if previous is not None and previous.status.live:
            self._live -= 1
            self._alive -= previous.status is Status.ALIVE
        self._alive += claim.status is Status.ALIVE
        self._gone.discard(claim.name)
        if claim.status.live:
            self._live += 1
        elif claim.name != self._local:
            self._gone.add(claim.name)
        same_life = previous is not None and previous.epoch == claim.epoch
        old_status = previous.status if same_life and previous is not None else None
        if entry is None:
            entry = self._by_name[claim.name] = _Entry(claim, now)
        else:
            if not same_life or entry.claim.status is not claim.status:
                entry.since = now
            if not same_life:
                entry.last_metadata, entry.last_live = b"", None
            entry.claim = claim
        if claim.status.live:
            entry.last_metadata, entry.last_live = claim.metadata, claim_order(claim)
        member = entry.view()
        events: list[MemberEvent] = []
        for ev in TRANSITIONS[(old_status, claim.status)]:
            if ev is _Ev.JOINED:
                events.append(MemberJoined(member, previous))
            elif ev is _Ev.UPDATED:
                assert previous is not None
                if _updated(previous, member):
                    events.append(MemberUpdated(member, previous))
            elif ev is _Ev.SUSPECT:
                events.append(MemberSuspect(member, claim.source))
            elif ev is _Ev.ALIVE:
                events.append(MemberAlive(member))
            elif ev is _Ev.DEAD:
                events.append(MemberDead(member, claim.source))
            else:
                events.append(MemberLeft(member))
        if (
            same_life
            and previous is not None
            and previous.status.live
            and claim.status.live
            and _updated(previous, member)
            and not any(isinstance(e, MemberUpdated) for e in events)
        ):
            # New metadata can come with a suspicion or a refutation too.
            events.append(MemberUpdated(member, previous))
        if not same_life and previous is not None and previous.status.live and not events:
            # A new life that is already over: the old one ended too.
            if claim.status is Status.LEFT:
                events.append(MemberLeft(member))
            else:
                events.append(MemberDead(member, claim.source))
        return events


def _counters_in_range(claim: Claim) -> bool:
    # The incarnation stays below the ceiling minus one, so the member can
    # always refute with one more; the source is a node name (or empty).
    return (
        1 <= claim.epoch <= MAX_COUNTER
        and 0 <= claim.incarnation < MAX_COUNTER - 1
        and (not claim.source or _valid_name(claim.source))
    )


def _well_formed(claim: Claim) -> bool:
    """A claim a peer may make: a valid name and address, and counters in range."""
    return _counters_in_range(claim) and valid_identity(claim.name, claim.address)


@functools.lru_cache(maxsize=65_536)
def _valid_name(name: str) -> bool:
    return is_valid_name(name)


@functools.lru_cache(maxsize=65_536)
def valid_identity(name: str, addr: str) -> bool:
    """True if ``name`` is a valid node name and ``addr`` a valid address."""
    # Pure, so memoised: a gossip storm repeats the same few identities.
    try:
        NodeId(name, parse_address(addr), 1)
    except (AddressError, LocalError, ValueError):
        return False
    return True
