r"""Pools larger than memory: `jaxal embed --tfds` streaming a generated split at
two sizes (peak memory must not grow with the split), and selection over
memory-mapped features at N = 1,000,000 (memory beyond the features).

    python3 run.py bench stream                                # 50,000 and 200,000 images; N = 1M
    python3 run.py bench stream --sizes=10000,20000 --n=100000  # quicker
    python3 run.py bench stream --sizes= --methods=balancing,balancing_blocks
    python3 run.py bench stream --sizes= --labeled=1000  # a later round: 1,000 labeled
    python3 run.py bench stream --sizes= --methods= --experiment_size=200000

Embedding: the offline builder's target split generated at each size (TFDS,
PNG-encoded 32 px images, generation not timed), embedded by `jaxal embed`'s own
function with a small M_S (digits, width 8) in a fresh process each; printed:
images/s of the embed, images/s of the input pipeline alone (the same stream,
no M_S), and the process's peak RSS (TensorFlow, JAX and XLA included).

Selection: features [N, d] float32 and probabilities [N, C] saved as .npy and
memory-mapped read-only, as `jaxal embed` leaves them; each method runs in a
fresh process, the labels of the balancing step's simulated oracle read before
the measured call. Printed: the call's peak RSS above what was resident before
it (Linux clear_refs; the pages of the mapped files it reads count there),
"beyond the features": the peak of the process's own allocations (RssAnon,
sampled every 2 ms) above their level before the call, divided by N, and (with
--slope) the growth of that peak from the first --base_rows points (default
N/2) to all N per added point, which fixed costs (XLA's compilation, thread
pools) do not inflate; with a small --base_rows (e.g. 10,000) the smaller run's
peak is about the fixed cost itself, printed too. The last line,
`bytes_per_point_beyond_features: ...`, lists every method's figure and whether
each default path stays under --goal (100 bytes per point).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from _procstatus import reset_peak, status_kb  # bench/, the script's folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["50000", "200000"], "Split sizes to embed.")
flags.DEFINE_integer("n", 1_000_000, "Pool size of the selection part.")
flags.DEFINE_integer("d", 512, "Feature dimension.")
flags.DEFINE_integer("classes", 100, "Source classes C (probabilities) and target "
                     "classes N_t (balancing).")
flags.DEFINE_integer("budget", 1000, "Budget of random, entropy_inv_div and the "
                     "balancing step.")
flags.DEFINE_integer("coreset_budget", 100, "Budget of core-set (one pass over the "
                     "features per pick).")
flags.DEFINE_list("methods", ["random", "margin", "entropy_inv_div", "coreset",
                              "balancing", "balancing_blocks"],
                  "Selection methods to run (balancing: the [N, N_t] distance "
                  "cache; balancing_blocks: cache_distances=False).")
flags.DEFINE_float("goal", 100.0, "Bytes per point beyond the features that each "
                   "method's default path must stay under at N (the last line "
                   "says which do not; the distance cache, `balancing`, holds "
                   "4 N_t bytes per point by design and is not held to it).")
flags.DEFINE_integer("labeled", 0, "Pool points already labeled (a seeded random "
                     "subset; an active-learning round after the first): core-set "
                     "starts from them as centers, the others skip them; 0: none.")
flags.DEFINE_bool("slope", True, "Also run each method on the first --base_rows "
                  "points and print the growth per point between them and N (what "
                  "fixed costs, such as XLA's compilation, do not inflate).")
flags.DEFINE_integer("base_rows", 0, "Rows of the smaller run of --slope (0: N/2).")
flags.DEFINE_integer("experiment_size", 0, "Also run one fine-tuning cell of the "
                     "experiments on a generated split of this many images, its "
                     "pixels held (--pixels=memory) and streamed (--pixels=stream); "
                     "0: skip.")
flags.DEFINE_enum("warmup", "backend", ["backend", "method"], "What runs in "
                  "the worker before the measured call: backend: JAX's backend and "
                  "one trivial computation (the call then compiles its kernels "
                  "as a fresh `jaxal select` does); method: also the method on 64 "
                  "points (earlier results files; the measured call partly reuses "
                  "the heap that compilation freed).")
flags.DEFINE_string("workdir", None, "Where to keep the generated data (default: a "
                    "temporary folder, removed).")
flags.DEFINE_string("worker", None, "Internal: run one measurement (JSON).")


class AnonPeak:
  """Peak anonymous resident memory (RssAnon: the process's own allocations,
  not the pages of memory-mapped files) while the block runs, sampled every
  2 ms, above its value at entry."""

  def __enter__(self):
    import threading  # pylint: disable=g-import-not-at-top
    self.before = self.peak = status_kb("RssAnon") * 1024
    self.stop = threading.Event()

    def sample():
      while not self.stop.wait(0.002):
        self.peak = max(self.peak, status_kb("RssAnon") * 1024)
    self.thread = threading.Thread(target=sample, daemon=True)
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.stop.set()
    self.thread.join()
    self.peak = max(self.peak, status_kb("RssAnon") * 1024)
    self.added = self.peak - self.before


def _config(size: int):
  from jaxal.datasets import procedural  # pylint: disable=g-import-not-at-top
  return procedural.OfflineConfig(num_target_classes=20,
                                  target_train_per_class=size // 20)


def _patch_offline(size: int) -> None:
  """`--tfds=offline_target:train` at `size` images: the catalog's default
  offline sizes, for this process only."""
  from jaxal.datasets import catalog, procedural  # pylint: disable=g-import-not-at-top
  cfg = _config(size)

  class Sized:
    def __new__(cls, *a, **k):
      return cfg if not a and not k else procedural.OfflineConfig(*a, **k)
  catalog.procedural = type("P", (), {**{k: getattr(procedural, k) for k in dir(
      procedural) if not k.startswith("__")}, "OfflineConfig": Sized})


# ------------------------------------------------------------------ workers
def worker_generate(args):
  _patch_offline(args["size"])
  from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
  t = time.perf_counter()
  n = catalog.num_examples("offline_target", "train", data_dir=args["data_dir"])
  return {"images": n, "seconds": time.perf_counter() - t}


def worker_embed(args):
  _patch_offline(args["size"])
  from jaxal.cli import embed, pixels  # pylint: disable=g-import-not-at-top
  from jaxal.cli.workdir import Workdir  # pylint: disable=g-import-not-at-top
  spec = "offline_target:train"
  if args["pipeline_only"]:
    src = pixels.TfdsImages(spec, args["data_dir"], 32)
    t = time.perf_counter()
    seen = sum(len(b) for _, b in src.stream(range(0, len(src.paths), 1024), 1024))
    seconds = time.perf_counter() - t
  else:
    t = time.perf_counter()
    pool = embed.embed(Workdir(args["workdir"]), images_dir=None, tfds=spec,
                       data_dir=args["data_dir"], source_dir=args["source"],
                       chunk=1024, batch_size=256, log=lambda _: None)
    seconds = time.perf_counter() - t
    seen = len(pool.paths)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"images": seen, "seconds": seconds, "peak_rss": peak}


def worker_experiment(args):
  """One fine-tuning cell of the paper's protocol on the generated split
  (`--pixels=memory` or `stream`), M_S already trained in the workdir: the
  pool's M_S outputs (the +ens average), the selection, fine-tuning on the
  labeled images, evaluation on the test split."""
  from jaxal.experiments import protocol, sweep  # pylint: disable=g-import-not-at-top
  settings = protocol.Settings(data_dir=args["data_dir"], offline=_config(args["size"]),
                               source=protocol.SourceSettings(epochs=1, snapshot_every=1))
  if args["pixels"] == "train_source":  # the shared M_S, outside the measure
    protocol.Protocol(settings, args["workdir"], log=lambda _: None).source_model()
    return {}
  proto = protocol.Protocol(settings, args["workdir"], log=lambda _: None,
                            pixels=args["pixels"])
  t = time.perf_counter()
  cell = sweep.Cell("offline_target", "imbalanced", "finetune", 160,
                    "entropy_inv_div", True, True, 0)
  result = proto.compute(cell)
  return {"seconds": time.perf_counter() - t, "pool": sum(result["pool_counts"]),
          "acc_t": result["acc_t"],
          "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def worker_select(args):
  import jax  # pylint: disable=g-import-not-at-top
  from jaxal import acquisition, balancing  # pylint: disable=g-import-not-at-top
  rows = args["rows"]
  feats = np.load(args["features"], mmap_mode="r")[:rows]
  probs = np.load(args["probs"], mmap_mode="r")[:rows]
  labels = np.load(args["labels"], mmap_mode="r")[:rows]
  method, budget = args["method"], args["budget"]
  n = len(feats)
  mask = None
  if args["labeled"]:
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(1).choice(n, args["labeled"], replace=False)] = True
  # JAX's first work (backend, thread pools) outside the measure; XLA compiles
  # the method's kernels inside the measured call, as in a fresh `jaxal select`
  # (--warmup=method: a call on 64 points first, whose freed compiler heap the
  # measured call then partly reuses)
  jax.block_until_ready(jax.jit(lambda a: a * 2)(jax.numpy.ones(64)))
  if args["warmup"] == "method":
    acquisition.select("entropy_inv_div" if method.startswith("balancing") else method,
                       budget=8, probs=np.asarray(probs[:64]),
                       features=np.asarray(feats[:64]))
  if method.startswith("balancing"):
    ranking = acquisition.rank("entropy_inv_div", probs=probs, labeled_mask=mask)
    reads = feats.nbytes
  else:
    reads = {"random": 0, "coreset": feats.nbytes}.get(method, probs.nbytes)
  jax.block_until_ready(jax.numpy.zeros(1))
  oracle = np.asarray(labels)
  before = reset_peak()
  t = time.perf_counter()
  with AnonPeak() as anon:
    if method.startswith("balancing"):
      out = balancing.balanced_select(ranking, feats, oracle, budget, args["classes"],
                                      batch_size=100,
                                      cache_distances=method == "balancing")
    else:
      out = acquisition.select(method, budget=budget, probs=probs, features=feats,
                               labeled_mask=mask, seed=0)
  seconds = time.perf_counter() - t
  added = status_kb("VmHWM") * 1024 - before
  return {"seconds": seconds, "added": added, "reads": reads, "anon": anon.added,
          "beyond_per_point": anon.added / n, "picked": int(len(out))}


def run_worker(kind, args, env=None):
  e = dict(os.environ, **(env or {}))
  e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
  r = subprocess.run([sys.executable, os.path.abspath(__file__), f"--worker={kind}",
                      json.dumps(args)], capture_output=True, text=True, env=e)
  if r.returncode:
    raise RuntimeError(f"{kind} worker failed:\n{r.stderr[-3000:]}")
  return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv):
  if FLAGS.worker:
    fn = {"generate": worker_generate, "embed": worker_embed,
          "select": worker_select, "experiment": worker_experiment}[FLAGS.worker]
    print(json.dumps(fn(json.loads(argv[1]))))
    return
  if FLAGS.slope and FLAGS.methods and not 0 <= FLAGS.base_rows < FLAGS.n:
    raise app.UsageError(f"--base_rows must be in [0, --n = {FLAGS.n}) (0: N/2), got "
                         f"{FLAGS.base_rows}.")
  smallest = min(FLAGS.n, (FLAGS.base_rows or FLAGS.n // 2) if FLAGS.slope else FLAGS.n)
  room = smallest - max(FLAGS.budget, FLAGS.coreset_budget)
  if FLAGS.methods and (FLAGS.labeled < 0 or FLAGS.labeled > max(room, 0)):
    raise app.UsageError(f"--labeled must leave the budgets unlabeled points in the "
                         f"smallest run ({smallest:,} rows), got {FLAGS.labeled}.")
  from jaxal import _xla_cpu  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"CPU: {_xla_cpu.cpu_description()}; {os.cpu_count()} cores")
  base = FLAGS.workdir or tempfile.mkdtemp(prefix="jaxal_stream_")
  os.makedirs(base, exist_ok=True)

  # ------------------------------------------------------------- embedding
  source = os.path.join(base, "source")
  if FLAGS.sizes and not os.path.exists(os.path.join(source, "result.json")):
    subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "train_source.py"),
                    "--dataset=digits", f"--workdir={source}", "--width=8",
                    "--epochs=1", "--batch_size=64"], check=True,
                   env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True)
  peaks = []
  for size in [int(s) for s in FLAGS.sizes]:
    data_dir = os.path.join(base, f"tfds_{size}")
    g = run_worker("generate", {"size": size, "data_dir": data_dir})
    args = {"size": size, "data_dir": data_dir, "source": source}
    p = run_worker("embed", {**args, "pipeline_only": True})
    wd = os.path.join(base, f"wd_{size}")
    if os.path.exists(wd):
      subprocess.run(["rm", "-rf", wd], check=True)
    e = run_worker("embed", {**args, "pipeline_only": False, "workdir": wd})
    peaks.append(e["peak_rss"])
    print(f"embed --tfds, {e['images']:,} images of 32 px (generated in "
          f"{g['seconds']:.0f} s): {e['images'] / e['seconds']:,.0f} images/s "
          f"({e['seconds']:.1f} s), pipeline alone {p['images'] / p['seconds']:,.0f} "
          f"images/s; peak RSS {e['peak_rss'] / 2**30:.2f} GiB "
          f"(pixels of the whole split: {e['images'] * 32 * 32 * 3 / 2**30:.2f} GiB)")
  if len(peaks) > 1:
    print(f"embed peak RSS, largest / smallest split: {peaks[-1] / peaks[0]:.3f} "
          f"(split {int(FLAGS.sizes[-1]) / int(FLAGS.sizes[0]):.0f}x larger)")

  # ----------------------------------------------------------- experiments
  if FLAGS.experiment_size:
    size = FLAGS.experiment_size
    data_dir = os.path.join(base, f"tfds_{size}")
    run_worker("generate", {"size": size, "data_dir": data_dir})
    ms = os.path.join(base, f"exp_{size}_source")
    run_worker("experiment", {"size": size, "data_dir": data_dir, "workdir": ms,
                              "pixels": "train_source"})
    results = {}
    for pixels in ("memory", "stream"):
      wd = os.path.join(base, f"exp_{size}_{pixels}")
      subprocess.run(["rm", "-rf", wd], check=True)
      shutil.copytree(os.path.join(ms, "source"), os.path.join(wd, "source"))
      r = results[pixels] = run_worker("experiment", {
          "size": size, "data_dir": data_dir, "workdir": wd, "pixels": pixels})
      print(f"experiments --pixels={pixels}: one fine-tuning cell (entropy_inv_div "
            f"+ens +bal, b=160) on an imbalanced pool of {r['pool']:,} of the "
            f"{size:,}-image split: {r['seconds']:.1f} s, ACC_t {r['acc_t']:.2f}, "
            f"peak RSS {r['peak_rss'] / 2**30:.2f} GiB")
    print(f"experiments peak RSS, stream / memory: "
          f"{results['stream']['peak_rss'] / results['memory']['peak_rss']:.3f} "
          f"(whole split's pixels: {size * 32 * 32 * 3 / 2**30:.2f} GiB)")

  # ------------------------------------------------------------- selection
  n, d, c = FLAGS.n, FLAGS.d, FLAGS.classes
  paths = {k: os.path.join(base, f"{k}_{n}_{d}.npy") for k in ("features", "probs",
                                                                "labels")}
  if not all(os.path.exists(p) for p in paths.values()):
    rng = np.random.default_rng(0)
    f = np.lib.format.open_memmap(paths["features"], "w+", np.float32, (n, d))
    p = np.lib.format.open_memmap(paths["probs"], "w+", np.float32, (n, c))
    y = np.lib.format.open_memmap(paths["labels"], "w+", np.int64, (n,))
    share = 1.0 / np.arange(1, c + 1)  # Zipf class sizes: imbalanced
    centers = rng.normal(size=(c, d)).astype(np.float32)
    for s in range(0, n, 100_000):
      m = min(100_000, n - s)
      yy = rng.choice(c, size=m, p=share / share.sum())
      y[s:s + m] = yy
      f[s:s + m] = centers[yy] + rng.normal(size=(m, d)).astype(np.float32)
      logits = rng.normal(size=(m, c)).astype(np.float32) * 2
      e = np.exp(logits - logits.max(1, keepdims=True))
      p[s:s + m] = e / e.sum(1, keepdims=True)
    for a in (f, p, y):
      a.flush()
    del f, p, y
  per_point = {}
  for method in FLAGS.methods:
    budget = FLAGS.coreset_budget if method == "coreset" else FLAGS.budget
    job = {"method": method, "budget": budget, "classes": c,
           "labeled": FLAGS.labeled, "warmup": FLAGS.warmup, **paths}
    r = run_worker("select", {**job, "rows": n})
    slope = ""
    if FLAGS.slope:
      rows0 = FLAGS.base_rows or n // 2
      h = run_worker("select", {**job, "rows": rows0})
      slope = (f"; growth from {'N/2' if rows0 == n // 2 else f'N={rows0:,}'} to N: "
               f"{(r['anon'] - h['anon']) / (n - rows0):.1f} bytes/point"
               + (f" (the run at N={rows0:,}: {h['anon'] / 2**20:,.0f} MiB)"
                  if rows0 != n // 2 else ""))
    print(f"select {method:16s} N={n:,} d={d} C={c} b={budget} "
          f"labeled={FLAGS.labeled:,} warmup={FLAGS.warmup}: {r['seconds']:.2f} s; "
          f"peak RSS added {r['added'] / 2**20:,.0f} MiB (mapped arrays it reads: "
          f"{r['reads'] / 2**20:,.0f} MiB); own allocations (RssAnon) "
          f"{r['anon'] / 2**20:,.0f} MiB = {r['beyond_per_point']:.1f} bytes/point "
          f"beyond the features{slope}")
    per_point[method] = r["beyond_per_point"]
  if per_point:
    held = {m: v for m, v in per_point.items() if m != "balancing"}
    over = [m for m, v in held.items() if v >= FLAGS.goal]
    print("bytes_per_point_beyond_features: " + ", ".join(
        f"{m} {v:.1f}" for m, v in per_point.items())
          + (f"; goal < {FLAGS.goal:g}: " + (f"NOT met by {', '.join(over)}"
                                             if over else "met") if held else ""))
  if not FLAGS.workdir:
    subprocess.run(["rm", "-rf", base], check=True)


if __name__ == "__main__":
  app.run(main)
