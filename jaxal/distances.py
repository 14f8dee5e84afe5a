"""Squared Euclidean distances from a whole pool to a few centers, in O(N) memory.

Shared by greedy k-center, the balancing step and the cold-start coverage greedy,
with the one bound on their float32 rounding (`sq_dist_error_bound`). Uses
``|x - c|^2 = |x|^2 - 2 x.c + |c|^2`` taken about a centering vector `mean` and with
per-dimension `weights` applied to the (small) center side, so the [N, d] pool is
read once per call by a matrix product and never copied or transformed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LAMBDA = 8.0  # confidence factor of the probabilistic rounding-error bound


def sq_dist_error_bound(max_norm, mean_norm, d: int, *, lam: float = LAMBDA,
                        eps: float = 2.0 ** -23):
  """delta: a bound on |float32 - exact| of one squared distance of `sq_dists_to`.

  With R = `max_norm` (the largest |x - mean|_w over the pool) and M =
  `mean_norm` (|mean|_w), an inner product of length n carries an error of at
  most g sum|a_k b_k| <= g |a| |b|, so the two norms' errors are at most g R^2
  each and the cross term's 2 g (R + 2M) R:

      delta = g (2 R^2 + 2 (R + 2M) R),   g = lam sqrt(d + 4) u,   u = eps / 2,

  with n = d + 4: the d terms of the inner product and the four operations of
  `sq_dists_to` after it (the centering correction, the weighting, the two
  additions of the three-term formula). This is Higham & Mary's probabilistic
  bound (SIAM J. Sci. Comput. 2019), exceeded with probability below
  2 exp(-lam^2 / 2), ~3e-14 per inner product at lam = 8; the worst case g = n u
  is ~300x above the errors seen on real sums. `lam` = 0 gives 0 (no band).
  NumPy or JAX scalars alike: `jaxal.kcenter` computes it on the device,
  `jaxal.coldstart.coverage` on the host.
  """
  xp = jnp if isinstance(max_norm, jax.Array) else np
  g = lam * xp.sqrt(d + 4.0) * (eps / 2)
  return g * (2 * max_norm * max_norm + 2 * (max_norm + 2 * mean_norm) * max_norm)


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
