"""The fidelity ladder: the rungs at which a trial's accuracy is measured, in training images seen.

The top rung is the proxy's recipe itself (its epochs over the images a trial draws): a real
training. The rungs below it are the top divided by `eta` again and again, down to the
screening rung. A trial climbs by continuing its own run (`nas.training.Training`), so a network
that reaches the top has had exactly the top rung's recipe; with `rung_schedule=restart` the
learning-rate schedule starts again at each rung and runs over that rung's steps (warm restarts),
so that every rung is measured on an annealed network rather than mid-schedule;
`restart_no_warmup` starts the rungs after the first at the peak learning rate instead of warming
up again (SGDR's restarts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..training import RunSettings
from .halving import Halving, expected_reach, most_reaching

__all__ = ["Ladder", "ladder_for"]


@dataclass(frozen=True)
class Ladder:
    """Where a run is measured: `steps[k]` training steps (`images[k]` images seen) at rung k;
    the last rung is the top. `restarts` are the steps where the schedule starts again, warming
    up again there or not (`rewarm`)."""

    steps: tuple[int, ...]
    batch_size: int
    eta: int
    restart: bool
    rewarm: bool = True

    @property
    def images(self) -> tuple[int, ...]:
        return tuple(s * self.batch_size for s in self.steps)

    @property
    def top(self) -> int:
        """The top rung's steps."""
        return self.steps[-1]

    @property
    def restarts(self) -> tuple[int, ...]:
        return self.steps[:-1] if self.restart else ()

    def key(self, rung: int) -> str:
        """The name of rung `rung` in trial attributes: its training images seen."""
        return f"{self.images[rung]:g}"

    def describe(self, n_trials: int, halving: Halving | None, references: int = 0) -> str:
        """What the ladder will cost, for the log before the search starts; `halving`: the rule
        that stops trials at the rungs below the top (None: every trial reaches the top)."""
        rungs = " / ".join(f"{i:,}" for i in self.images)
        previous = [0, *self.images[:-1]]

        def images(reach: list[float]) -> float:
            return sum(r * (i - p) for r, i, p in zip(reach, self.images, previous, strict=True))

        if halving is None:
            reach = [float(n_trials)] * len(self.steps)
            plan = f"all {n_trials} reach each rung; {images(reach):,.0f} training images in all"
        else:
            reach = expected_reach(halving, n_trials - references, references)
            about = f"about {', '.join(f'{r:.0f}' for r in reach)} reach each rung"
            if halving.late:
                about += " (stopped ones promoted later included, trained again from the start)"
            if halving.cap:
                most = [float(m) for m in most_reaching(halving, n_trials - references, references)]
                plan = (f"{about}, at most {', '.join(f'{m:.0f}' for m in most)} (a sampler that learns "
                        f"comes near that); about {images(reach):,.0f} training images in all, at most "
                        f"{images(most):,.0f}")
            else:
                plan = (f"{about} (more where later trials do better than the first ones); "
                        f"about {images(reach):,.0f} training images in all")
        schedule = "one schedule over the top rung"
        if self.restart:
            schedule = "the schedule restarts at each rung" + ("" if self.rewarm else ", at its peak after the first")
        refs = f", {references} of them the papers' networks, which always reach the top" if references else ""
        return (f"ladder: rungs at {rungs} training images seen (eta {self.eta}; {schedule}); "
                f"{n_trials} architectures{refs}; {plan}")


def ladder_for(settings: RunSettings, n_train: int, eta: int, screen_images: int | None, restart: bool,
               field: str = "proxy.screen_images", *, rewarm: bool = True) -> Ladder:
    """The ladder of a run with `settings` on a training split of `n_train` images: the top is
    the whole run (`settings.epochs` over the images drawn), the rungs below it the top's steps
    divided by `eta` down to `screen_images` (null: two rungs below the top)."""
    count = max(1, round(n_train * settings.train_fraction))
    n = min(count, settings.max_train_images or count)
    batch = min(settings.batch_size, n)
    top = settings.epochs * (n // batch)
    if screen_images is None:
        lowest = max(1, math.ceil(top / eta**2))
    else:
        lowest = math.ceil(screen_images / batch)
        if lowest > top:
            raise ConfigError(field, f"{screen_images} is above the top rung ({top * batch} training images seen: "
                                     f"{settings.epochs} epoch(s) of {n} images at batch {batch}); allowed: "
                                     f"1..{top * batch}")
    steps = [top]
    while math.ceil(steps[0] / eta) >= lowest and math.ceil(steps[0] / eta) < steps[0]:
        steps.insert(0, math.ceil(steps[0] / eta))
    return Ladder(tuple(steps), batch, eta, restart, rewarm)
