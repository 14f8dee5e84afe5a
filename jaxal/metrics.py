"""The paper's evaluation metrics (method guide §6, supplement section 5).

- `classes_found`: N_f, the number of target classes present in a labeled subset.
- `imbalance_ratio`: std / mean of the per-class counts over all N_t classes
  (population std), confirmed [C] against the supplement's Tables 10 and 11.
- `accuracy_all_classes`: ACC_t = ACC_f * N_f / N_t (supplement Eq. 1), i.e. mean
  per-class top-1 accuracy over all N_t classes with undiscovered classes scored 0.
- `global_score`: G_AL, the mean over (dataset, budget) cells of
  (ACC_t - Full_d) / (100 - Full_d), confirmed [C] against Tables 6-9.

Small host-side NumPy functions: they run once per experiment on at most a test
set, so there is nothing to gain from jit, and they return plain Python floats.
"""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike

from jaxal import _validation as V
from jaxal.errors import InputError


def class_counts(labels: ArrayLike, num_classes: int) -> np.ndarray:
  """[N_t] number of samples of each class in `labels`."""
  y = V.check_labels(labels, num_classes)
  return np.bincount(y, minlength=num_classes)


def classes_found(labels: ArrayLike, num_classes: int) -> int:
  """N_f: how many of the `num_classes` classes have at least one label.

  Example:
    >>> from jaxal import metrics
    >>> metrics.classes_found([0, 0, 2], num_classes=3)
    2
  """
  return int(np.count_nonzero(class_counts(labels, num_classes)))


def imbalance_ratio_of_counts(counts: ArrayLike) -> float:
  """ir = std / mean of per-class counts (population std).

  Example:
    >>> from jaxal import metrics
    >>> metrics.imbalance_ratio_of_counts([3, 1])  # std 1, mean 2
    0.5
  """
  counts = np.asarray(counts, np.float64)
  if counts.sum() == 0:
    raise InputError("counts sum to 0; the imbalance ratio of no sample is undefined.")
  return float(counts.std() / counts.mean())


def imbalance_ratio(labels: ArrayLike, num_classes: int) -> float:
  """ir = std / mean of the per-class counts over all `num_classes` classes.

  Undiscovered classes count as 0. A perfectly balanced subset has ir = 0.

  Example:
    >>> from jaxal import metrics
    >>> metrics.imbalance_ratio([0, 0, 0, 1], num_classes=2)  # counts 3 and 1
    0.5
  """
  counts = class_counts(labels, num_classes)
  if counts.sum() == 0:
    raise InputError("labels is empty; the imbalance ratio of no sample is undefined.")
  return imbalance_ratio_of_counts(counts)


def accuracy_all_classes(y_true: ArrayLike, y_pred: ArrayLike,
                         found_classes: ArrayLike, num_classes: int) -> float:
  """ACC_t in percent (supplement section 5, Eq. 1).

  ACC_f is the mean per-class top-1 accuracy over the N_f found classes, and
  ACC_t = ACC_f * N_f / N_t.

  Args:
    y_true: [M] test labels in [0, num_classes).
    y_pred: [M] predicted labels in [0, num_classes).
    found_classes: the classes present in the labeled subset: either their ids
      (1-D int array) or a [num_classes] bool mask.
    num_classes: N_t.

  Returns:
    ACC_t in percent.

  Example:
    Class 0 half right, class 1 right, class 2 never found (scored 0):

    >>> from jaxal import metrics
    >>> metrics.accuracy_all_classes([0, 0, 1, 2], [0, 1, 1, 2], found_classes=[0, 1],
    ...                              num_classes=3)
    50.0
  """
  num_classes = V.check_num_classes(num_classes)
  y_true = V.check_labels(y_true, num_classes, name="y_true")
  y_pred = V.check_labels(y_pred, num_classes, name="y_pred", length=y_true.shape[0])
  found = np.asarray(found_classes)
  if found.dtype == bool:
    if found.shape != (num_classes,):
      raise InputError(f"found_classes as a mask must have shape ({num_classes},), "
                       f"got {found.shape}.")
    found = np.flatnonzero(found)
  else:
    found = np.unique(V.check_labels(found, num_classes, name="found_classes"))
  if found.size == 0:
    return 0.0
  test_counts = np.bincount(y_true, minlength=num_classes)
  missing = found[test_counts[found] == 0]
  if missing.size:
    raise InputError(f"y_true has no test sample of found class {int(missing[0])}; "
                     "its accuracy is undefined. Evaluate on a test set covering "
                     "every class.")
  correct = np.bincount(y_true[y_true == y_pred], minlength=num_classes)
  per_class = correct[found] / test_counts[found]
  return float(100.0 * per_class.sum() / num_classes)


def global_score(acc: ArrayLike, full: ArrayLike) -> float:
  """G_AL: mean over cells of (ACC_t - Full_d) / (100 - Full_d).

  Args:
    acc: [datasets, budgets] ACC_t in percent.
    full: [datasets] accuracy of the "Full" upper bound per dataset, in percent.

  Returns:
    G_AL (0 when every cell reaches Full; negative below it).

  Example:
    >>> from jaxal import metrics
    >>> metrics.global_score([[60.0, 70.0]], full=[80.0])  # one dataset, two budgets
    -0.75
  """
  a = np.asarray(acc, np.float64)
  full = np.asarray(full, np.float64)
  if a.ndim != 2:
    raise InputError(f"acc must be 2-D [datasets, budgets], got shape {a.shape}.")
  if full.shape != (a.shape[0],):
    raise InputError(f"full must have one value per dataset, shape ({a.shape[0]},), "
                     f"got {full.shape}.")
  for name, v in (("acc", a), ("full", full)):
    if not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(v > 100):
      raise InputError(f"{name} must be accuracies in percent within [0, 100].")
  if np.any(full >= 100):
    raise InputError("full must be below 100 percent: G_AL divides by 100 - Full.")
  return float(np.mean((a - full[:, None]) / (100.0 - full[:, None])))
