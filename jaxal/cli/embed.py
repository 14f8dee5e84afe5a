"""`jaxal embed`: M_S over an image folder or a TFDS split (method guide §1).

M_S is a `train_source` run, or weights imported with `jaxal import-source`
(torchvision/timm ResNets, or DINOv2 / SigLIP checkpoint folders: their recorded
preprocessing is applied; an encoder gives features and no probabilities); with
`ensemble`, a trained run's snapshot average (the paper's +ens) gives the
acquisition's features and probabilities while the final model's features feed
the SVM target, as in the experiments. (`embed --features` imports embeddings
computed elsewhere instead: `jaxal.cli.import_features`.) Chunk by chunk, each saved
atomically: a killed run resumes from its last finished chunk; the chunks are
then joined into WORKDIR/embedding, written as a whole (`jaxal._array_store`,
as `import_features` writes it).
"""

from __future__ import annotations

import concurrent.futures
import csv
import io as _io
import os
import time
from typing import Optional

import jax
import numpy as np

from jaxal import _array_store as array_store
from jaxal import io
from jaxal.cli import label_files, pixels
from jaxal.cli.workdir import (ARRAYS, NEW_WORKDIR, Log, Pool, Workdir, WorkdirError,
                                digest)
from jaxal.datasets import images
from jaxal.models import distributed, inference, source


def signals(trained: source.Trained, ensemble: bool, batch: np.ndarray,
            batch_size: int):
  """(features, probs, target features) of one uint8 batch."""
  variables = trained.snapshots if ensemble else [trained.final]
  norm = images.normalizer(trained.preprocess)
  outs = [inference.predict(trained.model, v, batch, batch_size=batch_size,
                            transform=norm) for v in variables]
  feats = sum(f for f, _ in outs) / len(outs)
  probs = sum(p for _, p in outs) / len(outs)
  if not ensemble:
    return feats, probs, feats
  at = trained.final_in_snapshots
  final = outs[at][0] if at is not None else inference.predict(
      trained.model, trained.final, batch, batch_size=batch_size,
      transform=norm)[0]
  return feats, probs, final


def embed(wd: Workdir, *, images_dir: Optional[str], source_dir: str,
          ensemble: bool = False, chunk: int = 256, batch_size: int = 128,
          tfds: Optional[str] = None, data_dir: Optional[str] = None,
          log: Log = print) -> Pool:
  """Runs M_S over every image of `images_dir` (or of the TFDS split `tfds`,
  "NAME:SPLIT"), `chunk` images at a time.

  Each finished chunk is saved atomically under WORKDIR/embed, so a killed run
  resumes from its last finished chunk and gives the same outputs as one
  uninterrupted run. Unreadable images are reported by path and skipped.
  """
  trained = _check_flags(images_dir=images_dir, source_dir=source_dir,
                         ensemble=ensemble, chunk=chunk, batch_size=batch_size,
                         tfds=tfds)
  if tfds:
    paths, chunks = _tfds_chunks(tfds, data_dir, trained.image_size, chunk)
    images_dir = tfds
  else:
    paths, chunks = _folder_chunks(images_dir, trained, chunk)
  rank, procs = jax.process_index(), jax.process_count()
  setup = {"images": tfds or os.path.abspath(images_dir), "tfds": bool(tfds),
           "source": os.path.abspath(source_dir),
           "source_digest": trained.digest, "ensemble": bool(ensemble),
           "image_size": trained.image_size, "chunk": int(chunk),
           "data_dir": data_dir, "paths_digest": digest("\n".join(paths))}
  if trained.preprocess is not None:  # absent for trained sources: their setup
    # stays that of work directories written before imported sources existed
    setup["preprocess"] = trained.preprocess.to_json()
  _record(wd, setup, paths, images_dir, rank)
  distributed.barrier("jaxal-embed-setup")
  store = _chunk_store(wd)
  if wd.embedded():
    log(f"embed: already done ({wd.file('embedding')})")
    store.remove()  # killed while removing the chunks
    return wd.pool()
  starts = range(0, len(paths), chunk)
  done_before = [s for s in starts if store.done(s // chunk)]
  # Multi-host: process r of P embeds chunks r, r + P, ... into the shared folder.
  todo = [s for s in starts if (s // chunk) % procs == rank
          and not store.done(s // chunk)]
  log(f"embed: {len(paths)} images under {images_dir}, {len(done_before)} of "
      f"{len(starts)} chunks already done"
      + (f"; process {rank} of {procs} embeds {len(todo)}" if procs > 1 else "")
      + "; M_S " + _describe(trained, ensemble))
  _embed_chunks(store, chunks(todo), trained, paths, todo, chunk=chunk,
                ensemble=ensemble, batch_size=batch_size, images_dir=images_dir,
                log=log)
  distributed.barrier("jaxal-embed-chunks")
  if rank == 0:
    _consolidate(wd, store, len(paths), chunk, log)
  distributed.barrier("jaxal-embed-done")
  return wd.pool()


def _check_flags(*, images_dir, source_dir, ensemble, chunk, batch_size,
                 tfds) -> source.Trained:
  """M_S of `source_dir`, after refusing flags that cannot work with it."""
  if chunk < 1 or batch_size < 1:
    raise WorkdirError(f"--chunk and --batch must be >= 1, got {chunk} and "
                       f"{batch_size}.")
  if bool(images_dir) == bool(tfds):
    raise WorkdirError("pass exactly one of --images (a folder) and --tfds "
                       "(NAME:SPLIT of a prepared TFDS dataset).")
  try:
    trained = source.load_workdir(source_dir)
  except ValueError as e:
    raise WorkdirError(f"--source: {e}") from None
  if trained.imported and ensemble:
    raise WorkdirError(f"--ensemble: the source {source_dir} holds imported "
                       "weights, one model without training snapshots, so there is "
                       "no snapshot ensemble (+ens) to average; embed without "
                       "--ensemble.")
  if trained.self_supervised and ensemble:
    raise WorkdirError(f"--ensemble: the source {source_dir} is a SimCLR encoder "
                       "(jaxal pretrain): its snapshots' feature spaces are not "
                       "aligned, so there is no ensemble to average; embed without "
                       "--ensemble.")
  if tfds and trained.preprocess is not None:
    raise WorkdirError(f"--tfds with the imported source {source_dir}: its "
                       "torchvision transform is applied to image files only (a "
                       "TFDS split is resized by tf.data); embed the split's images "
                       "as a folder (--images).")
  return trained


def _tfds_chunks(spec: str, data_dir: Optional[str], size: int, chunk: int):
  """(paths, chunks) of a TFDS split: `chunks(starts)` yields (start, uint8
  batch, readable mask, errors) of each chunk, streamed: decoded in parallel,
  prefetched."""
  from_tfds = pixels.tfds_images(spec, data_dir, size)

  def chunks(starts):
    for s, batch in from_tfds.stream(starts, chunk):
      yield s, batch, np.ones(len(batch), bool), {}
  return from_tfds.paths, chunks


def _folder_chunks(images_dir: str, trained: source.Trained, chunk: int):
  """(paths, chunks) of an image folder, as `_tfds_chunks`'; a thread decodes
  the next chunk during this one's M_S."""
  paths = images.scan(images_dir)

  def load(s):
    return images.load_batch(images_dir, paths[s:s + chunk], trained.image_size,
                             preprocess=trained.preprocess)

  def chunks(starts):
    with concurrent.futures.ThreadPoolExecutor(1) as ahead:
      pending = [(s, ahead.submit(load, s)) for s in starts[:1]]
      for k in range(len(starts)):
        s, fut = pending.pop()
        if k + 1 < len(starts):
          pending.append((starts[k + 1], ahead.submit(load, starts[k + 1])))
        yield (s, *fut.result())
  return paths, chunks


def _record(wd: Workdir, setup: dict, paths: list[str], images_dir: str,
            rank: int) -> None:
  """Checks `setup` and `paths` against what `wd` recorded (flags first, saying
  which differs, then the folder's contents) and records them (process 0)."""
  if rank == 0 and wd.recorded("embed") is None and wd.paths() is None and \
      os.path.isdir(wd.path) and os.listdir(wd.path):
    raise WorkdirError(f"--workdir {wd.path} is not empty and holds no jaxal "
                       "embedding; pass a new or empty directory.")
  old = wd.recorded("embed") or {}
  wd.check("embed", {**setup, "paths_digest": old.get("paths_digest")},
           hint=NEW_WORKDIR)
  old_paths = wd.paths()
  if old_paths is not None and old_paths != paths:
    added, gone = len(set(paths) - set(old_paths)), len(set(old_paths) - set(paths))
    raise WorkdirError(f"--images {images_dir}: the folder changed since this work "
                       f"directory embedded it ({added} image(s) added, {gone} "
                       "removed); use a new --workdir for the new pool.")
  if rank == 0:
    os.makedirs(wd.path, exist_ok=True)
    if old_paths is None:
      io.write_text(wd.file("paths.txt"), "\n".join(paths) + "\n")
    wd.record("embed", setup)


def _describe(trained: source.Trained, ensemble: bool) -> str:
  """M_S as the start of a run names it."""
  return (
      f"{'ensemble of ' + str(len(trained.snapshots)) if ensemble else 'final model'}"
      f" at {trained.image_size} px" + (f" ({trained.config['arch']}, imported)"
                                        if trained.imported else "")
      + (" (SimCLR encoder: features, no probabilities)"
         if trained.self_supervised else "")
      + (f" ({trained.config['features']} features, no probabilities)"
         if trained.foundation else ""))


def _chunk_store(wd: Workdir) -> array_store.ChunkStore:
  """WORKDIR/embed: chunk i of the images is chunk_<i>.npz."""
  return array_store.ChunkStore(wd.file("embed"), lambda i: f"chunk_{i:06d}.npz")


def _embed_chunks(store: array_store.ChunkStore, chunks, trained: source.Trained,
                  paths: list[str], todo: list[int], *, chunk: int,
                  ensemble: bool, batch_size: int, images_dir: str,
                  log: Log) -> None:
  """M_S over each chunk of `chunks` (starting at `todo`), each saved in
  `store` as it finishes: readable mask, features, probs, target features and
  the unreadable images' errors."""
  n = len(paths)
  t0, done = time.perf_counter(), 0
  total = sum(len(paths[s:s + chunk]) for s in todo)
  for s, batch, ok, errors in chunks:
    part = paths[s:s + chunk]
    for p, err in errors.items():
      log(f"embed: skipping unreadable image {os.path.join(images_dir, p)} ({err})")
    if ok.any():
      feats, probs, tfeats = signals(trained, ensemble, batch, min(batch_size, chunk))
    else:
      feats = probs = tfeats = np.zeros((0, 0), np.float32)
    store.save(s // chunk, ok=ok, features=feats, probs=probs, target_features=tfeats,
               errors=np.array([f"{p}\t{e}" for p, e in errors.items()], dtype=str))
    done += len(part)
    rate = done / (time.perf_counter() - t0)
    log(f"embed: {s + len(part)}/{n} images, {rate:.1f} images/s, "
        f"{(total - done) / rate:.0f} s left")


def _survey(store: array_store.ChunkStore, count: int):
  """(readable mask of every image, (path, reason) of the unreadable ones,
  {array name: width}) of the `count` chunks in `store`. A self-supervised
  source has no probabilities (width 0): no probs.npy."""
  ok_all, skipped, dims = [], [], None
  for i in range(count):
    z = store.load(i, "ok", "errors")
    ok_all.append(z["ok"])
    skipped += [tuple(e.split("\t", 1)) for e in z["errors"]]
    if dims is None and z["ok"].any():
      widths = store.load(i, *ARRAYS[1:])
      dims = {k: widths[k].shape[1] for k in ARRAYS[1:] if widths[k].shape[1]}
  return np.concatenate(ok_all), skipped, dims


def _consolidate(wd: Workdir, store: array_store.ChunkStore, n_paths: int,
                 chunk: int, log: Log) -> None:
  """Joins the chunks into WORKDIR/embedding/*.npy, one chunk in memory at a
  time (`array_store.npy_folder`: filled through memory maps, renamed when
  complete), writes skipped.csv, then removes the chunks."""
  count = len(range(0, n_paths, chunk))
  ok, skipped, dims = _survey(store, count)
  if not ok.any():
    raise WorkdirError(f"none of the {n_paths} images could be read; see "
                       f"{wd.file('skipped.csv')}.")
  n = int(ok.sum())
  with array_store.npy_folder(wd.file("embedding")) as folder:
    folder.create("index", np.int64, (n,))[:] = np.flatnonzero(ok)
    out = {k: folder.create(k, np.float32, (n, d)) for k, d in dims.items()}
    at = 0
    for i in range(count):  # fill, chunk by chunk
      m = int(ok[i * chunk:(i + 1) * chunk].sum())
      if m:
        z = store.load(i, *out)
        for k in out:
          out[k][at:at + m] = z[k]
      at += m
    io.write_text(wd.file("skipped.csv"), _skipped_csv(skipped))
  store.remove()
  log(f"embed: {n} images embedded, {len(skipped)} unreadable skipped "
      f"(listed in {wd.file('skipped.csv')})")


def _skipped_csv(skipped: list[tuple[str, str]]) -> str:
  """skipped.csv: the unreadable images and why."""
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["path", "reason"])
  w.writerows([label_files.to_cell(p), label_files.to_cell(r)] for p, r in skipped)
  return buf.getvalue()
