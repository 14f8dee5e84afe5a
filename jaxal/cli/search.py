"""`jaxal search --text="..." | --image=PATH [--top=K]`: the unlabeled images of
the pool nearest a text or an example image, to label next.

    by text    a SigLIP source's text tower embeds the text; images ranked by
               the cosine of their image embeddings to it (SigLIP's logit is a
               growing function of that cosine, so the order is its order)
    by image   "more like this", with any features (DINOv2, ResNet, imported):
               a pool image by its path (its embedding as embedded), or an
               image file outside the pool, embedded by the source model as
               the pool was; images ranked by cosine similarity

Images already labeled (`--labels`), the example itself and the near-copies
`jaxal dedupe` set aside are never returned; ties go to the lower pool index.
The matches are written as to_label.csv (score: the cosine) and, for an image
folder, Label Studio tasks, and recorded in the selection's search.json, so
that their labels are accepted by every later step.
"""

from __future__ import annotations

import functools
import os
from typing import Optional

import numpy as np

from jaxal.cli import dedupe as dedupe_files
from jaxal.cli import select_balance, workdir
from jaxal.cli.workdir import Log, Pool, Workdir, WorkdirError
from jaxal.errors import InputError


@functools.lru_cache(maxsize=2)
def _tower(source: str):
  """A source's text tower, loaded once per process (the page searches often)."""
  from jaxal.models import foundation  # pylint: disable=g-import-not-at-top
  return foundation.load_text(source)


def _text_query(wd: Workdir, text: str) -> np.ndarray:
  from jaxal.models import foundation  # pylint: disable=g-import-not-at-top
  setup = wd.recorded("embed")
  if not setup.get("source"):
    raise InputError("--text: search by text needs a SigLIP source (its text "
                     "tower); these features were imported. Search by --image.",
                     field="text")
  try:
    tower = _tower(setup["source"])
  except InputError as e:
    raise InputError(f"--text: {e} Search by --image instead.", field="text") from None
  if foundation.overlong(tower, [text]).size:
    raise InputError(f"--text fills all {tower.tokenizer.max_length} tokens of the "
                     "text tower, so it may be cut; shorten it.", field="text")
  return foundation.text_embeddings(tower, [text])[0]


def _image_query(wd: Workdir, pool: Pool, image: str) -> tuple[np.ndarray, Optional[int]]:
  """(the example's embedding, its pool index or None)."""
  setup = wd.recorded("embed")
  root = setup["images"]
  rel = image
  if os.path.isabs(image) and not setup.get("tfds"):
    rel = os.path.relpath(image, root)
  i = pool.index.get(rel)
  if i is not None:
    return np.asarray(pool.features[i], np.float32), i
  if not os.path.isfile(image):
    raise InputError(f"--image {image!r} is neither an embedded image of {wd.path} "
                     f"(a path relative to {root}) nor an image file.", field="image")
  from jaxal.cli import embed, train_predict  # pylint: disable=g-import-not-at-top
  from jaxal.datasets import images  # pylint: disable=g-import-not-at-top
  trained = train_predict.load_source(wd, "--image outside the pool")
  folder, name = os.path.split(os.path.abspath(image))
  batch, _ = images.load_batch(folder, [name], trained.image_size,
                               preprocess=trained.preprocess)[:2]
  if not len(batch):
    raise InputError(f"--image {image!r} could not be read as an image.",
                     field="image")
  feats, _, _ = embed.signals(trained, setup["ensemble"], batch, 1)
  return np.asarray(feats[0], np.float32), None


def similarities(features, query: np.ndarray, rows: int = 1 << 16) -> np.ndarray:
  """[N] float64 cosine of each row of `features` [N, d] (read by blocks) with
  `query` [d]."""
  q = np.asarray(query, np.float64)
  q = q / max(np.linalg.norm(q), 1e-30)
  n = features.shape[0]
  sims = np.empty(n, np.float64)
  for s in range(0, n, rows):
    b = np.asarray(features[s:s + rows], np.float64)
    norm = np.linalg.norm(b, axis=1)
    sims[s:s + rows] = (b @ q) / np.where(norm > 0, norm, 1.0)
  return sims


def best(sims: np.ndarray, allowed: np.ndarray, top: int) -> np.ndarray:
  """The `top` allowed indices of highest `sims`, ties to the lower index."""
  idx = np.flatnonzero(allowed)
  return idx[np.lexsort((idx, -sims[idx]))[:top]]


def nearest(features, query: np.ndarray, allowed: np.ndarray, top: int,
            rows: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
  """(pool indices, cosines) of the `top` allowed rows of `features` [N, d]
  most similar to `query` [d], best first, ties to the lower index."""
  sims = similarities(features, query, rows)
  picks = best(sims, allowed, top)
  return picks, sims[picks]


def query_of(wd: Workdir, pool: Pool, *, text: Optional[str] = None,
             image: Optional[str] = None) -> tuple[np.ndarray, Optional[int]]:
  """(the query's embedding, the example's pool index or None) of one of
  `text` and `image`; InputError naming the flag otherwise."""
  if bool(text) == bool(image):
    raise InputError("give one of --text and --image.", field="text")
  if text:
    q, itself = _text_query(wd, text), None
  else:
    q, itself = _image_query(wd, pool, image)
  if q.shape[0] != pool.features.shape[1]:
    raise WorkdirError(f"the query's embedding has {q.shape[0]} values and the "
                       f"pool's features {pool.features.shape[1]}: they are not of "
                       "one model.")
  return q, itself


def record(wd: Workdir, *, text: Optional[str], image: Optional[str], top: int,
           picks: list[int], annotator: Optional[str] = None) -> None:
  """Adds a query and its matches to the selection's search.json (their labels
  then count: `Workdir.offered`)."""
  state = wd.read("search.json", {"queries": []})
  state["queries"].append({"text": text, "image": image, "top": int(top),
                           "picks": [int(i) for i in picks],
                           **({"annotator": annotator} if annotator else {})})
  wd.write("search.json", state)


def search(wd: Workdir, *, text: Optional[str] = None, image: Optional[str] = None,
           top: int = 20, labels_csv: Optional[str] = None,
           classes_file: Optional[str] = None, log: Log = print) -> list[int]:
  """Writes the `top` unlabeled images nearest `text` or `image` as
  to_label.csv (module docstring); returns their pool indices."""
  if bool(text) == bool(image):
    raise InputError("give one of --text and --image.", field="text")
  if isinstance(top, bool) or not isinstance(top, int) or top < 1:
    raise InputError(f"--top must be an int >= 1, got {top!r}.", field="top")
  pool = wd.pool()
  allowed = np.ones(len(pool.paths), bool)
  if labels_csv:
    _, have = workdir.labeled(wd, pool, labels_csv, classes_file, log=log)
    allowed[list(have)] = False
  found = dedupe_files.load(wd)
  if found is not None:
    allowed &= found.duplicates.kept
  query, itself = query_of(wd, pool, text=text, image=image)
  if itself is not None:
    allowed[itself] = False
  picks, sims = nearest(pool.features, query, allowed, top)
  record(wd, text=text, image=image, top=top, picks=picks.tolist())
  preds = pool.guess_text()
  name = select_balance.source_namer(wd)
  select_balance.write_to_label(wd, pool, [
      (int(i), k + 1, f"{s:.6g}", preds[i], name(preds[i]))
      for k, (i, s) in enumerate(zip(picks, sims))])
  log(f"search: {len(picks)} image(s) nearest "
      + (f"the text {text!r}" if text else f"the image {image!r}")
      + f" -> {wd.file('to_label.csv')}")
  return picks.tolist()
