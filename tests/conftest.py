"""Test-suite plumbing: a failing test reports the seed of every simulator it built;
the shared fixtures."""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from gossamer.runtime.keyring import Keyring, generate_key
from gossamer.sim import Simulator

_SEEDS_KEY = pytest.StashKey[deque[int]]()


@pytest.fixture(autouse=True)
def _record_simulation_seeds(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    seeds: deque[int] = deque(maxlen=20)
    original = Simulator.__init__

    def init(self: Simulator, seed: int, *args: Any, **kwargs: Any) -> None:
        seeds.append(seed)
        original(self, seed, *args, **kwargs)

    monkeypatch.setattr(Simulator, "__init__", init)
    request.node.stash[_SEEDS_KEY] = seeds
    yield


@pytest.fixture
def keyring() -> Keyring:
    """A fresh cluster key for the test."""
    return Keyring([generate_key()])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    seeds = item.stash.get(_SEEDS_KEY, None)
    if report.failed and seeds:
        report.sections.append(
            ("simulation seeds", "replay with Simulator(seed=...): " + ", ".join(map(str, seeds)))
        )
