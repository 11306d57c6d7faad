"""The one core API, and the effects a core asks its driver to carry out.

Every protocol core in gossamer is sans-IO (in the manner of h11 and aioquic):
it never touches a socket, a clock or the global ``random``.  Input reaches it
as method calls that carry the current time; output leaves it as *effects*,
plain data queued until the driver calls :meth:`Core.drain`.  Two drivers
exist -- the deterministic simulator (``gossamer.sim``) and the asyncio
runtime -- and both drive every core through the :class:`Core` protocol below,
so the code that runs in a simulated 10,000-node cluster is the code that runs
in production.

Invariants the drivers rely on:

* ``now`` never decreases from one call to the next on the same core.
* After every input call the driver drains the core and carries out the
  effects in the order they were queued.  A core's outbox therefore never
  holds more than one input's worth of effects.
* A timer is named by a key; setting a key that is already set moves its
  deadline (one deadline per key), cancelling an unset key does nothing, and
  a timer fires at most once per setting.  A deadline in the past fires as
  soon as the driver can.
* Streams are reliable and ordered between two nodes while both are up and
  can reach each other.  At most one open stream joins a pair of nodes; either
  end may open it, and sending on a stream that is not open opens it.  When a
  stream breaks (a crash, a partition, the other end closing it) the core
  hears :meth:`Core.on_stream_down`; messages in flight on it may be lost.
  After closing a stream, a core may open a new one to the same peer.
"""

from __future__ import annotations

__all__ = [
    "CancelTimer",
    "CloseStream",
    "Core",
    "Effect",
    "Emit",
    "OpenStream",
    "Outbox",
    "SendDatagram",
    "SendStream",
    "SetTimer",
    "TimerKey",
]

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from gossamer.ids import Address
from gossamer.wire import Message

TimerKey: TypeAlias = Hashable
"""Names a timer within one core: a string, or a tuple such as ``("probe", 3)``.
Keep keys to strings, ints and tuples of them so traces print the same in
every process."""


@dataclass(frozen=True, slots=True)
class SendDatagram:
    """Send ``message`` to ``to`` as one datagram: may be lost, duplicated or reordered."""

    to: Address
    message: Message


@dataclass(frozen=True, slots=True)
class SendStream:
    """Send ``message`` to ``to`` on the stream between the two nodes, opening it if needed."""

    to: Address
    message: Message


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Open a stream to ``to``; both ends hear ``on_stream_up`` once it connects,
    or the opener hears ``on_stream_down`` if it cannot."""

    to: Address


@dataclass(frozen=True, slots=True)
class CloseStream:
    """Close the stream to ``to``.  Messages already sent on it are still delivered;
    the other end then hears ``on_stream_down``.  The closer hears nothing more."""

    to: Address


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call ``on_timer(key, now)`` at time ``at`` (seconds, on the driver's clock).
    Replaces any deadline already set under ``key``."""

    key: TimerKey
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget the deadline set under ``key``, if any."""

    key: TimerKey


@dataclass(frozen=True, slots=True)
class Emit:
    """Deliver ``event`` to the application (an event stream, a log, the simulator trace)."""

    event: object


Effect: TypeAlias = (
    SendDatagram | SendStream | OpenStream | CloseStream | SetTimer | CancelTimer | Emit
)


class Core(Protocol):
    """What a driver may call on a protocol core, and in which order.

    ``start`` comes first and once per life of the core (a restart builds a
    new core).  Then any sequence of ``handle``, ``on_timer``,
    ``on_stream_up`` and ``on_stream_down``, each followed by ``drain``.  None
    of these may block or do I/O; all of them return quickly.  The messages a
    core receives belong to it (they are immutable); the effects it returns
    from ``drain`` belong to the driver.
    """

    def start(self, now: float) -> None:
        """The node has booted: set the first timers, send the first messages."""
        ...

    def handle(self, sender: Address, message: Message, now: float) -> None:
        """A message arrived from ``sender`` (on a datagram or a stream)."""
        ...

    def on_timer(self, key: TimerKey, now: float) -> None:
        """The deadline set under ``key`` has come."""
        ...

    def on_stream_up(self, peer: Address, now: float) -> None:
        """A stream to ``peer`` has connected (whichever end opened it)."""
        ...

    def on_stream_down(self, peer: Address, now: float) -> None:
        """The stream to ``peer`` broke, was closed by ``peer``, or could not connect."""
        ...

    def drain(self) -> list[Effect]:
        """Return the effects queued since the last drain, oldest first, and forget them."""
        ...


class Outbox:
    """The queue of effects a core builds up between two drains.

    Cores keep one and call its helpers; ``drain`` hands the list over.  It is
    bounded by construction: the driver drains after every input, so it holds
    at most what one input produced.
    """

    __slots__ = ("_effects",)

    def __init__(self) -> None:
        self._effects: list[Effect] = []

    def datagram(self, to: Address, message: Message) -> None:
        self._effects.append(SendDatagram(to, message))

    def stream(self, to: Address, message: Message) -> None:
        self._effects.append(SendStream(to, message))

    def open_stream(self, to: Address) -> None:
        self._effects.append(OpenStream(to))

    def close_stream(self, to: Address) -> None:
        self._effects.append(CloseStream(to))

    def set_timer(self, key: TimerKey, at: float) -> None:
        self._effects.append(SetTimer(key, at))

    def cancel_timer(self, key: TimerKey) -> None:
        self._effects.append(CancelTimer(key))

    def emit(self, event: object) -> None:
        self._effects.append(Emit(event))

    def drain(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def __len__(self) -> int:
        return len(self._effects)
