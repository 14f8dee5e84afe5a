"""`jaxal report`: classes found, imbalance ratio, labeled images per class and,
with a labeled test set, the target model's ACC_t (main paper section 4,
supplement Eq. 1).

The test set is a labels CSV (`--test_labels`, path,label) and either its
images (`--test_images`: the source model embeds them, any target) or their
embeddings (`--test_features`: a file in the formats of `embed --features`, by
the model that embedded the pool, scored by the SVM target), which is how a
work directory of imported features, with no model, gets its ACC_t.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from jaxal import _plotting, metrics
from jaxal.cli import dedupe, label_files, pool_map, train_predict, workdir
from jaxal.cli.workdir import Log, Pool, Workdir, WorkdirError
from jaxal.datasets import images


def report(wd: Workdir, *, labels_csv: str, classes_file: str,
           test_labels: Optional[str] = None, test_images: Optional[str] = None,
           test_features: Optional[str] = None, test_paths: Optional[str] = None,
           plot: bool = True, projection: str = "pca", log: Log = print) -> dict:
  """Classes found, imbalance ratio and labeled counts per class (main paper
  section 4 metrics; chart sorted by count); with a labeled test set
  (`test_labels` CSV of paths under `test_images`, or of the rows of the
  `test_features` file, with `test_paths` for a .npy), the current target
  model's ACC_t (supplement Eq. 1). Writes WORKDIR/report/report.json and, with
  `plot`, the class-count chart, the pool's map (`pool_map`) and, after
  `jaxal dedupe`, the nearest-neighbour distances' histogram (PNGs)."""
  _check_test_flags(test_labels, test_images, test_features, test_paths)
  pool = wd.pool()
  classes, have = workdir.labeled(wd, pool, labels_csv, classes_file, log=log)
  if not have:
    raise WorkdirError(f"--labels {labels_csv} holds no label yet.")
  y = np.asarray(list(have.values()), np.int64)
  k = len(classes)
  counts = metrics.class_counts(y, k)
  out = {"labeled": int(len(y)), "classes": k,
         "classes_found": metrics.classes_found(y, k),
         "imbalance_ratio": metrics.imbalance_ratio(y, k),
         # pairs, in the classes file's order (JSON objects get sorted)
         "class_counts": [[c, int(n)] for c, n in zip(classes, counts)]}
  if test_labels:
    if test_features:
      y_true, y_pred = _scored_features(wd, pool, classes, test_labels,
                                        test_features, test_paths)
    else:
      y_true, y_pred = _scored_images(wd, classes, test_labels, test_images)
    found = np.flatnonzero(counts)
    out["test_images"] = len(y_true)
    out["acc_t"] = metrics.accuracy_all_classes(y_true, y_pred, found, k)
  workdir.remember_classes(wd, classes, classes_file)
  os.makedirs(wd.file("report"), exist_ok=True)
  if plot:
    out["chart"] = labeled_per_class(classes, counts,
                                     wd.file("report", "class_counts.png"))
    found = dedupe.load(wd)
    out["map"] = pool_map.draw(
        pool_map.coordinates(wd, projection), wd.file("report", "map.png"),
        classes=classes, labeled=have, offered=wd.offered(),
        dup=None if found is None else found.duplicates, method=projection)
    if found is not None:
      out["nn_histogram"] = pool_map.nn_histogram(
          found, wd.file("report", "nn_distances.png"))
  wd.write(os.path.join("report", "report.json"), out)
  log(f"report: {out['labeled']} labeled, {out['classes_found']} of {k} classes "
      f"found, imbalance ratio {out['imbalance_ratio']:.3f}"
      + (f", ACC_t {out['acc_t']:.2f}% on {out['test_images']} test images"
         if "acc_t" in out else ""))
  return out


def _check_test_flags(test_labels, test_images, test_features, test_paths):
  if test_images and test_features:
    raise WorkdirError("--test_features and --test_images do not go together: "
                       "pass the test images' features, or the images for the "
                       "source model to embed.")
  if test_paths and not test_features:
    raise WorkdirError("--test_paths goes with a .npy --test_features file: the "
                       "path of each of its rows.")
  if test_labels and not (test_images or test_features):
    raise WorkdirError("--test_labels needs --test_images (the folder its paths "
                       "are relative to) or --test_features (the test images' "
                       "features).")
  if not test_labels and (test_images or test_features):
    raise WorkdirError(f"--{'test_images' if test_images else 'test_features'} "
                       "needs --test_labels: the CSV (path,label) of the test "
                       "set.")
  if test_labels and not os.path.isfile(test_labels):
    raise WorkdirError(f"--test_labels {test_labels!r} does not exist.")


def _target_for(wd: Workdir, classes: list[str]):
  """(meta, model or None, variables or LinearSVM) of the current target,
  refused when trained on other classes."""
  found = train_predict.current_target(wd)
  if found[0]["classes"] != classes:
    raise WorkdirError("the current target model was trained on other classes; "
                       "rerun `jaxal train`.")
  return found


def _scored(truth: dict[int, str], pred: dict[int, str], classes: list[str],
            test_labels: str) -> tuple[np.ndarray, np.ndarray]:
  """(true, predicted) class ids of the test rows labeled and predicted."""
  ids = {c: i for i, c in enumerate(classes)}
  rows = [(ids[truth[i]], ids[pred[i]]) for i in sorted(truth) if i in pred]
  if not rows:
    raise WorkdirError(f"--test_labels {test_labels} holds no test image to "
                       "score.")
  y_true, y_pred = (np.asarray(v, np.int64) for v in zip(*rows))
  return y_true, y_pred


def _scored_images(wd: Workdir, classes: list[str], test_labels: str,
                   test_images: str) -> tuple[np.ndarray, np.ndarray]:
  """The test images under `test_images` by the current target (through the
  source model); unreadable images are not scored."""
  setup = wd.recorded("embed")
  if setup.get("source") is None:
    raise WorkdirError(f"--test_images needs the model that computed the features, "
                       f"and this work directory's were imported from "
                       f"{setup.get('features')}; pass the test images' features "
                       "by the same model as --test_features=FILE instead.")
  test_paths = images.scan(test_images)
  index = {p: i for i, p in enumerate(test_paths)}
  truth = label_files.read_labels(test_labels, pool=index, classes=classes,
                                  offered=range(len(test_paths)), root=test_images)
  _target_for(wd, classes)
  paths, names, _, errors = train_predict.predict_folder(wd, test_images,
                                                         log=lambda _: None)
  pred = {i: n for i, n in enumerate(names) if paths[i] not in errors}
  return _scored(truth, pred, classes, test_labels)


def _scored_features(wd: Workdir, pool: Pool, classes: list[str],
                     test_labels: str, test_features: str,
                     test_paths: Optional[str]) -> tuple[np.ndarray, np.ndarray]:
  """The labeled rows of the `test_features` file by the current SVM target;
  rows without a label are not scored."""
  from jaxal.cli import import_features  # pylint: disable=g-import-not-at-top
  cur = wd.read(os.path.join("target", "current.json"))
  if cur is not None and cur["kind"] != "svm":
    raise WorkdirError("--test_features: the current target model is a fine-tuned "
                       "network (--target=finetune), which needs images, not "
                       "features; pass --test_images, or train --target=svm.")
  meta, _, svm = _target_for(wd, classes)
  paths, feats = import_features.read_features(
      test_features, test_paths, flag="--test_features", paths_flag="--test_paths")
  want = pool.target_features.shape[1]
  if feats.shape[1] != want:
    raise WorkdirError(f"--test_features {test_features} has {feats.shape[1]} "
                       f"features per row; this work directory's have {want} (the "
                       "same model must embed both).")
  truth = label_files.read_labels(test_labels, pool={p: i for i, p in enumerate(paths)},
                                  classes=classes, offered=range(len(paths)))
  idx = np.asarray(sorted(truth), np.int64)
  names = [meta["classes"][c] for c in svm.predict(feats[idx])]
  return _scored(truth, dict(zip(idx.tolist(), names)), classes, test_labels)


def labeled_per_class(classes: list[str], counts: np.ndarray, path: str) -> str:
  """Writes a bar chart of `counts` (labeled images of each of `classes`),
  largest first, titled with the total and the classes found."""
  plt = _plotting.pyplot()
  counts = np.asarray(counts)
  order = np.argsort(-counts, kind="stable")
  fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(classes) + 1.5), 4.0))
  ax.bar(range(len(order)), counts[order], color="tab:blue")
  ax.set_xticks(range(len(order)))
  ax.set_xticklabels([classes[i] for i in order], rotation=90, fontsize=7)
  ax.set_ylabel("labeled images")
  ax.set_title(f"labeled images per class\n{int(counts.sum())} in all, "
               f"{int((counts > 0).sum())} of {len(classes)} classes found",
               fontsize=10)
  return _plotting.save(fig, plt, path, rect=None, dpi=100)
