"""The steps of the `jaxal` command, on one work directory (`jaxal.workdir`).

    embed    M_S (a `train_source` run; `ensemble`: its snapshot average, the
             paper's +ens) over an image folder -> features and probabilities
    select   single-shot acquisition (main paper section 3.2) of `budget`
             images -> to_label.csv; with `rounds` > 1, later rounds re-select
             from the target model trained on the labels so far (`jaxal.rounds`)
    balance  the balancing step (section 3.3, METHOD.md section 4) with the
             annotators in the loop: from the labels returned so far, the next
             batch to label, until the budget is spent
    train    the target model (SVM or fine-tuning, METHOD.md section 5)
    predict  the target model's predictions for a folder
    report   classes found, imbalance ratio, counts per class, ACC_t

Each step is a function of explicit arguments (`jaxal.cli` reads the flags);
each validates everything before writing anything, writes atomically, and does
nothing twice: rerun with the same inputs, it gives the same files.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io as _io
import os
import shutil
import time
from typing import Callable, Optional, Sequence

import numpy as np

from jaxal import _validation as V
from jaxal import (acquisition, balancing, images, inference, io, labels, metrics,
                   rounds, source, target, train, uncertainty)
from jaxal.checkpoint import Snapshots
from jaxal.datasets import pipeline
from jaxal.workdir import Pool, Workdir, WorkdirError, digest

Log = Callable[[str], None]
TARGET_KINDS = ("svm", "finetune")
NEW_WORKDIR = "Use a new --workdir, or rerun with the flags recorded there."


# ------------------------------------------------------------------- embed
def _signals(trained: source.Trained, ensemble: bool, batch: np.ndarray,
             batch_size: int):
  """(features, probs, target features) of one uint8 batch."""
  variables = trained.snapshots if ensemble else [trained.final]
  outs = [inference.predict(trained.model, v, batch, batch_size=batch_size,
                            transform=pipeline.normalize) for v in variables]
  feats = sum(f for f, _ in outs) / len(outs)
  probs = sum(p for _, p in outs) / len(outs)
  if not ensemble:
    return feats, probs, feats
  at = trained.final_in_snapshots
  final = outs[at][0] if at is not None else inference.predict(
      trained.model, trained.final, batch, batch_size=batch_size,
      transform=pipeline.normalize)[0]
  return feats, probs, final


@functools.lru_cache(maxsize=2)
def _tfds_images(spec: str, data_dir: Optional[str], size: int) -> "_TfdsImages":
  """The split in memory once per process (fine-tuning and rounds read pixels
  chunk by chunk)."""
  return _TfdsImages(spec, data_dir, size)


class _TfdsImages:
  """A TFDS split as the pool: image i is named "DATASET:SPLIT/i" (8 digits)."""

  def __init__(self, spec: str, data_dir: Optional[str], size: int):
    name, _, split = spec.partition(":")
    from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
    try:
      arrays = catalog.load_arrays(name, split or "train", data_dir=data_dir,
                                   image_size=size)
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise WorkdirError(f"--tfds {spec!r}: {e}") from None
    self.images = arrays.images
    self.prefix = f"{name}:{split or 'train'}/"
    self.paths = [f"{self.prefix}{i:08d}" for i in range(len(self.images))]

  def load(self, part):
    idx = [int(p[len(self.prefix):]) for p in part]
    return self.images[idx], np.ones(len(part), bool), {}


def embed(wd: Workdir, *, images_dir: Optional[str], source_dir: str,
          ensemble: bool = False, chunk: int = 256, batch_size: int = 128,
          tfds: Optional[str] = None, data_dir: Optional[str] = None,
          log: Log = print) -> Pool:
  """Runs M_S over every image of `images_dir` (or of the TFDS split `tfds`,
  "NAME:SPLIT"), `chunk` images at a time.

  Each finished chunk is saved atomically under WORKDIR/embed, so a killed run
  resumes from its last finished chunk and gives the same outputs as one
  uninterrupted run. Unreadable images are reported by path and skipped.
  """
  if chunk < 1 or batch_size < 1:
    raise WorkdirError(f"--chunk and --batch must be >= 1, got {chunk} and "
                       f"{batch_size}.")
  if bool(images_dir) == bool(tfds):
    raise WorkdirError("pass exactly one of --images (a folder) and --tfds "
                       "(NAME:SPLIT of a prepared TFDS dataset).")
  try:
    trained = source.load_workdir(source_dir)
  except ValueError as e:
    raise WorkdirError(f"--source: {e}") from None
  size = trained.image_size
  if tfds:
    from_tfds = _tfds_images(tfds, data_dir, size)
    paths, images_dir = from_tfds.paths, tfds
    load = from_tfds.load
  else:
    paths = images.scan(images_dir)
    load = lambda part: images.load_batch(images_dir, part, size)  # noqa: E731
  if wd.recorded("embed") is None and wd.paths() is None and \
      os.path.isdir(wd.path) and os.listdir(wd.path):
    raise WorkdirError(f"--workdir {wd.path} is not empty and holds no jaxal "
                       "embedding; pass a new or empty directory.")
  setup = {"images": tfds or os.path.abspath(images_dir), "tfds": bool(tfds),
           "source": os.path.abspath(source_dir),
           "source_digest": trained.digest, "ensemble": bool(ensemble),
           "image_size": size, "chunk": int(chunk), "data_dir": data_dir,
           "paths_digest": digest("\n".join(paths))}
  old = wd.recorded("embed") or {}
  # Flags first (saying which differs), then the folder's contents.
  wd.check("embed", {**setup, "paths_digest": old.get("paths_digest")},
           hint=NEW_WORKDIR)
  old_paths = wd.paths()
  if old_paths is not None and old_paths != paths:
    added, gone = len(set(paths) - set(old_paths)), len(set(old_paths) - set(paths))
    raise WorkdirError(f"--images {images_dir}: the folder changed since this work "
                       f"directory embedded it ({added} image(s) added, {gone} "
                       "removed); use a new --workdir for the new pool.")
  os.makedirs(wd.path, exist_ok=True)
  if old_paths is None:
    io.write_text(wd.file("paths.txt"), "\n".join(paths) + "\n")
  wd.record("embed", setup)
  if os.path.exists(wd.file("embedding.npz")):
    log(f"embed: already done ({wd.file('embedding.npz')})")
    if os.path.isdir(wd.file("embed")):  # killed while removing the chunks
      shutil.rmtree(wd.file("embed"))
    return wd.pool()

  n = len(paths)
  starts = range(0, n, chunk)
  todo = [s for s in starts if not os.path.exists(_chunk_path(wd, s // chunk))]
  log(f"embed: {n} images under {images_dir}, {len(starts) - len(todo)} of "
      f"{len(starts)} chunks already done; M_S "
      f"{'ensemble of ' + str(len(trained.snapshots)) if ensemble else 'final model'}"
      f" at {size} px")
  t0, done = time.perf_counter(), 0
  total = sum(len(paths[s:s + chunk]) for s in todo)
  for s in todo:
    part = paths[s:s + chunk]
    batch, ok, errors = load(part)
    for p, err in errors.items():
      log(f"embed: skipping unreadable image {os.path.join(images_dir, p)} ({err})")
    if ok.any():
      feats, probs, tfeats = _signals(trained, ensemble, batch, min(batch_size, chunk))
    else:
      feats = probs = tfeats = np.zeros((0, 0), np.float32)
    io.save_npz(_chunk_path(wd, s // chunk), ok=ok, features=feats, probs=probs,
              target_features=tfeats,
              errors=np.array([f"{p}\t{e}" for p, e in errors.items()], dtype=str))
    done += len(part)
    rate = done / (time.perf_counter() - t0)
    log(f"embed: {s + len(part)}/{n} images, {rate:.1f} images/s, "
        f"{(total - done) / rate:.0f} s left")
  return _consolidate(wd, paths, chunk, log)


def _chunk_path(wd: Workdir, i: int) -> str:
  return wd.file("embed", f"chunk_{i:06d}.npz")


def _consolidate(wd: Workdir, paths: list[str], chunk: int, log: Log) -> Pool:
  parts = {"features": [], "probs": [], "target_features": []}
  ok_all, skipped = [], []
  for i, s in enumerate(range(0, len(paths), chunk)):
    with np.load(_chunk_path(wd, i)) as z:
      ok_all.append(z["ok"])
      if z["ok"].any():
        for k in parts:
          parts[k].append(z[k])
      skipped += [tuple(e.split("\t", 1)) for e in z["errors"]]
  ok = np.concatenate(ok_all)
  if not ok.any():
    raise WorkdirError(f"none of the {len(paths)} images could be read; see "
                       f"{wd.file('skipped.csv')}.")
  arrays = {k: np.concatenate(v) for k, v in parts.items()}
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["path", "reason"])
  w.writerows(skipped)
  io.write_text(wd.file("skipped.csv"), buf.getvalue())
  io.save_npz(wd.file("embedding.npz"), index=np.flatnonzero(ok), **arrays)
  for i in range(len(ok_all)):
    os.remove(_chunk_path(wd, i))
  for name in os.listdir(wd.file("embed")):  # temporaries of killed writes
    os.remove(wd.file("embed", name))
  os.rmdir(wd.file("embed"))
  log(f"embed: {int(ok.sum())} images embedded, {len(skipped)} unreadable skipped "
      f"(listed in {wd.file('skipped.csv')})")
  return wd.pool()


# ------------------------------------------------------------------ select
def _scores(method: str, probs: np.ndarray, features: np.ndarray, picks: np.ndarray,
            labeled: Sequence[int]) -> list[str]:
  """What each pick scored: the uncertainty value, core-set's distance to the
  nearest center when it was picked, nothing for random."""
  base = method.replace("_inv", "").replace("_div", "")
  if base in ("entropy", "least_confidence", "margin"):
    fn = getattr(uncertainty, base)  # margin: the margin itself, small = uncertain
    s = np.asarray(fn(probs[picks]), np.float64)
  elif base == "coreset":
    s = _pick_distances(features.astype(np.float64), np.asarray(picks, np.int64),
                        np.asarray(list(labeled), np.int64))
  else:
    return [""] * len(picks)
  return ["" if not np.isfinite(v) else f"{v:.6g}" for v in s]


def _pick_distances(f: np.ndarray, picks: np.ndarray, labeled: np.ndarray,
                    block: int = 1024) -> np.ndarray:
  """Distance of each pick to its nearest center when it was picked: the
  labeled images and the earlier picks (inf for a first pick with none)."""
  def sq(a, b):
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :]
                      - 2 * a @ b.T, 0)
  p = f[picks]
  out = np.full(len(picks), np.inf)
  for s in range(0, len(picks), block):
    rows = p[s:s + block]
    if labeled.size:
      out[s:s + block] = sq(rows, f[labeled]).min(1)
    if s + len(rows) > 1:  # earlier picks: columns before each row's own index
      d = sq(rows, p[:s + len(rows)])
      d[np.arange(len(rows))[:, None] + s <= np.arange(d.shape[1])[None, :]] = np.inf
      out[s:s + block] = np.minimum(out[s:s + block], d.min(1))
  return np.sqrt(out)


def _write_to_label(wd: Workdir, pool: Pool, rows: list[tuple]) -> None:
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["path", "rank", "score", "predicted_class"])
  for idx, rank, score, pred in rows:
    w.writerow([pool.paths[idx], rank, score, pred])
  io.write_text(wd.file("to_label.csv"), buf.getvalue())


@dataclasses.dataclass(frozen=True)
class TargetSettings:
  """The target model of `train` and of later selection rounds."""
  kind: str = "svm"  # "svm" or "finetune"
  svm_c: float = 1.0
  epochs: int = 30
  batch_size: int = 64
  learning_rate: float = 0.01
  seed: int = 0

  def validate(self) -> "TargetSettings":
    if self.kind not in TARGET_KINDS:
      raise WorkdirError(f"--target must be one of {', '.join(TARGET_KINDS)}, got "
                         f"{self.kind!r}.")
    if not self.svm_c > 0 or self.epochs < 1 or self.batch_size < 1 or \
        not self.learning_rate > 0:
      raise WorkdirError("--svm_c and --learning_rate must be > 0, --epochs and "
                         f"--batch_size >= 1; got {self}.")
    return self


def _labeled(wd: Workdir, pool: Pool, labels_csv: str, classes_file: Optional[str]
             ) -> tuple[list[str], dict[int, int]]:
  """(classes, {pool index: class id}) of the labels so far, validated.

  Without `classes_file` the classes recorded in the work directory are used,
  or, where none is, the sorted names found in the labels (then classes never
  labeled are unknown: N_t is the number found).
  """
  recorded = wd.recorded("classes")
  if classes_file:
    classes = labels.read_classes(classes_file)
    wd.check("classes", {"classes": classes},
             hint="The target classes cannot change within a work directory.")
  elif recorded is not None:
    classes = recorded["classes"]
  else:
    classes = None
  found = labels.read_labels(labels_csv, pool=pool.index, classes=classes,
                             offered=wd.offered(),
                             root=wd.recorded("embed")["images"])
  if classes is None:
    classes = sorted(set(found.values()))
    if len(classes) < 1:
      raise WorkdirError(f"--labels {labels_csv} holds no label yet.")
  ids = {c: k for k, c in enumerate(classes)}
  return classes, {i: ids[c] for i, c in found.items()}


def _remember_classes(wd: Workdir, classes: list[str],
                      classes_file: Optional[str]) -> None:
  """Records the classes of a classes file on the first step that writes with
  them (`_labeled` refuses any other list afterwards)."""
  if classes_file and wd.recorded("classes") is None:
    wd.record("classes", {"classes": classes})


def select(wd: Workdir, *, method: str, budget: int, seed: int = 0,
           num_rounds: int = 1, labels_csv: Optional[str] = None,
           classes_file: Optional[str] = None,
           settings: TargetSettings = TargetSettings(), log: Log = print) -> list[int]:
  """Selects the next round's images (all `budget` when `num_rounds` is 1) and
  writes them to WORKDIR/to_label.csv in selection order; returns their pool
  indices. Later rounds need `labels_csv` covering every earlier pick."""
  pool = wd.pool()
  if method not in acquisition.METHODS:
    raise WorkdirError(f"--method: unknown method {method!r}; valid methods: "
                       f"{', '.join(acquisition.METHODS)}.")
  try:
    V.check_seed(seed)
    V.check_budget(budget, len(pool.paths), what="embedded images")
    sizes = rounds.round_sizes(int(budget), int(num_rounds))
  except ValueError as e:
    raise WorkdirError(f"--budget/--rounds/--seed: {e}") from None
  setup = {"method": method, "budget": int(budget), "seed": int(seed),
           "rounds": int(num_rounds)}
  if num_rounds > 1:  # later rounds re-select with this target model
    t = dataclasses.asdict(settings.validate())
    setup.update({"target": t.pop("kind"), **{k: v for k, v in t.items()
                                               if k != "seed"}})
  known = wd.check("select", setup, hint="A work directory holds one selection; use "
                   "a new --workdir (after embed) for another method or budget.")
  state = wd.read("selection.json", {"picks": []})
  picks = state["picks"]
  done = [i for r in picks for i in r]

  if picks and len(picks) == num_rounds or (picks and labels_csv is None):
    have = {}
    if labels_csv:
      _, have = _labeled(wd, pool, labels_csv, classes_file)
    r = len(picks)
    last = [i for i in picks[-1] if i not in have]
    log(f"select: round {r} of {num_rounds} already selected; "
        f"{len(last)} of its {len(picks[-1])} images still to label"
        + ("" if r == num_rounds else "; pass --labels and --classes for the next "
           "round"))
    _write_rows(wd, pool, picks[-1], done, last, state)
    return picks[-1]

  if not picks:
    feats, probs, preds = pool.features, pool.probs, np.argmax(pool.probs, 1)
    pred_names = [str(int(p)) for p in preds]
  else:
    classes, have = _labeled(wd, pool, labels_csv, classes_file)
    missing = [i for i in done if i not in have]
    if missing:
      log(f"select: {len(missing)} image(s) of earlier rounds have no label yet "
          f"(e.g. {pool.paths[missing[0]]}); label them, then rerun")
      _write_rows(wd, pool, picks[-1], done, missing, state)
      return picks[-1]
    feats, probs, pred_names = _round_signals(wd, pool, classes, have, settings, log)
  r = len(picks)
  new = rounds.select_round(method, sizes[r], features=feats, probs=probs,
                            labeled=done, seed=seed).tolist()
  state = {"picks": picks + [new],
           "scores": state.get("scores", []) + [_scores(method, probs, feats,
                                                         np.asarray(new), done)],
           "predicted": state.get("predicted", []) + [[pred_names[i] for i in new]]}
  wd.write("selection.json", state)
  if picks:
    _remember_classes(wd, classes, classes_file)
  if not known:
    wd.record("select", setup)
  log(f"select: round {r + 1} of {num_rounds}: {len(new)} images by {method} "
      f"({'source model' if r == 0 else settings.kind + ' target model'}) -> "
      f"{wd.file('to_label.csv')}")
  _write_rows(wd, pool, new, done + new, new, state)
  return new


def _write_rows(wd, pool, current, order, keep, state):
  rank = {i: k + 1 for k, i in enumerate(order)}
  scores = dict(zip(current, state["scores"][-1]))
  preds = dict(zip(current, state["predicted"][-1]))
  keep = set(keep)
  _write_to_label(wd, pool, [(i, rank[i], scores[i], preds[i]) for i in current
                             if i in keep])


def _round_signals(wd: Workdir, pool: Pool, classes: list[str], have: dict[int, int],
                   settings: TargetSettings, log: Log):
  """(features, probs, predicted class names) of the pool by the target model
  trained on the labels so far; the source's while < 2 classes are labeled."""
  idx = np.asarray(sorted(have), np.int64)
  y = np.asarray([have[i] for i in idx], np.int64)
  if np.unique(y).size < 2:
    log("select: fewer than 2 classes labeled so far; this round uses M_S's signals")
    return pool.features, pool.probs, [str(int(p)) for p in np.argmax(pool.probs, 1)]
  if settings.kind == "svm":
    feats, probs = rounds.svm_signals(pool.target_features, idx, y, C=settings.svm_c)
    found = np.unique(y)
    return feats, probs, [classes[found[k]] for k in np.argmax(probs, 1)]
  _, model, variables = _train_target(wd, pool, classes, have, settings, log)
  feats, probs = _finetuned_outputs(wd, pool, model, variables)
  return feats, probs, [classes[k] for k in np.argmax(probs, 1)]


# ----------------------------------------------------------------- balance
class _NeedLabels(Exception):
  def __init__(self, batch):
    super().__init__()
    self.batch = batch


def balance(wd: Workdir, *, labels_csv: str, classes_file: str, batch: int,
            rule: str = "ratio", majority_distance: str = "nearest",
            log: Log = print) -> Optional[list[int]]:
  """The next batch of the balancing step, or None when the budget is spent.

  Replays `balancing.balanced_select` over the selection's ranking with the
  labels returned so far as the oracle (batches of `batch`): the first batch
  holding an unlabeled image is the next to send, so the sequence of batches is
  exactly what `balanced_select` chooses with the same answers.
  """
  pool = wd.pool()
  sel = wd.recorded("select")
  if sel is None:
    raise WorkdirError(f"{wd.path} has no selection; run `jaxal select` first.")
  if sel["rounds"] != 1:
    raise WorkdirError("balance follows a single-shot selection; this work "
                       f"directory selects in {sel['rounds']} rounds.")
  if batch < 1:
    raise WorkdirError(f"--batch must be >= 1, got {batch}.")
  if rule not in balancing.RULES or majority_distance not in balancing.MAJORITY_DISTANCES:
    raise WorkdirError(f"--rule must be one of {balancing.RULES} and "
                       f"--majority_distance one of {balancing.MAJORITY_DISTANCES}.")
  classes, have = _labeled(wd, pool, labels_csv, classes_file)
  setup = {"batch": int(batch), "rule": rule, "majority_distance": majority_distance}
  known = wd.check("balance", setup, hint="Rerun with the recorded flags.")
  method, budget = sel["method"], sel["budget"]
  picks = wd.read("selection.json")["picks"][0]
  ranking = picks if method in ("random", "coreset") else \
      acquisition.rank(method, probs=pool.probs)

  def oracle(idx):
    if any(int(i) not in have for i in idx):
      raise _NeedLabels([int(i) for i in idx])
    return np.asarray([have[int(i)] for i in idx], np.int64)

  try:
    chosen = balancing.balanced_select(
        ranking, pool.features, oracle, budget, len(classes), rule=rule,
        majority_distance=majority_distance, batch_size=batch)
  except _NeedLabels as need:
    nxt = need.batch
  else:
    nxt = None
  state = wd.read("balance.json", {"batches": []})
  if not known:
    wd.record("balance", setup)
  _remember_classes(wd, classes, classes_file)
  if nxt is None:
    log(f"balance: budget spent: {len(chosen)} images selected and labeled; run "
        "`jaxal train`")
    io.write_text(wd.file("to_label.csv"), "path,rank,score,predicted_class\n")
    if state.get("done") != [int(i) for i in chosen]:
      wd.write("balance.json", {**state, "done": [int(i) for i in chosen]})
    return None
  if nxt not in state["batches"]:
    state["batches"].append(nxt)
    wd.write("balance.json", state)
  k = state["batches"].index(nxt)
  before = sum(len(b) for b in state["batches"][:k])
  preds = np.argmax(pool.probs, 1)
  rows = [(i, before + j + 1, "", str(int(preds[i]))) for j, i in enumerate(nxt)
          if i not in have]
  _write_to_label(wd, pool, rows)
  log(f"balance: batch {k + 1} ({before + len(nxt)} of {budget} images): "
      f"{len(rows)} to label -> {wd.file('to_label.csv')}")
  return nxt


# ------------------------------------------------------------ train/predict
def _load_pixels(wd: Workdir, paths: Sequence[str]):
  setup = wd.recorded("embed")
  if setup["tfds"]:
    src = _tfds_images(setup["images"], setup.get("data_dir"), setup["image_size"])
    return src.load(list(paths))[0]
  imgs, ok, errors = images.load_batch(setup["images"], list(paths),
                                       setup["image_size"])
  if errors:
    p, e = next(iter(errors.items()))
    raise WorkdirError(f"cannot read {p} ({e}), which was readable when embedded; "
                       "restore the file.")
  return imgs


def _source(wd: Workdir) -> source.Trained:
  setup = wd.recorded("embed")
  trained = source.load_workdir(setup["source"])
  if trained.digest != setup["source_digest"]:
    raise WorkdirError(f"the source model in {setup['source']} changed since embed; "
                       "use a new --workdir.")
  return trained


def _target_folder(wd: Workdir, pool: Pool, classes: list[str],
                   have: dict[int, int], settings: TargetSettings) -> str:
  """WORKDIR/target/<digest of the labeled images, their labels and settings>."""
  idx = sorted(have)
  return wd.file("target", digest(repr((classes, [pool.paths[i] for i in idx],
                                        [have[i] for i in idx],
                                        dataclasses.asdict(settings)))))


def _restore_finetuned(trained: source.Trained, num_classes: int, folder: str):
  """(model, variables) of the fine-tuned target saved under `folder`."""
  tmodel = trained.model.clone(num_classes=num_classes)
  template = train.variables_of(train.create_state(
      tmodel, train.TrainConfig(num_epochs=1, batch_size=1),
      (trained.image_size,) * 2 + (3,), 1))
  found = Snapshots(os.path.join(folder, "model"), 0).restore_latest(template)
  if found is None:
    raise WorkdirError(f"the fine-tuned model under {folder} is missing or corrupt; "
                       "delete that folder and rerun train.")
  return tmodel, found[1]


def _train_target(wd: Workdir, pool: Pool, classes: list[str], have: dict[int, int],
                  settings: TargetSettings, log: Log):
  """The target model on the labeled images; cached in `_target_folder` (a
  rerun loads it, a killed fine-tuning resumes). Returns (folder, model or None
  for the SVM, variables or LinearSVM)."""
  idx = np.asarray(sorted(have), np.int64)
  y = np.asarray([have[i] for i in idx], np.int64)
  folder = _target_folder(wd, pool, classes, have, settings)
  meta = io.read_json(os.path.join(folder, "target.json"))
  if settings.kind == "svm":
    path = os.path.join(folder, "svm.npz")
    if meta is None:
      target.fit_svm(pool.target_features[idx], y, C=settings.svm_c).save(path)
    model, variables = None, target.LinearSVM.load(path)
  else:
    trained = _source(wd)
    if meta is None:
      cfg = train.TrainConfig(num_epochs=settings.epochs,
                              batch_size=settings.batch_size,
                              learning_rate=settings.learning_rate, schedule="cosine",
                              snapshot_every=0, seed=settings.seed)
      log(f"train: fine-tuning M_S on {len(idx)} labeled images, {settings.epochs} "
          "epochs")
      _, variables = target.finetune(
          trained.model, trained.final, len(classes), _load_pixels(
              wd, [pool.paths[i] for i in idx]), y, cfg,
          workdir=os.path.join(folder, "fit"), transform=pipeline.normalize,
          log=lambda m: log(f"train: epoch {m['epoch']}/{m['epochs']}, loss "
                            f"{m['loss']:.4f}, {m['seconds_left']:.0f} s left"))
      Snapshots(os.path.join(folder, "model"), 0).save(1, variables)
    model, variables = _restore_finetuned(trained, len(classes), folder)
  if meta is None:
    io.write_json(os.path.join(folder, "target.json"),
                  {"classes": classes, "settings": dataclasses.asdict(settings),
                   "labeled": len(idx), "classes_found": int(np.unique(y).size)})
  return folder, model, variables


def _finetuned_outputs(wd: Workdir, pool: Pool, model, variables, chunk: int = 512):
  feats, probs = [], []
  for s in range(0, len(pool.paths), chunk):
    f, p = inference.predict(model, variables, _load_pixels(wd, pool.paths[s:s + chunk]),
                             transform=pipeline.normalize, batch_size=128)
    feats.append(f)
    probs.append(p)
  return np.concatenate(feats), np.concatenate(probs)


def train_target(wd: Workdir, *, labels_csv: str, classes_file: str,
                 settings: TargetSettings, log: Log = print) -> str:
  """Trains the target model on every labeled image; records it as the work
  directory's current target (WORKDIR/target/current.json). Returns its folder."""
  settings.validate()
  pool = wd.pool()
  classes, have = _labeled(wd, pool, labels_csv, classes_file)
  if len(have) < 1:
    raise WorkdirError(f"--labels {labels_csv} holds no label yet.")
  found = len(set(have.values()))
  _remember_classes(wd, classes, classes_file)
  folder, _, _ = _train_target(wd, pool, classes, have, settings, log)
  wd.write(os.path.join("target", "current.json"),
           {"key": os.path.basename(folder), "kind": settings.kind})
  log(f"train: {settings.kind} target model on {len(have)} labeled images of "
      f"{found} of {len(classes)} classes -> {folder}")
  return folder


def _current_target(wd: Workdir):
  cur = wd.read(os.path.join("target", "current.json"))
  if cur is None:
    raise WorkdirError(f"{wd.path} has no trained target model; run `jaxal train` "
                       "first.")
  folder = wd.file("target", cur["key"])
  meta = io.read_json(os.path.join(folder, "target.json"))
  if cur["kind"] == "svm":
    return meta, None, target.LinearSVM.load(os.path.join(folder, "svm.npz"))
  return (meta, *_restore_finetuned(_source(wd), len(meta["classes"]), folder))


def predict_folder(wd: Workdir, images_dir: str, *, chunk: int = 256,
                   log: Log = print):
  """(paths, predicted class names ('' if unreadable), scores, errors) of every
  image under `images_dir` by the current target model."""
  meta, model, target_model = _current_target(wd)
  setup = wd.recorded("embed")
  paths = images.scan(images_dir)
  names, scores, errors = [], [], {}
  trained = _source(wd) if model is None else None
  for s in range(0, len(paths), chunk):
    part = paths[s:s + chunk]
    imgs, ok, errs = images.load_batch(images_dir, part, setup["image_size"])
    errors.update(errs)
    pred = np.full(len(part), -1)
    score = np.full(len(part), np.nan)
    if ok.any():
      if model is None:
        f, _ = inference.predict(trained.model, trained.final, imgs,
                                 transform=pipeline.normalize, batch_size=128)
        d = target_model.decision(f)
        pred[ok] = target_model.classes[np.argmax(d, 1)]
        score[ok] = d.max(1)
      else:
        _, p = inference.predict(model, target_model, imgs,
                                 transform=pipeline.normalize, batch_size=128)
        pred[ok], score[ok] = np.argmax(p, 1), p.max(1)
    names += [meta["classes"][k] if k >= 0 else "" for k in pred]
    scores += score.tolist()
    log(f"predict: {min(s + chunk, len(paths))}/{len(paths)} images")
  return paths, names, scores, errors


def predict(wd: Workdir, *, images_dir: str, out_csv: str, log: Log = print) -> str:
  """Writes `out_csv` (path,label,score,error) for every image under
  `images_dir`; an unreadable image gets an empty label and its error."""
  if not out_csv:
    raise WorkdirError("--out is required: the CSV file to write.")
  paths, names, scores, errors = predict_folder(wd, images_dir, log=log)
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["path", "label", "score", "error"])
  for p, n, s in zip(paths, names, scores):
    w.writerow([p, n, "" if not np.isfinite(s) else f"{s:.6g}", errors.get(p, "")])
  io.write_text(out_csv, buf.getvalue())
  log(f"predict: {len(paths) - len(errors)} images predicted, {len(errors)} "
      f"unreadable -> {out_csv}")
  return out_csv


# ------------------------------------------------------------------ report
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
  classes, have = _labeled(wd, pool, labels_csv, classes_file)
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
    meta, _, _ = _current_target(wd)
    if meta["classes"] != classes:
      raise WorkdirError("the current target model was trained on other classes; "
                         "rerun `jaxal train`.")
    paths, names, _, errors = predict_folder(wd, test_images, log=lambda _: None)
    ids = {c: i for i, c in enumerate(classes)}
    rows = [(ids[truth[i]], ids[names[i]]) for i in sorted(truth)
            if paths[i] not in errors]
    y_true, y_pred = (np.asarray(v, np.int64) for v in zip(*rows))
    found = np.flatnonzero(counts)
    out["test_images"] = len(rows)
    out["acc_t"] = metrics.accuracy_all_classes(y_true, y_pred, found, k)
  _remember_classes(wd, classes, classes_file)
  os.makedirs(wd.file("report"), exist_ok=True)
  if plot:
    out["chart"] = _bar_chart(classes, counts, wd.file("report", "class_counts.png"))
  wd.write(os.path.join("report", "report.json"), out)
  log(f"report: {out['labeled']} labeled, {out['classes_found']} of {k} classes "
      f"found, imbalance ratio {out['imbalance_ratio']:.3f}"
      + (f", ACC_t {out['acc_t']:.2f}% on {out['test_images']} test images"
         if "acc_t" in out else ""))
  return out


def _bar_chart(classes: list[str], counts: np.ndarray, path: str) -> str:
  from jaxal import plots  # pylint: disable=g-import-not-at-top
  plt = plots._pyplot()  # pylint: disable=protected-access
  order = np.argsort(-counts, kind="stable")
  fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(classes) + 1.5), 4.0))
  ax.bar(range(len(order)), counts[order], color="tab:blue")
  ax.set_xticks(range(len(order)))
  ax.set_xticklabels([classes[i] for i in order], rotation=90, fontsize=7)
  ax.set_ylabel("labeled images")
  ax.set_title(f"labeled images per class\n{int(counts.sum())} in all, "
               f"{int((counts > 0).sum())} of {len(classes)} classes found",
               fontsize=10)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return path
