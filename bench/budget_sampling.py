"""Share of samples inside the budget, plain space vs budget-aware sampling.

    python bench/budget_sampling.py        # writes bench/results/budget_sampling.md (a few seconds)

Seeded uniform draws (`nas.search.RandomSuggests`, as the budget probe draws them) of each default
space at Fashion-MNIST's input (1x28x28, 10 classes), priced by `nas.complexity`.
"""

from __future__ import annotations

import statistics
import time

from nas.complexity import complexity
from nas.search import RandomSuggests, budget_usage
from search_spaces import Budget, DataShape, get_space

from _harness import RESULTS

SAMPLES, SEED = 1000, 0
BUDGETS = (5.0, 20.0, 80.0)


def main() -> None:
    shape = DataShape(1, 28, 10)
    lines = [
        f"Made by `python bench/budget_sampling.py` on {time.strftime('%Y-%m-%d')}: {SAMPLES} seeded draws "
        f"(seed {SEED}) per space and budget, Fashion-MNIST input 1x28x28.",
        "",
        "| space | budget MMACs | plain: inside | plain: median MMACs | budget-aware: inside | budget-aware: median MMACs | ms / draw |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("hybrid", "shufflenet", "mobilenext"):
        space = get_space(name)
        rng = RandomSuggests(SEED)
        plain = [complexity(space(rng, shape)).mmacs for _ in range(SAMPLES)]
        for mflops in BUDGETS:
            usage = budget_usage(Budget(mflops, None))
            rng = RandomSuggests(SEED)
            started = time.perf_counter()
            aware = [complexity(space(rng, shape, usage)).mmacs for _ in range(SAMPLES)]
            ms = 1000 * (time.perf_counter() - started) / SAMPLES
            lines.append(
                f"| {name} | {mflops:g} | {100 * sum(m <= mflops for m in plain) / SAMPLES:.1f}% "
                f"| {statistics.median(plain):.1f} | {100 * sum(m <= mflops for m in aware) / SAMPLES:.1f}% "
                f"| {statistics.median(aware):.2f} | {ms:.1f} |"
            )
    text = "\n".join(lines) + "\n"
    (RESULTS / "budget_sampling.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
