"""`jaxal report`: classes found, imbalance ratio, labeled images per class and,
with a labeled test set, the target model's ACC_t (main paper section 4,
supplement Eq. 1)."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from jaxal import metrics
from jaxal.cli import labels, train_predict, workdir
from jaxal.cli.workdir import Log, Workdir, WorkdirError
from jaxal.datasets import images
from jaxal.experiments import plots


def report(wd: Workdir, *, labels_csv: str, classes_file: str,
           test_labels: Optional[str] = None, test_images: Optional[str] = None,
           plot: bool = True, log: Log = print) -> dict:
  """Classes found, imbalance ratio and labeled counts per class (main paper
  section 4 metrics; chart sorted by count); with a labeled test set
  (`test_labels` CSV of paths under `test_images`), the current target model's
  ACC_t (supplement Eq. 1). Writes WORKDIR/report/report.json (+ .png)."""
  if bool(test_labels) != bool(test_images):
    raise WorkdirError("--test_labels and --test_images go together: the CSV of "
                       "test labels and the folder its paths are relative to.")
  pool = wd.pool()
  classes, have = workdir.labeled(wd, pool, labels_csv, classes_file)
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
    test_paths = images.scan(test_images)
    truth = labels.read_labels(test_labels, pool={p: i for i, p in enumerate(test_paths)},
                               classes=classes, offered=range(len(test_paths)),
                               root=test_images)
    meta, _, _ = train_predict.current_target(wd)
    if meta["classes"] != classes:
      raise WorkdirError("the current target model was trained on other classes; "
                         "rerun `jaxal train`.")
    paths, names, _, errors = train_predict.predict_folder(wd, test_images,
                                                           log=lambda _: None)
    ids = {c: i for i, c in enumerate(classes)}
    rows = [(ids[truth[i]], ids[names[i]]) for i in sorted(truth)
            if paths[i] not in errors]
    y_true, y_pred = (np.asarray(v, np.int64) for v in zip(*rows))
    found = np.flatnonzero(counts)
    out["test_images"] = len(rows)
    out["acc_t"] = metrics.accuracy_all_classes(y_true, y_pred, found, k)
  workdir.remember_classes(wd, classes, classes_file)
  os.makedirs(wd.file("report"), exist_ok=True)
  if plot:
    out["chart"] = plots.labeled_per_class(classes, counts,
                                           wd.file("report", "class_counts.png"))
  wd.write(os.path.join("report", "report.json"), out)
  log(f"report: {out['labeled']} labeled, {out['classes_found']} of {k} classes "
      f"found, imbalance ratio {out['imbalance_ratio']:.3f}"
      + (f", ACC_t {out['acc_t']:.2f}% on {out['test_images']} test images"
         if "acc_t" in out else ""))
  return out
