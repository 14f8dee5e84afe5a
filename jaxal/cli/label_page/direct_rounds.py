"""DIRECT's rounds run live on the labeling page (`jaxal.direct`, `jaxal.rounds`).

A selection made by `jaxal select --method=direct --rounds=R` labels round 1
(random, recorded by `select`) and then, in each later round, asks the
annotators about the images DIRECT chooses around each class's threshold, its
answers steering the rest of the round. On the page the whole selection runs
as one strategy in the labeling session's background thread, its oracle waiting
on the answers (the balancing step's protocol, `replay.Replay`): round 1's
images first, then each round's target model (the linear SVM on the
embedding's target features, `target.svm_target`) trained on the answers of
the rounds before it, and DIRECT's questions. Every step is the one `jaxal
select` takes from a labels file (`select_balance.select`), so the page and the
command choose the same images from the same answers.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from jaxal import rounds
from jaxal.curation import duplicates
from jaxal.cli.workdir import Pool, WorkdirError
from jaxal.models import target

Ask = Callable[[np.ndarray], np.ndarray]


def check(sel: dict) -> None:
  """Refuses a rounds selection the page cannot run live."""
  if sel["method"] != "direct":
    raise WorkdirError("label follows a single-shot selection, or DIRECT's rounds; "
                       f"this selection has {sel['rounds']} rounds of "
                       f"{sel['method']} (use `jaxal select --labels`).")
  if sel.get("target", "svm") != "svm":
    raise WorkdirError("the page runs DIRECT's rounds with the SVM target; this "
                       f"selection's target is {sel['target']} (use `jaxal select "
                       "--labels`, which trains it between rounds).")


def strategy(pool: Pool, sel: dict, first: list[int], num_classes: int,
             dup: Optional[duplicates.Duplicates] = None
             ) -> Callable[[Ask], list[int]]:
  """`run(ask) -> chosen`: the selection's rounds, round 1 = `first`; with
  `dup`, one image per group of near-duplicates, as `select` picks them."""
  sizes = rounds.round_sizes(int(sel["budget"]), int(sel["rounds"]))
  seed, svm_c = int(sel["seed"]), float(sel.get("svm_c", 1.0))

  def run(ask: Ask) -> list[int]:
    known: dict[int, int] = {}

    def asked(idx: np.ndarray) -> np.ndarray:
      idx = [int(i) for i in idx]
      if not all(i in known for i in idx):  # answered images are not asked again
        known.update(zip(idx, np.asarray(ask(np.asarray(idx, np.int64)),
                                         np.int64).tolist()))
      return np.asarray([known[i] for i in idx], np.int64)

    labeled = [int(i) for i in first]
    asked(np.asarray(labeled, np.int64))
    for size in sizes[1:]:
      idx = np.asarray(sorted(labeled), np.int64)  # as `select` trains it
      tmodel = target.svm_target(pool.target_features, idx,
                                 np.asarray([known[i] for i in idx.tolist()]), C=svm_c)
      among = None if dup is None else duplicates.candidates(dup, labeled)
      new = rounds.select_round("direct", size, features=pool.features,
                                probs=pool.probs, labeled=labeled, seed=seed,
                                num_classes=num_classes, target=tmodel, oracle=asked,
                                among=among)
      missing = [int(i) for i in new if int(i) not in known]
      if missing:  # a random round (no target yet) asks after choosing
        asked(np.asarray(missing, np.int64))
      labeled += [int(i) for i in new]
    return labeled
  return run


def split(chosen: list[int], sel: dict) -> list[list[int]]:
  """The finished selection's images by round (selection.json's picks)."""
  out, k = [], 0
  for size in rounds.round_sizes(int(sel["budget"]), int(sel["rounds"])):
    out.append([int(i) for i in chosen[k:k + size]])
    k += size
  return out
