"""Table 16's zero-shot guesses: each pool's probabilities over its target
classes from their names alone (`jaxal.zeroshot`), before any label.

- With a SigLIP source (`ZeroShotSettings.source`, a `jaxal import-source
  --arch=siglip` work directory): its image tower embeds the pool (cached in
  WORKDIR/cache like M_S's outputs), its text tower reads the dataset's class
  names (`catalog.class_names`, "_" read as a space: `prompt_names`) in every
  prompt template, averaged as CLIP's prompt ensembling, and the probabilities
  are SigLIP's sigmoids normalised over the classes (`zeroshot.probabilities`).
  The pool is read once at M_S's image size; where SigLIP's differs, its
  input is that image resized (bilinear, antialiased) after SigLIP's
  normalisation [R] (the real tables' M_S and SigLIP 2's base checkpoints
  both read 224 pixels: no resize there).
- Without one (`stand_in`, the offline tables): a stand-in image-text model
  whose image embedding is M_S's feature and whose text embedding of class c
  is the centroid of M_S's test-split features of c plus Gaussian noise, so
  that its guesses are right for many images and wrong for others, as a
  zero-shot model's are; the fraction it gets right is recorded with every
  cell that uses it (`zeroshot_top1`). [R] jaxal's, for testing the command
  and the table on CPU: its numbers say how the balancing step uses guesses of
  that quality, not how SigLIP's would do.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from jaxal import zeroshot
from jaxal.datasets import catalog
from jaxal.experiments import _memo as memo
from jaxal.experiments._output_cache import OutputCache
from jaxal.experiments._pools import Pool
from jaxal.experiments._settings import Settings, SettingsError

# The stand-in's pair logit exp(t) cos + b (SigLIP's form, jaxal.zeroshot).
STAND_IN_SCALE, STAND_IN_BIAS = float(np.log(10.0)), -5.0
_STREAM = 16  # the stand-in's noise: a random stream of its own for each seed


def stand_in(pool_features: np.ndarray, test_features: np.ndarray,
             test_labels: np.ndarray, num_classes: int, *, noise: float,
             seed: int) -> np.ndarray:
  """[N, C] the stand-in's probabilities (module docstring) of the pool's
  features [N, D]: image embedding f(x) - mu, text embedding of class c
  m_c - mu + noise * s * e_c, with mu the test features' mean, m_c class c's
  mean, s the within-class standard deviation per dimension (the root mean
  square of f(x) - m_y over the test split, divided by sqrt(D)) and e_c ~
  N(0, I) drawn from `seed`."""
  test = np.asarray(test_features, np.float64)
  y = np.asarray(test_labels)
  missing = sorted(set(range(num_classes)) - set(np.unique(y).tolist()))
  if missing:
    raise SettingsError("zeroshot.source", f"the stand-in needs test images of every "
                        f"class; classes {missing[:5]} have none: pass a SigLIP "
                        "source.")
  mu = test.mean(axis=0)
  means = np.stack([test[y == c].mean(axis=0) for c in range(num_classes)])
  spread = np.sqrt(((test - means[y]) ** 2).sum(axis=1).mean() / test.shape[1])
  rng = np.random.default_rng((int(seed), _STREAM))  # not the data's own draws
  text = means - mu + float(noise) * spread * rng.standard_normal(means.shape)
  images = np.asarray(pool_features, np.float64) - mu
  return zeroshot.probabilities(images.astype(np.float32), text.astype(np.float32),
                                STAND_IN_SCALE, STAND_IN_BIAS)


class ZeroShot:
  """The pools' zero-shot probabilities, computed once a pool (module
  docstring). `source_outputs(dataset, kind, split)` gives M_S's features of
  a pool or test split (the stand-in's image embeddings)."""

  def __init__(self, settings: Settings, outputs: OutputCache,
               source_outputs: Callable[[str, str, str], np.ndarray],
               image_size: Callable[[], int], log: Callable[[str], None]):
    self.settings, self._outputs, self.log = settings, outputs, log
    self._source_outputs, self._image_size = source_outputs, image_size
    self._probs = memo.Bounded(8)

  def probs(self, dataset: str, kind: str, pool: Pool) -> np.ndarray:
    """[N, C] p(class | image) over the pool of `dataset` (`kind`)."""
    zs = self.settings.zeroshot
    return self._probs.get((dataset, kind), lambda: (
        self._siglip(dataset, kind, pool) if zs.source else
        self._stand_in(dataset, kind, pool)))

  def _stand_in(self, dataset: str, kind: str, pool: Pool) -> np.ndarray:
    s = self.settings
    p = stand_in(self._source_outputs(dataset, kind, "train"),
                 self._source_outputs(dataset, kind, "test"), pool.test_labels,
                 pool.num_classes, noise=s.zeroshot.noise, seed=s.data_seed)
    self.log(f"zero-shot stand-in: {dataset} {kind} pool, noise "
             f"{s.zeroshot.noise:g}: top-1 guess right for {top1(p, pool.labels):.1%}")
    return p

  def _siglip(self, dataset: str, kind: str, pool: Pool) -> np.ndarray:
    from jaxal.models import foundation, source  # pylint: disable=g-import-not-at-top
    from jaxal.datasets import images as images_lib  # pylint: disable=g-import-not-at-top
    s = self.settings
    path = s.zeroshot.source
    try:
      trained = source.load_workdir(path)
      tower = foundation.load_text(path, trained.config)
    except ValueError as e:
      raise SettingsError("zeroshot.source", str(e)) from None
    names = prompt_names(catalog.class_names(
        dataset, s.offline if s.data == "offline" else None))
    texts = zeroshot.prompt_texts(names, s.zeroshot.prompts)
    cut = foundation.overlong(tower, texts)
    if cut.size:
      raise SettingsError("zeroshot.prompts", f"{texts[cut[0]]!r} fills all "
                          f"{tower.tokenizer.max_length} tokens of the text tower; "
                          "shorten the template.")
    classes = zeroshot.ensemble(foundation.text_embeddings(tower, texts), len(names))
    normalize = _resized(images_lib.normalizer(trained.preprocess),
                         trained.image_size, self._image_size())
    key = memo.digest(dataset, kind, "train", pool.digest, trained.digest, "zeroshot")
    feats = self._outputs.get(
        key, f"{dataset}_{kind}_train_zeroshot",
        f"SigLIP image embeddings: {dataset} {kind} train ({len(pool.labels)} images)",
        trained.model, [trained.final], pool.images, normalize)[0]
    p = zeroshot.probabilities(feats, classes, tower.logit_scale, tower.logit_bias)
    self.log(f"zero-shot: {dataset} {kind} pool, {len(names)} class names x "
             f"{len(s.zeroshot.prompts)} template(s): top-1 guess right for "
             f"{top1(p, pool.labels):.1%}")
    return p


def prompt_names(names) -> list[str]:
  """The class names as a prompt reads them: TFDS's label names join words
  with "_" ("apple_pie", "aquarium_fish"); the text tower reads words ("apple
  pie"), as CLIP's and SigLIP's zero-shot evaluations write their class names."""
  return [" ".join(str(n).replace("_", " ").split()) for n in names]


def top1(probs: np.ndarray, labels: np.ndarray) -> float:
  """The fraction of images whose top guess is their class."""
  return float((np.asarray(probs).argmax(axis=1) == np.asarray(labels)).mean())


def _resized(normalize, size: int, read_at: int):
  """`normalize`, then resized from `read_at` to `size` pixels where they differ."""
  if size == read_at:
    return normalize

  def f(x):
    x = np.asarray(normalize(x), np.float32)
    return np.asarray(jax.image.resize(x, (x.shape[0], size, size, x.shape[3]),
                                       "bilinear", antialias=True))
  return f
