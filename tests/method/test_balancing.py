"""Balancing step (method guide section 4) on hand-made clusters and hand-worked
cases."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxal import metrics
from jaxal.balancing import balanced_select, switch_to_balancing
from tests.conftest import ROOT, subprocess_env


def test_switch_rule_hand_computed():
  # counts [5, 3, 1]: mean 3, majority {0} (5), minority {1, 2} (mean 2)
  # threshold = |minority| * (5 - 2) = 6
  assert not switch_to_balancing(np.array([5, 3, 1]), 7)
  assert switch_to_balancing(np.array([5, 3, 1]), 6)
  assert not switch_to_balancing(np.array([4, 4, 4]), 1)  # nothing to balance
  assert not switch_to_balancing(np.array([0, 0]), 5)


def one_d_case():
  # labeled: class 0 at x=0 (three), class 1 at x=10 (one); candidates 4, 7, 12, 20
  x = np.array([0, 0, 0, 10, 4, 7, 12, 20], np.float32)[:, None]
  labels = np.array([0, 0, 0, 1, 0, 0, 1, 1])
  mask = np.array([True] * 4 + [False] * 4)
  return x, labels, mask


@pytest.mark.parametrize("cache", [True, False])
def test_ratio_rule_hand_worked(cache):
  # counts [3, 1] -> threshold 2 = budget: balancing from the start.
  # step 1, mu_rare=10, mu_maj=0: d(x,10)/d(x,0) = 2.25, .18, .028, .25 -> x=12
  # step 2, mu_rare=11: 49/16, 16/49, 81/400 -> x=20
  x, labels, mask = one_d_case()
  got = balanced_select([4, 5, 6, 7], x, labels, 2, 2, labeled_mask=mask,
                        cache_distances=cache)
  np.testing.assert_array_equal(got, [6, 7])


@pytest.mark.parametrize("cache", [True, False])
def test_difference_rule_hand_worked(cache):
  # Plain Euclidean distances, as in the co-author's code.
  # step 1: |x-10| - |x-0| = 2, -4, -10, -10: 12 and 20 tie, the lower index wins
  #   (with squared distances it would be 20, -40, -140, -300 -> x=20)
  # step 2, mu_rare=11: |x-11| - |x| = 3, -3, -11 -> x=20
  x, labels, mask = one_d_case()
  got = balanced_select([4, 5, 6, 7], x, labels, 2, 2, labeled_mask=mask,
                        rule="difference", cache_distances=cache)
  np.testing.assert_array_equal(got, [6, 7])


def two_majorities_case():
  # labeled: class 0 at x=0 (three), class 1 at x=30 (three), class 2 (rare) at
  # x=10 (one); candidates 8, 13, 25. counts [3, 3, 1]: mean 7/3, majority {0, 1},
  # threshold 1 * (3 - 1) = 2 >= budget 1: balancing from the start.
  x = np.array([0, 0, 0, 30, 30, 30, 10, 8, 13, 25], np.float32)[:, None]
  labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 1])
  mask = np.arange(10) < 7
  return x, labels, mask


@pytest.mark.parametrize("rule,majority_distance,want", [
    # ratio, nearest majority (squared): 4/64=.0625, 9/169=.053, 225/25=9 -> 13
    ("ratio", "nearest", 8),
    # ratio, farthest majority (Emam et al.): 4/484=.0083, 9/289=.031, 225/625 -> 8
    ("ratio", "farthest", 7),
    # difference, nearest (plain): 2-8=-6, 3-13=-10, 15-5=10 -> 13
    ("difference", "nearest", 8),
    # difference, farthest: 2-22=-20, 3-17=-14, 15-25=-10 -> 8
    ("difference", "farthest", 7),
])
@pytest.mark.parametrize("cache", [True, False])
def test_majority_distance_hand_worked(rule, majority_distance, want, cache):
  x, labels, mask = two_majorities_case()
  got = balanced_select([7, 8, 9], x, labels, 1, 3, labeled_mask=mask, rule=rule,
                        majority_distance=majority_distance, cache_distances=cache)
  np.testing.assert_array_equal(got, [want])


@pytest.mark.parametrize("rule,majority_distance", [
    ("ratio", "nearest"), ("ratio", "farthest"), ("difference", "nearest")])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_distances_by_row_blocks_pick_as_the_cache(rule, majority_distance,
                                                    batch_size):
  """cache_distances=False (every distance recomputed 8,192 rows at a time,
  the last block moved back) picks what the [N, N_t] cache picks, over three
  blocks, with a labeled start and classes still unseen."""
  rng = np.random.default_rng(5)
  n, k = 2 * 8192 + 123, 6
  y = rng.choice(k, n, p=[0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
  x = (rng.normal(0, 1, (n, 8)) + 3 * np.eye(k, 8)[y]).astype(np.float32)
  mask = np.zeros(n, bool)
  mask[np.flatnonzero(y == 0)[:5]] = True
  ranking = rng.permutation(np.flatnonzero(~mask))
  kw = dict(labeled_mask=mask, rule=rule, majority_distance=majority_distance,
            batch_size=batch_size)
  want = balanced_select(ranking, x, y, 60, k, cache_distances=True, **kw)
  got = balanced_select(ranking, x, y, 60, k, cache_distances=False, **kw)
  np.testing.assert_array_equal(got, want)
  assert len(set(got.tolist()) - set(ranking[:60].tolist())) >= 10  # balancing ran


def clusters(seed=0):
  """Two frequent classes and a rare one, in separate regions of the plane."""
  rng = np.random.default_rng(seed)
  centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  sizes = [60, 60, 10]
  y = np.repeat(np.arange(3), sizes)
  x = (centers[y] + rng.normal(0, 1.0, (y.size, 2))).astype(np.float32)
  # a plain ranking that alternates the frequent classes; rare samples come last
  freq = np.stack([np.flatnonzero(y == 0), np.flatnonzero(y == 1)], 1).ravel()
  ranking = np.concatenate([freq, np.flatnonzero(y == 2)])
  return x, y, ranking


@pytest.mark.parametrize("rule", ["ratio", "difference"])
def test_picks_come_from_rare_region_and_imbalance_drops(rule):
  x, y, ranking = clusters()
  budget = 30
  plain = ranking[:budget]
  got = balanced_select(ranking, x, y, budget, 3, rule=rule)
  assert got.shape == (budget,) and np.unique(got).size == budget
  # ranking mode first, in ranking order; then balancing picks
  n_rank = next(i for i, j in enumerate(got) if j != plain[i])
  np.testing.assert_array_equal(got[:n_rank], plain[:n_rank])
  balancing_picks = got[n_rank:]
  assert len(balancing_picks) >= 5
  assert (y[balancing_picks] == 2).all()  # all from the rarest class's region
  ir_plain = metrics.imbalance_ratio(y[plain], 3)
  ir_bal = metrics.imbalance_ratio(y[got], 3)
  assert ir_bal < ir_plain / 2, (ir_bal, ir_plain)
  assert metrics.classes_found(y[got], 3) == 3 > metrics.classes_found(y[plain], 3)


def test_callable_oracle_equals_array_and_is_asked_in_batches():
  x, y, ranking = clusters(1)
  mask = np.zeros(len(y), bool)
  mask[[0, 70, 125]] = True
  ranking = ranking[~mask[ranking]]
  calls = []

  def annotator(idx):
    calls.append(np.asarray(idx).copy())
    return y[idx]

  want = balanced_select(ranking, x, y, 25, 3, labeled_mask=mask)
  got = balanced_select(ranking, x, annotator, 25, 3, labeled_mask=mask)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(calls[0], [0, 70, 125])  # stored labels, once
  assert [len(c) for c in calls[1:]] == [1] * 25
  np.testing.assert_array_equal(np.concatenate(calls[1:]), got)
  assert not mask[got].any()


def test_batched_annotator():
  x, y, ranking = clusters(2)
  sizes = []

  def annotator(idx):
    sizes.append(len(idx))
    return y[idx]

  got = balanced_select(ranking, x, annotator, 30, 3, batch_size=4)
  assert got.shape == (30,) and np.unique(got).size == 30
  assert max(sizes) == 4 and sum(sizes) == 30
  assert metrics.imbalance_ratio(y[got], 3) < metrics.imbalance_ratio(y[ranking[:30]], 3)


_IN_A_FRESH_PROCESS = r"""
import json
from jaxal.balancing import balanced_select
from tests.method.test_balancing import clusters
x, y, ranking = clusters(3)
print(json.dumps(balanced_select(ranking, x, y, 40, 3).tolist()))
"""


def test_deterministic():
  """No seed: the picks are a function of the inputs, the same in another
  process; they follow the ranking's order in ranking mode, ignore it in
  balancing mode, and take the lowest index among exactly tied scores."""
  x, y, ranking = clusters(3)
  a = balanced_select(ranking, x, y, 40, 3)
  b = balanced_select(ranking, x, y, 40, 3)
  np.testing.assert_array_equal(a, b)
  out = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS], check=True,
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=subprocess_env())
  np.testing.assert_array_equal(json.loads(out.stdout.strip().splitlines()[-1]), a)

  # Swap two ranking entries of the same class: the ranking-mode picks swap with
  # them, the counts (so the switch) and the balancing picks stay.
  n_rank = next(i for i, j in enumerate(a) if j != ranking[i])
  assert n_rank > 2 and y[ranking[0]] == y[ranking[2]]
  swapped = ranking.copy()
  swapped[[0, 2]] = ranking[[2, 0]]
  c = balanced_select(swapped, x, y, 40, 3)
  np.testing.assert_array_equal(c[:n_rank], swapped[:n_rank])
  assert c[0] == a[2] and c[2] == a[0]
  np.testing.assert_array_equal(c[n_rank:], a[n_rank:])

  # Mirror images about the rare centroid's axis tie exactly: the lower index is
  # picked, whichever of the two it holds, and the ranking's order is ignored.
  feats = np.array([[0, 0], [0, 0], [0, 0], [0, 10], [1, 12], [-1, 12], [0, 3]],
                   np.float32)
  labels = np.array([0, 0, 0, 1, 1, 1, 0])
  mask = np.arange(7) < 4  # counts [3, 1]: balancing from the first pick
  for ranking_ in ([4, 5, 6], [6, 5, 4]):
    got = balanced_select(ranking_, feats, labels, 1, 2, labeled_mask=mask)
    np.testing.assert_array_equal(got, [4])
  mirrored = feats[[0, 1, 2, 3, 5, 4, 6]]  # the tied pair's rows swapped
  got = balanced_select([4, 5, 6], mirrored, labels, 1, 2, labeled_mask=mask)
  np.testing.assert_array_equal(got, [4])
  assert mirrored[got[0]].tolist() == [-1, 12]  # now the other point of the pair


@pytest.mark.parametrize("kwargs,message", [
    (dict(rule="product"), "rule must be one of"),
    (dict(majority_distance="mean"), "majority_distance must be one of"),
    (dict(budget=0), "budget must be > 0"),
    (dict(budget=200), "larger than the unlabeled pool"),
    (dict(oracle=np.full(130, 3)), r"oracle must lie in \[0, num_classes=3\)"),
    (dict(oracle=np.zeros(129, int)), "length mismatch: oracle"),
    (dict(oracle=lambda idx: np.full(len(idx), 7)), "labels returned by oracle"),
    (dict(features=np.ones((129, 2))), "ranking holds indices outside"),
    (dict(ranking=np.arange(5)), "ranking has 5 entries but budget=10"),
    (dict(labeled_mask=np.arange(130) == 0), "ranking contains labeled samples"),
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(cache_distances="no"), "cache_distances must be True, False or None"),
    (dict(num_classes=0), "num_classes must be a positive int"),
])
def test_bad_input(kwargs, message):
  x, y, ranking = clusters()
  args = dict(ranking=ranking, features=x, oracle=y, budget=10, num_classes=3)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    balanced_select(**args)


def test_distance_cache_by_default_only_up_to_its_limit(monkeypatch):
  from jaxal import balancing  # pylint: disable=g-import-not-at-top
  x, y, ranking = clusters(4)
  calls = []
  blocks = balancing._balancing_picks_by_blocks  # pylint: disable=protected-access

  def counted(*args, **kwargs):
    calls.append(1)
    return blocks(*args, **kwargs)
  monkeypatch.setattr(balancing, "_balancing_picks_by_blocks", counted)
  cached = balanced_select(ranking, x, y, 30, 3)
  assert not calls
  monkeypatch.setattr(balancing, "CACHE_LIMIT_BYTES", len(y) * 3 * 4 - 1)
  np.testing.assert_array_equal(balanced_select(ranking, x, y, 30, 3), cached)
  assert calls
