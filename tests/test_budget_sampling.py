"""Budget-aware sampling: every draw fits, and nothing under the budget becomes unreachable."""

from __future__ import annotations

import itertools

import pytest

from nas.complexity import complexity
from nas.search import RandomSuggests, budget_usage
from search_spaces import Budget
from search_spaces import DataShape, get_space
from search_spaces.spaces import Size, draw_sizes

FASHION = DataShape(1, 28, 10)


class Fractions:
    """A trial answering every `<name>_frac` from a table (categoricals are not asked here)."""

    def __init__(self, fractions: dict[str, float]) -> None:
        self.fractions = fractions

    def suggest_float(self, name: str, low: float, high: float, **_: object) -> float:
        return self.fractions[name]


class Largest(RandomSuggests):
    """Random structure, every number at its upper bound."""

    def suggest_float(self, name: str, low: float, high: float, **_: object) -> float:
        return high


def test_every_fitting_combination_is_reachable_and_nothing_else() -> None:
    # A toy network "size" a*b + 2c (grows with each size, like MACs); brute force over a grid of
    # fractions fine enough to hit every index must reach exactly the combinations that fit.
    sizes = [Size("a", 1, 5, 1), Size("b", 1, 4, 1), Size("c", 1, 3, 1)]
    limit = 11

    def cost(v: tuple[float, float, float]) -> float:
        return v[0] * v[1] + 2 * v[2]

    def build(v: dict[str, float]) -> tuple[float, float, float]:
        return (v["a"], v["b"], v["c"])

    usage = lambda v: cost(v) / limit  # noqa: E731
    grid = [(k + 0.5) / 12 for k in range(12)]
    reached, used = set(), []
    for share, fa, fb, fc in itertools.product([*grid, 1.0], grid, grid, grid):
        values = draw_sizes(Fractions({"budget_frac": share, "a_frac": fa, "b_frac": fb, "c_frac": fc}),
                            sizes, build, usage)
        reached.add(build(values))
        used.append((share, cost(build(values))))
    expected = {
        (a, b, c) for a, b, c in itertools.product(range(1, 6), range(1, 5), range(1, 4)) if a * b + 2 * c <= limit
    }
    assert reached == {tuple(float(x) for x in v) for v in expected}
    # The share of the budget drawn first caps the network: smallest cost 1*1 + 2*1 = 3.
    assert all(c <= 3 + share * (limit - 3) + 1e-9 for share, c in used)


def test_without_a_budget_a_fraction_spans_the_whole_range() -> None:
    sizes = [Size("w", 0.25, 2.0, 0.25)]
    got = [draw_sizes(Fractions({"w_frac": (k + 0.5) / 8}), sizes, lambda v: v, None)["w"] for k in range(8)]
    assert got == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


@pytest.mark.parametrize("space", ["hybrid", "shufflenet", "mobilenext"])
@pytest.mark.parametrize("mflops", [5, 20, 80])
def test_budget_aware_samples_fit_and_reach_the_budget(space: str, mflops: float) -> None:
    budget = Budget(mflops, None)
    fn = get_space(space)
    rng = RandomSuggests(seed=7)
    aware = [complexity(fn(rng, FASHION, budget_usage(budget))).mmacs for _ in range(300)]
    assert sum(m <= mflops for m in aware) / len(aware) >= 0.95
    # Spread over the range, not piled at the budget: the lower half of it is well visited.
    assert sum(m <= mflops / 2 for m in aware) / len(aware) >= 0.2
    # The large end stays reachable: with every fraction at 1, some structure comes as close to
    # the budget (within 1%) as the biggest fitting one of 1,500 plain draws.
    rng = RandomSuggests(seed=7)
    plain = [complexity(fn(rng, FASHION)).mmacs for _ in range(1500)]
    largest = Largest(seed=7)
    greedy = [complexity(fn(largest, FASHION, budget_usage(budget))).mmacs for _ in range(100)]
    assert max(m for m in greedy if m <= mflops) >= 0.99 * max(m for m in plain if m <= mflops)
    # And the small end: every size at its smallest is the plain space's smallest network.
    smallest = RandomSuggests(seed=3, smallest=True)
    small_plain = RandomSuggests(seed=3, smallest=True)
    assert complexity(fn(smallest, FASHION, budget_usage(budget))) == complexity(fn(small_plain, FASHION))


def test_plain_sampling_is_still_mostly_over_a_small_budget() -> None:
    # The reason for the above: a 5-MMAC budget rejects most plain samples of the hybrid space.
    rng = RandomSuggests(seed=7)
    plain = [complexity(get_space("hybrid")(rng, FASHION)).mmacs for _ in range(300)]
    assert sum(m <= 5 for m in plain) / len(plain) < 0.2
