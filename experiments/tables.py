r"""Regenerates one table of the paper: python3 run.py exp tables --table=N.

    # the paper's setting (a GPU host; data prepared with TFDS, M_S from train_source)
    python3 run.py exp tables --table=6 --data=real --data_dir=DATA_DIR \
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    # the same protocol on the offline data at CPU size (the default)
    python3 run.py exp tables --table=6
    # a sweep over 4 GPUs or hosts sharing WORKDIR, then the tables of what finished
    python3 run.py exp tables --table=6 --data=real ... --shard=2/4
    python3 run.py exp tables --table=6 --data=real ... --render_only
    # iterative selection in 4 rounds beside the single shot (same workdir)
    python3 run.py exp tables --table=2 --rounds=4
    # Table 15: every function over rounds (3 by default), with UHerding,
    # DropQuery and DIRECT, which read the target model between rounds
    python3 run.py exp tables --table=15
    # Table 16: M_S's source-class probabilities against the class names'
    # zero-shot ones, and the balancing step led by the zero-shot guesses
    python3 run.py exp tables --table=16 --data=real ... --zeroshot_source=work/siglip2

Defaults come from `experiments/configs/table_N.py` (`get_config()`); flags
override them. All tables of one --workdir share their cells (Table 4 reuses Table
2's runs), every finished cell is saved at once, and a rerun resumes. Outputs:
WORKDIR/cells.csv, WORKDIR/tables/table_N.{md,csv,tex}, WORKDIR/plots/*.png.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from jaxal import zeroshot
from jaxal.datasets import procedural
from jaxal.errors import InputError
from jaxal.experiments import runner, protocol, sweep

FLAGS = flags.FLAGS
flags.DEFINE_integer("table", None, "Paper table to regenerate, 2-12; 13: the "
                     "cold-start functions that followed the paper beside its own; "
                     "14: the same on SimCLR features of each pool; 15: 14 over "
                     "rounds with UHerding, DropQuery and DIRECT; 16: zero-shot "
                     "probabilities of the class names, and the balancing step "
                     "led by their guesses.")
flags.DEFINE_enum("data", "offline", ["real", "offline"],
                  "real: the paper's datasets (TFDS); offline: the project's data.")
flags.DEFINE_list("datasets", None, "Datasets (default: the config's for --data).")
flags.DEFINE_list("budgets", None, "Budgets b (default: the config's for --data).")
flags.DEFINE_list("methods", None, "Acquisition functions (jaxal.acquisition.METHODS).")
flags.DEFINE_list("seeds", None, "Seeds of random and core-set (default 0-4).")
flags.DEFINE_string("target", None, "svm or finetune for every dataset (default: "
                    "each dataset's, both in Table 12).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir of the real datasets.")
flags.DEFINE_string("source_workdir", None, "--data=real: a train_source workdir, "
                    "or weights imported with `jaxal import-source`.")
flags.DEFINE_bool("allow_source_seen_target", False, "--data=real: run IMN-100 on "
                  "an imported ImageNet-1k source, which has seen IMN-100's classes "
                  "(refused otherwise: not the paper's setting).")
flags.DEFINE_string("workdir", None, "Results (default: workdir/tables_<data>).")
flags.DEFINE_string("shard", "0/1", "i/n: run every n-th cell starting at i.")
flags.DEFINE_bool("render_only", False, "Only render what has finished.")
flags.DEFINE_integer("rounds", None, "1: the paper's single-shot selection (the "
                     "default but in Table 15, 3). R > 1: iterative selection in R "
                     "rounds, each after the first re-selecting from the target "
                     "model (jaxal.rounds; the balancing step, where a table has "
                     "it, in every round), written as table_N_roundsR.")
flags.DEFINE_enum("pixels", "auto", ["auto", "memory", "stream"],
                  "How pools and test splits are read: stream (from TFDS, a few "
                  "batches in memory; only the labeled images are decoded again "
                  "for fine-tuning), memory (whole splits held), auto (stream the "
                  "real datasets, hold the offline data). Results are identical.")
flags.DEFINE_bool("plots", True, "Write PNG plots (needs matplotlib).")
flags.DEFINE_integer("data_seed", 0, "Seed of the pools (imbalance induction, "
                     "balanced subsets) and of the offline data and M_S.")
flags.DEFINE_integer("balanced_per_class", None, "Balanced subsets' images per class "
                     "(default: the supplement's 200, 80 for MIT-67).")
flags.DEFINE_enum("rule", "ratio", ["ratio", "difference"], "Balancing rule.")
flags.DEFINE_enum("majority_distance", "nearest", ["nearest", "farthest"],
                  "Balancing: distance to the nearest majority centroid (the "
                  "paper) or the farthest (Emam et al.).")
# Target models (default: the config's for --data, else TargetSettings').
flags.DEFINE_float("dedupe", None, "Near-duplicates: images of a pool at cosine "
                   "distance <= this on M_S's features are one group, and a cell "
                   "selects at most one of a group (jaxal.curation). Default: none.")
flags.DEFINE_float("svm_c", None, "C of the linear SVM target model (1.0).")
flags.DEFINE_integer("finetune_epochs", None, "Fine-tuning epochs (30; offline 8).")
flags.DEFINE_integer("finetune_batch_size", None, "Fine-tuning batch (64; offline 32).")
flags.DEFINE_float("finetune_learning_rate", None, "Fine-tuning peak learning rate "
                   "(0.01; offline 0.02).")
# offline data and M_S sizes
flags.DEFINE_integer("offline_source_classes", 40, "offline: source classes.")
flags.DEFINE_integer("offline_target_classes", 20, "offline: classes of each target.")
flags.DEFINE_integer("offline_source_per_class", 150, "offline: source images per class.")
flags.DEFINE_integer("offline_target_per_class", 200, "offline: target pool images per "
                     "class before imbalance induction.")
flags.DEFINE_integer("offline_test_per_class", 50, "offline: test images per class.")
flags.DEFINE_integer("width", 8, "offline: ResNet-18 width of M_S.")
flags.DEFINE_integer("epochs", 8, "offline: M_S training epochs.")
flags.DEFINE_integer("snapshot_every", 2, "offline: epochs between snapshots (+ens).")
flags.DEFINE_integer("batch_size", 32, "offline: M_S training batch size.")
flags.DEFINE_float("learning_rate", 0.1, "offline: M_S peak learning rate (cosine).")
# Table 14: SimCLR pretrained on each pool (jaxal.models.simclr)
flags.DEFINE_integer("ssl_width", 8, "Table 14: ResNet-18 width of the SimCLR encoder.")
flags.DEFINE_integer("ssl_epochs", 30, "Table 14: SimCLR epochs on each pool.")
flags.DEFINE_integer("ssl_batch_size", 256, "Table 14: SimCLR batch size.")
flags.DEFINE_float("ssl_temperature", 0.2, "Table 14: NT-Xent temperature.")
flags.DEFINE_float("ssl_learning_rate", None, "Table 14: SimCLR peak learning rate "
                   "(default 0.4 x batch / 512).")
# Table 16: zero-shot guesses (jaxal.zeroshot, jaxal.guesses)
flags.DEFINE_string("zeroshot_source", None, "Table 16: a SigLIP source (`jaxal "
                    "import-source --arch=siglip`) whose towers read each dataset's "
                    "class names; required with --data=real. Default offline: a "
                    "stand-in (class centroids of M_S's features plus noise).")
flags.DEFINE_string("zeroshot_prompts", None, "Table 16: a file of prompt templates, "
                    "one a line with '{}' for the class name (default: 'a photo of "
                    "a {}.').")
flags.DEFINE_float("zeroshot_noise", 1.0, "Table 16, offline stand-in: noise added "
                   "to each class's text embedding, in within-class spreads.")
flags.DEFINE_float("guess_weight", 0.5, "Table 16, +guess rows: how much a pick "
                   "guessed as a class counts for it until it has an answer.")


# The settings (runner.TableRun's and protocol.Settings' fields, as
# runner.SetupError names them) whose flag is not their own name: M_S's
# (`source.`) are the offline flags without a prefix, SimCLR's (`ssl.`) take
# --ssl_, the offline sizes --offline_; every other flag is its setting's name.
_FLAG_OF = {
    "tables": "table", "targets": "target",
    "offline.num_source_classes": "offline_source_classes",
    "offline.num_target_classes": "offline_target_classes",
    "offline.source_train_per_class": "offline_source_per_class",
    "offline.target_train_per_class": "offline_target_per_class",
    "offline.target_test_per_class": "offline_test_per_class",
    "zeroshot.guess_weight": "guess_weight",
}


def flag_of(field):
  """The flag of setting `field`, or None where no flag sets it."""
  if field in _FLAG_OF:
    return _FLAG_OF[field]
  group, _, name = field.rpartition(".")
  flag = {"": name, "source": name, "ssl": f"ssl_{name}", "targets": name,
          "zeroshot": f"zeroshot_{name}"}.get(group)
  return flag if flag in FLAGS else None


def message(e: InputError) -> str:
  """`e`'s message, naming its field as this command's flag where one sets it."""
  flag = flag_of(e.field) if e.field else None
  return e.renamed(f"--{flag}") if flag else str(e)


def _ints(values, flag):
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise InputError(f"--{flag} must be integers, got {values}.",
                     field=flag) from None


def table_run(table: int, tables: tuple) -> runner.TableRun:
  """Flags over the table's config -> TableRun (validated later, before work)."""
  if table is None or not 2 <= table <= 16:
    raise InputError(f"--table must be one of 2-16, got {table}.", field="table")
  config = importlib.import_module(f"experiments.configs.table_{table}").get_config()
  data = FLAGS.data
  datasets = tuple(FLAGS.datasets or config[data]["datasets"])
  budgets = _ints(FLAGS.budgets or config[data]["budgets"], "budgets")
  seeds = _ints(FLAGS.seeds or config["seeds"], "seeds")
  offline = data == "offline"
  target_defaults = config[data].get("targets", {})
  targets = protocol.TargetSettings(**{
      f.name: (FLAGS[f.name].value if FLAGS[f.name].value is not None
               else target_defaults.get(f.name, f.default))
      for f in dataclasses.fields(protocol.TargetSettings)})
  offline_cfg = procedural.OfflineConfig(
      num_source_classes=FLAGS.offline_source_classes,
      num_target_classes=FLAGS.offline_target_classes,
      num_far_classes=FLAGS.offline_target_classes,
      source_train_per_class=FLAGS.offline_source_per_class, source_test_per_class=1,
      target_train_per_class=FLAGS.offline_target_per_class,
      target_test_per_class=FLAGS.offline_test_per_class,
      far_train_per_class=FLAGS.offline_target_per_class,
      far_test_per_class=FLAGS.offline_test_per_class, seed=FLAGS.data_seed)
  try:  # a validator: each ValueError it raises is about these sizes
    offline_cfg.validate()
  except ValueError as e:
    raise InputError(f"offline sizes: {e}") from None
  prompts = (zeroshot.read_prompts(FLAGS.zeroshot_prompts, field="zeroshot.prompts")
             if FLAGS.zeroshot_prompts else zeroshot.DEFAULT_PROMPTS)
  settings = protocol.Settings(
      data=data, data_dir=FLAGS.data_dir, source_workdir=FLAGS.source_workdir,
      offline=offline_cfg if offline else procedural.OfflineConfig(),
      source=protocol.SourceSettings(width=FLAGS.width, epochs=FLAGS.epochs,
                                     snapshot_every=FLAGS.snapshot_every,
                                     batch_size=FLAGS.batch_size,
                                     learning_rate=FLAGS.learning_rate),
      ssl=protocol.SSLSettings(width=FLAGS.ssl_width, epochs=FLAGS.ssl_epochs,
                               batch_size=FLAGS.ssl_batch_size,
                               temperature=FLAGS.ssl_temperature,
                               learning_rate=FLAGS.ssl_learning_rate),
      targets=targets, data_seed=FLAGS.data_seed,
      balanced_per_class=FLAGS.balanced_per_class, rule=FLAGS.rule,
      majority_distance=FLAGS.majority_distance, dedupe=FLAGS.dedupe,
      zeroshot=protocol.ZeroShotSettings(
          source=FLAGS.zeroshot_source, prompts=tuple(prompts),
          noise=FLAGS.zeroshot_noise, guess_weight=FLAGS.guess_weight))
  shard = sweep.parse_shard(FLAGS.shard)
  return runner.TableRun(
      tables=tables, datasets=datasets, budgets=budgets,
      methods=tuple(FLAGS.methods or config["methods"]), seeds=seeds,
      targets=runner.default_targets(datasets, table, FLAGS.target),
      settings=settings, workdir=FLAGS.workdir or os.path.join("workdir",
                                                                f"tables_{data}"),
      shard=shard, plots=FLAGS.plots, rounds=(FLAGS.rounds if FLAGS.rounds is not None
                                             else config.get("rounds", 1)),
      pixels=FLAGS.pixels,
      allow_source_seen_target=FLAGS.allow_source_seen_target)


def main(argv, table=None, run_tables=None):
  """Runs `run_tables` (default: --table) with --table's config; 2 on bad input
  (an `InputError`, naming its flag); anything else propagates."""
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  table = FLAGS.table if table is None else table
  try:
    run = table_run(table, tuple(run_tables or (table,)))
    out = runner.run_table(run, render_only=FLAGS.render_only)
  except InputError as e:
    print(f"error: {message(e)}", file=sys.stderr)
    return 2
  print(f"\ncells: {out['cells_csv']}")
  for n, paths in out["tables"].items():
    print(f"table {n}: {paths['md']} (also .csv, .tex)")
  for p in out["plots"]:
    print(f"plot: {p}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
