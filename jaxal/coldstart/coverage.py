"""Greedy maximisation of coverage, exact and lazy: the engine of ProbCover and
MaxHerding.

Both methods pick, one point at a time, the unlabeled point that most increases

    F(S) = sum_i max_{s in S ∪ L} k(x_i, s)

over the whole pool (L the labeled points, which count as already picked), with

    tophat    k(x, s) = 1[|x - s| < delta]      ProbCover (Yehuda et al. 2022):
              F counts the points within delta of a pick, the coverage of the
              delta-ball graph, and the gain of a candidate is its out-degree
              among uncovered points;
    gaussian  k(x, s) = exp(-|x - s|^2 / h^2)  MaxHerding (Bae et al. 2024): the
              generalised coverage, which ProbCover's is a hard-threshold case of.

Exactness and memory. Neither the delta-ball graph nor the N x N kernel matrix is
ever formed (the authors' ProbCover keeps the graph as an edge list; MaxHerding's
code and scikit-activeml keep the N x N kernel). F is monotone submodular, so a
candidate's gain only shrinks as points are picked: *lazy greedy* (Minoux 1978)
keeps an upper bound per candidate, and each step recomputes the exact gain of the
candidates with the largest bounds, `_EVAL` at a time (one pass over the pool as a
[rows, _EVAL] matrix product per block of rows), until the largest bound belongs to
a candidate whose gain was just computed (the pass that adds a pick to the
coverage computes the next step's first such batch, so a step whose first batch
suffices, as is usual for ProbCover, reads the pool once). That candidate is the
exact greedy pick:
its gain is at least every other bound, hence every other gain. Ties go to the
lowest pool index, as `numpy.argmax` over all gains would take. The first bounds
are one blocked pass over all pairs (O(N^2 d) compute, O(N) memory), computed
with a kernel loosened by the float32 error bound of a squared distance, so that
rounding can never make a bound smaller than the gain it bounds. Plain greedy
(`lazy=False`: every candidate's exact gain every step) is kept as the reference;
the two give the same picks (tested).

Memory beyond the features: per point, the coverage so far and its copy for a
restart, the squared norm (4 bytes each, split over devices), the bounds and
their copy (4 bytes each) and two flags: about 22 bytes, no N x N, N x b or edge
list. Sharded over devices, every vector that indexes candidates is replicated
and each device scores its own rows (`_pool`).

Beyond full coverage. Once every point is covered (ProbCover: no candidate covers
a new point; the authors' code then returns index 0 again and again) the rest of
the budget restarts the coverage from the labeled points alone, the picks so far
excluded as candidates: a second cover, deterministic and without repeats.
`CoverageStats.resets` counts the restarts.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import distances
from jaxal.coldstart import _pool

KINDS = ("tophat", "gaussian")
_ROWS = 1024  # pool rows per block (the first bounds: [_ROWS, _ROWS] tiles)
_EVAL = 16  # candidates whose exact gain is computed together
_CHUNK = 16  # labeled points folded into the coverage per matrix product
_GAUSS_BOUND = 1e-4  # relative slack of the first gaussian bounds (sum order)


@dataclasses.dataclass(frozen=True)
class CoverageStats:
  """What the greedy did (see the module docstring)."""
  evaluations: int  # exact gains computed over all steps (lazy: the work done)
  resets: int  # restarts after full coverage
  coverage: float  # mean over the pool of max_{s in S ∪ L} k(x_i, s) at the end


def rounding_slack(x: np.ndarray, mean: np.ndarray) -> float:
  """Bound on the float32 error of a squared distance of `sq_dists_to` about
  `mean` (`distances.sq_dist_error_bound`, the bound `jaxal.kcenter` uses), with
  the largest centered norm measured in float64 here."""
  d = x.shape[1]
  r2 = 0.0
  for s in range(0, x.shape[0], 16384):
    c = x[s:s + 16384].astype(np.float64) - mean
    r2 = max(r2, float(np.max(np.sum(c * c, axis=1))))
  return float(distances.sq_dist_error_bound(np.sqrt(r2), float(np.linalg.norm(mean)),
                                             d, eps=float(np.finfo(np.float32).eps)))


def _kernel(kind: str, s: jax.Array, param) -> jax.Array:
  """Kernel values from squared distances; `param` is delta^2 or 1 / h^2."""
  if kind == "tophat":
    return (s < param).astype(s.dtype)
  return jnp.exp(-s * param)


class _State(NamedTuple):
  """The greedy's loop state, on this device's rows (bounds are over all rows)."""
  cur: jax.Array  # [local] coverage of each point: max over picks and labeled of k
  ub: jax.Array  # [padded] upper bound of each candidate's gain (-inf: not a candidate)
  fresh: jax.Array  # [padded] bool: ub is the exact gain for `cur`
  excluded: jax.Array  # [padded] bool: labeled, padding or picked
  selected: jax.Array  # [budget] int32 picks in order
  evaluated: jax.Array  # int32: exact gains computed so far
  resets: jax.Array  # int32: restarts from the labeled coverage (all covered)


class _Search(NamedTuple):
  """Lazy greedy's search for the best candidate: refresh the top bounds until
  the largest is exact."""
  ub: jax.Array
  fresh: jax.Array
  evaluated: jax.Array


def _greedy_local(x, real, excluded, labeled_idx, num_labeled, param, slack, axis, *,
                  kind: str, budget: int, lazy: bool, rows: int, tile: int):
  """The greedy over this device's rows `x` [local, d]; see `greedy`."""
  local, d = x.shape
  padded = excluded.shape[0]
  nb = local // rows
  ones = jnp.ones((d,), x.dtype)
  mean, x_sq = _pool.centered(x, real, axis)
  # Every exact gain comes from a product `evals` columns wide: a product's
  # rounding can depend on its width (XLA may also merge products that share an
  # operand), and lazy greedy must reproduce plain greedy's gains bit for bit.
  evals = min(_EVAL, padded)

  def kvals(b, cvec, loose=False):  # [rows, m] kernel values, row block b
    s = distances.sq_dists_to(_pool.block(x, b, rows), _pool.block(x_sq, b, rows),
                              mean, ones, cvec)
    return _kernel(kind, s - slack if loose else s, param)

  def fold(cur, cvec, valid):  # cur = max(cur, k(x, c)) over the valid centers
    def body(b, cur):
      kv = jnp.max(jnp.where(valid[None, :], kvals(b, cvec), 0), axis=1)
      return jax.lax.dynamic_update_slice_in_dim(
          cur, jnp.maximum(_pool.block(cur, b, rows), kv), b * rows, 0)
    return jax.lax.fori_loop(0, nb, body, cur)

  def block_gains(b, cur_b, cvec, loose=False):  # [m] over row block b
    return jnp.sum(jnp.maximum(kvals(b, cvec, loose) - cur_b[:, None], 0), axis=0)

  def gains(cur, cvec, alive, loose=False):  # [m] sum_i max(k(x_i, c) - cur_i, 0)
    def body(b, acc):
      return acc + block_gains(b, _pool.block(cur, b, rows), cvec, loose)
    g = jax.lax.fori_loop(0, nb, body, jnp.zeros((cvec.shape[0],), x.dtype))
    return jnp.where(alive, _pool.psum(g, axis), -jnp.inf)

  def fold_then_gains(cur, pvec, cvec, alive):
    """`fold(cur, pick)` and then `gains` of the candidates, in one pass over
    the pool (each block read once). The two products keep the shapes of
    `fold`'s and `gains`' own, so the values are theirs bit for bit."""
    def body(b, c):
      cur, acc = c
      cur_b = jnp.maximum(_pool.block(cur, b, rows), kvals(b, pvec)[:, 0])
      return (jax.lax.dynamic_update_slice_in_dim(cur, cur_b, b * rows, 0),
              acc + block_gains(b, cur_b, cvec))
    cur, g = jax.lax.fori_loop(0, nb, body,
                               (cur, jnp.zeros((cvec.shape[0],), x.dtype)))
    return cur, jnp.where(alive, _pool.psum(g, axis), -jnp.inf)

  # Coverage by the labeled points; padding rows are "infinitely covered" so that
  # they add nothing to any gain.
  cur_l = jnp.where(real, 0.0, jnp.inf).astype(x.dtype)

  def fold_labeled(j, cur):
    ids = jax.lax.dynamic_slice_in_dim(labeled_idx, j * _CHUNK, _CHUNK)
    valid = j * _CHUNK + jnp.arange(_CHUNK) < num_labeled
    return fold(cur, _pool.gather(x, ids, axis), valid)

  cur_l = jax.lax.fori_loop(0, (num_labeled + _CHUNK - 1) // _CHUNK, fold_labeled,
                            cur_l)

  def all_gains(cur, excluded):  # plain greedy: every candidate, _EVAL at a time
    def body(j, ub):
      ids = j * evals + jnp.arange(evals)
      g = gains(cur, _pool.gather(x, ids, axis), ~excluded[ids])
      return jax.lax.dynamic_update_slice_in_dim(ub, g, j * evals, 0)
    return jax.lax.fori_loop(0, padded // evals, body,
                             jnp.full((padded,), -jnp.inf, x.dtype))

  if lazy:  # first bounds: all pairs by [rows, tile] tiles, loosened kernel
    def col(j, ub):
      ids = j * tile + jnp.arange(tile)
      g = gains(cur_l, _pool.gather(x, ids, axis), ~excluded[ids], loose=True)
      return jax.lax.dynamic_update_slice_in_dim(ub, g, j * tile, 0)
    ub0 = jax.lax.fori_loop(0, padded // tile, col,
                            jnp.full((padded,), -jnp.inf, x.dtype))
    if kind == "gaussian":  # the bound's sum runs in another order than a gain's
      ub0 = ub0 * (1 + _GAUSS_BOUND)
  else:
    ub0 = jnp.full((padded,), -jnp.inf, x.dtype)

  def find(cur, ub, fresh, excluded):
    """(bounds, the exact greedy pick, exact gains computed); `fresh` marks the
    bounds that are already exact gains for `cur`."""
    if not lazy:
      ub = all_gains(cur, excluded)
      return ub, jnp.argmax(ub), jnp.sum(~excluded)

    def stale(c: _Search):
      j = jnp.argmax(c.ub)
      return ~c.fresh[j] & (c.ub[j] > -jnp.inf)

    def refresh(c: _Search):
      vals, ids = jax.lax.top_k(c.ub, evals)
      alive = vals > -jnp.inf
      g = gains(cur, _pool.gather(x, ids, axis), alive)
      return _Search(c.ub.at[ids].set(g), c.fresh.at[ids].set(c.fresh[ids] | alive),
                     c.evaluated + jnp.sum(alive))

    found = jax.lax.while_loop(stale, refresh,
                               _Search(ub, fresh, jnp.zeros((), jnp.int32)))
    return found.ub, jnp.argmax(found.ub), found.evaluated

  zero = jnp.zeros((), jnp.int32)
  none_fresh = jnp.zeros((padded,), bool)

  def step(i, st: _State) -> _State:
    ub, j, n1 = find(st.cur, st.ub, st.fresh, st.excluded)
    full = ub[j] <= 0  # nothing left to cover: restart from the labeled points

    def restart(_):
      ub2, j2, n2 = find(cur_l, jnp.where(st.excluded, -jnp.inf, ub0), none_fresh,
                         st.excluded)
      return cur_l, ub2, j2, n2

    cur, ub, j, n2 = jax.lax.cond(full, restart, lambda _: (st.cur, ub, j, zero), None)
    ub, excluded = ub.at[j].set(-jnp.inf), st.excluded.at[j].set(True)
    pick = _pool.gather(x, j[None], axis)
    fresh = st.fresh
    if lazy:  # the pick's coverage and the next step's first refresh, one pass
      vals, ids = jax.lax.top_k(ub, evals)
      alive = vals > -jnp.inf
      cur, g = fold_then_gains(cur, pick, _pool.gather(x, ids, axis), alive)
      ub, fresh = ub.at[ids].set(g), none_fresh.at[ids].set(alive)
      n2 = n2 + jnp.sum(alive)
    else:
      cur = fold(cur, pick, jnp.ones((1,), bool))
    return _State(cur, ub, fresh, excluded, st.selected.at[i].set(j.astype(jnp.int32)),
                  st.evaluated + n1 + n2, st.resets + full.astype(jnp.int32))

  init = _State(cur_l, ub0, none_fresh, excluded, jnp.zeros((budget,), jnp.int32),
                zero, zero)
  out = jax.lax.fori_loop(0, budget, step, init)
  covered = _pool.psum(jnp.sum(jnp.where(real, out.cur, 0)), axis)
  return out.selected, out.evaluated, out.resets, covered


@functools.lru_cache(maxsize=32)
def _compiled(lay: _pool.Layout, devices: Optional[tuple], kind: str, budget: int,
              lazy: bool, tile: int):
  fn = functools.partial(_greedy_local, kind=kind, budget=budget, lazy=lazy,
                         rows=lay.rows, tile=tile)
  return _pool.sharded_jit(fn, lay, devices, out_row=(False, False, False, False))


def greedy(features: np.ndarray, budget: int, *, kind: str, param: float,
           labeled_mask: np.ndarray, lazy: bool = True,
           devices: Optional[Sequence[jax.Device]] = None,
           rows: Optional[int] = None,
           tile: Optional[int] = None) -> tuple[np.ndarray, CoverageStats]:
  """Greedy coverage maximisation on validated inputs.

  Args:
    features: [N, d] float32 (already normalised as the method wants).
    budget: points to pick, at most the number of unlabeled points.
    kind: "tophat" (param = delta^2) or "gaussian" (param = 1 / h^2).
    labeled_mask: [N] bool; labeled points cover from the start and are never
      picked.
    lazy: lazy greedy (default) or plain greedy (every gain every step).
    devices: shard the pool by rows over these devices.
    rows: rows per block of a step's pass (default: `_pool.rows_for` the
      platform: 1,024 on a CPU, 2^17 on a GPU).
    tile: columns per block of the first bounds' all-pairs pass, dividing
      `rows` (default: on a CPU the block's rows, [rows, rows] tiles; elsewhere
      as many as a float32 [rows, tile] block of `_pool.ACCEL_BLOCK_BYTES` holds).

  Returns:
    ([budget] int64 picks in order, `CoverageStats`).
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}.")
  n = features.shape[0]
  rows = rows or _pool.rows_for(devices, _ROWS, _EVAL + 1)
  if tile is None and _pool.platform(devices) != "cpu":
    tile = max(_EVAL, _pool.ACCEL_BLOCK_BYTES // (4 * rows))
  if tile is not None and (tile < 1 or tile & (tile - 1) or rows % tile):
    raise ValueError(f"tile must be a power of two dividing rows={rows}, got {tile}.")
  lay, x, real, devs = _pool.split(features, devices, rows, align=tile or 8)
  tile = tile or lay.rows
  excluded = ~real | _pool.pad_rows(np.asarray(labeled_mask, bool), lay.padded)
  slack = 0.0
  if kind == "tophat":  # about the mean the kernel centers on (float32 there)
    slack = rounding_slack(x[:n], x[:n].mean(axis=0, dtype=np.float64))
  labeled = np.flatnonzero(labeled_mask).astype(np.int32)
  idx = np.zeros((_pool.round_up(max(labeled.size, 1), _CHUNK),), np.int32)
  idx[:labeled.size] = labeled
  out = _compiled(lay, devs, kind, int(budget), bool(lazy), int(tile))(
      x, real, excluded, idx, np.int32(labeled.size), np.float32(param),
      np.float32(slack))
  picks = np.asarray(out[0]).astype(np.int64)
  return picks, CoverageStats(int(out[1]), int(out[2]), float(out[3]) / n)
