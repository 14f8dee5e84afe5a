"""The source model M_S end to end: train on a source dataset, keep snapshots,
and give the pool's features f and source-class probabilities (METHOD.md
sections 1 and 3; supplement section 1 for the snapshot ensemble "+ens").

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

from typing import Callable, Optional, Sequence

import numpy as np

from jaxal import inference, models, train
from jaxal.checkpoint import Snapshots
from jaxal.datasets import pipeline


def train_model(images: np.ndarray, labels: np.ndarray, num_classes: int, *,
                width: int, stem: str, config: train.TrainConfig,
                workdir: Optional[str] = None,
                log: Optional[Callable[[dict], None]] = None):
  """Trains ResNet-18 on uint8 images (random crop and flip), resuming from
  `workdir`; returns `(model, host state)`."""
  model = models.ResNet18(num_classes=num_classes, width=width, stem=stem)
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
    raise ValueError(f"no snapshots in {workdir}; train with snapshot_every={every} "
                     "first.")
  return [train.variables_of(snaps.restore_snapshot(e, state)) for e in epochs]


def outputs(model, variables: Sequence[dict], images: np.ndarray, *,
            batch_size: int = 256):
  """(features [N, D], probs [N, C]) of uint8 images, averaged over
  `variables` (one entry: the single model; several: the "+ens" ensemble).
  Images are normalised batch by batch; outputs are aligned for acquisition."""
  return inference.ensemble_predict(model, list(variables), images,
                                    batch_size=batch_size, transform=pipeline.normalize)
