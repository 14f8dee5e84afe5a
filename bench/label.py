r"""The labeling page's answer latency as labels accumulate, with several
annotators at once: `jaxal label` in its own process, driven over HTTP.

    python3 run.py bench label                       # 50,000 labels, 3 annotators
    python3 run.py bench label --labels=600 --checkpoints=100,500 --window=100

A generated embedded work directory (no images: answering never reads one) of
`--pool` points in `--classes` imbalanced, clustered classes; `jaxal label
--method=entropy --budget=LABELS --batch=BATCH` serves it; `--annotators`
threads each ask for an image (`api/next`) and answer it with the true class
(`api/answer`), on keep-alive connections, until the budget is spent. Every
answer's round trip is timed with the number of labels it brought the store to.
For each checkpoint c the answers that took the store from c - window to c give
the median and p99; the same for `api/next`, which also waits for the balancing
step between batches (reported, not the goal). Goal: answer p99 under 20 ms at
50,000 labels on 2 cores, flat (within noise) from 100 to 50,000.

The last line: `label_answer_p99_ms_at_<max>: X` (its ratio to the first
checkpoint's p99 in the line above it).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxal import _xla_cpu  # noqa: E402
from _workdirs import make_workdir, serve  # noqa: E402  bench/, this folder

FLAGS = flags.FLAGS
flags.DEFINE_integer("labels", 50_000, "Budget: labels given in the run.")
flags.DEFINE_integer("pool", None, "Pool size (default: labels x 1.2 + 100).")
flags.DEFINE_integer("classes", 20, "Target classes (imbalanced).")
flags.DEFINE_integer("dim", 64, "Feature dimension.")
flags.DEFINE_integer("annotators", 3, "Concurrent annotators.")
flags.DEFINE_integer("batch", 30, "Images the balancing step decides at a time.")
flags.DEFINE_list("checkpoints", ["100", "10000", "50000"], "Label counts to report at.")
flags.DEFINE_integer("window", 300, "Answers before each checkpoint that it reports.")
flags.DEFINE_string("workdir", None, "Where to build the work directory (default: "
                    "a temporary folder, removed after).")


class Client:
  """One annotator on a keep-alive connection."""

  def __init__(self, port: int, name: str):
    self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    self.name = name

  def post(self, path: str, body=None, method: str = "POST"):
    data = None if body is None else json.dumps(body).encode()
    t0 = time.perf_counter()
    self.conn.request(method, path, body=data, headers={
        "X-Jaxal": "1", "Content-Type": "application/json", "Host": "127.0.0.1"})
    r = self.conn.getresponse()
    out = json.loads(r.read())
    return r.status, out, time.perf_counter() - t0


def annotate(port, name, truth, answers, nexts, errors):
  c = Client(port, name)
  while True:
    status, r, dt = c.post("/api/next", {"annotator": name})
    if status != 200:
      errors.append((status, r))
      return
    if r.get("done"):
      return
    if "wait" in r:
      continue  # the server already waited up to its own limit
    nexts.append((r["progress"]["labeled"], dt))
    path = r["image"]["path"]
    status, r, dt = c.post("/api/answer", {"annotator": name, "path": path,
                                           "label": truth[path]})
    if status != 200 or not r.get("saved"):
      errors.append((status, r))
      return
    answers.append((r["progress"]["labeled"], dt))


def summary(samples, lo, hi):
  t = np.array([dt for n, dt in samples if lo < n <= hi]) * 1000
  if t.size == 0:
    return None
  return t.size, float(np.median(t)), float(np.percentile(t, 99)), float(t.max())


def main(argv):
  del argv
  n_labels = FLAGS.labels
  pool = FLAGS.pool or int(n_labels * 1.2) + 100
  checkpoints = sorted(int(c) for c in FLAGS.checkpoints)
  if checkpoints[-1] > n_labels or checkpoints[0] < 1:
    raise app.UsageError(f"--checkpoints must lie in 1..--labels ({n_labels}); "
                         f"got {checkpoints}.")
  if FLAGS.annotators < 1 or FLAGS.batch < 1 or FLAGS.window < 1:
    raise app.UsageError("--annotators, --batch and --window must be positive.")
  print(f"device: cpu; cpu: {_xla_cpu.cpu_description()}")
  print(f"pool {pool:,} x {FLAGS.dim}, {FLAGS.classes} classes; budget {n_labels:,}; "
        f"{FLAGS.annotators} annotators; batch {FLAGS.batch}")
  base = FLAGS.workdir or tempfile.mkdtemp(prefix="jaxal_bench_label_")
  try:
    t0 = time.perf_counter()
    wd, truth, classes_file = make_workdir(base, pool, FLAGS.classes, FLAGS.dim)
    srv, port = serve(wd, classes_file, "--method=entropy", f"--budget={n_labels}",
                      f"--batch={FLAGS.batch}", timeout=300)
    print(f"server up in {time.perf_counter() - t0:.1f} s (work directory included)")
    answers, nexts, errors = [], [], []
    t1 = time.perf_counter()
    threads = [threading.Thread(target=annotate, args=(port, f"ann{a}", truth,
                                                       answers, nexts, errors))
               for a in range(FLAGS.annotators)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    wall = time.perf_counter() - t1
    srv.terminate()
    out, _ = srv.communicate(timeout=120)
    if errors:
      raise RuntimeError(f"requests refused: {errors[:3]}\n{out[-2000:]}")
    labels_csv = os.path.join(wd, "labels.csv")
    with open(labels_csv) as f:
      rows = sum(1 for _ in f) - 1
    if rows != len(answers):
      raise RuntimeError(f"labels.csv has {rows} rows after shutdown, {len(answers)} "
                         "answers were acknowledged")
    print(f"{len(answers):,} answers in {wall:.1f} s ({len(answers) / wall:.0f} answers/s "
          f"over {FLAGS.annotators} annotators); labels.csv after shutdown: {rows:,} rows")
    print(f"{'labels':>8} {'answers':>8} {'answer median':>14} {'p99':>8} {'max':>8}"
          f" | {'next median':>12} {'p99':>8}")
    first = last = None
    for c in checkpoints:
      a = summary(answers, c - FLAGS.window, c)
      nx = summary(nexts, c - FLAGS.window, c)
      if a is None:
        continue
      print(f"{c:>8,} {a[0]:>8} {a[1]:>11.2f} ms {a[2]:>5.2f} ms {a[3]:>5.1f} ms"
            f" | {nx[1]:>9.2f} ms {nx[2]:>5.1f} ms")
      first = first or a
      last = a
    print(f"p99 at {checkpoints[-1]:,} / p99 at {checkpoints[0]:,}: "
          f"{last[2] / first[2]:.2f}")
    print(f"label_answer_p99_ms_at_{checkpoints[-1]}: {last[2]:.2f}")
  finally:
    if FLAGS.workdir is None:
      shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
