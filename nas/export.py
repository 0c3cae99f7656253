"""Export of the Pareto architectures: one YAML per architecture that rebuilds the exact network
with `Arch.from_yaml` or `hydra.utils.instantiate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from search_spaces import Arch

from .pareto import Candidate, atomic_write

__all__ = ["export_front"]


def export_front(front: Sequence[Candidate], folder: Path) -> dict[int, str]:
    """Write `trial_NNNN.yaml` for each front member and drop the YAMLs of trials that left the
    front; returns {trial number: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for c in front:
        path = folder / f"trial_{c.trial:04d}.yaml"
        arch = Arch.from_yaml(c.arch_yaml)  # validates what the study stored before writing it out
        header = f"# trial {c.trial}: val_acc {c.val_acc:.4f}, {c.mmacs:.3f} MMACs, {c.mparams:.4f} M params\n"
        atomic_write(path, header + arch.to_yaml())
        paths[c.trial] = str(path)
    for stale in folder.glob("trial_*.yaml"):
        if str(stale) not in paths.values():
            stale.unlink()
    return paths
