"""Rendering of the paper's tables from a hand-made cells.csv, and sweep cells."""

import numpy as np
import pytest

from jaxal import metrics
from jaxal.experiments import render, sweep

CSV = """dataset,pool,budget,method,balancing,ensemble,target,seed,acc_t,classes_found,imbalance_ratio,labeled,seconds
cifar100,imbalanced,0,full,0,0,svm,0,50,100,0.8,22834,1
cifar100,imbalanced,500,random,0,0,svm,0,20,90,0.5,500,1
cifar100,imbalanced,500,random,0,0,svm,1,24,92,0.4,500,1
cifar100,imbalanced,1000,random,0,0,svm,0,30,99,0.3,1000,1
cifar100,imbalanced,1000,random,0,0,svm,1,30,97,0.3,1000,1
cifar100,imbalanced,500,entropy_inv_div,0,0,svm,0,25,80,0.9,500,1
cifar100,imbalanced,1000,entropy_inv_div,0,0,svm,0,28,95,0.6,1000,1
cifar100,imbalanced,500,entropy_inv_div,1,0,svm,0,26,85,0.7,500,1
"""

EXPECTED_TABLE_2 = """Table 2. ACC_t, imbalanced pools, before balancing.

| method | stat | cifar100 500 | cifar100 1000 | G_AL |
|---|---|---|---|---|
| random | acc_t | 22.00 ± 2.00 [27.31] | **30.00 ± 0.00** [33.66] | -0.480 [-0.792] |
| entropy_inv_div | acc_t | **25.00** [32.13] | 28.00 [38.94] | -0.470 [-0.739] |
| Full | acc_t | 50.00 [59.49] | 50.00 [59.49] | – |

Mean +- standard deviation over seeds where a method is stochastic; [x]: the paper's published value; bold: best of the column.
"""


@pytest.fixture
def rows(tmp_path):
  path = tmp_path / "cells.csv"
  path.write_text(CSV)
  return sweep.read_csv(str(path))


def build(rows, number, **kw):
  return render.build(number, rows, datasets=["cifar100"], budgets=[500, 1000],
                      methods=["random", "entropy_inv_div"],
                      targets={"cifar100": ("svm",)}, **kw)


def test_markdown_against_hand_made_expectation(rows):
  # G_AL by hand: random (22-50)/50, (30-50)/50 -> mean -0.48;
  # entropy_inv_div (25-50)/50, (28-50)/50 -> -0.47. The paper's G_AL is its
  # whole row's (four datasets), shown for reference.
  assert metrics.global_score([[22, 30]], [50]) == pytest.approx(-0.48)
  got = build(rows, 2, published=True).markdown()
  assert got == EXPECTED_TABLE_2


def test_classes_and_ratio_table_marks_lowest_ratio_and_averages(rows):
  t = build(rows, 4)
  md = t.markdown()
  assert "| random | imbalance_ratio | **0.450 ± 0.050** | **0.300 ± 0.000** | 0.375 |" in md
  assert "| entropy_inv_div | classes_found | 80.0 | 95.0 | 87.5 |" in md
  assert "[" not in md.split("\n\n")[1]  # no published numbers unless asked


def test_missing_cells_render_as_dashes_and_no_summary(rows):
  t = build(rows, 3)  # after balancing: only entropy_inv_div at 500 exists
  md = t.markdown()
  assert "| entropy_inv_div | acc_t | 26.00 | – | – |" in md  # alone: not "best"
  assert "| random | acc_t | – | – | – |" in md


def test_csv_and_latex_carry_the_same_numbers(rows):
  t = build(rows, 2, published=True)
  lines = t.csv().splitlines()
  assert lines[0].startswith("table,method,ensemble,stat,column")
  assert "2,random,0,acc_t,cifar100 500,cifar100,svm,500,22,2,2,27.31,0" in lines
  assert "2,random,0,acc_t,G_AL,,,,-0.48,,,-0.792,0" in lines
  tex = t.latex()
  assert r"\textbf{30.00 $\pm$ 0.00} [33.66]" in tex
  assert r"entropy\_inv\_div" in tex and tex.count(r"\\") >= 4


def test_expand_runs_stochastic_methods_per_seed_and_full_once():
  cells = sweep.expand(datasets=["a"], pool="imbalanced", budgets=[5, 10],
                       methods=["random", "coreset", "margin"], balancing=[False, True],
                       ensemble=[False, True], targets={"a": ("svm",)}, seeds=[0, 1, 2])
  full = [c for c in cells if c.method == sweep.FULL]
  assert len(full) == 1 and full[0].budget == 0
  assert not [c for c in cells if c.method == "random" and c.ensemble]  # +ens = plain
  # random: 2 budgets x 2 balancing x 3 seeds; coreset: x 2 ensembles; margin: once
  assert sum(c.method == "random" for c in cells) == 12
  assert sum(c.method == "coreset" for c in cells) == 24
  assert sum(c.method == "margin" for c in cells) == 8
  assert cells == sorted(cells) and len({c.key for c in cells}) == len(cells)


def test_shards_partition_the_cells():
  cells = sweep.expand(datasets=["a", "b"], pool="balanced", budgets=[5], methods=
                       ["random", "entropy"], balancing=[False], ensemble=[False],
                       targets={"a": ("svm",), "b": ("svm", "finetune")}, seeds=[0, 1])
  parts = [sweep.shard(cells, i, 3) for i in range(3)]
  assert sorted(sum(parts, [])) == cells
  assert all(abs(len(p) - len(cells) / 3) < 1 for p in parts)
  assert sweep.parse_shard("2/3") == (2, 3)
  for bad in ("3/3", "x", "1-2", "-1/2"):
    with pytest.raises(ValueError, match="shard"):
      sweep.parse_shard(bad)


def test_store_writes_atomically_and_csv_round_trips(tmp_path):
  store = sweep.ResultStore(str(tmp_path))
  cell = sweep.Cell("a", "imbalanced", "svm", 5, "random", False, True, 3)
  assert not store.done(cell)
  store.write(cell, {"acc_t": 12.5, "classes_found": 3, "imbalance_ratio": 0.25,
                     "labeled": 5, "seconds": 0.1})
  assert store.done(cell) and not [p for p in (tmp_path / "cells").iterdir()
                                   if p.name.startswith(".tmp-")]
  rows = sweep.read_csv(store.write_csv())
  assert rows == [{"dataset": "a", "pool": "imbalanced", "budget": 5,
                   "method": "random", "balancing": 0, "ensemble": 1, "target": "svm",
                   "seed": 3, "acc_t": 12.5, "classes_found": 3,
                   "imbalance_ratio": 0.25, "labeled": 5, "seconds": 0.1,
                   "rounds": 1}]
  np.testing.assert_equal(store.read(cell)["acc_t"], 12.5)
  iterative = sweep.Cell("a", "imbalanced", "svm", 5, "random", False, True, 3, 2)
  assert iterative.key == cell.key + "__r2" and iterative != cell


def test_time_left_is_estimated_per_kind_of_cell():
  full = sweep.Cell("a", "imbalanced", "finetune", 0, "full", False, False, 0)
  small = [sweep.Cell("a", "imbalanced", "finetune", 5, "random", False, False, s)
           for s in range(4)]
  svm = sweep.Cell("a", "imbalanced", "svm", 5, "random", False, False, 0)
  svm_kind, ft_kind = sweep._kind(svm), sweep._kind(small[0])
  # A kind's first cell (compilations) is left out: the median of 2, 4, 3 is 3.
  times = {sweep._kind(full): [80.0], ft_kind: [50.0, 2.0, 4.0, 3.0]}
  assert sweep._estimate(small, times) == (pytest.approx(12), 0)
  assert sweep._estimate(small + [full], times, first_kind=ft_kind) == \
      (pytest.approx(92), 0)
  # The SVM kind has no finished cell: counted as untimed, not guessed.
  assert sweep._estimate(small + [svm], times) == (pytest.approx(12), 1)
  assert sweep._progress(small + [svm], times) == \
      "~0:12 left + 1 cells of a kind not yet timed"
  # The run's first cell paid for M_S: alone it gives no rate for its kind.
  assert sweep._progress([svm], {svm_kind: [300.0]}, first_kind=svm_kind) == \
      "estimating time left"
  assert sweep._progress([svm], {svm_kind: [300.0, 1.0]},
                         first_kind=svm_kind) == "~0:01 left"
  assert sweep._estimate([], times) == (0, 0)
  assert sweep._progress(small, {}) == "estimating time left"


def test_first_run_progress_says_estimating_until_the_rate_is_known(tmp_path,
                                                                    monkeypatch):
  """A first run: the first cell trains M_S (100 s), the others take 1 s each;
  the time left must come from the 1 s cells, not from the first one."""
  cells = [sweep.Cell("a", "imbalanced", "svm", 5, "random", False, False, s)
           for s in range(6)]
  costs = iter([100.0, 1.0, 1.0, 1.0, 1.0, 1.0])
  now = [0.0]
  monkeypatch.setattr(sweep.time, "perf_counter", lambda: now[0])

  def compute(cell):
    now[0] += next(costs)
    return {"acc_t": 1.0, "classes_found": 1, "imbalance_ratio": 1.0}

  lines = []
  sweep.run(cells, sweep.ResultStore(str(tmp_path)), compute, log=lines.append)
  assert lines[0].endswith("estimating time left)"), lines[0]
  assert lines[1].endswith("~0:04 left)"), lines[1]  # 4 cells at 1 s
  assert lines[2].endswith("~0:03 left)"), lines[2]
  assert lines[-1].endswith("~0:00 left)"), lines[-1]
