"""Work directories written before jaxal/ was grouped into sub-packages still
load: tests/data/workdirs_a46cc52 was written by main a46cc52 with
tests/data/make_workdirs.py (a `jaxal` command work directory after embed,
select, balance, train, predict and report; Table 2's cells on tiny offline
data). Today's code must read them as they are, recompute nothing that is
finished, and give the same numbers.

"The same numbers" across CPUs: the folder was written on an Intel Xeon (AVX-512),
and whoever runs this test may have another CPU kind, whose XLA:CPU sums float32
products in another order (vector width, blocking). What the format and the
discrete decisions fix is compared exactly (paths, labels, counts, indices, which
files are rewritten); what float32 arithmetic recomputes here is compared within
`SCORE_ATOL` (see there), never as strings or bytes."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT  # noqa: E402
DATA = os.path.join(ROOT, "tests", "data")
sys.path.insert(0, DATA)
import make_workdirs  # noqa: E402  pylint: disable=g-import-not-at-top

LEGACY = os.path.join(DATA, "workdirs_a46cc52")
WRITTEN_AT = "/tmp/jaxal-workdirs-a46cc52"  # where make_workdirs.py wrote them

# The predicted scores are the SVM's decision values on M_S's features of the
# test images, recomputed here through a width-4 ResNet-18 in float32 and written
# with 6 significant digits. Float32 rounds each product and sum at eps = 1.2e-7
# relative; a sum of n terms whose order changes (another CPU's vector width or
# XLA's routing) moves by about sqrt(n) eps of its magnitude, n <= 9 * 32 = 288
# here, so ~2e-6 per layer, ~1e-5 through the network's 20 layers in quadrature,
# plus the CSV's 6 digits (5e-7 at these scores' size, |score| < 1). Seen: 1e-6
# between this Xeon and a Zen 5, and between XLA's two routings on a Zen 3.
# 1e-4 covers the estimate tenfold and is still 400 times below the scores'
# spread (standard deviation 0.04), so a wrong model, feature or class order fails.
SCORE_ATOL = 1e-4
# The report's floats (imbalance ratio, ACC_t) are float64 functions of integer
# counts: they differ between machines only in their last bits.
REPORT_RTOL = 1e-12


@pytest.fixture
def legacy(tmp_path):
  """A copy of the legacy folder. The command records its image folder and
  source work directory as absolute paths, so the copy's workdir.json says
  where they are now, as moving a work directory by hand requires."""
  out = str(tmp_path / "legacy")
  shutil.copytree(LEGACY, out)
  meta = os.path.join(out, "wd", "workdir.json")
  with open(meta) as f:
    text = f.read()
  assert WRITTEN_AT in text
  with open(meta, "w") as f:
    f.write(text.replace(WRITTEN_AT, out))
  return out


def jaxal(out, *args):
  env = dict(os.environ, PYTHONPATH=ROOT)
  run = subprocess.run([sys.executable, "-m", "jaxal", *args, f"--workdir={out}/wd"],
                       cwd=out, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout + run.stderr[-3000:]
  return run.stdout + run.stderr


def files(folder):
  out = {}
  for d, _, names in os.walk(folder):
    for n in names:
      p = os.path.join(d, n)
      with open(p, "rb") as f:
        out[os.path.relpath(p, folder)] = (f.read(), os.stat(p).st_mtime_ns)
  return out


def rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def assert_same_predictions(got, want):
  """`jaxal predict` CSVs: the same rows, paths, labels and errors exactly,
  scores within SCORE_ATOL."""
  assert [r["path"] for r in got] == [r["path"] for r in want]
  for g, w in zip(got, want):
    assert set(g) == set(w), g["path"]
    assert (g["label"], g["error"]) == (w["label"], w["error"]), g["path"]
    if w["score"] or g["score"]:
      assert abs(float(g["score"]) - float(w["score"])) <= SCORE_ATOL, \
          (g["path"], g["score"], w["score"])


def assert_same_report(got, want):
  """report.json: the same keys, integers and strings exactly, floats within
  REPORT_RTOL."""
  assert set(got) == set(want)
  for k, w in want.items():
    g = got[k]
    if isinstance(w, float):
      assert g == pytest.approx(w, rel=REPORT_RTOL, abs=0), k
    else:
      assert type(g) is type(w) and g == w, k


def test_the_comparisons_refuse_what_differs():
  want = rows(os.path.join(LEGACY, "predictions.csv"))
  assert_same_predictions([dict(r) for r in want], want)
  for change in ({"score": lambda s: f"{float(s) + 2 * SCORE_ATOL:.6f}"},
                 {"label": lambda s: s + "x"}, {"path": lambda s: s + "x"}):
    (key, edit), = change.items()
    bad = [dict(r) for r in want]
    bad[3][key] = edit(bad[3][key])
    with pytest.raises(AssertionError):
      assert_same_predictions(bad, want)
  report = {"acc_t": 30.0, "classes": 5, "imbalance_ratio": 0.26726124191242,
            "class_counts": [["a", 2]]}
  assert_same_report(dict(report, imbalance_ratio=0.26726124191242 * (1 + 1e-14)),
                     report)
  for bad in (dict(report, imbalance_ratio=0.2672613), dict(report, acc_t=40.0),
              dict(report, classes=5.0), dict(report, class_counts=[["a", 3]])):
    with pytest.raises(AssertionError):
      assert_same_report(bad, report)


def test_command_workdir_loads_and_gives_the_same_results(legacy):
  wd = os.path.join(legacy, "wd")
  before = files(wd)
  # select with the recorded flags: nothing to do, nothing rewritten
  jaxal(legacy, "select", "--method=entropy_inv_div", "--budget=12", "--seed=0")
  # train with the same labels: the recorded target is reused, not retrained
  jaxal(legacy, "train", "--labels=labels.csv", "--target=svm")
  after = files(wd)
  for rel in ("embedding.npz", "selection.json", "balance.json"):
    assert after[rel] == before[rel], rel
  target = [k for k in before if k.startswith("target" + os.sep)]
  assert len(target) >= 2
  for k in target:  # current.json is rewritten with the same key; the model not
    assert after[k][0] == before[k][0], k
    assert k.endswith("current.json") or after[k][1] == before[k][1], k
  # predict and report read the old embedding, SVM and source checkpoints
  jaxal(legacy, "predict", "--images=test", "--out=again.csv")
  assert_same_predictions(rows(os.path.join(legacy, "again.csv")),
                          rows(os.path.join(legacy, "predictions.csv")))
  with open(os.path.join(wd, "report", "report.json")) as f:
    old_report = json.load(f)
  jaxal(legacy, "report", "--labels=labels.csv", "--plot=false",
        "--test_labels=test_labels.csv", "--test_images=test")
  with open(os.path.join(wd, "report", "report.json")) as f:
    assert_same_report(json.load(f), old_report)
  # the balancing step reads the recorded batches: the budget (12) is spent
  out = jaxal(legacy, "balance", "--labels=labels.csv", "--classes=classes.txt",
              "--batch=2")
  assert "budget spent" in out
  with open(os.path.join(wd, "balance.json")) as f:
    assert json.load(f)["batches"] == [[7, 12]]
  assert rows(os.path.join(wd, "to_label.csv")) == []


def test_experiment_cells_load_and_nothing_is_recomputed(legacy):
  exp = os.path.join(legacy, "exp")
  before = files(exp)
  env = dict(os.environ, PYTHONPATH=ROOT)
  run = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "tables.py"),
       f"--workdir={exp}", *make_workdirs.EXP_FLAGS],
      cwd=legacy, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  after = files(exp)
  cells = [k for k in before if k.startswith("cells" + os.sep)]
  assert len(cells) == 14
  for k in cells + [k for k in before if k.startswith("cache" + os.sep)]:
    assert after[k] == before[k], f"{k} was rewritten"
  assert set(after) == set(before)
  for k in ("cells.csv", os.path.join("tables", "table_2.md"),
            os.path.join("tables", "table_2.csv")):
    assert after[k][0] == before[k][0], k
