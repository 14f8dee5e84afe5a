"""TypiClust, ProbCover and MaxHerding (`jaxal.coldstart`): hand-made data whose
answer is known, float64 brute force, lazy = plain greedy, scikit-activeml where
the definitions coincide, labeled points, seeds, sharding and bad inputs."""

import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxal import acquisition
from jaxal.coldstart import coverage, kmeans, maxherding, probcover, typiclust
from jaxal.errors import InputError
from tests.conftest import ROOT, subprocess_env


def sphere(n, d, seed):
  x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_greedy(x, budget, kind, param, mask):
  """Greedy coverage in float64 with the whole kernel matrix (the definition)."""
  x = x.astype(np.float64)
  s = np.square(x[:, None, :] - x[None, :, :]).sum(-1)
  k = (s < param).astype(float) if kind == "tophat" else np.exp(-s * param)
  cur_l = k[:, mask].max(1) if mask.any() else np.zeros(len(x))
  cur, taken, out = cur_l.copy(), mask.copy(), []
  for _ in range(budget):
    g = np.maximum(k - cur[:, None], 0).sum(0)
    g[taken] = -np.inf
    if g.max() <= 0:
      cur = cur_l.copy()
      g = np.maximum(k - cur[:, None], 0).sum(0)
      g[taken] = -np.inf
    j = int(np.argmax(g))
    out.append(j)
    taken[j] = True
    cur = np.maximum(cur, k[:, j])
  return np.array(out)


def blobs(sizes, spread, seed=0, d=8, gap=10.0):
  """Well-separated clusters: cluster c around gap * e_c, the given sizes."""
  rng = np.random.default_rng(seed)
  xs, ys = [], []
  for c, n in enumerate(sizes):
    center = np.zeros(d)
    center[c % d] = gap * (1 + c // d)
    xs.append(center + spread * rng.normal(size=(n, d)))
    ys.append(np.full(n, c))
  return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


@pytest.mark.parametrize("tile", [None, 16])  # the first bounds by [64, 16] tiles
@pytest.mark.parametrize("kind,param,budget", [("tophat", 0.5 ** 2, 90),
                                               ("gaussian", 1.0, 30),
                                               ("gaussian", 4.0, 30)])
def test_coverage_greedy_equals_float64_definition_lazy_and_plain(kind, param, budget,
                                                                  tile):
  x = sphere(240, 8, 1)
  mask = np.zeros(240, bool)
  mask[[3, 50, 200]] = True
  want = brute_greedy(x, budget, kind, param, mask)
  tuning = coverage.Tuning(rows=64, tile=tile)
  lazy, st = coverage.greedy(x, budget, kind=kind, param=param, labeled_mask=mask,
                             tuning=tuning)
  plain, st_plain = coverage.greedy(x, budget, kind=kind, param=param,
                                    labeled_mask=mask, lazy=False, tuning=tuning)
  np.testing.assert_array_equal(lazy, want)
  np.testing.assert_array_equal(plain, want)
  assert st.evaluations < st_plain.evaluations  # lazy did less work
  assert not set(lazy) & {3, 50, 200}


def test_lazy_equals_plain_on_many_exact_ties():
  """Integer features: many candidates share a gain exactly. Top-hat counts are
  exact, so the lowest index wins as in float64; Gaussian gains that tie in exact
  arithmetic are sums of the same terms in different orders, which rounding
  separates (in float64 as well, differently), so there lazy must equal plain."""
  x = np.random.default_rng(0).integers(0, 3, size=(200, 4)).astype(np.float32)
  mask = np.zeros(200, bool)
  for kind, param in (("tophat", 1.5), ("gaussian", 0.7)):
    lazy, _ = coverage.greedy(x, 40, kind=kind, param=param, labeled_mask=mask,
                              tuning=coverage.Tuning(rows=32))
    plain, _ = coverage.greedy(x, 40, kind=kind, param=param, labeled_mask=mask,
                               lazy=False, tuning=coverage.Tuning(rows=32))
    np.testing.assert_array_equal(lazy, plain)
    if kind == "tophat":
      np.testing.assert_array_equal(lazy, brute_greedy(x, 40, kind, param, mask))


def test_accelerator_block_sizes_give_the_same_picks(monkeypatch):
  """Off the CPU the passes take large blocks and the first bounds [rows, tile]
  tiles (`_pool.rows_for`); run here with the platform reported as a GPU, the
  functions must still give the float64 definition's picks (top-hat), k-means
  the same clusters and TypiClust (pool on the device) the same picks."""
  from jaxal.coldstart import _pool  # pylint: disable=import-outside-toplevel
  x = sphere(700, 8, 4)
  mask = np.zeros(700, bool)
  mask[[5, 600]] = True
  blobs_x, _ = blobs([60, 40, 25], 0.3)
  cpu_km = kmeans.kmeans(blobs_x, 3, seed=0).labels
  cpu_pc = probcover.probcover(x, 30, num_classes=5, seed=0, normalize=False)
  cpu_tc = typiclust.typiclust(x, 12, max_clusters=4, seed=0)
  monkeypatch.setattr(_pool, "platform", lambda devices: "gpu")
  assert _pool.rows_for(None, 1024, 17) == _pool.ACCEL_MAX_ROWS
  assert _pool.square_rows_for(None, 1024) == 8192
  got, _ = coverage.greedy(x, 40, kind="tophat", param=0.7, labeled_mask=mask)
  np.testing.assert_array_equal(got, brute_greedy(x, 40, "tophat", 0.7, mask))
  lazy, _ = coverage.greedy(x, 20, kind="gaussian", param=2.0, labeled_mask=mask)
  plain, _ = coverage.greedy(x, 20, kind="gaussian", param=2.0, labeled_mask=mask,
                             lazy=False)
  np.testing.assert_array_equal(lazy, plain)
  np.testing.assert_array_equal(kmeans.kmeans(blobs_x, 3, seed=0).labels, cpu_km)
  np.testing.assert_array_equal(
      probcover.probcover(x, 30, num_classes=5, seed=0, normalize=False), cpu_pc)
  # TypiClust's typicalities from the pool kept on the device, rows gathered there
  np.testing.assert_array_equal(typiclust.typiclust(x, 12, max_clusters=4, seed=0),
                                cpu_tc)


def test_tile_must_divide_rows():
  x = sphere(50, 4, 0)
  with pytest.raises(ValueError, match=r"tuning\.tile must be a power of two dividing "
                     r"rows=64, got 128; pass a smaller tile"):
    coverage.greedy(x, 3, kind="tophat", param=0.5, labeled_mask=np.zeros(50, bool),
                    tuning=coverage.Tuning(rows=64, tile=128))
  with pytest.raises(ValueError, match=r"tuning\.tile must be a power of two \(or "
                     r"None\), got 48; pass e\.g\. 32"):
    coverage.greedy(x, 3, kind="tophat", param=0.5, labeled_mask=np.zeros(50, bool),
                    tuning=coverage.Tuning(rows=64, tile=48))


@pytest.mark.parametrize("call,field,message", [
    (lambda x: coverage.greedy(x, 3, kind="tophat", param=0.5,
                               labeled_mask=np.zeros(len(x), bool),
                               tuning=coverage.Tuning(evals=0)),
     "tuning.evals", r"tuning\.evals must be a positive int, got 0; the default is 16"),
    (lambda x: coverage.greedy(x, 3, kind="tophat", param=0.5,
                               labeled_mask=np.zeros(len(x), bool),
                               tuning=coverage.Tuning(rows=2.5)),
     "tuning.rows", r"tuning\.rows must be a positive int or None, got 2\.5"),
    (lambda x: maxherding.maxherding(x, 3, tuning=coverage.Tuning(gauss_bound=-1e-4)),
     "tuning.gauss_bound", r"tuning\.gauss_bound must be a finite float >= 0, got "
     r"-0\.0001; the default is 0\.0001"),
    (lambda x: maxherding.maxherding(x, 3, tuning=coverage.Tuning(chunk=True)),
     "tuning.chunk", r"tuning\.chunk must be a positive int, got True"),
    # the k-means' tuning where the greedy's is wanted, and the other way round
    (lambda x: maxherding.maxherding(x, 3, tuning=kmeans.Tuning()),
     "tuning", r"tuning must be a jaxal\.coldstart\.coverage\.Tuning or None, got "
     r"Tuning; build one with coverage\.Tuning"),
    (lambda x: probcover.probcover(x, 3, delta=0.5, tuning=(1024, 16)),
     "tuning", r"coverage\.Tuning or None, got tuple"),
    (lambda x: kmeans.kmeans(x, 3, tuning=coverage.Tuning()),
     "tuning", r"tuning must be a jaxal\.coldstart\.kmeans\.Tuning or None"),
    (lambda x: kmeans.kmeans(x, 3, tuning=kmeans.Tuning(cpu_rows=0)),
     "tuning.cpu_rows", r"tuning\.cpu_rows must be a positive int, got 0; the "
     r"default is 2048"),
    # checked before the k-means runs, even where only the greedy would use it
    (lambda x: probcover.probcover(x, 3, num_classes=3,
                                   kmeans_tuning=kmeans.Tuning(rows=-8)),
     "kmeans_tuning.rows", r"kmeans_tuning\.rows must be a positive int or None, "
     r"got -8"),
    (lambda x: typiclust.typiclust(x, 3, kmeans_tuning=kmeans.Tuning(rows=0)),
     "kmeans_tuning.rows", r"kmeans_tuning\.rows must be a positive int or None, "
     r"got 0"),
    (lambda x: typiclust.typiclust(x, 3, kmeans_tuning=coverage.Tuning()),
     "kmeans_tuning", r"kmeans_tuning must be a jaxal\.coldstart\.kmeans\.Tuning"),
])
def test_bad_tuning_is_refused_naming_the_field(call, field, message):
  x = sphere(40, 4, 3)
  with pytest.raises(InputError, match=message) as e:
    call(x)
  assert e.value.field == field


def test_budgets_of_one_bucket_share_one_compilation(monkeypatch):
  """The budget is an argument of the greedy's compiled kernel (only the
  selection buffer's size, `_capacity(budget)`, is static), and a greedy's picks
  for budget b are the first b of a larger budget's, second cover included.
  k-means' max_iter is an argument too."""
  traces = []

  def counted(fn):
    def traced(*args, **kwargs):
      traces.append(fn.__name__)
      return fn(*args, **kwargs)
    return traced
  # pools of sizes no other test uses, so that their kernels are compiled here
  monkeypatch.setattr(coverage, "_greedy_local", counted(coverage._greedy_local))
  monkeypatch.setattr(kmeans, "_kmeans_local", counted(kmeans._kmeans_local))
  x = sphere(97, 5, 11)
  mask = np.zeros(97, bool)
  mask[[4, 60]] = True
  picks, resets = {}, {}
  for budget in (40, 3, 17, 25):
    picks[budget], st = coverage.greedy(x, budget, kind="tophat", param=0.6,
                                        labeled_mask=mask)
    resets[budget] = st.resets
  assert traces == ["_greedy_local"]
  assert resets == {40: 2, 3: 0, 17: 0, 25: 1}  # second and third covers included
  for budget in (3, 17, 25):
    np.testing.assert_array_equal(picks[budget], picks[40][:budget])
  assert coverage._capacity(1) == coverage._capacity(1024) == 1024
  assert coverage._capacity(1025) == 2048
  runs = [kmeans.kmeans(x[:93], 5, seed=1, max_iter=m) for m in (1, 2, 100)]
  assert traces == ["_greedy_local", "_kmeans_local"]
  assert [r.iterations for r in runs[:2]] == [1, 2] and runs[2].iterations > 2


def test_sharded_equals_one_device():
  assert len(jax.devices()) >= 2
  x = sphere(301, 6, 2)  # not a multiple of the device count
  mask = np.zeros(301, bool)
  mask[7] = True
  for kind, param in (("tophat", 0.6), ("gaussian", 1.0)):
    one, _ = coverage.greedy(x, 25, kind=kind, param=param, labeled_mask=mask)
    many, _ = coverage.greedy(x, 25, kind=kind, param=param, labeled_mask=mask,
                              devices=jax.devices())
    np.testing.assert_array_equal(one, many)
  km1 = kmeans.kmeans(x, 7, seed=3)
  km4 = kmeans.kmeans(x, 7, seed=3, devices=jax.devices())
  np.testing.assert_array_equal(km1.labels, km4.labels)


def test_probcover_by_hand_then_a_second_cover_without_repeats():
  # Three tight clusters of 30, 20 and 10 points, far apart: each ball of radius 1
  # covers exactly its cluster, so the picks are the clusters by size, the
  # lowest index in each; then everything is covered and a second cover begins.
  x, y = blobs((10, 30, 20), spread=0.01)
  picks, info = probcover.probcover(x, 5, delta=1.0, normalize=False,
                                    return_info=True)
  assert [y[i] for i in picks[:3]] == [1, 2, 0]
  assert list(picks[:3]) == [10, 40, 0]  # lowest index of each cluster
  assert info.coverage == 1.0 and info.stats.resets == 1
  assert [y[i] for i in picks[3:]] == [1, 2] and len(set(picks)) == 5
  # A labeled point covers its cluster from the start.
  mask = np.zeros(len(y), bool)
  mask[15] = True
  picks = probcover.probcover(x, 2, delta=1.0, normalize=False, labeled_mask=mask)
  assert [y[i] for i in picks] == [2, 0]


def test_probcover_delta_is_the_exact_purity_quantile():
  x = sphere(180, 5, 4)
  pseudo = kmeans.kmeans(x, 4, seed=0).labels
  d = np.sqrt(np.square(x[:, None].astype(np.float64) - x[None]).sum(-1))
  r = np.where(pseudo[:, None] != pseudo[None], d, np.inf).min(1)
  delta, purity = probcover.purity_delta(x, pseudo, 0.95)
  purity_of = lambda t: np.mean(r >= t)  # a ball of radius t is pure iff r >= t
  # delta comes from float32 distances: compare with float64 up to their rounding.
  assert purity_of(delta * (1 - 1e-5)) >= 0.95 and purity >= 0.95
  assert purity_of(delta * (1 + 1e-5)) < 0.95  # no larger radius is pure enough
  assert delta == pytest.approx(np.sort(r)[::-1][math.ceil(0.95 * 180) - 1], rel=1e-5)


def test_typiclust_picks_each_clusters_densest_point_in_order():
  # Clusters of 40, 25 and 12 points; in each, one point sits at the center of
  # a dense core and is the most typical; cluster order: size descending.
  rng = np.random.default_rng(5)
  x, y = blobs((12, 40, 25), spread=1.0)
  dense = []
  for c in range(3):
    idx = np.flatnonzero(y == c)
    x[idx[1:8]] = x[idx[0]] + 0.01 * rng.normal(size=(7, x.shape[1]))  # a dense core
    dense.append(idx)
  picks = typiclust.typiclust(x, 3, seed=0, normalize=False, neighbors=5)
  assert [y[i] for i in picks] == [1, 2, 0]
  for p in picks:
    idx = np.flatnonzero(y == y[p])
    assert p in idx[:8]  # inside the dense core
    f = x[idx].astype(np.float64)
    s = np.square(f[:, None] - f[None]).sum(-1)
    np.fill_diagonal(s, np.inf)
    k = min(5, len(idx) // 2)
    mean = np.sort(s, 1)[:, :k].mean(1)
    assert p == idx[np.argmin(mean)]  # the authors' typicality (squared)


def test_typiclust_cycle_skips_small_clusters_and_respects_labels():
  x, y = blobs((30, 20, 4), spread=0.5)
  mask = np.zeros(len(y), bool)
  mask[0] = True  # cluster 0 has a label: visited after the unlabeled ones
  picks = typiclust.typiclust(x, 5, labeled_mask=mask, clusters=y, normalize=False)
  assert [y[i] for i in picks] == [1, 0, 1, 0, 1]  # size-4 cluster dropped (<= 5)
  assert 0 not in picks and len(set(picks)) == 5
  all_ = typiclust.typiclust(x, 53, labeled_mask=mask, clusters=y, normalize=False)
  assert sorted(all_) == sorted(set(range(len(y))) - {0})  # small ones join at the end


def test_typiclust_two_point_clusters_take_the_lower_index():
  # Each point of a 2-point cluster is the other's only neighbour: an exact tie
  # that rounding of the two distance computations would otherwise decide.
  for seed in range(8):
    x = sphere(40, 64, seed)
    clusters = np.repeat(np.arange(20), 2)
    picks = typiclust.typiclust(x, 20, clusters=clusters, min_cluster_size=0,
                                max_clusters=None)
    assert sorted(picks) == list(range(0, 40, 2))


@pytest.fixture(scope="module")
def skactiveml():
  pool = pytest.importorskip("skactiveml.pool")
  import skactiveml.pool._max_herding as mh  # pylint: disable=import-outside-toplevel
  import skactiveml.pool._prob_cover as pc  # pylint: disable=import-outside-toplevel
  import skactiveml.pool._typi_clust as tc  # pylint: disable=import-outside-toplevel

  def lowest(a, random_state=None, axis=None):  # their ties are random; ours lowest
    del random_state, axis
    return np.array([np.flatnonzero(a == np.nanmax(a))[0]])
  saved = (mh.rand_argmax, pc.rand_argmax, tc.rand_argmax)
  mh.rand_argmax = pc.rand_argmax = tc.rand_argmax = lowest
  yield pool
  mh.rand_argmax, pc.rand_argmax, tc.rand_argmax = saved


@pytest.mark.filterwarnings("ignore:The maximum purity")  # one delta given: no search
def test_agrees_with_scikit_activeml(skactiveml):
  n, b = 600, 30
  x = sphere(n, 12, 6)
  y = np.full(n, np.nan)
  clusters = kmeans.kmeans(x, b, seed=0).labels

  class Fixed:  # scikit-activeml's cluster_algo, returning our clusters
    def __init__(self, n_clusters, random_state=None):
      del n_clusters, random_state

    def fit_predict(self, _):
      return clusters

  theirs = skactiveml.TypiClust(cluster_algo=Fixed, k=5, random_state=0).query(
      x, y, batch_size=b)
  ours = typiclust.typiclust(x, b, clusters=clusters, max_clusters=None,
                             min_cluster_size=0, neighbors=5,
                             neighbor_rule="all_but_one", squared=False)
  np.testing.assert_array_equal(ours, theirs)

  picks, info = probcover.probcover(x, b, num_classes=6, return_info=True)
  theirs = skactiveml.ProbCover(deltas=[info.delta], random_state=0).query(
      x, y, batch_size=b)
  np.testing.assert_array_equal(picks, theirs)

  ours = maxherding.maxherding(x, b, bandwidth=0.8)
  theirs = skactiveml.MaxHerding(metric="rbf", metric_dict={"gamma": 1 / 0.8 ** 2},
                                 random_state=0).query(x, y, batch_size=b)
  np.testing.assert_array_equal(ours, theirs)


def test_maxherding_with_labeled_points_equals_definition():
  x = sphere(150, 6, 7)
  mask = np.zeros(150, bool)
  mask[::37] = True
  picks = maxherding.maxherding(x, 20, labeled_mask=mask, bandwidth=0.7)
  np.testing.assert_array_equal(picks, brute_greedy(x, 20, "gaussian", 1 / 0.49, mask))


SEEDS = (1, 2)


def seeded_selections() -> dict:
  """{"method/seed": picks} on a tiny pool with labeled points: the cold-start
  methods and, for comparison, the other seeded ones (random; core-set with no
  labeled point, where the seed draws its first center)."""
  x = sphere(120, 8, 8)
  mask = np.zeros(120, bool)
  mask[:10] = True
  out = {}
  for m in acquisition.COLD_START + ("random", "coreset"):
    for s in SEEDS:
      out[f"{m}/{s}"] = acquisition.select(
          m, budget=15, features=x, labeled_mask=None if m == "coreset" else mask,
          seed=s, num_classes=4)
  return out


_IN_A_FRESH_PROCESS = r"""
import json
from tests.method.test_coldstart import seeded_selections
print(json.dumps({k: v.tolist() for k, v in seeded_selections().items()}))
"""


@pytest.fixture(scope="module")
def selections():
  """(`seeded_selections()` here, the same computed in a fresh process)."""
  out = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS], check=True,
                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env=subprocess_env())
  fresh = json.loads(out.stdout.strip().splitlines()[-1])
  return seeded_selections(), {k: np.asarray(v) for k, v in fresh.items()}


@pytest.mark.parametrize("method", acquisition.COLD_START + ("random", "coreset"))
def test_through_acquisition_seeded_and_deterministic(method, selections):
  """The same seed gives the same picks in another process; another seed gives
  other picks where the seed matters (random; core-set's first center; the
  k-means of TypiClust and ProbCover), and MaxHerding has none."""
  if method in acquisition.COLD_START:
    x = sphere(200, 8, 8)
    mask = np.zeros(200, bool)
    mask[:10] = True
    a = acquisition.select(method, budget=15, features=x, labeled_mask=mask, seed=1,
                           num_classes=4)
    b = acquisition.select(method, budget=15, features=x, labeled_mask=mask, seed=1,
                           num_classes=4)
    np.testing.assert_array_equal(a, b)
    assert len(set(a)) == 15 and not mask[a].any() and a.dtype == np.int64
  here, fresh = selections
  for s in SEEDS:
    np.testing.assert_array_equal(here[f"{method}/{s}"], fresh[f"{method}/{s}"])
  first, second = (here[f"{method}/{s}"] for s in SEEDS)
  if method in acquisition.SEEDED:
    assert first.tolist() != second.tolist()
  else:
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("call,message", [
    (lambda x: acquisition.select("typiclust", budget=201, features=x), "budget=201"),
    (lambda x: probcover.probcover(x, 5, delta=0.0), "delta must be"),
    (lambda x: probcover.probcover(x, 5, delta=-1.0), "delta must be"),
    (lambda x: probcover.probcover(x, 5, alpha=0.0, num_classes=3), "alpha must be"),
    (lambda x: probcover.probcover(x, 5, alpha=1.5, num_classes=3), "alpha must be"),
    (lambda x: acquisition.select("probcover", budget=5, features=x), "num_classes"),
    (lambda x: maxherding.maxherding(x, 5, bandwidth=0), "bandwidth must be"),
    (lambda x: typiclust.typiclust(x[:10], 5, labeled_mask=np.arange(10) < 8),
     "budget=5"),
    (lambda x: kmeans.kmeans(x[:5], 6), "num_clusters=6"),
    (lambda x: typiclust.typiclust(x, 5, neighbor_rule="third"), "neighbor_rule"),
    (lambda x: acquisition.select("maxherding", budget=5, probs=np.full((200, 2), .5)),
     "needs features"),
    # a typo of the kernel's name is refused, not run as the Gaussian kernel
    (lambda x: coverage.greedy(x, 5, kind="top-hat", param=0.1,
                               labeled_mask=np.zeros(200, bool)),
     "kind must be one of tophat, gaussian, got 'top-hat'"),
])
def test_bad_inputs_name_the_argument(call, message):
  x = sphere(200, 4, 9)
  with pytest.raises(ValueError, match=message):
    call(x)


def test_nan_features_refused():
  x = sphere(50, 4, 10)
  x[7, 2] = np.nan
  for method in acquisition.COLD_START:
    with pytest.raises(ValueError, match="features"):
      acquisition.select(method, budget=3, features=x, num_classes=3)


def test_probcover_purity_radius_over_devices_equals_one_device():
  """ProbCover's purity radius (delta=None) computed over 4 devices: the same
  picks as on one, and the radius within float32 rounding (each device centres
  its rows about a mean summed in another order)."""
  import jax  # pylint: disable=g-import-not-at-top
  from jaxal.coldstart import probcover as pc  # pylint: disable=g-import-not-at-top
  devs = jax.devices()[:4]
  if len(devs) < 4:
    pytest.skip("needs 4 devices (tests/conftest.py sets them on CPU)")
  rng = np.random.default_rng(11)
  x = np.concatenate([rng.normal(c, 0.3, size=(30, 5)) for c in (0.0, 3.0, 6.0)])
  x = x.astype(np.float32)
  one = pc.probcover(x, 6, num_classes=3, seed=2, return_info=True)
  four = pc.probcover(x, 6, num_classes=3, seed=2, devices=devs, return_info=True)
  np.testing.assert_array_equal(one[0], four[0])
  assert four[1].delta == pytest.approx(one[1].delta, rel=1e-5)
  assert four[1].purity == one[1].purity
