"""Greedy k-center (farthest-first traversal), the core-set acquisition function.

Implements method guide §3 "core-set" (Sener & Savarese 2018, as used by the
paper): repeatedly add the pool point farthest from its nearest center. Labeled
points are the initial centers; with none, the first center is drawn from the seed
and counts toward the budget. Distances are Euclidean on the source embedding f,
optionally after per-dimension min-max normalisation (a reconstructed [R] option).

Speed and memory. Evaluated eagerly, each step compares the new center with every
pool point: one pass over the [N, d] features per step, bound by memory bandwidth.
The kernel instead evaluates lazily by blocks of `_ROWS` rows. A point's distance
to its nearest center only shrinks as centers are added, so each block keeps an
upper bound of its largest such distance; a block is brought up to date (all its
pending centers applied at once, a [rows, _PENDING] matmul) only when that bound
could hold the farthest point. On the benchmark's 50,000 x 512 pool this reads
about 2% of the bytes of eager evaluation and turns matrix-vector products into
compute-bound matrix products; the result is the same. Everything runs in one
jitted `lax.fori_loop` with no host round trip. Memory beyond the features is
O(N): the distances to the nearest and second-nearest center, the nearest center's
index and the norms; never an N x N or N x b matrix (XLA's temporaries come to
about 29 bytes per point, tested). Labeled centers are folded in the same way,
block by block of rows, `_CHUNK` per matmul. Compiling the kernel is a fixed cost
of +37 MiB on CPU with `_xla_cpu.loop_emitter_options` (+200 MiB with XLA:CPU's
default emitters; tested in a fresh process). On CPU, pass a 64-byte-aligned
array (`jaxal.models.hostmem`) or XLA copies the features once. Sharded over
several devices, the kernel evaluates eagerly (one row-sharded matrix-vector
product per step).

Exactness. Float32 rounding can flip a near-tie between the two farthest points.
Each step therefore takes the float32 maximum v and every point within 2 * delta
of it, where delta bounds the float32 rounding error of any squared distance
(Higham & Mary's probabilistic inner-product bound, see `_kcenter_kernel`); when
more than one point qualifies, every point in the band is re-scored exactly, in
float64 against every center, and the farthest is taken, the lowest index among
exact ties, however many there are (up to `_FEW` candidates in one pass; more, as
on integer features where hundreds of points tie, `_REFINE` at a time in index
order). The selection then equals a float64 farthest-first traversal that takes
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

_CHUNK = 128  # labeled centers folded in per matmul (a [_ROWS, _CHUNK] temporary;
# at most _BLOCK, the padding of the labeled indices)
_BLOCK = 128  # centers per block of the exact re-scoring ([K, _BLOCK] temporaries)
_FEW = 4  # candidates re-scored in one pass (most ties are between 2 or 3)
_REFINE = 64  # candidates per pass when more than _FEW points are in the band (16
# took 30% longer where hundreds are: each pass gathers every center anew)
_LAMBDA = 8.0  # confidence factor of the probabilistic rounding-error bound
_ROWS = 512  # rows per block of the lazy evaluation
_PENDING = 16  # centers applied per matmul when a block is refreshed
_WIDE = 64  # from this many centers per matmul, `merge` avoids argmin


@dataclasses.dataclass(frozen=True)
class KCenterStats:
  """How often the exact tie-break ran (see the module docstring)."""
  refined_steps: int  # steps where more than one point was within the error band
  overflow_steps: int  # of those, steps with more than _FEW such points (several passes)
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


class _Blocks(NamedTuple):
  """Per-point and per-block state of the lazy farthest-first traversal."""
  md: jax.Array  # [N] float32 squared distance to the nearest center (stale: bound)
  md2: jax.Array  # [N] ... to the second nearest
  near: jax.Array  # [N] int32 index of the nearest center
  top: jax.Array  # [blocks] upper bound of each block's largest md
  done: jax.Array  # [blocks] int32 selected centers already applied to the block


@functools.lru_cache(maxsize=None)
def _kernel(platform: str):
  """`_kcenter_kernel` jitted for `platform` (on CPU with
  `_xla_cpu.loop_emitter_options`: a compilation in 37 instead of 200 MiB)."""
  return jax.jit(_kcenter_kernel, static_argnames=("capacity", "exact_dtype", "lam",
                                                   "rows", "pending"),
                 compiler_options=_xla_cpu.loop_emitter_options(platform))


def _kcenter_kernel(x, weights, mean, labeled_idx, num_labeled, excluded, first,
                    budget, *, capacity, exact_dtype, lam, rows, pending):
  """Farthest-first traversal on device; see `kcenter_greedy`.

  Args:
    x: [N, d] features (rows of padding allowed, marked in `excluded`).
    weights: [d] per-dimension weights of the squared distance (scale**2).
    mean: [d] centering vector (translation does not change distances).
    labeled_idx: [L] int32, L a multiple of _BLOCK: the labeled indices first,
      padded with a repeat of a labeled index.
    num_labeled: int32 scalar, how many entries of `labeled_idx` are real.
    excluded: [N] bool, never selectable (labeled or padding).
    first: int32 scalar, the first center when `num_labeled == 0`.
    budget: int32 scalar, number of centers to add, at most `capacity`.
    capacity: static size of the selection buffer (`_capacity(budget)`): one
      compilation serves every budget up to it.
    exact_dtype: static dtype of the exact re-scoring.
    lam: static confidence factor of the error bound; 0 disables tie-breaking.
    rows: static rows per block of the lazy evaluation (N: eager, one block).
    pending: static centers applied per matmul when a block is refreshed.

  Returns:
    ([capacity] int32 selected indices in order (the first `budget` are the
    selection), refined steps, overflow steps, error bound delta, block
    refreshes).
  """
  n, d = x.shape
  ftype = x.dtype
  r_rows = min(rows, n)
  num_blocks = -(-n // r_rows)
  x_sq = distances.centered_sq_norms(x, mean, weights)

  # delta bounds |float32 - exact| of one squared distance. With R = max |x-mean|_w
  # and M = |mean|_w, an inner product of length d carries an error of at most
  # g * sum|a_k b_k| <= g |a| |b|, so |x_sq err|, |c_sq err| <= g R^2 and
  # |2 dot err| <= 2 g (R + 2M) R. The worst case g = d u is ~300x above the errors
  # seen on real sums; we use the probabilistic bound g = lam sqrt(d) u of Higham &
  # Mary (SIAM J. Sci. Comput. 2019), exceeded with probability
  # < 2 exp(-lam^2 / 2) ~ 3e-14 per inner product at lam = 8.
  u = jnp.finfo(ftype).eps / 2
  r = jnp.sqrt(jnp.max(x_sq))
  m = jnp.sqrt(jnp.sum(weights * jnp.square(mean)))
  g = lam * jnp.sqrt(d + 4.0) * u
  delta = g * (2 * r * r + 2 * (r + 2 * m) * r)
  band = 2 * delta

  # Per point: md = float32 distance to the nearest center, md2 = to the second
  # nearest, near = index of the nearest. When md2 - md > 2 delta, float32 cannot
  # have mistaken which center is nearest, so the exact distance of the point is
  # one float64 difference with `near` (the common case of a tie-break).
  def merge(state, dist, ids):
    """Folds [R, k] distances to centers `ids` [k] into (md, md2, near)."""
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

  def block_start(k):
    return jnp.minimum(k * r_rows, n - r_rows)  # the last block overlaps its left

  def own_rows(k):  # [rows] rows of block k not already in its left neighbour
    return block_start(k) + jnp.arange(r_rows) >= k * r_rows

  def block_top(md, k):  # largest md over block k's own rows
    return jnp.max(jnp.where(
        own_rows(k), jax.lax.dynamic_slice_in_dim(md, block_start(k), r_rows),
        -jnp.inf))

  def fold_into_block(k, fields, centers, offset, count, chunk):
    """Folds centers[offset:offset + count] into block k's rows of `fields` (md,
    md2, near), `chunk` centers per [rows, chunk] matmul: the temporaries are the
    block's size, not N's. Rows that the overlapping last block shares with its
    left neighbour keep their values (folding a center twice would make md2 = md)."""
    start = block_start(k)
    xb = jax.lax.dynamic_slice_in_dim(x, start, r_rows)
    xb_sq = jax.lax.dynamic_slice_in_dim(x_sq, start, r_rows)
    old = tuple(jax.lax.dynamic_slice_in_dim(a, start, r_rows) for a in fields)

    def apply(j, blk):
      ids = jax.lax.dynamic_slice_in_dim(centers, offset + j * chunk, chunk)
      valid = j * chunk + jnp.arange(chunk) < count
      dist = distances.sq_dists_to(xb, xb_sq, mean, weights, x[ids])
      return merge(blk, jnp.where(valid[None, :], dist, jnp.inf), ids)

    new = jax.lax.fori_loop(0, (count + chunk - 1) // chunk, apply, old)
    new = tuple(jnp.where(own_rows(k), a, b) for a, b in zip(new, old))
    return tuple(jax.lax.dynamic_update_slice_in_dim(a, b, start, 0)
                 for a, b in zip(fields, new))

  # The labeled centers, block by block of rows (each block's features stay in
  # cache across all the labeled chunks).
  inf = jnp.full((n,), jnp.inf, ftype)
  state = (inf, inf, jnp.full((n,), -1, jnp.int32))
  md, md2, near = jax.lax.fori_loop(
      0, jnp.where(num_labeled > 0, num_blocks, 0),
      lambda k, s: fold_into_block(k, s, labeled_idx, 0, num_labeled, _CHUNK), state)
  md = jnp.where(excluded, -jnp.inf, md)

  # Lazy evaluation by blocks of rows. Distances only shrink as centers are added,
  # so a block's largest md, `top[k]`, stays an upper bound while centers are
  # pending for it; `done[k]` centers of `selected` are applied. A step refreshes
  # blocks (all their pending centers at once: a matmul instead of one pass over
  # the features per center) until every point within the error band of the best
  # up-to-date value is up to date; the others provably cannot be the farthest.
  padded_md = jnp.pad(md, (0, num_blocks * r_rows - n), constant_values=-jnp.inf)
  top = jnp.max(padded_md.reshape(num_blocks, r_rows), axis=1)
  done = jnp.zeros((num_blocks,), jnp.int32)

  def refresh(k, blocks, selected, i):
    """Applies block k's pending centers, selected[done[k]:i]."""
    done_k = blocks.done[k]
    md, md2, near = fold_into_block(
        k, (blocks.md, blocks.md2, blocks.near), selected, done_k, i - done_k, pending)
    return _Blocks(md, md2, near, blocks.top.at[k].set(block_top(md, k)),
                   blocks.done.at[k].set(i))

  def exact_sq(a, b):  # [K] exact squared distances between rows a[k] and b[k]
    diff = x[a].astype(exact_dtype) - x[b].astype(exact_dtype)
    return jnp.sum(weights.astype(exact_dtype) * jnp.square(diff), axis=1)

  def exact_min_dist(cands, selected, num_selected):
    """[K] exact squared distance of each candidate to its nearest center."""
    mu = mean.astype(exact_dtype)
    w = weights.astype(exact_dtype)
    xc = (x[cands].astype(exact_dtype) - mu) * w  # [K, d]
    xc_sq = jnp.sum(xc * (x[cands].astype(exact_dtype) - mu), axis=1)
    hi = jax.lax.Precision.HIGHEST

    def over(ids_all, count):
      def body(j, cur):  # one block of _BLOCK centers, as a small matmul
        ids = jax.lax.dynamic_slice_in_dim(ids_all, j * _BLOCK, _BLOCK)
        c = x[ids].astype(exact_dtype) - mu
        dd = (xc_sq[:, None] + jnp.sum(w * c * c, axis=1)[None, :]
              - 2 * jnp.dot(xc, c.T, precision=hi))
        valid = j * _BLOCK + jnp.arange(_BLOCK) < count
        return jnp.minimum(cur, jnp.min(jnp.where(valid[None, :], dd, jnp.inf), 1))
      return body

    cur = jnp.full((cands.shape[0],), jnp.inf, exact_dtype)
    cur = jax.lax.fori_loop(0, (num_labeled + _BLOCK - 1) // _BLOCK,
                            over(labeled_idx, num_labeled), cur)
    return jax.lax.fori_loop(0, (num_selected + _BLOCK - 1) // _BLOCK,
                             over(selected, num_selected), cur)

  def exact_scores(blocks, cands, valid, selected, i):
    """[K] exact distance of each valid candidate to its nearest center, else -inf."""
    sure = blocks.md2[cands] - blocks.md[cands] > band  # nearest center is certain
    exact = jax.lax.cond(
        jnp.all(sure | ~valid), lambda: exact_sq(cands, blocks.near[cands]),
        lambda: exact_min_dist(cands, selected, i))
    return jnp.where(valid, exact, -jnp.inf)

  def refine_few(blocks, selected, i, cutoff, in_band):
    """All of at most _FEW points in the band, in one pass."""
    del in_band
    _, cands = jax.lax.top_k(blocks.md, min(_FEW, n))
    exact = exact_scores(blocks, cands, blocks.md[cands] >= cutoff, selected, i)
    best = jnp.max(exact)
    return jnp.min(jnp.where(exact == best, cands, n)).astype(jnp.int32)

  def refine_all(blocks, selected, i, cutoff, in_band):
    """Every point in the band, _REFINE at a time in index order.

    A later pass replaces the running best only when strictly farther, so the
    lowest index wins exact ties, however many points tie (integer features).
    Stale points are not in the band: their bounds lie below the cutoff.
    """
    member = blocks.md >= cutoff
    # rank of each band member in index order (int32: under x64 a cumsum and
    # jnp.nonzero would keep [N] int64 temporaries)
    order = jnp.cumsum(member, dtype=jnp.int32) - 1
    everyone = jnp.arange(n, dtype=jnp.int32)

    def one_pass(c):
      t, best_val, best_idx = c
      # this pass's members in slots 0.._REFINE-1; the others in slot _REFINE,
      # out of range, dropped (a negative slot would wrap around)
      slot = jnp.where(member & (order >= t * _REFINE), order - t * _REFINE, _REFINE)
      cands = jnp.zeros((_REFINE,), jnp.int32).at[slot].set(everyone, mode="drop")
      valid = jnp.arange(_REFINE) < in_band - t * _REFINE
      exact = exact_scores(blocks, cands, valid, selected, i)
      j = jnp.argmax(exact)  # first maximum: the lowest index of this pass
      better = exact[j] > best_val
      return (t + 1, jnp.where(better, exact[j], best_val),
              jnp.where(better, cands[j], best_idx))

    init = (jnp.zeros((), jnp.int32), jnp.array(-jnp.inf, exact_dtype),
            jnp.zeros((), jnp.int32))
    return jax.lax.while_loop(lambda c: c[0] * _REFINE < in_band, one_pass, init)[2]

  def step(i, carry):
    blocks, selected, refined, overflow, refreshes = carry
    use_first = (i == 0) & (num_labeled == 0)

    def stale_ahead(c):
      blocks, _ = c
      stale = blocks.done < i
      best = jnp.max(jnp.where(stale, -jnp.inf, blocks.top))
      ahead = jnp.max(jnp.where(stale, blocks.top, -jnp.inf))
      return ~use_first & (ahead >= best - band)

    def refresh_next(c):
      blocks, count = c
      k = jnp.argmax(jnp.where(blocks.done < i, blocks.top, -jnp.inf))
      return refresh(k, blocks, selected, i), count + 1

    blocks, refreshes = jax.lax.while_loop(stale_ahead, refresh_next,
                                           (blocks, refreshes))
    best = jnp.argmax(blocks.md).astype(jnp.int32)
    cutoff = blocks.md[best] - band
    in_band = jnp.sum(blocks.md >= cutoff).astype(jnp.int32)
    tie = (in_band > 1) & ~use_first
    branch = jnp.where(tie, jnp.where(in_band > _FEW, 2, 1), 0)
    idx = jax.lax.switch(branch, [lambda *_: best, refine_few, refine_all],
                         blocks, selected, i, cutoff, in_band)
    idx = jnp.where(use_first, first, idx)
    md = blocks.md.at[idx].set(-jnp.inf)
    k = jnp.minimum(idx // r_rows, num_blocks - 1)
    blocks = blocks._replace(md=md, top=blocks.top.at[k].set(block_top(md, k)))
    return (blocks, selected.at[i].set(idx), refined + tie,
            overflow + (tie & (in_band > _FEW)), refreshes)

  selected = jnp.zeros((_round_up(capacity + pending, _BLOCK),), jnp.int32)
  zero = jnp.zeros((), jnp.int32)
  blocks = _Blocks(md, md2, near, top, done)
  _, selected, refined, overflow, refreshes = jax.lax.fori_loop(
      0, budget, step, (blocks, selected, zero, zero, zero))
  return selected[:capacity], refined, overflow, delta, refreshes


def kcenter_greedy(features: ArrayLike, budget: int, *,
                   labeled_mask: Optional[ArrayLike] = None, seed: int = 0,
                   normalize: bool = False,
                   devices: Optional[Sequence[jax.Device]] = None,
                   exact: bool = True, return_stats: bool = False):
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
  n, d = f.shape
  mask = V.check_mask(labeled_mask, n)
  budget = V.check_budget(budget, int(n - mask.sum()))
  seed = V.check_seed(seed)
  for name, flag in (("normalize", normalize), ("exact", exact)):
    if not isinstance(flag, bool):
      raise ValueError(f"{name} must be a bool, got {flag!r}.")

  x64 = jax.config.jax_enable_x64
  dtype = np.float64 if x64 else np.float32
  f = np.asarray(f, dtype=dtype)  # no copy when already float32
  if normalize:
    span = f.max(axis=0).astype(np.float64) - f.min(axis=0)
    scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
    weights = np.square(scale).astype(dtype)
  else:
    weights = np.ones((d,), dtype)
  mean = f.mean(axis=0, dtype=np.float64).astype(dtype)

  labeled = np.flatnonzero(mask).astype(np.int32)
  padded = np.zeros((_round_up(max(n, 1), _BLOCK),), np.int32)
  if labeled.size:
    padded[:] = labeled[0]
    padded[:labeled.size] = labeled
  first = int(jax.random.randint(jax.random.PRNGKey(seed), (), 0, n))

  x, excluded = f, mask
  rows, pending = _ROWS, _PENDING
  if devices is not None and len(devices) > 1:
    # Sharded: eager evaluation (one block, one center per step) so that every
    # step is one row-sharded matrix-vector product across the devices.
    x, excluded = _shard_pool(f, mask, devices)
    rows, pending = x.shape[0], 1
  platform = devices[0].platform if devices else jax.default_backend()
  # TPUs have no float64: their exact re-scoring stays in float32.
  exact_dtype = "float32" if platform == "tpu" else "float64"
  with jax.enable_x64(True):  # float64 is used only by the exact re-scoring
    out = _kernel(platform)(x, weights, mean, padded, np.int32(labeled.size),
                          excluded, np.int32(first), np.int32(budget),
                          capacity=_capacity(budget), exact_dtype=exact_dtype,
                          lam=_LAMBDA if exact else 0.0, rows=rows, pending=pending)
  selected = np.asarray(out[0])[:budget].astype(np.int64)
  if not return_stats:
    return selected
  return selected, KCenterStats(int(out[1]), int(out[2]), float(out[3]),
                                int(out[4]))


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
