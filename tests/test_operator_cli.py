"""An operator's CLI: tags, join, force-leave, and the agent's control channel
(join, leave, force-leave, tags, keys) end to end."""

from __future__ import annotations

import os
import random
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gossamer.errors import LocalError
from gossamer.failure.swim import Gossip, PushPull, PushPullReply, SwimCore
from gossamer.ids import Address, NodeId
from gossamer.membership.members import Claim, Status
from gossamer.membership.tags import decode_tags, encode_tags, parse_tag
from gossamer.runtime.control import ControlError, call
from gossamer.runtime.keyring import Keyring, encode_key, fingerprint, generate_key, load_keyring
from gossamer.testing.aio import eventually
from tests.helpers import launcher
from tests.test_agent import Agent, agents, gossamer, wait_for  # noqa: F401 (fixture)

A = NodeId("a", Address("a:1"), 1)
B = NodeId("b", Address("b:1"), 1)


# ---------------------------------------------------------------- tags


def test_tags_encode_canonically_and_anything_else_decodes_to_none() -> None:
    one = encode_tags({"zone": "eu", "role": "web"})
    assert one == encode_tags({"role": "web", "zone": "eu"})
    assert decode_tags(one) == {"role": "web", "zone": "eu"}
    assert decode_tags(b"role=web") == {} and decode_tags(b"") == {}
    assert decode_tags(one[:-1]) == {}
    for bad in ({"": "x"}, {"a b": "x"}, {"k": "v" * 257}, {"k": 3}):
        with pytest.raises(LocalError):
            encode_tags(bad)  # type: ignore[arg-type]
    assert parse_tag("role=web=1") == ("role", "web=1")
    with pytest.raises(LocalError, match="key=value"):
        parse_tag("role")


# ---------------------------------------------------------------- SWIM: force-leave and join


def started(me: NodeId, **kw: object) -> SwimCore:
    core = SwimCore(me, random.Random(1), **kw)  # type: ignore[arg-type]
    core.start(0.0)
    core.drain()
    return core


def test_force_leave_turns_a_dead_member_left_and_refuses_anything_else() -> None:
    a = started(A)
    a.handle(B.address, Gossip((Claim("b", B.address, 1, 0, Status.ALIVE, b"", "b"),)), 1.0)
    with pytest.raises(LocalError, match="only a dead member"):
        a.force_leave("b", 2.0)
    with pytest.raises(LocalError, match="no member"):
        a.force_leave("nobody", 2.0)
    with pytest.raises(LocalError, match=r"leave\(\)"):
        a.force_leave("a", 2.0)
    a.handle(B.address, Gossip((Claim("b", B.address, 1, 0, Status.DEAD, b"", "c"),)), 3.0)
    a.force_leave("b", 4.0)
    assert a.member("b").status is Status.LEFT  # type: ignore[union-attr]
    # A member forced out while in fact alive refutes it, as it would a death.
    b = started(B)
    b.handle(A.address, Gossip((a.table.claim("b"),)), 5.0)  # type: ignore[arg-type]
    assert b.local.status is Status.ALIVE and b.incarnation == 1


def test_join_syncs_with_the_addresses_and_the_view_says_who_answered() -> None:
    a = started(A)
    a.join(["b:1", "c:1", "a:1"], 1.0)
    sent = sorted(
        e.to for e in a.drain() if hasattr(e, "message") and isinstance(e.message, PushPull)
    )  # type: ignore[attr-defined]
    assert sent == ["b:1", "c:1"]
    a.handle(B.address, PushPullReply((Claim("b", B.address, 1, 0, Status.ALIVE, b"", "b"),)), 2.0)
    assert a.view().answered == frozenset({B.address})
    with pytest.raises(LocalError):
        a.join(["not an address"], 3.0)


# ---------------------------------------------------------------- the face, on loopback


@pytest.mark.asyncio
async def test_node_join_force_leave_and_tags(keyring: Keyring) -> None:
    async with launcher(keyring) as launch:
        a = await launch("a")
        b = await launch("b")
        assert await b.join([a.address], timeout_s=10) == [a.address]
        await eventually(lambda: {m.name for m in a.members()} == {"a", "b"})
        assert await b.update_tags({"role": "web", "zone": "eu"}) == {"role": "web", "zone": "eu"}
        assert await b.update_tags(delete=["zone"]) == {"role": "web"}
        await eventually(lambda: a.member("b").tags == {"role": "web"})  # type: ignore[union-attr]
        nowhere = Address("127.0.0.1:9")
        assert await a.join([nowhere], timeout_s=0.5) == []
        with pytest.raises(LocalError, match="not a str"):
            await a.join("127.0.0.1:9")
        with pytest.raises(LocalError, match="only a dead member"):
            await a.force_leave("b")
        await b.stop()  # no goodbye: dead after the suspicion runs out
        await eventually(lambda: a.member("b").status is Status.DEAD)  # type: ignore[union-attr]
        assert a.member("b").tags == {"role": "web"}  # type: ignore[union-attr]  # what died
        await a.force_leave("b")
        assert a.member("b").status is Status.LEFT  # type: ignore[union-attr]


# ---------------------------------------------------------------- the control channel


def control(agent: Agent) -> Path:
    return agent.log.parent / f"{agent.name}-control" / "agent.sock"


def start(spawn: Callable[..., Agent], name: str, tmp_path: Path, *args: str) -> Agent:
    directory = tmp_path / f"{name}-control"
    return spawn(name, "--control", str(directory / "agent.sock"), *args)


def cli(agent: Agent, *args: str) -> subprocess.CompletedProcess[str]:
    return gossamer(*args, "--control", str(control(agent)))


def test_the_control_channel_drives_a_running_agent(
    agents: Callable[..., Agent],  # noqa: F811
    tmp_path: Path,
) -> None:
    keys = tmp_path / "cluster.keys"
    assert gossamer("keygen", "--keyring", str(keys)).returncode == 0
    for name in "abc":  # each agent its own copy of the file, as on separate machines
        (tmp_path / f"{name}.keys").write_bytes(keys.read_bytes())
        (tmp_path / f"{name}.keys").chmod(0o600)
    a = start(agents, "a", tmp_path, "--keyring", str(tmp_path / "a.keys"))
    b = start(agents, "b", tmp_path, "--keyring", str(tmp_path / "b.keys"))
    c = start(agents, "c", tmp_path, "--keyring", str(tmp_path / "c.keys"), "--join", "127.0.0.1:1")
    for agent in (a, b, c):
        wait_for(lambda agent=agent: control(agent).exists(), 15, "the control socket")
    path = control(a)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    done = cli(b, "join", a.address)
    assert done.returncode == 0 and "1 answered" in done.stdout, done
    assert cli(c, "join", a.address).returncode == 0
    wait_for(lambda: a.alive_count() == 3, 15, "three members")
    tagged = cli(b, "tags", "set", "role=web", "zone=eu")
    assert tagged.returncode == 0 and "role=web" in tagged.stdout
    wait_for(lambda: "role=web" in gossamer("members", "--http", a.url).stdout, 10, "b's tags")
    web = gossamer("members", "--http", a.url, "--tag", "role=web", "--status", "alive")
    assert [line.split()[0] for line in web.stdout.splitlines()[2:]] == ["b"], web.stdout

    # Keys across the cluster in three commands, each on one node; every file follows.
    files = {agent.name: tmp_path / f"{agent.name}.keys" for agent in (a, b, c)}
    old = load_keyring(keys).primary
    new = generate_key()
    for step, on, key in (("install", a, new), ("use", b, new), ("remove", c, old)):
        done = cli(on, "keys", step, encode_key(key))
        assert done.returncode == 0, done
        assert sorted(line.split(":")[0] for line in done.stdout.splitlines()) == ["a", "b", "c"]
        assert "FAILED" not in done.stdout and "no answer" not in done.stdout, done.stdout
    for name, path in files.items():
        assert load_keyring(path).keys == (new,), name
    listed = cli(a, "keys", "list")
    assert listed.stdout.split() == [fingerprint(new), "(primary)"], listed.stdout
    wait_for(lambda: a.alive_count() == 3, 10, "the cluster still talking")
    # --local changes one agent only; a key nobody holds cannot be used.
    extra = generate_key()
    assert cli(a, "keys", "install", encode_key(extra), "--local").returncode == 0
    assert len(load_keyring(files["a"]).keys) == 2 and len(load_keyring(files["b"]).keys) == 1
    refused = cli(b, "keys", "use", encode_key(extra))
    assert refused.returncode == 1 and "not installed" in refused.stderr, refused

    # force-leave a killed member once it is dead; then leave, and the agent exits 0.
    # (Refused while it lives: once killed, the fast path may declare it dead
    # before the command even starts.)
    refused = cli(a, "force-leave", "c")
    assert refused.returncode == 1 and "only a dead member" in refused.stderr
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait()
    wait_for(lambda: a.status_of("c") == "dead", 20, "c dead")
    assert cli(a, "force-leave", "c").returncode == 0
    assert a.status_of("c") == "left"
    assert cli(b, "leave").returncode == 0
    assert b.proc.wait(timeout=15) == 0
    assert a.status_of("b") == "left"
    # Errors are one line; another user cannot connect at all.
    missing = gossamer("leave", "--control", str(tmp_path / "nobody.sock"))
    assert missing.returncode == 1 and "no agent listens" in missing.stderr
    if os.getuid() == 0:
        probe = subprocess.run(
            [sys.executable, "-c", _AS_NOBODY, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.stdout.strip() == "refused", probe


_AS_NOBODY = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); s.sendall(b'{"command": "leave"}\\n')
    print("answered" if s.recv(100) else "refused")
except OSError:
    print("refused")
"""


def test_call_without_an_agent_says_so(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no agent listens"):
        call(tmp_path / "x.sock", "keys", {"op": "list"})
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "dead.sock"))  # a socket file nobody serves
    with pytest.raises(ControlError, match="cannot reach"):
        call(tmp_path / "dead.sock", "keys", {"op": "list"})
