"""The labeling page's answer store (`jaxal.cli.label_page.store`): SIGKILL between
any two answers loses nothing acknowledged and duplicates nothing, labels.csv is
always parseable, hand edits of labels.csv between runs are taken, and labels
files written before the database existed load."""

import csv
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

from jaxal.cli.label_page import store

from tests.conftest import ROOT  # noqa: E402


def db_rows(labels_csv):
  db = sqlite3.connect(f"file:{store.database_path(labels_csv)}?mode=ro", uri=True)
  try:
    return db.execute("SELECT path, label, annotator FROM answers ORDER BY seq").fetchall()
  finally:
    db.close()


def csv_rows(path):
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
  assert rows[0] == list(store.LABELS_HEADER), rows[:1]
  return [tuple(r[:3]) for r in rows[1:]]


# One helper process imports the store once (JAX's import is most of a
# process's start-up) and forks a writer per trial before any JAX backend
# exists; it kills each writer with SIGKILL at a random point: after a random
# number of acknowledged answers and a random fraction of a millisecond, so the
# kills land inside transactions and inside labels.csv's exports too.
_KILLER = textwrap.dedent(r"""
  import json, os, random, signal, sqlite3, sys, time
  from jaxal.cli.label_page import store
  labels, trials, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
  rng = random.Random(seed)
  acked, report = [], []
  for trial in range(trials):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: answers until killed, one ack line per answer
      os.close(r)
      st = store.Store(labels, labels + ".conflicts", log=lambda m: None)
      k = len(st)
      while True:
        st.add(store.Answer(f"img{k:05d}.png", f"c{k % 7}", f"ann{k % 3}", store.now()))
        os.write(w, f"{k}\n".encode())
        k += 1
        if k % 5 == 0:
          st.request_export()  # a batch end
    os.close(w)
    f = os.fdopen(r)
    want = rng.randint(0, 40)
    for _ in range(want):
      line = f.readline()
      if not line:
        break
      acked.append(int(line))
    time.sleep(rng.random() / 1000)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    acked += [int(x) for x in f.read().split()]  # acks written before the kill
    f.close()
    db = sqlite3.connect(f"file:{store.database_path(labels)}?mode=ro", uri=True)
    rows = db.execute("SELECT path FROM answers ORDER BY seq").fetchall()
    db.close()
    csv_ok, csv_n = True, 0
    if os.path.exists(labels):
      try:
        import csv as _csv
        with open(labels, newline="", encoding="utf-8") as g:
          got = [x[0] for x in list(_csv.reader(g))[1:]]
        csv_n = len(got)
        csv_ok = got == [p for (p,) in rows][:len(got)]
      except Exception as e:
        csv_ok = repr(e)
    report.append({"acked": len(acked), "stored": [p for (p,) in rows],
                   "csv_ok": csv_ok, "csv_rows": csv_n})
  print(json.dumps({"acked": acked, "trials": report}))
""")


def test_sigkill_between_any_two_answers_loses_nothing_acknowledged(tmp_path):
  labels = str(tmp_path / "labels.csv")
  out = subprocess.run([sys.executable, "-c", _KILLER, labels, "20", "0"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  acked = res["acked"]
  assert len(res["trials"]) == 20 and len(acked) > 20
  before = set()
  for t in res["trials"]:
    stored = t["stored"]
    assert len(set(stored)) == len(stored)  # no duplicate
    acked_so_far = {f"img{k:05d}.png" for k in acked[:t["acked"]]}
    assert acked_so_far <= set(stored)  # every acknowledged answer is there
    # at most one answer more: the one committed when the writer was killed
    # before its acknowledgement (a later writer continues after it)
    assert len(set(stored) - acked_so_far - before) <= 1, t
    before = set(stored)
    assert stored == [f"img{k:05d}.png" for k in range(len(stored))]  # in order
    assert t["csv_ok"] is True, t["csv_ok"]  # parseable, a prefix of the answers
  # opening the store writes labels.csv from the database: all of it
  st = store.Store(labels, labels + ".conflicts", log=lambda m: None)
  assert csv_rows(labels) == db_rows(labels) and len(st) == len(res["trials"][-1]["stored"])
  st.close()


def answer(k, label=None):
  return store.Answer(f"img{k}.png", label or f"c{k}", "ann", store.now())


def test_labels_csv_follows_the_database_and_hand_edits_are_taken(tmp_path):
  labels = str(tmp_path / "labels.csv")
  logs = []
  st = store.Store(labels, str(tmp_path / "conflicts.csv"), log=logs.append)
  for k in range(3):
    st.add(answer(k))
  assert csv_rows(labels) == []  # written at batch ends, on close, on demand
  st.export()
  assert csv_rows(labels) == [(f"img{k}.png", f"c{k}", "ann") for k in range(3)]
  st.close()
  # unchanged file: the database is the record, nothing is re-read
  st = store.Store(labels, str(tmp_path / "conflicts.csv"), log=logs.append)
  assert [a.path for a in st.answers] == ["img0.png", "img1.png", "img2.png"] and not logs
  st.close()
  # by hand between runs: relabel img1, delete img0, add img9
  with open(labels, "w", newline="", encoding="utf-8") as f:
    f.write("path,label,annotator,time\nimg1.png,fixed,me,\nimg2.png,c2,ann,\n"
            "img9.png,c9,me,\n")
  st = store.Store(labels, str(tmp_path / "conflicts.csv"), log=logs.append)
  assert [(a.path, a.label) for a in st.answers] == \
      [("img1.png", "fixed"), ("img2.png", "c2"), ("img9.png", "c9")]
  assert any("changed since jaxal wrote it" in m for m in logs)
  assert db_rows(labels) == [("img1.png", "fixed", "me"), ("img2.png", "c2", "ann"),
                             ("img9.png", "c9", "me")]
  # answers taken after the last export (a server killed before the next one)
  # are kept after an edited file, unless the file names their image
  st.add(answer(4))
  st.add(answer(5))
  del st  # no close: as a SIGKILL leaves it
  with open(labels, "a", newline="", encoding="utf-8") as f:
    f.write("img5.png,by_hand,me,\n")
  st = store.Store(labels, str(tmp_path / "conflicts.csv"), log=logs.append)
  assert [(a.path, a.label) for a in st.answers] == \
      [("img1.png", "fixed"), ("img2.png", "c2"), ("img9.png", "c9"),
       ("img5.png", "by_hand"), ("img4.png", "c4")]
  assert csv_rows(labels) == [(a.path, a.label, a.annotator) for a in st.answers]
  st.close()


def test_a_labels_csv_written_before_the_database_loads(tmp_path):
  labels = str(tmp_path / "labels.csv")
  with open(labels, "w", newline="", encoding="utf-8") as f:
    f.write("path,label,annotator,time\na.png,cat,ann,2026-11-29T10:00:00+00:00\n"
            "'-b.png,dog,bob,2026-11-29T10:00:01+00:00\n")
  st = store.Store(labels, str(tmp_path / "conflicts.csv"), log=lambda m: None)
  assert [(a.path, a.label, a.annotator) for a in st.answers] == \
      [("a.png", "cat", "ann"), ("-b.png", "dog", "bob")]
  assert os.path.exists(store.database_path(labels))
  assert st.last_of("bob").path == "-b.png" and st.last_of("nobody") is None
  st.remove("-b.png")
  assert st.last_of("bob") is None and len(st) == 1
  st.close()
  assert csv_rows(labels) == [("a.png", "cat", "ann")]


def test_the_latency_benchmark_runs_small():
  """`bench label`'s smoke run: the server driven by 3 annotators over HTTP;
  every answer acknowledged is in labels.csv after shutdown (the bench checks)."""
  import re  # pylint: disable=g-import-not-at-top
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bench", "label.py"), "--labels=120",
       "--checkpoints=40,120", "--window=40", "--classes=5", "--dim=8", "--batch=6"],
      capture_output=True, text=True, timeout=600,
      env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-2000:]
  lines = out.stdout.strip().splitlines()
  assert re.fullmatch(r"label_answer_p99_ms_at_120: \d+\.\d+", lines[-1]), lines[-1]
  assert "120 answers in" in out.stdout and "labels.csv after shutdown: 120 rows" in \
      out.stdout
  assert "cpu: " in out.stdout
