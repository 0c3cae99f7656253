"""Writes docs/reliability.md: the bad-input tables come from running each case through the real
CLI on files fabricated here; the faults table states what the named tests check.

    python bench/reliability_table.py > docs/reliability.md   (from the repository root; minutes)
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from search_spaces import Arch, SandglassStage, ShuffleStage, Stem, reference

from _harness import Finished, run_command

#: The finished study that the export and resume cases meet (made first, by a real search).
DONE = ["data=synthetic", "study.name=done", "search.n_trials=1", "budget.mflops=1", "proxy.train_fraction=0.3",
        "proxy.on_cpu=null"]
SMALL = reference("shufflenet_v1_g3_0.25x", num_classes=4, in_channels=1, resolution=16)
HUGE_GENOTYPE = SMALL.genotype().replace("_n8_", "_n12345678901234567890_")
#: A width over a million: the genotype used to write it as c1.2e+06, which did not read back.
WIDE_GENOTYPE = Arch(stem=Stem(24), stages=(ShuffleStage(1_200_000, 2, groups=3), SandglassStage(1_200_000, 1)),
                     num_classes=10, in_channels=1, resolution=28).genotype()


def _weights(kind: str) -> Callable[[Path], None]:
    """Replace the finished study's trained weights file with a bad one."""

    def prepare(work: Path) -> None:
        path = next((work / "runs/done/export").glob("trial_*.pt"))
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:200])
        elif kind == "bomb":  # the same archive, its entries deflated: 64 MB of zeros in a few hundred KB
            import zipfile

            import torch

            saved = work / "bomb-src.pt"
            torch.save({"x": torch.zeros(64 << 20, dtype=torch.uint8)}, saved)
            with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
                for entry in src.infolist():
                    dst.writestr(entry.filename, src.read(entry.filename))
            saved.unlink()
        else:
            path.write_bytes(pickle.dumps({"stem.0.0.weight": Exception("not a tensor")}))

    return prepare


def _metrics_of_another_kind(work: Path) -> None:
    """nas-train's metrics.json of the finished study's member, its accuracy and epochs made strings."""
    path = next((work / "runs/done/export").glob("trial_*.metrics.json"))
    path.write_text(json.dumps({**json.loads(path.read_text()), "test_acc": "x", "epochs": "y"}))


# (title, program, arguments, preparation); every case should give one line and exit status 2.
CASES: list[tuple[str, str, list[str], Callable[[Path], None] | None]] = [
    ("unknown space", "nas-search", ["space=foo"], None),
    ("unknown dataset", "nas-search", ["data=foo"], None),
    ("unknown key", "nas-search", ["proxy.epoch=2"], None),
    ("value of the wrong type", "nas-search", ["budget.mflops=lots"], None),
    ("negative epochs", "nas-search", ["data=synthetic", "proxy.epochs=-1"], None),
    ("budget below every architecture", "nas-search", ["data=synthetic", "budget.mflops=0.001"], None),
    ("missing data root", "nas-search", ["data=fashion_mnist", "data.root=missing-folder"], None),
    ("IDX images and labels that disagree in count", "nas-search", ["data=fashion_mnist", "data.root=idx-mismatch"], None),
    ("truncated IDX `.gz`", "nas-search", ["data=fashion_mnist", "data.root=idx-truncated"], None),
    ("corrupt IDX `.gz` (not gzip)", "nas-search", ["data=fashion_mnist", "data.root=idx-corrupt"], None),
    ("corrupt PNG in an image folder", "nas-search", ["data=imagefolder", "data.root=png-corrupt"], None),
    ("truncated PNG in an image folder", "nas-search", ["data=imagefolder", "data.root=png-truncated"], None),
    ("non-square IDX images (28x14)", "nas-search", ["data=fashion_mnist", "data.root=idx-nonsquare"], None),
    ("an IDX test set of another image size", "nas-search", ["data=fashion_mnist", "data.root=idx-testsize"], None),
    ("IDX sizes whose product overflows 64 bits", "nas-search", ["data=fashion_mnist", "data.root=idx-overflow"], None),
    ("IDX files with no images", "nas-search", ["data=fashion_mnist", "data.root=idx-empty"], None),
    ("5 training images in all", "nas-search", ["data=fashion_mnist", "data.root=idx-five"], None),
    ("image folder with one class", "nas-search", ["data=imagefolder", "data.root=one-class"], None),
    ("image folder with an empty class folder", "nas-search", ["data=imagefolder", "data.root=empty-class"], None),
    ("negative resolution, synthetic data", "nas-search", ["data=synthetic", "data.resolution=-3"], None),
    ("negative channels, synthetic data", "nas-search", ["data=synthetic", "data.channels=-1"], None),
    ("resolution 0, synthetic data", "nas-search", ["data=synthetic", "data.resolution=0"], None),
    ("a file where the run folder should be", "nas-search", ["data=synthetic", "output_dir=blocked/run"], None),
    ("non-ASCII study name", "nas-search", ["data=synthetic", "study.name=modèle"], None),
    ("CUDA asked for on a machine without it", "nas-search", ["data=synthetic", "proxy.device=cuda"], None),
    ("proxy.epochs changed on a finished study", "nas-search", [*DONE, "proxy.epochs=2"], None),
    ("malformed storage URL", "nas-search", ["storage.url=sqlite//no-scheme.db"], None),
    ("PostgreSQL without a URL", "nas-search", ["storage=postgres"], None),
    ("unreachable database (password in URL)", "nas-search",
     ["storage=postgres", "storage.url=postgresql://nas:secret@127.0.0.1:9/nas"], None),
    ("unreachable Redis for the journal (password in URL)", "nas-search",
     ["data=synthetic", "storage=journal", "storage.url=redis://:secret@127.0.0.1:9/0"], None),
    ("a refused value with `hydra.run.dir` set", "nas-search", ["data=synthetic", "hydra.run.dir=elsewhere",
                                                                 "proxy.epochs=0"], None),
    ("unreadable architecture YAML", "nas-train", ["bad.yaml", "data=synthetic"], None),
    ("groups that cannot divide the widths", "nas-train", ["groups.yaml", "data=synthetic"], None),
    ("foreign `_target_` in a YAML", "nas-train", ["target.yaml", "data=synthetic"], None),
    ("`repeats: 1000000`", "nas-train", ["million.yaml", "data=synthetic"], None),
    ("a network of 2.3 billion parameters", "nas-train", ["wide.yaml", "data=synthetic"], None),
    ("`repeats: 1000000000000`", "nas-complexity", ["trillion.yaml"], None),
    ("a 5,000-digit repeat count", "nas-complexity", ["digits.yaml"], None),
    ("a billion-laughs YAML (aliases expanding to 387 million entries, 500 bytes)", "nas-complexity",
     ["laughs.yaml"], None),
    ("YAML nested 50,000 deep", "nas-complexity", ["nested.yaml"], None),
    ("a 20-digit repeat count in a genotype", "nas-complexity", [HUGE_GENOTYPE], None),
    ("truncated `trial_NNNN.pt`", "nas-export", DONE, _weights("truncated")),
    ("`trial_NNNN.pt` that weights-only loading refuses", "nas-export", DONE, _weights("pickled")),
    ("a zip-bomb `trial_NNNN.pt` (compressed entries)", "nas-export", DONE, _weights("bomb")),
    ("nas-train's `metrics.json` with a string for its accuracy and epochs", "nas-export", DONE,
     _metrics_of_another_kind),
    ("a dashboard port in use", "nas-dashboard", [*DONE, "dashboard.port=PORT_IN_USE"], None),
    ("a billion-laughs Hydra config in `--config-dir` (aliases expanding to 490 million values, 468 bytes)",
     "nas-search", ["--config-dir", "hydra-cfg", "+grp=laughs", "data=synthetic"], None),
    ("an override nested 50,000 brackets deep", "nas-search", ["data=synthetic", "+x=" + "[" * 50_000 + "]" * 50_000],
     None),
    ("a 5,000-digit number in an override, with `-m`", "nas-search", ["-m", "data=synthetic", "data.pad_crop=" + "9" * 5000],
     None),
    ("a CIFAR batch whose pickle would run a shell command", "nas-search", ["data=cifar10", "data.root=cifar-pwn"], None),
    ("a CIFAR batch of 87 bytes asking NumPy for a 10^9-element array", "nas-search",
     ["data=cifar10", "data.root=cifar-huge"], None),
    ("a CIFAR label of 10^30", "nas-search", ["data=cifar10", "data.root=cifar-label"], None),
    ("a sweep over two storage URLs with passwords", "nas-search",
     ["-m", "data=synthetic", "storage=postgres", "storage.url=postgresql://nas:pw1@127.0.0.1:9/a,postgresql://nas:pw2@127.0.0.1:9/b"],
     None),
]

# (title, program, arguments, the output line that shows it): cases that used to go wrong silently.
WORKING = [
    ("grey 28x28 PNGs, no size or channels given", "nas-search",
     ["data=imagefolder", "data.root=grey28", "study.name=grey", "search.n_trials=1", "budget.mflops=1",
      "proxy.on_cpu=null"], r"imagefolder: .*"),
    ("a width over a million, as a genotype", "nas-complexity", [WIDE_GENOTYPE], r"genotype: .*"),
]


HEADER = """# Reliability: bad input and faults, and what the user sees

## Bad input

Every case below ran through the real command line on files made for it (generated by
`python bench/reliability_table.py`). Each gives one line on stderr, exit status 2, and writes
nothing; `--verbose` (or `HYDRA_FULL_ERROR=1`) shows the traceback instead. Passwords in storage
URLs are shown as `***`. The same cases are tests in `tests/test_reliability.py`,
`tests/test_data.py`, `tests/test_spec.py` and `tests/test_export_dashboard.py`. The CUDA case ran
on a machine without CUDA.
"""

WORKING_HEADER = """
## Input that used to be read wrongly

| input | command | exit | what the user sees | test |
|---|---|---|---|---|"""
WORKING_TESTS = {
    "grey 28x28 PNGs, no size or channels given": "`test_an_image_folder_follows_the_images_size_and_colour_unless_set`",
    "a width over a million, as a genotype": "`test_genotype_round_trips_widths_over_a_million_and_floats_with_many_digits`",
}

LIMITS = """
## Limits

What a typo must not be able to start; each is refused with the field and the allowed range.

| limit | value | override |
|---|---|---|
| units per stage (`repeats`) | 1..64 | none: a spec with more is invalid |
| stages per network | 1..32 | none |
| parameters of a network that `nas-train`, the search and `nas.build_model` build | 100 M, counted from the spec before anything is allocated | `limits.max_mparams=N` on the command line, `build_model(arch, max_mparams=N)` |
| image size read or resized to (`data.resolution`) | 1..1024 (synthetic: 4..1024) | none |
| channels (`data.channels`) | 1 or 3 | none |

Counting a network is analytic and, within these bounds, takes milliseconds
(`test_the_largest_allowed_network_is_counted_within_a_second`).
"""

FAULTS = """
## Faults during a search

| fault | what happens | what the user sees | test |
|---|---|---|---|
| training loss becomes NaN or infinite | the trial is marked FAIL with `failure: TrainingDiverged: training loss became nan in epoch 1`; it does not count toward `search.n_trials`; the search goes on | a warning line `trial failed (1 in a row): TrainingDiverged: ...` | `test_failed_trials_are_recorded_and_the_search_goes_on` |
| CUDA out of memory (simulated on the CPU by raising `torch.cuda.OutOfMemoryError`) | FAIL with `failure: OutOfMemoryError: ...`; the model is dropped and the CUDA cache emptied before the next trial | as above | same test |
| an exception in the model (shape error) or in the data code | FAIL with the exception's type and message | as above | same test, `test_an_exception_in_the_data_code_fails_only_that_trial` |
| a sampled network over `limits.max_mparams` | FAIL with `failure: ConfigError: limits.max_mparams: the architecture has ... M parameters, over the limit ...`, before it is built | as above | `test_a_search_fails_trials_over_the_parameter_limit_with_the_reason` |
| every trial fails | the search stops after `search.max_failures` (10) failures in a row; the study is kept | `error: 10 trials failed in a row (search.max_failures=10); the last: ... The study is kept; fix the cause and re-run to resume.` and exit status 1 | `test_a_study_where_every_trial_fails_stops` |
| the sampler keeps proposing over-budget architectures | stops after `search.max_rejected` (2000) rejections in a row | `error: budget.mflops: the sampler proposed 2000 over-budget architectures in a row (search.max_rejected=2000); raise the budget or the limit`, exit 2; the sweeper the same with `hydra.sweeper.max_rejected` | - |
| Ctrl-C (SIGINT) or SIGTERM during a trial | the current trial is marked FAIL with `failure: interrupted`; `pareto.csv`, `pareto.png` and `export/` are written for what was trained. SIGINT works also where the search inherited it as ignored (a job a script starts with `&`) | `interrupted: 1 of 2 architectures trained; run the same command to resume`, then `interrupted`, exit status 130 | `test_ctrl_c_ends_the_trial_cleanly_and_resume_completes` (foreground and background job) |
| a worker killed with SIGKILL mid-trial | every trial records its process (host, pid namespace, pid, start time). On the same host, the next run (or any worker there) sees that process gone and marks the trial FAIL at once; a trial of another host is marked FAIL once its heartbeat lapses (2 x `storage.heartbeat_s`, default 120 s) and no process of it is alive here. A live worker's trial is never touched. The study ends with exactly `search.n_trials` trained architectures, none twice | a warning `trial 3 marked failed: killed: its process 4242 on HOST ended without finishing it` (or `lost: no heartbeat for over 120 s from its worker on HOST`), the same text as the trial's `failure`; the search goes on without waiting | `test_killed_worker_trial_is_failed_and_resume_reaches_exactly_n`, `test_resuming_after_a_sigkill_fails_the_dead_runs_trial_at_once_and_goes_on`, `test_dead_trials_are_told_from_live_ones_by_host_pid_and_heartbeat` |
| a kill while outputs are written | every output file is written to a temporary file in the same folder and renamed into place, so a reader never sees half a CSV, PNG, YAML, JSON or weights file; a model folder of `nas-export` is built beside its place and swapped in whole | - | `test_export_refuses_bad_weights_naming_the_file_and_leaves_no_folder_behind` |
| output files on a shared filesystem | written files get the mode any new file gets (0666 less the umask: 0644 under umask 022), or keep the mode of the file they replace, so other users, workers and a dashboard under another account can read them | - | `test_atomic_writes_follow_the_umask_and_keep_an_existing_files_mode`, `test_a_searchs_output_files_are_readable_by_others_under_umask_022` |
| resuming a study under a name that holds another search | refused before anything is written | `error: study.name: study 'x' already holds a different search (budget_mflops=20.0); choose another study.name to start a new one` | `test_resume_refuses_a_different_search_under_the_same_name` |
| resuming with other proxy settings | the settings that score a trial (`proxy.*` but `device`, `eval_batch_size` and `zero_cost`; `data.val_fraction`, `split_seed`, `flip`, `pad_crop`) are recorded on the study when it is created; a resume with another value is refused, since its trials could not be compared with those already in the front, and the recorded config is left as it was | `error: proxy.epochs: 3 differs from the 1 that study 'x' was searched with: ...` (see the table above) | `test_resuming_with_another_proxy_is_refused_naming_the_field` |
| a worker killed while pre-screening (its trial RUNNING without a status) | the other workers look for dead trials before every trial, so it is failed with the reason as soon as its process is seen gone, instead of every admission waiting for it and withdrawing | the warning `trial N marked failed: killed: ...` | `test_a_worker_killed_before_its_trial_had_a_status_does_not_stall_the_others` |
| a sweep resumed with another space, input size, classes or budget | refused before any job is launched, as `nas-search` refuses | `error: hydra.sweeper.study_name: study 'odd' already holds a different search (budget_mflops=2.0); choose another hydra.sweeper.study_name to start a new one` | `test_a_sweep_resumed_with_another_budget_is_refused` |
| a sweeper job that returns no number (None, a string, a dict) or calls `sys.exit` | the trial fails with the reason and the sweep goes on; every sweeper trial records its process, so a sweep killed mid-job has its trials failed and their slots trained again when it is resumed | the trial's `failure`: `job returned None; expected 1 finite number(s)`, `the job exited (SystemExit: 3) instead of returning its objective(s)` | `test_jobs_that_return_no_number_or_exit_fail_with_the_reason_and_the_sweep_goes_on` |
| the disk fills while a journal record is written (`storage=journal`) | the record is cut short, without its newline; before the next record is appended (by `nas-search`, `nas-report`, any worker, under the journal's lock) the cut one is removed, so the journal stays readable by Optuna | a warning `...journal.log: removed a record cut short at its end (N bytes; ...)` | `test_a_journal_cut_short_by_a_full_disk_is_repaired_before_the_next_append`, `test_nas_report_on_a_torn_journal_leaves_it_readable` |
| a journal damaged before that repair existed (a record glued onto a cut one) | refused before anything is written | `error: storage.path: runs/x/journal.log is damaged: line 9 begins with 7 bytes of a record cut short, glued to the next one; delete those first 7 bytes of the line to repair it` | `test_a_record_glued_onto_a_torn_one_is_refused_saying_where_and_how` |
| Ctrl-C at a terminal (or SIGINT to the command alone) with built-in workers (`search.workers`) | the parent and each worker are interrupted once (a worker ignores the parent's stop signal that follows the terminal's), each worker's trial is marked FAIL with `failure: interrupted`, the outputs are written from what the study holds (test accuracy is left for the finished search), no worker outlives the command, and the same command resumes | `interrupted: N of M architectures trained; run the same command to resume`, then `interrupted`, exit status 130 | `test_ctrl_c_stops_every_worker_cleanly_and_the_same_command_resumes` (both ways) |
| a second search with a worker index that a live process already searches the study with (two `nas-search` without `search.worker`) | refused before it trains: a worker's index is its sampler seed, so two of one index would train the same architectures | `error: search.worker: worker 0 already searches study w (process 4242 on HOST), and a second with its index would draw the same architectures (allowed: search.worker=2 or above for another search on this study)` | `test_a_second_search_with_a_worker_index_in_use_is_refused` |
| two `nas-train` on one front at once | the first holds a lock on `export/.nas-train.lock` (released with its process, also when killed); the second is refused before it trains anything | `error: study.name: another nas-train is training the front of study 'x' now (it holds .../export/.nas-train.lock); wait for it to finish, and run this again to train what it left` | `test_a_second_nas_train_on_one_front_is_refused_while_the_first_trains` |
| `nas-train` while the search of its study still runs | it warns that the search goes on and trains the front as it stands; when the search ends and writes `export/` again, the YAMLs nas-train trained stay beside their weights, and nas-train exports the members it trained even if a newer trial pushed them off the front | `the search of study x is still running (2 worker(s)): training its front as it stands now (trials 0, 3)`; at the end `trial(s) 3 left the front since nas-train chose them (the search went on); exported all the same` | `test_nas_train_during_a_running_search_exports_what_it_trained_and_keeps_its_files` |
| `kill -9` during an export | the hidden scratch folder (`models/.trial_NNNN.*`) it was building is removed by the next export, once no process holds its lock and it has not changed for a minute; a live export's is left alone | - | `test_scratch_folders_of_a_killed_export_are_removed_and_a_live_ones_kept` |
| the disk fills (or a quota, or a read-only filesystem) while the outputs are written | the file being written is not replaced (no half-written `pareto.png`, no temporary left); the study is kept | `error: cannot write runs/x/pareto.png: No space left on device; the study is kept: free some space, then run the same command again (or nas-report) to write the outputs`, exit 2 | `test_a_disk_full_while_writing_the_outputs_is_one_line_and_the_study_is_kept` |
| a `study.db` cut to 0 bytes (a full disk, a bad copy), met by `nas-search` | refused, and left as it is, once it has been empty for 20 s (a file another worker created a moment ago gets its tables within that time and is waited for); `nas-report` refuses an empty one at once | `error: storage.url: runs/x/study.db is empty (0 bytes), which no study database is: it was cut short or made by hand; move it away to start a new search there` | `test_nas_search_on_a_database_emptied_long_ago_refuses_it_and_leaves_it`, `test_a_fresh_empty_database_is_waited_for_then_refused_unless_its_creator_fills_it`, `test_nas_report_on_an_empty_database_writes_nothing_into_it` |
| a storage password on the command line (`storage.url=postgresql://USER:PASSWORD@...` or `...?password=PASSWORD`, also with `-m`) | the password leaves the command line before Hydra records it and reaches the workers in `NAS_STORAGE_PASSWORD`: it is in no file of the run (multirun.yaml, configs, logs, nas-train's `metrics.json` and model cards, which record the command with it redacted) and in no line printed, a refused start included; a sweep over several URLs with passwords is refused (one variable carries one password) | URLs shown as `postgresql://USER:***@...` | `test_a_multirun_on_postgresql_writes_and_prints_its_password_nowhere`, `test_redact_hides_every_form_of_password`, `test_a_password_in_the_query_leaves_the_command_line_too`, `test_a_sweep_over_urls_with_passwords_is_refused_not_cut_to_one` |

With the journal storage (`storage=journal`) Optuna has no heartbeats: a killed worker's trial is
failed by a run on its own host, but one from another machine stays RUNNING and holds its slot.
Use SQLite or PostgreSQL where workers on several machines may be killed.

## Untrusted files

- `Arch.from_yaml` parses with `yaml.safe_load` (no Python tags) and accepts only
  `_target_: search_spaces.build_network`, checked before anything is imported
  (`test_arch_yaml_cannot_name_another_target_or_python_objects`). Before a spec is built, its
  parser events are checked: aliases (`*name`, with which 500 bytes expand to hundreds of millions
  of entries) are refused, and so is nesting deeper than 16 levels or a file over 1 MB; a value in
  an error message is shown shortened (`test_a_billion_laughs_architecture_is_refused_without_expanding_it`,
  `test_an_architecture_nested_50000_deep_is_one_line`, `test_a_huge_architecture_file_is_refused_before_it_is_read`,
  `test_a_long_value_in_an_architecture_is_shown_shortened`). `hydra.utils.instantiate` on a
  file you did not write imports whatever its `_target_` names: load such files with
  `nas.Arch.from_yaml` instead.
- Weights files are read with `torch.load(..., weights_only=True)`: a file holding Python objects is
  refused with one line, as is a corrupt one or another network's (`nas-export`, `nas.load_model`).
  Before it is read, a file with compressed entries (a zip bomb: `torch.save` writes none) or many
  times the size of its network's tensors is refused, so that loading costs no more memory than
  the file (`test_a_zip_bomb_weights_file_is_refused_before_it_is_inflated`).
- Images are read at their depth: a 16-bit grey PNG is scaled to 8 bits (0..65535 to 0..255),
  where converting it clipped 99% of a dark image's pixels to white
  (`test_16_bit_grey_pngs_are_scaled_to_8_bits_not_clipped`).
- CIFAR's files are Python pickles by design; they are read by an unpickler that builds nothing
  but NumPy arrays, lists, bytes and numbers, so a planted file (`.data/cifar-10-batches-py/` is
  looked in by default) cannot run code: it is refused with one line naming the file and what it asked for,
  as are truncated or mis-laid-out batches and labels out of range. Nor can it ask for memory:
  NumPy's own pickles rebuild an array empty and fill it from the file's bytes, so a call for a
  non-empty one (87 bytes asking for 10^9 elements) is refused, and so are arrays of Python objects
  (`test_a_cifar_file_that_would_run_a_command_is_refused_without_running_it`,
  `test_damaged_cifar_files_are_one_line_naming_the_file`, `test_a_cifar_label_out_of_range_is_refused`).
- Hydra config files of a `--config-dir` are checked before Hydra loads them: a file whose YAML
  aliases would expand to over 100,000 values is refused (counted on the composed graph, where an
  alias is one shared node, so the check itself expands nothing), and on the command line an
  override nested over 32 brackets deep or holding a number of over 100 digits
  (`test_a_billion_laughs_hydra_config_is_refused_before_hydra_expands_it`,
  `test_an_override_too_deep_or_too_long_a_number_is_one_line`).
"""


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _idx_folder(folder: Path, train_labels: int = 60) -> None:
    folder.mkdir()
    for name, array in (("train-images-idx3-ubyte", np.zeros((60, 28, 28))),
                        ("train-labels-idx1-ubyte", np.arange(train_labels) % 10),
                        ("t10k-images-idx3-ubyte", np.zeros((20, 28, 28))),
                        ("t10k-labels-idx1-ubyte", np.arange(20) % 10)):
        _idx(folder / f"{name}.gz", array)


def _image_folder(folder: Path, classes: dict[str, int], mode: str = "RGB", size: tuple[int, int] = (32, 32)) -> None:
    for cls, count in classes.items():
        (folder / cls).mkdir(parents=True)
        for i in range(count):
            Image.new(mode, size, 40 * i % 256).save(folder / cls / f"{i}.png")


def make_inputs(work: Path) -> None:
    """The files the cases read, each wrong in one way."""
    good = SMALL.to_yaml()
    (work / "bad.yaml").write_text("stem: {channels: 24\n")
    (work / "groups.yaml").write_text(good.replace("groups: 3", "groups: 7", 1))
    (work / "target.yaml").write_text(good.replace("search_spaces.build_network", "os.system"))
    (work / "million.yaml").write_text(good.replace("repeats: 8", "repeats: 1000000"))
    (work / "trillion.yaml").write_text(good.replace("repeats: 8", "repeats: 1000000000000"))
    wide = Arch(stem=Stem(24), stages=(ShuffleStage(96_000, 1, groups=1),), num_classes=4, in_channels=1, resolution=16)
    (work / "wide.yaml").write_text(wide.to_yaml())
    _idx_folder(work / "idx-mismatch", train_labels=10)
    _idx_folder(work / "idx-truncated")
    cut = work / "idx-truncated/train-images-idx3-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:40])
    _idx_folder(work / "idx-corrupt")
    (work / "idx-corrupt/t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>404 Not Found</html>")
    for name in ("png-corrupt", "png-truncated"):
        _image_folder(work / name, {"cat": 3, "dog": 3})
    (work / "png-corrupt/dog/1.png").write_bytes(b"this is not a PNG")
    noisy = io.BytesIO()
    Image.effect_noise((32, 32), 50).save(noisy, format="PNG")
    (work / "png-truncated/dog/1.png").write_bytes(noisy.getvalue()[:-200])
    _idx_folder(work / "idx-nonsquare")
    _idx(work / "idx-nonsquare/train-images-idx3-ubyte.gz", np.zeros((60, 28, 14)))
    _idx_folder(work / "idx-testsize")
    _idx(work / "idx-testsize/t10k-images-idx3-ubyte.gz", np.zeros((20, 32, 32)))
    _idx_folder(work / "idx-overflow")
    (work / "idx-overflow/train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)))
    _idx_folder(work / "idx-empty")
    _idx(work / "idx-empty/train-images-idx3-ubyte.gz", np.zeros((0, 28, 28)))
    _idx(work / "idx-empty/train-labels-idx1-ubyte.gz", np.zeros((0,)))
    _idx_folder(work / "idx-five")
    _idx(work / "idx-five/train-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    _idx(work / "idx-five/train-labels-idx1-ubyte.gz", np.arange(5))
    (work / "digits.yaml").write_text(good.replace("repeats: 8", "repeats: " + "9" * 5000))
    levels = "".join(f"  - &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, 10))
    (work / "laughs.yaml").write_text("stem:\n  - &l0 lol\n" + levels + "stages: []\n")
    (work / "nested.yaml").write_text("[" * 50_000)
    _image_folder(work / "one-class", {"cat": 6})
    _image_folder(work / "empty-class", {"cat": 6, "dog": 6, "eel": 0})
    _image_folder(work / "grey28", {"coat": 6, "shirt": 6}, mode="L", size=(28, 28))
    (work / "blocked").write_text("a file, not a folder\n")
    (work / "hydra-cfg" / "grp").mkdir(parents=True)
    hydra_levels = "".join(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]\n" for k in range(1, 9))
    (work / "hydra-cfg" / "grp" / "laughs.yaml").write_text("a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + hydra_levels)
    for name, hostile in (("cifar-pwn", _RunsAShellCommand(work / "pwned")), ("cifar-huge", _HugeArray()),
                          ("cifar-label", None)):
        _cifar_folder(work / name, labels=[10**30] + list(range(9)) if hostile is None else None)
        if hostile is not None:
            (work / name / "data_batch_2").write_bytes(pickle.dumps({b"data": hostile, b"labels": [0]}, protocol=2))


class _RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _HugeArray:
    def __reduce__(self) -> tuple[Any, ...]:
        return (np.zeros(1).__reduce__()[0], (np.ndarray, (10**9,), b"b"))


def _cifar_folder(folder: Path, labels: list[int] | None = None) -> None:
    """The CIFAR-10 python layout: 6 batches of 10 random images."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": b"x", b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
                 b"labels": labels or list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def run(work: Path, program: str, args: list[str]) -> Finished:
    """`program` (`nas-search`, ...) on `args` in `work`, its output captured, in a bare environment
    (PATH and the thread count only): no setting of this shell changes what a user would see."""
    env = {"PATH": "/usr/bin:/bin"}
    if "OMP_NUM_THREADS" in os.environ:  # a shared machine: fewer threads are faster
        env["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]
    return run_command(program.removeprefix("nas-"), args, cwd=work, env=env, check=False)


def _cell(text: str, work: Path) -> str:
    """`text` for a table cell: without the work folder, and a run of one character over 12 long
    shown as the character and its count (`[`x50000)."""
    text = re.sub(r"(.)\1{12,}", lambda m: f"{m.group(1)}x{len(m.group(0))}", text.strip())
    return text.replace(str(work) + "/", "").replace("|", "\\|")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_inputs(work)
        done = run(work, "nas-search", DONE)
        trained = next((work / "runs/done/export").glob("trial_*.yaml"), None) if done.returncode == 0 else None
        if trained is None:
            raise SystemExit(f"the finished study could not be made:\n{done.stderr}")
        if run(work, "nas-train", [str(trained.relative_to(work)), "data=synthetic", "train.epochs=1"]).returncode:
            raise SystemExit("training the finished study's architecture failed")
        print(HEADER)
        print("| input | command | exit | what the user sees (stderr) | files written |")
        print("|---|---|---|---|---|")
        import socket

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = str(listener.getsockname()[1])
        for title, program, args, prepare in CASES:
            if prepare is not None:
                prepare(work)
            args = [a.replace("PORT_IN_USE", port) for a in args]
            before = set(work.rglob("*"))
            result = run(work, program, args)
            written = sorted(str(p.relative_to(work)) for p in set(work.rglob("*")) - before)
            print(f"| {title} | `{program} {_cell(' '.join(args), work)}` | {result.returncode} | "
                  f"`{_cell(result.stderr, work)}` | {', '.join(written) or 'none'} |")
        listener.close()
        print(WORKING_HEADER)
        for title, program, args, pattern in WORKING:
            result = run(work, program, args)
            shown = re.search(pattern, result.stdout + result.stderr)
            print(f"| {title} | `{program} {_cell(' '.join(args), work)}` | {result.returncode} | "
                  f"`{_cell(shown.group(0) if shown else result.stderr, work)}` | {WORKING_TESTS[title]} |")
        print(LIMITS)
        print(FAULTS)


if __name__ == "__main__":
    main()
