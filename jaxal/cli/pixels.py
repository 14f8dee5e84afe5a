"""The pool's pixels, read again by name after `embed`: an image folder's files
or a prepared TFDS split (fine-tuning the target, later selection rounds)."""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np

from jaxal.cli.workdir import Workdir, WorkdirError
from jaxal.datasets import images


@functools.lru_cache(maxsize=2)
def tfds_images(spec: str, data_dir: Optional[str], size: int) -> "TfdsImages":
  """The split in memory once per process (fine-tuning and rounds read pixels
  chunk by chunk)."""
  return TfdsImages(spec, data_dir, size)


class TfdsImages:
  """A TFDS split as the pool: image i is named "DATASET:SPLIT/i" (8 digits)."""

  def __init__(self, spec: str, data_dir: Optional[str], size: int):
    name, _, split = spec.partition(":")
    from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
    try:
      arrays = catalog.load_arrays(name, split or "train", data_dir=data_dir,
                                   image_size=size)
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise WorkdirError(f"--tfds {spec!r}: {e}") from None
    self.images = arrays.images
    self.prefix = f"{name}:{split or 'train'}/"
    self.paths = [f"{self.prefix}{i:08d}" for i in range(len(self.images))]

  def load(self, part):
    idx = [int(p[len(self.prefix):]) for p in part]
    return self.images[idx], np.ones(len(part), bool), {}


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
