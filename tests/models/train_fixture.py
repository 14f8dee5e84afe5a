"""A tiny deterministic training run shared by the training tests."""

import numpy as np

from jaxal import models
from jaxal.models import train

IMAGE = (8, 8, 3)
CLASSES = 3


def data(n=48, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, CLASSES, n)
  x = rng.normal(0, 1, (n, *IMAGE)).astype(np.float32)
  x[..., 0] += 1.5 * y[:, None, None]  # separable by the mean of channel 0
  return x, y


def model(width=4):
  return models.ResNet18(num_classes=CLASSES, width=width, stem="cifar")


def config(**kw):
  base = dict(num_epochs=3, batch_size=16, learning_rate=0.05, schedule="cosine",
              snapshot_every=1, weight_decay=1e-4)
  base.update(kw)
  return train.TrainConfig(**base)


def batches(share=lambda b: b, n=48):
  x, y = data(n)

  def fn(epoch):
    order = np.random.default_rng(epoch).permutation(n)
    for i in range(n // 16):
      idx = order[i * 16:(i + 1) * 16]
      yield share(x[idx]), share(y[idx])
  return fn


def run(share=lambda b: b, workdir=None, epochs=3, **kw):
  return train.fit(model(), config(num_epochs=epochs), batches(share), steps_per_epoch=3,
                   image_shape=IMAGE, workdir=workdir, log=lambda m: None, **kw)
