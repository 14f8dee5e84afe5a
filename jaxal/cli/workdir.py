"""The `jaxal` command's work directory: what each step recorded, and checks.

Every step of the command keeps its state in one folder, written atomically
(`jaxal.io`), so a killed step loses at most its unfinished part and a rerun
resumes:

    workdir.json       what each step was run with (refuses contradictions)
    paths.txt          the image folder's images, in pool order
    embed/             per-chunk outputs of an unfinished embed
    embedding.npz      M_S's features and probabilities of the readable images
    skipped.csv        images that could not be read, with the reason
    selection.json     the acquisition's picks, per round
    balance.json       the balancing step's batches offered so far
    to_label.csv       what to send to the annotators now
    target/            the trained target model
    report/            report.json and the class-count chart
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Callable, Optional

import numpy as np

from jaxal import io
from jaxal.cli import labels


Log = Callable[[str], None]
NEW_WORKDIR = "Use a new --workdir, or rerun with the flags recorded there."


class WorkdirError(ValueError):
  """A call that contradicts the work directory, or comes before its step."""


def digest(text: str) -> str:
  return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Pool:
  """The embedded, readable images: pool index i is `paths[i]`."""
  paths: list[str]
  features: np.ndarray  # [N, D] acquisition features (snapshot average with +ens)
  probs: np.ndarray  # [N, C] source-class probabilities (idem)
  target_features: np.ndarray  # [N, D] the final M_S's features (SVM target)

  @property
  def index(self) -> dict[str, int]:
    return {p: i for i, p in enumerate(self.paths)}


class Workdir:
  """Paths and recorded settings of one work directory."""

  def __init__(self, path: str):
    if not path:
      raise WorkdirError("--workdir is required.")
    self.path = os.path.abspath(path)

  def file(self, *parts: str) -> str:
    return os.path.join(self.path, *parts)

  # ---------------------------------------------------------------- records
  def recorded(self, section: str) -> Optional[dict]:
    return io.read_json(self.file("workdir.json"), {}).get(section)

  def check(self, section: str, values: dict, *, hint: str) -> bool:
    """Raises WorkdirError if `section` was recorded with other values (saying
    which differ); True when it was recorded with these, False when new."""
    old = self.recorded(section)
    if old is None:
      return False
    diff = [f"--{k}: {old.get(k)!r} here, {values.get(k)!r} in this call"
            for k in sorted(set(old) | set(values)) if old.get(k) != values.get(k)]
    if diff:
      raise WorkdirError(f"{self.path} was set up with other {section} settings ("
                         + "; ".join(diff) + f"). {hint}")
    return True

  def record(self, section: str, values: dict) -> None:
    meta = io.read_json(self.file("workdir.json"), {})
    meta[section] = values
    io.write_json(self.file("workdir.json"), meta)

  # ------------------------------------------------------------------ pool
  def paths(self) -> Optional[list[str]]:
    if not os.path.exists(self.file("paths.txt")):
      return None
    with open(self.file("paths.txt"), encoding="utf-8") as f:
      return f.read().splitlines()

  def pool(self) -> Pool:
    """The embedded pool; WorkdirError if `embed` has not finished."""
    path = self.file("embedding.npz")
    if not os.path.exists(path):
      raise WorkdirError(f"{self.path} has no finished embedding; run `jaxal embed "
                         f"--workdir={self.path} --images=DIR --source=DIR` first.")
    with np.load(path) as z:
      index = z["index"]
      arrays = {k: z[k] for k in ("features", "probs", "target_features")}
    every = self.paths()
    return Pool([every[i] for i in index], **arrays)

  # ------------------------------------------------------------ step state
  def read(self, name: str, default: Any = None) -> Any:
    return io.read_json(self.file(name), default)

  def write(self, name: str, obj: Any) -> None:
    io.write_json(self.file(name), obj)

  def offered(self) -> list[int]:
    """Pool indices sent to annotators so far (selection rounds, then balance
    batches), in order, without repeats."""
    seen, out = set(), []
    sel = self.read("selection.json", {})
    bal = self.read("balance.json", {})
    for group in sel.get("picks", []) + bal.get("batches", []):
      for i in group:
        if i not in seen:
          seen.add(i)
          out.append(i)
    return out


# ------------------------------------------------- labels against the pool
def labeled(wd: Workdir, pool: Pool, labels_csv: str, classes_file: Optional[str]
            ) -> tuple[list[str], dict[int, int]]:
  """(classes, {pool index: class id}) of the labels so far, validated.

  Without `classes_file` the classes recorded in the work directory are used,
  or, where none is, the sorted names found in the labels (then classes never
  labeled are unknown: N_t is the number found).
  """
  recorded = wd.recorded("classes")
  if classes_file:
    classes = labels.read_classes(classes_file)
    wd.check("classes", {"classes": classes},
             hint="The target classes cannot change within a work directory.")
  elif recorded is not None:
    classes = recorded["classes"]
  else:
    classes = None
  found = labels.read_labels(labels_csv, pool=pool.index, classes=classes,
                             offered=wd.offered(),
                             root=wd.recorded("embed")["images"])
  if classes is None:
    classes = sorted(set(found.values()))
    if len(classes) < 1:
      raise WorkdirError(f"--labels {labels_csv} holds no label yet.")
  ids = {c: k for k, c in enumerate(classes)}
  return classes, {i: ids[c] for i, c in found.items()}


def remember_classes(wd: Workdir, classes: list[str],
                     classes_file: Optional[str]) -> None:
  """Records the classes of a classes file on the first step that writes with
  them (`labeled` refuses any other list afterwards)."""
  if classes_file and wd.recorded("classes") is None:
    wd.record("classes", {"classes": classes})
