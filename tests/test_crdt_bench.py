"""The CRDT benchmark runs and prints exactly the issue's keys (figures are
benchmarks' business, not tests')."""

from __future__ import annotations

import json

import pytest

from benchmarks import crdt


def test_the_benchmark_prints_exactly_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    result = crdt.run(2_000)
    assert list(result) == list(crdt.KEYS)
    assert result["orset_state_bytes"] > 0 and result["delta_100_overwrites_bytes"] > 0
    assert set(crdt.goals(result)) == {
        "adds 10x crdts",
        "merge 10x crdts",
        "state half crdts",
        "delta join <= 0.5 ms",
        "delta <= pycrdt's",
        "map sets within 3x pycrdt",
    }
    monkey = crdt.run
    try:
        crdt.run = lambda n=2_000: monkey(2_000)  # type: ignore[assignment]
        assert crdt.main(["--json"]) == 0
    finally:
        crdt.run = monkey  # type: ignore[assignment]
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == list(crdt.KEYS)
