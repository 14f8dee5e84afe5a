"""The labeling page's search queues (`label_page.queues`), without a server."""

import pytest

from jaxal.cli.label_page import queues


class _Wd:
  def __init__(self, data):
    self.data = data

  def read(self, name, default):
    assert name == "search.json"
    return self.data if self.data is not None else default


def test_restored_keeps_each_annotators_unanswered_picks_once_in_search_order():
  wd = _Wd({"queries": [
      {"annotator": "ann", "picks": [5, 3, 9]},
      {"picks": [1, 2]},  # `jaxal search`'s: nobody's queue
      {"annotator": "bob", "picks": [3, 7]},  # 3 is ann's already
      {"annotator": "ann", "picks": [8]}]})
  q = queues.Queues.restored(wd, answered={9: "cat"})
  assert q.of("ann") == [5, 3, 8]
  assert q.of("bob") == [7]
  assert sorted(q.queued()) == [3, 5, 7, 8]
  assert queues.Queues.restored(_Wd(None), {}).queued() == []


def test_next_drops_answered_and_others_images_and_skip_undo_reorder():
  q = queues.Queues({"ann": [1, 2, 3, 4]})
  holders = {2: "bob", 3: "ann"}
  assert q.next_for("ann", answered={1: "x"}, holder=holders.get) == 3
  assert q.of("ann") == [3, 4]  # 1 answered, 2 leased to bob: gone
  q.to_end("ann", 3)
  assert q.of("ann") == [4, 3]
  q.to_end("ann", 99)  # not queued: nothing moves
  assert q.of("ann") == [4, 3]
  q.to_front("ann", 1)
  assert q.next_for("ann", answered={}, holder=lambda i: None) == 1
  q.add("cy", [6])
  assert q.next_for("cy", answered={6: "y"}, holder=lambda i: None) is None
  assert q.of("cy") == [] and q.next_for("nobody", {}, lambda i: None) is None


@pytest.mark.parametrize("text,path,top,field", [
    ("cat", None, 0, "top"), ("cat", None, 101, "top"), ("cat", None, True, "top"),
    ("cat", None, "3", "top"), (" ", None, 5, "text"), ("x" * 301, None, 5, "text"),
    ("\ud800", None, 5, "text"), (None, 7, 5, "path"), (None, None, 5, "give one"),
    ("cat", "a.png", 5, "give one"), (None, "nope.png", 5, "path")])
def test_check_query_names_the_field(text, path, top, field):
  with pytest.raises(ValueError, match=field):
    queues.check_query(text, path, top, {"a.png": 0})
  queues.check_query("cat", None, 100, {"a.png": 0})
  queues.check_query(None, "a.png", 1, {"a.png": 0})
