"""The paper's protocol for one cell of its tables (method guide §1-6).

    source model M_S -> its outputs on the pool (cached) -> selection
    (`acquisition`, optionally `balancing`) -> oracle labels (the ground truth)
    -> target model (`target`: SVM or fine-tuning) -> `metrics`

`Protocol` holds what every cell of a sweep shares: the data (real TFDS datasets,
or the offline data at CPU size), the pools (imbalanced by `imbalanced_counts`,
balanced by `balanced_indices`, both fixed by `data_seed`), M_S and the target
models' settings. `Protocol.compute(cell)` runs one `sweep.Cell`.

M_S's features and probabilities are computed once per (dataset, pool, split,
source checkpoint, ensemble) and cached in WORKDIR/cache as .npz files named by a
digest of what determines them, written atomically: a rerun, another shard or
another table reads them instead of running M_S again. While they are computed,
each finished chunk of 32 batches is saved beside them, so a killed run resumes
from its last chunk with the same numbers. The ensemble ("+ens",
supplement section 1) changes acquisition only: balancing and core-set use the
averaged features, while the target model is trained on the final model's
features (SVM) or weights (fine-tuning), as for the single model.

Pixels (`pixels`): the real datasets' pools and test splits are streamed from
TFDS ("auto" or "stream"): no split is held as a whole; M_S reads the pool once
per ensemble (each batch through every snapshot), a fine-tuned target reads only
its labeled images, and each evaluation streams the test split again. The
offline data are generated here and held in memory ("auto" or "memory");
"stream" reads them through their TFDS builder instead, with identical results.

Table 14 selects from, and scores with, a second feature space too: SimCLR
(`jaxal.models.simclr`) pretrained on each pool's images without their labels,
once per (pool, `SSLSettings`), under WORKDIR/ssl, its features cached like
M_S's. A cell's `features` ("source" or "ssl") says what it selects and
balances on; the target "svm_ssl" is the SVM on SimCLR's features.

With `data="offline"`, M_S is trained here on the offline source part (once per
source config, under a lock so that concurrent shards wait for one training and
then resume from its checkpoint); with `data="real"` it is read from a
`train_source` work directory.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import shutil
from typing import Any, NamedTuple, Optional

import numpy as np

from jaxal import acquisition, balancing, io, metrics, rounds
from jaxal.datasets import catalog, imbalance, pipeline, procedural, split_images
from jaxal.datasets import images as images_lib
from jaxal.experiments import sweep
from jaxal.models import (hostmem, inference, simclr, source, ssl_source, target,
                          train)
from jaxal.models.checkpoint import Snapshots


@dataclasses.dataclass(frozen=True)
class SourceSettings:
  """M_S trained here on the offline source part (data="offline" only).

  The offline M_S is the project's, not the paper's: batch 32 (rather than 128)
  trains a stronger one in less time on 2 CPU cores (train accuracy 0.964
  against 0.915 at the same learning rate and epochs, Intel Xeon, jaxlib 0.10.2).
  """
  width: int = 8
  epochs: int = 8
  snapshot_every: int = 2
  batch_size: int = 32
  learning_rate: float = 0.1


@dataclasses.dataclass(frozen=True)
class SSLSettings:
  """SimCLR pretrained on each pool for Table 14 (`jaxal.models.simclr`).

  CPU-sized defaults for the offline pools; the SCAN recipe the cold-start
  papers' code uses is width 64, 500 epochs, batch 512, temperature 0.1. The
  offline defaults are the project's: temperature 0.2 and 30 epochs [R].
  """
  width: int = 8
  epochs: int = 30
  batch_size: int = 256
  temperature: float = 0.2
  learning_rate: Optional[float] = None  # None: 0.4 x batch_size / 512

  def config(self, seed: int) -> simclr.SimCLRConfig:
    """The SimCLR config of a pool's pretraining."""
    return simclr.SimCLRConfig(epochs=self.epochs, batch_size=self.batch_size,
                               temperature=self.temperature,
                               learning_rate=self.learning_rate, seed=seed)


@dataclasses.dataclass(frozen=True)
class TargetSettings:
  """Target models (method guide §5; the paper gives no hyper-parameters,
  these are reconstructed [R] and configurable)."""
  svm_c: float = 1.0
  finetune_epochs: int = 30
  finetune_batch_size: int = 64
  finetune_learning_rate: float = 0.01


@dataclasses.dataclass(frozen=True)
class Settings:
  """Everything a sweep's cells share besides the cell itself."""
  data: str = "offline"  # "offline" or "real"
  data_dir: Optional[str] = None
  source_workdir: Optional[str] = None  # data="real": a train_source workdir
  offline: procedural.OfflineConfig = procedural.OfflineConfig()
  source: SourceSettings = SourceSettings()
  ssl: SSLSettings = SSLSettings()
  targets: TargetSettings = TargetSettings()
  data_seed: int = 0  # the pools (imbalance induction, balanced subsets)
  balanced_per_class: Optional[int] = None  # None: the dataset's (supplement 2)
  rule: str = "ratio"
  majority_distance: str = "nearest"

  def as_dict(self) -> dict:
    """The settings as plain JSON values (saved beside each cell's result).
    `ssl` is left out while it has its defaults, so that work directories
    written before Table 14 existed still hold these settings."""
    d = json.loads(json.dumps(dataclasses.asdict(self), default=str))
    if self.ssl == SSLSettings():
      del d["ssl"]
    return d


@dataclasses.dataclass(frozen=True)
class Pool:
  """A target pool with its test split: labels in memory, pixels as
  `SplitImages` (in memory, or streamed from TFDS and read only when needed)."""
  images: split_images.SplitImages
  labels: np.ndarray
  test_images: split_images.SplitImages
  test_labels: np.ndarray
  num_classes: int
  digest: str  # of the pool's and test split's labels and indices


def pool_counts(settings: "Settings", dataset: str, kind: str,
                available: np.ndarray) -> np.ndarray:
  """Images per class of the imbalanced pool (`imbalanced_counts`, method guide
  §2) or of the balanced subset (supplement section 2: 200 per class, 80
  for MIT-67, at most what the rarest class has), from the train split's counts."""
  if kind == "imbalanced":
    return imbalance.imbalanced_counts(available, seed=settings.data_seed)
  per_class = settings.balanced_per_class or catalog.spec(dataset).balanced_per_class
  return np.full(available.size, min(int(per_class), int(available.min())))


def _digest(*parts) -> str:
  h = hashlib.sha256()
  for p in parts:
    h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray)
             else json.dumps(p, sort_keys=True, default=str).encode())
  return h.hexdigest()[:16]


PIXELS = ("auto", "memory", "stream")


class SettingsError(ValueError):
  """A setting that cannot work; `field` names the `Settings` field, so that a
  command line can name its own flag for it."""

  def __init__(self, field: str, message: str):
    super().__init__(f"{field}: {message}")
    self.field, self.reason = field, message


class SourceModel(NamedTuple):
  """M_S as the cells use it."""
  model: Any  # the Flax module
  final: Any  # variables after the last epoch
  snapshots: list  # variables of each snapshot, oldest first (+ens)
  source_id: str  # digest of what determines M_S: the outputs' cache key
  # uint8 batches -> the model's input (and the fine-tuned target's): jaxal's
  # statistics, or an imported source's recorded ones (`images.normalizer`)
  normalize: Any = pipeline.normalize


class _Bounded:
  """A dict of at most `size` entries, the least recently used dropped first.

  The protocol keeps what a sweep's cells share (pools, M_S, its outputs) here,
  keyed by what each depends on, instead of `functools.lru_cache` on methods,
  which keys on `self` too and keeps every Protocol it saw alive."""

  def __init__(self, size: int):
    self.size, self.items = int(size), collections.OrderedDict()

  def get(self, key, make):
    if key in self.items:
      self.items.move_to_end(key)
      return self.items[key]
    value = self.items[key] = make()
    while len(self.items) > self.size:
      self.items.popitem(last=False)
    return value


class Protocol:
  """Runs cells of the paper's protocol; see the module docstring."""

  def __init__(self, settings: Settings, workdir: str, log=print, *,
               pixels: str = "auto",
               max_pixel_bytes: int = split_images.DEFAULT_MAX_BYTES,
               output_batch: int = 256, output_chunk_batches: int = 32):
    if pixels not in PIXELS:
      raise ValueError(f"pixels must be one of {PIXELS}, got {pixels!r}.")
    if output_batch < 1 or output_chunk_batches < 1:
      raise ValueError("output_batch and output_chunk_batches must be >= 1, got "
                       f"{output_batch} and {output_chunk_batches}.")
    self.settings = settings
    self.workdir = workdir
    self.log = log
    self.pixels = pixels
    self.max_pixel_bytes = int(max_pixel_bytes)
    self.output_batch = int(output_batch)
    self.output_chunk_batches = int(output_chunk_batches)
    # What the cells share, keyed by what it depends on. Sizes: a table has at
    # most 4 datasets x 2 pool kinds; one M_S per Protocol (its settings fix
    # it); outputs: pool and test split of each pool, single and ensemble.
    self._pools = _Bounded(8)
    self._source = _Bounded(1)
    self._ssl = _Bounded(8)  # a SimCLR encoder per pool
    self._outputs = _Bounded(32)
    self._config = None

  # ---------------------------------------------------------------- data
  def _load(self, dataset: str, split: str) -> catalog.ArraySplit:
    """A whole split in memory (the offline data, M_S's offline training set)."""
    s = self.settings
    if s.data == "offline":  # in memory: the same pixels as the TFDS builder's
      part = dataset.split("_", 1)[1]
      images, labels = procedural.generate(s.offline, part, split)
      return catalog.ArraySplit(images, labels, s.offline.num_classes(part),
                                tuple(procedural.class_names(s.offline, part)))
    size = self.source_config()["image_size"]
    return catalog.load_arrays(dataset, split, data_dir=s.data_dir, image_size=size)

  def streams(self) -> bool:
    """Whether pools are streamed from TFDS (`pixels`: "auto" streams the real
    datasets and holds the offline data, generated here, in memory)."""
    return self.pixels == "stream" or (self.pixels == "auto" and
                                       self.settings.data == "real")

  def _split(self, dataset: str, split: str):
    """(labels, images of the whole split, number of classes)."""
    s = self.settings
    if not self.streams():
      arrays = self._load(dataset, split)
      return (arrays.labels, split_images.SplitImages.in_memory(arrays.images),
              arrays.num_classes)
    offline = s.offline if s.data == "offline" else None
    labels = catalog.load_labels(dataset, split, data_dir=s.data_dir, offline=offline)
    size = (s.offline.image_size if s.data == "offline"
            else self.source_config()["image_size"])
    images = split_images.SplitImages.streamed(
        dataset, split, np.arange(len(labels)), size, split_size=len(labels),
        data_dir=s.data_dir, offline=offline)
    return labels, images, catalog.num_classes(dataset, offline)

  def pool(self, dataset: str, kind: str) -> Pool:
    """The imbalanced or balanced pool of `dataset`, and its test split (kept
    for the next cells: the settings are fixed, so (dataset, kind) is the key)."""
    return self._pools.get((dataset, kind), lambda: self._make_pool(dataset, kind))

  def _make_pool(self, dataset: str, kind: str) -> Pool:
    s = self.settings
    train_labels, train_images, k = self._split(dataset, "train")
    test_labels, test_images, _ = self._split(dataset, "test")
    counts = pool_counts(s, dataset, kind, np.bincount(train_labels, minlength=k))
    keep = imbalance.subset_indices(train_labels, counts, seed=s.data_seed)
    labels = train_labels[keep]
    images = train_images.subset(keep)
    return Pool(images, labels, test_images, test_labels, k,
                _digest(dataset, kind, keep, labels, test_labels))

  # ---------------------------------------------------------- source model
  def source_config(self) -> dict:
    """What determines M_S (its train_source config, or the offline settings)."""
    if self._config is None:
      s = self.settings
      if s.data == "real":
        cfg = io.read_json(os.path.join(s.source_workdir, "config.json"))
        if cfg is None:
          raise SettingsError("source_workdir", f"{s.source_workdir} has no "
                              "config.json; train M_S first with `python3 run.py "
                              "exp train_source`.")
      else:
        cfg = {"dataset": "offline_source", "stem": "cifar", "image_size":
               s.offline.image_size, "offline": dataclasses.asdict(s.offline),
               "seed": s.data_seed, **dataclasses.asdict(s.source)}
      self._config = cfg
    return self._config

  def source_model(self) -> SourceModel:
    """M_S: trained here on the offline source, or read from
    `settings.source_workdir`; kept for the next cells under its config's
    digest."""
    cfg = self.source_config()
    make = (self._offline_source if self.settings.data == "offline"
            else self._workdir_source)
    return self._source.get(_digest(cfg), lambda: make(cfg))

  def _offline_source(self, cfg: dict) -> SourceModel:
    """Trains M_S on the offline source part (resumable, under a file lock so
    that shards share one training) and reads its snapshots."""
    s = self.settings
    ckpt = os.path.abspath(os.path.join(self.workdir, "source", _digest(cfg)))
    io.write_json(os.path.join(ckpt, "config.json"), cfg)
    tcfg = train.TrainConfig(num_epochs=s.source.epochs, batch_size=s.source.batch_size,
                             learning_rate=s.source.learning_rate, schedule="cosine",
                             warmup_epochs=1, snapshot_every=s.source.snapshot_every,
                             seed=s.data_seed)
    with io.file_lock(ckpt + ".lock"):
      src = self._load("offline_source", "train")
      self.log(f"M_S: ResNet-18 width {s.source.width} on {len(src.labels)} images "
               f"of {src.num_classes} source classes, {s.source.epochs} epochs ({ckpt})")
      model, state = source.train_model(src.images, src.labels, src.num_classes,
                                        width=s.source.width, stem="cifar",
                                        config=tcfg, workdir=ckpt)
    every = s.source.snapshot_every
    final = train.variables_of(state)
    epochs = Snapshots(ckpt, every).snapshot_epochs()
    snapshots = source.snapshot_variables(state, ckpt, every) if epochs else [final]
    return SourceModel(model, final, snapshots, _digest(cfg, epochs))

  def _workdir_source(self, cfg: dict) -> SourceModel:
    """M_S from a train_source (or import-source) work directory."""
    try:
      trained = source.load_workdir(self.settings.source_workdir)
    except ValueError as e:
      raise SettingsError("source_workdir", str(e)) from None
    return SourceModel(trained.model, trained.final, trained.snapshots,
                       _digest(cfg, list(trained.snapshot_epochs)),
                       images_lib.normalizer(trained.preprocess))

  def outputs(self, dataset: str, kind: str, split: str, ensemble: bool):
    """(features, probs) of M_S (or its snapshot average) on the pool or test
    split; cached in WORKDIR/cache, never recomputed for the same inputs, and
    kept in memory (keyed by the same digest) so that a sweep's cells do not
    read them again."""
    pool = self.pool(dataset, kind)
    source_id = self.source_model().source_id
    key = _digest(dataset, kind, split, pool.digest, source_id, bool(ensemble))
    return self._outputs.get(key, lambda: self._make_outputs(
        dataset, kind, split, ensemble, pool, key))

  def _make_outputs(self, dataset, kind, split, ensemble, pool, key):
    model, final, snapshots = self.source_model()[:3]
    path = os.path.join(self.workdir, "cache", f"{dataset}_{kind}_{split}_"
                        f"{'ens' if ensemble else 'single'}_{key}.npz")
    images = pool.images if split == "train" else pool.test_images
    variables = snapshots if ensemble else [final]
    what = (f"M_S outputs: {dataset} {kind} {split} "
            f"({'ensemble of ' + str(len(variables)) if ensemble else 'single model'}"
            f", {len(images)} images)")
    return self._cached(path, what, model, variables, images,
                        self.source_model().normalize)

  def _cached(self, path: str, what: str, model, variables, images,
              normalize=pipeline.normalize):
    """(features, probs) of `model` over `images` (uint8 batches through
    `normalize`), read from the .npz `path` if a run saved it, else computed
    chunk by chunk (resumable) and saved."""
    parts = f"{path[:-len('.npz')]}.parts"
    if os.path.exists(path):
      shutil.rmtree(parts, ignore_errors=True)  # killed after the cache was saved
      with np.load(path) as z:
        return z["features"], z["probs"]
    self.log(what)
    feats, probs = self._outputs_by_chunk(parts, model, variables, images,
                                          normalize)
    io.save_npz(path, features=feats, probs=probs)
    shutil.rmtree(parts, ignore_errors=True)
    return feats, probs

  # ------------------------------------------------- self-supervised (Table 14)
  def ssl_encoder(self, dataset: str, kind: str):
    """(encoder, variables, run id) of SimCLR pretrained on the images of the
    pool (`dataset`, `kind`), without its labels: trained once into
    WORKDIR/ssl/<dataset>_<kind>_<digest> (resumable, under a file lock so
    that shards share one training), then kept for the next cells."""
    pool = self.pool(dataset, kind)
    s = self.settings
    cfg = s.ssl.config(seed=s.data_seed)
    key = _digest(dataset, kind, pool.digest, dataclasses.asdict(s.ssl), s.data_seed)
    return self._ssl.get(key, lambda: self._make_ssl(dataset, kind, pool, cfg, key))

  def _make_ssl(self, dataset, kind, pool, cfg, key):
    s = self.settings
    run = os.path.abspath(os.path.join(self.workdir, "ssl", f"{dataset}_{kind}_{key}"))
    with io.file_lock(run + ".lock"):
      if io.read_json(os.path.join(run, "result.json")) is None:
        images = pool.images.take(np.arange(len(pool.images)),
                                  spill_dir=os.path.join(self.workdir, "cache"),
                                  max_bytes=self.max_pixel_bytes)
        self.log(f"SimCLR: ResNet-18 width {s.ssl.width} on the {len(pool.labels)} "
                 f"images of the {dataset} {kind} pool (no labels), {cfg.epochs} "
                 f"epochs ({run})")
        try:
          ssl_source.pretrain_workdir(np.asarray(images), run, width=s.ssl.width,
                                      stem="cifar", config=cfg, images_id=key,
                                      log=lambda _: None)
        except ValueError as e:
          raise SettingsError("ssl", str(e)) from None
      trained = source.load_workdir(run)
    return trained.model, trained.final, key

  def ssl_features(self, dataset: str, kind: str, split: str) -> np.ndarray:
    """Features of the pool's SimCLR encoder on the pool ("train") or the test
    split; cached in WORKDIR/cache like M_S's outputs."""
    pool = self.pool(dataset, kind)
    model, variables, run_id = self.ssl_encoder(dataset, kind)
    key = _digest(dataset, kind, split, pool.digest, run_id, "ssl")
    path = os.path.join(self.workdir, "cache", f"{dataset}_{kind}_{split}_ssl_{key}.npz")
    images = pool.images if split == "train" else pool.test_images
    what = f"SimCLR features: {dataset} {kind} {split} ({len(images)} images)"
    return self._outputs.get(key, lambda: self._cached(
        path, what, model, [variables], images))[0]

  def _outputs_by_chunk(self, parts: str, model, variables, images,
                        normalize=pipeline.normalize):
    """M_S's outputs over `images`, each finished chunk saved atomically in
    `parts`, so that a killed run resumes from its last finished chunk (and
    decodes nothing before it). A chunk is `output_chunk_batches` whole host
    batches, so every image is computed in the batch it has in one pass: the
    result is the uninterrupted run's, bit for bit."""
    step = inference.examples_per_call(self.output_batch)
    chunk = step * self.output_chunk_batches
    parts = os.path.join(parts, f"chunk{chunk}")  # another device count: others
    n = len(images)
    starts = range(0, n, chunk)
    part = lambda s: os.path.join(parts, f"{s:010d}.npz")  # noqa: E731
    todo = [s for s in starts if not os.path.exists(part(s))]
    if len(todo) < len(starts):
      self.log(f"M_S outputs: {len(starts) - len(todo)} of {len(starts)} chunks "
               "already done")
    feats = probs = None

    def put(s, f, p):  # a chunk's outputs into the aligned result arrays
      nonlocal feats, probs
      if feats is None:
        feats = hostmem.aligned_empty((n, f.shape[1]), np.float32)
        probs = hostmem.aligned_empty((n, p.shape[1]), np.float32)
      feats[s:s + chunk] = f
      probs[s:s + chunk] = p

    if todo:
      os.makedirs(parts, exist_ok=True)
      rows = np.concatenate([np.arange(s, min(s + chunk, n)) for s in todo])
      out = source.outputs_by_batch(model, variables,
                                    images.subset(rows).batches(step),
                                    batch_size=step, transform=normalize)
      for s in todo:
        got = [next(out) for _ in range(-(-min(chunk, n - s) // step))]
        f = np.concatenate([f for f, _ in got])
        p = np.concatenate([p for _, p in got])
        io.save_npz(part(s), features=f, probs=p)
        put(s, f, p)
      if next(out, None) is not None:  # runs the stream's own end-of-split checks
        raise RuntimeError(f"M_S's outputs: more batches than the {n} images.")
    for s in sorted(set(starts) - set(todo)):  # finished by an earlier run
      with np.load(part(s)) as z:
        put(s, z["features"], z["probs"])
    return feats, probs

  # ---------------------------------------------------------------- a cell
  def select(self, cell: sweep.Cell) -> np.ndarray:
    """Pool indices chosen for `cell` (all of them for the Full row)."""
    pool = self.pool(cell.dataset, cell.pool)
    if cell.method == sweep.FULL:
      return np.arange(len(pool.labels))
    if cell.features == "ssl":  # Table 14: SimCLR's features, no probabilities
      feats, probs = self.ssl_features(cell.dataset, cell.pool, "train"), None
    else:
      feats, probs = self.outputs(cell.dataset, cell.pool, "train", cell.ensemble)
    kw = dict(probs=probs, features=feats, seed=cell.seed,
              num_classes=pool.num_classes)
    if cell.rounds > 1:
      return self._select_in_rounds(cell, feats, probs)
    if not cell.balancing:
      return acquisition.select(cell.method, budget=cell.budget, **kw)
    ranking = acquisition.ranking_to_balance(cell.method, budget=cell.budget, **kw)
    # The oracle is the ground truth (method guide §4, in experiments).
    return balancing.balanced_select(
        ranking, feats, pool.labels, cell.budget, pool.num_classes,
        rule=self.settings.rule, majority_distance=self.settings.majority_distance)

  def _select_in_rounds(self, cell: sweep.Cell, feats, probs) -> np.ndarray:
    """Iterative selection (`jaxal.rounds`): round 1 from M_S's signals, each
    later one from the target model trained on the ground-truth labels of the
    earlier rounds (while fewer than 2 classes are labeled, M_S's again)."""
    pool = self.pool(cell.dataset, cell.pool)
    labeled: list[int] = []
    for size in rounds.round_sizes(cell.budget, cell.rounds):
      f, p = feats, probs
      y = pool.labels[labeled]
      if labeled and np.unique(y).size >= 2:
        f, p = self._target_signals(cell, np.asarray(labeled, np.int64))
      labeled += rounds.select_round(cell.method, size, features=f, probs=p,
                                     labeled=labeled, seed=cell.seed,
                                     num_classes=pool.num_classes).tolist()
    return np.asarray(labeled, np.int64)

  def _target_signals(self, cell: sweep.Cell, idx: np.ndarray):
    """(features, probs) of the pool by the target model trained on `idx`."""
    pool = self.pool(cell.dataset, cell.pool)
    if cell.target in ("svm", "svm_ssl"):
      f_pool = self._svm_features(cell, "train")
      return target.svm_signals(f_pool, idx, pool.labels[idx],
                                C=self.settings.targets.svm_c)
    tmodel, tvars = self._finetune(cell, idx)
    return inference.predict(tmodel, tvars, pool.images,
                             transform=self.source_model().normalize)

  def _finetune(self, cell: sweep.Cell, idx: np.ndarray):
    pool = self.pool(cell.dataset, cell.pool)
    model, final = self.source_model()[:2]
    t = self.settings.targets
    cfg = train.TrainConfig(num_epochs=t.finetune_epochs,
                            batch_size=t.finetune_batch_size,
                            learning_rate=t.finetune_learning_rate, schedule="cosine",
                            snapshot_every=0, seed=cell.seed)
    # Quiet: the sweep prints one line per cell, not per fine-tuning epoch.
    # Only the labeled images are read (a streamed pool decodes just those; the
    # Full row of a large pool goes to an unlinked memory-mapped file); they
    # stay uint8 and are normalised batch by batch.
    images = pool.images.take(idx, spill_dir=os.path.join(self.workdir, "cache"),
                              max_bytes=self.max_pixel_bytes)
    return target.finetune(model, final, pool.num_classes, images,
                           pool.labels[idx], cfg, log=lambda _: None,
                           transform=self.source_model().normalize)

  def _svm_features(self, cell: sweep.Cell, split: str) -> np.ndarray:
    """The SVM target's features: M_S's final model's ("svm"), or those of
    SimCLR pretrained on the pool ("svm_ssl", Table 14)."""
    if cell.target == "svm_ssl":
      return self.ssl_features(cell.dataset, cell.pool, split)
    return self.outputs(cell.dataset, cell.pool, split, False)[0]

  def predict(self, cell: sweep.Cell, idx: np.ndarray) -> np.ndarray:
    """The target model trained on the labeled subset; its test predictions."""
    pool = self.pool(cell.dataset, cell.pool)
    y = pool.labels[idx]
    t = self.settings.targets
    if cell.target in ("svm", "svm_ssl"):
      f_pool = self._svm_features(cell, "train")
      f_test = self._svm_features(cell, "test")
      return target.svm_predict(f_pool[idx], y, f_test, C=t.svm_c)
    tmodel, tvars = self._finetune(cell, idx)
    return target.finetune_predict(tmodel, tvars, pool.test_images,
                                   transform=self.source_model().normalize)

  def compute(self, cell: sweep.Cell) -> dict:
    """Runs one cell: selection, oracle labels, target model, metrics."""
    pool = self.pool(cell.dataset, cell.pool)
    k = pool.num_classes
    idx = self.select(cell)
    y = pool.labels[idx]
    pred = self.predict(cell, idx)
    found = np.unique(y)
    return {
        "acc_t": metrics.accuracy_all_classes(pool.test_labels, pred, found, k),
        "classes_found": metrics.classes_found(y, k),
        "imbalance_ratio": metrics.imbalance_ratio(y, k),
        "labeled": int(len(idx)),
        "class_counts": metrics.class_counts(y, k).tolist(),
        "pool_counts": metrics.class_counts(pool.labels, k).tolist(),
        "selected": idx.tolist() if cell.method != sweep.FULL else None,
        "settings": self.settings.as_dict(),
    }

