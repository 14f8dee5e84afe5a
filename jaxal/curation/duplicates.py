"""Near-duplicate pairs -> groups -> one image kept per group.

Groups are transitive: the connected components of the graph whose edges are
the pairs at distance <= threshold (`jaxal.curation.neighbors`), so a chain of
frames a, b, c where only a-b and b-c are near is one group. In each group the
image kept (its *representative*) is the most central one: the member nearest
the group's mean, in float64 (cosine: the mean of the unit rows, by cosine
distance; euclidean: the plain mean, by Euclidean distance), ties to the lowest
pool index.

Where FiftyOne Brain differs (`compute_near_duplicates`, voxel51/fiftyone-brain
at 7238036): it walks the pool in index order and keeps each image not yet
removed, removing the later ones within the threshold of it; a removed image is
then attached to its nearest kept one. Its groups are therefore not transitive
(a chain a-b-c keeps a and c when a-c is over the threshold), and the first
image of a group is kept, not the most central.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from jaxal.curation import neighbors as nb
from jaxal.errors import InputError


@dataclasses.dataclass(frozen=True)
class Duplicates:
  """The groups of a pool of N images."""
  representative: np.ndarray  # [N] int64: the image kept for each image's group
  # (the image itself when it has no near-duplicate)

  @property
  def kept(self) -> np.ndarray:
    """[N] bool: the images kept (one per group, every image without a copy)."""
    return self.representative == np.arange(self.representative.size)

  @property
  def removed(self) -> int:
    """Images set aside: every image of a group but its representative."""
    return int(self.representative.size - self.kept.sum())

  def groups(self) -> list[np.ndarray]:
    """The groups of two or more images, each sorted, in order of their
    representatives."""
    rep = self.representative
    multi = np.flatnonzero(~self.kept)
    heads = np.unique(rep[multi])
    order = np.argsort(rep, kind="stable")
    bounds = np.searchsorted(rep[order], heads)
    ends = np.searchsorted(rep[order], heads, side="right")
    return [np.sort(order[a:b]) for a, b in zip(bounds, ends)]


def components(n: int, pairs: np.ndarray) -> np.ndarray:
  """[n] int64: each point's group, named by its lowest member's index."""
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
    raise InputError(f"pairs must index a pool of {n} points.", field="pairs")
  graph = scipy.sparse.coo_matrix(
      (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
  _, label = scipy.sparse.csgraph.connected_components(graph, directed=False)
  lowest = np.full(label.max() + 1 if n else 0, n, np.int64)
  np.minimum.at(lowest, label, np.arange(n))
  return lowest[label]


def group(features, found: nb.Neighbors, chunk: int = 1 << 16) -> Duplicates:
  """The groups of `found.pairs` over `features` [N, d] and their most central
  members (module docstring)."""
  n = features.shape[0]
  if found.indices.shape[0] != n:
    raise InputError(f"found: neighbours of {found.indices.shape[0]} points for a "
                     f"pool of {n}; search this pool.", field="found")
  label = components(n, found.pairs)
  rep = np.arange(n, dtype=np.int64)
  size = np.bincount(label, minlength=n)
  members = np.flatnonzero(size[label] > 1)
  if not members.size:
    return Duplicates(rep)
  members = members[np.argsort(label[members], kind="stable")]  # by group, then index
  lab = label[members]
  starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
  # Whole groups per chunk of rows, so that no group is split.
  s = 0
  while s < len(starts):
    e = s + 1
    while e < len(starts) and starts[e] - starts[s] < chunk:
      e += 1
    lo, hi = starts[s], (starts[e] if e < len(starts) else len(members))
    idx = members[lo:hi]
    x = np.asarray(features[idx], np.float64)
    if found.metric == "cosine":
      x = x / np.linalg.norm(x, axis=1, keepdims=True)
    first = starts[s:e] - lo
    mean = np.add.reduceat(x, first, axis=0) / np.diff(np.r_[first, len(idx)])[:, None]
    which = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(idx)]))
    if found.metric == "cosine":
      norm = np.linalg.norm(mean, axis=1, keepdims=True)
      m = mean / np.where(norm > 0, norm, 1.0)  # opposite members: any is central
      dist = 1.0 - np.sum(x * m[which], axis=1)
    else:
      dist = np.sqrt(np.sum((x - mean[which]) ** 2, axis=1))
    for g, a in enumerate(first):  # members are in index order: argmin takes the lowest
      b = first[g + 1] if g + 1 < len(first) else len(idx)
      rep[idx[a:b]] = idx[a + int(np.argmin(dist[a:b]))]
    s = e
  return Duplicates(rep)


def candidates(dup: Duplicates, labeled) -> np.ndarray:
  """[N] bool: the images a selection may pick so that it never holds two of a
  group: each group's representative, unless an image of the group is labeled
  already (then none of it). `labeled`: an [N] bool mask, or pool indices."""
  rep = dup.representative
  labeled = np.asarray(labeled)
  if labeled.dtype != bool:  # pool indices
    mask = np.zeros(rep.shape, bool)
    mask[labeled.astype(np.int64).reshape(-1)] = True
    labeled = mask
  if labeled.shape != rep.shape:
    raise InputError(f"labeled_mask must have shape {rep.shape}, got "
                     f"{labeled.shape}.", field="labeled_mask")
  covered = np.zeros(rep.size, bool)
  covered[rep[labeled]] = True
  return dup.kept & ~covered[rep] & ~labeled
