"""Greedy k-center (farthest-first traversal), the core-set acquisition function.

Implements method guide §3 "core-set" (Sener & Savarese 2018, as used by the
paper): repeatedly add the pool point farthest from its nearest center. Labeled
points are the initial centers; with none, the first center is drawn from the seed
and counts toward the budget. Distances are Euclidean on the source embedding f,
optionally after per-dimension min-max normalisation (a reconstructed [R] option).

Speed and memory. Evaluated eagerly, each step compares the new center with every
pool point: one pass over the [N, d] features per step, bound by memory bandwidth.
The kernel instead evaluates lazily by blocks of `Tuning.rows` rows. A point's distance
to its nearest center only shrinks as centers are added, so each block keeps an
upper bound of its largest such distance; a block is brought up to date (all its
pending centers applied at once, a [rows, pending] matmul) only when that bound
could hold the farthest point. On the benchmark's 50,000 x 512 pool this reads
about 2% of the bytes of eager evaluation and turns matrix-vector products into
compute-bound matrix products; the result is the same. Everything runs in one
jitted `lax.fori_loop` with no host round trip. Memory beyond the features is
O(N): the distances to the nearest and second-nearest center, the nearest center's
index and the norms; never an N x N or N x b matrix (XLA's temporaries come to
about 29 bytes per point, tested). Labeled centers are folded in the same way,
block by block of rows, `Tuning.chunk` per matmul. Compiling the kernel is a fixed cost
of +37 MiB on CPU with `_xla_cpu.loop_emitter_options` (+200 MiB with XLA:CPU's
default emitters; tested in a fresh process). On CPU, pass a 64-byte-aligned
array (`jaxal.hostmem`) or XLA copies the features once. Sharded over
several devices, the kernel evaluates eagerly (one row-sharded matrix-vector
product per step).

Exactness. Float32 rounding can flip a near-tie between the two farthest points.
Each step therefore takes the float32 maximum v and every point within 2 * delta
of it, where delta bounds the float32 rounding error of any squared distance
(Higham & Mary's probabilistic inner-product bound,
`distances.sq_dist_error_bound`); when
more than one point qualifies, every point in the band is re-scored exactly, in
float64 against every center, and the farthest is taken, the lowest index among
exact ties, however many there are (up to `Tuning.few` candidates in one pass;
more, as on integer features where hundreds of points tie, `Tuning.refine` at a
time in index order). The selection then equals a float64 farthest-first traversal that takes
the lowest index on ties (numpy's `argmax`, sklearn's `pairwise_distances` loop),
at float32 speed, as long as the rounding bound holds (it fails with probability
below 1e-13 per inner product). `KCenterStats` reports how often the re-scoring
ran, and how often it took more than one pass.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jaxal import _validation as V
from jaxal import _xla_cpu
from jaxal import distances
from jaxal.errors import InputError

class Tuning(NamedTuple):
  """The kernel's block sizes: they change its speed and memory, never its picks.

  Static under `jit` (one compilation per setting); tests pass small ones to
  reach the code paths that large pools take.
  """
  rows: int = 512  # rows per block of the lazy evaluation
  pending: int = 16  # centers applied per matmul when a block is refreshed
  chunk: int = 128  # labeled centers folded in per matmul ([rows, chunk] temporary)
  block: int = 128  # centers per block of the exact re-scoring ([K, block] temporaries);
  # also the padding of the labeled indices, so chunk <= block
  few: int = 4  # candidates re-scored in one pass (most ties are between 2 or 3)
  refine: int = 64  # candidates per pass when more than `few` points are in the band
  # (16 took 30% longer where hundreds are: each pass gathers every center anew)

  def validate(self) -> "Tuning":
    """Checks that every size is a positive int and chunk <= block."""
    for name, v in self._asdict().items():
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"tuning.{name} must be a positive int, got {v!r}.")
    if self.chunk > self.block:
      raise InputError(f"tuning.chunk ({self.chunk}) must be <= tuning.block "
                       f"({self.block}), the padding of the labeled indices.")
    return self


DEFAULT_TUNING = Tuning()
_WIDE = 64  # from this many centers per matmul, `_merge` avoids argmin


@dataclasses.dataclass(frozen=True)
class KCenterStats:
  """How often the exact tie-break ran (see the module docstring)."""
  refined_steps: int  # steps where more than one point was within the error band
  overflow_steps: int  # of those, steps with more than `few` such points (several passes)
  error_bound: float  # delta: bound on the float32 error of a squared distance
  block_refreshes: int  # lazy evaluation: blocks brought up to date, all steps


def _round_up(n: int, k: int) -> int:
  return -(-n // k) * k


def _capacity(budget: int) -> int:
  """Selection buffer for `budget`: 1,024, or the next power of two above it.
  The budget itself is an argument of the compiled kernel, so the budgets of a
  table (40, 80, 160 in the quickstart) share one compilation (~1.6 s each on a
  2-core CPU) instead of one each."""
  return max(1024, 1 << max(budget - 1, 0).bit_length())


class _Pool(NamedTuple):
  """What every step reads: the features, their constants, the block layout."""
  x: jax.Array  # [N, d] features (rows of padding marked in `excluded`)
  x_sq: jax.Array  # [N] |x - mean|_w^2 (`distances.centered_sq_norms`)
  mean: jax.Array  # [d] centering vector
  weights: jax.Array  # [d] per-dimension weights of the squared distance
  labeled_idx: jax.Array  # [L] int32 labeled indices, padded (see the kernel)
  num_labeled: jax.Array  # int32 scalar: real entries of labeled_idx
  band: jax.Array  # 2 delta: two float32 distances closer than this may be misordered
  rows: int  # static: rows per block (the last block overlaps its left neighbour)
  exact_dtype: str  # static: dtype of the exact re-scoring

  @property
  def n(self) -> int:
    return self.x.shape[0]

  @property
  def num_blocks(self) -> int:
    return -(-self.n // self.rows)


class _Blocks(NamedTuple):
  """Per-point and per-block state of the lazy farthest-first traversal."""
  md: jax.Array  # [N] float32 squared distance to the nearest center (stale: bound)
  md2: jax.Array  # [N] ... to the second nearest
  near: jax.Array  # [N] int32 index of the nearest center
  top: jax.Array  # [blocks] upper bound of each block's largest md
  done: jax.Array  # [blocks] int32 selected centers already applied to the block


class _Carry(NamedTuple):
  """The step loop's state."""
  blocks: _Blocks
  selected: jax.Array  # [capacity + pending, rounded up] int32 picks so far
  refined: jax.Array  # int32: steps with a tie-break
  overflow: jax.Array  # int32: ... with more than `few` points in the band
  refreshes: jax.Array  # int32: blocks brought up to date


@functools.lru_cache(maxsize=None)
def _kernel(platform: str):
  """`_kcenter_kernel` jitted for `platform` (on CPU with
  `_xla_cpu.loop_emitter_options`: a compilation in 37 instead of 200 MiB)."""
  return jax.jit(_kcenter_kernel, static_argnames=("capacity", "exact_dtype", "lam",
                                                   "tuning"),
                 compiler_options=_xla_cpu.loop_emitter_options(platform))


# ------------------------------------------------------- nearest two centers
def _merge(state, dist, ids):
  """Folds [R, k] squared distances to centers `ids` [k] into (md, md2, near):
  per row, the distance to the nearest center, to the second nearest, and the
  nearest's index. When md2 - md > 2 delta, float32 cannot have mistaken which
  center is nearest, so a point's exact distance is one float64 difference with
  `near` (the common case of a tie-break)."""
  md, md2, near = state
  d1 = jnp.min(dist, axis=1)
  if dist.shape[1] >= _WIDE:
    # Three plain reductions instead of argmin's variadic (value, index) one,
    # which XLA:CPU emits as a slow scalar loop: 165 against 231 us per
    # [512, 128] block; 175 against 329 with `_xla_cpu.loop_emitter_options`.
    is_min = dist == d1[:, None]
    col = jnp.min(jnp.where(is_min, jnp.arange(dist.shape[1], dtype=jnp.int32),
                            dist.shape[1]), axis=1)  # argmin's first occurrence
    d2 = jnp.where(jnp.sum(is_min, axis=1, dtype=jnp.int32) > 1, d1,
                   jnp.min(jnp.where(is_min, jnp.inf, dist), axis=1))
  else:
    col = jnp.argmin(dist, axis=1)
    d2 = jnp.min(jnp.where(jnp.arange(dist.shape[1]) == col[:, None], jnp.inf,
                           dist), axis=1)
  closer = d1 < md
  return (jnp.where(closer, d1, md),
          jnp.where(closer, jnp.minimum(md, d2), jnp.minimum(md2, d1)),
          jnp.where(closer, ids[col], near))


# ------------------------------------------------------------------ blocks
def _block_start(pool: _Pool, k):
  """First row of block k; the last block overlaps its left neighbour."""
  return jnp.minimum(k * pool.rows, pool.n - pool.rows)


def _own_rows(pool: _Pool, k):
  """[rows] bool: the rows of block k not already in its left neighbour."""
  return _block_start(pool, k) + jnp.arange(pool.rows) >= k * pool.rows


def _block_top(pool: _Pool, md, k):
  """The largest md over block k's own rows."""
  return jnp.max(jnp.where(
      _own_rows(pool, k), jax.lax.dynamic_slice_in_dim(md, _block_start(pool, k),
                                                       pool.rows), -jnp.inf))


def _fold_into_block(pool: _Pool, k, fields, centers, offset, count, chunk: int):
  """Folds centers[offset:offset + count] into block k's rows of `fields` (md,
  md2, near), `chunk` centers per [rows, chunk] matmul: the temporaries are the
  block's size, not N's. Rows that the overlapping last block shares with its
  left neighbour keep their values (folding a center twice would make md2 = md)."""
  start = _block_start(pool, k)
  xb = jax.lax.dynamic_slice_in_dim(pool.x, start, pool.rows)
  xb_sq = jax.lax.dynamic_slice_in_dim(pool.x_sq, start, pool.rows)
  old = tuple(jax.lax.dynamic_slice_in_dim(a, start, pool.rows) for a in fields)

  def apply(j, blk):
    ids = jax.lax.dynamic_slice_in_dim(centers, offset + j * chunk, chunk)
    valid = j * chunk + jnp.arange(chunk) < count
    dist = distances.sq_dists_to(xb, xb_sq, pool.mean, pool.weights, pool.x[ids])
    return _merge(blk, jnp.where(valid[None, :], dist, jnp.inf), ids)

  new = jax.lax.fori_loop(0, (count + chunk - 1) // chunk, apply, old)
  new = tuple(jnp.where(_own_rows(pool, k), a, b) for a, b in zip(new, old))
  return tuple(jax.lax.dynamic_update_slice_in_dim(a, b, start, 0)
               for a, b in zip(fields, new))


def _initial_blocks(pool: _Pool, excluded, chunk: int) -> _Blocks:
  """The labeled centers folded in block by block of rows (each block's
  features stay in cache across all the labeled chunks); excluded points get
  -inf, so they are never picked; every block up to date with no pick yet."""
  inf = jnp.full((pool.n,), jnp.inf, pool.x.dtype)
  fields = (inf, inf, jnp.full((pool.n,), -1, jnp.int32))
  md, md2, near = jax.lax.fori_loop(
      0, jnp.where(pool.num_labeled > 0, pool.num_blocks, 0),
      lambda k, f: _fold_into_block(pool, k, f, pool.labeled_idx, 0, pool.num_labeled,
                                    chunk), fields)
  md = jnp.where(excluded, -jnp.inf, md)
  padded_md = jnp.pad(md, (0, pool.num_blocks * pool.rows - pool.n),
                      constant_values=-jnp.inf)
  top = jnp.max(padded_md.reshape(pool.num_blocks, pool.rows), axis=1)
  return _Blocks(md, md2, near, top, jnp.zeros((pool.num_blocks,), jnp.int32))


def _refresh(pool: _Pool, k, blocks: _Blocks, selected, i, pending: int) -> _Blocks:
  """Applies block k's pending centers, selected[done[k]:i], `pending` per matmul."""
  done_k = blocks.done[k]
  md, md2, near = _fold_into_block(pool, k, (blocks.md, blocks.md2, blocks.near),
                                   selected, done_k, i - done_k, pending)
  return _Blocks(md, md2, near, blocks.top.at[k].set(_block_top(pool, md, k)),
                 blocks.done.at[k].set(i))


def _bring_up_to_date(pool: _Pool, blocks: _Blocks, selected, i, skip, refreshes,
                      pending: int):
  """Refreshes blocks, the most promising first, until no stale block's bound
  reaches the error band of the best up-to-date value: then every point that
  could be the farthest is up to date, and the others provably cannot be.
  Distances only shrink as centers are added, so a stale block's `top` stays an
  upper bound. Returns (blocks, refreshes + the blocks refreshed)."""

  def stale_ahead(c):
    b, _ = c
    stale = b.done < i
    best = jnp.max(jnp.where(stale, -jnp.inf, b.top))
    ahead = jnp.max(jnp.where(stale, b.top, -jnp.inf))
    return ~skip & (ahead >= best - pool.band)

  def refresh_next(c):
    b, count = c
    k = jnp.argmax(jnp.where(b.done < i, b.top, -jnp.inf))
    return _refresh(pool, k, b, selected, i, pending), count + 1

  return jax.lax.while_loop(stale_ahead, refresh_next, (blocks, refreshes))


# --------------------------------------------------------- exact tie-break
def _exact_sq(pool: _Pool, a, b):
  """[K] exact squared distances between rows a[k] and b[k]."""
  t = pool.exact_dtype
  diff = pool.x[a].astype(t) - pool.x[b].astype(t)
  return jnp.sum(pool.weights.astype(t) * jnp.square(diff), axis=1)


def _exact_min_dist(pool: _Pool, cands, selected, num_selected, block: int):
  """[K] exact squared distance of each candidate to its nearest center (the
  labeled ones and the first `num_selected` picks), `block` centers at a time."""
  t = pool.exact_dtype
  mu, w = pool.mean.astype(t), pool.weights.astype(t)
  xc = (pool.x[cands].astype(t) - mu) * w  # [K, d]
  xc_sq = jnp.sum(xc * (pool.x[cands].astype(t) - mu), axis=1)
  hi = jax.lax.Precision.HIGHEST

  def over(ids_all, count):
    def body(j, cur):  # one block of centers, as a small matmul
      ids = jax.lax.dynamic_slice_in_dim(ids_all, j * block, block)
      c = pool.x[ids].astype(t) - mu
      dd = (xc_sq[:, None] + jnp.sum(w * c * c, axis=1)[None, :]
            - 2 * jnp.dot(xc, c.T, precision=hi))
      valid = j * block + jnp.arange(block) < count
      return jnp.minimum(cur, jnp.min(jnp.where(valid[None, :], dd, jnp.inf), 1))
    return body

  cur = jnp.full((cands.shape[0],), jnp.inf, t)
  cur = jax.lax.fori_loop(0, (pool.num_labeled + block - 1) // block,
                          over(pool.labeled_idx, pool.num_labeled), cur)
  return jax.lax.fori_loop(0, (num_selected + block - 1) // block,
                           over(selected, num_selected), cur)


def _exact_scores(pool: _Pool, blocks: _Blocks, cands, valid, selected, i, block: int):
  """[K] exact distance of each valid candidate to its nearest center, else
  -inf: one float64 difference where the nearest center is certain (md2 - md
  beyond the band), a re-scoring against every center otherwise."""
  sure = blocks.md2[cands] - blocks.md[cands] > pool.band
  exact = jax.lax.cond(
      jnp.all(sure | ~valid), lambda: _exact_sq(pool, cands, blocks.near[cands]),
      lambda: _exact_min_dist(pool, cands, selected, i, block))
  return jnp.where(valid, exact, -jnp.inf)


def _refine_few(pool: _Pool, blocks: _Blocks, selected, i, cutoff, tuning: Tuning):
  """The farthest of at most `tuning.few` points in the band, in one pass (the
  lowest index among exact ties)."""
  _, cands = jax.lax.top_k(blocks.md, min(tuning.few, pool.n))
  exact = _exact_scores(pool, blocks, cands, blocks.md[cands] >= cutoff, selected, i,
                        tuning.block)
  best = jnp.max(exact)
  return jnp.min(jnp.where(exact == best, cands, pool.n)).astype(jnp.int32)


def _refine_all(pool: _Pool, blocks: _Blocks, selected, i, cutoff, in_band,
                tuning: Tuning):
  """The farthest of every point in the band, `tuning.refine` at a time in index
  order.

  A later pass replaces the running best only when strictly farther, so the
  lowest index wins exact ties, however many points tie (integer features).
  Stale points are not in the band: their bounds lie below the cutoff.
  """
  size = tuning.refine
  member = blocks.md >= cutoff
  # rank of each band member in index order (int32: under x64 a cumsum and
  # jnp.nonzero would keep [N] int64 temporaries)
  order = jnp.cumsum(member, dtype=jnp.int32) - 1
  everyone = jnp.arange(pool.n, dtype=jnp.int32)

  def one_pass(c):
    t, best_val, best_idx = c
    # this pass's members in slots 0..size-1; the others in slot `size`, out of
    # range, dropped (a negative slot would wrap around)
    slot = jnp.where(member & (order >= t * size), order - t * size, size)
    cands = jnp.zeros((size,), jnp.int32).at[slot].set(everyone, mode="drop")
    valid = jnp.arange(size) < in_band - t * size
    exact = _exact_scores(pool, blocks, cands, valid, selected, i, tuning.block)
    j = jnp.argmax(exact)  # first maximum: the lowest index of this pass
    better = exact[j] > best_val
    return (t + 1, jnp.where(better, exact[j], best_val),
            jnp.where(better, cands[j], best_idx))

  init = (jnp.zeros((), jnp.int32), jnp.array(-jnp.inf, pool.exact_dtype),
          jnp.zeros((), jnp.int32))
  return jax.lax.while_loop(lambda c: c[0] * size < in_band, one_pass, init)[2]


# -------------------------------------------------------------------- step
def _step(pool: _Pool, tuning: Tuning, first, i, carry: _Carry) -> _Carry:
  """Pick i: bring the blocks that could hold the farthest point up to date,
  take the float32 farthest or, when several points lie within the error band
  of it, the exact farthest among them."""
  use_first = (i == 0) & (pool.num_labeled == 0)
  blocks, refreshes = _bring_up_to_date(pool, carry.blocks, carry.selected, i,
                                        use_first, carry.refreshes, tuning.pending)
  best = jnp.argmax(blocks.md).astype(jnp.int32)
  cutoff = blocks.md[best] - pool.band
  in_band = jnp.sum(blocks.md >= cutoff).astype(jnp.int32)
  tie = (in_band > 1) & ~use_first
  branch = jnp.where(tie, jnp.where(in_band > tuning.few, 2, 1), 0)
  idx = jax.lax.switch(branch, [
      lambda: best,
      lambda: _refine_few(pool, blocks, carry.selected, i, cutoff, tuning),
      lambda: _refine_all(pool, blocks, carry.selected, i, cutoff, in_band, tuning)])
  idx = jnp.where(use_first, first, idx)
  md = blocks.md.at[idx].set(-jnp.inf)
  k = jnp.minimum(idx // pool.rows, pool.num_blocks - 1)
  blocks = blocks._replace(md=md, top=blocks.top.at[k].set(_block_top(pool, md, k)))
  return _Carry(blocks, carry.selected.at[i].set(idx), carry.refined + tie,
                carry.overflow + (tie & (in_band > tuning.few)), refreshes)


def _kcenter_kernel(x, weights, mean, labeled_idx, num_labeled, excluded, first,
                    budget, *, capacity, exact_dtype, lam, tuning: Tuning):
  """Farthest-first traversal on device; see `kcenter_greedy`.

  Args:
    x: [N, d] features (rows of padding allowed, marked in `excluded`).
    weights: [d] per-dimension weights of the squared distance (scale**2).
    mean: [d] centering vector (translation does not change distances).
    labeled_idx: [L] int32, L a multiple of `tuning.block`: the labeled indices
      first, padded with a repeat of a labeled index.
    num_labeled: int32 scalar, how many entries of `labeled_idx` are real.
    excluded: [N] bool, never selectable (labeled or padding).
    first: int32 scalar, the first center when `num_labeled == 0`.
    budget: int32 scalar, number of centers to add, at most `capacity`.
    capacity: static size of the selection buffer (`_capacity(budget)`): one
      compilation serves every budget up to it.
    exact_dtype: static dtype of the exact re-scoring.
    lam: static confidence factor of the error bound; 0 disables tie-breaking.
    tuning: static block sizes (`Tuning`; `rows` = N evaluates eagerly, as one
      block).

  Returns:
    ([capacity] int32 selected indices in order (the first `budget` are the
    selection), refined steps, overflow steps, error bound delta, block
    refreshes).
  """
  n, d = x.shape
  x_sq = distances.centered_sq_norms(x, mean, weights)
  delta = distances.sq_dist_error_bound(
      jnp.sqrt(jnp.max(x_sq)), jnp.sqrt(jnp.sum(weights * jnp.square(mean))), d,
      lam=lam, eps=jnp.finfo(x.dtype).eps)
  pool = _Pool(x, x_sq, mean, weights, labeled_idx, num_labeled, 2 * delta,
               min(tuning.rows, n), exact_dtype)
  blocks = _initial_blocks(pool, excluded, tuning.chunk)
  selected = jnp.zeros((_round_up(capacity + tuning.pending, tuning.block),), jnp.int32)
  zero = jnp.zeros((), jnp.int32)
  out = jax.lax.fori_loop(0, budget, functools.partial(_step, pool, tuning, first),
                          _Carry(blocks, selected, zero, zero, zero))
  return out.selected[:capacity], out.refined, out.overflow, delta, out.refreshes


def kcenter_greedy(features: ArrayLike, budget: int, *,
                   labeled_mask: Optional[ArrayLike] = None, seed: int = 0,
                   normalize: bool = False,
                   devices: Optional[Sequence[jax.Device]] = None,
                   exact: bool = True, return_stats: bool = False,
                   tuning: Optional[Tuning] = None):
  """Greedy k-center selection (farthest-first traversal), method guide §3.

  Args:
    features: [N, d] pool embeddings (the source model's pooled features f).
    budget: number of points to select, 0 < budget <= number of unlabeled points.
    labeled_mask: optional [N] bool; labeled points are the initial centers and
      are never selected.
    seed: with no labeled point, the first center is drawn uniformly from this
      seed and counts toward the budget.
    normalize: per-dimension min-max normalisation of the features over the pool
      before measuring distances ([R] option; constant dimensions are ignored).
    devices: optional devices to shard the pool over (e.g. `jax.local_devices()`
      on a multi-GPU host); the selection does not depend on the sharding.
    exact: break float32 near-ties exactly (module docstring), so the selection
      equals a float64 computation; False lets the float32 order decide (a few
      percent faster, may differ from float64 after many steps).
    return_stats: also return a `KCenterStats`.
    tuning: the kernel's block sizes (`Tuning`; default `DEFAULT_TUNING`); they
      change speed and memory, never the picks.

  Returns:
    numpy int64 array of `budget` pool indices in selection order (and the stats
    when `return_stats`).

  Example:
    >>> import numpy as np
    >>> from jaxal import kcenter
    >>> feats = np.array([[0., 0.], [1., 0.], [0., 1.], [5., 5.]])
    >>> kcenter.kcenter_greedy(feats, 2)
    array([1, 3])
  """
  f = V.check_features(features)
  n = f.shape[0]
  mask = V.check_mask(labeled_mask, n)
  budget = V.check_budget(budget, int(n - mask.sum()))
  seed = V.check_seed(seed)
  for name, flag in (("normalize", normalize), ("exact", exact)):
    if not isinstance(flag, bool):
      raise InputError(f"{name} must be a bool, got {flag!r}.")
  tuning = _check_tuning(tuning)

  dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
  f = np.asarray(f, dtype=dtype)  # no copy when already float32
  weights, mean = _metric(f, normalize)
  labeled, num_labeled = _labeled_indices(mask, tuning.block)
  first = int(jax.random.randint(jax.random.PRNGKey(seed), (), 0, n))
  out = _run_kernel(f, mask, weights, mean, labeled, num_labeled, first, budget,
                    devices=devices, exact=exact, tuning=tuning)
  selected = np.asarray(out[0])[:budget].astype(np.int64)
  if not return_stats:
    return selected
  return selected, KCenterStats(int(out[1]), int(out[2]), float(out[3]),
                                int(out[4]))


def _check_tuning(tuning: Optional[Tuning]) -> Tuning:
  """`tuning` validated, or `DEFAULT_TUNING` for None."""
  tuning = DEFAULT_TUNING if tuning is None else tuning
  if not isinstance(tuning, Tuning):
    raise InputError(f"tuning must be a kcenter.Tuning, got {type(tuning).__name__}.")
  return tuning.validate()


def _metric(f: np.ndarray, normalize: bool):
  """([d] weights of the squared distance, [d] centering vector) for the pool
  `f`, in its dtype: unit weights, or per-dimension min-max normalisation (a
  constant dimension gets weight 0)."""
  if normalize:
    span = f.max(axis=0).astype(np.float64) - f.min(axis=0)
    scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
    weights = np.square(scale).astype(f.dtype)
  else:
    weights = np.ones((f.shape[1],), f.dtype)
  return weights, f.mean(axis=0, dtype=np.float64).astype(f.dtype)


def _labeled_indices(mask: np.ndarray, block: int):
  """(the labeled indices padded to a multiple of `block` with a repeat of the
  first, as `_kcenter_kernel` takes them; how many are real)."""
  labeled = np.flatnonzero(mask).astype(np.int32)
  padded = np.zeros((_round_up(max(mask.shape[0], 1), block),), np.int32)
  if labeled.size:
    padded[:] = labeled[0]
    padded[:labeled.size] = labeled
  return padded, labeled.size


def _run_kernel(f, mask, weights, mean, labeled, num_labeled: int, first: int,
                budget: int, *, devices, exact: bool, tuning: Tuning):
  """`_kcenter_kernel`'s outputs for the checked inputs, on `devices` (sharded
  when there are several) or the default device."""
  x, excluded = f, mask
  if devices is not None and len(devices) > 1:
    # Sharded: eager evaluation (one block, one center per step) so that every
    # step is one row-sharded matrix-vector product across the devices.
    x, excluded = _shard_pool(f, mask, devices)
    tuning = tuning._replace(rows=x.shape[0], pending=1)
  platform = devices[0].platform if devices else jax.default_backend()
  # TPUs have no float64: their exact re-scoring stays in float32.
  exact_dtype = "float32" if platform == "tpu" else "float64"
  with jax.enable_x64(True):  # float64 is used only by the exact re-scoring
    return _kernel(platform)(x, weights, mean, labeled, np.int32(num_labeled),
                             excluded, np.int32(first), np.int32(budget),
                             capacity=_capacity(budget), exact_dtype=exact_dtype,
                             lam=distances.LAMBDA if exact else 0.0, tuning=tuning)


def _shard_pool(f: np.ndarray, mask: np.ndarray, devices):
  """Pads the pool to a multiple of the device count and shards it by rows."""
  k = len(devices)
  pad = (-f.shape[0]) % k
  if pad:  # padding rows are excluded, so they are never selected
    f = np.concatenate([f, np.zeros((pad, f.shape[1]), f.dtype)])
    mask = np.concatenate([mask, np.ones((pad,), bool)])
  mesh = Mesh(np.asarray(devices), ("pool",))
  x = jax.device_put(f, NamedSharding(mesh, P("pool", None)))
  excluded = jax.device_put(mask, NamedSharding(mesh, P("pool")))
  return x, excluded
