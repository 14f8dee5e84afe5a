"""Features and probabilities of a whole pool, over all local devices.

M_S's outputs are every signal acquisition uses (method guide §1 and §3): the
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
import itertools
from typing import Callable, Iterable, Iterator, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxal import _xla_cpu
from jaxal.datasets import split_images
from jaxal import hostmem
from jaxal.errors import InputError


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
                compiler_options=_xla_cpu.inference_options(
                    devices[0].platform,
                    transformer=getattr(model, "transformer", False)))
  return run, replicated, batch


def examples_per_call(batch_size: int, num_devices: Optional[int] = None) -> int:
  """Images per host batch of `predict`: `batch_size` rounded up to a multiple
  of the devices (all local devices when `num_devices` is None)."""
  return _step(batch_size, num_devices or jax.local_device_count())


def _step(batch_size: int, num_devices: int) -> int:
  """Examples per computation: `batch_size` rounded up to the devices."""
  if batch_size <= 0:
    raise InputError(f"batch_size must be > 0, got {batch_size}.")
  return -(-batch_size // num_devices) * num_devices


def predict_batches(model: nn.Module, variables, batches: Iterable[np.ndarray], *,
                    batch_size: int = 256,
                    devices: Optional[Sequence[jax.Device]] = None,
                    transform: Optional[Callable[[np.ndarray], np.ndarray]] = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (features, probs) host arrays for each host batch of `batches`.

  Batches hold at most `batch_size` images (a shorter one is padded and the
  padding dropped), so one compilation serves them all; the variables go to
  the devices once, and batch i + 1 is dispatched before batch i's outputs are
  fetched, so host work (the next batch, `transform`) overlaps the devices'.
  """
  devices = list(devices or jax.local_devices())
  step = _step(batch_size, len(devices))
  run, replicated, sharded = _jitted_outputs(model, tuple(devices))
  variables = jax.device_put(variables, replicated)
  pending = None
  for chunk in batches:
    if transform is not None:
      chunk = transform(chunk)
    chunk = np.asarray(chunk)
    real = chunk.shape[0]
    if chunk.ndim != 4 or not 0 < real <= step:
      raise InputError(f"each batch must be [n, H, W, C] with 0 < n <= batch_size "
                       f"({step} over {len(devices)} devices), got {chunk.shape}.")
    if real < step:
      chunk = np.concatenate([chunk, np.zeros((step - real, *chunk.shape[1:]),
                                              chunk.dtype)])
    out = run(variables, jax.device_put(chunk, sharded)), real  # dispatched
    if pending is not None:
      yield _fetch(*pending)
    pending = out
  if pending is not None:
    yield _fetch(*pending)


def _fetch(outputs, real):
  f, p = outputs
  return np.asarray(f)[:real], np.asarray(p)[:real]


def predict(model: nn.Module, variables, images, *,
            batch_size: int = 256,
            devices: Optional[Sequence[jax.Device]] = None,
            transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
  """(features [N, D], probs [N, C]) of `images`, float32.

  `images` is an array [N, H, W, C] or a `jaxal.datasets.split_images.SplitImages`
  (a split streamed batch by batch, never held as a whole). `transform` is
  applied to each host batch before it goes to the devices (e.g.
  `jaxal.datasets.pipeline.normalize` for uint8 pools, so that the pool is never
  held as float32 as a whole). The outputs are 64-byte-aligned host arrays,
  ready for `jaxal.acquisition` without a copy.
  """
  return ensemble_predict(model, [variables], images, batch_size=batch_size,
                          devices=devices, transform=transform)


def ensemble_predict(model: nn.Module, snapshots: Sequence, images, *,
                     batch_size: int = 256,
                     devices: Optional[Sequence[jax.Device]] = None,
                     transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
  """Features and probabilities averaged over snapshot `variables` (+ens).

  `images` as in `predict`. It is read once: each host batch goes through every
  snapshot before the next batch is read, so a streamed split is decoded once
  whatever the ensemble's size (`ensemble_predict_batches`).
  """
  devices = list(devices or jax.local_devices())
  step = examples_per_call(batch_size, len(devices))
  n, batches = _host_batches(images, step)
  feats = probs = None
  start = 0
  for f, p in ensemble_predict_batches(model, snapshots, batches, batch_size=step,
                                       devices=devices, transform=transform):
    if feats is None:
      feats = hostmem.aligned_empty((n, f.shape[1]), np.float32)
      probs = hostmem.aligned_empty((n, p.shape[1]), np.float32)
    if start + len(f) > n:
      raise InputError(f"images yielded more than the {n} images it holds.")
    feats[start:start + len(f)] = f
    probs[start:start + len(p)] = p
    start += len(f)
  if start != n:
    raise InputError(f"images yielded {start} images, not the {n} it holds.")
  if feats is None:
    raise InputError("images is empty; pass at least one image.")
  return feats, probs


def ensemble_predict_batches(model: nn.Module, snapshots: Sequence,
                             batches: Iterable[np.ndarray], *, batch_size: int = 256,
                             devices: Optional[Sequence[jax.Device]] = None,
                             transform: Optional[Callable[[np.ndarray], np.ndarray]] = None
                             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields the (features, probs) of each host batch of `batches` (at most
  `examples_per_call(batch_size)` images each), averaged over `snapshots`:
  their sum in order divided by their number. Each batch is read once and goes
  through every snapshot before the next is read (the snapshots' runs share one
  iterator in lockstep, two batches buffered)."""
  snapshots = list(snapshots)
  if not snapshots:
    raise InputError("snapshots is empty; pass at least one set of variables.")
  copies = itertools.tee(batches, len(snapshots))
  runs = [predict_batches(model, v, c, batch_size=batch_size, devices=devices,
                          transform=transform) for v, c in zip(snapshots, copies)]
  for outs in zip(*runs):
    f, p = outs[0]
    for g, q in outs[1:]:
      f, p = f + g, p + q
    if len(snapshots) > 1:
      f, p = f / len(snapshots), p / len(snapshots)
    yield f, p


def _host_batches(images, step: int):
  """(number of images, iterator of host batches of at most `step`)."""
  if isinstance(images, split_images.SplitImages):
    return len(images), images.batches(step)
  images = np.asarray(images)
  if images.ndim != 4:
    raise InputError(f"images must be [N, H, W, C], got shape {images.shape}.")
  n = images.shape[0]
  return n, (images[s:s + step] for s in range(0, n, step))
