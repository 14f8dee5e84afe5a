"""The balancing step: spend the end of the budget on the rarest classes.

Implements method guide §4 (main paper section 3.3, Eq. 9; reconstructed [R]).
Selection is sequential with the annotator in the loop. With n_c the labeled count
of class c over all N_t target classes and m their mean, classes with n_c <= m are
the minority, the others the majority. While the remaining budget r satisfies

    r > |minority| * (mean n_c over majority - mean n_c over minority),

the next sample of the acquisition ranking is taken. Otherwise (balancing mode)
the unlabeled x minimising

    ratio:       D(x, mu_rare) / min_{c in majority} D(x, mu_c)        (default)
    difference:  d(x, mu_rare) - min_{c in majority} d(x, mu_c)        (co-author's code)

is taken, with mu_c the centroid of the labeled embeddings of class c, D the
squared and d the plain Euclidean distance, and "rare" the class with fewest
labels (lowest id on ties); among equal scores the lowest pool index wins. When
the rare class has no label yet its term is 1 (ratio) or 0 (difference): the pick
is simply the sample farthest from every majority centroid.

Squared or plain only matters for the difference: the ratio of squares is the
square of the ratio of distances, so both choose the same samples. The co-author's
code (2020) subtracts plain Euclidean distances, and so does jaxal.

`majority_distance="farthest"` replaces the min over majority centroids by the max,
as in Emam et al.'s `BalancingSampler` (the other public implementation of this
step, squared distances and the ratio); the method guide §4 and the default take the
nearest majority centroid, which is what "far from every majority class" needs.

Distances to centroids live in an [N, N_t] matrix on device and only the column of
a class whose centroid moved is recomputed (one matrix-vector product), so a
balancing step costs one pass over the features rather than N_t. For pools where
that matrix is too large (4 N_t bytes per point: 400 MB at N = 1M, N_t = 100;
by default above 256 MiB), every distance is recomputed at each decision in row
blocks instead (`cache_distances=False`), in memory O(N) beyond the features.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxal import _validation as V
from jaxal import _xla_cpu
from jaxal import distances
from jaxal import guesses as guesses_lib
from jaxal.diversify import _check_ranking
from jaxal.uncertainty import by_row_blocks
from jaxal.errors import InputError

RULES = ("ratio", "difference")
CACHE_LIMIT_BYTES = 256 << 20  # cache_distances=None: the largest [N, N_t] cache
MAJORITY_DISTANCES = ("nearest", "farthest")
Oracle = Union[ArrayLike, Callable[[np.ndarray], ArrayLike]]


def switch_to_balancing(counts: np.ndarray, remaining: int) -> bool:
  """Eq. 9's switch rule: True when the remaining budget should balance.

  Args:
    counts: [N_t] labeled count per target class.
    remaining: budget r still to spend.
  """
  counts = np.asarray(counts, np.float64)
  majority = counts > counts.mean()
  if not majority.any():  # every class has the same count: nothing to balance
    return False
  gap = counts[majority].mean() - counts[~majority].mean()
  return not remaining > (~majority).sum() * gap


@functools.partial(jax.jit, donate_argnums=(0,))
def _refresh_column(dists, x, x_sq, mean, weights, centroid, c):
  col = distances.sq_dists_to(x, x_sq, mean, weights, centroid[None, :])[:, 0]
  return dists.at[:, c].set(col)


def _scores(dists, counts, rule: str, majority_distance: str):
  """Eq. 9's balancing score of each row of `dists` [n, N_t] (squared distances
  to the centroids; the difference rule takes their square roots); lower is
  picked first."""
  counts = counts.astype(jnp.float32)
  majority = counts > jnp.mean(counts)
  if rule == "difference":
    dists = jnp.sqrt(dists)
  # A per-class offset, not a [N, N_t] where: the sum fuses into the reduction,
  # so no second [N, N_t] array is allocated (x + 0 == x exactly; x + inf = inf).
  if majority_distance == "nearest":
    d_majority = jnp.min(dists + jnp.where(majority, 0.0, jnp.inf)[None, :], axis=1)
  else:
    d_majority = jnp.max(dists + jnp.where(majority, 0.0, -jnp.inf)[None, :], axis=1)
  rare = jnp.argmin(counts)
  rare_seen = counts[rare] > 0
  d_rare = dists[:, rare]
  if rule == "ratio":
    return jnp.where(rare_seen, d_rare, 1.0) / jnp.maximum(d_majority, 1e-30)
  return jnp.where(rare_seen, d_rare, 0.0) - d_majority


def _best(score, available, k: int):
  score = jnp.where(available, score, jnp.inf)
  return jax.lax.top_k(-score, k)[1]


@functools.partial(jax.jit, static_argnames=("rule", "majority_distance", "k"))
def _balancing_picks(dists, counts, available, *, rule: str, majority_distance: str,
                     k: int):
  """The k available samples with the lowest balancing score, best first, from
  the cached [N, N_t] squared distances."""
  return _best(_scores(dists, counts, rule, majority_distance), available, k)


def _picks_by_blocks(x, x_sq, mean, weights, centroids, counts, available,
                     *, rule: str, majority_distance: str, k: int):
  def scores(xb, xb_sq):
    d = distances.sq_dists_to(xb, xb_sq, mean, weights, centroids)
    return _scores(d, counts, rule, majority_distance)
  return _best(by_row_blocks(scores, x, x_sq), available, k)


@functools.lru_cache(maxsize=None)
def _blocks_kernel(platform: str):
  """`_picks_by_blocks` jitted for `platform`, on CPU with XLA's older loop
  emitters (`_xla_cpu.loop_emitter_options`): at N = 1M, d = 512, N_t = 100
  its compilation took +27 MiB of resident memory with the MLIR fusion
  emitters and +5-6 MiB with these (2-core AMD Zen 4), 22 of the first call's
  bytes per point, with the same picks and a run time within noise (1.9 s
  either way)."""
  return jax.jit(_picks_by_blocks, static_argnames=("rule", "majority_distance", "k"),
                 compiler_options=_xla_cpu.loop_emitter_options(platform))


def _balancing_picks_by_blocks(x, x_sq, mean, weights, centroids, counts, available,
                               *, rule: str, majority_distance: str, k: int):
  """As `_balancing_picks`, the distances to every centroid recomputed 8,192
  rows at a time (one [8192, d] x [d, N_t] product each): the temporaries are
  [8192, N_t] and the scores [N], whatever N."""
  platform = next(iter(x.devices())).platform
  return _blocks_kernel(platform)(x, x_sq, mean, weights, centroids, counts, available,
                                  rule=rule, majority_distance=majority_distance, k=k)


def balanced_select(ranking: ArrayLike, features: ArrayLike, oracle: Oracle,
                    budget: int, num_classes: int, *,
                    labeled_mask: Optional[ArrayLike] = None, rule: str = "ratio",
                    majority_distance: str = "nearest",
                    batch_size: int = 1,
                    cache_distances: Optional[bool] = None,
                    among: Optional[ArrayLike] = None,
                    guesses: Optional[ArrayLike] = None,
                    guess_weight: float = 0.5) -> np.ndarray:
  """Acquisition ranking followed by the balancing step (method guide §4).

  Args:
    ranking: unlabeled pool indices, best first, at least `budget` of them (e.g.
      `jaxal.acquisition.rank(...)` or `select(..., budget=budget)`).
    features: [N, d] source embeddings f of the whole pool.
    oracle: the annotator. Either [N] target labels (simulation: ground truth),
      or a callable taking an int array of pool indices and returning their
      labels. The callable is first asked, once, for the labels of the samples
      already in `labeled_mask` (return the stored ones), then for each new batch.
    budget: total number of samples to select; balancing never changes it.
    num_classes: N_t, the number of target classes; labels lie in [0, N_t).
    labeled_mask: optional [N] bool of already labeled samples; they count in
      n_c and the centroids and are never selected.
    rule: "ratio" (default, squared distances) or "difference" (plain
      Euclidean distances, the co-author's code).
    majority_distance: "nearest" (default, method guide §4: the min over majority
      centroids) or "farthest" (the max, Emam et al.'s `BalancingSampler`).
    batch_size: samples decided per annotator round trip. 1 (default) is the
      exact sequential rule; larger batches decide a batch from the state at its
      start (fewer round trips, an approximation of the rule).
    cache_distances: True keeps the [N, N_t] matrix of distances to the
      centroids (4 N_t bytes per point) and recomputes only the columns of
      moved centroids (fastest for one sample per decision); False recomputes
      all of them at each balancing decision, 8,192 rows at a time (memory O(N)
      beyond the features, one [N, d] x [d, N_t] product per decision; faster
      when a batch moves many centroids). None (default): True while the
      matrix takes at most 256 MiB, so the choice depends on N and N_t only.
      Both compute the same distances up to float32 rounding (a matrix-vector
      product per column against one matrix product), so they can order exact
      near-ties differently.
    among: optional [N] bool of the images that may be picked (e.g. one per
      group of near-duplicates, `jaxal.curation.duplicates.candidates`): the
      step runs on the pool of those and the labeled ones, as if the others
      were not in it (the ranking's other entries are skipped).
    guesses: optional [N, N_t] zero-shot probabilities over the target
      classes (`jaxal.zeroshot`): until every class has an answer, each pick
      fills the least represented class by its guesses (`jaxal.guesses`);
      then the paper's rule as without them. None (default): the paper's rule.
    guess_weight: with `guesses`, what a pick guessed as a class that has no
      answer yet counts for it (0: nothing; 1: as an answer).

  Returns:
    numpy int64 array of `budget` pool indices in selection order.

  Example:
    The first two labels are both class 0; the rule then switches to balancing
    and takes the points nearest class 1's centroid:

    >>> import numpy as np
    >>> from jaxal import balancing
    >>> feats = np.array([[0, 0], [.1, 0], [0, .1], [5, 5], [.2, 0], [5.1, 5]])
    >>> truth = np.array([0, 0, 0, 1, 0, 1])  # the oracle: ground-truth labels
    >>> balancing.balanced_select(np.arange(6), feats, truth, 4, num_classes=2)
    array([0, 1, 5, 3])
  """
  if among is not None:
    return _select_among(among, ranking, features, oracle, budget, num_classes,
                         labeled_mask=labeled_mask, guesses=guesses, rule=rule,
                         majority_distance=majority_distance, batch_size=batch_size,
                         cache_distances=cache_distances, guess_weight=guess_weight)
  args = _check_args(ranking, features, budget, num_classes, labeled_mask, rule,
                     majority_distance, batch_size, cache_distances)
  ask = asker(oracle, args.n, args.num_classes)
  return _select(args, ask, guesses_lib.build(guesses, args.ranking, guess_weight,
                                              args.n, args.num_classes))


def subset(among, labeled_mask, n: int) -> np.ndarray:
  """The pool indices a selection restricted to `among` ([n] bool) runs on:
  those images and the labeled ones (`labeled_mask`, [n] bool or None), both
  checked by name."""
  among = np.asarray(among)
  if among.shape != (n,) or among.dtype != bool:
    raise InputError(f"among must be a [{n}] bool mask, got {among.dtype} "
                     f"{among.shape}.", field="among")
  labeled = np.zeros(n, bool) if labeled_mask is None else np.asarray(labeled_mask)
  if labeled.shape != (n,):
    raise InputError(f"labeled_mask must have shape ({n},), got {labeled.shape}.",
                     field="labeled_mask")
  return np.flatnonzero(among | labeled.astype(bool))


def subset_oracle(oracle: Oracle, sub: np.ndarray) -> Oracle:
  """`oracle` over the pool, as an oracle over the rows `sub` of it."""
  if callable(oracle):
    return lambda idx: oracle(sub[np.asarray(idx, np.int64)])
  return np.asarray(oracle)[sub]


def _select_among(among, ranking, features, oracle, budget, num_classes, *,
                  labeled_mask, guesses, **kw) -> np.ndarray:
  """`balanced_select` on the pool of `among` and the labeled images."""
  n = np.shape(features)[0]
  sub = subset(among, labeled_mask, n)
  among = np.asarray(among)
  labeled = np.zeros(n, bool) if labeled_mask is None else np.asarray(labeled_mask, bool)
  pos = np.full(n, -1, np.int64)
  pos[sub] = np.arange(sub.size)
  ranking = np.asarray(ranking, np.int64).reshape(-1)
  if ranking.size and (ranking.min() < 0 or ranking.max() >= n):
    raise InputError(f"ranking must hold pool indices in [0, {n}).", field="ranking")
  picks = balanced_select(pos[ranking[among[ranking]]], np.asarray(features)[sub],
                          subset_oracle(oracle, sub), budget, num_classes,
                          labeled_mask=labeled[sub],
                          guesses=None if guesses is None else np.asarray(guesses)[sub],
                          **kw)
  return sub[picks]


def _select(args: _Args, ask, guide: Optional[guesses_lib.Guide] = None) -> np.ndarray:
  """`balanced_select` on checked arguments: decides `args.batch_size` samples
  at a time, by the guesses while a class has no answer (`guide`), else from
  the ranking or by the balancing score, and asks for their labels."""
  pool = _device_pool(args.features)
  tally = _Tally.empty(args.num_classes, args.features.shape[1])
  available = ~args.mask
  dists = None  # [N, N_t], built on the first balancing step (cache_distances)
  initial = np.flatnonzero(args.mask)
  if initial.size:
    tally.record(args.features, initial, ask(initial))
    if guide is not None:  # earlier rounds' picks count for their top guess
      guide.record(initial)

  selected: list[int] = []
  cursor = 0  # next position in the ranking
  while len(selected) < args.budget:
    remaining = args.budget - len(selected)
    k = min(args.batch_size, remaining)
    if guide is not None and guide.leads(tally.counts):
      picks = guide.picks(tally.counts, available, k)
    elif not switch_to_balancing(tally.counts, remaining):
      picks, cursor = _ranking_picks(args.ranking, cursor, available, k)
    elif not args.cache_distances:
      picks = _picks_recomputed(args, pool, tally, available, k)
    else:
      picks, dists = _picks_cached(args, pool, tally, dists, available, k)
    available[picks] = False
    tally.record(args.features, picks, ask(picks))
    if guide is not None:
      guide.record(picks)
    selected.extend(picks.tolist())
  return np.asarray(selected, np.int64)


@dataclasses.dataclass(frozen=True)
class _Args:
  """`balanced_select`'s arguments, checked."""
  features: np.ndarray  # [N, d] in the working dtype (float64 under x64)
  ranking: np.ndarray  # unlabeled pool indices, best first
  mask: np.ndarray  # [N] bool, labeled
  budget: int
  num_classes: int
  rule: str
  majority_distance: str
  batch_size: int
  cache_distances: bool  # resolved from None by the cache's size

  @property
  def n(self) -> int:
    return self.features.shape[0]


def _check_args(ranking, features, budget, num_classes, labeled_mask, rule,
                majority_distance, batch_size, cache_distances) -> _Args:
  """`balanced_select`'s arguments checked (each error names the argument and
  the fix), the features in the working dtype and `cache_distances` resolved."""
  f = V.check_features(features)
  n = f.shape[0]
  num_classes = V.check_num_classes(num_classes)
  mask = V.check_mask(labeled_mask, n)
  ranking = _check_ranking(ranking, n)
  if mask.any() and mask[ranking].any():  # no [N] temporary without a mask
    raise InputError("ranking contains labeled samples (e.g. index "
                     f"{int(ranking[mask[ranking]][0])}); rank only the unlabeled "
                     "pool, e.g. with jaxal.acquisition.rank(..., labeled_mask=...).")
  budget = V.check_budget(budget, int(n - mask.sum()))
  if ranking.size < budget:
    raise InputError(f"ranking has {ranking.size} entries but budget={budget}; "
                     "pass a ranking at least as long as the budget.")
  if rule not in RULES:
    raise InputError(f"rule must be one of {RULES}, got {rule!r}.")
  if majority_distance not in MAJORITY_DISTANCES:
    raise InputError(f"majority_distance must be one of {MAJORITY_DISTANCES}, got "
                     f"{majority_distance!r}.")
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
      or batch_size < 1:
    raise InputError(f"batch_size must be a positive int, got {batch_size!r}.")
  if cache_distances is None:
    cache_distances = n * num_classes * 4 <= CACHE_LIMIT_BYTES
  elif not isinstance(cache_distances, (bool, np.bool_)):
    raise InputError(f"cache_distances must be True, False or None, got "
                     f"{cache_distances!r}.")
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  return _Args(np.asarray(f, dtype), ranking, mask, budget, num_classes, rule,
               majority_distance, int(batch_size), bool(cache_distances))


class _DevicePool(NamedTuple):
  """The features on the device and the constants of their distances."""
  x: jax.Array  # [N, d]
  x_sq: jax.Array  # [N] squared norms about `mean`
  mean: jax.Array  # [d] centering vector
  weights: jax.Array  # [d] unit weights
  dtype: type  # the working float dtype


def _device_pool(f: np.ndarray) -> _DevicePool:
  """`f` [N, d] on the device, with its mean and centered squared norms."""
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  # device_put, not jnp.asarray: on CPU it aliases an aligned host array (a
  # memory-mapped pool included) instead of copying N x d floats.
  x = jax.device_put(f)
  mean = jnp.asarray(f.mean(axis=0, dtype=np.float64), dtype)
  weights = jnp.ones((f.shape[1],), dtype)
  return _DevicePool(x, distances.centered_sq_norms(x, mean, weights), mean, weights,
                     dtype)


@dataclasses.dataclass
class _Tally:
  """The labels so far, per class: count, sum of features (float64, for the
  centroids) and whether the centroid moved since its cached column."""
  counts: np.ndarray  # [N_t] int64
  sums: np.ndarray  # [N_t, d] float64
  stale: np.ndarray  # [N_t] bool

  @classmethod
  def empty(cls, num_classes: int, d: int) -> "_Tally":
    return cls(np.zeros((num_classes,), np.int64),
               np.zeros((num_classes, d), np.float64), np.zeros((num_classes,), bool))

  def record(self, f: np.ndarray, idx: np.ndarray, labels: np.ndarray):
    """Adds the samples `idx` of `f`, labeled `labels`."""
    np.add.at(self.counts, labels, 1)
    np.add.at(self.sums, labels, f[idx])
    self.stale[labels] = True


def _ranking_picks(ranking: np.ndarray, cursor: int, available: np.ndarray,
                   k: int) -> tuple[np.ndarray, int]:
  """(the next k available samples of the ranking from `cursor`, the cursor
  after them)."""
  picks = []
  while len(picks) < k:
    i = int(ranking[cursor])
    cursor += 1
    if available[i]:
      picks.append(i)
  return np.asarray(picks, np.int64), cursor


def _picks_recomputed(args: _Args, pool: _DevicePool, tally: _Tally, available,
                      k: int) -> np.ndarray:
  """The k best balancing picks, every distance to a centroid recomputed
  (`cache_distances=False`)."""
  seen = tally.counts > 0  # an empty class's centroid is never used: 0, not 0 / 0
  centroids = np.zeros_like(tally.sums)
  centroids[seen] = tally.sums[seen] / tally.counts[seen, None]
  return np.asarray(_balancing_picks_by_blocks(
      pool.x, pool.x_sq, pool.mean, pool.weights, jnp.asarray(centroids, pool.dtype),
      tally.counts, available, rule=args.rule,
      majority_distance=args.majority_distance, k=k)).astype(np.int64)


def _picks_cached(args: _Args, pool: _DevicePool, tally: _Tally, dists, available,
                  k: int):
  """(the k best balancing picks, the [N, N_t] distance cache): the cache
  (created on the first call, `dists` None) has the columns of moved centroids
  recomputed first."""
  if dists is None:
    dists = jnp.zeros((pool.x.shape[0], tally.counts.shape[0]), pool.dtype)
  for c in np.flatnonzero(tally.stale & (tally.counts > 0)):
    dists = _refresh_column(dists, pool.x, pool.x_sq, pool.mean, pool.weights,
                            jnp.asarray(tally.sums[c] / tally.counts[c], pool.dtype),
                            int(c))
  tally.stale[:] = False
  picks = np.asarray(_balancing_picks(
      dists, tally.counts, available, rule=args.rule,
      majority_distance=args.majority_distance, k=k)).astype(np.int64)
  return picks, dists


def asker(oracle: Oracle, n: int, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
  """`ask(indices) -> labels` of an array or callable oracle, the answers
  checked (labels in [0, num_classes), one per index)."""
  if callable(oracle):
    def ask(idx: np.ndarray) -> np.ndarray:
      return V.check_labels(oracle(np.asarray(idx, np.int64)), num_classes,
                            name="labels returned by oracle", length=len(idx))
    return ask
  labels = V.check_labels(oracle, num_classes, name="oracle", length=n)
  return lambda idx: labels[idx]
