r"""Trains the source model M_S with snapshots (method guide §1, supplement 1).

Paper setting (ImageNet minus IMN-100's classes, 224 px, 90 epochs, a snapshot
every 15 epochs, batch 256 over all devices):

    python3 run.py exp train_source --dataset=imagenet_source --data_dir=DATA_DIR \
        --workdir=work/ms_imagenet --width=64 --stem=imagenet --image_size=224

Offline (CPU-sized, the quickstart's source):

    python3 run.py exp train_source --dataset=offline_source --width=8 --epochs=8 \
        --snapshot_every=2 --batch_size=32 --workdir=work/ms_offline

A killed run started again with the same flags resumes from its latest good
checkpoint. 32 px datasets are held in memory and augmented in numpy; others
stream through tf.data (decode, resize, random crop, flip). Per-epoch loss,
accuracy, images/s and time left are printed; the final test accuracy is
written to WORKDIR/result.json beside WORKDIR/config.json. Multi-host: pass
--coordinator_address, --num_processes and --process_id (jax.distributed).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import app, flags
from absl import logging as absl_logging

from jaxal import io, models
from jaxal.datasets import catalog, pipeline
from jaxal.models import distributed, inference, source, train

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "offline_source", "Source dataset (jaxal.datasets.SPECS).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir.")
flags.DEFINE_bool("download", False, "Download / prepare the dataset if needed.")
flags.DEFINE_string("manual_dir", None, "Manually downloaded archives (ImageNet, MIT-67).")
flags.DEFINE_string("workdir", "work/train_source", "Checkpoints and results.")
flags.DEFINE_integer("width", 64, "ResNet-18 width (64 = torchvision's ResNet-18).")
flags.DEFINE_enum("stem", None, ["imagenet", "cifar"], "Default: cifar below 64 px.")
flags.DEFINE_integer("image_size", None, "Training resolution (default: the dataset's).")
flags.DEFINE_integer("epochs", 90, "Epochs.")
flags.DEFINE_integer("snapshot_every", 15, "Epochs between kept snapshots.")
flags.DEFINE_integer("batch_size", 256, "Global batch size.")
flags.DEFINE_float("learning_rate", 0.1, "Peak learning rate.")
flags.DEFINE_enum("schedule", "step", ["constant", "step", "cosine"], "LR schedule.")
flags.DEFINE_integer("warmup_epochs", 0, "Linear warm-up epochs (cosine).")
flags.DEFINE_float("weight_decay", 1e-4, "Weight decay.")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator host:port.")
flags.DEFINE_integer("num_processes", None, "Processes (multi-host).")
flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  if FLAGS.coordinator_address:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id)
  spec = catalog.spec(FLAGS.dataset)
  size = FLAGS.image_size or spec.image_size
  stem = FLAGS.stem or ("cifar" if size < 64 else "imagenet")
  step_epochs = tuple(int(FLAGS.epochs * f) for f in (1 / 3, 2 / 3, 8 / 9))
  config = train.TrainConfig(
      num_epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate, schedule=FLAGS.schedule,
      step_epochs=step_epochs, warmup_epochs=FLAGS.warmup_epochs,
      weight_decay=FLAGS.weight_decay, snapshot_every=FLAGS.snapshot_every,
      compute_dtype=FLAGS.compute_dtype, seed=FLAGS.seed).validate()
  run_config = {k: FLAGS[k].value for k in (
      "dataset", "width", "image_size", "epochs", "snapshot_every", "batch_size",
      "learning_rate", "schedule", "warmup_epochs", "weight_decay", "compute_dtype",
      "seed")} | {"stem": stem, "image_size": size}
  cfg_path = os.path.join(FLAGS.workdir, "config.json")
  old = io.read_json(cfg_path)
  if old is not None and old != run_config:
    raise app.UsageError(f"{FLAGS.workdir} holds a run with another config "
                         f"({old}); use a new --workdir.")
  if jax.process_index() == 0:
    io.write_json(cfg_path, run_config)
    # M_S's class names, so `jaxal select` can name the source model's guesses.
    io.write_text(os.path.join(FLAGS.workdir, "classes.txt"),
                  "\n".join(catalog.class_names(FLAGS.dataset)) + "\n")
  load_kw = dict(data_dir=FLAGS.data_dir, download=FLAGS.download,
                 manual_dir=FLAGS.manual_dir)
  num_classes = catalog.num_classes(FLAGS.dataset)
  workdir = os.path.abspath(os.path.join(FLAGS.workdir, "checkpoints"))
  in_memory = size <= 64 and spec.image_size <= 64  # numpy route, no tf.data
  if in_memory:
    tr = catalog.load_arrays(FLAGS.dataset, "train", image_size=size, **load_kw)
    model, state = source.train_model(tr.images, tr.labels, num_classes,
                                      width=FLAGS.width, stem=stem, config=config,
                                      workdir=workdir)
  else:
    model = models.ResNet18(num_classes=num_classes, width=FLAGS.width, stem=stem)
    ds = catalog.load(FLAGS.dataset, "train", **load_kw)
    n = len(catalog.load_labels(FLAGS.dataset, "train", **load_kw))
    batches, steps = pipeline.tf_train_batches(ds, image_size=size,
                                               batch_size=FLAGS.batch_size,
                                               seed=FLAGS.seed, num_examples=n)
    state = train.fit(model, config, batches, steps_per_epoch=steps,
                      image_shape=(size, size, 3), workdir=workdir)
  variables = train.variables_of(state)
  if in_memory:
    te = catalog.load_arrays(FLAGS.dataset, "test", image_size=size, **load_kw)
    _, probs = source.outputs(model, [variables], te.images)
    labels = te.labels
  else:
    labels = []

    def images():  # keeps the labels of the batches it hands over
      for x, y in pipeline.tf_eval_batches(catalog.load(FLAGS.dataset, "test", **load_kw),
                                           image_size=size, batch_size=FLAGS.batch_size):
        labels.append(y)
        yield x

    probs = np.concatenate([p for _, p in inference.predict_batches(
        model, variables, images(), batch_size=FLAGS.batch_size)])
    labels = np.concatenate(labels)
  acc = float(np.mean(np.argmax(probs, 1) == labels))
  print(f"test top-1 accuracy on {FLAGS.dataset}: {100 * acc:.2f}% "
        f"({len(labels)} images)")
  if jax.process_index() == 0:
    io.write_json(os.path.join(FLAGS.workdir, "result.json"),
                  {"test_accuracy": acc, "test_images": len(labels),
                   "epochs": FLAGS.epochs})


if __name__ == "__main__":
  app.run(main)
