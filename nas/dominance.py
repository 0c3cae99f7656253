"""Pareto dominance, defined once: non-dominated fronts and NSGA-II's crowding distance, with every
objective minimized (negate what is maximized). Successive halving and the search's front use it."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["crowding_distances", "dominates", "nondominated", "nondominated_fronts"]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is no worse than `b` in every objective and better in one (so equal points dominate
    neither)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def nondominated(points: Sequence[Sequence[float]], among: Sequence[int] | None = None) -> list[int]:
    """Indices (of `among`, default all) of the points no other of them dominates, ascending."""
    among = range(len(points)) if among is None else sorted(among)
    return [i for i in among if not any(dominates(points[j], points[i]) for j in among if j != i)]


def nondominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of `points` by non-dominated front, first front first. Quadratic per front, which
    is nothing next to training one network."""
    remaining = set(range(len(points)))
    fronts = []
    while remaining:
        front = nondominated(points, sorted(remaining))
        fronts.append(front)
        remaining -= set(front)
    return fronts


def crowding_distances(front: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each point of one front: per objective, the gap between its
    neighbours over the front's range, summed; the extremes of every objective get infinity."""
    n = len(front)
    distance = [0.0] * n
    for m in range(len(front[0]) if n else 0):
        order = sorted(range(n), key=lambda i: front[i][m])
        low, high = front[order[0]][m], front[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for j in range(1, n - 1):
            distance[order[j]] += (front[order[j + 1]][m] - front[order[j - 1]][m]) / (high - low)
    return distance
