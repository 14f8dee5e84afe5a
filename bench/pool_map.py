r"""The labeling page's map of the pool (`/map`) at a million images: what the
server and the browser take, in Chromium driven by Playwright.

    python3 run.py bench pool_map                     # 1,000,000 x 128, 20 classes
    python3 run.py bench pool_map --pool=100000       # quicker

A generated embedded work directory (`bench/_workdirs.py`, no images: the map
never reads one) of `--pool` points in `--dim` dimensions; `jaxal label`
serves it in its own process, and `--answers` images are answered over HTTP
(coloured points drawn over the density). Measured, each on this machine:

- server: `api/map/points`, first call (the PCA of the pool, cached in
  WORKDIR/map, and the bytes: 9 per image) and second call (held);
- browser (Debian's chromium, headless; `JAXAL_CHROMIUM` to choose another):
  from navigation to the first full draw (`document.body.dataset.drawn` says
  every answer is drawn);
  then, in the page, `layout()` (binning every point into the canvas' pixels
  and the hover grid: what a resize costs), `draw()` (what every 1.5 s refresh
  and class filter costs), `nearest()` under the pointer (what a hover costs),
  and the JS heap (Chromium's `performance.memory`).

Goal ("stays responsive"): a refresh (`draw`) under 50 ms and a hover under
1 ms at 1,000,000 images. The last line: `map_draw_ms_at_<N>: X`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from _machine import print_machine  # noqa: E402  bench/, the script's folder
from _workdirs import make_workdir, serve  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("pool", 1_000_000, "Images in the pool.")
flags.DEFINE_integer("dim", 128, "Feature dimension.")
flags.DEFINE_integer("classes", 20, "Target classes (imbalanced).")
flags.DEFINE_integer("answers", 300, "Images answered before the page is opened.")
flags.DEFINE_string("workdir", None, "Where to build the work directory (default: "
                    "a temporary folder, removed after).")

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def request(port: int, path: str, body=None, method: str = "POST"):
  """(status, body bytes, seconds) of one request to the page's server."""
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
  data = None if body is None else json.dumps(body).encode()
  t0 = time.perf_counter()
  conn.request(method, path, body=data, headers={
      "X-Jaxal": "1", "Content-Type": "application/json", "Host": "127.0.0.1"})
  r = conn.getresponse()
  out = r.read()
  return r.status, out, time.perf_counter() - t0


def answer(port: int, truth: dict, count: int) -> None:
  """`count` answers by one annotator, each the image's true class."""
  done = 0
  while done < count:
    status, out, _ = request(port, "/api/next", {"annotator": "bench"})
    r = json.loads(out)
    if status == 200 and "wait" in r:
      continue  # the balancing step's next batch: the server waited already
    if status != 200 or r.get("done") or "image" not in r:
      raise RuntimeError(f"api/next: {status} {r}")
    done += 1
    path = r["image"]["path"]
    status, out, _ = request(port, "/api/answer", {"annotator": "bench", "path": path,
                                                   "label": truth[path]})
    if status != 200:
      raise RuntimeError(f"api/answer: {status} {out[:200]}")


IN_PAGE = """() => {
  const median = (f, k) => { const t = [];
    for (let j = 0; j < k; j++) { const s = performance.now(); f();
      t.push(performance.now() - s); }
    t.sort((a, b) => a - b); return t[Math.floor(k / 2)]; };
  const c = document.getElementById("map");
  const hover = median(() => { for (let j = 0; j < 1000; j++)
    nearest((j * 7919) % c.width, (j * 104729) % c.height); }, 5) / 1000;
  return {layout: median(layout, 3), draw: median(draw, 11), hover,
          width: c.width, height: c.height, heap: performance.memory ?
          performance.memory.usedJSHeapSize : null,
          drawn: document.body.dataset.drawn};
}"""


def main(argv):
  del argv
  print_machine()
  exe = os.environ.get("JAXAL_CHROMIUM") or next(
      (shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
  if exe is None:
    raise app.UsageError("no Chromium found: apt-get install chromium, or set "
                         "JAXAL_CHROMIUM=/path/to/chrome.")
  n = FLAGS.pool
  print(f"pool {n:,} x {FLAGS.dim}, {FLAGS.classes} classes; {FLAGS.answers} answers "
        "drawn over the density")
  base = FLAGS.workdir or tempfile.mkdtemp(prefix="jaxal_bench_map_")
  srv = None
  try:
    t0 = time.perf_counter()
    wd, truth, classes_file = make_workdir(base, n, FLAGS.classes, FLAGS.dim)
    srv, port = serve(wd, classes_file, "--method=random",
                      f"--budget={FLAGS.answers + 100}")
    print(f"server up in {time.perf_counter() - t0:.1f} s (work directory included)")
    answer(port, truth, FLAGS.answers)
    status, data, first = request(port, "/api/map/points", method="GET")
    if status != 200 or len(data) != 9 * n:
      raise RuntimeError(f"api/map/points: {status}, {len(data)} bytes")
    _, _, again = request(port, "/api/map/points", method="GET")
    print(f"server: api/map/points {len(data) / 1e6:.1f} MB; first call (PCA of the "
          f"pool, then cached) {first:.2f} s, second {again * 1000:.0f} ms")
    from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
      page = browser.new_page(viewport={"width": 1280, "height": 800})
      t1 = time.perf_counter()
      page.goto(f"http://127.0.0.1:{port}/map")
      # layout() draws the density first ("0/0"); the full draw holds the
      # answers, once the page's first state poll returns
      full = f"{FLAGS.answers}/{FLAGS.answers}"
      page.wait_for_function(f"() => document.body.dataset.drawn === '{full}'",
                             timeout=600_000)
      ready = time.perf_counter() - t1
      m = page.evaluate(IN_PAGE)
      browser.close()
    heap = "n/a" if m["heap"] is None else f"{m['heap'] / 1e6:.0f} MB"
    print(f"browser ({m['width']} x {m['height']} canvas): navigation to the first "
          f"draw {ready:.2f} s (the points' download, layout and first state included); "
          f"layout() {m['layout']:.0f} ms (a resize), draw() {m['draw']:.1f} ms (a "
          f"refresh, {m['drawn']} answers drawn), nearest() {m['hover'] * 1000:.1f} us "
          f"(a hover); JS heap {heap}")
    print(f"goal: draw under 50 ms: {m['draw'] < 50}; hover under 1 ms: "
          f"{m['hover'] < 1}")
    print(f"map_draw_ms_at_{n}: {m['draw']:.1f}")
  finally:
    if srv is not None:
      srv.terminate()
      srv.communicate(timeout=120)
    if FLAGS.workdir is None:
      shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
