"""MaxHerding (Bae, Noh & Sutherland, ECCV 2024, "Generalized Coverage for More
Robust Low-Budget Active Learning").

Stated in the paper: maximise the generalised coverage
GCov(S) = (1/N) sum_i max_{s in S} k(x_i, s) greedily, one point at a time, with
a Gaussian kernel; ProbCover's coverage is the top-hat kernel's special case, and
a smooth kernel makes the method far less sensitive to its scale than ProbCover
is to delta.

In the authors' code (`MaxHerding` in their UHerding repository, and its
variants): k(x, y) = exp(-(||x - y|| / h)^2) with h = 1 (their `delta`) on
L2-normalised features, labeled points covering from the start; the N x N kernel
matrix is kept on the GPU, so the unlabeled candidates are a random subset of
35,000 points (40,000 on ImageNet). scikit-activeml's `MaxHerding` keeps the same
N x N matrix (scikit-learn's `rbf` kernel, gamma = 1 / d by default).

Here [R]: every unlabeled point is a candidate and every point counts in the
coverage, with no N x N matrix (`jaxal.coldstart.coverage`, Gaussian kernel, lazy
greedy: exactly plain greedy's picks, lowest index on ties). `bandwidth` is the
authors' h.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax

from jaxal.coldstart import _inputs, coverage


def maxherding(features, budget: int, *, labeled_mask=None, bandwidth: float = 1.0,
               normalize: bool = True, lazy: bool = True,
               devices: Optional[Sequence[jax.Device]] = None,
               return_stats: bool = False,
               tuning: Optional[coverage.Tuning] = None):
  """Selects `budget` unlabeled points with MaxHerding (module docstring).

  Args:
    features: [N, d] pool embeddings.
    budget: points to select, 0 < budget <= number of unlabeled points.
    labeled_mask: optional [N] bool; labeled points count as selected.
    bandwidth: h of k(x, y) = exp(-||x - y||^2 / h^2), > 0 (authors 1.0).
    normalize: L2-normalise the features first (authors).
    lazy: lazy greedy (default) or plain greedy (reference).
    devices: shard the pool by rows over these devices.
    return_stats: also return the `coverage.CoverageStats`.
    tuning: the greedy's block sizes (`coverage.Tuning`; default
      `coverage.DEFAULT_TUNING`).

  Returns:
    numpy int64 array of `budget` pool indices in selection order.
  """
  h = _inputs.positive(bandwidth, "bandwidth",
                       "the authors use 1.0 on L2-normalised features.")
  f, mask, budget = _inputs.pool(features, budget, labeled_mask, normalize)
  picks, stats = coverage.greedy(f, budget, kind="gaussian", param=1.0 / h ** 2,
                                 labeled_mask=mask,
                                 lazy=lazy, devices=devices, tuning=tuning)
  return (picks, stats) if return_stats else picks
