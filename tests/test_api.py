"""Searching from Python (`nas.search`, `nas.load_study`) on data held in memory: real images as
tensors or as a Dataset, resume, refusal of other data, and one ConfigError per kind of bad data."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

import nas
from nas.data import in_memory, load_dataset
from nas.errors import ConfigError

FASHION = [Path("/usr/share/datasets/fashion-mnist"), Path(".data/fashion-mnist")]
needs_fashion = pytest.mark.skipif(not any(p.is_dir() for p in FASHION),
                                   reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
#: Small and quick: a search of a few networks under 2 MMACs, the papers' networks left out.
QUICK = ("budget.mflops=2", "search.start_from_references=false", "search.probe_samples=200")


@pytest.fixture(scope="module")
def fashion() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """2,000 training and 300 test images of Fashion-MNIST as uint8 tensors, and their labels."""
    data = load_dataset("fashion_mnist", next((str(p) for p in FASHION if p.is_dir()), None), val_fraction=0.01)
    return data.train.images[:2000, 0], data.train.labels[:2000], data.test.images[:300, 0], data.test.labels[:300]


def _nondominated(points: dict[int, tuple[float, float]]) -> set[int]:
    """Trials no other beats on (higher accuracy, fewer MMACs), by the definition."""
    return {i for i, (acc, macs) in points.items()
            if not any(a >= acc and m <= macs and (a, m) != (acc, macs) for a, m in points.values())}


@needs_fashion
def test_search_on_a_uint8_tensor_of_real_images_resumes_and_refuses_other_data(fashion, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    x, y, x_test, y_test = fashion
    data = {"train": (x, y), "test": (x_test, y_test)}
    r = nas.search(*QUICK, "search.n_trials=3", "study.name=mem", "search.workers=2", data=data, progress=False)

    assert isinstance(r.study, optuna.Study) and r.trained == 3
    frame = r.to_dataframe()
    trained = frame[frame.status == "admitted"]
    assert len(trained) == 3
    points = {int(n): (row.val_acc, row.mmacs) for n, row in trained.iterrows()}
    assert {m.trial for m in r.front} == _nondominated(points)
    assert r.best is not None and r.best.val_acc == max(acc for acc, _ in points.values())
    for m in r.front:  # tested once, on the 300 test images given
        assert m.test_acc is not None and round(m.test_acc * 300, 6) == round(m.test_acc * 300)
        assert m.arch.genotype() == m.genotype and m.arch.resolution == 28 and m.arch.num_classes == 10
    with open(tmp_path / "runs" / "mem" / "pareto.csv") as f:
        assert {int(row["trial"]) for row in csv.DictReader(f)} == {m.trial for m in r.front}
    assert (tmp_path / "runs" / "mem" / "export" / f"trial_{r.best.trial:04d}.yaml").is_file()

    again = nas.search(*QUICK, "search.n_trials=4", "study.name=mem", "search.workers=1", data=data, progress=False)
    assert again.trained == 4
    before = {t.number: t.values for t in r.study.get_trials() if t.values}
    assert {t.number: t.values for t in again.study.get_trials() if t.number in before} == before

    csv_stamp = (tmp_path / "runs" / "mem" / "pareto.csv").stat().st_mtime_ns
    shuffled = {"train": (x, y.roll(1)), "test": (x_test, y_test)}
    with pytest.raises(ConfigError, match=r"^data: study 'mem' was searched on other images or labels \(fingerprint"):
        nas.search(*QUICK, "search.n_trials=5", "study.name=mem", "search.workers=1", data=shuffled, progress=False)
    assert len(again.study.get_trials()) == len(optuna.load_study(study_name="mem", storage=f"sqlite:///{tmp_path}/runs/mem/study.db").trials)
    assert (tmp_path / "runs" / "mem" / "pareto.csv").stat().st_mtime_ns == csv_stamp

    # The finished search, by its name and from its folder moved elsewhere.
    by_name = nas.load_study("mem")
    shutil.copytree(tmp_path / "runs" / "mem", tmp_path / "moved")
    shutil.rmtree(tmp_path / "runs")
    moved = nas.load_study(tmp_path / "moved")
    for loaded in (by_name, moved):
        assert loaded.trained == 4 and [m.trial for m in loaded.front] == [m.trial for m in again.front]
        assert loaded.best == again.best
    assert moved.output_dir == tmp_path / "moved" and moved.exported


class _PilImages(torch.utils.data.Dataset):
    """A map-style Dataset of (PIL image, int) pairs, as torchvision's datasets give them."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return Image.fromarray(self.images[i].numpy()), int(self.labels[i])


@needs_fashion
def test_search_on_a_dataset_of_pil_images_scores_on_its_own_validation_and_test_parts(fashion, tmp_path) -> None:
    x, y, x_test, y_test = fashion
    data = {"train": _PilImages(x[:1500], y[:1500]), "val": _PilImages(x[1500:1537], y[1500:1537]),
            "test": _PilImages(x_test[:41], y_test[:41])}
    r = nas.search(*QUICK, "search.n_trials=2", "search.workers=1", data=data, progress=False,
                   output_dir=str(tmp_path / "pil"), study={"name": "pil"})
    assert r.trained == 2 and r.output_dir == tmp_path / "pil"
    for m in r.front:  # accuracies over the 37 validation and 41 test images given
        assert round(m.val_acc * 37, 6) == round(m.val_acc * 37)
        assert m.test_acc is not None and round(m.test_acc * 41, 6) == round(m.test_acc * 41)


def test_keyword_options_are_the_command_lines_overrides(tmp_path) -> None:
    r = nas.search(*QUICK, data="synthetic", space="shufflenet", budget={"mflops": 1.5}, search={"n_trials": 1, "workers": "1"},
                   proxy={"on_cpu": None, "train_fraction": 0.3}, study={"name": "kw"}, output_dir=str(tmp_path / "kw"),
                   progress=False)
    attrs = r.study.user_attrs
    assert (attrs["space"], attrs["data"], attrs["budget_mflops"]) == ("shufflenet", "synthetic", 1.5)
    assert r.trained == 1 and r.front and all(m.mmacs <= 1.5 for m in r.front)


@pytest.mark.parametrize(("args", "options", "message"), [
    (["space=foo"], {}, "space: 'foo' is not available (allowed: hybrid, mobilenext, shufflenet)"),
    (["proxy.epochs=-1"], {}, "proxy.epochs: -1 is not allowed (allowed: a positive integer)"),
    ([], {"budget": {"mflops": "lots"}}, "budget.mflops: Value 'lots' of type 'str' could not be converted to Float"),
    (["hydra.run.dir=x"], {}, "hydra.run.dir: Hydra's own settings do not apply"),
    (["budget"], {}, "overrides: 'budget' is not KEY=VALUE"),
])
def test_bad_settings_raise_the_command_lines_config_error_and_write_nothing(args, options, message, tmp_path,
                                                                           monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        nas.search(*args, data="synthetic", progress=False, **options)
    assert str(info.value).startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_data_given_twice_is_refused(tmp_path) -> None:
    x = torch.zeros(8, 16, 16, dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"^data: 'data=synthetic' names a dataset, and data= hands one over"):
        nas.search("data=synthetic", data=(x, torch.arange(8) % 2), output_dir=str(tmp_path / "x"))


def test_the_command_line_refuses_data_memory_in_one_line(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "nas", "search", "data=memory"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [(
        "error: data: data=memory is data handed over from Python (nas.search(..., data=(images, labels))); there "
        "are no files to read it from: run this from Python with the data, or name a dataset (data=fashion_mnist, "
        "data=imagefolder data.root=FOLDER, ...)")]
    assert not (tmp_path / "runs").exists()


def test_a_script_that_searches_outside_a_main_guard_stops_at_once_saying_why(tmp_path) -> None:
    """The workers are spawned interpreters, which import the script again: the search there stops
    in one line that names the fix, instead of workers dying until search.max_failures."""
    script = tmp_path / "unguarded.py"
    script.write_text("import torch, nas\n"
                      "x = torch.randint(0, 256, (200, 16, 16), dtype=torch.uint8)\n"
                      "nas.search('data.val_fraction=0.2', 'search.workers=2', data=(x, torch.arange(200) % 2),\n"
                      "           output_dir='out', progress=False)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines.count("nas.search: the search's worker processes import your script, which calls nas.search "
                       'again: call it under `if __name__ == "__main__":`, as for any Python multiprocessing') >= 1
    assert lines[-1].startswith("nas.errors.SearchAborted: worker ") and "stopped the search" in lines[-1]
    assert "starting it again" not in done.stderr and "RuntimeError" not in done.stderr


# -- bad data: one ConfigError each, naming the part and what is wrong ------------------------------

X = torch.randint(0, 256, (40, 12, 12), dtype=torch.uint8)
Y = torch.arange(40) % 4


class _Items(torch.utils.data.Dataset):
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


@pytest.mark.parametrize(("data", "message"), [
    ((X, Y[:30]), "data: labels: 30 labels for 40 images"),
    ((X, Y * 0), "data: this data's training images are all of one class; a classifier needs at least 2"),
    ((X, Y * 2), "data: the training labels skip class(es) 1, 3, 5 of 0..6"),
    ((X, Y - 1), "data: labels: label -1 is negative (allowed: 0..K-1)"),
    ((X, Y.float()), "data: labels: dtype torch.float32 is not allowed (allowed: integers 0..K-1)"),
    ({"train": (X, Y), "val": (X[:5], Y[:5] + 4)}, "data['val']: label 7 is not a class of the training part (its labels are 0..3)"),
    ({"train": (X, Y), "test": (X[:5, :6, :6], Y[:5])},
     "data['test']: images are 1 x 6 x 6, the training images 1 x 12 x 12; every part needs one image size"),
    ((X.float(), Y), "data: images: floating point values lie in 0..255; they must lie in 0..1"),
    ((X.float().div(255).index_fill(0, torch.tensor([3]), float("nan")), Y), "data: images: NaN or infinite values among them"),
    ((X.numpy()[..., None], Y.numpy()), "data: images: shape 40 x 12 x 12 x 1 looks channels-last (N x H x W x C)"),
    ((X[:, :, :10], Y), "data: images: 12x10 is not square"),
    ((X.to(torch.int32) * 2, Y), "data: images: integer values lie in 0..510; they must lie in 0..255"),
    ((X[:, 0, 0], Y), "data: images: shape 40 is not N x C x H x W or N x H x W"),
    (_Items([(X[0], 0), (X[1, :8, :8], 1)]), "data[1]: image is 1 x 8 x 8, item 0's 1 x 12 x 12; every image needs one size"),
    (_Items([(X[0], 0), (X[1], "shirt")]), "data[1]: label 'shirt' is not an integer class 0..K-1"),
    (_Items([X[0]]), "data[0]: is a Tensor, not an (image, label) pair"),
    (_Items([]), "data: the Dataset holds no items"),
    ({"train": (X, Y), "tset": (X, Y)}, "data: a mapping of data needs a 'train' part and may have 'val' and 'test' (got 'train', 'tset')"),
    (42, "data: int is not data"),
    ((["a", "b"], Y[:2]), "data: images: cannot be read as one array"),
])
def test_bad_data_is_one_config_error_naming_what_is_wrong(data, message) -> None:
    with pytest.raises(ConfigError) as info:
        in_memory(data)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_bad_data_given_to_a_search_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="^data: labels: 30 labels for 40 images$"):
        nas.search("budget.mflops=1", data=(X, Y[:30]), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_float_images_in_0_1_and_hw_arrays_are_read_as_the_uint8_images_they_are() -> None:
    as_float = in_memory((X.float() / 255, Y), val_fraction=0.25).train.images
    as_numpy = in_memory((X.numpy(), Y.numpy().astype(np.int32)), val_fraction=0.25).train.images
    assert as_float.dtype == torch.uint8 and as_float.shape[1:] == (1, 12, 12)
    assert torch.equal(as_float, as_numpy)
    assert set(as_float.flatten().tolist()) <= set(X.flatten().tolist())  # no value lost in the round trip
