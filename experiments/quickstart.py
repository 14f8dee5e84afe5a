r"""Quickstart: the paper's pipeline end to end on the offline dataset.

1. Trains the source model M_S (ResNet-18, CIFAR stem, small width) on the
   source part of the generated offline dataset (`jaxal.datasets.procedural`),
   with snapshots (checkpointed; an interrupted run resumes).
2. Induces the paper's imbalance (ratio 0.813, METHOD.md section 2) on the target
   part's training split: that is the unlabeled pool.
3. Computes M_S's features and source-class probabilities of the pool and of the
   target test split (`--ensemble`: averaged over the snapshots, "+ens").
4. Runs every acquisition function, before and after balancing (METHOD.md
   sections 3-4), and scores each selection by classes found, imbalance ratio and
   the ACC_t of a linear SVM on M_S's features (sections 5-6), with G_AL against
   an SVM on the whole pool.

    python3 run.py quickstart --workdir=workdir/quickstart

`--data=generated` skips images and uses generated source-model outputs
(`jaxal.synthetic`) instead: seconds instead of minutes, no feature learning.
Results go to WORKDIR/results.json (written atomically after each cell, so an
interrupted run resumes where it stopped) beside WORKDIR/config.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import numpy as np
from absl import app, flags
from absl import logging as absl_logging

from jaxal import acquisition, balancing, datasets, io, metrics, source, synthetic, target
from jaxal import train
from jaxal.datasets import procedural

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdir/quickstart", "Where results are written.")
flags.DEFINE_integer("seed", 0, "Seed of the data and of every method.")
flags.DEFINE_enum("data", "offline", ["offline", "generated"],
                  "offline: images, a trained M_S; generated: synthetic outputs.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir for the offline dataset "
                    "(default: generated in memory when TFDS is absent, else TFDS's).")
flags.DEFINE_integer("num_classes", 20, "Target classes N_t.")
flags.DEFINE_integer("num_source_classes", 40, "Source classes of M_S.")
flags.DEFINE_integer("test_per_class", 50, "Balanced test images per class.")
# offline
flags.DEFINE_integer("source_per_class", 150, "offline: source training images per class.")
flags.DEFINE_integer("target_per_class", 200, "offline: target images per class before "
                     "imbalance induction.")
flags.DEFINE_integer("width", 8, "offline: ResNet-18 width of M_S (paper: 64).")
flags.DEFINE_integer("epochs", 8, "offline: training epochs of M_S (paper: 90).")
flags.DEFINE_integer("snapshot_every", 2, "offline: epochs between snapshots (paper: 15).")
flags.DEFINE_integer("batch_size", 128, "offline: training batch size.")
flags.DEFINE_float("learning_rate", 0.1, "offline: peak learning rate (cosine).")
flags.DEFINE_bool("ensemble", False, "offline: average the snapshots (+ens).")
# generated
flags.DEFINE_integer("largest_class", 300, "generated: pool size of the largest class.")
flags.DEFINE_integer("smallest_class", 15, "generated: pool size of the rarest class.")
flags.DEFINE_integer("dim", 64, "generated: embedding size d.")
flags.DEFINE_float("separation", 0.5, "generated: class separation.")
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


def generated_outputs():
  """Synthetic M_S outputs of a geometric-imbalance pool and a balanced test set."""
  k = FLAGS.num_classes
  counts = synthetic.geometric_counts(k, FLAGS.largest_class, FLAGS.smallest_class)
  kw = dict(dim=FLAGS.dim, num_source_classes=FLAGS.num_source_classes,
            separation=FLAGS.separation, centroid_seed=FLAGS.seed)
  pool = synthetic.source_outputs(counts, seed=FLAGS.seed, **kw)
  test = synthetic.source_outputs(np.full(k, FLAGS.test_per_class),
                                  seed=FLAGS.seed + 10_000, **kw)
  return pool, test


def offline_outputs(config):
  """Trains M_S on the offline source part; its outputs on the imbalanced pool."""
  data = procedural.OfflineConfig(
      num_source_classes=FLAGS.num_source_classes, num_target_classes=FLAGS.num_classes,
      source_train_per_class=FLAGS.source_per_class, source_test_per_class=1,
      target_train_per_class=FLAGS.target_per_class,
      target_test_per_class=FLAGS.test_per_class, seed=FLAGS.seed)
  load = lambda name, split: datasets.load_arrays(name, split, offline=data,
                                                  data_dir=FLAGS.data_dir)
  src = load("offline_source", "train")
  tgt = load("offline_target", "train")
  tst = load("offline_target", "test")
  counts = datasets.imbalanced_counts(np.bincount(tgt.labels, minlength=tgt.num_classes),
                                      seed=FLAGS.seed)
  keep = datasets.subset_indices(tgt.labels, counts, seed=FLAGS.seed)
  # Checkpoints live under a name derived from what determines them, so a
  # changed config never resumes another config's model.
  src_cfg = {k: config[k] for k in ("seed", "num_source_classes", "num_classes",
                                    "source_per_class", "width", "epochs",
                                    "snapshot_every", "batch_size", "learning_rate")}
  tag = hashlib.sha256(json.dumps(src_cfg, sort_keys=True).encode()).hexdigest()[:12]
  tcfg = train.TrainConfig(num_epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                           learning_rate=FLAGS.learning_rate, schedule="cosine",
                           warmup_epochs=1, snapshot_every=FLAGS.snapshot_every,
                           seed=FLAGS.seed)
  workdir = os.path.abspath(os.path.join(FLAGS.workdir, f"source_{tag}"))
  print(f"M_S: ResNet-18 width {FLAGS.width} on {len(src.labels)} images of "
        f"{src.num_classes} source classes, {FLAGS.epochs} epochs ({workdir})")
  model, state = source.train_model(src.images, src.labels, src.num_classes,
                                    width=FLAGS.width, stem="cifar", config=tcfg,
                                    workdir=workdir)
  variables = (source.snapshot_variables(state, workdir, FLAGS.snapshot_every)
               if FLAGS.ensemble else [train.variables_of(state)])
  images = tgt.images[keep]
  pf, pp = source.outputs(model, variables, images)
  te_f, te_p = source.outputs(model, variables, tst.images)
  return (synthetic.SourceOutputs(pf, pp, tgt.labels[keep]),
          synthetic.SourceOutputs(te_f, te_p, tst.labels))


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  budgets = [int(b) for b in FLAGS.budgets]
  for m in FLAGS.methods:
    if m not in acquisition.METHODS:
      raise app.UsageError(f"--methods: unknown {m!r}; valid: "
                           f"{', '.join(acquisition.METHODS)}")
  keys = ["data", "seed", "num_classes", "num_source_classes", "test_per_class",
          "budgets", "methods", "svm_c"]
  keys += (["source_per_class", "target_per_class", "width", "epochs",
            "snapshot_every", "batch_size", "learning_rate", "ensemble"]
           if FLAGS.data == "offline" else
           ["largest_class", "smallest_class", "dim", "separation"])
  config = {k: FLAGS[k].value for k in keys}
  cfg_path = os.path.join(FLAGS.workdir, "config.json")
  res_path = os.path.join(FLAGS.workdir, "results.json")
  old = io.read_json(cfg_path)
  results = io.read_json(res_path, {}) if old == config else {}
  if old is not None and old != config and not FLAGS.overwrite:
    raise app.UsageError(f"{FLAGS.workdir} holds results of another config; pass "
                         "--overwrite or a new --workdir.")
  io.write_json(cfg_path, config)

  k = FLAGS.num_classes
  pool, test = (offline_outputs(config) if FLAGS.data == "offline"
                else generated_outputs())
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
