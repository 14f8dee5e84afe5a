"""Starting from the model a user already has: `jaxal import-source` (torchvision
or timm weights as M_S) and `jaxal embed --features` (embeddings of any model),
each through the command's steps."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxal import acquisition
from jaxal.cli.workdir import Workdir, WorkdirError
from jaxal.models import pretrained, source
from tests.cli import label_fixture as F
from tests.cli.test_cli import jaxal, ok, read_csv, write_csv

from tests.conftest import ROOT  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
import pretrained_fixture as fx  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
  """The labeling tests' folder (48 PNGs, names with spaces and commas, one rare
  class) and clustered features of its images in pool order."""
  base = tmp_path_factory.mktemp("own")
  wd, truth, classes = F.make(str(base))
  with open(os.path.join(wd, "paths.txt")) as f:
    paths = f.read().splitlines()
  with np.load(os.path.join(wd, "embedding.npz")) as z:
    feats, probs = z["features"], z["probs"]
  return dict(base=base, images=os.path.join(str(base), "images"), truth=truth,
              classes=classes, paths=paths, feats=feats, probs=probs)


def seeded_weights(path, arch="resnet18"):
  with open(os.path.join(ROOT, "tests", "data", "pretrained", "layout.json")) as f:
    keys = json.load(f)[arch]["keys"]
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  save_file(fx.state_dict(arch, keys), path)
  return path


def test_import_source_then_embed_select_with_its_transform_and_names(pool, tmp_path):
  weights = seeded_weights(str(tmp_path / "r18.safetensors"))
  src = str(tmp_path / "src")
  code, _, err = jaxal("import-source", f"--workdir={src}", "--arch=resnet50",
                       f"--weights={weights}")
  assert code == 2 and "a resnet18 file? pass --arch=resnet18" in err, err
  assert not os.path.exists(src) and os.listdir(tmp_path) == ["r18.safetensors"]
  out = ok("import-source", f"--workdir={src}", "--arch=resnet18",
           f"--weights={weights}", "--resize=240", "--interpolation=bicubic")
  assert "resize 240, crop 224, bicubic" in out
  wd = str(tmp_path / "wd")
  code, _, err = jaxal("embed", f"--workdir={wd}", f"--images={pool['images']}",
                       f"--source={src}", "--ensemble")
  assert code == 2 and "no snapshot ensemble" in err, err
  ok("embed", f"--workdir={wd}", f"--images={pool['images']}", f"--source={src}",
     "--chunk=32", "--batch=16")
  # the features are the model's on the recorded transform of each file
  trained = source.load_workdir(src)
  assert trained.preprocess.resize == 240 and trained.preprocess.interpolation == "bicubic"
  got = Workdir(wd).pool()
  for i in (0, 33):
    with Image.open(os.path.join(pool["images"], got.paths[i])) as img:
      x = trained.preprocess.normalize(
          np.asarray(trained.preprocess.apply(img.convert("RGB")))[None])
    _, want = trained.model.apply(trained.final, x, train=False)
    np.testing.assert_allclose(got.features[i], want[0], rtol=1e-5,
                               atol=1e-5 * float(np.abs(want).max()))
  assert got.probs.shape == (48, 1000)
  ok("select", f"--workdir={wd}", "--method=entropy_inv_div", "--budget=6")
  names = set(pretrained.imagenet_classes())
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  assert len(rows) == 6 and all(r["predicted_name"] in names for r in rows), rows


def formats(pool, folder):
  """{format: embed flags} of the same features and probabilities."""
  os.makedirs(folder)
  p = lambda name: os.path.join(folder, name)  # noqa: E731
  feats, paths, d = pool["feats"], pool["paths"], pool["feats"].shape[1]
  np.save(p("f.npy"), feats)
  np.save(p("probs.npy"), pool["probs"])
  with open(p("paths.txt"), "w") as f:
    f.write("\n".join(paths) + "\n")
  np.savez_compressed(p("f.npz"), features=feats, paths=np.array(paths),
                      probs=pool["probs"])
  write_csv(p("f.csv"), [[q, *map(repr, map(float, r))] for q, r in zip(paths, feats)],
            header=["path", *[f"x{j}" for j in range(d)]])
  # Lightly's custom embeddings: filenames, embedding_0.., labels; absolute paths
  write_csv(p("lightly.csv"),
            [[os.path.join(pool["images"], q), *map(repr, map(float, r)), 0]
             for q, r in zip(paths, feats)],
            header=["filenames", *[f"embedding_{j}" for j in range(d)], "labels"])
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  pq.write_table(pa.table({"path": paths, "embedding": [list(map(float, r))
                                                        for r in feats]}), p("f.parquet"))
  return {"npy": [f"--features={p('f.npy')}", f"--paths={p('paths.txt')}",
                  f"--probs={p('probs.npy')}"],
          "npz": [f"--features={p('f.npz')}"],
          "csv": [f"--features={p('f.csv')}"],
          "lightly": [f"--features={p('lightly.csv')}"],
          "parquet": [f"--features={p('f.parquet')}"]}


def test_every_format_gives_the_same_pool(pool, tmp_path):
  for name, flags in formats(pool, str(tmp_path / "files")).items():
    wd = str(tmp_path / name)
    ok("embed", f"--workdir={wd}", f"--images={pool['images']}", *flags)
    got = Workdir(wd).pool()
    assert got.paths == pool["paths"], name
    np.testing.assert_array_equal(got.features, pool["feats"])
    assert got.target_features is got.features
    if name in ("npy", "npz"):
      np.testing.assert_array_equal(got.probs, pool["probs"])
    else:
      assert got.probs is None
    assert not os.path.exists(os.path.join(wd, "target_features.npy"))
    assert "already done" in ok("embed", f"--workdir={wd}",
                                f"--images={pool['images']}", *flags)


def test_bad_rows_are_refused_by_file_and_line_and_nothing_is_written(pool, tmp_path):
  paths, feats = pool["paths"], pool["feats"]
  header = ["path"] + [f"x{j}" for j in range(feats.shape[1])]
  good = [[q, *map(repr, map(float, r))] for q, r in zip(paths, feats)]
  cases = {
      "dup": (good[:5] + [good[2]] + good[5:], r"dup.csv:7: .* duplicate of .*dup.csv:4"),
      "missing": (good[:3] + [["nowhere/x.png", *good[3][1:]]] + good[3:],
                  r"missing.csv:5: 'nowhere/x.png' is not an image"),
      "nan": (good[:9] + [[good[9][0], "nan", *good[9][2:]]] + good[10:],
              r"nan.csv:11: features not finite"),
      "ragged": (good[:4] + [good[4][:-1]] + good[5:], r"ragged.csv:6: 16 columns"),
      "text": (good[:1] + [[good[1][0], "x", *good[1][2:]]] + good[2:],
               r"text.csv:3: a value is not a number"),
  }
  for name, (rows, message) in cases.items():
    f = str(tmp_path / f"{name}.csv")
    write_csv(f, rows, header=header)
    wd = str(tmp_path / f"wd_{name}")
    code, _, err = jaxal("embed", f"--workdir={wd}", f"--images={pool['images']}",
                         f"--features={f}")
    assert code == 2 and __import__("re").search(message, err), (name, err)
    assert not os.path.exists(wd), name
  np.save(tmp_path / "f.npy", feats[:10])
  (tmp_path / "p.txt").write_text("\n".join(paths[:9]) + "\n")
  code, _, err = jaxal("embed", f"--workdir={tmp_path / 'wd'}",
                       f"--images={pool['images']}", f"--features={tmp_path / 'f.npy'}",
                       f"--paths={tmp_path / 'p.txt'}")
  assert code == 2 and "9 paths for 10 rows" in err, err
  code, _, err = jaxal("embed", f"--workdir={tmp_path / 'wd'}",
                       f"--images={pool['images']}", f"--features={tmp_path / 'f.npy'}")
  assert code == 2 and "--paths" in err, err
  assert not os.path.exists(tmp_path / "wd")


def test_features_alone_through_select_label_train_report_and_rounds(pool, tmp_path):
  files = formats(pool, str(tmp_path / "files"))
  wd = str(tmp_path / "wd")
  ok("embed", f"--workdir={wd}", f"--images={pool['images']}", *files["csv"])
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=entropy_inv_div",
                       "--budget=8")
  assert code == 2 and "without --probs" in err, err
  assert ", ".join(acquisition.FEATURES_ONLY) in err
  for method in ("random", "typiclust", "maxherding"):
    ok("select", f"--workdir={wd}", f"--selection={method}", f"--method={method}",
       "--budget=8")
    rows = read_csv(os.path.join(wd, "selections", method, "to_label.csv"))
    assert len(rows) == 8 and all(r["predicted_class"] == "" for r in rows)
  # the labeling page, with the balancing step live, on features alone
  srv = F.Server(f"--workdir={wd}", f"--classes={pool['classes']}",
                 "--method=coreset", "--budget=10", "--batch=2")
  try:
    from tests.cli.test_label import answer_all  # pylint: disable=g-import-not-at-top
    answer_all(srv, pool["truth"], "ann", 10)
    status, r = srv.request("POST", "api/next", {"annotator": "ann"})
    assert r.get("done"), r
  finally:
    srv.stop()
  labels = os.path.join(wd, "labels.csv")
  ok("train", f"--workdir={wd}", f"--labels={labels}", "--target=svm")
  ok("report", f"--workdir={wd}", f"--labels={labels}", "--plot=false")
  with open(os.path.join(wd, "report", "report.json")) as f:
    assert json.load(f)["labeled"] == 10
  for args, word in ((("predict", f"--images={pool['images']}", "--out=x.csv"),
                      "predicting new images needs the model"),
                     (("train", f"--labels={labels}", "--target=finetune"),
                      "--target=finetune needs the model")):
    code, _, err = jaxal(args[0], f"--workdir={wd}", *args[1:])
    assert code == 2 and word in err and "imported" in err, err
  # rounds: the second round's probabilities come from the SVM
  r2 = ["--selection=rounds", "--method=margin_inv_div", "--budget=12", "--rounds=2"]
  code, _, err = jaxal("select", f"--workdir={wd}", *r2)
  assert code == 2 and "without --probs" in err  # round one needs M_S's
  r2[1] = "--method=coreset"
  ok("select", f"--workdir={wd}", *r2)
  first = read_csv(os.path.join(wd, "selections", "rounds", "to_label.csv"))
  answers = str(tmp_path / "r.csv")
  write_csv(answers, [[r["path"], pool["truth"][r["path"]]] for r in first])
  ok("select", f"--workdir={wd}", *r2, f"--labels={answers}",
     f"--classes={pool['classes']}")
  second = read_csv(os.path.join(wd, "selections", "rounds", "to_label.csv"))
  assert len(second) == 6 and not {r["path"] for r in second} & \
      {r["path"] for r in first}


def test_target_aware_methods_select_in_rounds_and_direct_asks_as_it_goes(pool, tmp_path):
  files = formats(pool, str(tmp_path / "files"))
  wd = str(tmp_path / "wd")
  ok("embed", f"--workdir={wd}", f"--images={pool['images']}", *files["csv"])
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=direct", "--budget=8")
  assert code == 2 and "--method=direct" in err and "--rounds >= 2" in err, err
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=dropquery", "--budget=8",
                       "--rounds=2", "--target=finetune")
  assert code == 2 and "--target=svm" in err, err
  answers = str(tmp_path / "answers.csv")
  truth = pool["truth"]

  def label(rows, keep=()):
    write_csv(answers, [[p, truth[p]] for p in sorted({*keep, *(r["path"] for r in rows)})])
    return {*keep, *(r["path"] for r in rows)}

  for method in ("uherding", "dropquery", "direct"):
    r = [f"--selection={method}", f"--method={method}", "--budget=16", "--rounds=2"]
    ok("select", f"--workdir={wd}", *r)  # round 1: cold start (DIRECT: random)
    to_label = os.path.join(wd, "selections", method, "to_label.csv")
    done = label(read_csv(to_label))
    assert len(done) == 8
    calls = 0
    while True:  # DIRECT writes each batch it asks about; the others one round
      out = ok("select", f"--workdir={wd}", *r, f"--labels={answers}",
               f"--classes={pool['classes']}")
      rows = read_csv(to_label)
      calls += 1
      if "asks for" not in out:
        break
      assert method == "direct" and rows and not {x["path"] for x in rows} & done
      # without the answers, select says the round is under way and keeps them
      out = ok("select", f"--workdir={wd}", *r)
      assert "under way" in out and read_csv(to_label) == rows, out
      done = label(rows, done)
    assert len(rows) == 8 and not {x["path"] for x in rows} & \
        {p for p in done if p not in {x["path"] for x in rows}}
    if method == "direct":
      # every pick of its second round was asked about (and answered) first
      assert calls > 1 and {x["path"] for x in rows} <= done, out
  # The same DIRECT selection run live on the labeling page (in this process):
  # the same images, asked in the same batches, recorded as `select` records.
  from jaxal.cli.label_page import session  # pylint: disable=g-import-not-at-top
  ok("select", f"--workdir={wd}", "--selection=page", "--method=direct",
     "--budget=16", "--rounds=2")
  with pytest.raises(WorkdirError, match="2 rounds of uherding"):
    session.Session(Workdir(wd, "uherding"), classes_file=pool["classes"], batch=1)
  page_wd = Workdir(wd, "page")
  sess = session.Session(page_wd, classes_file=pool["classes"], batch=1,
                         log=lambda m: None).start()
  try:
    modes = set()
    for _ in range(100):
      r = sess.next_for("ann", wait_s=10)
      if r.get("done"):
        break
      modes.add(r["progress"]["mode"])
      sess.answer("ann", r["image"]["path"], truth[r["image"]["path"]])
    assert r.get("done") and r["progress"]["labeled"] == 16, r
  finally:
    sess.close()
  assert modes == {"direct"}
  by_file, by_page = (Workdir(wd, n).read("selection.json") for n in ("direct", "page"))
  assert by_page["picks"] == by_file["picks"]
  assert by_page["asked"] == by_file["asked"]  # DIRECT's questions, in order
  # `select` reads the page's work as its own: both rounds are done
  out = ok("select", f"--workdir={wd}", "--selection=page", "--method=direct",
           "--budget=16", "--rounds=2", f"--labels={page_wd.file('labels.csv')}",
           f"--classes={pool['classes']}")
  assert "round 2 of 2 already selected" in out, out


_MEASURE = r"""
import json, os, sys, tracemalloc
import numpy as np
from jaxal.cli import import_features
from jaxal.cli.workdir import Workdir
base = sys.argv[1]
tracemalloc.start()
import_features.import_features(Workdir(base + "/wd"), features=base + "/f.npy",
                                images_dir=base + "/img", paths_file=base + "/p.txt",
                                log=lambda m: None)
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1]}))
"""


def test_a_large_import_holds_no_second_copy(tmp_path):
  """100,000 x 768 features (307 MB in float32) imported in a fresh process:
  numpy's and Python's allocations (tracemalloc sees every array) stay under a
  quarter of the array: blocks of a few MB, plus the 100,000 paths."""
  n, d = 100_000, 768
  f = np.lib.format.open_memmap(str(tmp_path / "f.npy"), mode="w+",
                                dtype=np.float32, shape=(n, d))
  for s in range(0, n, 20_000):
    f[s:s + 20_000] = np.random.default_rng(s).standard_normal((20_000, d))
  f.flush()
  del f
  names = [f"d{i // 1000:03d}/{i:06d}.png" for i in range(n)]
  for k in range(n // 1000):
    os.makedirs(tmp_path / "img" / f"d{k:03d}")
  for name in names:
    open(tmp_path / "img" / name, "wb").close()
  (tmp_path / "p.txt").write_text("\n".join(names) + "\n")
  env = dict(os.environ, PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path)], env=env,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  peak = json.loads(r.stdout.strip().splitlines()[-1])["peak"]
  print(f"peak {peak / 2**20:.1f} MiB against an array of {n * d * 4 / 2**20:.0f} MiB")
  assert peak < n * d * 4 / 4, peak
  got = Workdir(str(tmp_path / "wd")).pool()
  want = np.load(str(tmp_path / "f.npy"), mmap_mode="r")
  assert got.features.shape == (n, d) and isinstance(got.features, np.memmap)
  np.testing.assert_array_equal(got.features[::997], want[::997])


def test_pretrain_then_embed_select_train_on_features_without_probabilities(
    pool, tmp_path):
  ssl = str(tmp_path / "ssl")
  empty = tmp_path / "empty"
  empty.mkdir()
  tiny = ["--width=4", "--epochs=2", "--batch_size=16", "--optimizer=lars",
          "--image_size=32"]
  for args, message in (((f"--images={empty}",), "holds no image"),
                        ((f"--images={pool['images']}", "--temperature=0"),
                         "--temperature must be > 0"),
                        ((f"--images={pool['images']}", "--batch_size=1"),
                         "--batch_size must be >= 2"),
                        ((f"--images={pool['images']}", "--batch_size=4096"),
                         "--batch_size=4096 exceeds the 48 images"),
                        ((), "exactly one of --images")):
    code, _, err = jaxal("pretrain", f"--workdir={ssl}", *tiny, *args)
    assert code == 2 and message in err, (args, err)
    assert not os.path.exists(os.path.join(ssl, "result.json"))
  out = ok("pretrain", f"--workdir={ssl}", f"--images={pool['images']}", *tiny)
  assert "SimCLR epoch 2/2" in out and f"--source={ssl}" in out
  out = ok("pretrain", f"--workdir={ssl}", f"--images={pool['images']}", *tiny)
  assert "SimCLR epoch" not in out  # finished: nothing trained again
  code, _, err = jaxal("pretrain", f"--workdir={ssl}", f"--images={pool['images']}",
                       *tiny[:-1], "--image_size=24")
  assert code == 2 and "another setting" in err and "image_size" in err, err
  trained = source.load_workdir(ssl)
  assert trained.self_supervised and trained.model.num_classes == 0
  wd = str(tmp_path / "wd")
  code, _, err = jaxal("embed", f"--workdir={wd}", f"--images={pool['images']}",
                       f"--source={ssl}", "--ensemble")
  assert code == 2 and "SimCLR encoder" in err, err
  out = ok("embed", f"--workdir={wd}", f"--images={pool['images']}", f"--source={ssl}")
  assert "SimCLR encoder: features, no probabilities" in out
  embedded = Workdir(wd).pool()
  assert embedded.probs is None and embedded.features.shape == (48, 32)
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=entropy_inv_div",
                       "--budget=8")
  assert code == 2 and "probs" in err, err
  ok("select", f"--workdir={wd}", "--method=typiclust", "--budget=8")
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  assert len(rows) == 8 and all(r["predicted_class"] == "" for r in rows)
  labels = str(tmp_path / "labels.csv")
  write_csv(labels, [[r["path"], pool["truth"][r["path"]]] for r in rows])
  ok("train", f"--workdir={wd}", f"--labels={labels}",
     f"--classes={pool['classes']}", "--target=svm")
