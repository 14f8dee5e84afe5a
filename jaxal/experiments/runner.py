"""One paper table as a sweep: check, run (sharded, resumable), render, plot.

The command-line scripts (`experiments/tables.py`, `experiments/quickstart.py`)
only parse flags into a `TableRun` and call `run_table`; everything they do is
here, so a new table or dataset is a config, not a new loop.

Every input is checked before any work starts (`check`): unknown methods,
datasets or targets, budgets above a pool, a workdir holding another setting's
results, and for `data="real"` unprepared datasets or a missing source model,
each a `SetupError` naming the setting to fix (its `field`; the scripts name
their flag for it) and, for data, what to download and where.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from jaxal import _validation as V
from jaxal import acquisition, io
from jaxal.curation import neighbors
from jaxal.datasets import catalog
from jaxal.errors import InputError
from jaxal.experiments import protocol, render, sweep

REAL_DATASETS = ("food101", "cifar100", "imn100", "mit67")
OFFLINE_DATASETS = ("offline_target", "offline_far")


class SetupError(InputError):
  """A setting or the data is not usable; the message says which and how to fix
  it. `field` names a `TableRun` field ("budgets"), or a `Settings` field
  ("data", dotted inside: "ssl.temperature"), so that a command line can name
  its own flag for it."""


@dataclasses.dataclass(frozen=True)
class TableRun:
  """What one table command runs (flags land here, `experiments/configs`)."""
  tables: tuple  # table numbers (2-16) whose cells to run and render
  datasets: tuple
  budgets: tuple
  methods: tuple
  seeds: tuple
  targets: dict  # dataset -> tuple of target models
  settings: protocol.Settings
  workdir: str
  shard: tuple = (0, 1)
  plots: bool = True
  rounds: int = 1  # > 1: iterative selection (jaxal.rounds) in the method cells
  pixels: str = "auto"  # protocol.PIXELS: how pools are read (results unchanged)
  # An imported ImageNet-1k source has seen IMN-100's classes (and images); the
  # paper's M_S is trained on the other 900 only. Refused for imn100 unless set.
  allow_source_seen_target: bool = False


def default_targets(datasets: Sequence[str], table: int,
                    target: Optional[str] = None) -> dict:
  """dataset -> target models: `target` if given, both for Table 12, else the
  dataset's default (method guide §5: Food-101 and MIT-67 fine-tuning,
  CIFAR-100 and IMN-100 the SVM; the offline far target fine-tuning). Table
  14 always has its own: the SVM on M_S's and on SimCLR's features."""
  fixed = render.SPECS[table].fixed_targets if table in render.SPECS else ()
  out = {}
  for d in datasets:
    if fixed:
      out[d] = fixed
    elif target:
      out[d] = (target,)
    elif table == 12:
      out[d] = sweep.TARGETS
    else:
      out[d] = (catalog.spec(d).target_model or "svm",)
  return out


def cells(run: TableRun) -> list:
  """Every cell of the run's tables (before sharding)."""
  out = set()
  for n in run.tables:
    spec = render.SPECS[n]
    targets = ({d: spec.fixed_targets for d in run.datasets} if spec.fixed_targets
               else run.targets)
    out.update(sweep.expand(
        datasets=run.datasets, pool=spec.pool, budgets=run.budgets,
        methods=run.methods, balancing=spec.balancing, ensemble=spec.ensemble,
        targets=targets, seeds=run.seeds, rounds=run.rounds,
        features=spec.features, guided=spec.guided))
  return sorted(out)


def of_rounds(results, rounds: int) -> list:
  """The results of `rounds`-round method cells, and the shared Full cells."""
  return [r for r in results if r["method"] == sweep.FULL
          or int(r.get("rounds") or 1) == rounds]


def available_counts(settings: protocol.Settings, dataset: str) -> np.ndarray:
  """Images per class of `dataset`'s train split, from its labels only."""
  if settings.data == "offline":
    part = dataset.split("_", 1)[1]
    return np.full(settings.offline.num_classes(part),
                   settings.offline.per_class(part, "train"))
  return np.bincount(catalog.load_labels(dataset, "train", data_dir=settings.data_dir))


def check(run: TableRun) -> None:
  """Raises SetupError, naming the field, for anything that would fail later."""
  _check_tables(run)
  _check_names(run)
  if run.settings.data == "real":
    _check_real(run)
  else:
    _check_offline_source(run.settings)
  _check_pools(run)
  _check_dedupe(run.settings)
  if any(render.SPECS[n].zeroshot for n in run.tables):
    _check_zeroshot(run)
  _check_workdir(run)


def _check_zeroshot(run: TableRun) -> None:
  """Table 16's zero-shot settings (fields "zeroshot.NAME"): a SigLIP source
  with its text tower (required with real data: the offline stand-in only
  knows the offline data), templates, the stand-in's noise and the guess
  weight."""
  from jaxal import zeroshot  # pylint: disable=g-import-not-at-top
  zs = run.settings.zeroshot
  try:
    zeroshot.check_prompts(zs.prompts)
  except InputError as e:
    raise SetupError(str(e), field="zeroshot.prompts") from None
  for name, value in (("noise", zs.noise), ("guess_weight", zs.guess_weight)):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        np.isfinite(value) and value >= 0):
      raise SetupError(f"zeroshot.{name} must be a number >= 0, got {value!r}.",
                       field=f"zeroshot.{name}")
  if zs.source is None:
    if run.settings.data == "real":
      raise SetupError("zeroshot.source is not set: the zero-shot rows read the "
                       "real datasets' class names with a SigLIP source (`jaxal "
                       "import-source --arch=siglip --weights=DIR --workdir=W`, "
                       "then pass W); the stand-in is for the offline data only.",
                       field="zeroshot.source")
    return
  from jaxal.models import foundation  # pylint: disable=g-import-not-at-top
  try:
    foundation.load_text(zs.source)
  except InputError as e:
    raise SetupError(f"zeroshot.source: {e}", field="zeroshot.source") from None


def _check_dedupe(settings: protocol.Settings) -> None:
  if settings.dedupe is not None:
    try:
      neighbors.check_threshold(settings.dedupe, "cosine")
    except InputError as e:
      raise SetupError(str(e).replace("threshold", "dedupe", 1), field="dedupe") \
          from None


def _check_tables(run: TableRun) -> None:
  """The tables, and how their method cells select (rounds, pixels)."""
  if isinstance(run.rounds, bool) or not isinstance(run.rounds, int) or run.rounds < 1:
    raise SetupError(f"rounds must be an int >= 1, got {run.rounds!r}.",
                     field="rounds")
  for n in run.tables:
    if n not in render.SPECS:
      raise SetupError(f"tables: {n} is not a table of the paper; use 2-12, 13 "
                       "(the cold-start functions beside the paper's), 14 (the "
                       "same on SimCLR features of each pool), 15 (14 over "
                       "rounds) or 16 (zero-shot probabilities and guesses).",
                       field="tables")
    if render.SPECS[n].in_rounds and run.rounds < 2:
      raise SetupError(f"table {n} compares selection over rounds: pass rounds >= 2 "
                       f"(its config's default is 3).", field="rounds")
  if run.rounds == 1 and "direct" in run.methods:
    raise SetupError("method 'direct' labels around the target model's thresholds, "
                     "so it has no single-shot form: use rounds >= 2 (table 15).",
                     field="methods")
  tuned = sorted({d for d, ts in run.targets.items() if "finetune" in ts})
  if run.rounds > 1 and "dropquery" in run.methods and tuned and any(
      not render.SPECS[n].fixed_targets for n in run.tables):
    raise SetupError("method 'dropquery' reads the target model's linear head in "
                     "later rounds, which the SVM has and the fine-tuned network "
                     f"does not; {', '.join(tuned)} fine-tune: use target=svm.",
                     field="targets")
  if run.rounds > min(run.budgets, default=1):
    raise SetupError(f"rounds={run.rounds} exceeds the smallest budget "
                     f"{min(run.budgets)}; use fewer rounds.", field="rounds")
  if run.pixels not in protocol.PIXELS:
    raise SetupError(f"pixels must be one of {', '.join(protocol.PIXELS)}, got "
                     f"{run.pixels!r}.", field="pixels")
  if run.pixels == "stream" and run.settings.data == "offline" and \
      catalog.in_memory("offline_target"):
    raise SetupError("pixels=stream reads the offline data through TFDS, which is "
                     "not installed here: pip install tensorflow-cpu "
                     "tensorflow-datasets (pinned in requirements.txt), or use "
                     "pixels=auto.", field="pixels")


def _check_names(run: TableRun) -> None:
  """Data, datasets, methods, seeds, target models and budgets by name and
  value, before anything is read."""
  data = run.settings.data
  if data not in ("offline", "real"):
    raise SetupError(f"data must be 'real' or 'offline', got {data!r}.",
                     field="data")
  allowed = OFFLINE_DATASETS if data == "offline" else REAL_DATASETS
  _check_listed("datasets", run.datasets, allowed, "dataset",
                f" for data={data}")
  _check_listed("methods", run.methods, acquisition.METHODS, "method")
  if not run.seeds:
    raise SetupError("seeds is empty; pass e.g. seeds=(0, 1, 2, 3, 4).",
                     field="seeds")
  for seed in run.seeds:
    try:
      V.check_seed(seed)
    except InputError as e:
      raise SetupError(str(e), field="seeds") from None
  for d, ts in run.targets.items():
    for t in ts:
      if t not in sweep.TARGETS:
        raise SetupError(f"targets must be among {', '.join(sweep.TARGETS)}, got "
                         f"{t!r} for {d}.", field="targets")
  if not run.budgets or any(int(b) <= 0 for b in run.budgets):
    raise SetupError(f"budgets must be positive ints, got {list(run.budgets)}.",
                     field="budgets")


def _check_listed(field: str, given: Sequence[str], allowed: Sequence[str],
                  what: str, where: str = "") -> None:
  if not given:
    raise SetupError(f"{field} is empty; name at least one {what}.", field=field)
  for name in given:
    if name not in allowed:
      raise SetupError(f"unknown {what} {name!r}{where}; valid: "
                       f"{', '.join(allowed)}.", field=field)


def _check_offline_source(s: protocol.Settings) -> None:
  """M_S trained here on the offline source part."""
  src = s.offline.num_source_classes * s.offline.source_train_per_class
  n_dev = jax.device_count()
  if not 0 < s.source.batch_size <= src or s.source.batch_size % n_dev:
    raise SetupError(f"source.batch_size={s.source.batch_size}: M_S's batch must "
                     f"be a multiple of the {n_dev} devices and at most the {src} "
                     "source images (offline.num_source_classes x "
                     "offline.source_train_per_class).", field="source.batch_size")
  for name in ("epochs", "snapshot_every", "width"):
    if getattr(s.source, name) < 1:
      raise SetupError(f"source.{name} must be >= 1, got "
                       f"{getattr(s.source, name)}.", field=f"source.{name}")


def _check_pools(run: TableRun) -> None:
  """Budgets, and SimCLR's batch where a table uses it, against each pool."""
  s = run.settings
  kinds = sorted({render.SPECS[n].pool for n in run.tables})
  uses_ssl = any("ssl" in render.SPECS[n].features for n in run.tables) or any(
      "svm_ssl" in ts for ts in run.targets.values())
  if uses_ssl:
    _check_ssl(s)
  for d in run.datasets:
    available = available_counts(s, d)  # one label scan per dataset
    for kind in kinds:
      size = int(protocol.pool_counts(s, d, kind, available).sum())
      if uses_ssl and s.ssl.batch_size > size:
        raise SetupError(f"ssl.batch_size={s.ssl.batch_size} exceeds the {kind} "
                         f"pool of {d} ({size} images) SimCLR trains on; lower it.",
                         field="ssl.batch_size")
      too_big = [b for b in run.budgets if int(b) > size]
      if too_big:
        raise SetupError(f"{too_big[0]} is larger than the {kind} pool of {d} "
                         f"({size} images); pass budgets <= {size}.",
                         field="budgets")


def _check_ssl(s: protocol.Settings) -> None:
  """The SimCLR settings of Table 14 (fields "ssl.NAME")."""
  if s.ssl.width < 1:
    raise SetupError(f"ssl.width must be >= 1, got {s.ssl.width}.",
                     field="ssl.width")
  try:
    s.ssl.config(seed=s.data_seed).validate()
  except InputError as e:  # a SimCLRConfig field, which SSLSettings shares
    field = f"ssl.{e.field}" if e.field else "ssl"
    raise SetupError(e.renamed(field), field=field) from None


def _check_real(run: TableRun) -> None:
  """The real datasets and the source model M_S they are embedded by."""
  s = run.settings
  problems = []
  if not s.source_workdir:
    problems.append("source_workdir is not set: train M_S with `python3 run.py exp "
                    "train_source --dataset=imagenet_source ...` and pass its "
                    "workdir.")
  elif not os.path.exists(os.path.join(s.source_workdir, "config.json")):
    problems.append(f"source_workdir {s.source_workdir} holds no trained M_S "
                    "(config.json missing): run train_source with --workdir there.")
  else:
    _check_source(run, io.read_json(os.path.join(s.source_workdir, "config.json"),
                                    {}))
  for d in run.datasets:
    try:
      catalog.check_prepared(d, data_dir=s.data_dir)
    except catalog.DatasetNotFoundError as e:
      problems.append(f"{d}: {e}")
  if problems:
    raise SetupError("data=real needs data that is not here (nothing was run):\n- "
                     + "\n- ".join(problems), field="data")


def _check_source(run: TableRun, cfg: dict) -> None:
  """What the source model in `source_workdir` (its config.json: `cfg`) can
  give the run's datasets, methods, targets and tables."""
  where = f"source_workdir {run.settings.source_workdir}"
  kind = cfg.get("kind")
  if (kind == "pretrained" and "imn100" in run.datasets
      and not run.allow_source_seen_target):
    raise SetupError(
        f"allow_source_seen_target is not set, and {where} holds imported "
        "ImageNet-pretrained weights, which were trained on IMN-100's 100 "
        "classes (its pool is part of ImageNet's training set): the paper's M_S "
        "is trained on the other 900 classes only (train_source "
        "--dataset=imagenet_source). Set it to run IMN-100 on them anyway, "
        "knowing its cells are not the paper's setting.",
        field="allow_source_seen_target")
  encoder = {"simclr": "a SimCLR encoder",
             "foundation": f"a {cfg.get('arch')} foundation encoder"}
  need = [m for m in run.methods if acquisition.needs_probs(m)]
  if kind in encoder and need:  # features, no probabilities
    raise SetupError(
        f"{', '.join(need)} need M_S's source-class probabilities, and {where} "
        f"holds {encoder[kind]} (features only); pass methods from "
        f"{', '.join(acquisition.FEATURES_ONLY)}, or a trained M_S.",
        field="methods")
  tuned = sorted(d for d, ts in run.targets.items() if "finetune" in ts)
  if kind == "foundation" and tuned:
    raise SetupError(
        f"targets=svm is needed: {', '.join(tuned)} use the fine-tuned target, "
        f"and {where} holds a {cfg.get('arch')} encoder: jaxal fine-tunes its "
        "ResNets only (the SVM target is a linear SVM on the encoder's frozen "
        "features, the probe of the foundation-model studies).", field="targets")
  ens = [n for n in run.tables if True in render.SPECS[n].ensemble]
  if kind in ("pretrained", "simclr", "foundation") and ens:
    raise SetupError(
        f"{where} holds " + ("imported weights" if kind == "pretrained" else
                             encoder[kind]) +
        f": one model, no training snapshots to average, and table {ens[0]} has "
        "snapshot-ensemble (+ens) rows. Use a train_source run for the +ens "
        "tables.", field="source_workdir")


def _check_workdir(run: TableRun) -> None:
  """One workdir holds one setting; a different one is refused, saying what.
  The zero-shot settings count only where cells used them (`recorded`)."""
  path = os.path.join(run.workdir, "settings.json")
  old = io.read_json(path)
  new = recorded(run, old)
  if old is not None and "zeroshot" in new and "zeroshot" not in old:
    old = {**old, "zeroshot": new["zeroshot"]}  # no cell used them yet
  if old is not None and old != new:
    diff = [f"{k}: {old.get(k)!r} there, {new.get(k)!r} now"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    raise SetupError(f"workdir {run.workdir} holds results of other settings "
                     f"({'; '.join(diff)}); use another workdir.", field="workdir")


def recorded(run: TableRun, old: Optional[dict]) -> dict:
  """The settings.json this run keeps: its settings, with the zero-shot ones
  (Table 16) recorded once a run used them, and kept from `old` (the file
  there) by runs that do not, so that Tables 2-15 and 16 share one workdir
  whatever their flags (and a second Table 16 run with other zero-shot
  settings is refused)."""
  new = {k: v for k, v in run.settings.as_dict().items() if k != "zeroshot"}
  if any(render.SPECS[n].zeroshot for n in run.tables):
    new["zeroshot"] = dataclasses.asdict(run.settings.zeroshot)
    new["zeroshot"]["prompts"] = list(new["zeroshot"]["prompts"])
  elif old is not None and "zeroshot" in old:
    new["zeroshot"] = old["zeroshot"]
  return new


def run_table(run: TableRun, log: Callable[[str], None] = print, *,
              render_only: bool = False) -> dict:
  """Checks, runs this shard's cells (unless `render_only`), then renders the
  tables and plots of whatever has finished in the workdir.

  Returns {"cells_csv", "tables": {n: {"md", "csv", "tex"}}, "plots": [...],
  "computed": int}.
  """
  check(run)
  store = sweep.ResultStore(run.workdir)
  computed = 0
  if not render_only:
    path = os.path.join(run.workdir, "settings.json")
    io.write_json(path, recorded(run, io.read_json(path)))
    todo = sweep.shard(cells(run), *run.shard)
    proto = protocol.Protocol(run.settings, run.workdir, log=log, pixels=run.pixels)
    log(f"tables {', '.join(map(str, run.tables))}: {len(todo)} cells in shard "
        f"{run.shard[0]}/{run.shard[1]} ({run.settings.data} data, workdir "
        f"{run.workdir})")
    try:
      computed = sweep.run(todo, store, proto.compute, log=log)
    except protocol.SettingsError as e:
      raise SetupError(str(e), field=e.field) from None
  out = {"computed": computed, "tables": {}, "plots": []}
  every = store.all()
  out["cells_csv"] = store.write_csv(every)
  results = of_rounds(every, run.rounds)
  suffix = "" if run.rounds == 1 else f"_rounds{run.rounds}"
  for n in run.tables:
    table = render.build(n, results, datasets=run.datasets, budgets=run.budgets,
                         methods=run.methods, targets=run.targets,
                         published=run.settings.data == "real")
    base = os.path.join(run.workdir, "tables", f"table_{n}{suffix}")
    paths = {}
    md = table.markdown()
    if run.rounds > 1:
      md = (f"Iterative selection in {run.rounds} rounds (jaxal.rounds; the paper's "
            "future work, not its tables); the Full row is shared.\n\n" + md)
    for ext, text in (("md", md), ("csv", table.csv()), ("tex", table.latex())):
      paths[ext] = f"{base}.{ext}"
      io.write_text(paths[ext], text)
    out["tables"][n] = paths
    log("\n" + md)
  if run.plots:
    out["plots"] = make_plots(run, results, log)
  return out


def make_plots(run: TableRun, results, log) -> list:
  """ACC_t against budget per dataset, and per-class labeled counts of the
  first non-random method before and after balancing at the largest budget."""
  from jaxal.experiments import plots  # pylint: disable=g-import-not-at-top
  made = []
  pools = sorted({render.SPECS[n].pool for n in run.tables})
  try:
    for d in run.datasets:
      for pool in pools:
        for t in run.targets[d]:
          name = f"{d}_{pool}_{t}" + ("" if run.rounds == 1 else
                                      f"_rounds{run.rounds}")
          p = plots.accuracy_vs_budget(results, d, pool, t, run.methods, os.path.join(
              run.workdir, "plots", f"acc_vs_budget_{name}.png"))
          made += [p] if p else []
          m = next((m for m in run.methods if m != "random"), run.methods[0])
          b = max(int(x) for x in run.budgets)
          p = plots.class_counts(results, d, pool, t, m, b, os.path.join(
              run.workdir, "plots", f"class_counts_{name}_{m}_b{b}.png"),
              seed=run.seeds[0])
          made += [p] if p else []
  except plots.PlotsUnavailable as e:
    log(f"plots skipped: {e}")
  return made
