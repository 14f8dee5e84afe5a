"""`target.round_signals`: which signals a later selection round ranks by, the
one rule that `jaxal select --rounds` and the experiments' cells share."""

import numpy as np

from jaxal.models import target


def _pool(n=30, d=4, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d)).astype(np.float32), rng.dirichlet(
      np.ones(5), size=n).astype(np.float32)


def test_fewer_than_two_classes_keep_the_source_signals_and_train_nothing():
  feats, probs = _pool()

  def never(*_):
    raise AssertionError("no target model is trained")
  for labeled, labels in (([], []), ([3, 7], [1, 1])):
    for finetune in (None, never):
      got = target.round_signals(labeled, np.asarray(labels, np.int64),
                                 source=(feats, probs), svm_features=never,
                                 finetune=finetune)
      assert got.model == "source"
      assert got.features is feats and got.probs is probs


def test_the_svm_target_gives_svm_signals_from_features_read_when_needed():
  feats, probs = _pool()
  other = feats[:, ::-1].copy()  # the SVM's own features (e.g. SimCLR's)
  labeled, labels = np.array([0, 1, 2, 3]), np.array([0, 1, 0, 2])
  reads = []
  got = target.round_signals(labeled, labels, source=(feats, probs),
                             svm_features=lambda: reads.append(1) or other,
                             svm_c=0.5)
  want = target.svm_signals(other, labeled, labels, C=0.5)
  assert got.model == "svm" and reads == [1]
  np.testing.assert_array_equal(got.features, want[0])
  np.testing.assert_array_equal(got.probs, want[1])


def test_the_finetuned_target_is_the_callers_training():
  feats, probs = _pool()
  calls = []

  def finetune(labeled, labels):
    calls.append((labeled.dtype, labeled.tolist(), labels.tolist()))
    return feats + 1, probs[:, ::-1]
  got = target.round_signals([4, 2], [1, 3], source=(feats, probs),
                             finetune=finetune)
  assert got.model == "finetune" and calls == [(np.int64, [4, 2], [1, 3])]
  np.testing.assert_array_equal(got.features, feats + 1)
