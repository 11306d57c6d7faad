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
    "EventNote",
    "Knock",
    "OpenStream",
    "Outbox",
    "Part",
    "PartContext",
    "PartFactory",
    "PartSpec",
    "SendDatagram",
    "SendStream",
    "SetTimer",
    "TimerKey",
]

import random
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from gossamer.config import Section, WireRoom, preset
from gossamer.errors import LocalError
from gossamer.ids import Address, NodeId
from gossamer.observe import PartView
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
class Knock:
    """Ask whether anything listens at ``to``: the driver tries to connect
    (no handshake) and calls ``on_knock(to, listening, now)`` with True (it
    connected: a process holds the port, running or stopped), False (refused:
    nothing listens, so the process there is gone) or None (no answer in
    time: unreachable, or too slow to tell).  A core that knocks has an
    ``on_knock`` method."""

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
    SendDatagram | SendStream | OpenStream | CloseStream | Knock | SetTimer | CancelTimer | Emit
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


@dataclass(frozen=True, slots=True)
class EventNote:
    """How an event reads in the node's log and event history.

    ``subject`` is the member the event is about, at ``incarnation``; None
    means the local node (the runtime fills in its identity).
    """

    kind: str
    """One word: ``joined``, ``suspect``, ``ring``..."""
    subject: NodeId | None = None
    incarnation: int = 0
    source: str = ""
    """Who caused it, when known (the member that raised a suspicion)."""
    detail: str = ""
    """Free text for people (``"4 nodes: +n3 -n5"``)."""
    severity: str = "info"
    """``info``, ``warning`` or ``error``: how loudly the runtime logs it; ``debug`` for
    traffic (a broadcast delivered), which is neither logged nor kept in the history."""


class Part(Core, Protocol):
    """A protocol core that :class:`~gossamer.core.NodeCore` composes with others.

    Besides the :class:`Core` calls, a part says what it is and what it shows:

    * ``name``: unique in the node; names its timers, its block of wire type
      ids (``wire.TYPE_ID_RANGES``), its config section, its stats and its
      view.
    * ``messages``: the message classes it handles; no two parts of a node
      may claim one class.
    * ``subscribes``: event classes of *other* parts it wants.  NodeCore hands
      it every event of one drain of another part that is an instance of one
      of them, in order, with ``on_event``, and then drains it once, so a
      part that derives its state from many events may emit once per batch.
    * ``stats``: a dataclass of monotonic counters, fields marked with
      ``gossamer.observe.counter`` for ``/metrics``.
    * ``view()``: a frozen snapshot (:class:`~gossamer.observe.PartView`),
      the same object for as long as nothing it shows changed, so a driver
      can publish only what changed.
    * ``describe(event)``: how one of its own events reads in a log, or None
      for an event that is not its own.

    Optionally, ``heard(sender, now)``: told of every message the node
    receives, before it is routed, so a part can judge a link by all its
    traffic; it must queue nothing and change no view.

    Streams have owners (see ``NodeCore``): a part hears ``on_stream_up`` and
    ``on_stream_down`` only for streams it opened or sent on.
    """

    @property
    def name(self) -> str: ...

    @property
    def messages(self) -> tuple[type[Message], ...]: ...

    @property
    def subscribes(self) -> tuple[type, ...]: ...

    @property
    def stats(self) -> object: ...

    def on_event(self, event: object, now: float) -> None:
        """An event another part emitted, of a class in ``subscribes``."""
        ...

    def view(self) -> PartView: ...

    def describe(self, event: object) -> EventNote | None: ...


PartFactory: TypeAlias = Callable[[NodeId, random.Random], Part]
"""Builds one part of a node: every part of a node gets the same identity and
the same ``Random``, so one seed replays the whole node."""


@dataclass(frozen=True, slots=True)
class PartContext:
    """What the node was started with, besides each part's own section."""

    seeds: tuple[str, ...] = ()
    """Addresses to join through."""
    metadata: bytes = b""
    """Published with the node's membership."""
    keyring: Any = None
    """The runtime's keyring (``runtime/keyring.Keyring``), for the ``keys``
    part to change in memory; None in plaintext and in the simulator."""
    clock_offset_s: float = 0.0
    """The wall clock (seconds since 1970) minus the driver's ``now``, read
    at boot: SWIM puts its probe ticks on a grid of the wall clock that the
    cluster shares.  0 in the simulator, whose nodes share one clock."""


C = TypeVar("C", bound=Section)


def _no_fit(section: Any, room: WireRoom) -> Any:
    return section


def _no_check(section: Any, room: WireRoom, context: PartContext) -> None:
    return None


@dataclass(frozen=True, slots=True)
class PartSpec(Generic[C]):
    """How the runtime configures and builds one part (the catalogue lists them).

    ``section`` is the part's config dataclass, with ``lan()``, ``wan()`` and
    ``local()`` presets and its own field checks; it is the ``[name]`` table
    of a TOML file and ``NodeConfig.<name>``.  ``fit`` shrinks a preset to
    the room the wire leaves (a datagram's payload once the transport has
    sealed it); ``check`` refuses, with a ``ConfigError`` naming the number
    to use, a section that does not fit.  ``build`` gives the part's factory,
    or None when the section turns the part off.
    """

    name: str
    section: type[C]
    build: Callable[[C, PartContext], PartFactory | None]
    fit: Callable[[C, WireRoom], C] = _no_fit
    check: Callable[[C, WireRoom, PartContext], None] = _no_check

    def preset(self, name: str, room: WireRoom) -> C:
        """The section's preset ``name`` (``lan``, ``wan``, ``local``), fitted to ``room``."""
        return self.fit(preset(self.section, name), room)

    def of(self, sections: Mapping[str, object]) -> C:
        """This part's section among ``sections``; LocalError if it is missing or mistyped."""
        section = sections.get(self.name)
        if not isinstance(section, self.section):
            raise LocalError(
                f"the {self.name!r} section must be a {self.section.__name__}, got {section!r}"
            )
        return section


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

    def knock(self, to: Address) -> None:
        self._effects.append(Knock(to))

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
