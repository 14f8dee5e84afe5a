"""Each annotator's queue of searched images on the labeling page.

A search (by text or by an image, `jaxal.cli.search`) queues its images for
the annotator who asked; they come before the balancing step's batch on that
annotator's screen, one at a time, leased to them as they come. The queues are
kept in the selection's search.json with the searches themselves, so a
restarted server rebuilds them (`Queues.restored`). Not thread-safe: the
session calls it under its lock.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional


class Queues:
  """annotator -> their searches' images still to answer, in search order."""

  def __init__(self, by_annotator: Optional[dict[str, list[int]]] = None):
    self._q: dict[str, list[int]] = dict(by_annotator or {})

  @classmethod
  def restored(cls, wd, answered) -> "Queues":
    """The queues a server had when it stopped, from search.json (`answered`:
    pool index -> label), each image in one queue at most. An image a skip had
    moved to its queue's end returns to its place."""
    out: dict[str, list[int]] = {}
    seen = set(answered)
    for q in wd.read("search.json", {"queries": []}).get("queries", []):
      name = q.get("annotator")
      if not name:
        continue  # `jaxal search`'s, for to_label.csv, no one's queue
      for i in q.get("picks", []):
        if int(i) not in seen:
          seen.add(int(i))
          out.setdefault(name, []).append(int(i))
    return cls(out)

  def of(self, annotator: str) -> list[int]:
    """`annotator`'s queue (a copy)."""
    return list(self._q.get(annotator, []))

  def queued(self) -> list[int]:
    """Every queued image, whoever's."""
    return [i for q in self._q.values() for i in q]

  def add(self, annotator: str, picks: Iterable[int]) -> None:
    self._q.setdefault(annotator, []).extend(picks)

  def next_for(self, annotator: str, answered,
               holder: Callable[[int], Optional[str]]) -> Optional[int]:
    """The first image of `annotator`'s queue neither answered nor held by
    another annotator; images that are either leave the queue. None when it is
    empty."""
    queue = self._q.get(annotator, [])
    while queue:
      i = queue[0]
      if i in answered or holder(i) not in (None, annotator):
        queue.pop(0)  # answered, or the balancing step's batch gave it to another
        continue
      return i
    return None

  def to_end(self, annotator: str, i: int) -> None:
    """A skipped search image: after the rest of the annotator's search."""
    queue = self._q.get(annotator, [])
    if i in queue:
      queue.remove(i)
      queue.append(i)

  def to_front(self, annotator: str, i: int) -> None:
    """An undone search image: first in the annotator's queue again."""
    self._q.setdefault(annotator, []).insert(0, i)


def check_query(text, path, top, index) -> None:
  """Refuses (ValueError, naming the field) a search request the page cannot
  run: `top` 1-100, exactly one of `text` and `path` (1-300 characters of valid
  Unicode), a `path` of this selection (`index`: path -> pool index)."""
  if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
    raise ValueError("top: how many images, 1-100.")
  for name, v in (("text", text), ("path", path)):
    if v is not None and (not isinstance(v, str) or not v.strip() or len(v) > 300
                          or not _encodable(v)):
      raise ValueError(f"{name}: 1-300 characters.")
  if bool(text) == bool(path):
    raise ValueError("give one of text and path.")
  if path is not None and path not in index:
    raise ValueError(f"path: {path[:200]!r} is not an image of this selection.")


def _encodable(text: str) -> bool:
  """Whether `text` is valid Unicode (JSON lets a lone surrogate through)."""
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return False
  return True
