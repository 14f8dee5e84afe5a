"""`jaxal search`: the K nearest unlabeled images by an example image (pool
path or a file the source embeds) or by text (a SigLIP source), against a
brute force; labeled images, the example itself and dedupe's set-aside copies
never returned; the matches' labels accepted by the later steps; bad requests
refused by flag."""

import os

import numpy as np

from jaxal.cli import search
from jaxal.cli.workdir import Workdir
from tests.cli import label_fixture as F
from tests.cli.test_cli import jaxal, ok, read_csv, write_csv


def cosines(feats, q):
  f = feats.astype(np.float64)
  f /= np.linalg.norm(f, axis=1, keepdims=True)
  return f @ (q / np.linalg.norm(q))


def test_nearest_is_a_brute_force_with_ties_to_the_lower_index():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 8)).astype(np.float32)
  x[10] = x[20] * 3  # same direction: a tie
  q = x[20].astype(np.float64)
  allowed = np.ones(300, bool)
  allowed[[20, 5]] = False
  idx, sims = search.nearest(x, q, allowed, 6, rows=64)
  ref = cosines(x, q)
  ref[~allowed] = -np.inf
  want = np.lexsort((np.arange(300), -ref))[:6]
  np.testing.assert_array_equal(idx, want)
  np.testing.assert_allclose(sims, ref[want], rtol=1e-12)
  assert idx[0] == 10 and 20 not in idx and 5 not in idx


def test_search_by_example_in_the_command(tmp_path):
  wd, truth, classes = F.make(str(tmp_path))
  pool = Workdir(wd).pool()
  example = pool.paths[7]
  ok("search", f"--workdir={wd}", f"--image={example}", "--top=5")
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  feats = np.asarray(pool.features)
  ref = cosines(feats, feats[7].astype(np.float64))
  ref[7] = -np.inf
  want = np.lexsort((np.arange(len(ref)), -ref))[:5]
  assert [r["path"] for r in rows] == [pool.paths[i] for i in want]
  assert [float(r["score"]) for r in rows] == \
      [float(f"{v:.6g}") for v in ref[want]]
  # the example's class comes back first (clustered features)
  assert truth[rows[0]["path"]] == truth[example]
  # answers to the matches are accepted; labeled images are not returned again
  labels = tmp_path / "labels.csv"
  write_csv(labels, [[r["path"], truth[r["path"]]] for r in rows[:3]])
  ok("search", f"--workdir={wd}", f"--image={example}", "--top=5",
     f"--labels={labels}", f"--classes={classes}")
  again = [r["path"] for r in read_csv(os.path.join(wd, "to_label.csv"))]
  assert not set(again) & {r["path"] for r in rows[:3]}
  assert again[:2] == [r["path"] for r in rows[3:5]]
  ok("train", f"--workdir={wd}", f"--labels={labels}", f"--classes={classes}",
     "--target=svm")
  # bad requests, by flag
  for args, words in ((("--top=3",), "give one of --text and --image"),
                      ((f"--image={example}", "--text=a cat"), "give one of"),
                      ((f"--image={example}", "--top=0"), "--top"),
                      (("--image=nowhere.png",), "--image"),
                      (("--text=a cat",), "--text")):
    code, _, err = jaxal("search", f"--workdir={wd}", *args)
    assert code == 2 and words in err, (args, err)
