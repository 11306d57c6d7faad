"""NodeCore: the whole node as one sans-IO state machine, composed of parts.

A gossamer node is several protocol cores -- SWIM with its member table, the
ring that follows it, and later the overlay, broadcast and the registries --
each a *part* (:class:`~gossamer.effects.Part`) that must look like one
:class:`~gossamer.effects.Core` to whoever drives the node.  Both drivers,
the simulator (``gossamer.sim``) and the asyncio runtime
(``gossamer.runtime``), drive a ``NodeCore``, so a simulated cluster and a
real one run the same code.

What ``NodeCore`` does, and all it does:

* **Routes input.**  A message goes to the part that claims its class (two
  parts claiming one class is an error when the node is built); a message no
  part claims is counted in ``unrouted`` and dropped.  A timer key is a pair
  ``(part name, key)``; the first element picks the part.
* **Routes output.**  A part's effects are passed on in order, its timer keys
  wrapped as ``(part name, key)`` so parts never clash on a key.
* **Hands events on.**  Every event a part emits goes to the application,
  and the events of one drain go, in order, to every other part subscribed
  to their classes (in part order), which is then drained; what it emits is
  handed on the same way, breadth first (every subscriber hears an event
  before what follows from it), at most :data:`MAX_EVENT_DEPTH` steps deep
  (a deeper chain is a cycle between parts: counted in ``events_cut``).
* **Owns links.**  Per peer, the set of parts using the stream: a part's
  ``OpenStream`` or ``SendStream`` makes it an owner, its ``CloseStream``
  removes it, and the close reaches the driver only when no owner is left
  (until then it is held and counted).  ``on_stream_up`` and
  ``on_stream_down`` go to the owners only; after a down the link has none.
  So SWIM's push-pull, which closes its stream after the reply, never cuts a
  link another part holds to the same peer.
* **Lets a part hear all traffic.**  A part with a ``heard(sender, now)``
  method is told of every message before it is routed (the overlay counts
  any frame on a link as a heartbeat); it queues nothing and changes no view there.
* **Holds the application's calls** that reach a part (leave, metadata),
  and publishes the parts' views as one :class:`NodeView`.

:class:`PartsCore` does all of the above but the last; :class:`NodeCore`
adds SWIM, which a node always runs.  The simulator runs a bare
``PartsCore`` where SWIM is not the subject (the overlay at 10,000 nodes).

Invariants: every part touched by an input is drained before the input
returns, so the outbox holds one input's worth of effects; ``NodeCore``
consumes no randomness and takes no protocol decision.
"""

from __future__ import annotations

__all__ = ["MAX_EVENT_DEPTH", "NodeCore", "NodeStats", "NodeView", "PartsCore"]

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeVar

from gossamer.admin.keys import KeysView
from gossamer.effects import (
    CancelTimer,
    CloseStream,
    Effect,
    Emit,
    EventNote,
    Knock,
    OpenStream,
    Part,
    PartFactory,
    SendStream,
    SetTimer,
    TimerKey,
)
from gossamer.errors import LocalError
from gossamer.failure.swim import SwimConfig, SwimCore
from gossamer.failure.view import SwimView
from gossamer.ids import Address, NodeId
from gossamer.membership.hyparview import OverlayView
from gossamer.membership.members import Member
from gossamer.membership.plumtree import BroadcastView
from gossamer.observe import DROPPED, PartView, counter
from gossamer.registry.view import RegistryView
from gossamer.ring.ring import Ring
from gossamer.ring.view import RingView
from gossamer.wire import Message

_T = TypeVar("_T")

MAX_EVENT_DEPTH: Final = 8
"""How many parts deep a chain of events may go (a part's event handed to a
part whose event is handed on...); deeper is a cycle, cut and counted."""


@dataclass(slots=True)
class NodeStats:
    """Counters of the composition itself (each part keeps its own)."""

    unrouted: int = DROPPED.series("unrouted")
    """Messages of a class no part handles (decoded, but not ours to use)."""
    stray_timers: int = counter(
        "Timers that fired under a key no part owns (a driver's bug).",
        name="gossamer_stray_timers",
    )
    """Timer keys no part owns (a driver's bug; counted, ignored)."""
    closes_held: int = counter(
        "Stream closes held back because another part still uses the stream.",
        name="gossamer_stream_closes_held",
    )
    """Closes a part asked for while another part still owned the stream."""
    events_cut: int = counter(
        "Events not handed to a subscribed part because the chain went too deep.",
        name="gossamer_events_cut",
    )
    """Events not handed to a subscriber past :data:`MAX_EVENT_DEPTH` (a cycle)."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the node shows after an input: one field per part of the catalogue.

    A field is None when the node runs without that part; parts the
    catalogue does not name (a test's, an application's own) are in
    ``extra``.  The same object is returned until a part's view changes.
    """

    swim: SwimView
    ring: RingView | None = None
    keys: KeysView | None = None
    overlay: OverlayView | None = None
    broadcast: BroadcastView | None = None
    registry: RegistryView | None = None
    extra: Mapping[str, PartView] = field(default_factory=dict)

    def parts(self) -> dict[str, PartView]:
        """Every part's view by part name, in the node's part order for the named fields."""
        out: dict[str, PartView] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None:
                out[f.name] = value
        out.update(self.extra)
        return out


_VIEW_FIELDS: Final = frozenset(f.name for f in fields(NodeView)) - {"extra"}


class PartsCore:
    """Parts composed as one core: routing, timers, links and events (see the
    module docstring), with no membership of its own.

    The simulator runs it bare for protocols that need no SWIM (the overlay
    at 10,000 nodes); a node is a :class:`NodeCore`.  ``parts`` are
    factories, each called with ``me`` and ``rng``: every part gets the same
    identity and shares the ``Random``, so one seed replays the whole node.
    Raises :class:`~gossamer.errors.LocalError` for two parts with one name
    or one message class.
    """

    def __init__(self, me: NodeId, rng: random.Random, parts: Iterable[PartFactory]) -> None:
        self.me = me
        built: list[Part] = []
        by_name: dict[str, Part] = {}
        routes: dict[type[Message], Part] = {}
        for factory in parts:
            part = factory(me, rng)
            if not isinstance(part.name, str) or not part.name:
                raise LocalError(f"a part's name must be a non-empty str, got {part.name!r}")
            if part.name in by_name:
                raise LocalError(f"two parts are named {part.name!r}")
            for cls in part.messages:
                if cls in routes:
                    raise LocalError(
                        f"{cls.__qualname__} is claimed by two parts, "
                        f"{routes[cls].name!r} and {part.name!r}"
                    )
                routes[cls] = part
            by_name[part.name] = part
            built.append(part)
        self.parts: tuple[Part, ...] = tuple(built)
        self.stats = NodeStats()
        self._by_name = by_name
        self._routes = routes
        self._links: dict[Address, set[str]] = {}
        self._knocks: dict[Address, set[str]] = {}  # parts waiting for a knock's answer
        self._effects: list[Effect] = []
        self._views: list[PartView | None] = [None] * len(built)
        # Parts driven since the last view(): only their views are asked again,
        # so an input touches no other part's code (an idle wake-up is cheap).
        self._stale: set[int] = set(range(len(built)))
        self._index = {part.name: i for i, part in enumerate(built)}
        # Parts that judge a link by any traffic on it (the overlay's φ).
        self._hearers = tuple(
            part.heard  # type: ignore[attr-defined]
            for part in built
            if callable(getattr(part, "heard", None))
        )

    # ---------------------------------------------------------------- views

    @property
    def routes(self) -> dict[type[Message], str]:
        """Which part handles each message class, by part name."""
        return {cls: part.name for cls, part in self._routes.items()}

    def part(self, name: str) -> Part | None:
        return self._by_name.get(name)

    def link_owners(self, peer: Address) -> frozenset[str]:
        """The parts using the stream to ``peer`` (none when there is no stream)."""
        return frozenset(self._links.get(peer, ()))

    def linked(self) -> frozenset[Address]:
        """The peers whose stream some part here uses."""
        return frozenset(self._links)

    def describe(self, event: object) -> EventNote | None:
        """How ``event`` reads in a log, as the part that emitted it says."""
        for part in self.parts:
            note = part.describe(event)
            if note is not None:
                return note
        return None

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        for part in self.parts:
            part.start(now)
        for part in self.parts:
            self._drain(part, now)

    def handle(self, sender: Address, message: Message, now: float) -> None:
        for hear in self._hearers:
            hear(sender, now)
        part = self._routes.get(type(message))
        if part is None:
            self.stats.unrouted += 1
            return
        part.handle(sender, message, now)
        self._drain(part, now)

    def on_timer(self, key: TimerKey, now: float) -> None:
        part = inner = None
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
            part, inner = self._by_name.get(key[0]), key[1]
        if part is None:
            self.stats.stray_timers += 1
            return
        part.on_timer(inner, now)
        self._drain(part, now)

    def on_stream_up(self, peer: Address, now: float) -> None:
        owners = self._links.get(peer)
        if not owners:
            return  # the peer opened it and no part here has used it yet
        for part in [p for p in self.parts if p.name in owners]:
            if part.name in self._links.get(peer, ()):  # a close meanwhile lets go
                part.on_stream_up(peer, now)
                self._drain(part, now)

    def on_stream_down(self, peer: Address, now: float) -> None:
        owners = self._links.pop(peer, None)
        if not owners:
            return
        for part in [p for p in self.parts if p.name in owners]:
            part.on_stream_down(peer, now)
            self._drain(part, now)

    def on_knock(self, peer: Address, listening: bool | None, now: float) -> None:
        """The answer to a ``Knock``: to the parts that knocked, in part order."""
        knockers = self._knocks.pop(peer, None)
        if not knockers:
            return
        for part in [p for p in self.parts if p.name in knockers]:
            part.on_knock(peer, listening, now)  # type: ignore[attr-defined]
            self._drain(part, now)

    def drain(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def act(self, name: str, action: Callable[[Any], _T], now: float) -> _T:
        """An application's call on the part ``name``: ``action(part)``, then what
        it queued is passed on; LocalError if the node keeps no such part."""
        part = self.part(name)
        if part is None:
            raise LocalError(f"this node keeps no {name} part")
        try:
            return action(part)
        finally:
            self._drain(part, now)

    def part_views(self) -> dict[str, PartView]:
        """Every part's view by part name, in part order."""
        return {part.name: part.view() for part in self.parts}

    # ---------------------------------------------------------------- routing

    def _drain(self, part: Part, now: float) -> None:
        """Pass on what ``part`` queued, and hand its events on."""
        self._stale.add(self._index[part.name])
        events = self._pass_on(part.name, part.drain())
        if events:
            self._hand_on(part, events, now)

    def _hand_on(self, source: Part, events: list[object], now: float) -> None:
        """Hand ``events`` to the parts subscribed to them, breadth first: every
        subscriber hears an event before anything that follows from it."""
        batches: deque[tuple[Part, list[object], int]] = deque([(source, events, 0)])
        while batches:
            source, events, depth = batches.popleft()
            for sub in self.parts:
                if sub is source or not sub.subscribes:
                    continue
                wanted = [e for e in events if isinstance(e, sub.subscribes)]
                if not wanted:
                    continue
                if depth >= MAX_EVENT_DEPTH:
                    self.stats.events_cut += len(wanted)
                    continue
                self._stale.add(self._index[sub.name])
                for event in wanted:
                    sub.on_event(event, now)
                emitted = self._pass_on(sub.name, sub.drain())
                if emitted:
                    batches.append((sub, emitted, depth + 1))

    def _pass_on(self, name: str, effects: list[Effect]) -> list[object]:
        """Add ``effects`` of part ``name`` to the outbox; return the events among them."""
        out = self._effects
        events: list[object] = []
        links = self._links
        for effect in effects:
            kind = type(effect)  # exact types: the hot path of every input
            if kind is SendStream or kind is OpenStream:
                to = effect.to  # type: ignore[union-attr]
                owners = links.get(to)
                if owners is None:
                    links[to] = {name}
                else:
                    owners.add(name)
                out.append(effect)
            elif kind is SetTimer:
                out.append(SetTimer((name, effect.key), effect.at))  # type: ignore[union-attr]
            elif kind is CancelTimer:
                out.append(CancelTimer((name, effect.key)))  # type: ignore[union-attr]
            elif kind is Emit:
                events.append(effect.event)  # type: ignore[union-attr]
                out.append(effect)
            elif kind is Knock:
                to = effect.to  # type: ignore[union-attr]
                knockers = self._knocks.get(to)
                if knockers is None:
                    self._knocks[to] = {name}
                    out.append(effect)
                else:
                    knockers.add(name)  # one knock answers both
            elif kind is CloseStream:
                to = effect.to  # type: ignore[union-attr]
                owners = links.get(to)
                if owners is not None:
                    owners.discard(name)
                    if owners:
                        self.stats.closes_held += 1
                        continue
                    del links[to]
                out.append(effect)
            else:
                out.append(effect)  # datagrams pass on in order
        return events


class NodeCore(PartsCore):
    """One gossamer node: its parts composed as one core (see the module docstring).

    One part must be SWIM (named ``swim``): it is the node's membership, and
    the application's calls reach it.
    """

    def __init__(self, me: NodeId, rng: random.Random, parts: Iterable[PartFactory]) -> None:
        super().__init__(me, rng, parts)
        swim = self._by_name.get(SwimCore.name)
        if not isinstance(swim, SwimCore):
            raise LocalError("a node needs SWIM among its parts (a SwimCore named 'swim')")
        self.swim: SwimCore = swim
        """The SWIM part; read its views, do not drive it directly."""
        self._view: NodeView | None = None

    @property
    def config(self) -> SwimConfig:
        return self.swim.config

    @property
    def local(self) -> Member:
        """This node's own entry."""
        return self.swim.local

    @property
    def joined(self) -> bool:
        """True once a seed answered (or at once, for a node with no seeds)."""
        return self.swim.joined

    @property
    def leaving(self) -> bool:
        return self.swim.leaving

    @property
    def health_score(self) -> int:
        """Lifeguard's local health score (0 is healthy)."""
        return self.swim.awareness.score

    def members(self) -> list[Member]:
        """Every member in the table, dead and left included, sorted by name."""
        return self.swim.members()

    def member(self, name: str) -> Member | None:
        return self.swim.member(name)

    def live_members(self) -> list[Member]:
        """Members alive or suspect (not yet declared dead), sorted by name."""
        return [m for m in self.swim.members() if m.status.live]

    @property
    def ring(self) -> Ring[str] | None:
        """The ring over the live members' names, or None when the node keeps none."""
        part = self._by_name.get("ring")
        view = part.view() if part is not None else None
        return view.ring if isinstance(view, RingView) else None

    def view(self) -> NodeView:
        """Every part's view; the same object until one of them changes.

        A part's view changes only when the part is driven (an input, a
        timer, an event, a call), so only parts driven since the last call
        are asked."""
        stale, cached = self._stale, self._view
        if not stale and cached is not None:
            return cached
        views = self._views
        changed = cached is None
        for i in stale:
            fresh = self.parts[i].view()
            if fresh is not views[i]:
                views[i] = fresh
                changed = True
        stale.clear()
        if not changed and cached is not None:
            return cached
        named: dict[str, PartView] = {}
        extra: dict[str, PartView] = {}
        for part, part_view in zip(self.parts, views, strict=True):
            assert part_view is not None
            (named if part.name in _VIEW_FIELDS else extra)[part.name] = part_view
        view = NodeView(**named, extra=extra)  # type: ignore[arg-type]
        self._view = view
        return view

    # ---------------------------------------------------------------- the application

    def leave(self, now: float) -> None:
        """Announce that this node leaves: peers see it *left*, not dead.

        Keep driving the node for a few gossip intervals so the news spreads
        (:meth:`leave_spread` says when it has been sent enough times), then
        stop it.
        """
        self.swim.leave(now)
        self._drain(self.swim, now)

    def leave_spread(self) -> bool:
        """True once a leave has been sent as often as any news is (the queue
        is empty), or at once when no live member is left to tell."""
        return self.swim.leave_spread()

    def update_metadata(self, metadata: bytes, now: float) -> None:
        """Publish new metadata; a caller's mistake raises LocalError at once (SWIM checks)."""
        self.swim.update_metadata(metadata, now)
        self._drain(self.swim, now)

    def join(self, addresses: Iterable[str], now: float) -> None:
        """Sync with ``addresses`` now (SWIM's ``join``); the view says who answered."""
        self.swim.join(addresses, now)
        self._drain(self.swim, now)

    def force_leave(self, name: str, now: float) -> None:
        """Mark the dead member ``name`` left, so it is reaped sooner (SWIM's ``force_leave``)."""
        self.swim.force_leave(name, now)
        self._drain(self.swim, now)
