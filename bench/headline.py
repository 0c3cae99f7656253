"""Does the search beat hand design at a budget? Search, train the front, compare, in one command.

    bash bench/headline.sh                  # --size cpu without a GPU, --size gpu with one
    python bench/headline.py --size cpu     # the same, by hand
    python bench/headline.py --size cpu --report   # only the table, from what is on disk

Every step runs the real commands in their own processes, under runs/headline-<size>/:
1. `nas-search` with the default sampler (TPE) and, as the control, `nas-search sampler=random`
   with the same number of trained architectures, budget, proxy and data (another seed, so that
   the two do not share their first draws);
2. `nas-train study.name=...` trains the `top_k` most accurate members of each front with the
   full-training recipe below (train + validation, tested once on the test split), and exports
   them (ONNX, CPU latency through onnxruntime, model cards);
3. the papers' networks scaled to the budget at this input (ShuffleNet v1 g=3 and MobileNeXt, the
   largest width multiplier that fits) are trained by `nas-train ARCH.yaml` with the same recipe.
Then the table of test accuracy against MACs goes to docs/RESULTS.md (between its
`headline-<size>` markers), with the device, the wall time of each step and the command. A re-run
continues where it stopped: searches resume their studies and trained models are not trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import ROOT, Size, add_size_argument, replace_section, run_command


@dataclass(frozen=True)
class HeadlineSize(Size):
    n_trials: int
    top_k: int
    search: tuple[str, ...]  # overrides of both searches
    train: tuple[str, ...]  # the full-training recipe (nas-train overrides)


SIZES = {
    # Two 20-architecture searches with the reduced CPU proxy, then up to 4 + 4 front members and 2
    # references trained for 3 epochs on 20,000 of the 60,000 training images, with the batch and
    # peak lr that trained short runs best in the proxy study (docs/proxy-quality.md): about 20
    # minutes on 2 cores.
    "cpu": HeadlineSize(5.0, 20, 4, (), ("train.epochs=3", "train.max_train_images=20000",
                                         "train.batch_size=64", "train.lr=0.4")),
    # The full proxy and recipe on a GPU (not yet run: no device in the sessions so far).
    "gpu": HeadlineSize(40.0, 50, 5, (), ("train.epochs=30",)),
}

DATA = "data=fashion_mnist"


def _run(command: str, *args: str, log: Path) -> float:
    """Run `nas-COMMAND ARGS` in a process of its own, its output after the line `$ ARGS` in `log`;
    its wall seconds."""
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(args)}\n")
    return run_command(command, args, cwd=ROOT, log=log).wall_s


def scaled_references(budget_mflops: float) -> dict[str, object]:
    """The widest ShuffleNet v1 (g=3) and MobileNeXt under the budget at Fashion-MNIST's input,
    by bisection on the width multiplier (MACs grow with it), in steps of 0.01."""
    import nas
    from search_spaces import mobilenext, shufflenet_v1

    builders = {"shufflenet_v1_g3": lambda s: shufflenet_v1(3, s, 10, 1, 28),
                "mobilenext": lambda s: mobilenext(s, 10, 1, 28)}
    found = {}
    for family, build in builders.items():
        low, high = 1, 300  # hundredths
        if nas.complexity(build(low / 100)).mmacs > budget_mflops:
            continue
        while low < high:
            mid = (low + high + 1) // 2
            if nas.complexity(build(mid / 100)).mmacs <= budget_mflops:
                low = mid
            else:
                high = mid - 1
        found[f"{family}_{low / 100:g}x"] = build(low / 100)
    return found


def run(size_name: str, size: HeadlineSize, root: Path, log: Path) -> dict[str, float]:
    """All steps; the wall seconds of each."""
    seconds: dict[str, float] = {}
    common = [DATA, f"budget.mflops={size.budget_mflops:g}", f"search.n_trials={size.n_trials}", *size.search]
    for name, extra in (("search", []), ("random", ["sampler=random", "search.seed=1"])):
        study = [f"study.name=headline-{size_name}-{name}", f"output_dir={(root / name).relative_to(ROOT)}"]
        print(f"{name}: nas-search {' '.join(common + extra + study)}", flush=True)
        seconds[f"{name}: search"] = _run("search", *common, *extra, *study, log=log)
        print(f"{name}: nas-train the front's top {size.top_k}", flush=True)
        seconds[f"{name}: train front"] = _run("train", DATA, *study, f"train.top_k={size.top_k}", *size.train, log=log)
    refs = root / "references"
    refs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name, arch in scaled_references(size.budget_mflops).items():
        path = refs / f"{name}.yaml"
        recipe = _recipe(size.train)
        done = refs / f"{name}.metrics.json"
        if done.is_file() and json.loads(done.read_text()).get("headline_recipe") == recipe:
            continue
        path.write_text(arch.to_yaml())
        print(f"reference {name}: nas-train {path.relative_to(ROOT)}", flush=True)
        _run("train", str(path), DATA, *size.train, log=log)
        metrics = json.loads(done.read_text())
        done.write_text(json.dumps({**metrics, "headline_recipe": recipe}, indent=2) + "\n")
    seconds["references: train"] = time.perf_counter() - started
    return seconds


def _recipe(train: tuple[str, ...]) -> list[str]:
    return sorted(train)


def rows(root: Path) -> list[dict]:
    out = []
    for source in ("search", "random"):
        for path in sorted((root / source / "export").glob("trial_*.metrics.json")):
            m = json.loads(path.read_text())
            speed = _speed(root / source / "models" / path.name.replace(".metrics.json", ""))
            out.append({"source": source, "name": f"trial {m['trial']}", **_fields(m), **speed})
    for path in sorted((root / "references").glob("*.metrics.json")):
        m = json.loads(path.read_text())
        name = path.name.removesuffix(".metrics.json")
        out.append({"source": "reference", "name": name, **_fields(m), **_reference_speed(root / "references", name)})
    return out


def _reference_speed(folder: Path, name: str) -> dict:
    """The trained reference as ONNX, timed as the front's models are (nas.results.onnx_speed);
    measured once and kept in <name>.speed.json."""
    cached = folder / f"{name}.speed.json"
    if not cached.is_file():
        import nas
        from nas.results import export_onnx, load_weights, onnx_speed
        from search_spaces import Arch

        arch = Arch.from_yaml(folder / f"{name}.yaml")
        model = nas.build_model(arch)
        load_weights(model, folder / f"{name}.pt")
        export_onnx(model, arch, folder / f"{name}.onnx")
        cached.write_text(json.dumps(onnx_speed(folder / f"{name}.onnx", arch), indent=2) + "\n")
    speed = json.loads(cached.read_text())
    return {"latency_ms": speed["latency_ms_batch1"], "img_s": speed["throughput_img_s_batch64"],
            "speed_machine": speed["machine"]}


def _fields(m: dict) -> dict:
    return {"test_acc": m["test_acc"], "mmacs": m["mmacs"], "mparams": m["mparams"],
            "proxy": m.get("val_acc_proxy"), "genotype": m["genotype"], "epochs": m["epochs"],
            "train_images": m["train_images"], "device": m["device"], "train_s": m["train_s"]}


def _speed(folder: Path) -> dict:
    try:
        speed = json.loads((folder / "metrics.json").read_text()).get("cpu_speed") or {}
    except (OSError, json.JSONDecodeError):
        return {}
    return {"latency_ms": speed.get("latency_ms_batch1"), "img_s": speed.get("throughput_img_s_batch64"),
            "speed_machine": speed.get("machine")}


def report(size_name: str, size: HeadlineSize, root: Path, seconds: dict[str, float] | None) -> str:
    from nas.results import hypervolume

    table = rows(root)
    if not table:
        raise SystemExit(f"nothing trained under {root} yet: run without --report first")
    meta_path = root / "headline.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if seconds is not None:
        meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores", "device": table[0]["device"], "seconds": seconds}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    lines = [
        f"Made by `bash bench/headline.sh` (`python bench/headline.py --size {size_name}`) on {meta.get('machine', '?')}, "
        f"training on {meta.get('device', '?')}, {meta.get('date', '?')}. Fashion-MNIST, budget "
        f"{size.budget_mflops:g} MMACs, {size.n_trials} trained architectures per search; full-training recipe "
        f"`{' '.join(size.train)}` ({table[0]['epochs']} epochs on {table[0]['train_images']:,} images), the same for "
        "every row; test accuracy measured once per model. CPU speed: the ONNX model in onnxruntime on "
        f"{next((r['speed_machine'] for r in table if r.get('speed_machine')), '?')}, all cores, median of runs "
        "after warm-up.",
        "",
        "| source | model | MMACs | M params | proxy val acc | test acc | CPU ms (batch 1) | CPU img/s (batch 64) | genotype |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(table, key=lambda r: ({"search": 0, "random": 1, "reference": 2}[r["source"]], r["mmacs"])):
        proxy = f"{r['proxy']:.4f}" if r["proxy"] is not None else "-"
        latency = f"{r['latency_ms']:.3f}" if r.get("latency_ms") else "-"
        img_s = f"{r['img_s']:,.0f}" if r.get("img_s") else "-"
        lines.append(f"| {r['source']} | {r['name']} | {r['mmacs']:.2f} | {r['mparams']:.3f} | {proxy} | "
                     f"**{r['test_acc']:.4f}** | {latency} | {img_s} | `{r['genotype'].replace('|', chr(92) + '|')}` |")
    lines += ["", "Hypervolume of each set's test-accuracy front (accuracy x share of the budget saved; "
              "`nas.results.hypervolume`), and the best test accuracy at or below each reference's MACs:", ""]
    from types import SimpleNamespace

    for source in ("search", "random", "reference"):
        points = [r for r in table if r["source"] == source]
        hv = hypervolume([SimpleNamespace(val_acc=p["test_acc"], mmacs=p["mmacs"]) for p in points], size.budget_mflops)
        lines.append(f"- {source}: {len(points)} models, hypervolume {hv:.4f}, best test accuracy "
                     f"{max((p['test_acc'] for p in points), default=float('nan')):.4f}")
    for ref in (r for r in table if r["source"] == "reference"):
        for source in ("search", "random"):
            under = [r for r in table if r["source"] == source and r["mmacs"] <= ref["mmacs"]]
            best = max(under, key=lambda r: r["test_acc"], default=None)
            verdict = (f"{best['test_acc']:.4f} ({best['name']}, {best['mmacs']:.2f} MMACs): "
                       f"{100 * (best['test_acc'] - ref['test_acc']):+.2f} points" if best else "no model at or below it")
            lines.append(f"- at or below {ref['name']} ({ref['mmacs']:.2f} MMACs, {ref['test_acc']:.4f}), {source}: {verdict}")
    if meta.get("seconds"):
        total = sum(meta["seconds"].values())
        lines += ["", "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in meta["seconds"].items())
                  + f"; total {total / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_size_argument(parser, SIZES, default=None, help="default: gpu when CUDA is available")
    parser.add_argument("--report", action="store_true", help="only the table, from what is on disk")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "RESULTS.md")
    args = parser.parse_args()
    if args.size is None:
        import torch

        args.size = "gpu" if torch.cuda.is_available() else "cpu"
    size = SIZES[args.size]
    root = ROOT / "runs" / f"headline-{args.size}"
    root.mkdir(parents=True, exist_ok=True)
    seconds = None if args.report else run(args.size, size, root, root / "headline.log")
    text = report(args.size, size, root, seconds)
    print(text)
    replace_section(args.doc, f"headline-{args.size}", text)


if __name__ == "__main__":
    main()
