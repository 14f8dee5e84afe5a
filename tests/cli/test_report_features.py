"""`jaxal report --test_features`: ACC_t of the SVM target on a labeled test set
given as embeddings, for a work directory of imported features (no model)."""

import json
import os
import re
import shutil

import numpy as np
import pytest

from jaxal import metrics
from jaxal.cli import label_files as labels_lib
from jaxal.models import target
from tests.cli.test_cli import jaxal, ok, read_csv, write_csv
from tests.cli.test_own_model import formats, pool  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def trained(pool, tmp_path_factory):  # noqa: F811
  """A work directory of imported features (CSV), 20 random images labeled,
  the SVM target trained; and a test set: noisy copies of the pool's features
  under other paths, in every format, 40 of its 48 rows labeled."""
  base = str(tmp_path_factory.mktemp("report_features"))
  files = formats(pool, os.path.join(base, "files"))
  wd = os.path.join(base, "wd")
  ok("embed", f"--workdir={wd}", f"--images={pool['images']}", *files["csv"])
  ok("select", f"--workdir={wd}", "--method=random", "--budget=20")
  answers = os.path.join(base, "labels.csv")
  write_csv(answers, [[r["path"], pool["truth"][r["path"]]]
                      for r in read_csv(os.path.join(wd, "to_label.csv"))])
  ok("train", f"--workdir={wd}", f"--labels={answers}",
     f"--classes={pool['classes']}", "--target=svm")
  rng = np.random.default_rng(3)
  feats = (pool["feats"] + rng.normal(scale=8.0, size=pool["feats"].shape)
           ).astype(np.float32)
  paths = [f"test/{p}" for p in pool["paths"]]
  t = lambda name: os.path.join(base, name)  # noqa: E731
  np.save(t("t.npy"), feats)
  with open(t("t_paths.txt"), "w") as f:
    f.write("\n".join(paths) + "\n")
  np.savez(t("t.npz"), features=feats, paths=np.array(paths))
  write_csv(t("t.csv"), [[q, *map(repr, map(float, r))] for q, r in zip(paths, feats)],
            header=["path", *[f"x{j}" for j in range(feats.shape[1])]])
  test_csv = t("test.csv")
  scored = list(range(0, 48, 6)) + list(range(1, 48, 6)) + list(range(2, 48, 6)) + \
      list(range(3, 48, 6)) + list(range(4, 48, 6))  # 40 rows; 8 not scored
  write_csv(test_csv, [[paths[i], pool["truth"][pool["paths"][i]]] for i in scored])
  return dict(base=base, wd=wd, labels=answers, classes=pool["classes"],
              feats=feats, paths=paths, scored=scored, test_csv=test_csv,
              files={"npy": [f"--test_features={t('t.npy')}",
                             f"--test_paths={t('t_paths.txt')}"],
                     "npz": [f"--test_features={t('t.npz')}"],
                     "csv": [f"--test_features={t('t.csv')}"]},
              truth=pool["truth"], pool_paths=pool["paths"])


@pytest.fixture
def wd(trained, tmp_path):
  """A copy of the trained work directory, to change or to see unchanged."""
  path = str(tmp_path / "wd")
  shutil.copytree(trained["wd"], path)
  return path


def report_args(trained, wd, *more):
  return ("report", f"--workdir={wd}", f"--labels={trained['labels']}",
          f"--classes={trained['classes']}", "--plot=false", *more)


def test_acc_t_equals_the_svm_predictions_scored_by_hand(trained, wd):
  classes = labels_lib.read_classes(trained["classes"])
  with open(os.path.join(wd, "target", "current.json")) as f:
    key = json.load(f)["key"]
  svm = target.LinearSVM.load(os.path.join(wd, "target", key, "svm.npz"))
  idx = np.asarray(trained["scored"])
  y_pred = svm.predict(trained["feats"][idx])
  ids = {c: k for k, c in enumerate(classes)}
  y_true = np.array([ids[trained["truth"][trained["pool_paths"][i]]] for i in idx])
  found = np.unique([ids[r["label"]] for r in read_csv(trained["labels"])])
  want = metrics.accuracy_all_classes(y_true, y_pred, found, len(classes))
  assert 0 < want < 100, want  # the check means something
  for name, flags in trained["files"].items():
    out = ok(*report_args(trained, wd, f"--test_labels={trained['test_csv']}",
                          *flags))
    with open(os.path.join(wd, "report", "report.json")) as f:
      rep = json.load(f)
    assert rep["acc_t"] == want, name
    assert rep["test_images"] == 40, name
    assert rep["labeled"] == 20
    assert f"ACC_t {want:.2f}% on 40 test images" in out, out


def test_other_width_is_refused_naming_both_and_nothing_is_written(trained, wd):
  narrow = os.path.join(trained["base"], "narrow.npz")
  np.savez(narrow, features=trained["feats"][:, :12], paths=np.array(trained["paths"]))
  code, _, err = jaxal(*report_args(trained, wd, f"--test_labels={trained['test_csv']}",
                                    f"--test_features={narrow}"))
  assert code == 2, err
  assert (f"--test_features {narrow} has 12 features per row; this work "
          "directory's have 16") in err, err
  assert not os.path.exists(os.path.join(wd, "report"))


def test_both_test_sources_and_a_test_path_without_a_row_are_refused(trained, wd):
  npz = trained["files"]["npz"][0]
  code, _, err = jaxal(*report_args(trained, wd, f"--test_labels={trained['test_csv']}",
                                    npz, f"--test_images={trained['base']}"))
  assert code == 2 and "--test_features and --test_images" in err, err
  missing = os.path.join(trained["base"], "missing.csv")
  rows = [[p, trained["truth"][q]] for p, q in
          zip(trained["paths"][:5], trained["pool_paths"][:5])]
  rows.insert(2, ["test/not embedded.png", rows[0][1]])
  write_csv(missing, rows)
  code, _, err = jaxal(*report_args(trained, wd, f"--test_labels={missing}", npz))
  assert code == 2 and re.search(r"missing\.csv:4: unknown path 'test/not embedded"
                                 r"\.png'", err), err
  assert not os.path.exists(os.path.join(wd, "report"))


def test_bad_flags_exit_2_naming_the_flag(trained, wd):
  files = trained["files"]
  cases = (
      ((files["npz"][0],), "--test_features needs --test_labels"),
      ((f"--test_labels={trained['test_csv']}",), "--test_labels needs --test_images"),
      ((f"--test_labels={trained['test_csv']}", files["npy"][0]), "--test_paths"),
      ((f"--test_labels={trained['test_csv']}", files["npz"][0], files["npy"][1]),
       "--test_paths (one image path a line) goes with a .npy --test_features"),
      ((f"--test_labels={trained['test_csv']}", files["npy"][1]),
       "--test_paths goes with a .npy --test_features"),
      ((f"--test_labels={trained['test_csv']}", f"--test_images={trained['base']}"),
       "pass the test images' features by the same model as --test_features"),
      ((f"--test_labels={trained['test_csv']}", "--test_features=nowhere.npz"),
       "--test_features nowhere.npz is not a file"),
      (("--test_feature=x.npz",), "Unknown command line flag 'test_feature'"),
  )
  for args, message in cases:
    code, _, err = jaxal(*report_args(trained, wd, *args))
    assert code == 2 and message in err, (args, err)
  # a fine-tuned target needs images: refused before any file is read
  with open(os.path.join(wd, "target", "current.json")) as f:
    cur = json.load(f)
  with open(os.path.join(wd, "target", "current.json"), "w") as f:
    json.dump(dict(cur, kind="finetune"), f)
  code, _, err = jaxal(*report_args(trained, wd, f"--test_labels={trained['test_csv']}",
                                    files["npz"][0]))
  assert code == 2 and "fine-tuned network" in err and "--test_images" in err, err
  assert not os.path.exists(os.path.join(wd, "report"))
