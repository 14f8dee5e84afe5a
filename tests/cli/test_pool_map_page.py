"""The labeling page's map of the pool (/map) in Chromium, under three
annotators answering over HTTP: the points drawn (a screenshot checked for the
density, the classes' colours and the current batch's rings), the answers
appearing as they arrive, the class and annotator filters, the image under the
pointer; and its API's refusals (4xx, never 500)."""

import io
import os

import numpy as np
from PIL import Image

from jaxal.cli.workdir import Workdir
from tests.cli import label_fixture as F
from tests.cli.test_cli import ok
from tests.cli.test_dedupe import COPIES
from tests.cli.test_label import browser  # noqa: F401  pylint: disable=unused-import

SCREENSHOT = os.environ.get("JAXAL_MAP_SCREENSHOT")  # where README's map goes
TAB10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def _pixels(page):
  return np.asarray(Image.open(io.BytesIO(page.locator("#map").screenshot()))
                    .convert("RGB")).astype(int)


def _near(img, rgb, tol=40):
  return int((np.abs(img - rgb).sum(-1) < tol).sum())


def test_the_map_in_chromium_under_three_annotators(browser, tmp_path):  # noqa: F811
  wd, truth, cf = F.make(str(tmp_path))
  path = os.path.join(wd, "embedding.npz")
  z = dict(np.load(path))
  for src, dsts in COPIES.items():
    for dst in dsts:
      z["features"][dst] = z["features"][src] * 1.00001
  z["target_features"] = z["features"]
  np.savez(path, **z)
  ok("dedupe", f"--workdir={wd}", "--threshold=1e-6")
  classes = open(cf, encoding="utf-8").read().splitlines()
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=15", "--batch=3")
  try:
    page, errors = F.new_page(browser)
    page.goto(srv.url + "map")
    page.wait_for_function("() => document.body.dataset.drawn === '0/0'")
    assert page.text_content("#map-count") == "48 images"
    before = _pixels(page)
    assert _near(before, (255, 255, 255), 10) > 0.5 * before[..., 0].size  # background
    grey = (np.abs(before - before[..., :1]).sum(-1) < 6) & (before[..., 0] < 235)
    assert grey.sum() > 48  # every image, as a grey dot
    # three annotators answer while the map is open: their answers appear
    done = []
    for round_ in range(3):
      for name in ("ann", "bob", "cyd"):
        got = F.answer_next(srv, truth, name)
        if got:
          done.append((name, got["path"]))
      page.wait_for_function(f"() => document.body.dataset.drawn === "
                             f"'{len(done)}/{len(done)}'", timeout=20_000)
    img = _pixels(page)
    if SCREENSHOT:
      page.screenshot(path=SCREENSHOT)
    found = {truth[p] for _, p in done}
    for c in found:
      assert _near(img, TAB10[classes.index(c)]) > 10, c
    _, st = srv.request("GET", "api/map/state")
    if st["pending"]:  # the batch being labeled: black rings
      assert _near(img, (0, 0, 0), 60) > 10
    assert {a for _, _, a in st["labeled"]} == {"ann", "bob", "cyd"}
    index = Workdir(wd).pool().index
    assert sorted(i for i, _, _ in st["labeled"]) == sorted(index[p] for _, p in done)
    # filters: one class off, then one annotator only
    first_class = classes.index(truth[done[0][1]])
    page.uncheck(f"#map-classes input[data-k='{first_class}']")
    left = sum(1 for _, p in done if classes.index(truth[p]) != first_class)
    page.wait_for_function(f"() => document.body.dataset.drawn === '{left}/{len(done)}'")
    page.check(f"#map-classes input[data-k='{first_class}']")
    page.select_option("#who-filter", "bob")
    bob = sum(1 for n, _ in done if n == "bob")
    page.wait_for_function(f"() => document.body.dataset.drawn === '{bob}/{len(done)}'")
    # the image under the pointer
    i = index[done[0][1]]
    x, y = page.evaluate("""(i) => {
        const r = document.getElementById('map').getBoundingClientRect();
        return [r.left + px(i) / view.dpr, r.top + py(i) / view.dpr]; }""", i)
    page.mouse.move(x, y)
    page.wait_for_function("""() => !document.getElementById('tip').hidden &&
        document.getElementById('tip-img').naturalWidth > 0""")
    assert done[0][1] in page.text_content("#tip-text")
    # a near-copy set aside is drawn pale and says so under the pointer
    rep = np.load(os.path.join(wd, "dedupe", "representative.npy"))
    aside = int(np.flatnonzero(rep != np.arange(rep.size))[0])
    status, p = srv.request("GET", f"api/map/point?i={aside}")
    assert status == 200 and p["set_aside"] is True
    assert not errors, errors
    # hostile requests: 4xx, never 500
    for q in ("abc", "-1", "48", "9" * 30, "1e3", "", "%C2%B2", "%D9%A3"):
      status, r = srv.request("GET", f"api/map/point?i={q}")
      assert status == 400 and "pool index" in r["error"], (q, status, r)
    status, raw = srv.request("GET", "api/map/points")
    assert status == 200 and len(raw) == 48 * 9
    flags = np.frombuffer(raw[8 * 48:], np.uint8)
    assert flags.sum() == sum(len(d) for d in COPIES.values())
  finally:
    srv.stop()
