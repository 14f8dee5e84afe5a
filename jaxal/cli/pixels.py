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
from jaxal.datasets.split_images import SplitImages


@functools.lru_cache(maxsize=2)
def tfds_images(spec: str, data_dir: Optional[str], size: int) -> "TfdsImages":
  return TfdsImages(spec, data_dir, size)


class TfdsImages:
  """A TFDS split as the pool: image i is named "DATASET:SPLIT/i" (8 digits).

  The bundled digits (and the offline data where TFDS is not installed) are
  small arrays in memory; every TFDS dataset is streamed (`SplitImages`).
  """

  def __init__(self, spec: str, data_dir: Optional[str], size: int):
    name, _, split = spec.partition(":")
    split = split or "train"
    from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
    try:
      if catalog.in_memory(name):
        self.images = SplitImages.in_memory(
            catalog.load_arrays(name, split, image_size=size).images)
      else:
        n = catalog.num_examples(name, split, data_dir=data_dir)
        self.images = SplitImages.streamed(name, split, np.arange(n), size,
                                           split_size=n, data_dir=data_dir)
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise WorkdirError(f"--tfds {spec!r}: {e}") from None
    self.prefix = f"{name}:{split}/"
    self.paths = [f"{self.prefix}{i:08d}" for i in range(len(self.images))]

  def stream(self, starts: Sequence[int], chunk: int
             ) -> Iterator[tuple[int, np.ndarray]]:
    """(start, uint8 images) of each chunk starting at `starts` (ascending)."""
    n = len(self.paths)
    rows = np.concatenate([np.arange(s, min(s + chunk, n)) for s in starts] or
                          [np.zeros(0, np.int64)])
    try:  # only the split's last chunk can be short, so batches are the chunks
      yield from zip(starts, self.images.subset(rows).batches(chunk))
    except RuntimeError as e:
      raise WorkdirError(f"--tfds {self.prefix[:-1]}: {e}") from None

  def load(self, part: Sequence[str]):
    """(uint8 images of `part` in its order, all readable, no errors)."""
    want = np.asarray([int(p[len(self.prefix):]) for p in part], np.int64)
    try:
      return self.images.take(want), np.ones(len(part), bool), {}
    except RuntimeError as e:
      raise WorkdirError(f"--tfds {self.prefix[:-1]}: {e}") from None


def preprocess_of(setup: dict) -> Optional[images.Preprocess]:
  """The evaluation transform recorded by embed (an imported source's), or None
  for jaxal's own (`images.load`, `pipeline.normalize`)."""
  p = setup.get("preprocess")
  return None if p is None else images.Preprocess.from_json(p)


def normalizer(setup: dict):
  """uint8 images -> the model's float input, as embed normalised them."""
  return images.normalizer(preprocess_of(setup))


def load_folder(setup: dict, root: str, paths: Sequence[str]):
  """`images.load_batch` of `paths` under `root` at the recorded size and
  transform."""
  return images.load_batch(root, list(paths), setup["image_size"],
                           preprocess=preprocess_of(setup))


def load_pixels(wd: Workdir, paths: Sequence[str]):
  setup = wd.recorded("embed")
  if setup["tfds"]:
    src = tfds_images(setup["images"], setup.get("data_dir"), setup["image_size"])
    return src.load(list(paths))[0]
  imgs, ok, errors = load_folder(setup, setup["images"], paths)
  if errors:
    p, e = next(iter(errors.items()))
    raise WorkdirError(f"cannot read {p} ({e}), which was readable when embedded; "
                       "restore the file.")
  return imgs
