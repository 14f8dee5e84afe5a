"""Zero-shot guesses (`jaxal.zeroshot`): prompt ensembling as CLIP's, the
normalised SigLIP sigmoids against a float64 NumPy reference, and a stand-in
image-text model whose class-name embeddings are the classes' centroids plus
noise: each class's own images rank first, and the paper's functions then run
over the target classes (Algorithm 1 a round robin over the guesses)."""

import numpy as np
import pytest

from jaxal import acquisition, zeroshot
from jaxal.errors import InputError


def reference(x, y, scale, bias):
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  y = y / np.linalg.norm(y, axis=1, keepdims=True)
  s = 1.0 / (1.0 + np.exp(-(np.exp(scale) * x @ y.T + bias)))
  return s / s.sum(1, keepdims=True)


def test_prompt_ensembling_is_the_renormalised_mean_of_unit_embeddings():
  rng = np.random.default_rng(0)
  texts = zeroshot.prompt_texts(["cat", "dog"], ["a {}.", "the {} here"])
  assert texts == ["a cat.", "the cat here", "a dog.", "the dog here"]
  e = rng.normal(size=(4, 5)) * rng.uniform(0.5, 3, size=(4, 1))
  got = zeroshot.ensemble(e, 2)
  u = e / np.linalg.norm(e, axis=1, keepdims=True)
  m = u.reshape(2, 2, 5).mean(1)
  np.testing.assert_allclose(got, m / np.linalg.norm(m, axis=1, keepdims=True),
                             rtol=1e-6)
  with pytest.raises(InputError):
    zeroshot.ensemble(e, 3)


@pytest.mark.parametrize("prompts", [[], "a {}", ["a photo"], ["{} {}"], ["a {x}"]])
def test_bad_templates_are_refused(prompts):
  with pytest.raises(InputError) as e:
    zeroshot.check_prompts(prompts)
  assert e.value.field == "prompts"


def test_probabilities_against_float64_and_by_blocks():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(50, 8)).astype(np.float32)
  y = rng.normal(size=(3, 8)).astype(np.float32)
  for scale, bias in ((np.log(10.0), -10.0), (np.log(117.0), -12.9), (0.0, 0.0)):
    got = zeroshot.probabilities(x, y, scale, bias, rows=16)
    np.testing.assert_allclose(got, reference(x.astype(np.float64), y, scale, bias),
                               rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(got, zeroshot.probabilities(x, y, scale, bias,
                                                              rows=16))
  np.testing.assert_allclose(got.sum(1), 1, rtol=2e-5)  # float32
  # every logit far below zero: a flat guess, no 0 / 0
  flat = zeroshot.probabilities(x, y, np.log(1.0), -200.0)
  assert np.isfinite(flat).all()
  np.testing.assert_allclose(flat.sum(1), 1, rtol=2e-5)
  for bad, field in (((x, y[:1]), "class_embeds"), ((x[:, :4], y), "image_embeds")):
    with pytest.raises(InputError) as e:
      zeroshot.probabilities(*bad, 0.0, 0.0)
    assert e.value.field == field


def stand_in(seed, sizes=(60, 30, 10, 4), d=16):
  """Clustered image embeddings and class-name embeddings = centroids + noise."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(len(sizes), d)) * 5
  y = np.repeat(np.arange(len(sizes)), sizes)
  x = (centers[y] + rng.normal(size=(len(y), d))).astype(np.float32)
  text = centers + rng.normal(size=centers.shape) * 0.3
  return x, y, zeroshot.ensemble(text, len(sizes))


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_each_class_ranks_its_own_images_first(seed):
  x, y, cls = stand_in(seed)
  # scale and bias such that a class's own images sit near logit +2 and the
  # others' below 0, as SigLIP's matches and non-matches do
  p = zeroshot.probabilities(x, cls, np.log(10.0), -5.0)
  for c in range(cls.shape[0]):
    own = p[y == c, c]
    assert own.min() > p[y != c, c].max(), c  # AUC 1: every own image first
  assert (p.argmax(1) == y).mean() > 0.95


def test_the_papers_functions_run_over_the_guessed_target_classes():
  x, y, cls = stand_in(6)
  p = zeroshot.probabilities(x, cls, np.log(10.0), -5.0)
  guess = p.argmax(1)
  # Algorithm 1 over the guesses: the first 4 picks, one per guessed class,
  # the rare class (4 images) included
  picks = acquisition.select("entropy_div", budget=8, probs=p, features=x)
  assert sorted(guess[picks[:4]]) == [0, 1, 2, 3]
  assert len(set(y[picks])) == 4
  plain = acquisition.select("margin", budget=8, probs=p, features=x)
  assert len(plain) == 8


def test_classes_that_all_fit_are_one_flat_guess():
  """Where several classes' sigmoids saturate, SigLIP says each text matches:
  the normalised guess is flat among them (an uncertain image), not a softmax's
  confident pick."""
  x = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
  y = np.eye(3, dtype=np.float32)
  p = zeroshot.probabilities(x, y, np.log(100.0), -10.0)
  np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0], atol=1e-4)  # cos 0.71 both
  assert p[1, 0] > 0.999
