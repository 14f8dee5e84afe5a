"""One paper table as a sweep: check, run (sharded, resumable), render, plot.

The command-line scripts (`experiments/tables.py`, `experiments/quickstart.py`)
only parse flags into a `TableRun` and call `run_table`; everything they do is
here, so a new table or dataset is a config, not a new loop.

Every input is checked before any work starts (`check`): unknown methods,
datasets or targets, budgets above a pool, a workdir holding another setting's
results, and for `data="real"` unprepared datasets or a missing source model,
each reported with the flag to fix and, for data, what to download and where.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from jaxal import _validation as V
from jaxal import acquisition, io
from jaxal.datasets import catalog
from jaxal.experiments import protocol, sweep, tables

REAL_DATASETS = ("food101", "cifar100", "imn100", "mit67")
OFFLINE_DATASETS = ("offline_target", "offline_far")


class SetupError(ValueError):
  """A flag or the data is not usable; the message says which and how to fix it."""


@dataclasses.dataclass(frozen=True)
class TableRun:
  """What one table command runs (flags land here, `experiments/configs`)."""
  tables: tuple  # table numbers (2-14) whose cells to run and render
  datasets: tuple
  budgets: tuple
  methods: tuple
  seeds: tuple
  targets: dict  # dataset -> tuple of target models
  settings: protocol.Settings
  workdir: str
  shard: tuple = (0, 1)
  render: bool = True
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
  fixed = tables.SPECS[table].fixed_targets if table in tables.SPECS else ()
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
    spec = tables.SPECS[n]
    targets = ({d: spec.fixed_targets for d in run.datasets} if spec.fixed_targets
               else run.targets)
    out.update(sweep.expand(
        datasets=run.datasets, pool=spec.pool, budgets=run.budgets,
        methods=run.methods, balancing=spec.balancing, ensemble=spec.ensemble,
        targets=targets, seeds=run.seeds, rounds=run.rounds,
        features=spec.features))
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
  """Raises SetupError naming the flag for anything that would fail later."""
  s = run.settings
  for n in run.tables:
    if n not in tables.SPECS:
      raise SetupError(f"--table: {n} is not a table of the paper; use 2-12, 13 "
                       "(the cold-start functions beside the paper's) or 14 (the "
                       "same on SimCLR features of each pool).")
    if run.rounds != 1 and True in tables.SPECS[n].balancing:
      raise SetupError(f"--rounds={run.rounds}: table {n} uses the balancing step, "
                       "which is single-shot; use --rounds with a table without "
                       "it (2, 6, 7, 8, 10, 12).")
  if isinstance(run.rounds, bool) or not isinstance(run.rounds, int) or run.rounds < 1:
    raise SetupError(f"--rounds must be an int >= 1, got {run.rounds!r}.")
  if run.pixels not in protocol.PIXELS:
    raise SetupError(f"--pixels must be one of {', '.join(protocol.PIXELS)}, got "
                     f"{run.pixels!r}.")
  if run.pixels == "stream" and s.data == "offline" and catalog.in_memory(
      "offline_target"):
    raise SetupError("--pixels=stream reads the offline data through TFDS, which is "
                     "not installed here: pip install tensorflow-cpu "
                     "tensorflow-datasets (pinned in requirements.txt), or use "
                     "--pixels=auto.")
  if run.rounds > min(run.budgets, default=1):
    raise SetupError(f"--rounds={run.rounds} exceeds the smallest budget "
                     f"{min(run.budgets)}; use fewer rounds.")
  if s.data not in ("offline", "real"):
    raise SetupError(f"--data must be 'real' or 'offline', got {s.data!r}.")
  allowed = OFFLINE_DATASETS if s.data == "offline" else REAL_DATASETS
  if not run.datasets:
    raise SetupError("--datasets is empty; name at least one dataset.")
  for d in run.datasets:
    if d not in allowed:
      raise SetupError(f"--datasets: unknown dataset {d!r} for --data={s.data}; "
                       f"valid: {', '.join(allowed)}.")
  if not run.methods:
    raise SetupError("--methods is empty; name at least one method.")
  for m in run.methods:
    if m not in acquisition.METHODS:
      raise SetupError(f"--methods: unknown method {m!r}; valid: "
                       f"{', '.join(acquisition.METHODS)}.")
  if not run.seeds:
    raise SetupError("--seeds is empty; pass e.g. --seeds=0,1,2,3,4.")
  for seed in run.seeds:
    try:
      V.check_seed(seed)
    except ValueError as e:
      raise SetupError(f"--seeds: {e}") from None
  for d, ts in run.targets.items():
    for t in ts:
      if t not in sweep.TARGETS:
        raise SetupError(f"--target must be one of {', '.join(sweep.TARGETS)}, "
                         f"got {t!r}.")
  if not run.budgets or any(int(b) <= 0 for b in run.budgets):
    raise SetupError(f"--budgets must be positive ints, got {list(run.budgets)}.")
  if s.data == "real":
    _check_real(run)
  else:
    src = s.offline.num_source_classes * s.offline.source_train_per_class
    n_dev = jax.device_count()
    if not 0 < s.source.batch_size <= src or s.source.batch_size % n_dev:
      raise SetupError(f"--batch_size={s.source.batch_size}: M_S's batch must be a "
                       f"multiple of the {n_dev} devices and at most the {src} source "
                       "images (--offline_source_classes x --offline_source_per_class).")
    if s.source.epochs < 1 or s.source.snapshot_every < 1 or s.source.width < 1:
      raise SetupError("--epochs, --snapshot_every and --width must be >= 1.")
  kinds = sorted({tables.SPECS[n].pool for n in run.tables})
  uses_ssl = any("ssl" in tables.SPECS[n].features for n in run.tables) or any(
      "svm_ssl" in ts for ts in run.targets.values())
  if uses_ssl:
    _check_ssl(s)
  for d in run.datasets:
    available = available_counts(s, d)  # one label scan per dataset
    for kind in kinds:
      size = int(protocol.pool_counts(s, d, kind, available).sum())
      if uses_ssl and s.ssl.batch_size > size:
        raise SetupError(f"--ssl_batch_size={s.ssl.batch_size} exceeds the {kind} "
                         f"pool of {d} ({size} images) SimCLR trains on; lower it.")
      too_big = [b for b in run.budgets if int(b) > size]
      if too_big:
        raise SetupError(f"--budgets: {too_big[0]} is larger than the {kind} pool of "
                         f"{d} ({size} images); pass budgets <= {size}.")
  _check_workdir(run)


def _check_ssl(s: protocol.Settings) -> None:
  """The SimCLR settings of Table 14, each error naming its --ssl_ flag."""
  if s.ssl.width < 1:
    raise SetupError(f"--ssl_width must be >= 1, got {s.ssl.width}.")
  try:
    s.ssl.config(seed=s.data_seed).validate()
  except ValueError as e:
    raise SetupError(f"--ssl_{e}") from None


def _check_real(run: TableRun) -> None:
  s = run.settings
  problems = []
  if not s.source_workdir:
    problems.append("--source_workdir is not set: train M_S with `python3 run.py exp "
                    "train_source --dataset=imagenet_source ...` and pass its workdir.")
  elif not os.path.exists(os.path.join(s.source_workdir, "config.json")):
    problems.append(f"--source_workdir {s.source_workdir} holds no trained M_S "
                    "(config.json missing): run train_source with --workdir there.")
  else:
    cfg = io.read_json(os.path.join(s.source_workdir, "config.json"), {})
    if (cfg.get("kind") == "pretrained" and "imn100" in run.datasets
        and not run.allow_source_seen_target):
      raise SetupError(
          f"--source_workdir {s.source_workdir} holds imported ImageNet-pretrained "
          "weights, which were trained on IMN-100's 100 classes (its pool is part "
          "of ImageNet's training set): the paper's M_S is trained on the other 900 "
          "classes only (train_source --dataset=imagenet_source). Pass "
          "--allow_source_seen_target to run IMN-100 on it anyway, knowing its "
          "cells are not the paper's setting.")
    encoder = {"simclr": "a SimCLR encoder",
               "foundation": f"a {cfg.get('arch')} foundation encoder"}
    if cfg.get("kind") in encoder:  # features, no probabilities
      need = [m for m in run.methods if acquisition.needs_probs(m)]
      if need:
        raise SetupError(
            f"--methods: {', '.join(need)} need M_S's source-class probabilities, "
            f"and --source_workdir {s.source_workdir} holds {encoder[cfg['kind']]} "
            "(features only); pass --methods from "
            f"{', '.join(acquisition.FEATURES_ONLY)}, or a trained M_S.")
    tuned = sorted(d for d, ts in run.targets.items() if "finetune" in ts)
    if cfg.get("kind") == "foundation" and tuned:
      raise SetupError(
          f"--target: {', '.join(tuned)} use the fine-tuned target, and "
          f"--source_workdir {s.source_workdir} holds a {cfg.get('arch')} encoder: "
          "jaxal fine-tunes its ResNets only; pass --target=svm (a linear SVM on "
          "the encoder's frozen features, the probe of the foundation-model "
          "studies).")
    ens = [n for n in run.tables if True in tables.SPECS[n].ensemble]
    if cfg.get("kind") in ("pretrained", "simclr", "foundation") and ens:
      raise SetupError(f"Table {ens[0]} has snapshot-ensemble (+ens) rows, and "
                       f"--source_workdir {s.source_workdir} holds "
                       + ("imported weights" if cfg["kind"] == "pretrained" else
                          encoder[cfg["kind"]]) +
                       ": one model, no training snapshots to average. Use a "
                       "train_source run for the +ens tables.")
  for d in run.datasets:
    try:
      catalog.check_prepared(d, data_dir=s.data_dir)
    except catalog.DatasetNotFoundError as e:
      problems.append(f"{d}: {e}")
  if problems:
    raise SetupError("--data=real needs data that is not here (nothing was run):\n- "
                     + "\n- ".join(problems))


def _check_workdir(run: TableRun) -> None:
  """One workdir holds one setting; a different one is refused, saying what."""
  path = os.path.join(run.workdir, "settings.json")
  old = io.read_json(path)
  new = run.settings.as_dict()
  if old is not None and old != new:
    diff = [f"{k}: {old.get(k)!r} there, {new.get(k)!r} now"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    raise SetupError(f"--workdir {run.workdir} holds results of other settings "
                     f"({'; '.join(diff)}); use another --workdir.")


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
    io.write_json(os.path.join(run.workdir, "settings.json"), run.settings.as_dict())
    todo = sweep.shard(cells(run), *run.shard)
    proto = protocol.Protocol(run.settings, run.workdir, log=log, pixels=run.pixels)
    log(f"tables {', '.join(map(str, run.tables))}: {len(todo)} cells in shard "
        f"{run.shard[0]}/{run.shard[1]} ({run.settings.data} data, workdir "
        f"{run.workdir})")
    try:
      computed = sweep.run(todo, store, proto.compute, log=log)
    except protocol.SettingsError as e:  # the protocol names its settings' fields,
      raise SetupError(f"--{e.field}: {e.reason}") from None  # the flags share them
  out = {"computed": computed, "tables": {}, "plots": []}
  if not run.render:
    return out
  every = store.all()
  out["cells_csv"] = store.write_csv(every)
  results = of_rounds(every, run.rounds)
  suffix = "" if run.rounds == 1 else f"_rounds{run.rounds}"
  for n in run.tables:
    table = tables.build(n, results, datasets=run.datasets, budgets=run.budgets,
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
  pools = sorted({tables.SPECS[n].pool for n in run.tables})
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
