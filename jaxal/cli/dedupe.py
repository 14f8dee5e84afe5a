"""`jaxal dedupe`: the pool's near-duplicates and per-image scores, once per
embedding, in WORKDIR/dedupe/ for the steps after it.

    dedupe/representative.npy      [N] the image kept for each image's group
    dedupe/pairs.npy               [P, 2] the pairs at distance <= threshold
    dedupe/pair_distances.npy      [P] their exact (float64) distances
    dedupe/neighbors.npy           [N, k] each image's nearest others
    dedupe/neighbor_distances.npy  [N, k] their distances
    dedupe/nn_distance.npy, uniqueness.npy, representativeness.npy   [N]
    dedupe/dedupe.json             the settings, the counts, and the
                                   embedding's fingerprint

Rows are pool indices (the embedding's order). The tiles run on every local
device; over several hosts (`--coordinator_address`, as `embed`), each process
computes its share of the tiles (`neighbors.search_part`) into
WORKDIR/dedupe.parts/, and process 0 joins them, memory-mapped
(`neighbors.combine`: the result one process gives) and writes the folder; a
process that fails tells the others (`_agree`), which stop with an error.
`select` reads the folder and never picks two images of a group
(`jaxal.curation.duplicates.candidates`);
to_label.csv gets the three scores as columns. A new embed makes the folder
stale: the steps that read it refuse it by its fingerprint until dedupe runs
again. The folder is written under a temporary name and renamed when whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Optional

import jax
import numpy as np

from jaxal import _array_store as array_store
from jaxal import io
from jaxal.curation import duplicates, neighbors, scores
from jaxal.cli.workdir import Log, Workdir, WorkdirError

FOLDER = "dedupe"
K = scores.REPRESENTATIVENESS_K
SCORES = ("nn_distance", "uniqueness", "representativeness")


def fingerprint(wd: Workdir) -> str:
  """A digest of the embedding: its pool order and shape, and 1,024 of its
  feature rows spread over the pool (a new embed changes it; copying the work
  directory does not)."""
  emb = wd.embedding()
  x, index = emb["features"], np.asarray(emb["index"])
  h = hashlib.sha256()
  h.update(repr((x.shape, str(x.dtype))).encode())
  h.update(np.ascontiguousarray(index, np.int64).tobytes())
  rows = np.unique(np.linspace(0, x.shape[0] - 1, min(1024, x.shape[0])).astype(np.int64))
  h.update(np.ascontiguousarray(x[rows]).tobytes())
  return h.hexdigest()[:16]


def dedupe(wd: Workdir, *, threshold: float, metric: str = "cosine",
           log: Log = print) -> duplicates.Duplicates:
  """Finds the near-duplicates of the embedded pool and writes WORKDIR/dedupe/
  (over several processes: module docstring)."""
  metric = neighbors.check_metric(metric)
  threshold = neighbors.check_threshold(threshold, metric)
  pool = wd.pool()
  if len(pool.paths) < 2:
    raise WorkdirError(f"{wd.path} holds {len(pool.paths)} embedded image(s); "
                       "dedupe compares at least 2.")
  rank, procs = jax.process_index(), jax.process_count()
  if procs == 1:
    found = neighbors.combine([neighbors.search_part(
        pool.features, threshold=threshold, metric=metric, k=K,
        devices=jax.local_devices())])
    return _write(wd, pool, found, log)
  names = _write_part(wd, pool.features, threshold, metric, rank, procs)
  if rank != 0:  # process 0 joins the parts and writes the folder
    if not _agree(True, "written"):
      raise WorkdirError("dedupe: process 0 failed to join the parts (see its "
                         "error); nothing was written.")
    return load(wd).duplicates
  try:
    dup = _write(wd, pool, _join(names), log)
  except BaseException:
    _agree(False, "written")
    raise
  finally:
    shutil.rmtree(wd.file(FOLDER + ".parts"), ignore_errors=True)
  _agree(True, "written")
  return dup


def _write(wd: Workdir, pool, found: neighbors.Neighbors, log: Log
           ) -> duplicates.Duplicates:
  """The groups of `found` and the scores, written to WORKDIR/dedupe/ whole."""
  dup = duplicates.group(pool.features, found)
  groups = dup.groups()
  meta = {"metric": found.metric, "threshold": found.threshold, "k": found.k,
          "embedding": fingerprint(wd), "images": len(pool.paths),
          "pairs": int(len(found.pairs)), "groups": len(groups),
          "removed": dup.removed,
          "representative": "the member nearest its group's mean"}
  path = wd.file(FOLDER)
  recover(path)
  shutil.rmtree(path + ".new", ignore_errors=True)  # whole, but never swapped in
  with array_store.npy_folder(path + ".new") as folder:
    for name, arr in (("representative", dup.representative),
                      ("pairs", found.pairs), ("pair_distances", found.pair_distances),
                      ("neighbors", found.indices),
                      ("neighbor_distances", found.distances),
                      ("nn_distance", scores.nn_distance(found.distances)),
                      ("uniqueness", scores.uniqueness(found.distances)),
                      ("representativeness", scores.representativeness(found.distances))):
      folder.put(name, arr)
    io.write_json(os.path.join(folder.folder, "dedupe.json"), meta)
  swap(path + ".new", path)
  log(f"dedupe: {len(found.pairs)} pair(s) at {found.metric} distance <= "
      f"{found.threshold:g} in {len(groups)} group(s); {dup.removed} of "
      f"{len(pool.paths)} images set aside, one kept per group -> {path}")
  return dup


def _write_part(wd: Workdir, features, threshold: float, metric: str, rank: int,
                procs: int) -> list[str]:
  """This process's part (`neighbors.search_part`) written to
  WORKDIR/dedupe.parts/ as a folder of .npy files (atomically; named by the
  embedding, the settings and the part), then agreed on: returns every
  part's folder once every process wrote its own; raises in every process
  when one failed (it says why; the others do not wait for it)."""
  folder = wd.file(FOLDER + ".parts")
  run = f"{fingerprint(wd)}-{metric}-{threshold!r}"
  names = [os.path.join(folder, f"{run}-{i}-of-{procs}") for i in range(procs)]
  try:
    part = neighbors.search_part(features, threshold=threshold, metric=metric, k=K,
                                 devices=jax.local_devices(), part=(rank, procs))
    shutil.rmtree(names[rank], ignore_errors=True)  # a killed run's: same content
    with array_store.npy_folder(names[rank]) as out:
      for key, arr in part.arrays().items():
        out.put(key, arr)
  except BaseException:
    _agree(False, "parts")
    raise
  if not _agree(True, "parts"):
    raise WorkdirError("dedupe: another process failed (see its error); nothing "
                       "was written.")
  return names


def _join(names: list[str]) -> neighbors.Neighbors:
  """The parts in the folders `names`, read memory-mapped and joined
  (`neighbors.combine`: the result one process gives)."""
  missing = [n for n in names if not os.path.isdir(n)]
  if missing:
    raise WorkdirError(f"dedupe: process 0 cannot see {missing[0]}, written by "
                       "another process: --workdir must be on a disk every process "
                       "shares (as for embed).", field="workdir")
  return neighbors.combine([
      neighbors.Part.from_arrays(array_store.read_npy_folder(n)) for n in names])


def _agree(ok: bool, step: str) -> bool:
  """Whether every process reached `step` without error (each says so: one
  that failed is not waited for by a barrier it never reaches)."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  votes = multihost_utils.process_allgather(np.asarray([int(ok)], np.int32))
  return bool(np.asarray(votes).min())


def recover(path: str) -> None:
  """Puts back `path` from `path`.old when a swap was killed between its two
  renames (so a killed dedupe never reads as "no dedupe")."""
  if not os.path.isdir(path) and os.path.isdir(path + ".old"):
    os.replace(path + ".old", path)


def swap(new: str, path: str) -> None:
  """`new` becomes `path`; an older `path` is removed only after (`recover`
  undoes a swap killed half-way)."""
  old = path + ".old"
  if os.path.isdir(old):
    shutil.rmtree(old)
  if os.path.isdir(path):
    os.replace(path, old)
  os.replace(new, path)
  shutil.rmtree(old, ignore_errors=True)


class Found:
  """What dedupe wrote for this embedding (`load`)."""

  def __init__(self, folder: str, meta: dict):
    self.folder, self.meta = folder, meta
    self._arrays: dict[str, np.ndarray] = {}

  def array(self, name: str) -> np.ndarray:
    """One of the folder's arrays, memory-mapped once."""
    if name not in self._arrays:
      self._arrays[name] = np.load(os.path.join(self.folder, name + ".npy"),
                                   mmap_mode="r")
    return self._arrays[name]

  @property
  def duplicates(self) -> duplicates.Duplicates:
    return duplicates.Duplicates(np.asarray(self.array("representative")))

  def setting(self) -> dict:
    """What a selection records of it (a later dedupe with other settings
    contradicts a selection made before it)."""
    return {"metric": self.meta["metric"], "threshold": self.meta["threshold"],
            "embedding": self.meta["embedding"]}

  def score_text(self, i: int) -> list[str]:
    return [f"{float(self.array(s)[i]):.6g}" for s in SCORES]


def load(wd: Workdir) -> Optional[Found]:
  """WORKDIR/dedupe/ when dedupe ran, else None; WorkdirError when it was run on
  another embedding than the one here now."""
  folder = wd.file(FOLDER)
  recover(folder)
  meta_path = os.path.join(folder, "dedupe.json")
  if not os.path.exists(meta_path):
    return None
  meta = io.read_json(meta_path, {})
  if meta.get("embedding") != fingerprint(wd):
    raise WorkdirError(f"{folder} was made from another embedding than the one in "
                       f"{wd.path} now (embed ran again since); run `jaxal dedupe "
                       f"--workdir={wd.path}` again, or remove that folder.",
                       field="workdir")
  return Found(folder, meta)


def for_selection(wd: Workdir, sel: dict) -> Optional[duplicates.Duplicates]:
  """The groups the selection `sel` (its recorded settings) was made with, or
  None when it was made without dedupe; WorkdirError when the folder changed
  since."""
  if sel.get("dedupe") is None:
    return None
  found = load(wd)
  if found is None or found.setting() != sel["dedupe"]:
    raise WorkdirError(f"{wd.sel_path}'s selection was made with dedupe "
                       f"{sel['dedupe']}, and {wd.file(FOLDER)} now holds "
                       f"{None if found is None else found.setting()}; run dedupe "
                       "again with the recorded settings, or name a new selection "
                       "(--selection=NAME).", field="workdir")
  return found.duplicates


def kept(dup: Optional[duplicates.Duplicates]) -> Optional[np.ndarray]:
  """[N] bool of the images dedupe kept (None without dedupe): what the
  balancing step may pick (`balancing.balanced_select(among=)`)."""
  return None if dup is None else dup.kept
