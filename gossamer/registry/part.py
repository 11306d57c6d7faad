"""The ``registry`` part: process groups and global names, replicated without locks.

Models: ``crdt/groups.py`` (pg), ``crdt/names.py`` (global without the lock),
``crdt/owners.py`` (one writer per entry, versioned per owner life).  This
part ships them and keeps them true to SWIM's member table:

* **Deltas down the tree.** Local changes are batched for ``batch_s`` and
  flushed as :class:`~gossamer.crdt.owners.OwnerDelta` s of at most
  ``max_delta_bytes``, each broadcast (``Publish``) on the channel
  ``gossamer/registry`` as one :class:`RegistryNews`.  A node that finds a
  gap (a delta shed on the way, or one sent before it was linked) pulls the
  owner's entries whole from the owner (:class:`Pull`).
* **Anti-entropy.** Every ``anti_entropy_interval_s`` a node sends a
  random live member a :class:`Summary` (a hash of its per-owner versions,
  one datagram).  A member whose hash differs opens an exchange on a
  stream: :class:`Digest` (per-owner versions), answered by
  :class:`Entries` with the owners it holds newer and the owners it wants,
  and a last ``Entries`` with those.  Only what differs is shipped.
* **Joins and heals.** A node pulls once when it first has a member to ask,
  and exchanges with every member SWIM sees come back (a healed partition,
  a refuted death); once linked into the tree, it announces its version so
  nodes that missed its early deltas pull them.
* **SWIM decides who owns entries.** An owner life declared dead or left,
  or replaced by a newer life, has its entries dropped at once everywhere
  (with the leave events), and news of that life is refused until SWIM
  sees it alive again.  Entries of an owner SWIM has not heard of are
  kept ``unknown_owner_s`` (news can outrun the member table), then
  dropped.
* **Names.** When a node's own claim stops winning, it withdraws the claim
  and emits :class:`~gossamer.crdt.names.NameLost` once.  ``confirm``
  asks every live member whether they hold the claim as the winner
  (:class:`ClaimCheck`), for callers that want a claim they can act on.

Invariant: the part's indexes are exactly what its table holds, and every
change reaches the application once, in order, as one
:class:`RegistryChanged` per input.
"""

from __future__ import annotations

__all__ = [
    "REGISTRY_CHANNEL",
    "SPEC",
    "ClaimAnswer",
    "ClaimCheck",
    "Confirmation",
    "Digest",
    "Entries",
    "Pull",
    "RegistryChanged",
    "RegistryConfig",
    "RegistryNews",
    "RegistryPart",
    "RegistryStats",
    "Summary",
]

import dataclasses
import hashlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gossamer.config import WireRoom, check_int, check_positive
from gossamer.crdt.groups import GroupChange, check_text
from gossamer.crdt.names import Claim, NameIndex, NameLost, Resolver
from gossamer.crdt.owners import (
    DELTA_OVERHEAD,
    Applied,
    Change,
    GroupKey,
    OwnerDelta,
    OwnerTable,
    TableGroups,
)
from gossamer.effects import Effect, EventNote, Outbox, PartContext, PartFactory, PartSpec, TimerKey
from gossamer.errors import ConfigError, LocalError, WireError
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import NeighborUp
from gossamer.membership.members import (
    MEMBER_EVENTS,
    MemberDead,
    MemberJoined,
    MemberLeft,
)
from gossamer.membership.plumtree import OWN_CHANNELS, Delivered, Publish
from gossamer.observe import counter
from gossamer.registry.view import Confirmation, RegistryView
from gossamer.wire import Message, registry

REGISTRY_CHANNEL: Final = OWN_CHANNELS + "registry"
MAX_CONFIRMS: Final = 64
"""Confirmations remembered at once (the oldest goes)."""
MAX_WANTS: Final = 10_000
MAX_EARLY: Final = 1_024
"""Deltas held, all owners together, until the ones before them come."""


# --------------------------------------------------------------------------
# Messages (the registries' block, 128-159)


@registry.message(128)
@dataclass(frozen=True, slots=True)
class RegistryNews(Message):
    """One broadcast of the registry: an owner's deltas, or its versions announced."""

    deltas: tuple[OwnerDelta, ...] = ()
    versions: tuple[tuple[str, int, int], ...] = ()


@registry.message(129)
@dataclass(frozen=True, slots=True)
class Summary(Message):
    """Anti-entropy's first step, one datagram: a hash of the sender's per-owner versions."""

    hash: bytes
    owners: int


@registry.message(130)
@dataclass(frozen=True, slots=True)
class Digest(Message):
    """The sender's ``(owner, epoch, version)`` for every owner it holds (on a stream)."""

    versions: tuple[tuple[str, int, int], ...]


@registry.message(131)
@dataclass(frozen=True, slots=True)
class Entries(Message):
    """Owners' entries, whole; with ``wants``, the owners the sender wants back.
    ``last``: the exchange ends here (the receiver closes)."""

    deltas: tuple[OwnerDelta, ...]
    wants: tuple[str, ...] = ()
    last: bool = True


@registry.message(132)
@dataclass(frozen=True, slots=True)
class Pull(Message):
    """Send me these owners' entries whole (answered by a last :class:`Entries`)."""

    owners: tuple[str, ...]


@registry.message(133)
@dataclass(frozen=True, slots=True)
class ClaimCheck(Message):
    """Do you hold my claim on ``name`` at ``lamport`` as its winner?"""

    name: str
    lamport: int


@registry.message(134)
@dataclass(frozen=True, slots=True)
class ClaimAnswer(Message):
    """The answer to :class:`ClaimCheck`: ``seen`` the claim yet, and the winner held
    (``winner`` the node, ``winner_lamport`` its claim's time; empty if none)."""

    name: str
    lamport: int
    seen: bool
    winner: str
    winner_lamport: int


# --------------------------------------------------------------------------
# Events, config, stats


@dataclass(frozen=True, slots=True)
class RegistryChanged:
    """What one input changed in the tables, in order (the application's mirror
    and monitors follow it): :class:`GroupChange` s and ``(name, node, Claim | None)``."""

    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """The ``registry`` part: groups and names (on unless ``enabled`` is false)."""

    enabled: bool = True
    batch_s: float = 0.0
    """Local changes wait this long to be flushed together; 0: at the end of each
    input (the runtime already hands the engine a burst of calls as one input)."""
    anti_entropy_interval_s: float = 2.0
    """A random live member is sent a :class:`Summary` this often."""
    max_delta_bytes: int = 32 * 1024
    """The largest delta broadcast (at most ``broadcast.max_broadcast_bytes``)."""
    max_owners: int = 10_000
    max_owner_bytes: int = 4 * 1024 * 1024
    """One owner's entries, at most (an upper bound of their encoded size)."""
    fanout_members: int = 64
    """In a cluster of at most this many other live members, a delta that fits
    a datagram also goes straight to each of them (one hop; the tree's copy
    stays the reliable one).  0: the tree alone."""
    max_datagram_bytes: int = 1_024
    """The largest delta sent by datagram (fitted to the wire by the presets)."""
    unknown_owner_s: float = 30.0
    """Entries of an owner SWIM has not heard of are dropped after this."""
    gap_wait_s: float = 0.5
    """A delta that came before the one it follows waits this long for it
    before the owner is pulled whole."""
    pull_timeout_s: float = 5.0
    confirm_retry_s: float = 0.5
    confirm_timeout_s: float = 10.0
    rank: Resolver | None = field(default=None, compare=False)
    """A claim's rank (the smallest wins; ``names.default_rank`` when None);
    the same on every node."""

    def __post_init__(self) -> None:
        owner = "RegistryConfig"
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"{owner}.enabled must be a bool, got {self.enabled!r}")
        if not isinstance(self.batch_s, int | float) or not 0 <= self.batch_s <= 1:
            raise ConfigError(f"{owner}.batch_s must be between 0 and 1 s, got {self.batch_s!r}")
        for name in (
            "anti_entropy_interval_s",
            "gap_wait_s",
            "unknown_owner_s",
            "pull_timeout_s",
            "confirm_retry_s",
            "confirm_timeout_s",
        ):
            check_positive(owner, name, getattr(self, name))
        check_int(owner, "max_delta_bytes", self.max_delta_bytes, 1024, 64 * 1024 * 1024)
        check_int(owner, "max_owners", self.max_owners, 1, 1_000_000)
        check_int(owner, "fanout_members", self.fanout_members, 0, 10_000)
        check_int(owner, "max_datagram_bytes", self.max_datagram_bytes, 0, 65_507)
        check_int(owner, "max_owner_bytes", self.max_owner_bytes, 1024, 1 << 31)
        if self.rank is not None and not callable(self.rank):
            raise ConfigError(f"{owner}.rank must be callable, got {self.rank!r}")

    @classmethod
    def lan(cls) -> RegistryConfig:
        return cls()

    @classmethod
    def wan(cls) -> RegistryConfig:
        return cls(batch_s=0.01, anti_entropy_interval_s=5.0, pull_timeout_s=10.0)

    @classmethod
    def local(cls) -> RegistryConfig:
        return cls(anti_entropy_interval_s=1.0)


@dataclass(slots=True)
class RegistryStats:
    """Counters of the ``registry`` part."""

    deltas_sent: int = counter("Deltas of this node's entries broadcast.")
    deltas_received: int = counter("Deltas applied from other owners.")
    deltas_old: int = counter("Deltas this node already held.")
    deltas_gone: int = counter("Deltas of an owner life that is dead or left here.")
    deltas_refused: int = counter("Deltas refused: malformed, or over a bound.")
    gaps: int = counter("Deltas that showed a missed one (the owner is pulled).")
    pulls: int = counter("Owners pulled whole.")
    wholes_sent: int = counter("Owners' entries sent whole.")
    anti_entropy_rounds: int = counter("Summaries sent to a random member.")
    exchanges: int = counter("Digest exchanges (summaries that differed, joins, heals).")
    repairs: int = counter("Owners whose entries an exchange or pull brought.")
    owners_dropped: int = counter("Owner lives dropped: dead, left, restarted or unknown.")
    conflicts: int = counter("Names this node saw claimed by more than one node.")
    names_lost: int = counter("This node's claims withdrawn because another won.")
    malformed: int = counter("Registry broadcasts that did not decode.")
    shed: int = counter("Deltas not broadcast (over broadcast's limit); sent whole later.")
    fanned_out: int = counter("Small deltas sent straight to a member by datagram.")
    early_shed: int = counter("Deltas that came early and found the hold full (owner pulled).")
    exchanges_deferred: int = counter(
        "Summaries that differed while deltas were arriving (no exchange opened)."
    )


# --------------------------------------------------------------------------
# The part


@dataclass(slots=True)
class _Confirm:
    name: str
    lamport: int
    targets: dict[str, Address]
    deadline: float
    held: set[str] = field(default_factory=set)
    lost_to: Claim | None = None
    done: bool = False


class RegistryPart:
    """The node's ``registry`` part; see the module docstring."""

    name = "registry"
    messages: tuple[type[Message], ...] = (
        RegistryNews,
        Summary,
        Digest,
        Entries,
        Pull,
        ClaimCheck,
        ClaimAnswer,
    )
    subscribes: tuple[type, ...] = (*MEMBER_EVENTS, Delivered, NeighborUp)

    def __init__(self, me: NodeId, rng: random.Random, config: RegistryConfig) -> None:
        self.me = me
        self.rng = rng
        self.config = config
        self.table = OwnerTable(
            me.name,
            me.epoch,
            max_owners=config.max_owners,
            max_owner_bytes=config.max_owner_bytes,
        )
        self.groups = TableGroups(self.table)
        self.names = NameIndex(config.rank)
        self.stats = RegistryStats()
        self._out = Outbox()
        self._live: dict[str, tuple[int, Address]] = {}
        self._unknown: dict[str, float] = {}  # owners held that SWIM has not heard of
        self._changes: list[Change] = []
        self._touched: set[str] = set()  # names changed in this input
        self._lost: list[NameLost] = []
        self._lost_log: deque[tuple[str, Claim, Claim]] = deque(maxlen=MAX_CONFIRMS)
        self._flush_at: float | None = None
        self._pulls: dict[str, float] = {}  # owner -> until when a pull is in flight
        # owner -> (epoch, base) -> a delta that came before the ones it follows
        self._early: dict[str, dict[tuple[int, int], OwnerDelta]] = {}
        self._early_count = 0
        self._news_at = -1e18  # when a delta last brought news
        self._deferred = False  # the last differing summary opened no exchange
        self._gap_timers: set[tuple[str, str]] = set()
        self._tree = False
        self._synced = False
        self._summary: tuple[bytes, int] | None = None
        self._confirms: dict[tuple[str, int], _Confirm] = {}
        self._view: RegistryView | None = None
        self._view_stale = True

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        self._out.set_timer("anti-entropy", now + self._jitter())

    def handle(self, sender: Address, message: Message, now: float) -> None:
        match message:
            case RegistryNews():
                self._take_news(message, now)
            case Summary(hash=hash):
                if hash == self._digest_hash()[0]:
                    pass
                elif (
                    now - self._news_at < self.config.anti_entropy_interval_s and not self._deferred
                ):
                    # Deltas are arriving: a difference now is most likely one in
                    # flight, and an exchange would ship whole owners to fix it.
                    # Once only: the next difference opens one, news or not.
                    self._deferred = True
                    self.stats.exchanges_deferred += 1
                else:
                    self._deferred = False
                    self._exchange(sender)
            case Digest(versions=versions):
                self._answer_digest(sender, versions)
            case Entries(deltas=deltas, wants=wants, last=last):
                self._take_entries(sender, deltas, now)
                if not last:
                    self._ship(sender, wants[:MAX_WANTS], last=True)
                self._out.close_stream(sender)
            case Pull(owners=owners):
                self._ship(sender, owners[:MAX_WANTS], last=True)
                self._out.close_stream(sender)
            case ClaimCheck(name=name, lamport=lamport):
                self._answer_check(sender, name, lamport)
            case ClaimAnswer():
                self._take_answer(sender, message)

    def on_timer(self, key: TimerKey, now: float) -> None:
        if key == "flush":
            self._flush_at = None
            self._flush()
        elif key == "anti-entropy":
            self._anti_entropy(now)
            self._out.set_timer("anti-entropy", now + self._jitter())
        elif isinstance(key, tuple) and key[0] == "confirm":
            self._confirm_tick(key[1], key[2], now)
        elif isinstance(key, tuple) and key[0] == "gap" and isinstance(key[1], str):
            self._gap_expired(key[1], now)

    def on_stream_up(self, peer: Address, now: float) -> None:
        """Exchanges start by sending; nothing to do."""

    def on_stream_down(self, peer: Address, now: float) -> None:
        """An exchange cut short: the next round repairs what it did not."""

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, Delivered):
            if event.channel == REGISTRY_CHANNEL and event.origin != self.me.name:
                self._take_payload(event.payload, now)
        elif isinstance(event, NeighborUp):
            if not self._tree:
                self._tree = True
                self._announce()
        elif isinstance(event, MEMBER_EVENTS):
            self._on_member(event, now)

    def drain(self) -> list[Effect]:
        if self._touched:
            self._check_claims()
        if self._changes:
            self._view_stale = True
            self._out.emit(RegistryChanged(tuple(self._changes)))
            self._changes = []
        for lost in self._lost:
            self._out.emit(lost)
        self._lost = []
        if self.config.batch_s == 0 and self.table.pending():
            self._flush()
        return self._out.drain()

    # ---------------------------------------------------------------- the application

    def join(self, scope: str, group: str, member: str, now: float, times: int = 1) -> int:
        """``member`` of this node joins ``group`` of ``scope``; how many times it is in it now."""
        return self._write_group(self.table.join, "join", scope, group, member, now, times)

    def leave(self, scope: str, group: str, member: str, now: float, times: int = 1) -> int:
        """Undo ``times`` joins; LocalError if ``member`` joined fewer times."""
        return self._write_group(self.table.leave, "leave", scope, group, member, now, times)

    def _write_group(
        self,
        write: Callable[[GroupKey, list[Change], int], int],
        method: str,
        scope: str,
        group: str,
        member: str,
        now: float,
        times: int,
    ) -> int:
        key = (
            check_text(method, "scope", scope),
            check_text(method, "group", group),
            check_text(method, "member", member),
        )
        _check_times(method, times)
        start = len(self._changes)
        count = write(key, self._changes, times)
        self._local_change(now, start)
        return count

    def register(self, name: str, member: str, now: float) -> Claim:
        """Claim ``name`` for ``member`` unless another node's claim wins here;
        the winning claim after (this node's if it registered)."""
        return self._register("register", name, member, now, keep_rank=False)

    def re_register(self, name: str, member: str, now: float) -> Claim:
        """This node's claim on ``name`` now names ``member`` (its rank kept); a
        free name is registered; another node's winning claim is returned as is."""
        return self._register("re_register", name, member, now, keep_rank=True)

    def _register(self, method: str, name: str, member: str, now: float, keep_rank: bool) -> Claim:
        check_text(method, "name", name)
        check_text(method, "member", member)
        lamport, winner = self.names.decide(name, self.me.name, member, keep_rank=keep_rank)
        if not lamport:
            assert winner is not None
            return winner
        return self.claim(name, member, lamport, now)

    def unregister(self, name: str, now: float) -> bool:
        """Withdraw this node's claim on ``name``; False if it held none.  LocalError if
        another node holds it (only an owner withdraws its claim)."""
        check_text("unregister", "name", name)
        holds = self.table.own_claim(name) is not None
        if not self.names.releasable(name, self.me.name, holds):
            return False
        start = len(self._changes)
        self.table.withdraw(name, self._changes)
        self._local_change(now, start)
        return True

    def claim(self, name: str, member: str, lamport: int, now: float) -> Claim:
        """Claim ``name`` at ``lamport`` whatever this node knows (the runtime's
        facade decided; the rules resolve any conflict).  The winner after."""
        start = len(self._changes)
        self.table.claim(name, member, lamport, self._changes)
        self._local_change(now, start)
        winner = self.names.winner(name)
        assert winner is not None
        return winner

    def apply_ops(self, ops: Sequence[tuple[Any, ...]], now: float) -> None:
        """The runtime's batch of the application's calls, already checked by its
        facade, with absolute values: ``("set", scope, group, member, count)``,
        ``("claim", name, member, lamport)``, ``("withdraw", name)``."""
        start = len(self._changes)
        for op in ops:
            try:
                match op:
                    case ("set", scope, group, member, count):
                        self.table.set_count((scope, group, member), count, self._changes)
                    case ("claim", name, member, lamport):
                        self.table.claim(name, member, lamport, self._changes)
                    case ("withdraw", name):
                        self.table.withdraw(name, self._changes)
            except LocalError:
                continue  # the facade's ledger refused it first; never reached
        self._local_change(now, start)

    def confirm(self, name: str, now: float) -> int:
        """Ask every live member whether this node's claim on ``name`` wins there;
        the claim's Lamport time (the view's :class:`Confirmation` tracks it).
        LocalError if this node holds no claim on ``name``."""
        held = self.table.own_claim(name)
        if held is None:
            raise LocalError(f"confirm: this node holds no claim on {name!r}")
        lamport = held[1]
        targets = {n: a for n, (_, a) in self._live.items() if n != self.me.name}
        state = _Confirm(name, lamport, targets, now + self.config.confirm_timeout_s)
        self._confirms[(name, lamport)] = state
        while len(self._confirms) > MAX_CONFIRMS:
            del self._confirms[next(iter(self._confirms))]
        self._view_stale = True
        self._flush()  # the claim travels before the checks
        self._confirm_tick(name, lamport, now)
        return lamport

    # ---------------------------------------------------------------- views

    def view(self) -> RegistryView:
        if self._view_stale or self._view is None:
            self._view_stale = False
            self._view = RegistryView(
                part=self,
                owners=tuple(
                    (o, *(self.table.version(o) or (0, 0)), self.table.entries(o))
                    for o in self.table.owners()
                ),
                groups=self.groups.entries(),
                names=len(self.names),
                conflicts=tuple(sorted(self.names.conflicts())),
                confirms=tuple(self._confirmation(c) for c in self._confirms.values()),
                lost=tuple(self._lost_log),
            )
        return self._view

    def describe(self, event: object) -> EventNote | None:
        if isinstance(event, NameLost):
            w = event.winner
            return EventNote(
                "name-lost",
                detail=f"{event.name!r} ({event.lost.member}) lost to {w.node}'s {w.member}, "
                f"the earlier claim (Lamport {w.lamport}, this one {event.lost.lamport}; "
                "ties go to the lower node name); withdrawn",
                severity="warning",
            )
        if isinstance(event, RegistryChanged):
            return EventNote("registry", detail=f"{len(event.changes)} changes", severity="debug")
        return None

    # ---------------------------------------------------------------- inside: local

    def _local_change(self, now: float, start: int) -> None:
        self._index(start)
        self._summary = None
        if self.config.batch_s and self._flush_at is None and self.table.pending():
            self._flush_at = now + self.config.batch_s
            self._out.set_timer("flush", self._flush_at)

    def _flush(self) -> None:
        if self._flush_at is not None:
            self._out.cancel_timer("flush")
            self._flush_at = None
        for delta in self.table.flush(self.config.max_delta_bytes):
            news = RegistryNews((delta,))
            try:
                payload = registry.encode(news, self.config.max_delta_bytes + DELTA_OVERHEAD)
            except LocalError:
                self.stats.shed += 1  # strings longer than estimated: peers pull it whole
                continue
            self.stats.deltas_sent += 1
            self._out.emit(Publish(REGISTRY_CHANNEL, payload))
            self._fan_out(news, len(payload))
        self._summary = None

    def _fan_out(self, news: RegistryNews, size: int) -> None:
        """A small delta also goes straight to every live member, one datagram each:
        one hop instead of the tree's several.  The tree's copy is the reliable one
        (a lost datagram costs nothing), so only clusters up to ``fanout_members``
        pay the origin's N sends."""
        limit = self.config.fanout_members
        if not limit or size > self.config.max_datagram_bytes:
            return
        others = [a for n, (_, a) in self._live.items() if n != self.me.name]
        if len(others) > limit:
            return
        for address in others:
            self._out.datagram(address, news)
        self.stats.fanned_out += len(others)

    def _announce(self) -> None:
        """Tell the tree this node's version, so nodes that missed deltas pull."""
        version = self.table.version(self.me.name)
        if version is not None and version[1] > 0:
            news = RegistryNews((), ((self.me.name, *version),))
            self._out.emit(Publish(REGISTRY_CHANNEL, registry.encode(news)))

    # ---------------------------------------------------------------- inside: remote

    def _take_payload(self, payload: bytes, now: float) -> None:
        try:
            news = registry.decode(payload, len(payload))
        except WireError:
            news = None
        if not isinstance(news, RegistryNews):
            self.stats.malformed += 1
            return
        self._take_news(news, now)

    def _take_news(self, news: RegistryNews, now: float) -> None:
        for delta in news.deltas:
            result = self._apply(delta, now)
            if result is Applied.NEWS:
                self._catch_up(delta.owner, now)
            elif result is Applied.GAP:
                self._hold(delta, now)
        for owner, epoch, version in news.versions:
            held = self.table.version(owner)
            newer = held is None or (epoch, version) > held
            if newer and not self.table.refuses(owner, epoch):
                self._pull(owner, now)

    def _hold(self, delta: OwnerDelta, now: float) -> None:
        """A delta that came before the one it follows (a datagram that overtook
        the tree, a graft that overtook a payload): held ``gap_wait_s`` for the
        missing ones, which are usually on their way; the owner is pulled whole
        only if they do not come."""
        held = self._early.setdefault(delta.owner, {})
        key = (delta.epoch, delta.base)
        if key in held:
            return
        if self._early_count >= MAX_EARLY:
            self.stats.early_shed += 1  # no room to wait: the owner is pulled now
            self._pull(delta.owner, now)
            return
        held[key] = delta
        self._early_count += 1
        if ("gap", delta.owner) not in self._gap_timers:
            self._gap_timers.add(("gap", delta.owner))
            self._out.set_timer(("gap", delta.owner), now + self.config.gap_wait_s)

    def _catch_up(self, owner: str, now: float) -> None:
        """Apply the held deltas that now follow on."""
        early = self._early.get(owner)
        while early:
            version = self.table.version(owner)
            if version is None:
                break
            epoch, at = version
            # Covered: an older life's, or this life's up to its version.  A
            # newer life's wait: the table moves to that life by its first delta.
            for key in [k for k, d in early.items() if (d.epoch, d.version) <= (epoch, at)]:
                del early[key]
                self._early_count -= 1
            delta = early.pop((epoch, at), None)
            if delta is None:
                break
            self._early_count -= 1
            if self._apply(delta, now) is not Applied.NEWS:
                break
        if early is not None and not early:
            del self._early[owner]
            if ("gap", owner) in self._gap_timers:
                self._gap_timers.discard(("gap", owner))
                self._out.cancel_timer(("gap", owner))

    def _gap_expired(self, owner: str, now: float) -> None:
        self._gap_timers.discard(("gap", owner))
        early = self._early.pop(owner, None)
        if early:
            self._early_count -= len(early)
            self.stats.gaps += 1
            self._pull(owner, now)

    def _apply(self, delta: OwnerDelta, now: float) -> Applied:
        before = len(self._changes)
        result = self.table.apply(delta, self._changes)
        match result:
            case Applied.NEWS:
                self.stats.deltas_received += 1
                self._news_at = now
                self._summary = None
                if delta.owner not in self._live:
                    self._unknown.setdefault(delta.owner, now)
            case Applied.OLD:
                self.stats.deltas_old += 1
            case Applied.GONE:
                self.stats.deltas_gone += 1
            case Applied.REFUSED:
                self.stats.deltas_refused += 1
            case Applied.GAP:
                pass
        self._index(before)
        return result

    def _index(self, start: int) -> None:
        """Apply the name changes from ``start`` on to the name index (the table is
        the groups' index here: ``TableGroups``)."""
        names = [c for c in self._changes[start:] if not isinstance(c, GroupChange)]
        if not names:
            return
        # Only a second claim can make one lose; a withdrawal never does.
        self._touched.update(self.names.apply_all(names))

    def _pull(self, owner: str, now: float) -> None:
        live = self._live.get(owner)
        if live is None or self._pulls.get(owner, 0.0) > now:
            return
        self._pulls[owner] = now + self.config.pull_timeout_s
        if len(self._pulls) > self.config.max_owners:
            self._pulls = {o: t for o, t in self._pulls.items() if t > now}
        self.stats.pulls += 1
        self._out.stream(live[1], Pull((owner,)))

    def _take_entries(self, sender: Address, deltas: tuple[OwnerDelta, ...], now: float) -> None:
        for delta in deltas:
            if self._apply(delta, now) is Applied.NEWS:
                self.stats.repairs += 1
                self._pulls.pop(delta.owner, None)
                self._catch_up(delta.owner, now)

    def _ship(self, to: Address, owners: Sequence[str], *, last: bool) -> None:
        if self.table.pending():
            self._flush()  # what is shipped is what the tree carries
        deltas = []
        for owner in owners:
            whole = self.table.whole(owner)
            if whole is not None and whole.version > 0:
                deltas.append(whole)
        self.stats.wholes_sent += len(deltas)
        self._out.stream(to, Entries(tuple(deltas), (), last))

    # ---------------------------------------------------------------- inside: anti-entropy

    def _jitter(self) -> float:
        interval = self.config.anti_entropy_interval_s
        return interval * (0.5 + self.rng.random())

    def _digest_hash(self) -> tuple[bytes, int]:
        if self._summary is None:
            versions = sorted(self._versions())
            text = ";".join(f"{o},{e},{v}" for o, e, v in versions).encode()
            self._summary = (hashlib.blake2b(text, digest_size=16).digest(), len(versions))
        return self._summary

    def _versions(self) -> tuple[tuple[str, int, int], ...]:
        """Per-owner versions of the owners with entries: what a digest compares."""
        return tuple(d for d in self.table.digest(self.table.owners()) if d[2] > 0)

    def _anti_entropy(self, now: float) -> None:
        start = len(self._changes)
        for owner, since in list(self._unknown.items()):
            if owner in self._live:
                del self._unknown[owner]
            elif now - since >= self.config.unknown_owner_s:
                del self._unknown[owner]
                version = self.table.version(owner)
                if version is not None:
                    self._drop(owner, version[0])
        self._index(start)
        for (name, lamport), state in list(self._confirms.items()):
            if state.done and now > state.deadline + 60:
                del self._confirms[(name, lamport)]
        others = [a for n, (_, a) in self._live.items() if n != self.me.name]
        if not others:
            return
        self.stats.anti_entropy_rounds += 1
        hash, count = self._digest_hash()
        self._out.datagram(self.rng.choice(sorted(others)), Summary(hash, count))

    def _exchange(self, peer: Address) -> None:
        self.stats.exchanges += 1
        if self.table.pending():
            self._flush()
        self._out.stream(peer, Digest(self._versions()))

    def _answer_digest(self, sender: Address, versions: tuple[tuple[str, int, int], ...]) -> None:
        theirs = {}
        for owner, epoch, version in versions[: self.config.max_owners]:
            theirs[owner] = (epoch, version)
        mine = {o: (e, v) for o, e, v in self._versions()}
        ship = [o for o, ev in mine.items() if theirs.get(o, (0, 0)) < ev]
        wants = []
        for owner, ev in theirs.items():
            if owner == self.me.name or mine.get(owner, (0, 0)) >= ev:
                continue
            if not self.table.refuses(owner, ev[0]):
                wants.append(owner)
        if self.table.pending():
            self._flush()
        deltas = [w for w in (self.table.whole(o) for o in ship) if w is not None]
        self.stats.wholes_sent += len(deltas)
        self._out.stream(sender, Entries(tuple(deltas), tuple(wants), last=False))

    # ---------------------------------------------------------------- inside: SWIM

    def _on_member(self, event: object, now: float) -> None:
        member = event.member  # type: ignore[attr-defined]
        name, epoch = member.name, member.epoch
        if name == self.me.name:
            return
        start = len(self._changes)
        if member.status.live:
            back = name not in self._live
            self._live[name] = (epoch, member.address)
            self._unknown.pop(name, None)
            self.table.revive(name, epoch)
            held = self.table.version(name)
            if held is not None and held[0] < epoch:
                self._drop(name, held[0])
            if isinstance(event, MemberJoined):
                previous = event.previous
                if previous is not None and previous.epoch < epoch:
                    self._drop(name, previous.epoch)
                if not self._synced:
                    self._synced = True  # a joining node pulls what it lacks once
                    self._exchange(member.address)
                elif back and previous is not None:
                    # Back: a heal, or a refuted death.  One exchange each: the
                    # owners this node refused until now come with the member.
                    self._exchange(member.address)
        elif isinstance(event, MemberDead | MemberLeft):
            self._live.pop(name, None)
            self._drop(name, epoch)
        else:  # reaped
            self._live.pop(name, None)
        self._index(start)

    def _drop(self, owner: str, epoch: int) -> None:
        early = self._early.pop(owner, None)
        if early:
            self._early_count -= len(early)
        if self.table.drop(owner, epoch, self._changes):
            self.stats.owners_dropped += 1
            self._summary = None

    # ---------------------------------------------------------------- inside: names

    def _check_claims(self) -> None:
        """Withdraw this node's claims that no longer win, once each."""
        touched, self._touched = self._touched, set()
        me = self.me.name
        names = self.names
        for name in sorted(touched):
            if names.claimants(name) < 2:
                continue  # resolved within the input
            self.stats.conflicts += 1
            own = names.claim_of(name, me)
            winner = names.winner(name)
            if own is None or winner is None or winner.node == me:
                continue
            start = len(self._changes)
            self.table.withdraw(name, self._changes)
            self.stats.names_lost += 1
            self._lost.append(NameLost(name, own, winner))
            self._lost_log.append((name, own, winner))
            self._local_change(0.0, start)  # a deadline passed: flushed at once
            self._touched.discard(name)

    def _answer_check(self, sender: Address, name: str, lamport: int) -> None:
        winner = self.names.winner(name)
        sender_name = next((n for n, (_, a) in self._live.items() if a == sender), "")
        seen = any(c.node == sender_name and c.lamport == lamport for c in self.names.claims(name))
        self._out.datagram(
            sender,
            ClaimAnswer(
                name,
                lamport,
                seen,
                winner.node if winner else "",
                winner.lamport if winner else 0,
            ),
        )

    def _take_answer(self, sender: Address, answer: ClaimAnswer) -> None:
        state = self._confirms.get((answer.name, answer.lamport))
        if state is None or state.done:
            return
        member = next((n for n, a in state.targets.items() if a == sender), None)
        if member is None or not answer.seen:
            return
        if answer.winner == self.me.name and answer.winner_lamport == answer.lamport:
            state.held.add(member)
        elif answer.winner:
            state.lost_to = self.names.winner(answer.name) or Claim(
                answer.name, answer.winner, 0, "", answer.winner_lamport
            )
            state.done = True
        if len(state.held) == len(state.targets):
            state.done = True
        self._view_stale = True

    def _confirm_tick(self, name: str, lamport: int, now: float) -> None:
        state = self._confirms.get((name, lamport))
        if state is None or state.done:
            return
        own = self.table.own_claim(name)
        # Done: out of time, withdrawn (lost) meanwhile, or every member holds it.
        if (
            now >= state.deadline
            or own is None
            or own[1] != lamport
            or (len(state.held) == len(state.targets))
        ):
            state.done = True
            self._view_stale = True
            return
        for member, address in sorted(state.targets.items()):
            if member not in state.held:
                self._out.datagram(address, ClaimCheck(name, lamport))
        self._out.set_timer(("confirm", name, lamport), now + self.config.confirm_retry_s)

    def _confirmation(self, state: _Confirm) -> Confirmation:
        return Confirmation(
            state.name,
            state.lamport,
            tuple(sorted(state.targets)),
            tuple(sorted(state.held)),
            state.lost_to,
            state.done,
        )


def _check_times(method: str, times: object) -> None:
    if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 1 << 30:
        raise LocalError(f"{method}: times must be a positive int, got {times!r}")


def _fit(config: RegistryConfig, room: WireRoom) -> RegistryConfig:
    limit = min(room.frame_bytes, room.stream_queue_bytes) // 2 - DELTA_OVERHEAD
    if config.max_owner_bytes > limit:
        config = dataclasses.replace(config, max_owner_bytes=max(1024, limit))
    if config.max_datagram_bytes > room.datagram_bytes:
        config = dataclasses.replace(config, max_datagram_bytes=max(0, room.datagram_bytes))
    return config


def _check(config: RegistryConfig, room: WireRoom, context: PartContext) -> None:
    if config.max_datagram_bytes > room.datagram_bytes:
        raise ConfigError(
            f"registry.max_datagram_bytes ({config.max_datagram_bytes}) must fit a datagram: "
            f"at most {room.datagram_bytes} with this wire and transport"
        )
    # An exchange ships wholes in one Entries; one whole must fit a frame and a queue.
    limit = min(room.frame_bytes, room.stream_queue_bytes) - DELTA_OVERHEAD
    if config.max_owner_bytes > limit:
        raise ConfigError(
            f"registry.max_owner_bytes ({config.max_owner_bytes}) must fit one stream "
            f"frame and queue: at most {limit} with this wire and transport"
        )


def _build(config: RegistryConfig, context: PartContext) -> PartFactory | None:
    if not config.enabled:
        return None

    def make(me: NodeId, rng: random.Random) -> RegistryPart:
        return RegistryPart(me, rng, config)

    return make


SPEC: PartSpec[RegistryConfig] = PartSpec("registry", RegistryConfig, _build, _fit, _check)
"""Groups and names in the node's catalogue: ``[registry]`` in TOML, ``NodeConfig.registry``."""
