"""The paper's tables from a sweep's cells: markdown, CSV and LaTeX.

Layout as in the supplement: one row per method (and "+ens" variant), columns
dataset x budget, the Full row, and the summary last: G_AL for accuracy tables
(`metrics.global_score`), Average for classes found and imbalance ratio (Tables 4,
5, 10, 11). Stochastic methods show mean +- standard deviation over seeds. The
best value of each column is marked (bold; highest accuracy and classes found,
lowest imbalance ratio). With `paper=True` the supplement's published number
stands beside ours in brackets wherever it has one (`jaxal.experiments.paper`).

Tables (method guide §6; main-paper Tables 2-5 through the rows 6 and 7 copy):
2/3 ACC_t on the imbalanced pools before/after balancing; 4/5 classes found and
imbalance ratio there; 6/7 as 2/3 with "+ens"; 8/9 ACC_t on the balanced subsets;
10/11 classes found and imbalance ratio on them; 12 SVM against fine-tuning.
Beyond the paper, 13 sets the cold-start functions that followed it (TypiClust,
ProbCover, MaxHerding) beside random, the paper's two best and core-set, each
before and after the balancing step ("+bal" rows), with ACC_t, classes found and
imbalance ratio in one table. 14 asks the same in the cold-start functions' own
setting: random, core-set and the cold-start functions select (and the
balancing step balances) on the features of SimCLR pretrained on each pool
("[SSL]" rows, `jaxal.models.simclr`) beside every method on M_S's, and each
selection is scored by the SVM on M_S's features and on SimCLR's. 15 is 14's
layout over rounds (`jaxal.rounds`, the balancing step applied in each round),
with the methods that read the target model between rounds (UHerding, DropQuery,
DIRECT; DIRECT labels as it selects and has no "+bal" row). 16 sets the
paper's functions on M_S's source-class probabilities beside the same functions
on the zero-shot target-class probabilities of the class names ("[ZS]" rows,
`jaxal.zeroshot`), each before balancing, after the paper's balancing step
("+bal") and after the step led by the zero-shot guesses ("+guess",
`jaxal.guesses`).
"""

from __future__ import annotations

import dataclasses
import io as _io
import csv
from typing import Mapping, NamedTuple, Optional, Sequence

import numpy as np

from jaxal import metrics
from jaxal.experiments import paper, sweep


@dataclasses.dataclass(frozen=True)
class TableSpec:
  """What one of the paper's tables shows: its pool, statistic, rows and columns."""
  number: int
  caption: str
  pool: str
  balancing: tuple  # which balancing settings have rows ("+bal" when both do)
  ensemble: tuple  # which ensemble settings have rows
  stats: tuple  # ("acc_t",), ("classes_found", "imbalance_ratio") or all three
  compare_targets: bool = False  # Table 12: columns dataset:target
  # Table 14: the feature spaces rows select from ("source": M_S, "ssl": SimCLR
  # on the pool), and the targets every dataset is shown with, as columns
  # dataset:target (the SVM on M_S's features and on SimCLR's), with G_AL.
  features: tuple = ("source",)
  fixed_targets: tuple = ()
  in_rounds: bool = False  # Table 15: the method cells select in rounds (>= 2)
  # Table 16: which balancing steps the balanced rows take: the paper's rule
  # (False) and the one led by zero-shot guesses (True, "+guess" rows).
  guided: tuple = (False,)

  @property
  def summary(self) -> Optional[str]:
    """The summary column's name ("G_AL", "Average" or both), or None (Table 12)."""
    if self.compare_targets:
      return None
    if self.fixed_targets:  # one G_AL per target, each over its own columns
      return f"G_AL ({' / '.join(self.fixed_targets)}) / Average"
    if self.stats == _ALL:
      return "G_AL / Average"
    return "G_AL" if self.stats == ("acc_t",) else "Average"

  @property
  def both_balancing(self) -> bool:
    """Rows before and after balancing in one table (Table 13)."""
    return len(self.balancing) > 1

  @property
  def zeroshot(self) -> bool:
    """Whether the table needs zero-shot probabilities (Table 16)."""
    return "zeroshot" in self.features or True in self.guided


_ACC, _CLS = ("acc_t",), ("classes_found", "imbalance_ratio")
_ALL = _ACC + _CLS
SPECS = {s.number: s for s in (
    TableSpec(2, "ACC_t, imbalanced pools, before balancing", "imbalanced", (False,),
              (False,), _ACC),
    TableSpec(3, "ACC_t, imbalanced pools, after balancing", "imbalanced", (True,),
              (False,), _ACC),
    TableSpec(4, "Classes found and imbalance ratio, imbalanced pools, before "
              "balancing", "imbalanced", (False,), (False,), _CLS),
    TableSpec(5, "Classes found and imbalance ratio, imbalanced pools, after "
              "balancing", "imbalanced", (True,), (False,), _CLS),
    TableSpec(6, "ACC_t with the snapshot ensemble (+ens), imbalanced pools, before "
              "balancing", "imbalanced", (False,), (False, True), _ACC),
    TableSpec(7, "ACC_t with the snapshot ensemble (+ens), imbalanced pools, after "
              "balancing", "imbalanced", (True,), (False, True), _ACC),
    TableSpec(8, "ACC_t, balanced subsets, before balancing", "balanced", (False,),
              (False,), _ACC),
    TableSpec(9, "ACC_t, balanced subsets, after balancing", "balanced", (True,),
              (False,), _ACC),
    TableSpec(10, "Classes found and imbalance ratio, balanced subsets, before "
              "balancing", "balanced", (False,), (False,), _CLS),
    TableSpec(11, "Classes found and imbalance ratio, balanced subsets, after "
              "balancing", "balanced", (True,), (False,), _CLS),
    TableSpec(12, "ACC_t of the SVM and of fine-tuning, imbalanced pools, before "
              "balancing", "imbalanced", (False,), (False,), _ACC,
              compare_targets=True),
    TableSpec(13, "Beyond the paper: cold-start functions (TypiClust, ProbCover, "
              "MaxHerding) against the paper's, imbalanced pools, before and after "
              "(+bal) balancing", "imbalanced", (False, True), (False,), _ALL),
    TableSpec(14, "Beyond the paper: selection on SimCLR features of each pool "
              "([SSL] rows) against M_S's, imbalanced pools, before and after "
              "(+bal) balancing; columns: the SVM target on M_S's features (svm) "
              "and on SimCLR's (svm_ssl)", "imbalanced", (False, True), (False,),
              _ALL, features=("source", "ssl"), fixed_targets=("svm", "svm_ssl")),
    TableSpec(15, "Beyond the paper: selection over rounds, the target model "
              "retrained between them: the paper's functions, the cold-start "
              "functions, UHerding, DropQuery and DIRECT, on M_S's features and "
              "SimCLR's ([SSL] rows), imbalanced pools, before and after (+bal) "
              "balancing; columns: the SVM target on M_S's features (svm) and on "
              "SimCLR's (svm_ssl)", "imbalanced", (False, True), (False,), _ALL,
              features=("source", "ssl"), fixed_targets=("svm", "svm_ssl"),
              in_rounds=True),
    TableSpec(16, "Beyond the paper: the paper's functions on M_S's source-class "
              "probabilities and on the zero-shot target-class probabilities of "
              "the class names ([ZS] rows), imbalanced pools, before balancing, "
              "after the paper's balancing step (+bal) and after the step led by "
              "the zero-shot guesses (+guess)", "imbalanced", (False, True),
              (False,), _ALL, features=("source", "zeroshot"), guided=(False, True)),
)}
_DIGITS = {"acc_t": 2, "classes_found": 1, "imbalance_ratio": 3}
_LOWER_IS_BETTER = {"imbalance_ratio"}


@dataclasses.dataclass
class Entry:
  """One cell of a rendered table: mean and std over seeds, and how many there were."""
  mean: Optional[float]
  std: Optional[float]
  n: int
  paper: Optional[float] = None
  best: bool = False


class Column(NamedTuple):
  """A column of a table: one dataset (and target) at one budget."""
  label: str  # "dataset budget", or "dataset:target budget" in Table 12
  group: str  # the column group: the paper's column name (`paper.published`)
  dataset: str
  target: str
  budget: int


class Row(NamedTuple):
  """A row of a table: one method, with or without +ens and the balancing step."""
  label: str  # method, with " +ens" for ensemble rows, " +bal" in Table 13; "Full"
  method: str
  ensemble: bool
  stat: str
  entries: list  # one Entry per column
  # G_AL or Average; in Table 14 the G_AL of each target (`fixed_targets`), a tuple
  summary: Optional[float]
  paper_summary: Optional[float]
  balancing: bool = False
  features: str = "source"
  guided: bool = False


@dataclasses.dataclass
class Table:
  """A rendered table: its columns and rows (the Full rows last)."""
  spec: TableSpec
  columns: list  # [Column]
  rows: list  # [Row]

  def markdown(self) -> str:
    """The table in Markdown, with the paper's numbers in brackets where given."""
    head = ["method", "stat"] + [c.label for c in self.columns]
    if self.spec.summary:
      head.append(self.spec.summary)
    out = [f"Table {self.spec.number}. {self.spec.caption}.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in self.rows:
      cells = [r.label, r.stat] + [_text(e, r.stat, bold="**%s**") for e in r.entries]
      if self.spec.summary:
        cells.append(_summary_text(r.summary, r.paper_summary, r.stat))
      out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("Mean +- standard deviation over seeds where a method is stochastic; "
               "[x]: the paper's published value; bold: best of the column.")
    return "\n".join(out) + "\n"

  def latex(self) -> str:
    """The table as a LaTeX `tabular` (booktabs)."""
    n = len(self.columns) + (1 if self.spec.summary else 0)
    out = [r"% needs \usepackage{booktabs}", r"\begin{table}", r"\centering", r"\small",
           r"\begin{tabular}{ll" + "r" * n + "}", r"\toprule"]
    head = ["method", "stat"] + [_tex_escape(c.label) for c in self.columns]
    if self.spec.summary:
      head.append(_tex_escape(self.spec.summary).replace(r"G\_AL", r"$G_{AL}$"))
    out.append(" & ".join(head) + r" \\")
    out.append(r"\midrule")
    for r in self.rows:
      cells = [_tex_escape(r.label), _tex_escape(r.stat)] + [
          _text(e, r.stat, bold=r"\textbf{%s}", pm=r"$\pm$") for e in r.entries]
      if self.spec.summary:
        cells.append(_summary_text(r.summary, r.paper_summary, r.stat))
      out.append(" & ".join(cells) + r" \\")
    out = [line.replace("–", "--") for line in out]
    out += [r"\bottomrule", r"\end{tabular}",
            rf"\caption{{Table {self.spec.number}: {_tex_escape(self.spec.caption)}. "
            r"Mean $\pm$ std over seeds for stochastic methods; [x]: published value; "
            r"bold: best of the column.}", r"\end{table}"]
    return "\n".join(out) + "\n"

  def csv(self) -> str:
    """Long form: one line per (row, column), plus the summaries."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    both = self.spec.both_balancing  # a balancing column only where rows differ by it
    spaces = len(self.spec.features) > 1  # and a features column likewise
    guided = len(self.spec.guided) > 1  # and a guided one
    w.writerow(["table", "method", "ensemble", "stat", "column", "dataset", "target",
                "budget", "mean", "std", "n", "paper", "best"]
               + (["balancing"] if both else []) + (["features"] if spaces else [])
               + (["guided"] if guided else []))
    for r in self.rows:
      extra = (([int(r.balancing)] if both else []) + ([r.features] if spaces else [])
               + ([int(r.guided)] if guided else []))
      for c, e in zip(self.columns, r.entries):
        w.writerow([self.spec.number, r.method, int(r.ensemble), r.stat, c.label,
                    c.dataset, c.target, c.budget, _num(e.mean), _num(e.std), e.n,
                    _num(e.paper), int(e.best)] + extra)
      if self.spec.summary and isinstance(r.summary, tuple):
        for t, v in zip(self.spec.fixed_targets, r.summary):
          w.writerow([self.spec.number, r.method, int(r.ensemble), r.stat,
                      f"G_AL:{t}", "", t, "", _num(v), "", "", "", 0] + extra)
      elif self.spec.summary:
        w.writerow([self.spec.number, r.method, int(r.ensemble), r.stat,
                    self.spec.summary, "", "", "", _num(r.summary), "", "",
                    _num(r.paper_summary), 0] + extra)
    return buf.getvalue()


def _num(v):
  return "" if v is None else f"{v:.6g}"


def _fmt(v: float, stat: str) -> str:
  return f"{v:.{_DIGITS[stat]}f}"


def _text(e: Entry, stat: str, *, bold: str, pm: str = "±") -> str:
  if e.mean is None:
    s = "–"
  else:
    s = _fmt(e.mean, stat)
    if e.n > 1:
      s += f" {pm} {_fmt(e.std, stat)}"
    if e.best:
      s = bold % s
  if e.paper is not None:
    s += f" [{_fmt(e.paper, stat)}]"
  return s


def _summary_text(v, p, stat) -> str:
  if isinstance(v, tuple):
    return " / ".join(_summary_text(x, None, stat) for x in v)
  s = "–" if v is None else (f"{v:.3f}" if stat == "acc_t" else _fmt(v, stat))
  if p is not None:
    s += f" [{p:.3f}]" if stat == "acc_t" else f" [{_fmt(p, stat)}]"
  return s


def _tex_escape(s: str) -> str:
  return s.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


_FEATURE_TAGS = {"source": "", "ssl": " [SSL]", "zeroshot": " [ZS]"}


def _label(method: str, ensemble: bool, balancing: bool = False,
           features: str = "source", guided: bool = False) -> str:
  return (method + _FEATURE_TAGS[features] + (" +ens" if ensemble else "")
          + (" +guess" if guided else " +bal" if balancing else ""))


def build(number: int, rows: Sequence[Mapping], *, datasets: Sequence[str],
          budgets: Sequence[int], methods: Sequence[str],
          targets: Mapping[str, Sequence[str]], published: bool = False) -> Table:
  """Table `number` from cells.csv rows (`sweep.read_csv` or `ResultStore.all`).

  Args:
    number: a key of `SPECS`: 2-12 the paper's tables, 13-16 beyond it.
    rows: one per cell and seed.
    datasets, budgets, methods: what the table shows, in order.
    targets: dataset -> its target models; tables 2-11 use the first, Table 12
      shows every one as its own column group.
    published: put the supplement's numbers beside ours (real data only: they
      describe the paper's datasets).
  """
  spec = SPECS[number]
  if spec.fixed_targets:
    groups = [(f"{d}:{t}", d, t) for d in datasets for t in spec.fixed_targets]
  else:
    groups = [(f"{d}:{t}" if spec.compare_targets else d, d, t)
              for d in datasets
              for t in (targets[d] if spec.compare_targets else targets[d][:1])]
  columns = [Column(f"{g} {b}", g, d, t, int(b)) for g, d, t in groups
             for b in budgets]

  index: dict = {}
  for r in rows:
    key = (r["dataset"], r["pool"], r["target"], int(r["budget"]), r["method"],
           bool(int(r["balancing"])), bool(int(r["ensemble"])),
           r.get("features") or "source", bool(int(r.get("guided") or 0)))
    index.setdefault(key, []).append(r)

  def entry(d, t, b, method, bal, ens, stat, group, features="source", guided=False):
    found = index.get((d, spec.pool, t, b, method, bal, ens, features, guided), [])
    vals = [float(r[stat]) for r in found if r.get(stat) not in (None, "")]
    pub = None
    if published:
      pub = paper.published(number, method, ensemble=ens, stat=stat, column=group,
                            budget=b if method != sweep.FULL else None)
    if not vals:
      return Entry(None, None, 0, pub)
    return Entry(float(np.mean(vals)), float(np.std(vals)), len(vals), pub)

  out_rows = []
  fulls = {}
  for stat in spec.stats:
    fulls[stat] = [entry(d, t, 0, sweep.FULL, False, False, stat, g)
                   for g, d, t in groups]
  for method in methods:
    for feats in spec.features:
      for ens in spec.ensemble:
        if (ens and method == "random") or not sweep.selects_from(method, feats, ens):
          continue
        for bal, guided in [(b, g) for b in spec.balancing for g in spec.guided
                            if b or not g]:
          for stat in spec.stats:
            entries = [entry(c.dataset, c.target, c.budget, method, bal, ens, stat,
                             c.group, feats, guided) for c in columns]
            if spec.fixed_targets and stat == "acc_t":
              summ = tuple(_summary(
                  spec, stat, [e for c, e in zip(columns, entries) if c.target == t],
                  [f for (_, _, gt), f in zip(groups, fulls[stat]) if gt == t],
                  len(budgets)) for t in spec.fixed_targets)
            else:
              summ = _summary(spec, stat, entries, fulls[stat], len(budgets))
            psumm = (paper.published_summary(number, method, ensemble=ens, stat=stat)
                     if published and spec.summary and feats == "source" else None)
            out_rows.append(Row(_label(method, ens, spec.both_balancing and bal,
                                       feats, guided), method, ens, stat, entries,
                                summ, psumm, bal, feats, guided))
  _mark_best(out_rows)
  for stat in spec.stats:  # Full: one value per group, shown under each budget
    entries = [dataclasses.replace(fulls[stat][i // len(budgets)])
               for i in range(len(columns))]
    out_rows.append(Row("Full", sweep.FULL, False, stat, entries, None, None))
  return Table(spec, columns, out_rows)


def _summary(spec, stat, entries, fulls, num_budgets):
  if spec.summary is None or any(e.mean is None for e in entries):
    return None
  vals = np.array([e.mean for e in entries])
  if stat == "acc_t":
    full = [f.mean for f in fulls]
    if any(f is None or f >= 100 for f in full):
      return None
    return metrics.global_score(vals.reshape(len(full), num_budgets), full)
  return float(vals.mean())


def _mark_best(rows):
  """Marks the best entry of each column among the method rows of each stat."""
  for stat in {r.stat for r in rows}:
    for column in zip(*(r.entries for r in rows if r.stat == stat)):
      present = [e for e in column if e.mean is not None]
      if len(present) < 2:  # nothing to compare with (yet)
        continue
      pick = min if stat in _LOWER_IS_BETTER else max
      best = pick(e.mean for e in present)
      for e in present:
        e.best = e.mean == best
