"""Hand design as the starting point: the papers' networks scaled to the budget are a search's
first trials (`search.start_from_references`).

They are ShuffleNet v1 (g=3, the paper's default) and MobileNeXt at the widest multiplier, in
hundredths, whose MACs fit the budget at the study's input. They are trials with a fixed
architecture (no sampled parameters: the spaces' stage layouts cannot express the papers'
networks), always climb to the top rung, and carry the `reference` attribute, so that the front,
its table and plot show them beside the searched networks, trained with the same recipe.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from search_spaces import Arch, Budget, DataShape, mobilenext, shufflenet_v1

from ..attrs import StudyAttr, TrialAttr
from ..complexity import complexity

__all__ = ["enqueue_references", "scaled_references"]

FAMILIES: dict[str, Callable[[float, DataShape], Arch]] = {
    "shufflenet_v1_g3": lambda w, s: shufflenet_v1(3, w, s.num_classes, s.in_channels, s.resolution),
    "mobilenext": lambda w, s: mobilenext(w, s.num_classes, s.in_channels, s.resolution),
}


def scaled_references(shape: DataShape, budget: Budget) -> dict[str, Arch]:
    """`{"shufflenet_v1_g3_0.37x": Arch, ...}`: each family at its widest multiplier (0.01 to 3,
    by bisection on MACs, which grow with the width) within the budget; a family whose narrowest
    network is over it is left out."""
    found = {}
    for family, build in FAMILIES.items():
        def fits(hundredths: int) -> bool:
            return budget.admits(complexity(build(hundredths / 100, shape)))  # noqa: B023 (called in the loop)

        low, high = 1, 300
        if not fits(low):
            continue
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
        found[f"{family}_{low / 100:g}x"] = build(low / 100, shape)
    return found


def enqueue_references(study: optuna.Study, shape: DataShape, budget: Budget) -> list[str]:
    """Queue the scaled references as the study's next trials, once per study (a resumed or a
    second worker's search finds them recorded and queues nothing); their names."""
    if StudyAttr.REFERENCES in study.user_attrs:
        return []
    refs = scaled_references(shape, budget)
    study.set_user_attr(StudyAttr.REFERENCES, sorted(refs))
    for name, arch in refs.items():
        study.enqueue_trial({}, user_attrs={TrialAttr.REFERENCE: name, TrialAttr.ARCH_YAML: arch.to_yaml()})
    return list(refs)
