"""A deterministic discrete-event simulator that drives sans-IO cores.

FoundationDB-style simulation testing: every node of a cluster runs its real
protocol core inside one process, on a virtual clock, over a simulated
network that loses, duplicates, delays and reorders datagrams, breaks streams
and partitions the cluster -- all decided by seeded ``random.Random``
instances, so one seed always gives one trace.

How it runs.  Two binary heaps hold every future happening as tuples
``(time, seq, kind, target, a, b, c)``: one for timers, one for everything
else (messages, stream notices, scheduled actions).  ``seq`` is one global
counter, so ties in time are broken by the order things were scheduled, no
two entries ever compare further, and taking the smaller of the two heads
gives exactly the order one heap would.  (Two heaps because timers, one or
more per node, far outnumber the messages in flight at any moment; keeping
them apart keeps the message heap shallow.)  Popping an entry advances the
virtual clock to its time and hands it to the target node's core through the
one core API (:class:`gossamer.effects.Core`); the core's effects are then
carried out at once, scheduling more entries.

Invariants:

* Determinism: the only sources of choice are the network ``Random`` (seeded
  from the simulator seed) and one ``Random`` per node life (seeded from the
  seed, the node's name and its epoch); iteration over nodes and streams
  follows insertion order.  Nothing reads the wall clock.
* Virtual time never goes backwards; an entry scheduled in the past runs now.
* A crash ends a node's *life*: every entry addressed to that life (its
  timers, notices about its streams, inputs held back while it was paused) is
  dropped when it comes due.  A restart is a new core with the next epoch and
  a fresh ``Random``.
* A node's inputs are handed over in the order they reached it, also while
  and after it is paused: held-back inputs go first.
* Streams are FIFO and reliable while up: a message's delivery time is never
  earlier than that of the one sent before it in the same direction.  Every
  stream that is not dead is known to the simulator, so a crash or a cut
  always breaks it.  A core hears only about the streams it holds (opened
  or heard up, not yet closed or heard down).
* Messages in the network are bounded by ``NetworkConfig.max_in_flight``; what
  would exceed it is dropped and counted.  Stream notices are never dropped
  (their number is bounded by the number of streams).
"""

from __future__ import annotations

__all__ = ["SimulationError", "Simulator"]

import hashlib
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from heapq import heapify as _heapify
from heapq import heappop as _heappop
from heapq import heappush as _heappush
from typing import TypeVar, cast

from gossamer.config import WireConfig
from gossamer.effects import (
    CancelTimer,
    CloseStream,
    Core,
    Emit,
    Knock,
    OpenStream,
    SendDatagram,
    SendStream,
    SetTimer,
    TimerKey,
)
from gossamer.errors import GossamerError, LocalError
from gossamer.ids import Address, NodeId, parse_address
from gossamer.sim.network import NetworkConfig
from gossamer.wire import Message, Registry, digest_bytes

CoreFactory = Callable[[NodeId, random.Random], Core]
"""Builds the core of one node life from its identity and its own ``Random``."""

EventHook = Callable[[float, Address, object], None]
"""Called with ``(now, address, event)`` for every event a core emits."""

# Kinds of heap entries.
_T = TypeVar("_T")
_CONTROL = 0  # a = callable, b = label
_DATAGRAM = 1  # target, a = sender, b = message, c = encoded bytes (b"" without a codec)
_STREAM_MSG = 2  # target, a = sender, b = (message, encoded bytes), c = stream
_TIMER = 3  # target, a = key, b = token, c = life
_STREAM_UP = 4  # target, a = peer, b = stream, c = life
_STREAM_DOWN = 5  # target, a = peer, b = stream, c = life
_STREAM_CONNECT = 6  # target = acceptor, b = stream
_STREAM_CLOSE = 7  # target = the other end, a = closer, b = stream, c = life
_HELD = 8  # target, a = the original entry, b = the life it was held for
_KNOCK = 9  # target = the knocker, a = the address knocked, b = the answer, c = life

# Stream states.
_CONNECTING = 0
_UP = 1
_CLOSING = 2
_DEAD = 3

_Entry = tuple[float, int, int, Address, object, object, object]
_Payload = tuple[Message, bytes]  # what a stream message entry carries

_TRACE_BATCH = 4096
_INFINITY = float("inf")
_STALE_SWEEP_MIN = 100_000


class SimulationError(GossamerError):
    """A core raised, or asked for something impossible, during a simulation.

    The message always carries the seed and the virtual time, so the run can
    be replayed: ``Simulator(seed=...)`` with the same scenario gives the same
    trace.
    """

    def __init__(self, seed: int, now: float, what: str) -> None:
        super().__init__(f"[seed={seed} t={now:.6f}] {what}")
        self.seed = seed
        self.now = now


@dataclass(slots=True)
class NodeStats:
    """Counters of one node (all its lives) in a simulation."""

    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    events_shed: int = 0


@dataclass(slots=True)
class TypeStats:
    """Counters of one message type in a simulation."""

    sent: int = 0
    bytes_sent: int = 0


@dataclass(slots=True)
class SimStats:
    """A snapshot of the simulator's counters, from :attr:`Simulator.stats`."""

    messages_sent: int
    messages_delivered: int
    bytes_sent: int
    dropped: dict[str, int]
    """Messages the network did not deliver, by reason: ``loss``, ``partition``,
    ``down`` (no live node at the address, or it crashed while the message
    waited in its inbox), ``stream_broken``, ``overflow``."""
    by_type: dict[str, TypeStats] = field(default_factory=dict)
    by_node: dict[Address, NodeStats] = field(default_factory=dict)


class _Node:
    __slots__ = (
        "address",
        "core",
        "epoch",
        "events",
        "factory",
        "gate",
        "held_until",
        "hold_timers",
        "host_up",
        "label",
        "life",
        "name",
        "pause",
        "stats",
        "streams",
        "timers",
        "up",
    )

    def __init__(self, name: str, address: Address, factory: CoreFactory, event_limit: int):
        self.name = name
        self.address = address
        self.factory = factory
        self.epoch = 0
        self.label = name  # seeds the node's Random: the address too for a second of a name
        self.life = 0
        self.up = False
        self.host_up = True  # False after a crash (the machine is gone), True after a kill
        self.core: Core | None = None
        self.timers: dict[TimerKey, int] = {}
        # The streams this life holds, by peer: opened or heard up, not yet
        # closed or heard down.  Only notices about these reach the core.
        self.streams: dict[Address, _Stream] = {}
        self.pause: tuple[float, float] | None = None
        self.hold_timers = True  # False: a pause starves the inbox only
        # The release time of the latest held-back input; inputs due at or
        # before it wait behind it, so order survives a resume.
        self.held_until = -1.0
        # Inputs due at or before the gate are held back: +inf while paused,
        # else held_until.  One comparison on the hot path.
        self.gate = -1.0
        self.stats = NodeStats()
        self.events: deque[tuple[float, object]] = deque(maxlen=event_limit)


class _Stream:
    __slots__ = (
        "acceptor",
        "closers",
        "closes_at",
        "ident",
        "joined",
        "key",
        "last",
        "lives",
        "opener",
        "state",
    )

    def __init__(
        self, ident: int, key: tuple[Address, Address], opener: Address, acceptor: Address
    ) -> None:
        self.ident = ident
        self.key = key
        self.opener = opener
        self.acceptor = acceptor
        self.state = _CONNECTING
        self.last: dict[Address, float] = {}
        self.lives: dict[Address, int] = {}
        # The ends that know of the stream while it connects: the opener, and
        # the acceptor too if it sent on it, opened or closed it meanwhile.
        self.joined: list[Address] = [opener]
        # The ends that closed it, in order (both: nothing more to tell anyone).
        self.closers: list[Address] = []
        self.closes_at = 0.0

    def other(self, end: Address) -> Address:
        return self.acceptor if end == self.opener else self.opener


class Simulator:
    """Runs any number of sans-IO cores on a virtual clock over a simulated network.

    Build it with a seed, add nodes with :meth:`add_node`, inject faults with
    :meth:`partition`, :meth:`block`, :meth:`crash`, :meth:`restart`,
    :meth:`pause` (now, or later with :meth:`at`), and run it with
    :meth:`run_until`, :meth:`run_for`, :meth:`run_until_idle`,
    :meth:`run_until_true` or one entry at a time with :meth:`step`.

    ``codec`` (a :class:`gossamer.wire.Registry`) makes the simulator encode
    every message it carries: bytes are then counted, the trace digest covers
    message contents, oversize messages raise, and with ``wire_check`` every
    message is decoded again and the decoded copy delivered, so codec gaps show
    up in simulation.  Without a codec, bytes count as zero.  ``wire`` sets
    the size limits (default: ``WireConfig.local()``).

    ``trace=True`` keeps a digest of everything processed (:meth:`trace_hash`)
    and the last ``trace_tail`` records (:meth:`trace_tail`), for checking
    determinism and reading what led up to a failure.  It costs about a sixth
    of the throughput, so it is off unless asked for; the seed alone is
    enough to replay a run.
    """

    def __init__(
        self,
        seed: int,
        network: NetworkConfig | None = None,
        *,
        codec: Registry | None = None,
        wire: WireConfig | None = None,
        wire_check: bool = False,
        trace: bool = False,
        trace_tail: int = 200,
        event_log_limit: int = 10_000,
        on_event: EventHook | None = None,
    ) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise LocalError(f"seed must be an integer, got {seed!r}")
        if wire_check and codec is None:
            raise LocalError("wire_check needs a codec to encode and decode with")
        self.seed = seed
        self.network = network if network is not None else NetworkConfig()
        self._max_in_flight = self.network.max_in_flight
        self.now = 0.0
        self._codec = codec
        self._wire = wire if wire is not None else WireConfig.local()
        self._wire_check = wire_check
        self._rng = random.Random(f"gossamer-sim/{seed}/network")
        self._net: list[_Entry] = []
        self._timers: list[_Entry] = []
        self._seq = 0
        self._in_flight = 0  # messages and notices in the network, held inputs too
        self._messages = 0  # messages in the network: what max_in_flight bounds
        self._stream_ids = 0
        self._stale_timers = 0
        self._swept = 0  # stale timer entries removed without being processed
        self._nodes: dict[Address, _Node] = {}
        self._by_name: dict[str, Address] = {}
        self._streams: dict[tuple[Address, Address], _Stream] = {}  # the current one per pair
        self._live_streams: dict[int, _Stream] = {}  # every stream not yet dead
        self._groups: dict[Address, int] | None = None
        self._rest_group = 0
        self._blocked: set[tuple[Address, Address]] = set()
        self._cut = False
        self._event_limit = event_log_limit
        self._on_event = on_event
        self._dropped: Counter[str] = Counter()
        self._types: dict[type[Message], TypeStats] = {}
        self._trace = trace
        self._hash = hashlib.blake2b(digest_size=16)
        self._tail: deque[tuple[object, ...]] = deque(maxlen=trace_tail)
        self._trace_buffer: list[tuple[object, ...]] = []

    # ------------------------------------------------------------------ nodes

    def add_node(
        self,
        name: str,
        factory: CoreFactory,
        address: str | None = None,
        *,
        epoch: int = 1,
        same_name: bool = False,
    ) -> Address:
        """Boot a node now: build its core with ``factory`` and call ``start``.

        ``address`` defaults to ``"{name}:7946"``.  Returns the address, which
        is how the other methods name the node.  A node added while the
        network is partitioned joins the group of unlisted nodes.  ``epoch``
        is its first life's epoch.  ``same_name=True`` lets a second node take
        a name already in use (an operator's mistake, for the tests of it);
        ``address_of`` keeps naming the first.
        """
        addr = parse_address(address if address is not None else f"{name}:7946")
        if addr in self._nodes:
            raise LocalError(f"a node already listens at {addr}")
        if name in self._by_name and not same_name:
            raise LocalError(f"a node named {name!r} already exists")
        NodeId(name, addr, epoch)  # validates before anything is registered
        node = _Node(name, addr, factory, self._event_limit)
        node.epoch = epoch - 1
        if name in self._by_name:
            node.label = f"{name}@{addr}"
        self._nodes[addr] = node
        first = name not in self._by_name
        if first:
            self._by_name[name] = addr
        try:
            self._boot(node)
        except SimulationError:
            if not node.up:
                del self._nodes[addr]
                if first:
                    del self._by_name[name]
            raise
        return addr

    def crash(self, address: Address) -> None:
        """Stop a node at once, as a power cut would: no goodbye, its state is gone.

        Its peers' streams break (they hear of it after
        ``stream_break_detect_s``); inputs waiting in its inbox are lost, and
        messages to it are dropped until it restarts.
        """
        self._down(address, "crash", None)

    def kill(self, address: Address) -> None:
        """End a node's process on a machine that stays up, as SIGKILL would:
        its kernel closes its streams at once (peers hear it after the
        latency, as a close) and refuses connections at its address (a
        ``Knock`` answers False) until it restarts."""
        self._down(address, "kill", self._latency())

    def _down(self, address: Address, how: str, detect_s: float | None) -> None:
        node = self._node(address)
        if not node.up:
            raise LocalError(f"{address} is already down")
        self._end_life(node)
        node.host_up = how == "kill"
        self._record(how, address)
        for stream in [s for s in self._live_streams.values() if address in s.key]:
            self._break(stream, detect_s)

    def restart(self, address: Address) -> NodeId:
        """Boot a crashed node again: a fresh core with the next epoch."""
        node = self._node(address)
        if node.up:
            raise LocalError(f"{address} is up; crash it before restarting it")
        self._boot(node)
        return self.node_id(address)

    def pause(
        self, address: Address, min_delay_s: float, max_delay_s: float, *, timers: bool = True
    ) -> None:
        """Starve a node: every input it gets (messages, timers, notices) is held
        back by a delay uniform in ``[min_delay_s, max_delay_s]``, in order, as if
        its process got no CPU for that long.  Lasts until :meth:`resume`.

        With ``timers=False`` only the inbox is starved (messages and stream
        notices wait; timers fire on time), the slow receiver of the Lifeguard
        paper: the node's own deadlines pass while its replies sit unread.

        A held-back input has already reached the node, so a later partition
        does not take it back; a crash does.
        """
        if not (math.isfinite(max_delay_s) and 0 <= min_delay_s <= max_delay_s):
            raise LocalError(
                f"need 0 <= min_delay_s <= max_delay_s, got {min_delay_s}, {max_delay_s}"
            )
        node = self._node(address)
        if not node.up:
            raise LocalError(f"{address} is down; only a live node can be paused")
        node.pause = (min_delay_s, max_delay_s)
        node.hold_timers = timers
        node.gate = _INFINITY
        self._record("pause", address, min_delay_s, max_delay_s, timers)

    def resume(self, address: Address) -> None:
        """End a :meth:`pause`.  Inputs already held back arrive when they were due,
        and newer inputs wait behind them, so the node sees everything in order."""
        node = self._node(address)
        node.pause = None
        node.gate = node.held_until
        self._record("resume", address)

    def set_network(self, network: NetworkConfig) -> None:
        """Change the network's behaviour from now on (loss, latency...); messages
        already in flight keep the fate they were given when sent."""
        if not isinstance(network, NetworkConfig):
            raise LocalError(f"expected a NetworkConfig, got {network!r}")
        self.network = network
        self._max_in_flight = network.max_in_flight
        self._record("net", "", repr(network))

    # -------------------------------------------------------------- partitions

    def partition(self, *groups: Iterable[Address]) -> None:
        """Split the network: nodes in different groups cannot reach each other.

        Nodes named in no group (including nodes added later) form one more
        group together.  Replaces any earlier partition (one-way blocks stay).
        Streams across the cut break.
        """
        listed = [list(group) for group in groups]
        assigned: dict[Address, int] = {}
        for index, group in enumerate(listed):
            for addr in group:
                self._node(addr)
                if addr in assigned:
                    raise LocalError(f"{addr} is named in two groups")
                assigned[addr] = index
        self._groups = assigned
        self._rest_group = len(listed)
        self._update_cut("partition " + " | ".join(",".join(sorted(g)) for g in listed))

    def block(self, source: Address, target: Address) -> None:
        """Drop everything from ``source`` to ``target`` (one way; the reverse still flows)."""
        self._node(source)
        self._node(target)
        self._blocked.add((source, target))
        self._update_cut(f"block {source}->{target}")

    def heal(self) -> None:
        """Remove every partition and one-way block."""
        self._groups = None
        self._blocked.clear()
        self._update_cut("heal")

    def reachable(self, source: Address, target: Address) -> bool:
        """Whether the network currently carries messages from ``source`` to ``target``."""
        if not self._cut:
            return True
        groups = self._groups
        if groups is not None:
            rest = self._rest_group
            if groups.get(source, rest) != groups.get(target, rest):
                return False
        return (source, target) not in self._blocked

    # -------------------------------------------------------------- scheduling

    def at(self, time: float, action: Callable[[], object], label: str = "") -> None:
        """Run ``action()`` at virtual time ``time`` (a crash, a partition, a check)."""
        if not math.isfinite(time):
            raise LocalError(f"time must be a finite number of seconds, got {time!r}")
        self._seq += 1
        entry = (max(time, self.now), self._seq, _CONTROL, Address(""), action, label, None)
        _heappush(self._net, entry)

    # ----------------------------------------------------------------- running

    def step(self) -> bool:
        """Process the next scheduled entry; return False when nothing is scheduled."""
        heap = self._next_heap()
        if heap is None:
            return False
        self._dispatch(_heappop(heap))
        return True

    def run_until(self, time: float) -> None:
        """Process every entry due at or before ``time``; the clock then reads ``time``."""
        net = self._net
        timers = self._timers
        dispatch = self._dispatch
        while True:
            # Inlined _next_heap: this loop is the simulator's hottest.
            if net:
                heap = timers if timers and timers[0] < net[0] else net
            elif timers:
                heap = timers
            else:
                break
            if heap[0][0] > time:
                break
            dispatch(_heappop(heap))
        self.now = max(self.now, time)

    def run_for(self, duration_s: float) -> None:
        """Run for ``duration_s`` of virtual time."""
        self.run_until(self.now + duration_s)

    def run_until_idle(self, timeout_s: float = 60.0) -> bool:
        """Run until nothing is in flight on the network (timers may remain).

        Returns True when the network went quiet, False if ``timeout_s`` of
        virtual time passed first.  With protocols that gossip on a timer the
        network may never go quiet; use :meth:`run_until_true` for those.
        """
        deadline = self.now + timeout_s
        while self._in_flight > 0:
            heap = self._next_heap()
            if heap is None or heap[0][0] > deadline:
                self.now = max(self.now, deadline)
                return False
            self._dispatch(_heappop(heap))
        return True

    def run_until_true(
        self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.01
    ) -> float | None:
        """Run until ``predicate()`` holds, checking every ``poll_s`` of virtual time.

        Returns the virtual time at which it was first seen to hold, or None if
        it did not within ``timeout_s``.
        """
        if poll_s <= 0:
            raise LocalError(f"poll_s must be > 0, got {poll_s!r}")
        deadline = self.now + timeout_s
        while True:
            if predicate():
                return self.now
            if self.now >= deadline:
                return None
            self.run_until(min(self.now + poll_s, deadline))

    # ------------------------------------------------------------------- views

    @property
    def addresses(self) -> list[Address]:
        """Every node's address, in the order the nodes were added."""
        return list(self._nodes)

    def address_of(self, name: str) -> Address:
        """The address of the node called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise LocalError(f"no node named {name!r}") from None

    def is_up(self, address: Address) -> bool:
        return self._node(address).up

    def core(self, address: Address) -> Core | None:
        """The current core of a node, or None while it is crashed."""
        return self._node(address).core

    def call(self, address: Address, action: Callable[[Core, float], _T]) -> _T:
        """The application calls into a node: run ``action(core, now)`` at once,
        then carry out the effects it queued.  Returns what ``action`` returns.

        This is how a simulated application leaves, publishes metadata and so
        on; a caller's mistake (a :class:`LocalError` from the core) propagates.
        """
        node = self._node(address)
        core = node.core
        if not node.up or core is None:
            raise LocalError(f"{address} is down; only a live node can be called")
        result = action(core, self.now)
        self._record("call", address, _describe(action))
        self._apply(node, core)
        return result

    def node_id(self, address: Address) -> NodeId:
        node = self._node(address)
        return NodeId(node.name, node.address, node.epoch)

    def events(self, address: Address) -> list[tuple[float, object]]:
        """The last ``event_log_limit`` events a node's cores emitted, with their times."""
        return list(self._node(address).events)

    @property
    def in_flight(self) -> int:
        """Messages and stream notices the network holds right now, with the
        messages and notices held back in paused nodes' inboxes (not timers)."""
        return self._in_flight

    @property
    def processed(self) -> int:
        """How many entries the simulator has processed so far."""
        # Every entry pushed is either still queued, swept as stale, or processed.
        return self._seq - len(self._net) - len(self._timers) - self._swept

    @property
    def stats(self) -> SimStats:
        """A snapshot of the counters (copies; later runs do not change it)."""
        by_type: dict[str, TypeStats] = {}
        for cls, counts in sorted(self._types.items(), key=lambda item: item[0].__name__):
            # Keyed by class name for reading; same-named classes add up.
            total = by_type.setdefault(cls.__name__, TypeStats())
            total.sent += counts.sent
            total.bytes_sent += counts.bytes_sent
        nodes = self._nodes.values()
        return SimStats(
            # Totals are derived from the per-node counters, not kept twice.
            messages_sent=sum(n.stats.messages_sent for n in nodes),
            messages_delivered=sum(n.stats.messages_received for n in nodes),
            bytes_sent=sum(n.stats.bytes_sent for n in nodes),
            dropped=dict(sorted(self._dropped.items())),
            by_type=by_type,
            by_node={
                a: NodeStats(
                    n.stats.messages_sent,
                    n.stats.bytes_sent,
                    n.stats.messages_received,
                    n.stats.bytes_received,
                    n.stats.events_shed,
                )
                for a, n in self._nodes.items()
            },
        )

    def trace_hash(self) -> str:
        """A digest of everything processed so far; equal seeds and scenarios give
        equal digests, in any process.  Needs ``trace=True``."""
        if not self._trace:
            raise LocalError("this simulator keeps no trace: build it with trace=True")
        self._flush_trace()
        return self._hash.hexdigest()

    def trace_tail(self) -> list[str]:
        """The last ``trace_tail`` trace records, oldest first, for failure reports."""
        self._flush_trace()
        return [f"{record[0]!r} " + " ".join(map(str, record[1:])) for record in self._tail]

    # ---------------------------------------------------------------- internals

    def _error(self, what: str) -> SimulationError:
        """An error naming the seed and the time, to raise (``raise self._error(...)``)."""
        return SimulationError(self.seed, self.now, what)

    def _node(self, address: Address) -> _Node:
        try:
            return self._nodes[address]
        except KeyError:
            raise LocalError(f"no node at {address!r}") from None

    def _next_heap(self) -> list[_Entry] | None:
        net, timers = self._net, self._timers
        if net:
            return timers if timers and timers[0] < net[0] else net
        return timers or None

    def _push_message(
        self, time: float, kind: int, target: Address, a: object, b: object, c: object
    ) -> None:
        """Queue a message, unless the network is full (then drop and count it)."""
        if self._messages >= self._max_in_flight:
            self._dropped["overflow"] += 1
            return
        self._messages += 1
        self._in_flight += 1
        self._seq += 1
        _heappush(self._net, (time, self._seq, kind, target, a, b, c))

    def _push_notice(
        self, time: float, kind: int, target: Address, a: object, b: object, c: object
    ) -> None:
        """Queue a stream notice or connect; never dropped."""
        self._in_flight += 1
        self._seq += 1
        _heappush(self._net, (time, self._seq, kind, target, a, b, c))

    def _record(self, what: str, target: str, *detail: object) -> None:
        # Records are kept as tuples and digested in batches (packed as msgpack,
        # in C); they are formatted only when someone reads the tail.
        if self._trace:
            buffer = self._trace_buffer
            buffer.append((self.now, what, target, *detail))
            if len(buffer) >= _TRACE_BATCH:
                self._flush_trace()

    def _flush_trace(self) -> None:
        buffer = self._trace_buffer
        if buffer:
            self._hash.update(digest_bytes(buffer))
            self._tail.extend(buffer)
            buffer.clear()

    def _boot(self, node: _Node) -> None:
        epoch = node.epoch + 1
        ident = NodeId(node.name, node.address, epoch)
        rng = random.Random(f"gossamer-sim/{self.seed}/{node.label}/{epoch}")
        try:
            core = node.factory(ident, rng)
        except Exception as exc:
            raise self._error(f"{ident} failed to build: {exc!r}") from exc
        node.epoch = epoch
        node.host_up = True
        node.life += 1
        node.up = True
        node.core = core
        node.pause = None
        node.hold_timers = True
        node.held_until = node.gate = -1.0
        self._record("boot", node.address, epoch)
        try:
            core.start(self.now)
        except Exception as exc:
            self._end_life(node)  # it never came up
            raise self._error(f"{ident} failed to start: {exc!r}") from exc
        self._apply(node, core)

    def _end_life(self, node: _Node) -> None:
        node.up = False
        node.core = None
        node.life += 1
        node.pause = None
        node.hold_timers = True
        node.held_until = node.gate = -1.0
        node.streams.clear()
        self._stale_timers += len(node.timers)
        node.timers.clear()

    def _update_cut(self, label: str) -> None:
        self._cut = self._groups is not None or bool(self._blocked)
        self._record("net", "", label)
        for stream in list(self._live_streams.values()):
            a, b = stream.key
            if not (self.reachable(a, b) and self.reachable(b, a)):
                self._break(stream)

    def _dispatch(self, entry: _Entry) -> None:
        time, _, kind, target, a, b, c = entry
        self.now = time  # never earlier: every entry is scheduled at or after "now"
        if kind == _DATAGRAM:  # the hot path, inlined
            self._in_flight -= 1
            self._messages -= 1
            node = self._nodes.get(target)
            if node is None or not node.up:
                self._dropped["down"] += 1
            elif self._cut and not self.reachable(a, target):  # type: ignore[arg-type]
                self._dropped["partition"] += 1
            elif node.gate >= time:
                self._hold(node, entry)
            else:
                self._receive(node, a, b, c)  # type: ignore[arg-type]
        elif kind == _TIMER:
            node = self._nodes.get(target)
            if node is None or node.life != c or node.timers.get(a) != b:
                self._stale_timers -= 1
            elif node.gate >= time and node.hold_timers:
                self._hold(node, entry)
            else:
                self._fire(node, a)
        elif kind == _STREAM_MSG:
            self._in_flight -= 1
            self._messages -= 1
            stream = c
            assert isinstance(stream, _Stream)
            node = self._nodes.get(target)
            if not (stream.state == _UP or (stream.state == _CLOSING and a in stream.closers)) or (
                node is None or node.life != stream.lives.get(target)
            ):
                self._dropped["stream_broken"] += 1
            elif node.gate >= time:
                self._hold(node, entry)
            else:
                self._receive_on_stream(node, a, b, stream)  # type: ignore[arg-type]
        elif kind == _HELD:
            self._release(target, a, b)  # type: ignore[arg-type]
        elif kind in (_STREAM_UP, _STREAM_DOWN):
            self._in_flight -= 1
            self._notify(target, kind, a, c, b)  # type: ignore[arg-type]
        elif kind == _STREAM_CONNECT:
            self._in_flight -= 1
            self._connect(b)  # type: ignore[arg-type]
        elif kind == _STREAM_CLOSE:
            self._in_flight -= 1
            stream = b
            assert isinstance(stream, _Stream)
            if stream.state == _CLOSING:
                self._retire(stream)
                self._notify(target, _STREAM_DOWN, a, c, stream)  # type: ignore[arg-type]
        elif kind == _KNOCK:
            self._in_flight -= 1
            self._answer_knock(target, a, b, c)  # type: ignore[arg-type]
        elif kind == _CONTROL:
            self._record("control", "", b or _describe(a))
            assert callable(a)
            a()

    def _hold(self, node: _Node, original: _Entry) -> None:
        """Keep an input of a paused node in its inbox, behind every input held before it."""
        pause = node.pause
        delay = self._rng.uniform(pause[0], pause[1]) if pause is not None else 0.0
        when = max(self.now + delay, node.held_until)
        node.held_until = when
        if pause is None:
            node.gate = when
        self._seq += 1
        entry = (when, self._seq, _HELD, node.address, original, node.life, None)
        if original[2] == _TIMER:
            _heappush(self._timers, entry)
        else:
            self._in_flight += 1
            _heappush(self._net, entry)

    def _release(self, target: Address, original: _Entry, life: int) -> None:
        """Hand a held-back input to its node, unless the life it waited for ended."""
        kind = original[2]
        if kind != _TIMER:
            self._in_flight -= 1
        node = self._nodes.get(target)
        if node is None or not node.up or node.life != life:
            if kind in (_DATAGRAM, _STREAM_MSG):
                self._dropped["down"] += 1
            elif kind == _TIMER:
                self._stale_timers -= 1  # counted stale when its life ended
            return
        _, _, _, _, a, b, c = original
        if kind == _DATAGRAM:
            self._receive(node, a, b, c)  # type: ignore[arg-type]
        elif kind == _STREAM_MSG:
            # It reached the inbox: only the receiver's own close discards it.
            self._receive_on_stream(node, a, b, c)  # type: ignore[arg-type]
        elif kind == _TIMER:
            if node.timers.get(a) == b:
                self._fire(node, a)
            else:
                self._stale_timers -= 1  # an input released before it reset or cancelled it
        elif kind == _KNOCK:
            self._answer_knock(target, a, b, life, held=True)  # type: ignore[arg-type]
        else:
            self._deliver_notice(node, kind, a, b)  # type: ignore[arg-type]

    def _receive_on_stream(
        self, node: _Node, sender: Address, payload: object, stream: _Stream
    ) -> None:
        if node.address in stream.closers:
            self._dropped["stream_broken"] += 1  # the receiver closed it: it hears nothing more
            return
        message, data = cast(_Payload, payload)
        self._receive(node, sender, message, data)

    def _receive(self, node: _Node, sender: Address, message: Message, data: bytes) -> None:
        stats = node.stats
        stats.messages_received += 1
        stats.bytes_received += len(data)
        if self._trace:  # _record, inlined on the hot path
            # The encoded bytes stand for the content; without a codec, the type.
            buffer = self._trace_buffer
            buffer.append((self.now, "recv", node.address, sender, data or type(message).__name__))
            if len(buffer) >= _TRACE_BATCH:
                self._flush_trace()
        core = node.core
        assert core is not None
        try:
            core.handle(sender, message, self.now)
        except Exception as exc:
            raise self._error(
                f"{node.name} raised handling {type(message).__name__} from {sender}: {exc!r}"
            ) from exc
        self._apply(node, core)

    def _fire(self, node: _Node, key: TimerKey) -> None:
        del node.timers[key]
        core = node.core
        assert core is not None
        if self._trace:  # _record, inlined on the hot path
            buffer = self._trace_buffer
            buffer.append((self.now, "timer", node.address, key))
            if len(buffer) >= _TRACE_BATCH:
                self._flush_trace()
        try:
            core.on_timer(key, self.now)
        except Exception as exc:
            raise self._error(f"{node.name} raised on timer {key!r}: {exc!r}") from exc
        self._apply(node, core)

    def _notify(
        self, target: Address, kind: int, peer: Address, life: int, stream: _Stream
    ) -> None:
        node = self._nodes.get(target)
        if node is None or not node.up or node.life != life:
            return
        if node.gate >= self.now:
            self._hold(node, (self.now, 0, kind, target, peer, stream, life))
            return
        self._deliver_notice(node, kind, peer, stream)

    def _deliver_notice(self, node: _Node, kind: int, peer: Address, stream: _Stream) -> None:
        # A node hears about a stream only between opening it (or hearing it come
        # up) and closing it (or hearing it go down), so a notice about an older
        # stream to the same peer can never be taken for news of the current one.
        up = kind == _STREAM_UP
        if up:
            if node.address in stream.closers:
                return
            node.streams[peer] = stream
        elif node.streams.get(peer) is stream:
            del node.streams[peer]
        else:
            return
        core = node.core
        assert core is not None
        self._record("stream-up" if up else "stream-down", node.address, peer)
        try:
            if up:
                core.on_stream_up(peer, self.now)
            else:
                core.on_stream_down(peer, self.now)
        except Exception as exc:
            raise self._error(
                f"{node.name} raised on stream {'up' if up else 'down'} {peer}: {exc!r}"
            ) from exc
        self._apply(node, core)

    # ------------------------------------------------------------- effects

    def _apply(self, node: _Node, core: Core) -> None:
        for effect in core.drain():
            cls = effect.__class__
            if cls is SendDatagram:
                self._send_datagram(node, effect.to, effect.message)  # type: ignore[union-attr]
            elif cls is SetTimer:
                key = effect.key  # type: ignore[union-attr]
                timers = node.timers
                if key in timers:
                    self._stale_timers += 1
                self._seq = seq = self._seq + 1
                timers[key] = seq
                at = effect.at  # type: ignore[union-attr]
                now = self.now
                _heappush(
                    self._timers,
                    (at if at > now else now, seq, _TIMER, node.address, key, seq, node.life),
                )
            elif cls is SendStream:
                self._send_stream(node, effect.to, effect.message)  # type: ignore[union-attr]
            elif cls is CancelTimer:
                if node.timers.pop(effect.key, None) is not None:  # type: ignore[union-attr]
                    self._stale_timers += 1
            elif cls is Emit:
                self._emit(node, effect.event)  # type: ignore[union-attr]
            elif cls is OpenStream:
                self._open(node, effect.to)  # type: ignore[union-attr]
            elif cls is CloseStream:
                self._close(node, effect.to)  # type: ignore[union-attr]
            elif cls is Knock:
                self._knock(node, effect.to)  # type: ignore[union-attr]
            else:
                raise self._error(f"{node.name} returned a non-effect {effect!r}")
        stale = self._stale_timers
        if stale > _STALE_SWEEP_MIN and stale * 2 > len(self._timers):
            self._sweep_timers()

    def _sweep_timers(self) -> None:
        """Rebuild the timer heap without entries that can no longer fire (bounds its size)."""
        nodes = self._nodes
        heap = self._timers
        live = []
        for entry in heap:
            # A held timer is the original entry wrapped, with the life it waited for.
            timer = entry if entry[2] == _TIMER else cast(_Entry, entry[4])
            life = entry[6] if entry[2] == _TIMER else entry[5]
            node = nodes.get(timer[3])
            if node is None or node.life != life or node.timers.get(timer[4]) != timer[5]:
                continue
            live.append(entry)
        self._swept += len(heap) - len(live)
        # In place: the run loops hold a reference to this very list.
        heap[:] = live
        _heapify(heap)
        self._stale_timers = 0

    def _prepare(self, node: _Node, message: Message, limit: int) -> tuple[Message, bytes]:
        """Count a send, and encode it when there is a codec: to count bytes, to
        enforce the size limit, and (with ``wire_check``) to deliver a decoded copy."""
        data = b""
        codec = self._codec
        if codec is not None:
            try:
                data = codec.encode(message)
            except Exception as exc:
                raise self._error(f"cannot encode {message!r}: {exc!r}") from exc
            if len(data) > limit:
                raise self._error(
                    f"{node.name} sent a {type(message).__name__} of {len(data)} bytes,"
                    f" over the {limit}-byte limit"
                )
            if self._wire_check:
                try:
                    copy = codec.decode(data, max_bytes=limit)
                except Exception as exc:
                    raise self._error(f"{message!r} does not decode: {exc!r}") from exc
                if copy != message:
                    raise self._error(f"{message!r} decodes as {copy!r}")
                message = copy
        size = len(data)
        stats = node.stats
        stats.messages_sent += 1
        stats.bytes_sent += size
        cls = type(message)
        try:
            types = self._types[cls]
        except KeyError:
            types = self._types[cls] = TypeStats()
        types.sent += 1
        types.bytes_sent += size
        return message, data

    def _send_datagram(self, node: _Node, to: Address, message: Message) -> None:
        message, data = self._prepare(node, message, self._wire.max_datagram_bytes)
        net = self.network
        rnd = self._rng.random
        if net.loss and rnd() < net.loss:
            self._dropped["loss"] += 1
            return
        source = node.address
        if self._cut and not self.reachable(source, to):
            self._dropped["partition"] += 1
            return
        delay = net.latency_s + net.jitter_s * rnd()
        if net.reorder and rnd() < net.reorder:
            delay += net.reorder_delay_s * rnd()
        if self._messages < self._max_in_flight:  # _push_message, inlined
            self._messages += 1
            self._in_flight += 1
            self._seq += 1
            _heappush(
                self._net, (self.now + delay, self._seq, _DATAGRAM, to, source, message, data)
            )
        else:
            self._dropped["overflow"] += 1
        if net.duplicate and rnd() < net.duplicate:
            delay = net.latency_s + net.jitter_s * rnd()
            self._push_message(self.now + delay, _DATAGRAM, to, source, message, data)

    def _emit(self, node: _Node, event: object) -> None:
        if len(node.events) == node.events.maxlen:
            node.stats.events_shed += 1
        node.events.append((self.now, event))
        self._record("event", node.address, event)
        if self._on_event is not None:
            self._on_event(self.now, node.address, event)

    # ------------------------------------------------------------- streams

    def _latency(self) -> float:
        return self.network.latency_s + self.network.jitter_s * self._rng.random()

    def _open(self, node: _Node, to: Address) -> _Stream:
        source = node.address
        if to == source:
            raise self._error(f"{node.name} opened a stream to itself")
        known = node.streams.get(to)
        if known is not None:
            # The node's own stream to that peer, whatever became of it since:
            # what it sends on a stream that broke or was closed is lost.
            return known
        key = (source, to) if source < to else (to, source)
        ready_at = self.now + self._latency()
        stream = self._streams.get(key)
        if stream is not None:
            if stream.state == _CONNECTING and source not in stream.closers:
                # The acceptor acts on it before hearing of it: it joins.
                stream.joined.append(source)
                stream.lives[source] = node.life
                node.streams[to] = stream
                return stream
            if stream.state == _CLOSING:
                # Opening again while a close is on its way: the new stream
                # connects only after the other end has heard of the close.
                ready_at = max(ready_at, stream.closes_at)
        self._stream_ids += 1
        stream = _Stream(self._stream_ids, key, source, to)
        stream.lives[source] = node.life
        # Nothing is delivered before the stream connects, in either direction.
        stream.last[source] = stream.last[to] = ready_at
        self._streams[key] = stream
        self._live_streams[stream.ident] = stream
        node.streams[to] = stream
        self._push_notice(ready_at, _STREAM_CONNECT, to, source, stream, None)
        return stream

    def _knock(self, node: _Node, to: Address) -> None:
        """A connect without a handshake: refused where a node's process was
        killed (or none ever ran), accepted where one is up (even paused: its
        kernel still accepts), unanswered across a partition or to a machine
        that crashed."""
        source = node.address
        target = self._nodes.get(to)
        reachable = self.reachable(source, to) and self.reachable(to, source)
        if not reachable or (target is not None and not target.host_up):
            when, answer = self.now + self.network.stream_break_detect_s, None
        else:
            when = self.now + 2 * self._latency()
            answer = target is not None and target.up
        self._push_notice(when, _KNOCK, source, to, answer, node.life)

    def _answer_knock(
        self, target: Address, to: Address, answer: bool | None, life: int, held: bool = False
    ) -> None:
        node = self._nodes.get(target)
        if node is None or not node.up or node.life != life:
            return
        if not held and node.gate >= self.now:
            self._hold(node, (self.now, 0, _KNOCK, target, to, answer, life))
            return
        core = node.core
        assert core is not None
        self._record("knock", node.address, to, answer)
        try:
            core.on_knock(to, answer, self.now)  # type: ignore[attr-defined]
        except Exception as exc:
            raise self._error(f"{node.name} raised on the knock at {to}: {exc!r}") from exc
        self._apply(node, core)

    def _connect(self, stream: _Stream) -> None:
        if stream.state != _CONNECTING:
            return
        acceptor = stream.acceptor
        node = self._nodes.get(acceptor)
        if (
            node is None
            or not node.up
            or any(self._nodes[end].life != stream.lives[end] for end in stream.joined)
            or not (
                self.reachable(stream.opener, acceptor) and self.reachable(acceptor, stream.opener)
            )
        ):
            self._break(stream)
            return
        stream.state = _UP
        stream.lives[acceptor] = node.life
        open_ends = [end for end in (acceptor, stream.opener) if end not in stream.closers]
        if not open_ends:
            self._retire(stream)  # every end closed it before it connected
            return
        # Notices go out now, inline, so they come before any message on the
        # stream (those are due at or after this instant but were queued earlier).
        for end in open_ends:
            self._notify(end, _STREAM_UP, stream.other(end), stream.lives[end], stream)
        if stream.closers:
            # Closed by one end while connecting: deliver what it sent, then the close.
            self._begin_close(stream, stream.closers[0])

    def _send_stream(self, node: _Node, to: Address, message: Message) -> None:
        message, data = self._prepare(node, message, self._wire.max_frame_bytes)
        stream = self._open(node, to)
        source = node.address
        when = max(self.now + self._latency(), stream.last[source])
        stream.last[source] = when
        self._push_message(when, _STREAM_MSG, to, source, (message, data), stream)

    def _close(self, node: _Node, to: Address) -> None:
        stream = node.streams.pop(to, None)
        if stream is None or stream.state == _DEAD:
            return  # nothing open, or it broke already (the news is now moot)
        source = node.address
        stream.closers.append(source)
        if stream.state == _UP:
            self._begin_close(stream, source)
        elif stream.state == _CLOSING:
            self._retire(stream)  # both ends closed: there is no one left to tell
        # A stream still connecting closes as soon as it connects (_connect).

    def _begin_close(self, stream: _Stream, closer: Address) -> None:
        stream.state = _CLOSING
        other = stream.other(closer)
        stream.closes_at = max(self.now + self._latency(), stream.last[closer])
        self._push_notice(
            stream.closes_at, _STREAM_CLOSE, other, closer, stream, stream.lives[other]
        )

    def _retire(self, stream: _Stream) -> None:
        stream.state = _DEAD
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]
        self._live_streams.pop(stream.ident, None)

    def _break(self, stream: _Stream, detect_s: float | None = None) -> None:
        previous = stream.state
        if previous == _DEAD:
            return
        self._retire(stream)
        if detect_s is None:
            detect_s = self.network.stream_break_detect_s
        when = self.now + detect_s
        # A stream that never connected is known only to the ends that joined it.
        ends = stream.joined if previous == _CONNECTING else [stream.opener, stream.acceptor]
        for end in ends:
            if end in stream.closers:
                continue  # a closer is done with it
            node = self._nodes[end]
            if node.up and node.life == stream.lives.get(end):
                self._push_notice(when, _STREAM_DOWN, end, stream.other(end), stream, node.life)


def _describe(action: object) -> str:
    return getattr(action, "__qualname__", type(action).__name__)
