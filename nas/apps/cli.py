"""Command-line entry points. They parse and wire only; the engine is callable without them.

Every user error (bad config, missing data, invalid spec) becomes one line on stderr and exit
status 2; `--verbose` or HYDRA_FULL_ERROR=1 shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_spaces import Arch, reference, references

from ..attrs import TrialAttr
from ..complexity import Complexity, complexity
from ..errors import ConfigError, report_user_errors
from ..secrets import redact
from .hydra_app import quiet_optuna, run_hydra_app

__all__ = ["COMMANDS", "complexity_main", "dashboard_main", "export_main", "load_arch", "report_main", "search_main",
           "train_main"]


def load_arch(name_or_path: str, input_size: Sequence[int] | None = None) -> tuple[str, Arch]:
    """An Arch from a reference name, an architecture YAML file, or a genotype string."""
    if name_or_path in references():
        if input_size is None:
            return name_or_path, reference(name_or_path)
        channels, height = input_size[0], input_size[1]
        return name_or_path, reference(name_or_path, in_channels=channels, resolution=height)
    if "|" in name_or_path and not Path(name_or_path).exists():
        return "genotype", Arch.from_genotype(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            "NAME_OR_YAML",
            f"{name_or_path!r} is neither a reference network, an architecture YAML file nor a "
            "genotype (list the references with: nas-complexity)",
        )
    return path.stem, Arch.from_yaml(path)


def _input_size(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ConfigError("--input-size", f"{text!r} is not C,H,W with positive integers (e.g. 3,224,224)")
    return values  # type: ignore[return-value]


def _complexity_record(name: str, arch: Arch, result: Complexity) -> dict[str, Any]:
    return {
        "name": name,
        "genotype": arch.genotype(),
        "input_size": list(result.input_size),
        "macs": result.macs,
        "params": result.params,
        "mmacs": round(result.mmacs, 3),
        "mparams": round(result.mparams, 4),
        "parts": dict(result.parts),
    }


def complexity_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nas-complexity",
        description="Multiply-adds (the papers' FLOPs) and parameters of a network, counted "
        "from its spec. Without NAME_OR_YAML: the table of all reference networks.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME_OR_YAML",
                        help="a reference name (see the table), an architecture YAML, or a genotype")
    parser.add_argument("--input-size", metavar="C,H,W",
                        help="input size (default: the spec's own; 3,224,224 for references)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)

    def run() -> None:
        size = _input_size(args.input_size)
        if args.name is None:
            rows = []
            for name in references():
                _, arch = load_arch(name, size)
                rows.append(_complexity_record(name, arch, complexity(arch, size)))
        else:
            name, arch = load_arch(args.name, size)
            rows = [_complexity_record(name, arch, complexity(arch, size))]
        if args.json:
            print(json.dumps(rows[0] if args.name else rows, indent=2))
            return
        print(f"{'network':<26} {'input':>11} {'MMACs':>9} {'Mparams':>8}")
        for row in rows:
            size_text = "x".join(map(str, row["input_size"]))
            print(f"{row['name']:<26} {size_text:>11} {row['mmacs']:>9.1f} {row['mparams']:>8.2f}")
        if args.name:
            print(f"genotype: {rows[0]['genotype']}")
            parts = ", ".join(f"{part} {macs / 1e6:.2f}" for part, macs in rows[0]["parts"].items())
            print(f"MMACs by part: {parts}")

    report_user_errors(run, verbose=args.verbose)


def _print_table(rows: Sequence[tuple[Any, bool]]) -> None:
    """The front (and the reference networks, marked): validation and, once measured, test
    accuracy; measured CPU milliseconds too where the search timed its networks."""
    timed = any(c.latency_ms is not None for c, _ in rows)
    print(f"{'trial':>5} {'val_acc':>8} {'test_acc':>8} {'MMACs':>8} {'Mparams':>8}{'  CPU ms' if timed else ''}  genotype")
    for c, on_front in rows:
        test = "-" if c.test_acc is None else f"{c.test_acc:.4f}"
        ms = ("" if not timed else f" {'-':>7}" if c.latency_ms is None else f" {c.latency_ms:>7.3f}")
        mark = f"  [reference {c.reference}{'' if on_front else ', not on the front'}]" if c.reference else ""
        print(f"{c.trial:>5} {c.val_acc:>8.4f} {test:>8} {c.mmacs:>8.2f} {c.mparams:>8.3f}{ms}  {c.genotype}{mark}")


def _print_front(result: Any) -> None:
    minutes, seconds = divmod(result.wall_s, 60)
    print(
        f"\nstudy {result.study_name}: {result.trained} trained, {result.rejected} rejected (over budget; "
        f"{100 * result.inside_budget:.0f}% of samples inside), {result.failed} failed, {result.pruned} stopped early"
        f"{f', {result.prescreened} prescreened out' if result.prescreened else ''}; "
        f"{int(minutes)}m{seconds:04.1f}s on {result.device}"
    )
    if result.proxy_note:
        print(f"note: {result.proxy_note}")
    if not result.front:
        print("no trained architecture yet")
        return
    against = "measured CPU latency" if result.axis == TrialAttr.LATENCY_MS else "MACs"
    print(f"\nPareto front ({len(result.front)} architectures, validation accuracy vs {against}; test accuracy "
          "measured once, at the end):")
    _print_table(result.rows)
    out = result.output_dir
    print(f"\nwritten: {out / 'pareto.csv'}, {out / 'pareto.png'}, {out / 'export'}/ ({len(result.exported)} YAML)")


def search_main() -> None:
    """`nas-search`: a budgeted search (Hydra app; see conf/search.yaml)."""
    from .jobs import run_search

    quiet_optuna()

    def task(cfg: Any) -> float:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        result = run_search(cfg)
        _print_front(result)
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            from .multirun import write_job_summary

            write_job_summary(result, cfg, Path(hydra_cfg.runtime.output_dir))
        return result.hypervolume

    run_hydra_app("search", task)


def train_main() -> None:
    """`nas-train ARCH.yaml [overrides]`: full training of an exported architecture;
    `nas-train study.name=NAME [overrides]`: of the study's Pareto front, exported as models."""
    command = redact(" ".join(["nas-train", *sys.argv[1:]]))  # recorded in metrics.json and the model card
    if len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        sys.argv[1] = f"arch={sys.argv[1]}"
    quiet_optuna()

    def task(cfg: Any) -> float:
        from ..results import train_front, train_full

        if not cfg.arch:
            trained = train_front(cfg, command=command)
            print(f"\n{'trial':>5} {'test_acc':>8} {'proxy':>8} {'MMACs':>8} {'Mparams':>8}  genotype")
            for m in trained:
                print(f"{m['trial']:>5} {m['test_acc']:>8.4f} {m['val_acc_proxy']:>8.4f} {m['mmacs']:>8.2f} "
                      f"{m['mparams']:>8.3f}  {m['genotype']}")
            print(f"written: {Path(cfg.output_dir) / 'export'}/ (weights, metrics), {Path(cfg.output_dir) / 'models'}/")
            return float(trained[0]["test_acc"]) if trained else 0.0
        metrics = train_full(cfg, command=command)
        print(
            f"{Path(cfg.arch).name}: test accuracy {metrics['test_acc']:.4f} after {metrics['epochs']} epochs "
            f"({metrics['mmacs']:.2f} MMACs, {metrics['mparams']:.3f} M params, {metrics['train_s']:.0f}s on "
            f"{metrics['device']})\nwritten: {metrics['weights']}, {Path(cfg.arch).with_suffix('.metrics.json')}"
        )
        return float(metrics["test_acc"])

    run_hydra_app("search", task)


def report_main() -> None:
    """`nas-report study.name=...`: the front as a table, pareto.csv/png, export/, hypervolume."""
    quiet_optuna()

    def task(cfg: Any) -> float:
        from ..results import report_front

        r = report_front(cfg)
        c, o = r.counts, r.outcome
        print(f"study {o.study_name}: {c['trained']} trained, {c['rejected']} rejected, {c['failed']} failed, "
              f"{c['pruned']} pruned, {c['running']} running; budget {o.budget_mflops:g} MMACs")
        _print_table(o.rows())
        saved = ("time saved, reference: 0 accuracy at the slowest trained network" if o.axis == TrialAttr.LATENCY_MS
                 else "MACs saved, reference: 0 accuracy at the budget")
        print(f"hypervolume (accuracy x {saved}): {o.hypervolume:.4f}")
        print("reference networks at this input size: " + ", ".join(f"{n} {m:.2f}" for n, m in r.references))
        print(f"written: {r.output_dir / 'pareto.csv'}, {r.output_dir / 'pareto.png'}, {r.output_dir / 'export'}/")
        return o.hypervolume

    run_hydra_app("search", task)


def export_main() -> None:
    """`nas-export study.name=...`: deployable folders (spec, weights, ONNX, card) for the front."""
    quiet_optuna()
    command = redact(" ".join(["nas-export", *sys.argv[1:]]))  # recorded in metrics.json and the model card

    def task(cfg: Any) -> int:
        from ..results import export_models

        folders = export_models(cfg, command=command)
        for folder in folders:
            trained = "trained" if (folder / "weights.pt").is_file() else "untrained (run nas-train first)"
            print(f"{folder}: arch.yaml, model.onnx, metrics.json, README.md; {trained}")
        return len(folders)

    run_hydra_app("search", task)


def dashboard_main() -> None:
    """`nas-dashboard study.name=...`: optuna-dashboard on the study's storage and artifacts."""
    quiet_optuna()

    def task(cfg: Any) -> None:
        try:
            from optuna_dashboard import run_server
        except ImportError:
            raise ConfigError("dashboard", "optuna-dashboard is not installed: pip install 'budget-nas[dashboard]'") from None
        from optuna.artifacts import FileSystemArtifactStore

        from ..search import open_finished_study

        study = open_finished_study(cfg)
        url = f"http://{cfg.dashboard.host}:{cfg.dashboard.port}/dashboard/studies/{study._study_id}"
        _check_port(cfg.dashboard.host, cfg.dashboard.port)
        print(f"study {study.study_name}: {url}  (Ctrl-C to stop)")
        run_server(study._storage, host=cfg.dashboard.host, port=cfg.dashboard.port,
                   artifact_store=FileSystemArtifactStore(cfg.artifact_dir))

    run_hydra_app("search", task)


def _check_port(host: str, port: int) -> None:
    """Refuse a dashboard port that another program listens on, before the server starts (it would
    fail there with a traceback)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError("dashboard.port", f"{host}:{port} is in use by another program ({err.strerror}); "
                                                "choose another dashboard.port") from None


#: `python -m nas <command> [arguments]`: the entry points by the name of their command.
COMMANDS = {"complexity": complexity_main, "search": search_main, "train": train_main, "report": report_main,
            "export": export_main, "dashboard": dashboard_main}
