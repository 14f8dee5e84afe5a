"""`jaxal label`, the labeling page: in headless Chromium (Debian's, driven by
Playwright; nothing downloaded), a simulated annotator labels the whole budget
from the keyboard and sees exactly `balanced_select`'s sequence; two annotators
at once never see the same image; SIGKILL loses no acknowledged answer; the
server refuses path traversal, symlinks out of the folder, missing or wrong
tokens, oversized bodies, labels for images never offered and cross-site
posts, leaving the labels file unchanged.

Also here: labels files as spreadsheets and Label Studio write them, named
selections, and the source model's guesses by name."""

import csv
import json
import os
import shutil
import urllib.parse

import numpy as np
import pytest

from jaxal import acquisition, balancing
from jaxal.cli import label_studio
from jaxal.cli.workdir import Workdir
from tests.cli import label_fixture as F
from tests.cli.test_cli import jaxal

SCREENSHOT = os.environ.get("JAXAL_SCREENSHOT")  # where README's screenshot goes


def reference(wd, truth, method, budget, batch, classes=F.CLASSES):
  """balanced_select's sequence (paths) with the true labels as the oracle."""
  pool = Workdir(wd).pool()
  y = np.array([classes.index(truth[p]) for p in pool.paths])
  if acquisition.ranks_whole_pool(method):
    ranking = acquisition.rank(method, probs=pool.probs)
  else:
    with open(os.path.join(wd, "selection.json")) as f:
      ranking = json.load(f)["picks"][0]
  picks = balancing.balanced_select(ranking, pool.features, y, budget, len(classes),
                                    batch_size=batch)
  plain = [pool.paths[i] for i in np.asarray(ranking)[:budget]]
  return [pool.paths[i] for i in picks], plain


def read_rows(path):
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def file_bytes(path):
  with open(path, "rb") as f:
    return f.read()


def stored(labels_csv):
  """(path, label, annotator) of every answer in the page's database, in order:
  what is durable, whether or not labels.csv has caught up yet."""
  import sqlite3  # pylint: disable=g-import-not-at-top
  db = sqlite3.connect(f"file:{os.path.splitext(labels_csv)[0]}.sqlite?mode=ro", uri=True)
  try:
    return db.execute("SELECT path, label, annotator FROM answers ORDER BY seq").fetchall()
  finally:
    db.close()


@pytest.fixture(scope="module")
def browser():
  exe = os.environ.get("JAXAL_CHROMIUM") or next(
      (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
       if shutil.which(n)), None)
  if exe is None:
    pytest.fail("no Chromium: `python3 run.py test` installs Debian's chromium "
                "(apt-get install chromium); or set JAXAL_CHROMIUM=/path/to/chrome")
  from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top
  with sync_playwright() as p:
    b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
    yield b
    b.close()


def login(page, url, name):
  page.goto(url)
  page.fill("#name", name)
  page.press("#name", "Enter")


def shown_now(page, prev=None, timeout=60_000, waiting=True):
  """Waits for an image other than `prev` (or the end, or, with `waiting`, the
  page saying it waits for the others); returns ("image", path), ("done",
  None) or ("waiting", None)."""
  page.wait_for_function(
      """([prev, waiting]) => !document.getElementById('done').hidden ||
           (waiting && document.body.dataset.state === 'waiting') ||
           (document.body.dataset.state === 'image' &&
            document.getElementById('path').textContent !== prev)""",
      arg=[prev, waiting], timeout=timeout)
  if not page.is_hidden("#done"):
    return "done", None
  if page.evaluate("document.body.dataset.state") == "waiting":
    return "waiting", None
  return "image", page.text_content("#path")


def key_of(page, label):
  return page.evaluate("""(l) => [...document.querySelectorAll('#classes button')]
                            .find(b => b.dataset.label === l).dataset.key""", label)


def test_label_the_budget_from_the_keyboard_in_chromium(browser, tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  budget, batch = 16, 3
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=entropy_inv_div",
                 f"--budget={budget}", f"--batch={batch}")
  try:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, srv.url, "alice")
    shown, prev = [], None
    while True:  # alone, the page may wait a moment for the next batch
      state, path = shown_now(page, prev, waiting=False)
      if state == "done":
        break
      assert state == "image"
      assert page.text_content("#guess") in F.SOURCE_NAMES  # the guess by name
      assert int(page.text_content("#rank")) == len(shown) + 1
      if not shown:  # the image itself loads (served from the folder)
        page.wait_for_function("() => document.getElementById('image').naturalWidth > 0")
      shown.append(path)
      if SCREENSHOT and not os.path.exists(SCREENSHOT) and \
          "balancing step" in page.text_content("#mode"):
        page.wait_for_function("() => document.getElementById('image').complete")
        page.screenshot(path=SCREENSHOT)
      page.keyboard.press(key_of(page, truth[path]))
      prev = path
    # The class named like a script is text on a button, never a script.
    assert page.evaluate("""() => [...document.querySelectorAll('#classes button')]
        .some(b => b.textContent.includes('<script>alert(1)</script>'))""")
    assert page.evaluate("document.querySelectorAll('body script').length") == 0
    assert not dialogs and not errors, (dialogs, errors)
    assert "jaxal train" in page.text_content("#commands")
    assert page.text_content("#labeled") == str(budget)
  finally:
    out = srv.stop()
  ref, plain = reference(wd, truth, "entropy_inv_div", budget, batch)
  assert shown == ref, out
  assert ref != plain  # the balancing step took part
  rows = read_rows(os.path.join(wd, "labels.csv"))
  assert [(r["path"], r["label"], r["annotator"]) for r in rows] == \
      [(p, truth[p], "alice") for p in ref]
  labels = os.path.join(wd, "labels.csv")
  code, out, err = jaxal("report", f"--workdir={wd}", f"--labels={labels}",
                         "--noplot")
  assert code == 0 and f"report: {budget} labeled, 4 of 4 classes found" in out, err
  code, out, err = jaxal("balance", f"--workdir={wd}", f"--labels={labels}",
                         f"--classes={cf}", f"--batch={batch}")
  assert code == 0 and "budget spent" in out, err


def test_two_annotators_never_see_the_same_image(browser, tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  budget, batch = 14, 4
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 f"--budget={budget}", f"--batch={batch}")
  try:
    pages = [browser.new_context().new_page() for _ in range(2)]
    for page, name in zip(pages, ("ann", "bob")):
      login(page, srv.url, name)
    on_screen = [shown_now(p) for p in pages]
    both_at_once = 0
    for _ in range(200):
      if all(s == "done" for s, _ in on_screen):
        break
      paths = [p for s, p in on_screen if s == "image"]
      assert len(paths) == len(set(paths)), on_screen  # never the same image
      both_at_once += len(paths) == 2
      for k, page in enumerate(pages):
        state, path = on_screen[k]
        if state == "image":
          page.keyboard.press(key_of(page, truth[path]))
          on_screen[k] = shown_now(page, path)
        elif state == "waiting":  # the other holds the rest of the batch
          page.wait_for_timeout(100)
          on_screen[k] = shown_now(page, None)
    assert all(s == "done" for s, _ in on_screen), on_screen
    assert both_at_once >= 3
  finally:
    srv.stop()
  rows = read_rows(os.path.join(wd, "labels.csv"))
  ref, _ = reference(wd, truth, "margin", budget, batch)
  assert sorted(r["path"] for r in rows) == sorted(ref)
  assert all(r["label"] == truth[r["path"]] for r in rows)
  assert {r["annotator"] for r in rows} == {"ann", "bob"}
  # batch by batch, the same sets as balanced_select's
  got = [r["path"] for r in rows]
  for s in range(0, budget, batch):
    assert sorted(got[s:s + batch]) == sorted(ref[s:s + batch])


def chunked_post(srv, path, parts):
  """(status, JSON) of a POST whose body is sent in chunks (no Content-Length)."""
  import http.client  # pylint: disable=g-import-not-at-top
  conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
  try:
    conn.request("POST", "/" + path, body=iter(parts), encode_chunked=True,
                 headers={"X-Jaxal": "1", "Content-Type": "application/json",
                          "Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    return r.status, json.loads(r.read())
  finally:
    conn.close()


def answer_all(srv, truth, name, count):
  """Answers `count` images over HTTP as `name`; returns their paths."""
  done = []
  for _ in range(count):
    status, r = srv.request("POST", "api/next", {"annotator": name})
    assert status == 200 and "image" in r, r
    path = r["image"]["path"]
    status, a = srv.request("POST", "api/answer",
                            {"annotator": name, "path": path, "label": truth[path]})
    assert status == 200 and a["saved"], a
    done.append(path)
  return done


def test_sigkill_loses_no_acknowledged_answer_and_resumes(tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  budget = 10
  args = (f"--workdir={wd}", f"--classes={cf}", "--method=coreset",
          f"--budget={budget}", "--batch=1")
  srv = F.Server(*args)
  first = answer_all(srv, truth, "ann", 6)
  srv.kill()  # SIGKILL: no shutdown handler runs
  labels = os.path.join(wd, "labels.csv")
  assert [r[0] for r in stored(labels)] == first  # every acknowledged answer
  srv = F.Server(*args[:2])  # the selection and batch are recorded
  try:
    # labels.csv is written from the database when the server starts
    assert [r["path"] for r in read_rows(labels)] == first
    status, r = srv.request("GET", "api/state")
    assert r["progress"]["labeled"] == 6
    rest = answer_all(srv, truth, "ann", budget - 6)
    status, r = srv.request("POST", "api/next", {"annotator": "ann"})
    assert r.get("done"), r
  finally:
    srv.stop()
  ref, _ = reference(wd, truth, "coreset", budget, 1)
  assert first + rest == ref


def test_undo_skip_and_conflicts(tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=least_confidence",
                 "--budget=8", "--batch=1")
  labels = os.path.join(wd, "labels.csv")
  try:
    a = answer_all(srv, truth, "ann", 2)
    status, r = srv.request("POST", "api/undo", {"annotator": "ann"})
    assert status == 200 and r["undone"] == a[1]
    assert [x[0] for x in stored(labels)] == a[:1]
    status, r = srv.request("POST", "api/next", {"annotator": "ann"})
    assert r["image"]["path"] == a[1]  # shown again
    wrong = next(c for c in F.CLASSES if c != truth[a[1]])
    srv.request("POST", "api/answer", {"annotator": "ann", "path": a[1], "label": wrong})
    # bob answers the next image; ann's undo would now change what bob was asked
    b = answer_all(srv, truth, "bob", 1)
    status, r = srv.request("POST", "api/undo", {"annotator": "ann"})
    assert status == 409 and "already chose" in r["error"]
    # a second, different answer for bob's image is kept aside
    before = stored(labels)
    other = next(c for c in F.CLASSES if c != truth[b[0]])
    status, r = srv.request("POST", "api/answer",
                            {"annotator": "ann", "path": b[0], "label": other})
    assert status == 409 and "kept aside" in r["error"]
    assert stored(labels) == before
    conflicts = read_rows(os.path.join(wd, "conflicts.csv"))
    assert [(c["path"], c["label"], c["kept_label"]) for c in conflicts] == \
        [(b[0], other, truth[b[0]])]
    assert srv.request("GET", "api/state")[1]["progress"]["conflicts"] == 1
  finally:
    srv.stop()
  # skip: with batches of 3, a skipped image comes back after the others
  wd2, truth2, cf2 = F.make(str(tmp_path / "two"), seed=1)
  srv = F.Server(f"--workdir={wd2}", f"--classes={cf2}", "--method=margin",
                 "--budget=6", "--batch=3")
  try:
    r = srv.request("POST", "api/next", {"annotator": "ann"})[1]
    skipped = r["image"]["path"]
    srv.request("POST", "api/skip", {"annotator": "ann", "path": skipped})
    seen = answer_all(srv, truth2, "ann", 3)
    assert skipped not in seen[:2] and seen[2] == skipped
  finally:
    srv.stop()


def test_the_server_refuses_bad_requests_and_changes_nothing(tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  images = Workdir(wd).recorded("embed")["images"]
  # a pool image that is a symlink to a file outside the folder
  secret = tmp_path / "secret.png"
  shutil.copy(os.path.join(images, next(iter(truth))), secret)
  os.symlink(secret, os.path.join(images, "part0", "link.png"))
  with open(os.path.join(wd, "paths.txt"), "a") as f:
    f.write("part0/link.png\n")
  data = dict(np.load(os.path.join(wd, "embedding.npz")))
  n = len(data["index"])
  data["index"] = np.arange(n + 1)
  for k in ("features", "probs", "target_features"):
    data[k] = np.concatenate([data[k], data[k][:1]])
  np.savez(os.path.join(wd, "embedding.npz"), **data)

  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=6", "--batch=2")
  labels = os.path.join(wd, "labels.csv")
  try:
    first = answer_all(srv, truth, "ann", 1)[0]
    before = stored(labels)
    ok_img = srv.request("GET", "image?path=" + urllib.parse.quote(first))
    assert ok_img[0] == 200 and ok_img[1][:4] == b"\x89PNG"
    for bad in ("../wd/workdir.json", "../secret.png", str(secret),
                os.path.join(images, first), "part0/link.png", "part0/../../secret.png"):
      status, _ = srv.request("GET", "image?path=" + urllib.parse.quote(bad))
      assert status == 404, bad
    offered = set(json.load(open(os.path.join(wd, "selection.json")))["picks"][0])
    never = next(p for p, i in Workdir(wd).pool().index.items() if i not in offered)
    cases = [
        ({"annotator": "ann", "path": never, "label": "cat"}, {}, 400),
        ({"annotator": "ann", "path": "../etc/passwd", "label": "cat"}, {}, 400),
        ({"annotator": "ann", "path": first, "label": "not a class"}, {}, 400),
        ({"annotator": "", "path": first, "label": "cat"}, {}, 400),
        (b"x" * 17_000, {}, 413),
        (b"not json", {}, 400),
        ({"annotator": "ann", "path": first, "label": "cat"}, {"X-Jaxal": ""}, 403),
        ({"annotator": "ann", "path": first, "label": "cat"},
         {"Content-Type": "text/plain"}, 403),
        ({"annotator": "ann", "path": first, "label": "cat"}, {"Host": "evil.example"},
         403),
    ]
    for body, headers, want in cases:
      status, r = srv.request("POST", "api/answer", body, headers=headers)
      assert status == want, (body, headers, status, r)
      assert stored(labels) == before
    # chunked bodies carry no Content-Length: the same 413 over the limit, before
    # the handler runs; under it, the answer is taken as any other
    big = [b"[" + b"1," * 3000] * 3 + [b"1]"]
    status, r = chunked_post(srv, "api/answer", big)
    assert status == 413 and "over 16384 bytes" in r["error"], (status, r)
    assert stored(labels) == before
    status, r = srv.request("POST", "api/next", {"annotator": "ann"})
    second = r["image"]["path"]
    small = json.dumps({"annotator": "ann", "path": second,
                        "label": truth[second]}).encode()
    status, r = chunked_post(srv, "api/answer", [small[:10], small[10:]])
    assert status == 200 and r["saved"], r
    assert [row[0] for row in stored(labels)] == [first, second]
    before = stored(labels)
    # the page escapes: names arrive as JSON; the CSP allows only our script
    status, page = srv.request("GET", "")
    assert status == 200 and b"<script src=\"static/app.js\"" in page
    assert F.XSS.encode() not in page
  finally:
    srv.stop()

  # off loopback: a token is required, then checked on every request
  code, _, err = jaxal("label", f"--workdir={wd}", f"--classes={cf}",
                       "--host=0.0.0.0")
  assert code == 2 and "--token" in err
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", host="0.0.0.0",
                 token="s3cret-token")
  try:
    assert srv.request("GET", "api/state")[0] == 200
    assert srv.request("GET", "api/state", token=False)[0] == 401
    assert srv.request("GET", "api/state", token=False,
                       headers={"X-Jaxal-Token": "wrong-token"})[0] == 401
    assert srv.request("GET", "", token=False)[0] == 401
    assert srv.request("GET", "?token=s3cret-token", token=False)[0] == 200
    status, _ = srv.request("POST", "api/answer",
                            {"annotator": "x", "path": first, "label": "cat"},
                            token=False)
    assert status == 401 and stored(labels) == before
  finally:
    srv.stop()


# ------------------------------------------------ labels files and selections
def test_spreadsheet_and_label_studio_labels_files(tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  code, out, err = jaxal("select", f"--workdir={wd}", "--method=margin", "--budget=8",
                         f"--classes={cf}")
  assert code == 0, err
  rows = read_rows(os.path.join(wd, "to_label.csv"))
  assert {r["predicted_name"] for r in rows} <= set(F.SOURCE_NAMES)
  assert any("," in r["path"] for r in rows)  # quoting matters
  paths = [r["path"] for r in rows]

  def report(labels_file):
    return jaxal("report", f"--workdir={wd}", f"--labels={labels_file}",
                 f"--classes={cf}", "--noplot")

  # "CSV UTF-8" from a spreadsheet: byte-order mark, CRLF, quoted fields
  excel = tmp_path / "excel.csv"
  lines = ["\ufeffpath,label"] + [
      '"' + p.replace('"', '""') + '",' + ('"' + truth[p] + '"' if i % 2 else truth[p])
      for i, p in enumerate(paths[:5])]
  excel.write_bytes("\r\n".join(lines).encode("utf-8") + b"\r\n")
  code, out, err = report(str(excel))
  assert code == 0 and "report: 5 labeled" in out, err
  # still refused where truly wrong, by file and line
  bad = tmp_path / "bad.csv"
  bad.write_bytes(b"\xef\xbb\xbfpath,label\r\n\"" + paths[0].encode() +
                  b"\",nope\r\n")
  code, _, err = report(str(bad))
  assert code == 2 and f"{bad}:2: unknown class 'nope'" in err
  bad.write_bytes(b"path,label\r\n" + paths[0].encode("utf-8") + b",caf\xe9\r\n")
  code, _, err = report(str(bad))
  assert code == 2 and f"{bad}:2: not UTF-8" in err
  classes_bom = tmp_path / "classes_bom.txt"
  classes_bom.write_bytes(("\ufeff" + "\r\n".join(F.CLASSES) + "\r\n").encode())
  code, out, err = jaxal("report", f"--workdir={wd}", f"--labels={excel}",
                         f"--classes={classes_bom}", "--noplot")
  assert code == 0, err

  # Label Studio: the tasks jaxal wrote, sorted by rank as the prediction score
  tasks = json.load(open(os.path.join(wd, "to_label.label_studio.json")))
  assert [t["data"]["jaxal_path"] for t in tasks] == paths
  assert [t["predictions"][0]["score"] for t in tasks] == \
      [float(r["rank"]) for r in rows]
  assert tasks[0]["data"]["image"] == label_studio.LOCAL_FILES + urllib.parse.quote(
      paths[0], safe="/")
  # an export made by hand in Label Studio's documented JSON format
  export = []
  for k, t in enumerate(tasks[:6]):
    ann = {"id": 100 + k, "completed_by": 1, "was_cancelled": False,
           "ground_truth": False, "lead_time": 2.5,
           "created_at": "2026-11-29T10:00:00.000000Z",
           "result": [{"id": f"r{k}", "from_name": "choice", "to_name": "image",
                       "type": "choices", "origin": "manual",
                       "value": {"choices": [truth[t["data"]["jaxal_path"]]]}}]}
    task = {"id": k + 1, "data": dict(t["data"]), "annotations": [ann],
            "predictions": t["predictions"], "meta": {}, "project": 3,
            "created_at": "2026-11-29T09:00:00.000000Z"}
    if k == 1:  # exported without our field: the image URL names it
      del task["data"]["jaxal_path"]
    if k == 2:  # a cancelled (skipped) annotation does not count
      task["annotations"].append({**ann, "id": 999, "was_cancelled": True,
                                  "result": []})
    export.append(task)
  export.append({"id": 99, "data": tasks[6]["data"], "annotations": []})  # unlabeled
  ls = tmp_path / "export.json"
  ls.write_text(json.dumps(export))
  code, out, err = report(str(ls))
  assert code == 0 and "report: 6 labeled" in out, err
  # JSON-MIN
  mini = [{"id": k, "image": t["data"]["image"], "jaxal_path": t["data"]["jaxal_path"],
           "choice": truth[t["data"]["jaxal_path"]], "annotator": 1}
          for k, t in enumerate(tasks[:4])]
  (tmp_path / "min.json").write_text(json.dumps(mini))
  code, out, err = report(str(tmp_path / "min.json"))
  assert code == 0 and "report: 4 labeled" in out, err
  # disagreeing annotations are refused, naming the task
  other = next(c for c in F.CLASSES if c != export[0]["annotations"][0]["result"][0]
               ["value"]["choices"][0])
  second = json.loads(json.dumps(export[0]["annotations"][0]))
  second["result"][0]["value"]["choices"] = [other]
  export[0]["annotations"].append(second)
  ls.write_text(json.dumps(export))
  code, _, err = report(str(ls))
  assert code == 2 and f"{ls}:task 1 (id 1): its annotations disagree" in err


def test_named_selections_share_one_embedding(tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  for name, method in (("m", "margin"), ("c", "coreset")):
    code, _, err = jaxal("select", f"--workdir={wd}", f"--selection={name}",
                         f"--method={method}", "--budget=6")
    assert code == 0, err
  code, _, err = jaxal("select", f"--workdir={wd}", "--method=random", "--budget=5")
  assert code == 0, err
  m, c, d = (read_rows(os.path.join(wd, *p, "to_label.csv")) for p in (
      ("selections", "m"), ("selections", "c"), ()))
  assert len(m) == 6 and len(c) == 6 and len(d) == 5 and \
      [r["path"] for r in m] != [r["path"] for r in c]
  assert Workdir(wd, "m").recorded("select")["method"] == "margin"
  assert Workdir(wd).recorded("select")["method"] == "random"
  assert os.listdir(os.path.join(wd, "selections", "m")) and not any(
      n.startswith("embedding") for n in os.listdir(os.path.join(wd, "selections", "m")))
  # each selection's labels, balance and report are its own
  lab = tmp_path / "m.csv"
  lab.write_text("path,label\n" + "".join(
      f'"{r["path"]}",{truth[r["path"]]}\n' for r in m))
  code, out, err = jaxal("report", f"--workdir={wd}", "--selection=m",
                         f"--labels={lab}", f"--classes={cf}", "--noplot")
  assert code == 0 and "report: 6 labeled" in out, err
  code, _, err = jaxal("report", f"--workdir={wd}", "--selection=c",
                       f"--labels={lab}", f"--classes={cf}", "--noplot")
  assert code == 2 and "outside the selection" in err
  code, _, err = jaxal("select", f"--workdir={wd}", "--selection=m",
                       "--method=coreset", "--budget=6")
  assert code == 2 and "--method: 'margin' here, 'coreset' in this call" in err
  code, _, err = jaxal("select", f"--workdir={wd}", "--selection=../x",
                       "--method=margin", "--budget=6")
  assert code == 2 and "--selection '../x'" in err
  code, _, err = jaxal("embed", f"--workdir={wd}", "--selection=m",
                       f"--images={tmp_path}", f"--source={tmp_path}")
  assert code == 2 and "--selection: the embedding is shared" in err


def test_a_lease_expires_and_the_image_goes_to_another_annotator(tmp_path):
  from jaxal.cli import label  # pylint: disable=g-import-not-at-top
  from jaxal.cli.label_page import session  # pylint: disable=g-import-not-at-top
  wd, truth, cf = F.make(str(tmp_path))
  w = Workdir(wd, "leases")
  batch = label.prepare(w, classes_file=cf, method="margin", budget=4, batch=2,
                        log=lambda _: None)
  now = [0.0]
  s = session.Session(w, classes_file=cf, batch=batch, lease_s=30,
                      clock=lambda: now[0], log=lambda _: None).start()
  a = s.next_for("ann")["image"]["path"]
  b = s.next_for("bob")["image"]["path"]
  assert a != b
  assert "wait" in s.next_for("cy", wait_s=0.2)  # both images are leased
  assert s.next_for("ann")["image"]["path"] == a  # a reload shows the same one
  now[0] = 31.0  # ann's and bob's leases ran out
  assert s.next_for("cy")["image"]["path"] == a
  # ann answers late: the first answer wins, cy's different one is kept aside
  assert s.answer("ann", a, truth[a])["saved"]
  other = next(c for c in F.CLASSES if c != truth[a])
  with pytest.raises(session.Refused, match="kept aside"):
    s.answer("cy", a, other)
  assert os.path.exists(os.path.join(wd, "selections", "leases", "labels.csv"))
  assert not os.path.exists(os.path.join(wd, "labels.csv"))


def test_many_classes_get_a_filter_box(browser, tmp_path):
  classes = [f"class_{c}" for c in "abcdefghijklmn"]  # 14: more than 10
  wd, truth, cf = F.make(str(tmp_path), n=60, classes=classes)
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=3", "--batch=1")
  try:
    page = browser.new_page()
    login(page, srv.url, "ann")
    prev = None
    for _ in range(3):
      state, path = shown_now(page, prev, waiting=False)
      assert state == "image" and page.is_visible("#filter")
      page.keyboard.press("/")  # focuses the filter box
      page.keyboard.type(truth[path].upper())  # case does not matter
      assert page.evaluate("""() => [...document.querySelectorAll(
          '#classes button:not(.hidden)')].map(b => b.dataset.label)""") == \
          [truth[path]]
      page.keyboard.press("Enter")  # the first class left
      prev = path
    assert shown_now(page, prev, waiting=False)[0] == "done"
  finally:
    srv.stop()
  rows = read_rows(os.path.join(wd, "labels.csv"))
  assert [r["label"] for r in rows] == [truth[r["path"]] for r in rows]


def test_the_page_works_with_a_token_off_loopback(browser, tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=2", "--batch=1", host="0.0.0.0", token="t0ken-for-test")
  try:
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, srv.url + "?token=t0ken-for-test", "ann")
    state, path = shown_now(page, waiting=False)
    assert state == "image" and path in truth and not errors
    page.wait_for_function("() => document.getElementById('image').naturalWidth > 0")
    page.keyboard.press(key_of(page, truth[path]))
    assert shown_now(page, path, waiting=False)[0] == "image"
    other = browser.new_page()  # no token: nothing is served
    assert other.goto(srv.url).status == 401
  finally:
    srv.stop()
  assert len(read_rows(os.path.join(wd, "labels.csv"))) == 1


def test_a_tfds_pool_serves_its_images(tmp_path):
  """A pool embedded from a TFDS split (`embed --tfds`; here the bundled digits)
  has no files: the page gets its images as PNG, with the split's pixels."""
  import io as _io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
  digits = catalog.load_arrays("digits", "train", image_size=32)
  n = 200
  wd = str(tmp_path / "wd")
  os.makedirs(wd)
  paths = [f"digits:train/{i:08d}" for i in range(n)]
  with open(os.path.join(wd, "paths.txt"), "w") as f:
    f.write("\n".join(paths) + "\n")
  rng = np.random.default_rng(0)
  y = digits.labels[:n]
  feats = (np.eye(10)[y] * 3 + rng.normal(size=(n, 10))).astype(np.float32)
  probs = np.full((n, 10), 0.1, np.float32)
  probs += rng.random((n, 10)).astype(np.float32) * 0.01
  probs /= probs.sum(1, keepdims=True)
  np.savez(os.path.join(wd, "embedding.npz"), index=np.arange(n), features=feats,
           probs=probs, target_features=feats)
  with open(os.path.join(wd, "workdir.json"), "w") as f:
    json.dump({"embed": {"images": "digits:train", "tfds": True, "image_size": 32,
                         "data_dir": None, "source": str(tmp_path / "none")}}, f)
  cf = tmp_path / "classes.txt"
  cf.write_text("\n".join(str(i) for i in range(10)) + "\n")
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=4", "--batch=2")
  try:
    for _ in range(2):
      r = srv.request("POST", "api/next", {"annotator": "ann"})[1]
      path = r["image"]["path"]
      status, png = srv.request("GET", "image?path=" + urllib.parse.quote(path))
      assert status == 200 and png[:4] == b"\x89PNG"
      got = np.asarray(Image.open(_io.BytesIO(png)))
      assert np.array_equal(got, digits.images[int(path.split("/")[1])])
      label = str(int(digits.labels[int(path.split("/")[1])]))
      assert srv.request("POST", "api/answer", {"annotator": "ann", "path": path,
                                                "label": label})[0] == 200
    bad = srv.request("GET", "image?path=" + urllib.parse.quote("digits:train/99999999"))
    assert bad[0] == 404
  finally:
    srv.stop()


def test_csv_cells_are_spreadsheet_safe_and_round_trip(tmp_path):
  """OWASP CSV injection: user text that a spreadsheet would evaluate is written
  with a leading ' and read back exactly, through the page's store and through
  `--labels` (paths and class names that begin with '-' included)."""
  from jaxal.cli import label_files as labels_lib  # pylint: disable=g-import-not-at-top
  from jaxal.cli.label_page import store  # pylint: disable=g-import-not-at-top
  texts = ['=HYPERLINK("http://x")', "+1", "-dir/a.png", "@SUM(A1)", "\tcat",
           "\rdog", "'quoted", "''", "plain", "", "a=b", "-"]
  for t in texts:
    assert labels_lib.from_cell(labels_lib.to_cell(t)) == t
    assert not labels_lib.to_cell(t).startswith(("=", "+", "-", "@", "\t", "\r"))
  st = store.Store(str(tmp_path / "labels.csv"), str(tmp_path / "conflicts.csv"))
  evil = store.Answer("-dir/a b.png", "-minus", '=HYPERLINK("http://x")', store.now())
  st.add(evil)
  st.add_conflict(store.Answer("-dir/a b.png", "@at", "+plus", store.now()), evil)
  st.close()  # writes labels.csv from the answers' database
  for name in ("labels.csv", "conflicts.csv"):
    with open(tmp_path / name, newline="") as f:
      cells = [c for row in __import__("csv").reader(f) for c in row]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells), (name, cells)
  again = store.Store(str(tmp_path / "labels.csv"), str(tmp_path / "conflicts.csv"))
  assert again.answers == [evil]
  assert again.conflicts[0][1:3] == ("@at", "+plus")
  got = labels_lib.read_labels(str(tmp_path / "labels.csv"),
                               pool={"-dir/a b.png": 0}, classes=["-minus"],
                               offered=[0])
  assert got == {0: "-minus"}
