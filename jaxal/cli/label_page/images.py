"""The pool's images as the labeling page gets them: a file of the embedded
folder, checked to lie inside it, or, for a pool embedded from a TFDS split,
PNG bytes encoded from the split's pixels and cached a batch at a time.
"""

from __future__ import annotations

import io as _io
import mimetypes
import os
import threading
from typing import Callable, Iterable, Sequence

import numpy as np


class NotAnImage(LookupError):
  """A request for something that is not an image of the pool (a 404)."""


def folder_image(real_root: str, path: str) -> tuple[str, str]:
  """(real path, MIME type) of pool image `path` of the folder `real_root`
  (itself a real path: symlinks resolved).

  Raises:
    NotAnImage: the real path (symlinks resolved) lies outside `real_root`, is
      not a file, or is not an image by its name.
  """
  full = os.path.realpath(os.path.join(real_root, path))
  if os.path.commonpath([full, real_root]) != real_root or not os.path.isfile(full):
    raise NotAnImage("not an image of this work directory")
  kind = mimetypes.guess_type(full)[0] or "application/octet-stream"
  if not kind.startswith("image/"):
    raise NotAnImage("not an image")
  return full, kind


def png_bytes(pixels: np.ndarray) -> bytes:
  """An image's pixels ([H, W] or [H, W, C] uint8) as a PNG file."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buf = _io.BytesIO()
  Image.fromarray(pixels).save(buf, format="PNG")
  return buf.getvalue()


class PngCache:
  """A TFDS pool's images as PNG, read a batch at a time.

  A split has no random access (each read is a pass over its records), so a
  miss reads the whole current batch in one pass and keeps it until the next
  miss; a path outside the current batch is read alone. Thread-safe: one lock
  around each lookup, so concurrent requests for one batch make one pass.

  Args:
    load: pool paths -> their pixels, in order (one pass over the split).
    batch: the current batch's pool paths (empty between batches).
  """

  def __init__(self, load: Callable[[list[str]], Iterable[np.ndarray]],
               batch: Callable[[], Sequence[str]]):
    self._load, self._batch = load, batch
    self._lock = threading.Lock()
    self._png: dict[str, bytes] = {}

  def get(self, path: str) -> bytes:
    """Pool image `path` as PNG bytes."""
    with self._lock:
      if path not in self._png:
        batch = list(self._batch())
        want = batch if path in batch else [path]
        self._png.clear()
        for p, arr in zip(want, self._load(want)):
          self._png[p] = png_bytes(arr)
      return self._png[path]
