"""Squared Euclidean distances from a whole pool to a few centers, in O(N) memory.

Shared by greedy k-center and the balancing step. Uses
``|x - c|^2 = |x|^2 - 2 x.c + |c|^2`` taken about a centering vector `mean` and with
per-dimension `weights` applied to the (small) center side, so the [N, d] pool is
read once per call by a matrix product and never copied or transformed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit
def centered_sq_norms(x: jax.Array, mean: jax.Array, weights: jax.Array) -> jax.Array:
  """[N] weighted squared norms |x - mean|_w^2 (one fused pass, no [N, d] temp:
  jitted, since called eagerly each operation would allocate an [N, d] array)."""
  return jnp.sum(weights * jnp.square(x - mean), axis=1)


def sq_dists_to(x: jax.Array, x_sq: jax.Array, mean: jax.Array, weights: jax.Array,
                centers: jax.Array) -> jax.Array:
  """[N, k] weighted squared distances from the pool `x` [N, d] to `centers` [k, d].

  `x_sq` is `centered_sq_norms(x, mean, weights)`. Translation by `mean` does not
  change distances; it only shrinks the terms that cancel, so less is lost to
  rounding. Negative round-off is clamped to zero.
  """
  v = (centers - mean) * weights  # [k, d]
  # HIGHEST: full float32 products on every backend (no TF32/bf16 passes), which
  # the rounding-error bound of `kcenter` relies on; the product is memory-bound.
  hi = jax.lax.Precision.HIGHEST
  if v.shape[0] == 1:  # a true matrix-vector product: XLA:CPU runs a [d, 1]
    dots = jnp.dot(x, v[0], precision=hi)[:, None]  # matmul ~15% slower
  else:
    dots = jnp.dot(x, v.T, precision=hi)
  dots = dots - jnp.dot(mean, v.T, precision=hi)
  c_sq = jnp.sum(weights * jnp.square(centers - mean), axis=1)
  return jnp.maximum(x_sq[:, None] - 2.0 * dots + c_sq[None, :], 0.0)
