"""The labeling loop behind `jaxal label`: which image each annotator sees next,
their answers, and the balancing step deciding live (main paper section 3.3,
method guide §4).

The order is `jaxal balance`'s: `balancing.balanced_select` over the
selection's acquisition ranking runs in a background thread whose oracle waits
until every image of the batch it asks about has an answer on disk
(`replay.Replay`). So the images shown to an annotator who answers like an
oracle are exactly `balanced_select`'s sequence with that oracle and
`batch_size=batch`, and the work directory stays usable by `jaxal balance`,
`train` and `report`: the batches offered are recorded in balance.json as
`balance` records them (`records.py`), and the answers go to the selection's
answer database and labels.csv (`store.py`).

Several annotators share the current batch: each image is leased to one
annotator at a time (`leases.Leases`), so no image is on two screens at once.
A late answer for an image someone else answered first is kept aside in
conflicts.csv and reported; it never replaces the first. "Skip" hands the
image back and shows the annotator the batch's others first; the balancing
step needs every image of a batch before it picks the next, so skipped images
come back when nothing else is left. "Undo" takes back the annotator's last
answer while no later answer depends on it (an answer in a later batch does:
the balancing step chose that batch from it); when the undone answer's batch
was already used, the balancing thread replays from the answers on disk, which
gives the same batches up to that one.

A restart (after a SIGKILL) reads labels.csv and replays the same way, so
nothing acknowledged is lost and labeling resumes where it stopped.

A selection of DIRECT's rounds (`jaxal select --method=direct --rounds=R`) runs
the same way with DIRECT in place of the balancing step (`direct_rounds`): its
questions are the batches, recorded in selection.json as `select` records them.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import numpy as np

from jaxal import metrics
from jaxal.cli import search as search_lib
from jaxal.cli.label_page import config, leases, queues, records, replay, store, tally
from jaxal.cli.workdir import Workdir, WorkdirError
from jaxal.errors import InputError


class Refused(ValueError):
  """A request the session refuses; `status` is the HTTP status to answer."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class Session:
  """One selection's labeling state, shared by every annotator.

  The coordinator of its parts, under one Condition (`cond`): the checked
  setup (`setup`), the answers on disk (`store`) and by pool index (`tally`),
  the work directory's records (`records`), the leases (`leases`) and the
  balancing thread (`replay`), the search queues (`queues`). Each request takes
  `cond` for its whole change, so the parts always agree.

  Longer than most classes here (~280 lines, half of them docstrings) for that
  reason: each public method is one request of the page, and its steps across
  the parts must run under the one lock. The parts hold the logic; a request
  split further would spread one change over several objects and their locks.

  Args:
    wd: the work directory, with its selection made.
    classes_file: the target classes (else the recorded ones).
    batch, rule, majority_distance: the balancing step's flags.
    lease_s: how long an image stays leased to an annotator, seconds.
    clock: the leases' clock.
    guess_weight: None for the paper's balancing step; a weight to follow the
      embedding's zero-shot guesses until every class has an answer.
    log: where messages go.
  """

  def __init__(self, wd: Workdir, *, classes_file: Optional[str], batch: int,
               rule: str = "ratio", majority_distance: str = "nearest",
               lease_s: float = 120.0, clock: Callable[[], float] = time.monotonic,
               guess_weight: Optional[float] = None,
               log: Callable[[str], None] = print):
    self.wd, self.log = wd, log
    self.setup = s = config.read_setup(
        wd, classes_file=classes_file, batch=batch, rule=rule,
        majority_distance=majority_distance, lease_s=lease_s,
        guess_weight=guess_weight)
    self.store = store.Store(wd.file("labels.csv"), wd.file("conflicts.csv"), log=log)
    config.remember(wd, s, classes_file)
    self.records = (records.BalanceRecord if s.strategy is None
                    else records.RoundsRecord)(wd, s)
    self.tally = tally.Tally(s.classes, ((s.index[a.path], a.label)
                                         for a in self.store.answers))
    self.cond = threading.Condition()
    self.queues = queues.Queues.restored(wd, self.tally.labels)
    self.leases = leases.Leases(s.lease_s, clock)
    self.replay = replay.Replay(
        s, self.cond, lambda: self.tally.labels,
        on_offer=lambda idx, before: self.records.offer(idx, before, self.tally.labels),
        on_used=self.store.request_export, on_finish=self._finished, log=log)

  def start(self) -> "Session":
    """Holds the selection's database (one server per selection) and starts
    the balancing thread."""
    try:
      self.store.serve()
    except RuntimeError as e:
      raise WorkdirError(str(e)) from None
    self.replay.start()
    return self

  def close(self) -> None:
    """Stops the balancing thread, writes labels.csv a last time and closes the
    answers' database."""
    with self.cond:
      self.replay.stop()
    self.store.close()

  # ---------------------------------------------- the balancing thread's hooks
  def _finished(self, chosen: list[int]) -> None:
    """Records the finished selection and writes labels.csv for train and report."""
    self.records.finish(chosen)
    # Written now, before any request sees "done": the page then shows the
    # train and report commands, which read labels.csv. A failure loses
    # nothing (the database holds every answer; the readers and the server's
    # close write the file again).
    try:
      self.store.export()
    except Exception as e:  # pylint: disable=broad-except
      self.log(f"label: could not write {self.store.labels_path} ({e}); the "
               f"answers are safe in {self.store.db_path}")
    self.records.to_label([])
    self.log(f"label: budget spent: {len(chosen)} images labeled")

  # ------------------------------------------------------------- requests
  def next_for(self, annotator: str, wait_s: float = 5.0) -> dict:
    """The image `annotator` should label now ({"image": ...}), {"done": True}
    when the budget is spent, or {"wait": reason} when the others hold the rest
    of the batch (or the next batch is being chosen) after `wait_s`."""
    annotator = check_annotator(annotator)
    deadline = time.monotonic() + wait_s
    with self.cond:
      while True:
        self._check_ready()
        found = self._from_queue(annotator)
        if found is not None:
          return {"image": found, "progress": self._progress()}
        if self.replay.finished is not None:
          return {"done": True, "progress": self._progress()}
        got = self._lease_for(annotator)
        if got is not None:
          return {"image": self._image(got), "progress": self._progress()}
        left = deadline - time.monotonic()
        if left <= 0:
          why = ("the next batch is being chosen" if self.replay.batch is None else
                 "the other annotators hold the rest of this batch; the balancing "
                 "step needs their answers before it picks the next images")
          return {"wait": why, "progress": self._progress()}
        self.cond.wait(min(left, 1.0))

  def answer(self, annotator: str, path: str, label: str) -> dict:
    """Saves `annotator`'s answer; returns once it is on disk. A different
    second answer for the same image goes to conflicts.csv (status 409)."""
    annotator = check_annotator(annotator)
    with self.cond:
      self._check_ready()
      i = self._pool_index(path)
      if not isinstance(label, str) or label not in self.setup.class_id:
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
      self.tally.add(i, label)
      self.leases.answered(annotator, i)
      self.cond.notify_all()
      return {"saved": True, "progress": self._progress()}

  def search(self, annotator: str, *, text=None, path=None, top=12) -> dict:
    """Queues for `annotator` the `top` unlabeled images nearest `text` or the
    pool image `path` (`jaxal.cli.search`): never an image answered, queued for
    anyone, in the current batch, held by another annotator or set aside by
    dedupe. They come before the batch's images on their screen, leased to
    them as they come."""
    annotator = check_annotator(annotator)
    try:
      queues.check_query(text, path, top, self.setup.index)
    except ValueError as e:
      raise Refused(str(e)) from None
    try:  # the query's embedding and its cosines: no lock (the slow part)
      query, itself = search_lib.query_of(self.wd, self.setup.pool, text=text,
                                          image=path)
    except InputError as e:
      raise Refused(str(e).replace("--text", "text").replace("--image", "path")) \
          from None
    sims = search_lib.similarities(self.setup.pool.features, query)
    with self.cond:
      self._check_ready()
      allowed = np.ones(len(self.setup.pool.paths), bool)
      taken = list(self.tally.labels) + self.queues.queued()
      taken += list(self.replay.batch or []) + self.leases.held_by_others(annotator)
      allowed[np.asarray(taken, np.int64)] = False
      if itself is not None:
        allowed[itself] = False
      if self.setup.among is not None:
        allowed &= self.setup.among
      picks = [int(i) for i in search_lib.best(sims, allowed, top)]
      search_lib.record(self.wd, text=text, image=path, top=top, picks=picks,
                        annotator=annotator)
      self.records.offered.update(picks)
      self.queues.add(annotator, picks)
      self.cond.notify_all()
      return {"queued": [self.setup.pool.paths[i] for i in picks],
              "progress": self._progress()}

  def skip(self, annotator: str, path: str) -> dict:
    """Hands `path` back; `annotator` sees the batch's other images first."""
    annotator = check_annotator(annotator)
    with self.cond:
      i = self._pool_index(path)
      self.leases.skip(annotator, i)
      self.queues.to_end(annotator, i)
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
      i = self.setup.index[last.path]
      later = self.replay.answered_after(i)
      if later:
        raise Refused(f"cannot undo {last.path}: the balancing step already chose "
                      f"the next images from it and {len(later)} of them are "
                      "answered. Fix it in labels.csv after labeling instead.", 409)
      self.store.remove(last.path)
      self.tally.remove(i)
      self.replay.reopen(i)
      self.leases.hand_back(annotator, i)
      if not self.replay.knows(i):  # a search's image: first in their queue again
        self.queues.to_front(annotator, i)
      self.cond.notify_all()
      return {"undone": last.path, "label": last.label}

  def release(self, annotator: str) -> None:
    """Drops `annotator`'s lease (the page was closed)."""
    with self.cond:
      self.leases.release(annotator)
      self.cond.notify_all()

  def current_paths(self) -> list[str]:
    """Paths of the current batch (empty between batches)."""
    with self.cond:
      return [self.setup.pool.paths[i] for i in (self.replay.batch or [])]

  def progress(self) -> dict:
    """The page's progress line: counts, imbalance ratio, batch and mode."""
    with self.cond:
      return self._progress()

  def map_state(self) -> dict:
    """What the map shows over the pool: every answer kept ([pool index, class
    id, annotator]), the current batch's images not yet answered, the
    progress."""
    with self.cond:
      cid, paths = self.setup.class_id, self.setup.pool.paths
      labeled = []
      for i, label in self.tally.labels.items():
        a = self.store.get(paths[i])
        labeled.append([int(i), cid[label], a.annotator if a is not None else ""])
      pending = [int(i) for i in (self.replay.batch or [])
                 if i not in self.tally.labels]
      return {"classes": list(self.setup.classes), "labeled": labeled,
              "pending": pending, "progress": self._progress()}

  def point(self, i) -> dict:
    """One image of the pool by index, for the map's hover: its path, the
    source model's guess, and its answer if any."""
    n = len(self.setup.pool.paths)
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
      raise Refused(f"i: a pool index in [0, {n}), got {str(i)[:40]!r}.")
    with self.cond:
      path = self.setup.pool.paths[i]
      a = self.store.get(path) if i in self.tally.labels else None
      return {"index": i, "path": path, "guess": self.setup.guess_name[i],
              "label": a.label if a else None, "annotator": a.annotator if a else None,
              "set_aside": bool(self.setup.among is not None
                                and not self.setup.among[i])}

  # -------------------------------------------------------------- helpers
  def _check_ready(self):
    if self.replay.error is not None:
      raise Refused(f"the balancing step failed ({self.replay.error}); see the "
                    "server's log, then restart `jaxal label`.", 500)

  def _from_queue(self, annotator: str) -> Optional[dict]:
    """The next image of `annotator`'s search queue still to answer and held by
    nobody else, leased to them; None when the queue is empty."""
    i = self.queues.next_for(annotator, self.tally.labels, self.leases.holder)
    if i is None:
      return None
    self.leases.hand_back(annotator, i)
    return {"path": self.setup.pool.paths[i], "rank": "search",
            "guess": self.setup.guess_name[i], "batch": "your search"}

  def _lease_for(self, annotator: str) -> Optional[int]:
    batch = self.replay.batch
    if batch is None:
      return None
    have = self.tally.labels
    return self.leases.next_for(annotator, [i for i in batch if i not in have])

  def _image(self, i: int) -> dict:
    k, rank = self.replay.position(i)
    return {"path": self.setup.pool.paths[i], "rank": rank,
            "guess": self.setup.guess_name[i], "batch": k + 1}

  def _pool_index(self, path) -> int:
    if not isinstance(path, str) or path not in self.setup.index:
      raise Refused(f"path: {str(path)[:200]!r} is not an image of this selection.")
    i = self.setup.index[path]
    if i not in self.records.offered:
      raise Refused(f"path: {path!r} was never offered for labeling; answer the "
                    "images the page shows.")
    return i

  def _progress(self) -> dict:
    return progress_of(self.setup, self.tally, self.replay, len(self.store.conflicts))


def progress_of(setup: config.Setup, answers: tally.Tally, step: replay.Replay,
                conflicts: int) -> dict:
  """The page's progress: answers against the budget, classes found, the
  imbalance ratio (method guide §6), conflicts, and the balancing step's batch
  and mode."""
  counts = answers.counts
  return {
      "labeled": len(answers), "budget": setup.budget,
      "classes_found": int((counts > 0).sum()), "classes": len(setup.classes),
      "imbalance_ratio": metrics.imbalance_ratio_of_counts(counts)
                         if len(answers) else None,
      "counts": [[c, int(n)] for c, n in zip(setup.classes, counts)],
      "conflicts": conflicts,
      "done": step.finished is not None,
      "method": setup.method, "batch": len(step.batches), "mode": step.mode,
  }


def check_annotator(name) -> str:
  """`name` stripped, if it is 1-64 printable characters; else `Refused`."""
  if not isinstance(name, str) or not name.strip() or len(name) > 64 or \
      any(ord(c) < 32 for c in name):
    raise Refused("annotator: give a name of 1-64 printable characters.")
  return name.strip()
