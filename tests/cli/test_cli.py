"""The `jaxal` command end to end on a generated image folder: pip install,
embed -> select -> a simulated annotator -> balance -> train -> predict ->
report, bad labels files, contradicting flags, SIGKILL during embed."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import contextlib

import numpy as np
import pytest
from PIL import Image

from jaxal import acquisition, balancing, metrics
from jaxal.cli import command
from jaxal.cli.workdir import Workdir
from jaxal.datasets import images
from jaxal.datasets import procedural

from tests.conftest import ROOT, subprocess_env, two_processes  # noqa: E402
K = 5  # target classes
RARE = 4  # kept at a quarter of its images: the pool is imbalanced


def env():
  return subprocess_env()


def jaxal(*args):
  """`jaxal ARGS` in this process: (exit status, stdout, stderr)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = command.main(["jaxal", *args])
  return code, out.getvalue(), err.getvalue()


def ok(*args):
  code, out, err = jaxal(*args)
  assert code == 0, out + err
  return out


def write_folder(root, part, split, size=None):
  """PNGs (some JPEG) of offline `part` images in nested folders, of several
  sizes and modes; returns {relative path: class name} and the class names."""
  cfg = procedural.OfflineConfig(
      num_source_classes=4, num_target_classes=K, num_far_classes=K,
      source_train_per_class=2, source_test_per_class=1, target_train_per_class=16,
      target_test_per_class=4, far_train_per_class=2, far_test_per_class=1, seed=0)
  names = procedural.class_names(cfg, "target")
  x, y = procedural.generate(cfg, part, split)
  rng = np.random.default_rng(1)
  truth = {}
  for i in range(len(y)):
    if y[i] == RARE and rng.random() > 0.25:
      continue
    rel = f"group{i % 3}/" + ("deeper/" if i % 2 else "") + \
        f"img{i:04d}.{'jpg' if i % 7 == 0 else 'png'}"
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    img = Image.fromarray(x[i])
    side = size or 32 + 8 * (i % 4)
    img = img.resize((side, side + (i % 2) * 6))
    if i % 11 == 0:
      img = img.convert("L")  # greyscale files are read as RGB
    img.save(os.path.join(root, rel))
    truth[rel] = names[y[i]]
  return truth, names


def write_csv(path, rows, header=("path", "label")):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def snapshot(folder):
  """{relative path: bytes} of every file under `folder`."""
  out = {}
  for d, _, files in os.walk(folder):
    for name in files:
      p = os.path.join(d, name)
      with open(p, "rb") as f:
        out[os.path.relpath(p, folder)] = f.read()
  return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A trained source (train_source on digits, 2 snapshots), a pool folder with
  one corrupt file, a labeled test folder and the classes file."""
  base = tmp_path_factory.mktemp("cli")
  src = str(base / "source")
  run = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "train_source.py"),
       "--dataset=digits", f"--workdir={src}", "--width=4", "--epochs=2",
       "--snapshot_every=1", "--batch_size=32"],
      env=env(), capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  pool = str(base / "pool")
  truth, names = write_folder(pool, "target", "train")
  with open(os.path.join(pool, "group0", "corrupt.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n but not an image")
  test = str(base / "test")
  test_truth, _ = write_folder(test, "target", "test")
  classes = str(base / "classes.txt")
  with open(classes, "w") as f:
    f.write("# target classes\n" + "\n".join(names) + "\n")
  return dict(base=base, source=src, pool=pool, truth=truth, names=names, test=test,
              test_truth=test_truth, classes=classes)


def embedded(setup, name):
  """A work directory with the pool embedded (single model)."""
  wd = str(setup["base"] / name)
  out = ok("embed", f"--workdir={wd}", f"--images={setup['pool']}",
           f"--source={setup['source']}", "--chunk=16")
  return wd, out


def annotate(setup, wd, labels_csv):
  """The simulated annotator: labels every row of to_label.csv (ground truth),
  appending to `labels_csv`; returns the paths it labeled."""
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  old = read_csv(labels_csv) if os.path.exists(labels_csv) else []
  write_csv(labels_csv, [(r["path"], r["label"]) for r in old] +
            [(r["path"], setup["truth"][r["path"]]) for r in rows])
  return [r["path"] for r in rows]


def test_pip_install_gives_the_jaxal_command(tmp_path):
  """`pip install .` into a fresh venv: the `jaxal` script and `python -m
  jaxal` work from outside the repository. The venv sees this environment's
  packages through a .pth file (no download in tests), so pip resolves
  pyproject's dependency ranges against the pinned set of requirements.txt."""
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  py = str(venv / "bin" / "python")
  site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()"
                         "['purelib'])"], capture_output=True, text=True,
                        check=True).stdout.strip()
  with open(os.path.join(site, "deps.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  src = tmp_path / "src"  # a copy: the build must not write into the repository
  shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
      ".venv", ".git", "workdir", "__pycache__", "*.egg-info", "build"))
  install = subprocess.run(
      [sys.executable, "-m", "pip", "--python", py, "install", "--no-index",
       "--no-build-isolation", "--quiet", "--disable-pip-version-check", str(src)],
      capture_output=True, text=True, timeout=600)
  assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
  clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  for cmd in ([str(venv / "bin" / "jaxal"), "--help"], [py, "-m", "jaxal", "--help"]):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path),
                         env=clean, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for c in ("embed", "select", "balance", "label", "train", "predict", "report"):
      assert f"  {c} " in out.stdout
  where = subprocess.run(
      [py, "-c", "import jaxal, jaxal.experiments.paper, sys; print(jaxal.__file__); "
       "print(len(jaxal.experiments.paper.rows(6))); "
       "print('tensorflow' in sys.modules); import os, jaxal.cli.label_page as l; "
       "print(sorted(os.listdir(os.path.join(os.path.dirname(l.__file__), 'static'))))"],
      capture_output=True, text=True, cwd=str(tmp_path), env=clean, timeout=300)
  assert where.returncode == 0, where.stderr[-3000:]
  path, tables, tf, static = where.stdout.split(maxsplit=3)
  assert path.startswith(str(venv)), path  # the installed copy, with its data files
  assert int(tables) > 0 and tf == "False"
  assert static.strip() == "['app.js', 'index.html', 'map.html', 'map.js', 'style.css']", \
      static


def test_embed_select_balance_train_predict_report(setup):
  wd, out = embedded(setup, "work")
  assert "corrupt.png" in out and "skipping unreadable image" in out
  skipped = read_csv(os.path.join(wd, "skipped.csv"))
  assert [r["path"] for r in skipped] == ["group0/corrupt.png"]
  assert "1 unreadable skipped" in out
  z = Workdir(wd).embedding()
  feats, probs = z["features"], z["probs"]
  assert isinstance(feats, np.memmap)  # read in place, never loaded as a whole
  with open(os.path.join(wd, "paths.txt")) as f:
    every = f.read().splitlines()
  paths = [every[i] for i in z["index"]]
  assert sorted(paths) == sorted(setup["truth"]) and len(feats) == len(paths)
  assert np.allclose(probs.sum(1), 1, atol=1e-5)
  assert "already done" in ok("embed", f"--workdir={wd}", f"--images={setup['pool']}",
                              f"--source={setup['source']}", "--chunk=16")

  budget, batch, method = 24, 5, "entropy_inv_div"
  ok("select", f"--workdir={wd}", f"--method={method}", f"--budget={budget}")
  to_label = os.path.join(wd, "to_label.csv")
  with open(to_label) as f:
    first = f.read()
  # dedupe's scores last, empty without it
  assert first.startswith("path,rank,score,predicted_class,predicted_name,"
                          "nn_distance,uniqueness,representativeness\n")
  assert first.splitlines()[1].endswith(",,,")
  rows = read_csv(to_label)
  want = acquisition.select(method, budget=budget, probs=probs)
  assert [r["path"] for r in rows] == [paths[i] for i in want]
  assert [int(r["rank"]) for r in rows] == list(range(1, budget + 1))
  ok("select", f"--workdir={wd}", f"--method={method}", f"--budget={budget}")
  with open(to_label) as f:
    assert f.read() == first  # idempotent

  # The annotators answer batch after batch; balance asks for the next one.
  labels_csv = os.path.join(setup["base"], "labels.csv")
  write_csv(labels_csv, [])
  batches = []
  for _ in range(budget):  # at most one round trip per image
    out = ok("balance", f"--workdir={wd}", f"--labels={labels_csv}",
             f"--classes={setup['classes']}", f"--batch={batch}")
    if "budget spent" in out:
      break
    batches.append(annotate(setup, wd, labels_csv))
  else:
    raise AssertionError("balance never finished")
  index = {p: i for i, p in enumerate(paths)}
  truth = np.array([setup["names"].index(setup["truth"][p]) for p in paths])
  expected = balancing.balanced_select(acquisition.rank(method, probs=probs), feats,
                                       truth, budget, K, batch_size=batch)
  assert [index[p] for b in batches for p in b] == expected.tolist()
  assert [len(b) for b in batches] == [batch] * (budget // batch) + \
      ([budget % batch] if budget % batch else [])
  assert read_csv(to_label) == []  # nothing left to label
  before = snapshot(wd)
  ok("balance", f"--workdir={wd}", f"--labels={labels_csv}",
     f"--classes={setup['classes']}", f"--batch={batch}")
  assert snapshot(wd) == before  # rerunning a finished step changes nothing

  ok("train", f"--workdir={wd}", f"--labels={labels_csv}", "--target=svm")
  pred_csv = os.path.join(setup["base"], "pred.csv")
  ok("predict", f"--workdir={wd}", f"--images={setup['test']}", f"--out={pred_csv}")
  pred = read_csv(pred_csv)
  assert sorted(r["path"] for r in pred) == sorted(setup["test_truth"])
  assert all(r["label"] in setup["names"] and r["error"] == "" for r in pred)

  test_csv = os.path.join(setup["base"], "test_labels.csv")
  write_csv(test_csv, sorted(setup["test_truth"].items()))
  out = ok("report", f"--workdir={wd}", f"--labels={labels_csv}",
           f"--classes={setup['classes']}", f"--test_labels={test_csv}",
           f"--test_images={setup['test']}")
  rep = _json(os.path.join(wd, "report", "report.json"))
  y = np.array([setup["names"].index(r["label"]) for r in read_csv(labels_csv)])
  assert rep["labeled"] == budget
  assert rep["classes_found"] == metrics.classes_found(y, K)
  assert rep["imbalance_ratio"] == pytest.approx(metrics.imbalance_ratio(y, K))
  assert rep["class_counts"] == [[c, int(n)] for c, n in zip(
      setup["names"], np.bincount(y, minlength=K))]
  ids = {c: k for k, c in enumerate(setup["names"])}
  y_true = np.array([ids[setup["test_truth"][r["path"]]] for r in pred])
  y_pred = np.array([ids[r["label"]] for r in pred])
  assert rep["acc_t"] == pytest.approx(metrics.accuracy_all_classes(
      y_true, y_pred, np.unique(y), K))
  assert f"ACC_t {rep['acc_t']:.2f}%" in out
  with open(os.path.join(wd, "report", "class_counts.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"

  # Fine-tuning target: trained, then used by predict.
  ok("train", f"--workdir={wd}", f"--labels={labels_csv}",
     f"--classes={setup['classes']}", "--target=finetune", "--epochs=1",
     "--batch_size=8")
  ok("predict", f"--workdir={wd}", f"--images={setup['test']}", f"--out={pred_csv}")
  assert len(read_csv(pred_csv)) == len(setup["test_truth"])


def _json(path):
  import json  # pylint: disable=g-import-not-at-top
  with open(path) as f:
    return json.load(f)


def test_bad_labels_files_name_file_and_line_and_change_nothing(setup):
  wd, _ = embedded(setup, "bad")
  ok("select", f"--workdir={wd}", "--method=margin", "--budget=6")
  offered = [r["path"] for r in read_csv(os.path.join(wd, "to_label.csv"))]
  outside = next(p for p in setup["truth"] if p not in offered)
  good = [(p, setup["truth"][p]) for p in offered[:3]]
  cases = {
      "unknown path": (good + [("nowhere/x.png", setup["names"][0])], 5),
      "duplicate row": (good + [good[1]], 5),
      "empty label": (good[:1] + [(offered[3], "")] + good[1:], 3),
      "unknown class": (good + [(offered[4], "not_a_class")], 5),
      "outside the selection": (good[:2] + [(outside, setup["truth"][outside])], 4),
  }
  before = snapshot(wd)
  bad = os.path.join(setup["base"], "bad_labels.csv")
  for what, (rows, line) in cases.items():
    write_csv(bad, rows)
    for args in (["balance", "--batch=2"], ["train"], ["report"]):
      code, out, err = jaxal(args[0], f"--workdir={wd}", f"--labels={bad}",
                             f"--classes={setup['classes']}", *args[1:])
      assert code == 2, (what, out, err)
      assert f"{bad}:{line}: " in err and what.split()[0] in err, (what, err)
      assert "Traceback" not in err
      assert snapshot(wd) == before, what
  write_csv(bad, good, header=("file", "class"))
  code, _, err = jaxal("balance", f"--workdir={wd}", f"--labels={bad}",
                       f"--classes={setup['classes']}", "--batch=2")
  assert code == 2 and f"{bad}:1: the header must start with path,label" in err
  dup = os.path.join(setup["base"], "dup_classes.txt")
  with open(dup, "w") as f:
    f.write("a\nb\na\n")
  code, _, err = jaxal("balance", f"--workdir={wd}", f"--labels={bad}",
                       f"--classes={dup}", "--batch=2")
  assert code == 2 and f"{dup}:3: class 'a' is listed twice" in err
  assert snapshot(wd) == before


def test_flags_contradicting_the_workdir_are_refused(setup):
  wd, _ = embedded(setup, "contradict")
  ok("select", f"--workdir={wd}", "--method=coreset", "--budget=6")
  before = snapshot(wd)
  code, _, err = jaxal("embed", f"--workdir={wd}", f"--images={setup['test']}",
                       f"--source={setup['source']}", "--chunk=16")
  assert code == 2 and f"--images: '{setup['pool']}' here, '{setup['test']}'" in err
  code, _, err = jaxal("embed", f"--workdir={wd}", f"--images={setup['pool']}",
                       f"--source={setup['source']}", "--chunk=16", "--ensemble")
  assert code == 2 and "--ensemble: False here, True in this call" in err
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=margin", "--budget=6")
  assert code == 2 and "--method: 'coreset' here, 'margin' in this call" in err
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=margin", "--budget=10**9")
  assert code == 2 and "--budget" in err
  code, _, err = jaxal("train", f"--workdir={wd}", "--labels=x.csv")
  assert code == 2 and "--labels 'x.csv' does not exist" in err
  code, _, err = jaxal("balance", f"--workdir={wd}", "--labels=x.csv", "--batch=2")
  assert code == 2 and "--classes is required" in err
  code, _, err = jaxal("nonsense")
  assert code == 2 and "unknown command 'nonsense'" in err
  assert snapshot(wd) == before


def test_embed_a_tfds_split_then_select(setup, tmp_path):
  """--tfds=NAME:SPLIT embeds a prepared dataset (digits: bundled, no
  download); images are named NAME:SPLIT/INDEX in to_label.csv."""
  wd = str(tmp_path / "tfds")
  out = ok("embed", f"--workdir={wd}", "--tfds=digits:test",
           f"--source={setup['source']}", "--chunk=256")
  assert "599 images embedded" in out
  ok("select", f"--workdir={wd}", "--method=coreset", "--budget=5")
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  assert len(rows) == 5 and all(r["path"].startswith("digits:test/") for r in rows)
  code, _, err = jaxal("embed", f"--workdir={str(tmp_path / 'x')}", "--tfds=digits:test",
                       f"--images={setup['pool']}", f"--source={setup['source']}")
  assert code == 2 and "exactly one of --images" in err


def test_select_in_rounds_uses_the_target_model_after_round_one(setup):
  wd, _ = embedded(setup, "rounds")
  flags_ = [f"--workdir={wd}", "--method=margin_div", "--budget=12", "--rounds=3"]
  ok("select", *flags_)
  labels_csv = os.path.join(setup["base"], "rounds_labels.csv")
  first = annotate(setup, wd, labels_csv)
  z = Workdir(wd).embedding()
  probs = z["probs"]
  with open(os.path.join(wd, "paths.txt")) as f:
    every = f.read().splitlines()
  paths = [every[i] for i in z["index"]]
  assert first == [paths[i] for i in acquisition.select("margin_div", budget=4,
                                                         probs=probs)]
  more = [f"--labels={labels_csv}", f"--classes={setup['classes']}"]
  out = ok("select", *flags_, *more)
  assert "round 2 of 3" in out and "svm target model" in out
  second = annotate(setup, wd, labels_csv)
  names = {r["predicted_class"] for r in read_csv(os.path.join(wd, "to_label.csv"))}
  assert names <= set(setup["names"])  # target classes, not source ids
  assert "round 3 of 3" in ok("select", *flags_, *more)
  third = annotate(setup, wd, labels_csv)
  chosen = first + second + third
  assert len(chosen) == len(set(chosen)) == 12
  assert "already selected" in ok("select", *flags_, *more)


def test_embed_killed_mid_run_resumes_to_the_same_features(setup, tmp_path):
  """SIGKILL after a few chunks; the rerun finishes from the last finished
  chunk and its outputs equal an uninterrupted run's, bit for bit."""
  folder = str(tmp_path / "big")
  write_folder(folder, "target", "train", size=700)  # slow to decode: killable
  args = lambda wd: [sys.executable, "-m", "jaxal", "embed", f"--workdir={wd}",  # noqa
                     f"--images={folder}", f"--source={setup['source']}",
                     "--chunk=4", "--ensemble"]
  killed = str(tmp_path / "killed")
  proc = subprocess.Popen(args(killed), env=env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  chunks = os.path.join(killed, "embed")
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    # A chunk being written is a ".tmp-" file until its atomic rename.
    if os.path.isdir(chunks) and len([n for n in os.listdir(chunks) if
                                      n.startswith("chunk_") and ".tmp-" not in n]) >= 2:
      break
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not Workdir(killed).embedded(), "not mid-run"
  resumed = subprocess.run(args(killed), env=env(), capture_output=True, text=True,
                           timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "chunks already done" in resumed.stdout
  whole = str(tmp_path / "whole")
  full = subprocess.run(args(whole), env=env(), capture_output=True, text=True,
                        timeout=600)
  assert full.returncode == 0, full.stderr[-3000:]
  a, b = Workdir(killed).embedding(), Workdir(whole).embedding()
  assert sorted(a) == sorted(b)
  for k in a:
    assert np.array_equal(a[k], b[k]), k


def test_image_loading_resizes_crops_and_converts(tmp_path):
  rgba = Image.new("RGBA", (64, 40), (255, 0, 0, 255))
  rgba.save(tmp_path / "a.png")
  Image.new("L", (20, 50), 128).save(tmp_path / "b.jpg")
  (tmp_path / "sub").mkdir()
  Image.new("P", (32, 32)).save(tmp_path / "sub" / "c.PNG")
  (tmp_path / "notes.txt").write_text("not an image")
  (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff truncated")
  assert images.scan(str(tmp_path)) == ["a.png", "b.jpg", "bad.jpg", "sub/c.PNG"]
  x, ok_, errors = images.load_batch(str(tmp_path), images.scan(str(tmp_path)), 32)
  assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8
  assert ok_.tolist() == [True, True, False, True] and list(errors) == ["bad.jpg"]
  assert (x[0] == [255, 0, 0]).all() and (x[1] == 128).all()
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="--images .* holds no image"):
    images.scan(str(tmp_path / "empty"))
  with pytest.raises(ValueError, match="is not a directory"):
    images.scan(str(tmp_path / "missing"))


def test_coreset_scores_are_distances_at_pick_time():
  from jaxal.cli.select_balance import _pick_distances  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  f = rng.normal(size=(300, 7))
  picks = rng.permutation(300)[:50]
  for labeled in (np.setdiff1d([3, 4, 5], picks), np.zeros(0, np.int64)):
    centers, want = list(f[labeled]), []
    for i in picks:
      want.append(min(np.linalg.norm(c - f[i]) for c in centers) if centers
                  else np.inf)
      centers.append(f[i])
    np.testing.assert_allclose(_pick_distances(f, picks, labeled, block=16), want,
                               rtol=1e-9)


@pytest.fixture(scope="module")
def offline_tfds(tmp_path_factory):
  """A TFDS data_dir with the offline target generated (train 4,000 images,
  test 1,000)."""
  pytest.importorskip("tensorflow_datasets")
  from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  assert catalog.num_examples("offline_target", "train", data_dir=data_dir) == \
      4 * catalog.num_examples("offline_target", "test", data_dir=data_dir)
  return data_dir


_MEASURE_EMBED = """
import json, sys, tracemalloc
import numpy, tensorflow, tensorflow_datasets, jax  # their import is no pixel
from jaxal.cli import embed
from jaxal.cli.workdir import Workdir
out, data_dir, source = sys.argv[1:]

def run(name, split):
  embed.embed(Workdir(out + "/" + name), images_dir=None,
              tfds="offline_target:" + split, data_dir=data_dir, source_dir=source,
              chunk=256, log=lambda _: None)

run("warm", "test")  # compiles M_S and builds the pipeline once, untraced
peaks = {}
tracemalloc.start()
for split in ("test", "train"):
  tracemalloc.reset_peak()
  before = tracemalloc.get_traced_memory()[0]
  run(split, split)
  peaks[split] = tracemalloc.get_traced_memory()[1] - before
print(json.dumps(peaks))
"""


def test_embed_memory_stays_flat_when_the_split_grows(setup, offline_tfds, tmp_path):
  """Peak memory of `embed --tfds` on a split 4x larger, in a fresh process:
  the numpy and Python allocations (tracemalloc sees every numpy array) may
  grow by less than a quarter of the pixels the larger split adds (held whole,
  they would add all of them, 9 MB), which leaves room per image for the pool's
  path and index only. The whole process's RSS at 50,000 and 200,000 images is
  bench/stream.py's."""
  r = subprocess.run([sys.executable, "-c", _MEASURE_EMBED, str(tmp_path),
                      offline_tfds, setup["source"]],
                     env=env(), capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  peaks = json.loads(r.stdout.strip().splitlines()[-1])
  for split, n in (("test", 1000), ("train", 4000)):
    assert len(Workdir(str(tmp_path / split)).pool().paths) == n
  added_pixels = 3000 * 32 * 32 * 3
  assert peaks["train"] < peaks["test"] + added_pixels / 4, peaks


def test_embed_streams_a_tfds_split_bit_for_bit_and_resumes(setup, offline_tfds,
                                                             tmp_path):
  """`embed --tfds` streams the split (never loads it whole) and gives exactly
  the in-memory computation's outputs; interrupted after two chunks, the rerun
  skips them without decoding and ends with the same arrays."""
  from jaxal.cli import embed as embed_lib  # pylint: disable=g-import-not-at-top
  from jaxal.datasets import catalog, pipeline  # pylint: disable=g-import-not-at-top
  from jaxal.models import source  # pylint: disable=g-import-not-at-top
  data_dir, chunk = offline_tfds, 512
  wd = Workdir(str(tmp_path / "stream"))

  class Stop(Exception):
    pass

  def stop_after_two(line):
    if line.startswith(f"embed: {2 * chunk}/"):
      raise Stop()
  with pytest.raises(Stop):
    embed_lib.embed(wd, images_dir=None, tfds="offline_target:train",
                    data_dir=data_dir, source_dir=setup["source"], chunk=chunk,
                    log=stop_after_two)
  assert len(os.listdir(wd.file("embed"))) == 2 and not wd.embedded()
  lines = []
  pool = embed_lib.embed(wd, images_dir=None, tfds="offline_target:train",
                         data_dir=data_dir, source_dir=setup["source"], chunk=chunk,
                         log=lines.append)
  assert any("2 of" in ln and "chunks already done" in ln for ln in lines), lines
  trained = source.load_workdir(setup["source"])
  x = catalog.load_arrays("offline_target", "train", data_dir=data_dir,
                          image_size=trained.image_size).images
  assert len(pool.paths) == len(x) > 3 * chunk
  for s in range(0, len(x), chunk):
    f, p, _ = embed_lib.signals(trained, False, x[s:s + chunk], 128)
    assert np.array_equal(pool.features[s:s + chunk], f), s
    assert np.array_equal(pool.probs[s:s + chunk], p), s
  assert pipeline  # the transform both paths share


def test_two_process_embed_equals_one_process(setup, tmp_path):
  """jax.distributed: two CPU processes embed their shares of the chunks into
  one work directory; the result equals one process's, bit for bit."""
  e = env()
  e["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
  e["JAX_PLATFORMS"] = "cpu"
  args = lambda wd: [sys.executable, "-m", "jaxal", "embed", f"--workdir={wd}",  # noqa
                     f"--images={setup['pool']}", f"--source={setup['source']}",
                     "--chunk=8"]
  one = str(tmp_path / "one")
  r = subprocess.run(args(one), env=e, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  two = str(tmp_path / "two")
  outs = two_processes(args(two), e)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert "process 0 of 2 embeds" in outs[0][1] and "process 1 of 2 embeds" in outs[1][1]
  a, b = Workdir(one).embedding(), Workdir(two).embedding()
  for k in a:
    assert np.array_equal(a[k], b[k]), k
  with open(os.path.join(one, "skipped.csv")) as f1, \
      open(os.path.join(two, "skipped.csv")) as f2:
    assert f1.read() == f2.read()
