r"""Benchmark of the acquisition kernels (issue: jaxal core).

Prints measured numbers only; every ratio is against a reference measured in the
same run on the same machine:

1. Greedy k-center (N=50,000, d=512, b=1,000) against the per-step
   `sklearn.metrics.pairwise_distances` loop of google/active-learning's
   `kcenter_greedy` (transcribed below, started from jaxal's first center so the
   two can be compared index for index), and its bytes/s against a plain read of
   the same bytes.
2. Peak RSS of k-center at N=1,000,000, d=512 (fresh subprocess), against the
   size of the features.
3. Entropy / least confidence / margin over a 50,000 x 1,000 probability matrix:
   bytes/s against the same plain read.
4. On a GPU backend only: k-center at N=1,000,000, d=512, b=10,000 against the
   device's copy bandwidth.

    python3 run.py bench acquisition            # full size (a few minutes on CPU)
    python3 run.py bench acquisition --quick    # tiny sizes, a smoke test

The last line is `kcenter_speedup_vs_sklearn_per_step: <x>`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from sklearn.metrics import pairwise_distances

from jaxal import _native, _xla_cpu, kcenter, uncertainty
from jaxal import hostmem

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script, measures nothing.")
flags.DEFINE_integer("n", 50_000, "k-center pool size.")
flags.DEFINE_integer("d", 512, "Feature dimension.")
flags.DEFINE_integer("b", 1_000, "k-center budget.")
flags.DEFINE_integer("rss_n", 1_000_000, "Pool size of the peak-RSS run.")
flags.DEFINE_integer("rss_b", 20, "Budget of the peak-RSS run.")
flags.DEFINE_integer("probs_n", 50_000, "Rows of the probability matrix.")
flags.DEFINE_integer("probs_c", 1_000, "Columns (source classes) of it.")
flags.DEFINE_integer("gpu_n", 1_000_000, "GPU k-center pool size.")
flags.DEFINE_integer("gpu_b", 10_000, "GPU k-center budget.")
flags.DEFINE_integer("repeats", 5, "Repeats of the short timings (best is kept).")
flags.DEFINE_list("sections", ["1", "2", "3", "4"], "Sections to run (numbered as "
                  "above); e.g. --sections=1,3,4 on a GPU host skips the host-RSS run.")
flags.DEFINE_bool("check_gpu_section", False, "Run section 4 on the default backend "
                  "even if it is not a GPU (with --quick: checks its code).")
flags.DEFINE_string("rss_child", "", "Internal: run the RSS measurement, print JSON.")


def best_time(fn, repeats):
  """Best wall time of `fn()` over `repeats` runs (after one warm-up call)."""
  fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return min(times)


def reference_kcenter(features, budget, first, between=None, segments=1):
  """google/active-learning `kcenter_greedy.select_batch_` with no labeled data.

  Per step: `pairwise_distances(features, features[[ind]])`, running minimum,
  `np.argmax`. Its first center is `np.random.choice`; here it is jaxal's first
  center so the two runs can be compared index for index.

  The loop runs in `segments` parts; `between()` runs after each part, outside
  the timed loop, so that jaxal is timed under the same machine conditions.
  Returns (indices, seconds spent in the loop).
  """
  min_distances = None
  new_batch = []
  ind = first
  seconds = 0.0
  bounds = np.linspace(0, budget, segments + 1).astype(int)
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    t = time.perf_counter()
    for _ in range(lo, hi):
      dist = pairwise_distances(features, features[[ind]], metric="euclidean")
      min_distances = dist if min_distances is None else np.minimum(
          min_distances, dist)
      new_batch.append(ind)
      ind = int(np.argmax(min_distances))
    seconds += time.perf_counter() - t
    if between is not None:
      between()
  return np.asarray(new_batch), seconds


def plain_read_bandwidth(x, repeats):
  """Bytes/s of one jitted pass that reads every byte of `x` (a row sum)."""
  row_sum = jax.jit(lambda a: jnp.sum(a, axis=1))
  t = best_time(lambda: row_sum(x).block_until_ready(), repeats)
  return x.size * x.dtype.itemsize / t


def time_kcenter(x_host, budget, exact=True, eager=False):
  """(indices, stats, seconds) of one call of jaxal's k-center.

  `eager` sets one block spanning the pool (every step reads all features once),
  the evaluation that the memory-bandwidth floor applies to.
  """
  tuning = kcenter.DEFAULT_TUNING
  if eager:
    tuning = tuning._replace(rows=x_host.shape[0], pending=1)
  t = time.perf_counter()
  idx, stats = kcenter.kcenter_greedy(x_host, budget, seed=0, exact=exact,
                                      return_stats=True, tuning=tuning)
  return idx, stats, time.perf_counter() - t


def run_kcenter(x_host, budget, runs=3, exact=True, eager=False):
  """(indices, stats, median seconds, first-call seconds) of jaxal's k-center."""
  first_run = time_kcenter(x_host, budget, exact, eager)[2]
  times = []
  for _ in range(runs):
    idx, stats, seconds = time_kcenter(x_host, budget, exact, eager)
    times.append(seconds)
  return idx, stats, float(np.median(times)), first_run


def bf16_step_seconds(x_host, repeats):
  """Seconds of one matvec over a bfloat16 copy of the pool (what bf16 would buy)."""
  xb = jnp.asarray(x_host, jnp.bfloat16)
  v = xb[0]
  mv = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  return best_time(lambda: mv(xb, v).block_until_ready(), repeats)


def rss_child(n, d, b):
  """Runs in a fresh process: peak RSS of k-center on an [n, d] float32 pool."""
  import psutil  # noqa: PLC0415 (only the child needs it)
  proc = psutil.Process()
  jnp.zeros(1).block_until_ready()  # start the backend before the baseline
  base = proc.memory_info().rss
  x = hostmem.aligned_empty((n, d), np.float32)  # XLA:CPU uses it in place
  rng = np.random.default_rng(0)
  for s in range(0, n, 65536):  # in chunks: no float64 temporary of the pool
    x[s:s + 65536] = rng.standard_normal((min(65536, n - s), d), np.float32)
  after_features = proc.memory_info().rss
  t = time.perf_counter()
  kcenter.kcenter_greedy(x, b, seed=0)
  seconds = time.perf_counter() - t
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  print(json.dumps(dict(base=base, after_features=after_features, peak=peak,
                        features=x.nbytes, seconds=seconds)))


def main(argv):
  del argv
  if FLAGS.rss_child:
    n, d, b = (int(v) for v in FLAGS.rss_child.split(","))
    return rss_child(n, d, b)
  if FLAGS.quick:
    FLAGS.n, FLAGS.d, FLAGS.b = 2_000, 32, 20
    FLAGS.rss_n, FLAGS.rss_b = 20_000, 5
    FLAGS.probs_n, FLAGS.probs_c = 2_000, 100
    FLAGS.gpu_n, FLAGS.gpu_b = 20_000, 50
    FLAGS.repeats = 2
  backend = jax.default_backend()
  dev = jax.devices()[0]
  print(f"device: {dev.device_kind} ({backend}, {jax.device_count()} device(s)); "
        f"jax {jax.__version__}")
  print(f"cpu: {_xla_cpu.cpu_description()}")
  print(f"xla:cpu routing: {_xla_cpu.routing()}")

  # 1. k-center against the sklearn per-step loop.
  speedup = None
  d = FLAGS.d
  if "1" in FLAGS.sections:
    n, d, b = FLAGS.n, FLAGS.d, FLAGS.b
    x = hostmem.aligned(np.random.default_rng(0).standard_normal((n, d), np.float32))
    t_first = time_kcenter(x, b)[2]  # compiles
    runs = []  # jaxal timed between the reference's segments: same conditions

    def jaxal_run():
      runs.append(time_kcenter(x, b))

    jaxal_run()
    ref, t_ref = reference_kcenter(x, b, int(runs[0][0][0]), between=jaxal_run,
                                   segments=4)
    idx, stats = runs[0][0], runs[0][1]
    assert all(np.array_equal(r[0], idx) for r in runs), "k-center not deterministic"
    t_runs = [r[2] for r in runs]
    t_jax = float(np.median(t_runs))
    eager_idx, _, t_eager, _ = run_kcenter(x, b, runs=3, eager=True)
    _, _, t_fast, _ = run_kcenter(x, b, runs=1, exact=False)
    same = np.array_equal(idx, ref)
    agree = int(np.argmax(idx != ref)) if not same else b
    step_bytes = n * d * 4
    bw_read = plain_read_bandwidth(jnp.asarray(x), FLAGS.repeats)
    bw_eager = b * step_bytes / t_eager
    bw_lazy = b * step_bytes / t_jax
    speedup = t_ref / t_jax
    print(f"\n[k-center] N={n} d={d} b={b} float32")
    print(f"  sklearn per-step loop : {t_ref:9.3f} s  ({t_ref / b * 1e3:.2f} ms/step)")
    print(f"  jaxal kcenter_greedy  : {t_jax:9.3f} s  ({t_jax / b * 1e3:.2f} ms/step, "
          f"median of {len(t_runs)} runs interleaved with the reference's segments: "
          f"{', '.join(f'{v:.3f}' for v in t_runs)} s; first call with compile "
          f"{t_first:.3f} s)")
    print(f"  identical indices     : {same}" +
          ("" if same else f" (first difference at step {agree})"))
    print(f"  exact tie-breaks      : {stats.refined_steps} of {b} steps "
          f"(>{kcenter.DEFAULT_TUNING.few} in band, several passes: {stats.overflow_steps}); float32 error "
          f"bound {stats.error_bound:.3g}")
    print(f"  lazy evaluation       : {stats.block_refreshes} block refreshes of "
          f"{kcenter.DEFAULT_TUNING.rows} rows = "
          f"{stats.block_refreshes * kcenter.DEFAULT_TUNING.rows / (n * b):.3f}"
          " of the rows an eager pass per step reads")
    print(f"  plain read bytes/s    : {bw_read / 1e9:9.2f} GB/s (jitted row sum, same array)")
    print(f"  eager evaluation      : {t_eager:9.3f} s  ({bw_eager / 1e9:.2f} GB/s = "
          f"{bw_eager / bw_read:.2f} of the read floor; same indices: "
          f"{np.array_equal(eager_idx, idx)})")
    print(f"  lazy, eager-equivalent: {bw_lazy / 1e9:9.2f} GB/s = {bw_lazy / bw_read:.2f}x "
          "the read floor (reads fewer bytes)")
    print(f"  exact=False           : {t_fast:9.3f} s  (float32 order decides ties)")
    t_bf16 = bf16_step_seconds(x, FLAGS.repeats)
    print(f"  bf16 matvec, same pool: {t_bf16 * 1e3:9.2f} ms/step ({t_bf16 / (t_eager / b):.2f}x "
          "the time of the eager float32 step; half the bytes, not exact)")

  # 2. Peak RSS at N=1M in a fresh process, and at N/2 for the per-point slope
  # (the difference removes what does not grow with N: the compiler, jaxlib).
  if "2" in FLAGS.sections:
    def rss(num):
      out = subprocess.run(
          [sys.executable, os.path.abspath(__file__),
           f"--rss_child={num},{d},{FLAGS.rss_b}"],
          capture_output=True, text=True, check=True)
      return json.loads(out.stdout.strip().splitlines()[-1])

    r, half = rss(FLAGS.rss_n), rss(FLAGS.rss_n // 2)
    extra = r["peak"] - r["after_features"]
    extra_half = half["peak"] - half["after_features"]
    slope = (extra - extra_half) / (FLAGS.rss_n - FLAGS.rss_n // 2)
    print(f"\n[k-center memory] N={FLAGS.rss_n} d={d} b={FLAGS.rss_b} float32")
    print(f"  features              : {r['features'] / 2**30:9.3f} GiB")
    print(f"  RSS baseline (jax up) : {r['base'] / 2**30:9.3f} GiB")
    print(f"  RSS with features     : {r['after_features'] / 2**30:9.3f} GiB")
    print(f"  peak RSS              : {r['peak'] / 2**30:9.3f} GiB")
    print(f"  peak beyond features  : {extra / 2**20:9.1f} MiB "
          f"({extra / r['features']:.3f} x features)")
    print(f"  same at N={FLAGS.rss_n // 2:<9d}: {extra_half / 2**20:9.1f} MiB -> "
          f"{slope:.1f} bytes per extra pool point (features: {4 * d} B/point)")
    print(f"  time                  : {r['seconds']:9.3f} s (incl. compile)")

  # 3. Uncertainty scores.
  if "3" in FLAGS.sections:
    pn, pc = FLAGS.probs_n, FLAGS.probs_c
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((pn, pc), np.float32) * 3
    probs = jnp.asarray(jax.nn.softmax(logits, axis=1))
    pbytes = pn * pc * 4
    bw_read_p = plain_read_bandwidth(probs, FLAGS.repeats)
    print(f"\n[uncertainty] {pn} x {pc} float32 ({pbytes / 1e6:.0f} MB); plain read "
          f"{bw_read_p / 1e9:.2f} GB/s")
    host = np.asarray(probs)
    t_np = best_time(lambda: np.log(host), 1)
    print(f"  (numpy log of the same array: {t_np * 1e3:.1f} ms: this CPU's log "
          "throughput bounds entropy)")
    mask = jnp.zeros((pn,), bool)
    for name, fn in (("entropy", uncertainty.entropy),
                     ("least_confidence", uncertainty.least_confidence),
                     ("margin", uncertainty.margin)):
      jf = jax.jit(fn)
      ts = best_time(lambda: jf(probs).block_until_ready(), FLAGS.repeats)
      tr = best_time(lambda: uncertainty.rank_by_uncertainty(
          probs, mask, kind=name).block_until_ready(), FLAGS.repeats)
      print(f"  {name:17s}: score {ts * 1e3:7.2f} ms, {pbytes / ts / 1e9:6.2f} GB/s "
            f"({pbytes / ts / bw_read_p:.2f} of read); score+rank {tr * 1e3:7.2f} ms")
    jx = jax.jit(uncertainty._margin_xla)
    tx = best_time(lambda: jx(probs).block_until_ready(), FLAGS.repeats)
    same = np.array_equal(np.asarray(jax.jit(uncertainty.margin)(probs)),
                          np.asarray(jx(probs)))
    print(f"  margin, XLA only : score {tx * 1e3:7.2f} ms, {pbytes / tx / 1e9:6.2f} GB/s "
          f"({pbytes / tx / bw_read_p:.2f} of read); margin above: "
          f"{_native.status().get('margin', 'XLA')}; same values: {same}")

  # 4. GPU only.
  if "4" not in FLAGS.sections:
    pass
  elif backend == "gpu" or FLAGS.check_gpu_section:
    gn, gb = FLAGS.gpu_n, FLAGS.gpu_b
    xg = np.random.default_rng(2).standard_normal((gn, d), np.float32)
    _, _, tg, tg_first = run_kcenter(xg, gb, runs=1)
    _, _, tg_eager, _ = run_kcenter(xg, gb, runs=1, eager=True)
    xd = jnp.asarray(xg)
    copy = jax.jit(lambda a: a * 1.0)
    tc = best_time(lambda: copy(xd).block_until_ready(), FLAGS.repeats)
    copy_bw = 2 * xd.nbytes / tc  # read + write
    bw = gb * xd.nbytes / tg
    bw_e = gb * xd.nbytes / tg_eager
    print(f"\n[k-center GPU] N={gn} d={d} b={gb}: lazy {tg:.3f} s ({tg / gb * 1e3:.3f} "
          f"ms/step, first call {tg_first:.3f} s; eager-equivalent {bw / 1e9:.1f} GB/s); "
          f"eager {tg_eager:.3f} s ({bw_e / 1e9:.1f} GB/s); copy bandwidth "
          f"{copy_bw / 1e9:.1f} GB/s (eager at {bw_e / copy_bw:.2f} of it)")
  else:
    print(f"\n[k-center GPU] skipped: backend is {backend}; run on a GPU host.")

  if speedup is None:
    print("kcenter_speedup_vs_sklearn_per_step: unavailable (section 1 skipped)")
  else:
    print(f"kcenter_speedup_vs_sklearn_per_step: {speedup:.2f}")


if __name__ == "__main__":
  app.run(main)
