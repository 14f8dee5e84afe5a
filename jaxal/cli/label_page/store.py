"""The labeling page's answers on disk: an SQLite database, and the selection's
labels.csv written from it. The parts: the database (`answerdb.py`), the export
of labels.csv and conflicts.csv (`export.py`), the reading back of a hand-edited
labels.csv (`handedit.py`); here, the `Store` the page writes its answers to,
and `bring_up_to_date` for every command that reads labels.csv.

Every answer is one durable SQLite transaction (`answerdb.py` says how and
why SQLite).

labels.csv stays the interchange file: the `path,label` CSV every command reads
(`--labels`), with two more columns, `annotator` and `time` (UTC, ISO 8601), in
answer order. It is written from the database, atomically (temporary file, fsync,
rename), after the end of every batch of the balancing step (`request_export`:
in a background thread, at most once per `export_every_s`, so no answer waits
for it), when the server stops, when a store is opened, and on demand
(`jaxal label --export`). Between those points it
may lag the database by the current batch; the database is the record. So
every command that reads a labels file with a database beside it (`train`,
`report`, `balance`, `select --rounds`, through `workdir.labeled`) first calls
`bring_up_to_date`, which writes labels.csv from the database when the database
holds answers the file lacks (a server killed with SIGKILL before its next
export, or one still serving) and says so in one line. Every write of labels.csv
and of the export's record in the database happens under one file lock
(labels.csv.lock), the server's exports included, so a reader never interleaves
with the server; while the server runs, the reader writes the same file the
server's next export would (both are the database's rows in answer order).

Hand edits keep working: the database records the sha256 of the labels.csv it
last wrote. Opening a store whose labels.csv has other bytes (edited by hand, or
written before this database existed) reads that file into the database: its
rows, in its order, replace the answers, and answers the database took after its
last export (a server killed before the next one) are kept after them unless the
file names their image. A labels.csv that is missing is written again from the
database (delete both files to start over). `bring_up_to_date` applies the same
rule when no server holds the selection (the server holds labels.sqlite.serving
locked while it runs); while one does, a hand-edited file is read as it is, with
a warning that the page's next export replaces it (stop the page before editing).

conflicts.csv keeps a second, different answer for an already labeled image
(`path,label,annotator,time,kept_label,kept_annotator`); the first answer is never
overwritten. Conflicts are rare, so the file is rewritten whole at each one.
Every CSV cell is spreadsheet-safe (`labels.to_cell`: a cell that would be a
formula gets a leading "'", removed again on reading).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Callable, Optional

from jaxal import io
from jaxal.cli.label_page import answerdb, export, handedit
# The store's vocabulary, for its users (`workdir`, the page, the tests).
from jaxal.cli.label_page.answerdb import Answer, database_path, now  # noqa: F401
from jaxal.cli.label_page.export import CONFLICTS_HEADER, LABELS_HEADER  # noqa: F401


class Store:
  """The answers of one selection, in answer order.

  `add`, `remove` and `add_conflict` return once the change is durable. The
  answers are also held in memory by path (`get`, `len`), so reading them costs
  nothing per request. Not thread-safe by itself: the labeling session calls it
  under its lock; only the export runs in a thread of its own, on its own
  connection (WAL lets it read while answers are written).

  Opening a store reads a hand-edited labels.csv into the database
  (`handedit.py`), then writes labels.csv from it.

  Args:
    labels_path: labels.csv.
    conflicts_path: conflicts.csv.
    db_path: the answer database (labels.sqlite beside labels.csv by default).
    export_every_s: the background export's least interval (`request_export`).
    log: where messages go.
    background: whether `request_export` has a thread to wake (a reader
      bringing a file up to date needs none).
  """

  def __init__(self, labels_path: str, conflicts_path: str,
               db_path: Optional[str] = None, *, export_every_s: float = 2.0,
               log: Callable[[str], None] = print, background: bool = True):
    self.labels_path = labels_path
    self.conflicts_path = conflicts_path
    self.db_path = db_path or database_path(labels_path)
    self.log = log
    self._serving = None  # the open lock file of `serve`
    self._closed = False
    self._db = answerdb.connect(self.db_path)
    self._by_path = {a.path: a for a in answerdb.answers_after(self._db)}
    self.conflicts: list[tuple] = []
    if os.path.exists(conflicts_path):
      self.conflicts = [tuple(r) for r in export.read_rows(conflicts_path)]
    with io.file_lock(answerdb.export_lock(labels_path)):
      merged = handedit.import_if_edited(self._db, labels_path, self.db_path, log=log)
    if merged is not None:
      self._by_path = {a.path: a for a in merged}
    self._exporter = export.Exporter(labels_path, self.db_path,
                                     every_s=export_every_s, log=log)
    self.export()
    if background:
      self._exporter.start()

  def serve(self) -> None:
    """Marks the database as held by a running server (until `close` or the
    process's death): readers then leave a hand-edited labels.csv alone. A
    second server on the same selection is refused (`RuntimeError`)."""
    self._serving = answerdb.hold_serving(self.db_path)

  # --------------------------------------------------------------- answers
  @property
  def answers(self) -> list[Answer]:
    """Every answer, in answer order (a copy)."""
    return list(self._by_path.values())

  def __len__(self) -> int:
    return len(self._by_path)

  def get(self, path: str) -> Optional[Answer]:
    """The answer for `path`, or None."""
    return self._by_path.get(path)

  def last_of(self, annotator: str) -> Optional[Answer]:
    """`annotator`'s most recent answer still kept, or None."""
    row = self._db.execute(
        "SELECT path, label, annotator, time FROM answers WHERE annotator = ? "
        "ORDER BY seq DESC LIMIT 1", (annotator,)).fetchone()
    return Answer(*row) if row else None

  def add(self, answer: Answer) -> None:
    """Appends `answer`; returns once it is on disk. Refuses a second answer
    for the same image (`sqlite3.IntegrityError`): conflicts go to
    `add_conflict`."""
    with answerdb.transaction(self._db) as db:
      db.execute("INSERT INTO answers (path, label, annotator, time) VALUES (?, ?, ?, ?)",
                 (answer.path, answer.label, answer.annotator, answer.time))
    self._by_path[answer.path] = answer

  def remove(self, path: str) -> Answer:
    """Deletes the answer for `path` (an undo); returns it."""
    gone = self._by_path[path]
    with answerdb.transaction(self._db) as db:
      db.execute("DELETE FROM answers WHERE path = ?", (path,))
      answerdb.count_removal(db)
    del self._by_path[path]
    return gone

  def add_conflict(self, answer: Answer, kept: Answer) -> None:
    """Keeps `answer`, which differs from the first answer `kept`, aside."""
    rows = self.conflicts + [(answer.path, answer.label, answer.annotator,
                              answer.time, kept.label, kept.annotator)]
    export.write_conflicts(self.conflicts_path, rows)
    self.conflicts = rows

  # ---------------------------------------------------------------- export
  def export(self) -> str:
    """Writes labels.csv from the database now (atomically); returns its path."""
    return self._exporter.export(self._db)

  def request_export(self) -> None:
    """Asks the background thread to write labels.csv soon (a batch ended)."""
    self._exporter.request()

  def close(self) -> None:
    """Writes labels.csv a last time and closes the database."""
    if self._closed:
      return
    self._closed = True
    self._exporter.stop()
    self.export()
    self._db.close()
    if self._serving is not None:
      self._serving.close()  # releases the lock
      self._serving = None


def bring_up_to_date(labels_path: str, conflicts_path: Optional[str] = None, *,
                     log: Callable[[str], None] = print) -> bool:
  """Writes labels.csv from its answer database when the database holds
  answers (or undos) the file lacks; returns whether it wrote.

  For every reader of a labels file (`workdir.labeled`): nothing happens
  without a database beside the file, or when the file is its last export.
  When no server holds the database, this is exactly what opening the store
  does (a hand-edited file is read into the database first, then exported).
  While a server runs, the file is written from the database under the export
  lock the server takes too, and a hand-edited file is left as it is (the
  server owns the database; the warning says so).
  """
  db_path = database_path(labels_path)
  if not labels_path.lower().endswith(".csv") or not os.path.exists(db_path):
    return False
  try:
    return _bring_up_to_date(labels_path, db_path, conflicts_path, log)
  except (OSError, sqlite3.Error) as e:  # a read-only folder, a busy database
    log(f"labels: could not bring {labels_path} up to date from {db_path} "
        f"({type(e).__name__}: {e}); reading it as it is (`jaxal label --export` "
        "writes it).")
    return False


def _bring_up_to_date(labels_path, db_path, conflicts_path, log) -> bool:
  # A read-only look first: an up-to-date file needs no lock (nor write access).
  try:
    ro = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30.0)
    try:
      if answerdb.up_to_date(ro, labels_path):
        return False
    finally:
      ro.close()
  except sqlite3.Error:
    pass  # e.g. an old database without the meta table: the locked path creates it
  with io.file_lock(answerdb.export_lock(labels_path)):
    db = answerdb.connect(db_path)
    try:
      if answerdb.up_to_date(db, labels_path):
        return False
      exported_seq = int(answerdb.meta(db, "exported_seq") or 0)
      serving = answerdb.someone_serves(db_path)
      edited = os.path.exists(labels_path) and \
          answerdb.sha256(labels_path) != answerdb.meta(db, "exported_sha256")
      lacked = db.execute("SELECT COUNT(*) FROM answers WHERE seq > ?",
                          (exported_seq,)).fetchone()[0]
      if edited and serving:
        log(f"labels: {labels_path} was edited while `jaxal label` serves this "
            f"selection: read as it is ({lacked} answers of {db_path} newer than "
            "its last export are not in it); the page's next export will replace "
            "the file: stop the page, edit, then restart it.")
        return False
    finally:
      db.close()
  # Not serving (or the file is jaxal's own): what opening the store does, under
  # the same lock (taken again by its import and export).
  st = Store(labels_path, conflicts_path or os.path.join(
      os.path.dirname(labels_path), "conflicts.csv"), db_path, log=log,
      background=False)
  total = len(st)
  st.close()
  log(f"labels: {labels_path} brought up to date from {db_path}: "
      + ("read back from the edited file, then " if edited else "")
      + f"{total} answers ({lacked} newer than its last export"
      + (", the page still serving" if serving else
         "; the page stopped before writing them") + ").")
  return True
