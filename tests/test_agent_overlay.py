"""Agents as processes: SIGKILL is seen dead by the fast path, SIGSTOP never is."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Callable

from gossamer.cli.client import fetch_json
from tests.test_agent import Agent, agents, wait_for

__all__ = ["agents"]  # the fixture, imported


def swim_counter(agent: Agent, field: str) -> int:
    return int(fetch_json(agent.url, "/api/counters", timeout_s=2.0)["swim"][field])


def cluster(agents: Callable[..., Agent], count: int) -> list[Agent]:
    first = agents("n0", "--plaintext")
    wait_for(first.healthy, 15, "n0 up")
    rest = [agents(f"n{i}", "--plaintext", "--join", first.address) for i in range(1, count)]
    every = [first, *rest]
    wait_for(lambda: all(a.alive_count() == count for a in every), 30, "everyone joins")
    wait_for(lambda: all(links(a) == count - 1 for a in every), 30, "the overlay links everyone")
    return every


def links(agent: Agent) -> int:
    return len(fetch_json(agent.url, "/api/overlay", timeout_s=2.0)["active"])


def test_a_killed_agent_is_declared_dead_by_the_fast_path_everywhere(
    agents: Callable[..., Agent],
) -> None:
    every = cluster(agents, 5)
    victim, survivors = every[3], [a for a in every if a is not every[3]]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    wait_for(
        lambda: all(a.status_of(victim.name) == "dead" for a in survivors), 30, "all see it dead"
    )
    assert sum(swim_counter(a, "fast_deaths") for a in survivors) >= 1
    assert sum(swim_counter(a, "refusals_witnessed") for a in survivors) >= 1


def test_a_stopped_agent_is_left_to_swims_suspicion_and_comes_back(
    agents: Callable[..., Agent],
) -> None:
    every = cluster(agents, 4)
    victim, survivors = every[2], [a for a in every if a is not every[2]]
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(
            lambda: all(a.status_of(victim.name) == "dead" for a in survivors),
            60,
            "SWIM declaring the stopped agent dead",
        )
        assert all(swim_counter(a, "fast_deaths") == 0 for a in survivors)
        assert all(swim_counter(a, "refusals_witnessed") == 0 for a in survivors)
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    wait_for(
        lambda: all(a.status_of(victim.name) == "alive" for a in survivors),
        60,
        "the agent refuting its death once it runs again",
    )


def test_the_overlay_command_and_route_show_links_tree_and_counters(
    agents: Callable[..., Agent],
) -> None:
    from tests.test_agent import gossamer

    every = cluster(agents, 3)
    a = every[0]
    wait_for(
        lambda: len(fetch_json(a.url, "/api/overlay", timeout_s=2.0)["links"]) == 2,
        30,
        "a heartbeat tick judging both links",
    )
    body = fetch_json(a.url, "/api/overlay", timeout_s=2.0)
    assert {p["name"] for p in body["active"]} == {"n1", "n2"}
    assert set(body["eager"]) | set(body["lazy"]) == {"n1", "n2"}
    assert {h["peer"] for h in body["links"]} == {"n1", "n2"}
    assert all(h["phi"] >= 0 and h["heard_s"] >= 0 for h in body["links"])
    assert body["counters"]["heartbeats_sent"] > 0 and "grafts_sent" in body["counters"]
    assert set(body["cache"]) == {"cached", "seen", "missing"}
    done = gossamer("overlay", "--http", a.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "overlay as seen by n0:"
    assert lines[1].split() == ["PEER", "ADDRESS", "EPOCH", "TREE", "PHI", "HEARD"]
    assert {line.split()[0] for line in lines[2:4]} == {"n1", "n2"}
    assert any(line.startswith("counters: ") for line in lines)
    assert gossamer("overlay", "--http", a.url, "--json").returncode == 0
    metrics = urllib.request.urlopen(f"{a.url}/metrics", timeout=5).read().decode()
    assert 'gossamer_overlay_link_phi{peer="n1"}' in metrics
    page = urllib.request.urlopen(f"{a.url}/", timeout=5).read().decode()
    assert 'id="links-graph"' in page


def test_agents_join_groups_register_names_and_drain_from_the_command_line(
    agents: Callable[..., Agent],
) -> None:
    from tests.test_agent import gossamer

    first = agents("n0", "--plaintext", "--group", "workers", "--register", "leader=main")
    wait_for(first.healthy, 15, "n0 up")
    second = agents(
        "n1", "--plaintext", "--join", first.address, "--group", "workers=w1",
        "--register", "leader",
    )  # fmt: skip
    wait_for(second.healthy, 15, "n1 up")
    wait_for(lambda: second.alive_count() == 2, 30, "both up")
    wait_for(
        lambda: (
            len(fetch_json(second.url, "/api/groups", timeout_s=2.0)["groups"][0]["members"]) == 2
        ),
        30,
        "both in the group",
    )
    groups = gossamer("groups", "--http", second.url)
    assert groups.returncode == 0, groups.stderr
    assert "workers" in groups.stdout and "n0" in groups.stdout and "w1" in groups.stdout
    names = gossamer("names", "--http", second.url, "--name", "leader")
    assert names.returncode == 0, names.stderr
    assert "leader  n0" in names.stdout  # n1 found it held and did not take it
    assert "held by n0" in second.log.read_text()
    control = str(second.log.parent / "control-1" / "n1.sock")
    drained = gossamer("drain", "--control", control)
    assert drained.returncode == 0 and "draining" in drained.stdout, drained.stderr
    wait_for(lambda: "draining" in gossamer("members", "--http", first.url).stdout, 30, "seen")
    assert gossamer("drain", "--undo", "--control", control).returncode == 0
    missing = gossamer("groups", "--http", "127.0.0.1:1")
    assert missing.returncode == 1 and "gossamer groups:" in missing.stderr
