"""The `jaxal` command's work directory: what each step recorded, and checks.

Every step of the command keeps its state in one folder, written atomically
(`jaxal.io`), so a killed step loses at most its unfinished part and a rerun
resumes:

    workdir.json       what each step was run with (refuses contradictions)
    paths.txt          the image folder's images, in pool order
    embed/             per-chunk outputs of an unfinished embed
    embedding/         M_S's outputs of the readable images, one .npy per array
                       (index, features, probs, target_features), memory-mapped
                       when read: a pool of 1M x 512 features is never copied
                       (work directories from before keep embedding.npz)
    skipped.csv        images that could not be read, with the reason
    dedupe/            near-duplicate groups and per-image scores of the
                       embedding (`jaxal dedupe`; `jaxal.cli.dedupe`)
    map/               the pool's PCA coordinates for report's map
    selection.json     the acquisition's picks, per round
    balance.json       the balancing step's batches offered so far
    search.json        the matches `jaxal search` wrote (their labels count)
    to_label.csv       what to send to the annotators now (and, for an image
                       folder, to_label.label_studio.json: the same as Label
                       Studio tasks)
    labels.csv         the labeling page's answers (`jaxal label`)
    target/            the trained target model
    report/            report.json and the class-count chart
    selections/NAME/   a named selection (`--selection=NAME`): its own
                       workdir.json and the files from selection.json down,
                       sharing the embedding above

The files from selection.json down belong to a selection; the default one (no
`--selection`) keeps them at the top, as work directories always did, so old
directories and scripts work unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Any, Callable, Optional

import numpy as np

from jaxal import _array_store as array_store
from jaxal import diversify, io
from jaxal.cli import label_files
from jaxal.errors import InputError
from jaxal.cli.label_page import store


Log = Callable[[str], None]
NEW_WORKDIR = "Use a new --workdir, or rerun with the flags recorded there."


class WorkdirError(InputError):
  """A call that contradicts the work directory, or comes before its step."""


def digest(text: str) -> str:
  return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Pool:
  """The embedded, readable images: pool index i is `paths[i]`."""
  paths: list[str]
  features: np.ndarray  # [N, D] acquisition features (snapshot average with +ens)
  # [N, C] source-class probabilities (idem); None for imported features given
  # without probabilities
  probs: Optional[np.ndarray]
  target_features: np.ndarray  # [N, D] the final M_S's features (SVM target)

  @property
  def index(self) -> dict[str, int]:
    return {p: i for i, p in enumerate(self.paths)}

  def guesses(self) -> np.ndarray:
    """[N] M_S's top-1 source class (read by blocks of the mapped array); -1
    everywhere when the pool has no probabilities."""
    if self.probs is None:
      return np.full(len(self.paths), -1, np.int64)
    return diversify.top1_classes(self.probs)

  def guess_text(self) -> list[str]:
    """M_S's top-1 source class of each image as text ("" without probabilities),
    as to_label.csv's predicted_class column holds it."""
    return [str(int(g)) if g >= 0 else "" for g in self.guesses()]


SHARED = frozenset({"paths.txt", "embedding", "embedding.npz", "embed", "dedupe", "map",
                    "skipped.csv"})
ARRAYS = ("index", "features", "probs", "target_features")
# records of the embedding every selection shares (the others are a selection's)
EMBEDDING_SECTIONS = ("embed", "zero_shot")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Workdir:
  """Paths and recorded settings of one work directory and one of its
  selections (`selection`: None for the default one)."""

  def __init__(self, path: str, selection: Optional[str] = None):
    if not path:
      raise WorkdirError("--workdir is required.", field="workdir")
    if selection is not None and not _NAME.fullmatch(selection):
      raise WorkdirError(f"--selection {selection!r}: use 1-64 letters, digits, "
                         "'.', '_' or '-', starting with a letter or digit.",
                         field="selection")
    self.path = os.path.abspath(path)
    self.selection = selection
    self.sel_path = self.path if selection is None else os.path.join(
        self.path, "selections", selection)

  def file(self, *parts: str) -> str:
    """A file of the embedding (shared) or of this selection."""
    base = self.path if parts and parts[0] in SHARED else self.sel_path
    return os.path.join(base, *parts)

  # ---------------------------------------------------------------- records
  def _records(self, section: str) -> str:
    base = self.path if section in EMBEDDING_SECTIONS else self.sel_path
    return os.path.join(base, "workdir.json")

  def recorded(self, section: str) -> Optional[dict]:
    return io.read_json(self._records(section), {}).get(section)

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
    meta = io.read_json(self._records(section), {})
    meta[section] = values
    io.write_json(self._records(section), meta)

  def selections(self) -> list[str]:
    """Names of the named selections made here (the default one not listed)."""
    folder = os.path.join(self.path, "selections")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

  # ------------------------------------------------------------------ pool
  def paths(self) -> Optional[list[str]]:
    if not os.path.exists(self.file("paths.txt")):
      return None
    with open(self.file("paths.txt"), encoding="utf-8") as f:
      return f.read().splitlines()

  def embedded(self) -> bool:
    return os.path.isdir(self.file("embedding")) or \
        os.path.exists(self.file("embedding.npz"))

  def embedding(self) -> dict[str, np.ndarray]:
    """{index, features, probs, target_features} of the finished embedding,
    memory-mapped read-only (an embedding.npz of older versions is read).
    Imported features (`jaxal embed --features`) keep no target_features.npy
    (the features are the SVM's too) and no probs.npy when none were given
    (probs is then None)."""
    folder = self.file("embedding")
    if os.path.isdir(folder):
      arrays = array_store.read_npy_folder(folder)
      out = {k: arrays.get(k) for k in ARRAYS}
      if out["target_features"] is None:
        out["target_features"] = out["features"]
      return out
    path = self.file("embedding.npz")
    if not os.path.exists(path):
      raise WorkdirError(f"{self.path} has no finished embedding; run `jaxal embed "
                         f"--workdir={self.path} --images=DIR --source=DIR` first.")
    with np.load(path) as z:
      return {k: z[k] for k in ARRAYS}

  def pool(self) -> Pool:
    """The embedded pool (arrays memory-mapped); WorkdirError if `embed` has
    not finished."""
    arrays = self.embedding()
    index = arrays.pop("index")
    every = self.paths()
    return Pool([every[i] for i in index], **arrays)

  def source_names(self) -> Optional[list[str]]:
    """M_S's class names (its `classes.txt`, written by train_source; else the
    catalog's names of its dataset when they need no download), or None."""
    setup = self.recorded("embed")
    if setup is None:
      return None
    zero_shot = self.recorded("zero_shot")
    if zero_shot is not None:  # the probabilities are over the target classes
      return list(zero_shot["classes"])
    if setup.get("source") is None:  # imported features
      return None
    path = os.path.join(setup["source"], "classes.txt")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        return f.read().splitlines()
    cfg = io.read_json(os.path.join(setup["source"], "config.json"), {})
    try:
      from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
      if cfg.get("dataset", "").startswith("offline_") or cfg.get("dataset") in (
          "digits", "mit67"):
        return catalog.class_names(cfg["dataset"])
    except (ValueError, KeyError):
      pass
    return None

  # ------------------------------------------------------------ step state
  def read(self, name: str, default: Any = None) -> Any:
    return io.read_json(self.file(name), default)

  def write(self, name: str, obj: Any) -> None:
    io.write_json(self.file(name), obj)

  def offered(self) -> list[int]:
    """Pool indices sent to annotators so far (selection rounds, the batches
    DIRECT asked about within a round, balance batches, then `jaxal search`'s
    matches), in order, without repeats."""
    seen, out = set(), []
    sel = self.read("selection.json", {})
    bal = self.read("balance.json", {})
    found = [q["picks"] for q in self.read("search.json", {}).get("queries", [])]
    for group in (sel.get("picks", []) + sel.get("asked", []) + bal.get("batches", [])
                  + found):
      for i in group:
        if i not in seen:
          seen.add(i)
          out.append(i)
    return out


# ------------------------------------------------- labels against the pool
def target_classes(wd: Workdir, classes_file: Optional[str]) -> Optional[list[str]]:
  """The classes file's classes (which must match any recorded ones, and the
  zero-shot guesses' classes), else the recorded ones, else None."""
  zero_shot = wd.recorded("zero_shot")
  if zero_shot is not None:
    if classes_file and label_files.read_classes(classes_file) != zero_shot["classes"]:
      raise WorkdirError(f"--classes {classes_file}: the embedding's zero-shot guesses "
                         f"are over the classes {zero_shot['classes']}; label with "
                         "those, in that order.", field="classes")
    return list(zero_shot["classes"])
  if classes_file:
    classes = label_files.read_classes(classes_file)
    wd.check("classes", {"classes": classes},
             hint="The target classes cannot change within a work directory.")
    return classes
  recorded = wd.recorded("classes")
  return None if recorded is None else recorded["classes"]


def labeled(wd: Workdir, pool: Pool, labels_csv: str, classes_file: Optional[str],
            log: Log = print) -> tuple[list[str], dict[int, int]]:
  """(classes, {pool index: class id}) of the labels so far, validated.

  A labels file the labeling page writes is first brought up to date from its
  answer database (`store.bring_up_to_date`): every acknowledged answer counts,
  even when the page was killed before its next export or still serves.

  Without `classes_file` the classes recorded in the work directory are used,
  or, where none is, the sorted names found in the labels (then classes never
  labeled are unknown: N_t is the number found).
  """
  classes = target_classes(wd, classes_file)
  if labels_csv:  # the labeling page's answers it may lack (a killed server)
    store.bring_up_to_date(labels_csv, log=log)
  found = label_files.read_labels(labels_csv, pool=pool.index, classes=classes,
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
