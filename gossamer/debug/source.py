"""What the debug endpoint reads from a running node.

The endpoint runs on the node's engine loop, the same loop that drives the
core, so every call below happens between two inputs to the core and sees a
consistent state.  None of them may block; each returns fresh data the caller
may keep (nothing returned is mutated afterwards).
"""

from __future__ import annotations

__all__ = ["Counters", "DebugSource", "EventRecord", "NodeInfo"]

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gossamer.failure.swim import SwimStats
from gossamer.ids import Address
from gossamer.membership.members import Member
from gossamer.ring import Ring


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The local node, as ``GET /api/node`` shows it."""

    name: str
    address: Address
    epoch: int
    incarnation: int
    status: str
    """``alive`` or ``left`` (after a graceful leave)."""
    version: str
    """The gossamer package version."""
    uptime_s: float
    health_score: int
    """Lifeguard's local health score: 0 is healthy; each step stretches the
    node's probe interval and timeout by one more probe interval."""
    joined: bool
    """True once a seed answered (or at once, for a node that started alone)."""
    encrypted: bool
    """False only when the configuration asked for plaintext explicitly."""
    cluster: str
    """The cluster name (the associated data every packet is sealed with)."""


@dataclass(frozen=True, slots=True)
class Counters:
    """Monotonic counters since the node started (gauges are computed from members)."""

    swim: SwimStats
    """A copy of the SWIM core's counters."""
    messages_in: Mapping[str, int] = field(default_factory=dict)
    """Messages received and decoded, by message type name (``Ping``, ``Ack``...)."""
    bytes_in: Mapping[str, int] = field(default_factory=dict)
    """Bytes received on the wire (sealed), by message type name."""
    messages_out: Mapping[str, int] = field(default_factory=dict)
    """Messages sent, by message type name."""
    bytes_out: Mapping[str, int] = field(default_factory=dict)
    """Bytes sent on the wire (sealed), by message type name."""
    dropped: Mapping[str, int] = field(default_factory=dict)
    """Packets and frames received and dropped, by reason (``decrypt``,
    ``oversize``, ``malformed``, ``unknown_type``, ``schema``...)."""
    shed: Mapping[str, int] = field(default_factory=dict)
    """Items shed from a full bounded queue or history, by queue name
    (``udp_send``, ``stream_send``, ``events``, ``swim_updates``...)."""
    refused: Mapping[str, int] = field(default_factory=dict)
    """Sends refused locally, by reason (``oversize``: a message over the
    configured maximum; ``unreachable``: a stream that could not connect)."""
    streams_open: int = 0
    """TCP streams open right now."""
    ring_changes: int = 0
    """Times the ring changed since the node started (0 for a node that keeps none)."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One member or ring event, as the node saw it."""

    at: float
    """Wall-clock time (Unix seconds) at which the node saw it; for display only."""
    kind: str
    """``joined``, ``restarted`` (a new life), ``updated``, ``suspect``, ``alive``,
    ``dead``, ``left``, ``reaped``; or ``ring`` when the node's ring changed."""
    member: str
    """The member's name; for a ``ring`` event, the local node's."""
    address: Address
    epoch: int
    incarnation: int
    source: str = ""
    """Who raised the suspicion or declared the death, when known."""
    detail: str = ""
    """Free text, for display: for a ``ring`` event, what changed
    (``"4 nodes: +n3 -n5"``); empty for member events."""


class DebugSource(Protocol):
    """The read-only view of a node the debug endpoint serves."""

    def info(self) -> NodeInfo: ...

    def clock(self) -> float:
        """The node's clock now, in seconds: the clock ``Member.since`` is on."""
        ...

    def member_list(self) -> list[Member]:
        """Every member in the local table, dead and left included, sorted by name."""
        ...

    def counters(self) -> Counters: ...

    def recent_events(self) -> list[EventRecord]:
        """The most recent member and ring events, oldest first (a bounded history)."""
        ...

    def ring(self) -> Ring[str] | None:
        """The node's current ring, or None when the node keeps none.

        A ring is immutable and builds its lookup tables lazily, so the
        endpoint calls this on the engine loop (to know *which* ring is
        current) and may then read the ring from a worker thread: computing
        the shares of a large ring that nothing has looked up yet takes
        seconds, too long to hold the loop that answers probes.
        """
        ...
