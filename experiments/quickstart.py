r"""Quickstart: single-shot acquisition and balancing on generated outputs.

Until the image pipeline lands, the main job runs the paper's selection and
scoring (METHOD.md sections 3, 4 and 6) on generated source-model outputs of an
imbalanced pool (`jaxal.synthetic`): every acquisition function, before and after
balancing, is scored by classes found, imbalance ratio and the ACC_t of a linear
SVM on the selected samples, with G_AL against an SVM on the whole pool.

    python3 run.py quickstart --workdir=workdir/quickstart

Results go to WORKDIR/results.json (written atomically after each cell, so an
interrupted run resumes where it stopped) beside WORKDIR/config.json.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from absl import app, flags

from jaxal import acquisition, balancing, io, metrics, synthetic, target

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdir/quickstart", "Where results are written.")
flags.DEFINE_integer("seed", 0, "Seed of the data and of every method.")
flags.DEFINE_integer("num_classes", 20, "Target classes N_t.")
flags.DEFINE_integer("largest_class", 300, "Pool images of the most frequent class.")
flags.DEFINE_integer("smallest_class", 15, "Pool images of the rarest class.")
flags.DEFINE_integer("test_per_class", 30, "Balanced test images per class.")
flags.DEFINE_integer("dim", 64, "Embedding size d.")
flags.DEFINE_integer("num_source_classes", 50, "Source classes of M_S.")
flags.DEFINE_float("separation", 0.5, "Class separation of the generated data.")
flags.DEFINE_list("budgets", ["40", "80", "160"], "Budgets b.")
flags.DEFINE_list("methods", ["random", "entropy", "entropy_inv_div",
                              "least_confidence_inv_div", "margin_div", "coreset"],
                  "Acquisition functions (see jaxal.acquisition.METHODS).")
flags.DEFINE_float("svm_c", 1.0, "C of the linear SVM target model.")
flags.DEFINE_bool("overwrite", False, "Discard results of a different config.")


def svm_acc_t(train_x, train_y, test_x, test_y, num_classes, c):
  """ACC_t of the paper's linear SVM target model (jaxal.target)."""
  pred = target.svm_predict(train_x, train_y, test_x, C=c)
  return metrics.accuracy_all_classes(test_y, pred, np.unique(train_y), num_classes)


def main(argv):
  del argv
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  budgets = [int(b) for b in FLAGS.budgets]
  for m in FLAGS.methods:
    if m not in acquisition.METHODS:
      raise app.UsageError(f"--methods: unknown {m!r}; valid: "
                           f"{', '.join(acquisition.METHODS)}")
  config = {k: FLAGS[k].value for k in (
      "seed", "num_classes", "largest_class", "smallest_class", "test_per_class",
      "dim", "num_source_classes", "separation", "budgets", "methods", "svm_c")}
  cfg_path = os.path.join(FLAGS.workdir, "config.json")
  res_path = os.path.join(FLAGS.workdir, "results.json")
  old = io.read_json(cfg_path)
  results = io.read_json(res_path, {}) if old == config else {}
  if old is not None and old != config and not FLAGS.overwrite:
    raise app.UsageError(f"{FLAGS.workdir} holds results of another config; pass "
                         "--overwrite or a new --workdir.")
  io.write_json(cfg_path, config)

  k = FLAGS.num_classes
  counts = synthetic.geometric_counts(k, FLAGS.largest_class, FLAGS.smallest_class)
  kw = dict(dim=FLAGS.dim, num_source_classes=FLAGS.num_source_classes,
            separation=FLAGS.separation, centroid_seed=FLAGS.seed)
  pool = synthetic.source_outputs(counts, seed=FLAGS.seed, **kw)
  test = synthetic.source_outputs(np.full(k, FLAGS.test_per_class),
                                  seed=FLAGS.seed + 10_000, **kw)
  print(f"pool: {len(pool.labels)} samples, {k} classes, imbalance ratio "
        f"{metrics.imbalance_ratio(pool.labels, k):.3f}; test: {len(test.labels)}")

  if "full" not in results:
    results["full"] = svm_acc_t(pool.features, pool.labels, test.features,
                                test.labels, k, FLAGS.svm_c)
    io.write_json(res_path, results)
  full = results["full"]

  for method in FLAGS.methods:
    for b in budgets:
      for balanced in (False, True):
        key = f"{method}|{b}|{'balanced' if balanced else 'plain'}"
        if key in results:
          continue
        t0 = time.perf_counter()
        if balanced:
          ranking = (acquisition.select(method, budget=b, probs=pool.probs,
                                        features=pool.features, seed=FLAGS.seed)
                     if method in ("random", "coreset") else
                     acquisition.rank(method, probs=pool.probs))
          idx = balancing.balanced_select(ranking, pool.features, pool.labels, b, k)
        else:
          idx = acquisition.select(method, budget=b, probs=pool.probs,
                                   features=pool.features, seed=FLAGS.seed)
        y = pool.labels[idx]
        results[key] = {
            "classes_found": metrics.classes_found(y, k),
            "imbalance_ratio": metrics.imbalance_ratio(y, k),
            "acc_t": svm_acc_t(pool.features[idx], y, test.features, test.labels,
                               k, FLAGS.svm_c),
            "seconds": time.perf_counter() - t0,
        }
        io.write_json(res_path, results)

  print(f"\nFull (SVM on the whole pool): ACC_t {full:.2f}")
  header = f"{'method':26s} {'':9s}" + "".join(f"  b={b:<5d}" for b in budgets)
  for stat, fmt in (("acc_t", "{:7.2f}"), ("classes_found", "{:7d}"),
                    ("imbalance_ratio", "{:7.3f}")):
    print(f"\n{stat}\n{header}" + ("     G_AL" if stat == "acc_t" else ""))
    for method in FLAGS.methods:
      for mode in ("plain", "balanced"):
        row = [results[f"{method}|{b}|{mode}"][stat] for b in budgets]
        line = f"{method:26s} {mode:9s}" + "".join("  " + fmt.format(v) for v in row)
        if stat == "acc_t":
          line += f"  {metrics.global_score([row], [full]):7.3f}"
        print(line)
  print(f"\nresults: {res_path}")


if __name__ == "__main__":
  app.run(main)
