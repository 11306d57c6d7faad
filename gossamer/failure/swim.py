"""SWIM: failure detection and membership with constant load per node.

Das, Gupta, Motivala, *SWIM: Scalable Weakly-consistent Infection-style
Process Group Membership Protocol*, DSN 2002, with the Lifeguard extensions
(``lifeguard.py``) and the push-pull state sync of memberlist.  One
:class:`SwimCore` is one node; it owns the node's :class:`MemberTable`.

The algorithm
-------------
* **Join**: a node given seed addresses sends each a :class:`PushPull` over a
  stream carrying its whole table; the seed merges it and answers with its
  own (:class:`PushPullReply`).  Until one answer arrives the node retries
  every ``join_retry_interval_s``.  Once joined, it syncs once more with a
  random member 0.5-1.5 probe intervals later, to pick up whoever joined at
  the same time.
* **Probe**: every probe interval the node pings the next member of a list
  of all live members, shuffled with the node's ``Random`` at the start of
  each round (round-robin, so every member is probed once per round).  No
  ack within the probe timeout: it asks ``indirect_checks`` random alive
  members to ping the target for it (:class:`PingReq`); they relay the ack,
  or with Lifeguard answer :class:`Nack` when the target stays silent.  No
  ack at all by the end of the interval: the target is *suspect*.
  The ticks sit on a grid the cluster shares (``probe_grid``): whole
  multiples of the interval on the wall clock, which the driver passes as
  an offset to ``now`` read at boot.  So a node's tick, the ping it answers
  and the ack it gets come within a millisecond of each other rather than
  at three random moments, and nodes in one process tick in one wake-up;
  the clock only places the ticks, so a skewed one costs that and nothing
  else.
* **Suspicion**: a suspect member is declared *dead* when its suspicion
  times out (``lifeguard.Suspicion``: from ``max`` down toward ``min`` as
  independent members confirm it).  A member that hears it is suspected (or
  declared dead) refutes: it raises its incarnation and announces itself
  alive, which overrides the suspicion everywhere (``members.py``).
* **Dissemination**: every change to the table is queued and piggybacked on
  every datagram the node sends (pings, acks, ping-reqs, nacks) and on
  gossip datagrams sent every ``gossip_interval_s`` to ``gossip_nodes``
  random members while news is pending.  Each piece of news is sent
  ``retransmit_mult * ceil(log10(n + 1))`` times, the least-sent first;
  newer news about a member replaces older in the queue; a datagram holds as
  many claims as fit in ``max_payload_bytes``.
* **Corrections**: a datagram carrying a claim older than ours is answered
  with the newer claim, so a member that missed a refutation (gossip sends
  each piece of news a fixed number of times) is put right as soon as it
  repeats the stale news.
* **Push-pull**: every ``push_pull_interval_s`` (scaled up past 32 members)
  the node syncs its whole table with one random alive member over a stream,
  repairing whatever gossip lost.  A death in a full state that this node
  has not seen is taken as a suspicion, so the member can still refute.  The
  same tick also tries one member it believes dead (or a seed it does not
  see alive), which is how two sides of a healed partition find each other
  again.
* **Leave**: the node announces itself *left* under a higher incarnation and
  stops probing; it goes on gossiping until its driver stops it.
* **One name, one node** (``names.py``): a seed refuses a join under a name
  that a member it believes alive holds at another address
  (:class:`~gossamer.failure.names.RefusedJoin`); a suspect or dead holder
  does not block, so a restart elsewhere still gets in.  A node that hears
  a life of its name that is not its own ranking above it refutes it loudly
  by taking the epoch right above that life; the life so refuted (it hears
  its name elsewhere under its own epoch plus one) yields: it takes no
  further part.  The tables converge on the holder's claim.

Invariants
----------
* The local node's epoch and incarnation only grow, and it is alive in its
  own table until it leaves or yields its name: every claim against it is
  refuted.
* Every queue is bounded and what is shed is counted in :class:`SwimStats`:
  the broadcast queue (``max_queued_updates``; a claim too big for any
  datagram is shed at once), the ack relays kept for ping-reqs
  (``max_relays``), the table (``max_members``), the full state sent in a
  push-pull (``max_state_bytes``), the recent deaths gossiped to (64).  The
  probe round holds each name once, so it is bounded by the table.
* A probe suspects only the life and incarnation it probed; nacks count once
  per helper asked; nothing is sent to this node's own address.
* Iteration that reaches the wire is deterministic: the table is sorted by
  name, every random choice uses the injected ``Random``.
* No I/O and no clock: everything arrives as method calls with ``now``, and
  everything leaves as effects (``gossamer.effects``).
"""

from __future__ import annotations

__all__ = [
    "SPEC",
    "Ack",
    "Gossip",
    "Nack",
    "Ping",
    "PingReq",
    "PushPull",
    "PushPullReply",
    "SwimConfig",
    "SwimCore",
    "SwimStats",
    "check_metadata",
]

import dataclasses
import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gossamer.clocks import MAX_COUNTER
from gossamer.config import WireRoom, check_at_least, check_int, check_positive
from gossamer.effects import Effect, EventNote, Outbox, PartContext, PartFactory, PartSpec, TimerKey
from gossamer.errors import ConfigError, LocalError, WireError
from gossamer.failure.lifeguard import (
    Awareness,
    Suspicion,
    confirmations_needed,
    push_pull_scale,
    retransmit_limit,
    suspicion_timeout_max_s,
    suspicion_timeout_min_s,
)
from gossamer.failure.names import (
    JoinRefused,
    NameClash,
    NameRefused,
    RefusedJoin,
    blocking_holder,
    joiner_claim,
    name_note,
)
from gossamer.failure.refusals import MAX_TREE_CLAIMS, SWIM_CHANNEL, Closed, TreeNews, Witnesses
from gossamer.failure.view import SwimView
from gossamer.ids import Address, NodeId, parse_address
from gossamer.membership.hyparview import NeighborUp, PortClosed
from gossamer.membership.members import (
    Claim,
    Member,
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberSuspect,
    MemberTable,
    MemberUpdated,
    Status,
    as_stored,
    claim_order,
    valid_identity,
)
from gossamer.membership.plumtree import Delivered, Publish
from gossamer.observe import SHED, Family, counter
from gossamer.transmit import TransmitQueue
from gossamer.wire import Message, registry

# --------------------------------------------------------------------------
# Messages (SWIM's block of type ids is 1..31, wire.TYPE_ID_RANGES; append only).


@registry.message(1)
@dataclass(frozen=True, slots=True)
class Ping(Message):
    """A probe of ``target`` (by name, so a new node at an old address does not answer)."""

    seq: int
    target: str
    updates: tuple[Claim, ...] = ()


@registry.message(2)
@dataclass(frozen=True, slots=True)
class Ack(Message):
    """The answer to :class:`Ping` number ``seq``, direct or relayed."""

    seq: int
    updates: tuple[Claim, ...] = ()


@registry.message(3)
@dataclass(frozen=True, slots=True)
class PingReq(Message):
    """Ping ``target`` for me and relay its ack as my ``seq``; nack if it is silent."""

    seq: int
    target: str
    target_address: Address
    nack: bool
    updates: tuple[Claim, ...] = ()


@registry.message(4)
@dataclass(frozen=True, slots=True)
class Nack(Message):
    """Lifeguard: the target of :class:`PingReq` ``seq`` did not answer me either."""

    seq: int
    updates: tuple[Claim, ...] = ()


@registry.message(5)
@dataclass(frozen=True, slots=True)
class Gossip(Message):
    """News only: claims piggybacked on nothing."""

    updates: tuple[Claim, ...]


@registry.message(6)
@dataclass(frozen=True, slots=True)
class PushPull(Message):
    """Sent on a stream: my whole table; answer with yours.  ``join`` on a first contact."""

    join: bool
    members: tuple[Claim, ...]


@registry.message(7)
@dataclass(frozen=True, slots=True)
class PushPullReply(Message):
    """The answer to :class:`PushPull`: the answerer's table before it merged the request."""

    members: tuple[Claim, ...]


_EMPTY_GOSSIP_BYTES = registry.encoded_size(Gossip(()))


def _claim_bytes(claim: Claim) -> int:
    """What one claim adds to a datagram's list of updates, exactly."""
    return registry.encoded_size(Gossip((claim,))) - _EMPTY_GOSSIP_BYTES


_ARRAY_HEADER_SLACK = 2  # msgpack's array header grows from 1 to 3 bytes past 15 items
_RECENT_DEATHS = 64  # members declared dead lately, kept to gossip to
_CLAIM_OVERHEAD_BYTES = 40  # a claim's encoding beyond its strings, at the most
_MIN_CLAIM_BYTES = 16  # no claim is smaller than this
_MAX_SEEDS = 256  # seeds and join() addresses kept for reconnecting
_REFUSAL_FIRST_GAP_S = 5.0  # a refused join is said at once, again after this, then doubling
_REFUSAL_MAX_GAP_S = 60.0
_MAX_CORRECTIONS = 2  # newer claims sent back for stale ones; each may carry 512 B of metadata
_NACK_AT = 0.8  # share of the time left for a nack to reach the prober in time
_VERIFY_AFTER_S = 0.1  # a node short of witnesses knocks itself 50-100 ms after a report


# --------------------------------------------------------------------------
# Configuration.


@dataclass(frozen=True, slots=True)
class SwimConfig:
    """Timing and bounds of SWIM and Lifeguard.  ``docs/configuration.md`` has the trade-offs."""

    probe_interval_s: float = 1.0
    """Time between two probes, in seconds (times the health multiplier)."""
    probe_timeout_s: float = 0.5
    """How long a direct ping waits for its ack before ping-reqs go out, in
    seconds (times the health multiplier); below ``probe_interval_s``."""
    indirect_checks: int = 3
    """Members asked to probe a silent target on our behalf (``k``)."""
    suspicion_mult: int = 4
    """Shortest suspicion = ``suspicion_mult * max(1, log10(n)) * probe_interval_s``;
    also ``suspicion_mult - 2`` confirmations shrink a suspicion to it."""
    suspicion_max_timeout_mult: float = 6.0
    """Longest suspicion = this times the shortest (Lifeguard)."""
    retransmit_mult: int = 4
    """Each piece of news is sent ``retransmit_mult * ceil(log10(n + 1))`` times."""
    gossip_interval_s: float = 0.2
    """Time between two gossip rounds while news is pending, in seconds."""
    gossip_nodes: int = 3
    """Members each gossip round sends to."""
    gossip_to_dead_s: float = 30.0
    """For how long, in seconds, members declared dead still receive gossip,
    so one that was wrongly declared hears it and refutes."""
    push_pull_interval_s: float = 30.0
    """Time between two full-state syncs, in seconds, before scaling with
    ``n`` (x ``ceil(log2(n) - 5) + 1`` past 32 members)."""
    join_retry_interval_s: float = 2.0
    """How often a node that has not heard from any seed asks again, in seconds."""
    max_payload_bytes: int = 1_400
    """Largest datagram SWIM builds, in bytes, piggybacked news included."""
    max_metadata_bytes: int = 512
    """Largest metadata a member may publish, in bytes; longer claims are refused."""
    probe_grid: bool = True
    """Probe ticks on a grid the cluster shares: whole multiples of
    ``probe_interval_s`` on the wall clock (as it read at boot).  Nodes then
    tick, ping and ack within the same millisecond, so each wakes fewer
    times and with warm caches, and nodes sharing a process share a
    wake-up.  Off: each node keeps its own random phase."""
    lifeguard: bool = True
    """Lifeguard on: health multiplier, nacks, dynamic suspicion, buddy system.
    Off: plain SWIM with a fixed suspicion timeout (the shortest)."""
    awareness_max_multiplier: int = 8
    """The health multiplier's ceiling: timeouts stretch at most this many times."""
    reap_dead_after_s: float = 3_600.0
    """How long a dead member stays in the table, in seconds, as a tombstone
    and as a peer to retry after a partition heals."""
    reap_left_after_s: float = 300.0
    """How long a member that left stays in the table, in seconds."""
    max_members: int = 100_000
    """Bound on the member table; claims about more names are refused and counted."""
    max_queued_updates: int = 8_192
    """Bound on the news waiting to be sent; the most-sent is shed first."""
    max_relays: int = 1_024
    """Bound on ping-reqs being relayed for other members at once."""
    refusal_witnesses: int = 3
    """Distinct members whose connection a member's port refused, after its
    link broke, that make it dead at once (``refusals.py``: the fast path to
    a crashed process); fewer in a cluster with fewer others.  0 turns the
    fast path off.  Needs the overlay (its links and knocks)."""
    max_state_bytes: int = 4 * 1024 * 1024
    """Bound on a full state sent in a push-pull, in bytes: live members
    first, then the newest tombstones.  Keep it below the stream frame limit
    (``WireConfig.max_frame_bytes``)."""

    def __post_init__(self) -> None:
        owner = "SwimConfig"
        for name in (
            "probe_interval_s",
            "probe_timeout_s",
            "gossip_interval_s",
            "gossip_to_dead_s",
            "push_pull_interval_s",
            "join_retry_interval_s",
            "reap_dead_after_s",
            "reap_left_after_s",
        ):
            check_positive(owner, name, getattr(self, name))
        check_at_least(owner, "suspicion_max_timeout_mult", self.suspicion_max_timeout_mult, 1)
        check_int(owner, "indirect_checks", self.indirect_checks, 0, 64)
        check_int(owner, "suspicion_mult", self.suspicion_mult, 1, 1_000)
        check_int(owner, "retransmit_mult", self.retransmit_mult, 1, 1_000)
        check_int(owner, "gossip_nodes", self.gossip_nodes, 1, 64)
        check_int(owner, "max_payload_bytes", self.max_payload_bytes, 256, 65_507)
        check_int(owner, "max_metadata_bytes", self.max_metadata_bytes, 0, 65_536)
        check_int(owner, "awareness_max_multiplier", self.awareness_max_multiplier, 1, 64)
        check_int(owner, "max_members", self.max_members, 1, 10_000_000)
        check_int(owner, "max_queued_updates", self.max_queued_updates, 1, 10_000_000)
        check_int(owner, "max_relays", self.max_relays, 1, 1_000_000)
        check_int(owner, "refusal_witnesses", self.refusal_witnesses, 0, 64)
        check_int(owner, "max_state_bytes", self.max_state_bytes, 1_024, 1 << 30)
        for flag in ("lifeguard", "probe_grid"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{owner}.{flag} must be a bool, got {getattr(self, flag)!r}")
        if self.probe_timeout_s >= self.probe_interval_s:
            raise ConfigError(
                f"{owner}.probe_timeout_s ({self.probe_timeout_s}) must be below "
                f"probe_interval_s ({self.probe_interval_s}): the indirect probes "
                "need the rest of the interval"
            )
        if self.max_metadata_bytes > self.max_payload_bytes // 2:
            raise ConfigError(
                f"{owner}.max_metadata_bytes ({self.max_metadata_bytes}) must be at most "
                f"half of max_payload_bytes ({self.max_payload_bytes}) so a claim fits a probe"
            )

    @classmethod
    def lan(cls) -> SwimConfig:
        """A data-centre network: the defaults (memberlist's LAN profile)."""
        return cls()

    @classmethod
    def wan(cls) -> SwimConfig:
        """Links across regions: slower probes, longer suspicion, smaller datagrams."""
        return cls(
            probe_interval_s=5.0,
            probe_timeout_s=3.0,
            suspicion_mult=6,
            gossip_interval_s=0.5,
            gossip_nodes=4,
            gossip_to_dead_s=60.0,
            push_pull_interval_s=60.0,
            join_retry_interval_s=5.0,
            max_payload_bytes=1_200,
        )

    @classmethod
    def local(cls) -> SwimConfig:
        """Every node on one machine: quick timeouts, one indirect check, less margin."""
        return cls(
            probe_timeout_s=0.2,
            indirect_checks=1,
            suspicion_mult=3,
            retransmit_mult=2,
            gossip_interval_s=0.1,
            gossip_to_dead_s=15.0,
            push_pull_interval_s=15.0,
            join_retry_interval_s=1.0,
        )


_DROPPED = Family(
    "gossamer_swim_dropped", "Inputs the SWIM core dropped or refused, by reason.", label="reason"
)


@dataclass(slots=True)
class SwimStats:
    """Counters of one node's SWIM core (monotonic; the debug endpoint shows them)."""

    probes: int = counter("Probes this node sent.")
    acks: int = counter("Acks to this node's own probes, direct or relayed.")
    """Acks to our own probes, direct or relayed, in time or late."""
    ping_reqs_sent: int = counter(
        "Indirect probes (ping-reqs) this node sent.", name="gossamer_swim_ping_reqs"
    )
    nacks_received: int = counter("Nacks received from ping-req helpers.")
    nacks_sent: int = counter("Nacks sent while relaying a ping-req.")
    suspicions: int = counter("Suspicions this node raised (a probe failed).")
    """Suspicions this node raised itself (its probe failed)."""
    refutations: int = counter("Times this node refuted a claim about itself.")
    """Times this node found itself suspected or declared dead and refuted."""
    deaths_declared: int = counter("Suspicions this node saw run out.")
    """Suspicions this node saw run out (it declared the member dead)."""
    push_pulls: int = counter("Full-state syncs this node started.")
    """Full-state syncs this node started."""
    joins_refused: int = counter(
        "Joins this node refused as a seed: a live member at another address holds the name."
    )
    name_clashes: int = counter(
        "Times another life claimed this node's name (it refuted it, or yielded)."
    )
    corrections: int = counter("Corrections sent to peers gossiping old news.")
    """Datagrams sent back to a peer that gossiped news older than ours."""
    stale_acks: int = _DROPPED.series("stale_acks")
    """Acks for no probe or relay of ours (late, duplicated, or forged)."""
    misdirected: int = _DROPPED.series("misdirected")
    """Pings for another name, ping-reqs naming this node or a bad address,
    datagrams addressed to this node itself, news of this name while leaving."""
    ignored: int = _DROPPED.series("ignored")
    """Messages of a type SWIM does not handle."""
    claims_refused: int = _DROPPED.series("claims_refused")
    """Claims refused: malformed, metadata too large, or counters out of range."""
    updates_shed: int = SHED.series("swim_updates")
    """News dropped from the full broadcast queue before it was sent enough times."""
    relays_shed: int = _DROPPED.series("relays_shed")
    """Ping-reqs refused because ``max_relays`` were already in flight."""
    state_truncated: int = _DROPPED.series("state_truncated")
    """Full states cut short to stay within ``max_state_bytes``."""
    refusals_witnessed: int = counter(
        "Members whose port refused this node after their link broke (reported down the tree)."
    )
    fast_deaths: int = counter("Members declared dead on witnessed refusals (the fast path).")
    tree_news: int = counter("Broadcasts of SWIM news received down the tree.")
    tree_malformed: int = _DROPPED.series("swim_tree_malformed")
    """Tree broadcasts on SWIM's channel that do not decode as its news."""


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    address: Address
    epoch: int
    incarnation: int  # the life and incarnation probed: only they may be suspected
    acked: bool = False
    direct: bool = True  # still waiting for the direct ack (no ping-req sent yet)
    helpers: frozenset[Address] = frozenset()  # asked by ping-req, expected to nack
    nackers: set[Address] = dataclasses.field(default_factory=set)


@dataclass(slots=True)
class _Relay:
    origin: Address
    origin_seq: int
    nack: bool
    expires: float  # after the nack, a late ack is still relayed until then


# --------------------------------------------------------------------------
# The core.


def check_metadata(metadata: object, config: SwimConfig) -> bytes:
    """``metadata`` if a node may publish it under ``config``; LocalError otherwise.

    The one place the rule lives: the core checks its first metadata and every
    update with it, and ``NodeConfig`` checks the metadata it is given.
    """
    if not isinstance(metadata, bytes):
        raise LocalError(f"metadata must be bytes, got {type(metadata).__name__}")
    if len(metadata) > config.max_metadata_bytes:
        raise LocalError(
            f"metadata is {len(metadata)} bytes, over max_metadata_bytes "
            f"({config.max_metadata_bytes})"
        )
    return metadata


class SwimCore:
    """One SWIM node (sans-IO; see the module docstring), and the node's ``swim`` part.

    ``seeds`` are addresses to join through (the node's own is skipped);
    with none, the node starts a cluster of its own.  ``metadata`` is
    published with the node's alive claims.
    """

    name = "swim"
    messages: tuple[type[Message], ...] = (
        Ping,
        Ack,
        PingReq,
        Nack,
        Gossip,
        PushPull,
        PushPullReply,
        RefusedJoin,
        TreeNews,
    )
    subscribes: tuple[type, ...] = (NeighborUp, PortClosed, Delivered)

    def __init__(
        self,
        me: NodeId,
        rng: random.Random,
        config: SwimConfig | None = None,
        *,
        seeds: Iterable[str] = (),
        metadata: bytes = b"",
        clock_offset_s: float = 0.0,
    ) -> None:
        self.config = cfg = config if config is not None else SwimConfig()
        self._clock_offset_s = clock_offset_s
        check_metadata(metadata, cfg)
        self.me = me
        self._rng = rng
        self._seeds = sorted({parse_address(s) for s in seeds} - {me.address})
        self._out = Outbox()
        self._started = False
        self.stats = SwimStats()
        self.awareness = Awareness(cfg.awareness_max_multiplier if cfg.lifeguard else 1)
        self.table = MemberTable(
            Claim(me.name, me.address, me.epoch, 0, Status.ALIVE, metadata, me.name),
            0.0,
            reap_dead_after_s=cfg.reap_dead_after_s,
            reap_left_after_s=cfg.reap_left_after_s,
            max_members=cfg.max_members,
        )
        """The member table.  Read it; only this core writes it."""
        self._queue: TransmitQueue[str, Claim] = TransmitQueue(
            cfg.max_queued_updates,
            cfg.max_payload_bytes - _EMPTY_GOSSIP_BYTES - _ARRAY_HEADER_SLACK,
            min_item_bytes=_MIN_CLAIM_BYTES,
        )
        self._suspicions: dict[str, Suspicion] = {}
        self._probe_list: list[str] = []
        self._in_round: set[str] = set()  # the names in _probe_list, so none goes in twice
        self._probe_index = 0
        self._recent_deaths: deque[tuple[float, str]] = deque(maxlen=_RECENT_DEATHS)
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._seq = 0
        self._joined = not self._seeds
        self._leaving = False
        self._asked: frozenset[Address] = frozenset()  # the last join()'s addresses
        self._answered: frozenset[Address] = frozenset()  # those of them that replied
        self._gossip_at = 0.0  # the gossip tick's next beat
        self._gossiping = False  # the gossip timer is set
        self._refused: JoinRefused | None = None  # the latest refusal of our join
        self._refusal_logged = (-1e18, 0.0)  # when the last refusal was emitted, the gap
        self._yielded: NodeId | None = None  # the life we gave the name up to
        self._changes = 0  # bumped whenever the table or the node's standing changes
        self._view: tuple[tuple[int, int, bool], SwimView] | None = None
        self._tree = False  # an overlay is there (a neighbour came up): news goes down it too
        self._quiet = False  # a death every node reaches alone: not sent down the tree
        self._tree_claims: list[Claim] = []
        self._tree_closed: list[Closed] = []
        self._witnesses = Witnesses()
        self._knocks: dict[Address, tuple[str, int]] = {}  # our knocks: whose life, by address
        self._fast: dict[tuple[str, int], int] = {}  # lives dead on witnesses: how many, lately

    # ---------------------------------------------------------------- views

    @property
    def local(self) -> Member:
        return self.table.local

    @property
    def incarnation(self) -> int:
        return self.table.local_claim.incarnation

    @property
    def joined(self) -> bool:
        """True once a seed answered (or at once, with no seeds)."""
        return self._joined

    @property
    def leaving(self) -> bool:
        return self._leaving

    def members(self) -> list[Member]:
        """Every member in the table, dead and left included, sorted by name."""
        return list(self.table)

    def member(self, name: str) -> Member | None:
        return self.table.get(name)

    def alive(self) -> list[str]:
        """Sorted names of the members believed alive, this node included."""
        return self.table.names(Status.ALIVE)

    def queued_updates(self) -> int:
        return len(self._queue)

    def suspicion_deadline(self, name: str) -> float | None:
        s = self._suspicions.get(name)
        return None if s is None else s.deadline

    def leave_spread(self) -> bool:
        """True once a leave has been sent as often as any news is (the queue
        is empty), or at once when no live member is left to tell."""
        return self._leaving and (
            self._yielded is not None or len(self._queue) == 0 or self.table.live_count() == 0
        )

    def view(self) -> SwimView:
        """The table and the node's standing; the same object until one of them changes."""
        key = (self._changes, self.awareness.score, self.leave_spread())
        cached = self._view
        if cached is not None and cached[0] == key:
            return cached[1]
        view = SwimView(
            tuple(self.table),
            self.table.local,
            self._joined,
            self._leaving,
            key[2],
            key[1],
            self._refused if not self._joined else None,
            self._yielded,
            self._answered,
        )
        self._view = (key, view)
        return view

    def describe(self, event: object) -> EventNote | None:
        """How a member event reads in a log: its kind and who caused it."""
        match event:
            case MemberJoined(member=m, previous=previous):
                restarted = previous is not None and previous.epoch < m.epoch
                return _note("restarted" if restarted else "joined", m)
            case MemberUpdated(member=m, previous=previous):
                note = _note("updated", m)
                if m.draining != previous.draining:
                    detail = "draining" if m.draining else "no longer draining"
                    return dataclasses.replace(note, detail=detail)
                return note
            case MemberSuspect(member=m, source=source):
                return _note("suspect", m, source)
            case MemberAlive(member=m):
                return _note("alive", m)
            case MemberDead(member=m, source=source):
                note = _note("dead", m, source)
                witnesses = self._fast.get((m.name, m.epoch))
                if witnesses is None:
                    return note
                detail = f"its port refused {witnesses} members after its links broke"
                return dataclasses.replace(note, detail=detail)
            case MemberLeft(member=m):
                return _note("left", m)
            case MemberReaped(member=m):
                return _note("reaped", m)
        return name_note(event)

    def on_event(self, event: object, now: float) -> None:
        """The overlay's evidence and the tree's news (``refusals.py``)."""
        if self._yielded is not None:
            return
        if isinstance(event, Delivered):
            if event.channel == SWIM_CHANNEL and event.origin != self.me.name:
                self._on_tree_news(event.origin, event.payload, now)
        elif isinstance(event, PortClosed):
            peer = event.peer
            if self._tree and self.config.refusal_witnesses:
                self._witnessed(peer.name, peer.address, peer.epoch, self.me.name, now)
        elif isinstance(event, NeighborUp):
            self._tree = True

    def _witnesses_needed(self) -> int:
        """``refusal_witnesses``, or every other member in a smaller cluster."""
        return max(1, min(self.config.refusal_witnesses, self.table.live_count() - 1))

    def _verify(self, address: Address, now: float) -> None:
        """Knock on a member others reported gone, if they are still too few."""
        knocked = self._knocks.get(address)
        if knocked is None:
            return
        name, epoch = knocked
        claim = self.table.claim(name)
        need = self._witnesses_needed()
        if (
            claim is None
            or not claim.status.live
            or claim.epoch != epoch
            or self._witnesses.count(name, epoch) >= need
        ):
            del self._knocks[address]
            return
        self._out.knock(address)

    def on_knock(self, peer: Address, listening: bool | None, now: float) -> None:
        """Our own look at a member others reported gone."""
        knocked = self._knocks.pop(peer, None)
        if knocked is not None and listening is False and self._yielded is None:
            self._witnessed(knocked[0], peer, knocked[1], self.me.name, now)

    def _on_tree_news(self, origin: str, payload: bytes, now: float) -> None:
        try:
            news = registry.decode(payload, len(payload))
        except WireError:
            news = None
        if not isinstance(news, TreeNews):
            self.stats.tree_malformed += 1
            return
        self.stats.tree_news += 1
        for claim in news.claims:
            self._process(claim, now)
        if self.config.refusal_witnesses:
            for closed in news.closed:
                self._witnessed(closed.name, closed.address, closed.epoch, origin, now)

    def _witnessed(self, name: str, address: Address, epoch: int, witness: str, now: float) -> None:
        """``witness`` found this life of ``name`` gone: count it, and declare
        the member dead once enough distinct witnesses agree."""
        claim = self.table.claim(name)
        if (
            name == self.me.name
            or claim is None
            or not claim.status.live
            or (claim.epoch, claim.address) != (epoch, address)
        ):
            return
        count = self._witnesses.add(name, epoch, witness)
        need = self._witnesses_needed()
        if witness == self.me.name:
            self.stats.refusals_witnessed += 1
            if count < need:  # the others need this report to reach their count
                self._tree_closed.append(Closed(name, address, epoch))
            if claim.status is Status.ALIVE:
                self.stats.suspicions += 1
                claim = dataclasses.replace(claim, status=Status.SUSPECT, source=self.me.name)
                self._process(claim, now)
        elif count < need and self._witnesses.first_knock(name, epoch):
            # Too few witnesses yet: see for ourselves, a moment later, by
            # when the reports of the member's other neighbours have most
            # often come (then no knock, and no report of ours, is needed).
            self._knocks[address] = (name, epoch)
            wait = self._rng.uniform(0.5, 1.0) * _VERIFY_AFTER_S
            self._out.set_timer(("verify", address), now + wait)
        held = self.table.claim(name)
        if count < need or held is None or not held.status.live or held.epoch != epoch:
            return
        self.stats.fast_deaths += 1
        self._fast[(name, epoch)] = count
        if len(self._fast) > _RECENT_DEATHS:
            del self._fast[next(iter(self._fast))]
        self._witnesses.forget(name)
        self._quiet = True
        try:
            self._process(dataclasses.replace(held, status=Status.DEAD, source=self.me.name), now)
        finally:
            self._quiet = False

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        if self._started:
            raise LocalError("start() is called once per life of a core")
        self._started = True
        cfg = self.config
        rng = self._rng
        self.table.booted(now)
        self._changes += 1
        interval = cfg.probe_interval_s
        # On the grid, the next point half an interval ahead or less; off it,
        # a random phase so nodes booted together do not probe in lockstep.
        if cfg.probe_grid:
            self._out.set_timer("probe", self._tick_at(now + interval / 2))
        else:
            self._out.set_timer("probe", now + rng.uniform(0, interval))
        self._gossip_at = now + rng.uniform(0, cfg.gossip_interval_s)
        self._enqueue(self.table.local_claim, now)
        self._out.set_timer("push-pull", now + rng.uniform(0.5, 1) * cfg.push_pull_interval_s)
        if self._seeds:
            self._join(now)

    def handle(self, sender: Address, message: Message, now: float) -> None:
        if self._yielded is not None:
            self.stats.ignored += 1  # the name is another node's now
            return
        match message:
            case Ping(seq=seq, target=target, updates=updates):
                self._merge(updates, now, sender)
                if target == self.me.name:
                    self._send(sender, Ack(seq))
                else:
                    self.stats.misdirected += 1
            case Ack(seq=seq, updates=updates):
                self._merge(updates, now, sender)
                self._on_ack(seq, now)
            case PingReq():
                self._merge(message.updates, now, sender)
                self._on_ping_req(sender, message, now)
            case Nack(seq=seq, updates=updates):
                self._merge(updates, now, sender)
                probe = self._probe
                if probe is not None and probe.seq == seq and sender in probe.helpers:
                    probe.nackers.add(sender)  # one per helper, however many arrive
                    self.stats.nacks_received += 1
            case Gossip(updates=updates):
                self._merge(updates, now, sender)
            case PushPull(join=join, members=members):
                if join and self._refuse_join(sender, members):
                    return
                # Answer with the table as it was, so the reply carries only news.
                self._out.stream(sender, PushPullReply(self._full_state(self.table.claims())))
                self._merge_state(members, now)
            case RefusedJoin(holder=holder):
                self._out.close_stream(sender)
                self._on_refused(sender, holder, now)
            case PushPullReply(members=members):
                self._merge_state(members, now)
                self._out.close_stream(sender)
                if sender in self._asked and sender not in self._answered:
                    self._answered |= {sender}
                    self._changes += 1
                if not self._joined:
                    self._joined = True
                    self._changes += 1
                    self._out.cancel_timer("join")
                    # Members joining at the same time are not in the seed's
                    # answer yet, and gossip can miss one; a second sync with
                    # a random member a moment later picks them up.
                    interval = self.config.probe_interval_s
                    self._out.set_timer("push-pull", now + self._rng.uniform(0.5, 1.5) * interval)
            case _:
                self.stats.ignored += 1

    def on_timer(self, key: TimerKey, now: float) -> None:
        if self._yielded is not None:
            return
        if key == "probe":
            self._probe_tick(now)
        elif key == "probe-timeout":
            self._probe_timeout(now)
        elif key == "gossip":
            self._gossip_tick(now)
        elif key == "push-pull":
            self._push_pull_tick(now)
        elif key == "join":
            if not self._joined:
                self._join(now)
        elif isinstance(key, tuple) and len(key) == 2:
            kind, arg = key
            if kind == "suspicion" and isinstance(arg, str):
                self._suspicion_timeout(arg, now)
            elif kind == "relay" and isinstance(arg, int):
                self._relay_timeout(arg, now)
            elif kind == "verify" and isinstance(arg, str):
                self._verify(Address(arg), now)

    def on_stream_up(self, peer: Address, now: float) -> None:
        """Streams carry only push-pull, which is sent as soon as it is asked for."""

    def on_stream_down(self, peer: Address, now: float) -> None:
        """A push-pull that broke is simply lost; the next tick (or join retry) tries again."""

    def drain(self) -> list[Effect]:
        if self._tree_claims or self._tree_closed:
            self._publish_tree()
        return self._out.drain()

    def _publish_tree(self) -> None:
        """Send the news this node made during the input down the tree."""
        claims, closed = self._tree_claims, tuple(self._tree_closed)
        self._tree_claims, self._tree_closed = [], []
        for i in range(0, max(len(claims), 1), MAX_TREE_CLAIMS):
            news = TreeNews(tuple(claims[i : i + MAX_TREE_CLAIMS]), closed)
            self._out.emit(Publish(SWIM_CHANNEL, registry.encode(news)))
            closed = ()

    # ---------------------------------------------------------------- the application

    def leave(self, now: float) -> None:
        """Announce that this node leaves: peers will see it *left*, not dead.

        The node stops probing and goes on gossiping the news; stop driving
        it once that has had time to spread (a few gossip intervals).
        """
        if self._leaving:
            return
        self._leaving = True
        self._changes += 1
        if self._yielded is not None:
            return  # the name is another node's: nothing to announce
        self._set_local(Status.LEFT, b"", now)  # tombstones keep no metadata
        self._out.cancel_timer("probe")
        self._out.cancel_timer("probe-timeout")
        self._probe = None

    def join(self, addresses: Iterable[str], now: float) -> None:
        """Sync with ``addresses`` now, as with seeds (a first join, or two
        clusters made one); they are kept as seeds for reconnecting.  The view's
        ``answered`` lists those that replied.  LocalError for a bad address."""
        if self._leaving or self._yielded is not None:
            raise LocalError("this node has left the cluster; it cannot join again")
        parsed = sorted({parse_address(a) for a in addresses} - {self.me.address})
        if len(self._seeds) + len(parsed) > _MAX_SEEDS:
            raise LocalError(f"at most {_MAX_SEEDS} seeds; {len(self._seeds)} are known")
        self._seeds = sorted({*self._seeds, *parsed})
        self._asked = frozenset(parsed)
        self._answered = frozenset()
        self._changes += 1
        state = self._full_state(self.table.claims())
        for address in parsed:
            self._out.stream(address, PushPull(True, state))

    def force_leave(self, name: str, now: float) -> None:
        """Mark the dead member ``name`` left, so it is reaped in
        ``reap_left_after_s`` instead of ``reap_dead_after_s``; if it is in fact
        alive it refutes, as it would a death.  LocalError for this node's own
        name, an unknown name, or a member not dead."""
        if name == self.me.name:
            raise LocalError("force_leave is for another member; this node leaves with leave()")
        held = self.table.claim(name)
        if held is None:
            raise LocalError(f"no member is named {name!r}")
        if held.status is not Status.DEAD:
            raise LocalError(
                f"{name} is {held.status.name.lower()}; only a dead member can be forced to leave"
            )
        self._process(dataclasses.replace(held, status=Status.LEFT, source=self.me.name), now)

    def update_metadata(self, metadata: bytes, now: float) -> None:
        """Publish new metadata under a higher incarnation.  A caller's mistake
        (not bytes, over ``max_metadata_bytes``, after leaving) raises LocalError."""
        check_metadata(metadata, self.config)
        if self._yielded is not None:
            raise LocalError(
                f"this node gave its name up to the node at {self._yielded.address}; "
                "it cannot publish metadata"
            )
        if self._leaving:
            raise LocalError("this node has left the cluster; it cannot publish metadata")
        self._set_local(Status.ALIVE, metadata, now)

    def set_draining(self, draining: bool, now: float) -> None:
        """Mark this node draining (or not) in the member table, under a higher
        incarnation: still a member, probed and probing, but given no new work
        (the ring leaves it out).  Nothing is published when nothing changes;
        LocalError after leaving or yielding the name."""
        if not isinstance(draining, bool):
            raise LocalError(f"set_draining: draining must be a bool, got {draining!r}")
        if self._yielded is not None or self._leaving:
            raise LocalError("this node has left the cluster (or yielded its name); cannot drain")
        local = self.table.local_claim
        if local.draining != draining:
            self._set_local(Status.ALIVE, local.metadata, now, draining=draining)

    # ---------------------------------------------------------------- probing

    def _probe_tick(self, now: float) -> None:
        cfg = self.config
        if self._probe is not None:
            self._finish_probe(self._probe, now)
        self._probe = None
        due = now + self.awareness.scale(cfg.probe_interval_s)
        self._out.set_timer("probe", self._tick_at(due))
        reaped = self.table.reap(now)  # on the probe's tick: one wake-up fewer a second
        if reaped:
            self._changes += 1
            self._emit_all(reaped)
        target = self._next_target()
        if target is None:
            return
        claim = self.table.claim(target)
        assert claim is not None
        self._seq += 1
        self._probe = _Probe(self._seq, target, claim.address, claim.epoch, claim.incarnation)
        self.stats.probes += 1
        # The buddy system: a suspect hears of its suspicion first, and refutes at once.
        first = (claim,) if cfg.lifeguard and claim.status is Status.SUSPECT else ()
        self._send(claim.address, Ping(self._seq, target), first)
        self._out.set_timer("probe-timeout", now + self.awareness.scale(cfg.probe_timeout_s))

    def _tick_at(self, due: float) -> float:
        """``due`` moved to the nearest point of the shared grid (``probe_grid``)."""
        cfg = self.config
        if not cfg.probe_grid:
            return due
        interval, shared = cfg.probe_interval_s, due + self._clock_offset_s
        return due + round(shared / interval) * interval - shared

    def _next_target(self) -> str | None:
        """The next live member in the shuffled round; reshuffle at the end of a round."""
        table = self.table
        for _ in range(2):
            while self._probe_index < len(self._probe_list):
                name = self._probe_list[self._probe_index]
                self._probe_index += 1
                claim = table.claim(name)
                if claim is not None and claim.status.live:
                    return name
            self._probe_list = [
                c.name for c in table.claims() if c.status.live and c.name != self.me.name
            ]
            self._rng.shuffle(self._probe_list)
            self._in_round = set(self._probe_list)
            self._probe_index = 0
        return None

    def _probe_timeout(self, now: float) -> None:
        probe = self._probe
        if probe is None or probe.acked or not probe.direct:
            return
        probe.direct = False
        helpers = self._random_members(
            self.config.indirect_checks, exclude=probe.target, statuses=(Status.ALIVE,)
        )
        nack = self.config.lifeguard
        asked = []
        for name in helpers:
            claim = self.table.claim(name)
            assert claim is not None
            self._send(claim.address, PingReq(probe.seq, probe.target, probe.address, nack))
            self.stats.ping_reqs_sent += 1
            asked.append(claim.address)
        probe.helpers = frozenset(asked) if nack else frozenset()

    def _on_ack(self, seq: int, now: float) -> None:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            if not probe.acked:
                probe.acked = True
                self.stats.acks += 1
                if probe.direct:
                    self.awareness.apply(-1)
                    self._out.cancel_timer("probe-timeout")
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self._out.cancel_timer(("relay", seq))
            self._send(relay.origin, Ack(relay.origin_seq))
        else:
            self.stats.stale_acks += 1

    def _finish_probe(self, probe: _Probe, now: float) -> None:
        """The probe interval is over: an unanswered target becomes suspect."""
        if probe.acked:
            return
        if self.config.lifeguard:
            # Helpers that did not even nack point at us, not at the target.
            missed = len(probe.helpers - probe.nackers)
            self.awareness.apply(missed if probe.helpers else 1)
        claim = self.table.claim(probe.target)
        if (
            claim is None
            or not claim.status.live
            or (claim.epoch, claim.incarnation) != (probe.epoch, probe.incarnation)
        ):
            return  # it restarted or refuted meanwhile: the probe was of an older claim
        if claim.status is Status.ALIVE:
            self.stats.suspicions += 1
        self._process(dataclasses.replace(claim, status=Status.SUSPECT, source=self.me.name), now)

    def _on_ping_req(self, sender: Address, req: PingReq, now: float) -> None:
        if (
            req.target_address == self.me.address
            or req.target == self.me.name
            or not valid_identity(req.target, req.target_address)
        ):
            self.stats.misdirected += 1
            return
        if len(self._relays) >= self.config.max_relays:
            self.stats.relays_shed += 1
            return
        self._seq += 1
        cfg = self.config
        # Relay a late ack until the prober's interval would have ended.
        expires = now + cfg.probe_interval_s - cfg.probe_timeout_s
        self._relays[self._seq] = _Relay(sender, req.seq, req.nack, expires)
        self._send(req.target_address, Ping(self._seq, req.target))
        deadline = now + self._nack_after_s() if req.nack else expires
        self._out.set_timer(("relay", self._seq), deadline)

    def _nack_after_s(self) -> float:
        """How long a relay waits for the target before nacking.

        The prober sent the ping-req at its probe timeout and closes the probe
        at the end of its interval, so a nack is only useful inside that
        window; the helper assumes the prober runs the same configuration at
        a health score of 0 (the tightest case).
        """
        cfg = self.config
        return _NACK_AT * min(cfg.probe_timeout_s, cfg.probe_interval_s - cfg.probe_timeout_s)

    def _relay_timeout(self, seq: int, now: float) -> None:
        relay = self._relays.get(seq)
        if relay is None:
            return
        if relay.nack:
            relay.nack = False
            self.stats.nacks_sent += 1
            self._send(relay.origin, Nack(relay.origin_seq))
            if relay.expires > now:
                self._out.set_timer(("relay", seq), relay.expires)
                return
        del self._relays[seq]

    # ---------------------------------------------------------------- suspicion

    def _suspicion_timeout(self, name: str, now: float) -> None:
        suspicion = self._suspicions.pop(name, None)
        claim = self.table.claim(name)
        if suspicion is None or claim is None or claim.status is not Status.SUSPECT:
            return
        self.stats.deaths_declared += 1
        self._process(dataclasses.replace(claim, status=Status.DEAD, source=self.me.name), now)

    def _start_suspicion(self, claim: Claim, now: float) -> None:
        cfg = self.config
        n = self.table.live_count()
        min_s = suspicion_timeout_min_s(cfg.suspicion_mult, n, cfg.probe_interval_s)
        if cfg.lifeguard:
            k = confirmations_needed(cfg.suspicion_mult, n)
            max_s = suspicion_timeout_max_s(min_s, cfg.suspicion_max_timeout_mult)
        else:
            k, max_s = 0, min_s
        suspicion = Suspicion(claim.source, k, min_s, max_s, now)
        self._suspicions[claim.name] = suspicion
        self._out.set_timer(("suspicion", claim.name), suspicion.deadline)

    def _confirm(self, claim: Claim, now: float) -> None:
        """An independent member suspects the same life and incarnation."""
        suspicion = self._suspicions.get(claim.name)
        if suspicion is not None and suspicion.confirm(claim.source):
            self._out.set_timer(("suspicion", claim.name), suspicion.deadline)
            # Pass the confirmation on, so the others can count it too.
            self._enqueue(claim, now)

    # ---------------------------------------------------------------- news

    def _merge(self, claims: Sequence[Claim], now: float, sender: Address) -> None:
        """Merge piggybacked claims; tell ``sender`` what it has not heard yet.

        A claim older than the one held here means the sender missed newer
        news (a refutation, most often), and infection-style gossip has no
        second chance once news has been sent its quota of times: so the
        newer claims go straight back to the sender in one datagram.
        """
        newer: dict[str, Claim] = {}
        for claim in claims:
            held = self._process(claim, now)
            if held is not None:
                newer.setdefault(claim.name, held)
        if newer:
            self.stats.corrections += 1
            self._send(sender, Gossip(()), first=tuple(newer.values())[:_MAX_CORRECTIONS])

    def _merge_state(self, claims: Sequence[Claim], now: float) -> None:
        """Merge a full state.  A death we did not see ourselves becomes a suspicion:
        the other side of a healed partition declared everyone on ours dead,
        and a suspect still gets probed and told, so it can refute in time."""
        table = self.table
        for theirs in claims:
            claim = theirs
            if theirs.status is Status.DEAD:
                mine = table.claim(theirs.name)
                if mine is not None and mine.status.live and mine.epoch == theirs.epoch:
                    claim = dataclasses.replace(theirs, status=Status.SUSPECT)
            self._process(claim, now)

    def _process(self, claim: Claim, now: float) -> Claim | None:
        """The one way a claim gets in: refute, merge, start or end suspicions, pass it on.

        Returns the claim held here when ``claim`` is older than it (the
        sender missed that news), else None.
        """
        if claim.name == self.me.name:
            return self._about_me(claim, now)
        before = self.table.claim(claim.name)
        if before is not None and claim_order(claim) < claim_order(before):
            self.table.remember(claim)  # a tombstone shows the last metadata, in any order
            return before
        if len(claim.metadata) > self.config.max_metadata_bytes:
            self.stats.claims_refused += 1
            return None
        claim = as_stored(claim)  # as the table stores it, and as it is passed on
        events = self.table.apply(claim, now)
        if events is not None:
            self._changes += 1
        if events is None:
            if (
                claim.status is Status.SUSPECT
                and before is not None
                and before.status is Status.SUSPECT
                and claim_order(claim) == claim_order(before)
            ):
                self._confirm(claim, now)
            elif before is None or claim_order(claim) > claim_order(before):
                self.stats.claims_refused += 1
            return None
        self._enqueue(claim, now)
        if claim.status is Status.SUSPECT:
            self._start_suspicion(claim, now)
        elif self._suspicions.pop(claim.name, None) is not None:
            self._out.cancel_timer(("suspicion", claim.name))
        if claim.status.live and claim.name not in self._in_round:
            # A newcomer goes to a random place in this round, so its first
            # probes do not all come at once (and it is probed this round).
            index = self._rng.randint(self._probe_index, len(self._probe_list))
            self._probe_list.insert(index, claim.name)
            self._in_round.add(claim.name)
        elif claim.status is Status.DEAD:
            self._recent_deaths.append((now, claim.name))
        self._emit_all(events)
        return None

    def _about_me(self, claim: Claim, now: float) -> Claim | None:
        """Refute a claim against this node; return our own if ``claim`` is older."""
        local = self.table.local_claim
        if claim_order(claim) < claim_order(local):
            return local
        if claim.epoch != local.epoch or claim.address != local.address:
            self._clash(claim, now)
            return None
        if self._leaving or claim_order(claim) == claim_order(local):
            return None
        incarnation = max(claim.incarnation, local.incarnation)
        if incarnation + 1 >= MAX_COUNTER:
            self.stats.claims_refused += 1  # no room left to refute: a peer's garbage
            return None
        if claim.status is not Status.ALIVE:
            self.stats.refutations += 1
            if self.config.lifeguard:
                self.awareness.apply(1)
        self._set_local(Status.ALIVE, local.metadata, now, at_least=incarnation)
        return None

    # ---------------------------------------------------------------- one name, one node

    def _refuse_join(self, sender: Address, members: Sequence[Claim]) -> bool:
        """The join gate (``names.py``, rule 1): True if the join was refused."""
        joiner = joiner_claim(members, sender)
        if joiner is None or not valid_identity(joiner.name, joiner.address):
            return False
        if joiner.name == self.me.name:
            held: Claim | None = self.table.local_claim
        else:
            held = self.table.claim(joiner.name)
        if held is None or not blocking_holder(held, joiner):
            return False
        self.stats.joins_refused += 1
        self._out.stream(sender, RefusedJoin(held))
        self._out.emit(
            NameRefused(
                NodeId(joiner.name, joiner.address, joiner.epoch),
                NodeId(held.name, held.address, held.epoch),
            )
        )
        return True

    def _on_refused(self, seed: Address, holder: Claim, now: float) -> None:
        """A seed refused our join: say so (with backoff), and keep retrying."""
        if (
            self._joined
            or holder.name != self.me.name
            or not valid_identity(holder.name, holder.address)
            or not 1 <= holder.epoch <= MAX_COUNTER
        ):
            self.stats.ignored += 1
            return
        refusal = JoinRefused(seed, NodeId(holder.name, holder.address, holder.epoch))
        last, gap = self._refusal_logged
        changed = self._refused is None or self._refused.holder != refusal.holder
        self._refused = refusal
        self._changes += 1
        if changed or now - last >= gap:
            # Said at once, then after 5 s, 10 s, ... at most every minute.
            gap = _REFUSAL_FIRST_GAP_S if changed else min(gap * 2, _REFUSAL_MAX_GAP_S)
            self._refusal_logged = (now, gap)
            self._out.emit(refusal)

    def _clash(self, claim: Claim, now: float) -> None:
        """Another life claims our name and ranks above ours (``names.py``, rules 2 and 3)."""
        local = self.table.local_claim
        if not valid_identity(claim.name, claim.address) or not 1 <= claim.epoch < MAX_COUNTER:
            self.stats.claims_refused += 1
            return
        if self._leaving:
            self.stats.misdirected += 1
            return
        other = NodeId(claim.name, claim.address, claim.epoch)
        self.stats.name_clashes += 1
        if claim.address != local.address and claim.epoch == local.epoch + 1:
            self._yield(other)
            return
        epoch = claim.epoch + 1
        self._out.emit(NameClash(other, True, epoch))
        self.me = NodeId(self.me.name, self.me.address, epoch)
        mine = Claim(
            local.name,
            local.address,
            epoch,
            0,
            Status.ALIVE,
            local.metadata,
            local.name,
            local.draining,
        )
        self._changes += 1
        self._emit_all(self.table.set_local(mine, now))
        self._enqueue(mine, now)
        self._send(other.address, Gossip(()), first=(mine,))  # the other life yields on it

    def _yield(self, other: NodeId) -> None:
        """Give the name up to ``other``: take no further part (rule 3)."""
        self._yielded = other
        self._changes += 1
        for key in ("probe", "probe-timeout", "gossip", "push-pull", "join"):
            self._out.cancel_timer(key)
        for name in self._suspicions:
            self._out.cancel_timer(("suspicion", name))
        for seq in self._relays:
            self._out.cancel_timer(("relay", seq))
        self._suspicions.clear()
        self._relays.clear()
        self._probe = None
        self._gossiping = False
        self._out.emit(NameClash(other, False, self.me.epoch))

    def _set_local(
        self,
        status: Status,
        metadata: bytes,
        now: float,
        at_least: int | None = None,
        draining: bool | None = None,
    ) -> None:
        local = self.table.local_claim
        incarnation = max(local.incarnation, at_least or 0) + 1
        if draining is None:
            draining = local.draining
        claim = Claim(
            local.name,
            local.address,
            local.epoch,
            incarnation,
            status,
            metadata,
            local.name,
            draining and status.live,
        )
        self._changes += 1
        self._emit_all(self.table.set_local(claim, now))
        self._enqueue(claim, now)

    # ---------------------------------------------------------------- gossip and sync

    def _send(self, to: Address, message: Message, first: tuple[Claim, ...] = ()) -> None:
        """Send a datagram with as much pending news piggybacked as fits.

        A ``Gossip`` that ends up carrying nothing is not sent, and nothing is
        sent to this node's own address (a tombstone of an earlier node there).
        """
        if to == self.me.address:
            self.stats.misdirected += 1
            return
        if first or len(self._queue):
            budget = self.config.max_payload_bytes - registry.encoded_size(message)
            budget -= _ARRAY_HEADER_SLACK
            kept: list[Claim] = []
            for claim in first:
                size = _claim_bytes(claim)
                if size > budget:
                    break
                kept.append(claim)
                budget -= size
            skip = frozenset(c.name for c in kept)
            updates = (*kept, *self._queue.take(budget, self._retransmit_limit(), skip))
            if updates:
                message = dataclasses.replace(message, updates=updates)  # type: ignore[type-var]
        if isinstance(message, Gossip) and not message.updates:
            return
        self._out.datagram(to, message)

    def _enqueue(self, claim: Claim, now: float) -> None:
        if self._tree and self._joined and not self._quiet and claim.source == self.me.name:
            self._tree_claims.append(claim)
        self._queue.push(claim.name, claim, _claim_bytes(claim))
        self.stats.updates_shed = self._queue.shed
        if not self._gossiping and self._started:
            # The gossip tick runs only while there is news: an idle node does
            # not wake every gossip interval for nothing.  It resumes on the
            # beat it kept, so gossip goes out when it always would have.
            interval = self.config.gossip_interval_s
            at = self._gossip_at
            if at < now:
                at += math.ceil((now - at) / interval) * interval
            self._gossip_at = at
            self._gossiping = True
            self._out.set_timer("gossip", at)

    def _retransmit_limit(self) -> int:
        return retransmit_limit(self.config.retransmit_mult, self.table.live_count())

    def _gossip_tick(self, now: float) -> None:
        cfg = self.config
        self._gossip_at = now + cfg.gossip_interval_s
        others = self.table.live_count() - self.table.local_claim.status.live
        if not len(self._queue) or (others <= 0 and not self._recent_deaths):
            self._gossiping = False  # until the next news (``_enqueue``): nobody to tell
            return
        self._out.set_timer("gossip", self._gossip_at)
        targets = self._random_members(cfg.gossip_nodes, exclude=None, statuses=None)
        for name in self._recently_dead(now):
            if len(targets) >= cfg.gossip_nodes + 1:
                break
            targets.append(name)
        for name in targets:
            if not len(self._queue):
                break
            claim = self.table.claim(name)
            assert claim is not None
            self._send(claim.address, Gossip(()))

    def _recently_dead(self, now: float) -> list[str]:
        """At most one member declared dead within ``gossip_to_dead_s``, picked at random."""
        deaths = self._recent_deaths
        while deaths and now - deaths[0][0] >= self.config.gossip_to_dead_s:
            deaths.popleft()
        recent = sorted(
            {
                name
                for _, name in deaths
                if (c := self.table.claim(name)) is not None and c.status is Status.DEAD
            }
        )
        return [self._rng.choice(recent)] if recent else []

    def _push_pull_tick(self, now: float) -> None:
        cfg = self.config
        n = self.table.live_count()
        # Jittered, so syncs that happened together (a mass join) drift apart.
        interval = push_pull_scale(cfg.push_pull_interval_s, n)
        self._out.set_timer("push-pull", now + self._rng.uniform(0.5, 1.5) * interval)
        peers = self._random_members(1, exclude=None, statuses=(Status.ALIVE,))
        # Reconnect: one member we believe dead, or a seed we do not see alive.
        claims = self.table.claims()
        alive_addresses = {c.address for c in claims if c.status.live}
        lost = {c.address for c in claims if c.status is Status.DEAD}
        lost.update(s for s in self._seeds if s not in alive_addresses)
        lost -= alive_addresses | {self.me.address}
        targets = [self.table.claim(p).address for p in peers]  # type: ignore[union-attr]
        if lost:
            targets.append(self._rng.choice(sorted(lost)))
        state = self._full_state(claims)
        for address in dict.fromkeys(targets):
            self.stats.push_pulls += 1
            # Until a seed has answered, every sync is a join (and passes the gate).
            self._out.stream(address, PushPull(not self._joined, state))

    def _join(self, now: float) -> None:
        state = self._full_state(self.table.claims())
        for seed in self._seeds:
            self._out.stream(seed, PushPull(True, state))
        self._out.set_timer("join", now + self.config.join_retry_interval_s)

    def _full_state(self, claims: list[Claim]) -> tuple[Claim, ...]:
        """The table (``claims``, sorted by name) for a push-pull, within
        ``max_state_bytes``: this node and the live members first, then the
        newest tombstones, as many as fit."""
        live = [c for c in claims if c.status.live]
        gone = sorted(
            (c for c in claims if not c.status.live),
            key=lambda c: -(self.table.get(c.name).since),  # type: ignore[union-attr]
        )
        budget = self.config.max_state_bytes
        state: list[Claim] = []
        for claim in (*live, *gone):
            # An upper bound on the claim's encoding, so the frame never overflows.
            size = (
                len(claim.name.encode())
                + len(claim.address.encode())
                + len(claim.metadata)
                + len(claim.source.encode())
                + _CLAIM_OVERHEAD_BYTES
            )
            if size > budget:
                self.stats.state_truncated += 1
                break
            budget -= size
            state.append(claim)
        return tuple(state)

    def _random_members(
        self, count: int, exclude: str | None, statuses: tuple[Status, ...] | None
    ) -> list[str]:
        """Up to ``count`` distinct random live members other than us and ``exclude``.

        Drawn from the probe round's list (every live member, in random order)
        by random index, so the cost does not grow with the table.
        """
        pool = self._probe_list
        if not pool:
            return []
        chosen: list[str] = []
        for _ in range(count * 4):
            name = pool[self._rng.randrange(len(pool))]
            if name in chosen or name == exclude:
                continue
            claim = self.table.claim(name)
            if claim is None or not claim.status.live:
                continue
            if statuses is not None and claim.status not in statuses:
                continue
            chosen.append(name)
            if len(chosen) == count:
                break
        return chosen

    def _emit_all(self, events: Iterable[object]) -> None:
        for event in events:
            self._out.emit(event)


def _note(kind: str, member: Member, source: str = "") -> EventNote:
    return EventNote(kind, member.node_id, member.incarnation, source)


# --------------------------------------------------------------------------
# The part's section of a node's configuration.


def _fit(config: SwimConfig, room: WireRoom) -> SwimConfig:
    """``config`` with its payload shrunk so a sealed datagram fits ``room``."""
    if config.max_payload_bytes <= room.datagram_bytes:
        return config
    return dataclasses.replace(
        config,
        max_payload_bytes=room.datagram_bytes,
        max_metadata_bytes=min(config.max_metadata_bytes, room.datagram_bytes // 2),
    )


def _check(config: SwimConfig, room: WireRoom, context: PartContext) -> None:
    owner = "NodeConfig"
    try:
        check_metadata(context.metadata, config)
    except LocalError as exc:
        raise ConfigError(f"{owner}.metadata: {exc}") from None
    if config.max_payload_bytes > room.datagram_bytes:
        raise ConfigError(
            f"{owner}: swim.max_payload_bytes ({config.max_payload_bytes}) plus the "
            f"transport's {room.datagram_overhead} bytes (sender address, stamp and seal) is over "
            f"wire.max_datagram_bytes ({room.max_datagram_bytes}); "
            f"use at most {room.datagram_bytes}"
        )
    if config.max_state_bytes > room.stream_queue_bytes:
        raise ConfigError(
            f"{owner}: transport.max_stream_queue_bytes ({room.max_stream_queue_bytes}) "
            f"must hold a full state (swim.max_state_bytes + {room.queue_overhead} = "
            f"{config.max_state_bytes + room.queue_overhead})"
        )
    if config.max_state_bytes > room.frame_bytes:
        raise ConfigError(
            f"{owner}: swim.max_state_bytes ({config.max_state_bytes}) must leave "
            f"{room.frame_overhead} bytes under wire.max_frame_bytes ({room.max_frame_bytes})"
        )


def _build(config: SwimConfig, context: PartContext) -> PartFactory:
    def make(me: NodeId, rng: random.Random) -> SwimCore:
        return SwimCore(
            me,
            rng,
            config,
            seeds=context.seeds,
            metadata=context.metadata,
            clock_offset_s=context.clock_offset_s,
        )

    return make


SPEC: PartSpec[SwimConfig] = PartSpec("swim", SwimConfig, _build, _fit, _check)
"""SWIM in the node's catalogue: always on; ``[swim]`` in TOML, ``NodeConfig.swim``."""
