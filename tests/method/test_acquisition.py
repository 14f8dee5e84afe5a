"""`select`: every method's contract, determinism and bad input."""

import numpy as np
import pytest

from jaxal import acquisition as A
from jaxal.uncertainty import entropy

N, C, D = 257, 9, 5


@pytest.fixture(scope="module")
def pool():
  rng = np.random.default_rng(0)
  probs = rng.dirichlet(np.full(C, 0.4), size=N).astype(np.float32)
  feats = rng.standard_normal((N, D)).astype(np.float32)
  mask = rng.random(N) < 0.2
  return probs, feats, mask


def _extra(method, probs):
  """DIRECT's target model and annotator (the others take neither): the pool's
  probabilities over 9 classes as the target's, labels cycling through them."""
  if method not in A.LABELS_WHILE_SELECTING:
    return {}
  return dict(target=A.TargetModel(probs, np.arange(C)), oracle=np.arange(N) % C,
              num_classes=C)


def test_method_names():
  for name in ["random", "coreset", "entropy", "least_confidence", "margin",
               "entropy_inv", "entropy_div", "entropy_inv_div",
               "least_confidence_inv_div", "margin_div", "margin_inv"]:
    assert name in A.METHODS
  assert A.COLD_START == ("typiclust", "probcover", "maxherding")
  assert A.TARGET_AWARE == ("uherding", "dropquery", "direct")
  assert set(A.COLD_START + A.TARGET_AWARE) <= set(A.METHODS)
  assert len(A.METHODS) == 14 + len(A.COLD_START) + len(A.TARGET_AWARE)


@pytest.mark.parametrize("method", A.METHODS)
def test_contract(pool, method):
  probs, feats, mask = pool
  budget = 60
  kw = {"num_classes": 5, **_extra(method, probs)}
  got = A.select(method, budget=budget, probs=probs, features=feats,
                 labeled_mask=mask, seed=3, **kw)
  assert isinstance(got, np.ndarray) and got.dtype.kind == "i"
  assert got.shape == (budget,)
  assert np.unique(got).size == budget
  assert not mask[got].any()
  again = A.select(method, budget=budget, probs=probs, features=feats,
                   labeled_mask=mask, seed=3, **kw)
  np.testing.assert_array_equal(got, again)


@pytest.mark.parametrize("method", A.METHODS)
def test_whole_unlabeled_pool(pool, method):
  probs, feats, mask = pool
  n_unlabeled = int((~mask).sum())
  got = A.select(method, budget=n_unlabeled, probs=probs, features=feats,
                 labeled_mask=mask, **{"num_classes": 5, **_extra(method, probs)})
  assert sorted(got.tolist()) == np.flatnonzero(~mask).tolist()


def test_random_depends_on_seed(pool):
  probs, _, mask = pool
  a = A.select("random", budget=50, probs=probs, labeled_mask=mask, seed=0)
  b = A.select("random", budget=50, probs=probs, labeled_mask=mask, seed=1)
  assert a.tolist() != b.tolist()


def test_entropy_orders(pool):
  probs, _, mask = pool
  h = np.asarray(entropy(probs))
  got = A.select("entropy", budget=30, probs=probs, labeled_mask=mask)
  inv = A.select("entropy_inv", budget=30, probs=probs, labeled_mask=mask)
  unl = np.flatnonzero(~mask)
  np.testing.assert_array_equal(got, unl[np.argsort(-h[unl], kind="stable")][:30])
  np.testing.assert_array_equal(inv, unl[np.argsort(h[unl], kind="stable")][:30])


def test_div_is_algorithm1_on_ranking(pool):
  probs, _, mask = pool
  full = A.rank("least_confidence_inv", probs=probs, labeled_mask=mask)
  got = A.select("least_confidence_inv_div", budget=40, probs=probs,
                 labeled_mask=mask)
  np.testing.assert_array_equal(
      got, A.diversify(full, np.argmax(probs, 1), 40))
  # the first pass takes one sample per predicted class
  first_pass = len(set(np.argmax(probs[full], 1)))
  assert len(set(np.argmax(probs[got[:first_pass]], 1))) == first_pass


def test_coreset_is_kcenter(pool):
  _, feats, mask = pool
  np.testing.assert_array_equal(
      A.select("coreset", budget=20, features=feats, labeled_mask=mask, seed=2),
      A.kcenter_greedy(feats, 20, labeled_mask=mask, seed=2))


BAD = [
    (dict(method="nope"), "unknown method 'nope'; valid methods: random"),
    (dict(budget=0), "budget must be > 0"),
    (dict(budget=-3), "budget must be > 0"),
    (dict(budget=2.5), "budget must be a positive int"),
    (dict(budget=10_000), "budget=10000 is larger than the unlabeled pool"),
    (dict(probs=np.ones((N,), np.float32)), "probs must be 2-D"),
    (dict(probs=np.full((N, C), np.nan, np.float32)), "probs has non-finite"),
    (dict(probs=np.full((N, C), -1.0 / C, np.float32)), "probs has negative"),
    (dict(probs=np.full((N, C), 0.5, np.float32)), "rows must sum to 1"),
    (dict(probs=np.full((N + 1, C), 1.0 / C, np.float32)), "length mismatch"),
    (dict(labeled_mask=np.zeros(N - 1, bool)), "length mismatch"),
    (dict(labeled_mask=np.full(N, 2)), "labeled_mask must be boolean"),
]


@pytest.mark.parametrize("override,message", BAD)
def test_bad_input(pool, override, message):
  probs, feats, mask = pool
  kw = dict(method="entropy", budget=10, probs=probs, labeled_mask=mask)
  kw.update(override)
  method = kw.pop("method")
  with pytest.raises(ValueError, match=message.replace("(", r"\(")):
    A.select(method, **kw)


@pytest.mark.parametrize("override,message", [
    (dict(features=np.full((N, D), np.inf)), "features has non-finite"),
    (dict(features=np.ones((N, D, 2))), "features must be 2-D"),
    (dict(features=np.ones((N - 2, D))), "length mismatch"),
    (dict(features=None), "method 'coreset' needs features"),
])
def test_bad_features(pool, override, message):
  _, feats, _ = pool
  kw = dict(budget=10, features=feats, labeled_mask=np.zeros(N, bool))
  kw.update(override)
  with pytest.raises(ValueError, match=message):
    A.select("coreset", **kw)


def test_needs_probs():
  with pytest.raises(ValueError, match="'margin_div' needs probs"):
    A.select("margin_div", budget=3, features=np.ones((5, 2)))
  with pytest.raises(ValueError, match="'random' needs the pool size"):
    A.select("random", budget=3)


@pytest.mark.parametrize("seed,message", [
    (None, r"seed must be an int in \[0, 2\*\*32\), got None"),
    (1.5, "seed must be an int"),
    ("3", "seed must be an int"),
    (True, "seed must be an int"),
    (-1, "would repeat smaller ones"),
    (2 ** 32, "would repeat smaller ones"),
])
@pytest.mark.parametrize("method", ["random", "coreset"])
def test_bad_seed(pool, method, seed, message):
  _, feats, mask = pool
  with pytest.raises(ValueError, match=message):
    A.select(method, budget=5, features=feats, labeled_mask=mask, seed=seed)
  with pytest.raises(ValueError, match=message):
    A.kcenter_greedy(feats, 5, seed=seed)


def test_seed_at_the_limit_is_distinct():
  # 2**32 - 1 is accepted and does not collide with 0 (2**32 would have).
  mask = np.zeros(1000, bool)
  a = A.select("random", budget=50, labeled_mask=mask, seed=0)
  b = A.select("random", budget=50, labeled_mask=mask, seed=2 ** 32 - 1)
  assert a.tolist() != b.tolist()


@pytest.mark.parametrize("method", A.METHODS)
def test_memory_mapped_arrays_select_the_same(pool, method, tmp_path):
  """Features and probabilities memory-mapped from .npy files (how `jaxal
  embed` stores a pool) give the same selection as in-memory arrays, and the
  balancing step the same sequence."""
  from jaxal import balancing  # pylint: disable=g-import-not-at-top
  probs, feats, mask = pool
  np.save(tmp_path / "p.npy", probs)
  np.save(tmp_path / "f.npy", feats)
  mp = np.load(tmp_path / "p.npy", mmap_mode="r")
  mf = np.load(tmp_path / "f.npy", mmap_mode="r")
  assert isinstance(mp, np.memmap) and not mp.flags.writeable
  kw = dict(budget=40, labeled_mask=mask, seed=3,
            **{"num_classes": 5, **_extra(method, probs)})
  want = A.select(method, probs=probs, features=feats, **kw)
  if method in A.LABELS_WHILE_SELECTING:
    kw["target"] = kw["target"]._replace(probs=mp)
  got = A.select(method, probs=mp, features=mf, **kw)
  np.testing.assert_array_equal(got, want)
  if method in ("entropy_inv_div", "coreset"):
    y = np.arange(N) % 5
    ranking = A.rank(method, probs=probs, labeled_mask=mask) \
        if A.ranks_whole_pool(method) else want
    np.testing.assert_array_equal(
        balancing.balanced_select(ranking, mf, y, 30, 5, labeled_mask=mask),
        balancing.balanced_select(ranking, feats, y, 30, 5, labeled_mask=mask))


def test_ranking_to_balance_whole_pool_or_the_picks():
  """Uncertainty methods hand the balancing step the whole pool's ranking (it
  may walk past the budget); the others their picks, read back or selected."""
  rng = np.random.default_rng(5)
  probs = rng.dirichlet(np.ones(4), size=40).astype(np.float32)
  feats = rng.normal(size=(40, 3)).astype(np.float32)
  got = A.ranking_to_balance("margin", budget=5, probs=probs, features=feats)
  np.testing.assert_array_equal(got, A.rank("margin", probs=probs))
  assert got.size == 40
  got = A.ranking_to_balance("coreset", budget=5, probs=probs, features=feats, seed=3)
  np.testing.assert_array_equal(
      got, A.select("coreset", budget=5, features=feats, seed=3))
  kept = A.ranking_to_balance("random", budget=3, probs=probs, selected=[7, 2, 9])
  np.testing.assert_array_equal(kept, [7, 2, 9])
  assert kept.dtype == np.int64
