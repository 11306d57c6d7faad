"""The transport: one UDP socket and one TCP listener on one port, sealed.

The runtime's only contact with the network.  It takes no protocol decision:
it turns the core's ``SendDatagram`` / ``SendStream`` / ``OpenStream`` /
``CloseStream`` effects into packets, and packets into ``on_message`` /
``on_stream_up`` / ``on_stream_down`` calls on a :class:`Receiver` (the
engine, which hands them to the core).

Formats
-------
Every datagram and every stream frame is sealed by a
:class:`~gossamer.keyring.Sealer` (AES-256-GCM with the cluster name as
associated data, or an explicit plaintext marker).  Inside the seal:

* a **datagram** is ``[n][sender address, n ASCII bytes][message envelope]``:
  the sender names the address it is reached at, since the UDP source
  address may differ from it (a wildcard bind, several interfaces);
* a **stream** is a sequence of frames, each a 4-byte big-endian length and
  the sealed bytes.  The opener's first frame is its hello,
  ``[n][address]``; every later frame is one message envelope.

Streams
-------
At most the core's idea of "one stream per peer": a stream to a peer is
opened on the first send (or ``OpenStream``), reused for later sends, and
closed by the core, by the peer, by an error, or after ``idle_timeout_s``
with nothing sent or received.  If both ends open at the same moment, both
connections are kept until they close; the newest carries the sends.  The
receiver hears ``on_stream_up(peer)`` when the first connection to a peer is
up and ``on_stream_down(peer)`` when the last one ends (or the first one
could not connect); a stream the core closed itself is not reported.

Bad input
---------
Nothing a peer sends can raise out of the transport.  A packet over the
limit, one that does not open (wrong key, wrong cluster, tampered), one
whose sender or envelope is malformed, a stream whose hello does not come in
time: each is dropped, counted in :class:`TransportStats` under its reason,
and logged at debug level.  A stream that sends one bad frame is closed (its
framing can no longer be trusted); a bad datagram costs nothing more.

Bounds
------
Open streams (``max_streams``), bytes waiting on one stream
(``max_stream_queue_bytes``, frames queued while connecting included) and
datagram bytes waiting for the kernel (``max_udp_queue_bytes``): past each,
what is shed is counted.  A message the core builds over the configured
maximum is refused locally, counted and logged as an error (the core's bug).
"""

from __future__ import annotations

__all__ = ["Receiver", "Transport", "TransportStats"]

import asyncio
import contextlib
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gossamer.config import WireConfig
from gossamer.errors import LocalError, MessageTooLarge, WireError
from gossamer.ids import Address, AddressError, parse_address, split_address
from gossamer.keyring import Sealer, SealError
from gossamer.nodeconfig import TransportConfig
from gossamer.wire import Message, Registry

log = logging.getLogger("gossamer.transport")

_LENGTH = struct.Struct(">I")


class Receiver(Protocol):
    """What the transport calls, on its loop, for every input.  None may block."""

    def on_message(self, sender: Address, message: Message) -> None: ...

    def on_stream_up(self, peer: Address) -> None: ...

    def on_stream_down(self, peer: Address) -> None: ...


@dataclass(slots=True)
class TransportStats:
    """Monotonic counters of one transport (the debug endpoint shows them)."""

    messages_in: Counter[str] = field(default_factory=Counter)
    bytes_in: Counter[str] = field(default_factory=Counter)
    messages_out: Counter[str] = field(default_factory=Counter)
    bytes_out: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    """Inputs dropped, by reason: ``oversize``, ``decrypt``, ``plaintext``,
    ``sealed``, ``format``, ``sender``, a wire reason (``malformed``,
    ``envelope``, ``version``, ``unknown_type``, ``schema``),
    ``hello_timeout``, ``too_many_streams``."""
    shed: Counter[str] = field(default_factory=Counter)
    """Outputs shed from a full queue: ``udp_send``, ``stream_send``."""
    refused: Counter[str] = field(default_factory=Counter)
    """Sends refused: ``oversize`` (over the configured maximum),
    ``unreachable`` (the stream could not connect), ``encode`` (a message
    the codec could not write)."""


class _Stream:
    """One TCP connection, either direction."""

    __slots__ = (
        "closing",
        "connected",
        "last_active",
        "outbound",
        "peer",
        "pending",
        "pending_bytes",
        "task",
        "writer",
    )

    def __init__(self, peer: Address | None, outbound: bool, now: float) -> None:
        self.peer = peer
        self.outbound = outbound
        self.connected = False
        self.closing = False  # the core closed it: flush what is queued, then close
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []  # frames queued while connecting
        self.pending_bytes = 0
        self.last_active = now
        self.task: asyncio.Task[None] | None = None


def _buffered(udp: asyncio.DatagramTransport) -> int:
    """Bytes the datagram transport holds for the kernel (selector loops keep a buffer)."""
    size: Callable[[], int] | None = getattr(udp, "get_write_buffer_size", None)
    return size() if size is not None else 0


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the peer is gone; SWIM will notice.
        log.debug("udp error: %s", exc)


class Transport:
    """Sockets for one node (see the module docstring).  Runs on one event loop."""

    def __init__(
        self,
        *,
        bind: str,
        advertise: str | None,
        sealer: Sealer,
        codec: Registry,
        wire: WireConfig,
        config: TransportConfig,
        receiver: Receiver,
    ) -> None:
        self._bind = bind
        self._advertise_setting = advertise
        self.sealer = sealer
        self._codec = codec
        self._wire = wire
        self._config = config
        self._receiver = receiver
        self.stats = TransportStats()
        self.address: Address = Address("")
        """The advertised address, known once :meth:`start` has bound the sockets."""
        self._header = b""
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._streams: dict[Address, list[_Stream]] = {}  # connected or connecting, by peer
        self._inbound_unnamed: set[_Stream] = set()  # accepted, waiting for the hello
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> Address:
        """Bind the TCP listener and the UDP socket on one port; return the advertised address."""
        loop = self._loop = asyncio.get_running_loop()
        host, port = split_address(self._bind)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Port 0: let the kernel pick for TCP, then take the same number for UDP.
        for attempt in range(20):
            server = await asyncio.start_server(
                self._accept, host, port, family=family, reuse_address=True
            )
            bound = server.sockets[0].getsockname()[1]
            try:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self._on_datagram), local_addr=(host, bound), family=family
                )
            except OSError:
                server.close()
                await server.wait_closed()
                if port != 0 or attempt == 19:
                    raise
                continue
            break
        self._server = server
        self._udp = udp
        if self._advertise_setting is not None:
            self.address = parse_address(self._advertise_setting)
        else:
            self.address = parse_address(f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}")
        raw = self.address.encode("ascii")
        self._header = bytes([len(raw)]) + raw
        self._sweeper = loop.create_task(self._sweep_idle())
        return self.address

    async def close(self) -> None:
        """Close every socket; the receiver hears nothing more."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        streams = [s for group in self._streams.values() for s in group]
        streams += list(self._inbound_unnamed)
        self._streams.clear()
        self._inbound_unnamed.clear()
        for stream in streams:
            if stream.writer is not None:
                stream.writer.close()
            if stream.task is not None:
                stream.task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    @property
    def streams_open(self) -> int:
        return sum(len(group) for group in self._streams.values()) + len(self._inbound_unnamed)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        assert self._loop is not None
        task: asyncio.Task[None] = self._loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---------------------------------------------------------------- encoding

    def _encode(self, message: Message, limit: int) -> bytes | None:
        """The message's envelope, or None (counted and logged) if it cannot go."""
        try:
            return self._codec.encode(message, max_bytes=limit)
        except MessageTooLarge as exc:
            self.stats.refused["oversize"] += 1
            log.error("refused to send %s: %s", type(message).__name__, exc)
        except LocalError as exc:
            self.stats.refused["encode"] += 1
            log.error("cannot encode %s: %s", type(message).__name__, exc)
        return None

    # ---------------------------------------------------------------- datagrams

    def send_datagram(self, to: Address, message: Message) -> None:
        udp = self._udp
        if udp is None or self._closed:
            return
        limit = self._wire.max_datagram_bytes - self.sealer.overhead - len(self._header)
        envelope = self._encode(message, limit)
        if envelope is None:
            return
        if _buffered(udp) > self._config.max_udp_queue_bytes:
            self.stats.shed["udp_send"] += 1
            return
        packet = self.sealer.seal(self._header + envelope)
        try:
            host, port = split_address(to)
        except AddressError:
            self.stats.refused["address"] += 1
            return
        udp.sendto(packet, (host, port))
        kind = type(message).__name__
        self.stats.messages_out[kind] += 1
        self.stats.bytes_out[kind] += len(packet)

    def _on_datagram(self, data: bytes) -> None:
        if len(data) > self._wire.max_datagram_bytes:
            self._drop("oversize", "datagram of %d bytes", len(data))
            return
        try:
            plain = self.sealer.open(data)
        except SealError as exc:
            self._drop(exc.reason, "datagram: %s", exc)
            return
        if not plain:
            self._drop("sender", "datagram without a sender")
            return
        n = plain[0]
        sender = self._parse_sender(plain[1 : 1 + n])
        if sender is None:
            return
        try:
            message = self._codec.decode(plain[1 + n :], self._wire.max_datagram_bytes)
        except WireError as exc:
            self._drop(exc.reason.value, "datagram from %s: %s", sender, exc)
            return
        kind = type(message).__name__
        self.stats.messages_in[kind] += 1
        self.stats.bytes_in[kind] += len(data)
        self._receiver.on_message(sender, message)

    def _parse_sender(self, raw: bytes) -> Address | None:
        try:
            return parse_address(raw.decode("ascii"))
        except (UnicodeDecodeError, AddressError):
            self._drop("sender", "bad sender address %r", raw[:80])
            return None

    def _drop(self, reason: str, fmt: str, *args: object) -> None:
        self.stats.dropped[reason] += 1
        log.debug("dropped (%s): " + fmt, reason, *args)

    # ---------------------------------------------------------------- streams: sending

    def send_stream(self, to: Address, message: Message) -> None:
        if self._closed:
            return
        limit = self._wire.max_frame_bytes - self.sealer.overhead
        envelope = self._encode(message, limit)
        if envelope is None:
            return
        stream = self._current(to)
        if stream is None:
            stream = self._open(to)
            if stream is None:
                return
        frame = self._frame(envelope)
        kind = type(message).__name__
        if self._write(stream, frame):
            self.stats.messages_out[kind] += 1
            self.stats.bytes_out[kind] += len(frame)

    def open_stream(self, to: Address) -> None:
        if not self._closed and self._current(to) is None:
            self._open(to)

    def close_stream(self, to: Address) -> None:
        """Close every connection to ``to`` once what is queued on it is written."""
        for stream in self._streams.pop(to, []):
            stream.closing = True
            if stream.connected and stream.writer is not None:
                stream.writer.close()  # asyncio flushes the buffer before closing
                if stream.task is not None:
                    stream.task.cancel()

    def _current(self, peer: Address) -> _Stream | None:
        group = self._streams.get(peer)
        return group[-1] if group else None

    def _frame(self, payload: bytes) -> bytes:
        sealed = self.sealer.seal(payload)
        return _LENGTH.pack(len(sealed)) + sealed

    def _write(self, stream: _Stream, frame: bytes) -> bool:
        limit = self._config.max_stream_queue_bytes
        if not stream.connected:
            if stream.pending_bytes + len(frame) > limit:
                self.stats.shed["stream_send"] += 1
                return False
            stream.pending.append(frame)
            stream.pending_bytes += len(frame)
            return True
        writer = stream.writer
        assert writer is not None
        if writer.transport.get_write_buffer_size() + len(frame) > limit:
            self.stats.shed["stream_send"] += 1
            return False
        writer.write(frame)
        stream.last_active = self._now()
        return True

    def _open(self, to: Address) -> _Stream | None:
        if self.streams_open >= self._config.max_streams:
            self.stats.refused["too_many_streams"] += 1
            return None
        stream = _Stream(to, outbound=True, now=self._now())
        self._streams.setdefault(to, []).append(stream)
        stream.task = self._spawn(self._connect(stream, to))
        return stream

    async def _connect(self, stream: _Stream, to: Address) -> None:
        try:
            host, port = split_address(to)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self._config.connect_timeout_s
            )
        except (OSError, TimeoutError, AddressError) as exc:
            log.debug("cannot connect to %s: %s", to, exc)
            self.stats.refused["unreachable"] += 1
            self._forget(stream, notify=not stream.closing)
            return
        stream.writer = writer
        stream.connected = True
        writer.write(self._frame(self._header))
        for frame in stream.pending:
            writer.write(frame)
        stream.pending.clear()
        stream.pending_bytes = 0
        stream.last_active = self._now()
        if stream.closing:
            writer.close()
            return
        if len(self._streams.get(to, ())) == 1:
            self._receiver.on_stream_up(to)
        await self._read_loop(stream, reader)

    # ---------------------------------------------------------------- streams: receiving

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.close()
            return
        if self.streams_open >= self._config.max_streams:
            self._drop("too_many_streams", "refused a connection")
            writer.close()
            return
        stream = _Stream(None, outbound=False, now=self._now())
        stream.writer = writer
        stream.connected = True
        self._inbound_unnamed.add(stream)
        stream.task = asyncio.current_task()
        try:
            hello = await asyncio.wait_for(self._read_frame(reader), self._config.hello_timeout_s)
        except TimeoutError:
            self._drop("hello_timeout", "no hello on an accepted stream")
            hello = None
        except (OSError, asyncio.IncompleteReadError):
            hello = None
        self._inbound_unnamed.discard(stream)
        peer = None if hello is None else self._parse_hello(hello)
        if peer is None or self._closed:
            writer.close()
            return
        stream.peer = peer
        group = self._streams.setdefault(peer, [])
        group.append(stream)
        stream.last_active = self._now()
        if len(group) == 1:
            self._receiver.on_stream_up(peer)
        await self._read_loop(stream, reader)

    def _parse_hello(self, payload: bytes) -> Address | None:
        if not payload or payload[0] != len(payload) - 1:
            self._drop("sender", "malformed hello")
            return None
        return self._parse_sender(payload[1:])

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next frame, opened; None (counted) for one that must end the stream."""
        head = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(head)
        if length > self._wire.max_frame_bytes:
            self._drop("oversize", "frame of %d bytes", length)
            return None
        data = await reader.readexactly(length)
        try:
            return self.sealer.open(data)
        except SealError as exc:
            self._drop(exc.reason, "frame: %s", exc)
            return None

    async def _read_loop(self, stream: _Stream, reader: asyncio.StreamReader) -> None:
        peer = stream.peer
        assert peer is not None
        try:
            while not self._closed:
                payload = await self._read_frame(reader)
                if payload is None:
                    break
                stream.last_active = self._now()
                try:
                    message = self._codec.decode(payload, self._wire.max_frame_bytes)
                except WireError as exc:
                    self._drop(exc.reason.value, "frame from %s: %s", peer, exc)
                    break
                kind = type(message).__name__
                self.stats.messages_in[kind] += 1
                self.stats.bytes_in[kind] += len(payload) + _LENGTH.size + self.sealer.overhead
                self._receiver.on_message(peer, message)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the peer closed or the connection broke
        except asyncio.CancelledError:
            return  # closed by us: nobody to tell
        finally:
            if stream.writer is not None:
                stream.writer.close()
        self._forget(stream, notify=not stream.closing)

    def _forget(self, stream: _Stream, *, notify: bool) -> None:
        peer = stream.peer
        if peer is None:
            return
        group = self._streams.get(peer)
        if group is not None and stream in group:
            group.remove(stream)
            if not group:
                del self._streams[peer]
            else:
                return  # another connection to the peer is still up
        elif group:
            return
        if notify and not self._closed:
            self._receiver.on_stream_down(peer)

    async def _sweep_idle(self) -> None:
        period = self._config.idle_timeout_s / 4
        while True:
            await asyncio.sleep(period)
            cutoff = self._now() - self._config.idle_timeout_s
            for peer, group in list(self._streams.items()):
                for stream in list(group):
                    if stream.connected and stream.last_active < cutoff:
                        log.debug("closing idle stream to %s", peer)
                        if stream.writer is not None:
                            stream.writer.close()
                        if stream.task is not None:
                            stream.task.cancel()
                        self._forget(stream, notify=True)
