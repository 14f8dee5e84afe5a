"""The balancing step run live while annotators answer (main paper section
3.3, method guide §4).

`balancing.balanced_select` over the selection's acquisition ranking runs in a
background thread whose oracle waits until every image of the batch it asks
about has an answer. So the batches offered to annotators who answer like an
oracle are exactly `balanced_select`'s with that oracle and
`batch_size=batch`, the sequence `jaxal balance` replays from a labels file.

Start/stop protocol: `start` runs the thread; `restart` (an undo of an answer
whose batch was already used) makes the running `balanced_select` stop at its
next question and replay from the answers kept, which gives the same batches up
to the undone answer's; `stop` ends the thread the same way. A generation
counter tells the oracle which run it serves: a question from an older run
raises `_Restart` out of `balanced_select`.
"""

from __future__ import annotations

import threading
from typing import Callable, Mapping, Optional

import numpy as np

from jaxal import balancing
from jaxal.cli.label_page.config import Setup


class _Restart(Exception):
  """Raised in the oracle when its run of the balancing step is superseded."""


class Replay:
  """`balanced_select` in a background thread, its oracle waiting on answers.

  Every method and attribute but `start` is used with `cond` held; the thread
  takes `cond` itself around everything but `balanced_select`'s arithmetic.
  The callbacks run in the thread with `cond` held.

  Args:
    setup: the selection's ranking, features, budget and flags.
    cond: the labeling session's Condition; notified when a batch is offered
      or the step finishes or fails, waited on for answers.
    answers: pool index -> label of the answers kept (read under `cond`).
    on_offer: `on_offer(batch, before)` when a batch is offered, before it is
      shown; `before` is the number of answers the step used before it.
    on_used: called when the step takes a batch's answers.
    on_finish: `on_finish(chosen)` when the budget is spent.
    log: where the step's failure is reported.

  Attributes:
    batches: the batches offered in this run, in order.
    batch: the batch whose answers the oracle waits for, or None while the
      step chooses the next.
    mode: what chose the current batch: "acquisition" or "balancing" (Eq. 9's
      switch, as `balanced_select` evaluates it), or "direct" (DIRECT's rounds,
      `setup.strategy`, run in place of the balancing step).
    finished: the images selected once the budget is spent, else None.
    error: the step's failure ("Type: message"), else None.
  """

  def __init__(self, setup: Setup, cond: threading.Condition,
               answers: Callable[[], Mapping[int, str]], *,
               on_offer: Callable[[list[int], int], None],
               on_used: Callable[[], None],
               on_finish: Callable[[list[int]], None],
               log: Callable[[str], None] = print):
    self._setup, self._cond, self._answers = setup, cond, answers
    self._on_offer, self._on_used, self._on_finish = on_offer, on_used, on_finish
    self._log = log
    self._generation = 0
    self._stopped = False
    self.batches: list[list[int]] = []
    self._position: dict[int, tuple[int, int]] = {}  # image -> (batch, rank)
    self._used = np.zeros(len(setup.classes), np.int64)  # labels the step took
    self.batch: Optional[list[int]] = None
    self.mode = "acquisition"
    self.finished: Optional[list[int]] = None
    self.error: Optional[str] = None
    self._thread = threading.Thread(target=self._run, name="jaxal-balancing",
                                    daemon=True)

  # ------------------------------------------------------------ protocol
  def start(self) -> None:
    """Starts the balancing thread (without `cond` held)."""
    self._thread.start()

  def restart(self) -> None:
    """Makes the thread replay the balancing step from the answers kept."""
    self._generation += 1
    self._cond.notify_all()

  def stop(self) -> None:
    """Makes the thread end at its next question (or now, when it waits)."""
    self._stopped = True
    self.restart()

  def reopen(self, i: int) -> None:
    """Takes image `i`'s answer back from the step: a replay when its batch was
    already used, nothing when the oracle still waits on it (or never saw it)."""
    k = self._position.get(i, (None,))[0]
    current = self.batch is not None and i in self.batch
    if not current and k is not None:
      self.restart()

  # ---------------------------------------------------------------- reads
  def knows(self, i: int) -> bool:
    """Whether image `i` was offered by this run of the step (not a search's)."""
    return i in self._position

  def position(self, i: int) -> tuple[int, int]:
    """(batch number from 0, rank from 1) of offered image `i` in this run."""
    return self._position[i]

  def answered_after(self, i: int) -> list[int]:
    """The answered images of the batches after `i`'s: the step chose those
    batches from `i`'s answer."""
    k = self._position.get(i, (None,))[0]
    if k is None:
      return []
    have = self._answers()
    return [j for b in self.batches[k + 1:] for j in b if j in have]

  # --------------------------------------------------------------- thread
  def _run(self) -> None:
    s = self._setup
    while True:
      with self._cond:
        if self._stopped:
          return
        gen = self._generation
        self._reset()
      try:
        oracle = lambda idx, gen=gen: self._oracle(idx, gen)  # noqa: E731
        if s.strategy is not None:  # DIRECT's rounds (`direct_rounds`)
          chosen = s.strategy(oracle)
        else:
          chosen = balancing.balanced_select(
              s.ranking, s.pool.features, oracle, s.budget, len(s.classes),
              rule=s.rule, majority_distance=s.majority_distance,
              batch_size=s.batch_size, among=s.among, guesses=s.guesses,
              **({} if s.guesses is None else {"guess_weight": s.guess_weight}))
      except _Restart:
        continue
      except Exception as e:  # pylint: disable=broad-except
        with self._cond:
          self.error = f"{type(e).__name__}: {e}"
          self._cond.notify_all()
        self._log(f"label: the balancing step failed: {self.error}")
        return
      with self._cond:
        if gen != self._generation:
          continue
        self.finished = [int(i) for i in chosen]
        self._on_finish(self.finished)
        self._cond.notify_all()
        while gen == self._generation:  # until an undo reopens a batch
          self._cond.wait()

  def _reset(self) -> None:
    self.batches, self.batch, self.finished = [], None, None
    self._position = {}
    self._used[:] = 0

  def _oracle(self, idx: np.ndarray, gen: int) -> np.ndarray:
    idx = [int(i) for i in idx]
    with self._cond:
      if gen != self._generation:
        raise _Restart()
      self._offer(idx)
      while True:
        if gen != self._generation:
          raise _Restart()
        have = self._answers()
        if all(i in have for i in idx):
          self.batch = None  # being consumed: the next comes from these answers
          y = np.asarray([self._setup.class_id[have[i]] for i in idx], np.int64)
          np.add.at(self._used, y, 1)
          self._on_used()
          return y
        self._cond.wait()

  def _offer(self, idx: list[int]) -> None:
    """Makes `idx` the current batch."""
    before = int(self._used.sum())  # every earlier batch is answered and used
    self._on_offer(idx, before)
    for j, i in enumerate(idx):
      self._position[i] = (len(self.batches), before + j + 1)
    self.batches.append(idx)
    self.batch = idx
    if self._setup.strategy is not None:
      self.mode = "direct"
    else:
      self.mode = "balancing" if balancing.switch_to_balancing(
          self._used, self._setup.budget - before) else "acquisition"
    self._cond.notify_all()

