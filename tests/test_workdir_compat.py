"""Work directories written before jaxal/ was grouped into sub-packages still
load: tests/data/workdirs_a46cc52 was written by main a46cc52 with
tests/data/make_workdirs.py (a `jaxal` command work directory after embed,
select, balance, train, predict and report; Table 2's cells on tiny offline
data). Today's code must read them as they are, recompute nothing that is
finished, and give the same numbers."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
sys.path.insert(0, DATA)
import make_workdirs  # noqa: E402  pylint: disable=g-import-not-at-top

LEGACY = os.path.join(DATA, "workdirs_a46cc52")
WRITTEN_AT = "/tmp/jaxal-workdirs-a46cc52"  # where make_workdirs.py wrote them


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
  assert rows(os.path.join(legacy, "again.csv")) == \
      rows(os.path.join(legacy, "predictions.csv"))
  with open(os.path.join(wd, "report", "report.json"), "rb") as f:
    old_report = f.read()
  jaxal(legacy, "report", "--labels=labels.csv", "--plot=false",
        "--test_labels=test_labels.csv", "--test_images=test")
  with open(os.path.join(wd, "report", "report.json"), "rb") as f:
    assert f.read() == old_report
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
