"""Tests for gossamer.failure.phi: tables for the formula and timings, hypothesis for laws."""

from __future__ import annotations

import dataclasses
import math
import statistics
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.errors import ConfigError, LocalError
from gossamer.failure.phi import (
    PhiConfig,
    PhiDetector,
    PhiError,
    PhiMonitor,
    TooManyPeers,
    elapsed_for_phi,
    phi,
)
from gossamer.ids import Address

LAWS = settings(max_examples=100, deadline=None)


def logistic_phi(elapsed: float, mean: float, std: float) -> float:
    """Akka's two-branch form, written out naively; only for inputs where it cannot overflow."""
    y = (elapsed - mean) / std
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    if elapsed > mean:
        return -math.log10(e / (1.0 + e))
    return -math.log10(1.0 - 1.0 / (1.0 + e))


def normal_phi(elapsed: float, mean: float, std: float) -> float:
    """The exact φ: -log10 of the normal tail, through erfc so the far tail keeps its digits."""
    y = (elapsed - mean) / std
    return -math.log10(0.5 * math.erfc(y / math.sqrt(2.0)))


def beats(detector: PhiDetector, times: list[float]) -> float:
    for t in times:
        detector.heartbeat(t)
    return times[-1]


def steady(count: int, interval: float = 1.0) -> list[float]:
    return [i * interval for i in range(count)]


def first_crossing(detector: PhiDetector, last: float, horizon: float = 12.0) -> float:
    """Seconds after ``last`` at which φ first reaches the threshold, scanned in 1 ms steps."""
    threshold = detector.config.threshold
    for step in range(int(horizon * 1000) + 1):
        if detector.phi(last + step / 1000) >= threshold:
            return step / 1000
    raise AssertionError(f"phi stayed below {threshold} for {horizon} s")


# -- phi(): the formula --------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "mean", "std"),
    [
        (2.0, 4.0, 0.1),
        (3.9, 4.0, 0.1),
        (4.0, 4.0, 0.1),
        (4.1, 4.0, 0.1),
        (4.5, 4.0, 0.1),
        (5.0, 4.0, 0.25),
        (5.31, 4.0, 0.25),
        (1.0, 1.0, 1.0),
        (2.0, 1.0, 1.0),
        (10.0, 1.0, 1.0),
        (-3.0, 1.0, 2.0),
        (0.0, 0.0, 1e-3),
        (0.0012, 0.001, 1e-4),
    ],
)
def test_phi_is_the_logistic_formula(elapsed: float, mean: float, std: float) -> None:
    assert phi(elapsed, mean, std) == pytest.approx(logistic_phi(elapsed, mean, std), rel=1e-12)


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        # By hand: z = y * (1.5976 + 0.070566 y^2), phi = log10(1 + e^z).
        (0.0, 0.30103),  # log10(2): at the mean
        (1.0, 0.79951),  # z = 1.668166
        (-1.0, 0.07503),
        (3.0, 2.90948),  # z = 6.698082
        (5.0, 7.29995),  # z = 16.80875
        (5.3, 8.23984),  # z = 18.97294
    ],
)
def test_phi_known_values(y: float, expected: float) -> None:
    mean, std = 4.0, 0.1
    assert phi(mean + y * std, mean, std) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize("y", [-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
def test_phi_is_close_to_the_normal_distribution_near_the_mean(y: float) -> None:
    assert phi(4.0 + y * 0.2, 4.0, 0.2) == pytest.approx(
        normal_phi(4.0 + y * 0.2, 4.0, 0.2), abs=0.01
    )


@pytest.mark.parametrize("y", [3.0, 4.0, 5.0, 6.0, 8.0])
def test_phi_overstates_the_far_tail(y: float) -> None:
    # The approximation's known bias: it suspects sooner than a true normal would.
    assert phi(y, 0.0, 1.0) > normal_phi(y, 0.0, 1.0) + 0.03


@pytest.mark.parametrize(
    ("elapsed", "mean", "std", "expected"),
    [
        (-1e300, 0.0, 1e-300, 0.0),  # z = -inf: exp would overflow in Akka's form
        (-1e6, 0.0, 1e-3, 0.0),
        (0.0, 4.0, 0.1, 0.0),  # y = -40 is already far enough
        (float("-inf"), 0.0, 1.0, 0.0),
        (float("inf"), 0.0, 1.0, math.inf),
        (1e300, -1e300, 1e-300, math.inf),  # y itself overflows
    ],
)
def test_phi_extremes_do_not_raise(
    elapsed: float, mean: float, std: float, expected: float
) -> None:
    assert phi(elapsed, mean, std) == expected


def test_phi_far_past_the_mean_is_finite_and_huge() -> None:
    # Akka's form takes log10(0) here; the y**3 growth must survive.
    value = phi(1e3, 0.0, 1e-3)  # y = 1e6
    assert math.isfinite(value)
    assert value == pytest.approx(0.070566 * 1e18 / math.log(10), rel=1e-9)


@pytest.mark.parametrize(
    ("elapsed", "mean", "std"),
    [
        (math.nan, 0.0, 1.0),
        (1.0, math.nan, 1.0),
        (1.0, math.inf, 1.0),
        (1.0, 0.0, 0.0),
        (1.0, 0.0, -1.0),
        (1.0, 0.0, math.inf),
        (1.0, 0.0, math.nan),
    ],
)
def test_phi_rejects_impossible_arguments(elapsed: float, mean: float, std: float) -> None:
    with pytest.raises(PhiError) as caught:
        phi(elapsed, mean, std)
    assert isinstance(caught.value, LocalError)
    assert isinstance(caught.value, ValueError)


finite_times = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
means = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
deviations = st.floats(min_value=1e-9, max_value=1e6, allow_nan=False)


@LAWS
@given(finite_times, finite_times, means, deviations)
def test_phi_is_non_negative_and_non_decreasing(
    t1: float, t2: float, mean: float, std: float
) -> None:
    early, late = min(t1, t2), max(t1, t2)
    low, high = phi(early, mean, std), phi(late, mean, std)
    assert not math.isnan(low)
    assert not math.isnan(high)
    assert 0.0 <= low <= high


# -- elapsed_for_phi(): the inverse, for deadlines -------------------------------


@pytest.mark.parametrize("target", [1e-6, 0.01, math.log10(2), 0.5, 1.0, 8.0, 10.0, 50.0, 300.0])
@pytest.mark.parametrize(("mean", "std"), [(4.0, 0.1), (0.0, 1.0), (6.0, 0.2), (-3.0, 1e-3)])
def test_elapsed_for_phi_inverts_phi(target: float, mean: float, std: float) -> None:
    elapsed = elapsed_for_phi(target, mean, std)
    assert phi(elapsed, mean, std) == pytest.approx(target, rel=1e-9)


def test_elapsed_for_phi_at_log10_2_is_the_mean() -> None:
    assert elapsed_for_phi(math.log10(2), 4.0, 0.1) == pytest.approx(4.0, abs=1e-12)


@pytest.mark.parametrize(
    ("target", "mean", "std"),
    [
        (0.0, 0.0, 1.0),
        (-1.0, 0.0, 1.0),
        (math.inf, 0.0, 1.0),
        (math.nan, 0.0, 1.0),
        (8.0, math.nan, 1.0),
        (8.0, 0.0, 0.0),
        (8.0, 0.0, math.inf),
    ],
)
def test_elapsed_for_phi_rejects_impossible_arguments(
    target: float, mean: float, std: float
) -> None:
    with pytest.raises(PhiError):
        elapsed_for_phi(target, mean, std)


# -- PhiConfig -----------------------------------------------------------------


def test_lan_is_akkas_defaults() -> None:
    config = PhiConfig.lan()
    assert config == PhiConfig()
    assert (
        config.threshold,
        config.max_sample_size,
        config.min_std_deviation_s,
        config.acceptable_heartbeat_pause_s,
        config.first_heartbeat_estimate_s,
    ) == (8.0, 1_000, 0.1, 3.0, 1.0)


def test_wan_is_looser_and_local_tighter_than_lan() -> None:
    lan, wan, local = PhiConfig.lan(), PhiConfig.wan(), PhiConfig.local()
    assert wan.threshold > lan.threshold
    assert wan.acceptable_heartbeat_pause_s > lan.acceptable_heartbeat_pause_s
    assert wan.min_std_deviation_s > lan.min_std_deviation_s
    assert local.acceptable_heartbeat_pause_s < lan.acceptable_heartbeat_pause_s
    assert local.min_std_deviation_s < lan.min_std_deviation_s


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", 0.0),
        ("threshold", -8.0),
        ("threshold", math.nan),
        ("threshold", math.inf),
        ("threshold", "8"),
        ("threshold", True),
        ("max_sample_size", 0),
        ("max_sample_size", 1_000_001),
        ("max_sample_size", 10.0),
        ("min_std_deviation_s", 0.0),
        ("min_std_deviation_s", math.inf),
        ("acceptable_heartbeat_pause_s", -0.1),
        ("acceptable_heartbeat_pause_s", math.inf),
        ("acceptable_heartbeat_pause_s", math.nan),
        ("first_heartbeat_estimate_s", 0.0),
        ("first_heartbeat_estimate_s", math.inf),
    ],
)
def test_config_rejects_out_of_range(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"PhiConfig.{field}"):
        dataclasses.replace(PhiConfig.lan(), **{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("acceptable_heartbeat_pause_s", 0.0), ("max_sample_size", 1), ("threshold", 0.5)],
)
def test_config_accepts_the_edges(field: str, value: Any) -> None:
    config = dataclasses.replace(PhiConfig.lan(), **{field: value})
    assert getattr(config, field) == value


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PhiConfig.lan().threshold = 1.0  # type: ignore[misc]


# -- PhiDetector: the timings the issue asks for ---------------------------------


@pytest.mark.parametrize(
    ("config", "count", "low", "high"),
    [
        # The table: suspected 4.5-5.5 s after a run of 1 s heartbeats.
        (PhiConfig.lan(), 2, 4.5, 5.5),
        (PhiConfig.lan(), 20, 4.5, 5.5),
        (PhiConfig.lan(), 1_000, 4.5, 5.5),
        (PhiConfig.lan(), 1_500, 4.5, 5.5),  # past the window's size
        (PhiConfig.wan(), 20, 6.5, 8.0),
        (PhiConfig.local(), 20, 2.0, 2.5),
    ],
)
def test_silence_after_steady_heartbeats_is_suspected_in_time(
    config: PhiConfig, count: int, low: float, high: float
) -> None:
    detector = PhiDetector(config)
    last = beats(detector, steady(count))
    crossing = first_crossing(detector, last)
    assert low <= crossing <= high
    # The deadline the detector reports is the same moment.
    deadline = detector.suspect_at()
    assert deadline is not None
    assert deadline - last == pytest.approx(crossing, abs=1e-3)


def test_a_pause_of_2_5_s_is_not_suspected() -> None:
    detector = PhiDetector()
    last = beats(detector, steady(20))
    assert detector.is_available(last + 2.5)
    assert detector.phi(last + 2.5) < 0.01
    detector.heartbeat(last + 2.5)
    assert (detector.samples, detector.late) == (2 + 19 + 1, 0)


def test_a_peer_heard_once_is_still_judged_within_6_s() -> None:
    detector = PhiDetector()
    detector.heartbeat(100.0)
    crossing = first_crossing(detector, 100.0)
    assert 4.5 <= crossing < 6.0
    assert not detector.is_available(106.0)


def test_jittery_heartbeats_are_trusted_and_suspected_later_than_steady_ones() -> None:
    rng = Random(7)
    detector = PhiDetector()
    now = 0.0
    detector.heartbeat(now)
    for _ in range(300):
        now += rng.uniform(0.6, 1.4)
        assert detector.is_available(now), f"suspected on time at {now}"
        detector.heartbeat(now)
    std = detector.std_dev_s
    assert std is not None
    assert std > PhiConfig.lan().min_std_deviation_s
    steady_detector = PhiDetector()
    steady_crossing = first_crossing(steady_detector, beats(steady_detector, steady(300)))
    crossing = first_crossing(detector, now)
    assert steady_crossing + 0.2 < crossing < 6.0


# -- PhiDetector: state -----------------------------------------------------------


def test_detector_before_any_heartbeat() -> None:
    detector = PhiDetector()
    assert detector.phi(1e9) == 0.0
    assert detector.is_available(1e9)
    assert detector.last_heartbeat is None
    assert detector.samples == 0
    assert detector.mean_s is None
    assert detector.std_dev_s is None
    assert detector.suspect_at() is None


@pytest.mark.parametrize(("estimate", "mean", "std"), [(1.0, 1.0, 0.25), (2.0, 2.0, 0.5)])
def test_first_heartbeat_seeds_two_intervals(estimate: float, mean: float, std: float) -> None:
    detector = PhiDetector(PhiConfig(first_heartbeat_estimate_s=estimate))
    detector.heartbeat(10.0)
    assert detector.last_heartbeat == 10.0
    assert detector.samples == 2
    assert detector.mean_s == pytest.approx(mean)
    assert detector.std_dev_s == pytest.approx(std)


def test_phi_uses_mean_plus_pause_and_floored_deviation() -> None:
    detector = PhiDetector()
    last = beats(detector, steady(50))
    # The window's deviation is about 0.05 s, under the 0.1 s floor.
    assert detector.std_dev_s is not None
    assert detector.std_dev_s < 0.1
    assert detector.phi(last + 4.7) == pytest.approx(phi(4.7, 1.0 + 3.0, 0.1), rel=1e-9)


def test_window_is_bounded_and_forgets_the_oldest() -> None:
    detector = PhiDetector(PhiConfig(max_sample_size=5))
    last = beats(detector, steady(100))
    assert detector.samples == 5
    beats(detector, [last + 2.0 * i for i in range(1, 6)])
    assert detector.samples == 5
    assert detector.mean_s == pytest.approx(2.0, abs=1e-12)
    assert detector.std_dev_s == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("size", [1, 2, 7, 64])
def test_window_statistics_match_a_recount(size: int) -> None:
    rng = Random(size)
    detector = PhiDetector(PhiConfig(max_sample_size=size))
    now = 0.0
    detector.heartbeat(now)
    recorded: list[float] = []
    for _ in range(500):
        interval = rng.uniform(0.5, 1.5)
        now += interval
        detector.heartbeat(now)
        recorded.append(interval)
    window = recorded[-size:]
    assert detector.samples == size
    assert detector.mean_s == pytest.approx(statistics.fmean(window), abs=1e-9)
    assert detector.std_dev_s == pytest.approx(statistics.pstdev(window), abs=1e-6)


def test_a_huge_interval_leaves_no_trace_once_evicted() -> None:
    # Subtracting 1e14 back out of the sum of squares loses the small terms'
    # digits; the periodic recount must restore them.
    detector = PhiDetector(PhiConfig(max_sample_size=4, acceptable_heartbeat_pause_s=1e9))
    last = beats(detector, steady(10))
    last += 1e7
    detector.heartbeat(last)
    beats(detector, [last + 1.0 + 0.1 * i for i in range(1, 9)])
    assert detector.mean_s == pytest.approx(0.1, abs=1e-6)
    assert detector.std_dev_s == pytest.approx(0.0, abs=1e-6)


def test_duplicate_and_reordered_heartbeats_are_counted_and_ignored() -> None:
    detector = PhiDetector()
    beats(detector, [0.0, 1.0, 1.0, 0.5, 2.0])
    assert detector.duplicates == 2
    assert detector.last_heartbeat == 2.0
    assert detector.samples == 2 + 2
    assert detector.mean_s == pytest.approx(1.0)


def test_interval_ending_a_suspected_silence_is_not_recorded() -> None:
    detector = PhiDetector()
    last = beats(detector, steady(20))
    samples, mean = detector.samples, detector.mean_s
    assert not detector.is_available(last + 10.0)
    detector.heartbeat(last + 10.0)
    assert detector.late == 1
    assert (detector.samples, detector.mean_s) == (samples, mean)
    assert detector.last_heartbeat == last + 10.0
    assert detector.is_available(last + 10.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_detector_rejects_a_non_finite_now(bad: float) -> None:
    detector = PhiDetector()
    with pytest.raises(PhiError):
        detector.heartbeat(bad)
    detector.heartbeat(0.0)
    with pytest.raises(PhiError):
        detector.phi(bad)


@LAWS
@given(
    st.lists(st.floats(min_value=1e-3, max_value=10.0), min_size=0, max_size=40),
    st.floats(min_value=0.0, max_value=1e4),
    st.floats(min_value=0.0, max_value=1e4),
)
def test_detector_phi_is_non_negative_and_non_decreasing(
    intervals: list[float], wait1: float, wait2: float
) -> None:
    detector = PhiDetector(PhiConfig(max_sample_size=16))
    now = 0.0
    detector.heartbeat(now)
    for interval in intervals:
        now += interval
        detector.heartbeat(now)
    assert detector.samples <= 16
    low = detector.phi(now + min(wait1, wait2))
    high = detector.phi(now + max(wait1, wait2))
    assert not math.isnan(low)
    assert 0.0 <= low <= high


# -- PhiMonitor ------------------------------------------------------------------

A, B, C = Address("10.0.0.1:7000"), Address("10.0.0.2:7000"), Address("10.0.0.3:7000")


def test_monitor_reports_silent_peers_sorted() -> None:
    monitor: PhiMonitor[Address] = PhiMonitor(max_peers=3)
    for t in range(10):
        for peer in (C, B, A):
            monitor.heartbeat(peer, float(t))
    for t in range(10, 20):
        monitor.heartbeat(B, float(t))
    assert len(monitor) == 3
    assert monitor.suspects(19.0) == [A, C]
    assert not monitor.is_available(A, 19.0)
    assert monitor.is_available(B, 19.0)
    assert monitor.phi(A, 19.0) >= 8.0


def test_monitor_judges_unknown_peers_healthy() -> None:
    monitor: PhiMonitor[Address] = PhiMonitor(max_peers=1)
    assert monitor.phi(A, 1e6) == 0.0
    assert monitor.is_available(A, 1e6)
    assert A not in monitor
    assert monitor.detector(A) is None
    assert monitor.suspects(1e6) == []


def test_monitor_is_bounded_and_remove_frees_a_place() -> None:
    monitor: PhiMonitor[Address] = PhiMonitor(PhiConfig.local(), max_peers=2)
    monitor.heartbeat(A, 0.0)
    monitor.heartbeat(B, 0.0)
    with pytest.raises(TooManyPeers, match="max_peers=2"):
        monitor.heartbeat(C, 0.0)
    assert C not in monitor
    monitor.heartbeat(A, 1.0)  # a known peer still counts
    assert monitor.remove(B)
    assert not monitor.remove(B)
    monitor.heartbeat(C, 1.0)
    assert (A in monitor, B in monitor, C in monitor, len(monitor)) == (True, False, True, 2)


def test_monitor_forgets_a_removed_peers_history() -> None:
    monitor: PhiMonitor[str] = PhiMonitor(max_peers=1)
    for t in range(5):
        monitor.heartbeat("a", float(t))
    monitor.remove("a")
    monitor.heartbeat("a", 100.0)
    detector = monitor.detector("a")
    assert detector is not None
    assert (detector.samples, detector.last_heartbeat) == (2, 100.0)


def test_too_many_peers_is_the_callers_error() -> None:
    assert issubclass(TooManyPeers, LocalError)
    assert issubclass(TooManyPeers, ValueError)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_monitor_rejects_a_bad_max_peers(bad: int) -> None:
    with pytest.raises(ConfigError, match="max_peers"):
        PhiMonitor(max_peers=bad)
