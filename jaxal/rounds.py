"""Iterative selection in rounds: the paper's future work (main paper section 5).

The paper selects once, from the source model's signals, before any target
label exists. In rounds, the budget B is split into R rounds; round 1 is that
single-shot selection of its share, and every later round re-selects from the
*target* model trained on the labels gathered so far:

- SVM target (method guide §5; `jaxal.models.target.svm_signals`): its
  features are the source features f it reads, and its probabilities the softmax
  of its decision scores over the classes found so far (a linear SVM has no
  probabilities; the softmax keeps the order of its scores, which is what the
  uncertainty functions rank by).
- Fine-tuned target: its own pooled features and softmax over the target classes.

This module is the method's part (round sizes, the next round's selection from
whatever signals it is given); the target models that give the signals live in
`jaxal.models.target`.

While fewer than two classes have a label the target model is a constant and
says nothing; that round falls back to the source model's signals.

Used by the `jaxal select --rounds` command and by the experiments runner
(`Cell.rounds`), so single-shot and iterative selection compare on one protocol.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from jaxal import acquisition
from jaxal.errors import InputError


def round_sizes(budget: int, rounds: int) -> list[int]:
  """B split into R rounds as evenly as possible, earlier rounds one larger."""
  if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) \
      or rounds < 1:
    raise InputError(f"rounds must be an int >= 1, got {rounds!r}.")
  if budget < rounds:
    raise InputError(f"budget={budget} cannot be split into rounds={rounds}; "
                     "use at most one round per labeled image.")
  q, r = divmod(int(budget), int(rounds))
  return [q + (i < r) for i in range(rounds)]


def select_round(method: str, budget: int, *, features: np.ndarray,
                 probs: np.ndarray, labeled: np.ndarray, seed: int,
                 num_classes: Optional[int] = None) -> np.ndarray:
  """The next round: `budget` unlabeled pool indices, in selection order.

  `labeled` are the pool indices labeled in earlier rounds (never chosen
  again; core-set starts from them as centers). Random selection with one
  seed continues the same permutation of the pool round after round.
  """
  mask = np.zeros(features.shape[0], bool)
  mask[np.asarray(labeled, np.int64)] = True
  return acquisition.select(method, budget=budget, probs=probs, features=features,
                            labeled_mask=mask, seed=seed, num_classes=num_classes)
