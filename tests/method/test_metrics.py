"""Metrics against hand-computed values and the supplement's own tables."""

import numpy as np
import pytest

from jaxal import metrics as M


def test_classes_found_and_counts():
  assert M.classes_found([0, 0, 2], 4) == 2
  assert M.classes_found([], 4) == 0
  np.testing.assert_array_equal(M.class_counts([0, 0, 2], 4), [2, 0, 1, 0])


def test_imbalance_ratio_hand_computed():
  assert M.imbalance_ratio([0, 0, 0, 1], 2) == pytest.approx(0.5)  # std(3,1)/2
  assert M.imbalance_ratio([0, 1, 2], 3) == 0.0
  # counts (2, 0, 1): mean 1, population std sqrt(2/3); undiscovered class counts
  assert M.imbalance_ratio([0, 0, 2], 3) == pytest.approx(np.sqrt(2 / 3))


def test_accuracy_all_classes_hand_computed():
  y_true = [0, 0, 1, 1, 2, 2]
  y_pred = [0, 1, 1, 1, 0, 2]
  # found {0, 1}: per-class 1/2 and 2/2 -> ACC_f = 75, N_f/N_t = 2/3 -> 50;
  # the correct prediction of undiscovered class 2 is not counted.
  assert M.accuracy_all_classes(y_true, y_pred, [0, 1], 3) == pytest.approx(50.0)
  assert M.accuracy_all_classes(y_true, y_pred, np.array([True, True, False]),
                                3) == pytest.approx(50.0)
  # all found: mean per-class accuracy (1/2 + 1 + 1/2) / 3
  assert M.accuracy_all_classes(y_true, y_pred, [2, 1, 0, 0], 3) == pytest.approx(
      200 / 3)
  assert M.accuracy_all_classes(y_true, y_pred, [], 3) == 0.0


FULL = [65.85, 59.49, 70.20, 72.43]  # Tables 6 and 7 (imbalanced datasets)
FULL_BALANCED = [68.53, 63.02, 72.89, 65.47]  # Tables 8 and 9
ROWS = [  # (accuracies Food, CIFAR, IMN, MIT x budgets 500/1000/2000, full, G_AL)
    ([23.02, 30.63, 38.68, 27.31, 33.66, 39.78, 47.24, 56.62, 63.87, 34.99, 44.56,
      53.33], FULL, -0.792),  # Table 6, random
    ([19.71, 25.60, 34.11, 32.13, 38.94, 43.94, 53.65, 61.21, 66.79, 39.17, 46.79,
      52.09], FULL, -0.739),  # Table 6, ent_inv^div
    ([19.90, 26.34, 33.86, 31.95, 38.29, 46.10, 54.08, 59.90, 66.41, 38.73, 48.79,
      55.62], FULL, -0.723),  # Table 6, core-set+ens
    ([25.26, 28.77, 37.00, 36.67, 42.77, 48.54, 60.76, 66.49, 69.98, 49.07, 55.75,
      63.98], FULL, -0.548),  # Table 7, ent_inv^div + ens
    ([26.73, 34.75, 43.20, 34.78, 43.81, 51.33, 56.75, 65.81, 71.50, 48.39, 57.95,
      64.47], FULL_BALANCED, -0.538),  # Table 8, random
    ([24.83, 32.23, 41.42, 35.03, 43.50, 50.42, 55.71, 64.44, 69.84, 49.72, 58.30,
      63.39], FULL_BALANCED, -0.568),  # Table 9, core-set
]


@pytest.mark.parametrize("acc,full,want", ROWS)
def test_global_score_reproduces_supplement_tables(acc, full, want):
  got = M.global_score(np.reshape(acc, (4, 3)), full)
  assert got == pytest.approx(want, abs=6e-4)  # tables print 3 decimals


def test_global_score_hand_computed():
  assert M.global_score([[50.0, 100.0]], [50.0]) == pytest.approx(0.5)
  assert M.global_score([[60.0], [60.0]], [60.0, 60.0]) == 0.0


@pytest.mark.parametrize("call,message", [
    (lambda: M.classes_found([0, 3], 3), r"labels must lie in \[0, num_classes=3\)"),
    (lambda: M.imbalance_ratio([-1], 3), "labels must lie in"),
    (lambda: M.imbalance_ratio([], 3), "labels is empty"),
    (lambda: M.accuracy_all_classes([0, 1], [0], [0], 2), "length mismatch: y_pred"),
    (lambda: M.accuracy_all_classes([0, 0], [0, 0], [0, 1], 2),
     "no test sample of found class 1"),
    (lambda: M.accuracy_all_classes([0], [0], [True], 2), "found_classes as a mask"),
    (lambda: M.global_score([1.0, 2.0], [50.0]), "acc must be 2-D"),
    (lambda: M.global_score([[1.0]], [50.0, 60.0]), "one value per dataset"),
    (lambda: M.global_score([[101.0]], [50.0]), "percent"),
    (lambda: M.global_score([[1.0]], [100.0]), "below 100"),
    (lambda: M.classes_found([0.5], 2), "integer class ids"),
])
def test_bad_input(call, message):
  with pytest.raises(ValueError, match=message):
    call()
