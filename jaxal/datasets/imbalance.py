"""Imbalance induction and balanced subsets (method guide §2).

The paper (supplement section 4) transfers a reference class-size profile, full
ImageNet's (imbalance ratio ir = std/mean = 0.813), onto each target: sort the
profile, split it into N_t bins, take each bin's mean, normalise the means and
multiply them by the target's mean number of images per class.

Reconstructed [R] choices, each an argument here:

- `profile=None` uses `default_profile()`: 1000 log-normal quantiles whose ratio is
  exactly 0.813 (the ImageNet counts are not shipped; pass them as `profile`).
- Bin means are assigned to classes by a seeded permutation.
- A class never gets more images than it has, and at least one.
- `match_ratio=True` ("guided to attain a similar imbalance ratio", supplement
  section 4): binning into few bins and capping at availability both lower the
  ratio, so the normalised bin means are raised to a power gamma found by bisection
  such that the capped, rounded counts have the profile's ratio. gamma = 1 is the
  plain procedure (`match_ratio=False`).
"""

from __future__ import annotations

import os

import numpy as np
from scipy import special

from jaxal import _validation as V
from jaxal.metrics import imbalance_ratio_of_counts
from jaxal.errors import InputError

DEFAULT_RATIO = 0.813
# Supplement section 2: balanced subsets per dataset.
BALANCED_PER_CLASS = {"food101": 200, "cifar100": 200, "imn100": 200, "mit67": 80}


def default_profile(num_classes: int = 1000, ratio: float = DEFAULT_RATIO) -> np.ndarray:
  """A smooth class-size profile with imbalance ratio `ratio` (float64 counts).

  Log-normal quantiles exp(sigma z_i) at z_i = Phi^-1((i + 1/2) / n), with sigma
  solved so that std/mean equals `ratio` exactly: the shape of long-tailed web
  image collections, standing in for ImageNet's counts when they are not given.
  """
  if num_classes < 2:
    raise InputError(f"num_classes must be >= 2, got {num_classes}.")
  if not ratio > 0:
    raise InputError(f"ratio must be > 0, got {ratio}.")
  z = special.ndtri((np.arange(num_classes) + 0.5) / num_classes)
  lo, hi = 0.0, 10.0
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if imbalance_ratio_of_counts(np.exp(mid * z)) < ratio:
      lo = mid
    else:
      hi = mid
  return 1000.0 * np.exp(0.5 * (lo + hi) * z)


def load_profile(path: str) -> np.ndarray:
  """Reads a per-class count profile: .npy, or text with one count per line."""
  if not os.path.exists(path):
    raise InputError(f"profile file {path!r} does not exist; give a .npy array or a "
                     "text file with one image count per line (e.g. ImageNet's).")
  if path.endswith(".npy"):
    prof = np.load(path)
  else:
    prof = np.loadtxt(path, ndmin=1)
  return _check_profile(prof, "profile")


def _check_profile(profile, name) -> np.ndarray:
  prof = np.asarray(profile, np.float64)
  if prof.ndim != 1 or prof.size < 2:
    raise InputError(f"{name} must be a 1-D array of >= 2 per-class counts, got shape "
                     f"{prof.shape}.")
  if not np.all(np.isfinite(prof)) or np.any(prof <= 0):
    raise InputError(f"{name} must hold finite counts > 0; drop empty classes.")
  return prof


def _check_available(available) -> np.ndarray:
  arr = np.asarray(available)
  if arr.ndim != 1 or arr.size < 1 or not np.issubdtype(arr.dtype, np.integer):
    raise InputError("available must be a 1-D integer array of images per class "
                     f"(e.g. np.bincount(labels)), got dtype {arr.dtype}, shape "
                     f"{arr.shape}.")
  if np.any(arr < 1):
    raise InputError("available must be >= 1 for every class; class "
                     f"{int(np.argmin(arr))} has {int(arr.min())} images.")
  return arr.astype(np.int64)


def bin_means(profile, num_bins: int) -> np.ndarray:
  """Means of `num_bins` near-equal bins of the profile sorted largest first."""
  prof = np.sort(_check_profile(profile, "profile"))[::-1]
  if num_bins > prof.size:
    raise InputError(f"the profile has {prof.size} classes, fewer than the "
                     f"{num_bins} target classes; give a longer profile.")
  return np.array([b.mean() for b in np.array_split(prof, num_bins)])


def imbalanced_counts(available, *, profile=None, seed: int = 0,
                      match_ratio: bool = True, capping: str = "power") -> np.ndarray:
  """Per-class image counts of the imbalanced version of a target dataset.

  Args:
    available: [N_t] images each class has (e.g. `np.bincount(train_labels)`).
    profile: reference per-class counts (e.g. full ImageNet's, see
      `load_profile`); None: `default_profile()`, ratio 0.813.
    seed: seed of the class-to-count assignment.
    match_ratio: correct the bin means (power gamma) so that the result's
      imbalance ratio equals the profile's despite binning and capping.
    capping: how counts above a class's availability are handled: "power"
      clips them (the target's mean images per class is kept for the other
      classes, as the paper's procedure multiplies by it); "scale" scales all
      counts down by one factor until none exceeds availability (the bin shape
      is kept exactly, at the cost of fewer images).

  Returns:
    [N_t] int64 counts, 1 <= counts <= available.

  Example:
    CIFAR-100's 500 images per class, given the paper's imbalance (ratio 0.813):

    >>> import numpy as np
    >>> from jaxal.datasets import imbalance
    >>> c = imbalance.imbalanced_counts(np.full(100, 500), seed=0)
    >>> int(c.sum()), round(float(c.std() / c.mean()), 2), int(c.max()) <= 500
    (22834, 0.81, True)
  """
  avail = _check_available(available)
  seed = V.check_seed(seed)
  if capping not in ("power", "scale"):
    raise InputError(f"capping must be 'power' or 'scale', got {capping!r}.")
  prof = default_profile() if profile is None else _check_profile(profile, "profile")
  target = imbalance_ratio_of_counts(prof)
  means = bin_means(prof, avail.size)
  shape = np.empty(avail.size)
  shape[np.random.default_rng(seed).permutation(avail.size)] = means / means.mean()
  scale = avail.mean()

  def counts_for(gamma):
    s = shape ** gamma
    s = s / s.mean() * scale
    if capping == "scale":
      s = s * min(1.0, float(np.min(avail / s)))
    return np.clip(np.round(s), 1, avail).astype(np.int64)

  if not match_ratio or avail.size == 1 or np.all(shape == shape[0]):
    return counts_for(1.0)
  lo, hi = 0.0, 1.0
  while imbalance_ratio_of_counts(counts_for(hi)) < target and hi < 64:
    lo, hi = hi, hi * 2
  for _ in range(60):
    mid = 0.5 * (lo + hi)
    if imbalance_ratio_of_counts(counts_for(mid)) < target:
      lo = mid
    else:
      hi = mid
  best = min((counts_for(g) for g in (lo, hi)),
             key=lambda c: abs(imbalance_ratio_of_counts(c) - target))
  return best


def subset_indices(labels, counts, *, seed: int = 0) -> np.ndarray:
  """Indices keeping `counts[c]` seeded-random examples of each class c.

  Returns the kept indices in increasing order (the split's own order).
  """
  seed = V.check_seed(seed)
  labels = np.asarray(labels)
  counts = np.asarray(counts)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise InputError(f"labels must be a 1-D integer array, got {labels.shape} "
                     f"{labels.dtype}.")
  if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 0):
    raise InputError("counts must be a 1-D array of non-negative integers, one per "
                     "class.")
  if labels.size and (labels.min() < 0 or labels.max() >= counts.size):
    raise InputError(f"labels must lie in [0, {counts.size}) to match counts of "
                     f"{counts.size} classes.")
  have = np.bincount(labels, minlength=counts.size)
  short = np.flatnonzero(have < counts)
  if short.size:
    c = int(short[0])
    raise InputError(f"counts asks {int(counts[c])} examples of class {c}, which has "
                     f"only {int(have[c])}; lower counts (see imbalanced_counts).")
  rng = np.random.default_rng(seed)
  order = np.argsort(labels, kind="stable")
  starts = np.concatenate([[0], np.cumsum(have)[:-1]])
  keep = [rng.choice(order[starts[c]:starts[c] + have[c]], counts[c], replace=False)
          for c in range(counts.size)]
  return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def balanced_indices(labels, per_class: int, num_classes: int, *,
                     seed: int = 0) -> np.ndarray:
  """Indices of a balanced subset: `per_class` examples of every class
  (supplement section 2: 200 per class, 80 for MIT-67)."""
  if int(per_class) < 1:
    raise InputError(f"per_class must be >= 1, got {per_class}.")
  return subset_indices(labels, np.full(int(num_classes), int(per_class)), seed=seed)
