"""The models whose outputs the cells select by (method guide §1; Table 14).

- M_S (`SourceModels`): with `data="offline"`, trained here on the offline
  source part, once per source config, under a file lock so that concurrent
  shards wait for one training and then resume from its checkpoint; with
  `data="real"`, read from a `train_source` (or `import-source`) work
  directory, whose recorded preprocessing gives the inputs' normalisation.
- SimCLR (`SSLEncoders`, Table 14): pretrained on each pool's images without
  their labels, once per (pool, `SSLSettings`), under WORKDIR/ssl, under a
  file lock likewise.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, NamedTuple

import numpy as np

from jaxal import io
from jaxal.datasets import images as images_lib
from jaxal.datasets import pipeline
from jaxal.experiments import _memo as memo
from jaxal.experiments._pools import Pool, load_split
from jaxal.experiments._settings import Settings, SettingsError
from jaxal.models import source, ssl_source, train
from jaxal.models.checkpoint import Snapshots


class SourceModel(NamedTuple):
  """M_S as the cells use it."""
  model: Any  # the Flax module
  final: Any  # variables after the last epoch
  snapshots: list  # variables of each snapshot, oldest first (+ens)
  source_id: str  # digest of what determines M_S: the outputs' cache key
  # uint8 batches -> the model's input (and the fine-tuned target's): jaxal's
  # statistics, or an imported source's recorded ones (`images.normalizer`)
  normalize: Any = pipeline.normalize


class SourceModels:
  """M_S of a sweep (one per Protocol: its settings fix it), made once."""

  def __init__(self, settings: Settings, workdir: str, log: Callable[[str], None]):
    self.settings, self.workdir, self.log = settings, workdir, log
    self._config = None
    self._models = memo.Bounded(1)

  def config(self) -> dict:
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

  def image_size(self) -> int:
    """M_S's input size (the real datasets are read at it)."""
    return self.config()["image_size"]

  def model(self) -> SourceModel:
    """M_S, kept for the next cells under its config's digest."""
    cfg = self.config()
    make = self._offline if self.settings.data == "offline" else self._from_workdir
    return self._models.get(memo.digest(cfg), lambda: make(cfg))

  def _offline(self, cfg: dict) -> SourceModel:
    """Trains M_S on the offline source part (resumable, under a file lock so
    that shards share one training) and reads its snapshots."""
    s = self.settings
    ckpt = os.path.abspath(os.path.join(self.workdir, "source", memo.digest(cfg)))
    io.write_json(os.path.join(ckpt, "config.json"), cfg)
    tcfg = train.TrainConfig(num_epochs=s.source.epochs, batch_size=s.source.batch_size,
                             learning_rate=s.source.learning_rate, schedule="cosine",
                             warmup_epochs=1, snapshot_every=s.source.snapshot_every,
                             seed=s.data_seed)
    with io.file_lock(ckpt + ".lock"):
      src = load_split(s, "offline_source", "train", self.image_size)
      self.log(f"M_S: ResNet-18 width {s.source.width} on {len(src.labels)} images "
               f"of {src.num_classes} source classes, {s.source.epochs} epochs ({ckpt})")
      model, state = source.train_model(src.images, src.labels, src.num_classes,
                                        width=s.source.width, stem="cifar",
                                        config=tcfg, workdir=ckpt)
    every = s.source.snapshot_every
    final = train.variables_of(state)
    epochs = Snapshots(ckpt, every).snapshot_epochs()
    snapshots = source.snapshot_variables(state, ckpt, every) if epochs else [final]
    return SourceModel(model, final, snapshots, memo.digest(cfg, epochs))

  def _from_workdir(self, cfg: dict) -> SourceModel:
    """M_S from a train_source (or import-source) work directory."""
    try:
      trained = source.load_workdir(self.settings.source_workdir)
    except ValueError as e:
      raise SettingsError("source_workdir", str(e)) from None
    return SourceModel(trained.model, trained.final, trained.snapshots,
                       memo.digest(cfg, list(trained.snapshot_epochs)),
                       images_lib.normalizer(trained.preprocess))


class SSLEncoders:
  """SimCLR encoders pretrained on the pools (a pool's pixels beyond
  `max_pixel_bytes` go to an unlinked memory-mapped file in WORKDIR/cache)."""

  def __init__(self, settings: Settings, workdir: str, log: Callable[[str], None],
               max_pixel_bytes: int):
    self.settings, self.workdir, self.log = settings, workdir, log
    self.max_pixel_bytes = max_pixel_bytes
    self._encoders = memo.Bounded(8)  # one per pool

  def get(self, dataset: str, kind: str, pool: Pool):
    """(encoder, variables, run id) of SimCLR pretrained on the images of
    `pool` (`dataset`, `kind`), without its labels: trained once into
    WORKDIR/ssl/<dataset>_<kind>_<digest> (resumable, under a file lock so
    that shards share one training), then kept for the next cells."""
    s = self.settings
    key = memo.digest(dataset, kind, pool.digest, dataclasses.asdict(s.ssl),
                      s.data_seed)
    return self._encoders.get(key, lambda: self._pretrain(dataset, kind, pool, key))

  def _pretrain(self, dataset: str, kind: str, pool: Pool, key: str):
    s = self.settings
    cfg = s.ssl.config(seed=s.data_seed)
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
