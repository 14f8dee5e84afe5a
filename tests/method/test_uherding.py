"""UHerding (`jaxal.coldstart.uherding`): a float64 reference written from the
definition on clustered pools (cold, with labeled points, several seeds, one tile
and many), the adaptive bandwidth and temperature rules, scikit-activeml 1.0.1's
`MaxHerding` golden picks (UHerding with uniform uncertainty), and bad inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxal.coldstart import maxherding, uherding
from jaxal.errors import InputError

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "data", "skactiveml")


def clustered(seed, n_per=15, k=4, d=6):
  rng = np.random.default_rng(seed)
  c = rng.normal(size=(k, d)) * 2
  x = np.concatenate([ci + rng.normal(size=(n_per, d)) for ci in c])
  return x.astype(np.float32)


def ref_sigma(f, mask):
  """The bandwidth rule, float64, all pairs."""
  def nonzero(a):
    d = np.sqrt(np.square(a[:, None] - a[None]).sum(-1))
    v = d[np.triu_indices(len(a), 1)]
    return v[v > 0]
  if mask.sum() >= 2 and nonzero(f[mask]).size:
    return nonzero(f[mask]).min()
  return np.median(nonzero(f[~mask]))


def ref_uherding(x, budget, mask, probs=None, sigma=None):
  """Greedy uncertainty coverage, float64, with the whole kernel matrix: gain(c) =
  sum over unlabeled i of U_i max(k(x_i, c) - max_{s in S ∪ L} k(x_i, s), 0)."""
  f = x.astype(np.float64)
  f = f / np.linalg.norm(f, axis=1, keepdims=True)
  sigma = ref_sigma(f, mask) if sigma is None else sigma
  k = np.exp(-np.square(f[:, None] - f[None]).sum(-1) / sigma ** 2)
  if probs is None:
    u = np.ones(len(f))
  else:
    p = np.sort(probs, axis=1)
    u = 1 - (p[:, -1] - p[:, -2])
  u = np.where(mask, 0, u)
  cur = k[:, mask].max(1) if mask.any() else np.zeros(len(f))
  taken, out = mask.copy(), []
  for _ in range(budget):
    g = (u[:, None] * np.maximum(k - cur[:, None], 0)).sum(0)
    g[taken] = -np.inf
    j = int(np.argmax(g))
    out.append(j)
    taken[j] = True
    cur = np.maximum(cur, k[:, j])
  return np.array(out), sigma


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("labeled", [0, 5])
def test_equals_float64_definition(seed, labeled):
  x = clustered(seed)
  rng = np.random.default_rng(seed + 10)
  mask = np.zeros(len(x), bool)
  mask[rng.choice(len(x), labeled, replace=False)] = True
  probs = rng.dirichlet(np.ones(3), len(x))
  want, sigma = ref_uherding(x, 8, mask, probs)
  got, info = uherding.uherding(x, 8, labeled_mask=mask, probabilities=probs,
                                return_info=True)
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.int64 and not mask[got].any()
  np.testing.assert_allclose(info.bandwidth, sigma, rtol=1e-6)
  assert np.all(info.uncertainty[mask] == 0)
  # many [16, 16] tiles, and plain greedy: the same picks
  np.testing.assert_array_equal(
      uherding.uherding(x, 8, labeled_mask=mask, probabilities=probs, _rows=16), want)
  plain, pinfo = uherding.uherding(x, 8, labeled_mask=mask, probabilities=probs,
                                   lazy=False, return_info=True)
  np.testing.assert_array_equal(plain, want)
  assert info.evaluations < pinfo.evaluations


def test_lazy_equals_plain_on_a_larger_pool_with_ties():
  """Duplicated points give exactly tied gains: both take the lowest index."""
  x = clustered(7, n_per=100)
  x = np.concatenate([x, x[:50]])
  probs = np.random.default_rng(7).dirichlet(np.ones(4), len(x))
  probs[400:] = probs[:50]
  mask = np.zeros(len(x), bool)
  mask[[3, 150, 260]] = True
  lazy, info = uherding.uherding(x, 40, labeled_mask=mask, probabilities=probs,
                                 _rows=128, return_info=True)
  plain = uherding.uherding(x, 40, labeled_mask=mask, probabilities=probs, _rows=128,
                            lazy=False)
  np.testing.assert_array_equal(lazy, plain)
  assert len(set(lazy.tolist())) == 40 and (lazy < 400).all()  # originals first
  assert info.evaluations < 40 * 447 / 4


def test_logits_with_temperature_equal_their_softmax():
  x = clustered(3)
  z = np.random.default_rng(3).normal(size=(len(x), 4)) * 3
  t = 2.5
  p = np.exp(z / t) / np.exp(z / t).sum(1, keepdims=True)
  mask = np.zeros(len(x), bool)
  mask[[1, 20, 40]] = True
  want, _ = ref_uherding(x, 6, mask, p)
  np.testing.assert_array_equal(
      uherding.uherding(x, 6, labeled_mask=mask, logits=z, temperature=t), want)


def test_uniform_uncertainty_with_given_bandwidth_is_maxherding():
  x = clustered(4)
  mask = np.zeros(len(x), bool)
  mask[[0, 30]] = True
  np.testing.assert_array_equal(
      uherding.uherding(x, 7, labeled_mask=mask, bandwidth=0.8),
      maxherding.maxherding(x, 7, labeled_mask=mask, bandwidth=0.8))
  # probabilities with no information (margin 1 everywhere, U = 0) fall back to
  # pure coverage, as in scikit-activeml
  onehot = np.eye(3)[np.arange(len(x)) % 3]
  np.testing.assert_array_equal(
      uherding.uherding(x, 7, labeled_mask=mask, bandwidth=0.8, probabilities=onehot),
      maxherding.maxherding(x, 7, labeled_mask=mask, bandwidth=0.8))


def test_median_bandwidth_on_a_subset_is_seeded():
  x = clustered(5, n_per=30)
  f = x / np.linalg.norm(x, axis=1, keepdims=True)
  none = np.zeros(len(x), bool)
  exact = uherding.adaptive_bandwidth(f, none, median_points=len(x))
  np.testing.assert_allclose(exact, ref_sigma(f.astype(np.float64), none), rtol=1e-6)
  a = uherding.adaptive_bandwidth(f, none, seed=1, median_points=40)
  assert a == uherding.adaptive_bandwidth(f, none, seed=1, median_points=40)
  assert a != exact
  # one labeled point: no labeled pair, so the median rule
  one = none.copy()
  one[0] = True
  assert uherding.adaptive_bandwidth(f, one, median_points=1000) > 0


def test_select_temperature_minimises_ece():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, 200)
  z = np.eye(3)[y] * 2.0 + rng.normal(size=(200, 3)) * 1.5  # over/under-confident
  temps = np.array([0.3, 1.0, 3.0])
  eces = [uherding.expected_calibration_error(
      np.exp(z / t) / np.exp(z / t).sum(1, keepdims=True), y) for t in temps]
  assert uherding.select_temperature(z, y, temps) == temps[int(np.argmin(eces))]
  assert uherding.select_temperature(z, y) in uherding.DEFAULT_TEMPERATURES


@pytest.mark.parametrize("name", ["cold", "labeled"])
def test_agrees_with_scikit_activeml_maxherding_golden(name):
  """scikit-activeml 1.0.1 has no UHerding: its MaxHerding is UHerding with U = 1
  and a given bandwidth (tests/data/make_skactiveml.py)."""
  z = np.load(os.path.join(GOLDEN, f"maxherding_{name}.npz"))
  got = uherding.uherding(z["features"], int(z["budget"]), labeled_mask=z["labeled"],
                          bandwidth=float(z["bandwidth"]))
  np.testing.assert_array_equal(got, z["picks"])


@pytest.mark.parametrize("kwargs,field", [
    (dict(probabilities=np.ones((3, 3))), "probabilities"),
    (dict(logits=np.ones((60, 1))), "logits"),
    (dict(probabilities=np.ones((60, 2)), logits=np.ones((60, 2))), "probabilities"),
    (dict(logits=np.ones((60, 2)), temperature=0.0), None),
    (dict(bandwidth=-1.0), None),
    (dict(median_points=1), "median_points"),
    (dict(seed=-1), "seed"),
    (dict(lazy=1), "lazy"),
])
def test_bad_inputs_name_the_argument(kwargs, field):
  x = clustered(0)
  with pytest.raises(InputError) as e:
    uherding.uherding(x, 3, **kwargs)
  assert e.value.field == field
  name = field or next(iter(k for k in kwargs if k != "logits"))
  assert name in str(e.value)


def test_budget_and_mask_are_checked():
  x = clustered(0)
  with pytest.raises(InputError, match="budget"):
    uherding.uherding(x, len(x) + 1)
  with pytest.raises(InputError, match="labeled_mask"):
    uherding.uherding(x, 2, labeled_mask=np.zeros(3, bool))
