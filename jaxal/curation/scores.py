"""Per-image scores from the nearest neighbours (`jaxal.curation.neighbors`)::

    nn_distance         distance to the nearest other image: 0 for an exact
                        copy, large for an outlier
    uniqueness          FiftyOne Brain's weighting of the 3 nearest distances,
                        0.6 d1 + 0.3 d2 + 0.1 d3, divided by its largest value
                        in the pool (so in [0, 1]; 1 the most unique)
    representativeness  density: TypiClust's typicality (Hacohen et al., ICML
                        2022), 1 / (mean distance to the K = 20 nearest + 1e-5),
                        divided by its largest value (1 the densest)

Where FiftyOne Brain's code differs (voxel51/fiftyone-brain at 7238036):

- uniqueness: its scikit-learn index never returns a point as its own
  neighbour, yet the code drops the first of the K + 1 returned, so the weights
  fall on the 2nd-4th nearest neighbours and an exact copy's zero distance is
  ignored; ours weights the 1st-3rd as its documentation describes. Pools of
  <= 3 images score 1 there and here; a pool of identical images (every
  distance 0) is NaN there, 0 here.
- representativeness: FiftyOne clusters by k-means (20 clusters) and, with its
  "local" normalisation, returns each point's distance to its centre over its
  cluster's largest, which scores the points *farthest* from the centres
  highest, against its own docstring. Ours is a density without clusters, the
  typicality TypiClust selects by (`jaxal.coldstart.typiclust`, where it is
  computed within clusters).
"""

from __future__ import annotations

import numpy as np

from jaxal.errors import InputError

UNIQUENESS_WEIGHTS = (0.6, 0.3, 0.1)
REPRESENTATIVENESS_K = 20
_EPS = 1e-5  # TypiClust's 1 / (mean + 1e-5)


def _distances(d) -> np.ndarray:
  d = np.asarray(d, np.float64)
  if d.ndim != 2 or d.shape[1] < 1:
    raise InputError(f"distances must be [N, k] with k >= 1, got shape {d.shape}.",
                     field="distances")
  if np.isnan(d).any() or (d < 0).any():
    raise InputError("distances must be >= 0 (inf where a point has fewer "
                     "neighbours), with no NaN.", field="distances")
  return d


def _scaled(v: np.ndarray) -> np.ndarray:
  top = v.max() if v.size else 0.0
  return v / top if top > 0 else np.zeros_like(v)


def nn_distance(distances) -> np.ndarray:
  """[N] float64 distance of each image to its nearest other image."""
  return _distances(distances)[:, 0].copy()


def uniqueness(distances) -> np.ndarray:
  """[N] float64 in [0, 1] from the neighbours' distances [N, k >= 3], nearest
  first (module docstring); 1 everywhere for a pool of <= 3 images."""
  d = _distances(distances)
  n = d.shape[0]
  if n <= len(UNIQUENESS_WEIGHTS):
    return np.ones(n)
  if d.shape[1] < len(UNIQUENESS_WEIGHTS):
    raise InputError(f"distances: uniqueness needs the {len(UNIQUENESS_WEIGHTS)} "
                     f"nearest neighbours of each image, got {d.shape[1]}.",
                     field="distances")
  return _scaled(d[:, :len(UNIQUENESS_WEIGHTS)] @ np.asarray(UNIQUENESS_WEIGHTS))


def representativeness(distances, k: int = REPRESENTATIVENESS_K) -> np.ndarray:
  """[N] float64 in (0, 1]: typicality over the min(k, N - 1) nearest (module
  docstring), over its largest value."""
  d = _distances(distances)
  k = min(int(k), d.shape[0] - 1)
  if d.shape[1] < k:
    raise InputError(f"distances: representativeness needs the {k} nearest "
                     f"neighbours of each image, got {d.shape[1]}.", field="distances")
  return _scaled(1.0 / (d[:, :k].mean(axis=1) + _EPS))
