"""What every cold-start function checks and prepares before its kernel."""

from __future__ import annotations

import numpy as np

from jaxal import _validation as V
from jaxal.errors import InputError


def normalized(f: np.ndarray) -> np.ndarray:
  """Rows scaled to unit L2 norm (a zero row stays zero), float32."""
  norm = np.linalg.norm(f.astype(np.float64), axis=1, keepdims=True)
  return (f / np.where(norm > 0, norm, 1)).astype(np.float32)


def pool(features, budget, labeled_mask, normalize: bool):
  """(float32 features, L2-normalised if asked; [N] labeled mask; budget), each
  checked at the boundary with an error naming the argument."""
  f = np.asarray(V.check_features(features), np.float32)
  mask = V.check_mask(labeled_mask, f.shape[0])
  budget = V.check_budget(budget, int(f.shape[0] - mask.sum()))
  if not isinstance(normalize, bool):
    raise InputError(f"normalize must be a bool, got {normalize!r}.")
  return (normalized(f) if normalize else f), mask, budget


def positive(value, name: str, hint: str) -> float:
  """`value` as a float after checking it is finite and > 0."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
      or not np.isfinite(value) or value <= 0:
    raise InputError(f"{name} must be a finite float > 0, got {value!r}; {hint}")
  return float(value)
