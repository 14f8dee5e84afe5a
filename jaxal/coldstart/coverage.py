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
candidates with the largest bounds, `Tuning.evals` at a time (one pass over the
pool as a [rows, evals] matrix product per block of rows), until the largest
bound belongs to a candidate whose gain was just computed (the pass that adds a
pick to the coverage computes the next step's first such batch, so a step whose
first batch suffices, as is usual for ProbCover, reads the pool once). That
candidate is the exact greedy pick: its gain is at least every other bound, hence
every other gain. Ties go to the lowest pool index, as `numpy.argmax` over all
gains would take. The first bounds are one blocked pass over all pairs (O(N^2 d)
compute, O(N) memory) by [rows, tile] tiles, computed so that rounding can never
make a bound smaller than the gain it bounds: top-hat with the kernel loosened by
the float32 error bound of a squared distance, Gaussian raised by
`Tuning.gauss_bound` (its sum runs in another order than a gain's). Plain greedy
(`lazy=False`: every candidate's exact gain every step) is kept as the reference;
the two give the same picks (tested).

Memory beyond the features: per point, the coverage so far and its copy for a
restart, the squared norm (4 bytes each, split over devices), the bounds and
their copy (4 bytes each) and two flags: about 22 bytes, no N x N, N x b or edge
list. Sharded over devices, every vector that indexes candidates is replicated
and each device scores its own rows (`_pool`). The budget is an argument of the
compiled kernel; only its selection buffer's size is static (`_capacity`), so
budgets up to the same power of two (at least 1,024) share one compilation.

Beyond full coverage. Once every point is covered (ProbCover: no candidate covers
a new point; the authors' code then returns index 0 again and again) the rest of
the budget restarts the coverage from the labeled points alone, the picks so far
excluded as candidates: a second cover, deterministic and without repeats.
`CoverageStats.resets` counts the restarts.
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

KINDS = ("tophat", "gaussian")


class Tuning(NamedTuple):
  """The greedy's block sizes and the slack of its first bounds.

  Static under `jit` (one compilation per setting); tests pass small blocks to
  reach the code paths that large pools take. They change speed and memory, not
  what is computed; but a Gaussian gain's float32 rounding depends on the blocks
  (the order of its sum), so Gaussian picks may change with them where two gains
  tie within that rounding. Top-hat gains are exact counts.
  """
  rows: Optional[int] = None  # rows per block of a pass over the pool; None:
  # `cpu_rows` on a CPU, elsewhere as large as `_pool.rows_for` allows
  cpu_rows: int = 1024  # rows per block on a CPU (first bounds: [rows, rows] tiles)
  tile: Optional[int] = None  # columns per tile of the first bounds' all-pairs
  # pass, a power of two dividing the rows; None: the rows on a CPU, elsewhere as
  # many as a float32 [rows, tile] block of `_pool.ACCEL_BLOCK_BYTES` holds
  evals: int = 16  # candidates whose exact gain is computed together
  chunk: int = 16  # labeled points folded into the coverage per matrix product
  gauss_bound: float = 1e-4  # relative slack of the first Gaussian bounds, which
  # sum in another order than a gain: less than that rounding could leave a bound
  # below its gain, and lazy greedy would then differ from plain greedy

  def validate(self, name: str = "tuning") -> "Tuning":
    """Checks each field, naming it as `name.field` in the error; returns self."""
    V.check_int_fields(self, ("rows", "cpu_rows", "tile", "evals", "chunk"),
                       ("rows", "tile"), DEFAULT_TUNING, name)
    if self.tile is not None and self.tile & (self.tile - 1):
      lower = 1 << (int(self.tile).bit_length() - 1)
      raise InputError(f"{name}.tile must be a power of two (or None), got "
                       f"{self.tile!r}; pass e.g. {lower}.", field=f"{name}.tile")
    g = self.gauss_bound
    if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) \
        or not math.isfinite(g) or g < 0:
      raise InputError(f"{name}.gauss_bound must be a finite float >= 0, got {g!r}; "
                       f"the default is {DEFAULT_TUNING.gauss_bound!r}.",
                       field=f"{name}.gauss_bound")
    return self


DEFAULT_TUNING = Tuning()


def check_tuning(tuning: Optional[Tuning], name: str = "tuning") -> Tuning:
  """`tuning` validated, or `DEFAULT_TUNING` for None; errors call the argument
  `name`."""
  return V.check_tuning(tuning, Tuning, DEFAULT_TUNING, name)


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


def _capacity(budget: int) -> int:
  """Selection buffer for `budget`: 1,024, or the next power of two above it (the
  rule of `jaxal.kcenter`); the budget itself is an argument of the kernel."""
  return max(1024, 1 << max(budget - 1, 0).bit_length())


def _kernel(kind: str, s: jax.Array, param) -> jax.Array:
  """Kernel values from squared distances; `param` is delta^2 or 1 / h^2."""
  if kind == "tophat":
    return (s < param).astype(s.dtype)
  return jnp.exp(-s * param)


class _Pool(NamedTuple):
  """What every step reads: this device's rows, their constants, the kernel."""
  x: jax.Array  # [local, d] this device's rows of the pool
  x_sq: jax.Array  # [local] squared distance of each row to `mean`
  mean: jax.Array  # [d] the pool's mean over its real rows (all devices)
  ones: jax.Array  # [d] unit weights of the squared distance
  real: jax.Array  # [local] bool: a row of the pool, not padding
  param: jax.Array  # delta^2 (top-hat) or 1 / h^2 (Gaussian)
  slack: jax.Array  # loosens the top-hat kernel of the first bounds (rounding bound)
  axis: Optional[str]  # static: the device axis, None on one device
  kind: str  # static: "tophat" or "gaussian"
  rows: int  # static: rows per block
  evals: int  # static: candidates per exact-gain product (at most `padded`)
  padded: int  # static: rows of the padded pool over all devices

  @property
  def num_blocks(self) -> int:
    return self.x.shape[0] // self.rows


class _Start(NamedTuple):
  """Where a restart after full coverage begins (and the greedy itself)."""
  cur: jax.Array  # [local] coverage by the labeled points alone (padding: inf)
  ub: jax.Array  # [padded] the first bounds (plain greedy: -inf, unused)


class _State(NamedTuple):
  """The greedy's loop state, on this device's rows (bounds are over all rows)."""
  cur: jax.Array  # [local] coverage of each point: max over picks and labeled of k
  ub: jax.Array  # [padded] upper bound of each candidate's gain (-inf: not a candidate)
  fresh: jax.Array  # [padded] bool: ub is the exact gain for `cur`
  excluded: jax.Array  # [padded] bool: labeled, padding or picked
  selected: jax.Array  # [capacity] int32 picks in order
  evaluated: jax.Array  # int32: exact gains computed so far
  resets: jax.Array  # int32: restarts from the labeled coverage (all covered)


class _Search(NamedTuple):
  """Lazy greedy's search for the best candidate: refresh the top bounds until
  the largest is exact."""
  ub: jax.Array
  fresh: jax.Array
  evaluated: jax.Array


# ------------------------------------------------------- passes over the pool
def _kvals(pool: _Pool, b, cvec, loose=False):
  """[rows, m] kernel values between row block b and the points `cvec` [m, d];
  `loose` lowers the squared distances by the slack (the first bounds)."""
  s = distances.sq_dists_to(_pool.block(pool.x, b, pool.rows),
                            _pool.block(pool.x_sq, b, pool.rows), pool.mean, pool.ones,
                            cvec)
  return _kernel(pool.kind, s - pool.slack if loose else s, pool.param)


def _fold(pool: _Pool, cur, cvec, valid):
  """cur = max(cur, k(x, c)) over the valid points c of `cvec` [m, d]."""
  def body(b, cur):
    kv = jnp.max(jnp.where(valid[None, :], _kvals(pool, b, cvec), 0), axis=1)
    return jax.lax.dynamic_update_slice_in_dim(
        cur, jnp.maximum(_pool.block(cur, b, pool.rows), kv), b * pool.rows, 0)
  return jax.lax.fori_loop(0, pool.num_blocks, body, cur)


def _block_gains(pool: _Pool, b, cur_b, cvec, loose=False):
  """[m] sum over row block b of max(k(x_i, c) - cur_i, 0)."""
  return jnp.sum(jnp.maximum(_kvals(pool, b, cvec, loose) - cur_b[:, None], 0), axis=0)


def _gains(pool: _Pool, cur, cvec, alive, loose=False):
  """[m] gains sum_i max(k(x_i, c) - cur_i, 0) over the whole pool, -inf where
  not `alive`."""
  def body(b, acc):
    return acc + _block_gains(pool, b, _pool.block(cur, b, pool.rows), cvec, loose)
  g = jax.lax.fori_loop(0, pool.num_blocks, body,
                        jnp.zeros((cvec.shape[0],), pool.x.dtype))
  return jnp.where(alive, _pool.psum(g, pool.axis), -jnp.inf)


def _fold_then_gains(pool: _Pool, cur, pvec, cvec, alive):
  """`_fold(cur, pick)` and then `_gains` of the candidates, in one pass over
  the pool (each block read once). The two products keep the shapes of
  `_fold`'s and `_gains`' own, so the values are theirs bit for bit."""
  def body(b, c):
    cur, acc = c
    cur_b = jnp.maximum(_pool.block(cur, b, pool.rows), _kvals(pool, b, pvec)[:, 0])
    return (jax.lax.dynamic_update_slice_in_dim(cur, cur_b, b * pool.rows, 0),
            acc + _block_gains(pool, b, cur_b, cvec))
  cur, g = jax.lax.fori_loop(0, pool.num_blocks, body,
                             (cur, jnp.zeros((cvec.shape[0],), pool.x.dtype)))
  return cur, jnp.where(alive, _pool.psum(g, pool.axis), -jnp.inf)


def _every_gain(pool: _Pool, cur, excluded, width: int, loose=False):
  """[padded] the gain of every candidate (-inf where excluded), `width`
  candidates per pass over the pool."""
  def body(j, ub):
    ids = j * width + jnp.arange(width)
    g = _gains(pool, cur, _pool.gather(pool.x, ids, pool.axis), ~excluded[ids], loose)
    return jax.lax.dynamic_update_slice_in_dim(ub, g, j * width, 0)
  return jax.lax.fori_loop(0, pool.padded // width, body,
                           jnp.full((pool.padded,), -jnp.inf, pool.x.dtype))


# ---------------------------------------------------------------- the start
def _labeled_coverage(pool: _Pool, labeled_idx, num_labeled, chunk: int):
  """[local] coverage by the labeled points, `chunk` of them per product;
  padding rows are "infinitely covered" so that they add nothing to any gain."""
  def fold_chunk(j, cur):
    ids = jax.lax.dynamic_slice_in_dim(labeled_idx, j * chunk, chunk)
    valid = j * chunk + jnp.arange(chunk) < num_labeled
    return _fold(pool, cur, _pool.gather(pool.x, ids, pool.axis), valid)
  cur = jnp.where(pool.real, 0.0, jnp.inf).astype(pool.x.dtype)
  return jax.lax.fori_loop(0, (num_labeled + chunk - 1) // chunk, fold_chunk, cur)


def _first_bounds(pool: _Pool, cur, excluded, tuning: Tuning):
  """[padded] the lazy greedy's first bounds: all pairs by [rows, tile] tiles,
  the top-hat kernel loosened, the Gaussian bounds raised (module docstring)."""
  ub = _every_gain(pool, cur, excluded, tuning.tile, loose=True)
  if pool.kind == "gaussian":  # the bound's sum runs in another order than a gain's
    ub = ub * (1 + tuning.gauss_bound)
  return ub


# ------------------------------------------------------------- one greedy pick
def _stale(search: _Search):
  """Whether the largest bound is not yet an exact gain."""
  j = jnp.argmax(search.ub)
  return ~search.fresh[j] & (search.ub[j] > -jnp.inf)


def _refresh(pool: _Pool, cur, search: _Search) -> _Search:
  """The exact gains of the `evals` candidates with the largest bounds."""
  vals, ids = jax.lax.top_k(search.ub, pool.evals)
  alive = vals > -jnp.inf
  g = _gains(pool, cur, _pool.gather(pool.x, ids, pool.axis), alive)
  return _Search(search.ub.at[ids].set(g),
                 search.fresh.at[ids].set(search.fresh[ids] | alive),
                 search.evaluated + jnp.sum(alive))


def _find(pool: _Pool, lazy: bool, cur, ub, fresh, excluded):
  """(bounds, the exact greedy pick, exact gains computed); `fresh` marks the
  bounds that are already exact gains for `cur`. Plain greedy computes every
  candidate's gain."""
  if not lazy:
    ub = _every_gain(pool, cur, excluded, pool.evals)
    return ub, jnp.argmax(ub), jnp.sum(~excluded)
  found = jax.lax.while_loop(_stale, functools.partial(_refresh, pool, cur),
                             _Search(ub, fresh, jnp.zeros((), jnp.int32)))
  return found.ub, jnp.argmax(found.ub), found.evaluated


def _restart(pool: _Pool, start: _Start, lazy: bool, excluded):
  """(coverage, bounds, pick, exact gains computed) of a second cover: the
  labeled coverage and the first bounds again, the picks so far excluded."""
  ub, j, evaluated = _find(pool, lazy, start.cur,
                           jnp.where(excluded, -jnp.inf, start.ub),
                           jnp.zeros((pool.padded,), bool), excluded)
  return start.cur, ub, j, evaluated


def _step(pool: _Pool, start: _Start, lazy: bool, i, st: _State) -> _State:
  """Pick i: the exact greedy pick (from a restart when nothing is left to
  cover), its coverage folded in and, lazy, the next step's first refresh in the
  same pass."""
  ub, j, n1 = _find(pool, lazy, st.cur, st.ub, st.fresh, st.excluded)
  full = ub[j] <= 0  # nothing left to cover: restart from the labeled points
  cur, ub, j, n2 = jax.lax.cond(
      full, lambda _: _restart(pool, start, lazy, st.excluded),
      lambda _: (st.cur, ub, j, jnp.zeros((), jnp.int32)), None)
  ub, excluded = ub.at[j].set(-jnp.inf), st.excluded.at[j].set(True)
  pick = _pool.gather(pool.x, j[None], pool.axis)
  fresh = st.fresh
  if lazy:  # the pick's coverage and the next step's first refresh, one pass
    vals, ids = jax.lax.top_k(ub, pool.evals)
    alive = vals > -jnp.inf
    cur, g = _fold_then_gains(pool, cur, pick, _pool.gather(pool.x, ids, pool.axis),
                              alive)
    ub = ub.at[ids].set(g)
    fresh = jnp.zeros((pool.padded,), bool).at[ids].set(alive)
    n2 = n2 + jnp.sum(alive)
  else:
    cur = _fold(pool, cur, pick, jnp.ones((1,), bool))
  return _State(cur, ub, fresh, excluded, st.selected.at[i].set(j.astype(jnp.int32)),
                st.evaluated + n1 + n2, st.resets + full.astype(jnp.int32))


def _greedy_local(x, real, excluded, labeled_idx, num_labeled, param, slack, budget,
                  axis, *, kind: str, capacity: int, lazy: bool, tuning: Tuning):
  """The greedy over this device's rows `x` [local, d]; see `greedy`.

  Args:
    x, real: this device's [local, d] rows and [local] bool real (not padding).
    excluded: [padded] bool, never picked (labeled or padding).
    labeled_idx: [L] int32 labeled indices, L a multiple of `tuning.chunk`.
    num_labeled: int32 scalar, the real entries of `labeled_idx`.
    param, slack: the kernel's parameter and the first bounds' slack.
    budget: int32 scalar, picks to make, at most `capacity`.
    axis: the device axis, None on one device.
    kind, lazy: static, as in `greedy`.
    capacity: static size of the selection buffer (`_capacity(budget)`): one
      compilation serves every budget up to it.
    tuning: static, with `rows` and `tile` resolved (`_kernel_tuning`).

  Returns:
    ([capacity] int32 picks in order, the first `budget` real; exact gains
    computed; restarts; the coverage summed over the pool).
  """
  mean, x_sq = _pool.centered(x, real, axis)
  padded = excluded.shape[0]
  # Every exact gain comes from a product `evals` columns wide: a product's
  # rounding can depend on its width (XLA may also merge products that share an
  # operand), and lazy greedy must reproduce plain greedy's gains bit for bit.
  pool = _Pool(x, x_sq, mean, jnp.ones((x.shape[1],), x.dtype), real, param, slack,
               axis, kind, tuning.rows, min(tuning.evals, padded), padded)
  cur_l = _labeled_coverage(pool, labeled_idx, num_labeled, tuning.chunk)
  if lazy:
    ub0 = _first_bounds(pool, cur_l, excluded, tuning)
  else:
    ub0 = jnp.full((padded,), -jnp.inf, x.dtype)
  zero = jnp.zeros((), jnp.int32)
  init = _State(cur_l, ub0, jnp.zeros((padded,), bool), excluded,
                jnp.zeros((capacity,), jnp.int32), zero, zero)
  out = jax.lax.fori_loop(0, budget, functools.partial(_step, pool, _Start(cur_l, ub0),
                                                       lazy), init)
  covered = _pool.psum(jnp.sum(jnp.where(real, out.cur, 0)), axis)
  return out.selected, out.evaluated, out.resets, covered


@functools.lru_cache(maxsize=32)
def _compiled(lay: _pool.Layout, devices: Optional[tuple], kind: str, capacity: int,
              lazy: bool, tuning: Tuning):
  fn = functools.partial(_greedy_local, kind=kind, capacity=capacity, lazy=lazy,
                         tuning=tuning)
  return _pool.sharded_jit(fn, lay, devices, out_row=(False, False, False, False))


def _blocks(tuning: Tuning, devices) -> tuple[int, Optional[int]]:
  """(rows per block, tile or None for the layout's rows) on `devices`' platform."""
  rows = tuning.rows or _pool.rows_for(devices, tuning.cpu_rows, tuning.evals + 1)
  tile = tuning.tile
  if tile is None and _pool.platform(devices) != "cpu":
    tile = max(tuning.evals, _pool.ACCEL_BLOCK_BYTES // (4 * rows))
  if tile is not None and (tile < 1 or tile & (tile - 1) or rows % tile):
    raise InputError(f"tuning.tile must be a power of two dividing rows={rows}, got "
                     f"{tile}; pass a smaller tile or rows a multiple of it.",
                     field="tuning.tile")
  return int(rows), tile


def _kernel_tuning(tuning: Tuning, rows: int, tile: int) -> Tuning:
  """What the kernel compiles for: the layout's rows and the tile (`cpu_rows` set
  to the rows too, so that settings giving the same blocks share a compilation),
  as plain Python numbers."""
  return Tuning(rows=rows, cpu_rows=rows, tile=int(tile), evals=int(tuning.evals),
                chunk=int(tuning.chunk), gauss_bound=float(tuning.gauss_bound))


def greedy(features: np.ndarray, budget: int, *, kind: str, param: float,
           labeled_mask: np.ndarray, lazy: bool = True,
           devices: Optional[Sequence[jax.Device]] = None,
           tuning: Optional[Tuning] = None) -> tuple[np.ndarray, CoverageStats]:
  """Greedy coverage maximisation on validated inputs.

  Args:
    features: [N, d] float32 (already normalised as the method wants).
    budget: points to pick, at most the number of unlabeled points.
    kind: "tophat" (param = delta^2) or "gaussian" (param = 1 / h^2).
    labeled_mask: [N] bool; labeled points cover from the start and are never
      picked.
    lazy: lazy greedy (default) or plain greedy (every gain every step).
    devices: shard the pool by rows over these devices.
    tuning: block sizes and the first bounds' slack (`Tuning`; default
      `DEFAULT_TUNING`: 1,024 rows per block on a CPU, 2^17 on a GPU).

  Returns:
    ([budget] int64 picks in order, `CoverageStats`).
  """
  if kind not in KINDS:
    raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}.",
                     field="kind")
  tuning = check_tuning(tuning)
  n = features.shape[0]
  rows, tile = _blocks(tuning, devices)
  lay, x, real, devs = _pool.split(features, devices, rows, align=tile or 8)
  tile = tile or lay.rows
  excluded = ~real | _pool.pad_rows(np.asarray(labeled_mask, bool), lay.padded)
  slack = 0.0
  if kind == "tophat":  # about the mean the kernel centers on (float32 there)
    slack = rounding_slack(x[:n], x[:n].mean(axis=0, dtype=np.float64))
  labeled = np.flatnonzero(labeled_mask).astype(np.int32)
  idx = np.zeros((_pool.round_up(max(labeled.size, 1), tuning.chunk),), np.int32)
  idx[:labeled.size] = labeled
  budget = int(budget)
  out = _compiled(lay, devs, kind, _capacity(budget), bool(lazy),
                  _kernel_tuning(tuning, lay.rows, tile))(
      x, real, excluded, idx, np.int32(labeled.size), np.float32(param),
      np.float32(slack), np.int32(budget))
  picks = np.asarray(out[0])[:budget].astype(np.int64)
  return picks, CoverageStats(int(out[1]), int(out[2]), float(out[3]) / n)
