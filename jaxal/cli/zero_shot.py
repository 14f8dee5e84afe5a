"""`jaxal embed --source=SIGLIP --classes=FILE [--prompts=FILE]`: the target
classes' names as zero-shot guesses (`jaxal.zeroshot`), written beside the
features as the pool's probabilities.

    embedding/probs.npy   [N, C] p(class | image) over the classes file's
                          classes (normalised SigLIP sigmoids)
    workdir.json          "zero_shot": {classes, prompts}; "classes" too

Every step after it reads them as it reads M_S's probabilities: the uncertainty
functions rank over the target classes, Algorithm 1 diversifies by the guessed
class, and to_label.csv's predicted_name is the guessed class's name. The
classes are recorded as the work directory's target classes (labels must use
them). The probabilities are written under a temporary name and renamed.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from jaxal import zeroshot
from jaxal.cli import label_files, workdir
from jaxal.cli.workdir import Log, Workdir, WorkdirError
from jaxal.errors import InputError


def _line_of(path: str, name: str) -> int:
  """The line of the classes file that names `name` (as `read_classes` reads
  it: stripped, unquoted)."""
  with open(path, encoding="utf-8-sig") as f:
    for line_no, line in enumerate(f.read().splitlines(), 1):
      if label_files.read_class_name(line) == name:
        return line_no
  return 0


def guesses(wd: Workdir, *, source_dir: str, classes_file: str,
            prompts_file: Optional[str] = None, log: Log = print) -> np.ndarray:
  """Writes the pool's zero-shot probabilities over the classes of
  `classes_file` (module docstring); returns them."""
  from jaxal.models import foundation  # pylint: disable=g-import-not-at-top
  classes = label_files.read_classes(classes_file)
  prompts = (zeroshot.read_prompts(prompts_file) if prompts_file
             else list(zeroshot.DEFAULT_PROMPTS))
  setup = {"classes": classes, "prompts": prompts}
  probs_path = wd.file("embedding", "probs.npy")
  if wd.check("zero_shot", setup, hint="The zero-shot classes of an embedding do "
              "not change; embed into a new --workdir for others.") and \
      os.path.exists(probs_path):
    log(f"embed: zero-shot guesses over {len(classes)} classes already written")
    return np.load(probs_path, mmap_mode="r")
  if not os.path.isdir(wd.file("embedding")):
    raise WorkdirError(f"{wd.path} keeps its embedding in embedding.npz (an older "
                       "layout); embed into a new --workdir for zero-shot guesses.")
  if os.path.exists(probs_path):
    raise WorkdirError(f"--classes: {wd.path}'s source model already gave "
                       "probabilities (source classes); zero-shot guesses need a "
                       "SigLIP source, which gives features only.", field="classes")
  try:
    tower = foundation.load_text(source_dir)
  except InputError as e:
    raise InputError(f"--classes: zero-shot guesses need a text tower: {e}",
                     field="classes") from None
  texts = zeroshot.prompt_texts(classes, prompts)
  full = foundation.overlong(tower, texts)
  if full.size:
    name = classes[full[0] // len(prompts)]
    raise InputError(
        f"{classes_file}:{_line_of(classes_file, name)}: {texts[full[0]]!r} fills "
        f"all {tower.tokenizer.max_length} tokens of the text tower, so it may be "
        "cut; shorten the class name (or the template).", field="classes")
  class_embeds = zeroshot.ensemble(foundation.text_embeddings(tower, texts), len(classes))
  probs = zeroshot.probabilities(wd.pool().features, class_embeds, tower.logit_scale,
                                 tower.logit_bias)
  # Recorded first: a run killed before the rename finds its record and no
  # probs.npy, and computes them again.
  wd.record("zero_shot", setup)
  tmp = probs_path + ".tmp.npy"
  np.save(tmp, probs)
  with open(tmp, "rb") as f:
    os.fsync(f.fileno())
  os.replace(tmp, probs_path)
  workdir.remember_classes(wd, classes, classes_file)
  top = np.bincount(probs.argmax(1), minlength=len(classes))
  log(f"embed: zero-shot guesses over {len(classes)} classes ({len(prompts)} "
      f"template(s)) -> {probs_path}; images per guessed class: "
      + ", ".join(f"{c} {n}" for c, n in zip(classes, top)))
  return probs


def guidance(wd: Workdir, pool, classes, guess_weight: Optional[float]
             ) -> Optional[np.ndarray]:
  """The guesses the balancing step follows (`balancing.balanced_select(
  guesses=)`), or None for the paper's rule (`guess_weight` None); refused
  unless the embedding has zero-shot guesses over exactly `classes`."""
  if guess_weight is None:
    return None
  zs = wd.recorded("zero_shot")
  if zs is None or pool.probs is None:
    raise WorkdirError("--guesses follows the embedding's zero-shot guesses, and "
                       f"{wd.path} has none: embed with a SigLIP --source and "
                       "--classes=FILE first.", field="guesses")
  if list(classes) != list(zs["classes"]):
    raise WorkdirError(f"--guesses: the zero-shot guesses are over {zs['classes']}, "
                       f"the labels over {list(classes)}.", field="guesses")
  w = float(guess_weight)
  if not (np.isfinite(w) and w >= 0):
    raise InputError(f"--guess_weight must be a number >= 0, got {guess_weight!r}.",
                     field="guess_weight")
  return pool.probs


def guidance_flags(guess_weight: Optional[float]) -> dict:
  """What a balancing run records of its guidance (nothing for the paper's
  rule, so that the records of runs without it stay as they were)."""
  return {} if guess_weight is None else {"guesses": True,
                                          "guess_weight": float(guess_weight)}
