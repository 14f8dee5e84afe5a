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
label (4 bytes). The pool is read by blocks of `Tuning.rows` rows. One
compilation serves a pool layout and K (which sets the products' shapes);
`max_iter` and `tol` are arguments of the compiled kernel.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _validation as V
from jaxal import distances
from jaxal.coldstart import _pool
from jaxal.errors import InputError


class Tuning(NamedTuple):
  """k-means' block size: it changes speed and memory, not the algorithm (the
  sums per cluster add the blocks in order, so another size may round them
  differently). Static under `jit`; tests pass small ones to reach the paths of
  large pools."""
  rows: Optional[int] = None  # rows per block of a pass over the pool; None:
  # `cpu_rows` on a CPU, elsewhere as large as `_pool.rows_for` allows
  cpu_rows: int = 2048  # rows per block on a CPU

  def validate(self, name: str = "tuning") -> "Tuning":
    """Checks that `rows` is a positive int or None and `cpu_rows` a positive
    int, naming the field as `name.field` in the error; returns self."""
    V.check_int_fields(self, ("rows", "cpu_rows"), ("rows",), DEFAULT_TUNING, name)
    return self


DEFAULT_TUNING = Tuning()


def check_tuning(tuning: Optional[Tuning], name: str = "tuning") -> Tuning:
  """`tuning` validated, or `DEFAULT_TUNING` for None; errors call the argument
  `name`."""
  return V.check_tuning(tuning, Tuning, DEFAULT_TUNING, name)


@dataclasses.dataclass(frozen=True)
class KMeansResult:
  """A k-means run: each point's cluster, the centers, iterations and inertia."""
  labels: np.ndarray  # [N] int64 cluster of each point (nearest final center)
  centers: np.ndarray  # [K, d] float32
  iterations: int  # Lloyd iterations run
  inertia: float  # sum of squared distances to the assigned center


class _Pool(NamedTuple):
  """What every step reads: this device's rows and their constants."""
  x: jax.Array  # [local, d] this device's rows of the pool
  x_sq: jax.Array  # [local] squared distance of each row to `mean`
  mean: jax.Array  # [d] the pool's mean over its real rows (all devices)
  ones: jax.Array  # [d] unit weights of the squared distance
  real: jax.Array  # [local] bool: a row of the pool, not padding
  real_all: jax.Array  # [padded] bool: `real` over all devices
  axis: Optional[str]  # static: the device axis, None on one device
  rows: int  # static: rows per block
  n: int  # static: real rows of the pool
  padded: int  # static: rows of the padded pool over all devices

  @property
  def num_blocks(self) -> int:
    return self.x.shape[0] // self.rows


class _Seeding(NamedTuple):
  """The k-means++ loop's state."""
  centers: jax.Array  # [K, d] the seeds so far (zeros after them)
  d2: jax.Array  # [local] squared distance of each row to its nearest seed (padding: 0)


class _Lloyd(NamedTuple):
  """The Lloyd loop's state."""
  centers: jax.Array  # [K, d]
  iterations: jax.Array  # int32: iterations run
  shift: jax.Array  # total squared move of the centers in the last iteration


def _sq(pool: _Pool, b, centers):
  """[rows, m] squared distances between row block b and `centers` [m, d]."""
  return distances.sq_dists_to(_pool.block(pool.x, b, pool.rows),
                               _pool.block(pool.x_sq, b, pool.rows), pool.mean,
                               pool.ones, centers)


def _per_block(pool: _Pool, fn, dtype):
  """[local] vector filled block by block with `fn(b)` [rows]."""
  def body(b, acc):
    return jax.lax.dynamic_update_slice_in_dim(acc, fn(b), b * pool.rows, 0)
  return jax.lax.fori_loop(0, pool.num_blocks, body,
                           jnp.zeros((pool.x.shape[0],), dtype))


# ---------------------------------------------------------- k-means++ seeding
def _first_seed(pool: _Pool, key, k: int) -> _Seeding:
  """A real row drawn uniformly as the first seed, and every row's distance to it."""
  first = jax.random.choice(key, pool.padded, p=pool.real_all / pool.n)
  c0 = _pool.gather(pool.x, first[None], pool.axis)
  d2 = _per_block(pool, lambda b: _sq(pool, b, c0)[:, 0], pool.x.dtype)
  d2 = jnp.where(pool.real, d2, 0)
  return _Seeding(jnp.zeros((k, pool.x.shape[1]), pool.x.dtype).at[0].set(c0[0]), d2)


def _trial_potentials(pool: _Pool, d2, cvec):
  """([trials] the potential with each candidate `cvec` [trials, d] added,
  [local, trials] each row's distance to its nearest seed then): one pass over
  the pool, so the winner's distances need no second pass."""
  trials = cvec.shape[0]

  def body(b, acc):
    potential, after = acc
    m = jnp.minimum(_pool.block(d2, b, pool.rows)[:, None], _sq(pool, b, cvec))
    m = jnp.where(_pool.block(pool.real, b, pool.rows)[:, None], m, 0)
    return (potential + jnp.sum(m, 0),
            jax.lax.dynamic_update_slice_in_dim(after, m, b * pool.rows, 0))
  return jax.lax.fori_loop(
      0, pool.num_blocks, body,
      (jnp.zeros((trials,), pool.x.dtype),
       jnp.zeros((pool.x.shape[0], trials), pool.x.dtype)))


def _seed_one(pool: _Pool, keys, trials: int, c, seeding: _Seeding) -> _Seeding:
  """Seed c: of `trials` candidates drawn with probability proportional to d2
  (uniform once d2 is 0 everywhere), the one that lowers the potential most."""
  w = _pool.gather_vector(seeding.d2, pool.axis)
  total = jnp.sum(w)
  p = jnp.where(total > 0, w / jnp.where(total > 0, total, 1), pool.real_all / pool.n)
  cand = jax.random.choice(keys[c], pool.padded, (trials,), p=p)
  cvec = _pool.gather(pool.x, cand, pool.axis)
  potential, after = _trial_potentials(pool, seeding.d2, cvec)
  best = jnp.argmin(_pool.psum(potential, pool.axis))
  return _Seeding(seeding.centers.at[c].set(cvec[best]), after[:, best])


# ------------------------------------------------------------------- Lloyd
def _assign(pool: _Pool, centers):
  """[local] int32 index of each row's nearest center."""
  return _per_block(
      pool, lambda b: jnp.argmin(_sq(pool, b, centers), axis=1).astype(jnp.int32),
      jnp.int32)


def _cluster_sums(pool: _Pool, labels, k: int):
  """([K, d] sum of each cluster's real rows about the mean, [K] their counts),
  over all devices, as one-hot matrix products."""
  d = pool.x.shape[1]

  def body(b, acc):
    s, cnt = acc
    onehot = ((_pool.block(labels, b, pool.rows)[:, None] == jnp.arange(k)[None, :])
              & _pool.block(pool.real, b, pool.rows)[:, None]).astype(pool.x.dtype)
    hi = jax.lax.Precision.HIGHEST
    return (s + jnp.dot(onehot.T, _pool.block(pool.x, b, pool.rows) - pool.mean,
                        precision=hi),
            cnt + jnp.sum(onehot, axis=0))
  s, cnt = jax.lax.fori_loop(0, pool.num_blocks, body,
                             (jnp.zeros((k, d), pool.x.dtype),
                              jnp.zeros((k,), pool.x.dtype)))
  return _pool.psum(s, pool.axis), _pool.psum(cnt, pool.axis)


def _lloyd(pool: _Pool, state: _Lloyd) -> _Lloyd:
  """One Lloyd iteration: assign, then move each non-empty cluster's center to
  its mean (an empty cluster keeps its center)."""
  centers = state.centers
  s, cnt = _cluster_sums(pool, _assign(pool, centers), centers.shape[0])
  new = jnp.where(cnt[:, None] > 0, s / jnp.maximum(cnt, 1)[:, None] + pool.mean,
                  centers)
  return _Lloyd(new, state.iterations + 1, jnp.sum(jnp.square(new - centers)))


def _inertia(pool: _Pool, centers):
  """Sum over the real rows of the squared distance to the nearest center."""
  def body(b, acc):
    m = jnp.min(_sq(pool, b, centers), axis=1)
    return acc + jnp.sum(jnp.where(_pool.block(pool.real, b, pool.rows), m, 0))
  return _pool.psum(jax.lax.fori_loop(0, pool.num_blocks, body,
                                      jnp.zeros((), pool.x.dtype)), pool.axis)


def _kmeans_local(x, real, key, tol, max_iter, axis, *, k: int, rows: int, n: int):
  """k-means over this device's rows `x` [local, d]; see `kmeans`.

  Returns:
    ([local] int32 labels, [K, d] centers, int32 iterations, inertia).
  """
  local = x.shape[0]
  padded = local * (1 if axis is None else jax.lax.psum(1, axis))
  mean, x_sq = _pool.centered(x, real, axis)
  pool = _Pool(x, x_sq, mean, jnp.ones((x.shape[1],), x.dtype), real,
               _pool.gather_vector(real, axis), axis, rows, n, padded)
  keys = jax.random.split(key, k)
  seeding = _first_seed(pool, keys[0], k)
  seed_one = functools.partial(_seed_one, pool, keys, 2 + int(math.log(k)))
  centers = jax.lax.fori_loop(1, k, seed_one, seeding).centers
  out = jax.lax.while_loop(
      lambda s: (s.iterations < max_iter) & (s.shift > tol),
      functools.partial(_lloyd, pool),
      _Lloyd(centers, jnp.zeros((), jnp.int32), jnp.array(jnp.inf, x.dtype)))
  return (_assign(pool, out.centers), out.centers, out.iterations,
          _inertia(pool, out.centers))


@functools.lru_cache(maxsize=32)
def _compiled(lay: _pool.Layout, devices: Optional[tuple], k: int):
  fn = functools.partial(_kmeans_local, k=k, rows=lay.rows, n=lay.n)
  return _pool.sharded_jit(fn, lay, devices, out_row=(True, False, False, False))


def kmeans(features, num_clusters: int, *, seed: int = 0, max_iter: int = 100,
           tol: float = 1e-4, devices: Optional[Sequence[jax.Device]] = None,
           tuning: Optional[Tuning] = None) -> KMeansResult:
  """Clusters the rows of `features` [N, d] into `num_clusters` groups.

  Args:
    features: [N, d] finite features.
    num_clusters: K, 1 <= K <= N.
    seed: seed of the k-means++ seeding (the only random step).
    max_iter: most Lloyd iterations.
    tol: stop when the centers' total squared shift is below tol times the
      mean per-dimension variance of the features (scikit-learn's rule).
    devices: shard the pool by rows over these devices.
    tuning: block size (`Tuning`; default `DEFAULT_TUNING`: 2,048 rows per
      block on a CPU, `_pool.rows_for` elsewhere).

  Returns:
    `KMeansResult`.

  Example:
    >>> kmeans(np.random.rand(100, 4), 3, seed=0).labels.shape
    (100,)
  """
  f = np.asarray(V.check_features(features), np.float32)
  n = f.shape[0]
  if isinstance(num_clusters, bool) or not isinstance(num_clusters, (int, np.integer)):
    raise InputError(f"num_clusters must be an int, got {num_clusters!r}.")
  if not 1 <= num_clusters <= n:
    raise InputError(f"num_clusters={num_clusters} must be between 1 and the number "
                     f"of points ({n}); pass fewer clusters or more points.")
  if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) \
      or max_iter < 1:
    raise InputError(f"max_iter must be an int >= 1, got {max_iter!r}.")
  if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol >= 0):
    raise InputError(f"tol must be a finite float >= 0, got {tol!r}.")
  seed = V.check_seed(seed)
  tuning = check_tuning(tuning)
  rows = tuning.rows or _pool.rows_for(devices, tuning.cpu_rows, num_clusters)
  lay, x, real, devs = _pool.split(f, devices, int(rows))
  var = float(np.mean(f.var(axis=0, dtype=np.float64)))
  labels, centers, it, inertia = _compiled(lay, devs, int(num_clusters))(
      x, real, jax.random.PRNGKey(seed), np.float32(tol * var), np.int32(max_iter))
  return KMeansResult(np.asarray(labels)[:n].astype(np.int64), np.asarray(centers),
                      int(it), float(inertia))
