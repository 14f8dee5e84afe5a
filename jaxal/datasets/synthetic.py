"""Generated source-model outputs for an imbalanced pool, for demos and tests.

Stands in for M_S's outputs (method guide §1) where no image data or trained
model is at hand: each target class has a centroid in a d-dimensional embedding,
embeddings are ReLU(centroid + noise) like pooled CNN features, and the "source
model" is a fixed random softmax layer over `num_source_classes` classes applied to
the embedding. Class sizes decay geometrically, which gives an imbalance ratio near
ImageNet's 0.813 for the default span. This is *not* image data: it exercises
acquisition, balancing and scoring, not feature learning or transfer.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxal.errors import InputError


@dataclasses.dataclass(frozen=True)
class SourceOutputs:
  """Stand-ins for M_S's outputs on a pool: features, probabilities and the labels."""
  features: np.ndarray  # [N, d] float32 embeddings f
  probs: np.ndarray  # [N, S] float32 source-class probabilities
  labels: np.ndarray  # [N] int64 target labels (the oracle)


def geometric_counts(num_classes: int, largest: int, smallest: int) -> np.ndarray:
  """Per-class counts decaying geometrically from `largest` to `smallest`."""
  if not 0 < smallest <= largest:
    raise InputError(f"need 0 < smallest <= largest, got smallest={smallest}, "
                     f"largest={largest}.")
  t = np.linspace(0.0, 1.0, num_classes)
  return np.round(largest * (smallest / largest) ** t).astype(np.int64)


def source_outputs(counts, *, dim: int = 64, num_source_classes: int = 50,
                   separation: float = 0.5, temperature: float = 1.0,
                   seed: int = 0, centroid_seed: int | None = None) -> SourceOutputs:
  """Generates pool embeddings, source probabilities and target labels.

  Args:
    counts: [N_t] samples per target class.
    dim: embedding size d.
    num_source_classes: size S of the source softmax.
    separation: distance scale between class centroids (larger = easier).
    temperature: softmax temperature of the source layer.
    seed: seed of the samples.
    centroid_seed: seed of the classes and source layer (defaults to `seed`);
      share it between a pool and its test set.
  """
  counts = np.asarray(counts, np.int64)
  rng_model = np.random.default_rng(seed if centroid_seed is None else centroid_seed)
  centroids = rng_model.normal(0, separation / np.sqrt(dim), (counts.size, dim))
  source_w = rng_model.normal(0, 1.0, (dim, num_source_classes))
  rng = np.random.default_rng([seed, 1])
  labels = np.repeat(np.arange(counts.size), counts)
  rng.shuffle(labels)
  feats = np.maximum(centroids[labels] + rng.normal(0, 1 / np.sqrt(dim),
                                                    (labels.size, dim)), 0)
  logits = feats @ source_w / temperature
  logits -= logits.max(axis=1, keepdims=True)
  probs = np.exp(logits)
  probs /= probs.sum(axis=1, keepdims=True)
  return SourceOutputs(feats.astype(np.float32), probs.astype(np.float32), labels)
