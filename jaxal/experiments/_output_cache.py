"""A model's outputs over a pool, computed once (method guide §1).

(features, probs) of M_S (or of SimCLR's encoder) over a pool or test split
are kept in memory (`memo.Bounded`) and in WORKDIR/cache as an .npz, both keyed
by a digest of what determines them (`memo.digest`), the file written
atomically: a rerun, another shard or another table reads them instead of
running the model again. While they are computed, each finished chunk of
`chunk_batches` host batches is saved beside the file (`array_store.ChunkStore`,
NAME.parts/chunk<images>/), so a killed run resumes from its last chunk and
decodes nothing before it. A chunk is whole host batches, so every image is
computed in the batch it has in one pass: the result is the uninterrupted
run's, bit for bit.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Optional

import numpy as np

from jaxal import _array_store as array_store
from jaxal import hostmem, io
from jaxal.datasets import pipeline
from jaxal.experiments import _memo as memo
from jaxal.models import inference, source


class _Filled:
  """The result arrays (64-byte aligned), allocated at the first chunk."""

  def __init__(self, n: int):
    self.n = n
    self.features: Optional[np.ndarray] = None
    self.probs: Optional[np.ndarray] = None

  def put(self, start: int, features: np.ndarray, probs: np.ndarray) -> None:
    if self.features is None:
      self.features = hostmem.aligned_empty((self.n, features.shape[1]), np.float32)
      self.probs = hostmem.aligned_empty((self.n, probs.shape[1]), np.float32)
    self.features[start:start + len(features)] = features
    self.probs[start:start + len(probs)] = probs


class OutputCache:
  """(features, probs) of models over images, by digest; see the module
  docstring. `batch` images a host batch, `chunk_batches` host batches a
  chunk, at most `size` results in memory."""

  def __init__(self, folder: str, log: Callable[[str], None], *, batch: int = 256,
               chunk_batches: int = 32, size: int = 32):
    if batch < 1 or chunk_batches < 1:
      raise ValueError("output_batch and output_chunk_batches must be >= 1, got "
                       f"{batch} and {chunk_batches}.")
    self.folder, self.log = folder, log
    self.batch, self.chunk_batches = int(batch), int(chunk_batches)
    self._memory = memo.Bounded(size)

  def get(self, key: str, name: str, what: str, model, variables: list, images,
          normalize=pipeline.normalize):
    """(features, probs) of `model` averaged over `variables` on `images`
    (uint8 batches through `normalize`), under `key`: from memory, else from
    WORKDIR/cache/`name`_`key`.npz, else computed (logging `what`) and saved."""
    path = os.path.join(self.folder, f"{name}_{key}.npz")
    return self._memory.get(key, lambda: self._read_or_compute(
        path, what, model, variables, images, normalize))

  def _read_or_compute(self, path, what, model, variables, images, normalize):
    parts = f"{path[:-len('.npz')]}.parts"
    if os.path.exists(path):
      shutil.rmtree(parts, ignore_errors=True)  # killed after the cache was saved
      with np.load(path) as z:
        return z["features"], z["probs"]
    self.log(what)
    feats, probs = self._compute(parts, model, variables, images, normalize)
    io.save_npz(path, features=feats, probs=probs)
    shutil.rmtree(parts, ignore_errors=True)
    return feats, probs

  def _compute(self, parts: str, model, variables, images, normalize):
    """The outputs over `images`, each finished chunk saved under `parts` (in a
    folder per chunk size: another device count gives other chunks)."""
    step = inference.examples_per_call(self.batch)
    chunk = step * self.chunk_batches
    store = array_store.ChunkStore(os.path.join(parts, f"chunk{chunk}"),
                                   lambda s: f"{s:010d}.npz")
    n = len(images)
    starts = range(0, n, chunk)
    todo = [s for s in starts if not store.done(s)]
    if len(todo) < len(starts):
      self.log(f"M_S outputs: {len(starts) - len(todo)} of {len(starts)} chunks "
               "already done")
    out = _Filled(n)
    for s, f, p in _by_chunk(store, todo, n, chunk, step, model, variables,
                             images, normalize):
      out.put(s, f, p)
    for s in sorted(set(starts) - set(todo)):  # finished by an earlier run
      z = store.load(s)
      out.put(s, z["features"], z["probs"])
    return out.features, out.probs


def _by_chunk(store: array_store.ChunkStore, todo: list[int], n: int, chunk: int,
              step: int, model, variables, images, normalize):
  """Yields (start, features, probs) of each chunk starting at `todo`, after
  saving it in `store`: one pass of `source.outputs_by_batch` over their rows."""
  if not todo:
    return
  rows = np.concatenate([np.arange(s, min(s + chunk, n)) for s in todo])
  out = source.outputs_by_batch(model, variables, images.subset(rows).batches(step),
                                batch_size=step, transform=normalize)
  for s in todo:
    got = [next(out) for _ in range(-(-min(chunk, n - s) // step))]
    f = np.concatenate([f for f, _ in got])
    p = np.concatenate([p for _, p in got])
    store.save(s, features=f, probs=p)
    yield s, f, p
  if next(out, None) is not None:  # runs the stream's own end-of-split checks
    raise RuntimeError(f"M_S's outputs: more batches than the {n} images.")
