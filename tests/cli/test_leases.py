"""The labeling page's leases (`jaxal.cli.label_page.leases`), without threads and
with a fake clock: one image on one screen at a time, a reload shows the same
image and renews its lease, a lease that runs out frees the image, skipped
images come back last, an answer or a closed page ends the lease, an undo hands
the image back to its annotator."""

from __future__ import annotations

import random

from jaxal.cli.label_page.leases import Leases


class Clock:
  """A clock the test moves by hand."""

  def __init__(self):
    self.t = 0.0

  def __call__(self) -> float:
    return self.t


def make(lease_s=30.0):
  clock = Clock()
  return Leases(lease_s, clock), clock


def test_two_annotators_never_get_the_same_image():
  le, _ = make()
  free = [4, 7, 9]
  assert le.next_for("ann", free) == 4
  assert le.next_for("bob", free) == 7
  assert le.next_for("cy", free) == 9
  assert le.next_for("dan", free) is None  # the others hold every image
  assert [le.holder(i) for i in free] == ["ann", "bob", "cy"]


def test_a_reload_shows_the_same_image_and_renews_its_lease():
  le, clock = make()
  free = [1, 2]
  assert le.next_for("ann", free) == 1
  clock.t = 20.0
  assert le.next_for("ann", free) == 1  # renewed: until 50
  clock.t = 45.0
  assert le.next_for("bob", [1]) is None  # still ann's
  assert le.holder(1) == "ann"
  clock.t = 50.0
  assert le.holder(1) is None  # a lease ends at its deadline
  assert le.next_for("bob", [1]) == 1


def test_a_lease_runs_out_and_the_image_goes_to_another():
  le, clock = make(lease_s=30)
  free = [3, 5]
  assert le.next_for("ann", free) == 3
  assert le.next_for("bob", free) == 5
  assert le.next_for("cy", free) is None
  clock.t = 31.0  # both leases ran out
  assert le.next_for("cy", free) == 3
  assert le.holder(3) == "cy"
  # ann comes back: her image is cy's now; bob's ran out, so she gets it
  assert le.next_for("ann", free) == 5
  assert le.next_for("bob", free) is None


def test_skipped_images_come_back_when_nothing_else_is_free():
  le, _ = make()
  free = [1, 2, 3]
  assert le.next_for("ann", free) == 1
  le.skip("ann", 1)
  assert le.holder(1) is None  # handed back
  assert le.next_for("ann", free) == 2
  le.answered("ann", 2)
  assert le.next_for("ann", [1, 3]) == 3
  le.answered("ann", 3)
  assert le.next_for("ann", [1]) == 1  # nothing else left
  # a skip is the skipper's own: another annotator gets the image first
  le2, _ = make()
  le2.next_for("ann", [1, 2])
  le2.skip("ann", 1)
  assert le2.next_for("bob", [1, 2]) == 1


def test_an_answer_ends_the_lease_and_the_skip():
  le, _ = make()
  assert le.next_for("ann", [1, 2]) == 1
  le.skip("ann", 1)
  assert le.next_for("ann", [1, 2]) == 2
  le.answered("ann", 2)
  assert le.holder(2) is None
  le.answered("ann", 1)  # skipped, then answered after all: no longer skipped
  assert le.next_for("ann", [1, 5]) == 1
  # an answer by someone else leaves the holder's lease alone
  assert le.next_for("bob", [5]) == 5
  le.answered("cy", 5)
  assert le.holder(5) == "bob"


def test_taking_a_new_image_ends_the_annotators_other_leases():
  le, _ = make()
  assert le.next_for("ann", [1, 2]) == 1
  assert le.next_for("ann", [8, 9]) == 8  # the next batch
  assert le.holder(1) is None and le.holder(8) == "ann"
  assert le.next_for("bob", [1, 2]) == 1


def test_an_undo_hands_the_image_back_to_its_annotator():
  le, clock = make()
  assert le.next_for("ann", [1, 2]) == 1
  le.answered("ann", 1)
  assert le.next_for("ann", [2]) == 2
  clock.t = 10.0
  le.hand_back("ann", 1)  # undo: 1 is ann's again, and 2 stays hers
  assert le.holder(1) == "ann" and le.holder(2) == "ann"
  assert le.next_for("bob", [1, 2]) is None
  assert le.next_for("ann", [1, 2]) == 1  # the first of her images
  clock.t = 41.0  # the handed-back lease (renewed at 10) has run out
  assert le.next_for("bob", [1, 2]) == 1


def test_a_closed_page_releases_its_leases():
  le, _ = make()
  assert le.next_for("ann", [1, 2]) == 1
  le.hand_back("ann", 2)
  le.release("ann")
  assert le.holder(1) is None and le.holder(2) is None
  assert le.next_for("bob", [1, 2]) == 1
  le.release("nobody")  # nothing held: nothing happens
  assert le.holder(1) == "bob"


def test_random_traffic_never_puts_one_image_on_two_screens():
  rng = random.Random(0)
  le, clock = make(lease_s=5)
  names = ["ann", "bob", "cy", "dan"]
  batch = list(range(6))
  answered: set[int] = set()
  screen: dict[str, int] = {}  # what each annotator was last shown
  given = 0
  for _ in range(3000):
    clock.t += rng.random()
    who = rng.choice(names)
    op = rng.random()
    if op < 0.5:
      free = [i for i in batch if i not in answered]
      before = {i: le.holder(i) for i in free}
      got = le.next_for(who, free)
      if got is None:  # only when the others hold every free image
        assert all(h not in (None, who) for h in before.values()), before
      else:
        assert before[got] in (None, who)  # never someone else's
        assert le.holder(got) == who
        screen[who] = got
        given += 1
    elif op < 0.7 and who in screen:
      i = screen.pop(who)
      answered.add(i)
      le.answered(who, i)
    elif op < 0.85 and who in screen:
      le.skip(who, screen.pop(who))
    elif op < 0.9:
      le.release(who)
      screen.pop(who, None)
    if len(answered) == len(batch):  # the next batch
      batch = [i + len(batch) for i in batch]
      answered = set()
  assert given > 500
