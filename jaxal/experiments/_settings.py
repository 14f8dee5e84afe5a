"""What a sweep's cells share besides the cell itself (method guide §1-5):
the data, M_S, SimCLR (Table 14) and the target models' settings."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

from jaxal.datasets import procedural
from jaxal.models import simclr

PIXELS = ("auto", "memory", "stream")  # how pools are read (results unchanged)


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
class ZeroShotSettings:
  """Table 16's zero-shot guesses: the target classes' names read by an
  image-text model (`jaxal.zeroshot`), and the guess-led balancing step.

  `source`: a SigLIP source work directory (`jaxal import-source
  --arch=siglip`), whose image tower embeds each pool and whose text tower
  reads the dataset's class names in each of `prompts`. Without one (the
  offline data's default) a stand-in is used whose image embeddings are M_S's
  features and whose text embedding of class c is the centroid of M_S's test
  features of c plus Gaussian noise of `noise` times the within-class spread
  (`jaxal.experiments._zeroshot`). `guess_weight`: how much a guessed pick
  counts for a class without answers (`jaxal.guesses`).
  """
  source: Optional[str] = None
  prompts: tuple = ("a photo of a {}.",)
  noise: float = 1.0
  guess_weight: float = 0.5


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
  # A cosine distance on M_S's features of each pool: images at most this far
  # apart are one group of near-duplicates (`jaxal.curation`), and a cell
  # selects at most one image of a group. None: every image, as the paper.
  dedupe: Optional[float] = None
  zeroshot: ZeroShotSettings = ZeroShotSettings()  # Table 16

  def as_dict(self) -> dict:
    """The settings as plain JSON values (saved beside each cell's result).
    `ssl` and `zeroshot` are left out while they have their defaults, and
    `dedupe` while None, so that work directories written before they existed
    still hold these settings."""
    d = json.loads(json.dumps(dataclasses.asdict(self), default=str))
    if self.ssl == SSLSettings():
      del d["ssl"]
    if self.zeroshot == ZeroShotSettings():
      del d["zeroshot"]
    if self.dedupe is None:
      del d["dedupe"]
    return d


class SettingsError(ValueError):
  """A setting that cannot work; `field` names the `Settings` field, so that a
  command line can name its own flag for it."""

  def __init__(self, field: str, message: str):
    super().__init__(f"{field}: {message}")
    self.field, self.reason = field, message
