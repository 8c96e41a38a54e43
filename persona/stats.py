"""Figures measured on a finite sample: intervals for pass rates, percentiles of timings."""

from __future__ import annotations

import math


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion; (0, 1) for an empty sample.
    Unlike the normal approximation it stays inside [0, 1] and is honest at 0/n and n/n."""
    if total == 0:
        return 0.0, 1.0
    rate = successes / total
    denominator = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(count: int, total: int) -> dict:
    """{"count", "total", "rate", "interval"}: a measured share as reports store it (rate None
    for an empty sample)."""
    return {"count": count, "total": total,
            "rate": round(count / total, 3) if total else None,
            "interval": [round(bound, 3) for bound in wilson(count, total)]}


def describe(measure: dict, rate_digits: int = 1, bound_digits: int = 1) -> str:
    """'28/121 = 23.1% (16.5%-31.4%)' for a proportion() dict."""
    low, high = measure["interval"]
    rate = "-" if measure["rate"] is None else f"{measure['rate']:.{rate_digits}%}"
    return (f"{measure['count']}/{measure['total']} = {rate} "
            f"({low:.{bound_digits}%}-{high:.{bound_digits}%})")


def percentile(values: list[float], share: float) -> float:
    """The value `share` of the way up the sorted values (nearest rank; 0.5 is the median)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
