"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022, "Active Learning
Through a Covering Lens").

Stated in the paper: in the delta-ball graph (x -> y iff ||x - y|| < delta) pick,
greedily, the point that covers the most points not yet covered (labeled points
cover their balls from the start), so that the picks maximise the probability mass
of the union of their balls. delta is the largest radius whose balls stay *pure*
for at least a fraction alpha = 0.95 of the points, purity measured with k-means
pseudo-labels, k = the number of classes: a ball is pure when every point in it
has the centre's pseudo-label.

In the authors' code (`deep-al/pycls/al/prob_cover.py`): delta is a given number
(chosen beforehand, outside the code); features L2-normalised; the graph is an
edge list built 500 rows at a time, which drops the last N mod 500 points as ball
centres; the pick is the lowest index of highest out-degree (`np.argmax`); once
everything is covered every degree is 0 and index 0 is returned again for the
rest of the budget. scikit-activeml's `ProbCover` tries deltas on a grid
(0.2, 0.4, ..., 2.0), uses closed balls (<=) and breaks ties at random.

Here [R]: the purity criterion is solved exactly instead of on a grid. With r(x)
the distance from x to its nearest point of another pseudo-label, x's ball is
pure iff r(x) >= delta, so purity(delta) = #{x : r(x) >= delta} / N and the
largest delta with purity >= alpha is the ceil(alpha N)-th largest r(x) (one
O(N^2 d) pass by blocks, O(N) memory). Balls are open (<), as in the paper and
the authors' code. The greedy is `jaxal.coldstart.coverage` with the top-hat
kernel: exact (every point a ball centre, none dropped), lowest index on ties,
and beyond full coverage a second cover rather than repeats.
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
from jaxal.coldstart import _inputs, _pool, coverage, kmeans as kmeans_lib
from jaxal.errors import InputError

_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class ProbCoverInfo:
  """What `probcover` chose its radius from and how much of the pool the picks cover."""
  delta: float  # the radius used
  purity: Optional[float]  # purity of that radius (None when delta was given)
  coverage: float  # fraction of the pool covered by labeled + selected balls
  stats: coverage.CoverageStats


def _nearest_other_local(x, real, labels_all, axis, *, rows: int):
  """[local] squared distance from each row to its nearest point of another label."""
  local, d = x.shape
  padded = labels_all.shape[0]
  nb = local // rows
  off = _pool.offset(local, axis)
  ones = jnp.ones((d,), x.dtype)
  mean, x_sq = _pool.centered(x, real, axis)
  real_all = _pool.gather_vector(real, axis)

  def col(j, out):
    ids = j * rows + jnp.arange(rows)
    cvec = _pool.gather(x, ids, axis)
    lab_c = labels_all[ids]

    def row(b, out):
      s = distances.sq_dists_to(_pool.block(x, b, rows), _pool.block(x_sq, b, rows),
                                mean, ones, cvec)
      lab_r = jax.lax.dynamic_slice_in_dim(labels_all, off + b * rows, rows)
      other = (lab_r[:, None] != lab_c[None, :]) & real_all[ids][None, :]
      m = jnp.min(jnp.where(other, s, jnp.inf), axis=1)
      return jax.lax.dynamic_update_slice_in_dim(
          out, jnp.minimum(_pool.block(out, b, rows), m), b * rows, 0)
    return jax.lax.fori_loop(0, nb, row, out)

  # a one-element tuple: the outputs `_pool.run` maps row-wise (`out_row`)
  return (jax.lax.fori_loop(0, padded // rows, col,
                            jnp.full((local,), jnp.inf, x.dtype)),)


@functools.lru_cache(maxsize=16)
def _nearest_other_compiled(lay: _pool.Layout, devices: Optional[tuple]):
  fn = functools.partial(_nearest_other_local, rows=lay.rows)
  return _pool.sharded_jit(fn, lay, devices, out_row=(True,))


def nearest_other_label(features: np.ndarray, labels: np.ndarray, *,
                        devices: Optional[Sequence[jax.Device]] = None,
                        rows: Optional[int] = None) -> np.ndarray:
  """[N] distance from each point to its nearest point with another label, by
  [rows, rows] tiles (default rows: `_pool.rows_for` the platform)."""
  n = features.shape[0]
  rows = rows or _pool.square_rows_for(devices, _ROWS)
  lay, x, real, devs = _pool.split(features, devices, rows)
  lab = _pool.pad_rows(np.asarray(labels, np.int32), lay.padded, -1)
  out, = _nearest_other_compiled(lay, devs)(x, real, lab)
  return np.sqrt(np.asarray(out, np.float64)[:n])


def purity_delta(features: np.ndarray, pseudo_labels: np.ndarray, alpha: float, *,
                 devices=None) -> tuple[float, float]:
  """(largest delta with purity >= alpha, its purity), exactly (module docstring)."""
  r = nearest_other_label(features, pseudo_labels, devices=devices)
  n = r.size
  m = math.ceil(alpha * n - 1e-9)
  delta = float(np.sort(r)[::-1][m - 1])
  if not np.isfinite(delta):
    raise InputError("every pseudo-label ball is pure at any radius (one cluster "
                     "only?); pass delta= explicitly.")
  return delta, float(np.mean(r >= delta))


def probcover(features, budget: int, *, labeled_mask=None, seed: int = 0,
              delta: Optional[float] = None, alpha: float = 0.95,
              num_classes: Optional[int] = None, normalize: bool = True,
              kmeans_iters: int = 100, lazy: bool = True,
              devices: Optional[Sequence[jax.Device]] = None,
              return_info: bool = False,
              tuning: Optional[coverage.Tuning] = None,
              kmeans_tuning: Optional[kmeans_lib.Tuning] = None):
  """Selects `budget` unlabeled points with ProbCover (module docstring).

  Args:
    features: [N, d] pool embeddings.
    budget: points to select, 0 < budget <= number of unlabeled points.
    labeled_mask: optional [N] bool; labeled points cover their balls.
    seed: seed of the pseudo-label k-means (only when delta is None).
    delta: ball radius > 0; None chooses it by purity.
    alpha: purity threshold in (0, 1] (paper 0.95).
    num_classes: k of the pseudo-labels (needed when delta is None).
    normalize: L2-normalise the features first (authors).
    kmeans_iters: most Lloyd iterations of the pseudo-label k-means.
    lazy: lazy greedy (default) or plain greedy (reference).
    devices: shard the pool by rows over these devices.
    return_info: also return a `ProbCoverInfo`.
    tuning: the greedy's block sizes (`coverage.Tuning`; default
      `coverage.DEFAULT_TUNING`).
    kmeans_tuning: the pseudo-label k-means' block size (`kmeans.Tuning`;
      default `kmeans.DEFAULT_TUNING`).

  Returns:
    numpy int64 array of `budget` pool indices in selection order (and the info).
  """
  f, mask, budget = _inputs.pool(features, budget, labeled_mask, normalize)
  n = f.shape[0]
  seed = V.check_seed(seed)
  tuning = coverage.check_tuning(tuning)
  kmeans_tuning = kmeans_lib.check_tuning(kmeans_tuning, "kmeans_tuning")
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
      or not 0 < alpha <= 1:
    raise InputError(f"alpha must be in (0, 1], got {alpha!r}; the paper uses 0.95.")
  if delta is not None:
    delta = _inputs.positive(delta, "delta", "or pass delta=None to choose it by "
                             "purity.")
  purity = None
  if delta is None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
        or not 2 <= num_classes <= n:
      raise InputError("num_classes must be an int in [2, N] to choose delta by "
                       f"purity, got {num_classes!r}; pass the number of classes "
                       "or delta=.")
    pseudo = kmeans_lib.kmeans(f, int(num_classes), seed=seed, max_iter=kmeans_iters,
                               devices=devices, tuning=kmeans_tuning).labels
    delta, purity = purity_delta(f, pseudo, alpha, devices=devices)
  picks, stats = coverage.greedy(f, budget, kind="tophat", param=float(delta) ** 2,
                                 labeled_mask=mask, lazy=lazy, devices=devices,
                                 tuning=tuning)
  if not return_info:
    return picks
  return picks, ProbCoverInfo(float(delta), purity,
                              1.0 if stats.resets else stats.coverage, stats)
