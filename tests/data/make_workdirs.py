"""Writes the work directories that tests/test_workdir_compat.py reads.

    .venv/bin/python tests/data/make_workdirs.py OUT_DIR

Only the stable interfaces are used (the `jaxal` command, `python3 run.py exp
tables` and `experiments/train_source.py`, the offline images' generator), so
this script runs on any commit; `tests/data/workdirs_a46cc52/` was written by it
on commit a46cc52, the last main before jaxal/ was grouped into sub-packages. A test that reads that folder with today's code checks that work
directories and cell files written before the move still load.

Paths that the commands record (the image folder, the source work directory) are
written relative to OUT_DIR's parent as the command received them; the test runs
the commands from a copy with the same layout.
"""

import csv
import os
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from jaxal.datasets import procedural  # noqa: E402  (a path stable across the move)

K = 5
EXP_FLAGS = ["--table=2", "--target=svm", "--plots=false",
             "--offline_source_classes=8", "--offline_target_classes=5",
             "--offline_source_per_class=24", "--offline_target_per_class=24",
             "--offline_test_per_class=6", "--epochs=2", "--snapshot_every=1",
             "--width=4", "--batch_size=64", "--budgets=6,12", "--seeds=0",
             "--methods=random,entropy_inv_div,coreset"]
SOURCE_FLAGS = ["--dataset=digits", "--width=4", "--epochs=2", "--snapshot_every=1",
                "--batch_size=32"]


def images(folder: str, split: str) -> dict[str, str]:
  """Offline target images as PNGs; returns {relative path: class name}."""
  cfg = procedural.OfflineConfig(
      num_source_classes=4, num_target_classes=K, num_far_classes=K,
      source_train_per_class=2, source_test_per_class=1, target_train_per_class=8,
      target_test_per_class=2, far_train_per_class=2, far_test_per_class=1, seed=0)
  names = procedural.class_names(cfg, "target")
  x, y = procedural.generate(cfg, "target", split)
  truth = {}
  for i in range(len(y)):
    rel = f"g{i % 2}/img{i:03d}.png"
    os.makedirs(os.path.join(folder, os.path.dirname(rel)), exist_ok=True)
    Image.fromarray(x[i]).save(os.path.join(folder, rel))
    truth[rel] = names[y[i]]
  return truth


def sh(*args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT)
  run = subprocess.run([sys.executable, *args], cwd=cwd, env=env, text=True,
                       capture_output=True)
  if run.returncode:
    sys.exit(f"{args} failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}")
  return run.stdout


def answer(wd: str, truth: dict, labels: str) -> None:
  """Appends the true labels of to_label.csv's images to `labels`."""
  with open(os.path.join(wd, "to_label.csv"), newline="") as f:
    asked = [r["path"] for r in csv.DictReader(f)]
  new = not os.path.exists(labels)
  with open(labels, "a", newline="") as f:
    w = csv.writer(f)
    if new:
      w.writerow(["path", "label"])
    w.writerows([p, truth[p]] for p in asked)


def main(out: str) -> None:
  os.makedirs(out)
  sh(os.path.join(ROOT, "experiments", "train_source.py"), "--workdir=source",
     *SOURCE_FLAGS, cwd=out)
  truth = images(os.path.join(out, "pool"), "train")
  test = images(os.path.join(out, "test"), "test")
  with open(os.path.join(out, "classes.txt"), "w") as f:
    f.write("\n".join(sorted(set(truth.values()))) + "\n")
  with open(os.path.join(out, "test_labels.csv"), "w", newline="") as f:
    csv.writer(f).writerows([("path", "label")] + sorted(test.items()))
  cmd = ["-m", "jaxal"]
  sh(*cmd, "embed", "--workdir=wd", "--images=pool", "--source=source", "--chunk=16",
     cwd=out)
  sh(*cmd, "select", "--workdir=wd", "--method=entropy_inv_div", "--budget=12",
     "--seed=0", cwd=out)
  answer(os.path.join(out, "wd"), truth, os.path.join(out, "labels.csv"))
  sh(*cmd, "balance", "--workdir=wd", "--labels=labels.csv", "--classes=classes.txt",
     "--batch=2", cwd=out)
  answer(os.path.join(out, "wd"), truth, os.path.join(out, "labels.csv"))
  sh(*cmd, "train", "--workdir=wd", "--labels=labels.csv", "--target=svm", cwd=out)
  sh(*cmd, "predict", "--workdir=wd", "--images=test", "--out=predictions.csv",
     cwd=out)
  sh(*cmd, "report", "--workdir=wd", "--labels=labels.csv", "--plot=false",
     "--test_labels=test_labels.csv", "--test_images=test", cwd=out)
  sh(os.path.join(ROOT, "experiments", "tables.py"), "--workdir=exp", *EXP_FLAGS,
     cwd=out)
  np.testing.assert_equal(len(truth) > 0, True)


if __name__ == "__main__":
  main(sys.argv[1])
