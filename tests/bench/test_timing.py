"""Timing statistics on known samples and a fake clock (no wall-clock assertions)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pakd.bench import Timing, measure, percentile
from pakd.errors import PakdError


class FakeClock:
    """A clock that only moves when the timed function runs, by the given durations (ns)."""

    def __init__(self, durations_ns):
        self.now = 1_000_000
        self.durations = list(durations_ns)
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def fn(self) -> None:
        self.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1


def test_stats_of_a_known_list():
    t = Timing.from_ns([5000, 1000, 3000, 2000, 4000])
    assert t.count == 5
    assert t.median_us == 3.0 and t.min_us == 1.0 and t.max_us == 5.0 and t.mean_us == 3.0
    assert t.p90_us == pytest.approx(4.6)  # rank 0.9 * 4 = 3.6 between 4 and 5
    assert t.stdev_us == pytest.approx(math.sqrt(2.5))


def test_percentile_matches_numpy():
    values = sorted(np.random.default_rng(0).exponential(100.0, size=101).tolist())
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        assert percentile(values, q) == pytest.approx(np.percentile(values, 100 * q))


def test_single_sample_has_zero_stdev():
    t = Timing.from_ns([2500])
    assert (t.count, t.median_us, t.p90_us, t.stdev_us) == (1, 2.5, 2.5, 0.0)


def test_measure_times_each_call_on_the_clock():
    clock = FakeClock([1000, 2000, 3000, 4000])  # 1..4 us, repeating
    t = measure(clock.fn, warmup=0, repeats=8, min_time_s=0, clock=clock)
    assert t.count == 8 and clock.calls == 8
    assert (t.min_us, t.max_us, t.median_us, t.mean_us) == (1.0, 4.0, 2.5, 2.5)


def test_warmup_calls_are_not_timed():
    clock = FakeClock([1_000_000] * 3 + [1000] * 100)  # slow first calls, then 1 us
    t = measure(clock.fn, warmup=3, repeats=10, min_time_s=0, clock=clock)
    assert clock.calls == 13 and t.count == 10 and t.max_us == 1.0


def test_min_time_extends_past_repeats():
    clock = FakeClock([1_000_000])  # 1 ms per call
    t = measure(clock.fn, warmup=0, repeats=3, min_time_s=0.01, clock=clock)
    assert t.count == 10 and t.median_us == 1000.0


def test_repeats_extend_past_min_time():
    clock = FakeClock([1_000_000])
    assert measure(clock.fn, warmup=0, repeats=50, min_time_s=0.001, clock=clock).count == 50


def test_timing_is_frozen_and_round_trips_through_a_dict():
    t = Timing.from_ns([1000, 2000, 3000])
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.median_us = 0.0  # type: ignore[misc]
    d = t.to_dict()
    assert set(d) == {"count", "median_us", "p90_us", "min_us", "max_us", "mean_us", "stdev_us"}
    assert Timing.from_dict(d) == t


@pytest.mark.parametrize("kw", [dict(repeats=0), dict(warmup=-1), dict(min_time_s=-1.0)])
def test_bad_settings_are_user_errors(kw):
    with pytest.raises(PakdError):
        measure(lambda: None, **{"warmup": 0, "repeats": 1, "min_time_s": 0.0, **kw})


def test_measure_on_the_real_clock_counts_calls():
    calls = []
    t = measure(lambda: calls.append(1), warmup=2, repeats=20, min_time_s=0)
    assert t.count == 20 and len(calls) == 22 and 0 <= t.min_us <= t.median_us <= t.p90_us <= t.max_us
