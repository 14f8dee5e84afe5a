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
