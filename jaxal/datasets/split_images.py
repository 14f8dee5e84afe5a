"""The pixels of a pool or a test split: an array in memory, or rows of a TFDS
split streamed on demand (method guide §1-6).

The paper's protocol reads a pool's pixels three times: once for M_S's outputs
over the whole pool (section 1), again for the selected images when a target is
fine-tuned (supplement section 6), and for the test split at every evaluation.
`SplitImages` serves all three in memory bounded by a few batches when the split
is streamed::

    pool = SplitImages.streamed("food101", "train", rows=keep, image_size=224,
                                split_size=75750)
    for batch in pool.batches(256):      # uint8 [<=256, 224, 224, 3], pool order
      ...
    chosen = pool.take(selected)         # only those rows are decoded

Records outside the requested rows are skipped before they are decoded
(`catalog.stream`). A `take` larger than `max_bytes` (the Full row of a large
pool) is written to a memory-mapped file in `spill_dir` whose name is unlinked
at once: the pages live in the OS's file cache, not in the process's own memory,
and nothing is left on disk after a crash.
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterator, Optional

import numpy as np

from jaxal.datasets import procedural
from jaxal.errors import InputError

DEFAULT_MAX_BYTES = 1 << 30


class SplitImages:
  """Images [N, H, W, 3] uint8 of a split or of some of its rows, in order.

  Build it with `in_memory(array)` or `streamed(name, split, rows, ...)`; both
  give the same `batches` and `take`.
  """

  def __init__(self, *, array: Optional[np.ndarray] = None,
               name: Optional[str] = None, split: Optional[str] = None,
               rows: Optional[np.ndarray] = None, image_size: int = 0,
               split_size: int = 0, data_dir: Optional[str] = None,
               offline: Optional[procedural.OfflineConfig] = None):
    self.array = array
    self.name, self.split, self.data_dir, self.offline = name, split, data_dir, offline
    self.rows, self.image_size, self.split_size = rows, image_size, split_size

  @classmethod
  def in_memory(cls, images: np.ndarray) -> "SplitImages":
    """A split held as a uint8 [N, H, W, 3] array."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
      raise InputError(f"images must be uint8 [N, H, W, 3], got {images.dtype} "
                       f"{images.shape}.")
    return cls(array=images)

  @classmethod
  def streamed(cls, name: str, split: str, rows: np.ndarray, image_size: int, *,
               split_size: int, data_dir: Optional[str] = None,
               offline: Optional[procedural.OfflineConfig] = None) -> "SplitImages":
    """Rows `rows` (increasing indices into the split's order) of TFDS split
    `split` of dataset `name`, decoded and resized to `image_size` only when
    read. `split_size` is the split's length (`catalog.load_labels`)."""
    rows = _increasing(rows, split_size, "rows", f" (the examples of {name}:{split})")
    if image_size < 1:
      raise InputError(f"image_size must be >= 1, got {image_size}.")
    return cls(name=name, split=split, rows=rows, image_size=int(image_size),
               split_size=int(split_size), data_dir=data_dir, offline=offline)

  @property
  def is_streamed(self) -> bool:
    """Whether the pixels are read from the TFDS split on demand."""
    return self.array is None

  def __len__(self) -> int:
    return len(self.array) if self.array is not None else len(self.rows)

  @property
  def image_shape(self) -> tuple:
    """(height, width, 3) of every image."""
    if self.array is not None:
      return tuple(self.array.shape[1:])
    return (self.image_size, self.image_size, 3)

  def subset(self, positions) -> "SplitImages":
    """The images at increasing `positions`, read as lazily as these are."""
    positions = _increasing(positions, len(self), "positions")
    if self.array is not None:
      return SplitImages.in_memory(self.array[positions])
    return SplitImages.streamed(self.name, self.split, self.rows[positions],
                                self.image_size, split_size=self.split_size,
                                data_dir=self.data_dir, offline=self.offline)

  def batches(self, batch_size: int) -> Iterator[np.ndarray]:
    """Yields every image in order, `batch_size` at a time (the last batch
    shorter), as uint8 arrays."""
    if batch_size < 1:
      raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    if self.array is not None:
      for s in range(0, len(self.array), batch_size):
        yield self.array[s:s + batch_size]
      return
    at = 0
    for idx, imgs in self._stream(self.rows, batch_size):
      self._check(idx, self.rows[at:at + len(idx)])
      at += len(idx)
      yield imgs
    self._check(self.rows[:at], self.rows)

  def take(self, positions, *, spill_dir: Optional[str] = None,
           max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """uint8 images at `positions` (indices into this set, in that order).

    Streamed: only those rows are decoded, in one pass over the split; a result
    over `max_bytes` goes to an unlinked memory-mapped file in `spill_dir` when
    one is given (else it is held in memory)."""
    positions = np.asarray(positions)
    if positions.ndim != 1 or not np.issubdtype(positions.dtype, np.integer) or (
        positions.size and (positions.min() < 0 or positions.max() >= len(self))):
      raise InputError(f"positions must be a 1-D array of indices in [0, {len(self)}).")
    if self.array is not None:
      return self.array[positions]
    uniq, first, inverse = np.unique(positions, return_index=True,
                                     return_inverse=True)
    out = _allocate((len(positions), *self.image_shape), spill_dir, max_bytes)
    at = 0
    for idx, imgs in self._stream(self.rows[uniq], 256):
      self._check(idx, self.rows[uniq[at:at + len(idx)]])
      out[first[at:at + len(idx)]] = imgs
      at += len(idx)
    self._check(self.rows[uniq[:at]], self.rows[uniq])
    again = np.flatnonzero(first[inverse] != np.arange(len(positions)))
    if again.size:  # a position asked for more than once
      out[again] = out[first[inverse[again]]]
    return out

  def _stream(self, rows: np.ndarray, batch_size: int):
    from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
    keep = np.zeros(self.split_size, bool)
    keep[rows] = True
    return catalog.stream(self.name, self.split, keep, self.image_size,
                          batch_size=batch_size, data_dir=self.data_dir,
                          offline=self.offline)

  def _check(self, got: np.ndarray, want: np.ndarray) -> None:
    if len(got) != len(want) or np.any(np.asarray(got) != want):
      raise RuntimeError(f"{self.name}:{self.split} read other records than the ones "
                         f"asked for ({len(got)} read, {len(want)} asked); the split "
                         "changed since its labels were read. Prepare it again and "
                         "use a new workdir.")


def _increasing(idx, bound: int, what: str, where: str = "") -> np.ndarray:
  """`idx` as int64 if it is strictly increasing indices in [0, bound)."""
  idx = np.asarray(idx, np.int64)
  if idx.ndim != 1 or (idx.size and (idx[0] < 0 or idx[-1] >= bound
                                     or np.any(np.diff(idx) <= 0))):
    raise InputError(f"{what} must be increasing indices in [0, {bound}){where}.")
  return idx


def _allocate(shape: tuple, spill_dir: Optional[str], max_bytes: int) -> np.ndarray:
  """An uninitialised uint8 array: in memory, or memory-mapped to an unlinked
  file in `spill_dir` when larger than `max_bytes`."""
  if spill_dir is None or int(np.prod(shape)) <= max_bytes:
    return np.empty(shape, np.uint8)
  os.makedirs(spill_dir, exist_ok=True)
  fd, path = tempfile.mkstemp(prefix="pixels_", suffix=".npy", dir=spill_dir)
  os.close(fd)
  try:
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
  finally:
    os.unlink(path)  # the mapping stays valid; the name goes now
