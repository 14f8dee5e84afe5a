"""The labeling page's answer database (labels.sqlite beside labels.csv): its
schema, connections and transactions, its records of the last export, and the
lock files beside it.

Every answer is one transaction of the standard library's SQLite, in WAL mode
with `synchronous=FULL`: the commit's log frame is fsynced before it returns,
so an answer acknowledged to the page survives a SIGKILL or a power cut, and an
answer costs one B-tree insert whatever the number of labels (rewriting the
whole labels file per answer would grow with the labels: 21.9 ms at 10,000).
SQLite rather than an append-only journal because an undo is then a DELETE
rather than a tombstone to replay, a restart reads an index rather than
re-parsing a log, and a crash mid-write is the database's problem, which it
solves (a torn last journal line would be ours).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import sqlite3
import time
from typing import IO, Optional

from jaxal import io

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


# ------------------------------------------------------------------ paths
def database_path(labels_path: str) -> str:
  """Where the answers of `labels_path` are kept: labels.sqlite beside it."""
  return os.path.splitext(labels_path)[0] + ".sqlite"


def export_lock(labels_path: str) -> str:
  """The file lock held around every write of labels.csv and of the export's
  record in the database, by the server and by the readers alike."""
  return labels_path + ".lock"


def serving_path(db_path: str) -> str:
  """The lock file a running server holds (`hold_serving`)."""
  return db_path + ".serving"


def sha256(path: str) -> Optional[str]:
  """The file's sha256, or None when it does not exist."""
  return io.file_sha256(path) if os.path.exists(path) else None


# --------------------------------------------------------------- database
def connect(db_path: str) -> sqlite3.Connection:
  """A connection in autocommit mode (transactions are explicit), WAL,
  fsync at every commit; creates the tables where missing."""
  db = sqlite3.connect(db_path, isolation_level=None, timeout=30.0,
                       check_same_thread=False)
  db.execute("PRAGMA journal_mode=WAL")
  db.execute("PRAGMA synchronous=FULL")
  db.executescript(_SCHEMA)
  return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection):
  """A write transaction (taken at once): committed at the end of the block,
  rolled back on any exception."""
  db.execute("BEGIN IMMEDIATE")
  try:
    yield db
  except BaseException:
    db.execute("ROLLBACK")
    raise
  db.execute("COMMIT")


def rows_after(db: sqlite3.Connection, after: int = 0) -> list[tuple]:
  """(path, label, annotator, time) of the answers after seq `after`, in order."""
  return db.execute(
      "SELECT path, label, annotator, time FROM answers WHERE seq > ? ORDER BY seq",
      (after,)).fetchall()


def answers_after(db: sqlite3.Connection, after: int = 0) -> list[Answer]:
  """The answers after seq `after`, in answer order."""
  return [Answer(*r) for r in rows_after(db, after)]


def meta(db: sqlite3.Connection, key: str) -> Optional[str]:
  """The value recorded under `key`, or None."""
  row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
  return row[0] if row else None


def count_removal(db: sqlite3.Connection) -> None:
  """Counts an undo or an import in the database, in the caller's transaction:
  the next export then formats every row again (`export.Exporter`)."""
  db.execute("INSERT INTO meta (key, value) VALUES ('removals', '1') ON CONFLICT (key) "
             "DO UPDATE SET value = CAST(value AS INTEGER) + 1")


def up_to_date(db: sqlite3.Connection, labels_path: str) -> bool:
  """Whether labels.csv is the database's last export and the database has
  taken no answer, undo or import since."""
  db.execute("BEGIN")
  try:
    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM answers").fetchone()[0]
    state = (str(last), meta(db, "removals") or "0")
    exported = (meta(db, "exported_seq"), meta(db, "exported_removals"))
    sha = meta(db, "exported_sha256")
  finally:
    db.execute("COMMIT")
  return state == exported and sha is not None and sha256(labels_path) == sha


# ---------------------------------------------------------------- serving
def someone_serves(db_path: str) -> bool:
  """Whether a `jaxal label` server holds this database now; its lock is
  released by the kernel when the process dies, SIGKILL included."""
  import fcntl  # pylint: disable=g-import-not-at-top
  path = serving_path(db_path)
  if not os.path.exists(path):
    return False
  with open(path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      return True
    fcntl.flock(f, fcntl.LOCK_UN)
  return False


def hold_serving(db_path: str) -> IO:
  """Takes the serving lock of `db_path`; returns its open file, which holds
  the lock until closed (or the process's death).

  Raises:
    RuntimeError: another server holds it.
  """
  import fcntl  # pylint: disable=g-import-not-at-top
  f = open(serving_path(db_path), "a")  # pylint: disable=consider-using-with
  for attempt in range(5):  # a reader checking at this instant holds it briefly
    if attempt:
      time.sleep(0.05)
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return f
    except BlockingIOError:
      pass
  f.close()
  raise RuntimeError(f"another `jaxal label` serves {db_path}; stop it first "
                     "(one server per selection).")
