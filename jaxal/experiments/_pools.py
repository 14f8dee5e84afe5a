"""The target pools of the paper's tables, with their test splits (method
guide §2; supplement section 2).

The imbalanced pool keeps `imbalanced_counts` images of each class of the
train split, the balanced one the same number of each (`pool_counts`); both
are fixed by `data_seed`. Pixels: the real datasets' splits are streamed from
TFDS ("auto" or "stream"), never held whole; the offline data are generated
here and held in memory ("auto" or "memory"), or read through their TFDS
builder ("stream") with identical pixels.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from jaxal.datasets import catalog, imbalance, procedural, split_images
from jaxal.experiments import _memo as memo
from jaxal.experiments._settings import Settings


@dataclasses.dataclass(frozen=True)
class Pool:
  """A target pool with its test split: labels in memory, pixels as
  `SplitImages` (in memory, or streamed from TFDS and read only when needed)."""
  images: split_images.SplitImages
  labels: np.ndarray
  test_images: split_images.SplitImages
  test_labels: np.ndarray
  num_classes: int
  digest: str  # of the pool's and test split's labels and indices


def pool_counts(settings: Settings, dataset: str, kind: str,
                available: np.ndarray) -> np.ndarray:
  """Images per class of the imbalanced pool (`imbalanced_counts`, method guide
  §2) or of the balanced subset (supplement section 2: 200 per class, 80
  for MIT-67, at most what the rarest class has), from the train split's counts."""
  if kind == "imbalanced":
    return imbalance.imbalanced_counts(available, seed=settings.data_seed)
  per_class = settings.balanced_per_class or catalog.spec(dataset).balanced_per_class
  return np.full(available.size, min(int(per_class), int(available.min())))


def load_split(settings: Settings, dataset: str, split: str,
               image_size: Callable[[], int]) -> catalog.ArraySplit:
  """A whole split in memory (the offline data, M_S's offline training set);
  `image_size()` is read for the real datasets only."""
  if settings.data == "offline":  # in memory: the same pixels as the TFDS builder's
    part = dataset.split("_", 1)[1]
    images, labels = procedural.generate(settings.offline, part, split)
    return catalog.ArraySplit(images, labels, settings.offline.num_classes(part),
                              tuple(procedural.class_names(settings.offline, part)))
  return catalog.load_arrays(dataset, split, data_dir=settings.data_dir,
                             image_size=image_size())


class Pools:
  """The pools of a sweep, each made once and kept (the settings are fixed, so
  (dataset, kind) is the key; a table has at most 4 datasets x 2 pool kinds).
  `image_size()` is M_S's input size, which the real datasets are read at."""

  def __init__(self, settings: Settings, pixels: str,
               image_size: Callable[[], int]):
    self.settings, self.pixels, self.image_size = settings, pixels, image_size
    self._pools = memo.Bounded(8)

  def streams(self) -> bool:
    """Whether pools are streamed from TFDS (`pixels`: "auto" streams the real
    datasets and holds the offline data, generated here, in memory)."""
    return self.pixels == "stream" or (self.pixels == "auto" and
                                       self.settings.data == "real")

  def get(self, dataset: str, kind: str) -> Pool:
    """The imbalanced or balanced pool of `dataset`, and its test split."""
    return self._pools.get((dataset, kind), lambda: self._make(dataset, kind))

  def _make(self, dataset: str, kind: str) -> Pool:
    s = self.settings
    train_labels, train_images, k = self._split(dataset, "train")
    test_labels, test_images, _ = self._split(dataset, "test")
    counts = pool_counts(s, dataset, kind, np.bincount(train_labels, minlength=k))
    keep = imbalance.subset_indices(train_labels, counts, seed=s.data_seed)
    labels = train_labels[keep]
    return Pool(train_images.subset(keep), labels, test_images, test_labels, k,
                memo.digest(dataset, kind, keep, labels, test_labels))

  def _split(self, dataset: str, split: str):
    """(labels, images of the whole split, number of classes)."""
    s = self.settings
    if not self.streams():
      arrays = load_split(s, dataset, split, self.image_size)
      return (arrays.labels, split_images.SplitImages.in_memory(arrays.images),
              arrays.num_classes)
    offline = s.offline if s.data == "offline" else None
    labels = catalog.load_labels(dataset, split, data_dir=s.data_dir, offline=offline)
    size = s.offline.image_size if s.data == "offline" else self.image_size()
    images = split_images.SplitImages.streamed(
        dataset, split, np.arange(len(labels)), size, split_size=len(labels),
        data_dir=s.data_dir, offline=offline)
    return labels, images, catalog.num_classes(dataset, offline)
