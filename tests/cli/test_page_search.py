"""Search on the labeling page: three annotators (one in Chromium, two over
HTTP) queue the images nearest an example; each image is queued for one of
them only, comes to them before the batch, is answered once, and its answer
counts in the later steps; malformed searches get 4xx."""

import os

from jaxal.cli.workdir import Workdir
from tests.cli import label_fixture as F
from tests.cli.test_cli import ok
from tests.cli.test_label import browser, login, shown_now, stored  # noqa: F401


def _answer_queue(srv, truth, name, queue):
  """Answers `name`'s next images while they are from their search."""
  done = []
  while True:
    got = F.answer_next(srv, truth, name, wait=0)
    if got is None or got["rank"] != "search":
      return done
    assert got["path"] in queue, (name, got["path"])
    done.append(got["path"])


def test_three_annotators_search_and_each_image_is_theirs_alone(
    browser, tmp_path):  # noqa: F811
  wd, truth, cf = F.make(str(tmp_path))
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=12", "--batch=3")
  try:
    page, errors = F.new_page(browser)
    login(page, srv.url, "ann")
    state, first = shown_now(page, waiting=False)
    assert state == "image"
    example = Workdir(wd).pool().paths[0]
    queued = {}
    for name in ("bob", "cyd"):
      status, r = srv.request("POST", "api/search",
                              {"annotator": name, "path": example, "top": 5})
      assert status == 200 and len(r["queued"]) == 5, r
      queued[name] = r["queued"]
    # ann asks for more like the image on her screen, in the browser
    page.click("#more-like")
    page.wait_for_function("""() => document.getElementById('message')
        .textContent.includes('queued')""")
    page.keyboard.press(page.evaluate("""(l) => [...document.querySelectorAll(
        '#classes button')].find(b => b.dataset.label === l).dataset.key""",
        truth[first]))
    ann = []
    prev = first
    for _ in range(5):
      state, path = shown_now(page, prev, waiting=False)
      if state != "image" or page.text_content("#mode") != "your search":
        break
      ann.append(path)
      page.keyboard.press(page.evaluate("""(l) => [...document.querySelectorAll(
          '#classes button')].find(b => b.dataset.label === l).dataset.key""",
          truth[path]))
      prev = path
    assert len(ann) >= 3, ann
    bob = _answer_queue(srv, truth, "bob", queued["bob"])
    cyd = _answer_queue(srv, truth, "cyd", queued["cyd"])
    assert bob == queued["bob"] and cyd == queued["cyd"]
    sets = [set(ann), set(bob), set(cyd)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert example not in sets[1] | sets[2]
    # every answer stored once, none in conflict
    paths = [p for p, _, _ in stored(os.path.join(wd, "labels.csv"))]
    assert len(paths) == len(set(paths)) >= 1 + len(ann) + 10
    assert not os.path.exists(os.path.join(wd, "conflicts.csv")) or \
        open(os.path.join(wd, "conflicts.csv")).read().count("\n") <= 1
    # a searched image skipped comes after the rest of that search
    status, r = srv.request("POST", "api/search", {"annotator": "dan", "path": example,
                                                    "top": 3})
    dan = r["queued"]
    status, r = srv.request("POST", "api/next", {"annotator": "dan", "wait": 0})
    assert r["image"]["path"] == dan[0]
    srv.request("POST", "api/skip", {"annotator": "dan", "path": dan[0]})
    status, r = srv.request("POST", "api/next", {"annotator": "dan", "wait": 0})
    assert r["image"]["path"] == dan[1], r
    # malformed searches: 4xx, never 500
    for body in ({"annotator": "bob"}, {"annotator": "bob", "text": "x", "path": example},
                 {"annotator": "bob", "path": "../etc/passwd"},
                 {"annotator": "bob", "path": example, "top": 0},
                 {"annotator": "bob", "path": example, "top": "many"},
                 {"annotator": "bob", "text": "a cat"},  # no text tower here
                 {"annotator": "bob", "text": "\ud800"},  # not valid Unicode
                 {"annotator": "", "path": example}, {"path": example}):
      status, r = srv.request("POST", "api/search", body)
      assert 400 <= status < 500 and r.get("error"), (body, status, r)
    assert not errors, errors
  finally:
    srv.stop()
  # the searched images' answers count: train takes them
  ok("train", f"--workdir={wd}", f"--labels={os.path.join(wd, 'labels.csv')}",
     "--target=svm")


def test_a_restarted_server_keeps_each_annotators_search_queue(tmp_path):
  """The queues come back from the selection's search.json: after a restart
  each annotator gets the rest of their own search, in its order, before the
  batch; an image answered before the restart is not offered again."""
  wd, truth, cf = F.make(str(tmp_path))
  args = (f"--workdir={wd}", f"--classes={cf}", "--method=margin", "--budget=20",
          "--batch=3")
  example = Workdir(wd).pool().paths[0]
  srv = F.Server(*args)
  try:
    status, r = srv.request("POST", "api/search",
                            {"annotator": "eve", "path": example, "top": 4})
    assert status == 200
    eve = r["queued"]
    status, r = srv.request("POST", "api/search",
                            {"annotator": "fay", "path": example, "top": 2})
    fay = r["queued"]
    assert not set(eve) & set(fay)
    assert F.answer_next(srv, truth, "eve", wait=0)["path"] == eve[0]
  finally:
    srv.stop()
  srv = F.Server(*args)
  try:
    assert _answer_queue(srv, truth, "fay", fay) == fay
    assert _answer_queue(srv, truth, "eve", eve[1:]) == eve[1:]
    paths = [p for p, _, _ in stored(os.path.join(wd, "labels.csv"))]
    assert len(paths) == len(set(paths)) and set(eve + fay) <= set(paths)
  finally:
    srv.stop()
