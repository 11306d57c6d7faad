"""The transport: one UDP socket and one TCP listener on one port, sealed.

The runtime's only contact with the network.  It takes no protocol decision:
it turns the core's ``SendDatagram`` / ``SendStream`` / ``OpenStream`` /
``CloseStream`` effects into packets, and packets into ``on_message`` /
``on_stream_up`` / ``on_stream_down`` calls on a :class:`Receiver` (the
engine, which hands them to the core).

Formats
-------
Every datagram and every stream frame is sealed by a
:class:`~gossamer.runtime.keyring.Sealer` (AES-256-GCM with the cluster name as
associated data, or an explicit plaintext marker).  Inside the seal:

* a **datagram** is ``[sender][stamp, 8 bytes][message envelope]``: the
  sender names the address it is reached at, since the UDP source address
  may differ from it (a wildcard bind, several interfaces) -- ``[0xFF][IPv4,
  4][port, 2]``, ``[0xFE][IPv6, 16][port, 2]`` or ``[n][n ASCII bytes]`` --
  and the stamp makes a replay of it worthless (``freshness.py``); both are
  under the seal, so a replay sent from elsewhere still names its sender;
* a **stream** is a sequence of frames, each a 4-byte big-endian length and
  the sealed bytes.  The opener's first frame is its hello,
  ``[n][address]``; every later frame is ``[0][envelope]``, or
  ``[1][envelope deflated]`` when that is smaller (a full state shrinks to
  about 30%), inflated no further than the frame limit.

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

__all__ = ["Receiver", "Transport", "TransportConfig", "TransportStats"]

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import socket
import struct
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gossamer.config import WireConfig, check_int, check_positive
from gossamer.errors import LocalError, MessageTooLarge, WireError
from gossamer.ids import Address, AddressError, parse_address, split_address
from gossamer.runtime.freshness import STAMP, STAMP_BYTES, Freshness, Stamper
from gossamer.runtime.keyring import Sealer, SealError, SealReason
from gossamer.runtime.loglimit import LogLimiter
from gossamer.wire import Message, Registry

log = logging.getLogger("gossamer.transport")

_LENGTH = struct.Struct(">I")
_CHALLENGE_BYTES = 16
_HELLO = b"hello"
_MAX_HELLO_BYTES = 1 + 255  # [n][address]
_DNS_TTL_S = 60.0
_MAX_HOSTS_CACHED = 4_096
_MAX_HOSTS_RESOLVING = 256
_MAX_WAITING_PER_HOST = 16
_MAX_PEER_ERRORS = 256  # the last connect error kept per peer, for the join's log
MAX_KNOCKS = 64
"""Knocks in flight at once (a burst of broken links is a few)."""

_UNOPENED = {
    SealReason.DECRYPT: "no key of this node opens them: the sender likely uses a "
    "different cluster key or cluster name (this node: cluster {cluster!r}, keys {keys})",
    SealReason.PLAINTEXT: "they are plaintext and this node requires sealed packets: "
    "give the sender the cluster's keyring",
    SealReason.SEALED: "they are sealed and this node runs in plaintext: "
    "give this node the cluster's keyring",
    SealReason.FORMAT: "they are in no gossamer format: not a gossamer node, or a newer version",
}
"""Why packets that do not open most likely did not, by reason."""


@functools.lru_cache(maxsize=4_096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Bounds and timeouts of the sockets (this module)."""

    idle_timeout_s: float = 60.0
    """A stream with nothing sent or received for this long is closed, in
    seconds, so occasional syncs do not leave a full mesh of idle links."""
    connect_timeout_s: float = 5.0
    """How long opening a stream may take before the peer counts as unreachable."""
    hello_timeout_s: float = 5.0
    """How long an accepted stream may wait before its first frame names the peer."""
    max_streams: int = 1_024
    """Bound on open streams; connections past it are refused and counted."""
    max_handshakes: int = 64
    """Bound on accepted connections that have not yet proved they hold the
    key; past it, new connections are refused and counted, and the slots of
    real streams stay free."""
    max_stream_queue_bytes: int = 16 * 1024 * 1024
    """Bound on the bytes waiting to be written on one stream; frames past it
    are shed and counted."""
    max_udp_queue_bytes: int = 1024 * 1024
    """Bound on the datagram bytes waiting for the kernel; past it, datagrams
    are shed and counted."""
    max_datagram_age_s: float = 300.0
    """A datagram stamped longer ago than this is refused (``stale``): the
    replay bound, and how far the nodes' clocks may disagree."""
    max_replay_senders: int = 16_384
    """Bound on the senders whose recent stamps are kept to refuse replays."""

    def __post_init__(self) -> None:
        owner = "TransportConfig"
        for name in ("idle_timeout_s", "connect_timeout_s", "hello_timeout_s"):
            check_positive(owner, name, getattr(self, name))
        check_int(owner, "max_streams", self.max_streams, 1, 1_000_000)
        check_int(owner, "max_handshakes", self.max_handshakes, 1, 1_000_000)
        check_int(owner, "max_stream_queue_bytes", self.max_stream_queue_bytes, 1_024, 1 << 34)
        check_int(owner, "max_udp_queue_bytes", self.max_udp_queue_bytes, 1_024, 1 << 34)
        check_positive(owner, "max_datagram_age_s", self.max_datagram_age_s)
        check_int(owner, "max_replay_senders", self.max_replay_senders, 1, 1 << 24)


class Receiver(Protocol):
    """What the transport calls, on its loop, for every input.  None may block."""

    def on_message(self, sender: Address, message: Message) -> None: ...

    def on_stream_up(self, peer: Address) -> None: ...

    def on_stream_down(self, peer: Address) -> None: ...

    def on_knock(self, peer: Address, listening: bool | None) -> None: ...


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
    """Outputs shed from a full queue: ``udp_send``, ``stream_send``, ``knock``."""
    refused: Counter[str] = field(default_factory=Counter)
    """Sends refused: ``oversize`` (over the configured maximum),
    ``unreachable`` (the stream could not connect), ``encode`` (a message
    the codec could not write), ``stream_closed`` (its connection was lost
    a moment before the stream's end was noticed)."""
    knocks: Counter[str] = field(default_factory=Counter)
    """Knocks by answer: ``listening``, ``refused``, ``silent``."""


class _Stream:
    """One TCP connection, either direction."""

    __slots__ = (
        "closing",
        "inbound_frames",
        "last_active",
        "outbound",
        "outbound_frames",
        "peer",
        "pending",
        "pending_bytes",
        "ready",
        "session",
        "task",
        "writer",
    )

    def __init__(self, peer: Address | None, outbound: bool, now: float) -> None:
        self.peer = peer
        self.outbound = outbound
        self.ready = False  # the handshake is done: frames may flow both ways
        self.closing = False  # the core closed it: flush what is queued, then close
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []  # envelopes queued until the handshake is done
        self.pending_bytes = 0
        self.last_active = now
        self.task: asyncio.Task[None] | None = None
        self.session = b""  # the acceptor's challenge: binds every frame to this stream
        self.outbound_frames = 0  # frames sent, and received: their positions
        self.inbound_frames = 0

    def context(self, sending: bool) -> bytes:
        """What a frame is sealed with: this stream, its direction, its position."""
        from_opener = self.outbound == sending
        count = self.outbound_frames if sending else self.inbound_frames
        return self.session + (b"o" if from_opener else b"a") + count.to_bytes(8, "big")


class _Udp:
    """The node's UDP socket on the loop, without asyncio's datagram transport.

    That transport receives into a fresh 256 KiB buffer per datagram; this one
    receives into one buffer of the largest datagram accepted (plus one byte,
    so a larger one shows as oversize) and drains what is ready, up to
    ``_READ_BURST`` datagrams, per wake-up.  Sends go straight to the socket;
    what the kernel will not take yet waits in a queue the caller bounds
    (``buffered``) and is written when the socket can take it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        max_datagram_bytes: int,
        on_datagram: Callable[[bytes, tuple[object, ...]], None],
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._buffer = bytearray(max_datagram_bytes + 1)
        self._view = memoryview(self._buffer)
        self._on_datagram = on_datagram
        self._waiting: deque[tuple[bytes, tuple[str, int]]] = deque()
        self.buffered = 0
        """Bytes waiting for the kernel."""
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        for _ in range(_READ_BURST):
            try:
                n, source = self._sock.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port unreachable and the like: the peer is gone; SWIM will notice.
                log.debug("udp error: %s", exc)
                continue
            self._on_datagram(bytes(self._view[:n]), source)

    def sendto(self, packet: bytes, to: tuple[str, int]) -> None:
        if not self._waiting:
            try:
                self._sock.sendto(packet, to)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._sock.fileno(), self._flush)
            except OSError as exc:
                log.debug("udp send to %s: %s", to, exc)
                return
        self._waiting.append((packet, to))
        self.buffered += len(packet)

    def _flush(self) -> None:
        while self._waiting:
            packet, to = self._waiting[0]
            try:
                self._sock.sendto(packet, to)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp send to %s: %s", to, exc)
            self._waiting.popleft()
            self.buffered -= len(packet)
        self._loop.remove_writer(self._sock.fileno())

    def close(self) -> None:
        fd = self._sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
            self._sock.close()
        self._waiting.clear()
        self.buffered = 0


_READ_BURST = 64
"""Datagrams read per wake-up at most, so a flood cannot hold the loop."""


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
        self._last_encoded: tuple[Message, int, bytes] | None = None
        self._wire = wire
        self._config = config
        self._receiver = receiver
        self.stats = TransportStats()
        self.peer_errors: dict[Address, str] = {}
        """Why the last stream to each peer failed (bounded), until one works."""
        self._warnings = LogLimiter()
        self._stamper = Stamper()
        self.freshness = Freshness(config.max_datagram_age_s, config.max_replay_senders)
        self.address: Address = Address("")
        """The advertised address, known once :meth:`start` has bound the sockets."""
        self._header = b""
        self._datagram_header = b""
        self._udp: _Udp | None = None
        self._server: asyncio.Server | None = None
        self._streams: dict[Address, list[_Stream]] = {}  # ready or connecting, by peer
        self._handshaking: set[_Stream] = set()  # accepted, waiting for the hello
        self._knocking: set[asyncio.Task[None]] = set()
        self._dns: dict[str, tuple[str, float]] = {}  # host name -> (address, expiry)
        self._dns_waiting: dict[str, list[tuple[bytes, int, str]]] = {}
        self._family = socket.AF_INET
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
        self._family = family
        # Port 0: let the kernel pick for TCP, then take the same number for UDP.
        for attempt in range(20):
            server = await asyncio.start_server(
                self._accepted, host, port, family=family, reuse_address=True
            )
            bound = server.sockets[0].getsockname()[1]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, bound))
            except OSError:
                sock.close()
                server.close()
                await server.wait_closed()
                if port != 0 or attempt == 19:
                    raise
                continue
            break
        self._server = server
        self._udp = _Udp(loop, sock, self._wire.max_datagram_bytes, self._on_datagram)
        if self._advertise_setting is not None:
            self.address = parse_address(self._advertise_setting)
        else:
            self.address = parse_address(f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}")
        raw = self.address.encode("ascii")
        self._header = bytes([len(raw)]) + raw  # what a hello names
        self._datagram_header = _sender_bytes(self.address)
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
        streams += list(self._handshaking)
        self._streams.clear()
        self._handshaking.clear()
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
        """Streams up or connecting, and accepted ones still in their handshake."""
        return self._stream_count() + len(self._handshaking)

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
        last = self._last_encoded
        # One message sent to many peers in a row (a fan-out) is encoded once:
        # messages are immutable, so the same object always encodes the same.
        if last is not None and last[0] is message and last[1] == limit:
            return last[2]
        try:
            envelope = self._codec.encode(message, max_bytes=limit)
            self._last_encoded = (message, limit, envelope)
            return envelope
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
        limit = (
            self._wire.max_datagram_bytes
            - self.sealer.overhead
            - len(self._datagram_header)
            - STAMP_BYTES
        )
        envelope = self._encode(message, limit)
        if envelope is None:
            return
        if udp.buffered > self._config.max_udp_queue_bytes:
            self.stats.shed["udp_send"] += 1
            return
        try:
            host, port = split_address(to)
        except AddressError:
            self.stats.refused["address"] += 1
            return
        packet = self.sealer.seal(self._datagram_header + self._stamper.next() + envelope)
        kind = type(message).__name__
        ip = self._resolved(host)
        if ip is None:
            self._await_resolution(host, port, packet, kind)
            return
        self._sendto(udp, packet, ip, port, kind)

    def _sendto(self, udp: _Udp, packet: bytes, ip: str, port: int, kind: str) -> None:
        udp.sendto(packet, (ip, port))
        self.stats.messages_out[kind] += 1
        self.stats.bytes_out[kind] += len(packet)

    # Host names are resolved off the loop (a datagram to a name would
    # otherwise resolve it synchronously, stalling probes), cached for a
    # while, and the datagrams waiting for an answer are bounded.

    def _resolved(self, host: str) -> str | None:
        if _is_ip(host):
            return host
        hit = self._dns.get(host)
        if hit is not None and hit[1] > self._now():
            return hit[0]
        return None

    def _await_resolution(self, host: str, port: int, packet: bytes, kind: str) -> None:
        waiting = self._dns_waiting.get(host)
        if waiting is None:
            if len(self._dns_waiting) >= _MAX_HOSTS_RESOLVING:
                self.stats.shed["dns_wait"] += 1
                return
            waiting = self._dns_waiting[host] = []
            self._spawn(self._resolve(host, port))
        if len(waiting) >= _MAX_WAITING_PER_HOST:
            self.stats.shed["dns_wait"] += 1
            return
        waiting.append((packet, port, kind))

    async def _resolve(self, host: str, port: int) -> None:
        assert self._loop is not None
        ip: str | None = None
        try:
            infos = await asyncio.wait_for(
                self._loop.getaddrinfo(host, port, family=self._family, type=socket.SOCK_DGRAM),
                self._config.connect_timeout_s,
            )
            if infos:
                ip = str(infos[0][4][0])
        except (OSError, TimeoutError, ValueError) as exc:
            log.debug("cannot resolve %s: %s", host, exc)
        waiting = self._dns_waiting.pop(host, [])
        if ip is None:
            self.stats.refused["unresolved"] += len(waiting)
            return
        self._dns[host] = (ip, self._now() + _DNS_TTL_S)
        if len(self._dns) > _MAX_HOSTS_CACHED:
            self._dns.pop(next(iter(self._dns)))  # the oldest entry
        udp = self._udp
        if udp is not None and not self._closed:
            for packet, to_port, kind in waiting:
                self._sendto(udp, packet, ip, to_port, kind)

    def _on_datagram(self, data: bytes, source: tuple[object, ...] = ()) -> None:
        if len(data) > self._wire.max_datagram_bytes:
            self._drop("oversize", "datagram of %d bytes", len(data))
            return
        try:
            plain = self.sealer.open(data)
        except SealError as exc:
            self._drop(exc.reason, "datagram: %s", exc)
            self._warn_unopened(exc.reason, "datagrams", source)
            return
        if not plain:
            self._drop("sender", "datagram without a sender")
            return
        sender, n = _read_sender(plain)
        if sender is None:
            sender = self._parse_sender(plain[1 : 1 + n])
            if sender is None:
                return
        start = 1 + n + STAMP_BYTES
        if len(plain) < start:
            self._drop("sender", "datagram from %s without a stamp", sender)
            return
        (stamp,) = STAMP.unpack_from(plain, 1 + n)
        late = self.freshness.check(sender, stamp)
        if late is not None:
            self._drop(late, "datagram from %s stamped %d", sender, stamp)
            if late == "stale":
                self._warn_stale(sender, stamp)
            return
        try:
            message = self._codec.decode(plain[start:], self._wire.max_datagram_bytes)
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

    def _warn_unopened(self, reason: str, what: str, source: object) -> None:
        """One warning per sender host and reason a minute: packets that do not open."""
        host = _host_of(source, port=what == "datagrams")  # a stream's port is ephemeral
        ip = source[0] if isinstance(source, tuple) and source else None
        held = self._warnings.allow((reason, ip))
        if held is None:
            return
        keyring = self.sealer.keyring
        cause = _UNOPENED.get(SealReason(reason), "{reason}").format(
            cluster=self.sealer.cluster,
            keys=keyring.fingerprints() if keyring is not None else [],
            reason=reason,
        )
        log.warning("%s from %s do not open%s: %s", what, host, LogLimiter.since(held), cause)

    def _warn_stale(self, sender: Address, stamp: int) -> None:
        held = self._warnings.allow(("stale", sender))
        if held is None:
            return
        age = time.time() - stamp / 1e6
        log.warning(
            "datagrams from %s are %.0f s old%s: a replay, or its clock or this node's is off "
            "by more than transport.max_datagram_age_s (%.0f s)",
            sender,
            age,
            LogLimiter.since(held),
            self._config.max_datagram_age_s,
        )

    def _peer_failed(self, peer: Address, why: str) -> None:
        self.peer_errors.pop(peer, None)
        self.peer_errors[peer] = why
        if len(self.peer_errors) > _MAX_PEER_ERRORS:
            self.peer_errors.pop(next(iter(self.peer_errors)))

    # ---------------------------------------------------------------- streams: sending

    def send_stream(self, to: Address, message: Message) -> None:
        if self._closed:
            return
        limit = self._wire.max_frame_bytes - self.sealer.overhead - 1
        envelope = self._encode(message, limit)
        if envelope is None:
            return
        stream = self._current(to)
        if stream is None:
            stream = self._open(to)
            if stream is None:
                return
        body = _deflate(envelope)
        if self._write(stream, body):
            kind = type(message).__name__
            self.stats.messages_out[kind] += 1
            self.stats.bytes_out[kind] += len(body) + _LENGTH.size + self.sealer.overhead

    def open_stream(self, to: Address) -> None:
        if not self._closed and self._current(to) is None:
            self._open(to)

    def knock(self, to: Address) -> None:
        """Connect to ``to`` and hang up (no handshake); tell the receiver
        whether anything listens there (see ``effects.Knock``).  At most
        ``MAX_KNOCKS`` at once; past it the answer is None at once (counted)."""
        if self._closed:
            return
        assert self._loop is not None
        if len(self._knocking) >= MAX_KNOCKS:
            self.stats.shed["knock"] += 1
            self._loop.call_soon(self._answer_knock, to, None)
            return
        task = self._spawn(self._knock(to))
        self._knocking.add(task)
        task.add_done_callback(self._knocking.discard)

    async def _knock(self, to: Address) -> None:
        listening: bool | None
        try:
            host, port = split_address(to)
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self._config.connect_timeout_s
            )
        except ConnectionRefusedError:
            listening = False
        except Exception:  # timeouts, unreachable hosts, names that do not resolve
            listening = None
        else:
            listening = True
            writer.close()
        self.stats.knocks[{True: "listening", False: "refused", None: "silent"}[listening]] += 1
        self._answer_knock(to, listening)

    def _answer_knock(self, to: Address, listening: bool | None) -> None:
        if not self._closed:
            self._receiver.on_knock(to, listening)

    def close_stream(self, to: Address) -> None:
        """Close every connection to ``to`` once what is queued on it is written."""
        for stream in self._streams.pop(to, []):
            stream.closing = True
            if stream.ready and stream.writer is not None:
                stream.writer.close()  # asyncio flushes the buffer before closing
                if stream.task is not None:
                    stream.task.cancel()

    def _current(self, peer: Address) -> _Stream | None:
        """The stream sends to ``peer`` go on: the newest ready one, else one connecting."""
        group = self._streams.get(peer)
        if not group:
            return None
        for stream in reversed(group):
            if stream.ready:
                return stream
        return group[-1]

    def _seal_frame(self, stream: _Stream, envelope: bytes) -> bytes:
        sealed = self.sealer.seal(envelope, stream.context(sending=True))
        stream.outbound_frames += 1
        return _LENGTH.pack(len(sealed)) + sealed

    def _write(self, stream: _Stream, envelope: bytes) -> bool:
        limit = self._config.max_stream_queue_bytes
        if not stream.ready:
            if stream.pending_bytes + len(envelope) > limit:
                self.stats.shed["stream_send"] += 1
                return False
            stream.pending.append(envelope)
            stream.pending_bytes += len(envelope)
            return True
        writer = stream.writer
        assert writer is not None
        if writer.transport.is_closing():
            # The connection is gone and its read loop has yet to say so:
            # what is sent on a broken stream is lost, as the core expects.
            self.stats.refused["stream_closed"] += 1
            return False
        if writer.transport.get_write_buffer_size() + len(envelope) > limit:
            self.stats.shed["stream_send"] += 1
            return False
        writer.write(self._seal_frame(stream, envelope))
        stream.last_active = self._now()
        return True

    def _open(self, to: Address) -> _Stream | None:
        if self._stream_count() >= self._config.max_streams:
            self.stats.refused["too_many_streams"] += 1
            # The opener hears that it cannot connect, after this input is done.
            assert self._loop is not None
            self._loop.call_soon(self._notify_down, to)
            return None
        stream = _Stream(to, outbound=True, now=self._now())
        self._streams.setdefault(to, []).append(stream)
        stream.task = self._spawn(self._connect(stream, to))
        return stream

    def _stream_count(self) -> int:
        return sum(len(group) for group in self._streams.values())

    def _notify_down(self, peer: Address) -> None:
        if not self._closed and not any(s.ready for s in self._streams.get(peer, ())):
            self._receiver.on_stream_down(peer)

    async def _connect(self, stream: _Stream, to: Address) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            host, port = split_address(to)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self._config.connect_timeout_s
            )
            stream.writer = writer
            # The acceptor speaks first: a fresh challenge our hello must seal.
            challenge = await asyncio.wait_for(
                self._read_raw(reader, _CHALLENGE_BYTES), self._config.hello_timeout_s
            )
        except asyncio.CancelledError:
            if writer is not None:
                writer.close()
            raise
        except Exception as exc:  # OSError, timeouts, a host name idna refuses...
            log.debug("cannot connect to %s: %s", to, exc)
            self._peer_failed(to, _describe_error(exc))
            self.stats.refused["unreachable"] += 1
            if writer is not None:
                writer.close()
            self._forget(stream, notify=not stream.closing)
            return
        assert writer is not None  # set before the challenge could be read
        if challenge is None:
            self._peer_failed(to, "it answered, but not as a gossamer node")
            self.stats.refused["unreachable"] += 1
            writer.close()
            self._forget(stream, notify=not stream.closing)
            return
        stream.session = challenge
        hello = self.sealer.seal(self._header, _HELLO + challenge)
        writer.write(_LENGTH.pack(len(hello)) + hello)
        stream.ready = True
        for envelope in stream.pending:
            writer.write(self._seal_frame(stream, envelope))
        stream.pending.clear()
        stream.pending_bytes = 0
        stream.last_active = self._now()
        if stream.closing:
            writer.close()
            return
        if not any(s.ready for s in self._streams.get(to, ()) if s is not stream):
            self._receiver.on_stream_up(to)
        await self._read_loop(stream, reader)

    # ---------------------------------------------------------------- streams: receiving

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A task of ours, not asyncio's: the server logs a handler task that
        # ends cancelled as an error, and closing a stream cancels its task.
        self._spawn(self._accept(reader, writer))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.close()
            return
        if len(self._handshaking) >= self._config.max_handshakes:
            self._drop("too_many_handshakes", "refused a connection")
            writer.close()
            return
        if self._stream_count() >= self._config.max_streams:
            self._drop("too_many_streams", "refused a connection")
            writer.close()
            return
        stream = _Stream(None, outbound=False, now=self._now())
        stream.writer = writer
        stream.task = asyncio.current_task()
        self._handshaking.add(stream)
        challenge = os.urandom(_CHALLENGE_BYTES)
        peer: Address | None = None
        try:
            writer.write(_LENGTH.pack(len(challenge)) + challenge)
            # The hello is small: never buffer more than it can be, unauthenticated.
            hello = await asyncio.wait_for(
                self._read_sealed(
                    reader,
                    _MAX_HELLO_BYTES + self.sealer.overhead,
                    _HELLO + challenge,
                    writer.get_extra_info("peername"),
                ),
                self._config.hello_timeout_s,
            )
            peer = None if hello is None else self._parse_hello(hello)
        except TimeoutError:
            self._drop("hello_timeout", "no hello on an accepted stream")
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            writer.close()
            return  # the transport is closing
        finally:
            self._handshaking.discard(stream)
        if peer is None or self._closed:
            writer.close()
            return
        stream.peer = peer
        stream.session = challenge
        stream.ready = True
        group = self._streams.setdefault(peer, [])
        others_ready = any(s.ready for s in group)
        group.append(stream)
        stream.last_active = self._now()
        if not others_ready:
            self._receiver.on_stream_up(peer)
        await self._read_loop(stream, reader)

    def _parse_hello(self, payload: bytes) -> Address | None:
        if not payload or payload[0] != len(payload) - 1:
            self._drop("sender", "malformed hello")
            return None
        return self._parse_sender(payload[1:])

    async def _read_raw(self, reader: asyncio.StreamReader, size: int) -> bytes | None:
        """A frame that must be exactly ``size`` bytes (the challenge), unsealed."""
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        if length != size:
            return None
        return await reader.readexactly(length)

    async def _read_sealed(
        self,
        reader: asyncio.StreamReader,
        limit: int,
        context: bytes,
        hello_from: object = None,
    ) -> bytes | None:
        """The next frame, opened; None (counted) for one that must end the stream.

        The length is checked against ``limit`` before anything is buffered.
        A frame cut off midway is counted (``truncated``) before the error
        goes on; ``hello_from`` is the peer of a hello, warned about when it
        does not open.
        """
        try:
            (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                self._drop("truncated", "frame cut off in its length")
            raise
        if length > limit:
            self._drop("oversize", "frame of %d bytes", length)
            return None
        try:
            data = await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            self._drop("truncated", "frame cut off at %d of %d bytes", len(exc.partial), length)
            raise
        try:
            return self.sealer.open(data, context)
        except SealError as exc:
            self._drop(exc.reason, "frame: %s", exc)
            if hello_from is not None:
                self._warn_unopened(exc.reason, "streams", hello_from)
            return None

    async def _read_loop(self, stream: _Stream, reader: asyncio.StreamReader) -> None:
        peer = stream.peer
        assert peer is not None
        limit = self._wire.max_frame_bytes
        try:
            while not self._closed:
                payload = await self._read_sealed(reader, limit, stream.context(sending=False))
                if payload is None:
                    break
                if not stream.inbound_frames:
                    self.peer_errors.pop(peer, None)
                stream.inbound_frames += 1
                stream.last_active = self._now()
                envelope = _inflate(payload, limit)
                if envelope is None:
                    self._drop("inflate", "frame from %s does not inflate", peer)
                    break
                try:
                    message = self._codec.decode(envelope, limit)
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
        if stream.outbound and not stream.inbound_frames and not stream.closing:
            self._peer_failed(
                peer,
                "it closed the stream after the hello: it likely uses a different "
                "cluster key or cluster name",
            )
        self._forget(stream, notify=not stream.closing)

    def _forget(self, stream: _Stream, *, notify: bool) -> None:
        """Drop ``stream``; tell the receiver if the peer has no ready stream left.

        A stream that was up reports down when it was the last one up; an
        outbound stream that never came up reports down (the opener hears it
        could not connect) unless another stream to the peer is up.
        """
        peer = stream.peer
        if peer is None:
            return
        group = self._streams.get(peer)
        if group is not None and stream in group:
            group.remove(stream)
            if not group:
                del self._streams[peer]
        if not notify or self._closed:
            return
        if stream.ready or stream.outbound:
            self._notify_down(peer)

    async def _sweep_idle(self) -> None:
        period = self._config.idle_timeout_s / 4
        while True:
            await asyncio.sleep(period)
            cutoff = self._now() - self._config.idle_timeout_s
            for peer, group in list(self._streams.items()):
                for stream in list(group):
                    if stream.ready and stream.last_active < cutoff:
                        log.debug("closing idle stream to %s", peer)
                        if stream.writer is not None:
                            stream.writer.close()
                        if stream.task is not None:
                            stream.task.cancel()
                        self._forget(stream, notify=True)


_RAW, _ZLIB = b"\x00", b"\x01"
_DEFLATE_FROM_BYTES = 256  # smaller frames (pings of a stream, a hello) go as they are


def _deflate(envelope: bytes) -> bytes:
    """A stream frame's body: ``[0][envelope]``, or ``[1][zlib of it]`` when that is
    smaller.  Full states are names and addresses over and over: they shrink."""
    if len(envelope) >= _DEFLATE_FROM_BYTES:
        # Level 1: within a few per cent of 6's size on what travels here, and
        # seven times faster (a 70 KB registry delta: 0.5 ms against 3.5).
        packed = zlib.compress(envelope, 1)
        if len(packed) < len(envelope):
            return _ZLIB + packed
    return _RAW + envelope


def _inflate(body: bytes, limit: int) -> bytes | None:
    """The envelope of a frame body; None if it is malformed or inflates past ``limit``."""
    kind, data = body[:1], body[1:]
    if kind == _RAW:
        return data
    if kind != _ZLIB:
        return None
    inflater = zlib.decompressobj()
    try:
        envelope = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    if len(envelope) > limit or inflater.unconsumed_tail or not inflater.eof:
        return None
    return envelope


_V4, _V6 = 0xFF, 0xFE
"""First byte of a datagram's sender in binary: an IPv4 or IPv6 literal and a port
(7 or 19 bytes where the text takes up to 22 or 48).  Below them, the length of
the address as ASCII."""


def _sender_bytes(addr: Address) -> bytes:
    """How a datagram names its sender (under the seal, so a replay cannot
    change it): binary for an IP literal in its canonical form, else ASCII."""
    host, port = split_address(addr)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and str(ip) == host:
        kind = _V4 if ip.version == 4 else _V6
        return bytes([kind]) + ip.packed + port.to_bytes(2, "big")
    raw = addr.encode("ascii")
    return bytes([len(raw)]) + raw


def _read_sender(plain: bytes) -> tuple[Address | None, int]:
    """A binary sender and the bytes after the first it takes; for ASCII, (None, its length)."""
    kind = plain[0]
    if kind == _V4 and len(plain) >= 7:
        return _binary_address(bytes(plain[1:7])), 6
    if kind == _V6 and len(plain) >= 19:
        return _binary_address(bytes(plain[1:19])), 18
    return None, kind


@functools.lru_cache(maxsize=4_096)
def _binary_address(raw: bytes) -> Address:
    ip = ipaddress.ip_address(raw[:-2])
    port = int.from_bytes(raw[-2:], "big")
    return Address(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")


def _host_of(source: object, *, port: bool) -> str:
    """``host:port`` (or the host alone) of a socket address tuple, for a log line."""
    if isinstance(source, tuple) and len(source) >= 2:
        host = str(source[0])
        if not port:
            return host
        return f"[{host}]:{source[1]}" if ":" in host else f"{host}:{source[1]}"
    return "an unknown sender"


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, asyncio.IncompleteReadError):
        # It accepted, then hung up before its challenge: at its bound of
        # connections in their handshake (a crowd joining at once), or
        # not a gossamer node.
        return "it hung up before its challenge (busy with other handshakes, or not gossamer)"
    return str(exc) or type(exc).__name__
