"""The engine: the driver that runs one NodeCore on real sockets.

This is the second driver of :class:`~gossamer.core.NodeCore` (the simulator
is the first), and it stays thin: an input arrives (a datagram, a stream
frame, a stream notice, a timer, an application call), it is handed to the
core, the core is drained, and the effects are carried out in order (sends
to the transport, timers to the loop, events to the history, the log and
the application).  No protocol decision is taken here.

It builds the node's parts from the catalogue (``gossamer.parts``) and the
sections of its :class:`~gossamer.runtime.nodeconfig.NodeConfig`, and after
every input that changed a part's view it hands the new
:class:`~gossamer.core.NodeView`, with the input's events, to ``publish``:
the application's side (``node.py``) is a callback, so the engine imports
nothing of it.  It is also the debug endpoint's :class:`DebugSource`.

The boot epoch
--------------
Every life of a node needs a larger epoch than the one before, so peers can
tell a restart from an old message.  Unless the configuration fixes it, the
epoch is the wall-clock time in milliseconds at boot, raised past the last
epoch stored in ``data_dir`` when one is configured.  The engine reads the
wall clock once more: its offset from the loop's clock at boot, which SWIM
puts its probe ticks on (``probe_grid``).  Neither decides a protocol question: one
numbers lives, the other places ticks.  Without ``data_dir``, a clock
stepped back between two lives makes the new life look older than the old
one; SWIM then hears the old life's claims as another node's and moves past
them (``failure/names.py``).  An epoch SWIM takes that way is stored in
``data_dir`` too.
"""

from __future__ import annotations

__all__ = ["Engine", "NameInUse", "NodeStopped", "boot_epoch", "store_epoch"]

import asyncio
import copy
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from gossamer._version import __version__
from gossamer.core import NodeCore, NodeView
from gossamer.debug.source import Counters, EventRecord, NodeInfo
from gossamer.effects import (
    CancelTimer,
    CloseStream,
    Emit,
    EventNote,
    Knock,
    OpenStream,
    PartContext,
    SendDatagram,
    SendStream,
    SetTimer,
    TimerKey,
)
from gossamer.errors import LocalError
from gossamer.ids import Address, AddressError, NodeId, parse_address, split_address
from gossamer.observe import PartView
from gossamer.parts import TRAFFIC, build_parts
from gossamer.runtime.keyring import Sealer
from gossamer.runtime.nodeconfig import NodeConfig
from gossamer.runtime.transport import Transport
from gossamer.wire import Message, registry

log = logging.getLogger("gossamer.node")
events_log = logging.getLogger("gossamer.events")
_JOIN_FIRST_REPORT_S = 5.0
_JOIN_MAX_REPORT_S = 60.0
_LEVELS: Final = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_T = TypeVar("_T")

Publish = Callable[[NodeView, list[object]], None]
"""Called on the engine's loop after an input: the node's view (a new one
only when a part's view changed) and the events of the input."""


class NodeStopped(LocalError):
    """The node was stopped; it can no longer act."""


class NameInUse(NodeStopped):
    """Another live node holds this node's name (``failure/names.py``): it
    refuted this one, which takes no further part.  ``holder`` is that node."""

    def __init__(self, name: str, holder: NodeId) -> None:
        super().__init__(
            f"the name {name!r} is held by another live node at {holder.address} "
            f"(epoch {holder.epoch}); give this node another name or stop the other"
        )
        self.holder = holder


def boot_epoch(config: NodeConfig) -> int:
    """The epoch of this life (see the module docstring)."""
    if config.epoch is not None:
        return config.epoch
    epoch = time.time_ns() // 1_000_000
    if config.data_dir is not None:
        path = _epoch_path(config)
        try:
            previous = int(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            previous = 0
        except (OSError, ValueError) as exc:
            raise LocalError(f"cannot read the last epoch from {path}: {exc}") from None
        epoch = max(epoch, previous + 1)
        store_epoch(config, epoch)
    return epoch


def store_epoch(config: NodeConfig, epoch: int) -> None:
    """Keep ``epoch`` in ``config.data_dir`` (when set) as the last one used."""
    if config.data_dir is None:
        return
    path = _epoch_path(config)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{epoch}\n", encoding="ascii")
    os.replace(tmp, path)


def _epoch_path(config: NodeConfig) -> Path:
    assert config.data_dir is not None
    directory = Path(config.data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{config.name}.epoch"


class Engine:
    """Drives one NodeCore on one loop: the Receiver of the transport and the
    DebugSource of the debug endpoint.

    ``publish`` receives the view and events after every input (see
    :data:`Publish`); ``shed`` tells the endpoint how many items the
    application's queues shed, by queue (``events``, ``subscriptions``).
    """

    def __init__(
        self, config: NodeConfig, publish: Publish, shed: Callable[[], Mapping[str, int]]
    ) -> None:
        self.config = config
        self._publish = publish
        self._app_shed = shed
        self.loop: asyncio.AbstractEventLoop | None = None
        self.core: NodeCore | None = None
        self.transport: Transport | None = None
        self.sealer = Sealer(config.cluster, config.keyring)
        self._timers: dict[TimerKey, asyncio.TimerHandle] = {}
        self._history: deque[EventRecord] = deque(maxlen=config.max_event_history)
        self.history_shed = 0
        self.started_at = 0.0
        self._published: NodeView | None = None
        self._debug: Any = None
        self.debug_url: str | None = None
        self.stopped = False
        self._leave_done: asyncio.Event | None = None  # the leave spread, or the node stopped
        self._join_reported = False  # a "not joined" warning went out: say when it joins

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
        self._leave_done = asyncio.Event()
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
        offset = time.time() - loop.time()
        parts = build_parts(cfg.sections, PartContext(cfg.seeds, cfg.metadata, cfg.keyring, offset))
        self.core = NodeCore(me, random.Random(os.urandom(16)), parts)
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
        if not self.core.joined:
            loop.call_later(_JOIN_FIRST_REPORT_S, self._report_join, _JOIN_FIRST_REPORT_S)
        if cfg.http is not None:
            # Imported here so a node without the endpoint never loads aiohttp.
            from gossamer.debug.server import DebugServer

            host, port = split_address(cfg.http)
            self._debug = DebugServer(self, host, port, hosts=cfg.http_hosts)
            await self._debug.start()
            self.debug_url = self._debug.url
            url = self.debug_url
            log.info(
                "debug endpoint for %s at %s: dashboard %s/, metrics %s/metrics, "
                "members %s/api/members",
                cfg.name,
                url,
                url,
                url,
                url,
            )

    def _report_join(self, waited_s: float) -> None:
        """Say why the node has not joined yet: at 5 s, then 10, 20, 40, every minute."""
        core, loop = self.core, self.loop
        if self.stopped or core is None or loop is None or core.joined:
            return
        if core.swim.view().yielded_to is not None:
            return
        self._join_reported = True
        log.warning(
            "not joined after %.0f s: no seed has let this node in; retrying. Seeds: %s",
            self._now() - self.started_at,
            self._seed_status(),
        )
        gap = min(waited_s * 2, _JOIN_MAX_REPORT_S)
        loop.call_later(gap, self._report_join, gap)

    def _seed_status(self) -> str:
        assert self.core is not None and self.transport is not None
        refused = self.core.swim.view().join_refused
        errors = self.transport.peer_errors
        parts = []
        for seed in self.config.seeds:
            try:
                address = parse_address(seed)
            except AddressError:
                parts.append(f"{seed} (not an address)")
                continue
            if refused is not None and refused.seed == address:
                why = f"refused: the name is held by a live member at {refused.holder.address}"
            else:
                why = errors.get(address, "no answer yet")
            parts.append(f"{seed} ({why})")
        return "; ".join(parts)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self._leave_done is not None:
            self._leave_done.set()  # wakes a leave() in progress
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

    def on_knock(self, peer: Address, listening: bool | None) -> None:
        if self.core is None or self.stopped:
            return
        self.core.on_knock(peer, listening, self._now())
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
        events: list[object] = []
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
                case Knock(to=to):
                    transport.knock(to)
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
                    events.append(event)
        view = core.view()
        if events or view is not self._published:
            before = self._published
            if before is not None and view.swim.local.epoch > before.swim.local.epoch:
                self._keep_epoch(view.swim.local.epoch)
            if self._join_reported and view.swim.joined:
                self._join_reported = False
                log.info("joined after %.1f s", self._now() - self.started_at)
            self._published = view
            if view.swim.leave_spread and self._leave_done is not None:
                self._leave_done.set()
            self._publish(view, events)
        for event in events:
            if not isinstance(event, TRAFFIC):  # a broadcast delivered is not news to log
                self._record(event)

    def _keep_epoch(self, epoch: int) -> None:
        try:
            store_epoch(self.config, epoch)
        except OSError as exc:
            log.error("cannot store epoch %d in %s: %s", epoch, self.config.data_dir, exc)

    def _record(self, event: object) -> None:
        assert self.core is not None
        note = self.core.describe(event) or EventNote(type(event).__name__)
        if note.severity == "debug":  # traffic, not news (a broadcast delivered)
            return
        if len(self._history) == self._history.maxlen:
            self.history_shed += 1
        if note.subject is None:  # about the node itself (a ring change)
            local = self.core.local
            subject, incarnation = local.node_id, local.incarnation
        else:
            subject, incarnation = note.subject, note.incarnation
        self._history.append(
            EventRecord(
                time.time(),
                note.kind,
                subject.name,
                subject.address,
                subject.epoch,
                incarnation,
                note.source,
                note.detail,
            )
        )
        level = _LEVELS.get(note.severity, logging.INFO)
        if note.subject is None:
            events_log.log(level, "%s %s", note.kind, note.detail)
            return
        by = f" (by {note.source})" if note.source else ""
        detail = f": {note.detail}" if note.detail else ""
        events_log.log(
            level,
            "%s %s %s epoch=%d incarnation=%d%s%s",
            subject.name,
            note.kind,
            subject.address,
            subject.epoch,
            incarnation,
            by,
            detail,
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
            not_ready=self._not_ready(),
        )

    def _not_ready(self) -> str:
        assert self.core is not None
        swim = self.core.swim.view()
        if swim.yielded_to is not None:
            return str(NameInUse(self.config.name, swim.yielded_to))
        if swim.leaving:
            return "the node left the cluster"
        if not swim.joined:
            return f"not joined yet; seeds: {self._seed_status()}"
        return ""

    def clock(self) -> float:
        return self._now()

    def view(self) -> Mapping[str, PartView]:
        assert self.core is not None
        return self.core.view().parts()

    def counters(self) -> Counters:
        core, transport = self.core, self.transport
        assert core is not None and transport is not None
        stats = transport.stats
        shed = dict(stats.shed)
        shed.update(self._app_shed())
        shed["replay_window"] = transport.freshness.shed
        shed["event_history"] = self.history_shed
        # Copies: the parts go on counting while the endpoint reads these.
        parts: dict[str, object] = {"node": copy.copy(core.stats)}
        parts.update((part.name, copy.copy(part.stats)) for part in core.parts)
        return Counters(
            parts=parts,
            messages_in=dict(stats.messages_in),
            bytes_in=dict(stats.bytes_in),
            messages_out=dict(stats.messages_out),
            bytes_out=dict(stats.bytes_out),
            dropped={**stats.dropped, **(self._debug.dropped if self._debug else {})},
            shed=shed,
            refused=dict(stats.refused),
            streams_open=transport.streams_open,
            knocks=dict(stats.knocks),
        )

    def recent_events(self) -> list[EventRecord]:
        return list(self._history)

    # ---------------------------------------------------------------- application calls

    async def leave(self) -> None:
        """Leave, then wait until the core says the news has spread (or the
        leave timeout passes, or the node stops)."""
        if self.core is None or self.stopped:
            raise NodeStopped("the node is stopped")
        self.call(lambda c, now: c.leave(now))
        done = self._leave_done
        assert done is not None
        try:
            await asyncio.wait_for(done.wait(), self.config.leave_timeout_s)
        except TimeoutError:
            log.info("leave not spread after %.1f s; stopping anyway", self.config.leave_timeout_s)
