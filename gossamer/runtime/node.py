"""The asyncio runtime: a node on real sockets, and the application's API.

This is the second driver of :class:`~gossamer.core.NodeCore` (the simulator
is the first), and it stays thin: an input arrives (a datagram, a stream
frame, a stream notice, a timer, an application call), it is handed to the
core, the core is drained, and the effects are carried out in order.  No
protocol decision is taken here.

The engine
----------
By default the core, the sockets, the timers and the debug endpoint run on
an *engine thread* with an event loop of its own.  An application that
blocks its own loop -- a long computation, a blocking call -- therefore keeps
answering probes and is not suspected by its peers.  ``engine_thread=False``
runs the engine on the caller's loop instead (many nodes in one process,
tests).

The application's side
----------------------
:class:`Node` is used from the application's loop.  Reads (``members()``,
``member()``, ``local``, ``ring``) return a snapshot the engine publishes
after every input that changed the table, so they never wait for the engine
thread.
Calls that change something (``update_metadata``, ``leave``, ``stop``) check
the caller's arguments at once, raising :class:`~gossamer.errors.LocalError`,
and then run on the engine.  ``events()`` gives each caller a bounded queue
of member events and ring changes; when an application falls behind, the
oldest events are shed and counted (``EventStream.shed``, and ``events`` on
the debug endpoint's shed counters).

The boot epoch
--------------
Every life of a node needs a larger epoch than the one before, so peers can
tell a restart from an old message.  Unless the configuration fixes it, the
epoch is the wall-clock time in milliseconds at boot, raised past the last
epoch stored in ``data_dir`` when one is configured.  This is the only use
of the wall clock, and it decides no protocol question: it only numbers
lives.  Without ``data_dir``, a clock stepped back between two lives would
make the new life look older than the old one until the old one's tombstone
is reaped.
"""

from __future__ import annotations

__all__ = ["EventStream", "Node", "NodeEvent", "boot_epoch"]

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias, TypeVar

from gossamer._version import __version__
from gossamer.core import NodeCore
from gossamer.debug.source import Counters, EventRecord, NodeInfo
from gossamer.effects import (
    CancelTimer,
    CloseStream,
    Emit,
    OpenStream,
    SendDatagram,
    SendStream,
    SetTimer,
    TimerKey,
)
from gossamer.errors import LocalError
from gossamer.ids import Address, NodeId, split_address
from gossamer.membership.members import (
    Member,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberSuspect,
    MemberUpdated,
)
from gossamer.parts import node_parts
from gossamer.ring.part import RingStats
from gossamer.ring.ring import Ring
from gossamer.ring.tracker import RingChanged
from gossamer.runtime.keyring import Sealer
from gossamer.runtime.nodeconfig import NodeConfig
from gossamer.runtime.transport import Transport
from gossamer.wire import Message, registry

log = logging.getLogger("gossamer.node")
events_log = logging.getLogger("gossamer.events")

_T = TypeVar("_T")

NodeEvent: TypeAlias = MemberEvent | RingChanged
"""What ``Node.events()`` yields: a member event, or the ring change it caused."""


class NodeStopped(LocalError):
    """The node was stopped; it can no longer act."""


def boot_epoch(config: NodeConfig) -> int:
    """The epoch of this life (see the module docstring)."""
    if config.epoch is not None:
        return config.epoch
    epoch = time.time_ns() // 1_000_000
    if config.data_dir is not None:
        directory = Path(config.data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{config.name}.epoch"
        try:
            previous = int(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            previous = 0
        except (OSError, ValueError) as exc:
            raise LocalError(f"cannot read the last epoch from {path}: {exc}") from None
        epoch = max(epoch, previous + 1)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{epoch}\n", encoding="ascii")
        os.replace(tmp, path)
    return epoch


def describe(event: NodeEvent) -> tuple[str, str]:
    """An event's kind and who caused it (for logs and the debug endpoint)."""
    match event:
        case MemberJoined(previous=previous):
            restarted = previous is not None and previous.epoch < event.member.epoch
            return ("restarted" if restarted else "joined"), ""
        case MemberUpdated():
            return "updated", ""
        case MemberSuspect(source=source):
            return "suspect", source
        case MemberAlive():
            return "alive", ""
        case MemberDead(source=source):
            return "dead", source
        case MemberLeft():
            return "left", ""
        case MemberReaped():
            return "reaped", ""
        case RingChanged():
            return "ring", ""
    return type(event).__name__, ""


class EventStream:
    """Events as they happen, for one consumer: ``async for event in node.events()``.

    The queue holds at most ``max_event_queue`` events, even while the
    application's loop is blocked: the engine fills it under a lock and
    schedules at most one wake-up at a time.  When the consumer falls behind,
    the oldest events are shed and counted in :attr:`shed`.  The stream ends
    when the node stops, or when :meth:`close` is called.
    """

    def __init__(self, node: Node, limit: int) -> None:
        self._node = node
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._queue: deque[NodeEvent] = deque()
        self._limit = limit
        self._ended = False  # the node stopped: end once the queue is read
        self._wake_pending = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.shed = 0
        """Events dropped because this consumer fell behind."""

    def push(self, events: list[NodeEvent], *, end: bool = False) -> None:
        """Called by the engine, on any thread: queue ``events`` (and end the stream)."""
        with self._lock:
            if self._closed:
                return
            for event in events:
                if len(self._queue) >= self._limit:
                    self._queue.popleft()
                    self.shed += 1
                self._queue.append(event)
            self._ended = self._ended or end
            if self._wake_pending:
                return
            self._wake_pending = True
        if threading.get_ident() == self._node._app_thread:
            self._wake()
        else:
            with contextlib.suppress(RuntimeError):  # the application's loop is closed
                self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> NodeEvent:
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._closed or self._ended:
                    break
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.close()
        raise StopAsyncIteration

    def close(self) -> None:
        """Stop receiving events; iteration ends once the queued ones are read."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._node._unsubscribe(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Engine:
    """Drives one NodeCore on one loop: the Receiver of the transport and the
    DebugSource of the debug endpoint."""

    def __init__(self, config: NodeConfig, node: Node) -> None:
        self.config = config
        self._node = node
        self.loop: asyncio.AbstractEventLoop | None = None
        self.core: NodeCore | None = None
        self.transport: Transport | None = None
        self.sealer = Sealer(config.cluster, config.keyring)
        self._timers: dict[TimerKey, asyncio.TimerHandle] = {}
        self._history: deque[EventRecord] = deque(maxlen=config.max_event_history)
        self.history_shed = 0
        self.started_at = 0.0
        self._local_claim: object = None
        self._joined: bool | None = None
        self._debug: Any = None
        self.debug_url: str | None = None
        self.stopped = False
        self._stopping: asyncio.Event | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        cfg = self.config
        self.loop = asyncio.get_running_loop()
        epoch = boot_epoch(cfg)
        transport = Transport(
            bind=cfg.bind,
            advertise=cfg.advertise,
            sealer=self.sealer,
            codec=registry,
            wire=cfg.wire,
            config=cfg.transport,
            receiver=self,
        )
        address = await transport.start()
        self.transport = transport
        self._stopping = asyncio.Event()
        try:
            await self._start_core(address, epoch)
        except BaseException:
            await self.stop()  # free the ports for a retry
            raise

    async def _start_core(self, address: Address, epoch: int) -> None:
        cfg = self.config
        loop = self.loop
        assert loop is not None
        me = NodeId(cfg.name, address, epoch)
        self.core = NodeCore(
            me,
            random.Random(os.urandom(16)),
            node_parts(swim=cfg.swim, ring=cfg.ring, seeds=cfg.seeds, metadata=cfg.metadata),
        )
        self.started_at = loop.time()
        if not self.sealer.encrypted:
            log.warning(
                "node %s runs in PLAINTEXT: packets are neither encrypted nor "
                "authenticated; use a keyring outside a trusted network",
                cfg.name,
            )
        log.info("node %s is up at %s (epoch %d)", cfg.name, address, epoch)
        self.core.start(loop.time())
        self._apply()
        if cfg.http is not None:
            # Imported here so a node without the endpoint never loads aiohttp.
            from gossamer.debug.server import DebugServer

            host, port = split_address(cfg.http)
            self._debug = DebugServer(self, host, port)
            await self._debug.start()
            self.debug_url = self._debug.url
            log.info("debug endpoint for %s at %s", cfg.name, self.debug_url)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self._stopping is not None:
            self._stopping.set()  # wakes a leave() in progress
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._debug is not None:
            await self._debug.stop()
        if self.transport is not None:
            await self.transport.close()

    # ---------------------------------------------------------------- driving the core

    def _now(self) -> float:
        assert self.loop is not None
        return self.loop.time()

    def on_message(self, sender: Address, message: Message) -> None:
        if self.core is None or self.stopped:
            return
        self.core.handle(sender, message, self._now())
        self._apply()

    def on_stream_up(self, peer: Address) -> None:
        if self.core is None or self.stopped:
            return
        self.core.on_stream_up(peer, self._now())
        self._apply()

    def on_stream_down(self, peer: Address) -> None:
        if self.core is None or self.stopped:
            return
        self.core.on_stream_down(peer, self._now())
        self._apply()

    def _fire(self, key: TimerKey) -> None:
        self._timers.pop(key, None)
        if self.core is None or self.stopped:
            return
        self.core.on_timer(key, self._now())
        self._apply()

    def call(self, action: Callable[[NodeCore, float], _T]) -> _T:
        """Run an application call on the core (on this loop) and carry out its effects."""
        if self.core is None or self.stopped:
            raise NodeStopped("the node is stopped")
        try:
            return action(self.core, self._now())
        finally:
            self._apply()

    def _apply(self) -> None:
        core, transport, loop = self.core, self.transport, self.loop
        assert core is not None and transport is not None and loop is not None
        events: list[NodeEvent] = []
        for effect in core.drain():
            match effect:
                case SendDatagram(to=to, message=message):
                    transport.send_datagram(to, message)
                case SendStream(to=to, message=message):
                    transport.send_stream(to, message)
                case OpenStream(to=to):
                    transport.open_stream(to)
                case CloseStream(to=to):
                    transport.close_stream(to)
                case SetTimer(key=key, at=at):
                    old = self._timers.get(key)
                    if old is not None:
                        old.cancel()
                    self._timers[key] = loop.call_at(at, self._fire, key)
                case CancelTimer(key=key):
                    old = self._timers.pop(key, None)
                    if old is not None:
                        old.cancel()
                case Emit(event=event):
                    events.append(event)  # type: ignore[arg-type]
        claim = core.swim.table.local_claim
        if events or claim is not self._local_claim or core.joined is not self._joined:
            self._local_claim = claim
            self._joined = core.joined
            self._node._publish(core.members(), core.local, core.joined, core.ring, events)
        for event in events:
            self._record(event)

    def _record(self, event: NodeEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self.history_shed += 1
        if isinstance(event, RingChanged):
            assert self.core is not None
            local = self.core.local
            detail = event.summary()
            self._history.append(
                EventRecord(
                    time.time(),
                    "ring",
                    local.name,
                    local.address,
                    local.epoch,
                    local.incarnation,
                    detail=detail,
                )
            )
            events_log.info("ring %s", detail)
            return
        kind, source = describe(event)
        m = event.member
        self._history.append(
            EventRecord(time.time(), kind, m.name, m.address, m.epoch, m.incarnation, source)
        )
        by = f" (by {source})" if source else ""
        events_log.info(
            "%s %s %s epoch=%d incarnation=%d%s",
            m.name,
            kind,
            m.address,
            m.epoch,
            m.incarnation,
            by,
        )

    # ---------------------------------------------------------------- DebugSource

    def info(self) -> NodeInfo:
        core = self.core
        assert core is not None
        local = core.local
        return NodeInfo(
            name=local.name,
            address=local.address,
            epoch=local.epoch,
            incarnation=local.incarnation,
            status=local.status.name.lower(),
            version=__version__,
            uptime_s=self._now() - self.started_at,
            health_score=core.health_score,
            joined=core.joined,
            encrypted=self.sealer.encrypted,
            cluster=self.config.cluster,
        )

    def clock(self) -> float:
        return self._now()

    def member_list(self) -> list[Member]:
        assert self.core is not None
        return self.core.members()

    def counters(self) -> Counters:
        core, transport = self.core, self.transport
        assert core is not None and transport is not None
        stats = transport.stats
        shed = dict(stats.shed)
        shed["events"] = self._node.events_shed()
        shed["event_history"] = self.history_shed
        dropped = dict(stats.dropped)
        if core.stats.unrouted:
            dropped["unrouted"] = core.stats.unrouted
        return Counters(
            swim=dataclasses.replace(core.swim.stats),
            messages_in=dict(stats.messages_in),
            bytes_in=dict(stats.bytes_in),
            messages_out=dict(stats.messages_out),
            bytes_out=dict(stats.bytes_out),
            dropped=dropped,
            shed=shed,
            refused=dict(stats.refused),
            streams_open=transport.streams_open,
            ring_changes=getattr(core.part("ring"), "stats", RingStats()).changes,
        )

    def recent_events(self) -> list[EventRecord]:
        return list(self._history)

    def ring(self) -> Ring[str] | None:
        return self.core.ring if self.core is not None else None

    # ---------------------------------------------------------------- application calls

    async def leave(self) -> None:
        core = self.core
        if core is None or self.stopped:
            raise NodeStopped("the node is stopped")
        self.call(lambda c, now: c.leave(now))
        deadline = self._now() + self.config.leave_timeout_s
        step = core.config.gossip_interval_s
        stopping = self._stopping
        assert stopping is not None
        while not core.leave_spread() and self._now() < deadline and not self.stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), step)


async def _cancel_tasks() -> None:
    """Cancel every other task on the running loop and wait for them."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _Starting:
    """What :meth:`Node.start` returns: await it, or use it with ``async with``."""

    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self._node: Node | None = None

    def __await__(self) -> Generator[Any, None, Node]:
        return Node._start(self._config).__await__()

    async def __aenter__(self) -> Node:
        self._node = await Node._start(self._config)
        return self._node

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._node is not None:
            await self._node.__aexit__(exc_type, exc, tb)


class Node:
    """One running gossamer node.  Build it with :meth:`start`.

    ::

        config = NodeConfig.lan("web-1", "10.0.0.5:7946", seeds=("10.0.0.4:7946",),
                                keyring=load_keyring("cluster.keys"))
        async with Node.start(config) as node:
            print([m.name for m in node.members()])
            async for event in node.events():
                ...

    Leaving the ``async with`` block leaves the cluster gracefully and stops
    the node.
    """

    def __init__(self, config: NodeConfig) -> None:
        # Use Node.start(config); this only wires the pieces together.
        self.config = config
        self._engine = _Engine(config, self)
        self._app_loop = asyncio.get_running_loop()
        self._app_thread: int | None = threading.get_ident()
        self._thread: threading.Thread | None = None
        # (members, local, joined, ring), replaced whole: a reader sees one
        # input's state.
        self._snapshot: tuple[tuple[Member, ...], Member | None, bool, Ring[str] | None] = (
            (),
            None,
            False,
            None,
        )
        self._streams: set[EventStream] = set()
        self._shed_closed = 0  # events shed by streams since closed
        self._left = False
        self._stopped = False

    @staticmethod
    def start(config: NodeConfig) -> _Starting:
        """Start a node: ``node = await Node.start(config)`` or ``async with Node.start(config)``.

        Binds the sockets, joins through ``config.seeds`` (retrying in the
        background until a seed answers) and starts the debug endpoint if
        ``config.http`` is set.  Raises :class:`~gossamer.errors.LocalError`
        for a configuration that cannot run and ``OSError`` when the port is
        taken.
        """
        if not isinstance(config, NodeConfig):
            raise LocalError(f"Node.start takes a NodeConfig, got {type(config).__name__}")
        return _Starting(config)

    @classmethod
    async def _start(cls, config: NodeConfig) -> Node:
        node = cls(config)
        if config.engine_thread:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name=f"gossamer-{config.name}", daemon=True
            )
            thread.start()
            node._thread = thread
            node._engine.loop = loop
            try:
                await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(node._engine.start(), loop)
                )
            except BaseException:
                await node._shutdown_thread()
                raise
        else:
            await node._engine.start()
        return node

    # ---------------------------------------------------------------- reads

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def local(self) -> Member:
        """This node's own entry (name, address, epoch, incarnation, status, metadata)."""
        local = self._snapshot[1]
        assert local is not None
        return local

    @property
    def address(self) -> Address:
        return self.local.address

    @property
    def debug_url(self) -> str | None:
        """``http://host:port`` of the debug endpoint, when it runs."""
        return self._engine.debug_url

    def members(self, *, include_gone: bool = False) -> list[Member]:
        """Members alive or suspect (this node included), sorted by name.

        ``include_gone=True`` adds those known to be dead or to have left
        (until they are reaped).
        """
        members = self._snapshot[0]
        if include_gone:
            return list(members)
        return [m for m in members if m.status.live]

    def member(self, name: str) -> Member | None:
        """The entry for ``name``, in any status, or None if the table has none."""
        if not isinstance(name, str):
            raise LocalError(f"a member name is a str, got {type(name).__name__}")
        for m in self._snapshot[0]:
            if m.name == name:
                return m
        return None

    @property
    def joined(self) -> bool:
        """True once a seed answered (at once for a node with no seeds)."""
        return self._snapshot[2]

    @property
    def ring(self) -> Ring[str]:
        """The consistent-hashing ring over the live members' names.

        ``node.ring.owner(key)`` names the member that owns ``key``;
        ``node.ring.owners(key, 3)`` gives a preference list for replicas.
        Every node with the same live members holds an equal ring.  The ring
        is immutable: keep a reference to work against one version.  Raises
        :class:`~gossamer.errors.LocalError` when ``config.ring.enabled`` is
        False.
        """
        ring = self._snapshot[3]
        if ring is None:
            raise LocalError("this node keeps no ring (NodeConfig.ring.enabled is False)")
        return ring

    async def wait_joined(self, timeout_s: float | None = None) -> bool:
        """Wait until a seed has answered; False if ``timeout_s`` passed first.

        ``Node.start`` does not wait: a node whose seeds are not up yet keeps
        retrying in the background and joins as soon as one answers.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self._snapshot[2]:
            self._check_running()
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def events(self) -> EventStream:
        """Member events and ring changes from now on: ``async for event in node.events():``.

        Each call gives an independent stream (see :class:`EventStream`).
        """
        self._check_running()
        stream = EventStream(self, self.config.max_event_queue)
        self._streams.add(stream)
        return stream

    def events_shed(self) -> int:
        """Events shed, over every event stream, since the node started."""
        return self._shed_closed + sum(s.shed for s in list(self._streams))

    # ---------------------------------------------------------------- changes

    async def update_metadata(self, metadata: bytes) -> None:
        """Publish new metadata (at most ``swim.max_metadata_bytes``)."""
        self._check_running()
        if not isinstance(metadata, bytes):
            raise LocalError(f"metadata must be bytes, got {type(metadata).__name__}")
        limit = self.config.swim.max_metadata_bytes
        if len(metadata) > limit:
            raise LocalError(f"metadata is {len(metadata)} bytes, over the limit of {limit}")
        if self._left:
            raise LocalError("this node has left the cluster; it cannot publish metadata")
        await self._on_engine(self._engine_call(lambda c, now: c.update_metadata(metadata, now)))

    async def leave(self) -> None:
        """Leave the cluster gracefully: peers see this node *left*, not dead.

        Waits until the news has been sent enough times (at most
        ``leave_timeout_s``).  The node stops probing but keeps running until
        :meth:`stop`.  Leaving twice does nothing more.
        """
        self._check_running()
        if self._left:
            return
        self._left = True
        await self._on_engine(self._engine.leave())

    async def stop(self) -> None:
        """Close the sockets and stop the engine.  Without :meth:`leave` first,
        peers find out by failure detection (they see the node dead)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self._on_engine(self._engine.stop())
        finally:
            if self._thread is not None:
                await self._shutdown_thread()
            for stream in list(self._streams):
                stream.push([], end=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._stopped and not self._left:
                with contextlib.suppress(NodeStopped):
                    await self.leave()
        finally:
            await self.stop()

    # ---------------------------------------------------------------- plumbing

    def _check_running(self) -> None:
        if self._stopped:
            raise NodeStopped(f"node {self.name} is stopped")

    async def _engine_call(self, action: Callable[[NodeCore, float], None]) -> None:
        self._engine.call(action)

    async def _on_engine(self, coro: Awaitable[_T]) -> _T:
        """Run ``coro`` on the engine's loop and wait for it from the application's."""
        loop = self._engine.loop
        if self._thread is None or loop is None:
            return await coro
        future: concurrent.futures.Future[_T] = asyncio.run_coroutine_threadsafe(
            coro,  # type: ignore[arg-type]
            loop,
        )
        return await asyncio.wrap_future(future)

    async def _shutdown_thread(self) -> None:
        loop, thread = self._engine.loop, self._thread
        if loop is None or thread is None:
            return
        # Nothing the engine started may outlive it: cancel what is left.
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()
        self._thread = None

    def _publish(
        self,
        members: list[Member],
        local: Member,
        joined: bool,
        ring: Ring[str] | None,
        events: list[NodeEvent],
    ) -> None:
        """Called on the engine's loop after an input changed the table."""
        self._snapshot = (tuple(members), local, joined, ring)  # one reference swap
        if events:
            for stream in list(self._streams):
                stream.push(events)

    def _unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.discard(stream)
            self._shed_closed += stream.shed
