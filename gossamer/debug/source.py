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

from gossamer.ids import Address
from gossamer.observe import PartView


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
    not_ready: str = ""
    """Why the node does not serve yet or any more (not joined, left, its name
    taken), for ``/healthz``; empty when it does."""


@dataclass(frozen=True, slots=True)
class Counters:
    """Monotonic counters since the node started: each part's, and the runtime's.

    ``counters.swim`` (any part's name) reads that part's stats.
    """

    parts: Mapping[str, object] = field(default_factory=dict)
    """A copy of each part's stats dataclass by part name, and of the
    composer's own (``node``: messages no part handles, held closes...)."""
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
    knocks: Mapping[str, int] = field(default_factory=dict)
    """Knocks on a broken link's port, by answer (``listening``, ``refused``, ``silent``)."""

    def __getattr__(self, name: str) -> object:
        try:
            return self.parts[name]
        except KeyError:
            raise AttributeError(f"no part or counter named {name!r}") from None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event, as the node saw it (a member event, a ring change...)."""

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

    def view(self) -> Mapping[str, PartView]:
        """Every part's view by part name.

        Views are immutable: the endpoint reads the mapping on the engine's
        loop and may then compute from the views on a worker thread (a large
        ring's shares take seconds, too long to hold the loop that answers
        probes).
        """
        ...

    def counters(self) -> Counters: ...

    def recent_events(self) -> list[EventRecord]:
        """The most recent events, oldest first (a bounded history)."""
        ...
