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

The target-aware methods (`acquisition.TARGET_AWARE`: UHerding, DropQuery,
DIRECT) read the target model itself (`acquisition.TargetModel`), never M_S's
source-class probabilities: without a target (round 1, or fewer than two
classes labeled) UHerding and DropQuery run their cold starts, and DIRECT,
which has none, selects that round at random, as its authors' benchmark
(LabelBench) does in its first round.

With the balancing step (method guide §4) each round's ranking is walked by
`jaxal.balancing.balanced_select`, the points labeled in earlier rounds
counting in its class counts and centroids: the paper's single-shot step
applied round by round ([R]: the paper does not select in rounds). DIRECT labels
as it selects and is not balanced.

Used by the `jaxal select --rounds` command and by the experiments runner
(`Cell.rounds`), so single-shot and iterative selection compare on one protocol.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from jaxal import acquisition, balancing
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
                 num_classes: Optional[int] = None,
                 target: Optional[acquisition.TargetModel] = None,
                 oracle: Optional[balancing.Oracle] = None,
                 among: Optional[np.ndarray] = None) -> np.ndarray:
  """The next round: `budget` unlabeled pool indices, in selection order.

  `labeled` are the pool indices labeled in earlier rounds (never chosen
  again; core-set starts from them as centers). Random selection with one
  seed continues the same permutation of the pool round after round.
  `target` is the target model trained on them (None: round 1, or fewer than
  two classes labeled), read by the target-aware methods only; `oracle` the
  annotator, asked by DIRECT only.

  `among` ([N] bool, None: all) are the images this round may pick, e.g. one
  per group of near-duplicates (`jaxal.curation.duplicates.candidates`): the
  method then runs on the pool of those and the labeled images, as if the
  others were not in it (their features count nowhere), and its picks are
  returned as indices of the whole pool.
  """
  method, kw = _round_method(method, target, oracle)
  n = features.shape[0]
  if among is None:
    return acquisition.select(method, budget=budget, probs=probs, features=features,
                              labeled_mask=_mask(labeled, n), seed=seed,
                              num_classes=num_classes, **kw)
  mask = _mask(labeled, n)
  sub = balancing.subset(among, mask, n)
  among = np.asarray(among)
  if budget > int((among & ~mask).sum()):
    raise InputError(f"budget={budget} is more than the {int((among & ~mask).sum())} "
                     "unlabeled images this round may pick (one per group of "
                     "near-duplicates); lower the budget.", field="budget")
  if "target" in kw:
    kw["target"] = _rows(kw["target"], sub)
  if kw.get("oracle") is not None:
    kw["oracle"] = balancing.subset_oracle(kw["oracle"], sub)
  picks = acquisition.select(
      method, budget=budget, probs=None if probs is None else probs[sub],
      features=features[sub], labeled_mask=mask[sub], seed=seed,
      num_classes=num_classes, **kw)
  return sub[np.asarray(picks, np.int64)]


def _rows(target: acquisition.TargetModel, rows: np.ndarray):
  """The target model's view of the pool's `rows` only."""
  return target._replace(
      probs=np.asarray(target.probs)[rows],
      inputs=None if target.inputs is None else np.asarray(target.inputs)[rows])


def balanced_round(method: str, budget: int, *, features: np.ndarray,
                   probs: np.ndarray, labeled: np.ndarray, seed: int,
                   num_classes: int, oracle: balancing.Oracle,
                   target: Optional[acquisition.TargetModel] = None,
                   rule: str = "ratio",
                   majority_distance: str = "nearest",
                   among: Optional[np.ndarray] = None,
                   guesses: Optional[np.ndarray] = None,
                   guess_weight: float = 0.5) -> np.ndarray:
  """The next round with the balancing step: `method`'s ranking of the
  unlabeled pool walked by `balancing.balanced_select`, which asks `oracle`
  and counts the points labeled before (`labeled`) in its classes; `among` as
  `select_round`'s (the ranking's other images skipped, the step's picks
  among these); `guesses` and `guess_weight` lead the step until every class
  has an answer (`jaxal.guesses`)."""
  if method in acquisition.LABELS_WHILE_SELECTING:
    raise InputError(f"method {method!r} labels as it selects; the balancing step "
                     "cannot walk its picks again without discarding labels already "
                     "paid for: select its rounds without balancing.", field="method")
  method, kw = _round_method(method, target, None)
  mask = _mask(labeled, features.shape[0])
  ranking = acquisition.ranking_to_balance(
      method, budget=budget, probs=probs, features=features, seed=seed,
      num_classes=num_classes, labeled_mask=mask, **kw)
  return balancing.balanced_select(ranking, features, oracle, budget, num_classes,
                                   labeled_mask=mask, rule=rule,
                                   majority_distance=majority_distance, among=among,
                                   guesses=guesses, guess_weight=guess_weight)


def _mask(labeled, n: int) -> np.ndarray:
  mask = np.zeros(n, bool)
  mask[np.asarray(labeled, np.int64)] = True
  return mask


def _round_method(method: str, target, oracle):
  """(the method that selects this round, its target/oracle arguments)."""
  if method not in acquisition.TARGET_AWARE:
    return method, {}
  if method == "direct":
    if target is None:  # no cold start: a random round, as in LabelBench
      return "random", {}
    return method, {"target": target, "oracle": oracle}
  return method, {"target": target}
