"""What a labeling session works from, read once from the work directory and
checked: the pool, the target classes, the selection's budget and method, the
acquisition ranking the balancing step consumes (method guide §3, through
`acquisition.ranking_to_balance`), the balancing flags (method guide §4), and
the source model's guesses shown beside each image; for a selection of DIRECT's
rounds, the strategy that runs them instead (`direct_rounds`).

`read_setup` validates and reads without writing anything; `remember` records
the balancing flags and the classes the first time they are used, as `jaxal
balance` does.
"""

from __future__ import annotations

import dataclasses
import os
import types
from typing import Callable, Mapping, Optional

import numpy as np

from jaxal import acquisition, balancing
from jaxal.cli import dedupe, label_files, select_balance, workdir, zero_shot
from jaxal.cli.label_page import direct_rounds
from jaxal.cli.workdir import Pool, Workdir, WorkdirError

_FLAGS_HINT = ("Rerun with the recorded flags (--batch, --rule, --majority_distance, "
               "--guesses, --guess_weight).")


@dataclasses.dataclass(frozen=True)
class Setup:
  """One selection's labeling configuration, validated and immutable.

  Attributes:
    pool: the embedded images (pool index i is `pool.paths[i]`).
    index: pool path -> pool index (built once: `Pool.index` builds it per call).
    root: the embedded folder (or TFDS split) the pool paths are relative to.
    classes: the target classes, in the classes file's order.
    class_id: class name -> its position in `classes`.
    method: the selection's acquisition method.
    budget: the number of images to label.
    ranking: the acquisition ranking the balancing step consumes.
    batch_size: images chosen per balancing step (`--batch`).
    rule: the balancing step's rule (`--rule`).
    majority_distance: how distance to the majority classes is measured.
    lease_s: how long an image stays leased to an annotator, seconds.
    guess_text: M_S's top-1 source class of each image ("" without
      probabilities), as to_label.csv's predicted_class holds it.
    guess_name: the same guesses by name, as the page shows them.
    strategy: DIRECT's rounds (`direct_rounds.strategy`), run instead of the
      balancing step; None for a single-shot selection.
    selection: the selection's recorded setup (method, budget, rounds, ...).
    among: the images the balancing step may pick (one per group of
      near-duplicates, where the selection was made after `jaxal dedupe`), or
      None for all.
    guesses, guess_weight: the zero-shot guesses the balancing step follows
      until every class has an answer (`--guesses`), and their weight; None
      for the paper's rule.
  """
  pool: Pool
  index: Mapping[str, int]
  root: str
  classes: tuple[str, ...]
  class_id: Mapping[str, int]
  method: str
  budget: int
  ranking: np.ndarray
  batch_size: int
  rule: str
  majority_distance: str
  lease_s: float
  guess_text: tuple[str, ...]
  guess_name: tuple[str, ...]
  strategy: Optional[Callable] = None
  selection: Mapping = dataclasses.field(default_factory=dict)
  among: Optional[np.ndarray] = None
  guesses: Optional[np.ndarray] = None
  guess_weight: Optional[float] = None

  @property
  def balance_flags(self) -> dict:
    """The flags `jaxal balance` records, under the same names."""
    return {"batch": self.batch_size, "rule": self.rule,
            "majority_distance": self.majority_distance,
            **zero_shot.guidance_flags(self.guess_weight)}


def read_setup(wd: Workdir, *, classes_file: Optional[str], batch: int, rule: str,
               majority_distance: str, lease_s: float,
               guess_weight: Optional[float] = None) -> Setup:
  """Reads and checks the labeling setup of `wd`'s selection; writes nothing.

  Raises:
    WorkdirError: no single-shot selection, a bad flag, no target classes, or
      flags other than the recorded ones.
    LabelsError: an existing labels.csv that every command would refuse.
  """
  pool = wd.pool()
  sel = _selection(wd)
  _check_flags(batch, lease_s, rule, majority_distance)
  classes = workdir.target_classes(wd, classes_file)
  if classes is None:
    raise WorkdirError("--classes is required: a text file with one target class "
                       "name a line (every class, found or not).")
  index = pool.index
  root = wd.recorded("embed")["images"]
  labels_path = wd.file("labels.csv")
  if os.path.exists(labels_path):  # as every command would read it
    label_files.read_labels(labels_path, pool=index, classes=classes,
                            offered=wd.offered(), root=root)
  method, budget = sel["method"], int(sel["budget"])
  picks = wd.read("selection.json")["picks"][0]
  dup = dedupe.for_selection(wd, sel)
  if sel["rounds"] == 1:
    flags = {"batch": int(batch), "rule": rule, "majority_distance": majority_distance,
             **zero_shot.guidance_flags(guess_weight)}
    wd.check("balance", flags, hint=_FLAGS_HINT)
    ranking = acquisition.ranking_to_balance(method, budget=budget, probs=pool.probs,
                                             selected=picks)
    strategy = None
  else:  # DIRECT's rounds, live
    ranking = np.zeros(0, np.int64)
    strategy = direct_rounds.strategy(pool, sel, picks, len(classes), dup)
  guess_text = tuple(pool.guess_text())
  namer = select_balance.source_namer(wd)
  return Setup(
      pool=pool, index=types.MappingProxyType(index), root=root,
      classes=tuple(classes),
      class_id=types.MappingProxyType({c: k for k, c in enumerate(classes)}),
      method=method, budget=budget, ranking=ranking, batch_size=int(batch),
      rule=rule, majority_distance=majority_distance, lease_s=float(lease_s),
      guess_text=guess_text, guess_name=tuple(namer(g) for g in guess_text),
      strategy=strategy, selection=types.MappingProxyType(dict(sel)),
      among=dedupe.kept(dup),
      guesses=zero_shot.guidance(wd, pool, classes, guess_weight),
      guess_weight=guess_weight)


def remember(wd: Workdir, setup: Setup, classes_file: Optional[str]) -> None:
  """Records the balancing flags and the classes file's classes where none are
  recorded yet, so that `balance`, `train` and `report` hold them to the same."""
  if wd.recorded("balance") is None and setup.strategy is None:
    wd.record("balance", setup.balance_flags)
  workdir.remember_classes(wd, list(setup.classes), classes_file)


def _selection(wd: Workdir) -> dict:
  """The recorded selection: single-shot, or DIRECT's rounds."""
  sel = wd.recorded("select")
  if sel is None:
    raise WorkdirError(f"{wd.sel_path} has no selection; pass --method and "
                       "--budget (or run `jaxal select` first).")
  if sel["rounds"] != 1:
    direct_rounds.check(sel)
  return sel


def _check_flags(batch, lease_s, rule, majority_distance) -> None:
  if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
    raise WorkdirError(f"--batch must be a positive integer, got {batch!r}.")
  if lease_s <= 0:
    raise WorkdirError(f"--lease must be > 0 seconds, got {lease_s!r}.")
  if rule not in balancing.RULES or majority_distance not in \
      balancing.MAJORITY_DISTANCES:
    raise WorkdirError(f"--rule must be one of {balancing.RULES} and "
                       f"--majority_distance one of {balancing.MAJORITY_DISTANCES}.")
