"""Iterative rounds' pieces and the SVM target saved as arrays."""

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from jaxal import rounds
from jaxal.models import target


def test_round_sizes_split_the_budget_evenly():
  assert rounds.round_sizes(10, 3) == [4, 3, 3]
  assert rounds.round_sizes(6, 1) == [6]
  assert sum(rounds.round_sizes(1001, 7)) == 1001
  with pytest.raises(ValueError, match="rounds must be an int >= 1"):
    rounds.round_sizes(10, 0)
  with pytest.raises(ValueError, match="cannot be split"):
    rounds.round_sizes(2, 3)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_linear_svm_arrays_predict_as_sklearn(k, tmp_path):
  rng = np.random.default_rng(k)
  f = rng.normal(size=(80, 9)).astype(np.float32)
  y = rng.integers(0, k, 80) * 3  # labels need not be 0..k-1
  g = rng.normal(size=(300, 9)).astype(np.float32)
  svm = target.fit_svm(f, y)
  svm.save(str(tmp_path / "svm.npz"))
  loaded = target.LinearSVM.load(str(tmp_path / "svm.npz"))
  if k == 1:
    assert (loaded.predict(g) == y[0]).all()
    return
  ref = LinearSVC(C=1.0, max_iter=5000, dual="auto", random_state=0).fit(
      target.l2_normalize(f), y)
  assert np.array_equal(loaded.predict(g), ref.predict(target.l2_normalize(g)))
  assert loaded.decision(g).shape == (300, k)


def test_svm_signals_rank_like_the_decision_scores():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(50, 4)).astype(np.float32)
  labeled = np.arange(10)
  y = np.array([0, 1, 2] * 3 + [0])
  feats, probs = target.svm_signals(f, labeled, y)
  assert feats is f and probs.shape == (50, 3)
  assert np.allclose(probs.sum(1), 1, atol=1e-6)
  d = target.fit_svm(f[labeled], y).decision(f)
  assert (np.argmax(probs, 1) == np.argmax(d, 1)).all()
  assert target.svm_signals(f, labeled, np.zeros(10, int)) is None


@pytest.mark.parametrize("k", [2, 4])
def test_svm_target_head_gives_its_decision_scores(k):
  rng = np.random.default_rng(k)
  f = rng.normal(size=(60, 5)).astype(np.float32)
  y = rng.integers(0, k, 30) * 2
  t = target.svm_target(f, np.arange(30), y)
  d = target.fit_svm(f[:30], y).decision(f)
  assert t.inputs is f and t.normalize  # no normalised copy kept
  np.testing.assert_allclose(target.l2_normalize(f) @ t.weights + t.bias, d,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(t.classes, np.unique(y))
  np.testing.assert_array_equal(t.probs, target.svm_signals(f, np.arange(30), y)[1])
  assert target.svm_target(f, np.arange(30), np.zeros(30, int)) is None


def _pool(seed=0, n=120):
  rng = np.random.default_rng(seed)
  y = rng.choice(3, n, p=[0.7, 0.2, 0.1])
  f = (np.eye(3, 6)[y] * 3 + rng.normal(size=(n, 6))).astype(np.float32)
  return f, y


def test_target_aware_methods_in_rounds():
  from jaxal import acquisition, direct
  from jaxal.coldstart import dropquery, uherding
  f, y = _pool()
  labeled = list(range(0, 120, 8))
  t = target.svm_target(f, np.asarray(labeled), y[labeled])
  mask = np.zeros(120, bool)
  mask[labeled] = True
  kw = dict(features=f, probs=None, labeled=labeled, seed=3, num_classes=3)
  # Without a target: UHerding's and DropQuery's cold starts; DIRECT random.
  np.testing.assert_array_equal(rounds.select_round("direct", 9, **kw),
                                rounds.select_round("random", 9, **kw))
  np.testing.assert_array_equal(rounds.select_round("uherding", 9, **kw),
                                uherding.uherding(f, 9, labeled_mask=mask))
  # With one: its uncertainty, its linear head, its scores and the oracle.
  np.testing.assert_array_equal(
      rounds.select_round("uherding", 9, target=t, **kw),
      uherding.uherding(f, 9, labeled_mask=mask, probabilities=t.probs))
  np.testing.assert_array_equal(
      rounds.select_round("dropquery", 9, target=t, **kw),
      dropquery.dropquery(target.l2_normalize(t.inputs), 9, labeled_mask=mask, seed=3,
                          weights=t.weights, bias=t.bias))
  got = rounds.select_round("direct", 9, target=t, oracle=y, **kw)
  np.testing.assert_array_equal(got, direct.direct(
      t.probs, 9, y, labeled_mask=mask, num_classes=3, classes=t.classes, seed=3))
  assert not mask[got].any() and np.unique(got).size == 9
  with pytest.raises(ValueError, match="oracle"):
    acquisition.select("direct", budget=9, labeled_mask=mask, target=t, num_classes=3)
  with pytest.raises(ValueError, match="linear head"):
    acquisition.select("dropquery", budget=9, features=f, labeled_mask=mask,
                       target=acquisition.TargetModel(t.probs, t.classes))
  with pytest.raises(ValueError, match="balancing step"):
    rounds.balanced_round("direct", 9, oracle=y, target=t, **kw)


def test_balanced_round_counts_earlier_labels():
  from jaxal import acquisition, balancing
  f, y = _pool(1)
  labeled = np.flatnonzero(y == 0)[:10]  # ten of the majority class already
  mask = np.zeros(len(y), bool)
  mask[labeled] = True
  got = rounds.balanced_round("coreset", 12, features=f, probs=None,
                              labeled=labeled, seed=0, num_classes=3, oracle=y)
  ranking = acquisition.select("coreset", budget=12, features=f, labeled_mask=mask)
  want = balancing.balanced_select(ranking, f, y, 12, 3, labeled_mask=mask)
  np.testing.assert_array_equal(got, want)
  assert not mask[got].any()
  # Class 0 leads from the start, so the step balances at once: the minority
  # classes gain more than core-set's own picks give them.
  assert (y[got] != 0).sum() > (y[ranking] != 0).sum()
