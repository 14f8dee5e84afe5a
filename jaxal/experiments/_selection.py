"""A cell's selection from the pool's signals (method guide §3-4), single-shot
or in rounds (`jaxal.rounds`). Pure functions of the arrays they are given."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from jaxal import acquisition, balancing, rounds
from jaxal.curation import duplicates
from jaxal.experiments import sweep
from jaxal.models.target import RoundSignals

Signals = tuple[np.ndarray, Optional[np.ndarray]]  # (features, probs) of the pool


def select(cell: sweep.Cell, features: np.ndarray, probs: Optional[np.ndarray],
           labels: np.ndarray, num_classes: int, *, rule: str,
           majority_distance: str,
           later: Callable[[np.ndarray], Signals],
           dup: Optional[duplicates.Duplicates] = None,
           guesses: Optional[np.ndarray] = None,
           guess_weight: float = 0.5) -> np.ndarray:
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
    later: labeled pool indices -> the `RoundSignals` the next round selects
      by (`in_rounds`); called only with `cell.rounds` > 1.
    dup: the pool's groups of near-duplicates (`Settings.dedupe`): at most one
      image of a group is selected; None: every image may be.
    guesses: [N, C] zero-shot probabilities that lead the balancing step of a
      `cell.guided` cell (`jaxal.guesses`), with `guess_weight`.
  """
  if cell.guided and (guesses is None or not cell.balancing):
    raise ValueError(f"cell {cell.key}: a guided cell balances, with guesses.")
  guide = dict(guesses=guesses, guess_weight=guess_weight) if cell.guided else {}
  if cell.rounds > 1:
    balance = dict(rule=rule, majority_distance=majority_distance, **guide) \
        if cell.balancing else None
    return in_rounds(cell.method, cell.budget, cell.rounds, seed=cell.seed,
                     num_classes=num_classes, first=(features, probs), later=later,
                     labels=labels, balance=balance, dup=dup)
  kw = dict(probs=probs, features=features, seed=cell.seed, num_classes=num_classes)
  among = None if dup is None else dup.kept
  if not cell.balancing:
    if among is None:
      return acquisition.select(cell.method, budget=cell.budget, **kw)
    return rounds.select_round(cell.method, cell.budget, labeled=np.zeros(0, np.int64),
                               among=among, **kw)
  ranking = acquisition.ranking_to_balance(cell.method, budget=cell.budget, **kw)
  return balancing.balanced_select(ranking, features, labels, cell.budget,
                                   num_classes, rule=rule,
                                   majority_distance=majority_distance, among=among,
                                   **guide)


def in_rounds(method: str, budget: int, num_rounds: int, *, seed: int,
              num_classes: int, first: Signals,
              later: Callable[[np.ndarray], RoundSignals], labels: np.ndarray,
              balance: Optional[dict] = None,
              dup: Optional[duplicates.Duplicates] = None) -> np.ndarray:
  """Iterative selection (`jaxal.rounds`): `budget` split into `num_rounds`,
  round 1 ranked by `first` (M_S's signals), each later one by `later(labeled)`
  for the pool indices labeled in the rounds before it. `labels` is the
  simulated annotator (DIRECT's oracle, the balancing step's); `balance` the
  balancing step's rule and majority distance (and guesses that lead it), or
  None for none; `dup` the
  near-duplicates of which at most one image is selected."""
  labeled: list[int] = []
  for k, size in enumerate(rounds.round_sizes(budget, num_rounds)):
    sig = RoundSignals(*first, "source") if k == 0 else later(
        np.asarray(labeled, np.int64))
    kw = dict(features=sig.features, probs=sig.probs, labeled=labeled, seed=seed,
              num_classes=num_classes, target=sig.target)
    among = None if dup is None else duplicates.candidates(dup, labeled)
    if balance is None:
      new = rounds.select_round(method, size, oracle=labels, among=among, **kw)
    else:
      new = rounds.balanced_round(method, size, oracle=labels, among=among, **kw,
                                  **balance)
    labeled += new.tolist()
  return np.asarray(labeled, np.int64)
