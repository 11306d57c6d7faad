"""Replayed datagrams change nothing (runtime/freshness.py): the window and the age bound,
then captured bytes replayed on loopback after the sender's tombstone was reaped."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import pytest

from gossamer.failure.swim import SwimConfig
from gossamer.runtime.freshness import STAMP, Freshness, Stamper
from gossamer.runtime.keyring import Keyring
from gossamer.runtime.node import Node
from gossamer.runtime.transport import TransportConfig
from gossamer.testing.aio import eventually
from tests.helpers import launcher

SECOND = 1_000_000  # stamps are microseconds


def test_a_stamp_is_taken_once_and_reordering_within_the_window_is_fine() -> None:
    now = [100 * SECOND]
    fresh = Freshness(60.0, 8, clock=lambda: now[0])
    base = now[0]
    assert fresh.check("a:1", base) is None
    assert fresh.check("a:1", base) == "replayed"
    assert fresh.check("a:1", base + 5) is None
    assert fresh.check("a:1", base + 3) is None  # late, but unseen and within 64
    assert fresh.check("a:1", base + 3) == "replayed"
    assert fresh.check("a:1", base + 100) is None
    assert fresh.check("a:1", base + 5) == "replayed"  # 95 behind: out of the window
    assert fresh.check("b:1", base + 3) is None  # windows are per sender
    assert fresh.check("a:1", base - 61 * SECOND) == "stale"


def test_windows_expire_with_age_and_are_bounded() -> None:
    now = [1_000 * SECOND]
    fresh = Freshness(10.0, 3, clock=lambda: now[0])
    for i in range(3):
        assert fresh.check(f"n{i}:1", now[0]) is None
    now[0] += 11 * SECOND
    assert fresh.check("late:1", now[0]) is None
    assert len(fresh) == 1 and fresh.shed == 0  # the old ones went by age
    for i in range(4):
        assert fresh.check(f"m{i}:1", now[0]) is None
    assert len(fresh) == 3 and fresh.shed == 2


def test_stamps_grow_even_when_the_clock_does_not() -> None:
    stamper = Stamper(clock=lambda: 7)
    stamps = [STAMP.unpack(stamper.next())[0] for _ in range(3)]
    assert stamps == [7, 8, 9]


class Capture:
    """The datagrams a node receives, as sealed bytes, from one UDP source port."""

    def __init__(self, node: Node, port: int) -> None:
        transport = node._engine.transport
        assert transport is not None and transport._udp is not None
        udp = transport._udp
        self.packets: list[bytes] = []
        original = udp._on_datagram

        def record(data: bytes, source: tuple[object, ...] = ()) -> None:
            if len(source) >= 2 and source[1] == port:
                self.packets.append(bytes(data))
            original(data, source)

        udp._on_datagram = record


def replay(packets: list[bytes], to: Node) -> None:
    host, port = to.address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for packet in packets:
            udp.sendto(packet, (host, int(port)))


def dropped(node: Node, reason: str) -> int:
    return node._engine.counters().dropped.get(reason, 0)


@pytest.mark.asyncio
@pytest.mark.parametrize("age_s", [300.0, 1.0])
async def test_a_replay_after_the_tombstone_is_reaped_is_dropped(
    keyring: Keyring, age_s: float
) -> None:
    swim = dataclasses.replace(SwimConfig.local(), reap_left_after_s=0.5, reap_dead_after_s=0.5)
    transport = TransportConfig(max_datagram_age_s=age_s)
    async with launcher(keyring, engine_thread=False, transport=transport) as launch:
        a = await launch("a", swim=swim)
        b = await launch("b", swim=swim, seeds=(a.address,))
        capture = Capture(a, int(b.address.rsplit(":", 1)[1]))
        await eventually(lambda: len(a.members()) == 2 and len(capture.packets) >= 5)
        await b.leave()
        await b.stop()
        await eventually(lambda: a.member("b") is None, "a reaps b's tombstone")
        if age_s < 5:
            await asyncio.sleep(age_s + 0.2)
        replay(capture.packets, a)
        await asyncio.sleep(0.5)
        assert a.member("b") is None  # the replayed alive claims brought nobody back
        reason = "replayed" if age_s > 5 else "stale"
        await eventually(lambda: dropped(a, reason) >= len(capture.packets), "every replay drops")
