"""Stable orderings without XLA:CPU's stable-sort buffer.

A stable sort by some keys is an unstable sort by the same keys followed by the
position: the position breaks every tie, so there is one sorted order and both
sorts find it. The results are identical (same comparator, the same total order
on floats); only the memory differs. On XLA:CPU (jaxlib 0.10.2, a 2-core
AVX-512 Xeon) the stable sort of 1,000,000 float32 keys with their positions
allocated 36-40 bytes per point beyond its operands (a merge buffer and index
copies), the unstable sort with the position as a second key 0-4, at the same
speed (255-300 ms). The rankings of `uncertainty` and `diversify` are such sorts
over the whole pool, so this is what keeps selection at N = 1M under 100 bytes
per point. `permutation` does the same for random selection's shuffle.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def stable_order(*keys: jax.Array) -> jax.Array:
  """int32 positions that sort 1-D `keys` lexicographically, the first key
  primary, ties in position order: `jnp.lexsort(keys[::-1])`, or
  `jnp.argsort(keys[0], stable=True)` for one key."""
  n = keys[0].shape[0]
  position = jnp.arange(n, dtype=jnp.int32)
  return jax.lax.sort((*keys, position), num_keys=len(keys) + 1, is_stable=False)[-1]


def permutation(key: jax.Array, n: int) -> jax.Array:
  """`jax.random.permutation(key, n)`, the same int32 values, without the stable
  sort's buffer.

  JAX shuffles by rounds of a stable sort of the positions by fresh random 32-bit
  keys (the rounds make colliding keys improbable). Here each round is the
  unstable sort by (random key, current position), which is that stable sort.
  At n = 1,000,000 (two rounds) random selection's first call took 55-65 bytes
  per point of growth with JAX's permutation.
  """
  exponent = 3  # JAX's `_shuffle` (jax/_src/random/core.py), as in jaxlib 0.10.2
  rounds = int(np.ceil(exponent * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))
  x = jnp.arange(n, dtype=jnp.int32)
  position = jnp.arange(n, dtype=jnp.int32)
  for _ in range(rounds):
    key, subkey = jax.random.split(key)
    bits = jax.random.bits(subkey, (n,), jnp.uint32)
    x = jax.lax.sort((bits, position, x), num_keys=2, is_stable=False)[-1]
  return x
