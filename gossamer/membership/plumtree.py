"""Plumtree: broadcast down a spanning tree of the overlay, repaired by lazy announcements.

Leitão, Pereira, Rodrigues, *Epidemic Broadcast Trees*, SRDS 2007 (technical
report DI-FCUL TR-07-14).

The node's peers are HyParView's active view (:class:`NeighborUp` and
:class:`NeighborDown`).  Each peer is **eager** (sent the payload) or
**lazy** (sent only the message's id).  A new peer starts eager, so the
first broadcast floods; every duplicate it causes prunes a link:

* A first :class:`Gossip` is delivered, forwarded to the eager peers and
  announced to the lazy ones, and its sender becomes eager.  A duplicate
  moves its sender to lazy and is answered with :class:`Prune`, which moves
  this node to lazy at the sender.  What is left eager is a spanning tree.
* Announcements (:class:`IHave`) are batched: queued (at most
  ``max_ihave_queue``; what would exceed it is shed and counted) and sent
  every ``ihave_window_s``, at most ``max_ihave_batch`` ids a message.
* An IHave for an unknown id starts timer 1 (``graft_timeout_s``); when it
  expires the id is still missing, so the node sends :class:`Graft` to the
  first peer that announced it (which becomes eager: the tree is repaired)
  and starts timer 2 (``graft_retry_s``) for the next announcer.  A Graft
  moves its sender to eager and is answered with the payload.
* Optimization (the report's §3.8): when a Gossip arrives after ``round``
  hops and a lazy peer announced the same id ``threshold`` or more hops
  earlier, the node grafts that peer (without asking for the payload) and
  prunes the sender.  Off by default (``optimize``): measured at 10,000
  nodes with broadcasts from random nodes, it made the shared tree's last
  delivery hop longer, not shorter (14.4 without, 19.2 with): each swap fits
  the tree to one origin and unfits it for the others.  It needs an
  announcement to beat the payload, so it seldom fires where the IHave
  window is longer than the hops it would save (a LAN).

**One shared tree.**  The report compares a tree per sender with one tree
for all senders; ``benchmarks.overlay_paper`` measured both at 10,000
nodes (docs/benchmarks.md).  Per-sender trees deliver in fewer hops (last
delivery hop 8.0 against 14.4, both RMR 0) but every new sender floods once
(RMR 3 on its first broadcast), and a node keeps eager and lazy sets per
sender.  In gossamer every node broadcasts (SWIM's news and the
replicator's deltas are to travel this tree), so per-sender trees would
cost a flood per node and sets per node, and again whenever ``max_trees``
evicts one.  One shared
tree costs the same whoever sends, and on a LAN its extra hops cost
fractions of a millisecond; ``per_sender_trees`` is there for a WAN
deployment with few senders (bounded by ``max_trees``; the least recently
used tree goes).

**The handler.**  Layers above register a :class:`BroadcastHandler` per
channel.  ``deliver`` says whether a payload was news: stale news is
neither forwarded nor announced (a delta already merged).  ``replaced`` is
asked for a grafted message no longer cached; True (newer state superseded
it) sends :class:`Replaced`, and the grafter stops waiting for it.  A
channel no handler serves delivers every payload as a :class:`Delivered`
event for the application.

**Ids.**  A message's id is 16 bytes of BLAKE2b over its origin's name and
boot epoch and the origin's sequence number: the same on every node and in
every process, and never reused by a restarted origin.

Bounds: payloads are cached for ``cache_ttl_s`` and at most
``max_cache_messages`` (the oldest goes); ids seen are remembered for
``seen_ttl_s`` and at most ``max_seen``; missing ids at most
``max_missing``, each with at most ``max_announcers`` announcers.

Invariants: a message is delivered at most once per node while its id is
remembered; eager and lazy are disjoint and hold only active peers; a node
announces or forwards only what its handler called new.
"""

from __future__ import annotations

__all__ = [
    "SPEC",
    "BroadcastHandler",
    "BroadcastStats",
    "BroadcastView",
    "Delivered",
    "Gossip",
    "Graft",
    "IHave",
    "Plumtree",
    "PlumtreeConfig",
    "Prune",
    "Publish",
    "Replaced",
    "message_id",
]

import hashlib
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gossamer.config import WireRoom, check_int, check_positive
from gossamer.effects import Effect, EventNote, Outbox, PartContext, PartFactory, PartSpec, TimerKey
from gossamer.errors import ConfigError, LocalError
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import NeighborDown, NeighborUp
from gossamer.observe import DROPPED, SHED, ApiRequest, Family, Route, Sample, counter
from gossamer.wire import Message, registry

# --------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class PlumtreeConfig:
    """Broadcast over the overlay: timers, batching and bounds."""

    enabled: bool = True
    """Run broadcast (``broadcast`` part); needs the ``overlay`` part."""
    ihave_window_s: float = 0.01
    """IHave announcements wait up to this long to share a message, in seconds."""
    max_ihave_batch: int = 256
    """Ids in one IHave message (17 bytes each, about 4.4 KB in all)."""
    max_ihave_queue: int = 65_536
    """Bound on announcements waiting for the window; the excess is shed."""
    graft_timeout_s: float = 0.1
    """Timer 1: how long an announced id may stay missing before a Graft,
    in seconds.  Above the time the tree takes to deliver (hops x one-way
    latency) plus ``ihave_window_s``, or grafts race the tree."""
    graft_retry_s: float = 0.05
    """Timer 2: how long a Graft waits before the next announcer is tried,
    in seconds; about a round trip."""
    optimize: bool = False
    """The report's §3.8: shorten the tree when an announcement beats the payload."""
    optimize_threshold: int = 7
    """Hops an announcement must beat the payload by before the tree is
    changed: the report's 7 for a shared tree (3 with per-sender trees);
    lower changes the tree more often."""
    per_sender_trees: bool = False
    """One tree per origin instead of one shared tree (see the module docstring)."""
    max_trees: int = 1_024
    """Bound on per-sender trees; the least recently used goes."""
    cache_ttl_s: float = 30.0
    """How long a payload stays cached to answer Grafts, in seconds."""
    max_cache_messages: int = 10_000
    """Bound on cached payloads; the oldest goes first."""
    seen_ttl_s: float = 120.0
    """How long a delivered id is remembered, in seconds: longer than any
    path through the tree, so a late duplicate is not delivered twice."""
    max_seen: int = 200_000
    """Bound on remembered ids (about 100 bytes each); the oldest goes."""
    max_missing: int = 10_000
    """Bound on announced ids waiting for their payload."""
    max_announcers: int = 8
    """Announcers remembered per missing id (the active view's size is enough)."""
    recent_s: float = 5.0
    """Messages cached this recently (seconds) are announced to a new
    neighbour, so a broadcast under way when a link is made to repair the
    overlay also crosses the new link.  Not in the report, whose repairs
    only serve later broadcasts."""
    max_recent: int = 64
    """Bound on the messages announced to a new neighbour."""
    max_cache_bytes: int = 16 * 1024 * 1024
    """Bound on the payload bytes cached; the oldest go first."""
    max_broadcast_bytes: int = 64 * 1024
    """Largest payload a broadcast may carry."""

    def __post_init__(self) -> None:
        owner = "PlumtreeConfig"
        for flag in ("enabled", "optimize", "per_sender_trees"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{owner}.{flag} must be a bool, got {getattr(self, flag)!r}")
        timings: tuple[str, ...] = ("ihave_window_s", "graft_timeout_s", "graft_retry_s")
        timings += ("cache_ttl_s", "seen_ttl_s")
        for name in timings:
            check_positive(owner, name, getattr(self, name))
        check_int(owner, "max_ihave_batch", self.max_ihave_batch, 1, 65_536)
        check_int(owner, "max_ihave_queue", self.max_ihave_queue, 1, 10_000_000)
        check_int(owner, "optimize_threshold", self.optimize_threshold, 1, 1_000)
        check_int(owner, "max_trees", self.max_trees, 1, 1_000_000)
        check_int(owner, "max_cache_messages", self.max_cache_messages, 1, 10_000_000)
        check_int(owner, "max_seen", self.max_seen, 1, 100_000_000)
        check_int(owner, "max_missing", self.max_missing, 1, 10_000_000)
        check_positive(owner, "recent_s", self.recent_s)
        check_int(owner, "max_recent", self.max_recent, 0, 65_536)
        check_int(owner, "max_announcers", self.max_announcers, 1, 1_024)
        check_int(owner, "max_broadcast_bytes", self.max_broadcast_bytes, 1, 64 * 1024 * 1024)
        check_int(owner, "max_cache_bytes", self.max_cache_bytes, 1, 1 << 40)
        if self.max_cache_bytes < self.max_broadcast_bytes:
            raise ConfigError(
                f"{owner}.max_cache_bytes ({self.max_cache_bytes}) must hold one broadcast "
                f"(max_broadcast_bytes = {self.max_broadcast_bytes})"
            )
        if self.max_seen < self.max_cache_messages:
            raise ConfigError(
                f"{owner}.max_seen ({self.max_seen}) must be at least max_cache_messages "
                f"({self.max_cache_messages}): a cached payload's id must still be known"
            )
        if self.seen_ttl_s < self.cache_ttl_s:
            raise ConfigError(
                f"{owner}.seen_ttl_s ({self.seen_ttl_s}) must be at least cache_ttl_s "
                f"({self.cache_ttl_s}): a cached payload's id must still be known"
            )
        if self.graft_timeout_s <= self.ihave_window_s:
            raise ConfigError(
                f"{owner}.graft_timeout_s ({self.graft_timeout_s}) must exceed "
                f"ihave_window_s ({self.ihave_window_s}), or every announcement grafts"
            )

    # The presets are what a node on sockets starts from.

    @classmethod
    def lan(cls) -> PlumtreeConfig:
        return cls()

    @classmethod
    def wan(cls) -> PlumtreeConfig:
        return cls(ihave_window_s=0.05, graft_timeout_s=1.0, graft_retry_s=0.5)

    @classmethod
    def local(cls) -> PlumtreeConfig:
        return cls()


# --------------------------------------------------------------------------
# Messages (broadcast's block of type ids is 64..95, wire.TYPE_ID_RANGES; append only).

ID_BYTES: Final = 16
MAX_CHANNEL_BYTES: Final = 255
"""The longest channel name (UTF-8): a topic, not a payload."""
OWN_CHANNELS: Final = "gossamer/"
"""The node's own layers' channels begin so (SWIM's news); an application's
topic may not."""
MAX_ROUND: Final = 65_535
"""A hop count above this is a peer's garbage: no path through an overlay is that long."""


def message_id(origin: str, epoch: int, seq: int) -> bytes:
    """The id of ``origin``'s ``seq``-th broadcast in life ``epoch``."""
    text = f"{origin}\x00{epoch}\x00{seq}".encode()
    return hashlib.blake2b(text, digest_size=ID_BYTES).digest()


@registry.message(64)
@dataclass(frozen=True, slots=True)
class Gossip(Message):
    """A payload, ``round`` hops from its ``origin``, for the handler of ``channel``."""

    id: bytes
    origin: str
    round: int
    channel: str
    payload: bytes


@registry.message(65)
@dataclass(frozen=True, slots=True)
class IHave(Message):
    """Announcements: ``ids[i]`` was delivered here after ``rounds[i]`` hops
    (from ``origins[i]``, with per-sender trees; empty with the shared tree)."""

    ids: tuple[bytes, ...]
    rounds: tuple[int, ...]
    origins: tuple[str, ...] = ()


@registry.message(66)
@dataclass(frozen=True, slots=True)
class Graft(Message):
    """Make our link eager in ``tree``; send message ``id`` (None: only the link)."""

    id: bytes | None
    round: int
    tree: str = ""
    """The tree's origin with per-sender trees; empty for the shared tree."""


@registry.message(67)
@dataclass(frozen=True, slots=True)
class Prune(Message):
    """Make our link lazy in ``tree``: I had your Gossip already."""

    tree: str = ""
    """The tree's origin with per-sender trees; empty for the shared tree."""


@registry.message(68)
@dataclass(frozen=True, slots=True)
class Replaced(Message):
    """The answer to a Graft for ``id``: newer state replaced it; stop waiting."""

    id: bytes


# --------------------------------------------------------------------------
# The handler interface


class BroadcastHandler(Protocol):
    """What a layer above Plumtree gives it for one channel.

    Both calls come on the core's thread, inside an input, and must not
    block.  The payload belongs to the handler once delivered.
    """

    def deliver(self, id: bytes, origin: str, payload: bytes, hops: int, now: float) -> bool:
        """A payload arrived for the first time, ``hops`` links from its origin;
        True if it was news (it is then forwarded), False if this node already
        had newer state."""
        ...

    def replaced(self, id: bytes) -> bool:
        """A peer grafts message ``id``, no longer cached here: True if newer
        state has replaced it (the peer then stops waiting for it)."""
        ...


@dataclass(frozen=True, slots=True)
class Publish:
    """Another part's broadcast (SWIM's news): ``payload`` on ``channel``,
    which every node's parts then hear as :class:`Delivered`."""

    channel: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Delivered:
    """A broadcast reached this node: ``payload`` from ``origin`` on ``channel``."""

    id: bytes
    origin: str
    channel: str
    payload: bytes
    round: int


# --------------------------------------------------------------------------
# Stats and the view


@dataclass(slots=True)
class BroadcastStats:
    """Counters of broadcast."""

    broadcasts: int = counter("Broadcasts this node originated.")
    delivered: int = counter("Payloads delivered here for the first time.")
    stale: int = counter("Payloads delivered here that the handler called old news.")
    duplicates: int = counter("Payloads received again (each prunes a link).")
    gossip_sent: int = counter("Payload messages sent.")
    ihave_sent: int = counter("IHave messages sent (each carries a batch of ids).")
    ihave_ids_sent: int = counter("Ids announced in IHave messages.")
    ihave_shed: int = SHED.series("broadcast_ihave")
    grafts_sent: int = counter("Grafts sent (repairs and optimizations).")
    grafts_answered: int = counter("Grafts answered with the payload.")
    grafts_unanswered: int = counter("Grafts for a message neither cached nor known.")
    prunes_sent: int = counter("Prunes sent.")
    replaced: int = counter("Grafts answered that newer state replaced the message.")
    replaced_heard: int = counter("Grafts of this node answered that way.")
    optimizations: int = counter("Tree changes by the report's optimization.")
    publish_refused: int = DROPPED.series("broadcast_publish_refused")
    """Another part's broadcast over ``max_broadcast_bytes`` (its bug)."""
    missing_shed: int = SHED.series("broadcast_missing")
    malformed: int = DROPPED.series("broadcast_malformed")
    """Messages with an id of the wrong size, a hop count out of range, or
    IHave lists of different lengths (a peer's bug)."""
    stray: int = DROPPED.series("broadcast_stray")
    """Grafts and Replaced from a peer that is not a neighbour, or Replaced
    for an id this node did not graft."""


@dataclass(frozen=True, slots=True)
class BroadcastView:
    """Eager and lazy peers of the shared tree (or of every tree) and the cache."""

    eager: tuple[str, ...]
    lazy: tuple[str, ...]
    trees: int
    cached: int
    seen: int
    missing: int

    def routes(self) -> Mapping[str, Route]:
        return {"broadcast": self._route}

    def _route(self, request: ApiRequest) -> dict[str, Any]:
        return {
            "eager": list(self.eager),
            "lazy": list(self.lazy),
            "trees": self.trees,
            "cached": self.cached,
            "seen": self.seen,
            "missing": self.missing,
        }

    def samples(self) -> list[Sample]:
        return [
            Sample(_PEERS, len(self.eager), "eager"),
            Sample(_PEERS, len(self.lazy), "lazy"),
            Sample(_CACHED, self.cached),
        ]


_PEERS: Final = Family("gossamer_broadcast_peers", "Broadcast peers by kind.", "gauge", "kind")
_CACHED: Final = Family("gossamer_broadcast_cached", "Payloads cached to answer grafts.", "gauge")


# --------------------------------------------------------------------------
# The core


class _Tree:
    """Eager and lazy peers of one tree, by name."""

    __slots__ = ("eager", "lazy")

    def __init__(self, peers: Mapping[str, Address]) -> None:
        self.eager: dict[str, None] = dict.fromkeys(peers)
        self.lazy: dict[str, None] = {}


class Plumtree:
    """One node's Plumtree (sans-IO; see the module docstring), the ``broadcast`` part."""

    name = "broadcast"
    messages: tuple[type[Message], ...] = (Gossip, IHave, Graft, Prune, Replaced)
    subscribes: tuple[type, ...] = (NeighborUp, NeighborDown, Publish)

    def __init__(
        self, me: NodeId, rng: random.Random, config: PlumtreeConfig | None = None
    ) -> None:
        self.config = config if config is not None else PlumtreeConfig()
        self.me = me
        self._rng = rng
        self._out = Outbox()
        self.stats = BroadcastStats()
        self._peers: dict[str, Address] = {}  # the active view
        self._names: dict[Address, str] = {}
        self._shared = _Tree({})
        self._trees: OrderedDict[str, _Tree] = OrderedDict()  # per sender, by origin
        self._handlers: dict[str, BroadcastHandler] = {}
        # id -> (origin, round, channel, payload, cached at)
        self._cache: OrderedDict[bytes, tuple[str, int, str, bytes, float]] = OrderedDict()
        self._cached_bytes = 0
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        # id -> [(announcer, round)], in announcement order
        self._missing: dict[bytes, list[tuple[str, int, str]]] = {}
        # peer -> [(id, round, tree)] waiting for the window
        self._queue: dict[str, list[tuple[bytes, int, str]]] = {}
        self._queued = 0
        self._flush_set = False
        self._seq = 0
        self._now = 0.0
        self._view: BroadcastView | None = None
        self._changed = True

    # ---------------------------------------------------------------- the layers above

    def register(self, channel: str, handler: BroadcastHandler) -> None:
        """Serve ``channel`` with ``handler`` (LocalError if it is served already)."""
        if not isinstance(channel, str):
            raise LocalError(f"a channel is a str, got {channel!r}")
        if channel in self._handlers:
            raise LocalError(f"channel {channel!r} already has a handler")
        self._handlers[channel] = handler

    def broadcast(self, payload: bytes, now: float, channel: str = "") -> bytes:
        """Send ``payload`` to every node; returns its id.  The default
        handler of an unregistered channel delivers it as :class:`Delivered`."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise LocalError(f"a broadcast payload is bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if len(payload) > self.config.max_broadcast_bytes:
            raise LocalError(
                f"a broadcast payload is at most broadcast.max_broadcast_bytes = "
                f"{self.config.max_broadcast_bytes} bytes, got {len(payload)}"
            )
        if not isinstance(channel, str) or len(channel.encode()) > MAX_CHANNEL_BYTES:
            raise LocalError(
                f"a broadcast channel is a str of at most {MAX_CHANNEL_BYTES} bytes, "
                f"got {channel!r}"
            )
        self._now = now
        self._seq += 1
        self.stats.broadcasts += 1
        me = self.me
        mid = message_id(me.name, me.epoch, self._seq)
        self._remember(mid, me.name, 0, channel, payload)
        if channel not in self._handlers:  # the application's: its subscribers here hear it too
            self._out.emit(Delivered(mid, me.name, channel, payload, 0))
        tree = self._tree(me.name)
        self._push(tree, mid, me.name, 1, channel, payload, None)
        return mid

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        self._now = now
        self._out.set_timer("sweep", now + self._sweep_every())

    def handle(self, sender: Address, message: Message, now: float) -> None:
        self._now = now
        name = self._names.get(sender)
        kind = type(message)
        if kind is Gossip:
            self._on_gossip(name, sender, message)  # type: ignore[arg-type]
        elif kind is IHave:
            if name is not None:
                self._on_ihave(name, message)  # type: ignore[arg-type]
        elif kind is Graft:
            if name is None:
                self.stats.stray += 1  # the link went meanwhile: nothing to repair
            else:
                self._on_graft(name, sender, message)  # type: ignore[arg-type]
        elif kind is Prune:
            if name is not None:
                _make_lazy(self._tree(message.tree), name)  # type: ignore[attr-defined]
                self._changed = True
        elif kind is Replaced:
            mid = message.id  # type: ignore[attr-defined]
            if name is None or mid not in self._missing:
                self.stats.stray += 1  # only an answer to our own Graft may mark an id seen
                return
            self.stats.replaced_heard += 1
            self._seen_id(mid)
            self._forget_missing(mid)

    def on_timer(self, key: TimerKey, now: float) -> None:
        self._now = now
        if key == "ihave":
            self._flush_set = False
            self._flush()
        elif key == "sweep":
            self._sweep(now)
            self._out.set_timer("sweep", now + self._sweep_every())
        elif isinstance(key, tuple) and key[0] == "graft":
            self._graft_timer(key[1])

    def on_stream_up(self, peer: Address, now: float) -> None:
        """Links are HyParView's: NeighborUp says when one is usable."""

    def on_stream_down(self, peer: Address, now: float) -> None:
        """Links are HyParView's: NeighborDown says when one is gone."""

    def on_event(self, event: object, now: float) -> None:
        self._now = now
        self._changed = True
        if isinstance(event, Publish):
            try:
                self.broadcast(event.payload, now, event.channel)
            except LocalError:
                self.stats.publish_refused += 1
        elif isinstance(event, NeighborUp):
            peer = event.peer
            old = self._peers.get(peer.name)
            if old is not None and old != peer.address:
                self._names.pop(old, None)
            self._peers[peer.name] = peer.address
            self._names[peer.address] = peer.name
            for tree in self._all_trees():
                _make_eager(tree, peer.name)
            self._announce_recent(peer.name)
        elif isinstance(event, NeighborDown):
            peer = event.peer
            if self._peers.get(peer.name) == peer.address:
                del self._peers[peer.name]
                self._names.pop(peer.address, None)
                # Let go of the link: HyParView's close is held while this
                # part, having sent on it, still owns it.
                self._out.close_stream(peer.address)
                for tree in self._all_trees():
                    tree.eager.pop(peer.name, None)
                    tree.lazy.pop(peer.name, None)
                # Its announcements go; an id left with none keeps its timer,
                # which lets it go unless another peer announces it meanwhile.
                for who in self._missing.values():
                    who[:] = [entry for entry in who if entry[0] != peer.name]

    def drain(self) -> list[Effect]:
        return self._out.drain()

    # ---------------------------------------------------------------- views

    def view(self) -> BroadcastView:
        view = self._view
        if view is None or self._changed:
            self._changed = False
            tree = self._shared
            if self.config.per_sender_trees:
                tree = self._trees.get(self.me.name, _Tree(self._peers))
            view = self._view = BroadcastView(
                tuple(tree.eager),
                tuple(tree.lazy),
                len(self._trees) if self.config.per_sender_trees else 1,
                len(self._cache),
                len(self._seen),
                len(self._missing),
            )
        return view

    def describe(self, event: object) -> EventNote | None:
        if isinstance(event, Publish):
            detail = f"{len(event.payload)} bytes on {event.channel}"
            return EventNote("publish", detail=detail, severity="debug")
        if isinstance(event, Delivered):
            detail = f"{len(event.payload)} bytes from {event.origin}"
            return EventNote("broadcast", detail=detail, severity="debug")
        return None

    def tree(self, origin: str | None = None) -> tuple[frozenset[str], frozenset[str]]:
        """The eager and lazy peers of ``origin``'s tree (the shared tree by default)."""
        tree = self._shared
        if self.config.per_sender_trees and origin is not None:
            tree = self._trees.get(origin, _Tree(self._peers))
        return frozenset(tree.eager), frozenset(tree.lazy)

    def has_seen(self, mid: bytes) -> bool:
        return mid in self._seen

    # ---------------------------------------------------------------- gossip

    def _on_gossip(self, name: str | None, sender: Address, msg: Gossip) -> None:
        mid, rnd = msg.id, msg.round
        if (
            len(mid) != ID_BYTES
            or not 0 <= rnd <= MAX_ROUND
            or len(msg.channel) > MAX_CHANNEL_BYTES
        ):
            self.stats.malformed += 1
            return
        tree = self._tree(msg.origin)
        if mid in self._seen:
            self.stats.duplicates += 1
            if name is not None:
                _make_lazy(tree, name)
                self._changed = True
                self.stats.prunes_sent += 1
                self._out.stream(sender, Prune(self._key(msg.origin)))
            return
        announced = self._missing.pop(mid, None)
        if announced is not None:
            self._out.cancel_timer(("graft", mid))
        if not self._deliver(msg):
            self._seen_id(mid)
            return
        self._remember(mid, msg.origin, rnd, msg.channel, msg.payload)
        if name is not None:
            _make_eager(tree, name)
        self._push(tree, mid, msg.origin, rnd + 1, msg.channel, msg.payload, name)
        if announced and name is not None and self.config.optimize:
            self._optimize(tree, mid, rnd, name, sender, announced)

    def _deliver(self, msg: Gossip) -> bool:
        handler = self._handlers.get(msg.channel)
        if handler is None:  # no layer serves it: the application hears it
            self._out.emit(Delivered(msg.id, msg.origin, msg.channel, msg.payload, msg.round))
            new = True
        else:
            new = handler.deliver(msg.id, msg.origin, msg.payload, msg.round, self._now)
        if new:
            self.stats.delivered += 1
        else:
            self.stats.stale += 1
        return new

    def _push(
        self,
        tree: _Tree,
        mid: bytes,
        origin: str,
        rnd: int,
        channel: str,
        payload: bytes,
        skip: str | None,
    ) -> None:
        """Gossip to the eager peers, announce to the lazy ones (``skip`` aside)."""
        peers, stream = self._peers, self._out.stream
        gossip = Gossip(mid, origin, rnd, channel, payload)
        sent = 0
        for name in tree.eager:
            if name != skip:
                stream(peers[name], gossip)
                sent += 1
        self.stats.gossip_sent += sent
        if not tree.lazy:
            return
        entry = (mid, rnd, self._key(origin))
        queue, room = self._queue, self.config.max_ihave_queue - self._queued
        for name in tree.lazy:
            if name == skip:
                continue
            if room <= 0:
                self.stats.ihave_shed += 1
                continue
            room -= 1
            batch = queue.get(name)
            if batch is None:
                queue[name] = [entry]
            else:
                batch.append(entry)
        self._queued = self.config.max_ihave_queue - room
        if not self._flush_set and queue:
            self._flush_set = True
            self._out.set_timer("ihave", self._now + self.config.ihave_window_s)

    def _key(self, origin: str) -> str:
        """The tree a message of ``origin`` travels: its own, or the shared one ("")."""
        return origin if self.config.per_sender_trees else ""

    def _announce(self, name: str, mid: bytes, rnd: int, key: str) -> None:
        """Queue an IHave entry for peer ``name`` (shed past ``max_ihave_queue``)."""
        if self._queued >= self.config.max_ihave_queue:
            self.stats.ihave_shed += 1
            return
        batch = self._queue.get(name)
        if batch is None:
            self._queue[name] = [(mid, rnd, key)]
        else:
            batch.append((mid, rnd, key))
        self._queued += 1
        if not self._flush_set:
            self._flush_set = True
            self._out.set_timer("ihave", self._now + self.config.ihave_window_s)

    def _announce_recent(self, name: str) -> None:
        """Announce the newest cached ids to a new neighbour: a broadcast in
        progress when the link was made (to repair the overlay) crosses it."""
        horizon = self._now - self.config.recent_s
        count = self.config.max_recent
        for mid, entry in reversed(self._cache.items()):
            if count <= 0 or entry[4] < horizon:
                break
            self._announce(name, mid, entry[1] + 1, self._key(entry[0]))
            count -= 1

    def _flush(self) -> None:
        """Send the queued announcements, one IHave per peer and batch."""
        queue, self._queue, self._queued = self._queue, {}, 0
        step, peers, stream = self.config.max_ihave_batch, self._peers, self._out.stream
        per_sender = self.config.per_sender_trees
        for name, batch in queue.items():
            to = peers.get(name)
            if to is None:
                continue
            for i in range(0, len(batch), step):
                ids, rounds, keys = zip(*batch[i : i + step], strict=True)
                stream(to, IHave(ids, rounds, keys if per_sender else ()))
                self.stats.ihave_sent += 1
            self.stats.ihave_ids_sent += len(batch)

    # ---------------------------------------------------------------- repair

    def _on_ihave(self, name: str, msg: IHave) -> None:
        seen, missing, cfg = self._seen, self._missing, self.config
        if (
            len(msg.ids) != len(msg.rounds)
            or (msg.origins and len(msg.origins) != len(msg.ids))
            or any(len(mid) != ID_BYTES for mid in msg.ids)
            or any(not 0 <= rnd <= MAX_ROUND for rnd in msg.rounds)
        ):
            self.stats.malformed += 1
            return
        origins = msg.origins if cfg.per_sender_trees else ()
        for i, (mid, rnd) in enumerate(zip(msg.ids, msg.rounds, strict=False)):
            if mid in seen:
                continue
            key = origins[i] if i < len(origins) else ""
            who = missing.get(mid)
            if who is None:
                if len(missing) >= cfg.max_missing:
                    self.stats.missing_shed += 1
                    continue
                missing[mid] = [(name, rnd, key)]
                self._out.set_timer(("graft", mid), self._now + cfg.graft_timeout_s)
                self._changed = True
            elif len(who) < cfg.max_announcers and all(n != name for n, _, _ in who):
                who.append((name, rnd, key))

    def _graft_timer(self, mid: bytes) -> None:
        """Timer 1 or 2 for ``mid``: graft the next announcer, or let the id go."""
        who = self._missing.get(mid)
        if who is None:
            return
        if mid in self._seen:
            del self._missing[mid]
            return
        while who:
            name, rnd, key = who.pop(0)
            to = self._peers.get(name)
            if to is None:
                continue
            _make_eager(self._tree(key), name)
            self._changed = True
            self.stats.grafts_sent += 1
            self._out.stream(to, Graft(mid, rnd, key))
            # Timer 2: the next announcer (one that comes meanwhile joins the
            # list) is asked if this one does not answer in time.
            self._out.set_timer(("graft", mid), self._now + self.config.graft_retry_s)
            return
        del self._missing[mid]  # everyone was asked; a later IHave starts over

    def _on_graft(self, name: str | None, sender: Address, msg: Graft) -> None:
        mid = msg.id
        if name is not None:
            _make_eager(self._tree(msg.tree), name)
            self._changed = True
        if mid is None:
            return
        cached = self._cache.get(mid)
        if cached is not None:
            origin, hops, channel, payload, _ = cached
            self.stats.grafts_answered += 1
            self.stats.gossip_sent += 1
            self._out.stream(sender, Gossip(mid, origin, hops + 1, channel, payload))
            return
        if any(handler.replaced(mid) for handler in self._handlers.values()):
            self.stats.replaced += 1
            self._out.stream(sender, Replaced(mid))
            return
        self.stats.grafts_unanswered += 1

    def _optimize(
        self,
        tree: _Tree,
        mid: bytes,
        rnd: int,
        name: str,
        sender: Address,
        announced: list[tuple[str, int, str]],
    ) -> None:
        """§3.8: an announcer ``threshold`` hops closer replaces the sender in the tree."""
        best = min(announced, key=lambda a: a[1])
        other, r, _ = best
        if other == name or other not in self._peers:
            return
        if rnd - r < self.config.optimize_threshold:
            return
        self.stats.optimizations += 1
        _make_eager(tree, other)
        _make_lazy(tree, name)
        self.stats.grafts_sent += 1
        self.stats.prunes_sent += 1
        key = self._key(self._cache_origin(mid))
        self._out.stream(self._peers[other], Graft(None, r, key))
        self._out.stream(sender, Prune(key))

    def _cache_origin(self, mid: bytes) -> str:
        cached = self._cache.get(mid)
        return cached[0] if cached is not None else ""

    def _forget_missing(self, mid: bytes) -> None:
        if self._missing.pop(mid, None) is not None:
            self._out.cancel_timer(("graft", mid))

    # ---------------------------------------------------------------- memory

    def _tree(self, origin: str) -> _Tree:
        if not self.config.per_sender_trees:
            return self._shared
        trees = self._trees
        tree = trees.get(origin)
        if tree is None:
            while len(trees) >= self.config.max_trees:
                trees.popitem(last=False)
            tree = trees[origin] = _Tree(self._peers)
        else:
            trees.move_to_end(origin)
        return tree

    def _all_trees(self) -> list[_Tree]:
        if self.config.per_sender_trees:
            return list(self._trees.values())
        return [self._shared]

    def _remember(self, mid: bytes, origin: str, rnd: int, channel: str, payload: bytes) -> None:
        self._seen_id(mid)
        cache = self._cache
        cache[mid] = (origin, rnd, channel, payload, self._now)
        self._cached_bytes += len(payload)
        cfg = self.config
        while len(cache) > cfg.max_cache_messages or self._cached_bytes > cfg.max_cache_bytes:
            self._cached_bytes -= len(cache.popitem(last=False)[1][3])

    def _seen_id(self, mid: bytes) -> None:
        seen = self._seen
        seen[mid] = self._now
        seen.move_to_end(mid)  # the sweep reads them oldest first
        if len(seen) > self.config.max_seen:
            seen.popitem(last=False)

    def _sweep_every(self) -> float:
        return min(self.config.cache_ttl_s, self.config.seen_ttl_s) / 4

    def _sweep(self, now: float) -> None:
        """Forget payloads and ids past their age (both are in arrival order)."""
        cache, seen, cfg = self._cache, self._seen, self.config
        while cache:
            mid, entry = next(iter(cache.items()))
            if entry[4] > now - cfg.cache_ttl_s:
                break
            del cache[mid]
            self._cached_bytes -= len(entry[3])
        while seen:
            mid, at = next(iter(seen.items()))
            if at > now - cfg.seen_ttl_s:
                break
            del seen[mid]
        self._changed = True


def _make_lazy(tree: _Tree, name: str) -> None:
    tree.eager.pop(name, None)
    tree.lazy[name] = None


def _make_eager(tree: _Tree, name: str) -> None:
    tree.lazy.pop(name, None)
    tree.eager[name] = None


def _build(config: PlumtreeConfig, context: PartContext) -> PartFactory | None:
    if not config.enabled:
        return None

    def make(me: NodeId, rng: random.Random) -> Plumtree:
        return Plumtree(me, rng, config)

    return make


GOSSIP_OVERHEAD: Final = 1_024
"""What a Gossip adds to its payload at most on the wire: the envelope, the
id, the hop count, the channel and the origin's name."""


def _check(config: PlumtreeConfig, room: WireRoom, context: PartContext) -> None:
    need = config.max_broadcast_bytes + GOSSIP_OVERHEAD
    if need > min(room.frame_bytes, room.stream_queue_bytes):
        raise ConfigError(
            f"NodeConfig: broadcast.max_broadcast_bytes ({config.max_broadcast_bytes}) plus "
            f"{GOSSIP_OVERHEAD} bytes of Gossip must fit a stream frame ({room.frame_bytes}) "
            f"and a stream's queue ({room.stream_queue_bytes}); use at most "
            f"{min(room.frame_bytes, room.stream_queue_bytes) - GOSSIP_OVERHEAD}"
        )


SPEC: PartSpec[PlumtreeConfig] = PartSpec("broadcast", PlumtreeConfig, _build, check=_check)
"""Broadcast in the node's catalogue: on when a ``broadcast`` section is given
(with the ``overlay`` part); ``[broadcast]`` in TOML, ``NodeConfig.broadcast``."""
