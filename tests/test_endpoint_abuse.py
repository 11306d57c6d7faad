"""The debug endpoint under abuse: a foreign Host header, too many connections,
half-sent requests, malformed requests, and a low descriptor limit."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gossamer.debug import server as debug_server
from gossamer.debug.server import DebugServer, host_allowed
from gossamer.runtime.node import Node
from gossamer.testing.aio import eventually
from tests.helpers import launcher
from tests.test_agent import HOST, free_port, wait_for
from tests.test_debug import FakeSource


def test_which_host_headers_are_this_endpoints() -> None:
    for host in ("127.0.0.1:8080", "10.0.0.5", "[::1]:8080", "::1", "localhost:80", None):
        assert host_allowed(host, ()), host
    assert host_allowed("Node-A.internal:8080", {"node-a.internal"})
    for host in ("evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example", ""):
        assert not host_allowed(host, {"node-a.internal"}), host


@pytest_asyncio.fixture
async def node() -> AsyncIterator[Node]:
    async with launcher(None, plaintext=True, engine_thread=False) as launch:  # type: ignore[arg-type]
        yield await launch("n", http="127.0.0.1:0", http_hosts=("node.internal",))


def dropped(node: Node, reason: str) -> int:
    return node._engine.counters().dropped.get(reason, 0)


@pytest.mark.asyncio
async def test_a_foreign_host_header_is_refused(node: Node) -> None:
    assert node.debug_url is not None
    async with aiohttp.ClientSession() as http:
        for host, status in (
            ("evil.example:1234", 403),
            ("node.internal:1234", 200),
            (node.debug_url.removeprefix("http://"), 200),
        ):
            async with http.get(node.debug_url + "/api/members", headers={"Host": host}) as r:
                assert r.status == status, host
                if status == 403:
                    assert "http_hosts" in (await r.json())["error"]
    assert dropped(node, "http_host") == 1


async def _raw(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _closed(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within_s) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


@pytest.mark.asyncio
async def test_connections_past_the_cap_are_closed_at_once() -> None:
    server = DebugServer(FakeSource(), max_connections=4)
    await server.start()
    try:
        held = [await _raw(server.url) for _ in range(4)]
        extra = [await _raw(server.url) for _ in range(3)]
        assert all([await _closed(r, 2.0) for r, _ in extra])
        assert server.dropped["http_connections"] == 3
        for _, writer in held:
            writer.close()
        await eventually(lambda: server.connections == 0, timeout=5.0)
        async with aiohttp.ClientSession() as http, http.get(server.url + "/healthz") as r:
            assert r.status == 200
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_a_request_not_sent_whole_in_time_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debug_server, "REQUEST_TIMEOUT_S", 0.5)
    server = DebugServer(FakeSource())
    await server.start()
    try:
        idle, _ = await _raw(server.url)
        half, writer = await _raw(server.url)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        assert await _closed(idle, 3.0) and await _closed(half, 3.0)
        assert server.dropped["http_timeout"] == 2
        # A whole request is answered, and its connection kept for the next.
        reader, writer = await _raw(server.url)
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            await reader.readuntil(b"}")
            await asyncio.sleep(0.3)
        writer.close()
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_malformed_requests_are_logged_once_per_client_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = DebugServer(FakeSource())
    await server.start()
    try:
        for _ in range(20):
            reader, writer = await _raw(server.url)
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
            await reader.read()
            writer.close()
        await eventually(lambda: server.dropped["http_malformed"] == 20, timeout=5.0)
    finally:
        await server.stop()
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "malformed request from 127.0.0.1" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)


_LOW_LIMIT = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
    "sys.argv[0] = 'gossamer'; runpy.run_module('gossamer', run_name='__main__')"
)
"""Runs ``python -m gossamer ...`` with at most 256 open files."""


def test_half_sent_requests_under_a_low_descriptor_limit_do_not_stop_a_join(
    tmp_path: Path,
) -> None:
    port, http_port = free_port(), free_port()
    log = tmp_path / "a.log"
    command = [sys.executable, "-c", _LOW_LIMIT, "agent", "--name", "a", "--plaintext"]
    command += ["--preset", "local", "--bind", f"{HOST}:{port}", "--http", f"{HOST}:{http_port}"]
    with open(log, "wb") as out:
        agent = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    attackers: list[socket.socket] = []
    try:
        wait_for(lambda: _answers(http_port), 15, "the agent's endpoint")
        for _ in range(373):
            s = socket.create_connection((HOST, http_port))
            s.sendall(b"GET /api/members HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never more
            attackers.append(s)
        started = time.monotonic()
        joiner = [sys.executable, "-m", "gossamer", "agent", "--name", "b", "--plaintext"]
        joiner += ["--preset", "local", "--bind", f"{HOST}:{free_port()}"]
        joiner += ["--join", f"{HOST}:{port}", "--http", f"{HOST}:{free_port()}"]
        b_log = tmp_path / "b.log"
        with open(b_log, "wb") as out:
            b = subprocess.Popen(joiner, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "a joined" in b_log.read_text(), 10, "b joining through a")
            assert time.monotonic() - started < 10
        finally:
            b.kill()
            b.wait()
    finally:
        for s in attackers:
            s.close()
        agent.kill()
        agent.wait()
    assert log.stat().st_size < 100_000, log.read_text()[-2000:]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"GET /api/node HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
