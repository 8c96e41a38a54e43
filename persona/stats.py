"""Intervals for pass rates measured on a finite sample."""

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


def rate_with_interval(successes: int, total: int) -> str:
    """'97/110 = 88 % (95 % CI 81-93 %)'."""
    low, high = wilson(successes, total)
    rate = successes / total if total else 0.0
    return f"{successes}/{total} = {rate:.0%} (95 % CI {low:.0%}-{high:.0%})"
