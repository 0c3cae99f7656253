"""How noisy measured CPU latency is on a shared machine, and what objective=latency does about it.

    python bench/latency_noise.py [--doc docs/latency.md]      # about 5 minutes on 2 cores

Run it on a machine with nothing else running: the "quiet" condition is the baseline.

Networks: the papers' ShuffleNet v1 and MobileNeXt scaled to 5 and 20 MMACs, and 8 samples of the
hybrid space under 20 MMACs (seeded), all at Fashion-MNIST's 1x28x28. Conditions:

- quiet: nothing else runs;
- loaded: another process trains a network with one thread, as the search's other worker does
  while a worker times its trial (a worker per core is the CPU default).

For each network and condition the script measures latency `--measurements` times as the search
does (`nas.latency`, batch 1, 1 thread, 5 warm-up runs), at 10, 30 and 100 timed runs, in an
order interleaved across networks so that drift touches them all alike. It reports:

- per network: MMACs, the quiet median as a ratio to the first network's (CPU timings are only
  compared within a run), the loaded/quiet ratio, and the coefficient of variation (sd / mean)
  of the repeated measurements of each condition and repeat count, for the median and the
  minimum of the timed runs;
- Kendall's tau between the quiet and the loaded rankings (one loaded measurement against the
  quiet medians, averaged over the measurements), between two quiet measurements, and between
  MACs and quiet latency;
- the exporter check: the TorchScript-exported graph the search times against the torch.export
  graph `nas-export` deploys (`nas.results.export_onnx`), timed alike.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import ROOT, invocation, publish
from scipy.stats import kendalltau

REPEATS = (10, 30, 100)
SHAPE = (1, 28, 28)
LOAD = """
import torch
torch.set_num_threads(1)
from nas.model import build_model
from search_spaces import reference
net = build_model(reference("shufflenet_v1_g3_0.5x", num_classes=10, in_channels=1, resolution=28))
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
print("training", flush=True)
while True:
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
"""


def networks() -> dict[str, object]:
    """The networks timed: scaled references at 5 and 20 MMACs, then hybrid samples under 20."""
    import optuna

    from nas import complexity
    from nas.search.references import scaled_references
    from search_spaces import Budget, get_space
    from search_spaces.constraints import DataShape

    shape = DataShape(*SHAPE[:1], SHAPE[1], 10)
    found: dict[str, object] = {}
    for mflops in (5.0, 20.0):
        found.update(scaled_references(shape, Budget(mflops, None)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    hybrid = get_space("hybrid")
    while len(found) < 12:
        arch = hybrid(study.ask(), shape)
        mmacs = complexity(arch).mmacs
        if 1.0 <= mmacs <= 20.0:
            found[f"hybrid {mmacs:.2f} MMACs"] = arch
    return found


def measure(archs: dict[str, object], measurements: int) -> dict[str, dict[int, list[tuple[float, float]]]]:
    """(median, minimum) ms of each measurement, by network and repeat count, interleaved."""
    from nas.timing import latency

    got: dict[str, dict[int, list[tuple[float, float]]]] = {n: {r: [] for r in REPEATS} for n in archs}
    for _ in range(measurements):
        for repeats in REPEATS:
            for name, arch in archs.items():
                m = latency(arch, repeats=repeats, warmup=5)
                got[name][repeats].append((m.median_ms, m.min_ms))
    return got


def exporter_check(archs: dict[str, object], runs: int = 300) -> dict[str, float]:
    """Median ms of the torch.export graph over the TorchScript graph, timed alike, per network."""
    import numpy as np

    from nas.model import build_model
    from nas.results import export_onnx
    from nas.timing import _export_for_timing, onnx_session, run_times

    images = np.random.default_rng(0).standard_normal((1, *SHAPE), dtype=np.float32)
    ratios = {}
    for name, arch in archs.items():
        model = build_model(arch).eval()
        with tempfile.TemporaryDirectory() as tmp:
            deployed, timed = Path(tmp) / "deployed.onnx", Path(tmp) / "timed.onnx"
            export_onnx(model, arch, deployed)
            _export_for_timing(model, SHAPE, timed, batch_size=1)
            medians = {}
            for _ in range(3):  # alternated, best of three medians each
                for path in (deployed, timed):
                    t = statistics.median(run_times(onnx_session(path, 1), images, warmup=10, repeats=runs))
                    medians[path] = min(medians.get(path, t), t)
        ratios[name] = medians[deployed] / medians[timed]
    return ratios


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measurements", type=int, default=5, help="measurements per network, condition, repeats")
    parser.add_argument("--doc", type=Path, help="also replace the latency-noise section of this doc")
    args = parser.parse_args()
    import onnxruntime
    import torch

    from nas import complexity
    from nas.timing import machine

    started = time.time()
    archs = networks()
    quiet = measure(archs, args.measurements)
    load = subprocess.Popen([sys.executable, "-c", LOAD], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert load.stdout is not None and load.stdout.readline().strip() == "training"
        time.sleep(2.0)
        loaded = measure(archs, args.measurements)
    finally:
        load.kill()
        load.wait()
    exporters = exporter_check(dict(list(archs.items())[:6]))

    names = list(archs)
    macs = {n: complexity(archs[n]).mmacs for n in names}
    quiet30 = {n: statistics.median(m for m, _ in quiet[n][30]) for n in names}
    base = quiet30[names[0]]
    columns = " | ".join(f"CV {c} R={r}" for c in ("quiet", "loaded") for r in REPEATS)
    lines = [
        (f"Made by `{invocation(__file__)}` on {machine()} ({platform.machine()}), torch {torch.__version__}, "
         f"onnxruntime {onnxruntime.__version__}, {time.strftime('%Y-%m-%d')}, in {(time.time() - started) / 60:.1f} "
         f"min. Each cell: {args.measurements} measurements as objective=latency makes them (`nas.latency`, batch 1, "
         "1 thread, 5 warm-up runs, then R timed runs); quiet: nothing else running; loaded: another process "
         "training a network with one thread, as the search's other worker does."),
        "",
        f"| network | MMACs | quiet median, R=30 | loaded / quiet | {columns} | CV of the min, loaded R=30 |",
        "|---|---|---|---|" + "---|" * (2 * len(REPEATS)) + "---|",
    ]
    for i, n in enumerate(names):
        loaded30 = statistics.median(m for m, _ in loaded[n][30])
        first = f"1.00x ({base:.3f} ms)" if i == 0 else f"{quiet30[n] / base:.2f}x"
        cvs = [f"{100 * cv([m for m, _ in runs[n][r]]):.1f}%" for runs in (quiet, loaded) for r in REPEATS]
        lines.append(f"| {n} | {macs[n]:.2f} | {first} | {loaded30 / quiet30[n]:.2f}x | {' | '.join(cvs)} | "
                     f"{100 * cv([lo for _, lo in loaded[n][30]]):.1f}% |")

    def tau(a: dict[str, float], b: dict[str, float]) -> float:
        return float(kendalltau([a[n] for n in names], [b[n] for n in names]).statistic)

    taus_loaded = [tau(quiet30, {n: loaded[n][30][k][0] for n in names}) for k in range(args.measurements)]
    taus_quiet = [tau({n: quiet[n][30][k][0] for n in names}, {n: quiet[n][30][k + 1][0] for n in names})
                  for k in range(args.measurements - 1)]
    ratios = [statistics.median(m for m, _ in loaded[n][30]) / quiet30[n] for n in names]
    lines += [
        "",
        (f"- Kendall's tau, one loaded measurement (R=30) against the quiet medians: mean "
         f"{statistics.mean(taus_loaded):.3f} (min {min(taus_loaded):.3f}) over {args.measurements}; two quiet "
         f"measurements against each other: mean {statistics.mean(taus_quiet):.3f}; MMACs against quiet latency: "
         f"{tau(macs, quiet30):.3f}."),
        f"- Loaded / quiet: {min(ratios):.2f}x to {max(ratios):.2f}x (median {statistics.median(ratios):.2f}x).",
        ("- Exporters (first 6 networks): the torch.export graph's median time over the TorchScript graph's, "
         "best of 3 medians of 300 runs each: ") + ", ".join(f"{n} {r:.3f}x" for n, r in exporters.items()) + ".",
    ]
    text = "\n".join(lines) + "\n"
    publish(text, "latency_noise_cpu.md", "Latency noise on a shared CPU", args.doc, "latency-noise")


if __name__ == "__main__":
    main()
