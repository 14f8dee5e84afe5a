"""The `jaxal` command (also `python -m jaxal`): flags, dispatch, exit status.

Every flag is defined once, in `FLAG_SPECS` (one help text, one type); a command
lists the flags it takes in `COMMANDS`, with its own default or choices where
they differ (fine-tuning's epochs are not SimCLR's). Each command's work is a
function of its own module (`jaxal.cli.embed`, `select_balance`,
`train_predict`, `report`, ...), imported only when that command runs, so that
`jaxal --help` answers without loading models or data.

Exit status: 0, or 2 with one line `error: jaxal COMMAND: ...` for input jaxal
cannot use (`jaxal.errors.InputError`: a flag, a file, the work directory),
naming the flag when the error's `field` is one. Any other exception is a
fault of jaxal and propagates with its traceback (exit status 1).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Optional

from absl import flags

from jaxal.errors import InputError

USAGE = """\
jaxal chooses which of your images to label, with the annotators in the loop.

usage: jaxal COMMAND --workdir=DIR [--FLAG=VALUE ...]
       jaxal COMMAND --help      the flags of one command

Commands, in the order of the work:
{commands}

One work directory (--workdir) holds every step's state: a command that is
stopped resumes where it was, and flags that contradict what the directory
holds are refused. --selection=NAME keeps several selections (methods,
budgets) on one embedding. Bad input exits with status 2 and one line naming
the flag, or the file and line, and leaves the work directory as it was.

Read more in README.md and the documentation: docs/guides/command.md (these
commands, the labeling page), docs/guides/own_model.md (your own model or
embeddings).
"""


def _methods():
  from jaxal import acquisition  # pylint: disable=g-import-not-at-top
  return list(acquisition.METHODS)


@dataclasses.dataclass(frozen=True)
class FlagSpec:
  """One flag, the same in every command that takes it."""
  kind: str  # absl's DEFINE_<kind>: string, integer, float, bool, enum, list
  help: str
  default: Any = None
  choices: Any = None  # enum: the values, or a function giving them (late import)


FLAG_SPECS: dict[str, FlagSpec] = {
    # every command
    "workdir": FlagSpec("string", "The work directory holding every step's state "
                        "(created by embed)."),
    "selection": FlagSpec("string", "Name of a selection within the work "
                          "directory: several methods or budgets on one embedding, "
                          "each with its own to_label/labels/target/report under "
                          "WORKDIR/selections/NAME. Default: the work directory's "
                          "own."),
    # images
    "images": FlagSpec("string", "Folder of images (JPEG/PNG, nested folders, any "
                       "size): the pool to embed or pretrain on; for predict, the "
                       "images to predict."),
    "tfds": FlagSpec("string", "Instead of --images: NAME:SPLIT of a prepared dataset "
                     "(jaxal.datasets; e.g. cifar100:train); its images are named "
                     "NAME:SPLIT/INDEX."),
    "data_dir": FlagSpec("string", "TFDS data_dir for --tfds."),
    # the source model M_S
    "arch": FlagSpec("enum", "The architecture. import-source: the weights', a "
                     "torchvision/timm ResNet file, or a Hugging Face checkpoint "
                     "folder of DINOv2 (with or without registers) or SigLIP / "
                     "SigLIP 2 (fixed resolution). pretrain: the encoder's.",
                     choices=("resnet18", "resnet50", "dinov2", "siglip")),
    "weights": FlagSpec("string", "ResNets: a .safetensors file, or a PyTorch "
                        "state_dict (.pth; needs torch installed). dinov2/siglip: the "
                        "checkpoint folder (config.json, model.safetensors, "
                        "preprocessor_config.json; SigLIP's tokenizer files for "
                        "text)."),
    "pool": FlagSpec("enum", "dinov2/siglip: the features: DINOv2's class token "
                     "('cls', default) or class token and mean patch token "
                     "('cls_mean', DINOv2's linear evaluation); SigLIP's MAP-pooled "
                     "embedding ('map').", choices=("cls", "cls_mean", "map")),
    "compute_dtype": FlagSpec("enum", "dinov2/siglip: the dtype `embed` computes in "
                              "(parameters stay float32).", "float32",
                              ("float32", "bfloat16")),
    "resize": FlagSpec("integer", "Evaluation transform: the shorter side after "
                       "resizing (default: torchvision's for the arch's reference "
                       "weights, 256 for resnet18, 232 for resnet50)."),
    "crop": FlagSpec("integer", "Evaluation transform: the centre crop (default 224)."),
    "interpolation": FlagSpec("enum", "Evaluation transform: the resize filter "
                              "(default bilinear; many timm weights use bicubic).",
                              choices=("bilinear", "bicubic", "nearest")),
    "mean": FlagSpec("list", "Evaluation transform: 3 channel means on [0, 1] "
                     "(default ImageNet's)."),
    "std": FlagSpec("list", "Evaluation transform: 3 channel standard deviations "
                    "(default ImageNet's)."),
    "image_size": FlagSpec("integer", "Side the images are resized to (and embedded "
                           "at).", 32),
    "width": FlagSpec("integer", "ResNet width (64 = torchvision's).", 64),
    "stem": FlagSpec("enum", "Default: cifar below 64 px.",
                     choices=("imagenet", "cifar")),
    "temperature": FlagSpec("float", "NT-Xent temperature (> 0).", 0.1),
    "optimizer": FlagSpec("enum", "Optimizer.", "sgd", ("sgd", "lars")),
    # embed
    "source": FlagSpec("string", "The source model M_S: a train_source work "
                       "directory, or one written by `jaxal import-source` or "
                       "`jaxal pretrain`."),
    "features": FlagSpec("string", "Instead of --source: embeddings computed by any "
                         "model, one row per image (.npy with --paths, .npz, .csv "
                         "with a path column, Lightly's custom-embeddings CSV, "
                         ".parquet)."),
    "paths": FlagSpec("string", "With a .npy --features: the image paths, one a "
                      "line, in row order (relative to --images)."),
    "probs": FlagSpec("string", "With --features: an [N, C] .npy of class "
                      "probabilities in the same row order (needed by the uncertainty "
                      "methods)."),
    "ensemble": FlagSpec("bool", "Average M_S's snapshots (the paper's +ens).", False),
    "chunk": FlagSpec("integer", "Images per saved chunk (the resume unit).", 256),
    "coordinator_address": FlagSpec("string", "Multi-host: host:port of process 0 "
                                    "(jax.distributed); every process does its "
                                    "share (embed: chunks; dedupe: tiles) in the "
                                    "shared --workdir."),
    "num_processes": FlagSpec("integer", "Multi-host: number of processes."),
    "process_id": FlagSpec("integer", "Multi-host: this process's rank."),
    # selection and labels
    "method": FlagSpec("enum", "Acquisition function (label: when this selection has "
                       "none yet).", choices=_methods),
    "budget": FlagSpec("integer", "Images to label in all (label: when this selection "
                       "has none yet)."),
    "num_classes": FlagSpec("integer", "Number of target classes, for "
                            "--method=probcover (its radius by purity); default: the "
                            "--classes file's count."),
    "rounds": FlagSpec("integer", "Rounds: 1 = the paper's single shot; more "
                       "re-select from the target model after each round's labels.", 1),
    "labels": FlagSpec("string", "CSV of the labels returned so far: header "
                       "path,label; paths as in to_label.csv (UTF-8, with or without a "
                       "byte-order mark). Or a Label Studio JSON/JSON-MIN export "
                       "(*.json) of to_label.label_studio.json's tasks."),
    "classes": FlagSpec("string", "Text file, one class name a line. The target "
                        "classes, every class, found or not: needed by balance and by "
                        "label on a selection's first run; elsewhere the work "
                        "directory's recorded classes are the default. import-source: "
                        "the names of the head's classes (default ImageNet's for a "
                        "1,000-class head). embed with a SigLIP source: the classes "
                        "to guess zero-shot, written as the pool's probabilities."),
    "prompts": FlagSpec("string", "embed --classes: templates, one a line, each with "
                        "'{}' for the class name; the class embedding is their "
                        "normalised mean (default: 'a photo of a {}.')."),
    "batch": FlagSpec("integer", "embed: images per device computation. balance, "
                      "label: images the balancing step decides at a time, one "
                      "annotator round trip (1 = its exact sequential rule; more lets "
                      "several annotators work at once; label's default: the recorded "
                      "one, or 10)."),
    "rule": FlagSpec("enum", "Balancing rule.", "ratio", ("ratio", "difference")),
    "majority_distance": FlagSpec("enum", "Balancing: distance to the nearest majority "
                                  "centroid (the paper) or the farthest (Emam et al.).",
                                  "nearest", ("nearest", "farthest")),
    # the labeling page
    "host": FlagSpec("string", "Address to bind; other than loopback needs --token.",
                     "127.0.0.1"),
    "port": FlagSpec("integer", "Port to serve on.", 8000),
    "token": FlagSpec("string", "Secret every request must carry (the URL's "
                      "?token=); required off loopback."),
    "lease": FlagSpec("float", "Seconds an image stays reserved for the annotator it "
                      "is shown to.", 120.0),
    "export": FlagSpec("bool", "Write the selection's labels.csv from its answer "
                       "database now and exit, without serving (the server writes it "
                       "at every batch end and when it stops).", False),
    # training: the target model, or SimCLR (pretrain)
    "target": FlagSpec("enum", "Target model: a linear SVM on M_S's features, or M_S "
                       "fine-tuned.", "svm", ("svm", "finetune")),
    "svm_c": FlagSpec("float", "C of the SVM target.", 1.0),
    "epochs": FlagSpec("integer", "Training epochs: of the fine-tuned target, or of "
                       "SimCLR (pretrain; SCAN's CIFAR recipe: 500).", 30),
    "batch_size": FlagSpec("integer", "Training batch size: the fine-tuned target's, "
                           "or SimCLR's global batch (pretrain; >= 2, its other images "
                           "are each view's negatives).", 64),
    "learning_rate": FlagSpec("float", "Peak learning rate: of fine-tuning, or of "
                              "SimCLR (pretrain; default 0.4 x batch / 512).", 0.01),
    "seed": FlagSpec("integer", "Seed: of the selection (random, core-set...) and of "
                     "fine-tuning; pretrain: of the order, augmentations and "
                     "initialisation.", 0),
    # predict and report
    "out": FlagSpec("string", "CSV to write (path,label,score,error)."),
    "test_labels": FlagSpec("string", "Optional CSV (path,label) of a labeled test "
                            "set, for ACC_t."),
    "test_images": FlagSpec("string", "The folder test_labels' paths are relative to."),
    "test_features": FlagSpec("string", "Instead of --test_images: the test images' "
                              "embeddings by the model that embedded the pool (the "
                              "formats of embed --features); test_labels' paths are "
                              "its rows'. Scored by the SVM target."),
    "test_paths": FlagSpec("string", "With a .npy --test_features: one image path a "
                           "line, in row order."),
    "plot": FlagSpec("bool", "Write the charts: class counts, the pool's map (PNG).",
                     True),
    "projection": FlagSpec("enum", "The pool's map: pca (exact, needs nothing), umap "
                           "or pacmap (pip install \".[map]\"; in memory, slower).",
                           "pca", ("pca", "umap", "pacmap")),
    "guesses": FlagSpec("bool", "The balancing step follows the embedding's zero-shot "
                        "guesses (embed --classes with a SigLIP source) until every "
                        "class has an answer: each pick fills the least represented "
                        "class, by answers, by guesses where none exist; then the "
                        "paper's rule. Default: the paper's rule.", False),
    "guess_weight": FlagSpec("float", "With --guesses: what a pick guessed as a class "
                             "with no answer yet counts for it (0: nothing, 1: as an "
                             "answer).", 0.5),
    # search
    "text": FlagSpec("string", "search: the images nearest this text (a SigLIP "
                     "source's text tower)."),
    "image": FlagSpec("string", "search: the images nearest this example: a pool "
                      "image's path, or an image file the source model embeds."),
    "top": FlagSpec("integer", "search: how many images to return.", 20),
    # dedupe
    "threshold": FlagSpec("float", "Near-duplicate distance: images at --metric "
                          "distance <= this are one group, of which select picks "
                          "one (cosine: in (0, 2]; exact copies are at 0)."),
    "metric": FlagSpec("enum", "Distance between features for dedupe and its "
                       "scores.", "cosine", ("cosine", "euclidean")),
}


def _settings(fv):
  from jaxal.cli import train_predict  # pylint: disable=g-import-not-at-top
  return train_predict.TargetSettings(
      kind=fv.target, svm_c=fv.svm_c, epochs=fv.epochs,
      batch_size=fv.batch_size, learning_rate=fv.learning_rate, seed=fv.seed)


def _require(fv, *names):
  for n in names:
    if fv[n].value is None:
      raise InputError(f"--{n} is required.", field=n)


def _run_import_source(wd, fv):
  from jaxal.cli import label_files  # pylint: disable=g-import-not-at-top
  from jaxal.models import pretrained  # pylint: disable=g-import-not-at-top
  _require(fv, "arch", "weights")
  if fv.arch in ("dinov2", "siglip"):
    return _run_import_foundation(wd, fv)
  if fv.pool is not None:
    raise InputError("--pool goes with --arch=dinov2 or siglip.", field="pool")
  given = {k: fv[k].value for k in ("resize", "crop", "interpolation", "mean", "std")
           if fv[k].value is not None}
  for k in ("mean", "std"):
    if k in given:
      try:
        given[k] = tuple(float(x) for x in given[k])
      except ValueError:
        raise InputError("--mean and --std take 3 numbers, e.g. "
                         "--mean=0.5,0.5,0.5.", field=k) from None
  prep = dataclasses.replace(pretrained.DEFAULT_PREPROCESS[fv.arch], **given)
  classes = label_files.read_classes(fv.classes) if fv.classes else None
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
    raise InputError(f"--{given[0]} does not go with --arch={fv.arch}: the "
                     "checkpoint's preprocessor_config.json gives its preprocessing, "
                     "and an encoder has no class head.", field=given[0])
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
  # The config's errors name its fields, which are these flags' names.
  config = simclr.SimCLRConfig(
      epochs=fv.epochs, batch_size=fv.batch_size, temperature=fv.temperature,
      learning_rate=fv.learning_rate, optimizer=fv.optimizer,
      seed=fv.seed).validate()
  pretrain.pretrain(wd.path, images_dir=fv.images, tfds=fv.tfds,
                    data_dir=fv.data_dir, image_size=fv.image_size, width=fv.width,
                    stem=fv.stem, arch=fv.arch, config=config)


def _run_embed(wd, fv):
  from jaxal.cli import embed  # pylint: disable=g-import-not-at-top
  if fv.features:
    from jaxal.cli import import_features  # pylint: disable=g-import-not-at-top
    for other in ("source", "tfds", "coordinator_address"):
      if fv[other].value:
        raise InputError(f"--features and --{other} do not go together: the "
                         "features were computed elsewhere.", field=other)
    for zs in ("classes", "prompts"):
      if fv[zs].value:
        raise InputError(f"--{zs}: zero-shot guesses need a SigLIP --source (its "
                         "text tower), not --features.", field=zs)
    import_features.import_features(wd, features=fv.features, images_dir=fv.images,
                                    paths_file=fv.paths, probs=fv.probs)
    return
  for only in ("paths", "probs"):
    if fv[only].value:
      raise InputError(f"--{only} goes with --features.", field=only)
  _require(fv, "source")
  _join_processes(fv)
  embed.embed(wd, images_dir=fv.images, source_dir=fv.source, ensemble=fv.ensemble,
              chunk=fv.chunk, batch_size=fv.batch, tfds=fv.tfds, data_dir=fv.data_dir)
  if fv.classes:
    import jax  # pylint: disable=g-import-not-at-top
    from jaxal.cli import zero_shot  # pylint: disable=g-import-not-at-top
    if jax.process_index() == 0:
      zero_shot.guesses(wd, source_dir=fv.source, classes_file=fv.classes,
                        prompts_file=fv.prompts)
  elif fv.prompts:
    raise InputError("--prompts goes with --classes (zero-shot guesses).",
                     field="prompts")


def _run_dedupe(wd, fv):
  from jaxal.cli import dedupe  # pylint: disable=g-import-not-at-top
  _require(fv, "threshold")
  _join_processes(fv)
  dedupe.dedupe(wd, threshold=fv.threshold, metric=fv.metric)


def _join_processes(fv):
  """With --coordinator_address: this process joins the multi-host run
  (`jax.distributed`) before any computation."""
  if fv.coordinator_address:
    from jaxal.models import distributed  # pylint: disable=g-import-not-at-top
    distributed.initialize(fv.coordinator_address, fv.num_processes, fv.process_id)


def _run_search(wd, fv):
  from jaxal.cli import search  # pylint: disable=g-import-not-at-top
  search.search(wd, text=fv.text, image=fv.image, top=fv.top, labels_csv=fv.labels,
                classes_file=fv.classes)


def _run_select(wd, fv):
  from jaxal.cli import select_balance  # pylint: disable=g-import-not-at-top
  _require(fv, "method", "budget")
  select_balance.select(wd, method=fv.method, budget=fv.budget, seed=fv.seed,
                        num_rounds=fv.rounds, labels_csv=fv.labels,
                        classes_file=fv.classes, settings=_settings(fv),
                        num_classes=fv.num_classes)


def _run_label(wd, fv):
  from jaxal.cli import label  # pylint: disable=g-import-not-at-top
  label.label(wd, classes_file=fv.classes, method=fv.method, budget=fv.budget,
              batch=fv.batch, host=fv.host, port=fv.port, token=fv.token,
              lease_s=fv.lease, rule=fv.rule, majority_distance=fv.majority_distance,
              seed=fv.seed, num_classes=fv.num_classes, export_only=fv.export,
              guess_weight=_guess_weight(fv), projection=fv.projection)


def _run_balance(wd, fv):
  from jaxal.cli import select_balance  # pylint: disable=g-import-not-at-top
  _require(fv, "labels", "classes", "batch")
  select_balance.balance(wd, labels_csv=fv.labels, classes_file=fv.classes,
                         batch=fv.batch, rule=fv.rule,
                         majority_distance=fv.majority_distance,
                         guess_weight=_guess_weight(fv))


def _guess_weight(fv):
  """The guided balancing step's weight, or None for the paper's rule."""
  if fv["guess_weight"].present and not fv.guesses:
    raise InputError("--guess_weight goes with --guesses.", field="guess_weight")
  return fv.guess_weight if fv.guesses else None


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
                plot=fv.plot, projection=fv.projection)


@dataclasses.dataclass(frozen=True)
class Command:
  """One command: what it does (a line of `jaxal --help`), its flags (names in
  `FLAG_SPECS`; every command also takes --workdir and --selection) and its own
  defaults or enum values where they differ from `FLAG_SPECS`'."""
  run: Callable
  doc: str
  flags: tuple
  defaults: dict = dataclasses.field(default_factory=dict)
  choices: dict = dataclasses.field(default_factory=dict)
  # False: writes a source (import-source, pretrain), or what every selection
  # shares (embed, dedupe); --selection is refused.
  selections: bool = True


_IMAGES = ("images", "tfds", "data_dir")
_TARGET = ("target", "svm_c", "epochs", "batch_size", "learning_rate", "seed")
_LABELS = ("labels", "classes")
_BALANCING = ("batch", "rule", "majority_distance", "guesses", "guess_weight")
_SIMCLR = {"epochs": 200, "batch_size": 512, "learning_rate": None}

# In the order of the work, which `jaxal --help` keeps.
COMMANDS: dict[str, Command] = {
    "import-source": Command(
        _run_import_source, "Your ResNet, DINOv2 or SigLIP weights -> a source "
        "model.",
        ("arch", "weights", "pool", "compute_dtype", "classes", "resize", "crop",
         "interpolation", "mean", "std"), selections=False),
    "pretrain": Command(
        _run_pretrain, "SimCLR on your unlabeled images -> a source model.",
        _IMAGES + ("image_size", "arch", "width", "stem", "epochs", "batch_size",
                   "temperature", "learning_rate", "optimizer", "seed"),
        defaults={"arch": "resnet18", **_SIMCLR},
        choices={"arch": ("resnet18", "resnet50")}, selections=False),
    "embed": Command(
        _run_embed, "Features of your images by the source model (or your "
        "own).",
        _IMAGES + ("source", "features", "paths", "probs", "ensemble", "chunk",
                   "batch", "coordinator_address", "num_processes", "process_id",
                   "classes", "prompts"),
        defaults={"batch": 128}, selections=False),
    "dedupe": Command(
        _run_dedupe, "Near-copies grouped (select takes one of each); scores.",
        ("threshold", "metric", "coordinator_address", "num_processes", "process_id"),
        selections=False),
    "select": Command(
        _run_select, "Images to label, by an acquisition function -> "
        "to_label.csv.",
        ("method", "budget", "num_classes", "rounds") + _LABELS + _TARGET),
    "search": Command(
        _run_search, "Unlabeled images nearest a text or an example "
        "-> to_label.csv.", ("text", "image", "top") + _LABELS),
    "label": Command(
        _run_label, "Label in the browser; the balancing step picks the next "
        "batch.",
        ("classes", "method", "budget", "num_classes", "seed") + _BALANCING +
        ("host", "port", "token", "lease", "export", "projection")),
    "balance": Command(
        _run_balance, "Labeling elsewhere: the next batch to label -> to_label.csv.",
        _LABELS + _BALANCING),
    "train": Command(_run_train, "The target model, on the images labeled so far.",
                     _LABELS + _TARGET),
    "predict": Command(_run_predict, "The target model's classes for a folder of "
                       "images -> CSV.", ("images", "out")),
    "report": Command(
        _run_report, "Classes found, imbalance, counts per class, test accuracy.",
        _LABELS + ("test_labels", "test_images", "test_features", "test_paths",
                   "plot", "projection")),
}


def _define(fv: flags.FlagValues, name: str, default: Any, choices: Any) -> None:
  spec = FLAG_SPECS[name]
  if spec.kind == "enum":
    values = choices() if callable(choices) else choices
    flags.DEFINE_enum(name, default, list(values), spec.help, flag_values=fv)
  else:
    define = getattr(flags, f"DEFINE_{spec.kind}")
    define(name, default, spec.help, flag_values=fv)


def flag_values(name: str) -> flags.FlagValues:
  """The flags of command `name`, defined and not yet parsed."""
  cmd = COMMANDS[name]
  fv = flags.FlagValues()
  for f in ("workdir", "selection") + cmd.flags:
    spec = FLAG_SPECS[f]
    _define(fv, f, cmd.defaults.get(f, spec.default),
            cmd.choices.get(f, spec.choices))
  return fv


def usage() -> str:
  width = max(map(len, COMMANDS)) + 2
  return USAGE.format(commands="\n".join(
      f"  {name:{width}s}{cmd.doc}" for name, cmd in COMMANDS.items()))


def _parse(cmd: str, args: list[str]) -> tuple[Optional[flags.FlagValues], int]:
  """(the parsed flags, 0), or (None, exit status) after help or a bad flag."""
  fv = flag_values(cmd)
  if any(a in ("-h", "--help", "--helpfull") for a in args):
    sys.stdout.write(f"jaxal {cmd}: {COMMANDS[cmd].doc}\n\n{fv.get_help()}\n")
    return None, 0
  try:
    rest = fv([f"jaxal {cmd}"] + args)
  except flags.Error as e:
    sys.stderr.write(f"error: jaxal {cmd}: {e}\n")
    return None, 2
  if len(rest) > 1:
    sys.stderr.write(f"error: jaxal {cmd}: unexpected arguments {rest[1:]}; flags "
                     "look like --name=value.\n")
    return None, 2
  return fv, 0


def message(e: InputError, fv: flags.FlagValues) -> str:
  """`e`'s message, naming its field as the flag `--FIELD` where the command has
  that flag (the library names its arguments and settings, which the flags
  share)."""
  return e.renamed(f"--{e.field}") if e.field and e.field in fv else str(e)


def main(argv: list[str]) -> int:
  """Runs `jaxal ARGV...`; returns the exit status. Raises whatever is not an
  `InputError`: a fault of jaxal, reported with its traceback."""
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    sys.stdout.write(usage())
    return 0 if len(argv) >= 2 else 2
  cmd = argv[1]
  if cmd not in COMMANDS:
    sys.stderr.write(f"error: unknown command {cmd!r}; commands: "
                     f"{', '.join(COMMANDS)} (jaxal --help).\n")
    return 2
  fv, status = _parse(cmd, argv[2:])
  if fv is None:
    return status
  import logging  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  from jaxal.cli.workdir import Workdir  # pylint: disable=g-import-not-at-top
  try:
    if not COMMANDS[cmd].selections and fv.selection is not None:
      raise InputError(
          f"--selection: the embedding is shared by every selection of a work "
          f"directory, and so is its dedupe; {cmd} without --selection."
          if cmd in ("embed", "dedupe") else
          f"--selection: {cmd} writes a source (--workdir), which has no "
          "selections.", field="selection")
    COMMANDS[cmd].run(Workdir(fv.workdir, fv.selection), fv)
  except InputError as e:
    sys.stderr.write(f"error: jaxal {cmd}: {message(e, fv)}\n")
    return 2
  return 0


def run() -> None:
  """Console-script entry point."""
  sys.exit(main(sys.argv))
