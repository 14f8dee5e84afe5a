"""Seeded torchvision-layout ResNet weights and test images, from numpy alone.

`make_pretrained.py` (needs torch and torchvision) loads these weights into
torchvision's own models and records their outputs in tests/data/pretrained/;
`tests/models/test_pretrained.py` regenerates the same weights here, without
torch, converts them with jaxal and compares. Every array is drawn from its own
key's seed, so the weights do not depend on the order keys are listed in.

BatchNorm parameters and statistics are drawn away from torchvision's initial
1/0/0/1 (scale in [0.5, 1.5], bias and running mean ~ N(0, 0.2), running variance
in [0.5, 2]) so that a swapped or ignored statistic changes the outputs; the
convolutions are scaled so that activations stay O(1) through ResNet-50.
"""

import zlib

import numpy as np

SEED = 20261202
ARCHS = ("resnet18", "resnet50")
# (height, width) of the two images the models see: square, and odd non-square
MODEL_IMAGES = ((224, 224), (301, 257))
# (height, width, resize, crop, interpolation) of the preprocessing cases: odd
# sizes, both orientations, crop offsets at .5 (rounded half to even)
PREPROCESS_CASES = ((37, 53, 35, 32, "bilinear"), (53, 37, 35, 32, "bilinear"),
                    (33, 101, 33, 32, "bicubic"), (64, 64, 35, 32, "bilinear"),
                    (35, 36, 35, 32, "nearest"), (300, 199, 256, 224, "bilinear"),
                    (301, 257, 232, 224, "bilinear"))


def _rng(*parts) -> np.random.Generator:
  return np.random.default_rng([SEED, zlib.crc32(repr(parts).encode())])


def weight(arch: str, key: str, shape) -> np.ndarray:
  """The seeded float32 array of `key` (int64 for num_batches_tracked)."""
  shape = tuple(shape)
  if key.endswith("num_batches_tracked"):
    return np.asarray(12345, np.int64).reshape(shape)
  r = _rng(arch, key)
  leaf = key.rsplit(".", 1)[1]
  if len(shape) == 4:  # conv [out, in, kh, kw]
    fan_in = shape[1] * shape[2] * shape[3]
    return (r.standard_normal(shape) * np.sqrt(1.0 / fan_in)).astype(np.float32)
  if key == "fc.weight":
    return (r.standard_normal(shape) * np.sqrt(1.0 / shape[1])).astype(np.float32)
  if leaf == "weight":  # BatchNorm scale
    return r.uniform(0.5, 1.5, shape).astype(np.float32)
  if leaf == "running_var":
    return r.uniform(0.5, 2.0, shape).astype(np.float32)
  return (r.standard_normal(shape) * 0.2).astype(np.float32)  # biases, means


def state_dict(arch: str, layout: dict) -> dict:
  """{key: array} for `layout` ({key: shape}, torchvision's state_dict order)."""
  return {k: weight(arch, k, s) for k, s in layout.items()}


def image(height: int, width: int) -> np.ndarray:
  """A seeded uint8 [height, width, 3] picture: smooth gradients, a few discs
  and noise, so that resampling filters have edges and texture to differ on."""
  r = _rng("image", height, width)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  out = np.stack([x / width * 255, y / height * 255,
                  (x + y) / (width + height) * 255], -1)
  for _ in range(4):
    cy, cx, rad = r.uniform(0, height), r.uniform(0, width), r.uniform(4, 40)
    out[(y - cy) ** 2 + (x - cx) ** 2 < rad ** 2] = r.uniform(0, 255, 3)
  out += r.normal(0, 12, out.shape)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)
