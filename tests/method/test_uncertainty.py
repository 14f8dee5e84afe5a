"""Uncertainty scores against hand-computed values; jit equals eager."""

import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import uncertainty as U

from tests.conftest import ROOT  # noqa: E402

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


def _tied(rng, n, c):
  """Dirichlet rows with planted ties: repeated maxima, all-equal rows, zeros."""
  p = rng.dirichlet(np.full(c, 0.3), size=n).astype(np.float32)
  p[::7, : min(2, c)] = p[::7].max(axis=1, keepdims=True)  # a repeated maximum
  p[1::11] = np.float32(1.0 / c)
  return p


@pytest.mark.parametrize("n,c", [(1, 2), (5, 3), (300, 17), (1500, 31), (3000, 1000),
                                 (70000, 5)])
def test_margin_native_kernel_equals_xla_formulation_bit_for_bit(n, c):
  """On CPU `margin` is a native custom call where a compiler exists
  (`jaxal._native`); it must give XLA's formulation's values exactly: lane
  widths (C below, at and above 16 and 32), remainders, several threads
  (3000 x 1000 and 70,000 rows are split over the pool), ties and NaN rows."""
  rng = np.random.default_rng(n * 1000 + c)
  p = _tied(rng, n, c)
  if n > 3:
    p[3, c // 2] = np.nan
  got = np.asarray(jax.jit(U.margin)(p))
  want = np.asarray(jax.jit(U._margin_xla)(jnp.asarray(p)))
  np.testing.assert_array_equal(got, want)
  assert np.isnan(got).sum() == (n > 3)
  p = _tied(rng, n, c)  # the rankings (no NaN) are the same too, ties included
  want = np.asarray(jax.jit(U._margin_xla)(jnp.asarray(p)))
  mask = rng.random(n) < 0.2
  for inverse in (False, True):
    ranked = U.rank_by_uncertainty(p, mask, kind="margin", inverse=inverse)
    np.testing.assert_array_equal(ranked,
                                  np.lexsort((-want if inverse else want, mask)))


def test_margin_native_kernel_under_vmap_and_leading_axes():
  p = _tied(np.random.default_rng(5), 24, 40).reshape(2, 3, 4, 40)
  want = np.asarray(U._margin_xla(jnp.asarray(p)))
  np.testing.assert_array_equal(np.asarray(U.margin(p)), want)
  np.testing.assert_array_equal(np.asarray(jax.vmap(U.margin)(p)), want)


def test_margin_is_native_on_cpu_when_a_compiler_exists():
  """CI has g++: the native kernel must actually be used there, not silently
  replaced by the fallback."""
  import shutil  # pylint: disable=import-outside-toplevel
  from jaxal import _native  # pylint: disable=import-outside-toplevel
  if shutil.which(os.environ.get("CXX", "g++")) is None:
    pytest.skip("no C++ compiler here: jaxal falls back to XLA's formulation")
  U.margin(np.full((2, 3), 1 / 3, np.float32))
  assert _native.status()["margin"].startswith("native"), _native.status()


@pytest.mark.parametrize("env,reason", [({"JAXAL_NATIVE": "0"}, "XLA: JAXAL_NATIVE=0"),
                                        ({"CXX": "no-such-compiler"},
                                         "XLA: RuntimeError: no C++ compiler")])
def test_margin_falls_back_to_xla_and_says_why(env, reason, tmp_path):
  code = ("import numpy as np, jax\n"
          "from jaxal import uncertainty as U, _native\n"
          "p = np.random.default_rng(0).dirichlet(np.ones(9), 50).astype(np.float32)\n"
          "assert np.array_equal(np.asarray(U.margin(p)), np.asarray(U._margin_xla(p)))\n"
          "print(_native.status()['margin'])\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu",
                            "JAXAL_CACHE_DIR": str(tmp_path), **env})
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1].startswith(reason), out.stdout
  assert not list(tmp_path.glob("*.so"))  # nothing built, nothing half-built
