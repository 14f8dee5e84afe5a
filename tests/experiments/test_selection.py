"""`jaxal.experiments._selection`: a cell's selection from the arrays it is given."""

import numpy as np

from jaxal import acquisition, balancing, rounds
from jaxal.experiments import _selection as selection
from jaxal.experiments import sweep
from jaxal.models.target import RoundSignals


def _pool(n=60, k=4, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, k, n)
  feats = (rng.normal(size=(n, 8)) + labels[:, None]).astype(np.float32)
  return feats, rng.dirichlet(np.ones(6), size=n).astype(np.float32), labels


def _cell(**kw):
  base = dict(dataset="d", pool="imbalanced", target="svm", budget=12,
              method="entropy", balancing=False, ensemble=False, seed=0)
  return sweep.Cell(**{**base, **kw})


def _never(_):
  raise AssertionError("single-shot cells have no later rounds")


def test_single_shot_and_balanced_cells_select_as_the_method():
  feats, probs, labels = _pool()
  got = selection.select(_cell(), feats, probs, labels, 4, rule="ratio",
                         majority_distance="nearest", later=_never)
  np.testing.assert_array_equal(got, acquisition.select(
      "entropy", budget=12, probs=probs, features=feats, seed=0, num_classes=4))
  got = selection.select(_cell(balancing=True), feats, probs, labels, 4,
                         rule="ratio", majority_distance="nearest", later=_never)
  ranking = acquisition.ranking_to_balance("entropy", budget=12, probs=probs,
                                           features=feats, seed=0, num_classes=4)
  np.testing.assert_array_equal(got, balancing.balanced_select(
      ranking, feats, labels, 12, 4, rule="ratio", majority_distance="nearest"))


def test_rounds_rank_round_one_by_the_source_and_later_ones_by_later():
  feats, probs, labels = _pool()
  seen = []

  def later(labeled):
    seen.append(labeled.tolist())
    return RoundSignals(feats, probs[:, ::-1], "svm")
  got = selection.select(_cell(rounds=3), feats, probs, labels, 4, rule="ratio",
                         majority_distance="nearest", later=later)
  first = rounds.select_round("entropy", 4, features=feats, probs=probs,
                              labeled=[], seed=0, num_classes=4).tolist()
  second = rounds.select_round("entropy", 4, features=feats, probs=probs[:, ::-1],
                               labeled=first, seed=0, num_classes=4).tolist()
  assert seen == [first, first + second]
  assert got.dtype == np.int64 and len(set(got.tolist())) == 12
  assert got[:8].tolist() == first + second
