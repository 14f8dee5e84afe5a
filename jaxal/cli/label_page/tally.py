"""The labeling page's answers by pool index, with the count of each class
(the page's progress: method guide §6's imbalance ratio is read from them).
Kept up to date answer by answer, so no request costs O(labels)."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


class Tally:
  """Pool index -> label of every answer kept, and the answers per class.

  Args:
    classes: the target classes; a label is one of them.
    answers: (pool index, label) of the answers already given.

  Attributes:
    labels: pool index -> label (the live dict: read it, do not modify it).
    counts: [len(classes)] answers per class, in `classes`' order.
  """

  def __init__(self, classes: Sequence[str], answers: Iterable[tuple[int, str]] = ()):
    self._class_id = {c: k for k, c in enumerate(classes)}
    self.labels: dict[int, str] = dict(answers)
    self.counts = np.zeros(len(classes), np.int64)
    for label in self.labels.values():
      self.counts[self._class_id[label]] += 1

  def __len__(self) -> int:
    return len(self.labels)

  def add(self, i: int, label: str) -> None:
    """Counts the answer `label` for image `i`."""
    self.labels[i] = label
    self.counts[self._class_id[label]] += 1

  def remove(self, i: int) -> str:
    """Takes back the answer for image `i` (an undo); returns its label."""
    label = self.labels.pop(i)
    self.counts[self._class_id[label]] -= 1
    return label
