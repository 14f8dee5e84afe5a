"""The labeling page's answers on disk: the selection's labels.csv and
conflicts.csv, each rewritten atomically and durably after every change
(`jaxal.io.write_text`: temporary file, fsync, rename, fsync of the folder), so
an answer acknowledged to the page survives a SIGKILL or a power cut.

labels.csv is the `path,label` CSV every command reads (`--labels`), with two
more columns, `annotator` and `time` (UTC, ISO 8601), in answer order.
conflicts.csv keeps a second, different answer for an already labeled image
(`path,label,annotator,time,kept_label,kept_annotator`): the first answer is
never overwritten. Every cell is written spreadsheet-safe (`labels.to_cell`: a
cell that would be a formula gets a leading "'", removed again on reading).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io as _io
import os

from jaxal import io
from jaxal.cli.labels import from_cell, to_cell

LABELS_HEADER = ("path", "label", "annotator", "time")
CONFLICTS_HEADER = ("path", "label", "annotator", "time", "kept_label",
                    "kept_annotator")


@dataclasses.dataclass(frozen=True)
class Answer:
  path: str
  label: str
  annotator: str
  time: str


def now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _csv(header, rows) -> str:
  """The rows as CSV, every cell spreadsheet-safe (`labels.to_cell`): paths,
  labels and annotator names are user text; the times are jaxal's."""
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(header)
  w.writerows([to_cell(c) for c in r] for r in rows)
  return buf.getvalue()


class Store:
  """The answers, in order, mirrored to `labels_path` on every change."""

  def __init__(self, labels_path: str, conflicts_path: str):
    self.labels_path = labels_path
    self.conflicts_path = conflicts_path
    self.answers: list[Answer] = []
    self.conflicts: list[tuple] = []
    if os.path.exists(labels_path):
      self.answers = [Answer(r[0], r[1], r[2] if len(r) > 2 else "",
                             r[3] if len(r) > 3 else "")
                      for r in self._rows(labels_path)]
    if os.path.exists(conflicts_path):
      self.conflicts = [tuple(r) for r in self._rows(conflicts_path)]

  @staticmethod
  def _rows(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
      rows = list(csv.reader(f))
    return [[from_cell(c) for c in r] for r in rows[1:]
            if r and any(c.strip() for c in r)]

  def by_path(self) -> dict[str, Answer]:
    return {a.path: a for a in self.answers}

  def add(self, answer: Answer) -> None:
    """Appends `answer` and writes the file; returns once it is on disk."""
    self._write(self.answers + [answer])

  def remove(self, path: str) -> Answer:
    keep = [a for a in self.answers if a.path != path]
    gone = next(a for a in self.answers if a.path == path)
    self._write(keep)
    return gone

  def _write(self, answers: list[Answer]) -> None:
    io.write_text(self.labels_path, _csv(LABELS_HEADER, [
        (a.path, a.label, a.annotator, a.time) for a in answers]))
    self.answers = answers

  def add_conflict(self, answer: Answer, kept: Answer) -> None:
    rows = self.conflicts + [(answer.path, answer.label, answer.annotator,
                              answer.time, kept.label, kept.annotator)]
    io.write_text(self.conflicts_path, _csv(CONFLICTS_HEADER, rows))
    self.conflicts = rows

