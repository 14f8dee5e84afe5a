"""Results on disk: plain JSON written atomically, so a crash never corrupts them.

A write goes to a temporary file in the same directory, is flushed to disk, then
renamed over the target (`os.replace` is atomic on POSIX): readers see the old
file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from typing import Any


def write_text(path: str, text: str) -> None:
  """Atomically and durably writes `text` (UTF-8) to `path`: temporary file,
  fsync, rename, fsync of the folder."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  suffix = os.path.splitext(path)[1]
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
  try:
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(folder)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def file_sha256(path: str) -> str:
  """Hex SHA-256 of a file's bytes, read 1 MiB at a time."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _fsync_dir(folder: str) -> None:
  """Makes a rename in `folder` durable (a power cut keeps the new name)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:  # platforms without directory descriptors
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def save_npz(path: str, **arrays) -> None:
  """Atomically writes numpy arrays to `path` (.npz): a temporary name, then a
  rename, so a killed write never leaves a torn file under `path`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}.npz"
  try:
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, obj: Any) -> None:
  """Atomically writes `obj` as indented JSON to `path`."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str, default: Any = None) -> Any:
  """Reads JSON from `path`, or returns `default` when it does not exist."""
  if not os.path.exists(path):
    return default
  with open(path, encoding="utf-8") as f:
    return json.load(f)


@contextlib.contextmanager
def file_lock(path: str):
  """An exclusive advisory lock on file `path` (created with its folder), held
  for the block: other processes taking it wait (shards sharing an M_S, hosts
  generating one dataset)."""
  import fcntl  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def new_directory(path: str, *, tag: str = "writing"):
  """A temporary folder beside `path` for the block to fill, renamed to `path`
  when the block ends without error and removed otherwise, so that a failed or
  killed writer leaves no half-written `path`. `path` must not exist, or be an
  empty directory (replaced)."""
  import shutil  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f"{os.path.basename(path)}.{tag}-", dir=parent)
  try:
    yield tmp
    if os.path.isdir(path):
      os.rmdir(path)  # empty (an OSError otherwise: nothing is lost)
    os.replace(tmp, path)
    _fsync_dir(parent)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
