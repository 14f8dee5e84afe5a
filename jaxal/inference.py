"""Features and probabilities of a whole pool, over all local devices.

M_S's outputs are every signal acquisition uses (METHOD.md sections 1 and 3): the
pooled features f and the softmax over the source classes. `predict` runs the
model in inference mode over a pool in batches split across devices (one jitted
computation, batch sharded over a mesh of the local devices, variables
replicated once per call); the last batch is padded and the padding dropped, so
every example is seen exactly once.
`ensemble_predict` averages features and probabilities over snapshots (the
paper's "+ens", supplement section 1).
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxal import _xla_cpu, hostmem


def _outputs(model: nn.Module, variables, images):
  logits, features = model.apply(variables, images, train=False)
  return features, jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


@functools.lru_cache(maxsize=16)
def _jitted_outputs(model: nn.Module, devices: tuple):
  """(run, replicated sharding, batch sharding) for `model` on `devices`."""
  mesh = Mesh(np.asarray(devices), ("batch",))
  replicated = NamedSharding(mesh, PartitionSpec())
  batch = NamedSharding(mesh, PartitionSpec("batch"))
  run = jax.jit(functools.partial(_outputs, model),
                in_shardings=(replicated, batch), out_shardings=batch,
                compiler_options=_xla_cpu.inference_options(devices[0].platform))
  return run, replicated, batch


def predict(model: nn.Module, variables, images: np.ndarray, *,
            batch_size: int = 256,
            devices: Optional[Sequence[jax.Device]] = None,
            transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
  """(features [N, D], probs [N, C]) of `images` [N, H, W, C], float32.

  `transform` is applied to each host batch before it goes to the devices (e.g.
  `jaxal.datasets.pipeline.normalize` for uint8 pools, so that the pool is never
  held as float32 as a whole). The outputs are 64-byte-aligned host arrays,
  ready for `jaxal.acquisition` without a copy.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}.")
  if batch_size <= 0:
    raise ValueError(f"batch_size must be > 0, got {batch_size}.")
  devices = list(devices or jax.local_devices())
  per_device = -(-batch_size // len(devices))
  step = per_device * len(devices)
  run, replicated, sharded = _jitted_outputs(model, tuple(devices))
  variables = jax.device_put(variables, replicated)
  n = images.shape[0]
  feats = probs = None
  for start in range(0, n, step):
    chunk = images[start:start + step]
    if transform is not None:
      chunk = transform(chunk)
    real = chunk.shape[0]
    if real < step:  # pad the last batch; the padding is dropped below
      chunk = np.concatenate([chunk, np.zeros((step - real, *chunk.shape[1:]),
                                              chunk.dtype)])
    f, p = run(variables, jax.device_put(chunk, sharded))
    f = np.asarray(f)[:real]
    p = np.asarray(p)[:real]
    if feats is None:
      feats = hostmem.aligned_empty((n, f.shape[1]), np.float32)
      probs = hostmem.aligned_empty((n, p.shape[1]), np.float32)
    feats[start:start + real] = f
    probs[start:start + real] = p
  return feats, probs


def ensemble_predict(model: nn.Module, snapshots: Sequence, images: np.ndarray, *,
                     batch_size: int = 256,
                     devices: Optional[Sequence[jax.Device]] = None,
                     transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
  """Features and probabilities averaged over snapshot `variables` (+ens)."""
  if not snapshots:
    raise ValueError("snapshots is empty; pass at least one set of variables.")
  feats = probs = None
  for variables in snapshots:
    f, p = predict(model, variables, images, batch_size=batch_size, devices=devices,
                   transform=transform)
    feats = f if feats is None else feats + f
    probs = p if probs is None else probs + p
  feats /= len(snapshots)
  probs /= len(snapshots)
  return feats, probs
