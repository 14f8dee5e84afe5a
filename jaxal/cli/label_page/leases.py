"""Which annotator holds which image of the current batch on the labeling page
(method guide §4: the balancing step needs every image of a batch answered
before it picks the next, so the batch is shared among the annotators).

Each image is leased to one annotator at a time, for `lease_s` seconds renewed
while it is on their screen, so no image is on two screens at once; a lease
that runs out (a closed laptop) frees the image for the others. "Skip" hands the
image back and shows the annotator the batch's other free images first.

Pure bookkeeping: no threads and no locks (the labeling session calls it under
its own Condition), and the time comes from an injected clock, so the rules are
tested with a fake one.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence


class Leases:
  """The leases of the current batch's images, and each annotator's skips.

  Args:
    lease_s: how long a lease lasts after it is taken or last renewed, seconds.
    now: the clock, in seconds (`time.monotonic` when serving).
  """

  def __init__(self, lease_s: float, now: Callable[[], float]):
    self.lease_s = float(lease_s)
    self._now = now
    self._held: dict[int, tuple[str, float]] = {}  # image -> (annotator, until)
    self._skipped: dict[str, set[int]] = {}

  def next_for(self, annotator: str, free: Sequence[int]) -> Optional[int]:
    """The image of `free` that `annotator` should see now, leased to them.

    Their own unexpired lease comes first (renewed: a reload shows the same
    image); else the first image nobody holds, preferring those they did not
    skip, and taking it ends their other leases (one screen, one image).

    Args:
      free: the current batch's unanswered images, in batch order.

    Returns:
      The image, or None when the others hold every image of `free`.
    """
    now = self._now()
    for i in free:
      who, until = self._held.get(i, (None, 0.0))
      if who == annotator and until > now:
        self._held[i] = (annotator, now + self.lease_s)
        return i
    open_ = [i for i in free if self._held.get(i, ("", 0.0))[1] <= now]
    if not open_:
      return None
    skipped = self._skipped.get(annotator, ())
    fresh = [i for i in open_ if i not in skipped]
    i = (fresh or open_)[0]
    self.release(annotator)
    self._held[i] = (annotator, now + self.lease_s)
    return i

  def answered(self, annotator: str, i: int) -> None:
    """`annotator` answered image `i`: their lease on it ends, and so does their skip."""
    self._drop(annotator, i)
    self._skipped.get(annotator, set()).discard(i)

  def skip(self, annotator: str, i: int) -> None:
    """`annotator` hands image `i` back; it comes back to them when nothing
    else of the batch is free."""
    self._drop(annotator, i)
    self._skipped.setdefault(annotator, set()).add(i)

  def hand_back(self, annotator: str, i: int) -> None:
    """`annotator` took back their answer to image `i` (an undo): it is leased
    to them again, so that they see it next, and no longer counts as skipped.
    Their other leases stay."""
    self._skipped.get(annotator, set()).discard(i)
    self._held[i] = (annotator, self._now() + self.lease_s)

  def release(self, annotator: str) -> None:
    """Ends every lease `annotator` holds (their page was closed)."""
    for j, (who, _) in list(self._held.items()):
      if who == annotator:
        del self._held[j]

  def held_by_others(self, annotator: str) -> list[int]:
    """The images whose unexpired lease is another annotator's."""
    now = self._now()
    return [i for i, (who, until) in self._held.items()
            if who != annotator and until > now]

  def holder(self, i: int) -> Optional[str]:
    """The annotator whose lease on image `i` has not run out, or None."""
    who, until = self._held.get(i, (None, 0.0))
    return who if until > self._now() else None

  def _drop(self, annotator: str, i: int) -> None:
    """Ends `annotator`'s lease on `i`, run out or not; another's stays."""
    if self._held.get(i, ("",))[0] == annotator:
      del self._held[i]
