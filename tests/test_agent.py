"""``gossamer agent``, ``gossamer members`` and ``gossamer demo``: real processes on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gossamer.cli import demo
from gossamer.cli.agent import NO_KEYRING, agent_config, reload_keyring
from gossamer.cli.client import endpoint_url, fetch_json, format_members
from gossamer.errors import ConfigError, LocalError
from gossamer.runtime.keyring import Keyring, fingerprint, generate_key, load_keyring, save_keyring

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free for both TCP and UDP on the loopback."""
    while True:
        with socket.socket() as tcp:
            tcp.bind((HOST, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
                return port


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class Agent:
    """One ``gossamer agent`` process, its log in a file."""

    def __init__(self, name: str, log: Path, args: list[str]) -> None:
        self.name = name
        self.port = free_port()
        self.http_port = free_port()
        self.log = log
        command = [
            sys.executable,
            "-m",
            "gossamer",
            "agent",
            "--name",
            name,
            "--bind",
            self.address,
            "--http",
            f"{HOST}:{self.http_port}",
            "--preset",
            "local",
            *args,
        ]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.text()}"
        try:
            return bool(fetch_json(self.url, "/healthz", timeout_s=1.0)["status"] == "ok")
        except LocalError:
            return False

    def answers(self) -> bool:
        """The endpoint answers, joined or not (``healthy`` waits for the join)."""
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.text()}"
        try:
            return bool(fetch_json(self.url, "/api/node", timeout_s=1.0)["name"] == self.name)
        except LocalError:
            return False

    def status_of(self, name: str) -> str | None:
        rows = fetch_json(self.url, "/api/members", timeout_s=1.0)["members"]
        return next((str(r["status"]) for r in rows if r["name"] == name), None)

    def alive_count(self) -> int:
        counts = fetch_json(self.url, "/api/members", timeout_s=1.0)["counts"]
        return int(counts["alive"])


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Start agents with ``agents(name, *flags)``; every one is killed at the end."""
    started: list[Agent] = []

    def start(name: str, *args: str) -> Agent:
        own = list(args)
        if "--control" not in own:  # each its own socket: names repeat across tests
            own += ["--control", str(tmp_path / f"control-{len(started)}" / f"{name}.sock")]
        agent = Agent(name, tmp_path / f"{name}-{len(started)}.log", own)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
        agent.proc.wait()


def gossamer(*args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gossamer", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


# -------------------------------------------------------------------- configuration


def test_agent_config_flags_override_the_toml_file(tmp_path: Path) -> None:
    keys = tmp_path / "cluster.keys"
    save_keyring(keys, Keyring([generate_key()]))
    toml = tmp_path / "node.toml"
    toml.write_text(
        f'name = "from-file"\nbind = "127.0.0.1:7000"\ncluster = "prod"\n'
        f'keyring_file = "{keys}"\nseeds = ["127.0.0.1:7001"]\n'
        f'preset = "wan"\n[swim]\nprobe_interval_s = 5.0\n',
        encoding="utf-8",
    )
    config, keyring_file = agent_config(config_file=str(toml))
    assert (config.name, config.bind, config.cluster) == ("from-file", "127.0.0.1:7000", "prod")
    assert config.keyring is not None and keyring_file == str(keys)
    assert config.swim.probe_interval_s == 5.0
    assert config.wire.max_datagram_bytes == 1200  # the wan preset

    config, keyring_file = agent_config(
        config_file=str(toml),
        name="n1",
        bind="127.0.0.1:7100",
        join=["127.0.0.1:7101,127.0.0.1:7102", "127.0.0.1:7103"],
        plaintext=True,
        preset="local",
        metadata="role=web",
    )
    assert (config.name, config.bind, config.cluster) == ("n1", "127.0.0.1:7100", "prod")
    assert config.seeds == ("127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103")
    assert config.keyring is None and config.plaintext and keyring_file is None
    assert config.metadata == b"role=web"
    assert config.swim.probe_interval_s == 5.0  # the file's [swim] still applies


def test_agent_config_needs_a_keyring_or_plaintext(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        agent_config(name="n1", bind="127.0.0.1:7000")
    assert str(info.value) == NO_KEYRING
    with pytest.raises(ConfigError, match="exclusive"):
        agent_config(name="n1", keyring_file="k", plaintext=True)
    with pytest.raises(ConfigError, match=r"--keyring: keyring file .* does not exist"):
        agent_config(name="n1", keyring_file=str(tmp_path / "missing.keys"))


def test_missing_keyring_exits_2_with_the_way_out() -> None:
    done = gossamer("agent", "--name", "n1", "--bind", f"{HOST}:0")
    assert done.returncode == 2
    assert "gossamer keygen --keyring FILE" in done.stderr
    assert "--plaintext" in done.stderr


def test_reload_keyring_installs_uses_and_removes(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    keyring = Keyring([old])
    path = tmp_path / "k"
    save_keyring(path, Keyring([new, old]))
    said = reload_keyring(keyring, str(path))
    assert keyring.keys == (new, old)
    assert f"installed ['{fingerprint(new)}']" in said
    save_keyring(path, Keyring([new]))
    said = reload_keyring(keyring, str(path))
    assert keyring.keys == (new,)
    assert f"removed ['{fingerprint(old)}']" in said
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(LocalError):
        reload_keyring(keyring, str(path))
    assert keyring.keys == (new,)


def test_format_members_aligns_and_hides_the_gone() -> None:
    rows = [
        {"name": "n1", "address": "127.0.0.1:7000", "status": "alive", "incarnation": 0,
         "epoch": 5, "for_s": 3.25, "metadata": "", "metadata_text": "role=web"},
        {"name": "longer-name", "address": "127.0.0.1:7001", "status": "dead", "incarnation": 2,
         "epoch": 6, "for_s": 3700.0, "metadata": "//8=", "metadata_text": None},
    ]  # fmt: skip
    table = format_members(rows).splitlines()
    assert table[0].split() == ["NAME", "ADDRESS", "STATUS", "INCARNATION", "EPOCH", "FOR",
                                "METADATA"]  # fmt: skip
    assert table[1].split() == ["n1", "127.0.0.1:7000", "alive", "0", "5", "3.2s", "role=web"]
    assert "1 dead or left not shown" in table[2]
    full = format_members(rows, include_gone=True).splitlines()
    assert full[2].split()[:6] == ["longer-name", "127.0.0.1:7001", "dead", "2", "6", "1h01m"]
    assert full[2].endswith("(2 bytes, not UTF-8)")
    assert full[0].index("ADDRESS") == full[1].index("127.0.0.1") == full[2].index("127.0.0.1")
    assert endpoint_url("127.0.0.1:80/") == "http://127.0.0.1:80"


# -------------------------------------------------------------------- processes


def test_agent_starts_and_answers_healthz(agents: Callable[..., Agent]) -> None:
    a = agents("solo", "--plaintext", "--metadata", "role=test")
    wait_for(a.healthy, 15, "healthz")
    node = fetch_json(a.url, "/api/node")
    assert (node["name"], node["address"], node["encrypted"]) == ("solo", a.address, False)
    text = a.text()
    assert f"solo | node solo is up at {a.address}" in text
    assert a.url in text
    assert "PLAINTEXT" in text


def test_members_command_prints_the_table(agents: Callable[..., Agent]) -> None:
    a = agents("m1", "--plaintext", "--metadata", "role=web")
    wait_for(a.healthy, 15, "healthz")
    done = gossamer("members", "--http", f"{HOST}:{a.http_port}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "members as seen by m1:"
    assert lines[1].split()[:3] == ["NAME", "ADDRESS", "STATUS"]
    assert lines[2].split()[:3] == ["m1", a.address, "alive"] and lines[2].endswith("role=web")
    done = gossamer("members", "--http", a.url, "--json")
    assert [row["name"] for row in json.loads(done.stdout)] == ["m1"]
    unreachable = gossamer("members", "--http", f"{HOST}:{free_port()}")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr


def test_two_agents_join_and_a_kill_is_detected(agents: Callable[..., Agent]) -> None:
    a = agents("a", "--plaintext")
    wait_for(a.healthy, 15, "a up")
    b = agents("b", "--plaintext", "--join", a.address)
    wait_for(lambda: a.alive_count() == 2 and b.alive_count() == 2, 15, "a and b join")
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    wait_for(lambda: a.status_of("b") == "dead", 20, "a declaring b dead")
    assert "a | b suspect" in a.text() and "a | b dead" in a.text()


def test_a_second_agent_named_alike_is_refused_and_changes_nothing(
    agents: Callable[..., Agent],
) -> None:
    a = agents("a", "--plaintext")
    wait_for(a.healthy, 15, "a up")
    b = agents("b", "--plaintext", "--join", a.address)
    wait_for(lambda: a.alive_count() == 2 and b.alive_count() == 2, 15, "a and b join")
    twin = agents("a", "--plaintext", "--join", b.address)
    wait_for(lambda: "join-refused" in twin.text(), 15, "the twin told why it is not joining")
    line = next(x for x in twin.text().splitlines() if "join-refused" in x)
    assert "ERROR" in line and a.address in line and b.address in line, line
    assert "name-refused" in b.text() and twin.address in b.text()
    twin.proc.send_signal(signal.SIGTERM)
    assert twin.proc.wait(timeout=15) == 0
    # The twin's stop is not a's: a stays alive at its own address everywhere.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        for view in (a, b):
            rows = fetch_json(view.url, "/api/members", timeout_s=1.0)["members"]
            (row,) = [r for r in rows if r["name"] == "a"]
            assert (row["address"], row["status"]) == (a.address, "alive"), row
        time.sleep(0.2)


def test_logs_carry_the_zone_and_announce_the_endpoint_once(agents: Callable[..., Agent]) -> None:
    a = agents("a", "--plaintext")
    wait_for(a.healthy, 15, "a up")
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=15) == 0
    lines = a.text().splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d a \| ", x) for x in lines)
    assert len([x for x in lines if a.url in x]) == 1, lines


def test_log_format_json_writes_one_object_per_line(agents: Callable[..., Agent]) -> None:
    a = agents("a", "--plaintext", "--log-format", "json")
    wait_for(a.healthy, 15, "a up")
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=15) == 0
    records = [json.loads(x) for x in a.text().splitlines()]
    assert records and all(
        set(r) >= {"time", "level", "node", "logger", "message"} for r in records
    )
    assert all(r["node"] == "a" and r["time"][-6] in "+-" for r in records)
    assert any(r["logger"] == "gossamer.events" for r in records) or any(
        "stopped" in r["message"] for r in records
    )


def test_sigterm_leaves_gracefully(agents: Callable[..., Agent]) -> None:
    a = agents("a", "--plaintext")
    wait_for(a.healthy, 15, "a up")
    b = agents("b", "--plaintext", "--join", a.address)
    wait_for(lambda: a.alive_count() == 2 and b.alive_count() == 2, 15, "a and b join")
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(timeout=15) == 0
    assert a.status_of("b") == "left"  # before b exited, not later by failure detection
    assert "b | SIGTERM: leaving the cluster" in b.text()
    assert "b | stopped" in b.text()


def test_sigint_leaves_too(agents: Callable[..., Agent]) -> None:
    a = agents("a", "--plaintext")
    wait_for(a.healthy, 15, "a up")
    b = agents("b", "--plaintext", "--join", a.address)
    wait_for(lambda: a.alive_count() == 2 and b.alive_count() == 2, 15, "a and b join")
    b.proc.send_signal(signal.SIGINT)
    assert b.proc.wait(timeout=15) == 0
    assert a.status_of("b") == "left"
    assert "b | SIGINT: leaving the cluster" in b.text()


def test_keyring_agents_join_and_a_stranger_is_never_admitted(
    agents: Callable[..., Agent], tmp_path: Path
) -> None:
    ours, theirs = tmp_path / "ours.keys", tmp_path / "theirs.keys"
    assert gossamer("keygen", "--keyring", str(ours)).returncode == 0
    assert gossamer("keygen", "--keyring", str(theirs)).returncode == 0
    a = agents("a", "--keyring", str(ours))
    wait_for(a.healthy, 15, "a up")
    b = agents("b", "--keyring", str(ours), "--join", a.address)
    stranger = agents("x", "--keyring", str(theirs), "--join", a.address)
    wait_for(lambda: a.alive_count() == 2 and b.alive_count() == 2, 15, "a and b join")
    wait_for(stranger.answers, 15, "x up")
    primary = fingerprint(load_keyring(ours).primary)
    assert f"primary {primary}" in a.text()

    def refused() -> bool:
        return int(fetch_json(a.url, "/api/counters")["dropped"].get("decrypt", 0)) > 0

    wait_for(refused, 10, "a refusing x's packets")
    time.sleep(2.5)  # x retries its join every second (preset local)
    assert a.status_of("x") is None and b.status_of("x") is None
    assert stranger.alive_count() == 1 and stranger.status_of("a") is None
    assert fetch_json(a.url, "/api/node")["encrypted"] is True


def test_sighup_reloads_the_keyring_file(agents: Callable[..., Agent], tmp_path: Path) -> None:
    keys = tmp_path / "cluster.keys"
    assert gossamer("keygen", "--keyring", str(keys)).returncode == 0
    a = agents("a", "--keyring", str(keys))
    wait_for(a.healthy, 15, "a up")
    assert gossamer("keygen", "--keyring", str(keys), "--install").returncode == 0
    added = fingerprint(load_keyring(keys).keys[1])
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: f"installed ['{added}']" in a.text(), 10, "the reload in the log")
    keys.write_text("[]", encoding="utf-8")
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "keyring unchanged" in a.text(), 10, "the refused reload in the log")
    assert a.healthy()


def test_plaintext_agent_ignores_sighup(agents: Callable[..., Agent]) -> None:
    a = agents("a", "--plaintext")
    wait_for(a.healthy, 15, "a up")
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "nothing to reload" in a.text(), 10, "the SIGHUP notice")
    assert a.healthy()


def test_a_port_in_use_exits_1(agents: Callable[..., Agent]) -> None:
    a = agents("a", "--plaintext")
    wait_for(a.healthy, 15, "a up")
    done = gossamer("agent", "--name", "b", "--bind", a.address, "--plaintext")
    assert done.returncode == 1
    assert "cannot start b" in done.stderr


# -------------------------------------------------------------------- the demo


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "gossamer", "demo", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for phrase in [
        "Every agent sees all 5 alive",
        "Detection timeline",
        "SURVIVOR  SUSPECT",
        "with a new epoch: ",
        "/metrics",
        "All agents stopped (n1=exit 0, n2=exit 0, n3=exit 0, n4=exit 0, n5=exit 0)",
    ]:
        assert phrase in out, phrase
    old, new = out.split("with a new epoch: ")[1].split(".")[0].split(" -> ")
    assert int(new) > int(old)
    assert list(tmp_path.iterdir()) == []  # the log directory is removed


def test_a_second_interrupt_while_the_demo_stops_still_exits_cleanly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # timeout(1) and an impatient Ctrl-C both signal twice; the second lands in stop_all.
    def interrupted(self: object, *args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo._Story, "run", interrupted)
    monkeypatch.setattr(demo._Story, "stop_all", interrupted)
    monkeypatch.setattr(demo, "_free_ports", lambda n: list(range(30_000, 30_000 + n)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    lines: list[str] = []
    assert demo.run_demo(lines.append, duration_s=1) == 130
    assert "Interrupted again: the agents were killed." in lines
