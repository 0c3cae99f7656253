"""bench/headline.py's report, from a results file written here: the hypervolumes and gaps it
prints are checked against areas computed by hand, not against the code that makes them."""

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def headline(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import headline

    yield headline
    sys.modules.pop("headline", None)


def _row(trial, mmacs, test, reference="", on_front=True):
    return {"trial": trial, "reference": reference, "on_front": on_front, "val_acc": test + 0.01,
            "test_acc": test, "mmacs": mmacs, "genotype": f"g{trial}"}


def test_report_hypervolumes_and_gaps_by_hand(headline, tmp_path, monkeypatch):
    path = tmp_path / "headline_cpu.jsonl"
    search = [_row(2, 1.0, 0.80), _row(3, 2.5, 0.90), _row(0, 4.5, 0.86, "shufflenet_v1_g3_0.37x"),
              _row(1, 4.9, 0.84, "mobilenext_0.34x", on_front=False)]
    random = [_row(2, 2.0, 0.85), _row(4, 3.0, 0.70, on_front=False),
              _row(0, 4.5, 0.86, "shufflenet_v1_g3_0.37x")]
    run = {"seed": 0, "date": "2026-12-03", "machine": "x, 2 cores"}
    lines = [{**run, "arm": "search", "rows": search, "wall_s": 300.0},
             {**run, "arm": "random", "rows": random, "wall_s": 120.0}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setattr(headline, "results_file", lambda size: headline.ResultsFile(path, key=("seed", "arm")))
    size = headline.HeadlineSize(5.0, 20, 1, ())

    text = headline.report("cpu", size)

    # Budget 5 MMACs, reference point (1, 0): the search's members at 0.2 and 0.5 of the budget,
    # 0.80 * (0.5 - 0.2) + 0.90 * (1 - 0.5) = 0.69; random's one front member 0.85 * (1 - 0.4) =
    # 0.51 (its member off the front is not counted, nor its own copy of a reference); the
    # references, at 0.9 and 0.98, the second dominated: 0.86 * (1 - 0.9) = 0.086.
    assert "- search: 0.6900; 0.6900 ± 0.0000" in text
    assert "- random: 0.5100; 0.5100 ± 0.0000" in text
    assert "- references: 0.0860; 0.0860 ± 0.0000" in text
    assert "- search - random, paired by seed: +0.1800" in text
    # Best at or below ShuffleNet's 4.5 MMACs: 0.90 against 0.86; random's 0.85 against 0.86.
    assert "shufflenet_v1_g3_0.37x, search: seed 0: 0.9000 vs 0.8600 (+4.00)" in text
    assert "shufflenet_v1_g3_0.37x, random: seed 0: 0.8500 vs 0.8600 (-1.00)" in text
    assert "Wall time: random-s0 2.0 min, search-s0 5.0 min; total 7.0 min." in text
