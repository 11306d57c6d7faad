"""What an operator sees when something is wrong: a join that reaches no seed, packets
that do not open, /healthz before the join, a CLI pointed at the wrong port, a bad TOML
setting, a frame cut off midway."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections.abc import Iterator

import aiohttp
import pytest

from gossamer.cli import main
from gossamer.errors import ConfigError
from gossamer.runtime.keyring import Keyring, generate_key
from gossamer.runtime.loglimit import LogLimiter
from gossamer.runtime.nodeconfig import config_from_mapping
from gossamer.testing.aio import eventually
from tests.helpers import launcher


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# ---------------------------------------------------------------- the join


@pytest.mark.asyncio
async def test_a_join_that_reaches_no_seed_says_which_and_why(
    keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gossamer")
    nowhere = closed_port()
    async with launcher(keyring) as launch:
        node = await launch("lonely", seeds=(nowhere,), http="127.0.0.1:0")
        assert node.debug_url is not None
        async with (
            aiohttp.ClientSession() as http,
            http.get(node.debug_url + "/healthz") as response,
        ):
            assert response.status == 503
            body = await response.json()
        assert body["status"] == "joining" and not body["joined"]
        assert nowhere in body["reason"]
        await eventually(lambda: warnings(caplog, "not joined after"), timeout=15)
        (line,) = warnings(caplog, "not joined after")
        assert nowhere in line and "connection refused" in line, line
        assert [r.levelno for r in caplog.records if "not joined" in r.getMessage()] == [
            logging.WARNING
        ]
        # A seed that comes up lets it in; the log says so and /healthz turns 200.
        seed = await launch("seed", bind=nowhere)
        await node.wait_joined(20)
        await eventually(lambda: warnings(caplog, "joined after"), timeout=5)
        async with (
            aiohttp.ClientSession() as http,
            http.get(node.debug_url + "/healthz") as response,
        ):
            assert response.status == 200 and (await response.json())["status"] == "ok"
        assert seed.joined


@pytest.mark.asyncio
async def test_a_wrong_key_is_logged_once_with_the_sender_and_the_likely_cause(
    keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gossamer")
    async with launcher(keyring) as launch:
        seed = await launch("seed")
        stranger = await launch(
            "stranger", seeds=(seed.address,), keyring=Keyring([generate_key()])
        )
        await eventually(lambda: warnings(caplog, "do not open"), timeout=10)
        # Many packets, one line per sender and kind within the minute.
        await eventually(lambda: warnings(caplog, "not joined after"), timeout=15)
        unopened = warnings(caplog, "do not open")
        assert len(unopened) <= 2, unopened  # streams and datagrams, at most once each
        assert all("different cluster key or cluster name" in line for line in unopened)
        assert all(" from 127.0.0.1 " in line for line in unopened)
        (line,) = warnings(caplog, "not joined after")
        assert seed.address in line and "different cluster key" in line, line
        assert not stranger.joined


def test_the_log_limiter_says_how_many_lines_it_held_back() -> None:
    now = [0.0]
    limiter = LogLimiter(60.0, max_keys=2, clock=lambda: now[0])
    assert limiter.allow("a") == 0
    assert limiter.allow("a") is None and limiter.allow("a") is None
    now[0] = 61.0
    assert limiter.allow("a") == 2
    limiter.allow("b")
    limiter.allow("c")  # "a" is forgotten: bounded
    assert limiter.allow("a") == 0


# ---------------------------------------------------------------- the CLI and the config


@pytest.fixture
def not_an_endpoint() -> Iterator[str]:
    """A TCP port that answers bytes that are not HTTP, like a gossip port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    done = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(struct.pack(">I", 16) + bytes(range(16)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join()
    server.close()


def test_members_at_a_port_that_is_not_an_endpoint_prints_one_line(
    not_an_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["members", "--http", not_an_endpoint]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is it a gossamer debug endpoint" in err, err
    assert main(["ring", "--http", not_an_endpoint]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_an_unknown_setting_lists_every_key_and_table_and_seeds_must_be_a_list() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"name": "a", "plaintext": True, "bogus": 1}, where="a.toml")
    text = str(caught.value)
    assert "'bogus'" in text and "'seeds'" in text and "'data_dir'" in text
    assert "'swim'" in text and "'ring'" in text and "'transport'" in text
    with pytest.raises(ConfigError, match="seeds must be a list"):
        config_from_mapping({"name": "a", "plaintext": True, "seeds": "127.0.0.1:1"})
    with pytest.raises(ConfigError, match="probe_interval_s"):
        config_from_mapping({"name": "a", "plaintext": True, "swim": {"probe_intervall_s": 1}})


# ---------------------------------------------------------------- frames cut off


@pytest.mark.asyncio
async def test_a_frame_cut_off_midway_is_counted(keyring: Keyring) -> None:
    async with launcher(keyring) as launch:
        node = await launch("n")
        host, port = node.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        await reader.readexactly(4 + 16)  # the challenge
        writer.write(struct.pack(">I", 60) + b"x" * 10)  # a hello cut off
        await writer.drain()
        writer.close()
        await eventually(
            lambda: node._engine.counters().dropped.get("truncated", 0) == 1, timeout=5.0
        )
