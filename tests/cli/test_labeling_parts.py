"""The labeling page's parts on their own (`jaxal.cli.label_page`): the PNG cache
of a TFDS pool (one pass per batch, whatever the concurrency), the folder
image check, the answer tally, and the balancing replay, whose batches are
`balanced_select`'s and which replays the same batches after an undo."""

from __future__ import annotations

import io as _io
import os
import threading
import time
import types

import numpy as np
import pytest

from jaxal import balancing
from jaxal.cli.label_page import config, images, replay, tally
from jaxal.cli.workdir import Pool


# ------------------------------------------------------------- PNG cache
def pixels_of(path: str) -> np.ndarray:
  k = int(path.rsplit("/", 1)[1])
  return np.full((4, 5, 3), k, np.uint8)


class Split:
  """A fake TFDS split: counts its passes and the paths each read."""

  def __init__(self, delay_s=0.0):
    self.passes: list[list[str]] = []
    self.delay_s = delay_s

  def load(self, want):
    self.passes.append(list(want))
    time.sleep(self.delay_s)
    return [pixels_of(p) for p in want]


def decode(png: bytes) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.asarray(Image.open(_io.BytesIO(png)))


def test_the_png_cache_reads_a_batch_in_one_pass():
  split = Split()
  batch = ["d:train/1", "d:train/2", "d:train/3"]
  cache = images.PngCache(split.load, lambda: batch)
  png = cache.get("d:train/2")
  assert png[:4] == b"\x89PNG" and np.array_equal(decode(png), pixels_of("d:train/2"))
  for p in batch:  # the rest of the batch costs no pass
    assert np.array_equal(decode(cache.get(p)), pixels_of(p))
  assert split.passes == [batch]
  # a path outside the batch is read alone, and the batch again after it
  assert np.array_equal(decode(cache.get("d:train/9")), pixels_of("d:train/9"))
  cache.get("d:train/1")
  assert split.passes == [batch, ["d:train/9"], batch]
  batch[:] = ["d:train/7", "d:train/8"]  # the next batch
  cache.get("d:train/8")
  assert split.passes[-1] == ["d:train/7", "d:train/8"]


def test_the_png_cache_makes_one_pass_for_concurrent_requests():
  split = Split(delay_s=0.2)
  batch = [f"d:train/{k}" for k in range(6)]
  cache = images.PngCache(split.load, lambda: batch)
  got = {}
  threads = [threading.Thread(target=lambda p=p: got.__setitem__(p, cache.get(p)))
             for p in batch]
  for t in threads:
    t.start()
  for t in threads:
    t.join(30)
  assert len(split.passes) == 1
  assert all(np.array_equal(decode(got[p]), pixels_of(p)) for p in batch)


def test_folder_images_stay_inside_the_folder(tmp_path):
  root = tmp_path / "images"
  (root / "a").mkdir(parents=True)
  (root / "a" / "x.png").write_bytes(b"png")
  (root / "a" / "notes.txt").write_text("text")
  (tmp_path / "secret.png").write_bytes(b"secret")
  os.symlink(tmp_path / "secret.png", root / "a" / "link.png")
  real = os.path.realpath(root)
  full, kind = images.folder_image(real, "a/x.png")
  assert full == os.path.join(real, "a", "x.png") and kind == "image/png"
  for bad, why in (("a/link.png", "work directory"), ("../secret.png", "work directory"),
                   ("a/missing.png", "work directory"), ("a", "work directory"),
                   ("a/notes.txt", "not an image")):
    with pytest.raises(images.NotAnImage, match=why):
      images.folder_image(real, bad)


# ------------------------------------------------------------------ tally
def test_the_tally_counts_answers_by_class():
  t = tally.Tally(["cat", "dog", "owl"], [(5, "dog"), (2, "cat"), (9, "dog")])
  assert len(t) == 3 and t.counts.tolist() == [1, 2, 0]
  t.add(1, "owl")
  assert t.labels == {5: "dog", 2: "cat", 9: "dog", 1: "owl"}
  assert t.remove(5) == "dog"
  assert t.counts.tolist() == [1, 1, 1] and 5 not in t.labels


# ----------------------------------------------------------------- replay
def small_setup(n=40, k=3, budget=12, batch=3, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.choice(k, size=n, p=[0.7, 0.2, 0.1])
  feats = (np.eye(k)[y] * 2 + rng.normal(size=(n, k))).astype(np.float32)
  pool = Pool(paths=[f"img{i}.png" for i in range(n)], features=feats, probs=None,
              target_features=feats)
  classes = tuple(f"c{c}" for c in range(k))
  setup = config.Setup(
      pool=pool, index=types.MappingProxyType(pool.index), root="/nowhere",
      classes=classes, class_id=types.MappingProxyType(
          {c: j for j, c in enumerate(classes)}),
      method="margin", budget=budget, ranking=rng.permutation(n), batch_size=batch,
      rule="ratio", majority_distance="nearest", lease_s=30.0,
      guess_text=("",) * n, guess_name=("",) * n)
  return setup, y


class Annotator:
  """Answers the replay's batches with the true labels, as the page would."""

  def __init__(self, setup, y):
    self.setup, self.y = setup, y
    self.cond = threading.Condition()
    self.answers: dict[int, str] = {}
    self.offered: list[tuple[list[int], int]] = []
    self.used = 0
    self.finished: list[list[int]] = []
    self.step = replay.Replay(
        setup, self.cond, lambda: self.answers,
        on_offer=lambda idx, before: self.offered.append((list(idx), before)),
        on_used=self.count_used, on_finish=self.finished.append,
        log=lambda m: None)

  def count_used(self):
    self.used += 1

  def answer_until_done(self, timeout=60.0):
    deadline = time.monotonic() + timeout
    with self.cond:
      while self.step.finished is None:
        assert self.step.error is None, self.step.error
        for i in self.step.batch or ():
          self.answers.setdefault(i, self.setup.classes[self.y[i]])
        self.cond.notify_all()
        assert self.cond.wait_for(
            lambda: self.step.finished is not None or self.step.error is not None or (
                self.step.batch is not None and
                any(i not in self.answers for i in self.step.batch)),
            max(deadline - time.monotonic(), 0.0)), "the replay stalled"
      return list(self.step.finished)


def test_the_replay_offers_balanced_selects_batches_and_replays_after_an_undo():
  setup, y = small_setup()
  want = balancing.balanced_select(setup.ranking, setup.pool.features, y, setup.budget,
                                   len(setup.classes), batch_size=setup.batch_size)
  ann = Annotator(setup, y)
  ann.step.start()
  try:
    assert ann.answer_until_done() == [int(i) for i in want]
    batches = [b for b, _ in ann.offered]
    assert [i for b in batches for i in b] == [int(i) for i in want]
    assert [before for _, before in ann.offered] == list(
        range(0, setup.budget, setup.batch_size))
    assert ann.used == len(batches) and ann.finished == [[int(i) for i in want]]
    with ann.cond:
      first = batches[0][0]
      assert ann.step.position(first) == (0, 1)
      assert ann.step.position(batches[1][2]) == (1, setup.batch_size + 3)
      assert ann.step.answered_after(batches[-1][0]) == []
      assert len(ann.step.answered_after(first)) == setup.budget - setup.batch_size
      # an undo in the last batch, already used: the step replays from the answers
      last = batches[-1][0]
      del ann.answers[last]
      ann.step.reopen(last)
      # the replay starts over and waits on the undone image
      assert ann.cond.wait_for(lambda: ann.step.finished is None and
                               ann.step.batch == batches[-1], 30)
    assert ann.answer_until_done() == [int(i) for i in want]
    assert [b for b, _ in ann.offered[len(batches):]] == batches  # the same again
    assert len(ann.finished) == 2
  finally:
    with ann.cond:
      ann.step.stop()
    ann.step._thread.join(10)  # pylint: disable=protected-access
  assert not ann.step._thread.is_alive()  # pylint: disable=protected-access


def test_an_undo_in_the_waiting_batch_does_not_replay():
  setup, y = small_setup(budget=6, batch=3)
  ann = Annotator(setup, y)
  ann.step.start()
  try:
    with ann.cond:
      assert ann.cond.wait_for(lambda: ann.step.batch is not None, 30)
      batch = list(ann.step.batch)
      ann.answers[batch[0]] = setup.classes[y[batch[0]]]
      del ann.answers[batch[0]]  # undone while the step still waits on it
      ann.step.reopen(batch[0])
      ann.step.reopen(10_000)  # never offered: nothing to take back
      assert ann.step.batch == batch and len(ann.offered) == 1
    ann.answer_until_done()
    assert len(ann.offered) == 2 and len(ann.finished) == 1
  finally:
    with ann.cond:
      ann.step.stop()
    ann.step._thread.join(10)  # pylint: disable=protected-access
  assert not ann.step._thread.is_alive()  # pylint: disable=protected-access
