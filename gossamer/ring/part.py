"""The ring as a part of the node: it follows SWIM's member events.

:class:`RingPart` is the node's ``ring`` part.  It subscribes to member
events and keeps the set of live members (alive or suspect) they describe;
after each batch of events (NodeCore drains a part once per batch), its
:class:`~gossamer.ring.tracker.RingTracker` derives the next ring and the part
emits one :class:`~gossamer.ring.tracker.RingChanged`, right after the member
events that caused it.  It sends nothing and sets no timer.

Invariant: after every input, the ring's nodes are exactly the live members
of the node's table, since every change of a member's liveness is an event.
"""

from __future__ import annotations

__all__ = ["SPEC", "RingPart", "RingStats"]

import random
from dataclasses import dataclass

from gossamer.effects import Effect, Emit, EventNote, PartContext, PartFactory, PartSpec, TimerKey
from gossamer.ids import Address, NodeId
from gossamer.membership.members import MEMBER_EVENTS
from gossamer.observe import counter
from gossamer.ring.tracker import RingChanged, RingConfig, RingTracker
from gossamer.ring.view import RingView
from gossamer.wire import Message


@dataclass(slots=True)
class RingStats:
    """Counters of the node's ring."""

    changes: int = counter(
        "Times the local ring changed since the node started.", name="gossamer_ring_changes"
    )


class RingPart:
    """The node's ring of live members; see the module docstring."""

    name = "ring"
    messages: tuple[type[Message], ...] = ()
    subscribes: tuple[type, ...] = MEMBER_EVENTS

    def __init__(self, me: NodeId, config: RingConfig) -> None:
        self.me = me
        self.tracker = RingTracker(config)
        self.stats = RingStats()
        self._live: set[str] = set()
        self._dirty = False
        self._view: RingView | None = None

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        # The node's own ring, before it hears of anyone: nothing to hand off.
        self._live = {self.me.name}
        self.tracker.start(self._live)

    def handle(self, sender: Address, message: Message, now: float) -> None:
        """The ring has no messages; NodeCore routes none here."""

    def on_timer(self, key: TimerKey, now: float) -> None:
        """The ring sets no timers."""

    def on_stream_up(self, peer: Address, now: float) -> None:
        """The ring uses no streams."""

    def on_stream_down(self, peer: Address, now: float) -> None:
        """The ring uses no streams."""

    def on_event(self, event: object, now: float) -> None:
        # A draining member keeps no keys: it is on its way out.
        if isinstance(event, MEMBER_EVENTS):
            member = event.member
            if member.status.live and not member.draining:
                self._live.add(member.name)
            else:
                self._live.discard(member.name)
            self._dirty = True

    def drain(self) -> list[Effect]:
        # Coalesced: one ring change for a whole batch of member events.
        if not self._dirty:
            return []
        self._dirty = False
        change = self.tracker.update(self._live)
        if change is None:
            return []
        self.stats.changes = self.tracker.changes
        return [Emit(change)]

    # ---------------------------------------------------------------- views

    def view(self) -> RingView:
        view = self._view
        ring = self.tracker.ring
        if view is None or view.ring is not ring:
            view = self._view = RingView(ring, self.tracker.changes)
        return view

    def describe(self, event: object) -> EventNote | None:
        if isinstance(event, RingChanged):
            return EventNote("ring", detail=event.summary())
        return None


def _build(config: RingConfig, context: PartContext) -> PartFactory | None:
    if not config.enabled:
        return None

    def make(me: NodeId, rng: random.Random) -> RingPart:
        return RingPart(me, config)

    return make


SPEC: PartSpec[RingConfig] = PartSpec("ring", RingConfig, _build)
"""The ring in the node's catalogue: on unless ``ring.enabled`` is false;
``[ring]`` in TOML, ``NodeConfig.ring``."""
