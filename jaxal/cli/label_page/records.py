"""The labeling page's records in the work directory, written as `jaxal
balance` writes them (method guide §4): balance.json (every batch offered, in
order, then the finished selection) and to_label.csv (the images waiting for an
answer), so `balance`, `train` and `report` read the page's work as their own.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from jaxal.cli import select_balance
from jaxal.cli.label_page import direct_rounds
from jaxal.cli.label_page.config import Setup
from jaxal.cli.workdir import Workdir


class BalanceRecord:
  """balance.json and to_label.csv of one selection, and the images offered.

  Not thread-safe by itself: the labeling session calls it under its lock.

  Attributes:
    offered: pool indices ever offered for labeling (the selection's picks and
      every batch recorded), the only images an answer may name.
  """

  def __init__(self, wd: Workdir, setup: Setup):
    self._wd, self._setup = wd, setup
    self._state = wd.read("balance.json", {"batches": []})
    self._recorded = {tuple(b) for b in self._state["batches"]}
    self.offered = set(wd.offered())

  def add_batch(self, idx: Sequence[int]) -> None:
    """Records batch `idx` as offered; a batch recorded before (a replay after
    an undo, or a restart) is not recorded twice."""
    idx = list(idx)
    if tuple(idx) not in self._recorded:
      self._state["batches"].append(idx)
      self._recorded.add(tuple(idx))
      self._wd.write("balance.json", self._state)
    self.offered.update(idx)

  def offer(self, idx: list[int], before: int, answers: Mapping[int, str]) -> None:
    """Records batch `idx` (`add_batch`), and its images without an answer in
    to_label.csv, ranked after the `before` images the balancing step used."""
    s = self._setup
    self.add_batch(idx)
    self.to_label([(i, before + j + 1, "", s.guess_text[i], s.guess_name[i])
                   for j, i in enumerate(idx) if i not in answers])

  def finish(self, chosen: list[int]) -> None:
    """Records the finished selection (balance.json's "done")."""
    if self._state.get("done") != chosen:
      self._state["done"] = chosen
      self._wd.write("balance.json", self._state)

  def to_label(self, rows: list[tuple]) -> None:
    """Writes to_label.csv: (pool index, rank, score, guess, guess's name) rows."""
    select_balance.write_to_label(self._wd, self._setup.pool, rows)


class RoundsRecord(BalanceRecord):
  """selection.json and to_label.csv of DIRECT's rounds, as `jaxal select`
  writes them: each batch asked about in "asked", the finished rounds in
  "picks" (so `select`, `train` and `report` read the page's work). The file is
  read again before each write, so what `select` recorded meanwhile is kept."""

  def __init__(self, wd: Workdir, setup: Setup):  # pylint: disable=super-init-not-called
    self._wd, self._setup = wd, setup
    self._recorded = {tuple(b) for b in self._read().get("asked", [])}
    self.offered = set(wd.offered())

  def _read(self) -> dict:
    return self._wd.read("selection.json", {"picks": []})

  def add_batch(self, idx: Sequence[int]) -> None:
    idx = [int(i) for i in idx]
    if tuple(idx) not in self._recorded and not set(idx) <= self.offered:
      # (round 1's images are recorded as its picks already)
      state = self._read()
      if idx not in state.get("asked", []):
        self._wd.write("selection.json",
                       {**state, "asked": state.get("asked", []) + [idx]})
      self._recorded.add(tuple(idx))
    self.offered.update(idx)

  def finish(self, chosen: list[int]) -> None:
    """Records the rounds' images as `select` does (selection.json's picks;
    the rounds the page chose get blank scores and guesses in to_label.csv's
    columns, as DIRECT has none)."""
    state = self._read()
    picks = direct_rounds.split(chosen, dict(self._setup.selection))
    if state.get("picks") == picks:
      return
    state["picks"] = picks
    for key in ("scores", "predicted"):
      have = list(state.get(key, []))[:len(picks)]
      state[key] = have + [[""] * len(r) for r in picks[len(have):]]
    self._wd.write("selection.json", state)
