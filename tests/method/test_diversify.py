"""Algorithm 1 (supplement) on hand-made rankings and against its literal text."""

import numpy as np
import pytest

from jaxal.acquisition import diversify


def algorithm1_literal(U, top, b):
  """Line-by-line transcription of the supplement's Algorithm 1.

  The pseudo-code's `while len(L) <= b` never ends once U is exhausted; the only
  addition here stops it then.
  """
  L = []
  while len(L) <= b:
    seenclasses = []
    for i in U:
      topsourceclass = top[i]
      if topsourceclass not in seenclasses:
        if i not in L:
          L.append(i)
          seenclasses.append(topsourceclass)
    if len(L) == len(U):
      break
  return L[0:b]


def test_hand_made_ranking():
  # ranking 0..7; classes: a a b a c b c a
  top1 = np.array([0, 0, 1, 0, 2, 1, 2, 0])
  ranking = np.arange(8)
  # pass 1: 0(a) 2(b) 4(c); pass 2: 1(a) 5(b) 6(c); pass 3: 3(a); pass 4: 7(a)
  np.testing.assert_array_equal(diversify(ranking, top1, 8), [0, 2, 4, 1, 5, 6, 3, 7])
  np.testing.assert_array_equal(diversify(ranking, top1, 4), [0, 2, 4, 1])


def test_ranking_order_not_index_order():
  top1 = np.array([5, 5, 9, 9, 5])  # indexed by pool index
  ranking = np.array([4, 3, 0, 2])  # sample 1 unranked (e.g. labeled)
  # pass 1: 4(5) 3(9); pass 2: 0(5) 2(9)
  np.testing.assert_array_equal(diversify(ranking, top1, 3), [4, 3, 0])


def test_single_class_keeps_ranking():
  np.testing.assert_array_equal(diversify([3, 1, 2], np.zeros(4, int), 3), [3, 1, 2])


@pytest.mark.parametrize("seed", range(8))
def test_matches_literal_algorithm(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(1, 200))
  top1 = rng.integers(0, int(rng.integers(1, 12)), size=n)
  ranking = rng.permutation(n)[: int(rng.integers(1, n + 1))]
  b = int(rng.integers(1, ranking.size + 1))
  got = diversify(ranking, top1, b)
  assert got.dtype == np.int64
  np.testing.assert_array_equal(got, algorithm1_literal(list(ranking), top1, b))


def test_bad_input():
  with pytest.raises(ValueError, match="budget"):
    diversify([0, 1], [0, 0], 3)
  with pytest.raises(ValueError, match="duplicate"):
    diversify([0, 0], [0, 0], 1)
  with pytest.raises(ValueError, match="ranking holds indices outside"):
    diversify([0, 5], [0, 0], 1)
  with pytest.raises(ValueError, match="top1"):
    diversify([0, 1], [0.5, 1.0], 1)


def test_order_on_a_large_ranking_equals_numpy_lexsort():
  """(rank within class, position) order on 50,000 samples of 300 classes,
  against NumPy's stable sorts."""
  from jaxal.diversify import diversified_order  # pylint: disable=g-import-not-at-top
  k = np.random.default_rng(0).integers(0, 300, 50_000)
  by_class = np.argsort(k, kind="stable")
  first = np.searchsorted(k[by_class], k[by_class], side="left")
  rank = np.empty_like(k)
  rank[by_class] = np.arange(len(k)) - first
  want = np.lexsort((np.arange(len(k)), rank))
  np.testing.assert_array_equal(np.asarray(diversified_order(k)), want)


def test_top1_classes_of_a_mapped_array_across_blocks(tmp_path):
  # 70,000 rows: several blocks of top1_classes' loop (8,192 rows), the last short
  from jaxal.diversify import top1_classes
  probs = np.random.default_rng(0).random((70_000, 7)).astype(np.float32)
  probs[5, :] = probs[5, 0]  # a tie takes the first maximum, as argmax does
  np.save(tmp_path / "p.npy", probs)
  got = top1_classes(np.load(tmp_path / "p.npy", mmap_mode="r"))
  assert got.dtype == np.int32 and got[5] == 0
  np.testing.assert_array_equal(got, np.argmax(probs, axis=1))
