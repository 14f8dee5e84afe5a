"""The pool's pixels: an image folder's files or a prepared TFDS split, read
chunk by chunk (embed) or again by name (fine-tuning the target, later
selection rounds). No path holds a TFDS split's pixels as a whole: the split is
streamed through tf.data (records skipped before they are decoded, decoding in
parallel, prefetched), so `embed --tfds` runs in memory bounded by a few chunks
at any split size."""

from __future__ import annotations

import functools
from typing import Iterator, Optional, Sequence

import numpy as np

from jaxal.cli.workdir import Workdir, WorkdirError
from jaxal.datasets import images


@functools.lru_cache(maxsize=2)
def tfds_images(spec: str, data_dir: Optional[str], size: int) -> "TfdsImages":
  return TfdsImages(spec, data_dir, size)


class TfdsImages:
  """A TFDS split as the pool: image i is named "DATASET:SPLIT/i" (8 digits).

  The bundled digits (and the offline data where TFDS is not installed) are
  small arrays in memory; every TFDS dataset is streamed.
  """

  def __init__(self, spec: str, data_dir: Optional[str], size: int):
    name, _, split = spec.partition(":")
    split = split or "train"
    from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
    self.name, self.split, self.data_dir, self.size = name, split, data_dir, size
    self.arrays = None
    try:
      if catalog.in_memory(name):
        self.arrays = catalog.load_arrays(name, split, image_size=size).images
        n = len(self.arrays)
      else:
        n = catalog.num_examples(name, split, data_dir=data_dir)
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise WorkdirError(f"--tfds {spec!r}: {e}") from None
    self.prefix = f"{name}:{split}/"
    self.paths = [f"{self.prefix}{i:08d}" for i in range(n)]

  def _index(self, part: Sequence[str]) -> np.ndarray:
    return np.asarray([int(p[len(self.prefix):]) for p in part], np.int64)

  def _batches(self, keep: np.ndarray, batch: int):
    from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
    return catalog.stream(self.name, self.split, keep, self.size, batch_size=batch,
                          data_dir=self.data_dir)

  def stream(self, starts: Sequence[int], chunk: int
             ) -> Iterator[tuple[int, np.ndarray]]:
    """(start, uint8 images) of each chunk starting at `starts` (ascending)."""
    n = len(self.paths)
    if self.arrays is not None:
      for s in starts:
        yield s, self.arrays[s:s + chunk]
      return
    keep = np.zeros(n, bool)
    for s in starts:
      keep[s:s + chunk] = True
    it = iter(starts)
    for idx, imgs in self._batches(keep, chunk):
      s = next(it)
      if idx[0] != s or len(idx) != min(chunk, n - s):  # the split changed
        raise WorkdirError(f"--tfds {self.prefix[:-1]}: chunk at {s} read "
                           f"{len(idx)} images from {idx[0]}; the split changed "
                           "since it was counted.")
      yield s, imgs

  def load(self, part: Sequence[str]):
    """(uint8 images of `part` in its order, all readable, no errors)."""
    want = self._index(part)
    if self.arrays is not None:
      return self.arrays[want], np.ones(len(part), bool), {}
    keep = np.zeros(len(self.paths), bool)
    keep[want] = True
    got = {}
    for idx, imgs in self._batches(keep, 256):
      got.update(zip(idx.tolist(), imgs))
    return np.stack([got[i] for i in want.tolist()]), np.ones(len(part), bool), {}


def load_pixels(wd: Workdir, paths: Sequence[str]):
  setup = wd.recorded("embed")
  if setup["tfds"]:
    src = tfds_images(setup["images"], setup.get("data_dir"), setup["image_size"])
    return src.load(list(paths))[0]
  imgs, ok, errors = images.load_batch(setup["images"], list(paths),
                                       setup["image_size"])
  if errors:
    p, e = next(iter(errors.items()))
    raise WorkdirError(f"cannot read {p} ({e}), which was readable when embedded; "
                       "restore the file.")
  return imgs
