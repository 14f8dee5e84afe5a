"""Class names as zero-shot guesses: an image-text model's probabilities over
the user's target classes, before any label (beyond the paper).

The paper ranks the pool by M_S's *source*-class probabilities (main paper
section 3.2), and Algorithm 1 (supplement) spreads picks over M_S's source
classes. An image-text model (SigLIP) turns the names of the *target* classes
into a guess per image; with these probabilities every acquisition function
runs over the target classes, and Algorithm 1 diversifies by the guessed
target class (a class-balanced round robin over the guesses).

Prompt ensembling, as CLIP's (Radford et al., 2021, its ImageNet notebook):
each class name is put in every template ("a photo of a {}."), each text
embedded and scaled to unit norm, the mean over templates taken and scaled to
unit norm again (`ensemble`).

Calibration: SigLIP (Zhai et al., ICCV 2023) is trained with a sigmoid per
image-text pair, p(match) = sigmoid(exp(t) cos(x, y) + b) with its learned
logit_scale t and logit_bias b, not a softmax over texts. jaxal keeps that
trained per-pair probability and normalises it over the user's classes,

    p(c | x) = sigmoid(l_c) / sum_c' sigmoid(l_c'),   l_c = exp(t) cos(x, y_c) + b,

which ranks classes as the logits do (so the top-1 guess is SigLIP's) while
keeping the model's own confidence per pair: when no class fits an image, all
its sigmoids are small and comparable, and the normalised guess is flat (high
entropy), which is what the uncertainty functions should see. A softmax over
the logits (what CLIP's zero-shot classifier uses) would be exp(t) times
sharper here (t ~ log 100 for SigLIP) and declare a confident winner among
classes that all fit badly. The other side of it: where several classes'
sigmoids saturate (SigLIP is sure each text matches), the guess is flat among
them, an uncertain image, and its top-1 is decided by tiny differences. [R]:
SigLIP's authors publish no multi-class normalisation; Hugging Face's
zero-shot pipeline reports the unnormalised sigmoids.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal.errors import InputError

DEFAULT_PROMPTS = ("a photo of a {}.",)  # SigLIP's authors' zero-shot template


def check_prompts(prompts: Sequence[str]) -> list[str]:
  """The templates, each holding one "{}" where the class name goes."""
  if isinstance(prompts, str) or not len(prompts):
    raise InputError("prompts must be a non-empty list of templates such as "
                     "'a photo of a {}.'", field="prompts")
  out = []
  for k, p in enumerate(prompts):
    if not isinstance(p, str) or p.count("{}") != 1 or "{" in p.replace("{}", ""):
      raise InputError(f"prompts[{k}] = {str(p)[:80]!r}: a template holds one '{{}}' "
                       "where the class name goes (e.g. 'a photo of a {}.').",
                       field="prompts")
    out.append(p)
  return out


def read_prompts(path: str, field: str = "prompts") -> list[str]:
  """The templates of a prompts file, one a line ('#' lines and blank ones
  skipped), each checked; errors name the file and line, and `field` (the
  setting that gave the file)."""
  if not os.path.isfile(path):
    raise InputError(f"{field} {path!r} does not exist.", field=field)
  out = []
  with open(path, encoding="utf-8-sig") as f:
    for line_no, line in enumerate(f.read().splitlines(), 1):
      t = line.strip()
      if not t or t.startswith("#"):
        continue
      try:
        check_prompts([t])
      except InputError:
        raise InputError(f"{path}:{line_no}: {t[:80]!r} is not a template: put one "
                         "'{}' where the class name goes (e.g. 'a photo of a {}.').",
                         field=field) from None
      out.append(t)
  if not out:
    raise InputError(f"{field} {path}: no template in it.", field=field)
  return out


def prompt_texts(classes: Sequence[str], prompts: Sequence[str]) -> list[str]:
  """Every class in every template, class-major: [c0 t0, c0 t1, ..., c1 t0, ...]."""
  return [p.replace("{}", c) for c in classes for p in check_prompts(prompts)]


def _unit(a: np.ndarray, axis: int = -1) -> np.ndarray:
  norm = np.linalg.norm(a, axis=axis, keepdims=True)
  if not (norm > 0).all():
    raise InputError("an embedding is all zeros; it has no direction.",
                     field="text_embeds")
  return a / norm


def ensemble(text_embeds, num_classes: int) -> np.ndarray:
  """[C, D] float32 class embeddings from the [C * T, D] embeddings of
  `prompt_texts` (class-major): each scaled to unit norm, averaged over the T
  templates, scaled to unit norm (module docstring)."""
  e = np.asarray(text_embeds, np.float64)
  if e.ndim != 2 or num_classes < 1 or e.shape[0] % num_classes:
    raise InputError(f"text_embeds must be [classes x templates, D] for "
                     f"{num_classes} classes, got shape {e.shape}.",
                     field="text_embeds")
  per = _unit(e).reshape(num_classes, e.shape[0] // num_classes, e.shape[1])
  return _unit(per.mean(axis=1)).astype(np.float32)


@jax.jit
def _block(x, y, scale, bias):
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-30)
  logits = jnp.dot(x, y.T, precision=jax.lax.Precision.HIGHEST) * jnp.exp(scale) + bias
  # sigmoid(l) / sum sigmoid(l'), computed in the log domain: no underflow to
  # 0 / 0 when every logit is very negative
  logp = jax.nn.log_sigmoid(logits)
  return jnp.exp(logp - jax.scipy.special.logsumexp(logp, axis=1, keepdims=True))


def probabilities(image_embeds, class_embeds, logit_scale: float, logit_bias: float,
                  *, rows: int = 8192) -> np.ndarray:
  """[N, C] float32: p(c | x) = sigmoid(l_c) / sum_c' sigmoid(l_c') for the
  image embeddings [N, D] (a memory map is read by blocks of `rows`) against
  the class embeddings [C, D] (`ensemble`), l_c = exp(logit_scale) cos(x, y_c)
  + logit_bias as SigLIP's `logits_per_image` (module docstring)."""
  y = np.asarray(class_embeds, np.float32)
  if y.ndim != 2 or y.shape[0] < 2:
    raise InputError("class_embeds must be [C, D] with C >= 2 classes, got shape "
                     f"{y.shape}.", field="class_embeds")
  if getattr(image_embeds, "ndim", None) != 2 or image_embeds.shape[1] != y.shape[1]:
    raise InputError(f"image_embeds must be [N, {y.shape[1]}] (the image tower's "
                     f"embeddings), got shape {getattr(image_embeds, 'shape', None)}.",
                     field="image_embeds")
  y = _unit(y.astype(np.float64)).astype(np.float32)
  n = image_embeds.shape[0]
  out = np.empty((n, y.shape[0]), np.float32)
  scale, bias = np.float32(logit_scale), np.float32(logit_bias)
  for s in range(0, n, rows):
    x = np.asarray(image_embeds[s:s + rows], np.float32)
    if len(x) < rows and n > rows:  # the last block padded: one compilation
      x = np.concatenate([x, np.ones((rows - len(x), x.shape[1]), np.float32)])
    out[s:s + rows] = np.asarray(_block(x, y, scale, bias))[:min(rows, n - s)]
  return out
