"""Writes tests/data/skactiveml/*.npz: scikit-activeml 1.0.1's picks on small
fixed pools, for tests/method/test_dropquery.py and test_uherding.py (which need
no scikit-activeml).

  .venv/bin/pip install scikit-activeml==1.0.1
  .venv/bin/python tests/data/make_skactiveml.py

dropquery_*.npz: `DropQuery` with a logistic-regression probe (fit_clf=False);
the dropout masks it drew are recorded from the inputs its classifier sees, and
saved with the probe's (W, b) and the picks. maxherding_*.npz: `MaxHerding`
(rbf, gamma = 1 / h^2), which is UHerding with uniform uncertainty and a given
bandwidth (1.0.1 has no `UHerding`).
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from skactiveml.classifier import SklearnClassifier
from skactiveml.pool import DropQuery, MaxHerding

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skactiveml")


def blobs(seed: int, k: int, per: int, d: int, spread: float):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(k, d)) * spread
  x = np.concatenate([c + rng.normal(size=(per, d)) for c in centers])
  y = np.repeat(np.arange(k), per)
  return x, y


class Recording(SklearnClassifier):
  """Records every input `predict` sees (the undropped pool, then each dropout
  sample)."""

  def predict(self, X, **kwargs):
    self.seen_.append(np.array(X, copy=True))
    return super().predict(X, **kwargs)


def dropquery_case(name, seed, labeled_per_class, budget, samples):
  x, y = blobs(seed, 3, 40, 6, 2.0)
  rng = np.random.default_rng(seed + 100)
  mask = np.zeros(len(x), bool)
  for c in range(3):
    mask[rng.choice(np.flatnonzero(y == c), labeled_per_class, replace=False)] = True
  y_obs = np.where(mask, y, np.nan)
  clf = Recording(LogisticRegression(), classes=[0, 1, 2], random_state=0)
  clf.fit(x, y_obs)
  clf.seen_ = []
  qs = DropQuery(n_dropout_samples=samples, random_state=seed,
                 cluster_algo_dict={"random_state": 0, "n_init": 10})
  picks = qs.query(x, y_obs, clf, fit_clf=False, batch_size=budget)
  cand_rows = np.flatnonzero(~mask)
  drops = np.zeros((samples, len(x), x.shape[1]), bool)
  for m, xd in enumerate(clf.seen_[1:1 + samples]):
    drops[m, cand_rows] = xd == 0
  # DropQuery's own steps again, deterministic given its masks: the
  # disagreement filter and scikit-learn's clustering (random_state=0).
  x_cand = x[cand_rows]
  pred = clf.predict(x_cand)
  flips = sum(clf.predict(xd) != pred for xd in clf.seen_[1:1 + samples])
  rate = flips.astype(float) / samples
  keep = np.argsort(rate)[-max(int((rate > 0.5).sum()), budget):]
  km = KMeans(n_clusters=budget, random_state=0, n_init=10).fit(x_cand[keep])
  np.savez(os.path.join(OUT, f"dropquery_{name}.npz"), features=x, labeled=mask,
           weights=clf.estimator_.coef_.T, bias=clf.estimator_.intercept_,
           drops=drops, picks=np.asarray(picks, np.int64), budget=budget,
           candidates=np.sort(cand_rows[keep]), centers=km.cluster_centers_,
           filled=bool((rate > 0.5).sum() < budget))
  print(name, picks)


def maxherding_case(name, seed, labeled, budget, h):
  x, _ = blobs(seed, 5, 20, 8, 1.0)
  mask = np.zeros(len(x), bool)
  mask[np.random.default_rng(seed).choice(len(x), labeled, replace=False)] = True
  y_obs = np.where(mask, 0.0, np.nan)
  qs = MaxHerding(metric="rbf", metric_dict={"gamma": 1.0 / h ** 2}, random_state=0)
  picks = qs.query(x, y_obs, batch_size=budget)
  np.savez(os.path.join(OUT, f"maxherding_{name}.npz"), features=x, labeled=mask,
           bandwidth=h, picks=np.asarray(picks, np.int64), budget=budget)
  print(name, picks)


if __name__ == "__main__":
  os.makedirs(OUT, exist_ok=True)
  dropquery_case("flips", 0, 3, 3, 5)
  dropquery_case("flips_b4", 1, 2, 4, 3)
  dropquery_case("fill", 2, 30, 20, 5)
  maxherding_case("cold", 0, 0, 6, 0.7)
  maxherding_case("labeled", 1, 4, 6, 0.7)
