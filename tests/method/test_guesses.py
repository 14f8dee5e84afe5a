"""The balancing step guided by zero-shot guesses (`jaxal.guesses`): on an
imbalanced pool with a stand-in image-text model (class texts = the classes'
centroids plus noise), it reaches every class in fewer answers than the
paper's rule and than random; once every class has an answer the paper's rule
takes over exactly; bad guesses are refused by name."""

import numpy as np
import pytest

from jaxal import acquisition, balancing, guesses, zeroshot
from jaxal.errors import InputError

SIZES = (500, 250, 120, 40, 12, 6)  # the last classes rare


def pool(seed, absent=False):
  """An imbalanced pool and a stand-in's guesses, right for ~80-87% of the
  images (~75% of the rare ones); `absent`: a 7th class listed, not in it."""
  rng = np.random.default_rng(seed)
  k = len(SIZES) + absent
  centers = rng.normal(size=(k, 24)) * 3
  y = np.repeat(np.arange(len(SIZES)), SIZES)
  x = (centers[y] + rng.normal(size=(len(y), 24)) * 4).astype(np.float32)
  text = zeroshot.ensemble(centers + rng.normal(size=centers.shape) * 2, k)
  p = zeroshot.probabilities(x, text, np.log(10.0), -5.0)
  return x, y, p


def answers_to_find_all(order, y):
  """How many answers until every class has one (inf if never)."""
  seen = set()
  for k, i in enumerate(order, 1):
    seen.add(int(y[i]))
    if len(seen) == len(SIZES):
      return k
  return np.inf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_guesses_reach_every_class_sooner_than_the_papers_rule_and_random(seed):
  x, y, p = pool(seed)
  n, budget = len(y), 60
  ranking = acquisition.rank("entropy", probs=p)
  kw = dict(batch_size=1)
  guided = balancing.balanced_select(ranking, x, y, budget, len(SIZES), guesses=p,
                                     guess_weight=0.5, **kw)
  paper = balancing.balanced_select(ranking, x, y, budget, len(SIZES), **kw)
  rand = np.random.default_rng(seed).permutation(n)[:budget]
  got = {name: answers_to_find_all(order, y) for name, order in
         (("guided", guided), ("paper", paper), ("random", rand))}
  # measured (seeds 0, 1, 2; guesses right for 87/80/81% of the images):
  # guided 38, 7, 6 answers; the paper's rule never within 60, 34, 29; random
  # never within 60
  assert got["guided"] < got["paper"] and got["guided"] < got["random"], got
  assert len(set(guided)) == budget


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_listed_class_the_pool_lacks_does_not_take_the_budget(seed):
  x, y, p = pool(seed, absent=True)
  ranking = acquisition.rank("entropy", probs=p)
  wasted = {}
  for w in (0.0, 0.5):
    picks = balancing.balanced_select(ranking, x, y, 60, len(SIZES) + 1, guesses=p,
                                      guess_weight=w, batch_size=1)
    assert answers_to_find_all(picks, y) == len(SIZES)
    wasted[w] = int((p[picks].argmax(1) == len(SIZES)).sum())
  # measured (seeds 0, 1, 2): picks guessed as the missing class, weight 0:
  # 12, 54, 8 of 60; weight 0.5 (the default): 4, 6, 6
  assert wasted[0.5] <= 8 and wasted[0.5] <= wasted[0.0], wasted


def test_once_every_class_has_an_answer_the_papers_rule_decides():
  x, y, p = pool(3)
  ranking = acquisition.rank("margin", probs=p)
  budget = 40
  guided = balancing.balanced_select(ranking, x, y, budget, len(SIZES), guesses=p,
                                     batch_size=1)
  k = answers_to_find_all(guided, y)
  assert k < budget
  labeled = np.zeros(len(y), bool)
  labeled[guided[:k]] = True
  rest = balancing.balanced_select(ranking[~labeled[ranking]], x, y, budget - k,
                                   len(SIZES), labeled_mask=labeled, batch_size=1)
  np.testing.assert_array_equal(guided[k:], rest)


def test_a_batch_spreads_over_the_classes_without_answers():
  x, y, p = pool(4)
  ranking = acquisition.rank("entropy", probs=p)
  first = balancing.balanced_select(ranking, x, y, 6, len(SIZES), guesses=p,
                                    batch_size=6)
  assert sorted(p[first].argmax(1)) == list(range(len(SIZES)))


def test_weight_counts_wrong_guesses():
  g = guesses.Guide.build(np.eye(3)[[0, 1, 2, 2]], np.arange(4), 0.5, 4, 3)
  g.record(np.array([2, 3]))
  np.testing.assert_array_equal(g.effective(np.array([1, 0, 0])), [1, 0, 1])
  g0 = guesses.Guide.build(np.eye(3)[[0, 1, 2, 2]], np.arange(4), 0.0, 4, 3)
  g0.record(np.array([2, 3]))
  np.testing.assert_array_equal(g0.effective(np.array([1, 0, 0])), [1, 0, 0])


@pytest.mark.parametrize("kwargs,field", [
    (dict(guesses=np.ones((5, 3))), "guesses"),
    (dict(guesses=np.full((10, 3), np.nan)), "guesses"),
    (dict(guesses=np.ones((10, 3)), guess_weight=-1), "guess_weight"),
    (dict(guesses=np.ones((10, 3)), guess_weight="much"), "guess_weight"),
])
def test_bad_guesses_are_refused_by_name(kwargs, field):
  x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
  with pytest.raises(InputError) as e:
    balancing.balanced_select(np.arange(10), x, np.zeros(10, int), 3, 3, **kwargs)
  assert e.value.field == field


def test_a_class_nobody_guesses_stops_leading():
  """A listed class that is no image's top guess: the picks made for it count
  for it, so it stops leading (it does not take every pick)."""
  rng = np.random.default_rng(0)
  y = np.repeat([0, 1], 100)
  p = np.zeros((200, 3), np.float32)
  p[np.arange(200), y] = 0.6
  p[:, 2] = rng.uniform(0.1, 0.3, 200)
  p[np.arange(200), 1 - y] = 0.4 - p[:, 2] / 2
  guide = guesses.Guide.build(p, np.arange(200), 0.5, 200, 3)
  counts, avail, made_for_absent = np.zeros(3, int), np.ones(200, bool), 0
  for _ in range(40):
    assert p.argmax(1)[2] != 2
    if not guide.leads(counts):
      break
    c = int(np.argmin(guide.effective(counts)))
    pick = guide.picks(counts, avail, 1)
    made_for_absent += c == 2
    guide.record(pick)
    avail[pick] = False
    counts[y[pick]] += 1
  # measured: it leads 4 picks, 2 of them for the absent class, then the
  # paper's rule decides (when picks were counted by their own top guess, the
  # absent class led every one)
  assert not guide.leads(counts) and made_for_absent <= 3, made_for_absent


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_over_rounds_a_listed_class_the_pool_lacks_stops_leading_as_in_one_step(seed):
  """The images labeled in earlier rounds count for their top guess, so the
  missing class's wrong guesses are remembered between rounds: three rounds
  of 20 waste about what one step of 60 does, not 3 x its first round's."""
  x, y, p = pool(seed, absent=True)
  k = len(SIZES) + 1
  ranking = acquisition.rank("entropy", probs=p)
  labeled = np.zeros(len(y), bool)
  for _ in range(3):
    rank = ranking[~labeled[ranking]]
    picks = balancing.balanced_select(rank, x, y, 20, k, labeled_mask=labeled,
                                      guesses=p, batch_size=1)
    labeled[picks] = True
  rounds = int((p[labeled].argmax(1) == len(SIZES)).sum())
  one = balancing.balanced_select(ranking, x, y, 60, k, guesses=p, batch_size=1)
  once = int((p[one].argmax(1) == len(SIZES)).sum())
  assert rounds <= once + 2, (rounds, once)
