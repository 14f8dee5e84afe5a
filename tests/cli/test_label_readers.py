"""The steps that read the labeling page's labels.csv (`report`, `train`,
`balance`) see every answer the page acknowledged: with the page still serving,
after it was killed with SIGKILL between two exports, and right when it says the
budget is spent. A labels.csv edited by hand after the page's last export still
wins for the images it names, as when the page restarts."""

import csv
import json
import os
import time

import pytest

from jaxal.cli.label_files import LabelsError

from tests.cli import label_fixture as F
from tests.cli.test_cli import jaxal
from tests.cli.test_label import stored


def rows(path):
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def answer_round_robin(srv, truth, count, names=("ann", "bob", "cy")):
  """Answers `count` images over HTTP, the annotators taking turns; returns
  (path, label) in answer order."""
  done = []
  for k in range(count):
    name = names[k % len(names)]
    status, r = srv.request("POST", "api/next", {"annotator": name})
    assert status == 200 and "image" in r, r
    path = r["image"]["path"]
    status, a = srv.request("POST", "api/answer",
                            {"annotator": name, "path": path, "label": truth[path]})
    assert status == 200 and a["saved"], a
    done.append((path, truth[path]))
  return done


def wait_for_rows(path, n, timeout_s=30.0):
  """Waits for the page's export of a batch end (it runs at most every 2 s)."""
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if os.path.exists(path) and len(rows(path)) >= n:
      return
    time.sleep(0.05)
  raise AssertionError(f"{path} never reached {n} rows")


def report(wd, cf):
  code, out, err = jaxal("report", f"--workdir={wd}",
                         f"--labels={os.path.join(wd, 'labels.csv')}",
                         f"--classes={cf}", "--noplot")
  assert code == 0, out + err
  with open(os.path.join(wd, "report", "report.json")) as f:
    return json.load(f), out


def test_readers_count_every_acknowledged_answer_after_sigkill_and_while_serving(tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  labels = os.path.join(wd, "labels.csv")
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=12", "--batch=5")
  try:
    first = answer_round_robin(srv, truth, 5)  # a batch: its export follows
    wait_for_rows(labels, 5)
    first += answer_round_robin(srv, truth, 2)  # 2 of the next: not exported
    assert len(rows(labels)) == 5
    # The page still serves: report reads the 7 answers, not the last export's 5.
    got, out = report(wd, cf)
    assert got["labeled"] == 7, (got, out)
    assert "brought up to date" in out and "still serving" in out, out
    assert [(r["path"], r["label"]) for r in rows(labels)] == first
    more = answer_round_robin(srv, truth, 2)  # 9: still not a batch end
  finally:
    srv.kill()  # SIGKILL: no export on the way out
  answers = first + more
  assert [(p, c) for p, c, _ in stored(labels)] == answers
  assert len(rows(labels)) == 7  # the file lags the store
  code, out, err = jaxal("train", f"--workdir={wd}", f"--labels={labels}",
                         f"--classes={cf}", "--target=svm")
  assert code == 0, out + err
  assert "brought up to date" in out and "stopped before" in out, out
  assert [(r["path"], r["label"]) for r in rows(labels)] == answers
  got, out = report(wd, cf)
  assert got["labeled"] == 9 and "brought up to date" not in out  # now current

  # A hand edit after the last export, older than the store's last answer: the
  # file wins for the images it names; the store's answers taken after that
  # export (none named by the file) are kept after its rows: the rule of a
  # restarted page.
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}")
  try:
    later = answer_round_robin(srv, truth, 2)  # 11, not a batch end
  finally:
    srv.kill()
  edited = rows(labels)
  assert len(edited) == 9  # the export of the restarted page's start
  dropped = edited.pop(0)
  relabel = edited[0]["path"]
  other = next(c for c in F.CLASSES if c != edited[0]["label"])
  edited[0]["label"] = other
  with open(labels, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(edited[0]))
    w.writeheader()
    w.writerows(edited)
  got, out = report(wd, cf)
  assert "read back from the edited file" in out, out
  final = {r["path"]: r["label"] for r in rows(labels)}
  assert got["labeled"] == 10 == len(final)
  assert final[relabel] == other and dropped["path"] not in final
  assert all(final[p] == c for p, c in later)


def test_the_page_says_done_after_labels_csv_holds_every_answer(tmp_path):
  wd, truth, cf = F.make(str(tmp_path))
  labels = os.path.join(wd, "labels.csv")
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=6", "--batch=3")
  try:
    answers = answer_round_robin(srv, truth, 6)
    status, r = srv.request("POST", "api/next", {"annotator": "ann"})
    assert status == 200 and r.get("done"), r
    # No wait: the final export ran before "done" was answered.
    assert [(x["path"], x["label"]) for x in rows(labels)] == answers
  finally:
    srv.stop()


def test_a_second_server_on_one_selection_is_refused(tmp_path):
  wd, _, cf = F.make(str(tmp_path))
  srv = F.Server(f"--workdir={wd}", f"--classes={cf}", "--method=margin",
                 "--budget=4", "--batch=2")
  try:
    code, out, err = jaxal("label", f"--workdir={wd}", f"--classes={cf}",
                           f"--port={F.free_port()}")
    assert code == 2 and "another `jaxal label` serves" in out + err, out + err
  finally:
    srv.stop()


def test_a_bad_hand_edit_is_refused_by_line_and_other_files_are_left_alone(tmp_path):
  """A hand edit the store cannot take (a duplicated image) is refused naming
  its line, before the database changes; a Label Studio export beside the
  page's database, and a read-only look at an up-to-date file, change nothing."""
  from jaxal.cli.label_page import store  # pylint: disable=g-import-not-at-top
  labels = str(tmp_path / "labels.csv")
  st = store.Store(labels, str(tmp_path / "conflicts.csv"), log=lambda m: None)
  for k in range(3):
    st.add(store.Answer(f"img{k}.png", "cat", "ann", store.now()))
  st.close()
  logged = []
  assert not store.bring_up_to_date(labels, log=logged.append) and not logged
  with open(labels, "a", encoding="utf-8") as f:
    f.write("img1.png,dog,bob,\n")  # img1 twice
  with pytest.raises(LabelsError, match=r"labels.csv:5: duplicate row for 'img1.png'"):
    store.bring_up_to_date(labels, log=logged.append)
  assert [p for p, _, _ in stored(labels)] == ["img0.png", "img1.png", "img2.png"]
  ls = tmp_path / "labels.json"
  ls.write_text('[{"id": 1}]')
  assert not store.bring_up_to_date(str(ls), log=logged.append)
  assert ls.read_text() == '[{"id": 1}]'
