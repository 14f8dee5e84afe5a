"""The paper's protocol for one cell of its tables (method guide §1-6).

    source model M_S -> its outputs on the pool (cached) -> selection
    (`acquisition`, optionally `balancing`) -> oracle labels (the ground truth)
    -> target model (`target`: SVM or fine-tuning) -> `metrics`

`Protocol` holds what every cell of a sweep shares and `Protocol.compute(cell)`
runs one `sweep.Cell` as a pipeline over these modules of
`jaxal.experiments`:

- `_settings`: the data, M_S, SimCLR and target models' settings.
- `_pools`: the pools (imbalanced by `imbalanced_counts`, balanced by
  `balanced_indices`, both fixed by `data_seed`) and their test splits, held in
  memory (the offline data at CPU size) or streamed from TFDS (`pixels`).
- `_sources`: M_S, trained here on the offline source part under a lock, or read
  from a `train_source` / `import-source` work directory; SimCLR pretrained on
  each pool (Table 14).
- `_output_cache`: the models' (features, probs) over a pool or test split,
  computed once per (dataset, pool, split, model, ensemble) and cached in
  WORKDIR/cache by digest, chunk by chunk (a killed run resumes from its last
  chunk with the same numbers).
- `_selection`: the cell's selection, single-shot or in rounds.
- `_zeroshot`: Table 16's zero-shot probabilities of each pool over its class
  names (a SigLIP source's, or the offline stand-in's).

The ensemble ("+ens", supplement section 1) changes acquisition only:
balancing and core-set use the averaged features, while the target model is
trained on the final model's features (SVM) or weights (fine-tuning), as for
the single model. A fine-tuned target reads only its labeled images, and each
evaluation streams the test split again.

Table 14 selects from, and scores with, a second feature space too: SimCLR
(`jaxal.models.simclr`) pretrained on each pool's images without their labels.
A cell's `features` ("source" or "ssl") says what it selects and balances on;
the target "svm_ssl" is the SVM on SimCLR's features.

Table 16 swaps M_S's source-class probabilities for the zero-shot
target-class probabilities of the dataset's class names (`features`
"zeroshot": the uncertainty functions rank over the target classes and
Algorithm 1 diversifies by the guessed class; the features stay M_S's), and
adds the balancing step led by those guesses (`guided` cells,
`jaxal.guesses`) beside the paper's.
"""

from __future__ import annotations

import os

import numpy as np

from jaxal import metrics
from jaxal.curation import duplicates, neighbors
from jaxal.datasets import split_images
from jaxal.experiments import _memo as memo
from jaxal.experiments import _output_cache as output_cache
from jaxal.experiments import _selection as selection
from jaxal.experiments import _zeroshot
from jaxal.experiments import sweep
from jaxal.experiments._pools import Pool, Pools, pool_counts
from jaxal.experiments._settings import (PIXELS, Settings, SettingsError,
                                        SourceSettings, SSLSettings,
                                        TargetSettings, ZeroShotSettings)
from jaxal.experiments._sources import SourceModel, SourceModels, SSLEncoders
from jaxal.models import inference, target, train

__all__ = ["PIXELS", "Pool", "Protocol", "Settings", "SettingsError",
           "SourceModel", "SourceSettings", "SSLSettings", "TargetSettings",
           "ZeroShotSettings", "cell_result", "pool_counts"]

SVM_TARGETS = ("svm", "svm_ssl")


class Protocol:
  """Runs cells of the paper's protocol; see the module docstring."""

  def __init__(self, settings: Settings, workdir: str, log=print, *,
               pixels: str = "auto",
               max_pixel_bytes: int = split_images.DEFAULT_MAX_BYTES,
               output_batch: int = 256, output_chunk_batches: int = 32):
    if pixels not in PIXELS:
      raise ValueError(f"pixels must be one of {PIXELS}, got {pixels!r}.")
    self.settings, self.workdir, self.log = settings, workdir, log
    self.pixels, self.max_pixel_bytes = pixels, int(max_pixel_bytes)
    # Outputs kept in memory: pool and test split of each pool, single and +ens.
    self._outputs = output_cache.OutputCache(
        os.path.join(workdir, "cache"), log, batch=output_batch,
        chunk_batches=output_chunk_batches, size=32)
    self._sources = SourceModels(settings, workdir, log)
    self._ssl = SSLEncoders(settings, workdir, log, self.max_pixel_bytes)
    self._pools = Pools(settings, pixels, self._sources.image_size)
    self._dups = memo.Bounded(8)  # one per pool: its near-duplicates (settings.dedupe)
    self._zeroshot = _zeroshot.ZeroShot(
        settings, self._outputs,
        lambda d, k, split: self.outputs(d, k, split, False)[0],
        self._sources.image_size, log)

  # ------------------------------------------------------- what cells share
  def streams(self) -> bool:
    """Whether pools are streamed from TFDS (see `Pools.streams`)."""
    return self._pools.streams()

  def pool(self, dataset: str, kind: str) -> Pool:
    """The imbalanced or balanced pool of `dataset`, and its test split."""
    return self._pools.get(dataset, kind)

  def source_config(self) -> dict:
    """What determines M_S (its train_source config, or the offline settings)."""
    return self._sources.config()

  def source_model(self) -> SourceModel:
    """M_S: trained here on the offline source, or read from
    `settings.source_workdir`."""
    return self._sources.model()

  def outputs(self, dataset: str, kind: str, split: str, ensemble: bool):
    """(features, probs) of M_S (or its snapshot average) on the pool or test
    split, computed once (`_output_cache`)."""
    pool = self.pool(dataset, kind)
    src = self.source_model()
    key = memo.digest(dataset, kind, split, pool.digest, src.source_id,
                      bool(ensemble))
    images = pool.images if split == "train" else pool.test_images
    variables = src.snapshots if ensemble else [src.final]
    what = (f"M_S outputs: {dataset} {kind} {split} "
            f"({'ensemble of ' + str(len(variables)) if ensemble else 'single model'}"
            f", {len(images)} images)")
    return self._outputs.get(
        key, f"{dataset}_{kind}_{split}_{'ens' if ensemble else 'single'}", what,
        src.model, variables, images, src.normalize)

  def ssl_encoder(self, dataset: str, kind: str):
    """(encoder, variables, run id) of SimCLR pretrained on the pool's images."""
    return self._ssl.get(dataset, kind, self.pool(dataset, kind))

  def ssl_features(self, dataset: str, kind: str, split: str) -> np.ndarray:
    """Features of the pool's SimCLR encoder on the pool ("train") or the test
    split, computed once like M_S's outputs."""
    pool = self.pool(dataset, kind)
    model, variables, run_id = self.ssl_encoder(dataset, kind)
    key = memo.digest(dataset, kind, split, pool.digest, run_id, "ssl")
    images = pool.images if split == "train" else pool.test_images
    what = f"SimCLR features: {dataset} {kind} {split} ({len(images)} images)"
    return self._outputs.get(key, f"{dataset}_{kind}_{split}_ssl", what, model,
                             [variables], images)[0]

  def zeroshot_probs(self, dataset: str, kind: str) -> np.ndarray:
    """[N, C] the pool's zero-shot probabilities over its classes (Table 16,
    `_zeroshot`), computed once a pool."""
    return self._zeroshot.probs(dataset, kind, self.pool(dataset, kind))

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
    if cell.features == "zeroshot":  # Table 16: the class names' probabilities
      probs = self.zeroshot_probs(cell.dataset, cell.pool)
    guesses = self.zeroshot_probs(cell.dataset, cell.pool) if cell.guided else None
    return selection.select(
        cell, feats, probs, pool.labels, pool.num_classes, rule=self.settings.rule,
        majority_distance=self.settings.majority_distance,
        later=lambda idx: self._later(cell, idx, feats, probs),
        dup=self.duplicates(cell.dataset, cell.pool), guesses=guesses,
        guess_weight=self.settings.zeroshot.guess_weight)

  def duplicates(self, dataset: str, kind: str):
    """The pool's groups of near-duplicates on M_S's features (`settings.dedupe`,
    a cosine distance), or None without that setting; computed once a pool."""
    if self.settings.dedupe is None:
      return None
    return self._dups.get((dataset, kind), lambda: self._group(dataset, kind))

  def _group(self, dataset: str, kind: str):
    feats = self.outputs(dataset, kind, "train", False)[0]
    dup = duplicates.group(feats, neighbors.search(
        feats, threshold=self.settings.dedupe, metric="cosine", k=0))
    self.log(f"dedupe: {dataset} {kind} pool: {dup.removed} of {len(feats)} images "
             f"set aside as near-copies (cosine <= {self.settings.dedupe:g} on "
             "M_S's features)")
    return dup

  def _later(self, cell: sweep.Cell, idx: np.ndarray, feats, probs):
    """A later round's signals. A cell whose SVM target reads other features
    than the ones it selects on ([SSL] rows; M_S rows scored by the SVM on
    SimCLR's) keeps selecting on its own, the target's view aside
    (`acquisition.TargetModel`)."""
    sig = self._round_signals(cell, idx, (feats, probs))
    own = cell.features == "ssl" or cell.target == "svm_ssl"
    return sig._replace(features=feats) if own else sig

  def _round_signals(self, cell: sweep.Cell, idx: np.ndarray, first):
    """The next round's `RoundSignals`: the cell's target trained on the ground
    truth of `idx` (`target.round_signals`)."""
    pool = self.pool(cell.dataset, cell.pool)
    finetuned = None if cell.target in SVM_TARGETS else (
        lambda i, _: self._finetuned_signals(cell, i))
    return target.round_signals(
        idx, pool.labels[idx], source=first,
        svm_features=lambda: self._svm_features(cell, "train"),
        svm_c=self.settings.targets.svm_c, finetune=finetuned)

  def _finetuned_signals(self, cell: sweep.Cell, idx: np.ndarray):
    """(features, probs) of the pool by M_S fine-tuned on the labeled `idx`."""
    tmodel, tvars = self._finetune(cell, idx)
    return inference.predict(tmodel, tvars, self.pool(cell.dataset, cell.pool).images,
                             transform=self.source_model().normalize)

  def _finetune(self, cell: sweep.Cell, idx: np.ndarray):
    """(model, variables) of M_S fine-tuned on the labeled images `idx`."""
    pool = self.pool(cell.dataset, cell.pool)
    src = self.source_model()
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
    return target.finetune(src.model, src.final, pool.num_classes, images,
                           pool.labels[idx], cfg, log=lambda _: None,
                           transform=src.normalize)

  def _svm_features(self, cell: sweep.Cell, split: str) -> np.ndarray:
    """The SVM target's features: M_S's final model's ("svm"), or those of
    SimCLR pretrained on the pool ("svm_ssl", Table 14)."""
    if cell.target == "svm_ssl":
      return self.ssl_features(cell.dataset, cell.pool, split)
    return self.outputs(cell.dataset, cell.pool, split, False)[0]

  def predict(self, cell: sweep.Cell, idx: np.ndarray) -> np.ndarray:
    """The target model trained on the labeled subset; its test predictions."""
    pool = self.pool(cell.dataset, cell.pool)
    if cell.target in SVM_TARGETS:
      return target.svm_predict(self._svm_features(cell, "train")[idx],
                                pool.labels[idx], self._svm_features(cell, "test"),
                                C=self.settings.targets.svm_c)
    tmodel, tvars = self._finetune(cell, idx)
    return target.finetune_predict(tmodel, tvars, pool.test_images,
                                   transform=self.source_model().normalize)

  def compute(self, cell: sweep.Cell) -> dict:
    """Runs one cell: selection, oracle labels, target model, metrics."""
    pool = self.pool(cell.dataset, cell.pool)
    idx = self.select(cell)
    out = cell_result(cell, pool, idx, self.predict(cell, idx), self.settings)
    if cell.features == "zeroshot" or cell.guided:  # how good the guesses were
      out["zeroshot_top1"] = _zeroshot.top1(
          self.zeroshot_probs(cell.dataset, cell.pool), pool.labels)
    return out


def cell_result(cell: sweep.Cell, pool: Pool, idx: np.ndarray, pred: np.ndarray,
           settings: Settings) -> dict:
  """A cell's result: ACC_t of the test predictions `pred` over the classes
  found (method guide §6), and what the labeled subset `idx` holds."""
  k = pool.num_classes
  y = pool.labels[idx]
  return {
      "acc_t": metrics.accuracy_all_classes(pool.test_labels, pred, np.unique(y), k),
      "classes_found": metrics.classes_found(y, k),
      "imbalance_ratio": metrics.imbalance_ratio(y, k),
      "labeled": int(len(idx)),
      "class_counts": metrics.class_counts(y, k).tolist(),
      "pool_counts": metrics.class_counts(pool.labels, k).tolist(),
      "selected": idx.tolist() if cell.method != sweep.FULL else None,
      "settings": settings.as_dict(),
  }
