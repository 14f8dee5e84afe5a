"""`jaxal embed --features=FILE`: a work directory from embeddings computed by
any model (CLIP, DINOv2, a timm or Hugging Face model, your own).

The files read, one row per image:

    .npy      [N, D] array, with --paths=FILE (one image path a line, row order)
    .npz      arrays `features` (or `embeddings`), `paths` (strings) and
              optionally `probs`
    .csv      a `path` column (or Lightly's `filenames`), the features in
              columns `embedding_0 .. embedding_{D-1}` (Lightly's custom-embeddings
              layout; a `labels` column is ignored) or else every other column,
              and optionally probabilities in `prob_0 .. prob_{C-1}`
    .parquet  the same columns as the CSV, or one list column `embedding` (or
              `features`); needs pyarrow
    --probs   an [N, C] .npy of class probabilities in the features' row order

Paths are relative to --images (absolute ones inside it are accepted) and must
name images of that folder; every row must be finite and of one width. A
duplicate path, a missing image or a bad row is refused as `FILE:LINE:` (the
CSV's line, or the paths file's), and nothing is written.

The arrays go to the same memory-mapped store as `embed` (WORKDIR/embedding/),
block by block: a 1M x 768 import never holds a second copy in memory. The
features serve both the acquisition and the SVM target. Without probabilities,
the methods that rank by them (the uncertainty functions and their _inv/_div
variants) are refused, naming those that need features alone; the balancing
step, the labeling page, `train --target=svm`, `report` and `--rounds` work
(later rounds take their probabilities from the SVM). There is no model here, so
`predict` and `report --test_images` (which need features of new images) and
`train --target=finetune` are refused with the reason: ACC_t on a labeled test
set is `report --test_features=FILE --test_labels=CSV`, the test images'
embeddings by the same model in any of the formats above (`read_features`; a
.npy with --test_paths=FILE), scored by the SVM target.
"""

from __future__ import annotations

import csv
import os
import zipfile
from typing import Iterator, Optional

import numpy as np

from jaxal import _array_store as array_store
from jaxal import io
from jaxal.cli.label_files import _normalize
from jaxal.cli.workdir import Log, Pool, Workdir, WorkdirError, digest
from jaxal.datasets import images

BLOCK_BYTES = 4 << 20  # float64 rows read, checked and written at a time
_RESULTS = ("paths_digest", "dims", "classes")  # recorded once imported


def _block_rows(width: int) -> int:
  return max(1, BLOCK_BYTES // (8 * max(1, width)))


class _Rows:
  """One feature file: its paths as `names` ((path, where it came from: FILE:LINE),
  in row order) and its array as blocks of rows (`blocks`). Messages name the
  file by `flag` (and the paths file of a .npy by `paths_flag`). One subclass
  a format, chosen by extension in `_READERS`."""

  takes_paths_file = False  # whether the paths come from a separate file

  def __init__(self, path: str, paths_file: Optional[str], *, flag: str,
               paths_flag: str):
    del paths_file, paths_flag  # the formats that carry their paths
    self.path, self.flag = path, flag
    self.names: list[tuple[str, str]] = []

  def blocks(self) -> Iterator[tuple[np.ndarray, Optional[np.ndarray]]]:
    """(float64 features [b, D], probs [b, C] or None) in row order."""
    raise NotImplementedError


class _NpyRows(_Rows):
  """A .npy [N, D] array, with a paths file (one image path a line)."""

  takes_paths_file = True

  def __init__(self, path: str, paths_file: Optional[str], *, flag: str,
               paths_flag: str):
    super().__init__(path, None, flag=flag, paths_flag=paths_flag)
    self._array = _npy(path)
    with open(paths_file, encoding="utf-8-sig") as f:
      names = f.read().splitlines()
    self.names = [(n.strip(), f"{paths_file}:{i + 1}") for i, n in enumerate(names)
                  if n.strip()]
    if len(self.names) != self._array.shape[0]:
      raise WorkdirError(f"{paths_flag} {paths_file}: {len(self.names)} paths for "
                         f"{self._array.shape[0]} rows of {path}.")

  def blocks(self):
    b = _block_rows(self._array.shape[1])
    for s in range(0, self._array.shape[0], b):
      yield np.asarray(self._array[s:s + b], np.float64), None


class _NpzRows(_Rows):
  """An .npz of `features` (or `embeddings`), `paths` and optionally `probs`,
  decompressed as a stream."""

  def __init__(self, path: str, paths_file: Optional[str], *, flag: str,
               paths_flag: str):
    super().__init__(path, paths_file, flag=flag, paths_flag=paths_flag)
    with np.load(path) as z:
      key = next((k for k in ("features", "embeddings") if k in z.files), None)
      if key is None or "paths" not in z.files:
        raise WorkdirError(f"{flag} {path}: an .npz needs arrays 'features' (or "
                           f"'embeddings') and 'paths'; it has {z.files}.")
      self.names = [(str(p), f"{path}:row {i}") for i, p in enumerate(z["paths"])]
      self._keys = {"features": key, "probs": "probs" if "probs" in z.files else None}
    _npz_header(path, key, flag)

  def blocks(self):
    keys = self._keys
    (n, d), _ = _npz_header(self.path, keys["features"], self.flag)
    if len(self.names) != n:
      raise WorkdirError(f"{self.flag} {self.path}: {len(self.names)} paths for "
                         f"{n} rows of '{keys['features']}'.")
    if keys["probs"] and _npz_header(self.path, keys["probs"],
                                     self.flag)[0][0] != n:
      raise WorkdirError(f"{self.flag} {self.path}: 'probs' has other rows than "
                         f"'{keys['features']}'.")
    rows = _block_rows(d)
    probs = (_npz_blocks(self.path, keys["probs"], rows, self.flag)
             if keys["probs"] else None)
    for f in _npz_blocks(self.path, keys["features"], rows, self.flag):
      yield f, None if probs is None else next(probs)


class _Columns(_Rows):
  """A table: a path column, feature columns and `prob_*` columns."""

  def _set_columns(self, header, list_col: Optional[str] = None):
    """The path, feature and probability columns of `header` (features in
    `list_col`, one list a row, when given)."""
    col = self.path_col = _path_column(header, self.path, self.flag)
    self.header = header
    self.probs_cols = [i for i, h in enumerate(header) if h.startswith("prob_")]
    if list_col is not None:
      return
    emb = [i for i, h in enumerate(header) if h.startswith("embedding_")]
    skip = {col, *self.probs_cols} | {i for i, h in enumerate(header)
                                      if h in ("label", "labels")}
    self.feat_cols = emb or [i for i in range(len(header)) if i not in skip]
    if not self.feat_cols:
      raise WorkdirError(f"{self.flag} {self.path}:1: no feature columns besides "
                         f"{header[col]!r}.")


class _CsvRows(_Columns):
  """A CSV: `path` (or Lightly's `filenames`), `embedding_*` (or every other
  column), `prob_*`; a `labels` column is ignored."""

  def __init__(self, path: str, paths_file: Optional[str], *, flag: str,
               paths_flag: str):
    super().__init__(path, paths_file, flag=flag, paths_flag=paths_flag)
    with open(path, newline="", encoding="utf-8-sig") as f:
      header = next(csv.reader(f), None)
      if not header:
        raise WorkdirError(f"{flag} {path}:1: empty file; the first line names the "
                           "columns (path, embedding_0, ...).")
      self._set_columns(header)
      col = self.path_col
      for i, row in enumerate(csv.reader(f)):
        if row:
          self.names.append((row[col] if col < len(row) else "", f"{path}:{i + 2}"))

  def _parse(self, cells, cols, where):
    try:
      return [float(cells[c]) for c in cols]
    except (ValueError, IndexError):
      raise WorkdirError(f"{where}: a value is not a number, or the row has "
                         f"{len(cells)} columns where the header has "
                         f"{len(self.header)}.") from None

  def blocks(self):
    with open(self.path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      next(reader)
      feats, probs, k = [], [], 0
      for row in reader:
        if not row:
          continue
        where = self.names[k][1]
        if len(row) != len(self.header):
          raise WorkdirError(f"{where}: {len(row)} columns where the header has "
                             f"{len(self.header)}.")
        feats.append(self._parse(row, self.feat_cols, where))
        if self.probs_cols:
          probs.append(self._parse(row, self.probs_cols, where))
        k += 1
        if len(feats) == _block_rows(len(self.feat_cols)):
          yield np.asarray(feats), np.asarray(probs) if probs else None
          feats, probs = [], []
      if feats:
        yield np.asarray(feats), np.asarray(probs) if probs else None


class _ParquetRows(_Columns):
  """A Parquet file: the CSV's columns, or one list column `embedding` (or
  `features`); needs pyarrow."""

  def __init__(self, path: str, paths_file: Optional[str], *, flag: str,
               paths_flag: str):
    super().__init__(path, paths_file, flag=flag, paths_flag=paths_flag)
    try:
      import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise WorkdirError(f"{flag} {path}: reading Parquet needs pyarrow "
                         "(pip install pyarrow), or write a .npy/.csv.") from None
    self._pq = pq.ParquetFile(path)
    header = self._pq.schema_arrow.names
    self.list_col = next((h for h in ("embedding", "features") if h in header), None)
    self._set_columns(header, self.list_col)
    paths = self._pq.read(columns=[header[self.path_col]]).column(0).to_pylist()
    self.names = [(str(p), f"{path}:row {i}") for i, p in enumerate(paths)]

  def blocks(self):
    for batch in self._pq.iter_batches(batch_size=1024):
      if self.list_col is not None:
        col = batch.column(batch.schema.get_field_index(self.list_col))
        try:
          f = np.asarray(col.to_pylist(), np.float64)
        except ValueError:
          raise WorkdirError(f"{self.flag} {self.path}: column {self.list_col!r} "
                             "holds lists of different lengths.") from None
      else:
        f = np.stack([batch.column(c).to_numpy(zero_copy_only=False)
                      for c in self.feat_cols], 1).astype(np.float64)
      p = (np.stack([batch.column(c).to_numpy(zero_copy_only=False)
                     for c in self.probs_cols], 1).astype(np.float64)
           if self.probs_cols else None)
      yield f, p


_READERS = {".npy": _NpyRows, ".npz": _NpzRows, ".csv": _CsvRows,
            ".parquet": _ParquetRows}
FORMATS = tuple(_READERS)


def _open_rows(path: str, paths_file: Optional[str], *, flag: str = "--features",
               paths_flag: str = "--paths") -> _Rows:
  """The reader of `path`'s format, after checking that it is a file of a known
  format and that a paths file comes with the formats that need one, only."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in _READERS:
    raise WorkdirError(f"{flag} {path}: unknown format {ext!r}; use one of "
                       f"{', '.join(FORMATS)}.")
  if not os.path.isfile(path):
    raise WorkdirError(f"{flag} {path} is not a file.")
  reader = _READERS[ext]
  if reader.takes_paths_file != bool(paths_file):
    raise WorkdirError(f"{paths_flag} (one image path a line) goes with a .npy "
                       f"{flag} file, and only with it: the other formats "
                       "carry their paths.")
  return reader(path, paths_file, flag=flag, paths_flag=paths_flag)


def _path_column(header, where, flag: str = "--features") -> int:
  for name in ("path", "filenames", "filename"):
    if name in header:
      return header.index(name)
  raise WorkdirError(f"{flag} {where}:1: no 'path' column (or Lightly's "
                     f"'filenames'); columns: {header[:5]}...")


def _npy(path: str) -> np.ndarray:
  try:
    a = np.load(path, mmap_mode="r")
  except (ValueError, OSError) as e:
    raise WorkdirError(f"{path}: not a readable .npy file ({e}).") from None
  if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
    raise WorkdirError(f"{path}: expected a 2-d numeric array [N, D], found "
                       f"{a.dtype} {a.shape}.")
  return a


def _read_header(f, path: str, key: str, flag: str = "--features"):
  """(shape, dtype) of the .npy stream `f`, left at its first data byte."""
  version = np.lib.format.read_magic(f)
  read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
          else np.lib.format.read_array_header_2_0)
  shape, fortran, dtype = read(f)
  if len(shape) != 2 or fortran or not np.issubdtype(dtype, np.number):
    raise WorkdirError(f"{flag} {path}: '{key}' must be a 2-d numeric C-order "
                       f"array, found {dtype} {shape}.")
  return shape, dtype


def _npz_header(path: str, key: str, flag: str = "--features"):
  with zipfile.ZipFile(path) as zf, zf.open(key + ".npy") as f:
    return _read_header(f, path, key, flag)


def _npz_blocks(path: str, key: str, rows: int,
                flag: str = "--features") -> Iterator[np.ndarray]:
  """Rows of an .npz member, `rows` at a time, decompressed as a stream."""
  with zipfile.ZipFile(path) as zf, zf.open(key + ".npy") as f:
    (n, d), dtype = _read_header(f, path, key, flag)
    for s in range(0, n, rows):
      m = min(rows, n - s)
      buf = f.read(m * d * dtype.itemsize)
      if len(buf) != m * d * dtype.itemsize:
        raise WorkdirError(f"{flag} {path}: '{key}' is truncated.")
      yield np.frombuffer(buf, dtype).reshape(m, d).astype(np.float64)


def _check_paths(rows: _Rows, images_dir: Optional[str]) -> list[str]:
  """The rows' paths (relative to `images_dir` when given), refusing empty and
  duplicate paths and, with `images_dir`, paths that name no image of the
  folder (by FILE:LINE)."""
  known = set(images.scan(images_dir)) if images_dir else None
  root = os.path.abspath(images_dir) if images_dir else None
  out, seen = [], {}
  for raw, where in rows.names:
    p = _normalize(raw.strip(), root)
    if not p:
      raise WorkdirError(f"{where}: empty path.")
    if p in seen:
      raise WorkdirError(f"{where}: {p!r} is a duplicate of {seen[p]}.")
    if known is not None and p not in known:
      raise WorkdirError(f"{where}: {p!r} is not an image under --images "
                         f"{images_dir} (JPEG or PNG).")
    seen[p] = where
    out.append(p)
  if not out:
    raise WorkdirError(f"{rows.flag} {rows.path} holds no row.")
  return out


def read_features(path: str, paths_file: Optional[str] = None, *,
                  flag: str = "--features", paths_flag: str = "--paths"
                  ) -> tuple[list[str], np.ndarray]:
  """(paths, float32 features [N, D]) of a feature file in any format above,
  for images outside the work directory (`report --test_features`).

  The file's checks are `embed --features`' (its paths file with a .npy, one
  width, finite rows), and an empty or duplicate path is refused, each as
  `FILE:LINE:`; messages name the file by `flag` and `paths_flag`. Paths are
  kept as written (backslashes made "/"); probabilities in the file are
  ignored. The array is the features as the work directory stores them
  (float32), filled block by block.
  """
  rows = _open_rows(path, paths_file, flag=flag, paths_flag=paths_flag)
  paths = _check_paths(rows, None)
  out, at = None, 0
  for f, _ in rows.blocks():
    if out is None:
      out = np.empty((len(paths), f.shape[1]), np.float32)
    if f.shape[1] != out.shape[1]:
      raise WorkdirError(f"{rows.names[at][1]}: {f.shape[1]} features where the "
                         f"rows before have {out.shape[1]}.")
    bad = np.flatnonzero(~np.isfinite(f).all(1))
    if bad.size:
      raise WorkdirError(f"{rows.names[at + bad[0]][1]}: features not finite.")
    out[at:at + len(f)] = f
    at += len(f)
  return paths, out


def import_features(wd: Workdir, *, features: str, images_dir: str,
                    paths_file: Optional[str] = None, probs: Optional[str] = None,
                    log: Log = print) -> Pool:
  """Fills `wd`'s embedding from a feature file (see the module docstring);
  returns the pool. Rerunning with the same files finds it done."""
  if not images_dir:
    raise WorkdirError("--images is required with --features: the folder the "
                       "rows' paths are relative to (the labeling page shows its "
                       "images).")
  def file_digest(path):
    return io.file_sha256(path)[:16] if path and os.path.isfile(path) else None
  setup = {"images": os.path.abspath(images_dir), "tfds": False, "source": None,
           "features": os.path.abspath(features),
           "features_digest": file_digest(features),
           "probs": os.path.abspath(probs) if probs else None,
           "probs_digest": file_digest(probs)}
  old = wd.recorded("embed")
  if old is not None:
    wd.check("embed", {**setup, **{k: old.get(k) for k in _RESULTS}},
             hint="Use a new --workdir for other features.")
    if wd.embedded():
      log(f"embed: already done ({wd.file('embedding')})")
      return wd.pool()
  elif os.path.isdir(wd.path) and os.listdir(wd.path):
    raise WorkdirError(f"--workdir {wd.path} is not empty and holds no jaxal "
                       "embedding; pass a new or empty directory.")
  rows = _open_rows(features, paths_file)
  paths = _check_paths(rows, images_dir)
  n = len(paths)
  extra = _npy(probs) if probs else None
  if extra is not None and extra.shape[0] != n:
    raise WorkdirError(f"--probs {probs}: {extra.shape[0]} rows for the {n} rows "
                       f"of {features}.")
  os.makedirs(wd.path, exist_ok=True)
  try:
    with array_store.npy_folder(wd.file("embedding")) as folder:
      pool_arrays = _write(rows, extra, probs, n, folder)
      io.write_text(wd.file("paths.txt"), "\n".join(paths) + "\n")
      io.write_text(wd.file("skipped.csv"), "path,reason\n")
      wd.record("embed", {**setup, "paths_digest": digest("\n".join(paths)),
                          **pool_arrays})
  except BaseException:
    if not os.listdir(wd.path):
      os.rmdir(wd.path)
    raise
  log(f"embed: {n} images' features imported from {features} "
      f"({pool_arrays['dims']} dimensions"
      + (f", probabilities over {pool_arrays['classes']} classes" if
         pool_arrays["classes"] else ", no probabilities") + ")")
  return wd.pool()


def _write(rows: _Rows, extra: Optional[np.ndarray], probs_path: Optional[str],
           n: int, folder: array_store.NpyFolder) -> dict:
  """Checks and writes features/probs/index .npy into `folder`, block by
  block; returns {"dims": features' width, "classes": probs' width or 0}."""
  out: dict[str, np.ndarray] = {}
  at = 0
  for f, p in rows.blocks():
    if extra is not None:
      p = np.asarray(extra[at:at + len(f)], np.float64)
    if not out:
      out["features"] = folder.create("features", np.float32, (n, f.shape[1]))
      if p is not None:
        out["probs"] = folder.create("probs", np.float32, (n, p.shape[1]))
    for name, a in (("features", f), ("probs", p)):
      if a is not None:
        _check_block(rows, name, a, at, probs_path)
        out[name][at:at + len(a)] = a
    at += len(f)
  folder.create("index", np.int64, (n,))[:] = np.arange(n)
  return {"dims": int(out["features"].shape[1]),
          "classes": int(out["probs"].shape[1]) if "probs" in out else 0}


def _check_block(rows: _Rows, name: str, a: np.ndarray, at: int,
                 probs_path: Optional[str]) -> None:
  """Refuses a block of features or probabilities (rows from `at`) holding a
  value that is not finite, or probabilities that are not a softmax's, naming
  the row by FILE:LINE."""
  bad = np.flatnonzero(~np.isfinite(a).all(1))
  if bad.size:
    where = (rows.names[at + bad[0]][1] if name == "features"
             else f"{probs_path or rows.path}:row {at + bad[0]}")
    raise WorkdirError(f"{where}: {name} not finite.")
  if name != "probs":
    return
  off = (a < 0).any(1) | (np.abs(a.sum(1) - 1) > 1e-3)
  if off.any():
    k = int(np.flatnonzero(off)[0])
    raise WorkdirError(f"{probs_path or rows.names[at + k][1]}: row {at + k}'s "
                       "probabilities are negative or do not sum to 1; pass "
                       "softmax outputs.")
