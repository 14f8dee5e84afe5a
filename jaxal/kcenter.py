"""Greedy k-center (farthest-first traversal), the core-set acquisition function.

Implements METHOD.md section 3 "core-set" (Sener & Savarese 2018, as used by the
paper): repeatedly add the pool point farthest from its nearest center. Labeled
points are the initial centers; with none, the first center is drawn from the seed
and counts toward the budget. Distances are Euclidean on the source embedding f,
optionally after per-dimension min-max normalisation (a reconstructed [R] option).

Speed and memory. Each step must compare the new center with every pool point, so
the loop is bound by streaming the [N, d] features from memory once per step. The
kernel does exactly that: one matrix-vector product per step using
``|x - c|^2 = |x|^2 - 2 x.c + |c|^2`` with the squared norms computed once, inside
a single jitted `lax.fori_loop` (no host round trip per step). Memory beyond the
features is O(N): the running minimum distance, the norms and the exclusion mask;
never an N x N or N x b matrix. Labeled centers are folded in by chunks of
`_CHUNK` columns, so even many labeled points cost O(N * _CHUNK).

Precision. Norms and dot products are taken about the feature mean and the
normalisation is applied to the matvec vector, not to a copy of the features
(`jaxal.distances`): the subtraction loses less to rounding on ReLU features (all
positive, large mean) and no second copy of the features is made.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jaxal import _validation as V
from jaxal import distances

_CHUNK = 16  # labeled centers folded in per matmul


@functools.partial(jax.jit, static_argnames=("budget",))
def _kcenter_kernel(x, weights, mean, labeled_idx, num_labeled, excluded, first, *,
                    budget):
  """Farthest-first traversal on device; see `kcenter_greedy`.

  Args:
    x: [N, d] features (rows of padding allowed, marked in `excluded`).
    weights: [d] per-dimension weights of the squared distance (scale**2).
    mean: [d] centering vector (translation does not change distances).
    labeled_idx: [max(N, _CHUNK)] int32, the labeled indices first, padded with
      a repeat of a labeled index.
    num_labeled: int32 scalar, how many entries of `labeled_idx` are real.
    excluded: [N] bool, never selectable (labeled or padding).
    first: int32 scalar, the first center when `num_labeled == 0`.
    budget: static number of centers to add.

  Returns:
    [budget] int32 selected indices in order.
  """
  x = jnp.asarray(x)
  n = x.shape[0]
  x_sq = distances.centered_sq_norms(x, mean, weights)

  def sq_dist_to(centers):  # [k, d] -> [N, k]
    return distances.sq_dists_to(x, x_sq, mean, weights, centers)

  def fold_labeled(j, md):
    idx = jax.lax.dynamic_slice_in_dim(labeled_idx, j * _CHUNK, _CHUNK)
    return jnp.minimum(md, jnp.min(sq_dist_to(x[idx]), axis=1))

  md = jnp.full((n,), jnp.inf, x.dtype)
  num_chunks = (num_labeled + _CHUNK - 1) // _CHUNK
  md = jax.lax.fori_loop(0, num_chunks, fold_labeled, md)
  md = jnp.where(excluded, -jnp.inf, md)

  def step(i, carry):
    md, selected = carry
    use_first = (i == 0) & (num_labeled == 0)
    idx = jnp.where(use_first, first, jnp.argmax(md)).astype(jnp.int32)
    d = sq_dist_to(x[idx][None, :])[:, 0]
    md = jnp.minimum(md, d).at[idx].set(-jnp.inf)
    return md, selected.at[i].set(idx)

  selected = jnp.zeros((budget,), jnp.int32)
  _, selected = jax.lax.fori_loop(0, budget, step, (md, selected))
  return selected


def kcenter_greedy(features: ArrayLike, budget: int, *,
                   labeled_mask: Optional[ArrayLike] = None, seed: int = 0,
                   normalize: bool = False,
                   devices: Optional[Sequence[jax.Device]] = None) -> np.ndarray:
  """Greedy k-center selection (farthest-first traversal), METHOD.md section 3.

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

  Returns:
    numpy int64 array of `budget` pool indices in selection order.

  Example:
    >>> kcenter_greedy(np.array([[0.], [1.], [10.]]), 2, seed=0)
  """
  f = V.check_features(features)
  n, d = f.shape
  mask = V.check_mask(labeled_mask, n)
  budget = V.check_budget(budget, int(n - mask.sum()))
  if not isinstance(normalize, bool):
    raise ValueError(f"normalize must be a bool, got {normalize!r}.")

  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  f = np.asarray(f, dtype=dtype)  # no copy when already float32
  if normalize:
    lo, hi = f.min(axis=0), f.max(axis=0)
    span = (hi - lo).astype(np.float64)
    scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
    weights = np.square(scale).astype(dtype)
  else:
    weights = np.ones((d,), dtype)
  mean = f.mean(axis=0, dtype=np.float64).astype(dtype)

  labeled = np.flatnonzero(mask).astype(np.int32)
  padded = np.zeros((max(n, _CHUNK),), np.int32)
  if labeled.size:
    padded[:] = labeled[0]
    padded[:labeled.size] = labeled
  first = int(jax.random.randint(jax.random.PRNGKey(seed), (), 0, n))

  x, excluded = f, mask
  if devices is not None and len(devices) > 1:
    x, excluded = _shard_pool(f, mask, devices)
  selected = _kcenter_kernel(x, weights, mean, padded, np.int32(labeled.size),
                             excluded, np.int32(first), budget=budget)
  return np.asarray(selected).astype(np.int64)


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
