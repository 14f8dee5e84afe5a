"""Procedurally generated images: the offline dataset (no download, pure numpy).

What it is: 32 px RGB images of one object on a cluttered background. An object
is drawn from visual primitives: a shape, a colour and a surface texture. A class
is one (shape, colour, texture) triple. Three parts, with different transfer from
the source, as the paper's targets differ (CIFAR-100 and IMN-100 transfer well from
the ImageNet source, Food-101 poorly; method guide §1, supplement section 1):

- "source": triples of the shared primitives (8 shapes, 8 colours, 6 textures);
  M_S is trained on it.
- "target": other triples of the same shared primitives: M_S's detectors of
  shapes, colours and textures transfer (the near target).
- "far": triples of primitives the source never shows (4 shapes, 6 colours, 4
  textures, `NOVEL_*`): the far target, which M_S's features describe poorly.

Instances vary in position, size,
rotation, colour, stripe phase, background and noise, so raw pixels are a poor
representation and learned features are needed.

What it is not: natural images. Absolute accuracies say nothing about Food-101
or CIFAR-100; the dataset exists so that the whole pipeline (source training,
features, acquisition, balancing, target models) runs and is tested offline.

Everything is a deterministic function of the config and the seed:
`generate(config, "target", "train")` returns the same bytes on every machine
(numpy's PCG64 streams and float64 arithmetic, rounded to uint8).
"""

from __future__ import annotations

from concurrent import futures
import dataclasses
import itertools
import os

import numpy as np

from jaxal.errors import InputError

SHAPES = ("disk", "square", "triangle", "ring", "cross", "bar", "diamond", "half_disk")
COLOURS = {  # RGB in [0, 1]
    "red": (0.85, 0.15, 0.1), "green": (0.15, 0.7, 0.2), "blue": (0.15, 0.3, 0.9),
    "yellow": (0.9, 0.85, 0.15), "magenta": (0.8, 0.2, 0.75),
    "cyan": (0.15, 0.8, 0.85), "orange": (0.95, 0.55, 0.1), "white": (0.92, 0.92, 0.92)}
TEXTURES = ("flat", "hstripes", "vstripes", "checker", "dots", "diagonal")
# Primitives of the "far" part only. They are indexed after the shared ones, so the
# shared parts' pixels do not depend on them.
NOVEL_SHAPES = ("star", "crescent", "hexagon", "ellipse")
NOVEL_COLOURS = {
    "brown": (0.5, 0.3, 0.12), "pink": (1.0, 0.62, 0.78), "olive": (0.5, 0.52, 0.1),
    "navy": (0.1, 0.12, 0.45), "purple": (0.45, 0.15, 0.65), "teal": (0.0, 0.5, 0.48)}
NOVEL_TEXTURES = ("rings", "zigzag", "grid", "speckle")
PARTS = ("source", "target", "far")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
  """Sizes of the offline dataset. Defaults fit a 2-core quickstart.

  Attributes:
    num_source_classes: classes of the source part (M_S is trained on them).
    num_target_classes: classes of the target part (the pool and its test set).
    source_train_per_class, source_test_per_class: images per source class.
    target_train_per_class, target_test_per_class: images per target class
      (the train split is balanced; imbalance is induced afterwards, as for the
      real targets, with `jaxal.datasets.imbalanced_counts`).
    num_far_classes, far_train_per_class, far_test_per_class: the same for the
      far target (novel primitives).
    image_size: side in pixels.
    seed: seed of the class definitions and of every image.
  """
  num_source_classes: int = 40
  num_target_classes: int = 20
  source_train_per_class: int = 150
  source_test_per_class: int = 25
  target_train_per_class: int = 200
  target_test_per_class: int = 50
  num_far_classes: int = 20
  far_train_per_class: int = 200
  far_test_per_class: int = 50
  image_size: int = 32
  seed: int = 0

  def validate(self) -> "OfflineConfig":
    """Checks every size and class count; returns self or raises `ValueError`."""
    total = len(SHAPES) * len(COLOURS) * len(TEXTURES)
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if f.name != "seed" and (not isinstance(v, int) or v < 1):
        raise InputError(f"OfflineConfig.{f.name} must be a positive int, got {v!r}.")
    if self.num_source_classes + self.num_target_classes > total:
      raise InputError(f"num_source_classes + num_target_classes must be <= {total} "
                       "(distinct shape/colour/texture triples).")
    novel = len(NOVEL_SHAPES) * len(NOVEL_COLOURS) * len(NOVEL_TEXTURES)
    if self.num_far_classes > novel:
      raise InputError(f"num_far_classes must be <= {novel} (distinct novel "
                       "triples).")
    if self.image_size < 8:
      raise InputError(f"image_size must be >= 8, got {self.image_size}.")
    return self

  def num_classes(self, part: str) -> int:
    """Classes of part "source", "target" or "far"."""
    return getattr(self, {"source": "num_source_classes", "target":
                          "num_target_classes", "far": "num_far_classes"}[part])

  def per_class(self, part: str, split: str) -> int:
    """Images per class of `part`'s `split` ("train" or "test")."""
    return getattr(self, f"{part}_{split}_per_class")


def class_triples(config: OfflineConfig, part: str) -> np.ndarray:
  """[C, 3] (shape, colour, texture) indices of the classes of `part`.

  All triples are permuted with the seed; the source part takes the first
  `num_source_classes`, the target part the next ones, so the parts share
  primitives but never a class. The far part's triples are made of the novel
  primitives only (indices after the shared ones).
  """
  _check_part(part)
  if part == "far":
    novel = np.array(list(itertools.product(
        range(len(SHAPES), len(SHAPES) + len(NOVEL_SHAPES)),
        range(len(COLOURS), len(COLOURS) + len(NOVEL_COLOURS)),
        range(len(TEXTURES), len(TEXTURES) + len(NOVEL_TEXTURES)))))
    novel = novel[np.random.default_rng([config.seed, 8]).permutation(len(novel))]
    return novel[:config.num_far_classes]
  triples = np.array(list(itertools.product(range(len(SHAPES)), range(len(COLOURS)),
                                            range(len(TEXTURES)))))
  triples = triples[np.random.default_rng([config.seed, 7]).permutation(len(triples))]
  s = config.num_source_classes
  return triples[:s] if part == "source" else triples[s:s + config.num_target_classes]


def class_names(config: OfflineConfig, part: str) -> list[str]:
  """Readable names (`colour_texture_shape`) of an offline part's classes, in label order."""
  shapes, colours = SHAPES + NOVEL_SHAPES, list(COLOURS) + list(NOVEL_COLOURS)
  textures = TEXTURES + NOVEL_TEXTURES
  return [f"{colours[c]}_{textures[t]}_{shapes[s]}"
          for s, c, t in class_triples(config, part)]


def _check_part(part):
  if part not in PARTS:
    raise InputError(f"part must be one of {PARTS}, got {part!r}.")


def _shape_sdf(kind: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Signed inside-distance (> 0 inside), in object radii, of each shape."""
  r = np.sqrt(u * u + v * v)
  au, av = np.abs(u), np.abs(v)
  tri = np.max(np.stack([u * np.cos(a) + v * np.sin(a)
                         for a in np.deg2rad([90.0, 210.0, 330.0])]), axis=0)
  sdfs = np.stack([
      1.0 - r,  # disk
      0.85 - np.maximum(au, av),  # square
      0.55 - tri,  # triangle
      0.28 - np.abs(r - 0.72),  # ring
      np.maximum(np.minimum(0.3 - au, 1.0 - av), np.minimum(0.3 - av, 1.0 - au)),
      np.minimum(0.4 - av, 1.0 - au),  # bar
      1.05 - (au + av),  # diamond
      np.minimum(1.0 - r, v + 0.1),  # half disk
      # novel shapes (the far part only)
      0.62 + 0.3 * np.cos(5 * np.arctan2(v, u)) - r,  # star
      np.minimum(1.0 - r, np.sqrt((u - 0.45) ** 2 + v * v) - 0.72),  # crescent
      0.9 - np.maximum(au, np.maximum(np.abs(0.5 * u + 0.866 * v),
                                      np.abs(0.5 * u - 0.866 * v))),  # hexagon
      1.0 - np.sqrt(u * u + (v / 0.5) ** 2),  # ellipse
  ])
  return np.take_along_axis(sdfs, kind[None, :, None, None], axis=0)[0]


def _texture(kind: np.ndarray, u, v, freq, phase) -> np.ndarray:
  """Surface pattern in [0, 1] in the object's frame."""
  f = freq[:, None, None] * 2 * np.pi
  ph = phase[:, None, None]
  soft = lambda x: 0.5 + 0.5 * np.tanh(4.0 * x)
  pats = np.stack([
      np.ones_like(u),
      soft(np.sin(f * v + ph)),
      soft(np.sin(f * u + ph)),
      soft(np.sin(f * u + ph) * np.sin(f * v + ph)),
      soft(np.cos(f * u + ph) * np.cos(f * v + ph) - 0.4),
      soft(np.sin(f * (u + v) * 0.75 + ph)),
      # novel textures (the far part only)
      soft(np.sin(2.2 * f * np.sqrt(u * u + v * v) + ph)),  # rings
      soft(np.sin(f * u + 1.5 * np.sin(1.6 * f * v) + ph)),  # zigzag
      soft(np.maximum(np.cos(1.3 * f * u + ph), np.cos(1.3 * f * v + ph)) - 0.75),
      soft(np.sin(3.1 * f * u + ph) * np.sin(2.7 * f * v + 2 * ph) - 0.3),  # speckle
  ])
  return np.take_along_axis(pats, kind[None, :, None, None], axis=0)[0]


def render(triples: np.ndarray, rng: np.random.Generator, image_size: int) -> np.ndarray:
  """Renders one image per (shape, colour, texture) row: [n, S, S, 3] uint8."""
  n = len(triples)
  size = image_size
  g = (np.arange(size) + 0.5) / size
  y, x = np.meshgrid(g, g, indexing="ij")
  cx, cy = rng.uniform(0.3, 0.7, (2, n))
  radius = rng.uniform(0.2, 0.34, n)
  # Rotations stay small and stripes follow the image axes, so that a square and
  # a diamond, or horizontal and vertical stripes, remain different classes.
  theta = rng.uniform(-np.pi / 7, np.pi / 7, n)
  freq = rng.uniform(1.6, 2.4, n)
  phase = rng.uniform(0, 2 * np.pi, n)
  dx = x[None] - cx[:, None, None]
  dy = y[None] - cy[:, None, None]
  c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
  rr = radius[:, None, None]
  u = (c * dx + s * dy) / rr
  v = (-s * dx + c * dy) / rr
  inside = _shape_sdf(triples[:, 0], u, v) * rr * size  # in pixels
  mask = np.clip(inside + 0.5, 0.0, 1.0)[..., None]
  palette = np.array(list(COLOURS.values()) + list(NOVEL_COLOURS.values()))
  colour = palette[triples[:, 1]] * rng.uniform(0.75, 1.15, (n, 3))
  pattern = _texture(triples[:, 2], dx / rr, dy / rr, freq, phase)[..., None]
  obj = colour[:, None, None, :] * (0.35 + 0.65 * pattern)
  # Background: a random low-saturation colour, a linear shading, blobs of clutter.
  base = rng.uniform(0.15, 0.65, (n, 1, 1, 1)) + rng.uniform(-0.12, 0.12, (n, 1, 1, 3))
  gx, gy = rng.uniform(-0.25, 0.25, (2, n, 1, 1, 1))
  bg = base + gx * (x[None, ..., None] - 0.5) + gy * (y[None, ..., None] - 0.5)
  clutter = np.zeros((n, size, size, 1))
  for _ in range(3):
    bx, by = rng.uniform(0, 1, (2, n, 1, 1))
    br = rng.uniform(0.05, 0.15, (n, 1, 1))
    amp = rng.uniform(-0.2, 0.2, (n, 1, 1))
    d2 = ((x[None] - bx) ** 2 + (y[None] - by) ** 2) / br ** 2
    clutter += (amp * np.exp(-d2))[..., None]
  bg = bg + clutter
  img = bg * (1 - mask) + obj * mask + rng.normal(0, 0.04, (n, size, size, 3))
  return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def generate(config: OfflineConfig, part: str, split: str, *,
             chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """All images and labels of one part and split, shuffled with the seed.

  Returns:
    images [n, S, S, 3] uint8 and labels [n] int64, n = classes x per_class.
  """
  config.validate()
  _check_part(part)
  if split not in SPLITS:
    raise InputError(f"split must be one of {SPLITS}, got {split!r}.")
  triples = class_triples(config, part)
  k = config.num_classes(part)
  pid, sid = PARTS.index(part), SPLITS.index(split)
  labels = np.repeat(np.arange(k), config.per_class(part, split))
  np.random.default_rng([config.seed, pid, sid, 0]).shuffle(labels)
  images = np.empty((labels.size, config.image_size, config.image_size, 3), np.uint8)

  def chunk_at(i: int) -> None:  # each chunk has its own seeded generator
    rng = np.random.default_rng([config.seed, pid, sid, 1, i])
    sl = slice(i * chunk, (i + 1) * chunk)
    images[sl] = render(triples[labels[sl]], rng, config.image_size)

  # NumPy releases the GIL in its array loops: chunks render in parallel
  # threads, each into its own rows, so the images do not depend on the order.
  count = -(-labels.size // chunk)
  with futures.ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, count))) as pool:
    list(pool.map(chunk_at, range(count)))
  return images, labels.astype(np.int64)
