"""Identity, configuration, errors and the command line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import gossamer
from gossamer.cli import main
from gossamer.config import WireConfig
from gossamer.errors import (
    ConfigError,
    InvalidMessage,
    LocalError,
    MessageTooLarge,
    RemoteError,
    WireError,
    WireReason,
)
from gossamer.ids import Address, AddressError, NodeId, address, parse_address, split_address


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("127.0.0.1:7946", ("127.0.0.1", 7946)),
        ("node-1.example.com:0", ("node-1.example.com", 0)),
        ("[::1]:65535", ("::1", 65535)),
        ("n0:7946", ("n0", 7946)),
    ],
)
def test_addresses_parse(text: str, parts: tuple[str, int]) -> None:
    assert split_address(text) == parts
    assert parse_address(text) == text
    assert address(*parts) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "host",
        "host:",
        ":80",
        "host:65536",
        "host:-1",
        "[::1:80",
        "ho st:1",
        "[zz]:1",
        "a:b",
        "::1:80",
        "999.999.1.1:80",
        "1.2.3:80",
    ],
)
def test_bad_addresses_raise_at_once(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_node_id_validates() -> None:
    ident = NodeId("a", Address("a:1"), 1)
    assert str(ident) == "a@a:1#1"
    for bad in [
        ("", "a:1", 1),
        ("a", "nope", 1),
        ("a", "a:1", 0),
        ("a", "a:1", True),
        ("-x", "a:1", 1),
    ]:
        with pytest.raises(LocalError):
            NodeId(*bad)  # type: ignore[arg-type]


def test_wire_config_presets_and_validation() -> None:
    assert WireConfig.lan().max_datagram_bytes == 1400
    assert WireConfig.wan().max_datagram_bytes < WireConfig.lan().max_datagram_bytes
    assert WireConfig.local().max_datagram_bytes == 65_507
    with pytest.raises(ConfigError, match="max_datagram_bytes"):
        WireConfig(max_datagram_bytes=70_000)
    with pytest.raises(ConfigError, match="max_frame_bytes"):
        dataclasses.replace(WireConfig.lan(), max_frame_bytes=100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        WireConfig().max_frame_bytes = 1  # type: ignore[misc]


def test_errors_say_whose_fault() -> None:
    assert issubclass(ConfigError, LocalError) and issubclass(ConfigError, ValueError)
    assert issubclass(InvalidMessage, TypeError) and issubclass(MessageTooLarge, LocalError)
    assert issubclass(WireError, RemoteError) and not issubclass(WireError, LocalError)
    err = WireError(WireReason.OVERSIZE, "2000 > 1400")
    assert err.reason is WireReason.OVERSIZE and "oversize" in str(err)


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"gossamer {gossamer.__version__}"


def test_cli_demo_tells_the_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "demo", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for phrase in [
        "5 nodes boot",
        "network splits",
        "CONCURRENT",
        "heals",
        "crashes",
        "restarts",
        "agree, ",
    ]:
        assert phrase in out, phrase
    assert "did not agree" not in out


def test_cli_demo_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    main(["sim", "demo", "--seed", "9", "--nodes", "4"])
    first = capsys.readouterr().out
    main(["sim", "demo", "--seed", "9", "--nodes", "4"])
    assert capsys.readouterr().out == first


def test_cli_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit) as stop:
        main(["sim", "demo", "--nodes", "1"])
    assert stop.value.code == 2


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gossamer.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("gossamer ")


def test_example_simulation_runs_and_converges() -> None:
    out = subprocess.run(
        [sys.executable, "examples/simulate_cluster.py", "3"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert "all 8 nodes agree" in out.stderr
