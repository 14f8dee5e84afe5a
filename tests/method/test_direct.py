"""DIRECT (`jaxal.direct`) against a line-by-line port of the authors' loops
(LabelBench `strategy_impl/direct.py`), on hand-worked one-dimensional cases,
and its contract (picks unlabeled and unique, the oracle asked in batches, bad
arguments refused by name)."""

import math

import numpy as np
import pytest

from jaxal import direct
from jaxal.errors import InputError


class _Node:
  def __init__(self, idx, label):
    self.idx, self.label, self.labeled = idx, label, False


def _reference(probs, labels, labeled, budget, seed, b1, min_per_class):
  """The authors' `DIRECTSampling.select`, its loops kept, in float64, with
  their `np.random` calls made on one Generator the way `jaxal.direct` makes
  them (uniform draws among the region's unlabeled positions, a coin on ties,
  a permutation of the classes) and stable sorts; returns picks in query order."""
  rng = np.random.default_rng([seed, 5, len(labeled)])
  probs = np.asarray(probs, np.float64)
  n, n_class = probs.shape
  top = probs.max(axis=1, keepdims=True)
  margins = probs - top + 1e-8 * (top if n_class > 2 else probs[:, 0:1])
  nodes = [_Node(i, int(labels[i])) for i in range(n)]
  freq = np.zeros(n_class)
  for i in labeled:
    nodes[i].labeled = True
    freq[labels[i]] += 1
  graphs = [[nodes[i] for i in np.argsort(-margins[:, k], kind="stable")]
            for k in range(n_class)]
  picks = []

  def acc_of(w):
    c = np.insert(np.cumsum(w), 0, 0)
    r = np.insert(np.cumsum(w[::-1]), 0, 0)[::-1]
    return c - r

  def vsr(graph, i, j, b2, w, k):
    while b2 > 0:
      size = min(b1, b2)
      free = [m for m in range(i, j + 1) if not graph[m].labeled]
      if not free:
        return
      for m in rng.choice(np.array(free), size=min(size, len(free)), replace=False):
        graph[m].labeled = True
        picks.append(graph[m].idx)
        w[m] = 1 if graph[m].label == k else -1
      cur = sum(not graph[m].labeled for m in range(i, j + 1))
      if cur > 0:
        c2 = 1 if b2 // b1 <= 1 else cur ** (1 / (b2 // b1))
        diam = cur
        while diam > math.ceil(cur / c2):
          acc = acc_of(w)
          if acc[i] < acc[j] or (acc[i] == acc[j] and rng.integers(0, 2) == 0):
            diam -= not graph[i].labeled
            i += 1
          else:
            diam -= not graph[j].labeled
            j -= 1
      b2 -= size

  b2 = budget // n_class // 2
  b2 = b2 if b2 < min_per_class else min_per_class
  for k in np.argsort(-freq, kind="stable"):
    graph = graphs[k]
    w = np.array([0 if not nd.labeled else (1 if nd.label == k else -1) for nd in graph])
    i = 0
    for idx, nd in enumerate(graph):
      if not nd.labeled:
        continue
      if nd.label != k:
        break
      i = idx
    j = 0
    for idx, nd in enumerate(graph[::-1]):
      if not nd.labeled:
        continue
      if nd.label == k:
        break
      j = idx
    j = n - j - 1
    b2 = min(b2, sum(not nd.labeled for nd in graph))
    vsr(graph, i, j, b2, w, k)
  rem = budget - len(picks)
  for t, k in enumerate(rng.permutation(n_class)):
    graph = graphs[k]
    w = np.array([0 if not nd.labeled else (1 if nd.label == k else -1) for nd in graph])
    right = int(np.argmax(acc_of(w)))
    left, bit, lx, rx = right - 1, 1, False, False
    share = rem * (t + 1) // n_class - rem * t // n_class
    while share > 0:
      bit = (bit + 1) % 2
      if lx and rx:
        break
      if bit == 0:
        if left < 0:
          lx = True
          continue
        if not graph[left].labeled:
          graph[left].labeled = True
          picks.append(graph[left].idx)
          share -= 1
        left -= 1
      else:
        if right >= n:
          rx = True
          continue
        if not graph[right].labeled:
          graph[right].labeled = True
          picks.append(graph[right].idx)
          share -= 1
        right += 1
  return np.array(picks, np.int64)


def _clustered(seed, n=240, k=4):
  """Imbalanced classes in clusters, a noisy linear model's softmax."""
  rng = np.random.default_rng(seed)
  sizes = np.maximum((n * 0.5 ** np.arange(k) / (2 - 0.5 ** (k - 1))).astype(int), 4)
  labels = np.repeat(np.arange(k), sizes)
  centers = rng.normal(size=(k, 6)) * 2.5
  x = centers[labels] + rng.normal(size=(labels.size, 6))
  w = centers.T + rng.normal(size=(6, k)) * 1.5
  z = x @ w / 4
  p = np.exp(z - z.max(1, keepdims=True))
  return (p / p.sum(1, keepdims=True)).astype(np.float32), labels


def test_hand_worked_threshold_and_region():
  # acc[t] = 2 (sum of w before t) - sum of w: C = 0,1,2,1,2,1,0 and S = 0.
  w = np.array([1, 1, -1, 1, -1, -1])
  np.testing.assert_array_equal(direct.threshold_accuracy(w), [0, 2, 4, 2, 4, 2, 0])
  assert int(np.argmax(direct.threshold_accuracy(w))) == 2  # the first best
  # k points at 0, 2, 6; non-k at 4, 8: I = last k above the first non-k (2),
  # J = first non-k below the last k (8).
  assert direct.uncertainty_region(np.array([1, 0, 1, 0, -1, 0, 1, 0, -1, 0])) == (2, 8)
  assert direct.uncertainty_region(np.array([0, 0, -1, 0, -1])) == (0, 2)  # no k
  assert direct.uncertainty_region(np.array([0, 1, 0, 1, 0])) == (3, 4)  # no non-k
  np.testing.assert_array_equal(direct.around(3, 6), [2, 3, 1, 4, 0, 5])
  np.testing.assert_array_equal(direct.around(0, 3), [0, 1, 2])
  np.testing.assert_array_equal(direct.around(3, 3), [2, 1, 0])


def test_one_dimensional_round_labels_around_the_boundary():
  # Two classes along one score, class 1 from position 12 on; labeled only at
  # the ends. With 1 annotator and 12 labels, phase 1 bisects (3 labels per
  # class, shrinking between them) and phase 2 labels next to the thresholds it
  # found: the labels end up bracketing the true boundary (11 | 12) closely.
  # (With two classes the authors' tie-break, 1e-8 p_0 in both columns, orders
  # class 1's predicted points least confident first: its column is not
  # monotone in p_1, which is why class 0's threshold is the one checked.)
  n = 30
  p1 = np.linspace(0.02, 0.98, n)
  probs = np.stack([1 - p1, p1], 1)
  labels = (np.arange(n) >= 12).astype(int)
  mask = np.zeros(n, bool)
  mask[[0, n - 1]] = True
  for seed in (3, 4, 11, 29):
    picks, info = direct.direct(probs, 12, labels, labeled_mask=mask, num_classes=2,
                                seed=seed, annotators=1, min_per_class=3,
                                return_info=True)
    np.testing.assert_array_equal(
        picks, _reference(probs, labels, np.flatnonzero(mask), 12, seed, 1, 3))
    assert 4 <= info.phase1 <= 6 and info.per_class == 3  # a region can run dry
    assert 9 <= info.thresholds[0] <= 12, (seed, info.thresholds)
    known = np.r_[picks, 0, n - 1]
    gap = known[labels[known] == 1].min() - known[labels[known] == 0].max()
    assert gap <= 3, (seed, picks)


@pytest.mark.parametrize("seed", [2, 17, 40])
def test_same_picks_as_the_authors_loops(seed):
  probs, labels = _clustered(seed)
  rng = np.random.default_rng(seed + 1000)
  labeled = rng.choice(labels.size, 12, replace=False)
  mask = np.zeros(labels.size, bool)
  mask[labeled] = True
  for budget, b1, mpc in ((40, 20, 60), (80, 3, 60), (96, 2, 5), (7, 20, 60)):
    got = direct.direct(probs, budget, labels, labeled_mask=mask, num_classes=4,
                        seed=seed, annotators=b1, min_per_class=mpc)
    want = _reference(probs, labels, np.flatnonzero(mask), budget, seed, b1, mpc)
    np.testing.assert_array_equal(got, want)
    assert got.size == budget == np.unique(got).size
    assert not mask[got].any()


def test_oracle_asked_in_batches_and_labels_given():
  probs, labels = _clustered(5)
  mask = np.zeros(labels.size, bool)
  mask[np.random.default_rng(0).choice(labels.size, 10, replace=False)] = True
  asked = []

  def oracle(idx):
    asked.append(np.array(idx))
    return labels[idx]

  picks, info = direct.direct(probs, 40, oracle, labeled_mask=mask, num_classes=4,
                              labeled_labels=labels[mask], seed=1, annotators=2,
                              return_info=True)
  assert np.array_equal(np.concatenate(asked), picks)  # only new points asked
  assert max(a.size for a in asked[:info.phase1 // 2]) <= 2
  # Without labeled_labels the oracle is asked the labeled points first.
  asked.clear()
  again = direct.direct(probs, 40, oracle, labeled_mask=mask, num_classes=4, seed=1,
                        annotators=2)
  np.testing.assert_array_equal(asked[0], np.flatnonzero(mask))
  np.testing.assert_array_equal(again, picks)


def test_columns_of_seen_classes_only():
  # An SVM has columns for the classes labeled so far: classes maps them.
  probs, labels = _clustered(9)
  mask = np.zeros(labels.size, bool)
  mask[np.flatnonzero(labels == 0)[:3]] = True
  mask[np.flatnonzero(labels == 2)[:3]] = True
  sub = probs[:, [0, 2]] / probs[:, [0, 2]].sum(1, keepdims=True)
  picks = direct.direct(sub, 30, labels, labeled_mask=mask, num_classes=4,
                        classes=[0, 2], seed=0)
  # Relabeled to columns (unseen classes are "not k" for both), the same picks.
  col = np.select([labels == 0, labels == 2], [0, 1], 2)
  np.testing.assert_array_equal(
      picks, _reference(sub, np.where(col == 2, 3, col), np.flatnonzero(mask), 30,
                        0, 20, 60))


def test_bad_arguments_named():
  probs, labels = _clustered(1)
  mask = np.zeros(labels.size, bool)
  mask[:5] = True
  ok = dict(labeled_mask=mask, num_classes=4)
  with pytest.raises(InputError, match="labeled_mask") as e:
    direct.direct(probs, 5, labels, labeled_mask=np.zeros(labels.size, bool),
                  num_classes=4)
  assert e.value.field == "labeled_mask"
  for name, bad in (("annotators", 0), ("min_per_class", -1), ("annotators", 2.5)):
    with pytest.raises(InputError, match=name):
      direct.direct(probs, 5, labels, **ok, **{name: bad})
  with pytest.raises(InputError, match="budget"):
    direct.direct(probs, labels.size, labels, **ok)
  with pytest.raises(InputError, match="classes"):
    direct.direct(probs, 5, labels, **ok, classes=[0, 1, 1, 2])
  with pytest.raises(InputError, match="oracle"):
    direct.direct(probs, 5, labels[:-1], **ok)
  with pytest.raises(InputError, match="probs"):
    direct.direct(None, 5, labels, **ok)
