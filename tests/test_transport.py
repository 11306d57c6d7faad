"""The sealed transport on real sockets: who may talk, what garbage costs, how streams live.

Two levels: whole nodes (a wrong key, a plaintext peer, garbage thrown at a
node's port) and the :class:`Transport` class alone, driven with a small
message registry of its own and a receiver that records what it hears
(stream reuse, idle streams, the stream bound, oversize sends).  Every test
polls with :func:`eventually` rather than timing anything, and closes what it
opened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import pytest
import pytest_asyncio

from gossamer.config import WireConfig
from gossamer.failure.swim import SwimConfig
from gossamer.ids import Address
from gossamer.membership.hyparview import HyParViewConfig
from gossamer.runtime.freshness import Stamper
from gossamer.runtime.keyring import SEALED_OVERHEAD, Keyring, Sealer, generate_key
from gossamer.runtime.node import Node
from gossamer.runtime.nodeconfig import datagram_overhead
from gossamer.runtime.transport import (
    _HELLO,
    _LENGTH,
    Transport,
    TransportConfig,
    TransportStats,
    _Stream,
)
from gossamer.testing.aio import eventually
from gossamer.wire import Message, Registry, encode_envelope
from tests.helpers import TIMEOUT_S, Launch, launcher, sees_alive


def stats(node: Node) -> TransportStats:
    transport = node._engine.transport
    assert transport is not None
    return transport.stats


def names(node: Node, *, include_gone: bool = False) -> set[str]:
    return {m.name for m in node.members(include_gone=include_gone)}


@pytest_asyncio.fixture
async def launch(keyring: Keyring) -> AsyncIterator[Launch]:
    """Start nodes (``NodeConfig.local``, the test's keyring, the engine on this
    loop so counters are read between inputs); stop them all afterwards.

    ``swim=`` and ``wire=`` build the config directly instead of the preset.
    """
    async with launcher(keyring, direct_when=("wire", "swim"), engine_thread=False) as start:
        yield start


async def still_serving(victim: Node, launch: Launch) -> None:
    """A node that was sent garbage still admits a new node and answers /healthz."""
    late = await launch("late", seeds=(victim.address,))
    await eventually(
        lambda: sees_alive(victim, ["victim", "late"]) and sees_alive(late, ["victim", "late"]),
        "a new node joins the node that was sent garbage",
    )
    assert await healthz(victim) == 200


async def healthz(node: Node) -> int:
    assert node.debug_url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(node.debug_url + "/healthz") as response,
    ):
        return response.status


# -------------------------------------------------------------------- who may talk


@pytest.mark.asyncio
@pytest.mark.parametrize("mismatch", ["key", "cluster"])
async def test_a_node_without_the_cluster_key_never_becomes_a_member(
    launch: Launch, keyring: Keyring, mismatch: str
) -> None:
    a = await launch("a")
    b = await launch("b", seeds=(a.address,))
    if mismatch == "key":
        intruder = await launch(
            "intruder", seeds=(a.address, b.address), keyring=Keyring([generate_key()])
        )
    else:  # the right key, another cluster's name
        intruder = await launch("intruder", seeds=(a.address, b.address), cluster="other")
    await eventually(lambda: sees_alive(a, "ab") and sees_alive(b, "ab"), "a and b converge")
    # Its join is retried every second; let a few attempts fail.
    await eventually(
        lambda: stats(a).dropped["decrypt"] >= 3 and stats(b).dropped["decrypt"] >= 3,
        "a and b have each refused three of the intruder's joins",
    )
    assert a._engine.counters().dropped["decrypt"] == stats(a).dropped["decrypt"]
    for node in (a, b):
        assert "intruder" not in names(node, include_gone=True)
    assert names(intruder, include_gone=True) == {"intruder"}
    assert not intruder.joined


@pytest.mark.asyncio
async def test_plaintext_and_sealed_nodes_do_not_mix(launch: Launch) -> None:
    plain = await launch("plain", plaintext=True)
    sealed = await launch("sealed", seeds=(plain.address,))
    plain2 = await launch("plain2", plaintext=True, seeds=(sealed.address,))
    await eventually(
        lambda: stats(plain).dropped["sealed"] >= 1, "the plaintext node refuses a sealed hello"
    )
    await eventually(
        lambda: stats(sealed).dropped["plaintext"] >= 1,
        "the sealed node refuses a plaintext hello",
    )
    for node in (plain, sealed, plain2):
        assert names(node, include_gone=True) == {node.name}


# -------------------------------------------------------------------- garbage


def _small_datagrams_config(keyring: Keyring, **overrides: Any) -> dict[str, Any]:
    """Local timings with LAN-sized (1,400-byte) datagrams, so "oversize" can be sent."""
    wire = WireConfig.lan()
    room = wire.max_datagram_bytes - datagram_overhead("127.0.0.1:65535", encrypted=True)
    swim = dataclasses.replace(SwimConfig.local(), max_payload_bytes=room)
    return {"wire": wire, "swim": swim, **overrides}


def _expected_reason(packet: bytes, max_datagram_bytes: int) -> str:
    """Why a sealed node drops ``packet`` (random bytes: never a valid seal)."""
    if len(packet) > max_datagram_bytes:
        return "oversize"
    if not packet:
        return "format"
    if packet[0] == 0x01:
        return "decrypt" if len(packet) >= SEALED_OVERHEAD else "format"
    if packet[0] == 0x00:
        return "plaintext"
    return "format"


@pytest.mark.asyncio
async def test_udp_garbage_is_counted_and_the_node_keeps_serving(
    launch: Launch, keyring: Keyring
) -> None:
    victim = await launch("victim", http="127.0.0.1:0", **_small_datagrams_config(keyring))
    limit = victim.config.wire.max_datagram_bytes
    host, port = victim.address.rsplit(":", 1)
    rng = random.Random(20_241_121)
    expected: Counter[str] = Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(300):
            size = rng.choice([0, 1, 28, 29, 200, limit, limit + 1, rng.randrange(3 * limit)])
            packet = bytearray(rng.randbytes(size))
            if packet and i % 3:
                packet[0] = rng.choice([0x00, 0x01])  # look like a plaintext or sealed packet
            udp.sendto(packet, (host, int(port)))
            expected[_expected_reason(bytes(packet), limit)] += 1
            if i % 10 == 9:
                await asyncio.sleep(0.01)  # let the node read: loopback drops when full
    assert set(expected) == {"oversize", "format", "decrypt", "plaintext"}
    await eventually(
        lambda: stats(victim).dropped == expected,
        f"the node counts {dict(expected)} (has {dict(stats(victim).dropped)})",
    )

    await still_serving(victim, launch)


@pytest.mark.asyncio
async def test_sealed_datagrams_with_a_bad_sender_or_envelope_are_counted(
    launch: Launch, keyring: Keyring
) -> None:
    victim = await launch("victim")
    sealer = Sealer(victim.config.cluster, keyring)
    me = b"127.0.0.1:9"
    stamps = Stamper()

    def header() -> bytes:  # a fresh stamp each time, or the next would be a replay
        return bytes([len(me)]) + me + stamps.next()

    cases = [
        (b"", "sender"),  # no sender at all
        (bytes([5]) + b"\xff\xfe\xfd\xfc\xfb" + encode_envelope(5, [()]), "sender"),
        (bytes([9]) + b"host:port" + encode_envelope(5, [()]), "sender"),
        (bytes([200]) + b"127.0.0.1", "sender"),  # the length runs past the end
        (bytes([len(me)]) + me + b"\x00\x01", "sender"),  # no room for a stamp
        (header() + b"\xc1", "malformed"),  # 0xc1 is never valid msgpack
        (header(), "malformed"),  # no envelope at all
        (header() + b"\xa5hello", "envelope"),
        (header() + encode_envelope(1, [], major=99), "version"),
        (header() + encode_envelope(60_000, []), "unknown_type"),
        (header() + encode_envelope(1, ["not", "a", "ping"]), "schema"),
    ]
    host, port = victim.address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for plain, _ in cases:
            udp.sendto(sealer.seal(plain), (host, int(port)))
    expected = Counter(reason for _, reason in cases)
    await eventually(
        lambda: stats(victim).dropped == expected,
        f"the node counts {dict(expected)} (has {dict(stats(victim).dropped)})",
    )
    assert not stats(victim).messages_in
    assert names(victim, include_gone=True) == {"victim"}


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open a TCP connection to a node and read the challenge it speaks first."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    challenge = await reader.readexactly(length)
    return reader, writer, challenge


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the node closes the connection (EOF or a reset)."""
    try:
        while await asyncio.wait_for(reader.read(65_536), TIMEOUT_S):
            pass
    except ConnectionError:
        pass
    return True


def _frame(sealed: bytes) -> bytes:
    return _LENGTH.pack(len(sealed)) + sealed


def _opener_context(challenge: bytes, position: int) -> bytes:
    """What the opener seals its ``position``-th frame with (the transport's own rule)."""
    stream = _Stream(None, outbound=True, now=0.0)
    stream.session = challenge
    stream.outbound_frames = position
    return stream.context(sending=True)


@pytest.mark.asyncio
async def test_tcp_garbage_is_counted_and_the_node_keeps_serving(
    launch: Launch, keyring: Keyring
) -> None:
    victim = await launch(
        "victim", http="127.0.0.1:0", transport=TransportConfig(hello_timeout_s=0.5)
    )
    sealer = Sealer(victim.config.cluster, keyring)
    rng = random.Random(7)
    me = b"127.0.0.1:9"

    def hello(challenge: bytes, payload: bytes = bytes([len(me)]) + me) -> bytes:
        return _frame(sealer.seal(payload, _HELLO + challenge))

    garbage = bytearray(rng.randbytes(2_000))
    garbage[0] = 0x7F  # a length far over what a hello may be
    sends: list[tuple[bytes | Callable[[bytes], bytes], str | None]] = [
        (bytes(garbage), "oversize"),
        (b"\xff\xff\xff\xff" + rng.randbytes(64), "oversize"),  # a huge length prefix
        (_frame(b"\x01" + rng.randbytes(99)), "decrypt"),  # a valid length, then garbage
        (_frame(b"\x07" + rng.randbytes(99)), "format"),
        (_frame(b"\x00" + rng.randbytes(99)), "plaintext"),
        # A hello sealed for another stream's challenge: a replayed hello.
        (lambda challenge: hello(bytes(16)), "decrypt"),
        # Sealed right, but not [n][address].
        (lambda challenge: hello(challenge, bytes([3]) + b"abcdef"), "sender"),
        (lambda challenge: hello(challenge, bytes([9]) + b"host:port"), "sender"),
        # A good hello, then a frame whose envelope is garbage: the stream is closed.
        (
            lambda challenge: (
                hello(challenge) + _frame(sealer.seal(b"\x00\xc1", _opener_context(challenge, 0)))
            ),
            "malformed",
        ),
        # A body with no known deflate flag, and a deflated one past the frame limit.
        (
            lambda challenge: (
                hello(challenge) + _frame(sealer.seal(b"\x07\x90", _opener_context(challenge, 0)))
            ),
            "inflate",
        ),
        (
            lambda challenge: (
                hello(challenge)
                + _frame(
                    sealer.seal(
                        b"\x01" + zlib.compress(bytes(victim.config.wire.max_frame_bytes + 1)),
                        _opener_context(challenge, 0),
                    )
                )
            ),
            "inflate",
        ),
        # A good hello, then a frame sealed for the wrong position (a replay).
        (
            lambda challenge: (
                hello(challenge)
                + _frame(sealer.seal(encode_envelope(5, [()]), _opener_context(challenge, 1)))
            ),
            "decrypt",
        ),
        (b"", "hello_timeout"),  # connects, never says hello
    ]
    expected: Counter[str] = Counter()
    for data, reason in sends:
        reader, writer, challenge = await _connect(victim.address)
        writer.write(data(challenge) if callable(data) else data)
        await writer.drain()
        assert await _closed_by_peer(reader), reason
        writer.close()
        if reason is not None:
            expected[reason] += 1
    # A connection that closes at once costs nothing.
    _, writer, _ = await _connect(victim.address)
    writer.close()

    transport = victim._engine.transport
    assert transport is not None
    await eventually(
        lambda: stats(victim).dropped == expected and transport.streams_open == 0,
        f"the node counts {dict(expected)} (has {dict(stats(victim).dropped)}) "
        f"and holds no stream (has {transport.streams_open})",
    )
    assert names(victim, include_gone=True) == {"victim"}

    await still_serving(victim, launch)


@pytest.mark.asyncio
async def test_handshakes_are_bounded(launch: Launch) -> None:
    victim = await launch(
        "victim", transport=TransportConfig(hello_timeout_s=5.0, max_handshakes=2)
    )
    silent = [await _connect(victim.address) for _ in range(2)]
    host, port = victim.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    assert await _closed_by_peer(reader)  # refused before any challenge
    writer.close()
    assert stats(victim).dropped["too_many_handshakes"] == 1
    for _, silent_writer, _ in silent:
        silent_writer.close()


# -------------------------------------------------------------------- the Transport class

TEST_REGISTRY = Registry("transport-test")


@TEST_REGISTRY.message(1)
@dataclass(frozen=True, slots=True)
class Note(Message):
    """A test-only message."""

    text: str


class Inbox:
    """A Receiver that records everything the transport tells it."""

    def __init__(self) -> None:
        self.messages: list[tuple[Address, Message]] = []
        self.up: list[Address] = []
        self.down: list[Address] = []
        self.knocks: list[tuple[Address, bool | None]] = []

    def on_message(self, sender: Address, message: Message) -> None:
        self.messages.append((sender, message))

    def on_stream_up(self, peer: Address) -> None:
        self.up.append(peer)

    def on_stream_down(self, peer: Address) -> None:
        self.down.append(peer)

    def on_knock(self, peer: Address, listening: bool | None) -> None:
        self.knocks.append((peer, listening))


class Open(Protocol):
    async def __call__(
        self, *, wire: WireConfig | None = None, **config: Any
    ) -> tuple[Transport, Inbox]: ...


@pytest_asyncio.fixture
async def open_transport(keyring: Keyring) -> AsyncIterator[Open]:
    """Start transports on 127.0.0.1 with the test registry; close them all afterwards."""
    opened: list[Transport] = []

    async def start(*, wire: WireConfig | None = None, **config: Any) -> tuple[Transport, Inbox]:
        inbox = Inbox()
        transport = Transport(
            bind="127.0.0.1:0",
            advertise=None,
            sealer=Sealer("transport-test", keyring),
            codec=TEST_REGISTRY,
            wire=wire or WireConfig.local(),
            config=TransportConfig(**config),
            receiver=inbox,
        )
        await transport.start()
        opened.append(transport)
        return transport, inbox

    try:
        yield start
    finally:
        for transport in opened:
            await transport.close()


@pytest.mark.asyncio
async def test_datagrams_carry_the_senders_address(open_transport: Open) -> None:
    a, _ = await open_transport()
    b, b_inbox = await open_transport()
    a.send_datagram(b.address, Note("hello"))
    await eventually(lambda: bool(b_inbox.messages), "b receives the datagram")
    assert b_inbox.messages == [(a.address, Note("hello"))]
    assert a.streams_open == 0 and b.streams_open == 0
    assert a.stats.messages_out["Note"] == 1 and b.stats.messages_in["Note"] == 1


@pytest.mark.asyncio
async def test_sends_to_one_peer_reuse_one_stream(open_transport: Open) -> None:
    a, a_inbox = await open_transport()
    b, b_inbox = await open_transport()
    a.send_stream(b.address, Note("one"))
    a.send_stream(b.address, Note("two"))  # queued while the first connection comes up
    await eventually(lambda: len(b_inbox.messages) == 2, "b receives two messages")
    a.send_stream(b.address, Note("three"))  # on the stream that is now up
    await eventually(lambda: len(b_inbox.messages) == 3, "b receives the third message")

    assert b_inbox.messages == [(a.address, Note(t)) for t in ("one", "two", "three")]
    assert a.streams_open == 1 and b.streams_open == 1
    assert a_inbox.up == [b.address] and b_inbox.up == [a.address]
    assert not a_inbox.down and not b_inbox.down

    b.send_stream(a.address, Note("back"))  # b opens its own stream: a second connection
    await eventually(lambda: len(a_inbox.messages) == 1, "a receives b's message")
    assert a_inbox.messages == [(b.address, Note("back"))]
    assert a_inbox.up == [b.address]  # still one "up": the peer already had a stream


@pytest.mark.asyncio
async def test_an_idle_stream_is_closed(open_transport: Open) -> None:
    a, a_inbox = await open_transport(idle_timeout_s=0.5)
    b, b_inbox = await open_transport(idle_timeout_s=0.5)
    a.send_stream(b.address, Note("once"))
    await eventually(lambda: bool(b_inbox.messages), "b receives the message")
    await eventually(
        lambda: a.streams_open == 0 and b.streams_open == 0, "both ends close the idle stream"
    )
    # The end that timed out tells its receiver; so does the end that saw it close.
    assert a_inbox.down == [b.address]
    assert b_inbox.down == [a.address]

    a.send_stream(b.address, Note("again"))  # a later send opens a new stream
    await eventually(lambda: len(b_inbox.messages) == 2, "b receives the later message")
    assert a_inbox.up == [b.address, b.address]


@pytest.mark.asyncio
async def test_nodes_close_idle_streams_after_a_push_pull(launch: Launch) -> None:
    quick = TransportConfig(idle_timeout_s=0.5)
    off = {"overlay": HyParViewConfig(enabled=False)}  # its links never idle
    a = await launch("a", transport=quick, sections=off)
    b = await launch("b", seeds=(a.address,), transport=quick, sections=off)
    await eventually(lambda: sees_alive(a, "ab") and sees_alive(b, "ab"), "a and b converge")
    assert a._engine.counters().messages_in["PushPull"] >= 1
    transports = [node._engine.transport for node in (a, b)]
    await eventually(
        lambda: all(t is not None and t.streams_open == 0 for t in transports),
        "a and b hold no stream",
    )


@pytest.mark.asyncio
async def test_the_stream_bound_refuses_and_counts(open_transport: Open) -> None:
    a, a_inbox = await open_transport(max_streams=1)
    b, b_inbox = await open_transport(max_streams=1)
    c, c_inbox = await open_transport()
    d, d_inbox = await open_transport()

    # Outbound: a holds one stream (to b); a second one is refused locally.
    a.send_stream(b.address, Note("to b"))
    a.send_stream(c.address, Note("to c"))
    assert a.stats.refused["too_many_streams"] == 1
    await eventually(lambda: bool(b_inbox.messages), "b receives a's message")
    await eventually(lambda: a_inbox.down == [c.address], "a hears it cannot reach c")
    assert not c_inbox.messages

    # Inbound: b holds one stream (from a); d's connection is refused.
    d.send_stream(b.address, Note("to b from d"))
    await eventually(lambda: b.stats.dropped["too_many_streams"] == 1, "b refuses d's connection")
    await eventually(lambda: d_inbox.down == [b.address], "d hears it cannot reach b")
    assert d.stats.refused["unreachable"] == 1
    assert [m for _, m in b_inbox.messages] == [Note("to b")]


@pytest.mark.asyncio
async def test_an_oversize_send_is_refused_locally_and_counted(open_transport: Open) -> None:
    small = WireConfig(max_datagram_bytes=512, max_frame_bytes=4_096)
    a, _ = await open_transport(wire=small)
    b, b_inbox = await open_transport()
    a.send_datagram(b.address, Note("x" * 600))  # no exception: counted and logged
    a.send_stream(b.address, Note("x" * 5_000))
    assert a.stats.refused["oversize"] == 2
    assert a.streams_open == 0  # nothing was opened for a message that cannot go
    assert not a.stats.messages_out

    a.send_datagram(b.address, Note("fits"))
    await eventually(lambda: bool(b_inbox.messages), "b receives the message that fits")
    assert b_inbox.messages == [(a.address, Note("fits"))]


def test_a_datagram_names_its_sender_in_binary_when_it_can() -> None:
    from gossamer.runtime.transport import _read_sender, _sender_bytes

    for text, size in (("10.1.2.3:7946", 7), ("[::1]:7946", 19), ("node-a.internal:7946", 21)):
        raw = _sender_bytes(Address(text))
        assert len(raw) == size
        sender, n = _read_sender(raw + b"rest")
        if sender is None:
            assert raw[1 : 1 + n].decode() == text
        else:
            assert sender == text and raw[1 + n :] == b""
    # An IPv6 literal not in its canonical form goes as text, so it reads back as given.
    assert _read_sender(_sender_bytes(Address("[0:0::1]:7946")))[0] is None


@pytest.mark.asyncio
async def test_a_knock_tells_a_listening_port_from_a_closed_one(open_transport: Open) -> None:
    a, a_inbox = await open_transport()
    b, _ = await open_transport()
    closed = Address(f"127.0.0.1:{_free_port()}")
    a.knock(b.address)
    a.knock(closed)
    await eventually(lambda: len(a_inbox.knocks) == 2, "both knocks are answered")
    assert sorted(a_inbox.knocks) == sorted([(b.address, True), (closed, False)])
    assert a.stats.knocks == {"listening": 1, "refused": 1}
    assert a.streams_open == 0 and not a_inbox.up  # a knock is no stream


@pytest.mark.asyncio
async def test_a_peer_that_hangs_up_before_its_challenge_is_reported_so(
    open_transport: Open,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    a, a_inbox = await open_transport()
    busy = Address(f"127.0.0.1:{port}")
    try:
        a.send_stream(busy, Note("hello?"))
        await eventually(lambda: a_inbox.down == [busy], "a hears it could not connect")
        assert "hung up before its challenge" in a.peer_errors[busy]
    finally:
        server.close()
        await server.wait_closed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
