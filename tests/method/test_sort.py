"""jaxal._sort.stable_order equals JAX's stable sorts, ties and all."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxal._sort import stable_order


@pytest.mark.parametrize("seed", [0, 1])
def test_one_key_equals_stable_argsort_with_ties(seed):
  rng = np.random.default_rng(seed)
  for keys in (rng.integers(0, 7, 5000).astype(np.int32),  # many ties
               rng.normal(size=5000).astype(np.float32).round(1),
               np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -0.0, np.nan,
                         0.0], np.float32)):
    got = np.asarray(stable_order(jnp.asarray(keys)))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.asarray(jnp.argsort(keys, stable=True)))


def test_two_keys_equal_lexsort():
  rng = np.random.default_rng(3)
  mask = rng.random(4000) < 0.3
  key = rng.integers(0, 5, 4000).astype(np.float32)  # ties within each mask value
  got = np.asarray(stable_order(jnp.asarray(mask), jnp.asarray(key)))
  np.testing.assert_array_equal(got, np.asarray(jnp.lexsort((key, mask))))
  np.testing.assert_array_equal(got, np.lexsort((key, mask)))
