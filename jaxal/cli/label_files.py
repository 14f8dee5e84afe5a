"""The annotators' files: the target classes and the labels returned so far.

- Classes file: one target class name a line (blank lines and `#` comments
  ignored). The balancing step needs every target class, found or not, from the
  start (method guide §4: n_c runs over all N_t classes).
- Labels CSV: a header starting `path,label`, then one row per labeled image:
  its path as written in `to_label.csv` (relative to the image folder; an absolute
  path inside it is accepted) and its class name. Further columns (the labeling
  page's `annotator,time`) are ignored.
- Or a Label Studio JSON export of the tasks jaxal wrote (`label_studio.py`):
  any labels file whose name ends in `.json`.

Both files are read as spreadsheets write them: a UTF-8 byte-order mark ("CSV
UTF-8"), CRLF line ends, and quoted fields (a path with a comma) are accepted.

Every problem is a `LabelsError` naming the file and line (or task), raised
before anything is written, so a bad file changes nothing in the work directory.
"""

from __future__ import annotations

import csv
import io as _io
import os
from typing import Collection, Mapping, Optional

from jaxal.errors import InputError


class LabelsError(InputError):
  """A classes or labels file that cannot be used; the message says where."""


# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV
# Injection"); jaxal prefixes such cells with "'" (and cells starting with "'",
# so that reading undoes exactly the prefix).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def to_cell(text: str) -> str:
  """User-controlled text (a path, class or annotator name, a message) as a CSV
  cell that a spreadsheet shows as text and never evaluates: "'" before a
  leading =, +, -, @, tab, carriage return or '. `from_cell` undoes it."""
  return "'" + text if text.startswith(_FORMULA_START) else text


def from_cell(cell: str) -> str:
  """A cell of a CSV jaxal wrote (or a person saved): `to_cell`'s "'" removed.
  Spreadsheets drop that prefix when they save, so both read the same."""
  return cell[1:] if cell.startswith("'") else cell


def read_class_name(line: str) -> str:
  """The class name a line of a classes file holds ("" for none)."""
  return _unquote(line.strip())


def read_classes(path: str) -> list[str]:
  """Class names of the classes file at `path`, in file order."""
  if not path:
    raise LabelsError("--classes is required: a text file with one target class "
                      "name a line (every class, found or not).")
  if not os.path.isfile(path):
    raise LabelsError(f"--classes {path!r} does not exist.")
  names, seen = [], {}
  lines = _text(path).splitlines()  # \n, \r\n and \r alike
  for line_no, line in enumerate(lines, 1):
    name = read_class_name(line)
    if not name or name.startswith("#"):
      continue
    if "," in name:
      raise LabelsError(f"{path}:{line_no}: class name {name!r} contains a comma; "
                        "rename the class.")
    if name in seen:
      raise LabelsError(f"{path}:{line_no}: class {name!r} is listed twice (first "
                        f"on line {seen[name]}).")
    seen[name] = line_no
    names.append(name)
  if len(names) < 2:
    raise LabelsError(f"{path}: lists {len(names)} class(es); list every target "
                      "class, one a line (at least 2).")
  return names


def _text(path: str) -> str:
  """The file's text: UTF-8, a leading byte-order mark dropped."""
  try:
    with open(path, encoding="utf-8-sig", newline="") as f:
      return f.read()
  except UnicodeDecodeError as e:
    line = 1 + e.object[:e.start].count(b"\n")
    raise LabelsError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start});"
                      " save the file as UTF-8 (a spreadsheet's \"CSV UTF-8\").") \
        from None


def _unquote(name: str) -> str:
  """A classes-file line as a one-column CSV writes it: `"name"` -> name."""
  if len(name) >= 2 and name[0] == name[-1] == '"':
    return name[1:-1].replace('""', '"').strip()
  return name


def _normalize(path: str, root: Optional[str]) -> str:
  if root and os.path.isabs(path):
    rel = os.path.relpath(path, root)
    if not rel.startswith(".."):
      return rel.replace(os.sep, "/")
  return path.replace("\\", "/")


def read_labels(path: str, *, pool: Mapping[str, int],
                classes: Optional[Collection[str]],
                offered: Collection[int], root: Optional[str] = None
                ) -> dict[int, str]:
  """{pool index: class name} of the labels CSV at `path`.

  Args:
    path: the labels CSV.
    pool: {image path relative to the image folder: pool index} of the
      embedded images.
    classes: the valid class names (None: any non-empty name).
    offered: pool indices sent to the annotators so far (every to_label.csv);
      a label for any other image is refused.
    root: the image folder, to accept absolute paths inside it.

  Raises:
    LabelsError naming the file and line of the first problem.
  """
  if not path:
    raise LabelsError("--labels is required: the CSV (header path,label) of the "
                      "labels returned so far.")
  if not os.path.isfile(path):
    raise LabelsError(f"--labels {path!r} does not exist.")
  classes = None if classes is None else set(classes)
  offered = set(int(i) for i in offered)
  out: dict[int, str] = {}
  first_line: dict[int, int] = {}
  rows = _json_rows(path) if path.lower().endswith(".json") else _csv_rows(path)
  for line, where, raw, label in rows:
    rel = _normalize(raw.strip(), root)
    label = label.strip()
    if rel not in pool:
      raise LabelsError(f"{path}:{where}: unknown path {raw!r}: not an embedded "
                        "image of this work directory (paths are relative to "
                        "--images, as in to_label.csv).")
    idx = pool[rel]
    if idx in first_line:
      raise LabelsError(f"{path}:{where}: duplicate row for {rel!r} (first on line "
                        f"{first_line[idx]}); keep one label per image.")
    if not label:
      raise LabelsError(f"{path}:{where}: empty label for {rel!r}; write its class "
                        "name or leave the row out.")
    if classes is not None and label not in classes:
      raise LabelsError(f"{path}:{where}: unknown class {label!r} for {rel!r}; "
                        "valid classes are those of --classes.")
    if idx not in offered:
      raise LabelsError(f"{path}:{where}: {rel!r} is outside the selection: it was "
                        "never in a to_label.csv of this work directory.")
    first_line[idx] = line
    out[idx] = label
  return out


def check_header(header: Optional[list], path: str) -> list[str]:
  """The lower-cased column names of a labels CSV's `header` row, which must
  start with path,label (a `LabelsError` naming the file otherwise)."""
  if header is None or [h.strip().lower() for h in header[:2]] != ["path", "label"]:
    raise LabelsError(f"{path}:1: the header must start with path,label, got "
                      f"{','.join(header or [])!r}.")
  return [h.strip().lower() for h in header]


def csv_records(path: str):
  """The lower-cased column names of a labels CSV, then (line, cells) of each
  non-empty row, every cell read back with `from_cell`, each row of at least
  two cells (a `LabelsError` naming the line otherwise)."""
  reader = csv.reader(_io.StringIO(_text(path), newline=""))
  try:
    yield check_header(next(reader, None), path)
    for row in reader:
      line = reader.line_num
      if not row or not any(c.strip() for c in row):
        continue
      if len(row) < 2:
        raise LabelsError(f"{path}:{line}: expected path,label, got {row!r}.")
      yield line, [from_cell(c) for c in row]
  except csv.Error as e:
    raise LabelsError(f"{path}:{reader.line_num}: not valid CSV ({e}).") from None


def _csv_rows(path: str):
  """(line, line, path, label) of each non-empty row of a labels CSV."""
  records = csv_records(path)
  next(records)
  for line, row in records:
    yield line, line, row[0], row[1]


def _json_rows(path: str):
  """(task number, "task N", path, label) of each labeled task of a Label
  Studio export (`label_studio.read_export`)."""
  from jaxal.cli import label_studio  # pylint: disable=g-import-not-at-top
  try:
    text = _text(path)
    for k, (raw, label) in label_studio.read_export(text):
      yield k, f"task {k}", raw, label
  except label_studio.FormatError as e:
    raise LabelsError(f"{path}:{e}") from None
