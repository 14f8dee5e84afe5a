"""Arrays on disk, written so that a killed writer leaves nothing torn.

- `ChunkStore`: a folder of .npz chunks of a long computation, each saved
  atomically as it finishes (`io.save_npz`), so that a rerun finds which chunks
  are done and computes only the others (`jaxal embed`'s chunks, the
  experiments' cached outputs).
- `npy_folder`: a folder of .npy arrays filled through memory maps under a
  temporary name, flushed and fsynced, then renamed into place: readers see the
  whole folder or none (`jaxal embed`'s WORKDIR/embedding, from its chunks or
  from imported features; dedupe's folder and its parts; the pool's map), read
  back memory-mapped by `read_npy_folder`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Callable, Iterator, Sequence

import numpy as np

from jaxal import io


class ChunkStore:
  """Chunks of arrays under `folder`, one .npz a chunk, named by `name(key)`."""

  def __init__(self, folder: str, name: Callable[[int], str]):
    self.folder, self._name = folder, name

  def path(self, key: int) -> str:
    """The file of chunk `key`."""
    return os.path.join(self.folder, self._name(key))

  def done(self, key: int) -> bool:
    """Whether chunk `key` was saved (a saved chunk is always whole)."""
    return os.path.exists(self.path(key))

  def save(self, key: int, **arrays: np.ndarray) -> None:
    """Saves chunk `key` atomically (the folder is created when needed)."""
    io.save_npz(self.path(key), **arrays)

  def load(self, key: int, *names: str) -> dict[str, np.ndarray]:
    """The arrays `names` (all when none are named) of chunk `key`, read into
    memory."""
    with np.load(self.path(key)) as z:
      return {k: z[k] for k in (names or z.files)}

  def remove(self) -> None:
    """Removes the folder with every chunk (and any temporary of a killed save)."""
    shutil.rmtree(self.folder, ignore_errors=True)


class NpyFolder:
  """The arrays being written into a folder (see `npy_folder`)."""

  def __init__(self, folder: str):
    self.folder = folder
    self.arrays: dict[str, np.memmap] = {}

  def create(self, name: str, dtype, shape: Sequence[int]) -> np.memmap:
    """A new array `name`.npy of `dtype` and `shape`, memory-mapped for writing."""
    a = np.lib.format.open_memmap(os.path.join(self.folder, name + ".npy"),
                                  mode="w+", dtype=dtype, shape=tuple(shape))
    self.arrays[name] = a
    return a

  def put(self, name: str, arr: np.ndarray) -> None:
    """`arr` written whole as `name`.npy."""
    self.create(name, arr.dtype, arr.shape)[...] = arr

  def _sync(self) -> None:
    """Flushes the maps, closes them and fsyncs every file of the folder."""
    for a in self.arrays.values():
      a.flush()
    self.arrays.clear()
    for name in sorted(os.listdir(self.folder)):
      with open(os.path.join(self.folder, name), "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def npy_folder(path: str) -> Iterator[NpyFolder]:
  """A folder of .npy arrays at `path`, written atomically.

  The block fills a `NpyFolder` created under `path` + ".tmp" (one left by a
  killed writer is removed first: the name is fixed so that a rerun finds it);
  when the block ends without error the arrays are flushed and fsynced and the
  folder renamed to `path`. On an error the temporary folder is removed and
  `path` is untouched.
  """
  tmp = path + ".tmp"
  if os.path.isdir(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  out = NpyFolder(tmp)
  try:
    yield out
    out._sync()  # pylint: disable=protected-access
  except BaseException:
    out.arrays.clear()
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  os.replace(tmp, path)


def read_npy_folder(path: str) -> dict[str, np.ndarray]:
  """Every array of a folder `npy_folder` wrote, by name, memory-mapped
  read-only (read from disk when used)."""
  return {f[:-4]: np.load(os.path.join(path, f), mmap_mode="r")
          for f in sorted(os.listdir(path)) if f.endswith(".npy")}
