"""The application's face of a running node: :class:`Node` and its event streams.

The engine (``engine.py``) drives the core on real sockets; this module is
what the application holds.  By default the engine runs on a thread of its
own with an event loop of its own, so an application that blocks its own
loop -- a long computation, a blocking call -- keeps answering probes and is
not suspected by its peers.  ``engine_thread=False`` runs the engine on the
caller's loop instead (many nodes in one process, tests).

Reads (``members()``, ``member()``, ``local``, ``ring``) return the
:class:`~gossamer.core.NodeView` the engine publishes after every input that
changed a part's view, so they never wait for the engine thread.  Calls that
change something (``update_metadata``, ``leave``, ``stop``) run on the
engine, and a caller's mistake comes back at once as the core's
:class:`~gossamer.errors.LocalError`.  ``wait_joined`` and ``leave`` wait
for what the core publishes, never poll.  ``events()`` gives each caller a
bounded queue of events; when an application falls behind, the oldest
events are shed and counted (``EventStream.shed``, and ``events`` on the
debug endpoint's shed counters).
"""

from __future__ import annotations

__all__ = [
    "EventStream",
    "NameInUse",
    "Node",
    "NodeEvent",
    "NodeStopped",
    "Subscription",
    "boot_epoch",
]

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from gossamer.admin.keys import KeysPart, Request
from gossamer.core import NodeCore, NodeView
from gossamer.errors import LocalError
from gossamer.ids import Address, parse_address
from gossamer.membership.members import Member
from gossamer.membership.plumtree import MAX_CHANNEL_BYTES, OWN_CHANNELS, Delivered
from gossamer.membership.tags import encode_tags
from gossamer.parts import TRAFFIC, NodeEvent
from gossamer.registry.view import Confirmation
from gossamer.ring.ring import Ring
from gossamer.runtime.engine import Engine, NameInUse, NodeStopped, boot_epoch
from gossamer.runtime.feeds import Feed
from gossamer.runtime.nodeconfig import NodeConfig
from gossamer.runtime.registries import (
    GroupMonitor,
    Groups,
    Names,
    Registration,
    RegistryMirror,
)

_T = TypeVar("_T")
_I = TypeVar("_I")


class EventStream(Feed[NodeEvent]):
    """Events as they happen, for one consumer: ``async for event in node.events()``.

    At most ``max_event_queue`` events wait; the oldest are shed and counted
    in :attr:`shed` when the consumer falls behind.
    """


class Subscription(Feed[tuple[str, bytes]]):
    """The broadcasts of one topic, for one consumer:
    ``async for origin, payload in node.subscribe("jobs")``.

    Each broadcast comes at most once, from any node (this one included),
    in no promised order.  At most ``max_event_queue`` wait; the oldest are
    shed and counted in :attr:`shed` when the consumer falls behind.
    """

    def __init__(self, node: Node, limit: int, topic: str) -> None:
        super().__init__(node, limit)
        self.topic = topic


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
        self._engine = Engine(config, self._publish, self._shed)
        self._app_loop = asyncio.get_running_loop()
        self._app_thread: int | None = threading.get_ident()
        self._thread: threading.Thread | None = None
        # Replaced whole after an input: a reader sees one input's state.
        self._view: NodeView | None = None
        # Set on the application's loop once the node joined, or stopped.
        self._joined_or_stopped = asyncio.Event()
        self._answers = asyncio.Event()  # set when a join() target answers
        self._streams: set[EventStream] = set()
        self._shed_closed = 0  # events shed by streams since closed
        self._topics: dict[str, set[Subscription]] = {}
        self._topic_shed_closed = 0  # broadcasts shed by subscriptions since closed
        self._registry: RegistryMirror | None = None  # made at the first view that has one
        self._monitor_shed_closed = 0  # group events shed by monitors since closed
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
        return self._current().swim.local

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
        _check_bool("members", "include_gone", include_gone)
        members = self._current().swim.members
        if include_gone:
            return list(members)
        return [m for m in members if m.status.live]

    def member(self, name: str) -> Member | None:
        """The entry for ``name``, in any status, or None if the table has none."""
        if not isinstance(name, str):
            raise LocalError(f"member(name): name must be a str, got {type(name).__name__}")
        for m in self._current().swim.members:
            if m.name == name:
                return m
        return None

    @property
    def joined(self) -> bool:
        """True once a seed answered (at once for a node with no seeds)."""
        view = self._view
        return view is not None and view.swim.joined and view.swim.yielded_to is None

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
        ring = self._current().ring
        if ring is None:
            raise LocalError("this node keeps no ring (NodeConfig.ring.enabled is False)")
        return ring.ring

    async def wait_joined(self, timeout_s: float | None = None) -> bool:
        """Wait until a seed has answered; False if ``timeout_s`` passed first.

        ``Node.start`` does not wait: a node whose seeds are not up yet keeps
        retrying in the background and joins as soon as one answers (the log
        says why it has not, and so does ``/healthz``).  Raises
        :class:`NameInUse` once another live node has refuted this one's
        name, and :class:`NodeStopped` after :meth:`stop`.
        """
        _check_timeout("wait_joined", timeout_s)
        if not self.joined:
            self._current()
            try:
                await asyncio.wait_for(self._joined_or_stopped.wait(), timeout_s)
            except TimeoutError:
                return False
        self._current()  # woken by stop(), or by a name clash
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

    def broadcasts_shed(self) -> int:
        """Broadcasts shed, over every subscription, since the node started."""
        subscriptions = [s for group in list(self._topics.values()) for s in list(group)]
        return self._topic_shed_closed + sum(s.shed for s in subscriptions)

    def _shed(self) -> dict[str, int]:
        monitors = self._monitor_shed_closed
        if self._registry is not None:
            monitors += sum(m.shed for m in self._registry.monitors())
        return {
            "events": self.events_shed(),
            "subscriptions": self.broadcasts_shed(),
            "monitors": monitors,
        }

    # ---------------------------------------------------------------- groups and names

    @property
    def groups(self) -> Groups:
        """Process groups, as Erlang's ``pg`` (``runtime/registries.py``):
        ``node.groups.join("workers", "w1")``, ``members``, ``monitor``..."""
        self._registry_mirror()
        return Groups(self)

    @property
    def names(self) -> Names:
        """Global names, as Erlang's ``global`` without its lock
        (``runtime/registries.py``): ``node.names.register("leader", "me")``..."""
        self._registry_mirror()
        return Names(self)

    def _registry_mirror(self) -> RegistryMirror:
        self._current()
        mirror = self._registry
        if mirror is None:
            raise LocalError(_NO_REGISTRY)
        return mirror

    def _monitor(self, scope: str, group: str | None) -> GroupMonitor:
        return self._registry_mirror().monitor(self, self.config.max_event_queue, scope, group)

    def _send_ops(self, ops: list[tuple[Any, ...]]) -> None:
        """On the engine's loop: the application's burst of registry calls, in one input."""
        with contextlib.suppress(NodeStopped):
            self._engine.call(
                lambda core, now: core.act("registry", lambda p: p.apply_ops(ops, now), now)
            )

    def _wake_engine(self, callback: Callable[[], None]) -> None:
        loop = self._engine.loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the engine's loop is closed: stopped
            if self._thread is None:
                loop.call_soon(callback)
            else:
                loop.call_soon_threadsafe(callback)

    async def _confirm_name(self, result: Registration, timeout_s: float) -> Registration:
        if not result.registered:
            return result
        name, lamport = result.holder.name, result.holder.lamport

        mirror = self._registry_mirror()

        def ask(core: NodeCore, now: float) -> int:
            ops = mirror.take_ops()  # the claim first, if its burst has not gone yet

            def run(part: Any) -> int:
                part.apply_ops(ops, now)
                return int(part.confirm(name, now))

            return int(core.act("registry", run, now))

        asked = await self._on_engine(self._engine_call_result(ask))

        def state() -> Confirmation | None:
            view = self._current().registry
            return None if view is None else view.confirmation(name, asked)

        def finished() -> bool:
            current = state()
            return current is None or current.done

        await self._wait_answers(finished, timeout_s)
        final = state()
        with mirror.lock:
            winner = mirror.names.winner(name) or result.holder
        if final is None:
            return Registration(winner.node == mirror.me, winner, False)
        missing = tuple(m for m in final.asked if m not in final.held)
        if final.lost_to is not None:
            return Registration(False, final.lost_to, False, missing)
        won = winner.node == mirror.me and winner.lamport == lamport
        return Registration(won, winner, won and not missing, missing)

    # ---------------------------------------------------------------- broadcast

    def subscribe(self, topic: str) -> Subscription:
        """The broadcasts of ``topic`` from now on, as (origin's name, payload):
        ``async for origin, payload in node.subscribe("jobs"):``.

        Each broadcast reaches every live node of a connected overlay at most
        once (this node's own included); no order is promised.  Each call
        gives an independent :class:`Subscription`.  LocalError when the node
        runs without the ``broadcast`` part or the topic is not valid.
        """
        self._check_running()
        _check_topic("subscribe", topic)
        if self._current().broadcast is None:
            raise LocalError(_NO_BROADCAST)
        feed = Subscription(self, self.config.max_event_queue, topic)
        self._topics.setdefault(topic, set()).add(feed)
        return feed

    async def broadcast(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` to every node's subscribers of ``topic``.

        Bytes, at most ``broadcast.max_broadcast_bytes``; it travels the
        overlay's broadcast tree (Plumtree), about one payload a node.
        Returns once the node has sent it.  LocalError for a payload that is
        not bytes or too long, a topic that is not valid, or a node without
        the ``broadcast`` part.
        """
        self._check_running()
        _check_topic("broadcast", topic)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise LocalError(
                f"broadcast(topic, payload): payload must be bytes, got {type(payload).__name__}"
            )
        if self._current().broadcast is None:
            raise LocalError(_NO_BROADCAST)
        data = bytes(payload)
        await self._on_engine(
            self._engine_call(
                lambda c, now: c.act("broadcast", lambda p: p.broadcast(data, now, topic), now)
            )
        )

    # ---------------------------------------------------------------- changes

    async def update_metadata(self, metadata: bytes) -> None:
        """Publish new metadata (bytes, at most ``swim.max_metadata_bytes``).

        SWIM checks it: a caller's mistake, or a node that has left, raises
        :class:`~gossamer.errors.LocalError`.
        """
        self._check_running()
        if not isinstance(metadata, bytes):
            raise LocalError(
                f"update_metadata(metadata): metadata must be bytes, got {type(metadata).__name__}"
            )
        await self._on_engine(self._engine_call(lambda c, now: c.update_metadata(metadata, now)))

    async def join(self, addresses: Iterable[str], *, timeout_s: float | None = 10.0) -> list[str]:
        """Sync with ``addresses`` now and wait (at most ``timeout_s``) for their
        answers; the addresses that answered, sorted.  They are kept as seeds,
        so a node that started alone joins a cluster this way, and two clusters
        become one.  An empty list means none answered in time (the log and
        ``/healthz`` say why)."""
        self._check_running()
        if isinstance(addresses, str) or not isinstance(addresses, Iterable):
            raise LocalError("join(addresses): a list of host:port strings, not a str")
        wanted_text = list(addresses)
        for item in wanted_text:
            if not isinstance(item, str):
                raise LocalError(f"join(addresses): host:port strings, got {item!r}")
        _check_timeout("join", timeout_s)
        wanted = {parse_address(a) for a in wanted_text} - {self.address}
        await self._on_engine(self._engine_call(lambda c, now: c.join(wanted_text, now)))
        await self._wait_answers(lambda: wanted <= self._current().swim.answered, timeout_s)
        return sorted(str(a) for a in self._current().swim.answered & wanted)

    async def force_leave(self, name: str) -> None:
        """Mark the dead member ``name`` left, so every node reaps it after
        ``swim.reap_left_after_s``; a member that is in fact alive refutes it.
        LocalError for an unknown name, this node's name, or a member not dead."""
        self._check_running()
        if not isinstance(name, str):
            raise LocalError(f"force_leave(name): name must be a str, got {type(name).__name__}")
        await self._on_engine(self._engine_call(lambda c, now: c.force_leave(name, now)))

    async def update_tags(
        self, set: Mapping[str, str] | None = None, delete: Iterable[str] = ()
    ) -> dict[str, str]:
        """Publish this node's tags (``membership/tags.py``) with ``set`` added
        and the keys in ``delete`` removed; the tags now published.  Metadata in
        another form is replaced."""
        self._check_running()
        if isinstance(delete, str):
            raise LocalError("update_tags(delete): a list of keys, not a str")
        tags = dict(self.local.tags)
        tags.update(set or {})
        for key in delete:
            tags.pop(key, None)
        await self.update_metadata(encode_tags(tags))
        return tags

    async def change_keys(
        self, op: str, key: bytes, *, timeout_s: float | None = None
    ) -> dict[str, tuple[bool, str]]:
        """Apply the key change ``op`` (``install``, ``use``, ``remove``) here and
        on every live member (``admin/keys.py``); wait for their answers (at
        most ``keys.timeout_s``) and return ``{member: (ok, detail)}``, this
        node included.  A member missing from the result did not answer.
        LocalError when this node cannot make the change (no such key to use,
        plaintext) or keeps no ``keys`` part."""
        self._check_running()
        _check_timeout("change_keys", timeout_s)
        if "keys" not in self._current().parts():
            raise LocalError("this node keeps no keys part (NodeConfig.keys.enabled is False)")

        def start(core: NodeCore, now: float) -> int:
            def change(part: Any) -> int:
                assert isinstance(part, KeysPart)
                return part.change(op, key, now)

            return core.act("keys", change, now)

        request = await self._on_engine(self._engine_call_result(start))

        def state() -> Request | None:
            view = self._current().keys
            return None if view is None else view.request(request)

        def finished() -> bool:
            now = state()
            return now is None or now.done

        await self._wait_answers(finished, timeout_s)
        final = state()
        answers = () if final is None else final.answers
        return {member: (ok, detail) for member, ok, detail, _ in answers}

    async def drain(self) -> None:
        """Mark this node draining in the member table, without leaving: every
        member sees it (``Member.draining``, ``gossamer members``) and the ring
        gives it no keys, so work moves away while it still answers.
        :meth:`undrain` reverses it; :meth:`leave` is the end of the road."""
        await self._set_draining(True)

    async def undrain(self) -> None:
        """Take the node out of draining: the ring gives it keys again."""
        await self._set_draining(False)

    async def _set_draining(self, draining: bool) -> None:
        self._check_running()
        await self._on_engine(
            self._engine_call(
                lambda core, now: core.act("swim", lambda p: p.set_draining(draining, now), now)
            )
        )

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
            for group in list(self._topics.values()):
                for feed in list(group):
                    feed.push([], end=True)
            if self._registry is not None:
                self._registry.end()
            self._joined_or_stopped.set()

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

    def _current(self) -> NodeView:
        """The latest view; NodeStopped once stopped, NameInUse once the name went to another."""
        view = self._view
        if self._stopped:
            raise NodeStopped(f"node {self.name} is stopped")
        if view is None:
            raise NodeStopped(f"node {self.name} has not started")
        if view.swim.yielded_to is not None:
            raise NameInUse(self.name, view.swim.yielded_to)
        return view

    async def _wait_answers(self, done: Callable[[], bool], timeout_s: float | None) -> None:
        """Wait until ``done()`` (read after each view that brings answers) or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            self._answers.clear()  # before reading, so no change is missed
            if done():
                return
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answers.wait(), left)

    async def _engine_call(self, action: Callable[[NodeCore, float], None]) -> None:
        self._engine.call(action)

    async def _engine_call_result(self, action: Callable[[NodeCore, float], _T]) -> _T:
        return self._engine.call(action)

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

    def _publish(self, view: NodeView, events: list[object]) -> None:
        """Called on the engine's loop after an input (``Engine``'s publish callback)."""
        before = self._view
        joined = view.swim.joined and (before is None or not before.swim.joined)
        joined |= view.swim.yielded_to is not None and (
            before is None or before.swim.yielded_to is None
        )  # wakes wait_joined, which raises NameInUse
        self._view = view  # one reference swap
        if view.registry is not None:
            if self._registry is None:
                self._registry = self._new_mirror(view)
            if events:
                self._registry.take(events)
        if events:
            typed = cast(list[NodeEvent], events)
            if any(isinstance(e, TRAFFIC) for e in typed):
                typed = self._hand_out(events)
            if typed:
                for stream in list(self._streams):
                    stream.push(typed)
        if joined:
            self._on_app_loop(self._joined_or_stopped.set)
        if before is not None and (
            view.swim.answered != before.swim.answered
            or view.keys is not before.keys
            or (
                view.registry is not None
                and before.registry is not None
                and view.registry.confirms != before.registry.confirms
            )
        ):
            self._on_app_loop(self._answers.set)

    def _new_mirror(self, view: NodeView) -> RegistryMirror:
        section = self.config.registry
        return RegistryMirror(
            view.swim.local.name,
            view.swim.local.epoch,
            section.rank,
            section.max_owner_bytes,
            self._send_ops,
            self._wake_engine,
        )

    def _on_app_loop(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the application's loop: now when called on its
        thread, else as soon as that loop can."""
        if threading.get_ident() == self._app_thread:
            callback()
        else:
            with contextlib.suppress(RuntimeError):  # the application's loop is closed
                self._app_loop.call_soon_threadsafe(callback)

    def _hand_out(self, events: list[object]) -> list[NodeEvent]:
        """Give each broadcast to its topic's subscribers; the cluster's news."""
        news: list[NodeEvent] = []
        for event in events:
            if isinstance(event, Delivered):
                for feed in list(self._topics.get(event.channel, ())):
                    feed.push([(event.origin, event.payload)])
            elif not isinstance(event, TRAFFIC):
                news.append(cast(NodeEvent, event))
        return news

    def _unsubscribe(self, feed: Feed[Any]) -> None:
        if isinstance(feed, Subscription):
            group = self._topics.get(feed.topic)
            if group is not None and feed in group:
                group.discard(feed)
                if not group:
                    del self._topics[feed.topic]
                self._topic_shed_closed += feed.shed
        elif isinstance(feed, GroupMonitor):
            if self._registry is not None:
                self._monitor_shed_closed += self._registry.forget(feed)
        elif feed in self._streams:
            self._streams.discard(feed)
            self._shed_closed += feed.shed


_NO_REGISTRY = "this node runs without the registry (NodeConfig.registry.enabled is False)"

_NO_BROADCAST = (
    "this node runs without broadcast (NodeConfig.overlay.enabled and "
    "NodeConfig.broadcast.enabled must both be True)"
)


def _check_topic(method: str, topic: object) -> None:
    if not isinstance(topic, str):
        raise LocalError(f"{method}(topic, ...): topic must be a str, got {type(topic).__name__}")
    if not topic or len(topic.encode()) > MAX_CHANNEL_BYTES:
        raise LocalError(
            f"{method}(topic, ...): topic must be 1 to {MAX_CHANNEL_BYTES} bytes, got {topic!r}"
        )
    if topic.startswith(OWN_CHANNELS):
        raise LocalError(
            f"{method}(topic, ...): topics beginning {OWN_CHANNELS!r} are the node's own"
        )


def _check_bool(method: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise LocalError(f"{method}({name}=...): {name} must be a bool, got {type(value).__name__}")


def _check_timeout(method: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LocalError(
            f"{method}(timeout_s=...): timeout_s must be a number of seconds or None, "
            f"got {type(value).__name__}"
        )
    if not value >= 0:  # also refuses NaN
        raise LocalError(f"{method}(timeout_s=...): timeout_s must be >= 0, got {value!r}")
