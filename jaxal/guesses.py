"""The balancing step guided by zero-shot guesses until every class has an
answer (beyond the paper; `balancing.balanced_select(guesses=...)`).

The paper's balancing step (main paper section 3.3, Eq. 9; method guide §4) can
steer towards a class only once labels of it exist: its counts n_c are the
answers, and a class never seen is at best "far from every majority centroid".
With guesses p(c | x) over the target classes (`jaxal.zeroshot`: the class
names read by SigLIP), the step can go after each class from the first batch:

- Effective count of class c: its answers n_c when it has any; otherwise
  `weight` x the number of images picked so far for c, or guessed c (their
  answers said otherwise, else c would have answers); the images labeled
  before the step (an earlier round or call) count under their top guess.
  With weight 0 a class with no answer stays the least represented until one
  arrives; with weight 1 every wrong guess counts as fully as an answer.
- Each pick the guesses decide fills the least represented class c (lowest
  effective count, the lower class id on ties): among the available images
  guessed c, the one with the highest p(c | x); if no available image is
  guessed c, the one with the highest p(c | x) all the same. A pick counts as
  one of c until its answer arrives, so a batch spreads over the classes.
- The guesses decide while the least represented class has no answer; when it
  has answers, the paper's rule (its switch, Eq. 9's distances to answered
  centroids) decides. So once every class has an answer the guesses stop
  mattering: every later pick is the paper's from those answers. A class the
  pool does not hold (listed, never found) stops leading once weight x its
  wrong guesses exceeds the least answered class's count, and is tried again
  as the counts grow: with weight 0 it would lead forever, so the default is 0.5.
- Within the class, the images guessed c most confidently come first (the
  acquisition ranking breaks ties, then the lower index): an uncertainty
  ranking's first images are the least likely to be c (measured on the
  stand-in pools of tests/method/test_guesses.py: most-confident-first found
  every class in 6-22 answers where ranking order took 6 to never).

[R] This is jaxal's rule, after PCB (Bang et al., CVPR 2024), which
pseudo-labels the pool with CLIP and fills the least-labeled class first with
its acquisition order within the class; PCB then counts pseudo-labels, where
this step counts answers wherever they exist.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from jaxal.errors import InputError


@dataclasses.dataclass
class Guide:
  """The guesses of a pool of N images over C classes, and the picks so far."""
  probs: np.ndarray  # [N, C] p(c | x)
  guess: np.ndarray  # [N] the top-1 guess
  weight: float
  rank_of: np.ndarray  # [N] position in the acquisition ranking (N: not in it)
  guessed: np.ndarray  # [C] picks so far made for (or guessed as) each class
  made_for: dict = dataclasses.field(default_factory=dict)  # pick -> its class

  @classmethod
  def build(cls, probs, ranking: np.ndarray, weight: float, n: int,
            num_classes: int) -> "Guide":
    """The guide of `probs` [n, num_classes], checked, over `ranking`."""
    p = np.asarray(probs, np.float32)
    if p.shape != (n, num_classes):
      raise InputError(f"guesses must be [{n}, {num_classes}] (one probability per "
                       f"image and target class), got shape {p.shape}.",
                       field="guesses")
    if not np.isfinite(p).all() or (p < 0).any():
      raise InputError("guesses must be finite and >= 0.", field="guesses")
    try:
      w = float(weight)
    except (TypeError, ValueError):
      w = float("nan")
    if not (np.isfinite(w) and w >= 0):
      raise InputError(f"guess_weight must be a number >= 0, got {weight!r}.",
                       field="guess_weight")
    rank_of = np.full(n, n, np.int64)
    rank_of[ranking] = np.arange(len(ranking))
    return cls(p, p.argmax(axis=1), w, rank_of, np.zeros(num_classes, np.float64))

  def leads(self, counts: np.ndarray) -> bool:
    """Whether the guesses decide the next pick: the least represented class
    (by effective count, the lower id on ties) has no answer yet."""
    counts = np.asarray(counts)
    return bool(counts[int(np.argmin(self.effective(counts)))] == 0)

  def effective(self, counts: np.ndarray) -> np.ndarray:
    """[C] answers where a class has any, else weight x picks guessed as it."""
    counts = np.asarray(counts, np.float64)
    return np.where(counts > 0, counts, self.weight * self.guessed)

  def picks(self, counts: np.ndarray, available: np.ndarray, k: int) -> np.ndarray:
    """The next k images (module docstring), best first."""
    eff = self.effective(counts)
    avail = np.array(available, bool)
    out = []
    for _ in range(k):
      c = int(np.argmin(eff))
      idx = np.flatnonzero(avail & (self.guess == c))
      if idx.size:
        best = idx[np.lexsort((idx, self.rank_of[idx], -self.probs[idx, c]))[0]]
      else:
        idx = np.flatnonzero(avail)
        best = idx[np.lexsort((idx, -self.probs[idx, c]))[0]]
      out.append(int(best))
      self.made_for[int(best)] = c
      avail[best] = False
      eff[c] += 1.0  # one of c until its answer arrives
    return np.asarray(out, np.int64)

  def record(self, picks: np.ndarray) -> None:
    """Counts `picks` under the class each was picked for (its top guess for a
    pick the guesses did not make, and for the images labeled before the step:
    so a class the pool lacks stops leading over rounds as within one)."""
    picks = np.asarray(picks, np.int64).reshape(-1)
    made = self.guess[picks]
    if self.made_for:  # the guesses' own picks, by the class each was made for
      made = np.array([self.made_for.pop(i, c) for i, c in
                       zip(picks.tolist(), made.tolist())], np.int64)
    np.add.at(self.guessed, made, 1.0)


def build(guesses: Optional[np.ndarray], ranking: np.ndarray, weight: float, n: int,
          num_classes: int) -> Optional[Guide]:
  """The `Guide` of `guesses`, or None without them (the paper's rule)."""
  return None if guesses is None else Guide.build(guesses, ranking, weight, n,
                                                  num_classes)
