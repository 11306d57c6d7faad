"""Agents as processes: SIGKILL is seen dead by the fast path, SIGSTOP never is."""

from __future__ import annotations

import signal
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
