r"""Pretrains SimCLR on a dataset's pool without its labels (jaxal.models.simclr).

The pool is the one the tables use: the train split made imbalanced by
`imbalanced_counts` (method guide §2) with --data_seed, or the whole split
(--pool=full). The result is a source work directory for `jaxal embed`
(`--tfds=DATASET:train --source=WORKDIR`) or any other use of its features; the
tables' Table 14 pretrains its own per pool, into its --workdir.

    python3 run.py exp train_ssl --dataset=offline_target --workdir=work/ssl_near \
        --width=8 --epochs=30 --batch_size=256 --temperature=0.2
    python3 run.py exp train_ssl --dataset=cifar100 --data_dir=DATA_DIR \
        --workdir=work/ssl_cifar100 --width=64 --epochs=500 --batch_size=512 \
        --temperature=0.1                      # SCAN's CIFAR recipe, on a GPU

A killed run started again with the same flags resumes from its last finished
epoch. Multi-host: --coordinator_address, --num_processes, --process_id
(jax.distributed), every process holding the pool and feeding its share.
"""

from __future__ import annotations

import sys

import numpy as np
from absl import app, flags
from absl import logging as absl_logging

from jaxal.datasets import catalog, imbalance
from jaxal.errors import InputError
from jaxal.models import distributed, simclr, ssl_source

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "offline_target", "Dataset whose pool to pretrain on "
                    "(jaxal.datasets.SPECS).")
flags.DEFINE_enum("pool", "imbalanced", ["imbalanced", "full"], "The imbalanced "
                  "pool of the tables, or the whole train split.")
flags.DEFINE_integer("data_seed", 0, "Seed of the imbalance induction.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir.")
flags.DEFINE_string("workdir", "work/train_ssl", "Checkpoints and config.")
flags.DEFINE_integer("image_size", None, "Resolution (default: the dataset's).")
flags.DEFINE_enum("arch", "resnet18", ["resnet18", "resnet50"], "Encoder.")
flags.DEFINE_integer("width", 64, "ResNet width.")
flags.DEFINE_enum("stem", None, ["imagenet", "cifar"], "Default: cifar below 64 px.")
flags.DEFINE_integer("epochs", 500, "Epochs.")
flags.DEFINE_integer("batch_size", 512, "Global batch size (>= 2).")
flags.DEFINE_float("temperature", 0.1, "NT-Xent temperature (> 0).")
flags.DEFINE_float("learning_rate", None, "Peak rate (default 0.4 x batch / 512).")
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "lars"], "Optimizer.")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
flags.DEFINE_integer("snapshot_every", 0, "Epochs between kept snapshots (0: none).")
flags.DEFINE_integer("seed", 0, "Seed (order, augmentations, initialisation).")
flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator host:port.")
flags.DEFINE_integer("num_processes", None, "Processes (multi-host).")
flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")


def pool_images(dataset: str, pool: str, *, data_seed: int, data_dir, image_size):
  """uint8 pixels of the pool the tables build for `dataset` (labels only
  choose which images; they are not returned)."""
  split = catalog.load_arrays(dataset, "train", data_dir=data_dir,
                              image_size=image_size)
  if pool == "full":
    return split.images
  counts = imbalance.imbalanced_counts(
      np.bincount(split.labels, minlength=split.num_classes), seed=data_seed)
  return split.images[imbalance.subset_indices(split.labels, counts, seed=data_seed)]


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  if FLAGS.coordinator_address:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id)
  try:
    config = simclr.SimCLRConfig(
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
        temperature=FLAGS.temperature, learning_rate=FLAGS.learning_rate,
        optimizer=FLAGS.optimizer, compute_dtype=FLAGS.compute_dtype,
        snapshot_every=FLAGS.snapshot_every, seed=FLAGS.seed).validate()
    size = FLAGS.image_size or catalog.spec(FLAGS.dataset).image_size
    images = pool_images(FLAGS.dataset, FLAGS.pool, data_seed=FLAGS.data_seed,
                         data_dir=FLAGS.data_dir, image_size=size)
    stem = FLAGS.stem or ("cifar" if size < 64 else "imagenet")
    print(f"SimCLR on the {FLAGS.pool} pool of {FLAGS.dataset}: {len(images)} images "
          f"at {size} px, {FLAGS.arch} width {FLAGS.width}, {FLAGS.epochs} epochs "
          f"-> {FLAGS.workdir}", flush=True)
    result = ssl_source.pretrain_workdir(images, FLAGS.workdir, width=FLAGS.width,
                                         stem=stem, arch=FLAGS.arch, config=config)
  except InputError as e:  # the config's fields and these flags share their names
    named = e.field and e.field in FLAGS
    print(f"error: {e.renamed(f'--{e.field}') if named else e}", file=sys.stderr)
    return 2
  print(f"done: loss {result['loss']:.4f}, {result['images_per_second']:.0f} "
        f"images/s; embed with `jaxal embed --source={FLAGS.workdir}`")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
