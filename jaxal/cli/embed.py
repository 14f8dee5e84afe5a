"""`jaxal embed`: M_S over an image folder or a TFDS split (method guide §1).

M_S is a `train_source` run, or weights imported with `jaxal import-source`
(torchvision/timm ResNets, or DINOv2 / SigLIP checkpoint folders: their recorded
preprocessing is applied; an encoder gives features and no probabilities); with
`ensemble`, a trained run's snapshot average (the paper's +ens) gives the
acquisition's features and probabilities while the final model's features feed
the SVM target, as in the experiments. (`embed --features` imports embeddings
computed elsewhere instead: `jaxal.cli.import_features`.) Chunk by chunk, each saved
atomically: a killed run resumes from its last finished chunk.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io as _io
import os
import shutil
import time
from typing import Optional

import jax
import numpy as np

from jaxal import io
from jaxal.cli import labels, pixels
from jaxal.cli.workdir import (ARRAYS, NEW_WORKDIR, Log, Pool, Workdir, WorkdirError,
                                digest)
from jaxal.datasets import images
from jaxal.models import distributed, inference, source


def _signals(trained: source.Trained, ensemble: bool, batch: np.ndarray,
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
  size, prep = trained.image_size, trained.preprocess
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
  if tfds and prep is not None:
    raise WorkdirError(f"--tfds with the imported source {source_dir}: its "
                       "torchvision transform is applied to image files only (a "
                       "TFDS split is resized by tf.data); embed the split's images "
                       "as a folder (--images).")
  if tfds:
    from_tfds = pixels.tfds_images(tfds, data_dir, size)
    paths, images_dir = from_tfds.paths, tfds

    def chunks(starts):  # streamed: decoded in parallel, prefetched
      for s, batch in from_tfds.stream(starts, chunk):
        yield s, batch, np.ones(len(batch), bool), {}
  else:
    paths = images.scan(images_dir)

    def load(s):
      return images.load_batch(images_dir, paths[s:s + chunk], size,
                               preprocess=prep)

    def chunks(starts):  # a thread pool decodes the next chunk during this one's M_S
      with concurrent.futures.ThreadPoolExecutor(1) as ahead:
        pending = [(s, ahead.submit(load, s)) for s in starts[:1]]
        for k in range(len(starts)):
          s, fut = pending.pop()
          if k + 1 < len(starts):
            pending.append((starts[k + 1], ahead.submit(load, starts[k + 1])))
          yield (s, *fut.result())
  rank, procs = jax.process_index(), jax.process_count()
  if rank == 0 and wd.recorded("embed") is None and wd.paths() is None and \
      os.path.isdir(wd.path) and os.listdir(wd.path):
    raise WorkdirError(f"--workdir {wd.path} is not empty and holds no jaxal "
                       "embedding; pass a new or empty directory.")
  setup = {"images": tfds or os.path.abspath(images_dir), "tfds": bool(tfds),
           "source": os.path.abspath(source_dir),
           "source_digest": trained.digest, "ensemble": bool(ensemble),
           "image_size": size, "chunk": int(chunk), "data_dir": data_dir,
           "paths_digest": digest("\n".join(paths))}
  if prep is not None:  # absent for trained sources, as work directories always were
    setup["preprocess"] = prep.to_json()
  old = wd.recorded("embed") or {}
  # Flags first (saying which differs), then the folder's contents.
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
  distributed.barrier("jaxal-embed-setup")
  if wd.embedded():
    log(f"embed: already done ({wd.file('embedding')})")
    if os.path.isdir(wd.file("embed")):  # killed while removing the chunks
      shutil.rmtree(wd.file("embed"))
    return wd.pool()

  n = len(paths)
  starts = range(0, n, chunk)
  done_before = [s for s in starts if os.path.exists(_chunk_path(wd, s // chunk))]
  # Multi-host: process r of P embeds chunks r, r + P, ... into the shared folder.
  todo = [s for s in starts if (s // chunk) % procs == rank
          and not os.path.exists(_chunk_path(wd, s // chunk))]
  log(f"embed: {n} images under {images_dir}, {len(done_before)} of "
      f"{len(starts)} chunks already done"
      + (f"; process {rank} of {procs} embeds {len(todo)}" if procs > 1 else "")
      + "; M_S "
      f"{'ensemble of ' + str(len(trained.snapshots)) if ensemble else 'final model'}"
      f" at {size} px" + (f" ({trained.config['arch']}, imported)"
                          if trained.imported else "")
      + (" (SimCLR encoder: features, no probabilities)"
         if trained.self_supervised else "")
      + (f" ({trained.config['features']} features, no probabilities)"
         if trained.foundation else ""))
  t0, done = time.perf_counter(), 0
  total = sum(len(paths[s:s + chunk]) for s in todo)
  for s, batch, ok, errors in chunks(todo):
    part = paths[s:s + chunk]
    for p, err in errors.items():
      log(f"embed: skipping unreadable image {os.path.join(images_dir, p)} ({err})")
    if ok.any():
      feats, probs, tfeats = _signals(trained, ensemble, batch, min(batch_size, chunk))
    else:
      feats = probs = tfeats = np.zeros((0, 0), np.float32)
    io.save_npz(_chunk_path(wd, s // chunk), ok=ok, features=feats, probs=probs,
                target_features=tfeats,
                errors=np.array([f"{p}\t{e}" for p, e in errors.items()], dtype=str))
    done += len(part)
    rate = done / (time.perf_counter() - t0)
    log(f"embed: {s + len(part)}/{n} images, {rate:.1f} images/s, "
        f"{(total - done) / rate:.0f} s left")
  distributed.barrier("jaxal-embed-chunks")
  if rank == 0:
    _consolidate(wd, paths, chunk, log)
  distributed.barrier("jaxal-embed-done")
  return wd.pool()


def _chunk_path(wd: Workdir, i: int) -> str:
  return wd.file("embed", f"chunk_{i:06d}.npz")


def _consolidate(wd: Workdir, paths: list[str], chunk: int, log: Log) -> Pool:
  """Joins the chunks into WORKDIR/embedding/*.npy, one chunk in memory at a
  time (the arrays are filled through memory maps), then removes the chunks.
  The folder is written under a temporary name and renamed when complete."""
  starts = range(0, len(paths), chunk)
  ok_all, skipped, dims = [], [], None
  for i, _ in enumerate(starts):  # pass 1: which images, and the arrays' widths
    with np.load(_chunk_path(wd, i)) as z:
      ok_all.append(z["ok"])
      skipped += [tuple(e.split("\t", 1)) for e in z["errors"]]
      if dims is None and z["ok"].any():
        # A self-supervised source has no probabilities (width 0): no probs.npy.
        dims = {k: z[k].shape[1] for k in ARRAYS[1:] if z[k].shape[1]}
  ok = np.concatenate(ok_all)
  if not ok.any():
    raise WorkdirError(f"none of the {len(paths)} images could be read; see "
                       f"{wd.file('skipped.csv')}.")
  tmp = wd.file("embedding") + ".tmp"
  if os.path.isdir(tmp):  # a killed consolidation: start it again
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  n = int(ok.sum())
  index = np.lib.format.open_memmap(os.path.join(tmp, "index.npy"), mode="w+",
                                    dtype=np.int64, shape=(n,))
  index[:] = np.flatnonzero(ok)
  out = {k: np.lib.format.open_memmap(os.path.join(tmp, k + ".npy"), mode="w+",
                                      dtype=np.float32, shape=(n, d))
         for k, d in dims.items()}
  at = 0
  for i, _ in enumerate(starts):  # pass 2: fill, chunk by chunk
    with np.load(_chunk_path(wd, i)) as z:
      m = int(z["ok"].sum())
      for k in out:
        if m:
          out[k][at:at + m] = z[k]
    at += m
  for a in (index, *out.values()):
    a.flush()
  del index, out
  for name in os.listdir(tmp):
    with open(os.path.join(tmp, name), "rb") as f:
      os.fsync(f.fileno())
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["path", "reason"])
  w.writerows([labels.to_cell(p), labels.to_cell(r)] for p, r in skipped)
  io.write_text(wd.file("skipped.csv"), buf.getvalue())
  os.replace(tmp, wd.file("embedding"))
  for i in range(len(ok_all)):
    os.remove(_chunk_path(wd, i))
  for name in os.listdir(wd.file("embed")):  # temporaries of killed writes
    os.remove(wd.file("embed", name))
  os.rmdir(wd.file("embed"))
  log(f"embed: {n} images embedded, {len(skipped)} unreadable skipped "
      f"(listed in {wd.file('skipped.csv')})")
  return wd.pool()
