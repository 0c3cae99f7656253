"""How well each proxy ranks architectures: reads the table of `bench/rank_table.py` and reports
Kendall's tau and Spearman's rho against the reference (with bootstrap intervals), top-5 overlap,
mean accuracy and cost of every proxy variant, zero-cost score and the MACs / params baselines,
and how well each rung of each fidelity ladder ranks them (the ladder columns).

    python bench/rank_correlation.py --size cpu [--doc docs/proxy-quality.md]

Writes bench/results/rank_correlation_<size>.md; with --doc, also replaces the part of that file
between `<!-- rank-correlation:begin -->` and `<!-- rank-correlation:end -->`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nas.training import rank_aggregate

from _harness import RESULTS, invocation, publish
from rank_table import LINEAR, SIZES, is_ladder, read_table

BOOTSTRAP = 1000
TOP_K = 5
TSE = "-loss_sum:"  # prefix of a column's training-speed estimate


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    return float(kendalltau(a, b).statistic)


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def _interval(score: np.ndarray, ref: np.ndarray, stat, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval over architectures (resampled with replacement)."""
    n = len(ref)
    values = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, n, n)
        v = stat(score[i], ref[i])
        if math.isfinite(v):
            values.append(v)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _partial_tau(score: np.ndarray, ref: np.ndarray, macs: np.ndarray) -> float:
    """Kendall's partial tau of score and reference with MACs held fixed (Kendall 1942): how well a
    score ranks architectures of equal MACs, which is what the Pareto mode asks of the proxy (MACs
    are its other objective)."""
    xy, xz, yz = _tau(score, ref), _tau(score, macs), _tau(ref, macs)
    denominator = math.sqrt(max(0.0, (1 - xz**2) * (1 - yz**2)))
    return (xy - xz * yz) / denominator if denominator > 0 else math.nan


def _top_overlap(score: np.ndarray, ref: np.ndarray, k: int = TOP_K) -> int:
    return len(set(np.argsort(-score, kind="stable")[:k]) & set(np.argsort(-ref, kind="stable")[:k]))


def collect(header: dict, rows: list[dict]) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Per-architecture values of every column (NaN where a row is missing) and per-column facts."""
    n = len(header["archs"])
    values: dict[str, np.ndarray] = {}
    facts: dict[str, dict] = {}
    by_column: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_column.setdefault(r["column"], {})[r["arch"]] = r
    for name, recipe in header["columns"].items():
        if is_ladder(recipe):  # reported rung by rung (_ladder_section)
            continue
        got = by_column.get(name, {})
        values[name] = np.array([got[i]["val_acc"] if i in got else np.nan for i in range(n)])
        # Training-speed estimate (Ru et al. 2021): minus the sum of the run's training losses.
        values[TSE + name] = np.array([-got[i]["loss_sum"] if i in got else np.nan for i in range(n)])
        seconds = [got[i]["seconds"] for i in got]
        linear = by_column.get(LINEAR + name, {}).get(-1)
        facts[name] = {"kind": "trained", "seconds": float(np.mean(seconds)) if seconds else math.nan,
                       "recipe": header["columns"][name], "curves": {i: got[i]["curve"] for i in got},
                       "linear": linear["val_acc"] if linear else math.nan}
    zc = by_column.get("zero_cost", {})
    for score in ("synflow", "naswot", "zico"):
        values[score] = np.array([zc[i][score] if i in zc else np.nan for i in range(n)])
        facts[score] = {"kind": "zero-cost", "seconds": float(np.mean([r["zc_s"] for r in zc.values()])) if zc else math.nan}
    values["MACs"] = np.array([a["mmacs"] for a in header["archs"]])
    values["params"] = np.array([a["mparams"] for a in header["archs"]])
    facts["MACs"] = facts["params"] = {"kind": "baseline", "seconds": 0.0}
    zc_s = facts["synflow"]["seconds"]
    aggregates = {
        "agg(synflow, naswot, zico, MACs)": ("synflow", "naswot", "zico", "MACs"),
        "agg(naswot, zico, MACs)": ("naswot", "zico", "MACs"),
        "agg(synflow, naswot, zico)": ("synflow", "naswot", "zico"),
    }
    for name, parts in aggregates.items():
        values[name] = rank_aggregate({p: values[p] for p in parts})
        facts[name] = {"kind": "zero-cost aggregate", "seconds": zc_s}
    return values, facts


def replicates(header: dict, name: str) -> list[str]:
    """`name` and the columns that repeat its recipe from another initialisation or draw of images
    (scored on another number of validation images)."""
    def core(recipe: dict) -> dict:
        return {k: v for k, v in recipe.items() if k not in ("seed_offset", "init_offset", "val_images")}

    return [n for n, r in header["columns"].items() if n == name or core(r) == core(header["columns"][name])]


def report(header: dict, rows: list[dict], reference: str) -> str:
    """`reference`: a column, or columns joined by '+' whose mean accuracy is the reference."""
    values, facts = collect(header, rows)
    ref_parts = reference.split("+")
    trained = [n for n, r in header["columns"].items() if not is_ladder(r)]
    unknown = [p for p in ref_parts if p not in trained]
    if unknown:
        raise SystemExit(f"--reference: no column {', '.join(unknown)} (columns: {', '.join(trained)})")
    # A missing row in any part leaves the architecture out (NaN).
    ref = np.mean(np.stack([values[p] for p in ref_parts]), axis=0)
    rng = np.random.default_rng(0)
    today = next((c for c in header["columns"] if c.startswith("today")), None)
    today_s = facts[today]["seconds"] if today else math.nan
    # Cost as a ratio to today's proxy: measured alone by bench/proxy_cost.py where it was run (the
    # table's own seconds were taken with other jobs sharing the machine).
    measured_file = RESULTS / f"proxy_cost_{header['size']}.json"
    measured = json.loads(measured_file.read_text())["cost_vs_baseline"] if measured_file.exists() else {}
    for name, f in facts.items():
        f["cost"] = measured.get(name, f["seconds"] / today_s if f["seconds"] > 0 else math.nan)
    lines = [
        f"Table: `bench/results/rank_table_{header['size']}.jsonl` ({len(header['archs'])} architectures of the "
        f"hybrid space, {min(values['MACs']):.2f}-{max(values['MACs']):.2f} MMACs, budget "
        f"{header['budget_mflops']:g} MMACs, Fashion-MNIST 28x28; made by `{header['command']}` on "
        f"{header['date']}, commit {header['commit']}, torch {header['torch']}, {header['cpus']} CPUs, "
        f"{header['workers']} processes x {header['threads']} thread(s)).",
        f"Reference: {' and '.join(f'`{p}`' for p in ref_parts)}{' (the mean of their accuracies)' if len(ref_parts) > 1 else ''} "
        f"({_recipe(header['columns'][ref_parts[0]], header['val_images'])}); its mean accuracy is {np.nanmean(ref):.4f} "
        f"(a linear classifier with its recipe: {facts[ref_parts[0]]['linear']:.4f}).",
        f"Kendall's tau-b and Spearman's rho against it, with 95% bootstrap intervals ({BOOTSTRAP} resamples "
        f"of the architectures); top-{TOP_K}: how many of the reference's best {TOP_K} the proxy's best "
        f"{TOP_K} hold; tau at equal MACs: Kendall's partial tau with MACs held fixed, how well the proxy "
        "ranks networks of equal cost (what the Pareto mode needs of it); mean val_acc: of the architectures, beside a linear classifier on the pixels trained "
        "with the same recipe; images: training images seen per architecture (images x epochs); seconds: "
        "mean wall time per architecture in the table's run (training and validation, one thread; other "
        "jobs shared the machine); cost vs today: "
        + ("measured alone by `bench/proxy_cost.py` (`bench/results/proxy_cost_cpu.md`) where it was, "
           "else from those seconds." if measured else "from those seconds."),
        "",
        "| proxy | kind | n | tau [95% CI] | tau at equal MACs | rho [95% CI] | top-5 | mean val_acc | linear clf. "
        "| images | s / arch | cost vs today |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    def row(name: str, v: np.ndarray, f: dict) -> tuple | None:
        ok = ~np.isnan(v) & ~np.isnan(ref)
        if ok.sum() < 5:
            return None
        s, r = v[ok], ref[ok]
        tau, rho = _tau(s, r), _rho(s, r)
        partial = _partial_tau(s, r, values["MACs"][ok]) if name != "MACs" else math.nan
        t_lo, t_hi = _interval(s, r, _tau, rng)
        r_lo, r_hi = _interval(s, r, _rho, rng)
        acc = f"{np.mean(s):.4f}" if f["kind"] == "trained" else "-"
        linear = f"{f['linear']:.4f}" if math.isfinite(f.get("linear", math.nan)) else "-"
        recipe = f.get("recipe")
        images = f"{(recipe['images'] or 54000) * recipe['epochs']}" if recipe else "-"
        cost = f"{f['cost']:.2f}x" if math.isfinite(f["cost"]) else "-"
        lines.append(
            f"| `{name}` | {f['kind']} | {ok.sum()} | {tau:.3f} [{t_lo:.2f}, {t_hi:.2f}] | "
            f"{'-' if math.isnan(partial) else f'{partial:.3f}'} | {rho:.3f} "
            f"[{r_lo:.2f}, {r_hi:.2f}] | {_top_overlap(s, r)} | {acc} | {linear} | {images} | "
            f"{f['seconds']:.2f} | {cost} |"
        )
        return (name, f["kind"], int(ok.sum()), tau, rho, f["cost"])

    results = [r for name, v in values.items()
               if name not in ref_parts and name in facts and (r := row(name, v, facts[name]))]
    # The best trained proxy at today's cost, combined with MACs and NASWOT by the same rank
    # aggregation (its cost is the proxy's plus the scores').
    best = _best_within_cost(results)
    if best:
        for parts in ((best[0], "MACs"), (best[0], "naswot", "MACs")):
            name = f"agg({', '.join(parts)})"
            combined = rank_aggregate({p: values[p] for p in parts})
            combined[np.isnan(values[best[0]])] = np.nan
            seconds = facts[best[0]]["seconds"] + (facts["naswot"]["seconds"] if "naswot" in parts else 0.0)
            cost = best[5] + (facts["naswot"]["seconds"] / today_s if "naswot" in parts else 0.0)
            results.append(row(name, combined, {"kind": "trained + aggregate", "seconds": seconds, "cost": cost}))
        # The same run's training losses, read instead of its validation accuracy.
        results.append(row(TSE + best[0], values[TSE + best[0]],
                           {"kind": "training speed", "seconds": facts[best[0]]["seconds"], "cost": best[5]}))
    lines += ["", "Recipes (peak lr, SGD Nesterov, one-cycle schedule, weight decay 5e-4):", ""]
    lines += [f"- `{name}`: {_recipe(header['columns'][name], header['val_images'])}" for name in trained]
    lines += ["", *_convergence(values, facts, ref_parts, ref, header), "", *_choice(results, today)]
    lines += ["", *_ladder_section(header, rows, ref, values["MACs"])]
    return "\n".join(lines) + "\n"


def _recipe(r: dict, val_images: int | None) -> str:
    images = "all training images" if r["images"] is None else f"{r['images']} training images"
    text = (f"{images} x {r['epochs']} epoch(s), batch {r['batch_size']}, lr {r['lr']}, warm-up {r['warmup']}, "
            f"label smoothing {r['label_smoothing']}, {r['val_images'] or val_images or 'all'} validation images")
    if r.get("same_images"):
        text += "; the same images in the same order for every architecture"
    if r.get("seed_offset"):
        text += "; a second, independent draw of images, order and augmentation"
    if r.get("augment") is False:
        text += "; no augmentation"
    return text


def _convergence(values: dict[str, np.ndarray], facts: dict[str, dict], parts: list[str], ref: np.ndarray,
                 header: dict) -> list[str]:
    """Does the reference's ranking still change, and how much of it is noise? tau of each shorter
    or other reference, and of the reference's own accuracy after each epoch, against its final
    ranking; tau between the reference and its replicate, beside what the sampling of its
    validation images alone would allow."""
    reference = parts[0]
    twins = replicates(header, reference)  # reported under its noise
    lines = ["Convergence of the reference:", ""]
    for name, f in facts.items():
        if name not in parts and name not in twins and name.startswith("ref") and f["kind"] == "trained":
            ok = ~np.isnan(values[name]) & ~np.isnan(ref)
            if ok.sum() >= 5:
                lines.append(f"- `{name}` vs the reference: tau {_tau(values[name][ok], ref[ok]):.3f} "
                             f"over {ok.sum()} architectures (mean accuracy {np.mean(values[name][ok]):.4f} vs "
                             f"{np.mean(ref[ok]):.4f})")
    curves = facts[reference]["curves"]
    if curves:
        epochs = min(len(c) for c in curves.values())
        index = sorted(curves)
        final = np.array([curves[i][-1] for i in index])
        per_epoch = [f"epoch {e + 1}: {_tau(np.array([curves[i][e] for i in index]), final):.3f}"
                     for e in range(epochs - 1)]
        lines.append(f"- `{reference}` after each epoch vs its end (one run, the schedule still decaying): "
                     + ", ".join(per_epoch))
    lines += ["", *_reference_noise(values, header, reference)]
    lines += ["", "Reliability of the proxies (the same recipe twice, other images, order and augmentation):", ""]
    for name, f in facts.items():
        recipe = f.get("recipe") or {}
        if recipe.get("seed_offset"):
            twin = next((n for n, g in facts.items() if g.get("recipe") == {**recipe, "seed_offset": 0}), None)
            if twin:
                ok = ~np.isnan(values[name]) & ~np.isnan(values[twin])
                lines.append(f"- `{twin}` vs `{name}`: tau {_tau(values[twin][ok], values[name][ok]):.3f} "
                             f"over {ok.sum()} architectures")
    return lines


def _reference_noise(values: dict[str, np.ndarray], header: dict, reference: str) -> list[str]:
    twins = [n for n in replicates(header, reference) if n != reference]
    lines = ["Noise of the reference (the same recipe from another initialisation and draw of images):", ""]
    rng = np.random.default_rng(0)
    for twin in twins:
        a, b = values[reference], values[twin]
        ok = ~np.isnan(a) & ~np.isnan(b)
        if ok.sum() < 5:
            continue
        lo, hi = _interval(a[ok], b[ok], _tau, rng)
        lines.append(f"- `{reference}` vs `{twin}`: tau {_tau(a[ok], b[ok]):.3f} [{lo:.2f}, {hi:.2f}] over "
                     f"{ok.sum()} architectures (mean accuracy {np.mean(a[ok]):.4f} vs {np.mean(b[ok]):.4f})")
    # Binomial sampling of the validation images alone: two scorings of the same networks on
    # independent validation sets of the reference's size.
    acc = values[reference][~np.isnan(values[reference])]
    n_val = header["columns"][reference].get("val_images") or header["val_images"]
    if n_val and len(acc) >= 5:
        se = np.sqrt(acc * (1 - acc) / n_val)
        taus = [_tau(acc + rng.normal(0, se), acc + rng.normal(0, se)) for _ in range(BOOTSTRAP)]
        lines.append(f"- validation sampling alone ({n_val} images; accuracies span "
                     f"{acc.min():.3f}-{acc.max():.3f}, binomial standard error {np.mean(se):.4f}): two scorings "
                     f"of the same networks would agree at tau {np.mean(taus):.3f} on average")
    return lines


def _ladder_section(header: dict, rows: list[dict], ref: np.ndarray, macs: np.ndarray) -> list[str]:
    """How well each rung of each ladder column ranks architectures, which is what chooses the
    ladder's schedule, eta and screening rung: tau of a rung's accuracy against its own run's top
    (does screening there keep what the top would?) and against the reference, tau at equal MACs,
    and what the climb to the rung costs."""
    ladders = {n: r for n, r in header["columns"].items() if is_ladder(r)}
    lines = ["Per-rung ranking of the ladder:", ""]
    if not ladders:
        names = ",".join(SIZES[header["size"]].ladders)
        return [*lines, (f"No ladder column in the table yet (`python bench/rank_table.py --size {header['size']} "
                         f"--columns {names}`).")]
    n = len(header["archs"])
    by_column: dict[str, dict[int, dict]] = {}
    for r in rows:
        if r["column"] in ladders:
            by_column.setdefault(r["column"], {})[r["arch"]] = r
    lines += [
        ("Each ladder column trains every architecture up a search's fidelity ladder in one run that no rung "
         "stops, and scores it on the same validation images at each rung (and, on a single schedule, between "
         "them, so that one run serves several etas). tau vs its top: Kendall's tau-b of the rung's accuracy "
         "against the same run's top rung, with its 95% bootstrap interval; tau vs reference and tau at equal "
         "MACs: as in the table above; s / arch: mean wall time from the start of the run to the end of the "
         "rung's scoring, what screening at that rung costs (other jobs shared the machine)."),
        "",
    ]
    table, short = [], []
    rng = np.random.default_rng(0)
    for name, recipe in ladders.items():
        got = by_column.get(name, {})
        if len(got) < 5:
            so_far = f"{len(got)} of {n} architectures so far, too few to rank" if got else "no rows yet"
            short.append(f"- `{name}`: {so_far}")
            continue
        names = _rung_names(recipe, next(iter(got.values())))
        points = sorted({k for r in got.values() for k in r["rung_acc"]}, key=int)
        top = _at(got, n, points[-1], "rung_acc")
        for key in points:
            acc = _at(got, n, key, "rung_acc")
            ok = ~np.isnan(acc) & ~np.isnan(ref)
            partial = _partial_tau(acc[ok], ref[ok], macs[ok]) if ok.sum() >= 5 else math.nan
            table.append(
                f"| `{name}` | {names.get(key, '-')} | {key} | {(~np.isnan(acc)).sum()} | "
                f"{'-' if key == points[-1] else _tau_cell(acc, top, rng)} | {_tau_cell(acc, ref, rng)} | "
                f"{'-' if math.isnan(partial) else f'{partial:.3f}'} | {np.nanmean(acc):.4f} | "
                f"{np.nanmean(_at(got, n, key, 'rung_s')):.2f} |"
            )
    if table:
        lines += [("| ladder | rung | images seen | n | tau vs its top [95% CI] | tau vs reference [95% CI] "
                   "| tau at equal MACs | mean val_acc | s / arch |"),
                  "|---|---|---|---|---|---|---|---|---|", *table, ""]
    lines += [*short, *([""] if short else []), "Ladders (their top rung's recipe, and the rungs):", ""]
    lines += [f"- `{name}`: {_recipe(r, header['val_images'])}; {_ladder(r)}" for name, r in ladders.items()]
    return lines


def _at(got: dict[int, dict], n: int, key: str, field: str) -> np.ndarray:
    """Per-architecture values of a ladder row's `field` (`rung_acc`, `rung_s`) at read point `key`
    (NaN where a row is missing)."""
    return np.array([got[i][field].get(key, np.nan) if i in got else np.nan for i in range(n)])


def _tau_cell(score: np.ndarray, ref: np.ndarray, rng: np.random.Generator) -> str:
    """tau of `score` against `ref` with its bootstrap interval, over the architectures that have
    both ("-": fewer than 5)."""
    ok = ~np.isnan(score) & ~np.isnan(ref)
    if ok.sum() < 5:
        return "-"
    lo, hi = _interval(score[ok], ref[ok], _tau, rng)
    return f"{_tau(score[ok], ref[ok]):.3f} [{lo:.2f}, {hi:.2f}]"


def _divisors(recipe: dict) -> list[int]:
    """What a ladder column's top steps are divided by at its read points: eta^k at its rungs, then its reads."""
    return [recipe["eta"] ** k for k in range(recipe["rungs"])] + list(recipe["reads"])


def _rung_names(recipe: dict, row: dict) -> dict[str, str]:
    """The name of each read point of a ladder column's row ("top/9"), keyed as its `rung_acc` is
    (by images seen); points that a small top makes coincide share one key."""
    batch = min(recipe["batch_size"], row["train_images"])  # as `nas.training.Training` takes it
    top = row["images_seen"] // batch
    names: dict[str, list[str]] = {}
    for d in sorted(set(_divisors(recipe)), reverse=True):
        names.setdefault(str(math.ceil(top / d) * batch), []).append("top" if d == 1 else f"top/{d}")
    return {key: " = ".join(n) for key, n in names.items()}


def _ladder(r: dict) -> str:
    """A ladder column's eta, rungs, schedule and other read points, in words."""
    rungs = ", ".join("top" if d == 1 else f"top/{d}" for d in sorted(_divisors(r)[: r["rungs"]], reverse=True))
    text = f"eta {r['eta']}, rungs at {rungs}; "
    text += "the schedule restarts at each rung" if r["restart"] else "one schedule over the top"
    if r["restart"] and not r.get("rewarm", True):
        text += ", at its peak lr after the first (no second warm-up)"
    if r["reads"]:
        text += ", also read at " + ", ".join(f"top/{d}" for d in sorted(r["reads"], reverse=True))
    return text


def _best_within_cost(results: list[tuple]) -> tuple | None:
    """The trained variant with the best tau at no more cost than today's proxy."""
    trained = [r for r in results if r[1] == "trained" and not r[0].startswith("ref")]
    within = [r for r in trained if r[5] <= 1.05]  # 5%: timing noise between equal-work runs
    return max(within, key=lambda r: (round(r[3], 3), -r[5])) if within else None


def _choice(results: list[tuple], today: str | None) -> list[str]:
    best = _best_within_cost(results)
    if not best:
        return []
    best_zc = max((r for r in results if r[1].startswith("zero-cost")), key=lambda r: r[3], default=None)
    macs = next((r for r in results if r[0] == "MACs"), None)
    lines = [f"Best tau at no more cost than `{today}`: `{best[0]}` (tau {best[3]:.3f}, {best[5]:.2f}x its cost)."]
    if best_zc and macs:
        lines.append(f"Best zero-cost score: `{best_zc[0]}` (tau {best_zc[3]:.3f}); MACs alone: tau {macs[3]:.3f}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="cpu")
    parser.add_argument("--table", type=Path, help="default: bench/results/rank_table_<size>.jsonl")
    parser.add_argument("--reference", help="the column taken as truth, or columns joined by '+' (their mean "
                        "accuracy); default: the table's first reference and its replicates")
    parser.add_argument("--doc", type=Path, help="a Markdown file whose marked section is replaced")
    args = parser.parse_args()
    started = time.perf_counter()
    table = args.table or RESULTS / f"rank_table_{args.size}.jsonl"
    header, rows = read_table(table)
    if header is None:
        raise SystemExit(f"{table}: no table (run bench/rank_table.py --size {args.size} first)")
    # Default: the first reference, averaged with its replicates.
    reference = args.reference or "+".join(replicates(header, next(c for c in header["columns"] if c.startswith("ref"))))
    text = report(header, rows, reference)
    text += f"\nMade by `{invocation(__file__)}` in {time.perf_counter() - started:.1f} s.\n"
    publish(text, f"rank_correlation_{header['size']}.md", f"Proxy rank correlation ({header['size']} size)", args.doc,
            "rank-correlation")


if __name__ == "__main__":
    main()
