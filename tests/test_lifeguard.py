"""Tests for gossamer.failure.lifeguard: hand-computed tables for the formulas, hypothesis for laws.

Every expected value below was worked out by hand from the formula in the
docstring (logarithms quoted to enough digits), never by calling the formula.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gossamer.errors import LocalError
from gossamer.failure.lifeguard import (
    Awareness,
    Suspicion,
    confirmations_needed,
    push_pull_scale,
    retransmit_limit,
    suspicion_timeout_max_s,
    suspicion_timeout_min_s,
    suspicion_timeout_s,
)

LAWS = settings(max_examples=100, deadline=None, derandomize=True)

# ------------------------------------------------------------------ formulas


@pytest.mark.parametrize(
    ("mult", "n", "interval_s", "expected"),
    [
        pytest.param(4, 100, 1.0, 8.0, id="log10(100)=2"),
        pytest.param(4, 1, 1.0, 4.0, id="one-member-held-at-1"),
        pytest.param(4, 5, 2.0, 8.0, id="small-cluster-held-at-1"),
        pytest.param(4, 10, 1.0, 4.0, id="log10(10)=1"),
        pytest.param(4, 50, 1.0, 6.795880017, id="log10(50)=1.69897"),
        pytest.param(4, 1000, 1.0, 12.0, id="log10(1000)=3"),
        pytest.param(3, 100, 0.5, 3.0, id="half-second-interval"),
        pytest.param(4, 0, 1.0, 4.0, id="n=0-factor-1"),
    ],
)
def test_suspicion_timeout_min(mult: float, n: int, interval_s: float, expected: float) -> None:
    assert suspicion_timeout_min_s(mult, n, interval_s) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("min_s", "mult", "expected"),
    [(8.0, 6, 48.0), (3.0, 1, 3.0), (2.5, 4, 10.0), (0.5, 0, 0.0)],
)
def test_suspicion_timeout_max(min_s: float, mult: float, expected: float) -> None:
    assert suspicion_timeout_max_s(min_s, mult) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("mult", "n", "expected"),
    [
        pytest.param(4, 100, 2, id="k=mult-2"),
        pytest.param(4, 4, 2, id="exactly-k-others"),
        pytest.param(4, 3, 0, id="too-few-others"),
        pytest.param(4, 1, 0, id="alone"),
        pytest.param(5, 5, 3, id="mult5-n5"),
        pytest.param(5, 4, 0, id="mult5-n4"),
        pytest.param(2, 100, 0, id="mult2"),
        pytest.param(1, 100, 0, id="mult1-never-negative"),
        pytest.param(1, 0, 0, id="mult1-n0"),
        pytest.param(0, 100, 0, id="mult0-never-negative"),
    ],
)
def test_confirmations_needed(mult: int, n: int, expected: int) -> None:
    assert confirmations_needed(mult, n) == expected


@pytest.mark.parametrize(
    ("c", "k", "min_s", "max_s", "expected"),
    [
        pytest.param(0, 2, 8.0, 48.0, 48.0, id="no-confirmation-max"),
        pytest.param(2, 2, 8.0, 48.0, 8.0, id="all-confirmations-min"),
        # 48 - 40 * ln 2 / ln 3 = 48 - 40 * 0.630929754 = 22.762809857 -> 22.762
        pytest.param(1, 2, 8.0, 48.0, 22.762, id="one-of-two"),
        # 48 - 40 * ln 3 / ln 4 = 48 - 40 * 0.792481250 = 16.300749986 -> 16.300
        pytest.param(2, 3, 8.0, 48.0, 16.3, id="two-of-three"),
        # 10 - 8 * ln 2 / ln 4 = 10 - 8 * 0.5 = 6
        pytest.param(1, 3, 2.0, 10.0, 6.0, id="one-of-three"),
        # 1.5 - 0.5 * 0.630929754 = 1.184535123 -> 1.184
        pytest.param(1, 2, 1.0, 1.5, 1.184, id="floored-to-ms"),
        pytest.param(0, 2, 8.0, 48.0005, 48.0, id="max-floored-to-ms"),
        pytest.param(3, 2, 8.0, 48.0, 8.0, id="beyond-k-held-at-min"),
        pytest.param(0, 0, 8.0, 48.0, 8.0, id="k0-min"),
        pytest.param(5, 0, 8.0, 48.0, 8.0, id="k0-any-c-min"),
        pytest.param(0, -1, 8.0, 48.0, 8.0, id="negative-k-min"),
        pytest.param(1, 1, 8.0, 48.0, 8.0, id="k1-one-confirmation"),
    ],
)
def test_suspicion_timeout(c: int, k: int, min_s: float, max_s: float, expected: float) -> None:
    assert suspicion_timeout_s(c, k, min_s, max_s) == pytest.approx(expected, abs=1e-9)


@st.composite
def _timeout_args(draw: st.DrawFn) -> tuple[int, float, float]:
    k = draw(st.integers(0, 10))
    min_s = draw(st.integers(1, 100_000)) / 1000  # whole milliseconds
    max_s = min_s + draw(st.integers(0, 500_000)) / 1000
    return k, min_s, max_s


@LAWS
@given(_timeout_args(), st.integers(0, 12), st.integers(0, 12))
def test_suspicion_timeout_monotone_in_confirmations(
    args: tuple[int, float, float], c1: int, c2: int
) -> None:
    k, min_s, max_s = args
    lo, hi = sorted((c1, c2))
    assert suspicion_timeout_s(hi, k, min_s, max_s) <= suspicion_timeout_s(lo, k, min_s, max_s)


@LAWS
@given(_timeout_args(), st.integers(0, 12))
def test_suspicion_timeout_within_a_millisecond_of_the_bounds(
    args: tuple[int, float, float], c: int
) -> None:
    k, min_s, max_s = args
    timeout = suspicion_timeout_s(c, k, min_s, max_s)
    assert min_s - 0.001 < timeout <= max_s


@LAWS
@given(_timeout_args(), st.integers(0, 12))
@example(args=(2, 1.005, 5.025), c=2)  # 1.005 * 1000 = 1004.999... -> 1.004
@example(args=(2, 6.795880017344075, 40.0), c=2)  # min_s of a 50-member cluster
def test_suspicion_timeout_never_below_min(args: tuple[int, float, float], c: int) -> None:
    k, min_s, max_s = args
    assert suspicion_timeout_s(c, k, min_s, max_s) >= min_s


@pytest.mark.parametrize(
    ("mult", "n", "expected"),
    [
        pytest.param(4, 1, 4, id="ceil(log10 2)=1"),
        pytest.param(4, 9, 4, id="log10 10=1"),
        pytest.param(4, 10, 8, id="ceil(log10 11)=2"),
        pytest.param(4, 99, 8, id="log10 100=2"),
        pytest.param(4, 100, 12, id="ceil(log10 101)=3"),
        pytest.param(4, 1000, 16, id="ceil(log10 1001)=4"),
        pytest.param(3, 50, 6, id="mult3-n50"),
    ],
)
def test_retransmit_limit(mult: int, n: int, expected: int) -> None:
    assert retransmit_limit(mult, n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, 30.0),
        (32, 30.0),
        (33, 60.0),
        (64, 60.0),
        (65, 90.0),
        (128, 90.0),
        (129, 120.0),
        (200, 120.0),
        (1000, 180.0),
    ],
)
def test_push_pull_scale(n: int, expected: float) -> None:
    assert push_pull_scale(30.0, n) == pytest.approx(expected)


# ----------------------------------------------------------------- awareness


def test_awareness_clamps_between_zero_and_max_minus_one() -> None:
    awareness = Awareness(8)
    assert awareness.score == 0
    assert [awareness.apply(d) for d in (3, 10, -2, -100, -1, 1)] == [3, 7, 5, 0, 0, 1]
    assert awareness.score == 1


@pytest.mark.parametrize(
    ("max_multiplier", "delta", "timeout_s", "expected"),
    [
        (8, 0, 0.5, 0.5),
        (8, 1, 0.5, 1.0),
        (8, 3, 0.5, 2.0),
        (8, 100, 1.0, 8.0),
        (3, 100, 2.0, 6.0),
    ],
)
def test_awareness_scale(
    max_multiplier: int, delta: int, timeout_s: float, expected: float
) -> None:
    awareness = Awareness(max_multiplier)
    awareness.apply(delta)
    assert awareness.scale(timeout_s) == pytest.approx(expected)


def test_awareness_max_one_is_switched_off() -> None:
    awareness = Awareness(1)
    assert awareness.apply(1) == 0
    assert awareness.apply(5) == 0
    assert awareness.score == 0
    assert awareness.scale(2.0) == 2.0


@pytest.mark.parametrize("max_multiplier", [0, -1])
def test_awareness_invalid_max(max_multiplier: int) -> None:
    with pytest.raises(LocalError, match="max_multiplier"):
        Awareness(max_multiplier)


# ----------------------------------------------------------------- suspicion


def test_suspicion_source_is_not_a_confirmation() -> None:
    suspicion = Suspicion("accuser", 3, 2.0, 10.0, 100.0)
    assert suspicion.confirmations == 0
    assert not suspicion.confirm("accuser")
    assert suspicion.confirmations == 0
    assert suspicion.deadline == pytest.approx(110.0)


def test_suspicion_duplicate_sources_count_once() -> None:
    suspicion = Suspicion("accuser", 3, 2.0, 10.0, 100.0)
    assert suspicion.confirm("b")
    assert not suspicion.confirm("b")
    assert suspicion.confirmations == 1


def test_suspicion_confirmations_capped_at_k() -> None:
    suspicion = Suspicion("accuser", 2, 8.0, 48.0, 0.0)
    assert [suspicion.confirm(s) for s in ("b", "c", "d", "e")] == [True, True, False, False]
    assert suspicion.confirmations == 2


def test_suspicion_deadline_shrinks_from_max_to_min() -> None:
    suspicion = Suspicion("accuser", 2, 8.0, 48.0, 100.0)
    deadlines = [suspicion.deadline]
    for source in ("b", "c", "d"):
        suspicion.confirm(source)
        deadlines.append(suspicion.deadline)
    # start + 48, start + 22.762 (see the timeout table), start + 8, held at start + 8
    assert deadlines == pytest.approx([148.0, 122.762, 108.0, 108.0])


def test_suspicion_k0_deadline_is_min_and_nothing_confirms() -> None:
    suspicion = Suspicion("accuser", 0, 8.0, 48.0, 100.0)
    assert suspicion.deadline == pytest.approx(108.0)
    assert not suspicion.confirm("b")
    assert suspicion.confirmations == 0


def test_suspicion_min_equal_max_is_allowed() -> None:
    suspicion = Suspicion("accuser", 2, 5.0, 5.0, 1.0)
    assert suspicion.deadline == pytest.approx(6.0)


@pytest.mark.parametrize(("min_s", "max_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_suspicion_invalid_bounds(min_s: float, max_s: float) -> None:
    with pytest.raises(LocalError, match="min_s"):
        Suspicion("accuser", 2, min_s, max_s, 0.0)
