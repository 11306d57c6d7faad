"""The ring benchmark runs end to end on a tiny workload (no assertions on speed)."""

from __future__ import annotations

import json

import pytest

from benchmarks import ring as bench

TINY = ["--nodes", "5", "--keys", "2000", "--repeat", "1"]


def run_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert bench.main([*TINY, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    assert tuple(result) == bench.JSON_KEYS
    return result


def check_ours(result: dict[str, object]) -> None:
    assert isinstance(result["lookups_per_s"], int)
    assert result["lookups_per_s"] > 0
    for key in ("max_over_mean", "bounded_max_over_mean"):
        value = result[key]
        assert isinstance(value, float)
        assert 1.0 <= value <= 5.0  # at most every key on one of 5 nodes
    assert result["bounded_max_over_mean"] <= 1.25 + 1e-9  # type: ignore[operator]
    moved = result["moved_fraction_add_one"]
    assert isinstance(moved, float)
    assert 0.0 < moved < 1.0


def test_json_has_the_seven_figures(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys)
    check_ours(result)
    if bench.HashRing is not None:
        assert isinstance(result["uhashring_lookups_per_s"], int)
        assert isinstance(result["speedup"], float)
        assert result["speedup"] > 0
        assert 1.0 <= result["uhashring_max_over_mean"] <= 5.0  # type: ignore[operator]


def test_without_uhashring_the_anchor_is_null(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "HashRing", None)
    result = run_json(capsys)
    check_ours(result)
    assert result["uhashring_lookups_per_s"] is None
    assert result["speedup"] is None
    assert result["uhashring_max_over_mean"] is None
    assert bench.main(TINY) == 0
    out = capsys.readouterr().out
    assert "anchor is missing" in out
    assert "bounded placement" in out


def test_readable_report_lists_the_goals(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(TINY) == 0
    out = capsys.readouterr().out
    for label in ("speedup", "max/mean", "moved", "lookup table build", "diff(old, new)"):
        assert label in out
