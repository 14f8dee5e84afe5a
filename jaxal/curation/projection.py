"""A 2-D map of the pool: its first two principal components, exactly.

PCA always (no extra package, no seed): the features' mean and covariance in
float64, summed over blocks of rows (a memory-mapped pool is read twice, never
whole), the top two eigenvectors of the covariance (`numpy.linalg.eigh`), each
signed so that its largest-magnitude entry is positive, and every row projected
onto them. The same features give the same map on one machine; another machine
may round the float64 sums differently (~1e-12 relative).

UMAP (McInnes et al., 2018; `umap-learn`) and PaCMAP (Wang et al., JMLR 2021;
`pacmap`) keep neighbourhoods that PCA flattens (`project`, an optional extra:
`pip install ".[map]"`): the well-kept libraries with their defaults, their
`random_state` set from `seed` (UMAP is then deterministic and single-threaded;
PaCMAP deterministic). Both need the features in memory and take minutes at a
few 10^5 points on a CPU; PCA is the default for that reason.
"""

from __future__ import annotations

import numpy as np

from jaxal.errors import InputError

PROJECTIONS = ("pca", "umap", "pacmap")
_PACKAGES = {"umap": ("umap", "umap-learn"), "pacmap": ("pacmap", "pacmap")}


def pca_2d(features, *, rows: int = 1 << 15) -> np.ndarray:
  """[N, 2] float32: the rows of `features` [N, d] on their first two principal
  axes (centred; module docstring). d = 1 gives a second column of zeros."""
  if getattr(features, "ndim", None) != 2 or features.shape[0] < 1:
    raise InputError("features must be a 2-D array [N, d] with N >= 1, got shape "
                     f"{getattr(features, 'shape', None)}.", field="features")
  n, d = features.shape
  total = np.zeros(d)
  for s in range(0, n, rows):
    total += np.asarray(features[s:s + rows], np.float64).sum(0)
  mean = total / n
  cov = np.zeros((d, d))
  for s in range(0, n, rows):
    b = np.asarray(features[s:s + rows], np.float64) - mean
    cov += b.T @ b
  if not np.isfinite(cov).all():
    raise InputError("features hold NaN or inf; embed the pool again.",
                     field="features")
  _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
  axes = vecs[:, ::-1][:, :2]
  if axes.shape[1] < 2:
    axes = np.concatenate([axes, np.zeros((d, 2 - axes.shape[1]))], axis=1)
  big = np.argmax(np.abs(axes), axis=0)
  axes = axes * np.where(axes[big, [0, 1]] < 0, -1.0, 1.0)
  out = np.empty((n, 2), np.float32)
  for s in range(0, n, rows):
    out[s:s + rows] = (np.asarray(features[s:s + rows], np.float64) - mean) @ axes
  return out


def require(method: str):
  """The package `method` ("umap", "pacmap") needs, imported; InputError naming
  it when it is not installed."""
  module, package = _PACKAGES[method]
  try:
    return __import__(module)
  except ImportError:
    raise InputError(f"projection {method!r} needs the package {package}: pip "
                     f"install {package} (or pip install \".[map]\"); pca needs "
                     "nothing.", field="projection") from None


def project(features, method: str = "pca", *, seed: int = 0) -> np.ndarray:
  """[N, 2] float32 map of the rows of `features` by `method` (module docstring):
  "pca" (`pca_2d`), "umap" or "pacmap" (optional packages, refused by name
  when missing)."""
  if method not in PROJECTIONS:
    raise InputError(f"projection must be one of {', '.join(PROJECTIONS)}, got "
                     f"{method!r}.", field="projection")
  if method == "pca":
    return pca_2d(features)
  lib = require(method)
  x = np.asarray(features, np.float32)
  if method == "umap":
    model = lib.UMAP(n_components=2, random_state=int(seed))
  else:
    model = lib.PaCMAP(n_components=2, random_state=int(seed))
  return np.asarray(model.fit_transform(x), np.float32)
