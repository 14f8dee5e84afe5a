"""The `jaxal` command (also `python -m jaxal`): choose which of your own images
to label, with the annotators in the loop. Flags only; each step is a function
of its own module (`jaxal.cli.embed`, `select_balance`, `train_predict`,
`report`), imported when its subcommand runs so that `--help` stays fast.

    jaxal import-source --workdir=SRC --arch=resnet18 --weights=resnet18.pth
                  (torchvision/timm weights -> a source for embed)
    jaxal pretrain --workdir=SSL --images=DIR [--epochs=200]
                  (SimCLR on your unlabeled images -> a source for embed)
    jaxal embed   --workdir=W --images=DIR --source=SRC [--ensemble]
    jaxal embed   --workdir=W --images=DIR --features=emb.npy --paths=paths.txt
                  (embeddings from any model; also .npz, .csv, .parquet)
    jaxal select  --workdir=W --method=entropy_inv_div --budget=500 [--rounds=R]
    jaxal balance --workdir=W --labels=labels.csv --classes=classes.txt --batch=50
    jaxal label   --workdir=W --classes=classes.txt [--method=... --budget=500]
                  (a page at http://localhost:8000/; answers -> W/labels.sqlite,
                  written to W/labels.csv at each batch end; --export: now)
    jaxal train   --workdir=W --labels=labels.csv --classes=classes.txt --target=svm
    jaxal predict --workdir=W --images=NEW_DIR --out=predictions.csv
    jaxal report  --workdir=W --labels=labels.csv --classes=classes.txt \\
                  [--test_labels=test.csv --test_images=TEST_DIR]
                  (or --test_features=test_emb.npz instead of --test_images)

Every command but embed takes --selection=NAME: several selections (methods,
budgets) on one embedding. `jaxal COMMAND --help` lists a command's flags. Bad input exits with status 2 and
one line naming the flag or the file and line, and leaves the work directory as
it was.
"""

from __future__ import annotations

import re
import sys
from typing import Callable

from absl import flags

_DOC = __doc__


def _common(fv):
  flags.DEFINE_string("workdir", None, "The work directory holding every step's "
                      "state (created by embed).", flag_values=fv)
  flags.DEFINE_string("selection", None, "Name of a selection within the work "
                      "directory: several methods or budgets on one embedding, each "
                      "with its own to_label/labels/target/report under "
                      "WORKDIR/selections/NAME. Default: the work directory's own.",
                      flag_values=fv)


def _target_flags(fv, *, kind: bool = True):
  if kind:
    flags.DEFINE_enum("target", "svm", ["svm", "finetune"], "Target model: a linear "
                      "SVM on M_S's features, or M_S fine-tuned.", flag_values=fv)
  flags.DEFINE_float("svm_c", 1.0, "C of the SVM target.", flag_values=fv)
  flags.DEFINE_integer("epochs", 30, "Fine-tuning epochs.", flag_values=fv)
  flags.DEFINE_integer("batch_size", 64, "Fine-tuning batch size.", flag_values=fv)
  flags.DEFINE_float("learning_rate", 0.01, "Fine-tuning peak learning rate.",
                     flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed (fine-tuning; random and core-set).",
                       flag_values=fv)


def _labels_flags(fv):
  flags.DEFINE_string("labels", None, "CSV of the labels returned so far: header "
                      "path,label; paths as in to_label.csv (UTF-8, with or without "
                      "a byte-order mark). Or a Label Studio JSON/JSON-MIN export "
                      "(*.json) of to_label.labelstudio.json's tasks.", flag_values=fv)
  flags.DEFINE_string("classes", None, "Text file, one target class name a line "
                      "(every class, found or not). Needed by balance; elsewhere "
                      "the work directory's recorded classes are the default.",
                      flag_values=fv)


def _define_embed(fv):
  flags.DEFINE_string("images", None, "Folder of images (JPEG/PNG, nested folders, "
                      "any size).", flag_values=fv)
  flags.DEFINE_string("tfds", None, "Instead of --images: NAME:SPLIT of a prepared "
                      "dataset (jaxal.datasets; e.g. cifar100:train); its images are "
                      "named NAME:SPLIT/INDEX.", flag_values=fv)
  flags.DEFINE_string("data_dir", None, "TFDS data_dir for --tfds.", flag_values=fv)
  flags.DEFINE_string("source", None, "The source model M_S: a train_source work "
                      "directory, or one written by `jaxal import-source`.",
                      flag_values=fv)
  flags.DEFINE_string("features", None, "Instead of --source: embeddings computed by "
                      "any model, one row per image (.npy with --paths, .npz, .csv "
                      "with a path column, Lightly's custom-embeddings CSV, "
                      ".parquet).", flag_values=fv)
  flags.DEFINE_string("paths", None, "With a .npy --features: the image paths, one "
                      "a line, in row order (relative to --images).", flag_values=fv)
  flags.DEFINE_string("probs", None, "With --features: an [N, C] .npy of class "
                      "probabilities in the same row order (needed by the "
                      "uncertainty methods).", flag_values=fv)
  flags.DEFINE_bool("ensemble", False, "Average M_S's snapshots (the paper's +ens).",
                    flag_values=fv)
  flags.DEFINE_integer("chunk", 256, "Images per saved chunk (the resume unit).",
                       flag_values=fv)
  flags.DEFINE_integer("batch", 128, "Images per device computation.",
                       flag_values=fv)
  flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of "
                      "process 0 (jax.distributed); every process embeds its share "
                      "of the chunks into the shared --workdir.", flag_values=fv)
  flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.",
                       flag_values=fv)
  flags.DEFINE_integer("process_id", None, "Multi-host: this process's rank.",
                       flag_values=fv)


def _define_import_source(fv):
  flags.DEFINE_enum("arch", None, ["resnet18", "resnet50", "dinov2", "siglip"],
                    "The weights' architecture: a torchvision/timm ResNet file, "
                    "or a Hugging Face checkpoint folder of DINOv2 (with or "
                    "without registers) or SigLIP / SigLIP 2 (fixed resolution).",
                    flag_values=fv)
  flags.DEFINE_string("weights", None, "ResNets: a .safetensors file, or a PyTorch "
                      "state_dict (.pth; needs torch installed). dinov2/siglip: the "
                      "checkpoint folder (config.json, model.safetensors, "
                      "preprocessor_config.json; SigLIP's tokenizer files for "
                      "text).", flag_values=fv)
  flags.DEFINE_enum("pool", None, ["cls", "cls_mean", "map"], "dinov2/siglip: the "
                    "features: DINOv2's class token ('cls', default) or class "
                    "token and mean patch token ('cls_mean', DINOv2's linear "
                    "evaluation); SigLIP's MAP-pooled embedding ('map').",
                    flag_values=fv)
  flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"],
                    "dinov2/siglip: the dtype `embed` computes in (parameters stay "
                    "float32).", flag_values=fv)
  flags.DEFINE_string("classes", None, "Names of the head's classes, one a line; "
                      "default ImageNet's for a 1,000-class head.", flag_values=fv)
  flags.DEFINE_integer("resize", None, "Evaluation transform: the shorter side "
                       "after resizing (default: torchvision's for the arch's "
                       "reference weights, 256 for resnet18, 232 for resnet50).",
                       flag_values=fv)
  flags.DEFINE_integer("crop", None, "Evaluation transform: the centre crop "
                       "(default 224).", flag_values=fv)
  flags.DEFINE_enum("interpolation", None, ["bilinear", "bicubic", "nearest"],
                    "Evaluation transform: the resize filter (default bilinear; "
                    "many timm weights use bicubic).", flag_values=fv)
  flags.DEFINE_list("mean", None, "Evaluation transform: 3 channel means on [0, 1] "
                    "(default ImageNet's).", flag_values=fv)
  flags.DEFINE_list("std", None, "Evaluation transform: 3 channel standard "
                    "deviations (default ImageNet's).", flag_values=fv)


def _define_pretrain(fv):
  flags.DEFINE_string("images", None, "Folder of unlabeled images (JPEG/PNG, "
                      "nested folders).", flag_values=fv)
  flags.DEFINE_string("tfds", None, "Instead of --images: NAME:SPLIT of a prepared "
                      "dataset (jaxal.datasets).", flag_values=fv)
  flags.DEFINE_string("data_dir", None, "TFDS data_dir for --tfds.", flag_values=fv)
  flags.DEFINE_integer("image_size", 32, "Side the images are resized to (and "
                       "embedded at).", flag_values=fv)
  flags.DEFINE_enum("arch", "resnet18", ["resnet18", "resnet50"], "Encoder.",
                    flag_values=fv)
  flags.DEFINE_integer("width", 64, "ResNet width (64 = torchvision's).",
                       flag_values=fv)
  flags.DEFINE_enum("stem", None, ["imagenet", "cifar"], "Default: cifar below "
                    "64 px.", flag_values=fv)
  flags.DEFINE_integer("epochs", 200, "Epochs (SCAN's CIFAR recipe: 500).",
                       flag_values=fv)
  flags.DEFINE_integer("batch_size", 512, "Global batch (>= 2; its other images "
                       "are each view's negatives).", flag_values=fv)
  flags.DEFINE_float("temperature", 0.1, "NT-Xent temperature (> 0).",
                     flag_values=fv)
  flags.DEFINE_float("learning_rate", None, "Peak learning rate (default 0.4 x "
                     "batch / 512).", flag_values=fv)
  flags.DEFINE_enum("optimizer", "sgd", ["sgd", "lars"], "Optimizer.",
                    flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed (order, augmentations, initialisation).",
                       flag_values=fv)


def _define_select(fv):
  from jaxal import acquisition  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum("method", None, list(acquisition.METHODS),
                    "Acquisition function.", flag_values=fv)
  flags.DEFINE_integer("budget", None, "Images to label in all.", flag_values=fv)
  flags.DEFINE_integer("num_classes", None, "Number of target classes, for "
                       "--method=probcover (its radius by purity); default: the "
                       "--classes file's count.", flag_values=fv)
  flags.DEFINE_integer("rounds", 1, "Rounds: 1 = the paper's single shot; more "
                       "re-select from the target model after each round's labels.",
                       flag_values=fv)
  _labels_flags(fv)
  _target_flags(fv)


def _define_balance(fv):
  _labels_flags(fv)
  flags.DEFINE_integer("batch", None, "Images per annotator round trip.",
                       flag_values=fv)
  flags.DEFINE_enum("rule", "ratio", ["ratio", "difference"], "Balancing rule.",
                    flag_values=fv)
  flags.DEFINE_enum("majority_distance", "nearest", ["nearest", "farthest"],
                    "Distance to the nearest majority centroid (the paper) or the "
                    "farthest (Emam et al.).", flag_values=fv)


def _define_train(fv):
  _labels_flags(fv)
  _target_flags(fv)


def _define_predict(fv):
  flags.DEFINE_string("images", None, "Folder of images to predict.", flag_values=fv)
  flags.DEFINE_string("out", None, "CSV to write (path,label,score,error).",
                      flag_values=fv)


def _define_report(fv):
  _labels_flags(fv)
  flags.DEFINE_string("test_labels", None, "Optional CSV (path,label) of a labeled "
                      "test set, for ACC_t.", flag_values=fv)
  flags.DEFINE_string("test_images", None, "The folder test_labels' paths are "
                      "relative to.", flag_values=fv)
  flags.DEFINE_string("test_features", None, "Instead of --test_images: the test "
                      "images' embeddings by the model that embedded the pool "
                      "(the formats of embed --features); test_labels' paths are "
                      "its rows'. Scored by the SVM target.", flag_values=fv)
  flags.DEFINE_string("test_paths", None, "With a .npy --test_features: one image "
                      "path a line, in row order.", flag_values=fv)
  flags.DEFINE_bool("plot", True, "Write the class-count chart (PNG).",
                    flag_values=fv)


def _define_label(fv):
  from jaxal import acquisition  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("classes", None, "Text file, one target class name a line "
                      "(every class). Needed on the first run of a selection.",
                      flag_values=fv)
  flags.DEFINE_enum("method", None, list(acquisition.METHODS), "Acquisition "
                    "function, when this selection has none yet.", flag_values=fv)
  flags.DEFINE_integer("budget", None, "Images to label in all, when this "
                       "selection has none yet.", flag_values=fv)
  flags.DEFINE_integer("num_classes", None, "For --method=probcover; default: "
                       "the --classes file's count.", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed of the selection (random, core-set...).",
                       flag_values=fv)
  flags.DEFINE_integer("batch", None, "Images the balancing step decides at a time "
                       "(1 = its exact sequential rule; more lets several "
                       "annotators work at once). Default: the recorded one, or 10.",
                       flag_values=fv)
  flags.DEFINE_enum("rule", "ratio", ["ratio", "difference"], "Balancing rule.",
                    flag_values=fv)
  flags.DEFINE_enum("majority_distance", "nearest", ["nearest", "farthest"],
                    "As for `jaxal balance`.", flag_values=fv)
  flags.DEFINE_string("host", "127.0.0.1", "Address to bind; other than loopback "
                      "needs --token.", flag_values=fv)
  flags.DEFINE_integer("port", 8000, "Port to serve on.", flag_values=fv)
  flags.DEFINE_string("token", None, "Secret every request must carry (the URL's "
                      "?token=); required off loopback.", flag_values=fv)
  flags.DEFINE_float("lease", 120.0, "Seconds an image stays reserved for the "
                     "annotator it is shown to.", flag_values=fv)
  flags.DEFINE_bool("export", False, "Write the selection's labels.csv from its "
                    "answer database now and exit, without serving (the server "
                    "writes it at every batch end and when it stops).",
                    flag_values=fv)


def _settings(fv):
  from jaxal.cli import train_predict  # pylint: disable=g-import-not-at-top
  return train_predict.TargetSettings(
      kind=fv.target, svm_c=fv.svm_c, epochs=fv.epochs,
      batch_size=fv.batch_size, learning_rate=fv.learning_rate, seed=fv.seed)


def _require(fv, *names):
  for n in names:
    if fv[n].value is None:
      raise ValueError(f"--{n} is required.")


def _run_import_source(wd, fv):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from jaxal.cli import labels  # pylint: disable=g-import-not-at-top
  from jaxal.models import pretrained  # pylint: disable=g-import-not-at-top
  _require(fv, "arch", "weights")
  if fv.arch in ("dinov2", "siglip"):
    return _run_import_foundation(wd, fv)
  for k in ("pool",):
    if fv[k].value is not None:
      raise ValueError(f"--{k} goes with --arch=dinov2 or siglip.")
  prep = pretrained.DEFAULT_PREPROCESS[fv.arch]
  given = {k: fv[k].value for k in ("resize", "crop", "interpolation", "mean", "std")
           if fv[k].value is not None}
  try:
    for k in ("mean", "std"):
      if k in given:
        given[k] = tuple(float(x) for x in given[k])
  except ValueError:
    raise ValueError(
        "--mean and --std take 3 numbers, e.g. --mean=0.5,0.5,0.5.") from None
  prep = dataclasses.replace(prep, **given)
  classes = labels.read_classes(fv.classes) if fv.classes else None
  cfg = pretrained.import_source(fv.arch, fv.weights, wd.path, classes=classes,
                                 preprocess=prep)
  print(f"import-source: {fv.arch} with {cfg['num_classes']} classes from "
        f"{fv.weights} -> {wd.path} (resize {prep.resize}, crop {prep.crop}, "
        f"{prep.interpolation}); use it as `jaxal embed --source={wd.path}`")


def _run_import_foundation(wd, fv):
  from jaxal.models import foundation  # pylint: disable=g-import-not-at-top
  given = [k for k in ("classes", "resize", "crop", "interpolation", "mean", "std")
           if fv[k].value is not None]
  if given:
    raise ValueError(f"--{given[0]} does not go with --arch={fv.arch}: the "
                     "checkpoint's preprocessor_config.json gives its preprocessing, "
                     "and an encoder has no class head.")
  cfg = foundation.import_source(fv.arch, fv.weights, wd.path, pool=fv.pool,
                                 compute_dtype=fv.compute_dtype)
  v = cfg["vision"]
  print(f"import-source: {cfg['model_type']} ({v['layers']} layers, width "
        f"{v['hidden']}, patch {v['patch']}, {cfg['features']} features"
        + (", with its text tower" if cfg["text"] else "") + f") from {fv.weights} "
        f"-> {wd.path}; use it as `jaxal embed --source={wd.path}`")


def _run_pretrain(wd, fv):
  from jaxal.cli import pretrain  # pylint: disable=g-import-not-at-top
  from jaxal.models import simclr  # pylint: disable=g-import-not-at-top
  try:
    config = simclr.SimCLRConfig(
        epochs=fv.epochs, batch_size=fv.batch_size, temperature=fv.temperature,
        learning_rate=fv.learning_rate, optimizer=fv.optimizer,
        seed=fv.seed).validate()
  except ValueError as e:  # the config names its field, the flag shares the name
    name = re.split("[ =]", str(e), maxsplit=1)[0]
    raise ValueError(f"--{e}" if name in fv else str(e)) from None
  pretrain.pretrain(wd.path, images_dir=fv.images, tfds=fv.tfds,
                    data_dir=fv.data_dir, image_size=fv.image_size, width=fv.width,
                    stem=fv.stem, arch=fv.arch, config=config)


def _run_embed(wd, fv):
  from jaxal.cli import embed  # pylint: disable=g-import-not-at-top
  if fv.features:
    from jaxal.cli import import_features  # pylint: disable=g-import-not-at-top
    for other in ("source", "tfds", "coordinator_address"):
      if fv[other].value:
        raise ValueError(f"--features and --{other} do not go together: the "
                         "features were computed elsewhere.")
    import_features.import_features(wd, features=fv.features, images_dir=fv.images,
                                    paths_file=fv.paths, probs=fv.probs)
    return
  for only in ("paths", "probs"):
    if fv[only].value:
      raise ValueError(f"--{only} goes with --features.")
  _require(fv, "source")
  if fv.coordinator_address:
    from jaxal.models import distributed  # pylint: disable=g-import-not-at-top
    distributed.initialize(fv.coordinator_address, fv.num_processes, fv.process_id)
  embed.embed(wd, images_dir=fv.images, source_dir=fv.source, ensemble=fv.ensemble,
              chunk=fv.chunk, batch_size=fv.batch, tfds=fv.tfds, data_dir=fv.data_dir)


def _run_select(wd, fv):
  from jaxal.cli import select_balance  # pylint: disable=g-import-not-at-top
  _require(fv, "method", "budget")
  select_balance.select(wd, method=fv.method, budget=fv.budget, seed=fv.seed,
                        num_rounds=fv.rounds, labels_csv=fv.labels,
                        classes_file=fv.classes, settings=_settings(fv),
                        num_classes=fv.num_classes)


def _run_balance(wd, fv):
  from jaxal.cli import select_balance  # pylint: disable=g-import-not-at-top
  _require(fv, "labels", "classes", "batch")
  select_balance.balance(wd, labels_csv=fv.labels, classes_file=fv.classes,
                         batch=fv.batch, rule=fv.rule,
                         majority_distance=fv.majority_distance)


def _run_train(wd, fv):
  from jaxal.cli import train_predict  # pylint: disable=g-import-not-at-top
  _require(fv, "labels")
  train_predict.train_target(wd, labels_csv=fv.labels, classes_file=fv.classes,
                             settings=_settings(fv))


def _run_predict(wd, fv):
  from jaxal.cli import train_predict  # pylint: disable=g-import-not-at-top
  _require(fv, "images", "out")
  train_predict.predict(wd, images_dir=fv.images, out_csv=fv.out)


def _run_report(wd, fv):
  from jaxal.cli import report  # pylint: disable=g-import-not-at-top
  _require(fv, "labels")
  report.report(wd, labels_csv=fv.labels, classes_file=fv.classes,
                test_labels=fv.test_labels, test_images=fv.test_images,
                test_features=fv.test_features, test_paths=fv.test_paths,
                plot=fv.plot)


def _run_label(wd, fv):
  from jaxal.cli import label  # pylint: disable=g-import-not-at-top
  label.label(wd, classes_file=fv.classes, method=fv.method, budget=fv.budget,
              batch=fv.batch, host=fv.host, port=fv.port, token=fv.token,
              lease_s=fv.lease, rule=fv.rule, majority_distance=fv.majority_distance,
              seed=fv.seed, num_classes=fv.num_classes, export_only=fv.export)


COMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "import-source": (_define_import_source, _run_import_source,
                      "ResNet weights, or a DINOv2 / SigLIP checkpoint -> a source for embed."),
    "pretrain": (_define_pretrain, _run_pretrain,
                 "SimCLR on unlabeled images -> a self-supervised source for embed."),
    "embed": (_define_embed, _run_embed,
              "M_S's features and probabilities of an image folder (resumable)."),
    "select": (_define_select, _run_select,
               "The images to label by an acquisition function -> to_label.csv."),
    "balance": (_define_balance, _run_balance,
                "The balancing step with the labels so far -> the next to_label.csv."),
    "label": (_define_label, _run_label,
              "Label in the browser; the balancing step picks the next images."),
    "train": (_define_train, _run_train, "The target model on the labeled images."),
    "predict": (_define_predict, _run_predict,
                "The target model's predictions for a folder -> CSV."),
    "report": (_define_report, _run_report,
               "Classes found, imbalance ratio, counts per class, ACC_t."),
}


def usage() -> str:
  lines = [_DOC.strip(), "", "commands:"]
  lines += [f"  {name:13s} {doc}" for name, (_, _, doc) in COMMANDS.items()]
  return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
  """Runs `jaxal ARGV...`; returns the exit status."""
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    sys.stdout.write(usage())
    return 0 if len(argv) >= 2 else 2
  cmd = argv[1]
  if cmd not in COMMANDS:
    sys.stderr.write(f"error: unknown command {cmd!r}; commands: "
                     f"{', '.join(COMMANDS)} (jaxal --help).\n")
    return 2
  define, run, doc = COMMANDS[cmd]
  fv = flags.FlagValues()
  _common(fv)
  define(fv)
  args = argv[2:]
  if any(a in ("-h", "--help", "--helpfull") for a in args):
    sys.stdout.write(f"jaxal {cmd}: {doc}\n\n{fv.get_help()}\n")
    return 0
  try:
    rest = fv([f"jaxal {cmd}"] + args)
  except flags.Error as e:
    sys.stderr.write(f"error: jaxal {cmd}: {e}\n")
    return 2
  if len(rest) > 1:
    sys.stderr.write(f"error: jaxal {cmd}: unexpected arguments {rest[1:]}; flags "
                     "look like --name=value.\n")
    return 2
  import logging  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  from jaxal.cli.workdir import Workdir  # pylint: disable=g-import-not-at-top
  try:
    if cmd == "embed" and fv.selection is not None:
      raise ValueError("--selection: the embedding is shared by every selection of "
                       "a work directory; embed without --selection.")
    if cmd in ("import-source", "pretrain") and fv.selection is not None:
      raise ValueError(f"--selection: {cmd} writes a source (--workdir), "
                       "which has no selections.")
    run(Workdir(fv.workdir, fv.selection), fv)
  except ValueError as e:  # WorkdirError, LabelsError and argument checks
    sys.stderr.write(f"error: jaxal {cmd}: {e}\n")
    return 2
  return 0


def run() -> None:
  """Console-script entry point."""
  sys.exit(main(sys.argv))
