"""HyParView: the node's partial views, the overlay that broadcast travels on.

Leitão, Pereira, Rodrigues, *HyParView: a membership protocol for reliable
gossip-based broadcast*, DSN 2007 (technical report DI-FCUL TR-07-13).

Each node keeps a small symmetric **active view** (``active_size``, 5) whose
links are streams, and a larger **passive view** (``passive_size``, 30) of
peers it knows but holds no connection to.  A stream breaking is the failure
detector: the peer leaves the active view and a passive peer takes its
place.  The layer above (Plumtree) hears :class:`NeighborUp` and
:class:`NeighborDown` and uses the active view as its peers.

* **Join.**  A new node sends :class:`Join` to a contact (a seed).  The
  contact adds it to its active view (dropping a random peer with
  :class:`Disconnect` when full) and sends :class:`ForwardJoin` with ttl
  ``active_walk_length`` to each other active peer.  A node that receives a
  ForwardJoin adds the joiner to its active view when the ttl is 0 or its
  own active view holds a single peer (the report's prose; its pseudo-code
  says an empty view, which cannot happen on a link); otherwise it adds the
  joiner to its passive view when the ttl equals ``passive_walk_length`` and
  passes the walk on to a random active peer that is neither the sender nor
  the joiner.  A node that adds a peer tells it with a high-priority
  :class:`Neighbor`, which is never refused.
* **Repair.**  When an active link goes down the peer is forgotten (not
  kept as passive), and the node sends :class:`Neighbor` to a random passive
  peer: high priority when its active view is empty (or below
  ``min_active``), low otherwise.  A low-priority request is refused by a
  full node; the refused peer stays passive and another is tried.  A peer
  that cannot be reached leaves the passive view.  :class:`Disconnect` moves
  the peer that sent it to the passive view.
* **Shuffle.**  Every ``shuffle_interval_s`` the node sends :class:`Shuffle`
  on a random walk of ``shuffle_walk_length``: itself, ``shuffle_active``
  active and ``shuffle_passive`` passive peers.  The walk's last node answers
  the origin with as many of its passive peers (:class:`ShuffleReply`, on a
  short-lived stream) and both merge what they got into their passive
  views; a full passive view evicts first the entries it just sent.

What the report leaves open, decided here:

* **Lives.**  Every entry is a :class:`Peer` with the peer's boot epoch.
  A message from an older life than the one a view holds (a Disconnect or a
  Neighbor that was in flight across a restart) is refused and counted; a
  newer life replaces the older one everywhere.
* **Answers are messages.**  A node that adds a peer always sends on the
  stream (a :class:`NeighborReply` or a high-priority Neighbor), so both
  ends own the link and both hear it break.  An accept that arrives after
  the asker gave up is kept if there is room and answered with a Disconnect
  otherwise, and so is an accept of a request this node never made (it
  dropped the peer meanwhile), so active views stay symmetric.  A node that
  refuses a low-priority request keeps the asker passive: it is alive and
  short of peers.
* **A peer's garbage.**  A walk whose ttl exceeds any config's
  (``MAX_WALK``) or a sample over ``MAX_SAMPLE`` peers is dropped and
  counted; a ShuffleReply is merged up to the size of the Shuffle it answers.
* **Below the minimum.**  The shuffle tick also repairs: a node whose active
  view (with its requests in flight) is below ``active_size`` asks one more
  passive peer, with high priority while it holds fewer than
  ``min_active``.  A refusal moves on to the next passive peer not yet asked
  in this round, at most ``repair_attempts`` times; then the next tick
  starts a new round.  A node short for ``starved_rounds`` periods with its
  requests refused asks with high priority once.
* **Drops that do not split.**  The report's random drop (a full node
  taking a high-priority peer drops one at random) can cut the overlay in
  two.  In a small overlay (see below) the :class:`Disconnect` names the
  peer taken instead, and the dropped peer asks it first: it links back to
  the dropper's side.  A large overlay does not: there a drop cannot split
  it, and the hand-off closes triangles (the dropper and the dropped peer
  often link again later), which doubled the clustering at 10,000 nodes.  Full
  pieces that no request can join still happen in small overlays (a clique
  of ``active_size + 1`` nodes is the smallest), so a full node that hears
  few nodes' shuffles (a small overlay: fewer than
  ``SMALL_WORLD_FACTOR * active_size`` origins in ``SMALL_WORLD_PERIODS``
  periods, after listening that long) swaps a link now and then
  (``rewire_periods``): it asks a passive peer with high priority offering
  one of its active peers, the asked peer drops one of its own, and the two
  dropped peers are told to link up, so every degree is kept and a split
  into full pieces joins again.  A large overlay never swaps.
* **Lost peers and healed partitions.**  A peer whose link broke or that
  could not be reached goes to a bounded list of lost peers
  (``max_lost``), retried with a high-priority Neighbor on the shuffle tick
  with a backoff doubling up to ``lost_retry_max_s``, and forgotten after
  ``lost_ttl_s``.  When a partition heals, the first retry that crosses it
  forces a link across, and shuffles mix the two sides' passive views: the
  overlay is one component again within ``lost_retry_max_s`` plus a shuffle
  period, for partitions shorter than ``lost_ttl_s``.
* **Isolation.**  A node with no active peer, no request in flight and no
  passive peer sends :class:`Join` to its seeds again, every
  ``join_retry_interval_s`` until one answers.  A seed that could not be
  reached is also asked again, on the lost peers' backoff, once the node
  has peers: two sides that formed apart (booted during a partition) and
  so never lost a link to each other still merge.

Invariants: the active and passive views are disjoint, never hold this node,
hold at most one life of a name, and stay within their sizes; every
bounded structure (requests in flight, lost peers) has its bound in the
config.  Iteration that reaches a decision follows insertion order or the
injected ``Random``.
"""

from __future__ import annotations

__all__ = [
    "SPEC",
    "Disconnect",
    "ForwardJoin",
    "Heartbeat",
    "HyParView",
    "HyParViewConfig",
    "HyParViewStats",
    "Join",
    "LinkHealth",
    "Neighbor",
    "NeighborDown",
    "NeighborReply",
    "NeighborUp",
    "OverlayView",
    "Peer",
    "PortClosed",
    "Shuffle",
    "ShuffleReply",
]

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gossamer.config import WireRoom, check_at_least, check_int, check_positive
from gossamer.effects import (
    Effect,
    EventNote,
    Outbox,
    PartContext,
    PartFactory,
    PartSpec,
    TimerKey,
)
from gossamer.errors import ConfigError
from gossamer.failure.phi import PhiConfig, PhiMonitor
from gossamer.ids import Address, NodeId, parse_address
from gossamer.membership.members import (
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
)
from gossamer.observe import DROPPED, ApiRequest, Route, Sample, counter
from gossamer.wire import Message, Record, registry

# --------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class HyParViewConfig:
    """The overlay's views and walks.  The defaults are the report's, for
    clusters up to about 10,000 nodes (``active_size = log10(n) + 1``)."""

    enabled: bool = True
    """Run the overlay (``overlay`` part)."""
    active_size: int = 5
    """Peers held on streams, the fanout of a broadcast.  The report's
    ``log10(n) + 1``: 5 keeps 10,000 nodes connected when 80 % of them fail
    at once.  More costs a stream and a heartbeat each."""
    passive_size: int = 30
    """Peers known without a connection, to replace active ones.  The
    report's ``k * (log10(n) + 1)`` with ``k = 6``."""
    active_walk_length: int = 6
    """ForwardJoin's ttl (the report's ARWL): how far a joiner's arrival
    walks before the last node takes it as an active peer."""
    passive_walk_length: int = 3
    """The ttl at which a ForwardJoin also puts the joiner in the passive
    view (PRWL); below ``active_walk_length``, so the walk passes it."""
    shuffle_interval_s: float = 10.0
    """Time between two shuffles, in seconds; also the repair tick."""
    shuffle_walk_length: int = 6
    """How far a Shuffle walks before it is answered."""
    shuffle_active: int = 3
    """Active peers sent in a Shuffle (``ka``)."""
    shuffle_passive: int = 4
    """Passive peers sent in a Shuffle (``kp``)."""
    min_active: int = 2
    """Below this many active peers a repair asks with high priority (which
    is never refused); at or above it, with low priority (refused by a full
    node).  1 is the report's rule (high only when empty)."""
    repair_attempts: int = 3
    """Low-priority requests a repair round (one shuffle period) may have
    refused before it waits for the next: a node one slot short in a full
    overlay would otherwise ask its whole passive view every period."""
    starved_rounds: int = 3
    """Shuffle periods a node may stay short of ``active_size`` with its
    requests refused before it asks with high priority (the asked peer then
    drops one of its own).  Without it a split overlay whose nodes are full
    but one never joins again: every low-priority request across is refused.
    Where ``n * active_size`` is odd one node is always a slot short, so one
    link moves every this many periods, which also keeps mixing the graph."""
    neighbor_timeout_s: float = 5.0
    """How long a Neighbor or Join waits for its answer before the peer
    counts as unreachable, in seconds."""
    rewire_periods: int = 30
    """A full node in a small overlay (fewer than ``4 * active_size`` nodes'
    shuffles seen in 10 periods) swaps one active peer for a passive one (see
    ``_rewire``) once in this many shuffle periods on average; 0 never.
    Nothing else joins an overlay split into small pieces whose nodes are all
    full.  Each swap moves two links, which Plumtree repairs on the next
    broadcast across them; a large overlay never swaps."""
    max_pending: int = 8
    """Bound on Neighbor and Join requests in flight at once."""
    max_lost: int = 32
    """Bound on the lost peers remembered for retries; the oldest goes."""
    lost_retry_max_s: float = 60.0
    """Longest wait between two retries of a lost peer, in seconds (the
    wait doubles from ``shuffle_interval_s``)."""
    lost_ttl_s: float = 3_600.0
    """How long a lost peer is retried, in seconds: the longest partition
    that heals without a seed."""
    join_retry_interval_s: float = 5.0
    """How often an isolated node asks its seeds again, in seconds."""
    heartbeat_interval_s: float = 0.0
    """How often each active link carries a :class:`Heartbeat`, in seconds;
    0 sends none and judges no link (the report's protocol, and the
    simulator's default).  The presets turn it on: on sockets a link whose
    peer hangs, or whose machine vanished, stays open, and only silence
    tells.  Each link costs one small frame each way per interval."""
    link_phi_threshold: float = 8.0
    """φ at which a silent link is dropped and replaced (see ``PhiConfig``)."""
    knock_on_break: bool = False
    """When an active link breaks, knock on the peer's port (``effects.Knock``):
    a refusal means its process is gone, and :class:`PortClosed` tells SWIM
    (the fast path to a crashed process's death).  The presets turn it on."""
    link_pause_s: float = 3.0
    """Silence a link may keep beyond its usual gap between frames before φ
    climbs, in seconds (``PhiConfig.acceptable_heartbeat_pause_s``): a busy
    peer's event loop, a garbage collection."""

    def __post_init__(self) -> None:
        owner = "HyParViewConfig"
        for flag in ("enabled", "knock_on_break"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{owner}.{flag} must be a bool, got {getattr(self, flag)!r}")
        check_int(owner, "active_size", self.active_size, 1, 64)
        check_int(owner, "passive_size", self.passive_size, 1, 4_096)
        check_int(owner, "active_walk_length", self.active_walk_length, 1, 64)
        check_int(owner, "passive_walk_length", self.passive_walk_length, 0, 64)
        check_int(owner, "shuffle_walk_length", self.shuffle_walk_length, 0, 64)
        check_int(owner, "shuffle_active", self.shuffle_active, 0, self.active_size)
        check_int(owner, "shuffle_passive", self.shuffle_passive, 0, self.passive_size)
        check_int(owner, "min_active", self.min_active, 1, self.active_size)
        check_int(owner, "repair_attempts", self.repair_attempts, 1, 4_096)
        check_int(owner, "starved_rounds", self.starved_rounds, 1, 4_096)
        check_int(owner, "rewire_periods", self.rewire_periods, 0, 1_000_000)
        check_int(owner, "max_pending", self.max_pending, 1, 1_024)
        check_int(owner, "max_lost", self.max_lost, 0, 4_096)
        check_at_least(owner, "heartbeat_interval_s", self.heartbeat_interval_s, 0.0)
        check_positive(owner, "link_phi_threshold", self.link_phi_threshold)
        check_at_least(owner, "link_pause_s", self.link_pause_s, 0.0)
        for name in (
            "shuffle_interval_s",
            "neighbor_timeout_s",
            "lost_retry_max_s",
            "lost_ttl_s",
            "join_retry_interval_s",
        ):
            check_positive(owner, name, getattr(self, name))
        if self.passive_walk_length >= self.active_walk_length:
            raise ConfigError(
                f"{owner}.passive_walk_length ({self.passive_walk_length}) must be below "
                f"active_walk_length ({self.active_walk_length}), or a joiner's walk "
                "never reaches a passive view"
            )
        if self.shuffle_active + self.shuffle_passive + 1 > self.passive_size:
            raise ConfigError(
                f"{owner}: a Shuffle of 1 + shuffle_active + shuffle_passive = "
                f"{1 + self.shuffle_active + self.shuffle_passive} entries must fit in "
                f"passive_size ({self.passive_size})"
            )

    # The presets are what a node on sockets starts from: links carry
    # heartbeats judged by φ, and shuffles are rarer than the report's
    # cycles (each walk costs a few hundred bytes a hop; SWIM's table also
    # feeds the passive view).  The simulator uses the defaults.

    @classmethod
    def lan(cls) -> HyParViewConfig:
        return cls(
            shuffle_interval_s=30.0, heartbeat_interval_s=2.0, link_pause_s=3.0, knock_on_break=True
        )

    @classmethod
    def wan(cls) -> HyParViewConfig:
        return cls(
            shuffle_interval_s=30.0,
            neighbor_timeout_s=10.0,
            join_retry_interval_s=10.0,
            heartbeat_interval_s=5.0,
            link_pause_s=10.0,
            knock_on_break=True,
        )

    @classmethod
    def local(cls) -> HyParViewConfig:
        return cls(
            shuffle_interval_s=2.0,
            neighbor_timeout_s=2.0,
            join_retry_interval_s=1.0,
            heartbeat_interval_s=1.0,
            link_pause_s=2.0,
            knock_on_break=True,
        )


MAX_KNOCKS: Final = 64
"""Broken links knocked on at once (their answers come in milliseconds)."""
MAX_GONE: Final = 4_096
"""Lives SWIM declared dead or left that the views remember refusing."""
LINK_SAMPLES: Final = 100
"""Gaps between frames each link's φ remembers: minutes of an idle link."""
MAX_WALK: Final = 64
"""The longest walk any config allows; a ttl above it is a peer's garbage."""
MAX_SAMPLE: Final = 256
"""The most peers a Shuffle or ShuffleReply may carry."""
SMALL_WORLD_FACTOR: Final = 4
SMALL_WORLD_PERIODS: Final = 10
"""A node rewires only while fewer than ``SMALL_WORLD_FACTOR * active_size``
nodes' shuffles passed it in ``SMALL_WORLD_PERIODS`` shuffle periods."""

# --------------------------------------------------------------------------
# Messages (the overlay's block of type ids is 32..63, wire.TYPE_ID_RANGES; append only).


@dataclass(frozen=True, slots=True)
class Peer(Record):
    """One life of a node, as the overlay's views hold it."""

    name: str
    address: Address
    epoch: int

    @classmethod
    def of(cls, node: NodeId) -> Peer:
        return cls(node.name, node.address, node.epoch)


@registry.message(32)
@dataclass(frozen=True, slots=True)
class Join(Message):
    """From a new node to its contact: take me as an active peer and announce me."""

    node: Peer


@registry.message(33)
@dataclass(frozen=True, slots=True)
class ForwardJoin(Message):
    """``node`` joined; the walk goes on for ``ttl`` more hops."""

    node: Peer
    ttl: int


@registry.message(34)
@dataclass(frozen=True, slots=True)
class Neighbor(Message):
    """From ``node``: take me as an active peer.  ``high`` is never refused."""

    node: Peer
    high: bool
    offer: Peer | None = None
    """A swap: I drop ``offer`` for you; drop one of yours, and the two link up."""


@registry.message(35)
@dataclass(frozen=True, slots=True)
class NeighborReply(Message):
    """The answer to :class:`Neighbor` or :class:`Join`, from ``node``."""

    node: Peer
    accepted: bool
    dropped: Peer | None = None
    """The peer ``node`` dropped to take the asker (a swap's other half)."""


@registry.message(36)
@dataclass(frozen=True, slots=True)
class Disconnect(Message):
    """From ``node``: I dropped you from my active view (keep me passive if ``alive``)."""

    node: Peer
    alive: bool = True
    instead: Peer | None = None
    """The peer taken in your place: ask it, and the drop cannot cut you off."""


@registry.message(37)
@dataclass(frozen=True, slots=True)
class Shuffle(Message):
    """``origin``'s sample of its views, walking ``ttl`` more hops."""

    origin: Peer
    nodes: tuple[Peer, ...]
    ttl: int


@registry.message(38)
@dataclass(frozen=True, slots=True)
class ShuffleReply(Message):
    """The end of a shuffle walk answers the origin with as many passive peers."""

    node: Peer
    nodes: tuple[Peer, ...]


@registry.message(39)
@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Sent on every active link each ``heartbeat_interval_s``: the sender is
    alive and its loop runs.  Any frame from the peer counts the same."""


HEARTBEAT: Final = Heartbeat()


# --------------------------------------------------------------------------
# Events, stats and the view


@dataclass(frozen=True, slots=True)
class NeighborUp:
    """``peer`` entered the active view: a link the layer above may use."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class NeighborDown:
    """``peer`` left the active view (its link broke, or one end dropped it)."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class PortClosed:
    """``peer``'s link broke and its port then refused a connection: nothing
    listens there, so its process is gone (not hung: a stopped process's
    kernel still accepts).  Evidence for SWIM, which alone declares deaths."""

    peer: Peer


@dataclass(slots=True)
class HyParViewStats:
    """Counters of the overlay's views."""

    joins: int = counter("Joins this node handled as a contact.")
    forward_joins: int = counter("ForwardJoin messages received.")
    neighbor_requests: int = counter("Neighbor requests this node sent.")
    neighbor_accepted: int = counter("Neighbor requests this node accepted.")
    neighbor_refused: int = counter("Neighbor requests this node refused.")
    neighbor_failed: int = counter("Neighbor requests whose peer could not be reached.")
    disconnects: int = counter("Disconnects received.")
    links_lost: int = counter("Active links that broke.")
    shuffles: int = counter("Shuffles this node started.")
    shuffle_replies: int = counter("Shuffle replies this node sent.")
    rejoins: int = counter("Joins sent to seeds (at boot and when isolated).")
    lost_retries: int = counter("Retries of peers lost to a failure.")
    escalations: int = counter("Repairs asked with high priority after starved_rounds refused.")
    rewires: int = counter("Swaps of an active peer for a passive one this node started.")
    stale: int = DROPPED.series("overlay_stale")
    """Messages from an older life of a peer than the one the views hold."""
    malformed: int = DROPPED.series("overlay_malformed")
    """Walks with a ttl out of range and samples too large (a peer's bug)."""
    unasked: int = counter("Accepts of requests this node never made, undone with a Disconnect.")
    heartbeats_sent: int = counter("Heartbeats sent on active links.")
    ports_closed: int = counter("Broken links whose peer's port then refused a connection.")
    dropped_by_swim: int = counter("Peers dropped from the views because SWIM holds them gone.")
    impostors: int = DROPPED.series("overlay_impostors")
    """Peers refused because SWIM holds their name live at another address."""
    links_silent: int = counter("Active links dropped because their peer fell silent (φ).")


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """One active link as the last heartbeat tick judged it."""

    peer: str
    phi: float
    """φ of the link's silence at the tick (0 with heartbeats off)."""
    heard_s: float
    """Seconds from the last frame heard on it to the tick."""


@dataclass(frozen=True, slots=True)
class OverlayView:
    """The node's views at one moment; served at ``/api/overlay``."""

    active: tuple[Peer, ...]
    passive: tuple[Peer, ...]
    pending: tuple[Address, ...]
    lost: tuple[Peer, ...]
    links: tuple[LinkHealth, ...] = ()
    """Each active link's φ and last frame, as of the last heartbeat tick."""

    def routes(self) -> Mapping[str, Route]:
        return {"overlay": self._route}

    def _route(self, request: ApiRequest) -> dict[str, Any]:
        def entries(peers: Iterable[Peer]) -> list[dict[str, Any]]:
            return [{"name": p.name, "address": p.address, "epoch": p.epoch} for p in peers]

        return {
            "active": entries(self.active),
            "passive": entries(self.passive),
            "pending": list(self.pending),
            "lost": entries(self.lost),
            "links": [
                {"peer": h.peer, "phi": round(h.phi, 3), "heard_s": round(h.heard_s, 3)}
                for h in self.links
            ],
            **_broadcast_part(request),
        }

    def samples(self) -> list[Sample]:
        return [
            Sample(_VIEW_SIZE, len(self.active), "active"),
            Sample(_VIEW_SIZE, len(self.passive), "passive"),
            *(Sample(_LINK_PHI, h.phi, h.peer) for h in self.links),
        ]


from gossamer.observe import Family  # noqa: E402  (beside its one use)

_OVERLAY_COUNTERS: Final = (
    "joins",
    "shuffles",
    "shuffle_replies",
    "neighbor_requests",
    "neighbor_accepted",
    "neighbor_refused",
    "links_lost",
    "links_silent",
    "ports_closed",
    "heartbeats_sent",
)
_BROADCAST_COUNTERS: Final = (
    "broadcasts",
    "delivered",
    "gossip_sent",
    "grafts_sent",
    "prunes_sent",
    "ihave_sent",
    "ihave_ids_sent",
)


def _broadcast_part(request: ApiRequest) -> dict[str, Any]:
    """What broadcast (Plumtree) shows beside the views, and both parts' main
    counters, when the node runs them (``/api/broadcast`` has the rest)."""
    out: dict[str, Any] = {}
    tree = request.views.get("broadcast")
    if tree is not None:
        out["eager"] = list(getattr(tree, "eager", ()))
        out["lazy"] = list(getattr(tree, "lazy", ()))
        out["cache"] = {k: getattr(tree, k, 0) for k in ("cached", "seen", "missing")}
    counters = {}
    for part, names in (("overlay", _OVERLAY_COUNTERS), ("broadcast", _BROADCAST_COUNTERS)):
        stats = request.stats.get(part)
        if stats is not None:
            counters.update({k: getattr(stats, k) for k in names})
    if counters:
        out["counters"] = counters
    return out


_VIEW_SIZE: Final = Family(
    "gossamer_overlay_view_size", "Peers in the overlay's views.", "gauge", "view"
)
_LINK_PHI: Final = Family(
    "gossamer_overlay_link_phi", "φ of each active link's silence.", "gauge", "peer"
)


# --------------------------------------------------------------------------
# The core


@dataclass(slots=True)
class _Pending:
    """A Neighbor or Join in flight: to whom (None for a seed), and since when."""

    peer: Peer | None
    high: bool
    join: bool
    until: float
    offer: Peer | None = None  # a swap's: the peer this node drops when accepted


@dataclass(slots=True)
class _Lost:
    """A peer (None: a seed, known by address) to retry at ``next_try``, until ``until``."""

    peer: Peer | None
    next_try: float
    wait: float
    until: float


@dataclass(slots=True)
class _Round:
    """The passive peers asked in the current repair round."""

    asked: set[str] = field(default_factory=set)
    refused: int = 0


class HyParView:
    """One node's HyParView (sans-IO; see the module docstring), the ``overlay`` part.

    ``seeds`` are contacts to join through (this node's own address is
    skipped); with none, the node waits to be joined.
    """

    name = "overlay"
    messages: tuple[type[Message], ...] = (
        Join,
        ForwardJoin,
        Neighbor,
        NeighborReply,
        Disconnect,
        Shuffle,
        ShuffleReply,
        Heartbeat,
    )
    subscribes: tuple[type, ...] = (
        MemberJoined,
        MemberAlive,
        MemberUpdated,
        MemberDead,
        MemberLeft,
    )

    def __init__(
        self,
        me: NodeId,
        rng: random.Random,
        config: HyParViewConfig | None = None,
        *,
        seeds: Iterable[str] = (),
    ) -> None:
        self.config = config if config is not None else HyParViewConfig()
        self.me = me
        self.peer = Peer.of(me)
        self._rng = rng
        self._seeds = sorted({parse_address(s) for s in seeds} - {me.address})
        self._out = Outbox()
        self.stats = HyParViewStats()
        self.active: dict[str, Peer] = {}
        """The active view by name, in the order peers entered it.  Read only."""
        self.passive: dict[str, Peer] = {}
        """The passive view by name.  Read only."""
        self._by_address: dict[Address, str] = {}  # active peers' addresses
        self._pending: dict[Address, _Pending] = {}
        self._lost: dict[str, _Lost] = {}
        self._lost_seeds: dict[Address, _Lost] = {}
        self._gave_up: dict[Address, None] = {}  # requests that timed out, newest last
        self._round = _Round()
        self._starved = 0  # shuffle periods short of active_size with requests refused
        self._heard: dict[str, float] = {}  # origins of shuffles seen, oldest first
        self._watching: float | None = None  # when the first shuffle tick came
        self._sent: tuple[str, ...] = ()  # names in our last Shuffle, in order
        self._now = 0.0
        self._view: OverlayView | None = None
        self._changed = True
        cfg = self.config
        self._phi: PhiMonitor[str] | None = None
        if cfg.heartbeat_interval_s > 0:
            self._phi = PhiMonitor(
                PhiConfig(
                    threshold=cfg.link_phi_threshold,
                    max_sample_size=LINK_SAMPLES,
                    min_std_deviation_s=cfg.heartbeat_interval_s / 10,
                    acceptable_heartbeat_pause_s=cfg.link_pause_s,
                    first_heartbeat_estimate_s=cfg.heartbeat_interval_s,
                ),
                max_peers=cfg.active_size,
            )
        self._links: tuple[LinkHealth, ...] = ()
        self._half_beat = cfg.heartbeat_interval_s / 2  # heard(): one sample per half interval
        self._knocking: dict[Address, Peer] = {}  # broken links knocked on, awaiting the answer
        self._gone: dict[str, int] = {}  # lives SWIM holds dead or left, by name, oldest first
        self._holders: dict[str, Address] = {}  # where SWIM holds each live member

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        self._now = now
        cfg = self.config
        # A random phase, so shuffles of nodes booted together spread out.
        self._out.set_timer("shuffle", now + self._rng.uniform(0.5, 1.0) * cfg.shuffle_interval_s)
        if self._phi is not None:
            phase = self._rng.uniform(0.5, 1.0) * cfg.heartbeat_interval_s
            self._out.set_timer("beat", now + phase)
        self._rejoin(now)

    def heard(self, sender: Address, now: float) -> None:
        """Any message from ``sender`` arrived (``NodeCore`` calls this for
        every input): on an active link it counts as a heartbeat.  At most
        one arrival per half interval is sampled, so φ learns the gaps of an
        idle link, not those of a burst of traffic."""
        phi = self._phi
        name = self._by_address.get(sender)
        if phi is None or name is None:
            return
        detector = phi.detector(name)
        if detector is None:
            phi.heartbeat(name, now)
            return
        last = detector.last_heartbeat
        if last is None or now - last >= self._half_beat:
            detector.heartbeat(now)

    def handle(self, sender: Address, message: Message, now: float) -> None:
        self._now = now
        kind = type(message)  # exact types: shuffles are most of the overlay's traffic
        if kind is Heartbeat:
            return  # heard() counted it
        if kind is Shuffle:
            m = message
            if not 0 <= m.ttl <= MAX_WALK or len(m.nodes) > MAX_SAMPLE:  # type: ignore[attr-defined]
                self.stats.malformed += 1
                return
            self._on_shuffle(sender, m.origin, m.nodes, m.ttl)  # type: ignore[attr-defined]
        elif kind is ShuffleReply:
            if self._fresh(message.node):  # type: ignore[attr-defined]
                # At most as many as this node sent: a reply answers one shuffle.
                nodes = message.nodes[: len(self._sent)]  # type: ignore[attr-defined]
                self._merge_passive(nodes, self._sent)
        elif kind is ForwardJoin:
            if not 0 <= message.ttl <= MAX_WALK:  # type: ignore[attr-defined]
                self.stats.malformed += 1
                return
            self._on_forward_join(sender, message.node, message.ttl)  # type: ignore[attr-defined]
        elif kind is Neighbor:
            m = message
            self._on_neighbor(sender, m.node, m.high, m.offer)  # type: ignore[attr-defined]
        elif kind is NeighborReply:
            m = message
            self._on_reply(sender, m.node, m.accepted, m.dropped)  # type: ignore[attr-defined]
        elif kind is Disconnect:
            m = message
            self._on_disconnect(m.node, m.alive, m.instead)  # type: ignore[attr-defined]
        elif kind is Join:
            self._on_join(message.node)  # type: ignore[attr-defined]

    def on_timer(self, key: TimerKey, now: float) -> None:
        self._now = now
        if key == "shuffle":
            self._out.set_timer("shuffle", now + self.config.shuffle_interval_s)
            self._tick(now)
        elif isinstance(key, tuple) and key[0] == "pending":
            pending = self._pending.get(key[1])
            if pending is not None and pending.until <= now:
                self._failed(key[1])
        elif key == "join":
            self._rejoin(now)
        elif key == "beat":
            self._beat(now)

    def on_stream_up(self, peer: Address, now: float) -> None:
        """A link or a request's stream connected; the answer tells the rest."""

    def on_stream_down(self, peer: Address, now: float) -> None:
        self._now = now
        name = self._by_address.get(peer)
        if name is not None:
            lost = self.active[name]
            self._remove_active(name)
            self.stats.links_lost += 1
            self._remember_lost(lost)
            if self.config.knock_on_break and len(self._knocking) < MAX_KNOCKS:
                self._knocking[peer] = lost
                self._out.knock(peer)
        if peer in self._pending:
            self._failed(peer)  # repairs
        elif name is not None:
            self._repair()

    def on_knock(self, peer: Address, listening: bool | None, now: float) -> None:
        """A broken link's peer refused a connection: its process is gone."""
        self._now = now
        knocked = self._knocking.pop(peer, None)
        if knocked is None or listening is not False:
            return  # it listens (a hung or busy process), or no answer: no evidence
        self.stats.ports_closed += 1
        lost = self._lost.get(knocked.name)
        if lost is not None and lost.peer == knocked:
            del self._lost[knocked.name]  # nothing to retry: a restart joins afresh
        self._out.emit(PortClosed(knocked))

    def on_event(self, event: object, now: float) -> None:
        """SWIM's table: the one judge of who is dead.  A member it holds dead
        or left leaves both views (its link closed) and is never taken again
        in that life; a live member it hears of fills a free passive slot; a
        name it holds live at one address is refused at any other."""
        self._now = now
        if isinstance(event, MemberDead | MemberLeft):
            if self._holders.get(event.member.name) == event.member.address:
                del self._holders[event.member.name]
            self._drop_gone(event.member.name, event.member.epoch)
        elif isinstance(event, MemberUpdated):
            self._holders[event.member.name] = event.member.address
        elif isinstance(event, MemberJoined | MemberAlive):
            m = event.member
            self._holders[m.name] = m.address
            if self._gone.get(m.name, m.epoch + 1) <= m.epoch:
                del self._gone[m.name]  # back (a refuted death): SWIM's word again
            if m.name == self.me.name:
                return
            if m.name not in self.active and len(self.passive) < self.config.passive_size:
                self._merge_passive((Peer(m.name, m.address, m.epoch),))

    def drain(self) -> list[Effect]:
        return self._out.drain()

    # ---------------------------------------------------------------- views

    def view(self) -> OverlayView:
        view = self._view
        if view is None or self._changed:
            self._changed = False
            view = self._view = OverlayView(
                tuple(self.active.values()),
                tuple(self.passive.values()),
                tuple(self._pending),
                tuple(lost.peer for lost in self._lost.values() if lost.peer is not None),
                self._links,
            )
        return view

    def describe(self, event: object) -> EventNote | None:
        match event:
            case NeighborUp(peer=peer):
                detail = f"{peer.name} at {peer.address}"
                return EventNote("neighbor-up", detail=detail, severity="debug")
            case NeighborDown(peer=peer):
                detail = f"{peer.name} at {peer.address}"
                return EventNote("neighbor-down", detail=detail, severity="debug")
            case PortClosed(peer=peer):
                detail = f"{peer.name} at {peer.address} refused a connection after its link broke"
                return EventNote("port-closed", detail=detail, severity="debug")
        return None

    @property
    def active_peers(self) -> list[Peer]:
        return list(self.active.values())

    # ---------------------------------------------------------------- join

    def _rejoin(self, now: float) -> None:
        """Ask a seed to take this node in, while it is isolated."""
        if self.active or not self._seeds:
            return
        if not any(p.join for p in self._pending.values()):
            seed = self._rng.choice(self._seeds)
            if seed not in self._pending and len(self._pending) < self.config.max_pending:
                self.stats.rejoins += 1
                self._ask(seed, None, Join(self.peer), high=True, join=True)
        self._out.set_timer("join", now + self.config.join_retry_interval_s)

    def _on_join(self, node: Peer) -> None:
        if node.name == self.me.name or not self._fresh(node):
            return
        self.stats.joins += 1
        self._add_active(node)
        self._out.stream(node.address, NeighborReply(self.peer, True))
        walk = ForwardJoin(node, self.config.active_walk_length)
        for name, peer in self.active.items():
            if name != node.name:
                self._out.stream(peer.address, walk)

    def _on_forward_join(self, sender: Address, node: Peer, ttl: int) -> None:
        self.stats.forward_joins += 1
        if node.name == self.me.name or not self._fresh(node):
            return
        if ttl <= 0 or len(self.active) <= 1:
            self._take(node)
            return
        if ttl == self.config.passive_walk_length:
            self._merge_passive((node,))
        came_from = self._by_address.get(sender)
        onward = [n for n in self.active if n not in (came_from, node.name)]
        if not onward:
            self._take(node)
            return
        peer = self.active[self._rng.choice(onward)]
        self._out.stream(peer.address, ForwardJoin(node, ttl - 1))

    def _take(self, node: Peer) -> None:
        """The end of a join's walk: take ``node`` as an active peer and tell it."""
        if node.name in self.active:
            return
        self._add_active(node)
        self._out.stream(node.address, Neighbor(self.peer, True))

    # ---------------------------------------------------------------- neighbours

    def _on_neighbor(
        self, sender: Address, node: Peer, high: bool, offer: Peer | None = None
    ) -> None:
        if node.name == self.me.name or not self._fresh(node):
            return
        if node.name in self.active or high or len(self.active) < self.config.active_size:
            self.stats.neighbor_accepted += 1
            # In a swap the peer dropped here is told to link up with the one
            # the asker drops, and the asker is told whom this node dropped.
            hand = None
            if offer is not None and offer.name not in (self.me.name, node.name, *self.active):
                hand = offer
            dropped = self._add_active(node, hand=hand)
            told = dropped if offer is not None else None
            self._out.stream(node.address, NeighborReply(self.peer, True, told))
            return
        self.stats.neighbor_refused += 1
        self._merge_passive((node,))
        self._out.stream(sender, NeighborReply(self.peer, False))
        if sender not in self._pending:
            self._out.close_stream(sender)

    def _on_reply(
        self, sender: Address, node: Peer, accepted: bool, dropped: Peer | None = None
    ) -> None:
        pending = self._pending.pop(sender, None)
        if pending is not None:
            self._out.cancel_timer(("pending", sender))
            self._changed = True
        self._lost_seeds.pop(sender, None)
        if node.name == self.me.name or not self._fresh(node):
            return
        if accepted:
            if node.name in self.active:
                return  # a join's contact, a walk's end, or both asked at once
            gave_up = pending is None and sender in self._gave_up
            self._gave_up.pop(sender, None)
            if pending is None and (not gave_up or len(self.active) >= self.config.active_size):
                # Accepted after we gave up and the slot is taken, or never
                # asked here (this node dropped it meanwhile): undo it there.
                if not gave_up:
                    self.stats.unasked += 1
                self._out.stream(sender, Disconnect(self.peer))
                self._out.close_stream(sender)
                self._merge_passive((node,))
                return
            offer = pending.offer if pending is not None else None
            if offer is not None and offer.name in self.active and offer.name != node.name:
                # The swap's other half: drop the offered peer, and hand it the
                # one the answerer dropped (or the answerer, if it dropped none).
                hand = dropped if dropped is not None and dropped.name != self.me.name else node
                self._add_active(node, victim=offer.name, hand=hand)
            else:
                self._add_active(node)
            return
        self._merge_passive((node,))  # refused: keep it passive
        if sender not in self._by_address:
            self._out.close_stream(sender)
        if pending is not None:
            self._round.refused += 1
            if self._round.refused < self.config.repair_attempts:
                self._repair()

    def _on_disconnect(self, node: Peer, alive: bool, instead: Peer | None = None) -> None:
        self.stats.disconnects += 1
        if not self._fresh(node):  # older: refused; newer: the old life's link is gone
            return
        known = self.active.get(node.name)
        if known is None or known.epoch != node.epoch:
            return
        self._remove_active(node.name)
        self._out.close_stream(node.address)
        if alive:
            self._merge_passive((node,))
        # Not back to the dropper in this round: it is full, and the close of
        # the link it dropped would fail the request.
        self._round.asked.add(node.name)
        prefer = None
        if (
            instead is not None
            and instead.name not in (self.me.name, node.name)
            and self._fresh(instead)
            and instead.name not in self.active
        ):
            # Ask the one taken in our place first: it links us back to the
            # dropper's side, so a drop cannot split the overlay.
            self._merge_passive((instead,))
            prefer = instead.name
        self._repair(prefer)

    def _add_active(
        self, node: Peer, *, victim: str | None = None, hand: Peer | None = None
    ) -> Peer | None:
        """Put ``node`` in the active view, dropping ``victim`` (or a random
        peer) if it is full; the dropped peer is told to ask ``hand`` (in a
        small overlay by default ``node``).  Returns the peer dropped, if any."""
        known = self.active.get(node.name)
        if known is not None:
            if known.epoch >= node.epoch:
                return None
            self._remove_active(node.name)  # a newer life: the old one's link is gone
            self._out.close_stream(known.address)
        self._changed = True
        self.passive.pop(node.name, None)
        self._lost.pop(node.name, None)
        if self._pending.pop(node.address, None) is not None:
            # Both asked at once, and its request came first: ours is answered.
            self._out.cancel_timer(("pending", node.address))
        dropped = None
        if len(self.active) >= self.config.active_size:
            if victim is None or victim not in self.active:
                victim = self._rng.choice(list(self.active))
            dropped = self.active[victim]
            self._remove_active(victim)
            if hand is None and self._small_world():
                hand = node
            self._out.stream(dropped.address, Disconnect(self.peer, True, hand))
            self._out.close_stream(dropped.address)
            self._merge_passive((dropped,))
        self.active[node.name] = node
        self._by_address[node.address] = node.name
        if self._phi is not None:
            self._phi.heartbeat(node.name, self._now)  # judged from the moment it is linked
        # Own the link even where nothing is sent on it (an accept that came
        # after the request gave up), so its loss is heard here.
        self._out.open_stream(node.address)
        self._out.emit(NeighborUp(node))
        return dropped

    def _remove_active(self, name: str) -> None:
        peer = self.active.pop(name)
        self._by_address.pop(peer.address, None)
        if self._phi is not None:
            self._phi.remove(name)
        self._changed = True
        self._out.emit(NeighborDown(peer))

    # ---------------------------------------------------------------- repair

    def _repair(self, prefer: str | None = None) -> None:
        """Ask a passive peer to fill a free slot of the active view, if there
        is one: ``prefer`` if it can be asked, else one at random."""
        cfg = self.config
        if len(self.active) + self._asking() >= cfg.active_size:
            return
        if len(self._pending) >= cfg.max_pending:
            return
        candidates = [
            name
            for name, peer in self.passive.items()
            if name not in self._round.asked and peer.address not in self._pending
        ]
        if not candidates:
            if not self.active and not self._pending and not self.passive:
                self._rejoin(self._now)
            return
        name = prefer if prefer in candidates else self._rng.choice(candidates)
        self._round.asked.add(name)
        peer = self.passive[name]
        high = len(self.active) < cfg.min_active
        if not high and self._starved >= cfg.starved_rounds:
            high = True  # refused for starved_rounds periods: take a slot
            self._starved = 0
            self.stats.escalations += 1
        self._ask(peer.address, peer, Neighbor(self.peer, high), high=high, join=False)

    def _asking(self) -> int:
        return sum(1 for p in self._pending.values() if not p.join)

    def _ask(
        self,
        to: Address,
        peer: Peer | None,
        message: Message,
        *,
        high: bool,
        join: bool,
        offer: Peer | None = None,
    ) -> None:
        until = self._now + self.config.neighbor_timeout_s
        self._pending[to] = _Pending(peer, high, join, until, offer)
        self._changed = True
        if not join:
            self.stats.neighbor_requests += 1
        self._out.stream(to, message)
        self._out.set_timer(("pending", to), until)

    def _failed(self, address: Address) -> None:
        """A request's peer could not be reached: it leaves the passive view."""
        pending = self._pending.pop(address)
        self._out.cancel_timer(("pending", address))
        if address not in self._by_address:
            self._out.close_stream(address)
        self._changed = True
        gave_up = self._gave_up
        gave_up[address] = None  # its accept may still come: taken if there is room
        if len(gave_up) > 2 * self.config.max_pending:
            del gave_up[next(iter(gave_up))]
        if pending.join:
            self._remember_seed(address)
            return  # the join timer asks again, if this node stays isolated
        self.stats.neighbor_failed += 1
        peer = pending.peer
        if peer is not None:
            known = self.passive.get(peer.name)
            if known is not None and known.epoch <= peer.epoch:
                del self.passive[peer.name]
            self._remember_lost(peer)
        self._repair()

    def _remember_lost(self, peer: Peer) -> None:
        cfg = self.config
        if cfg.max_lost == 0:
            return
        entry = self._lost.get(peer.name)
        if entry is not None:
            entry.wait = min(entry.wait * 2, cfg.lost_retry_max_s)
            entry.next_try = self._now + entry.wait
            return
        while len(self._lost) >= cfg.max_lost:
            del self._lost[next(iter(self._lost))]
        wait = cfg.shuffle_interval_s
        self._lost[peer.name] = _Lost(peer, self._now + wait, wait, self._now + cfg.lost_ttl_s)

    def _remember_seed(self, seed: Address) -> None:
        """A seed that could not be reached is asked again (with backoff) even
        once this node has peers: two sides that never linked find each other."""
        entry = self._lost_seeds.get(seed)
        cfg = self.config
        if entry is not None:
            entry.wait = min(entry.wait * 2, cfg.lost_retry_max_s)
            entry.next_try = self._now + entry.wait
            return
        wait = cfg.shuffle_interval_s
        self._lost_seeds[seed] = _Lost(None, self._now + wait, wait, self._now + cfg.lost_ttl_s)

    def _drop_gone(self, name: str, epoch: int) -> None:
        gone = self._gone
        gone.pop(name, None)
        gone[name] = epoch
        if len(gone) > MAX_GONE:
            del gone[next(iter(gone))]
        dropped = False
        peer = self.active.get(name)
        if peer is not None and peer.epoch <= epoch:
            self._remove_active(name)
            self._out.close_stream(peer.address)
            dropped = True
        passive = self.passive.get(name)
        if passive is not None and passive.epoch <= epoch:
            del self.passive[name]
            self._changed = True
            dropped = True
        lost = self._lost.get(name)
        if lost is not None and lost.peer is not None and lost.peer.epoch <= epoch:
            del self._lost[name]
        if dropped:
            self.stats.dropped_by_swim += 1
            self._repair()

    # ---------------------------------------------------------------- link heartbeats

    def _beat(self, now: float) -> None:
        """Drop the links whose peer fell silent (φ at its threshold), and send
        a heartbeat on each of the others."""
        phi = self._phi
        assert phi is not None
        self._out.set_timer("beat", now + self.config.heartbeat_interval_s)
        silent = [name for name in self.active if not phi.is_available(name, now)]
        for name in silent:
            peer = self.active[name]
            self._remove_active(name)
            self._out.close_stream(peer.address)
            self.stats.links_silent += 1
            self._remember_lost(peer)
        links = []
        for name, peer in self.active.items():
            self._out.stream(peer.address, HEARTBEAT)
            detector = phi.detector(name)
            last = None if detector is None else detector.last_heartbeat
            links.append(LinkHealth(name, phi.phi(name, now), 0.0 if last is None else now - last))
        self.stats.heartbeats_sent += len(links)
        self._links = tuple(links)
        self._changed = True
        if silent:
            self._repair()

    # ---------------------------------------------------------------- shuffle

    def _tick(self, now: float) -> None:
        if self._watching is None:
            self._watching = now
        short = len(self.active) < self.config.active_size
        self._starved = self._starved + 1 if short and self._round.refused else 0
        self._round = _Round()
        self._shuffle()
        self._repair()
        self._rewire()
        self._retry_lost(now)
        if not self.active and not self._pending and not self.passive:
            self._rejoin(now)

    def _heard_from(self, origin: str) -> None:
        """Note a shuffle walk of ``origin``'s passing through (bounded: past
        the small-world bound the oldest goes)."""
        heard = self._heard
        heard.pop(origin, None)
        heard[origin] = self._now
        if len(heard) > SMALL_WORLD_FACTOR * self.config.active_size:
            del heard[next(iter(heard))]

    def _small_world(self) -> bool:
        """True when fewer than ``SMALL_WORLD_FACTOR * active_size`` nodes'
        shuffles passed here in the last ``SMALL_WORLD_PERIODS`` periods: the
        overlay this node can see is small, so it may be a closed piece.  In a
        large overlay a node hears dozens.  False until the node has listened
        for that long."""
        heard, horizon = (
            self._heard,
            self._now - SMALL_WORLD_PERIODS * self.config.shuffle_interval_s,
        )
        if self._watching is None or self._watching > horizon:
            return False
        while heard and next(iter(heard.values())) < horizon:
            del heard[next(iter(heard))]
        return len(heard) < SMALL_WORLD_FACTOR * self.config.active_size

    def _rewire(self) -> None:
        """Now and then a full node swaps an active peer for a passive one: it
        asks the passive peer P with high priority and offers its peer Y; P
        drops one of its own, Q, tells Q to ask Y, and this node drops Y and
        tells it to ask Q.  Degrees are kept, and an overlay split into full
        pieces (which no request would join) joins again."""
        cfg = self.config
        if not cfg.rewire_periods or len(self.active) < cfg.active_size or self._pending:
            return
        if not self._small_world():
            return
        if self._rng.random() >= 1.0 / cfg.rewire_periods:
            return
        candidates = [p for name, p in self.passive.items() if name not in self.active]
        if not candidates:
            return
        target = self._rng.choice(candidates)
        offer = self.active[self._rng.choice(list(self.active))]
        self.stats.rewires += 1
        self._ask(
            target.address,
            target,
            Neighbor(self.peer, True, offer),
            high=True,
            join=False,
            offer=offer,
        )

    def _shuffle(self) -> None:
        if not self.active:
            return
        cfg, rng = self.config, self._rng
        target = self.active[rng.choice(list(self.active))]
        actives = [p for p in self.active.values() if p.name != target.name]
        sample = [self.peer]
        sample += rng.sample(actives, min(cfg.shuffle_active, len(actives)))
        passives = list(self.passive.values())
        sample += rng.sample(passives, min(cfg.shuffle_passive, len(passives)))
        self._sent = tuple(p.name for p in sample)
        self.stats.shuffles += 1
        self._out.stream(target.address, Shuffle(self.peer, tuple(sample), cfg.shuffle_walk_length))

    def _on_shuffle(self, sender: Address, origin: Peer, nodes: tuple[Peer, ...], ttl: int) -> None:
        if origin.name == self.me.name or not self._fresh(origin):
            return
        self._heard_from(origin.name)
        ttl -= 1
        if ttl > 0 and len(self.active) > 1:
            came_from = self._by_address.get(sender)
            onward = [n for n in self.active if n not in (came_from, origin.name)]
            if onward:
                peer = self.active[self._rng.choice(onward)]
                self._out.stream(peer.address, Shuffle(origin, nodes, ttl))
                return
        passives = list(self.passive.values())
        reply = self._rng.sample(passives, min(len(nodes), len(passives)))
        self.stats.shuffle_replies += 1
        to = origin.address
        self._out.stream(to, ShuffleReply(self.peer, tuple(reply)))
        if to not in self._by_address and to not in self._pending:
            self._out.close_stream(to)
        self._merge_passive(nodes, tuple(p.name for p in reply))

    def _merge_passive(self, nodes: Iterable[Peer], sent: tuple[str, ...] = ()) -> None:
        """Add ``nodes`` to the passive view, evicting first the names in ``sent``."""
        passive, size = self.passive, self.config.passive_size
        for node in nodes:
            name = node.name
            if name == self.me.name:
                continue
            active = self.active.get(name)
            if active is not None:
                if active.epoch >= node.epoch:
                    continue
                # A newer life, heard of second hand: the old one's link is gone.
                self._remove_active(name)
                self._out.close_stream(active.address)
            known = passive.get(name)
            if known is not None:
                if known.epoch < node.epoch:
                    passive[name] = node
                continue
            if len(passive) >= size:
                evictable = [n for n in sent if n in passive] or list(passive)
                del passive[self._rng.choice(evictable)]
            passive[name] = node
            self._changed = True

    def _retry_lost(self, now: float) -> None:
        lost = self._lost
        for name in [n for n, e in lost.items() if e.until <= now]:
            del lost[name]
        if len(self._pending) >= self.config.max_pending:
            return
        active, pending = self.active, self._pending
        due = [
            e
            for e in lost.values()
            if e.next_try <= now
            and e.peer is not None
            and e.peer.name not in active
            and e.peer.address not in pending
        ]
        seeds = self._lost_seeds
        for seed in [a for a, e in seeds.items() if e.until <= now]:
            del seeds[seed]
        for seed in [a for a in seeds if a in self._by_address]:
            del seeds[seed]  # linked to it meanwhile
        due_seeds = [a for a, e in seeds.items() if e.next_try <= now and a not in pending]
        if due_seeds and len(pending) < self.config.max_pending:
            seed = self._rng.choice(due_seeds)
            self.stats.rejoins += 1
            self._ask(seed, None, Join(self.peer), high=True, join=True)
        if not due or len(pending) >= self.config.max_pending:
            return
        entry = self._rng.choice(due)
        entry.wait = min(entry.wait * 2, self.config.lost_retry_max_s)
        entry.next_try = now + entry.wait
        self.stats.lost_retries += 1
        peer = entry.peer
        assert peer is not None
        self._ask(peer.address, peer, Neighbor(self.peer, True), high=True, join=False)

    # ---------------------------------------------------------------- lives

    def _fresh(self, node: Peer) -> bool:
        """False (and counted) for an older life than a view holds, or one SWIM
        holds gone; a newer life replaces the older one in every view."""
        name = node.name
        if self._gone.get(name, -1) >= node.epoch:
            self.stats.stale += 1
            return False
        holder = self._holders.get(name)
        if holder is not None and holder != node.address:
            # SWIM holds this name live elsewhere: the same join gate as its own.
            self.stats.impostors += 1
            return False
        for view in (self.active, self.passive):
            known = view.get(name)
            if known is None:
                continue
            if node.epoch < known.epoch:
                self.stats.stale += 1
                return False
            if node.epoch > known.epoch:
                if view is self.active:
                    self._remove_active(name)
                    self._out.close_stream(known.address)
                else:
                    del view[name]
                self._changed = True
        lost = self._lost.get(name)
        if lost is not None and lost.peer is not None and lost.peer.epoch < node.epoch:
            lost.peer = node
        return True


def _check(config: HyParViewConfig, room: WireRoom, context: PartContext) -> None:
    if config.enabled and 2 * config.heartbeat_interval_s >= room.stream_idle_s:
        raise ConfigError(
            f"NodeConfig: overlay.heartbeat_interval_s ({config.heartbeat_interval_s}) must be "
            f"under half of transport.idle_timeout_s ({room.stream_idle_s}), or the transport "
            "closes the overlay's links as idle"
        )


def _build(config: HyParViewConfig, context: PartContext) -> PartFactory | None:
    if not config.enabled:
        return None

    def make(me: NodeId, rng: random.Random) -> HyParView:
        return HyParView(me, rng, config, seeds=context.seeds)

    return make


SPEC: PartSpec[HyParViewConfig] = PartSpec("overlay", HyParViewConfig, _build, check=_check)
"""The overlay in the node's catalogue: on when an ``overlay`` section is
given; ``[overlay]`` in TOML, ``NodeConfig.overlay``."""
