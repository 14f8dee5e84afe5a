"""`jaxal dedupe` through the command's steps: the folder it writes, `select`
and `balance` never offering two images of a group, to_label.csv's score
columns, and the refusals (bad threshold, --selection, a stale folder after a
new embedding, a selection made with other dedupe settings)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxal.cli import dedupe
from jaxal.cli.workdir import Workdir
from jaxal.curation import neighbors
from tests.cli import label_fixture as F
from tests.cli.test_cli import jaxal, ok, read_csv, write_csv
from tests.conftest import two_processes

def classes_list(path):
  with open(path, encoding="utf-8") as f:
    return f.read().splitlines()


COPIES = {3: (10, 11), 20: (21,), 30: (31, 32, 33)}  # image: its near copies


@pytest.fixture()
def pool(tmp_path):
  """The labeling tests' pool of 48 with near copies planted in its features."""
  wd, truth, classes = F.make(str(tmp_path))
  path = os.path.join(wd, "embedding.npz")
  z = dict(np.load(path))
  rng = np.random.default_rng(0)
  for src, dsts in COPIES.items():
    for dst in dsts:
      z["features"][dst] = z["features"][src] + rng.normal(size=16) * 1e-4
  z["target_features"] = z["features"]
  np.savez(path, **z)
  return wd, truth, classes


def test_dedupe_then_select_and_balance_offer_one_image_of_a_group(pool):
  wd, truth, classes = pool
  out = ok("dedupe", f"--workdir={wd}", "--threshold=1e-5")
  assert "6 of 48 images set aside" in out, out
  folder = os.path.join(wd, "dedupe")
  with open(os.path.join(folder, "dedupe.json")) as f:
    meta = json.load(f)
  assert (meta["metric"], meta["threshold"], meta["groups"], meta["removed"]) == \
      ("cosine", 1e-5, 3, 6)
  rep = np.load(os.path.join(folder, "representative.npy"))
  groups = {s: sorted((s,) + d) for s, d in COPIES.items()}
  for g in groups.values():
    assert len(set(rep[g])) == 1 and rep[g[0]] in g
  feats = np.load(os.path.join(wd, "embedding.npz"))["features"]
  ref = neighbors.search(feats, threshold=1e-5, metric="cosine", k=20)
  np.testing.assert_array_equal(np.load(os.path.join(folder, "pairs.npy")), ref.pairs)

  # every kept image (42): the budget may not exceed them
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=random", "--budget=43")
  assert code == 2 and "--budget" in err and "42" in err, err
  ok("select", f"--workdir={wd}", "--method=margin", "--budget=20")
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  paths = [r["path"] for r in rows]
  index = Workdir(wd).pool().index
  picked = [index[p] for p in paths]
  assert len({int(rep[i]) for i in picked}) == 20
  # the scores as columns, from the folder
  nn = np.load(os.path.join(folder, "nn_distance.npy"))
  uniq = np.load(os.path.join(folder, "uniqueness.npy"))
  for r, i in zip(rows, picked):
    assert float(r["nn_distance"]) == pytest.approx(nn[i], rel=1e-5)
    assert float(r["uniqueness"]) == pytest.approx(uniq[i], rel=1e-5)
    assert 0 < float(r["representativeness"]) <= 1
  with open(os.path.join(wd, "to_label.label_studio.json")) as f:
    assert len(json.load(f)) == 20

  # the balancing step walks margin's ranking without the set-aside copies
  labels = os.path.join(wd, "answers.csv")
  write_csv(labels, [])
  offered = []
  for _ in range(30):
    code, out, err = jaxal("balance", f"--workdir={wd}", f"--labels={labels}",
                           f"--classes={classes}", "--batch=4")
    assert code == 0, err
    batch = [r["path"] for r in read_csv(os.path.join(wd, "to_label.csv"))]
    if not batch:
      break
    offered += batch
    write_csv(labels, [[p, truth[p]] for p in offered])
  assert len(offered) == 20
  assert len({int(rep[index[p]]) for p in offered}) == 20

  # the report's map (labeled images in their classes' colours) and histogram
  # (its bars and the threshold's red line)
  ok("report", f"--workdir={wd}", f"--labels={labels}", f"--classes={classes}")
  with open(os.path.join(wd, "report", "report.json")) as f:
    got = json.load(f)
  found_classes = {truth[p] for p in offered}

  def has_colour(path, rgb):
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(img - rgb).sum(-1) < 30).sum())
  tab10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
  for c in found_classes:
    assert has_colour(got["map"], tab10[classes_list(classes).index(c)]) > 5, c
  assert has_colour(got["nn_histogram"], (214, 39, 40)) > 20
  assert has_colour(got["nn_histogram"], tab10[0]) > 200
  coords = np.load(os.path.join(wd, "map", "pca.npy"))
  assert coords.shape == (48, 2)
  # another projection: drawn and cached beside PCA's, or refused by its flag
  code, _, err = jaxal("report", f"--workdir={wd}", f"--labels={labels}",
                       f"--classes={classes}", "--projection=pacmap")
  try:
    import pacmap  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    assert code == 2 and "--projection" in err and "pip install" in err, err
  else:
    assert code == 0, err
    assert np.load(os.path.join(wd, "map", "pacmap.npy")).shape == (48, 2)
    np.testing.assert_array_equal(np.load(os.path.join(wd, "map", "pca.npy")), coords)


def test_refusals(pool, tmp_path):
  wd, _, _ = pool
  for bad, words in (("0", "> 0"), ("-1", "> 0"), ("nan", "> 0"), ("3", "<= 2")):
    code, _, err = jaxal("dedupe", f"--workdir={wd}", f"--threshold={bad}")
    assert code == 2 and "--threshold" in err and words in err, err
  code, _, err = jaxal("dedupe", f"--workdir={wd}")
  assert code == 2 and "--threshold is required" in err, err
  code, _, err = jaxal("dedupe", f"--workdir={wd}", "--threshold=0.1",
                       "--selection=x")
  assert code == 2 and "--selection" in err, err
  assert not os.path.exists(os.path.join(wd, "dedupe"))

  # a selection made before dedupe is not silently changed by it
  ok("select", f"--workdir={wd}", "--method=random", "--budget=5")
  ok("dedupe", f"--workdir={wd}", "--threshold=1e-5")
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=random", "--budget=5")
  assert code == 2 and "--dedupe" in err and "--selection=NAME" in err, err
  ok("select", f"--workdir={wd}", "--selection=clean", "--method=random",
     "--budget=5")
  # dedupe again with another threshold: the named selection's record differs
  ok("dedupe", f"--workdir={wd}", "--threshold=2e-5", "--metric=euclidean")
  code, _, err = jaxal("select", f"--workdir={wd}", "--selection=clean",
                       "--method=random", "--budget=5")
  assert code == 2 and "other select settings" in err, err
  assert not any(n.startswith("dedupe.") for n in os.listdir(wd))  # no temp left

  # the folder of another work directory's embedding: refused naming it
  other, _, _ = F.make(str(tmp_path / "other"), seed=1)
  ok("dedupe", f"--workdir={other}", "--threshold=1e-5")
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(os.path.join(wd, "dedupe"))
  shutil.copytree(os.path.join(other, "dedupe"), os.path.join(wd, "dedupe"))
  code, _, err = jaxal("select", f"--workdir={wd}", "--selection=copied",
                       "--method=random", "--budget=5")
  assert code == 2 and os.path.join(wd, "dedupe") in err, err
  ok("dedupe", f"--workdir={wd}", "--threshold=2e-5", "--metric=euclidean")
  # a new embedding makes the folder stale: refused naming it
  path = os.path.join(wd, "embedding.npz")
  z = dict(np.load(path))
  z["features"] = z["features"] + 1.0
  np.savez(path, **z)
  code, _, err = jaxal("select", f"--workdir={wd}", "--selection=new",
                       "--method=random", "--budget=5")
  assert code == 2 and os.path.join(wd, "dedupe") in err and "embed ran again" in err, err
  assert dedupe.fingerprint(Workdir(wd)) != json.load(
      open(os.path.join(wd, "dedupe", "dedupe.json")))["embedding"]


def test_the_labeling_page_balances_over_one_image_of_a_group(pool):
  wd, truth, classes = pool
  ok("dedupe", f"--workdir={wd}", "--threshold=1e-5")
  rep = np.load(os.path.join(wd, "dedupe", "representative.npy"))
  index = Workdir(wd).pool().index
  srv = F.Server(f"--workdir={wd}", f"--classes={classes}", "--method=margin",
                 "--budget=20", "--batch=3")
  try:
    from tests.cli.test_label import answer_all  # pylint: disable=g-import-not-at-top
    done = answer_all(srv, truth, "ann", 20)
    status, r = srv.request("POST", "api/next", {"annotator": "ann"})
    assert r.get("done"), r
  finally:
    srv.stop()
  assert len({int(rep[index[p]]) for p in done}) == 20


def test_two_process_dedupe_equals_one_process(tmp_path):
  """jax.distributed: two CPU processes each compute their share of the tiles
  of a pool of 4,500 (3 blocks, 6 tiles; exact copies make ties among the
  nearest neighbours) and process 0 joins them; every file equals one
  process's, bit for bit."""
  import shutil  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  wd, _, _ = F.make(str(tmp_path / "base"))
  n = 4500
  rng = np.random.default_rng(1)
  feats = rng.normal(size=(n, 16)).astype(np.float32)
  feats[4000:4100] = feats[:100]  # exact copies: equal distances to the others
  feats[4100:4200] = feats[2000:2100] + rng.normal(size=(100, 16)).astype(np.float32) * 1e-4
  probs = np.full((n, 6), 1 / 6, np.float32)
  np.savez(os.path.join(wd, "embedding.npz"), index=np.arange(n), features=feats,
           probs=probs, target_features=feats)
  with open(os.path.join(wd, "paths.txt"), "w") as f:
    f.write("\n".join(f"img{i}.png" for i in range(n)) + "\n")
  e = F.subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=1",
                       JAX_PLATFORMS="cpu")
  args = lambda w: [sys.executable, "-m", "jaxal", "dedupe", f"--workdir={w}",  # noqa
                    "--threshold=1e-6"]
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  shutil.copytree(wd, one)
  shutil.copytree(wd, two)
  r = subprocess.run(args(one), env=e, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  outs = two_processes(args(two), e)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert "200 of 4500 images set aside" in outs[0][1], outs[0][1]
  names = sorted(os.listdir(os.path.join(one, "dedupe")))
  assert names == sorted(os.listdir(os.path.join(two, "dedupe")))
  for name in names:
    with open(os.path.join(one, "dedupe", name), "rb") as f1, \
        open(os.path.join(two, "dedupe", name), "rb") as f2:
      assert f1.read() == f2.read(), name
  assert not os.path.exists(os.path.join(two, "dedupe.parts"))  # cleaned up
  nn = np.load(os.path.join(one, "dedupe", "neighbors.npy"))
  assert (nn[:100, 0] == np.arange(4000, 4100)).all()  # each copy's twin first

  # Work directories that are not one shared folder: process 0 cannot see
  # process 1's part; both stop with an error (none waits for the other),
  # nothing is written and the parts are removed.
  apart = [str(tmp_path / f"apart{i}") for i in range(2)]
  for w in apart:
    shutil.copytree(wd, w)
  outs = two_processes(lambda i: args(apart[i]), e, timeout=300)
  assert [o[0] for o in outs] == [2, 2], [o[2][-2000:] for o in outs]
  assert "--workdir must be on a disk every process shares" in outs[0][2], outs[0][2]
  assert "process 0 failed" in outs[1][2], outs[1][2]
  for w in apart:
    assert not os.path.exists(os.path.join(w, "dedupe"))
  assert not os.path.exists(os.path.join(apart[0], "dedupe.parts"))
