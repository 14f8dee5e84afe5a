"""Greedy k-center against a brute-force NumPy reference."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxal import _xla_cpu
from jaxal import distances, kcenter
from jaxal.acquisition import kcenter_greedy


def brute_force(x, budget, labeled=(), first=None):
  """Farthest-first traversal over a full float64 distance matrix."""
  x = np.asarray(x, np.float64)
  sq = (x * x).sum(1)
  dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))
  centers = list(labeled)
  md = dist[:, centers].min(1) if centers else np.full(len(x), np.inf)
  out = []
  for step in range(budget):
    md_pick = md.copy()
    md_pick[centers + out] = -np.inf
    i = first if (step == 0 and not centers) else int(np.argmax(md_pick))
    out.append(i)
    md = np.minimum(md, dist[:, i])
  return out


def _points(seed, n=300, d=6):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((n, d)).astype(np.float32) * rng.uniform(0.5, 3, d)


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_without_labeled(seed):
  x = _points(seed)
  got = kcenter_greedy(x, 40, seed=seed)
  assert got.dtype == np.int64
  np.testing.assert_array_equal(got, brute_force(x, 40, first=int(got[0])))


def test_first_center_comes_from_seed():
  x = _points(0)
  firsts = {int(kcenter_greedy(x, 1, seed=s)[0]) for s in range(10)}
  assert len(firsts) > 1  # the seed really draws it
  assert kcenter_greedy(x, 5, seed=3).tolist() == kcenter_greedy(x, 5, seed=3).tolist()


@pytest.mark.parametrize("num_labeled", [1, 15, 16, 17, 50, 127, 128, 129, 300])
def test_matches_brute_force_with_labeled_centers(num_labeled):
  # around the chunk of labeled centers folded per matmul (Tuning.chunk, 128)
  x = _points(num_labeled, n=600)
  labeled = np.random.default_rng(9).choice(len(x), num_labeled, replace=False)
  mask = np.zeros(len(x), bool)
  mask[labeled] = True
  got = kcenter_greedy(x, 30, labeled_mask=mask)
  assert not mask[got].any()
  np.testing.assert_array_equal(got, brute_force(x, 30, labeled=sorted(labeled)))


def sphere(seed, n=1500, d=256):
  """Points on a shifted sphere: concentrated distances, many float32 near-ties."""
  x = np.random.default_rng(seed).standard_normal((n, d))
  return (30 * x / np.linalg.norm(x, axis=1, keepdims=True) + 50).astype(np.float32)


def test_exact_tie_break_matches_float64_on_concentrated_distances():
  for seed in (0, 4, 5):
    x = sphere(seed)
    got, stats = kcenter_greedy(x, 300, seed=0, return_stats=True)
    np.testing.assert_array_equal(got, brute_force(x, 300, first=int(got[0])))
    assert stats.refined_steps > 0 and stats.error_bound > 0


def twins(d=8, radii=(30.0, 29.0, 28.0, 27.0, 26.0, 25.0, 24.0, 23.0)):
  """Pairs of points whose distances to the origin differ below float32's resolution.

  Pair k lies on axis k at radius radii[k], with 0.25 on the next axis; its twin
  has 0.25 + 2**-25 (one float32 ulp) there instead, so its squared distance to
  the origin is larger by 2**-26: ~1e-11 relative, invisible in float32 (ulp 6e-8)
  and plain in float64. Twins sit on different axes, so the labeled center at the
  origin stays every twin's nearest center, and step k chooses between pair k's
  twins. The farther twin comes first in even pairs and second in odd ones.
  """
  near_, far_ = [], []
  for k, r in enumerate(radii):
    a = np.zeros(d, np.float32)
    a[k] = r
    a[(k + 1) % d] = 0.25
    b = a.copy()
    b[(k + 1) % d] = np.nextafter(np.float32(0.25), np.float32(1))
    near_.append(a)
    far_.append(b)
  rows, far_idx = [np.zeros(d, np.float32)], []
  for k, (a, b) in enumerate(zip(near_, far_)):
    pair = [b, a] if k % 2 == 0 else [a, b]
    far_idx.append(len(rows) + (0 if k % 2 == 0 else 1))
    rows.extend(pair)
  filler = np.random.default_rng(0).uniform(-1, 1, (200, d)).astype(np.float32)
  return np.concatenate([np.stack(rows), filler]), far_idx


def test_exact_tie_break_on_constructed_float32_near_ties():
  x, far_idx = twins()
  sq = (x.astype(np.float64) ** 2).sum(1)  # exact: squared distances to the origin
  for i in far_idx:
    twin = i + 1 if (i % 2 == 1) else i - 1  # pairs occupy rows (1, 2), (3, 4), ...
    assert sq[i] > sq[twin]  # float64 sees the difference ...
    assert np.float32(sq[i]) == np.float32(sq[twin])  # ... float32 cannot hold it
  mask = np.zeros(len(x), bool)
  mask[0] = True  # the origin is the labeled center
  got, stats = kcenter_greedy(x, len(far_idx), labeled_mask=mask, return_stats=True)
  np.testing.assert_array_equal(got, far_idx)
  np.testing.assert_array_equal(got, brute_force(x, len(far_idx), labeled=[0]))
  assert stats.refined_steps == len(far_idx)  # every step was a near-tie


@pytest.mark.parametrize("seed", range(3))
def test_many_exact_ties_take_the_lowest_index(seed):
  # Integer features in {0, 1, 2}^8: exact squared distances are small integers,
  # so at most steps dozens to hundreds of points tie exactly for the farthest.
  x = np.random.default_rng(seed).integers(0, 3, (1000, 8)).astype(np.float32)
  got, stats = kcenter_greedy(x, 150, seed=seed, return_stats=True)
  np.testing.assert_array_equal(got, brute_force(x, 150, first=int(got[0])))
  assert stats.overflow_steps > 0  # ties beyond one pass really happened
  mask = np.zeros(len(x), bool)
  mask[::37] = True
  got = kcenter_greedy(x, 100, labeled_mask=mask)
  np.testing.assert_array_equal(got, brute_force(x, 100, labeled=np.flatnonzero(mask).tolist()))


def test_exact_tie_break_with_ambiguous_nearest_center():
  # Two identical labeled centers: every point's nearest center is ambiguous,
  # so tie-breaks take the full exact scan instead of the one-difference path.
  x = sphere(4, n=600)
  x[1] = x[0]
  mask = np.zeros(len(x), bool)
  mask[[0, 1]] = True
  got = kcenter_greedy(x, 120, labeled_mask=mask)
  np.testing.assert_array_equal(got, brute_force(x, 120, labeled=[0, 1]))


def test_normalize_equals_minmax_copy():
  x = _points(5)
  x[:, 2] *= 100.0
  lo, hi = x.min(0), x.max(0)
  scaled = (x - lo) / (hi - lo)
  got = kcenter_greedy(x, 25, seed=1, normalize=True)
  np.testing.assert_array_equal(got, brute_force(scaled, 25, first=int(got[0])))
  assert got.tolist() != kcenter_greedy(x, 25, seed=1).tolist()


def test_whole_pool_and_duplicates_never_repeat():
  x = np.zeros((10, 3), np.float32)  # all duplicates: every distance is 0
  mask = np.zeros(10, bool)
  mask[[1, 4]] = True
  got = kcenter_greedy(x, 8, labeled_mask=mask)
  assert sorted(got.tolist()) == [0, 2, 3, 5, 6, 7, 8, 9]


def test_sharded_over_devices_equals_single_device():
  assert jax.local_device_count() == 4, "tests expect 4 fake CPU devices"
  x = _points(7, n=301)  # not divisible by 4: exercises padding
  mask = np.zeros(len(x), bool)
  mask[[0, 300]] = True
  single = kcenter_greedy(x, 30, labeled_mask=mask)
  sharded = kcenter_greedy(x, 30, labeled_mask=mask, devices=jax.local_devices())
  np.testing.assert_array_equal(sharded, single)
  assert sharded.max() < len(x)


def test_no_recompilation_same_shapes():
  kcenter_greedy(_points(0, n=64), 5, seed=0)
  before = kcenter._kernel(jax.default_backend())._cache_size()
  for s in range(3):
    mask = np.zeros(64, bool)
    mask[: 10 * s] = True  # the number of labeled points is not a shape,
    budget = 5 + 7 * s  # nor is the budget (up to its capacity bucket)
    kcenter_greedy(_points(s + 1, n=64), budget, labeled_mask=mask, seed=s)
  assert kcenter._kernel(jax.default_backend())._cache_size() == before


def test_budget_above_the_first_capacity_bucket_matches_brute_force():
  # 1,025 centers: the 2,048-entry buffer, a budget that is not a power of two
  assert kcenter._capacity(1024) == 1024 and kcenter._capacity(1025) == 2048
  x = _points(11, n=1200, d=5)
  got = kcenter_greedy(x, 1025, seed=3)
  np.testing.assert_array_equal(got, brute_force(x, 1025, first=int(got[0])))


@pytest.mark.parametrize("rows,pending", [(64, 16), (100, 3), (7, 1)])
def test_lazy_blocks_match_brute_force(rows, pending):
  # Small blocks: many refreshes, an overlapping last block (700 % rows != 0),
  # and several pending centers per refresh, with and without labeled centers;
  # labeled centers folded 8 at a time, re-scored 16 at a time.
  tuning = kcenter.Tuning(rows=rows, pending=pending, chunk=8, block=16)
  x = _points(11, n=700, d=12)
  got, stats = kcenter_greedy(x, 60, seed=4, return_stats=True, tuning=tuning)
  np.testing.assert_array_equal(got, brute_force(x, 60, first=int(got[0])))
  assert stats.block_refreshes > 0
  mask = np.zeros(len(x), bool)
  mask[np.random.default_rng(2).choice(len(x), 37, replace=False)] = True
  got = kcenter_greedy(x, 60, labeled_mask=mask, tuning=tuning)
  np.testing.assert_array_equal(got, brute_force(x, 60, labeled=np.flatnonzero(mask).tolist()))


def compile_kernel(n, d, capacity, tuning=kcenter.DEFAULT_TUNING):
  """The kernel compiled for an [n, d] float32 pool from shapes alone."""
  s = jax.ShapeDtypeStruct
  with jax.enable_x64(True):
    return kcenter._kernel(jax.default_backend()).lower(
        s((n, d), np.float32), s((d,), np.float32), s((d,), np.float32),
        s((kcenter._round_up(n, tuning.block),), np.int32), s((), np.int32),
        s((n,), bool), s((), np.int32), s((), np.int32), capacity=capacity,
        exact_dtype="float64", lam=distances.LAMBDA, tuning=tuning).compile()


def test_kernel_temporaries_stay_within_40_bytes_per_point():
  # XLA's buffer assignment for N = 100,000: md, md2, near, the norms and the
  # lazy blocks' state, about 29 bytes per point. Folding the labeled centers
  # over the whole pool at once took 100 (an [N, 16] distance matrix, [N] int64
  # indices under x64); block by block its temporaries are the block's size.
  analysis = compile_kernel(100_000, 16, capacity=1024).memory_analysis()
  if analysis is None:
    pytest.skip("this backend reports no memory analysis")
  assert analysis.temp_size_in_bytes / 100_000 < 40


_COMPILE_MEMORY = r"""
import threading, jax, jax.numpy as jnp
import jaxal
from tests.method.test_kcenter import compile_kernel

def anon():
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) for l in f if l.startswith("RssAnon")) * 1024

jax.block_until_ready(jnp.ones(8) * 2)  # the backend, outside the measure
before = peak = anon()
done = threading.Event()
def sample():
  global peak
  while not done.wait(0.002):
    peak = max(peak, anon())
t = threading.Thread(target=sample)
t.start()
compile_kernel(100_000, 512, capacity=128)
done.set()
t.join()
print(max(peak, anon()) - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux only")
@pytest.mark.skipif(_xla_cpu.loop_emitter_options("cpu") is None,
                    reason="jaxal does not choose XLA:CPU's options here")
def test_first_compilation_of_the_kernel_stays_under_100_mib():
  # A fresh process's first core-set call compiles the kernel; with XLA:CPU's
  # MLIR fusion emitters that took +200 MiB of resident memory (260 bytes per
  # point at N = 1M, the kernel's own state being ~40), with `loop_emitter_options`
  # +37 MiB. The pool's size is not part of it (shapes only).
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  out = subprocess.run([sys.executable, "-c", _COMPILE_MEMORY], check=True,
                       capture_output=True, text=True, timeout=300, cwd=root,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  grown = int(out.stdout.strip().splitlines()[-1])
  assert grown < 100 * 2**20, f"compiling the kernel took {grown / 2**20:.0f} MiB"


def test_bad_tuning_is_refused_naming_the_field():
  x = _points(0, n=50)
  with pytest.raises(ValueError, match=r"tuning\.rows must be a positive int"):
    kcenter_greedy(x, 3, tuning=kcenter.Tuning(rows=0))
  with pytest.raises(ValueError, match=r"tuning\.chunk \(256\) must be <= tuning\.block"):
    kcenter_greedy(x, 3, tuning=kcenter.Tuning(chunk=256))
  with pytest.raises(ValueError, match="tuning must be a kcenter.Tuning"):
    kcenter_greedy(x, 3, tuning=(512, 16))


def test_one_rounding_bound_for_kcenter_and_the_coverage_greedy():
  """k-center's delta and the coverage greedy's slack are the same formula,
  delta = g (2 R^2 + 2 (R + 2M) R) with g = lam sqrt(d + 4) u, by hand."""
  from jaxal.coldstart import coverage  # pylint: disable=g-import-not-at-top
  x = _points(3, n=300, d=7) + 5.0
  mean = x.mean(axis=0, dtype=np.float64)
  r = np.sqrt(np.max(np.sum((x - mean) ** 2, axis=1)))
  m = np.linalg.norm(mean)
  g = 8.0 * np.sqrt(7 + 4.0) * 2.0 ** -24
  by_hand = g * (2 * r * r + 2 * (r + 2 * m) * r)
  assert coverage.rounding_slack(x, mean) == pytest.approx(by_hand, rel=1e-12)
  _, stats = kcenter_greedy(x, 3, return_stats=True)
  assert stats.error_bound == pytest.approx(by_hand, rel=1e-4)  # float32 R and M
