"""DropQuery (Gupte, Aklilu, Nirschl & Yeung-Levy, TMLR 2024, "Revisiting Active
Learning in the Era of Vision Foundation Models").

Stated in the paper: on frozen foundation-model features, apply dropout
(p = 0.75) to the classifier's *inputs* M times; a point whose prediction changes
in more than half of the M dropout predictions (against the undropped prediction)
is a candidate, being near a decision boundary. k-means with k = the batch size
over the candidates, and the candidate nearest each centroid is queried. With no
labels (cold start) there is no classifier: the centroid rule runs over the whole
pool.

In the authors' code (the `Dropout` query of their ALFM repository): the
dropout predictions come from their torch classifier head called with dropout on
(`get_probs(features, dropout=True)`); candidates are the points with more than
M // 2 mismatches (the same as "more than half" for every M); too few
candidates are handled differently across versions of that code (one lowers the
mismatch threshold until there are 25 candidates per query, one adds random
unlabeled points), not as the paper describes. scikit-activeml 1.0.1's
`DropQuery` zeroes the dropped features *without* rescaling, keeps the
max(#candidates, batch) points of highest disagreement rate (`np.argsort`, its
order among ties unspecified), runs scikit-learn's `KMeans` on them, and for each
centroid in turn takes the nearest point not yet taken (ties at random).

Here [R]: the classifier is a linear probe given as its weights (W [d, C], b
[C]), so input dropout masks features before the linear layer; predictions are
argmax (lowest class on ties). `rescale=True` (default) is torch's inverted
dropout, which we take the authors' head to use (not checked line by line);
`rescale=False` is scikit-activeml's rule (the two agree when b = 0, since argmax
is scale-free). The M masks come from one `jax.random` key of `seed`
(`dropout_key`, apart from the k-means' key; `jax.random.fold_in(key, m)` for
the m-th), drawn over the whole pool so that a
point's mask does not depend on the labeled set. With no probe (cold start) the
centroid rule runs over the unlabeled points.
Fewer candidates than the budget are filled as scikit-activeml does: the
`budget` unlabeled points of highest disagreement, ties to the lowest index.
k-means is `jaxal.coldstart.kmeans` (k-means++ and Lloyd, seeded), not
scikit-learn's, so the picks are scikit-activeml's only where the two k-means
find the same centroids: the tests check, against its golden picks, that the
same points are clustered and that the nearest-point rule on scikit-learn's
centroids gives its picks. The nearest point per centroid, in centroid order, is
one not taken before (lowest index on ties).

Cost: M + 1 passes of an [N, d] x [d, C] product (jitted; one [N, d] mask at a
time), k-means over the candidates, and `budget` passes over the candidates for
the nearest points: O(N) memory beyond the features, no N x N or N x budget
matrix.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _validation as V
from jaxal.coldstart import _inputs, kmeans as kmeans_lib
from jaxal.errors import InputError


@dataclasses.dataclass(frozen=True)
class DropQueryInfo:
  """What `dropquery` clustered: its candidates and their disagreement counts."""
  candidates: np.ndarray  # int64 pool indices that were clustered
  flips: Optional[np.ndarray]  # [N] int64 dropout predictions differing from the
  # undropped one (None at cold start)
  filled: bool  # fewer flipped points than the budget: topped up by disagreement


_DROPOUT_STREAM = 1  # folded into the seed: masks independent of the k-means seeding


def dropout_key(seed: int) -> jax.Array:
  """The key of the dropout masks: `fold_in(PRNGKey(seed), 1)`; the m-th mask
  keeps each feature with probability 1 - p under `fold_in(dropout_key(seed), m)`."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), _DROPOUT_STREAM)


def _predict(x, w, b):
  return jnp.argmax(x @ w + b, axis=1)


@functools.partial(jax.jit, static_argnames=("samples",))
def _flips_random(x, w, b, key, keep_prob, scale, *, samples: int):
  """(undropped predictions [N], dropout predictions differing from them [N]);
  the m-th mask keeps each feature with probability `keep_prob` under
  `fold_in(key, m)`, one [N, d] mask at a time."""
  pred = _predict(x, w, b)

  def body(m, count):
    keep = jax.random.bernoulli(jax.random.fold_in(key, m), keep_prob, x.shape)
    return count + (_predict(jnp.where(keep, x * scale, 0), w, b) != pred)
  return pred, jax.lax.fori_loop(0, samples, body, jnp.zeros(x.shape[0], jnp.int32))


@jax.jit
def _flips_given(x, w, b, drop, scale):
  """As `_flips_random` with the masks given: `drop` [M, N, d] bool, True = zeroed."""
  pred = _predict(x, w, b)

  def body(m, count):
    return count + (_predict(jnp.where(drop[m], 0, x * scale), w, b) != pred)
  return pred, jax.lax.fori_loop(0, drop.shape[0], body,
                                 jnp.zeros(x.shape[0], jnp.int32))


@jax.jit
def _nearest_in_turn(x, centers):
  """For each center in order, the nearest row of `x` not taken by an earlier
  center (lowest index on ties): [K] int32."""
  def body(k, st):
    taken, out = st
    d = jnp.sum(jnp.square(x - centers[k]), axis=1)
    j = jnp.argmin(jnp.where(taken, jnp.inf, d))
    return taken.at[j].set(True), out.at[k].set(j.astype(jnp.int32))
  _, out = jax.lax.fori_loop(0, centers.shape[0], body,
                             (jnp.zeros(x.shape[0], bool),
                              jnp.zeros(centers.shape[0], jnp.int32)))
  return out


def _probe(weights, bias, d: int):
  """(W [d, C], b [C]) float32, checked."""
  w = np.asarray(weights)
  if w.ndim != 2 or w.shape[0] != d or w.shape[1] < 2 \
      or not np.issubdtype(w.dtype, np.number) or not np.all(np.isfinite(w)):
    raise InputError(f"weights must be a finite [d={d}, C>=2] array (the linear "
                     f"probe's W, logits = features @ W + b), got shape {w.shape}; "
                     "pass W transposed if you have it as [C, d].", field="weights")
  if bias is None:
    b = np.zeros((w.shape[1],), np.float32)
  else:
    b = np.asarray(bias)
    if b.shape != (w.shape[1],) or not np.issubdtype(b.dtype, np.number) \
        or not np.all(np.isfinite(b)):
      raise InputError(f"bias must be a finite [C={w.shape[1]}] array or None, got "
                       f"shape {b.shape}.", field="bias")
  return w.astype(np.float32), b.astype(np.float32)


def dropquery(features, budget: int, *, labeled_mask=None, seed: int = 0,
              weights=None, bias=None, dropout: float = 0.75, num_samples: int = 5,
              rescale: bool = True, kmeans_iters: int = 100,
              devices: Optional[Sequence[jax.Device]] = None,
              return_info: bool = False,
              kmeans_tuning: Optional[kmeans_lib.Tuning] = None,
              _drop_masks=None):
  """Selects `budget` unlabeled points with DropQuery (module docstring).

  Args:
    features: [N, d] pool features (the classifier's inputs; not normalised).
    budget: points to select, 0 < budget <= number of unlabeled points.
    labeled_mask: optional [N] bool; labeled points are never picked.
    seed: seed of the dropout masks and of the k-means.
    weights: [d, C] linear probe weights (logits = features @ W + b); None: cold
      start, the centroid rule over the whole unlabeled pool.
    bias: [C] probe bias, or None for zeros.
    dropout: probability p in (0, 1) of zeroing a feature (paper 0.75).
    num_samples: M >= 1 dropout predictions (scikit-activeml's default 5).
    rescale: scale kept features by 1 / (1 - p) (torch, the authors' code);
      False zeroes without rescaling (scikit-activeml).
    kmeans_iters: most Lloyd iterations.
    devices: shard the k-means over these devices.
    return_info: also return a `DropQueryInfo`.
    kmeans_tuning: the k-means' block size (`kmeans.Tuning`).
    _drop_masks: [M, N, d] bool masks (True = dropped) instead of the seeded
      ones; for tests against a reference.

  Returns:
    numpy int64 array of `budget` pool indices in selection order (and the info).
  """
  f, mask, budget = _inputs.pool(features, budget, labeled_mask, False)
  n, d = f.shape
  seed = V.check_seed(seed)
  kmeans_tuning = kmeans_lib.check_tuning(kmeans_tuning, "kmeans_tuning")
  if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)) \
      or not 0 < dropout < 1:
    raise InputError(f"dropout must be a float in (0, 1), got {dropout!r}; the paper "
                     "uses 0.75.", field="dropout")
  if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
      or num_samples < 1:
    raise InputError(f"num_samples must be an int >= 1, got {num_samples!r}; "
                     "scikit-activeml uses 5.", field="num_samples")
  if not isinstance(rescale, bool):
    raise InputError(f"rescale must be a bool, got {rescale!r}.", field="rescale")
  unl = np.flatnonzero(~mask)
  flips, filled = None, False
  if weights is None:
    if bias is not None:
      raise InputError("bias was given without weights; pass weights= too, or "
                       "neither for a cold start.", field="bias")
    cand = unl
  else:
    w, b = _probe(weights, bias, d)
    scale = np.float32(1.0 / (1.0 - dropout) if rescale else 1.0)
    if _drop_masks is not None:
      drop = np.asarray(_drop_masks, bool)
      if drop.ndim != 3 or drop.shape[1:] != (n, d):
        raise InputError(f"_drop_masks must be [M, N={n}, d={d}] bool, got shape "
                         f"{drop.shape}.", field="_drop_masks")
      num_samples = drop.shape[0]
      _, cnt = _flips_given(f, w, b, drop, scale)
    else:
      _, cnt = _flips_random(f, w, b, dropout_key(seed),
                             np.float32(1.0 - dropout), scale,
                             samples=int(num_samples))
    flips = np.asarray(cnt).astype(np.int64)
    cand = unl[2 * flips[unl] > num_samples]
    if cand.size < budget:  # scikit-activeml's fill: highest disagreement first
      filled = True
      order = np.lexsort((unl, -flips[unl]))
      cand = np.sort(unl[order[:budget]])
  km = kmeans_lib.kmeans(f[cand], budget, seed=seed, max_iter=kmeans_iters,
                         devices=devices, tuning=kmeans_tuning)
  picks = cand[np.asarray(_nearest_in_turn(f[cand], km.centers))].astype(np.int64)
  if not return_info:
    return picks
  return picks, DropQueryInfo(cand.astype(np.int64), flips, filled)
