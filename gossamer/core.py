"""NodeCore: the whole node as one sans-IO state machine.

A gossamer node is several protocol cores -- today SWIM with its member
table, and the ring that follows it; the overlay and the registries join
later -- that must look
like one :class:`~gossamer.effects.Core` to whoever drives the node.  Both
drivers, the simulator (``gossamer.sim``) and the asyncio runtime
(``gossamer.runtime.node``), drive a ``NodeCore``, so a simulated cluster and a real
one run the same code.

What ``NodeCore`` does, and all it does:

* **Routes input.** A message goes to the core that registered its class
  (:data:`ROUTES`, built from each core's messages); a message of no core's is
  counted in ``unrouted`` and dropped.  A timer key is a pair
  ``(core, key)``; the first element picks the core.  Stream notices go to
  every core that uses streams.
* **Routes output.** Effects from a sub-core are passed on in order, with its
  timer keys wrapped as ``(core, key)`` so two cores can never clash on a key.
  Member events (``MemberJoined``, ``MemberDead``...) are passed on to the
  application.  After an input that produced any, the ring tracker is given
  the live members, and a :class:`~gossamer.ring.tracker.RingChanged` follows
  the member events that caused it.  The registries will be fed here too.
* **Holds the application's calls** that reach a protocol: leave and
  metadata, with every check a caller's mistake needs done at once.

Invariants: the sub-cores are drained after every input, so the outbox holds
one input's worth of effects; ``NodeCore`` itself keeps no protocol state and
takes no protocol decision.
"""

from __future__ import annotations

__all__ = ["ROUTES", "NodeCore", "NodeStats"]

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from gossamer.effects import CancelTimer, Effect, Emit, SetTimer, TimerKey
from gossamer.errors import LocalError
from gossamer.failure.swim import (
    Ack,
    Gossip,
    Nack,
    Ping,
    PingReq,
    PushPull,
    PushPullReply,
    SwimConfig,
    SwimCore,
)
from gossamer.ids import Address, NodeId
from gossamer.membership.members import Member
from gossamer.ring.ring import Ring
from gossamer.ring.tracker import RingConfig, RingTracker
from gossamer.wire import Message

_SWIM: Final = "swim"

ROUTES: Final[Mapping[type[Message], str]] = {
    cls: _SWIM for cls in (Ping, Ack, PingReq, Nack, Gossip, PushPull, PushPullReply)
}
"""Which sub-core handles each message class (by the sub-core's timer prefix)."""


@dataclass(slots=True)
class NodeStats:
    """Counters of the composition itself (each sub-core keeps its own)."""

    unrouted: int = 0
    """Messages of a class no sub-core handles (decoded, but not ours to use)."""
    stray_timers: int = 0
    """Timer keys no sub-core owns (a driver's bug; counted, ignored)."""


class NodeCore:
    """One gossamer node: SWIM, the member table and the ring, composed as one core.

    ``seeds`` are addresses to join through (the node's own is skipped);
    ``metadata`` is published with the node's alive claims (at most
    ``swim.max_metadata_bytes``).  ``ring`` enables the ring of live members
    (None or ``enabled=False``: no ring, the simulator's default for large
    clusters).  The ``Random`` is shared by the sub-cores, so one seed
    replays the whole node.
    """

    def __init__(
        self,
        me: NodeId,
        rng: random.Random,
        *,
        swim: SwimConfig | None = None,
        seeds: Iterable[str] = (),
        metadata: bytes = b"",
        ring: RingConfig | None = None,
    ) -> None:
        self.me = me
        self.swim = SwimCore(me, rng, swim, seeds=seeds, metadata=metadata)
        """The SWIM core; read its views, do not drive it directly."""
        self.ring_tracker = RingTracker(ring) if ring is not None and ring.enabled else None
        """Follows the live members; None when the node keeps no ring."""
        self.stats = NodeStats()
        self._effects: list[Effect] = []

    # ---------------------------------------------------------------- views

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
        tracker = self.ring_tracker
        return tracker.ring if tracker is not None else None

    # ---------------------------------------------------------------- Core API

    def start(self, now: float) -> None:
        self.swim.start(now)
        if self.ring_tracker is not None:
            # The node's own ring, before it hears of anyone: nothing to hand off.
            self.ring_tracker.start(m.name for m in self.live_members())
        self._collect(_SWIM, self.swim.drain())

    def handle(self, sender: Address, message: Message, now: float) -> None:
        if ROUTES.get(type(message)) == _SWIM:
            self.swim.handle(sender, message, now)
            self._collect(_SWIM, self.swim.drain())
        else:
            self.stats.unrouted += 1

    def on_timer(self, key: TimerKey, now: float) -> None:
        if isinstance(key, tuple) and len(key) == 2 and key[0] == _SWIM:
            self.swim.on_timer(key[1], now)
            self._collect(_SWIM, self.swim.drain())
        else:
            self.stats.stray_timers += 1

    def on_stream_up(self, peer: Address, now: float) -> None:
        self.swim.on_stream_up(peer, now)
        self._collect(_SWIM, self.swim.drain())

    def on_stream_down(self, peer: Address, now: float) -> None:
        self.swim.on_stream_down(peer, now)
        self._collect(_SWIM, self.swim.drain())

    def drain(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    # ---------------------------------------------------------------- the application

    def leave(self, now: float) -> None:
        """Announce that this node leaves: peers see it *left*, not dead.

        Keep driving the node for a few gossip intervals so the news spreads
        (:meth:`leave_spread` says when it has been sent enough times), then
        stop it.
        """
        self.swim.leave(now)
        self._collect(_SWIM, self.swim.drain())

    def leave_spread(self) -> bool:
        """True once a leave has been sent as often as any news is (the queue
        is empty), or at once when no live member is left to tell."""
        swim = self.swim
        return swim.leaving and (swim.queued_updates() == 0 or swim.table.live_count() == 0)

    def update_metadata(self, metadata: bytes, now: float) -> None:
        """Publish new metadata; a caller's mistake raises at once."""
        if self.swim.leaving:
            raise LocalError("this node has left the cluster; it cannot publish metadata")
        self.swim.update_metadata(metadata, now)
        self._collect(_SWIM, self.swim.drain())

    # ---------------------------------------------------------------- routing

    def _collect(self, prefix: str, effects: list[Effect]) -> None:
        out = self._effects
        events = False
        for effect in effects:
            match effect:
                case SetTimer(key=key, at=at):
                    out.append(SetTimer((prefix, key), at))
                case CancelTimer(key=key):
                    out.append(CancelTimer((prefix, key)))
                case Emit():
                    events = True
                    out.append(effect)
                case _:
                    # Sends and streams pass on in order.
                    out.append(effect)
        tracker = self.ring_tracker
        if events and tracker is not None:
            changed = tracker.update(m.name for m in self.live_members())
            if changed is not None:
                out.append(Emit(changed))
