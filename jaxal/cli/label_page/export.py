"""labels.csv and conflicts.csv written from the labeling page's answers.

labels.csv stays the interchange file: the `path,label` CSV every command reads
(`--labels`), with two more columns, `annotator` and `time` (UTC, ISO 8601), in
answer order. It is written from the answer database, atomically (temporary
file, fsync, rename), under the export lock (labels.csv.lock) that the readers
bringing it up to date take too (`store.bring_up_to_date`), and its sha256 and
last answer are recorded in the database in the same locked step, so a hand
edit is recognised later.

conflicts.csv keeps a second, different answer for an already labeled image
(`path,label,annotator,time,kept_label,kept_annotator`). Every CSV cell is
spreadsheet-safe (`labels.to_cell`: a cell that would be a formula gets a
leading "'", removed again on reading).
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import sqlite3
import threading
from typing import Callable, Iterable

from jaxal import io
from jaxal.cli.label_page import answerdb
from jaxal.cli.label_files import from_cell, to_cell

LABELS_HEADER = ("path", "label", "annotator", "time")
CONFLICTS_HEADER = ("path", "label", "annotator", "time", "kept_label",
                    "kept_annotator")


def csv_text(header, rows: Iterable) -> str:
  """The rows as CSV, every cell spreadsheet-safe (`labels.to_cell`): paths,
  labels and annotator names are user text; the times are jaxal's."""
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(header)
  w.writerows([to_cell(c) for c in r] for r in rows)
  return buf.getvalue()


def read_rows(path: str) -> list[list[str]]:
  """The data rows of a CSV file jaxal wrote (header and blank rows dropped)."""
  with open(path, encoding="utf-8-sig", newline="") as f:
    rows = list(csv.reader(f))
  return [[from_cell(c) for c in r] for r in rows[1:] if r and any(c.strip() for c in r)]


class Exporter:
  """Writes labels.csv from the answer database: now (`export`), or soon from
  a background thread (`request`, at most once per `every_s`, so no answer
  waits for it).

  Answers only append between undos, so the text of the last export is kept
  and only the rows after it are formatted: at 50,000 labels a full export
  holds Python's lock for tens of milliseconds, which the answers being served
  meanwhile would wait on. An undo or an import (counted in the database, in
  the same transaction: `answerdb.count_removal`) makes the next export a full
  one.

  Args:
    labels_path: labels.csv.
    db_path: its answer database; the background thread opens its own
      connection (WAL lets it read while answers are written).
    every_s: the background thread's least interval between two exports.
    log: where a failed background export is reported.
  """

  def __init__(self, labels_path: str, db_path: str, *, every_s: float = 2.0,
               log: Callable[[str], None] = print):
    self.labels_path, self.db_path = labels_path, db_path
    self.every_s = float(every_s)
    self._log = log
    self._cache = None  # (removals, last seq, text) of the last export
    self._wanted = threading.Event()
    self._closed_event = threading.Event()
    self._closed = False
    self._thread = threading.Thread(target=self._loop, daemon=True,
                                    name="jaxal-labels-export")

  def export(self, db: sqlite3.Connection) -> str:
    """Writes labels.csv from `db` now (atomically); returns its path."""
    # Under the export lock: a reader bringing the file up to date (another
    # process) never interleaves its write and record with this one's.
    with io.file_lock(answerdb.export_lock(self.labels_path)):
      db.execute("BEGIN")  # one snapshot: the rows, their last seq, the removals
      try:
        removals = int(answerdb.meta(db, "removals") or 0)
        cached = self._cache if self._cache and self._cache[0] == removals else None
        rows = answerdb.rows_after(db, cached[1] if cached else 0)
        last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM answers").fetchone()[0]
      finally:
        db.execute("COMMIT")
      if cached:
        text = cached[2] + csv_text(LABELS_HEADER, rows).split("\n", 1)[1]
      else:
        text = csv_text(LABELS_HEADER, rows)
      self._cache = (removals, last, text)
      io.write_text(self.labels_path, text)
      digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
      with answerdb.transaction(db):
        db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       [("exported_sha256", digest), ("exported_seq", str(last)),
                        ("exported_removals", str(removals))])
    return self.labels_path

  def start(self) -> None:
    """Starts the background thread that `request` wakes."""
    self._thread.start()

  def request(self) -> None:
    """Asks the background thread to write labels.csv soon (a batch ended)."""
    self._wanted.set()

  def stop(self) -> None:
    """Ends the background thread (waiting for an export under way)."""
    self._closed = True
    self._closed_event.set()
    self._wanted.set()
    if self._thread.is_alive():
      self._thread.join(timeout=30)

  def _loop(self) -> None:
    db = answerdb.connect(self.db_path)
    try:
      while True:
        self._wanted.wait()
        if self._closed:
          return
        # At most one export per `every_s`: each writes the whole file, and
        # the first after an undo formats every row again, holding Python's
        # lock for tens of milliseconds at 50,000 labels.
        self._closed_event.wait(self.every_s)
        if self._closed:
          return
        self._wanted.clear()
        try:
          self.export(db)
        except Exception as e:  # pylint: disable=broad-except
          # The database holds every answer; the next export writes the file.
          self._log(f"label: could not write {self.labels_path} ({e}); the "
                    f"answers are safe in {self.db_path}")
    finally:
      db.close()


def write_conflicts(path: str, rows: list[tuple]) -> None:
  """Writes conflicts.csv whole (conflicts are rare)."""
  io.write_text(path, csv_text(CONFLICTS_HEADER, rows))

