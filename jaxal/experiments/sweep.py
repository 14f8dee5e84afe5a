"""Sweeps of the paper's experiments: cells, shards, and their results on disk.

A cell is one configuration of the paper's tables (supplement Tables 6-12,
main-paper Tables 2-5): (dataset, pool, budget, method, balancing on/off,
ensemble on/off, target model, seed). Random and core-set depend on the seed and
are run for every seed; the other methods once. Each dataset also has a Full cell
(the target model on the whole pool, the upper bound of G_AL).

Every finished cell is written on its own, atomically (`jaxal.io`), as
WORKDIR/cells/<key>.json, so

- a killed sweep started again skips what finished and loses at most the cell it
  was in;
- `--shard=i/n` runs cell i, i + n, i + 2n, ... of the sorted list; any number of
  shards, on any number of hosts sharing the workdir, write into it at once
  without coordination, since no two write the same file;
- `ResultStore.write_csv` reads whatever has finished into WORKDIR/cells.csv.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
import json
import os
import platform
import time
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from jaxal import acquisition, io
from jaxal.errors import InputError

TARGETS = ("svm", "finetune", "svm_ssl")  # svm_ssl: the SVM on SimCLR features
# What a cell selects from: M_S's features and source-class probabilities
# ("source"), SimCLR's features ("ssl", Table 14), or M_S's features with the
# zero-shot target-class probabilities of the class names ("zeroshot", Table 16).
FEATURES = ("source", "ssl", "zeroshot")
STOCHASTIC = acquisition.SEEDED  # selection depends on the seed
FULL = "full"
CSV_COLUMNS = ("dataset", "pool", "budget", "method", "balancing", "ensemble",
               "target", "seed", "acc_t", "classes_found", "imbalance_ratio",
               "labeled", "seconds", "rounds", "features", "guided")


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
  """One configuration; `budget` is 0 and `method` "full" for the Full row."""
  dataset: str
  pool: str
  target: str
  budget: int
  method: str
  balancing: bool
  ensemble: bool
  seed: int
  rounds: int = 1  # > 1: iterative selection (`jaxal.rounds`), not the paper's
  # "source": select (and balance) on M_S's features and probabilities; "ssl":
  # on the features of SimCLR pretrained on the pool itself (Table 14);
  # "zeroshot": M_S's features, the class names' zero-shot probabilities.
  features: str = "source"
  # With `balancing`: the balancing step led by the zero-shot guesses until
  # every class has an answer (`jaxal.guesses`), not the paper's rule alone.
  guided: bool = False

  @property
  def key(self) -> str:
    """The cell's unique name, also its result file's name."""
    return (f"{self.dataset}__{self.pool}__{self.target}__b{self.budget}__"
            f"{self.method}__bal{int(self.balancing)}__ens{int(self.ensemble)}__"
            f"s{self.seed}" + (f"__r{self.rounds}" if self.rounds > 1 else "")
            + (f"__f{self.features}" if self.features != "source" else "")
            + ("__guided" if self.guided else ""))

  def as_dict(self) -> dict:
    """The cell's fields as JSON values (booleans as 0/1)."""
    d = dataclasses.asdict(self)
    d["balancing"], d["ensemble"] = int(self.balancing), int(self.ensemble)
    d["guided"] = int(self.guided)
    return d


def selects_from(method: str, features: str, ensemble: bool) -> bool:
  """Whether `method` has cells selecting from `features`: SimCLR's features
  have no probabilities (no uncertainty method, no snapshot ensemble); the
  zero-shot probabilities change only the methods that read probabilities
  (random and core-set would repeat their M_S cells), and come from one model."""
  if features == "ssl":
    return not (ensemble or acquisition.needs_probs(method))
  if features == "zeroshot":
    return not ensemble and acquisition.needs_probs(method)
  return True


def expand(*, datasets: Sequence[str], pool: str, budgets: Sequence[int],
           methods: Sequence[str], balancing: Sequence[bool],
           ensemble: Sequence[bool], targets: Mapping[str, Sequence[str]],
           seeds: Sequence[int], rounds: int = 1,
           features: Sequence[str] = ("source",),
           guided: Sequence[bool] = (False,)) -> list[Cell]:
  """All cells of a table, sorted, with one Full cell per (dataset, target).

  Random selection does not use the source model, so its "+ens" variant is the
  plain one (the supplement copies it) and is not run twice. `rounds` > 1 makes
  the method cells iterative (the Full cell does not select and stays shared).
  `features` lists what methods select from (`selects_from`); `guided`
  whether balanced cells use the paper's rule (False) and/or the guess-led
  step (True, Table 16).
  """
  cells = set()
  for d in datasets:
    for t in targets[d]:
      cells.add(Cell(d, pool, t, 0, FULL, False, False, seeds[0]))
      for b in budgets:
        for m in methods:
          for bal in balancing:
            if bal and m in acquisition.LABELS_WHILE_SELECTING:
              continue  # DIRECT labels as it selects: never re-walked by balancing
            for ens in ensemble:
              if ens and m == "random":
                continue
              for f in features:
                if not selects_from(m, f, ens):
                  continue
                for g in guided:
                  if g and not bal:
                    continue
                  for s in (seeds if m in STOCHASTIC else seeds[:1]):
                    cells.add(Cell(d, pool, t, int(b), m, bool(bal), bool(ens),
                                   int(s), int(rounds), f, bool(g)))
  return sorted(cells)


def parse_shard(text: str) -> tuple[int, int]:
  """"i/n" -> (i, n) with 0 <= i < n."""
  try:
    i, n = (int(v) for v in text.split("/"))
  except ValueError:
    raise InputError(f"shard must look like i/n (e.g. 0/4), got {text!r}.",
                     field="shard") from None
  if not 0 <= i < n:
    raise InputError(f"shard {text!r}: need 0 <= i < n.", field="shard")
  return i, n


def shard(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
  """This shard's share: every count-th cell of the sorted list."""
  return [c for k, c in enumerate(sorted(cells)) if k % count == index]


def environment() -> dict:
  """Package versions and device, recorded with every cell."""
  import jax  # pylint: disable=g-import-not-at-top
  import sklearn  # pylint: disable=g-import-not-at-top
  from jaxal import _xla_cpu  # pylint: disable=g-import-not-at-top
  dev = jax.devices()[0]
  return {"jax": jax.__version__, "numpy": np.__version__,
          "sklearn": sklearn.__version__, "python": platform.python_version(),
          "device": f"{dev.platform}: {dev.device_kind} x {jax.device_count()}",
          "cpu": _xla_cpu.cpu_description()}


class ResultStore:
  """One JSON file per finished cell under WORKDIR/cells (atomic writes)."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.dir = os.path.join(workdir, "cells")

  def path(self, cell: Cell) -> str:
    """The result file of `cell`."""
    return os.path.join(self.dir, cell.key + ".json")

  def done(self, cell: Cell) -> bool:
    """Whether `cell`'s result is saved."""
    return os.path.exists(self.path(cell))

  def write(self, cell: Cell, result: dict) -> None:
    """Saves `cell`'s result with the cell's fields, atomically."""
    io.write_json(self.path(cell), {**cell.as_dict(), **result})

  def read(self, cell: Cell) -> Optional[dict]:
    """`cell`'s saved result, or None."""
    return io.read_json(self.path(cell))

  def all(self) -> list[dict]:
    """Every finished cell (temporary files of writes in progress excluded)."""
    if not os.path.isdir(self.dir):
      return []
    out = []
    for name in sorted(os.listdir(self.dir)):
      if name.endswith(".json") and not name.startswith(".tmp-"):
        with open(os.path.join(self.dir, name)) as f:
          out.append(json.load(f))
    return out

  def write_csv(self, rows: Optional[Iterable[dict]] = None) -> str:
    """Writes WORKDIR/cells.csv (one row per cell and seed) atomically. The
    `features` column is written only when some cell selected from other
    features than M_S's (Tables 14-16), `guided` only when some cell balanced
    with the guesses (Table 16), so that a work directory without such cells
    keeps the cells.csv it had."""
    rows = self.all() if rows is None else list(rows)
    rows = sorted(rows, key=lambda r: tuple(str(r.get(k, _OLD_DEFAULTS.get(k)))
                                            for k in _SORT))
    columns = CSV_COLUMNS
    if all(r.get("features", "source") == "source" for r in rows):
      columns = tuple(c for c in columns if c != "features")
    if not any(int(r.get("guided") or 0) for r in rows):
      columns = tuple(c for c in columns if c != "guided")
    buf = _io.StringIO()
    w = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
      w.writerow({k: _fmt(r.get(k, _OLD_DEFAULTS.get(k))) for k in columns})
    path = os.path.join(self.workdir, "cells.csv")
    io.write_text(path, buf.getvalue())
    return path


# Cells written before `rounds`, `features` and `guided` existed were
# single-shot, on M_S, balanced by the paper's rule.
_OLD_DEFAULTS = {"rounds": 1, "features": "source", "guided": 0}
# cells.csv's row order: the cell's fields (a guided cell after the paper's).
_SORT = CSV_COLUMNS[:8] + ("guided",)


def _fmt(v):
  if isinstance(v, float):
    return f"{v:.6g}"
  return v


def read_csv(path: str) -> list[dict]:
  """Rows of a cells.csv, with numbers parsed."""
  ints = ("budget", "balancing", "ensemble", "seed", "classes_found", "labeled",
          "rounds", "guided")
  floats = ("acc_t", "imbalance_ratio", "seconds")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  for r in rows:
    for k in ints:
      if r.get(k) not in (None, ""):
        r[k] = int(float(r[k]))
    for k in floats:
      if r.get(k) not in (None, ""):
        r[k] = float(r[k])
  return rows


def run(cells: Sequence[Cell], store: ResultStore, compute: Callable[[Cell], dict],
        *, log: Callable[[str], None] = print) -> int:
  """Computes every cell not yet in `store`; returns how many this call computed.

  One line per finished cell with the elapsed time and an estimate of what is
  left from the cells' own rate, by kind of cell (target model, Full or not:
  a Full fine-tuning costs far more than a 40-image one). A kind's first cell
  also pays its compilations, and the run's first cell the source model's
  training, so they are left out of the rate; until every remaining kind has a
  rate the line says "estimating" instead of a number (`_estimate`).
  """
  todo = [c for c in cells if not store.done(c)]
  skipped = len(cells) - len(todo)
  if skipped:
    log(f"{skipped} of {len(cells)} cells already done in {store.workdir}")
  env = environment() if todo else {}
  t0 = time.perf_counter()
  times: dict = {}
  first_kind = None
  computed = 0
  for k, cell in enumerate(todo, 1):
    if store.done(cell):  # another shard or process finished it meanwhile
      continue
    computed += 1
    start = time.perf_counter()
    result = compute(cell)
    result = {**result, "seconds": time.perf_counter() - start, "env": env}
    store.write(cell, result)
    if first_kind is None:
      first_kind = _kind(cell)
    times.setdefault(_kind(cell), []).append(result["seconds"])
    left = _progress(todo[k:], times, first_kind)
    log(f"[{k}/{len(todo)}] {cell.key}: acc_t {result.get('acc_t', float('nan')):.2f} "
        f"classes {result.get('classes_found')} ir "
        f"{result.get('imbalance_ratio', float('nan')):.3f} "
        f"({result['seconds']:.1f} s; elapsed {_hms(time.perf_counter() - t0)}, "
        f"{left})")
  return computed


def _kind(cell: Cell) -> tuple:
  return cell.target, cell.method == FULL


def _estimate(remaining: Sequence[Cell], times: dict,
              first_kind: Optional[tuple] = None) -> tuple[float, int]:
  """(seconds left for the timed cells of `remaining`, how many are untimed).

  `times` maps a kind of cell (`_kind`) to the seconds of its finished cells, in
  order. A kind's rate is the median of its cells after the first, which also
  paid that kind's compilations; with one finished cell, that cell's time,
  except for the run's first kind (`first_kind`), whose first cell also paid
  for training or loading the source model. A cell of a kind without a rate is
  counted as untimed, not guessed from another kind: such a guess was off by 20x
  on a first run (M_S's training counted as every cell's cost).
  """
  rate = {}
  for kind, ts in times.items():
    if len(ts) >= 2:
      rate[kind] = float(np.median(ts[1:]))
    elif len(ts) == 1 and kind != first_kind:
      rate[kind] = float(ts[0])
  total, untimed = 0.0, 0
  for c in remaining:
    kind = _kind(c)
    if kind in rate:
      total += rate[kind]
    else:
      untimed += 1
  return total, untimed


def _progress(remaining: Sequence[Cell], times: dict,
              first_kind: Optional[tuple] = None) -> str:
  """The time-left part of a progress line (`_estimate`, in words)."""
  seconds, untimed = _estimate(remaining, times, first_kind)
  if remaining and untimed == len(remaining):
    return "estimating time left"
  if untimed:
    return f"~{_hms(seconds)} left + {untimed} cells of a kind not yet timed"
  return f"~{_hms(seconds)} left"


def _hms(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
