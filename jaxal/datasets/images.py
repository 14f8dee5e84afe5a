"""Image folders: find the images under a directory and decode them for M_S.

What the `jaxal` command embeds when a user brings their own unlabeled images
(JPEG or PNG, in nested folders, any sizes, any colour mode). Decoding is Pillow
(no TensorFlow: the GPU machines have none) and follows the evaluation transform
of `jaxal.datasets.pipeline.eval_transform`: an image already at the model's
size is used as is; any other is resized (antialiased) so that its shorter side is
size / 0.875 and centre-cropped to size x size. Greyscale, palette and alpha images
become RGB; the EXIF orientation of camera JPEGs is applied.

A source imported from torchvision or timm weights (`jaxal.models.pretrained`)
records its own evaluation transform instead, a `Preprocess`: torchvision's
`Resize(resize)` of the shorter side, `CenterCrop(crop)` and `Normalize(mean,
std)` on a PIL image, reproduced pixel for pixel (the same Pillow resampling, the
same integer rounding of the resized side and of the crop offset).

An image that cannot be read is reported with its path and reason, never fatal:
`load_batch` returns a mask of what decoded.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Optional, Sequence

import numpy as np

from jaxal.datasets.pipeline import CROP_FRACTION

EXTENSIONS = (".jpg", ".jpeg", ".png")


def scan(root: str) -> list[str]:
  """Paths (relative to `root`, '/'-separated, sorted) of every JPEG or PNG under
  `root`, in nested folders too; hidden files and folders are skipped.

  Raises ValueError when `root` is not a directory or holds no image.
  """
  if not os.path.isdir(root):
    raise ValueError(f"--images {root!r} is not a directory; pass the folder that "
                     "holds the images (JPEG or PNG, nested folders allowed).")
  out = []
  for folder, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    for name in files:
      if not name.startswith(".") and name.lower().endswith(EXTENSIONS):
        rel = os.path.relpath(os.path.join(folder, name), root)
        out.append(rel.replace(os.sep, "/"))
  if not out:
    raise ValueError(f"--images {root!r} holds no image ({', '.join(EXTENSIONS)}, "
                     "searched recursively).")
  return sorted(out)


INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """torchvision's evaluation transform: `Resize(resize, interpolation)`,
  `CenterCrop(crop)`, `ToTensor()`, `Normalize(mean, std)`.

  Attributes:
    resize: the shorter side after resizing (torchvision's int `size`): the
      longer one becomes `int(resize * long / short)`, truncated, as torchvision
      computes it; an image already at that size is not resampled.
    crop: the side of the centre crop, at offsets `int(round((side - crop) /
      2))` (Python's rounding, halves to even, as torchvision's `center_crop`).
    interpolation: Pillow's filter for the resize ("bilinear", "bicubic" or
      "nearest"), antialiased when shrinking as Pillow always does; torchvision
      runs the same Pillow call on PIL images (its tensor path is a different
      implementation and may differ by a grey level).
    mean, std: per channel, on [0, 1] values.
  """
  resize: int
  crop: int
  interpolation: str = "bilinear"
  mean: tuple = IMAGENET_MEAN
  std: tuple = IMAGENET_STD

  def __post_init__(self):
    if int(self.crop) < 1 or int(self.resize) < int(self.crop):
      raise ValueError(f"preprocess: need resize >= crop >= 1, got resize="
                       f"{self.resize}, crop={self.crop}.")
    if self.interpolation not in INTERPOLATIONS:
      raise ValueError(f"preprocess: interpolation must be one of {INTERPOLATIONS}, "
                       f"got {self.interpolation!r}.")
    for name in ("mean", "std"):
      v = tuple(float(x) for x in getattr(self, name))
      if len(v) != 3 or not all(np.isfinite(v)) or (name == "std" and min(v) <= 0):
        raise ValueError(f"preprocess: {name} must be 3 finite numbers"
                         f"{' > 0' if name == 'std' else ''}, got {v}.")
      object.__setattr__(self, name, v)
    object.__setattr__(self, "resize", int(self.resize))
    object.__setattr__(self, "crop", int(self.crop))

  def to_json(self) -> dict:
    """This transform as a JSON-ready dict (`from_json` reads it back)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_json(cls, d: dict) -> "Preprocess":
    """The transform `to_json` wrote."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

  def apply(self, img):
    """The PIL image resized and centre-cropped (uint8 pixels, not normalised)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(self.resize * long / short)
    size = (self.resize, new_long) if w <= h else (new_long, self.resize)
    if size != (w, h):
      img = img.resize(size, getattr(Image.Resampling, self.interpolation.upper()))
    w, h = size
    top = int(round((h - self.crop) / 2.0))
    left = int(round((w - self.crop) / 2.0))
    return img.crop((left, top, left + self.crop, top + self.crop))

  def normalize(self, images: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] -> float32 (x / 255 - mean) / std, in torchvision's order
    of operations."""
    x = np.asarray(images, np.float32) / np.float32(255)
    return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)


def normalizer(preprocess: Optional[Preprocess]):
  """uint8 images -> the model's float input: `preprocess.normalize`, or jaxal's
  own `pipeline.normalize` for a trained source (no recorded transform)."""
  from jaxal.datasets import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.normalize if preprocess is None else preprocess.normalize


def _resize_crop(img, size: int):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  w, h = img.size
  if (w, h) == (size, size):
    return img
  short = int(round(size / CROP_FRACTION))
  scale = short / min(w, h)
  nw, nh = max(short, int(round(w * scale))), max(short, int(round(h * scale)))
  img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
  left, top = (nw - size) // 2, (nh - size) // 2
  return img.crop((left, top, left + size, top + size))


def load(path: str, size: int, preprocess: Optional[Preprocess] = None
         ) -> np.ndarray:
  """uint8 [size, size, 3] of the image at `path`, by `preprocess` when given
  (its crop is then the size), else by jaxal's own evaluation transform.

  Raises OSError or ValueError (Pillow's) when the file is not a readable image.
  """
  from PIL import Image, ImageOps  # pylint: disable=g-import-not-at-top
  with Image.open(path) as img:
    img.load()  # decodes now: a truncated file fails here, not later
    img = ImageOps.exif_transpose(img)
    if img.mode != "RGB":
      img = img.convert("RGBA").convert("RGB") if "transparency" in img.info \
          else img.convert("RGB")
    out = preprocess.apply(img) if preprocess is not None else _resize_crop(img, size)
    return np.asarray(out, np.uint8)


def _try_load(path: str, size: int, preprocess: Optional[Preprocess]):
  try:
    return load(path, size, preprocess), None
  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError... for
  # bad files; whatever one file raises, it is reported and the run goes on.
  except Exception as e:  # noqa: BLE001
    return None, f"{type(e).__name__}: {e}"


def load_batch(root: str, paths: Sequence[str], size: int, *,
               threads: Optional[int] = None,
               preprocess: Optional[Preprocess] = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
  """Decodes `paths` (relative to `root`) in parallel threads (by `preprocess`
  when given, see `load`).

  Returns (images uint8 [n_ok, size, size, 3] in the order of `paths`, ok mask
  [len(paths)] bool, {path: reason} of the images that could not be read).
  """
  threads = threads or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(
        lambda p: _try_load(os.path.join(root, p), size, preprocess), paths))
  ok = np.array([img is not None for img, _ in results], bool)
  errors = {p: err for p, (_, err) in zip(paths, results) if err is not None}
  images = np.stack([img for img, _ in results if img is not None]) if ok.any() \
      else np.zeros((0, size, size, 3), np.uint8)
  return images, ok, errors
