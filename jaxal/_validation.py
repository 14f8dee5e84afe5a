"""Checks at the library boundary: every error names the argument and the fix.

Each raises `jaxal.errors.InputError` (a ValueError) whose `field` is the
argument's name, so that a command line can name its own flag for it.

All checks run on the host with NumPy before anything is traced, so a bad input
never reaches a jitted kernel and nothing is silently clipped or truncated.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from jaxal.errors import InputError

# Rows of a probability matrix must sum to one within this absolute tolerance.
# Loose enough for float16/bfloat16 softmax outputs, tight enough to catch logits
# or unnormalised scores passed by mistake.
PROB_SUM_ATOL = 1e-3
_ROWS_PER_BLOCK = 16384


def check_budget(budget, available: int, *, what: str = "unlabeled pool") -> int:
  """Returns `budget` as an int after checking 0 < budget <= available."""
  if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)):
    raise InputError(f"budget must be a positive int, got {budget!r} "
                     f"({type(budget).__name__}); pass e.g. budget=1000.",
                     field="budget")
  budget = int(budget)
  if budget <= 0:
    raise InputError(f"budget must be > 0, got {budget}; pass the number of "
                     "samples to select.", field="budget")
  if budget > available:
    raise InputError(f"budget={budget} is larger than the {what} ({available} "
                     f"samples); pass budget <= {available} or add samples.",
                     field="budget")
  return budget


def check_probs(probs, name: str = "probs") -> np.ndarray:
  """Returns `probs` as a float array [N, C] of valid probability rows."""
  p = np.asarray(probs)
  if p.ndim != 2:
    raise InputError(f"{name} must be 2-D [num_samples, num_classes], got shape "
                     f"{p.shape}; reshape it or stack per-sample vectors.", field=name)
  if p.shape[0] == 0 or p.shape[1] == 0:
    raise InputError(f"{name} must be non-empty, got shape {p.shape}.", field=name)
  if not np.issubdtype(p.dtype, np.floating):
    raise InputError(f"{name} must be a float array, got dtype {p.dtype}; pass "
                     "softmax probabilities.", field=name)
  for start in range(0, p.shape[0], _ROWS_PER_BLOCK):
    block = p[start:start + _ROWS_PER_BLOCK]
    if not np.isfinite(block).all():
      bad = np.argwhere(~np.isfinite(block))[0]
      raise InputError(f"{name} has non-finite values (first at row "
                       f"{start + bad[0]}, column {bad[1]}); fix the model output "
                       "before acquisition.", field=name)
    if (block < 0).any():
      bad = np.argwhere(block < 0)[0]
      raise InputError(f"{name} has negative values (first at row {start + bad[0]}, "
                       f"column {bad[1]}: {block[bad[0], bad[1]]}); pass softmax "
                       "probabilities, not logits.", field=name)
  sums = p.sum(axis=1, dtype=np.float64)
  off = np.abs(sums - 1.0) > PROB_SUM_ATOL
  if np.any(off):
    row = int(np.argmax(off))
    raise InputError(f"{name} rows must sum to 1 (tolerance {PROB_SUM_ATOL}); row "
                     f"{row} sums to {sums[row]:.6g}. Apply softmax to logits, or "
                     "renormalise the rows.", field=name)
  return p


def check_features(features, name: str = "features") -> np.ndarray:
  """Returns `features` as a finite float array [N, d]."""
  f = np.asarray(features)
  if f.ndim != 2:
    raise InputError(f"{name} must be 2-D [num_samples, dim], got shape {f.shape}; "
                     "flatten per-sample embeddings first.", field=name)
  if f.shape[0] == 0 or f.shape[1] == 0:
    raise InputError(f"{name} must be non-empty, got shape {f.shape}.", field=name)
  if not (np.issubdtype(f.dtype, np.floating) or np.issubdtype(f.dtype, np.integer)):
    raise InputError(f"{name} must be numeric, got dtype {f.dtype}.", field=name)
  # By blocks of rows: a whole-array isfinite would allocate N x d booleans.
  for start in range(0, f.shape[0], _ROWS_PER_BLOCK):
    finite = np.isfinite(f[start:start + _ROWS_PER_BLOCK]).all(axis=1)
    if not finite.all():
      row = start + int(np.argmin(finite))
      raise InputError(f"{name} has non-finite values (first in row {row}); fix or "
                       "drop those samples before acquisition.", field=name)
  return f


def check_mask(labeled_mask, num_samples: int,
               name: str = "labeled_mask") -> np.ndarray:
  """Returns a boolean mask of length `num_samples` (all False when None)."""
  if labeled_mask is None:
    return np.zeros((num_samples,), dtype=bool)
  m = np.asarray(labeled_mask)
  if m.ndim != 1:
    raise InputError(f"{name} must be 1-D [num_samples], got shape {m.shape}.",
                     field=name)
  if m.shape[0] != num_samples:
    raise InputError(f"length mismatch: {name} has {m.shape[0]} entries but the "
                     f"pool has {num_samples} samples; pass one flag per sample.",
                     field=name)
  if m.dtype != bool:
    if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
      raise InputError(f"{name} must be boolean (True = labeled), got dtype "
                       f"{m.dtype}; pass a bool array.", field=name)
    m = m.astype(bool)
  return m


def check_labels(labels, num_classes, name: str = "labels",
                 length: Optional[int] = None) -> np.ndarray:
  """Returns integer labels in [0, num_classes), optionally of a given length."""
  check_num_classes(num_classes)
  y = np.asarray(labels)
  if y.ndim != 1:
    raise InputError(f"{name} must be 1-D, got shape {y.shape}.", field=name)
  if length is not None and y.shape[0] != length:
    raise InputError(f"length mismatch: {name} has {y.shape[0]} entries, expected "
                     f"{length} (one per sample).", field=name)
  if y.size and not np.issubdtype(y.dtype, np.integer):
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(
        y == np.round(y)):
      y = y.astype(np.int64)
    else:
      raise InputError(f"{name} must hold integer class ids, got dtype {y.dtype}.",
                       field=name)
  y = y.astype(np.int64, copy=False)
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    bad = y[(y < 0) | (y >= num_classes)][0]
    raise InputError(f"{name} must lie in [0, num_classes={num_classes}); found "
                     f"{bad}. Remap labels to 0..{num_classes - 1} or raise "
                     "num_classes.", field=name)
  return y


SEED_LIMIT = 2 ** 32


def check_seed(seed, name: str = "seed") -> int:
  """Returns `seed` as an int in [0, 2**32).

  JAX keys take 32 bits of the seed without 64-bit mode, so a larger or negative
  seed would silently equal another one (PRNGKey(2**32) == PRNGKey(0)).
  """
  if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
    raise InputError(f"{name} must be an int in [0, 2**32), got {seed!r} "
                     f"({type(seed).__name__}); pass e.g. {name}=0.", field=name)
  if not 0 <= int(seed) < SEED_LIMIT:
    raise InputError(f"{name} must lie in [0, 2**32), got {seed}; larger or negative "
                     "seeds would repeat smaller ones. Pass e.g. seed % 2**32.",
                     field=name)
  return int(seed)


def check_num_classes(num_classes) -> int:
  if isinstance(num_classes, (bool, np.bool_)) or not isinstance(
      num_classes, (int, np.integer)) or num_classes <= 0:
    raise InputError(f"num_classes must be a positive int, got {num_classes!r}.",
                     field="num_classes")
  return int(num_classes)


def check_same_length(**arrays) -> int:
  """Checks that all given (non-None) arrays share their first dimension."""
  lengths = {k: int(np.shape(v)[0]) for k, v in arrays.items() if v is not None}
  if len(set(lengths.values())) > 1:
    desc = ", ".join(f"{k}={n}" for k, n in lengths.items())
    raise InputError(f"length mismatch among per-sample arguments ({desc}); they "
                     "must describe the same pool, one row per sample.")
  return next(iter(lengths.values())) if lengths else 0


def check_int_fields(tuning, fields: Sequence[str], optional: Sequence[str],
                     default, name: str) -> None:
  """Each of `fields` of the NamedTuple `tuning` is a positive int (or None
  for those in `optional`); the error names it `name.field` and gives
  `default`'s value."""
  for field in fields:
    v = getattr(tuning, field)
    if v is None and field in optional:
      continue
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise InputError(f"{name}.{field} must be a positive int"
                       f"{' or None' if field in optional else ''}, got {v!r}; the "
                       f"default is {getattr(default, field)!r}.",
                       field=f"{name}.{field}")


def check_tuning(tuning, cls: type, default, name: str):
  """`tuning` validated by its own `validate(name)`, or `default` for None;
  anything but a `cls` is refused naming `name`."""
  if tuning is None:
    return default
  if not isinstance(tuning, cls):
    where = f"{cls.__module__}.{cls.__qualname__}"
    raise InputError(f"{name} must be a {where} or None, got "
                     f"{type(tuning).__name__}; build one with "
                     f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}(...).",
                     field=name)
  return tuning.validate(name)
