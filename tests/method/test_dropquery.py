"""DropQuery (`jaxal.coldstart.dropquery`): a float64 reference written from the
definition with the dropout masks fixed (several seeds, cold and with labeled
points, the fill), the seeded masks, scikit-activeml 1.0.1's golden picks
(tests/data/make_skactiveml.py) and where jaxal differs on purpose, bad inputs."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from jaxal.coldstart import dropquery, kmeans
from jaxal.errors import InputError

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "data", "skactiveml")


def clustered(seed, n_per=20, k=3, d=6):
  rng = np.random.default_rng(seed)
  c = rng.normal(size=(k, d)) * 2
  x = np.concatenate([ci + rng.normal(size=(n_per, d)) for ci in c])
  return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def probe(x, y, k):
  """Class means as a linear probe: W [d, k], b [k] (nearest mean, up to |x|^2)."""
  mu = np.stack([x[y == c].mean(0) for c in range(k)]).astype(np.float64)
  return mu.T, -0.5 * np.square(mu).sum(1)


def ref_candidates(x, mask, w, b, drops, scale, budget):
  """Points whose dropout prediction differs in more than half of the M samples;
  fewer than the budget: the budget points of most flips, lowest index first."""
  x = x.astype(np.float64)
  pred = np.argmax(x @ w + b, 1)
  flips = sum(np.argmax(np.where(dm, 0, x * scale) @ w + b, 1) != pred for dm in drops)
  unl = np.flatnonzero(~mask)
  cand = unl[2 * flips[unl] > len(drops)]
  if cand.size < budget:
    cand = np.sort(sorted(unl, key=lambda i: (-flips[i], i))[:budget])
  return cand, flips


def ref_nearest(x, cand, centers):
  """For each centroid in order, the nearest candidate not yet taken."""
  out = []
  for c in centers.astype(np.float64):
    d = np.square(x[cand].astype(np.float64) - c).sum(1)
    d[np.isin(cand, out)] = np.inf
    out.append(int(cand[np.argmin(d)]))
  return np.array(out)


def reference(x, budget, mask, w, b, drops, scale, seed):
  if w is None:
    cand = np.flatnonzero(~mask)
  else:
    cand, _ = ref_candidates(x, mask, w, b, drops, scale, budget)
  centers = kmeans.kmeans(x[cand], budget, seed=seed).centers  # tested on its own
  return ref_nearest(x, cand, centers), cand


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("labeled,rescale", [(0, True), (6, True), (6, False)])
def test_equals_float64_definition_with_fixed_masks(seed, labeled, rescale):
  x, y = clustered(seed)
  rng = np.random.default_rng(seed + 7)
  mask = np.zeros(len(x), bool)
  mask[rng.choice(len(x), labeled, replace=False)] = True
  w, b = probe(x, y, 3)
  drops = rng.random((5,) + x.shape) < 0.75
  scale = 4.0 if rescale else 1.0
  want, cand = reference(x, 4, mask, w, b, drops, scale, seed)
  got, info = dropquery.dropquery(x, 4, labeled_mask=mask, seed=seed, weights=w,
                                  bias=b, rescale=rescale, _drop_masks=drops,
                                  return_info=True)
  np.testing.assert_array_equal(np.sort(info.candidates), cand)
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.int64 and len(set(got)) == 4 and not mask[got].any()


def test_fill_when_few_points_flip():
  x, y = clustered(3)
  w, b = probe(x, y, 3)
  drops = np.zeros((3,) + x.shape, bool)
  drops[:, :5] = True  # only rows 0..4 lose every feature
  mask = np.zeros(len(x), bool)
  mask[1] = True
  want, cand = reference(x, 8, mask, w, b, drops, 4.0, 0)
  got, info = dropquery.dropquery(x, 8, labeled_mask=mask, weights=w, bias=b,
                                  _drop_masks=drops, return_info=True)
  assert info.filled and len(info.candidates) == 8
  np.testing.assert_array_equal(info.candidates, cand)
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("labeled", [0, 9])
def test_cold_start_is_the_centroid_rule(labeled):
  x, _ = clustered(4)
  mask = np.zeros(len(x), bool)
  mask[:labeled] = True
  want, _ = reference(x, 5, mask, None, None, None, None, 3)
  np.testing.assert_array_equal(dropquery.dropquery(x, 5, labeled_mask=mask, seed=3),
                                want)


def test_seeded_masks_are_fold_ins_of_one_key():
  x, y = clustered(5)
  w, b = probe(x, y, 3)
  key = jax.random.fold_in(jax.random.PRNGKey(11), 1)
  assert (dropquery.dropout_key(11) == key).all()
  drops = np.stack([~np.asarray(jax.random.bernoulli(jax.random.fold_in(key, m),
                                                     np.float32(0.25), x.shape))
                    for m in range(5)])
  a = dropquery.dropquery(x, 4, seed=11, weights=w, bias=b, return_info=True)
  c = dropquery.dropquery(x, 4, seed=11, weights=w, bias=b, _drop_masks=drops,
                          return_info=True)
  np.testing.assert_array_equal(a[0], c[0])
  np.testing.assert_array_equal(a[1].flips, c[1].flips)
  np.testing.assert_array_equal(a[0], dropquery.dropquery(x, 4, seed=11, weights=w,
                                                          bias=b))


def test_rescale_does_not_matter_without_bias():
  x, y = clustered(6)
  w, _ = probe(x, y, 3)
  drops = np.random.default_rng(0).random((5,) + x.shape) < 0.75
  np.testing.assert_array_equal(
      dropquery.dropquery(x, 3, weights=w, _drop_masks=drops, rescale=True),
      dropquery.dropquery(x, 3, weights=w, _drop_masks=drops, rescale=False))


@pytest.mark.parametrize("name", ["flips", "flips_b4", "fill"])
def test_against_scikit_activeml_golden(name):
  """Given scikit-activeml's masks (rescale=False, its rule): the same points are
  clustered (up to its unspecified order among tied disagreement rates, where jaxal
  takes the lowest indices), and jaxal's nearest-in-turn rule on scikit-learn's
  centroids gives scikit-activeml's picks. Only the k-means differs (jaxal's own),
  so full picks agree where both k-means find the same clusters."""
  z = np.load(os.path.join(GOLDEN, f"dropquery_{name}.npz"))
  x, mask, budget = z["features"], z["labeled"], int(z["budget"])
  got, info = dropquery.dropquery(x, budget, labeled_mask=mask, weights=z["weights"],
                                  bias=z["bias"], rescale=False,
                                  _drop_masks=z["drops"], return_info=True)
  assert info.filled == bool(z["filled"])
  theirs, ours = set(z["candidates"].tolist()), set(info.candidates.tolist())
  samples = len(z["drops"])
  flipped = {int(i) for i in np.flatnonzero(~mask) if 2 * info.flips[i] > samples}
  assert flipped <= theirs and flipped <= ours and len(theirs) == len(ours)
  unl = np.flatnonzero(~mask)
  if info.filled:  # jaxal: the most flips, ties to the lowest index
    ranked = sorted(unl, key=lambda i: (-info.flips[i], i))[:budget]
    assert ours == {int(i) for i in ranked}
  if theirs != ours:  # the documented difference: the order among tied rates
    assert info.filled
    assert len({int(info.flips[i]) for i in theirs ^ ours}) == 1
  cand = np.asarray(sorted(theirs))
  picks = cand[np.asarray(dropquery._nearest_in_turn(
      x[cand].astype(np.float32), z["centers"].astype(np.float32)))]
  np.testing.assert_array_equal(picks, z["picks"])
  assert got.dtype == np.int64 and len(set(got)) == budget and not mask[got].any()


@pytest.mark.parametrize("kwargs,field", [
    (dict(weights=np.ones((5, 3))), "weights"),
    (dict(weights=np.ones((6, 1))), "weights"),
    (dict(weights=np.ones((6, 3)), bias=np.ones(2)), "bias"),
    (dict(bias=np.ones(3)), "bias"),
    (dict(weights=np.ones((6, 3)), dropout=1.0), "dropout"),
    (dict(weights=np.ones((6, 3)), num_samples=0), "num_samples"),
    (dict(weights=np.ones((6, 3)), rescale=1), "rescale"),
    (dict(weights=np.ones((6, 3)), _drop_masks=np.ones((2, 3, 6), bool)),
     "_drop_masks"),
    (dict(seed=2 ** 40), "seed"),
])
def test_bad_inputs_name_the_argument(kwargs, field):
  x, _ = clustered(0)
  with pytest.raises(InputError) as e:
    dropquery.dropquery(x, 3, **kwargs)
  assert e.value.field == field and field in str(e.value)
