"""A labels.csv edited by hand, read back into the labeling page's answer
database.

The database records the sha256 of the labels.csv it last wrote. A labels.csv
with other bytes (edited by hand, or written before the database existed) is
read into the database when a store opens it: its rows, in its order, replace
the answers, and answers the database took after its last export (a server
killed before the next one) are kept after them unless the file names their
image. While a server holds the database, the file is left alone: the running
page owns the answers, and its next export replaces the file.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Optional

from jaxal.cli.label_page import answerdb
from jaxal.cli.label_page.answerdb import Answer
from jaxal.cli.label_files import LabelsError, csv_records


def edited_answers(path: str) -> list[Answer]:
  """The answers of a labels.csv edited by hand, checked as `read_labels`
  checks a labels file (header, two cells a row, one row per image).

  Raises:
    LabelsError: a problem, naming its line, before the database changes.
  """
  records = csv_records(path)
  names = next(records)
  col = {k: names.index(k) for k in ("annotator", "time") if k in names}
  out, seen = [], {}
  for line, row in records:
    if row[0] in seen:
      raise LabelsError(f"{path}:{line}: duplicate row for {row[0]!r} (first on "
                        f"line {seen[row[0]]}); keep one label per image.")
    seen[row[0]] = line
    cell = {k: row[i] if i < len(row) else "" for k, i in col.items()}
    out.append(Answer(row[0], row[1], cell.get("annotator", ""), cell.get("time", "")))
  return out


def import_if_edited(db: sqlite3.Connection, labels_path: str, db_path: str, *,
                     log: Callable[[str], None] = print) -> Optional[list[Answer]]:
  """Reads labels.csv into the database when its bytes are not the last
  export's; the caller holds the export lock.

  Returns:
    The answers the database holds now, in order, when it read the file;
    None when the file is missing, jaxal's own, or a server holds the database.
  """
  on_disk = answerdb.sha256(labels_path)
  exported = answerdb.meta(db, "exported_sha256")
  if on_disk is None or on_disk == exported:
    return None
  if answerdb.someone_serves(db_path):  # (the caller serves only after opening)
    # The running page owns the database: importing under it would undo its
    # answers in memory and on disk. Its next export replaces the file.
    log(f"label: {labels_path} was edited while `jaxal label` serves "
        "this selection; not read (stop the page, then edit).")
    return None
  since = int(answerdb.meta(db, "exported_seq") or 0)
  edited = edited_answers(labels_path)
  named = {a.path for a in edited}
  later = [a for a in answerdb.answers_after(db, since) if a.path not in named]
  merged = edited + later
  with answerdb.transaction(db):
    db.execute("DELETE FROM answers")
    answerdb.count_removal(db)
    db.executemany("INSERT INTO answers (path, label, annotator, time) "
                   "VALUES (?, ?, ?, ?)",
                   [(a.path, a.label, a.annotator, a.time) for a in merged])
  if exported is not None or later:
    log(f"label: read {labels_path} (changed since jaxal wrote it): "
        f"{len(edited)} answers" + (f", and {len(later)} taken after its last "
                                    "export kept" if later else ""))
  return merged
