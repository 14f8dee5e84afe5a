"""Every pair of a pool closer than a threshold, exactly, and each point's
nearest neighbours, from one pass over tiles of the pool.

The pool [N, d] (a memory-mapped array is read block by block, never whole) is
cut into blocks of `tile` rows; each pair of blocks (I, J) with I <= J is one
tile, a [tile, tile] matrix of distances computed on the device. A tile serves
both of its blocks: its rows give block I's nearest neighbours in J, its
columns block J's in I, so the N^2 / 2 distances are each computed once (a
range search over the whole pool, as faiss' `range_search` with the pool as its
own queries, computes all N^2).

Metrics (`metric`):
    cosine     1 - x.y / (|x| |y|), in [0, 2]; zero rows refused
    euclidean  |x - y|

Exactness of the pairs. A tile's distances are float32: the squared Euclidean
distance by `jaxal.distances.sq_dists_to` (centred on the pool's mean), the
cosine distance as 1 - x^.y^ of the normalised rows. A pair is a *candidate*
when its float32 distance is within delta of the threshold (delta: the
probabilistic rounding bound of `jaxal.distances.sq_dist_error_bound`, twice
over for cosine to cover the normalisation), and every candidate is decided by
its float64 distance from the stored (float32) features:

    cosine     max(0, 1 - sum(x y) / (sqrt(sum(x x)) sqrt(sum(y y))))
    euclidean  sqrt(sum((x - y)^2))

A pair is kept when that float64 distance is <= `threshold`: a pair exactly at
the threshold is a near-duplicate. The float32 pass only prunes, so the pairs
are those a float64 brute force finds (with probability 1 - 3e-14 per distance
that the band holds; the band is ~1e-5 relative). Another float64 brute force
may sum in another order and differ by ~1e-16: only a pair within that of the
threshold could then be decided otherwise.

Nearest neighbours. Each point's `k` nearest other points are chosen by the
tiles' float32 distances (ties to the tile seen first, then the lower index:
deterministic on one machine). The distances of the first 4 (`DIRECT`: those
the uniqueness score and the nearest-neighbour distance read) are recomputed
from direct differences, (x - y)^2 summed (cosine: |x^ - y^|^2 / 2), so that a
near copy's small distance is not lost to the cancellation of |x|^2 - 2 x.y +
|y|^2 (an exact copy is at 0); the others keep the tile's value, whose error is
~1e-6 of the rows' squared norms (cosine: ~1e-6 absolute). `k` = 0 skips them:
the pairs alone, a range search.

Memory: the pool's blocks on the device while they fit in `Tuning.resident`
(2 GiB; on a CPU the device's memory is the host's), else two blocks at a time
read again from `features` for each tile; one tile's [tile, tile] values; on
the host the [N, k] neighbours and the pairs found. Several devices (`devices`)
take the tiles in turn, each one tile ahead of the host's merge, so no device
waits on it.

Several hosts (`search_part`, `combine`): the tiles are numbered in one order
(I, then J), and part p of P computes tiles p, p + P, p + 2P, ... on its own
devices; each part decides its pairs exactly and keeps its points' k nearest,
each with the number of the tile and its place in that tile's list. `combine`
joins the parts: the pairs of all, and for each point the k nearest of the
parts' lists ordered by (distance, tile, place), the order one process
merging every tile in turn keeps; so the result is the one `search` gives,
whatever the number of parts.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _validation as V
from jaxal import distances
from jaxal.errors import InputError

METRICS = ("cosine", "euclidean")


class Tuning(NamedTuple):
  """Sizes of the pass: they change speed and memory, not the pairs found.

  - tile: rows of a block; a tile is [tile, tile] float32 on the device.
  - rows, capacity: rows holding a candidate pair, and candidate pairs, that a
    tile returns at first; a tile holding more is computed again with room for
    all of them (rare: duplicates are few).
  - stats: rows read at a time by the host's passes over the pool.
  - resident: bytes of the pool (float32) kept on the device for the whole
    pass when it fits; a larger pool is read by blocks for each tile.
  """
  tile: int = 2048
  rows: int = 64
  capacity: int = 1 << 12
  stats: int = 1 << 15
  resident: int = 1 << 31

  def validate(self, name: str = "tuning") -> "Tuning":
    """Each field a positive int, named `name.field` in the error."""
    V.check_int_fields(self, ("tile", "rows", "capacity", "stats", "resident"), (),
                       DEFAULT_TUNING, name)
    return self


DEFAULT_TUNING = Tuning()


@dataclasses.dataclass(frozen=True)
class Neighbors:
  """What `search` found in a pool of N points."""
  metric: str
  threshold: float
  pairs: np.ndarray           # [P, 2] int64, i < j, in lexicographic order
  pair_distances: np.ndarray  # [P] float64, each pair's exact distance
  indices: np.ndarray         # [N, k] int64, each point's neighbours, nearest first
  distances: np.ndarray       # [N, k] float32, their distances

  @property
  def k(self) -> int:
    """Neighbours kept per point (0: the pairs only)."""
    return self.indices.shape[1]


def check_metric(metric: str) -> str:
  """`metric` if it is one of `METRICS`, else an InputError naming it."""
  if metric not in METRICS:
    raise InputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}.",
                     field="metric")
  return metric


def check_threshold(threshold, metric: str) -> float:
  """The threshold as a float: > 0 and finite (cosine: at most 2)."""
  try:
    t = float(threshold)
  except (TypeError, ValueError):
    t = float("nan")
  top = 2.0 if metric == "cosine" else np.inf
  if not (0 < t <= top) or not np.isfinite(t):
    raise InputError(
        f"threshold must be a number > 0{' and <= 2' if metric == 'cosine' else ''} "
        f"(a {metric} distance), got {threshold!r}. Exact copies are at distance 0, "
        "so any positive threshold finds them.", field="threshold")
  return t


@dataclasses.dataclass(frozen=True)
class _Stats:
  """The pool's mean (float64) and the bound on a tile's rounding."""
  mean: np.ndarray
  delta: float


def _stats(x, metric: str, rows: int) -> _Stats:
  """One pass for the mean (and the checks), one for the largest centred norm."""
  n, d = x.shape
  total = np.zeros(d, np.float64)
  for s in range(0, n, rows):
    b = np.asarray(x[s:s + rows], np.float64)
    if not np.isfinite(b).all():
      bad = s + int(np.argwhere(~np.isfinite(b).all(1))[0, 0])
      raise InputError(f"features: row {bad} is not finite (NaN or inf); embed the "
                       "pool again or drop that image.", field="features")
    if metric == "cosine" and not (np.abs(b).sum(1) > 0).all():
      bad = s + int(np.argwhere(np.abs(b).sum(1) == 0)[0, 0])
      raise InputError(f"features: row {bad} is all zeros, which has no cosine "
                       "distance; use metric='euclidean' or drop that image.",
                       field="features")
    total += b.sum(0)
  mean = total / n
  if metric == "cosine":  # unit rows: |x^| = 1, uncentred
    return _Stats(mean.astype(np.float32), 2 * float(
        distances.sq_dist_error_bound(1.0, 0.0, d)))
  mean32 = mean.astype(np.float32)
  radius = 0.0
  for s in range(0, n, rows):
    b = np.asarray(x[s:s + rows], np.float64) - mean32
    radius = max(radius, float(np.sqrt((b * b).sum(1).max())))
  return _Stats(mean32, float(distances.sq_dist_error_bound(
      radius, float(np.linalg.norm(mean32.astype(np.float64))), d)))


def _limit(threshold: float, metric: str, delta: float) -> np.float32:
  """The float32 value a tile's distance is compared with (rounded up)."""
  v = threshold * threshold + delta if metric == "euclidean" else threshold + delta
  out = np.float32(v)
  return out if float(out) >= v else np.nextafter(out, np.float32(np.inf))


def _unit(a):
  norm = jnp.sqrt(jnp.sum(a * a, axis=1, keepdims=True))
  return a / jnp.where(norm > 0, norm, 1.0)


DIRECT = 4  # nearest distances recomputed from direct differences (module docstring)


@functools.partial(jax.jit, static_argnames=("metric", "k", "cap", "diag"))
def _tile(q, c, q0, c0, n, limit, mean, *, metric: str, k: int, cap: tuple[int, int],
          diag: bool):
  """One tile: rows `q` [B, d] (global rows q0..), columns `c` [B, d] (c0..).

  Returns ((rows holding a candidate, candidates), their rows, their columns,
  the rows' k nearest columns (tile distances, local indices), the columns' k
  nearest rows). Candidates are compacted in two steps, the rows holding one
  (at most cap[0]) then their columns (at most cap[1]), so that a tile without
  any costs one pass after its product.
  """
  hi = jax.lax.Precision.HIGHEST
  # `near`: the tile's values, larger = nearer (cosine: similarity; euclidean:
  # minus the squared distance), so that one max-reduction over the product
  # finds the rows holding a candidate.
  if metric == "euclidean":
    ones = jnp.ones_like(mean)
    c_sq = distances.centered_sq_norms(c, mean, ones)
    near = -distances.sq_dists_to(c, c_sq, mean, ones, q).T  # [B, B]
    to_dist = lambda v: -v  # noqa: E731
  else:
    q, c = _unit(q), _unit(c)  # zero padding rows stay zero
    near = jnp.dot(q, c.T, precision=hi)
    to_dist = lambda v: 1.0 - v  # noqa: E731
  rows = q0 + jnp.arange(q.shape[0])
  cols = c0 + jnp.arange(c.shape[0])

  def candidates(v, r):  # [len(r), B] pairs of rows r within the limit
    ok = (r[:, None] < n) & (cols[None, :] < n) & (to_dist(v) <= limit)
    return ok & (cols[None, :] > r[:, None]) if diag else ok

  if diag:
    has = jnp.any(candidates(near, rows), axis=1)
  else:  # padding and validity only cost room here: checked below
    has = to_dist(jnp.max(near, axis=1)) <= limit * (1 + 1e-6) + 1e-7
  hits = jnp.sum(has, dtype=jnp.int32)
  (hit,) = jnp.nonzero(has, size=cap[0], fill_value=0)
  sub = candidates(near[hit], rows[hit]) & (jnp.arange(cap[0]) < hits)[:, None]
  r, cc = jnp.nonzero(sub, size=cap[1], fill_value=0)
  counts = (hits, jnp.sum(sub, dtype=jnp.int32))
  if k == 0:
    return counts, hit[r] + q0, cc + c0, None, None
  valid = (rows[:, None] < n) & (cols[None, :] < n)
  if diag:
    valid = valid & (cols[None, :] != rows[:, None])
  masked = jnp.where(valid, near, -jnp.inf)

  def nearest(v):
    if k == 1:
      j = jnp.argmax(v, axis=1)[:, None]
      v = jnp.take_along_axis(v, j, 1)
    else:
      v, j = jax.lax.top_k(v, k)
    v = jnp.where(v > -jnp.inf, to_dist(v), jnp.inf)
    return (jnp.sqrt(jnp.maximum(v, 0)) if metric == "euclidean" else v), j

  return counts, hit[r] + q0, cc + c0, nearest(masked), (
      None if diag else nearest(masked.T))


@functools.partial(jax.jit, static_argnames=("metric", "m"))
def _direct(a, b, near, *, metric: str, m: int):
  """`near` = (distances, local indices into `b`) of `a`'s rows with the first
  `m` distances recomputed from direct differences (module docstring). A
  separate computation: fused with the tile's top_k, XLA:CPU's gather of the
  rows ran ~100x slower (measured on 2,048 x 768 tiles)."""
  v, j = near
  if metric == "cosine":
    a, b = _unit(a), _unit(b)
  diff = a[:, None, :] - b[j[:, :m]]
  direct = jnp.sum(diff * diff, axis=-1)
  direct = jnp.sqrt(direct) if metric == "euclidean" else direct / 2
  return jnp.where(v[:, :m] < jnp.inf, direct, jnp.inf)


class _Best:
  """The running k nearest of every point (host), each with its order key
  `o` = tile number x k + place in that tile's list (module docstring)."""

  def __init__(self, n: int, k: int, keys: bool = True):
    self.d = np.full((n, k), np.inf, np.float32)
    self.i = np.full((n, k), -1, np.int64)
    # the keys only matter to `combine` of several parts: one part keeps none.
    # An empty slot's key is -1, below every tile's: among equal (infinite)
    # distances it stays first, as a stable merge keeps it.
    self.o = np.full((n, k), -1, np.int64) if keys else None

  def merge(self, start: int, d: np.ndarray, idx: np.ndarray, tile: int) -> None:
    """Merges a tile's lists of rows `start`...: kept are the k smallest by
    (distance, key); the tile's keys are larger than every key kept so far
    (earlier tiles', or -1 for an empty slot), so a stable sort by distance of
    [kept, new] gives that order."""
    m = min(d.shape[0], self.d.shape[0] - start)
    if m <= 0:
      return
    k = self.d.shape[1]
    sl = slice(start, start + m)
    cd = np.concatenate([self.d[sl], d[:m]], axis=1)
    ci = np.concatenate([self.i[sl], idx[:m].astype(np.int64)], axis=1)
    if self.o is not None:
      place = np.arange(d.shape[1], dtype=np.int64)
      co = np.concatenate([self.o[sl], np.broadcast_to(tile * k + place,
                                                       (m, d.shape[1]))], axis=1)
    order = np.argsort(cd, axis=1, kind="stable")[:, :k]
    self.d[sl] = np.take_along_axis(cd, order, 1)
    self.i[sl] = np.take_along_axis(ci, order, 1)
    if self.o is not None:
      self.o[sl] = np.take_along_axis(co, order, 1)


def exact_distances(x, i: np.ndarray, j: np.ndarray, metric: str,
                    chunk: int = 1 << 15) -> np.ndarray:
  """[P] float64 distances of pairs (i, j) of rows of `x` (module docstring)."""
  out = np.empty(len(i), np.float64)
  for s in range(0, len(i), chunk):
    a = np.asarray(x[np.asarray(i[s:s + chunk])], np.float64)
    b = np.asarray(x[np.asarray(j[s:s + chunk])], np.float64)
    if metric == "euclidean":
      out[s:s + chunk] = np.sqrt(np.sum((a - b) ** 2, axis=1))
    else:
      out[s:s + chunk] = np.maximum(0.0, 1.0 - np.sum(a * b, axis=1) / (
          np.sqrt(np.sum(a * a, axis=1)) * np.sqrt(np.sum(b * b, axis=1))))
  return out


class _Pass:
  """The tiles of one search: blocks (on their devices), dispatch, and the
  host's collection of each tile's pairs and neighbours."""

  def __init__(self, features, metric: str, k: int, limit: np.float32, stats: _Stats,
               tuning: Tuning, devices: Sequence[jax.Device], keys: bool = False):
    self.x, self.metric, self.k, self.devices = features, metric, k, list(devices)
    n, d = features.shape
    self.n = n
    self.size = min(tuning.tile, -(-n // 8) * 8)
    self.first = (min(tuning.rows, self.size), tuning.capacity)
    # per device: the pool's mean, N and the limit
    self.consts = [tuple(jax.device_put(v, dev) for v in (stats.mean, np.int32(n), limit))
                   for dev in self.devices]
    # Blocks stay on their devices while they fit in `tuning.resident` bytes
    # (each device holding those of its tiles); else they are read again.
    self.keep = len(self.devices) * -(-n // self.size) * self.size * d * 4 \
        <= tuning.resident
    self.kept: dict[tuple[int, int], jax.Array] = {}
    self.best = _Best(n, k, keys) if k else None
    self.rows: list[np.ndarray] = []
    self.cols: list[np.ndarray] = []

  def block(self, s: int, dev: int) -> jax.Array:
    if (dev, s) in self.kept:
      return self.kept[(dev, s)]
    b = np.zeros((self.size, self.x.shape[1]), np.float32)
    rows = np.asarray(self.x[s:s + self.size], np.float32)
    b[:len(rows)] = rows
    out = jax.device_put(b, self.devices[dev])
    if self.keep:
      self.kept[(dev, s)] = out
    return out

  def run(self, qs: int, cs: int, dev: int, cap: tuple[int, int], t: int):
    """Dispatches tile number `t`, (qs, cs), on device `dev`; returns its job."""
    qb = self.block(qs, dev)
    cb = qb if cs == qs else self.block(cs, dev)
    mean, n, lim = self.consts[dev]
    out = _tile(qb, cb, np.int32(qs), np.int32(cs), n, lim, mean, metric=self.metric,
                k=self.k, cap=cap, diag=qs == cs)
    return (qs, cs, dev, t, qb, cb, out)

  def collect(self, job) -> None:
    """Waits for a tile; keeps its candidate pairs and merges its neighbours."""
    qs, cs, dev, t, qb, cb, out = job
    cap = self.first
    hit_rows, count = (int(v) for v in out[0])
    while hit_rows > cap[0] or count > cap[1]:  # again, with room for all
      cap = (_room(hit_rows, cap[0]), _room(count, cap[1]))  # (count grows with rows)
      out = self.run(qs, cs, dev, cap, t)[-1]
      hit_rows, count = (int(v) for v in out[0])
    self.rows.append(np.asarray(out[1])[:count])
    self.cols.append(np.asarray(out[2])[:count])
    for near, a, b, start, other in ((out[3], qb, cb, qs, cs), (out[4], cb, qb, cs, qs)):
      if near is None:
        continue
      v, j = np.array(near[0]), np.asarray(near[1])
      m = min(self.k, DIRECT)
      v[:, :m] = np.asarray(_direct(a, b, near, metric=self.metric, m=m))
      self.best.merge(start, v, j + other, t)

  def tiles(self, part: tuple[int, int] = (0, 1)) -> None:
    """The tiles (I <= J) numbered t = 0, 1, ... whose t % count == index for
    `part` = (index, count), dealt round-robin to the devices, each device one
    tile ahead of the host's collection, collected in dispatch order."""
    index, count = part
    pending: collections.deque = collections.deque()
    starts = range(0, self.n, self.size)
    t = mine = 0
    for qs in starts:
      for cs in starts[starts.index(qs):]:
        if t % count == index:
          pending.append(self.run(qs, cs, mine % len(self.devices), self.first, t))
          mine += 1
          if len(pending) > len(self.devices):
            self.collect(pending.popleft())
        t += 1
    while pending:
      self.collect(pending.popleft())


def _room(count: int, have: int) -> int:
  return have if count <= have else 1 << (count - 1).bit_length()


def search(features, *, threshold: float, metric: str = "cosine", k: int = 20,
           tuning: Optional[Tuning] = None,
           devices: Optional[Sequence[jax.Device]] = None) -> Neighbors:
  """Every pair of rows of `features` [N, d] at distance <= `threshold`, exactly,
  and each row's `k` nearest other rows (k = min(k, N - 1)); module docstring.

  Args:
    features: [N, d], N >= 2, finite (a memory map is read by blocks).
    threshold: the near-duplicate distance, > 0 (cosine: <= 2).
    metric: "cosine" or "euclidean".
    k: neighbours kept per point, >= 0 (0: the pairs only, a range search).
    tuning: block sizes (`Tuning`; None: `DEFAULT_TUNING`).
    devices: where the tiles run, dealt round-robin (default: JAX's first
      device). The result does not depend on them: each tile is computed
      whole on one device and collected in the same order.

  >>> x = np.array([[0., 0.], [0., 1e-3], [5., 5.], [5., 6.]], np.float32)
  >>> nb = search(x, threshold=0.01, metric="euclidean", k=1)
  >>> nb.pairs.tolist(), nb.indices[:, 0].tolist()
  ([[0, 1]], [1, 0, 3, 2])
  """
  return combine([search_part(features, threshold=threshold, metric=metric, k=k,
                              tuning=tuning, devices=devices)])


class Part(NamedTuple):
  """What one part of a search over several hosts found (`search_part`):
  the pairs of its tiles, decided exactly, and its points' k nearest in its
  tiles with their order keys (module docstring). Plain arrays, to be saved
  and read by any process (`arrays()`, `from_arrays`; `jaxal dedupe` keeps
  them as .npy files, read memory-mapped)."""
  metric: str
  threshold: float
  part: tuple  # (index, count)
  pairs: np.ndarray           # [P, 2] int64, i < j
  pair_distances: np.ndarray  # [P] float64
  indices: np.ndarray         # [N, k] int64 (-1: none in this part's tiles)
  distances: np.ndarray       # [N, k] float32 (inf: none)
  keys: np.ndarray            # [N, k] int64 tile number x k + place (-1: none)

  def arrays(self) -> dict:
    """The part as named arrays (for .npy files or `np.savez`)."""
    return {"metric": np.array(self.metric), "threshold": np.array(self.threshold),
            "part": np.array(self.part, np.int64), "pairs": self.pairs,
            "pair_distances": self.pair_distances, "indices": self.indices,
            "distances": self.distances, "keys": self.keys}

  @classmethod
  def from_arrays(cls, z) -> "Part":
    """The part from the arrays `arrays` names (e.g. a loaded npz, or .npy
    files memory-mapped: the big arrays stay on disk until read)."""
    return cls(str(z["metric"]), float(z["threshold"]),
               tuple(int(v) for v in z["part"]), np.asarray(z["pairs"]),
               np.asarray(z["pair_distances"]), np.asarray(z["indices"]),
               np.asarray(z["distances"]), np.asarray(z["keys"]))


def search_part(features, *, threshold: float, metric: str = "cosine", k: int = 20,
                tuning: Optional[Tuning] = None,
                devices: Optional[Sequence[jax.Device]] = None,
                part: tuple = (0, 1)) -> Part:
  """Part `part` = (index, count) of `search` over several hosts: the tiles
  whose number is index modulo count, on `devices` (module docstring).
  Every part must be given the same features, threshold, metric, k and tuning;
  `combine` of all `count` parts is `search`'s result."""
  metric = check_metric(metric)
  tuning = V.check_tuning(tuning, Tuning, DEFAULT_TUNING, "tuning")
  if getattr(features, "ndim", None) != 2:
    raise InputError("features must be a 2-D array [N, d], got shape "
                     f"{getattr(features, 'shape', None)}.", field="features")
  n = features.shape[0]
  if n < 2:
    raise InputError(f"features: a pool of {n} point(s) has no pairs; give at "
                     "least 2 rows.", field="features")
  t = check_threshold(threshold, metric)
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
    raise InputError(f"k must be an int >= 0 (neighbours per point; 0: pairs "
                     f"only), got {k!r}.", field="k")
  k = min(int(k), n - 1)
  if k > min(tuning.tile, -(-n // 8) * 8):
    raise InputError(f"k={k} neighbours is more than a tile's {tuning.tile} rows; "
                     "lower k or raise tuning.tile.", field="k")
  if devices is not None and not len(devices):
    raise InputError("devices: give at least one device, or None.", field="devices")
  part = _check_part(part)
  stats = _stats(features, metric, tuning.stats)
  work = _Pass(features, metric, k, _limit(t, metric, stats.delta), stats, tuning,
               devices or jax.devices()[:1], keys=part[1] > 1)
  work.tiles(part)
  r = np.concatenate(work.rows or [np.zeros(0, np.int64)]).astype(np.int64)
  c = np.concatenate(work.cols or [np.zeros(0, np.int64)]).astype(np.int64)
  dist = exact_distances(features, r, c, metric)
  keep = dist <= t
  best = work.best or _Best(n, 0)
  keys = best.o if best.o is not None else np.zeros((n, 0), np.int64)
  return Part(metric, t, part, np.stack([r[keep], c[keep]], axis=1).reshape(-1, 2),
              dist[keep], best.i, best.d, keys)


def _check_part(part) -> tuple[int, int]:
  try:
    index, count = (int(v) for v in part)
  except (TypeError, ValueError):
    index, count = -1, 0
  if not 0 <= index < count:
    raise InputError(f"part must be (index, count) with 0 <= index < count, got "
                     f"{part!r}.", field="part")
  return index, count


def combine(parts: Sequence[Part], rows: int = 65536) -> Neighbors:
  """`search`'s result from all its parts (`search_part`, any order): every
  part's pairs, in lexicographic order, and each point's k nearest over the
  parts by (distance, tile, place); `rows` points merged at a time."""
  parts = sorted(parts, key=lambda p: p.part)
  if not parts:
    raise InputError("parts: give every part of the search.", field="parts")
  count = parts[0].part[1]
  if [p.part for p in parts] != [(i, count) for i in range(count)] or len(
      {(p.metric, p.threshold, p.indices.shape) for p in parts}) != 1:
    raise InputError(f"parts: need parts 0..{count - 1} of one search (same metric, "
                     f"threshold and k), got {[p.part for p in parts]}.",
                     field="parts")
  pairs = np.concatenate([p.pairs for p in parts])
  dist = np.concatenate([p.pair_distances for p in parts])
  order = np.lexsort((pairs[:, 1], pairs[:, 0]))
  n, k = parts[0].indices.shape
  idx, d = parts[0].indices, parts[0].distances
  if count > 1 and k:
    idx, d = np.empty((n, k), np.int64), np.empty((n, k), np.float32)
    for s in range(0, n, rows):
      cd = np.concatenate([p.distances[s:s + rows] for p in parts], axis=1)
      ci = np.concatenate([p.indices[s:s + rows] for p in parts], axis=1)
      co = np.concatenate([p.keys[s:s + rows] for p in parts], axis=1)
      best = np.lexsort((co, cd), axis=1)[:, :k]
      d[s:s + rows] = np.take_along_axis(cd, best, 1)
      idx[s:s + rows] = np.take_along_axis(ci, best, 1)
  return Neighbors(metric=parts[0].metric, threshold=parts[0].threshold,
                   pairs=pairs[order].reshape(-1, 2), pair_distances=dist[order],
                   indices=idx, distances=d)
