"""Label Studio, for teams that label there: jaxal's images to label as Label
Studio tasks, and Label Studio's JSON export read back as labels.

Formats, as Label Studio documents them (labelstud.io/guide/task_format and
/guide/export):

- Import (tasks): a JSON list of `{"data": {...}, "predictions": [...]}`. jaxal
  writes `data.image` (the image's URL; for local files Label Studio serves
  `/data/local-files/?d=PATH` with PATH relative to its
  LOCAL_FILES_DOCUMENT_ROOT, so set that to the image folder), `data.jaxal_path`
  (the path as in to_label.csv, which the export keeps), `data.jaxal_rank` and
  the source model's guess; one prediction whose `score` is jaxal's rank, so
  the Data Manager's "Prediction score" column sorts the tasks in jaxal's order
  (ascending). A prediction's `result` holds the guess as a choice only when it
  names a target class (the first selection's guesses are source classes).
- Labeling config: `<Image name="image" value="$image"/>` and
  `<Choices name="choice" toName="image">` (`labeling_config`).
- Export "JSON": the tasks with `annotations`, each a dict with `result` (a list
  of regions; a classification is `{"type": "choices", "from_name": "choice",
  "to_name": "image", "value": {"choices": [NAME]}}`) and `was_cancelled`.
  Export "JSON-MIN": one flat dict per annotated task, the data fields and the
  choice under its control's name (`"choice": NAME`).

Reading an export: a task's image is `data.jaxal_path`, or else its `image`
URL's `d=` parameter or path; its label is the choice of its non-cancelled
annotations, which must agree (a disagreement is refused, naming the task:
resolve it in Label Studio). Tasks without an annotation are skipped.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Iterator, Optional, Sequence
from xml.sax import saxutils

from jaxal.errors import InputError

LOCAL_FILES = "/data/local-files/?d="


class FormatError(InputError):
  """A Label Studio file that cannot be read; the message starts with where."""


def image_url(path: str, prefix: str = LOCAL_FILES) -> str:
  return prefix + urllib.parse.quote(path, safe="/")


def tasks(rows: Sequence[dict], *, classes: Optional[Sequence[str]] = None,
          prefix: str = LOCAL_FILES, model_version: str = "jaxal") -> list[dict]:
  """Label Studio tasks of to_label rows (dicts with path, rank, score,
  predicted_class, predicted_name)."""
  target = set(classes or ())
  out = []
  for r in rows:
    guess = r.get("predicted_name") or r.get("predicted_class", "")
    result = []
    if guess in target:
      result = [{"from_name": "choice", "to_name": "image", "type": "choices",
                 "value": {"choices": [guess]}}]
    out.append({
        "data": {"image": image_url(r["path"], prefix), "jaxal_path": r["path"],
                 "jaxal_rank": int(r["rank"]), "jaxal_score": r.get("score", ""),
                 "source_guess": guess},
        "predictions": [{"model_version": model_version, "score": float(r["rank"]),
                         "result": result}],
    })
  return out


def labeling_config(classes: Sequence[str]) -> str:
  """The labeling config (XML) whose names the tasks and `read_export` use."""
  choices = "\n".join(f'    <Choice value={saxutils.quoteattr(c)}/>' for c in classes)
  return ('<View>\n  <Image name="image" value="$image"/>\n'
          '  <Choices name="choice" toName="image" choice="single" showInline="true">\n'
          f"{choices}\n  </Choices>\n</View>\n")


def _path_of(data: dict, where: str) -> str:
  if isinstance(data.get("jaxal_path"), str):
    return data["jaxal_path"]
  url = data.get("image")
  if not isinstance(url, str) or not url:
    raise FormatError(f"{where}: no data.jaxal_path or data.image to name its "
                      "image; export the tasks jaxal wrote (to_label.label_studio"
                      ".json).")
  parsed = urllib.parse.urlparse(url)
  d = urllib.parse.parse_qs(parsed.query).get("d")
  return urllib.parse.unquote(d[0] if d else parsed.path.lstrip("/"))


def _choice(result, where: str) -> Optional[str]:
  if not isinstance(result, list):
    raise FormatError(f"{where}: annotation result is not a list.")
  names = [c for r in result if isinstance(r, dict) and r.get("type") == "choices"
           for c in (r.get("value") or {}).get("choices", [])]
  if len(set(names)) > 1:
    raise FormatError(f"{where}: one annotation chooses several classes "
                      f"{sorted(set(names))}; keep one.")
  return names[0] if names else None


def read_export(text: str) -> Iterator[tuple[int, tuple[str, str]]]:
  """(task number from 1, (image path, label)) of each labeled task of a Label
  Studio JSON or JSON-MIN export."""
  try:
    items = json.loads(text)
  except json.JSONDecodeError as e:
    raise FormatError(f"{e.lineno}: not JSON ({e.msg}); export from Label Studio "
                      "as JSON or JSON-MIN.") from None
  if not isinstance(items, list):
    raise FormatError("1: a Label Studio export is a JSON list of tasks.")
  for k, task in enumerate(items, 1):
    where = f"task {k}" + (f" (id {task.get('id')})" if isinstance(task, dict)
                           and "id" in task else "")
    if not isinstance(task, dict):
      raise FormatError(f"{where}: not a JSON object.")
    if "data" in task or "annotations" in task:  # JSON
      data = task.get("data") or {}
      labels = []
      for a in task.get("annotations") or []:
        if not isinstance(a, dict) or a.get("was_cancelled"):
          continue
        c = _choice(a.get("result", []), where)
        if c is not None:
          labels.append(c)
      if not labels:
        continue
      if len(set(labels)) > 1:
        raise FormatError(f"{where}: its annotations disagree ({sorted(set(labels))});"
                          " resolve the task in Label Studio, then export again.")
      yield k, (_path_of(data, where), labels[0])
    else:  # JSON-MIN: the data fields and the choice at top level
      c = task.get("choice")
      if isinstance(c, dict):
        c = (c.get("choices") or [None])[0]
      if isinstance(c, list):
        if len(set(c)) > 1:
          raise FormatError(f"{where}: chooses several classes {sorted(set(c))}; "
                            "keep one.")
        c = c[0] if c else None
      if c is None:
        continue
      if not isinstance(c, str):
        raise FormatError(f"{where}: choice {c!r} is not a class name.")
      yield k, (_path_of(task, where), c)
