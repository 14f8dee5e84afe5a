"""The labeling loop behind `jaxal label`: which image each annotator sees next,
their answers, and the balancing step deciding live (main paper section 3.3,
method guide §4).

The order is `jaxal balance`'s: `balancing.balanced_select` over the
selection's acquisition ranking runs in a background thread whose oracle waits
until every image of the batch it asks about has an answer on disk. So the
images shown to an annotator who answers like an oracle are exactly
`balanced_select`'s sequence with that oracle and `batch_size=batch`, and the
work directory stays usable by `jaxal balance`, `train` and `report`: the
batches offered are recorded in balance.json as `balance` records them, and the
answers go to the selection's answer database and labels.csv (`store.py`).

Several annotators share the current batch: each image is leased to one
annotator at a time (`lease_s` seconds, renewed while it is on their screen), so
no image is on two screens at once. A late answer for an image someone else
answered first is kept aside in conflicts.csv and reported; it never replaces
the first. "Skip" hands the image back and shows the annotator the batch's
others first; the balancing step needs every image of a batch before it picks
the next, so skipped images come back when nothing else is left. "Undo" takes
back the annotator's last answer while no later answer depends on it (an answer
in a later batch does: the balancing step chose that batch from it); when the
undone answer's batch was already used, the balancing thread replays from the
answers on disk, which gives the same batches up to that one.

A restart (after a SIGKILL) reads labels.csv and replays the same way, so
nothing acknowledged is lost and labeling resumes where it stopped.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Callable, Optional

import numpy as np

from jaxal import acquisition, balancing, metrics
from jaxal.cli import labels, select_balance, workdir
from jaxal.cli.labeling import store
from jaxal.cli.workdir import Workdir, WorkdirError


class Refused(ValueError):
  """A request the session refuses; `status` is the HTTP status to answer."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class _Restart(Exception):
  """Raised in the balancing thread's oracle when an undo invalidates it."""


class Session:
  """One selection's labeling state, shared by every annotator."""

  def __init__(self, wd: Workdir, *, classes_file: Optional[str], batch: int,
               rule: str = "ratio", majority_distance: str = "nearest",
               lease_s: float = 120.0, clock: Callable[[], float] = time.monotonic,
               log: Callable[[str], None] = print):
    self.wd, self.log, self.clock, self.lease_s = wd, log, clock, float(lease_s)
    self.pool = pool = wd.pool()
    sel = wd.recorded("select")
    if sel is None:
      raise WorkdirError(f"{wd.sel_path} has no selection; pass --method and "
                         "--budget (or run `jaxal select` first).")
    if sel["rounds"] != 1:
      raise WorkdirError("label follows a single-shot selection; this selection "
                         f"has {sel['rounds']} rounds (use `jaxal select --labels`).")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
      raise WorkdirError(f"--batch must be a positive integer, got {batch!r}.")
    if lease_s <= 0:
      raise WorkdirError(f"--lease must be > 0 seconds, got {lease_s!r}.")
    if rule not in balancing.RULES or majority_distance not in \
        balancing.MAJORITY_DISTANCES:
      raise WorkdirError(f"--rule must be one of {balancing.RULES} and "
                         f"--majority_distance one of {balancing.MAJORITY_DISTANCES}.")
    classes = workdir.target_classes(wd, classes_file)
    if classes is None:
      raise WorkdirError("--classes is required: a text file with one target class "
                         "name a line (every class, found or not).")
    self.classes = classes
    self.class_id = {c: k for k, c in enumerate(classes)}
    self.root = wd.recorded("embed")["images"]
    self.index = pool.index
    labels_path = wd.file("labels.csv")
    if os.path.exists(labels_path):  # as every command would read it
      labels.read_labels(labels_path, pool=self.index, classes=classes,
                         offered=wd.offered(), root=self.root)
    self.store = store.Store(labels_path, wd.file("conflicts.csv"), log=log)
    # Kept up to date answer by answer, so no request costs O(labels).
    self.have = {self.index[a.path]: a.label for a in self.store.answers}
    self.counts = np.zeros(len(classes), np.int64)
    for c in self.have.values():
      self.counts[self.class_id[c]] += 1
    setup = {"batch": int(batch), "rule": rule, "majority_distance": majority_distance}
    if not wd.check("balance", setup, hint="Rerun with the recorded flags "
                    "(--batch, --rule, --majority_distance)."):
      wd.record("balance", setup)
    self.balance_state = wd.read("balance.json", {"batches": []})
    self.recorded_batches = {tuple(b) for b in self.balance_state["batches"]}
    workdir.remember_classes(wd, classes, classes_file)
    self.batch_size, self.rule, self.majority_distance = int(batch), rule, \
        majority_distance
    self.method, self.budget = sel["method"], int(sel["budget"])
    picks = wd.read("selection.json")["picks"][0]
    self.ranking = acquisition.ranking_to_balance(
        self.method, budget=self.budget, probs=pool.probs, selected=picks)
    self.offered = set(wd.offered())
    # M_S's source class of each image ("" without probabilities), and its name
    self.top1 = pool.guess_text()
    namer = select_balance.source_namer(wd)
    self.guess = [namer(g) for g in self.top1]

    self.cond = threading.Condition()
    self.generation = 0
    self.batches: list[list[int]] = []  # offered in this replay, in order
    self.batch_of: dict[int, tuple[int, int]] = {}  # image -> (batch, rank)
    self.used_counts = np.zeros(len(classes), np.int64)  # labels the step consumed
    self.batch: Optional[list[int]] = None  # the batch the oracle waits on
    self.mode = "acquisition"  # what chose the current batch
    self.finished: Optional[list[int]] = None
    self.error: Optional[str] = None
    self.leases: dict[int, tuple[str, float]] = {}
    self.skipped: dict[str, set[int]] = collections.defaultdict(set)
    self.thread = threading.Thread(target=self._run, name="jaxal-balancing",
                                   daemon=True)

  # ------------------------------------------------------ balancing thread
  def start(self) -> "Session":
    try:
      self.store.serve()
    except RuntimeError as e:
      raise WorkdirError(str(e)) from None
    self.thread.start()
    return self

  def _run(self) -> None:
    while True:
      with self.cond:
        gen = self.generation
        self.batches, self.batch, self.finished = [], None, None
        self.batch_of = {}
        self.used_counts[:] = 0
      try:
        chosen = balancing.balanced_select(
            self.ranking, self.pool.features, lambda idx: self._oracle(idx, gen),
            self.budget, len(self.classes), rule=self.rule,
            majority_distance=self.majority_distance, batch_size=self.batch_size)
      except _Restart:
        continue
      except Exception as e:  # pylint: disable=broad-except
        with self.cond:
          self.error = f"{type(e).__name__}: {e}"
          self.cond.notify_all()
        self.log(f"label: the balancing step failed: {self.error}")
        return
      with self.cond:
        if gen != self.generation:
          continue
        self.finished = [int(i) for i in chosen]
        state = self.balance_state
        if state.get("done") != self.finished:
          state["done"] = self.finished
          self.wd.write("balance.json", state)
        # Written now, before any request sees "done": the page then shows
        # the train and report commands, which read labels.csv. A failure
        # loses nothing (the database holds every answer; the readers and the
        # server's close write the file again).
        try:
          self.store.export()
        except Exception as e:  # pylint: disable=broad-except
          self.log(f"label: could not write {self.store.labels_path} ({e}); the "
                   f"answers are safe in {self.store.db_path}")
        select_balance.write_to_label(self.wd, self.pool, [])
        self.log(f"label: budget spent: {len(self.finished)} images labeled")
        self.cond.notify_all()
        while gen == self.generation:  # until an undo reopens a batch
          self.cond.wait()

  def _answered(self) -> dict[int, str]:
    """Pool index -> label of every answer (the live dict: do not modify)."""
    return self.have

  def _oracle(self, idx: np.ndarray, gen: int) -> np.ndarray:
    idx = [int(i) for i in idx]
    with self.cond:
      if gen != self.generation:
        raise _Restart()
      self._offer(idx)
      while True:
        if gen != self.generation:
          raise _Restart()
        have = self._answered()
        if all(i in have for i in idx):
          self.batch = None  # being consumed: the next comes from these answers
          y = np.asarray([self.class_id[have[i]] for i in idx], np.int64)
          np.add.at(self.used_counts, y, 1)
          self.store.request_export()  # a batch end: labels.csv catches up
          return y
        self.cond.wait()

  def _offer(self, idx: list[int]) -> None:
    """Makes `idx` the current batch, recorded as `jaxal balance` records it."""
    if tuple(idx) not in self.recorded_batches:
      self.balance_state["batches"].append(idx)
      self.recorded_batches.add(tuple(idx))
      self.wd.write("balance.json", self.balance_state)
    self.offered.update(idx)
    before = int(self.used_counts.sum())  # every earlier batch is answered and used
    for j, i in enumerate(idx):
      self.batch_of[i] = (len(self.batches), before + j + 1)
    self.batches.append(idx)
    self.batch = idx
    have = self._answered()
    # What chose this batch: Eq. 9's switch, as balanced_select evaluates it.
    self.mode = "balancing" if balancing.switch_to_balancing(
        self.used_counts, self.budget - before) else "acquisition"
    select_balance.write_to_label(self.wd, self.pool, [
        (i, before + j + 1, "", self.top1[i], self.guess[i])
        for j, i in enumerate(idx) if i not in have])
    self.cond.notify_all()

  # ------------------------------------------------------------- requests
  def _check_ready(self):
    if self.error is not None:
      raise Refused(f"the balancing step failed ({self.error}); see the server's "
                    "log, then restart `jaxal label`.", 500)

  def _image(self, i: int) -> dict:
    k, rank = self.batch_of[i]
    return {"path": self.pool.paths[i], "rank": rank, "guess": self.guess[i],
            "batch": k + 1}

  def next_for(self, annotator: str, wait_s: float = 5.0) -> dict:
    """The image `annotator` should label now ({"image": ...}), {"done": True}
    when the budget is spent, or {"wait": reason} when the others hold the rest
    of the batch (or the next batch is being chosen) after `wait_s`."""
    annotator = check_annotator(annotator)
    deadline = time.monotonic() + wait_s
    with self.cond:
      while True:
        self._check_ready()
        if self.finished is not None:
          return {"done": True, "progress": self._progress()}
        got = self._lease_for(annotator)
        if got is not None:
          return {"image": self._image(got), "progress": self._progress()}
        left = deadline - time.monotonic()
        if left <= 0:
          why = ("the next batch is being chosen" if self.batch is None else
                 "the other annotators hold the rest of this batch; the balancing "
                 "step needs their answers before it picks the next images")
          return {"wait": why, "progress": self._progress()}
        self.cond.wait(min(left, 1.0))

  def _lease_for(self, annotator: str) -> Optional[int]:
    if self.batch is None:
      return None
    now, have = self.clock(), self._answered()
    free = [i for i in self.batch if i not in have]
    for i in free:  # the image already on this annotator's screen
      who, until = self.leases.get(i, (None, 0.0))
      if who == annotator and until > now:
        self.leases[i] = (annotator, now + self.lease_s)
        return i
    open_ = [i for i in free if self.leases.get(i, ("", 0.0))[1] <= now]
    if not open_:
      return None
    fresh = [i for i in open_ if i not in self.skipped[annotator]]
    i = (fresh or open_)[0]
    for j, (who, _) in list(self.leases.items()):
      if who == annotator:
        del self.leases[j]
    self.leases[i] = (annotator, now + self.lease_s)
    return i

  def _pool_index(self, path) -> int:
    if not isinstance(path, str) or path not in self.index:
      raise Refused(f"path: {str(path)[:200]!r} is not an image of this selection.")
    i = self.index[path]
    if i not in self.offered:
      raise Refused(f"path: {path!r} was never offered for labeling; answer the "
                    "images the page shows.")
    return i

  def answer(self, annotator: str, path: str, label: str) -> dict:
    """Saves `annotator`'s answer; returns once it is on disk. A different
    second answer for the same image goes to conflicts.csv (status 409)."""
    annotator = check_annotator(annotator)
    with self.cond:
      self._check_ready()
      i = self._pool_index(path)
      if not isinstance(label, str) or label not in self.class_id:
        raise Refused(f"label: {str(label)[:200]!r} is not one of the target classes.")
      new = store.Answer(path, label, annotator, store.now())
      first = self.store.get(path)
      if first is not None:
        if first.label == label:
          return {"saved": False, "same_as": first.annotator,
                  "progress": self._progress()}
        self.store.add_conflict(new, first)
        self.cond.notify_all()
        raise Refused(f"{path} was already labeled {first.label!r} by "
                      f"{first.annotator or 'someone'}; your answer {label!r} is kept "
                      "aside in conflicts.csv, the first stays.", 409)
      self.store.add(new)
      self.have[i] = label
      self.counts[self.class_id[label]] += 1
      if self.leases.get(i, ("",))[0] == annotator:
        del self.leases[i]
      self.skipped[annotator].discard(i)
      self.cond.notify_all()
      return {"saved": True, "progress": self._progress()}

  def skip(self, annotator: str, path: str) -> dict:
    annotator = check_annotator(annotator)
    with self.cond:
      i = self._pool_index(path)
      if self.leases.get(i, ("",))[0] == annotator:
        del self.leases[i]
      self.skipped[annotator].add(i)
      self.cond.notify_all()
      return {"skipped": path}

  def undo(self, annotator: str) -> dict:
    """Takes back `annotator`'s last answer and shows its image again."""
    annotator = check_annotator(annotator)
    with self.cond:
      self._check_ready()
      last = self.store.last_of(annotator)
      if last is None:
        raise Refused("nothing to undo: you have no answer saved.", 409)
      i = self.index[last.path]
      k = self.batch_of.get(i, (None,))[0]
      have = self._answered()
      later = [j for b in self.batches[k + 1:] for j in b if j in have] \
          if k is not None else []
      if later:
        raise Refused(f"cannot undo {last.path}: the balancing step already chose "
                      f"the next images from it and {len(later)} of them are "
                      "answered. Fix it in labels.csv after labeling instead.", 409)
      self.store.remove(last.path)
      del self.have[i]
      self.counts[self.class_id[last.label]] -= 1
      current = self.batch is not None and i in self.batch
      if not current and k is not None:  # its batch was used: replay
        self.generation += 1
      self.skipped[annotator].discard(i)
      self.leases[i] = (annotator, self.clock() + self.lease_s)
      self.cond.notify_all()
      return {"undone": last.path, "label": last.label}

  def current_paths(self) -> list[str]:
    """Paths of the current batch (empty between batches)."""
    with self.cond:
      return [self.pool.paths[i] for i in (self.batch or [])]

  def release(self, annotator: str) -> None:
    """Drops `annotator`'s lease (the page was closed)."""
    with self.cond:
      for j, (who, _) in list(self.leases.items()):
        if who == annotator:
          del self.leases[j]
      self.cond.notify_all()

  def close(self) -> None:
    """Writes labels.csv a last time and closes the answers' database."""
    self.store.close()

  # -------------------------------------------------------------- progress
  def progress(self) -> dict:
    with self.cond:
      return self._progress()

  def _progress(self) -> dict:
    counts, k = self.counts, len(self.classes)
    return {
        "labeled": len(self.have), "budget": self.budget,
        "classes_found": int((counts > 0).sum()), "classes": k,
        "imbalance_ratio": metrics.imbalance_ratio_of_counts(counts)
                           if self.have else None,
        "counts": [[c, int(n)] for c, n in zip(self.classes, counts)],
        "conflicts": len(self.store.conflicts),
        "done": self.finished is not None,
        "method": self.method, "batch": len(self.batches), "mode": self.mode,
    }


def check_annotator(name) -> str:
  if not isinstance(name, str) or not name.strip() or len(name) > 64 or \
      any(ord(c) < 32 for c in name):
    raise Refused("annotator: give a name of 1-64 printable characters.")
  return name.strip()
