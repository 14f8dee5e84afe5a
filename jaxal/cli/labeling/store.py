"""The labeling page's answers on disk: an SQLite database, and the selection's
labels.csv written from it.

Every answer is one transaction of the standard library's SQLite, in WAL mode
with `synchronous=FULL`: the commit's log frame is fsynced before `add` returns,
so an answer acknowledged to the page survives a SIGKILL or a power cut, and an
answer costs one B-tree insert whatever the number of labels (the earlier store
rewrote the whole labels file per answer: 21.9 ms at 10,000 labels, and growing).
SQLite rather than an append-only journal because an undo is then a DELETE
rather than a tombstone to replay, a restart reads an index rather than
re-parsing a log, and a crash mid-write is the database's problem, which it
solves (a torn last journal line would be ours).

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

import contextlib
import csv
import dataclasses
import datetime
import hashlib
import io as _io
import os
import sqlite3
import threading
from typing import Callable, Iterable, Optional

from jaxal import io
from jaxal.cli.labels import LabelsError, csv_records, from_cell, to_cell

LABELS_HEADER = ("path", "label", "annotator", "time")
CONFLICTS_HEADER = ("path", "label", "annotator", "time", "kept_label",
                    "kept_annotator")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  path TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL,
  annotator TEXT NOT NULL,
  time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS answers_by_annotator ON answers (annotator, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclasses.dataclass(frozen=True)
class Answer:
  """One annotator's label for one image, with when it was given."""
  path: str
  label: str
  annotator: str
  time: str


def now() -> str:
  """The current UTC time, ISO 8601 to the second (an answer's `time`)."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _csv(header, rows: Iterable) -> str:
  """The rows as CSV, every cell spreadsheet-safe (`labels.to_cell`): paths,
  labels and annotator names are user text; the times are jaxal's."""
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(header)
  w.writerows([to_cell(c) for c in r] for r in rows)
  return buf.getvalue()


def _rows(path: str) -> list[list[str]]:
  with open(path, encoding="utf-8-sig", newline="") as f:
    rows = list(csv.reader(f))
  return [[from_cell(c) for c in r] for r in rows[1:] if r and any(c.strip() for c in r)]


def _edited_answers(path: str) -> list["Answer"]:
  """The answers of a labels.csv edited by hand, checked as `read_labels`
  checks a labels file (header, two cells a row, one row per image): a
  problem is a `LabelsError` naming the line, before the database changes."""
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


def _sha256(path: str) -> Optional[str]:
  return io.file_sha256(path) if os.path.exists(path) else None


def _count_removal(db: sqlite3.Connection) -> None:
  """Counts an undo or an import in the database, in the caller's transaction:
  the next export then formats every row again (`Store.export`)."""
  db.execute("INSERT INTO meta (key, value) VALUES ('removals', '1') ON CONFLICT (key) "
             "DO UPDATE SET value = CAST(value AS INTEGER) + 1")


def database_path(labels_path: str) -> str:
  """Where the answers of `labels_path` are kept: labels.sqlite beside it."""
  return os.path.splitext(labels_path)[0] + ".sqlite"


def _export_lock(labels_path: str) -> str:
  """The file lock held around every write of labels.csv and of the export's
  record in the database, by the server and by the readers alike."""
  return labels_path + ".lock"


def _serving_path(db_path: str) -> str:
  return db_path + ".serving"


def _connect(db_path: str) -> sqlite3.Connection:
  db = sqlite3.connect(db_path, isolation_level=None, timeout=30.0,
                       check_same_thread=False)
  db.execute("PRAGMA journal_mode=WAL")
  db.execute("PRAGMA synchronous=FULL")
  db.executescript(_SCHEMA)
  return db


def _meta_of(db: sqlite3.Connection, key: str) -> Optional[str]:
  row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
  return row[0] if row else None


def _up_to_date(db: sqlite3.Connection, labels_path: str) -> bool:
  """Whether labels.csv is the database's last export and the database has
  taken no answer, undo or import since."""
  db.execute("BEGIN")
  try:
    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM answers").fetchone()[0]
    state = (str(last), _meta_of(db, "removals") or "0")
    exported = (_meta_of(db, "exported_seq"), _meta_of(db, "exported_removals"))
    sha = _meta_of(db, "exported_sha256")
  finally:
    db.execute("COMMIT")
  return state == exported and sha is not None and _sha256(labels_path) == sha


def _someone_serves(db_path: str) -> bool:
  """Whether a `jaxal label` server holds this database now; its lock is
  released by the kernel when the process dies, SIGKILL included."""
  import fcntl  # pylint: disable=g-import-not-at-top
  path = _serving_path(db_path)
  if not os.path.exists(path):
    return False
  with open(path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      return True
    fcntl.flock(f, fcntl.LOCK_UN)
  return False


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
      if _up_to_date(ro, labels_path):
        return False
    finally:
      ro.close()
  except sqlite3.Error:
    pass  # e.g. an old database without the meta table: the locked path creates it
  with io.file_lock(_export_lock(labels_path)):
    db = _connect(db_path)
    try:
      if _up_to_date(db, labels_path):
        return False
      exported_seq = int(_meta_of(db, "exported_seq") or 0)
      serving = _someone_serves(db_path)
      edited = os.path.exists(labels_path) and \
          _sha256(labels_path) != _meta_of(db, "exported_sha256")
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


class Store:
  """The answers of one selection, in answer order.

  `add`, `remove` and `add_conflict` return once the change is durable. The
  answers are also held in memory by path (`get`, `len`), so reading them costs
  nothing per request. Not thread-safe by itself: the labeling session calls it
  under its lock; only the export runs in a thread of its own, on its own
  connection (WAL lets it read while answers are written).
  """

  def __init__(self, labels_path: str, conflicts_path: str,
               db_path: Optional[str] = None, *, export_every_s: float = 2.0,
               log: Callable[[str], None] = print, background: bool = True):
    self.labels_path = labels_path
    self.conflicts_path = conflicts_path
    self.db_path = db_path or database_path(labels_path)
    self.log = log
    self.export_every_s = float(export_every_s)
    self._cache = None  # (removals, last seq, text) of the last export
    self._serving = None  # the open lock file of `serve`
    self._db = self._connect()
    self._by_path: dict[str, Answer] = {}
    for a in self._select():
      self._by_path[a.path] = a
    self.conflicts: list[tuple] = []
    if os.path.exists(conflicts_path):
      self.conflicts = [tuple(r) for r in _rows(conflicts_path)]
    with io.file_lock(_export_lock(labels_path)):
      self._import_if_edited()
    self.export()
    self._wanted = threading.Event()
    self._closed_event = threading.Event()
    self._closed = False
    self._exporter = threading.Thread(target=self._export_loop, daemon=True,
                                      name="jaxal-labels-export")
    if background:
      self._exporter.start()

  def serve(self) -> None:
    """Marks the database as held by a running server (until `close` or the
    process's death): readers then leave a hand-edited labels.csv alone. A
    second server on the same selection is refused."""
    import fcntl  # pylint: disable=g-import-not-at-top
    import time  # pylint: disable=g-import-not-at-top
    f = open(_serving_path(self.db_path), "a")  # pylint: disable=consider-using-with
    for attempt in range(5):  # a reader checking at this instant holds it briefly
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if attempt == 4:
          f.close()
          raise RuntimeError(f"another `jaxal label` serves {self.db_path}; stop "
                             "it first (one server per selection).") from None
        time.sleep(0.05)
    self._serving = f

  # ------------------------------------------------------------ database
  def _connect(self) -> sqlite3.Connection:
    return _connect(self.db_path)

  @contextlib.contextmanager
  def _transaction(self, db: Optional[sqlite3.Connection] = None):
    db = db or self._db
    db.execute("BEGIN IMMEDIATE")
    try:
      yield db
    except BaseException:
      db.execute("ROLLBACK")
      raise
    db.execute("COMMIT")

  def _rows_after(self, db: Optional[sqlite3.Connection] = None, after: int = 0):
    """(path, label, annotator, time) of the answers after seq `after`, in order."""
    return (db or self._db).execute(
        "SELECT path, label, annotator, time FROM answers WHERE seq > ? ORDER BY seq",
        (after,)).fetchall()

  def _select(self, db: Optional[sqlite3.Connection] = None, after: int = 0):
    return [Answer(*r) for r in self._rows_after(db, after)]

  def _meta(self, key: str, db: Optional[sqlite3.Connection] = None) -> Optional[str]:
    return _meta_of(db or self._db, key)

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
    with self._transaction() as db:
      db.execute("INSERT INTO answers (path, label, annotator, time) VALUES (?, ?, ?, ?)",
                 (answer.path, answer.label, answer.annotator, answer.time))
    self._by_path[answer.path] = answer

  def remove(self, path: str) -> Answer:
    """Deletes the answer for `path` (an undo); returns it."""
    gone = self._by_path[path]
    with self._transaction() as db:
      db.execute("DELETE FROM answers WHERE path = ?", (path,))
      _count_removal(db)
    del self._by_path[path]
    return gone

  def add_conflict(self, answer: Answer, kept: Answer) -> None:
    """Keeps `answer`, which differs from the first answer `kept`, aside."""
    rows = self.conflicts + [(answer.path, answer.label, answer.annotator,
                              answer.time, kept.label, kept.annotator)]
    io.write_text(self.conflicts_path, _csv(CONFLICTS_HEADER, rows))
    self.conflicts = rows

  # ---------------------------------------------------------------- export
  def export(self, db: Optional[sqlite3.Connection] = None) -> str:
    """Writes labels.csv from the database now (atomically); returns its path.

    Answers only append between undos, so the text of the last export is kept
    and only the rows after it are formatted: at 50,000 labels a full export
    holds Python's lock for tens of milliseconds, which the answers being
    served meanwhile would wait on. An undo or an import (counted in the
    database, in the same transaction) makes the next export a full one.
    """
    db = db or self._db
    # Under the export lock: a reader bringing the file up to date (another
    # process) never interleaves its write and record with this one's.
    with io.file_lock(_export_lock(self.labels_path)):
      db.execute("BEGIN")  # one snapshot: the rows, their last seq, the removals
      try:
        removals = int(self._meta("removals", db) or 0)
        cached = self._cache if self._cache and self._cache[0] == removals else None
        rows = self._rows_after(db, cached[1] if cached else 0)
        last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM answers").fetchone()[0]
      finally:
        db.execute("COMMIT")
      if cached:
        text = cached[2] + _csv(LABELS_HEADER, rows).split("\n", 1)[1]
      else:
        text = _csv(LABELS_HEADER, rows)
      self._cache = (removals, last, text)
      io.write_text(self.labels_path, text)
      digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
      with self._transaction(db):
        db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       [("exported_sha256", digest), ("exported_seq", str(last)),
                        ("exported_removals", str(removals))])
    return self.labels_path

  def request_export(self) -> None:
    """Asks the background thread to write labels.csv soon (a batch ended)."""
    self._wanted.set()

  def _export_loop(self) -> None:
    db = self._connect()  # its own connection: it reads while answers are written
    try:
      while True:
        self._wanted.wait()
        if self._closed:
          return
        # At most one export per `export_every_s`: each writes the whole file,
        # and the first after an undo formats every row again, holding Python's
        # lock for tens of milliseconds at 50,000 labels.
        self._closed_event.wait(self.export_every_s)
        if self._closed:
          return
        self._wanted.clear()
        try:
          self.export(db)
        except Exception as e:  # pylint: disable=broad-except
          # The database holds every answer; the next export writes the file.
          self.log(f"label: could not write {self.labels_path} ({e}); the answers "
                   f"are safe in {self.db_path}")
    finally:
      db.close()

  def close(self) -> None:
    """Writes labels.csv a last time and closes the database."""
    if self._closed:
      return
    self._closed = True
    self._closed_event.set()
    self._wanted.set()
    if self._exporter.is_alive():
      self._exporter.join(timeout=30)
    self.export()
    self._db.close()
    if self._serving is not None:
      self._serving.close()  # releases the lock
      self._serving = None

  # ----------------------------------------------------------- hand edits
  def _import_if_edited(self) -> None:
    """Reads labels.csv into the database when its bytes are not the last
    export's (see the module docstring)."""
    on_disk = _sha256(self.labels_path)
    if on_disk is None or on_disk == self._meta("exported_sha256"):
      return
    if _someone_serves(self.db_path):  # (this store serves only after opening)
      # The running page owns the database: importing under it would undo
      # its answers in memory and on disk. Its next export replaces the file.
      self.log(f"label: {self.labels_path} was edited while `jaxal label` serves "
               "this selection; not read (stop the page, then edit).")
      return
    since = int(self._meta("exported_seq") or 0)
    edited = _edited_answers(self.labels_path)
    named = {a.path for a in edited}
    later = [a for a in self._select(after=since) if a.path not in named]
    merged = edited + later
    with self._transaction() as db:
      db.execute("DELETE FROM answers")
      _count_removal(db)
      db.executemany("INSERT INTO answers (path, label, annotator, time) "
                     "VALUES (?, ?, ?, ?)",
                     [(a.path, a.label, a.annotator, a.time) for a in merged])
    self._by_path = {a.path: a for a in merged}
    if self._meta("exported_sha256") is not None or later:
      self.log(f"label: read {self.labels_path} (changed since jaxal wrote it): "
               f"{len(edited)} answers" + (f", and {len(later)} taken after its last "
                                           "export kept" if later else ""))
