"""k-means (Lloyd's algorithm, greedy k-means++ seeding) in JAX, seeded and
deterministic, O(N) memory beyond the features, sharded by rows like the pool.

Used by TypiClust (clusters K = min(|L| + budget, 500)) and by ProbCover's choice
of delta (pseudo-labels, K = number of classes). The authors' code calls
scikit-learn: `KMeans` up to 50 clusters and `MiniBatchKMeans(batch_size=5000)`
above; scikit-activeml calls `KMeans`. Here one algorithm serves both: seeding as
scikit-learn's greedy k-means++ (2 + floor(ln K) candidates per center, the one
that lowers the potential most kept), then full-batch Lloyd iterations until the
centers move less than `tol` times the mean per-dimension variance (scikit-learn's
stopping rule) or `max_iter`. Sums per cluster are one-hot matrix products, not
scatter-adds, so the result is the same on every run of a GPU too. An empty
cluster keeps its previous center. Memory beyond the features: per point the
distance to the nearest seed and each seeding trial's (4 (3 + ln K) bytes), the
label (4 bytes).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _validation as V
from jaxal import distances
from jaxal.coldstart import _pool

_ROWS = 2048


@dataclasses.dataclass(frozen=True)
class KMeansResult:
  """A k-means run: each point's cluster, the centers, iterations and inertia."""
  labels: np.ndarray  # [N] int64 cluster of each point (nearest final center)
  centers: np.ndarray  # [K, d] float32
  iterations: int  # Lloyd iterations run
  inertia: float  # sum of squared distances to the assigned center


def _kmeans_local(x, real, key, tol, axis, *, k: int, max_iter: int, rows: int,
                  n: int):
  local, d = x.shape
  padded = local * (1 if axis is None else jax.lax.psum(1, axis))
  nb = local // rows
  ones = jnp.ones((d,), x.dtype)
  mean, x_sq = _pool.centered(x, real, axis)
  trials = 2 + int(math.log(k))

  def sq(b, centers):  # [rows, m] squared distances of row block b
    return distances.sq_dists_to(_pool.block(x, b, rows), _pool.block(x_sq, b, rows),
                                 mean, ones, centers)

  def per_block(fn, dtype):  # [local] vector filled block by block
    def body(b, acc):
      return jax.lax.dynamic_update_slice_in_dim(acc, fn(b), b * rows, 0)
    return jax.lax.fori_loop(0, nb, body, jnp.zeros((local,), dtype))

  # Greedy k-means++ seeding.
  keys = jax.random.split(key, k)
  real_all = _pool.gather_vector(real, axis)
  first = jax.random.choice(keys[0], padded, p=real_all / n)
  c0 = _pool.gather(x, first[None], axis)
  d2 = per_block(lambda b: sq(b, c0)[:, 0], x.dtype)
  d2 = jnp.where(real, d2, 0)
  centers = jnp.zeros((k, d), x.dtype).at[0].set(c0[0])

  def seed_one(c, carry):
    centers, d2 = carry
    w = _pool.gather_vector(d2, axis)
    total = jnp.sum(w)
    p = jnp.where(total > 0, w / jnp.where(total > 0, total, 1), real_all / n)
    cand = jax.random.choice(keys[c], padded, (trials,), p=p)
    cvec = _pool.gather(x, cand, axis)

    # One pass over the pool per center: each trial's new distances are kept
    # ([local, trials]), so the winner's need no second pass.
    def pot(b, acc):
      potential, after = acc
      m = jnp.minimum(_pool.block(d2, b, rows)[:, None], sq(b, cvec))
      m = jnp.where(_pool.block(real, b, rows)[:, None], m, 0)
      return (potential + jnp.sum(m, 0),
              jax.lax.dynamic_update_slice_in_dim(after, m, b * rows, 0))
    potential, after = jax.lax.fori_loop(
        0, nb, pot,
        (jnp.zeros((trials,), x.dtype), jnp.zeros((local, trials), x.dtype)))
    best = jnp.argmin(_pool.psum(potential, axis))
    return centers.at[c].set(cvec[best]), after[:, best]

  centers, _ = jax.lax.fori_loop(1, k, seed_one, (centers, d2))

  def assign(centers):
    return per_block(lambda b: jnp.argmin(sq(b, centers), axis=1).astype(jnp.int32),
                     jnp.int32)

  def lloyd(carry):
    centers, it, _ = carry
    labels = assign(centers)

    def sums(b, acc):
      s, cnt = acc
      onehot = ((_pool.block(labels, b, rows)[:, None] == jnp.arange(k)[None, :])
                & _pool.block(real, b, rows)[:, None]).astype(x.dtype)
      hi = jax.lax.Precision.HIGHEST
      return (s + jnp.dot(onehot.T, _pool.block(x, b, rows) - mean, precision=hi),
              cnt + jnp.sum(onehot, axis=0))
    s, cnt = jax.lax.fori_loop(0, nb, sums, (jnp.zeros((k, d), x.dtype),
                                             jnp.zeros((k,), x.dtype)))
    s, cnt = _pool.psum(s, axis), _pool.psum(cnt, axis)
    new = jnp.where(cnt[:, None] > 0, s / jnp.maximum(cnt, 1)[:, None] + mean, centers)
    shift = jnp.sum(jnp.square(new - centers))
    return new, it + 1, shift

  def more(carry):
    _, it, shift = carry
    return (it < max_iter) & (shift > tol)

  centers, iterations, _ = jax.lax.while_loop(
      more, lloyd, (centers, jnp.zeros((), jnp.int32), jnp.array(jnp.inf, x.dtype)))
  labels = assign(centers)

  def inertia(b, acc):
    m = jnp.min(sq(b, centers), axis=1)
    return acc + jnp.sum(jnp.where(_pool.block(real, b, rows), m, 0))
  total = _pool.psum(jax.lax.fori_loop(0, nb, inertia, jnp.zeros((), x.dtype)), axis)
  return labels, centers, iterations, total


@functools.lru_cache(maxsize=32)
def _compiled(lay: _pool.Layout, devices: Optional[tuple], k: int, max_iter: int):
  fn = functools.partial(_kmeans_local, k=k, max_iter=max_iter, rows=lay.rows,
                         n=lay.n)
  return _pool.sharded_jit(fn, lay, devices, out_row=(True, False, False, False))


def kmeans(features, num_clusters: int, *, seed: int = 0, max_iter: int = 100,
           tol: float = 1e-4, devices: Optional[Sequence[jax.Device]] = None,
           rows: Optional[int] = None) -> KMeansResult:
  """Clusters the rows of `features` [N, d] into `num_clusters` groups.

  Args:
    features: [N, d] finite features.
    num_clusters: K, 1 <= K <= N.
    seed: seed of the k-means++ seeding (the only random step).
    max_iter: most Lloyd iterations.
    tol: stop when the centers' total squared shift is below tol times the
      mean per-dimension variance of the features (scikit-learn's rule).
    devices: shard the pool by rows over these devices.
    rows: rows per block (default: `_pool.rows_for` the platform).

  Returns:
    `KMeansResult`.

  Example:
    >>> kmeans(np.random.rand(100, 4), 3, seed=0).labels.shape
    (100,)
  """
  f = np.asarray(V.check_features(features), np.float32)
  n = f.shape[0]
  if isinstance(num_clusters, bool) or not isinstance(num_clusters, (int, np.integer)):
    raise ValueError(f"num_clusters must be an int, got {num_clusters!r}.")
  if not 1 <= num_clusters <= n:
    raise ValueError(f"num_clusters={num_clusters} must be between 1 and the number "
                     f"of points ({n}); pass fewer clusters or more points.")
  if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) \
      or max_iter < 1:
    raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}.")
  if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol >= 0):
    raise ValueError(f"tol must be a finite float >= 0, got {tol!r}.")
  seed = V.check_seed(seed)
  rows = rows or _pool.rows_for(devices, _ROWS, num_clusters)
  lay, x, real, devs = _pool.split(f, devices, rows)
  var = float(np.mean(f.var(axis=0, dtype=np.float64)))
  labels, centers, it, inertia = _compiled(lay, devs, int(num_clusters),
                                           int(max_iter))(
      x, real, jax.random.PRNGKey(seed), np.float32(tol * var))
  return KMeansResult(np.asarray(labels)[:n].astype(np.int64), np.asarray(centers),
                      int(it), float(inertia))
