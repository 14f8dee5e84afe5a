"""Uncertainty scores against hand-computed values; jit equals eager."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import uncertainty as U

PROBS = np.array([[0.5, 0.5, 0.0],
                  [1.0, 0.0, 0.0],
                  [0.7, 0.2, 0.1],
                  [0.25, 0.25, 0.5]], np.float32)


def test_entropy_hand_computed():
  want = [math.log(2), 0.0,
          -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
          -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5))]
  np.testing.assert_allclose(U.entropy(PROBS), want, rtol=1e-6, atol=1e-7)


def test_least_confidence_hand_computed():
  np.testing.assert_allclose(U.least_confidence(PROBS), [0.5, 0.0, 0.3, 0.5],
                             atol=1e-7)


def test_margin_hand_computed():
  np.testing.assert_allclose(U.margin(PROBS), [0.0, 1.0, 0.5, 0.25], atol=1e-7)
  np.testing.assert_allclose(U.margin(np.ones((2, 1), np.float32)), [1.0, 1.0])


@pytest.mark.parametrize("kind", ["entropy", "least_confidence", "margin"])
@pytest.mark.parametrize("inverse", [False, True])
def test_ranking_hand_computed(kind, inverse):
  # Uncertainty (higher = more uncertain), ties broken by lower index:
  want = {"entropy": [3, 2, 0, 1],           # H = .693, 0, .802, 1.040
          "least_confidence": [0, 3, 2, 1],  # 0.5, 0, 0.3, 0.5 (tie: 0 first)
          "margin": [0, 3, 2, 1]}[kind]      # margins 0, 1, .5, .25
  mask = np.zeros(4, bool)
  got = np.asarray(U.rank_by_uncertainty(PROBS, mask, kind=kind, inverse=inverse))
  if inverse:  # most confident first; ties still by lower index
    u = np.asarray(U.uncertainty(kind, PROBS))
    want = sorted(range(4), key=lambda i: (u[i], i))
  np.testing.assert_array_equal(got, want)


def test_ranking_puts_labeled_last():
  mask = np.array([False, False, False, True])
  got = np.asarray(U.rank_by_uncertainty(PROBS, mask, kind="entropy"))
  np.testing.assert_array_equal(got, [2, 0, 1, 3])


@pytest.mark.parametrize("fn", [U.entropy, U.least_confidence, U.margin])
def test_jit_equals_eager(fn):
  p = np.random.default_rng(0).dirichlet(np.ones(50), size=64).astype(np.float32)
  with jax.disable_jit():
    eager = np.asarray(fn(p))
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(p)), eager, rtol=1e-6, atol=1e-7)


def test_rank_no_recompilation_same_shapes():
  rng = np.random.default_rng(1)
  mask = np.zeros(32, bool)
  U.rank_by_uncertainty(rng.dirichlet(np.ones(7), 32).astype(np.float32), mask,
                        kind="margin")
  before = U.rank_by_uncertainty._cache_size()
  for _ in range(3):
    p = rng.dirichlet(np.ones(7), 32).astype(np.float32)
    m = rng.random(32) < 0.3
    U.rank_by_uncertainty(p, m, kind="margin")
  assert U.rank_by_uncertainty._cache_size() == before


def test_unknown_kind():
  with pytest.raises(ValueError, match="unknown uncertainty kind"):
    U.uncertainty("variance", jnp.ones((1, 2)) / 2)


def test_margin_matches_sort_and_handles_ties():
  rng = np.random.default_rng(3)
  p = rng.dirichlet(np.full(17, 0.3), size=300).astype(np.float32)
  p[0] = [0.5, 0.5] + [0.0] * 15  # tied maxima
  p[1, :] = 1.0 / 17  # all equal
  s = np.sort(p, axis=1)
  np.testing.assert_allclose(U.margin(p), s[:, -1] - s[:, -2], atol=1e-7)
  assert float(U.margin(p)[0]) == 0.0 and float(U.margin(p)[1]) == 0.0
