"""Plots of a sweep's cells (PNG; matplotlib imported only when one is drawn).

- `accuracy_vs_budget`: ACC_t against the budget for one dataset and pool, one
  line per method (mean over seeds, +- std as a band), before and after
  balancing side by side.
- `class_counts`: labeled images per class chosen by one method before and after
  balancing, classes sorted by their size in the pool (the imbalance the
  balancing step corrects, method guide §4).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from jaxal import _plotting
from jaxal.experiments import sweep

PlotsUnavailable = _plotting.PlotsUnavailable  # what runner catches


def accuracy_vs_budget(rows: Sequence[dict], dataset: str, pool: str, target: str,
                       methods: Sequence[str], path: str,
                       ensemble: bool = False) -> Optional[str]:
  """Writes the ACC_t-against-budget figure to `path`; None if no cell matches."""
  plt = _plotting.pyplot()
  sel = [r for r in rows if r["dataset"] == dataset and r["pool"] == pool
         and r["target"] == target and bool(int(r["ensemble"])) == ensemble
         and _papers(r)]
  if not any(r["method"] != sweep.FULL for r in sel):
    return None
  fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
  full = [float(r["acc_t"]) for r in sel if r["method"] == sweep.FULL]
  handles = {}
  for ax, bal in zip(axes, (False, True)):
    for method in methods:
      pts = {}
      for r in sel:
        if r["method"] == method and bool(int(r["balancing"])) == bal:
          pts.setdefault(int(r["budget"]), []).append(float(r["acc_t"]))
      if not pts:
        continue
      b = sorted(pts)
      mean = np.array([np.mean(pts[x]) for x in b])
      std = np.array([np.std(pts[x]) for x in b])
      (line,) = ax.plot(b, mean, marker="o", label=method)
      handles.setdefault(method, line)
      if any(len(pts[x]) > 1 for x in b):
        ax.fill_between(b, mean - std, mean + std, alpha=0.15, color=line.get_color())
    if not ax.lines:
      ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center",
              color="gray")
    if full:
      handles["Full"] = ax.axhline(full[0], color="black", linestyle="--",
                                   linewidth=1, label="Full")
    ax.set_title(f"{'after' if bal else 'before'} balancing")
    ax.set_xlabel("budget b")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("ACC_t (%)")
  fig.legend(list(handles.values()), list(handles), loc="lower center",
             ncol=min(len(handles), 5), fontsize=8)
  fig.suptitle(f"{dataset}, {pool} pool, {target} target"
               + (", +ens" if ensemble else ""))
  return _plotting.save(fig, plt, path)  # its tight_layout leaves room for the legend


def _papers(r) -> bool:
  """Whether a cell is one of the paper's setting: selected on M_S's outputs,
  balanced (if at all) by the paper's rule; the plots draw these only, not
  Tables 14-16's [SSL], [ZS] or +guess cells beside them."""
  return (r.get("features") or "source") == "source" and not int(r.get("guided") or 0)


def class_counts(results: Sequence[dict], dataset: str, pool: str, target: str,
                 method: str, budget: int, path: str,
                 seed: Optional[int] = None) -> Optional[str]:
  """Writes the per-class labeled counts figure (from the cells' JSON results,
  which hold `class_counts` and `pool_counts`); None if a side is missing."""
  plt = _plotting.pyplot()

  def find(bal):
    for r in results:
      if (r["dataset"], r["pool"], r["target"], r["method"], int(r["budget"]),
          bool(int(r["balancing"])), bool(int(r["ensemble"]))) == (
              dataset, pool, target, method, budget, bal, False) and (
                  seed is None or int(r["seed"]) == seed) and _papers(r):
        return r
    return None

  before, after = find(False), find(True)
  if before is None or after is None:
    return None
  pool_counts = np.asarray(before["pool_counts"])
  order = np.argsort(-pool_counts, kind="stable")
  x = np.arange(len(order))
  fig, ax = plt.subplots(figsize=(10, 4))
  ax.bar(x - 0.2, np.asarray(before["class_counts"])[order], 0.4,
         label=f"before balancing (ir {before['imbalance_ratio']:.3f})")
  ax.bar(x + 0.2, np.asarray(after["class_counts"])[order], 0.4,
         label=f"after balancing (ir {after['imbalance_ratio']:.3f})")
  ax2 = ax.twinx()
  ax2.plot(x, pool_counts[order], color="gray", linewidth=1, label="pool size")
  ax2.set_ylabel("images in the pool")
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.set_xlabel("target classes, largest in the pool first")
  ax.set_ylabel("labeled images")
  ax.legend(loc="upper right", fontsize=8)
  ax.set_title(f"{method}, b={budget}: labeled images per class ({dataset}, {pool})")
  return _plotting.save(fig, plt, path)
