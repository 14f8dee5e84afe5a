r"""Near-duplicate search: jaxal's exact pair search against faiss' exact index
(`IndexFlatIP` / `IndexFlatL2` `range_search`, the pool as its own queries) on
the same pool, threshold and machine, one after the other.

    python3 run.py bench dedupe                        # N=100,000, d=768, cosine
    python3 run.py bench dedupe --n=20000              # quicker
    python3 run.py bench dedupe --metric=euclidean --threshold=0.5
    python3 run.py bench dedupe --nocompare --large=1000000   # a GPU: jaxal alone

needs `pip install faiss-cpu` for the comparison (not in requirements.txt).

The pool: a Gaussian mixture of 100 components in d dimensions, rows scaled to
unit norm, with `--copies` of its rows replaced by near copies of others
(noise of relative size 10^-4 to 10^-1.5) and chains of copies, so the pairs
are many and some sit near the threshold.

Same pairs: faiss keeps a pair when its float32 similarity is > 1 - T (cosine)
or its float32 squared distance is < T^2; jaxal decides in float64 (<= T).
Pairs found by one and not the other are printed with their float64
distance: they can only be pairs within float32 rounding of the threshold.

Times: jaxal's `neighbors.search` with k = 0 (the pairs alone, what faiss'
range search gives) and with k = 20 (what `jaxal dedupe` runs, for its
scores), first calls with XLA's compilation included; faiss's `range_search`
with its default threads (all cores). The last line is
`dedupe_speed_ratio_vs_faiss: R` = faiss seconds / jaxal seconds (k = 0).
Memory beyond the features: the call's peak RSS above what was resident before
it (CPU), over N.
"""

from __future__ import annotations

import time

import numpy as np
from absl import app, flags

from _machine import print_machine  # bench/, the script's folder
from _procstatus import reset_peak, status_kb
from jaxal.curation import neighbors

FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 100000, "Pool size of the comparison.")
flags.DEFINE_integer("d", 768, "Feature dimension.")
flags.DEFINE_enum("metric", "cosine", ["cosine", "euclidean"], "Distance.")
flags.DEFINE_float("threshold", 0.05, "Near-duplicate distance.")
flags.DEFINE_float("copies", 0.02, "Fraction of rows replaced by near copies.")
flags.DEFINE_bool("compare", True, "Run faiss on the same pool.")
flags.DEFINE_bool("neighbors20", True, "Also time k = 20 (jaxal dedupe's pass).")
flags.DEFINE_list("large", [], "Pool sizes for jaxal alone (e.g. 1000000).")
flags.DEFINE_integer("resident", None, "--large: Tuning.resident, the bytes of the "
                     "pool kept on the device (1: read by blocks for each tile, as a "
                     "pool beyond the budget is; default: jaxal's 2 GiB).")


def pool(n: int, d: int, copies: float, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(100, d)).astype(np.float32)
  x = centers[rng.integers(0, 100, n)] + rng.normal(size=(n, d)).astype(np.float32)
  m = int(n * copies)
  src = rng.integers(0, n, m)
  dst = rng.choice(n, m, replace=False)
  scale = 10.0 ** rng.uniform(-4, -1.5, size=(m, 1))
  x[dst] = x[src] + (scale * rng.normal(size=(m, d)) * np.sqrt(1.0 / d) *
                     np.linalg.norm(x[src], axis=1, keepdims=True)).astype(np.float32)
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(fn):
  before = reset_peak()
  t = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t, status_kb("VmHWM") * 1024 - before


def faiss_pairs(x: np.ndarray, metric: str, t: float) -> np.ndarray:
  import faiss  # pylint: disable=g-import-not-at-top
  index = faiss.IndexFlatIP(x.shape[1]) if metric == "cosine" else \
      faiss.IndexFlatL2(x.shape[1])
  index.add(x)
  radius = 1.0 - t if metric == "cosine" else t * t
  lims, _, ids = index.range_search(x, radius)
  rows = np.repeat(np.arange(x.shape[0]), np.diff(lims).astype(np.int64))
  keep = rows < ids
  pairs = np.stack([rows[keep], ids[keep].astype(np.int64)], 1)
  return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def compare(x: np.ndarray) -> float:
  n, d = x.shape
  metric, t = FLAGS.metric, FLAGS.threshold
  print(f"\n== N={n}, d={d}, {metric} <= {t}: jaxal against faiss ==")
  ours, t_ours, m_ours = timed(lambda: neighbors.search(x, threshold=t, metric=metric,
                                                        k=0))
  print(f"jaxal search (k=0, the pairs alone): {t_ours:.2f} s, {len(ours.pairs)} pairs, "
        f"{m_ours / n:.0f} bytes/point beyond the features")
  if FLAGS.neighbors20:
    nb20, t20, m20 = timed(lambda: neighbors.search(x, threshold=t, metric=metric,
                                                     k=20))
    print(f"jaxal search (k=20, jaxal dedupe's pass): {t20:.2f} s, "
          f"{m20 / n:.0f} bytes/point; same pairs as k=0: "
          f"{np.array_equal(nb20.pairs, ours.pairs)}")
  if not FLAGS.compare:
    return float("nan")
  import faiss  # pylint: disable=g-import-not-at-top
  theirs, t_ref, m_ref = timed(lambda: faiss_pairs(x, metric, t))
  print(f"faiss {faiss.__version__} range_search ({faiss.omp_get_max_threads()} "
        f"threads): {t_ref:.2f} s, {len(theirs)} pairs, {m_ref / n:.0f} bytes/point")
  a = {tuple(p) for p in ours.pairs.tolist()}
  b = {tuple(p) for p in theirs.tolist()}
  only = sorted(a ^ b)
  print(f"same pairs: {not only}" + ("" if not only else
        f" ({len(a - b)} only jaxal's, {len(b - a)} only faiss'; their float64 "
        "distances: " + ", ".join(
            f"{i}-{j} {neighbors.exact_distances(x, np.array([i]), np.array([j]), metric)[0]:.9g}"
            for i, j in only[:8]) + ")"))
  ratio = t_ref / t_ours
  print(f"ratio faiss / jaxal: {ratio:.2f}x")
  return ratio


def main(argv):
  del argv
  print_machine()
  ratio = compare(pool(FLAGS.n, FLAGS.d, FLAGS.copies)) if FLAGS.n else float("nan")
  tuning = None if FLAGS.resident is None else \
      neighbors.DEFAULT_TUNING._replace(resident=FLAGS.resident)
  for n in FLAGS.large:
    x = pool(int(n), FLAGS.d, FLAGS.copies, seed=1)
    found, secs, mem = timed(lambda: neighbors.search(  # pylint: disable=cell-var-from-loop
        x, threshold=FLAGS.threshold, metric=FLAGS.metric, k=20, tuning=tuning))
    kept = "default" if tuning is None else f"{tuning.resident} bytes"
    print(f"\n== N={n}, d={FLAGS.d}: jaxal alone (Tuning.resident {kept}) ==\n"
          f"jaxal search (k=20): {secs:.1f} s (first call, compilation included), "
          f"{len(found.pairs)} pairs, {mem / int(n):.0f} bytes/point beyond the "
          "features")
  if np.isfinite(ratio):
    print(f"dedupe_speed_ratio_vs_faiss: {ratio:.2f}")


if __name__ == "__main__":
  app.run(main)
