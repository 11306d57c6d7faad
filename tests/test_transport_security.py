"""The transport against a peer without the key, and its stream bookkeeping.

Real sockets on 127.0.0.1, one Transport per side, a recording receiver.
Each test is a regression for something a review found possible.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct

import pytest

from gossamer.config import WireConfig
from gossamer.failure.swim import Ping
from gossamer.ids import Address
from gossamer.runtime.keyring import Keyring, Sealer, generate_key
from gossamer.runtime.transport import Transport, TransportConfig
from gossamer.testing.aio import eventually
from gossamer.wire import Message, registry

KEY = Keyring([generate_key()])


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []

    def on_message(self, sender: Address, message: Message) -> None:
        self.log.append(("msg", sender, type(message).__name__))

    def on_stream_up(self, peer: Address) -> None:
        self.log.append(("up", peer))

    def on_stream_down(self, peer: Address) -> None:
        self.log.append(("down", peer))


def transport(rec: Recorder, config: TransportConfig | None = None) -> Transport:
    return Transport(
        bind="127.0.0.1:0",
        advertise=None,
        sealer=Sealer("test", KEY),
        codec=registry,
        wire=WireConfig(),
        config=config or TransportConfig(),
        receiver=rec,
    )


def host_port(addr: Address) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)


@pytest.mark.asyncio
async def test_a_huge_hello_is_refused_before_it_is_buffered() -> None:
    rec = Recorder()
    t = transport(rec)
    addr = await t.start()
    try:
        reader, writer = await asyncio.open_connection(*host_port(addr))
        challenge = await reader.readexactly(4 + 16)
        assert struct.unpack(">I", challenge[:4])[0] == 16
        writer.write(struct.pack(">I", 8 * 1024 * 1024 - 1) + b"\x01" * 1024)
        await writer.drain()
        # The node closes the connection on the announced length alone.
        assert await asyncio.wait_for(reader.read(), 5.0) == b""
        assert t.stats.dropped["oversize"] == 1
        writer.close()
    finally:
        await t.close()
    assert rec.log == []


@pytest.mark.asyncio
async def test_a_replayed_stream_is_refused_and_cannot_steal_sends() -> None:
    ra, rb = Recorder(), Recorder()
    a, b = transport(ra), transport(rb)
    a_addr, b_addr = await a.start(), await b.start()
    captured = bytearray()

    async def tap(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(*host_port(b_addr))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
            while data := await src.read(65536):
                if keep:
                    captured.extend(data)
                dst.write(data)
            dst.close()

        await asyncio.gather(pump(r, uw, True), pump(ur, w, False))

    server = await asyncio.start_server(tap, "127.0.0.1", 0)
    tap_addr = Address(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        a.send_stream(tap_addr, Ping(7, "b"))
        await eventually(lambda: ("msg", a_addr, "Ping") in rb.log)
        a.close_stream(tap_addr)
        await eventually(lambda: rb.log[-1] == ("down", a_addr))
        rb.log.clear()
        # Replaying what A sent (hello and Ping) to B, from a socket with no key.
        replays = []
        for _ in range(3):
            r, w = await asyncio.open_connection(*host_port(b_addr))
            w.write(bytes(captured))
            replays.append((r, w))
        await eventually(lambda: b.stats.dropped["decrypt"] >= 3)
        assert rb.log == []  # no stream up, no message
        b.send_stream(a_addr, Ping(99, "a"))  # goes to A on a stream of its own
        await eventually(lambda: ("msg", b_addr, "Ping") in ra.log)
        for _, w in replays:
            w.close()
    finally:
        server.close()
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_frames_are_bound_to_their_position() -> None:
    # A frame sealed for position 0 cannot be delivered again at position 1.
    ra, rb = Recorder(), Recorder()
    a, b = transport(ra), transport(rb)
    await a.start()
    b_addr = await b.start()
    try:
        sealer = Sealer("test", KEY)
        reader, writer = await asyncio.open_connection(*host_port(b_addr))
        challenge = (await reader.readexactly(20))[4:]
        raw = a.address.encode()
        hello = sealer.seal(bytes([len(raw)]) + raw, b"hello" + challenge)
        frame = sealer.seal(b"\x00" + registry.encode(Ping(1, "b")), challenge + b"o" + bytes(8))
        writer.write(struct.pack(">I", len(hello)) + hello)
        writer.write(struct.pack(">I", len(frame)) + frame)
        writer.write(struct.pack(">I", len(frame)) + frame)  # the same frame again
        await writer.drain()
        await eventually(lambda: b.stats.dropped["decrypt"] == 1)
        assert [e[0] for e in rb.log] == ["up", "msg", "down"]
        writer.close()
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_silent_connections_cannot_take_the_stream_slots() -> None:
    ra, rb = Recorder(), Recorder()
    config = TransportConfig(max_handshakes=4, max_streams=8)
    a, b = transport(ra, config), transport(rb)
    a_addr = await a.start()
    b_addr = await b.start()
    squatters = [socket.create_connection(host_port(a_addr)) for _ in range(20)]
    try:
        await eventually(lambda: a.stats.dropped["too_many_handshakes"] >= 16)
        b.send_stream(a_addr, Ping(1, "a"))  # a real peer still gets in once a slot frees...
        a.send_stream(b_addr, Ping(2, "b"))  # ...and a's own streams are never refused
        await eventually(lambda: ("msg", a_addr, "Ping") in rb.log)
        assert a.stats.refused["too_many_streams"] == 0
    finally:
        for s in squatters:
            s.close()
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_a_refused_open_is_reported_down() -> None:
    rec = Recorder()
    t = transport(rec, TransportConfig(max_streams=1))
    await t.start()
    other = transport(Recorder())
    other_addr = await other.start()
    try:
        t.send_stream(other_addr, Ping(1, "x"))
        t.send_stream(Address("127.0.0.1:9"), Ping(2, "y"))  # over the bound
        await eventually(lambda: ("down", "127.0.0.1:9") in rec.log)
        assert t.stats.refused["too_many_streams"] == 1
    finally:
        await t.close()
        await other.close()


@pytest.mark.asyncio
async def test_an_unreachable_peer_is_reported_down_once() -> None:
    rec = Recorder()
    t = transport(rec)
    await t.start()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead = Address(f"127.0.0.1:{probe.getsockname()[1]}")
    probe.close()  # nothing listens there now
    try:
        t.send_stream(dead, Ping(1, "x"))
        await eventually(lambda: ("down", dead) in rec.log)
        assert rec.log == [("down", dead)]
        assert t.stats.refused["unreachable"] == 1
    finally:
        await t.close()


@pytest.mark.asyncio
async def test_both_ends_opening_at_once_pair_up_and_down() -> None:
    ra, rb = Recorder(), Recorder()
    a, b = transport(ra), transport(rb)
    a_addr, b_addr = await a.start(), await b.start()
    try:
        a.send_stream(b_addr, Ping(1, "b"))
        b.send_stream(a_addr, Ping(2, "a"))
        await eventually(lambda: ("msg", a_addr, "Ping") in rb.log)
        await eventually(lambda: ("msg", b_addr, "Ping") in ra.log)
        a.close_stream(b_addr)
        b.close_stream(a_addr)
        await asyncio.sleep(0.3)
        for log, peer in ((ra.log, b_addr), (rb.log, a_addr)):
            ups = log.count(("up", peer))
            downs = log.count(("down", peer))
            assert ups == 1 and downs <= 1, log
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_datagrams_to_a_host_name_are_resolved_off_the_loop() -> None:
    ra, rb = Recorder(), Recorder()
    a, b = transport(ra), transport(rb)
    await a.start()
    b_addr = await b.start()
    try:
        port = b_addr.rsplit(":", 1)[1]
        by_name = Address(f"localhost:{port}")
        for seq in range(3):
            a.send_datagram(by_name, Ping(seq, "b"))
        await eventually(lambda: sum(1 for e in rb.log if e[0] == "msg") == 3)
        assert a._resolved("localhost") is not None  # cached for the next ones
        a.send_datagram(Address("no-such-host.invalid:7946"), Ping(9, "z"))
        await eventually(
            lambda: a.stats.refused["unresolved"] == 1, "the name does not resolve", 15.0
        )
    finally:
        await a.close()
        await b.close()


def test_datagram_limits_hold_with_a_long_advertise_address() -> None:
    # The preset leaves room for the longest address the header accepts.
    from gossamer.runtime.nodeconfig import MAX_ADVERTISE_LENGTH, NodeConfig, datagram_overhead

    config = NodeConfig.lan("a", "127.0.0.1:7946", keyring=KEY)
    longest = "h" * (MAX_ADVERTISE_LENGTH - 6) + ":65535"
    assert (
        config.swim.max_payload_bytes + datagram_overhead(longest, True)
        <= config.wire.max_datagram_bytes
    )
    assert dataclasses.replace(config, advertise=longest).advertise == longest
