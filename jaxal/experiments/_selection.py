"""A cell's selection from the pool's signals (method guide §3-4), single-shot
or in rounds (`jaxal.rounds`). Pure functions of the arrays they are given."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from jaxal import acquisition, balancing, rounds
from jaxal.experiments import sweep

Signals = tuple[np.ndarray, Optional[np.ndarray]]  # (features, probs) of the pool


def select(cell: sweep.Cell, features: np.ndarray, probs: Optional[np.ndarray],
           labels: np.ndarray, num_classes: int, *, rule: str,
           majority_distance: str,
           later: Callable[[np.ndarray], Signals]) -> np.ndarray:
  """Pool indices chosen for `cell` (not the Full row), in selection order.

  Args:
    cell: the cell (method, budget, balancing, seed, rounds).
    features: the pool's features the cell selects (and balances) on.
    probs: the pool's probabilities, or None (SimCLR's features have none).
    labels: the pool's ground truth: the balancing step's oracle (method
      guide §4, in experiments).
    num_classes: the target classes.
    rule: the balancing step's rule (`balancing.RULES`).
    majority_distance: its distance to the majority classes.
    later: labeled pool indices -> the (features, probs) the next round ranks
      by (`in_rounds`); called only with `cell.rounds` > 1.
  """
  if cell.rounds > 1:
    return in_rounds(cell.method, cell.budget, cell.rounds, seed=cell.seed,
                     num_classes=num_classes, first=(features, probs), later=later)
  kw = dict(probs=probs, features=features, seed=cell.seed, num_classes=num_classes)
  if not cell.balancing:
    return acquisition.select(cell.method, budget=cell.budget, **kw)
  ranking = acquisition.ranking_to_balance(cell.method, budget=cell.budget, **kw)
  return balancing.balanced_select(ranking, features, labels, cell.budget,
                                   num_classes, rule=rule,
                                   majority_distance=majority_distance)


def in_rounds(method: str, budget: int, num_rounds: int, *, seed: int,
              num_classes: int, first: Signals,
              later: Callable[[np.ndarray], Signals]) -> np.ndarray:
  """Iterative selection (`jaxal.rounds`): `budget` split into `num_rounds`,
  round 1 ranked by `first` (M_S's signals), each later one by `later(labeled)`
  for the pool indices labeled in the rounds before it."""
  labeled: list[int] = []
  for k, size in enumerate(rounds.round_sizes(budget, num_rounds)):
    f, p = first if k == 0 else later(np.asarray(labeled, np.int64))
    labeled += rounds.select_round(method, size, features=f, probs=p,
                                   labeled=labeled, seed=seed,
                                   num_classes=num_classes).tolist()
  return np.asarray(labeled, np.int64)
