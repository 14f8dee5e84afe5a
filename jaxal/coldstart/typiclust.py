"""TypiClust (Hacohen, Dekel & Weinshall, ICML 2022, "Active Learning on a Budget").

Stated in the paper: cluster the features (labeled and unlabeled) into |L| + B
clusters; repeatedly take the largest cluster with the fewest labeled points and,
in it, the most *typical* point, typicality(x) = (mean over the K nearest
neighbours x_i of x in its cluster of ||x - x_i||)^-1, K = 20.

In the authors' code (`deep-al/pycls/al/typiclust.py`), which is the default here:
  * clusters: K = min(|L| + B, max_clusters=500);
  * clusters of size <= 5 are dropped (`min_cluster_size`);
  * the clusters are sorted once by (labeled count ascending, size descending) and
    visited cyclically, one pick per visit;
  * typicality among the cluster's points still unlabeled and unpicked, with
    K = min(20, n_c // 2) neighbours (`neighbor_rule="half"`), from faiss'
    `IndexFlatL2`, whose distances are *squared* (`squared=True`); the paper's
    formula uses plain distances (`squared=False`);
  * features L2-normalised (`normalize=True`).

scikit-activeml's `TypiClust` differs: no cap on K, no size threshold, k = 5 with
K = min(k, n_c - 1) (`neighbor_rule="all_but_one"`), plain distances, and the
largest uncovered cluster next (the same order on a first pass).

Reconstructed here [R]: where the authors' loop would fail (a visited cluster with
no point left raises an IndexError there) we skip to the next cluster in the
cycle; when every cluster above the size threshold is exhausted, the small ones
join the cycle. Ties of typicality (within 1e-12 relative, float64) go to the
lowest pool index. k-means is
`jaxal.coldstart.kmeans` (the authors use scikit-learn's `MiniBatchKMeans` above
50 clusters); `clusters=` takes precomputed labels instead.

Cost: one k-means, then per pick the K nearest neighbours inside one cluster
(O(n_c^2 d) on device in float64, by blocks of rows), so memory beyond the
features is O(N) plus one cluster's features. Off the CPU the pool is put on the
device once and each pick sends only the cluster's indices (the rows are gathered
there); on a CPU each pick's cluster is gathered on the host, so that
no second copy of the pool is made.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _validation as V
from jaxal import distances
from jaxal.coldstart import _inputs, _pool, kmeans as kmeans_lib
from jaxal.errors import InputError

NEIGHBOR_RULES = ("half", "all_but_one")
_ROWS = 256
_EPS = 1e-5  # the authors' 1 / (mean + 1e-5)
_TIE = 1e-12  # typicalities this close (relative, float64) are ties


def typicality(features: np.ndarray, *, neighbors: int = 20,
               neighbor_rule: str = "half", squared: bool = True) -> np.ndarray:
  """[m] typicality of each row of `features` [m, d] among the rows.

  1 / (mean distance to its K nearest other rows + 1e-5), K = min(neighbors,
  m // 2) ("half") or min(neighbors, m - 1) ("all_but_one"); a single row has
  typicality 1.
  """
  return _cluster_typicality(features.shape[0], neighbors, neighbor_rule, squared,
                             host=np.asarray(features))


def _cluster_typicality(m: int, neighbors: int, neighbor_rule: str, squared: bool,
                        *, host: Optional[np.ndarray] = None,
                        pool: Optional[jax.Array] = None,
                        idx: Optional[np.ndarray] = None) -> np.ndarray:
  """`typicality` of one cluster of m points: its rows `host` [m, d], or the rows
  `idx` [m] of `pool` [N, d] on the device (then only the indices travel)."""
  k = min(neighbors, m // 2 if neighbor_rule == "half" else m - 1)
  if m == 1 or k == 0:
    return np.ones((m,))
  size = max(8, 1 << (m - 1).bit_length())  # bucketed shapes: few compilations
  static = dict(kmax=min(neighbors, size), squared=squared)
  # float64: in a small cluster of high-dimensional features the mean neighbour
  # distances of its points differ by less than float32 resolves, and the argmax
  # would follow rounding (a cluster is small, so this costs little).
  with jax.enable_x64(True):
    if pool is None:
      x = np.zeros((size, host.shape[1]), np.float64)
      x[:m] = host
      out = _typicality(x, np.int32(m), np.int32(k), rows=min(_ROWS, size), **static)
    else:
      ids = np.zeros((size,), np.int32)
      ids[:m] = idx
      rows = min(size, _pool.rows_for(list(pool.devices()), _ROWS, 2 * size))
      out = _typicality_gathered(pool, ids, np.int32(m), np.int32(k), rows=rows,
                                 **static)
    return np.asarray(out)[:m]


@functools.partial(jax.jit, static_argnames=("kmax", "squared", "rows"))
def _typicality_gathered(pool, ids, m, k, *, kmax, squared, rows):
  valid = jnp.arange(ids.shape[0]) < m
  x = jnp.where(valid[:, None], pool[ids].astype(jnp.float64), 0)
  return _typicality(x, m, k, kmax=kmax, squared=squared, rows=rows)


@functools.partial(jax.jit, static_argnames=("kmax", "squared", "rows"))
def _typicality(x, m, k, *, kmax, squared, rows):
  size, d = x.shape
  ones = jnp.ones((d,), x.dtype)
  valid = jnp.arange(size) < m
  mean = jnp.sum(jnp.where(valid[:, None], x, 0), axis=0) / m
  x_sq = distances.centered_sq_norms(x, mean, ones)

  def body(b, out):
    start = b * rows
    xb = jax.lax.dynamic_slice_in_dim(x, start, rows)
    s = distances.sq_dists_to(xb, jax.lax.dynamic_slice_in_dim(x_sq, start, rows),
                              mean, ones, x)
    self_ = start + jnp.arange(rows)[:, None] == jnp.arange(size)[None, :]
    s = jnp.where(valid[None, :] & ~self_, s, jnp.inf)
    near = -jax.lax.top_k(-s, kmax)[0]  # [rows, kmax] ascending
    if not squared:
      near = jnp.sqrt(near)
    use = jnp.arange(kmax)[None, :] < k
    mean_d = jnp.sum(jnp.where(use, near, 0), axis=1) / k
    return jax.lax.dynamic_update_slice_in_dim(out, 1.0 / (mean_d + _EPS), start, 0)

  return jax.lax.fori_loop(0, size // rows, body, jnp.zeros((size,), x.dtype))


def typiclust(features, budget: int, *, labeled_mask=None, seed: int = 0,
              max_clusters: Optional[int] = 500, min_cluster_size: int = 5,
              neighbors: int = 20, neighbor_rule: str = "half", squared: bool = True,
              normalize: bool = True, clusters: Optional[np.ndarray] = None,
              kmeans_iters: int = 100,
              devices: Optional[Sequence[jax.Device]] = None,
              kmeans_tuning: Optional[kmeans_lib.Tuning] = None) -> np.ndarray:
  """Selects `budget` unlabeled points with TypiClust (module docstring).

  Args:
    features: [N, d] pool embeddings.
    budget: points to select, 0 < budget <= number of unlabeled points.
    labeled_mask: optional [N] bool; labeled points cover their clusters and are
      never selected.
    seed: seed of k-means.
    max_clusters: cap on K (authors 500; None: K = |L| + budget).
    min_cluster_size: clusters of at most this many points are visited only once
      the others are exhausted (authors 5; 0 keeps all).
    neighbors: K of the K nearest neighbours (authors 20, scikit-activeml 5).
    neighbor_rule: "half" (authors: min(K, n_c // 2)) or "all_but_one"
      (scikit-activeml: min(K, n_c - 1)).
    squared: mean of squared distances (authors' code) or of distances (paper).
    normalize: L2-normalise the features first (authors).
    clusters: optional [N] int precomputed cluster labels (skips k-means).
    kmeans_iters: most Lloyd iterations of k-means.
    devices: shard k-means over these devices.
    kmeans_tuning: k-means' block size (`kmeans.Tuning`; default
      `kmeans.DEFAULT_TUNING`).

  Returns:
    numpy int64 array of `budget` pool indices in selection order.
  """
  f, mask, budget = _inputs.pool(features, budget, labeled_mask, normalize)
  n = f.shape[0]
  seed = V.check_seed(seed)
  kmeans_tuning = kmeans_lib.check_tuning(kmeans_tuning, "kmeans_tuning")
  if neighbor_rule not in NEIGHBOR_RULES:
    raise InputError(f"neighbor_rule must be one of {NEIGHBOR_RULES}, got "
                     f"{neighbor_rule!r}.")
  for name, value, low in (("neighbors", neighbors, 1),
                           ("min_cluster_size", min_cluster_size, 0)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
        or value < low:
      raise InputError(f"{name} must be an int >= {low}, got {value!r}.")
  if max_clusters is not None and (isinstance(max_clusters, bool) or not isinstance(
      max_clusters, (int, np.integer)) or max_clusters < 1):
    raise InputError(f"max_clusters must be an int >= 1 or None, got {max_clusters!r}.")
  if clusters is None:
    k = int(mask.sum()) + budget
    k = k if max_clusters is None else min(k, int(max_clusters))
    if k > n:
      raise InputError(f"TypiClust needs K = {k} clusters but the pool has {n} points; "
                       "pass a smaller budget or max_clusters.")
    clusters = kmeans_lib.kmeans(f, k, seed=seed, max_iter=kmeans_iters,
                                 devices=devices, tuning=kmeans_tuning).labels
  else:
    clusters = np.asarray(clusters)
    if clusters.shape != (n,) or not np.issubdtype(clusters.dtype, np.integer):
      raise InputError(f"clusters must be [N] = [{n}] ints, got shape "
                       f"{clusters.shape} and dtype {clusters.dtype}.")
  return _select(f, clusters, mask, budget, min_cluster_size=min_cluster_size,
                 neighbors=neighbors, neighbor_rule=neighbor_rule, squared=squared)


def cluster_order(clusters: np.ndarray,
                  mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(cluster ids by (labeled count asc, size desc, id asc), their sizes)."""
  ids, sizes = np.unique(clusters, return_counts=True)
  counts = np.zeros(ids.shape, np.int64)
  pos = np.searchsorted(ids, clusters[mask])
  np.add.at(counts, pos, 1)
  order = np.lexsort((ids, -sizes, counts))
  return ids[order], sizes[order]


def _select(f, clusters, mask, budget, *, min_cluster_size, neighbors, neighbor_rule,
            squared) -> np.ndarray:
  ids, sizes = cluster_order(clusters, mask)
  # Each cluster's unlabeled members in index order: one stable sort, not a
  # pass over the pool per cluster.
  free = np.flatnonzero(~mask)
  by_cluster = free[np.argsort(clusters[free], kind="stable")]
  starts = np.searchsorted(clusters[by_cluster], ids)
  ends = np.searchsorted(clusters[by_cluster], ids, side="right")
  members = {int(c): by_cluster[a:b] for c, a, b in zip(ids, starts, ends)}
  cycle = [int(c) for c, s in zip(ids, sizes) if s > min_cluster_size]
  small = [int(c) for c, s in zip(ids, sizes) if s <= min_cluster_size]
  live = sum(members[c].size > 0 for c in cycle)  # clusters of the cycle not exhausted
  on_device = _pool.platform(None) != "cpu"
  pool = jnp.asarray(f) if on_device else None  # once: a pick sends only indices
  picks: list[int] = []
  pos = 0
  while len(picks) < budget:
    if not live:  # every cluster above the threshold is exhausted
      cycle, small = cycle + small, []
      live = sum(members[c].size > 0 for c in cycle)
      continue
    c = cycle[pos % len(cycle)]
    pos += 1
    idx = members[c]
    if idx.size == 0:
      continue
    if on_device:
      t = _cluster_typicality(idx.size, neighbors, neighbor_rule, squared,
                              pool=pool, idx=idx)
    else:
      t = _cluster_typicality(idx.size, neighbors, neighbor_rule, squared,
                              host=f[idx])
    # Ties go to the lowest pool index, also where rounding alone separates
    # them (two points of a 2-point cluster are each other's only neighbour,
    # but their distances come out of different rows of a matrix product).
    j = int(np.argmax(t >= t.max() * (1 - _TIE)))
    picks.append(int(idx[j]))
    members[c] = np.delete(idx, j)
    live -= members[c].size == 0
  return np.asarray(picks, np.int64)

