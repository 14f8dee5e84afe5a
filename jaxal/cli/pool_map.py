"""The pool on one page, for `jaxal report`: its map and, after `jaxal dedupe`,
the histogram of nearest-neighbour distances to choose a threshold by.

    map/pca.npy    [N, 2] the pool's PCA coordinates (`jaxal.curation.projection`;
                   umap.npy, pacmap.npy by those, where asked for),
    map/map.json   computed once per embedding (its fingerprint, as dedupe's)

The map draws every image (density shading in grey beyond `DENSITY_FROM`
images, so a million points stay one readable PNG), the images dedupe set
aside as light crosses, the labeled ones coloured by class, and the images
offered and not yet labeled (the current selection) as black rings.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

import numpy as np

from jaxal import _array_store as array_store
from jaxal import _plotting, io
from jaxal.cli import dedupe
from jaxal.cli.workdir import Workdir
from jaxal.curation import duplicates, projection

FOLDER = "map"
DENSITY_FROM = 20000  # images: grey hexagonal density instead of points


def coordinates(wd: Workdir, method: str = "pca") -> np.ndarray:
  """[N, 2] coordinates of the embedded pool by `method` (`projection.project`,
  seed 0), from WORKDIR/map when made from this embedding, else computed and
  saved there beside the other projections already made."""
  folder = wd.file(FOLDER)
  dedupe.recover(folder)
  stamp = dedupe.fingerprint(wd)
  meta = io.read_json(os.path.join(folder, "map.json"), {})
  have = meta.get("projections", ["pca"] if "projection" in meta else []) \
      if meta.get("embedding") == stamp else []
  if method in have and os.path.exists(os.path.join(folder, method + ".npy")):
    return np.load(os.path.join(folder, method + ".npy"))
  xy = projection.project(wd.pool().features, method, seed=0)
  kept = {m: np.load(os.path.join(folder, m + ".npy")) for m in have
          if m != method and os.path.exists(os.path.join(folder, m + ".npy"))}
  shutil.rmtree(folder + ".new", ignore_errors=True)  # whole, never swapped in
  with array_store.npy_folder(folder + ".new") as out:
    for name, arr in {**kept, method: xy}.items():
      out.put(name, arr)
    io.write_json(os.path.join(out.folder, "map.json"),
                  {"embedding": stamp, "projections": sorted({*kept, method})})
  dedupe.swap(folder + ".new", folder)
  return xy


def draw(xy: np.ndarray, path: str, *, classes: list[str], labeled: dict[int, int],
         offered: list[int], dup: Optional[duplicates.Duplicates],
         method: str = "pca") -> str:
  """Writes the map (module docstring) of the pool at `xy` [N, 2] to `path`."""
  plt = _plotting.pyplot()
  fig, ax = plt.subplots(figsize=(7.5, 6.0))
  n = xy.shape[0]
  if n > DENSITY_FROM:
    ax.hexbin(xy[:, 0], xy[:, 1], gridsize=160, bins="log", cmap="Greys",
              mincnt=1, linewidths=0)
  else:
    ax.scatter(xy[:, 0], xy[:, 1], s=4, c="0.72", linewidths=0, label="pool")
  if dup is not None and dup.removed:
    gone = ~dup.kept
    ax.scatter(xy[gone, 0], xy[gone, 1], s=10, marker="x", c="0.85", linewidths=0.8,
               label=f"near-copies set aside ({int(gone.sum())})")
  if labeled:
    idx = np.fromiter(labeled, np.int64, len(labeled))
    y = np.asarray([labeled[i] for i in idx.tolist()])
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    for c in np.unique(y):
      at = idx[y == c]
      ax.scatter(xy[at, 0], xy[at, 1], s=16, color=cmap(int(c) % cmap.N),
                 linewidths=0, label=f"{classes[c]} ({at.size})"[:40])
  pending = np.asarray([i for i in offered if i not in labeled], np.int64)
  if pending.size:
    ax.scatter(xy[pending, 0], xy[pending, 1], s=40, facecolors="none",
               edgecolors="black", linewidths=0.9,
               label=f"offered, not yet labeled ({pending.size})")
  if method == "pca":
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
  ax.set_title(f"the pool ({n:,} images), {method.upper()} of its features",
               fontsize=10)
  handles, names = ax.get_legend_handles_labels()
  if handles:
    shown = 22  # the legend's rows: classes beyond stay in the colours only
    ax.legend(handles[:shown], names[:shown], fontsize=6, loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False)
  return _plotting.save(fig, plt, path, rect=None, dpi=110)


def nn_histogram(found: dedupe.Found, path: str) -> str:
  """Writes the histogram of each image's distance to its nearest other image
  (log scale; exact copies, at 0, counted in the title) with dedupe's
  threshold drawn."""
  plt = _plotting.pyplot()
  d = np.asarray(found.array("nn_distance"), np.float64)
  zero = int((d <= 0).sum())
  pos = d[d > 0]
  fig, ax = plt.subplots(figsize=(7.0, 3.6))
  if pos.size:
    lo, hi = pos.min(), max(pos.max(), pos.min() * 10)
    ax.hist(pos, bins=np.geomspace(lo, hi, 80), color="tab:blue")
    ax.set_xscale("log")
  t = float(found.meta["threshold"])
  ax.axvline(t, color="tab:red", linewidth=2.5,
             label=f"threshold {t:g} ({found.meta['removed']} set aside)")
  ax.set_xlabel(f"{found.meta['metric']} distance to the nearest other image")
  ax.set_ylabel("images")
  ax.set_title(f"nearest-neighbour distances of {d.size:,} images; {zero} exact "
               "copies at 0", fontsize=10)
  ax.legend(fontsize=8)
  return _plotting.save(fig, plt, path, rect=None, dpi=100)
