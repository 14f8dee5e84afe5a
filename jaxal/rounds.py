"""Iterative selection in rounds: the paper's future work (main paper section 5).

The paper selects once, from the source model's signals, before any target
label exists. In rounds, the budget B is split into R rounds; round 1 is that
single-shot selection of its share, and every later round re-selects from the
*target* model trained on the labels gathered so far:

- SVM target (METHOD.md section 5): its features are the source features f it
  reads, and its probabilities the softmax of its decision scores over the
  classes found so far (a linear SVM has no probabilities; the softmax keeps the
  order of its scores, which is what the uncertainty functions rank by).
- Fine-tuned target: its own pooled features and softmax over the target classes.

While fewer than two classes have a label the target model is a constant and
says nothing; that round falls back to the source model's signals.

Used by the `jaxal select --rounds` command and by the experiments runner
(`Cell.rounds`), so single-shot and iterative selection compare on one protocol.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from jaxal import acquisition, target


def round_sizes(budget: int, rounds: int) -> list[int]:
  """B split into R rounds as evenly as possible, earlier rounds one larger."""
  if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) \
      or rounds < 1:
    raise ValueError(f"rounds must be an int >= 1, got {rounds!r}.")
  if budget < rounds:
    raise ValueError(f"budget={budget} cannot be split into rounds={rounds}; "
                     "use at most one round per labeled image.")
  q, r = divmod(int(budget), int(rounds))
  return [q + (i < r) for i in range(rounds)]


def softmax(scores: np.ndarray) -> np.ndarray:
  s = np.asarray(scores, np.float64)
  s = np.exp(s - s.max(axis=1, keepdims=True))
  return (s / s.sum(axis=1, keepdims=True)).astype(np.float32)


def svm_signals(features: np.ndarray, labeled: np.ndarray, labels: np.ndarray, *,
                C: float = 1.0) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """(features, probs) of the pool as seen by an SVM trained on the labeled
  part; None when fewer than two classes are labeled (use the source's)."""
  labeled = np.asarray(labeled, np.int64)
  if np.unique(labels).size < 2:
    return None
  svm = target.fit_svm(features[labeled], labels, C=C)
  return features, softmax(svm.decision(features))


def select_round(method: str, budget: int, *, features: np.ndarray,
                 probs: np.ndarray, labeled: np.ndarray, seed: int) -> np.ndarray:
  """The next round: `budget` unlabeled pool indices, in selection order.

  `labeled` are the pool indices labeled in earlier rounds (never chosen
  again; core-set starts from them as centers). Random selection with one
  seed continues the same permutation of the pool round after round.
  """
  mask = np.zeros(features.shape[0], bool)
  mask[np.asarray(labeled, np.int64)] = True
  return acquisition.select(method, budget=budget, probs=probs, features=features,
                            labeled_mask=mask, seed=seed)
