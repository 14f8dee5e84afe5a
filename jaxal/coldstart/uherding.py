"""UHerding (Bae, Oliveira & Sutherland, ICLR 2025, "Uncertainty Herding: One
Active Learning Method for All Label Budgets").

Stated in the paper: maximise the uncertainty coverage
UCov(S) = (1/N) sum_i U(x_i) max_{s in S ∪ L} k(x_i, s) greedily, one point at
a time: MaxHerding's generalised coverage (`jaxal.coldstart.maxherding`) with each
*covered* point weighted by the model's uncertainty U, so that low budgets behave
like MaxHerding (U nearly flat) and high budgets like uncertainty sampling. U is
the margin uncertainty 1 - (p_1 - p_2) of temperature-scaled probabilities, the
temperature chosen for calibration on held-out labeled data; the Gaussian
kernel's bandwidth adapts to the labeled set.

In the authors' code (`UHerding` in their repository): features L2-normalised;
the unlabeled candidates a random subset of 35,000 as in their MaxHerding, with
the N x N kernel on the GPU; U of the labeled points set to 0; the temperature a
configured value; with labels the radius is the smallest nonzero distance
between labeled points ("adaptive delta"), without labels U = 1 and the radius
the configured delta (MaxHerding's). scikit-activeml's `UHerding` (added after
1.0.1, which has only `MaxHerding`):
gain(c) = mean over the unlabeled candidates i of U_i max(k(x_i, c) - k_max_i, 0)
with k(x, y) = exp(-||x - y||^2 / sigma^2) on L2-normalised features,
k_max_i = max over the labeled points (0 without labels); sigma = the smallest
nonzero pairwise distance among the labeled points, or without labels the
median nonzero pairwise distance among the candidates (1 when neither exists);
U = 1 - abs(p_1 - p_2) of softmax(logits / tau), falling back to U = 1 when U is not
finite or all ~0; tau minimises the expected calibration error (15 equal bins)
over np.logspace(-1, 1, 49) on a validation split (20 %) of the labeled points,
with a classifier retrained on the rest; argmax ties broken at random.

Here [R]: the same objective and bandwidth rule on given model outputs: the
caller passes `logits` (with `temperature`) or `probabilities`; `select_temperature`
is scikit-activeml's ECE search on logits the caller computed on its held-out
labeled points (retraining a classifier is the harness's job). Labeled points
weigh 0 in the sum, as in scikit-activeml and the authors' code (the paper sums over the pool, but a
labeled point covers itself with k = 1, so it adds nothing either way). Without
`logits` or `probabilities` U = 1: MaxHerding with the adaptive bandwidth
(`bandwidth=1.0` is the authors' cold start instead of scikit-activeml's). The
median bandwidth is exact up to `median_points` points, else the median over a
seeded random subset of that many (all pairs of N points would be O(N^2)).
Ties go to the lowest index.

Why not `coverage.greedy`: its gain sum_i max(k - cur_i, 0) has no per-point
weights. The greedy here is written in its style: weighted coverage is still
monotone submodular (U >= 0), so *lazy greedy* is exact; the first bounds are
one all-pairs pass by [rows, rows] tiles (raised by a relative 1e-4, as
`coverage.Tuning.gauss_bound`, since their sums run in another order), then each
step recomputes the exact gains of the 16 largest bounds until the largest is
exact; ties go to the lowest index; plain greedy (`lazy=False`, every gain every
step) is the reference and gives the same picks (tested). It is simpler than
`coverage`: one device (no sharding), no fused fold-and-refresh pass, no restart
after full coverage (a weighted gain is 0 only where every unlabeled point with
U > 0 is covered exactly, k = 1). Cost: O(N^2 d) for the first bounds, then per
step O(N d) per 16 gains refreshed; memory O(N) beyond the features, no N x N
kernel (the authors' code and scikit-activeml keep one). Budgets up to the same
power of two (at least 1,024) share a compilation.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _validation as V
from jaxal.coldstart import _inputs, _pool
from jaxal.errors import InputError

_ROWS = 512  # rows (and candidate columns) per tile of a pass on a CPU
_EVALS = 16  # candidates whose exact gain is computed together
_GAUSS_BOUND = 1e-4  # relative slack of the first bounds (`coverage.Tuning`'s)
DEFAULT_TEMPERATURES = np.logspace(-1, 1, 49)  # scikit-activeml's grid


@dataclasses.dataclass(frozen=True)
class UHerdingInfo:
  """The bandwidth and weights `uherding` used."""
  bandwidth: float  # sigma of exp(-||x - y||^2 / sigma^2)
  uncertainty: np.ndarray  # [N] float32 weights U (labeled points: 0)
  evaluations: int  # exact gains computed over all steps (lazy: the work done)


class _Pool(NamedTuple):
  """What every step reads: the padded pool and its constants."""
  x: jax.Array  # [padded, d] rows centered about their mean
  x_sq: jax.Array  # [padded] squared norms of the centered rows
  w: jax.Array  # [padded] weights U (0 on labeled and padding rows)
  gamma: jax.Array  # 1 / sigma^2
  rows: int  # static: rows per tile (and candidates per tile)

  @property
  def num_blocks(self) -> int:
    return self.x.shape[0] // self.rows


def _kvals(pool: _Pool, b, c, c_sq):
  """[rows, m] kernel values between row block b and the candidates c [m, d]."""
  xb = _pool.block(pool.x, b, pool.rows)
  s = _pool.block(pool.x_sq, b, pool.rows)[:, None] + c_sq[None, :] - 2 * xb @ c.T
  return jnp.exp(-jnp.maximum(s, 0) * pool.gamma)


def _fold(pool: _Pool, cur, j):
  """cur = max(cur, k(x, x_j))."""
  c, c_sq = pool.x[j][None], pool.x_sq[j][None]
  def body(b, cur):
    kv = _kvals(pool, b, c, c_sq)[:, 0]
    return jax.lax.dynamic_update_slice_in_dim(
        cur, jnp.maximum(_pool.block(cur, b, pool.rows), kv), b * pool.rows, 0)
  return jax.lax.fori_loop(0, pool.num_blocks, body, cur)


def _gains(pool: _Pool, cur, c, c_sq):
  """[m] sum_i w_i max(k(x_i, c) - cur_i, 0) for the candidates c [m, d], one
  [rows, m] product per row block, the blocks added in order."""
  def row(b, acc):
    gain = jnp.maximum(_kvals(pool, b, c, c_sq)
                       - _pool.block(cur, b, pool.rows)[:, None], 0)
    return acc + _pool.block(pool.w, b, pool.rows) @ gain
  return jax.lax.fori_loop(0, pool.num_blocks, row, jnp.zeros((c.shape[0],), c.dtype))


def _every_gain(pool: _Pool, cur, excluded, width: int):
  """[padded] every candidate's gain (-inf where excluded), `width` candidates
  per pass over the pool."""
  def col(jb, out):
    c = jax.lax.dynamic_slice_in_dim(pool.x, jb * width, width)
    c_sq = jax.lax.dynamic_slice_in_dim(pool.x_sq, jb * width, width)
    return jax.lax.dynamic_update_slice_in_dim(out, _gains(pool, cur, c, c_sq),
                                               jb * width, 0)
  g = jax.lax.fori_loop(0, pool.x.shape[0] // width, col,
                        jnp.zeros((pool.x.shape[0],), pool.x.dtype))
  return jnp.where(excluded, -jnp.inf, g)


class _Search(NamedTuple):
  """Lazy greedy's search: refresh the largest bounds until the largest is exact."""
  ub: jax.Array  # [padded] upper bounds of the gains (-inf: not a candidate)
  fresh: jax.Array  # [padded] bool: ub is the exact gain for the current coverage
  evaluated: jax.Array  # int32: exact gains computed


def _stale(search: _Search):
  j = jnp.argmax(search.ub)
  return ~search.fresh[j] & (search.ub[j] > -jnp.inf)


def _refresh(pool: _Pool, cur, evals: int, search: _Search) -> _Search:
  """The exact gains of the `evals` candidates with the largest bounds."""
  vals, ids = jax.lax.top_k(search.ub, evals)
  alive = vals > -jnp.inf
  g = jnp.where(alive, _gains(pool, cur, pool.x[ids], pool.x_sq[ids]), -jnp.inf)
  return _Search(search.ub.at[ids].set(g), search.fresh.at[ids].set(alive),
                 search.evaluated + jnp.sum(alive))


@functools.partial(jax.jit, static_argnames=("rows", "evals", "capacity", "lazy"))
def _greedy(x, w, excluded, labeled_idx, num_labeled, gamma, budget, slack, *,
            rows: int, evals: int, capacity: int, lazy: bool):
  """([capacity] int32 picks of the weighted greedy, the first `budget` real;
  exact gains computed). Every exact gain is a product `evals` candidates wide
  (plain greedy's too), so lazy and plain greedy compute the same gains bit for
  bit; the first bounds, by [rows, rows] tiles, are raised by `slack` (relative)
  because their sums run in another order."""
  mean = jnp.mean(x, axis=0)  # over padding too: only a shift, distances unchanged
  xc = x - mean
  pool = _Pool(xc, jnp.sum(xc * xc, axis=1), w, gamma, rows)
  cur = jax.lax.fori_loop(0, num_labeled,
                          lambda i, cur: _fold(pool, cur, labeled_idx[i]),
                          jnp.zeros((x.shape[0],), x.dtype))
  padded = x.shape[0]
  ub = _every_gain(pool, cur, excluded, rows) * (1 + slack) if lazy else \
      jnp.full((padded,), -jnp.inf, x.dtype)

  def step(i, st):
    cur, ub, excluded, sel, n = st
    if lazy:
      found = jax.lax.while_loop(
          _stale, functools.partial(_refresh, pool, cur, evals),
          _Search(ub, jnp.zeros((padded,), bool), jnp.zeros((), jnp.int32)))
      ub, m = found.ub, found.evaluated
    else:
      ub, m = _every_gain(pool, cur, excluded, evals), jnp.sum(~excluded)
    j = jnp.argmax(ub)  # the first maximum: lowest index on ties
    return (_fold(pool, cur, j), ub.at[j].set(-jnp.inf), excluded.at[j].set(True),
            sel.at[i].set(j.astype(jnp.int32)), n + m)
  _, _, _, sel, n = jax.lax.fori_loop(
      0, budget, step, (cur, ub, excluded, jnp.zeros((capacity,), jnp.int32),
                        jnp.zeros((), jnp.int32)))
  return sel, n


def _nonzero_distances(a: np.ndarray, rows: int = 256):
  """The nonzero distances over the pairs i < j of the rows of `a`, float64, one
  [rows, len(a)] block of them at a time."""
  a = a.astype(np.float64)
  sq = np.sum(a * a, axis=1)
  for s in range(0, a.shape[0], rows):
    blk = a[s:s + rows]
    d = np.sqrt(np.maximum(sq[s:s + rows, None] + sq[None, :] - 2 * blk @ a.T, 0))
    d = d[np.arange(a.shape[0])[None, :] > np.arange(s, s + blk.shape[0])[:, None]]
    yield d[d > 0]


def adaptive_bandwidth(features: np.ndarray, labeled_mask: np.ndarray, *,
                       seed: int = 0, median_points: int = 2048) -> float:
  """scikit-activeml's sigma (module docstring) on (normalised) `features`: the
  smallest nonzero distance between labeled points, else the median nonzero
  distance between unlabeled points (over a seeded subset of `median_points`
  when there are more), else 1."""
  lab = features[labeled_mask]
  if lab.shape[0] >= 2:  # the minimum by blocks: O(L) memory, O(L^2 d) time
    mins = [d.min() for d in _nonzero_distances(lab) if d.size]
    if mins:
      return float(min(mins))
  unl = features[~labeled_mask]
  if unl.shape[0] > median_points:
    rng = np.random.default_rng(seed)
    unl = unl[np.sort(rng.choice(unl.shape[0], median_points, replace=False))]
  d = np.concatenate(list(_nonzero_distances(unl)) or [np.zeros((0,))])
  return float(np.median(d)) if d.size else 1.0


def _softmax(z: np.ndarray) -> np.ndarray:
  z = z - z.max(axis=1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = 15) -> float:
  """ECE with `bins` equal-width confidence bins, the last one closed
  (scikit-activeml's `UHerding._expected_calibration_error`)."""
  conf = probabilities.max(axis=1)
  acc = probabilities.argmax(axis=1) == labels
  edges = np.linspace(0.0, 1.0, bins + 1)
  ece = 0.0
  for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
    m = (conf >= lo) & ((conf <= hi) if k == bins - 1 else (conf < hi))
    if m.any():
      ece += m.mean() * abs(acc[m].mean() - conf[m].mean())
  return float(ece)


def select_temperature(logits, labels, temperatures=None, bins: int = 15) -> float:
  """The temperature in `temperatures` (default np.logspace(-1, 1, 49)) whose
  softmax(logits / t) has the lowest ECE on held-out labeled points (the first on
  ties), as scikit-activeml chooses it.

  Args:
    logits: [M, C] logits of held-out labeled points (a classifier trained
      without them).
    labels: [M] int class indices in [0, C).
    temperatures: candidate temperatures > 0.
    bins: ECE bins.
  """
  z = np.asarray(logits, np.float64)
  y = np.asarray(labels)
  if z.ndim != 2 or z.shape[0] == 0 or not np.all(np.isfinite(z)):
    raise InputError(f"logits must be a finite non-empty [M, C] array, got shape "
                     f"{z.shape}.", field="logits")
  if y.shape != (z.shape[0],):
    raise InputError(f"labels must be [M={z.shape[0]}] class indices, got shape "
                     f"{y.shape}.", field="labels")
  temps = DEFAULT_TEMPERATURES if temperatures is None else np.atleast_1d(
      np.asarray(temperatures, np.float64))
  if temps.size == 0 or not np.all(np.isfinite(temps)) or np.any(temps <= 0):
    raise InputError("temperatures must be a non-empty list of floats > 0.",
                     field="temperatures")
  eces = [expected_calibration_error(_softmax(z / t), y, bins) for t in temps]
  return float(temps[int(np.argmin(eces))])


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
  """1 - abs(p_1 - p_2) of the two largest probabilities per row, float64."""
  top2 = -np.partition(-probabilities, 1, axis=1)[:, :2]
  return 1.0 - np.abs(top2[:, 0] - top2[:, 1])


def _uncertainty(probabilities, logits, temperature, n: int) -> np.ndarray:
  if probabilities is not None and logits is not None:
    raise InputError("pass either probabilities or logits, not both.",
                     field="probabilities")
  if probabilities is None and logits is None:
    return np.ones((n,))
  name = "logits" if logits is not None else "probabilities"
  a = np.asarray(logits if logits is not None else probabilities)
  if a.ndim != 2 or a.shape[0] != n or a.shape[1] < 2 \
      or not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
    raise InputError(f"{name} must be a finite [N={n}, C>=2] array (one row per "
                     f"pool point), got shape {a.shape}.", field=name)
  a = a.astype(np.float64)
  if logits is not None:
    t = _inputs.positive(temperature, "temperature",
                         "choose it with uherding.select_temperature or pass 1.0.")
    a = _softmax(a / t)
  u = margin_uncertainty(a)
  if not np.all(np.isfinite(u)) or np.allclose(u, 0.0):
    return np.ones((n,))  # scikit-activeml: no information, pure coverage
  return u


def uherding(features, budget: int, *, labeled_mask=None, seed: int = 0,
             probabilities=None, logits=None, temperature: float = 1.0,
             bandwidth: Optional[float] = None, normalize: bool = True,
             median_points: int = 2048, lazy: bool = True,
             return_info: bool = False,
             _rows: Optional[int] = None):
  """Selects `budget` unlabeled points with UHerding (module docstring).

  Args:
    features: [N, d] pool embeddings.
    budget: points to select, 0 < budget <= number of unlabeled points.
    labeled_mask: optional [N] bool; labeled points cover from the start and are
      never picked.
    seed: seed of the subset for the median bandwidth (large pools only).
    probabilities: optional [N, C] class probabilities of the current model.
    logits: optional [N, C] logits instead (softmax(logits / temperature)).
    temperature: > 0, applied to `logits` (`select_temperature` chooses it).
    bandwidth: sigma > 0 of exp(-||x - y||^2 / sigma^2); None: the adaptive rule.
    normalize: L2-normalise the features first (authors, scikit-activeml).
    median_points: most points whose pairwise distances give the median bandwidth.
    lazy: lazy greedy (default) or plain greedy (reference); the same picks.
    return_info: also return a `UHerdingInfo`.
    _rows: rows per tile instead of 512 (tests reach the many-tile paths).

  Returns:
    numpy int64 array of `budget` pool indices in selection order (and the info).
  """
  f, mask, budget = _inputs.pool(features, budget, labeled_mask, normalize)
  n = f.shape[0]
  seed = V.check_seed(seed)
  if isinstance(median_points, bool) or not isinstance(median_points, (int, np.integer)) \
      or median_points < 2:
    raise InputError(f"median_points must be an int >= 2, got {median_points!r}.",
                     field="median_points")
  if not isinstance(lazy, bool):
    raise InputError(f"lazy must be a bool, got {lazy!r}.", field="lazy")
  u = _uncertainty(probabilities, logits, temperature, n)
  if bandwidth is None:
    sigma = adaptive_bandwidth(f, mask, seed=seed, median_points=int(median_points))
  else:
    sigma = _inputs.positive(bandwidth, "bandwidth",
                             "or pass bandwidth=None for the adaptive rule.")
  w = np.where(mask, 0.0, u).astype(np.float32)
  rows = min(int(_rows or _ROWS), _pool.round_up(n, _EVALS))
  padded = _pool.round_up(n, rows)
  x = _pool.pad_rows(f, padded)
  excluded = _pool.pad_rows(mask, padded, True)
  labeled = np.flatnonzero(mask).astype(np.int32)
  # a power of two: labeled sets of similar sizes share a compilation
  lab_idx = np.zeros((max(16, 1 << max(labeled.size - 1, 0).bit_length()),), np.int32)
  lab_idx[:labeled.size] = labeled
  capacity = max(1024, 1 << max(budget - 1, 0).bit_length())
  sel, evaluated = _greedy(
      x, _pool.pad_rows(w, padded), excluded, lab_idx, np.int32(labeled.size),
      np.float32(1.0 / sigma ** 2), np.int32(budget), np.float32(_GAUSS_BOUND),
      rows=rows, evals=min(_EVALS, padded), capacity=capacity, lazy=bool(lazy))
  picks = np.asarray(sel)[:budget].astype(np.int64)
  if not return_info:
    return picks
  return picks, UHerdingInfo(sigma, w[:n], int(evaluated))
