"""The debug endpoint over real sockets: every route's shape and values, and the metrics."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from gossamer.cli import main
from gossamer.debug import (
    Counters,
    DebugServer,
    DebugServerError,
    DebugSource,
    EventRecord,
    NodeInfo,
    render_metrics,
)
from gossamer.errors import LocalError
from gossamer.failure.swim import SwimStats
from gossamer.failure.view import SwimView
from gossamer.ids import Address
from gossamer.membership.members import Member, Status
from gossamer.observe import PartView, Sample
from gossamer.ring import Ring, key_hash
from gossamer.ring.part import RingStats
from gossamer.ring.view import MAX_OWNERS, RING_NODES, RING_POINTS, RING_SHARE, RingView

NOW = 1000.0


class FakeSource:
    """A DebugSource holding plain data the tests edit between requests."""

    def __init__(self, name: str = "n1") -> None:
        self.node = NodeInfo(
            name=name,
            address=Address("10.0.0.1:7946"),
            epoch=3,
            incarnation=7,
            status="alive",
            version="0.1.0",
            uptime_s=12.345678,
            health_score=2,
            joined=True,
            encrypted=True,
            cluster="test",
        )
        self.members = [
            Member(name, Address("10.0.0.1:7946"), 3, 7, Status.ALIVE, b"role=web", 990.0),
            Member("n3", Address("10.0.0.3:7946"), 1, 2, Status.SUSPECT, b"\xff\xfe", 999.5),
            Member("n2", Address("10.0.0.2:7946"), 1, 0, Status.DEAD, b"", 900.0),
        ]
        self.stats = SwimStats(
            probes=10,
            acks=9,
            ping_reqs_sent=4,
            nacks_received=3,
            nacks_sent=2,
            suspicions=1,
            refutations=5,
            deaths_declared=6,
            push_pulls=8,
            corrections=11,
            stale_acks=12,
            misdirected=13,
            ignored=14,
            claims_refused=15,
            updates_shed=16,
            relays_shed=17,
            state_truncated=18,
        )
        self.events = [
            EventRecord(100.0, "joined", "n2", Address("10.0.0.2:7946"), 1, 0),
            EventRecord(200.0, "suspect", "n3", Address("10.0.0.3:7946"), 1, 2, "n1"),
            EventRecord(250.0, "ring", name, Address("10.0.0.1:7946"), 3, 7, detail="3 nodes: +n3"),
            EventRecord(300.0, "dead", "n2", Address("10.0.0.2:7946"), 1, 0, "n1"),
        ]
        # Few points, so the tests build it in no time; a weight, so the
        # members differ in more than their names.
        self.the_ring: Ring[str] | None = Ring(["n3", "n1", "n2"], weights={"n3": 2.0}, vnodes=64)
        self.ring_changes = 5

    def info(self) -> NodeInfo:
        return self.node

    def clock(self) -> float:
        return NOW

    def view(self) -> dict[str, PartView]:
        members = tuple(sorted(self.members, key=lambda m: m.name))
        local = next(m for m in members if m.name == self.node.name)
        views: dict[str, PartView] = {
            "swim": SwimView(members, local, True, False, False, self.node.health_score)
        }
        ring = self.ring()
        if ring is not None:
            views["ring"] = RingView(ring, self.ring_changes)
        return views

    def counters(self) -> Counters:
        parts: dict[str, object] = {"swim": dataclasses.replace(self.stats)}
        if self.the_ring is not None:
            parts["ring"] = RingStats(self.ring_changes)
        return Counters(
            parts=parts,
            messages_in={"Ping": 5, "Ack": 4},
            bytes_in={"Ping": 500, "Ack": 400},
            messages_out={"Ping": 6},
            bytes_out={"Ping": 600},
            dropped={"decrypt": 2, "malformed": 1},
            shed={"udp_send": 3},
            refused={"oversize": 1},
            streams_open=2,
        )

    def recent_events(self) -> list[EventRecord]:
        return list(self.events)

    def ring(self) -> Ring[str] | None:
        return self.the_ring


def _is_source(source: FakeSource) -> DebugSource:
    return source  # mypy checks that FakeSource still satisfies the protocol


class WatchedRing(Ring[str]):
    """A ring that records the thread of every ``share`` and ``owners`` call
    (either may build the points), and can be told to fail its next shares."""

    def __init__(self, nodes: list[str], failures: int = 0) -> None:
        super().__init__(nodes, vnodes=16)
        self.threads: list[int] = []
        self.failures = failures

    def share(self) -> dict[str, float]:
        self.threads.append(threading.get_ident())
        if self.failures:
            self.failures -= 1
            raise RuntimeError("secret detail")
        return super().share()

    def owners(self, key: str | bytes, n: int) -> tuple[str, ...]:
        self.threads.append(threading.get_ident())
        return super().owners(key, n)


class ChangingSource(FakeSource):
    """Answers ``first`` to the first ``ring()`` and ``then`` ever after: the
    node moved on to a new ring while a handler awaited the first one's shares."""

    def __init__(self, first: Ring[str], then: Ring[str]) -> None:
        super().__init__()
        self.rings = [first, then]

    def ring(self) -> Ring[str] | None:
        return self.rings.pop(0) if len(self.rings) > 1 else self.rings[0]


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[FakeSource, DebugServer, aiohttp.ClientSession]]:
    source = FakeSource()
    server = DebugServer(source)
    await server.start()
    try:
        async with aiohttp.ClientSession(server.url) as session:
            yield source, server, session
    finally:
        await server.stop()


Served = tuple[FakeSource, DebugServer, aiohttp.ClientSession]


async def _json(session: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    async with session.get(path) as resp:
        assert resp.status == status
        assert resp.content_type == "application/json"
        return await resp.json()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# ---------------------------------------------------------------------- routes


@pytest.mark.asyncio
async def test_binds_loopback_by_default(served: Served) -> None:
    _, server, _ = served
    host, _, port = server.address.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0
    assert server.url == f"http://{server.address}"


@pytest.mark.asyncio
async def test_healthz_ok_then_503_after_leaving(served: Served) -> None:
    source, _, session = served
    assert await _json(session, "/healthz") == {"status": "ok", "name": "n1", "joined": True}
    source.node = dataclasses.replace(source.node, status="left")
    assert await _json(session, "/healthz", 503) == {
        "status": "left",
        "name": "n1",
        "joined": True,
    }


@pytest.mark.asyncio
async def test_node(served: Served) -> None:
    _, _, session = served
    assert await _json(session, "/api/node") == {
        "name": "n1",
        "address": "10.0.0.1:7946",
        "epoch": 3,
        "incarnation": 7,
        "status": "alive",
        "version": "0.1.0",
        "uptime_s": 12.346,
        "health_score": 2,
        "joined": True,
        "encrypted": True,
        "cluster": "test",
        "not_ready": "",
    }


@pytest.mark.asyncio
async def test_members_sorted_with_counts_and_metadata(served: Served) -> None:
    _, _, session = served
    body = await _json(session, "/api/members")
    assert [m["name"] for m in body["members"]] == ["n1", "n2", "n3"]
    n1, n2, n3 = body["members"]
    assert n1 == {
        "name": "n1",
        "address": "10.0.0.1:7946",
        "epoch": 3,
        "incarnation": 7,
        "status": "alive",
        "draining": False,
        "metadata": base64.b64encode(b"role=web").decode(),
        "metadata_text": "role=web",
        "tags": {},
        "for_s": 10.0,
    }
    assert n2["status"] == "dead"
    assert n2["metadata"] == ""
    assert n2["metadata_text"] == ""
    # Not UTF-8: no text, but the bytes survive in base64.
    assert n3["status"] == "suspect"
    assert n3["metadata_text"] is None
    assert base64.b64decode(n3["metadata"]) == b"\xff\xfe"
    assert n3["for_s"] == 0.5
    assert body["counts"] == {"alive": 1, "dead": 1, "left": 0, "suspect": 1}


@pytest.mark.asyncio
async def test_events_oldest_first_and_since(served: Served) -> None:
    _, _, session = served
    body = await _json(session, "/api/events")
    assert [e["at"] for e in body["events"]] == [100.0, 200.0, 250.0, 300.0]
    assert body["events"][1] == {
        "at": 200.0,
        "kind": "suspect",
        "member": "n3",
        "address": "10.0.0.3:7946",
        "epoch": 1,
        "incarnation": 2,
        "source": "n1",
        "detail": "",
    }
    later = await _json(session, "/api/events?since=250")
    assert [e["at"] for e in later["events"]] == [300.0]
    assert (await _json(session, "/api/events?since=300.5"))["events"] == []


@pytest.mark.asyncio
async def test_ring_events_carry_their_detail(served: Served) -> None:
    _, _, session = served
    body = await _json(session, "/api/events")
    assert body["events"][2] == {
        "at": 250.0,
        "kind": "ring",
        "member": "n1",
        "address": "10.0.0.1:7946",
        "epoch": 3,
        "incarnation": 7,
        "source": "",
        "detail": "3 nodes: +n3",
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", ["yesterday", "", "nan", "inf"])
async def test_events_bad_since_is_400(served: Served, bad: str) -> None:
    _, _, session = served
    body = await _json(session, f"/api/events?since={bad}", 400)
    assert set(body) == {"error"}
    assert "since" in body["error"]


@pytest.mark.asyncio
async def test_counters(served: Served) -> None:
    source, _, session = served
    body = await _json(session, "/api/counters")
    assert body["swim"] == dataclasses.asdict(source.stats)
    assert body["messages_in"] == {"Ack": 4, "Ping": 5}
    assert list(body["messages_in"]) == ["Ack", "Ping"]
    assert body["bytes_out"] == {"Ping": 600}
    assert body["dropped"] == {"decrypt": 2, "malformed": 1}
    assert body["shed"] == {"udp_send": 3}
    assert body["refused"] == {"oversize": 1}
    assert body["streams_open"] == 2


# ------------------------------------------------------------------------ ring


@pytest.mark.asyncio
async def test_ring_nodes_points_and_shares(served: Served) -> None:
    source, _, session = served
    ring = source.the_ring
    assert ring is not None
    body = await _json(session, "/api/ring")
    shares = ring.share()
    assert list(body) == [
        "nodes",
        "vnodes",
        "points",
        "changes",
        "max_over_mean_share",
        "members",
    ]
    assert body["nodes"] == 3
    assert body["vnodes"] == 64
    assert body["points"] == 64 + 64 + 128
    assert body["changes"] == 5
    assert body["max_over_mean_share"] == pytest.approx(max(shares.values()) * 3)
    assert body["members"] == [
        {"name": "n1", "points": 64, "weight": 1.0, "share": pytest.approx(shares["n1"])},
        {"name": "n2", "points": 64, "weight": 1.0, "share": pytest.approx(shares["n2"])},
        {"name": "n3", "points": 128, "weight": 2.0, "share": pytest.approx(shares["n3"])},
    ]
    assert sum(m["share"] for m in body["members"]) == pytest.approx(1.0)


@pytest.mark.asyncio
async def test_ring_follows_the_source(served: Served) -> None:
    source, _, session = served
    assert (await _json(session, "/api/ring"))["nodes"] == 3
    source.the_ring = Ring(["a", "b"], vnodes=8)
    source.ring_changes = 6
    body = await _json(session, "/api/ring")
    assert [m["name"] for m in body["members"]] == ["a", "b"]
    assert (body["nodes"], body["vnodes"], body["points"], body["changes"]) == (2, 8, 16, 6)


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["user:42", "", "a b+c/d?e&f=g#h", "ключ"])
async def test_ring_key_owner(served: Served, key: str) -> None:
    source, _, session = served
    ring = source.the_ring
    assert ring is not None
    async with session.get("/api/ring", params={"key": key}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert list(body)[-3:] == ["key", "hash", "owners"]
    assert body["key"] == key
    assert body["hash"] == key_hash(key)
    assert body["owners"] == [ring.owner(key)]


@pytest.mark.asyncio
async def test_ring_key_preference_list(served: Served) -> None:
    source, _, session = served
    ring = source.the_ring
    assert ring is not None
    body = await _json(session, "/api/ring?key=user:42&n=2")
    assert body["owners"] == list(ring.owners("user:42", 2))
    assert len(body["owners"]) == 2
    # More owners asked for than the ring has nodes: every node, once.
    body = await _json(session, f"/api/ring?key=user:42&n={MAX_OWNERS}")
    assert body["owners"] == list(ring.owners("user:42", 3))
    assert sorted(body["owners"]) == ["n1", "n2", "n3"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "bad", ["0", str(MAX_OWNERS + 1), "x", "-1", "1.5", "", " 2", "+2", "9" * 5000]
)
async def test_ring_bad_n_is_400(served: Served, bad: str) -> None:
    _, _, session = served
    async with session.get("/api/ring", params={"key": "k", "n": bad}) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert set(body) == {"error"}
    assert "n must be an integer" in body["error"]


@pytest.mark.asyncio
async def test_ring_n_without_a_key_or_two_keys_is_400(served: Served) -> None:
    _, _, session = served
    body = await _json(session, "/api/ring?n=2", 400)
    assert "key" in body["error"]
    body = await _json(session, "/api/ring?key=a&key=b", 400)
    assert "one key" in body["error"]


@pytest.mark.asyncio
async def test_empty_ring_is_zeros_and_no_owner(served: Served) -> None:
    source, _, session = served
    source.the_ring = Ring([], vnodes=16)
    assert await _json(session, "/api/ring") == {
        "nodes": 0,
        "vnodes": 16,
        "points": 0,
        "changes": 5,
        "max_over_mean_share": 0.0,
        "members": [],
    }
    body = await _json(session, "/api/ring?key=user:42&n=3")
    assert body["hash"] == key_hash("user:42")
    assert body["owners"] == []


@pytest.mark.asyncio
async def test_no_ring_is_404(served: Served) -> None:
    source, _, session = served
    source.the_ring = None
    body = await _json(session, "/api/ring", 404)
    assert body == {"error": "this node keeps no ring"}
    assert (await _json(session, "/api/ring?key=k", 404))["error"] == body["error"]


@pytest.mark.asyncio
async def test_concurrent_ring_requests_agree(served: Served) -> None:
    source, _, session = served
    source.the_ring = Ring([f"node-{i}" for i in range(20)], vnodes=256)
    bodies = await asyncio.gather(*(_json(session, "/api/ring") for _ in range(5)))
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["nodes"] == 20


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/api/ring?key=user:42&n=2", "/metrics"])
async def test_a_ring_changing_during_the_await_is_never_built_on_the_loop(path: str) -> None:
    first = WatchedRing(["a", "b", "c"])
    then = WatchedRing(["x", "y"])
    server = DebugServer(ChangingSource(first, then))
    await server.start()
    try:
        async with aiohttp.ClientSession(server.url) as session, session.get(path) as resp:
            assert resp.status == 200
            text = await resp.text()
    finally:
        await server.stop()
    loop_thread = threading.get_ident()
    # Every share() and owners() ran on a worker thread, and only on the ring
    # the handler read first: the answer describes it, not the newer ring.
    assert first.threads and loop_thread not in first.threads
    assert then.threads == []
    if path == "/metrics":
        shares = {
            labels: value
            for (name, labels), value in _samples(text).items()
            if name == "gossamer_ring_share"
        }
        expected = Ring(["a", "b", "c"], vnodes=16).share()
        assert shares == {frozenset({("node", n)}): pytest.approx(v) for n, v in expected.items()}
    else:
        body = json.loads(text)
        assert [m["name"] for m in body["members"]] == ["a", "b", "c"]
        assert body["owners"] == list(Ring(["a", "b", "c"], vnodes=16).owners("user:42", 2))


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/api/ring", "/api/ring?key=k", "/metrics"])
async def test_a_failed_share_computation_is_a_json_500_and_retried(
    served: Served, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    source, _, session = served
    ring = WatchedRing(["a", "b"], failures=1)
    source.the_ring = ring
    with caplog.at_level(logging.ERROR, logger="gossamer.debug"):
        body = await _json(session, path, 500)
    assert set(body) == {"error"}
    assert "secret detail" not in body["error"]
    assert "secret detail" in caplog.text  # logged on the node, not shown to the client
    # The failure was not cached: the same ring is computed again, and works.
    async with session.get(path) as resp:
        assert resp.status == 200
    assert len(ring.threads) >= 2


@pytest.mark.asyncio
async def test_writes_are_refused(served: Served) -> None:
    _, _, session = served
    for path in ("/api/members", "/api/ring", "/healthz", "/metrics"):
        async with session.post(path, data=b"{}") as resp:
            assert resp.status == 405
        async with session.delete(path) as resp:
            assert resp.status == 405


@pytest.mark.asyncio
async def test_dashboard_is_self_contained_html(served: Served) -> None:
    _, _, session = served
    async with session.get("/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        page = await resp.text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    for needle in ("http://", "https://", "src=", "href=", "@import", "innerHTML"):
        assert needle not in page
    for route in ("api/node", "api/members", "api/events", "api/ring", "api/overlay"):
        assert route in page
    # The poll is skipped while the previous one is pending.
    assert "if (inFlight) return;" in page
    assert "setInterval(poll, 1000)" in page


# --------------------------------------------------------------------- metrics


@pytest.mark.asyncio
async def test_metrics_families_and_values(served: Served) -> None:
    _, _, session = served
    async with session.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples = _samples(text)

    def value(metric: str, /, **labels: str) -> float:
        return samples[(metric, frozenset(labels.items()))]

    assert value("gossamer_members", status="alive") == 1
    assert value("gossamer_members", status="suspect") == 1
    assert value("gossamer_members", status="dead") == 1
    assert value("gossamer_members", status="left") == 0
    assert value("gossamer_health_score") == 2
    assert value("gossamer_incarnation") == 7
    assert value("gossamer_uptime_seconds") == pytest.approx(12.345678)
    assert value("gossamer_streams_open") == 2
    assert value("gossamer_node_info", name="n1", cluster="test", version="0.1.0") == 1

    swim = {
        "probes": 10,
        "acks": 9,
        "ping_reqs": 4,
        "nacks_received": 3,
        "nacks_sent": 2,
        "suspicions": 1,
        "refutations": 5,
        "deaths_declared": 6,
        "push_pulls": 8,
        "corrections": 11,
    }
    for short, expected in swim.items():
        assert value(f"gossamer_swim_{short}_total") == expected, short
    dropped = {
        "stale_acks": 12,
        "misdirected": 13,
        "ignored": 14,
        "claims_refused": 15,
        "relays_shed": 17,
        "state_truncated": 18,
    }
    for reason, expected in dropped.items():
        assert value("gossamer_swim_dropped_total", reason=reason) == expected, reason

    assert value("gossamer_messages_total", direction="in", type="Ping") == 5
    assert value("gossamer_messages_total", direction="in", type="Ack") == 4
    assert value("gossamer_messages_total", direction="out", type="Ping") == 6
    assert value("gossamer_bytes_total", direction="in", type="Ack") == 400
    assert value("gossamer_bytes_total", direction="out", type="Ping") == 600
    assert value("gossamer_dropped_total", reason="decrypt") == 2
    assert value("gossamer_dropped_total", reason="malformed") == 1
    assert value("gossamer_shed_total", queue="udp_send") == 3
    assert value("gossamer_shed_total", queue="swim_updates") == 16
    assert value("gossamer_send_refused_total", reason="oversize") == 1

    shares = Ring(["n1", "n2", "n3"], weights={"n3": 2.0}, vnodes=64).share()
    assert value("gossamer_ring_nodes") == 3
    assert value("gossamer_ring_points") == 256
    assert value("gossamer_ring_changes_total") == 5
    for node, share in shares.items():
        assert value("gossamer_ring_share", node=node) == pytest.approx(share), node

    # Every family has help text and the gossamer_ prefix.
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("gossamer_")
        assert family.documentation


def test_metrics_output_is_stable_and_sorted() -> None:
    source = FakeSource()
    first = render_metrics(source)
    assert render_metrics(source) == first
    lines = first.decode().splitlines()
    members = [line for line in lines if line.startswith("gossamer_members{")]
    assert members == sorted(members)
    assert len(members) == 4
    messages = [line for line in lines if line.startswith("gossamer_messages_total{")]
    assert messages == sorted(messages)


def test_ring_metrics_are_sorted_and_only_with_a_ring() -> None:
    source = FakeSource()
    lines = render_metrics(source).decode().splitlines()
    shares = [line for line in lines if line.startswith("gossamer_ring_share{")]
    assert [line.split('"')[1] for line in shares] == ["n1", "n2", "n3"]
    assert "gossamer_ring_changes_total 5.0" in lines
    source.the_ring = Ring([], vnodes=8)
    empty = _samples(render_metrics(source).decode())
    assert empty[("gossamer_ring_nodes", frozenset())] == 0
    assert empty[("gossamer_ring_points", frozenset())] == 0
    assert not any(name == "gossamer_ring_share" for name, _ in empty)
    source.the_ring = None
    assert "gossamer_ring" not in render_metrics(source).decode()


def test_render_metrics_with_view_samples_reads_and_computes_nothing() -> None:
    source = FakeSource()
    ring = WatchedRing(["a", "b"])

    def no_view_read() -> dict[str, PartView]:
        raise AssertionError("render_metrics read source.view() despite view_samples")

    source.view = no_view_read  # type: ignore[method-assign]
    shares = {"a": 0.25, "b": 0.75}
    given = [Sample(RING_NODES, len(ring)), Sample(RING_POINTS, sum(ring.points().values()))]
    given += [Sample(RING_SHARE, share, node) for node, share in shares.items()]
    samples = _samples(render_metrics(source, view_samples=given).decode())
    assert ring.threads == []  # share() never called
    assert samples[("gossamer_ring_nodes", frozenset())] == 2
    assert samples[("gossamer_ring_points", frozenset())] == 32
    assert samples[("gossamer_ring_share", frozenset({("node", "a")}))] == 0.25
    assert samples[("gossamer_ring_share", frozenset({("node", "b")}))] == 0.75


def test_swim_updates_shed_is_not_duplicated() -> None:
    source = FakeSource()
    counters = source.counters()
    source.counters = lambda: dataclasses.replace(  # type: ignore[method-assign]
        counters, shed={"swim_updates": 16, "udp_send": 3}
    )
    text = render_metrics(source).decode()
    lines = [line for line in text.splitlines() if 'queue="swim_updates"' in line]
    assert lines == ['gossamer_shed_total{queue="swim_updates"} 16.0']


@pytest.mark.asyncio
async def test_two_servers_do_not_mix_metrics() -> None:
    one, two = FakeSource("n1"), FakeSource("n9")
    two.stats.probes = 99
    two.members = two.members[:1]
    servers = [DebugServer(one), DebugServer(two)]
    try:
        for server in servers:
            await server.start()
        assert servers[0].address != servers[1].address
        texts = []
        async with aiohttp.ClientSession() as session:
            for server in servers:
                async with session.get(server.url + "/metrics") as resp:
                    texts.append(await resp.text())
    finally:
        for server in servers:
            await server.stop()
    first, second = (_samples(t) for t in texts)
    assert first[("gossamer_swim_probes_total", frozenset())] == 10
    assert second[("gossamer_swim_probes_total", frozenset())] == 99
    assert first[("gossamer_members", frozenset({("status", "dead")}))] == 1
    assert second[("gossamer_members", frozenset({("status", "dead")}))] == 0


# ---------------------------------------------------------------------- server


@pytest.mark.asyncio
async def test_server_lifecycle() -> None:
    server = DebugServer(FakeSource())
    with pytest.raises(DebugServerError):
        _ = server.address
    await server.stop()  # stopping a server that never started does nothing
    await server.start()
    try:
        with pytest.raises(DebugServerError):
            await server.start()
    finally:
        await server.stop()
    await server.stop()
    with pytest.raises(DebugServerError):
        _ = server.url
    # A stopped server can start again.
    await server.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(server.url + "/healthz") as r:
            assert r.status == 200
    finally:
        await server.stop()


def test_bad_bind_arguments_are_local_errors() -> None:
    with pytest.raises(LocalError):
        DebugServer(FakeSource(), port=70000)
    with pytest.raises(LocalError):
        DebugServer(FakeSource(), host="")


# ------------------------------------------------------------------------- CLI


async def _gossamer(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``gossamer`` command in this process, off the loop serving the endpoint."""
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.asyncio
async def test_ring_command_prints_the_table(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    source, server, _ = served
    ring = source.the_ring
    assert ring is not None
    code, out, err = await _gossamer(capsys, "ring", "--http", server.address)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "ring as seen by n1:"
    assert lines[1].split() == ["NAME", "POINTS", "WEIGHT", "SHARE"]
    shares = ring.share()
    assert [line.split() for line in lines[2:5]] == [
        ["n1", "64", "1", f"{shares['n1']:.2%}"],
        ["n2", "64", "1", f"{shares['n2']:.2%}"],
        ["n3", "128", "2", f"{shares['n3']:.2%}"],
    ]
    max_over_mean = max(shares.values()) * 3
    assert lines[5] == (
        f"3 nodes, 64 vnodes, 256 points, max/mean share {max_over_mean:.3f}, 5 changes"
    )
    assert len(lines) == 6

    code, out, err = await _gossamer(capsys, "ring", "--http", server.url, "--json")
    assert code == 0, err
    assert json.loads(out)["members"][2]["name"] == "n3"


@pytest.mark.asyncio
async def test_ring_command_with_a_key(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    source, server, _ = served
    ring = source.the_ring
    assert ring is not None
    key = "user:42 +x"
    code, out, err = await _gossamer(capsys, "ring", "--http", server.url, "--key", key, "-n", "2")
    assert code == 0, err
    first, second, *owners = out.splitlines()
    h = key_hash(key)
    assert first == f'key "user:42 +x" hashes to {h} (0x{h:016x})'
    assert second == "owners, in preference order:"
    assert owners == [f"  {i}. {name}" for i, name in enumerate(ring.owners(key, 2), 1)]

    code, out, err = await _gossamer(capsys, "ring", "--http", server.url, "--key", key, "--json")
    assert code == 0, err
    assert json.loads(out)["owners"] == [ring.owner(key)]

    source.the_ring = Ring([])
    code, out, err = await _gossamer(capsys, "ring", "--http", server.url, "--key", key)
    assert code == 0, err
    assert out.splitlines()[1] == "no owner: the ring is empty"
    code, out, err = await _gossamer(capsys, "ring", "--http", server.url)
    assert code == 0, err
    assert out.splitlines()[1:] == [
        "(the ring is empty)",
        "0 nodes, 2048 vnodes, 0 points, max/mean share 0.000, 5 changes",
    ]


@pytest.mark.asyncio
async def test_ring_command_errors(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    source, server, _ = served
    code, out, err = await _gossamer(
        capsys, "ring", "--http", server.url, "--key", "k", "-n", str(MAX_OWNERS + 1)
    )
    assert (code, out) == (1, "")
    assert f"n must be an integer in [1, {MAX_OWNERS}]" in err
    code, out, err = await _gossamer(capsys, "ring", "--http", server.url, "-n", "2")
    assert (code, out) == (2, "")
    assert "--key" in err

    source.the_ring = None
    code, out, err = await _gossamer(capsys, "ring", "--http", server.url)
    assert (code, out) == (1, "")
    assert err.startswith("gossamer ring: ")
    assert "HTTP 404" in err and "this node keeps no ring" in err

    address = server.address
    await server.stop()
    code, out, err = await _gossamer(capsys, "ring", "--http", address)
    assert (code, out) == (1, "")
    assert "cannot reach" in err
