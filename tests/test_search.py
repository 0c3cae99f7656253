"""The search: budget enforcement, Pareto outputs, resume, reproducibility, data hygiene."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import optuna
import pytest
import torch
from hydra.utils import instantiate
from optuna.trial import TrialState
from ptflops import get_model_complexity_info

import nas
import nas.search.objective
from nas.data import Dataset, Split, load_dataset
from nas.errors import ConfigError, DataError
from nas.apps import run_search
from nas.search import RandomSuggests, run_settings
from nas.training import evaluate
from search_spaces import Arch, DataShape, get_space
from .conftest import compose_config


def _study(cfg) -> optuna.Study:
    return optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)


def _trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.user_attrs.get("status") == "admitted"]


@pytest.fixture
def recorded_training(monkeypatch):
    """Every architecture that reaches the trainer, in order."""
    seen: list[Arch] = []
    real = nas.search.objective.Training

    def spy(model, *args, **kwargs):
        seen.append(model.arch)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(nas.search.objective, "Training", spy)
    return seen


def test_budget_is_enforced_before_training(make_cfg, recorded_training) -> None:
    cfg = make_cfg("search.n_trials=4", "budget.mflops=0.8", "search.budget_aware=false")  # the plain space rejects
    result = run_search(cfg, progress=False)
    study = _study(cfg)
    trained = _trained(study)
    rejected = [t for t in study.trials if t.user_attrs.get("status") == "rejected"]
    assert len(trained) == 4 == result.trained
    assert rejected, "a budget this tight must reject some samples"
    assert result.rejected == len(rejected)
    # Independent count (ptflops) of what the trainer saw: within budget, one per trained trial.
    assert len(recorded_training) == 4
    for arch in recorded_training:
        macs, _ = get_model_complexity_info(
            nas.build_model(arch), (arch.in_channels, arch.resolution, arch.resolution),
            as_strings=False, print_per_layer_stat=False, backend="aten",
        )
        assert (macs - arch.num_classes) / 1e6 <= 0.8
    for t in rejected:
        assert t.user_attrs["rejected"] is True and t.user_attrs["macs"] / 1e6 > 0.8
        assert "val_acc" not in t.user_attrs
        # The sampler sees the violation (Optuna 5 constraints, > 0 infeasible).
        assert t.system_attrs["constraints:mmacs_over_budget"] > 0
    for t in trained:
        if t.state == TrialState.COMPLETE:  # (one stopped at a rung has no values)
            assert t.values[1] == pytest.approx(t.user_attrs["macs"] / 1e6)
            assert t.values[0] == t.user_attrs["val_acc"]
            for key in ("img_s", "device", "epochs"):
                assert key in t.user_attrs
        for key in ("macs", "params", "genotype", "arch_yaml", "train_s", "val_acc"):
            assert key in t.user_attrs


def test_pareto_csv_is_exactly_the_nondominated_trained_trials(make_cfg) -> None:
    # keep 0.01: after the first three, a trial goes on only with the best accuracy at the rung yet
    # (when it arrives, or later, trained again, once the rung would promote it).
    cfg = make_cfg("search.n_trials=6", "search.halving.keep=0.01")
    run_search(cfg, progress=False)
    study = _study(cfg)
    assert any(t.state == TrialState.PRUNED for t in _trained(study))  # (so that leaving them out is tested)
    # The front is drawn from the trials that completed the top rung, never from stopped ones: the
    # admitted ones and the stopped networks trained again when their rung promoted them later.
    points = {t.number: (t.user_attrs["val_acc"], t.user_attrs["macs"]) for t in study.trials
              if t.state == TrialState.COMPLETE and t.user_attrs.get("status") in ("admitted", "promoted")}
    expected = {
        n for n, (acc, macs) in points.items()
        if not any(a >= acc and m <= macs and (a > acc or m < macs) for a, m in points.values())
    }
    with open(Path(cfg.output_dir) / "pareto.csv") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["trial"]) for r in rows} == expected
    assert [float(r["mmacs"]) for r in rows] == sorted(float(r["mmacs"]) for r in rows)
    for row in rows:
        arch = Arch.from_yaml(row["yaml"])
        assert nas.complexity(arch).macs == points[int(row["trial"])][1]
        assert arch.genotype() == row["genotype"]
    assert (Path(cfg.output_dir) / "pareto.png").stat().st_size > 10_000
    assert sorted(p.name for p in (Path(cfg.output_dir) / "export").glob("*.yaml")) == sorted(
        f"trial_{n:04d}.yaml" for n in expected
    )


def test_exported_yaml_rebuilds_the_recorded_model(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=2")
    result = run_search(cfg, progress=False)
    attrs = {t.number: t.user_attrs for t in _study(cfg).trials}
    for number, path in result.exported.items():
        model = instantiate(__import__("omegaconf").OmegaConf.load(path))
        macs, params = get_model_complexity_info(
            model, (1, 16, 16), as_strings=False, print_per_layer_stat=False, backend="aten"
        )
        assert macs - model.arch.num_classes == attrs[number]["macs"]
        assert params == attrs[number]["params"]


def test_resume_reaches_exactly_n_trials(make_cfg) -> None:
    first = make_cfg("search.n_trials=2")
    run_search(first, progress=False)
    assert len(_trained(_study(first))) == 2
    more = make_cfg("search.n_trials=4")
    result = run_search(more, progress=False)
    assert result.trained == 4 and len(_trained(_study(more))) == 4
    numbers_before = [t.number for t in _study(more).trials]
    run_search(more, progress=False)  # already complete: nothing new
    assert [t.number for t in _study(more).trials] == numbers_before


def test_resume_refuses_a_different_search_under_the_same_name(make_cfg) -> None:
    run_search(make_cfg("search.n_trials=1"), progress=False)
    with pytest.raises(ConfigError, match="study.name"):
        run_search(make_cfg("search.n_trials=1", "budget.mflops=0.9"), progress=False)


def test_fixed_seed_reproduces_the_sampled_architectures(make_cfg) -> None:
    genotypes = []
    for name in ("a", "b"):
        cfg = make_cfg("search.n_trials=2", "sampler=random", "search.seed=7", name=name)
        run_search(cfg, progress=False)
        genotypes.append([t.user_attrs["genotype"] for t in _study(cfg).trials])
    assert genotypes[0] == genotypes[1]
    other = make_cfg("search.n_trials=2", "sampler=random", "search.seed=8", name="c")
    run_search(other, progress=False)
    assert [t.user_attrs["genotype"] for t in _study(other).trials] != genotypes[0]


def test_an_architecture_trains_alike_whatever_its_trial_number(make_cfg) -> None:
    # Two workers number their trials in the order they ask: the training seed must follow the
    # network, not the number. Trial 1 is trial 0's architecture again (queued with its parameters).
    cfg = make_cfg("search.n_trials=1", "sampler=random")
    run_search(cfg, progress=False)
    first = _study(cfg).trials[0]
    _study(cfg).enqueue_trial(first.params)
    again = make_cfg("search.n_trials=2", "sampler=random")
    run_search(again, progress=False)
    second = _study(again).trials[1]
    assert second.user_attrs["genotype"] == first.user_attrs["genotype"]
    for attr in ("loss_sum", "rung_val_acc"):  # the same images, order and initialisation
        assert second.user_attrs[attr] == first.user_attrs[attr], attr


class _Sealed(Split):
    """A test split that fails any read before it is opened, and counts the reads after."""

    def __getattribute__(self, name: str):
        if name in ("opened", "reads") or name.startswith("__"):
            return object.__getattribute__(self, name)
        if not object.__getattribute__(self, "opened"):
            raise AssertionError("the search read the test split before it ended")
        object.__setattr__(self, "reads", self.reads + 1)
        return object.__getattribute__(self, name)


def test_the_test_split_is_read_only_at_the_end_once_per_front_member(make_cfg, monkeypatch) -> None:
    import nas.apps.jobs

    cfg = make_cfg("search.n_trials=3")
    data = load_dataset("synthetic", resolution=16, channels=1)
    test = _Sealed(data.test.images, data.test.labels)
    object.__setattr__(test, "opened", False)
    object.__setattr__(test, "reads", 0)
    sealed = Dataset(data.name, data.train, data.val, test, data.num_classes, data.mean, data.std)
    real, scored = nas.apps.jobs.measure_test, []

    def at_the_end(study, dataset, *args, **kwargs):
        object.__setattr__(test, "opened", True)  # the loop has ended: from here on the split may be read
        scored.append(real(study, dataset, *args, **kwargs))
        return scored[-1]

    monkeypatch.setattr(nas.apps.jobs, "measure_test", at_the_end)
    result = run_search(cfg, dataset=sealed, progress=False)
    assert result.trained == 3 and result.front
    assert scored == [len(result.front)] and all(m.test_acc is not None for m in result.front)
    accs = _study(cfg).user_attrs["test_acc"]
    assert sorted(accs) == sorted(str(m.trial) for m in result.front)
    # The same split evaluated by hand, one network after the other, gives each recorded accuracy.
    for m in result.front:
        model = nas.build_model(Arch.from_yaml(m.arch_yaml))
        model.load_state_dict(torch.load(Path(cfg.output_dir) / "weights" / f"trial_{m.trial:04d}.pt"))
        by_hand = evaluate(model, data.test, mean=data.mean, std=data.std, device=torch.device("cpu"))
        assert accs[str(m.trial)] == pytest.approx(by_hand)
    # Resumed with nothing left to train: no member is tested twice.
    run_search(cfg, dataset=sealed, progress=False)
    assert scored[-1] == 0


def test_test_scoring_side_by_side_on_the_cpu_matches_one_after_the_other() -> None:
    from nas.results.testing import _evaluate_all

    data = load_dataset("synthetic", resolution=16, channels=1)
    space = get_space("hybrid")
    models = {}
    for number, seed in enumerate((1, 2, 3)):
        torch.manual_seed(seed)
        models[number] = nas.build_model(space(RandomSuggests(seed), DataShape(1, 16, data.num_classes)))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # two scoring threads, whatever the machine
    try:
        accs = _evaluate_all(models, data, torch.device("cpu"))
        assert torch.get_num_threads() == 2  # the process's threads are given back
    finally:
        torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    by_hand = {n: evaluate(m, data.test, mean=data.mean, std=data.std, device=cpu) for n, m in models.items()}
    assert accs == by_hand and len(set(by_hand.values())) == len(models)  # distinct: a mix-up would show


def test_accuracy_objective_stops_trials_on_accuracy_alone(make_cfg) -> None:
    cfg = make_cfg("objective=accuracy", "search.n_trials=8", "sampler=random", "search.halving.min_trials=2",
                   "search.halving.keep=0.3")
    result = run_search(cfg, progress=False)
    study = _study(cfg)
    assert len(study.directions) == 1 and study.metric_names == ["val_acc"]
    states = [t.state for t in study.trials if t.user_attrs.get("status") == "admitted"]
    assert len(states) == 8 == result.trained  # stopped trials were trained (partly) and count
    assert TrialState.PRUNED in states


def test_an_optuna_pruner_sees_each_rung(make_cfg) -> None:
    # A threshold no network reaches at the first rung: every trial is pruned there, by Optuna.
    cfg = make_cfg("objective=accuracy", "search.n_trials=2", "sampler=random")
    cfg.objective.pruner = {"_target_": "optuna.pruners.ThresholdPruner", "lower": 1.01}
    run_search(cfg, progress=False)
    admitted = [t for t in _study(cfg).trials if t.user_attrs.get("status") == "admitted"]
    assert [t.state for t in admitted] == [TrialState.PRUNED] * 2
    first_rung = int(min(admitted[0].user_attrs["rung_val_acc"], key=int))
    assert all(list(t.intermediate_values) == [first_rung] for t in admitted)


def test_budget_below_every_architecture_is_refused_before_writing(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("budget.mflops=0.001")
    with pytest.raises(ConfigError) as info:
        run_search(cfg, progress=False)
    assert info.value.field == "budget.mflops"
    assert "at least" in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_missing_data_says_where_it_looked(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("data=fashion_mnist", f"data.root={tmp_path / 'nothing'}")
    with pytest.raises(DataError) as info:
        run_search(cfg, progress=False)
    message = str(info.value)
    assert str(tmp_path / "nothing") in message and "apt-get install dataset-fashion-mnist" in message
    assert not (tmp_path / "runs").exists()


def test_validation_split_is_carved_from_train_and_stratified() -> None:
    data = load_dataset("synthetic", resolution=16, channels=1, val_fraction=0.2)
    assert len(data.val) == 240 and len(data.train) == 960  # of 1200 training images
    per_class = [int((data.val.labels == k).sum()) for k in range(data.num_classes)]
    assert per_class == [60, 60, 60, 60]


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir() and not Path(".data/fashion-mnist").is_dir(),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_idx_files_read_as_published() -> None:
    data = load_dataset("fashion_mnist")
    assert len(data.train) + len(data.val) == 60_000 and len(data.test) == 10_000
    assert data.train.images.shape[1:] == (1, 28, 28)
    assert sorted(data.test.labels.unique().tolist()) == list(range(10))
    # The dataset's README: the test set has 1,000 images per class.
    assert all(int((data.test.labels == k).sum()) == 1000 for k in range(10))
    assert math.isclose(data.mean[0], 0.286, abs_tol=0.002)  # the commonly quoted mean


def test_trained_trials_carry_zero_cost_scores_and_rejected_ones_do_not(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=2", "budget.mflops=0.8", "proxy.zero_cost=true")  # off by default
    run_search(cfg, progress=False)
    study = _study(cfg)
    for t in _trained(study):
        for key in ("zc_synflow", "zc_naswot", "zc_zico", "zc_s"):
            assert math.isfinite(t.user_attrs[key]), key
    for t in study.trials:
        if t.user_attrs.get("status") == "rejected":
            assert not any(key.startswith("zc_") for key in t.user_attrs)
    off = make_cfg("search.n_trials=1", "proxy.zero_cost=false", name="off")
    run_search(off, progress=False)
    assert not any(key.startswith("zc_") for t in _study(off).trials for key in t.user_attrs)


def test_cpu_proxy_takes_its_own_ladder_batch_learning_rate_and_no_augmentation() -> None:
    cfg = compose_config(["study.name=t"])
    cpu = run_settings(cfg, torch.device("cpu"), seed=0)
    s = cpu.settings
    assert (s.batch_size, s.lr, s.max_train_images, s.epochs, cpu.max_val_images) == (32, 0.4, 40000, 1, 1000)
    assert cpu.top_val_images is None
    assert "1000 validation images at each rung below the top, all at the top" in cpu.note
    assert "batch 32, lr 0.4, no augmentation" in cpu.note
    assert (s.flip, s.pad_crop) == (False, 0)  # the one-epoch top rung shows each image once
    gpu = run_settings(cfg, torch.device("cuda"), seed=0)
    g = gpu.settings
    assert (g.batch_size, g.lr, g.max_train_images, g.epochs, gpu.max_val_images, gpu.note) == (128, 0.1, None, 3, None, "")
    assert gpu.top_val_images is None
    capped = compose_config(["study.name=t", "proxy.max_val_images=500", "proxy.on_cpu.top_val_images=3000"])
    c = run_settings(capped, torch.device("cpu"), seed=0)
    assert (c.max_val_images, c.top_val_images) == (500, 500)  # proxy.max_val_images caps every rung
    assert (g.flip, g.pad_crop) == (True, 2)  # conf/data/fashion_mnist.yaml's
    augmented = compose_config(["study.name=t", "proxy.on_cpu.augment=true", "data.pad_crop=3"])
    a = run_settings(augmented, torch.device("cpu"), seed=0)
    assert (a.settings.flip, a.settings.pad_crop, a.settings.batch_size) == (True, 3, 32)
    assert "no augmentation" not in a.note
    full = compose_config(["study.name=t", "proxy.on_cpu=null"])
    f = run_settings(full, torch.device("cpu"), seed=0).settings
    assert (f.batch_size, f.flip, f.pad_crop) == (128, True, 2)


def test_the_cpu_ladder_scores_the_rungs_below_the_top_on_a_subset_and_the_top_on_all(tmp_path: Path) -> None:
    from .conftest import FAST

    on_cpu = [o for o in FAST if o != "proxy.on_cpu=null"]
    cfg = compose_config([*on_cpu, "study.name=t", f"output_dir={tmp_path}", "search.n_trials=2",
                          "proxy.on_cpu.max_train_images=320", "proxy.on_cpu.max_val_images=7"])
    data = load_dataset("synthetic", resolution=16, channels=1)
    result = run_search(cfg, dataset=data, progress=False)
    assert result.trained == 2
    assert "7 validation images at each rung below the top, all at the top" in result.proxy_note
    for t in _trained(_study(cfg)):
        *lower, top = sorted(t.user_attrs["rung_val_acc"].items(), key=lambda kv: float(kv[0]))
        assert lower and all(round(acc * 7, 9).is_integer() for _, acc in lower)  # k correct of 7
        # The top rung's accuracy is the kept weights' on the whole validation split, by hand.
        model = nas.build_model(Arch.from_yaml(t.user_attrs["arch_yaml"]))
        model.load_state_dict(torch.load(tmp_path / t.user_attrs["weights"]))
        by_hand = evaluate(model, data.val, mean=data.mean, std=data.std, device=torch.device("cpu"))
        assert top[1] == t.user_attrs["val_acc"] == pytest.approx(by_hand) and len(data.val) > 7


def test_references_are_the_first_trials_climb_to_the_top_and_are_queued_once(make_cfg) -> None:
    from search_spaces import mobilenext, shufflenet_v1

    cfg = make_cfg("search.n_trials=3", "search.start_from_references=true", "sampler=random",
                   "search.halving.min_trials=1", "search.halving.keep=0.01")  # every other trial stops early
    result = run_search(cfg, progress=False)
    study = _study(cfg)
    refs = [t for t in study.trials if t.user_attrs.get("reference")]
    assert [t.number for t in refs] == [0, 1] and all(t.state == TrialState.COMPLETE for t in refs)
    assert sorted(study.user_attrs["references"]) == sorted(t.user_attrs["reference"] for t in refs)
    for t in refs:  # the widest multiplier that fits: one hundredth more is over the budget
        name = t.user_attrs["reference"]
        width = float(name.rsplit("_", 1)[1].rstrip("x"))
        build = (lambda w: shufflenet_v1(3, w, 4, 1, 16)) if name.startswith("shufflenet") else (lambda w: mobilenext(w, 4, 1, 16))
        assert nas.complexity(build(width)).mmacs <= 1.0 < nas.complexity(build(width + 0.01)).mmacs
        assert t.user_attrs["genotype"] == build(width).genotype() and "weights" in t.user_attrs
    rows = list(csv.DictReader(open(Path(cfg.output_dir) / "pareto.csv")))
    assert {r["reference"] for r in rows if r["reference"]} == {t.user_attrs["reference"] for t in refs}
    assert all(r["test_acc"] for r in rows)  # every row was trained to the top and tested once
    assert {m.reference for m, _ in result.rows if m.reference} == {t.user_attrs["reference"] for t in refs}
    # Resumed with more trials: the references are not queued again.
    resumed = make_cfg("search.n_trials=4", "search.start_from_references=true", "sampler=random")
    run_search(resumed, progress=False)
    assert len([t for t in _study(cfg).trials if t.user_attrs.get("reference")]) == 2
