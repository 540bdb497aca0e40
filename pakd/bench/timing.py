"""Latency statistics of a callable: warm-up, then at least ``repeats`` timed calls and at least
``min_time_s`` of timed calls, each timed alone with :func:`time.perf_counter_ns`.

The median is the number PaKD reports (DESIGN.md, honest measurement); p90 shows the tail.
Percentiles interpolate linearly between the two nearest order statistics (numpy's default).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import PakdError

NS_PER_US = 1_000.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0 <= q <= 1) of already sorted values, linear interpolation."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class Timing:
    """Statistics of ``count`` timed calls, in microseconds."""

    count: int
    median_us: float
    p90_us: float
    min_us: float
    max_us: float
    mean_us: float
    stdev_us: float  # sample standard deviation; 0 for a single call

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int | float]) -> Timing:
        if not samples_ns:
            raise ValueError("no samples")
        us = sorted(s / NS_PER_US for s in samples_ns)
        return cls(
            count=len(us),
            median_us=percentile(us, 0.5),
            p90_us=percentile(us, 0.9),
            min_us=us[0],
            max_us=us[-1],
            mean_us=statistics.fmean(us),
            stdev_us=statistics.stdev(us) if len(us) > 1 else 0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(**data)


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 10,
    repeats: int = 100,
    min_time_s: float = 0.0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Timing:
    """Call ``fn()`` ``warmup`` times untimed, then time single calls until at least ``repeats``
    calls and at least ``min_time_s`` seconds of calls (counted from the first timed call) are done."""
    if warmup < 0 or repeats < 1 or min_time_s < 0:
        raise PakdError(f"need warmup >= 0, repeats >= 1 and min_time >= 0 (got {warmup}, {repeats}, {min_time_s})")
    for _ in range(warmup):
        fn()
    min_ns = min_time_s * 1e9
    samples: list[int] = []
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        if len(samples) >= repeats and t1 - start >= min_ns:
            break
    return Timing.from_ns(samples)
