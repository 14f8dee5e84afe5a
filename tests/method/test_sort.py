"""jaxal._sort equals JAX's stable sorts and permutation, ties and all."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import acquisition
from jaxal._sort import permutation, stable_order


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


@pytest.mark.parametrize("n", [0, 1, 2, 1000, 1700, 70_001])
def test_permutation_equals_jax_random_permutation(n):
  # 1 round of sorting up to ~1,600 points, 2 from there to ~1.6M
  for seed in range(3):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    np.testing.assert_array_equal(np.asarray(permutation(key, n)),
                                  np.asarray(jax.random.permutation(key, n)))


def test_random_selection_is_the_first_unlabeled_of_jax_permutation():
  # what select("random") returned with jax.random.permutation, block by block
  n = 3000
  mask = np.random.default_rng(0).random(n) < 0.6
  key = jax.random.fold_in(jax.random.PRNGKey(5), acquisition._RANDOM_STREAM)
  perm = np.asarray(jax.random.permutation(key, n))
  want = perm[~mask[perm]][:900]
  got = acquisition.select("random", budget=900, labeled_mask=mask, seed=5)
  assert got.dtype == np.int64
  np.testing.assert_array_equal(got, want)
  for block in (1, 7, 1000):  # blocks that cross the budget's end
    np.testing.assert_array_equal(
        acquisition._first_unlabeled(perm, mask, 900, block=block), want)
