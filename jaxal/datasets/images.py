"""Image folders: find the images under a directory and decode them for M_S.

What the `jaxal` command embeds when a user brings their own unlabeled images
(JPEG or PNG, in nested folders, any sizes, any colour mode). Decoding is Pillow
(no TensorFlow: the GPU machines have none) and follows the evaluation transform
of `jaxal.datasets.pipeline.eval_transform`: an image already at the model's
size is used as is; any other is resized (antialiased) so that its shorter side is
size / 0.875 and centre-cropped to size x size. Greyscale, palette and alpha images
become RGB; the EXIF orientation of camera JPEGs is applied.

An image that cannot be read is reported with its path and reason, never fatal:
`load_batch` returns a mask of what decoded.
"""

from __future__ import annotations

import concurrent.futures
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


def load(path: str, size: int) -> np.ndarray:
  """uint8 [size, size, 3] of the image at `path`.

  Raises OSError or ValueError (Pillow's) when the file is not a readable image.
  """
  from PIL import Image, ImageOps  # pylint: disable=g-import-not-at-top
  with Image.open(path) as img:
    img.load()  # decodes now: a truncated file fails here, not later
    img = ImageOps.exif_transpose(img)
    if img.mode != "RGB":
      img = img.convert("RGBA").convert("RGB") if "transparency" in img.info \
          else img.convert("RGB")
    return np.asarray(_resize_crop(img, size), np.uint8)


def _try_load(path: str, size: int):
  try:
    return load(path, size), None
  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError... for
  # bad files; whatever one file raises, it is reported and the run goes on.
  except Exception as e:  # noqa: BLE001
    return None, f"{type(e).__name__}: {e}"


def load_batch(root: str, paths: Sequence[str], size: int, *,
               threads: Optional[int] = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
  """Decodes `paths` (relative to `root`) in parallel threads.

  Returns (images uint8 [n_ok, size, size, 3] in the order of `paths`, ok mask
  [len(paths)] bool, {path: reason} of the images that could not be read).
  """
  threads = threads or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(lambda p: _try_load(os.path.join(root, p), size), paths))
  ok = np.array([img is not None for img, _ in results], bool)
  errors = {p: err for p, (_, err) in zip(paths, results) if err is not None}
  images = np.stack([img for img, _ in results if img is not None]) if ok.any() \
      else np.zeros((0, size, size, 3), np.uint8)
  return images, ok, errors
