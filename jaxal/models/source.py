"""The source model M_S end to end: train on a source dataset, keep snapshots,
and give the pool's features f and source-class probabilities (method guide
§1 and 3; supplement section 1 for the snapshot ensemble "+ens").

    model, state = source.train_model(images, labels, num_classes, width=8,
                                      stem="cifar",
                                      config=TrainConfig(num_epochs=8, snapshot_every=2),
                                      workdir="work/source")
    feats, probs = source.outputs(model, source.snapshot_variables(
        state, "work/source", every=2), pool_images)

Images are uint8 arrays here (the 32 px datasets); `jaxal.datasets.pipeline`
has the tf.data route for JPEG datasets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Iterable, Optional, Sequence

import flax.linen as nn
import numpy as np

from jaxal import io
from jaxal.datasets import images as images_lib
from jaxal.datasets import pipeline
from jaxal.models import foundation, inference, pretrained, resnet, ssl_source, train
from jaxal.models.checkpoint import Snapshots
from jaxal.errors import InputError


def train_model(images: np.ndarray, labels: np.ndarray, num_classes: int, *,
                width: int, stem: str, config: train.TrainConfig,
                workdir: Optional[str] = None,
                log: Optional[Callable[[dict], None]] = None):
  """Trains ResNet-18 on uint8 images (random crop and flip), resuming from
  `workdir`; returns `(model, host state)`."""
  model = resnet.ResNet18(num_classes=num_classes, width=width, stem=stem)
  batches, steps = pipeline.array_train_batches(images, labels,
                                                batch_size=config.batch_size,
                                                seed=config.seed)
  state = train.fit(model, config, batches, steps_per_epoch=steps,
                    image_shape=images.shape[1:], workdir=workdir, log=log)
  return model, state


def snapshot_variables(state, workdir: str, every: int) -> list[dict]:
  """Variables of every snapshot saved in `workdir` (oldest first); `state`
  gives the tree structure. Raises if none is there."""
  snaps = Snapshots(workdir, every)
  epochs = snaps.snapshot_epochs()
  if not epochs:
    raise InputError(f"no snapshots in {workdir}; train with snapshot_every={every} "
                     "first.")
  return [train.variables_of(snaps.restore_snapshot(e, state)) for e in epochs]


def outputs(model, variables: Sequence[dict], images, *, batch_size: int = 256):
  """(features [N, D], probs [N, C]) of uint8 images (an array, or a streamed
  `SplitImages` read once), averaged over `variables` (one entry: the single
  model; several: the "+ens" ensemble). Images are normalised batch by batch;
  outputs are aligned for acquisition."""
  return inference.ensemble_predict(model, list(variables), images,
                                    batch_size=batch_size, transform=pipeline.normalize)


def outputs_by_batch(model, variables: Sequence[dict], batches: Iterable[np.ndarray],
                     *, batch_size: int = 256,
                     transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
  """Yields `outputs` of each uint8 host batch of `batches` (each at most
  `inference.examples_per_call(batch_size)` images), as `outputs` computes
  them for the batches of a whole array; `transform` normalises each batch
  (default jaxal's `pipeline.normalize`; an imported encoder's own statistics
  through `images.normalizer(trained.preprocess)`)."""
  return inference.ensemble_predict_batches(model, list(variables), batches,
                                            batch_size=batch_size,
                                            transform=transform or pipeline.normalize)


@dataclasses.dataclass(frozen=True)
class Trained:
  """A finished M_S read back from a `train_source` work directory."""
  model: nn.Module
  final: dict  # variables after the last epoch
  snapshots: list  # variables of every kept snapshot, oldest first ([final] if none)
  snapshot_epochs: tuple
  config: dict  # the run's config.json
  digest: str  # of the config and the snapshot epochs: identifies these outputs

  @property
  def image_size(self) -> int:
    """The image size M_S was trained (or imported) at."""
    return int(self.config["image_size"])

  @property
  def imported(self) -> bool:
    """Whether the weights were imported (`jaxal.models.pretrained`, or a
    foundation encoder, `jaxal.models.foundation`): one model, no training
    snapshots."""
    return self.config.get("kind") in (pretrained.KIND, foundation.KIND)

  @property
  def foundation(self) -> bool:
    """Whether this is an imported foundation encoder (DINOv2, SigLIP):
    features, no source-class probabilities, one model."""
    return self.config.get("kind") == foundation.KIND

  @property
  def features_only(self) -> bool:
    """Whether the source gives features and no source-class probabilities
    (a SimCLR or foundation encoder)."""
    return self.self_supervised or self.foundation

  @property
  def self_supervised(self) -> bool:
    """Whether this is a SimCLR encoder (`jaxal.models.ssl_source`): features,
    no source-class probabilities, one model."""
    return self.config.get("kind") == ssl_source.KIND

  @property
  def preprocess(self) -> Optional[images_lib.Preprocess]:
    """The recorded evaluation transform of an imported source; None for a
    trained one (jaxal's own: `images.load` and `pipeline.normalize`)."""
    p = self.config.get("preprocess")
    return None if p is None else images_lib.Preprocess.from_json(p)

  @property
  def final_in_snapshots(self) -> Optional[int]:
    """Position of the final model among `snapshots`, or None."""
    epochs = list(self.snapshot_epochs)
    return epochs.index(self.config["epochs"]) if self.config["epochs"] in epochs \
        else None


def config_digest(*parts) -> str:
  """A short stable digest of JSON-able parts (what determines a model)."""
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str)
                        .encode()).hexdigest()[:16]


def load_workdir(workdir: str) -> Trained:
  """M_S from a finished `experiments/train_source.py` run in `workdir`, from
  weights imported there (`jaxal import-source`: a ResNet,
  `pretrained.import_source`, or a DINOv2 / SigLIP encoder,
  `foundation.import_source`), or a SimCLR encoder pretrained there (`jaxal
  pretrain`, `ssl_source`).

  Raises ValueError (naming the directory and the fix) when it holds no run, or
  a run that has not finished all its epochs.
  """
  cfg = io.read_json(os.path.join(workdir, "config.json"))
  if cfg is None:
    raise InputError(f"source {workdir} has no config.json; train M_S there first "
                     "with `python3 run.py exp train_source --workdir=...`, or "
                     "import weights with `jaxal import-source`.")
  if cfg.get("kind") == pretrained.KIND:
    model, final = pretrained.load_variables(os.path.abspath(workdir), cfg)
    return Trained(model, final, [final], (), cfg, config_digest(cfg, []))
  if cfg.get("kind") == ssl_source.KIND:
    model, final = ssl_source.load(workdir, cfg)
    return Trained(model, final, [final], (), cfg, config_digest(cfg, []))
  if cfg.get("kind") == foundation.KIND:
    model, final = foundation.load(workdir, cfg)
    return Trained(model, final, [final], (), cfg, config_digest(cfg, []))
  from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
  ckpt = os.path.join(os.path.abspath(workdir), "checkpoints")
  model = resnet.ResNet18(num_classes=catalog.num_classes(cfg["dataset"]),
                          width=cfg["width"], stem=cfg["stem"])
  keys = ("batch_size", "learning_rate", "schedule", "warmup_epochs",
          "weight_decay", "snapshot_every", "compute_dtype", "seed")
  tcfg = train.TrainConfig(num_epochs=cfg["epochs"],
                           **{k: cfg[k] for k in keys if k in cfg})
  template = train.create_state(model, tcfg, (cfg["image_size"],) * 2 + (3,))
  found = Snapshots(ckpt, cfg["snapshot_every"]).restore_latest(template)
  if found is None or found[0] < cfg["epochs"]:
    raise InputError(f"source {workdir}: M_S has not finished training "
                     f"({'no checkpoint' if found is None else found[0]} of "
                     f"{cfg['epochs']} epochs); rerun train_source there.")
  state = found[1]
  final = train.variables_of(state)
  epochs = tuple(Snapshots(ckpt, cfg["snapshot_every"]).snapshot_epochs())
  snaps = snapshot_variables(state, ckpt, cfg["snapshot_every"]) if epochs else [final]
  return Trained(model, final, snaps, epochs, cfg, config_digest(cfg, list(epochs)))
