r"""Cold-start acquisition: jaxal's TypiClust, ProbCover and MaxHerding against
reference implementations in the same run, then jaxal alone at large N.

    python3 run.py bench coldstart                          # N=20,000, d=512, b=1,000
    python3 run.py bench coldstart --n=5000 --budget=250    # quicker
    python3 run.py bench coldstart --large=1000000 --large_budget=10000   # a GPU

References (alternated with jaxal, one run each; printed with their times):
  TypiClust  scikit-activeml's `TypiClust` (scikit-learn KMeans, K = b), against
             jaxal's with the same options (K = b, no size threshold, k = 5
             neighbours, plain distances) and its own k-means;
  ProbCover  scikit-activeml's `ProbCover` given jaxal's delta (a one-element
             grid, so it skips its delta search), against jaxal's greedy with that
             delta; jaxal's exact purity search is timed on its own;
  MaxHerding a NumPy float32 greedy of the definition with the N x N kernel
             precomputed (what the authors' code does on a GPU; scikit-activeml's
             float64 version is the same loop, slower).
Same selection: given the same clusters / delta / kernel, the picks must be equal
(scikit-activeml's random tie-breaking replaced by the lowest index, as jaxal's).
Memory "beyond the features": peak RSS (CPU) or peak device bytes (GPU) minus
what was in use before the call, divided by N.
The pool: a Gaussian mixture of 100 components of imbalanced sizes in d
dimensions, so that clusters and delta-balls mean something.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from absl import app, flags

from _machine import print_machine  # bench/, the script's folder
from _procstatus import reset_peak, status_kb
from jaxal.coldstart import _inputs, kmeans, maxherding, probcover, typiclust

FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 20000, "Pool size of the comparison.")
flags.DEFINE_integer("d", 512, "Feature dimension.")
flags.DEFINE_integer("budget", 1000, "Budget b of the comparison.")
flags.DEFINE_list("large", [], "Pool sizes for jaxal alone (e.g. 200000,1000000).")
flags.DEFINE_integer("large_budget", 1000, "Budget at the large sizes.")
flags.DEFINE_list("methods", ["typiclust", "probcover", "maxherding"], "Methods.")
flags.DEFINE_bool("reference", True, "Run the reference implementations.")
flags.DEFINE_bool("compare", True, "Run the comparison at --n (--nocompare: only the "
                  "--large sizes).")
flags.DEFINE_string("pool_dir", None, "Keep the --large pools here as .npy and reuse "
                    "them (several runs, e.g. one method per process, generate each "
                    "pool once).")


def pool(n: int, d: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  sizes = rng.pareto(1.2, 100) + 1
  comp = rng.choice(100, size=n, p=sizes / sizes.sum())
  centers = rng.normal(size=(100, d)).astype(np.float32)
  x = centers[comp] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
  return _inputs.normalized(x.astype(np.float32))


def timed(fn):
  """(result, seconds, peak memory the call added). CPU: the process's peak RSS
  is reset first (Linux clear_refs), so the number is this call's own peak
  above what was resident before it (XLA's compilation included). GPU: the
  device's peak bytes in use since start minus those in use before (JAX cannot
  reset that peak: a later, smaller call may show an earlier one's peak)."""
  if jax.default_backend() != "cpu":
    stats = jax.devices()[0].memory_stats() or {}
    before = int(stats.get("bytes_in_use", 0))
  else:
    before = reset_peak()
  t = time.perf_counter()
  out = fn()
  seconds = time.perf_counter() - t
  if jax.default_backend() != "cpu":
    peak = int((jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0))
  else:
    peak = status_kb("VmHWM") * 1024
  return out, seconds, max(0, peak - before)


def maxherding_numpy(x: np.ndarray, budget: int, gamma: float) -> np.ndarray:
  sq = np.einsum("ij,ij->i", x, x)
  k = np.exp(-gamma * np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))
  cur = np.zeros(len(x), np.float32)
  taken = np.zeros(len(x), bool)
  out = []
  for _ in range(budget):
    g = np.maximum(k - cur[:, None], 0).sum(0)
    g[taken] = -np.inf
    j = int(np.argmax(g))
    out.append(j)
    taken[j] = True
    cur = np.maximum(cur, k[:, j])
  return np.asarray(out)


def first_difference(x, ours, theirs, gamma) -> str:
  """Where two MaxHerding pick sequences first differ, and by how much the two
  picks' gains differ there in float64 (given the common history)."""
  differ = np.flatnonzero(ours != theirs)
  if not differ.size:
    return ""
  i = int(differ[0])
  xx = x.astype(np.float64)
  sq = np.einsum("ij,ij->i", xx, xx)

  def kernel(cols):  # [N, len(cols)] float64 kernel values
    return np.exp(-gamma * np.maximum(sq[:, None] + sq[cols][None, :]
                                      - 2 * xx @ xx[cols].T, 0))
  cur = kernel(ours[:i]).max(1) if i else np.zeros(len(x))
  a, b = int(ours[i]), int(theirs[i])
  ga, gb = np.maximum(kernel(np.array([a, b])) - cur[:, None], 0).sum(0)
  return (f" (first difference at pick {i} of {len(ours)}: float64 gains "
          f"{ga:.17g} (jaxal, index {a}) and {gb:.17g} (reference, index {b}), "
          f"relative gap {abs(ga - gb) / max(ga, gb):.1e})")


def exact_ties(x, clusters, ours, theirs, opts) -> int:
  """How many differing picks are exact typicality ties (0 if any is not: then
  the picks truly differ). Each cluster is visited once here (K = b)."""
  differ = np.flatnonzero(ours != theirs)
  for i in differ:
    a, b = int(ours[i]), int(theirs[i])
    idx = np.flatnonzero(clusters == clusters[a])
    if clusters[b] != clusters[a]:
      return 0
    t = typiclust.typicality(x[idx], neighbors=opts["neighbors"],
                             neighbor_rule=opts["neighbor_rule"],
                             squared=opts["squared"])
    ta, tb = t[np.searchsorted(idx, a)], t[np.searchsorted(idx, b)]
    if abs(ta - tb) > 1e-12 * max(ta, tb):  # jaxal's tie tolerance
      return 0
  return int(differ.size)


def lowest_ties():
  import skactiveml.pool._max_herding as mh  # pylint: disable=g-import-not-at-top
  import skactiveml.pool._prob_cover as pc  # pylint: disable=g-import-not-at-top
  import skactiveml.pool._typi_clust as tc  # pylint: disable=g-import-not-at-top

  def lowest(a, random_state=None, axis=None):
    del random_state, axis
    return np.array([np.flatnonzero(a == np.nanmax(a))[0]])
  mh.rand_argmax = pc.rand_argmax = tc.rand_argmax = lowest


def compare(n: int, d: int, b: int) -> dict:
  x = pool(n, d)
  y = np.full(n, np.nan)
  ratios = {}
  print(f"\n== N={n}, d={d}, b={b}: jaxal against the references ==")
  if FLAGS.reference:
    lowest_ties()
    from skactiveml import pool as skpool  # pylint: disable=g-import-not-at-top
  opts = dict(max_clusters=None, min_cluster_size=0, neighbors=5,
              neighbor_rule="all_but_one", squared=False)
  if "typiclust" in FLAGS.methods:
    ours, t_ours, m_ours = timed(lambda: typiclust.typiclust(x, b, seed=0, **opts))
    print(f"typiclust jaxal: {t_ours:.2f} s (k-means K={b} included), "
          f"{m_ours / n:.0f} bytes/point beyond the features")
    if FLAGS.reference:
      _, t_ref, _ = timed(lambda: skpool.TypiClust(k=5, random_state=0).query(
          x, y, batch_size=b))
      clusters = kmeans.kmeans(x, b, seed=0).labels

      class Fixed:
        def __init__(self, n_clusters, random_state=None):
          del n_clusters, random_state

        def fit_predict(self, _):
          return clusters
      theirs = skpool.TypiClust(cluster_algo=Fixed, k=5, random_state=0).query(
          x, y, batch_size=b)
      same_clusters = typiclust.typiclust(x, b, clusters=clusters, normalize=False,
                                          **opts)
      ties = exact_ties(x, clusters, same_clusters, theirs, opts)
      ratios["typiclust"] = t_ref / t_ours
      print(f"typiclust scikit-activeml: {t_ref:.2f} s; ratio {t_ref / t_ours:.1f}x; "
            f"same picks given the same clusters: "
            f"{np.array_equal(same_clusters, theirs)}"
            + (f" (the {ties} that differ are exact typicality ties, e.g. a 2-point "
               "cluster, which their float64 rounding of each point's distance to "
               "itself decides; jaxal takes the lowest index)" if ties else ""))
  if "probcover" in FLAGS.methods:
    (_, info), t_search, _ = timed(lambda: probcover.probcover(
        x, 1, num_classes=100, seed=0, return_info=True))
    delta = info.delta
    print(f"probcover jaxal delta search (k-means K=100 + exact purity): "
          f"{t_search:.2f} s, delta {delta:.4f}, purity {info.purity:.3f}")
    (ours, info), t_ours, m_ours = timed(lambda: probcover.probcover(
        x, b, delta=delta, normalize=False, return_info=True))
    print(f"probcover jaxal greedy: {t_ours:.2f} s, coverage {info.coverage:.3f}, "
          f"{info.stats.evaluations} exact gains, {m_ours / n:.0f} bytes/point")
    if FLAGS.reference:
      theirs, t_ref, m_ref = timed(lambda: skpool.ProbCover(
          deltas=[delta], random_state=0).query(x, y, batch_size=b))
      ratios["probcover"] = t_ref / t_ours
      print(f"probcover scikit-activeml: {t_ref:.2f} s ({m_ref / n:.0f} bytes/point); "
            f"ratio {t_ref / t_ours:.1f}x; same picks: {np.array_equal(ours, theirs)}")
  if "maxherding" in FLAGS.methods:
    (ours, st), t_ours, m_ours = timed(lambda: maxherding.maxherding(
        x, b, normalize=False, return_stats=True))
    print(f"maxherding jaxal: {t_ours:.2f} s, {st.evaluations} exact gains, "
          f"{m_ours / n:.0f} bytes/point")
    if FLAGS.reference:
      theirs, t_ref, m_ref = timed(lambda: maxherding_numpy(x, b, 1.0))
      ratios["maxherding"] = t_ref / t_ours
      print(f"maxherding NumPy greedy (N x N kernel): {t_ref:.2f} s "
            f"({m_ref / n:.0f} bytes/point); ratio {t_ref / t_ours:.1f}x; "
            f"same picks: {np.array_equal(ours, theirs)}"
            + first_difference(x, ours, theirs, 1.0))
  return ratios


def large_pool(n: int, d: int) -> np.ndarray:
  """The pool of the --large runs, read from --pool_dir when kept there."""
  if not FLAGS.pool_dir:
    return pool(n, d, seed=1)
  path = os.path.join(FLAGS.pool_dir, f"coldstart_pool_{n}_{d}.npy")
  if os.path.exists(path):
    return np.load(path)
  x = pool(n, d, seed=1)
  os.makedirs(FLAGS.pool_dir, exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp.npy"
  np.save(tmp, x)
  os.replace(tmp, path)  # a killed run leaves no truncated pool behind
  return x


def large(n: int, d: int, b: int) -> None:
  x = large_pool(n, d)
  print(f"\n== N={n}, d={d}, b={b}: jaxal alone ==")
  for m in FLAGS.methods:
    fn = {"typiclust": lambda: typiclust.typiclust(x, b, seed=0),
          "probcover": lambda: probcover.probcover(x, b, num_classes=100, seed=0),
          "maxherding": lambda: maxherding.maxherding(x, b)}[m]
    _, t, mem = timed(fn)
    if jax.default_backend() == "cpu":
      print(f"{m}: {t:.1f} s, {mem / n:.0f} bytes/point beyond the features")
    else:  # the device's peak holds its copy of the features
      print(f"{m}: {t:.1f} s (first call, compilation included), peak device memory "
            f"{mem / 2**30:.2f} GiB = features {x.nbytes / 2**30:.2f} GiB + "
            f"{(mem - x.nbytes) / n:.0f} bytes/point")


def main(argv):
  del argv
  print_machine()
  ratios = compare(FLAGS.n, FLAGS.d, FLAGS.budget) if FLAGS.compare else {}
  for n in FLAGS.large:
    large(int(n), FLAGS.d, FLAGS.large_budget)
  if ratios:
    print("coldstart_speed_ratio_vs_reference: " + " ".join(
        f"{k} {v:.1f}" for k, v in ratios.items()))


if __name__ == "__main__":
  app.run(main)
