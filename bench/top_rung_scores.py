"""How well a finished search's top rung was read: every network that reached it, scored from its
kept weights on the whole validation split and on the test split, beside the validation accuracy
the search recorded for it (on the validation images the search scored the top rung on).

    python bench/top_rung_scores.py runs/NAME            # the study in runs/NAME/study.db
    python bench/top_rung_scores.py runs/NAME --out bench/results/top_rung_scores_NAME.md

An analysis after the search, never part of it: the search reads the test split once per front
member at its end and selects on validation accuracy alone. This script asks whether the
validation images it selected on ranked the top rung as the whole split and the test split do.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

from _harness import invocation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the search's output folder, with study.db and weights/")
    parser.add_argument("--data", default="fashion_mnist", help="the dataset the study was searched on")
    parser.add_argument("--out", type=Path, help="write the table here as Markdown (default: print it)")
    args = parser.parse_args()

    import optuna
    import torch

    from nas.attrs import TrialAttr
    from nas.data import load_dataset
    from nas.model import build_model
    from nas.results import load_weights
    from nas.training import evaluate
    from search_spaces import Arch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not (args.folder / "study.db").is_file():
        sys.exit(f"error: folder: {args.folder} holds no study.db (give the output folder of a finished search)")
    storage = f"sqlite:///{args.folder / 'study.db'}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if len(names) != 1:
        sys.exit(f"error: {args.folder / 'study.db'} holds {len(names)} studies; expected one")
    study = optuna.load_study(study_name=names[0], storage=storage)
    data = load_dataset(args.data)
    cpu = torch.device("cpu")
    rows = []
    for t in study.trials:
        weights = t.user_attrs.get(TrialAttr.WEIGHTS)
        if t.state != optuna.trial.TrialState.COMPLETE or not weights:
            continue
        model = build_model(Arch.from_yaml(t.user_attrs[TrialAttr.ARCH_YAML]), max_mparams=None)
        load_weights(model, args.folder / weights)
        val = evaluate(model, data.val, mean=data.mean, std=data.std, device=cpu)
        test = evaluate(model, data.test, mean=data.mean, std=data.std, device=cpu)
        rows.append((t.number, t.user_attrs[TrialAttr.MACS] / 1e6, t.user_attrs[TrialAttr.VAL_ACC], val, test,
                     t.user_attrs.get(TrialAttr.REFERENCE) or ""))
    lines = [
        f"# Top-rung networks of study {names[0]}",
        "",
        f"Made by `{invocation(__file__)}` on {platform.machine()}, torch {torch.__version__}: each network "
        f"that completed the top rung, from its kept weights; `recorded` is the validation accuracy the "
        f"search selected on, `val` the whole validation split ({len(data.val)} images), `test` the test "
        f"split ({len(data.test)} images).",
        "",
        "| trial | MMACs | recorded | val | test | reference |",
        "|---|---|---|---|---|---|",
        *(f"| {n} | {m:.2f} | {r:.4f} | {v:.4f} | {te:.4f} | {ref} |" for n, m, r, v, te, ref in rows),
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
